// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7route.c: see l7route.h. Istio's translation to Envoy is the reference: routes in order,
 * first match wins; uri exact and regex match the path without its query string, prefix the
 * start of the path; ignoreUriCase for exact and prefix; a header `{}` means present,
 * withoutHeaders inverts; several values of one header are joined with ","; weights per
 * request over their sum.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "l7route.h"

/* ---------------- headers ---------------- */

static char *lowdup(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	for (size_t i = 0; d && i < n; i++)
		d[i] = (char)tolower((unsigned char)s[i]);
	if (d)
		d[n] = 0;
	return d;
}

const char *l7h_get(const struct l7_hdrs *h, const char *name)
{
	for (int i = 0; h && i < h->n; i++)
		if (!strcasecmp(h->v[i].name, name))
			return h->v[i].value;
	return NULL;
}

int l7h_addn(struct l7_hdrs *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
	if (h->n == h->cap) {
		int cap = h->cap ? 2 * h->cap : 16;
		struct l7_hdr *v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n].name = lowdup(name, nlen);
	h->v[h->n].value = strndup(value, vlen);
	if (!h->v[h->n].name || !h->v[h->n].value) {
		free(h->v[h->n].name);
		free(h->v[h->n].value);
		return -1;
	}
	h->n++;
	return 0;
}

int l7h_add(struct l7_hdrs *h, const char *name, const char *value)
{
	return l7h_addn(h, name, strlen(name), value, strlen(value));
}

void l7h_del(struct l7_hdrs *h, const char *name)
{
	int k = 0;

	for (int i = 0; i < h->n; i++) {
		if (!strcasecmp(h->v[i].name, name)) {
			free(h->v[i].name);
			free(h->v[i].value);
			continue;
		}
		h->v[k++] = h->v[i];
	}
	h->n = k;
}

int l7h_set(struct l7_hdrs *h, const char *name, const char *value)
{
	l7h_del(h, name);
	return l7h_add(h, name, value);
}

void l7h_free(struct l7_hdrs *h)
{
	for (int i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].value);
	}
	free(h->v);
	memset(h, 0, sizeof(*h));
}

void l7h_apply(struct l7_hdrs *h, const struct header_ops *ops)
{
	if (!ops)
		return;
	for (int i = 0; i < ops->nremove; i++)
		l7h_del(h, ops->remove[i]);
	for (int i = 0; i < ops->set.n; i++)
		l7h_set(h, ops->set.v[i].key, ops->set.v[i].val);
	for (int i = 0; i < ops->add.n; i++)
		l7h_add(h, ops->add.v[i].key, ops->add.v[i].val);
}

/* Every value of a header joined with "," (Envoy's rule for matching), heap; NULL if absent. */
static char *joined_values(const struct l7_hdrs *h, const char *name)
{
	size_t len = 0;
	char *out = NULL;
	int n = 0;

	for (int i = 0; h && i < h->n; i++)
		if (!strcasecmp(h->v[i].name, name)) {
			len += strlen(h->v[i].value) + 1;
			n++;
		}
	if (!n || !(out = calloc(1, len + 1)))
		return NULL;
	for (int i = 0, k = 0; i < h->n; i++)
		if (!strcasecmp(h->v[i].name, name)) {
			if (k++)
				strcat(out, ",");
			strcat(out, h->v[i].value);
		}
	return out;
}

/* ---------------- matching ---------------- */

static bool sm_match(const struct str_match *sm, const struct bm_regex *re, const char *v,
		     size_t vlen, bool icase)
{
	size_t pl;

	switch (sm->kind) {
	case SM_NONE:
	case SM_ANY:
		return true;
	case SM_EXACT:
		pl = strlen(sm->value);
		return pl == vlen &&
		       (icase ? !strncasecmp(v, sm->value, vlen) : !memcmp(v, sm->value, vlen));
	case SM_PREFIX:
		pl = strlen(sm->value);
		return pl <= vlen &&
		       (icase ? !strncasecmp(v, sm->value, pl) : !memcmp(v, sm->value, pl));
	case SM_REGEX:
		return re && bm_regex_full(re, v, vlen);
	}
	return false;
}

