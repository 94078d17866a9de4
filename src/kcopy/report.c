/* report.c - the JSON report (--report), the digests in coreutils' checksum
 * format (--hash-file) and the closing stderr line.
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
#include <time.h>
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

/* A time of the wall clock as UTC, ISO 8601 ("2026-12-06T23:30:00Z"), or
 * null if it is not known (0). */
static void utc_time(struct json *j, const char *key, time_t t)
{
	char buf[32];
	struct tm tm;

	if (t && gmtime_r(&t, &tm) &&
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		json_string(j, key, buf);
	else
		json_null(j, key);
}

/* "real_path": the side's path with every link resolved, from the root;
 * null for an NBD URI and '-', which name no file. */
static void real_path(struct json *j, const struct target *t)
{
	char *p = NULL;

	if (!t->is_std && !t->info.is_remote && strcmp(t->spec.path, "-") &&
	    !kc_uri_prefix(t->spec.path))
		p = realpath(t->spec.path, NULL);
	json_string(j, "real_path", p);
	free(p);
}

/* "image": a compressed source's format, sizes (null where not known),
 * the decoder's memory and what stopped it; null for any other source. */
static void image(const struct kcopy *k, struct json *parent, bool done)
{
	const struct feed *f = &k->feed;
	char text[512];
	struct json o;

	if (!feed_format(f)) {
		json_null(parent, "image");
		return;
	}
	json_open(&o, parent, "image", NULL, '{', "", ", ", "");
	json_string(&o, "format", feed_format(f));
	if (f->in_is_file)
		json_u64(&o, "bytes_compressed", f->in_size);
	else
		u64_or_null(&o, "bytes_compressed", f->in_done,
			    done && f->ended);
	if (f->size_known)
		json_u64(&o, "bytes_decompressed", f->image_size);
	else
		u64_or_null(&o, "bytes_decompressed", f->out_done,
			    done && f->ended);
	u64_or_null(&o, "decoder_memory", f->memory, done);
	json_string(&o, "error", done && f->error
			? feed_error_text(f, text, sizeof(text)) : NULL);
	json_close(&o);
}

/* One argument as a POSIX shell reads it back: as it is if it holds only
 * characters the shell takes literally, else in single quotes (a quote
 * in it as '\''). */
static void shell_quote(FILE *f, const char *s)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789_@%+=:,./-";

	if (*s && s[strspn(s, plain)] == 0) {
		fputs(s, f);
		return;
	}
	fputc('\'', f);
	for (; *s; s++)
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	fputc('\'', f);
}

/* "argv": the command line as an array, and "command_line": as one string
 * a shell runs again. */
static void command_line(struct kcopy *k, struct json *top)
{
	char *line = NULL;
	size_t len = 0;
	struct json a;
	FILE *f;
	int i;

	json_open(&a, top, "argv", NULL, '[', "", ", ", "");
	for (i = 0; i < k->argc; i++)
		json_string(&a, NULL, k->argv[i]);
	json_close(&a);
	f = open_memstream(&line, &len);
	if (f) {
		for (i = 0; i < k->argc; i++) {
			if (i)
				fputc(' ', f);
			shell_quote(f, k->argv[i]);
		}
		if (fclose(f)) {
			free(line);
			line = NULL;
		}
	}
	json_string(top, "command_line", line);
	free(line);
}

/* "failure": how destination t failed, its first error: the operation,
 * errno (null for data that differs) and its text, and the lowest byte
 * offset on it that failed (null if none is known: a flush, say); null if
 * it did not fail. */
