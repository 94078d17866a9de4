/* run.c - the copy engine as the tool drives it: the client and its
 * settings, the hooks it calls back, submitting the jobs (which flush the
 * destinations: KCOPYD_FLUSH), and waiting for them while drawing progress
 * and answering signals: the copy's jobs, then --verify's.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The hooks and the job callbacks run on the library's engine thread; what
 * they share with the main thread is guarded by k->lock (kcopy.h).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kcopy.h"

#define DEFAULT_PROGRESS_INTERVAL 1.0	/* seconds, plain and JSON lines */
#define BAR_INTERVAL 0.25		/* seconds between redraws of the bar */

bool run_dest_failed(struct kcopy *k, unsigned int i, int err,
		     const char *op)
{
	struct target *t = &k->dests[i];
	bool first;

	pthread_mutex_lock(&k->lock);
	first = !t->error;
	if (first) {
		t->error = err;
		t->error_op = op;
	}
	k->write_err |= 1u << i;
	pthread_mutex_unlock(&k->lock);
	return first;
}

/* ---------------------------------------------------- the engine's hooks */

/* Which destination an error is about: its index in the job, or with
 * --zero (one job per destination) the one with that descriptor. */
static unsigned int dest_of(const struct kcopy *k,
			    const struct kcopyd_io_error *e)
{
	unsigned int i;

	if (!k->opt.zero)
		return e->dest;
	for (i = 0; i < k->num_dests; i++)
		if (k->dests[i].fd == e->fd)
			break;
	return i;
}

static void on_io_error(const struct kcopyd_io_error *e, void *context)
{
	struct kcopy *k = context;
	unsigned int i;
	bool first;

	if (!e->is_write) {
		pthread_mutex_lock(&k->lock);
		first = !k->read_error;
		if (first)
			k->read_error = e->error;
		pthread_mutex_unlock(&k->lock);
		if (first)
			say(&k->out, MSG_NOTE, "source '%s': read error at "
			    "sector %" PRIu64 " (%" PRIu64 " sectors): %s%s",
			    k->src.spec.path, e->sector, e->count,
			    strerror(-e->error), k->opt.ignore_errors
			    ? "; isolating bad sectors" : "; stopping");
		return;
	}
	i = dest_of(k, e);
	if (i >= k->num_dests ||
	    !run_dest_failed(k, i, e->error, e->is_flush ? "flush" : "write"))
		return;
	if (e->is_flush) {
		say(&k->out, MSG_NOTE, "destination %u '%s': flush failed: %s",
		    i + 1, k->dests[i].spec.path, strerror(-e->error));
		return;
	}
	say(&k->out, MSG_NOTE, "destination %u '%s': write error at sector %"
	    PRIu64 ": %s; %s", i + 1, k->dests[i].spec.path, e->sector,
	    strerror(-e->error), k->opt.ignore_errors ? "going on"
						      : "dropped");
}

void run_job_done(struct kcopy *k, int read_err, unsigned int write_err)
{
	uint64_t one = 1;

	pthread_mutex_lock(&k->lock);
	k->read_err |= read_err;
	k->write_err |= write_err;
	k->jobs_left--;
	pthread_mutex_unlock(&k->lock);
	if (write(k->done_fd, &one, sizeof(one)) < 0)
		abort();	/* an eventfd write cannot fail here */
}

static void on_copy_done(int read_err, unsigned int write_err, void *context)
{
	run_job_done(context, read_err, write_err);
}

static void on_zero_done(int read_err, unsigned int write_err, void *context)
{
	struct zero_job *z = context;

	run_job_done(z->k, read_err, write_err << z->dest);
}

/* ------------------------------------------------------------ the client */

/* Signals must be blocked first: the engine thread inherits the mask. */
int run_create_client(struct kcopy *k)
{
	int r = kcopyd_client_create((unsigned int)k->opt.pages, &k->kc);

	if (r == 0)
		r = kcopyd_set_subjob_size(k->kc, (unsigned int)k->opt.chunk);
	if (r == 0 && k->opt.throttle < 100)
		r = kcopyd_set_throttle(k->kc, k->opt.throttle);
	if (r == 0 && k->opt.rate)
		r = kcopyd_set_rate(k->kc, k->opt.rate);
	if (r == 0)
		r = kcopyd_set_timeout(k->kc, k->opt.timeout);
	if (r == 0) {
		k->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (k->done_fd < 0)
			r = -errno;
	}
	if (r == -EAGAIN) {
		/* io_setup: the system's asynchronous I/O events are taken. */
		say(&k->out, MSG_ERROR, "cannot set up the copy engine: %s "
		    "(too many asynchronous I/O contexts: raise "
		    "/proc/sys/fs/aio-max-nr, or use a smaller --pages)",
		    strerror(-r));
		return r;
	}
	if (r < 0) {
		say(&k->out, MSG_ERROR, "cannot set up the copy engine: %s",
		    strerror(-r));
		return r;
	}
	kcopyd_set_error_fn(k->kc, on_io_error, k);
	return 0;
}

/* --------------------------------------------------------------- the run */

