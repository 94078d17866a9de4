/* io.c - the I/O layer: libaio queue, submission and completion.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Knows requests (struct kc_iocb) and the files they go to, nothing of jobs:
 * the owner of a request fills it in and queues it, the engine submits the
 * queue and reaps completions, and each request's end comes back to its
 * owner through io->end_io, as dm-io calls back into dm-kcopyd.  A short
 * transfer is carried on here, from where it stopped, before the owner hears
 * of it.  A flush is a request too (IOCB_CMD_FDSYNC), carried out
 * synchronously where the kernel will not take it asynchronously.  Every
 * completion is signalled on kc->wake_fd (io_set_eventfd).
 * All calls are made with kc->lock held; io_submit and io_getevents run
 * with it dropped.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcopyd-private.h"

/* Set up an aio context for events iocbs, with the submission queue and the
 * event array sized to match: at most ring_size iocbs are ever outstanding
 * or queued.  Nothing may be queued or in flight.  On failure the client is
 * left as it was. */
int kc_io_setup(struct kcopyd_client *kc, unsigned int events)
{
	struct iocb **q;
	struct io_event *ev;
	io_context_t ctx = 0;
	int ret;

	assert(kc->io_in_flight == 0 && kc->submit_n == 0);
	if (kc->ioctx && events == kc->ring_size)
		return 0;
	q = calloc(events, sizeof(*q));
	ev = calloc(events, sizeof(*ev));
	ret = q && ev ? io_setup((int)events, &ctx) : -ENOMEM;
	if (ret < 0) {
		free(q);
		free(ev);
		return ret;
	}
	kc_io_exit(kc);
	kc->ioctx = ctx;
	kc->ring_size = events;
	kc->submit_q = q;
	kc->events = ev;
	return 0;
}

void kc_io_exit(struct kcopyd_client *kc)
{
	if (kc->ioctx)
		io_destroy(kc->ioctx);
	kc->ioctx = 0;
	kc->ring_size = 0;
	free(kc->submit_q);
	kc->submit_q = NULL;
	free(kc->events);
	kc->events = NULL;
}

/* May a request of len bytes at pos use f's O_DIRECT reopen? */
static bool can_direct(const struct kc_file *f, uint64_t pos, size_t len)
{
	return f->direct_fd >= 0 && pos % f->dio_align == 0 &&
	       len % f->dio_align == 0;
}

/* Prepare io for the part not yet transferred and queue it for io_submit.
 * Direct I/O where the owner allows it, the file takes it and the request
 * is aligned for it; otherwise the caller's descriptor, through the page
 * cache. */
void kc_io_queue(struct kcopyd_client *kc, struct kc_iocb *io)
{
	uint64_t pos = io->pos + io->done;
	size_t len = io->len - io->done;
	int fd = io->file->fd;

	assert(kc->submit_n + kc->io_in_flight < kc->ring_size);
	if (io->op == KC_IO_FLUSH) {
		/* IOCB_CMD_FDSYNC; a file that cannot take it is refused
		 * with EINVAL (flush_done) */
		io_prep_fdsync(&io->cb, fd);
	} else {
		char *buf = io->buf + io->done;

		if (io->may_direct && can_direct(io->file, pos, len) &&
		    (uintptr_t)buf % io->file->dio_align == 0)
			fd = io->file->direct_fd;
		if (io->op == KC_IO_WRITE)
			io_prep_pwrite(&io->cb, fd, buf, len, (long long)pos);
		else
			io_prep_pread(&io->cb, fd, buf, len, (long long)pos);
	}
	io_set_eventfd(&io->cb, kc->wake_fd);
	io->cb.data = io;
	kc->submit_q[kc->submit_n++] = &io->cb;
}

/* The end of a flush: the kernel's result, or the error io_submit refused
 * it with.  A file whose fsync the kernel does not run asynchronously is
 * refused with EINVAL: flush it here, without kc->lock. */
static void flush_done(struct kcopyd_client *kc, struct kc_iocb *io, long res)
{
	if (res == -EINVAL) {
		int fd = io->file->fd;

		pthread_mutex_unlock(&kc->lock);
		res = fdatasync(fd) < 0 ? -errno : 0;
		pthread_mutex_lock(&kc->lock);
	}
	io->end_io(kc, io, res < 0 ? (int)res : 0);
}

/* One completion of io: res is the kernel's, bytes transferred or a
 * negative errno, or the error io_submit refused io with. */
