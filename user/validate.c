// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * validate.c: whether configuration is valid, by the rules Istio and Kubernetes apply, so that
 * `bpfmesh validate` rejects what `kubectl apply` / istiod would reject and accepts what they
 * accept. config.c calls validate_object() for every object it reads (see validate.h); callers
 * of the model call config_validate() for checks across objects and config_analyze() for the
 * notes `bpfmesh analyze` prints.
 *
 * Each object is checked in two passes. A schema pass (tables below) checks types, ranges,
 * enum values and unknown fields the way the API server's CRD schemas do; only when that is
 * clean does a rules pass apply Istio's own validation (pkg/config/validation in istio/istio:
 * the rules were taken from there, the code is ours), so the rules can trust the types.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "security.h"
#include "names.h"
#include "validate.h"

#define PATHMAX 256

/* ---------------- reporting ---------------- */

static void vreport(struct vctx *v, enum diag_sev sev, const struct ynode *at, const char *field,
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
static __attribute__((format(printf, 3, 4))) const char *pathf(char *buf, size_t size,
							       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return buf;
}

/* Field paths as Kubernetes prints them: spec.http[0].route[1].weight, labels[app]. */
static const char *pjoin(char *buf, const char *base, const char *key)
{
	if (base && *base)
		return pathf(buf, PATHMAX, "%s.%s", base, key);
	return pathf(buf, PATHMAX, "%s", key);
}

static const char *pidx(char *buf, const char *base, int i)
{
	return pathf(buf, PATHMAX, "%s[%d]", base, i);
}

static const char *pkey(char *buf, const char *base, const char *key)
{
	return pathf(buf, PATHMAX, "%s[%s]", base, key);
}

static const struct ynode *g(const struct ynode *n, const char *key)
{
	return ymap_get(n, key);
}

/* Number of entries of a list or map (0 when absent). */
static int count(const struct ynode *n)
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
    {"networking.istio.io", "EnvoyFilter", v_net, OBJ_ISTIO_UNCHECKED},
    {"networking.istio.io", "WorkloadGroup", v_net, OBJ_ISTIO_UNCHECKED},
    {"networking.istio.io", "ProxyConfig", v_net, OBJ_ISTIO_UNCHECKED},
    {"security.istio.io", "RequestAuthentication", v_sec, OBJ_ISTIO_UNCHECKED},
    {"telemetry.istio.io", "Telemetry", v_any, OBJ_ISTIO_UNCHECKED},
    {"extensions.istio.io", "WasmPlugin", v_any, OBJ_ISTIO_UNCHECKED},
    {"", "ConfigMap", v_core, OBJ_K8S_UNUSED},
    {"", "Secret", v_core, OBJ_K8S_UNUSED},
    {"", "ServiceAccount", v_core, OBJ_K8S_UNUSED},
    {"", "Endpoints", v_core, OBJ_K8S_UNUSED},
    {"apps", "StatefulSet", v_apps, OBJ_K8S_UNUSED},
    {"apps", "DaemonSet", v_apps, OBJ_K8S_UNUSED},
    {"apps", "ReplicaSet", v_apps, OBJ_K8S_UNUSED},
};

static bool in_strs(const char *s, const char *const *list)
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

static bool is_alnum(char c, bool upper)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (upper && c >= 'A' && c <= 'Z');
}

static bool dns_label_n(const char *s, size_t len, bool upper)
{
	return names_dns_label_n(s, len, upper);
}

static bool dns_label(const char *s, bool upper)
{
	return dns_label_n(s, strlen(s), upper);
}

static bool dns_subdomain(const char *s)
{
	return names_dns_subdomain(s);
}

/* Kubernetes DNS-1035 label (Service names): must start with a letter. */
static bool dns1035_label(const char *s)
{
	return dns_label(s, false) && s[0] >= 'a' && s[0] <= 'z';
}

static bool all_digits(const char *s, size_t len)
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
static bool dns1123_labels(const char *domain, const char *whole, char *why, size_t wlen)
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

static bool dns_preconditions(const char *s, char *why, size_t wlen)
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
static bool valid_fqdn(const char *s, char *why, size_t wlen)
{
	return dns_preconditions(s, why, wlen) && dns1123_labels(s, s, why, wlen);
}

/* First label of a host that may carry a wildcard: "*", "*foo", "*-foo" or a plain label. */
static bool wildcard_label(const char *s, size_t len)
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
static bool valid_wildcard_domain(const char *s, char *why, size_t wlen)
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

static bool valid_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* An address or a CIDR block ("10.0.0.0/8", "2001:db8::/32"). */
static bool valid_ip_or_cidr(const char *s)
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
static bool label_name(const char *s, size_t len)
{
	if (len == 0 || len > 63 || !is_alnum(s[0], true) || !is_alnum(s[len - 1], true))
		return false;
	for (size_t i = 1; i + 1 < len; i++)
		if (!is_alnum(s[i], true) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

static bool label_key_ok(const char *k)
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

static bool label_value_ok(const char *v)
{
	return !*v || label_name(v, strlen(v));
}

/* IANA service names, which named ports must be: at most 15 bytes, lower case letters,
 * digits and single inner dashes, at least one letter. */
static bool iana_svc_name(const char *s)
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

/* ---------------- durations ---------------- */

/*
 * Go's time.ParseDuration, which is what Istio's CRDs accept: "10s", "1.5s", "100ms", "1h30m",
 * "0". Returns 0 with nanoseconds, -1 when malformed or out of range.
 */
int parse_duration_ns(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = {{"ns", 1},	  {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
		     {"ms", 1e6}, {"s", 1e9},  {"m", 60e9},	   {"h", 3600e9}};
	double total = 0;
	bool neg = false;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (!*s)
		return -1;
	while (*s) {
		char *end;
		double val;
		size_t best = 0, bi = 0;

		if (!((*s >= '0' && *s <= '9') || *s == '.'))
			return -1;
		val = strtod(s, &end);
		if (end == s || (end[-1] == '.' && end - s == 1))
			return -1;
		s = end;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].unit);

			if (strncmp(s, units[i].unit, l) == 0 && l > best)
				best = l, bi = i;
		}
		if (!best)
			return -1;
		total += val * units[bi].ns;
		s += best;
	}
	if (total > 9.2e18)
		return -1;
	*out = (int64_t)(total + 0.5) * (neg ? -1 : 1);
	return 0;
}

/* ---------------- schema pass ---------------- */

enum ftype {
	F_STR,
	F_INT, /* with a range when min < max */
	F_NUM,
	F_BOOL,
	F_DUR,	  /* a duration Istio validates: at least 1ms, whole milliseconds */
	F_DURANY, /* a duration Istio only parses */
	F_ENUM,
	F_OBJ,
	F_LIST_OBJ,
	F_LIST_STR,
	F_MAP_STR,
	F_MAP_OBJ,
	F_MAP_INT,
	F_INT_OR_STR,
	F_ANY,
	F_ANY_MAP,
};

struct schema;

struct field {
	const char *name;
	enum ftype type;
	const void *sub; /* struct schema (F_OBJ, F_LIST_OBJ, F_MAP_OBJ) or enum names */
	int64_t min, max;
};

/* What an unknown field is: an error where our list of fields is complete (the API server
 * would reject it too), a warning where Istio may have added fields we do not list yet. */
enum unknown_mode { U_ERROR, U_WARN, U_IGNORE };

struct schema {
	enum unknown_mode unknown;
	const struct field *fields;
};

#define I32  INT32_MIN, INT32_MAX
#define U32  0, UINT32_MAX
#define PORT 1, 65535
#define FS(n)                                                                                      \
	{                                                                                          \
		.name = n, .type = F_STR                                                           \
	}
#define RANGE(lo, hi) .min = lo, .max = hi
#define FIR(n, ...)                                                                                \
	{                                                                                          \
		.name = n, .type = F_INT, RANGE(__VA_ARGS__)                                       \
	}
#define FN(n)                                                                                      \
	{                                                                                          \
		.name = n, .type = F_NUM                                                           \
	}
#define FB(n)                                                                                      \
	{                                                                                          \
		.name = n, .type = F_BOOL                                                          \
	}
#define FD(n)                                                                                      \
	{                                                                                          \
		.name = n, .type = F_DUR                                                           \
	}
#define FDA(n)                                                                                     \
	{                                                                                          \
		.name = n, .type = F_DURANY                                                        \
	}
#define FE(n, e)                                                                                   \
	{                                                                                          \
		.name = n, .type = F_ENUM, .sub = e                                                \
	}
#define FO(n, s)                                                                                   \
	{                                                                                          \
		.name = n, .type = F_OBJ, .sub = &s                                                \
	}
#define FLO(n, s)                                                                                  \
	{                                                                                          \
		.name = n, .type = F_LIST_OBJ, .sub = &s                                           \
	}
#define FLS(n)                                                                                     \
	{                                                                                          \
		.name = n, .type = F_LIST_STR                                                      \
	}
#define FMS(n)                                                                                     \
	{                                                                                          \
		.name = n, .type = F_MAP_STR                                                       \
	}
#define FMO(n, s)                                                                                  \
	{                                                                                          \
		.name = n, .type = F_MAP_OBJ, .sub = &s                                            \
	}
#define FMI(n, ...)                                                                                \
	{                                                                                          \
		.name = n, .type = F_MAP_INT, RANGE(__VA_ARGS__)                                   \
	}
#define FIS(n, ...)                                                                                \
	{                                                                                          \
		.name = n, .type = F_INT_OR_STR, RANGE(__VA_ARGS__)                                \
	}
#define FANY(n)                                                                                    \
	{                                                                                          \
		.name = n, .type = F_ANY                                                           \
	}
#define FAM(n)                                                                                     \
	{                                                                                          \
		.name = n, .type = F_ANY_MAP                                                       \
	}
