/* flash.c - --bmap: an image's block map (bmaptool's bmap file, bmap.h)
 * applied to the copy.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The bmap is --bmap's, or the one bmaptool would find beside the source
 * image, compressed or not (unless --no-bmap, or another map is given).
 * It must be the map of the whole image.  Two ways, one outcome: the
 * destinations end equal to the image wherever the image reads as zeros
 * outside its ranges, which is what a bmap says, and at the end of the
 * first range whose checksum differs the copy stops, a read error naming
 * the range.
 *
 * An image read as it is (a file or a device): its ranges become the
 * copy's data extents, the rest zero extents (k->used, as --used
 * --unused=zero): only the mapped ranges are read, the rest of each
 * destination zeroed the cheapest way; the copy's data hook, in order,
 * hands the data to the walk (bmap_walk_check).  An image file's own data
 * outside the ranges (its storage map: a stale bmap) is data too: never
 * zeroed.
 *
 * An image the feed delivers (compressed, or a stream): all of it is
 * decoded, and the walk is the feed's filter (bmap_walk_check): it checks
 * the ranges as they pass, and leaves the bytes as the image has them (the
 * unmapped ones zeros, which the copy's zero detection zeroes on the
 * destinations; a stale bmap's loses nothing); its failure is the feed's,
 * a read error where the image stopped.
 *
 * Main thread, but flash_check (the engine thread's) and the filter's
 * hooks (the feed thread's).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kcopy.h"
#include "files.h"
#include "fsmap.h"

/* Bytes of a bmap file read at most: some 2 million ranges. */
#define BMAP_MAX_BYTES (256u << 20)

/* Which bmap: --bmap's, or one beside a source that is a file (a
 * compressed one too).  0 (path NULL: none), or -errno, said. */
static int find(struct kcopy *k)
{
	struct flash *f = &k->flash;
	const struct options *o = &k->opt;
	char *beside = NULL;
	int r;

	if (o->bmap) {
		f->path = strdup(o->bmap);
		return f->path ? 0 : -ENOMEM;
	}
	/* Another map, or a copy that is resumed, is not changed by a file
	 * that happens to lie beside the source. */
	if (o->zero || o->used || o->domain_mapfile || o->mapfile ||
	    k->src.is_std || (k->src.info.is_stream && !k->src.fed) ||
	    k->src.info.is_remote || k->src.info.is_blockdev)
		return 0;
	r = bmap_find_beside(k->src.spec.path, &beside);
	if (r < 0) {
		say(&k->out, MSG_ERROR, "source '%s': looking for a bmap "
		    "beside it: %s", k->src.spec.path, strerror(-r));
		return r;
	}
	if (!r)
		return 0;
	if (o->no_bmap) {
		say(&k->out, MSG_VERBOSE, "--no-bmap: not using '%s', the bmap "
		    "beside the source", beside);
		free(beside);
		return 0;
	}
	say(&k->out, MSG_VERBOSE, "source '%s': using the bmap '%s' beside it "
	    "(--no-bmap: not)", k->src.spec.path, beside);
	f->path = beside;
	f->beside = true;
	return 0;
}

/* Add [s, e) to the sorted, disjoint ranges r (n of them, room for cap),
 * joining an overlapping or adjacent last one; s not below the last's
 * start.  0 or -ENOMEM. */
static int add_range(struct fs_range **r, size_t *n, size_t *cap, uint64_t s,
		     uint64_t e)
{
	struct fs_range *last = *n ? &(*r)[*n - 1] : NULL;

	if (last && s <= last->pos + last->len) {
		if (e > last->pos + last->len)
			last->len = e - last->pos;
		return 0;
	}
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		struct fs_range *m = realloc(*r, c * sizeof(**r));

		if (!m)
			return -ENOMEM;
		*r = m;
		*cap = c;
	}
	(*r)[(*n)++] = (struct fs_range){ s, e - s };
	return 0;
}

/* The data of an image file outside the bmap's ranges (the storage's own
 * map, kcopyd_get_map: SEEK_DATA and SEEK_HOLE), joined to them: a bmap
 * older than its image, or an image whose holes were filled by a copy, is
 * copied as it is there, never zeroed.  Where the image is as bmaptool
 * create mapped it, nothing changes; where the map is not known, all of
 * the image is data.  *extra: the bytes added.  0 or -errno. */
