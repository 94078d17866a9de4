/* main.c - kcopy: copy a range of sectors to one or more destinations with
 * libkcopyd.  Only the wiring: parse, set up, run, verify, report, and the
 * exit status (kcopy(1), EXIT STATUS).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcopy.h"

int kcopy_init(struct kcopy *k)
{
	memset(k, 0, sizeof(*k));
	k->src.fd = -1;
	feed_init(&k->feed);
	k->sig_fd = -1;
	k->done_fd = -1;
	k->tail_bytes = KC_SECTOR_SIZE;
	pthread_mutex_init(&k->lock, NULL);
	report_init(k);
	return output_init(&k->out);
}

static void target_free(struct target *t)
{
	/* The library closes exports; 0 and 1 are not ours. */
	if (t->fd >= 0 && !t->info.is_remote && !t->is_std)
		close(t->fd);
	kc_spec_free(&t->spec);
	free(t->arg);
	free(t->mismatches);
	hash_free(&t->hash);
}

/* Everything kcopy_init and the run made, on every way out. */
void kcopy_free(struct kcopy *k)
{
	unsigned int i;

	if (k->kc)
		kcopyd_client_destroy(k->kc);
	verify_free(k);
	free(k->bad);
	for (i = 0; k->dests && i < k->num_dests; i++)
		target_free(&k->dests[i]);
	free(k->dests);
	/* The feed's pipe stands for the source: the feed closes it. */
	if (k->feed.dec.ops)
		k->src.fd = -1;
	feed_free(&k->feed);
	target_free(&k->src);
	report_free(k);
	free((void *)k->opt.report);
	free((void *)k->opt.hash_file);
	free(k->argv);
	commands_free(k);
	mapfile_free(k);
	free((void *)k->opt.mapfile);
	free((void *)k->opt.domain_mapfile);
	used_free(k);
	flash_free(k);
	free((void *)k->opt.bmap);
	if (k->sig_fd >= 0)
		close(k->sig_fd);
	if (k->done_fd >= 0)
		close(k->done_fd);
	pthread_mutex_destroy(&k->lock);
	output_destroy(&k->out);
}

/* Everything is checked before anything is created; 0 or -errno, said. */
static int setup(struct kcopy *k)
{
	unsigned int i;
	int r;

	k->sig_fd = signals_block();
	if (k->sig_fd < 0) {
		say(&k->out, MSG_ERROR, "cannot set up signals: %s",
		    strerror(-k->sig_fd));
		return k->sig_fd;
	}
	r = run_create_client(k);
	if (r == 0 && !k->opt.zero)
		r = target_open_source(k, &k->src);
	/* The bmap before the destinations: its size is that of an image
	 * the feed delivers without its container telling it. */
	if (r == 0)
		r = flash_open(k);
	for (i = 0; r == 0 && i < k->num_dests; i++)
		r = target_prepare_dest(k, &k->dests[i]);
	if (r == 0)
		r = target_check_overlaps(k);
	if (r == 0)
		r = target_lock_regions(k);
	if (r == 0)
		r = used_open(k);
	if (r == 0)
		r = report_open(k);
	if (r == 0)
		r = mapfile_open(k);
	if (r < 0)
		return r;

	/* The destinations are flushed before kcopy reports success. */
	k->flags = KCOPYD_DROP_FAILED_DESTS | KCOPYD_FLUSH;
	if (k->opt.ignore_errors)
		k->flags |= KCOPYD_IGNORE_ERROR;
	if (k->opt.sequential)
		k->flags |= KCOPYD_WRITE_SEQ;
	/* --hash feeds the digests from the data hook, in source order, also
	 * across the pieces of a --mapfile copy, which run as several jobs
	 * submitted in source order; so does --bmap's check of its ranges. */
	if (k->opt.hash_algs || k->flash.path)
		k->flags |= KCOPYD_DATA_IN_ORDER | KCOPYD_DATA_ACROSS_JOBS;
	if (k->opt.allocated)
		k->flags |= KCOPYD_ALLOCATED;
	if (k->opt.dest_is_zero)
		k->flags |= KCOPYD_DEST_IS_ZERO;
	if (k->opt.no_zero_detect)
		k->flags |= KCOPYD_NO_ZERO_DETECT;
	for (i = 0; i < k->num_dests; i++) {
		if (k->dests[i].zoned && !(k->flags & KCOPYD_WRITE_SEQ)) {
			k->flags |= KCOPYD_WRITE_SEQ;
			say(&k->out, MSG_VERBOSE, "destination %u is "
			    "host-managed zoned: writing sequentially", i + 1);
		}
		if (k->opt.zero)
			k->bytes += k->dests[i].count * KC_SECTOR_SIZE;
	}
	if (!k->opt.zero)
		k->bytes = k->src.count * KC_SECTOR_SIZE;
	k->work_bytes = k->used.ext ? used_work_bytes(k) : k->bytes;
	/* A compressed image of a known size: progress has its total. */
	if (!k->work_bytes && k->feed.size_known)
		k->work_bytes = k->src.count && k->src.count * KC_SECTOR_SIZE <
				k->feed.image_size
				? k->src.count * KC_SECTOR_SIZE
				: k->feed.image_size;
	/* Or a bmap's image that the feed delivers. */
	if (!k->work_bytes && k->flash.fed)
		k->work_bytes = k->flash.map.image_size;
	return 0;
}

