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

int fsmap_add(struct fs_map *m, uint64_t pos, uint64_t len)
{
	if (len == 0)
		return 0;
	if (m->num) {
		struct fs_range *last = &m->ranges[m->num - 1];

		/* Readers mostly go in order: extend the last range. */
		if (pos >= last->pos && pos <= last->pos + last->len) {
			if (pos + len > last->pos + last->len)
				last->len = pos + len - last->pos;
			return 0;
		}
	}
	if (m->num == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 256;
		struct fs_range *r = realloc(m->ranges, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		m->ranges = r;
		m->cap = cap;
	}
	m->ranges[m->num++] = (struct fs_range){ pos, len };
	return 0;
}

static int by_pos(const void *a, const void *b)
{
	const struct fs_range *x = a, *y = b;

	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

void fsmap_finish(struct fs_map *m, uint64_t size)
{
	size_t i, n = 0;

	qsort(m->ranges, m->num, sizeof(*m->ranges), by_pos);
	m->used = 0;
	for (i = 0; i < m->num; i++) {
		struct fs_range r = m->ranges[i];

		if (r.pos >= size)
			break;
		if (r.len > size - r.pos)
			r.len = size - r.pos;
		if (n && r.pos <= m->ranges[n - 1].pos + m->ranges[n - 1].len) {
			struct fs_range *last = &m->ranges[n - 1];

			if (r.pos + r.len > last->pos + last->len)
				last->len = r.pos + r.len - last->pos;
			continue;
		}
		m->ranges[n++] = r;
	}
	m->num = n;
	for (i = 0; i < n; i++)
		m->used += m->ranges[i].len;
}

void fsmap_free(struct fs_map *m)
{
	free(m->ranges);
	m->ranges = NULL;
	m->num = m->cap = 0;
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
