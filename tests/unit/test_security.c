// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_security.c: unit tests of user/lib/security.c (PeerAuthentication modes, AuthorizationPolicy
 * verdicts for L4, the port and prefix sets the kernel tables are built from) and of the typed
 * security model config.c builds. Run under ASan+UBSan. Each test loads YAML written to a
 * private mkdtemp directory and evaluates against workloads built in the test.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "check.h"
#include "model.h"
#include "security.h"

static char tmpdir[64];
static char path[256];

#define PA(ns, name, spec)                                                                         \
	"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"                             \
	"metadata: {name: " name ", namespace: " ns "}\nspec: " spec "\n---\n"
#define PA_TS(ns, name, ts, spec)                                                                  \
	"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"                             \
	"metadata: {name: " name ", namespace: " ns ", creationTimestamp: '" ts "'}\n"             \
	"spec: " spec "\n---\n"
#define AP(ns, name, spec)                                                                         \
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"                            \
	"metadata: {name: " name ", namespace: " ns "}\nspec: " spec "\n---\n"
#define AP_TS(ns, name, ts, spec)                                                                  \
	"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"                            \
	"metadata: {name: " name ", namespace: " ns ", creationTimestamp: '" ts "'}\n"             \
	"spec: " spec "\n---\n"

/* Load yaml as one file; the test fails if anything in it is an error. */
static struct mesh_config *load(const char *yaml)
{
	struct mesh_config *c = config_new();
	struct diags d = {0};
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(yaml, f);
		fclose(f);
	}
	config_load_file(c, path, &d);
	if (!CHECK_EQ(d.nerrors, 0, "the YAML loads without errors"))
		diags_print(&d, stderr);
	diags_free(&d);
	return c;
}

/* Workloads: app=<app> in ns, with one address (may be NULL). */
static struct kv wl_kv[8][1];
static struct workload_obj wl_slots[8];
static int wl_next;

static const struct workload_obj *wl(const char *ns, const char *app, const char *addr)
{
	struct workload_obj *w = &wl_slots[wl_next % 8];
	struct kv *kv = wl_kv[wl_next++ % 8];

	memset(w, 0, sizeof(*w));
	kv[0].key = (char *)"app";
	kv[0].val = (char *)app;
	w->kind = WL_POD;
	w->name = (char *)app;
	w->ns = (char *)ns;
	w->labels.v = kv;
	w->labels.n = 1;
	w->replicas = 1;
	if (addr) {
		w->addresses[0] = (char *)addr;
		w->naddresses = 1;
	}
	return w;
}

static struct sec_peer peer(const char *principal, const char *ip)
{
	struct sec_peer p = {.principal = principal};
	struct ip_prefix pfx;

	if (config_parse_prefix(ip, &pfx) == 0) {
		memcpy(p.ip, pfx.ip, 16);
		p.ip_len = pfx.len;
	}
	return p;
}

static struct sec_decision last;

/* Verdict for a connection to w:port from principal (NULL = plaintext) at ip. */
static int verdict(const struct mesh_config *c, const struct workload_obj *w, int port,
		   const char *principal, const char *ip)
{
	struct sec_peer p = peer(principal, ip);

	sec_authorize(c, NULL, w, port, &p, &last);
	return last.verdict;
}

#define ALLOWED(c, w, port, pr, ip) (verdict(c, w, port, pr, ip) == SEC_ALLOW)
#define DENIED(c, w, port, pr, ip)  (verdict(c, w, port, pr, ip) == SEC_DENY)

static const char *by_name(void)
{
	return last.by ? last.by->name : "(none)";
}

#define SA_A "cluster.local/ns/app/sa/frontend"
#define SA_B "cluster.local/ns/other/sa/batch"

/* ---------------- model ---------------- */

static void test_model_pa(void)
{
	struct mesh_config *c =
	    load(PA_TS("app", "pa", "2024-01-02T00:00:00Z",
		       "{selector: {matchLabels: {app: a}}, mtls: {mode: STRICT}, "
		       "portLevelMtls: {8080: {mode: DISABLE}, 9090: {}}}"));

	if (!CHECK_EQ(c->npas, 1, "one PeerAuthentication"))
		goto out;
	CHECK_STR(c->pas[0].ns, "app", "ns");
	CHECK_STR(c->pas[0].creation_ts, "2024-01-02T00:00:00Z", "creationTimestamp");
	CHECK_STR(kv_get(&c->pas[0].selector, "app"), "a", "selector");
	CHECK_EQ(c->pas[0].mode, MTLS_STRICT, "mode");
	CHECK_EQ(c->pas[0].nports, 2, "two port entries");
	CHECK_EQ(c->pas[0].ports[0].port, 8080, "port");
	CHECK_EQ(c->pas[0].ports[0].mode, MTLS_DISABLE, "port mode");
	CHECK_EQ(c->pas[0].ports[1].mode, MTLS_UNSET, "empty port entry is UNSET");
	CHECK_EQ(c->nothers, 1, "identity copy kept for duplicate checks");
out:
	config_free(c);
}

static void test_model_ap(void)
{
	struct mesh_config *c = load(
	    AP("app", "ap",
	       "{action: DENY, selector: {matchLabels: {app: a}}, rules: [{from: [{source: "
	       "{principals: [p1, p2], notIpBlocks: ['10.1.2.3/8', '2001:db8::1']}}], to: "
	       "[{operation: {ports: ['80'], methods: [GET]}}], when: [{key: source.ip, values: "
	       "['192.168.0.0/16']}, {key: destination.port, notValues: ['9000']}]}]}")
		AP("app", "none", "{}"));
	const struct ap_obj *a;
	const struct ap_rule *r;

	if (!CHECK_EQ(c->naps, 2, "two policies"))
		goto out;
	a = &c->aps[0];
	CHECK_EQ(a->action, AP_DENY, "action");
	CHECK(a->has_selector && a->has_rules, "selector and rules present");
	CHECK_EQ(c->aps[1].action, AP_ALLOW, "ALLOW by default");
	CHECK(!c->aps[1].has_rules && !c->aps[1].nrules, "spec {} has no rules");
	CHECK_EQ(c->aps[1].order, 1, "load order");
	if (!CHECK_EQ(a->nrules, 1, "one rule"))
		goto out;
	r = &a->rules[0];
	CHECK(r->nfrom == 1 && r->nto == 1 && r->nwhen == 2, "from/to/when counts");
	CHECK_EQ(r->from[0].principals.n, 2, "principals");
	CHECK_STR(r->from[0].not_ip_blocks.v[0], "10.1.2.3/8", "as written");
	CHECK_EQ(r->from[0].not_ip_blocks.cidr[0].len, 104, "v4 /8 in v4-mapped space");
	CHECK_EQ(r->from[0].not_ip_blocks.cidr[0].ip[13], 0, "host bits cleared");
	CHECK_EQ(r->from[0].not_ip_blocks.cidr[1].len, 128, "plain v6 address is /128");
	CHECK(!r->from[0].not_ip_blocks.cidr[1].v4, "v6 family");
	CHECK_EQ(r->to[0].ports.port[0], 80, "port parsed");
	CHECK_STR(r->when[0].key, "source.ip", "when key");
	CHECK_EQ(r->when[0].values.cidr[0].len, 112, "when source.ip parsed");
	CHECK_EQ(r->when[1].not_values.port[0], 9000, "when destination.port parsed");
out:
	config_free(c);
}

