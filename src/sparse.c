/* sparse.c - sparse and zero-aware copies: the source's map, zero
 * detection, and the zeroing of destinations' zero ranges.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A copy sub-job reads only the span of its source that the source's map
 * (its backend's extents) has data in; after the data hook, the blocks
 * read as zeros join the holes in the sub-job's zero map
 * (kc_sj_zero_map).  A stream source has no map and is read whole, but
 * its zero blocks are found all the same: only stream destinations take
 * them as data.  The sub-job code (subjob.c) takes each destination
 * through the runs of that map, and asks kc_dest_zero for each zero run:
 * skipped where the destination reads as zeros, zeroed by the backend's
 * synchronous zero (adjacent runs of sub-jobs gathered into one call,
 * which runs on the zeroing threads of zero.c, kc_jobs_zero_pending at
 * the end of a job), or left to a request that zeroes without data.  A
 * file ends where its region does (dest_extend) or, from a stream, where
 * the stream does (kc_jobs_extend), even where that end was a hole.
 *
 * Knows nothing of the sub-job state machine: a failure found later (a
 * gathered range on a zeroing thread) is handed to the kc_dest_fail_fn its
 * caller gives.  Runs on the engine thread with kc->lock held, dropped
 * only around the backends' zeroing calls; zero_req_run runs on a zeroing
 * thread, with kc->lock held the same way.
 */
#include <config.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "kcopyd-private.h"

/* Are the len bytes at p all zero?  Stops at the first byte that is not:
 * the first 16 bytes one by one, then each byte against the one 16 before
 * it, which memcmp does at memory speed. */
static bool is_zero_mem(const char *p, size_t len)
{
	size_t i, head = len < 16 ? len : 16;

	for (i = 0; i < head; i++)
		if (p[i])
			return false;
	return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}

bool kc_block_is_zero(const struct kc_subjob *sj, unsigned int b)
{
	return (sj->zero_map[b / 64] >> (b % 64)) & 1;
}

/* A block is skipped (2), else zero (1), else data (0). */
static int block_class(const struct kc_subjob *sj, unsigned int b)
{
	return kc_block_is_skipped(sj, b) ? 2 : kc_block_is_zero(sj, b);
}

/* The block after the run of blocks like block b. */
unsigned int kc_run_end(const struct kc_subjob *sj, unsigned int b)
{
	int class = block_class(sj, b);
	unsigned int e = b + 1;

	while (e < sj->num_blocks && block_class(sj, e) == class)
		e++;
	return e;
}

/* Mark in the zero map the blocks of the sub-job's bytes [pos, end) that
 * are whole, or that end the sub-job. */
static void mark_zero(struct kc_subjob *sj, uint64_t pos, uint64_t end,
		      uint64_t len)
{
	uint64_t b = (pos + KC_ZERO_BLOCK - 1) / KC_ZERO_BLOCK;
	uint64_t e = end == len ? sj->num_blocks : end / KC_ZERO_BLOCK;

	for (; b < e; b++)
		sj->zero_map[b / 64] |= 1ull << (b % 64);
}

/* Which bytes of the sub-job to read: from the first data byte of the
 * source's map to the end of the last, widened to whole zero blocks; the
 * bytes outside are holes.  All of it where the map is not known.  Under
 * a job's map (jobmap.c), only its data blocks count, its zero blocks are
 * holes and its skipped blocks are marked in skip_map.  The zero map
 * starts with the blocks that are holes. */
