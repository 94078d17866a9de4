/* kcopyd-private.h - libkcopyd's internal structures; not installed.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Threads and locking.  A client has one engine thread (engine.c) that
 * owns the kernel's I/O queue (io.c: io_uring or libaio), the sub-job
 * slots and their iocbs.
 * kc->lock guards everything else: the job lists, every job's state, the
 * file table, the bad range log and the statistics.  The engine holds
 * kc->lock while it works and drops it only to wait (poll, and the wait
 * for an NBD export's map reply: no thread holds it while it waits on the
 * network), to submit or reap iocbs, to issue a synchronous zeroing call
 * or a synchronous flush (where the kernel refuses an asynchronous one),
 * and to run a job's callback or a hook.  Other threads never touch a job the engine has
 * taken: they add jobs to kc->new_jobs and ask for a stop through
 * kc->stop_requested.  Callers' threads take kc->lock briefly to add jobs or
 * read counters, then poke the engine through kc->wake_fd, the eventfd on
 * which completions are signalled too.  The one exception to the engine's
 * ownership of the I/O queue: while no job is outstanding (the engine
 * then has no iocb queued, in flight or being reaped), a caller's thread
 * holding kc->lock may replace the queue with one of another size.
 *
 * Which fields of struct kcopyd_client each file writes (all under
 * kc->lock, but the I/O queue's, which is the engine's as said above):
 *   new_jobs, new_tail       client.c adds; schedule.c takes them
 *   jobs (the order)         schedule.c (round robin); job.c takes
 *                            finished jobs off it
 *   a job's sub-job state    subjob.c (issued, seqs, parked lists,
 *                            in_flight, stopped, eof, read_err,
 *                            write_err, dropped); sparse.c (zero_pend,
 *                            zero_pos, zero_len, zero_in_flight,
 *                            zero_known); job.c
 *                            (flush_io, flush_started, flush_pending)
 *   isolating, isolate_wait  isolate.c
 *   bad, num_bad, cap_bad, bad_lost   isolate.c adds; client.c takes
 *   throttle, thr_*, rate*   throttle.c accounts; client.c sets
 *   iocbs_reserved           subjob.c (a sub-job's), job.c (flushes)
 *   slots, free_slots        pages.c, through subjob.c
 *   files and their caps     region.c and the backends; a capability is
 *                            switched off by its backend, but
 *                            can_extents, by sparse.c when extents fails
 *   stats                    the backends and io.c (bytes moved),
 *                            subjob.c and sparse.c (bytes zeroed,
 *                            skipped, done), isolate.c (errors)
 *   backends, num_backends   backend.c (a backend's client-wide
 *                            part: its own, guarded by lock too);
 *                            zero_*  zero.c
 *   pfd, polled, poll_cap    engine.c;  kick  engine.c clears, the
 *                            backends and io.c set
 *
 * Layers, each calling only the ones below it:
 *   client.c   the public calls; starts and stops the engine
 *   engine.c   the engine thread's loop; polls and submits the open
 *              files' backends through their ops tables
 *   schedule.c, subjob.c, sparse.c, isolate.c, throttle.c, job.c
 *              jobs, sub-jobs and their state machine (layered: below);
 *              they reach storage only through a file's ops table and
 *              capabilities
 *   region.c   the file table: descriptors probed (by local.c or
 *              stream.c), regions checked; pages.c the page budget
 *   backends (struct kc_file_ops), called through the table and never by
 *   name but to open: local.c (files and block devices), nbd.c (NBD
 *   exports), stream.c (pipes and sockets)
 *   backend.c  the backends' client-wide parts (struct kc_backend): made
 *              at a backend's first use, destroyed with the client
 *              without naming any
 *   io.c       local requests: queue, submit, reap, then iocb->end_io
 *   io-uring.c, io-aio.c   the kernel interfaces io.c submits through
 */
#ifndef KCOPYD_PRIVATE_H
#define KCOPYD_PRIVATE_H

#include <errno.h>
#include <libaio.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "kcopyd.h"

#define SECTOR_SHIFT 9
#define KC_MAX_SECTORS (UINT64_MAX >> SECTOR_SHIFT)

/* Sub-jobs in flight at most, whatever the budget.  Measured on loop devices
 * over tmpfs and on virtio disks: past 64 sub-jobs of 512 KiB (32 MiB in
 * flight) throughput is flat, and 128 leaves headroom for small sub-jobs. */
#define KC_MAX_SLOTS 128

/* Backends a client may use at once (there are three). */
#define KC_MAX_BACKENDS 8

/* iocbs each sub-job owns: one per destination for the writes; the read and
 * the re-reads of an isolating read (one at a time) use the first, since a
 * sub-job never reads and writes at once.  A sub-job of a job with n
 * destinations therefore has at most n iocbs outstanding. */
#define KC_IOCBS_PER_SLOT KCOPYD_MAX_DESTS

/* The I/O queue is sized for every slot of the budget in flight at once with
 * KC_RING_MIN_DESTS destinations each, the fan-outs the tool's performance
 * targets are set for (one to four), and never for fewer than
 * KCOPYD_MAX_DESTS iocbs, so that one sub-job of any job fits.  A job with
 * more destinations grows the ring if it is submitted while the client is
 * idle, else it runs fewer sub-jobs at once (kc->iocbs_reserved).  With the
 * default budget of the tool (16 slots) a client on libaio takes 64 events
 * of the system-wide fs.aio-max-nr (65536 by default); the most it ever
 * takes is 128 slots * 32 destinations = 4096. */
#define KC_RING_MIN_DESTS 4u

/* Bisection of a failed read pushes two halves for each range it pops, so
 * the stack never holds more than log2(sectors of a sub-job) + 1 ranges:
 * 19 for the largest sub-job (64 MiB = 2^17 sectors). */
#define KC_REREAD_DEPTH 64

