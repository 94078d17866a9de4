/* fs-ext.c - the map reader of ext2, ext3 and ext4: the bytes the file
 * system uses, from its block bitmaps, read with libext2fs (e2fsprogs).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libext2fs reads through an io_manager of this file's own (fsmap_io),
 * whose channel reads through the fs_source and nothing else: no path is
 * opened, so a file, a block device and an NBD export are mapped alike.
 * ext2fs_open2 takes a name, not a pointer: the name is "fsmap:%p" with
 * the fs_source's address, which the manager's open parses back.  The
 * channel's private data holds all the state (the source, the errno of
 * the last failed read, the bytes read); nothing here is global but the
 * manager's table, which is never written.  The file system is opened
 * read-only (no EXT2_FLAG_RW; every write of the channel fails with
 * EROFS), with EXT2_FLAG_64BITS so that more than 2^32 blocks map, and
 * never written back: ext2fs_free, not ext2fs_close.
 *
 * What counts as used, in blocks of s_log_block_size (bigalloc: the block
 * bitmap is one of clusters, and a used cluster is used whole):
 *   - every block the block bitmap marks in use, in runs
 *     (ext2fs_find_first_set/zero_block_bitmap2).  The bitmap covers
 *     blocks [s_first_data_block, s_blocks_count).  The kernel and the
 *     e2fsprogs mark in it all that the file system holds: the file data,
 *     directories, extent tree and xattr blocks, the journal and the
 *     resize inode (inodes of their own), and every group's superblock
 *     backup, group descriptors, reserved GDT blocks, bitmaps and inode
 *     table (whole, initialized or not: lazy_itable_init leaves old bytes
 *     there, which a copy of the table keeps as they are).  A group whose
 *     descriptor says BLOCK_UNINIT (uninit_bg, metadata_csum) has no
 *     bitmap on disk: libext2fs reads it as all free, then marks in it
 *     what every such group holds (mark_uninit_bg_group_blocks): the
 *     group's superblock backup and descriptors, and its own bitmaps and
 *     inode table wherever they lie (with flex_bg, in another group).
 *     Checked with e2fsprogs 1.47: the bitmap alone gives dumpe2fs's
 *     used blocks to the block on ext4 with BLOCK_UNINIT groups, meta_bg
 *     and bigalloc;
 *   - bytes [0, 2048) and the blocks before s_first_data_block and the
 *     first data block itself: the boot sector and the primary superblock
 *     (at byte 1024; block 1 of a 1 KiB file system, whose block 0 is in
 *     no group and no bitmap);
 *   - again, from the group descriptors, every group's superblock backup,
 *     old-style descriptor blocks with the reserved GDT blocks (meta_bg:
 *     s_first_meta_bg of them, then one descriptor block in the groups
 *     that hold one), bitmaps and inode table, and the MMP block: all in
 *     the bitmap already, named once more so that a bitmap that lacks them
 *     (a libext2fs that leaves a BLOCK_UNINIT group all free, a bitmap
 *     block gone bad) loses no metadata.
 * An external journal (a device of its own) is not the file system's: a
 * journal device itself is not read (-ENOTSUP).
 *
 * Not clean, in m->dirty: the needs_recovery flag (the journal holds
 * writes not yet in place: the bitmaps may be older than the blocks in
 * use), s_state with EXT2_ERROR_FS (errors recorded) or without
 * EXT2_VALID_FS (mounted, or not cleanly unmounted), and orphan inodes
 * (s_last_orphan, or the orphan file's orphan_present flag): inodes
 * unlinked while open, whose blocks are still in the bitmap until fsck
 * or the next mount frees them.
 *
 * Before the bitmap is read: a file system larger than its source is
 * -EUCLEAN (its end is not there to copy), and so are group descriptors
 * that place metadata outside their file system or over other metadata
 * (ext2fs_check_desc, as e2fsck does first).
 *
 * Errors: libext2fs's errcode_t are errno values below 256 and the
 * com_err table of ext2 (EXT2_ET_*) above.  The channel returns a failed
 * read's errno as its errcode, which ext2fs_open2 hands back as it is;
 * the bitmap reader turns it into EXT2_ET_BLOCK_BITMAP_READ, so the
 * channel keeps the errno of its last failed read too, and that wins.
 * Features libext2fs does not read are -ENOTSUP; no memory -ENOMEM; any
 * other EXT2_ET_* is structures that do not hold together, -EUCLEAN.  Messages come from the
 * ext2 table directly (et_ext2_error_table): registering it with com_err
 * would change that library's global list.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "fsmap.h"

/* ------------------------------------------------------- the channel */

