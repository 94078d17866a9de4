/* verify.c - --verify: a checksum of every sub-job kept while it is copied,
 * then the destinations read back by the engine (read jobs, all at once)
 * and compared, without a second read of the source.  The data hooks of
 * both phases also feed --hash's digests (hash.c): the copy's, of the
 * source; the read-back's, of each destination.  Under --hash the jobs
 * run with KCOPYD_DATA_IN_ORDER, so each hook sees its region in order;
 * the copy's hook also hands the source's data to --bmap's check (flash.c).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One 64-bit xxHash per sub-job: 16 MiB of checksums per TiB copied with
 * 512 KiB sub-jobs.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "kcopy.h"

/* The library's data hook: a sub-job's data, read and ready to be written.
 * kcopyd_set_data_fn(3): every sub-job starts at a multiple of the sub-job
 * size from the region's start and is delivered once; only the last is
 * shorter.  So sub-job i has checksum i. */
static void record(int src_fd, uint64_t sector, uint64_t count,
		   const void *data, void *context)
{
	struct kcopy *k = context;
	struct verify *vf = &k->verify;
	size_t i = (size_t)((sector - vf->first_sector) / vf->chunk_sectors);

	(void)src_fd;
	flash_check(k, sector, count, data);
	hash_update(&k->src.hash, sector, count, data);
	if (!vf->sums)
		return;
	assert((sector - vf->first_sector) % vf->chunk_sectors == 0);
	assert(count <= vf->chunk_sectors);
	if (i >= vf->num) {
		/* A stream of a length known at its end: grow the table. */
		size_t num = 2 * i + 16;
		uint64_t *sums = realloc(vf->sums, num * sizeof(*sums));

		if (!sums) {
			vf->lost = true;	/* verify fails, not crashes */
			return;
		}
		memset(sums + vf->num, 0, (num - vf->num) * sizeof(*sums));
		vf->sums = sums;
		vf->num = num;
	}
	vf->sums[i] = XXH3_64bits(data, count * KC_SECTOR_SIZE);
	if (vf->have)
		vf->have[i] = 1;
}

/* With --verify, size the table of checksums to the source region; with
 * --hash, start the source's digests; then install the data hook (which
 * also takes --bmap's data through its check, flash.c). */
int verify_init(struct kcopy *k)
{
	struct verify *vf = &k->verify;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	int r;

	kcopyd_get_stats(k->kc, &st);
	vf->chunk_sectors = st.subjob_size / KC_SECTOR_SIZE;
	vf->first_sector = k->src.sector;
	vf->num = (size_t)((k->src.count + vf->chunk_sectors - 1) /
			   vf->chunk_sectors);
	if (k->opt.verify) {
		vf->sums = calloc(vf->num ? vf->num : 1, sizeof(*vf->sums));
		/* A --mapfile run copies what earlier runs left: which
		 * sub-jobs it copied is what it can read back. */
		if (vf->sums && k->opt.mapfile)
			vf->have = calloc(vf->num ? vf->num : 1, 1);
		if (!vf->sums || (k->opt.mapfile && !vf->have)) {
			say(&k->out, MSG_ERROR, "--verify: %s",
			    strerror(ENOMEM));
			return -ENOMEM;
		}
	}
	r = hash_start(&k->src.hash, k->opt.hash_algs, k->src.sector);
	if (r < 0) {
		say(&k->out, MSG_ERROR, "--hash: cannot start the digests: %s",
		    strerror(-r));
		return r;
	}
	if (k->opt.verify || k->opt.hash_algs || k->flash.path)
		kcopyd_set_data_fn(k->kc, record, k);
	return 0;
}

/* Record a mismatched range of t.  0, or -ENOMEM: then the range is not
 * recorded, and the caller must fail the destination all the same. */
static int add_mismatch(struct target *t, uint64_t sector, uint64_t count)
{
	struct mismatch *m;

	if (t->num_mismatches) {
		m = &t->mismatches[t->num_mismatches - 1];
		if (m->sector + m->count == sector) {
			m->count += count;
			return 0;
		}
	}
	m = realloc(t->mismatches, (t->num_mismatches + 1) * sizeof(*m));
	if (!m)
		return -ENOMEM;
	t->mismatches = m;
	m[t->num_mismatches++] = (struct mismatch){ sector, count };
	return 0;
}

