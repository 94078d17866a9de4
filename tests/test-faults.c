/* test-faults.c - libkcopyd under real I/O errors from the kernel, with no
 * privileges and no mocks: reads past the end of a source truncated during
 * the copy, and writes past the process's file size limit (RLIMIT_FSIZE).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kcopyd.h"
#include "lib-util.h"

#define SRC_SIZE (8 * MiB)
#define SRC_SEED 41u
/* Hang guard: the longest a job here may take before the test is killed. */
#define WATCHDOG_SECONDS 120

/* ---------------------------------------------------------- read errors */

/* The source is cut here during the copy: not a multiple of the sub-job
 * size, so that one sub-job is read short. */
#define CUT (4 * MiB + 3 * 1024)

struct hook {
	int src_fd, cut_fd;		/* cut_fd: another descriptor of it */
	uint64_t first, sectors, step;	/* the job's source region, S */
	unsigned int calls;
	unsigned char *seen;		/* per sub-job: times delivered */
	int expect;			/* descriptor with the source's data,
					   of which the bytes from CUT on
					   are expected as zeros */
	int bad;			/* a call broke the contract */
};

/* The data hook: cut the source at its first call, and check every call
 * against the contract of kcopyd_data_fn and against the expected data.
 * The source region starts at sector 0, so offsets in it are the file's. */
static void data_hook(int src_fd, uint64_t sector, uint64_t count,
		      const void *data, void *context)
{
	struct hook *h = context;
	uint64_t rel = sector - h->first, index = rel / h->step;
	off_t pos = (off_t)rel * 512;
	size_t len = count * 512;
	char *want = calloc(1, len);

	if (h->calls++ == 0 &&
	    (sector != h->first || ftruncate(h->cut_fd, CUT) < 0))
		h->bad |= 1;	/* with one buffer, sub-job 0 comes first */
	if (src_fd != h->src_fd || sector < h->first || rel % h->step ||
	    rel + count > h->sectors ||
	    (count != h->step && rel + count != h->sectors))
		h->bad |= 2;
	else if (h->seen[index]++)
		h->bad |= 4;
	if (!want || (pos < CUT &&
		      pread(h->expect, want, len, pos) != (ssize_t)len))
		h->bad |= 8;
	else if (pos + (off_t)len > CUT)
		memset(want + (pos < CUT ? CUT - pos : 0), 0,
		       (size_t)(pos + (off_t)len - (pos < CUT ? CUT : pos)));
	if (want && memcmp(want, data, len))
		h->bad |= 16;
	free(want);
}

struct errors {
	unsigned int n;
	struct kcopyd_io_error first;
	int other;		/* an error unlike the first */
	int bad_size;		/* struct_size not that of kcopyd.h's */
};

static void error_hook(const struct kcopyd_io_error *err, void *context)
{
	struct errors *e = context;

	if (err->struct_size != sizeof(*err))
		e->bad_size = 1;
	if (e->n++ == 0)
		e->first = *err;
	else if (err->is_write != e->first.is_write ||
		 err->dest != e->first.dest || err->error != e->first.error)
		e->other = 1;
}

/* Copy the 8 MiB source to two destinations with a budget of one page, so
 * that one sub-job runs at a time and the data hook of each returns before
 * the next is read; the hook cuts the source at CUT on its first call, so
 * every read from CUT on fails at the end of the file.  Flags 0: the job
 * stops at the sub-job holding CUT, with read_err 1, and the destinations
 * hold exactly the sub-jobs before it.  KCOPYD_IGNORE_ERROR: the job runs to
 * the end, the one bad range is [CUT, end), and the destinations hold the
 * data before CUT and zeros after it.  read_job: the same as a read job (no
 * destinations): the same data hook calls and errors, and nothing written. */
