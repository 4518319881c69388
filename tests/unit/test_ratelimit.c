// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_ratelimit.c: unit tests of user/lib/ratelimit.c: Istio's rate-limit EnvoyFilter shapes
 * read through config.c (the task's YAML verbatim), validation notices, which patches hold for
 * a proxy, descriptors from route actions, the local token bucket, envoyproxy/ratelimit's
 * config lookup and Redis keys. Run under ASan+UBSan.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model.h"
#include "ratelimit.h"

static char tmpdir[64];
static char path[256];

static struct mesh_config *load(const char *yaml, struct diags *d)
{
	struct mesh_config *c = config_new();
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(yaml, f);
		fclose(f);
	}
	config_load_file(c, path, d);
	return c;
}

static const char *LOCAL_TASK =
    "apiVersion: networking.istio.io/v1alpha3\n"
    "kind: EnvoyFilter\n"
    "metadata: {name: filter-local-ratelimit-svc, namespace: istio-system}\n"
    "spec:\n"
    "  workloadSelector: {labels: {app: productpage}}\n"
    "  configPatches:\n"
    "    - applyTo: HTTP_FILTER\n"
    "      match:\n"
    "        context: SIDECAR_INBOUND\n"
    "        listener: {filterChain: {filter: {name: "
    "envoy.filters.network.http_connection_manager}}}\n"
    "      patch:\n"
    "        operation: INSERT_BEFORE\n"
    "        value:\n"
    "          name: envoy.filters.http.local_ratelimit\n"
    "          typed_config:\n"
    "            '@type': type.googleapis.com/udpa.type.v1.TypedStruct\n"
    "            type_url: "
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit\n"
    "            value:\n"
    "              stat_prefix: http_local_rate_limiter\n"
    "              token_bucket: {max_tokens: 4, tokens_per_fill: 4, fill_interval: 60s}\n"
    "              filter_enabled: {runtime_key: a, default_value: {numerator: 100, denominator: "
    "HUNDRED}}\n"
    "              filter_enforced: {runtime_key: b, default_value: {numerator: 5000, denominator: "
    "TEN_THOUSAND}}\n"
    "              response_headers_to_add:\n"
    "                - {append: false, header: {key: X-Local-Rate-Limit, value: 'true'}}\n"
    "              descriptors:\n"
    "                - entries: [{key: PATH, value: /login}]\n"
    "                  token_bucket: {max_tokens: 2, tokens_per_fill: 1, fill_interval: 1s}\n"
    "    - applyTo: HTTP_ROUTE\n"
    "      match:\n"
    "        context: SIDECAR_INBOUND\n"
    "        routeConfiguration: {vhost: {name: 'inbound|http|9080', route: {action: ANY}}}\n"
    "      patch:\n"
    "        operation: MERGE\n"
    "        value:\n"
    "          route:\n"
    "            rate_limits:\n"
    "              - actions: [{request_headers: {header_name: ':path', descriptor_key: PATH}}]\n"
    "    - applyTo: CLUSTER\n"
    "      match: {context: SIDECAR_OUTBOUND}\n"
    "      patch: {operation: MERGE, value: {connect_timeout: 1s}}\n";

