/* report.c - the JSON report (--report) and the closing stderr line.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcopy.h"

/* s as the inside of a JSON string, truncated to fit buf. */
static const char *json_escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(buf + o, len - o, "\\u%04x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o] = 0;
	return buf;
}

static const char *dest_error_text(const struct target *t, char *buf,
				   size_t len)
{
	if (!t->error)
		return NULL;
	if (t->error == -EILSEQ) {
		snprintf(buf, len, "%s: data read back differs from the "
			 "source", t->error_op);
		return buf;
	}
	snprintf(buf, len, "%s: %s", t->error_op, strerror(-t->error));
	return buf;
}

static const char *name_of_fd(struct kcopy *k, int fd)
{
	unsigned int i;

	if (!k->opt.zero && fd == k->src.fd)
		return k->src.spec.path;
	for (i = 0; i < k->num_dests; i++)
		if (k->dests[i].fd == fd)
			return k->dests[i].spec.path;
	return "?";
}

static void write_report(struct kcopy *k, FILE *f, int status)
{
	char esc[8192], err[256];
	unsigned int i;
	size_t j;

	fprintf(f, "{\n  \"version\": \"%s\",\n", PACKAGE_VERSION);
	fprintf(f, "  \"operation\": \"%s\",\n", k->opt.zero ? "zero" : "copy");
	if (k->opt.zero)
		fprintf(f, "  \"source\": null,\n");
	else
		fprintf(f, "  \"source\": {\"path\": \"%s\", \"sector\": %" PRIu64
			", \"count\": %" PRIu64 ", \"read_err\": %s},\n",
			json_escape(k->src.spec.path, esc, sizeof(esc)),
			k->src.sector, k->src.count,
			k->read_err ? "true" : "false");
	fprintf(f, "  \"destinations\": [\n");
	for (i = 0; i < k->num_dests; i++) {
		struct target *t = &k->dests[i];
		const char *e = dest_error_text(t, err, sizeof(err));

		fprintf(f, "    {\"index\": %u, \"path\": \"%s\", \"sector\": %"
			PRIu64 ", \"count\": %" PRIu64 ", \"created\": %s, "
			"\"write_err\": %s, \"error\": ", i + 1,
			json_escape(t->spec.path, esc, sizeof(esc)),
			t->sector, t->count, t->created ? "true" : "false",
			(k->write_err >> i) & 1 ? "true" : "false");
		if (e)
			fprintf(f, "\"%s\"", json_escape(e, esc, sizeof(esc)));
		else
			fprintf(f, "null");
		fprintf(f, ", \"mismatches\": [");
		for (j = 0; j < t->num_mismatches; j++)
			fprintf(f, "%s{\"sector\": %" PRIu64 ", \"count\": %"
				PRIu64 "}", j ? ", " : "",
				t->mismatches[j].sector,
				t->mismatches[j].count);
		fprintf(f, "]}%s\n", i + 1 < k->num_dests ? "," : "");
	}
	fprintf(f, "  ],\n");
	fprintf(f, "  \"read_err\": %d,\n  \"write_err\": %u,\n",
		k->read_err, k->write_err);
	fprintf(f, "  \"exit_status\": %d,\n", status);
	fprintf(f, "  \"signal\": %d,\n", k->signal);
	fprintf(f, "  \"bytes\": %" PRIu64 ",\n  \"bytes_total\": %" PRIu64
		",\n", k->bytes_done, k->bytes);
	fprintf(f, "  \"seconds\": %.3f,\n", k->seconds);
	fprintf(f, "  \"verified\": %s,\n", k->verified ? "true" : "false");
	fprintf(f, "  \"bad_ranges\": [");
	for (j = 0; j < k->num_bad; j++)
		fprintf(f, "%s\n    {\"device\": \"%s\", \"sector\": %" PRIu64
			", \"count\": %" PRIu64 "}", j ? "," : "",
			json_escape(name_of_fd(k, k->bad[j].fd), esc,
				    sizeof(esc)),
			k->bad[j].sector, k->bad[j].count);
	fprintf(f, "%s]\n}\n", k->num_bad ? "\n  " : "");
}

/* Returns 0, or -errno if the report could not be written. */
int report_write(struct kcopy *k, const char *path, int status)
{
	FILE *f;
	int ret = 0;

	if (!strcmp(path, "-")) {
		write_report(k, stdout, status);
		return fflush(stdout) ? -errno : 0;
	}
	f = fopen(path, "we");
	if (!f)
		return -errno;
	write_report(k, f, status);
	if (ferror(f))
		ret = -EIO;
	if (fclose(f) && !ret)
		ret = -errno;
	return ret;
}

/* The last line on stderr whenever the status is not 0, even with --quiet:
 * the full masks and what failed where. */
void report_closing_line(struct kcopy *k, int status)
{
	char err[256], *line = NULL;
	size_t len = 0;
	unsigned int i;
	FILE *f = open_memstream(&line, &len);

	if (!f) {
		say(&k->out, MSG_ERROR, "exit status %d: read_err=%d "
		    "write_err=0x%x", status, k->read_err, k->write_err);
		return;
	}
	fprintf(f, "exit status %d: read_err=%d write_err=0x%x", status,
		k->read_err, k->write_err);
	if (k->signal)
		fprintf(f, "; stopped by signal %d after %" PRIu64 " bytes",
			k->signal, k->bytes_done);
	if (k->read_err)
		fprintf(f, "; source '%s': %s", k->src.spec.path,
			k->read_error ? strerror(-k->read_error)
				      : "read error");
	if (k->num_bad)
		fprintf(f, " (%zu bad range(s) zero-filled)", k->num_bad);
	for (i = 0; i < k->num_dests; i++) {
		const char *e = dest_error_text(&k->dests[i], err, sizeof(err));

		if ((k->write_err >> i) & 1)
			fprintf(f, "; destination %u '%s': %s", i + 1,
				k->dests[i].spec.path, e ? e : "write error");
	}
	fclose(f);
	say(&k->out, MSG_ERROR, "%s", line);
	free(line);
}