/* A stream without a COUNT: its regions are what came, now known. */
static void stream_regions(struct kcopy *k)
{
	uint64_t sectors = (k->bytes_done + KC_SECTOR_SIZE - 1) /
			   KC_SECTOR_SIZE;
	unsigned int i;

	/* A COUNT the stream fell short of counts what came too. */
	if (!k->src.info.is_stream ||
	    (k->src.count && k->bytes_done >= k->src.count * KC_SECTOR_SIZE))
		return;
	if (k->bytes_done % KC_SECTOR_SIZE)
		k->tail_bytes = k->bytes_done % KC_SECTOR_SIZE;
	k->src.count = sectors;
	k->bytes = k->work_bytes = k->bytes_done;
	for (i = 0; i < k->num_dests; i++)
		if (!k->dests[i].count || k->dests[i].count > sectors)
			k->dests[i].count = sectors;
}

/* A compressed source: the feed's thread ended; an image it could not
 * decode to its end is a read error where the decoder found it (the copy
 * got what was decoded before it, and nothing after). */
static void finish_feed(struct kcopy *k)
{
	char text[512];

	feed_stop(&k->feed);
	if (feed_format(&k->feed))
		say(&k->out, MSG_VERBOSE, "source '%s': %s image, %" PRIu64
		    " bytes %s, %" PRIu64 " bytes decoded%s; decoder "
		    "memory at most %" PRIu64 " bytes", k->src.spec.path,
		    feed_format(&k->feed), k->feed.in_done,
		    k->feed.dec.ops == &dec_raw ? "read" : "compressed",
		    k->feed.out_done, k->feed.ended ? " (to its end)" : "",
		    k->feed.memory);
	if (!k->feed.error)
		return;
	k->read_err = 1;
	if (!k->read_error)
		k->read_error = k->feed.error;
	say(&k->out, MSG_NOTE, "source '%s': %s", k->src.spec.path,
	    feed_error_text(&k->feed, text, sizeof(text)));
}

/* --hash: the source's digests, if the copy read the whole region. */
static void finish_source_hash(struct kcopy *k)
{
	struct hash_set *h = &k->src.hash;
	unsigned int a;
	int r;

	if (k->feed.error) {
		snprintf(k->hash_missing, sizeof(k->hash_missing), "the "
			 "image could not be decoded to its end");
		say(&k->out, MSG_VERBOSE, "--hash: %s: no digest",
		    k->hash_missing);
		return;
	}

	r = hash_finish(h, k->src.sector + k->src.count, k->tail_bytes);
	if (r == -ENODATA) {
		/* A --mapfile run with gaps in what it read resumed: it
		 * read only what earlier runs left. */
		if (hash_why(h, k->src.sector + k->src.count,
			     k->map && h->gaps
			     ? "this run resumed from the mapfile and "
			     : "the copy ", k->hash_missing,
			     sizeof(k->hash_missing)) < 0)
			snprintf(k->hash_missing, sizeof(k->hash_missing),
				 "the copy did not read the whole source "
				 "region");
		say(&k->out, MSG_VERBOSE, "--hash: %s: no digest",
		    k->hash_missing);
	} else if (r < 0) {
		say(&k->out, MSG_ERROR, "--hash: %s", strerror(-r));
	}
	for (a = 0; h->done && a < HASH_NUM_ALGS; a++)
		if (h->hex[a])
			say(&k->out, MSG_VERBOSE, "source '%s': %s %s",
			    k->src.spec.path, hash_name(a), h->hex[a]);
}

