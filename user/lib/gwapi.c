// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * gwapi.c: see gwapi.h. Trees are built here node by node (each derived node carries the line
 * of the source node it comes from, so problems point into the user's file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gwapi.h"

#define RANK_PREFIX "gwapi-path-prefix-" /* a derived route's name: its PathPrefix's length */

/* ---------------- building trees ---------------- */

static struct ynode *nnew(enum ynode_type t, int line)
{
	struct ynode *n = calloc(1, sizeof(*n));

	if (!n)
		abort();
	n->type = t;
	n->line = line;
	return n;
}

static struct ynode *nstr(const char *s, int line)
{
	struct ynode *n = nnew(YN_SCALAR, line);

	n->str = strdup(s ? s : "");
	n->skind = YS_STR;
	return n;
}

static struct ynode *nint(long v, int line)
{
	struct ynode *n = nnew(YN_SCALAR, line);
	char b[32];

	snprintf(b, sizeof(b), "%ld", v);
	n->str = strdup(b);
	n->skind = YS_INT;
	return n;
}

static void put(struct ynode *m, const char *k, struct ynode *v)
{
	struct ypair *p = realloc(m->pairs, (m->n + 1) * sizeof(*p));

	if (!p)
		abort();
	m->pairs = p;
	p[m->n].key = strdup(k);
	p[m->n].val = v;
	m->n++;
}

static void push(struct ynode *s, struct ynode *v)
{
	struct ynode **p = realloc(s->items, (s->n + 1) * sizeof(*p));

	if (!p)
		abort();
	s->items = p;
	p[s->n++] = v;
}

/* A copy of src, or NULL. */
static struct ynode *copy(const struct ynode *src)
{
	return src ? ynode_clone(src) : NULL;
}

static int line_of(const struct ynode *n, int def)
{
	return n && n->line ? n->line : def;
}

static struct ynode *meta(const char *name, const char *ns, int line)
{
	struct ynode *m = nnew(YN_MAP, line);
	char full[320];

	snprintf(full, sizeof(full), "%s%s", name, GWAPI_SUFFIX);
	put(m, "name", nstr(full, line));
	put(m, "namespace", nstr(ns, line));
	return m;
}

bool gwapi_derived(const char *name)
{
	size_t n = name ? strlen(name) : 0, s = strlen(GWAPI_SUFFIX);

	return n > s && !strcmp(name + n - s, GWAPI_SUFFIX);
}

/* ---------------- Gateway ---------------- */

static struct ynode *derive_gateway(const struct ynode *root, const char *ns)
{
	const struct ynode *spec = ymap_get(root, "spec"), *ls = ymap_get(spec, "listeners");
	const char *name = ymap_str(ymap_get(root, "metadata"), "name");
	const char *cls = ymap_str(spec, "gatewayClassName");
	struct ynode *out, *s, *servers, *md, *ann;

	if (!name || !cls || strcmp(cls, GWAPI_CLASS) || !ynode_is_seq(ls))
		return NULL; /* another controller's (validate says so) */
	out = nnew(YN_MAP, root->line);
	put(out, "apiVersion", nstr("networking.istio.io/v1", root->line));
	put(out, "kind", nstr("Gateway", root->line));
	md = meta(name, ns, root->line);
	ann = nnew(YN_MAP, root->line);
	/* the certificates' namespace: the Gateway's (gwtls.c reads it) */
	put(ann, "bpfmesh.io/credential-namespace", nstr(ns, root->line));
	put(md, "annotations", ann);
	put(out, "metadata", md);
	s = nnew(YN_MAP, line_of(spec, root->line));
	put(s, "selector", nnew(YN_MAP, s->line)); /* every ingress agent */
	servers = nnew(YN_SEQ, line_of(ls, s->line));
	for (int i = 0; i < ls->n; i++) {
		const struct ynode *l = ls->items[i], *tls = ymap_get(l, "tls");
		const char *proto = ymap_str(l, "protocol"), *host = ymap_str(l, "hostname");
		const char *from =
		    ymap_str(ymap_get(ymap_get(l, "allowedRoutes"), "namespaces"), "from");
		const char *mode = ymap_str(tls, "mode");
		int line = line_of(l, servers->line);
		struct ynode *sv = nnew(YN_MAP, line), *port = nnew(YN_MAP, line),
			     *hosts = nnew(YN_SEQ, line);
		char h[400];
		bool term =
		    proto && !strcmp(proto, "HTTPS") && (!mode || !strcmp(mode, "Terminate"));

		put(port, "number", nint(ymap_int(l, "port", 0), line));
		put(port, "name", nstr(ymap_str(l, "name"), line));
		put(port, "protocol", nstr(proto ? proto : "HTTP", line));
		put(sv, "port", port);
		/* All: every namespace; Same, and Selector (not read yet: validate says so), the
		 * Gateway's own */
		snprintf(h, sizeof(h), "%s/%s", from && !strcmp(from, "All") ? "*" : ns,
			 host ? host : "*");
		push(hosts, nstr(h, line));
		put(sv, "hosts", hosts);
		if (tls) {
			const struct ynode *refs = ymap_get(tls, "certificateRefs");
			struct ynode *t = nnew(YN_MAP, line_of(tls, line));

			put(t, "mode", nstr(term ? "SIMPLE" : "PASSTHROUGH", t->line));
			if (term && ynode_is_seq(refs) && refs->n)
				put(t, "credentialName",
				    nstr(ymap_str(refs->items[0], "name"), t->line));
			put(sv, "tls", t);
		}
		push(servers, sv);
	}
	put(s, "servers", servers);
	put(out, "spec", s);
	return out;
}

