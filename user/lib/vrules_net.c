// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * vrules_net.c: Istio's own validation of VirtualService and DestinationRule (pkg/config/
 * validation in istio/istio: the rules were taken from there, the code is ours), on objects
 * the schema pass found well typed; and the notices for the fields of these kinds bpfmesh
 * accepts but does not act on. Called by validate.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "regex.h"
#include "vcore.h"

/* ---------------- rules: VirtualService ---------------- */

/* A Destination (host, subset, port) at path. */
static void check_dest(struct vctx *v, const struct ynode *dest, const char *path)
{
	const char *host = ymap_str(dest, "host"), *subset = ymap_str(dest, "subset");
	char p[PATHMAX], why[320];

	pjoin(p, path, "host");
	if (!host)
		vctx_err(v, dest, p, "required");
	else if (strcmp(host, "*") == 0)
		vctx_err(v, g(dest, "host"), p, "invalid destination host *");
	else if (!valid_wildcard_domain(host, why, sizeof(why)))
		vctx_err(v, g(dest, "host"), p, "%s", why);
	pjoin(p, path, "subset");
	if (subset && !dns_label(subset, true))
		vctx_err(v, g(dest, "subset"), p, "subset name is invalid: %s", subset);
}

/* The required `destination` of a route destination or mirror policy at path. */
static void check_destination(struct vctx *v, const struct ynode *owner, const char *path)
{
	char p[PATHMAX];

	pjoin(p, path, "destination");
	if (!has(owner, "destination"))
		vctx_err(v, owner, p, "required");
	else
		check_dest(v, g(owner, "destination"), p);
}

/*
 * Weights are relative (share = weight / sum) and an unset weight is 0, so Istio only
 * rejects negative weights and several destinations that add up to nothing.
 */
static void check_route_dests(struct vctx *v, const struct ynode *route, const char *path)
{
	const struct ynode *l = g(route, "route");
	int64_t total = 0;
	int unset = 0;
	char p[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(l); i++) {
		const struct ynode *w = g(l->items[i], "weight");
		int64_t x = 0;

		pidx(p, pjoin(q, path, "route"), i);
		check_destination(v, l->items[i], p);
		if (!w)
			unset++;
		else if (ynode_int(w, &x) == 0 && x < 0)
			vctx_err(v, w, pjoin(q, p, "weight"), "must not be negative");
		if (x > 0)
			total += x;
	}
	pjoin(p, path, "route");
	if (count(l) > 1 && total == 0)
		vctx_err(v, l, p,
			 "all weights are 0 (an unset weight counts as 0): at least one of "
			 "several destinations needs a weight above 0");
	else if (count(l) > 1 && unset)
		vctx_warn(v, l, p,
			  "%d destination(s) without a weight get no traffic (an unset "
			  "weight counts as 0)",
			  unset);
}

static bool header_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!is_alnum(*s, true) && *s != '-' && *s != '_')
			return false;
	return true;
}

/* Istio compiles every regex (Go's regexp: RE2 syntax) and rejects what does not compile. */
static void check_regex(struct vctx *v, const struct ynode *at, const char *path, const char *re)
{
	struct bm_regex *r;
	char err[256];

	r = bm_regex_new(re, false, err, sizeof(err));
	if (!r)
		vctx_err(v, at, path,
			 "%s; Istio uses RE2 style regex-based match "
			 "(https://github.com/google/re2/wiki/Syntax)",
			 err);
	bm_regex_free(r);
}

static void check_strmatch(struct vctx *v, const struct ynode *m, const char *path)
{
	const char *prefix = ymap_str(m, "prefix"), *regex = ymap_str(m, "regex");
	int set = has(m, "exact") + has(m, "prefix") + has(m, "regex");

	if (set > 1)
		vctx_err(v, m, path, "only one of exact, prefix or regex may be set");
	else if (prefix && !*prefix)
		vctx_err(v, g(m, "prefix"), path, "prefix string match should not be empty");
	else if (regex && !*regex)
		vctx_err(v, g(m, "regex"), path, "regex string match should not be empty");
	else if (regex && strlen(regex) > 1024)
		vctx_err(v, g(m, "regex"), path, "regex is too large, max length allowed is 1024");
	else if (regex)
		check_regex(v, g(m, "regex"), path, regex);
}

static void check_header_matches(struct vctx *v, const struct ynode *m, const char *key,
				 const char *path, bool to_gateway)
{
	const struct ynode *h = g(m, key);
	char p[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(h); i++) {
		const char *name = h->pairs[i].key;

		pkey(p, pjoin(q, path, key), name);
		if (strncmp(name, "@request.auth.claims", 20) == 0) {
			if (!to_gateway)
				vctx_err(v, h->pairs[i].val, p,
					 "JWT claim based routing is only "
					 "supported for gateways");
		} else if (!header_name_ok(name)) {
			vctx_err(v, h->pairs[i].val, p, "header name %s is not a valid header name",
				 name);
		}
		check_strmatch(v, h->pairs[i].val, p);
	}
}

