// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * vcore.c: what every kind's checks share: reporting a problem at its line (vctx), the kinds
 * by apiVersion/kind, Kubernetes' and Istio's name, host and address rules, the schema pass
 * (types, ranges, enum values and unknown fields, as the API server's CRD schemas check them;
 * the tables are vschemas.c) and the rules several kinds use (labels, selectors, exportTo).
 * Called by the per-kind rule files (vrules_*.c), validate.c, crosscheck.c and analyze.c.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "names.h"
#include "vcore.h"

/* ---------------- reporting ---------------- */

void vreport(struct vctx *v, enum diag_sev sev, const struct ynode *at, const char *field,
	     const char *fmt, va_list ap)
{
	struct srcpos pos = {.file = v->file, .line = at ? at->line : v->line};
	char *msg = NULL;

	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	diags_add(v->d, sev, &pos, v->object, field, "%s", msg ? msg : "out of memory");
	free(msg);
	if (sev == DIAG_ERROR)
		v->nerr++;
}

void vctx_err(struct vctx *v, const struct ynode *at, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(v, DIAG_ERROR, at, field, fmt, ap);
	va_end(ap);
}

void vctx_warn(struct vctx *v, const struct ynode *at, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(v, DIAG_WARN, at, field, fmt, ap);
	va_end(ap);
}

/*
 * Field paths and other bounded texts. A path longer than its buffer is cut short, which only
 * shortens a message; formatting through one vsnprintf keeps that intent in one place.
 */
const char *pathf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return buf;
}

/* Field paths as Kubernetes prints them: spec.http[0].route[1].weight, labels[app]. */
const char *pjoin(char *buf, const char *base, const char *key)
{
	if (base && *base)
		return pathf(buf, PATHMAX, "%s.%s", base, key);
	return pathf(buf, PATHMAX, "%s", key);
}

const char *pidx(char *buf, const char *base, int i)
{
	return pathf(buf, PATHMAX, "%s[%d]", base, i);
}

const char *pkey(char *buf, const char *base, const char *key)
{
	return pathf(buf, PATHMAX, "%s[%s]", base, key);
}

const struct ynode *g(const struct ynode *n, const char *key)
{
	return ymap_get(n, key);
}

/* Number of entries of a list or map (0 when absent). */
int count(const struct ynode *n)
{
	return n && (n->type == YN_SEQ || n->type == YN_MAP) ? n->n : 0;
}

/* ---------------- kinds ---------------- */

struct kind_entry {
	const char *group; /* "" for the core group */
	const char *kind;
	const char *const *versions;
	enum obj_kind obj;
};

static const char *const v_core[] = {"v1", NULL};
static const char *const v_apps[] = {"v1", NULL};
static const char *const v_net[] = {"v1alpha3", "v1beta1", "v1", NULL};
static const char *const v_sec[] = {"v1beta1", "v1", NULL};
static const char *const v_any[] = {"v1alpha1", "v1alpha3", "v1beta1", "v1", NULL};
static const char *const v_gwapi[] = {"v1", "v1beta1", NULL};
static const char *const v_gwapi_alpha[] = {"v1alpha2", "v1", NULL};

