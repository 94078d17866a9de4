/* io-uring.c - io.c's requests through io_uring (liburing).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One ring per queue, its completions signalled on the engine's eventfd
 * (io_uring_register_eventfd).  A request's SQE is made when it is
 * submitted and carries the request as its user_data; a flush is
 * IORING_OP_FSYNC with IORING_FSYNC_DATASYNC, which the kernel runs for
 * every file that has an fsync.  Requests are submitted with
 * IORING_SETUP_SUBMIT_ALL, so that one refused request comes back as its
 * own completion and does not hold back the others.  The page budget is
 * registered as fixed buffers where the kernel allows.  Closing the ring
 * retires it in the background: 0.1 ms, where libaio's io_destroy waits
 * 28-38 ms (measured 2026-12-02, kernel 6.18).  Needs IORING_FEAT_EXT_ARG
 * (Linux 5.11) to wait with a timeout without an SQE of its own; a kernel
 * without it is refused with -ENOTSUP and io.c takes libaio.
 */
#include <config.h>

#include <errno.h>
#include <liburing.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kcopyd-private.h"

struct uring_queue {
	struct io_uring ring;
	struct io_uring_cqe **cqes;	/* of one reap */
	unsigned int size;		/* requests outstanding at most */
	bool enabled;			/* by the thread that submits */
	bool defer;			/* IORING_SETUP_DEFER_TASKRUN */
	/* the page budget registered as fixed buffers of FIXED_MAX bytes
	 * each (the last one shorter); fixed_len 0 if the kernel refused */
	char *fixed;
	size_t fixed_len;
};

/* The kernel takes registered buffers of at most 1 GiB each. */
#define FIXED_MAX ((size_t)1 << 30)

/* The ring's flags, tried in this order until the kernel takes them.
 * DEFER_TASKRUN (Linux 6.1) runs the completions' task work only when the
 * engine asks for completions, and wakes a waiter only once as many as it
 * waits for are there; without it every O_DIRECT completion interrupts the
 * engine.  It needs one submitting thread (SINGLE_ISSUER): the ring is made
 * disabled (R_DISABLED) by whichever thread creates or resizes the client,
 * and enabled by the engine thread at its first submission, which makes
 * that thread its issuer.  SUBMIT_ALL: Linux 5.18. */
static const unsigned int ring_flags[] = {
	IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL |
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL,
	IORING_SETUP_R_DISABLED,
};

static void uring_destroy(void *queue)
{
	struct uring_queue *u = queue;

	io_uring_queue_exit(&u->ring);
	free(u->cqes);
	free(u);
}

/* Register the budget's pages once, so that the kernel does not pin them
 * again for every O_DIRECT request.  Measured (contrib/bench/results/
 * engine-ab-tmpfs-1G.txt, 5 alternating runs, 1 GiB on tmpfs loops):
 * kcopy's CPU 0.03 against 0.05 s (1->1) and 0.07 against 0.09 s (1->4)
 * unregistered, wall medians 0.21 against 0.22 s and 0.47 against 0.49 s.
 * Best effort: the registered pages count against RLIMIT_MEMLOCK (for a
 * process without CAP_IPC_LOCK), and a refusal leaves requests as they
 * are. */
static void register_pool(struct uring_queue *u, char *pool, size_t len)
{
	size_t n = (len + FIXED_MAX - 1) / FIXED_MAX, i;
	struct iovec *iov;

	if (!pool || !len || !(iov = calloc(n, sizeof(*iov))))
		return;
	for (i = 0; i < n; i++)
		iov[i] = (struct iovec){
			pool + i * FIXED_MAX,
			i + 1 < n ? FIXED_MAX : len - i * FIXED_MAX
		};
	if (io_uring_register_buffers(&u->ring, iov, (unsigned int)n) == 0) {
		u->fixed = pool;
		u->fixed_len = len;
	}
	free(iov);
}

/* The fixed buffer that holds all len bytes at buf, or -1. */
static int fixed_index(const struct uring_queue *u, const char *buf,
		       size_t len)
{
	size_t off;

	if (!u->fixed_len || buf < u->fixed || buf >= u->fixed + u->fixed_len)
		return -1;
	off = (size_t)(buf - u->fixed);
	if (len > u->fixed_len - off ||
	    off / FIXED_MAX != (off + len - 1) / FIXED_MAX)
		return -1;
	return (int)(off / FIXED_MAX);
}

