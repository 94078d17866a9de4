/* bmap.h - bmaptool's block map: the XML "bmap" file that lists the
 * mapped blocks of an image, parsed (by libexpat), and the walk that
 * applies it to the image's bytes as they stream by.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Pure: no tool state, no output; each function returns 0 or -errno (or as
 * said), and what is wrong with a file in a struct bmap_error.  The
 * formats read are those bmaptool 3.x reads and writes: 1.0 to 1.2 (no
 * checksums), 1.3 (sha1: BmapFileSHA1, the attribute sha1), 1.4 and 2.x
 * (ChecksumType, BmapFileChecksum, the attribute chksum).
 */
#ifndef KCOPY_BMAP_H
#define KCOPY_BMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BMAP_SUM_MAX	64		/* bytes of the largest digest */

/* A range of mapped blocks, [first, last], and its checksum: of its bytes
 * of the image (the last block's only up to the image's end). */
struct bmap_range {
	uint64_t first, last;
	unsigned int line;		/* of its <Range> in the file */
	bool has_sum;			/* else not checked (before 1.3, or
					   no attribute) */
	unsigned int sum_len;		/* bytes of sum: the bmap's sum_len */
	unsigned char sum[BMAP_SUM_MAX];	/* sum_len bytes */
};

/* What a bmap file says, checked whole: the ranges are in order, apart
 * (they may touch), within BlocksCount, which is the image's size in
 * blocks, and hold MappedBlocksCount blocks; the checksum type is known,
 * every checksum has its length, and the file's own checksum is right. */
struct bmap {
	unsigned int major, minor;	/* the format's version */
	uint64_t image_size;		/* bytes */
	uint64_t block_size;		/* bytes, 1 to BMAP_MAX_BLOCK */
	uint64_t blocks;		/* BlocksCount */
	uint64_t mapped_blocks;		/* MappedBlocksCount */
	uint64_t mapped_bytes;		/* the image's bytes in the ranges */
	char sum_type[16];		/* "sha256", "sha1", ...; "" none */
	unsigned int sum_len;		/* bytes of its digest; 0: none */
	struct bmap_range *r;
	size_t num;
};

#define BMAP_MAX_BLOCK	(1u << 30)

/* What is wrong with a file: the line (1 from the start; 0 if of no line)
 * and the defect, as a phrase ("BlocksCount 3 is not the image's size in
 * blocks (4)"). */
struct bmap_error {
	unsigned int line;
	char why[200];
};

/* Parse the len bytes of text into *b (bmap_free() frees it, also after a
 * failure).  0; -EINVAL with e said for a file that is not a well-formed
 * bmap or is defective, -ENOMEM, -ENOTSUP for a version above 2. */
int bmap_parse(const char *text, size_t len, struct bmap *b,
	       struct bmap_error *e);
void bmap_free(struct bmap *b);

/* The bmap bmaptool would find beside image_path: the path + ".bmap",
 * then with its last extension (".xz", then ".img") taken off, and so on
 * while there is one to take off.  1 and its path in *bmap_path (the
 * caller frees it), 0 if there is none, -ENOMEM. */
int bmap_find_beside(const char *image_path, char **bmap_path);

/* The walk: the image's bytes fed in order, in chunks of any size, from
 * byte 0 to its end, as the feed's filter or the copy's data hook sees
 * them.  Each mapped range's checksum is taken as its bytes go by and
 * compared at its end. */
struct bmap_walk {
	const struct bmap *b;
	uint64_t pos;			/* the byte the next data starts at */
	size_t next;			/* the range that ends next */
	void *md;			/* EVP_MD_CTX, for range next */
	bool in_range;			/* md holds range next's bytes so far */
	int error;			/* the first error; then every call
					   returns it */
	size_t bad;			/* -EBADMSG: the range that did not
					   match */
};

/* Start a walk of b's image (b outlives it).  0, -ENOMEM, -ENOTSUP (the
 * checksum type is not in libcrypto). */
int bmap_walk_start(struct bmap_walk *w, const struct bmap *b);
/* The image's len bytes at pos (which must be where the last ended): the
 * checksums of the ranges they are in.  0; -EBADMSG at the end of the
 * first range whose checksum differs (w->bad); -EINVAL if pos is not where
 * the last ended; -EFBIG for bytes past the image's size.  The bytes are
 * not changed: those no range maps are copied as the image has them
 * (zeros, where the bmap is the image's), so that a bmap older than its
 * image loses nothing. */
int bmap_walk_check(struct bmap_walk *w, uint64_t pos, const void *buf,
		    size_t len);
/* The image ended after total bytes: 0, or -EINVAL if total is not its
 * size (the error before, if there was one). */
int bmap_walk_end(struct bmap_walk *w, uint64_t total);
void bmap_walk_free(struct bmap_walk *w);

/* The bytes of range i of b in the image: [*start, *end). */
void bmap_range_bytes(const struct bmap *b, size_t i, uint64_t *start,
		      uint64_t *end);

#endif /* KCOPY_BMAP_H */