/* The checksum of count sectors of data of which only the first bytes are
 * the region's, the rest taken as zeros: the copy's hook sees a stream's
 * last sector zeroed past its end, the read-back what the destination
 * holds there, which is not the stream's and is left as it was.  0, or
 * -ENOMEM. */
static int chunk_sum(const void *data, uint64_t count, size_t bytes,
		     uint64_t *sum)
{
	static const char zeros[KC_SECTOR_SIZE];
	size_t len = (size_t)count * KC_SECTOR_SIZE;
	XXH3_state_t *st;

	if (bytes >= len) {
		*sum = XXH3_64bits(data, len);
		return 0;
	}
	st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, data, bytes);
	while (bytes < len) {
		size_t n = len - bytes < sizeof(zeros) ? len - bytes
						       : sizeof(zeros);

		XXH3_64bits_update(st, zeros, n);
		bytes += n;
	}
	*sum = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return 0;
}

/* The destination a read job's hook is about. */
static unsigned int dest_of_fd(const struct kcopy *k, int fd)
{
	unsigned int i;

	for (i = 0; i < k->num_dests && k->dests[i].fd != fd; i++)
		;
	return i;
}

/* Mark the sub-job of destination i that holds sector as bad. */
static void mark_bad(struct kcopy *k, unsigned int i, uint64_t sector)
{
	struct verify *vf = &k->verify;
	size_t n = (size_t)((sector - k->dests[i].sector) / vf->chunk_sectors);

	assert(n < vf->num);
	vf->bad[i * vf->num + n] = 1;
}

/* The data hook of the read-back: a sub-job of a destination, compared
 * with the checksum of the same sub-job of the copy (the read jobs have
 * the copy's sub-job size, so their sub-jobs are the copy's).  Only the
 * region's bytes count: not the rest of the last logical block, read only
 * because the storage reads whole blocks (verify_dests), nor what follows
 * a stream's last byte in its last sector. */
static void compare(int fd, uint64_t sector, uint64_t count, const void *data,
		    void *context)
{
	struct kcopy *k = context;
	struct verify *vf = &k->verify;
	unsigned int i = dest_of_fd(k, fd);
	const struct target *t;
	uint64_t end, sum;
	size_t n, bytes;

	assert(i < k->num_dests);
	t = &k->dests[i];
	end = t->sector + t->count;
	if (sector >= end)
		return;
	if (count > end - sector)
		count = end - sector;
	bytes = (size_t)count * KC_SECTOR_SIZE;
	if (sector + count == end)
		bytes -= KC_SECTOR_SIZE - k->tail_bytes;
	hash_update(&k->dests[i].hash, sector, count, data);
	n = (size_t)((sector - t->sector) / vf->chunk_sectors);
	assert(n < vf->num && count <= vf->chunk_sectors);
	if (((vf->tail_dests >> i) & 1) && sector + count == end - 1 &&
	    (end - 1 - t->sector) % vf->chunk_sectors) {
		/* The last sector, of this sub-job's checksum, comes after
		 * the job: verify_tail(). */
		XXH3_state_t *st = XXH3_createState();

		if (!st) {
			vf->lost = true;
			return;
		}
		XXH3_64bits_reset(st);
		XXH3_64bits_update(st, data, bytes);
		vf->tail_state[i] = st;
		return;
	}
	if (chunk_sum(data, count, bytes, &sum) < 0)
		vf->lost = true;	/* verify fails, not crashes */
	else if (sum != vf->sums[n])
		mark_bad(k, i, sector);
}

/* The last sector of destination i, a regular file that ends within it
 * (tail_dests): read with pread, its stream's bytes compared as compare()
 * would have as the end of the read job's last sub-job. */
