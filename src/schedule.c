/* schedule.c - the scheduler: which job starts a sub-job next.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Once a round of the engine: take the jobs callers submitted, start
 * sub-jobs while slots of the page budget and room in the I/O queue are
 * free, a job at a time in turn (round robin), as the throttle allows
 * (throttle.c), and none while a sub-job isolates bad blocks (isolate.c),
 * nor any that a job's map leaves out (jobmap.c);
 * then let the data hook through across jobs, zero the gathered ranges of
 * the jobs that are over and extend their files to a stream source's end
 * (sparse.c), and queue their flushes (job.c).  The
 * top of the job code: it calls into subjob.c, sparse.c, jobmap.c,
 * throttle.c and job.c, and nothing calls it but the engine.  Runs on the
 * engine thread with kc->lock held.
 */
#include <config.h>

#include "kcopyd-private.h"

/* kcopyd_client_stop: stop every active job, and let their streams end
 * what they hold queued. */
static void jobs_stop_all(struct kcopyd_client *kc)
{
	struct kc_job *job;

	for (job = kc->jobs; job; job = job->next) {
		kc_job_stop(kc, job);
		kc_job_cancel(kc, job, true);
	}
}

/* KCOPYD_DATA_ACROSS_JOBS: let through the data hook the sub-jobs whose
 * turn it is and that waited only for earlier jobs. */
static void jobs_hook_release(struct kcopyd_client *kc)
{
	struct kc_job *job;

	for (job = kc->jobs; job; job = job->next) {
		struct kc_subjob *sj = job->hook_parked;

		if (!(job->flags & KCOPYD_DATA_ACROSS_JOBS) || !sj ||
		    sj->seq != job->hook_seq ||
		    kc_job_behind_earlier(kc, job, false))
			continue;
		job->hook_parked = sj->next;
		sj->next = NULL;
		kc_sj_data_ready(kc, sj);
	}
}

/* A sub-job of a job whose merge may need a slot lent (subjob.c,
 * tail_area) may start only if all slots but one are not held by such
 * sub-jobs: then a slot to lend always comes. */
static bool tail_held_back(const struct kcopyd_client *kc,
			   const struct kc_job *job)
{
	return job->tail_borrow && kc->tail_own + 1 >= kc->num_slots;
}

/* Take the jobs submitted since the last call and start as many sub-jobs as
 * there are free slots and room in the I/O queue, a job at a time in turn,
 * then the flushes of the jobs that are over.  *timeout_ms is lowered when
 * the throttle holds work back. */
void kc_jobs_schedule(struct kcopyd_client *kc, int *timeout_ms)
{
	uint64_t slot_sectors = (uint64_t)kc->slot_pages *
				(KCOPYD_PAGE_SIZE >> SECTOR_SHIFT);
	struct kc_job **tail, *job;

	if (kc->stop_requested) {
		kc->stop_requested = false;
		jobs_stop_all(kc);
	}
	for (tail = &kc->jobs; *tail; tail = &(*tail)->next)
		;
	for (job = kc->new_jobs; job; job = job->next) {
		kc_jobmap_pass(kc, job, slot_sectors);
		kc_job_dest_holes(kc, job);
	}
	*tail = kc->new_jobs;
	kc->new_jobs = NULL;
	kc->new_tail = &kc->new_jobs;

	while (kc->free_slots && !kc->isolating) {
		struct kc_job **p;
		uint64_t sectors;

		for (p = &kc->jobs; *p && (!kc_job_runnable(*p) ||
					   kc_job_behind_earlier(kc, *p, true) ||
					   tail_held_back(kc, *p));
		     p = &(*p)->next)
			;
		job = *p;
		if (!job)
			break;
		/* Its iocbs must fit the ring; else wait for sub-jobs in
		 * flight to end (there are some: a ring never holds fewer
		 * iocbs than one sub-job of any job needs). */
		if (kc->iocbs_reserved + kc_job_iocbs(job) > kc->ring_size)
			break;
		sectors = kc_job_sectors(job) - job->issued;
		if (sectors > slot_sectors)
			sectors = slot_sectors;
		if (!kc_throttle_may_start(kc, sectors << SECTOR_SHIFT,
					   timeout_ms))
			break;
		/* Round robin: the job goes to the back of the line. */
		*p = job->next;
		job->next = NULL;
		for (tail = p; *tail; tail = &(*tail)->next)
			;
		*tail = job;
		kc_sj_start(kc, job, sectors);
		kc_jobmap_pass(kc, job, slot_sectors);
	}
	jobs_hook_release(kc);
	kc_jobs_zero_pending(kc, kc_job_write_failed);
	kc_jobs_extend(kc, kc_job_write_failed);
	kc_jobs_flush(kc);
}
