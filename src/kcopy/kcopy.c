/* kcopy.c - copy a range of sectors to one or more destinations with
 * libkcopyd; the command line, the error policy and the exit status.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <popt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "kcopy.h"

/* 8 MiB: 16 sub-jobs of 512 KiB in flight.  Measured (contrib/bench/README,
 * 1 GiB over tmpfs loops): within noise of the best 1->1 setting; 8192 pages
 * gains 10-20% on 1->4 for 24 MiB more; 512 pages loses 25% on 1->4;
 * 32768 gains nothing. */
#define DEFAULT_PAGES 2048
#define DEFAULT_PROGRESS_INTERVAL 1.0	/* seconds, plain and JSON lines */
#define BAR_INTERVAL 0.25		/* seconds between redraws of the bar */

/* Guards stderr, shared by the engine thread's error reports and the main
 * thread's progress output, so that an error never lands on the bar. */
static pthread_mutex_t output_lock = PTHREAD_MUTEX_INITIALIZER;

void message(struct kcopy *k, const char *fmt, ...)
{
	va_list ap;

	if (k && k->opt.quiet)
		return;
	pthread_mutex_lock(&output_lock);
	progress_clear();
	fputs("kcopy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&output_lock);
}

static void usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("kcopy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'kcopy --help' for more information.\n", stderr);
	exit(KCOPY_EXIT_SETUP);
}

/* ------------------------------------------------------------ options */

static struct {
	char *pages, *chunk, *throttle, *rate, *progress, *interval, *report;
	int ignore_errors, sequential, zero, verify, force, dry_run, quiet;
	int version;
} cli;

enum { OPT_VERBOSE = 1, OPT_PROGRESS, OPT_HELP, OPT_USAGE };

static struct poptOption option_table[] = {
	{ "pages", 'p', POPT_ARG_STRING, &cli.pages, 0,
	  "memory budget in 4096-byte pages (default 2048, 8 MiB)", "N" },
	{ "chunk", 0, POPT_ARG_STRING, &cli.chunk, 0,
	  "sub-job size, a multiple of 4 KiB (default 512K)", "SIZE" },
	{ "ignore-errors", 'i', POPT_ARG_NONE, &cli.ignore_errors, 0,
	  "go on after read errors: zero-fill unreadable sectors", NULL },
	{ "sequential", 's', POPT_ARG_NONE, &cli.sequential, 0,
	  "write in ascending order, one sub-job at a time", NULL },
	{ "zero", 'z', POPT_ARG_NONE, &cli.zero, 0,
	  "zero the destinations; there is no source", NULL },
	{ "throttle", 0, POPT_ARG_STRING, &cli.throttle, 0,
	  "keep I/O in flight at most PERCENT of the time", "PERCENT" },
	{ "rate", 0, POPT_ARG_STRING, &cli.rate, 0,
	  "read at most BYTES per second (suffixes K, M, G)", "BYTES" },
	/* --progress=MODE is taken apart before popt sees it: popt's optional
	 * arguments would swallow the SOURCE after a bare --progress. */
	{ "progress", 'P', POPT_ARG_NONE, NULL, OPT_PROGRESS,
	  "show progress: a bar on a terminal, else lines; --progress=plain "
	  "or --progress=json to choose", NULL },
	{ "progress-interval", 0, POPT_ARG_STRING, &cli.interval, 0,
	  "seconds between progress lines (default 1)", "SECONDS" },
	{ "verify", 0, POPT_ARG_NONE, &cli.verify, 0,
	  "read every destination back and compare", NULL },
	{ "report", 0, POPT_ARG_STRING, &cli.report, 0,
	  "write a JSON report to FILE ('-' for standard output)", "FILE" },
	{ "force", 0, POPT_ARG_NONE, &cli.force, 0,
	  "write to block devices that are mounted or in use", NULL },
	{ "dry-run", 'n', POPT_ARG_NONE, &cli.dry_run, 0,
	  "check everything, print the plan, write nothing", NULL },
	{ "quiet", 'q', POPT_ARG_NONE, &cli.quiet, 0,
	  "print nothing but the closing line of a failure", NULL },
	{ "verbose", 'v', POPT_ARG_NONE, NULL, OPT_VERBOSE,
	  "say more (repeat for more)", NULL },
	{ "version", 'V', POPT_ARG_NONE, &cli.version, 0,
	  "print the version and exit", NULL },
	/* Not POPT_AUTOHELP: its handler frees the context before exit(),
	 * and release() would free it again. */
	{ "help", '?', POPT_ARG_NONE, NULL, OPT_HELP,
	  "show this help message and exit", NULL },
	{ "usage", 0, POPT_ARG_NONE, NULL, OPT_USAGE,
	  "show a brief usage message and exit", NULL },
	POPT_TABLEEND
};