static void check_http_match(struct vctx *v, const struct ynode *m, const char *path,
			     bool to_gateway)
{
	static const char *const strm[] = {"uri", "scheme", "method", "authority", NULL};
	const struct ynode *qp = g(m, "queryParams");
	const char *sns = ymap_str(m, "sourceNamespace");
	char p[PATHMAX], q[PATHMAX];

	check_header_matches(v, m, "headers", path, to_gateway);
	check_header_matches(v, m, "withoutHeaders", path, to_gateway);
	for (int i = 0; strm[i]; i++)
		if (g(m, strm[i]))
			check_strmatch(v, g(m, strm[i]), pjoin(p, path, strm[i]));
	for (int i = 0; i < count(qp); i++)
		check_strmatch(v, qp->pairs[i].val,
			       pkey(p, pjoin(q, path, "queryParams"), qp->pairs[i].key));
	if (sns && !dns_label(sns, true))
		vctx_err(v, g(m, "sourceNamespace"), pjoin(p, path, "sourceNamespace"),
			 "sourceNamespace match %s is invalid", sns);
	check_labels(v, g(m, "sourceLabels"), pjoin(p, path, "sourceLabels"));
	check_gateway_names(v, g(m, "gateways"), pjoin(p, path, "gateways"));
}

/* Envoy's retry_on tokens, plus any HTTP status code Go's net/http knows. */
static bool retry_on_ok(const char *tok, size_t len)
{
	static const char *const policies[] = {"5xx",
					       "gateway-error",
					       "reset",
					       "reset-before-request",
					       "connect-failure",
					       "retriable-4xx",
					       "refused-stream",
					       "retriable-status-codes",
					       "retriable-headers",
					       "envoy-ratelimited",
					       "http3-post-connect-failure",
					       "cancelled",
					       "deadline-exceeded",
					       "internal",
					       "resource-exhausted",
					       "unavailable",
					       NULL};
	static const int ranges[][2] = {{100, 103}, {200, 208}, {226, 226}, {300, 305},
					{307, 308}, {400, 418}, {421, 426}, {428, 429},
					{431, 431}, {451, 451}, {500, 508}, {510, 511}};
	char buf[64];
	int code;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, tok, len);
	buf[len] = 0;
	if (in_strs(buf, policies))
		return true;
	if (!all_digits(buf, len))
		return false;
	code = atoi(buf);
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if (code >= ranges[i][0] && code <= ranges[i][1])
			return true;
	return false;
}

static void check_retries(struct vctx *v, const struct ynode *r, const char *path)
{
	int64_t attempts = ymap_int(r, "attempts", 0);
	const char *on = ymap_str(r, "retryOn");

	if (attempts < 0)
		vctx_err(v, g(r, "attempts"), path, "attempts cannot be negative");
	else if (attempts == 0 &&
		 (has(r, "perTryTimeout") || has(r, "retryOn") || has(r, "retryRemoteLocalities")))
		vctx_err(v, r, path,
			 "http retry policy configured when attempts are set to 0 (disabled)");
	for (const char *t = on; t && *t;) {
		size_t len = strcspn(t, ",");

		if (!retry_on_ok(t, len))
			vctx_err(v, g(r, "retryOn"), path, "\"%.*s\" is not a valid retryOn policy",
				 (int)len, t);
		t += len + (t[len] == ',');
	}
}

static void check_fault(struct vctx *v, const struct ynode *f, const char *path)
{
	const struct ynode *abort = g(f, "abort"), *delay = g(f, "delay");
	char p[PATHMAX];

	if (!abort && !delay)
		vctx_err(v, f, path, "HTTP fault injection must have an abort and/or a delay");
	if (abort) {
		int64_t st = ymap_int(abort, "httpStatus", 0);

		pjoin(p, path, "abort");
		check_percentage(v, abort, p);
		if (has(abort, "httpStatus") && (st < 200 || st > 600))
			vctx_err(v, g(abort, "httpStatus"), p,
				 "HTTP status %lld is not in range 200-599", (long long)st);
		else if (has(abort, "grpcStatus") && !in_strs(ymap_str(abort, "grpcStatus"), grpc_status_names))
			vctx_err(v, g(abort, "grpcStatus"), p,
				 "gRPC status \"%s\" is not supported",
				 ymap_str(abort, "grpcStatus"));
		else if (has(abort, "http2Error"))
			vctx_err(v, g(abort, "http2Error"), p,
				 "HTTP/2 abort fault injection not supported yet");
		else if (!has(abort, "httpStatus") && !has(abort, "grpcStatus"))
			vctx_warn(v, abort, p, "abort configured, but error type not set");
	}
	if (delay) {
		pjoin(p, path, "delay");
		check_percentage(v, delay, p);
		if (has(delay, "exponentialDelay"))
			vctx_err(v, g(delay, "exponentialDelay"), p,
				 "exponentialDelay not supported yet");
	}
}

