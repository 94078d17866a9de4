/* io.c - the engine thread: libaio submission and completion.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The engine sleeps in poll() on one eventfd.  The kernel signals it for
 * every completed iocb (io_set_eventfd), and callers' threads signal it when
 * they add a job or stop the client, so a single wait covers both.  Once
 * awake it reaps every completion without blocking, lets the job code start
 * new sub-jobs, and submits all queued iocbs in one io_submit call.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "kcopyd-private.h"

uint64_t kc_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void kc_engine_wake(struct kcopyd_client *kc)
{
	uint64_t one = 1;

	/* Cannot fail but on counter overflow, which means a wake is due
	 * anyway. */
	if (write(kc->wake_fd, &one, sizeof(one)) < 0)
		return;
}

/* Prepare io for the part not yet transferred and queue it for io_submit.
 * Direct I/O where the file takes it and the request is aligned for it;
 * otherwise the caller's descriptor, through the page cache. */
void kc_io_queue(struct kcopyd_client *kc, struct kc_iocb *io, bool is_write)
{
	uint64_t pos = io->pos + io->done;
	size_t len = io->len - io->done;
	char *buf = io->buf + io->done;
	int fd = io->file->fd;

	if (!(io->sj->job->flags & KCOPYD_NO_DIRECT) &&
	    kc_can_direct(io->file, pos, len) &&
	    (uintptr_t)buf % io->file->dio_align == 0)
		fd = io->file->direct_fd;
	if (is_write)
		io_prep_pwrite(&io->cb, fd, buf, len, (long long)pos);
	else
		io_prep_pread(&io->cb, fd, buf, len, (long long)pos);
	io_set_eventfd(&io->cb, kc->wake_fd);
	io->cb.data = io;
	kc->submit_q[kc->submit_n++] = &io->cb;
}

/* Submit everything queued.  Called and returns with kc->lock held; drops it
 * around io_submit, which for buffered files does the I/O itself. */
static void submit_queued(struct kcopyd_client *kc)
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
			kc_io_complete(kc, bad->data, ret);
			continue;
		}
		kc->submit_n -= (unsigned int)ret;
		memmove(kc->submit_q, kc->submit_q + ret,
			kc->submit_n * sizeof(*kc->submit_q));
	}
}

static void run_callbacks(struct kcopyd_client *kc)
{
	while (kc->done_jobs) {
		struct kc_job *job = kc->done_jobs;

		kc->done_jobs = job->next;
		pthread_mutex_unlock(&kc->lock);
		job->fn(job->read_err, job->write_err, job->context);
		free(job);
		pthread_mutex_lock(&kc->lock);
		kc->stats.jobs_completed++;
		kc->jobs_outstanding--;
		pthread_cond_broadcast(&kc->idle);
	}
}

static void reap(struct kcopyd_client *kc)
{
	struct timespec zero = { 0, 0 };
	int n, i;

	do {
		pthread_mutex_unlock(&kc->lock);
		n = io_getevents(kc->ioctx, 0, (long)kc->ring_size, kc->events,
				 &zero);
		pthread_mutex_lock(&kc->lock);
		for (i = 0; i < n; i++)
			kc_io_complete(kc, kc->events[i].data,
				       (long)kc->events[i].res);
	} while (n == (int)kc->ring_size);
}

static void *engine_main(void *arg)
{
	struct kcopyd_client *kc = arg;

	pthread_mutex_lock(&kc->lock);
	for (;;) {
		int timeout = -1;
		struct pollfd pfd = { .fd = kc->wake_fd, .events = POLLIN };
		uint64_t count;

		kc_jobs_schedule(kc, &timeout);
		submit_queued(kc);
		if (kc->done_jobs) {
			run_callbacks(kc);
			continue;	/* callbacks may have added jobs */
		}
		if (kc->shutting_down && kc->jobs_outstanding == 0)
			break;
		if (kc->submit_n && (timeout < 0 || timeout > 1))
			timeout = 1;	/* ring was full */
		if (kc->new_jobs)
			timeout = 0;

		pthread_mutex_unlock(&kc->lock);
		if (poll(&pfd, 1, timeout) > 0 &&
		    read(kc->wake_fd, &count, sizeof(count)) < 0)
			count = 0;	/* EAGAIN: somebody else drained it */
		pthread_mutex_lock(&kc->lock);
		if (kc->slots_in_use)
			reap(kc);
	}
	pthread_mutex_unlock(&kc->lock);
	return NULL;
}

int kc_engine_start(struct kcopyd_client *kc)
{
	int ret;

	kc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (kc->wake_fd < 0)
		return -errno;
	kc->ring_size = (kc->num_pages < KC_MAX_SLOTS ? kc->num_pages
						     : KC_MAX_SLOTS) *
			KC_IOCBS_PER_SLOT;
	/* At most ring_size iocbs are ever outstanding or queued. */
	kc->submit_q = calloc(kc->ring_size, sizeof(*kc->submit_q));
	kc->events = calloc(kc->ring_size, sizeof(*kc->events));
	if (!kc->submit_q || !kc->events)
		return -ENOMEM;
	ret = io_setup((int)kc->ring_size, &kc->ioctx);
	if (ret < 0)
		return ret;
	ret = -pthread_create(&kc->engine, NULL, engine_main, kc);
	if (ret < 0) {
		io_destroy(kc->ioctx);
		kc->ioctx = 0;
	}
	return ret;
}

/* Called with no jobs outstanding. */
void kc_engine_stop(struct kcopyd_client *kc)
{
	pthread_mutex_lock(&kc->lock);
	kc->shutting_down = true;
	pthread_mutex_unlock(&kc->lock);
	kc_engine_wake(kc);
	pthread_join(kc->engine, NULL);
	io_destroy(kc->ioctx);
	kc->ioctx = 0;
}
