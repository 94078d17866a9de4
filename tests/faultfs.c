/*
 * faultfs - a tiny FUSE file system that serves one file, "image", backed by
 * an existing image file, and injects faults into chosen byte ranges.
 *
 * Attached with losetup, MOUNTPOINT/image becomes a real block device with
 * bad sectors, failing writes, silent corruption or a disk that dies after a
 * number of writes.  Used by the fault-injection tests (see functions.sh).
 *
 * Usage: faultfs [OPTIONS] BACKING_IMAGE MOUNTPOINT   (run with --help)
 *
 * The file is opened with direct_io, so the kernel page cache never hides
 * an injected fault: every read and write of the loop device reaches us.
 * The file system is always run single-threaded, so the write log is in
 * the order the requests were served.
 *
 * With --volatile it is a disk with a write-back cache that loses power:
 * writes are held in memory (4 KiB pages over the image; reads see them),
 * an fsync of the image (what the loop driver sends for a flush of its
 * device) writes them through and fsyncs the image, and a write to
 * MOUNTPOINT/powercut drops everything held: from then on every read,
 * write and fsync fails with EIO.  As the file system is single-threaded,
 * the cut happens between two requests, and when the write to powercut
 * returns the image holds exactly what was flushed before it.
 */

#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define IMAGE_NAME "image"
#define IMAGE_PATH "/" IMAGE_NAME
#define CUT_NAME "powercut"
#define CUT_PATH "/" CUT_NAME
#define PAGE 4096u
#define MAX_RANGES 256

struct range {
	uint64_t off;
	uint64_t len;
};

struct range_set {
	const char *option;
	unsigned int count;
	struct range r[MAX_RANGES];
};

static struct {
	int fd;                       /* backing image, O_RDWR */
	const char *backing_path;
	FILE *write_log;
	struct range_set read_error;
	struct range_set write_error;
	struct range_set write_enospc;
	struct range_set corrupt;
	bool fsync_error;
	bool fail_after_set;
	uint64_t fail_after;          /* --fail-all-after-writes N */
	uint64_t good_writes;         /* successful write requests so far */
	/* --volatile: pages written but not yet flushed, by page index */
	bool volatile_cache;
	bool cut;                     /* the power is off: the disk is dead */
	uint64_t size;                /* of the image, fixed */
	size_t num_pages;
	char **held;                  /* [num_pages], NULL: not held */
	size_t num_held;
	uint64_t fsyncs;              /* successful ones */
	uint64_t written_through;     /* pages written through by fsyncs */
} fs = {
	.fd = -1,
	.read_error = { .option = "--read-error" },
	.write_error = { .option = "--write-error" },
	.write_enospc = { .option = "--write-enospc" },
	.corrupt = { .option = "--corrupt" },
};

static const char *prog = "faultfs";

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: %s [OPTIONS] BACKING_IMAGE MOUNTPOINT\n"
		"\n"
		"Serve BACKING_IMAGE as MOUNTPOINT/" IMAGE_NAME " (fixed size, direct I/O) and\n"
		"inject faults.  Offsets and lengths are decimal byte counts; each range\n"
		"option may be given up to %d times.\n"
		"\n"
		"  --read-error OFF:LEN       reads overlapping [OFF,OFF+LEN) fail with EIO\n"
		"  --write-error OFF:LEN      writes overlapping the range fail with EIO,\n"
		"                             nothing of the request is stored\n"
		"  --write-enospc OFF:LEN     same, failing with ENOSPC\n"
		"  --corrupt OFF:LEN          writes overlapping the range succeed, but the\n"
		"                             bytes inside the range are stored XOR 0xFF\n"
		"  --write-log FILE           append \"OFFSET LENGTH\" per write request\n"
		"  --fail-all-after-writes N  after N successful writes every read, write\n"
		"                             and fsync fails with EIO\n"
		"  --fsync-error              fsync fails with EIO\n"
		"  --volatile                 a write-back cache that can lose power:\n"
		"                             writes are held in memory (4 KiB pages;\n"
		"                             reads see them, at most the image's size)\n"
		"                             and reach the image only at an fsync of\n"
		"                             it (a flush of the loop device), which\n"
		"                             writes them through and fsyncs the image.\n"
		"                             A write to MOUNTPOINT/" CUT_NAME " cuts the\n"
		"                             power: what is held is dropped (the number\n"
		"                             of bytes is logged on stderr) and every\n"
		"                             later read, write and fsync fails with\n"
		"                             EIO; when that write returns, the image\n"
		"                             holds exactly what was flushed.  A close\n"
		"                             or an unmount writes nothing through.\n"
		"  -f                         stay in the foreground\n"
		"  -d, -o OPT[,OPT...]        passed on to FUSE (e.g. -o allow_other)\n"
		"  -h, --help                 show this help\n"
		"\n"
		"Options may also be written --option=VALUE.  The file system always\n"
		"runs single-threaded.\n",
		prog, MAX_RANGES);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
	exit(2);
}

