/* spec.h - parsers for the kcopy tool's arguments: sizes, region specs,
 * percentages, counts and durations.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every parser is a pure function of its string (kc_parse_spec asks a
 * caller-supplied callback whether a path exists; nothing else touches the
 * system).  Functions returning int return 0 or a negative errno:
 * -EINVAL for a malformed string, -ERANGE for a well-formed number out of
 * range, -ENOMEM when a copy of a path cannot be allocated.  Output
 * parameters are written only on success.
 *
 * Numbers are plain decimal digits only: no sign, no blanks before, inside
 * or after, no "0x", no fraction, no exponent.  Leading zeros are allowed
 * and do not mean octal ("010" is ten).
 *
 * Size suffixes (kc_parse_size), dd-compatible:
 *
 *   K k KiB kiB   1024         KB kB   1000
 *   M m MiB miB   1024^2       MB mB   1000^2
 *   G g GiB giB   1024^3       GB gB   1000^3
 *   T t TiB tiB   1024^4       TB tB   1000^4
 *   P p PiB piB   1024^5       PB pB   1000^5
 *   E e EiB eiB   1024^6       EB eB   1000^6
 *
 * The letter may be either case; the "iB" and "B" that may follow it are
 * case-sensitive.  A bare "B" ("512B") and dd's "c", "w", "b" are rejected:
 * a number without a suffix is already a plain count.
 */
#ifndef KCOPY_SPEC_H
#define KCOPY_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KC_SECTOR_SIZE		512u

/* The value of hexadecimal digit c (either case), or -1. */
static inline int kc_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The largest sector number or count accepted: its byte offset still fits
 * in a uint64_t.  A SECTOR+COUNT region must end at or below it too. */
#define KC_MAX_SECTORS		(UINT64_MAX / KC_SECTOR_SIZE)

/*
 * A size: digits with an optional suffix (table above).  *bytes receives
 * the value; *had_suffix (may be NULL) is set to 1 if a suffix was present,
 * else 0.  Errors: -EINVAL malformed (empty, sign, blank, unknown suffix,
 * "0x10", "1.5K"), -ERANGE past UINT64_MAX ("20000000000000000000", "16E").
 */
int kc_parse_size(const char *s, uint64_t *bytes, int *had_suffix);

/*
 * A SECTOR or COUNT field: a plain number is a count of 512-byte sectors;
 * a suffixed number is a byte size and must be a multiple of 512 (else
 * -EINVAL).  -ERANGE if the value exceeds KC_MAX_SECTORS, i.e. its byte
 * size would not fit in 64 bits.
 */
int kc_parse_sectors(const char *s, uint64_t *sectors);

/* A region spec PATH[:SECTOR[:COUNT]]. */
struct kc_spec {
	char *path;		/* malloc'd, never empty; kc_spec_free() */
	uint64_t sector;	/* first sector; 0 unless has_sector */
	uint64_t count;		/* sectors; 0 unless has_count */
	bool has_sector;	/* a SECTOR field was given (and non-empty) */
	bool has_count;		/* a COUNT field was given */
};

/* Asks whether a path exists; returns non-zero if it does. */
typedef int (*kc_exists_fn)(const char *path, void *ctx);

/*
 * Parse a region spec into *out.  How ARG is read, first match wins:
 *
 *  0. For an NBD URI (kc_uri_prefix) the scheme and authority are left
 *     out of what follows: their colons are the URI's.
 *  1. ARG contains no colon: ARG is the path.
 *  2. exists(ARG, ctx) is true (exists may be NULL: never true): ARG is the
 *     path, colons and all (/dev/disk/by-path/pci-0000:00:1f.2-ata-1).
 *  3. ARG ends in a colon: error, "empty SECTOR field" ("img:", "a:b:")
 *     or "empty COUNT field" ("img:8:", "img::").
 *  4. The text after the last colon (the tail) is not a number in
 *     kc_parse_size's syntax: ARG is the path ("a:b:c", "x:1.5K").
 *  5. There is a colon before the last one and the text between the two is
 *     empty or a number: PATH:SECTOR:COUNT.  An empty SECTOR ("img::16")
 *     means sector 0 with has_sector false.
 *  6. Otherwise PATH:SECTOR, the path being everything before the last
 *     colon ("a:b:8" is path "a:b", sector 8).
 *
 * A field that has a number's syntax but a bad value is an error, not part
 * of the path: "img:1KB" ("SECTOR is not a multiple of 512 bytes"),
 * "img:0:99999999999999999999" ("COUNT is too large").  So is an empty
 * PATH (":8", ":8:16"), a COUNT of zero, and a region whose end
 * SECTOR+COUNT exceeds KC_MAX_SECTORS.
 *
 * Ambiguity: a path that does not exist and whose tail reads as a number
 * ("backup-12:30:00") is taken as a spec (path "backup-12", sector 30,
 * count 0 -> error).  Nothing but the whole ARG is checked for existence,
 * so "dev:2048" is a spec whether or not "dev" exists.
 *
 * Returns 0, or -EINVAL/-ERANGE/-ENOMEM with *why (may be NULL) pointing to
 * a static string for the caller's one-line message.  *why is NULL on
 * success.  On failure out->path is NULL and nothing needs freeing.
 */
int kc_parse_spec(const char *arg, kc_exists_fn exists, void *ctx,
		  struct kc_spec *out, const char **why);

/*
 * The text after the last colon of arg when it begins with a digit but is
 * not a number in kc_parse_size's syntax ("img:0:1Ki" gives "1Ki",
 * "x:1.5K" gives "1.5K"); else NULL.  kc_parse_spec takes such an ARG as a
 * path (rule 4); a caller that finds no such path can name the field that
 * was probably meant instead.  Returns a pointer into arg.
 */
const char *kc_spec_numeric_tail(const char *arg);

/*
 * The length of arg's NBD URI scheme and authority ("nbd://host:10809" of
 * "nbd://host:10809/disk:2048"), 0 if arg is not an NBD URI (nbd, nbds,
 * nbd+unix, nbds+unix, nbd+vsock, nbds+vsock).  kc_parse_spec looks for
 * its fields only after it, and never asks whether a URI exists.  The
 * authority, [userinfo@]host[:port] with host a name or an [IPv6] literal,
 * ends at the first '/', '?' or '#', or at a colon after its port:
 * "nbd://host:10809:2048" is the default export of host:10809 from sector
 * 2048.  Without a port that colon would be the port's ("nbd://host:2048"
 * is port 2048): write "nbd://host/:2048".
 */
size_t kc_uri_prefix(const char *arg);

/* Free out->path and reset *spec (NULL is fine); safe to call twice. */
void kc_spec_free(struct kc_spec *spec);

/* The default exists callback: stat(path) succeeds.  ctx is unused. */
int kc_path_exists(const char *path, void *ctx);

/* A percentage 1..100, digits with an optional trailing '%' ("50", "50%").
 * -ERANGE for 0 or above 100. */
int kc_parse_percent(const char *s, unsigned *pct);

/* A plain decimal count 0..max (no suffix).  -ERANGE above max. */
int kc_parse_uint(const char *s, unsigned long max, unsigned long *out);

/*
 * A positive duration in seconds: DIGITS, DIGITS.DIGITS*, or .DIGITS
 * ("2", "0.5", ".25", "3.").  No sign, exponent, "inf" or "nan"; the
 * decimal point is always '.', whatever the locale.  Digits past the
 * ninth decimal are accepted and ignored (nanosecond resolution).
 * -ERANGE for zero or for 1000000000 seconds or more.
 */
int kc_parse_seconds(const char *s, double *out);

#endif /* KCOPY_SPEC_H */
