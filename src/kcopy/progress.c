/* progress.c - progress output: a bar redrawn in place on a terminal, plain
 * lines or JSON lines elsewhere, and the SIGUSR1 status line.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "json.h"
#include "kcopy.h"

/* The bar between the numbers: at least this wide, or none on a terminal
 * too narrow for it; the terminal's width when it cannot be asked. */
#define BAR_MIN 10
#define DEFAULT_COLUMNS 80
/* The rest of the bar's line: the phase, "done / total pct% [" "] rate/s
 * ETA time", and room for "  N failed". */
#define BAR_TEXT 58

static const char *const phase_names[PHASE_NUM] = {
	[PHASE_COPY] = "copy", [PHASE_ZERO] = "zero",
	[PHASE_FLUSH] = "flush", [PHASE_VERIFY] = "verify",
};

const char *progress_phase_name(int phase)
{
	return phase_names[phase];
}

void progress_resize(struct kcopy *k)
{
	struct winsize ws;

	k->progress.width = DEFAULT_COLUMNS;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col)
		k->progress.width = ws.ws_col;
}

/* Decide the mode (a bar only on a terminal, and not to --progress=fd:N)
 * and where it goes, and start the clock. */
void progress_start(struct kcopy *k)
{
	struct progress *pg = &k->progress;

	pg->mode = k->opt.progress;
	pg->f = stderr;
	if (k->opt.progress_fd >= 0 && k->opt.progress_fd != STDERR_FILENO) {
		/* Checked at setup: open for writing.  Unbuffered lines. */
		pg->f = fdopen(k->opt.progress_fd, "w");
		if (!pg->f) {
			say(&k->out, MSG_NOTE, "--progress=fd:%d: %s; on "
			    "standard error instead", k->opt.progress_fd,
			    strerror(errno));
			pg->f = stderr;
		}
	}
	if (pg->mode == PROGRESS_AUTO)
		pg->mode = pg->f == stderr && isatty(STDERR_FILENO)
			   ? PROGRESS_AUTO : PROGRESS_PLAIN;
	pg->bar = pg->mode == PROGRESS_AUTO;
	if (pg->bar)
		progress_resize(k);
	pg->phase = k->opt.zero ? PHASE_ZERO : PHASE_COPY;
	pg->phase_start = k->start;
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

/* What a line says.  done, total, percent and eta go through the phase's
 * bytes, per source (the read-back's summed over the destinations read):
 * holes and blocks a map leaves out pass too, fast.  moved and rate are
 * the data that moved: read from the source (the read-back: from the
 * destinations), or for --zero zeroed or written.  written, zeroed and
 * skipped are summed over the destinations. */
struct snapshot {
	int phase;
	uint64_t done, total, moved;
	uint64_t read, written, zeroed, skipped, holes;
	double percent, elapsed, phase_elapsed, rate, eta;
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

/* The phase's numbers now (over: the phase is over, its last line). */
static void take(struct kcopy *k, bool over, struct snapshot *s)
{
	struct progress *pg = &k->progress;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };
	double now = clock_now(), dt;

	if (k->kc)
		kcopyd_get_stats(k->kc, &st);
	/* The copy's, once it is over: the read-back counts in the client's
	 * counters too. */
	if (pg->phase != PHASE_VERIFY && (over || k->stats.struct_size))
		st = k->stats;
	s->phase = pg->phase;
	s->read = st.bytes_read;
	s->written = st.bytes_written;
	s->zeroed = st.bytes_zeroed;
	s->skipped = st.bytes_skipped;
	s->holes = st.bytes_holes;
	if (pg->phase == PHASE_VERIFY) {
		s->moved = st.bytes_read - pg->base_read;
		s->done = st.bytes_read + st.bytes_holes - pg->base_passed;
		s->total = pg->phase_total;
		if (s->done > s->total || over)
			s->done = s->total;
	} else {
		s->done = st.bytes_done;
		s->total = k->work_bytes;
		s->moved = k->opt.zero ? st.bytes_done : st.bytes_read;
	}
	s->percent = s->total ? 100.0 * (double)s->done / (double)s->total
			      : 100.0;
	s->elapsed = now - k->start;
	s->phase_elapsed = now - pg->phase_start;
	dt = now - pg->last_t;
	if (dt >= 0.2 && s->moved >= pg->last_bytes) {
		double inst = (double)(s->moved - pg->last_bytes) / dt;

		/* Smooth over about three updates, as pv does. */
		pg->rate = pg->rate ? 0.6 * pg->rate + 0.4 * inst : inst;
		pg->last_t = now;
		pg->last_bytes = s->moved;
	}
	s->rate = (over || !pg->rate) && s->phase_elapsed > 0
		  ? (double)s->moved / s->phase_elapsed : pg->rate;
	/* The ETA goes by the pace through the phase's bytes, holes too:
	 * the average since it began. */
	s->eta = s->done && s->phase_elapsed > 0 && s->total >= s->done
		 ? (double)(s->total - s->done) * s->phase_elapsed /
		   (double)s->done : -1;
	if (over)
		s->eta = 0;
	if (pg->phase == PHASE_VERIFY) {
		/* The copy's counters, as they ended. */
		s->read = k->stats.bytes_read;
		s->written = k->stats.bytes_written;
		s->zeroed = k->stats.bytes_zeroed;
		s->skipped = k->stats.bytes_skipped;
		s->holes = k->stats.bytes_holes;
	}
	s->failed = failed_dests(k);
	s->slowest = pg->phase == PHASE_VERIFY ? 0 : slowest_dest(k, &st);
}

/* --progress=json: one object a line.  Of a stream without a COUNT (no
 * total yet) only what is known. */
static void json_line(struct kcopy *k, const struct snapshot *s, bool over,
		      bool final)
{
	struct json o;

	json_open(&o, NULL, NULL, k->progress.f, '{', "", ", ", "");
	json_string(&o, "phase", phase_names[s->phase]);
	json_u64(&o, "bytes", s->done);
	if (s->total) {
		json_u64(&o, "total", s->total);
		json_double(&o, "percent", s->percent, 1);
	} else {
		json_null(&o, "total");
		json_null(&o, "percent");
	}
	json_u64(&o, "moved", s->moved);
	json_double(&o, "rate", s->rate, 0);
	if (!s->total && !over)
		json_null(&o, "eta");
	else
		json_double(&o, "eta", s->eta, 1);
	json_double(&o, "elapsed", s->elapsed, 3);
	json_double(&o, "phase_elapsed", s->phase_elapsed, 3);
	json_u64(&o, "failed", s->failed);
	json_u64(&o, "destinations", k->num_dests);
	if (s->total) {
		json_u64(&o, "read", s->read);
		json_u64(&o, "written", s->written);
		json_u64(&o, "zeroed", s->zeroed);
		json_u64(&o, "skipped", s->skipped);
		json_u64(&o, "slowest", s->slowest);
	}
	if (feed_format(&k->feed)) {
		json_string(&o, "image_format", feed_format(&k->feed));
		json_u64(&o, "image_input_read", feed_in_done(&k->feed));
		if (k->feed.in_is_file)
			json_u64(&o, "image_input_size", k->feed.in_size);
		else
			json_null(&o, "image_input_size");
	}
	json_bool(&o, "phase_done", over);
	json_bool(&o, "final", final);
	json_close(&o);
	fputc('\n', k->progress.f);
}

/* "; xz input 12.0 MiB / 28.0 MiB" after a plain line where the source
 * is decoded (the feed's input as the decoder took it), else "". */
static const char *image_text(const struct kcopy *k, char *buf, size_t len)
{
	char rd[KC_FORMAT_SIZE_LEN], all[KC_FORMAT_SIZE_LEN];
	const struct feed *f = &k->feed;

	if (!feed_format(f) || k->progress.phase == PHASE_VERIFY)
		return "";
	kc_format_size(feed_in_done(f), rd, sizeof(rd));
	if (f->in_is_file)
		snprintf(buf, len, "; %s input %s / %s", feed_format(f), rd,
			 kc_format_size(f->in_size, all, sizeof(all)));
	else
		snprintf(buf, len, "; %s input %s", feed_format(f), rd);
	return buf;
}

/* "summed over N destinations: " before the sums, with more than one. */
static const char *over_dests(const struct kcopy *k, char *buf, size_t len)
{
	if (k->num_dests < 2)
		return "";
	snprintf(buf, len, "summed over %u destinations: ", k->num_dests);
	return buf;
}

/* The bar: the line fitted to the terminal's width (less one column, so
 * that the cursor never wraps), the bar as wide as what is left, or none
 * where too little is. */
static void bar_line(struct kcopy *k, const struct snapshot *s,
		     const char *done, const char *total, const char *rate,
		     const char *eta, bool over)
{
	struct progress *pg = &k->progress;
	char head[64], tail[96], bar[512];
	int room, fill, i, n;

	snprintf(head, sizeof(head), "%-6s %9s / %-9s %3.0f%%",
		 phase_names[s->phase], done, total, s->percent);
	n = snprintf(tail, sizeof(tail), " %9s/s %s %s", rate,
		     over ? "in" : "ETA", eta);
	if (s->failed && n > 0 && (size_t)n < sizeof(tail))
		snprintf(tail + n, sizeof(tail) - (size_t)n, "  %u failed",
			 s->failed);
	room = (int)pg->width - 1 - (int)strlen(head) - (int)strlen(tail) - 3;
	if (room > (int)sizeof(bar) - 1)
		room = (int)sizeof(bar) - 1;
	if (room >= BAR_MIN) {
		fill = (int)(s->percent * room / 100.0);
		for (i = 0; i < room; i++)
			bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
		bar[room] = 0;
		fprintf(pg->f, "\r\033[K%s [%s]%s", head, bar, tail);
	} else {
		char line[256];

		/* Too narrow for a bar: the numbers, cut to the width. */
		snprintf(line, sizeof(line), "%s%s", head, tail);
		n = pg->width > 1 ? (int)pg->width - 1 : 1;
		fprintf(pg->f, "\r\033[K%.*s", n, line);
	}
	k->out.bar_drawn = true;
	if (over) {
		fputc('\n', pg->f);
		k->out.bar_drawn = false;
	}
}

struct tick {
	struct kcopy *k;
	bool over;			/* the phase's last line */
	bool final;			/* the run's last line */
};

/* One update, under the output lock. */
static void draw(void *arg)
{
	struct kcopy *k = ((struct tick *)arg)->k;
	bool over = ((struct tick *)arg)->over;
	bool final = ((struct tick *)arg)->final;
	struct progress *pg = &k->progress;
	char done[KC_FORMAT_SIZE_LEN], total[KC_FORMAT_SIZE_LEN];
	char rate[KC_FORMAT_SIZE_LEN], eta[32];
	struct snapshot s;

	take(k, over, &s);
	kc_format_size(s.done, done, sizeof(done));
	kc_format_size(s.total, total, sizeof(total));
	kc_format_size((uint64_t)s.rate, rate, sizeof(rate));
	kc_format_eta(over ? s.phase_elapsed : s.eta, eta, sizeof(eta));

	if (pg->mode == PROGRESS_JSON) {
		json_line(k, &s, over, final);
	} else if (!s.total) {
		/* A stream without a COUNT: its length is known at its end. */
		char img[96];

		fprintf(pg->f, "%skcopy: %s %s, %s/s, %s %.1f s, %u failed%s%s",
			pg->bar ? "\r\033[K" : "", phase_names[s.phase], done,
			rate, over ? "took" : "elapsed", s.phase_elapsed,
			s.failed, image_text(k, img, sizeof(img)),
			pg->bar && !over ? "" : "\n");
		k->out.bar_drawn = pg->bar && !over;
	} else if (pg->bar) {
		bar_line(k, &s, done, total, rate, eta, over);
	} else {
		char rd[KC_FORMAT_SIZE_LEN], wr[KC_FORMAT_SIZE_LEN];
		char zd[KC_FORMAT_SIZE_LEN], sk[KC_FORMAT_SIZE_LEN];
		char slow[48], dests[40], img[96];

		fprintf(pg->f, "kcopy: %s %s / %s (%.1f%%), %s/s, %s %s, %u "
			"failed; read %s; %swritten %s, zeroed %s, skipped "
			"%s%s%s\n", phase_names[s.phase], done, total, s.percent,
			rate, over ? "took" : "ETA", eta, s.failed,
			kc_format_size(s.read, rd, sizeof(rd)),
			over_dests(k, dests, sizeof(dests)),
			kc_format_size(s.written, wr, sizeof(wr)),
			kc_format_size(s.zeroed, zd, sizeof(zd)),
			kc_format_size(s.skipped, sk, sizeof(sk)),
			slowest_text(s.slowest, slow, sizeof(slow)),
			image_text(k, img, sizeof(img)));
	}
	fflush(pg->f);
}

/* The copy's data are all written and its jobs not over: they flush. */
static void note_flush(struct kcopy *k)
{
	struct progress *pg = &k->progress;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };

	if ((pg->phase != PHASE_COPY && pg->phase != PHASE_ZERO) ||
	    !k->work_bytes || !k->kc || k->stats.struct_size)
		return;
	kcopyd_get_stats(k->kc, &st);
	if (st.bytes_done >= k->work_bytes)
		progress_phase(k, PHASE_FLUSH, 0);
}

