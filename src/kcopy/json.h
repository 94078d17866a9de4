/* json.h - the one way the tool writes JSON (the report, --progress=json):
 * objects and arrays written member by member to a stdio stream, strings
 * escaped, numbers as the caller rounds them.  Prints nothing else.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A struct json is one object or array being written.  Its layout is the
 * caller's: lead is written before every member, sep between two, and at
 * the close tail after the last one (nothing when there were none):
 * "{" lead "a": 1 sep lead "b": 2 tail "}".  A member of an array has no
 * key (NULL).
 */
#ifndef KCOPY_JSON_H
#define KCOPY_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json {
	FILE *f;
	const char *lead, *sep, *tail;
	char close;			/* '}' or ']' */
	unsigned int n;			/* members written */
};

/* Begin an object ('{') or an array ('['), at the top or as member key
 * (NULL in an array) of parent (NULL at the top). */
void json_open(struct json *j, struct json *parent, const char *key,
	       FILE *f, char open, const char *lead, const char *sep,
	       const char *tail);
void json_close(struct json *j);

void json_null(struct json *j, const char *key);
void json_bool(struct json *j, const char *key, bool v);
void json_u64(struct json *j, const char *key, uint64_t v);
/* v with decimals digits after the point ("%.*f"). */
void json_double(struct json *j, const char *key, double v, int decimals);
/* s as a JSON string (null for NULL); see json.c for bytes that are not
 * UTF-8. */
void json_string(struct json *j, const char *key, const char *s);

#endif /* KCOPY_JSON_H */