void kc_sj_source_span(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	struct kc_file *f = job->src.file;
	uint64_t len = sj->count << SECTOR_SHIFT;
	uint64_t base = (job->src.sector + sj->offset) << SECTOR_SHIFT;
	uint64_t from = 0, to = len, pos, run, lo = len, hi = 0;
	size_t words;
	int r;

	sj->num_blocks = (unsigned int)((len + KC_ZERO_BLOCK - 1) /
					KC_ZERO_BLOCK);
	words = (sj->num_blocks + 63) / 64;
	memset(sj->zero_map, 0, words * sizeof(sj->zero_map[0]));
	if (job->map) {
		kc_jobmap_classify(job, sj, &from, &to);
		if (from >= to) {
			sj->span_lo = sj->span_hi = 0;
			return;
		}
	}
	sj->span_lo = from;
	sj->span_hi = to;
	if (!f->can_extents)
		return;
	for (pos = from; pos < to; pos += run) {
		r = f->ops->extents(kc, f, base + pos, to - pos, &run);
		if (r < 0 || run == 0 || run > to - pos) {
			f->can_extents = false;
			/* Forget the holes found so far: all of it is read. */
			memset(sj->zero_map, 0, words * sizeof(sj->zero_map[0]));
			if (job->map)
				kc_jobmap_classify(job, sj, &from, &to);
			return;
		}
		if (r) {
			if (lo == len)
				lo = pos;
			hi = pos + run;
		} else {
			mark_zero(sj, pos, pos + run, len);
		}
	}
	if (lo >= hi) {
		sj->span_lo = sj->span_hi = 0;
		return;
	}
	sj->span_lo = lo / KC_ZERO_BLOCK * KC_ZERO_BLOCK;
	hi = (hi + KC_ZERO_BLOCK - 1) / KC_ZERO_BLOCK * KC_ZERO_BLOCK;
	sj->span_hi = hi < len ? hi : len;
}

/* Bytes of the blocks sj's job's map skips that lie outside the span
 * read (the others are read, and not holes). */
uint64_t kc_sj_skipped_outside(const struct kc_subjob *sj)
{
	uint64_t len = sj->count << SECTOR_SHIFT, n = 0;
	unsigned int b;

	for (b = 0; sj->has_skip && b < sj->num_blocks; b++) {
		uint64_t start = (uint64_t)b * KC_ZERO_BLOCK;

		if (kc_block_is_skipped(sj, b) &&
		    (start < sj->span_lo || start >= sj->span_hi))
			n += start + KC_ZERO_BLOCK < len ? KC_ZERO_BLOCK
							 : len - start;
	}
	return n;
}

/* Zero the buffer outside the span read, the source's holes, once it is
 * needed whole (for the data hook, KCOPYD_ALLOCATED, a stream); dest_next
 * zeroes the zero runs it writes as data.  Most holes are only zeroed on
 * the destinations, or skipped, and need no memset. */
void kc_sj_fill_holes(struct kc_subjob *sj)
{
	uint64_t len = sj->count << SECTOR_SHIFT;
	unsigned int b;

	if (sj->holes_zeroed)
		return;
	memset(sj->buf, 0, sj->span_lo < len ? sj->span_lo : len);
	if (sj->span_hi < len)
		memset(sj->buf + sj->span_hi, 0, len - sj->span_hi);
	if (sj->has_noread)
		for (b = 0; b < sj->num_blocks; b++) {
			uint64_t start = (uint64_t)b * KC_ZERO_BLOCK;

			if (kc_block_is_noread(sj, b) && start >= sj->span_lo &&
			    start < sj->span_hi)
				memset(sj->buf + start, 0,
				       start + KC_ZERO_BLOCK < len
				       ? KC_ZERO_BLOCK : len - start);
		}
	sj->holes_zeroed = true;
}

/* Complete the sub-job's zero map, after the data hook has seen the data:
 * to the source's holes (kc_sj_source_span) add, unless
 * KCOPYD_NO_ZERO_DETECT, the blocks read as zeros; none at all under
 * KCOPYD_ALLOCATED.  Every destination starts at the first block. */
void kc_sj_zero_map(struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	uint64_t len = sj->count << SECTOR_SHIFT;
	unsigned int b;

	memset(sj->next_block, 0, job->num_dests * sizeof(sj->next_block[0]));
	if (job->flags & KCOPYD_ALLOCATED) {
		kc_sj_fill_holes(sj);	/* written as data */
		memset(sj->zero_map, 0, (sj->num_blocks + 63) / 64 *
					sizeof(sj->zero_map[0]));
		return;
	}
	if (job->flags & KCOPYD_NO_ZERO_DETECT)
		return;
	for (b = 0; b < sj->num_blocks; b++) {
		uint64_t start = (uint64_t)b * KC_ZERO_BLOCK;
		uint64_t end = start + KC_ZERO_BLOCK < len ? start + KC_ZERO_BLOCK
							   : len;

		if (!kc_block_is_zero(sj, b) &&
		    is_zero_mem(sj->buf + start, end - start))
			sj->zero_map[b / 64] |= 1ull << (b % 64);
	}
}

