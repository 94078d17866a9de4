/* io-aio.c - io.c's requests through libaio (io_submit, io_getevents).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Used where io_uring is missing, refused or not chosen (io.c).  An iocb
 * lives in its request (io->cb) and points back to it through cb.data.  A
 * flush is IOCB_CMD_FDSYNC, which the kernel refuses with EINVAL for files
 * whose fsync it does not run asynchronously (io.c then flushes them
 * itself).  Buffered requests are carried out inside io_submit.  Retiring a
 * context costs the process 28-38 ms in io_destroy, or at exit if it is
 * left alive (contrib/bench, 2026-12-02).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "kcopyd-private.h"

struct aio_queue {
	io_context_t ctx;
	int wake_fd;
	struct iocb **cbs;	/* the iocbs of one io_submit call */
	struct io_event *ev;	/* the events of one io_getevents call */
	unsigned int size;
};

static void aio_destroy(void *queue)
{
	struct aio_queue *a = queue;

	if (a->ctx)
		io_destroy(a->ctx);
	free(a->cbs);
	free(a->ev);
	free(a);
}

static int aio_setup(const struct kc_ring_params *p, void **queue)
{
	struct aio_queue *a = calloc(1, sizeof(*a));
	int ret;

	if (!a)
		return -ENOMEM;
	a->wake_fd = p->wake_fd;
	a->size = p->events;
	a->cbs = calloc(p->events, sizeof(*a->cbs));
	a->ev = calloc(p->events, sizeof(*a->ev));
	ret = a->cbs && a->ev ? io_setup((int)p->events, &a->ctx) : -ENOMEM;
	if (ret < 0) {
		a->ctx = 0;
		aio_destroy(a);
		return ret;
	}
	*queue = a;
	return 0;
}

static int aio_submit(void *queue, struct kc_iocb **q, unsigned int n)
{
	struct aio_queue *a = queue;
	unsigned int i;

	if (n > a->size)
		n = a->size;
	for (i = 0; i < n; i++) {
		struct kc_iocb *io = q[i];
		char *buf = io->buf + io->done;
		size_t len = io->len - io->done;
		long long pos = (long long)(io->pos + io->done);

		if (io->op == KC_IO_FLUSH)
			io_prep_fdsync(&io->cb, io->fd);
		else if (io->op == KC_IO_WRITE)
			io_prep_pwrite(&io->cb, io->fd, buf, len, pos);
		else
			io_prep_pread(&io->cb, io->fd, buf, len, pos);
		io_set_eventfd(&io->cb, a->wake_fd);
		io->cb.data = io;
		a->cbs[i] = &io->cb;
	}
	return n ? io_submit(a->ctx, (long)n, a->cbs) : 0;
}

static int aio_reap(void *queue, unsigned int min_nr, int timeout_ms,
		    struct kc_io_done *done, unsigned int max)
{
	struct aio_queue *a = queue;
	struct timespec wait = { timeout_ms / 1000,
				 (long)(timeout_ms % 1000) * 1000000 };
	int n, i;

	if (max > a->size)
		max = a->size;
	n = io_getevents(a->ctx, min_nr, (long)max, a->ev, &wait);
	if (n == -EINTR)
		return 0;
	for (i = 0; i < n; i++)
		done[i] = (struct kc_io_done){ a->ev[i].data,
					       (long)a->ev[i].res };
	return n;	/* or libaio's -errno: EFAULT, EINVAL, ENOSYS */
}

const struct kc_ring_ops kc_ring_aio = {
	.name = "libaio",
	.setup = aio_setup,
	.destroy = aio_destroy,
	.submit = aio_submit,
	.reap = aio_reap,
};
