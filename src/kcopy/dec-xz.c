/* dec-xz.c - xz images, by liblzma: every stream of the input
 * (LZMA_CONCATENATED), decoded in threads where the streams have several
 * blocks, within DECODE_XZ_MEMLIMIT; the image's size from the streams'
 * indexes.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decode.h"

static bool xz_magic(const unsigned char *buf, size_t len)
{
	static const unsigned char magic[6] = { 0xfd, '7', 'z', 'X', 'Z', 0 };

	return len >= sizeof(magic) && !memcmp(buf, magic, sizeof(magic));
}

/* What liblzma's return value means, into d->msg; the -errno. */
static int xz_fail(struct decoder *d, lzma_ret ret, lzma_stream *s)
{
	switch (ret) {
	case LZMA_MEM_ERROR:
		snprintf(d->msg, sizeof(d->msg), "out of memory");
		return -ENOMEM;
	case LZMA_MEMLIMIT_ERROR:
		snprintf(d->msg, sizeof(d->msg), "needs %" PRIu64 " bytes of "
			 "memory, more than the limit of %llu",
			 s ? (uint64_t)lzma_memusage(s) : 0,
			 DECODE_XZ_MEMLIMIT);
		return -ENOMEM;
	case LZMA_OPTIONS_ERROR:
		snprintf(d->msg, sizeof(d->msg), "unsupported options");
		return -EBADMSG;
	case LZMA_BUF_ERROR:
		snprintf(d->msg, sizeof(d->msg), "truncated input");
		return -EBADMSG;
	case LZMA_FORMAT_ERROR:
		snprintf(d->msg, sizeof(d->msg), "not in the xz format");
		return -EBADMSG;
	default:
		snprintf(d->msg, sizeof(d->msg), "corrupt data");
		return -EBADMSG;
	}
}

static int xz_init(struct decoder *d)
{
	lzma_stream *s = calloc(1, sizeof(*s));
	lzma_mt mt = {
		.flags = LZMA_CONCATENATED,
		.threads = d->threads ? d->threads : 1,
		.memlimit_threading = DECODE_XZ_MEMLIMIT,
		.memlimit_stop = DECODE_XZ_MEMLIMIT,
	};
	lzma_ret ret;

	if (!s)
		return xz_fail(d, LZMA_MEM_ERROR, NULL);
	*s = (lzma_stream)LZMA_STREAM_INIT;
	ret = lzma_stream_decoder_mt(s, &mt);
	if (ret != LZMA_OK) {
		free(s);
		return xz_fail(d, ret, NULL);
	}
	d->priv = s;
	return 0;
}

static int xz_step(struct decoder *d, struct decode_buf *b, bool last)
{
	lzma_stream *s = d->priv;
	lzma_ret ret;

	s->next_in = b->in;
	s->avail_in = b->in_len;
	s->next_out = b->out;
	s->avail_out = b->out_len;
	ret = lzma_code(s, last ? LZMA_FINISH : LZMA_RUN);
	decode_took(b, b->in_len - s->avail_in, b->out_len - s->avail_out);
	if (ret == LZMA_STREAM_END)
		return DECODE_END;
	if (ret == LZMA_OK || (ret == LZMA_BUF_ERROR && !last))
		return DECODE_MORE;
	return xz_fail(d, ret, s);
}

/* The indexes of every stream, read by liblzma's file info decoder, which
 * asks for the parts of the file it needs (the footers and indexes from
 * the end), so little of the file is read. */
static int xz_image_size(int fd, uint64_t size, uint64_t *bytes)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_index *idx = NULL;
	unsigned char buf[64 * 1024];
	uint64_t pos = 0;
	lzma_ret ret;
	int r = -ENODATA;

	if (lzma_file_info_decoder(&s, &idx, DECODE_XZ_MEMLIMIT, size) !=
	    LZMA_OK)
		return -ENODATA;
	for (;;) {
		if (!s.avail_in) {
			ssize_t n = pread(fd, buf, sizeof(buf), (off_t)pos);

			if (n <= 0)
				break;
			pos += (uint64_t)n;
			s.next_in = buf;
			s.avail_in = (size_t)n;
		}
		ret = lzma_code(&s, LZMA_RUN);
		if (ret == LZMA_SEEK_NEEDED) {
			pos = s.seek_pos;
			s.avail_in = 0;
		} else if (ret == LZMA_STREAM_END) {
			*bytes = lzma_index_uncompressed_size(idx);
			r = 0;
			break;
		} else if (ret != LZMA_OK) {
			break;
		}
	}
	if (idx)
		lzma_index_end(idx, NULL);
	lzma_end(&s);
	return r;
}

static uint64_t xz_memory(const struct decoder *d)
{
	return lzma_memusage(d->priv);
}

static void xz_end(struct decoder *d)
{
	if (d->priv)
		lzma_end(d->priv);
	free(d->priv);
	d->priv = NULL;
}

const struct decoder_ops dec_xz = {
	.name = "xz",
	.magic = xz_magic,
	.init = xz_init,
	.step = xz_step,
	.image_size = xz_image_size,
	.memory = xz_memory,
	.end = xz_end,
};
