/* hash.c - --hash: standard digests (md5, sha1, sha256, sha512) of a region
 * as it streams through the data hook, by OpenSSL's libcrypto (EVP).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The data must come in order (KCOPYD_DATA_IN_ORDER): a digest is only
 * given for data that started at the region's first sector and went on
 * without a gap or an overlap to its end.  Nothing here seeks or reads:
 * the digest is of what the hook was given, so a region that cannot be
 * read twice (a stream) is digested all the same.  Calls nothing of the
 * tool's: its callers print.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcopy.h"

static const char *const names[HASH_NUM_ALGS] = {
	[HASH_MD5] = "md5",
	[HASH_SHA1] = "sha1",
	[HASH_SHA256] = "sha256",
	[HASH_SHA512] = "sha512",
};

static const EVP_MD *md_of(unsigned int alg)
{
	switch (alg) {
	case HASH_MD5:		return EVP_md5();
	case HASH_SHA1:		return EVP_sha1();
	case HASH_SHA256:	return EVP_sha256();
	case HASH_SHA512:	return EVP_sha512();
	}
	return NULL;
}

int hash_alg_of(const char *name, size_t len)
{
	unsigned int a;

	for (a = 0; a < HASH_NUM_ALGS; a++)
		if (strlen(names[a]) == len && !strncmp(names[a], name, len))
			return (int)a;
	return -EINVAL;
}

const char *hash_name(unsigned int alg)
{
	return alg < HASH_NUM_ALGS ? names[alg] : "?";
}

int hash_start(struct hash_set *h, unsigned int algs, uint64_t first_sector)
{
	unsigned int a;

	hash_free(h);
	h->algs = algs;
	h->next = first_sector;
	h->seen = first_sector;
	for (a = 0; a < HASH_NUM_ALGS; a++) {
		EVP_MD_CTX *ctx;

		if (!(algs & (1u << a)))
			continue;
		ctx = EVP_MD_CTX_new();
		if (!ctx)
			return -ENOMEM;
		h->ctx[a] = ctx;
		if (EVP_DigestInit_ex(ctx, md_of(a), NULL) != 1)
			return -EIO;	/* e.g. md5 refused in FIPS mode */
	}
	return 0;
}

static void feed(struct hash_set *h, const void *data, size_t len)
{
	unsigned int a;

	for (a = 0; len && a < HASH_NUM_ALGS; a++)
		if (h->ctx[a] && EVP_DigestUpdate(h->ctx[a], data, len) != 1)
			h->broken = true;
}

void hash_update(struct hash_set *h, uint64_t sector, uint64_t count,
		 const void *data)
{
	if (!h->algs)
		return;
	/* What was seen, gaps and all, for hash_why(). */
	if (sector > h->seen) {
		if (!h->gaps++) {
			h->gap_lo = h->seen;
			h->gap_hi = sector;
		}
	} else if (sector < h->seen) {
		h->disorder = true;
	}
	if (sector + count > h->seen)
		h->seen = sector + count;
	if (h->broken)
		return;
	if (sector != h->next) {
		/* Out of order, or twice: no digest is better than a wrong
		 * one. */
		h->broken = true;
		return;
	}
	if (!count)
		return;
	if (h->has_tail)
		feed(h, h->tail, KC_SECTOR_SIZE);
	feed(h, data, (count - 1) * KC_SECTOR_SIZE);
	memcpy(h->tail, (const char *)data + (count - 1) * KC_SECTOR_SIZE,
	       KC_SECTOR_SIZE);
	h->has_tail = true;
	h->next += count;
}

int hash_finish(struct hash_set *h, uint64_t end_sector,
		unsigned int last_bytes)
{
	static const char hexdig[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int a, n, i;

	if (!h->algs)
		return 0;
	if (h->broken || h->next != end_sector)
		return -ENODATA;
	if (h->has_tail)
		feed(h, h->tail, last_bytes);
	h->has_tail = false;
	if (h->broken)
		return -EIO;
	for (a = 0; a < HASH_NUM_ALGS; a++) {
		if (!h->ctx[a])
			continue;
		if (EVP_DigestFinal_ex(h->ctx[a], md, &n) != 1)
			return -EIO;
		free(h->hex[a]);
		h->hex[a] = malloc(2 * n + 1);
		if (!h->hex[a])
			return -ENOMEM;
		for (i = 0; i < n; i++) {
			h->hex[a][2 * i] = hexdig[md[i] >> 4];
			h->hex[a][2 * i + 1] = hexdig[md[i] & 15];
		}
		h->hex[a][2 * n] = 0;
	}
	h->done = true;
	return 0;
}

int hash_why(const struct hash_set *h, uint64_t end_sector,
	     const char *prefix, char *buf, size_t size)
{
	uint64_t lo = h->gap_lo, hi = h->gap_hi;
	unsigned int gaps = h->gaps;

	if (h->seen < end_sector && !gaps++) {
		lo = h->seen;
		hi = end_sector;
	}
	if (gaps && !h->disorder) {
		if (gaps > 1)
			snprintf(buf, size, "%sdid not read sectors %" PRIu64
				 "..%" PRIu64 " and %u other range(s)", prefix,
				 lo, hi - 1, gaps - 1);
		else
			snprintf(buf, size, "%sdid not read sectors %" PRIu64
				 "..%" PRIu64, prefix, lo, hi - 1);
	} else if (h->disorder || gaps) {
		snprintf(buf, size, "the data came out of source order");
	} else if (h->broken) {
		snprintf(buf, size, "the digest could not be computed");
	} else {
		return -ENODATA;
	}
	return 0;
}

void hash_free(struct hash_set *h)
{
	unsigned int a;

	for (a = 0; a < HASH_NUM_ALGS; a++) {
		EVP_MD_CTX_free(h->ctx[a]);
		free(h->hex[a]);
	}
	memset(h, 0, sizeof(*h));
}
