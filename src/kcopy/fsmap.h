/* fsmap.h - what a file system uses, read from its own allocation
 * structures: the interface between the map readers (fs-ext.c, fs-xfs.c,
 * fs-fat.c, fs-ntfs.c, fs-exfat.c), fsmap.c, which holds what they find,
 * fstypes.c, which names the reader of each type, and their callers
 * (used.c for --used, tests/fsmap-dump.c).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Pure: a reader sees its file system only through struct fs_source (the
 * caller reads through the copy's backend, so that files, block devices
 * and NBD exports alike can be mapped) and prints nothing; what went
 * wrong comes back as a negative errno with a reason in words.
 */
#ifndef KCOPY_FSMAP_H
#define KCOPY_FSMAP_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* The file system to map: its bytes [0, size) are read by read(). */
struct fs_source {
	/* Read len bytes at byte offset off (off + len <= size) into buf:
	 * 0, or a negative errno (-EIO for a short read). */
	int (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	void *ctx;
	uint64_t size;			/* bytes */
};

/* A range of bytes the file system uses. */
struct fs_range {
	uint64_t pos, len;
};

/* What a reader found. */
struct fs_map {
	char type[16];			/* libblkid's name: "ext4", "xfs", ... */
	uint32_t block_size;		/* the allocation unit, bytes */
	uint64_t fs_size;		/* bytes the file system spans */
	/* Why it is not clean ("needs journal recovery", "errors
	 * recorded", "the volume is marked dirty"); "" when it is. */
	char dirty[160];
	/* Used bytes, sorted and merged once fsmap_finish() ran; readers
	 * add them in any order, overlapping or not (fsmap_add). */
	struct fs_range *ranges;
	size_t num, cap;
	/* Used bytes whose contents do not matter as long as they read as
	 * zeros (fsmap_add_zero): an ext4's inode table blocks past its
	 * groups' last inodes in use.  A copy zeroes them rather than
	 * reading them; fsmap_finish takes them out of ranges. */
	struct fs_range *zeros;
	size_t num_zeros, cap_zeros;
	uint64_t used;			/* bytes in ranges and zeros, after
					   finish: what the file system uses */
	uint64_t zero_bytes;		/* of them, in zeros */
};

/* A reader: fill m (type already set by the caller from libblkid) from
 * src.  0, or a negative errno with the reason in why (len bytes):
 * -ENOTSUP a variant it does not read (why names it), -EUCLEAN
 * structures that contradict each other or the size (why says which),
 * -ENOMEM, or the source's read error.  A file system that is not clean
 * is no error: m->dirty says why. */
typedef int (*fs_reader_fn)(const struct fs_source *src, struct fs_map *m,
			    char *why, size_t len);

int fs_ext_map(const struct fs_source *src, struct fs_map *m, char *why,
	       size_t len);
int fs_xfs_map(const struct fs_source *src, struct fs_map *m, char *why,
	       size_t len);
int fs_fat_map(const struct fs_source *src, struct fs_map *m, char *why,
	       size_t len);
int fs_ntfs_map(const struct fs_source *src, struct fs_map *m, char *why,
		size_t len);
int fs_exfat_map(const struct fs_source *src, struct fs_map *m, char *why,
		 size_t len);

/* fstypes.c: the reader of a libblkid type name ("ext2", "ext3", "ext4", "xfs",
 * "vfat", "ntfs", "exfat"), or NULL if there is none. */
fs_reader_fn fsmap_reader(const char *type);
/* The file systems there are readers of, as messages name them ("EXT2,
 * ..., NTFS and EXFAT"), into buf (len bytes).  buf. */
const char *fsmap_names(char *buf, size_t len);

/* fsmap.c */
/* Add [pos, pos + len) to m's used bytes; clipped to the source's size by
 * fsmap_finish.  0 or -ENOMEM. */
int fsmap_add(struct fs_map *m, uint64_t pos, uint64_t len);
/* Add [pos, pos + len) to the used bytes that need only read as zeros.
 * 0 or -ENOMEM. */
int fsmap_add_zero(struct fs_map *m, uint64_t pos, uint64_t len);
/* Sort and merge m's ranges and zeros, clip them to size, take the zeros
 * out of the ranges and count m->used and m->zero_bytes.  0 or -ENOMEM. */
int fsmap_finish(struct fs_map *m, uint64_t size);
void fsmap_free(struct fs_map *m);
/* The readers' one way to fail: the reason, from fmt, into why (len
 * bytes); returns err. */
int fsmap_fail(char *why, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* fs_read, with the reason of a failure in why: what was read, at which
 * byte, and whether it lies past the end of the source. */
int fsmap_read(const struct fs_source *src, void *buf, size_t len,
	       uint64_t off, const char *what, char *why, size_t why_len);
/* Read len bytes at off of src; a helper for readers. */
static inline int fs_read(const struct fs_source *src, void *buf,
			  size_t len, uint64_t off)
{
	if (off > src->size || len > src->size - off)
		return -EUCLEAN;	/* a structure points past the end */
	return src->read(src->ctx, buf, len, off);
}

/* The little-endian numbers of the on-disk formats, at p. */
static inline uint16_t fs_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t fs_le32(const uint8_t *p)
{
	return (uint32_t)fs_le16(p) | (uint32_t)fs_le16(p + 2) << 16;
}

static inline uint64_t fs_le64(const uint8_t *p)
{
	return (uint64_t)fs_le32(p) | (uint64_t)fs_le32(p + 4) << 32;
}

#endif /* KCOPY_FSMAP_H */
