/* local.c - local files and block devices as storage.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The local backend.  A descriptor that is a regular file or a block
 * device is probed once (kc_local_open): logical block size, size, and an
 * O_DIRECT reopen (a second open file description through /proc/self/fd,
 * so that the caller's descriptor and its flags are never changed; the
 * caller's stays for buffered I/O where direct I/O is refused or a request
 * is not aligned for it).  Reads, writes and flushes go through the
 * engine's I/O queue (io.c: io_uring or libaio), which the engine submits
 * and reaps itself.  The source's map is SEEK_DATA/SEEK_HOLE on a
 * descriptor of our own; zeroing is a punched hole, BLKZEROOUT or
 * FALLOC_FL_ZERO_RANGE, each tried until the storage refuses it.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kcopyd-private.h"

static const struct kc_file_ops kc_local_ops;

static int reopen_direct(int fd)
{
	char path[64];
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, (flags & O_ACCMODE) | O_DIRECT | O_CLOEXEC);
}

/* Offset and length alignment of direct I/O on a regular file: what statx
 * says where the kernel knows it, else the page size, which every file
 * system that takes O_DIRECT accepts. */
static unsigned int file_dio_align(int fd)
{
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align)
		return stx.stx_dio_offset_align;
#endif
	return KCOPYD_PAGE_SIZE;
}

/* Is the zeroing found for f known to work: a hole punched, or where f
 * cannot punch, BLKZEROOUT or FALLOC_FL_ZERO_RANGE done (a block device's
 * BLKZEROOUT is taken to work: the kernel falls back to writing zeros
 * itself)? */
static void zero_sure_update(struct kc_file *f)
{
	const struct kc_local *l = f->priv;

	f->zero_sure = l->punched || (!f->can_punch && l->zero_ok);
}

/* Probe fd into f and l; 0 or a negative errno. */
static int probe(struct kc_file *f, struct kc_local *l, int fd,
		 const struct stat *st)
{
	f->can_flush = true;
	f->can_zero = true;
	if (S_ISBLK(st->st_mode)) {
		int lbs;

		l->is_blockdev = true;
		f->needs_whole_blocks = true;
		f->fixed_size = true;
		l->zero_ok = true;	/* BLKZEROOUT falls back itself */
		if (ioctl(fd, BLKSSZGET, &lbs) < 0)
			return -errno;
		if (ioctl(fd, BLKGETSIZE64, &f->size) < 0)
			return -errno;
		f->lbs = (unsigned int)lbs;
		l->dio_align = f->lbs;
	} else if (S_ISREG(st->st_mode)) {
		f->lbs = KCOPYD_SECTOR_SIZE;
		f->size = (uint64_t)st->st_size;
		l->dio_align = file_dio_align(fd);
		f->can_extend = true;
		f->can_punch = true;
		f->can_extents = true;
	} else {
		return -EINVAL;
	}
	return 0;
}

int kc_local_open(struct kc_file *f, int fd, const struct stat *st)
{
	struct kc_local *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return -ENOMEM;
	l->direct_fd = l->map_fd = -1;
	r = probe(f, l, fd, st);
	if (r < 0) {
		free(l);
		return r;
	}
	f->ops = &kc_local_ops;
	f->priv = l;
	zero_sure_update(f);
	l->direct_fd = reopen_direct(fd);
	f->can_direct = l->direct_fd >= 0;
	return 0;
}

static void local_release(struct kc_file *f)
{
	struct kc_local *l = f->priv;

	if (l->direct_fd >= 0)
		close(l->direct_fd);
	if (l->map_fd >= 0)
		close(l->map_fd);
	free(l);
	f->priv = NULL;
}

static const char *local_describe(const struct kc_file *f,
				  struct kcopyd_fd_info *info)
{
	const struct kc_local *l = f->priv;

	if (info)
		info->is_blockdev = l->is_blockdev;
	return l->is_blockdev ? "device" : "file";
}

/* A descriptor of our own on f for lseek: its O_DIRECT reopen, else a
 * reopen for the purpose (a new open file description, whose offset is
 * ours: a dup would share the caller's), kept until f is released.
 * Never the caller's: the library leaves its offset alone.  -errno if
 * there is none. */
static int map_fd(struct kc_file *f)
{
	struct kc_local *l = f->priv;
	char path[64];

	if (l->direct_fd >= 0)
		return l->direct_fd;
	if (l->map_fd < 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", f->fd);
		l->map_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (l->map_fd < 0)
			return -errno;
	}
	return l->map_fd;
}

/* The extent remembered by local_extents is forgotten once f is written
 * or zeroed: a destination's map is asked when a job begins
 * (kc_job_dest_holes), and may have changed since an earlier job's. */
static void forget_extent(struct kc_file *f)
{
	struct kc_local *l = f->priv;

	l->map_end = l->map_pos;
}

/* The source's map of a local file: SEEK_DATA and SEEK_HOLE on our own
 * descriptor (map_fd), the last extent remembered, since sub-jobs ask in
 * ascending order.  A block device (no can_extents), a file that cannot be
 * reopened, or a file system without them (EINVAL, and those that answer
 * "all data" anyway cost only the calls) cannot tell. */
