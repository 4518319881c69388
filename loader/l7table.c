// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7table.c: see l7table.h. Pure: config and resolved table in, an immutable table out; the
 * environment (which pods are local, which behind the tunnel) comes through callbacks, so
 * unit tests build tables without maps.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpfmesh.h"
#include "cfgref.h"
#include "l7table.h"

static void vip_key(uint8_t k[HKEY], const uint8_t vip[4], uint16_t port)
{
	memset(k, 0, HKEY);
	memcpy(k, vip, 4);
	memcpy(k + 4, &port, 2);
	k[6] = 0x7a; /* not a zero key */
}

static void free_match(struct l7_match *m)
{
	bm_regex_free(m->uri);
	bm_regex_free(m->scheme);
	bm_regex_free(m->method);
	bm_regex_free(m->authority);
	for (int i = 0; m->headers && i < m->m->nheaders; i++)
		bm_regex_free(m->headers[i]);
	for (int i = 0; m->without && i < m->m->nwithout_headers; i++)
		bm_regex_free(m->without[i]);
	for (int i = 0; m->query && i < m->m->nquery_params; i++)
		bm_regex_free(m->query[i]);
	free(m->headers);
	free(m->without);
	free(m->query);
}

/* A regex of a StringMatch, compiled (validation compiled it already: it compiles). */
static struct bm_regex *re_of(const struct str_match *sm, bool ignore_case)
{
	char err[256];

	if (sm->kind != SM_REGEX || !sm->value)
		return NULL;
	return bm_regex_new(sm->value, ignore_case, err, sizeof(err));
}

static struct bm_regex **named_res(const struct named_match *v, int n)
{
	struct bm_regex **r = n ? calloc(n, sizeof(*r)) : NULL;

	for (int i = 0; r && i < n; i++)
		r[i] = re_of(&v[i].m, false);
	return r;
}

static struct l7_match *compile_matches(const struct http_route_spec *h, int *n)
{
	struct l7_match *v;

	*n = 0;
	if (!h || !h->nmatches)
		return NULL;
	v = calloc(h->nmatches, sizeof(*v));
	for (int i = 0; v && i < h->nmatches; i++) {
		const struct http_match *m = &h->matches[i];
		struct l7_match *lm = &v[(*n)++];

		lm->m = m;
		lm->uri = re_of(&m->uri, false); /* ignoreUriCase is for exact and prefix */
		lm->scheme = re_of(&m->scheme, false);
		lm->method = re_of(&m->method, false);
		lm->authority = re_of(&m->authority, false);
		lm->headers = named_res(m->headers, m->nheaders);
		lm->without = named_res(m->without_headers, m->nwithout_headers);
		lm->query = named_res(m->query_params, m->nquery_params);
	}
	return v;
}

static void build_cluster(struct l7_cluster *cl, const struct rs_table *t, int si,
			  const struct l7_env *env)
{
	const struct rs_subset *s = &t->subsets[si];

	cl->name = strdup(s->name ? s->name : "");
	cl->svc = s->svc;
	cl->fqdn = s->svc ? config_fqdn(s->svc->name, s->svc->ns) : NULL;
	cl->proto = s->port ? rs_port_proto(s->port) : RS_TCP;
	cl->lb = s->lb;
	cl->pol = s->policy;
	cl->rule_tp = s->dr && s->dr->has_policy ? &s->dr->policy : NULL;
	cl->tp = s->ds && s->ds->has_policy ? &s->ds->policy : cl->rule_tp;
	cl->eps = s->n ? calloc(s->n, sizeof(*cl->eps)) : NULL;
	for (int i = 0; cl->eps && i < s->n; i++) {
		const struct rs_backend *b = &t->backends[s->backends[i]];
		struct l7_ep *e;

		if (b->family != BM_FAM_V4)
			continue; /* the HTTP path dials IPv4 (as the tunnel does) */
		e = &cl->eps[cl->n++];
		memcpy(e->addr, b->addr, 4);
		e->port = b->port;
		e->wl = b->wl;
		e->local = !b->wl || !env->local || env->local(env->arg, b->wl);
		e->tunnel =
		    b->wl && !e->local && env->tunnel && env->tunnel(env->arg, b->wl, b->port);
		e->backend_id = env->backend_id ? env->backend_id(env->arg, b) : 0;
	}
}

