/* kcopy.h - the kcopy tool's run state and the interfaces of its files.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One struct kcopy holds everything a run knows; every function gets it (or
 * the part it needs) explicitly, and the library's hooks get it through
 * their context pointers.  The tool's files, and who calls whom (no cycles):
 *
 *   main.c      wires the others together, in order; the only exit point
 *   options.c   the option table, option parsing, region specs into targets
 *   commands.c  the "[ CMD ARGS... ]" regions (NBD servers kcopy starts),
 *               taken out of the arguments before popt sees them
 *   target.c    opening, probing and checking the source and destinations
 *   storage.c   what storage a device or file is, asked of the kernel
 *   run.c       the copy engine: client, hooks, submission, waiting
 *   verify.c    --verify: checksums during the copy, read jobs afterwards;
 *               the data hooks of both phases, which also feed --hash
 *   hash.c      --hash: the digests, by libcrypto
 *   signals.c   the signals kcopy answers, through a signalfd
 *   progress.c  the progress bar and lines, phase by phase (copy or zero,
 *               flush, verify), and the SIGUSR1 status line
 *   plan.c      the --dry-run plan
 *   signatures.c  what libblkid finds on a device or file: signatures,
 *               the partition table and its partitions
 *   used.c      --used, --domain-mapfile: the map of what to copy, from
 *               the file system's readers (fsmap.h: fstypes.c, fsmap.c,
 *               fs-ext.c, fs-xfs.c, fs-fat.c, fs-ntfs.c, fs-exfat.c) or
 *               a mapfile
 *   flash.c     --bmap: an image's block map as the map of what to copy,
 *               and its checksums checked by the copy's data hook; or,
 *               for an image the feed delivers, as the feed's filter
 *   bmap.c      bmaptool's bmap file, parsed, and its walk (bmap.h, pure)
 *   report.c    the JSON report and the closing line
 *   mapfile.c   --mapfile: the state of the copy, what is left to do, its
 *               pieces, the checkpoints
 *   resume.c    --mapfile: whether a mapfile that exists may be resumed
 *               from (the sides against the ones it recorded)
 *   mapfmt.c    the mapfile's text, parsed and written (mapfmt.h, pure)
 *   rangemap.c  a map of byte ranges to a status (rangemap.h, pure)
 *   json.c      the one JSON writer, for the report and --progress=json
 *               (json.h)
 *   files.c     kcopy's own files read, written, replaced atomically
 *               (files.h)
 *   output.c    the one way messages reach stderr
 *   clock.c     the monotonic clock
 *   format.c    sizes and durations as people read them (format.h, pure)
 *   spec.c      pure parsers of sizes, specs, numbers (spec.h)
 *   feed.c      a compressed source decoded by a thread into a pipe, the
 *               stream the copy reads (feed.h); its decoders (decode.h:
 *               decode.c, dec-xz.c, dec-zstd.c, dec-gzip.c, dec-bzip2.c)
 *
 *   main -> options, target, run, verify, plan, report, signals, hash,
 *           mapfile, used, flash, feed
 *   flash -> used, files, bmap, feed;  verify -> flash
 *   plan -> storage, signatures, mapfile, used, hash, feed
 *   used -> storage, signatures, files, mapfmt, fstypes, fsmap
 *   options -> hash, decode;  target -> storage, feed, flash;  feed -> decode
 *   verify -> run, hash
 *   run -> signals, progress, mapfile;  signals -> progress
 *   report -> target, storage, hash, json, files, progress, feed;
 *   progress -> json;  verify -> progress
 *   mapfile -> resume, target, storage, mapfmt, rangemap, files
 *   resume -> mapfmt;  mapfmt -> rangemap
 *   any of them -> output, spec, format, clock
 *
 * Error convention: functions return 0 or a negative errno; the message is
 * printed, through output.c, by the function that decides it is an error,
 * and main() turns the outcome into the exit status.
 */
#ifndef KCOPY_H
#define KCOPY_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "kcopyd.h"
#include "bmap.h"
#include "feed.h"
#include "format.h"
#include "spec.h"

/* Exit status, fsck style (kcopy(1), EXIT STATUS). */
#define KCOPY_EXIT_READ		1
#define KCOPY_EXIT_DEST_BIT_MAX	6	/* destinations past the sixth share it */
#define KCOPY_EXIT_SETUP	128

/* ------------------------------------------------------------- output.c */

enum msg_level {
	MSG_ERROR,	/* always printed: setup errors, the closing line */
	MSG_NOTE,	/* what happened during the run; not with --quiet */
	MSG_VERBOSE,	/* only with --verbose */
};

