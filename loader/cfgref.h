/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * cfgref.h: a reference-counted config in force, shared by the agent's control thread (which
 * loads and applies configs, renders metrics) and the tunnel's data thread (which reads pods
 * and policies per connection). The config inside is never changed once shared; the last
 * holder frees it.
 */
#ifndef BM_CFGREF_H
#define BM_CFGREF_H

#include <pthread.h>
#include <stdbool.h>
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

static inline void *cfgref_free_thread(void *arg)
{
	struct cfgref *r = arg;

	config_free(r->c);
	free(r);
	return NULL;
}

/* The last put frees the config: a large one on a thread of its own (freeing 100,000 objects
 * takes 100 ms or more, which the thread that put it, an event loop, must not wait for). */
static inline void cfgref_put(struct cfgref *r)
{
	pthread_attr_t attr;
	pthread_t t;
	bool big;

	if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL))
		return;
	big = r->c && r->c->nsources + r->c->nservices + r->c->nworkloads > 2000;
	if (big && !pthread_attr_init(&attr)) {
		bool started = !pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) &&
			       !pthread_create(&t, &attr, cfgref_free_thread, r);

		pthread_attr_destroy(&attr);
		if (started)
			return;
	}
	cfgref_free_thread(r);
}

#endif /* BM_CFGREF_H */