static void failure(struct json *j, const struct target *t, bool done)
{
	struct json o;

	if (!done || !t->error) {
		json_null(j, "failure");
		return;
	}
	json_open(&o, j, "failure", NULL, '{', "", ", ", "");
	json_string(&o, "op", t->error_op);
	if (t->error == -EILSEQ) {
		json_null(&o, "errno");
		json_string(&o, "message", "data read back differs from the "
			    "source");
	} else {
		json_u64(&o, "errno", (uint64_t)-t->error);
		json_string(&o, "message", strerror(-t->error));
	}
	if (t->error_offset_known)
		json_u64(&o, "offset", t->error_offset);
	else
		json_null(&o, "offset");
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
	real_path(&o, t);
	json_u64(&o, "sector", t->sector);
	json_u64(&o, "count", t->count);
	json_bool(&o, "created", t->created);
	/* Sub-jobs whose writes ended last here: the destination holding
	 * the copy back has the most (see progress.c). */
	if (done && k->num_dests > 1 && !(k->opt.mapfile && k->write_err))
		json_u64(&o, "held_back", k->stats.held_back[i]);
	bool_or_null(&o, "write_err", (k->write_err >> i) & 1, done);
	json_string(&o, "error", dest_error_text(t, err, sizeof(err)));
	failure(&o, t, done);
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
	char host[256];
	struct json top, o, list;
	unsigned int i;
	size_t n;

	json_open(&top, NULL, NULL, f, '{', "\n  ", ",", "\n");
	json_string(&top, "version", PACKAGE_VERSION);
	/* kcopy is built with its own package's library */
	json_string(&top, "libkcopyd_version", PACKAGE_VERSION);
	json_string(&top, "state", done ? "done" : "running");
	json_u64(&top, "pid", (uint64_t)getpid());
	if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = 0;
		json_string(&top, "host", host);
	} else {
		json_null(&top, "host");
	}
	command_line(k, &top);
	utc_time(&top, "start_time", k->started_at);
	utc_time(&top, "end_time", done ? k->ended_at : 0);
	json_string(&top, "operation", k->opt.zero ? "zero" : "copy");
	if (k->opt.zero) {
		json_null(&top, "source");
	} else {
		json_open(&o, &top, "source", NULL, '{', "", ", ", "");
		json_string(&o, "path", k->src.spec.path);
		real_path(&o, &k->src);
		json_u64(&o, "sector", k->src.sector);
		json_u64(&o, "count", k->src.count);
		bool_or_null(&o, "read_err", k->read_err, done);
		image(k, &o, done);
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
	if (k->flash.path) {
		/* --bmap: the file, what it maps, and the source bytes it
		 * left out (not read: zeroed on the destinations) */
		const struct bmap *b = &k->flash.map;

		json_open(&o, &top, "bmap", NULL, '{', "", ", ", "");
		json_string(&o, "file", k->flash.path);
		json_bool(&o, "beside_image", k->flash.beside);
		json_u64(&o, "image_bytes", b->image_size);
		json_u64(&o, "block_size", b->block_size);
		json_u64(&o, "bytes_mapped", b->mapped_bytes);
		json_u64(&o, "ranges", b->num);
		json_string(&o, "checksum", b->sum_len ? b->sum_type : "none");
		u64_or_null(&o, "bytes_left_out", k->stats.bytes_unmapped,
			    done);
		json_close(&o);
	} else if (k->used.ext) {
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
	/* The whole run's, from the copy's start to the read-back's end;
	 * and each phase's that ran (the flush: from when the last data
	 * were written, as a progress tick saw) */
	if (done) {
		json_double(&top, "seconds", k->seconds, 3);
		json_open(&o, &top, "phases", NULL, '{', "", ", ", "");
		for (i = 0; i < PHASE_NUM; i++)
			if ((k->phases_run >> i) & 1)
				json_double(&o, progress_phase_name((int)i),
					    k->phase_seconds[i], 3);
		json_close(&o);
	} else {
		json_null(&top, "seconds");
		json_null(&top, "phases");
	}
	bool_or_null(&top, "verified", k->verified, done);
	/* --verify: bytes read back, summed over the destinations */
	if (k->opt.verify)
		u64_or_null(&top, "bytes_verified", k->bytes_verified, done);
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

/* ------------------------------------------------------ --hash-file */

/* t's name in a comment: paths are only in the checked lines, escaped. */
static const char *side_name(const struct kcopy *k, const struct target *t,
			     char *buf, size_t len)
{
	if (t == &k->src)
		return "the source";
	snprintf(buf, len, "destination %u", (unsigned int)(t - k->dests) + 1);
	return buf;
}

/* Is t's region, len bytes, all of the file its path names: what
 * sha256sum -c reads of it?  A stream, an NBD export, '-' are no file. */
static bool whole_file(const struct target *t, uint64_t len)
{
	struct stat st;

	if (t->sector || t->is_std || t->info.is_remote || t->info.is_stream ||
	    fstat(t->fd, &st) < 0)
		return false;
	if (S_ISBLK(st.st_mode))
		return t->info.size == len;
	return S_ISREG(st.st_mode) && (uint64_t)st.st_size == len;
}

/* t's digests as 'sha256sum --tag' writes them, "SHA256 (PATH) = HEX", one
 * line per algorithm; the path as given, a backslash and a newline in it
 * escaped with a backslash, which then also starts the line (coreutils'
 * way).  Commented out ("# ") when they are not to be checked: then
 * sha256sum -c passes over them. */
static void digest_lines(FILE *f, const struct target *t, bool commented)
{
	const char *path = t->spec.path, *p;
	unsigned int a;

	for (a = 0; a < HASH_NUM_ALGS; a++) {
		if (!t->hash.hex[a])
			continue;
		if (commented)
			fputs("# ", f);
		if (strpbrk(path, "\\\n"))
			fputc('\\', f);
		for (p = hash_name(a); *p; p++)
			fputc(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p, f);
		fputs(" (", f);
		for (p = path; *p; p++)
			if (*p == '\\')
				fputs("\\\\", f);
			else if (*p == '\n')
				fputs("\\n", f);
			else
				fputc(*p, f);
		fprintf(f, ") = %s\n", t->hash.hex[a]);
	}
}

/* One side's lines, or a comment saying why it has none. */
static void side_digests(struct kcopy *k, FILE *f, const struct target *t)
{
	uint64_t len = t->count ? t->count * KC_SECTOR_SIZE -
				  (KC_SECTOR_SIZE - k->tail_bytes) : 0;
	char name[32], err[256];
	const char *e = t == &k->src ? NULL
				     : dest_error_text(t, err, sizeof(err));

	side_name(k, t, name, sizeof(name));
	if (!t->hash.done) {
		if (t == &k->src)
			fprintf(f, "# %s: no digest: %s\n", name,
				k->hash_missing[0] ? k->hash_missing
						   : "the copy did not end");
		else
			fprintf(f, "# %s: no digest of its read-back%s%s\n",
				name, e ? ": " : "", e ? e : "");
		return;
	}
	if (t != &k->src && e) {
		fprintf(f, "# %s failed (%s): its read-back, not to be "
			"checked:\n", name, e);
		digest_lines(f, t, true);
	} else if (!whole_file(t, len)) {
		fprintf(f, "# %s: the digest of sectors %" PRIu64 "..%" PRIu64
			", not of all of its file:\n", name, t->sector,
			t->sector + t->count - 1);
		digest_lines(f, t, true);
	} else {
		digest_lines(f, t, false);
	}
}

/* The digests file of a run that is over (done), or the placeholder of
 * one that is starting: comments only, which sha256sum -c fails on. */
static void write_digests(struct kcopy *k, FILE *f, bool done)
{
	unsigned int i;

	if (!done) {
		fprintf(f, "# kcopy %s: a copy is running (pid %d); its digests "
			"come when it ends\n", PACKAGE_VERSION, (int)getpid());
		return;
	}
	fprintf(f, "# kcopy %s: the digests of the copy (--hash), as "
		"'sha256sum --tag' writes them: check them with 'sha256sum -c' "
		"(or 'cksum -c' for every algorithm) where kcopy ran\n",
		PACKAGE_VERSION);
	side_digests(k, f, &k->src);
	if (!k->opt.verify) {
		fprintf(f, "# the destinations: not read back (no --verify)\n");
		return;
	}
	for (i = 0; i < k->num_dests; i++)
		side_digests(k, f, &k->dests[i]);
}

/* -------------------------------------------- the files, written whole */

/* rp's file, whole, in memory: 0, or -errno. */
static int render(struct kcopy *k, const struct report *rp, int status,
		  bool done, char **buf, size_t *len)
{
	FILE *f = open_memstream(buf, len);

	if (!f)
		return -errno;
	if (rp == &k->hash_file)
		write_digests(k, f, done);
	else
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

/* Print a setup error as "--report 'PATH': ..." (or --hash-file's) and
 * return err. */
static int file_error(struct kcopy *k, const struct report *rp, int err,
		      const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int file_error(struct kcopy *k, const struct report *rp, int err,
		      const char *fmt, ...)
{
	char *what = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&what, fmt, ap);
	va_end(ap);
	say(&k->out, MSG_ERROR, "%s '%s': %s", rp->option, rp->arg,
	    n < 0 ? strerror(-err) : what);
	free(what);
	return err;
}

/* Is the file st one of the regions: the source, a destination, or the file
 * behind a loop device that is one?  Says so (what is "" or "standard
 * output is "); 0 or -EINVAL. */
static int check_not_a_region(struct kcopy *k, const struct report *rp,
			      const struct stat *st, const char *what)
{
	int i = target_side_of(k, NULL, st);
	char name[32];

	if (i >= 0)
		return file_error(k, rp, -EINVAL, "%sthe same file as %s",
				  what, target_side_name(i, name, sizeof(name)));
	return 0;
}

/* A temporary file beside the file, to be renamed over it: 0 or -errno. */
static int make_temp(struct report *rp)
{
	free(rp->tmp);
	return files_temp_beside(rp->path, rp->prefix, &rp->tmp, &rp->tmp_fd);
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

/* The temporary file made the file; it is gone afterwards. */
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
	bool closed = fcntl(STDOUT_FILENO, F_GETFD) < 0 && errno == EBADF;

	k->report = (struct report){ .option = "--report",
				     .noun = "the report",
				     .prefix = ".kcopy-report.",
				     .tmp_fd = -1, .stdout_closed = closed };
	k->hash_file = (struct report){ .option = "--hash-file",
					.noun = "the digests file",
					.prefix = ".kcopy-hashes.",
					.tmp_fd = -1, .stdout_closed = closed };
}

/* '-': standard output must be open, and not a region or a disk. */
static int open_stdout(struct kcopy *k, struct report *rp)
{
	struct stat st;

	if (rp->stdout_closed)
		return file_error(k, rp, -EBADF, "standard output is closed");
	if (fstat(STDOUT_FILENO, &st) < 0)
		return file_error(k, rp, -errno, "standard output: %s",
				  strerror(errno));
	if (S_ISBLK(st.st_mode))
		return file_error(k, rp, -EINVAL, "standard output is a block "
				  "device");
	return check_not_a_region(k, rp, &st, "standard output is ");
}

/* rp's FILE, checked, with a temporary file beside it; not the file of
 * other (already open). */
static int file_open(struct kcopy *k, struct report *rp,
		     const struct report *other)
{
	const char *path = rp->arg;
	char name[32];
	struct stat st;
	int i;
	int r;

	if (!path)
		return 0;
	if (!strcmp(path, "-"))
		return open_stdout(k, rp);
	if (stat(path, &st) == 0) {
		/* Never opened: a FIFO would block, a device be written. */
		if (!S_ISREG(st.st_mode))
			return file_error(k, rp, -EINVAL, "%s",
					  S_ISDIR(st.st_mode) ? "is a directory"
					  : S_ISBLK(st.st_mode) ? "is a block device"
					  : S_ISFIFO(st.st_mode) ? "is a FIFO"
					  : "is not a regular file");
		r = check_not_a_region(k, rp, &st, "");
		if (r < 0)
			return r;
		rp->mode = st.st_mode & 07777;
		rp->earlier = true;
		rp->path = realpath(path, NULL);
	} else if (errno == ENOENT) {
		rp->mode = files_new_mode();
		rp->path = files_resolve_new(path);
	} else {
		return file_error(k, rp, -errno, "%s", strerror(errno));
	}
	if (!rp->path)
		return file_error(k, rp, -errno, "cannot create it: %s",
				  strerror(errno));
	i = target_side_of(k, rp->path, NULL);
	if (i >= 0)
		return file_error(k, rp, -EINVAL, "the same file as %s",
				  target_side_name(i, name, sizeof(name)));
	if (other && other->path && storage_same_file(rp->path, other->path))
		return file_error(k, rp, -EINVAL, "the same file as %s",
				  other->noun);
	r = make_temp(rp);
	if (r < 0)
		return file_error(k, rp, r, "cannot create a file beside it: "
				  "%s", strerror(-r));
	return 0;
}

int report_open(struct kcopy *k)
{
	int r;

	k->report.arg = k->opt.report;
	k->hash_file.arg = k->opt.hash_file;
	r = file_open(k, &k->report, NULL);
	if (r == 0)
		r = file_open(k, &k->hash_file, &k->report);
	return r;
}

/* The placeholder in place of an earlier file: 0, or -errno, said. */
static int file_start(struct kcopy *k, struct report *rp)
{
	char *buf = NULL;
	size_t len;
	int r;

	if (!rp->tmp)
		return 0;	/* none, or standard output */
	if (!rp->earlier) {
		/* Nothing to take the place of: a killed run leaves no
		 * file, and no temporary file. */
		drop_temp(rp);
		return 0;
	}
	r = render(k, rp, 0, false, &buf, &len);
	if (r == 0)
		r = publish(rp, buf, len);
	free(buf);
	rp->placed = rp->renamed;
	if (r < 0)
		return file_error(k, rp, r, "cannot write: %s", strerror(-r));
	return 0;
}

int report_start(struct kcopy *k)
{
	int r = file_start(k, &k->report);

	return r < 0 ? r : file_start(k, &k->hash_file);
}

/* The file of a run that is over: 0, or -errno, said. */
static int file_write(struct kcopy *k, struct report *rp, int status)
{
	char *buf = NULL;
	size_t len;
	int r;

	if (!rp->arg)
		return 0;
	r = render(k, rp, status, true, &buf, &len);
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
			say(&k->out, MSG_ERROR, "cannot write %s '%s': %s",
			    rp->noun, rp->arg, strerror(-r));
		else
			say(&k->out, MSG_ERROR, "cannot write %s to standard "
			    "output: %s", rp->noun, strerror(-r));
	}
	return r;
}

int report_write(struct kcopy *k, int status)
{
	int r = file_write(k, &k->report, status);
	int h = file_write(k, &k->hash_file, status);

	return r < 0 ? r : h;
}

static void file_free(struct report *rp)
{
	drop_temp(rp);
	/* The placeholder of a run that did not start after all, or that
	 * could not write its file: none is better than one that says the
	 * run goes on. */
	if (rp->placed && !rp->done)
		unlink(rp->path);
	free(rp->path);
	rp->path = NULL;
}

void report_free(struct kcopy *k)
{
	file_free(&k->report);
	file_free(&k->hash_file);
}

const char *report_phases_text(const struct kcopy *k, char *buf, size_t len)
{
	size_t n = 0;
	int i;

	buf[0] = 0;
	for (i = 0; i < PHASE_NUM && n < len; i++)
		if ((k->phases_run >> i) & 1) {
			int w = snprintf(buf + n, len - n, "%s%s %.3f s",
					 n ? ", " : "", progress_phase_name(i),
					 k->phase_seconds[i]);

			if (w < 0)
				break;
			n += (size_t)w;
		}
	return buf;
}

/* The last line on stderr whenever the status is not 0, even with --quiet:
 * the full masks and what failed where. */
void report_closing_line(struct kcopy *k, int status)
{
	char err[512], *line = NULL;
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
	if (k->read_err && k->feed.error &&
	    k->read_error == k->feed.error)
		fprintf(f, "; source '%s': %s", k->src.spec.path,
			feed_error_text(&k->feed, err, sizeof(err)));
	else if (k->read_err)
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
	if (k->hash_file.failed)
		fprintf(f, "; the digests file was not written");
	fclose(f);
	say(&k->out, MSG_ERROR, "%s", line);
	free(line);
}
