/* feed.c - the image feed: the thread that decodes a compressed source
 * into the pipe the copy reads (feed.h).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The thread reads the input, decodes it and writes the image to the
 * pipe, waiting in poll() on either and on stop_fd: whatever the copy does
 * (it ends early, it stops reading), feed_stop() ends the thread.  When
 * the decoder ends, or fails, the thread closes the pipe's write end: the
 * copy sees the stream's end, having got every byte decoded before it, and
 * nothing after.  The failure is kept for the main thread to report.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "feed.h"

/* The size of the thread's input and output buffers, and of the pipe. */
#define FEED_BUF	(1024 * 1024)

/* Stopped by feed_stop(), or the copy closed the pipe: not an error. */
#define FEED_STOPPED	1

void feed_init(struct feed *f)
{
	memset(f, 0, sizeof(*f));
	f->in_fd = f->pipe_r = f->pipe_w = f->stop_fd = -1;
}

/* Wait until fd is ready for events, or other (stop_fd; -1: none) is
 * readable: 0, FEED_STOPPED, or -errno. */
static int wait_fd(int fd, short events, int other)
{
	struct pollfd p[2] = {
		{ .fd = fd, .events = events },
		{ .fd = other, .events = POLLIN },
	};

	while (poll(p, 2, -1) < 0)
		if (errno != EINTR)
			return -errno;
	return p[1].revents ? FEED_STOPPED : 0;
}

/* Up to len bytes of the input: how many (0 at its end), FEED_STOPPED as
 * -ECANCELED, or -errno. */
static ssize_t read_input(struct feed *f, void *buf, size_t len)
{
	for (;;) {
		int r = wait_fd(f->in_fd, POLLIN, f->stop_fd);
		ssize_t n;

		if (r)
			return r == FEED_STOPPED ? -ECANCELED : r;
		n = read(f->in_fd, buf, len);
		if (n >= 0)
			return n;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
}

/* The first failure, with the offsets where it happened. */
static void fail(struct feed *f, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct feed *f, int err, const char *fmt, ...)
{
	va_list ap;

	if (f->error)
		return;
	f->error = err;
	f->error_in = f->in_done;
	f->error_out = f->out_done;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
}

/* len bytes of the image at buf, through the filter, into the pipe: 0,
 * FEED_STOPPED, or -errno (failed, said). */
static int deliver(struct feed *f, unsigned char *buf, size_t len)
{
	int r;

	if (f->filter.data) {
		char msg[sizeof(f->msg)] = "";

		r = f->filter.data(f->filter.ctx, f->out_done, buf, len, msg,
				   sizeof(msg));
		if (r < 0) {
			fail(f, r, "%s", msg);
			return r;
		}
	}
	while (len) {
		ssize_t n = write(f->pipe_w, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			f->out_done += (uint64_t)n;
			continue;
		}
		if (errno == EPIPE)
			return FEED_STOPPED;	/* the copy is over */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			r = -errno;
			fail(f, r, "cannot write to the pipe: %s",
			     strerror(errno));
			return r;
		}
		r = wait_fd(f->pipe_w, POLLOUT, f->stop_fd);
		if (r)
			return r;
	}
	return 0;
}

