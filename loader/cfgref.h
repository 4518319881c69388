/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * cfgref.h: a reference-counted config in force, shared by the agent's control thread (which
 * loads and applies configs, renders metrics) and the tunnel's data thread (which reads pods
 * and policies per connection). The config inside is never changed once shared; the last
 * holder frees it.
 */
#ifndef BM_CFGREF_H
#define BM_CFGREF_H

#include <stdlib.h>
#include "model.h"

struct cfgref {
	int refs; /* atomic */
	struct mesh_config *c;
};

static inline struct cfgref *cfgref_new(struct mesh_config *c)
{
	struct cfgref *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	r->refs = 1;
	r->c = c;
	return r;
}

static inline struct cfgref *cfgref_get(struct cfgref *r)
{
	if (r)
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_ACQ_REL);
	return r;
}

static inline void cfgref_put(struct cfgref *r)
{
	if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL))
		return;
	config_free(r->c);
	free(r);
}

#endif /* BM_CFGREF_H */
