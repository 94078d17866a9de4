/* lib-util.h - what the library's C tests share: a temporary directory of
 * test files, checks that count failures, and a job callback that records
 * its results.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef LIB_UTIL_H
#define LIB_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include "kcopyd.h"

#define MiB (1024u * 1024u)

/* Make the directory (under $TMPDIR, else /tmp); exits 99 on failure. */
void test_dir_create(void);
/* Remove it with everything in it; report the failed checks and return the
 * exit status: 0 if none failed, else 1. */
int test_dir_finish(void);
/* The path of name in the directory, in buf of len bytes. */
void test_path(char *buf, size_t len, const char *name);

/* Count a failure, with a message, unless ok. */
void check(int ok, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Create (or truncate) name in the directory with size bytes of a pattern
 * that depends on seed (zeros for seed 0); returns an O_RDWR descriptor.
 * Exits 99 on failure. */
int make_file(const char *name, size_t size, unsigned int seed);
/* A source NAME-src of size bytes (pattern seed) and an empty destination
 * NAME-dst, with regions for a copy of the whole source to the start of the
 * destination. */
void make_pair(const char *name, size_t size, unsigned int seed,
	       struct io_region *from, struct io_region *to);
/* Do bytes [aoff, aoff+len) of a equal bytes [boff, boff+len) of b? */
int same(int a, off_t aoff, int b, off_t boff, size_t len);
/* Are bytes [off, off+len) of fd all zero (and there)? */
int all_zero(int fd, off_t off, size_t len);
/* fd's size in bytes, -1 on error. */
off_t file_size(int fd);

/* A job callback's results: calls and the OR of what they passed. */
struct result {
	pthread_mutex_t lock;
	int calls;
	int read_err;
	unsigned int write_err;
};
#define RESULT_INIT { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0 }
/* A kcopyd_notify_fn; context is a struct result. */
void notify(int read_err, unsigned int write_err, void *context);

#endif /* LIB_UTIL_H */