/* Zero detection looks at the data read in blocks of this many bytes from
 * the start of each sub-job, and a destination's zero ranges are runs of
 * whole blocks (but for a sub-job's shorter last one).  The file systems'
 * block: a smaller hole frees nothing.  Measured on one core (x86-64 VM,
 * 256 MiB of zeros, scanned four times): 5.9 GB/s in blocks of 512 bytes,
 * 5.6 GB/s in 4 KiB, 4.4 GB/s in 64 KiB, 3.6 GB/s in 512 KiB; data stops
 * the scan at its first non-zero byte.  So 4 KiB costs nothing over larger
 * blocks and finds every hole a file can keep.  Punching costs per call, not
 * per byte (ext4: 185 us for a 4 KiB range, 365 us for 64 KiB or 512 KiB),
 * which is why adjacent zero blocks go out as one range. */
#define KC_ZERO_BLOCK 4096u
/* Zeroing threads (zero.c), started with the first zero range.  The call
 * waits for the device, so more threads keep more of it in flight: a 1 GiB
 * image with 10% data to 4 loop devices over tmpfs (BLKZEROOUT), 3 runs
 * each: zeroing on the engine thread 0.72-0.79 s, 1 thread 0.69-0.73 s,
 * 2 threads 0.56-0.61 s, 4 threads 0.50-0.56 s. */
#ifndef KC_ZERO_THREADS
#define KC_ZERO_THREADS 4
#endif
#define KC_ZERO_MAP_WORDS \
	((KCOPYD_MAX_SUBJOB_SIZE / KC_ZERO_BLOCK + 63) / 64)

static inline uint64_t kc_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Milliseconds for poll() of us microseconds, rounded up and saturated at
 * INT_MAX (24.8 days: a longer timeout is not an int). */
