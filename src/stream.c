/* stream.c - pipes and sockets as storage: read or written in order, of a
 * length known only at its end.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A descriptor that is a pipe, a FIFO or a socket is a stream.  Its
 * requests wait in one queue, in the order the job code made them (a
 * stream source's sub-jobs start in order; a job with a stream destination
 * writes under KCOPYD_WRITE_SEQ), and are carried out one after the other
 * from the engine thread whenever poll says the descriptor is ready, with
 * non-blocking reads and writes: on a reopen of a pipe with O_NONBLOCK (the
 * caller's own descriptor and its flags are never changed), with
 * MSG_DONTWAIT on a socket.
 *
 * A read that meets the end of the stream ends with 0 and io->done short of
 * io->len; every read after it ends at once with nothing.  kc_stream_ops.cancel
 * (a stopped job) ends the reads still queued the same way, and the writes
 * still queued with -ECANCELED: a stalled pipe never holds a stop up.
 * Everything here runs with kc->lock held.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kcopyd-private.h"

static const struct kc_file_ops kc_stream_ops;

struct kc_stream {
	int fd;			/* non-blocking: our reopen, or the caller's
				   socket (used with MSG_DONTWAIT) */
	bool own_fd;		/* fd is our reopen */
	bool is_socket;
	bool eof;		/* a read met the end of the stream */
	bool cancelled;		/* the job using it stopped */
	struct kc_iocb *head;	/* requests in order, through io->qnext */
	struct kc_iocb **tail;
};

int kc_stream_open(struct kc_file *f, int fd, bool is_socket)
{
	struct kc_stream *s = calloc(1, sizeof(*s));
	char path[64];

	if (!s)
		return -ENOMEM;
	s->tail = &s->head;
	s->is_socket = is_socket;
	s->fd = fd;
	if (!is_socket) {
		int flags = fcntl(fd, F_GETFL);

		/* A pipe opened again through /proc is a new open file
		 * description of the same pipe: O_NONBLOCK on it is ours. */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		s->fd = flags < 0 ? -1 : open(path, (flags & O_ACCMODE) |
					      O_NONBLOCK | O_CLOEXEC);
		if (s->fd < 0) {
			int r = -errno;

			free(s);
			return r;
		}
		s->own_fd = true;
	}
	f->ops = &kc_stream_ops;
	f->priv = s;
	f->in_order = true;
	f->lbs = KCOPYD_SECTOR_SIZE;
	return 0;
}

static void stream_release(struct kc_file *f)
{
	struct kc_stream *s = f->priv;

	if (!s)
		return;
	assert(!s->head);
	if (s->own_fd)
		close(s->fd);
	free(s);
	f->priv = NULL;
}

static void stream_queue(struct kcopyd_client *kc, struct kc_iocb *io)
{
	struct kc_stream *s = io->file->priv;

	(void)kc;
	io->qnext = NULL;
	*s->tail = io;
	s->tail = &io->qnext;
}

static void stream_cancel(struct kcopyd_client *kc, struct kc_file *f)
{
	(void)kc;
	struct kc_stream *s = f->priv;

	if (s)
		s->cancelled = true;
}


/* Can the head request end without the descriptor: a read after the end
 * or after a stop, a write after a stop? */
static bool ends_now(const struct kc_stream *s)
{
	return s->head && (s->cancelled ||
			   (s->eof && s->head->op == KC_IO_READ));
}

static unsigned int stream_poll_prepare(struct kcopyd_client *kc,
					struct pollfd *pfds, void **polled,
					unsigned int max, int *timeout_ms)
{
	unsigned int n = 0;
	struct kc_file *f;

	for (f = kc->files; f && n < max; f = f->next) {
		struct kc_stream *s = f->priv;

		if (f->ops != &kc_stream_ops || !s || !s->head)
			continue;
		if (ends_now(s))
			*timeout_ms = 0;
		pfds[n] = (struct pollfd){
			.fd = s->fd,
			.events = s->head->op == KC_IO_READ ? POLLIN : POLLOUT,
		};
		polled[n++] = s;
	}
	return n;
}

/* One non-blocking transfer for the head request: bytes, 0 at the end of
 * the stream (reads), or -errno (-EAGAIN: not ready). */
static ssize_t transfer(struct kc_stream *s, struct kc_iocb *io)
{
	char *buf = io->buf + io->done;
	size_t len = io->len - io->done;
	ssize_t n;

	if (io->op == KC_IO_READ)
		n = s->is_socket ? recv(s->fd, buf, len, MSG_DONTWAIT)
				 : read(s->fd, buf, len);
	else
		n = s->is_socket ? send(s->fd, buf, len,
					MSG_DONTWAIT | MSG_NOSIGNAL)
				 : write(s->fd, buf, len);
	return n < 0 ? -errno : n;
}

/* Carry the queue of s as far as the descriptor lets it. */
static void run_queue(struct kcopyd_client *kc, struct kc_stream *s)
{
	while (s->head) {
		struct kc_iocb *io = s->head;
		int err = 0;
		ssize_t n = 0;

		if (ends_now(s)) {
			err = io->op == KC_IO_READ ? 0 : -ECANCELED;
		} else if (io->op == KC_IO_FLUSH) {
			err = 0;	/* nothing to make stable */
		} else {
			n = io->done < io->len ? transfer(s, io) : 0;
			if (n == -EAGAIN || n == -EINTR)
				return;
			if (n < 0) {
				err = (int)n;
			} else if (n > 0) {
				io->done += (size_t)n;
				if (io->op == KC_IO_READ)
					kc->stats.bytes_read += (uint64_t)n;
				else
					kc->stats.bytes_written += (uint64_t)n;
				if (io->done < io->len)
					continue;
			} else if (io->op == KC_IO_READ && io->done < io->len) {
				s->eof = true;
			}
		}
		s->head = io->qnext;
		if (!s->head)
			s->tail = &s->head;
		io->end_io(kc, io, err);
	}
}

static void stream_poll_done(struct kcopyd_client *kc,
			     const struct pollfd *pfds, void *const *polled,
			     unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct kc_stream *s = polled[i];

		if (s && (pfds[i].revents || ends_now(s)))
			run_queue(kc, s);
	}
}

/* A reader gone (EPIPE) is the end of the stream, not a bad request. */
static bool stream_lost(int err)
{
	return err == -EPIPE;
}

static unsigned int stream_poll_fds(const struct kc_file *f)
{
	(void)f;
	return 1;
}

static const char *stream_describe(const struct kc_file *f,
				   struct kcopyd_fd_info *info)
{
	(void)f;
	if (info)
		info->is_stream = 1;
	return "stream";
}

/* Pipes and sockets: reads and writes in order, carried from the engine's
 * poll; a flush ends at once (nothing to make stable); no map, no zeroing
 * but writing zeros. */
static const struct kc_file_ops kc_stream_ops = {
	.name = "stream",
	.queue = stream_queue,
	.cancel = stream_cancel,
	.lost = stream_lost,
	.poll_fds = stream_poll_fds,
	.poll_prepare = stream_poll_prepare,
	.poll_done = stream_poll_done,
	.release = stream_release,
	.describe = stream_describe,
};