#define SCHEMA(var, mode, ...)                                                                     \
	static const struct field var##_f[] = {__VA_ARGS__, {.name = NULL}};                       \
	static const struct schema var = {mode, var##_f}

static void check_obj(struct vctx *v, const struct ynode *n, const char *path,
		      const struct schema *s);

static const struct field *find_field(const struct schema *s, const char *name)
{
	for (const struct field *f = s->fields; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static void enum_error(struct vctx *v, const struct ynode *n, const char *path,
		       const char *const *names)
{
	char list[512] = "";
	size_t len = 0;

	for (; *names && len + 1 < sizeof(list); names++)
		len +=
		    strlen(pathf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "", *names));
	vctx_err(v, n, path, "unsupported value \"%s\" (must be one of %s)", n->str, list);
}

static void check_int(struct vctx *v, const struct ynode *n, const char *path, int64_t lo,
		      int64_t hi)
{
	int64_t x;

	if (ynode_int(n, &x) < 0)
		vctx_err(v, n, path, "must be an integer");
	else if (lo < hi && (x < lo || x > hi))
		vctx_err(v, n, path, "must be between %lld and %lld, got %lld", (long long)lo,
			 (long long)hi, (long long)x);
}

static void check_duration(struct vctx *v, const struct ynode *n, const char *path, bool istio)
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

static void check_list(struct vctx *v, const struct ynode *n, const char *path,
		       const struct field *f)
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

static void check_map(struct vctx *v, const struct ynode *n, const char *path,
		      const struct field *f)
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

static void check_value(struct vctx *v, const struct ynode *n, const char *path,
			const struct field *f)
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

static void check_obj(struct vctx *v, const struct ynode *n, const char *path,
		      const struct schema *s)
{
	char p[PATHMAX];

	for (int i = 0; i < n->n; i++) {
		const char *key = n->pairs[i].key;
		const struct ynode *val = n->pairs[i].val;
		const struct field *f = find_field(s, key);

		pjoin(p, path, key);
		if (!f && s->unknown == U_ERROR)
			vctx_err(v, val, p, "unknown field");
		else if (!f && s->unknown == U_WARN)
			vctx_warn(v, val, p, "unknown field (ignored)");
		else if (f && !ynode_is_null(val))
			check_value(v, val, p, f);
	}
}

/* ---------------- schemas: shared pieces ---------------- */

static const char *const lb_names[] = {"UNSPECIFIED", "LEAST_CONN",    "RANDOM", "PASSTHROUGH",
				       "ROUND_ROBIN", "LEAST_REQUEST", NULL};
static const char *const tls_modes[] = {"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", NULL};
static const char *const h2_policies[] = {"DEFAULT", "DO_NOT_UPGRADE", "UPGRADE", NULL};
static const char *const mtls_modes[] = {"UNSET", "DISABLE", "PERMISSIVE", "STRICT", NULL};
static const char *const authz_actions[] = {"ALLOW", "DENY", "AUDIT", "CUSTOM", NULL};
static const char *const se_locations[] = {"MESH_EXTERNAL", "MESH_INTERNAL", NULL};
static const char *const se_resolutions[] = {"NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", NULL};
static const char *const k8s_protocols[] = {"TCP", "UDP", "SCTP", NULL};
static const char *const svc_types[] = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
					NULL};
static const char *const derive_ports[] = {"FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT", NULL};
static const char *const cors_preflight[] = {"UNSPECIFIED", "FORWARD", "IGNORE", NULL};
static const char *const pp_versions[] = {"V1", "V2", NULL};

SCHEMA(meta_s, U_IGNORE, FS("name"), FS("namespace"), FMS("labels"), FMS("annotations"));
SCHEMA(percent_s, U_ERROR, FN("value"));
SCHEMA(port_sel_s, U_ERROR, FIR("number", PORT));
SCHEMA(destination_s, U_ERROR, FS("host"), FS("subset"), FO("port", port_sel_s));
SCHEMA(wl_selector_s, U_ERROR, FMS("matchLabels"));

/* ---------------- schemas: VirtualService ---------------- */

SCHEMA(strmatch_s, U_ERROR, FS("exact"), FS("prefix"), FS("regex"));
SCHEMA(http_match_s, U_ERROR, FS("name"), FO("uri", strmatch_s), FO("scheme", strmatch_s),
       FO("method", strmatch_s), FO("authority", strmatch_s), FMO("headers", strmatch_s),
       FIR("port", PORT), FMS("sourceLabels"), FLS("gateways"), FMO("queryParams", strmatch_s),
       FB("ignoreUriCase"), FMO("withoutHeaders", strmatch_s), FS("sourceNamespace"),
       FS("statPrefix"));
SCHEMA(header_ops_s, U_ERROR, FMS("set"), FMS("add"), FLS("remove"));
SCHEMA(headers_s, U_ERROR, FO("request", header_ops_s), FO("response", header_ops_s));
SCHEMA(http_dest_s, U_ERROR, FO("destination", destination_s), FIR("weight", I32),
       FO("headers", headers_s));
SCHEMA(route_dest_s, U_ERROR, FO("destination", destination_s), FIR("weight", I32));
SCHEMA(retries_s, U_WARN, FIR("attempts", I32), FD("perTryTimeout"), FS("retryOn"),
       FB("retryRemoteLocalities"), FB("retryIgnorePreviousHosts"), FD("backoff"));
SCHEMA(delay_s, U_WARN, FD("fixedDelay"), FD("exponentialDelay"), FO("percentage", percent_s),
       FIR("percent", I32));
SCHEMA(abort_s, U_WARN, FIR("httpStatus", I32), FS("grpcStatus"), FS("http2Error"),
       FO("percentage", percent_s));
SCHEMA(fault_s, U_WARN, FO("delay", delay_s), FO("abort", abort_s));
SCHEMA(redirect_s, U_WARN, FS("uri"), FS("authority"), FIR("port", PORT),
       FE("derivePort", derive_ports), FS("scheme"), FIR("redirectCode", U32));
SCHEMA(regex_rewrite_s, U_ERROR, FS("match"), FS("rewrite"));
SCHEMA(rewrite_s, U_WARN, FS("uri"), FS("authority"), FO("uriRegexRewrite", regex_rewrite_s));
SCHEMA(body_s, U_ERROR, FS("string"), FS("bytes"));
SCHEMA(direct_s, U_WARN, FIR("status", U32), FO("body", body_s));
SCHEMA(delegate_s, U_ERROR, FS("name"), FS("namespace"));
SCHEMA(mirror_s, U_WARN, FO("destination", destination_s), FO("percentage", percent_s));
SCHEMA(cors_s, U_WARN, FLO("allowOrigins", strmatch_s), FLS("allowOrigin"), FLS("allowMethods"),
       FLS("allowHeaders"), FLS("exposeHeaders"), FD("maxAge"), FB("allowCredentials"),
       FE("unmatchedPreflights", cors_preflight));
SCHEMA(http_route_s, U_ERROR, FS("name"), FLO("match", http_match_s), FLO("route", http_dest_s),
       FO("redirect", redirect_s), FO("directResponse", direct_s), FO("delegate", delegate_s),
       FO("rewrite", rewrite_s), FDA("timeout"), FO("retries", retries_s), FO("fault", fault_s),
       FO("mirror", destination_s), FLO("mirrors", mirror_s), FIR("mirrorPercent", U32),
       FIR("mirror_percent", U32), FO("mirrorPercentage", percent_s), FO("corsPolicy", cors_s),
       FO("headers", headers_s));
SCHEMA(tls_match_s, U_ERROR, FLS("sniHosts"), FLS("destinationSubnets"), FIR("port", PORT),
       FMS("sourceLabels"), FLS("gateways"), FS("sourceNamespace"));
SCHEMA(l4_match_s, U_ERROR, FLS("destinationSubnets"), FIR("port", PORT), FS("sourceSubnet"),
       FMS("sourceLabels"), FLS("gateways"), FS("sourceNamespace"));
SCHEMA(tls_route_s, U_ERROR, FLO("match", tls_match_s), FLO("route", route_dest_s));
SCHEMA(tcp_route_s, U_ERROR, FLO("match", l4_match_s), FLO("route", route_dest_s));
SCHEMA(vs_spec_s, U_ERROR, FLS("hosts"), FLS("gateways"), FLO("http", http_route_s),
       FLO("tls", tls_route_s), FLO("tcp", tcp_route_s), FLS("exportTo"));

/* ---------------- schemas: DestinationRule ---------------- */

SCHEMA(cookie_s, U_WARN, FS("name"), FS("path"), FDA("ttl"), FANY("attributes"));
SCHEMA(ring_hash_s, U_WARN, FIR("minimumRingSize", U32));
SCHEMA(maglev_s, U_WARN, FIR("tableSize", U32));
SCHEMA(chash_s, U_WARN, FS("httpHeaderName"), FO("httpCookie", cookie_s), FB("useSourceIp"),
       FS("httpQueryParameterName"), FO("ringHash", ring_hash_s), FO("maglev", maglev_s),
       FIR("minimumRingSize", U32));
SCHEMA(warmup_s, U_ERROR, FD("duration"), FN("minimumPercent"), FN("aggression"));
SCHEMA(lb_s, U_ERROR, FE("simple", lb_names), FO("consistentHash", chash_s),
       FAM("localityLbSetting"), FD("warmupDurationSecs"), FO("warmup", warmup_s));
SCHEMA(keepalive_s, U_WARN, FIR("probes", U32), FD("time"), FD("interval"));
SCHEMA(tcp_pool_s, U_WARN, FIR("maxConnections", I32), FD("connectTimeout"),
       FO("tcpKeepalive", keepalive_s), FD("maxConnectionDuration"), FD("idleTimeout"));
SCHEMA(h2_keepalive_s, U_WARN, FD("interval"), FD("timeout"));
SCHEMA(http_pool_s, U_WARN, FIR("http1MaxPendingRequests", I32), FIR("http2MaxRequests", I32),
       FIR("maxRequestsPerConnection", I32), FIR("maxRetries", I32), FD("idleTimeout"),
       FE("h2UpgradePolicy", h2_policies), FB("useClientProtocol"),
       FIR("maxConcurrentStreams", I32), FO("http2KeepAlive", h2_keepalive_s));
SCHEMA(pool_s, U_ERROR, FO("tcp", tcp_pool_s), FO("http", http_pool_s));
SCHEMA(outlier_s, U_ERROR, FIR("consecutiveErrors", I32), FB("splitExternalLocalOriginErrors"),
       FIR("consecutiveLocalOriginFailures", U32), FIR("consecutiveGatewayErrors", U32),
       FIR("consecutive5xxErrors", U32), FD("interval"), FD("baseEjectionTime"),
       FIR("maxEjectionPercent", I32), FIR("minHealthPercent", I32));
SCHEMA(client_tls_s, U_WARN, FE("mode", tls_modes), FS("clientCertificate"), FS("privateKey"),
       FS("caCertificates"), FS("credentialName"), FLS("subjectAltNames"), FS("sni"),
       FB("insecureSkipVerify"), FS("caCrl"));
SCHEMA(port_policy_s, U_ERROR, FO("port", port_sel_s), FO("loadBalancer", lb_s),
       FO("connectionPool", pool_s), FO("outlierDetection", outlier_s), FO("tls", client_tls_s));
SCHEMA(tunnel_s, U_WARN, FS("protocol"), FS("targetHost"), FIR("targetPort", PORT));
SCHEMA(proxy_proto_s, U_WARN, FE("version", pp_versions));
SCHEMA(policy_s, U_ERROR, FO("loadBalancer", lb_s), FO("connectionPool", pool_s),
       FO("outlierDetection", outlier_s), FO("tls", client_tls_s),
       FLO("portLevelSettings", port_policy_s), FO("tunnel", tunnel_s),
       FO("proxyProtocol", proxy_proto_s), FAM("retryBudget"));
SCHEMA(subset_s, U_ERROR, FS("name"), FMS("labels"), FO("trafficPolicy", policy_s));
SCHEMA(dr_spec_s, U_ERROR, FS("host"), FO("trafficPolicy", policy_s), FLO("subsets", subset_s),
       FLS("exportTo"), FO("workloadSelector", wl_selector_s));

/* ---------------- schemas: other Istio kinds ---------------- */

SCHEMA(we_spec_s, U_ERROR, FS("address"), FMI("ports", PORT), FMS("labels"), FS("network"),
       FS("locality"), FIR("weight", U32), FS("serviceAccount"));
SCHEMA(se_port_s, U_ERROR, FIR("number", PORT), FS("protocol"), FS("name"),
       FIR("targetPort", PORT));
SCHEMA(se_selector_s, U_ERROR, FMS("labels"));
SCHEMA(se_spec_s, U_WARN, FLS("hosts"), FLS("addresses"), FLO("ports", se_port_s),
       FE("location", se_locations), FE("resolution", se_resolutions), FLO("endpoints", we_spec_s),
       FO("workloadSelector", se_selector_s), FLS("exportTo"), FLS("subjectAltNames"));
SCHEMA(server_tls_s, U_WARN, FB("httpsRedirect"), FS("mode"), FS("serverCertificate"),
       FS("privateKey"), FS("caCertificates"), FS("caCrl"), FS("credentialName"),
       FLS("credentialNames"), FLS("subjectAltNames"), FLS("verifyCertificateSpki"),
       FLS("verifyCertificateHash"), FS("minProtocolVersion"), FS("maxProtocolVersion"),
       FLS("cipherSuites"), FANY("tlsCertificates"));
SCHEMA(server_s, U_WARN, FO("port", se_port_s), FS("bind"), FLS("hosts"), FO("tls", server_tls_s),
       FS("name"), FS("defaultEndpoint"));
SCHEMA(gw_spec_s, U_WARN, FMS("selector"), FLO("servers", server_s));
SCHEMA(mtls_s, U_ERROR, FE("mode", mtls_modes));
SCHEMA(pa_spec_s, U_WARN, FO("selector", wl_selector_s), FO("mtls", mtls_s),
       FMO("portLevelMtls", mtls_s));
SCHEMA(source_s, U_WARN, FLS("principals"), FLS("notPrincipals"), FLS("requestPrincipals"),
       FLS("notRequestPrincipals"), FLS("namespaces"), FLS("notNamespaces"), FLS("ipBlocks"),
       FLS("notIpBlocks"), FLS("remoteIpBlocks"), FLS("notRemoteIpBlocks"), FLS("serviceAccounts"),
       FLS("notServiceAccounts"), FLS("trustDomains"), FLS("notTrustDomains"));
SCHEMA(from_s, U_ERROR, FO("source", source_s));
SCHEMA(operation_s, U_WARN, FLS("hosts"), FLS("notHosts"), FLS("ports"), FLS("notPorts"),
       FLS("methods"), FLS("notMethods"), FLS("paths"), FLS("notPaths"));
SCHEMA(to_s, U_ERROR, FO("operation", operation_s));
SCHEMA(condition_s, U_ERROR, FS("key"), FLS("values"), FLS("notValues"));
SCHEMA(rule_s, U_ERROR, FLO("from", from_s), FLO("to", to_s), FLO("when", condition_s));
SCHEMA(provider_s, U_ERROR, FS("name"));
SCHEMA(ap_spec_s, U_WARN, FO("selector", wl_selector_s), FAM("targetRef"), FANY("targetRefs"),
       FLO("rules", rule_s), FE("action", authz_actions), FO("provider", provider_s));

/* ---------------- schemas: Kubernetes kinds (only the fields bpfmesh reads) ---------------- */

SCHEMA(svc_port_s, U_IGNORE, FS("name"), FIR("port", PORT), FIS("targetPort", PORT),
       FE("protocol", k8s_protocols), FS("appProtocol"), FIR("nodePort", PORT));
SCHEMA(svc_spec_s, U_IGNORE, FMS("selector"), FLO("ports", svc_port_s), FS("clusterIP"),
       FLS("clusterIPs"), FE("type", svc_types), FS("externalName"));
SCHEMA(cport_s, U_IGNORE, FIR("containerPort", PORT), FS("name"), FE("protocol", k8s_protocols));
SCHEMA(env_s, U_IGNORE, FS("name"), FS("value"));
SCHEMA(container_s, U_IGNORE, FS("name"), FLO("ports", cport_s), FLO("env", env_s));
SCHEMA(pod_spec_s, U_IGNORE, FLO("containers", container_s), FLO("initContainers", container_s),
       FS("nodeName"), FS("serviceAccountName"), FS("serviceAccount"), FB("hostNetwork"));
SCHEMA(pod_ip_s, U_IGNORE, FS("ip"));
SCHEMA(pod_status_s, U_IGNORE, FS("podIP"), FLO("podIPs", pod_ip_s));
SCHEMA(template_s, U_IGNORE, FO("metadata", meta_s), FO("spec", pod_spec_s));
SCHEMA(label_selector_s, U_IGNORE, FMS("matchLabels"), FANY("matchExpressions"));
SCHEMA(deploy_spec_s, U_IGNORE, FIR("replicas", 0, INT32_MAX), FO("selector", label_selector_s),
       FO("template", template_s));

/* Top level of each kind: the API server rejects unknown top-level fields of any kind. */
#define ROOT(var, spec_field)                                                                      \
	SCHEMA(var, U_ERROR, FS("apiVersion"), FS("kind"), FO("metadata", meta_s), spec_field,     \
	       FANY("status"))
ROOT(ns_root_s, FAM("spec"));
ROOT(svc_root_s, FO("spec", svc_spec_s));
ROOT(deploy_root_s, FO("spec", deploy_spec_s));
SCHEMA(pod_root_s, U_ERROR, FS("apiVersion"), FS("kind"), FO("metadata", meta_s),
       FO("spec", pod_spec_s), FO("status", pod_status_s));
ROOT(we_root_s, FO("spec", we_spec_s));
ROOT(vs_root_s, FO("spec", vs_spec_s));
ROOT(dr_root_s, FO("spec", dr_spec_s));
ROOT(gw_root_s, FO("spec", gw_spec_s));
ROOT(se_root_s, FO("spec", se_spec_s));
ROOT(pa_root_s, FO("spec", pa_spec_s));
ROOT(ap_root_s, FO("spec", ap_spec_s));
SCHEMA(loose_root_s, U_IGNORE, FS("apiVersion"), FS("kind"), FO("metadata", meta_s));

/* ---------------- rules: shared ---------------- */

static bool has(const struct ynode *map, const char *key)
{
	return ymap_get(map, key) != NULL;
}

static void check_labels(struct vctx *v, const struct ynode *map, const char *path)
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
static void check_selector_labels(struct vctx *v, const struct ynode *owner, const char *key,
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

static bool str_in_seq(const struct ynode *seq, int upto, const char *s)
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
static int seen_at(struct htab *h, const char *a, const char *b, int idx)
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
static void check_export_to(struct vctx *v, const struct ynode *spec, const char *path,
			    bool service_entry)
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
static void check_gateway_names(struct vctx *v, const struct ynode *l, const char *path)
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
static bool host_matches(const char *a, const char *b)
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
static bool host_subset_of(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (a[0] == '*')
		return b[0] == '*' && la >= lb && !strcmp(a + la - (lb - 1), b + 1);
	if (b[0] == '*')
		return la >= lb - 1 && !strcmp(a + la - (lb - 1), b + 1);
	return strcmp(a, b) == 0;
}

static void check_percentage(struct vctx *v, const struct ynode *owner, const char *path)
{
	const struct ynode *pct = g(owner, "percentage"), *val = g(pct, "value");
	char p[PATHMAX];
	double x;

	if (ynode_num(val, &x) == 0 && (x < 0 || x > 100 || (x > 0 && x < 0.0001)))
		vctx_err(v, val, pjoin(p, path, "percentage.value"),
			 "percentage %g is neither 0.0, nor in range [0.0001, 100.0]", x);
}

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
	static const char *const grpc[] = {"OK",
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
		else if (has(abort, "grpcStatus") && !in_strs(ymap_str(abort, "grpcStatus"), grpc))
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

static void vs_rules(struct vctx *v, const struct ynode *spec)
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

static void dr_rules(struct vctx *v, const struct ynode *spec)
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

/* ---------------- rules: WorkloadEntry, ServiceEntry ---------------- */

static bool str_in_list_field(const struct ynode *l, const char *field, const char *s)
{
	for (int i = 0; i < count(l); i++)
		if (ymap_str(l->items[i], field) && strcmp(ymap_str(l->items[i], field), s) == 0)
			return true;
	return false;
}

static void check_uds(struct vctx *v, const struct ynode *we, const char *addr, const char *path)
{
	const char *p = addr + strlen("unix://");
	char q[PATHMAX];

	pjoin(q, path, "address");
	if (!*p)
		vctx_err(v, g(we, "address"), q, "unix address must not be empty");
	else if (*p != '@' && (*p != '/' || p[strlen(p) - 1] == '/'))
		vctx_err(v, g(we, "address"), q, "%s is not an absolute path to a file", p);
	if (count(g(we, "ports")))
		vctx_err(v, g(we, "ports"), pjoin(q, path, "ports"),
			 "unix endpoint %s must not include ports", addr);
}

/* Istio's validateWorkloadEntry; se_ports is the ServiceEntry's port list for endpoints. */
static void we_check(struct vctx *v, const struct ynode *we, const char *path, bool allow_fqdn,
		     const struct ynode *se_ports)
{
	const char *addr = ymap_str(we, "address");
	const struct ynode *ports = g(we, "ports");
	char p[PATHMAX], q[PATHMAX], why[320];

	pjoin(q, path, "address");
	if (!addr || !*addr) {
		if (!ymap_str(we, "network") || !*ymap_str(we, "network"))
			vctx_err(v, we, q, "required");
		else
			vctx_warn(v, we, q, "address is unset with network \"%s\"",
				  ymap_str(we, "network"));
	} else if (strncmp(addr, "unix://", 7) == 0) {
		check_uds(v, we, addr, path);
	} else if (!valid_ip(addr) && !allow_fqdn) {
		vctx_err(v, g(we, "address"), q,
			 "endpoint address \"%s\" is not a valid IP address", addr);
	} else if (!valid_ip(addr) && !valid_fqdn(addr, why, sizeof(why))) {
		vctx_err(v, g(we, "address"), q,
			 "endpoint address \"%s\" is not a valid FQDN or an IP address", addr);
	}
	for (int i = 0; i < count(ports); i++) {
		const char *name = ports->pairs[i].key;

		pkey(p, pjoin(q, path, "ports"), name);
		if (!dns_label(name, true))
			vctx_err(v, ports->pairs[i].val, p, "invalid port name: %s", name);
		else if (se_ports && !str_in_list_field(se_ports, "name", name))
			vctx_err(v, ports->pairs[i].val, p,
				 "endpoint port %s is not defined by the "
				 "service entry",
				 name);
	}
	check_labels(v, g(we, "labels"), pjoin(p, path, "labels"));
}

static void we_rules(struct vctx *v, const struct ynode *spec)
{
	we_check(v, spec, "spec", true, NULL);
}

enum proto { P_UNSUPPORTED, P_TCP, P_UDP, P_HTTP, P_HTTP2, P_GRPC, P_HTTPS, P_TLS, P_OTHER_TCP };

/* Istio's protocol.Parse (case-insensitive). */
static enum proto parse_proto(const char *s)
{
	static const struct {
		const char *name;
		enum proto p;
	} t[] = {{"tcp", P_TCP},	 {"udp", P_UDP},	 {"http", P_HTTP},
		 {"http2", P_HTTP2},	 {"grpc", P_GRPC},	 {"grpc-web", P_GRPC},
		 {"http_proxy", P_HTTP}, {"https", P_HTTPS},	 {"tls", P_TLS},
		 {"mongo", P_OTHER_TCP}, {"redis", P_OTHER_TCP}, {"mysql", P_OTHER_TCP}};

	for (size_t i = 0; s && i < sizeof(t) / sizeof(t[0]); i++)
		if (strcasecmp(s, t[i].name) == 0)
			return t[i].p;
	return P_UNSUPPORTED;
}

static bool proto_http(enum proto p)
{
	return p == P_HTTP || p == P_HTTP2 || p == P_GRPC;
}

static bool proto_tls(enum proto p)
{
	return p == P_HTTPS || p == P_TLS;
}

static void se_ports_rules(struct vctx *v, const struct ynode *spec, const char *res)
{
	const struct ynode *ports = g(spec, "ports");
	char p[PATHMAX], q[PATHMAX];
	struct htab seen = {0};

	for (int i = 0; i < count(ports); i++) {
		const struct ynode *pt = ports->items[i];
		const char *name = ymap_str(pt, "name") ? ymap_str(pt, "name") : "";
		const char *proto = ymap_str(pt, "protocol");
		int64_t num = ymap_int(pt, "number", 0);

		pidx(p, "spec.ports", i);
		{
			char nums[32];

			snprintf(nums, sizeof(nums), "%lld", (long long)num);
			if (seen_at(&seen, "name", name, i) >= 0)
				vctx_err(v, pt, pjoin(q, p, "name"),
					 "service entry port name \"%s\" already defined", name);
			if (seen_at(&seen, "number", nums, i) >= 0)
				vctx_err(v, pt, pjoin(q, p, "number"),
					 "service entry port %lld already defined", (long long)num);
		}
		if (!has(pt, "number"))
			vctx_err(v, pt, pjoin(q, p, "number"), "required");
		if (!dns_label(name, true))
			vctx_err(v, pt, pjoin(q, p, "name"), "invalid port name: %s", name);
		if (proto && *proto && parse_proto(proto) == P_UNSUPPORTED)
			vctx_err(v, g(pt, "protocol"), pjoin(q, p, "protocol"),
				 "unsupported protocol: %s", proto);
		if (has(pt, "targetPort") && strcmp(res, "NONE") == 0)
			vctx_warn(v, g(pt, "targetPort"), pjoin(q, p, "targetPort"),
				  "targetPort has no effect when resolution mode is NONE");
	}
	h_free(&seen);
}

static void se_endpoint_rules(struct vctx *v, const struct ynode *spec, const char *res)
{
	const struct ynode *eps = g(spec, "endpoints"), *hosts = g(spec, "hosts");
	bool dns = !strcmp(res, "DNS") || !strcmp(res, "DNS_ROUND_ROBIN");
	char p[PATHMAX], why[320];

	if (!strcmp(res, "NONE") && count(eps))
		vctx_err(v, eps, "spec.endpoints",
			 "no endpoints should be provided for resolution "
			 "type none");
	if (!strcmp(res, "DNS_ROUND_ROBIN") && count(eps) > 1)
		vctx_err(v, eps, "spec.endpoints",
			 "there must only be 0 or 1 endpoint for resolution "
			 "mode DNS_ROUND_ROBIN");
	if (has(spec, "workloadSelector") && (dns || !strcmp(res, "NONE")))
		vctx_warn(v, g(spec, "workloadSelector"), "spec.workloadSelector",
			  "workloadSelector should not be set when resolution mode is %s", res);
	for (int i = 0; dns && !count(eps) && i < count(hosts); i++)
		if (!valid_fqdn(hosts->items[i]->str, why, sizeof(why)))
			vctx_err(
			    v, hosts->items[i], pidx(p, "spec.hosts", i),
			    "hosts must be FQDN if no endpoints are provided for resolution mode "
			    "%s",
			    res);
	for (int i = 0; strcmp(res, "NONE") && i < count(eps); i++)
		we_check(v, eps->items[i], pidx(p, "spec.endpoints", i), dns, g(spec, "ports"));
}

static void se_rules(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *hosts = g(spec, "hosts"), *addrs = g(spec, "addresses");
	const struct ynode *sel = g(spec, "workloadSelector"), *ports = g(spec, "ports");
	const char *res = ymap_str(spec, "resolution") ? ymap_str(spec, "resolution") : "NONE";
	bool cidr = false;
	char p[PATHMAX], why[320];

	if (sel)
		check_selector_labels(v, sel, "labels", "spec.workloadSelector");
	if (sel && ymap_find(spec, "endpoints"))
		vctx_err(v, sel, "spec.workloadSelector",
			 "only one of WorkloadSelector or Endpoints is allowed in Service Entry");
	if (count(hosts) == 0)
		vctx_err(v, spec, "spec.hosts", "required");
	for (int i = 0; i < count(hosts); i++) {
		const char *h = hosts->items[i]->str;

		pidx(p, "spec.hosts", i);
		if (strcmp(h, "*") == 0)
			vctx_err(v, hosts->items[i], p,
				 "invalid host *: hostname cannot be wildcard");
		else if (!valid_wildcard_domain(h, why, sizeof(why)))
			vctx_err(v, hosts->items[i], p, "%s", why);
		else if (strchr(h, '*') && strncmp(h, "*.", 2))
			vctx_warn(v, hosts->items[i], p, "partial wildcard \"%s\" not allowed", h);
	}
	for (int i = 0; i < count(addrs); i++) {
		cidr |= strchr(addrs->items[i]->str, '/') != NULL;
		if (!valid_ip_or_cidr(addrs->items[i]->str))
			vctx_err(v, addrs->items[i], pidx(p, "spec.addresses", i),
				 "%s is not a valid IP address or CIDR block",
				 addrs->items[i]->str);
	}
	if (cidr && strcmp(res, "NONE") && strcmp(res, "STATIC"))
		vctx_err(v, addrs, "spec.addresses",
			 "CIDR addresses are allowed only for NONE/STATIC resolution types");
	se_ports_rules(v, spec, res);
	se_endpoint_rules(v, spec, res);
	for (int i = 0; strcmp(res, "NONE") && count(hosts) > 1 && i < count(ports); i++) {
		enum proto pr = parse_proto(ymap_str(ports->items[i], "protocol"));

		if (!proto_http(pr) && !proto_tls(pr)) {
			vctx_err(v, ports, "spec.ports",
				 "multiple hosts provided with non-HTTP, non-TLS ports");
			break;
		}
	}
	check_export_to(v, spec, "spec.exportTo", true);
}

/* ---------------- rules: Gateway ---------------- */

static void check_gateway_host(struct vctx *v, const struct ynode *n, const char *path)
{
	const char *h = n->str, *slash = strchr(h, '/');
	char why[320];

	if (slash) {
		if (slash == h || !slash[1]) {
			vctx_err(v, n, path,
				 "config namespace and dnsName in host entry cannot be empty");
			return;
		}
		if (!((slash - h == 1 && (h[0] == '*' || h[0] == '.')) ||
		      dns_label_n(h, slash - h, true)))
			vctx_err(v, n, path, "invalid namespace value \"%.*s\" in gateway",
				 (int)(slash - h), h);
		h = slash + 1;
	}
	if (strcmp(h, "*") && !strchr(h, '.'))
		vctx_err(v, n, path, "short names (non FQDN) are not allowed");
	else if (!valid_wildcard_domain(h, why, sizeof(why)) && !valid_ip(h))
		vctx_err(v, n, path, "%s", why);
	else if (strchr(h, '*') && strlen(h) != 1 && strncmp(h, "*.", 2))
		vctx_err(v, n, path, "partial wildcard \"%s\" not allowed", h);
}

static void check_server(struct vctx *v, const struct ynode *s, const char *path)
{
	const struct ynode *hosts = g(s, "hosts"), *port = g(s, "port"), *tls = g(s, "tls");
	enum proto pr = parse_proto(ymap_str(port, "protocol"));
	char p[PATHMAX], q[PATHMAX];

	if (count(hosts) == 0)
		vctx_err(v, s, pjoin(p, path, "hosts"),
			 "server config must contain at least one host");
	for (int i = 0; i < count(hosts); i++)
		check_gateway_host(v, hosts->items[i], pidx(p, pjoin(q, path, "hosts"), i));
	pjoin(p, path, "port");
	if (!port) {
		vctx_err(v, s, p, "required");
		return;
	}
	if (pr == P_UNSUPPORTED || pr == P_UDP)
		vctx_err(v, port, p,
			 "invalid protocol \"%s\", supported protocols are HTTP, HTTP2, "
			 "GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
			 ymap_str(port, "protocol") ? ymap_str(port, "protocol") : "");
	if (!has(port, "number") &&
	    !(ymap_str(s, "bind") && !strncmp(ymap_str(s, "bind"), "unix://", 7)))
		vctx_err(v, port, pjoin(q, p, "number"), "required");
	if (has(port, "targetPort"))
		vctx_err(v, port, pjoin(q, p, "targetPort"),
			 "targetPort has no impact on Gateways");
	if (!ymap_str(port, "name") || !*ymap_str(port, "name"))
		vctx_err(v, port, pjoin(q, p, "name"), "port name must be set");
	if (proto_tls(pr) && !tls)
		vctx_err(v, s, path, "server must have TLS settings for HTTPS/TLS protocols");
	else if (!proto_tls(pr) && tls && !proto_http(pr))
		vctx_err(v, tls, path, "server cannot have TLS settings for non HTTPS/TLS ports");
	else if (!proto_tls(pr) && tls &&
		 (has(tls, "caCertificates") || has(tls, "privateKey") ||
		  has(tls, "serverCertificate") || !ymap_bool(tls, "httpsRedirect", false)))
		vctx_err(v, tls, path, "server cannot have TLS settings for plain text HTTP ports");
}

static void gw_rules(struct vctx *v, const struct ynode *root, const struct ynode *spec)
{
	const char *name = ymap_str(g(root, "metadata"), "name");
	const struct ynode *servers = g(spec, "servers");
	struct htab seen = {0};
	char p[PATHMAX];

	if (name && !dns_label(name, true))
		vctx_err(v, g(g(root, "metadata"), "name"), "metadata.name",
			 "invalid gateway name: \"%s\"", name);
	if (count(servers) == 0)
		vctx_err(v, spec, "spec.servers", "gateway must have at least one server");
	for (int i = 0; i < count(servers); i++) {
		const char *pn = ymap_str(g(servers->items[i], "port"), "name");

		check_server(v, servers->items[i], pidx(p, "spec.servers", i));
		if (pn && seen_at(&seen, pn, NULL, i) >= 0)
			vctx_err(v, servers->items[i], p,
				 "port names in servers must be unique: duplicate name %s", pn);
	}
	h_free(&seen);
}

/* ---------------- rules: PeerAuthentication, AuthorizationPolicy ---------------- */

static void pa_rules(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *sel = g(spec, "selector"), *plm = g(spec, "portLevelMtls");
	bool no_selector = count(g(sel, "matchLabels")) == 0;
	char p[PATHMAX];

	if (sel)
		check_selector_labels(v, sel, "matchLabels", "spec.selector");
	if (plm && plm->n == 0)
		vctx_err(v, plm, "spec.portLevelMtls", "must have at least one entry when set");
	else if (plm && no_selector)
		vctx_err(v, plm, "spec.portLevelMtls",
			 "portLevelMtls requires a selector with labels "
			 "(mesh/namespace peer authentication cannot "
			 "have port level mTLS)");
	for (int i = 0; i < count(plm); i++) {
		const char *k = plm->pairs[i].key;
		char *end;
		long port = strtol(k, &end, 10);

		pkey(p, "spec.portLevelMtls", k);
		if (!*k || *end || !all_digits(k, strlen(k)))
			vctx_err(v, plm->pairs[i].val, p, "port \"%s\" is not a number", k);
		else if (port < 1 || port > 65535)
			vctx_err(v, plm->pairs[i].val, p,
				 "port must be between 1 and 65535, got %s", k);
	}
}

static void check_values(struct vctx *v, const struct ynode *owner, const char *key,
			 const char *path, bool ips, bool ports)
{
	const struct ynode *l = g(owner, key);
	char p[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(l); i++) {
		const char *s = l->items[i]->str;

		pidx(p, pjoin(q, path, key), i);
		if (!*s)
			vctx_err(v, l->items[i], p, "empty value is not allowed");
		else if (ips && !valid_ip_or_cidr(s))
			vctx_err(v, l->items[i], p, "invalid IP address or CIDR range: %s", s);
		else if (ports && (!all_digits(s, strlen(s)) || atol(s) < 1 || atol(s) > 65535))
			vctx_err(v, l->items[i], p, "invalid port: %s", s);
	}
}

static void check_source(struct vctx *v, const struct ynode *src, const char *path)
{
	static const char *const ipf[] = {"ipBlocks", "notIpBlocks", "remoteIpBlocks",
					  "notRemoteIpBlocks", NULL};
	static const char *const strf[] = {
	    "principals",	    "notPrincipals",	  "requestPrincipals",
	    "notRequestPrincipals", "namespaces",	  "notNamespaces",
	    "serviceAccounts",	    "notServiceAccounts", NULL};
	bool sa = has(src, "serviceAccounts") || has(src, "notServiceAccounts");

	if (count(src) == 0)
		vctx_err(v, src, path, "`from.source` must not be empty");
	for (int i = 0; ipf[i]; i++)
		check_values(v, src, ipf[i], path, true, false);
	for (int i = 0; strf[i]; i++)
		check_values(v, src, strf[i], path, false, false);
	if (sa && (has(src, "namespaces") || has(src, "notNamespaces") || has(src, "principals") ||
		   has(src, "notPrincipals")))
		vctx_err(v, src, path, "cannot set serviceAccounts with namespaces or principals");
}

static void check_operation(struct vctx *v, const struct ynode *op, const char *path)
{
	static const char *const strf[] = {"hosts", "notHosts", "methods", "notMethods",
					   "paths", "notPaths", NULL};

	if (count(op) == 0)
		vctx_err(v, op, path, "`to.operation` must not be empty");
	check_values(v, op, "ports", path, false, true);
	check_values(v, op, "notPorts", path, false, true);
	for (int i = 0; strf[i]; i++)
		check_values(v, op, strf[i], path, false, false);
}

static void check_condition(struct vctx *v, const struct ynode *c, const char *path)
{
	static const char *const ip_keys[] = {"source.ip", "remote.ip", "destination.ip", NULL};
	const char *key = ymap_str(c, "key");
	bool ips = in_strs(key, ip_keys), port = key && !strcmp(key, "destination.port");
	char p[PATHMAX];

	if (!key || !*key)
		vctx_err(v, c, pjoin(p, path, "key"), "required");
	else if (!count(g(c, "values")) && !count(g(c, "notValues")))
		vctx_err(v, c, path,
			 "at least one of `values` or `notValues` must be set for key %s", key);
	check_values(v, c, "values", path, ips, port);
	check_values(v, c, "notValues", path, ips, port);
}

static void check_custom_rule(struct vctx *v, const struct ynode *rule, const char *path)
{
	static const char *const nf[] = {
	    "namespaces",	 "notNamespaces",	 "principals", "notPrincipals",
	    "requestPrincipals", "notRequestPrincipals", NULL};
	const struct ynode *from = g(rule, "from"), *when = g(rule, "when");

	for (int i = 0; i < count(from); i++)
		for (int k = 0; nf[k]; k++)
			if (has(g(from->items[i], "source"), nf[k]))
				vctx_err(v, from->items[i], path,
					 "From.%s is currently not supported with CUSTOM action",
					 nf[k]);
	for (int i = 0; i < count(when); i++) {
		const char *key = ymap_str(when->items[i], "key");

		if (key && (!strcmp(key, "source.namespace") || !strcmp(key, "source.principal") ||
			    !strncmp(key, "request.auth.", 13)))
			vctx_err(v, when->items[i], path,
				 "%s is currently not supported with CUSTOM action", key);
	}
}

static void check_rule(struct vctx *v, const struct ynode *rule, const char *path, bool custom)
{
	static const struct {
		const char *list, *item;
	} parts[] = {{"from", "source"}, {"to", "operation"}};
	char p[PATHMAX], q[PATHMAX], s[PATHMAX];

	for (int k = 0; k < 2; k++) {
		const struct ynode *l = ymap_find(rule, parts[k].list);

		pjoin(q, path, parts[k].list);
		if (ynode_is_seq(l) && l->n == 0)
			vctx_err(v, l, q, "`%s` must not be empty", parts[k].list);
		for (int i = 0; i < count(l); i++) {
			const struct ynode *it = g(l->items[i], parts[k].item);

			pjoin(s, pidx(p, q, i), parts[k].item);
			if (!it)
				vctx_err(v, l->items[i], s, "required");
			else if (k == 0)
				check_source(v, it, s);
			else
				check_operation(v, it, s);
		}
	}
	for (int i = 0; i < count(g(rule, "when")); i++)
		check_condition(v, g(rule, "when")->items[i], pidx(p, pjoin(q, path, "when"), i));
	if (custom)
		check_custom_rule(v, rule, path);
}

static void ap_rules(struct vctx *v, const struct ynode *spec)
{
	const char *action = ymap_str(spec, "action") ? ymap_str(spec, "action") : "ALLOW";
	const struct ynode *rules = ymap_find(spec, "rules");
	bool custom = !strcmp(action, "CUSTOM");
	char p[PATHMAX];

	if (has(spec, "selector") + has(spec, "targetRef") + (count(g(spec, "targetRefs")) > 0) > 1)
		vctx_err(v, spec, "spec", "only one of targetRefs or workloadSelector can be set");
	if (has(spec, "selector"))
		check_selector_labels(v, g(spec, "selector"), "matchLabels", "spec.selector");
	if (custom && !rules)
		vctx_err(v, spec, "spec.rules",
			 "CUSTOM action without `rules` is meaningless as it "
			 "will never be triggered, add an empty rule `{}` if "
			 "you want it be triggered for every request");
	else if (custom && !ymap_str(g(spec, "provider"), "name"))
		vctx_err(v, spec, "spec.provider.name", "`provider.name` must not be empty");
	if (has(spec, "provider") && !custom)
		vctx_err(v, g(spec, "provider"), "spec.provider",
			 "`provider` must not be with non CUSTOM action, found %s", action);
	if (!strcmp(action, "DENY") && !rules)
		vctx_err(v, spec, "spec.rules",
			 "DENY action without `rules` is meaningless as it "
			 "will never be triggered, add an empty rule `{}` if "
			 "you want it be triggered for every request");
	for (int i = 0; i < count(rules); i++) {
		pidx(p, "spec.rules", i);
		if (ynode_is_null(rules->items[i]))
			vctx_err(v, rules->items[i], p, "`rule` must not be nil");
		else
			check_rule(v, rules->items[i], p, custom);
	}
}

/* ---------------- rules: Kubernetes kinds ---------------- */

static void check_meta(struct vctx *v, enum obj_kind kind, const struct ynode *root)
{
	const struct ynode *meta = g(root, "metadata");
	const char *name = ymap_str(meta, "name"), *ns = ymap_str(meta, "namespace");
	bool ok;

	if (!name || !*name) {
		vctx_err(v, meta ? meta : root, "metadata.name", "required");
		return;
	}
	if (kind == OBJ_NAMESPACE)
		ok = dns_label(name, false);
	else if (kind == OBJ_SERVICE)
		ok = dns1035_label(name);
	else
		ok = dns_subdomain(name);
	if (!ok)
		vctx_err(v, g(meta, "name"), "metadata.name",
			 "invalid name \"%s\": must be lower case letters, digits and '-'%s", name,
			 kind == OBJ_SERVICE ? ", starting with a letter" : "");
	if (ns && obj_is_namespaced(kind) && !dns_label(ns, false))
		vctx_err(v, g(meta, "namespace"), "metadata.namespace", "invalid namespace \"%s\"",
			 ns);
	check_labels(v, g(meta, "labels"), "metadata.labels");
}

static void svc_port_rules(struct vctx *v, const struct ynode *ports, int i, struct htab *seen)
{
	const struct ynode *pt = ports->items[i], *tp = g(pt, "targetPort");
	const char *name = ymap_str(pt, "name");
	const char *proto = ymap_str(pt, "protocol") ? ymap_str(pt, "protocol") : "TCP";
	char p[PATHMAX], q[PATHMAX];

	pidx(p, "spec.ports", i);
	if (!has(pt, "port"))
		vctx_err(v, pt, pjoin(q, p, "port"), "required");
	if (!name && ports->n > 1)
		vctx_err(v, pt, pjoin(q, p, "name"),
			 "required when a Service has more than one port");
	else if (name && !dns_label(name, false))
		vctx_err(v, g(pt, "name"), pjoin(q, p, "name"),
			 "invalid port name \"%s\": must be a lower case RFC 1123 label", name);
	if (ynode_str(tp) && !iana_svc_name(tp->str))
		vctx_err(
		    v, tp, pjoin(q, p, "targetPort"),
		    "invalid port name \"%s\": must be at most 15 lower case letters, digits and "
		    "'-', with a letter",
		    tp->str);
	if (name && seen_at(seen, "name", name, i) >= 0)
		vctx_err(v, g(pt, "name"), pjoin(q, p, "name"), "duplicate port name \"%s\"", name);
	if (has(pt, "port")) {
		char num[32];

		snprintf(num, sizeof(num), "%lld/%s", (long long)ymap_int(pt, "port", 0), proto);
		if (seen_at(seen, "port", num, i) >= 0)
			vctx_err(v, g(pt, "port"), pjoin(q, p, "port"), "duplicate port %lld/%s",
				 (long long)ymap_int(pt, "port", 0), proto);
	}
}

static void svc_rules(struct vctx *v, const struct ynode *spec)
{
	const char *type = ymap_str(spec, "type") ? ymap_str(spec, "type") : "ClusterIP";
	const char *cip = ymap_str(spec, "clusterIP");
	const struct ynode *ports = g(spec, "ports"), *cips = g(spec, "clusterIPs");
	bool headless = cip && strcmp(cip, "None") == 0;
	bool external = strcmp(type, "ExternalName") == 0;
	char p[PATHMAX];

	if (external && !ymap_str(spec, "externalName"))
		vctx_err(v, spec, "spec.externalName", "required for type ExternalName");
	if (count(ports) == 0 && !headless && !external)
		vctx_err(v, spec, "spec.ports",
			 "required (only a headless Service, clusterIP: None, "
			 "may have no ports)");
	struct htab seen = {0};

	for (int i = 0; i < count(ports); i++)
		svc_port_rules(v, ports, i, &seen);
	h_free(&seen);
	if (cip && *cip && !headless && !valid_ip(cip))
		vctx_err(v, g(spec, "clusterIP"), "spec.clusterIP",
			 "must be a valid IP address or None, got \"%s\"", cip);
	if (count(cips) > 2)
		vctx_err(v, cips, "spec.clusterIPs", "at most two entries (one per IP family)");
	for (int i = 0; i < count(cips); i++)
		if (strcmp(cips->items[i]->str, "None") && !valid_ip(cips->items[i]->str))
			vctx_err(v, cips->items[i], pidx(p, "spec.clusterIPs", i),
				 "must be a valid IP address or None, got \"%s\"",
				 cips->items[i]->str);
	if (cip && *cip && count(cips) && strcmp(cip, cips->items[0]->str))
		vctx_err(v, cips, "spec.clusterIPs", "first entry must match spec.clusterIP");
	check_labels(v, g(spec, "selector"), "spec.selector");
}

static void pod_spec_rules(struct vctx *v, const struct ynode *ps, const char *path)
{
	const struct ynode *cs = g(ps, "containers");
	const char *node = ymap_str(ps, "nodeName");
	char p[PATHMAX], q[PATHMAX], r[PATHMAX];

	/* the API server's ValidateNodeName: a DNS-1123 subdomain */
	if (node && !dns_subdomain(node))
		vctx_err(v, g(ps, "nodeName"), pjoin(p, path, "nodeName"),
			 "invalid node name \"%s\": must be lower case letters, digits, '-' and "
			 "'.' (a DNS-1123 subdomain)",
			 node);

	if (count(cs) == 0)
		vctx_err(v, ps ? ps : NULL, pjoin(p, path, "containers"), "required");
	for (int i = 0; i < count(cs); i++) {
		const struct ynode *ports = g(cs->items[i], "ports");

		pidx(p, pjoin(q, path, "containers"), i);
		if (!ymap_str(cs->items[i], "name"))
			vctx_err(v, cs->items[i], pjoin(q, p, "name"), "required");
		for (int k = 0; k < count(ports); k++) {
			const char *n = ymap_str(ports->items[k], "name");

			pidx(r, pjoin(q, p, "ports"), k);
			if (!has(ports->items[k], "containerPort"))
				vctx_err(v, ports->items[k], pjoin(q, r, "containerPort"),
					 "required");
			if (n && !iana_svc_name(n))
				vctx_err(v, g(ports->items[k], "name"), pjoin(q, r, "name"),
					 "invalid port name \"%s\": must be at most 15 lower case "
					 "letters, digits and '-', with a letter",
					 n);
		}
	}
}

static void deploy_rules(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *tmpl = g(spec, "template"), *sel = g(spec, "selector");
	const struct ynode *labels = g(g(tmpl, "metadata"), "labels"), *ml = g(sel, "matchLabels");

	if (!sel || (count(ml) == 0 && !has(sel, "matchExpressions")))
		vctx_err(v, sel ? sel : spec, "spec.selector", "required");
	for (int i = 0; i < count(ml); i++) {
		const char *want = ynode_text(ml->pairs[i].val);
		const char *got = ymap_str(labels, ml->pairs[i].key);

		if (!got || strcmp(got, want ? want : "")) {
			vctx_err(
			    v, sel, "spec.selector",
			    "does not match the template labels (spec.template.metadata.labels)");
			break;
		}
	}
	check_labels(v, ml, "spec.selector.matchLabels");
	check_labels(v, labels, "spec.template.metadata.labels");
	if (!tmpl)
		vctx_err(v, spec, "spec.template", "required");
	else
		pod_spec_rules(v, g(tmpl, "spec"), "spec.template.spec");
}

static void pod_rules(struct vctx *v, const struct ynode *root)
{
	const struct ynode *st = g(root, "status"), *ips = g(st, "podIPs");
	const char *ip = ymap_str(st, "podIP");
	char p[PATHMAX];

	pod_spec_rules(v, g(root, "spec"), "spec");
	if (ip && !valid_ip(ip))
		vctx_err(v, g(st, "podIP"), "status.podIP", "invalid IP address \"%s\"", ip);
	for (int i = 0; i < count(ips); i++) {
		const char *s = ymap_str(ips->items[i], "ip");

		if (s && !valid_ip(s))
			vctx_err(v, ips->items[i], pidx(p, "status.podIPs", i),
				 "invalid IP address "
				 "\"%s\"",
				 s);
	}
}

/* ---------------- fields accepted but not acted on yet ---------------- */

static void note_unenforced(struct vctx *v, const struct ynode *map, const char *path,
			    const char *const *fields)
{
	char p[PATHMAX];

	for (; *fields; fields++)
		if (has(map, *fields))
			vctx_warn(v, g(map, *fields), pjoin(p, path, *fields), "not yet enforced");
}

static void vs_notices(struct vctx *v, const struct ynode *spec)
{
	static const char *const http_f[] = {
	    "retries",	      "timeout",	  "fault",   "mirror",	 "mirrors", "mirrorPercent",
	    "mirror_percent", "mirrorPercentage", "rewrite", "redirect", "headers", "corsPolicy",
	    "directResponse", "delegate",	  NULL};
	static const char *const dest_f[] = {"headers", NULL};
	const struct ynode *http = g(spec, "http"), *gws = g(spec, "gateways");
	char p[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(http); i++) {
		const struct ynode *route = g(http->items[i], "route");

		pidx(p, "spec.http", i);
		note_unenforced(v, http->items[i], p, http_f);
		for (int k = 0; k < count(route); k++)
			note_unenforced(v, route->items[k], pidx(q, pjoin(q, p, "route"), k),
					dest_f);
	}
	for (int i = 0; i < count(gws); i++)
		if (strcmp(gws->items[i]->str, "mesh"))
			vctx_warn(v, gws->items[i], pidx(p, "spec.gateways", i),
				  "not yet enforced (bpfmesh has no ingress or egress gateway)");
	note_unenforced(v, spec, "spec", (const char *const[]){"exportTo", NULL});
}

static void policy_notices(struct vctx *v, const struct ynode *tp, const char *path)
{
	static const char *const tp_f[] = {"tls",	    "portLevelSettings", "tunnel",
					   "proxyProtocol", "retryBudget",	 NULL};
	static const char *const lb_f[] = {"localityLbSetting", "warmupDurationSecs", "warmup",
					   NULL};
	static const char *const ch_f[] = {
	    "httpHeaderName",  "httpCookie", "httpQueryParameterName", "ringHash", "maglev",
	    "minimumRingSize", NULL};
	static const char *const cp_f[] = {"http", NULL};
	static const char *const tcp_f[] = {"tcpKeepalive", "maxConnectionDuration", "idleTimeout",
					    NULL};
	static const char *const od_f[] = {"splitExternalLocalOriginErrors",
					   "consecutiveLocalOriginFailures", NULL};
	const struct ynode *lb = g(tp, "loadBalancer"), *cp = g(tp, "connectionPool");
	char p[PATHMAX], q[PATHMAX];

	note_unenforced(v, tp, path, tp_f);
	note_unenforced(v, lb, pjoin(p, path, "loadBalancer"), lb_f);
	note_unenforced(v, g(lb, "consistentHash"), pjoin(q, p, "consistentHash"), ch_f);
	note_unenforced(v, cp, pjoin(p, path, "connectionPool"), cp_f);
	note_unenforced(v, g(cp, "tcp"), pjoin(q, p, "tcp"), tcp_f);
	note_unenforced(v, g(tp, "outlierDetection"), pjoin(p, path, "outlierDetection"), od_f);
}

static void dr_notices(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *subsets = g(spec, "subsets");
	char p[PATHMAX], q[PATHMAX];

	policy_notices(v, g(spec, "trafficPolicy"), "spec.trafficPolicy");
	for (int i = 0; i < count(subsets); i++)
		policy_notices(v, g(subsets->items[i], "trafficPolicy"),
			       pjoin(q, pidx(p, "spec.subsets", i), "trafficPolicy"));
	note_unenforced(v, spec, "spec",
			(const char *const[]){"exportTo", "workloadSelector", NULL});
}

/* ---------------- one object ---------------- */

static const struct schema *root_schema(enum obj_kind kind)
{
	switch (kind) {
	case OBJ_NAMESPACE:
		return &ns_root_s;
	case OBJ_SERVICE:
		return &svc_root_s;
	case OBJ_DEPLOYMENT:
		return &deploy_root_s;
	case OBJ_POD:
		return &pod_root_s;
	case OBJ_WORKLOADENTRY:
		return &we_root_s;
	case OBJ_VIRTUALSERVICE:
		return &vs_root_s;
	case OBJ_DESTINATIONRULE:
		return &dr_root_s;
	case OBJ_GATEWAY:
		return &gw_root_s;
	case OBJ_SERVICEENTRY:
		return &se_root_s;
	case OBJ_PEERAUTHENTICATION:
		return &pa_root_s;
	case OBJ_AUTHORIZATIONPOLICY:
		return &ap_root_s;
	default:
		return &loose_root_s;
	}
}

static bool spec_required(enum obj_kind kind)
{
	switch (kind) {
	case OBJ_SERVICE:
	case OBJ_DEPLOYMENT:
	case OBJ_POD:
	case OBJ_WORKLOADENTRY:
	case OBJ_VIRTUALSERVICE:
	case OBJ_DESTINATIONRULE:
	case OBJ_GATEWAY:
	case OBJ_SERVICEENTRY:
		return true;
	default:
		return false;
	}
}

static void kind_rules(struct vctx *v, enum obj_kind kind, const struct ynode *root,
		       const struct ynode *spec)
{
	switch (kind) {
	case OBJ_SERVICE:
		svc_rules(v, spec);
		break;
	case OBJ_DEPLOYMENT:
		deploy_rules(v, spec);
		break;
	case OBJ_POD:
		pod_rules(v, root);
		break;
	case OBJ_WORKLOADENTRY:
		we_rules(v, spec);
		break;
	case OBJ_VIRTUALSERVICE:
		vs_rules(v, spec);
		break;
	case OBJ_DESTINATIONRULE:
		dr_rules(v, spec);
		break;
	case OBJ_GATEWAY:
		gw_rules(v, root, spec);
		break;
	case OBJ_SERVICEENTRY:
		se_rules(v, spec);
		break;
	case OBJ_PEERAUTHENTICATION:
		pa_rules(v, spec);
		break;
	case OBJ_AUTHORIZATIONPOLICY:
		ap_rules(v, spec ? spec : root);
		break;
	default:
		break;
	}
}

/* Warnings about what bpfmesh accepts but does not act on (SEMANTICS.md: say so clearly). */
static void kind_notices(struct vctx *v, enum obj_kind kind, const struct ynode *spec)
{
	switch (kind) {
	case OBJ_VIRTUALSERVICE:
		vs_notices(v, spec);
		break;
	case OBJ_DESTINATIONRULE:
		dr_notices(v, spec);
		break;
	case OBJ_GATEWAY:
	case OBJ_SERVICEENTRY:
		vctx_warn(v, NULL, NULL,
			  "not yet enforced (checked by Istio's rules, then ignored)");
		break;
	case OBJ_ISTIO_UNCHECKED:
		vctx_warn(v, NULL, NULL, "neither validated nor enforced by bpfmesh");
		break;
	case OBJ_K8S_UNUSED:
		vctx_warn(v, NULL, NULL, "ignored (bpfmesh does not use this kind)");
		break;
	default:
		break;
	}
}

int validate_object(struct vctx *v, enum obj_kind kind, const struct ynode *root)
{
	int before = v->nerr;
	const struct ynode *spec;

	check_obj(v, root, "", root_schema(kind));
	if (v->nerr > before)
		return v->nerr - before;
	check_meta(v, kind, root);
	spec = g(root, "spec");
	if (!spec && spec_required(kind))
		vctx_err(v, root, "spec", "required");
	else
		kind_rules(v, kind, root, spec);
	if (v->nerr == before)
		kind_notices(v, kind, spec);
	return v->nerr - before;
}

/* ---------------- across objects: config_validate() ---------------- */

/* One object's identity, for finding the same object defined in two files. */
struct ident {
	char *key;    /* group/kind, namespace, name joined by NUL-free separators */
	char *object; /* "Kind/ns/name" as diagnostics print it */
	struct srcpos pos;
	int order;
};

static int add_ident(struct ident **v, int *n, const char *group, const char *kind, const char *ns,
		     const char *name, const struct srcpos *pos)
{
	struct ident *nv = realloc(*v, (*n + 1) * sizeof(**v)), *id;

	if (!nv)
		return -1;
	*v = nv;
	id = &nv[*n];
	id->pos = *pos;
	id->order = *n;
	if (asprintf(&id->key, "%s\x1f%s\x1f%s\x1f%s", group, kind, ns ? ns : "", name) < 0)
		return -1;
	if ((ns ? asprintf(&id->object, "%s/%s/%s", kind, ns, name)
		: asprintf(&id->object, "%s/%s", kind, name)) < 0) {
		free(id->key);
		return -1;
	}
	(*n)++;
	return 0;
}

static int cmp_ident(const void *a, const void *b)
{
	const struct ident *x = a, *y = b;
	int r = strcmp(x->key, y->key);

	return r ? r : x->order - y->order;
}

static const char *wl_kind_name(enum workload_kind k)
{
	return k == WL_DEPLOYMENT ? "Deployment" : k == WL_POD ? "Pod" : "WorkloadEntry";
}

static int collect_idents(const struct mesh_config *c, struct ident **v, int *n)
{
	int rc = 0;

	for (int i = 0; i < c->nnamespaces; i++)
		rc |= add_ident(v, n, "", "Namespace", NULL, c->namespaces[i].name,
				&c->namespaces[i].pos);
	for (int i = 0; i < c->nservices; i++)
		rc |= add_ident(v, n, "", "Service", c->services[i].ns, c->services[i].name,
				&c->services[i].pos);
	for (int i = 0; i < c->nworkloads; i++)
		rc |= add_ident(v, n, "", wl_kind_name(c->workloads[i].kind), c->workloads[i].ns,
				c->workloads[i].name, &c->workloads[i].pos);
	for (int i = 0; i < c->nvses; i++)
		rc |= add_ident(v, n, "networking.istio.io", "VirtualService", c->vses[i].ns,
				c->vses[i].name, &c->vses[i].pos);
	for (int i = 0; i < c->ndrs; i++)
		rc |= add_ident(v, n, "networking.istio.io", "DestinationRule", c->drs[i].ns,
				c->drs[i].name, &c->drs[i].pos);
	for (int i = 0; i < c->nothers; i++) {
		const struct other_obj *o = &c->others[i];
		const char *slash = strrchr(o->api_version, '/');
		char group[256];

		pathf(group, sizeof(group), "%.*s", slash ? (int)(slash - o->api_version) : 0,
		      o->api_version);
		rc |= add_ident(v, n, group, o->kind, o->ns, o->name, &o->pos);
	}
	return rc;
}

static int check_duplicates(const struct mesh_config *c, struct diags *d)
{
	struct ident *v = NULL;
	int n = 0, nerr = 0;

	if (collect_idents(c, &v, &n) < 0)
		diags_add(d, DIAG_ERROR, NULL, NULL, NULL, "out of memory");
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_ident);
	for (int i = 1; i < n; i++) {
		int first = i - 1;

		while (first > 0 && strcmp(v[first - 1].key, v[i].key) == 0)
			first--;
		if (strcmp(v[first].key, v[i].key) != 0)
			continue;
		diags_add(d, DIAG_ERROR, &v[i].pos, v[i].object, NULL,
			  "duplicate object: also defined at %s:%d", v[first].pos.file,
			  v[first].pos.line);
		nerr++;
	}
	for (int i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].object);
	}
	free(v);
	return nerr;
}

