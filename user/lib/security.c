// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * security.c: PeerAuthentication (which mTLS mode protects a workload's port) and
 * AuthorizationPolicy (may this peer connect) evaluated the way Istio does for TCP traffic.
 * Called by the agent's tunnel (identity checks after the TLS handshake) and the map sync
 * (kernel tables for plaintext: policy ports and address prefixes with their verdicts).
 * See security.h for the rules; docs/security-policy.md for where L4 differs from Istio.
 *
 * The model (config.c) already holds every CIDR and port parsed, so an evaluation only
 * compares; a workload's own addresses (destination.ip) are parsed per call.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "security.h"

static const char *root_of(const char *root_ns)
{
	return root_ns && *root_ns ? root_ns : SEC_DEFAULT_ROOT_NS;
}

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

const char *mtls_mode_name(enum mtls_mode m)
{
	static const char *const names[] = {"UNSET", "DISABLE", "PERMISSIVE", "STRICT"};

	return (unsigned)m < 4 ? names[m] : "UNSET";
}

const char *sec_policy_name(const struct ap_obj *p, char *buf, size_t len)
{
	if (!buf || !len)
		return "";
	snprintf(buf, len, "%s/%s", p && p->ns ? p->ns : "-", p && p->name ? p->name : "-");
	return buf;
}

/*
 * Istio sorts policies by creationTimestamp, then namespace/name, and lets the first win.
 * Kubernetes writes timestamps as RFC 3339 UTC ("2024-01-02T03:04:05Z"), which sort as
 * strings; an absent one is Go's zero time, older than any. The load order breaks what is
 * left (an object loaded twice keeps its first slot, so it cannot tie with itself).
 */
static int age_cmp(const char *ta, const char *nsa, const char *na, int oa, const char *tb,
		   const char *nsb, const char *nb, int ob)
{
	int r = strcmp(ta ? ta : "", tb ? tb : "");

	if (!r)
		r = strcmp(nsa ? nsa : "", nsb ? nsb : "");
	if (!r)
		r = strcmp(na ? na : "", nb ? nb : "");
	return r ? r : oa - ob;
}

static bool pa_older(const struct pa_obj *a, const struct pa_obj *b)
{
	return !b || age_cmp(a->creation_ts, a->ns, a->name, a->order, b->creation_ts, b->ns,
			     b->name, b->order) < 0;
}

static bool ap_older(const struct ap_obj *a, const struct ap_obj *b)
{
	return !b || age_cmp(a->creation_ts, a->ns, a->name, a->order, b->creation_ts, b->ns,
			     b->name, b->order) < 0;
}

/* ---------------- PeerAuthentication ---------------- */

enum mtls_mode sec_mtls_mode(const struct mesh_config *c, const char *root_ns,
			     const struct workload_obj *w, int port)
{
	const struct pa_obj *mesh = NULL, *nsw = NULL, *wl = NULL;
	const char *root = root_of(root_ns);
	enum mtls_mode mode = MTLS_PERMISSIVE;

	for (int i = 0; c && w && i < c->npas; i++) {
		const struct pa_obj *p = &c->pas[i];
		bool in_root = streq(p->ns, root);

		if (p->selector.n == 0) {
			if (in_root && pa_older(p, mesh))
				mesh = p;
			else if (!in_root && streq(p->ns, w->ns) && pa_older(p, nsw))
				nsw = p;
		} else if (!in_root && streq(p->ns, w->ns) && kv_match(&p->selector, &w->labels) &&
			   pa_older(p, wl)) {
			wl = p;
		}
	}
	/* The chosen policy of a scope may be UNSET: it inherits from the wider scope, not from
	 * the next-oldest policy of its own scope. */
	if (mesh && mesh->mode != MTLS_UNSET)
		mode = mesh->mode;
	if (nsw && nsw->mode != MTLS_UNSET)
		mode = nsw->mode;
	if (wl && wl->mode != MTLS_UNSET)
		mode = wl->mode;
	for (int i = 0; wl && i < wl->nports; i++)
		if (wl->ports[i].port == port && wl->ports[i].mode != MTLS_UNSET)
			return wl->ports[i].mode;
	return mode;
}

