// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7trace.c: the spans of the HTTP path's requests (l7int.h), as Istio's Envoys make them: a
 * client pod's request gets a CLIENT span at its node (its sidecar's outbound), a pod's
 * request a SERVER span at the pod's node (its inbound; both from one agent when the two are
 * on one node, the server span by the pod's own config), a gateway's request a SERVER span
 * and a CLIENT child for the upstream. The context comes in by traceparent or B3 and goes on
 * to the next hop in the format(s) it came in (none: the provider's, B3 for Zipkin, W3C for
 * OpenTelemetry), so an app that forwards the headers gets one trace across services; an
 * incoming sampling decision is kept, else the proxy's sampling percentage decides. Where
 * spans go, how many are sampled, which custom tags they carry: Telemetry and MeshConfig
 * (user/lib/telemetry.h) for the proxy's workload, else the agent's --tracing-* flags.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "l7int.h"
#include "metrics.h"
#include "trace.h"

#define DECORATOR "x-envoy-decorator-operation"

static uint64_t real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static void rand_id(struct l7w *w, uint8_t *id, size_t n)
{
	do {
		for (size_t i = 0; i < n; i += 4) {
			uint32_t x = l7_rand(w);

			memcpy(id + i, &x, n - i < 4 ? n - i : 4);
		}
	} while (!id[0] && !id[n - 1]); /* never all zero (an invalid id) */
}

static const char *hdr_of(void *arg, const char *name)
{
	return l7h_get(arg, name);
}

/* Where the spans of workload wl as a client (or server) go: the exporter, its tags. */
struct tr_conf {
	struct tr_exp *exp;
	double pct;
	enum tel_proto proto;
	int max_tag;
	const struct tel_tag *tags;
	int ntags;
};

static bool conf_of(struct l7_req *r, const struct workload_obj *wl, bool server,
		    struct tr_conf *tc)
{
	struct l7w *w = l7_req_worker(r);
	const struct l7_opts *o = l7_opts_of(w);
	struct tel_result tr;
	char url[600];

	if (!r->snap || !r->snap->c)
		return false;
	tel_tracing_for(r->snap->c, o->root_ns, wl, server ? TEL_SERVER : TEL_CLIENT, &tr);
	if (tr.disabled)
		return false;
	if (tr.provider) {
		const struct tel_provider *p = tr.provider;

		snprintf(url, sizeof(url), "http://%s:%d%s", p->service ? p->service : "", p->port,
			 p->path ? p->path : "/");
		tc->proto = p->proto;
		tc->max_tag = p->max_tag_length;
	} else if (o->tracing_endpoint && !tr.provider_name) {
		snprintf(url, sizeof(url), "%s", o->tracing_endpoint);
		tc->proto = (enum tel_proto)o->tracing_proto;
		tc->max_tag = 256;
	} else {
		return false; /* no tracer (or one named that MeshConfig does not define) */
	}
	tc->exp = l7_tracer(w, url, tc->proto);
	tc->pct = tr.sampling >= 0	     ? tr.sampling
		  : o->tracing_sampling >= 0 ? o->tracing_sampling
					     : 1.0;
	tc->tags = tr.tags;
	tc->ntags = tr.ntags;
	return tc->exp != NULL;
}