/* A DestinationRule applies to a host when its (possibly wildcard) host covers it. */
static bool dr_covers(const struct dr_obj *dr, const char *fqdn)
{
	char *h = config_fqdn(dr->host, dr->ns);
	bool r = h && host_subset_of(fqdn, h);

	free(h);
	return r;
}

static bool dr_has_subset(const struct dr_obj *dr, const char *subset)
{
	for (int i = 0; i < dr->nsubsets; i++)
		if (dr->subsets[i].name && strcmp(dr->subsets[i].name, subset) == 0)
			return true;
	return false;
}

static const char *route_list_name(enum route_kind k)
{
	return k == ROUTE_HTTP ? "http" : k == ROUTE_TLS ? "tls" : "tcp";
}

/* spec.http[2] for the third http route, counting routes of the same kind only. */
static void route_path(char *buf, const struct vs_obj *vs, int r)
{
	int idx = 0;

	for (int i = 0; i < r; i++)
		idx += vs->routes[i].kind == vs->routes[r].kind;
	pathf(buf, PATHMAX, "spec.%s[%d]", route_list_name(vs->routes[r].kind), idx);
}

static void vs_object(char *buf, size_t len, const char *kind, const char *ns, const char *name)
{
	pathf(buf, len, "%s/%s/%s", kind, ns, name);
}