static int local_extents(struct kcopyd_client *kc, struct kc_file *f,
			 uint64_t pos, uint64_t len, uint64_t *run)
{
	struct kc_local *l = f->priv;
	int fd;
	off_t data, hole;

	(void)kc;
	fd = map_fd(f);
	if (fd < 0)
		return -EOPNOTSUPP;
	if (pos < l->map_pos || pos >= l->map_end) {
		data = lseek(fd, (off_t)pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO) {
			/* no data from pos to the end of the file */
			l->map_pos = pos;
			l->map_end = UINT64_MAX;
			l->map_data = false;
		} else if (data < 0) {
			return -errno;
		} else if ((uint64_t)data > pos) {
			l->map_pos = pos;
			l->map_end = (uint64_t)data;
			l->map_data = false;
		} else {
			hole = lseek(fd, (off_t)pos, SEEK_HOLE);
			if (hole < 0)
				return -errno;
			l->map_pos = pos;
			l->map_end = (uint64_t)hole > pos ? (uint64_t)hole
							  : UINT64_MAX;
			l->map_data = true;
		}
	}
	*run = l->map_end - pos < len ? l->map_end - pos : len;
	return l->map_data;
}

/* FALLOC_FL_PUNCH_HOLE: 1 done, 0 refused (and remembered), negative errno
 * a write error.  Drops kc->lock around the call. */
static int punch(struct kcopyd_client *kc, struct kc_file *f, uint64_t pos,
		 uint64_t len)
{
	struct kc_local *l = f->priv;
	int ret;

	pthread_mutex_unlock(&kc->lock);
	ret = fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			(off_t)pos, (off_t)len) < 0 ? -errno : 1;
	pthread_mutex_lock(&kc->lock);
	if (ret == -EOPNOTSUPP || ret == -ENOSYS || ret == -EINVAL) {
		f->can_punch = false;
		return 0;
	}
	if (ret == 1)
		l->punched = true;
	return ret;
}

/* BLKZEROOUT on a block device (not a punch: WRITE_ZEROES that may unmap;
 * on a loop device over ext4 punching 1 GiB took 0.4 s, BLKZEROOUT 1 ms),
 * FALLOC_FL_ZERO_RANGE on a file: 1 done, 0 refused (and remembered),
 * negative errno a write error.  Drops kc->lock around the call. */
static int offload(struct kcopyd_client *kc, struct kc_file *f, uint64_t pos,
		   uint64_t len)
{
	struct kc_local *l = f->priv;
	uint64_t range[2] = { pos, len };
	int ret;

	if (!f->can_zero)
		return 0;
	pthread_mutex_unlock(&kc->lock);
	if (l->is_blockdev)
		ret = ioctl(f->fd, BLKZEROOUT, range);
	else
		ret = fallocate(f->fd, FALLOC_FL_ZERO_RANGE, (off_t)range[0],
				(off_t)range[1]);
	ret = ret < 0 ? -errno : 1;
	pthread_mutex_lock(&kc->lock);
	if (ret == -EOPNOTSUPP || ret == -ENOTTY ||
	    (ret == -EINVAL && !l->is_blockdev)) {
		f->can_zero = false;
		l->zero_ok = false;
		return 0;
	}
	if (ret == 1)
		l->zero_ok = true;
	return ret;
}

static int local_zero(struct kcopyd_client *kc, struct kc_file *f,
		      uint64_t pos, uint64_t len, bool may_punch)
{
	int r = 0;

	forget_extent(f);
	if (may_punch && f->can_punch)
		r = punch(kc, f, pos, len);
	if (r == 0)
		r = offload(kc, f, pos, len);
	zero_sure_update(f);
	return r;
}

/* Zeros written at the end, where the file is shorter: at most a sector
 * of them, and only past its end, which reads as zeros already (a
 * stream's last zero run may be shorter than a sector). */
static int local_extend(struct kcopyd_client *kc, struct kc_file *f,
			uint64_t end)
{
	static const char zero_sector[KCOPYD_SECTOR_SIZE];
	struct stat st;
	size_t len;
	ssize_t n;
	int ret = 0;

	pthread_mutex_unlock(&kc->lock);
	if (fstat(f->fd, &st) < 0) {
		ret = -errno;
	} else if ((uint64_t)st.st_size < end) {
		len = end - (uint64_t)st.st_size < sizeof(zero_sector)
		      ? (size_t)(end - (uint64_t)st.st_size)
		      : sizeof(zero_sector);
		n = pwrite(f->fd, zero_sector, len, (off_t)(end - len));
		ret = n < 0 ? -errno : n < (ssize_t)len ? -EIO : 0;
	}
	pthread_mutex_lock(&kc->lock);
	return ret;
}

static void local_queue(struct kcopyd_client *kc, struct kc_iocb *io)
{
	if (io->op == KC_IO_WRITE)
		forget_extent(io->file);
	kc_io_queue(kc, io);
}

/* Local files and block devices: reads, writes and flushes through the
 * engine's I/O queue (io.c), which the engine submits and reaps (no
 * submit, no poll members: completions signal kc->wake_fd). */
static const struct kc_file_ops kc_local_ops = {
	.name = "local",
	.queue = local_queue,
	.extents = local_extents,
	.zero = local_zero,
	.extend = local_extend,
	.release = local_release,
	.describe = local_describe,
};