static uint64_t parse_size_option(const char *name, const char *value)
{
	uint64_t v;
	int r = kc_parse_size(value, &v, NULL);

	if (r < 0)
		usage_error("--%s '%s': %s", name, value,
			    r == -ERANGE ? "too large" : "not a size");
	return v;
}

static void parse_options(struct kcopy *k, int argc, const char **argv,
			  poptContext *pcp)
{
	poptContext pc;
	struct options *o = &k->opt;
	unsigned long ul;
	int rc, i;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strncmp(argv[i], "--progress=", 11)) {
			cli.progress = (char *)argv[i] + 11;
			argv[i] = "--progress";
		}
	}
	pc = poptGetContext("kcopy", argc, argv, option_table, 0);
	*pcp = pc;

	poptSetOtherOptionHelp(pc, "[OPTION]... SOURCE DEST [DEST]...\n"
			       "  or:  kcopy --zero [OPTION]... DEST [DEST]...\n"
			       "A region is PATH[:SECTOR[:COUNT]] in 512-byte "
			       "sectors, or sizes with K, M, G, T");
	o->pages = DEFAULT_PAGES;
	o->chunk = KCOPYD_DEFAULT_SUBJOB_SIZE;
	o->throttle = 100;
	o->progress_interval = 0;
	while ((rc = poptGetNextOpt(pc)) > 0) {
		if (rc == OPT_HELP || rc == OPT_USAGE) {
			if (rc == OPT_HELP)
				poptPrintHelp(pc, stdout, 0);
			else
				poptPrintUsage(pc, stdout, 0);
			exit(0);
		}
		if (rc == OPT_VERBOSE)
			o->verbose++;
		else if (rc == OPT_PROGRESS)
			o->progress = PROGRESS_AUTO;
	}
	if (rc < -1)
		usage_error("%s: %s", poptBadOption(pc, POPT_BADOPTION_NOALIAS),
			    poptStrerror(rc));
	if (cli.version) {
		printf("kcopy %s (libkcopyd)\n", PACKAGE_VERSION);
		exit(0);
	}
	if (cli.pages) {
		rc = kc_parse_uint(cli.pages, 1u << 22, &ul);
		if (rc < 0 || ul == 0)
			usage_error("--pages '%s': %s", cli.pages,
				    rc == -ERANGE ? "more than 4194304 pages"
						  : "not a number of pages (1 or more)");
		o->pages = ul;
	}
	if (cli.chunk) {
		o->chunk = parse_size_option("chunk", cli.chunk);
		if (o->chunk == 0 || o->chunk % KCOPYD_PAGE_SIZE ||
		    o->chunk > 64u * 1024 * 1024)
			usage_error("--chunk '%s': must be a multiple of 4096 "
				    "bytes, at most 64M", cli.chunk);
	}
	if (cli.throttle && kc_parse_percent(cli.throttle, &o->throttle) < 0)
		usage_error("--throttle '%s': not a percentage from 1 to 100",
			    cli.throttle);
	if (cli.rate) {
		o->rate = parse_size_option("rate", cli.rate);
		if (o->rate == 0)
			usage_error("--rate '%s': must be more than 0",
				    cli.rate);
	}
	if (cli.progress) {
		if (!strcmp(cli.progress, "plain"))
			o->progress = PROGRESS_PLAIN;
		else if (!strcmp(cli.progress, "json"))
			o->progress = PROGRESS_JSON;
		else
			usage_error("--progress '%s': MODE is plain or json",
				    cli.progress);
	}
	if (cli.interval) {
		if (kc_parse_seconds(cli.interval, &o->progress_interval) < 0)
			usage_error("--progress-interval '%s': not a number of "
				    "seconds", cli.interval);
		if (o->progress == PROGRESS_OFF)
			o->progress = PROGRESS_AUTO;
	}
	o->ignore_errors = cli.ignore_errors;
	o->sequential = cli.sequential;
	o->zero = cli.zero;
	o->verify = cli.verify;
	o->report = cli.report;
	o->force = cli.force;
	o->dry_run = cli.dry_run;
	o->quiet = cli.quiet;
	if (o->quiet && o->progress)
		usage_error("--quiet and --progress contradict each other");
	if (o->zero && o->verify)
		usage_error("--verify has nothing to compare with --zero");
	*pcp = pc;
}