/* The value of query parameter name in path ("?a=1&b=2"), heap ("" for "?a"), NULL if absent. */
static char *query_param(const char *path, const char *name)
{
	const char *q = strchr(path, '?');
	size_t nl = strlen(name);

	for (const char *p = q ? q + 1 : NULL; p && *p;) {
		const char *end = p + strcspn(p, "&#");
		const char *eq = memchr(p, '=', end - p);
		size_t kl = eq ? (size_t)(eq - p) : (size_t)(end - p);

		if (kl == nl && !memcmp(p, name, nl))
			return eq ? strndup(eq + 1, end - eq - 1) : strdup("");
		p = *end == '&' ? end + 1 : NULL;
	}
	return NULL;
}

static bool named_ok(const struct named_match *nm, const struct bm_regex *re, const char *val)
{
	if (!val)
		return false;
	return nm->m.kind == SM_ANY || sm_match(&nm->m, re, val, strlen(val), false);
}

bool l7_match(const struct l7_match *lm, const struct l7_req_view *r)
{
	const struct http_match *m = lm->m;
	size_t plen = strcspn(r->path, "?");

	if (m->ngateways) {
		/* the match's own gateways: mesh traffic, or the Gateway this request came in */
		bool here = false;

		for (int i = 0; i < m->ngateways && !here; i++)
			here = lm->gw ? rs_gw_ref(m->gateways[i], lm->vs_ns ? lm->vs_ns : "",
						  lm->gw->ns, lm->gw->name)
				      : !strcmp(m->gateways[i], "mesh");
		if (!here)
			return false;
	}
	if (m->port && m->port != r->port)
		return false;
	if (m->source_namespace && (!r->src || strcmp(r->src->ns, m->source_namespace)))
		return false;
	if (m->source_labels.n && (!r->src || !kv_match(&m->source_labels, &r->src->labels)))
		return false;
	if (m->uri.kind == SM_PREFIX
		? !sm_match(&m->uri, lm->uri, r->path, strlen(r->path), m->ignore_uri_case)
		: !sm_match(&m->uri, lm->uri, r->path, plen,
			    m->ignore_uri_case && m->uri.kind == SM_EXACT))
		return false;
	if (!sm_match(&m->scheme, lm->scheme, r->scheme, strlen(r->scheme), false) ||
	    !sm_match(&m->method, lm->method, r->method, strlen(r->method), false) ||
	    !sm_match(&m->authority, lm->authority, r->authority ? r->authority : "",
		      r->authority ? strlen(r->authority) : 0, false))
		return false;
	for (int i = 0; i < m->nheaders; i++) {
		char *v = joined_values(r->h, m->headers[i].name);
		bool ok = named_ok(&m->headers[i], lm->headers ? lm->headers[i] : NULL, v);

		free(v);
		if (!ok)
			return false;
	}
	for (int i = 0; i < m->nwithout_headers; i++) {
		char *v = joined_values(r->h, m->without_headers[i].name);
		bool ok = named_ok(&m->without_headers[i], lm->without ? lm->without[i] : NULL, v);

		free(v);
		if (ok)
			return false;
	}
	for (int i = 0; i < m->nquery_params; i++) {
		char *v = query_param(r->path, m->query_params[i].name);
		bool ok = named_ok(&m->query_params[i], lm->query ? lm->query[i] : NULL, v);

		free(v);
		if (!ok)
			return false;
	}
	return true;
}

static const struct l7_match *any_match(const struct l7_match *ms, int n,
					const struct l7_req_view *r)
{
	static const struct http_match none;
	static const struct l7_match all = {.m = &none};

	if (!n)
		return &all;
	for (int i = 0; i < n; i++)
		if (l7_match(&ms[i], r))
			return &ms[i];
	return NULL;
}

const struct l7_match *l7_route_matched(const struct l7_route *rt, const struct l7_req_view *r)
{
	const struct l7_match *m;

	if (rt->npms && !any_match(rt->pms, rt->npms, r))
		return NULL; /* the delegating root route's matches */
	m = any_match(rt->ms, rt->nms, r);
	/* a delegated route without matches of its own rewrites as its root's match */
	if (m && !rt->nms && rt->npms)
		return any_match(rt->pms, rt->npms, r);
	return m;
}