static void test_local_task_read(void)
{
	struct diags d = {0};
	struct mesh_config *c = load(LOCAL_TASK, &d);
	const struct ef_obj *f;
	const struct ef_patch *p;

	CHECK_EQ(d.nerrors, 0, "Istio accepts it: so do we");
	if (!CHECK_EQ(c->nefs, 1, "one EnvoyFilter in the model"))
		goto out;
	f = &c->efs[0];
	CHECK_STR(f->ns, "istio-system", "namespace");
	CHECK_EQ(f->np, 3, "three patches");
	p = &f->p[0];
	CHECK_EQ(p->kind, EFP_LOCAL, "an HTTP_FILTER local_ratelimit");
	CHECK_EQ(p->ctx, EF_INBOUND, "SIDECAR_INBOUND");
	CHECK(p->local.has_tb, "token bucket");
	CHECK_EQ(p->local.tb.max_tokens, 4, "max_tokens");
	CHECK_EQ(p->local.tb.tokens_per_fill, 4, "tokens_per_fill");
	CHECK_EQ(p->local.tb.fill_ms, 60000, "fill_interval 60s");
	CHECK(p->local.enabled == 1.0, "filter_enabled 100/HUNDRED");
	CHECK(p->local.enforced == 0.5, "filter_enforced 5000/TEN_THOUSAND");
	CHECK_EQ(p->local.nhdrs, 1, "response_headers_to_add");
	CHECK_STR(p->local.hdrs[0].name, "x-local-rate-limit", "header names in lower case");
	CHECK(!p->local.hdrs[0].append, "append: false");
	CHECK_EQ(p->local.ndescs, 1, "descriptors");
	CHECK_EQ(p->local.descs[0].tb.fill_ms, 1000, "descriptor bucket");
	p = &f->p[1];
	CHECK_EQ(p->kind, EFP_ROUTE, "an HTTP_ROUTE MERGE with rate_limits");
	CHECK_STR(p->vhost, "inbound|http|9080", "vhost name");
	CHECK_EQ(p->nlimits, 1, "one rate_limits entry");
	CHECK_EQ(f->p[2].kind, EFP_OTHER, "a CLUSTER patch is not ours");
	CHECK(d.n >= 1, "the CLUSTER patch is reported");
	for (int i = 0; i < d.n; i++)
		if (d.v[i].sev == DIAG_WARN)
			CHECK_CONTAINS(d.v[i].msg, "not supported by bpfmesh", "it says so");
out:
	diags_free(&d);
	config_free(c);
}

static const char *GLOBAL_TASK =
    "apiVersion: networking.istio.io/v1alpha3\n"
    "kind: EnvoyFilter\n"
    "metadata: {name: filter-ratelimit, namespace: istio-system}\n"
    "spec:\n"
    "  workloadSelector: {labels: {istio: ingressgateway}}\n"
    "  configPatches:\n"
    "    - applyTo: HTTP_FILTER\n"
    "      match: {context: GATEWAY}\n"
    "      patch:\n"
    "        operation: INSERT_BEFORE\n"
    "        value:\n"
    "          name: envoy.filters.http.ratelimit\n"
    "          typedConfig:\n"
    "            '@type': "
    "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit\n"
    "            domain: ratelimit\n"
    "            failureModeDeny: true\n"
    "            timeout: 10s\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: ConfigMap\n"
    "metadata: {name: ratelimit-config, namespace: default}\n"
    "data:\n"
    "  config.yaml: |\n"
    "    domain: ratelimit\n"
    "    descriptors:\n"
    "      - key: PATH\n"
    "        value: /productpage\n"
    "        rate_limit: {unit: minute, requests_per_unit: 1}\n"
    "      - key: PATH\n"
    "        rate_limit: {unit: minute, requests_per_unit: 100}\n"
    "      - key: user\n"
    "        descriptors:\n"
    "          - key: PATH\n"
    "            value: /login\n"
    "            rate_limit: {unit: minute, requests_per_unit: 5, name: login}\n"
    "      - key: tier\n"
    "        value: free*\n"
    "        rate_limit: {unit: second, requests_per_unit: 1}\n"
    "      - key: vip\n"
    "        rate_limit: {unlimited: true}\n";

static void test_global_task_read(void)
{
	struct diags d = {0};
	struct mesh_config *c = load(GLOBAL_TASK, &d);

	CHECK_EQ(d.nerrors, 0, "no errors");
	if (!CHECK_EQ(c->nefs, 1, "the EnvoyFilter") || !CHECK_EQ(c->nrlcms, 1, "the ConfigMap"))
		goto out;
	/* camelCase as proto JSON writes it reads the same */
	CHECK_EQ(c->efs[0].p[0].kind, EFP_GLOBAL, "a global ratelimit filter");
	CHECK_STR(c->efs[0].p[0].domain, "ratelimit", "domain");
	CHECK(c->efs[0].p[0].failure_mode_deny, "failureModeDeny");
	CHECK_EQ(c->efs[0].p[0].timeout_ms, 10000, "timeout");
	CHECK(rl_has_global(c), "the lab starts Redis for it");
	CHECK_EQ(c->rlcms[0].ndoms, 1, "one domain");
	CHECK_STR(c->rlcms[0].doms[0].domain, "ratelimit", "its name");
out:
	diags_free(&d);
	config_free(c);
}

