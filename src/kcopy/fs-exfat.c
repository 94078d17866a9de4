/* fs-exfat.c - the clusters an exFAT volume uses, from its Allocation
 * Bitmap (fsmap.h), read straight from the on-disk format.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The layout relied on, after Microsoft's "exFAT file system
 * specification" (revision 1.00); numbers are little-endian.
 *
 * The main boot sector (sector 0):
 *     3  8 bytes FileSystemName "EXFAT   "
 *    11  53 bytes MustBeZero (where FAT's BPB would be)
 *    72  u64 VolumeLength               sectors in the volume
 *    80  u32 FatOffset                  sector of the first FAT, >= 24
 *    84  u32 FatLength                  sectors per FAT
 *    88  u32 ClusterHeapOffset          sector of cluster 2
 *    92  u32 ClusterCount               clusters in the heap, at most
 *                                       0xfffffff5
 *    96  u32 FirstClusterOfRootDirectory
 *   104  u16 FileSystemRevision         1.00: byte 105 (major) is 1
 *   106  u16 VolumeFlags                bit 0 ActiveFat (the second FAT
 *                                       and bitmap are the live ones),
 *                                       bit 1 VolumeDirty, bit 2
 *                                       MediaFailure
 *   108  u8  BytesPerSectorShift        9 to 12 (512 to 4096 bytes)
 *   109  u8  SectorsPerClusterShift     clusters of up to 32 MiB: the two
 *                                       shifts add up to 25 at most
 *   110  u8  NumberOfFats               1, or 2 (TexFAT)
 *   112  u8  PercentInUse
 *   510  0x55 0xaa
 *
 * The volume, in sectors:
 *   [0, 12)        the main boot region: boot sector, 8 extended boot
 *                  sectors, OEM parameters, a reserved sector and the
 *                  boot checksum sector (11), which repeats one u32: the
 *                  checksum of sectors 0 to 10 whole, bytes 106, 107 and
 *                  112 (VolumeFlags, PercentInUse) left out, each byte
 *                  added to the sum rotated right by one bit
 *   [12, 24)       the backup boot region, the same again
 *   FatOffset on   NumberOfFats FATs of FatLength sectors each
 *   ClusterHeapOffset on  the clusters: cluster N, for 2 <= N <
 *                  ClusterCount + 2, at ClusterHeapOffset + (N - 2) <<
 *                  SectorsPerClusterShift
 *
 * A FAT is u32 entries, entry N the cluster after N in its chain (2 to
 * ClusterCount + 1), 0xffffffff the end of the chain, 0xfffffff7 bad.
 * Unlike FAT32's it does not say which clusters are used: a file marked
 * NoFatChain is contiguous and its clusters' entries mean nothing.
 *
 * Directory entries are 32 bytes, byte 0 the type: 0x00 ends the
 * directory, bit 7 set is an entry in use.  The root directory (a FAT
 * chain from FirstClusterOfRootDirectory) holds:
 *   0x81 Allocation Bitmap  byte 1 BitmapFlags (bit 0: the bitmap of the
 *                           second FAT), 20 u32 FirstCluster, 24 u64
 *                           DataLength
 *   0x82 Up-case Table      20 u32 FirstCluster, 24 u64 DataLength
 * The bitmap's bit N - 2 (bit (N - 2) % 8 of byte (N - 2) / 8) is set
 * when cluster N is allocated; it takes ClusterCount bits at least, and
 * is read, as Linux reads it, as DataLength bytes from its first
 * cluster on, contiguous.
 *
 * Used, then: both boot regions, every FAT, and the clusters the live
 * bitmap (the one for the active FAT) marks, plus, should they not be
 * marked, every bitmap's and the up-case table's clusters.  The gaps
 * before the FATs and before the heap, and the sectors after the last
 * cluster, belong to nothing.  The block size is the cluster; the file
 * system spans VolumeLength sectors.
 *
 * Refused with the field named: a boot sector out of range or against
 * the source's size, a boot checksum that does not match, a root
 * directory whose chain leaves the heap or loops, a missing bitmap or
 * up-case table, a bitmap too short for the clusters, a root directory
 * cluster the bitmap calls free.  Not clean, in m->dirty: VolumeDirty,
 * MediaFailure.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsmap.h"

#define BOOT_REGION	12u		/* sectors, main or backup */
#define CHECKSUM_SECTOR	11u
#define MAX_CLUSTERS	0xfffffff5u
#define MAX_DIR		(256u << 20)	/* the most a directory may hold */
#define PIECE		(1u << 20)	/* of the bitmap read at once */
#define FAT_EOC		0xffffffffu