static void test_model_replace_same_file(void)
{
	struct mesh_config *c = load(AP("app", "x", "{action: DENY, rules: [{}]}")
					 AP("app", "yy", "{}") AP("app", "x", "{rules: [{}]}"));

	CHECK_EQ(c->naps, 2, "replaced in place");
	CHECK_EQ(c->nothers, 2, "identity copies replaced in step");
	if (c->naps == 2) {
		CHECK_EQ(c->aps[0].action, AP_ALLOW, "the later document wins");
		CHECK_EQ(c->aps[0].order, 0, "and keeps its slot");
	}
	config_free(c);
}

/* ---------------- PeerAuthentication ---------------- */

static void test_pa_default_permissive(void)
{
	struct mesh_config *c = load(PA("other", "x", "{mtls: {mode: STRICT}}"));

	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_PERMISSIVE,
		 "no applicable policy: PERMISSIVE");
	config_free(c);
}

static void test_pa_mesh_wide(void)
{
	struct mesh_config *c = load(PA("istio-system", "default", "{mtls: {mode: STRICT}}"));

	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_STRICT, "mesh-wide");
	CHECK_EQ(sec_mtls_mode(c, "istio-system", wl("x", "b", NULL), 1), MTLS_STRICT,
		 "every namespace");
	config_free(c);
}

static void test_pa_namespace_beats_mesh(void)
{
	struct mesh_config *c = load(PA("istio-system", "default", "{mtls: {mode: STRICT}}")
					 PA("app", "ns", "{mtls: {mode: DISABLE}}"));

	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_DISABLE, "namespace");
	CHECK_EQ(sec_mtls_mode(c, NULL, wl("web", "a", NULL), 80), MTLS_STRICT, "others: mesh");
	config_free(c);
}

static void test_pa_workload_beats_namespace(void)
{
	struct mesh_config *c = load(PA("app", "ns", "{mtls: {mode: STRICT}}") PA(
	    "app", "wl", "{selector: {matchLabels: {app: a}}, mtls: {mode: PERMISSIVE}}"));

	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_PERMISSIVE, "workload");
	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "b", NULL), 80), MTLS_STRICT,
		 "selector does not match: namespace");
	CHECK_EQ(sec_mtls_mode(c, NULL, wl("web", "a", NULL), 80), MTLS_PERMISSIVE,
		 "selector policies act in their namespace only");
	config_free(c);
}

static void test_pa_unset_inherits(void)
{
	struct mesh_config *c =
	    load(PA("istio-system", "default", "{mtls: {mode: STRICT}}")
		     PA("app", "ns", "{mtls: {mode: UNSET}}")
			 PA("app", "wl", "{selector: {matchLabels: {app: a}}}")
			     PA("web", "ns", "{mtls: {mode: DISABLE}}")
				 PA("web", "wl", "{selector: {matchLabels: {app: a}}, mtls: {}}"));

	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_STRICT,
		 "UNSET workload -> UNSET namespace -> mesh");
	CHECK_EQ(sec_mtls_mode(c, NULL, wl("web", "a", NULL), 80), MTLS_DISABLE,
		 "UNSET workload -> namespace");
	config_free(c);
}

static void test_pa_port_level(void)
{
	struct mesh_config *c = load(PA("app", "ns", "{mtls: {mode: PERMISSIVE}}") PA(
	    "app", "wl",
	    "{selector: {matchLabels: {app: a}}, mtls: {mode: STRICT}, portLevelMtls: "
	    "{8080: {mode: DISABLE}, 9090: {mode: UNSET}}}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK_EQ(sec_mtls_mode(c, NULL, w, 8080), MTLS_DISABLE, "port override");
	CHECK_EQ(sec_mtls_mode(c, NULL, w, 9090), MTLS_STRICT, "UNSET port: workload mode");
	CHECK_EQ(sec_mtls_mode(c, NULL, w, 80), MTLS_STRICT, "other ports: workload mode");
	config_free(c);
}

static void test_pa_port_level_inherits_namespace(void)
{
	struct mesh_config *c = load(PA("app", "ns", "{mtls: {mode: STRICT}}") PA(
	    "app", "wl",
	    "{selector: {matchLabels: {app: a}}, portLevelMtls: {8080: {mode: "
	    "PERMISSIVE}}}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK_EQ(sec_mtls_mode(c, NULL, w, 8080), MTLS_PERMISSIVE, "port override");
	CHECK_EQ(sec_mtls_mode(c, NULL, w, 80), MTLS_STRICT, "workload UNSET: namespace");
	config_free(c);
}

static void test_pa_oldest_wins_timestamp(void)
{
	struct mesh_config *c =
	    load(PA_TS("app", "a-new", "2024-05-01T00:00:00Z", "{mtls: {mode: DISABLE}}")
		     PA_TS("app", "z-old", "2023-01-01T00:00:00Z", "{mtls: {mode: STRICT}}")
			 PA_TS("app", "w1", "2024-05-01T00:00:00Z",
			       "{selector: {matchLabels: {app: a}}, mtls: {mode: PERMISSIVE}}")
			     PA_TS("app", "w2", "2022-05-01T00:00:00Z",
				   "{selector: {matchLabels: {app: a}}, mtls: {mode: DISABLE}}"));

	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "b", NULL), 80), MTLS_STRICT,
		 "oldest namespace policy");
	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_DISABLE,
		 "oldest workload policy");
	config_free(c);
}

static void test_pa_oldest_wins_name(void)
{
	struct mesh_config *c = load(PA("app", "zzz", "{mtls: {mode: DISABLE}}")
					 PA("app", "aaa", "{mtls: {mode: STRICT}}"));

	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_STRICT,
		 "same (absent) timestamp: lowest name");
	config_free(c);
}

