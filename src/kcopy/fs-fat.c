/* fs-fat.c - what a FAT12, FAT16 or FAT32 file system uses, read from its
 * boot sector and its file allocation table (fsmap.h).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The layout relied on, after Microsoft's "FAT: General Overview of
 * On-Disk Format" (fatgen103); numbers are little-endian.
 *
 * The boot sector (sector 0; this reader reads its first 512 bytes):
 *     3  8 bytes  OEM name ("EXFAT   " on exFAT, which fs-exfat.c reads)
 *    11  u16  BPB_BytsPerSec   512, 1024, 2048 or 4096
 *    13  u8   BPB_SecPerClus   a power of 2, 1 to 128
 *    14  u16  BPB_RsvdSecCnt   reserved sectors (the boot sector's own
 *                              among them), not 0
 *    16  u8   BPB_NumFATs      copies of the FAT, not 0
 *    17  u16  BPB_RootEntCnt   32-byte entries of FAT12/16's fixed root
 *                              directory; 0 on FAT32
 *    19  u16  BPB_TotSec16     sectors in the volume, or 0: BPB_TotSec32
 *    21  u8   BPB_Media        0xf0, or 0xf8 to 0xff
 *    22  u16  BPB_FATSz16      sectors per FAT, or 0: the FAT32 layout
 *                              below, with BPB_FATSz32
 *    32  u32  BPB_TotSec32
 *  FAT12 and FAT16 go on with
 *    37  u8   BS_Reserved1     the state byte Linux and Windows keep:
 *                              bit 0 set while the volume is in use
 *    38  u8   BS_BootSig       0x29 (or 0x28): the fields from 36 on are
 *                              there, not boot code
 *  FAT32 with
 *    36  u32  BPB_FATSz32      sectors per FAT
 *    40  u16  BPB_ExtFlags     bit 7 set: only the FAT numbered by bits
 *                              0-3 is kept, the others are stale
 *    42  u16  BPB_FSVer        0 (0.0), the only version there is
 *    44  u32  BPB_RootClus     the root directory's first cluster
 *    48  u16  BPB_FSInfo       the FSInfo sector (0 or 0xffff: none)
 *    50  u16  BPB_BkBootSec    the backup boot sector (0 or 0xffff: none)
 *    65  u8   BS_Reserved1     the state byte, as at 37 above
 *    66  u8   BS_BootSig       as at 38 above
 *  and all end with 0x55 0xaa at byte 510.
 *
 * The volume, in sectors of BPB_BytsPerSec bytes:
 *    [0, RsvdSecCnt)           the reserved region: boot sector, FAT32's
 *                              FSInfo and backup boot sectors, boot code
 *    then NumFATs * FATSz      the FATs, one after the other
 *    then RootDirSectors       FAT12/16's root directory: RootEntCnt * 32
 *                              bytes rounded up to whole sectors (0 on
 *                              FAT32, whose root directory is a chain of
 *                              clusters from BPB_RootClus)
 *    FirstDataSector on        the clusters: cluster N, for 2 <= N <
 *                              CountofClusters + 2, at FirstDataSector +
 *                              (N - 2) * SecPerClus; the sectors after the
 *                              last whole cluster belong to none
 *  where TotSec is TotSec16 or else TotSec32, and CountofClusters =
 *  (TotSec - FirstDataSector) / SecPerClus.  The type is that count's and
 *  nothing else's: below 4085 FAT12, below 65525 FAT16, else FAT32 (which
 *  numbers at most 0x0ffffff5 clusters: 0x0ffffff7 means bad).
 *
 * A FAT: entry N says what cluster N is.  0 is free; anything else is in
 * use: the next cluster of a chain, an end of chain (0xff8 and up,
 * 0xfff8, 0x0ffffff8), or bad (0xff7, 0xfff7, 0x0ffffff7).  FAT12 entries
 * are 12 bits, entry N in the u16 at byte N + N/2, its high 12 bits when
 * N is odd and its low 12 when even; FAT16's are u16, FAT32's u32 of which
 * the low 28 bits count.  Entries 0 and 1 are no clusters': entry 1's bit
 * 15 on FAT16 and bit 27 on FAT32 is cleared while the volume is mounted
 * (not cleanly unmounted), and bit 14, bit 26 on FAT32, when a disk error
 * was met; FAT12 has no such bits.  Entries after CountofClusters + 1 up
 * to the end of the FAT's last sector mean nothing.
 *
 * Used, then: everything up to FirstDataSector (the reserved region whole,
 * every FAT copy, FAT12/16's root directory), and each cluster whose entry
 * in the FAT is not 0, bad ones too: a bad cluster is read like any other
 * (a read error there is the copy's to handle, and copying what it holds
 * harms nothing), and keeps the destination's FAT true of its clusters.
 * The FAT read is the first, or the one BPB_ExtFlags names when FAT32's
 * mirroring is off; it is read in pieces of a MiB at the most, and
 * consecutive used clusters go to fsmap_add as one range.
 *
 * Not clean, in m->dirty: the state byte's bit 0 set (read only where
 * BS_BootSig says the byte is a field, not boot code), FAT[1]'s clean bit
 * clear, its error bit clear; each that holds is named.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsmap.h"

/* The most of the FAT read at once: a multiple of 4 bytes, so that FAT16
 * and FAT32 entries never straddle two pieces, and more than a FAT12 FAT
 * can need (4086 entries of 1.5 bytes), so that FAT12's are read whole. */