/* A channel's private data. */
struct fsmap_chan {
	const struct fs_source *src;
	int err;			/* errno of the last failed read, or 0 */
	struct struct_io_stats stats;
};

static errcode_t fsmap_open(const char *name, int flags, io_channel *ret);
static errcode_t fsmap_close(io_channel io);
static errcode_t fsmap_set_blksize(io_channel io, int blksize);
static errcode_t fsmap_read_blk(io_channel io, unsigned long block,
				int count, void *data);
static errcode_t fsmap_read_blk64(io_channel io, unsigned long long block,
				  int count, void *data);
static errcode_t fsmap_write_blk(io_channel io, unsigned long block,
				 int count, const void *data);
static errcode_t fsmap_write_blk64(io_channel io, unsigned long long block,
				   int count, const void *data);
static errcode_t fsmap_write_byte(io_channel io, unsigned long offset,
				  int count, const void *data);
static errcode_t fsmap_flush(io_channel io);
static errcode_t fsmap_set_option(io_channel io, const char *option,
				  const char *arg);
static errcode_t fsmap_get_stats(io_channel io, io_stats *stats);
static errcode_t fsmap_discard(io_channel io, unsigned long long block,
			       unsigned long long count);

/* Never written: libext2fs takes it by a pointer that is not const. */
static struct struct_io_manager fsmap_io = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "kcopy fs_source I/O manager",
	.open = fsmap_open,
	.close = fsmap_close,
	.set_blksize = fsmap_set_blksize,
	.read_blk = fsmap_read_blk,
	.write_blk = fsmap_write_blk,
	.flush = fsmap_flush,
	.write_byte = fsmap_write_byte,
	.set_option = fsmap_set_option,
	.get_stats = fsmap_get_stats,
	.read_blk64 = fsmap_read_blk64,
	.write_blk64 = fsmap_write_blk64,
	.discard = fsmap_discard,
	.zeroout = fsmap_discard,
};

#define NAME_PREFIX "fsmap:"

static errcode_t fsmap_open(const char *name, int flags, io_channel *ret)
{
	const struct fs_source *src;
	struct fsmap_chan *c;
	io_channel io;
	void *p = NULL;
	int end = 0;

	if (!name || sscanf(name, NAME_PREFIX "%p%n", &p, &end) != 1 ||
	    name[end] != '\0' || !p)
		return EXT2_ET_BAD_DEVICE_NAME;
	if (flags & IO_FLAG_RW)
		return EROFS;
	src = p;
	io = calloc(1, sizeof(*io));
	c = calloc(1, sizeof(*c));
	if (io)
		io->name = strdup(name);
	if (!io || !c || !io->name) {
		if (io)
			free(io->name);
		free(io);
		free(c);
		return EXT2_ET_NO_MEMORY;
	}
	c->src = src;
	c->stats.num_fields = 2;
	io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	io->manager = &fsmap_io;
	io->block_size = 1024;
	io->refcount = 1;
	io->private_data = c;
	*ret = io;
	return 0;
}

static errcode_t fsmap_close(io_channel io)
{
	if (--io->refcount > 0)
		return 0;
	free(io->private_data);
	free(io->name);
	free(io);
	return 0;
}

static errcode_t fsmap_set_blksize(io_channel io, int blksize)
{
	if (blksize <= 0)
		return EXT2_ET_INVALID_ARGUMENT;
	io->block_size = blksize;
	return 0;
}

/* count blocks at block; a negative count is -count bytes (libext2fs's
 * convention, for the superblock). */
