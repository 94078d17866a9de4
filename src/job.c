/* job.c - jobs: what they cover, when they are over, their flushes and
 * callbacks.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A job is split into sub-jobs (subjob.c), started by the scheduler
 * (schedule.c).  A job is over when it has nothing in flight and nothing
 * more to start; under KCOPYD_FLUSH its destinations still in it are then
 * flushed (after a stop too: what was written is made stable), once its
 * gathered zero ranges are done and, from a stream source, its files
 * extended to the stream's end (sparse.c), and once those flushes have
 * ended the job is finished: kc_jobs_run_callbacks() takes it off kc->jobs
 * and runs its callback.  The predicates here are the lowest layer of the
 * job code: the scheduler, the sub-jobs and the zeroing ask them.
 *
 * Everything here runs on the engine thread with kc->lock held, dropped
 * only around callbacks and the error hook.
 */
#include <config.h>

#include <assert.h>
#include <stdlib.h>

#include "kcopyd-private.h"

/* Sectors the job covers: a stream source without a count, as many as
 * come before its end. */
uint64_t kc_job_sectors(const struct kc_job *job)
{
	if (job->is_zero)
		return job->dests[0].count;
	if (job->src_in_order && job->src.count == 0)
		return KC_MAX_SECTORS;
	return job->src.count;
}

bool kc_job_runnable(const struct kc_job *job)
{
	return !job->stopped && !job->eof && job->issued < kc_job_sectors(job);
}

/* iocbs a sub-job of job reserves: one per destination, which also covers
 * its read; a read job's is for the read alone. */
unsigned int kc_job_iocbs(const struct kc_job *job)
{
	return job->num_dests ? job->num_dests : 1;
}

unsigned int kc_job_all_dests(const struct kc_job *job)
{
	return (unsigned int)((1ull << job->num_dests) - 1);
}

/* KCOPYD_FLUSH: the destinations to flush once the sub-jobs are over, those
 * neither failed nor dropped; none if no sub-job ever started. */
static unsigned int flush_targets(const struct kc_job *job)
{
	if (!(job->flags & KCOPYD_FLUSH) || job->flush_started ||
	    job->next_seq == 0)
		return 0;
	return kc_job_all_dests(job) & ~(job->write_err | job->dropped);
}

bool kc_job_over(const struct kc_job *job)
{
	return job->in_flight == 0 && !kc_job_runnable(job);
}

/* From a stream source, are the destinations still to be extended to the
 * stream's end (kc_jobs_extend, sparse.c)?  Once the job is over, unless a
 * read error or a stop left the stream unfinished. */
bool kc_job_extend_due(const struct kc_job *job)
{
	return job->src_in_order && job->num_dests && !job->extended &&
	       !job->stopped && !job->read_err && kc_job_over(job);
}

/* Has every sub-job the job will have been through the data hook (or
 * will never be: a stopped job's)? */
static bool hook_over(const struct kc_job *job)
{
	return job->stopped ||
	       (!kc_job_runnable(job) &&
		(job->hook_seq == job->next_seq || job->in_flight == 0));
}

/* KCOPYD_DATA_ACROSS_JOBS: is job behind an earlier job with the flag: at
 * the data hook (start false), one whose sub-jobs have not all been
 * through it; to start sub-jobs (start true), one that has not started
 * all of its own?  The second keeps the first from holding the budget
 * with sub-jobs waiting at the hook for sub-jobs that could not start. */
bool kc_job_behind_earlier(const struct kcopyd_client *kc,
			   const struct kc_job *job, bool start)
{
	const unsigned int across = KCOPYD_DATA_IN_ORDER |
				    KCOPYD_DATA_ACROSS_JOBS;
	const struct kc_job *e;

	if ((job->flags & across) != across)
		return false;
	for (e = kc->jobs; e; e = e->next) {
		if (e == job || (e->flags & across) != across ||
		    e->submit_seq > job->submit_seq)
			continue;
		if (start ? kc_job_runnable(e) : !hook_over(e))
			return true;
	}
	return false;
}