static void test_pa_absent_timestamp_is_oldest(void)
{
	struct mesh_config *c =
	    load(PA_TS("app", "aaa", "2020-01-01T00:00:00Z", "{mtls: {mode: DISABLE}}")
		     PA("app", "zzz", "{mtls: {mode: STRICT}}"));

	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_STRICT,
		 "no timestamp = Go zero time");
	config_free(c);
}

static void test_pa_unset_chosen_does_not_fall_to_next(void)
{
	/* The oldest policy of a scope is chosen even when UNSET; it inherits from the wider
	 * scope, not from a younger policy of its own scope. */
	struct mesh_config *c = load(PA_TS("app", "old", "2020-01-01T00:00:00Z", "{}") PA_TS(
	    "app", "new", "2021-01-01T00:00:00Z", "{mtls: {mode: STRICT}}"));

	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_PERMISSIVE,
		 "UNSET oldest -> default");
	config_free(c);
}

static void test_pa_root_namespace_param(void)
{
	struct mesh_config *c = load(PA("istio-system", "default", "{mtls: {mode: STRICT}}")
					 PA("mesh-root", "default", "{mtls: {mode: DISABLE}}"));

	CHECK_EQ(sec_mtls_mode(c, "mesh-root", wl("app", "a", NULL), 80), MTLS_DISABLE,
		 "mesh-wide comes from the root namespace given");
	CHECK_EQ(sec_mtls_mode(c, "mesh-root", wl("istio-system", "a", NULL), 80), MTLS_STRICT,
		 "istio-system is an ordinary namespace then");
	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_STRICT,
		 "NULL = istio-system");
	config_free(c);
}

static void test_pa_root_selector_ignored(void)
{
	struct mesh_config *c = load(
	    PA("istio-system", "sel", "{selector: {matchLabels: {app: a}}, mtls: {mode: STRICT}}"));

	CHECK_EQ(sec_mtls_mode(c, NULL, wl("app", "a", NULL), 80), MTLS_PERMISSIVE,
		 "other namespaces");
	CHECK_EQ(sec_mtls_mode(c, NULL, wl("istio-system", "a", NULL), 80), MTLS_PERMISSIVE,
		 "even in the root namespace (Istio ignores it)");
	config_free(c);
}

static void test_mtls_mode_name(void)
{
	CHECK_STR(mtls_mode_name(MTLS_UNSET), "UNSET", "unset");
	CHECK_STR(mtls_mode_name(MTLS_DISABLE), "DISABLE", "disable");
	CHECK_STR(mtls_mode_name(MTLS_PERMISSIVE), "PERMISSIVE", "permissive");
	CHECK_STR(mtls_mode_name(MTLS_STRICT), "STRICT", "strict");
}

/* ---------------- AuthorizationPolicy: actions ---------------- */

static void test_ap_no_policy_allows(void)
{
	struct mesh_config *c = load(AP("other", "x", "{}"));
	const struct workload_obj *w = wl("app", "a", "10.0.0.5");

	CHECK(ALLOWED(c, w, 80, NULL, "10.1.1.1"), "allowed");
	CHECK(!last.by && !last.audit, "by nobody");
	CHECK_STR(last.reason, "no policy", "reason");
	CHECK(!sec_has_policy(c, NULL, w), "no policy applies");
	config_free(c);
}