/*
 * A destination subset must exist in a DestinationRule for that host, or Istio answers 503.
 * When no DestinationRule at all was given (validating a VirtualService file on its own, the
 * rules being in the cluster already) this can only be a warning.
 */
static int check_subset_ref(const struct mesh_config *c, const struct vs_obj *vs, int r, int k,
			    struct diags *d)
{
	const struct route_dest *rd = &vs->routes[r].dests[k];
	char *fqdn = config_fqdn(rd->host, vs->ns);
	char obj[512], path[PATHMAX], field[PATHMAX + 64];
	int covering = 0, nerr = 0;

	for (int i = 0; fqdn && i < c->ndrs; i++) {
		if (!dr_covers(&c->drs[i], fqdn))
			continue;
		covering++;
		if (dr_has_subset(&c->drs[i], rd->subset)) {
			free(fqdn);
			return 0;
		}
	}
	vs_object(obj, sizeof(obj), "VirtualService", vs->ns, vs->name);
	route_path(path, vs, r);
	pathf(field, sizeof(field), "%s.route[%d].destination.subset", path, k);
	if (covering) {
		diags_add(d, DIAG_ERROR, &rd->pos, obj, field,
			  "subset \"%s\" is not defined by any DestinationRule for host %s",
			  rd->subset, fqdn);
		nerr++;
	} else if (c->ndrs == 0) {
		diags_add(d, DIAG_WARN, &rd->pos, obj, field,
			  "subset \"%s\" needs a DestinationRule for host %s; none was given "
			  "(Istio returns 503 until one defines it)",
			  rd->subset, fqdn);
	} else {
		diags_add(d, DIAG_ERROR, &rd->pos, obj, field,
			  "subset \"%s\" is undefined: no DestinationRule for host %s is loaded "
			  "(Istio would return 503)",
			  rd->subset, fqdn);
		nerr++;
	}
	free(fqdn);
	return nerr;
}

