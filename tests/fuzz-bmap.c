/* fuzz-bmap.c - libFuzzer target for the bmap file's parser and the walk
 * that applies it (src/kcopy/bmap.c), which read --bmap's untrusted XML.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * fuzz-sources: src/kcopy/bmap.c
 * fuzz-libs: -lexpat -lcrypto
 * fuzz-options: -max_len=16384
 *
 * Input: the text of a bmap file (the seeds, in tests/fuzz-corpus/bmap/,
 * were made by bmaptool create: format 2.0 with sha256 checksums and
 * without, and by hand from them: 1.3 with sha1, 1.2 without).  Whatever
 * it is, the parser must not crash, leak or read out of bounds, and what
 * it accepts must hold bmap.h's promise: a version of 1.0 to 2.x; a block
 * size of 1 to BMAP_MAX_BLOCK; BlocksCount the image's size in blocks;
 * ranges in order, apart, within the image, of MappedBlocksCount blocks
 * and mapped_bytes bytes; checksums of the type's length.  What it
 * refuses has an error and a reason.  An accepted map of an image of at
 * most WALK_MAX bytes is walked over an image of 0xaa bytes, in chunks
 * of sizes taken from the input: bmap_walk_check must change no byte,
 * stop at a range that has a checksum (or go to the end), and
 * bmap_walk_end must take the image's size.
 */
#include "fuzz.h"
#include "bmap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define WALK_MAX (256u * 1024)

static void check_map(const struct bmap *b)
{
	uint64_t blocks = 0, bytes = 0;
	size_t i;

	CHECK(b->major >= 1 && b->major <= 2);
	CHECK(b->block_size >= 1 && b->block_size <= BMAP_MAX_BLOCK);
	CHECK(b->blocks == b->image_size / b->block_size +
			   !!(b->image_size % b->block_size));
	CHECK(b->sum_len <= BMAP_SUM_MAX);
	CHECK(!b->sum_len == !b->sum_type[0]);
	for (i = 0; i < b->num; i++) {
		const struct bmap_range *r = &b->r[i];
		uint64_t s, e;

		CHECK(r->first <= r->last && r->last < b->blocks);
		CHECK(i == 0 || r->first > b->r[i - 1].last);
		CHECK(!r->has_sum || r->sum_len == b->sum_len);
		CHECK(!r->has_sum || b->sum_len);
		bmap_range_bytes(b, i, &s, &e);
		CHECK(s < e && e <= b->image_size);
		blocks += r->last - r->first + 1;
		bytes += e - s;
	}
	CHECK(blocks == b->mapped_blocks);
	CHECK(bytes == b->mapped_bytes);
}

static void walk(const struct bmap *b, const uint8_t *data, size_t size)
{
	size_t len = (size_t)b->image_size, pos = 0, k = 0;
	struct bmap_walk w;
	unsigned char *img;
	int r = 0;

	if (b->image_size > WALK_MAX)
		return;
	img = malloc(len ? len : 1);
	if (!img)
		return;
	memset(img, 0xaa, len);
	if (bmap_walk_start(&w, b) < 0) {
		free(img);
		return;
	}
	while (pos < len && r == 0) {
		size_t n = size ? 1 + (size_t)data[k++ % size] * 37 : 4096;

		if (n > len - pos)
			n = len - pos;
		r = bmap_walk_check(&w, pos, img + pos, n);
		pos += n;
	}
	if (r == 0) {
		CHECK(bmap_walk_end(&w, len) == 0);
		for (pos = 0; pos < len; pos++)
			CHECK(img[pos] == 0xaa);
	} else {
		CHECK(r == -EBADMSG);
		CHECK(w.bad < b->num && b->r[w.bad].has_sum);
		CHECK(bmap_walk_check(&w, pos, img, 0) == -EBADMSG);
	}
	/* A walk past the end, or out of order, is refused. */
	bmap_walk_free(&w);
	if (bmap_walk_start(&w, b) == 0) {
		CHECK(bmap_walk_check(&w, 1, img, 0) == -EINVAL);
		bmap_walk_free(&w);
	}
	if (bmap_walk_start(&w, b) == 0) {
		CHECK(bmap_walk_check(&w, 0, NULL, len + 1) == -EFBIG);
		bmap_walk_free(&w);
	}
	free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bmap b;
	struct bmap_error e;
	int r = bmap_parse((const char *)data, size, &b, &e);

	if (r == 0) {
		check_map(&b);
		walk(&b, data, size);
	} else {
		CHECK(r == -EINVAL || r == -ENOMEM || r == -ENOTSUP ||
		      r == -EIO);
		CHECK(e.why[0] && strlen(e.why) < sizeof(e.why));
	}
	bmap_free(&b);
	return 0;
}
