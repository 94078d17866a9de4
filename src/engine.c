/* engine.c - the engine thread's loop.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The engine sleeps in poll() on one eventfd and the descriptors of the
 * open files' backends that have requests (struct kc_file_ops: poll_prepare
 * and poll_done; NBD connections, streams), asked in turn; with only
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
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kcopyd-private.h"

/* The poll set's first size: the eventfd, an export's connections and a
 * few streams; it grows with what the client has open (poll_fit). */
#define KC_POLL_INITIAL 16

/* The longest the engine waits in the queue for a batch of completions
 * before it looks at callers' wake-ups and submits again.  From the
 * experiment in contrib/bench/README ("Engine notes"): waiting for half of
 * the requests in flight, at most 2 ms, cut kcopy's CPU per GiB from 0.051
 * to 0.033 s and the 1->1 wall time by 17% on tmpfs loops. */
#define KC_BATCH_WAIT_MS 2

/* Size the poll set for the engine's eventfd and every connection and
 * stream the client has open (across all its jobs: nothing bounds them).
 * Returns how many descriptors beside the eventfd fit; fewer than wanted
 * only if the memory to grow was refused, and then *timeout_ms is
 * lowered so that the engine comes back to try again. */
static unsigned int poll_fit(struct kcopyd_client *kc, int *timeout_ms)
{
	unsigned int want = 1;
	struct kc_file *f;

	for (f = kc->files; f; f = f->next)
		want += f->ops->poll_fds ? f->ops->poll_fds(f) : 0;
	if (want > kc->poll_cap) {
		unsigned int cap = want + 16;
		struct pollfd *pfd = realloc(kc->pfd, cap * sizeof(*pfd));
		void **polled;

		if (pfd)
			kc->pfd = pfd;
		polled = pfd ? realloc(kc->polled, cap * sizeof(*polled))
			     : NULL;
		if (polled) {
			kc->polled = polled;
			kc->poll_cap = cap;
		} else if (*timeout_ms < 0 || *timeout_ms > 10) {
			*timeout_ms = 10;
		}
	}
	return kc->poll_cap - 1;
}

/* The backends of the files the client has open, each once, in the
 * order their first files were opened: at most KC_MAX_BACKENDS.  Returns
 * how many. */
static unsigned int open_backends(const struct kcopyd_client *kc,
				  const struct kc_file_ops **ops)
{
	unsigned int n = 0, i;
	const struct kc_file *f;

	for (f = kc->files; f; f = f->next) {
		for (i = 0; i < n && ops[i] != f->ops; i++)
			;
		if (i == n && n < KC_MAX_BACKENDS)
			ops[n++] = f->ops;
	}
	return n;
}

/* See engine_main(): at most this long asleep with local I/O in flight. */
#define KC_REAP_GUARD_MS 200

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

	pthread_mutex_lock(&kc->lock);
	for (;;) {
		const struct kc_file_ops *ops[KC_MAX_BACKENDS];
		unsigned int first[KC_MAX_BACKENDS + 1];
		int timeout = -1;
		unsigned int n, nb, b, max;
		struct pollfd *pfd;
		uint64_t count;

		kc_zero_reap(kc);
		kc_jobs_schedule(kc, &timeout);
		kc_io_submit(kc);
		nb = open_backends(kc, ops);
		for (b = 0; b < nb; b++)
			if (ops[b]->submit)
				ops[b]->submit(kc);
		if (kc_jobs_run_callbacks(kc))
			continue;	/* callbacks may have added jobs */
		if ((kc->shutting_down || kc->free_deferred) &&
		    kc->jobs_outstanding == 0)
			break;
		if (kc->submit_n && (timeout < 0 || timeout > 1))
			timeout = 1;	/* ring was full */
		if (kc->new_jobs || kc->kick)
			timeout = 0;	/* or requests queued or ended at
					   submission */
		/* A safety net while local I/O is in flight: the queue's
		 * eventfd is its only wake-up, and once (kcopy-stress in CI,
		 * io_uring) the engine slept in poll for good with the last
		 * sub-job outstanding; the cause is not known.  Looking
		 * again every KC_REAP_GUARD_MS costs nothing while
		 * completions come, and turns such a lost wake-up into a
		 * stall instead of a hang. */
		if (kc->io_in_flight &&
		    (timeout < 0 || timeout > KC_REAP_GUARD_MS))
			timeout = KC_REAP_GUARD_MS;
		kc->kick = false;

		max = poll_fit(kc, &timeout);
		pfd = kc->pfd;
		nb = open_backends(kc, ops);	/* callbacks may have closed */
		for (b = 0, n = 0; b < nb; b++) {
			first[b] = n;
			if (ops[b]->poll_prepare)
				n += ops[b]->poll_prepare(kc, pfd + 1 + n,
							  kc->polled + n,
							  max - n, &timeout);
		}
		first[nb] = n;
		if (n == 0 && kc->io_in_flight >= 2 && timeout != 0) {
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
		if (poll(pfd, 1 + n, timeout) > 0 &&
		    (pfd[0].revents & POLLIN) &&
		    read(kc->wake_fd, &count, sizeof(count)) < 0)
			count = 0;	/* EAGAIN: somebody else drained it */
		pthread_mutex_lock(&kc->lock);
		kc_io_reap(kc, 0, 0);
		for (b = 0; b < nb; b++)
			if (ops[b]->poll_done)
				ops[b]->poll_done(kc, pfd + 1 + first[b],
						  kc->polled + first[b],
						  first[b + 1] - first[b]);
	}
	pthread_mutex_unlock(&kc->lock);
	if (kc->free_deferred) {
		/* Destroyed from a callback: nobody else will join or free;
		 * no other thread may use the client any more. */
		kc_zero_stop(kc);
		kc->free_deferred(kc);
	}
	return NULL;
}

/* Create the eventfd the engine sleeps on; before the I/O queue, which
 * signals it. */
int kc_engine_init(struct kcopyd_client *kc)
{
	kc->poll_cap = KC_POLL_INITIAL;
	kc->pfd = calloc(kc->poll_cap, sizeof(*kc->pfd));
	kc->polled = calloc(kc->poll_cap, sizeof(*kc->polled));
	if (!kc->pfd || !kc->polled)
		return -ENOMEM;
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
