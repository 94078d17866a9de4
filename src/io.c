/* io.c - the I/O layer: local requests, submission and completion.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Knows requests (struct kc_iocb) and the files they go to, nothing of jobs:
 * the owner of a request fills it in and queues it, the engine submits the
 * queue and reaps completions, and each request's end comes back to its
 * owner through io->end_io, as dm-io calls back into dm-kcopyd.  A short
 * transfer is carried on here, from where it stopped, before the owner hears
 * of it.  A flush is a request too (fdatasync), carried out synchronously
 * where the kernel will not take it asynchronously.  Every completion is
 * signalled on kc->wake_fd.
 *
 * The kernel interface is a struct kc_ring_ops: io_uring (io-uring.c) where
 * the build has liburing and the kernel lets the process use it, else
 * libaio (io-aio.c); KCOPYD_IO_ENGINE=libaio or =io_uring in the
 * environment chooses one, and then no other.  All calls here are made with
 * kc->lock held; the interface's submit and reap run with it dropped.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcopyd-private.h"

/* The interfaces in the order they are tried when the environment does not
 * choose.  io_uring first: in the runs of contrib/bench (RESULTS.md,
 * "Scaling") a process that used libaio waited 28-38 ms in io_destroy
 * (or at exit) for the kernel to retire the context, a third of a 1 MiB
 * copy; an io_uring ring is retired in the background. */
static const struct kc_ring_ops *const ring_choices[] = {
#ifdef HAVE_LIBURING
	&kc_ring_uring,
#endif
	&kc_ring_aio,
};

#define N_CHOICES (sizeof(ring_choices) / sizeof(ring_choices[0]))

/* Make a queue of events requests with ops, or, if ops is NULL, with the
 * interface the environment names or the first of ring_choices that the
 * kernel takes.  -EINVAL for a name that is none of them, -ENOTSUP for
 * io_uring in a build without liburing. */
static int ring_open(struct kcopyd_client *kc, const struct kc_ring_ops **ops,
		     unsigned int events, void **queue)
{
	const char *want = getenv("KCOPYD_IO_ENGINE");
	struct kc_ring_params p = {
		.events = events,
		.wake_fd = kc->wake_fd,
		.pool = kc->pool,
		.pool_len = (size_t)kc->num_pages * KCOPYD_PAGE_SIZE,
	};
	int ret = -ENOTSUP;
	size_t i;

	if (*ops)
		return (*ops)->setup(&p, queue);
	if (want && *want) {
		if (strcmp(want, "io_uring") != 0 &&
		    strcmp(want, "libaio") != 0)
			return -EINVAL;
		for (i = 0; i < N_CHOICES; i++)
			if (strcmp(want, ring_choices[i]->name) == 0) {
				*ops = ring_choices[i];
				return (*ops)->setup(&p, queue);
			}
		return ret;
	}
	for (i = 0; i < N_CHOICES; i++) {
		/* io_uring refused (seccomp, kernel.io_uring_disabled, an
		 * old kernel's memlock limit): the next one */
		ret = ring_choices[i]->setup(&p, queue);
		if (ret == 0) {
			*ops = ring_choices[i];
			break;
		}
	}
	return ret;
}

/* Set up a queue for events iocbs, with the submission queue and the
 * completion array sized to match: at most ring_size iocbs are ever
 * outstanding or queued.  Nothing may be queued or in flight.  On failure
 * the client is left as it was. */
int kc_io_setup(struct kcopyd_client *kc, unsigned int events)
{
	const struct kc_ring_ops *ops = kc->ring_ops;
	struct kc_iocb **q;
	struct kc_io_done *ev;
	void *queue = NULL;
	int ret;

	assert(kc->io_in_flight == 0 && kc->submit_n == 0);
	if (kc->ring && events == kc->ring_size)
		return 0;
	q = calloc(events, sizeof(*q));
	ev = calloc(events, sizeof(*ev));
	ret = q && ev ? ring_open(kc, &ops, events, &queue) : -ENOMEM;
	if (ret < 0) {
		free(q);
		free(ev);
		return ret;
	}
	kc_io_exit(kc);
	kc->ring_ops = ops;
	kc->ring = queue;
	kc->ring_size = events;
	kc->submit_q = q;
	kc->events = ev;
	return 0;
}

void kc_io_exit(struct kcopyd_client *kc)
{
	if (kc->ring)
		kc->ring_ops->destroy(kc->ring);
	kc->ring = NULL;
	kc->ring_size = 0;
	free(kc->submit_q);
	kc->submit_q = NULL;
	free(kc->events);
	kc->events = NULL;
}

/* May a request of len bytes at pos from or into buf use the O_DIRECT
 * reopen of l, a local file's (local.c)? */
static bool can_direct(const struct kc_local *l, uint64_t pos, size_t len,
		       const char *buf)
{
	return l->direct_fd >= 0 && pos % l->dio_align == 0 &&
	       len % l->dio_align == 0 && (uintptr_t)buf % l->dio_align == 0;
}

/* Queue io, the part not yet transferred, for submission: through the
 * file's O_DIRECT reopen where the owner allows it, the file takes it and
 * the request is aligned for it; otherwise through the caller's descriptor
 * and the page cache. */
