/* test-lib.c - libkcopyd on regular files: budgets, concurrency, callbacks,
 * argument checks, the structs' sizes (older, newer), zeroing, sparse and
 * zero-aware copies (from a pipe too), the poll set of many streams and (where nbdkit is
 * installed) NBD connections and the merge of a stream's last block
 * through the budget.  Needs no privileges.  KCOPYD_FLUSH is seen
 * for real where a flush can be seen and fail: on NBD exports served by
 * nbdkit (kcopy-nbd.sh) and on the FUSE fault device (kcopy-faults.sh).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kcopyd.h"
#include "lib-util.h"

static void test_arguments(void)
{
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	int src = make_file("args-src", MiB, 1);
	int dst = make_file("args-dst", 0, 0);
	struct io_region from = { src, 0, 2048 };
	struct io_region to[33];
	unsigned int i;

	check(kcopyd_client_create(0, &kc) == -EINVAL, "create 0 pages");
	check(kcopyd_client_create(4, NULL) == -EINVAL, "create NULL result");
	check(kcopyd_client_create(4, &kc) == 0, "create 4 pages");
	for (i = 0; i < 33; i++)
		to[i] = (struct io_region){ dst, 0, 2048 };
	check(kcopyd_copy(kc, NULL, 1, to, 0, notify, &res) == -EINVAL,
	      "NULL source");
	check(kcopyd_copy(kc, &from, 1, NULL, 0, notify, &res) == -EINVAL,
	      "NULL destinations");
	check(kcopyd_copy(kc, &from, 1, to, 0, NULL, &res) == -EINVAL,
	      "NULL callback");
	check(kcopyd_copy(NULL, &from, 1, to, 0, notify, &res) == -EINVAL,
	      "NULL client");
	check(kcopyd_copy(kc, &from, 0, to, 0, notify, &res) == -EINVAL,
	      "0 destinations");
	check(kcopyd_copy(kc, &from, 33, to, 0, notify, &res) == -EINVAL,
	      "33 destinations");
	check(kcopyd_copy(kc, &from, 1, to, 1u << 20, notify, &res) == -EINVAL,
	      "unknown flag");
	to[0].count = 8;
	check(kcopyd_copy(kc, &from, 1, to, 0, notify, &res) == -EINVAL,
	      "count differs from the source's");
	to[0].count = 2048;
	from.sector = 1;
	check(kcopyd_copy(kc, &from, 1, to, 0, notify, &res) == -EINVAL,
	      "source region past the end of the file");
	from.sector = 0;
	from.fd = 999;
	check(kcopyd_copy(kc, &from, 1, to, 0, notify, &res) == -EBADF,
	      "closed source descriptor");
	from.fd = src;
	check(kcopyd_zero(kc, 0, to, 0, notify, &res) == -EINVAL,
	      "zero with no destinations");
	kcopyd_wait(kc);
	check(res.calls == 0, "a refused job ran its callback");
	check(kcopyd_set_throttle(kc, 0) == -EINVAL, "throttle 0");
	check(kcopyd_set_throttle(kc, 101) == -EINVAL, "throttle 101");
	check(kcopyd_set_subjob_size(kc, 1000) == -EINVAL, "sub-job 1000");
	kcopyd_client_destroy(kc);
	close(src);
	close(dst);
}

/* A destination opened with O_APPEND would be written at the end of the
 * file whatever the region: refused, for copies and zeroing, and accepted
 * again once the flag is cleared.  A source with O_APPEND is only read. */
/* The structs the caller allocates carry their size (kcopyd.h): a caller
 * built against an older, smaller struct gets only that many bytes written,
 * a larger size, from a newer kcopyd.h, is taken (the unknown tail zeroed,
 * struct_size set to what was filled), and a size of 0 is refused with
 * nothing written.  A guard pattern after the struct catches an overflow. */
#define GUARD 0xa5
#define SIZED_EXTRA 64

static bool guard_intact(const unsigned char *b, size_t from, size_t to)
{
	size_t i;

	for (i = from; i < to; i++)
		if (b[i] != GUARD)
			return false;
	return true;
}

static bool all_zero_mem(const unsigned char *b, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static void test_struct_sizes(void)
{
	struct kcopyd_client *kc;
	int src = make_file("sized-src", MiB, 3);
	union {
		struct kcopyd_stats st;
		struct kcopyd_fd_info info;
		unsigned char b[sizeof(struct kcopyd_stats) +
				sizeof(struct kcopyd_fd_info) +
				2 * SIZED_EXTRA];
	} u;
	/* What 0.1.0 would have been without the zero-aware counters, and
	 * the fd_info before the NBD fields. */
	size_t st_old = offsetof(struct kcopyd_stats, bytes_zeroed);
	size_t st_new = sizeof(struct kcopyd_stats) + SIZED_EXTRA;
	size_t in_old = offsetof(struct kcopyd_fd_info, is_remote);
	size_t in_new = sizeof(struct kcopyd_fd_info) + SIZED_EXTRA;

	check(kcopyd_client_create(32, &kc) == 0, "sized: create");

	/* Stats: older and smaller. */
	memset(u.b, GUARD, sizeof(u.b));
	u.st.struct_size = (uint32_t)st_old;
	check(kcopyd_get_stats(kc, &u.st) == 0 &&
	      u.st.struct_size == st_old && u.st.pages_budget == 32 &&
	      u.st.subjob_size > 0 && u.st.jobs_submitted == 0 &&
	      KCOPYD_HAS_FIELD(struct kcopyd_stats, &u.st, subjob_size) &&
	      !KCOPYD_HAS_FIELD(struct kcopyd_stats, &u.st, bytes_zeroed),
	      "sized: stats of an older size: size %u budget %u",
	      u.st.struct_size, u.st.pages_budget);
	check(guard_intact(u.b, st_old, sizeof(u.b)),
	      "sized: stats written past an older size");
	/* Newer and larger: taken, the tail zeroed, no byte past it. */
	memset(u.b, GUARD, sizeof(u.b));
	u.st.struct_size = (uint32_t)st_new;
	check(kcopyd_get_stats(kc, &u.st) == 0 &&
	      u.st.struct_size == sizeof(struct kcopyd_stats) &&
	      u.st.pages_budget == 32 && u.st.held_back[31] == 0 &&
	      KCOPYD_HAS_FIELD(struct kcopyd_stats, &u.st, held_back),
	      "sized: stats of a larger size: size %u", u.st.struct_size);
	check(all_zero_mem(u.b + sizeof(struct kcopyd_stats), SIZED_EXTRA) &&
	      guard_intact(u.b, st_new, sizeof(u.b)),
	      "sized: stats: the unknown tail not zeroed, or written past");
	/* Unset: refused, nothing written. */
	memset(u.b, GUARD, sizeof(u.b));
	u.st.struct_size = 0;
	check(kcopyd_get_stats(kc, &u.st) == -EINVAL &&
	      u.st.struct_size == 0 &&
	      guard_intact(u.b, sizeof(u.st.struct_size), sizeof(u.b)),
	      "sized: stats of size 0");

	/* fd_info, the same three ways. */
	memset(u.b, GUARD, sizeof(u.b));
	u.info.struct_size = (uint32_t)in_old;
	check(kcopyd_probe_fd(kc, src, &u.info) == 0 &&
	      u.info.struct_size == in_old && u.info.size == MiB &&
	      u.info.logical_block_size == 512 && !u.info.is_blockdev,
	      "sized: probe of an older size: size %u", u.info.struct_size);
	check(guard_intact(u.b, in_old, sizeof(u.b)),
	      "sized: probe written past an older size");
	memset(u.b, GUARD, sizeof(u.b));
	u.info.struct_size = (uint32_t)in_new;
	check(kcopyd_probe_fd(kc, src, &u.info) == 0 &&
	      u.info.struct_size == sizeof(struct kcopyd_fd_info) &&
	      u.info.size == MiB && !u.info.is_remote && !u.info.is_stream &&
	      KCOPYD_HAS_FIELD(struct kcopyd_fd_info, &u.info, is_stream),
	      "sized: probe of a larger size: size %u", u.info.struct_size);
	check(all_zero_mem(u.b + sizeof(struct kcopyd_fd_info), SIZED_EXTRA) &&
	      guard_intact(u.b, in_new, sizeof(u.b)),
	      "sized: probe: the unknown tail not zeroed, or written past");
	memset(u.b, GUARD, sizeof(u.b));
	u.info.struct_size = 0;
	check(kcopyd_probe_fd(kc, src, &u.info) == -EINVAL &&
	      guard_intact(u.b, sizeof(u.info.struct_size), sizeof(u.b)),
	      "sized: probe of size 0");
	/* The caller's own errors come first. */
	u.info.struct_size = sizeof(u.info);
	check(kcopyd_probe_fd(kc, -1, &u.info) < 0, "sized: probe of fd -1");

	kcopyd_client_destroy(kc);
	close(src);
}

static void test_append(void)
{
	char path[256];
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	int src = make_file("app-src", MiB, 31);
	int app, plain = make_file("app-dst", MiB, 37);
	struct io_region from = { src, 0, 256 };
	struct io_region to[2] = { { plain, 0, 256 }, { -1, 256, 256 } };
	struct stat st;

	test_path(path, sizeof(path), "app-dst");
	app = open(path, O_WRONLY | O_APPEND);
	to[1].fd = app;
	check(kcopyd_client_create(16, &kc) == 0, "create");
	check(kcopyd_copy(kc, &from, 2, to, 0, notify, &res) == -EINVAL,
	      "O_APPEND destination copied to");
	check(kcopyd_zero(kc, 2, to, 0, notify, &res) == -EINVAL,
	      "O_APPEND destination zeroed");
	kcopyd_wait(kc);
	check(res.calls == 0 && fstat(plain, &st) == 0 && st.st_size == MiB &&
	      !same(src, 0, plain, 0, 256 * 512), "a refused job wrote");

	check(fcntl(app, F_SETFL, 0) == 0, "clear O_APPEND");
	check(kcopyd_copy(kc, &from, 2, to, 0, notify, &res) == 0,
	      "copy after clearing O_APPEND");
	kcopyd_wait(kc);
	check(res.calls == 1 && !res.write_err && fstat(plain, &st) == 0 &&
	      st.st_size == MiB && same(src, 0, plain, 256 * 512, 256 * 512),
	      "copy after clearing O_APPEND: data or size");
	close(app);

	app = open(path, O_RDWR | O_APPEND);
	from.fd = app;
	to[0].fd = src;
	res = (struct result)RESULT_INIT;
	check(kcopyd_copy(kc, &from, 1, to, 0, notify, &res) == 0,
	      "copy from an O_APPEND source");
	kcopyd_wait(kc);
	check(res.calls == 1 && !res.read_err &&
	      same(app, 0, src, 0, 256 * 512),
	      "copy from an O_APPEND source: data");
	kcopyd_client_destroy(kc);
	close(src);
	close(app);
	close(plain);
}

/* Is this thread's last reason want (and its errno err)? */
static void check_reason(const char *name, int err, const char *want)
{
	const char *got = kcopyd_get_error();

	check(got && !strcmp(got, want), "%s: reason '%s', not '%s'", name,
	      got ? got : "(null)", want);
	check(kcopyd_get_errno() == err, "%s: errno %d, not %d", name,
	      kcopyd_get_errno(), err);
}

/* kcopyd_check_region refuses r (how) with err, saying want. */
static void check_refused(struct kcopyd_client *kc, struct io_region r,
			  unsigned int how, int err, const char *want)
{
	int ret = kcopyd_check_region(kc, &r, how);

	check(ret == -err, "check (fd %d, sector %llu, %llu): %d, not %d",
	      r.fd, (unsigned long long)r.sector,
	      (unsigned long long)r.count, ret, -err);
	check_reason(want, err, want);
}

/* Each kind of refusal says why (kcopyd_get_error), kcopyd_check_region
 * in the same words as the copy, which names the region; a call that
 * succeeds leaves the reason as it was. */
static void test_region_errors(void)
{
	static const char *const past = "region (sector 1, 2048 sectors) ends "
					 "past the end of the file (2048 "
					 "sectors)";
	const unsigned int dest = KCOPYD_REGION_DEST;
	const unsigned int grow = dest | KCOPYD_REGION_MAY_EXTEND;
	char path[256], want[256];
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	int src = make_file("why-src", MiB, 41);
	int dst = make_file("why-dst", 0, 0);
	int app, p[2];
	struct io_region from = { src, 1, 2048 };
	struct io_region to[2] = { { dst, 0, 2048 }, { -1, 0, 2048 } };
	struct io_region r;

	check(kcopyd_client_create(16, &kc) == 0, "create");
	check(kcopyd_copy(kc, &from, 1, to, 0, notify, &res) == -EINVAL,
	      "why: source past the end");
	snprintf(want, sizeof(want), "source: %s", past);
	check_reason("copy past the end", EINVAL, want);
	check_refused(kc, from, KCOPYD_REGION_SOURCE, EINVAL, past);

	/* A success leaves the last reason. */
	from.sector = 0;
	check(kcopyd_check_region(kc, &from, KCOPYD_REGION_SOURCE) == 0,
	      "why: check source");
	check_reason("after a success", EINVAL, past);

	/* A file grows as a destination only if it may. */
	check(kcopyd_check_region(kc, &to[0], grow) == 0,
	      "why: destination that grows");
	check_refused(kc, to[0], dest, EINVAL, "region (sector 0, 2048 "
		      "sectors) ends past the end of the file (0 sectors)");
	check_refused(kc, (struct io_region){ 999, 0, 8 }, KCOPYD_REGION_SOURCE,
		      EBADF, "descriptor 999 is not open");
	check_refused(kc, (struct io_region){ src, INT64_MAX / 512, 1 }, grow,
		      EINVAL, "region (sector 18014398509481983, 1 sectors) "
		      "ends past the largest offset the kernel can address "
		      "(8 EiB)");

	test_path(path, sizeof(path), "why-dst");
	app = open(path, O_WRONLY | O_APPEND);
	to[1].fd = app;
	check(kcopyd_copy(kc, &from, 2, to, 0, notify, &res) == -EINVAL,
	      "why: O_APPEND destination");
	snprintf(want, sizeof(want), "destination 2: descriptor %d is open "
		 "for appending (O_APPEND): every write would land at the end "
		 "of the file", app);
	check_reason("O_APPEND", EINVAL, want);
	r = (struct io_region){ app, 0, 0 };
	check(kcopyd_check_region(kc, &r, KCOPYD_REGION_SOURCE) == 0,
	      "why: O_APPEND source");
	close(app);

	check(pipe(p) == 0, "pipe");
	check_refused(kc, (struct io_region){ p[0], 8, 0 },
		      KCOPYD_REGION_SOURCE, EINVAL,
		      "a stream is read where it stands: no SECTOR");
	check_refused(kc, (struct io_region){ p[1], 8, 0 }, dest, EINVAL,
		      "a stream is written where it stands: no SECTOR");
	r = (struct io_region){ p[1], 0, 0 };
	check(kcopyd_check_region(kc, &r, dest) == 0,
	      "why: stream destination");
	close(p[0]);
	close(p[1]);

	to[0].count = 8;
	check(kcopyd_copy(kc, &from, 1, to, 0, notify, &res) == -EINVAL,
	      "why: count differs");
	check_reason("count differs", EINVAL, "destination 1: 8 sectors, not "
		     "the source's 2048");
	check(kcopyd_copy(kc, &from, 1, to, 1u << 20, notify, &res) == -EINVAL,
	      "why: unknown flag");
	check_reason("unknown flag", EINVAL, strerror(EINVAL));
	check(kcopyd_check_region(kc, &from, 1u << 2) == -EINVAL,
	      "why: unknown how");
	check(kcopyd_check_region(kc, &from, KCOPYD_REGION_MAY_EXTEND) ==
	      -EINVAL, "why: a source that may extend");
	check(kcopyd_check_region(NULL, &from, 0) == -EINVAL, "why: no client");
	check(kcopyd_check_region(kc, NULL, 0) == -EINVAL, "why: no region");
	kcopyd_wait(kc);
	check(res.calls == 0 && file_size(dst) == 0, "why: a refused job ran");
	kcopyd_client_destroy(kc);
	close(src);
	close(dst);
}

/* The reason is the calling thread's: a thread's refusal does not change
 * another's, and a new thread has none. */
struct why_thread {
	struct kcopyd_client *kc;
	pthread_barrier_t *barrier;
	struct io_region r;
	const char *want;
	int ok;
};

static void *why_thread(void *p)
{
	struct why_thread *w = p;
	const char *got;

	w->ok = !kcopyd_get_error() && !kcopyd_get_errno();
	w->ok &= kcopyd_check_region(w->kc, &w->r, KCOPYD_REGION_SOURCE) < 0;
	pthread_barrier_wait(w->barrier);	/* both refused */
	pthread_barrier_wait(w->barrier);
	got = kcopyd_get_error();
	w->ok &= got && !strcmp(got, w->want);
	return NULL;
}

static void test_error_per_thread(void)
{
	struct kcopyd_client *kc;
	pthread_barrier_t barrier;
	int src = make_file("why-thr", MiB, 43);
	struct why_thread w[2] = {
		{ .r = { src, 2000, 100 }, .want = "region (sector 2000, 100 "
		  "sectors) ends past the end of the file (2048 sectors)" },
		{ .r = { 998, 0, 8 }, .want = "descriptor 998 is not open" },
	};
	pthread_t t[2];
	int i;

	check(kcopyd_client_create(4, &kc) == 0, "create");
	pthread_barrier_init(&barrier, NULL, 2);
	for (i = 0; i < 2; i++) {
		w[i].kc = kc;
		w[i].barrier = &barrier;
		check(pthread_create(&t[i], NULL, why_thread, &w[i]) == 0,
		      "thread");
	}
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		check(w[i].ok, "thread %d: its own reason, or none at first", i);
	}
	pthread_barrier_destroy(&barrier);
	kcopyd_client_destroy(kc);
	close(src);
}

