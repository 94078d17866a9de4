/* engine.c - the engine thread's loop.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The engine sleeps in poll() on one eventfd and the sockets of the NBD
 * connections and streams that have requests (nbd.c, stream.c); with only
 * local requests in flight, in the I/O queue's wait for a batch of them
 * (io_getevents, io_uring_wait_cqes).  The kernel signals the eventfd for
 * every completed iocb (io.c), and callers' threads signal it when they
 * add a job or stop the client, so a single wait covers all three.  Once awake it
 * reaps every completion without blocking (which runs the sub-job state
 * machine through the iocbs' end_io), lets the job code start new sub-jobs,
 * submits all queued iocbs in one call and runs the callbacks of
 * the jobs that finished.
 */
#include <config.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kcopyd-private.h"

/* The engine's eventfd and, at most, every connection of one export per
 * destination and the source, then the streams. */
#define MAX_NBD_POLLED ((KCOPYD_MAX_DESTS + 1) * 4)
#define MAX_POLLED (1 + MAX_NBD_POLLED + KCOPYD_MAX_DESTS + 1)

/* The longest the engine waits in the queue for a batch of completions
 * before it looks at callers' wake-ups and submits again.  From the
 * experiment in contrib/bench/README ("Engine notes"): waiting for half of
 * the requests in flight, at most 2 ms, cut kcopy's CPU per GiB from 0.051
 * to 0.033 s and the 1->1 wall time by 17% on tmpfs loops. */
#define KC_BATCH_WAIT_MS 2

static void *engine_main(void *arg)
{
	struct kcopyd_client *kc = arg;
	sigset_t pipe;

	/* A stream destination whose reader is gone is EPIPE of that
	 * request, not the end of the caller's process: SIGPIPE, raised in
	 * the thread that writes, stays blocked (and pending) here. */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	struct pollfd pfd[MAX_POLLED];
	struct kc_file *streams[KCOPYD_MAX_DESTS + 1];

	pthread_mutex_lock(&kc->lock);
	for (;;) {
		int timeout = -1;
		unsigned int n, ns;
		uint64_t count;

		kc_zero_reap(kc);
		kc_jobs_schedule(kc, &timeout);
		kc_io_submit(kc);
		kc_nbd_submit(kc);
		if (kc_jobs_run_callbacks(kc))
			continue;	/* callbacks may have added jobs */
		if (kc->shutting_down && kc->jobs_outstanding == 0)
			break;
		if (kc->submit_n && (timeout < 0 || timeout > 1))
			timeout = 1;	/* ring was full */
		if (kc->new_jobs || kc->nbd_queue)
			timeout = 0;	/* or requests queued by hand_back */

		n = kc_nbd_poll_prepare(kc, pfd + 1, MAX_NBD_POLLED, &timeout);
		ns = kc_stream_poll_prepare(kc, pfd + 1 + n,
					    KCOPYD_MAX_DESTS + 1, streams,
					    &timeout);
		if (n + ns == 0 && kc->io_in_flight >= 2 && timeout != 0) {
			/* Only local I/O to wait for: sleep in the queue's
			 * wait until half of it has completed, a wake-up per
			 * several completions instead of one per one or
			 * two.  A caller's wake-up waits for it, at most
			 * KC_BATCH_WAIT_MS.  The eventfd is drained first: a
			 * completion not reaped here signals it again. */
			if (read(kc->wake_fd, &count, sizeof(count)) < 0)
				count = 0;	/* nothing signalled */
			kc_io_reap(kc, kc->io_in_flight / 2,
				   timeout > 0 && timeout < KC_BATCH_WAIT_MS
				   ? timeout : KC_BATCH_WAIT_MS);
			continue;
		}
		pfd[0] = (struct pollfd){ .fd = kc->wake_fd, .events = POLLIN };

		pthread_mutex_unlock(&kc->lock);
		if (poll(pfd, 1 + n + ns, timeout) > 0 &&
		    (pfd[0].revents & POLLIN) &&
		    read(kc->wake_fd, &count, sizeof(count)) < 0)
			count = 0;	/* EAGAIN: somebody else drained it */
		pthread_mutex_lock(&kc->lock);
		kc_io_reap(kc, 0, 0);
		kc_nbd_poll_done(kc, pfd + 1, n);
		kc_stream_poll_done(kc, pfd + 1 + n, streams, ns);
	}
	pthread_mutex_unlock(&kc->lock);
	return NULL;
}

/* Create the eventfd the engine sleeps on; before the I/O queue, which
 * signals it. */
int kc_engine_init(struct kcopyd_client *kc)
{
	kc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return kc->wake_fd < 0 ? -errno : 0;
}

/* Start the engine; the eventfd and the I/O queue are set up already.  On
 * failure the caller frees what was made. */
int kc_engine_start(struct kcopyd_client *kc)
{
	return -pthread_create(&kc->engine, NULL, engine_main, kc);
}

/* Called with no jobs outstanding; returns when the engine has ended. */
void kc_engine_stop(struct kcopyd_client *kc)
{
	pthread_mutex_lock(&kc->lock);
	kc->shutting_down = true;
	pthread_mutex_unlock(&kc->lock);
	kc_engine_wake(kc);
	pthread_join(kc->engine, NULL);
	kc_zero_stop(kc);
}
