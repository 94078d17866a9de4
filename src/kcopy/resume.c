/* resume.c - --mapfile: whether a mapfile that exists may be resumed
 * from.  It must be this copy's (the paths and regions of its sides, the
 * blocks covering the region), and where it records progress its sides
 * must be what they were: what the kernel says each one is (device and
 * inode, the file behind a loop device, the disk and where a partition
 * starts on it) and its size (kcopy(1), RESUME).  The destinations it
 * lists as failed are failed again.  The same record of the sides is what
 * mapfile.c writes.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "kcopy.h"
#include "mapfmt.h"

/* The path a side is known by in the mapfile: its real path, or as given
 * where it has none (an NBD URI, a file not made yet). */
static char *side_path(const struct target *t)
{
	char *real = t->info.is_remote ? NULL : realpath(t->spec.path, NULL);

	return real ? real : strdup(t->spec.path);
}

/* What the kernel says the side is (mapfmt.h, ID). */
static void side_id(const struct target *t, char *buf, size_t len)
{
	if (t->info.is_remote || !t->exists)
		snprintf(buf, len, "-");
	else if (t->id.is_file)
		snprintf(buf, len, "file:%u:%u:%ju:%" PRIu64,
			 major(t->id.dev), minor(t->id.dev),
			 (uintmax_t)t->id.ino, t->id.base);
	else
		snprintf(buf, len, "disk:%u:%u:%" PRIu64, major(t->id.dev),
			 minor(t->id.dev), t->id.base);
}

/* Is the side a regular file, which may grow (never shrink) as it is
 * written? */
static bool side_is_file(const struct target *t)
{
	return !t->info.is_remote && !t->info.is_blockdev;
}

/* The side's size now: a file's as it stands, else the device's. */
static uint64_t side_size(const struct target *t)
{
	struct stat st;

	if (side_is_file(t) && t->fd >= 0 && fstat(t->fd, &st) == 0)
		return (uint64_t)st.st_size;
	return t->info.size;
}

int resume_side_record(const struct target *t, struct mapfmt_side *s)
{
	s->sector = t->sector;
	s->count = t->count;
	s->size = side_size(t);
	s->has_size = true;
	side_id(t, s->id, sizeof(s->id));
	s->path = side_path(t);
	return s->path ? 0 : -ENOMEM;
}

/* Is the parsed mapfile this copy's?  NULL, or what differs. */
static const char *mismatch(struct kcopy *k, const struct mapfmt *f,
			    char *why, size_t len)
{
	char *p = side_path(&k->src);
	unsigned int i;
	bool same;

	same = p && !strcmp(p, f->src.path);
	free(p);
	if (!same || f->src.sector != k->src.sector ||
	    f->src.count != k->src.count || f->src.size != k->src.info.size) {
		snprintf(why, len, "it is of another source (%s, sector %"
			 PRIu64 ", %" PRIu64 " sectors, %" PRIu64 " bytes)",
			 f->src.path, f->src.sector, f->src.count,
			 f->src.size);
		return why;
	}
	if (f->num_dests != k->num_dests) {
		snprintf(why, len, "it is of a copy to %u destination(s), not "
			 "%u", f->num_dests, k->num_dests);
		return why;
	}
	for (i = 0; i < k->num_dests; i++) {
		p = side_path(&k->dests[i]);
		same = p && !strcmp(p, f->dests[i].path);
		free(p);
		if (!same || f->dests[i].sector != k->dests[i].sector ||
		    f->dests[i].count != k->dests[i].count) {
			snprintf(why, len, "its destination %u is another "
				 "(%s, sector %" PRIu64 ", %" PRIu64
				 " sectors)", i + 1, f->dests[i].path,
				 f->dests[i].sector, f->dests[i].count);
			return why;
		}
	}
	return NULL;
}

/* Has side t changed since the mapfile recorded it as s?  NULL, or what
 * changed, in why. */
static const char *changed(const struct target *t,
			   const struct mapfmt_side *s, char *why, size_t len)
{
	char id[MAPFMT_ID_MAX];
	uint64_t now = side_size(t);

	side_id(t, id, sizeof(id));
	if (s->id[0] && strcmp(s->id, id)) {
		snprintf(why, len, "is not the %s it was (%s then, %s now: "
			 "replaced, or renumbered by a reboot)",
			 side_is_file(t) ? "file" : "device", s->id, id);
		return why;
	}
	if (s->has_size && (side_is_file(t) ? now < s->size : now != s->size)) {
		snprintf(why, len, "is %" PRIu64 " bytes, %" PRIu64 " when the "
			 "mapfile was written (%s)", now, s->size,
			 now < s->size ? "emptied or cut short" : "resized");
		return why;
	}
	return NULL;
}

/* The sides as they are against the mapfile's record of them, for a
 * mapfile that holds progress.  RESUME_BLOCKS: resume; RESUME_OVER: start
 * over (the progress is not on a side); -EINVAL after a setup error.  A
 * side created by this run (it was deleted) starts the copy over; one that
 * changed is refused, unless --force, which starts over.  fresh[i]:
 * destination i is not what the mapfile's progress was written to. */
