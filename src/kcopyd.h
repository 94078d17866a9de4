/* kcopyd.h - the kernel's kcopyd copy engine in user space.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A client owns a memory budget of pages, allocated once at creation, and
 * an engine thread running io_uring (or libaio where io_uring is refused or
 * not built in).  A job copies one source region to up to
 * KCOPYD_MAX_DESTS destination regions: every sub-job is read once into a
 * buffer from the budget, then written from that same buffer to every
 * destination.  All functions returning int return 0 or a negative errno.
 * See kcopyd(3).
 */
#ifndef KCOPYD_H
#define KCOPYD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KCOPYD_SECTOR_SIZE	512u	/* a sector is always 512 bytes */
#define KCOPYD_PAGE_SIZE	4096u	/* the unit of the memory budget */
#define KCOPYD_MAX_DESTS	32u	/* one bit each of write_err */
#define KCOPYD_DEFAULT_SUBJOB_SIZE (512u * 1024u) /* kcopyd_subjob_size_kb */
/* The largest budget kcopyd_client_create() takes (16 GiB: past it, a typo
 * rather than a plan) and the largest sub-job kcopyd_set_subjob_size() takes
 * (64 MiB: the bisection of a failed read is sized for it). */
#define KCOPYD_MAX_PAGES	(1u << 22)
#define KCOPYD_MAX_SUBJOB_SIZE	(64u * 1024u * 1024u)

/* Structs that may grow: struct kcopyd_stats, struct kcopyd_fd_info and
 * struct kcopyd_io_error begin with struct_size, the size of the struct in
 * bytes as the side that filled it in knows it.  This is the convention of
 * perf_event_attr.size and sched_attr.size (sched_getattr(2) fills the
 * smaller of the caller's size and the kernel's, zeroes the rest and sets
 * size), of clone3(2) and openat2(2)'s extensible structs and of Win32's
 * cbSize: the function signatures stay as they are, and a field appended to
 * the end of a struct needs no new soname, since
 *  - a caller of kcopyd_get_stats() or kcopyd_probe_fd() sets struct_size
 *    to sizeof the struct it was compiled with; the library writes no byte
 *    past it, fills what fits of what it knows, zeroes the rest of a larger
 *    caller struct and sets struct_size to the bytes it filled (the smaller
 *    of the two sizes): a caller built against an older, smaller struct
 *    gets only its own fields, and a newer caller on an older library sees
 *    that the new fields are not there;
 *  - the library sets struct_size in the struct kcopyd_io_error it passes
 *    to the error hook, and the hook reads only the fields within it.
 * KCOPYD_HAS_FIELD() says whether a field is within struct_size.  Fields are
 * only ever appended, never moved or removed.  (Accessor functions,
 * libnbd's way, would do as well but cost a symbol per field, and a hook's
 * struct would need them too.) */
#define KCOPYD_HAS_FIELD(type, ptr, field) \
	((ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))
/* The smallest struct_size taken: that of the member itself.  Below it (0:
 * a caller that did not set it) is -EINVAL, and nothing is written. */
#define KCOPYD_SIZE_MIN		4u

/* A range of 512-byte sectors of an open file or block device. */
struct io_region {
	int fd;
	uint64_t sector;
	uint64_t count;
};

/* Job flags, bit masks. */
/* Run to the end whatever fails: unreadable sectors are isolated to the
 * logical block, written as zeros and recorded (kcopyd_get_bad_ranges);
 * failed destinations keep being written. */
#define KCOPYD_IGNORE_ERROR	(1u << 0)
/* Submit the writes of a job in ascending order, one sub-job at a time;
 * after an error the remaining writes are not issued. */
#define KCOPYD_WRITE_SEQ	(1u << 1)
/* User-space extension (duplicator mode): a write error on a destination
 * drops that destination from the job, and the copy goes on to the others.
 * A read error still stops the job unless KCOPYD_IGNORE_ERROR is set. */
#define KCOPYD_DROP_FAILED_DESTS (1u << 2)
/* User-space extension: never use O_DIRECT for this job's regions. */
#define KCOPYD_NO_DIRECT	(1u << 3)

