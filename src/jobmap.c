/* jobmap.c - a copy's map (kcopyd_copy_map): which parts of its source are
 * data, which read as zeros and which the copy leaves out.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The caller's extents within the job's source region are kept with the
 * job (struct kc_job.map), relative to the region's start; the sectors
 * between them are skipped.  A map costs the copy nothing per extent it
 * passes: sub-jobs stay where they would be without a map (multiples of
 * the sub-job size from the region's start, which the data hook's callers
 * count on, kcopyd_set_data_fn(3)), the scheduler starts none that holds
 * nothing of the map (kc_jobmap_pass, one step per run of such sub-jobs,
 * so a 1 TiB file system with 2 GiB used costs as many steps as it has
 * extents), and a sub-job that holds some classes its 4096-byte blocks by
 * it (kc_jobmap_classify): data, zero (not read; sparse.c zeroes the
 * destinations there as for the source's holes) or skipped (not read;
 * subjob.c passes them); the data hook sees zeros in both.  A block with any data is data, else one with any
 * zeros is zero: the destinations' direct I/O needs whole blocks.
 *
 * Called on the engine thread with kc->lock held, but kc_jobmap_set, by
 * the submitting thread before the job is queued.  Calls nothing of the
 * job code.
 */
#include <config.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kcopyd-private.h"

#define BLOCK_SECTORS (KC_ZERO_BLOCK >> SECTOR_SHIFT)

int kc_jobmap_set(struct kc_job *job, const struct kcopyd_extent *map,
		  size_t num)
{
	uint64_t first = job->src.sector, end = first + job->src.count;
	uint64_t prev_end = 0;
	struct kc_extent *ext;
	size_t i, n = 0;

	if (num && !map)
		return kc_set_error(-EINVAL, "a map of %zu extents at NULL",
				    num);
	for (i = 0; i < num; i++) {
		const struct kcopyd_extent *e = &map[i];

		if (e->kind > KCOPYD_EXTENT_SKIP)
			return kc_set_error(-EINVAL, "map extent %zu: kind %u "
					    "is none of KCOPYD_EXTENT_*", i,
					    e->kind);
		if (e->count == 0 || e->sector + e->count < e->sector)
			return kc_set_error(-EINVAL, "map extent %zu: %" PRIu64
					    " sectors at %" PRIu64, i,
					    e->count, e->sector);
		if (i && e->sector < prev_end)
			return kc_set_error(-EINVAL, "map extent %zu (sector %"
					    PRIu64 ") overlaps or comes "
					    "before the one before it", i,
					    e->sector);
		prev_end = e->sector + e->count;
	}
	ext = malloc((num ? num : 1) * sizeof(*ext));
	if (!ext)
		return -ENOMEM;
	for (i = 0; i < num; i++) {
		const struct kcopyd_extent *e = &map[i];
		uint64_t s = e->sector > first ? e->sector : first;
		uint64_t t = e->sector + e->count < end ? e->sector + e->count
							 : end;
		bool zero = e->kind == KCOPYD_EXTENT_ZERO;

		if (e->kind == KCOPYD_EXTENT_SKIP || s >= t)
			continue;
		if (n && ext[n - 1].end == s - first && ext[n - 1].zero == zero)
			ext[n - 1].end = t - first;
		else
			ext[n++] = (struct kc_extent){ s - first, t - first,
						       zero };
	}
	job->map = ext;
	job->map_num = n;
	job->map_next = 0;
	return 0;
}

void kc_jobmap_pass(struct kcopyd_client *kc, struct kc_job *job,
		    uint64_t unit)
{
	uint64_t total = job->src.count, next;

	if (!job->map)
		return;
	while (job->map_next < job->map_num &&
	       job->map[job->map_next].end <= job->issued)
		job->map_next++;
	if (job->map_next == job->map_num)
		next = total;
	else
		next = job->map[job->map_next].start / unit * unit;
	if (next <= job->issued)
		return;
	kc->stats.bytes_unmapped += (next - job->issued) << SECTOR_SHIFT;
	job->issued = next;
}

static void set_bits(uint64_t *map, uint64_t b, uint64_t e, bool on)
{
	for (; b < e; b++) {
		if (on)
			map[b / 64] |= 1ull << (b % 64);
		else
			map[b / 64] &= ~(1ull << (b % 64));
	}
}

bool kc_block_is_skipped(const struct kc_subjob *sj, unsigned int b)
{
	return sj->has_skip && ((sj->skip_map[b / 64] >> (b % 64)) & 1);
}

bool kc_block_is_noread(const struct kc_subjob *sj, unsigned int b)
{
	return sj->has_noread && ((sj->noread_map[b / 64] >> (b % 64)) & 1);
}

void kc_jobmap_classify(const struct kc_job *job, struct kc_subjob *sj,
			uint64_t *lo, uint64_t *hi)
{
	uint64_t s0 = sj->offset, s1 = sj->offset + sj->count;
	uint64_t len = sj->count << SECTOR_SHIFT, skipped = 0;
	uint64_t data_lo = UINT64_MAX, data_hi = 0;
	size_t words = (sj->num_blocks + 63) / 64, i;
	unsigned int b;

	/* Every block skipped, until an extent says otherwise. */
	memset(sj->skip_map, 0xff, words * sizeof(sj->skip_map[0]));
	for (i = job->map_next; i < job->map_num; i++) {
		const struct kc_extent *e = &job->map[i];
		uint64_t s, t, bs, be;

		if (e->end <= s0)
			continue;
		if (e->start >= s1)
			break;
		s = (e->start > s0 ? e->start : s0) - s0;
		t = (e->end < s1 ? e->end : s1) - s0;
		bs = s / BLOCK_SECTORS;
		be = (t + BLOCK_SECTORS - 1) / BLOCK_SECTORS;
		if (!e->zero) {
			set_bits(sj->zero_map, bs, be, false);
			if (bs * KC_ZERO_BLOCK < data_lo)
				data_lo = bs * KC_ZERO_BLOCK;
			if (be * KC_ZERO_BLOCK > data_hi)
				data_hi = be * KC_ZERO_BLOCK;
		} else {
			/* zero, but where a block is data already */
			for (b = (unsigned int)bs; b < be; b++)
				if ((sj->skip_map[b / 64] >> (b % 64)) & 1)
					sj->zero_map[b / 64] |= 1ull << (b % 64);
		}
		set_bits(sj->skip_map, bs, be, false);
	}
	sj->has_skip = false;
	for (b = 0; b < sj->num_blocks; b++) {
		if (!((sj->skip_map[b / 64] >> (b % 64)) & 1))
			continue;
		sj->has_skip = true;
		skipped += ((uint64_t)b + 1) * KC_ZERO_BLOCK < len
			   ? KC_ZERO_BLOCK : len - (uint64_t)b * KC_ZERO_BLOCK;
	}
	/* Not read: skipped, or zero by the map (which the data hook and a
	 * KCOPYD_ALLOCATED write must see as zeros, not as the source's
	 * bytes). */
	sj->has_noread = false;
	for (i = 0; i < words; i++) {
		sj->noread_map[i] = sj->skip_map[i] | sj->zero_map[i];
		sj->has_noread |= sj->noread_map[i] != 0;
	}
	sj->skip_bytes = skipped;
	if (data_hi > len)
		data_hi = len;
	*lo = data_lo == UINT64_MAX ? 0 : data_lo;
	*hi = data_lo == UINT64_MAX ? 0 : data_hi;
}