void l7_trace_begin(struct l7_req *r, const struct workload_obj *wl, bool server)
{
	struct l7w *w = l7_req_worker(r);
	struct tr_conf tc;
	struct tr_ctx in;
	const char *dec;

	r->tr = NULL;
	if (server) {
		/* the client's agent named the span (Envoy's egress decorator): believed from a
		 * peer agent the tunnel authenticated only, never passed on to the pod */
		dec = r->dc->principal[0] ? l7h_get(&r->h, DECORATOR) : NULL;
		snprintf(r->tr_op, sizeof(r->tr_op), "%s", dec ? dec : "");
	}
	l7h_del(&r->h, DECORATOR); /* what a client or a pod says is not believed */
	if (r->mirror || !conf_of(r, wl, server, &tc))
		return;
	r->tr = tc.exp;
	r->tr_tags = tc.tags;
	r->tr_ntags = tc.ntags;
	r->tr_max_tag = tc.max_tag;
	r->tr_wl = wl;
	r->tr_start_us = real_us();
	tr_extract(hdr_of, &r->h, &in);
	if (in.has_trace) {
		memcpy(r->tr_trace, in.trace, 16);
		r->tr_has_parent = in.has_span;
		memcpy(r->tr_parent, in.span, 8);
		snprintf(r->tr_state, sizeof(r->tr_state), "%s", in.tracestate);
		r->tr_w3c = in.w3c;
		r->tr_b3 = in.b3;
	} else {
		rand_id(w, r->tr_trace, 16);
		r->tr_has_parent = false;
		r->tr_state[0] = 0;
		/* a new trace: the provider's own propagation (Envoy's zipkin tracer B3, its
		 * OpenTelemetry tracer W3C trace context) */
		r->tr_w3c = tc.proto != TP_ZIPKIN;
		r->tr_b3 = tc.proto == TP_ZIPKIN;
	}
	r->tr_sampled = in.sampled >= 0
			    ? in.sampled == 1
			    : tc.pct >= 100 || l7_rand(w) / 4294967296.0 * 100.0 < tc.pct;
	rand_id(w, r->tr_span, 8);
	rand_id(w, r->tr_child, 8);
	rand_id(w, r->tr_local, 8);
	r->tr_child_used = r->tr_local_used = false;
}

/* The span name of a routed request: Istio's route decorator, host:port and the route's uri
 * match (prefix + "*", the exact path, the regex), a bare "/" and a star without one. */
static void op_name(struct l7_req *r, char *buf, size_t len)
{
	const char *host = r->cl && r->cl->fqdn	    ? r->cl->fqdn
			   : r->svc && r->svc->fqdn ? r->svc->fqdn
			   : r->authority	    ? r->authority
						    : "";
	int port = r->dest && r->dest->rd && r->dest->rd->port ? r->dest->rd->port : 0;
	const struct str_match *u = r->matched && r->matched->m ? &r->matched->m->uri : NULL;

	if (!port && !r->dc->gw_port)
		port = r->dc->vport;
	if (!port && r->cl && r->cl->svc && r->cl->svc->nports)
		port = r->cl->svc->ports[0].port;
	if (u && u->kind == SM_PREFIX && u->value)
		snprintf(buf, len, "%s:%d%s*", host, port, u->value);
	else if (u && (u->kind == SM_EXACT || u->kind == SM_REGEX) && u->value)
		snprintf(buf, len, "%s:%d%s", host, port, u->value);
	else
		snprintf(buf, len, "%s:%d/*", host, port);
}

void l7_trace_headers(struct l7_req *r, const struct l7_ep *ep)
{
	const uint8_t *span, *parent;
	char op[512];

	if (!r->tr)
		return;
	if (!ep) { /* the destination side: our SERVER span is the pod's parent */
		tr_inject(&r->h, r->tr_trace, r->tr_span, r->tr_has_parent ? r->tr_parent : NULL,
			  r->tr_sampled, r->tr_state, r->tr_w3c, r->tr_b3);
		return;
	}
	/* the upstream's parent: the gateway's CLIENT child, else our CLIENT span; a pod of
	 * this node: the SERVER span made for it, under that */
	r->tr_child_used = r->dc->gw_port != 0;
	r->tr_local_used = ep->local;
	span = r->dc->gw_port ? r->tr_child : r->tr_span;
	parent = r->dc->gw_port ? r->tr_span : r->tr_has_parent ? r->tr_parent : NULL;
	if (ep->local) {
		parent = span;
		span = r->tr_local;
	}
	tr_inject(&r->h, r->tr_trace, span, parent, r->tr_sampled, r->tr_state, r->tr_w3c,
		  r->tr_b3);
	if (ep->tunnel) { /* the peer agent names its SERVER span the same (Envoy's decorator) */
		op_name(r, op, sizeof(op));
		l7h_set(&r->h, DECORATOR, op);
	} else {
		l7h_del(&r->h, DECORATOR);
	}
}

