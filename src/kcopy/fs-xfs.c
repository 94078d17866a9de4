/* fs-xfs.c - the blocks an XFS file system uses, from its free-space
 * B+trees, and whether its log is clean (fsmap.h).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Used is the complement of free: every block of an allocation group (AG)
 * that no record of its by-block-number free-space tree (bnobt) covers.
 * That counts as used the AG headers (superblock, AGF, AGI and AGFL in
 * the first sectors), every B+tree and inode block, the internal log and
 * the blocks on the AG free list (the AGFL: a reserve for tree splits,
 * not in the bnobt; xfs_copy copies them too), so a copy of those blocks
 * is the whole file system.  No inode is read.
 *
 * On-disk format (big-endian, offsets in bytes; "v5" is a superblock
 * version 5 file system, with CRCs, "v4" the older one without):
 *
 * Superblock, at byte 0 (one sector; the first 264 bytes read here):
 *     0 u32 magic "XFSB"	  4 u32 blocksize (bytes)
 *     8 u64 dblocks (data blocks)	 16 u64 rblocks (realtime blocks)
 *    32 u8[16] uuid		 48 u64 logstart (fsblock; 0: external)
 *    84 u32 agblocks		 88 u32 agcount
 *    96 u32 logblocks		100 u16 versionnum (low 4 bits: 4 or 5)
 *   102 u16 sectsize		120 u8 blocklog, 121 sectlog, 124 agblklog
 *   126 u8 inprogress (mkfs did not finish)
 *   216 u32 features_incompat (v5)	224 u32 crc (v5, little-endian)
 *   248 u8[16] meta_uuid (v5 with incompat META_UUID, 0x4: the uuid
 *       stamped in metadata blocks instead of uuid)
 *   An "fsblock" number is (agno << agblklog) | agbno; AG agno starts at
 *   block agno * agblocks; the last AG holds dblocks - agno * agblocks.
 *
 * AGF, the AG's free-space header, in the AG's second sector:
 *     0 u32 magic "XAGF"	  4 u32 versionnum (1)
 *     8 u32 seqno (the AG's number)	 12 u32 length (blocks in the AG)
 *    16 u32 bnobt root (agbno)	 28 u32 bnobt levels (1: the root is a leaf)
 *    40 u32 flfirst, 44 fllast, 48 flcount (the AGFL's list)
 *    52 u32 freeblks (blocks in the bnobt's records)
 *    64 u8[16] uuid (v5)		216 u32 crc (v5, little-endian)
 *
 * Free-space B+tree blocks (one file-system block each), a short header:
 *     0 u32 magic: "ABTB" v4, "AB3B" v5	  4 u16 level (0: a leaf)
 *     6 u16 numrecs		  8 u32 leftsib, 12 rightsib
 *   v5 only: 16 u64 blkno (its own 512-byte sector number), 24 u64 lsn,
 *     32 u8[16] uuid, 48 u32 owner (the AG's number), 52 u32 crc (little-
 *     endian): the header is 56 bytes in v5, 16 in v4.
 *   A leaf holds numrecs records {u32 startblock, u32 blockcount} (free
 *   extents, AG-relative, ascending, not touching); a node holds room for
 *   m = (blocksize - header) / 12 keys of 8 bytes, then the pointers
 *   (u32 agbno of a child) from header + 8 m on.
 *
 * CRCs (v5): CRC-32C of the whole structure (the sector for the
 * superblock and the AGF, the block for a tree block) with the CRC field
 * taken as zero, stored little-endian.
 *
 * The log, sb_logblocks blocks from fsblock sb_logstart, is written in a
 * circle in 512-byte basic blocks (BBs).  Each write is a log record: a
 * header BB (more if the record is big, below), then BTOBB(h_len) BBs of
 * operations.  The first word of every BB written is replaced by the
 * cycle number of the pass over the log that wrote it (the original words
 * are kept in the header): a BB holds its cycle in its first word, or, in
 * a record header whose first word is the magic, at offset 4.  The cycle
 * grows by one each time writing wraps to BB 0.  Record header:
 *     0 u32 magic 0xFEEDBABE	  4 u32 h_cycle
 *     8 u32 h_version (1, or 2 with bit 0x2)	 12 u32 h_len (bytes of ops)
 *    40 u32 h_num_logops	304 u8[16] h_fs_uuid (the superblock's uuid)
 *   320 u32 h_size (v2: the in-core log buffer's size; over 32 KiB the
 *       header takes h_size / 32 KiB BBs, rounded up)
 * Operation header, at the start of the first BB after the header BBs:
 *     0 u32 tid (overwritten by the cycle)	  4 u32 len
 *     8 u8 clientid (0xAA: the log itself)	  9 u8 flags (0x20: unmount)
 * So the BBs from 0 up to the head (the next BB to write) carry cycle c,
 * those from the head to the end c - 1 (or 0 in the log's first pass),
 * and a log was closed by a clean unmount when the record just before
 * its head (which may wrap past the end to BB 0) is one operation, an
 * unmount record: then nothing is left to replay (xfs_log_recover.c:
 * xlog_find_tail, xlog_check_unmount_rec).  mkfs writes such a record;
 * a log all zeros is empty, nothing to replay either.  The head is
 * found by a binary search on the cycles, and a window of 1 MiB either
 * side of it is read whole, so that a head the cycles do not place
 * cleanly there (writes still in flight at a crash) reads as dirty too.
 *
 * A realtime section (rblocks != 0) is refused: its allocation is in a
 * bitmap inode this reader does not read.  An external log (logstart 0)
 * lives on another device: nothing of it is here, and whether it needs
 * recovery cannot be told, which dirty says.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsmap.h"

#define SB_MAGIC	0x58465342u	/* "XFSB" */
#define AGF_MAGIC	0x58414746u	/* "XAGF" */
#define ABTB_MAGIC	0x41425442u	/* "ABTB": bnobt block, v4 */
#define AB3B_MAGIC	0x41423342u	/* "AB3B": bnobt block, v5 */
#define LOG_MAGIC	0xFEEDBABEu
#define BB		512u		/* a basic block */
#define MAX_LEVELS	9		/* XFS_BTREE_MAXLEVELS */
/* Incompatible features known (v5): FTYPE, SPINODES, META_UUID, BIGTIME,
 * NEEDSREPAIR, NREXT64, EXCHRANGE, PARENT, METADIR, ZONED, ZONE_GAPS.
 * None changes the AGF or the bnobt; an unknown one might. */
