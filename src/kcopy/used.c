/* used.c - --used and --domain-mapfile: the map of what to copy.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * --used: the source region holds a file system; its type comes from
 * libblkid, and its reader (fstypes.c, one file per kind: fs-ext.c,
 * fs-xfs.c, fs-fat.c, fs-ntfs.c, fs-exfat.c) reads its allocation
 * structures through the copy's backend (kcopyd_read), so that a file, a
 * block device and an NBD export are mapped alike.  A file system that is mounted (the source
 * device, or a loop device over the source file), or not clean, is a
 * setup error (--force copies a dirty one, saying so); so is a type
 * without a reader.
 *
 * --domain-mapfile: the '+' blocks of a ddrescue-format mapfile (as
 * partclone --domain writes) are the ones to copy, for any source.
 *
 * Either way the map becomes the library's extents (kcopyd_copy_map):
 * data where the file system uses a block, and elsewhere left out
 * (--unused=keep, the default) or zeros (--unused=zero).  Main thread,
 * at setup.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcopy.h"
#include "files.h"
#include "fsmap.h"
#include "mapfmt.h"

/* Bytes of a mapfile that --domain-mapfile reads at most (as --mapfile). */
#define DOMAIN_MAX_BYTES (256u << 20)

/* The readers read through the copy's backend, a job each
 * (kcopyd_read): small reads near one another come out of a window of
 * READ_WINDOW bytes read once.  An ext4's bitmaps lie 16 groups together
 * (flex_bg): 512 reads for a 1 TiB file system rather than 8192, each a
 * round trip to the server for an NBD export; an XFS's allocation group
 * headers one window each.  Small (the 16 block bitmaps of a flex group
 * of 4 KiB blocks), so that what is read beyond the metadata stays small
 * too: with 256 KiB an ext3 of 1 KiB blocks (bitmaps every 8 MiB) read
 * 22% more than it uses; with 64 KiB, 9%. */
#define READ_WINDOW (64u << 10)

struct map_reader {
	struct kcopy *k;
	uint64_t base;			/* bytes: the region's start */
	uint64_t size;			/* bytes of the region */
	char *win;			/* READ_WINDOW bytes, or NULL */
	uint64_t win_pos;		/* the window's bytes of the region */
	size_t win_len;			/* 0: nothing in it */
};

static int read_source(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct map_reader *mr = ctx;
	uint64_t pos;
	int r;

	if (!mr->win || len > READ_WINDOW / 2)
		return kcopyd_read(mr->k->kc, mr->k->src.fd, buf, len,
				   mr->base + off);
	if (off < mr->win_pos || off + len > mr->win_pos + mr->win_len) {
		pos = off / 4096 * 4096;
		mr->win_len = mr->size - pos < READ_WINDOW
			      ? (size_t)(mr->size - pos) : READ_WINDOW;
		if (off + len > pos + mr->win_len)
			return kcopyd_read(mr->k->kc, mr->k->src.fd, buf, len,
					   mr->base + off);
		r = kcopyd_read(mr->k->kc, mr->k->src.fd, mr->win,
				mr->win_len, mr->base + pos);
		if (r < 0) {
			mr->win_len = 0;
			return r;
		}
		mr->win_pos = pos;
	}
	memcpy(buf, mr->win + (off - mr->win_pos), len);
	return 0;
}

/* The file-system type of the source region, as libblkid names it, into
 * type (len bytes); "" if it finds none.  0 or -errno. */
static int probe_type(struct kcopy *k, char *type, size_t len)
{
	uint64_t base = k->src.sector * KC_SECTOR_SIZE;
	uint64_t size = k->src.count * KC_SECTOR_SIZE;
	struct signatures sig;
	int fd = k->src.fd, r;

	type[0] = '\0';
	if (k->src.info.is_remote) {
		fd = signatures_edges_file(k->kc, k->src.fd, base, size);
		if (fd < 0)
			return fd;
		base = 0;
	}
	r = signatures_probe(fd, base, size, false, &sig);
	if (r == 0 && sig.sig.type[0])
		snprintf(type, len, "%s", sig.sig.type);
	else if (r == 0 && sig.sig.pttype[0])
		snprintf(type, len, "partition table (%s)", sig.sig.pttype);
	else if (r == 0 && sig.sig.ambivalent)
		snprintf(type, len, "several signatures");
	signatures_free(&sig);
	if (fd != k->src.fd)
		close(fd);
	return r;
}

/* Is the source's file system in use: the device mounted or held, or a
 * loop device over the file?  A setup error if it is. */