static const struct kind_entry kinds[] = {
    {"", "Namespace", v_core, OBJ_NAMESPACE},
    {"", "Service", v_core, OBJ_SERVICE},
    {"", "Pod", v_core, OBJ_POD},
    {"apps", "Deployment", v_apps, OBJ_DEPLOYMENT},
    {"networking.istio.io", "VirtualService", v_net, OBJ_VIRTUALSERVICE},
    {"networking.istio.io", "DestinationRule", v_net, OBJ_DESTINATIONRULE},
    {"networking.istio.io", "WorkloadEntry", v_net, OBJ_WORKLOADENTRY},
    {"networking.istio.io", "Gateway", v_net, OBJ_GATEWAY},
    {"networking.istio.io", "ServiceEntry", v_net, OBJ_SERVICEENTRY},
    {"security.istio.io", "PeerAuthentication", v_sec, OBJ_PEERAUTHENTICATION},
    {"security.istio.io", "AuthorizationPolicy", v_sec, OBJ_AUTHORIZATIONPOLICY},
    {"networking.istio.io", "Sidecar", v_net, OBJ_ISTIO_UNCHECKED},
    {"networking.istio.io", "EnvoyFilter", v_net, OBJ_ENVOYFILTER},
    {"networking.istio.io", "WorkloadGroup", v_net, OBJ_ISTIO_UNCHECKED},
    {"networking.istio.io", "ProxyConfig", v_net, OBJ_ISTIO_UNCHECKED},
    {"security.istio.io", "RequestAuthentication", v_sec, OBJ_ISTIO_UNCHECKED},
    {"telemetry.istio.io", "Telemetry", v_any, OBJ_TELEMETRY},
    {"extensions.istio.io", "WasmPlugin", v_any, OBJ_ISTIO_UNCHECKED},
    {"gateway.networking.k8s.io", "Gateway", v_gwapi, OBJ_GWAPI},
    {"gateway.networking.k8s.io", "HTTPRoute", v_gwapi, OBJ_GWAPI},
    {"gateway.networking.k8s.io", "GatewayClass", v_gwapi, OBJ_GWAPI},
    {"gateway.networking.k8s.io", "GRPCRoute", v_gwapi, OBJ_GWAPI_UNSERVED},
    {"gateway.networking.k8s.io", "TCPRoute", v_gwapi_alpha, OBJ_GWAPI},
    {"gateway.networking.k8s.io", "TLSRoute", v_gwapi_alpha, OBJ_GWAPI},
    {"gateway.networking.k8s.io", "ReferenceGrant", v_gwapi, OBJ_GWAPI_UNSERVED},
    {"", "ConfigMap", v_core, OBJ_CONFIGMAP},
    {"", "Secret", v_core, OBJ_SECRET},
    {"", "ServiceAccount", v_core, OBJ_SERVICEACCOUNT},
    {"discovery.k8s.io", "EndpointSlice", v_core, OBJ_ENDPOINTSLICE},
    {"", "Endpoints", v_core, OBJ_K8S_UNUSED},
    {"apps", "StatefulSet", v_apps, OBJ_K8S_UNUSED},
    {"apps", "DaemonSet", v_apps, OBJ_K8S_UNUSED},
    {"apps", "ReplicaSet", v_apps, OBJ_K8S_UNUSED},
};

bool in_strs(const char *s, const char *const *list)
{
	for (; s && *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

enum obj_kind obj_kind_of(const char *api_version, const char *kind)
{
	const char *slash = strrchr(api_version, '/');
	size_t glen = slash ? (size_t)(slash - api_version) : 0;
	const char *version = slash ? slash + 1 : api_version;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct kind_entry *k = &kinds[i];

		if (strlen(k->group) == glen && strncmp(k->group, api_version, glen) == 0 &&
		    strcmp(k->kind, kind) == 0 && in_strs(version, k->versions))
			return k->obj;
	}
	return OBJ_UNKNOWN;
}

bool obj_is_namespaced(enum obj_kind k)
{
	return k != OBJ_NAMESPACE;
}

/* ---------------- names, hosts, addresses ---------------- */

bool is_alnum(char c, bool upper)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (upper && c >= 'A' && c <= 'Z');
}

bool dns_label_n(const char *s, size_t len, bool upper)
{
	return names_dns_label_n(s, len, upper);
}

bool dns_label(const char *s, bool upper)
{
	return dns_label_n(s, strlen(s), upper);
}

bool dns_subdomain(const char *s)
{
	return names_dns_subdomain(s);
}

/* Kubernetes DNS-1035 label (Service names): must start with a letter. */
bool dns1035_label(const char *s)
{
	return dns_label(s, false) && s[0] >= 'a' && s[0] <= 'z';
}

bool all_digits(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Istio's ValidateDNS1123Labels: labels may be mixed case, the last may be empty (trailing
 * dot), the top-level one may not be all digits. Writes Istio's message on failure. */