/* stderr is shared by the engine thread (error reports from its hooks) and
 * the main thread (progress, status lines, messages). */
struct output {
	pthread_mutex_t lock;	/* serializes every write to stderr and
				   guards bar_drawn */
	bool quiet;		/* --quiet, set by options.c */
	int verbose;		/* how many --verbose, set by options.c */
	bool bar_drawn;		/* a progress bar is on the screen now */
};

/* Also makes sure descriptors 0, 1 and 2 are open (on /dev/null where they
 * were closed) before anything else is opened.  0, or -errno. */
int output_init(struct output *o);
void output_destroy(struct output *o);
/* Print "kcopy: " and the message as one line, taking a bar off the screen
 * first; dropped as level and --quiet/--verbose say. */
void say(struct output *o, enum msg_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Run fn(arg) holding the output lock, for multi-part output (progress). */
void output_locked(struct output *o, void (*fn)(void *), void *arg);
/* Take a bar off the screen; the caller holds the output lock. */
void output_clear_bar(struct output *o);
/* The last of standard output (--help, --version, --dry-run's plan): flush
 * and close it, and say so if what was printed did not all get there (a
 * full disk; a closed pipe where SIGPIPE is ignored), as coreutils'
 * close_stdout does.  0, or
 * -errno (exit 128). */
int output_close_stdout(struct output *o);

/* ------------------------------------------------------ commands.c */

/* A region written "[ CMD ARGS... ]": an NBD server kcopy starts. */
struct command_region {
	char *text;		/* "[ CMD ARGS... ]", the region's name and
				   its argument for popt */
	char **argv;		/* CMD ARGS..., NULL-terminated; the strings
				   are the command line's */
	const char *close;	/* the closing argument: "]" or
				   "]:SECTOR[:COUNT]" */
	bool taken;		/* its region spec found (commands_take) */
};

struct kcopy;
/* Take each "[ ... ]" of argv[1..*argc) out into k->cmds, leaving its
 * text in its place (*argc shrinks).  An argument for which
 * takes_value() is true (an option that takes the next argument, before
 * "--") has that next argument skipped.  0, or -EINVAL (a "[" without its
 * "]", a "]" without its "[", a "[" inside a command, an empty command)
 * or -ENOMEM, with the reason in why. */
int commands_gather(struct kcopy *k, int *argc, const char **argv,
		    bool (*takes_value)(const char *arg),
		    char *why, size_t len);
/* The command whose text arg is (what commands_gather left in argv, as
 * popt hands it back), or NULL: the first of that text not taken yet,
 * which is taken.  Called for the region specs in the order popt gives
 * them, which is the command line's, it finds each argument's own
 * command, also among commands of the same text. */
const struct command_region *commands_take(struct kcopy *k,
					   const char *arg);
/* c's region spec: its text as the path, the fields of "]:SECTOR:COUNT".
 * 0, or -EINVAL/-ERANGE/-ENOMEM with *why as kc_parse_spec's. */
int commands_spec(const struct command_region *c, struct kc_spec *spec,
		  const char **why);
void commands_free(struct kcopy *k);

/* ------------------------------------------------------- options.c */

enum { PROGRESS_OFF, PROGRESS_AUTO, PROGRESS_PLAIN, PROGRESS_JSON };

struct options {
	unsigned long pages;
	uint64_t chunk;
	bool ignore_errors;
	bool sequential;
	bool zero;
	unsigned int throttle;
	uint64_t rate;
	unsigned int timeout;		/* NBD requests, seconds; 0 none */
	int progress;			/* PROGRESS_* */
	int progress_fd;		/* --progress=fd:N: N; -1: stderr */
	double progress_interval;	/* 0: the mode's default */
	bool verify;
	unsigned int hash_algs;		/* --hash: bit a is algorithm a (HASH_*) */
	bool allocated;			/* KCOPYD_ALLOCATED */
	bool dest_is_zero;		/* KCOPYD_DEST_IS_ZERO */
	bool no_zero_detect;		/* KCOPYD_NO_ZERO_DETECT */
	const char *report;
	const char *hash_file;		/* --hash-file FILE */
	const char *mapfile;		/* --mapfile FILE */
	double mapfile_interval;	/* seconds between checkpoints */
	bool skip_bad;			/* do not retry the '-' areas */
	bool retry_failed;		/* write to failed destinations again */
	bool force;
	bool dry_run;
	bool used;			/* --used */
	const char *domain_mapfile;	/* --domain-mapfile FILE */
	int unused;			/* --unused: UNUSED_* */
	bool unused_given;
	const char *bmap;		/* --bmap FILE */
	bool no_bmap;			/* --no-bmap */
	int decompress;			/* --decompress: FEED_* */
	const struct decoder_ops *decompress_format;	/* FEED_FORCE's */
};

enum { UNUSED_KEEP, UNUSED_ZERO };

/* ------------------------------------------------------------- hash.c */

enum { HASH_MD5, HASH_SHA1, HASH_SHA256, HASH_SHA512, HASH_NUM_ALGS };

/* The digests of one region, fed in order by a data hook on the engine
 * thread, finished and read by the main thread after kcopyd_wait(). */
struct hash_set {
	unsigned int algs;		/* bit a: algorithm a (HASH_*) */
	void *ctx[HASH_NUM_ALGS];	/* EVP_MD_CTX, one per algorithm */
	uint64_t next;			/* the sector the next data starts at */
	/* The last sector fed, held back: at the end only its bytes of data
	 * go in (a stream's length need not be a multiple of 512). */
	unsigned char tail[KC_SECTOR_SIZE];
	bool has_tail;
	bool broken;			/* a gap, an overlap or a failed update */
	bool done;			/* hex holds the digests */
	/* What was not fed, for saying why there is no digest: the sector
	 * after the last data seen, the first gap [gap_lo, gap_hi) and how
	 * many there were, and whether data came out of order. */
	uint64_t seen;
	uint64_t gap_lo, gap_hi;
	unsigned int gaps;
	bool disorder;
	char *hex[HASH_NUM_ALGS];	/* lowercase hex, after hash_finish() */
};


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
	char *arg;			/* as given on the command line; for
					   a command, "[ CMD ARGS... ]" */
	struct kc_spec spec;
	char *const *cmd;		/* [ CMD ARGS... ]: the NBD server to
					   start (k->cmds' argv), else NULL */
	int fd;
	bool exists;
	bool created;			/* created by this run */
	/* What the library probed: is_blockdev, logical_block_size (512
	 * for a file, new or not, and for a stream), size (0 for a file
	 * that is new, or a stream), can_direct (direct I/O was possible),
	 * is_remote (an NBD export: fd is the library's stand-in, closed by
	 * the library; set before the probe), is_stream (a pipe or socket:
	 * in order, of a length known at its end). */
	struct kcopyd_fd_info info;
	dev_t rdev;			/* of a block device */
	bool is_std;			/* "-": standard input or output, not
					   ours to close */
	bool zoned;			/* a host-managed zoned block device */
	bool fed;			/* the source: a compressed file the
					   feed decodes (fd is its pipe; id
					   the file's) */
	struct storage_id id;
	uint64_t sector, count;		/* the region, resolved */

	/* Destinations: what went wrong, first error wins.  Written by the
	 * engine thread's hooks and by the main thread: guarded by
	 * kcopy.lock while the client runs. */
	int error;			/* negative errno, 0 if none */
	const char *error_op;		/* "write", "flush", "verify", ... */
	/* The lowest byte offset on the destination (its device or file)
	 * at which an I/O failed or the read-back differed: of any of its
	 * errors, not only the first; none for a flush, say. */
	uint64_t error_offset;
	bool error_offset_known;
	struct mismatch *mismatches;	/* --verify, main thread only */
	size_t num_mismatches;
	/* --hash: the source's as read by the copy; a destination's as read
	 * back by --verify. */
	struct hash_set hash;
};