static int check_subset_refs(const struct mesh_config *c, struct diags *d)
{
	int nerr = 0;

	for (int i = 0; i < c->nvses; i++)
		for (int r = 0; r < c->vses[i].nroutes; r++)
			for (int k = 0; k < c->vses[i].routes[r].ndests; k++)
				if (c->vses[i].routes[r].dests[k].subset)
					nerr += check_subset_ref(c, &c->vses[i], r, k, d);
	return nerr;
}

static bool vs_to_mesh(const struct vs_obj *vs)
{
	for (int i = 0; i < vs->ngateways; i++)
		if (strcmp(vs->gateways[i], "mesh") == 0)
			return true;
	return vs->ngateways == 0;
}

static bool vs_public(const struct vs_obj *vs)
{
	return vs->nexport_to == 0 || (vs->nexport_to == 1 && !strcmp(vs->export_to[0], "*"));
}

/* Two mesh VirtualServices for one host: Istio uses only one (analyzer IST0109). The same
 * object defined twice is left to check_duplicates(). */
static int check_vs_conflicts(const struct mesh_config *c, struct diags *d)
{
	struct htab first = {0}; /* fqdn -> the first mesh VirtualService routing it */
	int nerr = 0;

	for (int j = 0; j < c->nvses; j++) {
		const struct vs_obj *b = &c->vses[j];

		if (!vs_to_mesh(b) || !vs_public(b))
			continue;
		for (int i = 0; i < b->nhosts; i++) {
			char *hb = config_fqdn(b->hosts[i], b->ns), obj[512], field[64];
			uint8_t k[HKEY];
			const struct vs_obj *a;
			int *prev;

			if (!hb || hb[0] == '*') {
				free(hb);
				continue;
			}
			h_strkey(k, hb, NULL, NULL);
			prev = h_get(&first, k);
			a = prev ? &c->vses[*prev] : NULL;
			if (!a) {
				h_put(&first, k, j);
			} else if (strcmp(a->ns, b->ns) || strcmp(a->name, b->name)) {
				vs_object(obj, sizeof(obj), "VirtualService", b->ns, b->name);
				pathf(field, sizeof(field), "spec.hosts[%d]", i);
				diags_add(d, DIAG_ERROR, &b->pos, obj, field,
					  "host %s is also routed by VirtualService/%s/%s at %s:%d; "
					  "Istio would use only one of them",
					  hb, a->ns, a->name, a->pos.file, a->pos.line);
				nerr++;
			}
			free(hb);
		}
	}
	h_free(&first);
	return nerr;
}