/* ---------------- matching primitives ---------------- */

/* Istio's string match: "*" = any non-empty value, "*abc" suffix, "abc*" prefix, else exact. */
static bool str_match(const char *pat, const char *val)
{
	size_t lp, lv;

	if (!pat || !val)
		return false;
	lp = strlen(pat);
	lv = strlen(val);
	if (strcmp(pat, "*") == 0)
		return lv > 0;
	if (pat[0] == '*')
		return lv >= lp - 1 && strcmp(val + lv - (lp - 1), pat + 1) == 0;
	if (pat[lp - 1] == '*')
		return strncmp(val, pat, lp - 1) == 0;
	return strcmp(pat, val) == 0;
}

static bool any_str(const struct ap_values *l, const char *val)
{
	for (int i = 0; i < l->n; i++)
		if (str_match(l->v[i], val))
			return true;
	return false;
}

static bool in_v4_space(const uint8_t *ip, int len)
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return len >= 96 && memcmp(ip, pfx, 12) == 0;
}

/* Does block b contain every address of ip/len? An IPv6 block never matches IPv4 peers. */
static bool prefix_contains(const struct ip_prefix *b, const uint8_t *ip, int len)
{
	int full = b->len / 8, rest = b->len % 8;

	if (b->len > len)
		return false;
	if (!b->v4 && in_v4_space(ip, len))
		return false;
	if (memcmp(b->ip, ip, full) != 0)
		return false;
	return !rest || ((b->ip[full] ^ ip[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static bool any_cidr(const struct ap_values *l, const uint8_t *ip, int len)
{
	for (int i = 0; l->cidr && i < l->n; i++)
		if (prefix_contains(&l->cidr[i], ip, len))
			return true;
	return false;
}

static bool any_port(const struct ap_values *l, int port)
{
	for (int i = 0; l->port && i < l->n; i++)
		if (l->port[i] == port)
			return true;
	return false;
}

/* ---------------- the peer, parsed once per evaluation ---------------- */

struct peer {
	const struct sec_peer *src;
	const char *principal; /* NULL when plaintext */
	char ns[256];	       /* from src->ns, else from the principal */
	char sa[256];	       /* "ns/sa" from the principal, "" when unknown */
	const struct workload_obj *w;
	const struct sec_http *http; /* the request, when judged per request; else NULL */
	struct ip_prefix waddr[2];   /* w's addresses */
	int nwaddr;
	int dport;
};

/* "td/ns/NS/sa/SA" -> ns and "ns/sa". */
static void peer_init(struct peer *p, const struct sec_peer *src, const struct workload_obj *w,
		      int dport)
{
	const char *s = src ? src->principal : NULL, *nsp = s ? strstr(s, "/ns/") : NULL;
	const char *sap = nsp ? strstr(nsp + 4, "/sa/") : NULL;

	memset(p, 0, sizeof(*p));
	p->src = src;
	p->w = w;
	p->dport = dport;
	p->principal = s;
	if (s && src->ns)
		snprintf(p->ns, sizeof(p->ns), "%s", src->ns);
	else if (sap)
		snprintf(p->ns, sizeof(p->ns), "%.*s", (int)(sap - nsp - 4), nsp + 4);
	if (sap)
		snprintf(p->sa, sizeof(p->sa), "%.*s/%s", (int)(sap - nsp - 4), nsp + 4, sap + 4);
	for (int i = 0; i < w->naddresses && i < 2; i++)
		if (config_parse_prefix(w->addresses[i], &p->waddr[p->nwaddr]) == 0)
			p->nwaddr++;
}

/* Fields that need mTLS: a positive list never matches plaintext, a negative one always. */
static bool mtls_field(const struct ap_values *pos, const struct ap_values *neg, const char *val,
		       bool plaintext)
{
	if (pos->n && (plaintext || !any_str(pos, val)))
		return false;
	if (neg->n && !plaintext && any_str(neg, val))
		return false;
	return true;
}

/* serviceAccounts: "ns/sa", or "sa" in the policy's namespace; exact, no wildcards. */
static bool any_sa(const struct ap_values *l, const struct peer *p, const char *policy_ns)
{
	char want[512];

	for (int i = 0; i < l->n; i++) {
		const char *v = l->v[i];

		if (!strchr(v, '/')) {
			snprintf(want, sizeof(want), "%s/%s", policy_ns ? policy_ns : "default", v);
			v = want;
		}
		if (strcmp(v, p->sa) == 0)
			return true;
	}
	return false;
}

static bool ip_field(const struct ap_values *pos, const struct ap_values *neg, const uint8_t *ip,
		     int len)
{
	if (pos->n && !any_cidr(pos, ip, len))
		return false;
	return !(neg->n && any_cidr(neg, ip, len));
}

/* A value list against a request field: positive list must match, negative must not. icase:
 * hosts compare case-insensitively (Istio's rule). */
static bool http_field(const struct ap_values *pos, const struct ap_values *neg, const char *val,
		       bool icase)
{
	char low[512];

	if (icase && val) {
		size_t i = 0;

		for (; val[i] && i + 1 < sizeof(low); i++)
			low[i] = (char)tolower((unsigned char)val[i]);
		low[i] = 0;
		val = low;
	}
	if (pos->n) {
		bool any = false;

		for (int i = 0; !any && i < pos->n; i++) {
			char pat[512];
			size_t k = 0;

			for (; pos->v[i][k] && k + 1 < sizeof(pat); k++)
				pat[k] = icase ? (char)tolower((unsigned char)pos->v[i][k])
					       : pos->v[i][k];
			pat[k] = 0;
			any = str_match(pat, val ? val : "");
		}
		if (!any)
			return false;
	}
	for (int i = 0; neg->n && i < neg->n; i++) {
		char pat[512];
		size_t k = 0;

		for (; neg->v[i][k] && k + 1 < sizeof(pat); k++)
			pat[k] = icase ? (char)tolower((unsigned char)neg->v[i][k]) : neg->v[i][k];
		pat[k] = 0;
		if (str_match(pat, val ? val : ""))
			return false;
	}
	return true;
}

/* requestPrincipals need a JWT (RequestAuthentication, not enforced here): with none, a
 * positive list never matches and a negative one always does. */
static bool request_principal_ok(const struct ap_source *s)
{
	return s->request_principals.n == 0;
}

/* HTTP-only source fields (requestPrincipals) are looked at only per request; at L4 an ALLOW
 * rule using them is dropped before this, and DENY-like actions drop the fields. */
static bool source_match(const struct ap_source *s, const struct peer *p, const char *policy_ns)
{
	bool plain = p->principal == NULL;
	const uint8_t *ip = p->src->ip;
	int len = p->src->ip_len;

	if (p->http && !request_principal_ok(s))
		return false;
	if (!mtls_field(&s->principals, &s->not_principals, p->principal, plain) ||
	    !mtls_field(&s->namespaces, &s->not_namespaces, p->ns, plain))
		return false;
	if (s->service_accounts.n && (plain || !any_sa(&s->service_accounts, p, policy_ns)))
		return false;
	if (s->not_service_accounts.n && !plain && any_sa(&s->not_service_accounts, p, policy_ns))
		return false;
	return ip_field(&s->ip_blocks, &s->not_ip_blocks, ip, len) &&
	       ip_field(&s->remote_ip_blocks, &s->not_remote_ip_blocks, ip, len);
}

static bool operation_match(const struct ap_operation *o, const struct peer *p)
{
	if (o->ports.n && !any_port(&o->ports, p->dport))
		return false;
	if (o->not_ports.n && any_port(&o->not_ports, p->dport))
		return false;
	if (!p->http)
		return true;
	return http_field(&o->methods, &o->not_methods, p->http->method, false) &&
	       http_field(&o->paths, &o->not_paths, p->http->path, false) &&
	       http_field(&o->hosts, &o->not_hosts, p->http->host, true);
}

bool sec_l4_condition_key(const char *key)
{
	static const char *const keys[] = {"source.ip",	       "remote.ip",
					   "source.namespace", "source.principal",
					   "destination.ip",   "destination.port"};

	for (size_t i = 0; key && i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

static bool any_waddr(const struct ap_values *l, const struct peer *p)
{
	for (int i = 0; i < p->nwaddr; i++)
		if (any_cidr(l, p->waddr[i].ip, p->waddr[i].len))
			return true;
	return false;
}

/* One list of a condition (values or notValues): does the connection match any entry? */
static bool cond_any(const struct ap_condition *c, const struct ap_values *l, const struct peer *p)
{
	const char *k = c->key;

	if (!strcmp(k, "source.ip") || !strcmp(k, "remote.ip"))
		return any_cidr(l, p->src->ip, p->src->ip_len);
	if (!strcmp(k, "destination.ip"))
		return any_waddr(l, p);
	if (!strcmp(k, "destination.port"))
		return any_port(l, p->dport);
	if (!strcmp(k, "source.namespace"))
		return p->principal && any_str(l, p->ns);
	return p->principal && any_str(l, p->principal); /* source.principal */
}

/* request.headers[name]: a request's header; other HTTP-only keys (request.auth.*, JWT claims)
 * have no value here. */
static const char *http_condition_value(const struct ap_condition *c, const struct peer *p)
{
	static const char pre[] = "request.headers[";
	char name[256];
	size_t l;

	if (!p->http || !p->http->header || strncmp(c->key, pre, sizeof(pre) - 1))
		return NULL;
	l = strcspn(c->key + sizeof(pre) - 1, "]");
	if (l >= sizeof(name))
		return NULL;
	memcpy(name, c->key + sizeof(pre) - 1, l);
	name[l] = 0;
	return p->http->header(p->http->arg, name);
}

static bool condition_match(const struct ap_condition *c, const struct peer *p)
{
	if (!sec_l4_condition_key(c->key) && p->http) {
		const char *v = http_condition_value(c, p);

		if (c->values.n && (!v || !any_str(&c->values, v)))
			return false;
		return !(c->not_values.n && v && any_str(&c->not_values, v));
	}
	if (!sec_l4_condition_key(c->key))
		return true; /* HTTP-only: dropped (see rule_match) */
	if (c->values.n && !cond_any(c, &c->values, p))
		return false;
	return !(c->not_values.n && cond_any(c, &c->not_values, p));
}

static bool source_has_http(const struct ap_source *s)
{
	return s->request_principals.n || s->not_request_principals.n;
}

static bool operation_has_http(const struct ap_operation *o)
{
	return o->hosts.n || o->not_hosts.n || o->methods.n || o->not_methods.n || o->paths.n ||
	       o->not_paths.n;
}

bool sec_rule_has_http(const struct ap_rule *r)
{
	for (int i = 0; i < r->nfrom; i++)
		if (source_has_http(&r->from[i]))
			return true;
	for (int i = 0; i < r->nto; i++)
		if (operation_has_http(&r->to[i]))
			return true;
	for (int i = 0; i < r->nwhen; i++)
		if (!sec_l4_condition_key(r->when[i].key))
			return true;
	return false;
}

static bool rule_match(const struct ap_obj *pol, const struct ap_rule *r, const struct peer *p)
{
	bool ok = r->nfrom == 0;

	/* Istio for TCP: an ALLOW rule that needs HTTP can never match (stricter); DENY, AUDIT
	 * (and our fail-closed CUSTOM) drop the HTTP fields instead (broader). Per request
	 * (p->http) every field is evaluated. */
	if (!p->http && pol->action == AP_ALLOW && sec_rule_has_http(r))
		return false;
	for (int i = 0; !ok && i < r->nfrom; i++)
		ok = source_match(&r->from[i], p, pol->ns);
	if (!ok)
		return false;
	ok = r->nto == 0;
	for (int i = 0; !ok && i < r->nto; i++)
		ok = operation_match(&r->to[i], p);
	for (int i = 0; ok && i < r->nwhen; i++)
		ok = condition_match(&r->when[i], p);
	return ok;
}

static bool policy_match(const struct ap_obj *pol, const struct peer *p)
{
	for (int i = 0; i < pol->nrules; i++)
		if (rule_match(pol, &pol->rules[i], p))
			return true;
	return false;
}

/* ---------------- AuthorizationPolicy ---------------- */

static bool ap_applies(const struct ap_obj *p, const char *root, const struct workload_obj *w)
{
	if (p->has_target_ref)
		return false;
	if (streq(p->ns, root))
		return kv_match(&p->selector, &w->labels);
	return streq(p->ns, w->ns) && kv_match(&p->selector, &w->labels);
}

const struct ap_obj *sec_http_policy(const struct mesh_config *c, const char *root_ns,
				     const struct workload_obj *w)
{
	for (int i = 0; c && w && i < c->naps; i++) {
		if (!ap_applies(&c->aps[i], root_of(root_ns), w))
			continue;
		for (int r = 0; r < c->aps[i].nrules; r++)
			if (sec_rule_has_http(&c->aps[i].rules[r]))
				return &c->aps[i];
	}
	return NULL;
}

bool sec_policy_applies(const struct ap_obj *p, const char *root_ns, const struct workload_obj *w)
{
	return ap_applies(p, root_of(root_ns), w);
}

bool sec_has_policy(const struct mesh_config *c, const char *root_ns, const struct workload_obj *w)
{
	for (int i = 0; c && w && i < c->naps; i++)
		if (ap_applies(&c->aps[i], root_of(root_ns), w))
			return true;
	return false;
}

void sec_authorize(const struct mesh_config *c, const char *root_ns, const struct workload_obj *w,
		   int dport, const struct sec_peer *src, struct sec_decision *d)
{
	sec_authorize_http(c, root_ns, w, dport, src, NULL, d);
}

void sec_authorize_http(const struct mesh_config *c, const char *root_ns,
			const struct workload_obj *w, int dport, const struct sec_peer *src,
			const struct sec_http *http, struct sec_decision *d)
{
	const struct ap_obj *best[4] = {NULL, NULL, NULL, NULL}; /* oldest match per action */
	const char *root = root_of(root_ns);
	bool allow_exists = false;
	struct peer p;

	memset(d, 0, sizeof(*d));
	d->verdict = SEC_ALLOW;
	d->reason = "no policy";
	if (!c || !w || !src)
		return;
	peer_init(&p, src, w, dport);
	p.http = http;
	for (int i = 0; i < c->naps; i++) {
		const struct ap_obj *pol = &c->aps[i];

		if (!ap_applies(pol, root, w))
			continue;
		allow_exists |= pol->action == AP_ALLOW;
		if (ap_older(pol, best[pol->action]) && policy_match(pol, &p))
			best[pol->action] = pol;
	}
	d->audit = best[AP_AUDIT];
	/* CUSTOM first: with no ext-authz provider a match fails closed. */
	d->by = best[AP_CUSTOM] ? best[AP_CUSTOM] : best[AP_DENY];
	if (d->by) {
		d->verdict = SEC_DENY;
		d->reason = "denied by policy";
	} else if (!allow_exists) {
		d->reason = "no policy";
	} else if (best[AP_ALLOW]) {
		d->by = best[AP_ALLOW];
		d->reason = "allowed by policy";
	} else {
		d->verdict = SEC_DENY;
		d->reason = "no ALLOW policy matched";
	}
}

/* ---------------- what the kernel tables need ---------------- */

struct intset {
	int *v;
	int n, cap;
	bool oom;
};

static void intset_add(struct intset *s, const struct ap_values *l)
{
	for (int i = 0; l->port && i < l->n; i++) {
		int k;

		for (k = 0; k < s->n && s->v[k] != l->port[i]; k++)
			;
		if (k < s->n)
			continue;
		if (s->n == s->cap) {
			int cap = s->cap ? 2 * s->cap : 8;
			int *nv = realloc(s->v, cap * sizeof(*nv));

			if (!nv) {
				s->oom = true;
				return;
			}
			s->v = nv;
			s->cap = cap;
		}
		s->v[s->n++] = l->port[i];
	}
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

int sec_policy_ports(const struct mesh_config *c, const char *root_ns, const struct workload_obj *w,
		     int **out)
{
	struct intset s = {0};

	*out = NULL;
	for (int i = 0; c && w && i < c->naps; i++) {
		const struct ap_obj *pol = &c->aps[i];

		if (!ap_applies(pol, root_of(root_ns), w))
			continue;
		for (int r = 0; r < pol->nrules; r++) {
			const struct ap_rule *rule = &pol->rules[r];

			for (int k = 0; k < rule->nto; k++) {
				intset_add(&s, &rule->to[k].ports);
				intset_add(&s, &rule->to[k].not_ports);
			}
			for (int k = 0; k < rule->nwhen; k++) {
				intset_add(&s, &rule->when[k].values);
				intset_add(&s, &rule->when[k].not_values);
			}
		}
	}
	if (s.oom) {
		free(s.v);
		return -1;
	}
	if (s.n > 1)
		qsort(s.v, s.n, sizeof(*s.v), cmp_int);
	*out = s.v;
	return s.n;
}

struct pfxset {
	struct sec_prefix *v;
	int n, cap;
	bool oom, any_v6;
};

static void pfxset_put(struct pfxset *s, const uint8_t *ip, int len)
{
	for (int k = 0; k < s->n; k++)
		if (s->v[k].len == len && memcmp(s->v[k].ip, ip, 16) == 0)
			return;
	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 8;
		struct sec_prefix *nv = realloc(s->v, cap * sizeof(*nv));

		if (!nv) {
			s->oom = true;
			return;
		}
		s->v = nv;
		s->cap = cap;
	}
	memcpy(s->v[s->n].ip, ip, 16);
	s->v[s->n++].len = len;
}

static void pfxset_add(struct pfxset *s, const struct ap_values *l)
{
	for (int i = 0; l->cidr && i < l->n; i++) {
		pfxset_put(s, l->cidr[i].ip, l->cidr[i].len);
		s->any_v6 |= !l->cidr[i].v4;
	}
}

int sec_policy_prefixes(const struct mesh_config *c, const char *root_ns,
			const struct workload_obj *w, struct sec_prefix **out)
{
	static const uint8_t zero[16], v4space[16] = {[10] = 0xff, [11] = 0xff};
	struct pfxset s = {0};

	*out = NULL;
	pfxset_put(&s, zero, 0);
	for (int i = 0; c && w && i < c->naps; i++) {
		const struct ap_obj *pol = &c->aps[i];

		if (!ap_applies(pol, root_of(root_ns), w))
			continue;
		for (int r = 0; r < pol->nrules; r++) {
			const struct ap_rule *rule = &pol->rules[r];

			for (int k = 0; k < rule->nfrom; k++) {
				const struct ap_source *src = &rule->from[k];

				pfxset_add(&s, &src->ip_blocks);
				pfxset_add(&s, &src->not_ip_blocks);
				pfxset_add(&s, &src->remote_ip_blocks);
				pfxset_add(&s, &src->not_remote_ip_blocks);
			}
			for (int k = 0; k < rule->nwhen; k++) {
				const char *key = rule->when[k].key;

				if (!streq(key, "source.ip") && !streq(key, "remote.ip"))
					continue;
				pfxset_add(&s, &rule->when[k].values);
				pfxset_add(&s, &rule->when[k].not_values);
			}
		}
	}
	/* IPv6 blocks never match IPv4 peers: the IPv4 space needs an entry of its own, or an
	 * IPv4 address would share ::/0 (or a wider IPv6 block) with IPv6 ones. */
	if (s.any_v6)
		pfxset_put(&s, v4space, 96);
	if (s.oom) {
		free(s.v);
		return -1;
	}
	*out = s.v;
	return s.n;
}
