/* region.c - what a descriptor refers to, and whether a region fits it.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Each descriptor a job names is probed once: block device or file, logical
 * block size, size, and whether direct I/O works.  Direct I/O uses a second
 * open file description (a reopen through /proc/self/fd with O_DIRECT), so
 * the caller's descriptor and its flags are never changed, and the caller's
 * descriptor remains for buffered I/O where direct I/O is refused or the
 * request is not aligned for it.
 *
 * A probed descriptor is remembered, with its reopen, while some region of
 * a job uses it: every region holds a reference from kc_region_check() to
 * kc_region_put(), and the last one frees the record and closes the reopen,
 * so that a long-lived client holds no descriptor (and no deleted file's
 * space) that no job needs.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kcopyd-private.h"

static bool hint_is_of(const struct kc_fd_hint *h, int fd,
		       const struct stat *st)
{
	return h->fd == fd && h->dev == st->st_dev && h->ino == st->st_ino &&
	       h->rdev == st->st_rdev;
}

static unsigned int hints_of(const struct kcopyd_client *kc, int fd,
			     const struct stat *st)
{
	size_t i;

	for (i = 0; i < kc->num_fd_hints; i++)
		if (hint_is_of(&kc->fd_hints[i], fd, st))
			return kc->fd_hints[i].hints;
	return 0;
}

/* What fd is: a stream (a pipe, a FIFO or a socket) or local storage. */
static int probe(int fd, const struct stat *st, struct kc_file *f)
{
	f->fd = fd;
	f->connections = 1;
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->rdev = st->st_rdev;
	if (S_ISFIFO(st->st_mode) || S_ISSOCK(st->st_mode))
		return kc_stream_open(f, fd, S_ISSOCK(st->st_mode));
	return kc_local_open(f, fd, st);
}

/* Find or probe fd, and take a reference on it (file_put() drops it);
 * *status gets fd's file status flags (F_GETFL) as they are now.  Called
 * with kc->lock held. */
