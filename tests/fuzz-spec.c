/* fuzz-spec.c - libFuzzer target for the kcopy tool's region spec parser,
 * PATH[:SECTOR[:COUNT]] (kc_parse_spec).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * fuzz-sources: src/kcopy/spec.c
 * fuzz-options: -max_len=512
 *
 * Input: one control byte, then the string (cut at its first NUL).  Bit 0
 * of the control byte is the stub exists() answer for the whole argument.
 *
 * kc_parse_spec is checked against its documented structure (the path is a
 * prefix of the argument, the fields re-parse to the same numbers, and the
 * result re-formatted parses to the same result).  The numbers inside are
 * fuzz-numbers.c's, the NBD URIs fuzz-uri.c's.  Built and run by
 * tests/fuzz.sh (make fuzz, make check).
 */
#include "fuzz.h"
#include "spec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stub {
	const char *arg;	/* the only path exists() may be asked about */
	int answer;
	int calls;
};

static int stub_exists(const char *path, void *ctx)
{
	struct stub *st = ctx;

	CHECK(strcmp(path, st->arg) == 0);
	st->calls++;
	return st->answer;
}

/* A field as kc_parse_spec must have read it. */
static void check_field(const char *s, size_t n, bool given, uint64_t want)
{
	char *f = strndup(s, n);
	uint64_t v = 0;

	CHECK(f != NULL);
	if (!given) {
		CHECK(n == 0);
	} else {
		CHECK(kc_parse_sectors(f, &v) == 0);
		CHECK(v == want);
	}
	free(f);
}

static void fuzz_spec(const char *s, int answer)
{
	struct stub st = { s, answer, 0 };
	struct stub none = { NULL, 0, 0 };
	struct kc_spec sp, again;
	const char *why = "unset", *why2;
	const char *rest, *colon;
	size_t plen, len = strlen(s);
	char *re;
	int r;

	memset(&sp, 0xa5, sizeof(sp));
	r = kc_parse_spec(s, stub_exists, &st, &sp, &why);
	CHECK(st.calls <= 1);
	if (r != 0) {
		CHECK(r == -EINVAL || r == -ERANGE);
		CHECK(why != NULL && *why != '\0');
		CHECK(sp.path == NULL);
		/* existing: no error (a URI is never asked about) */
		CHECK(!answer || !strchr(s, ':') || kc_uri_prefix(s));
		CHECK(!kc_uri_prefix(s) || st.calls == 0);
		CHECK(len == 0 || strchr(s, ':'));	/* no colon: no error */
		return;
	}
	CHECK(why == NULL);
	CHECK(sp.path != NULL && sp.path[0] != '\0');
	plen = strlen(sp.path);
	CHECK(plen <= len && memcmp(sp.path, s, plen) == 0);
	CHECK(plen >= kc_uri_prefix(s));	/* a URI keeps its authority */
	if ((answer && st.calls) || !strchr(s, ':'))
		CHECK(plen == len);
	if (plen == len) {
		CHECK(!sp.has_sector && !sp.has_count);
		CHECK(sp.sector == 0 && sp.count == 0);
		kc_spec_free(&sp);
		return;
	}
	CHECK(sp.has_sector || sp.has_count);
	CHECK(s[plen] == ':');
	CHECK(sp.sector <= KC_MAX_SECTORS);
	if (sp.has_count)
		CHECK(sp.count > 0 && sp.count <= KC_MAX_SECTORS - sp.sector);
	else
		CHECK(sp.count == 0);
	if (!sp.has_sector)
		CHECK(sp.sector == 0);

	/* the rest of the argument is SECTOR, SECTOR:COUNT or :COUNT */
	rest = s + plen + 1;
	colon = strchr(rest, ':');
	if (sp.has_count) {
		CHECK(colon != NULL && strchr(colon + 1, ':') == NULL);
		check_field(rest, (size_t)(colon - rest), sp.has_sector,
			    sp.sector);
		check_field(colon + 1, strlen(colon + 1), true, sp.count);
	} else {
		CHECK(colon == NULL);
		check_field(rest, strlen(rest), true, sp.sector);
	}

	/* formatted back in plain sectors, it reads the same */
	re = malloc(plen + 64);
	CHECK(re != NULL);
	if (sp.has_sector && sp.has_count)
		snprintf(re, plen + 64, "%s:%" PRIu64 ":%" PRIu64, sp.path,
			 sp.sector, sp.count);
	else if (sp.has_sector)
		snprintf(re, plen + 64, "%s:%" PRIu64, sp.path, sp.sector);
	else
		snprintf(re, plen + 64, "%s::%" PRIu64, sp.path, sp.count);
	none.arg = re;
	r = kc_parse_spec(re, stub_exists, &none, &again, &why2);
	CHECK(r == 0);
	CHECK(strcmp(again.path, sp.path) == 0);
	CHECK(again.has_sector == sp.has_sector && again.sector == sp.sector);
	CHECK(again.has_count == sp.has_count && again.count == sp.count);
	kc_spec_free(&again);
	free(re);
	kc_spec_free(&sp);
	CHECK(sp.path == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t control;
	char *s = fuzz_control_string(data, size, &control);

	if (!s)
		return 0;
	fuzz_spec(s, control & 1);
	free(s);
	return 0;
}
