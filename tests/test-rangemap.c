/* test-rangemap.c - the mapfile's range map (src/kcopy/rangemap.c) against
 * a map of one status per byte, under random updates; and its cost: a map
 * of a million blocks updated a million times, within a time no quadratic
 * map meets (a hang guard with a wide margin, not a benchmark).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Random: prints its seed; KCOPY_TEST_SEED=N replays one.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rangemap.h"
#include "unit.h"

#define SPAN 2048u

struct model_walk {
	const char *bytes;		/* the model, from begin */
	uint64_t begin, next;
	char last;
	size_t blocks;
	int bad;
};

static int compare(uint64_t pos, uint64_t size, char st, void *ctx)
{
	struct model_walk *w = ctx;
	uint64_t i;

	if (pos != w->next || size == 0 || st == w->last)
		w->bad++;	/* a gap, an empty block, unmerged neighbours */
	for (i = pos; i < pos + size; i++)
		if (w->bytes[i - w->begin] != st)
			w->bad++;
	w->next = pos + size;
	w->last = st;
	w->blocks++;
	return 0;
}

static int count_calls(uint64_t pos, uint64_t size, char st, void *ctx)
{
	(void)pos;
	(void)size;
	(void)st;
	++*(size_t *)ctx;
	return 0;
}

static void against_model(unsigned int seed)
{
	static const char sts[] = "?+-*";
	uint64_t begin = 1000, end = begin + SPAN;
	char model[SPAN];
	struct rangemap m;
	unsigned int round, i;

	srand(seed);
	CHECK(rangemap_init(&m, begin, end, '?') == 0);
	memset(model, '?', sizeof(model));
	/* Loaded whole first: blocks in order, with gaps, some outside. */
	{
		struct rangemap_block b[64];
		uint64_t pos = begin - 100;
		size_t n;

		for (n = 0; n < 64; n++) {
			pos += (uint64_t)rand() % 16;
			b[n] = (struct rangemap_block){ pos,
				1 + (uint64_t)rand() % 64, sts[rand() % 4] };
			for (i = 0; i < b[n].size; i++)
				if (pos + i >= begin && pos + i < end)
					model[pos + i - begin] = b[n].st;
			pos += b[n].size;
		}
		CHECK(rangemap_load(&m, b, n, '?') == 0);
	}
	for (round = 0; round < 20000; round++) {
		uint64_t pos = begin - 8 + (uint64_t)rand() % (SPAN + 16);
		uint64_t size = (uint64_t)rand() % (rand() % 8 ? 64 : SPAN);
		char st = sts[rand() % 4];
		uint64_t bytes[4] = { 0 }, from, to;
		struct model_walk w = { model, begin, begin, 0, 0, 0 };
		size_t calls = 0, expect = 0;

		CHECK(rangemap_set(&m, pos, size, st) == 0);
		for (i = 0; i < SPAN; i++)
			if (begin + i >= pos && begin + i < pos + size)
				model[i] = st;
		CHECK(rangemap_walk(&m, begin, end, compare, &w) == 0);
		CHECK(w.bad == 0 && w.next == end);
		CHECK(w.blocks == m.num_blocks);
		for (i = 0; i < SPAN; i++)
			bytes[strchr(sts, model[i]) - sts]++;
		for (i = 0; i < 4; i++)
			CHECK(rangemap_bytes(&m, sts[i]) == bytes[i]);
		/* A partial walk meets exactly the blocks that meet it. */
		from = begin + (uint64_t)rand() % SPAN;
		to = from + 1 + (uint64_t)rand() % (end - from);
		rangemap_walk(&m, from, to, count_calls, &calls);
		for (i = (unsigned int)(from - begin); i < to - begin; i++)
			expect += i == from - begin || model[i] != model[i - 1];
		CHECK(calls == expect);
		if (failures) {
			fprintf(stderr, "round %u: set %" PRIu64 "+%" PRIu64
				" %c\n", round, pos, size, st);
			break;
		}
	}
	rangemap_free(&m);
}

/* A million alternating blocks, as a badly damaged disk's map: built,
 * then each one changed, in a random order. */
static void at_scale(unsigned int seed)
{
	const uint64_t n = 1000000, bs = 4096;
	struct rangemap m;
	clock_t t0 = clock();
	double s;
	uint64_t i;

	srand(seed);
	struct rangemap_block *b = malloc(n / 2 * sizeof(*b));

	CHECK(b != NULL);
	CHECK(rangemap_init(&m, 0, n * bs, '?') == 0);
	for (i = 0; i < n; i += 2)
		CHECK(rangemap_set(&m, i * bs, bs, '-') == 0);
	CHECK(m.num_blocks == n);
	/* The same map loaded whole. */
	for (i = 0; b && i < n / 2; i++)
		b[i] = (struct rangemap_block){ 2 * i * bs, bs, '-' };
	CHECK(b && rangemap_load(&m, b, n / 2, '?') == 0);
	CHECK(m.num_blocks == n && rangemap_bytes(&m, '-') == n / 2 * bs);
	free(b);
	for (i = 0; i < n; i++) {
		uint64_t b = ((uint64_t)rand() << 16 ^ (uint64_t)rand()) % n;

		CHECK(rangemap_set(&m, b * bs + bs / 2, bs / 4, '+') == 0);
	}
	s = (double)(clock() - t0) / CLOCKS_PER_SEC;
	printf("at scale: %zu blocks, 1.5 million updates and a load, "
	       "%.2f s of CPU\n",
	       m.num_blocks, s);
	/* O(log n) each: about a second here, under sanitizers several;
	 * an O(n) update would take hours. */
	CHECK(s < 120);
	rangemap_free(&m);
}

int main(void)
{
	const char *env = getenv("KCOPY_TEST_SEED");
	unsigned int seed = env && *env ? (unsigned int)strtoul(env, NULL, 0)
				       : (unsigned int)time(NULL);

	printf("seed %u (KCOPY_TEST_SEED=%u replays it)\n", seed, seed);
	against_model(seed);
	at_scale(seed);
	if (failures)
		fprintf(stderr, "%d check(s) failed, seed %u\n", failures, seed);
	return failures ? 1 : 0;
}
