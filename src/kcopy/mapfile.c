/* mapfile.c - --mapfile FILE: the state of the copy in GNU ddrescue's
 * mapfile format, read at setup, kept as the pieces of the copy end, and
 * written atomically at checkpoints and at every stop; what a resumed run
 * has left to copy.  Whether a mapfile that exists may be resumed from is
 * resume.c's to say.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The map covers the source region, in bytes of the source: '+' copied to
 * every live destination and flushed, '-' unreadable, '?' not done.  The
 * text (mapfmt.c) also records the sides of the copy (resume.c), by which
 * a copy is recognized and a resumed run finds a side that is no longer
 * what it was.
 *
 * The map is a rangemap: every update is O(log n) in the number of its
 * blocks, and the bad ranges are taken from the library as they are found
 * (kcopyd_take_bad_ranges), not listed whole at every piece.
 *
 * Only the main thread uses the map: run.c hands it the pieces whose job's
 * callback has run.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "kcopy.h"
#include "mapfmt.h"
#include "rangemap.h"

#define MAP_MAX_BYTES (1u << 30)	/* a mapfile larger is not one */
#define PIECE_MAX (64ull << 20)		/* bytes per job at most */

struct mapfile {
	mode_t mode;
	uint64_t begin, end;		/* the region, bytes */
	struct rangemap map;		/* the copy's state */
	/* The unreadable ranges this run found, '-' in ' ': a piece's are
	 * taken from the library as soon as any piece ends, and become the
	 * map's when their own piece has. */
	struct rangemap bad;
	/* What is left, at mapfile_start(): ranges to copy, in order. */
	struct rangemap_block *todo;
	size_t num_todo, cap_todo, next_todo;
	uint64_t todo_off;		/* into todo[next_todo] */
	uint64_t piece;			/* bytes per job at most */
	unsigned int align;		/* bytes: the largest logical block */
	double next_checkpoint;
	bool exists;			/* FILE was there at mapfile_open() */
	bool dirty;			/* changed since written */
	bool write_failed;		/* said once */
	/* An update of the map failed (no memory, the bad range record
	 * incomplete): no piece is marked done from then on, and the run
	 * fails.  Said once. */
	bool lost;
};

/* Say that there is no memory for the map: -ENOMEM. */
static int no_memory(struct kcopy *k)
{
	say(&k->out, MSG_ERROR, "--mapfile: %s", strerror(ENOMEM));
	return -ENOMEM;
}

/* ------------------------------------------------------------ writing */

/* The header of the mapfile this run writes: its sides and failures. */
static int header(struct kcopy *k, struct mapfmt *f)
{
	unsigned int i;
	int r;

	f->kcopy = true;
	f->version = MAPFMT_VERSION;
	r = resume_side_record(&k->src, &f->src);
	for (i = 0; r == 0 && i < k->num_dests; i++) {
		r = resume_side_record(&k->dests[i], &f->dests[i]);
		f->num_dests = i + 1;
	}
	if (r < 0)
		return r;
	pthread_mutex_lock(&k->lock);
	for (i = 0; i < k->num_dests; i++) {
		const struct target *t = &k->dests[i];
		struct mapfmt_failed *x = &f->failed[f->num_failed];

		if (!((k->write_err >> i) & 1))
			continue;
		x->dest = i;
		snprintf(x->op, sizeof(x->op), "%s",
			 t->error_op ? t->error_op : "write");
		x->err = t->error ? t->error : -EIO;
		f->num_failed++;
	}
	pthread_mutex_unlock(&k->lock);
	return 0;
}

/* Write the mapfile now, atomically.  0 or -errno, said once. */
static int map_write(struct kcopy *k)
{
	struct mapfile *m = k->map;
	struct mapfmt f = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *out = NULL;
	int r = header(k, &f);

	if (r == 0)
		out = open_memstream(&buf, &len);
	if (r == 0 && !out)
		r = -ENOMEM;
	if (out) {
		mapfmt_write(out, "kcopy " PACKAGE_VERSION, &f, &m->map);
		r = ferror(out) ? -ENOMEM : 0;
		if (fclose(out) && r == 0)
			r = -ENOMEM;
	}
	mapfmt_free(&f);
	if (r == 0)
		r = files_replace(k->opt.mapfile, ".kcopy-map.", buf, len,
				 m->mode);
	free(buf);
	if (r == 0) {
		m->dirty = false;
	} else if (!m->write_failed) {
		m->write_failed = true;
		say(&k->out, MSG_ERROR, "cannot write the mapfile '%s': %s",
		    k->opt.mapfile, strerror(-r));
	}
	m->next_checkpoint = clock_now() + k->opt.mapfile_interval;
	return r;
}

