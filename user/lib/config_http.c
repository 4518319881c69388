// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * config_http.c: the L7 part of a VirtualService's routes read into the model (model.h,
 * struct http_route_spec) from a valid object: matches, redirect, rewrite, direct response,
 * retries, timeout, fault, mirrors, CORS, header operations and delegation; and the L4 matches
 * of tcp and tls routes. Called by config.c (vs_routes_extract) once validate_object() passed,
 * so types are trusted here. The agent's HTTP path (loader/l7*.c) acts on these.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"

const char *const grpc_status_names[] = {"OK",
					 "CANCELLED",
					 "UNKNOWN",
					 "INVALID_ARGUMENT",
					 "DEADLINE_EXCEEDED",
					 "NOT_FOUND",
					 "ALREADY_EXISTS",
					 "PERMISSION_DENIED",
					 "RESOURCE_EXHAUSTED",
					 "FAILED_PRECONDITION",
					 "ABORTED",
					 "OUT_OF_RANGE",
					 "UNIMPLEMENTED",
					 "INTERNAL",
					 "UNAVAILABLE",
					 "DATA_LOSS",
					 "UNAUTHENTICATED",
					 NULL};

static void str_match_extract(struct xctx *x, struct str_match *m, const struct ynode *n)
{
	static const struct {
		const char *key;
		enum str_match_kind kind;
	} kinds[] = {{"exact", SM_EXACT}, {"prefix", SM_PREFIX}, {"regex", SM_REGEX}};

	m->kind = SM_NONE;
	if (!ynode_is_map(n))
		return;
	m->kind = SM_ANY; /* `{}`: present */
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const char *v = ymap_str(n, kinds[i].key);

		if (v || ymap_find(n, kinds[i].key)) {
			m->kind = kinds[i].kind;
			m->value = xdup(x, v ? v : "");
			return;
		}
	}
}

static void str_match_free(struct str_match *m)
{
	free(m->value);
}

static struct named_match *named_extract(struct xctx *x, const struct ynode *map, int *n)
{
	struct named_match *v;

	*n = 0;
	if (!ynode_is_map(map) || map->n == 0)
		return NULL;
	v = xcalloc(x, map->n, sizeof(*v));
	for (int i = 0; v && i < map->n; i++) {
		v[*n].name = xdup(x, map->pairs[i].key);
		str_match_extract(x, &v[*n].m, map->pairs[i].val);
		if (v[*n].m.kind == SM_NONE)
			v[*n].m.kind = SM_ANY; /* `name:` with no value: present */
		(*n)++;
	}
	return v;
}

static void named_free(struct named_match *v, int n)
{
	for (int i = 0; i < n; i++) {
		free(v[i].name);
		str_match_free(&v[i].m);
	}
	free(v);
}

static void match_extract(struct xctx *x, struct http_match *m, const struct ynode *n)
{
	str_match_extract(x, &m->uri, ymap_get(n, "uri"));
	str_match_extract(x, &m->scheme, ymap_get(n, "scheme"));
	str_match_extract(x, &m->method, ymap_get(n, "method"));
	str_match_extract(x, &m->authority, ymap_get(n, "authority"));
	m->headers = named_extract(x, ymap_get(n, "headers"), &m->nheaders);
	m->without_headers = named_extract(x, ymap_get(n, "withoutHeaders"), &m->nwithout_headers);
	m->query_params = named_extract(x, ymap_get(n, "queryParams"), &m->nquery_params);
	m->port = (int)ymap_int(n, "port", 0);
	kv_from_map(x, &m->source_labels, ymap_get(n, "sourceLabels"));
	m->source_namespace = xdup(x, ymap_str(n, "sourceNamespace"));
	m->gateways = strv_from_seq(x, ymap_get(n, "gateways"), &m->ngateways);
	m->ignore_uri_case = ymap_bool(n, "ignoreUriCase", false);
	m->l7 = m->uri.kind || m->scheme.kind || m->method.kind || m->authority.kind ||
		m->nheaders || m->nwithout_headers || m->nquery_params;
	m->line = n->line;
}

