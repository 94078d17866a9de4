/* test-spec.c - unit tests of the kcopy tool's argument parsers (spec.c).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * No file system access: kc_parse_spec is given a stub exists() callback.
 * Prints every failing case, then "N passed, N failed"; exits 1 on failure.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include "format.h"
#include "spec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned passed, failed;

static void check(bool ok, const char *what, const char *input,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void check(bool ok, const char *what, const char *input,
		  const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		passed++;
		return;
	}
	failed++;
	fprintf(stderr, "FAIL: %s(\"%s\"): ", what, input);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ------------------------------------------------------------- sizes */

struct size_case {
	const char *s;
	int ret;
	uint64_t bytes;
	int suffix;
};

#define KI UINT64_C(1024)
#define KD UINT64_C(1000)

static const struct size_case size_cases[] = {
	{ "0", 0, 0, 0 },
	{ "1", 0, 1, 0 },
	{ "512", 0, 512, 0 },
	{ "0010", 0, 10, 0 },
	{ "18446744073709551615", 0, UINT64_MAX, 0 },
	{ "18446744073709551616", -ERANGE, 0, 0 },
	{ "20000000000000000000", -ERANGE, 0, 0 },
	{ "99999999999999999999999999999999", -ERANGE, 0, 0 },
	/* binary, every spelling */
	{ "1K", 0, KI, 1 }, { "1k", 0, KI, 1 }, { "1KiB", 0, KI, 1 },
	{ "1kiB", 0, KI, 1 },
	{ "3M", 0, 3 * KI * KI, 1 }, { "3m", 0, 3 * KI * KI, 1 },
	{ "3MiB", 0, 3 * KI * KI, 1 },
	{ "2G", 0, 2 * KI * KI * KI, 1 }, { "2g", 0, 2 * KI * KI * KI, 1 },
	{ "2GiB", 0, 2 * KI * KI * KI, 1 },
	{ "5T", 0, 5 * KI * KI * KI * KI, 1 },
	{ "5t", 0, 5 * KI * KI * KI * KI, 1 },
	{ "5TiB", 0, 5 * KI * KI * KI * KI, 1 },
	{ "7P", 0, 7 * KI * KI * KI * KI * KI, 1 },
	{ "7p", 0, 7 * KI * KI * KI * KI * KI, 1 },
	{ "7PiB", 0, 7 * KI * KI * KI * KI * KI, 1 },
	{ "15E", 0, 15 * KI * KI * KI * KI * KI * KI, 1 },
	{ "15e", 0, 15 * KI * KI * KI * KI * KI * KI, 1 },
	{ "15EiB", 0, 15 * KI * KI * KI * KI * KI * KI, 1 },
	{ "0K", 0, 0, 1 },
	/* decimal, dd-compatible */
	{ "1KB", 0, KD, 1 }, { "1kB", 0, KD, 1 },
	{ "1MB", 0, KD * KD, 1 }, { "1GB", 0, KD * KD * KD, 1 },
	{ "1TB", 0, KD * KD * KD * KD, 1 },
	{ "1PB", 0, KD * KD * KD * KD * KD, 1 },
	{ "18EB", 0, 18 * KD * KD * KD * KD * KD * KD, 1 },
	{ "19EB", -ERANGE, 0, 0 },
	/* overflow by suffix */
	{ "16E", -ERANGE, 0, 0 },
	{ "16EiB", -ERANGE, 0, 0 },
	{ "16384P", -ERANGE, 0, 0 },
	{ "16383P", 0, 16383 * KI * KI * KI * KI * KI, 1 },
	{ "17179869184T", -ERANGE, 0, 0 },
	/* malformed */
	{ "", -EINVAL, 0, 0 },
	{ "-1", -EINVAL, 0, 0 },
	{ "+1", -EINVAL, 0, 0 },
	{ " 1", -EINVAL, 0, 0 },
	{ "1 ", -EINVAL, 0, 0 },
	{ "1 K", -EINVAL, 0, 0 },
	{ "1x", -EINVAL, 0, 0 },
	{ "0x10", -EINVAL, 0, 0 },
	{ "1.5K", -EINVAL, 0, 0 },
	{ "1e3", -EINVAL, 0, 0 },
	{ "K", -EINVAL, 0, 0 },
	{ "KiB", -EINVAL, 0, 0 },
	{ "512B", -EINVAL, 0, 0 },
	{ "1b", -EINVAL, 0, 0 },
	{ "1c", -EINVAL, 0, 0 },
	{ "1w", -EINVAL, 0, 0 },
	{ "1Kb", -EINVAL, 0, 0 },
	{ "1KIB", -EINVAL, 0, 0 },
	{ "1Kib", -EINVAL, 0, 0 },
	{ "1KiBB", -EINVAL, 0, 0 },
	{ "1KK", -EINVAL, 0, 0 },
	{ "1Z", -EINVAL, 0, 0 },
	{ "1Y", -EINVAL, 0, 0 },
	/* syntax is judged before range */
	{ "99999999999999999999x", -EINVAL, 0, 0 },
};