static void check_redirect(struct vctx *v, const struct ynode *r, const char *path)
{
	int64_t code = ymap_int(r, "redirectCode", 0);
	const char *scheme = ymap_str(r, "scheme");

	if (!has(r, "uri") && !has(r, "authority") && !has(r, "port") && !has(r, "derivePort") &&
	    !has(r, "scheme"))
		vctx_err(v, r, path, "redirect must specify URI, authority, scheme, or port");
	if (code && (code < 300 || code > 399))
		vctx_err(v, g(r, "redirectCode"), path,
			 "%lld is not a valid redirect code, must be 3xx", (long long)code);
	if (scheme && strcmp(scheme, "http") && strcmp(scheme, "https"))
		vctx_err(v, g(r, "scheme"), path,
			 "invalid redirect scheme, must be \"http\" or \"https\"");
}

static void check_rewrite(struct vctx *v, const struct ynode *r, const char *path)
{
	const struct ynode *rr = g(r, "uriRegexRewrite");
	const char *uri = ymap_str(r, "uri");

	if (uri && *uri && rr)
		vctx_err(v, r, path, "rewrite may only contain one of URI or UriRegexRewrite");
	else if (!(uri && *uri) && !rr && !(ymap_str(r, "authority") && *ymap_str(r, "authority")))
		vctx_err(v, r, path,
			 "rewrite must specify at least one of URI, UriRegexRewrite, or "
			 "authority");
	if (rr && (!ymap_str(rr, "match") || !*ymap_str(rr, "match") || !ymap_str(rr, "rewrite") ||
		   !*ymap_str(rr, "rewrite")))
		vctx_err(v, rr, path,
			 "UriRegexRewrite requires both Rewrite and Match fields to be specified");
	else if (rr)
		check_regex(v, g(rr, "match"), path, ymap_str(rr, "match"));
}

static void check_direct_response(struct vctx *v, const struct ynode *r, const char *path)
{
	int64_t st = ymap_int(r, "status", 0);
	const struct ynode *body = g(r, "body");
	const char *b =
	    ymap_str(body, "string") ? ymap_str(body, "string") : ymap_str(body, "bytes");
	size_t size = b ? strlen(b) : 0;

	if (st < 200 || st > 600)
		vctx_err(v, r, path, "HTTP status %lld is not in range 200-599", (long long)st);
	if (size > 1024 * 1024)
		vctx_err(v, body, path,
			 "large direct_responses may impact control plane performance, "
			 "must be less than 1MB");
	else if (size > 100 * 1024)
		vctx_warn(v, body, path,
			  "large direct_responses may impact control plane performance");
}

static void check_mirrors(struct vctx *v, const struct ynode *route, const char *path)
{
	const struct ynode *ms = g(route, "mirrors"), *mp = g(route, "mirrorPercent");
	char p[PATHMAX], q[PATHMAX];
	double x;

	if (g(route, "mirror"))
		check_dest(v, g(route, "mirror"), pjoin(p, path, "mirror"));
	for (int i = 0; i < count(ms); i++) {
		pidx(p, pjoin(q, path, "mirrors"), i);
		check_destination(v, ms->items[i], p);
		if (ynode_num(g(g(ms->items[i], "percentage"), "value"), &x) == 0 &&
		    (x < 0 || x > 100))
			vctx_err(v, g(ms->items[i], "percentage"), p,
				 "mirror percentage must be between 0 and 100 (it has %g)", x);
	}
	if (ynode_num(g(g(route, "mirrorPercentage"), "value"), &x) == 0 && (x < 0 || x > 100))
		vctx_err(v, g(route, "mirrorPercentage"), pjoin(p, path, "mirrorPercentage"),
			 "mirror_percentage must be between 0 and 100 (it has %g)", x);
	if (mp) {
		if (ymap_int(route, "mirrorPercent", 0) > 100)
			vctx_err(v, mp, pjoin(p, path, "mirrorPercent"),
				 "mirror_percent must have a max value of 100");
		vctx_warn(
		    v, mp, pjoin(p, path, "mirrorPercent"),
		    "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead");
	}
}

static void check_cors(struct vctx *v, const struct ynode *c, const char *path)
{
	static const char *const methods[] = {"GET",	"HEAD",	   "POST",    "PUT",   "PATCH",
					      "DELETE", "CONNECT", "OPTIONS", "TRACE", NULL};
	static const char *const hdrs[] = {"allowHeaders", "exposeHeaders", NULL};
	const struct ynode *m = g(c, "allowMethods"), *o = g(c, "allowOrigins");
	char p[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(m); i++)
		if (!in_strs(m->items[i]->str, methods))
			vctx_err(v, m->items[i], pidx(p, pjoin(q, path, "allowMethods"), i),
				 "\"%s\" is not a supported HTTP method", m->items[i]->str);
	for (int i = 0; i < count(o); i++) {
		const struct ynode *sm = o->items[i];
		const char *x = ymap_str(sm, "exact")	 ? ymap_str(sm, "exact")
				: ymap_str(sm, "prefix") ? ymap_str(sm, "prefix")
							 : ymap_str(sm, "regex");

		pidx(p, pjoin(q, path, "allowOrigins"), i);
		if (!x || !*x)
			vctx_err(v, sm, p, "'' is not a valid match type for CORS allow origins");
		else
			check_strmatch(v, sm, p);
	}
	for (int k = 0; hdrs[k]; k++) {
		const struct ynode *h = g(c, hdrs[k]);

		for (int i = 0; i < count(h); i++)
			if (strcmp(h->items[i]->str, "*") && !header_name_ok(h->items[i]->str))
				vctx_err(v, h->items[i], pidx(p, pjoin(q, path, hdrs[k]), i),
					 "header name %s is not a valid header name",
					 h->items[i]->str);
	}
}