static void verify_tail(struct kcopy *k, unsigned int i)
{
	struct verify *vf = &k->verify;
	const struct target *t = &k->dests[i];
	uint64_t sector = t->sector + t->count - 1;
	size_t n = (size_t)((sector - t->sector) / vf->chunk_sectors);
	XXH3_state_t *st = vf->tail_state[i];
	char buf[KC_SECTOR_SIZE] = { 0 };
	ssize_t got;

	vf->tail_state[i] = NULL;
	if (!st && (sector - t->sector) % vf->chunk_sectors == 0) {
		st = XXH3_createState();	/* a checksum of its own */
		if (st)
			XXH3_64bits_reset(st);
	}
	if (!st) {
		/* The job stopped before its end, or no memory. */
		if (!vf->read_error[i] && !vf->lost)
			vf->lost = true;
		return;
	}
	got = pread(t->fd, buf, k->tail_bytes,
		    (off_t)(sector * KC_SECTOR_SIZE));
	if (got != (ssize_t)k->tail_bytes) {
		if (!vf->read_error[i])
			vf->read_error[i] = got < 0 ? -errno : -EIO;
		mark_bad(k, i, sector);
	} else {
		hash_update(&k->dests[i].hash, sector, 1, buf);
		XXH3_64bits_update(st, buf, sizeof(buf));
		if (XXH3_64bits_digest(st) != vf->sums[n])
			mark_bad(k, i, sector);
	}
	XXH3_freeState(st);
}

/* The error hook of the read-back: a failed read stops that destination's
 * read job; its sub-job counts as a mismatch. */
static void read_failed(const struct kcopyd_io_error *e, void *context)
{
	struct kcopy *k = context;
	unsigned int i = dest_of_fd(k, e->fd);

	if (i >= k->num_dests)
		return;
	if (!k->verify.read_error[i])
		k->verify.read_error[i] = e->error;
	mark_bad(k, i, e->sector);
}

static void read_back_done(int read_err, unsigned int write_err,
			   void *context)
{
	(void)read_err;		/* read_failed() has seen it */
	(void)write_err;
	run_job_done(context, 0, 0);
}

/* After the read-back of destination i: its mismatched sub-jobs as merged
 * ranges of its sectors, and its failure if it has any. */
static void verify_result(struct kcopy *k, unsigned int i)
{
	struct verify *vf = &k->verify;
	struct target *t = &k->dests[i];
	int read_error = vf->read_error[i];
	bool lost = vf->lost;
	uint64_t first;
	size_t n;

	for (n = 0; n < vf->num && (uint64_t)n * vf->chunk_sectors < t->count;
	     n++) {
		uint64_t off = (uint64_t)n * vf->chunk_sectors;

		if (vf->bad[i * vf->num + n] &&
		    add_mismatch(t, t->sector + off,
				 t->count - off < vf->chunk_sectors
				 ? t->count - off : vf->chunk_sectors) < 0)
			lost = true;	/* a mismatch unrecorded: failed */
	}
	/* The read-back's digests: none if it stopped short. */
	if (!read_error && hash_finish(&t->hash, t->sector + t->count,
				       k->tail_bytes) == 0)
		for (n = 0; t->hash.done && n < HASH_NUM_ALGS; n++)
			if (t->hash.hex[n])
				say(&k->out, MSG_VERBOSE, "destination %u "
				    "'%s': %s %s", i + 1, t->spec.path,
				    hash_name((unsigned int)n), t->hash.hex[n]);
	/* The read-back's failed sub-jobs are among the mismatches. */
	first = t->num_mismatches ? t->mismatches[0].sector : KCOPY_NO_SECTOR;
	if (lost)
		run_dest_failed(k, i, -ENOMEM, "verify", first);
	else if (read_error)
		run_dest_failed(k, i, read_error, "verify read", first);
	else if (t->num_mismatches)
		run_dest_failed(k, i, -EILSEQ, "verify", first);
	if (read_error || t->num_mismatches)
		say(&k->out, MSG_NOTE, "destination %u '%s': verify failed: %zu "
		    "mismatched range(s), first at sector %" PRIu64, i + 1,
		    t->spec.path, t->num_mismatches,
		    t->num_mismatches ? t->mismatches[0].sector : 0);
}

/* Add to *ext (*n of *cap) the extent [s, e) of the source region, of
 * kind, moved to the destination region that starts at base. */