static void test_sizes(void)
{
	for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
		const struct size_case *c = &size_cases[i];
		uint64_t bytes = 0xdeadbeef;
		int suf = -1;
		int r = kc_parse_size(c->s, &bytes, &suf);

		check(r == c->ret, "kc_parse_size", c->s,
		      "returned %d, want %d", r, c->ret);
		if (r || c->ret)
			continue;
		check(bytes == c->bytes, "kc_parse_size", c->s,
		      "bytes %" PRIu64 ", want %" PRIu64, bytes, c->bytes);
		check(suf == c->suffix, "kc_parse_size", c->s,
		      "had_suffix %d, want %d", suf, c->suffix);
	}
	/* had_suffix may be NULL; output untouched on error */
	{
		uint64_t b = 7;
		int r = kc_parse_size("4K", &b, NULL);

		check(r == 0 && b == 4096, "kc_parse_size", "4K",
		      "with NULL had_suffix: %d %" PRIu64, r, b);
		b = 7;
		r = kc_parse_size("4X", &b, NULL);
		check(r == -EINVAL && b == 7, "kc_parse_size", "4X",
		      "output touched on error: %d %" PRIu64, r, b);
		r = kc_parse_size(NULL, &b, NULL);
		check(r == -EINVAL, "kc_parse_size", "(null)", "returned %d", r);
	}
}

/* ----------------------------------------------------------- sectors */

struct sectors_case {
	const char *s;
	int ret;
	uint64_t sectors;
};

static const struct sectors_case sectors_cases[] = {
	{ "0", 0, 0 },
	{ "8", 0, 8 },
	{ "1000", 0, 1000 },		/* plain: sectors, any value */
	{ "2048", 0, 2048 },
	{ "1K", 0, 2 },			/* suffixed: bytes */
	{ "512K", 0, 1024 },
	{ "1M", 0, 2048 },
	{ "1MiB", 0, 2048 },
	{ "2G", 0, 4194304 },
	{ "1T", 0, UINT64_C(2147483648) },
	{ "1E", 0, UINT64_C(1) << 51 },
	{ "15E", 0, UINT64_C(15) << 51 },
	{ "1KB", -EINVAL, 0 },		/* 1000 bytes */
	{ "1MB", -EINVAL, 0 },		/* 10^6 = 2^6 * 5^6 */
	{ "1GB", 0, 1953125 },		/* 10^9 = 512 * 1953125 */
	{ "3kB", -EINVAL, 0 },
	{ "0K", 0, 0 },
	{ "36028797018963967", 0, UINT64_MAX / 512 },
	{ "36028797018963968", -ERANGE, 0 },	/* bytes would overflow */
	{ "20000000000000000000", -ERANGE, 0 },
	{ "16E", -ERANGE, 0 },
	{ "", -EINVAL, 0 },
	{ "-1", -EINVAL, 0 },
	{ " 1", -EINVAL, 0 },
	{ "1x", -EINVAL, 0 },
	{ "0x10", -EINVAL, 0 },
	{ "1.5K", -EINVAL, 0 },
	{ "512B", -EINVAL, 0 },
};