static bool header_value_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return false;
	return true;
}

/* Header operations: no pseudo-headers (":path"), :authority/host only on requests. */
static void check_header_ops(struct vctx *v, const struct ynode *hdrs, const char *path)
{
	static const char *const dirs[] = {"request", "response", NULL};
	static const char *const ops[] = {"set", "add", NULL};
	char p[PATHMAX], q[PATHMAX];

	for (int d = 0; dirs[d]; d++) {
		const struct ynode *dir = g(hdrs, dirs[d]);
		const struct ynode *rm = g(dir, "remove");

		for (int o = 0; ops[o]; o++) {
			const struct ynode *m = g(dir, ops[o]);

			for (int i = 0; i < count(m); i++) {
				const char *name = m->pairs[i].key,
					   *val = ynode_str(m->pairs[i].val);
				bool auth =
				    !strcasecmp(name, ":authority") || !strcasecmp(name, "host");

				pathf(q, sizeof(q), "%s.%s.%s", path, dirs[d], ops[o]);
				pkey(p, q, name);
				if (!*name)
					vctx_err(v, m->pairs[i].val, p,
						 "header name cannot be empty");
				else if ((name[0] == ':' || !strcasecmp(name, "host")) &&
					 !(d == 0 && auth))
					vctx_err(v, m->pairs[i].val, p, "invalid header \"%s\"",
						 name);
				else if (val && !header_value_ok(val))
					vctx_err(v, m->pairs[i].val, p,
						 "header value configuration %s "
						 "is invalid",
						 val);
			}
		}
		for (int i = 0; i < count(rm); i++) {
			const char *name = rm->items[i]->str;

			pathf(q, sizeof(q), "%s.%s.remove", path, dirs[d]);
			if (!*name || name[0] == ':' || !strcasecmp(name, "host"))
				vctx_err(v, rm->items[i], pidx(p, q, i), "invalid header \"%s\"",
					 name);
		}
	}
}

static void check_http_route(struct vctx *v, const struct ynode *r, const char *path,
			     bool delegate_vs, bool to_gateway)
{
	bool route = count(g(r, "route")) > 0, redirect = has(r, "redirect");
	bool direct = has(r, "directResponse"), delegate = has(r, "delegate");
	const struct ynode *ms = g(r, "match");
	char p[PATHMAX], q[PATHMAX];

	if (delegate && !delegate_vs) {
		if (redirect)
			vctx_err(v, r, path, "root HTTP route must not specify redirect");
		if (route)
			vctx_err(v, r, path, "root HTTP route must not specify route");
	} else {
		if (delegate)
			vctx_err(v, g(r, "delegate"), path,
				 "delegate HTTP route cannot contain delegate");
		if (redirect && route)
			vctx_err(v, r, path, "HTTP route cannot contain both route and redirect");
		if (redirect && has(r, "fault"))
			vctx_err(v, r, path, "HTTP route cannot contain both fault and redirect");
		if (redirect && has(r, "rewrite"))
			vctx_err(v, r, path,
				 "HTTP route rule cannot contain both rewrite and redirect");
		if (redirect && direct)
			vctx_err(v, r, path,
				 "HTTP route cannot contain both redirect and directResponse");
		if (!redirect && direct && route)
			vctx_err(v, r, path,
				 "HTTP route cannot contain both route and directResponse");
		if (!redirect && !direct && !route)
			vctx_err(v, r, pjoin(p, path, "route"),
				 "required (or redirect, directResponse or delegate)");
	}
	for (int i = 0; i < count(ms); i++)
		check_http_match(v, ms->items[i], pidx(p, pjoin(q, path, "match"), i), to_gateway);
	check_route_dests(v, r, path);
	if (has(r, "retries"))
		check_retries(v, g(r, "retries"), pjoin(p, path, "retries"));
	if (has(r, "fault"))
		check_fault(v, g(r, "fault"), pjoin(p, path, "fault"));
	if (redirect)
		check_redirect(v, g(r, "redirect"), pjoin(p, path, "redirect"));
	if (has(r, "rewrite"))
		check_rewrite(v, g(r, "rewrite"), pjoin(p, path, "rewrite"));
	if (direct)
		check_direct_response(v, g(r, "directResponse"), pjoin(p, path, "directResponse"));
	if (has(r, "corsPolicy"))
		check_cors(v, g(r, "corsPolicy"), pjoin(p, path, "corsPolicy"));
	check_mirrors(v, r, path);
	check_header_ops(v, g(r, "headers"), pjoin(p, path, "headers"));
	for (int i = 0; i < count(g(r, "route")); i++) {
		pidx(q, pjoin(p, path, "route"), i);
		check_header_ops(v, g(g(r, "route")->items[i], "headers"), pjoin(p, q, "headers"));
	}
}