static int file_get(struct kcopyd_client *kc, int fd, struct kc_file **result,
		    int *status)
{
	struct kc_file *f;
	struct stat st;
	int r, accmode;

	*status = fd < 0 ? -1 : fcntl(fd, F_GETFL);
	if (*status < 0 || fstat(fd, &st) < 0)
		return -EBADF;
	accmode = *status & O_ACCMODE;
	for (f = kc->files; f; f = f->next) {
		/* An export's stand-in descriptor: by number alone. */
		if (f->standin_fd && f->fd == fd) {
			f->refs++;
			*result = f;
			return 0;
		}
		if (f->fd == fd && f->dev == st.st_dev && f->ino == st.st_ino &&
		    f->rdev == st.st_rdev && f->accmode == accmode) {
			if (!f->fixed_size)
				f->size = (uint64_t)st.st_size;
			f->refs++;
			*result = f;
			return 0;
		}
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	r = probe(fd, &st, f);
	f->accmode = accmode;
	f->reads_zero = hints_of(kc, fd, &st) & KCOPYD_FD_READS_ZERO;
	if (r < 0) {
		free(f);
		return r;
	}
	f->refs = 1;
	f->next = kc->files;
	kc->files = f;
	*result = f;
	return 0;
}

/* Drop a reference; the last one forgets the file and closes the reopen.
 * Called with kc->lock held. */
static void file_put(struct kcopyd_client *kc, struct kc_file *f)
{
	struct kc_file **p;

	assert(f->refs > 0);
	if (--f->refs)
		return;
	for (p = &kc->files; *p != f; p = &(*p)->next)
		assert(*p);
	*p = f->next;
	if (f->ops->release)
		f->ops->release(f);
	free(f);
}

/* The largest byte offset the kernel can address is that of an off_t. */
#define MAX_ADDRESSABLE_SECTORS ((uint64_t)INT64_MAX >> SECTOR_SHIFT)

/* What f is, in words, for a region past its end. */
static const char *noun_of(const struct kc_file *f)
{
	return f->ops->describe ? f->ops->describe(f, NULL) : "file";
}

/* Why f (whose file status flags are status) cannot hold r as how says, in
 * kc_set_error()'s words, or 0 if it can. */
static int refuse(struct kcopyd_client *kc, const struct io_region *r,
		  unsigned int how, const struct kc_file *f, int status)
{
	bool is_dest = how & KCOPYD_REGION_DEST;
	bool may_extend = is_dest && (how & KCOPYD_REGION_MAY_EXTEND);
	uint64_t lbs_sectors = f->lbs >> SECTOR_SHIFT;
	size_t slot = (size_t)kc->slot_pages * KCOPYD_PAGE_SIZE;

	if (f->in_order && r->sector)
		return kc_set_error(-EINVAL, "a stream is %s where it stands: "
				    "no SECTOR", is_dest ? "written" : "read");
	if (is_dest && (status & O_APPEND))
		return kc_set_error(-EINVAL, "descriptor %d is open for "
				    "appending (O_APPEND): every write would "
				    "land at the end of the file", r->fd);
	/* a stand-in's access mode is its open's */
	if (is_dest && f->standin_fd && f->accmode == O_RDONLY)
		return kc_set_error(-EINVAL, "the NBD export was opened "
				    "read-only");
	if (f->lbs > slot)
		return kc_set_error(-EINVAL, "the logical block size of %u "
				    "bytes is larger than a sub-job (%zu "
				    "bytes)", f->lbs, slot);
	if (f->needs_whole_blocks &&
	    (r->sector % lbs_sectors || r->count % lbs_sectors))
		return kc_set_error(-EINVAL, "region (sector %" PRIu64 ", %"
				    PRIu64 " sectors) is not aligned to the "
				    "logical block size of %u bytes",
				    r->sector, r->count, f->lbs);
	if (!f->in_order && (f->fixed_size || !may_extend) &&
	    (r->sector + r->count) << SECTOR_SHIFT > f->size)
		return kc_set_error(-EINVAL, "region (sector %" PRIu64 ", %"
				    PRIu64 " sectors) ends past the end of "
				    "the %s (%" PRIu64 " sectors)", r->sector,
				    r->count, noun_of(f),
				    f->size >> SECTOR_SHIFT);
	return 0;
}

/* Validate r and resolve it.  Three outcomes: 0 and *out filled (if out is
 * not NULL), holding a reference on its file until kc_region_put(); -EBADF
 * for a descriptor that is not open; -EINVAL for a region that ends past
 * the largest offset the kernel can address, is not aligned to a block
 * device's logical block size, lies past the end of a block device or of a
 * source file, or has a logical block larger than a sub-job, and for a
 * destination opened with O_APPEND, where the kernel would write every
 * request at the end of the file whatever its offset.  A refusal says why
 * (kc_set_error).  how is KCOPYD_REGION_SOURCE or KCOPYD_REGION_DEST, with
 * KCOPYD_REGION_MAY_EXTEND for a destination that a copy may grow.  Called
 * with kc->lock held. */
int kc_region_check(struct kcopyd_client *kc, const struct io_region *r,
		    unsigned int how, struct kc_region *out)
{
	struct kc_file *f;
	int ret, status;

	if (r->count > MAX_ADDRESSABLE_SECTORS ||
	    r->sector > MAX_ADDRESSABLE_SECTORS - r->count)
		return kc_set_error(-EINVAL, "region (sector %" PRIu64 ", %"
				    PRIu64 " sectors) ends past the largest "
				    "offset the kernel can address (8 EiB)",
				    r->sector, r->count);
	ret = file_get(kc, r->fd, &f, &status);
	if (ret == -EBADF)
		return kc_set_error(ret, "descriptor %d is not open", r->fd);
	if (ret < 0)
		return kc_set_error(ret, "cannot probe descriptor %d: %s",
				    r->fd, strerror(-ret));
	ret = refuse(kc, r, how, f, status);
	if (ret < 0 || !out) {
		file_put(kc, f);
		return ret;
	}
	out->file = f;
	out->sector = r->sector;
	out->count = r->count;
	return 0;
}

/* kcopyd_copy's check of one region, alone. */
int kcopyd_check_region(struct kcopyd_client *kc, const struct io_region *r,
			unsigned int how)
{
	int ret;

	kc_clear_error();
	if (!kc || !r || (how & ~KCOPYD_REGION_MASK) ||
	    ((how & KCOPYD_REGION_MAY_EXTEND) && !(how & KCOPYD_REGION_DEST)))
		return kc_fail(-EINVAL);
	pthread_mutex_lock(&kc->lock);
	ret = kc_region_check(kc, r, how, NULL);
	pthread_mutex_unlock(&kc->lock);
	return kc_fail(ret);
}

/* Release what kc_region_check() resolved into r, if anything.  Called with
 * kc->lock held. */
void kc_region_put(struct kcopyd_client *kc, struct kc_region *r)
{
	if (r->file)
		file_put(kc, r->file);
	r->file = NULL;
}

/* Answer from the record of a file in use, else probe, answer and forget. */
int kcopyd_probe_fd(struct kcopyd_client *kc, int fd,
		    struct kcopyd_fd_info *user)
{
	struct kcopyd_fd_info in = { .struct_size = sizeof(in) };
	struct kcopyd_fd_info *info = &in;	/* the caller's is user */
	struct kc_file *f;
	int r, status;

	if (!kc || !user)
		return -EINVAL;
	pthread_mutex_lock(&kc->lock);
	r = file_get(kc, fd, &f, &status);
	if (r == 0) {
		info->logical_block_size = f->lbs;
		info->size = f->size;
		info->can_direct = f->can_direct;
		info->can_zero = f->can_zero;
		info->read_only = f->read_only;
		info->can_flush = f->can_flush;
		info->can_multi_conn = f->can_multi_conn;
		info->connections = f->connections;
		info->preferred_block_size = f->pref_block ? f->pref_block
							   : f->lbs;
		if (f->ops->describe)	/* the kind; info is zeroed */
			f->ops->describe(f, info);
		file_put(kc, f);
	}
	pthread_mutex_unlock(&kc->lock);
	/* Checked last: -EINVAL for a bad size, but the caller's errors
	 * (-EBADF...) first, as before. */
	return r < 0 ? r : kc_copy_sized(user, &in, sizeof(in));
}

/* Ask the file's map in bytes and answer in whole sectors: a hole that
 * ends inside a sector is data up to the sector's end. */
int kcopyd_map(struct kcopyd_client *kc, int fd, uint64_t sector,
	       uint64_t count, uint64_t *run)
{
	struct kc_file *f;
	uint64_t bytes;
	int r, status;

	if (!kc || !run || count == 0 || sector > UINT64_MAX >> SECTOR_SHIFT ||
	    count > (UINT64_MAX >> SECTOR_SHIFT) - sector)
		return -EINVAL;
	pthread_mutex_lock(&kc->lock);
	r = file_get(kc, fd, &f, &status);
	if (r == 0) {
		if (!f->ops->extents)
			r = -EOPNOTSUPP;
		else if ((sector + count) << SECTOR_SHIFT > f->size)
			r = -EINVAL;
		else
			r = f->ops->extents(kc, f, sector << SECTOR_SHIFT,
					    count << SECTOR_SHIFT, &bytes);
		if (r == 1) {
			*run = (bytes + KCOPYD_SECTOR_SIZE - 1) >> SECTOR_SHIFT;
		} else if (r == 0) {
			*run = bytes >> SECTOR_SHIFT;
			if (*run == 0) {
				*run = 1;
				r = 1;
			}
		}
		file_put(kc, f);
	}
	pthread_mutex_unlock(&kc->lock);
	return r;
}

int kcopyd_get_map(struct kcopyd_client *kc, int fd, uint64_t sector,
		   uint64_t count, struct kcopyd_extent **map, size_t *num)
{
	struct kcopyd_extent *ext = NULL, *e;
	size_t n = 0, cap = 0;
	uint64_t end = sector + count, run;
	int r = 0;

	if (!map || !num || count == 0 || end < sector)
		return -EINVAL;
	while (sector < end) {
		r = kcopyd_map(kc, fd, sector, end - sector, &run);
		if (r == -EOPNOTSUPP) {
			r = 1;		/* all of it is data */
			run = end - sector;
		}
		if (r < 0)
			break;
		if (n && ext[n - 1].kind == (r ? KCOPYD_EXTENT_DATA
					       : KCOPYD_EXTENT_ZERO)) {
			ext[n - 1].count += run;
		} else {
			if (n == cap) {
				cap = cap ? 2 * cap : 16;
				e = realloc(ext, cap * sizeof(*e));
				if (!e) {
					r = -ENOMEM;
					break;
				}
				ext = e;
			}
			ext[n++] = (struct kcopyd_extent){
				sector, run,
				r ? KCOPYD_EXTENT_DATA : KCOPYD_EXTENT_ZERO };
		}
		sector += run;
	}
	if (r < 0) {
		free(ext);
		return r;
	}
	*map = ext;
	*num = n;
	return 0;
}

/* Remember hints for fd's file (drop them when 0), and tell the record in
 * use for it, if there is one. */
int kcopyd_set_fd_hints(struct kcopyd_client *kc, int fd, unsigned int hints)
{
	struct kc_file *f;
	struct stat st;
	size_t i;
	int r = 0;

	if (!kc || (hints & ~KCOPYD_FD_HINTS_MASK))
		return -EINVAL;
	if (fd < 0 || fstat(fd, &st) < 0)
		return -EBADF;
	pthread_mutex_lock(&kc->lock);
	for (i = 0; i < kc->num_fd_hints; i++)
		if (hint_is_of(&kc->fd_hints[i], fd, &st))
			break;
	if (i == kc->num_fd_hints && hints) {
		struct kc_fd_hint *h = realloc(kc->fd_hints,
					       (i + 1) * sizeof(*h));

		if (!h) {
			r = -ENOMEM;
			goto out;
		}
		kc->fd_hints = h;
		kc->fd_hints[kc->num_fd_hints++] = (struct kc_fd_hint){
			.fd = fd, .dev = st.st_dev, .rdev = st.st_rdev,
			.ino = st.st_ino };
	}
	if (i < kc->num_fd_hints) {
		kc->fd_hints[i].hints = hints;
		if (!hints)
			kc->fd_hints[i] = kc->fd_hints[--kc->num_fd_hints];
	}
	for (f = kc->files; f; f = f->next)
		if (!f->standin_fd && f->fd == fd && f->dev == st.st_dev &&
		    f->ino == st.st_ino && f->rdev == st.st_rdev)
			f->reads_zero = hints & KCOPYD_FD_READS_ZERO;
out:
	pthread_mutex_unlock(&kc->lock);
	return r;
}
