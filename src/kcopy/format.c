/* format.c - numbers as the tool shows them to people (format.h).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>

#include "format.h"

char *kc_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {
		"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"
	};
	unsigned k = 1;
	uint64_t tenths;

	if (!buf || len == 0)
		return buf;
	if (bytes < 1024) {
		snprintf(buf, len, "%u B", (unsigned)bytes);
		return buf;
	}
	/* smallest unit whose rounded value stays below 1024.0 */
	for (;;) {
		unsigned shift = 10 * k;
		uint64_t q = bytes >> shift;
		uint64_t r = bytes & ((UINT64_C(1) << shift) - 1);

		/* r < 2^60 and q <= 15 for k = 6: neither product overflows */
		tenths = q * 10 + ((r * 10 + (UINT64_C(1) << (shift - 1))) >> shift);
		if (tenths < 10240 || k == 6)
			break;
		k++;
	}
	snprintf(buf, len, "%u.%u %s", (unsigned)(tenths / 10),
		 (unsigned)(tenths % 10), units[k]);
	return buf;
}

void kc_format_eta(double seconds, char *buf, size_t len)
{
	unsigned long s;

	if (seconds < 0 || seconds > 359999) {
		snprintf(buf, len, "--:--:--");
		return;
	}
	s = (unsigned long)(seconds + 0.5);
	snprintf(buf, len, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
}