int l7_route_find(const struct l7_svc *s, const struct l7_req_view *r)
{
	if (!s->vs)
		return -1;
	for (int i = 0; i < s->nroutes; i++)
		if (l7_route_matched(&s->routes[i], r))
			return i;
	return -1;
}

static unsigned be16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* The SNI of a ClientHello (RFC 8446 4.1.2, RFC 6066 3): every length checked against the
 * record, which is all that is read. */
int l7_tls_sni(const uint8_t *p, size_t n, char *sni, size_t len)
{
	size_t rl, i, end, hl;

	sni[0] = 0;
	if (n >= 1 && p[0] != 0x16)
		return -1; /* not a handshake record */
	if (n < 5)
		return 0;
	rl = be16(p + 3);
	if (rl < 4 || rl > 16384)
		return -1;
	if (n < 5 + rl)
		return 0;
	p += 5;
	if (p[0] != 1)
		return -1; /* not a ClientHello */
	hl = (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	end = 4 + (hl < rl - 4 ? hl : rl - 4);
	i = 4 + 2 + 32; /* version, random */
	if (i + 1 > end)
		return -1;
	i += 1 + p[i]; /* session id */
	if (i + 2 > end)
		return -1;
	i += 2 + be16(p + i); /* cipher suites */
	if (i + 1 > end)
		return -1;
	i += 1 + p[i]; /* compression methods */
	if (i + 2 > end)
		return 1; /* no extensions */
	end = i + 2 + be16(p + i) < end ? i + 2 + be16(p + i) : end;
	for (i += 2; i + 4 <= end;) {
		unsigned type = be16(p + i), el = be16(p + i + 2);
		size_t e = i + 4;

		if (e + el > end)
			break;
		if (type == 0 && el >= 5 && p[e + 2] == 0) { /* server_name, host_name */
			size_t nl = be16(p + e + 3);

			if (e + 5 + nl <= e + el && nl < len) {
				memcpy(sni, p + e + 5, nl);
				sni[nl] = 0;
			}
			return 1;
		}
		i = e + el;
	}
	return 1;
}

static int hexv(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

void l7_normalize_path(char *path)
{
	char *q = strchr(path, '?'), *w = path, *out, *o;
	size_t n = q ? (size_t)(q - path) : strlen(path), olen;
	char *tail = q ? strdup(q) : NULL;

	if (path[0] != '/')
		goto done;
	/* percent-decoding of unreserved characters, other escapes in upper case */
	for (size_t i = 0; i < n; i++) {
		int h, l;

		if (path[i] == '%' && i + 2 < n && (h = hexv(path[i + 1])) >= 0 &&
		    (l = hexv(path[i + 2])) >= 0) {
			char c = (char)(h * 16 + l);

			if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			    c == '~') {
				*w++ = c;
			} else {
				*w++ = '%';
				*w++ = (char)toupper((unsigned char)path[i + 1]);
				*w++ = (char)toupper((unsigned char)path[i + 2]);
			}
			i += 2;
		} else {
			*w++ = path[i];
		}
	}
	*w = 0;
	/* RFC 3986 5.2.4 remove_dot_segments, over whole segments */
	olen = strlen(path);
	out = malloc(olen + 2);
	if (!out)
		goto done;
	o = out;
	for (const char *s = path; *s;) {
		const char *e;
		size_t sl;

		s++; /* the '/' */
		e = strchr(s, '/');
		sl = e ? (size_t)(e - s) : strlen(s);
		if (sl == 1 && s[0] == '.') {
			if (!e)
				*o++ = '/';
		} else if (sl == 2 && s[0] == '.' && s[1] == '.') {
			while (o > out && *--o != '/')
				;
			if (!e)
				*o++ = '/';
		} else {
			*o++ = '/';
			memcpy(o, s, sl);
			o += sl;
		}
		s += sl;
	}
	if (o == out)
		*o++ = '/';
	*o = 0;
	memcpy(path, out, (size_t)(o - out) + 1);
	free(out);
done:
	if (tail) {
		memmove(path + strlen(path), tail, strlen(tail) + 1);
		free(tail);
	}
}

/* Istio's sniHosts: exact (case-insensitive), "*" any, "*.example.com" any name below it */
static bool sni_match(const char *pat, const char *sni)
{
	size_t pl = strlen(pat), sl = strlen(sni);

	if (!strcmp(pat, "*"))
		return sl > 0;
	if (pl > 1 && pat[0] == '*' && pat[1] == '.')
		return sl > pl - 1 && !strcasecmp(sni + sl - (pl - 1), pat + 1);
	return !strcasecmp(pat, sni);
}

int l7_tls_route_find(const struct l7_svc *s, const char *sni, int port,
		      const struct workload_obj *src)
{
	for (int i = 0; s->vs && sni && i < s->nroutes; i++) {
		const struct vs_route *r = s->routes[i].r;

		for (int k = 0; r && k < r->nl4; k++) {
			const struct l4_match *m = &r->l4[k];
			bool ok = false;

			for (int h = 0; h < m->nsni_hosts && !ok; h++)
				ok = sni_match(m->sni_hosts[h], sni);
			if (!ok || (m->port && m->port != port))
				continue;
			if (m->source_labels.n &&
			    (!src || !kv_match(&m->source_labels, &src->labels)))
				continue;
			if (m->source_namespace && (!src || strcmp(m->source_namespace, src->ns)))
				continue;
			return i;
		}
	}
	return -1;
}

int l7_tcp_route_find(const struct l7_svc *s, int port, const struct workload_obj *src)
{
	for (int i = 0; s->vs && i < s->nroutes; i++) {
		const struct vs_route *r = s->routes[i].r;

		if (!r || r->kind != ROUTE_TCP)
			continue;
		if (!r->nl4)
			return i;
		for (int k = 0; k < r->nl4; k++) {
			const struct l4_match *m = &r->l4[k];

			if (m->port && m->port != port)
				continue;
			/* on a gateway Istio matches the port (and gateways) only: the source
			 * fields are a sidecar's; src NULL: they are not read */
			if (src && m->source_labels.n && !kv_match(&m->source_labels, &src->labels))
				continue;
			if (src && m->source_namespace && strcmp(m->source_namespace, src->ns))
				continue;
			return i;
		}
	}
	return -1;
}

const struct l7_dest *l7_pick_dest(const struct l7_route *rt, uint32_t rnd)
{
	uint32_t x;

	if (!rt->ndests || !rt->total)
		return NULL;
	x = rnd % rt->total;
	for (int i = 0; i < rt->ndests; i++) {
		if (x < rt->dests[i].weight)
			return &rt->dests[i];
		x -= rt->dests[i].weight;
	}
	return &rt->dests[rt->ndests - 1];
}

/* ---------------- endpoints ---------------- */

static uint64_t fnv64(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

uint64_t l7_hash_key(const struct traffic_policy *tp, const struct l7_req_view *r, bool *have)
{
	const uint64_t seed = 1469598103934665603ULL;
	char *v = NULL;
	uint64_t h = 0;

	*have = false;
	if (!tp || !tp->lb_hash)
		return 0;
	if (tp->hash_header && (v = joined_values(r->h, tp->hash_header))) {
		h = fnv64(v, strlen(v), seed);
		*have = true;
	} else if (tp->hash_query && (v = query_param(r->path, tp->hash_query))) {
		h = fnv64(v, strlen(v), seed);
		*have = true;
	} else if (tp->hash_cookie) {
		const char *ck = l7h_get(r->h, "cookie");
		size_t nl = strlen(tp->hash_cookie);

		for (const char *p = ck; p && *p;) {
			while (*p == ' ')
				p++;
			if (!strncmp(p, tp->hash_cookie, nl) && p[nl] == '=') {
				const char *val = p + nl + 1;
				size_t vl = strcspn(val, ";");

				if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
					val++; /* a quoted value (as Envoy sets it): its contents */
					vl -= 2;
				}
				h = fnv64(val, vl, seed);
				*have = true;
				break;
			}
			p = strchr(p, ';');
			p = p ? p + 1 : NULL;
		}
		if (!*have && r->gen_cookie) {
			h = fnv64(r->gen_cookie, strlen(r->gen_cookie), seed);
			*have = true;
		}
	} else if (tp->lb_hash_source_ip && r->src_ip) {
		h = fnv64(r->src_ip, 4, seed);
		*have = true;
	}
	free(v);
	return mix64(h);
}

/* Consistent hashing as a ring of 160 points per endpoint: removing one endpoint moves only
 * the keys that were on its points. The ring is computed per pick from the endpoint list
 * (small clusters; no state to share between workers). */
static int ring_pick(const struct l7_cluster *cl, uint64_t key,
		     bool (*healthy)(void *, const struct l7_ep *), void *arg)
{
	uint64_t best = UINT64_MAX, first = UINT64_MAX;
	int best_i = -1, first_i = -1;

	for (int i = 0; i < cl->n; i++) {
		if (healthy && !healthy(arg, &cl->eps[i]))
			continue;
		for (int v = 0; v < 160; v++) {
			uint8_t buf[8] = {cl->eps[i].addr[0],
					  cl->eps[i].addr[1],
					  cl->eps[i].addr[2],
					  cl->eps[i].addr[3],
					  (uint8_t)(cl->eps[i].port >> 8),
					  (uint8_t)cl->eps[i].port,
					  (uint8_t)v,
					  0x5a};
			uint64_t p = mix64(fnv64(buf, sizeof(buf), 1469598103934665603ULL));

			if (p >= key && p < best) {
				best = p;
				best_i = i;
			}
			if (p < first) {
				first = p;
				first_i = i;
			}
		}
	}
	return best_i >= 0 ? best_i : first_i; /* past the last point: wrap around */
}

static uint32_t next_rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

int l7_pick_ep(struct l7_cluster *cl, const struct l7_req_view *r, uint32_t rnd, int avoid,
	       bool (*healthy)(void *arg, const struct l7_ep *e), void *arg)
{
	int ok[256], nok = 0, pick;
	uint32_t s = rnd ? rnd : 0x9e3779b9u;
	bool have;
	uint64_t key;

	for (int i = 0; i < cl->n && nok < 256; i++)
		if ((!healthy || healthy(arg, &cl->eps[i])) && i != avoid)
			ok[nok++] = i;
	if (!nok && avoid >= 0 && avoid < cl->n && (!healthy || healthy(arg, &cl->eps[avoid])))
		ok[nok++] = avoid; /* nobody else: the same host again */
	if (!nok) {
		/* every host ejected: Envoy's panic mode when minHealthPercent says so */
		if (!cl->pol.min_health_pct || !cl->n)
			return -1;
		return (int)(next_rnd(&s) % cl->n);
	}
	key = l7_hash_key(cl->tp, r, &have);
	if (have) {
		pick = ring_pick(cl, key, healthy, arg);
		if (pick >= 0 && pick != avoid)
			return pick;
	}
	switch (cl->lb) {
	case BM_LB_ROUND_ROBIN:
		return ok[__atomic_fetch_add(&cl->rr, 1, __ATOMIC_RELAXED) % nok];
	case BM_LB_RANDOM:
	case BM_LB_HASH_SRC_IP: /* no address: random */
		return ok[next_rnd(&s) % nok];
	default: { /* LEAST_REQUEST: the less busy of two random choices (Envoy's default) */
		int a = ok[next_rnd(&s) % nok], b = ok[next_rnd(&s) % nok];

		return __atomic_load_n(&cl->eps[b].active, __ATOMIC_RELAXED) <
			       __atomic_load_n(&cl->eps[a].active, __ATOMIC_RELAXED)
			   ? b
			   : a;
	}
	}
}

/* ---------------- rewrite, redirect ---------------- */

char *l7_rewrite_path(const struct l7_route *rt, const struct l7_match *matched, const char *path)
{
	const struct http_rewrite *rw;
	size_t plen = strcspn(path, "?");
	char *out;

	if (!rt->h || !rt->h->has_rewrite)
		return NULL;
	rw = &rt->h->rewrite;
	if (rw->regex_match && rt->rewrite_re) {
		char *p = strndup(path, plen), *np;

		if (!p)
			return NULL;
		np = bm_regex_replace(rt->rewrite_re, p, rw->regex_rewrite);
		free(p);
		if (!np)
			return NULL;
		if (asprintf(&out, "%s%s", np, path + plen) < 0)
			out = NULL;
		free(np);
		return out;
	}
	if (!rw->uri)
		return NULL;
	if (matched && matched->m && matched->m->uri.kind == SM_PREFIX) {
		size_t pl = strlen(matched->m->uri.value);

		if (asprintf(&out, "%s%s", rw->uri, path + (pl <= strlen(path) ? pl : 0)) < 0)
			return NULL;
		return out;
	}
	if (asprintf(&out, "%s%s", rw->uri, path + plen) < 0) /* the path, the query kept */
		return NULL;
	return out;
}

char *l7_redirect_location(const struct l7_route *rt, const struct l7_req_view *r, int *status)
{
	const struct http_redirect *rd = &rt->h->redirect;
	const char *scheme = rd->scheme ? rd->scheme : r->scheme;
	const char *auth = rd->authority ? rd->authority : (r->authority ? r->authority : "");
	size_t hl = strcspn(auth, ":");
	char port[16] = "", *out;

	*status = rd->code ? rd->code : 301;
	if (rd->port)
		snprintf(port, sizeof(port), ":%d", rd->port);
	else if (rd->derive_port_from_request && auth[hl] == ':')
		snprintf(port, sizeof(port), "%s", auth + hl);
	else if (!rd->authority && auth[hl] == ':')
		snprintf(port, sizeof(port), "%s", auth + hl); /* the request's authority, whole */
	if (rd->uri && !strncmp(rd->uri, L7_PREFIX_MARK, strlen(L7_PREFIX_MARK))) {
		/* Istio's prefix redirect (the Gateway API's ReplacePrefixMatch): the matched
		 * prefix replaced, the rest of the path and the query kept */
		const struct l7_match *m = l7_route_matched(rt, r);
		const char *rest = rd->uri + strlen(L7_PREFIX_MARK), *tail = "";

		if (m && m->m->uri.kind == SM_PREFIX && m->m->uri.value &&
		    !strncmp(r->path, m->m->uri.value, strlen(m->m->uri.value)))
			tail = r->path + strlen(m->m->uri.value);
		else if (strchr(r->path, '?'))
			tail = strchr(r->path, '?');
		if (asprintf(&out, "%s://%.*s%s%s%s", scheme, (int)hl, auth, port, rest, tail) < 0)
			return NULL;
		return out;
	}
	if (asprintf(&out, "%s://%.*s%s%s", scheme, (int)hl, auth, port,
		     rd->uri ? rd->uri : r->path) < 0)
		return NULL;
	return out;
}

/* ---------------- retries ---------------- */

void l7_retry_on_parse(const char *s, struct l7_retry_policy *p)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {{"5xx", RO_5XX},
		     {"gateway-error", RO_GATEWAY},
		     {"reset", RO_RESET},
		     {"reset-before-request", RO_RESET_BEFORE_REQUEST},
		     {"connect-failure", RO_CONNECT_FAILURE},
		     {"retriable-4xx", RO_RETRIABLE_4XX},
		     {"refused-stream", RO_REFUSED_STREAM},
		     {"retriable-status-codes", RO_RETRIABLE_CODES},
		     {"cancelled", RO_GRPC_CANCELLED},
		     {"deadline-exceeded", RO_GRPC_DEADLINE},
		     {"internal", RO_GRPC_INTERNAL},
		     {"resource-exhausted", RO_GRPC_RESOURCE},
		     {"unavailable", RO_GRPC_UNAVAILABLE},
		     {"http3-post-connect-failure", RO_HTTP3_POST_CONNECT},
		     {"envoy-ratelimited", RO_ENVOY_RATELIMITED}};

	for (const char *c = s; c && *c;) {
		size_t l = strcspn(c, ",");
		const char *t = c;

		while (l && *t == ' ') {
			t++;
			l--;
		}
		while (l && t[l - 1] == ' ')
			l--;
		size_t nd = 0;

		while (nd < l && isdigit((unsigned char)t[nd]))
			nd++;
		if (l && nd == l) {
			/* Istio: a number is a retriable status code */
			if (p->ncodes < L7_MAX_RETRY_CODES)
				p->codes[p->ncodes++] = atoi(t);
			p->on |= RO_RETRIABLE_CODES;
		}
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].name) == l && !strncmp(names[i].name, t, l))
				p->on |= names[i].bit;
		c += strcspn(c, ",");
		if (*c == ',')
			c++;
	}
}

