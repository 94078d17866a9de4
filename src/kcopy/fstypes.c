/* fstypes.c - which map reader (fsmap.h) reads which file-system type, by
 * the names libblkid gives the types.  Apart from fsmap.c, which the
 * readers call: the table calls them.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "fsmap.h"

static const struct {
	const char *type;	/* libblkid's */
	const char *name;	/* in kcopy's messages */
	fs_reader_fn read;
} readers[] = {
	{ "ext2", "EXT2", fs_ext_map },
	{ "ext3", "EXT3", fs_ext_map },
	{ "ext4", "EXT4", fs_ext_map },
	{ "xfs", "XFS", fs_xfs_map },
	{ "vfat", "FAT12/16/32", fs_fat_map },
	{ "ntfs", "NTFS", fs_ntfs_map },
	{ "exfat", "EXFAT", fs_exfat_map },
};

#define NUM_READERS (sizeof(readers) / sizeof(readers[0]))

const char *fsmap_names(char *buf, size_t len)
{
	size_t i, at = 0;

	buf[0] = 0;
	for (i = 0; i < NUM_READERS && at < len; i++) {
		int n = snprintf(buf + at, len - at, "%s%s", i == 0 ? "" :
				 i + 1 == NUM_READERS ? " and " : ", ",
				 readers[i].name);

		if (n < 0)
			break;
		at += (size_t)n;
	}
	return buf;
}

fs_reader_fn fsmap_reader(const char *type)
{
	size_t i;

	for (i = 0; i < NUM_READERS; i++)
		if (strcmp(readers[i].type, type) == 0)
			return readers[i].read;
	return NULL;
}

