/* fs-xfs.c - a stub: to be written.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>

#include "fsmap.h"

int fs_xfs_map(const struct fs_source *src, struct fs_map *m, char *why,
	       size_t len)
{
	(void)src;
	(void)m;
	snprintf(why, len, "not read yet");
	return -ENOTSUP;
}