#define INCOMPAT_KNOWN		0x7ffu
#define INCOMPAT_META_UUID	0x4u
#define INCOMPAT_NEEDSREPAIR	0x10u
#define LOG_CHUNK	(1u << 20)
#define LOG_MAX_RECORD	(256u * 1024)	/* XLOG_MAX_RECORD_BSIZE */
#define LOG_CYCLE_SIZE	(32u * 1024)	/* XLOG_HEADER_CYCLE_SIZE */
#define LOG_UNMOUNT	0x20u		/* XLOG_UNMOUNT_TRANS */
#define LOG_CLIENT	0xAAu		/* XFS_LOG */

struct xfs {
	const struct fs_source *src;
	struct fs_map *m;
	char *why;
	size_t len;
	bool v5;
	uint32_t bs, sectsize, agblocks, agcount, agblklog, logblocks;
	uint64_t dblocks, logstart;
	uint8_t uuid[16];		/* stamped in v5 metadata */
	uint8_t fs_uuid[16];		/* in log record headers */
	uint32_t log_agno, log_agbno;	/* where an internal log lies */
	uint8_t *buf;			/* MAX_LEVELS blocks, for the walk */
};

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* CRC-32C (Castagnoli, reflected, initial and final value ~0) of len
 * bytes at p, the 4 bytes at skip taken as zero; four bits at a time. */