static void check_subnets(struct vctx *v, const struct ynode *m, const char *path)
{
	const struct ynode *l = g(m, "destinationSubnets");
	char p[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(l); i++)
		if (!valid_ip_or_cidr(l->items[i]->str))
			vctx_err(v, l->items[i], pidx(p, pjoin(q, path, "destinationSubnets"), i),
				 "%s is not a valid IP address or CIDR block", l->items[i]->str);
}

static void check_l4_match(struct vctx *v, const struct ynode *m, const char *path)
{
	char p[PATHMAX];

	check_subnets(v, m, path);
	check_labels(v, g(m, "sourceLabels"), pjoin(p, path, "sourceLabels"));
	check_gateway_names(v, g(m, "gateways"), pjoin(p, path, "gateways"));
}

static void check_sni(struct vctx *v, const struct ynode *sni, const char *path,
		      const struct ynode *hosts, bool to_gateway)
{
	char why[320];

	if (!valid_wildcard_domain(sni->str, why, sizeof(why))) {
		if (valid_ip(sni->str))
			vctx_warn(v, sni, path,
				  "using an IP address (\"%s\") goes against SNI spec and "
				  "most clients do not support this",
				  sni->str);
		else if (!(to_gateway && strncmp(sni->str, "outbound_.", 10) == 0))
			vctx_err(v, sni, path, "%s", why);
		return;
	}
	for (int i = 0; i < count(hosts); i++)
		if (host_subset_of(sni->str, hosts->items[i]->str))
			return;
	vctx_err(v, sni, path,
		 "SNI host \"%s\" is not a compatible subset of any of the virtual "
		 "service hosts",
		 sni->str);
}

static void check_tls_route(struct vctx *v, const struct ynode *r, const char *path,
			    const struct ynode *hosts, bool to_gateway)
{
	const struct ynode *ms = g(r, "match");
	char p[PATHMAX], q[PATHMAX], s[PATHMAX];

	if (count(ms) == 0)
		vctx_err(v, r, pjoin(p, path, "match"),
			 "TLS route must have at least one match "
			 "condition");
	for (int i = 0; i < count(ms); i++) {
		const struct ynode *sn = g(ms->items[i], "sniHosts");

		pidx(p, pjoin(q, path, "match"), i);
		if (count(sn) == 0)
			vctx_err(v, ms->items[i], pjoin(q, p, "sniHosts"),
				 "TLS match must have at least one SNI host");
		for (int k = 0; k < count(sn); k++)
			check_sni(v, sn->items[k], pidx(s, pjoin(q, p, "sniHosts"), k), hosts,
				  to_gateway);
		check_l4_match(v, ms->items[i], p);
	}
	if (count(g(r, "route")) == 0)
		vctx_err(v, r, pjoin(p, path, "route"), "required");
	check_route_dests(v, r, path);
}

static void check_tcp_route(struct vctx *v, const struct ynode *r, const char *path)
{
	const struct ynode *ms = g(r, "match");
	char p[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(ms); i++)
		check_l4_match(v, ms->items[i], pidx(p, pjoin(q, path, "match"), i));
	if (count(g(r, "route")) == 0)
		vctx_err(v, r, pjoin(p, path, "route"), "required");
	check_route_dests(v, r, path);
}

/* First-match semantics: a rule without match takes everything, so later rules never run. */
static void check_unreachable(struct vctx *v, const struct ynode *routes, const char *path)
{
	char p[PATHMAX];

	for (int i = 0; i + 1 < count(routes); i++) {
		if (count(g(routes->items[i], "match")) > 0)
			continue;
		for (int k = i + 1; k < routes->n; k++)
			vctx_warn(v, routes->items[k], pidx(p, path, k),
				  "rule is never used: %s[%d] before it has no match and takes all "
				  "traffic",
				  path, i);
		return;
	}
}

static bool vs_to_gateway(const struct ynode *gws)
{
	if (count(gws) == 0)
		return false;
	for (int i = 0; i < gws->n; i++)
		if (strcmp(gws->items[i]->str, "mesh") == 0)
			return false;
	return true;
}

static void check_vs_hosts(struct vctx *v, const struct ynode *hosts, bool to_gateway)
{
	char p[PATHMAX], why[320];
	bool all_valid = true;
	struct htab seen = {0};
	int wild[64], nwild = 0;

	for (int i = 0; i < count(hosts); i++) {
		const char *h = hosts->items[i]->str;

		pidx(p, "spec.hosts", i);
		if (!valid_wildcard_domain(h, why, sizeof(why))) {
			if (!valid_ip(h)) {
				vctx_err(v, hosts->items[i], p, "%s", why);
				all_valid = false;
			}
		} else if (!to_gateway && strcmp(h, "*") == 0) {
			vctx_err(v, hosts->items[i], p,
				 "wildcard host * is not allowed for virtual "
				 "services bound to the mesh gateway");
			all_valid = false;
		}
	}
	if (!all_valid)
		return;
	/* exact duplicates in one pass; only pairs with a wildcard need a match each */
	for (int k = 0; k < count(hosts); k++) {
		const char *h = hosts->items[k]->str;
		int i = -1;

		for (int w = 0; w < nwild && i < 0; w++)
			if (wild[w] < k && host_matches(hosts->items[wild[w]]->str, h))
				i = wild[w];
		if (i < 0 && h[0] == '*')
			for (int j = 0; j < k && i < 0; j++)
				if (host_matches(hosts->items[j]->str, h))
					i = j;
		if (i < 0)
			i = seen_at(&seen, h, NULL, k);
		else
			seen_at(&seen, h, NULL, k);
		if (i >= 0)
			vctx_err(v, hosts->items[k], pidx(p, "spec.hosts", k),
				 "duplicate host \"%s\" (matches spec.hosts[%d] \"%s\")", h, i,
				 hosts->items[i]->str);
		if (h[0] == '*' && nwild < (int)(sizeof(wild) / sizeof(wild[0])))
			wild[nwild++] = k;
	}
	h_free(&seen);
}

