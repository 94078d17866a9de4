/* fuzz-uri.c - libFuzzer target for the kcopy tool's NBD URI splitter:
 * where an NBD URI's scheme and authority end (kc_uri_prefix), and how a
 * URI followed by :SECTOR[:COUNT] splits (kc_parse_spec).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * fuzz-sources: src/kcopy/spec.c
 * fuzz-options: -max_len=256
 *
 * Input: one control byte, then the text (cut at its first NUL).  The
 * control byte picks a scheme put before the text (nbd://, nbds://,
 * nbd+unix://, nbds+unix://, nbd+vsock://, nbds+vsock://, none, or the
 * near miss "nbd:/"), so that the fuzzer spends its time after it.
 *
 * What the URI itself means (host, port, export, query) is libnbd's to
 * parse, not ours: only our splitting is fuzzed.  Checked:
 *  - kc_uri_prefix is non-zero exactly for the six schemes and ends the
 *    authority at '/', '?', '#', the end, or a colon that follows
 *    [userinfo@]host[:port] (host a name or an [IPv6] literal);
 *  - kc_parse_spec never asks whether a URI exists, and the path it
 *    returns keeps the whole scheme and authority;
 *  - a URI that kc_parse_spec takes whole, followed by :SECTOR,
 *    :SECTOR:COUNT or ::COUNT, splits back into that URI and those fields
 *    (unless the URI ends in an authority without a port: then the colon
 *    would be the port's, as in nbd://host:2048).
 * Built and run by tests/fuzz.sh (make fuzz, make check).
 */
#include "fuzz.h"
#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const schemes[] = {
	"nbd://", "nbds://", "nbd+unix://", "nbds+unix://", "nbd+vsock://",
	"nbds+vsock://", "", "nbd:/",
};

static int no_exists(const char *path, void *ctx)
{
	(void)path;
	(void)ctx;
	CHECK(!"kc_parse_spec asked whether a URI exists");
	return 0;
}

static int any_exists(const char *path, void *ctx)
{
	int *calls = ctx;

	(void)path;
	(*calls)++;
	return 1;
}

/* The length of the scheme arg starts with, 0 if none of the six. */
static size_t scheme_len(const char *arg)
{
	size_t i, n;

	for (i = 0; i < 6; i++) {
		n = strlen(schemes[i]);
		if (strncmp(arg, schemes[i], n) == 0)
			return n;
	}
	return 0;
}

/* Whether the n bytes at h (an authority without its userinfo) are
 * host[:port]: host a name without a colon or an [IPv6] literal, the port
 * without a colon. */
static bool is_host_port(const char *h, size_t n)
{
	const char *close = h[0] == '[' ? memchr(h, ']', n) : NULL;
	size_t i = close ? (size_t)(close - h) + 1 : 0;

	while (i < n && h[i] != ':')
		i++;
	if (i == n)
		return true;
	return memchr(h + i + 1, ':', n - i - 1) == NULL;
}

/* Whether the authority (after its userinfo) has a port separator. */
static bool has_port(const char *h, size_t n)
{
	const char *close = h[0] == '[' ? memchr(h, ']', n) : NULL;
	size_t i = close ? (size_t)(close - h) + 1 : 0;

	return memchr(h + i, ':', n - i) != NULL;
}

/* The start of the host: after the last '@' of the n bytes at a. */
static const char *host_of(const char *a, size_t n)
{
	const char *h = a;
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] == '@')
			h = a + i + 1;
	return h;
}

static void check_prefix(const char *arg)
{
	size_t len = strlen(arg), sl = scheme_len(arg);
	size_t p = kc_uri_prefix(arg), end;
	const char *h;

	if (sl == 0) {
		CHECK(p == 0);
		return;
	}
	CHECK(p >= sl && p <= len);
	end = sl + strcspn(arg + sl, "/?#");
	CHECK(p <= end);	/* the authority ends at '/', '?' or '#' */
	h = host_of(arg + sl, end - sl);
	if (p == end) {
		/* host[:port] ... unless it ended early */
		CHECK(h == arg + end || is_host_port(h, (size_t)(arg + end - h)));
		return;
	}
	/* ended early: at the colon after host:port */
	CHECK(arg[p] == ':');
	CHECK(h <= arg + p);	/* the userinfo is all before it */
	CHECK(has_port(h, (size_t)(arg + p - h)));
	CHECK(is_host_port(h, (size_t)(arg + p - h)));
}

/* arg followed by fields must parse to arg and those fields. */
static void check_appended(const char *arg, const char *fields,
			   bool has_sector, uint64_t sector, bool has_count,
			   uint64_t count)
{
	size_t len = strlen(arg) + strlen(fields) + 1;
	struct kc_spec sp;
	const char *why = NULL;
	char *s = malloc(len);
	int r;

	CHECK(s != NULL);
	snprintf(s, len, "%s%s", arg, fields);
	r = kc_parse_spec(s, no_exists, NULL, &sp, &why);
	if (r != 0)
		fprintf(stderr, "'%s': %s\n", s, why);
	CHECK(r == 0);
	CHECK(strcmp(sp.path, arg) == 0);
	CHECK(sp.has_sector == has_sector && sp.sector == sector);
	CHECK(sp.has_count == has_count && sp.count == count);
	kc_spec_free(&sp);
	free(s);
}

static void check_spec(const char *arg)
{
	size_t len = strlen(arg), p = kc_uri_prefix(arg), end, plen;
	struct kc_spec sp;
	const char *why = NULL, *tail, *h;
	int calls = 0, r;

	tail = kc_spec_numeric_tail(arg);
	CHECK(!tail || (tail > arg && tail <= arg + len && tail[-1] == ':'));

	if (p == 0) {
		/* not a URI: only whole arguments are asked about */
		r = kc_parse_spec(arg, any_exists, &calls, &sp, &why);
		CHECK(calls <= 1);
		if (r == 0)
			kc_spec_free(&sp);
		return;
	}
	r = kc_parse_spec(arg, no_exists, NULL, &sp, &why);
	if (r != 0) {
		CHECK(r == -EINVAL || r == -ERANGE);
		CHECK(why != NULL && sp.path == NULL);
		return;
	}
	plen = strlen(sp.path);
	CHECK(plen >= p && plen <= len && memcmp(sp.path, arg, plen) == 0);
	kc_spec_free(&sp);
	if (plen != len)
		return;

	/* taken whole: fields after it come back as they were given */
	end = scheme_len(arg) + strcspn(arg + scheme_len(arg), "/?#");
	h = host_of(arg + scheme_len(arg), end - scheme_len(arg));
	if (end == len && !has_port(h, (size_t)(arg + end - h)))
		return;	/* "nbd://host" + ":2048" is port 2048 */
	check_appended(arg, ":2048", true, 2048, false, 0);
	check_appended(arg, ":0:16", true, 0, true, 16);
	check_appended(arg, ":1M:1G", true, 2048, true, 2097152);
	check_appended(arg, "::8", false, 0, true, 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *scheme;
	size_t sl;
	char *s;

	if (size == 0)
		return 0;
	scheme = schemes[data[0] & 7];
	sl = strlen(scheme);
	s = malloc(sl + size);	/* scheme, size - 1 bytes, NUL */
	if (!s)
		return 0;
	memcpy(s, scheme, sl);
	memcpy(s + sl, data + 1, size - 1);
	s[sl + size - 1] = '\0';

	check_prefix(s);
	check_spec(s);
	free(s);
	return 0;
}
