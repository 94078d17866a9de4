/* format.h - numbers as the tool shows them to people: sizes in binary
 * units, durations as H:MM:SS.  Pure functions of their arguments.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef KCOPY_FORMAT_H
#define KCOPY_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* A buffer this long always holds kc_format_size's result. */
#define KC_FORMAT_SIZE_LEN	16

/*
 * Human-readable size in binary units into buf: "512 B" below 1 KiB,
 * otherwise one decimal and the largest unit that keeps the value below
 * 1024 ("1.5 GiB", "1.0 KiB", "16.0 EiB"), rounded to nearest.  Output is
 * truncated (always NUL-terminated) if len is short; KC_FORMAT_SIZE_LEN
 * always suffices.  Returns buf.
 */
char *kc_format_size(uint64_t bytes, char *buf, size_t len);

/* seconds as H:MM:SS, rounded to the second, into buf; "--:--:--" when
 * negative (not known) or 100 hours or more. */
void kc_format_eta(double seconds, char *buf, size_t len);

#endif /* KCOPY_FORMAT_H */
