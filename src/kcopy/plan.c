/* plan.c - the --dry-run plan: what each region is, on what storage, with
 * what I/O; what each device or file is (its model, serial, backing file,
 * partition table, signatures and labels, where it is mounted or what
 * holds it), so that the disk is named before it is overwritten; and the
 * budget, mode, rate, verify, digests and mapfile of the copy.  Nothing is
 * written.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcopy.h"

static void print_region(const char *what, const struct target *t)
{
	char size[KC_FORMAT_SIZE_LEN], dsize[KC_FORMAT_SIZE_LEN];

	printf("%-14s %s\n", what, t->spec.path);
	if (t->count)
		printf("  region       sector %" PRIu64 ", %" PRIu64 " sectors "
		       "(%" PRIu64 " bytes, %s)\n", t->sector, t->count,
		       t->count * KC_SECTOR_SIZE,
		       kc_format_size(t->count * KC_SECTOR_SIZE, size,
				      sizeof(size)));
	else
		printf("  region       sector %" PRIu64 ", to the end of the "
		       "stream\n", t->sector);
	if (t->info.is_stream)
		printf("  storage      stream (a pipe or a socket), in order\n");
	else if (t->info.is_remote)
		printf("  storage      NBD export, %" PRIu64 " bytes (%s), "
		       "block %u bytes (preferred %u), %u connection(s)%s%s%s"
		       "%s\n", t->info.size,
		       kc_format_size(t->info.size, dsize, sizeof(dsize)),
		       t->info.logical_block_size,
		       t->info.preferred_block_size, t->info.connections,
		       t->info.can_multi_conn ? ", multi-conn" : "",
		       t->info.can_zero ? ", write zeroes" : "",
		       t->info.can_flush ? ", flush" : "",
		       t->info.read_only ? ", read-only" : "");
	else if (t->exists)
		printf("  storage      %s, %" PRIu64 " bytes (%s), logical "
		       "block %u bytes%s\n",
		       t->info.is_blockdev ? "block device" : "regular file",
		       t->info.size,
		       kc_format_size(t->info.size, dsize, sizeof(dsize)),
		       t->info.logical_block_size,
		       t->zoned ? ", host-managed zoned" : "");
	else
		printf("  storage      regular file, to be created\n");
	printf("  I/O          %s\n",
	       t->info.is_stream ? "non-blocking, in order" :
	       t->info.is_remote ? "NBD, asynchronous" :
	       !t->exists ? "direct if the file system takes it" :
	       t->info.can_direct ? "direct" : "buffered");
}

/* ", label \"L\", UUID U" of sig into buf (len bytes): its type, label
 * and id; "" if libblkid found no file system or other signature. */
static const char *sig_text(const struct signature *sig, char *buf,
			    size_t len)
{
	size_t n = 0;

	buf[0] = 0;
	if (sig->ambivalent)
		snprintf(buf, len, "several signatures (libblkid takes none)");
	else if (sig->type[0])
		n = (size_t)snprintf(buf, len, "%s", sig->type);
	if (n && sig->label[0] && n < len)
		n += (size_t)snprintf(buf + n, len - n, ", label \"%s\"",
				      sig->label);
	if (n && sig->uuid[0] && n < len)
		snprintf(buf + n, len - n, ", UUID %s", sig->uuid);
	return buf;
}

/* The model line and the backing file of a disk, as sysfs has them. */
static void print_disk_facts(const struct storage_facts *f)
{
	if (f->vendor[0] || f->model[0])
		printf("  model        %s%s%s%s%s\n", f->vendor,
		       f->vendor[0] && f->model[0] ? " " : "", f->model,
		       f->serial[0] ? ", serial " : "", f->serial);
	else if (f->serial[0])
		printf("  serial       %s\n", f->serial);
	if (f->backing[0] && f->loop_offset)
		printf("  backing file %s, from byte %" PRIu64 "\n", f->backing,
		       f->loop_offset);
	else if (f->backing[0])
		printf("  backing file %s\n", f->backing);
}

/* Where block device dev is mounted and what holds it, into buf (len
 * bytes); "" if neither. */
static const char *use_text(dev_t dev, char *buf, size_t len)
{
	struct storage_facts f;
	char mounts[512];
	int r = storage_mounts(dev, mounts, sizeof(mounts));
	size_t n = 0;

	buf[0] = 0;
	if (r > 0)
		n = (size_t)snprintf(buf, len, "mounted on %s", mounts);
	else if (r < 0)
		n = (size_t)snprintf(buf, len, "mounts not known (%s)",
				     strerror(-r));
	if (storage_facts(dev, &f) == 0 && f.holders[0] && n < len)
		snprintf(buf + n, len - n, "%sheld by %s", n ? ", " : "",
			 f.holders);
	return buf;
}

