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

/* What t's descriptor is: the library's probe (size, logical block, direct
 * I/O), and what only the tool needs (identity, zoned). */
static int probe_open(struct kcopy *k, struct target *t)
{
	struct kcopyd_fd_info info = { .struct_size = sizeof(info) };
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
	t->info = info;
	if (info.is_blockdev) {
		char why[160];

		t->rdev = st.st_rdev;
		r = storage_of_blockdev(st.st_rdev, &t->id, why, sizeof(why));
		if (r < 0)
			return setup_error(k, t, r, "cannot tell what storage "
					   "the device is: %s: %s", why,
					   strerror(-r));
		t->zoned = storage_is_zoned(st.st_rdev);
	} else {
		t->id = (struct storage_id){ true, st.st_dev, st.st_ino, 0 };
	}
	return 0;
}

/* An NBD export, connected and probed through the library: its URI, or
 * the server of a [ CMD ARGS... ] region, started by the library. */
static int open_remote(struct kcopy *k, struct target *t, int flags)
{
	struct kcopyd_fd_info info = { .struct_size = sizeof(info) };
	const char *what = t->cmd ? "NBD servers started by kcopy" : "NBD URIs";
	struct signals_watch w;
	int r = signals_watch_start(k, &w);

	if (r < 0)
		return setup_error(k, t, r, "cannot watch for signals: %s",
				   strerror(-r));
	/* A SIGTERM while a server or the network is slow to answer stops
	 * the open (-EINTR); one after it opened stops kcopy too, before
	 * anything is created. */
	r = t->cmd ? kcopyd_open_command(k->kc, t->cmd, flags, &t->fd)
		   : kcopyd_open_uri(k->kc, t->spec.path, flags, &t->fd);
	signals_watch_end(&w);
	if (r >= 0 && k->signal) {
		/* The descriptor is the library's to close. */
		t->info.is_remote = true;
		t->exists = true;
		r = -EINTR;
	}
	if (r == -EINTR && k->signal)
		return setup_error(k, t, r, "%s: interrupted by a signal (%s)",
				   t->cmd ? "the NBD server did not start"
				   : "cannot open the NBD export",
				   strsignal(k->signal));
	if (r == -EPROTONOSUPPORT)
		return setup_error(k, t, r, "%s need libnbd, and this "
				   "kcopy was built without it", what);
	if (r == -ELIBACC)
		return setup_error(k, t, r, "%s need libnbd "
				   "(libnbd.so.0), which is not installed",
				   what);
	if (r == -EROFS)
		return setup_error(k, t, r, "the NBD export is read-only");
	if (r < 0 && t->cmd)
		return setup_error(k, t, r, "the NBD server did not start: %s",
				   kcopyd_get_errno() == -r && kcopyd_get_error()
				   ? kcopyd_get_error() : strerror(-r));
	if (r < 0)
		return setup_error(k, t, r, "cannot open the NBD export: %s",
				   strerror(-r));
	/* Before the probe: the descriptor is the library's to close. */
	t->info.is_remote = true;
	t->exists = true;
	r = kcopyd_probe_fd(k->kc, t->fd, &info);
	if (r < 0)
		return setup_error(k, t, r, "cannot probe the NBD export: %s",
				   strerror(-r));
	t->info = info;
	t->info.is_remote = true;
	t->id = (struct storage_id){ false, 0, 0, 0 };
	return 0;
}

/* The largest byte offset the kernel can address is that of an off_t. */
#define MAX_ADDRESSABLE_SECTORS ((uint64_t)INT64_MAX / KC_SECTOR_SIZE)

/* A file not created yet: no descriptor for the library to check against,
 * only the kernel's limit (the library's words). */
static int check_addressable(struct kcopy *k, struct target *t)
{
	if (t->count > MAX_ADDRESSABLE_SECTORS ||
	    t->sector > MAX_ADDRESSABLE_SECTORS - t->count)
		return setup_error(k, t, -EFBIG, "region (sector %" PRIu64 ", %"
				   PRIu64 " sectors) ends past the largest "
				   "offset the kernel can address (8 EiB)",
				   t->sector, t->count);
	return 0;
}

