/* fuzz.h - what the libFuzzer harnesses (tests/fuzz-*.c) share.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef KCOPY_FUZZ_H
#define KCOPY_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise is a finding: say which, and abort for libFuzzer. */
#define CHECK(cond)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: invariant failed: %s\n", \
				__FILE__, __LINE__, #cond);		\
			abort();					\
		}							\
	} while (0)

/* The input as a control byte (*control) and a string: the bytes after
 * it, cut at the first NUL.  NULL for an empty input or no memory; the
 * caller frees it. */
static inline char *fuzz_control_string(const uint8_t *data, size_t size,
					uint8_t *control)
{
	char *s;

	if (size == 0)
		return NULL;
	s = malloc(size);	/* size - 1 bytes of string plus its NUL */
	if (!s)
		return NULL;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	*control = data[0];
	return s;
}

#endif /* KCOPY_FUZZ_H */