static void match_free(struct http_match *m)
{
	str_match_free(&m->uri);
	str_match_free(&m->scheme);
	str_match_free(&m->method);
	str_match_free(&m->authority);
	named_free(m->headers, m->nheaders);
	named_free(m->without_headers, m->nwithout_headers);
	named_free(m->query_params, m->nquery_params);
	kvlist_free(&m->source_labels);
	free(m->source_namespace);
	strv_free(m->gateways, m->ngateways);
}

void header_ops_extract(struct xctx *x, struct header_ops *h, const struct ynode *ops)
{
	kv_from_map(x, &h->set, ymap_get(ops, "set"));
	kv_from_map(x, &h->add, ymap_get(ops, "add"));
	h->remove = strv_from_seq(x, ymap_get(ops, "remove"), &h->nremove);
}

void header_ops_free(struct header_ops *h)
{
	kvlist_free(&h->set);
	kvlist_free(&h->add);
	strv_free(h->remove, h->nremove);
	memset(h, 0, sizeof(*h));
}

/* A percentage as Istio reads it: `percentage: {value: 12.5}`, else the deprecated integer
 * `percent`, else 100. */
static double percentage(const struct ynode *owner, const char *int_key)
{
	const struct ynode *p = ymap_get(owner, "percentage");
	double v;

	if (p && ynode_num(ymap_get(p, "value"), &v) == 0)
		return v;
	if (p)
		return 0; /* `percentage: {}`: 0 */
	if (int_key && ymap_get(owner, int_key))
		return (double)ymap_int(owner, int_key, 100);
	return 100;
}

static void retries_extract(struct xctx *x, struct http_retry *r, const struct ynode *n)
{
	r->attempts = (int)ymap_int(n, "attempts", 0);
	r->per_try_timeout_ms = duration_ms(ymap_get(n, "perTryTimeout"));
	r->retry_on = xdup(x, ymap_str(n, "retryOn"));
	r->retry_remote_localities = ymap_bool(n, "retryRemoteLocalities", false);
}

static void fault_extract(struct xctx *x, struct http_fault *f, const struct ynode *n)
{
	const struct ynode *d = ymap_get(n, "delay"), *a = ymap_get(n, "abort");

	if (d) {
		f->delay = true;
		f->delay_ms = duration_ms(ymap_get(d, "fixedDelay"));
		f->delay_pct = percentage(d, "percent");
	}
	if (a) {
		f->abort = true;
		f->abort_status = (int)ymap_int(a, "httpStatus", 0);
		f->abort_grpc = xdup(x, ymap_str(a, "grpcStatus"));
		f->abort_pct = percentage(a, NULL);
	}
}

static void mirrors_extract(struct xctx *x, struct http_route_spec *h, const struct ynode *n)
{
	const struct ynode *one = ymap_get(n, "mirror"), *many = ymap_get(n, "mirrors");
	int total = (one ? 1 : 0) + (ynode_is_seq(many) ? many->n : 0);

	if (!total)
		return;
	h->mirrors = xcalloc(x, total, sizeof(*h->mirrors));
	if (!h->mirrors)
		return;
	if (one) {
		struct http_mirror *m = &h->mirrors[h->nmirrors++];
		const struct ynode *mp = ymap_get(n, "mirrorPercentage");
		double v;

		m->host = xdup(x, ymap_str(one, "host"));
		m->subset = xdup(x, ymap_str(one, "subset"));
		m->port = (int)ymap_int(ymap_get(one, "port"), "number", 0);
		m->percent = 100;
		if (mp && ynode_num(ymap_get(mp, "value"), &v) == 0)
			m->percent = v;
		else if (ymap_get(n, "mirrorPercent") || ymap_get(n, "mirror_percent"))
			m->percent = (double)ymap_int(
			    n, ymap_get(n, "mirrorPercent") ? "mirrorPercent" : "mirror_percent",
			    100);
	}
	for (int i = 0; ynode_is_seq(many) && i < many->n; i++) {
		const struct ynode *d = ymap_get(many->items[i], "destination");
		struct http_mirror *m = &h->mirrors[h->nmirrors++];

		m->host = xdup(x, ymap_str(d, "host"));
		m->subset = xdup(x, ymap_str(d, "subset"));
		m->port = (int)ymap_int(ymap_get(d, "port"), "number", 0);
		m->percent = percentage(many->items[i], NULL);
	}
}