static int submit(struct kcopy *k)
{
	struct io_region from = { k->src.fd, k->src.sector, k->src.count };
	struct io_region to[KCOPYD_MAX_DESTS];
	unsigned int i, refused;
	int r = 0;

	for (i = 0; i < k->num_dests; i++)
		to[i] = (struct io_region){ k->dests[i].fd, k->dests[i].sector,
					    k->dests[i].count };
	k->jobs_left = k->opt.zero ? k->num_dests : 1;
	if (!k->opt.zero)
		return kcopyd_copy(k->kc, &from, k->num_dests, to, k->flags,
				   on_copy_done, k);
	for (i = 0; i < k->num_dests; i++) {
		k->zero_jobs[i] = (struct zero_job){ k, i };
		r = kcopyd_zero(k->kc, 1, &to[i], k->flags, on_zero_done,
				&k->zero_jobs[i]);
		if (r < 0)
			break;
	}
	if (r == 0 || i == 0)
		return r;
	/* Zeroing has begun on the destinations before: the refused ones
	 * are failed destinations, not a setup error. */
	refused = k->num_dests - i;
	pthread_mutex_lock(&k->lock);
	k->jobs_left -= refused;
	pthread_mutex_unlock(&k->lock);
	for (; i < k->num_dests; i++)
		run_dest_failed(k, i, r, "zero");
	say(&k->out, MSG_NOTE, "the copy engine refused to zero %u "
	    "destination(s): %s", refused, strerror(-r));
	return 0;
}

static unsigned int jobs_left(struct kcopy *k)
{
	unsigned int left;

	pthread_mutex_lock(&k->lock);
	left = k->jobs_left;
	pthread_mutex_unlock(&k->lock);
	return left;
}

void run_wait(struct kcopy *k, bool ticks)
{
	double interval = k->opt.progress_interval;
	double next_tick;

	if (interval <= 0)
		interval = k->progress.bar ? BAR_INTERVAL
					   : DEFAULT_PROGRESS_INTERVAL;
	next_tick = k->start + interval;
	while (jobs_left(k)) {
		struct pollfd pfd[2] = { { .fd = k->sig_fd, .events = POLLIN },
					 { .fd = k->done_fd, .events = POLLIN } };
		int timeout = -1;

		if (ticks) {
			double wait = next_tick - now_seconds();

			timeout = wait > 0 ? (int)(wait * 1000) + 1 : 0;
		}
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
			return;
		if (pfd[0].revents & POLLIN)
			signals_poll(k);
		if (pfd[1].revents & POLLIN) {
			uint64_t n;

			if (read(k->done_fd, &n, sizeof(n)) < 0)
				n = 0;	/* EAGAIN: drained already */
		}
		if (ticks && now_seconds() >= next_tick) {
			progress_tick(k, false);
			next_tick += interval;
			if (next_tick < now_seconds())
				next_tick = now_seconds() + interval;
		}
	}
}

/* Submit, wait and collect; the jobs flush.  Returns 0 once the jobs ran (whatever
 * they did: see k->read_err and k->write_err), or -errno if the engine
 * refused them, after saying so; then nothing was written. */
int run_copy(struct kcopy *k)
{
	struct kcopyd_stats st;
	int r;

	k->start = now_seconds();
	progress_start(k);
	r = submit(k);
	if (r < 0) {
		/* The library's own checks, after ours: name what it says. */
		say(&k->out, MSG_ERROR, "the copy engine refused the job: %s",
		    strerror(-r));
		kcopyd_wait(k->kc);
		return r;
	}
	run_wait(k, k->opt.progress != PROGRESS_OFF);
	kcopyd_wait(k->kc);
	kcopyd_get_stats(k->kc, &st);
	k->bytes_done = st.bytes_done;
	k->stats = st;
	r = kcopyd_get_bad_ranges(k->kc, &k->bad, &k->num_bad);
	if (r < 0)
		say(&k->out, MSG_ERROR, "cannot list the bad ranges: %s",
		    strerror(-r));
	k->seconds = now_seconds() - k->start;
	if (k->opt.progress)
		progress_tick(k, true);
	return 0;
}

/* From a stream whose length is not a multiple of 512, the destinations
 * got whole sectors (zeros past the data, so that --verify compares whole
 * sectors); a file this run created is then cut to the stream's length, as
 * it would be from a file source of that length, and so is a file on
 * standard output (the shell made it).  A failure is that
 * destination's write error. */
void run_trim_created(struct kcopy *k)
{
	unsigned int i;

	if (!k->src.is_stream || k->tail_bytes == KC_SECTOR_SIZE)
		return;
	for (i = 0; i < k->num_dests; i++) {
		struct target *t = &k->dests[i];
		off_t end = (off_t)((t->sector + t->count) * KC_SECTOR_SIZE -
				    (KC_SECTOR_SIZE - k->tail_bytes));

		if (!(t->created || t->is_std) || t->is_stream ||
		    ((k->write_err >> i) & 1))
			continue;
		if (ftruncate(t->fd, end) < 0 || fdatasync(t->fd) < 0) {
			int err = errno;

			run_dest_failed(k, i, -err, "truncate");
			say(&k->out, MSG_NOTE, "destination %u '%s': cannot cut "
			    "it to the stream's length: %s", i + 1,
			    t->spec.path, strerror(err));
		}
	}
}

int run_exit_status(const struct kcopy *k)
{
	int status = k->read_err ? KCOPY_EXIT_READ : 0;
	unsigned int i;

	if (k->signal)
		return 128 + k->signal;
	for (i = 0; i < k->num_dests; i++) {
		unsigned int bit = i + 1 < KCOPY_EXIT_DEST_BIT_MAX
				   ? i + 1 : KCOPY_EXIT_DEST_BIT_MAX;

		if ((k->write_err >> i) & 1)
			status |= 1 << bit;
	}
	return status;
}
