// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * resolve.c: turns a loaded mesh_config into the service table of resolve.h: which addresses
 * are services, which endpoints back each port, and, for clients in the mesh, which weighted
 * subsets a VirtualService sends them to. Kubernetes and Istio rules applied here:
 *  - endpoints are Pods (with an address) and WorkloadEntries in the Service's namespace whose
 *    labels match its selector; a named targetPort resolves against each pod's port names;
 *  - a VirtualService applies to mesh traffic when its gateways are empty or name "mesh";
 *  - the kernel decides at connect time, so per port it takes the http routes (tcp routes for
 *    ports that are plainly TCP) in order, first match wins, with what is known at connect():
 *    `port` and `destinationSubnets` (facts of the service address, decided here per port) and
 *    `sourceLabels`/`sourceNamespace` (facts of the client pod, evaluated here per pod; the
 *    kernel tests the pod it attributes the connecting cgroup to); no route holds: every
 *    endpoint, as Istio falls back to the service's default route;
 *  - a subset's own loadBalancer overrides the DestinationRule's; unset is LEAST_REQUEST.
 */
#include <ctype.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "gwapi.h"
#include "htab.h"
#include "ratelimit.h"
#include "telemetry.h"
#include "resolve.h"
#include "security.h"

#define RS_POOL_V4   0x0a600000u /* 10.96.0.0/12: Kubernetes' default service range */
#define RS_POOL_SIZE (1u << 20)

uint32_t rs_hash32(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

const char *rs_lb_name(uint32_t lb)
{
	switch (lb) {
	case BM_LB_LEAST_REQUEST:
		return "LEAST_REQUEST";
	case BM_LB_ROUND_ROBIN:
		return "ROUND_ROBIN";
	case BM_LB_RANDOM:
		return "RANDOM";
	case BM_LB_HASH_SRC_IP:
		return "CONSISTENT_HASH(useSourceIp)";
	case BM_LB_PASSTHROUGH:
		return "PASSTHROUGH";
	}
	return "?";
}

int rs_parse_addr(const char *s, uint8_t addr[16], uint8_t *family)
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = BM_FAM_V4;
		return 0;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = BM_FAM_V6;
		return 0;
	}
	return -1;
}

void rs_format_addr(const uint8_t addr[16], uint8_t family, char *buf, size_t len)
{
	if (!inet_ntop(family == BM_FAM_V6 ? AF_INET6 : AF_INET, addr, buf, len))
		snprintf(buf, len, "?");
}

static void *grow(void *p, int n, size_t sz)
{
	/* Doubling growth for the append-only arrays below; n is the current count. */
	if (n && (n & (n - 1)))
		return p;
	p = realloc(p, (n ? 2 * n : 1) * sz);
	if (!p)
		abort();
	return p;
}

static void objname(char *buf, size_t len, const char *kind, const char *ns, const char *name)
{
	snprintf(buf, len, "%s/%s/%s", kind, ns, name);
}

/* ---------- service addresses ---------- */

static bool is_headless(const struct svc_obj *s)
{
	return s->ncluster_ips > 0 && s->cluster_ips[0] && strcmp(s->cluster_ips[0], "None") == 0;
}

static bool serviceable(const struct svc_obj *s)
{
	return !is_headless(s) && !(s->type && strcmp(s->type, "ExternalName") == 0);
}

static int cmp_svc_ptr(const void *a, const void *b)
{
	const struct svc_obj *x = *(const struct svc_obj *const *)a;
	const struct svc_obj *y = *(const struct svc_obj *const *)b;
	int r = strcmp(x->ns, y->ns);

	return r ? r : strcmp(x->name, y->name);
}

/* The allocated IPv4 address of a Service without clusterIP (host order), 0 if it has one. */
/*
 * Allocate addresses for every Service without clusterIP, in namespace/name order, skipping
 * explicit clusterIPs: out[i] is service i's address (host order), 0 if it has its own.
 */
static void alloc_vips(const struct mesh_config *c, uint32_t *out)
{
	const struct svc_obj **v = calloc(c->nservices + 1, sizeof(*v));
	struct htab used = {0};
	int nv = 0;
	struct in_addr ia;
	uint8_t k[HKEY];

	if (!v)
		abort();
	for (int i = 0; i < c->nservices; i++) {
		const struct svc_obj *s = &c->services[i];

		out[i] = 0;
		if (!serviceable(s))
			continue;
		/* a Service the API server holds without an address has none (it allocates every
		 * real one): no address of the cluster's service range is made up for it */
		if (s->ncluster_ips == 0 && s->pos.file && !strncmp(s->pos.file, "api:", 4))
			continue;
		if (s->ncluster_ips == 0) {
			v[nv++] = s;
			continue;
		}
		for (int n = 0; n < s->ncluster_ips; n++) {
			if (inet_pton(AF_INET, s->cluster_ips[n], &ia) != 1)
				continue;
			memset(k, 0, sizeof(k));
			memcpy(k, &ia.s_addr, 4);
			h_put(&used, k, 1);
		}
	}
	qsort(v, nv, sizeof(*v), cmp_svc_ptr);
	for (int i = 0; i < nv; i++) {
		char key[512];
		uint32_t off, a, be;

		snprintf(key, sizeof(key), "%s/%s", v[i]->ns, v[i]->name);
		off = rs_hash32(key) % (RS_POOL_SIZE - 2) + 1;
		/* probe: skip addresses taken by explicit clusterIPs or earlier services */
		for (;;) {
			a = RS_POOL_V4 + off;
			be = htonl(a);
			memset(k, 0, sizeof(k));
			memcpy(k, &be, 4);
			if ((a & 0xff) != 0 && (a & 0xff) != 0xff && !h_get(&used, k))
				break;
			off = off % (RS_POOL_SIZE - 2) + 1;
		}
		h_put(&used, k, 1);
		out[v[i] - c->services] = a;
	}
	h_free(&used);
	free(v);
}

static uint32_t alloc_vip(const struct mesh_config *c, const struct svc_obj *want)
{
	uint32_t *all = calloc(c->nservices + 1, sizeof(uint32_t)), a;

	if (!all)
		abort();
	alloc_vips(c, all);
	a = all[want - c->services];
	free(all);
	return a;
}

int resolve_service_vip(const struct mesh_config *c, const struct svc_obj *s, int family, char *buf,
			size_t len)
{
	uint8_t addr[16], fam;

	if (!serviceable(s))
		return -1;
	for (int k = 0; k < s->ncluster_ips; k++) {
		if (rs_parse_addr(s->cluster_ips[k], addr, &fam) == 0 && fam == family) {
			snprintf(buf, len, "%s", s->cluster_ips[k]);
			return 0;
		}
	}
	if (s->ncluster_ips == 0 && family == BM_FAM_V4) {
		struct in_addr ia = {.s_addr = htonl(alloc_vip(c, s))};

		inet_ntop(AF_INET, &ia, buf, len);
		return 0;
	}
	return -1;
}

/* ---------- indexes (built once per resolve: configs of 10,000s of objects) ---------- */

struct rs_addr {
	uint8_t addr[16];
	uint8_t family;
	bool ok;
};

struct rs_index {
	uint32_t *vip4;		      /* per service: allocated IPv4 (host order), 0 = none */
	struct htab svc_by_fqdn;      /* fqdn key -> service index */
	struct htab wl_by_label;      /* (namespace, label=value) key -> first entry */
	int *entry_next;	      /* label entries: next entry of the same key, -1 = end */
	int *entry_wl;		      /* label entries: the workload */
	struct rs_addr (*wl_addr)[2]; /* per workload: parsed addresses */
	struct htab be_by_addr;	      /* (address, port, family) -> backend index */
	struct htab slice_state;      /* (namespace, service, address) -> EP_* of its slices */
	struct htab warned;	      /* route destinations reported missing (once, not per port) */
};

/* An endpoint's conditions in its Service's EndpointSlices (bits, EP_IN_SLICE when listed). */
enum { EP_IN_SLICE = 1, EP_READY = 2, EP_SERVING = 4, EP_TERMINATING = 8 };

static void slice_key(uint8_t k[HKEY], const char *ns, const char *svc, const uint8_t addr[16],
		      uint8_t fam)
{
	char a[64];

	rs_format_addr(addr, fam, a, sizeof(a));
	h_strkey(k, ns, svc, a);
}

static void index_slices(struct rs_index *ix, const struct mesh_config *c)
{
	for (int i = 0; i < c->nothers; i++) {
		const struct other_obj *o = &c->others[i];

		if (!o->slice_service || !o->ns)
			continue;
		for (int e = 0; e < o->nslice_eps; e++) {
			const struct slice_ep *se = &o->slice_eps[e];
			uint8_t addr[16], fam, k[HKEY];
			int bits = EP_IN_SLICE | (se->ready ? EP_READY : 0) |
				   (se->serving ? EP_SERVING : 0) |
				   (se->terminating ? EP_TERMINATING : 0);
			int *old;

			if (rs_parse_addr(se->addr, addr, &fam))
				continue;
			slice_key(k, o->ns, o->slice_service, addr, fam);
			old = h_get(&ix->slice_state, k);
			/* listed twice (two slices in a handover): ready in either is ready */
			h_put(&ix->slice_state, k, old ? (*old | bits) : bits);
		}
	}
}

