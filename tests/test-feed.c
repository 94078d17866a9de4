/* test-feed.c - the image feed (src/kcopy/feed.c) with a filter, as
 * --bmap will use it: every chunk of the image seen in order and rewritten
 * (a range made zeros) before it enters the pipe, for a raw image and for
 * a gzip one of two members; the end seen with the image's length; a
 * filter's error is the feed's, at the chunk it refused, with nothing of
 * that chunk or after it in the pipe.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "feed.h"
#include "lib-util.h"

#define SIZE		(5u << 20)
#define HOLE_LO		(1u << 20)		/* the filter zeroes these */
#define HOLE_HI		(3u << 20)
#define FAIL_AT		(4u << 20)		/* and refuses this byte */

/* check() with the condition's text. */
#define CHECK(c) check((c), "%s:%d: %s", __FILE__, __LINE__, #c)

/* The filter's state: where the next chunk must start, what it saw. */
struct zeroer {
	uint64_t next;
	bool out_of_order;
	bool fail;			/* refuse the chunk with FAIL_AT */
	bool ended;
	uint64_t total;
};

static int zero_data(void *ctx, uint64_t pos, void *buf, size_t len,
		     char *msg, size_t msg_len)
{
	struct zeroer *z = ctx;
	unsigned char *b = buf;
	uint64_t i;

	if (pos != z->next)
		z->out_of_order = true;
	if (z->fail && pos <= FAIL_AT && FAIL_AT < pos + len) {
		snprintf(msg, msg_len, "range %" PRIu64 "-%" PRIu64 ": "
			 "checksum mismatch", pos, pos + len - 1);
		return -EBADMSG;
	}
	for (i = pos; i < pos + len; i++)
		if (i >= HOLE_LO && i < HOLE_HI)
			b[i - pos] = 0;
	z->next = pos + len;
	return 0;
}

static int zero_end(void *ctx, uint64_t total, char *msg, size_t msg_len)
{
	struct zeroer *z = ctx;

	(void)msg;
	(void)msg_len;
	z->ended = true;
	z->total = total;
	return 0;
}

/* The image: every byte its offset modulo 251. */
static unsigned char image[SIZE];

/* Feed path through the filter z; what came out of the pipe into got, its
 * length the return value. */
static size_t feed_file(const char *path, struct zeroer *z,
			const char *format, struct feed *f,
			unsigned char *got)
{
	char msg[256] = "";
	size_t n = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0);
	feed_init(f);
	f->filter = (struct feed_filter){ zero_data, zero_end, z };
	CHECK(feed_open(f, fd, true, true, -1, FEED_AUTO, NULL, msg,
			sizeof(msg)) == 1);
	CHECK(!strcmp(feed_format(f), format));
	CHECK(feed_start(f) == 0);
	while (n < SIZE && (r = read(f->pipe_r, got + n, SIZE - n)) > 0)
		n += (size_t)r;
	/* To the pipe's end, which the thread closes once it saw the end
	 * (stopped before, it would not have). */
	while (n == SIZE && (r = read(f->pipe_r, msg, sizeof(msg))) > 0)
		n += (size_t)r;
	feed_stop(f);
	return n;
}

static void write_gzip(const char *path)
{
	gzFile g = gzopen(path, "wb");

	CHECK(g && gzwrite(g, image, SIZE / 2) == SIZE / 2);
	CHECK(gzclose(g) == Z_OK);
	g = gzopen(path, "ab");	/* a second member */
	CHECK(g && gzwrite(g, image + SIZE / 2, SIZE / 2) == SIZE / 2);
	CHECK(gzclose(g) == Z_OK);
}

int main(void)
{
	static unsigned char got[SIZE], want[SIZE];
	char raw[4096], gz[4096];
	const char *formats[] = { "raw", "gzip" };
	const char *paths[] = { raw, gz };
	struct feed f;
	unsigned int i;
	size_t n;
	FILE *fp;

	for (i = 0; i < SIZE; i++)
		image[i] = (unsigned char)(i % 251);
	memcpy(want, image, SIZE);
	memset(want + HOLE_LO, 0, HOLE_HI - HOLE_LO);
	test_dir_create();
	test_path(raw, sizeof(raw), "raw");
	test_path(gz, sizeof(gz), "img.gz");
	fp = fopen(raw, "wb");
	CHECK(fp && fwrite(image, 1, SIZE, fp) == SIZE && fclose(fp) == 0);
	write_gzip(gz);

	for (i = 0; i < 2; i++) {
		struct zeroer z = { 0 };

		/* Every chunk in order, the range zeroed, the end seen. */
		n = feed_file(paths[i], &z, formats[i], &f, got);
		CHECK(n == SIZE && !memcmp(got, want, SIZE));
		CHECK(!z.out_of_order && z.ended && z.total == SIZE);
		CHECK(f.ended && !f.error && f.out_done == SIZE);
		feed_free(&f);

		/* Refused: the feed's error, where the chunk began. */
		memset(&z, 0, sizeof(z));
		z.fail = true;
		n = feed_file(paths[i], &z, formats[i], &f, got);
		CHECK(f.error == -EBADMSG && strstr(f.msg, "checksum mismatch"));
		CHECK(f.error_out <= FAIL_AT && f.error_out == n);
		CHECK(n == z.next && !memcmp(got, want, n));
		CHECK(!z.ended && !f.ended);
		feed_free(&f);
	}
	return test_dir_finish();
}
