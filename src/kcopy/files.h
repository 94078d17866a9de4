/* files.h - kcopy's own files (the report, the mapfile): read whole,
 * written whole, replaced atomically, named before they exist.  Each
 * returns 0 or -errno (or as said) and prints nothing.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef KCOPY_FILES_H
#define KCOPY_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The whole of file path, NUL-terminated, into *text (len bytes, the NUL
 * not counted; the caller frees it); -EFBIG if it is larger than about
 * max bytes. */
int files_read_all(const char *path, size_t max, char **text, size_t *len);
/* All len bytes of buf to fd, through short writes and EINTR. */
int files_write_all(int fd, const char *buf, size_t len);
/* A path that does not exist, as its real directory and its last name,
 * however it is spelled and through whatever links (dangling ones too):
 * "/dir/name".  NULL with errno set. */
char *files_resolve_new(const char *path);
/* A temporary file beside path, named prefix and six random characters,
 * to be renamed over it: its name in *tmp (the caller frees it), open on
 * *fd. */
int files_temp_beside(const char *path, const char *prefix, char **tmp,
		      int *fd);
/* Write buf to the temporary file tmp (open on fd), flush it, give it
 * mode, rename it over path and flush the directory: a reader sees the
 * old file or the new one, whole.  *renamed tells whether the rename was
 * done; the caller closes fd, and removes tmp if it was not. */
int files_publish_temp(int fd, const char *tmp, const char *path,
		       mode_t mode, const char *buf, size_t len,
		       bool *renamed);
/* Replace path with len bytes of buf atomically: files_temp_beside(),
 * then files_publish_temp(); the temporary file never stays. */
int files_replace(const char *path, const char *prefix, const char *buf,
		  size_t len, mode_t mode);
/* The mode of a new file: 0666 less the umask. */
mode_t files_new_mode(void);

#endif /* KCOPY_FILES_H */
