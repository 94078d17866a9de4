/* fs-ntfs.c - the clusters an NTFS volume uses, from its $Bitmap
 * (fsmap.h), read straight from the on-disk format.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Written from the public descriptions of the format (the Linux-NTFS
 * project's documentation, Microsoft's notes on the MFT structures); no
 * code of libntfs-3g (GPL) is used.  All numbers are little-endian.
 *
 * What it relies on:
 *
 * Boot sector (byte 0 of the volume):
 *   0x03  8  OEM id "NTFS    "
 *   0x0B  u16 bytes per sector (256 to 4096, a power of two)
 *   0x0D  u8  sectors per cluster: 1 to 128, a power of two, or from 0xF4
 *             up 2^(256 - v) (clusters of up to 2 MiB)
 *   0x28  u64 total sectors: one less than the partition's; the backup
 *             boot sector is the last one, at byte total * bytes per sector
 *   0x30  u64 LCN of $MFT         0x38 u64 LCN of $MFTMirr
 *   0x40  s8  clusters per MFT record; negative: the record is 2^-v bytes
 *   0x44  s8  clusters per index record, the same way (checked only)
 *
 * MFT record (a FILE record; multi-sector protected):
 *   0x00  "FILE"
 *   0x04  u16 offset of the update sequence array (USA)
 *   0x06  u16 its count: 1 + record size / 512; entry 0 is the update
 *             sequence number (USN), which the last two bytes of every
 *             512-byte stride hold on disk; entry i is what belongs there
 *   0x14  u16 offset of the first attribute
 *   0x16  u16 flags: 0x0001 in use
 *   0x18  u32 bytes in use
 *   0x20  u64 base record reference (low 48 bits: record number), 0 in a
 *             base record
 *
 * Attribute (at the first attribute's offset, each after the last, up to
 * the type 0xFFFFFFFF):
 *   0x00  u32 type: 0x20 $ATTRIBUTE_LIST, 0x70 $VOLUME_INFORMATION,
 *             0x80 $DATA
 *   0x04  u32 length of the attribute
 *   0x08  u8  non-resident flag     0x09 u8 name length (0: unnamed)
 *   resident:     0x10 u32 value length, 0x14 u16 value offset
 *   non-resident: 0x10 u64 lowest VCN, 0x18 u64 highest VCN,
 *                 0x20 u16 mapping pairs offset, 0x28 u64 allocated size,
 *                 0x30 u64 data size (both only where the lowest VCN is 0)
 *
 * Mapping pairs (a runlist): runs one after the other up to a 0 byte;
 * each a header byte (low nibble: bytes of the run's length, high nibble:
 * bytes of its LCN), the length (unsigned), then the LCN as a signed
 * delta from the last run's; no LCN bytes: a sparse run.
 *
 * $ATTRIBUTE_LIST entries (when the attributes of a file do not fit in its
 * base record; followed for $MFT's and $Bitmap's $DATA):
 *   0x00  u32 type   0x04 u16 entry length   0x06 u8 name length
 *   0x08  u64 lowest VCN of the piece   0x10 u64 record holding it
 *
 * Records used: 0 $MFT (its unnamed $DATA is where all records are; record
 * 0 itself is at the $MFT LCN), 3 $Volume ($VOLUME_INFORMATION, resident:
 * flags u16 at value offset 0x0A, 0x0001 dirty) and 6 $Bitmap (unnamed
 * $DATA: bit n of byte n / 8, low bit first, set when cluster n is used).
 *
 * Used: the clusters the $Bitmap marks (bits past the volume's clusters
 * ignored), the boot sector and the backup boot sector, which no cluster
 * holds (ntfsfix and Windows check it).  Sectors after the last whole
 * cluster and before the backup belong to nothing and are not used.  The
 * block size is the cluster; the file system spans total sectors + 1
 * sectors.
 *
 * Not read: the $LogFile (a volume marked dirty says so, and its log is
 * not replayed or checked here), hibernated Windows (hiberfil.sys; a
 * volume Windows left hibernated or "fast started" is out of scope).
 *
 * Every number from the disk is checked before use: offsets within a
 * record against the bytes in use, runs against the volume's clusters,
 * loops bounded by the bytes they walk, so a hostile image gives
 * -EUCLEAN, not a hang or a read out of bounds.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsmap.h"

#define AT_ATTRIBUTE_LIST	0x20u
#define AT_VOLUME_INFORMATION	0x70u
#define AT_DATA			0x80u
#define AT_END			0xFFFFFFFFu

#define REC_MFT			0
#define REC_VOLUME		3
#define REC_BITMAP		6

#define STRIDE			512u	/* of the multi-sector protection */
#define MAX_CLUSTER		(2u << 20)
#define MAX_RECORD		(64u << 10)
#define MAX_ATTR_LIST		(1u << 20)	/* Windows: 256 KiB at most */
#define CHUNK			(1u << 20)	/* $Bitmap read at once */
#define NO_LCN			UINT64_MAX	/* a sparse run */
#define VOLUME_IS_DIRTY		0x0001u