/* The region as the library will take it (kcopyd_check_region: the same
 * checks as the copy's; how is KCOPYD_REGION_SOURCE or _DEST, _MAY_EXTEND
 * for a destination file that grows), with its reason if refused.  Where
 * the storage cannot grow, kcopy copies whole sectors only: a region into
 * the last, partial sector of a file or an export is past its end. */
static int check_region(struct kcopy *k, struct target *t, unsigned int how)
{
	struct io_region region = { t->fd, t->sector, t->count };
	uint64_t sectors = t->info.size / KC_SECTOR_SIZE;
	int r = kcopyd_check_region(k->kc, &region, how);

	if (r < 0)
		return setup_error(k, t, r, "%s", kcopyd_get_error() ?
				   kcopyd_get_error() : strerror(-r));
	if (t->info.size % KC_SECTOR_SIZE && !t->info.is_stream &&
	    !(how & KCOPYD_REGION_MAY_EXTEND) && t->sector + t->count > sectors)
		return setup_error(k, t, -EINVAL, "region (sector %" PRIu64
				   ", %" PRIu64 " sectors) ends past the end "
				   "of the %s (%" PRIu64 " sectors)",
				   t->sector, t->count,
				   t->info.is_remote ? "NBD export" :
				   t->info.is_blockdev ? "device" : "file",
				   sectors);
	return 0;
}

/* How a destination is checked: a file may grow, a device or an export
 * not. */
static unsigned int dest_how(const struct target *t)
{
	return KCOPYD_REGION_DEST |
	       (t->info.is_blockdev || t->info.is_remote
		? 0 : KCOPYD_REGION_MAY_EXTEND);
}

/* Is t "-", standard input or output? */
static bool names_std(const struct target *t)
{
	return !strcmp(t->spec.path, "-");
}

/* t's descriptor, a pipe or a socket (what names it in messages), as a
 * stream: probed by the library, read or written in order. */
static int as_stream(struct kcopy *k, struct target *t, const char *what)
{
	int r;

	t->info.struct_size = sizeof(t->info);
	r = kcopyd_probe_fd(k->kc, t->fd, &t->info);
	if (r < 0)
		return setup_error(k, t, r, "%s: %s", what, strerror(-r));
	/* What the tool decided, whatever the probe says. */
	t->info.is_stream = true;
	t->info.logical_block_size = KC_SECTOR_SIZE;
	t->info.size = 0;
	t->id = (struct storage_id){ false, 0, 0, 0 };
	/* Read or written where it stands: no SECTOR (the library's). */
	t->sector = t->spec.sector;
	return 0;
}

/* Standard input (fd 0) or output (fd 1) as a region: a pipe or a socket is
 * a stream, read or written in order from where it stands; a regular file
 * or a block device is used as it is. */
static int open_std(struct kcopy *k, struct target *t, int fd)
{
	const char *which = fd ? "output" : "input";
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return setup_error(k, t, -errno, "standard %s: %s", which,
				   strerror(errno));
	t->fd = fd;
	t->is_std = true;
	t->exists = true;
	/* O_APPEND would put every write at the end whatever its offset. */
	if (fd && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) &&
	    (fcntl(fd, F_GETFL) & O_APPEND))
		return setup_error(k, t, -EINVAL, "standard output is open "
				   "for appending (>>), and kcopy writes at "
				   "offsets: open it with 1<> to write over "
				   "the file from its start");
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return probe_open(k, t);
	if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode))
		return setup_error(k, t, -EINVAL, "standard %s is not a pipe, "
				   "a socket or a file (a terminal?)", which);
	r = as_stream(k, t, fd ? "standard output" : "standard input");
	return r < 0 ? r : check_region(k, t, fd ? KCOPYD_REGION_DEST
						 : KCOPYD_REGION_SOURCE);
}

/* A region without COUNT: from SECTOR to the end of the device or file. */
static int count_to_end(struct kcopy *k, struct target *t)
{
	if (t->sector >= t->info.size / KC_SECTOR_SIZE)
		return setup_error(k, t, -EINVAL, "sector %" PRIu64 " is at or "
				   "past the end (%" PRIu64 " sectors)",
				   t->sector, t->info.size / KC_SECTOR_SIZE);
	t->count = t->info.size / KC_SECTOR_SIZE - t->sector;
	return 0;
}

