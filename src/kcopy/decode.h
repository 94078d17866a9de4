/* decode.h - the decoders of compressed images: one small table of
 * operations per format (dec-xz.c, dec-zstd.c, dec-gzip.c, dec-bzip2.c),
 * each by the format's own library, and the table of them (decode.c).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A decoder turns the whole input (every stream, frame or member in it,
 * one after the other) into the bytes of the image.  It is driven by one
 * thread (feed.c) and keeps no state outside its struct decoder.
 */
#ifndef KCOPY_DECODE_H
#define KCOPY_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of the input that tell every format apart. */
#define DECODE_MAGIC_LEN	6

/* liblzma's memory limit, for the threads and for decoding at all
 * (kcopy(1), "Memory"): above it, xz decodes in fewer threads, and a
 * stream that needs more than it in one thread is a read error. */
#define DECODE_XZ_MEMLIMIT	(256ull << 20)

/* step()'s outcomes besides -errno. */
enum { DECODE_MORE = 0, DECODE_END = 1 };

struct decoder {
	const struct decoder_ops *ops;
	void *priv;			/* the library's state */
	unsigned int threads;		/* to decode with, where it can */
	bool boundary;			/* between two streams (or before the
					   first): the input may end here */
	char msg[160];			/* why step() or init() failed */
};

/* A step's buffers: the input left, and the room left for the image. */
struct decode_buf {
	const unsigned char *in;
	size_t in_len;
	unsigned char *out;
	size_t out_len;
};

/* b past taken bytes of input and given bytes of output. */
static inline void decode_took(struct decode_buf *b, size_t taken,
			       size_t given)
{
	b->in += taken;
	b->in_len -= taken;
	b->out += given;
	b->out_len -= given;
}

struct decoder_ops {
	const char *name;		/* "xz", "zstd", "gzip", "bzip2" */
	/* Does the input start with the format's magic?  buf holds its first
	 * len bytes: DECODE_MAGIC_LEN, or all of a shorter input. */
	bool (*magic)(const unsigned char *buf, size_t len);
	/* 0, or -errno with d->msg set.  d->ops and d->threads are set. */
	int (*init)(struct decoder *d);
	/* Decode from b's input into its room (decode_took() past what was
	 * taken and given).  last: no input comes after b's.  DECODE_END
	 * once every stream ended and the input is all taken (only with
	 * last); DECODE_MORE to be called again (with more input when
	 * b->in_len is 0, more room when b->out_len is 0); -EBADMSG for a
	 * corrupt or truncated input, -ENOMEM, or another -errno, with
	 * d->msg set. */
	int (*step)(struct decoder *d, struct decode_buf *b, bool last);
	/* The size of the image in the whole input, a regular file of size
	 * bytes open on fd, where the container tells it (xz's index, zstd's
	 * frame content sizes): 0 with *bytes; -ENODATA if it does not.  NULL
	 * for a format that never tells it (gzip, bzip2). */
	int (*image_size)(int fd, uint64_t size, uint64_t *bytes);
	/* Bytes of memory the decoder holds now. */
	uint64_t (*memory)(const struct decoder *d);
	void (*end)(struct decoder *d);
};

extern const struct decoder_ops dec_xz, dec_zstd, dec_gzip, dec_bzip2;
/* Bytes as they are, for an input that is not compressed but goes through
 * the feed anyway (its first bytes were read to tell, or a filter). */
extern const struct decoder_ops dec_raw;

/* The format named name ("xz", "zstd", "gzip", "bzip2"), or NULL. */
const struct decoder_ops *decode_by_name(const char *name);
/* The format whose magic the input's first len bytes have, or NULL. */
const struct decoder_ops *decode_by_magic(const unsigned char *buf,
					  size_t len);
/* "xz, zstd, gzip, bzip2", for messages and --help. */
#define DECODE_NAMES	"xz, zstd, gzip, bzip2"

#endif /* KCOPY_DECODE_H */
