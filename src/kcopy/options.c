/* options.c - the command line: the option table, its parsing into struct
 * options (--quiet and --verbose into struct output), and the region
 * specs into the source and destination targets.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every mistake here is a usage error: one line naming the option or the
 * argument, a pointer to --help, exit status 128.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <popt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kcopy.h"

/* 8 MiB: 16 sub-jobs of 512 KiB in flight.  Measured (contrib/bench/README,
 * 1 GiB over tmpfs loops): within noise of the best 1->1 setting; 8192 pages
 * gains 10-20% on 1->4 for 24 MiB more; 512 pages loses 25% on 1->4;
 * 32768 gains nothing. */
#define DEFAULT_PAGES 2048
/* Seconds an NBD request may go unanswered: the library's default. */
#define DEFAULT_TIMEOUT 60
/* Seconds between checkpoints of the mapfile. */
#define DEFAULT_MAPFILE_INTERVAL 30

enum {
	OPT_PAGES = 1, OPT_CHUNK, OPT_IGNORE_ERRORS, OPT_SEQUENTIAL, OPT_ZERO,
	OPT_THROTTLE, OPT_RATE, OPT_PROGRESS, OPT_INTERVAL, OPT_VERIFY,
	OPT_REPORT, OPT_FORCE, OPT_DRY_RUN, OPT_QUIET, OPT_VERBOSE,
	OPT_VERSION, OPT_HELP, OPT_USAGE, OPT_TIMEOUT, OPT_HASH, OPT_ALLOCATED,
	OPT_DEST_IS_ZERO, OPT_NO_ZERO_DETECT, OPT_MAPFILE,
	OPT_MAPFILE_INTERVAL, OPT_SKIP_BAD, OPT_RETRY_FAILED, OPT_USED,
	OPT_DOMAIN_MAPFILE, OPT_UNUSED, OPT_HASH_FILE, OPT_BMAP, OPT_NO_BMAP,
	OPT_DECOMPRESS,
};