static void test_ap_empty_spec_denies_all(void)
{
	struct mesh_config *c = load(AP("app", "deny-all", "{}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(DENIED(c, w, 80, SA_A, "10.1.1.1"), "mTLS denied");
	CHECK(DENIED(c, w, 80, NULL, "10.1.1.1"), "plaintext denied");
	CHECK(!last.by, "no policy matched");
	CHECK_STR(last.reason, "no ALLOW policy matched", "reason");
	CHECK(sec_has_policy(c, NULL, w), "a policy applies");
	config_free(c);
}

static void test_ap_empty_rule_allows_all(void)
{
	struct mesh_config *c = load(AP("app", "allow-all", "{rules: [{}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, NULL, "10.1.1.1"), "plaintext allowed");
	CHECK(ALLOWED(c, w, 443, SA_B, "2001:db8::1"), "anyone allowed");
	CHECK_STR(by_name(), "allow-all", "by");
	CHECK_STR(last.reason, "allowed by policy", "reason");
	config_free(c);
}

static const char *hdr_of(void *arg, const char *name)
{
	const char *const *kv = arg;

	for (int i = 0; kv[i]; i += 2)
		if (!strcasecmp(kv[i], name))
			return kv[i + 1];
	return NULL;
}

/* Verdict for one request (the HTTP path): every field applies. */
static int http_verdict(const struct mesh_config *c, const struct workload_obj *w,
			const char *principal, const char *method, const char *path,
			const char *host, const char **headers)
{
	struct sec_peer p = peer(principal, "10.1.1.1");
	struct sec_http h = {.method = method,
			     .path = path,
			     .host = host,
			     .header = hdr_of,
			     .arg = (void *)headers};

	sec_authorize_http(c, NULL, w, 8080, &p, &h, &last);
	return last.verdict;
}

static void test_ap_http_fields_per_request(void)
{
	struct mesh_config *c =
	    load(AP("app", "get-only",
		    "{rules: [{from: [{source: {principals: ['" SA_A "']}}], to: [{operation: "
		    "{methods: [GET], paths: ['/get', '/status/*'], hosts: ['Web.App*']}}]}]}")
		 AP("app", "no-evil",
		    "{action: DENY, rules: [{when: [{key: 'request.headers[x-evil]', values: "
		    "['1']}]}]}"));
	const struct workload_obj *w = wl("app", "a", "10.0.0.5");
	const char *none[] = {NULL}, *evil[] = {"X-Evil", "1", NULL};

	CHECK_EQ(http_verdict(c, w, SA_A, "GET", "/get", "web.app:8080", none), SEC_ALLOW,
		 "GET /get from the principal");
	CHECK_EQ(http_verdict(c, w, SA_A, "GET", "/status/200", "WEB.app", none), SEC_ALLOW,
		 "path prefix; hosts compare case-insensitively");
	CHECK_EQ(http_verdict(c, w, SA_A, "POST", "/get", "web.app", none), SEC_DENY,
		 "POST is no GET");
	CHECK_EQ(http_verdict(c, w, SA_A, "GET", "/post", "web.app", none), SEC_DENY,
		 "another path");
	CHECK_EQ(http_verdict(c, w, SA_B, "GET", "/get", "web.app", none), SEC_DENY,
		 "another principal");
	CHECK_EQ(http_verdict(c, w, SA_A, "GET", "/get", "web.app", evil), SEC_DENY,
		 "a DENY on a request header");
	CHECK_STR(by_name(), "no-evil", "by the DENY policy");
	/* per connection the ALLOW rule needs HTTP: dropped, so nothing is allowed */
	CHECK(DENIED(c, w, 8080, SA_A, "10.1.1.1"), "at L4 the HTTP rule cannot match");
	config_free(c);
}

static void test_ap_deny_beats_allow(void)
{
	struct mesh_config *c = load(AP("app", "allow-all", "{rules: [{}]}")
					 AP("app", "deny-b",
					    "{action: DENY, rules: [{from: [{source: {namespaces: "
					    "[other]}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(DENIED(c, w, 80, SA_B, "10.1.1.1"), "DENY wins");
	CHECK_STR(by_name(), "deny-b", "by the DENY policy");
	CHECK_STR(last.reason, "denied by policy", "reason");
	CHECK(ALLOWED(c, w, 80, SA_A, "10.1.1.1"), "others allowed");
	config_free(c);
}

static void test_ap_deny_only_allows_rest(void)
{
	struct mesh_config *c = load(AP("app", "deny-plain",
					"{action: DENY, rules: [{from: "
					"[{source: {notPrincipals: ['*']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(DENIED(c, w, 80, NULL, "10.1.1.1"), "plaintext denied");
	CHECK(ALLOWED(c, w, 80, SA_A, "10.1.1.1"), "mTLS allowed: no ALLOW policy");
	CHECK(!last.by, "by nobody");
	config_free(c);
}

static void test_ap_audit_changes_nothing(void)
{
	struct mesh_config *c = load(AP("app", "audit", "{action: AUDIT, rules: [{}]}")
					 AP("app", "audit-none", "{action: AUDIT}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, NULL, "10.1.1.1"), "allowed");
	CHECK(last.audit && !strcmp(last.audit->name, "audit"), "audit reported");
	CHECK(!last.by, "audit does not decide");
	CHECK_STR(last.reason, "no policy", "no ALLOW/DENY policy");
	config_free(c);
	c = load(
	    AP("app", "audit", "{action: AUDIT, rules: [{to: [{operation: {ports: ['80']}}]}]}")
		AP("app", "deny-all", "{}"));
	CHECK(DENIED(c, w, 80, NULL, "10.1.1.1"), "denied");
	CHECK(last.audit != NULL, "audit reported with a deny too");
	CHECK(DENIED(c, w, 81, NULL, "10.1.1.1") && !last.audit, "no audit match");
	config_free(c);
}

static void test_ap_deny_audit_without_rules_match_nothing(void)
{
	struct mesh_config *c = load(AP("app", "deny", "{action: DENY, rules: []}")
					 AP("app", "audit", "{action: AUDIT}"));

	CHECK(ALLOWED(c, wl("app", "a", NULL), 80, NULL, "10.1.1.1"), "allowed");
	CHECK(!last.audit, "no audit");
	config_free(c);
}

static void test_ap_allow_no_match_denies(void)
{
	struct mesh_config *c = load(AP("app", "only-a",
					"{rules: [{from: [{source: {principals: "
					"['" SA_A "']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(DENIED(c, w, 80, SA_B, "10.1.1.1"), "other principal denied");
	CHECK(!last.by, "by nobody");
	CHECK_STR(last.reason, "no ALLOW policy matched", "reason");
	CHECK(ALLOWED(c, w, 80, SA_A, "10.1.1.1"), "the principal allowed");
	config_free(c);
}

static void test_ap_oldest_reported(void)
{
	struct mesh_config *c =
	    load(AP_TS("app", "a-new", "2024-01-01T00:00:00Z", "{rules: [{}]}")
		     AP_TS("app", "z-old", "2020-01-01T00:00:00Z", "{rules: [{}]}"));

	CHECK(ALLOWED(c, wl("app", "a", NULL), 80, NULL, "10.1.1.1"), "allowed");
	CHECK_STR(by_name(), "z-old", "the oldest matching policy is reported");
	config_free(c);
}

/* ---------------- AuthorizationPolicy: selection ---------------- */

static void test_ap_selection(void)
{
	struct mesh_config *c =
	    load(AP("istio-system", "mesh-sel", "{selector: {matchLabels: {app: a}}}")
		     AP("app", "sel-b", "{selector: {matchLabels: {app: b}}}")
			 AP("web", "ns-wide", "{action: DENY, rules: [{}]}")
			     AP("db", "gw",
				"{targetRef: {kind: Gateway, group: "
				"gateway.networking.k8s.io, name: gw}}"));

	CHECK(DENIED(c, wl("x", "a", NULL), 80, NULL, "10.1.1.1"),
	      "root namespace selector: matching workloads in all namespaces");
	CHECK(ALLOWED(c, wl("x", "c", NULL), 80, NULL, "10.1.1.1"), "not matching");
	CHECK(DENIED(c, wl("app", "b", NULL), 80, NULL, "10.1.1.1"), "namespace selector");
	CHECK(ALLOWED(c, wl("web2", "b", NULL), 80, NULL, "10.1.1.1"), "other namespace");
	CHECK(DENIED(c, wl("web", "z", NULL), 80, NULL, "10.1.1.1"), "namespace-wide");
	CHECK(!sec_has_policy(c, NULL, wl("db", "z", NULL)), "targetRef: not for workloads");
	CHECK(sec_has_policy(c, NULL, wl("web", "z", NULL)), "has policy");
	config_free(c);
}

static void test_ap_root_namespace_wide(void)
{
	struct mesh_config *c = load(AP("mesh-root", "deny-all", "{action: DENY, rules: [{}]}"));
	struct sec_peer p = peer(NULL, "10.0.0.1");

	sec_authorize(c, "mesh-root", wl("any", "a", NULL), 80, &p, &last);
	CHECK_EQ(last.verdict, SEC_DENY, "root namespace policy applies everywhere");
	sec_authorize(c, NULL, wl("any", "a", NULL), 80, &p, &last);
	CHECK_EQ(last.verdict, SEC_ALLOW, "not the root namespace by default");
	config_free(c);
}

/* ---------------- AuthorizationPolicy: sources ---------------- */

static void test_ap_principals_exact(void)
{
	struct mesh_config *c = load(AP("app", "p",
					"{rules: [{from: [{source: {principals: "
					"['" SA_A "']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, SA_A, "10.1.1.1"), "exact");
	CHECK(DENIED(c, w, 80, SA_A "x", "10.1.1.1"), "longer");
	CHECK(DENIED(c, w, 80, "cluster.local/ns/app/sa/front", "10.1.1.1"), "shorter");
	config_free(c);
}

static void test_ap_principals_wildcards(void)
{
	struct mesh_config *c = load(
	    AP("app", "pre",
	       "{rules: [{from: [{source: {principals: ['cluster.local/ns/app/*']}}], to: "
	       "[{operation: {ports: ['1']}}]}]}")
		AP("app", "suf",
		   "{rules: [{from: [{source: {principals: ['*/sa/batch']}}], to: [{operation: "
		   "{ports: ['2']}}]}]}") AP("app", "any",
					     "{rules: [{from: [{source: {principals: ['*']}}], to: "
					     "[{operation: {ports: ['3']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 1, SA_A, "10.1.1.1"), "prefix");
	CHECK(DENIED(c, w, 1, SA_B, "10.1.1.1"), "prefix mismatch");
	CHECK(ALLOWED(c, w, 2, SA_B, "10.1.1.1"), "suffix");
	CHECK(DENIED(c, w, 2, SA_A, "10.1.1.1"), "suffix mismatch");
	CHECK(ALLOWED(c, w, 3, SA_A, "10.1.1.1"), "* = any mTLS peer");
	CHECK(DENIED(c, w, 3, NULL, "10.1.1.1"), "* never matches plaintext");
	CHECK(DENIED(c, w, 1, NULL, "10.1.1.1"), "nor does a prefix");
	config_free(c);
}

static void test_ap_not_principals_plaintext(void)
{
	struct mesh_config *c = load(AP("app", "not",
					"{rules: [{from: [{source: {notPrincipals: "
					"['" SA_B "']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, NULL, "10.1.1.1"), "notPrincipals matches plaintext");
	CHECK(ALLOWED(c, w, 80, SA_A, "10.1.1.1"), "other principal");
	CHECK(DENIED(c, w, 80, SA_B, "10.1.1.1"), "the excluded one");
	config_free(c);
}

static void test_ap_namespaces(void)
{
	struct mesh_config *c =
	    load(AP("app", "ns",
		    "{rules: [{from: [{source: {namespaces: [app, 'oth*']}}], to: [{operation: "
		    "{ports: ['1']}}]}]}") AP("app", "notns",
					      "{rules: [{from: [{source: {notNamespaces: "
					      "[other]}}], to: [{operation: {ports: ['2']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);
	struct sec_peer p = peer("td.example/ns/third/sa/x", "10.0.0.1");

	CHECK(ALLOWED(c, w, 1, SA_A, "10.1.1.1"), "namespace from the principal");
	CHECK(ALLOWED(c, w, 1, SA_B, "10.1.1.1"), "prefix");
	CHECK(DENIED(c, w, 1, NULL, "10.1.1.1"), "plaintext never matches namespaces");
	CHECK(ALLOWED(c, w, 2, NULL, "10.1.1.1"), "plaintext always matches notNamespaces");
	CHECK(DENIED(c, w, 2, SA_B, "10.1.1.1"), "excluded namespace");
	p.ns = "app"; /* the caller's namespace wins over the principal's */
	sec_authorize(c, NULL, w, 1, &p, &last);
	CHECK_EQ(last.verdict, SEC_ALLOW, "sec_peer.ns used");
	config_free(c);
}

static void test_ap_service_accounts(void)
{
	struct mesh_config *c =
	    load(AP("app", "sa",
		    "{rules: [{from: [{source: {serviceAccounts: [frontend, other/batch]}}], to: "
		    "[{operation: {ports: ['1']}}]}]}")
		     AP("app", "notsa",
			"{rules: [{from: [{source: {notServiceAccounts: [other/batch]}}], to: "
			"[{operation: {ports: ['2']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 1, SA_A, "10.1.1.1"), "bare name: policy's namespace");
	CHECK(ALLOWED(c, w, 1, SA_B, "10.1.1.1"), "ns/sa");
	CHECK(ALLOWED(c, w, 1, "other.td/ns/app/sa/frontend", "10.1.1.1"), "any trust domain");
	CHECK(DENIED(c, w, 1, "cluster.local/ns/web/sa/frontend", "10.1.1.1"), "bare name: not "
									       "other ns");
	CHECK(DENIED(c, w, 1, NULL, "10.1.1.1"), "needs mTLS");
	CHECK(ALLOWED(c, w, 2, NULL, "10.1.1.1"), "not form matches plaintext");
	CHECK(DENIED(c, w, 2, SA_B, "10.1.1.1"), "excluded");
	config_free(c);
}

static void test_ap_ip_blocks_v4(void)
{
	struct mesh_config *c = load(AP("app", "ip",
					"{rules: [{from: [{source: {ipBlocks: "
					"['10.1.0.0/16', '192.168.1.7']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, NULL, "10.1.200.3"), "in CIDR");
	CHECK(DENIED(c, w, 80, NULL, "10.2.0.1"), "outside");
	CHECK(ALLOWED(c, w, 80, SA_A, "192.168.1.7"), "single address");
	CHECK(DENIED(c, w, 80, NULL, "192.168.1.8"), "single address is /32");
	CHECK(ALLOWED(c, w, 80, NULL, "::ffff:10.1.0.1"), "v4-mapped is IPv4");
	config_free(c);
}

static void test_ap_ip_blocks_v6(void)
{
	struct mesh_config *c =
	    load(AP("app", "ip6",
		    "{rules: [{from: [{source: {ipBlocks: ['2001:db8:1::/48', '::/0']}}], to: "
		    "[{operation: {ports: ['1']}}]}]}")
		     AP("app", "ip6b",
			"{rules: [{from: [{source: {ipBlocks: ['2001:db8:1::/48']}}], to: "
			"[{operation: {ports: ['2']}}]}]}")
			 AP("app", "any4",
			    "{rules: [{from: [{source: {ipBlocks: ['0.0.0.0/0']}}], to: "
			    "[{operation: {ports: ['3']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 2, NULL, "2001:db8:1:ffff::9"), "in v6 CIDR");
	CHECK(DENIED(c, w, 2, NULL, "2001:db8:2::9"), "outside v6 CIDR");
	CHECK(ALLOWED(c, w, 1, NULL, "fe80::1"), "::/0 matches IPv6");
	CHECK(DENIED(c, w, 1, NULL, "10.0.0.1"), "::/0 does not match IPv4 (families differ)");
	CHECK(ALLOWED(c, w, 3, NULL, "10.0.0.1"), "0.0.0.0/0 matches IPv4");
	CHECK(DENIED(c, w, 3, NULL, "2001:db8::1"), "and not IPv6");
	config_free(c);
}

static void test_ap_not_ip_blocks(void)
{
	struct mesh_config *c = load(AP("app", "deny-net",
					"{action: DENY, rules: [{from: [{source: "
					"{notIpBlocks: ['10.0.0.0/8']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, NULL, "10.9.9.9"), "inside the block: not denied");
	CHECK(DENIED(c, w, 80, NULL, "172.16.0.1"), "outside: denied");
	CHECK(DENIED(c, w, 80, NULL, "2001:db8::1"), "IPv6 is outside an IPv4 block");
	config_free(c);
}

static void test_ap_remote_ip_blocks(void)
{
	struct mesh_config *c =
	    load(AP("app", "r",
		    "{rules: [{from: [{source: {remoteIpBlocks: ['10.0.0.0/8'], "
		    "notRemoteIpBlocks: ['10.9.0.0/16']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, NULL, "10.1.1.1"), "remote = source address at L4");
	CHECK(DENIED(c, w, 80, NULL, "10.9.1.1"), "not form");
	CHECK(DENIED(c, w, 80, NULL, "11.0.0.1"), "outside");
	config_free(c);
}

/* ---------------- AuthorizationPolicy: operations, conditions, combination ---------------- */

static void test_ap_ports(void)
{
	struct mesh_config *c =
	    load(AP("app", "ports", "{rules: [{to: [{operation: {ports: ['80', '8080']}}]}]}")
		     AP("app", "deny",
			"{action: DENY, rules: [{to: [{operation: {notPorts: ['80', "
			"'8080', '9090']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, NULL, "10.1.1.1"), "port 80");
	CHECK(ALLOWED(c, w, 8080, NULL, "10.1.1.1"), "port 8080");
	CHECK(DENIED(c, w, 9090, NULL, "10.1.1.1") && !last.by, "9090: no ALLOW match");
	CHECK(DENIED(c, w, 22, NULL, "10.1.1.1"), "22: notPorts DENY");
	CHECK_STR(by_name(), "deny", "by the DENY policy");
	config_free(c);
}

static void test_ap_when_source_ip(void)
{
	struct mesh_config *c = load(AP("app", "w",
					"{rules: [{when: [{key: source.ip, values: "
					"['10.0.0.0/8'], notValues: ['10.0.0.1']}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, NULL, "10.0.0.2"), "in values");
	CHECK(DENIED(c, w, 80, NULL, "10.0.0.1"), "in notValues");
	CHECK(DENIED(c, w, 80, NULL, "11.0.0.1"), "not in values");
	config_free(c);
}

static void test_ap_when_principal_namespace(void)
{
	struct mesh_config *c =
	    load(AP("app", "p",
		    "{rules: [{when: [{key: source.principal, values: ['*/sa/frontend']}, {key: "
		    "source.namespace, notValues: [web]}]}]}")
		     AP("app", "deny-plain",
			"{action: DENY, rules: [{when: [{key: source.principal, "
			"notValues: ['*']}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, SA_A, "10.0.0.2"), "principal and namespace");
	CHECK(DENIED(c, w, 80, "cluster.local/ns/web/sa/frontend", "10.0.0.2"),
	      "namespace notValues");
	CHECK(DENIED(c, w, 80, NULL, "10.0.0.2"), "plaintext");
	CHECK_STR(by_name(), "deny-plain", "notValues ['*'] denies plaintext");
	config_free(c);
}

static void test_ap_when_destination(void)
{
	struct mesh_config *c =
	    load(AP("app", "d",
		    "{rules: [{when: [{key: destination.port, values: ['8080']}, {key: "
		    "destination.ip, values: ['10.5.0.0/16']}]}]}"));

	CHECK(ALLOWED(c, wl("app", "a", "10.5.1.1"), 8080, NULL, "10.0.0.2"), "port and ip");
	CHECK(DENIED(c, wl("app", "a", "10.5.1.1"), 80, NULL, "10.0.0.2"), "other port");
	CHECK(DENIED(c, wl("app", "a", "10.6.1.1"), 8080, NULL, "10.0.0.2"), "other address");
	CHECK(DENIED(c, wl("app", "a", NULL), 8080, NULL, "10.0.0.2"), "no address known");
	config_free(c);
}

static void test_ap_and_or(void)
{
	/* from entries OR; fields within a source AND; from/to/when AND. */
	struct mesh_config *c = load(AP(
	    "app", "combo",
	    "{rules: [{from: [{source: {principals: ['" SA_A "'], ipBlocks: ['10.0.0.0/8']}}, "
	    "{source: {ipBlocks: ['192.168.0.0/16']}}], to: [{operation: {ports: ['80']}}, "
	    "{operation: {ports: ['443']}}], when: [{key: destination.port, notValues: ['443']}]}, "
	    "{from: [{source: {namespaces: [other]}}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(ALLOWED(c, w, 80, SA_A, "10.1.1.1"), "first source, both fields");
	CHECK(DENIED(c, w, 80, SA_A, "172.16.1.1"), "principal without its ipBlock");
	CHECK(ALLOWED(c, w, 80, NULL, "192.168.3.3"), "second source");
	CHECK(DENIED(c, w, 443, NULL, "192.168.3.3"), "when excludes 443");
	CHECK(DENIED(c, w, 22, NULL, "192.168.3.3"), "not in to");
	CHECK(ALLOWED(c, w, 22, SA_B, "172.16.1.1"), "second rule");
	config_free(c);
}

static void test_ap_http_fields_allow_rule_dropped(void)
{
	struct mesh_config *c =
	    load(AP("app", "get",
		    "{rules: [{to: [{operation: {methods: [GET]}}]}, {from: [{source: "
		    "{requestPrincipals: ['*']}}]}, {when: [{key: 'request.headers[x]', "
		    "values: [yes-x]}]}, {when: [{key: connection.sni, values: ['*']}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(DENIED(c, w, 80, SA_A, "10.1.1.1"), "every rule needs HTTP: nothing allowed");
	CHECK_STR(last.reason, "no ALLOW policy matched", "reason");
	config_free(c);
	c = load(AP("app", "mixed",
		    "{rules: [{to: [{operation: {ports: ['80'], paths: ['/x']}}]}, "
		    "{to: [{operation: {ports: ['81']}}]}]}"));
	CHECK(DENIED(c, w, 80, SA_A, "10.1.1.1"), "the HTTP rule is dropped, not its field");
	CHECK(ALLOWED(c, w, 81, SA_A, "10.1.1.1"), "the L4 rule still allows");
	config_free(c);
}

static void test_ap_http_fields_deny_broadened(void)
{
	struct mesh_config *c =
	    load(AP("app", "deny-post",
		    "{action: DENY, rules: [{from: [{source: {namespaces: "
		    "[other]}}], to: [{operation: {methods: [POST], ports: "
		    "['80']}}], when: [{key: 'request.auth.claims[iss]', values: "
		    "[x]}]}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(DENIED(c, w, 80, SA_B, "10.1.1.1"), "methods and the HTTP when dropped: denied");
	CHECK(ALLOWED(c, w, 81, SA_B, "10.1.1.1"), "the L4 field (ports) still counts");
	CHECK(ALLOWED(c, w, 80, SA_A, "10.1.1.1"), "the source still counts");
	config_free(c);
	c = load(AP("app", "deny-jwt",
		    "{action: DENY, rules: [{from: [{source: "
		    "{notRequestPrincipals: ['*']}}]}]}"));
	CHECK(DENIED(c, w, 80, SA_A, "10.1.1.1"), "a source with only HTTP fields matches all");
	config_free(c);
}

static void test_ap_custom_fails_closed(void)
{
	struct mesh_config *c = load(AP("app", "ext",
					"{action: CUSTOM, provider: {name: authz}, rules: [{to: "
					"[{operation: {ports: ['80'], paths: ['/admin*']}}]}]}")
					 AP("app", "allow-all", "{rules: [{}]}"));
	const struct workload_obj *w = wl("app", "a", NULL);

	CHECK(DENIED(c, w, 80, SA_A, "10.1.1.1"), "CUSTOM match denies (no provider)");
	CHECK_STR(by_name(), "ext", "by the CUSTOM policy");
	CHECK_EQ(last.by->action, AP_CUSTOM, "action");
	CHECK(ALLOWED(c, w, 81, SA_A, "10.1.1.1"), "no CUSTOM match: the rest decides");
	config_free(c);
}

/* ---------------- tables for the kernel ---------------- */

static void test_policy_ports(void)
{
	struct mesh_config *c =
	    load(AP("app", "a1", "{rules: [{to: [{operation: {ports: ['8080', '80']}}]}]}")
		     AP("app", "a2",
			"{action: DENY, rules: [{to: [{operation: {notPorts: ['80', '22']}}], "
			"when: [{key: destination.port, values: ['9000']}]}]}")
			 AP("web", "a3", "{rules: [{to: [{operation: {ports: ['7']}}]}]}"));
	int *ports = NULL, n = sec_policy_ports(c, NULL, wl("app", "a", NULL), &ports);

	if (CHECK_EQ(n, 4, "four distinct ports") && ports) {
		CHECK(ports[0] == 22 && ports[1] == 80 && ports[2] == 8080 && ports[3] == 9000,
		      "sorted");
	}
	free(ports);
	n = sec_policy_ports(c, NULL, wl("db", "a", NULL), &ports);
	CHECK(n == 0 && ports == NULL, "no policy: none");
	config_free(c);
}

static void test_policy_prefixes_set(void)
{
	struct mesh_config *c =
	    load(AP("app", "a1",
		    "{rules: [{from: [{source: {ipBlocks: ['10.0.0.0/8', '10.1.2.3/8']}}], when: "
		    "[{key: source.ip, notValues: ['10.0.0.1']}]}]}")
		     AP("app", "a2",
			"{action: DENY, rules: [{from: [{source: {notRemoteIpBlocks: "
			"['2001:db8::/32']}}]}]}"));
	struct sec_prefix *v = NULL;
	int n = sec_policy_prefixes(c, NULL, wl("app", "a", NULL), &v);
	bool zero = false, v4 = false;

	CHECK_EQ(n, 5, "::/0, 10/8 once, 10.0.0.1, 2001:db8::/32, ::ffff:0:0/96");
	for (int i = 0; v && i < n; i++) {
		zero |= v[i].len == 0;
		v4 |= v[i].len == 96 && v[i].ip[10] == 0xff && v[i].ip[11] == 0xff;
	}
	CHECK(zero && v4, "::/0 and the IPv4 space are there");
	free(v);
	n = sec_policy_prefixes(c, NULL, wl("db", "a", NULL), &v);
	CHECK(n == 1 && v && v[0].len == 0, "no policy: ::/0 alone");
	free(v);
	config_free(c);
}

static uint32_t rng = 12345;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static bool pfx_has(const struct sec_prefix *p, const uint8_t *ip)
{
	int full = p->len / 8, rest = p->len % 8;

	if (memcmp(p->ip, ip, full) != 0)
		return false;
	return !rest || ((p->ip[full] ^ ip[full]) & (0xff << (8 - rest))) == 0;
}

/* A random address near one of the named prefixes (or anywhere). */
static void rand_addr(uint8_t *ip, const struct sec_prefix *v, int n)
{
	const struct sec_prefix *base = &v[rnd() % n];

	memcpy(ip, base->ip, 16);
	for (int b = base->len + (int)(rnd() % 4); b < 128; b++)
		if (rnd() & 1)
			ip[b / 8] ^= (uint8_t)(0x80 >> (b % 8));
	if (rnd() % 4 == 0) {
		memset(ip, 0, 10); /* an IPv4 address */
		ip[10] = ip[11] = 0xff;
	}
}

static void test_policy_prefixes_property(void)
{
	static const char *const principals[] = {NULL, SA_A, SA_B};
	struct mesh_config *c =
	    load(AP("app", "a1",
		    "{rules: [{from: [{source: {ipBlocks: ['10.0.0.0/8', '2001:db8::/32', '::/0'], "
		    "notIpBlocks: ['10.1.0.0/16']}}]}, {when: [{key: source.ip, values: "
		    "['192.168.0.0/16']}, {key: remote.ip, notValues: ['192.168.7.0/24']}]}]}")
		     AP("app", "d1",
			"{action: DENY, rules: [{from: [{source: {ipBlocks: ['10.1.2.0/24', "
			"'2001:db8:1::/48'], namespaces: [other]}}]}, {from: [{source: "
			"{notRemoteIpBlocks: ['0.0.0.0/1', '2001:db8::/33', 'fe80::/10'], "
			"principals: ['*']}}]}]}"));
	const struct workload_obj *w = wl("app", "a", "10.0.0.9");
	struct sec_prefix *v = NULL;
	int n = sec_policy_prefixes(c, NULL, w, &v), bad = 0, denied = 0;

	if (!CHECK(n > 5 && v, "prefixes"))
		goto out;
	for (int t = 0; t < 3000; t++) {
		struct sec_peer a = {.principal = principals[t % 3], .ip_len = 128};
		struct sec_peer p;
		struct sec_decision da, dp;
		int best = -1;

		rand_addr(a.ip, v, n);
		for (int i = 0; i < n; i++)
			if (pfx_has(&v[i], a.ip) && (best < 0 || v[i].len > v[best].len))
				best = i;
		if (best < 0) {
			bad++;
			continue;
		}
		p = a;
		memcpy(p.ip, v[best].ip, 16);
		p.ip_len = v[best].len;
		sec_authorize(c, NULL, w, 80, &a, &da);
		sec_authorize(c, NULL, w, 80, &p, &dp);
		denied += da.verdict == SEC_DENY;
		if (da.verdict != dp.verdict || da.by != dp.by) {
			char s[64];

			inet_ntop(AF_INET6, a.ip, s, sizeof(s));
			if (bad++ < 5)
				fprintf(stderr, "    %s (%s): %d vs prefix /%d: %d\n", s,
					a.principal ? a.principal : "plain", da.verdict, p.ip_len,
					dp.verdict);
		}
	}
	CHECK_EQ(bad, 0, "verdict(A) == verdict(longest prefix containing A)");
	CHECK(denied > 100 && denied < 2900, "both verdicts exercised");
out:
	free(v);
	config_free(c);
}

/* ---------------- analyze notes ---------------- */

static bool has_note(const struct diags *d, const char *field, const char *text)
{
	for (int i = 0; i < d->n; i++)
		if (d->v[i].sev == DIAG_WARN && d->v[i].field && !strcmp(d->v[i].field, field) &&
		    strstr(d->v[i].msg, text))
			return true;
	for (int i = 0; i < d->n; i++)
		fprintf(stderr, "    have: %s: %s\n", d->v[i].field ? d->v[i].field : "-",
			d->v[i].msg);
	return false;
}

static void test_analyze_notes(void)
{
	struct mesh_config *c =
	    load(AP("app", "allow-get",
		    "{rules: [{to: [{operation: {ports: ['80']}}]}, {to: "
		    "[{operation: {methods: [GET], paths: ['/x']}}]}]}")
		     AP("app", "deny-jwt",
			"{action: DENY, rules: [{from: [{source: "
			"{requestPrincipals: ['*']}}], when: [{key: connection.sni, "
			"values: [a]}, {key: source.ip, values: ['10.0.0.1']}]}]}")
			 AP("app", "ext", "{action: CUSTOM, provider: {name: opa}, rules: [{}]}")
			     AP("app", "gw",
				"{targetRef: {kind: Gateway, group: "
				"gateway.networking.k8s.io, name: gw}}"));
	struct diags d = {0};

	CHECK_EQ(config_analyze(c, &d), 4, "four notes");
	CHECK(has_note(&d, "spec.rules[1]", "(methods, paths)"), "ALLOW rule named");
	CHECK(has_note(&d, "spec.rules[1]", "never matches"), "ALLOW: dropped");
	CHECK(has_note(&d, "spec.rules[0]",
		       "(requestPrincipals, connection.sni): decided per request on the HTTP "
		       "path"),
	      "DENY: per request where the HTTP path carries it");
	CHECK(has_note(&d, "spec.rules[0]",
		       "judged per connection, where they are ignored and this DENY rule"),
	      "DENY: fields ignored, L4 when keys not listed");
	CHECK(has_note(&d, "spec.action",
		       "external authorizer \"opa\": connections matching "
		       "the rules are denied"),
	      "CUSTOM fails closed");
	CHECK(has_note(&d, "spec.targetRef", "no effect"), "targetRef");
	diags_free(&d);
	config_free(c);
}

static void test_policy_name(void)
{
	struct mesh_config *c = load(AP("app", "pol", "{}"));
	char buf[64];

	if (CHECK_EQ(c->naps, 1, "loaded"))
		CHECK_STR(sec_policy_name(&c->aps[0], buf, sizeof(buf)), "app/pol", "ns/name");
	config_free(c);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bpfmesh-security-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/t.yaml", tmpdir);
	RUN(test_model_pa);
	RUN(test_model_ap);
	RUN(test_model_replace_same_file);
	RUN(test_pa_default_permissive);
	RUN(test_pa_mesh_wide);
	RUN(test_pa_namespace_beats_mesh);
	RUN(test_pa_workload_beats_namespace);
	RUN(test_pa_unset_inherits);
	RUN(test_pa_port_level);
	RUN(test_pa_port_level_inherits_namespace);
	RUN(test_pa_oldest_wins_timestamp);
	RUN(test_pa_oldest_wins_name);
	RUN(test_pa_absent_timestamp_is_oldest);
	RUN(test_pa_unset_chosen_does_not_fall_to_next);
	RUN(test_pa_root_namespace_param);
	RUN(test_pa_root_selector_ignored);
	RUN(test_mtls_mode_name);
	RUN(test_ap_no_policy_allows);
	RUN(test_ap_http_fields_per_request);
	RUN(test_ap_empty_spec_denies_all);
	RUN(test_ap_empty_rule_allows_all);
	RUN(test_ap_deny_beats_allow);
	RUN(test_ap_deny_only_allows_rest);
	RUN(test_ap_audit_changes_nothing);
	RUN(test_ap_deny_audit_without_rules_match_nothing);
	RUN(test_ap_allow_no_match_denies);
	RUN(test_ap_oldest_reported);
	RUN(test_ap_selection);
	RUN(test_ap_root_namespace_wide);
	RUN(test_ap_principals_exact);
	RUN(test_ap_principals_wildcards);
	RUN(test_ap_not_principals_plaintext);
	RUN(test_ap_namespaces);
	RUN(test_ap_service_accounts);
	RUN(test_ap_ip_blocks_v4);
	RUN(test_ap_ip_blocks_v6);
	RUN(test_ap_not_ip_blocks);
	RUN(test_ap_remote_ip_blocks);
	RUN(test_ap_ports);
	RUN(test_ap_when_source_ip);
	RUN(test_ap_when_principal_namespace);
	RUN(test_ap_when_destination);
	RUN(test_ap_and_or);
	RUN(test_ap_http_fields_allow_rule_dropped);
	RUN(test_ap_http_fields_deny_broadened);
	RUN(test_ap_custom_fails_closed);
	RUN(test_policy_ports);
	RUN(test_policy_prefixes_set);
	RUN(test_policy_prefixes_property);
	RUN(test_analyze_notes);
	RUN(test_policy_name);
	unlink(path);
	rmdir(tmpdir);
	return CHECK_DONE("security");
}
