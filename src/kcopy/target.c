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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kcopy.h"

/* Print a setup error naming the target, as "source 'ARG': ..." or
 * "destination N 'ARG': ...", and return err. */
static int setup_error(struct kcopy *k, const struct target *t, int err,
		       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int setup_error(struct kcopy *k, const struct target *t, int err,
		       const char *fmt, ...)
{
	char what[PATH_MAX + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (t == &k->src)
		say(&k->out, MSG_ERROR, "source '%s': %s", t->arg, what);
	else
		say(&k->out, MSG_ERROR, "destination %u '%s': %s",
		    (unsigned int)(t - k->dests) + 1, t->arg, what);
	return err;
}

/* Read one line of a sysfs attribute of block device dev: 0 or -errno. */
static int sysfs_read(dev_t dev, const char *attr, char *buf, size_t len)
{
	char path[128];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(dev),
		 minor(dev), attr);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (!ok)
		return -ENODATA;
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

/* What t's descriptor is: the library's probe (size, logical block, direct
 * I/O), and what only the tool needs (identity, zoned). */
static int probe_open(struct kcopy *k, struct target *t)
{
	struct kcopyd_fd_info info;
	struct stat st;
	int r;

	if (fstat(t->fd, &st) < 0)
		return setup_error(k, t, -errno, "%s", strerror(errno));
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return setup_error(k, t, -EINVAL, "not a block device or "
				   "regular file");
	r = kcopyd_probe_fd(k->kc, t->fd, &info);
	if (r < 0)
		return setup_error(k, t, r, "cannot read the %s's size: %s",
				   S_ISBLK(st.st_mode) ? "device" : "file",
				   strerror(-r));
	t->is_blockdev = info.is_blockdev;
	t->lbs = info.logical_block_size;
	t->size = info.size;
	t->direct = info.can_direct;
	if (t->is_blockdev) {
		char zoned[32];

		t->rdev = st.st_rdev;
		t->id.base = 0;
		resolve_blockdev(st.st_rdev, &t->id, 0);
		t->zoned = sysfs_read(st.st_rdev, "queue/zoned", zoned,
				      sizeof(zoned)) == 0 &&
			   !strcmp(zoned, "host-managed");
	} else {
		t->id = (struct storage_id){ true, st.st_dev, st.st_ino, 0 };
	}
	return 0;
}

/* The region must lie inside an existing device or file (for a file
 * destination it may extend it) and be aligned to a device's logical
 * block size. */
static int check_region(struct kcopy *k, struct target *t, bool may_extend)
{
	uint64_t lbs_sectors = t->lbs / KC_SECTOR_SIZE;
	uint64_t end = t->sector + t->count;

	if (t->is_blockdev &&
	    (t->sector % lbs_sectors || t->count % lbs_sectors))
		return setup_error(k, t, -EINVAL, "region (sector %" PRIu64
				   ", %" PRIu64 " sectors) is not aligned to "
				   "the logical block size of %u bytes",
				   t->sector, t->count, t->lbs);
	if (!may_extend && end > t->size / KC_SECTOR_SIZE)
		return setup_error(k, t, -EINVAL, "region (sector %" PRIu64
				   ", %" PRIu64 " sectors) ends past the end "
				   "of the %s (%" PRIu64 " sectors)",
				   t->sector, t->count,
				   t->is_blockdev ? "device" : "file",
				   t->size / KC_SECTOR_SIZE);
	return 0;
}

/* A region without COUNT: from SECTOR to the end of the device or file. */
static int count_to_end(struct kcopy *k, struct target *t)
{
	if (t->sector >= t->size / KC_SECTOR_SIZE)
		return setup_error(k, t, -EINVAL, "sector %" PRIu64 " is at or "
				   "past the end (%" PRIu64 " sectors)",
				   t->sector, t->size / KC_SECTOR_SIZE);
	t->count = t->size / KC_SECTOR_SIZE - t->sector;
	return 0;
}

int target_open_source(struct kcopy *k, struct target *t)
{
	int r;

	t->fd = open(t->spec.path, O_RDONLY | O_CLOEXEC);
	if (t->fd < 0)
		return setup_error(k, t, -errno, "cannot open '%s': %s",
				   t->spec.path, strerror(errno));
	t->exists = true;
	r = probe_open(k, t);
	if (r < 0)
		return r;
	t->sector = t->spec.sector;
	if (t->spec.has_count) {
		t->count = t->spec.count;
	} else {
		if (t->size % KC_SECTOR_SIZE)
			return setup_error(k, t, -EINVAL, "size %" PRIu64
					   " bytes is not a multiple of 512: "
					   "give a COUNT", t->size);
		r = count_to_end(k, t);
		if (r < 0)
			return r;
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

/* The size of a destination region: its COUNT, else the source's (want),
 * else (--zero, want 0) to the end; it must equal the source's. */
static int dest_count(struct kcopy *k, struct target *t, uint64_t want)
{
	int r;

	if (t->spec.has_count) {
		t->count = t->spec.count;
	} else if (want) {
		t->count = want;
	} else {
		r = count_to_end(k, t);
		if (r < 0)
			return r;
	}
	if (!want || t->count == want)
		return 0;
	if (t->count < want)
		return setup_error(k, t, -EINVAL, "region of %" PRIu64 " sectors "
				   "is smaller than the source region (%" PRIu64
				   " sectors)", t->count, want);
	return setup_error(k, t, -EINVAL, "COUNT %" PRIu64 " differs from the "
			   "source region's %" PRIu64 " sectors", t->count,
			   want);
}

/* A destination that does not exist: can it be made? */
static int prepare_new_dest(struct kcopy *k, struct target *t, uint64_t want)
{
	char *dir = strdup(t->spec.path);
	int r = 0;

	if (!dir)
		return setup_error(k, t, -ENOMEM, "%s", strerror(ENOMEM));
	if (access(dirname(dir), W_OK | X_OK) < 0)
		r = setup_error(k, t, -errno, "cannot create '%s': %s",
				t->spec.path, strerror(errno));
	else if (in_dev(dir))
		/* A typo or an unplugged disk: an image file in devtmpfs
		 * would fill memory, not a disk. */
		r = setup_error(k, t, -ENODEV, "no such device (kcopy does "
				"not create files under /dev)");
	free(dir);
	if (r < 0)
		return r;
	if (k->opt.zero && !t->spec.has_count)
		return setup_error(k, t, -EINVAL, "does not exist: give a "
				   "COUNT");
	t->lbs = KC_SECTOR_SIZE;
	return dest_count(k, t, want);
}

/* Open an existing destination, or check that a missing one can be made.
 * The count to match is the source region's (with --zero, none). */
int target_prepare_dest(struct kcopy *k, struct target *t)
{
	uint64_t want = k->opt.zero ? 0 : k->src.count;
	struct stat st;
	int r;

	t->sector = t->spec.sector;
	if (stat(t->spec.path, &st) < 0) {
		if (errno != ENOENT)
			return setup_error(k, t, -errno, "%s", strerror(errno));
		return prepare_new_dest(k, t, want);
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
		return setup_error(k, t, -EINVAL, "not a block device or "
				   "regular file");
	}
	if (t->fd < 0) {
		if (errno == EBUSY)
			return setup_error(k, t, -EBUSY, "device is mounted or "
					   "in use (--force overrides)");
		return setup_error(k, t, -errno, "cannot open '%s' for "
				   "writing: %s", t->spec.path,
				   strerror(errno));
	}
	r = probe_open(k, t);
	if (r == 0)
		r = dest_count(k, t, want);
	if (r == 0)
		r = check_region(k, t, !t->is_blockdev);
	return r;
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

static int create_dest(struct kcopy *k, struct target *t)
{
	struct kcopyd_fd_info info;
	struct stat st;
	struct target *d;
	int r;

	/* Another region of a file an earlier destination just created. */
	for (d = k->dests; d < t; d++) {
		if (d->created && same_path(d->spec.path, t->spec.path)) {
			t->fd = fcntl(d->fd, F_DUPFD_CLOEXEC, 0);
			if (t->fd < 0)
				return setup_error(k, t, -errno, "%s",
						   strerror(errno));
			t->exists = true;
			t->id = d->id;
			t->direct = d->direct;
			return 0;
		}
	}

	t->fd = open(t->spec.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (t->fd < 0 || fstat(t->fd, &st) < 0)
		return setup_error(k, t, -errno, "cannot create '%s': %s",
				   t->spec.path, strerror(errno));
	t->created = true;
	t->exists = true;
	t->id = (struct storage_id){ true, st.st_dev, st.st_ino, 0 };
	r = kcopyd_probe_fd(k->kc, t->fd, &info);
	if (r < 0)
		return setup_error(k, t, r, "cannot probe '%s': %s",
				   t->spec.path, strerror(-r));
	t->direct = info.can_direct;
	return 0;
}

int target_create_dests(struct kcopy *k)
{
	unsigned int i;
	int r;

	for (i = 0; i < k->num_dests; i++) {
		if (k->dests[i].exists)
			continue;
		r = create_dest(k, &k->dests[i]);
		if (r < 0) {
			target_remove_created(k);
			return r;
		}
	}
	return 0;
}

/* A setup error after destinations were created, before any job started:
 * nothing was written to them, so they go, and the run leaves no trace. */
void target_remove_created(struct kcopy *k)
{
	unsigned int i;

	for (i = 0; i < k->num_dests; i++)
		if (k->dests[i].created)
			unlink(k->dests[i].spec.path);
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

		if (!k->opt.zero && overlap(&k->src, d))
			return setup_error(k, d, -EINVAL, "overlaps the source "
					   "region on the same storage");
		for (j = 0; j < i; j++)
			if (overlap(&k->dests[j], d))
				return setup_error(k, d, -EINVAL, "overlaps "
						   "destination %u on the same "
						   "storage", j + 1);
	}
	return 0;
}
