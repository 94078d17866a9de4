/* client.c - the client: creation, job submission, waiting, counters.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcopyd-private.h"

/* The I/O queue for slots sub-jobs of dests destinations each in flight at
 * once, and at least for one sub-job of any job (KC_RING_MIN_DESTS). */
static unsigned int ring_events(unsigned int slots, unsigned int dests)
{
	return slots * dests > KCOPYD_MAX_DESTS ? slots * dests
						 : KCOPYD_MAX_DESTS;
}

/* Cut the budget into sub-jobs of bytes, with an I/O queue to match.  No job
 * may be outstanding.  On failure the sub-job size is unchanged (the queue
 * may have been resized: that limits or widens how many sub-jobs run at
 * once, nothing else). */
static int resize(struct kcopyd_client *kc, unsigned int bytes)
{
	unsigned int slot_pages;
	unsigned int slots = kc_pages_fit(kc, bytes, &slot_pages);
	int ret = kc_io_setup(kc, ring_events(slots, kc->ring_dests));

	return ret < 0 ? ret : kc_pages_carve(kc, bytes);
}

/* Everything but the engine thread, which is not running. */
static void client_free(struct kcopyd_client *kc)
{
	kc_backends_destroy(kc);	/* and what the caller left open */
	assert(!kc->files);	/* every job has been freed */
	kc_pages_exit(kc);
	kc_io_exit(kc);
	if (kc->wake_fd >= 0)
		close(kc->wake_fd);
	free(kc->bad);
	free(kc->fd_hints);
	free(kc->pfd);
	free(kc->polled);
	pthread_cond_destroy(&kc->zero_cond);
	pthread_cond_destroy(&kc->idle);
	pthread_mutex_destroy(&kc->lock);
	free(kc);
}

int kcopyd_client_create(unsigned int num_pages, struct kcopyd_client **result)
{
	struct kcopyd_client *kc;
	int ret;

	if (!result || num_pages == 0 || num_pages > KCOPYD_MAX_PAGES)
		return -EINVAL;
	kc = calloc(1, sizeof(*kc));
	if (!kc)
		return -ENOMEM;
	pthread_mutex_init(&kc->lock, NULL);
	pthread_cond_init(&kc->idle, NULL);
	pthread_cond_init(&kc->zero_cond, NULL);
	kc->zero_tail = &kc->zero_queue;
	kc->zero_done_tail = &kc->zero_done;
	kc->wake_fd = -1;
	kc->new_tail = &kc->new_jobs;
	kc->throttle = 100;
	kc->ring_dests = KC_RING_MIN_DESTS;

	ret = kc_engine_init(kc);
	if (ret == 0)
		ret = kc_pages_init(kc, num_pages);
	if (ret == 0)
		ret = resize(kc, KCOPYD_DEFAULT_SUBJOB_SIZE);
	if (ret == 0)
		ret = kc_engine_start(kc);
	if (ret < 0) {
		client_free(kc);
		return ret;
	}
	*result = kc;
	return 0;
}

static bool on_engine_thread(struct kcopyd_client *kc)
{
	return pthread_equal(pthread_self(), kc->engine);
}

int kcopyd_wait(struct kcopyd_client *kc)
{
	if (!kc)
		return -EINVAL;
	if (on_engine_thread(kc))
		return -EDEADLK;
	pthread_mutex_lock(&kc->lock);
	while (kc->jobs_outstanding)
		pthread_cond_wait(&kc->idle, &kc->lock);
	pthread_mutex_unlock(&kc->lock);
	return 0;
}

/* kcopyd_client_destroy from the engine thread (a callback or a hook):
 * it cannot wait for itself, so the engine frees the client once no job
 * is outstanding and the callback has returned (kc_engine_main's end). */
void kcopyd_client_destroy(struct kcopyd_client *kc)
{
	if (!kc)
		return;
	if (on_engine_thread(kc)) {
		pthread_mutex_lock(&kc->lock);
		if (!kc->free_deferred) {
			kc->free_deferred = client_free;
			pthread_detach(kc->engine);
		}
		pthread_mutex_unlock(&kc->lock);
		return;
	}
	kcopyd_wait(kc);
	kc_engine_stop(kc);
	client_free(kc);
}

void kcopyd_client_stop(struct kcopyd_client *kc)
{
	struct kc_job *job;

	if (!kc)
		return;
	/* The jobs not yet taken by the engine stop here; the engine stops
	 * its own, since only it may touch their sub-jobs. */
	pthread_mutex_lock(&kc->lock);
	for (job = kc->new_jobs; job; job = job->next)
		job->stopped = true;
	kc->stop_requested = true;
	pthread_mutex_unlock(&kc->lock);
	atomic_fetch_add(&kc->stops, 1);	/* and the opens under way */
	kc_engine_wake(kc);
}