static uint32_t crc32c(const uint8_t *p, size_t len, size_t skip)
{
	static const uint32_t nibble[16] = {
		0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1,
		0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
		0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9,
		0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
	};
	uint32_t crc = ~0u;
	size_t i;

	for (i = 0; i < len; i++) {
		crc ^= (i >= skip && i < skip + 4) ? 0 : p[i];
		crc = crc >> 4 ^ nibble[crc & 15];
		crc = crc >> 4 ^ nibble[crc & 15];
	}
	return ~crc;
}

static bool crc_ok(const uint8_t *p, size_t len, size_t off)
{
	return crc32c(p, len, off) == fs_le32(p + off);
}

/* A read error: its reason names what was read. */
static int read_at(struct xfs *x, void *buf, size_t len, uint64_t off,
		   const char *what)
{
	return fsmap_read(x->src, buf, len, off, what, x->why, x->len);
}

static bool pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static uint32_t ag_length(const struct xfs *x, uint32_t agno)
{
	uint64_t rest = x->dblocks - (uint64_t)agno * x->agblocks;

	return rest < x->agblocks ? (uint32_t)rest : x->agblocks;
}

/* The byte offset of block agbno of AG agno. */
static uint64_t ag_byte(const struct xfs *x, uint32_t agno, uint32_t agbno)
{
	return ((uint64_t)agno * x->agblocks + agbno) * x->bs;
}

static int read_sb(struct xfs *x)
{
	uint8_t head[BB], *sb;
	uint32_t vnum, incompat = 0, aglog, sectlog;
	int r;

	r = read_at(x, head, sizeof(head), 0, "the superblock");
	if (r < 0)
		return r;
	if (be32(head) != SB_MAGIC)
		return fsmap_fail(x->why, x->len, -EUCLEAN, "no XFS superblock (magic XFSB)");
	vnum = be16(head + 100) & 0xf;
	if (vnum != 4 && vnum != 5)
		return fsmap_fail(x->why, x->len, -ENOTSUP, "superblock version %u", vnum);
	x->v5 = vnum == 5;
	x->bs = be32(head + 4);
	x->sectsize = be16(head + 102);
	x->dblocks = be64(head + 8);
	x->logstart = be64(head + 48);
	x->agblocks = be32(head + 84);
	x->agcount = be32(head + 88);
	x->logblocks = be32(head + 96);
	x->agblklog = head[124];
	sectlog = head[121];
	memcpy(x->fs_uuid, head + 32, 16);
	if (!pow2(x->bs) || x->bs < 512 || x->bs > 65536 ||
	    head[120] > 16 || x->bs != 1u << head[120])
		return fsmap_fail(x->why, x->len, -EUCLEAN, "superblock: block size %u",
			    (unsigned)x->bs);
	if (!pow2(x->sectsize) || x->sectsize < 512 ||
	    x->sectsize > x->bs || sectlog > 15 ||
	    x->sectsize != 1u << sectlog)
		return fsmap_fail(x->why, x->len, -EUCLEAN, "superblock: sector size %u",
			    (unsigned)x->sectsize);
	/* agblklog is agblocks' log2, rounded up. */
	for (aglog = 0; aglog < 32 && (1ull << aglog) < x->agblocks; aglog++)
		;
	if (x->agblocks < 5 || x->agblklog != aglog || x->agcount == 0 ||
	    x->dblocks <= (uint64_t)(x->agcount - 1) * x->agblocks ||
	    x->dblocks > (uint64_t)x->agcount * x->agblocks)
		return fsmap_fail(x->why, x->len, -EUCLEAN, "superblock: %llu blocks do not make "
			    "%u allocation groups of %u",
			    (unsigned long long)x->dblocks,
			    (unsigned)x->agcount, (unsigned)x->agblocks);
	if (be64(head + 16))
		return fsmap_fail(x->why, x->len, -ENOTSUP, "a realtime section (%llu blocks)",
			    (unsigned long long)be64(head + 16));
	if (x->dblocks > x->src->size / x->bs)
		return fsmap_fail(x->why, x->len, -EUCLEAN, "superblock: the file system spans "
			    "%llu bytes, the source holds %llu",
			    (unsigned long long)(x->dblocks * x->bs),
			    (unsigned long long)x->src->size);
	if (x->v5) {
		sb = malloc(x->sectsize);
		if (!sb)
			return -ENOMEM;
		r = read_at(x, sb, x->sectsize, 0, "the superblock");
		if (r == 0 && !crc_ok(sb, x->sectsize, 224))
			r = fsmap_fail(x->why, x->len, -EUCLEAN, "superblock: bad checksum");
		free(sb);
		if (r < 0)
			return r;
		incompat = be32(head + 216);
		if (incompat & ~INCOMPAT_KNOWN)
			return fsmap_fail(x->why, x->len, -ENOTSUP, "unknown incompatible "
				    "features 0x%x",
				    (unsigned)(incompat & ~INCOMPAT_KNOWN));
		memcpy(x->uuid, head + (incompat & INCOMPAT_META_UUID ?
					248 : 32), 16);
	}
	x->m->block_size = x->bs;
	x->m->fs_size = x->dblocks * x->bs;
	if (head[126])
		snprintf(x->m->dirty, sizeof(x->m->dirty),
			 "mkfs did not finish");
	else if (incompat & INCOMPAT_NEEDSREPAIR)
		snprintf(x->m->dirty, sizeof(x->m->dirty),
			 "marked as needing xfs_repair");
	return 0;
}

