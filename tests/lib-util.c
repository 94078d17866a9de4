/* lib-util.c - what the library's C tests share (lib-util.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib-util.h"

static char dir[4096];
static int failures;
static pthread_mutex_t failures_lock = PTHREAD_MUTEX_INITIALIZER;

void test_dir_create(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/kcopyd-test-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(99);
	}
}

int test_dir_finish(void)
{
	char cmd[sizeof(dir) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	if (failures)
		fprintf(stderr, "%d checks failed\n", failures);
	return failures ? 1 : 0;
}

void test_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

void check(int ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	va_start(ap, fmt);
	pthread_mutex_lock(&failures_lock);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	failures++;
	pthread_mutex_unlock(&failures_lock);
	va_end(ap);
}

int make_file(const char *name, size_t size, unsigned int seed)
{
	char path[sizeof(dir) + 256];
	char *buf = malloc(size ? size : 1);
	size_t i;
	int fd;

	test_path(path, sizeof(path), name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || !buf) {
		perror(path);
		exit(99);
	}
	for (i = 0; i < size; i++)
		buf[i] = seed ? (char)((i * 2654435761u + seed) >> 13) : 0;
	if (size && pwrite(fd, buf, size, 0) != (ssize_t)size) {
		perror("pwrite");
		exit(99);
	}
	free(buf);
	return fd;
}

void make_pair(const char *name, size_t size, unsigned int seed,
	       struct io_region *from, struct io_region *to)
{
	char file[256];

	snprintf(file, sizeof(file), "%s-src", name);
	*from = (struct io_region){ make_file(file, size, seed), 0,
				    size / 512 };
	snprintf(file, sizeof(file), "%s-dst", name);
	*to = (struct io_region){ make_file(file, 0, 0), 0, size / 512 };
}

int same(int a, off_t aoff, int b, off_t boff, size_t len)
{
	char *x = malloc(len), *y = malloc(len);
	int r = x && y && pread(a, x, len, aoff) == (ssize_t)len &&
		pread(b, y, len, boff) == (ssize_t)len && !memcmp(x, y, len);

	free(x);
	free(y);
	return r;
}

int all_zero(int fd, off_t off, size_t len)
{
	char *x = malloc(len);
	size_t i;
	int r = x && pread(fd, x, len, off) == (ssize_t)len;

	for (i = 0; r && i < len; i++)
		r = x[i] == 0;
	free(x);
	return r;
}

off_t file_size(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_size : -1;
}

void notify(int read_err, unsigned int write_err, void *context)
{
	struct result *r = context;

	pthread_mutex_lock(&r->lock);
	r->calls++;
	r->read_err |= read_err;
	r->write_err |= write_err;
	pthread_mutex_unlock(&r->lock);
}