/* ------------------------------------------------------------ progress.c */

/* The phases of a run, in order; each has its own %, rate and ETA in the
 * progress, and its duration in the report ("phases"). */
enum {
	PHASE_COPY,			/* the copy's data */
	PHASE_ZERO,			/* --zero's */
	PHASE_FLUSH,			/* all of it written: the jobs flush the
					   destinations */
	PHASE_VERIFY,			/* --verify's read-back */
	PHASE_NUM
};

struct progress {
	int mode;			/* PROGRESS_* after AUTO is decided */
	bool bar;			/* redrawn in place on a terminal */
	FILE *f;			/* stderr, or --progress=fd:N's */
	unsigned int width;		/* the terminal's columns (the bar) */
	double interval;		/* seconds between updates */
	int phase;			/* PHASE_* now */
	double phase_start;		/* clock_now() when it began */
	double flush_start;		/* PHASE_FLUSH: when the copy's data
					   were all written (its lines are the
					   copy's, from phase_start) */
	/* PHASE_VERIFY: the bytes to read back (summed over the
	 * destinations), and the client's counters when it began (they
	 * count the copy's I/O too). */
	uint64_t phase_total;
	uint64_t base_read, base_passed;
	double last_t;
	uint64_t last_bytes;		/* of moved, at last_t */
	double rate;			/* smoothed, bytes moved per second */
};