/* Two destinations at different offsets, tiny and odd budgets. */
static void test_budgets(void)
{
	static const unsigned int budgets[] = { 1, 2, 3, 7, 64, 1024 };
	size_t size = 5 * MiB + 3 * 512;
	int src = make_file("budget-src", size, 7);
	unsigned int b;

	for (b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
		struct kcopyd_client *kc;
		struct kcopyd_stats st = { .struct_size = sizeof(st) };
		struct result res = RESULT_INIT;
		int d0 = make_file("budget-d0", 0, 0);
		int d1 = make_file("budget-d1", 0, 0);
		struct io_region from = { src, 3, size / 512 - 3 };
		struct io_region to[2] = { { d0, 0, from.count },
					   { d1, 77, from.count } };

		check(kcopyd_client_create(budgets[b], &kc) == 0, "create %u",
		      budgets[b]);
		check(kcopyd_copy(kc, &from, 2, to, 0, notify, &res) == 0,
		      "copy with %u pages", budgets[b]);
		check(kcopyd_wait(kc) == 0, "wait");
		kcopyd_get_stats(kc, &st);
		check(res.calls == 1 && res.read_err == 0 && res.write_err == 0,
		      "budget %u: calls %d read_err %d write_err %u",
		      budgets[b], res.calls, res.read_err, res.write_err);
		check(same(src, 3 * 512, d0, 0, size - 3 * 512),
		      "budget %u: destination 0 differs", budgets[b]);
		check(same(src, 3 * 512, d1, 77 * 512, size - 3 * 512),
		      "budget %u: destination 1 differs", budgets[b]);
		check(st.pages_peak > 0 && st.pages_peak <= budgets[b],
		      "budget %u: peak %u pages", budgets[b], st.pages_peak);
		check(st.bytes_read == size - 3 * 512 &&
		      st.bytes_written == 2 * (size - 3 * 512),
		      "budget %u: counters read %llu written %llu", budgets[b],
		      (unsigned long long)st.bytes_read,
		      (unsigned long long)st.bytes_written);
		check(st.jobs_submitted == 1 && st.jobs_completed == 1,
		      "budget %u: job counters", budgets[b]);
		kcopyd_client_destroy(kc);
		close(d0);
		close(d1);
	}
	close(src);
}

/* Many concurrent jobs, each larger than the whole budget, from several
 * threads at once. */
struct thread_arg {
	struct kcopyd_client *kc;
	int src, dst;
	int index;
	struct result *res;
};

static void *submitter(void *p)
{
	struct thread_arg *a = p;
	struct io_region from = { a->src, (uint64_t)a->index * 4096, 4096 };
	struct io_region to = { a->dst, (uint64_t)a->index * 4096, 4096 };

	check(kcopyd_copy(a->kc, &from, 1, &to, 0, notify, a->res) == 0,
	      "concurrent copy %d", a->index);
	return NULL;
}

static void test_concurrent(void)
{
	enum { JOBS = 8 };
	struct kcopyd_client *kc;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	struct result res = RESULT_INIT;
	struct thread_arg args[JOBS];
	pthread_t t[JOBS];
	int src = make_file("conc-src", JOBS * 2 * MiB, 3);
	int dst = make_file("conc-dst", 0, 0);
	int i;

	check(kcopyd_client_create(64, &kc) == 0, "create");
	check(kcopyd_set_subjob_size(kc, 64 * 1024) == 0, "sub-job size");
	for (i = 0; i < JOBS; i++) {
		args[i] = (struct thread_arg){ kc, src, dst, i, &res };
		pthread_create(&t[i], NULL, submitter, &args[i]);
	}
	for (i = 0; i < JOBS; i++)
		pthread_join(t[i], NULL);
	check(kcopyd_set_subjob_size(kc, 8192) == 0 ||
	      kcopyd_set_subjob_size(kc, 8192) == -EBUSY, "resize");
	kcopyd_wait(kc);
	kcopyd_get_stats(kc, &st);
	check(res.calls == JOBS && !res.read_err && !res.write_err,
	      "concurrent: %d callbacks", res.calls);
	check(same(src, 0, dst, 0, JOBS * 2 * MiB), "concurrent: data differs");
	check(st.pages_peak <= 64, "concurrent: peak %u", st.pages_peak);
	kcopyd_client_destroy(kc);
	close(src);
	close(dst);
}

/* A callback that submits the next job; kcopyd_wait refuses to run inside
 * a callback. */
struct chain {
	struct kcopyd_client *kc;
	int src, dst;
	int next, last;
	int wait_ret;
	int failed;
};

static void chain_notify(int read_err, unsigned int write_err, void *context)
{
	struct chain *c = context;
	struct io_region from = { c->src, (uint64_t)c->next * 256, 256 };
	struct io_region to = { c->dst, (uint64_t)c->next * 256, 256 };

	c->failed |= read_err || write_err;
	c->wait_ret = kcopyd_wait(c->kc);
	if (c->next == c->last)
		return;
	c->next++;
	if (kcopyd_copy(c->kc, &from, 1, &to, 0, chain_notify, c) < 0)
		c->failed = 1;
}

static void test_chain(void)
{
	struct kcopyd_client *kc;
	struct chain c;
	int src = make_file("chain-src", MiB, 5);
	int dst = make_file("chain-dst", 0, 0);
	struct io_region from = { src, 0, 256 };
	struct io_region to = { dst, 0, 256 };

	check(kcopyd_client_create(16, &kc) == 0, "create");
	c = (struct chain){ kc, src, dst, 1, 8, 0, 0 };
	check(kcopyd_copy(kc, &from, 1, &to, 0, chain_notify, &c) == 0,
	      "chain start");
	kcopyd_wait(kc);
	check(c.next == 8 && !c.failed, "chain: %d links", c.next);
	check(c.wait_ret == -EDEADLK, "kcopyd_wait in a callback: %d",
	      c.wait_ret);
	check(same(src, 0, dst, 0, MiB), "chain: data differs");
	kcopyd_client_destroy(kc);
	close(src);
	close(dst);
}

/* destroy waits for outstanding jobs. */
static void test_destroy_waits(void)
{
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	struct io_region from, to;
	int src, dst, i;

	make_pair("destroy", 16 * MiB, 9, &from, &to);
	src = from.fd;
	dst = to.fd;
	check(kcopyd_client_create(8, &kc) == 0, "create");
	for (i = 0; i < 3; i++)
		check(kcopyd_copy(kc, &from, 1, &to, 0, notify, &res) == 0,
		      "destroy: copy");
	kcopyd_client_destroy(kc);
	check(res.calls == 3, "destroy returned with %d of 3 callbacks",
	      res.calls);
	check(same(src, 0, dst, 0, 16 * MiB), "destroy: data differs");
	close(src);
	close(dst);
}