/* Every destination's count is the source's (count), but where streams
 * are involved: from a stream source, destination counts are capacities
 * (0, no limit, for files and streams); a stream destination takes
 * whatever comes (count 0 or the source's), in order, so the job writes
 * under KCOPYD_WRITE_SEQ. */
static int check_counts(struct kc_job *job, uint64_t count)
{
	unsigned int i;

	job->src_in_order = job->src.file && job->src.file->in_order;
	for (i = 0; i < job->num_dests; i++) {
		const struct kc_region *d = &job->dests[i];

		if (d->file->in_order)
			job->flags |= KCOPYD_WRITE_SEQ;
		if (job->src_in_order || (d->file->in_order && d->count == 0)) {
			if (d->count == 0 && d->file->fixed_size)
				return kc_set_error(-EINVAL, "destination %u: "
						    "no COUNT, on storage of "
						    "a fixed size", i + 1);
			continue;
		}
		if (d->count != count)
			return kc_set_error(-EINVAL, "destination %u: %" PRIu64
					    " sectors, not the source's %"
					    PRIu64, i + 1, d->count, count);
	}
	return 0;
}

/* From a stream source, the last block of a destination written in whole
 * logical blocks is merged through a block of the budget beside the
 * stream's last bytes (subjob.c, tail_area): a logical block of more than
 * half a slot may need a second slot, lent, and -EINVAL if the budget is
 * one slot (kcopyd_client_create(1) and 4096-byte blocks). */
static int check_tail(struct kcopyd_client *kc, struct kc_job *job)
{
	size_t slot = (size_t)kc->slot_pages * KCOPYD_PAGE_SIZE;
	unsigned int i;

	for (i = 0; job->src_in_order && i < job->num_dests; i++) {
		const struct kc_file *f = job->dests[i].file;

		if (f->needs_whole_blocks && 2 * (size_t)f->lbs > slot)
			job->tail_borrow = true;
	}
	if (job->tail_borrow && kc->num_slots < 2)
		return kc_set_error(-EINVAL, "a stream's last block needs a "
				    "second slot, and the budget has one");
	return 0;
}

/* kcopyd_copy_map: the map into the job, on storage that can skip. */
static int check_map(struct kc_job *job, const struct kcopyd_extent *map,
		     size_t num)
{
	uint64_t at = 0;
	unsigned int i;
	size_t e;
	int r;

	if (job->src_in_order)
		return kc_set_error(-EINVAL, "a map of a stream source");
	r = kc_jobmap_set(job, map, num);
	if (r < 0)
		return r;
	for (e = 0; e < job->map_num && job->map[e].start == at; e++)
		at = job->map[e].end;
	for (i = 0; at < job->src.count && i < job->num_dests; i++)
		if (job->dests[i].file->in_order)
			return kc_set_error(-EINVAL, "destination %u: a stream "
					    "cannot skip what the map leaves "
					    "out", i + 1);
	return 0;
}

/* What a job is given beside its regions: a map (kcopyd_copy_map), a
 * buffer to read into (kcopyd_read). */
struct job_extra {
	const struct kcopyd_extent *map;
	size_t num_extents;
	bool has_map;
	char *read_buf;
	uint64_t read_pos;
	size_t read_len;
};