/* Istio merges DestinationRules for one host in one namespace: subsets add up (the first
 * definition of a name wins) and only the first rule's trafficPolicy counts. */
static void check_dr_merge(const struct dr_obj *a, const struct dr_obj *b, struct diags *d)
{
	char obj[512], field[64];

	vs_object(obj, sizeof(obj), "DestinationRule", b->ns, b->name);
	diags_add(d, DIAG_WARN, &b->pos, obj, "spec.host",
		  "DestinationRule/%s/%s (%s:%d) is for the same host; Istio merges them: subsets "
		  "are added and only the first trafficPolicy applies",
		  a->ns, a->name, a->pos.file, a->pos.line);
	for (int i = 0; i < b->nsubsets; i++) {
		if (!b->subsets[i].name || !dr_has_subset(a, b->subsets[i].name))
			continue;
		pathf(field, sizeof(field), "spec.subsets[%d].name", i);
		diags_add(d, DIAG_WARN, &b->subsets[i].pos, obj, field,
			  "subset \"%s\" is also defined by DestinationRule/%s/%s; Istio keeps "
			  "the first one",
			  b->subsets[i].name, a->ns, a->name);
	}
}

static void check_dr_merges(const struct mesh_config *c, struct diags *d)
{
	for (int j = 0; j < c->ndrs; j++) {
		char *hj = config_fqdn(c->drs[j].host, c->drs[j].ns);

		for (int i = 0; hj && i < j; i++) {
			char *hi = config_fqdn(c->drs[i].host, c->drs[i].ns);

			/* The same rule in two files is a duplicate, reported already. */
			if (hi && !strcmp(hi, hj) && !strcmp(c->drs[i].ns, c->drs[j].ns) &&
			    strcmp(c->drs[i].name, c->drs[j].name)) {
				check_dr_merge(&c->drs[i], &c->drs[j], d);
				free(hi);
				break;
			}
			free(hi);
		}
		free(hj);
	}
}

