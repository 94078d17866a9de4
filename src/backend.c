/* backend.c - the backends' client-wide parts: made at a backend's first
 * use, destroyed with the client.
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A client knows the backends it has used only through their struct
 * kc_backend: kc->backends holds each one's table and state, so that
 * client.c frees whatever was used without naming a kind of storage.
 */
#include <config.h>

#include <errno.h>

#include "kcopyd-private.h"

void *kc_backend_state(const struct kcopyd_client *kc,
		       const struct kc_backend *b)
{
	unsigned int i;

	for (i = 0; i < kc->num_backends; i++)
		if (kc->backends[i].backend == b)
			return kc->backends[i].state;
	return NULL;
}

int kc_backend_use(struct kcopyd_client *kc, const struct kc_backend *b,
		   void **state)
{
	struct kc_backend_use *u;
	unsigned int i;
	int r;

	for (i = 0; i < kc->num_backends; i++) {
		if (kc->backends[i].backend == b) {
			*state = kc->backends[i].state;
			return 0;
		}
	}
	if (kc->num_backends == KC_MAX_BACKENDS)
		return -ENOSPC;
	u = &kc->backends[kc->num_backends];
	r = b->client_create(kc, &u->state);
	if (r < 0)
		return r;
	u->backend = b;
	kc->num_backends++;
	*state = u->state;
	return 0;
}

void kc_backends_destroy(struct kcopyd_client *kc)
{
	while (kc->num_backends) {
		struct kc_backend_use *u = &kc->backends[--kc->num_backends];

		u->backend->client_destroy(kc, u->state);
	}
}
