/* decode.c - the table of decoders, and the one for bytes as they are.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "decode.h"

static const struct decoder_ops *const decoders[] = {
	&dec_xz, &dec_zstd, &dec_gzip, &dec_bzip2,
};

#define NUM_DECODERS (sizeof(decoders) / sizeof(decoders[0]))

const struct decoder_ops *decode_by_name(const char *name)
{
	size_t i;

	for (i = 0; i < NUM_DECODERS; i++)
		if (!strcmp(decoders[i]->name, name))
			return decoders[i];
	return NULL;
}

const struct decoder_ops *decode_by_magic(const unsigned char *buf,
					  size_t len)
{
	size_t i;

	for (i = 0; i < NUM_DECODERS; i++)
		if (decoders[i]->magic(buf, len))
			return decoders[i];
	return NULL;
}

static bool raw_magic(const unsigned char *buf, size_t len)
{
	(void)buf;
	(void)len;
	return true;
}

static int raw_init(struct decoder *d)
{
	d->boundary = true;
	return 0;
}

static int raw_step(struct decoder *d, struct decode_buf *b, bool last)
{
	size_t n = b->in_len < b->out_len ? b->in_len : b->out_len;

	(void)d;
	memcpy(b->out, b->in, n);
	decode_took(b, n, n);
	return last && !b->in_len ? DECODE_END : DECODE_MORE;
}

static int raw_image_size(int fd, uint64_t size, uint64_t *bytes)
{
	(void)fd;
	*bytes = size;
	return 0;
}

static uint64_t raw_memory(const struct decoder *d)
{
	(void)d;
	return 0;
}

static void raw_end(struct decoder *d)
{
	(void)d;
}

const struct decoder_ops dec_raw = {
	.name = "raw",
	.magic = raw_magic,
	.init = raw_init,
	.step = raw_step,
	.image_size = raw_image_size,
	.memory = raw_memory,
	.end = raw_end,
};
