/* verify.c - --verify: a checksum of every sub-job kept while it is copied,
 * then each destination read back and compared, without a second read of
 * the source.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One 64-bit xxHash per sub-job: 16 MiB of checksums per TiB copied with
 * 512 KiB sub-jobs.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "kcopy.h"

static struct {
	uint64_t *sums;
	size_t num;
	uint64_t chunk_sectors;		/* sectors per checksum */
	uint64_t first_sector;		/* the source region's */
} vf;

int verify_init(struct kcopy *k)
{
	struct kcopyd_stats st;

	kcopyd_get_stats(k->kc, &st);
	vf.chunk_sectors = st.subjob_size / KC_SECTOR_SIZE;
	vf.first_sector = k->src.sector;
	vf.num = (size_t)((k->src.count + vf.chunk_sectors - 1) /
			  vf.chunk_sectors);
	vf.sums = calloc(vf.num ? vf.num : 1, sizeof(*vf.sums));
	return vf.sums ? 0 : -ENOMEM;
}

/* The library's data hook: a sub-job's data, read and ready to be written.
 * Sub-jobs start on multiples of the sub-job size from the region's start. */
void verify_record(int src_fd, uint64_t sector, uint64_t count,
		   const void *data, void *context)
{
	size_t i = (size_t)((sector - vf.first_sector) / vf.chunk_sectors);

	if (i < vf.num)
		vf.sums[i] = XXH3_64bits(data, count * KC_SECTOR_SIZE);
}

static void add_mismatch(struct target *t, uint64_t sector, uint64_t count)
{
	struct mismatch *m;

	if (t->num_mismatches) {
		m = &t->mismatches[t->num_mismatches - 1];
		if (m->sector + m->count == sector) {
			m->count += count;
			return;
		}
	}
	m = realloc(t->mismatches, (t->num_mismatches + 1) * sizeof(*m));
	if (!m)
		return;
	t->mismatches = m;
	m[t->num_mismatches++] = (struct mismatch){ sector, count };
}

/* Read len bytes at pos, straight from the device where possible so that
 * the page cache cannot hide what is really stored. */
static int read_back(int direct_fd, int fd, void *buf, size_t len, off_t pos)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = -1;

		if (direct_fd >= 0)
			r = pread(direct_fd, (char *)buf + done, len - done,
				  pos + (off_t)done);
		if (r < 0 && (direct_fd < 0 || errno == EINVAL))
			r = pread(fd, (char *)buf + done, len - done,
				  pos + (off_t)done);
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		done += (size_t)r;
	}
	return 0;
}

/* Read t back and compare.  Returns 0, or -EINTR if a signal stopped it. */
int verify_dest(struct kcopy *k, struct target *t)
{
	size_t len = vf.chunk_sectors * KC_SECTOR_SIZE, i;
	int direct_fd = open(t->spec.path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	void *buf = aligned_alloc(KCOPYD_PAGE_SIZE, len);
	int ret = 0;

	if (!buf) {
		target_set_error(t, -ENOMEM, "verify");
		goto out;
	}
	/* Buffered fallback: drop what the copy left in the page cache. */
	posix_fadvise(t->fd, 0, 0, POSIX_FADV_DONTNEED);
	for (i = 0; i < vf.num; i++) {
		if (poll_signals(k)) {
			ret = -EINTR;
			goto out;
		}
		uint64_t off = (uint64_t)i * vf.chunk_sectors;
		uint64_t count = t->count - off < vf.chunk_sectors
				 ? t->count - off : vf.chunk_sectors;
		int r = read_back(direct_fd, t->fd, buf,
				  count * KC_SECTOR_SIZE,
				  (off_t)((t->sector + off) * KC_SECTOR_SIZE));

		if (r < 0) {
			target_set_error(t, r, "verify read");
			add_mismatch(t, t->sector + off, count);
			continue;
		}
		if (XXH3_64bits(buf, count * KC_SECTOR_SIZE) != vf.sums[i])
			add_mismatch(t, t->sector + off, count);
	}
	if (t->num_mismatches)
		target_set_error(t, -EILSEQ, "verify");
out:
	if (direct_fd >= 0)
		close(direct_fd);
	free(buf);
	return ret;
}

void verify_free(void)
{
	free(vf.sums);
	vf.sums = NULL;
}