/* After the copy: read back, report, say how it went.  The exit status. */
static int finish(struct kcopy *k)
{
	char phases[128];
	bool map_lost;
	unsigned int i;
	int status;

	finish_feed(k);
	stream_regions(k);
	flash_finish(k);
	finish_source_hash(k);
	if (k->opt.verify && !k->signal) {
		if (k->read_err && (!k->opt.ignore_errors || k->source_lost))
			say(&k->out, MSG_NOTE, "not verifying: the copy "
			    "stopped at a read error");
		else
			verify_dests(k);
	}
	run_trim_created(k);
	/* The last mapfile, and the outcome of the whole copy. */
	map_lost = mapfile_finish(k) < 0;
	/* The run's end, after the read-back: its seconds, its last
	 * progress line. */
	k->seconds = clock_now() - k->start;
	progress_tick(k, true);
	kcopyd_client_destroy(k->kc);
	k->kc = NULL;
	k->ended_at = time(NULL);

	status = run_exit_status(k);
	/* Nor does one whose mapfile is lost, or whose jobs were refused. */
	if ((map_lost || k->pieces_stopped) && status == 0)
		status = KCOPY_EXIT_SETUP;
	/* A run whose report is lost does not look like a success. */
	if (report_write(k, status) < 0 && status == 0)
		status = KCOPY_EXIT_SETUP;
	for (i = 0; i < k->num_bad; i++)
		say(&k->out, MSG_VERBOSE, "bad: sector %" PRIu64 ", %" PRIu64
		    " sectors", k->bad[i].sector, k->bad[i].count);
	if (status)
		report_closing_line(k, status);
	else
		say(&k->out, MSG_VERBOSE, "%" PRIu64 " bytes %s %u "
		    "destination(s)%s in %.3f s (%s): %" PRIu64 " bytes read; %s%"
		    PRIu64 " written, %" PRIu64 " zeroed, %" PRIu64 " skipped",
		    k->bytes_done, k->opt.zero ? "zeroed on" : "copied to",
		    k->num_dests, k->verified ? " and verified" : "",
		    k->seconds, report_phases_text(k, phases, sizeof(phases)),
		    k->stats.bytes_read, k->num_dests > 1
		    ? "summed over the destinations: " : "",
		    k->stats.bytes_written, k->stats.bytes_zeroed,
		    k->stats.bytes_skipped);
	return status;
}

/* A compressed source's decoding starts with the copy.  0 or -errno,
 * said. */
static int start_feed(struct kcopy *k)
{
	int r = feed_start(&k->feed);

	if (r < 0)
		say(&k->out, MSG_ERROR, "source '%s': cannot start decoding: "
		    "%s", k->src.spec.path, strerror(-r));
	return r;
}

int main(int argc, char **argv)
{
	struct kcopy k;
	int r, status = KCOPY_EXIT_SETUP;

	if (kcopy_init(&k) < 0)
		goto out;	/* no /dev/null: nowhere to say it either */
	r = options_parse(&k, argc, (const char **)argv);
	if (r > 0 && output_close_stdout(&k.out) == 0)
		status = 0;
	if (r != 0)
		goto out;
	if (setup(&k) < 0) {
		/* A signal that came while setup waited (for a stream's
		 * first bytes) is the status, as in a run. */
		if (k.signal)
			status = 128 + k.signal;
		goto out;
	}
	if (k.opt.dry_run) {
		plan_print(&k);
		if (output_close_stdout(&k.out) == 0)
			status = 0;
		goto out;
	}
	if (target_create_dests(&k) < 0)
		goto out;
	k.started_at = time(NULL);
	if (report_start(&k) < 0 ||
	    ((k.opt.verify || k.opt.hash_algs || k.flash.path) &&
	     verify_init(&k) < 0) ||
	    mapfile_start(&k) < 0 || start_feed(&k) < 0 || run_copy(&k) < 0) {
		target_remove_created(&k);
		goto out;
	}
	status = finish(&k);
out:
	kcopy_free(&k);
	return status;
}