bool dns1123_labels(const char *domain, const char *whole, char *why, size_t wlen)
{
	const char *last = strrchr(domain, '.');

	last = last ? last + 1 : domain;
	if (all_digits(last, strlen(last))) {
		pathf(why, wlen,
		      "domain name \"%s\" invalid (top level domain \"%s\" cannot be "
		      "all-numeric)",
		      whole, last);
		return false;
	}
	for (const char *p = domain;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (!dot && l == 0 && p != domain)
			return true;
		if (!dns_label_n(p, l, true)) {
			pathf(why, wlen, "domain name \"%s\" invalid (label \"%.*s\" invalid)",
			      whole, (int)l, p);
			return false;
		}
		if (!dot)
			return true;
		p = dot + 1;
	}
}

bool dns_preconditions(const char *s, char *why, size_t wlen)
{
	if (!*s) {
		pathf(why, wlen, "empty domain name not allowed");
		return false;
	}
	if (strlen(s) > 255) {
		pathf(why, wlen, "domain name too long (max 255)");
		return false;
	}
	return true;
}

/* Istio's ValidateFQDN. */
bool valid_fqdn(const char *s, char *why, size_t wlen)
{
	return dns_preconditions(s, why, wlen) && dns1123_labels(s, s, why, wlen);
}

/* First label of a host that may carry a wildcard: "*", "*foo", "*-foo" or a plain label. */
bool wildcard_label(const char *s, size_t len)
{
	if (len == 1 && s[0] == '*')
		return true;
	if (len > 63)
		return false;
	if (len > 0 && s[0] == '*') {
		s++, len--;
		if (len > 0 && s[0] == '-')
			s++, len--;
	}
	return dns_label_n(s, len, true);
}

/* Istio's ValidateWildcardDomain. */
bool valid_wildcard_domain(const char *s, char *why, size_t wlen)
{
	const char *dot;
	size_t l;

	if (!dns_preconditions(s, why, wlen))
		return false;
	dot = strchr(s, '.');
	l = dot ? (size_t)(dot - s) : strlen(s);
	if (!wildcard_label(s, l)) {
		pathf(why, wlen, "domain name \"%s\" invalid (label \"%.*s\" invalid)", s, (int)l,
		      s);
		return false;
	}
	return !dot || dns1123_labels(dot + 1, s, why, wlen);
}

bool valid_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* An address or a CIDR block ("10.0.0.0/8", "2001:db8::/32"). */
bool valid_ip_or_cidr(const char *s)
{
	const char *slash = strchr(s, '/');
	unsigned char buf[16];
	char addr[64];
	char *end;
	long bits;

	if (!slash)
		return valid_ip(s);
	if ((size_t)(slash - s) >= sizeof(addr) || !slash[1])
		return false;
	memcpy(addr, s, slash - s);
	addr[slash - s] = 0;
	bits = strtol(slash + 1, &end, 10);
	if (*end || slash[1] < '0' || slash[1] > '9')
		return false;
	if (inet_pton(AF_INET, addr, buf) == 1)
		return bits >= 0 && bits <= 32;
	return inet_pton(AF_INET6, addr, buf) == 1 && bits >= 0 && bits <= 128;
}

/* Kubernetes label (and selector) keys: [prefix/]name. */
bool label_name(const char *s, size_t len)
{
	if (len == 0 || len > 63 || !is_alnum(s[0], true) || !is_alnum(s[len - 1], true))
		return false;
	for (size_t i = 1; i + 1 < len; i++)
		if (!is_alnum(s[i], true) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

bool label_key_ok(const char *k)
{
	const char *slash = strchr(k, '/');
	char prefix[254];

	if (!slash)
		return label_name(k, strlen(k));
	if ((size_t)(slash - k) >= sizeof(prefix))
		return false;
	memcpy(prefix, k, slash - k);
	prefix[slash - k] = 0;
	return dns_subdomain(prefix) && label_name(slash + 1, strlen(slash + 1));
}

bool label_value_ok(const char *v)
{
	return !*v || label_name(v, strlen(v));
}

/* IANA service names, which named ports must be: at most 15 bytes, lower case letters,
 * digits and single inner dashes, at least one letter. */
bool iana_svc_name(const char *s)
{
	size_t len = strlen(s);
	bool letter = false;

	if (len == 0 || len > 15 || s[0] == '-' || s[len - 1] == '-' || strstr(s, "--"))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] >= 'a' && s[i] <= 'z')
			letter = true;
		else if (!(s[i] >= '0' && s[i] <= '9') && s[i] != '-')
			return false;
	}
	return letter;
}