static void set_dirty(struct xfs *x, const char *reason)
{
	if (!x->m->dirty[0])
		snprintf(x->m->dirty, sizeof(x->m->dirty), "%s", reason);
}

#define LOG_DIRTY "the log needs recovery (not cleanly unmounted)"

/* A log BB's cycle, and whether it starts a record header. */
static uint32_t bb_cycle(const uint8_t *p, bool *hdr)
{
	*hdr = be32(p) == LOG_MAGIC;
	return *hdr ? be32(p + 4) : be32(p);
}

/* Whether the record whose header is BB pos (the last before the head)
 * is an unmount record ending at the head (want: head, plus the log's
 * length when the record wraps). */
static int check_last_record(struct xfs *x, uint64_t base, uint64_t nbb,
			     uint64_t pos, uint64_t want)
{
	uint8_t h[BB];
	uint32_t version, hlen, hsize, hblks = 1;
	int r;

	r = read_at(x, h, BB, base + pos * BB, "the log");
	if (r < 0)
		return r;
	version = be32(h + 8);
	hlen = be32(h + 12);
	hsize = be32(h + 320);
	if (version < 1 || version > 3 || hlen > LOG_MAX_RECORD ||
	    ((version & 2) && hsize > LOG_MAX_RECORD) ||
	    memcmp(h + 304, x->fs_uuid, 16))
		return fsmap_fail(x->why, x->len, -EUCLEAN, "log record header at log block %llu: "
			    "version %u, %u bytes, or another file system's",
			    (unsigned long long)pos, (unsigned)version,
			    (unsigned)hlen);
	if ((version & 2) && hsize > LOG_CYCLE_SIZE)
		hblks = (hsize + LOG_CYCLE_SIZE - 1) / LOG_CYCLE_SIZE;
	if (pos + hblks + (hlen + BB - 1) / BB != want ||
	    be32(h + 40) != 1 || hlen < 12) {
		set_dirty(x, LOG_DIRTY);
		return 0;
	}
	r = read_at(x, h, BB, base + (pos + hblks) % nbb * BB, "the log");
	if (r < 0)
		return r;
	if (h[8] != LOG_CLIENT || !(h[9] & LOG_UNMOUNT))
		set_dirty(x, LOG_DIRTY);
	return 0;
}

