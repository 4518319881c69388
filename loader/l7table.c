// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7table.c: see l7table.h. Pure: config and resolved table in, an immutable table out; the
 * environment (which pods are local, which behind the tunnel) comes through callbacks, so
 * unit tests build tables without maps.
 */
#include <ctype.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpfmesh.h"
#include "cfgref.h"
#include "gwtls.h"
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

static struct l7_match *compile_matches(const struct http_route_spec *h, int *n,
					const struct vs_obj *vs, const struct gw_obj *gw)
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
		lm->vs_ns = vs->ns;
		lm->gw = gw;
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

static int build_route(struct l7_table *lt, const struct rs_l7route *src, struct l7_route *r,
		       const struct gw_obj *gw)
{
	const struct vs_route *vr = &src->vs->routes[src->route];

	r->vs = src->vs;
	r->r = vr;
	r->h = vr->http;
	r->ph = src->parent ? src->parent->http : NULL;
	config_route_path(r->path, sizeof(r->path), src->vs, src->route);
	r->ms = compile_matches(r->h, &r->nms, src->vs, gw);
	/* (the root route's matches are written in the root VirtualService: its namespace for
	 * their gateways; delegates live in the root's namespace unless named otherwise) */
	r->pms = compile_matches(r->ph, &r->npms, src->vs, gw);
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

/* This agent serves the Gateway of gs (its selector holds for the ingress labels; an empty
 * selector selects every gateway workload, as Istio's) and bpfmesh serves its protocol. */
static bool serves(const struct l7_env *env, const struct rs_gwserver *gs)
{
	return gs->served && kv_match(&gs->gw->selector, env->ingress);
}

static struct l7_gwport *gwport_of(struct l7_table *lt, uint16_t port, enum rs_proto proto,
				   bool tls)
{
	struct l7_gwport *v;

	/* servers of one kind share a port (HTTP, HTTP2, GRPC; HTTPS terminated; TLS
	 * passthrough; TCP); of another kind on the same port: the first one wins */
	for (int i = 0; i < lt->ngwports; i++)
		if (lt->gwports[i].port == port)
			return lt->gwports[i].tls == tls &&
				       (lt->gwports[i].proto == RS_TLS) == (proto == RS_TLS) &&
				       (lt->gwports[i].proto == RS_TCP) == (proto == RS_TCP)
				   ? &lt->gwports[i]
				   : NULL;
	v = realloc(lt->gwports, (lt->ngwports + 1) * sizeof(*v));
	if (!v)
		return NULL;
	lt->gwports = v;
	v = &lt->gwports[lt->ngwports++];
	*v = (struct l7_gwport){.port = port, .proto = proto, .tls = tls};
	return v;
}

/* A server's virtual hosts join its port's. */
static void add_gwserver(struct l7_table *lt, const struct rs_gwserver *gs)
{
	const struct gw_server *sv = &gs->gw->servers[gs->server];
	struct l7_gwport *p = gwport_of(lt, (uint16_t)sv->port, gs->proto, gs->tls);

	if (p && gs->tls) { /* its certificate, chosen by SNI */
		struct gwtls *v = realloc(p->tlsv, (p->ntls + 1) * sizeof(*v));

		if (!v)
			return;
		p->tlsv = v;
		gwtls_init(&p->tlsv[p->ntls++], lt->c, gs->gw, sv);
	}
	for (int h = 0; p && h < gs->nhosts; h++) {
		const struct rs_gwhost *gh = &gs->hosts[h];
		struct l7_vhost *vh = NULL;
		struct l7_route *more;

		/* HTTPS: a server's own virtual hosts (the SNI chose it); HTTP: one per domain,
		 * the routes of every server with it appended in order (Istio's merge) */
		for (int i = 0; i < p->nvh && !vh; i++)
			if (!strcmp(p->vh[i].domain, gh->domain) && (!p->tls || p->vh[i].sv == sv))
				vh = &p->vh[i];
		if (vh) {
			more = gh->nroutes ? realloc(vh->s.routes,
						     (vh->s.nroutes + gh->nroutes) * sizeof(*more))
					   : NULL;
			if (!more)
				continue;
			vh->s.routes = more;
			memset(more + vh->s.nroutes, 0, gh->nroutes * sizeof(*more));
			for (int r = 0; r < gh->nroutes; r++)
				build_route(lt, &gh->routes[r], &vh->s.routes[vh->s.nroutes++],
					    gs->gw);
			continue;
		}
		vh = realloc(p->vh, (p->nvh + 1) * sizeof(*vh));
		if (!vh)
			return;
		p->vh = vh;
		vh = &p->vh[p->nvh++];
		memset(vh, 0, sizeof(*vh));
		vh->domain = strdup(gh->domain);
		vh->gw = gs->gw;
		vh->sv = sv;
		vh->s.port = (uint16_t)sv->port;
		vh->s.vs = gh->vs;
		vh->s.proto = gs->proto;
		snprintf(vh->s.reason, sizeof(vh->s.reason), "Gateway %s/%s", gs->gw->ns,
			 gs->gw->name);
		vh->s.routes = gh->nroutes ? calloc(gh->nroutes, sizeof(*vh->s.routes)) : NULL;
		for (int r = 0; vh->s.routes && r < gh->nroutes; r++)
			build_route(lt, &gh->routes[r], &vh->s.routes[vh->s.nroutes++], gs->gw);
	}
}

struct l7_table *l7_table_build(struct cfgref *cfg, const struct rs_table *t,
				const struct l7_env *env)
{
	struct l7_table *lt;
	int n = 0;

	for (int i = 0; i < t->nservices; i++)
		n += t->services[i].l7_reason[0] && t->services[i].family == BM_FAM_V4;
	for (int i = 0; env->ingress && i < t->ngwservers; i++)
		n += serves(env, &t->gwservers[i]);
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
			build_route(lt, &rs->l7routes[r], &s->routes[s->nroutes++], NULL);
		vip_key(k, s->vip, s->port);
		h_put(&lt->by_vip, k, lt->nsvcs - 1);
	}
	for (int i = 0; env->ingress && i < t->ngwservers; i++)
		if (serves(env, &t->gwservers[i]))
			add_gwserver(lt, &t->gwservers[i]);
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
	for (int i = 0; i < t->ngwports; i++) {
		for (int h = 0; h < t->gwports[i].nvh; h++) {
			free_routes(&t->gwports[i].vh[h].s);
			free(t->gwports[i].vh[h].domain);
		}
		free(t->gwports[i].vh);
		for (int k = 0; k < t->gwports[i].ntls; k++)
			gwtls_free(&t->gwports[i].tlsv[k]);
		free(t->gwports[i].tlsv);
	}
	free(t->gwports);
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

const struct l7_gwport *l7_table_gwport(const struct l7_table *t, uint16_t port)
{
	for (int i = 0; t && i < t->ngwports; i++)
		if (t->gwports[i].port == port)
			return &t->gwports[i];
	return NULL;
}

const struct l7_vhost *l7_table_vhost(const struct l7_gwport *g, const char *authority,
				      const struct gw_server *only)
{
	char host[256];
	const struct l7_vhost *best = NULL;
	int best_score = 0;
	size_t n;

	if (!g)
		return NULL;
	authority = authority ? authority : "";
	/* "[v6]:port", "name:port", "name" */
	if (authority[0] == '[')
		n = strcspn(authority, "]") + 1;
	else
		n = strcspn(authority, ":");
	if (n >= sizeof(host))
		return NULL;
	for (size_t i = 0; i < n; i++)
		host[i] = (char)tolower((unsigned char)authority[i]);
	host[n] = 0;
	if (n && host[n - 1] == '.')
		host[n - 1] = 0; /* a fully qualified name's root dot */
	for (int i = 0; i < g->nvh; i++) {
		int sc = only && g->vh[i].sv != only ? 0 : rs_domain_score(g->vh[i].domain, host);

		if (sc > best_score) {
			best_score = sc;
			best = &g->vh[i];
		}
	}
	return best;
}
