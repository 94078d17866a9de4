/* fuzz-fsmap.c - libFuzzer target for the file-system map readers of
 * XFS, FAT, NTFS and exFAT (src/kcopy/fs-xfs.c, fs-fat.c, fs-ntfs.c,
 * fs-exfat.c over src/kcopy/fsmap.c), which parse hostile on-disk data
 * for --used.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * fuzz-sources: src/kcopy/fsmap.c src/kcopy/fs-xfs.c src/kcopy/fs-fat.c src/kcopy/fs-ntfs.c src/kcopy/fs-exfat.c
 * fuzz-options: -max_len=262144
 *
 * Not fs-ext.c: it reads through libext2fs, which is not built with the
 * sanitizers here, and whose bugs are not ours.
 *
 * Input: a sparse image, described compactly (real images are far too
 * big to fuzz: XFS needs 300 MiB), all numbers little-endian:
 *     u64 the image's size in bytes, taken modulo MAX_SIZE + 1
 *   then records, one after the other up to the end of the input:
 *     u32 sector (of 512 bytes: where the record starts), u16 n, then
 *       n < 0x8000:   n bytes of data (fewer if the input ends first)
 *       0x8000 | k:   one byte v: k sectors (k < 0x4000) all bytes v
 *       0xc000 | k:   k sectors that cannot be read (a read touching
 *                     them fails with -EIO), no bytes follow
 * laid over zeros; where records overlap, the one starting later wins
 * (at the same sector, the later one in the input).  Records past the
 * size are ignored.  A read of more than MAX_READ bytes at once fails
 * with -EIO (the readers read a MiB at most).  tests/fuzz-fsmap-seeds.py
 * turns a real image into this form (tests/fuzz-corpus/fsmap/ holds
 * mkfs.xfs, mkfs.vfat -F 12/16/32, mkntfs and mkfs.exfat images made
 * so).
 *
 * The size is kept to MAX_SIZE (4 GiB) so that no input makes a reader
 * walk for long: its FAT or $Bitmap of an image of zeros, read a MiB at
 * a time, is at most 32 MiB (a third of a second).
 *
 * Each reader (all four, whatever the image) runs on a fresh fs_map;
 * it must not crash, leak, read out of bounds or overflow, must read
 * only within [0, size), and must keep fsmap.h's promise: on success,
 * after fsmap_finish, the ranges are sorted, non-empty, apart (neither
 * overlapping nor touching), within the image, their sum is m->used,
 * the block size a power of two and the dirty reason a string; on
 * failure, a negative errno and a reason, a non-empty string in why.
 *
 * FUZZ_FSMAP_VERBOSE=1 in the environment: what each reader says of each
 * input run (fuzz-fsmap SEED... runs them once each).
 */
#include "fuzz.h"
#include "fsmap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR		512u
#define MAX_SIZE	(4ull << 30)
#define MAX_READ	(16u << 20)
#define REC_FILL	0x8000u
#define REC_BAD		0xc000u

struct rec {
	uint64_t pos, len;		/* bytes of the image */
	const uint8_t *data;		/* NULL: a fill or a bad region */
	uint8_t fill;
	bool bad;
	size_t seq;			/* order in the input */
};

struct image {
	uint64_t size;
	struct rec *recs;		/* sorted by pos, then seq */
	size_t num;
	uint64_t max_len;		/* the longest record */
};

