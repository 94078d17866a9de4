/* report.c - the JSON report (--report) and the closing stderr line.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "json.h"
#include "kcopy.h"

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

/* A number, or null in the placeholder of a run that is not over. */
static void u64_or_null(struct json *j, const char *key, uint64_t v,
			bool done)
{
	if (done)
		json_u64(j, key, v);
	else
		json_null(j, key);
}

static void bool_or_null(struct json *j, const char *key, bool v, bool done)
{
	if (done)
		json_bool(j, key, v);
	else
		json_null(j, key);
}

/* --hash: "hashes": {"ALG": "hex", ...}, or null where there are none (a
 * region not read to its end, a run not over). */
static void hashes(struct json *j, const struct hash_set *h, bool done)
{
	struct json o;
	unsigned int a;

	if (!done || !h->done) {
		json_null(j, "hashes");
		return;
	}
	json_open(&o, j, "hashes", NULL, '{', "", ", ", "");
	for (a = 0; a < HASH_NUM_ALGS; a++)
		if (h->hex[a])
			json_string(&o, hash_name(a), h->hex[a]);
	json_close(&o);
}

static void destination(struct kcopy *k, struct json *list, unsigned int i,
			bool done)
{
	struct target *t = &k->dests[i];
	struct json o, m, x;
	char err[256];
	size_t n;

	json_open(&o, list, NULL, NULL, '{', "", ", ", "");
	json_u64(&o, "index", i + 1);
	json_string(&o, "path", t->spec.path);
	json_u64(&o, "sector", t->sector);
	json_u64(&o, "count", t->count);
	json_bool(&o, "created", t->created);
	/* Sub-jobs whose writes ended last here: the destination holding
	 * the copy back has the most (see progress.c). */
	if (done && k->num_dests > 1 && !(k->opt.mapfile && k->write_err))
		json_u64(&o, "held_back", k->stats.held_back[i]);
	bool_or_null(&o, "write_err", (k->write_err >> i) & 1, done);
	json_string(&o, "error", dest_error_text(t, err, sizeof(err)));
	json_open(&m, &o, "mismatches", NULL, '[', "", ", ", "");
	for (n = 0; n < t->num_mismatches; n++) {
		json_open(&x, &m, NULL, NULL, '{', "", ", ", "");
		json_u64(&x, "sector", t->mismatches[n].sector);
		json_u64(&x, "count", t->mismatches[n].count);
		json_close(&x);
	}
	json_close(&m);
	if (k->opt.hash_algs && k->opt.verify)
		hashes(&o, &t->hash, done);
	json_close(&o);
}

/* The report of a run that is over (done), or the placeholder of one that
 * is starting: the same keys, null where the outcome is not known yet. */