#define FAT_PIECE (1u << 20)

#define FAT12_MAX_CLUSTERS 4084u	/* clusters: fewer than 4085 */
#define FAT16_MAX_CLUSTERS 65524u
#define FAT32_MAX_CLUSTERS 0x0ffffff5u	/* cluster 0x0ffffff7 would be "bad" */

/* What the boot sector says, checked. */
struct fat_geom {
	unsigned int bits;		/* 12, 16 or 32 */
	uint32_t bps;			/* bytes per sector */
	uint32_t spc;			/* sectors per cluster */
	uint32_t rsvd;			/* reserved sectors */
	uint32_t nfats;
	uint32_t fat_secs;		/* sectors per FAT */
	uint32_t root_clus;		/* FAT32's root directory; 0 on FAT12/16 */
	uint32_t active;		/* the FAT read: 0, or ExtFlags' */
	uint64_t tot_secs;
	uint64_t first_data;		/* FirstDataSector */
	uint64_t clusters;		/* CountofClusters */
	int state;			/* the state byte, -1 if there is none */
	unsigned int state_off;		/* its offset in the boot sector */
};

static bool power_of_2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* Read the BPB of the 512 bytes b into g, checking it against itself and
 * the source's size bytes.  0, -ENOTSUP or -EUCLEAN with why. */
