/* feed.h - the image feed: a compressed source decoded by a thread of its
 * own into a pipe, whose read end the copy takes as a stream source, as if
 * the user had run "xzcat image.xz | kcopy - ...".
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Life: feed_open() at setup (tells the format, opens the pipe; nothing
 * read past the magic), feed_start() just before the copy, feed_stop()
 * once the copy is over (the thread ends, however far it got: it never
 * waits on a pipe nobody reads), feed_free() on every way out.  Between
 * feed_start() and feed_stop() only the thread touches the struct but
 * for `stop_fd`; after feed_stop() the outcome fields are the main
 * thread's.
 */
#ifndef KCOPY_FEED_H
#define KCOPY_FEED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"

/* A filter sees every chunk of the image in order, before it enters the
 * pipe (with --bmap, say: the ranges it does not map made zeros, the
 * others' checksums checked).  With a filter, an input that is not
 * compressed goes through the feed too, as it is.  Each hook runs on the
 * feed's thread and returns 0, or -errno after writing why into msg
 * (len bytes): a read error of the image at that position; nothing of the
 * chunk goes in then. */
struct feed_filter {
	/* The len bytes of the image at byte pos, which it may rewrite. */
	int (*data)(void *ctx, uint64_t pos, void *buf, size_t len,
		    char *msg, size_t msg_len);
	/* The image ended, total bytes long (the decoder saw its end). */
	int (*end)(void *ctx, uint64_t total, char *msg, size_t msg_len);
	void *ctx;
};

/* --decompress: by the magic (auto), never (none), or the format given. */
enum { FEED_AUTO, FEED_NONE, FEED_FORCE };

struct feed {
	struct decoder dec;		/* dec.ops NULL: no feed */
	int in_fd;			/* the input: the source file, or
					   standard input */
	bool in_own;			/* in_fd is ours to close */
	unsigned char head[DECODE_MAGIC_LEN];	/* read off a stream to tell
					   its format: the input's first */
	size_t head_len;
	bool in_is_file;		/* a regular file: its size is known */
	uint64_t in_size;		/* the compressed size, if in_is_file */
	bool size_known;		/* the container tells the image's: */
	uint64_t image_size;
	struct feed_filter filter;	/* .data NULL: none */
	int pipe_r, pipe_w;		/* the copy reads pipe_r */
	int stop_fd;			/* eventfd: feed_stop() wants it over */
	pthread_t thread;
	bool started;

	/* The outcome, the thread's until feed_stop(). */
	uint64_t in_done;		/* compressed bytes taken (read
					   meanwhile by feed_in_done) */
	uint64_t out_done;		/* image bytes put in the pipe */
	uint64_t memory;		/* the decoder's most, bytes */
	bool ended;			/* the decoder saw the image's end */
	int error;			/* 0, or the first -errno: */
	uint64_t error_in;		/* compressed bytes taken by then */
	uint64_t error_out;		/* image bytes put in by then */
	char msg[384];			/* what, without the offsets */
};

void feed_init(struct feed *f);
/* Tell the format of the input on fd (file: a regular file, else a pipe or
 * a socket, whose first bytes are waited for, -EINTR if intr_fd (-1: none)
 * becomes readable first, nothing done then, to be called again, and are
 * taken off and kept for the decoder
 * where they cannot be peeked at) as mode (FEED_*; force: the format for
 * FEED_FORCE) says, and with a filter also a raw one.  1: the input is to go through the feed
 * (the pipe made, the image's size found where the container tells it);
 * 0: it is to be read as it is (nothing taken off it); -errno with why in
 * msg (len bytes): a forced format the input lacks, or a failure.  fd
 * becomes the feed's (closed by feed_free) when own and 1 is returned. */
int feed_open(struct feed *f, int fd, bool own, bool file, int intr_fd,
	      int mode, const struct decoder_ops *force, char *msg,
	      size_t len);
/* Start the thread.  0 or -errno. */
int feed_start(struct feed *f);
/* Make the thread end and wait for it; then the outcome is the caller's. */
void feed_stop(struct feed *f);
/* Close everything.  pipe_r too, which the caller must not close. */
void feed_free(struct feed *f);
/* What went wrong, with where, into buf (len bytes): "xz: corrupt data at
 * byte 1234 of the compressed input, after 5678 bytes of the image".
 * buf. */
const char *feed_error_text(const struct feed *f, char *buf, size_t len);
/* The format's name, "xz"... ("raw": not compressed, through a filter),
 * or NULL without a feed. */
const char *feed_format(const struct feed *f);
/* The input's bytes the decoder has taken so far: while the thread runs
 * too (the progress's). */
uint64_t feed_in_done(const struct feed *f);

#endif /* KCOPY_FEED_H */