static void test_zero_and_flags(void)
{
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	int d0 = make_file("zero-d0", 2 * MiB, 11);
	int d1 = make_file("zero-d1", 2 * MiB, 13);
	struct io_region to[2] = { { d0, 8, 2048 }, { d1, 0, 2048 } };
	struct kcopyd_fd_info info = { .struct_size = sizeof(info) };

	check(kcopyd_client_create(32, &kc) == 0, "create");
	check(kcopyd_zero(kc, 2, to, 0, notify, &res) == 0, "zero");
	kcopyd_wait(kc);
	check(res.calls == 1 && !res.write_err, "zero: write_err %u",
	      res.write_err);
	check(all_zero(d0, 8 * 512, MiB) && all_zero(d1, 0, MiB),
	      "zero: not zeroed");
	check(!all_zero(d0, 0, 512) && !all_zero(d0, 8 * 512 + MiB, 512),
	      "zero: zeroed outside the region");
	check(kcopyd_probe_fd(kc, d0, &info) == 0 && !info.is_blockdev &&
	      info.logical_block_size == 512 && info.size == 2 * MiB,
	      "probe a file");

	/* Buffered only, sequential writes, on odd offsets. */
	res.calls = 0;
	{
		struct io_region from = { d1, 2048, 1000 };
		struct io_region dst = { d0, 3, 1000 };

		check(kcopyd_copy(kc, &from, 1, &dst,
				  KCOPYD_NO_DIRECT | KCOPYD_WRITE_SEQ, notify,
				  &res) == 0, "copy WRITE_SEQ|NO_DIRECT");
		kcopyd_wait(kc);
		check(res.calls == 1 && same(d1, 2048 * 512, d0, 3 * 512,
					     1000 * 512),
		      "WRITE_SEQ copy differs");
	}
	/* A zero-length job completes. */
	{
		struct io_region from = { d1, 0, 0 }, dst = { d0, 0, 0 };

		res.calls = 0;
		check(kcopyd_copy(kc, &from, 1, &dst, 0, notify, &res) == 0,
		      "empty copy");
		kcopyd_wait(kc);
		check(res.calls == 1, "empty copy: %d callbacks", res.calls);
	}
	kcopyd_client_destroy(kc);
	close(d0);
	close(d1);
}

/* KCOPYD_DATA_IN_ORDER: the hook sees the region in ascending order, each
 * range once, for a copy and for a read job, with many small sub-jobs in
 * flight.  Local files complete in order here; reads that complete out of
 * order (a slow first read on an NBD export) are tested through kcopy
 * --hash in kcopy-hash.sh. */
struct order {
	uint64_t next;		/* the sector the next call must start at */
	int bad;		/* calls out of order */
	int calls;
};

static void order_hook(int src_fd, uint64_t sector, uint64_t count,
		       const void *data, void *context)
{
	struct order *o = context;

	(void)src_fd;
	(void)data;
	if (sector != o->next)
		o->bad++;
	o->next = sector + count;
	o->calls++;
}

static void test_data_in_order(void)
{
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	struct io_region from, to;
	struct order o = { 8, 0, 0 };
	int round;

	make_pair("order", 16 * MiB, 23, &from, &to);
	from.sector = 8;
	from.count -= 8;
	to.count = from.count;
	check(kcopyd_client_create(1024, &kc) == 0, "create");
	check(kcopyd_set_subjob_size(kc, 16 * 1024) == 0, "subjob size");
	kcopyd_set_data_fn(kc, order_hook, &o);
	for (round = 0; round < 2; round++) {
		o = (struct order){ 8, 0, 0 };
		check(kcopyd_copy(kc, &from, round ? 0 : 1, round ? NULL : &to,
				  KCOPYD_DATA_IN_ORDER, notify, &res) == 0,
		      "in-order job %d", round);
		kcopyd_wait(kc);
		check(!o.bad && o.next == from.sector + from.count &&
		      o.calls == (int)((from.count + 31) / 32),
		      "in order (%s): %d out of order, ended at %llu, %d calls",
		      round ? "read job" : "copy", o.bad,
		      (unsigned long long)o.next, o.calls);
	}
	check(same(from.fd, 8 * 512, to.fd, 0, (size_t)to.count * 512),
	      "in-order copy differs");
	kcopyd_client_destroy(kc);
	close(from.fd);
	close(to.fd);
}

/* A pipe destination whose reader is gone: EPIPE, that destination's bit,
 * the others written; SIGPIPE (left at its default here, which would kill
 * this process) never reaches the process. */
static void test_broken_pipe(void)
{
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	struct io_region from, to[2];
	int p[2];

	make_pair("pipe", 4 * MiB, 29, &from, &to[1]);
	check(signal(SIGPIPE, SIG_DFL) != SIG_ERR && pipe(p) == 0, "pipe");
	close(p[0]);
	to[0] = (struct io_region){ p[1], 0, 0 };
	check(kcopyd_client_create(256, &kc) == 0, "create");
	check(kcopyd_copy(kc, &from, 2, to, KCOPYD_DROP_FAILED_DESTS, notify,
			  &res) == 0, "copy to a broken pipe");
	kcopyd_wait(kc);
	check(res.calls == 1 && res.write_err == 1 && !res.read_err,
	      "broken pipe: write_err %#x", res.write_err);
	check(same(from.fd, 0, to[1].fd, 0, 4 * MiB),
	      "broken pipe: the file beside it differs");
	kcopyd_client_destroy(kc);
	close(p[1]);
	close(from.fd);
	close(to[1].fd);
}

/* More streams with requests at once than a poll set of fixed size held
 * (33): 40 pipe sources, each its own job of one client, all waiting for
 * data; they are fed one at a time, each job must then end by itself.  A
 * stream left out of the engine's poll is never read (a hang). */
#define MANY_STREAMS 40

static int result_calls(struct result *r)
{
	int n;

	pthread_mutex_lock(&r->lock);
	n = r->calls;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static void test_many_streams(void)
{
	struct kcopyd_client *kc;
	struct result res[MANY_STREAMS];
	int p[MANY_STREAMS][2], dst[MANY_STREAMS];
	char buf[4096], name[32];
	unsigned int i, j;
	bool stuck = false;

	check(kcopyd_client_create(2 * MANY_STREAMS, &kc) == 0, "create");
	/* a slot per page: a sub-job of every job in flight at once */
	check(kcopyd_set_subjob_size(kc, 4096) == 0, "sub-job of 4096");
	for (i = 0; i < MANY_STREAMS; i++) {
		struct io_region from, to;

		pthread_mutex_init(&res[i].lock, NULL);
		res[i].calls = res[i].read_err = 0;
		res[i].write_err = 0;
		snprintf(name, sizeof(name), "streams-%u", i);
		dst[i] = make_file(name, 0, 0);
		if (pipe(p[i]) < 0) {
			check(0, "pipe %u", i);
			exit(99);
		}
		from = (struct io_region){ p[i][0], 0, 0 };
		to = (struct io_region){ dst[i], 0, 0 };
		check(kcopyd_copy(kc, &from, 1, &to, 0, notify, &res[i]) == 0,
		      "copy from pipe %u", i);
	}
	for (i = 0; i < MANY_STREAMS; i++) {
		memset(buf, 'a' + i % 26, sizeof(buf));
		check(write(p[i][1], buf, sizeof(buf)) == sizeof(buf),
		      "write to pipe %u", i);
		close(p[i][1]);
		p[i][1] = -1;
		for (j = 0; j < 500 && !result_calls(&res[i]); j++)
			usleep(10000);
		if (!result_calls(&res[i])) {
			check(0, "pipe %u of %u: not read in 5 s (not polled)",
			      i + 1, MANY_STREAMS);
			stuck = true;
			break;
		}
	}
	/* Feed the rest, so that a failure does not hang the test. */
	for (; stuck && i < MANY_STREAMS; i++) {
		if (p[i][1] < 0)
			continue;
		check(write(p[i][1], buf, sizeof(buf)) == sizeof(buf),
		      "write to pipe %u", i);
		close(p[i][1]);
		p[i][1] = -1;
	}
	kcopyd_wait(kc);
	for (i = 0; i < MANY_STREAMS; i++) {
		check(res[i].calls == 1 && !res[i].read_err &&
		      !res[i].write_err, "stream %u: calls %d read_err %d "
		      "write_err %#x", i, res[i].calls, res[i].read_err,
		      res[i].write_err);
		check(file_size(dst[i]) == 4096, "stream %u: %lld bytes", i,
		      (long long)file_size(dst[i]));
		close(p[i][0]);
		close(dst[i]);
		pthread_mutex_destroy(&res[i].lock);
	}
	kcopyd_client_destroy(kc);
}

/* A destination opened read-only fails its writes: exactly its bit, and
 * with DROP_FAILED_DESTS the other destination is complete. */
static void test_write_error_isolated(void)
{
	char path[256];
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	int src = make_file("we-src", 4 * MiB, 21);
	int good = make_file("we-good", 0, 0);
	int bad;
	struct io_region from = { src, 0, 8192 };
	struct io_region to[3];

	make_file("we-bad", 0, 0);
	test_path(path, sizeof(path), "we-bad");
	bad = open(path, O_RDONLY);
	to[0] = (struct io_region){ good, 0, 8192 };
	to[1] = (struct io_region){ bad, 0, 8192 };
	to[2] = (struct io_region){ good, 8192, 8192 };
	check(kcopyd_client_create(16, &kc) == 0, "create");
	check(kcopyd_copy(kc, &from, 3, to, KCOPYD_DROP_FAILED_DESTS, notify,
			  &res) == 0, "copy");
	kcopyd_wait(kc);
	check(res.calls == 1 && res.read_err == 0 && res.write_err == 2,
	      "write error: read_err %d write_err %u", res.read_err,
	      res.write_err);
	check(same(src, 0, good, 0, 4 * MiB) &&
	      same(src, 0, good, 4 * MiB, 4 * MiB),
	      "write error: healthy destination incomplete");

	/* Flags 0: the job stops at the first error. */
	res = (struct result)RESULT_INIT;
	check(kcopyd_copy(kc, &from, 3, to, 0, notify, &res) == 0, "copy");
	kcopyd_wait(kc);
	check(res.calls == 1 && res.write_err == 2, "flags 0: write_err %u",
	      res.write_err);
	kcopyd_client_destroy(kc);
	close(src);
	close(good);
	close(bad);
}

/* Entries of a /proc/self directory, but for "." and "..". */
static int proc_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d) {
		perror(dir);
		exit(99);
	}
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The descriptors this process has open. */
static int open_fds(void)
{
	return proc_entries("/proc/self/fd") - 1;	/* the directory's own */
}

/* Threads of this process. */
static int task_count(void)
{
	return proc_entries("/proc/self/task");
}

struct destroy_ctx {
	struct kcopyd_client *kc;
	struct result res;
};

static void destroy_notify(int read_err, unsigned int write_err,
			   void *context)
{
	struct destroy_ctx *d = context;

	kcopyd_client_destroy(d->kc);	/* deferred: the engine frees it */
	notify(read_err, write_err, &d->res);
}

/* kcopyd_client_destroy from a job callback: the client is freed once the
 * callbacks of its outstanding jobs have returned; its threads end and its
 * descriptors are closed, nothing is left behind (under ASan: no leak). */
static void test_destroy_in_callback(void)
{
	struct destroy_ctx d = { NULL, RESULT_INIT };
	struct io_region from, to;
	int fds, tasks, i;

	make_pair("dcb", 4 * MiB, 31, &from, &to);
	fds = open_fds();
	tasks = task_count();
	check(kcopyd_client_create(64, &d.kc) == 0, "create");
	check(kcopyd_copy(d.kc, &from, 1, &to, 0, destroy_notify, &d) == 0,
	      "copy");
	for (i = 0; i < 500 && result_calls(&d.res) == 0; i++)
		usleep(10000);
	check(result_calls(&d.res) == 1, "destroy in callback: no callback");
	for (i = 0; i < 500 && (task_count() != tasks || open_fds() != fds);
	     i++)
		usleep(10000);
	check(task_count() == tasks, "destroy in callback: %d threads left "
	      "of the client", task_count() - tasks);
	check(open_fds() == fds, "destroy in callback: %d descriptors left",
	      open_fds() - fds);
	check(same(from.fd, 0, to.fd, 0, 4 * MiB),
	      "destroy in callback: data differs");
	close(from.fd);
	close(to.fd);
}