static bool is_workload_endpoint(const struct workload_obj *w)
{
	return w->kind != WL_DEPLOYMENT && w->naddresses > 0;
}

static struct rs_index *index_build(const struct mesh_config *c)
{
	struct rs_index *ix = calloc(1, sizeof(*ix));
	int nentries = 0, e = 0;
	uint8_t k[HKEY];

	if (!ix)
		abort();
	ix->vip4 = calloc(c->nservices + 1, sizeof(uint32_t));
	ix->wl_addr = calloc(c->nworkloads + 1, sizeof(*ix->wl_addr));
	for (int i = 0; i < c->nworkloads; i++)
		nentries += c->workloads[i].labels.n;
	ix->entry_next = calloc(nentries + 1, sizeof(int));
	ix->entry_wl = calloc(nentries + 1, sizeof(int));
	if (!ix->vip4 || !ix->wl_addr || !ix->entry_next || !ix->entry_wl)
		abort();
	alloc_vips(c, ix->vip4);
	index_slices(ix, c);
	for (int i = 0; i < c->nservices; i++) {
		char *f = config_fqdn(c->services[i].name, c->services[i].ns);

		h_strkey(k, f, NULL, NULL);
		if (!h_get(&ix->svc_by_fqdn,
			   k)) /* the first of duplicates, as the linear scan did */
			h_put(&ix->svc_by_fqdn, k, i);
		free(f);
	}
	/* label lists, built backwards so each list is in config order */
	for (int i = c->nworkloads - 1; i >= 0; i--) {
		const struct workload_obj *w = &c->workloads[i];

		for (int a = 0; a < w->naddresses && a < 2; a++)
			ix->wl_addr[i][a].ok =
			    rs_parse_addr(w->addresses[a], ix->wl_addr[i][a].addr,
					  &ix->wl_addr[i][a].family) == 0;
		if (!is_workload_endpoint(w))
			continue;
		for (int l = 0; l < w->labels.n; l++) {
			int *head;

			h_strkey(k, w->ns, w->labels.v[l].key, w->labels.v[l].val);
			head = h_get(&ix->wl_by_label, k);
			ix->entry_wl[e] = i;
			ix->entry_next[e] = head ? *head : -1;
			h_put(&ix->wl_by_label, k, e);
			e++;
		}
	}
	return ix;
}

static void index_free(struct rs_index *ix)
{
	if (!ix)
		return;
	free(ix->vip4);
	free(ix->wl_addr);
	free(ix->entry_next);
	free(ix->entry_wl);
	h_free(&ix->svc_by_fqdn);
	h_free(&ix->wl_by_label);
	h_free(&ix->be_by_addr);
	h_free(&ix->slice_state);
	h_free(&ix->warned);
	free(ix);
}

/* ---------- lookups ---------- */

static const struct svc_obj *find_service(const struct rs_index *ix, const struct mesh_config *c,
					  const char *fqdn)
{
	uint8_t k[HKEY];
	int *i;

	h_strkey(k, fqdn, NULL, NULL);
	i = h_get((struct htab *)&ix->svc_by_fqdn, k);
	return i ? &c->services[*i] : NULL;
}

static bool host_matches(const char *pattern, const char *fqdn)
{
	size_t lp, lf;

	if (strcmp(pattern, fqdn) == 0)
		return true;
	if (pattern[0] != '*')
		return false;
	lp = strlen(pattern + 1);
	lf = strlen(fqdn);
	return lf >= lp && strcmp(fqdn + lf - lp, pattern + 1) == 0;
}

/* The DestinationRule for a host: exact host beats wildcard; the service's namespace first;
 * of equals, the first loaded (Istio: the oldest). */
const struct dr_obj *rs_find_dr(const struct mesh_config *c, const char *fqdn, const char *svc_ns)
{
	const struct dr_obj *best = NULL;
	int best_score = -1;

	for (int i = 0; i < c->ndrs; i++) {
		const struct dr_obj *dr = &c->drs[i];
		char *h;
		int score;

		if (!dr->host)
			continue;
		h = config_fqdn(dr->host, dr->ns);
		score = strcmp(h, fqdn) == 0 ? 2 : host_matches(h, fqdn) ? 1 : -1;
		free(h);
		if (score < 0)
			continue;
		score = score * 2 + (strcmp(dr->ns, svc_ns) == 0);
		if (score > best_score) {
			best = dr;
			best_score = score;
		}
	}
	return best;
}

/* Istio merges the DestinationRules of one host in one namespace: a subset is looked up in
 * dr, then in the others for exactly its host and namespace, in load order (first wins). */
const struct dr_subset *rs_find_subset(const struct mesh_config *c, const struct dr_obj *dr,
				       const char *name)
{
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < c->ndrs; i++) {
			const struct dr_obj *o = &c->drs[i];

			if ((pass == 0) != (o == dr))
				continue;
			if (o != dr && (strcmp(o->ns, dr->ns) || !o->host || !dr->host ||
					strcmp(o->host, dr->host)))
				continue;
			for (int k = 0; k < o->nsubsets; k++)
				if (o->subsets[k].name && !strcmp(o->subsets[k].name, name))
					return &o->subsets[k];
		}
	}
	return NULL;
}

static bool vs_for_mesh(const struct vs_obj *vs)
{
	if (vs->ngateways == 0)
		return true;
	for (int i = 0; i < vs->ngateways; i++)
		if (strcmp(vs->gateways[i], "mesh") == 0)
			return true;
	return false;
}

static const struct vs_obj *find_vs(const struct mesh_config *c, const char *fqdn)
{
	for (int i = 0; i < c->nvses; i++) {
		const struct vs_obj *vs = &c->vses[i];

		if (!vs_for_mesh(vs))
			continue;
		for (int h = 0; h < vs->nhosts; h++) {
			char *f = config_fqdn(vs->hosts[h], vs->ns);
			bool m = host_matches(f, fqdn);

			free(f);
			if (m)
				return vs;
		}
	}
	return NULL;
}

static uint32_t lb_of(const struct traffic_policy *p)
{
	if (p->lb_hash_source_ip)
		return BM_LB_HASH_SRC_IP;
	switch (p->lb_simple) {
	case LB_ROUND_ROBIN:
		return BM_LB_ROUND_ROBIN;
	case LB_RANDOM:
		return BM_LB_RANDOM;
	case LB_PASSTHROUGH:
		/* A service address has no original backend to pass through to: spread evenly. */
		return BM_LB_RANDOM;
	default:
		return BM_LB_LEAST_REQUEST;
	}
}

static uint32_t dr_lb(const struct dr_obj *dr, const struct dr_subset *sub)
{
	if (sub && sub->has_policy && (sub->policy.has_lb || sub->policy.lb_hash))
		return lb_of(&sub->policy);
	if (dr && dr->has_policy)
		return lb_of(&dr->policy);
	return BM_LB_LEAST_REQUEST;
}

void rs_policy_of(const struct dr_obj *dr, const struct dr_subset *sub, struct rs_policy *out)
{
	const struct traffic_policy *od = NULL, *cp = NULL;

	if (sub && sub->has_policy && sub->policy.has_outlier)
		od = &sub->policy;
	else if (dr && dr->has_policy && dr->policy.has_outlier)
		od = &dr->policy;
	if (sub && sub->has_policy && sub->policy.has_connection_pool)
		cp = &sub->policy;
	else if (dr && dr->has_policy && dr->policy.has_connection_pool)
		cp = &dr->policy;
	*out = (struct rs_policy){.consec_5xx = 5,
				  .interval_ms = 10000,
				  .base_ejection_ms = 30000,
				  .max_ejection_pct = 10,
				  .connect_timeout_ms = 10000};
	if (od) {
		out->outlier = true;
		if (od->consecutive_5xx >= 0)
			out->consec_5xx = od->consecutive_5xx;
		if (od->consecutive_gateway >= 0)
			out->consec_gw = od->consecutive_gateway;
		if (od->interval_ms > 0)
			out->interval_ms = od->interval_ms;
		if (od->base_ejection_ms > 0)
			out->base_ejection_ms = od->base_ejection_ms;
		if (od->max_ejection_percent >= 0)
			out->max_ejection_pct = od->max_ejection_percent;
		if (od->min_health_percent >= 0)
			out->min_health_pct = od->min_health_percent;
	}
	if (cp) {
		if (cp->max_connections > 0)
			out->max_conns = cp->max_connections > UINT32_MAX
					     ? UINT32_MAX
					     : (uint32_t)cp->max_connections;
		if (cp->connect_timeout_ms > 0)
			out->connect_timeout_ms = (uint32_t)cp->connect_timeout_ms;
	}
}