static int uring_setup(const struct kc_ring_params *rp, void **queue)
{
	unsigned int events = rp->events;
	struct uring_queue *u = calloc(1, sizeof(*u));
	struct io_uring_params p;
	unsigned int entries = 1;
	size_t i;
	int ret = -EINVAL;

	if (!u)
		return -ENOMEM;
	u->cqes = calloc(events, sizeof(*u->cqes));
	if (!u->cqes) {
		free(u);
		return -ENOMEM;
	}
	/* SQ entries are a power of two; the CQ (twice as many) then holds
	 * every completion of what may be outstanding, never overflowing */
	while (entries < events)
		entries <<= 1;
	u->size = events;
	for (i = 0; ret == -EINVAL && i < sizeof(ring_flags) /
					   sizeof(ring_flags[0]); i++) {
		p = (struct io_uring_params){ .flags = ring_flags[i] };
		ret = io_uring_queue_init_params(entries, &u->ring, &p);
	}
	if (ret < 0) {
		free(u->cqes);
		free(u);
		return ret;
	}
	u->defer = p.flags & IORING_SETUP_DEFER_TASKRUN;
	if (!(p.features & IORING_FEAT_EXT_ARG))
		ret = -ENOTSUP;
	else
		ret = io_uring_register_eventfd(&u->ring, rp->wake_fd);
	if (ret < 0) {
		uring_destroy(u);
		return ret;
	}
	register_pool(u, rp->pool, rp->pool_len);
	*queue = u;
	return 0;
}

static int uring_submit(void *queue, struct kc_iocb **q, unsigned int n)
{
	struct uring_queue *u = queue;
	struct io_uring_sqe *sqe;
	unsigned int i;

	if (!u->enabled) {
		/* io_uring_enable_rings() is declared by liburing 2.3 but
		 * not exported: the system call itself */
		if (syscall(__NR_io_uring_register, u->ring.ring_fd,
			    IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
			return -errno;
		u->enabled = true;
	}
	for (i = 0; i < n && (sqe = io_uring_get_sqe(&u->ring)); i++) {
		struct kc_iocb *io = q[i];
		char *buf = io->buf + io->done;
		unsigned int len = (unsigned int)(io->len - io->done);
		__u64 pos = io->pos + io->done;
		int fixed = fixed_index(u, buf, len);

		if (io->op == KC_IO_FLUSH)
			io_uring_prep_fsync(sqe, io->fd,
					    IORING_FSYNC_DATASYNC);
		else if (io->op == KC_IO_WRITE && fixed >= 0)
			io_uring_prep_write_fixed(sqe, io->fd, buf, len, pos,
						  fixed);
		else if (io->op == KC_IO_WRITE)
			io_uring_prep_write(sqe, io->fd, buf, len, pos);
		else if (fixed >= 0)
			io_uring_prep_read_fixed(sqe, io->fd, buf, len, pos,
						 fixed);
		else
			io_uring_prep_read(sqe, io->fd, buf, len, pos);
		io_uring_sqe_set_data(sqe, io);
	}
	/* The SQEs are the kernel's now: submit until it has taken them.
	 * EAGAIN (no memory for a request) and EBUSY (completions to post
	 * first; not with a CQ twice the most in flight) pass.  Another
	 * error would be a bug here; what it leaves goes with the next
	 * call. */
	while (io_uring_sq_ready(&u->ring)) {
		int ret = io_uring_submit(&u->ring);

		if (ret == -EAGAIN || ret == -EBUSY)
			sched_yield();
		else if (ret < 0 && ret != -EINTR)
			break;
	}
	return (int)i;
}

/* DEFER_TASKRUN: completions wait as task work until the engine enters
 * the kernel for them, and the eventfd is signalled only when the first of
 * them is queued; one entry runs a bounded number of them (20 in Linux
 * 6.18).  Enter until no more are posted: work left queued would never
 * signal the eventfd again, and the engine would sleep in poll() with
 * completions waiting (liburing's wait does not enter at all when enough
 * CQEs are posted already). */
static void run_task_work(struct uring_queue *u)
{
	unsigned int ready = io_uring_cq_ready(&u->ring), was;

	do {
		was = ready;
		if (io_uring_get_events(&u->ring) < 0)
			break;
		ready = io_uring_cq_ready(&u->ring);
	} while (ready != was);
}

static int uring_reap(void *queue, unsigned int min_nr, int timeout_ms,
		      struct kc_io_done *done, unsigned int max)
{
	struct uring_queue *u = queue;
	struct io_uring_cqe *cqe;
	unsigned int n, i;

	if (min_nr && timeout_ms > 0) {
		struct __kernel_timespec ts = {
			timeout_ms / 1000, (long long)(timeout_ms % 1000) * 1000000
		};

		/* -ETIME or -EINTR: take what there is */
		(void)io_uring_wait_cqes(&u->ring, &cqe, min_nr, &ts, NULL);
	}
	if (u->defer)
		run_task_work(u);
	if (max > u->size)
		max = u->size;
	n = io_uring_peek_batch_cqe(&u->ring, u->cqes, max);
	for (i = 0; i < n; i++)
		done[i] = (struct kc_io_done){
			io_uring_cqe_get_data(u->cqes[i]), u->cqes[i]->res
		};
	io_uring_cq_advance(&u->ring, n);
	return (int)n;
}

const struct kc_ring_ops kc_ring_uring = {
	.name = "io_uring",
	.setup = uring_setup,
	.destroy = uring_destroy,
	.submit = uring_submit,
	.reap = uring_reap,
};
