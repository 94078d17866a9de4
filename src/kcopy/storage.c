/* storage.c - what storage a path or device really is, asked of the kernel
 * rather than read from path text: the disk behind a partition, the file
 * or device behind a loop device (LOOP_GET_STATUS64), the loop devices in
 * use over a file, whether a directory is on devtmpfs (the mount table,
 * by libmount), zoned devices; and, for a person (--dry-run), what the
 * kernel knows of a device: its model, serial, size, partition number,
 * backing file, where it is mounted and what holds it.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * sysfs is read only for numbers (partition start, major:minor), for the
 * kernel's own device names, and for the text shown to a person (model,
 * serial, backing file); every device opened here is checked to be the
 * device number asked for.
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
/* Partitions of one disk looked at, at most (the kernel's DISK_MAX_PARTS). */
#define MAX_PARTS 256
/* Loop devices over one file looked at, at most. */
#define MAX_LOOPS_OVER 256

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

/* The kernel's name of dev ("sda1"), the last part of its sysfs link. */
static int sysfs_dev_name(dev_t dev, char *buf, size_t len)
{
	char link[128], target[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(dev),
		 minor(dev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = 0;
	snprintf(buf, len, "%s", basename(target));
	return 0;
}

/* Open block device dev by its kernel name under /dev, checked to be dev.
 * A descriptor, or -errno. */
static int open_dev(dev_t dev, int flags)
{
	char name[NAME_MAX + 1], path[NAME_MAX + 8];
	struct stat st;
	int fd = sysfs_dev_name(dev, name, sizeof(name));

	if (fd < 0)
		return fd;
	snprintf(path, sizeof(path), "/dev/%s", name);
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

int storage_partitions(dev_t disk, dev_t *parts, size_t max)
{
	char name[NAME_MAX + 1], path[NAME_MAX + 16], rel[2 * NAME_MAX + 2];
	struct dirent *e;
	size_t n = 0;
	int r = sysfs_dev_name(disk, name, sizeof(name));
	DIR *d;

	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/sys/block/%s", name);
	d = opendir(path);
	if (!d)
		return -errno;
	while (n < max && (e = readdir(d))) {
		if (strncmp(e->d_name, name, strlen(name)))
			continue;	/* partitions are named after the disk */
		snprintf(rel, sizeof(rel), "%s/%s", name, e->d_name);
		if (sysfs_block_dev(rel, &parts[n]) == 0 &&
		    sysfs_has(parts[n], "partition"))
			n++;
	}
	closedir(d);
	return (int)n;
}

/* Disk dev, or one of its partitions, busy with something that is not
 * one of ours (the devices this run holds open itself)? */
static bool disk_busy(dev_t dev, const dev_t *ours, size_t n_ours)
{
	dev_t parts[MAX_PARTS];
	int n = storage_partitions(dev, parts, MAX_PARTS), i;
	bool busy = !is_ours(dev, ours, n_ours) && dev_busy(dev);

	for (i = 0; !busy && i < n; i++)
		if (!is_ours(parts[i], ours, n_ours))
			busy = dev_busy(parts[i]);
	return busy;
}

bool storage_blockdev_busy(dev_t dev)
{
	return dev_busy(dev);
}

int storage_loops_over(dev_t dev, ino_t ino, dev_t *loops, size_t max)
{
	struct loop_info64 info;
	struct dirent *e;
	DIR *d = opendir("/sys/block");
	size_t n = 0;

	if (!d)
		return -errno;
	/* A loop device with nothing attached has no "loop" directory in
	 * sysfs: not opened (an open of each of the usual 50 or more costs
	 * a run tens of milliseconds). */
	while (n < max && (e = readdir(d)))
		if (!strncmp(e->d_name, "loop", 4) &&
		    sysfs_block_dev(e->d_name, &loops[n]) == 0 &&
		    sysfs_has(loops[n], "loop") &&
		    loop_status(loops[n], &info) == 0 && !info.lo_rdevice &&
		    decode_dev(info.lo_device) == dev &&
		    (ino_t)info.lo_inode == ino)
			n++;
	closedir(d);
	return (int)n;
}

int storage_busy_loop_over(dev_t dev, ino_t ino, const dev_t *ours,
			   size_t n_ours, char *name, size_t len)
{
	dev_t loops[MAX_LOOPS_OVER];
	char kname[NAME_MAX + 1];
	int n = storage_loops_over(dev, ino, loops, MAX_LOOPS_OVER), i;

	for (i = 0; i < n; i++) {
		if (disk_busy(loops[i], ours, n_ours) &&
		    sysfs_dev_name(loops[i], kname, sizeof(kname)) == 0) {
			snprintf(name, len, "/dev/%s", kname);
			return 1;
		}
	}
	return n < 0 ? n : 0;
}

/* Call fn(fs, ctx) for each mount of /proc/self/mountinfo until it
 * returns true.  0, or -errno if the table cannot be read. */
static int mounts_walk(bool (*fn)(struct libmnt_fs *fs, void *ctx),
		       void *ctx)
{
	struct libmnt_table *tb = mnt_new_table();
	struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
	struct libmnt_fs *fs;
	int r = tb && it ? mnt_table_parse_file(tb, "/proc/self/mountinfo")
			 : -ENOMEM;

	while (r == 0 && mnt_table_next_fs(tb, it, &fs) == 0 && !fn(fs, ctx))
		;
	mnt_free_iter(it);
	mnt_unref_table(tb);
	return r < 0 ? r : r > 0 ? -EIO : 0;
}

struct devtmpfs_find {
	dev_t dev;
	int found;
};

static bool is_devtmpfs(struct libmnt_fs *fs, void *ctx)
{
	struct devtmpfs_find *d = ctx;

	d->found = mnt_fs_get_devno(fs) == d->dev && mnt_fs_get_fstype(fs) &&
		   !strcmp(mnt_fs_get_fstype(fs), "devtmpfs");
	return d->found;
}

int storage_is_devtmpfs(dev_t dev)
{
	struct devtmpfs_find d = { dev, 0 };
	int r = mounts_walk(is_devtmpfs, &d);

	return r < 0 ? r : d.found;
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

/* ------------------------------------------------ facts for a person */

/* The names in directory dir of dev's sysfs entry ("holders"), joined by
 * ", " into buf (len bytes; "" if none). */
static void sysfs_list(dev_t dev, const char *dir, char *buf, size_t len)
{
	char path[128];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	buf[0] = 0;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(dev),
		 minor(dev), dir);
	d = opendir(path);
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' && n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
					      n ? ", " : "", e->d_name);
	if (d)
		closedir(d);
}

/* The serial of a SCSI disk (SATA ones too), which has no device/serial:
 * its Unit Serial Number page (VPD 0x80: a 4-byte header, the length in
 * its last byte, then the serial) into buf (len bytes); "" without. */
static void scsi_serial(dev_t dev, char *buf, size_t len)
{
	unsigned char page[256];
	char path[128];
	size_t n = 0, i;
	FILE *f;

	buf[0] = 0;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/device/vpd_pg80",
		 major(dev), minor(dev));
	f = fopen(path, "re");
	if (f) {
		n = fread(page, 1, sizeof(page), f);
		fclose(f);
	}
	if (n < 4 || page[1] != 0x80)
		return;
	n = n - 4 < page[3] ? n - 4 : page[3];
	for (i = 0; i < n && i + 1 < len; i++)
		buf[i] = page[4 + i] >= ' ' && page[4 + i] < 0x7f
			 ? (char)page[4 + i] : '?';
	buf[i] = 0;
}

/* Model, vendor and serial of the disk dev (as the driver gives them under
 * device/, blanks trimmed; "" where it gives none), into f. */
static void disk_model(dev_t dev, struct storage_facts *f)
{
	char *fields[] = { f->vendor, f->model, f->serial };
	const char *attrs[] = { "device/vendor", "device/model",
				"device/serial" };
	size_t i, n;

	for (i = 0; i < 3; i++) {
		char *v = fields[i];

		if (sysfs_read(dev, attrs[i], v, sizeof(f->model)) < 0)
			v[0] = 0;
		/* virtio-blk has it beside the disk, SCSI in a VPD page. */
		if (v == f->serial && !v[0] &&
		    sysfs_read(dev, "serial", v, sizeof(f->serial)) < 0)
			scsi_serial(dev, v, sizeof(f->serial));
		for (n = strlen(v); n && v[n - 1] == ' '; n--)
			v[n - 1] = 0;
		n = strspn(v, " ");
		memmove(v, v + n, strlen(v + n) + 1);
	}
}

int storage_facts(dev_t dev, struct storage_facts *f)
{
	unsigned int maj, min;
	uint64_t num;
	char buf[64];
	int r;

	memset(f, 0, sizeof(*f));
	f->disk = dev;
	r = sysfs_dev_name(dev, f->name, sizeof(f->name));
	if (r < 0)
		return r;
	if (sysfs_u64(dev, "size", &f->size) == 0)
		f->size *= KC_SECTOR_SIZE;
	if (sysfs_has(dev, "partition")) {
		if (sysfs_u64(dev, "partition", &num) == 0)
			f->partition = (unsigned int)num;
		if (sysfs_u64(dev, "start", &f->start) == 0)
			f->start *= KC_SECTOR_SIZE;
		if (sysfs_read(dev, "../dev", buf, sizeof(buf)) == 0 &&
		    sscanf(buf, "%u:%u", &maj, &min) == 2)
			f->disk = makedev(maj, min);
		if (sysfs_u64(f->disk, "size", &f->disk_size) == 0)
			f->disk_size *= KC_SECTOR_SIZE;
		sysfs_dev_name(f->disk, f->disk_name, sizeof(f->disk_name));
	}
	disk_model(f->disk, f);
	if (sysfs_read(f->disk, "loop/backing_file", f->backing,
		       sizeof(f->backing)) < 0)
		f->backing[0] = 0;
	if (f->backing[0] &&
	    sysfs_u64(f->disk, "loop/offset", &f->loop_offset) < 0)
		f->loop_offset = 0;
	sysfs_list(dev, "holders", f->holders, sizeof(f->holders));
	return 0;
}

int storage_partition_dev(dev_t disk, unsigned int number, dev_t *part)
{
	dev_t parts[MAX_PARTS];
	uint64_t num;
	int n = storage_partitions(disk, parts, MAX_PARTS), i;

	for (i = 0; i < n; i++)
		if (sysfs_u64(parts[i], "partition", &num) == 0 &&
		    num == number) {
			*part = parts[i];
			return 0;
		}
	return n < 0 ? n : -ENOENT;
}

struct mounts_list {
	dev_t dev;
	char *buf;
	size_t len, n;
	int found;
};

static bool list_mount(struct libmnt_fs *fs, void *ctx)
{
	struct mounts_list *l = ctx;
	const char *target = mnt_fs_get_target(fs);

	if (mnt_fs_get_devno(fs) != l->dev || !target)
		return false;
	if (l->n < l->len)
		l->n += (size_t)snprintf(l->buf + l->n, l->len - l->n, "%s%s",
					 l->found ? ", " : "", target);
	l->found++;
	return false;
}

int storage_mounts(dev_t dev, char *buf, size_t len)
{
	struct mounts_list l = { dev, buf, len, 0, 0 };
	int r;

	buf[0] = 0;
	r = mounts_walk(list_mount, &l);
	return r < 0 ? r : l.found;
}