static int parse_bpb(const uint8_t *b, uint64_t size, struct fat_geom *g,
		     char *why, size_t len)
{
	uint32_t root_ents = fs_le16(b + 17), tot16 = fs_le16(b + 19);
	uint32_t fat16_secs = fs_le16(b + 22), media = b[21];
	uint64_t root_secs, data_secs;
	bool fat32_layout;

	if (memcmp(b + 3, "EXFAT   ", 8) == 0) {
		snprintf(why, len, "exFAT, not FAT12, FAT16 or FAT32");
		return -ENOTSUP;
	}
	if (b[510] != 0x55 || b[511] != 0xaa) {
		snprintf(why, len, "no boot sector signature 0x55 0xaa at byte 510");
		return -EUCLEAN;
	}
	g->bps = fs_le16(b + 11);
	g->spc = b[13];
	g->rsvd = fs_le16(b + 14);
	g->nfats = b[16];
	if (!power_of_2(g->bps) || g->bps < 512 || g->bps > 4096) {
		snprintf(why, len, "BPB_BytsPerSec %u (512, 1024, 2048 or 4096)",
			 g->bps);
		return -EUCLEAN;
	}
	if (!power_of_2(g->spc)) {
		snprintf(why, len, "BPB_SecPerClus %u (a power of 2, 1 to 128)",
			 g->spc);
		return -EUCLEAN;
	}
	if (g->rsvd == 0) {
		snprintf(why, len, "BPB_RsvdSecCnt 0 (the boot sector is one)");
		return -EUCLEAN;
	}
	if (g->nfats == 0) {
		snprintf(why, len, "BPB_NumFATs 0");
		return -EUCLEAN;
	}
	if (media != 0xf0 && media < 0xf8) {
		snprintf(why, len, "BPB_Media 0x%02x (0xf0, or 0xf8 to 0xff)", media);
		return -EUCLEAN;
	}
	g->tot_secs = tot16 ? tot16 : fs_le32(b + 32);
	if (g->tot_secs == 0) {
		snprintf(why, len, "BPB_TotSec16 and BPB_TotSec32 both 0");
		return -EUCLEAN;
	}
	if (g->tot_secs > size / g->bps) {
		snprintf(why, len,
			 "BPB_TotSec%s %llu sectors of %u bytes: past the end of "
			 "the %llu bytes there are", tot16 ? "16" : "32",
			 (unsigned long long)g->tot_secs, g->bps,
			 (unsigned long long)size);
		return -EUCLEAN;
	}
	fat32_layout = fat16_secs == 0;
	g->fat_secs = fat32_layout ? fs_le32(b + 36) : fat16_secs;
	if (g->fat_secs == 0) {
		snprintf(why, len, "BPB_FATSz16 and BPB_FATSz32 both 0");
		return -EUCLEAN;
	}
	root_secs = ((uint64_t)root_ents * 32 + g->bps - 1) / g->bps;
	g->first_data = g->rsvd + (uint64_t)g->nfats * g->fat_secs + root_secs;
	data_secs = g->first_data < g->tot_secs ? g->tot_secs - g->first_data : 0;
	g->clusters = data_secs / g->spc;
	if (g->clusters == 0) {
		snprintf(why, len,
			 "no clusters: the reserved sectors, FATs and root "
			 "directory end at sector %llu, BPB_TotSec is %llu",
			 (unsigned long long)g->first_data,
			 (unsigned long long)g->tot_secs);
		return -EUCLEAN;
	}
	g->bits = g->clusters <= FAT12_MAX_CLUSTERS ? 12 :
		  g->clusters <= FAT16_MAX_CLUSTERS ? 16 : 32;
	if (fat32_layout != (g->bits == 32)) {
		snprintf(why, len,
			 "BPB_FATSz16 %u with %llu clusters, which make a FAT%u",
			 fat16_secs, (unsigned long long)g->clusters, g->bits);
		return -EUCLEAN;
	}
	if ((root_ents == 0) != (g->bits == 32)) {
		snprintf(why, len, "BPB_RootEntCnt %u on FAT%u", root_ents,
			 g->bits);
		return -EUCLEAN;
	}
	/* The FAT must have an entry for every cluster. */
	if ((uint64_t)g->fat_secs * g->bps <
	    ((g->clusters + 2) * g->bits + 7) / 8) {
		snprintf(why, len,
			 "BPB_FATSz%s %u sectors: too small for %llu clusters",
			 fat32_layout ? "32" : "16", g->fat_secs,
			 (unsigned long long)g->clusters);
		return -EUCLEAN;
	}
	g->root_clus = 0;
	g->active = 0;
	g->state_off = g->bits == 32 ? 0x41 : 0x25;
	g->state = b[g->state_off + 1] == 0x29 || b[g->state_off + 1] == 0x28 ?
		   b[g->state_off] : -1;
	if (g->bits != 32)
		return 0;

	if (fs_le16(b + 42) != 0) {
		snprintf(why, len, "BPB_FSVer %u.%u (only 0.0 is known)",
			 b[43], b[42]);
		return -ENOTSUP;
	}
	if (g->clusters > FAT32_MAX_CLUSTERS) {
		snprintf(why, len, "%llu clusters: more than FAT32 can number",
			 (unsigned long long)g->clusters);
		return -EUCLEAN;
	}
	g->root_clus = fs_le32(b + 44);
	if (g->root_clus < 2 || g->root_clus > g->clusters + 1) {
		snprintf(why, len, "BPB_RootClus %u (clusters are 2 to %llu)",
			 g->root_clus, (unsigned long long)g->clusters + 1);
		return -EUCLEAN;
	}
	if (fs_le16(b + 48) != 0 && fs_le16(b + 48) != 0xffff &&
	    fs_le16(b + 48) >= g->rsvd) {
		snprintf(why, len, "BPB_FSInfo %u past the %u reserved sectors",
			 fs_le16(b + 48), g->rsvd);
		return -EUCLEAN;
	}
	if (fs_le16(b + 50) != 0 && fs_le16(b + 50) != 0xffff &&
	    fs_le16(b + 50) >= g->rsvd) {
		snprintf(why, len, "BPB_BkBootSec %u past the %u reserved sectors",
			 fs_le16(b + 50), g->rsvd);
		return -EUCLEAN;
	}
	if (fs_le16(b + 40) & 0x80) {
		g->active = fs_le16(b + 40) & 0x0f;
		if (g->active >= g->nfats) {
			snprintf(why, len,
				 "BPB_ExtFlags: the active FAT is number %u of %u",
				 g->active, g->nfats);
			return -EUCLEAN;
		}
	}
	return 0;
}