/* ------------------------------------------------------------ verify.c */

struct verify {
	uint64_t *sums;			/* one XXH3 per sub-job, written by the
					   data hook on the engine thread, read
					   after kcopyd_wait() */
	unsigned char *have;		/* --mapfile: have[n], sub-job n was
					   copied by this run (has its sum) */
	size_t num;
	bool lost;			/* no memory for a stream's checksums */
	uint64_t chunk_sectors;		/* sectors per checksum */
	uint64_t first_sector;		/* the source region's */
	/* The read-back, written by the hooks, read after kcopyd_wait(). */
	unsigned char *bad;		/* bad[i * num + n]: sub-job n of
					   destination i differs or failed */
	int read_error[KCOPYD_MAX_DESTS];	/* each one's first, -errno */
	/* Regular files that end within a stream's last sector: bit i,
	 * destination i's last sector is read after its read job (which
	 * cannot read past the end of the file), its last checksum's state
	 * (XXH3_state_t) kept open for it in tail_state[i]. */
	unsigned int tail_dests;
	void *tail_state[KCOPYD_MAX_DESTS];
};

/* ------------------------------------------------------------ report.c */

/* --report FILE, --hash-file FILE: checked and given a temporary file
 * beside it at setup; the placeholder, then the report (or the digests),
 * are written there and renamed over it. */
struct report {
	const char *option;		/* "--report", "--hash-file" */
	const char *noun;		/* "the report", "the digests file" */
	const char *arg;		/* FILE as given; NULL without */
	const char *prefix;		/* of its temporary file's name */
	char *path;			/* FILE resolved: its real directory and
					   name; NULL for '-' */
	char *tmp;			/* the temporary file, while it exists */
	int tmp_fd;			/* open on tmp */
	mode_t mode;			/* an earlier report's, or 0666 less the
					   umask */
	bool stdout_closed;		/* before output_init() reopened it */
	bool earlier;			/* FILE exists: an earlier run's report */
	bool renamed;			/* the last write reached FILE */
	bool placed;			/* the placeholder is in place */
	bool done;			/* the final report is in place */
	bool failed;			/* the final report was not written */
};

/* ------------------------------------------------------------- used.c */

/* The map of what to copy (--used, --domain-mapfile), as the library's
 * extents (kcopyd_copy_map). */
struct used {
	char type[48];			/* the file system's (libblkid's
					   name), or "domain" */
	uint32_t block_size;		/* its allocation unit, bytes */
	uint64_t fs_size;		/* bytes it spans */
	char dirty[160];		/* why it is not clean (--force) */
	uint64_t used_bytes;		/* in the data extents */
	uint64_t zero_bytes;		/* used, in the zero extents: blocks
					   the file system needs only to read
					   as zeros (unused inode tables) */
	struct kcopyd_extent *ext;	/* NULL without a map */
	size_t num;
};

/* ------------------------------------------------------------ flash.c */

/* --bmap, or the bmap found beside the image: the map of what to copy
 * (as k->used's extents: its ranges data, the rest zeros) and the walk
 * that checks the ranges' checksums as the copy reads them. */
struct flash {
	char *path;			/* the bmap file; NULL without one */
	bool beside;			/* found beside the image, not given */
	struct bmap map;
	/* The data hook's, on the engine thread; read by the main thread
	 * after kcopyd_wait(). */
	struct bmap_walk walk;
	bool walking;			/* walk started */
	bool fed;			/* the image comes through the feed:
					   the walk is its filter's, on its
					   thread until feed_stop() */
};

/* --------------------------------------------------------- the run state */

struct mapfile;			/* mapfile.c's */
struct piece;			/* run.c's: a job of a --mapfile copy */

struct zero_job {
	struct kcopy *k;
	unsigned int dest;
};

struct kcopy {
	struct options opt;
	struct output out;
	struct target src;		/* unused with --zero */
	struct target *dests;
	unsigned int num_dests;
	struct command_region *cmds;	/* the [ CMD ARGS... ] regions */
	unsigned int num_cmds;
	uint64_t bytes;			/* bytes in the region */
	uint64_t work_bytes;		/* bytes the copy goes through: the
					   region's, or its map's (--used) */
	unsigned int flags;		/* KCOPYD_* for the jobs */

	struct kcopyd_client *kc;
	int sig_fd;			/* signalfd of the signals we answer */
	int done_fd;			/* eventfd: a job's callback has run */
	struct zero_job zero_jobs[KCOPYD_MAX_DESTS];

