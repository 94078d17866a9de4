/* job.c - jobs split into sub-jobs, and the sub-job state machine.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A sub-job takes one slot of the page budget and goes
 *
 *   READING -> [REREADING] -> [PARKED] -> WRITING -> free
 *
 * REREADING only under KCOPYD_IGNORE_ERROR after a failed read: the slot is
 * read again one logical block at a time, and the blocks that fail are
 * zeroed in the buffer and logged as bad.  PARKED only under
 * KCOPYD_WRITE_SEQ: the sub-job was read before its predecessors were
 * written.  A zeroing sub-job starts at WRITING.
 *
 * Copies are sparse and zero-aware (kcopyd.h): a sub-job reads only the
 * span of its source that the source's map has data in, zeroing the rest
 * of the buffer; after the data hook, zero blocks are found (sj_zero_map),
 * and each destination goes through the sub-job's runs of blocks one
 * request at a time (dest_next): data runs are written, zero runs zeroed
 * the cheapest way its storage allows, synchronously, or written.
 *
 * A read job (no destinations) goes no further than the data hook.  A job
 * is over when it has nothing in flight and nothing more to start; under
 * KCOPYD_FLUSH its destinations still in it are then flushed (after a stop
 * too: what was written is made stable), and once those flushes have ended
 * the job is finished: kc_jobs_run_callbacks() takes it off kc->jobs and
 * runs its callback.  I/O goes through io.c, which calls sj_io_done() back at the
 * end of each request.
 *
 * Everything here runs on the engine thread with kc->lock held; it is
 * dropped only around the hooks and a synchronous zeroing call, during which
 * other threads can only add jobs and request a stop (kcopyd-private.h).
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kcopyd-private.h"

/* How long the engine waits before it looks at the throttle again. */
#define THROTTLE_POLL_MS 10
/* The throttle forgets history older than about a second, as the kernel's
 * ACCOUNT_INTERVAL_SHIFT does. */
#define THROTTLE_WINDOW_US (1u << 20)

/* Sectors the job covers: a stream source without a count, as many as
 * come before its end. */
static uint64_t job_sectors(const struct kc_job *job)
{
	if (job->is_zero)
		return job->dests[0].count;
	if (job->stream_src && job->src.count == 0)
		return KC_MAX_SECTORS;
	return job->src.count;
}

static bool job_runnable(const struct kc_job *job)
{
	return !job->stopped && !job->eof && job->issued < job_sectors(job);
}

/* iocbs a sub-job of job reserves: one per destination, which also covers
 * its read; a read job's is for the read alone. */
static unsigned int job_iocbs(const struct kc_job *job)
{
	return job->num_dests ? job->num_dests : 1;
}

static unsigned int all_dests(const struct kc_job *job)
{
	return (unsigned int)((1ull << job->num_dests) - 1);
}

/* KCOPYD_FLUSH: the destinations to flush once the sub-jobs are over, those
 * neither failed nor dropped; none if no sub-job ever started. */
static unsigned int flush_targets(const struct kc_job *job)
{
	if (!(job->flags & KCOPYD_FLUSH) || job->flush_started ||
	    job->issued == 0)
		return 0;
	return all_dests(job) & ~(job->write_err | job->dropped);
}

static bool job_over(const struct kc_job *job)
{
	return job->in_flight == 0 && !job_runnable(job);
}

/* Has every sub-job the job will have been through the data hook (or
 * will never be: a stopped job's)? */
static bool hook_over(const struct kc_job *job)
{
	return job->stopped ||
	       (!job_runnable(job) &&
		(job->hook_seq == job->next_seq || job->in_flight == 0));
}

/* KCOPYD_DATA_ACROSS_JOBS: is job behind an earlier job with the flag: at
 * the data hook (start false), one whose sub-jobs have not all been
 * through it; to start sub-jobs (start true), one that has not started
 * all of its own?  The second keeps the first from holding the budget
 * with sub-jobs waiting at the hook for sub-jobs that could not start. */
static bool behind_earlier(const struct kcopyd_client *kc,
			   const struct kc_job *job, bool start)
{
	const unsigned int across = KCOPYD_DATA_IN_ORDER |
				    KCOPYD_DATA_ACROSS_JOBS;
	const struct kc_job *e;

	if ((job->flags & across) != across)
		return false;
	for (e = kc->jobs; e; e = e->next) {
		if (e == job || (e->flags & across) != across ||
		    e->submit_seq > job->submit_seq)
			continue;
		if (start ? job_runnable(e) : !hook_over(e))
			return true;
	}
	return false;
}

static bool job_finished(const struct kc_job *job)
{
	return job_over(job) && job->flush_pending == 0 &&
	       !flush_targets(job) && !job->zero_pend &&
	       !job->zero_in_flight;
}

/* ------------------------------------------------------------ throttle */

/* Account the time since the last call as I/O time if any sub-job was in
 * flight.  Called before slots_in_use changes and before each decision. */
static void throttle_update(struct kcopyd_client *kc)
{
	uint64_t now = kc_now_us(), diff;

	if (kc->throttle >= 100)
		return;
	diff = now - kc->thr_last_us;
	kc->thr_last_us = now;
	if (kc->slots_in_use)
		kc->thr_io_us += diff;
	kc->thr_total_us += diff;
	if (kc->thr_io_us > kc->thr_total_us)
		kc->thr_io_us = kc->thr_total_us;
	while (kc->thr_total_us >= THROTTLE_WINDOW_US) {
		kc->thr_total_us >>= 1;
		kc->thr_io_us >>= 1;
	}
}

static void wait_at_most(int *timeout_ms, int ms)
{
	if (*timeout_ms < 0 || ms < *timeout_ms)
		*timeout_ms = ms;
}

/* May a sub-job of bytes start now?  If not, *timeout_ms says when to ask
 * again. */
