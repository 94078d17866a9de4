/* isolate.c - the error hook, the bad range log, and the isolation of
 * unreadable blocks by bisection.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Under KCOPYD_IGNORE_ERROR a sub-job whose read failed is read again
 * (REREADING), one range at a time from a stack: a range that fails is
 * split in two down to one logical block, and a block that fails is
 * zeroed in the buffer and logged as bad.  One sub-job isolates at a time
 * (kc->isolating, the others wait in kc->isolate_wait), and no new
 * sub-job starts meanwhile: the block layer merges adjacent requests, and
 * a re-read merged with a neighbour that fails would fail with it.
 *
 * This file knows nothing of the sub-job state machine: it reads, and
 * hands a sub-job back, through the struct kc_isolate_ops its caller
 * (subjob.c) gives, as dm-io calls back into dm-kcopyd.  Everything here
 * runs on the engine thread with kc->lock held, which is dropped only
 * around the error hook.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "kcopyd-private.h"

/* Count a failed request and tell the error hook.  dest is the destination
 * index of a write or a flush, ignored for a read. */
void kc_report_error(struct kcopyd_client *kc, const struct kc_file *f,
		     enum kc_io_op op, unsigned int dest, uint64_t pos,
		     uint64_t len, int err)
{
	bool is_write = op != KC_IO_READ;
	struct kcopyd_io_error e = {
		.struct_size = sizeof(e),
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

/* Add the count sectors at sector of fd to the bad range log, merged
 * with the last range where they follow it. */
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
 * over: the sub-job goes on (ops->over) and the next waiting one starts. */
static void isolate_next(struct kcopyd_client *kc, struct kc_subjob *sj,
			 const struct kc_isolate_ops *ops)
{
	struct kc_range r;

	while (sj && sj->depth == 0) {
		kc->isolating = kc->isolate_wait;
		if (kc->isolating) {
			kc->isolate_wait = kc->isolating->next;
			kc->isolating->next = NULL;
		}
		ops->over(kc, sj);
		sj = kc->isolating;
	}
	if (!sj)
		return;
	r = sj->todo[--sj->depth];
	ops->read(kc, sj, r.offset, r.count);
}

void kc_isolate_start(struct kcopyd_client *kc, struct kc_subjob *sj,
		      const struct kc_isolate_ops *ops)
{
	struct kc_job *job = sj->job;
	struct kc_subjob **p;

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
	isolate_next(kc, sj, ops);
}

/* The source's connection was lost while sj was isolating bad sectors:
 * the rest of it cannot be read.  Its job stops with a read error, sj ends
 * without being written (what it did not read is not zeros), and the next
 * waiting sub-job takes its turn. */
static void isolate_abandon(struct kcopyd_client *kc, struct kc_subjob *sj,
			    const struct kc_isolate_ops *ops)
{
	sj->depth = 0;
	kc->isolating = kc->isolate_wait;
	if (kc->isolating) {
		kc->isolate_wait = kc->isolating->next;
		kc->isolating->next = NULL;
	}
	ops->lost(kc, sj);
	isolate_next(kc, kc->isolating, ops);
}

void kc_isolate_reread_done(struct kcopyd_client *kc, struct kc_subjob *sj,
			    struct kc_iocb *io, int err,
			    const struct kc_isolate_ops *ops)
{
	uint64_t offset = (io->pos >> SECTOR_SHIFT) - sj->job->src.sector -
			  sj->offset;
	uint64_t count = io->len >> SECTOR_SHIFT;

	if (err && kc_err_lost(io->file, err)) {
		isolate_abandon(kc, sj, ops);
		return;
	}
	if (err && count > sj->block_sectors) {
		push_halves(sj, offset, count);
	} else if (err) {
		memset(io->buf, 0, io->len);
		sj->job->read_err = 1;
		record_bad(kc, io->file->fd, io->pos >> SECTOR_SHIFT, count);
	}
	isolate_next(kc, sj, ops);
}