static const struct poptOption option_table[] = {
	{ "pages", 'p', POPT_ARG_STRING, NULL, OPT_PAGES,
	  "memory budget in 4096-byte pages (default 2048, 8 MiB)", "N" },
	{ "chunk", 0, POPT_ARG_STRING, NULL, OPT_CHUNK,
	  "sub-job size, a multiple of 4 KiB (default 512K)", "SIZE" },
	{ "ignore-errors", 'i', POPT_ARG_NONE, NULL, OPT_IGNORE_ERRORS,
	  "go on after read errors: zero-fill unreadable sectors", NULL },
	{ "sequential", 's', POPT_ARG_NONE, NULL, OPT_SEQUENTIAL,
	  "write in ascending order, one sub-job at a time", NULL },
	{ "zero", 'z', POPT_ARG_NONE, NULL, OPT_ZERO,
	  "zero the destinations; there is no source", NULL },
	/* Named as nbdcopy(1) names them (qemu-img's --target-is-zero is
	 * --destination-is-zero; its -S 0 is --no-zero-detect --allocated). */
	{ "allocated", 0, POPT_ARG_NONE, NULL, OPT_ALLOCATED,
	  "write zeros as data: destinations end fully allocated", NULL },
	{ "destination-is-zero", 0, POPT_ARG_NONE, NULL, OPT_DEST_IS_ZERO,
	  "the destinations already read as zeros: leave zero ranges alone",
	  NULL },
	{ "no-zero-detect", 0, POPT_ARG_NONE, NULL, OPT_NO_ZERO_DETECT,
	  "do not look for zero blocks in the data read (holes of the "
	  "source are still not read)", NULL },
	{ "decompress", 0, POPT_ARG_STRING, NULL, OPT_DECOMPRESS,
	  "decode a compressed source: by its magic (auto, the default), "
	  "always in FORMAT (xz, zstd, gzip, bzip2), or never (none)",
	  "auto|none|FORMAT" },
	{ "throttle", 0, POPT_ARG_STRING, NULL, OPT_THROTTLE,
	  "keep I/O in flight at most PERCENT of the time", "PERCENT" },
	{ "rate", 0, POPT_ARG_STRING, NULL, OPT_RATE,
	  "read at most BYTES per second (suffixes K, M, G)", "BYTES" },
	/* --progress=MODE is taken apart before popt sees it: popt's optional
	 * arguments would swallow the SOURCE after a bare --progress. */
	{ "progress", 'P', POPT_ARG_NONE, NULL, OPT_PROGRESS,
	  "show progress, phase by phase: a bar on a terminal, else lines; "
	  "--progress=plain or --progress=json to choose; --progress=fd:N "
	  "(JSON lines) or --progress=plain,fd:N to write them to "
	  "descriptor N", NULL },
	{ "progress-interval", 0, POPT_ARG_STRING, NULL, OPT_INTERVAL,
	  "seconds between progress lines (default 1)", "SECONDS" },
	{ "timeout", 0, POPT_ARG_STRING, NULL, OPT_TIMEOUT,
	  "an NBD request unanswered this long fails its export (default "
	  "60)", "SECONDS" },
	{ "verify", 0, POPT_ARG_NONE, NULL, OPT_VERIFY,
	  "read every destination back and compare", NULL },
	{ "hash", 0, POPT_ARG_STRING, NULL, OPT_HASH,
	  "digests of the source region (and, with --verify, of each "
	  "destination's read-back): md5, sha1, sha256, sha512", "ALG[,ALG...]" },
	{ "hash-file", 0, POPT_ARG_STRING, NULL, OPT_HASH_FILE,
	  "write the --hash digests to FILE as 'sha256sum --tag' does, for "
	  "'sha256sum -c FILE' ('-' for standard output)", "FILE" },
	{ "report", 0, POPT_ARG_STRING, NULL, OPT_REPORT,
	  "write a JSON report to FILE ('-' for standard output)", "FILE" },
	{ "mapfile", 'm', POPT_ARG_STRING, NULL, OPT_MAPFILE,
	  "keep the state of the copy in FILE (GNU ddrescue's format); run "
	  "the same command again to resume", "FILE" },
	{ "mapfile-interval", 0, POPT_ARG_STRING, NULL, OPT_MAPFILE_INTERVAL,
	  "seconds between writes of the mapfile (default 30)", "SECONDS" },
	{ "skip-bad", 0, POPT_ARG_NONE, NULL, OPT_SKIP_BAD,
	  "resuming: do not read the mapfile's unreadable areas again", NULL },
	{ "retry-failed", 0, POPT_ARG_NONE, NULL, OPT_RETRY_FAILED,
	  "resuming: write again to the destinations that had failed", NULL },
	{ "used", 0, POPT_ARG_NONE, NULL, OPT_USED,
	  "copy only the blocks the source's file system uses (EXT2/3/4, "
	  "XFS, FAT, NTFS, EXFAT)", NULL },
	/* GNU ddrescue's name for it */
	{ "domain-mapfile", 0, POPT_ARG_STRING, NULL, OPT_DOMAIN_MAPFILE,
	  "copy only the '+' blocks of a ddrescue mapfile (partclone "
	  "-D writes one)", "FILE" },
	{ "unused", 0, POPT_ARG_STRING, NULL, OPT_UNUSED,
	  "with --used or --domain-mapfile: leave the destinations' other "
	  "blocks as they are (keep, the default) or zero them (zero)",
	  "keep|zero" },
	/* bmaptool's names for them */
	{ "bmap", 0, POPT_ARG_STRING, NULL, OPT_BMAP,
	  "the source image's block map (bmaptool's bmap file): copy only "
	  "its mapped ranges, checking their checksums, and zero the rest "
	  "(a compressed or piped image is decoded whole); without it, the "
	  "bmap beside the image is used", "FILE" },
	{ "no-bmap", 0, POPT_ARG_NONE, NULL, OPT_NO_BMAP,
	  "do not use the bmap beside the source image", NULL },
	{ "force", 0, POPT_ARG_NONE, NULL, OPT_FORCE,
	  "write to block devices that are mounted or in use; resume from "
	  "a mapfile of another copy; --used: copy a file system that is "
	  "not clean", NULL },
	{ "dry-run", 'n', POPT_ARG_NONE, NULL, OPT_DRY_RUN,
	  "check everything, print the plan, write nothing", NULL },
	{ "quiet", 'q', POPT_ARG_NONE, NULL, OPT_QUIET,
	  "print nothing but the closing line of a failure", NULL },
	{ "verbose", 'v', POPT_ARG_NONE, NULL, OPT_VERBOSE,
	  "say more (repeat for more)", NULL },
	{ "version", 'V', POPT_ARG_NONE, NULL, OPT_VERSION,
	  "print the version and exit", NULL },
	/* Not POPT_AUTOHELP: its handler exits from inside popt.  -h as
	 * GNU tools have it; popt's -? still works, unlisted. */
	{ "help", 'h', POPT_ARG_NONE, NULL, OPT_HELP,
	  "show this help message and exit", NULL },
	{ NULL, '?', POPT_ARG_NONE | POPT_ARGFLAG_DOC_HIDDEN, NULL, OPT_HELP,
	  NULL, NULL },
	{ "usage", 0, POPT_ARG_NONE, NULL, OPT_USAGE,
	  "show a brief usage message and exit", NULL },
	POPT_TABLEEND
};

