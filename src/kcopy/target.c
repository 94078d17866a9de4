/* target.c - opening, sizing and checking the source and destinations.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Everything here runs before the first byte is written, and a failure is a
 * setup error: one message naming the argument, nothing created.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kcopy.h"

static const char *role(struct kcopy *k, const struct target *t, char *buf,
			size_t len)
{
	if (t == &k->src)
		snprintf(buf, len, "source '%s'", t->arg);
	else
		snprintf(buf, len, "destination %u '%s'",
			 (unsigned int)(t - k->dests) + 1, t->arg);
	return buf;
}

#define setup_error(k, t, ...) do {					\
	char role_[PATH_MAX + 64];					\
	fprintf(stderr, "kcopy: %s: ", role(k, t, role_, sizeof(role_)));\
	fprintf(stderr, __VA_ARGS__);					\
	fputc('\n', stderr);						\
} while (0)

/* Read one line of a sysfs attribute of block device dev. */
static int sysfs_read(dev_t dev, const char *attr, char *buf, size_t len)
{
	char path[128];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(dev),
		 minor(dev), attr);
	f = fopen(path, "re");
	if (!f)
		return -1;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static uint64_t sysfs_u64(dev_t dev, const char *attr)
{
	char buf[64];

	return sysfs_read(dev, attr, buf, sizeof(buf)) ? 0
		: strtoull(buf, NULL, 10);
}

/* What storage block device dev stands for: a partition is its disk at the
 * partition's start; a loop device is its backing file at its offset. */
static void resolve_blockdev(dev_t dev, struct storage_id *id, int depth)
{
	char buf[PATH_MAX];
	struct stat st;

	id->is_file = false;
	id->dev = dev;
	id->ino = 0;
	if (depth > 8)
		return;
	if (sysfs_read(dev, "partition", buf, sizeof(buf)) == 0) {
		unsigned int maj, min;
		uint64_t start = sysfs_u64(dev, "start");

		if (sysfs_read(dev, "../dev", buf, sizeof(buf)) == 0 &&
		    sscanf(buf, "%u:%u", &maj, &min) == 2) {
			resolve_blockdev(makedev(maj, min), id, depth + 1);
			id->base += start * KC_SECTOR_SIZE;
		}
		return;
	}
	if (sysfs_read(dev, "loop/backing_file", buf, sizeof(buf)) == 0 &&
	    stat(buf, &st) == 0) {
		uint64_t offset = sysfs_u64(dev, "loop/offset");

		if (S_ISBLK(st.st_mode)) {
			resolve_blockdev(st.st_rdev, id, depth + 1);
		} else {
			id->is_file = true;
			id->dev = st.st_dev;
			id->ino = st.st_ino;
			id->base = 0;
		}
		id->base += offset;
	}
}

static int probe_open(struct kcopy *k, struct target *t)
{
	struct stat st;
	int lbs;

	if (fstat(t->fd, &st) < 0) {
		setup_error(k, t, "%s", strerror(errno));
		return -1;
	}
	if (S_ISBLK(st.st_mode)) {
		char zoned[32];

		t->is_blockdev = true;
		t->rdev = st.st_rdev;
		if (ioctl(t->fd, BLKSSZGET, &lbs) < 0 ||
		    ioctl(t->fd, BLKGETSIZE64, &t->size) < 0) {
			setup_error(k, t, "cannot read the device's size: %s",
				    strerror(errno));
			return -1;
		}
		t->lbs = (unsigned int)lbs;
		t->id.base = 0;
		resolve_blockdev(st.st_rdev, &t->id, 0);
		t->zoned = sysfs_read(st.st_rdev, "queue/zoned", zoned,
				      sizeof(zoned)) == 0 &&
			   !strcmp(zoned, "host-managed");
	} else if (S_ISREG(st.st_mode)) {
		t->lbs = KC_SECTOR_SIZE;
		t->size = (uint64_t)st.st_size;
		t->id = (struct storage_id){ true, st.st_dev, st.st_ino, 0 };
	} else {
		setup_error(k, t, "not a block device or regular file");
		return -1;
	}
	return 0;
}