/* The cycle of BB i of the log at base (and whether it is a header). */
static int cycle_at(struct xfs *x, uint64_t base, uint64_t i, uint32_t *cyc,
		    bool *hdr)
{
	uint8_t b[BB];
	int r = read_at(x, b, BB, base + i * BB, "the log");

	if (r == 0)
		*cyc = bb_cycle(b, hdr);
	return r;
}

/* Scan the BBs [s, e) of the log: the last record header in them into
 * *last (unchanged if none), and whether every cycle there is cyc. */
static int scan_log(struct xfs *x, uint64_t base, uint64_t s, uint64_t e,
		    uint32_t cyc, uint64_t *last, bool *regular)
{
	uint8_t *buf = malloc(LOG_CHUNK);
	uint64_t i, j, n;
	bool hdr;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (i = s; i < e && r == 0; i += n) {
		n = e - i < LOG_CHUNK / BB ? e - i : LOG_CHUNK / BB;
		r = read_at(x, buf, n * BB, base + i * BB, "the log");
		for (j = 0; j < n && r == 0; j++) {
			if (bb_cycle(buf + j * BB, &hdr) != cyc)
				*regular = false;
			if (hdr)
				*last = i + j;
		}
	}
	free(buf);
	return r;
}

/* Set dirty unless the internal log ends with an unmount record (or is
 * all zeros).  The head is found as the kernel finds it (xlog_find_head):
 * the cycles of the BBs before it are BB 0's, those from it to the end
 * one less, so a binary search reads a few BBs; then the window of
 * LOG_WINDOW BBs on either side of the head, which holds the last record
 * (at most LOG_MAX_RECORD and its headers), is read whole, and must have
 * the cycles that place the head cleanly.  A 64 MiB log costs about
 * 2 MiB of reads rather than 64. */
#define LOG_WINDOW (LOG_CHUNK / BB)
static int check_log(struct xfs *x)
{
	uint32_t agno, agbno, first, last, cyc;
	uint64_t base, nbb, lo, hi, head, hdr = UINT64_MAX, s;
	bool is_hdr, regular = true;
	int r;

	if (x->logstart == 0) {
		set_dirty(x, "the log is external (on another device): "
			  "whether it needs recovery is not known");
		return 0;
	}
	agno = (uint32_t)(x->logstart >> x->agblklog);
	agbno = (uint32_t)(x->logstart & ((1ull << x->agblklog) - 1));
	if (x->logstart >> x->agblklog >= x->agcount || agbno == 0 ||
	    x->logblocks == 0 ||
	    (uint64_t)agbno + x->logblocks > ag_length(x, agno))
		return fsmap_fail(x->why, x->len, -EUCLEAN, "superblock: a log of %u blocks at "
			    "block %llu does not fit in its allocation group",
			    (unsigned)x->logblocks,
			    (unsigned long long)x->logstart);
	x->log_agno = agno;
	x->log_agbno = agbno;
	base = ag_byte(x, agno, agbno);
	nbb = (uint64_t)x->logblocks * (x->bs / BB);
	r = cycle_at(x, base, 0, &first, &is_hdr);
	if (r == 0)
		r = cycle_at(x, base, nbb - 1, &last, &is_hdr);
	if (r < 0)
		return r;
	if (first == 0) {
		/* Nothing was ever written, or BB 0 was wiped. */
		if (last)
			set_dirty(x, "the log is damaged (its start is zeros, "
				  "not the rest)");
		return 0;
	}
	if (last == first) {
		head = nbb;	/* one pass, whole: the head is at BB 0 */
	} else if (last == first - 1) {
		/* [0, head) has first, [head, nbb) last */
		lo = 1;
		hi = nbb - 1;
		while (lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;

			r = cycle_at(x, base, mid, &cyc, &is_hdr);
			if (r < 0)
				return r;
			if (cyc == first)
				lo = mid + 1;
			else
				hi = mid;
		}
		head = lo;
	} else {
		set_dirty(x, LOG_DIRTY);
		return 0;
	}
	/* The window before the head; where the head is near the start, the
	 * log's end too (a record that wraps), one cycle less. */
	s = head > LOG_WINDOW ? head - LOG_WINDOW : 0;
	r = scan_log(x, base, s, head, first, &hdr, &regular);
	if (r == 0 && head < nbb)
		r = scan_log(x, base, head, head + LOG_WINDOW < nbb
				 ? head + LOG_WINDOW : nbb, first - 1,
			     &s, &regular);
	if (r < 0)
		return r;
	if (!regular) {
		set_dirty(x, LOG_DIRTY);
		return 0;
	}
	if (hdr != UINT64_MAX)
		return check_last_record(x, base, nbb, hdr, head);
	if (head < LOG_WINDOW && head < nbb) {
		/* the rest of the window from the log's end, but not below
		 * the head (a log shorter than the window) */
		uint64_t tail = LOG_WINDOW - head < nbb - head
				? nbb - (LOG_WINDOW - head) : head;

		r = scan_log(x, base, tail, nbb, first - 1, &hdr, &regular);
		if (r < 0)
			return r;
		if (hdr != UINT64_MAX)	/* the last record wraps */
			return check_last_record(x, base, nbb, hdr,
						 head + nbb);
	}
	set_dirty(x, "the log is damaged (no record header)");
	return 0;
}