/* A destination that can grow (a file) ends at least where its region
 * does: a zero range that was punched or skipped past its end does not
 * extend it, so where such a range ends the region, the backend extends
 * it.  Ranges before the region's end need nothing: the end makes the
 * file long enough.  From a stream source, whose region's end is a
 * capacity, the job extends its files to the stream's end once it is over
 * (kc_jobs_extend).  0 or a negative errno.  Drops kc->lock. */
static int dest_extend(struct kcopyd_client *kc, const struct kc_job *job,
		       const struct kc_region *d, uint64_t end)
{
	struct kc_file *f = d->file;

	if (!f->can_extend || job->src_in_order ||
	    end != (d->sector + d->count) << SECTOR_SHIFT)
		return 0;
	return f->ops->extend(kc, f, end);
}

/* From a stream source, each destination that can grow (a file) and did
 * not fail ends where the stream does, though the stream's last zero run
 * was skipped or punched, once the job is over (kc_job_extend_due) and
 * before its flush.  Its writes and skips ended, the bytes past the file's
 * end are that zero run's: extending writes nothing else.  A failure is
 * that destination's write error, handed to fail. */
void kc_jobs_extend(struct kcopyd_client *kc, kc_dest_fail_fn fail)
{
	struct kc_job *job;
	unsigned int i;
	int r;

	for (job = kc->jobs; job; job = job->next) {
		if (!kc_job_extend_due(job))
			continue;
		job->extended = true;
		if (!job->src_bytes)
			continue;	/* an empty stream changes nothing */
		for (i = 0; i < job->num_dests; i++) {
			const struct kc_region *d = &job->dests[i];
			uint64_t end = (d->sector << SECTOR_SHIFT) +
				       job->src_bytes;

			if (!d->file->can_extend ||
			    ((job->write_err | job->dropped) & (1u << i)))
				continue;
			r = d->file->ops->extend(kc, d->file, end);
			if (r < 0) {
				uint64_t pos = end > KCOPYD_SECTOR_SIZE
					       ? end - KCOPYD_SECTOR_SIZE : 0;

				kc_report_error(kc, d->file, KC_IO_WRITE, i,
						pos, end - pos, r);
				fail(kc, job, i, r);
			}
		}
	}
}

/* The zero calls of adjacent ranges gathered into one, at most this long:
 * it holds the engine (not the I/O in flight) for its duration.  Measured
 * on this project's bench machine (Linux 6.18, loop devices in direct-I/O
 * mode): BLKZEROOUT of 1 GiB in 512 KiB calls (one per sub-job) took 60 ms
 * over an ext4 file and 61 ms per 256 MiB over a tmpfs one; in one call
 * 0.3 ms for the GiB on ext4, 35 ms for 256 MiB on tmpfs, 36 ms in 64 MiB
 * calls (9 ms each).  64 MiB keeps nearly all of the gain and the engine's
 * stalls short. */
#define KC_ZERO_GATHER (64ull << 20)

/* Zero len bytes at pos of destination i synchronously, through its
 * backend's zero (a hole where the storage keeps one, extended to the
 * region's end).  1 done, 0 to be written as zeros, or a negative errno. */
static int zero_local(struct kcopyd_client *kc, struct kc_job *job,
		      unsigned int i, uint64_t pos, uint64_t len)
{
	struct kc_region *d = &job->dests[i];
	struct kc_file *f = d->file;
	int r;

	r = f->ops->zero(kc, f, pos, len, true);
	if (r == 1)
		r = dest_extend(kc, job, d, pos + len) < 0 ? -EIO : 1;
	if (r == 1)
		kc->stats.bytes_zeroed += len;
	return r;
}