/* End the phase: its duration, and its last line (the run's with final).
 * The flush's line is the copy's (or the zeroing's), over. */
static void end_phase(struct kcopy *k, bool final)
{
	struct progress *pg = &k->progress;
	struct tick t = { k, true, final };
	double now = clock_now();

	if (pg->phase == PHASE_FLUSH) {
		k->phase_seconds[PHASE_FLUSH] += now - pg->flush_start;
		pg->phase = k->opt.zero ? PHASE_ZERO : PHASE_COPY;
	} else {
		k->phase_seconds[pg->phase] += now - pg->phase_start;
	}
	k->phases_run |= 1u << pg->phase;
	if (k->opt.progress != PROGRESS_OFF)
		output_locked(&k->out, draw, &t);
}

void progress_phase(struct kcopy *k, int phase, uint64_t total)
{
	struct progress *pg = &k->progress;
	struct kcopyd_stats st = { .struct_size = sizeof(st) };

	if (phase == PHASE_FLUSH) {
		/* The flush runs on in the jobs: its lines are the copy's,
		 * of the copy's clock; only its duration is its own. */
		pg->flush_start = clock_now();
		k->phase_seconds[pg->phase] += pg->flush_start - pg->phase_start;
		k->phases_run |= 1u << pg->phase | 1u << PHASE_FLUSH;
		pg->phase = phase;
		return;
	}
	end_phase(k, false);
	pg->phase = phase;
	pg->phase_start = clock_now();
	pg->phase_total = total;
	if (k->kc)
		kcopyd_get_stats(k->kc, &st);
	pg->base_read = st.bytes_read;
	pg->base_passed = st.bytes_read + st.bytes_holes;
	pg->last_t = pg->phase_start;
	pg->last_bytes = 0;
	pg->rate = 0;
}

