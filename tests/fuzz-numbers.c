/* fuzz-numbers.c - libFuzzer target for the kcopy tool's number parsers:
 * sizes with suffixes, SECTOR and COUNT fields, percentages, counts and
 * durations, and the size formatter.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * fuzz-sources: src/kcopy/spec.c src/kcopy/format.c
 * fuzz-options: -max_len=128
 *
 * Input: one control byte, then the string (cut at its first NUL).  The
 * control byte is kc_parse_uint's maximum (all ones if its top bit is set)
 * and, with the string's bytes, a size for kc_format_size.
 *
 * Every parser is checked against an independent reference written here
 * with 128-bit arithmetic (kc_parse_seconds against the decimal value read
 * another way); kc_format_size's text is read back and must be the size,
 * rounded to a tenth of its unit.  Built and run by tests/fuzz.sh (make
 * fuzz, make check).
 */
#include "fuzz.h"
#include "format.h"
#include "spec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

/* The leading decimal digits of s, capped at cap; *n gets their count. */
static u128 ref_digits(const char *s, size_t *n, u128 cap)
{
	u128 v = 0;
	size_t i = 0;

	while (s[i] >= '0' && s[i] <= '9') {
		v = v * 10 + (unsigned)(s[i] - '0');
		if (v > cap)
			v = cap;
		i++;
	}
	*n = i;
	return v;
}

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
	u128 v, mult = 1;
	size_t i;

	v = ref_digits(s, &i, cap);
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
}

/* kc_parse_uint's reference: digits only, at most max. */
static int ref_uint(const char *s, size_t n, unsigned long max,
		    unsigned long *out)
{
	size_t i;
	u128 v = 0;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
	for (i = 0; i < n; i++) {
		v = v * 10 + (unsigned)(s[i] - '0');
		if (v > max)
			return -ERANGE;
	}
	*out = (unsigned long)v;
	return 0;
}

static void fuzz_counts(const char *s, uint8_t ctl)
{
	unsigned long u = 0, ru = 0, max = ctl & 0x80 ? (unsigned long)-1 : ctl;
	size_t n = strlen(s);
	unsigned pct = 0;
	int r, rr;

	r = kc_parse_uint(s, max, &u);
	rr = ref_uint(s, n, max, &ru);
	CHECK(r == rr);
	if (r == 0)
		CHECK(u == ru && u <= max);

	/* a percentage: one optional trailing '%', 1..100 */
	if (n > 0 && s[n - 1] == '%')
		n--;
	r = kc_parse_percent(s, &pct);
	rr = ref_uint(s, n, 100, &ru);
	if (rr == 0 && ru == 0)
		rr = -ERANGE;
	CHECK(r == rr);
	if (r == 0)
		CHECK(pct == ru && pct >= 1 && pct <= 100);
}

/* kc_parse_seconds's reference: DIGITS[.DIGITS*] or .DIGITS, the value
 * cut after nine decimals, in nanoseconds. */
static int ref_seconds(const char *s, u128 *ns)
{
	const u128 cap = (u128)1 << 64;	/* times 10^9 still fits */
	size_t i, id, fd = 0;
	u128 ip, frac = 0;

	ip = ref_digits(s, &id, cap);
	i = id;
	if (s[i] == '.') {
		for (i++; s[i] >= '0' && s[i] <= '9'; i++, fd++)
			if (fd < 9)
				frac = frac * 10 + (unsigned)(s[i] - '0');
		for (size_t k = fd; k < 9; k++)
			frac *= 10;
	}
	if (s[i] != '\0' || id + fd == 0)
		return -EINVAL;
	*ns = ip * 1000000000u + frac;
	if (*ns == 0 || ip >= 1000000000u)
		return -ERANGE;
	return 0;
}

static void fuzz_seconds(const char *s)
{
	double secs = -1, want;
	u128 ns = 0;
	int r = kc_parse_seconds(s, &secs);
	int rr = ref_seconds(s, &ns);

	want = (double)ns / 1e9;
	/* Just below 10^9 s, the sum of the parts may round up to the
	 * limit, which is then -ERANGE: either answer is right. */
	if (rr == 0 && r == -ERANGE && want > 999999999.0)
		return;
	CHECK(r == rr);
	if (r == 0) {
		CHECK(secs > 0 && secs < 1e9);
		CHECK(secs - want <= want * 1e-15 && want - secs <= want * 1e-15);
	}
}

/* kc_format_size's text, read back: within half a tenth of its unit. */
static void fuzz_format(uint64_t bytes)
{
	static const char *const units[] = {
		"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"
	};
	char buf[KC_FORMAT_SIZE_LEN], small[8], unit[8];
	unsigned whole = 0, tenth = 0, k;
	u128 scaled, unit_bytes;
	int n;

	kc_format_size(bytes, buf, sizeof(buf));
	CHECK(strlen(buf) < sizeof(buf));
	if (bytes < 1024) {
		n = snprintf(small, sizeof(small), "%u B", (unsigned)bytes);
		CHECK(n > 0 && strcmp(buf, small) == 0);
		return;
	}
	CHECK(sscanf(buf, "%u.%u %7s", &whole, &tenth, unit) == 3);
	CHECK(tenth < 10);
	for (k = 1; k < 7; k++)
		if (strcmp(unit, units[k]) == 0)
			break;
	CHECK(k < 7);
	CHECK(whole < 1024 || k == 6);
	/* |bytes * 10 / 1024^k - shown tenths| <= 1/2 */
	unit_bytes = (u128)1 << (10 * k);
	scaled = (u128)whole * 10 + tenth;
	CHECK((u128)bytes * 20 <= (scaled * 2 + 1) * unit_bytes);
	CHECK((u128)bytes * 20 + unit_bytes >= scaled * 2 * unit_bytes);
	/* and the largest unit that keeps the value below 1024.0 */
	if (k > 1)
		CHECK(scaled >= 10);
}

/* A size for kc_format_size: the control byte picks how many bits. */
static uint64_t format_input(const uint8_t *data, size_t size)
{
	uint64_t v = 0;
	size_t i;

	for (i = 1; i < size && i <= 8; i++)
		v = v << 8 | data[i];
	return data[0] & 0x40 ? v : v >> (data[0] & 0x3f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t control;
	char *s = fuzz_control_string(data, size, &control);

	if (!s)
		return 0;
	fuzz_size(s);
	fuzz_counts(s, control);
	fuzz_seconds(s);
	fuzz_format(format_input(data, size));
	free(s);
	return 0;
}