static void test_sectors(void)
{
	for (size_t i = 0; i < sizeof(sectors_cases) / sizeof(sectors_cases[0]);
	     i++) {
		const struct sectors_case *c = &sectors_cases[i];
		uint64_t sec = 0xdeadbeef;
		int r = kc_parse_sectors(c->s, &sec);

		check(r == c->ret, "kc_parse_sectors", c->s,
		      "returned %d, want %d", r, c->ret);
		if (r == 0 && c->ret == 0)
			check(sec == c->sectors, "kc_parse_sectors", c->s,
			      "sectors %" PRIu64 ", want %" PRIu64,
			      sec, c->sectors);
		if (r != 0)
			check(sec == 0xdeadbeef, "kc_parse_sectors", c->s,
			      "output touched on error");
	}
}

/* ------------------------------------------------------------- specs */

/* The stub file system: a NULL-terminated list of existing paths. */
static int stub_exists(const char *path, void *ctx)
{
	const char *const *names = ctx;

	for (; names && *names; names++)
		if (strcmp(*names, path) == 0)
			return 1;
	return 0;
}

#define BYPATH "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"

static const char *const fs_none[] = { NULL };
static const char *const fs_bypath[] = { BYPATH, NULL };
static const char *const fs_all[] = {
	BYPATH, "img", "img:", "img:8", ":8", "a:b:c", NULL
};

struct spec_case {
	const char *arg;
	const char *const *fs;
	int ret;
	const char *path;	/* on success */
	bool has_sector;
	uint64_t sector;
	bool has_count;
	uint64_t count;
	const char *why;	/* on failure */
};

#define OK(a, fs, p, hs, s, hc, c) { a, fs, 0, p, hs, s, hc, c, NULL }
#define BAD(a, fs, e, w) { a, fs, e, NULL, false, 0, false, 0, w }