static void io_done(struct kcopyd_client *kc, struct kc_iocb *io, long res)
{
	if (io->op == KC_IO_FLUSH) {
		flush_done(kc, io, res);
		return;
	}
	if (res > 0) {
		if (io->op == KC_IO_WRITE)
			kc->stats.bytes_written += (uint64_t)res;
		else
			kc->stats.bytes_read += (uint64_t)res;
		io->done += (size_t)res;
		assert(io->done <= io->len);
		if (io->done < io->len) {
			/* Short transfer: carry on with the rest. */
			kc_io_queue(kc, io);
			return;
		}
	}
	/* 0 bytes: end of file on a read, nothing written on a write; either
	 * way the request could not be carried out. */
	io->end_io(kc, io, res > 0 ? 0 : res < 0 ? (int)res : -EIO);
}

/* Submit everything queued.  Drops kc->lock around io_submit, which for
 * buffered files does the I/O itself.  What the ring cannot take now stays
 * queued until completions have been reaped. */
void kc_io_submit(struct kcopyd_client *kc)
{
	while (kc->submit_n) {
		int n = (int)kc->submit_n, ret;

		pthread_mutex_unlock(&kc->lock);
		ret = io_submit(kc->ioctx, n, kc->submit_q);
		pthread_mutex_lock(&kc->lock);
		if (ret == -EINTR)
			continue;
		if (ret == -EAGAIN || ret == 0)
			return;	/* ring full: retry after reaping */
		if (ret < 0) {
			/* The first iocb was refused; the rest were not
			 * looked at. */
			struct iocb *bad = kc->submit_q[0];

			kc->submit_n--;
			memmove(kc->submit_q, kc->submit_q + 1,
				kc->submit_n * sizeof(*kc->submit_q));
			io_done(kc, bad->data, ret);
			continue;
		}
		kc->submit_n -= (unsigned int)ret;
		kc->io_in_flight += (unsigned int)ret;
		memmove(kc->submit_q, kc->submit_q + ret,
			kc->submit_n * sizeof(*kc->submit_q));
	}
}

/* Take the completions there are and hand each to its request: first
 * waiting up to timeout_ms for min_nr of them (0: no wait), then every
 * further one without waiting.  Drops kc->lock around io_getevents. */
void kc_io_reap(struct kcopyd_client *kc, unsigned int min_nr, int timeout_ms)
{
	struct timespec wait = { timeout_ms / 1000,
				 (long)(timeout_ms % 1000) * 1000000 };
	int n, i;

	if (min_nr > kc->io_in_flight)
		min_nr = kc->io_in_flight;
	while (kc->io_in_flight) {
		pthread_mutex_unlock(&kc->lock);
		n = io_getevents(kc->ioctx, min_nr, (long)kc->ring_size,
				 kc->events, &wait);
		wait = (struct timespec){ 0, 0 };
		min_nr = 0;
		pthread_mutex_lock(&kc->lock);
		if (n <= 0)
			return;	/* none yet (or EINTR): wait for the eventfd */
		assert((unsigned int)n <= kc->io_in_flight);
		kc->io_in_flight -= (unsigned int)n;
		for (i = 0; i < n; i++)
			io_done(kc, kc->events[i].data,
				(long)kc->events[i].res);
		if (n < (int)kc->ring_size)
			return;
	}
}

/* The source's map of a local file: SEEK_DATA and SEEK_HOLE, on our
 * reopen where there is one (else the caller's offset moves), the last
 * extent remembered, since sub-jobs ask in ascending order.  A block device
 * or a file system without them (EINVAL, and those that answer "all data"
 * anyway cost only the calls) cannot tell. */
static int aio_extents(struct kcopyd_client *kc, struct kc_file *f,
		       uint64_t pos, uint64_t len, uint64_t *run)
{
	int fd = f->direct_fd >= 0 ? f->direct_fd : f->fd;
	off_t data, hole;

	(void)kc;
	if (f->is_blockdev)
		return -EOPNOTSUPP;
	if (pos < f->map_pos || pos >= f->map_end) {
		data = lseek(fd, (off_t)pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO) {
			/* no data from pos to the end of the file */
			f->map_pos = pos;
			f->map_end = UINT64_MAX;
			f->map_data = false;
		} else if (data < 0) {
			return -errno;
		} else if ((uint64_t)data > pos) {
			f->map_pos = pos;
			f->map_end = (uint64_t)data;
			f->map_data = false;
		} else {
			hole = lseek(fd, (off_t)pos, SEEK_HOLE);
			if (hole < 0)
				return -errno;
			f->map_pos = pos;
			f->map_end = (uint64_t)hole > pos ? (uint64_t)hole
							  : UINT64_MAX;
			f->map_data = true;
		}
	}
	*run = f->map_end - pos < len ? f->map_end - pos : len;
	return f->map_data;
}

const struct kc_file_ops kc_aio_ops = {
	.name = "local",
	.queue = kc_io_queue,
	.extents = aio_extents,
};