struct run {
	uint64_t vcn, lcn, len;		/* clusters; lcn NO_LCN: sparse */
};

struct runlist {
	struct run *r;
	size_t num, cap;
};

struct ntfs {
	const struct fs_source *src;
	char *why;
	size_t len;
	uint32_t sector, cluster, rec_size;
	uint64_t total_sectors, clusters, mft_lcn;
	const struct runlist *mft;	/* $MFT's $DATA: where records are */
};

static int get(struct ntfs *nt, void *buf, size_t len, uint64_t off,
	       const char *what)
{
	return fsmap_read(nt->src, buf, len, off, what, nt->why, nt->len);
}

/* ---------------------------------------------------------- boot sector */

/* A record size from its boot sector byte: v clusters, or 2^-v bytes. */
static uint64_t record_size(int8_t v, uint32_t cluster)
{
	if (v > 0)
		return (uint64_t)v * cluster;
	if (v < 0 && v >= -31)
		return 1ull << -v;
	return 0;
}

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static int read_boot(struct ntfs *nt)
{
	uint8_t b[512];
	uint64_t mirr, size;
	unsigned int spc;
	int r;

	r = get(nt, b, sizeof(b), 0, "the boot sector");
	if (r < 0)
		return r;
	if (memcmp(b + 3, "NTFS    ", 8))
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "no NTFS boot sector (OEM id at 3)");
	nt->sector = fs_le16(b + 0x0B);
	if (!pow2(nt->sector) || nt->sector < 256 || nt->sector > 4096)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "bytes per sector (0x0B) %" PRIu32
			    " is not a power of two from 256 to 4096",
			    nt->sector);
	spc = b[0x0D];
	if (spc >= 0xF4)
		spc = 1u << (256 - spc);
	if (!pow2(spc) || (uint64_t)spc * nt->sector > MAX_CLUSTER)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "sectors per cluster (0x0D) byte "
			    "0x%02x gives no cluster size up to 2 MiB",
			    b[0x0D]);
	nt->cluster = spc * nt->sector;
	nt->total_sectors = fs_le64(b + 0x28);
	if (nt->total_sectors == 0 ||
	    nt->total_sectors > nt->src->size / nt->sector)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "total sectors (0x28) %" PRIu64
			    " of %" PRIu32 " bytes: not within the device's %"
			    PRIu64 " bytes", nt->total_sectors, nt->sector,
			    nt->src->size);
	nt->clusters = nt->total_sectors / spc;
	if (nt->clusters == 0)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "total sectors (0x28) %" PRIu64
			    " make no whole cluster", nt->total_sectors);
	nt->mft_lcn = fs_le64(b + 0x30);
	if (nt->mft_lcn == 0 || nt->mft_lcn >= nt->clusters)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "$MFT LCN (0x30) %" PRIu64 " is not "
			    "within the volume's %" PRIu64 " clusters",
			    nt->mft_lcn, nt->clusters);
	mirr = fs_le64(b + 0x38);
	if (mirr == 0 || mirr >= nt->clusters)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "$MFTMirr LCN (0x38) %" PRIu64 " is "
			    "not within the volume's %" PRIu64 " clusters",
			    mirr, nt->clusters);
	size = record_size((int8_t)b[0x40], nt->cluster);
	if (!pow2(size) || size < STRIDE || size > MAX_RECORD)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "clusters per MFT record (0x40) "
			    "byte 0x%02x gives no record size from 512 bytes "
			    "to 64 KiB", b[0x40]);
	nt->rec_size = (uint32_t)size;
	size = record_size((int8_t)b[0x44], nt->cluster);
	if (!pow2(size) || size < STRIDE || size > MAX_CLUSTER)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "clusters per index record (0x44) "
			    "byte 0x%02x gives no record size from 512 bytes "
			    "to 2 MiB", b[0x44]);
	return 0;
}