static void cluster_name(struct l7_req *r, bool inbound, int port, char *buf, size_t len)
{
	if (inbound)
		snprintf(buf, len, "inbound|%d||", port);
	else if (r->cl && r->cl->fqdn)
		snprintf(buf, len, "outbound|%d|%s|%s",
			 r->dest && r->dest->rd && r->dest->rd->port ? r->dest->rd->port
								     : r->dc->vport,
			 strcmp(r->cl->name, "(all)") ? r->cl->name : "", r->cl->fqdn);
	else
		snprintf(buf, len, "-");
}

/* One span of r, of workload wl (the proxy's pod), to exporter e with tags and max. */
static void emit(struct l7_req *r, const struct workload_obj *wl, bool server, const uint8_t *id,
		 const uint8_t *parent, bool remote_parent, const char *name, bool inbound,
		 struct tr_exp *e, const struct tel_tag *ctags, int nctags, int max)
{
	struct tr_span *s = malloc(sizeof(*s));
	const struct l7_opts *o = l7_opts_of(l7_req_worker(r));
	char v[1024], wname[256], ip[INET_ADDRSTRLEN];
	const char *cname, *crev, *ua = l7h_get(&r->h, "user-agent"), *rid;
	int port =
	    inbound ? (r->dc->role == L7_DEST ? r->dc->dst_port
					      : (r->ep >= 0 && r->cl ? r->cl->eps[r->ep].port : 0))
		    : 0;
	bool gw = wl && wl == l7_gateway_of(l7_req_worker(r));

	if (!s)
		return;
	memset(s, 0, offsetof(struct tr_span, tagbuf)); /* (the tag bytes are written as used) */
	memcpy(s->trace, r->tr_trace, 16);
	memcpy(s->id, id, 8);
	if (parent) {
		memcpy(s->parent, parent, 8);
		s->has_parent = true;
		s->remote_parent = remote_parent;
	}
	s->server = server;
	s->sampled = r->tr_sampled;
	s->start_us = r->tr_start_us;
	s->dur_us = real_us() - r->tr_start_us;
	snprintf(s->name, sizeof(s->name), "%s", name);
	wname[0] = 0;
	if (wl)
		config_workload_name(wl, wname, sizeof(wname));
	snprintf(s->service, sizeof(s->service), "%s.%s",
		 wl && kv_get(&wl->labels, "app") ? kv_get(&wl->labels, "app")
		 : wname[0]			  ? wname
						  : "istio-proxy",
		 wl ? wl->ns : "default");
	if (gw)
		snprintf(s->ipv4, sizeof(s->ipv4), "%s", o->node_ip ? o->node_ip : "");
	else if (wl && wl->naddresses && wl->addresses[0] && !strchr(wl->addresses[0], ':'))
		snprintf(s->ipv4, sizeof(s->ipv4), "%s", wl->addresses[0]);
	if (r->tr_state[0])
		snprintf(s->tracestate, sizeof(s->tracestate), "%s", r->tr_state);
	s->error = !r->status || r->status >= 500;
	tr_tag(s, "component", "proxy", max);
	snprintf(v, sizeof(v), "%s~%s~%s.%s~%s.svc.cluster.local", gw ? "router" : "sidecar",
		 s->ipv4, wl ? wl->name : "", wl ? wl->ns : "", wl ? wl->ns : "");
	tr_tag(s, "node_id", v, 0);
	rid = l7h_get(&r->h, "x-request-id");
	if (rid)
		tr_tag(s, "guid:x-request-id", rid, max);
	snprintf(v, sizeof(v), "%s://%s%s", r->scheme ? r->scheme : "http",
		 r->authority ? r->authority : "", r->path ? r->path : "");
	tr_tag(s, "http.url", v, max);
	tr_tag(s, "http.method", r->method, max);
	tr_tag(s, "http.protocol", r->dc->proto == L7_H2 ? "HTTP/2" : "HTTP/1.1", max);
	tr_tag(s, "downstream_cluster", "-", max);
	tr_tag(s, "user_agent", ua ? ua : "-", max);
	inet_ntop(AF_INET, r->dc->src_ip, ip, sizeof(ip));
	tr_tag(s, "peer.address", ip, max);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)r->req_bytes);
	tr_tag(s, "request_size", v, max);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)r->resp_bytes);
	tr_tag(s, "response_size", v, max);
	snprintf(v, sizeof(v), "%d", r->status);
	tr_tag(s, "http.status_code", v, max);
	l7_flags_str(r->flags, v, sizeof(v));
	tr_tag(s, "response_flags", v, max);
	cluster_name(r, inbound, port, v, sizeof(v));
	tr_tag(s, "upstream_cluster", v, max);
	tr_tag(s, "upstream_cluster.name", v, max);
	if (r->upstream[0])
		tr_tag(s, "upstream_address", r->upstream, max);
	if (s->error)
		tr_tag(s, "error", "true", max);
	metrics_canonical(wl, wname, &cname, &crev);
	tr_tag(s, "istio.canonical_service", cname ? cname : "unknown", max);
	tr_tag(s, "istio.canonical_revision", crev ? crev : "latest", max);
	tr_tag(s, "istio.mesh_id", o->trust_domain ? o->trust_domain : "cluster.local", max);
	tr_tag(s, "istio.namespace", wl ? wl->ns : "default", max);
	tr_tag(s, "istio.cluster_id", metrics_cluster_id(), max);
	for (int i = 0; i < nctags; i++) {
		const struct tel_tag *t = &ctags[i];
		const char *val = NULL;

		if (t->kind == TAG_LITERAL)
			val = t->value;
		else if (t->kind == TAG_ENV)
			val = wl && t->value ? kv_get(&wl->env, t->value) : NULL;
		else
			val = t->value ? l7h_get(&r->h, t->value) : NULL;
		if (!val)
			val = t->dflt;
		if (val)
			tr_tag(s, t->name, val, max);
	}
	l7_span_add(l7_req_worker(r), e, s);
}

