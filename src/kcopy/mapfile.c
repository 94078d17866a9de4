/* mapfile.c - --mapfile FILE: the state of the copy in GNU ddrescue's
 * mapfile format, read at setup, kept as the pieces of the copy end, and
 * written atomically at checkpoints and at every stop; what a resumed run
 * has left to copy.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The map covers the source region, in bytes of the source (absolute
 * positions, as ddrescue's with --input-position): '+' copied to every
 * live destination and flushed, '-' unreadable, '?' not done.  Comment
 * lines hold what ddrescue's format cannot say (kcopy(1), RESUME):
 *
 *   # kcopy-mapfile: 1
 *   # kcopy-source: sector=S count=C size=BYTES path=PATH
 *   # kcopy-dest: N sector=S count=C path=PATH
 *   # kcopy-failed: N OP ERRNO text
 *   ...
 *   # kcopy-end
 *
 * PATH is the real path (the path as given where there is none: NBD), its
 * bytes below '!', '%' and from 0x7f written as %XX.  A copy is recognized
 * by its paths, regions and source size, not by inode numbers, which a
 * reboot (loop devices, USB disks) may change.
 *
 * Only the main thread uses the map: run.c hands it the pieces whose job's
 * callback has run.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kcopy.h"

#define MAP_VERSION 1
#define MAP_MAX_BYTES (256u << 20)	/* a mapfile larger is not one */
#define PIECE_MAX (64ull << 20)		/* bytes per job at most */

struct block {
	uint64_t pos, size;		/* bytes */
	char st;			/* '?', '+' or '-' */
};

struct failed {
	unsigned int dest;		/* 0-based */
	char *op;
	int err;			/* negative errno */
};

struct mapfile {
	mode_t mode;
	uint64_t begin, end;		/* the region, bytes */
	struct block *b;
	size_t n;
	/* What is left, at mapfile_start(): ranges to copy, in order. */
	struct block *todo;
	size_t num_todo, next_todo;
	uint64_t todo_off;		/* into todo[next_todo] */
	uint64_t piece;			/* bytes per job */
	unsigned int align;		/* bytes: the largest logical block */
	struct failed *failed;		/* from the mapfile read */
	size_t num_failed;
	double next_checkpoint;
	bool dirty;			/* changed since written */
	bool write_failed;		/* said once */
};

/* ----------------------------------------------------------- the map */

/* Set [pos, pos + size) to st, merging neighbours of one status.
 * 0 or -ENOMEM. */
static int map_set(struct mapfile *m, uint64_t pos, uint64_t size, char st)
{
	struct block *nb = malloc((m->n + 3) * sizeof(*nb));
	uint64_t end = pos + size;
	size_t i, n = 0;
	bool placed = false;

	if (!nb)
		return -ENOMEM;
#define EMIT(P, S, T) do {						\
		uint64_t p_ = (P), s_ = (S);				\
		if (s_ == 0)						\
			break;						\
		if (n && nb[n - 1].st == (T) &&				\
		    nb[n - 1].pos + nb[n - 1].size == p_)		\
			nb[n - 1].size += s_;				\
		else							\
			nb[n++] = (struct block){ p_, s_, (T) };	\
	} while (0)
	for (i = 0; i < m->n; i++) {
		struct block *b = &m->b[i];
		uint64_t be = b->pos + b->size;

		if (be <= pos || b->pos >= end) {
			if (b->pos >= end && !placed) {
				EMIT(pos, size, st);
				placed = true;
			}
			EMIT(b->pos, b->size, b->st);
			continue;
		}
		if (b->pos < pos)
			EMIT(b->pos, pos - b->pos, b->st);
		if (!placed) {
			EMIT(pos, size, st);
			placed = true;
		}
		if (be > end)
			EMIT(end, be - end, b->st);
	}
	if (!placed)
		EMIT(pos, size, st);
#undef EMIT
	free(m->b);
	m->b = nb;
	m->n = n;
	m->dirty = true;
	return 0;
}

static uint64_t map_bytes(const struct mapfile *m, char st)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < m->n; i++)
		if (m->b[i].st == st)
			sum += m->b[i].size;
	return sum;
}