void vs_rules(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *hosts = g(spec, "hosts"), *gws = g(spec, "gateways");
	const struct ynode *http = g(spec, "http"), *tls = g(spec, "tls"), *tcp = g(spec, "tcp");
	bool to_gateway = vs_to_gateway(gws), delegate_vs = count(hosts) == 0;
	char p[PATHMAX];

	if (delegate_vs) {
		if (count(gws))
			vctx_err(v, gws, "spec.gateways",
				 "delegate virtual service (no hosts) must have "
				 "no gateways specified");
		if (count(tls) || count(tcp))
			vctx_err(v, spec, "spec.hosts",
				 "required (a VirtualService without hosts is a "
				 "delegate and may only have http routes)");
		else
			vctx_warn(v, spec, "spec.hosts",
				  "no hosts: this VirtualService only acts as a "
				  "delegate of another one");
	}
	check_gateway_names(v, gws, "spec.gateways");
	check_vs_hosts(v, hosts, to_gateway);
	if (!count(http) && !count(tls) && !count(tcp))
		vctx_err(v, spec, "spec", "http, tcp or tls must be provided in virtual service");
	for (int i = 0; i < count(http); i++)
		check_http_route(v, http->items[i], pidx(p, "spec.http", i), delegate_vs,
				 to_gateway);
	for (int i = 0; i < count(tls); i++)
		check_tls_route(v, tls->items[i], pidx(p, "spec.tls", i), hosts, to_gateway);
	for (int i = 0; i < count(tcp); i++)
		check_tcp_route(v, tcp->items[i], pidx(p, "spec.tcp", i));
	check_export_to(v, spec, "spec.exportTo", false);
	check_unreachable(v, http, "spec.http");
	check_unreachable(v, tls, "spec.tls");
	check_unreachable(v, tcp, "spec.tcp");
}

/* ---------------- rules: DestinationRule ---------------- */

static void check_outlier(struct vctx *v, const struct ynode *od, const char *path)
{
	static const char *const pcts[] = {"maxEjectionPercent", "minHealthPercent", NULL};
	char p[PATHMAX];

	if (ymap_int(od, "consecutiveErrors", 0) != 0)
		vctx_warn(v, g(od, "consecutiveErrors"), pjoin(p, path, "consecutiveErrors"),
			  "outlier detection consecutive errors is deprecated, use "
			  "consecutiveGatewayErrors or consecutive5xxErrors instead");
	if (!ymap_bool(od, "splitExternalLocalOriginErrors", false) &&
	    ymap_int(od, "consecutiveLocalOriginFailures", 0) > 0)
		vctx_err(
		    v, g(od, "consecutiveLocalOriginFailures"),
		    pjoin(p, path, "consecutiveLocalOriginFailures"),
		    "outlier detection consecutive local origin failures is specified, but split "
		    "external local origin errors is set to false");
	for (int i = 0; pcts[i]; i++) {
		int64_t x = ymap_int(od, pcts[i], 0);

		if (x < 0 || x > 100)
			vctx_err(v, g(od, pcts[i]), pjoin(p, path, pcts[i]),
				 "percentage %lld is not in range 0..100", (long long)x);
	}
}

static void check_pool(struct vctx *v, const struct ynode *cp, const char *path)
{
	static const char *const nonneg[] = {"http1MaxPendingRequests",	 "http2MaxRequests",
					     "maxRequestsPerConnection", "maxRetries",
					     "maxConcurrentStreams",	 NULL};
	const struct ynode *http = g(cp, "http"), *tcp = g(cp, "tcp");
	char p[PATHMAX], q[PATHMAX];

	if (!http && !tcp)
		vctx_err(v, cp, path, "connection pool must have at least one field");
	for (int i = 0; nonneg[i]; i++)
		if (ymap_int(http, nonneg[i], 0) < 0)
			vctx_err(v, g(http, nonneg[i]), pjoin(p, pjoin(q, path, "http"), nonneg[i]),
				 "must not be negative");
	if (ymap_bool(http, "useClientProtocol", false) && ymap_str(http, "h2UpgradePolicy") &&
	    strcmp(ymap_str(http, "h2UpgradePolicy"), "UPGRADE") == 0)
		vctx_err(v, http, pjoin(p, path, "http"),
			 "use client protocol must not be true when H2UpgradePolicy is UPGRADE");
	if (ymap_int(tcp, "maxConnections", 0) < 0)
		vctx_err(v, g(tcp, "maxConnections"), pjoin(p, path, "tcp.maxConnections"),
			 "must not be negative");
}