/* ---------- building the table ---------- */

static int add_backend(struct rs_table *t, const uint8_t addr[16], uint8_t fam, uint16_t port,
		       const struct workload_obj *w)
{
	uint8_t k[HKEY] = {0};
	int *i;

	memcpy(k, addr, 16);
	memcpy(k + 16, &port, 2);
	k[18] = fam;
	i = h_get(&t->ix->be_by_addr, k);
	if (i)
		return *i;
	h_put(&t->ix->be_by_addr, k, t->nbackends);
	t->backends = grow(t->backends, t->nbackends, sizeof(*t->backends));
	t->backends[t->nbackends] = (struct rs_backend){.family = fam, .port = port, .wl = w};
	memcpy(t->backends[t->nbackends].addr, addr, 16);
	return t->nbackends++;
}

static bool is_endpoint(const struct svc_obj *s, const struct workload_obj *w)
{
	if (w->kind == WL_DEPLOYMENT || w->naddresses == 0)
		return false;
	return s->has_selector && strcmp(w->ns, s->ns) == 0 && kv_match(&s->selector, &w->labels);
}

/* The port a workload serves a Service port on; 0 if it does not. */
static uint16_t target_port(const struct svc_port *p, const struct workload_obj *w)
{
	if (w->kind == WL_WORKLOADENTRY && p->name) {
		for (int i = 0; i < w->nports; i++)
			if (w->ports[i].name && strcmp(w->ports[i].name, p->name) == 0)
				return w->ports[i].port;
	}
	if (!p->target_port_name)
		return p->target_port ? p->target_port : p->port;
	for (int i = 0; i < w->nports; i++)
		if (w->ports[i].name && strcmp(w->ports[i].name, p->target_port_name) == 0)
			return w->ports[i].port;
	return 0;
}

/*
 * Whether an endpoint takes new connections, as kube-proxy decides: ready ones do; serving
 * and terminating ones only when no endpoint is ready (pass 1); the rest never. Its Service's
 * EndpointSlices say, when they list it; else the Pod's own Ready condition and
 * deletionTimestamp.
 */
static int endpoint_pass(const struct rs_index *ix, const struct svc_obj *s,
			 const struct workload_obj *w, const struct rs_addr *ra)
{
	uint8_t k[HKEY];
	int *bits;

	slice_key(k, s->ns, s->name, ra->addr, ra->family);
	bits = h_get((struct htab *)&ix->slice_state, k);
	if (bits) {
		if ((*bits & EP_READY) && !(*bits & EP_TERMINATING))
			return 0;
		return (*bits & EP_SERVING) && (*bits & EP_TERMINATING) ? 1 : -1;
	}
	if (w->terminating)
		return w->not_ready ? -1 : 1;
	return w->not_ready ? -1 : 0;
}

/* A selectorless Service's endpoints of one pass, from its EndpointSlices: the slice port of
 * the Service port's name (the only one, both unnamed), as kube-proxy reads them. */
static void add_slice_endpoints(struct rs_table *t, const struct mesh_config *c,
				const struct svc_obj *s, const struct svc_port *p, uint8_t fam,
				int pass)
{
	struct rs_subset *sub = &t->subsets[t->nsubsets];

	for (int i = 0; i < c->nothers; i++) {
		const struct other_obj *o = &c->others[i];
		int port = 0;

		if (!o->slice_service || !o->ns || strcmp(o->ns, s->ns) ||
		    strcmp(o->slice_service, s->name))
			continue;
		for (int k = 0; k < o->nslice_ports && !port; k++) {
			const char *a = o->slice_ports[k].name, *b = p->name;

			if ((!a || !*a) ? (!b || !*b) : (b && !strcmp(a, b)))
				port = o->slice_ports[k].port;
		}
		if (port <= 0 || port > 65535)
			continue;
		for (int e = 0; e < o->nslice_eps; e++) {
			const struct slice_ep *se = &o->slice_eps[e];
			int want = se->ready && !se->terminating ? 0
				   : se->serving && se->terminating ? 1
								    : -1;
			struct rs_addr ra = {0};

			if (want != pass || rs_parse_addr(se->addr, ra.addr, &ra.family) ||
			    ra.family != fam)
				continue;
			sub->backends = grow(sub->backends, sub->n, sizeof(int));
			sub->backends[sub->n++] = add_backend(t, ra.addr, ra.family, port, NULL);
		}
	}
}

/* The endpoints of one pass (endpoint_pass) into the subset being built. */
static void add_endpoints(struct rs_table *t, const struct mesh_config *c,
			  const struct svc_obj *s, const struct svc_port *p, uint8_t fam,
			  const struct kvlist *labels, int pass)
{
	struct rs_subset *sub = &t->subsets[t->nsubsets];
	uint8_t k[HKEY];
	int *head;

	h_strkey(k, s->ns, s->selector.v[0].key, s->selector.v[0].val);
	head = h_get(&t->ix->wl_by_label, k);
	for (int e = head ? *head : -1; e >= 0; e = t->ix->entry_next[e]) {
		int wi = t->ix->entry_wl[e];
		const struct workload_obj *w = &c->workloads[wi];
		uint16_t tp;

		if (!is_endpoint(s, w) || (labels && !kv_match(labels, &w->labels)))
			continue;
		tp = target_port(p, w);
		if (!tp)
			continue;
		for (int a = 0; a < w->naddresses && a < 2; a++) {
			const struct rs_addr *ra = &t->ix->wl_addr[wi][a];

			if (!ra->ok || ra->family != fam || endpoint_pass(t->ix, s, w, ra) != pass)
				continue;
			sub->backends = grow(sub->backends, sub->n, sizeof(int));
			sub->backends[sub->n++] = add_backend(t, ra->addr, ra->family, tp, w);
		}
	}
}

/* Endpoints of service s port p (family fam) whose labels also match `labels` (a subset). */
static int add_subset(struct rs_table *t, const struct mesh_config *c, const struct svc_obj *s,
		      const struct svc_port *p, uint8_t fam, const char *name,
		      const struct kvlist *labels, const struct dr_obj *dr,
		      const struct dr_subset *ds)
{
	struct rs_subset *sub;

	t->subsets = grow(t->subsets, t->nsubsets, sizeof(*t->subsets));
	sub = &t->subsets[t->nsubsets];
	*sub = (struct rs_subset){
	    .name = strdup(name), .lb = dr_lb(dr, ds), .dr = dr, .ds = ds, .svc = s, .port = p};
	rs_policy_of(dr, ds, &sub->policy);
	if (!s->has_selector || s->selector.n == 0) {
		/* no selector: its endpoints are what its EndpointSlices say (the API server's
		 * default/kubernetes, endpoints managed by hand); a subset's labels select none */
		for (int pass = 0; !labels && pass < 2 && !t->subsets[t->nsubsets].n; pass++)
			add_slice_endpoints(t, c, s, p, fam, pass);
		return t->nsubsets++;
	}
	/* candidates: the workloads carrying the selector's first label, in this namespace */
	for (int pass = 0; pass < 2 && !t->subsets[t->nsubsets].n; pass++)
		add_endpoints(t, c, s, p, fam, labels, pass);
	return t->nsubsets++;
}

/* Istio's protocol of a service port (kube.ConvertProtocol): appProtocol when set, else the
 * name up to its first '-'. */
enum rs_proto rs_port_proto(const struct svc_port *p)
{
	const char *n = p->app_protocol ? p->app_protocol : p->name;
	size_t len;

	if (!n || (p->protocol && strcmp(p->protocol, "TCP")))
		return RS_TCP;
	if (!strcmp(n, "kubernetes.io/h2c"))
		return RS_HTTP2;
	if (!strcmp(n, "kubernetes.io/ws"))
		return RS_HTTP;
	len = p->app_protocol ? strlen(n) : strcspn(n, "-");
	if (len == 4 && !strncasecmp(n, "http", 4))
		return RS_HTTP;
	if (len == 5 && !strncasecmp(n, "http2", 5))
		return RS_HTTP2;
	if (len == 4 && !strncasecmp(n, "grpc", 4))
		return RS_GRPC;
	if ((len == 3 && !strncasecmp(n, "tls", 3)) || (len == 5 && !strncasecmp(n, "https", 5)))
		return RS_TLS;
	return RS_TCP;
}