/* The decoder's loop, from the head taken off at feed_open(). */
static void decode_all(struct feed *f, unsigned char *ibuf,
		       unsigned char *obuf)
{
	const struct decoder_ops *ops = f->dec.ops;
	struct decode_buf b = { .in = f->head, .in_len = f->head_len };
	bool eof = false;
	int r;

	for (;;) {
		size_t before;
		uint64_t mem;

		b.out = obuf;
		b.out_len = FEED_BUF;
		if (!b.in_len && !eof) {
			ssize_t n = read_input(f, ibuf, FEED_BUF);

			if (n == -ECANCELED)
				return;
			if (n < 0) {
				fail(f, (int)n, "cannot read: %s",
				     strerror((int)-n));
				return;
			}
			eof = !n;
			b.in = ibuf;
			b.in_len = (size_t)n;
		}
		before = b.in_len;
		r = ops->step(&f->dec, &b, eof);
		/* atomic: the progress reads it meanwhile (feed_in_done) */
		__atomic_add_fetch(&f->in_done, before - b.in_len,
				   __ATOMIC_RELAXED);
		mem = ops->memory(&f->dec);
		if (mem > f->memory)
			f->memory = mem;
		if (b.out_len < FEED_BUF &&
		    deliver(f, obuf, FEED_BUF - b.out_len) != 0)
			return;
		if (r < 0) {
			fail(f, r, "%s", f->dec.msg);
			return;
		}
		if (r == DECODE_END)
			break;
		/* A decoder that neither takes nor gives at the end. */
		if (eof && !before && b.out_len == FEED_BUF) {
			fail(f, -EBADMSG, "truncated input");
			return;
		}
	}
	f->ended = true;
	if (f->filter.end) {
		char msg[sizeof(f->msg)] = "";

		r = f->filter.end(f->filter.ctx, f->out_done, msg,
				  sizeof(msg));
		if (r < 0)
			fail(f, r, "%s", msg);
	}
}

static void *feed_thread(void *arg)
{
	struct feed *f = arg;
	unsigned char *ibuf = malloc(FEED_BUF), *obuf = malloc(FEED_BUF);
	int r;

	if (!ibuf || !obuf) {
		fail(f, -ENOMEM, "%s", strerror(ENOMEM));
	} else {
		r = f->dec.ops->init(&f->dec);
		if (r < 0)
			fail(f, r, "%s", f->dec.msg);
		else
			decode_all(f, ibuf, obuf);
		f->dec.ops->end(&f->dec);
	}
	free(ibuf);
	free(obuf);
	/* The copy sees the end of the stream. */
	close(f->pipe_w);
	f->pipe_w = -1;
	return NULL;
}

/* The first bytes of a stream, waited for (-EINTR when intr_fd, a
 * signalfd, is readable first), without taking them off it where it can:
 * tee(2) on a pipe, MSG_PEEK on a socket.  0, or 1 if they were read off
 * it into head; -errno.  *n: how many (fewer at its end). */
