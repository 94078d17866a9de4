/* fsmap-dump - run a file-system map reader (src/kcopy/fs-*.c) on an image
 * or device, as --used does but without the copy engine: the type from
 * libblkid, then
 *   type block_size fs_size used_bytes num_ranges dirty-reason
 *   pos len          (one line per used range, bytes, decimal)
 *   pos len z        (a used range that needs only read as zeros)
 * With a second argument, also copy the used ranges into DEST (pread and
 * pwrite) and zero the z ranges, which a test can then check with the
 * file system's fsck.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <unistd.h>

#include "fsmap.h"

static int read_fd(void *ctx, void *buf, size_t len, uint64_t off)
{
	int fd = *(int *)ctx;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));

		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* The used ranges in order, those that need only read as zeros with a
 * third field, "z". */
static void print_ranges(const struct fs_map *m)
{
	size_t i = 0, j = 0;

	while (i < m->num || j < m->num_zeros) {
		if (j == m->num_zeros ||
		    (i < m->num && m->ranges[i].pos < m->zeros[j].pos)) {
			printf("%" PRIu64 " %" PRIu64 "\n", m->ranges[i].pos,
			       m->ranges[i].len);
			i++;
		} else {
			printf("%" PRIu64 " %" PRIu64 " z\n", m->zeros[j].pos,
			       m->zeros[j].len);
			j++;
		}
	}
}

int main(int argc, char **argv)
{
	struct fs_map m = { .type = "" };
	struct fs_source src = { read_fd, NULL, 0 };
	char why[256] = "";
	const char *type = NULL;
	blkid_probe pr;
	fs_reader_fn reader;
	struct stat st;
	uint64_t size;
	size_t i;
	int fd, r;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: fsmap-dump IMAGE [DEST]\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(argv[1]);
		return 2;
	}
	size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0) {
		perror(argv[1]);
		return 2;
	}
	src.ctx = &fd;
	src.size = size;
	pr = blkid_new_probe();
	if (!pr || blkid_probe_set_device(pr, fd, 0, 0) < 0) {
		fprintf(stderr, "%s: libblkid failed\n", argv[1]);
		return 2;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
	if (blkid_do_safeprobe(pr) != 0 ||
	    blkid_probe_lookup_value(pr, "TYPE", &type, NULL) != 0) {
		fprintf(stderr, "%s: no file system found\n", argv[1]);
		blkid_free_probe(pr);
		return 2;
	}
	snprintf(m.type, sizeof(m.type), "%s", type);
	blkid_free_probe(pr);
	reader = fsmap_reader(m.type);
	if (!reader) {
		fprintf(stderr, "%s: %s: no reader\n", argv[1], m.type);
		return 2;
	}
	r = reader(&src, &m, why, sizeof(why));
	if (r < 0) {
		fprintf(stderr, "%s: %s: %s (%s)\n", argv[1], m.type,
			strerror(-r), why);
		fsmap_free(&m);
		return 1;
	}
	if (fsmap_finish(&m, size) < 0) {
		fprintf(stderr, "%s: out of memory\n", argv[1]);
		return 1;
	}
	printf("%s %" PRIu32 " %" PRIu64 " %" PRIu64 " %zu %s\n", m.type,
	       m.block_size, m.fs_size, m.used, m.num + m.num_zeros,
	       m.dirty[0] ? m.dirty : "clean");
	print_ranges(&m);
	if (argc == 3) {
		int out = open(argv[2], O_WRONLY);
		static char buf[1 << 20];

		if (out < 0) {
			perror(argv[2]);
			return 2;
		}
		for (i = 0; i < m.num_zeros; i++) {
			static const char zeros[1 << 16];
			uint64_t pos = m.zeros[i].pos, end = pos + m.zeros[i].len;

			while (pos < end) {
				size_t n = end - pos < sizeof(zeros) ?
					   (size_t)(end - pos) : sizeof(zeros);

				if (pwrite(out, zeros, n, (off_t)pos) !=
				    (ssize_t)n) {
					perror(argv[2]);
					return 2;
				}
				pos += n;
			}
		}
		for (i = 0; i < m.num; i++) {
			uint64_t pos = m.ranges[i].pos, end = pos + m.ranges[i].len;

			while (pos < end) {
				size_t n = end - pos < sizeof(buf) ?
					   (size_t)(end - pos) : sizeof(buf);

				if (read_fd(&fd, buf, n, pos) < 0 ||
				    pwrite(out, buf, n, (off_t)pos) != (ssize_t)n) {
					perror(argv[2]);
					return 2;
				}
				pos += n;
			}
		}
		if (fsync(out) < 0 || close(out) < 0) {
			perror(argv[2]);
			return 2;
		}
	}
	fsmap_free(&m);
	return 0;
}