/* What of an http route needs a request to act (the kernel sees connections), or NULL. */
static const char *route_l7_need(const struct vs_route *r)
{
	const struct http_route_spec *h = r->http;

	if (!h)
		return NULL;
	/* port, sourceLabels, sourceNamespace and gateways are known at connect(): the kernel
	 * decides a match made only of them (kroutes_of) */
	for (int i = 0; i < h->nmatches; i++)
		if (h->matches[i].l7)
			return "match";
	if (h->has_retries)
		return "retries";
	if (h->timeout_ms >= 0)
		return "timeout";
	if (h->has_fault)
		return "fault";
	if (h->nmirrors)
		return "mirror";
	if (h->has_rewrite)
		return "rewrite";
	if (h->has_redirect)
		return "redirect";
	if (r->has_headers_op)
		return "headers";
	if (h->has_cors)
		return "corsPolicy";
	if (h->has_direct)
		return "directResponse";
	if (h->delegate_name)
		return "delegate";
	return NULL;
}

static const char *policy_l7_need(const struct traffic_policy *p)
{
	if (p->has_http_pool)
		return "connectionPool.http";
	if (p->lb_hash_other)
		return "consistentHash";
	return NULL;
}

/*
 * Why a service port takes the agent's HTTP path, into rs->l7_reason ("" for the kernel
 * path): an HTTP port (a) whose VirtualService, DestinationRules or AuthorizationPolicies
 * ask for what only a request can give, or (b) that carries Istio ambient's
 * istio.io/use-waypoint label on the Service, its Namespace or a destination workload.
 */
static void l7_reason_of(const struct rs_table *t, const struct mesh_config *c,
			 struct rs_service *rs)
{
	const struct rs_subset *all = &t->subsets[rs->all_subset];
	const struct kvlist *nl = config_ns_labels(c, rs->svc->ns);
	char *out = rs->l7_reason, path[64];
	size_t len = sizeof(rs->l7_reason);
	const char *need;

	out[0] = 0;
	if (rs->http == RS_TCP || rs->proto != IPPROTO_TCP)
		return;
	if (rs->http == RS_TLS) {
		/* tls routes pick by the ClientHello's SNI: the agent reads it, then relays */
		for (int i = 0; rs->vs && i < rs->vs->nroutes; i++)
			if (rs->vs->routes[i].kind == ROUTE_TLS) {
				snprintf(out, len, "tls routes in %s",
					 config_route_path(path, sizeof(path), rs->vs, i));
				return;
			}
		return;
	}
	if (kv_get(&rs->svc->labels, "istio.io/use-waypoint")) {
		snprintf(out, len, "istio.io/use-waypoint on the Service");
		return;
	}
	if (nl && kv_get(nl, "istio.io/use-waypoint")) {
		snprintf(out, len, "istio.io/use-waypoint on Namespace %s", rs->svc->ns);
		return;
	}
	if (rs->vs && rs->vs->per_request) {
		snprintf(out, len, "bpfmesh.io/per-request on VirtualService %s/%s", rs->vs->ns,
			 rs->vs->name);
		return;
	}
	for (int i = 0; i < all->n; i++) {
		const struct workload_obj *w = t->backends[all->backends[i]].wl;

		if (w && kv_get(&w->labels, "istio.io/use-waypoint")) {
			snprintf(out, len, "istio.io/use-waypoint on %s/%s", w->ns, w->name);
			return;
		}
	}
	for (int i = 0; rs->vs && i < rs->vs->nroutes; i++) {
		if (rs->vs->routes[i].kind != ROUTE_HTTP ||
		    !(need = route_l7_need(&rs->vs->routes[i])))
			continue;
		snprintf(out, len, "%s in %s", need,
			 config_route_path(path, sizeof(path), rs->vs, i));
		return;
	}
	for (int k = 0; k <= rs->nkroutes; k++) {
		const struct rs_kroute *kr = k < rs->nkroutes ? &rs->kroutes[k] : NULL;

		for (int i = 0; i <= (kr ? kr->ndests - 1 : 0); i++) {
			const struct rs_subset *s =
			    &t->subsets[kr ? kr->dests[i].subset : rs->all_subset];

			if ((s->ds && s->ds->has_policy &&
			     (need = policy_l7_need(&s->ds->policy))) ||
			    (s->dr && s->dr->has_policy &&
			     (need = policy_l7_need(&s->dr->policy)))) {
				snprintf(out, len, "%s of DestinationRule", need);
				return;
			}
		}
	}
	for (int i = 0; i < all->n; i++) {
		const struct workload_obj *w = t->backends[all->backends[i]].wl;
		const struct ap_obj *ap = w ? sec_http_policy(c, NULL, w) : NULL;
		const struct ef_obj *ef = w ? rl_filter_for(c, NULL, w, EF_INBOUND) : NULL;

		if (ap) {
			snprintf(out, len, "AuthorizationPolicy %s/%s", ap->ns, ap->name);
			return;
		}
		if (ef) {
			snprintf(out, len, "rate limit of EnvoyFilter %s/%s", ef->ns, ef->name);
			return;
		}
		if (w && tel_traced(c, NULL, w, out, len))
			return;
	}
	/* a client's own (SIDECAR_OUTBOUND) limits: every HTTP port, as a sidecar's outbound
	 * listeners all carry the filter */
	for (int i = 0; c->nefs && i < c->nworkloads; i++) {
		const struct ef_obj *ef = rl_filter_for(c, NULL, &c->workloads[i], EF_OUTBOUND);

		if (ef) {
			snprintf(out, len, "outbound rate limit of EnvoyFilter %s/%s", ef->ns,
				 ef->name);
			return;
		}
	}
}

static bool port_is_tcp_only(const struct svc_port *p)
{
	const char *n = p->app_protocol ? p->app_protocol : p->name;

	if (!n)
		return false; /* unnamed: Istio sniffs; http routes apply */
	return !(strncmp(n, "http", 4) == 0 || strncmp(n, "grpc", 4) == 0 ||
		 strncmp(n, "kubernetes.io/h2c", 17) == 0);
}

/* Is the service address in one of these CIDRs (an entry without a prefix is one address)? */
static bool subnets_hold(char *const *subnets, int n, const struct rs_service *rs)
{
	for (int i = 0; i < n; i++) {
		const char *slash = strchr(subnets[i], '/');
		size_t alen = slash ? (size_t)(slash - subnets[i]) : strlen(subnets[i]);
		uint8_t net[16], fam;
		char a[INET6_ADDRSTRLEN];
		int bits, full;

		if (alen >= sizeof(a))
			continue;
		memcpy(a, subnets[i], alen);
		a[alen] = 0;
		if (rs_parse_addr(a, net, &fam) || fam != rs->family)
			continue;
		full = fam == BM_FAM_V4 ? 32 : 128;
		bits = slash ? atoi(slash + 1) : full;
		if (bits < 0 || bits > full)
			continue;
		if (memcmp(net, rs->addr, bits / 8))
			continue;
		if (bits % 8 && ((net[bits / 8] ^ rs->addr[bits / 8]) & (0xff00 >> (bits % 8))))
			continue;
		return true;
	}
	return false;
}

/* A source condition of one match: the client pod must carry labels and be in ns (either may
 * be absent, not both). */
struct src_cond {
	const struct kvlist *labels;
	const char *ns;
};

struct cond_list {
	struct src_cond *v;
	int n;
};

static void cond_add(struct cond_list *l, const struct kvlist *labels, const char *ns)
{
	l->v = grow(l->v, l->n, sizeof(*l->v));
	l->v[l->n++] = (struct src_cond){.labels = labels && labels->n ? labels : NULL, .ns = ns};
}

/*
 * What of route r can hold on port rs, at connect(): true when some match does (or r has
 * none), with *any set when one holds for every mesh client and the source conditions of the
 * others added to conds. The facts of the port are decided here: `port` (the service port the
 * client dialed), `destinationSubnets` (the service address it dialed) and a match's own
 * `gateways` (one that does not name mesh never holds for mesh traffic). An http match with a
 * request field (uri, headers...) cannot hold in the kernel: BM0011 says so where it matters.
 */
static bool route_holds(const struct vs_route *r, const struct rs_service *rs, bool *any,
			struct cond_list *conds)
{
	bool holds = false;

	*any = false;
	if (!r->has_match) {
		*any = true;
		return true;
	}
	for (int i = 0; r->http && i < r->http->nmatches; i++) {
		const struct http_match *m = &r->http->matches[i];
		bool mesh = m->ngateways == 0;

		for (int g = 0; g < m->ngateways; g++)
			mesh |= !strcmp(m->gateways[g], "mesh");
		if (m->l7 || !mesh || (m->port && m->port != rs->port))
			continue;
		holds = true;
		if (!m->source_labels.n && !m->source_namespace)
			*any = true;
		else
			cond_add(conds, &m->source_labels, m->source_namespace);
	}
	for (int i = 0; r->kind == ROUTE_TCP && i < r->nl4; i++) {
		const struct l4_match *m = &r->l4[i];

		if ((m->port && m->port != rs->port) ||
		    (m->ndestination_subnets &&
		     !subnets_hold(m->destination_subnets, m->ndestination_subnets, rs)))
			continue;
		holds = true;
		if (!m->source_labels.n && !m->source_namespace)
			*any = true;
		else
			cond_add(conds, &m->source_labels, m->source_namespace);
	}
	return holds;
}