static int check_not_mounted(struct kcopy *k)
{
	struct target *t = &k->src;
	char name[64] = "";
	struct stat st;
	int r;

	if (t->info.is_remote || t->is_std)
		return 0;	/* the server's business */
	if (t->info.is_blockdev) {
		if (!storage_blockdev_busy(t->rdev))
			return 0;
		say(&k->out, MSG_ERROR, "source '%s': --used: the device is "
		    "mounted or in use: unmount it first (a file system "
		    "being written cannot be copied by its map)",
		    t->spec.path);
		return -EBUSY;
	}
	if (fstat(t->fd, &st) < 0)
		return 0;
	r = storage_busy_loop_over(st.st_dev, st.st_ino, NULL, 0, name,
				   sizeof(name));
	if (r <= 0)
		return 0;
	say(&k->out, MSG_ERROR, "source '%s': --used: %s, a loop device over "
	    "it, is mounted or in use: unmount it first", t->spec.path, name);
	return -EBUSY;
}

/* The extents of the used byte ranges (of the region, from its start),
 * sectors rounded outwards, and of those that need only read as zeros
 * (rounded inwards: a sector that is data in part is data); between them,
 * and to the region's end, nothing (left out) or zeros (--unused=zero).
 * Both lists sorted and apart. */
int used_extents(struct kcopy *k, const struct fs_range *r, size_t n,
		      const struct fs_range *z, size_t nz)
{
	struct used *u = &k->used;
	uint64_t base = k->src.sector, end = k->src.count, at = 0;
	bool zero = k->opt.unused == UNUSED_ZERO;
	size_t i = 0, j = 0, cap = 2 * (n + nz) + 1;

	u->ext = calloc(cap, sizeof(*u->ext));
	if (!u->ext)
		return -ENOMEM;
	u->num = 0;
	u->used_bytes = u->zero_bytes = 0;
	while (i < n || j < nz) {
		bool data = j == nz || (i < n && r[i].pos <= z[j].pos);
		const struct fs_range *x = data ? &r[i++] : &z[j++];
		unsigned int kind = data ? KCOPYD_EXTENT_DATA
					 : KCOPYD_EXTENT_ZERO;
		uint64_t s, e;

		if (data) {
			s = x->pos / KC_SECTOR_SIZE;
			e = (x->pos + x->len + KC_SECTOR_SIZE - 1) /
			    KC_SECTOR_SIZE;
		} else {
			s = (x->pos + KC_SECTOR_SIZE - 1) / KC_SECTOR_SIZE;
			e = (x->pos + x->len) / KC_SECTOR_SIZE;
		}
		if (e > end)
			e = end;
		if (s < at)
			s = at;
		if (s >= e)
			continue;
		if (zero && s > at)
			u->ext[u->num++] = (struct kcopyd_extent){
				base + at, s - at, KCOPYD_EXTENT_ZERO };
		if (u->num && u->ext[u->num - 1].kind == kind &&
		    u->ext[u->num - 1].sector + u->ext[u->num - 1].count ==
		    base + s)
			u->ext[u->num - 1].count += e - s;
		else
			u->ext[u->num++] = (struct kcopyd_extent){
				base + s, e - s, kind };
		if (data)
			u->used_bytes += (e - s) * KC_SECTOR_SIZE;
		else
			u->zero_bytes += (e - s) * KC_SECTOR_SIZE;
		at = e;
	}
	if (zero && at < end)
		u->ext[u->num++] = (struct kcopyd_extent){
			base + at, end - at, KCOPYD_EXTENT_ZERO };
	return 0;
}

/* The file system's map, read through src, into k->used. */
static int map_fs(struct kcopy *k, const struct fs_source *srcp)
{
	struct used *u = &k->used;
	struct fs_source src = *srcp;
	struct fs_map m = { .type = "" };
	char why[256] = "";
	fs_reader_fn reader;
	int r;

	r = probe_type(k, u->type, sizeof(u->type));
	if (r < 0) {
		say(&k->out, MSG_ERROR, "source '%s': --used: cannot tell its "
		    "file system: %s", k->src.spec.path, strerror(-r));
		return r;
	}
	reader = u->type[0] ? fsmap_reader(u->type) : NULL;
	if (!reader) {
		char names[128];

		say(&k->out, MSG_ERROR, "source '%s': --used: %s%s: --used "
		    "reads %s (copy all of it without --used, or give a "
		    "--domain-mapfile)", k->src.spec.path,
		    u->type[0] ? "the source holds " : "no file system found",
		    u->type, fsmap_names(names, sizeof(names)));
		return -ENOTSUP;
	}
	r = check_not_mounted(k);
	if (r < 0)
		return r;
	snprintf(m.type, sizeof(m.type), "%.15s", u->type);
	r = reader(&src, &m, why, sizeof(why));
	if (r < 0) {
		say(&k->out, MSG_ERROR, "source '%s': --used: cannot read the "
		    "%s file system's map: %s%s%s", k->src.spec.path, u->type,
		    why[0] ? why : strerror(-r), why[0] ? ": " : "",
		    why[0] ? strerror(-r) : "");
		fsmap_free(&m);
		return r;
	}
	r = fsmap_finish(&m, src.size);
	if (r < 0) {
		say(&k->out, MSG_ERROR, "--used: %s", strerror(-r));
		fsmap_free(&m);
		return r;
	}
	u->block_size = m.block_size;
	u->fs_size = m.fs_size;
	snprintf(u->dirty, sizeof(u->dirty), "%s", m.dirty);
	if (m.dirty[0] && !k->opt.force) {
		say(&k->out, MSG_ERROR, "source '%s': --used: the %s file "
		    "system is not clean: %s (check it with its fsck first; "
		    "--force copies it as it is)", k->src.spec.path, u->type,
		    m.dirty);
		fsmap_free(&m);
		return -EUCLEAN;
	}
	if (m.dirty[0])
		say(&k->out, MSG_NOTE, "source '%s': the %s file system is not "
		    "clean (%s): copying its used blocks as they are "
		    "(--force)", k->src.spec.path, u->type, m.dirty);
	r = used_extents(k, m.ranges, m.num, m.zeros, m.num_zeros);
	fsmap_free(&m);
	return r;
}