static int submit(struct kcopyd_client *kc, const struct io_region *from,
		  unsigned int num_dests, const struct io_region *dests,
		  unsigned int flags, kcopyd_notify_fn fn, void *context,
		  const struct job_extra *extra)
{
	struct kc_job *job;
	unsigned int i;
	int ret = 0;

	/* No destinations: a read job, of a source only. */
	kc_clear_error();
	if (!kc || !fn || (num_dests == 0) != !dests ||
	    (num_dests == 0 && !from) ||
	    num_dests > KCOPYD_MAX_DESTS || (flags & ~KCOPYD_FLAGS_MASK))
		return kc_fail(-EINVAL);
	job = calloc(1, sizeof(*job));
	if (job && (flags & KCOPYD_FLUSH) && num_dests) {
		job->flush_io = calloc(num_dests, sizeof(*job->flush_io));
		if (!job->flush_io) {
			free(job);
			job = NULL;
		}
	}
	if (!job)
		return kc_fail(-ENOMEM);
	job->flags = flags;
	job->is_zero = !from;
	job->num_dests = num_dests;
	job->fn = fn;
	job->context = context;

	pthread_mutex_lock(&kc->lock);
	if (from && (ret = kc_region_check(kc, from, KCOPYD_REGION_SOURCE,
					   &job->src)) < 0)
		kc_prefix_error("source");
	for (i = 0; ret == 0 && i < num_dests; i++)
		if ((ret = kc_region_check(kc, &dests[i], KCOPYD_REGION_DEST |
					   KCOPYD_REGION_MAY_EXTEND,
					   &job->dests[i])) < 0)
			kc_prefix_error("destination %u", i + 1);
	if (ret == 0)
		ret = check_counts(job, from ? from->count : dests[0].count);
	if (ret == 0)
		ret = check_tail(kc, job);
	if (ret == 0 && extra && extra->has_map)
		ret = check_map(job, extra->map, extra->num_extents);
	if (ret == 0 && extra && extra->read_buf && job->src_in_order)
		ret = kc_set_error(-EINVAL, "a stream cannot be read at an "
				   "offset");
	if (extra) {
		job->read_buf = extra->read_buf;
		job->read_pos = extra->read_pos;
		job->read_len = extra->read_len;
	}
	if (ret < 0) {
		kc_job_free(kc, job);
		pthread_mutex_unlock(&kc->lock);
		return kc_fail(ret);
	}
	/* More destinations than the ring is sized for: grow it while the
	 * engine is idle, else (or if the system's limit refuses) the job
	 * runs fewer sub-jobs at once. */
	if (num_dests > kc->ring_dests && kc->jobs_outstanding == 0 &&
	    kc_io_setup(kc, ring_events(kc->num_slots, num_dests)) == 0)
		kc->ring_dests = num_dests;
	job->submit_seq = kc->next_submit_seq++;
	*kc->new_tail = job;
	kc->new_tail = &job->next;
	kc->jobs_outstanding++;
	kc->stats.jobs_submitted++;
	pthread_mutex_unlock(&kc->lock);
	kc_engine_wake(kc);
	return 0;
}

int kcopyd_copy(struct kcopyd_client *kc, struct io_region *from,
		unsigned int num_dests, struct io_region *dests,
		unsigned int flags, kcopyd_notify_fn fn, void *context)
{
	if (!from) {
		kc_clear_error();
		return kc_fail(-EINVAL);
	}
	return submit(kc, from, num_dests, dests, flags, fn, context, NULL);
}

int kcopyd_copy_map(struct kcopyd_client *kc, struct io_region *from,
		    unsigned int num_dests, struct io_region *dests,
		    const struct kcopyd_extent *map, size_t num_extents,
		    unsigned int flags, kcopyd_notify_fn fn, void *context)
{
	struct job_extra extra = { .map = map, .num_extents = num_extents,
				   .has_map = true };

	if (!from) {
		kc_clear_error();
		return kc_fail(-EINVAL);
	}
	return submit(kc, from, num_dests, dests, flags, fn, context, &extra);
}

int kcopyd_zero(struct kcopyd_client *kc, unsigned int num_dests,
		struct io_region *dests, unsigned int flags,
		kcopyd_notify_fn fn, void *context)
{
	return submit(kc, NULL, num_dests, dests, flags, fn, context, NULL);
}

/* kcopyd_read: its job's end, which the caller waits for. */
struct read_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int read_err;
};

