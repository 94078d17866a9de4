/* test-bmap.c - the bmap walk (src/kcopy/bmap.c) on a bmap made here, as
 * bmaptool writes one (format 2.0, sha256, the file's own checksum), for an
 * image with ranges at its start, in its middle and at its partial last
 * block: fed in chunks of many sizes, it changes no byte
 * and passes the image; with a byte of one range changed it fails at that
 * range's end and not before, naming it; a wrong size at the end, data
 * out of order and data past the end are refused.  And the parser on the
 * same file in format 1.3 (sha1) and with its defects, and the search
 * for a bmap beside an image as bmaptool searches.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Random: prints its seed; KCOPY_TEST_SEED=N replays one.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bmap.h"
#include "unit.h"

#define BS 4096u
#define SIZE (40u * BS + 1000u)		/* a partial last block */

/* The ranges of the image, in blocks. */
static const uint64_t ranges[][2] = { { 0, 0 }, { 3, 7 }, { 20, 20 },
				      { 21, 22 }, { 38, 40 } };
#define NUM_RANGES (sizeof(ranges) / sizeof(ranges[0]))

static unsigned char image[SIZE];

static void hex_digest(const char *alg, const void *data, size_t len,
		       char *hex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	EVP_Digest(data, len, md, &n, EVP_get_digestbyname(alg), NULL);
	for (i = 0; i < n; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
}

/* The bmap of image, in format 2.0 (sha256) or 1.3 (sha1), into buf. */
static size_t make_bmap(char *buf, size_t cap, bool v13)
{
	const char *alg = v13 ? "sha1" : "sha256";
	size_t len, i, zlen = v13 ? 40 : 64;
	uint64_t mapped = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1], zeros[65], *at;

	memset(zeros, '0', zlen);
	zeros[zlen] = '\0';
	for (i = 0; i < NUM_RANGES; i++)
		mapped += ranges[i][1] - ranges[i][0] + 1;
	len = (size_t)snprintf(buf, cap, "<?xml version=\"1.0\" ?>\n"
			       "<bmap version=\"%s\">\n"
			       "  <ImageSize> %u </ImageSize>\n"
			       "  <BlockSize> %u </BlockSize>\n"
			       "  <BlocksCount> %u </BlocksCount>\n"
			       "  <MappedBlocksCount> %" PRIu64
			       " </MappedBlocksCount>\n%s"
			       "  <%s> %s </%s>\n  <BlockMap>\n",
			       v13 ? "1.3" : "2.0", SIZE, BS, SIZE / BS + 1,
			       mapped, v13 ? "" : "  <ChecksumType> sha256 "
			       "</ChecksumType>\n",
			       v13 ? "BmapFileSHA1" : "BmapFileChecksum", zeros,
			       v13 ? "BmapFileSHA1" : "BmapFileChecksum");
	for (i = 0; i < NUM_RANGES; i++) {
		size_t s = ranges[i][0] * BS, e = (ranges[i][1] + 1) * BS;

		hex_digest(alg, image + s, (e < SIZE ? e : SIZE) - s, hex);
		if (ranges[i][0] == ranges[i][1])
			len += (size_t)snprintf(buf + len, cap - len,
				"    <Range %s=\"%s\"> %" PRIu64 " </Range>\n",
				v13 ? "sha1" : "chksum", hex, ranges[i][0]);
		else
			len += (size_t)snprintf(buf + len, cap - len,
				"    <Range %s=\"%s\"> %" PRIu64 "-%" PRIu64
				" </Range>\n", v13 ? "sha1" : "chksum", hex,
				ranges[i][0], ranges[i][1]);
	}
	len += (size_t)snprintf(buf + len, cap - len,
				"  </BlockMap>\n</bmap>\n");
	hex_digest(alg, buf, len, hex);
	at = strstr(buf, zeros);
	memcpy(at, hex, zlen);
	return len;
}

static bool is_mapped(size_t pos)
{
	size_t i;

	for (i = 0; i < NUM_RANGES; i++)
		if (pos >= ranges[i][0] * BS && pos < (ranges[i][1] + 1) * BS)
			return true;
	return false;
}