/* ------------------------------------------------------- region specs */

static void parse_specs(struct kcopy *k, poptContext pc)
{
	const char **args = poptGetArgs(pc);
	unsigned int n = 0, i, first_dest = k->opt.zero ? 0 : 1;

	while (args && args[n])
		n++;
	if (n < first_dest + 1)
		usage_error(k->opt.zero ? "missing DEST" :
			    n ? "missing DEST after SOURCE '%s'"
			      : "missing SOURCE and DEST", n ? args[0] : "");
	k->num_dests = n - first_dest;
	if (k->num_dests > KCOPYD_MAX_DESTS)
		usage_error("%u destinations: at most %u", k->num_dests,
			    KCOPYD_MAX_DESTS);
	k->dests = calloc(k->num_dests, sizeof(*k->dests));
	if (!k->dests)
		usage_error("out of memory");
	for (i = 0; i < k->num_dests; i++)
		k->dests[i].fd = -1;
	for (i = 0; i < n; i++) {
		struct target *t = i < first_dest ? &k->src
						  : &k->dests[i - first_dest];
		const char *why;

		t->arg = (char *)args[i];
		t->fd = -1;
		if (kc_parse_spec(args[i], kc_path_exists, NULL, &t->spec,
				  &why) < 0)
			usage_error("%s '%s': %s", t == &k->src ? "SOURCE"
				    : "DEST", args[i], why);
	}
}

/* --------------------------------------------------- the engine's hooks */

static void on_io_error(const struct kcopyd_io_error *e, void *context)
{
	struct kcopy *k = context;

	if (!e->is_write) {
		if (!k->read_error) {
			k->read_error = e->error;
			message(k, "source '%s': read error at sector %" PRIu64
				" (%" PRIu64 " sectors): %s%s", k->src.spec.path,
				e->sector, e->count, strerror(-e->error),
				k->opt.ignore_errors ? "; isolating bad sectors"
						     : "; stopping");
		}
		return;
	}
	/* One job per destination with --zero; else e->dest is its index. */
	{
		unsigned int i = e->dest;
		struct target *t;

		if (k->opt.zero)
			for (i = 0; i < k->num_dests; i++)
				if (k->dests[i].fd == e->fd)
					break;
		if (i >= k->num_dests)
			return;
		t = &k->dests[i];
		if (t->error)
			return;
		target_set_error(t, e->error, "write");
		message(k, "destination %u '%s': write error at sector %" PRIu64
			": %s; %s", i + 1, t->spec.path, e->sector,
			strerror(-e->error),
			k->opt.ignore_errors ? "going on" : "dropped");
	}
}

static int done_fd = -1;
static unsigned int jobs_left;

struct zero_job {
	struct kcopy *k;
	unsigned int dest;
};

static void job_done(int read_err, unsigned int write_err, struct kcopy *k,
		     unsigned int shift)
{
	uint64_t one = 1;

	pthread_mutex_lock(&output_lock);
	k->read_err |= read_err;
	k->write_err |= write_err << shift;
	jobs_left--;
	pthread_mutex_unlock(&output_lock);
	if (write(done_fd, &one, sizeof(one)) < 0)
		abort();	/* an eventfd write cannot fail here */
}

static void on_copy_done(int read_err, unsigned int write_err, void *context)
{
	job_done(read_err, write_err, context, 0);
}

static void on_zero_done(int read_err, unsigned int write_err, void *context)
{
	struct zero_job *z = context;

	job_done(read_err, write_err, z->k, z->dest);
}

/* ------------------------------------------------------------- running */

static void print_region(const char *what, const struct target *t)
{
	char size[KC_FORMAT_SIZE_LEN], dsize[KC_FORMAT_SIZE_LEN];

	printf("%-14s %s\n", what, t->spec.path);
	printf("  region       sector %" PRIu64 ", %" PRIu64 " sectors "
	       "(%" PRIu64 " bytes, %s)\n", t->sector, t->count,
	       t->count * KC_SECTOR_SIZE,
	       kc_format_size(t->count * KC_SECTOR_SIZE, size, sizeof(size)));
	if (t->exists)
		printf("  storage      %s, %" PRIu64 " bytes (%s), logical "
		       "block %u bytes%s\n",
		       t->is_blockdev ? "block device" : "regular file",
		       t->size, kc_format_size(t->size, dsize, sizeof(dsize)),
		       t->lbs, t->zoned ? ", host-managed zoned" : "");
	else
		printf("  storage      regular file, to be created\n");
	printf("  I/O          %s\n", !t->exists ? "direct if the file system "
	       "takes it" : t->direct ? "direct" : "buffered");
}

