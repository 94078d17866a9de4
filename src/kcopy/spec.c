/* spec.c - parsers for the kcopy tool's arguments.  See spec.h.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Why a number failed, before it is turned into an errno and a message. */
enum num_status {
	NUM_OK,
	NUM_SYNTAX,	/* not a number at all */
	NUM_RANGE,	/* too large */
	NUM_ALIGN,	/* a byte size that is not a multiple of 512 */
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Power of the suffix letter (K=1 ... E=6), 0 if c is not one. */
static unsigned suffix_power(char c)
{
	switch (c) {
	case 'K': case 'k': return 1;
	case 'M': case 'm': return 2;
	case 'G': case 'g': return 3;
	case 'T': case 't': return 4;
	case 'P': case 'p': return 5;
	case 'E': case 'e': return 6;
	default: return 0;
	}
}

/*
 * Scan the n bytes at s as a size.  Syntax is checked in full before range,
 * so "99999999999999999999x" is NUM_SYNTAX, not NUM_RANGE.
 */
static enum num_status scan_size(const char *s, size_t n, uint64_t *bytes,
				 int *had_suffix)
{
	uint64_t v = 0, mult = 1;
	bool overflow = false;
	size_t i = 0;

	if (n == 0 || !is_digit(s[0]))
		return NUM_SYNTAX;
	for (; i < n && is_digit(s[i]); i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (overflow || v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}

	if (i < n) {
		unsigned p = suffix_power(s[i]);
		const char *rest = s + i + 1;
		size_t rn = n - i - 1;
		uint64_t base;

		if (p == 0)
			return NUM_SYNTAX;
		if (rn == 0 || (rn == 2 && rest[0] == 'i' && rest[1] == 'B'))
			base = 1024;
		else if (rn == 1 && rest[0] == 'B')
			base = 1000;
		else
			return NUM_SYNTAX;
		while (p--)
			mult *= base;	/* at most 1024^6 = 2^60: no overflow */
	}

	if (overflow || v > UINT64_MAX / mult)
		return NUM_RANGE;
	*bytes = v * mult;
	if (had_suffix)
		*had_suffix = i < n;
	return NUM_OK;
}

/* Scan the n bytes at s as a SECTOR or COUNT field. */
static enum num_status scan_sectors(const char *s, size_t n, uint64_t *sectors)
{
	uint64_t v;
	int suffixed;
	enum num_status st = scan_size(s, n, &v, &suffixed);

	if (st != NUM_OK)
		return st;
	if (suffixed) {
		if (v % KC_SECTOR_SIZE)
			return NUM_ALIGN;
		v /= KC_SECTOR_SIZE;
	} else if (v > KC_MAX_SECTORS) {
		return NUM_RANGE;
	}
	*sectors = v;
	return NUM_OK;
}

static int num_errno(enum num_status st)
{
	switch (st) {
	case NUM_OK: return 0;
	case NUM_RANGE: return -ERANGE;
	case NUM_SYNTAX:
	case NUM_ALIGN:
	default: return -EINVAL;
	}
}

int kc_parse_size(const char *s, uint64_t *bytes, int *had_suffix)
{
	if (!s || !bytes)
		return -EINVAL;
	return num_errno(scan_size(s, strlen(s), bytes, had_suffix));
}

int kc_parse_sectors(const char *s, uint64_t *sectors)
{
	if (!s || !sectors)
		return -EINVAL;
	return num_errno(scan_sectors(s, strlen(s), sectors));
}

static const char *sector_why(enum num_status st)
{
	switch (st) {
	case NUM_SYNTAX: return "SECTOR is not a number";
	case NUM_RANGE: return "SECTOR is too large";
	case NUM_ALIGN: return "SECTOR is not a multiple of 512 bytes";
	case NUM_OK:
	default: return NULL;
	}
}

static const char *count_why(enum num_status st)
{
	switch (st) {
	case NUM_SYNTAX: return "COUNT is not a number";
	case NUM_RANGE: return "COUNT is too large";
	case NUM_ALIGN: return "COUNT is not a multiple of 512 bytes";
	case NUM_OK:
	default: return NULL;
	}
}

/* Last occurrence of c in the n bytes at s, or NULL. */
static const char *last_char(const char *s, size_t n, char c)
{
	while (n--)
		if (s[n] == c)
			return s + n;
	return NULL;
}

static int fail(const char **why, const char *msg, int err)
{
	if (why)
		*why = msg;
	return err;
}

/* Fill *out with a copy of the first n bytes of arg and the numbers. */
static int fill(struct kc_spec *out, const char *arg, size_t n,
		bool has_sector, uint64_t sector, bool has_count, uint64_t count,
		const char **why)
{
	char *path = strndup(arg, n);

	if (!path)
		return fail(why, "out of memory", -ENOMEM);
	out->path = path;
	out->sector = sector;
	out->count = count;
	out->has_sector = has_sector;
	out->has_count = has_count;
	return 0;
}

/* The index of the first c in s[i..end), or end. */
static size_t find_in(const char *s, size_t i, size_t end, char c)
{
	while (i < end && s[i] != c)
		i++;
	return i;
}

/*
 * The length of the authority at s, [userinfo@]host[:port]: it ends at the
 * first '/', '?' or '#', or at a colon after the port ("host:10809:2048"
 * is host:10809 and a field).  The userinfo ends at the last '@'; an
 * [IPv6] literal's colons are its own.  Whether the host and port are
 * valid is libnbd's to judge.
 */
static size_t authority_len(const char *s)
{
	size_t end = strcspn(s, "/?#"), i = end;
	const char *close;

	while (i > 0 && s[i - 1] != '@')
		i--;
	if (s[i] == '[' && (close = memchr(s + i, ']', end - i)) != NULL)
		i = (size_t)(close - s) + 1;
	i = find_in(s, i, end, ':');		/* end of the host */
	if (i < end)
		i = find_in(s, i + 1, end, ':');	/* end of the port */
	return i;
}

size_t kc_uri_prefix(const char *arg)
{
	static const char *const schemes[] = {
		"nbd://", "nbds://", "nbd+unix://", "nbds+unix://",
		"nbd+vsock://", "nbds+vsock://",
	};
	size_t i, n;

	for (i = 0; arg && i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		n = strlen(schemes[i]);
		if (!strncmp(arg, schemes[i], n))
			return n + authority_len(arg + n);
	}
	return 0;
}

int kc_parse_spec(const char *arg, kc_exists_fn exists, void *ctx,
		  struct kc_spec *out, const char **why)
{
	const char *c1, *c2, *tail, *mid, *rest;
	size_t len, tn, mn, uri;
	uint64_t sector = 0, count = 0;
	enum num_status tst, mst;

	if (why)
		*why = NULL;
	if (!out)
		return fail(why, "no result", -EINVAL);
	out->path = NULL;
	if (!arg || !*arg)
		return fail(why, "empty argument", -EINVAL);

	len = strlen(arg);
	uri = kc_uri_prefix(arg);
	rest = arg + uri;	/* a URI's scheme and authority are not fields */
	c1 = last_char(rest, len - uri, ':');
	if (!c1 || (!uri && exists && exists(arg, ctx)))
		return fill(out, arg, len, false, 0, false, 0, why);

	tail = c1 + 1;
	tn = len - (size_t)(tail - arg);
	c2 = last_char(rest, (size_t)(c1 - rest), ':');
	mid = c2 ? c2 + 1 : NULL;
	mn = c2 ? (size_t)(c1 - mid) : 0;

	if (tn == 0) {
		if (c2 && (mn == 0 || scan_sectors(mid, mn, &sector) != NUM_SYNTAX))
			return fail(why, "empty COUNT field", -EINVAL);
		return fail(why, "empty SECTOR field", -EINVAL);
	}

	tst = scan_sectors(tail, tn, &count);
	if (tst == NUM_SYNTAX)	/* no number at the end: all of it is a path */
		return fill(out, arg, len, false, 0, false, 0, why);

	mst = c2 ? (mn ? scan_sectors(mid, mn, &sector) : NUM_OK) : NUM_SYNTAX;
	if (mst != NUM_SYNTAX) {	/* PATH:SECTOR:COUNT */
		if (c2 == arg)
			return fail(why, "empty PATH", -EINVAL);
		if (mst != NUM_OK)
			return fail(why, sector_why(mst), num_errno(mst));
		if (tst != NUM_OK)
			return fail(why, count_why(tst), num_errno(tst));
		if (count == 0)
			return fail(why, "COUNT is zero", -EINVAL);
		if (sector > KC_MAX_SECTORS - count)
			return fail(why, "SECTOR+COUNT is too large", -ERANGE);
		return fill(out, arg, (size_t)(c2 - arg), mn != 0, sector,
			    true, count, why);
	}

	/* PATH:SECTOR; the number scanned into count is the sector */
	if (c1 == arg)
		return fail(why, "empty PATH", -EINVAL);
	if (tst != NUM_OK)
		return fail(why, sector_why(tst), num_errno(tst));
	return fill(out, arg, (size_t)(c1 - arg), true, count, false, 0, why);
}

void kc_spec_free(struct kc_spec *spec)
{
	if (!spec)
		return;
	free(spec->path);
	memset(spec, 0, sizeof(*spec));
}

const char *kc_spec_numeric_tail(const char *arg)
{
	const char *tail = arg ? strrchr(arg, ':') : NULL;
	uint64_t v;

	if (!tail || !is_digit(tail[1]) ||
	    kc_parse_size(tail + 1, &v, NULL) == 0)
		return NULL;
	return tail + 1;
}

int kc_path_exists(const char *path, void *ctx)
{
	struct stat st;

	(void)ctx;
	return path && stat(path, &st) == 0;
}

/* Plain decimal digits, the n bytes at s, at most max. */
static int scan_ulong(const char *s, size_t n, unsigned long max,
		      unsigned long *out)
{
	unsigned long v = 0;
	bool overflow = false;
	size_t i;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		unsigned d;

		if (!is_digit(s[i]))
			return -EINVAL;
		d = (unsigned)(s[i] - '0');
		if (overflow || d > max || v > (max - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	if (overflow)
		return -ERANGE;
	*out = v;
	return 0;
}

int kc_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	if (!s || !out)
		return -EINVAL;
	return scan_ulong(s, strlen(s), max, out);
}

int kc_parse_percent(const char *s, unsigned *pct)
{
	unsigned long v;
	size_t n;
	int r;

	if (!s || !pct)
		return -EINVAL;
	n = strlen(s);
	if (n > 0 && s[n - 1] == '%')
		n--;
	r = scan_ulong(s, n, 100, &v);
	if (r)
		return r;
	if (v == 0)
		return -ERANGE;
	*pct = (unsigned)v;
	return 0;
}

#define SECONDS_LIMIT	1000000000ul	/* exclusive */
#define FRAC_DIGITS	9

int kc_parse_seconds(const char *s, double *out)
{
	unsigned long ip = 0, frac = 0, scale = 1;
	bool overflow = false;
	size_t i = 0, idigits = 0, fdigits = 0;

	if (!s || !out)
		return -EINVAL;
	for (; is_digit(s[i]); i++, idigits++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (overflow || ip > (SECONDS_LIMIT - 1 - d) / 10)
			overflow = true;
		else
			ip = ip * 10 + d;
	}
	if (s[i] == '.') {
		for (i++; is_digit(s[i]); i++, fdigits++) {
			if (fdigits < FRAC_DIGITS) {
				frac = frac * 10 + (unsigned)(s[i] - '0');
				scale *= 10;
			}
		}
	}
	if (s[i] != '\0' || idigits + fdigits == 0)
		return -EINVAL;
	if (overflow || (ip == 0 && frac == 0))
		return -ERANGE;
	/* 999999999.9999999999 rounds up to the limit in a double. */
	if ((double)ip + (double)frac / (double)scale >= (double)SECONDS_LIMIT)
		return -ERANGE;
	*out = (double)ip + (double)frac / (double)scale;
	return 0;
}