	/* Shared with the engine thread's hooks and callbacks while the
	 * client runs; guarded by lock.  Lock order: out.lock, then lock;
	 * nothing prints while holding lock. */
	pthread_mutex_t lock;
	unsigned int jobs_left;		/* jobs whose callback has not run */
	int read_err;			/* 0 or 1 */
	int read_error;			/* first read errno, negative */
	bool source_lost;		/* the source's connection was lost:
					   nothing more is read (k->lock) */
	unsigned int write_err;		/* bit i: destination i failed */
	struct piece *pieces_done;	/* --mapfile: jobs whose callback ran */
	/* ... and each destination's error and error_op (struct target). */

	/* Main thread only. */
	struct io_region *bad;		/* bad ranges, after the copy */
	size_t num_bad;
	double start, seconds;		/* the run's: copy to verify's end */
	double phase_seconds[PHASE_NUM];	/* each phase's (PHASE_*) */
	unsigned int phases_run;	/* bit p: phase p ran */
	uint64_t bytes_verified;	/* read back, summed over dests */
	uint64_t bytes_done;
	unsigned int tail_bytes;	/* bytes of data in the region's last
					   sector: 512, but at a stream's end */
	struct kcopyd_stats stats;	/* the copy's, when it is over */
	int signal;			/* the signal that stopped the copy */
	bool verified;			/* --verify ran to the end */
	bool map_started;		/* --mapfile: a job was submitted */
	bool pieces_stopped;		/* --mapfile: no more jobs */
	char hash_missing[160];		/* --hash: why the source has no
					   digest, for -v and the report */
	struct progress progress;
	struct verify verify;
	struct report report;
	struct report hash_file;	/* --hash-file */
	int argc;			/* the command line, for the report */
	const char **argv;		/* (the strings are main()'s) */
	time_t started_at, ended_at;	/* wall clock: before the copy, and
					   at its end (after --verify) */
	struct mapfile *map;		/* --mapfile, NULL without */
	struct used used;		/* --used, --domain-mapfile, --bmap */
	struct flash flash;		/* --bmap */
	struct feed feed;		/* a compressed source's decoder */
};

int kcopy_init(struct kcopy *k);
void kcopy_free(struct kcopy *k);

/* options.c: 0 to go on; 1 when --help, --usage or --version was answered
 * (exit 0); -EINVAL after a usage error was printed (exit 128). */
int options_parse(struct kcopy *k, int argc, const char **argv);

/* target.c: each returns 0, or -errno after printing a setup error that
 * names the argument. */
int target_open_source(struct kcopy *k, struct target *t);
int target_prepare_dest(struct kcopy *k, struct target *t);
int target_check_overlaps(struct kcopy *k);
int target_lock_regions(struct kcopy *k);
int target_create_dests(struct kcopy *k);
/* Which side of the copy a file of kcopy's own (the report, the mapfile)
 * would land on, decided by identity: the source (0), destination i (i,
 * from 1), or none (-1).  st is the file path names if it exists (the
 * file itself, or the file behind a loop device, is a side's); for a path
 * that does not exist (st NULL), it is a destination not yet created at
 * the same directory entry. */
int target_side_of(const struct kcopy *k, const char *path,
		   const struct stat *st);
/* "the source" or "destination N", for side as target_side_of() gives
 * it (0 or more); buf holds the latter. */
const char *target_side_name(int side, char *buf, size_t len);
void target_remove_created(struct kcopy *k);

/* storage.c: identity from the kernel, not from path text. */
/* The disk or file (and the offset in it) block device rdev stands for,
 * through partitions and loop devices: 0, or -errno if a sysfs attribute
 * it needs cannot be read (its path in why, of len bytes): the identity
 * would be wrong, and the overlap checks with it. */
int storage_of_blockdev(dev_t rdev, struct storage_id *id, char *why,
			size_t len);
bool storage_is_zoned(dev_t rdev);
/* 1 if a loop device over the file (dev, ino) is mounted or in use by
 * something else than the n_ours devices in ours (its name in name), 0 if
 * none is, -errno if the loop devices cannot be read. */
int storage_busy_loop_over(dev_t dev, ino_t ino, const dev_t *ours,
			   size_t n_ours, char *name, size_t len);
/* Is block device dev mounted or held open exclusively? */
bool storage_blockdev_busy(dev_t dev);
/* 1 if the file system with st_dev dev is devtmpfs, 0 if not, -errno. */
int storage_is_devtmpfs(dev_t dev);
/* Do paths a and b name the same directory entry?  For files that do not
 * exist yet: the same directory (by identity) and the same name in it. */
bool storage_same_entry(const char *a, const char *b);
/* Do paths a and b name the same file: by identity if both exist (hard
 * links too), the same directory entry if neither does. */
bool storage_same_file(const char *a, const char *b);

