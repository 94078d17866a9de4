/* fuzz-spec.c - libFuzzer target for the kcopy tool's argument parsers.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Input: one control byte, then the string (cut at its first NUL).  Bit 0
 * of the control byte is the stub exists() answer for the whole argument.
 *
 * kc_parse_size is checked against an independent reference written here
 * with 128-bit arithmetic; kc_parse_sectors against the reference size;
 * kc_parse_spec against its documented structure (the path is a prefix of
 * the argument, the fields re-parse to the same numbers, and the result
 * re-formatted parses to the same result).  Build with
 * -fsanitize=fuzzer,address,undefined: see fuzz-spec.sh.
 */
#include "spec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: invariant failed: %s\n", \
				__FILE__, __LINE__, #cond);		\
			abort();					\
		}							\
	} while (0)

typedef unsigned __int128 u128;

/* The reference: what kc_parse_size must return, computed another way. */
static int ref_size(const char *s, uint64_t *bytes, int *suffixed)
{
	static const struct { const char *suf; unsigned base, power; } tab[] = {
		{ "K", 1024, 1 }, { "k", 1024, 1 }, { "KiB", 1024, 1 },
		{ "kiB", 1024, 1 }, { "KB", 1000, 1 }, { "kB", 1000, 1 },
		{ "M", 1024, 2 }, { "m", 1024, 2 }, { "MiB", 1024, 2 },
		{ "miB", 1024, 2 }, { "MB", 1000, 2 }, { "mB", 1000, 2 },
		{ "G", 1024, 3 }, { "g", 1024, 3 }, { "GiB", 1024, 3 },
		{ "giB", 1024, 3 }, { "GB", 1000, 3 }, { "gB", 1000, 3 },
		{ "T", 1024, 4 }, { "t", 1024, 4 }, { "TiB", 1024, 4 },
		{ "tiB", 1024, 4 }, { "TB", 1000, 4 }, { "tB", 1000, 4 },
		{ "P", 1024, 5 }, { "p", 1024, 5 }, { "PiB", 1024, 5 },
		{ "piB", 1024, 5 }, { "PB", 1000, 5 }, { "pB", 1000, 5 },
		{ "E", 1024, 6 }, { "e", 1024, 6 }, { "EiB", 1024, 6 },
		{ "eiB", 1024, 6 }, { "EB", 1000, 6 }, { "eB", 1000, 6 },
	};
	const u128 cap = (u128)1 << 65;	/* anything above 2^64 is -ERANGE */
	u128 v = 0, mult = 1;
	size_t i = 0;

	while (s[i] >= '0' && s[i] <= '9') {
		v = v * 10 + (unsigned)(s[i] - '0');
		if (v > cap)
			v = cap;
		i++;
	}
	if (i == 0)
		return -EINVAL;
	*suffixed = s[i] != '\0';
	if (*suffixed) {
		size_t k;

		for (k = 0; k < sizeof(tab) / sizeof(tab[0]); k++)
			if (strcmp(s + i, tab[k].suf) == 0)
				break;
		if (k == sizeof(tab) / sizeof(tab[0]))
			return -EINVAL;
		for (unsigned p = 0; p < tab[k].power; p++)
			mult *= tab[k].base;
	}
	v *= mult;	/* at most 2^65 * 2^60: fits */
	if (v > UINT64_MAX)
		return -ERANGE;
	*bytes = (uint64_t)v;
	return 0;
}

static void fuzz_size(const char *s)
{
	uint64_t bytes = 0, ref = 0, sectors = 0;
	int suf = -1, rsuf = -1;
	int r = kc_parse_size(s, &bytes, &suf);
	int rr = ref_size(s, &ref, &rsuf);
	char buf[KC_FORMAT_SIZE_LEN];
	size_t n;

	CHECK(r == rr);
	if (r == 0) {
		CHECK(bytes == ref);
		CHECK(suf == rsuf);
	}

	r = kc_parse_sectors(s, &sectors);
	CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
	if (rr != 0) {
		CHECK(r == rr);
	} else if (rsuf) {
		if (ref % 512) {
			CHECK(r == -EINVAL);
		} else {
			CHECK(r == 0);
			CHECK(sectors * 512 == ref);
		}
	} else if (ref > KC_MAX_SECTORS) {
		CHECK(r == -ERANGE);
	} else {
		CHECK(r == 0 && sectors == ref);
	}

	if (rr == 0) {
		kc_format_size(ref, buf, sizeof(buf));
		n = strlen(buf);
		CHECK(n >= 3 && n < sizeof(buf));
		CHECK(buf[n - 1] == 'B');
	}
}

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

static void fuzz_others(const char *s, uint8_t ctl)
{
	unsigned pct = 0;
	unsigned long u = 0, max = ctl & 0x80 ? (unsigned long)-1 : ctl;
	double secs = 0;
	int r;

	r = kc_parse_percent(s, &pct);
	CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
	if (r == 0)
		CHECK(pct >= 1 && pct <= 100);

	r = kc_parse_uint(s, max, &u);
	CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
	if (r == 0) {
		CHECK(u <= max);
		CHECK(strspn(s, "0123456789") == strlen(s));
	}

	r = kc_parse_seconds(s, &secs);
	CHECK(r == 0 || r == -EINVAL || r == -ERANGE);
	if (r == 0)
		CHECK(secs > 0 && secs < 1e9);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size == 0)
		return 0;
	s = malloc(size);	/* size - 1 bytes of string plus its NUL */
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';

	fuzz_size(s);
	fuzz_spec(s, data[0] & 1);
	fuzz_others(s, data[0]);
	free(s);
	return 0;
}