/* ------------------------------------------------------------ reading */

/* ------------------------------------------------------------ reading */

/* The blocks read into the map, within the region: '*' and '/' (not
 * trimmed, not scraped: ddrescue found bad sectors there) count as '-'. */
static int take_blocks(struct mapfile *m, struct mapfmt *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (f->b[i].st != '?')
			f->b[i].st = f->b[i].st == '+' ? '+' : '-';
	return rangemap_load(&m->map, f->b, f->n, '?');
}

/* The mapfile that exists into the map, as far as resume.c says it may
 * be resumed from.  0, or -errno after saying why. */
static int load(struct kcopy *k)
{
	struct mapfile *m = k->map;
	struct mapfmt f = { 0 };
	const char *path = k->opt.mapfile;
	bool fresh[KCOPYD_MAX_DESTS] = { false };
	char *text;
	size_t len;
	int r = files_read_all(path, MAP_MAX_BYTES, &text, &len), how;

	if (r < 0) {
		say(&k->out, MSG_ERROR, "--mapfile '%s': cannot read it: %s",
		    path, strerror(-r));
		return r;
	}
	how = resume_check(k, text, len, m->begin, m->end, &f, fresh);
	free(text);
	if (how < 0 || how == RESUME_NOTHING) {
		mapfmt_free(&f);
		return how < 0 ? how : 0;
	}
	r = how == RESUME_BLOCKS ? take_blocks(m, &f) : 0;
	if (r == 0 && resume_take_failed(k, &f, fresh))
		r = rangemap_set(&m->map, m->begin, m->end - m->begin, '?');
	mapfmt_free(&f);
	if (r < 0)
		say(&k->out, MSG_ERROR, "--mapfile '%s': %s", path,
		    strerror(-r));
	return r;
}

/* ----------------------------------------------------------- the run */

/* FILE must not land on data: not the source, a destination (whatever the
 * spelling: by identity, through loop devices), nor the report or the
 * digests file; --force does not change that.  Nor anything but a regular
 * file.  0; 1 if it does not exist; -errno after a setup error. */
static int check_path(struct kcopy *k, struct stat *st)
{
	const char *path = k->opt.mapfile;
	bool exists = stat(path, st) == 0;
	char name[32];
	int side;

	if (!exists && errno != ENOENT) {
		int err = -errno;

		say(&k->out, MSG_ERROR, "--mapfile '%s': %s", path,
		    strerror(-err));
		return err;
	}
	side = target_side_of(k, path, exists ? st : NULL);
	if (side >= 0) {
		say(&k->out, MSG_ERROR, "--mapfile '%s': the same file as %s",
		    path, target_side_name(side, name, sizeof(name)));
		return -EINVAL;
	}
	if (k->report.path && storage_same_file(path, k->report.path)) {
		say(&k->out, MSG_ERROR, "--mapfile '%s': the same file as the "
		    "report", path);
		return -EINVAL;
	}
	if (k->hash_file.path && storage_same_file(path, k->hash_file.path)) {
		say(&k->out, MSG_ERROR, "--mapfile '%s': the same file as "
		    "--hash-file's", path);
		return -EINVAL;
	}
	if (exists && !S_ISREG(st->st_mode)) {
		say(&k->out, MSG_ERROR, "--mapfile '%s': not a regular file",
		    path);
		return -EINVAL;
	}
	return exists ? 0 : 1;
}

int mapfile_open(struct kcopy *k)
{
	struct mapfile *m;
	struct stat st;
	unsigned int i;
	int r;

	if (!k->opt.mapfile)
		return 0;
	if (k->src.info.is_stream) {
		say(&k->out, MSG_ERROR, "--mapfile: the source '%s' is a "
		    "stream: it cannot be resumed", k->src.spec.path);
		return -EINVAL;
	}
	for (i = 0; i < k->num_dests; i++) {
		if (k->dests[i].info.is_stream) {
			say(&k->out, MSG_ERROR, "--mapfile: destination %u "
			    "'%s' is a stream: it cannot be resumed", i + 1,
			    k->dests[i].spec.path);
			return -EINVAL;
		}
	}
	r = check_path(k, &st);
	if (r < 0)
		return r;
	m = calloc(1, sizeof(*m));
	if (!m)
		return no_memory(k);
	k->map = m;
	m->begin = k->src.sector * KC_SECTOR_SIZE;
	m->end = m->begin + k->src.count * KC_SECTOR_SIZE;
	m->align = k->src.info.logical_block_size;
	if (!m->align)
		m->align = KC_SECTOR_SIZE;
	for (i = 0; i < k->num_dests; i++)
		if (k->dests[i].info.logical_block_size > m->align)
			m->align = k->dests[i].info.logical_block_size;
	m->mode = files_new_mode();
	if (rangemap_init(&m->map, m->begin, m->end, '?') < 0 ||
	    rangemap_init(&m->bad, m->begin, m->end, ' ') < 0)
		return no_memory(k);
	if (r == 1)
		return 0;	/* a new mapfile */
	m->exists = true;
	m->mode = st.st_mode & 07777;
	return load(k);
}