static int map_file_system(struct kcopy *k)
{
	struct map_reader mr = { k, k->src.sector * KC_SECTOR_SIZE,
				 k->src.count * KC_SECTOR_SIZE,
				 malloc(READ_WINDOW), 0, 0 };
	struct fs_source src = { read_source, &mr, mr.size };
	int r = map_fs(k, &src);

	free(mr.win);
	return r;
}

static int map_domain(struct kcopy *k)
{
	const char *path = k->opt.domain_mapfile;
	struct mapfmt f = { 0 };
	struct fs_range *r = NULL;
	uint64_t base = k->src.sector * KC_SECTOR_SIZE;
	uint64_t end = base + k->src.count * KC_SECTOR_SIZE;
	unsigned int line = 0;
	size_t len, i, n = 0;
	char *text;
	int ret = files_read_all(path, DOMAIN_MAX_BYTES, &text, &len);

	if (ret < 0) {
		say(&k->out, MSG_ERROR, "--domain-mapfile '%s': cannot read "
		    "it: %s", path, strerror(-ret));
		return ret;
	}
	ret = mapfmt_parse(text, len, &f, &line);
	free(text);
	if (ret == -EINVAL) {
		say(&k->out, MSG_ERROR, "--domain-mapfile '%s': not a "
		    "ddrescue mapfile (line %u)", path, line);
		goto out;
	}
	if (ret == 0 && !(r = calloc(f.n + 1, sizeof(*r))))
		ret = -ENOMEM;
	for (i = 0; ret == 0 && i < f.n; i++) {
		uint64_t s = f.b[i].pos, e = s + f.b[i].size;

		if (f.b[i].st != '+' || e <= base || s >= end)
			continue;
		s = s > base ? s : base;
		e = e < end ? e : end;
		r[n++] = (struct fs_range){ s - base, e - s };
	}
	snprintf(k->used.type, sizeof(k->used.type), "domain");
	if (ret == 0)
		ret = used_extents(k, r, n, NULL, 0);
	if (ret < 0)
		say(&k->out, MSG_ERROR, "--domain-mapfile '%s': %s", path,
		    strerror(-ret));
out:
	free(r);
	mapfmt_free(&f);
	return ret;
}

int used_open(struct kcopy *k)
{
	int r;

	if (!k->opt.used && !k->opt.domain_mapfile)
		return 0;
	/* Standard input is refused with the options; a compressed image
	 * is known to be a stream only now. */
	if (k->src.info.is_stream) {
		say(&k->out, MSG_ERROR, "source '%s': %s: a compressed image "
		    "is read as a stream, decoded: it has no map",
		    k->src.spec.path,
		    k->opt.used ? "--used" : "--domain-mapfile");
		return -EINVAL;
	}
	r = k->opt.used ? map_file_system(k) : map_domain(k);
	if (r < 0)
		return r;
	say(&k->out, MSG_VERBOSE, "%s: %" PRIu64 " of %" PRIu64 " bytes in "
	    "%zu extents", k->opt.used ? "--used" : "--domain-mapfile",
	    k->used.used_bytes, k->src.count * KC_SECTOR_SIZE, k->used.num);
	return 0;
}

/* The bytes the copy works through: its map's extents, data and zeros. */
uint64_t used_work_bytes(const struct kcopy *k)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < k->used.num; i++)
		n += k->used.ext[i].count * KC_SECTOR_SIZE;
	return n;
}

void used_free(struct kcopy *k)
{
	free(k->used.ext);
	k->used.ext = NULL;
	k->used.num = 0;
}
