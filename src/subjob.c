/* subjob.c - the sub-job state machine, KCOPYD_WRITE_SEQ and the data
 * hook's order.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A sub-job takes one slot of the page budget and goes
 *
 *   READING -> [REREADING] -> [PARKED] -> WRITING -> free
 *
 * REREADING only under KCOPYD_IGNORE_ERROR after a failed read (isolate.c:
 * the slot is read again by bisection, and the blocks that fail are zeroed
 * in the buffer and logged as bad).  PARKED under KCOPYD_WRITE_SEQ (the
 * sub-job was read before its predecessors were written) or
 * KCOPYD_DATA_IN_ORDER (before its predecessors went through the data
 * hook).  A zeroing sub-job starts at WRITING.
 *
 * Copies are sparse and zero-aware (sparse.c): a sub-job reads only the
 * span of its source that the source's map has data in; after the data
 * hook, zero blocks are found, and each destination goes through the
 * sub-job's runs of blocks one request at a time (dest_next): data runs
 * are written, zero runs zeroed the cheapest way its storage allows, or
 * written, from a stream source too: there each destination's runs end
 * with the data that came (write_len), to the byte for a file, which the
 * job extends to the stream's end when it is over (sparse.c).  Storage is
 * reached only through the files' backends (struct kc_file_ops) and asked
 * only for capabilities, never for its kind: an in_order destination
 * takes the data as it is, in one request; one that needs_whole_blocks
 * gets a stream's last partial block merged (dest_tail), its whole blocks
 * going through the runs.
 *
 * Called by the scheduler (schedule.c); calls sparse.c, isolate.c,
 * throttle.c and job.c, which call back through function pointers only.
 * Runs on the engine thread with kc->lock held, dropped only around the
 * hooks and synchronous zeroing calls, during which other threads can only
 * add jobs and request a stop (kcopyd-private.h).
 */
#include <config.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "kcopyd-private.h"

static void sj_write(struct kcopyd_client *kc, struct kc_subjob *sj);
static void sj_io_done(struct kcopyd_client *kc, struct kc_iocb *io, int err);
static void dest_next(struct kcopyd_client *kc, struct kc_subjob *sj,
		      unsigned int i);

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

static void tail_lend(struct kcopyd_client *kc);

/* The sub-job is over (nothing of it outstanding): give its slot back. */
static void sj_finish(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;

	assert(sj->pending == 0 && job->in_flight > 0);
	/* Only data that went out to the destinations counts as done: a
	 * sub-job whose read failed, or that WRITE_SEQ never wrote, does not. */
	if (sj->state == KC_SJ_WRITING && sj->written)
		kc->stats.bytes_done += sj->bytes - sj->skip_bytes;
	assert(!sj->tail_slot && sj->tail_step == KC_TAIL_NONE);
	if ((job->flags & KCOPYD_WRITE_SEQ) && sj->seq == job->write_seq) {
		job->write_seq++;
		if (job->parked && job->parked->seq == job->write_seq) {
			struct kc_subjob *next = job->parked;

			job->parked = next->next;
			next->next = NULL;
			sj_write(kc, next);
		}
	}
	kc_throttle_update(kc);
	assert(kc->iocbs_reserved >= kc_job_iocbs(job));
	kc->iocbs_reserved -= kc_job_iocbs(job);
	if (job->tail_borrow)
		kc->tail_own--;
	kc_slot_put(kc, sj);
	job->in_flight--;
	tail_lend(kc);
}

