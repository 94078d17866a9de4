/* progress.c - progress output: a bar redrawn in place on a terminal, plain
 * lines or JSON lines elsewhere, and the SIGUSR1 status line.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "kcopy.h"

#define BAR_WIDTH 24

/* Decide the mode (a bar only on a terminal) and start the clock. */
void progress_start(struct kcopy *k)
{
	struct progress *pg = &k->progress;

	pg->mode = k->opt.progress;
	if (pg->mode == PROGRESS_AUTO)
		pg->mode = isatty(STDERR_FILENO) ? PROGRESS_AUTO
						 : PROGRESS_PLAIN;
	pg->bar = pg->mode == PROGRESS_AUTO;
	pg->last_t = k->start;
	pg->last_bytes = 0;
	pg->rate = 0;
}

/* Destinations failed so far, as the engine thread's hooks recorded. */
static unsigned int failed_dests(struct kcopy *k)
{
	unsigned int n;

	pthread_mutex_lock(&k->lock);
	n = (unsigned int)__builtin_popcount(k->write_err);
	pthread_mutex_unlock(&k->lock);
	return n;
}

struct snapshot {
	uint64_t done, total;
	uint64_t read, written, zeroed, skipped;
	double percent, elapsed, rate, eta;
	unsigned int failed;
	unsigned int slowest;		/* 1-based; 0 not known */
};

/* The destination that held the copy back most often (its writes ended
 * last in the most sub-jobs), 1-based; 0 with one destination or none
 * yet.  With --mapfile, jobs leave failed destinations out and the
 * counts go by their index in the job: not known then. */
static unsigned int slowest_dest(const struct kcopy *k,
				 const struct kcopyd_stats *st)
{
	unsigned int i, best = 0;

	if (k->num_dests < 2 || (k->opt.mapfile && k->write_err))
		return 0;
	for (i = 0; i < k->num_dests; i++)
		if (st->held_back[i] > (best ? st->held_back[best - 1] : 0))
			best = i + 1;
	return best;
}

/* "; slowest: destination N" in buf, or "" where none is known. */
static const char *slowest_text(unsigned int slowest, char *buf, size_t len)
{
	if (!slowest)
		return "";
	snprintf(buf, len, "; slowest: destination %u", slowest);
	return buf;
}

static void take(struct kcopy *k, bool final, struct snapshot *s)
{
	struct progress *pg = &k->progress;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	double now = clock_now(), dt;

	kcopyd_get_stats(k->kc, &st);
	if (final)
		st = k->stats;
	s->done = st.bytes_done;
	s->read = st.bytes_read;
	s->written = st.bytes_written;
	s->zeroed = st.bytes_zeroed;
	s->skipped = st.bytes_skipped;
	s->total = k->work_bytes;
	s->percent = s->total ? 100.0 * (double)s->done / (double)s->total
			      : 100.0;
	s->elapsed = now - k->start;
	dt = now - pg->last_t;
	if (dt >= 0.2) {
		double inst = (double)(s->done - pg->last_bytes) / dt;

		/* Smooth over about three updates, as pv does. */
		pg->rate = pg->rate ? 0.6 * pg->rate + 0.4 * inst : inst;
		pg->last_t = now;
		pg->last_bytes = s->done;
	}
	s->rate = (final || !pg->rate) && s->elapsed > 0
		  ? (double)s->done / s->elapsed : pg->rate;
	s->eta = s->rate > 0 ? (double)(s->total - s->done) / s->rate : -1;
	s->failed = failed_dests(k);
	s->slowest = slowest_dest(k, &st);
}

/* --progress=json: one object a line.  Of a stream without a COUNT (no
 * total yet) only what is known. */
static void json_line(const struct snapshot *s, bool final)
{
	struct json o;

	json_open(&o, NULL, NULL, stderr, '{', "", ", ", "");
	json_u64(&o, "bytes", s->done);
	if (s->total) {
		json_u64(&o, "total", s->total);
		json_double(&o, "percent", s->percent, 1);
	} else {
		json_null(&o, "total");
		json_null(&o, "percent");
	}
	json_double(&o, "rate", s->rate, 0);
	if (!s->total)
		json_null(&o, "eta");
	else
		json_double(&o, "eta", final ? 0.0 : s->eta, 1);
	json_double(&o, "elapsed", s->elapsed, 3);
	json_u64(&o, "failed", s->failed);
	if (s->total) {
		json_u64(&o, "read", s->read);
		json_u64(&o, "written", s->written);
		json_u64(&o, "zeroed", s->zeroed);
		json_u64(&o, "skipped", s->skipped);
		json_u64(&o, "slowest", s->slowest);
	}
	json_bool(&o, "final", final);
	json_close(&o);
	fputc('\n', stderr);
}