/* The client keeps a descriptor's record, and its O_DIRECT reopen, only
 * while a job uses it: after the jobs' callbacks and after a probe, the
 * process has no more descriptors open than before, and a file deleted
 * after its job has no reopen keeping it alive. */
static void test_files_released(void)
{
	char path[256];
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	struct kcopyd_fd_info info = { .struct_size = sizeof(info) };
	struct stat st;
	int src = make_file("rel-src", MiB, 17);
	int dst = make_file("rel-dst", 0, 0);
	struct io_region from = { src, 0, MiB / 512 };
	struct io_region to = { dst, 0, MiB / 512 };
	int before, i;

	check(kcopyd_client_create(64, &kc) == 0, "create");
	before = open_fds();
	for (i = 0; i < 3; i++)
		check(kcopyd_copy(kc, &from, 1, &to, 0, notify, &res) == 0,
		      "release: copy %d", i);
	check(kcopyd_zero(kc, 1, &to, 0, notify, &res) == 0, "release: zero");
	kcopyd_wait(kc);
	check(res.calls == 4 && !res.read_err && !res.write_err,
	      "release: %d callbacks", res.calls);
	check(open_fds() == before, "release: %d descriptors open after the "
	      "jobs, %d before", open_fds(), before);
	check(kcopyd_probe_fd(kc, src, &info) == 0 && info.size == MiB,
	      "release: probe");
	check(open_fds() == before, "release: %d descriptors open after a "
	      "probe, %d before", open_fds(), before);

	/* The number reused for another file after the job is probed
	 * afresh: a bigger source is no longer past its end. */
	test_path(path, sizeof(path), "rel-dst");
	check(unlink(path) == 0, "unlink");
	close(dst);
	dst = make_file("rel-dst2", 2 * MiB, 19);
	check(fstat(dst, &st) == 0 && st.st_size == 2 * MiB, "rel-dst2");
	from = (struct io_region){ dst, 0, 2 * MiB / 512 };
	to = (struct io_region){ src, 0, 2 * MiB / 512 };
	res = (struct result)RESULT_INIT;
	check(kcopyd_copy(kc, &from, 1, &to, 0, notify, &res) == 0,
	      "release: copy from a reused number");
	kcopyd_wait(kc);
	check(res.calls == 1 && !res.read_err && !res.write_err &&
	      same(dst, 0, src, 0, 2 * MiB), "release: reused number");
	check(open_fds() == before, "release: %d descriptors open at the end, "
	      "%d before", open_fds(), before);
	kcopyd_client_destroy(kc);
	close(src);
	close(dst);
}

static unsigned long read_ulong(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned long v = 0;

	if (!f || fscanf(f, "%lu", &v) != 1)
		v = 0;
	if (f)
		fclose(f);
	return v;
}

/* Many clients at once in one process, each with the tool's default budget
 * (2048 pages: 16 sub-job buffers), and each copies.  They used to take
 * 4096 AIO events each whatever they ran, so that the system-wide
 * fs.aio-max-nr (65536 by default) let only 16 exist at once; the number of
 * clients is chosen so that it would still be too many at 4096 each. */
static void test_many_clients(void)
{
	enum { OLD_EVENTS = 4096, MIN_CLIENTS = 64, PAGES = 2048 };
	unsigned long max = read_ulong("/proc/sys/fs/aio-max-nr");
	unsigned long used = read_ulong("/proc/sys/fs/aio-nr");
	unsigned long avail = max > used ? max - used : 0;
	unsigned int n = avail / OLD_EVENTS + 1, i, made = 0;
	struct kcopyd_client **kc;
	struct result res = RESULT_INIT;
	int src = make_file("many-src", MiB, 23);
	int dst = make_file("many-dst", 0, 0);
	int ret = 0;

	if (n < MIN_CLIENTS)
		n = MIN_CLIENTS;
	if (n > 1024) {
		printf("many clients: fs.aio-max-nr %lu is too high to show "
		       "the old limit with at most 1024 clients; skipped\n",
		       max);
		return;
	}
	kc = calloc(n, sizeof(*kc));
	for (i = 0; i < n && kc; i++) {
		struct io_region from = { src, i % 256 * 8, 8 };
		struct io_region to = { dst, i % 256 * 8, 8 };

		ret = kcopyd_client_create(PAGES, &kc[i]);
		if (ret < 0)
			break;
		made++;
		check(kcopyd_copy(kc[i], &from, 1, &to, 0, notify, &res) == 0,
		      "many clients: copy on client %u", i);
	}
	check(made == n, "many clients: client %u of %u (aio-max-nr %lu, "
	      "aio-nr %lu before): %s", made, n, max, used, strerror(-ret));
	for (i = 0; i < made; i++)
		kcopyd_client_destroy(kc[i]);
	check(res.calls == (int)made && !res.read_err && !res.write_err,
	      "many clients: %d callbacks", res.calls);
	check(same(src, 0, dst, 0, (made < 256 ? made : 256) * 8 * 512),
	      "many clients: data differs");
	free(kc);
	close(src);
	close(dst);
}

/* 32 destinations on a client whose budget has two buffers, so that its
 * AIO context is set up for 32 events only: submitted while another job is
 * outstanding, the job cannot grow the context and runs one sub-job at a
 * time; submitted on an idle client, it grows it.  Either way every
 * destination gets every byte. */
static void test_many_dests(void)
{
	enum { DESTS = KCOPYD_MAX_DESTS, SECTORS = 2048 };
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	int src = make_file("md-src", 8 * MiB, 29);
	int dst = make_file("md-dst", 0, 0);
	struct io_region from = { src, 0, SECTORS }, big = { src, 0, 16384 };
	struct io_region to[DESTS], big_to = { dst, DESTS * SECTORS, 16384 };
	unsigned int i, pass;

	for (i = 0; i < DESTS; i++)
		to[i] = (struct io_region){ dst, i * SECTORS, SECTORS };
	check(kcopyd_client_create(256, &kc) == 0, "create");
	for (pass = 0; pass < 2; pass++) {
		res = (struct result)RESULT_INIT;
		if (pass == 0)
			check(kcopyd_copy(kc, &big, 1, &big_to, 0, notify,
					  &res) == 0, "many dests: first job");
		check(kcopyd_copy(kc, &from, DESTS, to, 0, notify, &res) == 0,
		      "many dests: copy, pass %u", pass);
		kcopyd_wait(kc);
		check(res.calls == (pass == 0 ? 2 : 1) && !res.read_err &&
		      !res.write_err, "many dests: pass %u: %d callbacks, "
		      "write_err %#x", pass, res.calls, res.write_err);
		for (i = 0; i < DESTS; i++)
			check(same(src, 0, dst, (off_t)i * SECTORS * 512,
				   SECTORS * 512),
			      "many dests: pass %u: destination %u differs",
			      pass, i);
		check(pass || same(src, 0, dst, DESTS * SECTORS * 512, 8 * MiB),
		      "many dests: the first job's destination differs");
		if (pass == 0 && ftruncate(dst, 0) < 0)
			check(0, "many dests: ftruncate: %s", strerror(errno));
	}
	kcopyd_client_destroy(kc);
	close(src);
	close(dst);
}

/* Another thread reads the counters, probes, sets hooks and limits while
 * jobs run, then stops them: every call is safe from any thread at any
 * time, which the ThreadSanitizer build of this test checks. */
struct observer {
	struct kcopyd_client *kc;
	int fd;
	int done;	/* atomic: set by the main thread when to stop */
};

static void *observe(void *p)
{
	struct observer *o = p;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	struct kcopyd_fd_info info = { .struct_size = sizeof(info) };
	struct io_region *bad;
	size_t n;

	while (!__atomic_load_n(&o->done, __ATOMIC_ACQUIRE)) {
		kcopyd_get_stats(o->kc, &st);
		check(kcopyd_probe_fd(o->kc, o->fd, &info) == 0,
		      "observer: probe");
		if (kcopyd_get_bad_ranges(o->kc, &bad, &n) == 0)
			free(bad);
		kcopyd_set_rate(o->kc, 0);
		kcopyd_set_throttle(o->kc, 100);
		kcopyd_set_error_fn(o->kc, NULL, NULL);
		kcopyd_set_data_fn(o->kc, NULL, NULL);
	}
	kcopyd_client_stop(o->kc);
	return NULL;
}