static bool is_prime(uint64_t x)
{
	if (x != 0 && x < 4)
		return true;
	if ((x & 1) == 0)
		return false;
	for (uint64_t f = 3; f * f <= x; f += 2)
		if (x % f == 0)
			return false;
	return true;
}

static void check_consistent_hash(struct vctx *v, const struct ynode *ch, const char *path)
{
	const struct ynode *cookie = g(ch, "httpCookie"), *mg = g(ch, "maglev");
	int keys = has(ch, "httpHeaderName") + has(ch, "httpCookie") + has(ch, "useSourceIp") +
		   has(ch, "httpQueryParameterName");
	int64_t ts = ymap_int(mg, "tableSize", 0);
	char p[PATHMAX];

	if (keys > 1)
		vctx_err(v, ch, path,
			 "only one of httpHeaderName, httpCookie, useSourceIp or "
			 "httpQueryParameterName may be set");
	if (cookie && (!ymap_str(cookie, "name") || !*ymap_str(cookie, "name")))
		vctx_err(v, cookie, pjoin(p, path, "httpCookie.name"),
			 "name required for HttpCookie");
	if (has(ch, "minimumRingSize")) {
		vctx_warn(v, g(ch, "minimumRingSize"), pjoin(p, path, "minimumRingSize"),
			  "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's "
			  "RingHash configuration instead");
		if (has(ch, "ringHash") || mg)
			vctx_err(v, ch, path,
				 "only one of MinimumRingSize or Maglev/Ringhash can be "
				 "specified");
	}
	if (has(ch, "ringHash") && mg)
		vctx_err(v, ch, path, "only one of ringHash or maglev may be set");
	pjoin(p, path, "maglev.tableSize");
	if (mg && ts == 0)
		vctx_err(v, mg, p, "tableSize must be set for maglev");
	else if (mg && ts >= 5000011)
		vctx_err(v, g(mg, "tableSize"), p,
			 "tableSize must be less than 5000011 for maglev");
	else if (mg && !is_prime((uint64_t)ts))
		vctx_err(v, g(mg, "tableSize"), p, "tableSize must be a prime number for maglev");
}

static void check_warmup(struct vctx *v, const struct ynode *w, const char *path)
{
	char p[PATHMAX];
	double x;

	if (!has(w, "duration"))
		vctx_err(v, w, pjoin(p, path, "duration"), "required");
	if (ynode_num(g(w, "minimumPercent"), &x) == 0 && (x < 0 || x > 100))
		vctx_err(v, g(w, "minimumPercent"), pjoin(p, path, "minimumPercent"),
			 "must be between 0 and 100, got %g", x);
	if (ynode_num(g(w, "aggression"), &x) == 0 && x < 1)
		vctx_err(v, g(w, "aggression"), pjoin(p, path, "aggression"),
			 "must be at least 1, got %g", x);
}

static void check_lb(struct vctx *v, const struct ynode *lb, const char *path)
{
	char p[PATHMAX];

	if (has(lb, "simple") && has(lb, "consistentHash"))
		vctx_err(v, lb, path, "only one of simple or consistentHash may be set");
	if (has(lb, "consistentHash"))
		check_consistent_hash(v, g(lb, "consistentHash"), pjoin(p, path, "consistentHash"));
	if (has(lb, "warmup"))
		check_warmup(v, g(lb, "warmup"), pjoin(p, path, "warmup"));
}

static void check_client_tls(struct vctx *v, const struct ynode *t, const char *path)
{
	const char *mode = ymap_str(t, "mode") ? ymap_str(t, "mode") : "DISABLE";
	bool simple = !strcmp(mode, "SIMPLE"), mutual = !strcmp(mode, "MUTUAL");

	if (ymap_bool(t, "insecureSkipVerify", false) &&
	    ((simple && (has(t, "caCertificates") || has(t, "credentialName") ||
			 has(t, "subjectAltNames"))) ||
	     (mutual && (has(t, "caCertificates") || has(t, "subjectAltNames")))))
		vctx_err(v, t, path,
			 "cannot specify CaCertificates or CredentialName or "
			 "SubjectAltNames when InsecureSkipVerify is set true");
	if ((simple || mutual) && has(t, "credentialName")) {
		if (has(t, "clientCertificate") || has(t, "caCertificates") ||
		    has(t, "privateKey") || has(t, "caCrl"))
			vctx_err(v, t, path,
				 "cannot specify client certificates or CA certificate or "
				 "CA CRL if credentialName is set");
		return;
	}
	if (mutual && !has(t, "clientCertificate"))
		vctx_err(v, t, path, "client certificate required for mutual tls");
	if (mutual && !has(t, "privateKey"))
		vctx_err(v, t, path, "private key required for mutual tls");
}