static void test_truncated_source(unsigned int flags, bool read_job)
{
	const char *name = read_job ? (flags ? "read, ignore" : "read, stop")
				    : (flags ? "ignore" : "stop");
	char path[4096];
	struct kcopyd_client *kc;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	struct result res = RESULT_INIT;
	struct errors errs = { 0 };
	struct io_region *bad = NULL, *taken = NULL;
	size_t nbad = 0, ntaken = 0;
	int src = make_file("rd-src", SRC_SIZE, SRC_SEED);
	int expect = make_file("rd-expect", SRC_SIZE, SRC_SEED);
	int d0 = make_file("rd-d0", 0, 0), d1 = make_file("rd-d1", 0, 0);
	struct io_region from = { src, 0, SRC_SIZE / 512 };
	struct io_region to[2] = { { d0, 0, from.count },
				   { d1, 24, from.count } };
	struct hook h = { .src_fd = src, .first = from.sector,
			  .sectors = from.count, .expect = expect };
	uint64_t good;		/* source bytes the destinations get */

	test_path(path, sizeof(path), "rd-src");
	h.cut_fd = open(path, O_WRONLY);
	check(h.cut_fd >= 0, "%s: open the source again", name);
	check(kcopyd_client_create(1, &kc) == 0, "%s: create", name);
	kcopyd_get_stats(kc, &st);
	check(st.pages_budget * KCOPYD_PAGE_SIZE / st.subjob_size == 1,
	      "%s: %u pages of sub-jobs of %u bytes: not one buffer", name,
	      st.pages_budget, st.subjob_size);
	h.step = st.subjob_size / 512;
	h.seen = calloc(h.sectors / h.step + 1, 1);
	kcopyd_set_data_fn(kc, data_hook, &h);
	kcopyd_set_error_fn(kc, error_hook, &errs);
	check(kcopyd_copy(kc, &from, read_job ? 0 : 2, read_job ? NULL : to,
			  flags, notify, &res) == 0, "%s: copy", name);
	kcopyd_wait(kc);
	kcopyd_get_stats(kc, &st);
	check(kcopyd_get_bad_ranges(kc, &bad, &nbad) == 0, "%s: bad ranges",
	      name);
	/* Taken: what get gives, once; then nothing, and get is unchanged. */
	check(kcopyd_take_bad_ranges(kc, &taken, &ntaken) == 0 &&
	      ntaken == nbad && (!nbad || (taken[0].sector == bad[0].sector &&
					   taken[0].count == bad[0].count)),
	      "%s: take: %zu ranges, not %zu", name, ntaken, nbad);
	free(taken);
	check(kcopyd_take_bad_ranges(kc, &taken, &ntaken) == 0 &&
	      ntaken == 0 && !taken, "%s: taken again: %zu ranges", name,
	      ntaken);
	free(bad);
	check(kcopyd_get_bad_ranges(kc, &bad, &nbad) == 0 &&
	      nbad == (flags ? 1u : 0u), "%s: get after take: %zu", name,
	      nbad);
	kcopyd_client_destroy(kc);

	check(res.calls == 1 && res.read_err == 1 && res.write_err == 0,
	      "%s: %d callbacks, read_err %d, write_err %#x", name, res.calls,
	      res.read_err, res.write_err);
	check(!h.bad, "%s: the data hook saw a broken contract (%#x)", name,
	      h.bad);
	if (!flags) {
		/* The sub-jobs wholly before CUT, and nothing after. */
		good = CUT / st.subjob_size * st.subjob_size;
		check(h.calls == good / st.subjob_size,
		      "%s: %u data hook calls", name, h.calls);
		check(nbad == 0, "%s: %zu bad ranges", name, nbad);
		check(errs.n == 1 && !errs.first.is_write &&
		      errs.first.fd == src &&
		      errs.first.sector == good / 512 &&
		      errs.first.count == h.step && errs.first.error == -EIO,
		      "%s: %u errors reported, the first at sector %llu",
		      name, errs.n, (unsigned long long)errs.first.sector);
		check(st.bytes_done == (read_job ? 0 : good),
		      "%s: bytes_done %llu", name,
		      (unsigned long long)st.bytes_done);
	} else {
		/* Every sub-job, zeros from CUT on. */
		good = CUT;
		check(h.calls == h.sectors / h.step, "%s: %u data hook calls",
		      name, h.calls);
		check(nbad == 1 && bad[0].fd == src &&
		      bad[0].sector == CUT / 512 &&
		      bad[0].count == (SRC_SIZE - CUT) / 512,
		      "%s: %zu bad ranges, the first %llu+%llu", name, nbad,
		      nbad ? (unsigned long long)bad[0].sector : 0,
		      nbad ? (unsigned long long)bad[0].count : 0);
		/* A failed read of each sub-job from the cut on (the
		 * re-reads that isolate the bad blocks are not reported). */
		check(errs.n == (SRC_SIZE - CUT / st.subjob_size *
				 st.subjob_size) / st.subjob_size &&
		      !errs.other && !errs.bad_size && !errs.first.is_write &&
		      errs.first.error == -EIO,
		      "%s: %u errors reported", name, errs.n);
		check(read_job || (all_zero(d0, CUT, SRC_SIZE - CUT) &&
				   all_zero(d1, 24 * 512 + CUT, SRC_SIZE - CUT)),
		      "%s: not zeros after the cut", name);
		check(st.bytes_done == (read_job ? 0 : SRC_SIZE),
		      "%s: bytes_done %llu", name,
		      (unsigned long long)st.bytes_done);
	}
	if (read_job) {
		check(file_size(d0) == 0 && file_size(d1) == 0 &&
		      st.bytes_written == 0, "%s: a read job wrote", name);
	} else {
		check(file_size(d0) == (off_t)(flags ? SRC_SIZE : good) &&
		      file_size(d1) == (off_t)(24 * 512 +
					       (flags ? SRC_SIZE : good)),
		      "%s: destination sizes %lld and %lld", name,
		      (long long)file_size(d0), (long long)file_size(d1));
		check(same(expect, 0, d0, 0, good) &&
		      same(expect, 0, d1, 24 * 512, good),
		      "%s: the data before the cut differs", name);
	}
	free(bad);
	free(h.seen);
	close(h.cut_fd);
	close(src);
	close(expect);
	close(d0);
	close(d1);
}