static errcode_t fsmap_read_blk64(io_channel io, unsigned long long block,
				  int count, void *data)
{
	struct fsmap_chan *c = io->private_data;
	uint64_t bs = (uint64_t)io->block_size, len;
	int r;

	len = count < 0 ? (uint64_t)-(int64_t)count : (uint64_t)count * bs;
	if (block > UINT64_MAX / bs || len > SIZE_MAX) {
		c->err = EUCLEAN;
		return EUCLEAN;
	}
	r = fs_read(c->src, data, (size_t)len, block * bs);
	if (r < 0) {
		/* An errno is an errcode_t of its own (com_err's table 0). */
		c->err = -r < 256 ? -r : EIO;
		return c->err;
	}
	c->stats.bytes_read += len;
	return 0;
}

static errcode_t fsmap_read_blk(io_channel io, unsigned long block,
				int count, void *data)
{
	return fsmap_read_blk64(io, block, count, data);
}

static errcode_t fsmap_write_blk64(io_channel io, unsigned long long block,
				   int count, const void *data)
{
	return EROFS;
}

static errcode_t fsmap_write_blk(io_channel io, unsigned long block,
				 int count, const void *data)
{
	return EROFS;
}

static errcode_t fsmap_write_byte(io_channel io, unsigned long offset,
				  int count, const void *data)
{
	return EROFS;
}

static errcode_t fsmap_discard(io_channel io, unsigned long long block,
			       unsigned long long count)
{
	return EROFS;
}

static errcode_t fsmap_flush(io_channel io)
{
	return 0;
}

static errcode_t fsmap_set_option(io_channel io, const char *option,
				  const char *arg)
{
	return EXT2_ET_INVALID_ARGUMENT;
}

static errcode_t fsmap_get_stats(io_channel io, io_stats *stats)
{
	struct fsmap_chan *c = io->private_data;

	*stats = &c->stats;
	return 0;
}

/* ------------------------------------------------------------ errors */

/* The words of an errcode_t. */
static const char *ext_message(errcode_t code)
{
	const struct error_table *t = &et_ext2_error_table;

	if (code >= t->base && code < t->base + t->n_msgs)
		return t->msgs[code - t->base];
	return error_message(code);
}

/* The negative errno of code, or of read_err, the failed read behind it. */
static int ext_errno(errcode_t code, int read_err)
{
	if (read_err)
		return -read_err;
	if (code > 0 && code < 256)
		return -(int)code;
	switch (code) {
	case EXT2_ET_NO_MEMORY:
		return -ENOMEM;
	case EXT2_ET_UNSUPP_FEATURE:
	case EXT2_ET_RO_UNSUPP_FEATURE:
	case EXT2_ET_REV_TOO_HIGH:
	case EXT2_ET_CANT_USE_LEGACY_BITMAPS:
	case EXT2_ET_UNIMPLEMENTED:
	case EXT2_ET_OP_NOT_SUPPORTED:
		return -ENOTSUP;
	case EXT2_ET_SHORT_READ:
		return -EIO;
	default:
		return -EUCLEAN;
	}
}

/* Fail with code: a negative errno, why says what (doing) and why. */
static int ext_fail(errcode_t code, int read_err, const char *doing,
		    char *why, size_t len)
{
	if (read_err)
		snprintf(why, len, "%s: %s (%s)", doing, ext_message(code),
			 strerror(read_err));
	else
		snprintf(why, len, "%s: %s", doing, ext_message(code));
	return ext_errno(code, read_err);
}

/* ext2fs_open2 found features it does not read: name them from the
 * superblock, read again for that. */
static int unsupported(const struct fs_source *src, errcode_t code,
		       char *why, size_t len)
{
	struct ext2_super_block sb;
	uint32_t incompat;

	if (fs_read(src, &sb, sizeof(sb), SUPERBLOCK_OFFSET) < 0)
		return ext_fail(code, 0, "opening", why, len);
	incompat = ext2fs_le32_to_cpu(sb.s_feature_incompat);
	if (incompat & EXT3_FEATURE_INCOMPAT_JOURNAL_DEV)
		snprintf(why, len, "an external journal, not a file system");
	else
		snprintf(why, len, "%s (incompat 0x%" PRIx32 ")",
			 ext_message(code),
			 incompat & ~(uint32_t)EXT2_LIB_FEATURE_INCOMPAT_SUPP);
	return -ENOTSUP;
}