static void check_policy_parts(struct vctx *v, const struct ynode *tp, const char *path)
{
	char p[PATHMAX];

	if (has(tp, "outlierDetection"))
		check_outlier(v, g(tp, "outlierDetection"), pjoin(p, path, "outlierDetection"));
	if (has(tp, "connectionPool"))
		check_pool(v, g(tp, "connectionPool"), pjoin(p, path, "connectionPool"));
	if (has(tp, "loadBalancer"))
		check_lb(v, g(tp, "loadBalancer"), pjoin(p, path, "loadBalancer"));
	if (has(tp, "tls"))
		check_client_tls(v, g(tp, "tls"), pjoin(p, path, "tls"));
}

static void check_tunnel(struct vctx *v, const struct ynode *t, const char *path)
{
	const char *proto = ymap_str(t, "protocol"), *host = ymap_str(t, "targetHost");
	char why[320];

	if (proto && *proto && strcmp(proto, "CONNECT") && strcmp(proto, "POST"))
		vctx_err(v, g(t, "protocol"), path,
			 "tunnel protocol must be \"CONNECT\" or \"POST\"");
	if (!host || (!valid_fqdn(host, why, sizeof(why)) && !valid_ip(host)))
		vctx_err(v, t, path, "tunnel target host must be valid FQDN or IP address");
	if (!has(t, "targetPort"))
		vctx_err(v, t, path,
			 "tunnel target port is invalid: port number 0 must be in the range "
			 "1..65535");
}

static void check_policy(struct vctx *v, const struct ynode *tp, const char *path)
{
	const struct ynode *pls = g(tp, "portLevelSettings");
	char p[PATHMAX], q[PATHMAX];

	if (!has(tp, "outlierDetection") && !has(tp, "connectionPool") &&
	    !has(tp, "loadBalancer") && !has(tp, "tls") && !pls && !has(tp, "tunnel") &&
	    !has(tp, "proxyProtocol") && !has(tp, "retryBudget")) {
		vctx_err(v, tp, path, "traffic policy must have at least one field");
		return;
	}
	if (has(tp, "tunnel") && has(tp, "proxyProtocol"))
		vctx_err(v, tp, path, "tunnel and proxyProtocol must not be set together");
	if (has(tp, "tunnel"))
		check_tunnel(v, g(tp, "tunnel"), pjoin(p, path, "tunnel"));
	check_policy_parts(v, tp, path);
	for (int i = 0; i < count(pls); i++) {
		const struct ynode *pl = pls->items[i];

		pidx(p, pjoin(q, path, "portLevelSettings"), i);
		if (!has(pl, "port"))
			vctx_err(v, pl, pjoin(q, p, "port"), "required");
		if (!has(pl, "outlierDetection") && !has(pl, "connectionPool") &&
		    !has(pl, "loadBalancer") && !has(pl, "tls"))
			vctx_err(v, pl, p, "port traffic policy must have at least one field");
		else
			check_policy_parts(v, pl, p);
	}
}

void dr_rules(struct vctx *v, const struct ynode *spec)
{
	const char *host = ymap_str(spec, "host");
	const struct ynode *subsets = g(spec, "subsets"), *sel = g(spec, "workloadSelector");
	char p[PATHMAX], q[PATHMAX], why[320];
	struct htab seen = {0};
	int k;

	if (!host)
		vctx_err(v, spec, "spec.host", "required");
	else if (!valid_wildcard_domain(host, why, sizeof(why)))
		vctx_err(v, g(spec, "host"), "spec.host", "%s", why);
	if (has(spec, "trafficPolicy"))
		check_policy(v, g(spec, "trafficPolicy"), "spec.trafficPolicy");
	for (int i = 0; i < count(subsets); i++) {
		const struct ynode *s = subsets->items[i];
		const char *name = ymap_str(s, "name");

		pidx(p, "spec.subsets", i);
		if (!name || !*name)
			vctx_err(v, s, pjoin(q, p, "name"), "required");
		else if (!dns_label(name, true))
			vctx_err(v, g(s, "name"), pjoin(q, p, "name"), "subset name is invalid: %s",
				 name);
		if (name && (k = seen_at(&seen, name, NULL, i)) >= 0)
			vctx_err(v, g(s, "name"), pjoin(q, p, "name"),
				 "duplicate subset name \"%s\" (also spec.subsets[%d])", name, k);
		check_labels(v, g(s, "labels"), pjoin(q, p, "labels"));
		if (has(s, "trafficPolicy"))
			check_policy(v, g(s, "trafficPolicy"), pjoin(q, p, "trafficPolicy"));
	}
	h_free(&seen);
	check_export_to(v, spec, "spec.exportTo", false);
	if (sel) {
		check_selector_labels(v, sel, "matchLabels", "spec.workloadSelector");
		for (int i = 0; i < count(g(spec, "exportTo")); i++)
			if (strcmp(g(spec, "exportTo")->items[i]->str, ".") &&
			    strcmp(g(spec, "exportTo")->items[i]->str, v->ns))
				vctx_err(
				    v, g(spec, "exportTo"), "spec.exportTo",
				    "destination rule with workload selector cannot have exportTo "
				    "beyond current namespace");
	}
}