/* Walk a copy of img in chunks of chunk bytes (0: random sizes); the
 * first error, and where the data it came with ended in *at. */
static int walk(const struct bmap *b, const unsigned char *img, size_t chunk,
		unsigned char *out, size_t *at)
{
	struct bmap_walk w;
	size_t pos = 0;
	int r;

	memcpy(out, img, SIZE);
	CHECK(bmap_walk_start(&w, b) == 0);
	for (r = 0; r == 0 && pos < SIZE;) {
		size_t n = chunk ? chunk : 1 + (size_t)rand() % 20000;

		if (n > SIZE - pos)
			n = SIZE - pos;
		r = bmap_walk_check(&w, pos, out + pos, n);
		pos += n;
	}
	*at = pos;
	if (r == 0)
		r = bmap_walk_end(&w, SIZE);
	if (r == -EBADMSG)
		CHECK(bmap_walk_check(&w, pos, out, 0) == -EBADMSG);
	if (r == -EBADMSG)
		r = -EBADMSG - 1000 * (int)w.bad;	/* which range, too */
	bmap_walk_free(&w);
	return r;
}

static void walks(const struct bmap *b)
{
	static const size_t chunks[] = { 1, 7, 512, 4095, 4096, 65536, SIZE,
					 0, 0, 0 };
	static unsigned char out[SIZE], bad[SIZE];
	size_t i, p, at, end;
	struct bmap_walk w;

	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		CHECK(walk(b, image, chunks[i], out, &at) == 0);
		for (p = 0; p < SIZE; p++)
			if (out[p] != image[p]) {
				fprintf(stderr, "chunk %zu: byte %zu\n",
					chunks[i], p);
				CHECK(!"the walk changed a byte");
				break;
			}
		/* A byte of range 2 changed: found at its end. */
		memcpy(bad, image, SIZE);
		bad[20 * BS + 100] ^= 1;
		end = 21 * BS;
		CHECK(walk(b, bad, chunks[i], out, &at) ==
		      -EBADMSG - 1000 * 2);
		CHECK(at >= end && at - end < (chunks[i] ? chunks[i] : 20000));
		/* A changed byte outside the ranges does not matter. */
		memcpy(bad, image, SIZE);
		bad[10 * BS] ^= 1;
		CHECK(walk(b, bad, chunks[i], out, &at) == 0);
		CHECK(out[10 * BS] == bad[10 * BS]);
	}
	CHECK(bmap_walk_start(&w, b) == 0);
	CHECK(bmap_walk_check(&w, 0, image, 100) == 0);
	CHECK(bmap_walk_check(&w, 99, image, 100) == -EINVAL);
	bmap_walk_free(&w);
	CHECK(bmap_walk_start(&w, b) == 0);
	CHECK(bmap_walk_check(&w, 0, image, SIZE) == 0);
	CHECK(bmap_walk_end(&w, SIZE + 1) == -EINVAL);
	bmap_walk_free(&w);
	CHECK(bmap_walk_start(&w, b) == 0);
	CHECK(bmap_walk_check(&w, 0, image, SIZE - 10) == 0);
	CHECK(bmap_walk_check(&w, SIZE - 10, image, 11) == -EFBIG);
	bmap_walk_free(&w);
}

/* text with the first from replaced by to, parsed: the error's line. */
static unsigned int defect(const char *text, const char *from, const char *to,
			   const char *why)
{
	char buf[8192];
	const char *at = strstr(text, from);
	struct bmap b;
	struct bmap_error e;
	int r;

	CHECK(at != NULL);
	if (!at)
		return 0;
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - text), text, to,
		 at + strlen(from));
	r = bmap_parse(buf, strlen(buf), &b, &e);
	bmap_free(&b);
	CHECK(r < 0);
	if (!strstr(e.why, why)) {
		fprintf(stderr, "'%s' -> '%s': '%s', not '%s'\n", from, to,
			e.why, why);
		CHECK(!"the defect is named");
	}
	return e.line;
}