void check_obj(struct vctx *v, const struct ynode *n, const char *path, const struct schema *s);

const struct field *find_field(const struct schema *s, const char *name)
{
	for (const struct field *f = s->fields; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

void enum_error(struct vctx *v, const struct ynode *n, const char *path, const char *const *names)
{
	char list[512] = "";
	size_t len = 0;

	for (; *names && len + 1 < sizeof(list); names++)
		len +=
		    strlen(pathf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "", *names));
	vctx_err(v, n, path, "unsupported value \"%s\" (must be one of %s)", n->str, list);
}

void check_int(struct vctx *v, const struct ynode *n, const char *path, int64_t lo, int64_t hi)
{
	int64_t x;

	if (ynode_int(n, &x) < 0)
		vctx_err(v, n, path, "must be an integer");
	else if (lo < hi && (x < lo || x > hi))
		vctx_err(v, n, path, "must be between %lld and %lld, got %lld", (long long)lo,
			 (long long)hi, (long long)x);
}

void check_duration(struct vctx *v, const struct ynode *n, const char *path, bool istio)
{
	int64_t ns;

	if (!ynode_str(n)) {
		vctx_err(v, n, path, "must be a duration string like \"10s\"");
		return;
	}
	if (parse_duration_ns(n->str, &ns) < 0) {
		vctx_err(v, n, path,
			 "invalid duration \"%s\" (use e.g. \"10s\", \"1.5s\", \"100ms\")", n->str);
		return;
	}
	if (istio && ns < 1000000)
		vctx_err(v, n, path, "duration must be at least 1ms");
	else if (istio && ns % 1000000)
		vctx_err(v, n, path, "only durations to ms precision are supported");
}

void check_list(struct vctx *v, const struct ynode *n, const char *path, const struct field *f)
{
	char p[PATHMAX];

	if (!ynode_is_seq(n)) {
		vctx_err(v, n, path, "must be a list");
		return;
	}
	for (int i = 0; i < n->n; i++) {
		const struct ynode *it = n->items[i];

		pidx(p, path, i);
		if (ynode_is_null(it))
			vctx_err(v, it, p, "must not be null");
		else if (f->type == F_LIST_STR && !ynode_str(it))
			vctx_err(v, it, p, "must be a string");
		else if (f->type == F_LIST_OBJ && !ynode_is_map(it))
			vctx_err(v, it, p, "must be a map");
		else if (f->type == F_LIST_OBJ)
			check_obj(v, it, p, f->sub);
	}
}

void check_map(struct vctx *v, const struct ynode *n, const char *path, const struct field *f)
{
	char p[PATHMAX];

	if (!ynode_is_map(n)) {
		vctx_err(v, n, path, "must be a map");
		return;
	}
	for (int i = 0; i < n->n; i++) {
		const struct ynode *val = n->pairs[i].val;

		pkey(p, path, n->pairs[i].key);
		if (f->type == F_MAP_STR && !ynode_is_null(val) && !ynode_str(val))
			vctx_err(v, val, p, "must be a string");
		else if (f->type == F_MAP_INT)
			check_int(v, val, p, f->min, f->max);
		else if (f->type == F_MAP_OBJ && !ynode_is_null(val) && !ynode_is_map(val))
			vctx_err(v, val, p, "must be a map");
		else if (f->type == F_MAP_OBJ && !ynode_is_null(val))
			check_obj(v, val, p, f->sub);
	}
}

void check_value(struct vctx *v, const struct ynode *n, const char *path, const struct field *f)
{
	double d;
	bool b;

	switch (f->type) {
	case F_STR:
		if (!ynode_str(n))
			vctx_err(v, n, path, "must be a string");
		break;
	case F_INT:
		check_int(v, n, path, f->min, f->max);
		break;
	case F_NUM:
		if (ynode_num(n, &d) < 0)
			vctx_err(v, n, path, "must be a number");
		break;
	case F_BOOL:
		if (ynode_bool(n, &b) < 0)
			vctx_err(v, n, path, "must be a boolean");
		break;
	case F_DUR:
	case F_DURANY:
		check_duration(v, n, path, f->type == F_DUR);
		break;
	case F_ENUM:
		if (!ynode_str(n))
			vctx_err(v, n, path, "must be a string");
		else if (!in_strs(n->str, f->sub))
			enum_error(v, n, path, f->sub);
		break;
	case F_OBJ:
		if (!ynode_is_map(n))
			vctx_err(v, n, path, "must be a map");
		else
			check_obj(v, n, path, f->sub);
		break;
	case F_LIST_OBJ:
	case F_LIST_STR:
		check_list(v, n, path, f);
		break;
	case F_MAP_STR:
	case F_MAP_OBJ:
	case F_MAP_INT:
		check_map(v, n, path, f);
		break;
	case F_INT_OR_STR:
		if (!ynode_str(n))
			check_int(v, n, path, f->min, f->max);
		break;
	case F_ANY_MAP:
		if (!ynode_is_map(n))
			vctx_err(v, n, path, "must be a map");
		break;
	case F_ANY:
		break;
	}
}

void check_obj(struct vctx *v, const struct ynode *n, const char *path, const struct schema *s)
{
	char p[PATHMAX];

	for (int i = 0; i < n->n; i++) {
		const char *key = n->pairs[i].key;
		const struct ynode *val = n->pairs[i].val;
		const struct field *f = find_field(s, key);

		pjoin(p, path, key);
		if (!f && s->unknown == U_WARN)
			vctx_warn(v, val, p, "unknown field (ignored)");
		else if (f && !ynode_is_null(val))
			check_value(v, val, p, f);
	}
}

/* ---------------- rules: shared ---------------- */

bool has(const struct ynode *map, const char *key)
{
	return ymap_get(map, key) != NULL;
}

void check_labels(struct vctx *v, const struct ynode *map, const char *path)
{
	char p[PATHMAX];

	for (int i = 0; ynode_is_map(map) && i < map->n; i++) {
		const char *val = ynode_str(map->pairs[i].val);

		pkey(p, path, map->pairs[i].key);
		if (!label_key_ok(map->pairs[i].key))
			vctx_err(v, map->pairs[i].val, p, "invalid label key \"%s\"",
				 map->pairs[i].key);
		else if (val && !label_value_ok(val))
			vctx_err(v, map->pairs[i].val, p, "invalid label value \"%s\"", val);
	}
}

/* Istio's workload selectors: no empty keys, no wildcards, and labels are expected. */
void check_selector_labels(struct vctx *v, const struct ynode *owner, const char *key,
			   const char *path)
{
	const struct ynode *labels = g(owner, key);
	char p[PATHMAX];

	pjoin(p, path, key);
	if (count(labels) == 0) {
		vctx_warn(v, owner, path, "workload selector specified without labels");
		return;
	}
	int before = v->nerr;

	for (int i = 0; i < labels->n; i++) {
		const char *k = labels->pairs[i].key, *val = ynode_text(labels->pairs[i].val);
		char q[PATHMAX];

		pkey(q, p, k);
		if (!*k)
			vctx_err(v, labels->pairs[i].val, q,
				 "empty key is not supported in selector");
		else if (strchr(k, '*') || (val && strchr(val, '*')))
			vctx_err(v, labels->pairs[i].val, q,
				 "wildcard is not supported in selector");
	}
	if (v->nerr == before)
		check_labels(v, labels, p);
}

bool str_in_seq(const struct ynode *seq, int upto, const char *s)
{
	for (int i = 0; i < upto; i++)
		if (ynode_str(seq->items[i]) && strcmp(seq->items[i]->str, s) == 0)
			return true;
	return false;
}

/*
 * Duplicate detection in one pass (validation is linear in the size of what it checks: a
 * Service with 20,000 ports must not cost 400 million comparisons). The first index where
 * (a, b) was seen, or -1 after recording idx as that first one.
 */
int seen_at(struct htab *h, const char *a, const char *b, int idx)
{
	uint8_t k[HKEY];
	int *prev;

	h_strkey(k, a, b, NULL);
	prev = h_get(h, k);
	if (prev)
		return *prev;
	h_put(h, k, idx);
	return -1;
}

/* exportTo entries: ".", "*", a namespace, or "~" for ServiceEntries; no duplicates. */
void check_export_to(struct vctx *v, const struct ynode *spec, const char *path, bool service_entry)
{
	const struct ynode *l = g(spec, "exportTo");
	bool pub = false, none = false;
	char p[PATHMAX];

	for (int i = 0; i < count(l); i++) {
		const char *e = l->items[i]->str;
		const char *key = strcmp(e, ".") == 0 ? v->ns : e;

		pidx(p, path, i);
		pub |= strcmp(e, "*") == 0;
		none |= strcmp(e, "~") == 0;
		if (str_in_seq(l, i, e) || (strcmp(e, ".") == 0 && str_in_seq(l, i, v->ns)) ||
		    (strcmp(e, v->ns) == 0 && str_in_seq(l, i, ".")))
			vctx_err(v, l->items[i], p, "duplicate entries in exportTo for entry %s",
				 key);
		else if (strcmp(e, "~") == 0 && !service_entry)
			vctx_err(v, l->items[i], p,
				 "exportTo ~ (none) is only allowed for ServiceEntry objects");
		else if (strcmp(e, ".") && strcmp(e, "*") && strcmp(e, "~") && !dns_label(e, true))
			vctx_err(
			    v, l->items[i], p,
			    "only ., *, or a valid DNS 1123 label is allowed as exportTo entry");
	}
	if (pub && count(l) > 1)
		vctx_err(v, l, path, "cannot have both public (*) and non-public exportTo values");
	if (none && count(l) > 1)
		vctx_err(v, l, path, "cannot export to no one (~) and someone");
}

/* Gateway references in a VirtualService: "mesh", "name", "ns/name" (or legacy FQDNs). */
void check_gateway_names(struct vctx *v, const struct ynode *l, const char *path)
{
	char p[PATHMAX], why[320];

	for (int i = 0; i < count(l); i++) {
		const char *gw = l->items[i]->str, *slash = strchr(gw, '/');

		pidx(p, path, i);
		if (!slash) {
			if (!valid_fqdn(gw, why, sizeof(why)))
				vctx_err(v, l->items[i], p, "%s", why);
			else if (strchr(gw, '.'))
				vctx_warn(
				    v, l->items[i], p,
				    "legacy gateway name format \"%s\"; prefer <namespace>/<name>",
				    gw);
			continue;
		}
		if (slash == gw || !slash[1])
			vctx_err(v, l->items[i], p, "namespace and gateway name cannot be empty");
		else if (!dns_label_n(gw, slash - gw, true))
			vctx_err(v, l->items[i], p, "invalid value for namespace: \"%.*s\"",
				 (int)(slash - gw), gw);
		else if (!dns_label(slash + 1, true))
			vctx_err(v, l->items[i], p, "invalid value for gateway name: \"%s\"",
				 slash + 1);
	}
}

/* Istio's host.Name.Matches: equal, or one is a wildcard covering the other. */
bool host_matches(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (a[0] == '*' && b[0] == '*')
		return la < lb ? lb - 1 >= la - 1 && !strcmp(b + lb - (la - 1), a + 1)
			       : la - 1 >= lb - 1 && !strcmp(a + la - (lb - 1), b + 1);
	if (a[0] == '*')
		return lb >= la - 1 && !strcmp(b + lb - (la - 1), a + 1);
	if (b[0] == '*')
		return la >= lb - 1 && !strcmp(a + la - (lb - 1), b + 1);
	return strcmp(a, b) == 0;
}

/* Istio's host.Name.SubsetOf: a is equal to b or covered by wildcard b. */
bool host_subset_of(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (a[0] == '*')
		return b[0] == '*' && la >= lb && !strcmp(a + la - (lb - 1), b + 1);
	if (b[0] == '*')
		return la >= lb - 1 && !strcmp(a + la - (lb - 1), b + 1);
	return strcmp(a, b) == 0;
}

void check_percentage(struct vctx *v, const struct ynode *owner, const char *path)
{
	const struct ynode *pct = g(owner, "percentage"), *val = g(pct, "value");
	char p[PATHMAX];
	double x;

	if (ynode_num(val, &x) == 0 && (x < 0 || x > 100 || (x > 0 && x < 0.0001)))
		vctx_err(v, val, pjoin(p, path, "percentage.value"),
			 "percentage %g is neither 0.0, nor in range [0.0001, 100.0]", x);
}
