/* dec-bzip2.c - bzip2 images, by libbz2: every stream of the input, one
 * after the other (as bzip2 -d and pbzip2 write and take them).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <bzlib.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "decode.h"

/* What libbz2 holds to decode the largest blocks (900 kB, bzip2 -9):
 * 100 kB and four bytes for each byte of a block (bzip2(1), MEMORY
 * MANAGEMENT). */
#define BZIP2_MEMORY	(100000u + 4u * 900000u)

/* "BZh" and the block size, '1' to '9'. */
static bool bzip2_magic(const unsigned char *buf, size_t len)
{
	return len >= 4 && buf[0] == 'B' && buf[1] == 'Z' && buf[2] == 'h' &&
	       buf[3] >= '1' && buf[3] <= '9';
}

static int bzip2_fail(struct decoder *d, int ret)
{
	if (ret == BZ_MEM_ERROR) {
		snprintf(d->msg, sizeof(d->msg), "out of memory");
		return -ENOMEM;
	}
	snprintf(d->msg, sizeof(d->msg), "%s", ret == BZ_DATA_ERROR_MAGIC
		 ? "not in the bzip2 format" : "corrupt data");
	return -EBADMSG;
}

static int bzip2_init(struct decoder *d)
{
	bz_stream *b = calloc(1, sizeof(*b));
	int ret;

	if (!b)
		return bzip2_fail(d, BZ_MEM_ERROR);
	ret = BZ2_bzDecompressInit(b, 0, 0);
	if (ret != BZ_OK) {
		free(b);
		return bzip2_fail(d, ret);
	}
	d->priv = b;
	d->boundary = true;
	return 0;
}

static int bzip2_step(struct decoder *d, struct decode_buf *b, bool last)
{
	bz_stream *s = d->priv;
	unsigned int in_n = b->in_len > UINT_MAX ? UINT_MAX
						 : (unsigned)b->in_len;
	unsigned int out_n = b->out_len > UINT_MAX ? UINT_MAX
						   : (unsigned)b->out_len;
	int ret;

	if (last && !b->in_len && d->boundary)
		return DECODE_END;
	s->next_in = (char *)b->in;
	s->avail_in = in_n;
	s->next_out = (char *)b->out;
	s->avail_out = out_n;
	ret = BZ2_bzDecompress(s);
	decode_took(b, in_n - s->avail_in, out_n - s->avail_out);
	if (in_n != s->avail_in)
		d->boundary = false;
	if (ret == BZ_STREAM_END) {
		/* The next stream, if the input goes on. */
		BZ2_bzDecompressEnd(s);
		ret = BZ2_bzDecompressInit(s, 0, 0);
		if (ret != BZ_OK)
			return bzip2_fail(d, ret);
		d->boundary = true;
		return last && !b->in_len ? DECODE_END : DECODE_MORE;
	}
	if (ret != BZ_OK)
		return bzip2_fail(d, ret);
	if (last && !b->in_len && out_n == s->avail_out) {
		snprintf(d->msg, sizeof(d->msg), "truncated input");
		return -EBADMSG;
	}
	return DECODE_MORE;
}


static uint64_t bzip2_memory(const struct decoder *d)
{
	(void)d;
	return BZIP2_MEMORY;
}

static void bzip2_end(struct decoder *d)
{
	if (d->priv)
		BZ2_bzDecompressEnd(d->priv);
	free(d->priv);
	d->priv = NULL;
}

const struct decoder_ops dec_bzip2 = {
	.name = "bzip2",
	.magic = bzip2_magic,
	.init = bzip2_init,
	.step = bzip2_step,
	.memory = bzip2_memory,
	.end = bzip2_end,
};