/* Parse a decimal unsigned 64-bit number; the whole string must be used. */
static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

static void add_range(struct range_set *set, const char *arg)
{
	char buf[64];
	char *colon;
	uint64_t off, len;

	if (strlen(arg) >= sizeof(buf))
		usage_error("bad argument to %s: '%s' (expected OFF:LEN)",
			    set->option, arg);
	strcpy(buf, arg);
	colon = strchr(buf, ':');
	if (!colon)
		usage_error("bad argument to %s: '%s' (expected OFF:LEN)",
			    set->option, arg);
	*colon = '\0';
	if (!parse_u64(buf, &off) || !parse_u64(colon + 1, &len))
		usage_error("bad argument to %s: '%s' (OFF and LEN must be "
			    "decimal byte counts)", set->option, arg);
	if (len == 0)
		usage_error("bad argument to %s: '%s' (LEN must not be 0)",
			    set->option, arg);
	if (off > UINT64_MAX - len)
		usage_error("bad argument to %s: '%s' (range overflows)",
			    set->option, arg);
	if (set->count >= MAX_RANGES)
		usage_error("too many %s ranges (at most %d)", set->option,
			    MAX_RANGES);
	set->r[set->count].off = off;
	set->r[set->count].len = len;
	set->count++;
}

/* Does [off, off+len) overlap any range of the set? */
static bool overlaps(const struct range_set *set, uint64_t off, uint64_t len)
{
	unsigned int i;

	if (len == 0)
		return false;
	for (i = 0; i < set->count; i++) {
		const struct range *r = &set->r[i];

		if (off < r->off + r->len && r->off < off + len)
			return true;
	}
	return false;
}

static bool disk_dead(void)
{
	return fs.cut || (fs.fail_after_set && fs.good_writes >= fs.fail_after);
}

/* ----------------------------------------------------- --volatile cache */

/* pread all of [off, off+len) from the image; zeros past its end. */
static int image_read(char *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fs.fd, buf + done, len - done,
				  (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			memset(buf + done, 0, len - done);
			break;
		}
		done += (size_t)n;
	}
	return 0;
}