/* After the job's last write, flush every destination still in it
 * (fdatasync; an NBD FLUSH) before the callback; a failed flush is a write
 * error of that destination, reported with is_flush set. */
#define KCOPYD_FLUSH		(1u << 4)
/* Call the data hook in source order, each sub-job after the one before it
 * (those read early wait for their turn, in the budget), so that a digest
 * of the whole region can be fed from the hook.  A sub-job's writes start
 * after its hook call, so they follow the same order; they need not end
 * in it (KCOPYD_WRITE_SEQ for that). */
#define KCOPYD_DATA_IN_ORDER	(1u << 5)

/* Sparse and zero-aware copying (kcopyd_copy(3)) is the default: the
 * source's holes, where the storage can tell (SEEK_DATA/SEEK_HOLE), are not
 * read, blocks read as all zeros are found (a stream source's too), and
 * each destination's zero ranges (but a stream's) are zeroed the cheapest
 * correct way its storage allows (punched holes in files, BLKZEROOUT, NBD
 * WRITE_ZEROES), or skipped where the destination already reads as zeros
 * (KCOPYD_FD_READS_ZERO).  The destination regions always end equal to the
 * source region.  These flags change how: */
/* Write the zero ranges as data: destinations end fully allocated (holes of
 * the source are still not read). */
#define KCOPYD_ALLOCATED	(1u << 6)
/* The caller promises that every destination region already reads as
 * zeros: zero ranges are skipped. */
#define KCOPYD_DEST_IS_ZERO	(1u << 7)
/* Do not look for zero blocks in the data read: only the source's holes
 * are zero ranges. */
#define KCOPYD_NO_ZERO_DETECT	(1u << 8)

/* With KCOPYD_DATA_IN_ORDER: the order holds across jobs too.  The job's
 * data reaches the hook only after all that of every job submitted before
 * it with this flag, so that a region copied as several jobs, submitted in
 * source order, is seen in order as a whole; its sub-jobs start only once
 * those jobs have started all of theirs. */
#define KCOPYD_DATA_ACROSS_JOBS	(1u << 9)

#define KCOPYD_FLAGS_MASK	((1u << 10) - 1)

/* Called once per job from the client's engine thread.  read_err is 0 or 1;
 * bit i of write_err is destination i.  Callbacks of one client never run
 * concurrently and may call kcopyd_copy() or kcopyd_zero(). */
typedef void (*kcopyd_notify_fn)(int read_err, unsigned int write_err,
				 void *context);

struct kcopyd_client;

/* Create a client with a budget of num_pages pages of 4096 bytes. */
int kcopyd_client_create(unsigned int num_pages, struct kcopyd_client **result);

/* Wait for every outstanding job, stop the engine and free the client.
 * From a callback of the client (its engine thread) the destruction is
 * deferred to when the last outstanding job's callback has returned. */
void kcopyd_client_destroy(struct kcopyd_client *kc);

/* Start a copy of *from to num_dests regions; fn is called on completion.
 * num_dests may be 0 (dests NULL): a read job, which reads the region
 * through the budget for the data hook (kcopyd_set_data_fn) and writes
 * nothing: a read-back for verification. */
int kcopyd_copy(struct kcopyd_client *kc, struct io_region *from,
		unsigned int num_dests, struct io_region *dests,
		unsigned int flags, kcopyd_notify_fn fn, void *context);

/* A map of a copy's source (kcopyd_copy_map, kcopyd_get_map): what each
 * range of sectors is to the copy.  Sectors are the source file's, as in
 * struct io_region. */
#define KCOPYD_EXTENT_DATA	0u	/* read and written */
#define KCOPYD_EXTENT_ZERO	1u	/* not read: reads as zeros, and the
					   destinations are zeroed there the
					   cheapest way they have (skipped
					   where they read as zeros) */
#define KCOPYD_EXTENT_SKIP	2u	/* not part of the copy: not read, and
					   the destinations keep what they
					   hold there */
struct kcopyd_extent {
	uint64_t sector;
	uint64_t count;
	unsigned int kind;		/* KCOPYD_EXTENT_* */
};