struct walk {
	uint32_t agno, aglen;
	uint32_t headers;		/* blocks of SB, AGF, AGI, AGFL */
	uint32_t next;			/* blocks below it are mapped */
	uint64_t free, blocks;
};

/* Map the used blocks before the free ranges in the bnobt block agbno at
 * level (the root when top), and below it, in order. */
static int walk(struct xfs *x, struct walk *w, uint32_t agbno,
		unsigned level, bool top)
{
	uint8_t *b = x->buf + (size_t)level * x->bs;
	uint32_t hdr = x->v5 ? 56 : 16, numrecs, i;
	uint64_t daddr;
	char what[64];
	int r;

	snprintf(what, sizeof(what), "AG %u: free-space tree block %u",
		 (unsigned)w->agno, (unsigned)agbno);
	if (agbno == 0 || agbno >= w->aglen || ++w->blocks > w->aglen)
		return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: out of the AG or a loop", what);
	daddr = ((uint64_t)w->agno * x->agblocks + agbno) * (x->bs / BB);
	r = read_at(x, b, x->bs, ag_byte(x, w->agno, agbno), what);
	if (r < 0)
		return r;
	if (be32(b) != (x->v5 ? AB3B_MAGIC : ABTB_MAGIC) ||
	    be16(b + 4) != level)
		return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: not a free-space tree block "
			    "of level %u", what, level);
	if (x->v5 && (be64(b + 16) != daddr || memcmp(b + 32, x->uuid, 16) ||
		      be32(b + 48) != w->agno))
		return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: belongs elsewhere", what);
	if (x->v5 && !crc_ok(b, x->bs, 52))
		return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: bad checksum", what);
	numrecs = be16(b + 6);
	if (numrecs > (x->bs - hdr) / (level ? 12 : 8) ||
	    (numrecs == 0 && !(top && level == 0)))
		return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: %u records", what,
			    (unsigned)numrecs);
	for (i = 0; i < numrecs && level; i++) {
		uint32_t m = (x->bs - hdr) / 12;

		r = walk(x, w, be32(b + hdr + 8 * m + 4 * i), level - 1, false);
		if (r < 0)
			return r;
	}
	for (i = 0; i < numrecs && !level; i++) {
		uint32_t start = be32(b + hdr + 8 * i),
			 count = be32(b + hdr + 8 * i + 4);

		if (count == 0 || start < w->next || start < w->headers ||
		    (uint64_t)start + count > w->aglen)
			return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: free extent %u+%u "
				    "overlaps the AG's headers or the one "
				    "before, or leaves the AG", what,
				    (unsigned)start, (unsigned)count);
		r = fsmap_add(x->m, ag_byte(x, w->agno, w->next),
			      (uint64_t)(start - w->next) * x->bs);
		if (r < 0)
			return fsmap_fail(x->why, x->len, r, "out of memory");
		if (x->logstart && w->agno == x->log_agno &&
		    start < x->log_agbno + x->logblocks &&
		    start + count > x->log_agbno)
			return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: free extent %u+%u "
				    "overlaps the log", what, (unsigned)start,
				    (unsigned)count);
		w->next = start + count;
		w->free += count;
	}
	return 0;
}

