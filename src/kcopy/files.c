/* files.c - kcopy's own files (the report, the mapfile): read whole,
 * written whole, replaced atomically through a temporary file beside them,
 * and named before they exist.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"

int files_read_all(const char *path, size_t max, char **text, size_t *len)
{
	FILE *f = fopen(path, "re");
	size_t cap = 1 << 16, n;
	char *buf = NULL, *nb;
	int r = 0;

	*text = NULL;
	*len = 0;
	if (!f)
		return -errno;
	for (;;) {
		nb = realloc(buf, cap + 1);
		if (!nb) {
			r = -ENOMEM;
			break;
		}
		buf = nb;
		n = fread(buf + *len, 1, cap - *len, f);
		*len += n;
		if (*len < cap) {
			if (ferror(f))
				r = -EIO;
			break;
		}
		if (cap >= max) {
			r = -EFBIG;
			break;
		}
		cap *= 2;
	}
	fclose(f);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[*len] = 0;
	*text = buf;
	return 0;
}

int files_write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Where the symbolic links path may be (dangling ones, as the path does not
 * exist) lead: a path that is not a link; NULL with errno set. */
static char *follow_links(const char *path)
{
	char link[PATH_MAX], *cur = strdup(path), *next, *d;
	int depth;
	ssize_t n;

	for (depth = 0; cur && depth < 40; depth++) {
		n = readlink(cur, link, sizeof(link) - 1);
		if (n < 0)
			return cur;
		link[n] = 0;
		d = strdup(cur);
		if (link[0] == '/')
			next = strdup(link);
		else if (!d || asprintf(&next, "%s/%s", dirname(d), link) < 0)
			next = NULL;
		free(d);
		free(cur);
		cur = next;
	}
	if (cur)
		errno = ELOOP;
	free(cur);
	return NULL;
}

char *files_resolve_new(const char *path)
{
	char *d = follow_links(path), *b = d ? strdup(d) : NULL;
	char *dir = NULL, *res = NULL;
	const char *name;

	if (!d || !b)
		goto out;
	name = basename(b);
	if (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, "/")) {
		errno = EISDIR;
		goto out;
	}
	dir = realpath(dirname(d), NULL);
	if (dir && asprintf(&res, "%s/%s", strcmp(dir, "/") ? dir : "",
			    name) < 0)
		res = NULL;
out:
	free(d);
	free(b);
	free(dir);
	return res;
}

int files_temp_beside(const char *path, const char *prefix, char **tmp,
		      int *fd)
{
	char *d = strdup(path);

	*tmp = NULL;
	if (!d)
		return -ENOMEM;
	if (asprintf(tmp, "%s/%sXXXXXX", dirname(d), prefix) < 0)
		*tmp = NULL;
	free(d);
	if (!*tmp)
		return -ENOMEM;
	*fd = mkostemp(*tmp, O_CLOEXEC);
	if (*fd < 0) {
		int err = -errno;

		free(*tmp);
		*tmp = NULL;
		return err;
	}
	return 0;
}

int files_publish_temp(int fd, const char *tmp, const char *path,
		       mode_t mode, const char *buf, size_t len,
		       bool *renamed)
{
	char *d;
	int r, dfd;

	*renamed = false;
	r = files_write_all(fd, buf, len);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		return r;
	*renamed = true;
	d = strdup(path);
	if (!d)
		return -ENOMEM;
	dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		r = -errno;
	if (dfd >= 0)
		close(dfd);
	free(d);
	return r;
}

int files_replace(const char *path, const char *prefix, const char *buf,
		  size_t len, mode_t mode)
{
	char *tmp;
	bool renamed;
	int fd, r = files_temp_beside(path, prefix, &tmp, &fd);

	if (r < 0)
		return r;
	r = files_publish_temp(fd, tmp, path, mode, buf, len, &renamed);
	close(fd);
	if (!renamed)
		unlink(tmp);
	free(tmp);
	return r;
}

mode_t files_new_mode(void)
{
	mode_t mask = umask(0);

	umask(mask);
	return 0666 & ~mask;
}