static void print_plan(struct kcopy *k, unsigned int flags)
{
	char budget[KC_FORMAT_SIZE_LEN], chunk[KC_FORMAT_SIZE_LEN];
	unsigned int i;

	printf("kcopy: dry run, nothing will be written\n");
	if (!k->opt.zero)
		print_region("source", &k->src);
	for (i = 0; i < k->num_dests; i++) {
		char what[32];

		snprintf(what, sizeof(what), "destination %u", i + 1);
		print_region(what, &k->dests[i]);
	}
	printf("%-14s %lu pages (%s), sub-jobs of %s\n", "budget",
	       k->opt.pages, kc_format_size((uint64_t)k->opt.pages *
					    KCOPYD_PAGE_SIZE, budget,
					    sizeof(budget)),
	       kc_format_size(k->opt.chunk, chunk, sizeof(chunk)));
	printf("%-14s %s%s%s\n", "mode", k->opt.zero ? "zero" : "copy",
	       flags & KCOPYD_IGNORE_ERROR ? ", ignore read errors" : "",
	       flags & KCOPYD_WRITE_SEQ ? ", sequential writes" : "");
}

static int setup_client(struct kcopy *k)
{
	int r = kcopyd_client_create((unsigned int)k->opt.pages, &k->kc);

	if (r == 0)
		r = kcopyd_set_subjob_size(k->kc, (unsigned int)k->opt.chunk);
	if (r == 0 && k->opt.throttle < 100)
		r = kcopyd_set_throttle(k->kc, k->opt.throttle);
	if (r == 0 && k->opt.rate)
		r = kcopyd_set_rate(k->kc, k->opt.rate);
	if (r < 0) {
		message(NULL, "cannot set up the copy engine: %s", strerror(-r));
		return -1;
	}
	kcopyd_set_error_fn(k->kc, on_io_error, k);
	if (k->opt.verify) {
		if (verify_init(k) < 0) {
			message(NULL, "--verify: out of memory");
			return -1;
		}
		kcopyd_set_data_fn(k->kc, verify_record, NULL);
	}
	return 0;
}

static int submit(struct kcopy *k, unsigned int flags,
		  struct zero_job *zjobs)
{
	struct io_region from = { k->src.fd, k->src.sector, k->src.count };
	struct io_region to[KCOPYD_MAX_DESTS];
	unsigned int i;
	int r = 0;

	for (i = 0; i < k->num_dests; i++)
		to[i] = (struct io_region){ k->dests[i].fd, k->dests[i].sector,
					    k->dests[i].count };
	jobs_left = k->opt.zero ? k->num_dests : 1;
	if (!k->opt.zero)
		return kcopyd_copy(k->kc, &from, k->num_dests, to, flags,
				   on_copy_done, k);
	for (i = 0; i < k->num_dests; i++) {
		zjobs[i] = (struct zero_job){ k, i };
		r = kcopyd_zero(k->kc, 1, &to[i], flags, on_zero_done,
				&zjobs[i]);
		if (r < 0)
			break;
	}
	if (r < 0 && i > 0) {
		/* Zeroing has begun on the destinations before: the refused
		 * ones are failed destinations, not a setup error. */
		pthread_mutex_lock(&output_lock);
		jobs_left -= k->num_dests - i;
		for (; i < k->num_dests; i++) {
			target_set_error(&k->dests[i], r, "zero");
			k->write_err |= 1u << i;
		}
		pthread_mutex_unlock(&output_lock);
		message(k, "the copy engine refused to zero some destinations: "
			"%s", strerror(-r));
		return 0;
	}
	return r;
}

/* Answer the signals that came in.  The first SIGINT, SIGTERM or SIGHUP
 * stops the copy after the I/O in flight; a second SIGINT exits at once;
 * SIGUSR1 prints a status line.  Returns true once the run is to stop. */