static void test_bad_config_map(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: v1\nkind: ConfigMap\n"
				     "metadata: {name: ratelimit-config, namespace: default}\n"
				     "data:\n  config.yaml: |\n    domain: x\n    descriptors:\n"
				     "      - key: a\n        rate_limit: {unit: fortnight, "
				     "requests_per_unit: 1}\n",
				     &d);
	bool said = false;

	CHECK_EQ(d.nerrors, 0, "the API server accepts any ConfigMap");
	for (int i = 0; i < d.n; i++)
		said |= d.v[i].sev == DIAG_WARN && strstr(d.v[i].msg, "fortnight") &&
			strstr(d.v[i].msg, "not a rate-limit config");
	CHECK(said, "the bad unit is named, the config not loaded");
	CHECK_EQ(c->nrlcms == 1 ? c->rlcms[0].ndoms : -1, 0, "nothing of it is used");
	diags_free(&d);
	config_free(c);
}

static const char *hdr(void *arg, const char *name)
{
	const char *const *kv = arg;

	for (int i = 0; kv[i]; i += 2)
		if (!strcmp(kv[i], name))
			return kv[i + 1];
	return NULL;
}

static void test_descriptors(void)
{
	struct diags d = {0};
	struct mesh_config *c = load(
	    "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\n"
	    "metadata: {name: r, namespace: default}\n"
	    "spec:\n  configPatches:\n"
	    "    - applyTo: VIRTUAL_HOST\n      match: {context: GATEWAY}\n"
	    "      patch:\n        operation: MERGE\n        value:\n          rate_limits:\n"
	    "            - actions: [{request_headers: {header_name: x-user, descriptor_key: "
	    "user}},"
	    " {request_headers: {header_name: ':path', descriptor_key: PATH}}]\n"
	    "            - actions: [{request_headers: {header_name: x-tier, descriptor_key: tier, "
	    "skip_if_absent: true}}, {generic_key: {descriptor_value: g}}]\n"
	    "            - actions: [{header_value_match: {descriptor_value: api, headers: [{name: "
	    "':path', safe_regex_match: {regex: '/api/v1/products/[1-9]{1,2}'}}]}}]\n"
	    "            - actions: [{header_value_match: {descriptor_value: notapi, expect_match: "
	    "false, headers: [{name: ':path', prefix_match: /api}]}}]\n"
	    "            - actions: [{remote_address: {}}]\n",
	    &d);
	const char *h1[] = {":path", "/login", "x-user", "alice", NULL};
	const char *h2[] = {":path", "/api/v1/products/7", NULL};
	struct rl_req q = {.header = hdr, .arg = (void *)h1, .remote = "10.0.0.9"};
	struct rl_desc o;
	const struct ef_patch *p;

	if (!CHECK_EQ(c->nefs, 1, "loaded"))
		goto out;
	p = &c->efs[0].p[0];
	CHECK(p->vhost_level, "VIRTUAL_HOST: every route");
	if (!CHECK_EQ(p->nlimits, 5, "five entries"))
		goto out;
	CHECK(rl_descriptor(&p->limits[0], &q, &o), "user + PATH");
	CHECK_EQ(o.n, 2, "two entries");
	CHECK_STR(o.e[0].key, "user", "key");
	CHECK_STR(o.e[0].value, "alice", "value from the header");
	CHECK_STR(o.e[1].value, "/login", ":path");
	CHECK(rl_descriptor(&p->limits[1], &q, &o), "x-tier absent but skip_if_absent");
	CHECK_EQ(o.n, 1, "only the generic key");
	CHECK_STR(o.e[0].key, "generic_key", "generic_key's default key");
	CHECK(!rl_descriptor(&p->limits[2], &q, &o), "/login is no product: no descriptor");
	CHECK(rl_descriptor(&p->limits[3], &q, &o), "expect_match false holds for /login");
	CHECK_STR(o.e[0].key, "header_match", "header_value_match's default key");
	CHECK(rl_descriptor(&p->limits[4], &q, &o), "remote_address");
	CHECK_STR(o.e[0].value, "10.0.0.9", "the downstream address");
	q.arg = (void *)h2;
	CHECK(!rl_descriptor(&p->limits[0], &q, &o), "x-user absent: no descriptor at all");
	CHECK(rl_descriptor(&p->limits[2], &q, &o), "a product path matches the regex");
	CHECK_STR(o.e[0].value, "api", "descriptor_value");
	CHECK(!rl_descriptor(&p->limits[3], &q, &o), "expect_match false fails on /api...");
out:
	diags_free(&d);
	config_free(c);
}