static void write_report(struct kcopy *k, FILE *f, int status, bool done)
{
	struct json top, o, list;
	unsigned int i;
	size_t n;

	json_open(&top, NULL, NULL, f, '{', "\n  ", ",", "\n");
	json_string(&top, "version", PACKAGE_VERSION);
	json_string(&top, "state", done ? "done" : "running");
	json_u64(&top, "pid", (uint64_t)getpid());
	json_string(&top, "operation", k->opt.zero ? "zero" : "copy");
	if (k->opt.zero) {
		json_null(&top, "source");
	} else {
		json_open(&o, &top, "source", NULL, '{', "", ", ", "");
		json_string(&o, "path", k->src.spec.path);
		json_u64(&o, "sector", k->src.sector);
		json_u64(&o, "count", k->src.count);
		bool_or_null(&o, "read_err", k->read_err, done);
		json_close(&o);
	}
	json_open(&list, &top, "destinations", NULL, '[', "\n    ", ",",
		  "\n  ");
	for (i = 0; i < k->num_dests; i++)
		destination(k, &list, i, done);
	json_close(&list);
	u64_or_null(&top, "read_err", (uint64_t)k->read_err, done);
	u64_or_null(&top, "write_err", k->write_err, done);
	u64_or_null(&top, "exit_status", (uint64_t)status, done);
	u64_or_null(&top, "signal", (uint64_t)k->signal, done);
	u64_or_null(&top, "bytes", k->bytes_done, done);
	json_u64(&top, "bytes_total", k->bytes);
	/* the copy's traffic: bytes read from the source, written to and
	 * zeroed on the destinations (summed over them), zero ranges left
	 * alone (already zeros), and the source's holes, not read */
	u64_or_null(&top, "bytes_read", k->stats.bytes_read, done);
	u64_or_null(&top, "bytes_written", k->stats.bytes_written, done);
	u64_or_null(&top, "bytes_zeroed", k->stats.bytes_zeroed, done);
	u64_or_null(&top, "bytes_skipped", k->stats.bytes_skipped, done);
	u64_or_null(&top, "bytes_holes", k->stats.bytes_holes, done);
	if (k->used.ext) {
		/* --used, --domain-mapfile: what the map held, and the
		 * source bytes it left out (not read, not written) */
		json_open(&o, &top, "used", NULL, '{', "", ", ", "");
		json_string(&o, "type", k->used.type);
		if (k->opt.used) {
			json_u64(&o, "block_size", k->used.block_size);
			json_u64(&o, "fs_bytes", k->used.fs_size);
			if (k->used.dirty[0])
				json_string(&o, "not_clean", k->used.dirty);
		}
		json_u64(&o, "bytes_used", k->used.used_bytes);
		json_u64(&o, "bytes_zeros", k->used.zero_bytes);
		json_u64(&o, "extents", k->used.num);
		json_string(&o, "unused", k->opt.unused == UNUSED_ZERO
					  ? "zero" : "keep");
		u64_or_null(&o, "bytes_left_out", k->stats.bytes_unmapped,
			    done);
		json_close(&o);
	}
	if (done)
		json_double(&top, "seconds", k->seconds, 3);
	else
		json_null(&top, "seconds");
	bool_or_null(&top, "verified", k->verified, done);
	if (k->opt.hash_algs) {
		hashes(&top, &k->src.hash, done);
		if (done && k->hash_missing[0])
			json_string(&top, "hashes_missing", k->hash_missing);
	}
	json_open(&list, &top, "bad_ranges", NULL, '[', "\n    ", ",",
		  "\n  ");
	for (n = 0; n < k->num_bad; n++) {
		json_open(&o, &list, NULL, NULL, '{', "", ", ", "");
		json_string(&o, "device", name_of_fd(k, k->bad[n].fd));
		json_u64(&o, "sector", k->bad[n].sector);
		json_u64(&o, "count", k->bad[n].count);
		json_close(&o);
	}
	json_close(&list);
	json_close(&top);
	fputc('\n', f);
}

