/* fstypes.c - which map reader (fsmap.h) reads which file-system type, by
 * the names libblkid gives the types.  Apart from fsmap.c, which the
 * readers call: the table calls them.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <string.h>

#include "fsmap.h"

static const struct {
	const char *type;
	fs_reader_fn read;
} readers[] = {
	{ "ext2", fs_ext_map },
	{ "ext3", fs_ext_map },
	{ "ext4", fs_ext_map },
	{ "xfs", fs_xfs_map },
	{ "vfat", fs_fat_map },
	{ "ntfs", fs_ntfs_map },
	{ "exfat", fs_exfat_map },
};

fs_reader_fn fsmap_reader(const char *type)
{
	size_t i;

	for (i = 0; i < sizeof(readers) / sizeof(readers[0]); i++)
		if (strcmp(readers[i].type, type) == 0)
			return readers[i].read;
	return NULL;
}

