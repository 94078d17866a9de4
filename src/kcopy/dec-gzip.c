/* dec-gzip.c - gzip images, by zlib's inflate: every member of the input,
 * one after the other (as gzip -d takes them).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "decode.h"

/* What inflate holds: its state (about 7 KiB) and the 32 KiB window. */
#define GZIP_MEMORY	(40u * 1024)

/* ID1 ID2 and CM 8 (deflate), RFC 1952. */
static bool gzip_magic(const unsigned char *buf, size_t len)
{
	return len >= 3 && buf[0] == 0x1f && buf[1] == 0x8b && buf[2] == 8;
}

static int gzip_init(struct decoder *d)
{
	z_stream *z = calloc(1, sizeof(*z));

	if (!z || inflateInit2(z, 16 + MAX_WBITS) != Z_OK) {
		free(z);
		snprintf(d->msg, sizeof(d->msg), "out of memory");
		return -ENOMEM;
	}
	d->priv = z;
	d->boundary = true;
	return 0;
}

static int gzip_step(struct decoder *d, struct decode_buf *b, bool last)
{
	z_stream *z = d->priv;
	uInt in_n = b->in_len > UINT_MAX ? UINT_MAX : (uInt)b->in_len;
	uInt out_n = b->out_len > UINT_MAX ? UINT_MAX : (uInt)b->out_len;
	int ret;

	if (last && !b->in_len && d->boundary)
		return DECODE_END;
	z->next_in = (Bytef *)b->in;
	z->avail_in = in_n;
	z->next_out = b->out;
	z->avail_out = out_n;
	ret = inflate(z, Z_NO_FLUSH);
	decode_took(b, in_n - z->avail_in, out_n - z->avail_out);
	if (in_n != z->avail_in)
		d->boundary = false;
	if (ret == Z_STREAM_END) {
		/* The next member, if the input goes on. */
		inflateReset(z);
		d->boundary = true;
		return last && !b->in_len ? DECODE_END : DECODE_MORE;
	}
	if (ret == Z_OK || (ret == Z_BUF_ERROR && !last))
		return DECODE_MORE;
	if (ret == Z_BUF_ERROR && out_n != z->avail_out)
		return DECODE_MORE;
	if (ret == Z_BUF_ERROR) {
		snprintf(d->msg, sizeof(d->msg), "truncated input");
		return -EBADMSG;
	}
	if (ret == Z_MEM_ERROR) {
		snprintf(d->msg, sizeof(d->msg), "out of memory");
		return -ENOMEM;
	}
	snprintf(d->msg, sizeof(d->msg), "corrupt data (%s)",
		 z->msg ? z->msg : "inflate failed");
	return -EBADMSG;
}


static uint64_t gzip_memory(const struct decoder *d)
{
	(void)d;
	return GZIP_MEMORY;
}

static void gzip_end(struct decoder *d)
{
	if (d->priv)
		inflateEnd(d->priv);
	free(d->priv);
	d->priv = NULL;
}

const struct decoder_ops dec_gzip = {
	.name = "gzip",
	.magic = gzip_magic,
	.init = gzip_init,
	.step = gzip_step,
	.memory = gzip_memory,
	.end = gzip_end,
};