/* ------------------------------------------------------------- paths */

/* The path a target is known by in the mapfile: its real path, or as
 * given where it has none (an NBD URI, a file not made yet).  Escaped. */
static char *ident_path(const struct target *t)
{
	char *real = t->is_remote ? NULL : realpath(t->spec.path, NULL);
	const unsigned char *p = (const unsigned char *)(real ? real
							     : t->spec.path);
	char *out = malloc(3 * strlen((const char *)p) + 1), *q = out;

	if (out) {
		for (; *p; p++) {
			if (*p <= ' ' || *p == '%' || *p >= 0x7f)
				q += sprintf(q, "%%%02X", *p);
			else
				*q++ = (char)*p;
		}
		*q = 0;
	}
	free(real);
	return out;
}

/* ------------------------------------------------------------ writing */

static void render(struct kcopy *k, FILE *f)
{
	struct mapfile *m = k->map;
	uint64_t cur = m->end;
	unsigned int i;
	size_t j;
	char *p;

	for (j = 0; j < m->n; j++) {
		if (m->b[j].st == '?') {
			cur = m->b[j].pos;
			break;
		}
	}
	fprintf(f, "# Mapfile. Created by kcopy %s\n", PACKAGE_VERSION);
	fprintf(f, "# kcopy-mapfile: %d\n", MAP_VERSION);
	p = ident_path(&k->src);
	fprintf(f, "# kcopy-source: sector=%" PRIu64 " count=%" PRIu64
		" size=%" PRIu64 " path=%s\n", k->src.sector, k->src.count,
		k->src.size, p ? p : "?");
	free(p);
	for (i = 0; i < k->num_dests; i++) {
		p = ident_path(&k->dests[i]);
		fprintf(f, "# kcopy-dest: %u sector=%" PRIu64 " count=%" PRIu64
			" path=%s\n", i + 1, k->dests[i].sector,
			k->dests[i].count, p ? p : "?");
		free(p);
	}
	pthread_mutex_lock(&k->lock);
	for (i = 0; i < k->num_dests; i++) {
		const struct target *t = &k->dests[i];

		if ((k->write_err >> i) & 1)
			fprintf(f, "# kcopy-failed: %u %s %d %s\n", i + 1,
				t->error_op ? t->error_op : "write",
				t->error ? -t->error : EIO,
				strerror(t->error ? -t->error : EIO));
	}
	pthread_mutex_unlock(&k->lock);
	fprintf(f, "# current_pos  current_status  current_pass\n");
	fprintf(f, "0x%08" PRIX64 "     %c               1\n", cur,
		cur < m->end ? '?' : '+');
	fprintf(f, "#      pos        size  status\n");
	for (j = 0; j < m->n; j++)
		fprintf(f, "0x%08" PRIX64 "  0x%08" PRIX64 "  %c\n",
			m->b[j].pos, m->b[j].size, m->b[j].st);
	fprintf(f, "# kcopy-end\n");
}

/* Write the mapfile now, atomically.  0 or -errno, said once. */
static int map_write(struct kcopy *k)
{
	struct mapfile *m = k->map;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int r = -ENOMEM;

	if (f) {
		render(k, f);
		r = ferror(f) ? -ENOMEM : 0;
		if (fclose(f) && r == 0)
			r = -ENOMEM;
	}
	if (r == 0)
		r = replace_file(k->opt.mapfile, ".kcopy-map.", buf, len,
				 m->mode);
	free(buf);
	if (r == 0) {
		m->dirty = false;
	} else if (!m->write_failed) {
		m->write_failed = true;
		say(&k->out, MSG_ERROR, "cannot write the mapfile '%s': %s",
		    k->opt.mapfile, strerror(-r));
	}
	m->next_checkpoint = now_seconds() + k->opt.mapfile_interval;
	return r;
}

/* ------------------------------------------------------------ reading */

struct parsed {
	bool kcopy, ended;
	uint64_t src_sector, src_count, src_size;
	char *src_path;
	unsigned int num_dests;
	struct { uint64_t sector, count; char *path; } dests[KCOPYD_MAX_DESTS];
	struct block *b;
	size_t n;
};