/* Lock a file's region against other processes, as O_EXCL guards block
 * devices: a write lock on a destination's, a read lock on the source's.
 * Open file description locks, by byte range: regions of one file that do
 * not overlap (checked) do not conflict within the run, and closing the
 * library's reopen of the file does not drop them. */
static int lock_region(struct kcopy *k, struct target *t, bool write)
{
	struct flock fl = {
		.l_type = write ? F_WRLCK : F_RDLCK,
		.l_whence = SEEK_SET,
		.l_start = (off_t)(t->sector * KC_SECTOR_SIZE),
		.l_len = (off_t)(t->count * KC_SECTOR_SIZE),
	};
	int fd = t->fd;

	/* A compressed file: all of it (l_len 0), where the feed reads. */
	if (t->fed) {
		fd = k->feed.in_fd;
		fl.l_start = fl.l_len = 0;
	}
	if (t->info.is_blockdev || t->info.is_remote ||
	    (t->info.is_stream && !t->fed) || k->opt.force ||
	    fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return setup_error(k, t, -EBUSY, "region is in use by another "
				   "process (%s locked; --force overrides)",
				   write ? "read or write" : "write");
	return setup_error(k, t, -errno, "cannot lock the region: %s",
			   strerror(errno));
}

/* A path that does not exist, taken whole because its tail after the last
 * colon is not a number: say so, rather than "no such file". */
static int no_such_path(struct kcopy *k, struct target *t, const char *what)
{
	const char *tail = kc_spec_numeric_tail(t->arg);

	if (tail)
		return setup_error(k, t, -EINVAL, "%s, and '%s' is not a "
				   "SECTOR or COUNT (sectors, or a size with "
				   "K, M, G, T, P or E, KiB or KB...)", what,
				   tail);
	return setup_error(k, t, -ENOENT, "%s", what);
}

/* The source's region: to the end without a COUNT. */
static int source_region(struct kcopy *k, struct target *t)
{
	int r;

	t->sector = t->spec.sector;
	if (t->spec.has_count) {
		t->count = t->spec.count;
	} else {
		if (t->info.size % KC_SECTOR_SIZE)
			return setup_error(k, t, -EINVAL, "size %" PRIu64
					   " bytes is not a multiple of 512: "
					   "give a COUNT", t->info.size);
		r = count_to_end(k, t);
		if (r < 0)
			return r;
	}
	return check_region(k, t, KCOPYD_REGION_SOURCE);
}

/* The source's descriptor, a regular file (file) or a stream: if it is
 * compressed (kcopy(1), "Compressed images"), the feed decodes it and the
 * copy reads the feed's pipe, a stream, in its place.  0 either way, or
 * -errno after a setup error. */
static int source_feed(struct kcopy *k, struct target *t, bool file)
{
	struct storage_id id;
	char why[256];
	int r;

	/* --bmap on a stream: through the feed, compressed or not, for its
	 * filter to apply the bmap (a file's is set once it is known to be
	 * compressed: a raw one is read by the bmap's ranges). */
	if (!file && k->opt.bmap)
		flash_filter(k);
	/* A stream's first bytes are waited for: the signals are answered
	 * meanwhile, and those that stop the run stop it. */
	do
		r = feed_open(&k->feed, t->fd, !t->is_std, file, k->sig_fd,
			      k->opt.decompress, k->opt.decompress_format,
			      why, sizeof(why));
	while (r == -EINTR && !signals_poll(k));
	if (r < 0)
		return setup_error(k, t, r, "%s", why);
	if (r == 0)
		return 0;
	/* The feed closes the input, and its pipe (kcopy_free). */
	t->fd = k->feed.pipe_r;
	id = t->id;
	r = as_stream(k, t, "the image's pipe");
	/* The file's identity stays, for the overlap checks and the lock. */
	t->fed = file;
	if (file)
		t->id = id;
	/* Without a COUNT, to the end of the stream (count 0). */
	t->count = t->spec.has_count ? t->spec.count : 0;
	if (r == 0 && t->count && k->feed.size_known &&
	    (t->sector + t->count) * KC_SECTOR_SIZE > k->feed.image_size)
		return setup_error(k, t, -EINVAL, "region (sector %" PRIu64
				   ", %" PRIu64 " sectors) ends past the end "
				   "of the %s image (%" PRIu64 " bytes, as its "
				   "container says)", t->sector, t->count,
				   feed_format(&k->feed), k->feed.image_size);
	return r < 0 ? r : check_region(k, t, KCOPYD_REGION_SOURCE);
}

/* The source opened: what the feed makes of a regular file or a stream
 * (standard input), else its region. */
static int source_opened(struct kcopy *k, struct target *t)
{
	int r = t->info.is_blockdev ? 0
		: source_feed(k, t, !t->info.is_stream);

	if (r < 0 || k->feed.dec.ops)
		return r;
	if (!t->info.is_stream)
		return source_region(k, t);
	/* Without a COUNT, to the end of the stream (count 0). */
	t->count = t->spec.has_count ? t->spec.count : 0;
	return 0;
}

int target_open_source(struct kcopy *k, struct target *t)
{
	int r, fl;

	if (t->cmd || kc_uri_prefix(t->spec.path)) {
		r = open_remote(k, t, O_RDONLY);
		return r < 0 ? r : source_region(k, t);
	}
	if (names_std(t)) {
		r = open_std(k, t, STDIN_FILENO);
		return r < 0 ? r : source_opened(k, t);
	}
	/* O_NONBLOCK: a FIFO must not hang the open; it is refused below. */
	t->fd = open(t->spec.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (t->fd < 0 && errno == ENOENT) {
		char what[PATH_MAX + 64];

		snprintf(what, sizeof(what), "cannot open '%s': %s",
			 t->spec.path, strerror(ENOENT));
		return no_such_path(k, t, what);
	}
	if (t->fd < 0)
		return setup_error(k, t, -errno, "cannot open '%s': %s",
				   t->spec.path, strerror(errno));
	t->exists = true;
	r = probe_open(k, t);
	if (r < 0)
		return r;
	fl = fcntl(t->fd, F_GETFL);
	if (fl < 0 || fcntl(t->fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return setup_error(k, t, -errno, "%s", strerror(errno));
	return source_opened(k, t);
}

/* A block device named by an earlier destination too is already open
 * exclusively: share that descriptor, since a second O_EXCL open fails. */
static int reuse_exclusive(struct kcopy *k, struct target *t, dev_t rdev)
{
	struct target *d;

	for (d = k->dests; d < t; d++)
		if (d->info.is_blockdev && d->rdev == rdev)
			return fcntl(d->fd, F_DUPFD_CLOEXEC, 0);
	return -1;
}

/* An image the feed delivers, whose size its container tells (the bytes
 * the source's COUNT takes of it, if less) or else its bmap does (read
 * before the destinations), fits in the destination region (of t->count
 * sectors; 0: no limit). */
static int image_fits(struct kcopy *k, struct target *t)
{
	bool by_bmap = !k->feed.size_known && k->flash.fed;
	uint64_t need = by_bmap ? k->flash.map.image_size
				: k->feed.image_size;

	if (k->src.count && k->src.count * KC_SECTOR_SIZE < need)
		need = k->src.count * KC_SECTOR_SIZE;
	if ((!k->feed.size_known && !by_bmap) || !t->count ||
	    t->count >= (need + KC_SECTOR_SIZE - 1) / KC_SECTOR_SIZE)
		return 0;
	return setup_error(k, t, -EINVAL, "region of %" PRIu64 " sectors is "
			   "smaller than the %s image (%" PRIu64 " bytes, %"
			   PRIu64 " sectors%s)", t->count,
			   feed_format(&k->feed), need,
			   (need + KC_SECTOR_SIZE - 1) / KC_SECTOR_SIZE,
			   by_bmap ? ", as its bmap says" : "");
}

/* The size of a destination region: its COUNT, else the source's (want),
 * else (--zero, want 0) to the end; it must equal the source's.  From a
 * stream it is a capacity: its COUNT, else a device's or an export's end,
 * else no limit (0) for files and streams. */
static int dest_count(struct kcopy *k, struct target *t, uint64_t want)
{
	int r = 0;

	if (k->src.info.is_stream) {
		if (t->spec.has_count)
			t->count = t->spec.count;
		else if (t->info.is_blockdev || t->info.is_remote)
			r = count_to_end(k, t);
		else
			t->count = 0;
		return r < 0 ? r : image_fits(k, t);
	}
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
	char *dir, *parent, link[PATH_MAX];
	struct stat st;
	ssize_t n;
	int r = 0;

	n = readlink(t->spec.path, link, sizeof(link) - 1);
	if (n >= 0) {
		link[n] = 0;
		return setup_error(k, t, -ENOENT, "a symbolic link to '%s', "
				   "which does not exist (kcopy does not "
				   "create files through symbolic links)",
				   link);
	}
	if (kc_spec_numeric_tail(t->arg))
		return no_such_path(k, t, "no such file");
	dir = strdup(t->spec.path);
	if (!dir)
		return setup_error(k, t, -ENOMEM, "%s", strerror(ENOMEM));
	parent = dirname(dir);	/* may point into dir, or to "." */
	if (access(parent, W_OK | X_OK) < 0 || stat(parent, &st) < 0)
		r = setup_error(k, t, -errno, "cannot create '%s': %s",
				t->spec.path, strerror(errno));
	else if (storage_is_devtmpfs(st.st_dev) == 1)
		/* A typo or an unplugged disk: an image file in devtmpfs
		 * would fill memory, not a disk. */
		r = setup_error(k, t, -ENODEV, "no such device (kcopy does "
				"not create files on devtmpfs, /dev)");
	free(dir);
	if (r < 0)
		return r;
	if (k->opt.zero && !t->spec.has_count)
		return setup_error(k, t, -EINVAL, "does not exist: give a "
				   "COUNT");
	t->info.logical_block_size = KC_SECTOR_SIZE;
	r = dest_count(k, t, want);
	return r < 0 ? r : check_addressable(k, t);
}

/* An existing destination file: not the backing file of a mounted loop
 * device (its file system would be corrupted), unless --force. */
static int check_file_in_use(struct kcopy *k, struct target *t,
			     const struct stat *st)
{
	dev_t ours[KCOPYD_MAX_DESTS];
	char loop[PATH_MAX];
	size_t n = 0;
	struct target *d;
	int r;

	if (k->opt.force)
		return 0;
	/* The block devices opened before, with O_EXCL: ours, not busy. */
	for (d = k->dests; d < t; d++)
		if (d->info.is_blockdev)
			ours[n++] = d->rdev;
	r = storage_busy_loop_over(st->st_dev, st->st_ino, ours, n, loop,
				   sizeof(loop));
	if (r < 0)
		return setup_error(k, t, r, "cannot list the loop devices: %s",
				   strerror(-r));
	if (r)
		return setup_error(k, t, -EBUSY, "is the backing file of %s, "
				   "which is mounted or in use (--force "
				   "overrides)", loop);
	return 0;
}

static int check_read_only(struct kcopy *k, struct target *t)
{
	int ro = 0;

	if (ioctl(t->fd, BLKROGET, &ro) == 0 && ro)
		return setup_error(k, t, -EROFS, "device is read-only");
	return 0;
}

/* Open an existing destination, or check that a missing one can be made.
 * The count to match is the source region's (with --zero, none). */
int target_prepare_dest(struct kcopy *k, struct target *t)
{
	uint64_t want = k->opt.zero ? 0 : k->src.count;
	struct stat st;
	int r;

	t->sector = t->spec.sector;
	if (t->cmd || kc_uri_prefix(t->spec.path)) {
		r = open_remote(k, t, O_RDWR);
		if (r == 0)
			r = dest_count(k, t, want);
		return r < 0 ? r : check_region(k, t, dest_how(t));
	}
	if (names_std(t)) {
		r = open_std(k, t, STDOUT_FILENO);
		if (r == 0 && t->info.is_stream)
			t->count = t->spec.has_count ? t->spec.count
				   : k->src.info.is_stream ? 0 : want;
		else if (r == 0)
			r = dest_count(k, t, want);
		if (r == 0 && t->info.is_stream && want && t->count != want)
			return setup_error(k, t, -EINVAL, "COUNT %" PRIu64
					   " differs from the source region's %"
					   PRIu64 " sectors", t->count, want);
		return r < 0 || t->info.is_stream ? r
		       : check_region(k, t, dest_how(t));
	}
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
		r = check_file_in_use(k, t, &st);
		if (r < 0)
			return r;
		t->fd = open(t->spec.path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
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
	if (r == 0 && t->info.is_blockdev)
		r = check_read_only(k, t);
	if (r == 0)
		r = dest_count(k, t, want);
	if (r == 0)
		r = check_region(k, t, dest_how(t));
	return r;
}

/* Same storage?  Files not yet created are told apart by their path, NBD
 * exports by their URI. */
static bool same_storage(const struct target *a, const struct target *b)
{
	if (a->info.is_stream || b->info.is_stream)
		return false;	/* in order: no place to overlap */
	if (a->info.is_remote || b->info.is_remote)
		return a->info.is_remote && b->info.is_remote &&
		       !strcmp(a->spec.path, b->spec.path);
	if (!a->exists || !b->exists)
		return !a->exists && !b->exists &&
		       storage_same_entry(a->spec.path, b->spec.path);
	return a->id.is_file == b->id.is_file && a->id.dev == b->id.dev &&
	       a->id.ino == b->id.ino;
}

/* A file this run created reads as zeros: the copy need not zero it. */
static int reads_zero(struct kcopy *k, struct target *t)
{
	int r = kcopyd_set_fd_hints(k->kc, t->fd, KCOPYD_FD_READS_ZERO);

	if (r < 0)
		return setup_error(k, t, r, "cannot set up '%s': %s",
				   t->spec.path, strerror(-r));
	return 0;
}

static int create_dest(struct kcopy *k, struct target *t)
{
	struct kcopyd_fd_info info = { .struct_size = sizeof(info) };
	struct stat st;
	struct target *d;
	int r;

	/* Another region of a file an earlier destination just created. */
	for (d = k->dests; d < t; d++) {
		if (d->created && storage_same_entry(d->spec.path, t->spec.path)) {
			t->fd = fcntl(d->fd, F_DUPFD_CLOEXEC, 0);
			if (t->fd < 0)
				return setup_error(k, t, -errno, "%s",
						   strerror(errno));
			t->exists = true;
			t->id = d->id;
			t->info.can_direct = d->info.can_direct;
			return reads_zero(k, t);
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
	t->info.can_direct = info.can_direct;
	r = reads_zero(k, t);
	return r < 0 ? r : lock_region(k, t, true);
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

/* Is destination d on the compressed file src the feed decodes (any of
 * it: the image is not where its bytes are)? */
static bool on_fed_file(const struct target *src, const struct target *d)
{
	return src->fed && d->exists && !d->info.is_stream &&
	       !d->info.is_remote && d->id.is_file &&
	       d->id.dev == src->id.dev && d->id.ino == src->id.ino;
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
		if (!k->opt.zero && on_fed_file(&k->src, d))
			return setup_error(k, d, -EINVAL, "is on the file of "
					   "the compressed source");
		for (j = 0; j < i; j++)
			if (overlap(&k->dests[j], d))
				return setup_error(k, d, -EINVAL, "overlaps "
						   "destination %u on the same "
						   "storage", j + 1);
	}
	return 0;
}

/* After the overlap checks (an overlap within the run is named as such,
 * not as a lock conflict): lock the source's and the existing destinations'
 * regions against other runs. */
int target_lock_regions(struct kcopy *k)
{
	unsigned int i;
	int r = k->opt.zero ? 0 : lock_region(k, &k->src, false);

	for (i = 0; r == 0 && i < k->num_dests; i++)
		if (k->dests[i].exists)
			r = lock_region(k, &k->dests[i], true);
	return r;
}

const char *target_side_name(int side, char *buf, size_t len)
{
	if (side == 0)
		return "the source";
	snprintf(buf, len, "destination %d", side);
	return buf;
}

int target_side_of(const struct kcopy *k, const char *path,
		   const struct stat *st)
{
	unsigned int i;

	for (i = 0; i <= k->num_dests; i++) {
		const struct target *t = i ? &k->dests[i - 1] : &k->src;
		struct stat ts;

		if (!i && k->opt.zero)
			continue;
		if (st && ((t->fd >= 0 && !t->info.is_remote &&
			    fstat(t->fd, &ts) == 0 &&
			    ts.st_dev == st->st_dev && ts.st_ino == st->st_ino) ||
			   (t->id.is_file && t->id.dev == st->st_dev &&
			    t->id.ino == st->st_ino)))
			return (int)i;
		if (!st && path && !t->exists && !t->info.is_remote &&
		    !t->is_std && storage_same_entry(t->spec.path, path))
			return (int)i;
	}
	return -1;
}