static const struct spec_case spec_cases[] = {
	/* NBD URIs: the scheme's and the authority's colons are the URI's */
	OK("nbd://host:10809", fs_all, "nbd://host:10809", false, 0, false, 0),
	OK("nbd://host:10809/", fs_none, "nbd://host:10809/", false, 0, false, 0),
	OK("nbd://h:10809/disk:2048", fs_none, "nbd://h:10809/disk", true,
	   2048, false, 0),
	OK("nbd://[::1]:10809/d:8:16", fs_none, "nbd://[::1]:10809/d", true, 8,
	   true, 16),
	OK("nbds://host/", fs_none, "nbds://host/", false, 0, false, 0),
	OK("nbd+unix:///?socket=/tmp/a:b.sock", fs_none,
	   "nbd+unix:///?socket=/tmp/a:b.sock", false, 0, false, 0),
	OK("nbd+unix:///e?socket=/tmp/s.sock:1M:8", fs_none,
	   "nbd+unix:///e?socket=/tmp/s.sock", true, 2048, true, 8),
	BAD("nbd://host:10809/:", fs_none, -EINVAL, "empty SECTOR field"),
	/* after a port, a colon starts the fields (found by fuzz-uri) */
	OK("nbd://host:10809:2048", fs_all, "nbd://host:10809", true, 2048,
	   false, 0),
	OK("nbd://host:10809:8:16", fs_none, "nbd://host:10809", true, 8,
	   true, 16),
	OK("nbd://[::1]:10809:1M", fs_none, "nbd://[::1]:10809", true, 2048,
	   false, 0),
	OK("nbds://alice:pw@host:10809::8", fs_none,
	   "nbds://alice:pw@host:10809", false, 0, true, 8),
	OK("nbd://host:2048", fs_none, "nbd://host:2048", false, 0, false, 0),
	OK("nbd://[::1]:10809", fs_none, "nbd://[::1]:10809", false, 0, false,
	   0),
	OK("img", fs_none, "img", false, 0, false, 0),
	OK("img", fs_all, "img", false, 0, false, 0),
	OK("img:8", fs_none, "img", true, 8, false, 0),
	OK("img:8:16", fs_none, "img", true, 8, true, 16),
	OK("img:0:1", fs_none, "img", true, 0, true, 1),
	OK("img:1M:2M", fs_none, "img", true, 2048, true, 4096),
	OK("img:1MiB:2GiB", fs_none, "img", true, 2048, true, 4194304),
	OK("img:1K", fs_none, "img", true, 2, false, 0),
	OK("img::16", fs_none, "img", false, 0, true, 16),
	OK("img::1M", fs_none, "img", false, 0, true, 2048),
	OK("/dev/sdb:2048:4096", fs_none, "/dev/sdb", true, 2048, true, 4096),
	/* colons in an existing path */
	OK(BYPATH, fs_bypath, BYPATH, false, 0, false, 0),
	OK(BYPATH ":2048", fs_bypath, BYPATH, true, 2048, false, 0),
	OK(BYPATH ":2048:8", fs_bypath, BYPATH, true, 2048, true, 8),
	OK(BYPATH ":1M:1M", fs_none, BYPATH, true, 2048, true, 2048),
	/* does not exist and "2-ata-1" is no number: still the whole path */
	OK(BYPATH, fs_none, BYPATH, false, 0, false, 0),
	/* the whole argument exists: no spec reading at all */
	OK("img:8", fs_all, "img:8", false, 0, false, 0),
	OK("img:", fs_all, "img:", false, 0, false, 0),
	OK(":8", fs_all, ":8", false, 0, false, 0),
	/* nothing parses: the whole thing is a path */
	OK("a:b:c", fs_none, "a:b:c", false, 0, false, 0),
	OK("a:b:c", fs_all, "a:b:c", false, 0, false, 0),
	OK("x:1.5K", fs_none, "x:1.5K", false, 0, false, 0),
	OK("x:0x10", fs_none, "x:0x10", false, 0, false, 0),
	OK("x:-1", fs_none, "x:-1", false, 0, false, 0),
	OK("x:8:-1", fs_none, "x:8:-1", false, 0, false, 0),
	OK("x: 8", fs_none, "x: 8", false, 0, false, 0),
	OK("x:512B", fs_none, "x:512B", false, 0, false, 0),
	/* middle field not a number: PATH:SECTOR with a colon in PATH */
	OK("a:b:8", fs_none, "a:b", true, 8, false, 0),
	OK("a:1.5K:8", fs_none, "a:1.5K", true, 8, false, 0),
	OK(":a:8", fs_none, ":a", true, 8, false, 0),
	/* more colons than fields */
	OK("a:b:c:8:16", fs_none, "a:b:c", true, 8, true, 16),
	OK("a::8:16", fs_none, "a:", true, 8, true, 16),
	OK("a:::16", fs_none, "a:", false, 0, true, 16),
	/* ambiguous: prefer the spec reading */
	OK("backup-12:30:15", fs_none, "backup-12", true, 30, true, 15),
	/* limits */
	OK("img:0:36028797018963967", fs_none, "img", true, 0, true,
	   UINT64_MAX / 512),
	OK("img:36028797018963967", fs_none, "img", true, UINT64_MAX / 512,
	   false, 0),
	OK("img:36028797018963966:1", fs_none, "img", true,
	   UINT64_MAX / 512 - 1, true, 1),
	/* errors */
	BAD("", fs_none, -EINVAL, "empty argument"),
	BAD("img:", fs_none, -EINVAL, "empty SECTOR field"),
	BAD("a:b:", fs_none, -EINVAL, "empty SECTOR field"),
	BAD(":", fs_none, -EINVAL, "empty SECTOR field"),
	BAD("img:8:", fs_none, -EINVAL, "empty COUNT field"),
	BAD("img::", fs_none, -EINVAL, "empty COUNT field"),
	BAD(BYPATH ":", fs_bypath, -EINVAL, "empty SECTOR field"),
	BAD(":8", fs_none, -EINVAL, "empty PATH"),
	BAD(":8:16", fs_none, -EINVAL, "empty PATH"),
	BAD("::16", fs_none, -EINVAL, "empty PATH"),
	BAD("img:1KB", fs_none, -EINVAL,
	    "SECTOR is not a multiple of 512 bytes"),
	BAD("img:1000:1KB", fs_none, -EINVAL,
	    "COUNT is not a multiple of 512 bytes"),
	BAD("img:1KB:8", fs_none, -EINVAL,
	    "SECTOR is not a multiple of 512 bytes"),
	BAD("img:8:0", fs_none, -EINVAL, "COUNT is zero"),
	BAD("img::0K", fs_none, -EINVAL, "COUNT is zero"),
	BAD("backup-12:30:00", fs_none, -EINVAL, "COUNT is zero"),
	BAD("img:20000000000000000000", fs_none, -ERANGE,
	    "SECTOR is too large"),
	BAD("img:16E", fs_none, -ERANGE, "SECTOR is too large"),
	BAD("img:36028797018963968", fs_none, -ERANGE, "SECTOR is too large"),
	BAD("img:0:20000000000000000000", fs_none, -ERANGE,
	    "COUNT is too large"),
	BAD("img:16E:1", fs_none, -ERANGE, "SECTOR is too large"),
	BAD("img:36028797018963967:1", fs_none, -ERANGE,
	    "SECTOR+COUNT is too large"),
	BAD("img:8E:8E", fs_none, -ERANGE, "SECTOR+COUNT is too large"),
};