bool mapfile_state(const struct kcopy *k, uint64_t *done, uint64_t *bad,
		   uint64_t *left, bool *exists)
{
	const struct mapfile *m = k->map;

	if (!m)
		return false;
	*done = rangemap_bytes(&m->map, '+');
	*bad = rangemap_bytes(&m->map, '-');
	*left = rangemap_bytes(&m->map, '?');
	*exists = m->exists;
	return true;
}

/* A range to copy into the to-do list, widened to whole logical blocks of
 * every side (copying again a little of what is done does no harm). */
static int todo_add(struct mapfile *m, uint64_t pos, uint64_t size)
{
	uint64_t s = pos - (pos - m->begin) % m->align, e = pos + size;

	if ((e - m->begin) % m->align)
		e += m->align - (e - m->begin) % m->align;
	if (e > m->end)
		e = m->end;
	if (m->num_todo) {
		struct rangemap_block *last = &m->todo[m->num_todo - 1];

		if (last->pos + last->size >= s && last->pos <= s) {
			if (e > last->pos + last->size)
				last->size = e - last->pos;
			return 0;
		}
	}
	return rangemap_list_add(&m->todo, &m->num_todo, &m->cap_todo,
				 &(struct rangemap_block){ s, e - s, '?' });
}

struct todo_walk {
	struct mapfile *m;
	char st;
};

static int todo_of(uint64_t pos, uint64_t size, char st, void *ctx)
{
	struct todo_walk *w = ctx;

	return st == w->st ? todo_add(w->m, pos, size) : 0;
}

int mapfile_start(struct kcopy *k)
{
	struct mapfile *m = k->map;
	uint64_t piece = PIECE_MAX, chunk = k->opt.chunk;
	struct todo_walk w = { m, '?' };
	int r;

	if (!m)
		return 0;
	/* With --verify, pieces are whole sub-jobs of the region (its
	 * checksums are the copy's sub-jobs, from the region's start: see
	 * verify.c): an area to copy widens to them, copying again a little
	 * of what is done. */
	if (k->opt.verify && k->verify.chunk_sectors) {
		unsigned int grid = (unsigned int)(k->verify.chunk_sectors *
						   KC_SECTOR_SIZE);

		while (grid % m->align)
			grid += (unsigned int)(k->verify.chunk_sectors *
					       KC_SECTOR_SIZE);
		m->align = grid;
	}
	/* Not done first, then (unless --skip-bad) the unreadable areas
	 * once more: a read error there does not keep the rest waiting. */
	r = rangemap_walk(&m->map, m->begin, m->end, todo_of, &w);
	w.st = '-';
	if (r == 0 && !k->opt.skip_bad)
		r = rangemap_walk(&m->map, m->begin, m->end, todo_of, &w);
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
	else if (rangemap_bytes(&m->map, '+'))
		say(&k->out, MSG_NOTE, "--mapfile '%s': resuming: %" PRIu64
		    " of %" PRIu64 " bytes done", k->opt.mapfile,
		    rangemap_bytes(&m->map, '+'), m->end - m->begin);
	/* The mapfile exists from the start: a crash before the first
	 * checkpoint leaves one that names this copy. */
	return map_write(k) < 0 ? -EIO : 0;
}