/* ------------------------------------------------------------- runlists */

static int add_run(struct ntfs *nt, struct runlist *rl, uint64_t vcn,
		   uint64_t lcn, uint64_t len)
{
	if (rl->num == rl->cap) {
		size_t cap = rl->cap ? 2 * rl->cap : 16;
		struct run *r = realloc(rl->r, cap * sizeof(*r));

		if (!r)
			return fsmap_fail(nt->why, nt->len, -ENOMEM, "out of memory for a runlist");
		rl->r = r;
		rl->cap = cap;
	}
	rl->r[rl->num++] = (struct run){ vcn, lcn, len };
	return 0;
}

/* Decode the mapping pairs p[0, avail) of a piece starting at VCN vcn and
 * ending before VCN end, appending its runs to rl. */
static int decode_runs(struct ntfs *nt, const uint8_t *p, size_t avail,
		       uint64_t vcn, uint64_t end, struct runlist *rl,
		       const char *what)
{
	int64_t lcn = 0;
	size_t i = 0;
	int r;

	while (i < avail && p[i]) {
		unsigned int lb = p[i] & 0x0F, ob = p[i] >> 4, k;
		uint64_t len = 0, delta = 0;

		if (lb == 0 || lb > 8 || ob > 8 || avail - i - 1 < lb + ob)
			return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: bad mapping pair header "
				    "0x%02x", what, p[i]);
		for (k = 0; k < lb; k++)
			len |= (uint64_t)p[i + 1 + k] << (8 * k);
		for (k = 0; k < ob; k++)
			delta |= (uint64_t)p[i + 1 + lb + k] << (8 * k);
		if (ob && ob < 8 && (delta >> (8 * ob - 1)) & 1)
			delta |= UINT64_MAX << (8 * ob);	/* negative */
		i += 1 + lb + ob;
		if (len == 0 || len > nt->clusters || len > end - vcn)
			return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: a run of %" PRIu64
				    " clusters at VCN %" PRIu64 " does not fit "
				    "the attribute or the volume", what, len,
				    vcn);
		if (ob) {
			/* Wraps like the signed sum; checked at once. */
			lcn = (int64_t)((uint64_t)lcn + delta);
			if (lcn < 0 || (uint64_t)lcn >= nt->clusters ||
			    len > nt->clusters - (uint64_t)lcn)
				return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: a run at LCN %"
					    PRId64 " of %" PRIu64 " clusters "
					    "is not within the volume", what,
					    lcn, len);
			r = add_run(nt, rl, vcn, (uint64_t)lcn, len);
		} else {
			r = add_run(nt, rl, vcn, NO_LCN, len);
		}
		if (r < 0)
			return r;
		vcn += len;
	}
	if (vcn != end)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: the runs end at VCN %" PRIu64
			    ", not after the highest VCN %" PRIu64, what, vcn,
			    end - 1);
	return 0;
}

static int by_vcn(const void *a, const void *b)
{
	const struct run *x = a, *y = b;

	return x->vcn < y->vcn ? -1 : x->vcn > y->vcn;
}

/* Sort the pieces' runs; they must follow each other from VCN 0 and hold
 * size bytes. */
static int check_runs(struct ntfs *nt, struct runlist *rl, uint64_t size,
		      const char *what)
{
	uint64_t vcn = 0;
	size_t i;

	qsort(rl->r, rl->num, sizeof(*rl->r), by_vcn);
	for (i = 0; i < rl->num; i++) {
		if (rl->r[i].vcn != vcn)
			return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: its runs %s at VCN %"
				    PRIu64, what, rl->r[i].vcn < vcn ?
				    "overlap" : "leave a gap", vcn);
		vcn += rl->r[i].len;
	}
	if (size && (size - 1) / nt->cluster >= vcn)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: %" PRIu64 " bytes of data, %"
			    PRIu64 " clusters mapped", what, size, vcn);
	return 0;
}

static bool has_vcn(const struct runlist *rl, size_t i, uint64_t vcn)
{
	return i < rl->num && vcn >= rl->r[i].vcn &&
	       vcn - rl->r[i].vcn < rl->r[i].len;
}