#define ENTRY_END	0x00u
#define ENTRY_BITMAP	0x81u
#define ENTRY_UPCASE	0x82u

#define FLAG_ACTIVE_FAT	0x0001u
#define FLAG_DIRTY	0x0002u
#define FLAG_MEDIA_FAIL	0x0004u

/* A run of clusters in the heap. */
struct extent {
	uint32_t first;			/* cluster, 0: none found */
	uint64_t bytes;
};

struct exfat {
	const struct fs_source *src;
	struct fs_map *m;
	char *why;
	size_t len;
	uint32_t bps;			/* bytes per sector */
	uint64_t csize;			/* bytes per cluster */
	uint64_t vol_secs;		/* VolumeLength */
	uint32_t fat_off, fat_len, heap_off, clusters, root;
	uint16_t flags;			/* VolumeFlags */
	unsigned int nfats, active;
	struct extent bitmap[2];	/* by BitmapFlags bit 0 */
	struct extent upcase;
};

static int get(struct exfat *ex, void *buf, size_t len, uint64_t off,
	       const char *what)
{
	return fsmap_read(ex->src, buf, len, off, what, ex->why, ex->len);
}

static int add(struct exfat *ex, uint64_t pos, uint64_t len)
{
	int r = fsmap_add(ex->m, pos, len);

	return r < 0 ? fsmap_fail(ex->why, ex->len, r,
				  "no memory for the used ranges") : 0;
}

static uint64_t cluster_pos(const struct exfat *ex, uint32_t c)
{
	return (uint64_t)ex->heap_off * ex->bps + (uint64_t)(c - 2) * ex->csize;
}

static bool in_heap(const struct exfat *ex, uint32_t c)
{
	return c >= 2 && c - 2 < ex->clusters;
}

/* --------------------------------------------------------- boot region */

