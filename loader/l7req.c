// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7req.c: one request on the HTTP path, from its headers to the last byte of its answer, as
 * Envoy's router does it under Istio's configuration (SEMANTICS.md "HTTP routing and
 * resilience"); the decisions themselves are l7route.h's pure functions.
 *
 *   headers -> route (404 NR) -> redirect / direct response / CORS preflight
 *           -> fault delay (DI) -> fault abort (FI) -> destination by weight
 *           -> try: endpoint (503 UH), AuthorizationPolicy of a pod on this node (403),
 *              upstream (UF, UC, per-try UT) -> retry with back-off, avoiding that host
 *           -> response head (retriable status: retry) -> body -> metrics, access log
 *   the route timeout (UT, 504) runs from the end of the request over every try.
 *
 * A destination-role request (from the tunnel) is judged and counted for the pod it names and
 * sent there; routing was the source's.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include "cfgref.h"
#include "gateway.h"
#include "gwtls.h"
#include "outlier.h"
#include "pins.h"
#include "l7int.h"
#include "log.h"
#include "security.h"

#define X_ENVOY_ATTEMPT	 "x-envoy-attempt-count"
#define X_ENVOY_UST	 "x-envoy-upstream-service-time"
#define X_ENVOY_EXPECTED "x-envoy-expected-rq-timeout-ms"

static void try_start(struct l7_req *r);
static void try_go(struct l7_req *r);
static void source_go(struct l7_req *r);
static void dest_go(struct l7_req *r);
static bool inbound_limited(struct l7_req *r, const struct workload_obj *wl, int port, int stage);

/* where a request waiting for Redis (rate limits) goes on */
enum { RLS_SOURCE = 1, RLS_TRY, RLS_DEST };
static void finish(struct l7_req *r);
static void mirrors_go(struct l7_req *r);
static void od_record(struct l7_req *r, int code);

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static struct l7w *req_w(const struct l7_req *r)
{
	return r->dc->w;
}

static struct l7_req *of_timer(struct l7_timer *t, size_t off)
{
	return (struct l7_req *)((char *)t - off);
}

/* ---------------- local replies (Envoy's wording) ---------------- */

/* gRPC status for a local reply's HTTP status (Envoy: Grpc::Utility::httpToGrpcStatus). */
static int http_to_grpc(int status)
{
	switch (status) {
	case 400:
		return 13; /* INTERNAL */
	case 401:
		return 16; /* UNAUTHENTICATED */
	case 403:
		return 7; /* PERMISSION_DENIED */
	case 404:
		return 12; /* UNIMPLEMENTED */
	case 429:
	case 502:
	case 503:
	case 504:
		return 14; /* UNAVAILABLE */
	default:
		return 2; /* UNKNOWN */
	}
}

/* Answer the request here: status, flags, a text body (may be NULL). A gRPC request gets what
 * Envoy sends a gRPC client: a trailers-only 200 with grpc-status and grpc-message. */
static void local_reply(struct l7_req *r, int status, unsigned flags, const char *body,
			const struct l7_hdrs *extra)
{
	struct l7_hdrs h = {};
	char len[24];
	size_t n = body ? strlen(body) : 0;

	r->flags |= flags;
	r->local_reply = true;
	if (r->st == RQ_RESPONDING || r->st == RQ_DONE) { /* too late for a new head */
		r->dc->codec->reset(r);
		finish(r);
		return;
	}
	l7_upstream_abandon(r);
	for (int i = 0; extra && i < extra->n; i++)
		l7h_add(&h, extra->v[i].name, extra->v[i].value);
	if (r->grpc && (status != 200 || r->grpc_status >= 0)) {
		char gs[16];

		snprintf(gs, sizeof(gs), "%d",
			 r->grpc_status >= 0 ? r->grpc_status : http_to_grpc(status));
		r->grpc_status = atoi(gs);
		l7h_set(&h, "content-type", "application/grpc");
		l7h_set(&h, "grpc-status", gs);
		if (body)
			l7h_set(&h, "grpc-message", body);
		status = 200;
		n = 0;
	} else {
		snprintf(len, sizeof(len), "%zu", n);
		l7h_set(&h, "content-length", len);
		if (n)
			l7h_set(&h, "content-type", "text/plain");
	}
	l7h_set(&h, "server", "envoy");
	r->status = status;
	r->st = RQ_RESPONDING;
	r->dc->codec->head(r, status, &h, n == 0 || r->head);
	if (n && !r->head) {
		r->resp_bytes += n;
		r->dc->codec->data(r, body, n, true);
	}
	l7h_free(&h);
	finish(r);
}

void l7_req_reply(struct l7_req *r, int status, unsigned flags, const char *body,
		  const struct l7_hdrs *extra)
{
	local_reply(r, status, flags, body, extra);
}

struct l7w *l7_req_worker(const struct l7_req *r)
{
	return req_w(r);
}

/* ---------------- timers ---------------- */

static void on_route_timeout(struct l7_timer *t)
{
	struct l7_req *r = of_timer(t, offsetof(struct l7_req, t_route));

	if (r->st == RQ_DONE)
		return;
	l7_timer_stop(req_w(r), &r->t_wait);
	l7_timer_stop(req_w(r), &r->t_try);
	/* Envoy: the global timeout gets 504 "upstream request timeout"; once the response has
	 * started it can only reset the stream */
	local_reply(r, 504, RF_UT, "upstream request timeout", NULL);
}

static void try_end_common(struct l7_req *r)
{
	struct l7w *w = req_w(r);

	l7_timer_stop(w, &r->t_try);
	if (r->cb_active)
		__atomic_sub_fetch(&r->cl->cb->active, 1, __ATOMIC_RELAXED);
	if (r->cb_retry)
		__atomic_sub_fetch(&r->cl->cb->retries, 1, __ATOMIC_RELAXED);
	r->cb_active = r->cb_retry = false;
	if (r->counted_active && r->cl && r->ep >= 0 && r->ep < r->cl->n)
		__atomic_sub_fetch(&r->cl->eps[r->ep].active, 1, __ATOMIC_RELAXED);
	r->counted_active = false;
}

static void on_try_timeout(struct l7_timer *t)
{
	struct l7_req *r = of_timer(t, offsetof(struct l7_req, t_try));

	if (r->st != RQ_UPSTREAM)
		return;
	l7_upstream_abandon(r);
	l7_req_try_failed(r, TRY_TIMEOUT);
}

static void on_wait_done(struct l7_timer *t);

/* ---------------- retries ---------------- */

static bool route_time_left(const struct l7_req *r)
{
	return !l7_timer_armed(&r->t_route) || r->t_route.due > req_w(r)->now;
}

/* Another try for r, if the policy wants one and can have one; true when one is scheduled. */
static bool maybe_retry(struct l7_req *r, const struct l7_try_result *res)
{
	if (!l7_should_retry(&r->rp, res))
		return false;
	if (r->attempt > r->rp.attempts || r->body_trimmed || !route_time_left(r)) {
		if (r->rp.attempts > 0)
			r->flags |= RF_URX; /* Envoy: the retry limit was reached */
		return false;
	}
	if (r->cl && r->cl->cb && r->cl->tp && r->cl->tp->max_retries > 0 &&
	    __atomic_load_n(&r->cl->cb->retries, __ATOMIC_RELAXED) >= r->cl->tp->max_retries)
		return false; /* maxRetries outstanding: this answer stands (retry overflow) */
	if (r->cl && r->cl->cb) {
		__atomic_add_fetch(&r->cl->cb->retries, 1, __ATOMIC_RELAXED);
		r->cb_retry = true; /* until this retry's try ends */
	}
	r->prev_ep = r->ep;
	r->st = RQ_WAIT;
	l7_timer_set(req_w(r), &r->t_wait,
		     req_w(r)->now + l7_backoff_ms(r->attempt, l7_rand(req_w(r))));
	return true;
}

void l7_req_try_failed(struct l7_req *r, enum l7_tryend why)
{
	struct l7_try_result res = {.grpc_status = -1};
	unsigned f = 0;

	if (r->st != RQ_UPSTREAM)
		return;
	pr_debug("l7: %s %s%s: try %d to %s failed (%s)", r->method, r->authority, r->path,
		 r->attempt, r->upstream,
		 why == TRY_CONNECT_FAIL ? "connect failure"
		 : why == TRY_RESET	 ? "reset before the response"
		 : why == TRY_TIMEOUT	 ? "per-try timeout"
		 : why == TRY_PROTOCOL	 ? "not HTTP"
					 : "refused stream");
	try_end_common(r);
	r->u = NULL;
	od_record(r, why == TRY_TIMEOUT ? 504 : 503);
	switch (why) {
	case TRY_CONNECT_FAIL:
		res.connect_failed = true;
		f = RF_UF;
		break;
	case TRY_RESET:
		res.reset = true;
		f = RF_UC;
		break;
	case TRY_TIMEOUT:
		res.reset = true; /* Envoy retries a per-try timeout as a reset (5xx, reset...) */
		f = RF_UT;
		break;
	case TRY_PROTOCOL:
		res.reset = true;
		f = RF_UPE;
		break;
	case TRY_REFUSED:
		res.refused_stream = true;
		f = RF_UR;
		break;
	}
	if (maybe_retry(r, &res))
		return;
	r->flags |= f;
	switch (why) {
	case TRY_CONNECT_FAIL:
		local_reply(r, 503, 0,
			    "upstream connect error or disconnect/reset before headers. reset "
			    "reason: connection failure",
			    NULL);
		break;
	case TRY_TIMEOUT:
		local_reply(r, 504, 0, "upstream request timeout", NULL);
		break;
	case TRY_REFUSED:
		local_reply(r, 503, 0,
			    "upstream connect error or disconnect/reset before headers. reset "
			    "reason: remote refused stream reset",
			    NULL);
		break;
	default:
		local_reply(r, 503, 0,
			    "upstream connect error or disconnect/reset before headers. reset "
			    "reason: connection termination",
			    NULL);
	}
}

void l7_req_overflow(struct l7_req *r)
{
	local_reply(r, 503, RF_UO,
		    "upstream connect error or disconnect/reset before headers. reset reason: "
		    "overflow",
		    NULL);
}

/* ---------------- the request's view for routing ---------------- */

static void view_of(const struct l7_req *r, struct l7_req_view *v)
{
	memset(v, 0, sizeof(*v));
	v->method = r->method;
	v->path = r->path;
	v->authority = r->authority;
	v->scheme = r->scheme ? r->scheme : "http";
	v->h = &r->h;
	v->port = r->dc->role == L7_SOURCE ? r->dc->vport : r->dc->dst_port;
	v->src = r->src_wl;
	v->src_ip = r->dc->src_ip;
	v->gen_cookie = r->gen_cookie[0] ? r->gen_cookie : NULL;
}

/* Envoy's cookie hash with a ttl: a client without the cookie gets one (its value from the
 * client's address and a random number), which picks its host now and on every request that
 * sends it back. */
static void gen_cookie(struct l7_req *r)
{
	const struct traffic_policy *tp = r->cl ? r->cl->tp : NULL;
	const char *ck, *name;
	size_t nl;

	if (r->gen_cookie[0] || !tp || !tp->lb_hash || !tp->hash_cookie ||
	    tp->hash_cookie_ttl_ms < 0 || tp->hash_header || tp->hash_query)
		return;
	name = tp->hash_cookie;
	nl = strlen(name);
	for (ck = l7h_get(&r->h, "cookie"); ck && *ck;) {
		while (*ck == ' ')
			ck++;
		if (!strncmp(ck, name, nl) && ck[nl] == '=')
			return; /* the client has it */
		ck = strchr(ck, ';');
		ck = ck ? ck + 1 : NULL;
	}
	snprintf(r->gen_cookie, sizeof(r->gen_cookie), "%08x%08x",
		 (unsigned)(r->dc->src_ip[0] << 24 | r->dc->src_ip[1] << 16 | r->dc->src_port),
		 l7_rand(req_w(r)));
}

/* ---------------- outlier detection: the kernel's bm_health, shared ---------------- */

/*
 * The HTTP path and the kernel keep one outlier state per backend (bm_health, the same
 * state machine: headers/outlier.h), so both agree on who is ejected: the kernel records
 * connection results, this records each response (and a failed try as Envoy maps local
 * origin errors: connect failure or reset 503, timeout 504). The agent's tick un-ejects.
 */
static int health_fd(const struct l7_req *r)
{
	const struct l7_opts *o = l7_opts_of(req_w(r));

	return o->fds ? o->fds->health : -1;
}

static bool od_on(const struct l7_cluster *cl)
{
	return cl && cl->pol.outlier && (cl->pol.consec_5xx || cl->pol.consec_gw);
}

static bool ep_healthy(void *arg, const struct l7_ep *e)
{
	const struct l7_req *r = arg;
	struct bm_health h;
	int fd = health_fd(r);

	if (!od_on(r->cl) || !e->backend_id || fd < 0)
		return true;
	if (bpf_map_lookup_elem_flags(fd, &e->backend_id, &h, BPF_F_LOCK))
		return true; /* never failed */
	return !h.od.ejected;
}

static void od_record(struct l7_req *r, int code)
{
	const struct l7_cluster *cl = r->cl;
	const struct rs_policy *rp;
	struct bm_health h = {};
	struct bm_outlier od;
	struct timespec ts;
	uint32_t bid, ejected = 0;
	int fd = health_fd(r), res;

	if (r->dc->role != L7_SOURCE || r->mirror || !od_on(cl) || r->ep < 0 || r->ep >= cl->n ||
	    fd < 0 || l7_maps_given(r->dc->w))
		return; /* (given: an upgrade's next agent owns bm_health and its backend ids) */
	bid = cl->eps[r->ep].backend_id;
	if (!bid)
		return;
	rp = &cl->pol;
	bm_od_defaults(&od);
	od.consec_5xx = rp->consec_5xx;
	od.consec_gw = rp->consec_gw;
	od.interval_ns = rp->interval_ms * 1000000ULL;
	od.base_ejection_ns = rp->base_ejection_ms * 1000000ULL;
	od.max_ejection_pct = rp->max_ejection_pct;
	od.min_health_pct = rp->min_health_pct;
	if (bpf_map_lookup_elem_flags(fd, &bid, &h, BPF_F_LOCK)) {
		if (code < 500)
			return; /* a success on a fresh host changes nothing */
		memset(&h, 0, sizeof(h));
		if (bpf_map_update_elem(fd, &bid, &h, BPF_NOEXIST) && errno != EEXIST)
			return;
		if (bpf_map_lookup_elem_flags(fd, &bid, &h, BPF_F_LOCK))
			return;
	}
	if (code >= 500) /* maxEjectionPercent needs the cluster's ejected count */
		for (int i = 0; i < cl->n; i++) {
			struct bm_health o;

			if (i != r->ep && cl->eps[i].backend_id &&
			    !bpf_map_lookup_elem_flags(fd, &cl->eps[i].backend_id, &o, BPF_F_LOCK))
				ejected += o.od.ejected;
		}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	h.pol = od;
	res =
	    bm_od_result(&h.od, &od, code, ts.tv_sec * 1000000000ULL + ts.tv_nsec, ejected, cl->n);
	bpf_map_update_elem(fd, &bid, &h, BPF_F_LOCK | BPF_EXIST);
	if (res == BM_OD_EJECTED)
		pr_info("l7: outlier: %s ejected from %s after %d (consecutive errors)",
			r->upstream, cl->fqdn ? cl->fqdn : "?", code);
}

/* ---------------- AuthorizationPolicy, per request ---------------- */

static const char *hdr_cb(void *arg, const char *name)
{
	return l7h_get(arg, name);
}

/* The policy of pod w (on this node) allows r? */
static bool authorized(struct l7_req *r, const struct workload_obj *w, int port)
{
	const struct mesh_config *c = r->snap->c;
	const struct l7_opts *o = l7_opts_of(req_w(r));
	char principal[400], pname[256], *path;
	struct sec_peer peer = {.ip_len = 128};
	struct sec_http http = {
	    .method = r->method, .host = r->authority, .header = hdr_cb, .arg = &r->h};
	struct sec_decision d;
	const char *td = o->trust_domain ? o->trust_domain : "cluster.local";

	if (!c || !w)
		return true;
	path = strndup(r->path, strcspn(r->path, "?")); /* the whole path: never cut short */
	if (!path)
		return false;
	http.path = path;
	peer.ip[10] = peer.ip[11] = 0xff;
	memcpy(peer.ip + 12, r->dc->src_ip, 4);
	if (r->dc->gw_port && w != l7_gateway_of(req_w(r)))
		/* a pod's policy sees the gateway's own address (the node's) as its peer, as a
		 * pod behind Istio's gateway sees the gateway pod's; the client's is in XFF */
		inet_pton(AF_INET, o->node_ip, peer.ip + 12);
	if (r->dc->role == L7_DEST) {
		/* the identity the tunnel verified */
		peer.principal = r->dc->principal;
		peer.ns = r->dc->peer_ns;
	} else if (r->dc->gw_port && w == l7_gateway_of(req_w(r))) {
		/* the Gateway's own policy: its client is a plaintext peer at its address */
	} else if (r->src_wl && (r->dc->gw_port || config_in_mesh(c, r->src_wl))) {
		/* a local mesh pod the kernel attested by its cgroup, or this agent's gateway */
		snprintf(principal, sizeof(principal), "%s/ns/%s/sa/%s", td, r->src_wl->ns,
			 r->src_wl->service_account ? r->src_wl->service_account : "default");
		peer.principal = principal;
		peer.ns = r->src_wl->ns;
	}
	sec_authorize_http(c, o->root_ns, w, port, &peer, &http, &d);
	if (d.audit)
		pr_info("l7: audit: %s %s%s -> %s/%s:%d matched AUDIT policy %s", r->method,
			r->authority ? r->authority : "", path, w->ns, w->name, port,
			sec_policy_name(d.audit, pname, sizeof(pname)));
	if (d.verdict == SEC_DENY) {
		/* as Envoy's RBAC filter names it (what `bpfmesh verify` reports) */
		if (d.by)
			snprintf(r->details, sizeof(r->details),
				 "rbac_access_denied_matched_policy[ns[%s]-policy[%s]]", d.by->ns,
				 d.by->name);
		else
			snprintf(r->details, sizeof(r->details),
				 "rbac_access_denied_matched_policy[none]");
		pr_debug("l7: denied %s %s%s -> %s/%s:%d: %s %s", r->method,
			 r->authority ? r->authority : "", path, w->ns, w->name, port, d.reason,
			 d.by ? sec_policy_name(d.by, pname, sizeof(pname)) : "");
		free(path);
		return false;
	}
	free(path);
	return true;
}

/* ---------------- mirrors: fire and forget ---------------- */

/*
 * Envoy's request mirror policy: a copy of the request, as routed (after rewrites and header
 * operations), goes to the mirror's cluster with "-shadow" appended to its authority; its
 * response is dropped and never delays or changes the primary. The copy leaves when the
 * request is complete (its body held for retries); a body too big to hold is not mirrored.
 */
struct l7_mirror {
	struct l7_dead dead;
	struct l7_dconn dc; /* the client's facts, no socket */
	struct l7_req r;
};

static void m_head(struct l7_req *r, int status, const struct l7_hdrs *h, bool end)
{
	(void)r, (void)status, (void)h, (void)end;
}

static void m_data(struct l7_req *r, const char *p, size_t n, bool end)
{
	(void)r, (void)p, (void)n, (void)end;
}

static void m_trailers(struct l7_req *r, const struct l7_hdrs *h)
{
	(void)r, (void)h;
}

static void m_nop(struct l7_req *r)
{
	(void)r;
}

static size_t m_queued(struct l7_req *r)
{
	(void)r;
	return 0;
}

static void m_free(struct l7_dead *dd)
{
	struct l7_mirror *m = (struct l7_mirror *)((char *)dd - offsetof(struct l7_mirror, dead));

	l7_req_free(&m->r);
	free(m);
}

static void m_done(struct l7_req *r)
{
	struct l7_mirror *m = (struct l7_mirror *)((char *)r - offsetof(struct l7_mirror, r));

	l7_defer_free(req_w(r), &m->dead);
}

static const struct l7_dcodec mirror_codec = {
    .head = m_head,
    .data = m_data,
    .trailers = m_trailers,
    .reset = m_nop,
    .done = m_done,
    .queued = m_queued,
    .more_body = m_nop,
    .continue100 = m_nop,
};

static void mirror_one(struct l7_req *p, struct l7_cluster *cl)
{
	struct l7w *w = req_w(p);
	struct l7_mirror *m = calloc(1, sizeof(*m));
	struct l7_req *r;
	size_t alen;

	if (!m)
		return;
	m->dc = *p->dc;
	m->dc.linked = false; /* (a mirror is in no worker's list) */
	m->dc.dprev = m->dc.dnext = NULL;
	m->dc.drain = NULL;
	m->dc.io.fd = -1;
	m->dc.io.mask = 0;
	m->dc.codec = &mirror_codec;
	r = &m->r;
	l7_req_init(r, &m->dc, m);
	m->dead.free = m_free;
	r->mirror = true;
	r->method = strdup(p->method);
	r->path = strdup(p->path);
	r->scheme = p->scheme ? strdup(p->scheme) : NULL;
	alen = p->authority ? strcspn(p->authority, ":") : 0;
	r->authority = malloc(alen + 8 + (p->authority ? strlen(p->authority + alen) : 0));
	if (r->authority)
		sprintf(r->authority, "%.*s-shadow%s", (int)alen, p->authority ? p->authority : "",
			p->authority ? p->authority + alen : "");
	for (int i = 0; i < p->h.n; i++)
		l7h_add(&r->h, p->h.v[i].name, p->h.v[i].value);
	l7h_del(&r->h, X_ENVOY_ATTEMPT);
	r->grpc = p->grpc;
	r->head = p->head;
	r->has_body = p->has_body;
	r->content_length = p->content_length;
	if (lb_pending(&p->body))
		lb_put(&r->body, p->body.p + p->body.off, lb_pending(&p->body));
	r->body_done = true;
	r->ep = r->prev_ep = -1;
	r->grpc_status = -1;
	r->t0 = w->now;
	r->snap = l7_snap_get(p->snap);
	r->rnd = l7_rand(w);
	r->svc = p->svc;
	r->src_wl = p->src_wl;
	r->cl = cl;
	r->timeout_ms = p->timeout_ms;
	r->rp.attempts = 0;
	__atomic_add_fetch(&w->c_reqs, 1, __ATOMIC_RELAXED);
	if (r->timeout_ms)
		l7_timer_set(w, &r->t_route, w->now + r->timeout_ms);
	try_start(r);
}

static void mirrors_go(struct l7_req *r)
{
	struct l7w *w = req_w(r);

	r->mirror_pending = false;
	if (r->body_trimmed)
		return;
	for (int i = 0; r->rt && r->rt->h && i < r->rt->nmirrors && i < r->rt->h->nmirrors; i++) {
		double pct = r->rt->h->mirrors[i].percent;

		if (!r->rt->mirrors[i] || !r->rt->mirrors[i]->n)
			continue;
		if (pct < 100.0 && l7_rand(w) / 4294967296.0 * 100.0 >= pct)
			continue;
		mirror_one(r, r->rt->mirrors[i]);
	}
}

/* ---------------- tries ---------------- */

static void try_start(struct l7_req *r)
{
	struct l7w *w = req_w(r);
	struct l7_req_view v;
	const struct l7_ep *e;

	r->st = RQ_UPSTREAM;
	if (r->dc->role == L7_SOURCE)
		gen_cookie(r);
	view_of(r, &v);
	if (r->dc->role == L7_SOURCE) {
		/* retries avoid the host that just failed, except under a consistent hash */
		int avoid = r->cl->tp && r->cl->tp->lb_hash ? -1 : r->prev_ep;

		r->ep = l7_pick_ep(r->cl, &v, l7_rand(w), avoid, ep_healthy, r);
		if (r->ep < 0) {
			local_reply(r, 503, RF_UH, "no healthy upstream", NULL);
			return;
		}
		e = &r->cl->eps[r->ep];
		r->dst_wl = e->wl;
		if (e->local && e->wl && !authorized(r, e->wl, e->port)) {
			local_reply(r, 403, 0, "RBAC: access denied", NULL);
			return;
		}
		if (e->local && e->wl && inbound_limited(r, e->wl, e->port, RLS_TRY))
			return;
	}
	try_go(r);
}

/* A try, its endpoint chosen and admitted (source role), or the destination's pod. */
static void try_go(struct l7_req *r)
{
	struct l7w *w = req_w(r);
	const struct l7_ep *e;
	char n[16];

	if (r->dc->role == L7_SOURCE) {
		e = &r->cl->eps[r->ep];
		l7_trace_headers(r, e); /* the context for this try's upstream */
		if (r->cl->cb && r->cl->tp && r->cl->tp->http2_max_requests > 0 &&
		    __atomic_load_n(&r->cl->cb->active, __ATOMIC_RELAXED) >=
			r->cl->tp->http2_max_requests) {
			l7_req_overflow(r); /* http2MaxRequests in flight */
			return;
		}
		if (r->cl->cb) {
			__atomic_add_fetch(&r->cl->cb->active, 1, __ATOMIC_RELAXED);
			r->cb_active = true;
		}
		__atomic_add_fetch(&r->cl->eps[r->ep].active, 1, __ATOMIC_RELAXED);
		r->counted_active = true;
		snprintf(r->upstream, sizeof(r->upstream), "%u.%u.%u.%u:%u", e->addr[0], e->addr[1],
			 e->addr[2], e->addr[3], e->port);
	}
	if (!r->attempt && !r->mirror && r->rt && r->rt->nmirrors) {
		if (r->body_done)
			mirrors_go(r);
		else
			r->mirror_pending = true;
	}
	r->attempt++;
	r->body_sent = 0;
	snprintf(n, sizeof(n), "%d", r->attempt);
	l7h_set(&r->h, X_ENVOY_ATTEMPT, n);
	r->t_try0 = w->now;
	if (r->rp.per_try_timeout_ms > 0 &&
	    (!r->timeout_ms || r->rp.per_try_timeout_ms < r->timeout_ms))
		l7_timer_set(w, &r->t_try, w->now + r->rp.per_try_timeout_ms);
	switch (l7_upstream_start(r)) {
	case 0:
		break;
	case L7_OVERFLOW:
		l7_req_overflow(r);
		break;
	default:
		l7_req_try_failed(r, TRY_CONNECT_FAIL);
	}
}

static void on_wait_done(struct l7_timer *t)
{
	struct l7_req *r = of_timer(t, offsetof(struct l7_req, t_wait));

	if (r->st != RQ_WAIT)
		return;
	if (r->fault_delayed && !r->attempt) {
		/* the delay is over: the abort, if any, then the first try */
		int status = 0, grpc = -1;

		r->fault_delayed = false;
		if (l7_fault_abort(r->rt, l7_rand(req_w(r)) / 4294967296.0, &status, &grpc)) {
			r->grpc_status = grpc;
			local_reply(r, status ? status : 200, RF_FI, "fault filter abort", NULL);
			return;
		}
	}
	try_start(r);
}

/* ---------------- the request's start ---------------- */

static void request_id(struct l7_req *r)
{
	static const char hex[] = "0123456789abcdef";
	char id[37];
	uint32_t x[4];
	uint8_t *b = (uint8_t *)x;
	int k = 0;

	if (l7h_get(&r->h, "x-request-id"))
		return;
	for (int i = 0; i < 4; i++)
		x[i] = l7_rand(req_w(r));
	b[6] = (b[6] & 0x0f) | 0x40; /* UUID version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			id[k++] = '-';
		id[k++] = hex[b[i] >> 4];
		id[k++] = hex[b[i] & 15];
	}
	id[k] = 0;
	l7h_set(&r->h, "x-request-id", id);
}

/* corsPolicy: a preflight is answered here; other requests get the allow headers. */
static bool origin_allowed(const struct cors_policy *cp, const char *origin)
{
	for (int i = 0; origin && i < cp->nallow_origins; i++) {
		const struct str_match *m = &cp->allow_origins[i];

		if ((m->kind == SM_EXACT && m->value && !strcmp(m->value, origin)) ||
		    (m->kind == SM_PREFIX && m->value &&
		     !strncmp(m->value, origin, strlen(m->value))) ||
		    (m->kind == SM_EXACT && m->value && !strcmp(m->value, "*")))
			return true;
		if (m->kind == SM_REGEX && m->value) {
			char err[128];
			struct bm_regex *re = bm_regex_new(m->value, false, err, sizeof(err));
			bool ok = re && bm_regex_full(re, origin, strlen(origin));

			bm_regex_free(re);
			if (ok)
				return true;
		}
	}
	return false;
}

static bool cors_preflight(struct l7_req *r)
{
	const struct cors_policy *cp;
	const char *origin = l7h_get(&r->h, "origin");
	struct l7_hdrs h = {};
	char age[24];

	if (!r->rt || !r->rt->h || !r->rt->h->has_cors || strcmp(r->method, "OPTIONS") || !origin ||
	    !l7h_get(&r->h, "access-control-request-method"))
		return false;
	cp = &r->rt->h->cors;
	if (!origin_allowed(cp, origin))
		return false; /* Envoy passes a preflight from another origin upstream */
	l7h_set(&h, "access-control-allow-origin", origin);
	if (cp->allow_methods)
		l7h_set(&h, "access-control-allow-methods", cp->allow_methods);
	if (cp->allow_headers)
		l7h_set(&h, "access-control-allow-headers", cp->allow_headers);
	if (cp->max_age_s >= 0) {
		snprintf(age, sizeof(age), "%lld", (long long)cp->max_age_s);
		l7h_set(&h, "access-control-max-age", age);
	}
	if (cp->allow_credentials == 1)
		l7h_set(&h, "access-control-allow-credentials", "true");
	local_reply(r, 200, 0, NULL, &h);
	l7h_free(&h);
	return true;
}

static void cors_response(const struct l7_req *r, struct l7_hdrs *h)
{
	const char *origin = l7h_get(&r->h, "origin");
	const struct cors_policy *cp;

	if (!r->rt || !r->rt->h || !r->rt->h->has_cors || !origin)
		return;
	cp = &r->rt->h->cors;
	if (!origin_allowed(cp, origin))
		return;
	l7h_set(h, "access-control-allow-origin", origin);
	if (cp->allow_credentials == 1)
		l7h_set(h, "access-control-allow-credentials", "true");
	if (cp->expose_headers)
		l7h_set(h, "access-control-expose-headers", cp->expose_headers);
}

/* The route's request mutations: rewrite, header operations, Envoy's own headers. */
static void mutate_request(struct l7_req *r)
{
	static const char *const untrusted[] = {"x-forwarded-client-cert", "x-envoy-original-path",
						"x-envoy-peer-metadata",
						"x-envoy-peer-metadata-id"};
	char ms[24];

	/* what a client pod says about identities and the mesh's own doings is not believed:
	 * removed before routing (Envoy sanitizes them from untrusted downstreams) */
	for (size_t i = 0; i < sizeof(untrusted) / sizeof(untrusted[0]); i++)
		l7h_del(&r->h, untrusted[i]);
	if (r->rt) {
		r->up_path = l7_rewrite_path(r->rt, r->matched, r->path);
		if (r->up_path) {
			l7h_set(&r->h, "x-envoy-original-path", r->path);
			free(r->path);
			r->path = r->up_path;
			r->up_path = NULL;
		}
		if (r->rt->h && r->rt->h->has_rewrite && r->rt->h->rewrite.authority) {
			free(r->authority);
			r->authority = strdup(r->rt->h->rewrite.authority);
		}
		if (r->rt->h)
			l7h_apply(&r->h, &r->rt->h->req_headers);
		if (r->dest && r->dest->rd)
			l7h_apply(&r->h, &r->dest->rd->req_headers);
	}
	request_id(r);
	if (r->dc->gw_port) {
		/* the edge: Envoy's use_remote_address appends the client's address */
		const char *xff = l7h_get(&r->h, "x-forwarded-for");
		char ip[INET_ADDRSTRLEN], *v = NULL;

		inet_ntop(AF_INET, r->dc->src_ip, ip, sizeof(ip));
		if (asprintf(&v, "%s%s%s", xff ? xff : "", xff ? "," : "", ip) > 0)
			l7h_set(&r->h, "x-forwarded-for", v);
		free(v);
		l7h_set(&r->h, "x-envoy-external-address", ip);
	}
	l7h_set(&r->h, "x-forwarded-proto", r->scheme ? r->scheme : "http"); /* what we saw */
	if (r->timeout_ms || r->rp.per_try_timeout_ms) {
		int64_t t = r->rp.per_try_timeout_ms &&
				    (!r->timeout_ms || r->rp.per_try_timeout_ms < r->timeout_ms)
				? r->rp.per_try_timeout_ms
				: r->timeout_ms;

		snprintf(ms, sizeof(ms), "%lld", (long long)t);
		l7h_set(&r->h, X_ENVOY_EXPECTED, ms);
	}
}

static void source_route(struct l7_req *r)
{
	struct l7w *w = req_w(r);
	const struct l7_table *t = r->snap->t;
	struct l7_req_view v;

	if (r->dc->gw_port) {
		/* a Gateway's client: the gateway's own AuthorizationPolicy first (Envoy's RBAC
		 * filter runs before the router), then the virtual host of its host header */
		r->src_wl = l7_gateway_of(w);
		l7_trace_begin(r, r->src_wl, false);
		if (!authorized(r, r->src_wl, r->dc->gw_port)) {
			local_reply(r, 403, 0, "RBAC: access denied", NULL);
			return;
		}
		const struct l7_gwport *gp = l7_table_gwport(t, r->dc->gw_port);
		const struct gw_server *only = NULL;

		/* the scheme is what the connection is, never what a client's :scheme says */
		free(r->scheme);
		r->scheme = strdup(r->dc->gw_tls ? "https" : "http");
		if (r->dc->gw_tls) {
			/* HTTPS: the virtual hosts of the server its SNI chose (as now configured)
			 */
			const struct gwtls *pick =
			    gp && gp->tls ? gwtls_pick(gp->tlsv, gp->ntls, r->dc->sni) : NULL;

			only = pick ? pick->sv : NULL;
			if (!only)
				gp = NULL;
		}
		r->vh = l7_table_vhost(gp, r->authority, only);
		if (!r->vh) {
			local_reply(r, 404, RF_NR, NULL, NULL); /* no virtual host: NR */
			return;
		}
		if (r->vh->sv->https_redirect && !r->dc->gw_tls) { /* (Envoy's require_tls) */
			char *loc = NULL;
			struct l7_hdrs h = {};

			if (asprintf(&loc, "https://%s%s", r->authority ? r->authority : "",
				     r->path) > 0)
				l7h_set(&h, "location", loc);
			free(loc);
			local_reply(r, 301, 0, NULL, &h); /* tls.httpsRedirect */
			l7h_free(&h);
			return;
		}
		r->svc = &r->vh->s;
	} else {
		r->src_wl = l7_snap_pod(r->snap, r->dc->src_pod);
		l7_trace_begin(r, r->src_wl, false);
		r->svc = l7_table_find(t, r->dc->vip, r->dc->vport);
	}
	if (!r->svc) {
		/* the port left the HTTP path since this connection was captured */
		local_reply(r, 404, RF_NR, NULL, NULL);
		return;
	}
	view_of(r, &v);
	if (r->svc->vs) {
		int i = l7_route_find(r->svc, &v);

		if (i < 0) {
			local_reply(r, 404, RF_NR, NULL, NULL); /* Envoy: route_not_found */
			return;
		}
		r->rt = &r->svc->routes[i];
		r->matched = l7_route_matched(r->rt, &v);
	}
	if (r->rt) {
		r->dest = l7_pick_dest(r->rt, r->rnd);
		r->cl = r->dest ? r->dest->cl : NULL;
	} else {
		r->cl = r->svc->all;
	}
	/* the proxy's rate limits (they run before the router, with its route): the gateway's,
	 * or the client pod's own outbound ones */
	switch (r->dc->gw_port ? l7_ratelimit(r, EF_GATEWAY, r->src_wl, r->dc->gw_port)
			       : l7_ratelimit(r, EF_OUTBOUND, r->src_wl, r->dc->vport)) {
	case L7_RL_REPLIED:
		return;
	case L7_RL_WAIT:
		r->st = RQ_WAIT;
		r->rl_stage = RLS_SOURCE;
		return;
	case L7_RL_ERROR:
		l7_rl_refuse(r, L7_RL_ERROR);
		return;
	default:
		break;
	}
	source_go(r);
}

/* The router, once the filters before it let r through. */
static void source_go(struct l7_req *r)
{
	struct l7w *w = req_w(r);
	struct l7_req_view v;
	int64_t delay;
	int status, grpc;

	view_of(r, &v);
	if (r->rt && r->rt->h && r->rt->h->has_redirect) {
		struct l7_hdrs h = {};
		char *loc = l7_redirect_location(r->rt, &v, &status);

		if (loc)
			l7h_set(&h, "location", loc);
		free(loc);
		local_reply(r, status, 0, NULL, &h);
		l7h_free(&h);
		return;
	}
	if (r->rt && r->rt->h && r->rt->h->has_direct) {
		const char *b = r->rt->h->direct_body;

		r->grpc = false; /* as written, not converted */
		local_reply(r, r->rt->h->direct_status, 0, b, NULL);
		return;
	}
	if (cors_preflight(r))
		return;
	if (r->rt) {
		l7_retry_policy(r->rt, &r->rp);
		r->timeout_ms = r->rt->h && r->rt->h->timeout_ms > 0 ? r->rt->h->timeout_ms : 0;
	} else {
		l7_retry_policy(NULL, &r->rp);
	}
	if (!r->cl) {
		local_reply(r, 503, RF_UH, "no healthy upstream", NULL);
		return;
	}
	mutate_request(r);
	if (r->expect100)
		r->dc->codec->continue100(r);
	if (r->body_done && r->timeout_ms)
		l7_timer_set(w, &r->t_route, w->now + r->timeout_ms);
	if (l7_fault_delay(r->rt, l7_rand(w) / 4294967296.0, &delay)) {
		r->flags |= RF_DI;
		r->fault_delayed = true;
		r->st = RQ_WAIT;
		/* at least the delay, as Envoy's: the clock is in whole ms (truncated), and the
		 * loop's cached time is older than now */
		l7_timer_set(w, &r->t_wait, l7_now() + delay + 1);
		return;
	}
	grpc = -1;
	if (l7_fault_abort(r->rt, l7_rand(w) / 4294967296.0, &status, &grpc)) {
		r->grpc_status = grpc;
		local_reply(r, status ? status : 200, RF_FI, "fault filter abort", NULL);
		return;
	}
	try_start(r);
}

static void dest_route(struct l7_req *r)
{
	r->dst_wl = l7_snap_pod_ip(r->snap, r->dc->dst_ip);
	l7_trace_begin(r, r->dst_wl, true);
	/* the client's agent routed and retried; here: the pod's policy, then the pod */
	r->rp.attempts = 0;
	snprintf(r->upstream, sizeof(r->upstream), "%u.%u.%u.%u:%u", r->dc->dst_ip[0],
		 r->dc->dst_ip[1], r->dc->dst_ip[2], r->dc->dst_ip[3], r->dc->dst_port);
	if (!r->dst_wl) {
		local_reply(r, 503, RF_UH, "no healthy upstream", NULL);
		return;
	}
	if (!authorized(r, r->dst_wl, r->dc->dst_port)) {
		local_reply(r, 403, 0, "RBAC: access denied", NULL);
		return;
	}
	if (inbound_limited(r, r->dst_wl, r->dc->dst_port, RLS_DEST))
		return;
	dest_go(r);
}

static void dest_go(struct l7_req *r)
{
	l7_trace_headers(r, NULL);
	if (r->expect100)
		r->dc->codec->continue100(r);
	try_start(r);
}

/* The destination pod's own (SIDECAR_INBOUND) limits; true when r is answered or waits. */
static bool inbound_limited(struct l7_req *r, const struct workload_obj *wl, int port, int stage)
{
	int v;

	r->rl_inbound = true; /* a refusal answered in there is the destination's to report */
	v = l7_ratelimit(r, EF_INBOUND, wl, port);
	if (v == L7_RL_REPLIED)
		return true; /* answered: r may be gone */
	r->rl_inbound = v == L7_RL_ERROR;
	switch (v) {
	case L7_RL_WAIT:
		r->st = RQ_WAIT;
		r->rl_stage = stage;
		return true;
	case L7_RL_ERROR:
		l7_rl_refuse(r, L7_RL_ERROR);
		return true;
	default:
		return false;
	}
}

void l7_req_rl_done(struct l7_req *r, int verdict)
{
	int stage = r->rl_stage;

	r->rl_stage = 0;
	if (r->st != RQ_WAIT)
		return;
	if (verdict == L7_RL_OVER || verdict == L7_RL_ERROR) {
		r->rl_inbound = stage != RLS_SOURCE;
		l7_rl_refuse(r, verdict);
		return;
	}
	if (stage == RLS_SOURCE)
		source_go(r);
	else if (stage == RLS_TRY)
		try_go(r);
	else if (stage == RLS_DEST)
		dest_go(r);
}

void l7_req_init(struct l7_req *r, struct l7_dconn *dc, void *cs)
{
	r->dc = dc;
	r->cs = cs;
	r->t_route = (struct l7_timer){.idx = -1, .fire = on_route_timeout};
	r->t_try = (struct l7_timer){.idx = -1, .fire = on_try_timeout};
	r->t_wait = (struct l7_timer){.idx = -1, .fire = on_wait_done};
	r->t_rl = (struct l7_timer){.idx = -1};
}

void l7_req_start(struct l7_req *r)
{
	struct l7w *w = req_w(r);
	const char *ct;

	r->ep = r->prev_ep = -1;
	r->grpc_status = -1;
	r->t0 = w->now ? w->now : l7_now();
	r->t0_ns = mono_ns(); /* durations in the metrics and the access log: sub-ms */
	if (r->path)
		l7_normalize_path(r->path); /* routing, policy and the upstream see one path */
	r->snap = l7_snap_get(w->snap);
	r->rnd = l7_rand(w);
	r->head = r->method && !strcmp(r->method, "HEAD");
	ct = l7h_get(&r->h, "content-type");
	r->grpc = ct && !strncasecmp(ct, "application/grpc", 16);
	__atomic_add_fetch(&w->c_reqs, 1, __ATOMIC_RELAXED);
	if (!r->snap) {
		local_reply(r, 503, RF_UH, "no healthy upstream", NULL);
		return;
	}
	if (r->dc->role == L7_SOURCE)
		source_route(r);
	else
		dest_route(r);
}

/* ---------------- request body ---------------- */

size_t l7_req_body_queued(const struct l7_req *r)
{
	return lb_pending(&r->body) - r->body_sent; /* not yet taken by the upstream */
}

void l7_req_body(struct l7_req *r, const char *p, size_t n, bool end)
{
	struct l7w *w = req_w(r);

	r->req_bytes += n;
	r->body_rcvd += n;
	if (r->st == RQ_DONE) /* answered already: the rest is dropped */
		return;
	lb_put(&r->body, p, n);
	if (end) {
		r->body_done = true;
		if (r->mirror_pending)
			mirrors_go(r);
		if (r->timeout_ms && !l7_timer_armed(&r->t_route) && r->st != RQ_NEW)
			l7_timer_set(w, &r->t_route, w->now + r->timeout_ms);
	}
	if (r->u)
		l7_upstream_body(r);
}

/* ---------------- the response ---------------- */

static int grpc_status_of(const struct l7_hdrs *h)
{
	const char *g = l7h_get(h, "grpc-status");

	return g && isdigit((unsigned char)g[0]) ? atoi(g) : -1;
}

bool l7_req_resp_head(struct l7_req *r, int status, struct l7_hdrs *h, bool end)
{
	struct l7w *w = req_w(r);
	struct l7_try_result res = {.status = status, .grpc_status = grpc_status_of(h)};
	char ms[24];

	if (r->st != RQ_UPSTREAM)
		return false;
	try_end_common(r);
	od_record(r, status);
	if (maybe_retry(r, &res)) {
		r->u = NULL;
		return false;
	}
	r->status = status;
	r->grpc_status = res.grpc_status;
	r->t_resp = w->now;
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(w->now - r->t_try0));
	if (r->dc->role == L7_SOURCE) {
		l7h_set(h, X_ENVOY_UST, ms);
		if (r->gen_cookie[0] && r->cl && r->cl->tp) {
			const struct traffic_policy *tp = r->cl->tp;
			char sc[512];
			int n =
			    snprintf(sc, sizeof(sc), "%s=\"%s\"", tp->hash_cookie, r->gen_cookie);

			if (tp->hash_cookie_ttl_ms > 0)
				n += snprintf(sc + n, sizeof(sc) - n, "; Max-Age=%lld",
					      (long long)(tp->hash_cookie_ttl_ms / 1000));
			if (tp->hash_cookie_path && n < (int)sizeof(sc))
				n += snprintf(sc + n, sizeof(sc) - n, "; Path=%s",
					      tp->hash_cookie_path);
			if (n < (int)sizeof(sc))
				snprintf(sc + n, sizeof(sc) - n, "; HttpOnly");
			l7h_add(h, "set-cookie", sc);
		}
		if (r->rt && r->rt->h)
			l7h_apply(h, &r->rt->h->resp_headers);
		if (r->dest && r->dest->rd)
			l7h_apply(h, &r->dest->rd->resp_headers);
		cors_response(r, h);
	}
	l7h_set(h, "server", "envoy");
	r->st = RQ_RESPONDING;
	r->dc->codec->head(r, status, h, end);
	if (end)
		finish(r);
	return true;
}

void l7_req_resp_data(struct l7_req *r, const char *p, size_t n, bool end)
{
	if (r->st != RQ_RESPONDING)
		return;
	r->resp_bytes += n;
	r->dc->codec->data(r, p, n, end);
	if (end)
		finish(r);
}

void l7_req_resp_trailers(struct l7_req *r, struct l7_hdrs *h)
{
	int g = grpc_status_of(h);

	if (r->st != RQ_RESPONDING)
		return;
	if (g >= 0)
		r->grpc_status = g;
	r->dc->codec->trailers(r, h);
	finish(r);
}

void l7_req_resp_reset(struct l7_req *r)
{
	if (r->st != RQ_RESPONDING)
		return;
	r->u = NULL;
	r->flags |= RF_UC;
	r->dc->codec->reset(r);
	finish(r);
}

void l7_req_drained(struct l7_req *r)
{
	if (r->st == RQ_RESPONDING && r->u)
		l7_upstream_resume(r);
}

void l7_req_upgraded(struct l7_req *r, struct l7_buf *from_upstream)
{
	(void)from_upstream;
	r->u = NULL; /* the connection belongs to the relay now */
	finish(r);
}

/* ---------------- the end ---------------- */

/* A peer's gateway as the destination's metrics name it (its labels are the peer's). */
static const struct workload_obj gw_peer = {
    .kind = WL_POD, .name = GW_NAME, .ns = GW_NS, .service_account = GW_SA, .replicas = 1};

static void record(struct l7_req *r, bool destination)
{
	const struct workload_obj *src = r->src_wl;
	const struct l7_opts *o = l7_opts_of(req_w(r));
	struct l7_record rec = {
	    .destination = destination,
	    .snap = r->snap,
	    .dst = r->dst_wl,
	    .grpc = r->grpc,
	    .code = r->status,
	    .grpc_status = r->grpc_status,
	    .flags = r->flags,
	    .ms = r->t0_ns ? (double)(mono_ns() - r->t0_ns) / 1e6 : (double)(req_w(r)->now - r->t0),
	    .req_bytes = r->req_bytes,
	    .resp_bytes = r->resp_bytes,
	    .method = r->method,
	    .authority = r->authority,
	    .path = r->path,
	    .upstream = r->upstream[0] ? r->upstream : NULL,
	    .details = r->details[0] ? r->details : NULL,
	    .attempts = r->attempt,
	};

	if (r->dc->role == L7_DEST) {
		/* the client is the pod the tunnel vouched for (its address and identity) */
		src = l7_snap_pod_ip(r->snap, r->dc->src_ip);
		if (!src && gw_principal(r->dc->principal))
			src = &gw_peer; /* another node's gateway: no pod of the config */
		rec.mtls = true;
	} else {
		rec.mtls = r->cl && r->ep >= 0 && r->ep < r->cl->n && r->cl->eps[r->ep].tunnel &&
			   o->trust_domain;
	}
	rec.src = src;
	rec.td = rec.mtls ? (o->trust_domain ? o->trust_domain : "cluster.local") : NULL;
	if (r->cl && r->cl->svc) {
		rec.svc_ns = r->cl->svc->ns;
		rec.svc_name = r->cl->svc->name;
	} else if (r->svc && r->svc->svc) {
		rec.svc_ns = r->svc->svc->ns;
		rec.svc_name = r->svc->svc->name;
	}
	l7_stats_record(&req_w(r)->stats, &rec);
	/* one line per agent that carried it: the destination's when it is another node's */
	if (l7_log_of(req_w(r)) && (!destination || r->dc->role == L7_DEST))
		l7_log_request(&req_w(r)->alog, &rec);
}

static void finish(struct l7_req *r)
{
	struct l7w *w = req_w(r);

	if (r->st == RQ_DONE && r->reported)
		return;
	l7_timer_stop(w, &r->t_route);
	l7_timer_stop(w, &r->t_try);
	l7_timer_stop(w, &r->t_wait);
	l7_rl_cancel(r);
	try_end_common(r);
	if (r->u || r->pending)
		l7_upstream_abandon(r); /* a request waiting for a connection leaves the queue */
	r->st = RQ_DONE;
	if (!r->reported) {
		r->reported = true;
		l7_trace_end(r);
		if (r->dc->role == L7_DEST) {
			record(r, true);
		} else {
			if (!r->mirror) /* the client made one request, not two */
				record(r, false);
			/* a pod of this node: this agent is its destination reporter too */
			if (r->cl && r->ep >= 0 && r->ep < r->cl->n && r->cl->eps[r->ep].local &&
			    (r->attempt || r->rl_inbound))
				record(r, true);
		}
	}
	r->dc->codec->done(r);
}

void l7_req_abort(struct l7_req *r)
{
	if (r->st == RQ_DONE)
		return;
	r->flags |= RF_DC;
	if (r->st != RQ_RESPONDING)
		r->status = 0; /* no response went out: Envoy counts response_code 0 */
	finish(r);
}

void l7_req_free(struct l7_req *r)
{
	struct l7w *w = req_w(r);

	l7_timer_stop(w, &r->t_route);
	l7_timer_stop(w, &r->t_try);
	l7_timer_stop(w, &r->t_wait);
	l7_rl_cancel(r);
	if (r->u || r->pending)
		l7_upstream_abandon(r);
	try_end_common(r);
	l7h_free(&r->h);
	lb_free(&r->body);
	free(r->method);
	free(r->path);
	free(r->authority);
	free(r->scheme);
	free(r->up_path);
	free(r->up_authority);
	l7_snap_put(r->snap);
	r->snap = NULL;
}