static void test_specs(void)
{
	for (size_t i = 0; i < sizeof(spec_cases) / sizeof(spec_cases[0]); i++) {
		const struct spec_case *c = &spec_cases[i];
		struct kc_spec sp;
		const char *why = "unset";
		int r;

		memset(&sp, 0x5a, sizeof(sp));
		r = kc_parse_spec(c->arg, stub_exists, (void *)c->fs, &sp, &why);
		check(r == c->ret, "kc_parse_spec", c->arg,
		      "returned %d (%s), want %d", r, why ? why : "no why",
		      c->ret);
		if (r != 0) {
			check(sp.path == NULL, "kc_parse_spec", c->arg,
			      "path not NULL after an error");
			check(why && c->why && strcmp(why, c->why) == 0,
			      "kc_parse_spec", c->arg, "why \"%s\", want \"%s\"",
			      why ? why : "(null)", c->why ? c->why : "(null)");
			continue;
		}
		check(why == NULL, "kc_parse_spec", c->arg,
		      "why not NULL on success: %s", why);
		if (c->ret != 0) {
			kc_spec_free(&sp);
			continue;
		}
		check(sp.path && strcmp(sp.path, c->path) == 0, "kc_parse_spec",
		      c->arg, "path \"%s\", want \"%s\"",
		      sp.path ? sp.path : "(null)", c->path);
		check(sp.has_sector == c->has_sector && sp.sector == c->sector,
		      "kc_parse_spec", c->arg,
		      "sector %d/%" PRIu64 ", want %d/%" PRIu64,
		      sp.has_sector, sp.sector, c->has_sector, c->sector);
		check(sp.has_count == c->has_count && sp.count == c->count,
		      "kc_parse_spec", c->arg,
		      "count %d/%" PRIu64 ", want %d/%" PRIu64,
		      sp.has_count, sp.count, c->has_count, c->count);
		kc_spec_free(&sp);
		check(sp.path == NULL, "kc_spec_free", c->arg, "path not reset");
		kc_spec_free(&sp);	/* twice is fine */
	}

	/* NULL exists callback: nothing exists; NULL why is allowed */
	{
		struct kc_spec sp;
		int r = kc_parse_spec(BYPATH ":8", NULL, NULL, &sp, NULL);

		check(r == 0 && strcmp(sp.path, BYPATH) == 0 && sp.sector == 8,
		      "kc_parse_spec", BYPATH ":8", "with NULL exists: %d", r);
		if (r == 0)
			kc_spec_free(&sp);
		r = kc_parse_spec("img:", NULL, NULL, &sp, NULL);
		check(r == -EINVAL && sp.path == NULL, "kc_parse_spec", "img:",
		      "with NULL why: %d", r);
		r = kc_parse_spec(NULL, NULL, NULL, &sp, NULL);
		check(r == -EINVAL, "kc_parse_spec", "(null)", "returned %d", r);
		kc_spec_free(NULL);
	}

	/* exists() is only asked about the whole argument */
	{
		struct kc_spec sp;
		const char *why;
		int r = kc_parse_spec("img:8", stub_exists, (void *)fs_none,
				      &sp, &why);

		check(r == 0 && strcmp(sp.path, "img") == 0, "kc_parse_spec",
		      "img:8", "returned %d", r);
		if (r == 0)
			kc_spec_free(&sp);
	}
}