static bool job_finished(const struct kc_job *job)
{
	return kc_job_over(job) && job->flush_pending == 0 &&
	       !flush_targets(job) && !job->zero_pend &&
	       !job->zero_in_flight && !kc_job_extend_due(job);
}

/* Let a stopped job's streams end what they hold queued: the reads of a
 * source (no more data is wanted), and with dests the writes too (a stop
 * asked for from outside must not wait for a stalled reader). */
void kc_job_cancel(struct kcopyd_client *kc, struct kc_job *job, bool dests)
{
	unsigned int i;

	if (job->src.file && job->src.file->ops->cancel)
		job->src.file->ops->cancel(kc, job->src.file);
	for (i = 0; dests && i < job->num_dests; i++)
		if (job->dests[i].file->ops->cancel)
			job->dests[i].file->ops->cancel(kc,
							job->dests[i].file);
}

/* The end of the flush of one destination (io.c's end_io).  A failed flush
 * is a write error of that destination. */
static void flush_io_done(struct kcopyd_client *kc, struct kc_iocb *io,
			  int err)
{
	struct kc_job *job = io->private;
	unsigned int dest = (unsigned int)(io - job->flush_io);

	assert(job->flush_pending > 0 && kc->iocbs_reserved > 0);
	job->flush_pending--;
	kc->iocbs_reserved--;
	if (err) {
		job->write_err |= 1u << dest;
		kc_report_error(kc, io->file, KC_IO_FLUSH, dest, 0, 0, err);
	}
}

/* Queue the flushes of the jobs that are over, each job's all at once when
 * the ring has room for them. */
void kc_jobs_flush(struct kcopyd_client *kc)
{
	struct kc_job *job;

	for (job = kc->jobs; job; job = job->next) {
		unsigned int todo = flush_targets(job), i;

		if (!todo || !kc_job_over(job) || job->zero_pend ||
		    job->zero_in_flight || kc_job_extend_due(job) ||
		    kc->iocbs_reserved + (unsigned int)__builtin_popcount(todo) >
		    kc->ring_size)
			continue;
		job->flush_started = true;
		for (i = 0; i < job->num_dests; i++) {
			struct kc_iocb *io = &job->flush_io[i];

			if (!(todo & (1u << i)))
				continue;
			*io = (struct kc_iocb){
				.end_io = flush_io_done,
				.private = job,
				.file = job->dests[i].file,
				.op = KC_IO_FLUSH,
			};
			job->flush_pending++;
			kc->iocbs_reserved++;
			io->file->ops->queue(kc, io);
		}
	}
}

/* Take the finished jobs off kc->jobs and run their callbacks, in the order
 * of kc->jobs, without kc->lock.  Returns whether any ran. */
bool kc_jobs_run_callbacks(struct kcopyd_client *kc)
{
	struct kc_job **p = &kc->jobs, *done = NULL, **tail = &done, *job;

	while ((job = *p)) {
		if (job_finished(job)) {
			assert(!job->parked);
			*p = job->next;
			job->next = NULL;
			*tail = job;
			tail = &job->next;
		} else {
			p = &job->next;
		}
	}
	if (!done)
		return false;
	while ((job = done)) {
		done = job->next;
		pthread_mutex_unlock(&kc->lock);
		job->fn(job->read_err, job->write_err, job->context);
		pthread_mutex_lock(&kc->lock);
		kc_job_free(kc, job);
		assert(kc->jobs_outstanding > 0);
		kc->stats.jobs_completed++;
		kc->jobs_outstanding--;
		pthread_cond_broadcast(&kc->idle);
	}
	return true;
}

/* Free a job that is on no list, and release the files of its regions (all
 * of them, or those kc_region_check() filled in so far).  Called with
 * kc->lock held. */
void kc_job_free(struct kcopyd_client *kc, struct kc_job *job)
{
	unsigned int i;

	kc_region_put(kc, &job->src);
	for (i = 0; i < job->num_dests; i++)
		kc_region_put(kc, &job->dests[i]);
	free(job->flush_io);
	free(job->map);
	free(job);
}