#define ISTIO_DEFAULT_RETRY_ON "connect-failure,refused-stream,unavailable,cancelled,503"

void l7_retry_policy(const struct l7_route *rt, struct l7_retry_policy *p)
{
	const struct http_retry *r = rt && rt->h && rt->h->has_retries ? &rt->h->retries : NULL;

	memset(p, 0, sizeof(*p));
	p->attempts = r ? r->attempts : 2;
	p->per_try_timeout_ms = r && r->per_try_timeout_ms > 0 ? r->per_try_timeout_ms : 0;
	l7_retry_on_parse(r && r->retry_on && *r->retry_on ? r->retry_on : ISTIO_DEFAULT_RETRY_ON,
			  p);
}

bool l7_should_retry(const struct l7_retry_policy *p, const struct l7_try_result *r)
{
	if (r->connect_failed)
		return p->on & (RO_CONNECT_FAILURE | RO_5XX | RO_GATEWAY | RO_RESET);
	if (r->refused_stream)
		return p->on & (RO_REFUSED_STREAM | RO_5XX);
	if (r->reset)
		return p->on & (RO_RESET | RO_5XX | RO_GATEWAY);
	if (r->status >= 500 && (p->on & RO_5XX))
		return true;
	if ((r->status == 502 || r->status == 503 || r->status == 504) && (p->on & RO_GATEWAY))
		return true;
	if (r->status == 409 && (p->on & RO_RETRIABLE_4XX))
		return true;
	if (p->on & RO_RETRIABLE_CODES)
		for (int i = 0; i < p->ncodes; i++)
			if (p->codes[i] == r->status)
				return true;
	switch (r->grpc_status) {
	case 1:
		return p->on & RO_GRPC_CANCELLED;
	case 4:
		return p->on & RO_GRPC_DEADLINE;
	case 8:
		return p->on & RO_GRPC_RESOURCE;
	case 13:
		return p->on & RO_GRPC_INTERNAL;
	case 14:
		return p->on & RO_GRPC_UNAVAILABLE;
	}
	return false;
}