static void parsed_free(struct parsed *ps)
{
	unsigned int i;

	free(ps->src_path);
	for (i = 0; i < ps->num_dests; i++)
		free(ps->dests[i].path);
	free(ps->b);
}

/* A "# kcopy-..." comment into ps; m for kcopy-failed.  0 or -EINVAL. */
static int parse_comment(struct mapfile *m, struct parsed *ps,
			 const char *line)
{
	char path[4096 + 1], op[32], text[256];
	unsigned int n;
	int v, err;
	struct failed *f;

	if (sscanf(line, "# kcopy-mapfile: %d", &v) == 1) {
		ps->kcopy = true;
		return v == MAP_VERSION ? 0 : -EINVAL;
	}
	if (!strcmp(line, "# kcopy-end")) {
		ps->ended = true;
		return 0;
	}
	if (ps->ended)
		return -EINVAL;
	if (sscanf(line, "# kcopy-source: sector=%" SCNu64 " count=%" SCNu64
		   " size=%" SCNu64 " path=%4096s", &ps->src_sector,
		   &ps->src_count, &ps->src_size, path) == 4) {
		free(ps->src_path);
		ps->src_path = strdup(path);
		return ps->src_path ? 0 : -ENOMEM;
	}
	if (sscanf(line, "# kcopy-dest: %u", &n) == 1) {
		if (n != ps->num_dests + 1 || n > KCOPYD_MAX_DESTS)
			return -EINVAL;
		if (sscanf(line, "# kcopy-dest: %u sector=%" SCNu64 " count=%"
			   SCNu64 " path=%4096s", &n, &ps->dests[n - 1].sector,
			   &ps->dests[n - 1].count, path) != 4)
			return -EINVAL;
		ps->dests[n - 1].path = strdup(path);
		if (!ps->dests[n - 1].path)
			return -ENOMEM;
		ps->num_dests = n;
		return 0;
	}
	if (sscanf(line, "# kcopy-failed: %u %31s %d %255[^\n]", &n, op, &err,
		   text) >= 3) {
		if (n < 1 || n > ps->num_dests || err <= 0)
			return -EINVAL;
		f = realloc(m->failed, (m->num_failed + 1) * sizeof(*f));
		if (!f)
			return -ENOMEM;
		m->failed = f;
		f = &m->failed[m->num_failed];
		f->dest = n - 1;
		f->err = -err;
		f->op = strdup(op);
		if (!f->op)
			return -ENOMEM;
		m->num_failed++;
		return 0;
	}
	return line[1] == ' ' && !strncmp(line + 2, "kcopy-", 6) ? -EINVAL : 0;
}

/* One line of blocks: "POS SIZE STATUS", numbers in C's syntax (ddrescue
 * writes hex).  The status line has a status of its own, and a pass. */
static int parse_numbers(const char *line, uint64_t *a, uint64_t *b,
			 char *st, bool status_line)
{
	char *end;

	errno = 0;
	*a = strtoull(line, &end, 0);
	if (errno || end == line || (*end != ' ' && *end != '\t'))
		return -EINVAL;
	line = end;
	while (*line == ' ' || *line == '\t')
		line++;
	if (status_line) {
		if (!strchr("?*/-FG+", *line) || !*line)
			return -EINVAL;
		*st = *line;
		*b = 0;
		return 0;
	}
	*b = strtoull(line, &end, 0);
	if (errno || end == line || (*end != ' ' && *end != '\t'))
		return -EINVAL;
	line = end;
	while (*line == ' ' || *line == '\t')
		line++;
	if (!*line || !strchr("?*/-+", *line))
		return -EINVAL;
	*st = *line++;
	while (*line == ' ' || *line == '\t' || *line == '\r')
		line++;
	return *line ? -EINVAL : 0;
}

/* The whole file into ps.  0; -EINVAL with *line_no set (0: the end) for
 * what is not a mapfile or was cut short; -errno. */
