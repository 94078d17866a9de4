/* json.c - the one way the tool writes JSON (json.h).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <inttypes.h>

#include "json.h"

/* The length of the valid UTF-8 sequence at p (1 to 4), or 0 if p starts
 * an invalid one: an overlong form, a surrogate, past U+10FFFF, cut short. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned int cp, min, n, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2, cp = p[0] & 0x1fu, min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3, cp = p[0] & 0x0fu, min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4, cp = p[0] & 0x07u, min = 0x10000;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)	/* the final NUL too */
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* s quoted, of any length.  Valid UTF-8 goes as it is, with JSON's escapes
 * for '"', '\\' and control characters; each byte of an invalid sequence
 * becomes \udcXX, Python's surrogateescape, so that json.loads() and
 * os.fsencode() give the bytes of any path back. */
static void quote(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p) {
		size_t n = utf8_len(p);

		if (n == 0)
			fprintf(f, "\\udc%02x", *p++);
		else if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p++);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p++);
		else
			fwrite(p, 1, n, f), p += n;
	}
	fputc('"', f);
}

/* The separator and lead of the next member, and its key. */
static void member(struct json *j, const char *key)
{
	if (j->n++)
		fputs(j->sep, j->f);
	fputs(j->lead, j->f);
	if (key) {
		quote(j->f, key);
		fputs(": ", j->f);
	}
}

void json_open(struct json *j, struct json *parent, const char *key,
	       FILE *f, char open, const char *lead, const char *sep,
	       const char *tail)
{
	if (parent) {
		member(parent, key);
		f = parent->f;
	}
	*j = (struct json){ f, lead, sep, tail, open == '{' ? '}' : ']', 0 };
	fputc(open, f);
}

void json_close(struct json *j)
{
	if (j->n)
		fputs(j->tail, j->f);
	fputc(j->close, j->f);
}

void json_null(struct json *j, const char *key)
{
	member(j, key);
	fputs("null", j->f);
}

void json_bool(struct json *j, const char *key, bool v)
{
	member(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	member(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void json_double(struct json *j, const char *key, double v, int decimals)
{
	member(j, key);
	fprintf(j->f, "%.*f", decimals, v);
}

void json_string(struct json *j, const char *key, const char *s)
{
	member(j, key);
	if (s)
		quote(j->f, s);
	else
		fputs("null", j->f);
}
