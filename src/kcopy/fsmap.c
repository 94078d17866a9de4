/* fsmap.c - the used ranges of a file system as its reader finds them
 * (fsmap.h): added in any order, then sorted, merged and clipped.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsmap.h"

/* Add [pos, pos + len) to the list *v of *n ranges (*cap allocated). */
static int list_add(struct fs_range **v, size_t *n, size_t *cap,
		    uint64_t pos, uint64_t len)
{
	if (len == 0)
		return 0;
	if (*n) {
		struct fs_range *last = &(*v)[*n - 1];

		/* Readers mostly go in order: extend the last range. */
		if (pos >= last->pos && pos <= last->pos + last->len) {
			if (pos + len > last->pos + last->len)
				last->len = pos + len - last->pos;
			return 0;
		}
	}
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 256;
		struct fs_range *r = realloc(*v, c * sizeof(*r));

		if (!r)
			return -ENOMEM;
		*v = r;
		*cap = c;
	}
	(*v)[(*n)++] = (struct fs_range){ pos, len };
	return 0;
}

int fsmap_add(struct fs_map *m, uint64_t pos, uint64_t len)
{
	return list_add(&m->ranges, &m->num, &m->cap, pos, len);
}

int fsmap_add_zero(struct fs_map *m, uint64_t pos, uint64_t len)
{
	return list_add(&m->zeros, &m->num_zeros, &m->cap_zeros, pos, len);
}

static int by_pos(const void *a, const void *b)
{
	const struct fs_range *x = a, *y = b;

	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Sort, clip to size and merge the n ranges of v; their new number. */
static size_t list_finish(struct fs_range *v, size_t n, uint64_t size)
{
	size_t i, k = 0;

	if (n)
		qsort(v, n, sizeof(*v), by_pos);
	for (i = 0; i < n; i++) {
		struct fs_range r = v[i];

		if (r.pos >= size)
			break;
		if (r.len > size - r.pos)
			r.len = size - r.pos;
		if (k && r.pos <= v[k - 1].pos + v[k - 1].len) {
			if (r.pos + r.len > v[k - 1].pos + v[k - 1].len)
				v[k - 1].len = r.pos + r.len - v[k - 1].pos;
			continue;
		}
		v[k++] = r;
	}
	return k;
}

/* The ranges less the zeros, both sorted and merged, into a new list. */
static int subtract_zeros(struct fs_map *m)
{
	struct fs_range *out = NULL;
	size_t n = 0, cap = 0, i, z = 0;
	int r = 0;

	for (i = 0; r == 0 && i < m->num; i++) {
		uint64_t s = m->ranges[i].pos;
		uint64_t e = s + m->ranges[i].len;

		while (z < m->num_zeros &&
		       m->zeros[z].pos + m->zeros[z].len <= s)
			z++;
		for (size_t j = z; r == 0 && s < e && j < m->num_zeros &&
		     m->zeros[j].pos < e; j++) {
			if (m->zeros[j].pos > s)
				r = list_add(&out, &n, &cap, s,
					     m->zeros[j].pos - s);
			if (m->zeros[j].pos + m->zeros[j].len > s)
				s = m->zeros[j].pos + m->zeros[j].len;
		}
		if (r == 0 && s < e)
			r = list_add(&out, &n, &cap, s, e - s);
	}
	if (r < 0) {
		free(out);
		return r;
	}
	free(m->ranges);
	m->ranges = out;
	m->num = n;
	m->cap = cap;
	return 0;
}

int fsmap_finish(struct fs_map *m, uint64_t size)
{
	size_t i;
	int r;

	m->num = list_finish(m->ranges, m->num, size);
	m->num_zeros = list_finish(m->zeros, m->num_zeros, size);
	r = m->num_zeros ? subtract_zeros(m) : 0;
	if (r < 0)
		return r;
	m->used = m->zero_bytes = 0;
	for (i = 0; i < m->num; i++)
		m->used += m->ranges[i].len;
	for (i = 0; i < m->num_zeros; i++)
		m->zero_bytes += m->zeros[i].len;
	m->used += m->zero_bytes;
	return 0;
}

void fsmap_free(struct fs_map *m)
{
	free(m->ranges);
	free(m->zeros);
	m->ranges = m->zeros = NULL;
	m->num = m->cap = m->num_zeros = m->cap_zeros = 0;
}

int fsmap_fail(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return err;
}

int fsmap_read(const struct fs_source *src, void *buf, size_t len,
	       uint64_t off, const char *what, char *why, size_t why_len)
{
	int r = fs_read(src, buf, len, off);

	if (r == -EUCLEAN)
		return fsmap_fail(why, why_len, r, "%s at byte %" PRIu64
				  " lies past the end of the source", what,
				  off);
	if (r < 0)
		return fsmap_fail(why, why_len, r, "cannot read %s at byte %"
				  PRIu64, what, off);
	return 0;
}