struct tick {
	struct kcopy *k;
	bool final;
};

/* One update, under the output lock. */
static void draw(void *arg)
{
	struct kcopy *k = ((struct tick *)arg)->k;
	bool final = ((struct tick *)arg)->final;
	struct progress *pg = &k->progress;
	char done[KC_FORMAT_SIZE_LEN], total[KC_FORMAT_SIZE_LEN];
	char rate[KC_FORMAT_SIZE_LEN], eta[32];
	struct snapshot s;

	take(k, final, &s);
	kc_format_size(s.done, done, sizeof(done));
	kc_format_size(s.total, total, sizeof(total));
	kc_format_size((uint64_t)s.rate, rate, sizeof(rate));
	kc_format_eta(final ? s.elapsed : s.eta, eta, sizeof(eta));

	if (!s.total) {
		/* A stream without a COUNT: its length is known at its end. */
		if (pg->mode == PROGRESS_JSON)
			json_line(&s, final);
		else
			fprintf(stderr, "%skcopy: %s, %s/s, %s %.1f s, %u "
				"failed%s", pg->bar ? "\r\033[K" : "", done,
				rate, final ? "took" : "elapsed", s.elapsed,
				s.failed, pg->bar && !final ? "" : "\n");
		k->out.bar_drawn = pg->bar && !final;
	} else if (pg->mode == PROGRESS_JSON) {
		json_line(&s, final);
	} else if (pg->bar) {
		char bar[BAR_WIDTH + 1];
		int fill = (int)(s.percent * BAR_WIDTH / 100.0), i;

		for (i = 0; i < BAR_WIDTH; i++)
			bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
		bar[BAR_WIDTH] = 0;
		fprintf(stderr, "\r\033[K%9s / %-9s %3.0f%% [%s] %9s/s %s %s",
			done, total, s.percent, bar, rate,
			final ? "in" : "ETA", eta);
		if (s.failed)
			fprintf(stderr, "  %u failed", s.failed);
		k->out.bar_drawn = true;
		if (final) {
			fputc('\n', stderr);
			k->out.bar_drawn = false;
		}
	} else {
		char rd[KC_FORMAT_SIZE_LEN], wr[KC_FORMAT_SIZE_LEN];
		char zd[KC_FORMAT_SIZE_LEN], sk[KC_FORMAT_SIZE_LEN];

		char slow[48];

		fprintf(stderr, "kcopy: %s / %s (%.1f%%), %s/s, %s %s, %u "
			"failed; read %s, written %s, zeroed %s, skipped %s%s\n",
			done, total, s.percent, rate, final ? "took" : "ETA",
			eta, s.failed, kc_format_size(s.read, rd, sizeof(rd)),
			kc_format_size(s.written, wr, sizeof(wr)),
			kc_format_size(s.zeroed, zd, sizeof(zd)),
			kc_format_size(s.skipped, sk, sizeof(sk)),
			slowest_text(s.slowest, slow, sizeof(slow)));
	}
	fflush(stderr);
}

void progress_tick(struct kcopy *k, bool final)
{
	struct tick t = { k, final };

	if (k->opt.progress != PROGRESS_OFF)
		output_locked(&k->out, draw, &t);
}

/* One status line, under the output lock. */
static void status_line(void *arg)
{
	struct kcopy *k = arg;
	char done[KC_FORMAT_SIZE_LEN], rate[KC_FORMAT_SIZE_LEN], total[32];
	char slow[48];
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	double elapsed = clock_now() - k->start;

	kcopyd_get_stats(k->kc, &st);
	kc_format_size(elapsed > 0 ? (uint64_t)((double)st.bytes_done / elapsed)
				   : 0, rate, sizeof(rate));
	output_clear_bar(&k->out);
	/* A stream without a COUNT has no total until its end. */
	if (k->work_bytes)
		snprintf(total, sizeof(total), " of %" PRIu64, k->work_bytes);
	else
		total[0] = 0;
	fprintf(stderr, "kcopy: %" PRIu64 " bytes (%s)%s copied, %.1f s, "
		"%s/s, %u of %u destinations failed; %" PRIu64
		" bytes read, %" PRIu64 " written, %" PRIu64 " zeroed, %"
		PRIu64 " skipped%s\n",
		st.bytes_done, kc_format_size(st.bytes_done, done, sizeof(done)),
		total, elapsed, rate, failed_dests(k), k->num_dests,
		st.bytes_read, st.bytes_written, st.bytes_zeroed,
		st.bytes_skipped,
		slowest_text(slowest_dest(k, &st), slow, sizeof(slow)));
	fflush(stderr);
}

/* SIGUSR1, as dd: one status line whatever --progress says. */
void progress_status_line(struct kcopy *k)
{
	output_locked(&k->out, status_line, k);
}