static void test_token_bucket(void)
{
	struct rl_bucket b = {.max_tokens = 4, .tokens_per_fill = 2, .fill_ms = 1000};
	struct rl_tb_state s = {0};
	int ok = 0;

	for (int i = 0; i < 10; i++)
		ok += rl_take(&s, &b, 5000);
	CHECK_EQ(ok, 4, "starts full: max_tokens, then none");
	CHECK(!rl_take(&s, &b, 5999), "no fill before the interval");
	CHECK(rl_take(&s, &b, 6000), "a fill after one interval");
	CHECK(rl_take(&s, &b, 6000), "tokens_per_fill of them");
	CHECK(!rl_take(&s, &b, 6000), "and no more");
	ok = 0;
	for (int i = 0; i < 10; i++)
		ok += rl_take(&s, &b, 60000);
	CHECK_EQ(ok, 4, "a long idle fills to max_tokens, never above");
}

static void test_domain_lookup(void)
{
	struct diags d = {0};
	struct mesh_config *c = load(GLOBAL_TASK, &d);
	const struct rl_domain *dom;
	const struct rl_cdesc *l;
	struct rl_desc q = {.n = 1};
	char key[256];

	if (!CHECK_EQ(c->nrlcms == 1 ? c->rlcms[0].ndoms : 0, 1, "loaded"))
		goto out;
	dom = &c->rlcms[0].doms[0];
	q.e[0] = (struct rl_entry){"PATH", "/productpage"};
	l = rl_domain_limit(dom, &q);
	CHECK(l && l->rpu == 1 && l->unit_s == 60, "key and value first");
	CHECK_OK(rl_cache_key(key, sizeof(key), dom->domain, &q, l, 1700000059), "key fits");
	CHECK_STR(key, "ratelimit_PATH_/productpage_1700000040", "envoyproxy/ratelimit's key");
	q.e[0].value = "/other";
	l = rl_domain_limit(dom, &q);
	CHECK(l && l->rpu == 100, "then the key alone");
	q.e[0] = (struct rl_entry){"nope", "x"};
	CHECK(!rl_domain_limit(dom, &q), "no such key: no limit");
	q.e[0] = (struct rl_entry){"user", "alice"};
	CHECK(!rl_domain_limit(dom, &q), "a level without its own limit: none");
	q.n = 2;
	q.e[1] = (struct rl_entry){"PATH", "/login"};
	l = rl_domain_limit(dom, &q);
	CHECK(l && l->rpu == 5 && l->name && !strcmp(l->name, "login"), "nested");
	q.e[1].value = "/x";
	CHECK(!rl_domain_limit(dom, &q), "nested value mismatch: none");
	q.n = 1;
	q.e[0] = (struct rl_entry){"tier", "free-eu"};
	l = rl_domain_limit(dom, &q);
	CHECK(l && l->unit_s == 1, "a value ending in * is a prefix");
	q.e[0] = (struct rl_entry){"vip", "bob"};
	l = rl_domain_limit(dom, &q);
	CHECK(l && l->unlimited, "unlimited");
	q.n = 2;
	q.e[0] = (struct rl_entry){"PATH", "/productpage"};
	q.e[1] = (struct rl_entry){"x", "y"};
	CHECK(!rl_domain_limit(dom, &q), "deeper than the config: none");
out:
	diags_free(&d);
	config_free(c);
}