void kc_job_stop(struct kcopyd_client *kc, struct kc_job *job)
{
	job->stopped = true;
	kc_job_cancel(kc, job, false);
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

/* Destination dest failed with err.  Under KCOPYD_IGNORE_ERROR it is
 * written on, unless its connection was lost (nothing more would reach
 * it): then it is dropped, as under KCOPYD_DROP_FAILED_DESTS.  The job
 * stops once no destination is left, or at the first error otherwise. */
void kc_job_write_failed(struct kcopyd_client *kc, struct kc_job *job,
			 unsigned int dest, int err)
{
	unsigned int all = kc_job_all_dests(job);
	bool lost = kc_err_lost(job->dests[dest].file, err);

	job->write_err |= 1u << dest;
	if ((job->flags & KCOPYD_IGNORE_ERROR) && !lost)
		return;
	if (job->flags & (KCOPYD_DROP_FAILED_DESTS | KCOPYD_IGNORE_ERROR)) {
		job->dropped |= 1u << dest;
		if ((job->dropped & all) != all)
			return;
	}
	kc_job_stop(kc, job);
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
	if (!job->src_in_order)
		return len;
	len = sj->bytes;
	if (d->file->needs_whole_blocks && sj->bytes % d->file->lbs) {
		len = sj->bytes - sj->bytes % d->file->lbs + d->file->lbs;
		*merge = true;
	}
	room = d->count == 0 ? len : d->count > sj->offset
	       ? (d->count - sj->offset) << SECTOR_SHIFT : 0;
	if (room < len) {
		kc_report_error(kc, d->file, KC_IO_WRITE, i,
				(d->sector + sj->offset) << SECTOR_SHIFT, len,
				-ENOSPC);
		kc_job_write_failed(kc, job, i, -ENOSPC);
		len = room;	/* whole blocks of data, if any */
		*merge = false;
	}
	return len;
}

/* The merge of a stream's last block into destination sj->tail_dest,
 * storage written in whole logical blocks whose last block is only partly
 * the stream's (its whole blocks were written from the buffer, sj_write):
 * that block is read from the destination into sj->tail_buf, the stream's
 * last bytes are copied over its start and it is written back, so that not
 * a byte past the stream changes (a partition table after a boot block).
 * One request at a time on io[tail_dest]; called at the end of each (a
 * failed one is the destination's write error: sj_io_done). */
static void dest_tail(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	unsigned int i = sj->tail_dest;
	const struct kc_region *d = &sj->job->dests[i];
	unsigned int lbs = d->file->lbs;
	size_t head = sj->bytes - sj->bytes % lbs;
	uint64_t block = sj->offset + (head >> SECTOR_SHIFT);

	switch (sj->tail_step) {
	case KC_TAIL_READ:
		memcpy(sj->tail_buf, sj->buf + head, sj->bytes - head);
		sj->tail_step = KC_TAIL_WRITE;
		io_start_on(kc, sj, &sj->io[i], KC_IO_WRITE, false, d, block,
			    lbs, sj->tail_buf);
		return;
	case KC_TAIL_WRITE:
		sj->tail_step = KC_TAIL_NONE;
		sj->written = true;
		return;
	}
	assert(!"dest_tail: no merge under way");
}

/* Find sj->tail_buf, a block of the budget for the merges of the
 * destinations in sj->tail_todo, as large as the largest of their logical
 * blocks (lmax), aligned to it, and apart from the stream's last bytes
 * (in the slot's block [head, head + lmax), head = bytes rounded down to
 * lmax: every destination's last partial block starts at or after head).
 * Called once every write of sj has ended, so that the rest of the slot
 * is free: its first block if the stream's last bytes are not in it, else
 * its second if the slot has one (lmax at most half a slot).  Otherwise
 * (a slot of one block of the stream's end: sub-jobs of one logical block,
 * or a stream shorter than one block in a slot of less than two) a free
 * slot is lent, which is always a whole block: a budget of one slot was
 * refused for such a job at submission (client.c) and, as no more than
 * all slots but one may be held by the sub-jobs of such jobs (tail_own,
 * kc_jobs_schedule), some slot is always free, lent or held by a sub-job
 * that ends without one: the wait (kc->tail_wait, served first by
 * tail_lend) ends.  Merges go one destination after another through the
 * one block: a stream's end is one block per destination, and one block
 * is what is sure to be there.  Returns false if sj has to wait. */
static bool tail_area(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	const struct kc_job *job = sj->job;
	size_t slot = (size_t)kc->slot_pages * KCOPYD_PAGE_SIZE;
	unsigned int lmax = 0, i;
	struct kc_subjob **p;
	size_t head;

	for (i = 0; i < job->num_dests; i++)
		if ((sj->tail_todo & (1u << i)) &&
		    job->dests[i].file->lbs > lmax)
			lmax = job->dests[i].file->lbs;
	head = sj->bytes - sj->bytes % lmax;
	if (head >= lmax) {
		sj->tail_buf = sj->buf;
		return true;
	}
	if (slot >= 2 * (size_t)lmax) {
		sj->tail_buf = sj->buf + lmax;
		return true;
	}
	assert(job->tail_borrow && kc->num_slots >= 2);
	if (!kc->free_slots) {
		for (p = &kc->tail_wait; *p; p = &(*p)->next)
			;
		sj->next = NULL;
		*p = sj;
		return false;
	}
	kc_throttle_update(kc);
	sj->tail_slot = kc_slot_get(kc);
	sj->tail_slot->state = KC_SJ_LENT;
	sj->tail_buf = sj->tail_slot->buf;
	return true;
}

/* Start the merge of the next destination in sj->tail_todo (those of its
 * destinations not dropped), once every write of sj has ended (pending 0);
 * with none left, give back the block.  Returns true while sj has merging
 * to do: a request queued, or a slot awaited. */
static bool tail_next(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	const struct kc_region *d;
	unsigned int i, lbs;
	uint64_t block;

	assert(sj->pending == 0 && sj->tail_step == KC_TAIL_NONE);
	sj->tail_todo &= ~job->dropped;
	if (!sj->tail_todo) {
		if (sj->tail_slot) {
			kc_throttle_update(kc);
			kc_slot_put(kc, sj->tail_slot);
			sj->tail_slot = NULL;
			tail_lend(kc);
		}
		sj->tail_buf = NULL;
		return false;
	}
	if (!sj->tail_buf && !tail_area(kc, sj))
		return true;
	i = (unsigned int)__builtin_ctz(sj->tail_todo);
	d = &job->dests[i];
	lbs = d->file->lbs;
	block = sj->offset + ((sj->bytes - sj->bytes % lbs) >> SECTOR_SHIFT);
	sj->tail_todo &= ~(1u << i);
	sj->tail_dest = i;
	sj->tail_step = KC_TAIL_READ;
	io_start_on(kc, sj, &sj->io[i], KC_IO_READ, false, d, block, lbs,
		    sj->tail_buf);
	return true;
}

/* Slots freed go to the sub-jobs waiting for one for their merge first. */
static void tail_lend(struct kcopyd_client *kc)
{
	struct kc_subjob *sj;

	while (kc->tail_wait && kc->free_slots) {
		sj = kc->tail_wait;
		kc->tail_wait = sj->next;
		sj->next = NULL;
		if (!tail_next(kc, sj))
			sj_finish(kc, sj);
	}
}

/* Write sj to each destination: a stream gets the data as it is, the
 * others go through its runs of data and zero blocks (dest_next), to the
 * end write_len gives. */
static void sj_write(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	unsigned int i;

	sj->state = KC_SJ_WRITING;
	if (job->src_in_order) {
		uint64_t end = (sj->offset << SECTOR_SHIFT) + sj->bytes;

		if (end > job->src_bytes)
			job->src_bytes = end;
	}
	for (i = 0; i < job->num_dests; i++) {
		size_t len;
		bool merge;

		if ((job->dropped | sj->zeroed) & (1u << i))
			continue;
		if (job->is_zero) {
			io_start(kc, sj, true, i, &job->dests[i], sj->offset,
				 sj->count << SECTOR_SHIFT, sj->buf);
			continue;
		}
		len = write_len(kc, sj, i, &merge);
		if (merge) {
			/* the whole blocks now, the last one once every
			 * write has ended: tail_next */
			sj->tail_todo |= 1u << i;
			len -= job->dests[i].file->lbs;
		}
		sj->write_end[i] = len;
		if (!len) {
			sj->next_block[i] = sj->num_blocks;
			if (!merge)
				sj->written = true;
		} else if (job->dests[i].file->in_order) {
			/* A stream: the data as it is, in one request (no
			 * zero ranges to skip in order). */
			sj->next_block[i] = sj->num_blocks;
			kc_sj_fill_holes(sj);
			io_start(kc, sj, true, i, &job->dests[i], sj->offset,
				 len, sj->buf);
		} else {
			dest_next(kc, sj, i);
		}
	}
	if (sj->pending == 0 && !tail_next(kc, sj))
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

/* Take destination i of a writing copy sub-job on from its next block:
 * zero runs done by kc_dest_zero are passed, and the first run to write is
 * queued on io[i] (its end comes back here).  At the end of the sub-job
 * (sj->write_end[i]: from a stream, its data, to the byte) the
 * destination has all of it. */
static void dest_next(struct kcopyd_client *kc, struct kc_subjob *sj,
		      unsigned int i)
{
	struct kc_job *job = sj->job;
	struct kc_region *d = &job->dests[i];
	uint64_t len = sj->write_end[i];

	while (sj->next_block[i] < sj->num_blocks &&
	       (uint64_t)sj->next_block[i] * KC_ZERO_BLOCK < len) {
		unsigned int b = sj->next_block[i], e = kc_run_end(sj, b);
		uint64_t start = (uint64_t)b * KC_ZERO_BLOCK;
		uint64_t end = (uint64_t)e * KC_ZERO_BLOCK < len
			       ? (uint64_t)e * KC_ZERO_BLOCK : len;
		bool request = false;
		uint64_t err_pos, err_len;
		int r;

		sj->next_block[i] = e;
		if (kc_block_is_skipped(sj, b))
			continue;	/* the map leaves it out */
		if (kc_block_is_zero(sj, b)) {
			r = kc_dest_zero(kc, sj, i, start, end - start,
					 &request, &err_pos, &err_len,
					 kc_job_write_failed);
			if (r < 0) {
				kc_report_error(kc, d->file, KC_IO_WRITE, i,
						err_pos, err_len, r);
				sj->next_block[i] = sj->num_blocks;
				kc_job_write_failed(kc, job, i, r);
				return;
			}
			if (r == 1)
				continue;
		}
		if (kc_block_is_zero(sj, b) && !sj->holes_zeroed)
			memset(sj->buf + start, 0, end - start);
		if (request)
			sj->zero_requests |= 1u << i;
		else
			sj->zero_requests &= ~(1u << i);
		io_start(kc, sj, true, i, d, sj->offset + (start >> SECTOR_SHIFT),
			 end - start, sj->buf + start);
		return;
	}
	sj->next_block[i] = sj->num_blocks;
	sj->written = true;
}

/* kcopyd_read: the part of sj's data that the caller asked for into the
 * caller's buffer. */
static void read_into(struct kc_subjob *sj)
{
	const struct kc_job *job = sj->job;
	uint64_t s = sj->offset << SECTOR_SHIFT, e = s + sj->bytes;
	uint64_t want_s = job->read_pos, want_e = want_s + job->read_len;
	uint64_t from = s > want_s ? s : want_s, to = e < want_e ? e : want_e;

	kc_sj_fill_holes(sj);
	if (from < to)
		memcpy(job->read_buf + (from - want_s), sj->buf + (from - s),
		       to - from);
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
void kc_sj_data_ready(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	struct kc_job *job = sj->job;
	bool in_order = job->flags & KCOPYD_DATA_IN_ORDER;

	if (in_order && job->stopped && sj->seq != job->hook_seq) {
		sj_finish(kc, sj);	/* a predecessor may never come */
		return;
	}
	if (in_order && (sj->seq != job->hook_seq ||
			 kc_job_behind_earlier(kc, job, false))) {
		assert(sj->seq >= job->hook_seq);
		park_for_hook(job, sj);	/* jobs_hook_release (schedule.c) */
		return;
	}
	for (;;) {
		if (job->read_buf) {
			read_into(sj);
		} else if (kc->data_fn) {
			kcopyd_data_fn fn = kc->data_fn;
			void *ctx = kc->data_ctx;

			kc_sj_fill_holes(sj);	/* the hook sees zeros */

			pthread_mutex_unlock(&kc->lock);
			fn(job->src.file->fd, job->src.sector + sj->offset,
			   sj->count, sj->buf, ctx);
			pthread_mutex_lock(&kc->lock);
		}
		/* Zero ranges after the hook saw the data, from a stream
		 * source too (stream destinations take the data as it is). */
		if (job->num_dests)
			kc_sj_zero_map(sj);
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

/* The isolation of bad blocks (isolate.c) reads a range of sj's source
 * (offset and count in sectors from the sub-job's start) into its buffer
 * ... */
static void isolate_read(struct kcopyd_client *kc, struct kc_subjob *sj,
			 uint64_t offset, uint64_t count)
{
	io_start(kc, sj, false, 0, &sj->job->src, sj->offset + offset,
		 count << SECTOR_SHIFT, sj->buf + (offset << SECTOR_SHIFT));
}

/* ... and gives up on sj, whose source's connection was lost: its job
 * stops with a read error, sj ends without being written (what it did not
 * read is not zeros). */
static void isolate_lost(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	sj->job->read_err = 1;
	kc_job_stop(kc, sj->job);
	sj_finish(kc, sj);
}

static const struct kc_isolate_ops isolate_ops = {
	.read = isolate_read,
	.over = kc_sj_data_ready,
	.lost = isolate_lost,
};

/* The read of sj ended: the data goes on to the hook and the writes, or
 * the job stops with a read error, or, under KCOPYD_IGNORE_ERROR, the
 * unreadable blocks are isolated. */
static void sj_read_done(struct kcopyd_client *kc, struct kc_subjob *sj,
			 int err)
{
	struct kc_job *job = sj->job;

	if (!err) {
		kc_sj_data_ready(kc, sj);
		return;
	}
	/* A stream cannot be read again: its errors always stop the job.
	 * Nor is a lost connection a bad sector: every re-read would fail,
	 * and nothing of the sub-job was read. */
	if (!(job->flags & KCOPYD_IGNORE_ERROR) || job->src_in_order ||
	    kc_err_lost(job->src.file, err)) {
		job->read_err = 1;
		kc_job_stop(kc, job);
		sj_finish(kc, sj);
		return;
	}
	kc_isolate_start(kc, sj, &isolate_ops);
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
			kc_report_error(kc, f, KC_IO_WRITE, i,
					(job->dests[i].sector + sj->offset)
					<< SECTOR_SHIFT,
					sj->count << SECTOR_SHIFT, r);
			sj->zeroed |= 1u << i;
			kc_job_write_failed(kc, job, i, r);
		} else {
			need_buffer = true;
		}
	}
	if (need_buffer)
		memset(sj->buf, 0, sj->count << SECTOR_SHIFT);
	sj_write_in_turn(kc, sj);
}

/* Queue the read of the next run of sj's span from sj->read_at: all of
 * the span at once, but for the blocks a job's map skips or zeroes, which
 * are not read (an unreadable block the map leaves out fails nothing),
 * one run between them after another.  False when the span is read. */
static bool read_next_run(struct kcopyd_client *kc, struct kc_subjob *sj)
{
	uint64_t s = sj->read_at, e;
	unsigned int b;

	if (sj->has_noread) {
		b = (unsigned int)(s / KC_ZERO_BLOCK);
		while ((uint64_t)b * KC_ZERO_BLOCK < sj->span_hi &&
		       kc_block_is_noread(sj, b))
			b++;
		s = (uint64_t)b * KC_ZERO_BLOCK > s ? (uint64_t)b * KC_ZERO_BLOCK
						    : s;
		while ((uint64_t)b * KC_ZERO_BLOCK < sj->span_hi &&
		       !kc_block_is_noread(sj, b))
			b++;
		e = (uint64_t)b * KC_ZERO_BLOCK;
	} else {
		e = sj->span_hi;
	}
	if (e > sj->span_hi)
		e = sj->span_hi;
	if (s >= e)
		return false;
	sj->read_at = e;
	io_start(kc, sj, false, 0, &sj->job->src,
		 sj->offset + (s >> SECTOR_SHIFT), e - s, sj->buf + s);
	return true;
}

void kc_sj_start(struct kcopyd_client *kc, struct kc_job *job,
		 uint64_t sectors)
{
	struct kc_subjob *sj;

	kc_throttle_update(kc);
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
	sj->tail_todo = 0;
	sj->tail_step = KC_TAIL_NONE;
	sj->tail_buf = NULL;
	sj->tail_slot = NULL;
	sj->has_skip = sj->has_noread = false;
	sj->skip_bytes = 0;
	if (job->tail_borrow)
		kc->tail_own++;
	job->issued += sectors;
	job->in_flight++;
	kc->iocbs_reserved += kc_job_iocbs(job);
	assert(kc->iocbs_reserved <= kc->ring_size);
	if (job->is_zero) {
		sj_zero(kc, sj);
	} else {
		uint64_t len = sectors << SECTOR_SHIFT;

		uint64_t outside;

		sj->state = KC_SJ_READING;
		kc_sj_source_span(kc, sj);
		outside = len - (sj->span_hi - sj->span_lo);
		sj->holes_zeroed = outside == 0 && !sj->has_noread;
		/* Not read: holes, or blocks the job's map skips. */
		kc->stats.bytes_unmapped += sj->skip_bytes;
		kc->stats.bytes_holes += outside - kc_sj_skipped_outside(sj);
		sj->read_at = sj->span_lo;
		if (!read_next_run(kc, sj))
			sj_read_done(kc, sj, 0);	/* a hole: nothing to read */
	}
}

/* A read of a stream source came back short: the stream ended in it.  The
 * sub-job keeps what was read, zeroed to the page past it (a logical block
 * of any destination), and its blocks end with its last sector (the zero
 * map's last block is looked at to there); true if nothing was read, and
 * the sub-job is over. */
static bool source_ended(struct kcopyd_client *kc, struct kc_subjob *sj,
			 const struct kc_iocb *io)
{
	size_t pad = (KCOPYD_PAGE_SIZE - io->done % KCOPYD_PAGE_SIZE) %
		     KCOPYD_PAGE_SIZE;

	assert(sj->job->src_in_order);
	sj->job->eof = true;
	sj->bytes = io->done;
	if (!sj->bytes) {
		sj_finish(kc, sj);
		return true;
	}
	sj->count = (sj->bytes + KCOPYD_SECTOR_SIZE - 1) >> SECTOR_SHIFT;
	sj->num_blocks = (unsigned int)(((sj->count << SECTOR_SHIFT) +
					 KC_ZERO_BLOCK - 1) / KC_ZERO_BLOCK);
	memset(sj->buf + sj->bytes, 0, pad);
	return false;
}

/* The end of one request of a sub-job (its backend's end_io). */
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
			kc_report_error(kc, io->file,
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
		if (!err && io->done < io->len && source_ended(kc, sj, io))
			break;
		if (!err && read_next_run(kc, sj))
			break;
		sj_read_done(kc, sj, err);
		break;
	case KC_SJ_REREADING:
		assert(sj->pending == 0);
		kc_isolate_reread_done(kc, sj, io, err, &isolate_ops);
		break;
	case KC_SJ_WRITING:
		if (sj->job->is_zero) {
			if (err)
				kc_job_write_failed(kc, sj->job,
						    (unsigned int)(io - sj->io),
						    err);
			else
				sj->written = true;
		} else if (err) {
			/* of the whole blocks or of the merge: no merge */
			sj->next_block[io - sj->io] = sj->num_blocks;
			sj->tail_todo &= ~(1u << (io - sj->io));
			sj->tail_step = KC_TAIL_NONE;
			kc_job_write_failed(kc, sj->job,
					    (unsigned int)(io - sj->io), err);
		} else if (sj->tail_step != KC_TAIL_NONE) {
			assert(io - sj->io == sj->tail_dest);
			dest_tail(kc, sj);
		} else {
			if (io->is_zero) {
				/* WRITE_ZEROES: zeroed, not written */
				kc->stats.bytes_written -= io->len;
				kc->stats.bytes_zeroed += io->len;
			}
			dest_next(kc, sj, (unsigned int)(io - sj->io));
		}
		if (sj->pending == 0 && tail_next(kc, sj))
			break;	/* merging */
		if (sj->pending == 0 && sj->job->num_dests > 1)
			kc->stats.held_back[io - sj->io]++;
		if (sj->pending == 0)
			sj_finish(kc, sj);
		break;
	case KC_SJ_FREE:
	case KC_SJ_PARKED:
	case KC_SJ_LENT:
		assert(!"no I/O is outstanding in this state");
		abort();
	}
}