static int build_route(struct l7_table *lt, const struct rs_l7route *src, struct l7_route *r)
{
	const struct vs_route *vr = &src->vs->routes[src->route];

	r->vs = src->vs;
	r->r = vr;
	r->h = vr->http;
	r->ph = src->parent ? src->parent->http : NULL;
	config_route_path(r->path, sizeof(r->path), src->vs, src->route);
	r->ms = compile_matches(r->h, &r->nms);
	r->pms = compile_matches(r->ph, &r->npms);
	r->dests = src->ndests ? calloc(src->ndests, sizeof(*r->dests)) : NULL;
	for (int i = 0; r->dests && i < src->ndests; i++) {
		struct l7_dest *d = &r->dests[r->ndests];

		if (!src->dests[i].weight)
			continue; /* weight 0: never picked */
		d->cl = &lt->clusters[src->dests[i].subset];
		d->weight = src->dests[i].weight;
		d->rd = src->dests[i].rd;
		r->total += d->weight;
		r->ndests++;
	}
	r->mirrors = src->nmirrors ? calloc(src->nmirrors, sizeof(*r->mirrors)) : NULL;
	for (int i = 0; r->mirrors && i < src->nmirrors; i++)
		r->mirrors[r->nmirrors++] = &lt->clusters[src->mirrors[i]];
	if (r->h && r->h->has_rewrite && r->h->rewrite.regex_match) {
		char err[256];

		r->rewrite_re = bm_regex_new(r->h->rewrite.regex_match, false, err, sizeof(err));
	}
	return 0;
}

struct l7_table *l7_table_build(struct cfgref *cfg, const struct rs_table *t,
				const struct l7_env *env)
{
	struct l7_table *lt;
	int n = 0;

	for (int i = 0; i < t->nservices; i++)
		n += t->services[i].l7_reason[0] && t->services[i].family == BM_FAM_V4;
	if (!n)
		return NULL;
	lt = calloc(1, sizeof(*lt));
	if (!lt)
		return NULL;
	lt->refs = 1;
	lt->cfg = cfgref_get(cfg);
	lt->c = cfg ? cfg->c : NULL;
	lt->svcs = calloc(n, sizeof(*lt->svcs));
	lt->clusters = calloc(t->nsubsets ? t->nsubsets : 1, sizeof(*lt->clusters));
	if (!lt->svcs || !lt->clusters) {
		l7_table_put(lt);
		return NULL;
	}
	lt->nclusters = t->nsubsets;
	for (int i = 0; i < t->nsubsets; i++)
		build_cluster(&lt->clusters[i], t, i, env);
	for (int i = 0; i < t->nservices; i++) {
		const struct rs_service *rs = &t->services[i];
		struct l7_svc *s;
		uint8_t k[HKEY];

		if (!rs->l7_reason[0] || rs->family != BM_FAM_V4)
			continue;
		s = &lt->svcs[lt->nsvcs++];
		memcpy(s->vip, rs->addr, 4);
		s->port = rs->port;
		s->svc = rs->svc;
		s->fqdn = rs->fqdn ? strdup(rs->fqdn) : NULL;
		s->vs = rs->vs;
		s->proto = rs->http;
		snprintf(s->reason, sizeof(s->reason), "%s", rs->l7_reason);
		s->all = &lt->clusters[rs->all_subset];
		s->routes = rs->nl7routes ? calloc(rs->nl7routes, sizeof(*s->routes)) : NULL;
		for (int r = 0; s->routes && r < rs->nl7routes; r++)
			build_route(lt, &rs->l7routes[r], &s->routes[s->nroutes++]);
		vip_key(k, s->vip, s->port);
		h_put(&lt->by_vip, k, lt->nsvcs - 1);
	}
	return lt;
}

struct l7_table *l7_table_get(struct l7_table *t)
{
	if (t)
		__atomic_add_fetch(&t->refs, 1, __ATOMIC_ACQ_REL);
	return t;
}

static void free_routes(struct l7_svc *s)
{
	for (int r = 0; r < s->nroutes; r++) {
		struct l7_route *rt = &s->routes[r];

		for (int i = 0; i < rt->nms; i++)
			free_match(&rt->ms[i]);
		for (int i = 0; i < rt->npms; i++)
			free_match(&rt->pms[i]);
		free(rt->ms);
		free(rt->pms);
		free(rt->dests);
		free(rt->mirrors);
		bm_regex_free(rt->rewrite_re);
	}
	free(s->routes);
}

void l7_table_put(struct l7_table *t)
{
	if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (int i = 0; i < t->nsvcs; i++) {
		free_routes(&t->svcs[i]);
		free((char *)t->svcs[i].fqdn);
	}
	for (int i = 0; i < t->nclusters; i++) {
		free(t->clusters[i].eps);
		free((char *)t->clusters[i].name);
		free((char *)t->clusters[i].fqdn);
	}
	free(t->svcs);
	free(t->clusters);
	h_free(&t->by_vip);
	cfgref_put(t->cfg);
	free(t);
}

const struct l7_svc *l7_table_find(const struct l7_table *t, const uint8_t vip[4], uint16_t port)
{
	uint8_t k[HKEY];
	int *i;

	if (!t)
		return NULL;
	vip_key(k, vip, port);
	i = h_get((struct htab *)&t->by_vip, k);
	return i ? &t->svcs[*i] : NULL;
}