/* kcopyd_copy of the part of *from that map covers: num_extents extents
 * sorted by sector, not overlapping, of which those within *from count
 * (a caller may pass a whole file system's map to a job of part of it);
 * sectors of *from in no extent are KCOPYD_EXTENT_SKIP.  A data extent
 * is still read as the storage's own map allows (holes are not read)
 * and, unless KCOPYD_NO_ZERO_DETECT, its zero blocks are zeroed rather
 * than written.  The map is taken in whole 4096-byte blocks from the
 * start of the region: a block with any data sector is copied whole,
 * else one with any zero sector is zeroed whole.  The data hook sees the
 * sub-jobs that hold data or zero extents, with the skipped blocks in
 * them as zeros.  The library keeps its own copy of the map.  -EINVAL
 * for a stream source, a destination that is a stream where the map
 * skips sectors, or a map out of order. */
int kcopyd_copy_map(struct kcopyd_client *kc, struct io_region *from,
		    unsigned int num_dests, struct io_region *dests,
		    const struct kcopyd_extent *map, size_t num_extents,
		    unsigned int flags, kcopyd_notify_fn fn, void *context);

/* Start zeroing num_dests regions (the kernel's dm_kcopyd_zero). */
int kcopyd_zero(struct kcopyd_client *kc, unsigned int num_dests,
		struct io_region *dests, unsigned int flags,
		kcopyd_notify_fn fn, void *context);

/* Wait until every job submitted so far has completed and its callback has
 * returned.  -EDEADLK when called from a callback. */
int kcopyd_wait(struct kcopyd_client *kc);

/* Stop every job: no new sub-jobs are started, those in flight finish and
 * each job's callback fires as usual.  An NBD open (kcopyd_open_uri,
 * kcopyd_open_command) under way in another thread gives up within 100 ms
 * with -EINTR.  Safe from a signal-handling thread, not from a signal
 * handler. */
void kcopyd_client_stop(struct kcopyd_client *kc);

/* Sub-job size in bytes, a multiple of 4096; shrunk at use to fit the budget.
 * -EBUSY while jobs are outstanding. */
int kcopyd_set_subjob_size(struct kcopyd_client *kc, unsigned int bytes);

/* Throttle with the kernel's meaning: I/O may be in flight at most percent
 * of the time (1..100; 100 is unthrottled). */
int kcopyd_set_throttle(struct kcopyd_client *kc, unsigned int percent);

/* Limit the source bytes read (or, for zeroing, bytes zeroed) per second;
 * 0 removes the limit. */
int kcopyd_set_rate(struct kcopyd_client *kc, uint64_t bytes_per_second);

/* Progress counters; read at any time from any thread.  Set struct_size
 * to sizeof(struct kcopyd_stats) before the call (see KCOPYD_HAS_FIELD). */
struct kcopyd_stats {
	uint32_t struct_size;		/* bytes: set by the caller, then by
					   the library to what it filled */
	uint64_t bytes_read;		/* from sources */
	uint64_t bytes_written;		/* summed over destinations */
	uint64_t bytes_done;		/* source bytes written out to the
					   destinations (those still in the job) */
	uint64_t jobs_submitted;
	uint64_t jobs_completed;
	uint64_t read_errors;		/* failed read completions */
	uint64_t write_errors;		/* failed write completions */
	unsigned int pages_budget;
	unsigned int pages_in_use;
	unsigned int pages_peak;	/* the most ever in use at once */
	unsigned int subjob_size;	/* bytes, after fitting the budget */
	/* sparse and zero-aware copying */
	uint64_t bytes_zeroed;		/* zero ranges zeroed without writing
					   data (punched, BLKZEROOUT, FALLOC_FL_
					   ZERO_RANGE, WRITE_ZEROES), summed
					   over destinations */
	uint64_t bytes_skipped;		/* zero ranges left as they were: the
					   destination reads as zeros already
					   (KCOPYD_DEST_IS_ZERO,
					   KCOPYD_FD_READS_ZERO), summed over
					   destinations */
	uint64_t bytes_holes;		/* source bytes not read: holes of the
					   source's map */
	/* Which destination holds copies back: held_back[i] counts the
	 * sub-jobs of jobs with several destinations whose writes ended
	 * last on destination i (the index within its job), so that a slow
	 * one shows as the largest count. */
	uint64_t held_back[KCOPYD_MAX_DESTS];
	uint64_t bytes_unmapped;	/* source bytes a copy's map left out
					   (KCOPYD_EXTENT_SKIP): neither read
					   nor written */
};
int kcopyd_get_stats(struct kcopyd_client *kc, struct kcopyd_stats *stats);

