/* plan.c - the --dry-run plan: what each region is, on what storage, with
 * what I/O, and the budget and mode of the copy; nothing is written.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcopy.h"

static void print_region(const char *what, const struct target *t)
{
	char size[KC_FORMAT_SIZE_LEN], dsize[KC_FORMAT_SIZE_LEN];

	printf("%-14s %s\n", what, t->spec.path);
	if (t->count)
		printf("  region       sector %" PRIu64 ", %" PRIu64 " sectors "
		       "(%" PRIu64 " bytes, %s)\n", t->sector, t->count,
		       t->count * KC_SECTOR_SIZE,
		       kc_format_size(t->count * KC_SECTOR_SIZE, size,
				      sizeof(size)));
	else
		printf("  region       sector %" PRIu64 ", to the end of the "
		       "stream\n", t->sector);
	if (t->info.is_stream)
		printf("  storage      stream (a pipe or a socket), in order\n");
	else if (t->info.is_remote)
		printf("  storage      NBD export, %" PRIu64 " bytes (%s), "
		       "block %u bytes (preferred %u), %u connection(s)%s%s%s"
		       "%s\n", t->info.size,
		       kc_format_size(t->info.size, dsize, sizeof(dsize)),
		       t->info.logical_block_size,
		       t->info.preferred_block_size, t->info.connections,
		       t->info.can_multi_conn ? ", multi-conn" : "",
		       t->info.can_zero ? ", write zeroes" : "",
		       t->info.can_flush ? ", flush" : "",
		       t->info.read_only ? ", read-only" : "");
	else if (t->exists)
		printf("  storage      %s, %" PRIu64 " bytes (%s), logical "
		       "block %u bytes%s\n",
		       t->info.is_blockdev ? "block device" : "regular file",
		       t->info.size,
		       kc_format_size(t->info.size, dsize, sizeof(dsize)),
		       t->info.logical_block_size,
		       t->zoned ? ", host-managed zoned" : "");
	else
		printf("  storage      regular file, to be created\n");
	printf("  I/O          %s\n",
	       t->info.is_stream ? "non-blocking, in order" :
	       t->info.is_remote ? "NBD, asynchronous" :
	       !t->exists ? "direct if the file system takes it" :
	       t->info.can_direct ? "direct" : "buffered");
}

/* The source's map, as the library finds it (kcopyd_get_map: SEEK_DATA
 * and SEEK_HOLE on a file, block status on an NBD export): the region's
 * data and hole bytes.  Nothing where it is not known. */
static void print_map(struct kcopy *k, const struct target *t)
{
	char dsize[KC_FORMAT_SIZE_LEN], hsize[KC_FORMAT_SIZE_LEN];
	struct kcopyd_extent *map = NULL;
	uint64_t data = 0, run;
	size_t n = 0, i;
	int r;

	/* Known at all?  (kcopyd_get_map takes what is not for data.) */
	r = t->count ? kcopyd_map(k->kc, t->fd, t->sector, t->count, &run)
		     : -EOPNOTSUPP;
	if (r == -EOPNOTSUPP) {
		printf("  map          not known: all of it is read\n");
		return;
	}
	if (r >= 0)
		r = kcopyd_get_map(k->kc, t->fd, t->sector, t->count, &map, &n);
	if (r < 0) {
		printf("  map          not known (%s): all of it is read\n",
		       strerror(-r));
		return;
	}
	for (i = 0; i < n; i++)
		if (map[i].kind == KCOPYD_EXTENT_DATA)
			data += map[i].count * KC_SECTOR_SIZE;
	free(map);
	printf("  map          %" PRIu64 " bytes data (%s), %" PRIu64
	       " bytes holes (%s), not read\n", data,
	       kc_format_size(data, dsize, sizeof(dsize)),
	       t->count * KC_SECTOR_SIZE - data,
	       kc_format_size(t->count * KC_SECTOR_SIZE - data, hsize,
			      sizeof(hsize)));
}

/* --used, --domain-mapfile: what the map holds. */
static void print_used(const struct kcopy *k)
{
	const struct used *u = &k->used;
	char used[KC_FORMAT_SIZE_LEN], size[KC_FORMAT_SIZE_LEN];
	uint64_t region = k->src.count * KC_SECTOR_SIZE;

	if (!u->ext)
		return;
	if (k->opt.used)
		printf("  file system  %s, blocks of %" PRIu32 " bytes, %"
		       PRIu64 " bytes (%s)%s%s\n", u->type, u->block_size,
		       u->fs_size, kc_format_size(u->fs_size, size,
						  sizeof(size)),
		       u->dirty[0] ? ", not clean: " : "", u->dirty);
	else
		printf("  domain       %s\n", k->opt.domain_mapfile);
	printf("  used         %" PRIu64 " bytes (%s, %.1f%%) in %zu "
	       "extents; the rest %s\n", u->used_bytes,
	       kc_format_size(u->used_bytes, used, sizeof(used)),
	       region ? 100.0 * (double)u->used_bytes / (double)region : 0.0,
	       u->num, k->opt.unused == UNUSED_ZERO
	       ? "zeroed on the destinations"
	       : "left as it is on the destinations");
	if (u->zero_bytes)
		printf("  zeros        %" PRIu64 " bytes (%s) it needs only to "
		       "read as zeros (unused inode tables): zeroed, not "
		       "read\n", u->zero_bytes,
		       kc_format_size(u->zero_bytes, size, sizeof(size)));
}

void plan_print(struct kcopy *k)
{
	char budget[KC_FORMAT_SIZE_LEN], chunk[KC_FORMAT_SIZE_LEN];
	unsigned int i;

	printf("kcopy: dry run, nothing will be written\n");
	if (!k->opt.zero) {
		print_region("source", &k->src);
		print_map(k, &k->src);
		print_used(k);
	}
	for (i = 0; i < k->num_dests; i++) {
		char what[32];

		snprintf(what, sizeof(what), "destination %u", i + 1);
		print_region(what, &k->dests[i]);
	}
	printf("%-14s %lu pages (%s), sub-jobs of %s\n", "budget",
	       k->opt.pages, kc_format_size((uint64_t)k->opt.pages *
					    KCOPYD_PAGE_SIZE, budget,
					    sizeof(budget)),
	       kc_format_size(k->opt.chunk, chunk, sizeof(chunk)));
	printf("%-14s %s%s%s%s%s%s\n", "mode", k->opt.zero ? "zero" : "copy",
	       k->flags & KCOPYD_IGNORE_ERROR ? ", ignore read errors" : "",
	       k->flags & KCOPYD_WRITE_SEQ ? ", sequential writes" : "",
	       k->opt.zero ? "" : k->flags & KCOPYD_ALLOCATED
	       ? ", zeros written as data" : ", sparse",
	       k->flags & KCOPYD_DEST_IS_ZERO ? ", destinations are zero" : "",
	       k->flags & KCOPYD_NO_ZERO_DETECT ? ", no zero detection" : "");
}