void progress_tick(struct kcopy *k, bool final)
{
	struct tick t = { k, false, false };

	if (final) {
		end_phase(k, true);
		return;
	}
	note_flush(k);
	if (k->opt.progress != PROGRESS_OFF)
		output_locked(&k->out, draw, &t);
}

/* One status line, under the output lock: dd's, the phase in its verb
 * ("copied", "zeroed", "copied, flushing", "read back (verify)") and its
 * numbers; on standard error wherever the progress goes. */
static void status_line(void *arg)
{
	struct kcopy *k = arg;
	char done[KC_FORMAT_SIZE_LEN], rate[KC_FORMAT_SIZE_LEN], total[32];
	char slow[48], dests[40];
	static const char *const verbs[PHASE_NUM] = {
		[PHASE_COPY] = "copied", [PHASE_ZERO] = "zeroed",
		[PHASE_FLUSH] = "written, flushing",
		[PHASE_VERIFY] = "read back (verify)",
	};
	struct snapshot s;

	if (!k->start) {
		/* Setup waits (for a stream's first bytes): no copy yet. */
		fprintf(stderr, "kcopy: setting up: nothing copied yet\n");
		return;
	}
	take(k, false, &s);
	kc_format_size((uint64_t)s.rate, rate, sizeof(rate));
	output_clear_bar(&k->out);
	/* A stream without a COUNT has no total until its end. */
	if (s.total)
		snprintf(total, sizeof(total), " of %" PRIu64, s.total);
	else
		total[0] = 0;
	fprintf(stderr, "kcopy: %" PRIu64 " bytes (%s)%s %s, %.1f s, %s/s, "
		"%u of %u destinations failed", s.done,
		kc_format_size(s.done, done, sizeof(done)), total,
		verbs[s.phase], s.phase_elapsed, rate, s.failed,
		k->num_dests);
	if (s.phase != PHASE_VERIFY)
		fprintf(stderr, "; %" PRIu64 " bytes read; %s%" PRIu64
			" written, %" PRIu64 " zeroed, %" PRIu64 " skipped%s",
			s.read, over_dests(k, dests, sizeof(dests)), s.written,
			s.zeroed, s.skipped,
			slowest_text(s.slowest, slow, sizeof(slow)));
	fputc('\n', stderr);
	fflush(stderr);
}

/* SIGUSR1, as dd: one status line whatever --progress says. */
void progress_status_line(struct kcopy *k)
{
	output_locked(&k->out, status_line, k);
}