/* The report, whole, in memory: 0, or -errno. */
static int render(struct kcopy *k, int status, bool done, char **buf,
		  size_t *len)
{
	FILE *f = open_memstream(buf, len);

	if (!f)
		return -errno;
	write_report(k, f, status, done);
	if (ferror(f)) {
		fclose(f);
		free(*buf);
		*buf = NULL;
		return -ENOMEM;
	}
	if (fclose(f)) {
		free(*buf);
		*buf = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Print a setup error as "--report 'PATH': ..." and return err. */
static int report_error(struct kcopy *k, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int report_error(struct kcopy *k, int err, const char *fmt, ...)
{
	char *what = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&what, fmt, ap);
	va_end(ap);
	say(&k->out, MSG_ERROR, "--report '%s': %s", k->opt.report,
	    n < 0 ? strerror(-err) : what);
	free(what);
	return err;
}

/* Is the file st one of the regions: the source, a destination, or the file
 * behind a loop device that is one?  Says so (what is "" or "standard
 * output is "); 0 or -EINVAL. */
static int check_not_a_region(struct kcopy *k, const struct stat *st,
			      const char *what)
{
	int i = target_side_of(k, NULL, st);
	char name[32];

	if (i >= 0)
		return report_error(k, -EINVAL, "%sthe same file as %s", what,
				    target_side_name(i, name, sizeof(name)));
	return 0;
}

/* A temporary file beside the report, to be renamed over it: 0 or -errno. */
static int make_temp(struct report *rp)
{
	free(rp->tmp);
	return files_temp_beside(rp->path, ".kcopy-report.", &rp->tmp,
				&rp->tmp_fd);
}

/* Forget the temporary file, removing it if it is still there. */
static void drop_temp(struct report *rp)
{
	if (!rp->tmp)
		return;
	close(rp->tmp_fd);
	unlink(rp->tmp);
	free(rp->tmp);
	rp->tmp = NULL;
}

/* The report's temporary file made the report; it is gone afterwards. */
static int publish(struct report *rp, const char *buf, size_t len)
{
	int r = files_publish_temp(rp->tmp_fd, rp->tmp, rp->path, rp->mode, buf,
			     len, &rp->renamed);

	if (!rp->renamed) {
		drop_temp(rp);
		return r;
	}
	close(rp->tmp_fd);
	free(rp->tmp);
	rp->tmp = NULL;
	return r;
}

void report_init(struct kcopy *k)
{
	k->report.tmp_fd = -1;
	k->report.stdout_closed = fcntl(STDOUT_FILENO, F_GETFD) < 0 &&
				  errno == EBADF;
}

/* '-': standard output must be open, and not a region or a disk. */
static int open_stdout(struct kcopy *k)
{
	struct stat st;

	if (k->report.stdout_closed)
		return report_error(k, -EBADF, "standard output is closed");
	if (fstat(STDOUT_FILENO, &st) < 0)
		return report_error(k, -errno, "standard output: %s",
				    strerror(errno));
	if (S_ISBLK(st.st_mode))
		return report_error(k, -EINVAL, "standard output is a block "
				    "device");
	return check_not_a_region(k, &st, "standard output is ");
}

int report_open(struct kcopy *k)
{
	struct report *rp = &k->report;
	const char *path = k->opt.report;
	char name[32];
	struct stat st;
	int i;
	int r;

	if (!path)
		return 0;
	if (!strcmp(path, "-"))
		return open_stdout(k);
	if (stat(path, &st) == 0) {
		/* Never opened: a FIFO would block, a device be written. */
		if (!S_ISREG(st.st_mode))
			return report_error(k, -EINVAL, "%s",
					    S_ISDIR(st.st_mode) ? "is a directory"
					    : S_ISBLK(st.st_mode) ? "is a block device"
					    : S_ISFIFO(st.st_mode) ? "is a FIFO"
					    : "is not a regular file");
		r = check_not_a_region(k, &st, "");
		if (r < 0)
			return r;
		rp->mode = st.st_mode & 07777;
		rp->earlier = true;
		rp->path = realpath(path, NULL);
	} else if (errno == ENOENT) {
		rp->mode = files_new_mode();
		rp->path = files_resolve_new(path);
	} else {
		return report_error(k, -errno, "%s", strerror(errno));
	}
	if (!rp->path)
		return report_error(k, -errno, "cannot create it: %s",
				    strerror(errno));
	i = target_side_of(k, rp->path, NULL);
	if (i >= 0)
		return report_error(k, -EINVAL, "the same file as %s",
				    target_side_name(i, name, sizeof(name)));
	r = make_temp(rp);
	if (r < 0)
		return report_error(k, r, "cannot create a file beside it: %s",
				    strerror(-r));
	return 0;
}
int report_start(struct kcopy *k)
{
	char *buf = NULL;
	size_t len;
	int r;

	if (!k->report.tmp)
		return 0;	/* none, or standard output */
	if (!k->report.earlier) {
		/* Nothing to take the place of: a killed run leaves no
		 * report, and no temporary file. */
		drop_temp(&k->report);
		return 0;
	}
	r = render(k, 0, false, &buf, &len);
	if (r == 0)
		r = publish(&k->report, buf, len);
	free(buf);
	k->report.placed = k->report.renamed;
	if (r < 0)
		return report_error(k, r, "cannot write: %s", strerror(-r));
	return 0;
}

int report_write(struct kcopy *k, int status)
{
	struct report *rp = &k->report;
	char *buf = NULL;
	size_t len;
	int r;

	if (!k->opt.report)
		return 0;
	r = render(k, status, true, &buf, &len);
	if (r == 0 && !rp->path) {
		fflush(stdout);
		r = files_write_all(STDOUT_FILENO, buf, len);
	} else if (r == 0) {
		r = make_temp(rp);
		if (r == 0)
			r = publish(rp, buf, len);
		rp->done = rp->renamed;
	}
	free(buf);
	if (r < 0) {
		rp->failed = true;
		if (rp->path)
			say(&k->out, MSG_ERROR, "cannot write the report '%s': "
			    "%s", k->opt.report, strerror(-r));
		else
			say(&k->out, MSG_ERROR, "cannot write the report to "
			    "standard output: %s", strerror(-r));
	}
	return r;
}

void report_free(struct kcopy *k)
{
	struct report *rp = &k->report;

	drop_temp(rp);
	/* The placeholder of a run that did not start after all, or that
	 * could not write its report: no report is better than one that says
	 * the run goes on. */
	if (rp->placed && !rp->done)
		unlink(rp->path);
	free(rp->path);
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
	if (k->report.failed)
		fprintf(f, "; the report was not written");
	fclose(f);
	say(&k->out, MSG_ERROR, "%s", line);
	free(line);
}
