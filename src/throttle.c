/* throttle.c - the throttle (kernel semantics) and the rate limit.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The throttle lets I/O be in flight a percentage of the time, measured
 * over about the last second; the rate limit holds the bytes started to
 * kc->rate per second.  The scheduler asks before each sub-job starts
 * (kc_throttle_may_start); the sub-job code accounts each change of the
 * number of sub-jobs in flight (kc_throttle_update).  Guarded by kc->lock;
 * calls nothing else of the library.
 */
#include <config.h>

#include "kcopyd-private.h"

/* How long the engine waits before it looks at the throttle again. */
#define THROTTLE_POLL_MS 10
/* The throttle forgets history older than about a second, as the kernel's
 * ACCOUNT_INTERVAL_SHIFT does. */
#define THROTTLE_WINDOW_US (1u << 20)

/* Account the time since the last call as I/O time if any sub-job was in
 * flight.  Called before slots_in_use changes and before each decision. */
void kc_throttle_update(struct kcopyd_client *kc)
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
bool kc_throttle_may_start(struct kcopyd_client *kc, uint64_t bytes,
			   int *timeout_ms)
{
	if (kc->throttle < 100) {
		kc_throttle_update(kc);
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
