/* zero.c - the zeroing threads: zero ranges of local destinations done off
 * the engine thread.  fallocate() and BLKZEROOUT return only once the
 * storage has done them (a loop device over tmpfs zeroes pages: 0.12 s per
 * GiB), and the engine would submit and reap nothing meanwhile; here they
 * run beside the copy's reads and writes.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * It knows nothing of jobs: a request says what to run and whom to tell,
 * and the engine hands the ended ones back (kc_zero_reap), as nbd.c does.
 * KC_ZERO_THREADS threads take requests in the order queued; they start
 * with the first request and end with the engine (kc_zero_stop).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>

#include "kcopyd-private.h"

static void *zero_main(void *arg)
{
	struct kcopyd_client *kc = arg;

	pthread_mutex_lock(&kc->lock);
	for (;;) {
		struct kc_zero_req *req;

		while (!kc->zero_queue && !kc->zero_stopping)
			pthread_cond_wait(&kc->zero_cond, &kc->lock);
		req = kc->zero_queue;
		if (!req)
			break;
		kc->zero_queue = req->next;
		if (!kc->zero_queue)
			kc->zero_tail = &kc->zero_queue;
		req->err = req->run(kc, req);
		req->next = NULL;
		*kc->zero_done_tail = req;
		kc->zero_done_tail = &req->next;
		kc_engine_wake(kc);
	}
	pthread_mutex_unlock(&kc->lock);
	return NULL;
}

int kc_zero_queue(struct kcopyd_client *kc, struct kc_zero_req *req)
{
	int r;

	while (kc->zero_threads < KC_ZERO_THREADS) {
		r = pthread_create(&kc->zero_thread[kc->zero_threads], NULL,
				   zero_main, kc);
		if (r && !kc->zero_threads)
			return -r;
		if (r)
			break;
		kc->zero_threads++;
	}
	req->next = NULL;
	*kc->zero_tail = req;
	kc->zero_tail = &req->next;
	pthread_cond_signal(&kc->zero_cond);
	return 0;
}

void kc_zero_reap(struct kcopyd_client *kc)
{
	while (kc->zero_done) {
		struct kc_zero_req *req = kc->zero_done;

		kc->zero_done = req->next;
		if (!kc->zero_done)
			kc->zero_done_tail = &kc->zero_done;
		req->end(kc, req, req->err);
	}
}

void kc_zero_stop(struct kcopyd_client *kc)
{
	pthread_mutex_lock(&kc->lock);
	kc->zero_stopping = true;
	pthread_cond_broadcast(&kc->zero_cond);
	pthread_mutex_unlock(&kc->lock);
	while (kc->zero_threads)
		pthread_join(kc->zero_thread[--kc->zero_threads], NULL);
}