/* The boot sector b (one sector), checked against itself and the size. */
static int parse_boot(struct exfat *ex, const uint8_t *b)
{
	unsigned int bps_shift = b[108], spc_shift = b[109];
	uint64_t heap_secs, fat_need;
	size_t i;

	if (memcmp(b + 3, "EXFAT   ", 8))
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "no exFAT boot sector (FileSystemName at 3)");
	if (b[510] != 0x55 || b[511] != 0xaa)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "no boot signature 0x55 0xaa at byte 510");
	for (i = 11; i < 64; i++)
		if (b[i])
			return fsmap_fail(ex->why, ex->len, -EUCLEAN,
					  "MustBeZero byte %zu is 0x%02x", i,
					  b[i]);
	if (b[105] != 1)
		return fsmap_fail(ex->why, ex->len, -ENOTSUP,
				  "FileSystemRevision %u.%02u (only 1.x is known)",
				  b[105], b[104]);
	if (bps_shift < 9 || bps_shift > 12)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "BytesPerSectorShift %u (9 to 12)", bps_shift);
	if (spc_shift > 25 - bps_shift)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "SectorsPerClusterShift %u with sectors of %u "
				  "bytes: clusters over 32 MiB", spc_shift,
				  1u << bps_shift);
	ex->bps = 1u << bps_shift;
	ex->csize = (uint64_t)ex->bps << spc_shift;
	ex->vol_secs = fs_le64(b + 72);
	ex->fat_off = fs_le32(b + 80);
	ex->fat_len = fs_le32(b + 84);
	ex->heap_off = fs_le32(b + 88);
	ex->clusters = fs_le32(b + 92);
	ex->root = fs_le32(b + 96);
	ex->flags = fs_le16(b + 106);
	ex->nfats = b[110];
	if (ex->vol_secs < 2 * BOOT_REGION ||
	    ex->vol_secs > ex->src->size >> bps_shift)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "VolumeLength %" PRIu64 " sectors of %" PRIu32
				  " bytes: not within the %" PRIu64 " bytes "
				  "there are", ex->vol_secs, ex->bps,
				  ex->src->size);
	if (ex->nfats != 1 && ex->nfats != 2)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "NumberOfFats %u (1 or 2)", ex->nfats);
	if (ex->fat_off < 2 * BOOT_REGION)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "FatOffset %" PRIu32 " within the boot regions",
				  ex->fat_off);
	if (ex->clusters == 0 || ex->clusters > MAX_CLUSTERS)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "ClusterCount %" PRIu32 " (1 to %u)",
				  ex->clusters, MAX_CLUSTERS);
	fat_need = ((uint64_t)ex->clusters + 2) * 4;
	if ((uint64_t)ex->fat_len * ex->bps < fat_need)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "FatLength %" PRIu32 " sectors: too small for "
				  "%" PRIu32 " clusters", ex->fat_len,
				  ex->clusters);
	if (ex->heap_off < (uint64_t)ex->fat_off +
			   (uint64_t)ex->nfats * ex->fat_len)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "ClusterHeapOffset %" PRIu32 " within the FATs "
				  "(FatOffset %" PRIu32 ", FatLength %" PRIu32
				  ", NumberOfFats %u)", ex->heap_off,
				  ex->fat_off, ex->fat_len, ex->nfats);
	heap_secs = ex->vol_secs > ex->heap_off ?
		    ex->vol_secs - ex->heap_off : 0;
	if (ex->clusters > heap_secs >> spc_shift)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "ClusterCount %" PRIu32 " clusters from sector "
				  "%" PRIu32 " on: past VolumeLength %" PRIu64,
				  ex->clusters, ex->heap_off, ex->vol_secs);
	if (!in_heap(ex, ex->root))
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "FirstClusterOfRootDirectory %" PRIu32
				  " (clusters are 2 to %" PRIu64 ")", ex->root,
				  (uint64_t)ex->clusters + 1);
	ex->active = ex->flags & FLAG_ACTIVE_FAT ? 1 : 0;
	if (ex->active >= ex->nfats)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "VolumeFlags bit 0 (ActiveFat) names the second "
				  "FAT of %u", ex->nfats);
	return 0;
}

/* Read the main boot region, check its checksum and the boot sector. */
static int read_boot(struct exfat *ex)
{
	uint8_t first[512], *reg;
	uint32_t sum = 0, bps;
	uint64_t i, n;
	int r;

	r = get(ex, first, sizeof(first), 0, "the boot sector");
	if (r < 0)
		return r;
	if (first[108] < 9 || first[108] > 12)
		return parse_boot(ex, first);	/* names the field */
	bps = 1u << first[108];
	reg = malloc((size_t)BOOT_REGION * bps);
	if (!reg)
		return fsmap_fail(ex->why, ex->len, -ENOMEM,
				  "no memory for the boot region");
	r = get(ex, reg, (size_t)BOOT_REGION * bps, 0, "the main boot region");
	if (r == 0)
		r = parse_boot(ex, reg);
	n = (uint64_t)CHECKSUM_SECTOR * bps;
	for (i = 0; r == 0 && i < n; i++) {
		if (i == 106 || i == 107 || i == 112)
			continue;
		sum = (sum << 31 | sum >> 1) + reg[i];
	}
	for (i = 0; r == 0 && i < bps; i += 4)
		if (fs_le32(reg + n + i) != sum)
			r = fsmap_fail(ex->why, ex->len, -EUCLEAN,
				       "boot checksum: sector 11 holds 0x%08"
				       PRIx32 " at byte %" PRIu64 ", sectors 0 "
				       "to 10 sum to 0x%08" PRIx32,
				       fs_le32(reg + n + i), i, sum);
	free(reg);
	return r;
}

/* ------------------------------------------------------ root directory */

/* The cluster after c in the active FAT's chain: into *next. */
static int fat_next(struct exfat *ex, uint32_t c, uint32_t *next)
{
	uint64_t pos = ((uint64_t)ex->fat_off +
			(uint64_t)ex->active * ex->fat_len) * ex->bps +
		       (uint64_t)c * 4;
	uint8_t v[4];
	int r;

	r = get(ex, v, sizeof(v), pos, "a FAT entry");
	if (r < 0)
		return r;
	*next = fs_le32(v);
	return 0;
}