/* A pod of this node that got r: its SERVER span, by its own config (its Telemetry's SERVER
 * side, as its sidecar would make it), the child of parent. */
static void emit_local(struct l7_req *r, const uint8_t *parent, const char *op)
{
	struct tr_conf tc;

	if (!r->dst_wl || r->ep < 0 || !r->cl || r->ep >= r->cl->n || !r->cl->eps[r->ep].local ||
	    !conf_of(r, r->dst_wl, true, &tc))
		return;
	emit(r, r->dst_wl, true, r->tr_local, parent, false, op, true, tc.exp, tc.tags, tc.ntags,
	     tc.max_tag);
}

void l7_trace_end(struct l7_req *r)
{
	char op[512];
	const uint8_t *in = r->tr_has_parent ? r->tr_parent : NULL;

	if (!r->tr || !r->tr_sampled)
		return;
	if (r->dc->role == L7_DEST) {
		if (r->tr_op[0])
			snprintf(op, sizeof(op), "%s", r->tr_op);
		else
			snprintf(op, sizeof(op), "%s:%d/*", r->authority ? r->authority : "",
				 r->dc->dst_port);
		emit(r, r->tr_wl, true, r->tr_span, in, true, op, true, r->tr, r->tr_tags,
		     r->tr_ntags, r->tr_max_tag);
		return;
	}
	op_name(r, op, sizeof(op));
	if (r->dc->gw_port) {
		/* the gateway: its span for the client's request, and its upstream's child */
		emit(r, r->tr_wl, true, r->tr_span, in, true, op, false, r->tr, r->tr_tags,
		     r->tr_ntags, r->tr_max_tag);
		if (r->tr_child_used)
			emit(r, r->tr_wl, false, r->tr_child, r->tr_span, false, op, false, r->tr,
			     r->tr_tags, r->tr_ntags, r->tr_max_tag);
		if (r->tr_child_used && r->tr_local_used)
			emit_local(r, r->tr_child, op);
		return;
	}
	emit(r, r->tr_wl, false, r->tr_span, in, true, op, false, r->tr, r->tr_tags, r->tr_ntags,
	     r->tr_max_tag);
	if (r->tr_local_used)
		emit_local(r, r->tr_span, op);
}