/* ---------------- HTTPRoute ---------------- */

static struct ynode *strmatch(const char *type, const char *value, int line)
{
	struct ynode *m = nnew(YN_MAP, line);

	put(m, type && !strcmp(type, "RegularExpression") ? "regex" : "exact", nstr(value, line));
	return m;
}

/* name/value lists (headers, queryParams) as Istio's maps of StringMatch */
static struct ynode *named(const struct ynode *list, bool lower)
{
	struct ynode *m = nnew(YN_MAP, line_of(list, 0));

	for (int i = 0; i < list->n; i++) {
		const struct ynode *e = list->items[i];
		char nm[256];

		snprintf(nm, sizeof(nm), "%s", ymap_str(e, "name") ? ymap_str(e, "name") : "");
		for (char *p = nm; lower && *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		put(m, nm,
		    strmatch(ymap_str(e, "type"), ymap_str(e, "value"), line_of(e, m->line)));
	}
	return m;
}

/* HTTPHeaderFilter -> Istio's HeaderOperations */
static struct ynode *header_ops(const struct ynode *f)
{
	static const char *const ops[] = {"set", "add"};
	struct ynode *h = nnew(YN_MAP, line_of(f, 0));
	const struct ynode *rm = ymap_get(f, "remove");

	for (int k = 0; k < 2; k++) {
		const struct ynode *l = ymap_get(f, ops[k]);
		struct ynode *m;

		if (!ynode_is_seq(l))
			continue;
		m = nnew(YN_MAP, line_of(l, h->line));
		for (int i = 0; i < l->n; i++)
			put(m, ymap_str(l->items[i], "name") ? ymap_str(l->items[i], "name") : "",
			    nstr(ymap_str(l->items[i], "value"), line_of(l->items[i], m->line)));
		put(h, ops[k], m);
	}
	if (ynode_is_seq(rm))
		put(h, "remove", copy(rm));
	return h;
}

static char *svc_host(const struct ynode *ref, const char *ns, char *buf, size_t len)
{
	const char *rns = ymap_str(ref, "namespace");

	snprintf(buf, len, "%s.%s.svc.cluster.local",
		 ymap_str(ref, "name") ? ymap_str(ref, "name") : "", rns ? rns : ns);
	return buf;
}

static struct ynode *destination(const struct ynode *ref, const char *ns, int line)
{
	struct ynode *d = nnew(YN_MAP, line);
	char host[400];