void kc_io_queue(struct kcopyd_client *kc, struct kc_iocb *io)
{
	const struct kc_local *l = io->file->priv;

	assert(kc->submit_n + kc->io_in_flight < kc->ring_size);
	io->fd = io->file->fd;
	if (io->op != KC_IO_FLUSH && io->may_direct &&
	    can_direct(l, io->pos + io->done, io->len - io->done,
		       io->buf + io->done))
		io->fd = l->direct_fd;
	kc->submit_q[kc->submit_n++] = io;
}

/* The end of a flush: the kernel's result, or the error the submission
 * refused it with.  A file whose fsync libaio does not run asynchronously
 * is refused with EINVAL: flush it here, without kc->lock. */
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
 * negative errno, or the error the submission refused io with. */
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

/* io.c's list of the requests in flight, for queue_lost. */
static void flying_add(struct kcopyd_client *kc, struct kc_iocb *io)
{
	io->qnext = kc->io_flying;
	if (io->qnext)
		io->qnext->qprev = &io->qnext;
	io->qprev = &kc->io_flying;
	kc->io_flying = io;
}

static void flying_del(struct kc_iocb *io)
{
	*io->qprev = io->qnext;
	if (io->qnext)
		io->qnext->qprev = io->qprev;
	io->qnext = NULL;
	io->qprev = NULL;
}

/* The queue could not give its completions (err): destroy it, which waits
 * for what the kernel still holds, so that no buffer is written after its
 * request has ended; end every request that was in flight with err, and
 * set up a new queue for what comes next (if that fails too, requests end
 * with err at submission).  Drops kc->lock around the destruction. */
static void queue_lost(struct kcopyd_client *kc, int err)
{
	const struct kc_ring_ops *ops = kc->ring_ops;
	void *ring = kc->ring, *queue = NULL;

	kc->ring = NULL;
	kc->ring_err = err;
	pthread_mutex_unlock(&kc->lock);
	ops->destroy(ring);
	pthread_mutex_lock(&kc->lock);
	if (ring_open(kc, &ops, kc->ring_size, &queue) == 0)
		kc->ring = queue;
	kc->io_in_flight = 0;
	while (kc->io_flying) {
		struct kc_iocb *io = kc->io_flying;

		flying_del(io);
		io_done(kc, io, err);
	}
	kc->kick = true;
}

/* Submit everything queued.  Drops kc->lock around the submission, which
 * for buffered files may do the I/O itself.  What the queue cannot take now
 * stays queued until completions have been reaped.  With nothing queued the
 * queue is not touched: a caller's thread may be replacing it (the lock
 * model in kcopyd-private.h). */
void kc_io_submit(struct kcopyd_client *kc)
{
	while (kc->submit_n) {
		const struct kc_ring_ops *ops = kc->ring_ops;
		void *ring = kc->ring;
		unsigned int n = kc->submit_n, i;
		int ret;

		if (!ring) {
			/* lost (queue_lost) and not set up again */
			kc->submit_n--;
			io_done(kc, kc->submit_q[kc->submit_n],
				kc->ring_err);
			kc->kick = true;
			continue;
		}
		pthread_mutex_unlock(&kc->lock);
		ret = ops->submit(ring, kc->submit_q, n);
		pthread_mutex_lock(&kc->lock);
		if (ret == -EINTR)
			continue;
		if (ret == -EAGAIN || ret == 0)
			return;	/* queue full: retry after reaping */
		if (ret < 0) {
			/* The first iocb was refused; the rest were not
			 * looked at. */
			struct kc_iocb *bad = kc->submit_q[0];

			kc->submit_n--;
			memmove(kc->submit_q, kc->submit_q + 1,
				kc->submit_n * sizeof(*kc->submit_q));
			io_done(kc, bad, ret);
			kc->kick = true;	/* ended outside the reap */
			continue;
		}
		for (i = 0; i < (unsigned int)ret; i++)
			flying_add(kc, kc->submit_q[i]);
		kc->submit_n -= (unsigned int)ret;
		kc->io_in_flight += (unsigned int)ret;
		memmove(kc->submit_q, kc->submit_q + ret,
			kc->submit_n * sizeof(*kc->submit_q));
	}
}

/* Take the completions there are and hand each to its request: first
 * waiting up to timeout_ms for min_nr of them (0: no wait), then every
 * further one without waiting.  Drops kc->lock around the wait. */
void kc_io_reap(struct kcopyd_client *kc, unsigned int min_nr, int timeout_ms)
{
	int n, i;

	if (min_nr > kc->io_in_flight)
		min_nr = kc->io_in_flight;
	while (kc->io_in_flight) {
		const struct kc_ring_ops *ops = kc->ring_ops;
		void *ring = kc->ring;
		unsigned int max = kc->ring_size;

		pthread_mutex_unlock(&kc->lock);
		n = ops->reap(ring, min_nr, timeout_ms, kc->events, max);
		timeout_ms = 0;
		min_nr = 0;
		pthread_mutex_lock(&kc->lock);
		if (n < 0) {
			queue_lost(kc, n);
			return;
		}
		if (n == 0)
			return;	/* none yet (or EINTR): wait for the eventfd */
		assert((unsigned int)n <= kc->io_in_flight);
		kc->io_in_flight -= (unsigned int)n;
		for (i = 0; i < n; i++)
			flying_del(kc->events[i].io);
		for (i = 0; i < n; i++)
			io_done(kc, kc->events[i].io, kc->events[i].res);
		if (n < (int)kc->ring_size)
			return;
	}
}