uint64_t l7_backoff_ms(int n, uint32_t rnd)
{
	/* Envoy's JitteredExponentialBackOffStrategy: the multiplier stops growing once the
	 * base back-off passes the cap, so it cannot overflow */
	uint64_t mult = 1, base;

	for (int i = 1; i < n && mult * L7_BACKOFF_BASE_MS <= L7_BACKOFF_MAX_MS; i++)
		mult = 2 * mult + 1;
	base = mult * L7_BACKOFF_BASE_MS;
	return rnd % base < L7_BACKOFF_MAX_MS ? rnd % base : L7_BACKOFF_MAX_MS;
}

/* ---------------- faults ---------------- */

bool l7_fault_delay(const struct l7_route *rt, double rnd, int64_t *ms)
{
	const struct http_fault *f = rt && rt->h && rt->h->has_fault ? &rt->h->fault : NULL;

	if (!f || !f->delay || f->delay_ms < 0 || rnd * 100.0 >= f->delay_pct)
		return false;
	*ms = f->delay_ms;
	return true;
}

int l7_grpc_code(const char *name)
{

	for (int i = 0; name && grpc_status_names[i]; i++)
		if (!strcmp(name, grpc_status_names[i]))
			return i;
	if (name && isdigit((unsigned char)name[0]))
		return atoi(name);
	return -1;
}

bool l7_fault_abort(const struct l7_route *rt, double rnd, int *status, int *grpc)
{
	const struct http_fault *f = rt && rt->h && rt->h->has_fault ? &rt->h->fault : NULL;

	if (!f || !f->abort || rnd * 100.0 >= f->abort_pct)
		return false;
	*status = f->abort_status;
	*grpc = l7_grpc_code(f->abort_grpc);
	return *status || *grpc >= 0;
}