	put(d, "host", nstr(svc_host(ref, ns, host, sizeof(host)), line));
	if (ymap_get(ref, "port")) {
		struct ynode *p = nnew(YN_MAP, line);

		put(p, "number", nint(ymap_int(ref, "port", 0), line));
		put(d, "port", p);
	}
	return d;
}

/* The weights of a rule's backendRefs as Istio's percentages (largest remainder). */
static void percents(const struct ynode *refs, int *out)
{
	long sum = 0, given = 0;
	int best;

	for (int i = 0; i < refs->n; i++)
		sum += ymap_int(refs->items[i], "weight", 1);
	for (int i = 0; i < refs->n; i++) {
		out[i] = sum ? (int)(ymap_int(refs->items[i], "weight", 1) * 100 / sum) : 0;
		given += out[i];
	}
	while (sum && given < 100) { /* the rest to the largest remainders, in order */
		long rem = -1;

		best = 0;
		for (int i = 0; i < refs->n; i++) {
			long r = ymap_int(refs->items[i], "weight", 1) * 100 % sum;

			if (r > rem) {
				rem = r;
				best = i;
			}
		}
		out[best]++;
		given++;
	}
}

/* One Istio http route for match m (NULL: the rule has none) of rule; uri_only: the uri
 * match to use instead of m's path (PathPrefix split in two, for ReplacePrefixMatch). */
static struct ynode *http_route(const struct ynode *rule, const struct ynode *m, const char *ns,
				struct ynode *uri, const char *prefix_repl, int prefix_len)
{
	const struct ynode *refs = ymap_get(rule, "backendRefs"),
			   *filters = ymap_get(rule, "filters");
	int line = line_of(m, line_of(rule, 0));
	struct ynode *r = nnew(YN_MAP, line), *ms = nnew(YN_SEQ, line), *mm = nnew(YN_MAP, line);
	struct ynode *hdr = NULL;
	bool redirect = false;

