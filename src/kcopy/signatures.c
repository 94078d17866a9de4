/* signatures.c - what libblkid finds on a device or a file: the file
 * system's or other signature (TYPE, LABEL, UUID), the partition table
 * (PTTYPE, PTUUID) and its partitions, each with the signature on it; for
 * --dry-run, which names what it is about to overwrite.  Also the stand-in
 * libblkid is given of an NBD export (which it cannot open): its first and
 * last MiB in a sparse memory file.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Only reads: every probe is of a descriptor the caller opened, at an
 * offset and a size the caller gives.  Main thread, at setup.
 */
#include <config.h>

#include <blkid.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kcopy.h"

/* What libblkid is given of an NBD export: the first and the last MiB
 * (every superblock and partition table it looks for lies there). */
#define PROBE_EDGE (1u << 20)

int signatures_edges_file(struct kcopyd_client *kc, int fd, uint64_t base,
			  uint64_t size)
{
	size_t n = size < PROBE_EDGE ? (size_t)size : PROBE_EDGE;
	char *buf = malloc(PROBE_EDGE);
	int mfd = memfd_create("kcopy-probe", MFD_CLOEXEC), r = 0;
	uint64_t tail = size - n;

	if (mfd < 0 || !buf) {
		r = mfd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	if (ftruncate(mfd, (off_t)size) < 0)
		r = -errno;
	if (r == 0)
		r = kcopyd_read(kc, fd, buf, n, base);
	if (r == 0 && pwrite(mfd, buf, n, 0) != (ssize_t)n)
		r = -EIO;
	if (r == 0 && tail > n)
		r = kcopyd_read(kc, fd, buf, n, base + tail);
	if (r == 0 && tail > n && pwrite(mfd, buf, n, (off_t)tail) != (ssize_t)n)
		r = -EIO;
out:
	free(buf);
	if (r < 0 && mfd >= 0)
		close(mfd);
	return r < 0 ? r : mfd;
}

/* Value name of the probe's result into buf (len bytes), "" without. */
static void value(blkid_probe pr, const char *name, char *buf, size_t len)
{
	const char *v;

	if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0)
		snprintf(buf, len, "%s", v);
	else
		buf[0] = 0;
}

/* The signature of [off, off + size) of fd into sig.  0 (nothing found is
 * not an error), or -errno. */
static int probe_one(int fd, uint64_t off, uint64_t size,
		     struct signature *sig, blkid_probe *keep)
{
	blkid_probe pr = blkid_new_probe();
	int r;

	memset(sig, 0, sizeof(*sig));
	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, (blkid_loff_t)off,
				   (blkid_loff_t)size) < 0) {
		blkid_free_probe(pr);
		return -EIO;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE |
					  BLKID_SUBLKS_LABEL |
					  BLKID_SUBLKS_UUID);
	blkid_probe_enable_partitions(pr, !!keep);
	r = blkid_do_safeprobe(pr);
	if (r == 0) {
		value(pr, "TYPE", sig->type, sizeof(sig->type));
		value(pr, "LABEL", sig->label, sizeof(sig->label));
		value(pr, "UUID", sig->uuid, sizeof(sig->uuid));
		value(pr, "PTTYPE", sig->pttype, sizeof(sig->pttype));
		value(pr, "PTUUID", sig->ptuuid, sizeof(sig->ptuuid));
	}
	sig->ambivalent = r == -2;
	if (keep && r >= 0) {
		*keep = pr;
		return 0;
	}
	blkid_free_probe(pr);
	return r < 0 && r != -2 ? -EIO : 0;
}

/* The partitions of the table pr found, each with its signature probed on
 * fd (off: where the probed storage starts in fd). */
static int take_partitions(blkid_probe pr, int fd, uint64_t off,
			   struct signatures *s)
{
	blkid_partlist pl = blkid_probe_get_partitions(pr);
	int i, n = pl ? blkid_partlist_numof_partitions(pl) : 0;

	if (n <= 0)
		return 0;
	s->parts = calloc((size_t)n, sizeof(*s->parts));
	if (!s->parts)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		blkid_partition p = blkid_partlist_get_partition(pl, i);
		struct sig_partition *sp = &s->parts[s->num_parts];
		const char *t;

		if (!p)
			continue;
		sp->number = (unsigned int)blkid_partition_get_partno(p);
		sp->start = (uint64_t)blkid_partition_get_start(p);
		sp->count = (uint64_t)blkid_partition_get_size(p);
		t = blkid_partition_get_type_string(p);
		if (t)
			snprintf(sp->type, sizeof(sp->type), "%s", t);
		else
			snprintf(sp->type, sizeof(sp->type), "0x%02x",
				 (unsigned int)blkid_partition_get_type(p));
		t = blkid_partition_get_name(p);
		snprintf(sp->name, sizeof(sp->name), "%s", t ? t : "");
		/* A partition that is its table's container (an extended
		 * one) or beyond the storage has no signature of its own to
		 * show: it is not probed. */
		if (!blkid_partition_is_extended(p) && sp->count)
			probe_one(fd, off + sp->start * KC_SECTOR_SIZE,
				  sp->count * KC_SECTOR_SIZE, &sp->sig, NULL);
		s->num_parts++;
	}
	return 0;
}

int signatures_probe(int fd, uint64_t off, uint64_t size, bool parts,
		     struct signatures *s)
{
	blkid_probe pr = NULL;
	int r;

	memset(s, 0, sizeof(*s));
	r = probe_one(fd, off, size, &s->sig, &pr);
	if (r == 0 && pr && parts && s->sig.pttype[0])
		r = take_partitions(pr, fd, off, s);
	if (pr)
		blkid_free_probe(pr);
	return r;
}

void signatures_free(struct signatures *s)
{
	free(s->parts);
	s->parts = NULL;
	s->num_parts = 0;
}
