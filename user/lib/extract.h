/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * extract.h: internal to the library's readers of valid objects into the model (config.c,
 * config_http.c, ratelimit.c, telemetry.c): allocation with one out-of-memory flag per
 * object, and copies of strings, string maps, string lists and durations out of the YAML
 * tree.
 */
#ifndef BM_EXTRACT_H
#define BM_EXTRACT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "duration.h"
#include "model.h"
#include "yamltree.h"

static inline char *dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Allocation failures are rare enough that one flag per object is all the bookkeeping
 * needed: the object is dropped and "out of memory" reported. */
struct xctx {
	bool oom;
};

static inline char *xdup(struct xctx *x, const char *s)
{
	char *r = dup(s);

	if (s && !r)
		x->oom = true;
	return r;
}

static inline void *xcalloc(struct xctx *x, size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		x->oom = true;
	return p;
}

static inline void kvlist_free(struct kvlist *l)
{
	for (int i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].val);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* A string map (labels, selector); null values become "". */
static inline void kv_from_map(struct xctx *x, struct kvlist *l, const struct ynode *map)
{
	if (!ynode_is_map(map) || map->n == 0)
		return;
	l->v = xcalloc(x, map->n, sizeof(*l->v));
	if (!l->v)
		return;
	for (int i = 0; i < map->n; i++) {
		const char *val = ynode_text(map->pairs[i].val);

		l->v[l->n].key = xdup(x, map->pairs[i].key);
		l->v[l->n].val = xdup(x, val ? val : "");
		l->n++;
	}
}

static inline void strv_free(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static inline char **strv_from_seq(struct xctx *x, const struct ynode *seq, int *n)
{
	char **v;

	*n = 0;
	if (!ynode_is_seq(seq) || seq->n == 0)
		return NULL;
	v = xcalloc(x, seq->n, sizeof(*v));
	for (int i = 0; v && i < seq->n; i++)
		v[(*n)++] = xdup(x, ynode_text(seq->items[i]));
	return v;
}

static inline int64_t duration_ms(const struct ynode *n)
{
	int64_t ns;

	if (!ynode_str(n) || parse_duration_ns(n->str, &ns) < 0)
		return -1;
	return ns / 1000000;
}

/* In config_http.c: the L7 part of an http route and the matches of a tcp/tls route. */
void http_route_extract(struct xctx *x, struct vs_route *r, const struct ynode *n,
			const char *file);
void l4_matches_extract(struct xctx *x, struct vs_route *r, const struct ynode *n);
void http_route_free(struct vs_route *r);
void header_ops_extract(struct xctx *x, struct header_ops *h, const struct ynode *ops);
void header_ops_free(struct header_ops *h);

#endif /* BM_EXTRACT_H */