/* Entry i of the FAT whose piece at p starts with entry 0 or, on FAT16
 * and FAT32, with some entry (then i counts from that one). */
static uint32_t fat_entry(const uint8_t *p, unsigned int bits, size_t i)
{
	uint16_t v;

	switch (bits) {
	case 12:
		v = fs_le16(p + i + i / 2);
		return i & 1 ? (uint32_t)(v >> 4) : (uint32_t)(v & 0xfff);
	case 16:
		return fs_le16(p + 2 * i);
	default:
		return fs_le32(p + 4 * i) & 0x0fffffff;
	}
}

/* Append reason to m->dirty, after "; " if there is one already. */
static void add_dirty(struct fs_map *m, const char *reason)
{
	size_t n = strlen(m->dirty);

	snprintf(m->dirty + n, sizeof(m->dirty) - n, "%s%s", n ? "; " : "",
		 reason);
}

/* What FAT[1] says of the volume's state, FAT16 and FAT32 only. */
static void fat1_state(const struct fat_geom *g, uint32_t fat1,
		       struct fs_map *m)
{
	uint32_t clean = g->bits == 32 ? 0x08000000 : 0x8000;
	uint32_t no_errors = g->bits == 32 ? 0x04000000 : 0x4000;

	if (g->bits == 12)
		return;
	if (!(fat1 & clean))
		add_dirty(m, g->bits == 32 ?
			  "not cleanly unmounted (FAT[1] bit 27 clear)" :
			  "not cleanly unmounted (FAT[1] bit 15 clear)");
	if (!(fat1 & no_errors))
		add_dirty(m, g->bits == 32 ?
			  "disk errors recorded (FAT[1] bit 26 clear)" :
			  "disk errors recorded (FAT[1] bit 14 clear)");
}

/* A run of used clusters: [start, start + n). */
struct run {
	uint64_t start, n;
};

static int run_flush(const struct fat_geom *g, struct run *run,
		     struct fs_map *m)
{
	uint64_t csize = (uint64_t)g->spc * g->bps;
	int r;

	if (run->n == 0)
		return 0;
	r = fsmap_add(m, g->first_data * g->bps + (run->start - 2) * csize,
		      run->n * csize);
	run->n = 0;
	return r;
}