static bool may_start(struct kcopyd_client *kc, uint64_t bytes,
		      int *timeout_ms)
{
	if (kc->throttle < 100) {
		throttle_update(kc);
		if (kc->thr_io_us * 100 > kc->throttle * kc->thr_total_us) {
			wait_at_most(timeout_ms, THROTTLE_POLL_MS);
			return false;
		}
	}
	if (kc->rate) {
		/* In 128 bits, saturated: any rate up to UINT64_MAX bytes per
		 * second holds (past 18 TB/s bytes * 10^6 overflowed 64). */
		typedef unsigned __int128 u128;
		uint64_t now = kc_now_us();
		u128 allowed, credit;

		if (kc->rate_bytes == 0)
			kc->rate_start_us = now;
		allowed = (u128)(now - kc->rate_start_us) * kc->rate / 1000000;
		if (kc->rate_bytes > allowed) {
			u128 wait_us = (kc->rate_bytes - allowed) * 1000000 /
				       kc->rate;

			wait_at_most(timeout_ms, wait_us >= 1000000 ? 1000
						 : (int)(wait_us / 1000) + 1);
			return false;
		}
		/* Credit is kept to one second, so an idle spell does not
		 * buy a burst. */
		credit = (u128)kc->rate_bytes + kc->rate;
		if (allowed > credit) {
			u128 back = credit * 1000000 / kc->rate;

			kc->rate_start_us = back < now ? now - (uint64_t)back
						       : 0;
		}
		kc->rate_bytes = kc->rate_bytes > UINT64_MAX - bytes
				 ? UINT64_MAX : kc->rate_bytes + bytes;
	}
	return true;
}

/* ------------------------------------------------------------- errors */

/* Count a failed request and tell the error hook.  dest is the destination
 * index of a write or a flush, ignored for a read. */
static void report_error(struct kcopyd_client *kc, const struct kc_file *f,
			 enum kc_io_op op, unsigned int dest, uint64_t pos,
			 uint64_t len, int err)
{
	bool is_write = op != KC_IO_READ;
	struct kcopyd_io_error e = {
		.fd = f->fd,
		.is_write = is_write,
		.dest = is_write ? dest : 0,
		.sector = pos >> SECTOR_SHIFT,
		.count = len >> SECTOR_SHIFT,
		.error = err,
		.is_flush = op == KC_IO_FLUSH,
		.is_lost = kc_err_lost(f, err),
	};

	if (is_write)
		kc->stats.write_errors++;
	else
		kc->stats.read_errors++;
	if (kc->error_fn) {
		kcopyd_error_fn fn = kc->error_fn;
		void *ctx = kc->error_ctx;

		pthread_mutex_unlock(&kc->lock);
		fn(&e, ctx);
		pthread_mutex_lock(&kc->lock);
	}
}

static void record_bad(struct kcopyd_client *kc, int fd, uint64_t sector,
		       uint64_t count)
{
	struct kc_bad_range *last = kc->num_bad > kc->bad_taken
				    ? &kc->bad[kc->num_bad - 1] : NULL;

	/* A range already taken is not grown: what was taken stays taken. */
	if (last && last->fd == fd && last->sector + last->count == sector) {
		last->count += count;
		return;
	}
	if (kc->num_bad == kc->cap_bad) {
		size_t cap = kc->cap_bad ? 2 * kc->cap_bad : 16;
		struct kc_bad_range *b = realloc(kc->bad, cap * sizeof(*b));

		if (!b) {
			/* The record is incomplete: kcopyd_get_bad_ranges
			 * and kcopyd_take_bad_ranges say so from now on. */
			kc->bad_lost = true;
			return;
		}
		kc->bad = b;
		kc->cap_bad = cap;
	}
	kc->bad[kc->num_bad++] = (struct kc_bad_range){ fd, sector, count };
}

/* ------------------------------------------------------------- sub-jobs */

static void sj_write(struct kcopyd_client *kc, struct kc_subjob *sj);
static void sj_io_done(struct kcopyd_client *kc, struct kc_iocb *io, int err);

/* Queue on io a request op of len bytes at offset (sectors) of region r. */
static void io_start_on(struct kcopyd_client *kc, struct kc_subjob *sj,
			struct kc_iocb *io, enum kc_io_op op, bool is_zero,
			const struct kc_region *r, uint64_t offset, size_t len,
			char *buf)
{
	io->end_io = sj_io_done;
	io->private = sj;
	io->file = r->file;
	io->op = op;
	io->is_zero = is_zero;
	io->may_direct = !(sj->job->flags & KCOPYD_NO_DIRECT);
	io->pos = (r->sector + offset) << SECTOR_SHIFT;
	io->len = len;
	io->done = 0;
	io->buf = buf;
	sj->pending++;
	io->file->ops->queue(kc, io);
}

/* Queue a read (is_write false: into io[0]) or the write to destination
 * dest (into io[dest]) of len bytes at offset (sectors) of region r. */
static void io_start(struct kcopyd_client *kc, struct kc_subjob *sj,
		     bool is_write, unsigned int dest, const struct kc_region *r,
		     uint64_t offset, size_t len, char *buf)
{
	io_start_on(kc, sj, &sj->io[is_write ? dest : 0],
		    is_write ? KC_IO_WRITE : KC_IO_READ,
		    is_write && (sj->zero_requests & (1u << dest)), r, offset,
		    len, buf);
}

/* The sub-job is over (nothing of it outstanding): give its slot back. */
static void sj_finish(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	unsigned int i;

	assert(sj->pending == 0 && job->in_flight > 0);
	/* Only data that went out to the destinations counts as done: a
	 * sub-job whose read failed, or that WRITE_SEQ never wrote, does not. */
	if (sj->state == KC_SJ_WRITING && sj->written)
		kc->stats.bytes_done += sj->bytes;
	for (i = 0; i < job->num_dests; i++) {
		free(sj->tail_buf[i]);
		sj->tail_buf[i] = NULL;
		sj->tail_step[i] = KC_TAIL_NONE;
	}
	if ((job->flags & KCOPYD_WRITE_SEQ) && sj->seq == job->write_seq) {
		job->write_seq++;
		if (job->parked && job->parked->seq == job->write_seq) {
			struct kc_subjob *next = job->parked;

			job->parked = next->next;
			next->next = NULL;
			sj_write(kc, next);
		}
	}
	throttle_update(kc);
	assert(kc->iocbs_reserved >= job_iocbs(job));
	kc->iocbs_reserved -= job_iocbs(job);
	kc_slot_put(kc, sj);
	job->in_flight--;
}