	if (prefix_len) { /* (its precedence is the PathPrefix's: gwapi_rank) */
		char nm[64];

		snprintf(nm, sizeof(nm), "%s%d", RANK_PREFIX, prefix_len);
		put(r, "name", nstr(nm, line));
	}
	if (uri)
		put(mm, "uri", uri);
	if (ynode_is_seq(ymap_get(m, "headers")))
		put(mm, "headers", named(ymap_get(m, "headers"), true));
	if (ynode_is_seq(ymap_get(m, "queryParams")))
		put(mm, "queryParams", named(ymap_get(m, "queryParams"), false));
	if (ymap_str(m, "method")) {
		struct ynode *x = nnew(YN_MAP, line);

		put(x, "exact", nstr(ymap_str(m, "method"), line));
		put(mm, "method", x);
	}
	push(ms, mm);
	put(r, "match", ms);
	for (int i = 0; ynode_is_seq(filters) && i < filters->n; i++) {
		const struct ynode *f = filters->items[i];
		const char *type = ymap_str(f, "type");
		int fl = line_of(f, line);

		if (!type)
			continue;
		if (!strcmp(type, "RequestHeaderModifier") ||
		    !strcmp(type, "ResponseHeaderModifier")) {
			bool req = type[1] == 'e' && type[2] == 'q';

			if (!hdr)
				hdr = nnew(YN_MAP, fl);
			put(hdr, req ? "request" : "response",
			    header_ops(ymap_get(f, req ? "requestHeaderModifier"
						       : "responseHeaderModifier")));
		} else if (!strcmp(type, "RequestRedirect")) {
			const struct ynode *rr = ymap_get(f, "requestRedirect"),
					   *p = ymap_get(rr, "path");
			struct ynode *x = nnew(YN_MAP, fl);

			if (ymap_str(rr, "scheme"))
				put(x, "scheme", nstr(ymap_str(rr, "scheme"), fl));
			if (ymap_str(rr, "hostname"))
				put(x, "authority", nstr(ymap_str(rr, "hostname"), fl));
			if (ymap_get(rr, "port"))
				put(x, "port", nint(ymap_int(rr, "port", 0), fl));
			if (ymap_str(p, "replaceFullPath"))
				put(x, "uri", nstr(ymap_str(p, "replaceFullPath"), fl));
			else if (ymap_str(p, "replacePrefixMatch")) {
				char u[1100];

				/* Istio's marker: the matched prefix replaced (l7route.c) */
				snprintf(u, sizeof(u), "%%PREFIX()%%%s",
					 prefix_repl ? prefix_repl
						     : ymap_str(p, "replacePrefixMatch"));
				put(x, "uri", nstr(u, fl));
			}
			put(x, "redirectCode", nint(ymap_int(rr, "statusCode", 302), fl));
			put(r, "redirect", x);
			redirect = true;
		} else if (!strcmp(type, "URLRewrite")) {
			const struct ynode *uw = ymap_get(f, "urlRewrite"),
					   *p = ymap_get(uw, "path");
			struct ynode *x = nnew(YN_MAP, fl);

			if (ymap_str(uw, "hostname"))
				put(x, "authority", nstr(ymap_str(uw, "hostname"), fl));
			if (ymap_str(p, "replaceFullPath")) {
				struct ynode *re = nnew(YN_MAP, fl);

				/* the whole path, whatever matched (Istio: uriRegexRewrite) */
				put(re, "match", nstr("/.*", fl));
				put(re, "rewrite", nstr(ymap_str(p, "replaceFullPath"), fl));
				put(x, "uriRegexRewrite", re);
			} else if (ymap_str(p, "replacePrefixMatch")) {
				put(x, "uri",
				    nstr(prefix_repl ? prefix_repl
						     : ymap_str(p, "replacePrefixMatch"),
					 fl));
			}
			put(r, "rewrite", x);
		} else if (!strcmp(type, "RequestMirror")) {
			const struct ynode *ref =
			    ymap_get(ymap_get(f, "requestMirror"), "backendRef");
			const char *mns = ymap_str(ref, "namespace");

			if (!mns || !strcmp(mns, ns)) /* (another namespace's: a ReferenceGrant) */
				put(r, "mirror", destination(ref, ns, fl));
		}
	}
	if (hdr)
		put(r, "headers", hdr);
	for (int i = 0; ynode_is_seq(refs) && i < refs->n && !redirect; i++) {
		const char *bns = ymap_str(refs->items[i], "namespace");

		if (bns && strcmp(bns, ns)) {
			/* another namespace's Service needs its ReferenceGrant, which is not read
			 * yet: the rule is refused as an unresolved reference (500) */
			refs = NULL;
			break;
		}
	}
	if (ynode_is_seq(refs) && refs->n && !redirect) {
		struct ynode *dst = nnew(YN_SEQ, line_of(refs, line));
		int *pct = calloc(refs->n, sizeof(int));

		if (!pct)
			abort();
		percents(refs, pct);
		for (int i = 0; i < refs->n; i++) {
			const struct ynode *b = refs->items[i];
			struct ynode *d = nnew(YN_MAP, line_of(b, dst->line));

			put(d, "destination", destination(b, ns, d->line));
			if (refs->n > 1)
				put(d, "weight", nint(pct[i], d->line));
			push(dst, d);
		}
		free(pct);
		put(r, "route", dst);
	} else if (!redirect) { /* no backend: 500, as the spec says */
		struct ynode *dr = nnew(YN_MAP, line);

		put(dr, "status", nint(500, line));
		put(r, "directResponse", dr);
	}
	if (ymap_str(ymap_get(rule, "timeouts"), "request"))
		put(r, "timeout", nstr(ymap_str(ymap_get(rule, "timeouts"), "request"), line));
	return r;
}

/* The routes one HTTPRouteMatch makes. */
static void match_routes(struct ynode *http, const struct ynode *rule, const struct ynode *m,
			 const char *ns)
{
	const struct ynode *path = ymap_get(m, "path"), *filters = ymap_get(rule, "filters");
	const char *type = ymap_str(path, "type") ? ymap_str(path, "type") : "PathPrefix";
	const char *value = ymap_str(path, "value") ? ymap_str(path, "value") : "/";
	const char *repl = NULL;
	int line = line_of(path, line_of(m, line_of(rule, 0)));
	char v[1024], v2[1100], r2[1100];
	struct ynode *u;

	for (int i = 0; ynode_is_seq(filters) && i < filters->n; i++) {
		const struct ynode *f = filters->items[i];
		const struct ynode *p = ymap_get(ymap_get(f, "urlRewrite"), "path");

		if (!p)
			p = ymap_get(ymap_get(f, "requestRedirect"), "path");
		if (ymap_str(p, "replacePrefixMatch"))
			repl = ymap_str(p, "replacePrefixMatch");
	}
	if (strcmp(type, "PathPrefix")) {
		u = strmatch(type, value, line);
		push(http, http_route(rule, m, ns, u, NULL, 0));
		return;
	}
	snprintf(v, sizeof(v), "%s", value);
	if (strlen(v) > 1 && v[strlen(v) - 1] == '/')
		v[strlen(v) - 1] = 0;
	if (!strcmp(v, "/")) {
		u = nnew(YN_MAP, line);
		put(u, "prefix", nstr("/", line));
		push(http, http_route(rule, m, ns, u, NULL, 0));
		return;
	}
	/* a path-segment prefix: /foo holds for /foo and /foo/..., never /foobar */
	u = nnew(YN_MAP, line);
	put(u, "exact", nstr(v, line));
	push(http, http_route(rule, m, ns, u, repl, (int)strlen(v)));
	snprintf(v2, sizeof(v2), "%s/", v);
	if (repl)
		snprintf(r2, sizeof(r2), "%s%s", repl,
			 repl[0] && repl[strlen(repl) - 1] == '/' ? "" : "/");
	u = nnew(YN_MAP, line);
	put(u, "prefix", nstr(v2, line));
	push(http, http_route(rule, m, ns, u, repl ? r2 : NULL, (int)strlen(v)));
}

/* A derived VirtualService's root (its spec to come), named name. */
static struct ynode *vs_root(const struct ynode *root, const char *name, const char *ns)
{
	struct ynode *out = nnew(YN_MAP, root->line);