static void read_done(int read_err, unsigned int write_err, void *context)
{
	struct read_wait *w = context;

	(void)write_err;
	pthread_mutex_lock(&w->lock);
	w->read_err = read_err;
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int kcopyd_read(struct kcopyd_client *kc, int fd, void *buf, size_t len,
		uint64_t offset)
{
	uint64_t first = offset >> SECTOR_SHIFT;
	uint64_t end = (offset + len + KCOPYD_SECTOR_SIZE - 1) >> SECTOR_SHIFT;
	struct io_region from = { fd, first, end - first };
	struct job_extra extra = { .read_buf = buf,
				   .read_pos = offset - (first << SECTOR_SHIFT),
				   .read_len = len };
	struct read_wait w = { .lock = PTHREAD_MUTEX_INITIALIZER,
			       .cond = PTHREAD_COND_INITIALIZER };
	int r;

	if (!kc || !buf || len == 0 || offset + len < offset)
		return -EINVAL;
	if (on_engine_thread(kc))
		return -EDEADLK;
	r = submit(kc, &from, 0, NULL, KCOPYD_NO_ZERO_DETECT, read_done, &w,
		   &extra);
	if (r < 0)
		return r;
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	return w.read_err ? -EIO : 0;
}

int kcopyd_set_subjob_size(struct kcopyd_client *kc, unsigned int bytes)
{
	int ret;

	if (!kc || bytes == 0 || bytes % KCOPYD_PAGE_SIZE ||
	    bytes > KCOPYD_MAX_SUBJOB_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&kc->lock);
	ret = kc->jobs_outstanding ? -EBUSY : resize(kc, bytes);
	pthread_mutex_unlock(&kc->lock);
	return ret;
}

int kcopyd_set_throttle(struct kcopyd_client *kc, unsigned int percent)
{
	if (!kc || percent == 0 || percent > 100)
		return -EINVAL;
	pthread_mutex_lock(&kc->lock);
	kc->throttle = percent;
	kc->thr_last_us = kc_now_us();
	kc->thr_io_us = 0;
	kc->thr_total_us = 0;
	pthread_mutex_unlock(&kc->lock);
	kc_engine_wake(kc);
	return 0;
}

int kcopyd_set_rate(struct kcopyd_client *kc, uint64_t bytes_per_second)
{
	if (!kc)
		return -EINVAL;
	pthread_mutex_lock(&kc->lock);
	kc->rate = bytes_per_second;
	kc->rate_bytes = 0;
	pthread_mutex_unlock(&kc->lock);
	kc_engine_wake(kc);
	return 0;
}

int kcopyd_get_stats(struct kcopyd_client *kc, struct kcopyd_stats *stats)
{
	struct kcopyd_stats st;

	if (!kc || !stats)
		return -EINVAL;
	pthread_mutex_lock(&kc->lock);
	st = kc->stats;
	pthread_mutex_unlock(&kc->lock);
	st.struct_size = sizeof(st);
	return kc_copy_sized(stats, &st, sizeof(st));
}

void kcopyd_set_error_fn(struct kcopyd_client *kc, kcopyd_error_fn fn,
			 void *context)
{
	if (!kc)
		return;
	pthread_mutex_lock(&kc->lock);
	kc->error_fn = fn;
	kc->error_ctx = context;
	pthread_mutex_unlock(&kc->lock);
}

void kcopyd_set_data_fn(struct kcopyd_client *kc, kcopyd_data_fn fn,
			void *context)
{
	if (!kc)
		return;
	pthread_mutex_lock(&kc->lock);
	kc->data_fn = fn;
	kc->data_ctx = context;
	pthread_mutex_unlock(&kc->lock);
}

static int bad_range_cmp(const void *a, const void *b)
{
	const struct io_region *x = a, *y = b;

	if (x->fd != y->fd)
		return x->fd < y->fd ? -1 : 1;
	if (x->sector != y->sector)
		return x->sector < y->sector ? -1 : 1;
	return 0;
}

/* The ranges bad[first..num_bad) as regions, sorted and merged, into
 * *ranges and *count; those from first on are then taken if take.  0,
 * -ENOMEM (no memory, or a range was lost: the record is incomplete). */
static int bad_ranges(struct kcopyd_client *kc, bool take,
		      struct io_region **ranges, size_t *count)
{
	struct io_region *r = NULL;
	size_t i, n, first;

	pthread_mutex_lock(&kc->lock);
	first = take ? kc->bad_taken : 0;
	n = kc->num_bad - first;
	if (kc->bad_lost) {
		pthread_mutex_unlock(&kc->lock);
		return -ENOMEM;
	}
	if (n) {
		r = malloc(n * sizeof(*r));
		if (!r) {
			pthread_mutex_unlock(&kc->lock);
			return -ENOMEM;
		}
		for (i = 0; i < n; i++)
			r[i] = (struct io_region){ kc->bad[first + i].fd,
						   kc->bad[first + i].sector,
						   kc->bad[first + i].count };
	}
	if (take)
		kc->bad_taken = kc->num_bad;
	pthread_mutex_unlock(&kc->lock);

	if (n) {
		size_t out = 0;

		qsort(r, n, sizeof(*r), bad_range_cmp);
		for (i = 1; i < n; i++) {
			struct io_region *last = &r[out];

			if (r[i].fd == last->fd &&
			    r[i].sector <= last->sector + last->count) {
				uint64_t end = r[i].sector + r[i].count;

				if (end > last->sector + last->count)
					last->count = end - last->sector;
			} else {
				r[++out] = r[i];
			}
		}
		n = out + 1;
	}
	*ranges = r;
	*count = n;
	return 0;
}

int kcopyd_get_bad_ranges(struct kcopyd_client *kc, struct io_region **ranges,
			  size_t *count)
{
	if (!kc || !ranges || !count)
		return -EINVAL;
	return bad_ranges(kc, false, ranges, count);
}

int kcopyd_take_bad_ranges(struct kcopyd_client *kc,
			   struct io_region **ranges, size_t *count)
{
	if (!kc || !ranges || !count)
		return -EINVAL;
	return bad_ranges(kc, true, ranges, count);
}