static int check_sides(struct kcopy *k, const struct mapfmt *f, bool *fresh)
{
	const char *path = k->opt.mapfile;
	char why[512];
	unsigned int i;
	int over = 0;

	if (f->version < 2) {
		say(&k->out, MSG_NOTE, "--mapfile '%s' was written by an "
		    "earlier kcopy: what the source and destinations are was "
		    "not recorded, and is not checked", path);
		return 0;
	}
	if (changed(&k->src, &f->src, why, sizeof(why))) {
		if (!k->opt.force) {
			say(&k->out, MSG_ERROR, "--mapfile '%s': the source "
			    "'%s' %s; refusing to resume (--force to copy "
			    "everything again)", path, k->src.arg, why);
			return -EINVAL;
		}
		say(&k->out, MSG_NOTE, "--mapfile '%s': the source '%s' %s; "
		    "--force: copying everything again", path, k->src.arg, why);
		over = 1;
	}
	for (i = 0; i < k->num_dests; i++) {
		const struct target *t = &k->dests[i];

		if (!t->exists) {
			say(&k->out, MSG_NOTE, "--mapfile '%s': destination %u "
			    "'%s' does not exist any more: copying everything "
			    "again", path, i + 1, t->arg);
			fresh[i] = true;
			over = 1;
			continue;
		}
		if (!changed(t, &f->dests[i], why, sizeof(why)))
			continue;
		if (!k->opt.force) {
			say(&k->out, MSG_ERROR, "--mapfile '%s': destination %u "
			    "'%s' %s; refusing to resume (--force to copy "
			    "everything again)", path, i + 1, t->arg, why);
			return -EINVAL;
		}
		say(&k->out, MSG_NOTE, "--mapfile '%s': destination %u '%s' %s; "
		    "--force: copying everything again", path, i + 1, t->arg,
		    why);
		fresh[i] = true;
		over = 1;
	}
	return over;
}

/* Does the mapfile say anything of the region but "not done"? */
static bool has_progress(const struct mapfmt *f, uint64_t begin,
			 uint64_t end)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (f->b[i].st != '?' && f->b[i].pos < end &&
		    f->b[i].pos + f->b[i].size > begin)
			return true;
	return false;
}

/* The operation a kcopy-failed line names, as the run names it (a
 * string that lives as long as the run). */
static const char *op_name(const char *op)
{
	static const char *const ops[] = { "write", "flush", "zero",
					   "truncate", "verify", "verify read" };
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(op, ops[i]))
			return ops[i];
	return "write";
}

/* The failed destinations the mapfile lists are failed again, with their
 * errors; unless --retry-failed: then what was copied while they were
 * failed is not on them, and everything is copied again (1).  Only for a
 * mapfile of this copy's destinations (same count: its numbers are this
 * run's), and not for a destination that is new (fresh). */
int resume_take_failed(struct kcopy *k, const struct mapfmt *f,
		       const bool *fresh)
{
	unsigned int i;

	if (!f->num_failed)
		return 0;
	if (f->num_dests != k->num_dests) {
		say(&k->out, MSG_NOTE, "--mapfile '%s': the failures it lists "
		    "are of another copy's destinations: not taken",
		    k->opt.mapfile);
		return 0;
	}
	if (k->opt.retry_failed) {
		say(&k->out, MSG_NOTE, "--retry-failed: copying the whole "
		    "region again, to every destination");
		return 1;
	}
	for (i = 0; i < f->num_failed; i++) {
		const struct mapfmt_failed *x = &f->failed[i];
		struct target *t;

		if (x->dest >= k->num_dests || fresh[x->dest])
			continue;
		t = &k->dests[x->dest];
		k->write_err |= 1u << x->dest;
		t->error = x->err;
		t->error_op = op_name(x->op);
		say(&k->out, MSG_NOTE, "destination %u '%s' failed in an "
		    "earlier run (%s: %s): not written (--retry-failed to "
		    "write it again)", x->dest + 1, t->arg, t->error_op,
		    strerror(-t->error));
	}
	return 0;
}

int resume_check(struct kcopy *k, char *text, size_t len, uint64_t begin,
		 uint64_t end, struct mapfmt *f, bool *fresh)
{
	const char *path = k->opt.mapfile;
	char why[512];
	const char *what = NULL;
	unsigned int line_no;
	int r = mapfmt_parse(text, len, f, &line_no);

	if (r == -EINVAL && line_no)
		snprintf(why, sizeof(why), "line %u is not a mapfile's",
			 line_no);
	else if (r == -EINVAL)
		snprintf(why, sizeof(why), "not a mapfile, or cut short");
	else if (r < 0)
		snprintf(why, sizeof(why), "%s", strerror(-r));
	else if (f->kcopy)
		what = mismatch(k, f, why, sizeof(why));
	if (r == 0 && f->kcopy && !what &&
	    (!f->n || f->b[0].pos != begin ||
	     f->b[f->n - 1].pos + f->b[f->n - 1].size != end)) {
		snprintf(why, sizeof(why), "its blocks do not cover the region "
			 "(cut short?)");
		what = why;
	}
	if ((r < 0 && r != -ENOMEM) || what) {
		if (!k->opt.force) {
			say(&k->out, MSG_ERROR, "--mapfile '%s': %s; refusing "
			    "to resume from it (--force to %s)", path,
			    r < 0 ? why : what, r < 0 ? "start over"
						      : "use it all the same");
			return -EINVAL;
		}
		say(&k->out, MSG_NOTE, "--mapfile '%s': %s; --force: %s",
		    path, r < 0 ? why : what, r < 0 ? "starting over"
						    : "using it all the same");
		if (r < 0)
			return RESUME_NOTHING;
	} else if (r < 0) {
		say(&k->out, MSG_ERROR, "--mapfile '%s': %s", path, why);
		return r;
	}
	if (!f->kcopy)
		say(&k->out, MSG_NOTE, "--mapfile '%s' has no kcopy lines (GNU "
		    "ddrescue's?): its rescued areas are taken as already on "
		    "every destination", path);
	if (f->kcopy && !what && has_progress(f, begin, end))
		return check_sides(k, f, fresh);
	return RESUME_BLOCKS;
}
