/* dec-zstd.c - zstd images, by libzstd's streaming decoder: every frame
 * of the input, skippable frames skipped, within libzstd's default window
 * limit; the image's size from the frames' content sizes.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <zstd.h>

#include "decode.h"

/* A zstd frame, or a skippable frame (magic 0x184D2A50 to 0x184D2A5F),
 * little-endian. */
static bool zstd_magic(const unsigned char *buf, size_t len)
{
	if (len < 4)
		return false;
	if (buf[0] == 0x28 && buf[1] == 0xb5 && buf[2] == 0x2f &&
	    buf[3] == 0xfd)
		return true;
	return (buf[0] & 0xf0) == 0x50 && buf[1] == 0x2a && buf[2] == 0x4d &&
	       buf[3] == 0x18;
}

static int zstd_init(struct decoder *d)
{
	ZSTD_DStream *z = ZSTD_createDStream();

	if (!z) {
		snprintf(d->msg, sizeof(d->msg), "out of memory");
		return -ENOMEM;
	}
	d->priv = z;
	d->boundary = true;
	return 0;
}

static int zstd_step(struct decoder *d, struct decode_buf *b, bool last)
{
	ZSTD_inBuffer ib = { b->in, b->in_len, 0 };
	ZSTD_outBuffer ob = { b->out, b->out_len, 0 };
	size_t ret;

	if (last && !b->in_len && d->boundary)
		return DECODE_END;
	ret = ZSTD_decompressStream(d->priv, &ob, &ib);
	decode_took(b, ib.pos, ob.pos);
	if (ZSTD_isError(ret)) {
		snprintf(d->msg, sizeof(d->msg), "corrupt data (%s)",
			 ZSTD_getErrorName(ret));
		return -EBADMSG;
	}
	/* 0: a frame ended and all of it is out. */
	if (ib.pos || ob.pos)
		d->boundary = ret == 0;
	if (last && !b->in_len && !d->boundary && !ob.pos) {
		snprintf(d->msg, sizeof(d->msg), "truncated input");
		return -EBADMSG;
	}
	return last && !b->in_len && d->boundary && b->out_len ? DECODE_END
							       : DECODE_MORE;
}

/* The sum of the content sizes of the frames in the len bytes at p, which
 * each must state it: 0, or -ENODATA. */
static int frames_size(const unsigned char *p, size_t len, uint64_t *bytes)
{
	*bytes = 0;
	while (len) {
		unsigned long long n = 0;
		size_t frame;

		if (len >= 8 && (p[0] & 0xf0) == 0x50 &&
			   zstd_magic(p, 4)) {
			/* skippable: its magic, its size, its bytes */
			frame = 8 + ((size_t)p[4] | (size_t)p[5] << 8 |
				     (size_t)p[6] << 16 | (size_t)p[7] << 24);
		} else {
			n = ZSTD_getFrameContentSize(p, len);
			if (n == ZSTD_CONTENTSIZE_ERROR ||
			    n == ZSTD_CONTENTSIZE_UNKNOWN)
				return -ENODATA;
			frame = ZSTD_findFrameCompressedSize(p, len);
			if (ZSTD_isError(frame))
				return -ENODATA;
		}
		if (!frame || frame > len)
			return -ENODATA;
		*bytes += n;
		p += frame;
		len -= frame;
	}
	return 0;
}

/* Every frame's content size, from the file mapped. */
static int zstd_image_size(int fd, uint64_t size, uint64_t *bytes)
{
	void *p;
	int r;

	if (!size || size > SIZE_MAX)
		return -ENODATA;
	p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return -ENODATA;
	r = frames_size(p, (size_t)size, bytes);
	munmap(p, (size_t)size);
	return r;
}

static uint64_t zstd_memory(const struct decoder *d)
{
	return ZSTD_sizeof_DStream(d->priv);
}

static void zstd_end(struct decoder *d)
{
	ZSTD_freeDStream(d->priv);
	d->priv = NULL;
}

const struct decoder_ops dec_zstd = {
	.name = "zstd",
	.magic = zstd_magic,
	.init = zstd_init,
	.step = zstd_step,
	.image_size = zstd_image_size,
	.memory = zstd_memory,
	.end = zstd_end,
};