/* Print a usage error through the one message function, with the pointer to
 * --help, and return -EINVAL for the caller to pass up. */
static int usage_error(struct kcopy *k, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(struct kcopy *k, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	say(&k->out, MSG_ERROR, "%s\nTry 'kcopy --help' for more "
	    "information.", line);
	return -EINVAL;
}

static int parse_size_option(struct kcopy *k, const char *name,
			     const char *value, uint64_t *out)
{
	int r = kc_parse_size(value, out, NULL);

	if (r < 0)
		return usage_error(k, "--%s '%s': %s", name, value,
				   r == -ERANGE ? "too large" : "not a size");
	return 0;
}

/* --decompress=auto|none|FORMAT. */
static int take_decompress(struct kcopy *k, const char *arg)
{
	struct options *o = &k->opt;

	o->decompress_format = NULL;
	if (!strcmp(arg, "auto"))
		o->decompress = FEED_AUTO;
	else if (!strcmp(arg, "none"))
		o->decompress = FEED_NONE;
	else if ((o->decompress_format = decode_by_name(arg)))
		o->decompress = FEED_FORCE;
	else
		return usage_error(k, "--decompress '%s': expected auto, none "
				   "or a format (" DECODE_NAMES ")", arg);
	return 0;
}

/* --hash ALG[,ALG...]: the algorithms into o->hash_algs (repeated names,
 * and repeated options, add nothing). */
static int take_hash(struct kcopy *k, const char *arg)
{
	const char *p = arg;

	for (;;) {
		size_t len = strcspn(p, ",");
		int a = hash_alg_of(p, len);

		if (a < 0)
			return usage_error(k, "--hash '%s': unknown algorithm "
					   "'%.*s' (md5, sha1, sha256, sha512)",
					   arg, (int)len, p);
		k->opt.hash_algs |= 1u << a;
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

/* --progress[=MODE][,fd:N] (or fd:N alone, JSON lines): MODE is plain or
 * json; fd:N writes the lines to descriptor N, open for writing (for a
 * wrapper: 3>pipe), never a bar. */
static int take_progress(struct kcopy *k, const char *arg)
{
	struct options *o = &k->opt;
	const char *fd = arg ? strstr(arg, "fd:") : NULL;
	size_t mode_len = fd ? (size_t)(fd - arg) : arg ? strlen(arg) : 0;
	unsigned long n;
	int flags;

	o->progress = PROGRESS_AUTO;
	o->progress_fd = -1;
	if (!arg)
		return 0;
	if (fd && mode_len && arg[mode_len - 1] == ',')
		mode_len--;
	else if (fd && mode_len)
		fd = NULL;	/* "plainfd:3": not a MODE */
	if (mode_len == 5 && !strncmp(arg, "plain", 5))
		o->progress = PROGRESS_PLAIN;
	else if (mode_len == 4 && !strncmp(arg, "json", 4))
		o->progress = PROGRESS_JSON;
	else if (mode_len || (!fd && *arg))
		return usage_error(k, "--progress '%s': MODE is plain or "
				   "json, and fd:N writes to descriptor N "
				   "(plain,fd:N for plain lines)", arg);
	else if (fd)
		o->progress = PROGRESS_JSON;	/* for a program to read */
	if (!fd)
		return 0;
	if (kc_parse_uint(fd + 3, INT_MAX, &n) < 0)
		return usage_error(k, "--progress '%s': fd:N takes a "
				   "descriptor number", arg);
	flags = fcntl((int)n, F_GETFL);
	if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY)
		return usage_error(k, "--progress '%s': descriptor %lu is %s",
				   arg, n, flags < 0 ? "not open"
				   : "not open for writing");
	o->progress_fd = (int)n;
	return 0;
}

/* One option's value into k->opt. */
static int take_option(struct kcopy *k, int code, const char *arg)
{
	struct options *o = &k->opt;
	unsigned long ul;
	int r;

	switch (code) {
	case OPT_PAGES:
		r = kc_parse_uint(arg, KCOPYD_MAX_PAGES, &ul);
		if (r < 0 || ul == 0)
			return usage_error(k, "--pages '%s': %s", arg,
					   r == -ERANGE
					   ? "more than 4194304 pages"
					   : "not a number of pages (1 or more)");
		o->pages = ul;
		return 0;
	case OPT_CHUNK:
		if (parse_size_option(k, "chunk", arg, &o->chunk) < 0)
			return -EINVAL;
		if (o->chunk == 0 || o->chunk % KCOPYD_PAGE_SIZE ||
		    o->chunk > KCOPYD_MAX_SUBJOB_SIZE)
			return usage_error(k, "--chunk '%s': must be a multiple "
					   "of 4096 bytes, at most 64M", arg);
		return 0;
	case OPT_THROTTLE:
		if (kc_parse_percent(arg, &o->throttle) < 0)
			return usage_error(k, "--throttle '%s': not a percentage "
					   "from 1 to 100", arg);
		return 0;
	case OPT_RATE:
		if (parse_size_option(k, "rate", arg, &o->rate) < 0)
			return -EINVAL;
		if (o->rate == 0)
			return usage_error(k, "--rate '%s': must be more than 0",
					   arg);
		return 0;
	case OPT_INTERVAL:
		if (kc_parse_seconds(arg, &o->progress_interval) < 0)
			return usage_error(k, "--progress-interval '%s': not a "
					   "number of seconds", arg);
		if (o->progress == PROGRESS_OFF)
			o->progress = PROGRESS_AUTO;
		return 0;
	case OPT_TIMEOUT:
		r = kc_parse_uint(arg, 86400, &ul);
		if (r < 0)
			return usage_error(k, "--timeout '%s': %s", arg,
					   r == -ERANGE ? "more than a day"
					   : "not a number of seconds (0 for "
					     "none)");
		o->timeout = (unsigned int)ul;
		return 0;
	case OPT_PROGRESS:
		return take_progress(k, arg);
	case OPT_HASH:
		return take_hash(k, arg);
	case OPT_REPORT:
		free((void *)o->report);
		o->report = arg;	/* ours: options_parse keeps it */
		return 0;
	case OPT_HASH_FILE:
		free((void *)o->hash_file);
		o->hash_file = arg;	/* ours: options_parse keeps it */
		return 0;
	case OPT_MAPFILE:
		free((void *)o->mapfile);
		o->mapfile = arg;	/* ours: options_parse keeps it */
		return 0;
	case OPT_MAPFILE_INTERVAL:
		if (kc_parse_seconds(arg, &o->mapfile_interval) < 0)
			return usage_error(k, "--mapfile-interval '%s': not a "
					   "number of seconds", arg);
		return 0;
	case OPT_DOMAIN_MAPFILE:
		free((void *)o->domain_mapfile);
		o->domain_mapfile = arg;	/* ours: options_parse keeps it */
		return 0;
	case OPT_BMAP:
		free((void *)o->bmap);
		o->bmap = arg;		/* ours: options_parse keeps it */
		return 0;
	case OPT_UNUSED:
		if (!strcmp(arg, "keep"))
			o->unused = UNUSED_KEEP;
		else if (!strcmp(arg, "zero"))
			o->unused = UNUSED_ZERO;
		else
			return usage_error(k, "--unused '%s': expected keep or "
					   "zero", arg);
		o->unused_given = true;
		return 0;
	case OPT_DECOMPRESS:
		return take_decompress(k, arg);
	case OPT_USED:		o->used = true; return 0;
	case OPT_NO_BMAP:	o->no_bmap = true; return 0;
	case OPT_SKIP_BAD:	o->skip_bad = true; return 0;
	case OPT_RETRY_FAILED:	o->retry_failed = true; return 0;
	case OPT_IGNORE_ERRORS: o->ignore_errors = true; return 0;
	case OPT_SEQUENTIAL:	o->sequential = true; return 0;
	case OPT_ZERO:		o->zero = true; return 0;
	case OPT_VERIFY:	o->verify = true; return 0;
	case OPT_ALLOCATED:	o->allocated = true; return 0;
	case OPT_DEST_IS_ZERO:	o->dest_is_zero = true; return 0;
	case OPT_NO_ZERO_DETECT: o->no_zero_detect = true; return 0;
	case OPT_FORCE:		o->force = true; return 0;
	case OPT_DRY_RUN:	o->dry_run = true; return 0;
	case OPT_QUIET:		k->out.quiet = true; return 0;
	case OPT_VERBOSE:	k->out.verbose++; return 0;
	}
	return usage_error(k, "internal error: option %d", code);
}

/* '-' is standard output as one DEST at most, and then the report and the
 * digests cannot go there too, nor both of them; --zero has no stream to
 * zero. */
static int check_std(struct kcopy *k)
{
	bool report_std = k->opt.report && !strcmp(k->opt.report, "-");
	bool hash_std = k->opt.hash_file && !strcmp(k->opt.hash_file, "-");
	unsigned int i, n = 0;

	for (i = 0; i < k->num_dests; i++)
		n += !strcmp(k->dests[i].spec.path, "-");
	if (n && k->opt.zero)
		return usage_error(k, "--zero: '-' (standard output) cannot "
				   "be zeroed");
	if (n > 1)
		return usage_error(k, "'-' (standard output) is named as %u "
				   "destinations: at most one", n);
	if (n && report_std)
		return usage_error(k, "--report '-' and DEST '-' would both "
				   "write to standard output");
	if (n && hash_std)
		return usage_error(k, "--hash-file '-' and DEST '-' would both "
				   "write to standard output");
	if (report_std && hash_std)
		return usage_error(k, "--report '-' and --hash-file '-' would "
				   "both write to standard output");
	return 0;
}

/* --used and --domain-mapfile: a map of a source that is there (not a
 * stream, not --zero), one of them; --hash needs the whole region. */
static int check_used(struct kcopy *k)
{
	const struct options *o = &k->opt;
	const char *what = o->used ? "--used" : "--domain-mapfile";

	if (!o->used && !o->domain_mapfile) {
		if (o->unused_given)
			return usage_error(k, "--unused: needs --used or "
					   "--domain-mapfile");
		return 0;
	}
	if (o->used && o->domain_mapfile)
		return usage_error(k, "--used and --domain-mapfile: give one "
				   "of them");
	if (o->domain_mapfile && (!*o->domain_mapfile ||
				  !strcmp(o->domain_mapfile, "-")))
		return usage_error(k, "--domain-mapfile '%s': must name a "
				   "file", o->domain_mapfile);
	if (o->zero)
		return usage_error(k, "%s: not with --zero", what);
	if (!strcmp(k->src.spec.path, "-"))
		return usage_error(k, "%s: the source '-' (standard input) is "
				   "a stream: it has no map", what);
	if (o->hash_algs && o->unused != UNUSED_ZERO)
		return usage_error(k, "--hash with %s: the blocks left out "
				   "are not read, so no digest covers the "
				   "region; add --unused=zero for a digest of "
				   "the region with them as zeros, which every "
				   "destination then holds", what);
	return 0;
}

/* --bmap: the only map of what to copy. */
static int check_bmap(struct kcopy *k)
{
	const struct options *o = &k->opt;

	if (!o->bmap)
		return 0;
	if (o->no_bmap)
		return usage_error(k, "--bmap '%s' and --no-bmap contradict "
				   "each other", o->bmap);
	if (!*o->bmap || !strcmp(o->bmap, "-"))
		return usage_error(k, "--bmap '%s': must name a file",
				   o->bmap);
	if (o->zero)
		return usage_error(k, "--bmap: not with --zero");
	if (o->used || o->domain_mapfile)
		return usage_error(k, "--bmap and %s: give one map of what to "
				   "copy", o->used ? "--used"
				   : "--domain-mapfile");
	if (o->mapfile)
		return usage_error(k, "--bmap and --mapfile: a bmap copy "
				   "cannot be resumed yet");
return 0;
}

/* --mapfile resumes a copy of a region that is there again: not zeroing,
 * not a stream; --verify's checksums would miss what earlier runs copied. */
static int check_mapfile(struct kcopy *k)
{
	const struct options *o = &k->opt;
	unsigned int i;

	if (!o->mapfile) {
		if (o->skip_bad || o->retry_failed)
			return usage_error(k, "--%s is for resuming: it needs "
					   "--mapfile", o->skip_bad
					   ? "skip-bad" : "retry-failed");
		return 0;
	}
	if (!*o->mapfile || !strcmp(o->mapfile, "-"))
		return usage_error(k, "--mapfile '%s': must name a file",
				   o->mapfile);
	if (o->zero)
		return usage_error(k, "--mapfile: not with --zero");
	if (!strcmp(k->src.spec.path, "-"))
		return usage_error(k, "--mapfile: the source '-' (standard "
				   "input) is a stream: it cannot be resumed");
	for (i = 0; i < k->num_dests; i++)
		if (!strcmp(k->dests[i].spec.path, "-"))
			return usage_error(k, "--mapfile: the destination '-' "
					   "(standard output) is a stream: it "
					   "cannot be resumed");
	return 0;
}

/* The region specs after the options into k->src and k->dests. */
static int take_specs(struct kcopy *k, const char **args)
{
	unsigned int n = 0, i, first_dest = k->opt.zero ? 0 : 1;

	while (args && args[n])
		n++;
	if (n < first_dest + 1)
		return usage_error(k, k->opt.zero ? "missing DEST" :
				   n ? "missing DEST after SOURCE '%s'"
				     : "missing SOURCE and DEST",
				   n ? args[0] : "");
	k->num_dests = n - first_dest;
	if (k->num_dests > KCOPYD_MAX_DESTS)
		return usage_error(k, "%u destinations: at most %u",
				   k->num_dests, KCOPYD_MAX_DESTS);
	k->dests = calloc(k->num_dests, sizeof(*k->dests));
	if (!k->dests)
		return usage_error(k, "out of memory");
	for (i = 0; i < k->num_dests; i++)
		k->dests[i].fd = -1;
	for (i = 0; i < n; i++) {
		struct target *t = i < first_dest ? &k->src
						  : &k->dests[i - first_dest];
		const struct command_region *c = commands_take(k, args[i]);
		const char *why;

		t->arg = strdup(c ? c->text : args[i]);
		if (!t->arg)
			return usage_error(k, "out of memory");
		if (c) {
			t->cmd = c->argv;
			if (commands_spec(c, &t->spec, &why) < 0)
				return usage_error(k, "%s '%s': '%s': %s",
						   t == &k->src ? "SOURCE"
						   : "DEST", c->text,
						   c->close, why);
		} else if (kc_parse_spec(args[i], kc_path_exists, NULL,
					 &t->spec, &why) < 0)
			return usage_error(k, "%s '%s': %s", t == &k->src
					   ? "SOURCE" : "DEST", args[i], why);
	}
	return check_std(k);
}

/* Does arg, an option as written, take the next argument as its value
 * ("--report FILE", "-p N")? */
static bool takes_value(const char *arg)
{
	const struct poptOption *o;

	if (arg[0] != '-' || !arg[1] || (arg[1] != '-' && arg[2]) ||
	    strchr(arg, '='))
		return false;
	for (o = option_table; o->longName || o->shortName; o++) {
		if ((o->argInfo & POPT_ARG_MASK) == POPT_ARG_NONE)
			continue;
		if (arg[1] == '-' ? o->longName && !strcmp(arg + 2, o->longName)
				  : o->shortName == arg[1])
			return true;
	}
	return false;
}

/* A bare --progress (or -P) takes no value: "--progress plain" would copy
 * from or to a file named plain.  When no such file exists, the mode was
 * meant: say how to write it, rather than fail to open it, or create it. */
static int check_progress_word(struct kcopy *k, const char *opt,
			       const char *word)
{
	if ((strcmp(opt, "--progress") && strcmp(opt, "-P")) ||
	    (strcmp(word, "plain") && strcmp(word, "json")) ||
	    kc_path_exists(word, NULL))
		return 0;
	return usage_error(k, "%s %s: the mode is written --progress=%s (a "
			   "file named %s: ./%s)", opt, word, word, word, word);
}

int options_parse(struct kcopy *k, int argc, const char **argv)
{
	struct options *o = &k->opt;
	const char *progress_mode = NULL;
	char why[256];
	poptContext pc;
	int rc, i, ret = 0;

	o->pages = DEFAULT_PAGES;
	o->chunk = KCOPYD_DEFAULT_SUBJOB_SIZE;
	o->throttle = 100;
	o->timeout = DEFAULT_TIMEOUT;
	o->mapfile_interval = DEFAULT_MAPFILE_INTERVAL;
	o->progress_fd = -1;
	/* The command line as given, for the report (before --progress=MODE
	 * is taken apart below). */
	k->argv = malloc(((size_t)argc + 1) * sizeof(*k->argv));
	if (!k->argv)
		return usage_error(k, "out of memory");
	memcpy(k->argv, argv, (size_t)argc * sizeof(*k->argv));
	k->argv[argc] = NULL;
	k->argc = argc;
	if (commands_gather(k, &argc, argv, takes_value, why,
			    sizeof(why)) < 0)
		return usage_error(k, "%s", why);
	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strncmp(argv[i], "--progress=", 11)) {
			progress_mode = argv[i] + 11;
			argv[i] = "--progress";
		} else if (i + 1 < argc &&
			   check_progress_word(k, argv[i], argv[i + 1]) < 0) {
			return -EINVAL;
		}
	}
	pc = poptGetContext("kcopy", argc, argv, option_table, 0);
	if (!pc)
		return usage_error(k, "out of memory");
	poptSetOtherOptionHelp(pc, "[OPTION]... SOURCE DEST [DEST]...\n"
			       "  or:  kcopy --zero [OPTION]... DEST [DEST]...\n"
			       "A region is PATH[:SECTOR[:COUNT]] in 512-byte "
			       "sectors, or sizes with K, M, G, T; PATH may be "
			       "an NBD URI, '-', or [ CMD ARGS... ]: an NBD "
			       "server kcopy starts (qemu-nbd, nbdkit), with "
			       "]:SECTOR[:COUNT]");
	while (ret == 0 && (rc = poptGetNextOpt(pc)) > 0) {
		const char *arg = poptGetOptArg(pc);	/* malloc'd or NULL */

		if (rc == OPT_HELP || rc == OPT_USAGE) {
			if (rc == OPT_HELP)
				poptPrintHelp(pc, stdout, 0);
			else
				poptPrintUsage(pc, stdout, 0);
			ret = 1;
		} else if (rc == OPT_VERSION) {
			printf("kcopy %s (libkcopyd)\n", PACKAGE_VERSION);
			ret = 1;
		} else {
			/* popt's strings die with the context: keep ours. */
			if (rc == OPT_PROGRESS)
				arg = progress_mode ? strdup(progress_mode)
						    : NULL;
			ret = take_option(k, rc, arg);
			if ((rc == OPT_REPORT || rc == OPT_MAPFILE ||
			     rc == OPT_DOMAIN_MAPFILE || rc == OPT_BMAP ||
			     rc == OPT_HASH_FILE) && ret == 0)
				arg = NULL;	/* o->report, o->mapfile,
						   o->domain_mapfile, o->bmap,
						   o->hash_file own it */
		}
		free((void *)arg);
	}
	if (ret == 0 && rc < -1)
		ret = usage_error(k, "%s: %s",
				  poptBadOption(pc, POPT_BADOPTION_NOALIAS),
				  poptStrerror(rc));
	if (ret == 0 && k->out.quiet && o->progress)
		ret = usage_error(k, "--quiet and --progress contradict each "
				  "other");
	if (ret == 0 && o->zero && o->verify)
		ret = usage_error(k, "--verify has nothing to compare with "
				  "--zero");
	if (ret == 0 && o->zero && o->hash_algs)
		ret = usage_error(k, "--hash has nothing to read with --zero");
	if (ret == 0 && o->hash_file && !o->hash_algs)
		ret = usage_error(k, "--hash-file '%s': needs --hash ALG (the "
				  "digests to write)", o->hash_file);
	if (ret == 0 && o->zero &&
	    (o->allocated || o->dest_is_zero || o->no_zero_detect))
		ret = usage_error(k, "--%s is for copies, not --zero",
				  o->allocated ? "allocated" : o->dest_is_zero
				  ? "destination-is-zero" : "no-zero-detect");
	if (ret == 0)
		ret = take_specs(k, poptGetArgs(pc));
	if (ret == 0)
		ret = check_mapfile(k);
	if (ret == 0)
		ret = check_used(k);
	if (ret == 0)
		ret = check_bmap(k);
	poptFreeContext(pc);
	return ret;
}