/* What the kernel (sysfs) says of a block device, for a person: --dry-run
 * names the disk it is about to write.  Text sysfs does not give is "". */
struct storage_facts {
	char name[64];			/* the kernel's ("sda1", "loop0") */
	uint64_t size;			/* bytes */
	unsigned int partition;		/* its number; 0: not a partition */
	uint64_t start;			/* a partition's, bytes into its disk */
	dev_t disk;			/* a partition's disk, else dev */
	char disk_name[64];		/* a partition's disk's name */
	uint64_t disk_size;		/* a partition's disk's, bytes */
	/* The disk's (a partition's disk's): device/vendor, device/model,
	 * and device/serial, serial (virtio) or device/vpd_pg80 (SCSI). */
	char vendor[64], model[64], serial[64];
	char backing[PATH_MAX];		/* a loop device's backing file */
	uint64_t loop_offset;		/* bytes into it */
	char holders[256];		/* holders/ (dm-0, md127), by ", " */
};
/* The facts of block device dev into f: 0, or -errno if dev is not in
 * sysfs (the facts that cannot be read are left out). */
int storage_facts(dev_t dev, struct storage_facts *f);
/* The partitions the kernel has of disk, at most max, into parts: how
 * many, or -errno. */
int storage_partitions(dev_t disk, dev_t *parts, size_t max);
/* The device number of partition number of disk: 0, or -errno (-ENOENT
 * if the kernel has no such partition). */
int storage_partition_dev(dev_t disk, unsigned int number, dev_t *part);
/* Where block device dev is mounted (the mount table, by libmount): how
 * many mount points, joined by ", " into buf (len bytes), or -errno. */
int storage_mounts(dev_t dev, char *buf, size_t len);
/* The loop devices attached to the file (dev, ino), at most max of them,
 * into loops: how many, or -errno. */
int storage_loops_over(dev_t dev, ino_t ino, dev_t *loops, size_t max);

/* signatures.c: what libblkid finds on a device or a file. */
struct signature {
	char type[32];			/* TYPE: "ext4", "swap", ... */
	char label[128];		/* LABEL */
	char uuid[64];			/* UUID */
	char pttype[16];		/* PTTYPE: "gpt", "dos", ... */
	char ptuuid[64];		/* PTUUID */
	bool ambivalent;		/* several signatures, none taken */
};
struct sig_partition {
	unsigned int number;
	uint64_t start, count;		/* sectors of the storage probed */
	char type[40];			/* a GPT type GUID, or "0x83" */
	char name[64];			/* a GPT partition's name */
	struct signature sig;		/* what is on it */
};
struct signatures {
	struct signature sig;		/* of the whole storage probed */
	struct sig_partition *parts;	/* its table's, if asked for */
	size_t num_parts;
};
/* The signatures of [off, off + size) of fd (size 0: to its end) into s,
 * and if parts, the partitions of its table, each probed too.  0 (finding
 * nothing is not an error), or -errno. */
int signatures_probe(int fd, uint64_t off, uint64_t size, bool parts,
		     struct signatures *s);
void signatures_free(struct signatures *s);
/* [base, base + size) of fd, read through client kc (an NBD export, which
 * libblkid cannot open): its first and last MiB in a sparse memory file of
 * size bytes, for libblkid.  The memory file's descriptor, or -errno. */
int signatures_edges_file(struct kcopyd_client *kc, int fd, uint64_t base,
			  uint64_t size);

/* run.c */
int run_create_client(struct kcopy *k);
int run_copy(struct kcopy *k);
/* A job's callback is over: count it (k->jobs_left) and wake run_wait();
 * read_err and write_err are the copy's, 0 for other jobs.  Takes k->lock. */
void run_job_done(struct kcopy *k, int read_err, unsigned int write_err);
/* Wait until k->jobs_left is 0, answering signals (the first stops the
 * client's jobs) and ticking the progress (progress_tick) of the phase.
 * For the copy and for --verify's read jobs. */
void run_wait(struct kcopy *k);
/* Record that destination i failed at sector (absolute on it;
 * KCOPY_NO_SECTOR if no sector is to blame); the first error is the one
 * kept and reported, the lowest sector of any the one reported with it.
 * True if this was its first.  Takes k->lock. */
#define KCOPY_NO_SECTOR UINT64_MAX
bool run_dest_failed(struct kcopy *k, unsigned int i, int err,
		     const char *op, uint64_t sector);
int run_exit_status(const struct kcopy *k);
void run_trim_created(struct kcopy *k);