bool poll_signals(struct kcopy *k)
{
	struct signalfd_siginfo si;

	while (read(k->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		int sig = (int)si.ssi_signo;

		if (sig == SIGUSR1) {
			pthread_mutex_lock(&output_lock);
			progress_status_line(k);
			pthread_mutex_unlock(&output_lock);
		} else if (k->signal && sig == SIGINT) {
			message(NULL, "interrupted again: exiting without "
				"waiting");
			_exit(128 + sig);
		} else if (!k->signal) {
			k->signal = sig;
			message(k, "%s: stopping after the I/O in flight",
				strsignal(sig));
			kcopyd_client_stop(k->kc);
		}
	}
	return k->signal != 0;
}

/* Wait for the jobs, drawing progress and answering signals.  The first
 * SIGINT, SIGTERM or SIGHUP stops the copy after the I/O in flight; a second
 * SIGINT exits at once. */
static void wait_for_jobs(struct kcopy *k)
{
	double interval = k->opt.progress_interval;
	double next_tick;

	if (interval <= 0)
		interval = k->opt.progress == PROGRESS_AUTO &&
			   isatty(STDERR_FILENO) ? BAR_INTERVAL
						 : DEFAULT_PROGRESS_INTERVAL;
	next_tick = k->start + interval;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = k->sig_fd, .events = POLLIN },
					 { .fd = done_fd, .events = POLLIN } };
		int timeout = -1;
		unsigned int left;

		pthread_mutex_lock(&output_lock);
		left = jobs_left;
		pthread_mutex_unlock(&output_lock);
		if (!left)
			return;
		if (k->opt.progress) {
			double wait = next_tick - now_seconds();

			timeout = wait > 0 ? (int)(wait * 1000) + 1 : 0;
		}
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
			return;
		if (pfd[0].revents & POLLIN)
			poll_signals(k);
		if (pfd[1].revents & POLLIN) {
			uint64_t n;

			if (read(done_fd, &n, sizeof(n)) < 0)
				n = 0;
		}
		if (k->opt.progress && now_seconds() >= next_tick) {
			pthread_mutex_lock(&output_lock);
			progress_tick(k, false);
			pthread_mutex_unlock(&output_lock);
			next_tick += interval;
			if (next_tick < now_seconds())
				next_tick = now_seconds() + interval;
		}
	}
}

static int exit_status(struct kcopy *k)
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

/* Flush every destination still healthy; a failed flush is a write error. */
static void flush_dests(struct kcopy *k)
{
	unsigned int i;

	for (i = 0; i < k->num_dests; i++) {
		struct target *t = &k->dests[i];

		if ((k->write_err >> i) & 1)
			continue;
		if (fdatasync(t->fd) < 0) {
			target_set_error(t, -errno, "flush");
			k->write_err |= 1u << i;
			message(k, "destination %u '%s': flush failed: %s",
				i + 1, t->spec.path, strerror(errno));
		}
	}
}

static void verify_dests(struct kcopy *k)
{
	unsigned int i;

	k->verified = true;
	for (i = 0; i < k->num_dests; i++) {
		struct target *t = &k->dests[i];

		if ((k->write_err >> i) & 1)
			continue;
		if (k->opt.verbose)
			message(k, "verifying destination %u '%s'", i + 1,
				t->spec.path);
		if (verify_dest(k, t) < 0) {
			k->verified = false;	/* stopped by a signal */
			return;
		}
		if (t->error) {
			k->write_err |= 1u << i;
			message(k, "destination %u '%s': verify failed: %zu "
				"mismatched range(s), first at sector %" PRIu64,
				i + 1, t->spec.path, t->num_mismatches,
				t->num_mismatches ? t->mismatches[0].sector : 0);
		}
	}
}

/* A setup error after destinations were created, before any job started:
 * nothing was written to them, so they go, and the run leaves no trace. */
static void remove_created(struct kcopy *k)
{
	unsigned int i;

	for (i = 0; i < k->num_dests; i++)
		if (k->dests[i].created)
			unlink(k->dests[i].spec.path);
}

static int block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	/* Blocked before the engine thread starts, so it inherits the mask
	 * and every signal comes to signalfd. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Everything main() made, freed on every way out: a return from main, a
 * usage error's exit() (so that a leak checker sees a clean exit too). */
static struct kcopy *the_run;
static poptContext the_context;

static void release(void)
{
	struct kcopy *k = the_run;
	unsigned int i;

	if (!k)
		return;
	if (k->kc)
		kcopyd_client_destroy(k->kc);
	verify_free();
	free(k->bad);
	for (i = 0; k->dests && i < k->num_dests; i++) {
		if (k->dests[i].fd >= 0)
			close(k->dests[i].fd);
		kc_spec_free(&k->dests[i].spec);
		free(k->dests[i].mismatches);
	}
	free(k->dests);
	if (k->src.fd >= 0)
		close(k->src.fd);
	kc_spec_free(&k->src.spec);
	if (the_context)
		poptFreeContext(the_context);
	the_run = NULL;
}