static bool cond_holds(const struct src_cond *sc, const struct workload_obj *w)
{
	return (!sc->ns || !strcmp(sc->ns, w->ns)) &&
	       (!sc->labels || kv_match(sc->labels, &w->labels));
}

/*
 * The kernel's routes for port rs (rs->kroutes, without destinations yet): the routes of the
 * port's kind (http, or tcp for ports plainly TCP; the other kind when the VirtualService has
 * none that can hold) that can hold here, in order, ending with the first that holds for every
 * mesh client. Then, per mesh pod of the config, the bits of the routes whose source
 * conditions it meets (rs->podbits).
 */
static void kroutes_of(const struct mesh_config *c, struct rs_service *rs, struct diags *d)
{
	const struct vs_obj *vs = rs->vs;
	const struct svc_port *p = &rs->svc->ports[rs->port_index];
	enum route_kind want = port_is_tcp_only(p) ? ROUTE_TCP : ROUTE_HTTP;
	struct cond_list conds[BM_MAX_SVC_ROUTES] = {0};
	bool cut = false, need_pods = false;

	for (int pass = 0; pass < 2 && !rs->nkroutes; pass++) {
		for (int i = 0; i < vs->nroutes; i++) {
			const struct vs_route *r = &vs->routes[i];
			struct cond_list cl = {0};
			struct rs_kroute *kr;
			bool any;

			if (r->kind != want || !route_holds(r, rs, &any, &cl)) {
				free(cl.v);
				continue;
			}
			if (rs->nkroutes == BM_MAX_SVC_ROUTES) {
				cut = true;
				free(cl.v);
				break;
			}
			rs->kroutes = grow(rs->kroutes, rs->nkroutes, sizeof(*rs->kroutes));
			kr = &rs->kroutes[rs->nkroutes];
			*kr = (struct rs_kroute){.route = i, .any_src = any};
			conds[rs->nkroutes++] = cl;
			need_pods |= !any;
			if (any)
				break; /* holds for everyone: what follows is never reached */
		}
		/* a VS with only tcp routes on an unnamed port, or only http on a tcp one */
		want = want == ROUTE_HTTP ? ROUTE_TCP : ROUTE_HTTP;
	}
	if (cut) {
		char obj[512], path[64];

		objname(obj, sizeof(obj), "VirtualService", vs->ns, vs->name);
		diags_add(
		    d, DIAG_WARN, &vs->pos, obj,
		    config_route_path(path, sizeof(path), vs, rs->kroutes[0].route),
		    "port %d: more than %d routes before one that holds for every client; the "
		    "kernel tries the first %d and sends clients none of them holds for to "
		    "every endpoint",
		    rs->port, BM_MAX_SVC_ROUTES, BM_MAX_SVC_ROUTES);
	}
	for (int w = 0; need_pods && w < c->nworkloads; w++) {
		const struct workload_obj *wl = &c->workloads[w];
		uint32_t bits = 0;

		if (wl->kind != WL_POD || !wl->pod_id || !config_in_mesh(c, wl))
			continue;
		for (int k = 0; k < rs->nkroutes; k++)
			for (int j = 0; !rs->kroutes[k].any_src && j < conds[k].n; j++)
				if (cond_holds(&conds[k].v[j], wl)) {
					bits |= 1U << k;
					break;
				}
		if (!bits)
			continue;
		rs->podbits = grow(rs->podbits, rs->npodbits, sizeof(*rs->podbits));
		rs->podbits[rs->npodbits++] =
		    (struct rs_podbits){.pod_id = wl->pod_id, .bits = bits};
	}
	for (int k = 0; k < BM_MAX_SVC_ROUTES; k++)
		free(conds[k].v);
}

uint32_t rs_pod_bits(const struct rs_service *rs, uint32_t pod_id)
{
	for (int i = 0; pod_id && i < rs->npodbits; i++)
		if (rs->podbits[i].pod_id == pod_id)
			return rs->podbits[i].bits;
	return 0;
}

static bool in_kroutes(const struct rs_service *rs, int route)
{
	for (int k = 0; k < rs->nkroutes; k++)
		if (rs->kroutes[k].route == route)
			return true;
	return false;
}

static size_t kv_text(const struct kvlist *l, char *buf, size_t len)
{
	size_t used = snprintf(buf, len, "{");

	for (int i = 0; i < l->n && used < len; i++)
		used += snprintf(buf + used, len - used, "%s%s: %s", i ? ", " : "", l->v[i].key,
				 l->v[i].val);
	if (used < len)
		used += snprintf(buf + used, len - used, "}");
	return used;
}

void rs_kroute_text(const struct rs_service *rs, int k, char *buf, size_t len)
{
	const struct rs_kroute *kr = &rs->kroutes[k];
	const struct vs_route *r = &rs->vs->routes[kr->route];
	struct cond_list cl = {0};
	char path[64];
	size_t used;
	bool any;

	used = snprintf(buf, len, "%s (", config_route_path(path, sizeof(path), rs->vs, kr->route));
	if (kr->any_src) {
		snprintf(buf + used, used < len ? len - used : 0, "every mesh client)");
		return;
	}
	route_holds(r, rs, &any, &cl);
	for (int i = 0; i < cl.n && used < len; i++) {
		if (i)
			used += snprintf(buf + used, len - used, " or ");
		if (cl.v[i].labels && used < len) {
			used += snprintf(buf + used, len - used, "sourceLabels ");
			if (used < len)
				used += kv_text(cl.v[i].labels, buf + used, len - used);
		}
		if (cl.v[i].ns && used < len)
			used += snprintf(buf + used, len - used, "%ssourceNamespace %s",
					 cl.v[i].labels ? " and " : "", cl.v[i].ns);
	}
	if (used < len)
		snprintf(buf + used, len - used, ")");
	free(cl.v);
}

void rs_route_text(const struct rs_service *rs, char *buf, size_t len)
{
	const struct vs_obj *vs = rs->vs;
	size_t used;
	char p[64];
	int skipped = 0;

	buf[0] = 0;
	if (!vs)
		return;
	if (rs->nl7routes) {
		/* the HTTP path: every http route, in order, per request */
		bool delegated = false;

		for (int i = 0; i < rs->nl7routes; i++)
			delegated |= rs->l7routes[i].parent != NULL;
		if (rs->http == RS_TLS)
			snprintf(buf, len, "%s/%s: per connection by SNI, first match of %d tls "
				 "route(s)", vs->ns, vs->name, rs->nl7routes);
		else if (delegated)
			snprintf(buf, len, "%s/%s: per request, first match of %d http routes "
				 "(delegates included)", vs->ns, vs->name, rs->nl7routes);
		else if (rs->nl7routes == 1)
			snprintf(buf, len, "%s/%s: per request, spec.http[0]", vs->ns, vs->name);
		else
			snprintf(buf, len, "%s/%s: per request, first match of spec.http[0..%d]",
				 vs->ns, vs->name, rs->nl7routes - 1);
		return;
	}
	if (rs->nkroutes == 1 && rs->kroutes[0].any_src) {
		used = snprintf(buf, len, "%s/%s %s; ", vs->ns, vs->name,
				config_route_path(p, sizeof(p), vs, rs->kroutes[0].route));
	} else if (rs->nkroutes) {
		used = snprintf(buf, len, "%s/%s: first match of ", vs->ns, vs->name);
		for (int k = 0; k < rs->nkroutes && used < len; k++)
			used += snprintf(buf + used, len - used, "%s%s", k ? "," : "",
					 config_route_path(p, sizeof(p), vs, rs->kroutes[k].route));
		if (used < len)
			used += snprintf(buf + used, len - used, "; ");
	} else {
		used = snprintf(buf, len, "%s/%s: no route; ", vs->ns, vs->name);
	}
	for (int i = 0; i < vs->nroutes && used < len; i++) {
		if (in_kroutes(rs, i) ||
		    (!vs->routes[i].has_match && vs->routes[i].kind != ROUTE_TLS))
			continue;
		used += snprintf(buf + used, len - used, "%s%s", skipped++ ? "," : "not in force: ",
				 config_route_path(p, sizeof(p), vs, i));
	}
	if (!skipped && used >= 2 && used < len)
		buf[used - 2] = 0; /* nothing skipped: drop the "; " */
}

static const struct svc_port *dest_port(const struct svc_obj *ds, const struct route_dest *d,
					const struct svc_port *orig)
{
	int want = d->port ? d->port : orig ? orig->port : 0; /* no orig: a gateway's route */

	for (int i = 0; i < ds->nports; i++)
		if (ds->ports[i].port == want)
			return &ds->ports[i];
	return ds->nports == 1 && !d->port ? &ds->ports[0] : NULL;
}