/* ------------------------------------------------- percent, uint, secs */

static void test_percent(void)
{
	static const struct { const char *s; int ret; unsigned v; } cases[] = {
		{ "1", 0, 1 }, { "50", 0, 50 }, { "100", 0, 100 },
		{ "50%", 0, 50 }, { "100%", 0, 100 }, { "007", 0, 7 },
		{ "0", -ERANGE, 0 }, { "0%", -ERANGE, 0 },
		{ "101", -ERANGE, 0 }, { "1000", -ERANGE, 0 },
		{ "99999999999999999999999", -ERANGE, 0 },
		{ "", -EINVAL, 0 }, { "%", -EINVAL, 0 }, { "-5", -EINVAL, 0 },
		{ "+5", -EINVAL, 0 }, { " 5", -EINVAL, 0 }, { "5 ", -EINVAL, 0 },
		{ "5%%", -EINVAL, 0 }, { "50.5", -EINVAL, 0 },
		{ "5K", -EINVAL, 0 }, { "%5", -EINVAL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned v = 12345;
		int r = kc_parse_percent(cases[i].s, &v);

		check(r == cases[i].ret, "kc_parse_percent", cases[i].s,
		      "returned %d, want %d", r, cases[i].ret);
		if (r == 0 && cases[i].ret == 0)
			check(v == cases[i].v, "kc_parse_percent", cases[i].s,
			      "value %u, want %u", v, cases[i].v);
	}
}

static void test_uint(void)
{
	static const struct {
		const char *s; unsigned long max; int ret; unsigned long v;
	} cases[] = {
		{ "0", 10, 0, 0 }, { "10", 10, 0, 10 }, { "11", 10, -ERANGE, 0 },
		{ "100", 10, -ERANGE, 0 }, { "0", 0, 0, 0 },
		{ "1", 0, -ERANGE, 0 }, { "9", 5, -ERANGE, 0 },
		{ "1024", 1UL << 20, 0, 1024 }, { "00042", 100, 0, 42 },
		{ "18446744073709551615", (unsigned long)-1, 0,
		  (unsigned long)-1 },
		{ "18446744073709551616", (unsigned long)-1, -ERANGE, 0 },
		{ "", 10, -EINVAL, 0 }, { "-1", 10, -EINVAL, 0 },
		{ "+1", 10, -EINVAL, 0 }, { " 1", 10, -EINVAL, 0 },
		{ "1K", 10000, -EINVAL, 0 }, { "0x1", 10, -EINVAL, 0 },
		{ "1.0", 10, -EINVAL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned long v = 12345;
		int r = kc_parse_uint(cases[i].s, cases[i].max, &v);

		/* the ULONG_MAX cases only hold where long is 64 bits */
		if (sizeof(long) < 8 && strlen(cases[i].s) >= 20)
			continue;
		check(r == cases[i].ret, "kc_parse_uint", cases[i].s,
		      "max %lu: returned %d, want %d", cases[i].max, r,
		      cases[i].ret);
		if (r == 0 && cases[i].ret == 0)
			check(v == cases[i].v, "kc_parse_uint", cases[i].s,
			      "value %lu, want %lu", v, cases[i].v);
	}
}

static void test_seconds(void)
{
	static const struct { const char *s; int ret; double v; } cases[] = {
		{ "2", 0, 2.0 }, { "0.5", 0, 0.5 }, { ".25", 0, 0.25 },
		{ "3.", 0, 3.0 }, { "1.000000001", 0, 1.000000001 },
		{ "0.1234567891234", 0, 0.123456789 },
		{ "999999999", 0, 999999999.0 }, { "007.5", 0, 7.5 },
		{ "0", -ERANGE, 0 }, { "0.0", -ERANGE, 0 },
		{ "0.0000000001", -ERANGE, 0 }, { "1000000000", -ERANGE, 0 },
		{ "99999999999999999999999", -ERANGE, 0 },
		{ "999999999.999999999", -ERANGE, 0 },	/* rounds to 1e9 */
		{ "", -EINVAL, 0 }, { ".", -EINVAL, 0 }, { "-1", -EINVAL, 0 },
		{ "+1", -EINVAL, 0 }, { " 1", -EINVAL, 0 }, { "1 ", -EINVAL, 0 },
		{ "1e3", -EINVAL, 0 }, { "inf", -EINVAL, 0 },
		{ "nan", -EINVAL, 0 }, { "0x1p3", -EINVAL, 0 },
		{ "1,5", -EINVAL, 0 }, { "1.2.3", -EINVAL, 0 },
		{ "1s", -EINVAL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double v = -1;
		int r = kc_parse_seconds(cases[i].s, &v);

		check(r == cases[i].ret, "kc_parse_seconds", cases[i].s,
		      "returned %d, want %d", r, cases[i].ret);
		if (r == 0 && cases[i].ret == 0) {
			double d = v - cases[i].v;

			check(d < 1e-12 && d > -1e-12, "kc_parse_seconds",
			      cases[i].s, "value %.12g, want %.12g", v,
			      cases[i].v);
		}
	}
}

/* ------------------------------------------------------ format_size */

static void test_format(void)
{
	static const struct { uint64_t b; const char *want; } cases[] = {
		{ 0, "0 B" }, { 1, "1 B" }, { 512, "512 B" },
		{ 1023, "1023 B" }, { 1024, "1.0 KiB" }, { 1536, "1.5 KiB" },
		{ 1075, "1.0 KiB" }, { 1076, "1.1 KiB" },
		{ 1048575, "1.0 MiB" }, { 1048576, "1.0 MiB" },
		{ 1048576 - 52, "1023.9 KiB" },
		{ UINT64_C(3) << 29, "1.5 GiB" },
		{ UINT64_C(1) << 40, "1.0 TiB" },
		{ UINT64_C(5) << 50, "5.0 PiB" },
		{ UINT64_C(1) << 60, "1.0 EiB" },
		{ UINT64_MAX, "16.0 EiB" },
	};
	char buf[KC_FORMAT_SIZE_LEN], small[4];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = kc_format_size(cases[i].b, buf, sizeof(buf));

		check(p == buf && strcmp(buf, cases[i].want) == 0,
		      "kc_format_size", cases[i].want, "got \"%s\"", buf);
	}
	kc_format_size(UINT64_C(3) << 29, small, sizeof(small));
	check(strcmp(small, "1.5") == 0, "kc_format_size", "1.5 GiB",
	      "truncated to \"%s\"", small);
}

/* kc_spec_numeric_tail: the tail after the last colon when it was meant
 * as a number but is not one. */
static void test_numeric_tail(void)
{
	static const struct { const char *arg, *tail; } cases[] = {
		{ "img:0:1Ki", "1Ki" }, { "img:1Ki", "1Ki" },
		{ "x:1.5K", "1.5K" }, { "x:512B", "512B" }, { "x:0x10", "0x10" },
		{ "img:0:1K", NULL }, { "img:8", NULL }, { "a:b:c", NULL },
		{ "img", NULL }, { "x:-1", NULL }, { "img:", NULL },
		{ "backup-12:30:00", NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = kc_spec_numeric_tail(cases[i].arg);
		bool ok = cases[i].tail ? got && !strcmp(got, cases[i].tail)
					: !got;

		check(ok, "numeric tail", cases[i].arg, "%s",
		      got ? got : "(none)");
	}
}

int main(void)
{
	test_sizes();
	test_sectors();
	test_specs();
	test_numeric_tail();
	test_percent();
	test_uint();
	test_seconds();
	test_format();
	printf("%u passed, %u failed\n", passed, failed);
	return failed ? 1 : 0;
}