/* Read len bytes at byte off of an attribute's value through its runs (a
 * sparse run reads as zeros). */
static int read_runs(struct ntfs *nt, const struct runlist *rl, void *buf,
		     size_t len, uint64_t off, const char *what)
{
	uint8_t *p = buf;
	size_t i = 0;

	while (len) {
		uint64_t vcn = off / nt->cluster, in, n;
		int r;

		/* Mostly the same run as last time, or the next. */
		if (!has_vcn(rl, i, vcn) && !has_vcn(rl, ++i, vcn))
			for (i = 0; i < rl->num && !has_vcn(rl, i, vcn); i++)
				;
		if (i == rl->num)
			return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: byte %" PRIu64
				    " is past its runs", what, off);
		in = off - rl->r[i].vcn * nt->cluster;
		n = rl->r[i].len * nt->cluster - in;
		if (n > len)
			n = len;
		if (rl->r[i].lcn == NO_LCN) {
			memset(p, 0, n);
		} else {
			r = get(nt, p, n, rl->r[i].lcn * nt->cluster + in,
				what);
			if (r < 0)
				return r;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* ---------------------------------------------------------- MFT records */

/* Read MFT record num into rec (rec_size bytes), undo its fixups and
 * check its header.  base: the record it must belong to (num for a base
 * record). */
static int read_record(struct ntfs *nt, uint64_t num, uint64_t base,
		       uint8_t *rec)
{
	char what[64];
	uint16_t usa_off, usa_count, attrs, flags, usn;
	uint32_t used, i;
	uint64_t owner;
	int r;

	snprintf(what, sizeof(what), "MFT record %" PRIu64, num);
	if (num > UINT64_MAX / nt->rec_size)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s is past any $MFT", what);
	r = read_runs(nt, nt->mft, rec, nt->rec_size, num * nt->rec_size,
		      what);
	if (r < 0)
		return r;
	if (memcmp(rec, "FILE", 4))
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: no FILE magic", what);
	usa_off = fs_le16(rec + 0x04);
	usa_count = fs_le16(rec + 0x06);
	if (usa_count != nt->rec_size / STRIDE + 1 || usa_off & 1 ||
	    usa_off < 0x28 || usa_off + 2u * usa_count > STRIDE - 2)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: bad update sequence array "
			    "(offset 0x04 %u, count 0x06 %u)", what, usa_off,
			    usa_count);
	usn = fs_le16(rec + usa_off);
	for (i = 1; i < usa_count; i++) {
		uint8_t *end = rec + i * STRIDE - 2;

		if (fs_le16(end) != usn)
			return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: sector %" PRIu32 " does "
				    "not end with the update sequence number "
				    "(a torn write?)", what, i - 1);
		memcpy(end, rec + usa_off + 2 * i, 2);
	}
	attrs = fs_le16(rec + 0x14);
	flags = fs_le16(rec + 0x16);
	used = fs_le32(rec + 0x18);
	owner = fs_le64(rec + 0x20) & 0xFFFFFFFFFFFFull;
	if (used > nt->rec_size || attrs < usa_off + 2u * usa_count ||
	    attrs & 7 || attrs + 8u > used)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: first attribute at 0x%x and "
			    "%" PRIu32 " bytes in use do not fit its %" PRIu32
			    " bytes", what, attrs, used, nt->rec_size);
	if (!(flags & 0x0001))
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s is not in use", what);
	if (num != base ? owner != base : owner != 0)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s belongs to record %" PRIu64
			    ", not %" PRIu64, what, owner, base);
	return 0;
}

/* The attribute of type type (unnamed) in rec whose lowest VCN is vcn (or
 * any, for a resident one or with any_vcn): its offset in rec and length,
 * 0; -ENOENT if there is none. */
