/* storage.c - what storage a path or device really is, asked of the kernel
 * rather than read from path text: the disk behind a partition, the file
 * or device behind a loop device (LOOP_GET_STATUS64), the loop devices in
 * use over a file, whether a directory is on devtmpfs (the mount table,
 * by libmount), zoned devices.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * sysfs is read only for numbers (partition start, major:minor) and for
 * the kernel's own device names; every device opened here is checked to be
 * the device number asked for.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <libmount.h>

#include "kcopy.h"

/* Nesting of partitions and loop devices followed at most. */
#define MAX_DEPTH 8

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

static bool sysfs_has(dev_t dev, const char *attr)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(dev),
		 minor(dev), attr);
	return access(path, F_OK) == 0;
}

/* A number in a sysfs attribute of dev: 0, or -errno if the attribute
 * cannot be read or holds no number (-EINVAL). */
static int sysfs_u64(dev_t dev, const char *attr, uint64_t *val)
{
	char buf[64], *end;
	int r = sysfs_read(dev, attr, buf, sizeof(buf));

	if (r < 0)
		return r;
	errno = 0;
	*val = strtoull(buf, &end, 10);
	return errno || end == buf || *end ? -EINVAL : 0;
}

/* The sysfs path of attribute attr of dev, for a message. */
static void sysfs_name(dev_t dev, const char *attr, char *buf, size_t len)
{
	snprintf(buf, len, "/sys/dev/block/%u:%u/%s", major(dev), minor(dev),
		 attr);
}

/* The kernel's dev_t encoding in struct loop_info64 (new_encode_dev). */
static dev_t decode_dev(uint64_t d)
{
	return makedev((unsigned int)((d >> 8) & 0xfff),
		       (unsigned int)((d & 0xff) | ((d >> 12) & 0xfff00)));
}

/* Open block device dev by its kernel name under /dev, checked to be dev.
 * A descriptor, or -errno. */