static void test_patch_holds(void)
{
	struct ef_patch p = {.ctx = EF_GATEWAY, .vhost = (char *)"*:80"};
	struct ef_patch in = {.ctx = EF_INBOUND, .vhost = (char *)"inbound|http|9080"};
	struct ef_patch named = {
	    .ctx = EF_ANY, .vhost = (char *)"a.example.com:8080", .route = (char *)"api"};

	CHECK(ef_patch_holds(&p, EF_GATEWAY, 80, "*", NULL), "*:80 on port 80");
	CHECK(!ef_patch_holds(&p, EF_GATEWAY, 81, "*", NULL), "not on 81");
	CHECK(!ef_patch_holds(&p, EF_INBOUND, 80, NULL, NULL), "not on another side");
	CHECK(ef_patch_holds(&in, EF_INBOUND, 9080, NULL, NULL), "inbound|http|9080");
	CHECK(!ef_patch_holds(&in, EF_INBOUND, 8080, NULL, NULL), "another port");
	CHECK(ef_patch_holds(&named, EF_OUTBOUND, 8080, "a.example.com", "api"), "host and route");
	CHECK(!ef_patch_holds(&named, EF_OUTBOUND, 8080, "a.example.com", "web"), "route name");
	CHECK(!ef_patch_holds(&named, EF_OUTBOUND, 8080, "b.example.com", "api"), "host");
}

static void test_selects(void)
{
	struct kv l[2] = {{(char *)"app", (char *)"productpage"}, {(char *)"v", (char *)"1"}};
	struct kv sel[1] = {{(char *)"app", (char *)"productpage"}};
	struct workload_obj w = {.name = (char *)"pp", .ns = (char *)"shop", .labels = {l, 2}};
	struct ef_obj root = {
	    .name = (char *)"f", .ns = (char *)"istio-system", .selector = {sel, 1}};
	struct ef_obj other = {.name = (char *)"f", .ns = (char *)"other", .selector = {sel, 1}};
	struct ef_obj own = {.name = (char *)"f", .ns = (char *)"shop"};

	CHECK(ef_selects(&root, NULL, &w), "the root namespace's filter: every namespace");
	CHECK(!ef_selects(&root, "mesh-root", &w), "unless the root is another");
	CHECK(!ef_selects(&other, NULL, &w), "another namespace's: not");
	CHECK(ef_selects(&own, NULL, &w), "no selector: every workload of its namespace");
	l[0].val = (char *)"web";
	CHECK(!ef_selects(&root, NULL, &w), "labels must match");
}

static void test_local_match(void)
{
	struct rl_entry e = {(char *)"PATH", (char *)"/login"};
	struct rl_local_desc ld = {.e = &e, .n = 1};
	struct rl_local lc = {.descs = &ld, .ndescs = 1};
	struct rl_desc ds[2] = {{.n = 1}, {.n = 2}};
	int idx[4];

	ds[0].e[0] = (struct rl_entry){"PATH", "/"};
	ds[1].e[0] = (struct rl_entry){"PATH", "/login"};
	ds[1].e[1] = (struct rl_entry){"x", "y"};
	CHECK_EQ(rl_local_match(&lc, ds, 2, idx, 4), 0, "verbatim only: no partial match");
	ds[0].e[0].value = "/login";
	CHECK_EQ(rl_local_match(&lc, ds, 2, idx, 4), 1, "equal entries match");
	CHECK_EQ(idx[0], 0, "its index");
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bpfmesh-rl-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/t.yaml", tmpdir);
	RUN(test_local_task_read);
	RUN(test_global_task_read);
	RUN(test_bad_config_map);
	RUN(test_descriptors);
	RUN(test_token_bucket);
	RUN(test_domain_lookup);
	RUN(test_patch_holds);
	RUN(test_selects);
	RUN(test_local_match);
	unlink(path);
	rmdir(tmpdir);
	return CHECK_DONE("ratelimit");
}