/* --------------------------------------------------------- write errors */

/* The file size limit: destination 1 crosses it 3.25 MiB into the job, in
 * the middle of a sub-job (one write is cut short at the limit, the rest of
 * it fails with EFBIG); destinations 0 and 2 end at or below it. */
#define LIMIT (12 * MiB)
#define D1_START (LIMIT - 3 * MiB - 256 * 1024)

static void set_fsize_limit(rlim_t limit)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_FSIZE, &rl) < 0 ||
	    (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < LIMIT)) {
		fprintf(stderr, "RLIMIT_FSIZE: hard limit too low\n");
		exit(77);
	}
	rl.rlim_cur = limit;
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0) {
		perror("setrlimit");
		exit(99);
	}
}

/* Copy the source to three destinations under the limit, with a budget of
 * two sub-jobs of 512 KiB.  With KCOPYD_DROP_FAILED_DESTS or
 * KCOPYD_IGNORE_ERROR, destinations 0 and 2 get every byte, destination 1
 * everything below the limit, and write_err is exactly destination 1's bit;
 * with neither, the job stops: the other destinations stay short of the
 * end.  KCOPYD_WRITE_SEQ must not hang either way. */
static void test_write_limit(unsigned int flags, const char *name)
{
	struct kcopyd_client *kc;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	struct result res = RESULT_INIT;
	struct errors errs = { 0 };
	int src = make_file("wr-src", SRC_SIZE, SRC_SEED);
	int d0 = make_file("wr-d0", 0, 0), d1 = make_file("wr-d1", 0, 0);
	int d2 = make_file("wr-d2", 0, 0);
	struct io_region from = { src, 0, SRC_SIZE / 512 };
	struct io_region to[3] = {
		{ d0, 0, from.count },
		{ d1, D1_START / 512, from.count },
		{ d2, (LIMIT - SRC_SIZE) / 512, from.count },
	};
	off_t size0;

	check(kcopyd_client_create(256, &kc) == 0, "%s: create", name);
	kcopyd_get_stats(kc, &st);
	check(st.subjob_size == 512 * 1024, "%s: sub-job size %u", name,
	      st.subjob_size);
	kcopyd_set_error_fn(kc, error_hook, &errs);
	set_fsize_limit(LIMIT);
	alarm(WATCHDOG_SECONDS);
	check(kcopyd_copy(kc, &from, 3, to, flags, notify, &res) == 0,
	      "%s: copy", name);
	kcopyd_wait(kc);
	alarm(0);
	set_fsize_limit(RLIM_INFINITY);
	kcopyd_get_stats(kc, &st);
	kcopyd_client_destroy(kc);

	check(res.calls == 1 && res.read_err == 0 && res.write_err == 1u << 1,
	      "%s: %d callbacks, read_err %d, write_err %#x", name, res.calls,
	      res.read_err, res.write_err);
	check(errs.n >= 1 && !errs.other && !errs.bad_size &&
	      errs.first.is_write &&
	      errs.first.dest == 1 && errs.first.fd == d1 &&
	      errs.first.error == -EFBIG,
	      "%s: %u errors, the first on destination %u: %s", name, errs.n,
	      errs.first.dest, strerror(-errs.first.error));
	check(file_size(d1) == LIMIT && same(src, 0, d1, D1_START,
					     LIMIT - D1_START),
	      "%s: destination 1 does not hold what fits below the limit",
	      name);
	size0 = file_size(d0);
	if (flags & (KCOPYD_DROP_FAILED_DESTS | KCOPYD_IGNORE_ERROR)) {
		check(size0 == SRC_SIZE && same(src, 0, d0, 0, SRC_SIZE) &&
		      file_size(d2) == LIMIT &&
		      same(src, 0, d2, LIMIT - SRC_SIZE, SRC_SIZE),
		      "%s: a healthy destination is incomplete", name);
		check(st.bytes_done == SRC_SIZE, "%s: bytes_done %llu", name,
		      (unsigned long long)st.bytes_done);
	} else {
		/* Stopped at the sub-job that crossed the limit, or the one
		 * beside it in the other buffer. */
		off_t fail = LIMIT - D1_START, sub = 512 * 1024;

		check(size0 >= fail - fail % sub + sub &&
		      size0 <= fail - fail % sub + 2 * sub &&
		      same(src, 0, d0, 0, (size_t)size0) &&
		      file_size(d2) == LIMIT - SRC_SIZE + size0,
		      "%s: did not stop: destination 0 holds %lld bytes", name,
		      (long long)size0);
		check(st.bytes_done < SRC_SIZE,
		      "%s: bytes_done %llu", name,
		      (unsigned long long)st.bytes_done);
	}
	close(src);
	close(d0);
	close(d1);
	close(d2);
}

int main(void)
{
	/* A write past the limit fails with EFBIG instead of killing us. */
	signal(SIGXFSZ, SIG_IGN);
	test_dir_create();
	test_truncated_source(0, false);
	test_truncated_source(KCOPYD_IGNORE_ERROR, false);
	test_truncated_source(0, true);
	test_truncated_source(KCOPYD_IGNORE_ERROR, true);
	test_write_limit(KCOPYD_DROP_FAILED_DESTS, "drop");
	test_write_limit(KCOPYD_DROP_FAILED_DESTS | KCOPYD_WRITE_SEQ,
			 "drop, write-seq");
	test_write_limit(KCOPYD_IGNORE_ERROR, "ignore");
	test_write_limit(0, "stop");
	test_write_limit(KCOPYD_WRITE_SEQ, "stop, write-seq");
	return test_dir_finish();
}