/* signals.c */
int signals_block(void);
/* Answer the signals that came in; true once the run is to stop. */
bool signals_poll(struct kcopy *k);
/* The signals' watcher while the main thread waits in a library call that
 * kcopyd_client_stop interrupts (an NBD open): a thread reads k->sig_fd,
 * and a SIGINT, SIGTERM or SIGHUP stops the client (the call fails with
 * -EINTR); SIGUSR1 and SIGWINCH are dropped (no progress yet). */
struct signals_watch {
	struct kcopy *k;
	pthread_t thread;
	int done_fd;		/* eventfd: the call returned */
	int signal;		/* the watcher's; read after the join */
};
/* Start w's thread (after signals_block: it inherits the blocked mask, so
 * every signal still comes to the signalfd); 0 or -errno (nothing to end). */
int signals_watch_start(struct kcopy *k, struct signals_watch *w);
/* End w's thread; the signal it took (0: none) becomes k->signal, for the
 * caller to say and to exit with (128 + N). */
void signals_watch_end(struct signals_watch *w);

/* clock.c: the monotonic clock, in seconds. */
double clock_now(void);

/* progress.c */
/* Decide the mode and where it goes, and start the first phase (copy or
 * zero) and the run's clock. */
void progress_start(struct kcopy *k);
/* Phase phase (PHASE_*) begins now; the one before ends (its last line
 * drawn).  total: PHASE_VERIFY's bytes to read back. */
void progress_phase(struct kcopy *k, int phase, uint64_t total);
/* An update: notes the flush (all written, the jobs not over) and, unless
 * --progress is off, draws.  final: the run is over (its last line, once,
 * after the last phase); the phase's duration is taken then. */
void progress_tick(struct kcopy *k, bool final);
void progress_status_line(struct kcopy *k);
/* "copy", "zero", "flush", "verify" */
const char *progress_phase_name(int phase);
/* SIGWINCH: the terminal's width again. */
void progress_resize(struct kcopy *k);

/* hash.c: each returns 0 or -errno and prints nothing. */
/* The HASH_* algorithm named by the len characters at name, or -EINVAL. */
int hash_alg_of(const char *name, size_t len);
const char *hash_name(unsigned int alg);
/* Start the digests algs of a region that begins at first_sector. */
int hash_start(struct hash_set *h, unsigned int algs, uint64_t first_sector);
/* The next data of the region; out of order, it spoils the digests. */
void hash_update(struct hash_set *h, uint64_t sector, uint64_t count,
		 const void *data);
/* The digests, into h->hex (h->done), if the data ran without a gap from
 * the first sector to end_sector, of which the last has last_bytes (1 to
 * 512) of data; -ENODATA if it did not.  0 and nothing done without
 * algorithms. */
int hash_finish(struct hash_set *h, uint64_t end_sector,
		unsigned int last_bytes);
/* Why hash_finish() gave no digest for a region that ends at end_sector,
 * into buf (size bytes): "did not read sectors A..B" (and how many other
 * ranges), or that the data came out of order or failed to go in; prefix
 * comes first ("this run resumed from the mapfile and " for one).  0, or
 * -ENODATA if nothing is missing. */
int hash_why(const struct hash_set *h, uint64_t end_sector,
	     const char *prefix, char *buf, size_t size);
void hash_free(struct hash_set *h);

/* verify.c */
/* Install the copy's data hook, for --verify's checksums and --hash's
 * digests of the source, whichever were asked for.  0, or -errno after
 * saying so. */
int verify_init(struct kcopy *k);
void verify_dests(struct kcopy *k);
void verify_free(struct kcopy *k);

/* used.c */
/* --used, --domain-mapfile: the map into k->used.  0, or -errno after a
 * setup error that names what it found. */
int used_open(struct kcopy *k);
/* The bytes of the map's extents (what the copy goes through). */
uint64_t used_work_bytes(const struct kcopy *k);
void used_free(struct kcopy *k);

/* The extents of k->used from the used byte ranges r (of the region,
 * from its start) and those that need only read as zeros, z; both sorted
 * and apart.  The rest: left out, or zeros with --unused=zero. */
struct fs_range;
int used_extents(struct kcopy *k, const struct fs_range *r, size_t n,
		 const struct fs_range *z, size_t nz);

/* flash.c */
/* --bmap FILE, or the bmap beside the source image (unless --no-bmap):
 * read and checked against the source, into k->flash and k->used.  0, or
 * -errno after a setup error naming the file. */
int flash_open(struct kcopy *k);
/* The feed's filter (k->feed.filter) made the bmap's walk, which
 * flash_open() starts before the feed does: before feed_open(), for a
 * stream to go through the feed even when it is not compressed. */