static int parse(struct mapfile *m, char *text, size_t len,
		 struct parsed *ps, unsigned int *line_no)
{
	char *line = text, *nl;
	bool status_seen = false;
	uint64_t pos, size;
	char st;
	int r;

	*line_no = 0;
	if (len == 0 || text[len - 1] != '\n' || memchr(text, 0, len))
		return -EINVAL;
	for (; line < text + len; line = nl + 1) {
		nl = strchr(line, '\n');
		*nl = 0;
		++*line_no;
		if (line[0] == '#') {
			r = parse_comment(m, ps, line);
			if (r < 0)
				return r;
			continue;
		}
		if (!line[strspn(line, " \t\r")])
			continue;
		if (ps->ended)
			return -EINVAL;
		r = parse_numbers(line, &pos, &size, &st, !status_seen);
		if (r < 0)
			return r;
		if (!status_seen) {
			status_seen = true;
			continue;
		}
		if (size == 0 || pos + size < pos ||
		    (ps->n && ps->b[ps->n - 1].pos + ps->b[ps->n - 1].size
			      != pos))
			return -EINVAL;
		if (!(ps->n & (ps->n - 1))) {
			struct block *nb = realloc(ps->b, (ps->n ? 2 * ps->n : 1)
						   * sizeof(*nb));

			if (!nb)
				return -ENOMEM;
			ps->b = nb;
		}
		ps->b[ps->n++] = (struct block){ pos, size, st };
	}
	*line_no = 0;
	if (!status_seen || (ps->kcopy && (!ps->ended || !ps->src_path)))
		return -EINVAL;
	return 0;
}

/* Is the parsed mapfile this copy's?  NULL, or what differs. */
static const char *mismatch(struct kcopy *k, const struct parsed *ps,
			    char *why, size_t len)
{
	char *p = ident_path(&k->src);
	unsigned int i;
	bool same;

	same = p && !strcmp(p, ps->src_path);
	free(p);
	if (!same || ps->src_sector != k->src.sector ||
	    ps->src_count != k->src.count || ps->src_size != k->src.size) {
		snprintf(why, len, "it is of another source (%s, sector %"
			 PRIu64 ", %" PRIu64 " sectors, %" PRIu64 " bytes)",
			 ps->src_path, ps->src_sector, ps->src_count,
			 ps->src_size);
		return why;
	}
	if (ps->num_dests != k->num_dests) {
		snprintf(why, len, "it is of a copy to %u destination(s), not "
			 "%u", ps->num_dests, k->num_dests);
		return why;
	}
	for (i = 0; i < k->num_dests; i++) {
		p = ident_path(&k->dests[i]);
		same = p && !strcmp(p, ps->dests[i].path);
		free(p);
		if (!same || ps->dests[i].sector != k->dests[i].sector ||
		    ps->dests[i].count != k->dests[i].count) {
			snprintf(why, len, "its destination %u is another "
				 "(%s, sector %" PRIu64 ", %" PRIu64
				 " sectors)", i + 1, ps->dests[i].path,
				 ps->dests[i].sector, ps->dests[i].count);
			return why;
		}
	}
	return NULL;
}

/* The blocks read into the map, within the region: '*' and '/' (not
 * trimmed, not scraped: ddrescue found bad sectors there) count as '-'. */
static int take_blocks(struct mapfile *m, const struct parsed *ps)
{
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && i < ps->n; i++) {
		uint64_t s = ps->b[i].pos, e = s + ps->b[i].size;
		char st = ps->b[i].st;

		if (s < m->begin)
			s = m->begin;
		if (e > m->end)
			e = m->end;
		if (s >= e || st == '?')
			continue;
		r = map_set(m, s, e - s, st == '+' ? '+' : '-');
	}
	return r;
}

/* The failed destinations the mapfile lists are failed again, with their
 * errors; unless --retry-failed: then what was copied while they were
 * failed is not on them, and everything is copied again. */