static inline int kc_ms_of_us(uint64_t us)
{
	uint64_t ms = us / 1000 + 1;

	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* What the client knows of one descriptor it was given.  Probed when a job
 * or kcopyd_probe_fd() names it and no record is in use, and freed (its
 * O_DIRECT reopen closed) when the last reference is dropped: each region of
 * a job holds one until the job's callback has returned, so jobs may point
 * to it.  Keyed by fd and the identity of what it refers to, so that a
 * number reused by the caller for another file is probed afresh. */
struct kc_iocb;
struct kc_file;

/* A backend: what one kind of storage does for the job code, which asks
 * through this table and a file's capabilities (struct kc_file) and never
 * about the kind of storage.  local.c carries local files and block devices
 * (through io.c's queue), nbd.c NBD exports (libnbd), stream.c pipes and
 * sockets.  Members are called on the engine thread with kc->lock held
 * unless their contract says otherwise; a NULL member is a capability the
 * storage does not have, as its contract says.  A file's kind is its ops
 * pointer and its private data (kc_file.priv), nothing else; what a
 * backend keeps for the whole client is its struct kc_backend's part.
 *
 * What adding a fourth backend touches:
 *   - a new file (src/<name>.c) with its struct kc_file_ops and, if it
 *     keeps anything client-wide, its struct kc_backend, both static to
 *     it; its per-request data fits kc_iocb.own;
 *   - the one entry where backends are found: for storage reached
 *     through a descriptor, region.c's probe, with the opener declared
 *     below beside kc_stream_open and kc_local_open; for storage named
 *     otherwise, a public open call of its own (kcopyd.h and
 *     libkcopyd.sym, as kcopyd_open_uri in nbd.c);
 *   - Makefile.am (src_libkcopyd_la_SOURCES).
 * Nothing else: the engine, the job code and client.c reach a backend
 * through these tables only, and destroy its client-wide part with the
 * client without naming it. */
struct kc_file_ops {
	const char *name;
	/* Read, write or flush: start io, a read or write of io->len -
	 * io->done bytes at io->pos + io->done from or into io->buf, or a
	 * flush (KC_IO_FLUSH: the data written so far made stable).  Its end
	 * comes back through io->end_io on the engine thread, with 0 once
	 * every byte was transferred (a read may end short at the end of an
	 * in_order file: io->done tells) or a negative errno, and never
	 * before this returns.  An is_zero write may be carried out without
	 * reading io->buf (NBD WRITE_ZEROES) where f->can_zero; if the
	 * storage refuses it, it is written from io->buf and can_zero is
	 * switched off. */
	void (*queue)(struct kcopyd_client *kc, struct kc_iocb *io);
	/* The job using f stopped: end what is queued on f without waiting
	 * for the storage (a stream's stalled pipe).  NULL where requests
	 * always end by themselves. */
	void (*cancel)(struct kcopyd_client *kc, struct kc_file *f);
	/* The source's map: what the len (> 0) bytes at pos of f hold, as far
	 * as the storage can tell without reading them.  Returns 1 if the
	 * bytes at pos are data, 0 if they are a hole (they read as zeros),
	 * and sets *run to how many bytes from pos are alike (1..len); a
	 * negative errno if the storage cannot tell, after which the caller
	 * switches f->can_extents off, takes every byte of f for data and
	 * does not ask again.  Synchronous and cheap (the answer may be
	 * remembered in f until f is written or zeroed); asked only while
	 * f->can_extents, of a source as its sub-jobs read it, and of a
	 * destination when a job begins (kc_job_dest_holes). */
	int (*extents)(struct kcopyd_client *kc, struct kc_file *f,
		       uint64_t pos, uint64_t len, uint64_t *run);
	/* Zeroing without data, synchronous: make the len bytes at pos of f
	 * read as zeros, the cheapest way the storage has: with punch, a
	 * hole where it can keep one (FALLOC_FL_PUNCH_HOLE), else
	 * BLKZEROOUT or FALLOC_FL_ZERO_RANGE.  May run on a zeroing thread
	 * (zero.c); drops kc->lock around its system calls.  Returns 1
	 * done, 0 not done (the storage refused: the caller writes zeros;
	 * the refusal switches off f->can_punch or f->can_zero, so that the
	 * next call does not try again), or a negative errno (a write
	 * error).  Sets f->zero_sure once a way has worked.  NULL: the
	 * storage zeroes through queue (an is_zero write) where
	 * f->can_zero, else only by writing zeros. */
	int (*zero)(struct kcopyd_client *kc, struct kc_file *f,
		    uint64_t pos, uint64_t len, bool punch);
	/* Make f at least end bytes long without changing what it holds (a
	 * hole punched or skipped at the end of a region did not extend it);
	 * only where f->can_extend.  Drops kc->lock around its system
	 * calls.  0 or a negative errno. */
	int (*extend)(struct kcopyd_client *kc, struct kc_file *f,
		      uint64_t end);
	/* Is err, a request's failure on f, the loss of f's connection (beside
	 * the losses of any storage: kc_err_lost)?  NULL: never. */
	bool (*lost)(int err);
	/* Descriptors f may need in the engine's poll set at once (its
	 * connections).  NULL: none; its requests end through the engine's
	 * I/O queue (io.c), which signals kc->wake_fd. */
	unsigned int (*poll_fds)(const struct kc_file *f);
	/* For all the client's files of this backend: fill pfds (at most
	 * max) with the descriptors that have requests to wait for, and
	 * polled[i] with what poll_done needs to know of pfds[i]; lower
	 * *timeout_ms to the next deadline (0 if a request can end at
	 * once) and drop connections whose oldest request is overdue.
	 * Returns how many.  Called once a round of the engine per backend
	 * with open files, with poll_done after the poll. */
	unsigned int (*poll_prepare)(struct kcopyd_client *kc,
				     struct pollfd *pfds, void **polled,
				     unsigned int max, int *timeout_ms);
	/* What poll found for the n descriptors prepared: carry the
	 * requests on; they end (io->end_io) from inside. */
	void (*poll_done)(struct kcopyd_client *kc, const struct pollfd *pfds,
			  void *const *polled, unsigned int n);
	/* Issue what queue took since the last call: once a round of the
	 * engine, before it sleeps.  Sets kc->kick if requests ended or
	 * were queued meanwhile (the engine must not sleep on them).
	 * NULL: queue issues at once, or the engine's I/O queue does. */
	void (*submit)(struct kcopyd_client *kc);
	/* The last reference to f is gone: free the backend's private data
	 * (f->priv) and close what it opened.  NULL: nothing to free. */
	void (*release)(struct kc_file *f);
	/* What f is: its kind in kcopyd_probe_fd's answer (is_blockdev,
	 * is_remote, is_stream; all 0 before), where info is not NULL, and
	 * returned in words for the reasons of refusals ("file", "device",
	 * "NBD export", "stream").  NULL: a file. */
	const char *(*describe)(const struct kc_file *f,
				struct kcopyd_fd_info *info);
};

/* A backend's client-wide part: state it keeps for all of a client's
 * files of its kind (nbd.c: libnbd loaded, the requests queued and ended,
 * the timeout), made at the backend's first use (kc_backend_use, e.g. its
 * public open call) and destroyed with the client (kc_backends_destroy),
 * which names no backend.  A backend with nothing client-wide has none. */
struct kc_backend {
	const char *name;
	/* Make the part, into *state: 0 or a negative errno.  Called with
	 * kc->lock held, on any thread. */
	int (*client_create)(struct kcopyd_client *kc, void **state);
	/* The client is being freed: no job is outstanding, the engine has
	 * stopped (or is ending, if destroyed from a callback), kc->lock is
	 * not held.  Close the files of this backend the caller left open
	 * (taking them off kc->files) and free state. */
	void (*client_destroy)(struct kcopyd_client *kc, void *state);
};

/* One request's end as the kernel reported it: bytes transferred (a flush:
 * 0) or a negative errno. */
struct kc_io_done {
	struct kc_iocb *io;
	long res;
};

struct kc_ring_params {
	unsigned int events;
	int wake_fd;
	char *pool;
	size_t pool_len;
};

/* A kernel interface that carries io.c's requests: io-uring.c (io_uring)
 * and io-aio.c (libaio).  A queue is the interface's own state, used by one
 * thread at a time (see the lock model above); its members are called
 * without kc->lock, and know nothing of jobs or of io.c. */
struct kc_ring_ops {
	const char *name;		/* "io_uring", "libaio" */
	/* Make a queue for up to p->events requests outstanding at once,
	 * each completion signalled on the eventfd p->wake_fd; the buffers
	 * of most requests lie in p->pool (the page budget), which the
	 * queue may register with the kernel once.  0 or a negative errno. */
	int (*setup)(const struct kc_ring_params *p, void **queue);
	/* Free the queue; nothing may be in flight. */
	void (*destroy)(void *queue);
	/* Start the n requests of q: io->fd, io->op, and io->buf, io->pos
	 * and io->len past io->done.  Returns how many were taken, the first
	 * ones of q (0..n; the rest may be offered again once completions
	 * have been reaped), or a negative errno with which q[0] alone was
	 * refused.  n > 0.  A request taken is started, if not by this call
	 * then by the next (io_uring keeps what the kernel could not take
	 * yet in its ring). */
	int (*submit)(void *queue, struct kc_iocb **q, unsigned int n);
	/* Wait up to timeout_ms (0: not at all) for min_nr completions, then
	 * store the ones there are, up to max, in done.  Returns how many
	 * (0 on timeout or a signal), or a negative errno if the queue
	 * cannot give its completions (the caller then destroys it, which
	 * waits for what the kernel holds, and fails what was in flight). */
	int (*reap)(void *queue, unsigned int min_nr, int timeout_ms,
		    struct kc_io_done *done, unsigned int max);
};

extern const struct kc_ring_ops kc_ring_aio;	/* io-aio.c */
#ifdef HAVE_LIBURING
extern const struct kc_ring_ops kc_ring_uring;	/* io-uring.c */
#endif

/* local.c's own of a local file (kc_file.priv).  io.c, the local
 * backend's I/O engine, reads direct_fd and dio_align to choose the
 * descriptor of each request. */
struct kc_local {
	int direct_fd;		/* our O_DIRECT reopen of the file, or -1 */
	unsigned int dio_align;	/* offset/length alignment of direct_fd */
	int map_fd;		/* our reopen for SEEK_DATA/SEEK_HOLE where
				   there is no direct_fd, or -1 */
	uint64_t map_pos, map_end;	/* the last extent found, */
	bool map_data;			/* and whether it is data */
	bool is_blockdev;
	bool punched;		/* a hole was punched */
	bool zero_ok;		/* BLKZEROOUT or ZERO_RANGE worked */
};

struct kc_file {
	struct kc_file *next;
	/* The kind of storage, encoded here only: its backend, and the
	 * backend's own data (struct kc_local, a stream's queue, an
	 * export's connections) */
	const struct kc_file_ops *ops;
	void *priv;
	unsigned int refs;	/* regions of live jobs, and probes under way */
	int fd;			/* the caller's, used for buffered I/O; an
				   export's stand-in number */
	dev_t dev, rdev;
	ino_t ino;
	int accmode;		/* O_RDONLY, O_WRONLY or O_RDWR */
	unsigned int lbs;	/* logical block size (512 for files) */
	uint64_t size;		/* bytes, at the last lookup */
	bool reads_zero;	/* KCOPYD_FD_READS_ZERO, from kc->fd_hints */
	/* Capabilities, set by the backend when the file is opened or
	 * probed and remembered; those marked "off" are switched off at the
	 * first refusal (EOPNOTSUPP and the like) and not tried again. */
	bool needs_whole_blocks; /* written in whole logical blocks (a block
				   device, an export): a stream's last
				   partial block is merged */
	bool fixed_size;	/* cannot grow: a region fits within size */
	bool standin_fd;	/* fd is a number the library made (an
				   export's eventfd), found by number alone;
				   accmode is its open's */
	bool in_order;		/* read or written in order only (a stream):
				   no offsets, no re-reads, a short read is
				   its end; written, it takes zero ranges
				   as data (read, its zero blocks are found
				   as any source's) */
	bool can_extend;	/* ops->extend grows it (a regular file) */
	bool can_zero;		/* off: zeroing without data may work */
	bool can_punch;		/* off: ops->zero may leave holes */
	bool zero_sure;		/* ops->zero has worked (or is sure to), so
				   that its failure is an error, not a
				   reason to write zeros */
	bool can_extents;	/* off: ops->extents may tell the map */
	bool can_direct;	/* an O_DIRECT path (direct_fd) */
	bool can_flush;
	bool can_multi_conn;
	/* remembered for kcopyd_probe_fd */
	bool read_only;
	unsigned int connections;
	unsigned int pref_block;	/* bytes */
};

/* A region of a job; holds a reference on file (kc_region_check). */
struct kc_region {
	struct kc_file *file;
	uint64_t sector;
	uint64_t count;
};

struct kc_job {
	struct kc_job *next;		/* in kc->new_jobs or kc->jobs */
	unsigned int flags;
	bool is_zero;			/* kcopyd_zero: no source */
	struct kc_region src;		/* file NULL when is_zero */
	unsigned int num_dests;		/* 0: a read job, for the data hook */
	struct kc_region dests[KCOPYD_MAX_DESTS];

	uint64_t issued;		/* sectors handed to sub-jobs */
	uint64_t submit_seq;		/* order of submission among the
					   client's jobs */
	uint64_t next_seq;		/* sequence number of the next sub-job */
	uint64_t write_seq;		/* WRITE_SEQ: the sub-job whose turn it is */
	struct kc_subjob *parked;	/* WRITE_SEQ: read, waiting for the turn */
	uint64_t hook_seq;		/* DATA_IN_ORDER: the sub-job whose turn
					   at the data hook it is */
	struct kc_subjob *hook_parked;	/* DATA_IN_ORDER: read, waiting for
					   that turn (sorted by seq) */
	unsigned int in_flight;		/* sub-jobs not yet finished */
	bool stopped;			/* start no new sub-jobs */
	/* An in_order source (a stream): src.count 0 reads to its end; a
	 * read that came back short found it, and no sub-job starts after
	 * it.  Destination counts are then capacities (0: no limit, for
	 * storage that is not fixed_size). */
	bool src_in_order;
	bool eof;
	/* From a stream source: the bytes of the sub-jobs written so far,
	 * from the regions' start, to the last one's end of data.  Once the
	 * job is over, with no read error and not stopped, each destination
	 * that can grow and did not fail is extended to it, before the flush
	 * (kc_jobs_extend, sparse.c): its last zero run may have been skipped
	 * or punched.  extended: that is done. */
	uint64_t src_bytes;
	bool extended;
	/* From a stream source, a destination's logical block is more than
	 * half a slot: the merge of its last block may need a slot lent
	 * (subjob.c, tail_area), so that fewer of its sub-jobs than there are
	 * slots may hold one (kc->tail_own). */
	bool tail_borrow;

	int read_err;
	unsigned int write_err;
	unsigned int dropped;		/* DROP_FAILED_DESTS: not written any more */

	/* Zero ranges of destination i not yet zeroed (bit i of zero_pend):
	 * bytes [zero_pos[i], zero_pos[i] + zero_len[i]) of its file, the
	 * adjacent zero runs of sub-jobs gathered into one call (sparse.c,
	 * zero_gather); done before the job's flush and callback. */
	unsigned int zero_pend;
	uint64_t zero_pos[KCOPYD_MAX_DESTS];
	uint64_t zero_len[KCOPYD_MAX_DESTS];
	unsigned int zero_in_flight;	/* with the zeroing thread */
	/* Destination i's region read as zeros, when the job began, from its
	 * start up to byte zero_known[i] of its file (a hole its backend's
	 * map told of: kc_job_dest_holes); its zero ranges below need
	 * nothing, as the job writes no data where it zeroes. */
	uint64_t zero_known[KCOPYD_MAX_DESTS];

	/* KCOPYD_FLUSH: one request per destination (flush_io[i]: destination
	 * i, allocated at submission), queued once the sub-jobs are over */
	struct kc_iocb *flush_io;
	bool flush_started;
	unsigned int flush_pending;	/* flushes not yet ended */

	/* kcopyd_copy_map: the map's data and zero extents within the
	 * region, in sectors from its start, sorted and apart; the sectors
	 * between them are skipped (jobmap.c).  map NULL: all is data. */
	struct kc_extent *map;
	size_t map_num;
	size_t map_next;		/* the first extent ending after issued */

	/* kcopyd_read: the caller's buffer, which the data takes instead of
	 * the data hook, and where in the job's bytes it starts. */
	char *read_buf;
	uint64_t read_pos;
	size_t read_len;

	kcopyd_notify_fn fn;
	void *context;
};

/* An extent of a job's map (struct kc_job.map): [start, end) in sectors
 * from the region's start; zero: KCOPYD_EXTENT_ZERO, else data. */
struct kc_extent {
	uint64_t start, end;
	bool zero;
};

enum kc_subjob_state {
	KC_SJ_FREE,
	KC_SJ_READING,
	KC_SJ_REREADING,
	KC_SJ_PARKED,
	KC_SJ_WRITING,
	KC_SJ_LENT,		/* only its buffer, to another sub-job's merge */
};

struct kc_iocb;

/* Called by io.c with kc->lock held when the whole request of io has been
 * transferred (err 0) or has failed (a negative errno; -EIO for a transfer
 * that stopped short, as a read at end of file does).  io.c has already
 * finished short transfers and counted the bytes in the statistics. */
typedef void (*kc_end_io_fn)(struct kcopyd_client *kc, struct kc_iocb *io,
			     int err);

/* What a request does.  A flush (fdatasync of the file) has no pos, len or
 * buf; it ends with err 0 once the file's data is stable. */
enum kc_io_op { KC_IO_READ, KC_IO_WRITE, KC_IO_FLUSH };

/* One request.  Its owner fills every field but cb and done, then hands it
 * to kc_io_queue(); io.c touches nothing else of the owner's. */
struct kc_iocb {
	union {
		struct iocb cb;		/* io-aio.c's */
		/* A backend's own while it holds the request (nbd.c: the
		 * connection it went to, commands outstanding, the first
		 * one's error). */
		struct {
			void *ptr;
			unsigned int count;
			int err;
		} own;
	};
	struct kc_iocb *qnext;		/* in its backend's queue (nbd.c,
					   stream.c; io.c: the requests in
					   flight): the backend's own */
	struct kc_iocb **qprev;		/* io.c: where it is linked from */
	kc_end_io_fn end_io;
	void *private;			/* the owner's */
	struct kc_file *file;
	enum kc_io_op op;
	bool is_zero;			/* KC_IO_WRITE of zeros the storage may
					   do without data (NBD WRITE_ZEROES);
					   buf holds zeros for a fallback */
	bool may_direct;		/* direct I/O allowed if aligned */
	uint64_t pos;			/* byte offset of the whole request */
	size_t len;			/* bytes of the whole request */
	size_t done;			/* bytes transferred so far (io.c) */
	char *buf;
	int fd;				/* io.c's: the descriptor it goes
					   through (file->fd or its O_DIRECT
					   reopen) */
};

/* Steps of the merge of a stream's last block (subjob.c, dest_tail). */
enum kc_tail_step {
	KC_TAIL_NONE,		/* no merge under way */
	KC_TAIL_READ,		/* the destination's block being read */
	KC_TAIL_WRITE,		/* the merged block being written */
};

struct kc_subjob {
	struct kc_subjob *next;		/* free list, a job's parked list or
					   kc->isolate_wait */
	struct kc_job *job;
	char *buf;			/* a slot of the page budget */
	enum kc_subjob_state state;
	uint64_t offset;		/* sectors from the start of the regions */
	uint64_t count;			/* sectors */
	uint64_t bytes;			/* of data: count * 512, but for the end
					   of a stream */
	uint64_t seq;
	unsigned int pending;		/* iocbs outstanding */
	unsigned int zeroed;		/* destinations zeroed by offload */
	unsigned int zero_requests;	/* destinations zeroed by a request
					   (is_zero) of their storage */
	bool written;			/* some destination took the data */
	/* The end of a stream on storage written in whole blocks (a block
	 * device, an export): each such destination's last block is read,
	 * merged with the stream's last bytes and written back (subjob.c,
	 * dest_tail), one destination after another once every write of the
	 * sub-job has ended, through tail_buf: a block of the budget, in this
	 * slot or in tail_slot, lent (tail_area).  Nothing is allocated. */
	unsigned int tail_todo;		/* destinations still to merge */
	unsigned int tail_dest;		/* the one being merged */
	unsigned char tail_step;	/* enum kc_tail_step, of tail_dest */
	char *tail_buf;			/* NULL: no block yet */
	struct kc_subjob *tail_slot;	/* the slot lent, or NULL */
	/* isolating re-read, KCOPYD_IGNORE_ERROR: ranges of sectors still to
	 * read, a stack, bisected on failure down to one logical block */
	unsigned int block_sectors;
	unsigned int depth;
	struct kc_range { uint64_t offset, count; } todo[KC_REREAD_DEPTH];
	struct kc_iocb io[KC_IOCBS_PER_SLOT];	/* io[i]: destination i */
	/* Sparse and zero-aware copying.  The bytes of the sub-job before
	 * span_lo and from span_hi on are holes of the source, not read (and
	 * zeroed in buf where needed: holes_zeroed); zero_map has a bit per KC_ZERO_BLOCK of buf, set
	 * where the block is a hole of the source or was read as zeros; none
	 * under KCOPYD_ALLOCATED.  Each
	 * destination's writes go through the blocks in turn, one request at
	 * a time on its iocb: next_block[i] is where destination i is. */
	uint64_t span_lo, span_hi;
	bool holes_zeroed;	/* buf outside the span holds zeros; else it
				   is zeroed only where it is used: for the
				   data hook, under KCOPYD_ALLOCATED, and
				   for a zero run written as data */
	unsigned int num_blocks;
	unsigned int next_block[KCOPYD_MAX_DESTS];
	/* Bytes of the sub-job destination i takes through its runs: all of
	 * them, but from a stream source the data that came, to what fits,
	 * short of a last block merged (subjob.c, write_len). */
	uint64_t write_end[KCOPYD_MAX_DESTS];
	uint64_t zero_map[KC_ZERO_MAP_WORDS];
	/* The blocks the job's map skips (jobmap.c): neither read for the
	 * destinations nor written; zeros to the data hook.  A block is
	 * skipped, else zero, else data. */
	uint64_t skip_map[KC_ZERO_MAP_WORDS];
	bool has_skip;
	/* The blocks the map says not to read: skipped, or zero extents.
	 * Not read (read_at), zeros in the buffer (kc_sj_fill_holes). */
	uint64_t noread_map[KC_ZERO_MAP_WORDS];
	bool has_noread;
	uint64_t skip_bytes;		/* bytes of the sub-job skipped */
	uint64_t read_at;		/* with noread blocks, the span is read
					   a run between them at a time: where
					   the next run is looked for */
};

/* KCOPYD_FD_READS_ZERO and other hints, by the identity of the file. */
struct kc_fd_hint {
	int fd;
	dev_t dev, rdev;
	ino_t ino;
	unsigned int hints;
};

struct kc_bad_range {
	int fd;
	uint64_t sector, count;
};

struct kcopyd_client {
	pthread_mutex_t lock;
	pthread_cond_t idle;		/* signalled when jobs_outstanding drops */
	pthread_t engine;
	int wake_fd;			/* eventfd: completions and pokes */

	/* the I/O queue (io.c); see the lock model above */
	const struct kc_ring_ops *ring_ops;	/* chosen at the first setup */
	void *ring;
	unsigned int ring_size;		/* events it was set up for */
	unsigned int ring_dests;	/* destinations per slot it is sized for */
	unsigned int io_in_flight;	/* iocbs submitted, not yet reaped */
	struct kc_iocb *io_flying;	/* those iocbs, through qnext */
	struct kc_iocb **submit_q;	/* iocbs waiting to be submitted */
	unsigned int submit_n;
	struct kc_io_done *events;
	int ring_err;			/* why ring is NULL after a loss */

	/* the page budget (pages.c) */
	char *pool;
	unsigned int num_pages;
	unsigned int slot_pages;	/* fitted to the budget */
	unsigned int num_slots;
	struct kc_subjob *slots;
	struct kc_subjob *free_slots;
	unsigned int slots_in_use;
	/* Sub-jobs waiting for a slot lent for their merge, first come first
	 * served: a slot freed goes to them before any new sub-job (subjob.c,
	 * tail_lend); and the slots held by sub-jobs of tail_borrow jobs. */
	struct kc_subjob *tail_wait;
	unsigned int tail_own;
	/* iocbs the sub-jobs in flight may have outstanding at once: each
	 * reserves one per destination of its job (a read job's one), and a
	 * job's flushes one each; never above ring_size */
	unsigned int iocbs_reserved;
	/* The sub-job isolating bad sectors now, and those waiting for their
	 * turn (linked through next).  One at a time, and no new sub-jobs
	 * meanwhile: the block layer merges adjacent requests, and a re-read
	 * merged with a neighbour that fails would fail with it. */
	struct kc_subjob *isolating;
	struct kc_subjob *isolate_wait;

	/* guarded by lock */
	struct kc_job *new_jobs;	/* submitted, not yet seen by the engine */
	struct kc_job **new_tail;
	struct kc_job *jobs;		/* the engine's active jobs, round-robin */
	unsigned int jobs_outstanding;	/* submitted and callback not returned */
	uint64_t next_submit_seq;	/* kc_job.submit_seq of the next job */
	bool shutting_down;
	/* kcopyd_client_destroy was called on the engine thread: once no job
	 * is outstanding, the engine (detached) ends and calls this to free
	 * the client (client.c's client_free). */
	void (*free_deferred)(struct kcopyd_client *kc);
	bool stop_requested;		/* kcopyd_client_stop: the engine stops
					   its active jobs */
	/* Bumped by every kcopyd_client_stop, read without kc->lock: an
	 * open under way (nbd.c's connect_one) that sees it change since
	 * it began gives up with -EINTR. */
	atomic_uint stops;
	struct kc_file *files;		/* those in use (region.c) */
	struct kc_bad_range *bad;
	size_t num_bad, cap_bad;
	size_t bad_taken;		/* bad[0..bad_taken) were taken
					   (kcopyd_take_bad_ranges) */
	bool bad_lost;			/* a range could not be recorded (no
					   memory): the record is incomplete */
	struct kcopyd_stats stats;
	struct kc_fd_hint *fd_hints;	/* kcopyd_set_fd_hints */
	size_t num_fd_hints;
	kcopyd_error_fn error_fn;
	void *error_ctx;
	kcopyd_data_fn data_fn;
	void *data_ctx;

	/* The client-wide parts of the backends used so far, in the order
	 * of their first use (backend.c; guarded by lock) */
	struct kc_backend_use {
		const struct kc_backend *backend;
		void *state;		/* the backend's own */
	} backends[KC_MAX_BACKENDS];
	unsigned int num_backends;

	/* the engine's poll set (engine.c): pfd[0] the eventfd, then the
	 * NBD connections and streams with requests, grown to what is open;
	 * polled[i] what its backend's poll_done is to know of pfd[i + 1] */
	struct pollfd *pfd;
	void **polled;
	unsigned int poll_cap;
	/* A request ended where the engine does not look for ends (refused
	 * at submission, an NBD command that could not be sent): the engine
	 * goes round its loop again before it sleeps, since the end may
	 * have freed a slot or finished a job. */
	bool kick;

	/* the zeroing thread (zero.c; guarded by lock) */
	pthread_t zero_thread[KC_ZERO_THREADS];
	unsigned int zero_threads;	/* started */
	pthread_cond_t zero_cond;	/* signalled when a request is queued */
	bool zero_stopping;
	struct kc_zero_req *zero_queue;	/* not yet run */
	struct kc_zero_req **zero_tail;
	struct kc_zero_req *zero_done;	/* run, owners not yet told */
	struct kc_zero_req **zero_done_tail;

	/* throttling, kernel semantics (guarded by lock) */
	unsigned int throttle;		/* percent, 100 = off */
	uint64_t thr_last_us, thr_io_us, thr_total_us;
	uint64_t rate;			/* bytes per second, 0 = off */
	uint64_t rate_start_us, rate_bytes;
};

/* A zero range of a local destination for the zeroing thread (zero.c). */
struct kc_zero_req {
	struct kc_zero_req *next;
	/* Run on the zeroing thread with kc->lock held, which it may drop
	 * around its system calls: 0 or a negative errno. */
	int (*run)(struct kcopyd_client *kc, struct kc_zero_req *req);
	/* Called on the engine thread with kc->lock held, with run's
	 * result; the request is the owner's again. */
	void (*end)(struct kcopyd_client *kc, struct kc_zero_req *req,
		    int err);
	int err;
	void *private;		/* the owner's */
	unsigned int dest;
	uint64_t pos, len;	/* bytes of the destination's file */
};

/* zero.c: called with kc->lock held but kc_zero_stop */
int kc_zero_queue(struct kcopyd_client *kc, struct kc_zero_req *req);
void kc_zero_reap(struct kcopyd_client *kc);
void kc_zero_stop(struct kcopyd_client *kc);

/* pages.c */
int kc_pages_init(struct kcopyd_client *kc, unsigned int num_pages);
unsigned int kc_pages_fit(const struct kcopyd_client *kc,
			  unsigned int subjob_bytes, unsigned int *slot_pages);
int kc_pages_carve(struct kcopyd_client *kc, unsigned int subjob_bytes);
void kc_pages_exit(struct kcopyd_client *kc);
struct kc_subjob *kc_slot_get(struct kcopyd_client *kc);
void kc_slot_put(struct kcopyd_client *kc, struct kc_subjob *sj);

/* error.c: this thread's reason for the call that fails.  A public call
 * that can say why clears it first (kc_clear_error), a refusal sets it
 * (kc_set_error, returning err), and the call returns through kc_fail(err),
 * which gives an error without a reason of its own strerror's words. */
int kc_set_error(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int kc_prefix_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
int kc_fail(int err);
void kc_clear_error(void);

/* region.c */
int kc_region_check(struct kcopyd_client *kc, const struct io_region *r,
		    unsigned int how, struct kc_region *out);
void kc_region_put(struct kcopyd_client *kc, struct kc_region *r);

/* io.c: called with kc->lock held */
int kc_io_setup(struct kcopyd_client *kc, unsigned int events);
void kc_io_exit(struct kcopyd_client *kc);
void kc_io_queue(struct kcopyd_client *kc, struct kc_iocb *io);
void kc_io_submit(struct kcopyd_client *kc);
void kc_io_reap(struct kcopyd_client *kc, unsigned int min_nr,
		int timeout_ms);

/* The job code, on the engine thread under kc->lock, in layers that call
 * only downwards (tests/layout.sh):
 *   schedule.c  the scheduler          -> subjob, sparse, jobmap,
 *                                         throttle, job
 *   subjob.c    the sub-job machine    -> sparse, isolate, throttle, job
 *   sparse.c    maps and zeroing       -> jobmap, isolate (the error
 *                                         hook), job, zero.c
 *   jobmap.c    a job's map (kcopyd_copy_map): its extents, the
 *               sub-jobs it passes, the blocks it skips
 *   isolate.c   bisection, bad ranges, the error hook
 *   throttle.c  throttle and rate
 *   job.c       predicates, flushes, callbacks -> isolate
 * A lower layer calls back up only through function pointers its caller
 * gives: kc_dest_fail_fn (sparse.c), struct kc_isolate_ops (isolate.c). */

/* schedule.c: a round of the engine: take new jobs, start sub-jobs, let the
 * data hook through across jobs, zero gathered ranges, queue flushes */
void kc_jobs_schedule(struct kcopyd_client *kc, int *timeout_ms);

/* subjob.c */
/* Start a sub-job of sectors at job->issued; a slot is free and the
 * iocbs fit the ring. */
void kc_sj_start(struct kcopyd_client *kc, struct kc_job *job,
		 uint64_t sectors);
/* The data of sj is in its buffer: the data hook (in turn under
 * KCOPYD_DATA_IN_ORDER), then the writes. */
void kc_sj_data_ready(struct kcopyd_client *kc, struct kc_subjob *sj);
/* Start no new sub-jobs of job; end those parked (WRITE_SEQ, DATA_IN_ORDER)
 * and the reads queued on its source's stream. */
void kc_job_stop(struct kcopyd_client *kc, struct kc_job *job);
/* Destination dest of job failed with err (reported already): mark it,
 * drop it or stop the job, as the job's flags say. */
void kc_job_write_failed(struct kcopyd_client *kc, struct kc_job *job,
			 unsigned int dest, int err);

/* A destination's write failed (reported already): what the caller of a
 * lower layer does about it (subjob.c's kc_job_write_failed). */
typedef void (*kc_dest_fail_fn)(struct kcopyd_client *kc, struct kc_job *job,
				unsigned int dest, int err);

/* jobmap.c: a job's map (kcopyd_copy_map) */
/* Take the caller's map into job (its source region resolved): the
 * extents within the region, made relative to it.  0, or -EINVAL (the
 * error text set) or -ENOMEM. */
int kc_jobmap_set(struct kc_job *job, const struct kcopyd_extent *map,
		  size_t num);
/* Move job->issued past the sub-jobs (of unit sectors each, from the
 * region's start) that hold nothing of the map, counting their bytes in
 * kc->stats.bytes_unmapped. */
void kc_jobmap_pass(struct kcopyd_client *kc, struct kc_job *job,
		    uint64_t unit);
/* Class sj's blocks by the map: mark the skipped ones in skip_map and the
 * zero ones in zero_map; *lo and *hi (bytes of the sub-job) bound its
 * data blocks, lo >= hi if it has none. */
void kc_jobmap_classify(const struct kc_job *job, struct kc_subjob *sj,
			uint64_t *lo, uint64_t *hi);
bool kc_block_is_skipped(const struct kc_subjob *sj, unsigned int b);
bool kc_block_is_noread(const struct kc_subjob *sj, unsigned int b);

/* sparse.c */
void kc_sj_source_span(struct kcopyd_client *kc, struct kc_subjob *sj);
void kc_sj_fill_holes(struct kc_subjob *sj);
uint64_t kc_sj_skipped_outside(const struct kc_subjob *sj);
void kc_sj_zero_map(struct kc_subjob *sj);
bool kc_block_is_zero(const struct kc_subjob *sj, unsigned int b);
unsigned int kc_run_end(const struct kc_subjob *sj, unsigned int b);
int kc_dest_zero(struct kcopyd_client *kc, struct kc_subjob *sj,
		 unsigned int i, uint64_t start, uint64_t len, bool *request,
		 uint64_t *err_pos, uint64_t *err_len, kc_dest_fail_fn fail);
void kc_jobs_zero_pending(struct kcopyd_client *kc, kc_dest_fail_fn fail);
void kc_job_dest_holes(struct kcopyd_client *kc, struct kc_job *job);
void kc_jobs_extend(struct kcopyd_client *kc, kc_dest_fail_fn fail);

/* isolate.c: what the isolation of a sub-job's bad blocks asks of the
 * sub-job code.  read: queue the read of count sectors at offset (from
 * the sub-job's start) of the source into the buffer, whose end comes
 * back to kc_isolate_reread_done; over: the isolation of sj is over,
 * its buffer holds what could be read and zeros; lost: the source's
 * connection was lost, sj cannot be read (the job stops, sj ends). */
struct kc_isolate_ops {
	void (*read)(struct kcopyd_client *kc, struct kc_subjob *sj,
		     uint64_t offset, uint64_t count);
	void (*over)(struct kcopyd_client *kc, struct kc_subjob *sj);
	void (*lost)(struct kcopyd_client *kc, struct kc_subjob *sj);
};
/* The read of sj failed: isolate its unreadable blocks, now or when the
 * sub-job isolating has done. */
void kc_isolate_start(struct kcopyd_client *kc, struct kc_subjob *sj,
		      const struct kc_isolate_ops *ops);
/* The end of a re-read that ops->read queued. */
void kc_isolate_reread_done(struct kcopyd_client *kc, struct kc_subjob *sj,
			    struct kc_iocb *io, int err,
			    const struct kc_isolate_ops *ops);
/* Count a failed request and tell the error hook (kc->lock dropped
 * around it).  dest: of a write or flush. */
void kc_report_error(struct kcopyd_client *kc, const struct kc_file *f,
		     enum kc_io_op op, unsigned int dest, uint64_t pos,
		     uint64_t len, int err);

/* throttle.c */
void kc_throttle_update(struct kcopyd_client *kc);
bool kc_throttle_may_start(struct kcopyd_client *kc, uint64_t bytes,
			   int *timeout_ms);

/* job.c */
uint64_t kc_job_sectors(const struct kc_job *job);
bool kc_job_runnable(const struct kc_job *job);
unsigned int kc_job_iocbs(const struct kc_job *job);
unsigned int kc_job_all_dests(const struct kc_job *job);
bool kc_job_over(const struct kc_job *job);
bool kc_job_extend_due(const struct kc_job *job);
bool kc_job_behind_earlier(const struct kcopyd_client *kc,
			   const struct kc_job *job, bool start);
void kc_job_cancel(struct kcopyd_client *kc, struct kc_job *job, bool dests);
void kc_jobs_flush(struct kcopyd_client *kc);
bool kc_jobs_run_callbacks(struct kcopyd_client *kc);
void kc_job_free(struct kcopyd_client *kc, struct kc_job *job);

/* backend.c, with kc->lock held: the client-wide part of backend b, or
 * NULL while b has not been used */
void *kc_backend_state(const struct kcopyd_client *kc,
		       const struct kc_backend *b);
/* The same, made (b->client_create) at b's first use: 0 and *state, or
 * a negative errno */
int kc_backend_use(struct kcopyd_client *kc, const struct kc_backend *b,
		   void **state);
/* At destroy, without kc->lock and with no jobs: every backend used
 * destroys its part, in the reverse order of their first use */
void kc_backends_destroy(struct kcopyd_client *kc);

/* The backends' openers, called by region.c's probe of a descriptor (an
 * NBD export is opened by kcopyd_open_uri).  Each fills in f: ops, priv,
 * lbs, size and the capabilities; 0, or a negative errno with nothing
 * left to free. */
/* stream.c: a pipe, a FIFO or a socket */
int kc_stream_open(struct kc_file *f, int fd, bool is_socket);
/* local.c: a regular file or a block device, whose status is st (the
 * O_DIRECT reopen made); -EINVAL for anything else */
int kc_local_open(struct kc_file *f, int fd, const struct stat *st);

/* engine.c */
int kc_engine_init(struct kcopyd_client *kc);
int kc_engine_start(struct kcopyd_client *kc);
void kc_engine_stop(struct kcopyd_client *kc);

/* Is err, the failure of a request to f, the loss of f's connection
 * rather than a failure of that request: the server or the FUSE daemon
 * gone, the connection reset or shut down, an NBD connection dropped for
 * silence (ETIMEDOUT; on a local device a timed-out command is a request's
 * failure)?  Nothing more can be read from or written to f then: a lost
 * source is not isolated block by block, a lost destination is not written
 * on under KCOPYD_IGNORE_ERROR. */
static inline bool kc_err_lost(const struct kc_file *f, int err)
{
	switch (-err) {
	case ENOTCONN:
	case ESHUTDOWN:
	case ECONNRESET:
	case ECONNABORTED:
	case ENOLINK:
		return true;
	default:		/* EPIPE of a stream or a socket, ... */
		return f->ops->lost && f->ops->lost(err);
	}
}

/* Wake the engine from any thread: a caller's new job or stop, the end of
 * a zeroing request.  The write cannot fail but on counter overflow, which
 * means a wake is due anyway. */
/* Give the caller's struct user (of the size its first member says) the
 * library's struct ours of ksize bytes, as kcopyd.h promises: no byte past
 * the caller's size is written; what fits is filled, the rest of a larger
 * caller struct zeroed, and size set to the bytes filled. */
static inline int kc_copy_sized(void *user, const void *ours, size_t ksize)
{
	uint32_t usize;
	size_t n;

	memcpy(&usize, user, sizeof(usize));
	if (usize < KCOPYD_SIZE_MIN)
		return -EINVAL;
	n = usize < ksize ? usize : ksize;
	memcpy(user, ours, n);
	if (usize > n)
		memset((char *)user + n, 0, usize - n);
	usize = (uint32_t)n;
	memcpy(user, &usize, sizeof(usize));
	return 0;
}

static inline void kc_engine_wake(struct kcopyd_client *kc)
{
	uint64_t one = 1;

	if (write(kc->wake_fd, &one, sizeof(one)) < 0)
		return;
}

#endif /* KCOPYD_PRIVATE_H */