static void parses(void)
{
	char text[8192];
	size_t len = make_bmap(text, sizeof(text), false);
	struct bmap b;
	struct bmap_error e;

	CHECK(bmap_parse(text, len, &b, &e) == 0);
	CHECK(b.major == 2 && b.minor == 0 && b.num == NUM_RANGES);
	CHECK(b.image_size == SIZE && b.block_size == BS);
	CHECK(b.mapped_bytes == 11 * BS + 1000 && b.mapped_blocks == 12);
	CHECK(!strcmp(b.sum_type, "sha256") && b.sum_len == 32);
	walks(&b);
	bmap_free(&b);

	len = make_bmap(text, sizeof(text), true);
	CHECK(bmap_parse(text, len, &b, &e) == 0);
	CHECK(b.major == 1 && b.minor == 3 && !strcmp(b.sum_type, "sha1"));
	walks(&b);
	bmap_free(&b);

	/* Defects: the file's own checksum first (any change breaks it). */
	make_bmap(text, sizeof(text), false);
	CHECK(defect(text, "<BlockSize> 4096", "<BlockSize> 4097",
		     "own checksum") == 8);
	CHECK(defect(text, "</BlockSize>", "</BlockSiz>",
		     "not well-formed") == 4);
	CHECK(defect(text, "version=\"2.0\"", "version=\"3.0\"",
		     "versions 1.0 to 2.x") == 2);
	CHECK(defect(text, "<?xml version=\"1.0\" ?>",
		     "<?xml version=\"1.0\" ?><!DOCTYPE bmap>",
		     "document type") == 1);
	CHECK(defect(text, "<BlockMap>", "<Blockmap/><BlockMap>",
		     "no such element") == 9);
	CHECK(defect(text, "</BlockMap>", "<Range> 1-0 </Range></BlockMap>",
		     "first block is after its last") > 8);
	CHECK(defect(text, "</BlockMap>", "<Range> 2 </Range></BlockMap>",
		     "not after the one before") > 8);
	CHECK(defect(text, "</BlockMap>", "<Range> 9-x </Range></BlockMap>",
		     "expected FIRST-LAST") > 8);
	CHECK(defect(text, "<ChecksumType> sha256", "<ChecksumType> crc32",
		     "checksum type") == 7);
}

static void beside(void)
{
	char dir[] = "/tmp/test-bmap.XXXXXX", path[256], want[256];
	char *found = NULL;
	FILE *f;

	if (!mkdtemp(dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/os.img.xz", dir);
	CHECK(bmap_find_beside(path, &found) == 0 && !found);
	snprintf(want, sizeof(want), "%s/os.bmap", dir);
	f = fopen(want, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	CHECK(bmap_find_beside(path, &found) == 1 && found &&
	      !strcmp(found, want));
	free(found);
	snprintf(want, sizeof(want), "%s/os.img.bmap", dir);
	f = fopen(want, "w");
	if (f)
		fclose(f);
	CHECK(bmap_find_beside(path, &found) == 1 && found &&
	      !strcmp(found, want));
	free(found);
	/* A leading dot is not an extension: ".hidden" stays whole. */
	snprintf(path, sizeof(path), "%s/.hidden", dir);
	CHECK(bmap_find_beside(path, &found) == 0 && !found);
	unlink(want);
	snprintf(want, sizeof(want), "%s/os.bmap", dir);
	unlink(want);
	rmdir(dir);
}

int main(void)
{
	const char *env = getenv("KCOPY_TEST_SEED");
	unsigned int seed = env ? (unsigned int)strtoul(env, NULL, 10)
				: (unsigned int)time(NULL);
	size_t i;

	printf("test-bmap: seed %u (replay: KCOPY_TEST_SEED=%u)\n", seed,
	       seed);
	srand(seed);
	/* The image: random bytes where it is mapped, zeros elsewhere (a
	 * bmap says the rest is holes). */
	for (i = 0; i < SIZE; i++)
		image[i] = is_mapped(i) ? (unsigned char)rand() : 0;
	parses();
	beside();
	if (failures)
		fprintf(stderr, "test-bmap: %d failures\n", failures);
	return failures ? 1 : 0;
}