/* Let a stopped job's streams end what they hold queued: the reads of a
 * source (no more data is wanted), and with dests the writes too (a stop
 * asked for from outside must not wait for a stalled reader). */
static void cancel_streams(struct kcopyd_client *kc, struct kc_job *job,
			   bool dests)
{
	unsigned int i;

	if (job->src.file && job->src.file->ops->cancel)
		job->src.file->ops->cancel(kc, job->src.file);
	for (i = 0; dests && i < job->num_dests; i++)
		if (job->dests[i].file->ops->cancel)
			job->dests[i].file->ops->cancel(kc,
							job->dests[i].file);
}

static void job_stop(struct kcopyd_client *kc, struct kc_job *job)
{
	job->stopped = true;
	cancel_streams(kc, job, false);
	/* DATA_IN_ORDER: those waiting for a sub-job that will never reach
	 * the hook (its read failed) are not written either. */
	while (job->hook_parked) {
		struct kc_subjob *sj = job->hook_parked;

		job->hook_parked = sj->next;
		sj->next = NULL;
		sj_finish(kc, sj);
	}
	/* WRITE_SEQ: the sub-jobs waiting for their turn are not written;
	 * the kernel's would wait forever for the failed one. */
	while (job->parked) {
		struct kc_subjob *sj = job->parked;

		job->parked = sj->next;
		sj->next = NULL;
		sj_finish(kc, sj);
	}
}

static void jobs_stop_all(struct kcopyd_client *kc)
{
	struct kc_job *job;

	for (job = kc->jobs; job; job = job->next) {
		job_stop(kc, job);
		cancel_streams(kc, job, true);
	}
}

/* Destination dest failed with err.  Under KCOPYD_IGNORE_ERROR it is
 * written on, unless its connection was lost (nothing more would reach
 * it): then it is dropped, as under KCOPYD_DROP_FAILED_DESTS.  The job
 * stops once no destination is left, or at the first error otherwise. */
static void write_failed(struct kcopyd_client *kc, struct kc_job *job,
			 unsigned int dest, int err)
{
	unsigned int all = all_dests(job);
	bool lost = kc_err_lost(job->dests[dest].file, err);

	job->write_err |= 1u << dest;
	if ((job->flags & KCOPYD_IGNORE_ERROR) && !lost)
		return;
	if (job->flags & (KCOPYD_DROP_FAILED_DESTS | KCOPYD_IGNORE_ERROR)) {
		job->dropped |= 1u << dest;
		if ((job->dropped & all) != all)
			return;
	}
	job_stop(kc, job);
}

/* Bytes of sj for destination i: the sub-job's; from a stream source the
 * data read, exactly for a stream or a regular file, else to the logical
 * block of the device or export, whose last block is then merged
 * (*merge set: dest_tail); and no more than the destination's capacity,
 * past which it fails with ENOSPC: too small for the stream. */
static size_t write_len(struct kcopyd_client *kc, struct kc_subjob *sj,
			unsigned int i, bool *merge)
{
	struct kc_job *job = sj->job;
	const struct kc_region *d = &job->dests[i];
	size_t len = sj->count << SECTOR_SHIFT;
	uint64_t room;

	*merge = false;
	if (!job->stream_src)
		return len;
	len = sj->bytes;
	if (d->file->needs_whole_blocks && sj->bytes % d->file->lbs) {
		len = sj->bytes - sj->bytes % d->file->lbs + d->file->lbs;
		*merge = true;
	}
	room = d->count == 0 ? len : d->count > sj->offset
	       ? (d->count - sj->offset) << SECTOR_SHIFT : 0;
	if (room < len) {
		report_error(kc, d->file, KC_IO_WRITE, i,
			     (d->sector + sj->offset) << SECTOR_SHIFT, len,
			     -ENOSPC);
		write_failed(kc, job, i, -ENOSPC);
		len = room;	/* whole blocks of data, if any */
		*merge = false;
	}
	return len;
}

/* Write the stream's data in sj to destination i, storage written in
 * whole logical blocks whose last block is only partly the stream's: the
 * whole blocks from the buffer, then that last block read from the
 * destination, the stream's bytes copied over its start, and written
 * back, so that not a byte past the stream changes (a partition table
 * after a boot block).  One request at a time on io[i]: called to start
 * (tail_step[i] KC_TAIL_START) and at the end of each request; a failed
 * one is the destination's write error (sj_io_done). */
static void dest_tail(struct kcopyd_client *kc, struct kc_subjob *sj,
		      unsigned int i)
{
	struct kc_job *job = sj->job;
	const struct kc_region *d = &job->dests[i];
	unsigned int lbs = d->file->lbs;
	size_t head = sj->bytes - sj->bytes % lbs;
	uint64_t block = sj->offset + (head >> SECTOR_SHIFT);
	void *p;
	int r;

	switch (sj->tail_step[i]) {
	case KC_TAIL_START:
		sj->tail_step[i] = KC_TAIL_HEAD;
		if (head) {
			io_start(kc, sj, true, i, d, sj->offset, head, sj->buf);
			return;
		}
		/* fall through */
	case KC_TAIL_HEAD:
		r = posix_memalign(&p, KCOPYD_PAGE_SIZE, lbs);
		if (r) {
			sj->tail_step[i] = KC_TAIL_NONE;
			report_error(kc, d->file, KC_IO_WRITE, i,
				     (d->sector + block) << SECTOR_SHIFT, lbs,
				     -r);
			write_failed(kc, job, i, -r);
			return;
		}
		sj->tail_buf[i] = p;
		sj->tail_step[i] = KC_TAIL_READ;
		io_start_on(kc, sj, &sj->io[i], KC_IO_READ, false, d, block,
			    lbs, sj->tail_buf[i]);
		return;
	case KC_TAIL_READ:
		memcpy(sj->tail_buf[i], sj->buf + head, sj->bytes - head);
		sj->tail_step[i] = KC_TAIL_WRITE;
		io_start_on(kc, sj, &sj->io[i], KC_IO_WRITE, false, d, block,
			    lbs, sj->tail_buf[i]);
		return;
	case KC_TAIL_WRITE:
		sj->tail_step[i] = KC_TAIL_NONE;
		sj->written = true;
		return;
	case KC_TAIL_NONE:
		break;
	}
	assert(!"dest_tail: no merge under way");
}