static int take_failed(struct kcopy *k)
{
	struct mapfile *m = k->map;
	size_t i;

	if (!m->num_failed)
		return 0;
	if (k->opt.retry_failed) {
		say(&k->out, MSG_NOTE, "--retry-failed: copying the whole "
		    "region again, to every destination");
		return map_set(m, m->begin, m->end - m->begin, '?');
	}
	for (i = 0; i < m->num_failed; i++) {
		struct target *t = &k->dests[m->failed[i].dest];

		k->write_err |= 1u << m->failed[i].dest;
		t->error = m->failed[i].err;
		t->error_op = m->failed[i].op;
		say(&k->out, MSG_NOTE, "destination %u '%s' failed in an "
		    "earlier run (%s: %s): not written (--retry-failed to "
		    "write it again)", m->failed[i].dest + 1, t->spec.path,
		    t->error_op, strerror(-t->error));
	}
	return 0;
}

static int read_all(const char *path, char **text, size_t *len)
{
	FILE *f = fopen(path, "re");
	size_t cap = 1 << 16, n;
	char *buf = NULL, *nb;
	int r = 0;

	*text = NULL;
	*len = 0;
	if (!f)
		return -errno;
	for (;;) {
		nb = realloc(buf, cap + 1);
		if (!nb) {
			r = -ENOMEM;
			break;
		}
		buf = nb;
		n = fread(buf + *len, 1, cap - *len, f);
		*len += n;
		if (*len < cap) {
			if (ferror(f))
				r = -EIO;
			break;
		}
		if (cap >= MAP_MAX_BYTES) {
			r = -EFBIG;
			break;
		}
		cap *= 2;
	}
	fclose(f);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[*len] = 0;
	*text = buf;
	return 0;
}

/* The mapfile that exists into the map.  0, or -errno after saying why. */
static int load(struct kcopy *k)
{
	struct mapfile *m = k->map;
	struct parsed ps = { 0 };
	const char *path = k->opt.mapfile;
	char why[512], *text;
	const char *what = NULL;
	unsigned int line_no;
	size_t len;
	int r = read_all(path, &text, &len);

	if (r < 0) {
		say(&k->out, MSG_ERROR, "--mapfile '%s': cannot read it: %s",
		    path, strerror(-r));
		return r;
	}
	r = parse(m, text, len, &ps, &line_no);
	free(text);
	if (r == -EINVAL && line_no)
		snprintf(why, sizeof(why), "line %u is not a mapfile's",
			 line_no);
	else if (r == -EINVAL)
		snprintf(why, sizeof(why), "not a mapfile, or cut short");
	else if (r < 0)
		snprintf(why, sizeof(why), "%s", strerror(-r));
	else if (ps.kcopy)
		what = mismatch(k, &ps, why, sizeof(why));
	if (r == 0 && ps.kcopy && !what &&
	    (!ps.n || ps.b[0].pos != m->begin ||
	     ps.b[ps.n - 1].pos + ps.b[ps.n - 1].size != m->end)) {
		snprintf(why, sizeof(why), "its blocks do not cover the region "
			 "(cut short?)");
		what = why;
	}
	if ((r < 0 && r != -ENOMEM) || what) {
		if (!k->opt.force) {
			say(&k->out, MSG_ERROR, "--mapfile '%s': %s; refusing "
			    "to resume from it (--force to %s)", path,
			    r < 0 ? why : what, r < 0 ? "start over"
						      : "use it all the same");
			parsed_free(&ps);
			return -EINVAL;
		}
		say(&k->out, MSG_NOTE, "--mapfile '%s': %s; --force: %s",
		    path, r < 0 ? why : what, r < 0 ? "starting over"
						    : "using it all the same");
		if (r < 0) {
			parsed_free(&ps);
			return 0;
		}
	} else if (r < 0) {
		say(&k->out, MSG_ERROR, "--mapfile '%s': %s", path, why);
		parsed_free(&ps);
		return r;
	}
	if (!ps.kcopy)
		say(&k->out, MSG_NOTE, "--mapfile '%s' has no kcopy lines (GNU "
		    "ddrescue's?): its rescued areas are taken as already on "
		    "every destination", path);
	r = take_blocks(m, &ps);
	parsed_free(&ps);
	if (r == 0)
		r = take_failed(k);
	if (r < 0)
		say(&k->out, MSG_ERROR, "--mapfile '%s': %s", path,
		    strerror(-r));
	return r;
}

