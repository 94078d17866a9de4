/* unit.h - what the tool's unit tests (tests/test-*.c over src/kcopy/)
 * share: CHECK, which counts a broken expectation in failures and goes on.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef KCOPY_UNIT_H
#define KCOPY_UNIT_H

#include <stdio.h>

static int failures;

#define CHECK(c) do {							\
		if (!(c)) {						\
			fprintf(stderr, "%s:%d: %s\n", __FILE__,	\
				__LINE__, #c);				\
			failures++;					\
		}							\
	} while (0)

#endif /* KCOPY_UNIT_H */