int main(int argc, char **argv)
{
	static struct kcopy k = { .src.fd = -1 };
	struct zero_job zjobs[KCOPYD_MAX_DESTS];
	unsigned int flags = KCOPYD_DROP_FAILED_DESTS, i;
	int r, status;

	the_run = &k;
	atexit(release);
	parse_options(&k, argc, (const char **)argv, &the_context);
	parse_specs(&k, the_context);

	/* Setup: everything is checked before anything is created. */
	if (!k.opt.zero && target_open_source(&k, &k.src) < 0)
		return KCOPY_EXIT_SETUP;
	for (i = 0; i < k.num_dests; i++)
		if (target_prepare_dest(&k, &k.dests[i]) < 0)
			return KCOPY_EXIT_SETUP;
	if (target_check_overlaps(&k) < 0)
		return KCOPY_EXIT_SETUP;
	if (k.opt.ignore_errors)
		flags |= KCOPYD_IGNORE_ERROR;
	if (k.opt.sequential)
		flags |= KCOPYD_WRITE_SEQ;
	for (i = 0; i < k.num_dests; i++) {
		if (k.dests[i].zoned && !(flags & KCOPYD_WRITE_SEQ)) {
			flags |= KCOPYD_WRITE_SEQ;
			if (k.opt.verbose)
				message(&k, "destination %u is host-managed "
					"zoned: writing sequentially", i + 1);
		}
		k.bytes += k.opt.zero ? k.dests[i].count * KC_SECTOR_SIZE : 0;
	}
	if (!k.opt.zero)
		k.bytes = k.src.count * KC_SECTOR_SIZE;
	if (k.opt.dry_run) {
		print_plan(&k, flags);
		return 0;
	}

	k.sig_fd = block_signals();
	done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (k.sig_fd < 0 || done_fd < 0 || setup_client(&k) < 0)
		return KCOPY_EXIT_SETUP;
	for (i = 0; i < k.num_dests; i++) {
		if (!k.dests[i].exists &&
		    target_create_dest(&k, &k.dests[i]) < 0) {
			remove_created(&k);
			return KCOPY_EXIT_SETUP;
		}
	}

	k.start = now_seconds();
	progress_start(&k);
	r = submit(&k, flags, zjobs);
	if (r < 0) {
		/* The library's own checks, after ours: name what it says. */
		message(NULL, "the copy engine refused the job: %s",
			strerror(-r));
		remove_created(&k);
		kcopyd_wait(k.kc);
		return KCOPY_EXIT_SETUP;
	}
	wait_for_jobs(&k);
	kcopyd_wait(k.kc);
	{
		struct kcopyd_stats st;

		kcopyd_get_stats(k.kc, &st);
		k.bytes_done = st.bytes_done;
	}
	kcopyd_get_bad_ranges(k.kc, &k.bad, &k.num_bad);
	flush_dests(&k);
	k.seconds = now_seconds() - k.start;
	if (k.opt.progress) {
		pthread_mutex_lock(&output_lock);
		progress_tick(&k, true);
		pthread_mutex_unlock(&output_lock);
	}
	if (k.opt.verify && !k.signal) {
		if (k.read_err && !k.opt.ignore_errors)
			message(&k, "not verifying: the copy stopped at a read "
				"error");
		else
			verify_dests(&k);
	}
	kcopyd_client_destroy(k.kc);
	k.kc = NULL;

	status = exit_status(&k);
	if (k.opt.report) {
		r = report_write(&k, k.opt.report, status);
		if (r < 0)
			message(NULL, "cannot write the report '%s': %s",
				k.opt.report, strerror(-r));
	}
	if (k.opt.verbose && k.num_bad)
		for (i = 0; i < k.num_bad; i++)
			message(&k, "bad: sector %" PRIu64 ", %" PRIu64
				" sectors", k.bad[i].sector, k.bad[i].count);
	if (status)
		closing_line(&k, status);
	else if (k.opt.verbose)
		message(&k, "%" PRIu64 " bytes %s %u destination(s) in %.3f s",
			k.bytes_done, k.opt.zero ? "zeroed on" : "copied to",
			k.num_dests, k.seconds);
	return status;
}