static int image_write(const char *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fs.fd, buf + done, len - done,
				   (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Bytes of page i inside the image (the last page may be short). */
static size_t page_len(size_t i)
{
	uint64_t off = (uint64_t)i * PAGE;

	return fs.size - off < PAGE ? (size_t)(fs.size - off) : PAGE;
}

static int cache_read(char *buf, size_t size, uint64_t off)
{
	size_t done = 0;

	while (done < size) {
		uint64_t pos = off + done;
		size_t i = (size_t)(pos / PAGE), in = (size_t)(pos % PAGE);
		size_t n = PAGE - in;
		int r;

		if (n > size - done)
			n = size - done;
		if (fs.held[i]) {
			memcpy(buf + done, fs.held[i] + in, n);
		} else {
			r = image_read(buf + done, n, pos);
			if (r < 0)
				return r;
		}
		done += n;
	}
	return 0;
}

/* Hold [off, off+size) (inside the image); a page first held is read
 * from the image, so a partial write keeps the rest of it. */
static int cache_write(const char *buf, size_t size, uint64_t off)
{
	size_t done = 0;

	while (done < size) {
		uint64_t pos = off + done;
		size_t i = (size_t)(pos / PAGE), in = (size_t)(pos % PAGE);
		size_t n = PAGE - in;

		if (n > size - done)
			n = size - done;
		if (!fs.held[i]) {
			char *p = malloc(PAGE);
			int r;

			if (!p)
				return -ENOMEM;
			if (n < page_len(i)) {
				r = image_read(p, page_len(i),
					       (uint64_t)i * PAGE);
				if (r < 0) {
					free(p);
					return r;
				}
			}
			fs.held[i] = p;
			fs.num_held++;
		}
		memcpy(fs.held[i] + in, buf + done, n);
		done += n;
	}
	return 0;
}

/* Write every held page through to the image, then fdatasync it. */
static int cache_flush(void)
{
	size_t i;
	int r;

	for (i = 0; fs.num_held && i < fs.num_pages; i++) {
		if (!fs.held[i])
			continue;
		r = image_write(fs.held[i], page_len(i), (uint64_t)i * PAGE);
		if (r < 0)
			return r;
		free(fs.held[i]);
		fs.held[i] = NULL;
		fs.num_held--;
		fs.written_through++;
	}
	if (fdatasync(fs.fd) < 0)
		return -errno;
	fs.fsyncs++;
	return 0;
}

/* Drop every held page; returns how many there were. */
static size_t cache_drop(void)
{
	size_t i, n = fs.num_held;

	for (i = 0; fs.num_held && i < fs.num_pages; i++) {
		if (fs.held[i]) {
			free(fs.held[i]);
			fs.held[i] = NULL;
			fs.num_held--;
		}
	}
	return n;
}

static void power_cut(void)
{
	size_t n;

	if (fs.cut) {
		fprintf(stderr, "%s: power cut: already cut\n", prog);
		return;
	}
	n = cache_drop();
	fs.cut = true;
	fprintf(stderr, "%s: power cut: dropped %zu bytes not flushed (%zu "
		"pages); %" PRIu64 " fsyncs had written %" PRIu64 " pages "
		"through\n", prog, n * PAGE, n, fs.fsyncs, fs.written_through);
}

/* ------------------------------------------------------------ operations */

static void *ffs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->direct_io = 1;
	cfg->kernel_cache = 0;
	cfg->auto_cache = 0;
	cfg->use_ino = 0;
	return NULL;
}

static void ffs_destroy(void *private_data)
{
	(void)private_data;
	if (fs.volatile_cache && !fs.cut && fs.num_held) {
		size_t n = cache_drop();

		fprintf(stderr, "%s: unmounted: dropped %zu bytes not flushed "
			"(%zu pages)\n", prog, n * PAGE, n);
	}
	if (fs.fd >= 0) {
		fdatasync(fs.fd);
		close(fs.fd);
		fs.fd = -1;
	}
	if (fs.write_log) {
		fclose(fs.write_log);
		fs.write_log = NULL;
	}
}

static int ffs_getattr(const char *path, struct stat *st,
		       struct fuse_file_info *fi)
{
	struct stat bst;

	(void)fi;
	if (fstat(fs.fd, &bst) < 0)
		return -errno;
	memset(st, 0, sizeof(*st));
	st->st_uid = bst.st_uid;
	st->st_gid = bst.st_gid;
	st->st_atim = bst.st_atim;
	st->st_mtim = bst.st_mtim;
	st->st_ctim = bst.st_ctim;
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, IMAGE_PATH) == 0) {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = bst.st_size;
		st->st_blksize = 4096;
		st->st_blocks = bst.st_blocks;
		return 0;
	}
	if (fs.volatile_cache && strcmp(path, CUT_PATH) == 0) {
		st->st_mode = S_IFREG | 0200;
		st->st_nlink = 1;
		return 0;
	}
	return -ENOENT;
}

static int ffs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		       off_t offset, struct fuse_file_info *fi,
		       enum fuse_readdir_flags flags)
{
	(void)offset;
	(void)fi;
	(void)flags;
	if (strcmp(path, "/") != 0)
		return -ENOTDIR;
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	filler(buf, IMAGE_NAME, NULL, 0, 0);
	if (fs.volatile_cache)
		filler(buf, CUT_NAME, NULL, 0, 0);
	return 0;
}

static int ffs_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, "/") == 0)
		return -EISDIR;
	if (fs.volatile_cache && strcmp(path, CUT_PATH) == 0) {
		fi->direct_io = 1;
		return 0;
	}
	if (strcmp(path, IMAGE_PATH) != 0)
		return -ENOENT;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	return 0;
}

static int ffs_read(const char *path, char *buf, size_t size, off_t offset,
		    struct fuse_file_info *fi)
{
	size_t done = 0;

	(void)fi;
	if (offset < 0)
		return -EINVAL;
	if (fs.volatile_cache && strcmp(path, CUT_PATH) == 0)
		return 0;
	if (disk_dead())
		return -EIO;
	/* A read touching a bad range fails as a whole. */
	if (overlaps(&fs.read_error, (uint64_t)offset, size))
		return -EIO;
	if (size > INT_MAX)
		size = INT_MAX;
	if (fs.volatile_cache) {
		int r;

		if ((uint64_t)offset >= fs.size)
			return 0;
		if (size > fs.size - (uint64_t)offset)
			size = (size_t)(fs.size - (uint64_t)offset);
		r = cache_read(buf, size, (uint64_t)offset);
		return r < 0 ? r : (int)size;
	}
	while (done < size) {
		ssize_t n = pread(fs.fd, buf + done, size - done,
				  offset + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done ? (int)done : -errno;
		}
		if (n == 0)
			break; /* end of file */
		done += (size_t)n;
	}
	return (int)done;
}