static int find_attr(struct ntfs *nt, const uint8_t *rec, uint64_t num,
		     uint32_t type, bool any_vcn, uint64_t vcn,
		     uint32_t *at, uint32_t *alen)
{
	uint32_t used = fs_le32(rec + 0x18), off = fs_le16(rec + 0x14);

	/* Every step moves on by at least 16 bytes within used. */
	for (;;) {
		uint32_t t, len;

		if (used - off < 4)
			break;
		t = fs_le32(rec + off);
		if (t == AT_END)
			return -ENOENT;
		if (used - off < 16)
			break;
		len = fs_le32(rec + off + 4);
		if (len < 16 || len & 7 || len > used - off)
			break;
		if (t == type && rec[off + 9] == 0) {
			bool nonres = rec[off + 8] != 0;

			if (len < (nonres ? 0x40u : 0x18u))
				break;
			if (!nonres || any_vcn ||
			    fs_le64(rec + off + 0x10) == vcn) {
				*at = off;
				*alen = len;
				return 0;
			}
		}
		off += len;
	}
	return fsmap_fail(nt->why, nt->len, -EUCLEAN, "MFT record %" PRIu64 ": its attributes "
		    "run past the %" PRIu32 " bytes in use", num, used);
}

/* Append the runs of the non-resident attribute at rec + at (len bytes);
 * *size its data size when it is the first piece (lowest VCN 0). */
static int attr_runs(struct ntfs *nt, const uint8_t *rec, uint32_t at,
		     uint32_t len, struct runlist *rl, uint64_t *size,
		     const char *what)
{
	const uint8_t *a = rec + at;
	uint64_t low, high;
	uint16_t mp;

	if (!a[8])
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s is resident", what);
	low = fs_le64(a + 0x10);
	high = fs_le64(a + 0x18);
	mp = fs_le16(a + 0x20);
	if (mp < 0x40 || mp >= len)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: mapping pairs offset (0x20) "
			    "0x%x is not within its %" PRIu32 " bytes", what,
			    mp, len);
	/* high + 1 == low: a piece with no clusters. */
	if (high + 1 < low)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: VCNs %" PRIu64 " to %" PRIu64,
			    what, low, high);
	if (low == 0)
		*size = fs_le64(a + 0x30);
	return decode_runs(nt, a + mp, len - mp, low, high + 1, rl, what);
}

/* The value of a resident attribute: 0 with *val, *vlen set. */
static int resident_value(struct ntfs *nt, const uint8_t *rec, uint32_t at,
			  uint32_t len, const uint8_t **val, uint32_t *vlen,
			  const char *what)
{
	uint32_t n = fs_le32(rec + at + 0x10);
	uint16_t off = fs_le16(rec + at + 0x14);

	if (off > len || n > len - off)
		return fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: value (offset 0x14 %u, length "
			    "0x10 %" PRIu32 ") runs past its %" PRIu32 " bytes",
			    what, off, n, len);
	*val = rec + at + off;
	*vlen = n;
	return 0;
}

/* The runs of the unnamed attribute type of base record num, following
 * its $ATTRIBUTE_LIST if it has one, and its data size.  For $MFT's own
 * $DATA, nt->mft is pointed at the runs as they are found, so that the
 * list's later records are read through the earlier pieces. */
static int file_runs(struct ntfs *nt, uint64_t num, uint32_t type,
		     struct runlist *rl, uint64_t *size, const char *what)
{
	uint8_t *rec = malloc(nt->rec_size), *ext = malloc(nt->rec_size);
	uint8_t *list = NULL;
	const uint8_t *lv;
	uint32_t at, alen, llen, off;
	uint64_t lsize = UINT64_MAX;
	struct runlist lrl = { 0 };
	bool is_mft = num == REC_MFT && type == AT_DATA;
	int r;