static void test_observers(void)
{
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	struct observer o;
	pthread_t t;
	struct io_region from, to;
	int i;

	make_pair("obs", 16 * MiB, 43, &from, &to);
	check(kcopyd_client_create(32, &kc) == 0, "create");
	check(kcopyd_set_subjob_size(kc, 16384) == 0, "sub-job size");
	o = (struct observer){ kc, from.fd, 0 };
	pthread_create(&t, NULL, observe, &o);
	for (i = 0; i < 4; i++)
		check(kcopyd_copy(kc, &from, 1, &to, KCOPYD_WRITE_SEQ, notify,
				  &res) == 0, "observers: copy %d", i);
	kcopyd_wait(kc);
	check(same(from.fd, 0, to.fd, 0, 16 * MiB), "observers: data differs");
	for (i = 0; i < 4; i++)
		check(kcopyd_copy(kc, &from, 1, &to, 0, notify, &res) == 0,
		      "observers: copy to stop %d", i);
	__atomic_store_n(&o.done, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	kcopyd_wait(kc);
	check(res.calls == 8 && !res.read_err && !res.write_err,
	      "observers: %d callbacks", res.calls);
	kcopyd_client_destroy(kc);
	close(from.fd);
	close(to.fd);
}

/* ------------------------------------------------ sparse and zero-aware */

#define SP_SIZE (8 * MiB)

/* The data hook's view of a source: every sector it was handed. */
struct shadow {
	char *buf;
	uint64_t sectors;
};

static void shadow_record(int src_fd, uint64_t sector, uint64_t count,
			  const void *data, void *context)
{
	struct shadow *sh = context;

	(void)src_fd;
	memcpy(sh->buf + sector * 512, data, count * 512);
	sh->sectors += count;
}

/* A sparse source: data in the first sector, across a sub-job boundary,
 * around an allocated block of 64 KiB of zeros, and none in its last
 * 2 MiB (a hole up to the end). */
static int make_sparse_source(void)
{
	static const struct { off_t off; size_t len; } data[] = {
		{ 0, 512 }, { 512 * 1024 - 1536, 3072 },
		{ 2 * MiB, 4096 }, { 2 * MiB + 68 * 1024, 4096 },
		{ 5 * MiB + 512, 300 * 1024 },
	};
	int fd = make_file("sp-src", 0, 0);
	char *buf = malloc(300 * 1024);
	size_t i, j;

	check(buf && ftruncate(fd, SP_SIZE) == 0, "sparse source");
	for (i = 0; buf && i < sizeof(data) / sizeof(data[0]); i++) {
		for (j = 0; j < data[i].len; j++)
			buf[j] = (char)(1 + (j * 7 + i) % 251);
		check(pwrite(fd, buf, data[i].len, data[i].off) ==
		      (ssize_t)data[i].len, "write source extent %zu", i);
	}
	if (buf) {
		memset(buf, 0, 64 * 1024);
		check(pwrite(fd, buf, 64 * 1024, 2 * MiB + 4096) == 64 * 1024,
		      "write the allocated zeros");
	}
	free(buf);
	return fd;
}

/* One copy of the sparse source with flags to dst; the stats after it. */
static void sparse_copy(const char *name, int src, int dst, unsigned int flags,
			struct kcopyd_stats *st, struct shadow *sh)
{
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	struct io_region from = { src, 0, SP_SIZE / 512 };
	struct io_region to = { dst, 0, SP_SIZE / 512 };

	check(kcopyd_client_create(256, &kc) == 0, "%s: create", name);
	if (sh) {
		memset(sh->buf, 0x55, SP_SIZE);
		sh->sectors = 0;
		kcopyd_set_data_fn(kc, shadow_record, sh);
	}
	check(kcopyd_copy(kc, &from, dst < 0 ? 0 : 1, dst < 0 ? NULL : &to,
			  flags, notify, &res) == 0, "%s: copy", name);
	kcopyd_wait(kc);
	st->struct_size = sizeof(*st);
	kcopyd_get_stats(kc, st);
	check(res.calls == 1 && !res.read_err && !res.write_err,
	      "%s: calls %d read_err %d write_err %u", name, res.calls,
	      res.read_err, res.write_err);
	if (dst >= 0)
		check(file_size(dst) == SP_SIZE && same(src, 0, dst, 0, SP_SIZE),
		      "%s: the destination differs from the source", name);
	check(st->bytes_holes > 0 && st->bytes_read + st->bytes_holes <=
	      SP_SIZE && st->bytes_read < SP_SIZE / 4,
	      "%s: holes read (read %llu, holes %llu)", name,
	      (unsigned long long)st->bytes_read,
	      (unsigned long long)st->bytes_holes);
	kcopyd_client_destroy(kc);
}

static void test_sparse(void)
{
	struct kcopyd_client *kc;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	struct kcopyd_stats def = { .struct_size = sizeof(def) };
	struct shadow sh = { malloc(SP_SIZE), 0 };
	char *want = malloc(SP_SIZE);
	int src = make_sparse_source(), dst;

	if (!sh.buf || !want || pread(src, want, SP_SIZE, 0) != SP_SIZE) {
		check(0, "sparse: set up");
		return;
	}
	/* Default: holes not read, zero ranges of a file full of old data
	 * zeroed without writing data; the hook sees every sector. */
	dst = make_file("sp-dst", SP_SIZE, 5);
	sparse_copy("sparse", src, dst, 0, &def, &sh);
	check(def.bytes_zeroed > 0 && def.bytes_skipped == 0 &&
	      def.bytes_written + def.bytes_zeroed == SP_SIZE &&
	      def.bytes_written < SP_SIZE / 4,
	      "sparse: written %llu zeroed %llu skipped %llu",
	      (unsigned long long)def.bytes_written,
	      (unsigned long long)def.bytes_zeroed,
	      (unsigned long long)def.bytes_skipped);
	check(sh.sectors == SP_SIZE / 512 && !memcmp(sh.buf, want, SP_SIZE),
	      "sparse: the data hook saw %llu sectors, or other data",
	      (unsigned long long)sh.sectors);
	close(dst);

	/* A read job (--verify's read-back) sees zeros for holes too. */
	sparse_copy("read job", src, -1, 0, &st, &sh);
	check(sh.sectors == SP_SIZE / 512 && !memcmp(sh.buf, want, SP_SIZE) &&
	      st.bytes_written == 0, "read job: the data hook's view");

	/* No zero detection: the allocated zeros are written as data. */
	dst = make_file("sp-dst", SP_SIZE, 6);
	sparse_copy("no zero detect", src, dst, KCOPYD_NO_ZERO_DETECT, &st, NULL);
	check(st.bytes_written == def.bytes_written + 64 * 1024 &&
	      st.bytes_written + st.bytes_zeroed == SP_SIZE,
	      "no zero detect: written %llu, with detection %llu",
	      (unsigned long long)st.bytes_written,
	      (unsigned long long)def.bytes_written);
	close(dst);

	/* Allocated: every byte written, none zeroed; holes still not read. */
	dst = make_file("sp-dst", SP_SIZE, 7);
	sparse_copy("allocated", src, dst, KCOPYD_ALLOCATED, &st, NULL);
	check(st.bytes_written == SP_SIZE && st.bytes_zeroed == 0 &&
	      st.bytes_skipped == 0, "allocated: written %llu zeroed %llu",
	      (unsigned long long)st.bytes_written,
	      (unsigned long long)st.bytes_zeroed);
	close(dst);

	/* The destination reads as zeros (promised): zero ranges skipped,
	 * and the empty file still ends where the region does. */
	dst = make_file("sp-dst", 0, 0);
	sparse_copy("dest is zero", src, dst, KCOPYD_DEST_IS_ZERO, &st, NULL);
	check(st.bytes_skipped + st.bytes_written == SP_SIZE &&
	      st.bytes_zeroed == 0, "dest is zero: skipped %llu written %llu",
	      (unsigned long long)st.bytes_skipped,
	      (unsigned long long)st.bytes_written);
	close(dst);

	/* A destination that holds a hole up to old data at 6 MiB (in the
	 * source's final hole): the zero ranges in the hole it began with
	 * are skipped (its map is asked when the job begins), the old data
	 * is zeroed.  Without the look-up nothing is skipped; with one that
	 * went past the hole, the old data would stay. */
	dst = make_file("sp-dst", 0, 0);
	memset(sh.buf, 0xab, MiB);
	check(ftruncate(dst, SP_SIZE) == 0 &&
	      pwrite(dst, sh.buf, MiB, 6 * MiB) == MiB, "holed destination");
	sparse_copy("holed dest", src, dst, 0, &st, NULL);
	check(st.bytes_skipped > 0 && st.bytes_zeroed >= MiB &&
	      st.bytes_skipped + st.bytes_zeroed + st.bytes_written == SP_SIZE,
	      "holed dest: skipped %llu zeroed %llu written %llu",
	      (unsigned long long)st.bytes_skipped,
	      (unsigned long long)st.bytes_zeroed,
	      (unsigned long long)st.bytes_written);
	close(dst);

	/* The same per descriptor: KCOPYD_FD_READS_ZERO, kept by the client
	 * until cleared. */
	check(kcopyd_client_create(16, &kc) == 0, "create");
	dst = make_file("sp-dst", 0, 0);
	check(kcopyd_set_fd_hints(kc, dst, 1u << 5) == -EINVAL, "unknown hint");
	check(kcopyd_set_fd_hints(kc, 999, KCOPYD_FD_READS_ZERO) == -EBADF,
	      "hint on a closed descriptor");
	check(kcopyd_set_fd_hints(NULL, dst, 0) == -EINVAL, "NULL client");
	check(kcopyd_set_fd_hints(kc, dst, KCOPYD_FD_READS_ZERO) == 0, "hint");
	{
		struct result res = RESULT_INIT;
		struct io_region from = { src, 0, SP_SIZE / 512 };
		struct io_region to = { dst, 0, SP_SIZE / 512 };

		check(kcopyd_copy(kc, &from, 1, &to, 0, notify, &res) == 0,
		      "reads zero: copy");
		kcopyd_wait(kc);
		kcopyd_get_stats(kc, &st);
		check(res.calls == 1 && !res.write_err &&
		      file_size(dst) == SP_SIZE && same(src, 0, dst, 0, SP_SIZE),
		      "reads zero: the destination differs");
		check(st.bytes_skipped + st.bytes_written == SP_SIZE &&
		      st.bytes_zeroed == 0,
		      "reads zero: skipped %llu written %llu",
		      (unsigned long long)st.bytes_skipped,
		      (unsigned long long)st.bytes_written);
		/* Cleared: old data is zeroed again, not left. */
		check(pwrite(dst, want + MiB, MiB, 6 * MiB) == MiB &&
		      pwrite(dst, "x", 1, 4 * MiB) == 1, "dirty it");
		check(kcopyd_set_fd_hints(kc, dst, 0) == 0, "clear the hint");
		res = (struct result)RESULT_INIT;
		check(kcopyd_copy(kc, &from, 1, &to, 0, notify, &res) == 0,
		      "hint cleared: copy");
		kcopyd_wait(kc);
		check(res.calls == 1 && !res.write_err &&
		      same(src, 0, dst, 0, SP_SIZE),
		      "hint cleared: old data left in a zero range");
	}
	/* kcopyd_map: the source's map, in sectors; every hole it reports
	 * reads as zeros, all the data is in what it reports as data, and
	 * the last 2 MiB are one hole. */
	{
		uint64_t sector = 0, run = 0, data = 0;
		int r = 0, fds[2];

		while (sector < SP_SIZE / 512) {
			r = kcopyd_map(kc, src, sector, SP_SIZE / 512 - sector,
				       &run);
			if (r < 0 || run == 0 ||
			    run > SP_SIZE / 512 - sector)
				break;
			if (r)
				data += run;
			else
				check(all_zero(src, (off_t)sector * 512,
					       run * 512),
				      "map: a hole at sector %llu holds data",
				      (unsigned long long)sector);
			sector += run;
		}
		check(sector == SP_SIZE / 512 && data * 512 >= 315 * 1024 &&
		      data * 512 < SP_SIZE / 4,
		      "map: r %d at sector %llu, %llu data sectors", r,
		      (unsigned long long)sector, (unsigned long long)data);
		check(kcopyd_map(kc, src, 0, 1, &run) == 1 && run == 1,
		      "map: the first sector is data");
		check(kcopyd_map(kc, src, SP_SIZE / 512 - 4096, 4096, &run) == 0
		      && run == 4096, "map: the last 2 MiB are a hole");
		check(kcopyd_map(kc, src, 0, 0, &run) == -EINVAL,
		      "map: count 0");
		check(kcopyd_map(kc, src, SP_SIZE / 512, 1, &run) == -EINVAL,
		      "map: beyond the end");
		check(kcopyd_map(kc, src, 0, 1, NULL) == -EINVAL, "map: NULL");
		check(kcopyd_map(kc, 999, 0, 1, &run) == -EBADF,
		      "map: a closed descriptor");
		check(pipe(fds) == 0, "pipe");
		check(kcopyd_map(kc, fds[0], 0, 1, &run) == -EOPNOTSUPP,
		      "map: a pipe cannot tell");
		close(fds[0]);
		close(fds[1]);
	}
	kcopyd_client_destroy(kc);
	close(dst);
	close(src);
	free(sh.buf);
	free(want);
}

/* Zero detection on a stream source: a pipe carrying data and zero blocks
 * (a zero block inside a sub-job, a zero run across several sub-jobs of
 * 64 KiB, a block of one data byte) and a last partial sector, of data,
 * of zeros after a zero block, or of zeros after a data block.  One job
 * to a new file with KCOPYD_FD_READS_ZERO and to a longer file of old
 * data: both end equal to the stream (the new one at its length, the old
 * one keeping what lies past it); the zero blocks are skipped on the
 * first and zeroed on the second, never written, and the new file
 * allocates about its data. */
#define SZ_LEN (MiB + 4096 + 333)
#define SZ_OLD (2 * MiB)

struct feed {
	int fd;
	const char *buf;
	size_t len;
};

/* Write the feed's bytes into its pipe and close it. */
static void *feed_pipe(void *p)
{
	struct feed *f = p;
	size_t done = 0;
	ssize_t n;

	while (done < f->len) {
		n = write(f->fd, f->buf + done, f->len - done);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(f->fd);
	return NULL;
}

/* The stream's bytes: data where kind asks for it, ending as tail says
 * (0: data; 1: a zero block and 333 zero bytes; 2: a data block and
 * 333 zero bytes, a zero run shorter than a sector).  Returns the bytes of its zero blocks (whole 4096-byte blocks
 * from the start, and the last partial one). */
static size_t stream_zero_image(char *buf, int tail)
{
	static const struct { size_t off, len; } data[] = {
		{ 0, 512 }, { 20000, 1 }, { 300000, 100000 },
		{ MiB, 4096 + 333 },
	};
	size_t i, j, zero = 0;

	memset(buf, 0, SZ_LEN);
	for (i = 0; i < sizeof(data) / sizeof(data[0]); i++)
		for (j = 0; j < data[i].len; j++)
			buf[data[i].off + j] = (char)(1 + (j * 13 + i) % 253);
	if (tail == 1)
		memset(buf + MiB, 0, SZ_LEN - MiB);
	if (tail == 2)
		memset(buf + SZ_LEN - 333, 0, 333);
	for (i = 0; i < SZ_LEN; i += 4096) {
		size_t len = SZ_LEN - i < 4096 ? SZ_LEN - i : 4096;

		if (all_zero_mem((const unsigned char *)buf + i, len))
			zero += len;
	}
	return zero;
}

static void test_stream_zero(void)
{
	static const char *const tails[] = {
		"ends in data", "ends in zeros", "ends in 333 zero bytes" };
	char *buf = malloc(SZ_LEN);
	int tail;

	check(buf != NULL, "stream zero: buffer");
	for (tail = 0; buf && tail < 3; tail++) {
		const char *name = tails[tail];
		size_t zero = stream_zero_image(buf, tail);
		struct kcopyd_stats st = { .struct_size = sizeof(st) };
		struct kcopyd_client *kc;
		struct result res = RESULT_INIT;
		struct io_region from, to[2];
		int p[2], fresh = make_file("sz-new", 0, 0);
		int old = make_file("sz-old", SZ_OLD, 61);
		int ref = make_file("sz-ref", SZ_OLD, 61);
		int img = make_file("sz-img", 0, 0);
		struct feed f;
		pthread_t t;
		struct stat sb;

		check(pwrite(img, buf, SZ_LEN, 0) == SZ_LEN && pipe(p) == 0,
		      "%s: set up", name);
		check(kcopyd_client_create(64, &kc) == 0 &&
		      kcopyd_set_subjob_size(kc, 64 * 1024) == 0 &&
		      kcopyd_set_fd_hints(kc, fresh, KCOPYD_FD_READS_ZERO) == 0,
		      "%s: client", name);
		from = (struct io_region){ p[0], 0, 0 };
		to[0] = (struct io_region){ fresh, 0, 0 };
		to[1] = (struct io_region){ old, 0, 0 };
		f = (struct feed){ p[1], buf, SZ_LEN };
		check(pthread_create(&t, NULL, feed_pipe, &f) == 0,
		      "%s: feeder", name);
		check(kcopyd_copy(kc, &from, 2, to, 0, notify, &res) == 0,
		      "%s: copy", name);
		kcopyd_wait(kc);
		pthread_join(t, NULL);
		kcopyd_get_stats(kc, &st);
		check(res.calls == 1 && !res.read_err && !res.write_err,
		      "%s: calls %d read_err %d write_err %#x", name, res.calls,
		      res.read_err, res.write_err);
		check(file_size(fresh) == SZ_LEN && same(img, 0, fresh, 0, SZ_LEN),
		      "%s: the new file (%lld bytes) differs from the stream",
		      name, (long long)file_size(fresh));
		check(file_size(old) == SZ_OLD && same(img, 0, old, 0, SZ_LEN) &&
		      same(ref, SZ_LEN, old, SZ_LEN, SZ_OLD - SZ_LEN),
		      "%s: the old file differs from the stream and its past",
		      name);
		check(fsync(fresh) == 0 && fstat(fresh, &sb) == 0 &&
		      (uint64_t)sb.st_blocks * 512 <= SZ_LEN - zero + 16384,
		      "%s: the new file allocates %llu bytes for %zu of data",
		      name, (unsigned long long)sb.st_blocks * 512,
		      SZ_LEN - zero);
		check(st.bytes_skipped == zero && st.bytes_zeroed == zero &&
		      st.bytes_written == 2 * (SZ_LEN - zero) &&
		      st.bytes_read == SZ_LEN,
		      "%s: skipped %llu zeroed %llu written %llu read %llu, "
		      "not %zu zero bytes of %u", name,
		      (unsigned long long)st.bytes_skipped,
		      (unsigned long long)st.bytes_zeroed,
		      (unsigned long long)st.bytes_written,
		      (unsigned long long)st.bytes_read, zero, SZ_LEN);
		kcopyd_client_destroy(kc);
		close(p[0]);
		close(fresh);
		close(old);
		close(ref);
		close(img);
	}
	free(buf);
}

/* The highest descriptor open. */
static int highest_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = -1;

	if (!d) {
		perror("/proc/self/fd");
		exit(99);
	}
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > n)
			n = atoi(e->d_name);
	closedir(d);
	return n;
}

