/* rangemap.h - a map of byte ranges to a one-character status, as ddrescue's
 * mapfile holds one: [begin, end) cut into blocks, each with its status,
 * neighbours of one status always merged.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A treap (a binary search tree by position whose nodes also keep a heap of
 * random priorities) so that setting a range costs O(log n) expected for a
 * map of n blocks, whatever the order of the updates: a disk with a hundred
 * thousand bad ranges is ddrescue's main case.  Totals of bytes and blocks
 * per status are kept as the map changes, so they cost nothing to read.
 *
 * Pure: no I/O, no globals (the priorities come from a generator in the
 * map).  Functions returning int return 0 or -ENOMEM; after -ENOMEM the map
 * is unchanged.
 */
#ifndef KCOPY_RANGEMAP_H
#define KCOPY_RANGEMAP_H

#include <stddef.h>
#include <stdint.h>

struct rm_node;

struct rangemap {
	struct rm_node *root;
	uint64_t begin, end;		/* what the map covers */
	uint64_t bytes[256];		/* per status */
	size_t blocks[256];		/* per status */
	size_t num_blocks;
	uint64_t seed;			/* the priorities' generator */
};

/* A map of [begin, end) all of status st (begin < end). */
int rangemap_init(struct rangemap *m, uint64_t begin, uint64_t end, char st);
void rangemap_free(struct rangemap *m);

struct rangemap_block {
	uint64_t pos, size;
	char st;
};

/* A list of blocks, not a map: append b to the *n blocks of *v, which has
 * room for *cap and grows as it fills.  0 or -ENOMEM (the list then
 * unchanged). */
int rangemap_list_add(struct rangemap_block **v, size_t *n, size_t *cap,
		      const struct rangemap_block *b);

/* The whole map, at once, from n blocks in order that do not overlap:
 * each clipped to the map, the parts of the map between them (and around
 * them) of status fill.  O(n), for loading a mapfile: n updates would
 * cost O(n log n).  0 or -ENOMEM (the map then unchanged). */
int rangemap_load(struct rangemap *m, const struct rangemap_block *b,
		  size_t n, char fill);

/* Set [pos, pos + size), clipped to the map, to st. */
int rangemap_set(struct rangemap *m, uint64_t pos, uint64_t size, char st);

static inline uint64_t rangemap_bytes(const struct rangemap *m, char st)
{
	return m->bytes[(unsigned char)st];
}

static inline size_t rangemap_blocks(const struct rangemap *m, char st)
{
	return m->blocks[(unsigned char)st];
}

/* Call fn for each block that meets [from, to), in order, with the block
 * whole (not clipped); a non-zero return from fn stops the walk and is
 * returned.  fn must not change the map. */
typedef int (*rangemap_fn)(uint64_t pos, uint64_t size, char st, void *ctx);
int rangemap_walk(const struct rangemap *m, uint64_t from, uint64_t to,
		  rangemap_fn fn, void *ctx);

#endif /* KCOPY_RANGEMAP_H */