/* A destination that names what does not exist: a subset with no backends, so that a connect
 * routed there is refused and counted (no_backend), as Istio answers such a route with 503. */
static int empty_subset(struct rs_table *t, const char *name)
{
	t->subsets = grow(t->subsets, t->nsubsets, sizeof(*t->subsets));
	t->subsets[t->nsubsets] = (struct rs_subset){.name = strdup(name), .lb = BM_LB_RANDOM};
	rs_policy_of(NULL, NULL, &t->subsets[t->nsubsets].policy);
	return t->nsubsets++;
}

static void add_dest(struct rs_kroute *kr, int subset, uint32_t w)
{
	kr->dests[kr->ndests].subset = subset;
	kr->dests[kr->ndests].weight = w;
	kr->ndests++;
}

/*
 * One destination (host, subset, port) of a route of vs, for port rs: the index of its
 * subset in t. A destination that names what does not exist gets a subset with no backends
 * (its share is refused, as Istio answers 503) and a warning, once per destination.
 */
static int resolve_dest(struct rs_table *t, const struct mesh_config *c, struct rs_service *rs,
			const struct vs_obj *vs, const char *host, const char *subset, int port,
			const struct srcpos *pos, const void *who, struct diags *d)
{
	char *fq = config_fqdn(host, vs->ns);
	const struct svc_obj *ds = find_service(t->ix, c, fq);
	const struct dr_obj *dr = ds ? rs_find_dr(c, fq, ds->ns) : NULL;
	const struct dr_subset *sub = NULL;
	const struct svc_port *dp = NULL;
	const char *missing = NULL;
	struct route_dest want = {.port = port};
	int idx;

	if (!ds)
		missing = "host";
	else if (subset && !(dr && (sub = rs_find_subset(c, dr, subset))))
		missing = "subset";
	else if (!(dp = dest_port(ds, &want, rs ? &rs->svc->ports[rs->port_index] : NULL)))
		missing = "port";
	if (missing) {
		char field[32], what[600], obj[512];
		uint8_t key[HKEY] = {0};

		objname(obj, sizeof(obj), "VirtualService", vs->ns, vs->name);
		memcpy(key, &who, sizeof(who));
		snprintf(field, sizeof(field), "destination.%s", missing);
		if (!ds)
			snprintf(what, sizeof(what), "no Service named %s", fq);
		else if (!strcmp(missing, "subset"))
			snprintf(what, sizeof(what), "no subset %s of %s", subset, fq);
		else if (port || rs)
			snprintf(what, sizeof(what), "Service %s/%s has no port %d", ds->ns,
				 ds->name, port ? port : rs->port);
		else
			snprintf(what, sizeof(what),
				 "Service %s/%s has %d ports and the destination names none",
				 ds->ns, ds->name, ds->nports);
		if (!h_get(&t->ix->warned, key))
			diags_add(d, DIAG_WARN, pos, obj, field,
				  "%s; connections routed here are refused (Istio answers 503)",
				  what);
		h_put(&t->ix->warned, key, 1);
		free(fq);
		return empty_subset(t, subset ? subset : "(none)");
	}
	free(fq);
	idx = add_subset(t, c, ds, dp, rs ? rs->family : BM_FAM_V4, subset ? subset : "(all)",
			 sub ? &sub->labels : NULL, dr, sub);
	return idx;
}

/*
 * The destinations of the route in force (the kernel path). One that names a host, port or
 * subset that does not exist is kept with no backends and reported (resolve_dest): like
 * Istio, the rest of the config applies (analyze reports it as IST0101).
 */
static int resolve_route(struct rs_table *t, const struct mesh_config *c, struct rs_service *rs,
			 struct rs_kroute *kr, struct diags *d)
{
	const struct vs_obj *vs = rs->vs;
	const struct vs_route *r = &vs->routes[kr->route];
	char obj[512];

	objname(obj, sizeof(obj), "VirtualService", vs->ns, vs->name);
	for (int i = 0; i < r->ndests; i++) {
		const struct route_dest *rd = &r->dests[i];
		uint32_t w = r->ndests == 1 ? 1 : (uint32_t)rd->weight;

		if (w == 0)
			continue; /* weight 0 never picked: not even stored */
		if (kr->ndests >= BM_MAX_ROUTE_DESTS) {
			diags_add(d, DIAG_WARN, &rd->pos, obj, "route",
				  "more than %d weighted destinations: the ones after the first %d "
				  "are not used",
				  BM_MAX_ROUTE_DESTS, BM_MAX_ROUTE_DESTS);
			break;
		}
		add_dest(
		    kr, resolve_dest(t, c, rs, vs, rd->host, rd->subset, rd->port, &rd->pos, rd, d),
		    w);
	}
	return 0;
}

/* The VirtualService a route delegates to (no hosts of its own), or NULL. */
static const struct vs_obj *find_delegate(const struct mesh_config *c, const struct vs_obj *root,
					  const struct http_route_spec *h)
{
	const char *ns = h->delegate_ns ? h->delegate_ns : root->ns;

	for (int i = 0; i < c->nvses; i++)
		if (!strcmp(c->vses[i].name, h->delegate_name) && !strcmp(c->vses[i].ns, ns) &&
		    c->vses[i].nhosts == 0)
			return &c->vses[i];
	return NULL;
}

/* Route ri of vs, appended to *v (a service port's, rs; or a gateway's, rs NULL). */
static void add_l7route(struct rs_table *t, const struct mesh_config *c, struct rs_service *rs,
			struct rs_l7route **v, int *n, const struct vs_obj *vs, int ri,
			const struct vs_route *parent, struct diags *d)
{
	const struct vs_route *r = &vs->routes[ri];
	struct rs_l7route *lr;

	*v = grow(*v, *n, sizeof(**v));
	lr = &(*v)[(*n)++];
	*lr = (struct rs_l7route){.vs = vs, .route = ri, .parent = parent};
	lr->dests = calloc(r->ndests ? r->ndests : 1, sizeof(*lr->dests));
	for (int i = 0; lr->dests && i < r->ndests; i++) {
		const struct route_dest *rd = &r->dests[i];

		lr->dests[lr->ndests++] = (struct rs_l7dest){
		    .subset =
			resolve_dest(t, c, rs, vs, rd->host, rd->subset, rd->port, &rd->pos, rd, d),
		    .weight = r->ndests == 1 && !rd->has_weight ? 1 : (uint32_t)rd->weight,
		    .rd = rd};
	}
	if (r->http && r->http->nmirrors)
		lr->mirrors = calloc(r->http->nmirrors, sizeof(int));
	for (int i = 0; lr->mirrors && i < r->http->nmirrors; i++) {
		const struct http_mirror *m = &r->http->mirrors[i];

		lr->mirrors[lr->nmirrors++] =
		    resolve_dest(t, c, rs, vs, m->host, m->subset, m->port, &r->pos, m, d);
	}
}

/*
 * For a port on the HTTP path: every http route of its VirtualService in order, delegated
 * routes in place of the route that delegates (Istio's delegation: the root route's matches
 * and the delegate's both apply), each destination and mirror resolved to a subset.
 */
static void http_routes(struct rs_table *t, const struct mesh_config *c, struct rs_service *rs,
			struct rs_l7route **v, int *n, const struct vs_obj *vs, struct diags *d)
{
	for (int i = 0; vs && i < vs->nroutes; i++) {
		const struct vs_route *r = &vs->routes[i];
		const struct vs_obj *del;

		if (r->kind != ROUTE_HTTP)
			continue;
		if (!r->http || !r->http->delegate_name) {
			add_l7route(t, c, rs, v, n, vs, i, NULL, d);
			continue;
		}
		del = find_delegate(c, vs, r->http);
		for (int k = 0; del && k < del->nroutes; k++)
			if (del->routes[k].kind == ROUTE_HTTP)
				add_l7route(t, c, rs, v, n, del, k, r, d);
	}
}

static void resolve_l7(struct rs_table *t, const struct mesh_config *c, struct rs_service *rs,
		       struct diags *d)
{
	const struct vs_obj *vs = rs->vs;

	if (rs->http != RS_TLS) {
		http_routes(t, c, rs, &rs->l7routes, &rs->nl7routes, vs, d);
		return;
	}
	for (int i = 0; vs && i < vs->nroutes; i++)
		if (vs->routes[i].kind == ROUTE_TLS) /* by SNI, in order */
			add_l7route(t, c, rs, &rs->l7routes, &rs->nl7routes, vs, i, NULL, d);
}

/* ---------------- gateways ---------------- */