/* The unreadable ranges recorded under KCOPYD_IGNORE_ERROR since the client
 * was created (fd is the source's), sorted and merged.  *ranges is
 * allocated with malloc and is the caller's to free; NULL when *count is 0. */
int kcopyd_get_bad_ranges(struct kcopyd_client *kc, struct io_region **ranges,
			  size_t *count);
/* The same, but only the ranges recorded since the last call of this one,
 * which it takes: a caller following a long copy's record pays for what
 * is new only (since libkcopyd 0.2.0).  Both fail with -ENOMEM, for good,
 * once a range could not be recorded for want of memory: the record is
 * incomplete. */
int kcopyd_take_bad_ranges(struct kcopyd_client *kc,
			   struct io_region **ranges, size_t *count);

/* Every failed I/O, as it completes, from the engine thread.  The library
 * sets struct_size; the hook reads only the fields within it
 * (KCOPYD_HAS_FIELD): a hook built against a newer kcopyd.h may run with
 * an older library. */
struct kcopyd_io_error {
	uint32_t struct_size;		/* bytes, sizeof the library's struct */
	int fd;			/* the caller's descriptor */
	int is_write;		/* 0: read of the source; 1: write or flush */
	unsigned int dest;	/* destination index when is_write */
	uint64_t sector;	/* first sector of the failed I/O */
	uint64_t count;
	int error;		/* negative errno */
	int is_flush;		/* 1: the KCOPYD_FLUSH of a destination */
	/* 1: the storage's connection was lost (ENOTCONN, ESHUTDOWN,
	 * ECONNRESET, ECONNABORTED, ENOLINK; EPIPE of a stream or an NBD
	 * export; ETIMEDOUT of an NBD export), not one request's failure:
	 * nothing more is read from a lost source (under KCOPYD_IGNORE_ERROR
	 * too: its sectors are not isolated, the job stops with read_err 1
	 * and what it did not read is neither written nor logged as bad), and
	 * nothing more is written to a lost destination (under
	 * KCOPYD_IGNORE_ERROR it is dropped from the job). */
	int is_lost;
};
typedef void (*kcopyd_error_fn)(const struct kcopyd_io_error *err,
				void *context);
void kcopyd_set_error_fn(struct kcopyd_client *kc, kcopyd_error_fn fn,
			 void *context);

/* Called from the engine thread with the data of every sub-job of a copy or
 * a read job once it has been read, before it is written; the buffer must
 * not be changed.  For checksums kept during a copy, compared on read-back.  What the hook may assume:
 * - sector is absolute on src_fd.  With S the sub-job size in sectors
 *   (kcopyd_get_stats() subjob_size / 512, fixed while jobs are
 *   outstanding) and from the job's source region, sector - from->sector
 *   is a multiple of S and count is S, but for the job's last sub-job,
 *   which ends the region and may be shorter;
 * - each such range is delivered at most once, and every one exactly once
 *   unless the job stops early (an error without KCOPYD_IGNORE_ERROR, all
 *   destinations dropped, kcopyd_client_stop()): then the ranges not
 *   delivered were never written, except by zeroing jobs, which never call
 *   the hook;
 * - under KCOPYD_IGNORE_ERROR the unreadable blocks are already zeroed;
 * - calls come in the order the reads complete, any order, even under
 *   KCOPYD_WRITE_SEQ, which orders the writes only; under
 *   KCOPYD_DATA_IN_ORDER in ascending order of sector, every range of the
 *   job once, up to where the job stopped;
 * - at most pages_budget * 4096 / subjob_size (at most 128) sub-jobs are
 *   read ahead: with a budget of one buffer, each sub-job's read is issued
 *   after the hook of the one before it has returned. */