static int open_dev(dev_t dev, int flags)
{
	char link[128], target[PATH_MAX], path[PATH_MAX + 8];
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(dev),
		 minor(dev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = 0;
	snprintf(path, sizeof(path), "/dev/%s", basename(target));
	fd = open(path, flags | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != dev) {
		close(fd);
		return -ENODEV;
	}
	return fd;
}

static int loop_status(dev_t dev, struct loop_info64 *info)
{
	int fd = open_dev(dev, O_RDONLY), r = 0;

	if (fd < 0)
		return fd;
	if (ioctl(fd, LOOP_GET_STATUS64, info) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int resolve(dev_t dev, struct storage_id *id, int depth, char *why,
		   size_t len)
{
	struct loop_info64 info;
	char buf[64];
	int r;

	id->is_file = false;
	id->dev = dev;
	id->ino = 0;
	if (depth > MAX_DEPTH)
		return 0;
	if (sysfs_has(dev, "partition")) {
		unsigned int maj, min;
		uint64_t start;

		/* Without its start and its disk a partition's overlap
		 * with the disk or its other partitions is not known. */
		r = sysfs_u64(dev, "start", &start);
		if (r < 0) {
			sysfs_name(dev, "start", why, len);
			return r;
		}
		r = sysfs_read(dev, "../dev", buf, sizeof(buf));
		if (r == 0 && sscanf(buf, "%u:%u", &maj, &min) != 2)
			r = -EINVAL;
		if (r < 0) {
			sysfs_name(dev, "../dev", why, len);
			return r;
		}
		r = resolve(makedev(maj, min), id, depth + 1, why, len);
		id->base += start * KC_SECTOR_SIZE;
		return r;
	}
	if (sysfs_has(dev, "loop") && loop_status(dev, &info) == 0) {
		r = 0;
		if (info.lo_rdevice) {
			/* Backed by a block device. */
			r = resolve(decode_dev(info.lo_rdevice), id, depth + 1,
				    why, len);
		} else {
			id->is_file = true;
			id->dev = decode_dev(info.lo_device);
			id->ino = (ino_t)info.lo_inode;
			id->base = 0;
		}
		id->base += info.lo_offset;
		return r;
	}
	return 0;
}

int storage_of_blockdev(dev_t rdev, struct storage_id *id, char *why,
			size_t len)
{
	id->base = 0;
	return resolve(rdev, id, 0, why, len);
}

bool storage_is_zoned(dev_t rdev)
{
	char zoned[32];

	return sysfs_read(rdev, "queue/zoned", zoned, sizeof(zoned)) == 0 &&
	       !strcmp(zoned, "host-managed");
}

/* Is block device dev mounted or held open exclusively?  An O_EXCL open
 * fails with EBUSY then. */
static bool dev_busy(dev_t dev)
{
	int fd = open_dev(dev, O_RDONLY | O_EXCL);

	if (fd >= 0)
		close(fd);
	return fd == -EBUSY;
}

/* The device number of /sys/block/REL ("loop0", "loop0/loop0p1"). */
static int sysfs_block_dev(const char *rel, dev_t *dev)
{
	char path[2 * NAME_MAX + 32], buf[64];
	unsigned int maj, min;
	FILE *f;
	int r = -ENODATA;

	snprintf(path, sizeof(path), "/sys/block/%s/dev", rel);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fgets(buf, sizeof(buf), f) &&
	    sscanf(buf, "%u:%u", &maj, &min) == 2) {
		*dev = makedev(maj, min);
		r = 0;
	}
	fclose(f);
	return r;
}

static bool is_ours(dev_t dev, const dev_t *ours, size_t n)
{
	while (n--)
		if (ours[n] == dev)
			return true;
	return false;
}

/* Disk name (dev), or one of its partitions, busy with something that is
 * not one of ours (the devices this run holds open itself)? */
static bool disk_busy(const char *name, dev_t dev, const dev_t *ours,
		      size_t n_ours)
{
	char path[NAME_MAX + 16], rel[2 * NAME_MAX + 2];
	struct dirent *e;
	bool busy = !is_ours(dev, ours, n_ours) && dev_busy(dev);
	DIR *d;

	snprintf(path, sizeof(path), "/sys/block/%s", name);
	d = opendir(path);
	while (d && !busy && (e = readdir(d))) {
		dev_t part;

		if (strncmp(e->d_name, name, strlen(name)))
			continue;	/* partitions are named after the disk */
		snprintf(rel, sizeof(rel), "%s/%s", name, e->d_name);
		if (sysfs_block_dev(rel, &part) == 0 &&
		    !is_ours(part, ours, n_ours))
			busy = dev_busy(part);
	}
	if (d)
		closedir(d);
	return busy;
}

bool storage_blockdev_busy(dev_t dev)
{
	return dev_busy(dev);
}

int storage_busy_loop_over(dev_t dev, ino_t ino, const dev_t *ours,
			   size_t n_ours, char *name, size_t len)
{
	struct dirent *e;
	DIR *d = opendir("/sys/block");
	int found = 0;

	if (!d)
		return -errno;
	while (!found && (e = readdir(d))) {
		struct loop_info64 info;
		dev_t loop;

		/* A loop device with nothing attached has no "loop"
		 * directory in sysfs: not opened (an open of each of the
		 * usual 50 or more costs a run tens of milliseconds). */
		if (strncmp(e->d_name, "loop", 4) ||
		    sysfs_block_dev(e->d_name, &loop) < 0 ||
		    !sysfs_has(loop, "loop") ||
		    loop_status(loop, &info) < 0 || info.lo_rdevice ||
		    decode_dev(info.lo_device) != dev ||
		    (ino_t)info.lo_inode != ino)
			continue;
		if (disk_busy(e->d_name, loop, ours, n_ours)) {
			snprintf(name, len, "/dev/%s", e->d_name);
			found = 1;
		}
	}
	closedir(d);
	return found;
}

int storage_is_devtmpfs(dev_t dev)
{
	struct libmnt_table *tb = mnt_new_table();
	struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
	struct libmnt_fs *fs;
	int r = tb && it ? mnt_table_parse_file(tb, "/proc/self/mountinfo")
			 : -ENOMEM;
	int found = 0;

	while (r == 0 && !found && mnt_table_next_fs(tb, it, &fs) == 0)
		found = mnt_fs_get_devno(fs) == dev &&
			mnt_fs_get_fstype(fs) &&
			!strcmp(mnt_fs_get_fstype(fs), "devtmpfs");
	mnt_free_iter(it);
	mnt_unref_table(tb);
	return r < 0 ? r : r > 0 ? -EIO : found;
}

/* Do paths a and b name the same directory entry?  For files that do not
 * exist yet: the same directory (by identity) and the same name in it. */
bool storage_same_entry(const char *a, const char *b)
{
	char *da = strdup(a), *db = strdup(b);
	char *na = strdup(a), *nb = strdup(b);
	struct stat sa, sb;
	bool same = da && db && na && nb &&
		    stat(dirname(da), &sa) == 0 && stat(dirname(db), &sb) == 0 &&
		    sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino &&
		    !strcmp(basename(na), basename(nb));

	free(da);
	free(db);
	free(na);
	free(nb);
	return same;
}

bool storage_same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	bool ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;

	if (ea && eb)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	return !ea && !eb && storage_same_entry(a, b);
}