void flash_filter(struct kcopy *k);
/* The copy's data hook's part: the source's count sectors of data at
 * sector go through the walk; at the first range whose checksum differs
 * the copy stops with a read error, said.  Engine thread. */
void flash_check(struct kcopy *k, uint64_t sector, uint64_t count,
		 const void *data);
/* After the copy: a copy that read all it had to went through the whole
 * image (else a read error, said). */
void flash_finish(struct kcopy *k);
void flash_free(struct kcopy *k);

/* plan.c */
void plan_print(struct kcopy *k);

/* report.c: the report (--report) and the digests in coreutils' format
 * (--hash-file); without either, each does nothing. */
/* Before output_init(): note whether standard output was open. */
void report_init(struct kcopy *k);
/* At setup: each FILE is not a region, not the other FILE, not a FIFO or
 * a device, and a file can be made beside it.  0, or -errno after
 * printing a setup error. */
int report_open(struct kcopy *k);
/* Just before the copy: put a placeholder ("state": "running", or a
 * comment) in place of an earlier report or digests file, if there is
 * one.  0, or -errno after printing a setup error. */
int report_start(struct kcopy *k);
/* After the copy: the report and the digests file.  0, or -errno after
 * printing why not (of the first that failed). */
int report_write(struct kcopy *k, int status);
/* Remove the temporary files, and the placeholders that nothing replaced. */
void report_free(struct kcopy *k);
void report_closing_line(struct kcopy *k, int status);
/* The phases' durations, "copy 1.200 s, flush 0.100 s, verify 0.800 s",
 * into buf (len bytes); buf. */
const char *report_phases_text(const struct kcopy *k, char *buf, size_t len);

/* Jobs of a --mapfile copy kept in flight (run.c): the engine never idles
 * between one and the next. */
#define KCOPY_MAP_IN_FLIGHT 3

/* mapfile.c: without --mapfile, each does nothing (mapfile_next: false). */
/* At setup, after the targets: read FILE if it exists and check that it
 * is this copy's (or GNU ddrescue's); failed destinations it lists are
 * failed again (k->write_err).  0, or -errno after a setup error. */
int mapfile_open(struct kcopy *k);
/* Before the copy: what is left to do, and the first mapfile.  0 or
 * -errno, said. */
int mapfile_start(struct kcopy *k);
/* The next piece to copy, in source sectors; false when none is left. */
bool mapfile_next(struct kcopy *k, uint64_t *sector, uint64_t *count);
/* A piece's job ended, its callback has run: it is durable on every
 * destination still live (KCOPYD_FLUSH); its bad ranges are unreadable. */
void mapfile_done(struct kcopy *k, uint64_t sector, uint64_t count);
/* What the mapfile says of the copy, after mapfile_open (for
 * --dry-run): bytes copied ('+'), unreadable ('-') and not done ('?') of
 * the source region, and whether the file exists (else a new one is to be
 * made).  false without --mapfile. */
bool mapfile_state(const struct kcopy *k, uint64_t *done, uint64_t *bad,
		   uint64_t *left, bool *exists);
/* Write the mapfile if the checkpoint interval has passed (or now). */
void mapfile_checkpoint(struct kcopy *k, bool now);
/* After the copy: the last mapfile, and the outcome of the whole copy
 * (bytes, read_err, bad ranges) into k for the report and exit status. */
int mapfile_finish(struct kcopy *k);
void mapfile_free(struct kcopy *k);

/* resume.c: may a mapfile that exists be resumed from? */
struct mapfmt;
struct mapfmt_side;
enum {
	RESUME_BLOCKS,		/* its blocks are this copy's progress */
	RESUME_OVER,		/* start over, but take its failures */
	RESUME_NOTHING,		/* start over, taking nothing of it */
};
/* Parse the mapfile's text (len bytes at text) into f (the caller frees
 * it with mapfmt_free), and check it is this copy's (source region
 * [begin, end) in bytes) and, if it holds progress, that the sides are
 * what it recorded; --force overrides.  fresh[i]: destination i is not
 * what the progress was written to.  RESUME_*, or -errno after a setup
 * error. */
int resume_check(struct kcopy *k, char *text, size_t len, uint64_t begin,
		 uint64_t end, struct mapfmt *f, bool *fresh);
/* Fail again the destinations f lists as failed (not the fresh ones):
 * 0; or 1 with --retry-failed: the whole region is to be copied again. */
int resume_take_failed(struct kcopy *k, const struct mapfmt *f,
		       const bool *fresh);
/* Side t as the mapfile records it (its path, region, identity, size):
 * 0 or -ENOMEM. */
int resume_side_record(const struct target *t, struct mapfmt_side *s);

#endif /* KCOPY_H */