/* Walk the FAT g->active: each cluster whose entry is not 0 to m, and
 * FAT[1]'s state to m->dirty. */
static int walk_fat(const struct fs_source *src, const struct fat_geom *g,
		    struct fs_map *m, char *why, size_t len)
{
	uint64_t fat_pos = ((uint64_t)g->rsvd + (uint64_t)g->active *
			    g->fat_secs) * g->bps;
	uint64_t fat_len = ((g->clusters + 2) * g->bits + 7) / 8;
	uint64_t end = g->clusters + 2;	/* entries */
	uint64_t off, e = 0, first;
	struct run run = { 0, 0 };
	uint32_t root = 1;
	uint8_t *buf;
	int r = 0;

	buf = malloc(fat_len < FAT_PIECE ? (size_t)fat_len : FAT_PIECE);
	if (!buf) {
		snprintf(why, len, "no memory for the FAT");
		return -ENOMEM;
	}
	for (off = 0; off < fat_len && r == 0; off += FAT_PIECE) {
		size_t n = fat_len - off < FAT_PIECE ? (size_t)(fat_len - off) :
			   FAT_PIECE;
		uint64_t last;

		r = fs_read(src, buf, n, fat_pos + off);
		if (r < 0) {
			snprintf(why, len, "reading FAT %u at byte %llu: %s",
				 g->active, (unsigned long long)(fat_pos + off),
				 strerror(-r));
			break;
		}
		/* A piece holds whole entries: FAT12's is the whole FAT. */
		first = off * 8 / g->bits;
		last = (off + n) * 8 / g->bits;
		if (last > end)
			last = end;
		if (first == 0)
			fat1_state(g, fat_entry(buf, g->bits, 1), m);
		for (e = first < 2 ? 2 : first; e < last; e++) {
			uint32_t v = fat_entry(buf, g->bits, (size_t)(e - first));

			if (e == g->root_clus)
				root = v;
			if (v == 0)
				continue;
			if (run.n && run.start + run.n == e) {
				run.n++;
				continue;
			}
			r = run_flush(g, &run, m);
			if (r < 0)
				break;
			run.start = e;
			run.n = 1;
		}
	}
	free(buf);
	if (r == 0)
		r = run_flush(g, &run, m);
	if (r == -ENOMEM)
		snprintf(why, len, "no memory for the used ranges");
	if (r == 0 && root == 0) {
		snprintf(why, len,
			 "BPB_RootClus %u: the root directory's cluster is free "
			 "in the FAT", g->root_clus);
		r = -EUCLEAN;
	}
	return r;
}

int fs_fat_map(const struct fs_source *src, struct fs_map *m, char *why,
	       size_t len)
{
	struct fat_geom g;
	uint8_t boot[512];
	int r;

	if (src->size < sizeof(boot)) {
		snprintf(why, len, "%llu bytes: smaller than a boot sector",
			 (unsigned long long)src->size);
		return -EUCLEAN;
	}
	r = fs_read(src, boot, sizeof(boot), 0);
	if (r < 0) {
		snprintf(why, len, "reading the boot sector: %s", strerror(-r));
		return r;
	}
	r = parse_bpb(boot, src->size, &g, why, len);
	if (r < 0)
		return r;
	m->block_size = g.spc * g.bps;
	m->fs_size = g.tot_secs * g.bps;
	m->dirty[0] = '\0';
	if (g.state >= 0 && (g.state & 1)) {
		add_dirty(m, g.bits == 32 ?
			  "marked dirty (boot sector byte 0x41 bit 0)" :
			  "marked dirty (boot sector byte 0x25 bit 0)");
	}
	/* The reserved region, the FATs and FAT12/16's root directory. */
	r = fsmap_add(m, 0, g.first_data * g.bps);
	if (r < 0) {
		snprintf(why, len, "no memory for the used ranges");
		return r;
	}
	return walk_fat(src, &g, m, why, len);
}