int config_validate(const struct mesh_config *c, struct diags *d)
{
	int nerr = 0;

	nerr += check_duplicates(c, d);
	nerr += check_subset_refs(c, d);
	nerr += check_vs_conflicts(c, d);
	check_dr_merges(c, d);
	return nerr;
}

/* ---------------- notes for `bpfmesh analyze` ---------------- */

static int note_weighted_splits(const struct mesh_config *c, struct diags *d)
{
	char obj[512], path[PATHMAX], field[PATHMAX + 8];
	int n = 0;

	for (int i = 0; i < c->nvses; i++) {
		const struct vs_obj *vs = &c->vses[i];

		for (int r = 0; r < vs->nroutes; r++) {
			int weighted = 0;

			for (int k = 0; k < vs->routes[r].ndests; k++)
				weighted += vs->routes[r].dests[k].weight > 0;
			if (vs->routes[r].kind != ROUTE_HTTP || weighted < 2)
				continue;
			vs_object(obj, sizeof(obj), "VirtualService", vs->ns, vs->name);
			route_path(path, vs, r);
			pathf(field, sizeof(field), "%s.route", path);
			diags_add(d, DIAG_WARN, &vs->routes[r].pos, obj, field,
				  "weighted split is decided per connection in the kernel (Istio "
				  "splits http routes per request)");
			n++;
		}
	}
	return n;
}