bool rs_gw_ref(const char *ref, const char *vs_ns, const char *gw_ns, const char *gw_name)
{
	const char *slash = strchr(ref, '/');
	size_t nl = strcspn(ref, ".");

	if (!strcmp(ref, "mesh"))
		return false;
	if (slash)
		return (size_t)(slash - ref) == strlen(gw_ns) &&
		       !strncmp(ref, gw_ns, slash - ref) && !strcmp(slash + 1, gw_name);
	if (ref[nl]) { /* name.namespace.svc.cluster.local */
		const char *ns = ref + nl + 1;
		size_t l2 = strcspn(ns, ".");

		return nl == strlen(gw_name) && !strncmp(ref, gw_name, nl) && l2 == strlen(gw_ns) &&
		       !strncmp(ns, gw_ns, l2);
	}
	return !strcmp(vs_ns, gw_ns) && !strcmp(ref, gw_name);
}

/* a within b (both lower case): b "*" holds everything, "*.x.com" what ends in ".x.com"
 * (a wildcard too, when its own suffix is at least as long), a name only itself */
static bool host_subset(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (!strcmp(b, "*") || !strcmp(a, b))
		return true;
	if (b[0] != '*')
		return false;
	if (a[0] == '*' && la < lb)
		return false;
	return la >= lb && !strcmp(a + la - (lb - 1), b + 1);
}

