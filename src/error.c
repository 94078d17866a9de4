/* error.c - why the last failed call of this thread failed.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * As libnbd's nbd_get_error(): a message and an errno per thread, set where
 * a call is refused and read by the caller on the same thread, so that
 * concurrent callers never see each other's reasons and no lock is needed.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kcopyd-private.h"

#define KC_ERROR_MAX 512

static __thread char last_error[KC_ERROR_MAX];
static __thread bool has_error;
static __thread int last_errno;

int kc_set_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	has_error = true;
	last_errno = -err;
	return err;
}

int kc_prefix_error(const char *fmt, ...)
{
	char prefix[64];
	size_t n, len = strlen(last_error);
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(prefix, sizeof(prefix) - 2, fmt, ap);
	va_end(ap);
	n = w < 0 ? 0 : strlen(prefix);
	memcpy(prefix + n, ": ", 2);
	n += 2;
	/* the message moves right by n, cut to fit */
	if (len > sizeof(last_error) - 1 - n)
		len = sizeof(last_error) - 1 - n;
	memmove(last_error + n, last_error, len);
	memcpy(last_error, prefix, n);
	last_error[n + len] = 0;
	return -last_errno;
}

int kc_fail(int err)
{
	if (err < 0 && !has_error)
		kc_set_error(err, "%s", strerror(-err));
	return err;
}

void kc_clear_error(void)
{
	has_error = false;
}

const char *kcopyd_get_error(void)
{
	return last_errno ? last_error : NULL;
}

int kcopyd_get_errno(void)
{
	return last_errno;
}