static int add_extent(struct kcopyd_extent **ext, size_t *n, size_t *cap,
		      uint64_t s, uint64_t e, unsigned int kind,
		      const struct kcopy *k, uint64_t base)
{
	struct kcopyd_extent *x;

	if (s >= e)
		return 0;
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 64;
		x = realloc(*ext, *cap * sizeof(*x));
		if (!x)
			return -ENOMEM;
		*ext = x;
	}
	(*ext)[(*n)++] = (struct kcopyd_extent){ s - k->src.sector + base,
						 e - s, kind };
	return 0;
}

/* The map of a read-back of the destination region at base: the copy's
 * own map (--used), and with --mapfile only the sub-jobs this run copied
 * (the others have no checksum); the source's sectors moved to the
 * region's.  *n 0 and *ext NULL: all of the region, as copied. */
static int read_back_map(const struct kcopy *k, uint64_t base,
			 struct kcopyd_extent **ext, size_t *n)
{
	const struct verify *vf = &k->verify;
	uint64_t first = k->src.sector, end = first + k->src.count;
	size_t cap = 0, c = 0, j = 0;
	int r = 0;

	*ext = NULL;
	*n = 0;
	if (!k->used.ext && !vf->have)
		return 0;
	while (r == 0 && c < (vf->have ? vf->num : 1)) {
		uint64_t s = first, e = end;

		if (vf->have) {
			size_t d;

			for (; c < vf->num && !vf->have[c]; c++)
				;
			for (d = c; d < vf->num && vf->have[d]; d++)
				;
			if (c == vf->num)
				break;
			s = first + c * vf->chunk_sectors;
			e = first + d * vf->chunk_sectors;
			e = e < end ? e : end;
			c = d;
		} else {
			c = 1;
		}
		if (!k->used.ext) {
			r = add_extent(ext, n, &cap, s, e, KCOPYD_EXTENT_DATA,
				       k, base);
			continue;
		}
		/* the copy's map within [s, e) */
		for (; j < k->used.num && k->used.ext[j].sector +
		       k->used.ext[j].count <= s; j++)
			;
		for (size_t x = j; r == 0 && x < k->used.num &&
		     k->used.ext[x].sector < e; x++) {
			uint64_t a = k->used.ext[x].sector;
			uint64_t b = a + k->used.ext[x].count;

			r = add_extent(ext, n, &cap, a > s ? a : s,
				       b < e ? b : e, k->used.ext[x].kind, k,
				       base);
		}
	}
	if (r < 0) {
		free(*ext);
		*ext = NULL;
		*n = 0;
	}
	return r;
}

/* The read job of region r of a destination: all of it, or what the copy
 * wrote (read_back_map), so that its sub-jobs and their skipped blocks are
 * the copy's. */
static int read_back(struct kcopy *k, struct io_region *r, unsigned int flags)
{
	struct kcopyd_extent *ext;
	size_t n;
	int ret = read_back_map(k, r->sector, &ext, &n);

	if (ret < 0)
		return ret;
	if (!ext && !k->verify.have)
		return kcopyd_copy(k->kc, r, 0, NULL, flags, read_back_done, k);
	ret = kcopyd_copy_map(k->kc, r, 0, NULL, ext, n, flags,
			      read_back_done, k);
	free(ext);
	return ret;
}

/* Read back every destination that has not failed, all at once: one read
 * job each, in parallel within the client's budget, with direct I/O where
 * the destination takes it.  k->verified says whether it ran to the end (a
 * signal stops it). */
