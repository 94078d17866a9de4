/* run.c - the copy engine as the tool drives it: the client and its
 * settings, the hooks it calls back, submitting the jobs (which flush the
 * destinations: KCOPYD_FLUSH), and waiting for them while drawing progress
 * and answering signals: the copy's jobs, then --verify's (the phases of
 * the progress).  With
 * --mapfile the copy is a sequence of jobs, the pieces mapfile.c hands
 * out, KCOPY_MAP_IN_FLIGHT at a time; each piece whose callback has run is
 * handed back to it, durable, from the main thread.
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
#include <sys/stat.h>
#include <unistd.h>

#include "kcopy.h"

#define DEFAULT_PROGRESS_INTERVAL 1.0	/* seconds, plain and JSON lines */
#define BAR_INTERVAL 0.25		/* seconds between redraws of the bar */

bool run_dest_failed(struct kcopy *k, unsigned int i, int err,
		     const char *op, uint64_t sector)
{
	struct target *t = &k->dests[i];
	bool first;

	pthread_mutex_lock(&k->lock);
	first = !t->error;
	if (first) {
		t->error = err;
		t->error_op = op;
	}
	if (sector != KCOPY_NO_SECTOR &&
	    (!t->error_offset_known ||
	     sector * KC_SECTOR_SIZE < t->error_offset)) {
		t->error_offset = sector * KC_SECTOR_SIZE;
		t->error_offset_known = true;
	}
	k->write_err |= 1u << i;
	pthread_mutex_unlock(&k->lock);
	return first;
}

/* ---------------------------------------------------- the engine's hooks */

/* Which destination an error is about: its index in the job, or with
 * --zero (one job per destination) and --mapfile (jobs to the destinations
 * still live) the one with that descriptor. */