/* A block device: what the kernel says of it and of its disk. */
static void print_blockdev(dev_t dev)
{
	char size[KC_FORMAT_SIZE_LEN], use[1024];
	struct storage_facts f;

	if (storage_facts(dev, &f) < 0)
		return;
	if (f.partition) {
		printf("  partition    %u of /dev/%s, from byte %" PRIu64 "\n",
		       f.partition, f.disk_name, f.start);
		printf("  disk         /dev/%s, %" PRIu64 " bytes (%s)\n",
		       f.disk_name, f.disk_size,
		       kc_format_size(f.disk_size, size, sizeof(size)));
	}
	print_disk_facts(&f);
	if (use_text(dev, use, sizeof(use))[0])
		printf("  in use       %s\n", use);
}

/* A regular file: the loop devices attached to it, and the use of each
 * and of its partitions. */
static void print_file_loops(const struct target *t)
{
	char use[1024];
	struct storage_facts f;
	dev_t loops[16], parts[64];
	struct stat st;
	int n, np, i, j;

	if (fstat(t->fd, &st) < 0)
		return;
	n = storage_loops_over(st.st_dev, st.st_ino, loops, 16);
	for (i = 0; i < n; i++) {
		if (storage_facts(loops[i], &f) < 0)
			continue;
		use_text(loops[i], use, sizeof(use));
		printf("  loop device  /dev/%s%s%s\n", f.name,
		       use[0] ? ", " : "", use);
		np = storage_partitions(loops[i], parts, 64);
		for (j = 0; j < np; j++)
			if (use_text(parts[j], use, sizeof(use))[0] &&
			    storage_facts(parts[j], &f) == 0)
				printf("  loop device  /dev/%s, %s\n", f.name,
				       use);
	}
}

/* The partition table libblkid found, and each partition: where it lies,
 * its type, what is on it, and (on a block device, whose partitions the
 * kernel has as devices of their own) where it is mounted. */
static void print_table(const struct target *t, const struct signatures *s)
{
	char size[KC_FORMAT_SIZE_LEN], sig[512], use[1024], key[16];
	size_t i;

	printf("  table        %s%s%s, %zu partition(s)\n", s->sig.pttype,
	       s->sig.ptuuid[0] ? ", id " : "", s->sig.ptuuid,
	       s->num_parts);
	for (i = 0; i < s->num_parts; i++) {
		const struct sig_partition *p = &s->parts[i];
		dev_t part;

		use[0] = 0;
		if (t->info.is_blockdev &&
		    storage_partition_dev(t->rdev, p->number, &part) == 0)
			use_text(part, use, sizeof(use));
		/* Over NBD only the export's edges are read: not what lies
		 * in its partitions. */
		sig_text(&p->sig, sig, sizeof(sig));
		if (t->info.is_remote)
			sig[0] = 0;
		snprintf(key, sizeof(key), "partition %u", p->number);
		printf("  %-12s sector %" PRIu64 ", %" PRIu64 " sectors (%s), "
		       "type %s%s%s%s%s%s%s%s\n", key, p->start, p->count,
		       kc_format_size(p->count * KC_SECTOR_SIZE, size,
				      sizeof(size)), p->type,
		       p->name[0] ? ", name \"" : "", p->name,
		       p->name[0] ? "\"" : "", sig[0] ? ": " : "", sig,
		       use[0] ? "; " : "", use);
	}
}

/* What libblkid finds on the side, as a whole device or file: its table
 * and partitions, its file system or other signature. */