	put(out, "apiVersion", nstr("networking.istio.io/v1", root->line));
	put(out, "kind", nstr("VirtualService", root->line));
	put(out, "metadata", meta(name, ns, root->line));
	return out;
}

/* A route's Gateway parentRef p as a VirtualService `gateways` entry: the derived Istio
 * Gateway, "ns/NAME-istio-autogenerated-k8s-gateway". */
static void push_gateway(struct ynode *gws, const struct ynode *p, const char *ns, int line)
{
	const char *pns = ymap_str(p, "namespace");
	char b[400];

	snprintf(b, sizeof(b), "%s/%s%s", pns ? pns : ns,
		 ymap_str(p, "name") ? ymap_str(p, "name") : "", GWAPI_SUFFIX);
	push(gws, nstr(b, line_of(p, line)));
}

static struct ynode *derive_httproute(const struct ynode *root, const char *ns)
{
	const struct ynode *spec = ymap_get(root, "spec"), *parents = ymap_get(spec, "parentRefs"),
			   *rules = ymap_get(spec, "rules"), *hn = ymap_get(spec, "hostnames");
	const char *name = ymap_str(ymap_get(root, "metadata"), "name");
	struct ynode *out, *s, *hosts, *gws, *http;
	bool mesh = false;
	int line = line_of(spec, root->line);

	if (!name || !ynode_is_seq(parents))
		return NULL;
	for (int i = 0; i < parents->n; i++) {
		const char *k = ymap_str(parents->items[i], "kind");

		mesh |= k && !strcmp(k, "Service");
	}
	out = vs_root(root, name, ns);
	s = nnew(YN_MAP, line);
	hosts = nnew(YN_SEQ, line);
	gws = nnew(YN_SEQ, line_of(parents, line));
	for (int i = 0; i < parents->n; i++) {
		const struct ynode *p = parents->items[i];
		const char *k = ymap_str(p, "kind");
		char b[400];

		if (mesh && k && !strcmp(k, "Service")) /* GAMMA: mesh traffic to the Service */
			push(hosts, nstr(svc_host(p, ns, b, sizeof(b)), line_of(p, line)));
		else if (!mesh && (!k || !strcmp(k, "Gateway")))
			push_gateway(gws, p, ns, line);
	}
	if (!mesh) {
		for (int i = 0; ynode_is_seq(hn) && i < hn->n; i++)
			push(hosts, copy(hn->items[i]));
		if (!hosts->n)
			push(hosts, nstr("*", line));
	}
	put(s, "hosts", hosts);
	if (gws->n)
		put(s, "gateways", gws);
	else
		ynode_free(gws);
	http = nnew(YN_SEQ, line_of(rules, line));
	for (int i = 0; ynode_is_seq(rules) && i < rules->n; i++) {
		const struct ynode *rule = rules->items[i], *ms = ymap_get(rule, "matches");

		if (!ynode_is_seq(ms) || !ms->n) {
			match_routes(http, rule, NULL, ns);
			continue;
		}
		for (int k = 0; k < ms->n; k++)
			match_routes(http, rule, ms->items[k], ns);
	}
	put(s, "http", http);
	put(out, "spec", s);
	return out;
}

/* ---------------- TCPRoute, TLSRoute ---------------- */

/*
 * A TCPRoute (TLSRoute) as Istio converts it: a VirtualService NAME-tcproute (-tlsroute) bound
 * to its parent Gateways, one tcp (tls) route per rule with the rule's weighted backendRefs;
 * a TLSRoute's hostnames are the VirtualService's hosts and its routes' sniHosts. The Gateway's
 * TCP listeners (TLS ones with mode Passthrough) serve them.
 */
static struct ynode *derive_l4route(const struct ynode *root, const char *ns, bool tls)
{
	const struct ynode *spec = ymap_get(root, "spec"), *parents = ymap_get(spec, "parentRefs"),
			   *rules = ymap_get(spec, "rules"), *hn = ymap_get(spec, "hostnames");
	const char *name = ymap_str(ymap_get(root, "metadata"), "name");
	int line = line_of(spec, root->line);
	struct ynode *out, *s, *hosts, *gws, *routes;
	char full[300];