char *rs_host_intersect(const char *a, const char *b)
{
	char *x = strdup(a), *y = strdup(b), *r = NULL;

	for (char *p = x; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (char *p = y; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (x && y)
		r = host_subset(x, y) ? strdup(x) : host_subset(y, x) ? strdup(y) : NULL;
	free(x);
	free(y);
	return r;
}

int rs_domain_score(const char *domain, const char *host)
{
	size_t ld = strlen(domain), lh = strlen(host);

	if (!strcmp(domain, host))
		return 1 << 20; /* exact */
	if (!strcmp(domain, "*"))
		return 1;
	if (domain[0] == '*' && lh > ld - 1 && !strcmp(host + lh - (ld - 1), domain + 1))
		return 2 + (int)ld; /* the longest suffix wins */
	return 0;
}

/* A VirtualService host as a gateway compares it: "*" and wildcards as written, a short
 * name qualified in the VirtualService's namespace (Istio's rule), lower case. */
static char *gw_vs_host(const char *h, const char *ns)
{
	char *r;

	if (h[0] == '*' || strchr(h, '.')) {
		r = strdup(h);
		for (char *p = r; p && *p; p++)
			*p = (char)tolower((unsigned char)*p);
		return r;
	}
	return config_fqdn(h, ns);
}

/* Server host "ns/host": which VirtualService namespaces it admits ("*" all, "." the
 * Gateway's own). */
static bool server_ns_admits(const char *sh, const char *slash, const char *gw_ns,
			     const char *vs_ns)
{
	size_t n = slash - sh;

	if (n == 1 && sh[0] == '*')
		return true;
	if (n == 1 && sh[0] == '.')
		return !strcmp(gw_ns, vs_ns);
	return n == strlen(vs_ns) && !strncmp(sh, vs_ns, n);
}

static void gwhost_add(struct rs_table *t, const struct mesh_config *c, struct rs_gwserver *gs,
		       char *domain, const struct vs_obj *vs, struct diags *d)
{
	struct rs_gwhost *h = NULL;

	for (int i = 0; i < gs->nhosts && !h; i++)
		if (!strcmp(gs->hosts[i].domain, domain))
			h = &gs->hosts[i];
	if (!h) {
		gs->hosts = grow(gs->hosts, gs->nhosts, sizeof(*gs->hosts));
		h = &gs->hosts[gs->nhosts++];
		*h = (struct rs_gwhost){.domain = domain, .vs = vs};
	} else {
		free(domain);
		if (h->last == vs)
			return; /* this VirtualService's routes are there already */
	}
	h->last = vs;
	if (gs->proto == RS_TLS || gs->proto == RS_TCP) {
		/* PASSTHROUGH: the tls routes, by SNI; TCP: the tcp routes, by port and source */
		enum route_kind k = gs->proto == RS_TLS ? ROUTE_TLS : ROUTE_TCP;

		for (int i = 0; i < vs->nroutes; i++)
			if (vs->routes[i].kind == k)
				add_l7route(t, c, NULL, &h->routes, &h->nroutes, vs, i, NULL, d);
		return;
	}
	http_routes(t, c, NULL, &h->routes, &h->nroutes, vs, d);
	if (gwapi_derived(h->vs->name) && gwapi_derived(vs->name)) {
		/* the Gateway API's precedence across all its routes of the host (each route is
		 * one HTTPRouteMatch); ties keep config order (a stable insertion sort) */
		for (int i = 1; i < h->nroutes; i++) {
			struct rs_l7route x = h->routes[i];
			long rx = gwapi_rank(&x.vs->routes[x.route]);
			int j = i;

			while (j > 0 &&
			       gwapi_rank(&h->routes[j - 1].vs->routes[h->routes[j - 1].route]) <
				   rx) {
				h->routes[j] = h->routes[j - 1];
				j--;
			}
			h->routes[j] = x;
		}
	}
}

enum rs_proto rs_gw_proto(const char *protocol, const char *tls_mode, bool credential, bool *served,
			  bool *tls)
{
	const char *p = protocol ? protocol : "";
	const char *mode = tls_mode ? tls_mode : "SIMPLE";

	*served = *tls = false;
	if (!strcasecmp(p, "HTTPS") && credential &&
	    (!strcmp(mode, "SIMPLE") || !strcmp(mode, "MUTUAL"))) {
		*served = *tls = true; /* terminated here, then HTTP */
		return RS_HTTP;
	}
	if (!strcasecmp(p, "HTTP") || !strcasecmp(p, "HTTP2") || !strcasecmp(p, "GRPC")) {
		*served = true;
		return !strcasecmp(p, "HTTP")	 ? RS_HTTP
		       : !strcasecmp(p, "HTTP2") ? RS_HTTP2
						 : RS_GRPC;
	}
	if ((!strcasecmp(p, "HTTPS") || !strcasecmp(p, "TLS")) && tls_mode &&
	    !strcmp(tls_mode, "PASSTHROUGH")) {
		*served = true; /* routed by SNI to a backend that terminates TLS itself */
		return RS_TLS;
	}
	if (!strcasecmp(p, "HTTPS") || !strcasecmp(p, "TLS"))
		return RS_TLS;
	/* opaque TCP (Istio's TCP, MONGO, MYSQL, REDIS): the tcp routes, relayed */
	*served = !strcasecmp(p, "TCP") || !strcasecmp(p, "MONGO") || !strcasecmp(p, "MYSQL") ||
		  !strcasecmp(p, "REDIS");
	return RS_TCP;
}

bool rs_port_reserved(unsigned port)
{
	static const unsigned r[] = {15000, 15001, 15004, 15006, 15008, 15009, 15010,
				     15012, 15014, 15017, 15020, 15021, 15053, 15090};

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		if (port == r[i])
			return true;
	return port == 0 || port > 65535;
}

/* Every server of every Gateway with the http routes of the VirtualServices bound to it. */
static void resolve_gateways(struct rs_table *t, const struct mesh_config *c, struct diags *d)
{
	for (int g = 0; g < c->ngws; g++) {
		const struct gw_obj *gw = &c->gws[g];

		for (int si = 0; si < gw->nservers; si++) {
			const struct gw_server *sv = &gw->servers[si];
			struct rs_gwserver *gs;

			t->gwservers = grow(t->gwservers, t->ngwservers, sizeof(*t->gwservers));
			gs = &t->gwservers[t->ngwservers++];
			*gs = (struct rs_gwserver){.gw = gw, .server = si};
			gs->proto = rs_gw_proto(sv->protocol, sv->tls_mode,
						sv->credential_name != NULL, &gs->served, &gs->tls);
			if (rs_port_reserved(sv->port))
				gs->served = false; /* (validate says so) */
			for (int v = 0; gs->served && v < c->nvses; v++) {
				const struct vs_obj *vs = &c->vses[v];
				bool bound = false;

				for (int k = 0; k < vs->ngateways && !bound; k++)
					bound =
					    rs_gw_ref(vs->gateways[k], vs->ns, gw->ns, gw->name);
				for (int h = 0; bound && h < vs->nhosts; h++) {
					char *vh = gw_vs_host(vs->hosts[h], vs->ns);

					for (int k = 0; vh && k < sv->nhosts; k++) {
						const char *sh = sv->hosts[k],
							   *slash = strchr(sh, '/');
						char *dom;

						if (slash &&
						    !server_ns_admits(sh, slash, gw->ns, vs->ns))
							continue;
						dom = rs_host_intersect(vh, slash ? slash + 1 : sh);
						if (dom)
							gwhost_add(t, c, gs, dom, vs, d);
					}
					free(vh);
				}
			}
		}
	}
}

static int resolve_port(struct rs_table *t, const struct mesh_config *c, const struct svc_obj *s,
			int pi, const uint8_t addr[16], uint8_t fam, struct diags *d)
{
	const struct svc_port *p = &s->ports[pi];
	struct rs_service *rs;
	const struct dr_obj *dr;
	char *fq;

	if (p->protocol && strcmp(p->protocol, "TCP") && strcmp(p->protocol, "UDP"))
		return 0; /* SCTP: not handled by the socket hooks */
	t->services = grow(t->services, t->nservices, sizeof(*t->services));
	rs = &t->services[t->nservices++];
	fq = config_fqdn(s->name, s->ns);
	*rs = (struct rs_service){.svc = s,
				  .fqdn = fq,
				  .port_index = pi,
				  .family = fam,
				  .port = p->port,
				  .svc_id = rs_hash32(fq) & 0x7fffffff};
	rs->proto = p->protocol && strcmp(p->protocol, "UDP") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
	memcpy(rs->addr, addr, 16);
	dr = rs_find_dr(c, fq, s->ns);
	/* add_subset may move t->services? No: it grows t->subsets only. */
	rs->all_subset = add_subset(t, c, s, p, fam, "(all)", NULL, dr, NULL);
	rs->http = rs_port_proto(p);
	rs->vs = find_vs(c, fq);
	if (rs->vs)
		kroutes_of(c, rs, d);
	for (int k = 0; k < rs->nkroutes; k++)
		resolve_route(t, c, rs, &rs->kroutes[k], d);
	/* t->services may not move: l7_reason_of reads rs through t */
	l7_reason_of(t, c, rs);
	if (rs->l7_reason[0] && fam == BM_FAM_V4)
		resolve_l7(t, c, rs, d);
	return 0;
}

/* The service's address of one family: its own clusterIP(s), or the allocated one. */
static int service_addr(const struct rs_index *ix, const struct mesh_config *c,
			const struct svc_obj *s, uint8_t family, uint8_t addr[16])
{
	uint8_t fam;

	if (!serviceable(s))
		return -1;
	for (int k = 0; k < s->ncluster_ips; k++)
		if (rs_parse_addr(s->cluster_ips[k], addr, &fam) == 0 && fam == family)
			return 0;
	if (s->ncluster_ips == 0 && family == BM_FAM_V4 && ix->vip4[s - c->services]) {
		uint32_t be = htonl(ix->vip4[s - c->services]);

		memset(addr, 0, 16);
		memcpy(addr, &be, 4);
		return 0;
	}
	return -1;
}

/* Why a port with http routes stays in the kernel, for the notes below. */
static const char *kernel_why(const struct rs_service *rs, char *buf, size_t len)
{
	const struct svc_port *p = &rs->svc->ports[rs->port_index];

	if (rs->http == RS_TCP && !p->name && !p->app_protocol)
		snprintf(buf, len,
			 "its protocol is not declared (Istio sniffs HTTP there; bpfmesh takes "
			 "the HTTP path only for ports named http, http2, grpc or with that "
			 "appProtocol)");
	else if (rs->http == RS_TCP)
		snprintf(buf, len, "port %s is not HTTP by Istio's rules (name or appProtocol)",
			 p->app_protocol ? p->app_protocol : p->name);
	else if (rs->l7_reason[0])
		snprintf(buf, len, "the HTTP path takes IPv4 service addresses only");
	else
		snprintf(buf, len, "no route field, DestinationRule or AuthorizationPolicy in force needs the HTTP path");
	return buf;
}

int rs_path_notes(const struct rs_table *t, struct diags *d)
{
	char obj[512], field[96], path[64], addr[64], why[200];
	int n = 0;

	for (int i = 0; i < t->nservices; i++) {
		const struct rs_service *rs = &t->services[i];
		const struct vs_obj *vs = rs->vs;
		bool l7 = rs->nl7routes > 0;

		if (!vs || rs->proto != IPPROTO_TCP)
			continue;
		rs_format_addr(rs->addr, rs->family, addr, sizeof(addr));
		objname(obj, sizeof(obj), "VirtualService", vs->ns, vs->name);
		for (int r = 0; r < vs->nroutes; r++) {
			const struct vs_route *vr = &vs->routes[r];
			const char *need = route_l7_need(vr);
			int weighted = 0;

			if (vr->kind == ROUTE_TLS && (rs->http != RS_TLS || !l7)) {
				config_route_path(path, sizeof(path), vs, r);
				if (rs->http != RS_TLS)
					diags_addc(d, DIAG_WARN, "BM0011", &vr->pos, obj, path,
						   "not enforced for %s port %d of Service %s/%s: tls "
						   "routes pick by SNI on ports named tls or https (or "
						   "that appProtocol), and this one is not",
						   addr, rs->port, rs->svc->ns, rs->svc->name);
				else
					diags_addc(d, DIAG_WARN, "BM0011", &vr->pos, obj, path,
						   "not enforced for %s port %d of Service %s/%s: %s",
						   addr, rs->port, rs->svc->ns, rs->svc->name,
						   kernel_why(rs, why, sizeof(why)));
				n++;
				continue;
			}
			if (vr->kind != ROUTE_HTTP)
				continue;
			for (int k = 0; k < vr->ndests; k++)
				weighted += vr->dests[k].weight > 0;
			config_route_path(path, sizeof(path), vs, r);
			if (need && !l7) {
				bool in = in_kroutes(rs, r);

				snprintf(field, sizeof(field), "%s.%s", path, need);
				diags_addc(
				    d, DIAG_WARN, "BM0011", &vr->pos, obj, field,
				    "not enforced for %s port %d of Service %s/%s: %s, so the "
				    "kernel routes each connection%s",
				    addr, rs->port, rs->svc->ns, rs->svc->name,
				    kernel_why(rs, why, sizeof(why)),
				    in && vr->has_match
					? " by this route's matches on port and source only"
				    : in	    ? " by this route's destinations"
				    : vr->has_match ? " and skips this route"
						    : "");
				n++;
			}
			if (weighted < 2 || (!l7 && !in_kroutes(rs, r)))
				continue;
			snprintf(field, sizeof(field), "%s.route", path);
			if (l7)
				diags_addc(d, DIAG_INFO, "BM0001", &vr->pos, obj, field,
					   "weighted split per request on %s port %d (the HTTP path, "
					   "for %s)",
					   addr, rs->port, rs->l7_reason);
			else
				diags_addc(d, DIAG_WARN, "BM0001", &vr->pos, obj, field,
					   "weighted split decided per connection in the kernel for "
					   "%s port %d: %s; Istio splits http routes per request%s",
					   addr, rs->port, kernel_why(rs, why, sizeof(why)),
					   rs->http != RS_TCP && rs->family == BM_FAM_V4
					       ? " (annotate the VirtualService "
						 "bpfmesh.io/per-request: \"true\", or label "
						 "the Service istio.io/use-waypoint, to split "
						 "per request)"
					       : "");
			n++;
		}
	}
	return n;
}

int resolve(const struct mesh_config *c, struct rs_table *t, struct diags *d)
{
	int errors = 0;

	memset(t, 0, sizeof(*t));
	t->ix = index_build(c);
	for (int i = 0; i < c->nservices; i++) {
		const struct svc_obj *s = &c->services[i];

		for (uint8_t fam = BM_FAM_V4; fam <= BM_FAM_V6; fam += 2) {
			uint8_t addr[16];

			if (service_addr(t->ix, c, s, fam, addr))
				continue;
			for (int pi = 0; pi < s->nports; pi++)
				errors += resolve_port(t, c, s, pi, addr, fam, d);
		}
	}
	resolve_gateways(t, c, d);
	index_free(t->ix);
	t->ix = NULL;
	rs_path_notes(t, d);
	return errors;
}

void rs_free(struct rs_table *t)
{
	for (int i = 0; i < t->nservices; i++) {
		free(t->services[i].fqdn);
		free(t->services[i].kroutes);
		free(t->services[i].podbits);
		for (int k = 0; k < t->services[i].nl7routes; k++) {
			free(t->services[i].l7routes[k].dests);
			free(t->services[i].l7routes[k].mirrors);
		}
		free(t->services[i].l7routes);
	}
	for (int i = 0; i < t->nsubsets; i++) {
		free(t->subsets[i].name);
		free(t->subsets[i].backends);
	}
	for (int i = 0; i < t->ngwservers; i++) {
		for (int h = 0; h < t->gwservers[i].nhosts; h++) {
			struct rs_gwhost *gh = &t->gwservers[i].hosts[h];

			for (int k = 0; k < gh->nroutes; k++) {
				free(gh->routes[k].dests);
				free(gh->routes[k].mirrors);
			}
			free(gh->routes);
			free(gh->domain);
		}
		free(t->gwservers[i].hosts);
	}
	free(t->gwservers);
	free(t->services);
	free(t->subsets);
	free(t->backends);
	memset(t, 0, sizeof(*t));
}