/* A gathered range for the zeroing thread, and whom to tell of its
 * failure. */
struct zero_range {
	struct kc_zero_req req;
	kc_dest_fail_fn fail;
};

/* A gathered range, on the zeroing thread: not for a destination that
 * failed meanwhile (it is not written any more). */
static int zero_req_run(struct kcopyd_client *kc, struct kc_zero_req *req)
{
	struct kc_job *job = req->private;
	int r;

	if ((job->write_err | job->dropped) & (1u << req->dest))
		return 0;
	r = zero_local(kc, job, req->dest, req->pos, req->len);
	return r == 1 ? 0 : r < 0 ? r : -EOPNOTSUPP;
}

/* ... and its end, on the engine thread: a failure is that destination's
 * write error. */
static void zero_req_end(struct kcopyd_client *kc, struct kc_zero_req *req,
			 int err)
{
	struct zero_range *z = (struct zero_range *)req;
	struct kc_job *job = req->private;

	assert(job->zero_in_flight > 0);
	job->zero_in_flight--;
	if (err) {
		kc_report_error(kc, job->dests[req->dest].file, KC_IO_WRITE,
				req->dest, req->pos, req->len, err);
		z->fail(kc, job, req->dest, err);
	}
	free(z);
}

/* Hand the gathered range of destination i, if any, to the zeroing
 * thread; where it cannot take it, zero it here.  0, or a negative errno
 * if that failed. */
static int zero_pending(struct kcopyd_client *kc, struct kc_job *job,
			unsigned int i, kc_dest_fail_fn fail)
{
	struct zero_range *z;
	int r;

	if (!(job->zero_pend & (1u << i)))
		return 0;
	job->zero_pend &= ~(1u << i);
	if ((job->write_err | job->dropped) & (1u << i))
		return 0;	/* failed already: not written any more */
	z = malloc(sizeof(*z));
	if (z) {
		z->req = (struct kc_zero_req){
			.run = zero_req_run, .end = zero_req_end,
			.private = job, .dest = i,
			.pos = job->zero_pos[i], .len = job->zero_len[i] };
		z->fail = fail;
		if (kc_zero_queue(kc, &z->req) == 0) {
			job->zero_in_flight++;
			return 0;
		}
		free(z);
	}
	r = zero_local(kc, job, i, job->zero_pos[i], job->zero_len[i]);
	return r == 1 ? 0 : r < 0 ? r : -EIO;
}

/* Zero the gathered ranges of the jobs whose sub-jobs are over (a failure
 * is that destination's write error), so that their flushes and callbacks
 * come after them. */
void kc_jobs_zero_pending(struct kcopyd_client *kc, kc_dest_fail_fn fail)
{
	struct kc_job *job;
	unsigned int i;
	int r;

	for (job = kc->jobs; job; job = job->next) {
		if (!job->zero_pend || !kc_job_over(job))
			continue;
		for (i = 0; i < job->num_dests; i++) {
			uint64_t pos = job->zero_pos[i], len = job->zero_len[i];

			r = zero_pending(kc, job, i, fail);
			if (r < 0) {
				kc_report_error(kc, job->dests[i].file,
						KC_IO_WRITE, i, pos, len, r);
				fail(kc, job, i, r);
			}
		}
	}
}

/* Add len bytes at pos to destination i's gathered range, where the way
 * to zero it is known to work (a failure then is an error, not a reason
 * to write zeros) and no order is asked for: 1 taken, 0 not (zero it
 * now).  A range that does not join the gathered one replaces it, which
 * goes to the zeroing thread: a negative errno if it had to be zeroed
 * here and that failed, with *err_pos and *err_len set to it. */