static bool can_open_direct(const char *path, int flags)
{
	int fd = open(path, flags | O_DIRECT | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* The region must lie inside an existing device or file (for a file
 * destination it may extend it) and be aligned to a device's logical
 * block size. */
static int check_region(struct kcopy *k, struct target *t, bool may_extend)
{
	uint64_t lbs_sectors = t->lbs / KC_SECTOR_SIZE;
	uint64_t end = t->sector + t->count;

	if (t->is_blockdev &&
	    (t->sector % lbs_sectors || t->count % lbs_sectors)) {
		setup_error(k, t, "region (sector %" PRIu64 ", %" PRIu64
			    " sectors) is not aligned to the logical block "
			    "size of %u bytes", t->sector, t->count, t->lbs);
		return -1;
	}
	if (!may_extend && end > t->size / KC_SECTOR_SIZE) {
		setup_error(k, t, "region (sector %" PRIu64 ", %" PRIu64
			    " sectors) ends past the end of the %s (%" PRIu64
			    " sectors)", t->sector, t->count,
			    t->is_blockdev ? "device" : "file",
			    t->size / KC_SECTOR_SIZE);
		return -1;
	}
	return 0;
}

/* A region without COUNT: from SECTOR to the end of the device or file. */
static int count_to_end(struct kcopy *k, struct target *t)
{
	if (t->sector >= t->size / KC_SECTOR_SIZE) {
		setup_error(k, t, "sector %" PRIu64 " is at or past the end "
			    "(%" PRIu64 " sectors)", t->sector,
			    t->size / KC_SECTOR_SIZE);
		return -1;
	}
	t->count = t->size / KC_SECTOR_SIZE - t->sector;
	return 0;
}

int target_open_source(struct kcopy *k, struct target *t)
{
	t->fd = open(t->spec.path, O_RDONLY | O_CLOEXEC);
	if (t->fd < 0) {
		setup_error(k, t, "cannot open '%s': %s", t->spec.path,
			    strerror(errno));
		return -1;
	}
	t->exists = true;
	if (probe_open(k, t) < 0)
		return -1;
	t->direct = can_open_direct(t->spec.path, O_RDONLY);
	t->sector = t->spec.sector;
	if (t->spec.has_count) {
		t->count = t->spec.count;
	} else {
		if (t->size % KC_SECTOR_SIZE) {
			setup_error(k, t, "size %" PRIu64 " bytes is not a "
				    "multiple of 512: give a COUNT", t->size);
			return -1;
		}
		if (count_to_end(k, t) < 0)
			return -1;
	}
	return check_region(k, t, false);
}

/* Does directory dir lie under /dev? */
static bool in_dev(const char *dir)
{
	char real[PATH_MAX];

	return realpath(dir, real) &&
	       (!strcmp(real, "/dev") || !strncmp(real, "/dev/", 5));
}

/* A block device named by an earlier destination too is already open
 * exclusively: share that descriptor, since a second O_EXCL open fails. */
static int reuse_exclusive(struct kcopy *k, struct target *t, dev_t rdev)
{
	struct target *d;

	for (d = k->dests; d < t; d++)
		if (d->is_blockdev && d->rdev == rdev)
			return fcntl(d->fd, F_DUPFD_CLOEXEC, 0);
	return -1;
}

/* Open an existing destination, or check that a missing one can be made.
 * count is the source region's (with --zero, 0: the destination's own). */
int target_prepare_dest(struct kcopy *k, struct target *t)
{
	struct stat st;
	uint64_t want = k->opt.zero ? 0 : k->src.count;

	t->sector = t->spec.sector;
	if (stat(t->spec.path, &st) < 0) {
		char *dir = strdup(t->spec.path);

		if (errno != ENOENT || !dir) {
			setup_error(k, t, "%s", strerror(errno));
			free(dir);
			return -1;
		}
		if (access(dirname(dir), W_OK | X_OK) < 0) {
			setup_error(k, t, "cannot create '%s': %s",
				    t->spec.path, strerror(errno));
			free(dir);
			return -1;
		}
		if (in_dev(dir)) {
			/* A typo or an unplugged disk: an image file in
			 * devtmpfs would fill memory, not a disk. */
			setup_error(k, t, "no such device (kcopy does not "
				    "create files under /dev)");
			free(dir);
			return -1;
		}
		free(dir);
		if (k->opt.zero && !t->spec.has_count) {
			setup_error(k, t, "does not exist: give a COUNT");
			return -1;
		}
		t->lbs = KC_SECTOR_SIZE;
		t->count = t->spec.has_count ? t->spec.count : want;
		if (want && t->count != want)
			goto count_differs;
		return 0;
	}

	t->exists = true;
	if (S_ISBLK(st.st_mode)) {
		t->fd = reuse_exclusive(k, t, st.st_rdev);
		if (t->fd < 0)
			t->fd = open(t->spec.path, O_RDWR | O_CLOEXEC |
				     (k->opt.force ? 0 : O_EXCL));
	} else if (S_ISREG(st.st_mode)) {
		t->fd = open(t->spec.path, O_RDWR | O_CLOEXEC);
	} else {
		setup_error(k, t, "not a block device or regular file");
		return -1;
	}
	if (t->fd < 0) {
		if (errno == EBUSY)
			setup_error(k, t, "device is mounted or in use "
				    "(--force overrides)");
		else
			setup_error(k, t, "cannot open '%s' for writing: %s",
				    t->spec.path, strerror(errno));
		return -1;
	}
	if (probe_open(k, t) < 0)
		return -1;
	t->direct = can_open_direct(t->spec.path, O_RDWR);
	if (t->spec.has_count) {
		t->count = t->spec.count;
	} else if (want) {
		t->count = want;
	} else {
		/* --zero: to the end of the device or file. */
		if (count_to_end(k, t) < 0)
			return -1;
	}
	if (want && t->count != want)
		goto count_differs;
	return check_region(k, t, !t->is_blockdev);

count_differs:
	if (t->count < want)
		setup_error(k, t, "region of %" PRIu64 " sectors is smaller "
			    "than the source region (%" PRIu64 " sectors)",
			    t->count, want);
	else
		setup_error(k, t, "COUNT %" PRIu64 " differs from the source "
			    "region's %" PRIu64 " sectors", t->count, want);
	return -1;
}

/* Do paths a and b name the same directory entry?  For files that do not
 * exist yet, which stat cannot tell apart. */
static bool same_path(const char *a, const char *b)
{
	char pa[PATH_MAX], pb[PATH_MAX];
	char *da = strdup(a), *db = strdup(b);
	bool same = da && db && realpath(dirname(da), pa) &&
		    realpath(dirname(db), pb) && !strcmp(pa, pb);

	free(da);
	free(db);
	if (!same)
		return false;
	da = strdup(a);
	db = strdup(b);
	same = da && db && !strcmp(basename(da), basename(db));
	free(da);
	free(db);
	return same;
}

/* Same storage?  Files not yet created are told apart by their path. */
static bool same_storage(const struct target *a, const struct target *b)
{
	if (!a->exists || !b->exists)
		return !a->exists && !b->exists &&
		       same_path(a->spec.path, b->spec.path);
	return a->id.is_file == b->id.is_file && a->id.dev == b->id.dev &&
	       a->id.ino == b->id.ino;
}

int target_create_dest(struct kcopy *k, struct target *t)
{
	struct stat st;
	struct target *d;

	/* Another region of a file an earlier destination just created. */
	for (d = k->dests; d < t; d++) {
		if (d->created && same_path(d->spec.path, t->spec.path)) {
			t->fd = fcntl(d->fd, F_DUPFD_CLOEXEC, 0);
			if (t->fd < 0) {
				setup_error(k, t, "%s", strerror(errno));
				return -1;
			}
			t->exists = true;
			t->id = d->id;
			t->direct = d->direct;
			return 0;
		}
	}

	t->fd = open(t->spec.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (t->fd < 0 || fstat(t->fd, &st) < 0) {
		setup_error(k, t, "cannot create '%s': %s", t->spec.path,
			    strerror(errno));
		return -1;
	}
	t->created = true;
	t->exists = true;
	t->id = (struct storage_id){ true, st.st_dev, st.st_ino, 0 };
	t->direct = can_open_direct(t->spec.path, O_RDWR);
	return 0;
}

static bool overlap(const struct target *a, const struct target *b)
{
	uint64_t a0 = a->id.base + a->sector * KC_SECTOR_SIZE;
	uint64_t b0 = b->id.base + b->sector * KC_SECTOR_SIZE;
	uint64_t a1 = a0 + a->count * KC_SECTOR_SIZE;
	uint64_t b1 = b0 + b->count * KC_SECTOR_SIZE;

	return same_storage(a, b) && a0 < b1 && b0 < a1;
}

int target_check_overlaps(struct kcopy *k)
{
	unsigned int i, j;

	for (i = 0; i < k->num_dests; i++) {
		struct target *d = &k->dests[i];

		if (!k->opt.zero && overlap(&k->src, d)) {
			setup_error(k, d, "overlaps the source region on the "
				    "same storage");
			return -1;
		}
		for (j = 0; j < i; j++) {
			if (overlap(&k->dests[j], d)) {
				setup_error(k, d, "overlaps destination %u on "
					    "the same storage", j + 1);
				return -1;
			}
		}
	}
	return 0;
}

void target_set_error(struct target *t, int err, const char *op)
{
	if (t->error)
		return;
	t->error = err;
	t->error_op = op;
}
