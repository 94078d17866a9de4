/* rangemap.c - a map of byte ranges to a status, as a treap (rangemap.h).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every node is one block [pos, pos + size) with its status; the blocks
 * tile [begin, end) without gaps, and two neighbours never share a status.
 * rangemap_set() splits the tree at the range's two ends (cutting the
 * blocks that straddle them), drops what lies between, takes in a
 * neighbour of the same status on either side and joins the three parts:
 * O(log n) expected, plus the blocks it drops, each of which was made once.
 * Recursion is as deep as the tree, O(log n) expected.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "rangemap.h"

struct rm_node {
	uint64_t pos, size;
	uint64_t prio;			/* heap: a parent's is not below */
	struct rm_node *left, *right;
	char st;
};

/* xorshift64*: priorities need only be independent of the positions. */
static uint64_t next_prio(struct rangemap *m)
{
	uint64_t x = m->seed;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	m->seed = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static struct rm_node *node_new(struct rangemap *m, uint64_t pos,
				uint64_t size, char st)
{
	struct rm_node *n = malloc(sizeof(*n));

	if (!n)
		return NULL;
	*n = (struct rm_node){ pos, size, next_prio(m), NULL, NULL, st };
	return n;
}

/* Count a block in the totals (sign 1) or out of them (-1). */
static void account(struct rangemap *m, const struct rm_node *n, int sign)
{
	unsigned char s = (unsigned char)n->st;

	if (sign > 0) {
		m->bytes[s] += n->size;
		m->blocks[s]++;
		m->num_blocks++;
	} else {
		m->bytes[s] -= n->size;
		m->blocks[s]--;
		m->num_blocks--;
	}
}

/* Join two treaps, every block of a before every block of b. */
static struct rm_node *join(struct rm_node *a, struct rm_node *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	if (a->prio >= b->prio) {
		a->right = join(a->right, b);
		return a;
	}
	b->left = join(a, b->left);
	return b;
}

/* Split t into the blocks before key (*l) and from key on (*r).  A block
 * that straddles key is cut in two, its second part the node *spare (made
 * beforehand, so that this cannot fail; set to NULL once used), with a
 * priority not above the cut block's, so the heap holds where it goes. */
static void split(struct rangemap *m, struct rm_node *t, uint64_t key,
		  struct rm_node **l, struct rm_node **r,
		  struct rm_node **spare)
{
	struct rm_node *u;

	if (!t) {
		*l = *r = NULL;
		return;
	}
	if (t->pos >= key) {
		split(m, t->left, key, l, &t->left, spare);
		*r = t;
	} else if (t->pos + t->size <= key) {
		split(m, t->right, key, &t->right, r, spare);
		*l = t;
	} else {
		u = *spare;
		*spare = NULL;
		u->pos = key;
		u->size = t->pos + t->size - key;
		u->st = t->st;
		if (u->prio > t->prio)
			u->prio = t->prio;
		t->size = key - t->pos;
		/* One block more of that status, as many bytes. */
		m->blocks[(unsigned char)u->st]++;
		m->num_blocks++;
		*r = join(u, t->right);
		t->right = NULL;
		*l = t;
	}
}

/* Does a block of t start before key and end after it? */
static bool straddles(const struct rm_node *t, uint64_t key)
{
	while (t) {
		if (t->pos >= key)
			t = t->left;
		else if (t->pos + t->size <= key)
			t = t->right;
		else
			return true;
	}
	return false;
}

/* Free every node of t, taking it out of m's totals (m NULL: no totals). */
static void drop_all(struct rangemap *m, struct rm_node *t)
{
	if (!t)
		return;
	drop_all(m, t->left);
	drop_all(m, t->right);
	if (m)
		account(m, t, -1);
	free(t);
}

/* Take the last block out of *t if it has status st; NULL if it has
 * another, or *t is empty. */
static struct rm_node *pop_last_if(struct rm_node **t, char st)
{
	struct rm_node *n;

	if (!*t)
		return NULL;
	while ((*t)->right)
		t = &(*t)->right;
	n = *t;
	if (n->st != st)
		return NULL;
	*t = n->left;
	return n;
}

static struct rm_node *pop_first_if(struct rm_node **t, char st)
{
	struct rm_node *n;

	if (!*t)
		return NULL;
	while ((*t)->left)
		t = &(*t)->left;
	n = *t;
	if (n->st != st)
		return NULL;
	*t = n->right;
	return n;
}

int rangemap_init(struct rangemap *m, uint64_t begin, uint64_t end, char st)
{
	*m = (struct rangemap){ .begin = begin, .end = end,
				.seed = 0x9E3779B97F4A7C15ULL ^ end };
	if (begin >= end)
		return 0;
	m->root = node_new(m, begin, end - begin, st);
	if (!m->root)
		return -ENOMEM;
	account(m, m->root, 1);
	return 0;
}

void rangemap_free(struct rangemap *m)
{
	drop_all(NULL, m->root);
	m->root = NULL;
}

int rangemap_set(struct rangemap *m, uint64_t pos, uint64_t size, char st)
{
	uint64_t end = pos + size;
	struct rm_node *n, *s0 = NULL, *s1 = NULL, *l, *mid, *r, *x;
	bool cut0, cut1;

	if (end < pos || end > m->end)
		end = m->end;
	if (pos < m->begin)
		pos = m->begin;
	if (pos >= end)
		return 0;
	/* Every allocation first: nothing after them can fail. */
	cut0 = straddles(m->root, pos);
	cut1 = straddles(m->root, end);
	n = node_new(m, pos, end - pos, st);
	if (cut0)
		s0 = node_new(m, 0, 0, st);
	if (cut1)
		s1 = node_new(m, 0, 0, st);
	if (!n || (cut0 && !s0) || (cut1 && !s1)) {
		free(n);
		free(s0);
		free(s1);
		return -ENOMEM;
	}
	split(m, m->root, pos, &l, &r, &s0);
	split(m, r, end, &mid, &r, &s1);
	drop_all(m, mid);
	/* The blocks tile the map: l's last ends at pos, r's first starts
	 * at end.  Of the same status, they become part of n. */
	x = pop_last_if(&l, st);
	if (x) {
		n->pos = x->pos;
		n->size += x->size;
		account(m, x, -1);
		free(x);
	}
	x = pop_first_if(&r, st);
	if (x) {
		n->size += x->size;
		account(m, x, -1);
		free(x);
	}
	account(m, n, 1);
	m->root = join(join(l, n), r);
	return 0;
}

static int walk(const struct rm_node *t, uint64_t from, uint64_t to,
		rangemap_fn fn, void *ctx)
{
	int r;

	if (!t)
		return 0;
	if (from < t->pos) {
		r = walk(t->left, from, to, fn, ctx);
		if (r)
			return r;
	}
	if (t->pos < to && t->pos + t->size > from) {
		r = fn(t->pos, t->size, t->st, ctx);
		if (r)
			return r;
	}
	if (t->pos + t->size < to)
		return walk(t->right, from, to, fn, ctx);
	return 0;
}

/* A balanced tree of the nodes v[0..n), in order; depth d gets the
 * priority UINT64_MAX >> d, a heap as random priorities would make one. */
static struct rm_node *build(struct rm_node **v, size_t n, unsigned int d)
{
	struct rm_node *t;

	if (!n)
		return NULL;
	t = v[n / 2];
	t->prio = d < 64 ? UINT64_MAX >> d : 0;
	t->left = build(v, n / 2, d + 1);
	t->right = build(v + n / 2 + 1, n - n / 2 - 1, d + 1);
	return t;
}

/* Append [pos, end) of st to the nodes v (n of them, room for cap),
 * merged into the last one where it has st.  0 or -ENOMEM. */
static int append(struct rangemap *m, struct rm_node ***v, size_t *n,
		  size_t *cap, uint64_t pos, uint64_t end, char st)
{
	struct rm_node **nv;

	if (pos >= end)
		return 0;
	if (*n && (*v)[*n - 1]->st == st) {
		(*v)[*n - 1]->size += end - pos;
		return 0;
	}
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 64;
		nv = realloc(*v, *cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
	}
	(*v)[*n] = node_new(m, pos, end - pos, st);
	if (!(*v)[*n])
		return -ENOMEM;
	++*n;
	return 0;
}

int rangemap_load(struct rangemap *m, const struct rangemap_block *b,
		  size_t n, char fill)
{
	struct rm_node **v = NULL;
	uint64_t cur = m->begin;
	size_t nv = 0, cap = 0, i;
	int r = 0;

	for (i = 0; r == 0 && i < n; i++) {
		uint64_t s = b[i].pos, e = b[i].pos + b[i].size;

		if (e < s || e > m->end)
			e = m->end;
		if (s < cur)
			s = cur;
		if (s >= e)
			continue;
		r = append(m, &v, &nv, &cap, cur, s, fill);
		if (r == 0)
			r = append(m, &v, &nv, &cap, s, e, b[i].st);
		cur = e;
	}
	if (r == 0)
		r = append(m, &v, &nv, &cap, cur, m->end, fill);
	if (r < 0) {
		for (i = 0; i < nv; i++)
			free(v[i]);
		free(v);
		return r;
	}
	drop_all(m, m->root);
	for (i = 0; i < nv; i++)
		account(m, v[i], 1);
	m->root = build(v, nv, 0);
	free(v);
	return 0;
}

int rangemap_walk(const struct rangemap *m, uint64_t from, uint64_t to,
		  rangemap_fn fn, void *ctx)
{
	return walk(m->root, from, to, fn, ctx);
}

int rangemap_list_add(struct rangemap_block **v, size_t *n, size_t *cap,
		      const struct rangemap_block *b)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		struct rangemap_block *nv = realloc(*v, c * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = *b;
	return 0;
}