static int zero_gather(struct kcopyd_client *kc, struct kc_job *job,
		       unsigned int i, uint64_t pos, uint64_t len,
		       uint64_t *err_pos, uint64_t *err_len,
		       kc_dest_fail_fn fail)
{
	struct kc_file *f = job->dests[i].file;
	uint64_t *gp = &job->zero_pos[i], *gl = &job->zero_len[i];
	int r;

	if ((job->flags & KCOPYD_WRITE_SEQ) || !f->zero_sure)
		return 0;
	if (job->zero_pend & (1u << i)) {
		if (*gl + len <= KC_ZERO_GATHER && *gp + *gl == pos) {
			*gl += len;
			return 1;
		}
		if (*gl + len <= KC_ZERO_GATHER && pos + len == *gp) {
			*gp = pos;
			*gl += len;
			return 1;
		}
		*err_pos = *gp;
		*err_len = *gl;
		r = zero_pending(kc, job, i, fail);
		if (r < 0)
			return r;
	}
	job->zero_pend |= 1u << i;
	*gp = pos;
	*gl = len;
	return 1;
}

/* When a job begins: how far each destination's region reads as zeros
 * already, from its start (job->zero_known), as its backend's map tells
 * (ops->extents: a hole).  The zero ranges there are then skipped as on a
 * destination that reads as zeros: what read as zeros when the job began
 * still does where the job zeroes, since it writes no data there (jobs
 * that overlap on a destination while both run have no defined result).
 * One look-up per destination and job, where zeroing a range already a
 * hole costs a system call per gathered range (on the bench machine,
 * 2937 punches of 0.6 ms each for the 16 GiB of unused inode tables of a
 * 1 TiB ext4 copied with --used to a new sparse file).  Without
 * KCOPYD_ALLOCATED only: its zeros are written as data. */
void kc_job_dest_holes(struct kcopyd_client *kc, struct kc_job *job)
{
	unsigned int i;

	for (i = 0; i < job->num_dests; i++) {
		struct kc_region *d = &job->dests[i];
		struct kc_file *f = d->file;
		uint64_t start = d->sector << SECTOR_SHIFT, run;
		int r;

		job->zero_known[i] = start;
		if ((job->flags & KCOPYD_ALLOCATED) || f->in_order ||
		    !f->can_extents || !f->ops->extents || !d->count)
			continue;
		r = f->ops->extents(kc, f, start, d->count << SECTOR_SHIFT,
				    &run);
		if (r == 0)
			job->zero_known[i] = start + run;
		else if (r < 0)
			f->can_extents = false;
	}
}

/* Zero len bytes at start of the sub-job on destination i without writing
 * data where its storage allows, cheapest first: nothing where it reads as
 * zeros already; the backend's synchronous zero (ops->zero: a hole, or
 * BLKZEROOUT, FALLOC_FL_ZERO_RANGE), gathered with the adjacent ranges of
 * other sub-jobs into one call once it is known to work; else a request
 * that zeroes without data (NBD WRITE_ZEROES; *request set: the caller
 * queues it) where the storage can.  Returns
 * 1 done, 0 to be written (as a request or, last resort, zeros from the
 * buffer), or a negative errno for the bytes *err_pos, *err_len of the
 * destination's file.  A gathered range that fails later, on the zeroing
 * thread, is reported and then handed to fail. */
int kc_dest_zero(struct kcopyd_client *kc, struct kc_subjob *sj,
		 unsigned int i, uint64_t start, uint64_t len, bool *request,
		 uint64_t *err_pos, uint64_t *err_len, kc_dest_fail_fn fail)
{
	struct kc_job *job = sj->job;
	struct kc_region *d = &job->dests[i];
	struct kc_file *f = d->file;
	uint64_t pos = ((d->sector + sj->offset) << SECTOR_SHIFT) + start;
	int r;

	*err_pos = pos;
	*err_len = len;
	if ((job->flags & KCOPYD_DEST_IS_ZERO) || f->reads_zero ||
	    pos + len <= job->zero_known[i]) {
		r = dest_extend(kc, job, d, pos + len);
		if (r == 0)
			kc->stats.bytes_skipped += len;
		return r < 0 ? r : 1;
	}
	if (!f->ops->zero) {
		*request = f->can_zero;
		return 0;
	}
	r = zero_gather(kc, job, i, pos, len, err_pos, err_len, fail);
	if (r != 0)
		return r;
	return zero_local(kc, job, i, pos, len);
}