/* -------------------------------------------------------------- the map */

static void add_reason(char *dirty, size_t len, const char *reason)
{
	size_t n = strlen(dirty);

	snprintf(dirty + n, len - n, "%s%s", n ? ", " : "", reason);
}

static void clean_check(ext2_filsys fs, struct fs_map *m)
{
	struct ext2_super_block *sb = fs->super;

	m->dirty[0] = '\0';
	if (ext2fs_has_feature_journal_needs_recovery(sb))
		add_reason(m->dirty, sizeof(m->dirty), "needs journal recovery");
	if (sb->s_state & EXT2_ERROR_FS)
		add_reason(m->dirty, sizeof(m->dirty), "errors recorded");
	if (!(sb->s_state & EXT2_VALID_FS))
		add_reason(m->dirty, sizeof(m->dirty), "not cleanly unmounted");
	if (sb->s_last_orphan || ext2fs_has_feature_orphan_present(sb))
		add_reason(m->dirty, sizeof(m->dirty),
			   "has orphan inodes to clean up");
}

/* Add blocks [blk, blk + num) of fs, clipped to the file system. */
static int add_blocks(ext2_filsys fs, struct fs_map *m, blk64_t blk,
		      blk64_t num)
{
	blk64_t count = ext2fs_blocks_count(fs->super);

	if (blk >= count)
		return 0;
	if (num > count - blk)
		num = count - blk;
	return fsmap_add(m, blk * fs->blocksize, num * fs->blocksize);
}

/* The blocks of group g's inode table (at it) past its last inode in
 * use need only read as zeros: where the group descriptors carry a
 * checksum (uninit_bg, metadata_csum), e2fsck and the kernel look at no
 * inode past the count the group has never used (bg_itable_unused; all
 * of them in a group marked INODE_UNINIT), and the kernel's lazy init
 * zeroes those blocks where they were not zeroed yet.  e2image -r leaves
 * them out of an image file, where they read as zeros; a copy zeroes
 * them on the destinations rather than reading them: on a large file
 * system most of the inode tables (16 GiB of a 1 TiB ext4) is there. */
static int add_unused_inodes(ext2_filsys fs, struct fs_map *m, dgrp_t g,
			     blk64_t it)
{
	blk64_t per = fs->inode_blocks_per_group, unused;
	blk64_t count = ext2fs_blocks_count(fs->super);

	if (!ext2fs_has_group_desc_csum(fs))
		return 0;
	if (ext2fs_bg_flags_test(fs, g, EXT2_BG_INODE_UNINIT))
		unused = per;
	else
		unused = ext2fs_bg_itable_unused(fs, g) /
			 EXT2_INODES_PER_BLOCK(fs->super);
	if (unused > per)
		unused = per;
	if (it + per > count || unused == 0)
		return 0;
	return fsmap_add_zero(m, (it + per - unused) * fs->blocksize,
			      unused * fs->blocksize);
}

/* Every group's metadata, as the descriptors place it. */
static int add_metadata(ext2_filsys fs, struct fs_map *m)
{
	struct ext2_super_block *sb = fs->super;
	blk64_t old_desc = ext2fs_has_feature_meta_bg(sb) ?
			   sb->s_first_meta_bg :
			   fs->desc_blocks + sb->s_reserved_gdt_blocks;
	uint64_t boot = (uint64_t)(sb->s_first_data_block + 1) * fs->blocksize;
	dgrp_t g;
	int r;

	r = fsmap_add(m, 0, boot > 2048 ? boot : 2048);
	for (g = 0; r == 0 && g < fs->group_desc_count; g++) {
		blk64_t super, old, new;
		blk_t used;
		blk64_t bb = ext2fs_block_bitmap_loc(fs, g);
		blk64_t ib = ext2fs_inode_bitmap_loc(fs, g);
		blk64_t it = ext2fs_inode_table_loc(fs, g);

		if (ext2fs_super_and_bgd_loc2(fs, g, &super, &old, &new,
					      &used) != 0)
			return -EUCLEAN;
		if (super || g == 0)
			r = add_blocks(fs, m, super, 1);
		if (r == 0 && old)
			r = add_blocks(fs, m, old, old_desc);
		if (r == 0 && new)
			r = add_blocks(fs, m, new, 1);
		if (r == 0 && bb)
			r = add_blocks(fs, m, bb, 1);
		if (r == 0 && ib)
			r = add_blocks(fs, m, ib, 1);
		if (r == 0 && it)
			r = add_blocks(fs, m, it, fs->inode_blocks_per_group);
		if (r == 0 && it)
			r = add_unused_inodes(fs, m, g, it);
	}
	if (r == 0 && ext2fs_has_feature_mmp(sb) && sb->s_mmp_block)
		r = add_blocks(fs, m, sb->s_mmp_block, 1);
	return r;
}