static void dest_next(struct kcopyd_client *kc, struct kc_subjob *sj,
		      unsigned int i);
static void sj_fill_holes(struct kc_subjob *sj);

static void sj_write(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	unsigned int i;

	sj->state = KC_SJ_WRITING;
	for (i = 0; i < job->num_dests; i++) {
		size_t len;
		bool merge;

		if ((job->dropped | sj->zeroed) & (1u << i))
			continue;
		if (job->is_zero) {
			io_start(kc, sj, true, i, &job->dests[i], sj->offset,
				 sj->count << SECTOR_SHIFT, sj->buf);
		} else if (job->stream_src || job->dests[i].file->in_order) {
			/* Streams: the data as it is, in one request (no zero
			 * ranges to skip in order, nor from a stream). */
			sj->next_block[i] = sj->num_blocks;
			sj_fill_holes(sj);
			len = write_len(kc, sj, i, &merge);
			if (merge) {
				sj->tail_step[i] = KC_TAIL_START;
				dest_tail(kc, sj, i);
			} else if (len) {
				io_start(kc, sj, true, i, &job->dests[i],
					 sj->offset, len, sj->buf);
			} else {
				sj->written = true;
			}
		} else {
			dest_next(kc, sj, i);
		}
	}
	if (sj->pending == 0)
		sj_finish(kc, sj);
}

/* Write now or, under WRITE_SEQ, when every earlier sub-job has been
 * written; after an error WRITE_SEQ writes nothing more. */
static void sj_write_in_turn(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	struct kc_subjob **p;

	if (!(job->flags & KCOPYD_WRITE_SEQ)) {
		sj_write(kc, sj);
		return;
	}
	if (job->stopped) {
		sj_finish(kc, sj);
		return;
	}
	if (sj->seq == job->write_seq) {
		sj_write(kc, sj);
		return;
	}
	sj->state = KC_SJ_PARKED;
	for (p = &job->parked; *p && (*p)->seq < sj->seq; p = &(*p)->next)
		;
	sj->next = *p;
	*p = sj;
}

/* ------------------------------------------- sparse and zero-aware copies */

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

static bool block_is_zero(const struct kc_subjob *sj, unsigned int b)
{
	return (sj->zero_map[b / 64] >> (b % 64)) & 1;
}

/* The block after the run of blocks like block b. */
static unsigned int run_end(const struct kc_subjob *sj, unsigned int b)
{
	bool zero = block_is_zero(sj, b);
	unsigned int e = b + 1;

	while (e < sj->num_blocks && block_is_zero(sj, e) == zero)
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
 * bytes outside are holes.  All of it where the map is not known.  The
 * zero map starts with the blocks that are holes. */
static void sj_source_span(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	struct kc_file *f = job->src.file;
	uint64_t len = sj->count << SECTOR_SHIFT;
	uint64_t base = (job->src.sector + sj->offset) << SECTOR_SHIFT;
	uint64_t pos = 0, run, lo = len, hi = 0;
	int r;

	sj->span_lo = 0;
	sj->span_hi = len;
	sj->num_blocks = (unsigned int)((len + KC_ZERO_BLOCK - 1) /
					KC_ZERO_BLOCK);
	memset(sj->zero_map, 0, (sj->num_blocks + 63) / 64 *
				sizeof(sj->zero_map[0]));
	if (!f->can_extents)
		return;
	while (pos < len) {
		r = f->ops->extents(kc, f, base + pos, len - pos, &run);
		if (r < 0 || run == 0 || run > len - pos) {
			f->can_extents = false;
			memset(sj->zero_map, 0, (sj->num_blocks + 63) / 64 *
						sizeof(sj->zero_map[0]));
			return;
		}
		if (r) {
			if (lo == len)
				lo = pos;
			hi = pos + run;
		} else {
			mark_zero(sj, pos, pos + run, len);
		}
		pos += run;
	}
	if (lo >= hi) {
		sj->span_lo = sj->span_hi = 0;
		return;
	}
	sj->span_lo = lo / KC_ZERO_BLOCK * KC_ZERO_BLOCK;
	hi = (hi + KC_ZERO_BLOCK - 1) / KC_ZERO_BLOCK * KC_ZERO_BLOCK;
	sj->span_hi = hi < len ? hi : len;
}

/* Zero the buffer outside the span read, the source's holes, once it is
 * needed whole (for the data hook, KCOPYD_ALLOCATED, a stream); dest_next
 * zeroes the zero runs it writes as data.  Most holes are only zeroed on
 * the destinations, or skipped, and need no memset. */
static void sj_fill_holes(struct kc_subjob *sj)
{
	uint64_t len = sj->count << SECTOR_SHIFT;

	if (sj->holes_zeroed)
		return;
	memset(sj->buf, 0, sj->span_lo < len ? sj->span_lo : len);
	if (sj->span_hi < len)
		memset(sj->buf + sj->span_hi, 0, len - sj->span_hi);
	sj->holes_zeroed = true;
}

/* Complete the sub-job's zero map, after the data hook has seen the data:
 * to the source's holes (sj_source_span) add, unless
 * KCOPYD_NO_ZERO_DETECT, the blocks read as zeros; none at all under
 * KCOPYD_ALLOCATED.  Every destination starts at the first block. */
static void sj_zero_map(struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	uint64_t len = sj->count << SECTOR_SHIFT;
	unsigned int b;

	memset(sj->next_block, 0, job->num_dests * sizeof(sj->next_block[0]));
	if (job->flags & KCOPYD_ALLOCATED) {
		sj_fill_holes(sj);	/* written as data */
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

		if (!block_is_zero(sj, b) &&
		    is_zero_mem(sj->buf + start, end - start))
			sj->zero_map[b / 64] |= 1ull << (b % 64);
	}
}

/* A destination that can grow (a file) ends at least where its region
 * does: a zero range that was punched or skipped past its end does not
 * extend it, so where such a range ends the region, the backend extends
 * it.  Ranges before the region's end need nothing: the end makes the
 * file long enough.  0 or a negative errno.  Drops kc->lock. */
static int dest_extend(struct kcopyd_client *kc, const struct kc_region *d,
		       uint64_t end)
{
	struct kc_file *f = d->file;

	if (!f->can_extend ||
	    end != (d->sector + d->count) << SECTOR_SHIFT)
		return 0;
	return f->ops->extend(kc, f, end);
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
		r = dest_extend(kc, d, pos + len) < 0 ? -EIO : 1;
	if (r == 1)
		kc->stats.bytes_zeroed += len;
	return r;
}

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
	struct kc_job *job = req->private;

	assert(job->zero_in_flight > 0);
	job->zero_in_flight--;
	if (err) {
		report_error(kc, job->dests[req->dest].file, KC_IO_WRITE,
			     req->dest, req->pos, req->len, err);
		write_failed(kc, job, req->dest, err);
	}
	free(req);
}

