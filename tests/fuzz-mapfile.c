/* fuzz-mapfile.c - libFuzzer target for the mapfile parser and writer
 * (src/kcopy/mapfmt.c over src/kcopy/rangemap.c).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * fuzz-sources: src/kcopy/mapfmt.c src/kcopy/rangemap.c
 * fuzz-options: -max_len=4096
 *
 * Input: the text of a mapfile.  Whatever it is, the parser must not
 * crash, leak or read out of bounds, and what it accepts must hold what
 * mapfmt.h promises: blocks in order, touching, not empty, not
 * overflowing; at most 32 destinations, numbered from 1; failures of
 * listed destinations only, one each, with an errno of 1 to 4095.  A
 * kcopy mapfile it accepts, written again from a map of its blocks,
 * parses to the same sides, failures and blocks (a round trip).
 */
#include "fuzz.h"
#include "mapfmt.h"
#include "rangemap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_doc(const struct mapfmt *f)
{
	size_t i;

	CHECK(f->num_dests <= MAPFMT_MAX_DESTS);
	CHECK(f->num_failed <= f->num_dests);
	for (i = 0; i < f->num_failed; i++) {
		CHECK(f->failed[i].dest < f->num_dests);
		CHECK(f->failed[i].err <= -1 && f->failed[i].err >= -4095);
		CHECK(f->failed[i].op[0] && !strchr(f->failed[i].op, '-'));
	}
	for (i = 0; i < f->n; i++) {
		CHECK(f->b[i].size > 0);
		CHECK(f->b[i].pos + f->b[i].size > f->b[i].pos);
		CHECK(strchr("?*/-+", f->b[i].st) && f->b[i].st);
		if (i)
			CHECK(f->b[i - 1].pos + f->b[i - 1].size == f->b[i].pos);
	}
	if (f->kcopy) {
		CHECK(f->src.path && f->src.path[0]);
		for (i = 0; i < f->num_dests; i++)
			CHECK(f->dests[i].path && f->dests[i].path[0]);
	}
}

static void same_side(const struct mapfmt_side *a, const struct mapfmt_side *b)
{
	CHECK(a->sector == b->sector && a->count == b->count);
	CHECK(a->has_size == b->has_size && (!a->has_size || a->size == b->size));
	CHECK(!strcmp(a->id, b->id));
	CHECK(!strcmp(a->path, b->path));
}

/* Write f again from a map of its blocks, parse that, compare. */
static void round_trip(const struct mapfmt *f)
{
	struct mapfmt g = { 0 };
	struct rangemap map;
	char *buf = NULL;
	size_t len = 0, i, j;
	unsigned int line;
	FILE *out;

	if (!f->n)
		return;
	if (rangemap_init(&map, f->b[0].pos, f->b[f->n - 1].pos +
			  f->b[f->n - 1].size, '?') < 0)
		return;
	for (i = 0; i < f->n; i++)
		CHECK(rangemap_set(&map, f->b[i].pos, f->b[i].size,
				   f->b[i].st) == 0);
	out = open_memstream(&buf, &len);
	CHECK(out);
	mapfmt_write(out, "fuzz", f, &map);
	CHECK(!ferror(out));
	fclose(out);
	CHECK(mapfmt_parse(buf, len, &g, &line) == 0);
	check_doc(&g);
	CHECK(g.kcopy && g.version == MAPFMT_VERSION);
	same_side(&f->src, &g.src);
	CHECK(g.num_dests == f->num_dests);
	for (i = 0; i < f->num_dests; i++)
		same_side(&f->dests[i], &g.dests[i]);
	CHECK(g.num_failed == f->num_failed);
	for (i = 0; i < f->num_failed; i++) {
		CHECK(g.failed[i].dest == f->failed[i].dest);
		CHECK(g.failed[i].err == f->failed[i].err);
		CHECK(!strcmp(g.failed[i].op, f->failed[i].op));
	}
	/* The same statuses over the same bytes (merged where they touch). */
	for (i = 0, j = 0; i < g.n; i++) {
		uint64_t end = g.b[i].pos + g.b[i].size;

		CHECK(j < f->n && f->b[j].pos == g.b[i].pos);
		for (; j < f->n && f->b[j].pos < end; j++)
			CHECK(f->b[j].st == g.b[i].st);
	}
	CHECK(j == f->n);
	mapfmt_free(&g);
	rangemap_free(&map);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mapfmt f = { 0 };
	unsigned int line;
	char *text = malloc(size + 1);
	int r;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	r = mapfmt_parse(text, size, &f, &line);
	CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
	if (r == 0) {
		check_doc(&f);
		if (f.kcopy && f.n < 10000)
			round_trip(&f);
	}
	mapfmt_free(&f);
	free(text);
	return 0;
}