	*size = UINT64_MAX;
	if (!rec || !ext) {
		r = fsmap_fail(nt->why, nt->len, -ENOMEM, "out of memory for MFT records");
		goto out;
	}
	r = read_record(nt, num, num, rec);
	if (r < 0)
		goto out;
	r = find_attr(nt, rec, num, AT_ATTRIBUTE_LIST, true, 0, &at, &alen);
	if (r == -ENOENT) {
		/* All in the base record, in one piece. */
		r = find_attr(nt, rec, num, type, false, 0, &at, &alen);
		if (r == -ENOENT)
			r = fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: no such attribute in MFT "
				 "record %" PRIu64, what, num);
		if (r == 0)
			r = attr_runs(nt, rec, at, alen, rl, size, what);
		goto done;
	}
	if (r < 0)
		goto out;

	/* The attribute list: resident, or in runs of its own. */
	if (!rec[at + 8]) {
		r = resident_value(nt, rec, at, alen, &lv, &llen,
				   "the attribute list");
		if (r < 0)
			goto out;
	} else {
		r = attr_runs(nt, rec, at, alen, &lrl, &lsize,
			      "the attribute list");
		if (r == 0)
			r = check_runs(nt, &lrl, lsize, "the attribute list");
		if (r < 0)
			goto out;
		if (lsize > MAX_ATTR_LIST) {
			r = fsmap_fail(nt->why, nt->len, -ENOTSUP, "%s: an attribute list of %"
				 PRIu64 " bytes", what, lsize);
			goto out;
		}
		llen = (uint32_t)lsize;
		list = malloc(llen ? llen : 1);
		if (!list) {
			r = fsmap_fail(nt->why, nt->len, -ENOMEM, "out of memory for an attribute "
				 "list");
			goto out;
		}
		r = read_runs(nt, &lrl, list, llen, 0, "the attribute list");
		if (r < 0)
			goto out;
		lv = list;
	}
	/* Entries are at least 0x1A bytes: the walk ends. */
	for (off = 0; llen - off >= 0x1A; ) {
		const uint8_t *e = lv + off;
		uint16_t elen = fs_le16(e + 4);
		uint64_t low = fs_le64(e + 8), ref = fs_le64(e + 0x10) & 0xFFFFFFFFFFFFull;
		const uint8_t *in = rec;

		if (elen < 0x1A || elen > llen - off) {
			r = fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: an attribute list entry "
				 "of %u bytes at %" PRIu32, what, elen, off);
			goto out;
		}
		off += elen;
		if (fs_le32(e) != type || e[6] != 0)
			continue;
		if (ref != num) {
			r = read_record(nt, ref, num, ext);
			if (r < 0)
				goto out;
			in = ext;
		}
		r = find_attr(nt, in, ref, type, false, low, &at, &alen);
		if (r == -ENOENT)
			r = fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: no piece from VCN %" PRIu64
				 " in MFT record %" PRIu64 " as its attribute "
				 "list says", what, low, ref);
		if (r == 0)
			r = attr_runs(nt, in, at, alen, rl, size, what);
		if (r < 0)
			goto out;
		if (is_mft)
			nt->mft = rl;
	}
done:
	if (r == 0 && *size == UINT64_MAX)
		r = fsmap_fail(nt->why, nt->len, -EUCLEAN, "%s: no piece from VCN 0", what);
	if (r == 0)
		r = check_runs(nt, rl, *size, what);
out:
	free(lrl.r);
	free(list);
	free(ext);
	free(rec);
	return r;
}

/* ------------------------------------------------------------- the map */

/* $Volume's flags: whether the volume is marked dirty. */
static int check_volume(struct ntfs *nt, struct fs_map *m)
{
	uint8_t *rec = malloc(nt->rec_size);
	const uint8_t *val;
	uint32_t at, alen, vlen;
	int r;

	if (!rec)
		return fsmap_fail(nt->why, nt->len, -ENOMEM, "out of memory for an MFT record");
	r = read_record(nt, REC_VOLUME, REC_VOLUME, rec);
	if (r == 0) {
		r = find_attr(nt, rec, REC_VOLUME, AT_VOLUME_INFORMATION,
			      true, 0, &at, &alen);
		if (r == -ENOENT)
			r = fsmap_fail(nt->why, nt->len, -EUCLEAN, "$Volume (MFT record 3) has no "
				 "$VOLUME_INFORMATION");
	}
	if (r == 0 && rec[at + 8])
		r = fsmap_fail(nt->why, nt->len, -EUCLEAN, "$Volume's $VOLUME_INFORMATION is not "
			 "resident");
	if (r == 0)
		r = resident_value(nt, rec, at, alen, &val, &vlen,
				   "$VOLUME_INFORMATION");
	if (r == 0 && vlen < 0x0C)
		r = fsmap_fail(nt->why, nt->len, -EUCLEAN, "$VOLUME_INFORMATION of %" PRIu32
			 " bytes has no flags", vlen);
	if (r == 0 && fs_le16(val + 0x0A) & VOLUME_IS_DIRTY)
		snprintf(m->dirty, sizeof(m->dirty), "the volume is marked "
			 "dirty (run chkdsk or ntfsfix)");
	free(rec);
	return r;
}