/* Hosts behind a DestinationRule host (optionally only a subset's), from the Services and
 * workloads loaded; 0 when the Service is not known. */
static int count_hosts(const struct mesh_config *c, const struct dr_obj *dr,
		       const struct kvlist *subset)
{
	char *fqdn = config_fqdn(dr->host, dr->ns);
	int hosts = 0;

	for (int i = 0; fqdn && i < c->nservices; i++) {
		const struct svc_obj *s = &c->services[i];
		char *sf = config_fqdn(s->name, s->ns);
		bool match = sf && !strcmp(sf, fqdn);

		free(sf);
		for (int k = 0; match && s->has_selector && k < c->nworkloads; k++) {
			const struct workload_obj *w = &c->workloads[k];

			if (!strcmp(w->ns, s->ns) && kv_match(&s->selector, &w->labels) &&
			    kv_match(subset, &w->labels))
				hosts += w->replicas;
		}
	}
	free(fqdn);
	return hosts;
}

/* Envoy ejects only while 100 * (ejected + 1) / hosts <= maxEjectionPercent: with too few
 * hosts not even the first ejection is allowed (the default 10% needs at least 10 hosts). */
static int note_ejection(const struct traffic_policy *p, int hosts, const struct srcpos *pos,
			 const char *obj, const char *field, struct diags *d)
{
	int max = p->max_ejection_percent >= 0 ? p->max_ejection_percent : 10;

	if (!p->has_outlier || hosts <= 0 ||
	    (p->consecutive_5xx == 0 && p->consecutive_gateway <= 0))
		return 0;
	if (100 <= max * hosts)
		return 0;
	diags_add(d, DIAG_WARN, pos, obj, field,
		  "outlier detection can never eject a host: ejecting 1 of %d hosts is %d%%, above "
		  "maxEjectionPercent %d%%%s",
		  hosts, 100 / hosts, max, p->max_ejection_percent < 0 ? " (the default)" : "");
	return 1;
}

static int note_ejections(const struct mesh_config *c, struct diags *d)
{
	char obj[512], field[PATHMAX];
	int n = 0;

	for (int i = 0; i < c->ndrs; i++) {
		const struct dr_obj *dr = &c->drs[i];

		vs_object(obj, sizeof(obj), "DestinationRule", dr->ns, dr->name);
		if (dr->has_policy)
			n += note_ejection(&dr->policy, count_hosts(c, dr, NULL), &dr->pos, obj,
					   "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
					   d);
		for (int k = 0; k < dr->nsubsets; k++) {
			const struct dr_subset *s = &dr->subsets[k];
			const struct traffic_policy *p =
			    s->has_policy && s->policy.has_outlier ? &s->policy : &dr->policy;

			if (!(s->has_policy && s->policy.has_outlier) && !dr->has_policy)
				continue;
			pathf(field, sizeof(field),
			      "spec.subsets[%d].trafficPolicy.outlierDetection.maxEjectionPercent",
			      k);
			n += note_ejection(p, count_hosts(c, dr, &s->labels), &s->pos, obj, field,
					   d);
		}
	}
	return n;
}

/* Append name to a ", "-separated list once. */
static void list_add(char *buf, size_t len, const char *name)
{
	size_t used = strlen(buf), nl = strlen(name);
	const char *p = buf;

	while ((p = strstr(p, name))) {
		if ((p == buf || p[-1] == ' ') && (p[nl] == 0 || p[nl] == ','))
			return;
		p += nl;
	}
	pathf(buf + used, len - used, "%s%s", used ? ", " : "", name);
}

/* The HTTP-only fields a rule uses, as a list for a message ("" when none). */
static void rule_http_fields(const struct ap_rule *r, char *buf, size_t len)
{
	buf[0] = 0;
	for (int i = 0; i < r->nfrom; i++) {
		if (r->from[i].request_principals.n)
			list_add(buf, len, "requestPrincipals");
		if (r->from[i].not_request_principals.n)
			list_add(buf, len, "notRequestPrincipals");
	}
	for (int i = 0; i < r->nto; i++) {
		const struct ap_operation *o = &r->to[i];
		const struct {
			const struct ap_values *l;
			const char *name;
		} f[] = {{&o->hosts, "hosts"},	   {&o->not_hosts, "notHosts"},
			 {&o->methods, "methods"}, {&o->not_methods, "notMethods"},
			 {&o->paths, "paths"},	   {&o->not_paths, "notPaths"}};

		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
			if (f[k].l->n)
				list_add(buf, len, f[k].name);
	}
	for (int i = 0; i < r->nwhen; i++)
		if (!sec_l4_condition_key(r->when[i].key))
			list_add(buf, len, r->when[i].key);
}

/*
 * bpfmesh decides AuthorizationPolicy per connection (security.c), as Istio does for TCP
 * traffic: HTTP-only fields drop an ALLOW rule and are ignored in DENY/AUDIT rules. Istio
 * applies them to HTTP traffic, so a user reading the policy as HTTP rules needs to know.
 */
static int note_authz(const struct mesh_config *c, struct diags *d)
{
	static const char *const actions[] = {"ALLOW", "DENY", "AUDIT", "CUSTOM"};
	char obj[512], field[PATHMAX], fields[1024];
	int n = 0;

	for (int i = 0; i < c->naps; i++) {
		const struct ap_obj *a = &c->aps[i];

		vs_object(obj, sizeof(obj), "AuthorizationPolicy", a->ns, a->name);
		if (a->has_target_ref) {
			diags_add(d, DIAG_WARN, &a->pos, obj, "spec.targetRef",
				  "applies to gateways and waypoints, which bpfmesh does not have: "
				  "the policy has no effect");
			n++;
			continue;
		}
		if (a->action == AP_CUSTOM) {
			diags_add(d, DIAG_WARN, &a->pos, obj, "spec.action",
				  "CUSTOM: bpfmesh cannot call the external authorizer \"%s\": "
				  "connections matching the rules are denied",
				  a->provider ? a->provider : "");
			n++;
		}
		for (int r = 0; r < a->nrules; r++) {
			rule_http_fields(&a->rules[r], fields, sizeof(fields));
			if (!fields[0])
				continue;
			pathf(field, sizeof(field), "spec.rules[%d]", r);
			if (a->action == AP_ALLOW)
				diags_add(
				    d, DIAG_WARN, &a->rules[r].pos, obj, field,
				    "uses HTTP-only fields (%s): bpfmesh decides per "
				    "connection (L4), so this rule never matches (Istio drops "
				    "such rules from ALLOW policies on TCP traffic)",
				    fields);
			else
				diags_add(d, DIAG_WARN, &a->rules[r].pos, obj, field,
					  "uses HTTP-only fields (%s): bpfmesh decides per "
					  "connection (L4), so they are ignored and this %s rule "
					  "matches on its other fields alone (as Istio does on TCP "
					  "traffic)",
					  fields, actions[a->action]);
			n++;
		}
	}
	return n;
}

/* Where mTLS differs from Istio on purpose (docs/mtls.md), said once per PeerAuthentication
 * that asks for mTLS. */
static int note_mtls(const struct mesh_config *c, struct diags *d)
{
	char obj[512];
	int n = 0;

	for (int i = 0; i < c->npas; i++) {
		const struct pa_obj *p = &c->pas[i];
		bool strict = p->mode == MTLS_STRICT;

		for (int k = 0; k < p->nports; k++)
			strict |= p->ports[k].mode == MTLS_STRICT;
		if (!strict)
			continue;
		vs_object(obj, sizeof(obj), "PeerAuthentication", p->ns, p->name);
		diags_add(d, DIAG_WARN, &p->pos, obj, "spec.mtls.mode",
			  "STRICT is enforced in the destination node's kernel; bpfmesh differs "
			  "from Istio: mesh pods on the same node talk in plaintext (the kernel "
			  "attests their identity, nothing crosses a wire), and the tunnel carries "
			  "IPv4 only, so IPv6 from mesh pods on other nodes is refused at connect "
			  "(docs/mtls.md)");
		diags_add(d, DIAG_WARN, &p->pos, obj, "spec.mtls.mode",
			  "STRICT covers TCP: plaintext UDP still reaches the workloads it selects, "
			  "as in Istio (which captures no UDP either); run the agents with "
			  "--strict-udp drop to refuse it (docs/security-policy.md)");
		n += 2;
	}
	return n;
}

int config_analyze(const struct mesh_config *c, struct diags *d)
{
	return note_weighted_splits(c, d) + note_ejections(c, d) + note_authz(c, d) +
	       note_mtls(c, d);
}