typedef void (*kcopyd_data_fn)(int src_fd, uint64_t sector, uint64_t count,
			       const void *data, void *context);
void kcopyd_set_data_fn(struct kcopyd_client *kc, kcopyd_data_fn fn,
			void *context);

/* What the client found out about fd: logical block size, size in bytes,
 * whether it can use direct I/O, and whether zeroing is offloaded (1 until
 * an offload was tried and refused).  Probed once and remembered.  For an
 * NBD export (kcopyd_open_uri) also what the server offers.  Set
 * struct_size to sizeof(struct kcopyd_fd_info) before the call, as for
 * struct kcopyd_stats. */
struct kcopyd_fd_info {
	uint32_t struct_size;	/* bytes: set by the caller, then by the
				   library to what it filled */
	int is_blockdev;
	unsigned int logical_block_size;	/* bytes */
	uint64_t size;				/* bytes */
	int can_direct;
	int can_zero;		/* BLKZEROOUT/FALLOC_FL_ZERO_RANGE/WRITE_ZEROES */
	int is_remote;		/* an NBD export */
	int read_only;		/* the export is read-only */
	int can_flush;		/* flushes are meaningful (NBD FLUSH) */
	int can_multi_conn;	/* the server allows several connections */
	unsigned int connections;	/* connections open to it */
	unsigned int preferred_block_size;	/* bytes, the server's */
	int is_stream;		/* a pipe or socket: read or written in order */
};
int kcopyd_probe_fd(struct kcopyd_client *kc, int fd,
		    struct kcopyd_fd_info *info);

/* The storage's map of fd, as far as it can tell without reading: 1 if
 * the sectors from sector on are data, 0 if they read as zeros (a hole),
 * with *run set to how many sectors from sector are alike (1..count);
 * -EOPNOTSUPP where the storage cannot tell.  SEEK_DATA/SEEK_HOLE on a
 * file, NBD block status (base:allocation) on an export; copies skip
 * reading the holes it reports. */
int kcopyd_map(struct kcopyd_client *kc, int fd, uint64_t sector,
	       uint64_t count, uint64_t *run);
/* The same map of count sectors from sector as extents (KCOPYD_EXTENT_DATA
 * and KCOPYD_EXTENT_ZERO), the representation kcopyd_copy_map takes: in
 * *map (malloc'd, the caller frees it) and *num.  One data extent for
 * the whole range where the storage cannot tell. */
int kcopyd_get_map(struct kcopyd_client *kc, int fd, uint64_t sector,
		   uint64_t count, struct kcopyd_extent **map, size_t *num);

/* Read len bytes at byte offset of fd through the client's backend for
 * it (a file, a block device, an NBD export from kcopyd_open_uri; not a
 * stream), and wait for them: for the metadata a caller needs before it
 * copies (a file system's allocation map).  The bytes must lie within
 * the storage.  0, or -EIO if the storage failed (the error hook sees
 * the error first), -EDEADLK from a callback of the client. */
int kcopyd_read(struct kcopyd_client *kc, int fd, void *buf, size_t len,
		uint64_t offset);

/* Hints about a local descriptor, for the jobs submitted after the call
 * until hints are set again (0 clears them).  Kept by the identity of what
 * fd refers to, as the probe is. */
/* fd reads as zeros wherever the caller's jobs will zero it: a file the
 * caller has just created or truncated.  Copies to it skip their zero
 * ranges (a file is still extended to the end of the region).  A promise:
 * the library does not check it. */
#define KCOPYD_FD_READS_ZERO	(1u << 0)
#define KCOPYD_FD_HINTS_MASK	((1u << 1) - 1)
int kcopyd_set_fd_hints(struct kcopyd_client *kc, int fd, unsigned int hints);

