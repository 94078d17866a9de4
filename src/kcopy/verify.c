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

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "kcopy.h"

/* The library's data hook: a sub-job's data, read and ready to be written.
 * kcopyd_set_data_fn(3): every sub-job starts at a multiple of the sub-job
 * size from the region's start and is delivered once; only the last is
 * shorter.  So sub-job i has checksum i. */
static void record(int src_fd, uint64_t sector, uint64_t count,
		   const void *data, void *context)
{
	struct verify *vf = context;
	size_t i = (size_t)((sector - vf->first_sector) / vf->chunk_sectors);

	(void)src_fd;
	assert((sector - vf->first_sector) % vf->chunk_sectors == 0);
	assert(i < vf->num && count <= vf->chunk_sectors);
	vf->sums[i] = XXH3_64bits(data, count * KC_SECTOR_SIZE);
}

/* Size the table of checksums to the source region and install the data
 * hook.  0, or -ENOMEM after saying so. */
int verify_init(struct kcopy *k)
{
	struct verify *vf = &k->verify;
	struct kcopyd_stats st;

	kcopyd_get_stats(k->kc, &st);
	vf->chunk_sectors = st.subjob_size / KC_SECTOR_SIZE;
	vf->first_sector = k->src.sector;
	vf->num = (size_t)((k->src.count + vf->chunk_sectors - 1) /
			   vf->chunk_sectors);
	vf->sums = calloc(vf->num ? vf->num : 1, sizeof(*vf->sums));
	if (!vf->sums) {
		say(&k->out, MSG_ERROR, "--verify: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	kcopyd_set_data_fn(k->kc, record, vf);
	return 0;
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

/* Read destination i back and compare; a mismatch or a failed read is
 * that destination's error.  Returns 0, or -EINTR if a signal stopped it. */
static int verify_dest(struct kcopy *k, unsigned int i)
{
	struct verify *vf = &k->verify;
	struct target *t = &k->dests[i];
	size_t len = vf->chunk_sectors * KC_SECTOR_SIZE, n;
	int direct_fd = open(t->spec.path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	void *buf = aligned_alloc(KCOPYD_PAGE_SIZE, len);
	int ret = 0, read_error = 0;

	if (!buf) {
		read_error = -ENOMEM;
		goto out;
	}
	/* Buffered fallback: drop what the copy left in the page cache. */
	posix_fadvise(t->fd, 0, 0, POSIX_FADV_DONTNEED);
	for (n = 0; n < vf->num; n++) {
		uint64_t off = (uint64_t)n * vf->chunk_sectors;
		uint64_t count = t->count - off < vf->chunk_sectors
				 ? t->count - off : vf->chunk_sectors;
		int r;

		if (signals_poll(k)) {
			ret = -EINTR;
			goto out;
		}
		r = read_back(direct_fd, t->fd, buf, count * KC_SECTOR_SIZE,
			      (off_t)((t->sector + off) * KC_SECTOR_SIZE));
		if (r < 0) {
			if (!read_error)
				read_error = r;
			add_mismatch(t, t->sector + off, count);
			continue;
		}
		if (XXH3_64bits(buf, count * KC_SECTOR_SIZE) != vf->sums[n])
			add_mismatch(t, t->sector + off, count);
	}
out:
	if (ret == 0 && read_error)
		run_dest_failed(k, i, read_error, "verify read");
	else if (ret == 0 && t->num_mismatches)
		run_dest_failed(k, i, -EILSEQ, "verify");
	if (ret == 0 && (read_error || t->num_mismatches))
		say(&k->out, MSG_NOTE, "destination %u '%s': verify failed: %zu "
		    "mismatched range(s), first at sector %" PRIu64, i + 1,
		    t->spec.path, t->num_mismatches,
		    t->num_mismatches ? t->mismatches[0].sector : 0);
	if (direct_fd >= 0)
		close(direct_fd);
	free(buf);
	return ret;
}

/* Read back every destination that has not failed, one after another.
 * k->verified says whether it ran to the end (a signal stops it). */
void verify_dests(struct kcopy *k)
{
	unsigned int i;

	k->verified = true;
	for (i = 0; i < k->num_dests; i++) {
		if ((k->write_err >> i) & 1)
			continue;
		say(&k->out, MSG_VERBOSE, "verifying destination %u '%s'",
		    i + 1, k->dests[i].spec.path);
		if (verify_dest(k, i) < 0) {
			k->verified = false;	/* stopped by a signal */
			return;
		}
	}
}

void verify_free(struct kcopy *k)
{
	free(k->verify.sums);
	k->verify.sums = NULL;
}