/* A list of strings joined with ", " (CORS header values). */
static char *joined(struct xctx *x, const struct ynode *seq)
{
	size_t len = 1;
	char *s;

	if (!ynode_is_seq(seq) || seq->n == 0)
		return NULL;
	for (int i = 0; i < seq->n; i++)
		len += strlen(ynode_text(seq->items[i]) ? ynode_text(seq->items[i]) : "") + 2;
	s = xcalloc(x, 1, len);
	for (int i = 0; s && i < seq->n; i++) {
		if (i)
			strcat(s, ", ");
		strcat(s, ynode_text(seq->items[i]) ? ynode_text(seq->items[i]) : "");
	}
	return s;
}

static void cors_extract(struct xctx *x, struct cors_policy *c, const struct ynode *n)
{
	const struct ynode *origins = ymap_get(n, "allowOrigins"),
			   *old = ymap_get(n, "allowOrigin");
	int total = (ynode_is_seq(origins) ? origins->n : 0) + (ynode_is_seq(old) ? old->n : 0);
	int64_t ms;
	bool b;

	if (total)
		c->allow_origins = xcalloc(x, total, sizeof(*c->allow_origins));
	for (int i = 0; c->allow_origins && ynode_is_seq(origins) && i < origins->n; i++)
		str_match_extract(x, &c->allow_origins[c->nallow_origins++], origins->items[i]);
	for (int i = 0; c->allow_origins && ynode_is_seq(old) && i < old->n; i++) {
		struct str_match *m = &c->allow_origins[c->nallow_origins++];

		m->kind = SM_EXACT; /* the deprecated allowOrigin: exact strings */
		m->value = xdup(x, ynode_text(old->items[i]));
	}
	c->allow_methods = joined(x, ymap_get(n, "allowMethods"));
	c->allow_headers = joined(x, ymap_get(n, "allowHeaders"));
	c->expose_headers = joined(x, ymap_get(n, "exposeHeaders"));
	ms = duration_ms(ymap_get(n, "maxAge"));
	c->max_age_s = ms < 0 ? -1 : ms / 1000;
	c->allow_credentials = -1;
	if (ynode_bool(ymap_get(n, "allowCredentials"), &b) == 0)
		c->allow_credentials = b;
}

static void cors_free(struct cors_policy *c)
{
	for (int i = 0; i < c->nallow_origins; i++)
		str_match_free(&c->allow_origins[i]);
	free(c->allow_origins);
	free(c->allow_methods);
	free(c->allow_headers);
	free(c->expose_headers);
}