/* Open an NBD export for this client: uri is nbd://, nbds:// (TLS),
 * nbd+unix:// (or nbds+unix://, nbd+vsock://).  flags is O_RDONLY or
 * O_RDWR.  *fd receives a descriptor that stands for the export in this
 * client's io_regions and in kcopyd_probe_fd; it carries no data itself.
 * The connection is made and probed before this returns; with the server's
 * multi-conn, further connections are opened for parallel requests.
 * The URI is trusted as a path is: its tls-psk-file and tls-certificates
 * parameters may name local files.
 * -EPROTONOSUPPORT when the library was built without libnbd; -EINVAL for
 * a URI libnbd does not take; -EROFS for a read-only export opened O_RDWR;
 * -EINTR when kcopyd_client_stop is called meanwhile from another thread;
 * otherwise the error of the connection (-ECONNREFUSED, -ENOENT...). */
int kcopyd_open_uri(struct kcopyd_client *kc, const char *uri, int flags,
		    int *fd);

/* Start an NBD server and open its export for this client, as
 * kcopyd_open_uri does a URI: argv (NULL-terminated, argv[0] looked up in
 * PATH) is run with a private Unix socket passed by systemd socket
 * activation (LISTEN_FDS, as libnbd's nbd_connect_systemd_socket_activation:
 * qemu-nbd, nbdkit), and the export it serves is the one opened.  With the
 * server's multi-conn, further connections go to the same socket.  The
 * server is stopped when the export is closed (kcopyd_close_uri, or
 * kcopyd_client_destroy): it exits once its connections have gone, and the
 * close waits for it.  A server that fails to start, or to answer within
 * kcopyd_set_timeout's limit, or interrupted by kcopyd_client_stop
 * (-EINTR), is killed with its process group (the server runs in a group
 * of its own: a terminal's Ctrl-C does not reach it); the error says why,
 * and kcopyd_get_error() gives libnbd's message.  -EPROTONOSUPPORT when the
 * library was built without libnbd; -EINVAL for an empty argv; -EROFS as
 * for kcopyd_open_uri.  Since libkcopyd 0.3.0 (KCOPYD_0.3). */
int kcopyd_open_command(struct kcopyd_client *kc, char *const argv[],
			int flags, int *fd);

/* Disconnect and release an export opened with kcopyd_open_uri or
 * kcopyd_open_command; -EBUSY while a job uses it, -EBADF if fd is not one. */
int kcopyd_close_uri(struct kcopyd_client *kc, int fd);

/* A request to an NBD export outstanding longer than this fails, and its
 * connection is dropped (the export's other requests fail with it): a dead
 * or stalled server is an error, never a hang.  0 waits forever; the
 * default is 60 seconds. */
int kcopyd_set_timeout(struct kcopyd_client *kc, unsigned int seconds);

/* Why the last call of this thread that failed with a reason failed: a
 * one-line message without a trailing newline (for a refused region, such
 * as "region (sector 1, 8 sectors) is not aligned to the logical block size
 * of 4096 bytes"), or NULL if none has failed on this thread.  Thread-local,
 * as libnbd's nbd_get_error(): set by kcopyd_copy, kcopyd_zero and
 * kcopyd_check_region when they fail, and by kcopyd_open_uri and
 * kcopyd_open_command when the connection fails (libnbd's message), left
 * as it is when they succeed;
 * valid until the thread's next failed call. */
const char *kcopyd_get_error(void);
/* The error (a positive errno value) of that call, 0 if none. */
int kcopyd_get_errno(void);

/* Check a region as kcopyd_copy() and kcopyd_zero() would (the same code),
 * before anything is created or written: 0, or -EBADF (fd not open) or
 * -EINVAL with the reason in kcopyd_get_error().  how is one of: */
#define KCOPYD_REGION_SOURCE	0u	/* read from */
#define KCOPYD_REGION_DEST	(1u << 0)	/* written to */
/* ... or'ed to KCOPYD_REGION_DEST: a destination region may end past the
 * end of a file that grows (as in kcopyd_copy); without it the region must
 * lie inside the storage as it is now. */
#define KCOPYD_REGION_MAY_EXTEND	(1u << 1)
#define KCOPYD_REGION_MASK	((1u << 2) - 1)
int kcopyd_check_region(struct kcopyd_client *kc, const struct io_region *r,
			unsigned int how);

#ifdef __cplusplus
}
#endif
#endif /* KCOPYD_H */