static int peek_stream(struct feed *f, int fd, int intr_fd, size_t *n)
{
	int t[2], r = wait_fd(fd, POLLIN, intr_fd);
	ssize_t got = -1;

	if (r)
		return r == FEED_STOPPED ? -EINTR : r;
	/* Readable: neither blocks now. */
	if (pipe2(t, O_CLOEXEC) == 0) {
		got = tee(fd, t[1], DECODE_MAGIC_LEN, SPLICE_F_NONBLOCK);
		if (got == 0 || got == DECODE_MAGIC_LEN)
			got = read(t[0], f->head, (size_t)got);
		close(t[0]);
		close(t[1]);
	}
	if (got < 0)
		got = recv(fd, f->head, DECODE_MAGIC_LEN,
			   MSG_PEEK | MSG_DONTWAIT);
	if (got == 0 || got == DECODE_MAGIC_LEN) {
		*n = (size_t)got;
		return 0;
	}
	/* Whose first bytes come one by one: taken off, kept in head. */
	for (*n = 0; *n < DECODE_MAGIC_LEN; *n += (size_t)got) {
		r = wait_fd(fd, POLLIN, intr_fd);
		if (r)
			return r == FEED_STOPPED ? -EINTR : r;
		got = read(fd, f->head + *n, DECODE_MAGIC_LEN - *n);
		if (got == 0)
			break;
		if (got < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (got < 0)
			got = 0;
	}
	return 1;
}

/* The pipe, the stop eventfd, the image's size. */
static int make_pipe(struct feed *f, int fd, bool file)
{
	struct stat st;
	int p[2];

	if (file) {
		if (fstat(fd, &st) < 0)
			return -errno;
		f->in_is_file = true;
		f->in_size = (uint64_t)st.st_size;
		f->size_known = f->dec.ops->image_size &&
				f->dec.ops->image_size(fd, f->in_size,
						       &f->image_size) == 0;
	}
	f->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (f->stop_fd < 0 || pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	f->pipe_r = p[0];
	f->pipe_w = p[1];
	/* A larger pipe: fewer wake-ups; the default one does too. */
	(void)fcntl(f->pipe_w, F_SETPIPE_SZ, FEED_BUF);
	if (fcntl(f->pipe_w, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int feed_open(struct feed *f, int fd, bool own, bool file, int intr_fd,
	      int mode, const struct decoder_ops *force, char *msg,
	      size_t len)
{
	const struct decoder_ops *ops = NULL;
	size_t n = 0;
	int taken = 0, r;
	off_t at = 0;
	ssize_t got;
	long cpus;

	if (mode == FEED_NONE && !f->filter.data)
		return 0;
	if (file) {
		/* where a file on standard input is read from */
		at = lseek(fd, 0, SEEK_CUR);
		got = pread(fd, f->head, DECODE_MAGIC_LEN, at > 0 ? at : 0);

		if (got < 0) {
			snprintf(msg, len, "cannot read: %s", strerror(errno));
			return -errno;
		}
		n = (size_t)got;
	} else {
		taken = peek_stream(f, fd, intr_fd, &n);
		if (taken == -EINTR) {
			snprintf(msg, len, "interrupted while waiting for its "
				 "first bytes");
			return taken;
		}
		if (taken < 0) {
			snprintf(msg, len, "cannot read: %s",
				 strerror(-taken));
			return taken;
		}
	}
	if (mode != FEED_NONE)
		ops = decode_by_magic(f->head, n);
	if (mode == FEED_FORCE && ops != force) {
		snprintf(msg, len, "--decompress=%s, but the input %s%s",
			 force->name, ops ? "is in the format of " :
			 "is not in that format", ops ? ops->name : "");
		return -EINVAL;
	}
	if (!ops && !taken && !f->filter.data)
		return 0;
	if (at > 0) {
		snprintf(msg, len, "a file read from its byte %jd on: an image "
			 "is decoded from the file's start", (intmax_t)at);
		return -EINVAL;
	}
	f->dec.ops = ops ? ops : &dec_raw;
	f->head_len = taken ? n : 0;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	f->dec.threads = cpus > 0 ? (unsigned int)cpus : 1;
	r = make_pipe(f, fd, file);
	if (r < 0) {
		snprintf(msg, len, "cannot make the image's pipe: %s",
			 strerror(-r));
		f->dec.ops = NULL;	/* fd stays the caller's, to close */
		return r;
	}
	f->in_fd = fd;
	f->in_own = own;
	return 1;
}

int feed_start(struct feed *f)
{
	int r;

	if (!f->dec.ops)
		return 0;
	r = -pthread_create(&f->thread, NULL, feed_thread, f);
	f->started = r == 0;
	return r;
}

void feed_stop(struct feed *f)
{
	uint64_t one = 1;

	if (!f->started)
		return;
	if (write(f->stop_fd, &one, sizeof(one)) < 0)
		abort();	/* an eventfd below its maximum takes it */
	pthread_join(f->thread, NULL);
	f->started = false;
}

void feed_free(struct feed *f)
{
	feed_stop(f);
	if (f->in_own && f->in_fd >= 0)
		close(f->in_fd);
	if (f->pipe_r >= 0)
		close(f->pipe_r);
	if (f->pipe_w >= 0)
		close(f->pipe_w);
	if (f->stop_fd >= 0)
		close(f->stop_fd);
	feed_init(f);
}

const char *feed_format(const struct feed *f)
{
	return f->dec.ops ? f->dec.ops->name : NULL;
}

uint64_t feed_in_done(const struct feed *f)
{
	return __atomic_load_n(&f->in_done, __ATOMIC_RELAXED);
}

const char *feed_error_text(const struct feed *f, char *buf, size_t len)
{
	snprintf(buf, len, "%s: %s at byte %" PRIu64 " of the %s input, "
		 "after %" PRIu64 " bytes of the image", f->dec.ops->name,
		 f->msg, f->error_in, f->dec.ops == &dec_raw ? "image's"
		 : "compressed", f->error_out);
	return buf;
}