/* Add the clusters $Bitmap marks used, a range per run of set bits. */
static int map_bitmap(struct ntfs *nt, struct fs_map *m)
{
	struct runlist rl = { 0 };
	uint64_t size, need = (nt->clusters + 7) / 8, pos, start = 0;
	bool in = false;
	uint8_t *buf = NULL;
	int r;

	r = file_runs(nt, REC_BITMAP, AT_DATA, &rl, &size,
		      "$Bitmap's $DATA");
	if (r < 0)
		goto out;
	if (size < need) {
		r = fsmap_fail(nt->why, nt->len, -EUCLEAN, "$Bitmap has %" PRIu64 " bytes for %"
			 PRIu64 " clusters", size, nt->clusters);
		goto out;
	}
	buf = malloc(CHUNK);
	if (!buf) {
		r = fsmap_fail(nt->why, nt->len, -ENOMEM, "out of memory for the $Bitmap");
		goto out;
	}
	for (pos = 0; pos < need; pos += CHUNK) {
		size_t n = need - pos < CHUNK ? (size_t)(need - pos) : CHUNK, i;

		r = read_runs(nt, &rl, buf, n, pos, "$Bitmap");
		if (r < 0)
			goto out;
		for (i = 0; i < n; i++) {
			uint64_t lcn = (pos + i) * 8;
			unsigned int bit;

			if (buf[i] == (in ? 0xFF : 0x00))
				continue;	/* no change in this byte */
			for (bit = 0; bit < 8 && lcn + bit < nt->clusters;
			     bit++) {
				bool used = buf[i] >> bit & 1;

				if (used == in)
					continue;
				if (used) {
					start = lcn + bit;
				} else {
					r = fsmap_add(m, start * nt->cluster,
						      (lcn + bit - start) *
						      nt->cluster);
					if (r < 0)
						goto nomem;
				}
				in = used;
			}
		}
	}
	if (in && fsmap_add(m, start * nt->cluster,
			    (nt->clusters - start) * nt->cluster) < 0)
		goto nomem;
	r = 0;
	goto out;
nomem:
	r = fsmap_fail(nt->why, nt->len, -ENOMEM, "out of memory for the used ranges");
out:
	free(buf);
	free(rl.r);
	return r;
}

int fs_ntfs_map(const struct fs_source *src, struct fs_map *m, char *why,
		size_t len)
{
	struct ntfs nt = { .src = src, .why = why, .len = len };
	struct runlist boot = { 0 }, mft = { 0 };
	uint64_t mft_size;
	int r;

	r = read_boot(&nt);
	if (r < 0)
		return r;
	m->block_size = nt.cluster;
	m->fs_size = (nt.total_sectors + 1) * nt.sector;

	/* Record 0 is at the $MFT LCN: enough runs to read it and, through
	 * its $DATA, the rest. */
	r = add_run(&nt, &boot, 0, nt.mft_lcn,
		    (nt.rec_size + nt.cluster - 1) / nt.cluster);
	if (r < 0)
		goto out;
	if (boot.r[0].len > nt.clusters - nt.mft_lcn) {
		r = fsmap_fail(nt.why, nt.len, -EUCLEAN, "$MFT LCN (0x30) %" PRIu64 ": record 0 "
			 "runs past the volume's end", nt.mft_lcn);
		goto out;
	}
	nt.mft = &boot;
	r = file_runs(&nt, REC_MFT, AT_DATA, &mft, &mft_size,
		      "$MFT's $DATA");
	if (r < 0)
		goto out;
	nt.mft = &mft;
	if (mft_size / nt.rec_size <= REC_BITMAP) {
		r = fsmap_fail(nt.why, nt.len, -EUCLEAN, "$MFT of %" PRIu64 " bytes lacks the "
			 "system files", mft_size);
		goto out;
	}
	r = check_volume(&nt, m);
	if (r < 0)
		goto out;
	r = map_bitmap(&nt, m);
	if (r < 0)
		goto out;
	/* The boot sector, and its backup past the last cluster. */
	if (fsmap_add(m, 0, nt.sector) < 0 ||
	    fsmap_add(m, nt.total_sectors * nt.sector, nt.sector) < 0)
		r = fsmap_fail(nt.why, nt.len, -ENOMEM, "out of memory for the used ranges");
out:
	free(mft.r);
	free(boot.r);
	return r;
}