/* Note the bitmap or up-case table entry e of the root directory. */
static int note_entry(struct exfat *ex, const uint8_t *e)
{
	struct extent x = { fs_le32(e + 20), fs_le64(e + 24) };
	const char *name = e[0] == ENTRY_BITMAP ? "Allocation Bitmap" :
			   "Up-case Table";

	if (!in_heap(ex, x.first) || x.bytes == 0 ||
	    (x.bytes - 1) / ex->csize >= (uint64_t)ex->clusters -
					  (x.first - 2))
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "%s entry: FirstCluster %" PRIu32
				  ", DataLength %" PRIu64 ": not within the "
				  "%" PRIu32 " clusters", name, x.first,
				  x.bytes, ex->clusters);
	if (e[0] == ENTRY_UPCASE)
		ex->upcase = x;
	else
		ex->bitmap[e[1] & 1] = x;
	return 0;
}

/* Walk the root directory's chain for its bitmap and up-case entries. */
static int read_root(struct exfat *ex)
{
	uint64_t max = MAX_DIR / ex->csize + 1, n, i;
	size_t step = ex->csize < PIECE ? (size_t)ex->csize : PIECE;
	uint32_t c = ex->root;
	bool end = false;
	uint8_t *buf;
	int r = 0;

	if (max > ex->clusters)
		max = ex->clusters;
	buf = malloc(step);
	if (!buf)
		return fsmap_fail(ex->why, ex->len, -ENOMEM,
				  "no memory for the root directory");
	for (n = 0; r == 0 && !end; n++) {
		if (n == max) {
			r = fsmap_fail(ex->why, ex->len, -EUCLEAN,
				       "the root directory's FAT chain from "
				       "cluster %" PRIu32 " runs past %" PRIu64
				       " clusters (a loop?)", ex->root, max);
			break;
		}
		for (i = 0; r == 0 && i < ex->csize && !end; i += 32) {
			if (i % step == 0)
				r = get(ex, buf, step, cluster_pos(ex, c) + i,
					"the root directory");
			if (r < 0 || buf[i % step] == ENTRY_END)
				end = true;
			else if (buf[i % step] == ENTRY_BITMAP ||
				 buf[i % step] == ENTRY_UPCASE)
				r = note_entry(ex, buf + i % step);
		}
		if (r < 0 || end)
			break;
		r = fat_next(ex, c, &c);
		if (r == 0 && c == FAT_EOC)
			end = true;
		else if (r == 0 && !in_heap(ex, c))
			r = fsmap_fail(ex->why, ex->len, -EUCLEAN,
				       "the root directory's FAT chain holds "
				       "0x%08" PRIx32 ", not a cluster", c);
	}
	free(buf);
	if (r < 0)
		return r;
	if (!ex->bitmap[ex->active].first)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "no Allocation Bitmap entry (0x81) for FAT %u "
				  "in the root directory", ex->active);
	if (ex->bitmap[ex->active].bytes < ((uint64_t)ex->clusters + 7) / 8)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "Allocation Bitmap DataLength %" PRIu64
				  " bytes: too short for %" PRIu32 " clusters",
				  ex->bitmap[ex->active].bytes, ex->clusters);
	if (!ex->upcase.first)
		return fsmap_fail(ex->why, ex->len, -EUCLEAN,
				  "no Up-case Table entry (0x82) in the root "
				  "directory");
	return 0;
}

/* -------------------------------------------------------------- bitmap */

/* A run of used clusters, counted from cluster 2: [start, start + n). */
struct run {
	uint64_t start, n;
};

/* Clusters [bit, bit + n) (from cluster 2) to the run, the run to m first
 * if they do not follow it. */
static int run_extend(struct exfat *ex, struct run *run, uint64_t bit,
		      uint64_t n)
{
	int r = 0;

	if (run->n && run->start + run->n == bit) {
		run->n += n;
		return 0;
	}
	if (run->n)
		r = add(ex, cluster_pos(ex, (uint32_t)run->start + 2),
			run->n * ex->csize);
	run->start = bit;
	run->n = n;
	return r;
}