void verify_dests(struct kcopy *k)
{
	struct verify *vf = &k->verify;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	unsigned int i, healthy = 0, failed;
	uint64_t total = 0, base;

	vf->bad = calloc((size_t)k->num_dests * vf->num + 1, 1);
	if (!vf->bad) {
		say(&k->out, MSG_ERROR, "--verify: %s", strerror(ENOMEM));
		return;
	}
	kcopyd_set_data_fn(k->kc, compare, k);
	kcopyd_set_error_fn(k->kc, read_failed, k);
	/* The destinations that failed in the copy, before the read jobs
	 * start: their callbacks update k->write_err on the engine thread. */
	pthread_mutex_lock(&k->lock);
	k->jobs_left = 0;
	failed = k->write_err;
	pthread_mutex_unlock(&k->lock);
	/* A regular file may end within a stream's last sector, which the
	 * library cannot read: verify_tail() reads it.  Decided for every
	 * destination before the first read job: compare() reads it on the
	 * engine thread. */
	for (i = 0; i < k->num_dests; i++) {
		const struct target *t = &k->dests[i];

		if (k->src.info.is_stream && k->tail_bytes < KC_SECTOR_SIZE &&
		    !t->info.is_blockdev && !t->info.is_remote && t->count)
			vf->tail_dests |= 1u << i;
	}
	/* The read-back's phase: what it is to read, summed over the
	 * destinations (as the copy went through them: the map's bytes
	 * under one), and the client's count of bytes read so far. */
	for (i = 0; i < k->num_dests; i++)
		if (!((failed >> i) & 1) && !k->dests[i].is_std)
			total += k->used.ext ? k->work_bytes
					     : k->dests[i].count * KC_SECTOR_SIZE;
	progress_phase(k, PHASE_VERIFY, total);
	kcopyd_get_stats(k->kc, &st);
	base = st.bytes_read;
	for (i = 0; i < k->num_dests; i++) {
		struct target *t = &k->dests[i];
		uint64_t lbs_sectors = t->info.logical_block_size /
				       KC_SECTOR_SIZE;
		struct io_region r = { t->fd, t->sector, t->count };
		int ret;

		/* Whole logical blocks: a stream's end need not be at the end
		 * of one (compare() looks at the region's bytes only). */
		if (lbs_sectors > 1 && r.count % lbs_sectors)
			r.count += lbs_sectors - r.count % lbs_sectors;
		if ((vf->tail_dests >> i) & 1)
			r.count--;

		if ((failed >> i) & 1)
			continue;
		if (t->is_std) {
			/* A stream cannot be read again, and a file behind
			 * standard output is open for writing only. */
			say(&k->out, MSG_NOTE, "destination %u: standard "
			    "output cannot be read back: not verified", i + 1);
			continue;
		}
		healthy |= 1u << i;
		say(&k->out, MSG_VERBOSE, "verifying destination %u '%s'",
		    i + 1, t->spec.path);
		/* For buffered reads: drop what the copy left in the page
		 * cache, so that what is compared is what is stored. */
		posix_fadvise(t->fd, 0, 0, POSIX_FADV_DONTNEED);
		pthread_mutex_lock(&k->lock);
		k->jobs_left++;
		pthread_mutex_unlock(&k->lock);
		ret = hash_start(&t->hash, k->opt.hash_algs, t->sector);
		if (ret == 0 && r.count)
			ret = read_back(k, &r, k->opt.hash_algs
					       ? KCOPYD_DATA_IN_ORDER : 0);
		else if (ret == 0)
			ret = 1;	/* all of it in verify_tail() */
		if (ret != 0) {
			pthread_mutex_lock(&k->lock);
			k->jobs_left--;
			pthread_mutex_unlock(&k->lock);
			if (ret < 0)
				vf->read_error[i] = ret;
		}
	}
	run_wait(k);
	kcopyd_wait(k->kc);
	kcopyd_get_stats(k->kc, &st);
	k->bytes_verified = st.bytes_read - base;
	k->verified = !k->signal;
	if (vf->have)
		say(&k->out, MSG_VERBOSE, "--verify: read back what this run "
		    "copied (--mapfile: earlier runs' copies have no "
		    "checksums here)");
	for (i = 0; k->verified && i < k->num_dests; i++)
		if ((healthy & vf->tail_dests) >> i & 1 &&
		    !vf->read_error[i])
			verify_tail(k, i);
	for (i = 0; k->verified && i < k->num_dests; i++)
		if ((healthy >> i) & 1)
			verify_result(k, i);
}

void verify_free(struct kcopy *k)
{
	unsigned int i;

	free(k->verify.sums);
	k->verify.sums = NULL;
	free(k->verify.have);
	k->verify.have = NULL;
	free(k->verify.bad);
	k->verify.bad = NULL;
	for (i = 0; i < KCOPYD_MAX_DESTS; i++) {
		XXH3_freeState(k->verify.tail_state[i]);
		k->verify.tail_state[i] = NULL;
	}
}