static int map_ag(struct xfs *x, uint32_t agno, uint8_t *agf)
{
	struct walk w = { agno, ag_length(x, agno),
			  (4 * x->sectsize + x->bs - 1) / x->bs, 0, 0, 0 };
	uint32_t root, levels, agfl_size, freeblks;
	char what[32];
	int r;

	snprintf(what, sizeof(what), "AG %u: the AGF", (unsigned)agno);
	r = read_at(x, agf, x->sectsize, ag_byte(x, agno, 0) + x->sectsize,
		    what);
	if (r < 0)
		return r;
	if (be32(agf) != AGF_MAGIC || be32(agf + 4) != 1 ||
	    be32(agf + 8) != agno)
		return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: bad magic, version or number",
			    what);
	if (x->v5 && (memcmp(agf + 64, x->uuid, 16) ||
		      !crc_ok(agf, x->sectsize, 216)))
		return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: bad uuid or checksum", what);
	root = be32(agf + 16);
	levels = be32(agf + 28);
	freeblks = be32(agf + 52);
	agfl_size = (x->sectsize - (x->v5 ? 36 : 0)) / 4;
	if (be32(agf + 12) != w.aglen)
		return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: %u blocks, the superblock says "
			    "%u", what, (unsigned)be32(agf + 12),
			    (unsigned)w.aglen);
	if (levels < 1 || levels > MAX_LEVELS || freeblks > w.aglen ||
	    be32(agf + 48) > agfl_size || be32(agf + 40) >= agfl_size ||
	    be32(agf + 44) >= agfl_size)
		return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: free-space tree of %u levels, "
			    "%u free blocks, free list %u", what,
			    (unsigned)levels, (unsigned)freeblks,
			    (unsigned)be32(agf + 48));
	r = walk(x, &w, root, levels - 1, true);
	if (r < 0)
		return r;
	r = fsmap_add(x->m, ag_byte(x, agno, w.next),
		      (uint64_t)(w.aglen - w.next) * x->bs);
	if (r < 0)
		return fsmap_fail(x->why, x->len, r, "out of memory");
	/* A log to replay may hold the AGF or tree blocks that go with the
	 * others: only a clean file system must agree with itself. */
	if (w.free != freeblks && !x->m->dirty[0])
		return fsmap_fail(x->why, x->len, -EUCLEAN, "%s: %u free blocks, its tree holds "
			    "%llu", what, (unsigned)freeblks,
			    (unsigned long long)w.free);
	return 0;
}

int fs_xfs_map(const struct fs_source *src, struct fs_map *m, char *why,
	       size_t len)
{
	struct xfs x = { .src = src, .m = m, .why = why, .len = len };
	uint8_t *agf;
	uint32_t agno;
	int r;

	m->dirty[0] = '\0';
	r = read_sb(&x);
	if (r == 0)
		r = check_log(&x);
	if (r < 0)
		return r;
	x.buf = malloc((size_t)MAX_LEVELS * x.bs);
	agf = malloc(x.sectsize);
	if (!x.buf || !agf) {
		r = fsmap_fail(x.why, x.len, -ENOMEM, "out of memory");
		goto out;
	}
	for (agno = 0; agno < x.agcount && r == 0; agno++)
		r = map_ag(&x, agno, agf);
out:
	free(x.buf);
	free(agf);
	return r;
}