	if (!name || !ynode_is_seq(parents))
		return NULL;
	snprintf(full, sizeof(full), "%s-%s", name, tls ? "tlsroute" : "tcproute");
	out = vs_root(root, full, ns);
	s = nnew(YN_MAP, line);
	hosts = nnew(YN_SEQ, line);
	for (int i = 0; tls && ynode_is_seq(hn) && i < hn->n; i++)
		push(hosts, copy(hn->items[i]));
	if (!hosts->n)
		push(hosts, nstr("*", line));
	put(s, "hosts", hosts);
	gws = nnew(YN_SEQ, line_of(parents, line));
	for (int i = 0; i < parents->n; i++) {
		const char *k = ymap_str(parents->items[i], "kind");

		if (!k || !strcmp(k, "Gateway"))
			push_gateway(gws, parents->items[i], ns, line);
	}
	put(s, "gateways", gws);
	routes = nnew(YN_SEQ, line_of(rules, line));
	for (int i = 0; ynode_is_seq(rules) && i < rules->n; i++) {
		const struct ynode *rule = rules->items[i], *refs = ymap_get(rule, "backendRefs");
		int rl = line_of(rule, line), pct[64];
		struct ynode *r = nnew(YN_MAP, rl), *dests = nnew(YN_SEQ, rl);

		if (tls) {
			struct ynode *ms = nnew(YN_SEQ, rl), *m = nnew(YN_MAP, rl),
				     *sni = nnew(YN_SEQ, rl);

			for (int k = 0; ynode_is_seq(hn) && k < hn->n; k++)
				push(sni, copy(hn->items[k]));
			if (!sni->n)
				push(sni, nstr("*", rl));
			put(m, "sniHosts", sni);
			push(ms, m);
			put(r, "match", ms);
		}
		if (ynode_is_seq(refs) && refs->n && refs->n <= 64) {
			percents(refs, pct);
			for (int k = 0; k < refs->n; k++) {
				struct ynode *d = nnew(YN_MAP, line_of(refs->items[k], rl));

				put(d, "destination", destination(refs->items[k], ns, d->line));
				if (refs->n > 1)
					put(d, "weight", nint(pct[k], d->line));
				push(dests, d);
			}
		}
		put(r, "route", dests);
		push(routes, r);
	}
	put(s, tls ? "tls" : "tcp", routes);
	put(out, "spec", s);
	return out;
}

struct ynode *gwapi_derive(const struct ynode *root, const char *ns)
{
	const char *api = ymap_str(root, "apiVersion"), *kind = ymap_str(root, "kind");
	size_t gl = strlen(GWAPI_GROUP);

	if (!api || !kind || strncmp(api, GWAPI_GROUP, gl) || api[gl] != '/')
		return NULL;
	if (!strcmp(kind, "Gateway"))
		return derive_gateway(root, ns);
	if (!strcmp(kind, "HTTPRoute"))
		return derive_httproute(root, ns);
	if (!strcmp(kind, "TCPRoute") || !strcmp(kind, "TLSRoute"))
		return derive_l4route(root, ns, !strcmp(kind, "TLSRoute"));
	return NULL;
}

long gwapi_rank(const struct vs_route *r)
{
	const struct http_match *m = r->http && r->http->nmatches ? &r->http->matches[0] : NULL;
	long rank = 0;

	if (!m)
		return 0;
	if (r->name && !strncmp(r->name, RANK_PREFIX, strlen(RANK_PREFIX)))
		rank = (2L << 40) + (atol(r->name + strlen(RANK_PREFIX)) << 24);
	else if (m->uri.kind == SM_EXACT)
		rank = 3L << 40;
	else if (m->uri.kind == SM_PREFIX)
		rank = (2L << 40) + ((long)strlen(m->uri.value ? m->uri.value : "") << 24);
	else if (m->uri.kind == SM_REGEX)
		rank = 1L << 40;
	if (m->method.kind != SM_NONE)
		rank += 1L << 20;
	rank += (long)(m->nheaders & 0xff) << 12;
	rank += m->nquery_params & 0xfff;
	return rank;
}