static int file_data(struct kcopy *k, struct fs_range **r, size_t *n,
		     uint64_t *extra)
{
	const struct bmap *b = &k->flash.map;
	struct kcopyd_extent *map = NULL;
	struct fs_range *u = NULL;
	size_t num = 0, nu = 0, cap = 0, i = 0, e;
	int ret;

	*extra = 0;
	ret = kcopyd_get_map(k->kc, k->src.fd, k->src.sector, k->src.count,
			     &map, &num);
	for (e = 0; ret == 0 && e < num; e++) {
		uint64_t s = (map[e].sector - k->src.sector) * KC_SECTOR_SIZE;

		if (map[e].kind != KCOPYD_EXTENT_DATA)
			continue;
		/* the bmap's ranges before this extent, then the extent */
		for (; ret == 0 && i < *n && (*r)[i].pos <= s; i++)
			ret = add_range(&u, &nu, &cap, (*r)[i].pos,
					(*r)[i].pos + (*r)[i].len);
		if (ret == 0)
			ret = add_range(&u, &nu, &cap, s,
					s + map[e].count * KC_SECTOR_SIZE);
	}
	free(map);
	for (; ret == 0 && i < *n; i++)
		ret = add_range(&u, &nu, &cap, (*r)[i].pos,
				(*r)[i].pos + (*r)[i].len);
	if (ret < 0) {
		free(u);
		return ret;
	}
	for (i = 0; i < nu; i++)
		*extra += u[i].len;
	*extra -= b->mapped_bytes < *extra ? b->mapped_bytes : *extra;
	free(*r);
	*r = u;
	*n = nu;
	return 0;
}

/* The bmap's ranges as the copy's extents: data, and zeros between; on
 * an image file, its own data outside them data too (file_data). */
static int extents(struct kcopy *k)
{
	const struct bmap *b = &k->flash.map;
	struct fs_range *r = calloc(b->num + 1, sizeof(*r));
	size_t i, n = b->num;
	uint64_t extra = 0;
	int ret = 0;

	if (!r)
		return -ENOMEM;
	for (i = 0; i < b->num; i++) {
		uint64_t s, e;

		bmap_range_bytes(b, i, &s, &e);
		r[i] = (struct fs_range){ s, e - s };
	}
	if (!k->src.info.is_blockdev && !k->src.info.is_remote)
		ret = file_data(k, &r, &n, &extra);
	if (ret < 0) {
		free(r);
		return ret;
	}
	if (extra)
		say(&k->out, MSG_NOTE, "--bmap '%s': the image '%s' has data "
		    "outside the bmap's ranges (about %" PRIu64 " bytes): "
		    "copied as it is there, not zeroed; is the bmap older "
		    "than the image?", k->flash.path, k->src.spec.path, extra);
	k->opt.unused = UNUSED_ZERO;
	ret = used_extents(k, r, n, NULL, 0);
	free(r);
	if (ret < 0)
		return ret;
	snprintf(k->used.type, sizeof(k->used.type), "bmap");
	k->used.block_size = (uint32_t)b->block_size;
	k->used.fs_size = b->image_size;
	return 0;
}

/* Range i of the bmap does not match its checksum: what to say, into buf
 * (len bytes).  buf. */
static const char *range_text(const struct flash *f, size_t i, char *buf,
			      size_t len)
{
	const struct bmap_range *x = &f->map.r[i];
	uint64_t s, e;

	bmap_range_bytes(&f->map, i, &s, &e);
	snprintf(buf, len, "--bmap '%s': range %" PRIu64 "-%" PRIu64 " (line "
		 "%u; bytes %" PRIu64 " to %" PRIu64 " of the image) does not "
		 "match its %s checksum: the image or the bmap is damaged",
		 f->path, x->first, x->last, x->line, s, e - 1,
		 f->map.sum_type);
	return buf;
}

/* The filter's hooks (feed.h), on the feed's thread: the walk. */
static int filter_data(void *ctx, uint64_t pos, void *buf, size_t len,
		       char *msg, size_t msg_len)
{
	struct flash *f = ctx;
	int r = bmap_walk_check(&f->walk, pos, buf, len);

	if (r == -EBADMSG)
		range_text(f, f->walk.bad, msg, msg_len);
	else if (r == -EFBIG)
		snprintf(msg, msg_len, "--bmap '%s': the image goes on past "
			 "the bmap's %" PRIu64 " bytes", f->path,
			 f->map.image_size);
	else if (r < 0)
		snprintf(msg, msg_len, "--bmap '%s': %s", f->path,
			 strerror(-r));
	return r;
}

static int filter_end(void *ctx, uint64_t total, char *msg, size_t msg_len)
{
	struct flash *f = ctx;
	int r = bmap_walk_end(&f->walk, total);

	if (r < 0)
		snprintf(msg, msg_len, "--bmap '%s': the image ended after %"
			 PRIu64 " bytes, the bmap maps %" PRIu64, f->path,
			 total, f->map.image_size);
	return r;
}

void flash_filter(struct kcopy *k)
{
	k->feed.filter = (struct feed_filter){ filter_data, filter_end,
					       &k->flash };
}

/* The image the feed delivers is the bmap's: the whole of it, and of the
 * bmap's size where its container tells it.  0, or -EINVAL, said. */
static int fed_image(struct kcopy *k)
{
	const struct flash *f = &k->flash;

	if (k->src.sector || k->src.spec.has_count) {
		say(&k->out, MSG_ERROR, "--bmap '%s': the source '%s' is a "
		    "region of the image: a bmap maps the whole image (give "
		    "no SECTOR or COUNT)", f->path, k->src.arg);
		return -EINVAL;
	}
	if (k->feed.size_known && k->feed.image_size != f->map.image_size) {
		say(&k->out, MSG_ERROR, "--bmap '%s': it maps an image of %"
		    PRIu64 " bytes; the %s image '%s' is %" PRIu64 " bytes "
		    "(its container says): the bmap of another image",
		    f->path, f->map.image_size, feed_format(&k->feed),
		    k->src.arg, k->feed.image_size);
		return -EINVAL;
	}
	return 0;
}