/* Hand the gathered range of destination i, if any, to the zeroing
 * thread; where it cannot take it, zero it here.  0, or a negative errno
 * if that failed. */
static int zero_pending(struct kcopyd_client *kc, struct kc_job *job,
			unsigned int i)
{
	struct kc_zero_req *req;
	int r;

	if (!(job->zero_pend & (1u << i)))
		return 0;
	job->zero_pend &= ~(1u << i);
	if ((job->write_err | job->dropped) & (1u << i))
		return 0;	/* failed already: not written any more */
	req = malloc(sizeof(*req));
	if (req) {
		*req = (struct kc_zero_req){
			.run = zero_req_run, .end = zero_req_end,
			.private = job, .dest = i,
			.pos = job->zero_pos[i], .len = job->zero_len[i] };
		if (kc_zero_queue(kc, req) == 0) {
			job->zero_in_flight++;
			return 0;
		}
		free(req);
	}
	r = zero_local(kc, job, i, job->zero_pos[i], job->zero_len[i]);
	return r == 1 ? 0 : r < 0 ? r : -EIO;
}

/* Zero the gathered ranges of the jobs whose sub-jobs are over (a failure
 * is that destination's write error), so that their flushes and callbacks
 * come after them. */
static void jobs_zero_pending(struct kcopyd_client *kc)
{
	struct kc_job *job;
	unsigned int i;
	int r;

	for (job = kc->jobs; job; job = job->next) {
		if (!job->zero_pend || !job_over(job))
			continue;
		for (i = 0; i < job->num_dests; i++) {
			uint64_t pos = job->zero_pos[i], len = job->zero_len[i];

			r = zero_pending(kc, job, i);
			if (r < 0) {
				report_error(kc, job->dests[i].file,
					     KC_IO_WRITE, i, pos, len, r);
				write_failed(kc, job, i, r);
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
		       uint64_t *err_pos, uint64_t *err_len)
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
		r = zero_pending(kc, job, i);
		if (r < 0)
			return r;
	}
	job->zero_pend |= 1u << i;
	*gp = pos;
	*gl = len;
	return 1;
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
 * destination's file. */
static int dest_zero(struct kcopyd_client *kc, struct kc_subjob *sj,
		     unsigned int i, uint64_t start, uint64_t len,
		     bool *request, uint64_t *err_pos, uint64_t *err_len)
{
	struct kc_job *job = sj->job;
	struct kc_region *d = &job->dests[i];
	struct kc_file *f = d->file;
	uint64_t pos = ((d->sector + sj->offset) << SECTOR_SHIFT) + start;
	int r;

	*err_pos = pos;
	*err_len = len;
	if ((job->flags & KCOPYD_DEST_IS_ZERO) || f->reads_zero) {
		r = dest_extend(kc, d, pos + len);
		if (r == 0)
			kc->stats.bytes_skipped += len;
		return r < 0 ? r : 1;
	}
	if (!f->ops->zero) {
		*request = f->can_zero;
		return 0;
	}
	r = zero_gather(kc, job, i, pos, len, err_pos, err_len);
	if (r != 0)
		return r;
	return zero_local(kc, job, i, pos, len);
}

/* Take destination i of a writing copy sub-job on from its next block:
 * zero runs done by dest_zero are passed, and the first run to write is
 * queued on io[i] (its end comes back here).  At the end of the sub-job
 * the destination has all of it. */
static void dest_next(struct kcopyd_client *kc, struct kc_subjob *sj,
		      unsigned int i)
{
	struct kc_job *job = sj->job;
	struct kc_region *d = &job->dests[i];
	uint64_t len = sj->count << SECTOR_SHIFT;

	while (sj->next_block[i] < sj->num_blocks) {
		unsigned int b = sj->next_block[i], e = run_end(sj, b);
		uint64_t start = (uint64_t)b * KC_ZERO_BLOCK;
		uint64_t end = (uint64_t)e * KC_ZERO_BLOCK < len
			       ? (uint64_t)e * KC_ZERO_BLOCK : len;
		bool request = false;
		uint64_t err_pos, err_len;
		int r;

		sj->next_block[i] = e;
		if (block_is_zero(sj, b)) {
			r = dest_zero(kc, sj, i, start, end - start, &request,
				      &err_pos, &err_len);
			if (r < 0) {
				report_error(kc, d->file, KC_IO_WRITE, i,
					     err_pos, err_len, r);
				sj->next_block[i] = sj->num_blocks;
				write_failed(kc, job, i, r);
				return;
			}
			if (r == 1)
				continue;
		}
		if (block_is_zero(sj, b) && !sj->holes_zeroed)
			memset(sj->buf + start, 0, end - start);
		if (request)
			sj->zero_requests |= 1u << i;
		else
			sj->zero_requests &= ~(1u << i);
		io_start(kc, sj, true, i, d, sj->offset + (start >> SECTOR_SHIFT),
			 end - start, sj->buf + start);
		return;
	}
	sj->written = true;
}

/* Park sj in job->hook_parked, sorted by seq, until its turn at the hook. */
static void park_for_hook(struct kc_job *job, struct kc_subjob *sj)
{
	struct kc_subjob **p;

	sj->state = KC_SJ_PARKED;
	for (p = &job->hook_parked; *p && (*p)->seq < sj->seq;
	     p = &(*p)->next)
		;
	sj->next = *p;
	*p = sj;
}

/* The data is in the buffer: hand it to the data hook, then write it.
 * Under DATA_IN_ORDER a sub-job read before its predecessors waits for its
 * turn, and one that has had it lets the next waiting one through.  Hooks
 * run without kc->lock, so that they may take locks of their own that
 * other threads hold while calling kcopyd_get_stats(). */
static void sj_data_ready(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	bool in_order = job->flags & KCOPYD_DATA_IN_ORDER;

	if (in_order && job->stopped && sj->seq != job->hook_seq) {
		sj_finish(kc, sj);	/* a predecessor may never come */
		return;
	}
	if (in_order && (sj->seq != job->hook_seq ||
			 behind_earlier(kc, job, false))) {
		assert(sj->seq >= job->hook_seq);
		park_for_hook(job, sj);	/* jobs_hook_release lets it go */
		return;
	}
	for (;;) {
		if (kc->data_fn) {
			kcopyd_data_fn fn = kc->data_fn;
			void *ctx = kc->data_ctx;

			sj_fill_holes(sj);	/* the hook sees zeros */

			pthread_mutex_unlock(&kc->lock);
			fn(job->src.file->fd, job->src.sector + sj->offset,
			   sj->count, sj->buf, ctx);
			pthread_mutex_lock(&kc->lock);
		}
		/* Zero ranges after the hook saw the data; streams are
		 * written as they come. */
		if (job->num_dests && !job->stream_src)
			sj_zero_map(sj);
		sj_write_in_turn(kc, sj);
		if (!in_order)
			return;
		job->hook_seq++;
		sj = job->hook_parked;
		if (!sj || sj->seq != job->hook_seq)
			return;
		job->hook_parked = sj->next;
		sj->next = NULL;
	}
}

static void push_range(struct kc_subjob *sj, uint64_t offset, uint64_t count)
{
	sj->todo[sj->depth++] = (struct kc_range){ offset, count };
}

/* Push the two halves of a failed range, the first on top, so that the
 * bisection goes through the range in ascending order. */
static void push_halves(struct kc_subjob *sj, uint64_t offset, uint64_t count)
{
	uint64_t blocks = count / sj->block_sectors;
	uint64_t first = blocks / 2 * sj->block_sectors;

	push_range(sj, offset + first, count - first);
	push_range(sj, offset, first);
}

/* Read the next range on the stack; when it is empty the isolation is
 * over: the sub-job goes on to its writes and the next waiting one starts. */
static void isolate_next(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_range r;

	while (sj && sj->depth == 0) {
		kc->isolating = kc->isolate_wait;
		if (kc->isolating) {
			kc->isolate_wait = kc->isolating->next;
			kc->isolating->next = NULL;
		}
		sj_data_ready(kc, sj);
		sj = kc->isolating;
	}
	if (!sj)
		return;
	r = sj->todo[--sj->depth];
	io_start(kc, sj, false, 0, &sj->job->src, sj->offset + r.offset,
		 r.count << SECTOR_SHIFT, sj->buf + (r.offset << SECTOR_SHIFT));
}

static void sj_read_done(struct kcopyd_client *kc, struct kc_subjob *sj,
			 int err)
{
	struct kc_job *job = sj->job;
	struct kc_subjob **p;

	if (!err) {
		sj_data_ready(kc, sj);
		return;
	}
	/* A stream cannot be read again: its errors always stop the job.
	 * Nor is a lost connection a bad sector: every re-read would fail,
	 * and nothing of the sub-job was read. */
	if (!(job->flags & KCOPYD_IGNORE_ERROR) || job->stream_src ||
	    kc_err_lost(job->src.file, err)) {
		job->read_err = 1;
		job_stop(kc, job);
		sj_finish(kc, sj);
		return;
	}
	/* Isolate the unreadable blocks by bisection, one read at a time.
	 * read_err is set only if some block really is unreadable: a request
	 * can fail for a bad neighbour the block layer merged it with. */
	sj->state = KC_SJ_REREADING;
	sj->block_sectors = job->src.file->lbs >> SECTOR_SHIFT;
	sj->depth = 0;
	if (sj->count > sj->block_sectors)
		push_halves(sj, 0, sj->count);
	else
		push_range(sj, 0, sj->count);
	if (kc->isolating) {
		for (p = &kc->isolate_wait; *p; p = &(*p)->next)
			;
		*p = sj;
		return;
	}
	kc->isolating = sj;
	isolate_next(kc, sj);
}

/* The source's connection was lost while sj was isolating bad sectors:
 * the rest of it cannot be read.  Its job stops with a read error, sj ends
 * without being written (what it did not read is not zeros), and the next
 * waiting sub-job takes its turn. */
static void isolate_abandon(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;

	sj->depth = 0;
	kc->isolating = kc->isolate_wait;
	if (kc->isolating) {
		kc->isolate_wait = kc->isolating->next;
		kc->isolating->next = NULL;
	}
	job->read_err = 1;
	job_stop(kc, job);
	sj_finish(kc, sj);
	isolate_next(kc, kc->isolating);
}

static void sj_reread_done(struct kcopyd_client *kc, struct kc_subjob *sj,
			   struct kc_iocb *io, int err)
{
	uint64_t offset = (io->pos >> SECTOR_SHIFT) - sj->job->src.sector -
			  sj->offset;
	uint64_t count = io->len >> SECTOR_SHIFT;

	if (err && kc_err_lost(io->file, err)) {
		isolate_abandon(kc, sj);
		return;
	}
	if (err && count > sj->block_sectors) {
		push_halves(sj, offset, count);
	} else if (err) {
		memset(io->buf, 0, io->len);
		sj->job->read_err = 1;
		record_bad(kc, io->file->fd, io->pos >> SECTOR_SHIFT, count);
	}
	isolate_next(kc, sj);
}

static void sj_zero(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	unsigned int i;
	bool need_buffer = false;

	for (i = 0; i < job->num_dests; i++) {
		struct kc_file *f = job->dests[i].file;
		int r;

		if (!f->ops->zero && f->can_zero) {
			/* A request that zeroes without data (WRITE_ZEROES),
			 * asynchronous; the zeroed buffer is there if the
			 * storage refuses it. */
			sj->zero_requests |= 1u << i;
			need_buffer = true;
			continue;
		}
		/* Allocated zeros (no hole), as the kernel's dm_kcopyd_zero */
		r = f->ops->zero ? f->ops->zero(kc, f, (job->dests[i].sector +
							sj->offset) << SECTOR_SHIFT,
						sj->count << SECTOR_SHIFT, false)
				 : 0;
		if (r == 1) {
			kc->stats.bytes_written += sj->count << SECTOR_SHIFT;
			sj->zeroed |= 1u << i;
			sj->written = true;
		} else if (r < 0) {
			report_error(kc, job->dests[i].file, KC_IO_WRITE, i,
				     (job->dests[i].sector + sj->offset)
				     << SECTOR_SHIFT,
				     sj->count << SECTOR_SHIFT, r);
			sj->zeroed |= 1u << i;
			write_failed(kc, job, i, r);
		} else {
			need_buffer = true;
		}
	}
	if (need_buffer)
		memset(sj->buf, 0, sj->count << SECTOR_SHIFT);
	sj_write_in_turn(kc, sj);
}

static void sj_start(struct kcopyd_client *kc, struct kc_job *job,
		     uint64_t sectors)
{
	struct kc_subjob *sj;

	throttle_update(kc);
	sj = kc_slot_get(kc);
	assert(sj);
	sj->job = job;
	sj->offset = job->issued;
	sj->count = sectors;
	sj->bytes = sectors << SECTOR_SHIFT;
	sj->seq = job->next_seq++;
	sj->pending = 0;
	sj->zeroed = 0;
	sj->zero_requests = 0;
	sj->written = false;
	job->issued += sectors;
	job->in_flight++;
	kc->iocbs_reserved += job_iocbs(job);
	assert(kc->iocbs_reserved <= kc->ring_size);
	if (job->is_zero) {
		sj_zero(kc, sj);
	} else {
		uint64_t len = sectors << SECTOR_SHIFT;

		sj->state = KC_SJ_READING;
		sj_source_span(kc, sj);
		sj->holes_zeroed = sj->span_lo == 0 && sj->span_hi == len;
		kc->stats.bytes_holes += len - (sj->span_hi - sj->span_lo);
		if (sj->span_hi == sj->span_lo)
			sj_read_done(kc, sj, 0);	/* a hole: nothing to read */
		else
			io_start(kc, sj, false, 0, &job->src,
				 sj->offset + (sj->span_lo >> SECTOR_SHIFT),
				 sj->span_hi - sj->span_lo,
				 sj->buf + sj->span_lo);
	}
}

/* The end of one request of a sub-job (io.c's end_io). */
/* A read of a stream source came back short: the stream ended in it.  The
 * sub-job keeps what was read, zeroed to the page past it (a logical block
 * of any destination); true if nothing was, and the sub-job is over. */
static bool stream_ended(struct kcopyd_client *kc, struct kc_subjob *sj,
			 const struct kc_iocb *io)
{
	size_t pad = (KCOPYD_PAGE_SIZE - io->done % KCOPYD_PAGE_SIZE) %
		     KCOPYD_PAGE_SIZE;

	assert(sj->job->stream_src);
	sj->job->eof = true;
	sj->bytes = io->done;
	if (!sj->bytes) {
		sj_finish(kc, sj);
		return true;
	}
	sj->count = (sj->bytes + KCOPYD_SECTOR_SIZE - 1) >> SECTOR_SHIFT;
	memset(sj->buf + sj->bytes, 0, pad);
	return false;
}

static void sj_io_done(struct kcopyd_client *kc, struct kc_iocb *io, int err)
{
	struct kc_subjob *sj = io->private;

	assert(sj->pending > 0 && sj->job);
	sj->pending--;
	if (err) {
		/* Re-reads report through the bad range log, but for a lost
		 * connection, which ends the isolation.  (Reads while
		 * writing are of a destination: dest_tail.) */
		if (sj->state != KC_SJ_REREADING ||
		    kc_err_lost(io->file, err))
			report_error(kc, io->file,
				     sj->state == KC_SJ_WRITING ? KC_IO_WRITE
								: io->op,
				     (unsigned int)(io - sj->io), io->pos,
				     io->len, err);
		else
			kc->stats.read_errors++;
	}
	switch (sj->state) {
	case KC_SJ_READING:
		assert(sj->pending == 0);
		if (!err && io->done < io->len && stream_ended(kc, sj, io))
			break;
		sj_read_done(kc, sj, err);
		break;
	case KC_SJ_REREADING:
		assert(sj->pending == 0);
		sj_reread_done(kc, sj, io, err);
		break;
	case KC_SJ_WRITING:
		if (sj->job->is_zero) {
			if (err)
				write_failed(kc, sj->job,
					     (unsigned int)(io - sj->io), err);
			else
				sj->written = true;
		} else if (err) {
			sj->next_block[io - sj->io] = sj->num_blocks;
			sj->tail_step[io - sj->io] = KC_TAIL_NONE;
			write_failed(kc, sj->job, (unsigned int)(io - sj->io),
				     err);
		} else if (sj->tail_step[io - sj->io] != KC_TAIL_NONE) {
			dest_tail(kc, sj, (unsigned int)(io - sj->io));
		} else {
			if (io->is_zero) {
				/* WRITE_ZEROES: zeroed, not written */
				kc->stats.bytes_written -= io->len;
				kc->stats.bytes_zeroed += io->len;
			}
			dest_next(kc, sj, (unsigned int)(io - sj->io));
		}
		if (sj->pending == 0 && sj->job->num_dests > 1)
			kc->stats.held_back[io - sj->io]++;
		if (sj->pending == 0)
			sj_finish(kc, sj);
		break;
	case KC_SJ_FREE:
	case KC_SJ_PARKED:
		assert(!"no I/O is outstanding in this state");
		abort();
	}
}

/* ---------------------------------------------------------- flushes */

/* The end of the flush of one destination (io.c's end_io).  A failed flush
 * is a write error of that destination. */
static void flush_io_done(struct kcopyd_client *kc, struct kc_iocb *io,
			  int err)
{
	struct kc_job *job = io->private;
	unsigned int dest = (unsigned int)(io - job->flush_io);

	assert(job->flush_pending > 0 && kc->iocbs_reserved > 0);
	job->flush_pending--;
	kc->iocbs_reserved--;
	if (err) {
		job->write_err |= 1u << dest;
		report_error(kc, io->file, KC_IO_FLUSH, dest, 0, 0, err);
	}
}

/* Queue the flushes of the jobs that are over, each job's all at once when
 * the ring has room for them. */
static void jobs_flush(struct kcopyd_client *kc)
{
	struct kc_job *job;

	for (job = kc->jobs; job; job = job->next) {
		unsigned int todo = flush_targets(job), i;

		if (!todo || !job_over(job) || job->zero_pend ||
		    job->zero_in_flight ||
		    kc->iocbs_reserved + (unsigned int)__builtin_popcount(todo) >
		    kc->ring_size)
			continue;
		job->flush_started = true;
		for (i = 0; i < job->num_dests; i++) {
			struct kc_iocb *io = &job->flush_io[i];

			if (!(todo & (1u << i)))
				continue;
			*io = (struct kc_iocb){
				.end_io = flush_io_done,
				.private = job,
				.file = job->dests[i].file,
				.op = KC_IO_FLUSH,
			};
			job->flush_pending++;
			kc->iocbs_reserved++;
			io->file->ops->queue(kc, io);
		}
	}
}

/* KCOPYD_DATA_ACROSS_JOBS: let through the data hook the sub-jobs whose
 * turn it is and that waited only for earlier jobs. */
static void jobs_hook_release(struct kcopyd_client *kc)
{
	struct kc_job *job;

	for (job = kc->jobs; job; job = job->next) {
		struct kc_subjob *sj = job->hook_parked;

		if (!(job->flags & KCOPYD_DATA_ACROSS_JOBS) || !sj ||
		    sj->seq != job->hook_seq || behind_earlier(kc, job, false))
			continue;
		job->hook_parked = sj->next;
		sj->next = NULL;
		sj_data_ready(kc, sj);
	}
}

/* Take the jobs submitted since the last call and start as many sub-jobs as
 * there are free slots and room in the I/O queue, a job at a time in turn,
 * then the flushes of the jobs that are over.  *timeout_ms is lowered when
 * the throttle holds work back. */
void kc_jobs_schedule(struct kcopyd_client *kc, int *timeout_ms)
{
	uint64_t slot_sectors = (uint64_t)kc->slot_pages *
				(KCOPYD_PAGE_SIZE >> SECTOR_SHIFT);
	struct kc_job **tail, *job;

	if (kc->stop_requested) {
		kc->stop_requested = false;
		jobs_stop_all(kc);
	}
	for (tail = &kc->jobs; *tail; tail = &(*tail)->next)
		;
	*tail = kc->new_jobs;
	kc->new_jobs = NULL;
	kc->new_tail = &kc->new_jobs;

	while (kc->free_slots && !kc->isolating) {
		struct kc_job **p;
		uint64_t sectors;

		for (p = &kc->jobs; *p && (!job_runnable(*p) ||
					   behind_earlier(kc, *p, true));
		     p = &(*p)->next)
			;
		job = *p;
		if (!job)
			break;
		/* Its iocbs must fit the ring; else wait for sub-jobs in
		 * flight to end (there are some: a ring never holds fewer
		 * iocbs than one sub-job of any job needs). */
		if (kc->iocbs_reserved + job_iocbs(job) > kc->ring_size)
			break;
		sectors = job_sectors(job) - job->issued;
		if (sectors > slot_sectors)
			sectors = slot_sectors;
		if (!may_start(kc, sectors << SECTOR_SHIFT, timeout_ms))
			break;
		/* Round robin: the job goes to the back of the line. */
		*p = job->next;
		job->next = NULL;
		for (tail = p; *tail; tail = &(*tail)->next)
			;
		*tail = job;
		sj_start(kc, job, sectors);
	}
	jobs_hook_release(kc);
	jobs_zero_pending(kc);
	jobs_flush(kc);
}

/* Take the finished jobs off kc->jobs and run their callbacks, in the order
 * of kc->jobs, without kc->lock.  Returns whether any ran. */
bool kc_jobs_run_callbacks(struct kcopyd_client *kc)
{
	struct kc_job **p = &kc->jobs, *done = NULL, **tail = &done, *job;

	while ((job = *p)) {
		if (job_finished(job)) {
			assert(!job->parked);
			*p = job->next;
			job->next = NULL;
			*tail = job;
			tail = &job->next;
		} else {
			p = &job->next;
		}
	}
	if (!done)
		return false;
	while ((job = done)) {
		done = job->next;
		pthread_mutex_unlock(&kc->lock);
		job->fn(job->read_err, job->write_err, job->context);
		pthread_mutex_lock(&kc->lock);
		kc_job_free(kc, job);
		assert(kc->jobs_outstanding > 0);
		kc->stats.jobs_completed++;
		kc->jobs_outstanding--;
		pthread_cond_broadcast(&kc->idle);
	}
	return true;
}

/* Free a job that is on no list, and release the files of its regions (all
 * of them, or those kc_region_check() filled in so far).  Called with
 * kc->lock held. */
void kc_job_free(struct kcopyd_client *kc, struct kc_job *job)
{
	unsigned int i;

	kc_region_put(kc, &job->src);
	for (i = 0; i < job->num_dests; i++)
		kc_region_put(kc, &job->dests[i]);
	free(job->flush_io);
	free(job);
}