void http_route_extract(struct xctx *x, struct vs_route *r, const struct ynode *n, const char *file)
{
	const struct ynode *matches = ymap_get(n, "match"), *v;
	struct http_route_spec *h = xcalloc(x, 1, sizeof(*h));

	(void)file;
	if (!h)
		return;
	r->http = h;
	if (ynode_is_seq(matches) && matches->n) {
		h->matches = xcalloc(x, matches->n, sizeof(*h->matches));
		for (int i = 0; h->matches && i < matches->n; i++)
			match_extract(x, &h->matches[h->nmatches++], matches->items[i]);
	}
	h->timeout_ms = duration_ms(ymap_get(n, "timeout"));
	if ((v = ymap_get(n, "retries"))) {
		h->has_retries = true;
		retries_extract(x, &h->retries, v);
	}
	if ((v = ymap_get(n, "fault"))) {
		h->has_fault = true;
		fault_extract(x, &h->fault, v);
	}
	if ((v = ymap_get(n, "redirect"))) {
		const char *dp = ymap_str(v, "derivePort");

		h->has_redirect = true;
		h->redirect.uri = xdup(x, ymap_str(v, "uri"));
		h->redirect.authority = xdup(x, ymap_str(v, "authority"));
		h->redirect.scheme = xdup(x, ymap_str(v, "scheme"));
		h->redirect.port = (int)ymap_int(v, "port", 0);
		h->redirect.derive_port_from_request = dp && !strcmp(dp, "FROM_REQUEST_PORT");
		h->redirect.code = (int)ymap_int(v, "redirectCode", 301);
	}
	if ((v = ymap_get(n, "rewrite"))) {
		const struct ynode *rr = ymap_get(v, "uriRegexRewrite");

		h->has_rewrite = true;
		h->rewrite.uri = xdup(x, ymap_str(v, "uri"));
		h->rewrite.authority = xdup(x, ymap_str(v, "authority"));
		h->rewrite.regex_match = xdup(x, ymap_str(rr, "match"));
		h->rewrite.regex_rewrite = xdup(x, ymap_str(rr, "rewrite"));
	}
	if ((v = ymap_get(n, "directResponse"))) {
		const struct ynode *body = ymap_get(v, "body");

		h->has_direct = true;
		h->direct_status = (int)ymap_int(v, "status", 200);
		/* body.bytes is base64 in the API; kept as written, said by validate */
		h->direct_body = xdup(x, ymap_str(body, "string") ? ymap_str(body, "string")
								  : ymap_str(body, "bytes"));
	}
	if ((v = ymap_get(n, "headers"))) {
		header_ops_extract(x, &h->req_headers, ymap_get(v, "request"));
		header_ops_extract(x, &h->resp_headers, ymap_get(v, "response"));
	}
	mirrors_extract(x, h, n);
	if ((v = ymap_get(n, "corsPolicy"))) {
		h->has_cors = true;
		cors_extract(x, &h->cors, v);
	}
	if ((v = ymap_get(n, "delegate"))) {
		h->delegate_name = xdup(x, ymap_str(v, "name"));
		h->delegate_ns = xdup(x, ymap_str(v, "namespace"));
	}
}

void l4_matches_extract(struct xctx *x, struct vs_route *r, const struct ynode *n)
{
	const struct ynode *matches = ymap_get(n, "match");

	if (!ynode_is_seq(matches) || !matches->n)
		return;
	r->l4 = xcalloc(x, matches->n, sizeof(*r->l4));
	for (int i = 0; r->l4 && i < matches->n; i++) {
		const struct ynode *m = matches->items[i];
		struct l4_match *l = &r->l4[r->nl4++];

		l->port = (int)ymap_int(m, "port", 0);
		l->destination_subnets =
		    strv_from_seq(x, ymap_get(m, "destinationSubnets"), &l->ndestination_subnets);
		kv_from_map(x, &l->source_labels, ymap_get(m, "sourceLabels"));
		l->source_namespace = xdup(x, ymap_str(m, "sourceNamespace"));
		l->sni_hosts = strv_from_seq(x, ymap_get(m, "sniHosts"), &l->nsni_hosts);
		l->line = m->line;
	}
}

void http_route_free(struct vs_route *r)
{
	struct http_route_spec *h = r->http;

	for (int i = 0; i < r->nl4; i++) {
		strv_free(r->l4[i].destination_subnets, r->l4[i].ndestination_subnets);
		kvlist_free(&r->l4[i].source_labels);
		free(r->l4[i].source_namespace);
		strv_free(r->l4[i].sni_hosts, r->l4[i].nsni_hosts);
	}
	free(r->l4);
	if (!h)
		return;
	for (int i = 0; i < h->nmatches; i++)
		match_free(&h->matches[i]);
	free(h->matches);
	free(h->retries.retry_on);
	free(h->fault.abort_grpc);
	free(h->redirect.uri);
	free(h->redirect.authority);
	free(h->redirect.scheme);
	free(h->rewrite.uri);
	free(h->rewrite.authority);
	free(h->rewrite.regex_match);
	free(h->rewrite.regex_rewrite);
	free(h->direct_body);
	header_ops_free(&h->req_headers);
	header_ops_free(&h->resp_headers);
	for (int i = 0; i < h->nmirrors; i++) {
		free(h->mirrors[i].host);
		free(h->mirrors[i].subset);
	}
	free(h->mirrors);
	cors_free(&h->cors);
	free(h->delegate_name);
	free(h->delegate_ns);
	free(h);
}
