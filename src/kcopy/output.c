/* output.c - the one way kcopy's messages reach standard error: one line
 * each, prefixed "kcopy: ", never on top of a progress bar.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kcopy.h"

/* Started with standard input, output or error closed, kcopy would open a
 * region or the report as descriptor 0, 1 or 2, and its messages would land
 * in it: put /dev/null there first.  0, or -errno. */
static int std_fds_open(void)
{
	int fd;

	for (fd = 0; fd <= 2; fd++) {
		int got;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* The lowest free descriptor: fd itself. */
		got = open("/dev/null", fd ? O_WRONLY : O_RDONLY);
		if (got < 0)
			return -errno;
		if (got != fd)
			return -EBADF;
	}
	return 0;
}

int output_init(struct output *o)
{
	int r = std_fds_open();

	pthread_mutex_init(&o->lock, NULL);
	o->bar_drawn = false;
	return r;
}

void output_destroy(struct output *o)
{
	pthread_mutex_destroy(&o->lock);
}

void output_clear_bar(struct output *o)
{
	if (o->bar_drawn) {
		fputs("\r\033[K", stderr);
		o->bar_drawn = false;
	}
}

void say(struct output *o, enum msg_level level, const char *fmt, ...)
{
	va_list ap;

	if ((level == MSG_NOTE && o->quiet) ||
	    (level == MSG_VERBOSE && (!o->verbose || o->quiet)))
		return;
	pthread_mutex_lock(&o->lock);
	output_clear_bar(o);
	fputs("kcopy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&o->lock);
}

void output_locked(struct output *o, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&o->lock);
	fn(arg);
	pthread_mutex_unlock(&o->lock);
}

int output_close_stdout(struct output *o)
{
	bool failed = fflush(stdout) != 0 || ferror(stdout);
	int err = failed ? errno : 0;

	if (fclose(stdout) != 0 && !failed) {
		failed = true;
		err = errno;
	}
	if (!failed)
		return 0;
	if (err)
		say(o, MSG_ERROR, "write error: standard output: %s",
		    strerror(err));
	else
		say(o, MSG_ERROR, "write error: standard output");
	return -(err ? err : EIO);
}