int flash_open(struct kcopy *k)
{
	struct flash *f = &k->flash;
	uint64_t region = k->src.count * KC_SECTOR_SIZE;
	struct bmap_error e;
	size_t len;
	char *text;
	int r = find(k);

	if (r < 0 || !f->path)
		return r;
	/* A stream the feed does not deliver (it was not asked to). */
	f->fed = feed_format(&k->feed) != NULL;
	if (k->src.info.is_stream && !f->fed) {
		say(&k->out, MSG_ERROR, "--bmap '%s': the source '%s' is a "
		    "stream read as it is: kcopy applies a bmap to an image, "
		    "a compressed image or standard input", f->path,
		    k->src.spec.path);
		return -EINVAL;
	}
	r = files_read_all(f->path, BMAP_MAX_BYTES, &text, &len);
	if (r < 0) {
		say(&k->out, MSG_ERROR, "--bmap '%s': cannot read it: %s",
		    f->path, strerror(-r));
		return r;
	}
	r = bmap_parse(text, len, &f->map, &e);
	free(text);
	if (r < 0 && e.line) {
		say(&k->out, MSG_ERROR, "--bmap '%s': line %u: %s", f->path,
		    e.line, e.why);
		return r;
	}
	if (r < 0) {
		say(&k->out, MSG_ERROR, "--bmap '%s': %s", f->path, e.why);
		return r;
	}
	if (f->fed) {
		r = fed_image(k);
		if (r < 0)
			return r;
	} else if (f->map.image_size != region) {
		say(&k->out, MSG_ERROR, "--bmap '%s': it maps an image of %"
		    PRIu64 " bytes; the source '%s' is %" PRIu64 " bytes: the "
		    "bmap of another image", f->path, f->map.image_size,
		    k->src.arg, region);
		return -EINVAL;
	}
	r = bmap_walk_start(&f->walk, &f->map);
	f->walking = true;
	if (r == 0 && f->fed)
		flash_filter(k);
	else if (r == 0)
		r = extents(k);
	if (r < 0) {
		say(&k->out, MSG_ERROR, "--bmap '%s': %s", f->path,
		    strerror(-r));
		return r;
	}
	say(&k->out, MSG_VERBOSE, "--bmap '%s': format %u.%u, %" PRIu64 " of "
	    "%" PRIu64 " bytes mapped in %zu ranges%s%s%s", f->path,
	    f->map.major, f->map.minor, f->map.mapped_bytes,
	    f->map.image_size, f->map.num, f->map.sum_len ? ", checksums " : "",
	    f->map.sum_type, f->fed ? "; the image decoded whole, its "
	    "zeros zeroed" : "");
	return 0;
}

/* The walk stopped at error r: the copy stops, a read error. */
static void walk_failed(struct kcopy *k, int r)
{
	const struct flash *f = &k->flash;
	char text[512];
	bool first;

	pthread_mutex_lock(&k->lock);
	first = !k->read_error;
	k->read_err = 1;
	if (first)
		k->read_error = r;
	pthread_mutex_unlock(&k->lock);
	kcopyd_client_stop(k->kc);
	if (r != -EBADMSG) {
		say(&k->out, MSG_ERROR, "source '%s': --bmap '%s': the copy's "
		    "data did not come in order (%s); stopping",
		    k->src.spec.path, f->path, strerror(-r));
		return;
	}
	say(&k->out, MSG_ERROR, "source '%s': %s; stopping", k->src.spec.path,
	    range_text(f, f->walk.bad, text, sizeof(text)));
}

void flash_check(struct kcopy *k, uint64_t sector, uint64_t count,
		 const void *data)
{
	struct flash *f = &k->flash;
	uint64_t pos = (sector - k->src.sector) * KC_SECTOR_SIZE;
	int r;

	if (!f->walking || f->fed || f->walk.error)
		return;
	r = bmap_walk_check(&f->walk, pos, data, count * KC_SECTOR_SIZE);
	if (r < 0)
		walk_failed(k, r);
}

void flash_finish(struct kcopy *k)
{
	struct flash *f = &k->flash;
	int r;

	/* A copy that stopped, or lost its destinations, read less; the
	 * feed's filter saw the image's end itself. */
	if (!f->walking || f->fed || f->walk.error || k->read_err || k->signal ||
	    k->write_err)
		return;
	r = bmap_walk_end(&f->walk, f->map.image_size);
	if (r < 0)
		walk_failed(k, r);
}

void flash_free(struct kcopy *k)
{
	struct flash *f = &k->flash;

	if (f->walking)
		bmap_walk_free(&f->walk);
	bmap_free(&f->map);
	free(f->path);
	f->path = NULL;
}