static void print_signatures(struct kcopy *k, const struct target *t)
{
	struct signatures s;
	char sig[512], path[64];
	int fd, r;

	/* Standard input or output is opened again by its descriptor. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", t->fd);
	if (t->info.is_remote) {
		fd = signatures_edges_file(k->kc, t->fd, 0, t->info.size);
	} else {
		fd = open(t->is_std ? path : t->spec.path,
			  O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			fd = -errno;
	}
	if (fd < 0) {
		printf("  signature    not known (%s)\n", strerror(-fd));
		return;
	}
	r = signatures_probe(fd, 0, 0, true, &s);
	close(fd);
	if (r < 0) {
		printf("  signature    not known (%s)\n", strerror(-r));
		return;
	}
	if (s.sig.pttype[0])
		print_table(t, &s);
	if (sig_text(&s.sig, sig, sizeof(sig))[0])
		printf("  signature    %s\n", sig);
	else if (!s.sig.pttype[0])
		printf("  signature    none found\n");
	signatures_free(&s);
}

/* What the side is, for a person: the disk is named before it is
 * overwritten.  Nothing for a stream or a file to be created. */
static void print_identity(struct kcopy *k, const struct target *t)
{
	if (t->info.is_stream || !t->exists)
		return;
	if (t->info.is_blockdev)
		print_blockdev(t->rdev);
	else if (!t->info.is_remote)
		print_file_loops(t);
	print_signatures(k, t);
}

/* The source's map, as the library finds it (kcopyd_get_map: SEEK_DATA
 * and SEEK_HOLE on a file, block status on an NBD export): the region's
 * data and hole bytes.  Nothing where it is not known. */
static void print_map(struct kcopy *k, const struct target *t)
{
	char dsize[KC_FORMAT_SIZE_LEN], hsize[KC_FORMAT_SIZE_LEN];
	struct kcopyd_extent *map = NULL;
	uint64_t data = 0, run;
	size_t n = 0, i;
	int r;

	/* Known at all?  (kcopyd_get_map takes what is not for data.) */
	r = t->count ? kcopyd_map(k->kc, t->fd, t->sector, t->count, &run)
		     : -EOPNOTSUPP;
	if (r == -EOPNOTSUPP) {
		printf("  map          not known: all of it is read\n");
		return;
	}
	if (r >= 0)
		r = kcopyd_get_map(k->kc, t->fd, t->sector, t->count, &map, &n);
	if (r < 0) {
		printf("  map          not known (%s): all of it is read\n",
		       strerror(-r));
		return;
	}
	for (i = 0; i < n; i++)
		if (map[i].kind == KCOPYD_EXTENT_DATA)
			data += map[i].count * KC_SECTOR_SIZE;
	free(map);
	printf("  map          %" PRIu64 " bytes data (%s), %" PRIu64
	       " bytes holes (%s), not read\n", data,
	       kc_format_size(data, dsize, sizeof(dsize)),
	       t->count * KC_SECTOR_SIZE - data,
	       kc_format_size(t->count * KC_SECTOR_SIZE - data, hsize,
			      sizeof(hsize)));
}

/* --bmap: the file, and what it maps. */
static void print_bmap(const struct kcopy *k)
{
	const struct flash *f = &k->flash;
	char size[KC_FORMAT_SIZE_LEN], mapped[KC_FORMAT_SIZE_LEN];

	printf("  bmap         %s%s, format %u.%u, blocks of %" PRIu64 " "
	       "bytes, %s%s\n", f->path, f->beside ? " (beside the image)" : "",
	       f->map.major, f->map.minor, f->map.block_size,
	       f->map.sum_len ? f->map.sum_type : "no",
	       f->map.sum_len ? " checksums, checked as read" : " checksums");
	printf("  image        %" PRIu64 " bytes (%s), %" PRIu64 " bytes (%s, "
	       "%.1f%%) mapped in %zu ranges: %s; the rest zeroed on the "
	       "destinations\n", f->map.image_size,
	       kc_format_size(f->map.image_size, size, sizeof(size)),
	       f->map.mapped_bytes,
	       kc_format_size(f->map.mapped_bytes, mapped, sizeof(mapped)),
	       f->map.image_size ? 100.0 * (double)f->map.mapped_bytes /
				   (double)f->map.image_size : 0.0,
	       f->map.num, f->fed ? "written (all of the image decoded)"
	       : "read and written");
}

/* --used, --domain-mapfile: what the map holds. */
static void print_used(const struct kcopy *k)
{
	const struct used *u = &k->used;
	char used[KC_FORMAT_SIZE_LEN], size[KC_FORMAT_SIZE_LEN];
	uint64_t region = k->src.count * KC_SECTOR_SIZE;

	if (k->flash.path) {
		print_bmap(k);
		return;
	}
	if (!u->ext)
		return;
	if (k->opt.used)
		printf("  file system  %s, blocks of %" PRIu32 " bytes, %"
		       PRIu64 " bytes (%s)%s%s\n", u->type, u->block_size,
		       u->fs_size, kc_format_size(u->fs_size, size,
						  sizeof(size)),
		       u->dirty[0] ? ", not clean: " : "", u->dirty);
	else
		printf("  domain       %s\n", k->opt.domain_mapfile);
	printf("  used         %" PRIu64 " bytes (%s, %.1f%%) in %zu "
	       "extents; the rest %s\n", u->used_bytes,
	       kc_format_size(u->used_bytes, used, sizeof(used)),
	       region ? 100.0 * (double)u->used_bytes / (double)region : 0.0,
	       u->num, k->opt.unused == UNUSED_ZERO
	       ? "zeroed on the destinations"
	       : "left as it is on the destinations");
	if (u->zero_bytes)
		printf("  zeros        %" PRIu64 " bytes (%s) it needs only to "
		       "read as zeros (unused inode tables): zeroed, not "
		       "read\n", u->zero_bytes,
		       kc_format_size(u->zero_bytes, size, sizeof(size)));
}

/* --mapfile: what it says is done and left. */
static void print_mapfile(const struct kcopy *k)
{
	char done[KC_FORMAT_SIZE_LEN], bad[KC_FORMAT_SIZE_LEN];
	char left[KC_FORMAT_SIZE_LEN];
	uint64_t d, b, l;
	bool exists;

	if (!mapfile_state(k, &d, &b, &l, &exists))
		return;
	printf("%-14s %s%s\n", "mapfile", k->opt.mapfile,
	       exists ? "" : ", to be created");
	printf("  done         %" PRIu64 " bytes (%s)\n", d,
	       kc_format_size(d, done, sizeof(done)));
	printf("  bad          %" PRIu64 " bytes (%s)%s\n", b,
	       kc_format_size(b, bad, sizeof(bad)),
	       !b ? "" : k->opt.skip_bad ? ", not read again (--skip-bad)"
	       : ", read again");
	printf("  left         %" PRIu64 " bytes (%s)\n", l,
	       kc_format_size(l, left, sizeof(left)));
}

/* --rate, --throttle, --verify, --hash. */
static void print_checks(const struct kcopy *k)
{
	char rate[KC_FORMAT_SIZE_LEN];
	unsigned int a, n = 0;

	if (k->opt.rate)
		printf("%-14s %s/s (%" PRIu64 " bytes per second) at most\n",
		       "rate", kc_format_size(k->opt.rate, rate, sizeof(rate)),
		       k->opt.rate);
	else
		printf("%-14s not limited\n", "rate");
	printf("%-14s %u%%%s\n", "throttle", k->opt.throttle,
	       k->opt.throttle >= 100 ? ", not throttled" : " of the time");
	printf("%-14s %s\n", "verify", k->opt.verify
	       ? "each destination read back and compared with the source"
	       : "no");
	printf("%-14s", "hash");
	for (a = 0; a < HASH_NUM_ALGS; a++)
		if ((k->opt.hash_algs >> a) & 1)
			printf("%s %s", n++ ? "," : "", hash_name(a));
	printf("%s\n", k->opt.hash_algs ? ", of the source region" : " none");
}

/* A compressed source: its format, its sizes, the decoder's bound. */
static void print_image(const struct kcopy *k)
{
	const struct feed *f = &k->feed;
	char in[KC_FORMAT_SIZE_LEN], out[KC_FORMAT_SIZE_LEN];
	char lim[KC_FORMAT_SIZE_LEN];

	if (!feed_format(f))
		return;
	if (f->in_is_file)
		printf("  image        %s, %" PRIu64 " bytes (%s) compressed",
		       feed_format(f), f->in_size,
		       kc_format_size(f->in_size, in, sizeof(in)));
	else
		printf("  image        %s, from a stream", feed_format(f));
	if (f->size_known)
		printf(", %" PRIu64 " bytes (%s) decompressed\n",
		       f->image_size,
		       kc_format_size(f->image_size, out, sizeof(out)));
	else
		printf(", size unknown until its end\n");
	if (f->dec.ops == &dec_xz)
		printf("  decoder      liblzma, %u thread(s), memory at most %s"
		       "\n", f->dec.threads, kc_format_size(DECODE_XZ_MEMLIMIT,
		       lim, sizeof(lim)));
}

void plan_print(struct kcopy *k)
{
	char budget[KC_FORMAT_SIZE_LEN], chunk[KC_FORMAT_SIZE_LEN];
	unsigned int i;

	printf("kcopy: dry run, nothing will be written\n");
	if (!k->opt.zero) {
		print_region("source", &k->src);
		print_image(k);
		print_identity(k, &k->src);
		print_map(k, &k->src);
		print_used(k);
	}
	for (i = 0; i < k->num_dests; i++) {
		char what[32];

		snprintf(what, sizeof(what), "destination %u", i + 1);
		print_region(what, &k->dests[i]);
		print_identity(k, &k->dests[i]);
	}
	printf("%-14s %lu pages (%s), sub-jobs of %s\n", "budget",
	       k->opt.pages, kc_format_size((uint64_t)k->opt.pages *
					    KCOPYD_PAGE_SIZE, budget,
					    sizeof(budget)),
	       kc_format_size(k->opt.chunk, chunk, sizeof(chunk)));
	printf("%-14s %s%s%s%s%s%s\n", "mode", k->opt.zero ? "zero" : "copy",
	       k->flags & KCOPYD_IGNORE_ERROR ? ", ignore read errors" : "",
	       k->flags & KCOPYD_WRITE_SEQ ? ", sequential writes" : "",
	       k->opt.zero ? "" : k->flags & KCOPYD_ALLOCATED
	       ? ", zeros written as data" : ", sparse",
	       k->flags & KCOPYD_DEST_IS_ZERO ? ", destinations are zero" : "",
	       k->flags & KCOPYD_NO_ZERO_DETECT ? ", no zero detection" : "");
	print_checks(k);
	print_mapfile(k);
}
