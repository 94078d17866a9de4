/* mapfmt.h - the mapfile's text: GNU ddrescue's mapfile format with the
 * comment lines kcopy adds, parsed and written.  Pure (no I/O but the
 * stream it writes to), so that it can be fuzzed alone (tests/fuzz-*).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Positions and sizes are bytes of the source (absolute positions, as
 * ddrescue's with --input-position).  A kcopy mapfile:
 *
 *   # Mapfile. Created by kcopy VERSION
 *   # kcopy-mapfile: 2
 *   # kcopy-source: sector=S count=C size=BYTES id=ID path=PATH
 *   # kcopy-dest: N sector=S count=C size=BYTES id=ID path=PATH
 *   ...
 *   # kcopy-failed: N OP ERRNO text
 *   ...
 *   # current_pos  current_status  current_pass
 *   0xPOS     STATUS               1
 *   #      pos        size  status
 *   0xPOS  0xSIZE  STATUS
 *   ...
 *   # kcopy-end
 *
 * Fields are KEY=VALUE words, numbers in decimal.  PATH is escaped: its
 * bytes up to ' ', '%' and from 0x7f written as %XX.  ID is what the kernel
 * says a side is (mapfile.c): "file:DEV:INO:BASE" for a regular file or
 * the file behind a loop device, "disk:MAJ:MIN:BASE" for a block device
 * (the whole disk, and where the region's device starts on it), "-" where
 * there is none (NBD).  A destination's size is its size in bytes when
 * the mapfile was written.  Version 1 (kcopy 0.1.0) had neither id nor a
 * destination's size: both are optional when read.
 */
#ifndef KCOPY_MAPFMT_H
#define KCOPY_MAPFMT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rangemap.h"

#define MAPFMT_VERSION		2
#define MAPFMT_MAX_DESTS	32
#define MAPFMT_ID_MAX		80	/* bytes of an ID, with its NUL */

/* A side of the copy as the mapfile records it. */
struct mapfmt_side {
	uint64_t sector, count;		/* the region, 512-byte sectors */
	uint64_t size;			/* bytes; has_size */
	bool has_size;
	char id[MAPFMT_ID_MAX];		/* "" where not recorded */
	char *path;			/* unescaped; NULL: not recorded */
};

struct mapfmt_failed {
	unsigned int dest;		/* 0-based, < num_dests */
	char op[32];			/* "write", "verify read"...: in the
					   file one word, "verify-read" */
	int err;			/* negative errno */
};

/* What a mapfile says.  Blocks are in order and touch (each begins where
 * the one before ends); their sizes are not 0 and do not overflow. */
struct mapfmt {
	bool kcopy;			/* it has kcopy lines */
	int version;			/* of the kcopy lines */
	struct mapfmt_side src;
	unsigned int num_dests;
	struct mapfmt_side dests[MAPFMT_MAX_DESTS];
	unsigned int num_failed;
	struct mapfmt_failed failed[MAPFMT_MAX_DESTS];	/* one per dest */
	struct rangemap_block *b;	/* statuses: one of ? * / - + */
	size_t n, cap;
};

/* Parse the len bytes of text (which it changes: lines are cut) into *f,
 * which must be zeroed before.  0; -EINVAL with *line_no set to the bad
 * line (0: the file as a whole, e.g. cut short); -ENOMEM.  After an error
 * *f holds what was parsed, to be freed. */
int mapfmt_parse(char *text, size_t len, struct mapfmt *f,
		 unsigned int *line_no);
void mapfmt_free(struct mapfmt *f);

/* Write a kcopy mapfile: the header of f (kcopy, src, dests, failed; not
 * its blocks) and the blocks of map.  Check ferror(out) after. */
void mapfmt_write(FILE *out, const char *creator, const struct mapfmt *f,
		  const struct rangemap *map);

#endif /* KCOPY_MAPFMT_H */