static void log_write(uint64_t off, size_t size)
{
	if (!fs.write_log)
		return;
	fprintf(fs.write_log, "%" PRIu64 " %zu\n", off, size);
	fflush(fs.write_log);
}

static int ffs_write(const char *path, const char *buf, size_t size,
		     off_t offset, struct fuse_file_info *fi)
{
	const char *src = buf;
	char *copy = NULL;
	uint64_t off = (uint64_t)offset;
	size_t done = 0;
	struct stat bst;

	(void)fi;
	if (offset < 0)
		return -EINVAL;
	if (fs.volatile_cache && strcmp(path, CUT_PATH) == 0) {
		power_cut();
		return size > INT_MAX ? INT_MAX : (int)size;
	}
	log_write(off, size);
	if (disk_dead())
		return -EIO;
	if (overlaps(&fs.write_error, off, size))
		return -EIO;
	if (overlaps(&fs.write_enospc, off, size))
		return -ENOSPC;

	/* The size is fixed: nothing is stored beyond the end of the image. */
	if (fstat(fs.fd, &bst) < 0)
		return -errno;
	if (off >= (uint64_t)bst.st_size)
		return size ? -ENOSPC : 0;
	if (size > (uint64_t)bst.st_size - off)
		size = (size_t)((uint64_t)bst.st_size - off);
	if (size > INT_MAX)
		size = INT_MAX;

	if (overlaps(&fs.corrupt, off, size)) {
		unsigned int i;

		copy = malloc(size);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, buf, size);
		for (i = 0; i < fs.corrupt.count; i++) {
			const struct range *r = &fs.corrupt.r[i];
			uint64_t lo = off > r->off ? off : r->off;
			uint64_t hi = off + size < r->off + r->len ?
				      off + size : r->off + r->len;

			for (; lo < hi; lo++)
				copy[lo - off] ^= (char)0xff;
		}
		src = copy;
	}

	if (fs.volatile_cache) {
		int r = cache_write(src, size, off);

		free(copy);
		if (r < 0)
			return r;
		fs.good_writes++;
		return (int)size;
	}
	while (done < size) {
		ssize_t n = pwrite(fs.fd, src + done, size - done,
				   offset + (off_t)done);
		if (n < 0) {
			int err = errno;

			if (err == EINTR)
				continue;
			free(copy);
			if (done)
				break;
			return -err;
		}
		done += (size_t)n;
	}
	free(copy);
	fs.good_writes++;
	return (int)done;
}

static int ffs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct stat bst;

	(void)fi;
	if (fs.volatile_cache && strcmp(path, CUT_PATH) == 0)
		return 0; /* echo >powercut truncates it first */
	if (strcmp(path, IMAGE_PATH) != 0)
		return strcmp(path, "/") == 0 ? -EISDIR : -ENOENT;
	if (fstat(fs.fd, &bst) < 0)
		return -errno;
	/* The size is fixed; "truncating" to the current size is harmless. */
	return size == bst.st_size ? 0 : -EPERM;
}

static int ffs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	(void)fi;
	if (fs.fsync_error || disk_dead())
		return -EIO;
	if (fs.volatile_cache)
		return strcmp(path, IMAGE_PATH) == 0 ? cache_flush() : 0;
	if (fdatasync(fs.fd) < 0)
		return -errno;
	return 0;
}

static int ffs_flush(const char *path, struct fuse_file_info *fi)
{
	(void)fi;
	/* Called on every close(2); no fault is injected here.  A close is
	 * no flush of a --volatile cache. */
	if (fs.volatile_cache)
		return fs.cut && strcmp(path, CUT_PATH) != 0 ? -EIO : 0;
	if (fdatasync(fs.fd) < 0)
		return -errno;
	return 0;
}

static int ffs_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	if (fstatvfs(fs.fd, sv) < 0)
		return -errno;
	return 0;
}

static const struct fuse_operations ffs_ops = {
	.init = ffs_init,
	.destroy = ffs_destroy,
	.getattr = ffs_getattr,
	.readdir = ffs_readdir,
	.open = ffs_open,
	.read = ffs_read,
	.write = ffs_write,
	.truncate = ffs_truncate,
	.fsync = ffs_fsync,
	.flush = ffs_flush,
	.statfs = ffs_statfs,
};

/* ------------------------------------------------------------------ main */

/*
 * If argv[*i] is LONGOPT or LONGOPT=VALUE, return the value (taking the next
 * argument for the first form, advancing *i) and true; otherwise false.
 */
