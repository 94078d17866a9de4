/* kcopy.h - the kcopy tool's shared state.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef KCOPY_H
#define KCOPY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "kcopyd.h"
#include "spec.h"

/* Exit status, fsck style (kcopy(1), EXIT STATUS). */
#define KCOPY_EXIT_READ		1
#define KCOPY_EXIT_DEST_BIT_MAX	6	/* destinations past the sixth share it */
#define KCOPY_EXIT_SETUP	128

/* Where a region lives, for telling whether two regions overlap: the whole
 * disk or the file a partition or loop device stands for, and where the
 * region's device starts in it. */
struct storage_id {
	bool is_file;			/* else a block device (whole disk) */
	dev_t dev;			/* rdev of the disk, or st_dev of the file */
	ino_t ino;
	uint64_t base;			/* bytes from the start of that storage */
};

struct mismatch {
	uint64_t sector, count;
};

/* One side of the copy: the source or a destination. */
struct target {
	char *arg;			/* as given on the command line */
	struct kc_spec spec;
	int fd;
	bool exists;
	bool created;			/* created by this run */
	bool is_blockdev;
	dev_t rdev;			/* of a block device */
	unsigned int lbs;		/* logical block size, bytes */
	uint64_t size;			/* bytes; 0 for a file that is new */
	bool direct;			/* direct I/O was possible */
	bool zoned;			/* a host-managed zoned block device */
	struct storage_id id;
	uint64_t sector, count;		/* the region, resolved */

	/* destinations: what went wrong, first error wins */
	int error;			/* negative errno, 0 if none */
	const char *error_op;		/* "write", "flush", "verify", ... */
	struct mismatch *mismatches;	/* --verify */
	size_t num_mismatches;
};

struct options {
	unsigned long pages;
	uint64_t chunk;
	bool ignore_errors;
	bool sequential;
	bool zero;
	unsigned int throttle;
	uint64_t rate;
	int progress;			/* PROGRESS_* */
	double progress_interval;
	bool verify;
	const char *report;
	bool force;
	bool dry_run;
	bool quiet;
	int verbose;
};

enum { PROGRESS_OFF, PROGRESS_AUTO, PROGRESS_PLAIN, PROGRESS_JSON };

struct kcopy {
	struct options opt;
	struct target src;		/* unused with --zero */
	struct target *dests;
	unsigned int num_dests;
	uint64_t bytes;			/* bytes in the region */

	struct kcopyd_client *kc;
	int read_err;
	unsigned int write_err;		/* full mask, bit i = destination i */
	int read_error;			/* first read errno */
	struct io_region *bad;
	size_t num_bad;
	double start, seconds;
	uint64_t bytes_done;
	int signal;			/* the signal that stopped the copy */
	int sig_fd;			/* signalfd of the signals we answer */
	bool verified;			/* --verify ran to the end */
};

/* target.c */
int target_open_source(struct kcopy *k, struct target *t);
int target_prepare_dest(struct kcopy *k, struct target *t);
int target_check_overlaps(struct kcopy *k);
int target_create_dest(struct kcopy *k, struct target *t);
void target_set_error(struct target *t, int err, const char *op);

/* report.c */
int report_write(struct kcopy *k, const char *path, int status);
void closing_line(struct kcopy *k, int status);
const char *json_escape(const char *s, char *buf, size_t len);

/* progress.c */
void progress_start(struct kcopy *k);
void progress_tick(struct kcopy *k, bool final);
void progress_status_line(struct kcopy *k);
void progress_clear(void);
double now_seconds(void);

/* verify.c */
int verify_init(struct kcopy *k);
void verify_record(int src_fd, uint64_t sector, uint64_t count,
		   const void *data, void *context);
int verify_dest(struct kcopy *k, struct target *t);
void verify_free(void);

/* kcopy.c */
bool poll_signals(struct kcopy *k);
void message(struct kcopy *k, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* KCOPY_H */