/* The runs of used blocks (clusters) of the block bitmap. */
static int add_bitmap(ext2_filsys fs, struct fs_map *m, char *why,
		      size_t len)
{
	ext2fs_block_bitmap map = fs->block_map;
	blk64_t first = fs->super->s_first_data_block;
	blk64_t last = ext2fs_blocks_count(fs->super) - 1, b, e;
	errcode_t err;
	int r;

	while (first <= last) {
		err = ext2fs_find_first_set_block_bitmap2(map, first, last, &b);
		if (err == ENOENT)
			break;
		if (err)
			return ext_fail(err, 0, "the block bitmap", why, len);
		err = ext2fs_find_first_zero_block_bitmap2(map, b, last, &e);
		if (err == ENOENT)
			e = last + 1;
		else if (err)
			return ext_fail(err, 0, "the block bitmap", why, len);
		if (e <= b)		/* no progress: a bitmap gone wrong */
			return ext_fail(EXT2_ET_INVALID_ARGUMENT, 0,
					"the block bitmap", why, len);
		r = add_blocks(fs, m, b, e - b);
		if (r < 0) {
			snprintf(why, len, "the used ranges: %s", strerror(-r));
			return r;
		}
		first = e;
	}
	return 0;
}

int fs_ext_map(const struct fs_source *src, struct fs_map *m, char *why,
	       size_t len)
{
	char name[sizeof(NAME_PREFIX) + 2 * sizeof(void *) + 8];
	struct fsmap_chan *c;
	ext2_filsys fs = NULL;
	errcode_t err;
	int r;

	snprintf(name, sizeof(name), NAME_PREFIX "%p", (const void *)src);
	err = ext2fs_open2(name, NULL, EXT2_FLAG_64BITS, 0, 0, &fsmap_io, &fs);
	if (err == EXT2_ET_UNSUPP_FEATURE)
		return unsupported(src, err, why, len);
	if (err)	/* a failed read's errno is err itself here */
		return ext_fail(err, 0, "opening", why, len);
	c = fs->io->private_data;
	m->block_size = EXT2_CLUSTER_SIZE(fs->super);
	m->fs_size = ext2fs_blocks_count(fs->super) * fs->blocksize;
	clean_check(fs, m);
	if (m->fs_size > src->size) {
		snprintf(why, len, "%" PRIu64 " bytes of file system, %"
			 PRIu64 " of source", m->fs_size, src->size);
		r = -EUCLEAN;
		goto out;
	}
	/* Bitmaps as red-black trees of extents, not arrays of bits: a
	 * 1 TiB file system's (ext2fs_check_desc's, the block bitmap) would
	 * be 32 MiB each as bits (kcopy's memory is its page budget and
	 * little more), a few KiB as the runs of one that holds a few GiB. */
	fs->default_bitmap_type = EXT2FS_BMAP64_RBTREE;
	err = ext2fs_check_desc(fs);
	if (err) {
		r = ext_fail(err, c->err, "the group descriptors", why, len);
		goto out;
	}
	c->err = 0;
	err = ext2fs_read_block_bitmap(fs);
	if (err) {
		r = ext_fail(err, c->err, "reading the block bitmap", why, len);
		goto out;
	}
	r = add_metadata(fs, m);
	if (r < 0) {
		snprintf(why, len, "the group descriptors: %s",
			 r == -ENOMEM ? strerror(ENOMEM) :
			 "no superblock or descriptor location");
		goto out;
	}
	r = add_bitmap(fs, m, why, len);
out:
	ext2fs_free(fs);
	return r;
}