/* ----------------------------------------------------------- the run */

int mapfile_open(struct kcopy *k)
{
	struct mapfile *m;
	struct stat st;
	mode_t mask;
	unsigned int i;

	if (!k->opt.mapfile)
		return 0;
	if (k->src.is_stream) {
		say(&k->out, MSG_ERROR, "--mapfile: the source '%s' is a "
		    "stream: it cannot be resumed", k->src.spec.path);
		return -EINVAL;
	}
	for (i = 0; i < k->num_dests; i++) {
		if (k->dests[i].is_stream) {
			say(&k->out, MSG_ERROR, "--mapfile: destination %u "
			    "'%s' is a stream: it cannot be resumed", i + 1,
			    k->dests[i].spec.path);
			return -EINVAL;
		}
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		say(&k->out, MSG_ERROR, "--mapfile: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	k->map = m;
	m->begin = k->src.sector * KC_SECTOR_SIZE;
	m->end = m->begin + k->src.count * KC_SECTOR_SIZE;
	m->align = k->src.lbs ? k->src.lbs : KC_SECTOR_SIZE;
	for (i = 0; i < k->num_dests; i++)
		if (k->dests[i].lbs > m->align)
			m->align = k->dests[i].lbs;
	mask = umask(0);
	umask(mask);
	m->mode = 0666 & ~mask;
	if (map_set(m, m->begin, m->end - m->begin, '?') < 0) {
		say(&k->out, MSG_ERROR, "--mapfile: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	if (stat(k->opt.mapfile, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		say(&k->out, MSG_ERROR, "--mapfile '%s': %s", k->opt.mapfile,
		    strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		say(&k->out, MSG_ERROR, "--mapfile '%s': not a regular file",
		    k->opt.mapfile);
		return -EINVAL;
	}
	m->mode = st.st_mode & 07777;
	return load(k);
}

/* A range to copy into the to-do list, widened to whole logical blocks of
 * every side (copying again a little of what is done does no harm). */
static int todo_add(struct mapfile *m, uint64_t pos, uint64_t size)
{
	uint64_t s = pos - (pos - m->begin) % m->align, e = pos + size;
	struct block *nb;

	if ((e - m->begin) % m->align)
		e += m->align - (e - m->begin) % m->align;
	if (e > m->end)
		e = m->end;
	if (m->num_todo) {
		struct block *last = &m->todo[m->num_todo - 1];

		if (last->pos + last->size >= s && last->pos <= s) {
			if (e > last->pos + last->size)
				last->size = e - last->pos;
			return 0;
		}
	}
	nb = realloc(m->todo, (m->num_todo + 1) * sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	m->todo = nb;
	m->todo[m->num_todo++] = (struct block){ s, e - s, '?' };
	return 0;
}

int mapfile_start(struct kcopy *k)
{
	struct mapfile *m = k->map;
	uint64_t piece = PIECE_MAX, chunk = k->opt.chunk;
	size_t i;
	int r = 0;

	if (!m)
		return 0;
	/* Not done first, then (unless --skip-bad) the unreadable areas
	 * once more: a read error there does not keep the rest waiting. */
	for (i = 0; r == 0 && i < m->n; i++)
		if (m->b[i].st == '?')
			r = todo_add(m, m->b[i].pos, m->b[i].size);
	for (i = 0; r == 0 && !k->opt.skip_bad && i < m->n; i++)
		if (m->b[i].st == '-')
			r = todo_add(m, m->b[i].pos, m->b[i].size);
	if (r < 0) {
		say(&k->out, MSG_ERROR, "--mapfile: %s", strerror(-r));
		return r;
	}
	/* Jobs small enough that, at --rate, one ends within each
	 * checkpoint interval even while KCOPY_MAP_IN_FLIGHT share the rate. */
	if (k->opt.rate && k->opt.mapfile_interval > 0) {
		double fit = (double)k->opt.rate * k->opt.mapfile_interval /
			     KCOPY_MAP_IN_FLIGHT;

		if (fit < (double)piece)
			piece = (uint64_t)fit;
	}
	if (piece < chunk)
		piece = chunk;
	piece -= piece % chunk;
	if (piece % m->align)
		piece += m->align - piece % m->align;
	m->piece = piece;
	if (m->num_todo == 0)
		say(&k->out, MSG_NOTE, "--mapfile '%s': nothing left to copy",
		    k->opt.mapfile);
	else if (map_bytes(m, '+'))
		say(&k->out, MSG_NOTE, "--mapfile '%s': resuming: %" PRIu64
		    " of %" PRIu64 " bytes done", k->opt.mapfile,
		    map_bytes(m, '+'), m->end - m->begin);
	/* The mapfile exists from the start: a crash before the first
	 * checkpoint leaves one that names this copy. */
	return map_write(k) < 0 ? -EIO : 0;
}

bool mapfile_next(struct kcopy *k, uint64_t *sector, uint64_t *count)
{
	struct mapfile *m = k->map;
	struct block *t;
	uint64_t n;

	if (!m || m->next_todo >= m->num_todo)
		return false;
	t = &m->todo[m->next_todo];
	n = t->size - m->todo_off;
	if (n > m->piece)
		n = m->piece;
	*sector = (t->pos + m->todo_off) / KC_SECTOR_SIZE;
	*count = n / KC_SECTOR_SIZE;
	m->todo_off += n;
	if (m->todo_off == t->size) {
		m->next_todo++;
		m->todo_off = 0;
	}
	return true;
}

void mapfile_done(struct kcopy *k, uint64_t sector, uint64_t count)
{
	struct mapfile *m = k->map;
	uint64_t s = sector * KC_SECTOR_SIZE, e = s + count * KC_SECTOR_SIZE;
	struct io_region *bad = NULL;
	size_t nbad = 0, i;
	int r = map_set(m, s, e - s, '+');

	if (r == 0 && k->opt.ignore_errors)
		r = kcopyd_get_bad_ranges(k->kc, &bad, &nbad);
	for (i = 0; r == 0 && i < nbad; i++) {
		uint64_t bs = bad[i].sector * KC_SECTOR_SIZE;
		uint64_t be = bs + bad[i].count * KC_SECTOR_SIZE;

		if (bs < s)
			bs = s;
		if (be > e)
			be = e;
		if (bs < be)
			r = map_set(m, bs, be - bs, '-');
	}
	free(bad);
	if (r < 0) {
		/* No memory for the map: what it says is still true, it
		 * only says less than it could. */
		say(&k->out, MSG_ERROR, "--mapfile: %s", strerror(-r));
	}
}

void mapfile_checkpoint(struct kcopy *k, bool now)
{
	struct mapfile *m = k->map;

	if (m && m->dirty && (now || now_seconds() >= m->next_checkpoint))
		map_write(k);
}

int mapfile_finish(struct kcopy *k)
{
	struct mapfile *m = k->map;
	struct io_region *bad;
	size_t n = 0, i;
	int r;

	if (!m)
		return 0;
	r = map_write(k);
	/* The whole copy, not this run: what is done, what is unreadable. */
	k->bytes_done = map_bytes(m, '+') + map_bytes(m, '-');
	for (i = 0; i < m->n; i++)
		n += m->b[i].st == '-';
	bad = calloc(n ? n : 1, sizeof(*bad));
	if (!bad)
		return r;
	for (i = 0, n = 0; i < m->n; i++) {
		if (m->b[i].st != '-')
			continue;
		bad[n++] = (struct io_region){ k->src.fd,
					       m->b[i].pos / KC_SECTOR_SIZE,
					       m->b[i].size / KC_SECTOR_SIZE };
	}
	free(k->bad);
	k->bad = bad;
	k->num_bad = n;
	if (n)
		k->read_err = 1;
	return r;
}

void mapfile_free(struct kcopy *k)
{
	struct mapfile *m = k->map;
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->num_failed; i++)
		free(m->failed[i].op);
	free(m->failed);
	free(m->b);
	free(m->todo);
	free(m);
	k->map = NULL;
}