bool mapfile_next(struct kcopy *k, uint64_t *sector, uint64_t *count)
{
	struct mapfile *m = k->map;
	struct rangemap_block *t;
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

/* A piece's part [pos, pos + size) as the bad map says: '-' where this
 * run found it unreadable, '+' elsewhere. */
struct mark {
	struct mapfile *m;
	uint64_t s, e;			/* the piece */
};

static int mark_piece(uint64_t pos, uint64_t size, char st, void *ctx)
{
	struct mark *w = ctx;
	uint64_t s = pos > w->s ? pos : w->s;
	uint64_t e = pos + size < w->e ? pos + size : w->e;

	return rangemap_set(&w->m->map, s, e - s, st == '-' ? '-' : '+');
}

/* This run's unreadable ranges that the library found since the last
 * call into the bad map.  0 or -errno. */
static int take_bad(struct kcopy *k)
{
	struct mapfile *m = k->map;
	struct io_region *bad = NULL;
	size_t n = 0, i;
	int r = kcopyd_take_bad_ranges(k->kc, &bad, &n);

	for (i = 0; r == 0 && i < n; i++)
		r = rangemap_set(&m->bad, bad[i].sector * KC_SECTOR_SIZE,
				 bad[i].count * KC_SECTOR_SIZE, '-');
	free(bad);
	return r;
}

/* Mark [s, e) of a piece that is over: '-' where this run found it
 * unreadable, '+' elsewhere.  0 or -errno. */
static int mark_range(struct mapfile *m, uint64_t s, uint64_t e)
{
	struct mark w = { m, s, e };

	return rangemap_walk(&m->bad, s, e, mark_piece, &w);
}

/* Under a map (--used, --domain-mapfile), only its data extents within
 * the piece [s, e) were copied: the rest stays as the mapfile has it. */
static int mark_mapped(struct kcopy *k, uint64_t s, uint64_t e)
{
	const struct kcopyd_extent *x = k->used.ext;
	size_t lo = 0, hi = k->used.num;
	int r = 0;

	while (lo < hi) {	/* the first extent ending after s */
		size_t mid = lo + (hi - lo) / 2;

		if ((x[mid].sector + x[mid].count) * KC_SECTOR_SIZE <= s)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; r == 0 && lo < k->used.num &&
	       x[lo].sector * KC_SECTOR_SIZE < e; lo++) {
		uint64_t a = x[lo].sector * KC_SECTOR_SIZE;
		uint64_t b = (x[lo].sector + x[lo].count) * KC_SECTOR_SIZE;

		if (x[lo].kind != KCOPYD_EXTENT_DATA)
			continue;
		r = mark_range(k->map, a > s ? a : s, b < e ? b : e);
	}
	return r;
}

void mapfile_done(struct kcopy *k, uint64_t sector, uint64_t count)
{
	struct mapfile *m = k->map;
	uint64_t s = sector * KC_SECTOR_SIZE, e = (sector + count) *
						  KC_SECTOR_SIZE;
	int r;

	if (m->lost)
		return;
	/* The bad ranges first: a piece is marked only from a complete
	 * record, '+' never over a sector this run zero-filled. */
	r = k->opt.ignore_errors ? take_bad(k) : 0;
	if (r == 0)
		r = k->used.ext ? mark_mapped(k, s, e) : mark_range(m, s, e);
	m->dirty = true;
	if (r < 0) {
		/* What the map says is still true (it says less than it
		 * could); from now on it is not added to. */
		m->lost = true;
		say(&k->out, MSG_ERROR, "--mapfile: cannot record what was "
		    "copied: %s; no more of the copy is marked done",
		    strerror(-r));
	}
}

void mapfile_checkpoint(struct kcopy *k, bool now)
{
	struct mapfile *m = k->map;

	if (m && m->dirty && (now || clock_now() >= m->next_checkpoint))
		map_write(k);
}

static int count_bad(uint64_t pos, uint64_t size, char st, void *ctx)
{
	struct kcopy *k = ctx;

	if (st == '-')
		k->bad[k->num_bad++] = (struct io_region){ k->src.fd,
			pos / KC_SECTOR_SIZE, size / KC_SECTOR_SIZE };
	return 0;
}

int mapfile_finish(struct kcopy *k)
{
	struct mapfile *m = k->map;
	size_t n;
	int r;

	if (!m)
		return 0;
	r = map_write(k);
	if (r == 0 && m->lost)
		r = -ENOMEM;
	/* The whole copy, not this run: what is done, what is unreadable. */
	k->bytes_done = rangemap_bytes(&m->map, '+') +
			rangemap_bytes(&m->map, '-');
	n = rangemap_blocks(&m->map, '-');
	free(k->bad);
	k->num_bad = 0;
	k->bad = calloc(n ? n : 1, sizeof(*k->bad));
	if (!k->bad)
		return no_memory(k);
	rangemap_walk(&m->map, m->begin, m->end, count_bad, k);
	if (n)
		k->read_err = 1;
	return r;
}

void mapfile_free(struct kcopy *k)
{
	struct mapfile *m = k->map;

	if (!m)
		return;
	rangemap_free(&m->map);
	rangemap_free(&m->bad);
	free(m->todo);
	free(m);
	k->map = NULL;
}