/* The library leaves the caller's file offset alone: the source's map
 * (SEEK_DATA, SEEK_HOLE) is asked of a descriptor of its own, also where
 * it has no O_DIRECT reopen to ask (here: no descriptor left to open,
 * RLIMIT_NOFILE), in a copy and in kcopyd_map. */
static void test_caller_offset(void)
{
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	int src = make_sparse_source(), dst = make_file("off-dst", 0, 0);
	struct io_region from = { src, 0, SP_SIZE / 512 };
	struct io_region to = { dst, 0, SP_SIZE / 512 };
	struct rlimit old, lim;
	int *fill = calloc(4096, sizeof(*fill)), nfill = 0, fd;
	uint64_t run;

	check(fill && lseek(src, 12345, SEEK_SET) == 12345, "seek the source");
	check(lseek(dst, 777, SEEK_SET) == 777, "seek the destination");
	check(kcopyd_client_create(256, &kc) == 0, "create");
	check(getrlimit(RLIMIT_NOFILE, &old) == 0, "getrlimit");
	lim = old;
	lim.rlim_cur = (rlim_t)highest_fd() + 1;
	check(setrlimit(RLIMIT_NOFILE, &lim) == 0, "setrlimit");
	while (fill && nfill < 4096 &&
	       (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		fill[nfill++] = fd;
	check(kcopyd_copy(kc, &from, 1, &to, 0, notify, &res) == 0, "copy");
	kcopyd_wait(kc);
	fd = kcopyd_map(kc, src, 1024, 64, &run);
	check(fd >= 0 || fd == -EOPNOTSUPP, "kcopyd_map: %s", strerror(-fd));
	while (nfill)
		close(fill[--nfill]);
	free(fill);
	check(setrlimit(RLIMIT_NOFILE, &old) == 0, "setrlimit back");
	check(res.calls == 1 && !res.read_err && !res.write_err,
	      "offset: calls %d read_err %d write_err %#x", res.calls,
	      res.read_err, res.write_err);
	check(same(src, 0, dst, 0, SP_SIZE), "offset: the copy differs");
	check(lseek(src, 0, SEEK_CUR) == 12345,
	      "the source's offset moved to %lld",
	      (long long)lseek(src, 0, SEEK_CUR));
	check(lseek(dst, 0, SEEK_CUR) == 777,
	      "the destination's offset moved to %lld",
	      (long long)lseek(dst, 0, SEEK_CUR));
	kcopyd_client_destroy(kc);
	close(src);
	close(dst);
}

/* Start nbdkit on a Unix socket NAME.sock of the test directory with
 * ARGS (it daemonizes once it listens; its pid in NAME.pid), and give its
 * URI in uri.  0, or -1 if it would not start. */
static int start_nbdkit(const char *name, const char *args, char *uri,
			size_t len)
{
	char sock[256], pidf[256], cmd[1024];

	test_path(sock, sizeof(sock), name);
	strcat(sock, ".sock");
	test_path(pidf, sizeof(pidf), name);
	strcat(pidf, ".pid");
	snprintf(cmd, sizeof(cmd), "nbdkit -U '%s' -P '%s' %s", sock, pidf,
		 args);
	if (system(cmd) != 0)
		return -1;
	snprintf(uri, len, "nbd+unix:///?socket=%s", sock);
	return 0;
}

static void stop_nbdkit(const char *name)
{
	char pidf[256];
	FILE *f;
	int pid;

	test_path(pidf, sizeof(pidf), name);
	strcat(pidf, ".pid");
	f = fopen(pidf, "r");
	if (f && fscanf(f, "%d", &pid) == 1 && pid > 0)
		kill(pid, SIGKILL);
	if (f)
		fclose(f);
}

/* More NBD connections with requests at once than a poll set of fixed
 * size held (132): 34 exports of a server that takes 8 s for each write,
 * four connections each (multi-conn) all busy, and one export of a prompt
 * server, opened first (so that it comes last), whose copy must not wait
 * for the slow ones: a connection left out of the engine's poll is never
 * read. */
#define MANY_EXPORTS 34

static void test_many_connections(void)
{
	struct kcopyd_client *kc;
	struct result res[3] = { RESULT_INIT, RESULT_INIT, RESULT_INIT };
	struct io_region from = { -1, 0, 4096 }, to[32], quick_from, quick;
	char uri_a[300], uri_b[300];
	int fa[MANY_EXPORTS], fb, src, r, i, n = 0;
	uint64_t t0, t1;
	struct timespec ts;

	if (system("command -v nbdkit >/dev/null 2>&1") != 0) {
		printf("many connections: skipped (no nbdkit)\n");
		return;
	}
	if (start_nbdkit("conn-a", "--filter=delay memory 4M delay-write=8",
			 uri_a, sizeof(uri_a)) < 0 ||
	    start_nbdkit("conn-b", "memory 4M", uri_b, sizeof(uri_b)) < 0) {
		check(0, "many connections: nbdkit did not start");
		stop_nbdkit("conn-a");
		return;
	}
	check(kcopyd_client_create(4096, &kc) == 0, "create");
	r = kcopyd_open_uri(kc, uri_b, O_RDWR, &fb);
	if (r == -EPROTONOSUPPORT || r == -ELIBACC) {
		printf("many connections: skipped (no libnbd)\n");
		goto out;
	}
	check(r == 0, "open %s: %s", uri_b, strerror(-r));
	for (n = 0; r == 0 && n < MANY_EXPORTS; n++) {
		struct kcopyd_fd_info info = { .struct_size = sizeof(info) };

		r = kcopyd_open_uri(kc, uri_a, O_RDWR, &fa[n]);
		check(r == 0, "open export %d: %s", n, strerror(-r));
		if (r == 0 && kcopyd_probe_fd(kc, fa[n], &info) == 0 &&
		    info.connections < 4) {
			printf("many connections: skipped (%u connections "
			       "per export)\n", info.connections);
			n++;
			goto out;
		}
	}
	if (r < 0)
		goto out;
	src = make_file("conns-src", 2 * MiB, 41);
	from.fd = src;
	for (i = 0; i < 32; i++)
		to[i] = (struct io_region){ fa[i], 0, 4096 };
	check(kcopyd_copy(kc, &from, 32, to, 0, notify, &res[0]) == 0,
	      "copy to 32 slow exports");
	to[0].fd = fa[32];
	to[1].fd = fa[33];
	check(kcopyd_copy(kc, &from, 2, to, 0, notify, &res[1]) == 0,
	      "copy to 2 slow exports");
	usleep(500000);		/* every slow connection busy */
	quick_from = (struct io_region){ src, 0, 1024 };
	quick = (struct io_region){ fb, 0, 1024 };
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	check(kcopyd_copy(kc, &quick_from, 1, &quick, 0, notify, &res[2]) == 0,
	      "copy to the prompt export");
	for (i = 0; i < 1000 && !result_calls(&res[2]); i++)
		usleep(10000);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t1 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	check(result_calls(&res[2]) == 1 && t1 - t0 < 4000,
	      "the prompt export's copy took %llu ms beside %d busy "
	      "connections (not polled?)", (unsigned long long)(t1 - t0),
	      4 * MANY_EXPORTS);
	kcopyd_wait(kc);
	for (i = 0; i < 3; i++)
		check(res[i].calls == 1 && !res[i].read_err &&
		      !res[i].write_err, "connections job %d: read_err %d "
		      "write_err %#x", i, res[i].read_err, res[i].write_err);
	close(src);
out:
	while (n > 0)
		kcopyd_close_uri(kc, fa[--n]);
	kcopyd_client_destroy(kc);
	stop_nbdkit("conn-a");
	stop_nbdkit("conn-b");
}

/* The merge of a stream's last block into an export of 512- or 4096-byte
 * blocks (blocksize-policy: an unaligned request is an error) comes out
 * of the budget, never beyond it: with one slot of one page, after the
 * data (100 bytes) or over its whole blocks once written (4000 bytes);
 * 4096-byte blocks and one slot are refused (EINVAL); with two slots of a
 * page the other slot is lent, and if a copy to a slow export holds it,
 * the merge waits for it.  Each time only the stream's bytes change. */
#define TAIL_SIZE (64 * 1024)

/* Stream len bytes of fd pat through a pipe into export exp, filled with
 * ref first, alongside the job *other if not NULL (submitted first); the
 * export's content checked, and the peak of pages used. */
static void tail_stream(struct kcopyd_client *kc, const char *name,
			unsigned int pages, int exp, int ref, int pat,
			size_t len, struct io_region *other)
{
	struct result res = RESULT_INIT, ores = RESULT_INIT;
	struct io_region whole = { ref, 0, TAIL_SIZE / 512 };
	struct io_region in, to = { exp, 0, TAIL_SIZE / 512 };
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	char buf[TAIL_SIZE];
	int p[2], out;

	check(kcopyd_copy(kc, &whole, 1, &to, 0, notify, &res) == 0 &&
	      kcopyd_wait(kc) == 0 && res.calls == 1 && !res.write_err,
	      "%s: fill the export", name);
	check(pread(pat, buf, len, 0) == (ssize_t)len && pipe(p) == 0 &&
	      write(p[1], buf, len) == (ssize_t)len && close(p[1]) == 0,
	      "%s: the stream", name);
	if (other)
		check(kcopyd_copy(kc, &other[0], 1, &other[1], 0, notify,
				  &ores) == 0, "%s: the other copy", name);
	in = (struct io_region){ p[0], 0, 0 };
	res = (struct result)RESULT_INIT;
	check(kcopyd_copy(kc, &in, 1, &to, 0, notify, &res) == 0 &&
	      kcopyd_wait(kc) == 0, "%s: copy", name);
	close(p[0]);
	check(res.calls == 1 && !res.read_err && !res.write_err,
	      "%s: read_err %d write_err %#x", name, res.read_err,
	      res.write_err);
	check(!other || (ores.calls == 1 && !ores.write_err),
	      "%s: the other copy: write_err %#x", name, ores.write_err);
	out = make_file("tail-out", 0, 0);
	whole = (struct io_region){ exp, 0, TAIL_SIZE / 512 };
	to = (struct io_region){ out, 0, TAIL_SIZE / 512 };
	res = (struct result)RESULT_INIT;
	check(kcopyd_copy(kc, &whole, 1, &to, 0, notify, &res) == 0 &&
	      kcopyd_wait(kc) == 0 && res.calls == 1 && !res.read_err,
	      "%s: read the export back", name);
	check(same(pat, 0, out, 0, len) &&
	      same(ref, (off_t)len, out, (off_t)len, TAIL_SIZE - len),
	      "%s: not only the stream's %zu bytes changed", name, len);
	close(out);
	check(kcopyd_get_stats(kc, &st) == 0, "%s: stats", name);
	check(st.pages_peak <= pages && st.pages_budget == pages,
	      "%s: peak %u pages of %u", name, st.pages_peak, pages);
}

static void test_stream_tail_budget(void)
{
	static const char *const policy =
		"--filter=blocksize-policy memory 64K "
		"blocksize-error-policy=error blocksize-minimum=";
	struct kcopyd_client *kc1, *kc2;
	char uri512[300], uri4k[300], uri_slow[300], args[300];
	int e512 = -1, e4k = -1, e4k2 = -1, slow = -1, r;
	int ref = make_file("tail-ref", TAIL_SIZE, 51);
	int pat = make_file("tail-pat", TAIL_SIZE, 52);
	int src = make_file("tail-src", 4096, 53);
	struct io_region in, to, other[2];
	struct result res = RESULT_INIT;
	int p[2];

	if (system("nbdkit --dump-plugin memory >/dev/null 2>&1") != 0 ||
	    system("nbdkit --filter=blocksize-policy --dump-plugin memory "
		   ">/dev/null 2>&1") != 0) {
		printf("stream tail budget: skipped (no nbdkit or no "
		       "blocksize-policy filter)\n");
		goto files;
	}
	snprintf(args, sizeof(args), "%s512", policy);
	r = start_nbdkit("tail-512", args, uri512, sizeof(uri512));
	snprintf(args, sizeof(args), "%s4096", policy);
	if (r == 0)
		r = start_nbdkit("tail-4k", args, uri4k, sizeof(uri4k));
	if (r == 0)
		r = start_nbdkit("tail-slow", "--filter=delay memory 64K "
				 "delay-write=500ms", uri_slow,
				 sizeof(uri_slow));
	check(r == 0, "stream tail budget: nbdkit did not start");
	if (r < 0)
		goto servers;

	/* One slot of one page: 512-byte blocks merge in it. */
	check(kcopyd_client_create(1, &kc1) == 0, "create 1");
	r = kcopyd_open_uri(kc1, uri512, O_RDWR, &e512);
	if (r == -EPROTONOSUPPORT || r == -ELIBACC) {
		printf("stream tail budget: skipped (no libnbd)\n");
		kcopyd_client_destroy(kc1);
		goto servers;
	}
	check(r == 0, "open %s: %s", uri512, strerror(-r));
	r = kcopyd_open_uri(kc1, uri4k, O_RDWR, &e4k);
	check(r == 0, "open %s: %s", uri4k, strerror(-r));
	if (e512 >= 0) {
		tail_stream(kc1, "1 page, 100 bytes to 512", 1, e512, ref, pat,
			    100, NULL);
		tail_stream(kc1, "1 page, 4000 bytes to 512", 1, e512, ref,
			    pat, 4000, NULL);
		tail_stream(kc1, "1 page, 9000 bytes to 512", 1, e512, ref,
			    pat, 9000, NULL);
	}
	/* 4096-byte blocks and a budget of one page: no room for the merge. */
	if (e4k >= 0) {
		check(pipe(p) == 0, "pipe");
		in = (struct io_region){ p[0], 0, 0 };
		to = (struct io_region){ e4k, 0, TAIL_SIZE / 512 };
		r = kcopyd_copy(kc1, &in, 1, &to, 0, notify, &res);
		check(r == -EINVAL, "1 page, stream to 4096-byte blocks: %d",
		      r);
		check(kcopyd_get_error() && !strcmp(kcopyd_get_error(),
		      "a stream's last block needs a second slot, and the "
		      "budget has one"), "1 page, stream to 4096-byte blocks: "
		      "%s", kcopyd_get_error());
		/* An export's blocks, and its end: never extended. */
		check_refused(kc1, (struct io_region){ e4k, 1, 8 },
			      KCOPYD_REGION_DEST, EINVAL, "region (sector 1, "
			      "8 sectors) is not aligned to the logical block "
			      "size of 4096 bytes");
		check_refused(kc1, (struct io_region){ e4k, 0, 256 },
			      KCOPYD_REGION_DEST | KCOPYD_REGION_MAY_EXTEND,
			      EINVAL, "region (sector 0, 256 sectors) ends "
			      "past the end of the NBD export (128 sectors)");
		close(p[0]);
		close(p[1]);
	}
	if (e512 >= 0)
		kcopyd_close_uri(kc1, e512);
	if (e4k >= 0)
		kcopyd_close_uri(kc1, e4k);
	kcopyd_client_destroy(kc1);

	/* Two slots of a page: 4096-byte blocks merge in the other, lent;
	 * with a copy to a slow export holding it, once that ends. */
	check(kcopyd_client_create(2, &kc2) == 0, "create 2");
	r = kcopyd_open_uri(kc2, uri4k, O_RDWR, &e4k2);
	check(r == 0, "open %s: %s", uri4k, strerror(-r));
	r = kcopyd_open_uri(kc2, uri_slow, O_RDWR, &slow);
	check(r == 0, "open %s: %s", uri_slow, strerror(-r));
	if (e4k2 >= 0 && slow >= 0) {
		tail_stream(kc2, "2 pages, 100 bytes to 4096", 2, e4k2, ref,
			    pat, 100, NULL);
		tail_stream(kc2, "2 pages, 8292 bytes to 4096", 2, e4k2, ref,
			    pat, 8292, NULL);
		other[0] = (struct io_region){ src, 0, 8 };
		other[1] = (struct io_region){ slow, 0, 8 };
		tail_stream(kc2, "2 pages, 100 bytes to 4096 beside a slow "
			    "copy", 2, e4k2, ref, pat, 100, other);
	}
	if (e4k2 >= 0)
		kcopyd_close_uri(kc2, e4k2);
	if (slow >= 0)
		kcopyd_close_uri(kc2, slow);
	kcopyd_client_destroy(kc2);
servers:
	stop_nbdkit("tail-512");
	stop_nbdkit("tail-4k");
	stop_nbdkit("tail-slow");
files:
	close(ref);
	close(pat);
	close(src);
}


/* kcopyd_copy_map: data copied, zero extents zeroed, the rest left as it
 * was, in whole 4096-byte blocks; a map of a huge sparse region passes
 * what it leaves out without a sub-job for it; the data hook sees the
 * skipped blocks as zeros; a map out of order is refused; kcopyd_read and
 * kcopyd_get_map read the same storage. */
#define MAP_SIZE (8u * MiB)

struct map_hook {
	uint64_t sectors;
	int nonzero_skipped;		/* skipped sectors seen not as zeros */
	int zero_seen;			/* zero extents' sectors seen */
	int zero_bad;			/* ... not as zeros */
	const struct kcopyd_extent *map;
	size_t num;
};

static bool map_skips(const struct kcopyd_extent *map, size_t num,
		      uint64_t sector)
{
	size_t i;

	/* in whole blocks of 8 sectors */
	for (i = 0; i < num; i++)
		if (map[i].kind != KCOPYD_EXTENT_SKIP &&
		    sector / 8 * 8 < map[i].sector + map[i].count &&
		    sector / 8 * 8 + 8 > map[i].sector)
			return false;
	return true;
}

static void map_data(int fd, uint64_t sector, uint64_t count,
		     const void *data, void *context)
{
	struct map_hook *h = context;
	const char *p = data;
	uint64_t i;
	size_t b;

	(void)fd;
	h->sectors += count;
	for (i = 0; i < count; i++) {
		size_t e;

		for (e = 0; e < h->num; e++) {
			if (h->map[e].kind != KCOPYD_EXTENT_ZERO ||
			    sector + i < h->map[e].sector ||
			    sector + i >= h->map[e].sector + h->map[e].count)
				continue;
			h->zero_seen++;
			for (b = 0; b < 512 && !p[i * 512 + b]; b++)
				;
			h->zero_bad += b < 512;
		}
		if (!map_skips(h->map, h->num, sector + i))
			continue;
		for (b = 0; b < 512; b++)
			if (p[i * 512 + b]) {
				h->nonzero_skipped++;
				break;
			}
	}
}

static void test_copy_map(void)
{
	/* data at 1 MiB + 512 (not block-aligned: widened to 4 KiB), zeros
	 * at 3 MiB, data at 6 MiB to the end; skip listed or implied */
	const struct kcopyd_extent map[] = {
		{ 2048 + 1, 100, KCOPYD_EXTENT_DATA },
		{ 2560, 8, KCOPYD_EXTENT_DATA },	/* a second run */
		{ 4096, 16, KCOPYD_EXTENT_SKIP },
		{ 6144, 2048, KCOPYD_EXTENT_ZERO },
		{ 12288, 4096, KCOPYD_EXTENT_DATA },
	};
	const struct kcopyd_extent bad[] = {
		{ 100, 10, KCOPYD_EXTENT_DATA }, { 105, 10, KCOPYD_EXTENT_DATA },
	};
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	struct result res = RESULT_INIT;
	struct map_hook hook = { .map = map, .num = 5 };
	struct kcopyd_extent *got = NULL;
	struct kcopyd_client *kc;
	struct io_region from, to;
	char *buf = malloc(3000);
	size_t n = 0;
	int src, dst, r;

	src = make_file("map-src", MAP_SIZE, 11);
	dst = make_file("map-dst", MAP_SIZE, 12);
	check(kcopyd_client_create(64, &kc) == 0, "map: create");
	kcopyd_set_data_fn(kc, map_data, &hook);
	from = (struct io_region){ src, 0, MAP_SIZE / 512 };
	to = (struct io_region){ dst, 0, MAP_SIZE / 512 };
	r = kcopyd_copy_map(kc, &from, 1, &to, bad, 2, 0, notify, &res);
	check(r == -EINVAL && strstr(kcopyd_get_error(), "overlaps"),
	      "map: overlapping extents refused (%d, %s)", r,
	      kcopyd_get_error());
	r = kcopyd_copy_map(kc, &from, 1, &to, map, 5, 0, notify, &res);
	check(r == 0, "map: copy_map (%d)", r);
	check(kcopyd_wait(kc) == 0 && res.calls == 1 && !res.read_err &&
	      !res.write_err, "map: job ends well");
	kcopyd_get_stats(kc, &st);
	/* data: the 4 KiB blocks of sectors 2049..2148 (1 MiB..1 MiB+52 KiB)
	 * and the last 2 MiB; zeros: 1 MiB at 3 MiB */
	check(same(src, 1 * MiB, dst, 1 * MiB, 53248) &&
	      same(src, 1280 * 1024, dst, 1280 * 1024, 4096) &&
	      same(src, 6 * MiB, dst, 6 * MiB, 2 * MiB),
	      "map: data extents copied");
	check(all_zero(dst, 3 * MiB, MiB), "map: zero extent zeroed");
	{
		int old = make_file("map-old", MAP_SIZE, 12);

		check(same(dst, 0, old, 0, MiB) &&
		      same(dst, MiB + 53248, old, MiB + 53248,
			   256 * 1024 - 53248) &&
		      same(dst, 1280 * 1024 + 4096, old, 1280 * 1024 + 4096,
			   1792 * 1024 - 4096) &&
		      same(dst, 4 * MiB, old, 4 * MiB, 2 * MiB),
		      "map: skipped sectors left as they were");
		close(old);
	}
	check(st.bytes_unmapped == MAP_SIZE - 53248 - 4096 - 2 * MiB - MiB,
	      "map: bytes_unmapped %llu", (unsigned long long)st.bytes_unmapped);
	check(st.bytes_done == 53248 + 4096 + 2 * MiB + MiB,
	      "map: bytes_done %llu", (unsigned long long)st.bytes_done);
	/* only the data extents' blocks: not the skipped blocks between
	 * them in a sub-job, nor the zero extent */
	check(st.bytes_read == 53248 + 4096 + 2 * MiB,
	      "map: read %llu bytes", (unsigned long long)st.bytes_read);
	check(hook.nonzero_skipped == 0, "map: the hook saw %d skipped "
	      "sectors not as zeros", hook.nonzero_skipped);

	/* A zero extent between data in one sub-job: not read, zeros to
	 * the hook and, under KCOPYD_ALLOCATED, written as zeros. */
	{
		const struct kcopyd_extent mixed[] = {
			{ 0, 8, KCOPYD_EXTENT_DATA },
			{ 8, 16, KCOPYD_EXTENT_ZERO },
			{ 24, 8, KCOPYD_EXTENT_DATA },
		};
		struct map_hook h2 = { .map = mixed, .num = 3 };
		struct result res3 = RESULT_INIT;

		kcopyd_set_data_fn(kc, map_data, &h2);
		check(kcopyd_copy_map(kc, &from, 1, &to, mixed, 3,
				      KCOPYD_ALLOCATED, notify, &res3) == 0 &&
		      kcopyd_wait(kc) == 0 && res3.calls == 1 &&
		      !res3.write_err, "map: zero between data");
		check(same(src, 0, dst, 0, 4096) &&
		      all_zero(dst, 4096, 8192) &&
		      same(src, 12288, dst, 12288, 4096),
		      "map: zero between data: the destination");
		check(h2.sectors >= 32 && h2.zero_seen == 16 &&
		      h2.zero_bad == 0,
		      "map: zero between data: the hook saw %llu sectors, "
		      "%d of the zero extent, %d not zeros",
		      (unsigned long long)h2.sectors, h2.zero_seen,
		      h2.zero_bad);
		kcopyd_set_data_fn(kc, map_data, &hook);
	}

	/* kcopyd_read, unaligned; kcopyd_get_map of a file with a hole */
	check(buf && kcopyd_read(kc, src, buf, 3000, 1000) == 0,
	      "read: kcopyd_read");
	{
		char *want = malloc(3000);

		check(want && pread(src, want, 3000, 1000) == 3000 &&
		      !memcmp(want, buf, 3000), "read: the bytes");
		free(want);
	}
	check(kcopyd_read(kc, src, buf, 3000, MAP_SIZE - 1000) < 0,
	      "read: past the end refused");
	check(ftruncate(dst, 2 * MAP_SIZE) == 0, "map: extend");
	r = kcopyd_get_map(kc, dst, 0, 2 * MAP_SIZE / 512, &got, &n);
	check(r == 0 && n >= 2 && got[0].kind == KCOPYD_EXTENT_DATA &&
	      got[n - 1].kind == KCOPYD_EXTENT_ZERO &&
	      got[n - 1].sector + got[n - 1].count == 2 * MAP_SIZE / 512,
	      "get_map: %d, %zu extents", r, n);
	free(got);
	kcopyd_client_destroy(kc);
	close(src);
	close(dst);

	/* 1 TiB sparse to 1 TiB sparse, 1 MiB of data in the map: quick,
	 * and no sub-job for what the map leaves out. */
	{
		struct kcopyd_extent huge[] = {
			{ 1000, 8, KCOPYD_EXTENT_DATA },
			{ (1ull << 31) - 2048, 2048, KCOPYD_EXTENT_DATA },
		};
		struct result res2 = RESULT_INIT;

		src = make_file("map-src", 0, 0);
		dst = make_file("map-dst", 0, 0);
		check(ftruncate(src, 1ll << 40) == 0 &&
		      ftruncate(dst, 1ll << 40) == 0, "map: 1 TiB files");
		check(pwrite(src, "x", 1, (1000 * 512) + 7) == 1, "write");
		check(kcopyd_client_create(64, &kc) == 0, "create");
		from = (struct io_region){ src, 0, 1ull << 31 };
		to = (struct io_region){ dst, 0, 1ull << 31 };
		check(kcopyd_copy_map(kc, &from, 1, &to, huge, 2, 0, notify,
				      &res2) == 0 &&
		      kcopyd_wait(kc) == 0 && res2.calls == 1 &&
		      !res2.write_err, "map: 1 TiB copy");
		st.struct_size = sizeof(st);
		kcopyd_get_stats(kc, &st);
		check(st.bytes_unmapped >= (1ull << 40) - 2 * MiB &&
		      st.bytes_done <= 2 * MiB,
		      "map: 1 TiB: unmapped %llu done %llu",
		      (unsigned long long)st.bytes_unmapped,
		      (unsigned long long)st.bytes_done);
		check(same(src, 1000 * 512, dst, 1000 * 512, 4096),
		      "map: 1 TiB: the data");
		kcopyd_client_destroy(kc);
		close(src);
		close(dst);
	}
	free(buf);
}

/* A server started by the library (kcopyd_open_command): nbdkit's memory
 * plugin, started from a thread that blocks SIGTERM, as kcopy does (libnbd
 * stops the server with SIGTERM: the server must not inherit the block),
 * with four connections (multi-conn, through the socket's URI); a file
 * copied to it and back is the same; the server has exited (been reaped)
 * once the export is closed; a program that does not exist is an error
 * with a reason, and leaves no child. */
static void test_open_command(void)
{
	char nbdkit[] = "nbdkit", plugin[] = "memory", size[] = "4M";
	char nothing[] = "kcopyd-test-no-such-server";
	char *const server[] = { nbdkit, plugin, size, NULL };
	char *const missing[] = { nothing, NULL };
	char *const none[] = { NULL };
	struct kcopyd_fd_info info = { .struct_size = sizeof(info) };
	struct kcopyd_client *kc;
	struct result res = RESULT_INIT;
	struct io_region from, to;
	sigset_t term, old;
	int src, back, exp, r;

	if (system("command -v nbdkit >/dev/null 2>&1") != 0) {
		printf("open command: skipped (no nbdkit)\n");
		return;
	}
	check(kcopyd_client_create(256, &kc) == 0, "create");
	r = kcopyd_open_command(kc, none, O_RDWR, &exp);
	if (r == -EPROTONOSUPPORT || r == -ELIBACC) {
		printf("open command: skipped (no libnbd)\n");
		kcopyd_client_destroy(kc);
		return;
	}
	check(r == -EINVAL, "open command: empty argv: %d", r);
	check(kcopyd_open_command(kc, NULL, O_RDWR, &exp) == -EINVAL,
	      "open command: NULL argv");
	r = kcopyd_open_command(kc, missing, O_RDWR, &exp);
	check(r < 0 && kcopyd_get_error() != NULL,
	      "open command: a missing program: %d", r);
	check(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD,
	      "open command: the failed server is left as a child");

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	r = kcopyd_open_command(kc, server, O_RDWR, &exp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	check(r == 0, "open command: %s: %s", strerror(-r),
	      kcopyd_get_error() ? kcopyd_get_error() : "");
	if (r < 0) {
		kcopyd_client_destroy(kc);
		return;
	}
	check(kcopyd_probe_fd(kc, exp, &info) == 0 && info.is_remote &&
	      info.size == 4 * MiB && info.connections == 4,
	      "open command: probe: size %llu, %u connections",
	      (unsigned long long)info.size, info.connections);
	src = make_file("cmd-src", 4 * MiB, 53);
	back = make_file("cmd-back", 0, 0);
	from = (struct io_region){ src, 0, 8192 };
	to = (struct io_region){ exp, 0, 8192 };
	check(kcopyd_copy(kc, &from, 1, &to, 0, notify, &res) == 0,
	      "open command: copy to the server");
	kcopyd_wait(kc);
	from = (struct io_region){ exp, 0, 8192 };
	to = (struct io_region){ back, 0, 8192 };
	check(kcopyd_copy(kc, &from, 1, &to, 0, notify, &res) == 0,
	      "open command: copy back");
	kcopyd_wait(kc);
	check(res.calls == 2 && !res.read_err && !res.write_err,
	      "open command: %d calls, read_err %d, write_err %u", res.calls,
	      res.read_err, res.write_err);
	check(same(src, 0, back, 0, 4 * MiB), "open command: the copy back "
	      "differs");
	check(kcopyd_close_uri(kc, exp) == 0, "open command: close");
	check(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD,
	      "open command: the server is left after the close");
	kcopyd_client_destroy(kc);
	close(src);
	close(back);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* kcopyd_client_stop from another thread, 300 ms into an open. */
static void *stop_later(void *arg)
{
	struct timespec ts = { 0, 300 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	kcopyd_client_stop(arg);
	return NULL;
}

/* An open waiting for a server that never speaks NBD (sleep) is
 * interrupted by kcopyd_client_stop: -EINTR soon after, not the timeout's
 * -ETIMEDOUT (10 s: a bound for the test, which without the stop would
 * wait), the server killed and reaped. */
static void test_open_command_stop(void)
{
	char sleep_[] = "sleep", secs[] = "98763";
	char nbdkit[] = "nbdkit", plugin[] = "memory", size[] = "1M";
	char *const mute[] = { sleep_, secs, NULL };
	char *const server[] = { nbdkit, plugin, size, NULL };
	struct kcopyd_client *kc;
	pthread_t stopper;
	uint64_t t0;
	int exp, r;

	check(kcopyd_client_create(256, &kc) == 0, "create");
	check(kcopyd_set_timeout(kc, 10) == 0, "timeout");
	check(pthread_create(&stopper, NULL, stop_later, kc) == 0,
	      "stopper thread");
	t0 = now_ms();
	r = kcopyd_open_command(kc, mute, O_RDWR, &exp);
	pthread_join(stopper, NULL);
	if (r == -EPROTONOSUPPORT || r == -ELIBACC) {
		printf("open command stop: skipped (no libnbd)\n");
		kcopyd_client_destroy(kc);
		return;
	}
	check(r == -EINTR, "open command stop: %d, not -EINTR", r);
	check(now_ms() - t0 < 3000, "open command stop: took %llu ms",
	      (unsigned long long)(now_ms() - t0));
	check(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD,
	      "open command stop: the server is left as a child");
	/* A stop before an open does not interrupt it. */
	r = kcopyd_open_command(kc, server, O_RDWR, &exp);
	check(r == 0 || system("command -v nbdkit >/dev/null 2>&1") != 0,
	      "open command after a stop: %d", r);
	if (r == 0)
		check(kcopyd_close_uri(kc, exp) == 0, "close after a stop");
	kcopyd_client_destroy(kc);
}

int main(void)
{
	test_dir_create();
	test_arguments();
	test_struct_sizes();
	test_append();
	test_region_errors();
	test_error_per_thread();
	test_budgets();
	test_concurrent();
	test_observers();
	test_chain();
	test_destroy_waits();
	test_zero_and_flags();
	test_data_in_order();
	test_broken_pipe();
	test_many_streams();
	test_write_error_isolated();
	test_files_released();
	test_destroy_in_callback();
	test_many_clients();
	test_many_dests();
	test_sparse();
	test_stream_zero();
	test_caller_offset();
	test_many_connections();
	test_stream_tail_budget();
	test_copy_map();
	test_open_command();
	test_open_command_stop();
	return test_dir_finish();
}