/* Each cluster the live bitmap marks, as runs, to m; whether the root
 * directory's first cluster is among them into *root_used.  Bytes all
 * clear or all set go 8 clusters at a time. */
static int walk_bitmap(struct exfat *ex, bool *root_used)
{
	const struct extent *bm = &ex->bitmap[ex->active];
	uint64_t bytes = ((uint64_t)ex->clusters + 7) / 8, off, bit, step;
	uint64_t root = ex->root - 2;
	struct run run = { 0, 0 };
	uint8_t *buf, v;
	int r = 0;

	buf = malloc(bytes < PIECE ? (size_t)bytes : PIECE);
	if (!buf)
		return fsmap_fail(ex->why, ex->len, -ENOMEM,
				  "no memory for the Allocation Bitmap");
	for (off = 0; r == 0 && off < bytes; off += PIECE) {
		size_t n = bytes - off < PIECE ? (size_t)(bytes - off) : PIECE;
		uint64_t end = (off + n) * 8;

		r = get(ex, buf, n, cluster_pos(ex, bm->first) + off,
			"the Allocation Bitmap");
		if (end > ex->clusters)
			end = ex->clusters;
		for (bit = off * 8; r == 0 && bit < end; bit += step) {
			v = buf[bit / 8 - off];
			step = bit % 8 == 0 && bit + 8 <= end &&
			       (v == 0 || v == 0xff) ? 8 : 1;
			if (step == 8 ? v == 0 : !(v >> (bit % 8) & 1))
				continue;
			if (root >= bit && root - bit < step)
				*root_used = true;
			r = run_extend(ex, &run, bit, step);
		}
	}
	free(buf);
	if (r == 0)
		r = run_extend(ex, &run, 0, 0);		/* flush */
	return r;
}

/* The clusters of x, which the bitmap should hold already. */
static int add_extent(struct exfat *ex, const struct extent *x)
{
	uint64_t n = (x->bytes + ex->csize - 1) / ex->csize;

	return x->first ? add(ex, cluster_pos(ex, x->first), n * ex->csize) :
			  0;
}

int fs_exfat_map(const struct fs_source *src, struct fs_map *m, char *why,
		 size_t len)
{
	struct exfat ex = { .src = src, .m = m, .why = why, .len = len };
	bool root_used = false;
	int r;

	if (src->size < 2 * BOOT_REGION * 512)
		return fsmap_fail(why, len, -EUCLEAN,
				  "%" PRIu64 " bytes: smaller than the boot "
				  "regions", src->size);
	r = read_boot(&ex);
	if (r < 0)
		return r;
	m->block_size = (uint32_t)ex.csize;
	m->fs_size = ex.vol_secs * ex.bps;
	m->dirty[0] = '\0';
	if (ex.flags & (FLAG_DIRTY | FLAG_MEDIA_FAIL))
		snprintf(m->dirty, sizeof(m->dirty), "%s%s%s",
			 ex.flags & FLAG_DIRTY ?
			 "marked dirty (VolumeFlags bit 1, VolumeDirty)" : "",
			 (ex.flags & FLAG_DIRTY) && (ex.flags & FLAG_MEDIA_FAIL) ?
			 "; " : "",
			 ex.flags & FLAG_MEDIA_FAIL ?
			 "media failure recorded (VolumeFlags bit 2, "
			 "MediaFailure)" : "");
	r = read_root(&ex);
	if (r == 0)
		r = add(&ex, 0, (uint64_t)2 * BOOT_REGION * ex.bps);
	if (r == 0)
		r = add(&ex, (uint64_t)ex.fat_off * ex.bps,
			(uint64_t)ex.nfats * ex.fat_len * ex.bps);
	if (r == 0)
		r = walk_bitmap(&ex, &root_used);
	if (r == 0)
		r = add_extent(&ex, &ex.bitmap[0]);
	if (r == 0)
		r = add_extent(&ex, &ex.bitmap[1]);
	if (r == 0)
		r = add_extent(&ex, &ex.upcase);
	if (r == 0 && !root_used)
		r = fsmap_fail(why, len, -EUCLEAN,
			       "FirstClusterOfRootDirectory %" PRIu32 ": free "
			       "in the Allocation Bitmap", ex.root);
	return r;
}