static uint64_t get_le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static int by_pos(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	if (x->pos != y->pos)
		return x->pos < y->pos ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Parse the input into img; false for no memory (or no size). */
static bool parse(const uint8_t *data, size_t size, struct image *img)
{
	size_t i = 8, cap;

	if (size < 8)
		return false;
	img->size = get_le(data, 8) % (MAX_SIZE + 1);
	cap = (size - 8) / 6 + 1;
	img->recs = calloc(cap, sizeof(*img->recs));
	if (!img->recs)
		return false;
	while (size - i >= 6) {
		struct rec r = { get_le(data + i, 4) * SECTOR, 0, NULL, 0,
				 false, img->num };
		unsigned int n = (unsigned int)get_le(data + i + 4, 2);

		i += 6;
		if (n < REC_FILL) {
			r.len = n < size - i ? n : size - i;
			r.data = data + i;
			i += r.len;
		} else if ((n & REC_BAD) == REC_BAD) {
			r.len = (uint64_t)(n & ~REC_BAD) * SECTOR;
			r.bad = true;
		} else {
			if (i == size)
				break;
			r.len = (uint64_t)(n & ~REC_FILL) * SECTOR;
			r.fill = data[i++];
		}
		if (r.len == 0 || r.pos >= img->size)
			continue;
		if (r.len > img->size - r.pos)
			r.len = img->size - r.pos;
		if (r.len > img->max_len)
			img->max_len = r.len;
		img->recs[img->num++] = r;
	}
	qsort(img->recs, img->num, sizeof(*img->recs), by_pos);
	return true;
}

/* The fs_source's read: zeros, with the records that overlap laid on. */
static int read_image(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct image *img = ctx;
	uint8_t *out = buf;
	uint64_t end = off + len;
	size_t lo = 0, hi = img->num, i;

	CHECK(off <= img->size && len <= img->size - off);
	if (len > MAX_READ)
		return -EIO;
	memset(buf, 0, len);
	/* The first record that may reach off: none before it does. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (img->recs[mid].pos + img->max_len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < img->num && img->recs[i].pos < end; i++) {
		const struct rec *r = &img->recs[i];
		uint64_t s = r->pos > off ? r->pos : off;
		uint64_t e = r->pos + r->len < end ? r->pos + r->len : end;

		if (s >= e)
			continue;
		if (r->bad)
			return -EIO;
		if (r->data)
			memcpy(out + (s - off), r->data + (s - r->pos), e - s);
		else
			memset(out + (s - off), r->fill, e - s);
	}
	return 0;
}

static void run_reader(const struct image *img, const char *type,
		       fs_reader_fn reader)
{
	struct fs_source src = { read_image, (void *)img, img->size };
	struct fs_map m;
	char why[256];
	uint64_t sum = 0;
	size_t i;
	int r;

	memset(&m, 0, sizeof(m));
	snprintf(m.type, sizeof(m.type), "%s", type);
	memset(why, 0x5a, sizeof(why));	/* no NUL but what the reader puts */
	r = reader(&src, &m, why, sizeof(why));
	if (getenv("FUZZ_FSMAP_VERBOSE"))
		fprintf(stderr, "%s: %d %.*s\n", type, r, r < 0 ? 256 : 0,
			why);
	if (r < 0) {
		CHECK(r >= -4095);
		CHECK(memchr(why, 0, sizeof(why)) != NULL);
		CHECK(why[0] != 0);
		fsmap_free(&m);
		return;
	}
	CHECK(r == 0);
	fsmap_finish(&m, img->size);
	CHECK(!strcmp(m.type, type));
	CHECK(memchr(m.dirty, 0, sizeof(m.dirty)) != NULL);
	CHECK(m.block_size && !(m.block_size & (m.block_size - 1)));
	CHECK(m.fs_size > 0);
	CHECK(m.num <= m.cap);
	for (i = 0; i < m.num; i++) {
		const struct fs_range *x = &m.ranges[i];

		CHECK(x->len > 0);
		CHECK(x->pos < img->size && x->len <= img->size - x->pos);
		if (i)
			CHECK(x->pos > m.ranges[i - 1].pos +
			      m.ranges[i - 1].len);
		sum += x->len;
	}
	CHECK(sum == m.used);
	if (getenv("FUZZ_FSMAP_VERBOSE"))
		fprintf(stderr, "%s: %zu ranges, %llu bytes used of %llu; "
			"dirty: %s\n", type, m.num,
			(unsigned long long)m.used,
			(unsigned long long)img->size, m.dirty);
	fsmap_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image img = { 0 };

	if (!parse(data, size, &img))
		return 0;
	run_reader(&img, "xfs", fs_xfs_map);
	run_reader(&img, "vfat", fs_fat_map);
	run_reader(&img, "ntfs", fs_ntfs_map);
	run_reader(&img, "exfat", fs_exfat_map);
	free(img.recs);
	return 0;
}