static bool take_opt(int argc, char **argv, int *i, const char *longopt,
		     const char **value)
{
	const char *a = argv[*i];
	size_t n = strlen(longopt);

	if (strncmp(a, longopt, n) != 0)
		return false;
	if (a[n] == '=') {
		*value = a + n + 1;
		return true;
	}
	if (a[n] != '\0')
		return false;
	if (*i + 1 >= argc)
		usage_error("option '%s' requires an argument", longopt);
	(*i)++;
	*value = argv[*i];
	return true;
}

int main(int argc, char **argv)
{
	char **fargv;
	int fargc = 0;
	const char *positional[2];
	int npos = 0;
	const char *log_path = NULL;
	bool opts_done = false;
	struct stat st;
	int i, ret;

	if (argc > 0 && argv[0] && *argv[0]) {
		const char *slash = strrchr(argv[0], '/');

		prog = slash ? slash + 1 : argv[0];
	}

	/* argv for FUSE: prog, -s, passed-through options, mountpoint, NULL */
	fargv = calloc((size_t)argc + 3, sizeof(*fargv));
	if (!fargv) {
		perror(prog);
		return 1;
	}
	fargv[fargc++] = argv[0];
	fargv[fargc++] = (char *)"-s";

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v;

		if (opts_done || a[0] != '-' || a[1] == '\0') {
			if (npos >= 2)
				usage_error("unexpected argument '%s'", a);
			positional[npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			opts_done = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (take_opt(argc, argv, &i, "--read-error", &v)) {
			add_range(&fs.read_error, v);
		} else if (take_opt(argc, argv, &i, "--write-error", &v)) {
			add_range(&fs.write_error, v);
		} else if (take_opt(argc, argv, &i, "--write-enospc", &v)) {
			add_range(&fs.write_enospc, v);
		} else if (take_opt(argc, argv, &i, "--corrupt", &v)) {
			add_range(&fs.corrupt, v);
		} else if (take_opt(argc, argv, &i, "--write-log", &v)) {
			if (!*v)
				usage_error("bad argument to --write-log: empty file name");
			log_path = v;
		} else if (take_opt(argc, argv, &i, "--fail-all-after-writes", &v)) {
			if (!parse_u64(v, &fs.fail_after))
				usage_error("bad argument to --fail-all-after-writes: "
					    "'%s' (expected a decimal count)", v);
			fs.fail_after_set = true;
		} else if (strcmp(a, "--fsync-error") == 0) {
			fs.fsync_error = true;
		} else if (strcmp(a, "--volatile") == 0) {
			fs.volatile_cache = true;
		} else if (strcmp(a, "-f") == 0 || strcmp(a, "-d") == 0 ||
			   strcmp(a, "-s") == 0) {
			if (strcmp(a, "-s") != 0)
				fargv[fargc++] = argv[i];
		} else if (strcmp(a, "-o") == 0) {
			if (i + 1 >= argc)
				usage_error("option '-o' requires an argument");
			fargv[fargc++] = argv[i++];
			fargv[fargc++] = argv[i];
		} else if (strncmp(a, "-o", 2) == 0) {
			fargv[fargc++] = argv[i];
		} else {
			usage_error("unknown option '%s'", a);
		}
	}
	if (npos < 2)
		usage_error(npos == 0 ? "missing BACKING_IMAGE and MOUNTPOINT"
				      : "missing MOUNTPOINT");
	fs.backing_path = positional[0];
	fargv[fargc++] = (char *)positional[1];
	fargv[fargc] = NULL;

	/* Open everything before FUSE daemonizes and changes directory. */
	fs.fd = open(fs.backing_path, O_RDWR | O_CLOEXEC);
	if (fs.fd < 0) {
		fprintf(stderr, "%s: cannot open backing image '%s': %s\n",
			prog, fs.backing_path, strerror(errno));
		return 1;
	}
	if (fstat(fs.fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "%s: backing image '%s' is not a regular file\n",
			prog, fs.backing_path);
		return 1;
	}
	fs.size = (uint64_t)st.st_size;
	if (fs.volatile_cache) {
		fs.num_pages = (size_t)((fs.size + PAGE - 1) / PAGE);
		fs.held = calloc(fs.num_pages ? fs.num_pages : 1,
				 sizeof(*fs.held));
		if (!fs.held) {
			perror(prog);
			return 1;
		}
	}
	if (log_path) {
		fs.write_log = fopen(log_path, "ae");
		if (!fs.write_log) {
			fprintf(stderr, "%s: cannot open write log '%s': %s\n",
				prog, log_path, strerror(errno));
			return 1;
		}
	}

	ret = fuse_main(fargc, fargv, &ffs_ops, NULL);
	free(fargv);
	return ret;
}