static unsigned int dest_of(const struct kcopy *k,
			    const struct kcopyd_io_error *e)
{
	unsigned int i;

	if (!k->opt.zero && !k->map)
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
		first = !k->read_error || (e->is_lost && !k->source_lost);
		if (first)
			k->read_error = e->error;
		if (e->is_lost)
			k->source_lost = true;
		pthread_mutex_unlock(&k->lock);
		if (first && e->is_lost)
			say(&k->out, MSG_NOTE, "source '%s': connection lost "
			    "at sector %" PRIu64 ": %s; stopping",
			    k->src.spec.path, e->sector, strerror(-e->error));
		else if (first)
			say(&k->out, MSG_NOTE, "source '%s': read error at "
			    "sector %" PRIu64 " (%" PRIu64 " sectors): %s%s",
			    k->src.spec.path, e->sector, e->count,
			    strerror(-e->error), k->opt.ignore_errors
			    ? "; isolating bad sectors" : "; stopping");
		return;
	}
	i = dest_of(k, e);
	if (i >= k->num_dests ||
	    !run_dest_failed(k, i, e->error, e->is_flush ? "flush" : "write",
			     e->is_flush ? KCOPY_NO_SECTOR : e->sector))
		return;
	if (e->is_flush) {
		say(&k->out, MSG_NOTE, "destination %u '%s': flush failed: %s",
		    i + 1, k->dests[i].spec.path, strerror(-e->error));
		return;
	}
	if (e->is_lost) {
		say(&k->out, MSG_NOTE, "destination %u '%s': connection lost "
		    "at sector %" PRIu64 ": %s; dropped", i + 1,
		    k->dests[i].spec.path, e->sector, strerror(-e->error));
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

/* --mapfile: one job of the copy, a piece of the source region. */
struct piece {
	struct kcopy *k;
	struct piece *next;		/* in k->pieces_done */
	uint64_t sector, count;
	unsigned int num_dests;
	unsigned int dest[KCOPYD_MAX_DESTS];	/* job's i is k->dests[dest[i]] */
	int read_err;
	unsigned int write_err;		/* bits of k->dests */
};

static void on_piece_done(int read_err, unsigned int write_err,
			  void *context)
{
	struct piece *p = context;
	struct kcopy *k = p->k;
	unsigned int i;

	p->read_err = read_err;
	for (i = 0; i < p->num_dests; i++)
		if ((write_err >> i) & 1)
			p->write_err |= 1u << p->dest[i];
	pthread_mutex_lock(&k->lock);
	p->next = k->pieces_done;
	k->pieces_done = p;
	pthread_mutex_unlock(&k->lock);
	run_job_done(k, read_err, p->write_err);
}

/* ------------------------------------------------------------ the client */

/* Signals must be blocked first: the engine thread inherits the mask. */
int run_create_client(struct kcopy *k)
{
	int r = kcopyd_client_create((unsigned int)k->opt.pages, &k->kc);
	const char *engine = getenv("KCOPYD_IO_ENGINE");

	if (r < 0 && r != -ENOMEM && engine && *engine) {
		/* the interface the environment chose is unknown (EINVAL),
		 * not built in or too old (ENOTSUP), or refused */
		say(&k->out, MSG_ERROR, "cannot set up the copy engine: "
		    "KCOPYD_IO_ENGINE=%s: %s", engine,
		    r == -EINVAL ? "expected io_uring or libaio"
				 : strerror(-r));
		return r;
	}

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

/* A copy job, of what the map says where there is one (--used,
 * --domain-mapfile: the library takes the part within from). */
static int copy_job(struct kcopy *k, struct io_region *from,
		    unsigned int num_dests, struct io_region *to,
		    kcopyd_notify_fn fn, void *context)
{
	if (k->used.ext)
		return kcopyd_copy_map(k->kc, from, num_dests, to, k->used.ext,
				       k->used.num, k->flags, fn, context);
	return kcopyd_copy(k->kc, from, num_dests, to, k->flags, fn, context);
}

/* --mapfile: the pieces whose callback has run go to the map (unless the
 * run is stopping: a stopped job's callback does not say how far it got),
 * and new ones are submitted while there are some and the copy goes on.
 * Main thread.  The number of jobs submitted; -errno if the engine refused
 * the first one of the copy. */
static int refill(struct kcopy *k)
{
	unsigned int all = (k->num_dests < 32 ? 1u << k->num_dests : 0) - 1;
	struct io_region from, to[KCOPYD_MAX_DESTS];
	struct piece *p, *done;
	unsigned int i, left, write_err;
	int read_err, n = 0, r;
	bool lost;

	pthread_mutex_lock(&k->lock);
	done = k->pieces_done;
	k->pieces_done = NULL;
	lost = k->source_lost;
	pthread_mutex_unlock(&k->lock);
	/* A piece with a read error is done under --ignore-errors (its bad
	 * sectors are '-'), but not once the source's connection was lost:
	 * it may not have been read at all, and stays '?'. */
	for (p = done; p; p = done) {
		done = p->next;
		if (!k->signal &&
		    (!p->read_err || (k->opt.ignore_errors && !lost)) &&
		    (unsigned int)__builtin_popcount(p->write_err) <
		    p->num_dests)
			mapfile_done(k, p->sector, p->count);
		free(p);
	}
	mapfile_checkpoint(k, false);
	for (;;) {
		pthread_mutex_lock(&k->lock);
		left = k->jobs_left;
		read_err = k->read_err;
		write_err = k->write_err;
		lost = k->source_lost;
		pthread_mutex_unlock(&k->lock);
		/* A read error stops the copy, as it stops a job; so does the
		 * loss of every destination. */
		if (k->signal || k->pieces_stopped || left >= KCOPY_MAP_IN_FLIGHT
		    || (read_err && (!k->opt.ignore_errors || lost)) ||
		    write_err == all)
			return n;
		p = calloc(1, sizeof(*p));
		if (!p || !mapfile_next(k, &p->sector, &p->count)) {
			free(p);
			return n;
		}
		p->k = k;
		from = (struct io_region){ k->src.fd, p->sector, p->count };
		for (i = 0; i < k->num_dests; i++) {
			const struct target *t = &k->dests[i];

			if ((write_err >> i) & 1)
				continue;
			to[p->num_dests] = (struct io_region){ t->fd,
				t->sector + (p->sector - k->src.sector),
				p->count };
			p->dest[p->num_dests++] = i;
		}
		pthread_mutex_lock(&k->lock);
		k->jobs_left++;
		pthread_mutex_unlock(&k->lock);
		r = copy_job(k, &from, p->num_dests, to, on_piece_done, p);
		if (r < 0) {
			pthread_mutex_lock(&k->lock);
			k->jobs_left--;
			pthread_mutex_unlock(&k->lock);
			free(p);
			k->pieces_stopped = true;
			if (!k->map_started)
				return r;	/* nothing was written */
			say(&k->out, MSG_ERROR, "the copy engine refused a "
			    "job: %s; stopping", strerror(-r));
			return n;
		}
		k->map_started = true;
		n++;
	}
}

static int submit(struct kcopy *k)
{
	struct io_region from = { k->src.fd, k->src.sector, k->src.count };
	struct io_region to[KCOPYD_MAX_DESTS];
	unsigned int i, refused;
	int r = 0;

	for (i = 0; i < k->num_dests; i++)
		to[i] = (struct io_region){ k->dests[i].fd, k->dests[i].sector,
					    k->dests[i].count };
	if (k->map)
		return (r = refill(k)) < 0 ? r : 0;
	k->jobs_left = k->opt.zero ? k->num_dests : 1;
	if (!k->opt.zero)
		return copy_job(k, &from, k->num_dests, to, on_copy_done, k);
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
		run_dest_failed(k, i, r, "zero", KCOPY_NO_SECTOR);
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

void run_wait(struct kcopy *k)
{
	double interval = k->opt.progress_interval;
	double next_tick;

	if (interval <= 0)
		interval = k->progress.bar ? BAR_INTERVAL
					   : DEFAULT_PROGRESS_INTERVAL;
	next_tick = clock_now() + interval;
	while (jobs_left(k)) {
		struct pollfd pfd[2] = { { .fd = k->sig_fd, .events = POLLIN },
					 { .fd = k->done_fd, .events = POLLIN } };
		double wait = next_tick - clock_now();
		int timeout = wait > 0 ? (int)(wait * 1000) + 1 : 0;

		if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
			return;
		if (pfd[0].revents & POLLIN)
			signals_poll(k);
		if (pfd[1].revents & POLLIN) {
			uint64_t n;

			if (read(k->done_fd, &n, sizeof(n)) < 0)
				n = 0;	/* EAGAIN: drained already */
			if (k->map)
				refill(k);
		}
		/* Without --progress too: the ticks note the flush. */
		if (clock_now() >= next_tick) {
			progress_tick(k, false);
			next_tick += interval;
			if (next_tick < clock_now())
				next_tick = clock_now() + interval;
		}
	}
}

/* Submit, wait and collect; the jobs flush.  Returns 0 once the jobs ran (whatever
 * they did: see k->read_err and k->write_err), or -errno if the engine
 * refused them, after saying so; then nothing was written. */
int run_copy(struct kcopy *k)
{
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	int r;

	k->start = clock_now();
	progress_start(k);
	r = submit(k);
	if (r < 0) {
		/* The library's own checks, after ours: name what it says. */
		say(&k->out, MSG_ERROR, "the copy engine refused the job: %s",
		    strerror(-r));
		kcopyd_wait(k->kc);
		return r;
	}
	/* A piece's callback may end the last job just before run_wait()
	 * looks: the pieces it ended are still to be taken. */
	do
		run_wait(k);
	while (k->map && refill(k) > 0);
	kcopyd_wait(k->kc);
	kcopyd_get_stats(k->kc, &st);
	k->bytes_done = st.bytes_done;
	k->stats = st;
	r = kcopyd_get_bad_ranges(k->kc, &k->bad, &k->num_bad);
	if (r < 0)
		say(&k->out, MSG_ERROR, "cannot list the bad ranges: %s",
		    strerror(-r));
	/* The run's seconds and its last progress line come at its end,
	 * after --verify: progress_tick(k, true) in main.c. */
	return 0;
}

/* From a stream whose length is not a multiple of 512, the library wrote
 * regular files to the stream's last byte (devices and exports got their
 * last block merged, nothing past the stream changed).  A file this run
 * created, or a file on standard output, is then cut back to the stream's
 * end should it reach past it, but never below the size it had when this
 * run started: kcopy truncates nothing it did not write (1<>disk.img keeps
 * the image past the stream; a file the shell just made empty with > ends
 * where the stream does).  A failure is that destination's write error. */
void run_trim_created(struct kcopy *k)
{
	unsigned int i;

	if (!k->src.info.is_stream || k->tail_bytes == KC_SECTOR_SIZE)
		return;
	for (i = 0; i < k->num_dests; i++) {
		struct target *t = &k->dests[i];
		off_t end = (off_t)((t->sector + t->count) * KC_SECTOR_SIZE -
				    (KC_SECTOR_SIZE - k->tail_bytes));
		struct stat st;

		if (!(t->created || t->is_std) || t->info.is_stream ||
		    t->info.is_blockdev || t->info.is_remote ||
		    ((k->write_err >> i) & 1))
			continue;
		if (end < (off_t)t->info.size)
			end = (off_t)t->info.size;
		if (fstat(t->fd, &st) == 0 && st.st_size <= end)
			continue;	/* nothing past it of this run's */
		if (ftruncate(t->fd, end) < 0 || fdatasync(t->fd) < 0) {
			int err = errno;

			run_dest_failed(k, i, -err, "truncate",
					KCOPY_NO_SECTOR);
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
