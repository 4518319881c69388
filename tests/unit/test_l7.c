// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_l7.c: the HTTP path's decisions (loader/l7table.c, loader/l7route.c) from real YAML
 * through the config loader and resolver: which ports take the HTTP path and why; route
 * matching for every HTTPMatchRequest field, table-driven from Istio's semantics; weights per
 * request; delegation; rewrite and redirect results; header operations; retry policy, retryOn
 * and back-off; faults; consistent hashing on a header, a cookie and the source address.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "cfgref.h"
#include "gwtls.h"
#include "l7route.h"
#include "l7table.h"
#include "model.h"
#include "resolve.h"

static char dir[] = "/tmp/bpfmesh-test-l7-XXXXXX";

static const char *base =
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: t, labels: {istio-injection: enabled}}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\n"
    "spec:\n  clusterIP: 10.96.0.10\n  selector: {app: web}\n"
    "  ports: [{name: http, port: 80, targetPort: 8080}, {name: tcp-db, port: 5432}]\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-a, namespace: t, labels: {app: web, "
    "version: v1}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.244.1.2}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-b, namespace: t, labels: {app: web, "
    "version: v2}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.244.1.3}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-c, namespace: t, labels: {app: web, "
    "version: v2}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.244.1.4}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: t, labels: {app: "
    "client, role: tester}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.244.1.9}\n"
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
    "metadata: {name: web, namespace: t}\nspec:\n  host: web\n  subsets:\n"
    "  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";

struct fixture {
	struct mesh_config *c;
	struct cfgref *ref;
	struct rs_table t;
	struct l7_table *lt;
	const struct l7_svc *svc; /* 10.96.0.10:80 */
};

static bool setup_ingress(struct fixture *f, const char *extra, const struct kvlist *ingress)
{
	char path[128];
	struct diags d = {0};
	uint8_t vip[4] = {10, 96, 0, 10};
	struct l7_env env = {.ingress = ingress};
	FILE *fp;

	memset(f, 0, sizeof(*f));
	snprintf(path, sizeof(path), "%s/c.yaml", dir);
	fp = fopen(path, "w");
	if (!fp)
		return false;
	fprintf(fp, "%s%s", base, extra);
	fclose(fp);
	f->c = config_new();
	config_load_file(f->c, path, &d);
	config_index(f->c);
	if (d.nerrors)
		diags_print(&d, stderr);
	diags_free(&d);
	resolve(f->c, &f->t, &d);
	diags_free(&d);
	f->ref = cfgref_new(f->c);
	f->lt = l7_table_build(f->ref, &f->t, &env);
	f->svc = l7_table_find(f->lt, vip, 80);
	return true;
}

static bool setup(struct fixture *f, const char *extra)
{
	return setup_ingress(f, extra, NULL);
}

static void teardown(struct fixture *f)
{
	l7_table_put(f->lt);
	rs_free(&f->t);
	cfgref_put(f->ref);
}

static const struct workload_obj *pod(const struct mesh_config *c, const char *name)
{
	for (int i = 0; i < c->nworkloads; i++)
		if (!strcmp(c->workloads[i].name, name))
			return &c->workloads[i];
	return NULL;
}

static const struct rs_service *port_of(const struct rs_table *t, int port)
{
	for (int i = 0; i < t->nservices; i++)
		if (t->services[i].port == port && t->services[i].family == BM_FAM_V4)
			return &t->services[i];
	return NULL;
}

static const char *vs_head = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
			     "metadata: {name: web, namespace: t}\nspec:\n  hosts: [web]\n";

static void test_which_ports_take_the_http_path(void)
{
	static const struct {
		const char *extra, *want;
	} cases[] = {
	    {"", ""},
	    {"  http: [{route: [{destination: {host: web, subset: v1}, weight: 90}, "
	     "{destination: {host: web, subset: v2}, weight: 10}]}]\n",
	     ""}, /* a weighted split alone stays per connection in the kernel */
	    {"  http: [{match: [{headers: {x: {exact: \"y\"}}}], route: [{destination: {host: "
	     "web}}]}]\n",
	     "match in spec.http[0]"},
	    {"  http: [{route: [{destination: {host: web}}], retries: {attempts: 3}}]\n",
	     "retries in spec.http[0]"},
	    {"  http: [{route: [{destination: {host: web}}], timeout: 2s}]\n",
	     "timeout in spec.http[0]"},
	    {"  http: [{route: [{destination: {host: web}}], fault: {abort: {httpStatus: 500, "
	     "percentage: {value: 1}}}}]\n",
	     "fault in spec.http[0]"},
	    {"  http: [{route: [{destination: {host: web}, headers: {request: {set: {a: b}}}}]}]\n",
	     "headers in spec.http[0]"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fixture f;
		char extra[1024];
		const struct rs_service *http, *tcp;

		snprintf(extra, sizeof(extra), "%s%s", cases[i].extra[0] ? vs_head : "",
			 cases[i].extra);
		if (!CHECK(setup(&f, extra), "setup"))
			return;
		http = port_of(&f.t, 80);
		tcp = port_of(&f.t, 5432);
		if (CHECK(http && tcp, "both ports resolved")) {
			CHECK_EQ(http->http, RS_HTTP, "port named http");
			CHECK_EQ(tcp->http, RS_TCP, "port named tcp-db");
			CHECK_STR(http->l7_reason, cases[i].want, cases[i].extra);
			CHECK_STR(tcp->l7_reason, "", "a TCP port never takes the HTTP path");
		}
		teardown(&f);
	}
}

static void test_waypoint_label_and_policy(void)
{
	struct fixture f;

	setup(&f, "---\napiVersion: v1\nkind: Service\nmetadata: {name: wp, namespace: t, labels: "
		  "{istio.io/use-waypoint: waypoint}}\nspec: {clusterIP: 10.96.0.11, selector: "
		  "{app: web}, ports: [{name: http-web, port: 80}]}\n"
		  "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
		  "metadata: {name: get-only, namespace: t}\nspec:\n  selector: {matchLabels: "
		  "{version: v1}}\n  rules: [{to: [{operation: {methods: [GET]}}]}]\n");
	for (int i = 0; i < f.t.nservices; i++) {
		const struct rs_service *rs = &f.t.services[i];

		if (rs->family != BM_FAM_V4 || rs->port != 80)
			continue;
		if (!strcmp(rs->svc->name, "wp"))
			CHECK_STR(rs->l7_reason, "istio.io/use-waypoint on the Service", "label");
		else
			CHECK_STR(rs->l7_reason, "AuthorizationPolicy t/get-only",
				  "an HTTP policy on a workload behind the port");
	}
	teardown(&f);
}

/* One request against the fixture's routes: the index of the route it takes (-1: 404 NR). */
static int route_of(const struct fixture *f, const char *method, const char *path,
		    const char *headers, const char *src)
{
	struct l7_hdrs h = {0};
	struct l7_req_view r = {.method = method,
				.path = path,
				.authority = "web.t:80",
				.scheme = "http",
				.h = &h,
				.port = 80,
				.src = src ? pod(f->c, src) : NULL};
	char buf[512];
	int idx;

	snprintf(buf, sizeof(buf), "%s", headers ? headers : "");
	for (char *save = NULL, *kv = strtok_r(buf, ";", &save); kv;
	     kv = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(kv, '=');

		if (eq) {
			*eq = 0;
			l7h_add(&h, kv, eq + 1);
		}
	}
	if (!strcmp(headers ? headers : "", "Host=x"))
		r.authority = "x";
	idx = l7_route_find(f->svc, &r);
	l7h_free(&h);
	return idx;
}

static void test_match_fields(void)
{
	static const char *routes =
	    "  http:\n"
	    "  - match: [{uri: {exact: /exact}}]\n    route: [{destination: {host: web}}]\n"
	    "  - match: [{uri: {prefix: /pre}, ignoreUriCase: true}]\n"
	    "    route: [{destination: {host: web}}]\n"
	    "  - match: [{uri: {regex: '/re/[0-9]+'}}]\n    route: [{destination: {host: web}}]\n"
	    "  - match: [{method: {exact: POST}}]\n    route: [{destination: {host: web}}]\n"
	    "  - match: [{headers: {end-user: {exact: jason}}}]\n"
	    "    route: [{destination: {host: web}}]\n"
	    "  - match: [{headers: {x-any: {}}}]\n    route: [{destination: {host: web}}]\n"
	    "  - match: [{headers: {x-pre: {prefix: ab}}, withoutHeaders: {x-no: {}}}]\n"
	    "    route: [{destination: {host: web}}]\n"
	    "  - match: [{queryParams: {q: {exact: '1'}}}]\n    route: [{destination: {host: "
	    "web}}]\n"
	    "  - match: [{authority: {exact: x}}]\n    route: [{destination: {host: web}}]\n"
	    "  - match: [{sourceLabels: {role: tester}}]\n    route: [{destination: {host: web}}]\n"
	    "  - match: [{port: 81}, {uri: {prefix: /or}}]\n"
	    "    route: [{destination: {host: web}}]\n"
	    "  - match: [{uri: {prefix: /gw}, gateways: [other-gateway]}]\n"
	    "    route: [{destination: {host: web}}]\n"
	    "  - match: [{uri: {prefix: /ns}, sourceNamespace: t}]\n"
	    "    route: [{destination: {host: web}}]\n";
	static const struct {
		const char *method, *path, *headers, *src;
		int want;
		const char *what;
	} cases[] = {
	    {"GET", "/exact", NULL, NULL, 0, "uri exact"},
	    {"GET", "/exact?x=1", NULL, NULL, 0, "uri exact ignores the query string"},
	    {"GET", "/exactly", NULL, NULL, -1, "uri exact is exact"},
	    {"GET", "/PREfix", NULL, NULL, 1, "uri prefix, ignoreUriCase"},
	    {"GET", "/re/42", NULL, NULL, 2, "uri regex, whole path"},
	    {"GET", "/re/42/x", NULL, NULL, -1, "uri regex must match the whole path"},
	    {"POST", "/y", NULL, NULL, 3, "method"},
	    {"GET", "/y", "end-user=jason", NULL, 4, "header exact"},
	    {"GET", "/y", "End-User=jason", NULL, 4, "header names are case-insensitive"},
	    {"GET", "/y", "end-user=jasonx", NULL, -1, "header exact is exact"},
	    {"GET", "/y", "x-any=", NULL, 5, "header {} means present"},
	    {"GET", "/y", "x-pre=abc", NULL, 6, "header prefix without withoutHeaders"},
	    {"GET", "/y", "x-pre=abc;x-no=1", NULL, -1, "withoutHeaders: present, so no match"},
	    {"GET", "/y?a=2&q=1", NULL, NULL, 7, "query parameter exact"},
	    {"GET", "/y?q=12", NULL, NULL, -1, "query parameter exact is exact"},
	    {"GET", "/y", "Host=x", NULL, 8, "authority"},
	    {"GET", "/y", NULL, "client", 9, "sourceLabels"},
	    {"GET", "/or/1", NULL, NULL, 10, "matches are ORed"},
	    {"GET", "/gw", NULL, NULL, -1, "a match for another gateway never holds in the mesh"},
	    {"GET", "/ns", NULL, "web-a", 12, "sourceNamespace"},
	    {"GET", "/ns", NULL, NULL, -1, "sourceNamespace: an unknown client has none"},
	    {"GET", "/nothing", NULL, NULL, -1, "no route matches: 404 NR"},
	};
	struct fixture f;
	char extra[4096];

	snprintf(extra, sizeof(extra), "%s%s", vs_head, routes);
	if (!CHECK(setup(&f, extra), "setup") || !CHECK(f.svc, "port 80 on the HTTP path"))
		return;
	CHECK_EQ(f.svc->nroutes, 13, "every http route, in order");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_EQ(
		    route_of(&f, cases[i].method, cases[i].path, cases[i].headers, cases[i].src),
		    cases[i].want, cases[i].what);
	teardown(&f);
}

static void test_weights_per_request(void)
{
	struct fixture f;
	int v2 = 0, n = 1000;
	char extra[1024];

	snprintf(extra, sizeof(extra),
		 "%s  http:\n  - match: [{uri: {prefix: /}}]\n    route:\n"
		 "    - {destination: {host: web, subset: v1}, weight: 3}\n"
		 "    - {destination: {host: web, subset: v2}, weight: 1}\n",
		 vs_head);
	if (!CHECK(setup(&f, extra), "setup") || !CHECK(f.svc, "on the HTTP path"))
		return;
	/* every point of [0, total) exactly once: the shares are the weights, exactly */
	for (int x = 0; x < n; x++) {
		const struct l7_dest *d = l7_pick_dest(&f.svc->routes[0], (uint32_t)x);

		v2 += d && !strcmp(d->cl->name, "v2");
	}
	CHECK_EQ(v2, n / 4, "weight 1 of 4: a quarter, exactly");
	CHECK_EQ(f.svc->routes[0].dests[1].cl->n, 2, "v2 has two pods");
	teardown(&f);
}

static void test_delegate(void)
{
	struct fixture f;
	char extra[2048];

	snprintf(extra, sizeof(extra),
		 "%s  http:\n  - match: [{uri: {prefix: /api}}]\n"
		 "    delegate: {name: web-api, namespace: t}\n"
		 "  - route: [{destination: {host: web, subset: v1}}]\n"
		 "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		 "metadata: {name: web-api, namespace: t}\nspec:\n  http:\n"
		 "  - match: [{headers: {x-v: {exact: '2'}}}]\n"
		 "    route: [{destination: {host: web, subset: v2}}]\n"
		 "  - route: [{destination: {host: web, subset: v1}}]\n",
		 vs_head);
	if (!CHECK(setup(&f, extra), "setup") || !CHECK(f.svc, "on the HTTP path"))
		return;
	CHECK_EQ(f.svc->nroutes, 3, "two delegated routes in place of one, then the last");
	CHECK_EQ(route_of(&f, "GET", "/api/x", "x-v=2", NULL), 0, "root and delegate match");
	CHECK_EQ(route_of(&f, "GET", "/api/x", NULL, NULL), 1, "the delegate's catch-all");
	CHECK_EQ(route_of(&f, "GET", "/other", "x-v=2", NULL), 2,
		 "the root's match must hold for every delegated route");
	teardown(&f);
}

static void test_rewrite_and_redirect(void)
{
	static const char *routes =
	    "  http:\n"
	    "  - match: [{uri: {prefix: /v1/api}}]\n    rewrite: {uri: /api}\n"
	    "    route: [{destination: {host: web}}]\n"
	    "  - match: [{uri: {exact: /old}}]\n    rewrite: {uri: /new}\n"
	    "    route: [{destination: {host: web}}]\n"
	    "  - match: [{uri: {prefix: /re}}]\n"
	    "    rewrite: {uriRegexRewrite: {match: '^/re/(.*)/x$', rewrite: '/\\1'}}\n"
	    "    route: [{destination: {host: web}}]\n"
	    "  - match: [{uri: {prefix: /moved}}]\n"
	    "    redirect: {uri: /here, authority: new.example, redirectCode: 302}\n"
	    "  - match: [{uri: {prefix: /keep}}]\n    redirect: {scheme: https}\n";
	struct fixture f;
	struct l7_hdrs h = {0};
	struct l7_req_view r = {
	    .method = "GET", .authority = "web.t:80", .scheme = "http", .h = &h, .port = 80};
	char extra[4096], *p;
	int status;

	snprintf(extra, sizeof(extra), "%s%s", vs_head, routes);
	if (!CHECK(setup(&f, extra), "setup") || !CHECK(f.svc && f.svc->nroutes == 5, "routes"))
		return;
	r.path = "/v1/api/items?x=1";
	p = l7_rewrite_path(&f.svc->routes[0], l7_route_matched(&f.svc->routes[0], &r), r.path);
	CHECK_STR(p, "/api/items?x=1", "uri: the matched prefix replaced, query kept");
	free(p);
	r.path = "/old?q";
	p = l7_rewrite_path(&f.svc->routes[1], l7_route_matched(&f.svc->routes[1], &r), r.path);
	CHECK_STR(p, "/new?q", "uri after an exact match: the path replaced");
	free(p);
	r.path = "/re/abc/x";
	p = l7_rewrite_path(&f.svc->routes[2], l7_route_matched(&f.svc->routes[2], &r), r.path);
	CHECK_STR(p, "/abc", "uriRegexRewrite with a group");
	free(p);
	r.path = "/moved/a";
	p = l7_redirect_location(&f.svc->routes[3], &r, &status);
	CHECK_STR(p, "http://new.example/here", "redirect: authority and uri");
	CHECK_EQ(status, 302, "redirectCode");
	free(p);
	r.path = "/keep/b";
	p = l7_redirect_location(&f.svc->routes[4], &r, &status);
	CHECK_STR(p, "https://web.t:80/keep/b", "redirect: scheme only, the rest kept");
	CHECK_EQ(status, 301, "301 by default");
	free(p);
	teardown(&f);
}

static void test_header_operations(void)
{
	struct header_ops ops = {0};
	struct kv set[] = {{"x-set", "s"}}, add[] = {{"x-add", "2"}};
	char *remove[] = {"x-gone"};
	struct l7_hdrs h = {0};

	ops.set = (struct kvlist){set, 1};
	ops.add = (struct kvlist){add, 1};
	ops.remove = remove;
	ops.nremove = 1;
	l7h_add(&h, "X-Set", "old");
	l7h_add(&h, "x-add", "1");
	l7h_add(&h, "X-Gone", "g");
	l7h_apply(&h, &ops);
	CHECK_STR(l7h_get(&h, "x-set"), "s", "set replaces");
	CHECK(!l7h_get(&h, "x-gone"), "remove");
	CHECK_EQ(h.n, 3, "x-set, x-add twice");
	l7h_free(&h);
}

static void test_retry_policy(void)
{
	struct l7_retry_policy p;
	struct l7_try_result r503 = {.status = 503, .grpc_status = -1},
			     r500 = {.status = 500, .grpc_status = -1},
			     cf = {.connect_failed = true, .grpc_status = -1},
			     reset = {.reset = true, .grpc_status = -1},
			     unavail = {.status = 200, .grpc_status = 14},
			     r409 = {.status = 409, .grpc_status = -1};

	l7_retry_policy(NULL, &p);
	CHECK_EQ(p.attempts, 2, "Istio's default: 2 retries");
	CHECK(l7_should_retry(&p, &r503), "default: 503 (retriable-status-codes)");
	CHECK(!l7_should_retry(&p, &r500), "default: not 500");
	CHECK(l7_should_retry(&p, &cf), "default: connect-failure");
	CHECK(!l7_should_retry(&p, &reset), "default: not a reset after the request");
	CHECK(l7_should_retry(&p, &unavail), "default: gRPC unavailable");
	memset(&p, 0, sizeof(p));
	l7_retry_on_parse("5xx, retriable-4xx,429", &p);
	CHECK(l7_should_retry(&p, &r500), "5xx");
	CHECK(l7_should_retry(&p, &reset), "5xx includes no response at all");
	CHECK(l7_should_retry(&p, &r409), "retriable-4xx is 409");
	CHECK(p.ncodes == 1 && p.codes[0] == 429, "a number is a retriable code");
	memset(&p, 0, sizeof(p));
	l7_retry_on_parse("gateway-error", &p);
	CHECK(l7_should_retry(&p, &r503) && !l7_should_retry(&p, &r500), "gateway-error");
	/* back-off: fully jittered, 25 ms base doubling, 250 ms cap */
	CHECK_EQ(l7_backoff_ms(1, 24), 24, "first retry: below 25 ms");
	CHECK_EQ(l7_backoff_ms(1, 25), 0, "... uniform in [0, 25)");
	CHECK_EQ(l7_backoff_ms(2, 74), 74, "second: below (2^2 - 1) x 25 = 75 ms");
	CHECK_EQ(l7_backoff_ms(2, 75), 0, "... and wraps there");
	CHECK_EQ(l7_backoff_ms(3, 174), 174, "third: below 175 ms");
	CHECK_EQ(l7_backoff_ms(4, 300), 250, "fourth: [0, 375) capped at 250 ms");
	CHECK_EQ(l7_backoff_ms(40, 374), 250, "the multiplier stops growing past the cap");
}

static void test_faults(void)
{
	struct fixture f;
	char extra[1024];
	int64_t ms;
	int st, grpc, hits = 0;

	snprintf(extra, sizeof(extra),
		 "%s  http:\n  - route: [{destination: {host: web}}]\n"
		 "    fault:\n      delay: {fixedDelay: 2s, percentage: {value: 50}}\n"
		 "      abort: {httpStatus: 418, percentage: {value: 100}}\n",
		 vs_head);
	if (!CHECK(setup(&f, extra), "setup") || !CHECK(f.svc, "on the HTTP path"))
		return;
	CHECK(l7_fault_delay(&f.svc->routes[0], 0.49, &ms) && ms == 2000, "delay below 50%");
	CHECK(!l7_fault_delay(&f.svc->routes[0], 0.5, &ms), "no delay at 50%");
	for (int i = 0; i < 100; i++)
		hits += l7_fault_abort(&f.svc->routes[0], i / 100.0, &st, &grpc) && st == 418;
	CHECK_EQ(hits, 100, "abort at 100%: every request");
	CHECK_EQ(l7_grpc_code("UNAVAILABLE"), 14, "gRPC status names");
	teardown(&f);
}

static void test_consistent_hash(void)
{
	struct fixture f;
	struct l7_hdrs h = {0};
	struct l7_req_view r = {.method = "GET",
				.path = "/",
				.authority = "web",
				.scheme = "http",
				.h = &h,
				.port = 80};
	char extra[1024];
	int first[20], moved = 0, same = 1;

	snprintf(extra, sizeof(extra),
		 "%s  http: [{route: [{destination: {host: web}}], timeout: 5s}]\n", vs_head);
	if (!CHECK(setup(&f, extra), "setup") || !CHECK(f.svc, "on the HTTP path"))
		return;
	/* give the every-endpoint cluster a header hash policy and pick for 20 users */
	struct traffic_policy tp = {.lb_hash = true, .hash_header = "x-user"};
	struct l7_cluster *cl = f.svc->routes[0].dests[0].cl;

	cl->tp = &tp;
	for (int u = 0; u < 20; u++) {
		char v[16];

		snprintf(v, sizeof(v), "user%d", u);
		l7h_set(&h, "x-user", v);
		first[u] = l7_pick_ep(cl, &r, (uint32_t)u * 7919u + 1, -1, NULL, NULL);
		for (int k = 0; k < 5; k++)
			same &= l7_pick_ep(cl, &r, (uint32_t)k * 104729u + 3, -1, NULL, NULL) ==
				first[u];
	}
	CHECK(same, "one user: one endpoint, whatever the random numbers");
	/* remove the last endpoint: only the keys it held move */
	cl->n--;
	for (int u = 0; u < 20; u++) {
		char v[16];

		snprintf(v, sizeof(v), "user%d", u);
		l7h_set(&h, "x-user", v);
		moved += first[u] != cl->n && l7_pick_ep(cl, &r, 5, -1, NULL, NULL) != first[u];
	}
	cl->n++;
	CHECK_EQ(moved, 0, "a ring: keys of the other endpoints stay");
	cl->tp = NULL;
	l7h_free(&h);
	teardown(&f);
}

/* httpCookie: the cookie's value is the key, quoted (as Envoy's Set-Cookie writes it) or not;
 * a client without it is hashed by the value generated for it, the one it gets back. */
static void test_cookie_hash(void)
{
	struct traffic_policy tp = {.lb_hash = true, .hash_cookie = "sess"};
	struct l7_hdrs h = {0};
	struct l7_req_view r = {.method = "GET", .path = "/", .h = &h};
	uint64_t plain, quoted, gen, other;
	bool have;

	l7h_set(&h, "cookie", "a=1; sess=abc123; b=2");
	plain = l7_hash_key(&tp, &r, &have);
	CHECK(have, "the cookie is a key");
	l7h_set(&h, "cookie", "sess=\"abc123\"");
	quoted = l7_hash_key(&tp, &r, &have);
	CHECK_EQ(quoted, plain, "quoted: the same key");
	l7h_set(&h, "cookie", "other=abc123");
	CHECK(!l7_hash_key(&tp, &r, &have) || !have, "another cookie: no key");
	r.gen_cookie = "abc123";
	gen = l7_hash_key(&tp, &r, &have);
	CHECK(have && gen == plain, "the generated value: the key the cookie will carry");
	l7h_set(&h, "cookie", "sess=zzz");
	other = l7_hash_key(&tp, &r, &have);
	CHECK(have && other != plain, "a cookie the client sends wins over a generated one");
	l7h_free(&h);
}


/* A ClientHello record with server_name = name (and one other extension before it). */
static size_t client_hello(uint8_t *b, const char *name)
{
	size_t nl = name ? strlen(name) : 0, i = 0, hs, ext;

	b[i++] = 0x16, b[i++] = 3, b[i++] = 1, i += 2; /* record: handshake, TLS 1.0, length */
	hs = i;
	b[i++] = 1, i += 3;			       /* ClientHello, length */
	b[i++] = 3, b[i++] = 3;			       /* legacy_version */
	memset(b + i, 0xab, 32), i += 32;	       /* random */
	b[i++] = 0;				       /* session id */
	b[i++] = 0, b[i++] = 2, b[i++] = 0x13, b[i++] = 1; /* one cipher suite */
	b[i++] = 1, b[i++] = 0;			       /* compression: null */
	ext = i, i += 2;
	b[i++] = 0, b[i++] = 10, b[i++] = 0, b[i++] = 4; /* supported_groups first */
	b[i++] = 0, b[i++] = 2, b[i++] = 0, b[i++] = 29;
	if (name) {
		b[i++] = 0, b[i++] = 0;				   /* server_name */
		b[i++] = 0, b[i++] = (uint8_t)(nl + 5);		   /* extension length */
		b[i++] = 0, b[i++] = (uint8_t)(nl + 3), b[i++] = 0; /* list, host_name */
		b[i++] = 0, b[i++] = (uint8_t)nl;
		memcpy(b + i, name, nl), i += nl;
	}
	b[ext] = (uint8_t)((i - ext - 2) >> 8), b[ext + 1] = (uint8_t)(i - ext - 2);
	b[hs + 1] = 0, b[hs + 2] = (uint8_t)((i - hs - 4) >> 8), b[hs + 3] = (uint8_t)(i - hs - 4);
	b[3] = (uint8_t)((i - 5) >> 8), b[4] = (uint8_t)(i - 5);
	return i;
}

/* tls routes read the SNI of the ClientHello: whole record or wait, not TLS, no SNI. */
static void test_tls_sni(void)
{
	uint8_t b[512];
	char sni[256];
	size_t n = client_hello(b, "a.tlsweb.l7.svc.cluster.local");

	CHECK_EQ(l7_tls_sni(b, n, sni, sizeof(sni)), 1, "a whole ClientHello");
	CHECK(!strcmp(sni, "a.tlsweb.l7.svc.cluster.local"), "its server_name");
	CHECK_EQ(l7_tls_sni(b, n - 1, sni, sizeof(sni)), 0, "one byte short: wait for it");
	CHECK_EQ(l7_tls_sni(b, 3, sni, sizeof(sni)), 0, "not even a record header");
	CHECK_EQ(l7_tls_sni((const uint8_t *)"GET / HTTP/1.1\r\n", 16, sni, sizeof(sni)), -1,
		 "HTTP is not TLS");
	n = client_hello(b, NULL);
	CHECK_EQ(l7_tls_sni(b, n, sni, sizeof(sni)), 1, "a ClientHello without server_name");
	CHECK(!sni[0], "no name");
	n = client_hello(b, "x.example.com");
	b[n - 14] = 200; /* the name's length runs past its extension */
	CHECK_EQ(l7_tls_sni(b, n, sni, sizeof(sni)), 1, "a lying length: no name");
	CHECK(!sni[0], "nothing read past the extension");
}


/* Istio's BASE path normalization: what routing and AuthorizationPolicy judge. */
static void test_normalize_path(void)
{
	static const char *const cases[][2] = {
	    {"/anything/x/../admin", "/anything/admin"},
	    {"/anything/./admin", "/anything/admin"},
	    {"/anything/%61dmin", "/anything/admin"},
	    {"/a/%2f/b", "/a/%2F/b"}, /* an encoded slash stays encoded */
	    {"/a//b", "/a//b"},	      /* BASE merges no slashes */
	    {"/../../x", "/x"},
	    {"/a/b/..", "/a/"},
	    {"/a/.", "/a/"},
	    {"/get?x=/../y&%61=1", "/get?x=/../y&%61=1"}, /* the query is left alone */
	    {"/", "/"},
	    {"/%", "/%"},
	    {"/%4", "/%4"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = strdup(cases[i][0]);

		l7_normalize_path(p);
		if (!CHECK(!strcmp(p, cases[i][1]), cases[i][0]))
			fprintf(stderr, "    got %s, want %s\n", p, cases[i][1]);
		free(p);
	}
}

/* Istio's Gateway: an agent serves the Gateways its labels satisfy; per port, virtual hosts
 * from the VirtualServices bound there (a server's hosts narrow them, "ns/" admits only that
 * namespace's), picked as Envoy picks (exact, longest wildcard, "*"), routes in order. */
static void test_gateway_vhosts(void)
{
	static const char *cfg =
	    "---\napiVersion: networking.istio.io/v1\nkind: Gateway\n"
	    "metadata: {name: gw, namespace: t}\nspec:\n  selector: {istio: ingressgateway}\n"
	    "  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n"
	    "    hosts: ['*.example.com', './exact.test', 'other/only.other']\n"
	    "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: ['*']\n"
	    "    tls: {mode: SIMPLE, credentialName: c}\n"
	    "---\napiVersion: networking.istio.io/v1\nkind: Gateway\n"
	    "metadata: {name: elsewhere, namespace: t}\nspec:\n  selector: {istio: other}\n"
	    "  servers:\n  - port: {number: 9000, name: http, protocol: HTTP}\n    hosts: ['*']\n"
	    "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
	    "metadata: {name: star, namespace: t}\nspec:\n  hosts: ['*']\n  gateways: [gw]\n"
	    "  http:\n  - route: [{destination: {host: web, subset: v1}}]\n"
	    "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
	    "metadata: {name: shop, namespace: t}\nspec:\n  hosts: [shop.example.com, only.other]\n"
	    "  gateways: [t/gw, mesh]\n  http:\n"
	    "  - match: [{uri: {prefix: /v2}}]\n    route: [{destination: {host: web, subset: "
	    "v2}}]\n"
	    "  - match: [{uri: {prefix: /m}, gateways: [mesh]}]\n"
	    "    route: [{destination: {host: web, subset: v2}}]\n"
	    "  - match: [{uri: {prefix: /g}, gateways: [gw]}]\n"
	    "    route: [{destination: {host: web, subset: v2}}]\n"
	    "  - route: [{destination: {host: web, subset: v1}}]\n"
	    "---\napiVersion: v1\nkind: Secret\nmetadata: {name: c, namespace: istio-system}\n"
	    "type: kubernetes.io/tls\ndata: {tls.crt: aGVs\n  bG8=, tls.key: eA==}\n"
	    "stringData: {tls.key: not a key}\n";
	struct kv lv[] = {{"istio", "ingressgateway"}, {"app", "istio-ingressgateway"}};
	const struct kvlist labels = {lv, 2};
	struct l7_hdrs h = {};
	struct fixture f;
	const struct l7_gwport *g;
	const struct l7_vhost *vh;

	CHECK(rs_gw_ref("gw", "t", "t", "gw") && rs_gw_ref("t/gw", "x", "t", "gw") &&
		  rs_gw_ref("gw.t.svc.cluster.local", "x", "t", "gw") &&
		  !rs_gw_ref("gw", "x", "t", "gw") && !rs_gw_ref("mesh", "t", "t", "mesh"),
	      "gateway 1");
	{
		char *a = rs_host_intersect("*", "*.Example.com"),
		     *b = rs_host_intersect("a.example.com", "*.example.com"),
		     *c = rs_host_intersect("*.a.example.com", "*.example.com"),
		     *d = rs_host_intersect("example.com", "*.example.com");

		CHECK(a && !strcmp(a, "*.example.com"), "gateway 2");
		CHECK(b && !strcmp(b, "a.example.com"), "gateway 3");
		CHECK(c && !strcmp(c, "*.a.example.com"), "gateway 4");
		CHECK(!d, "gateway 5");
		free(a);
		free(b);
		free(c);
	}
	CHECK(setup_ingress(&f, cfg, &labels), "gateway 6");
	CHECK(f.lt && f.lt->ngwports == 2, "gateway 7"); /* 80, 443; 9000 is not ours */
	g = l7_table_gwport(f.lt, 80);
	CHECK(g && !g->tls && !l7_table_gwport(f.lt, 9000), "gateway 8");
	{ /* HTTPS SIMPLE: terminated here, with the Secret its credentialName names */
		const struct l7_gwport *s = l7_table_gwport(f.lt, 443);

		CHECK(
		    s && s->tls && s->ntls == 1 && !s->tlsv[0].ctx &&
			strstr(s->tlsv[0].err, "Secret istio-system/c: the certificate is not PEM"),
		    "an HTTPS server whose Secret does not load has no certificate, and says why");
		CHECK(
		    f.c->nsecrets == 1 &&
			!strcmp(kv_get(&f.c->secrets[0].data, "tls.crt"), "hello") &&
			!strcmp(kv_get(&f.c->secrets[0].data, "tls.key"), "not a key"),
		    "Secret data is base64-decoded (whitespace ignored), stringData wins over it");
	}
	/* "*" narrowed to the server's hosts; only.other: not in namespace other */
	vh = l7_table_vhost(g, "shop.example.com:80", NULL);
	CHECK(vh && !strcmp(vh->domain, "shop.example.com") && vh->s.vs &&
		  !strcmp(vh->s.vs->name, "shop"),
	      "gateway 9");
	vh = l7_table_vhost(g, "Shop.Example.COM.", NULL);
	CHECK(vh && !strcmp(vh->domain, "shop.example.com"), "gateway 10");
	vh = l7_table_vhost(g, "x.y.example.com", NULL);
	CHECK(vh && !strcmp(vh->domain, "*.example.com") && !strcmp(vh->s.vs->name, "star"),
	      "gateway 11");
	vh = l7_table_vhost(g, "exact.test", NULL);
	CHECK(vh && !strcmp(vh->domain, "exact.test"), "gateway 12");
	CHECK(!l7_table_vhost(g, "example.com", NULL) && !l7_table_vhost(g, "only.other", NULL) &&
		  !l7_table_vhost(g, NULL, NULL),
	      "gateway 13");
	/* routes in order; a match's own gateways hold where they name this Gateway */
	vh = l7_table_vhost(g, "shop.example.com", NULL);
	{
		static const struct {
			const char *path;
			const char *subset;
		} cases[] = {{"/v2/x", "v2"}, {"/m", "v1"}, {"/g", "v2"}, {"/", "v1"}};

		for (size_t i = 0; vh && i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct l7_req_view v = {.method = "GET",
						.path = cases[i].path,
						.authority = "shop.example.com",
						.scheme = "http",
						.h = &h,
						.port = 80};
			int r = l7_route_find(&vh->s, &v);

			CHECK(r >= 0 && vh->s.routes[r].ndests == 1 &&
				  !strcmp(vh->s.routes[r].dests[0].cl->name, cases[i].subset),
			      "gateway 14");
		}
	}
	teardown(&f);
	/* an agent without --ingress serves none */
	CHECK(setup(&f, cfg), "gateway 15");
	CHECK(!f.lt || !f.lt->ngwports, "gateway 16");
	teardown(&f);
}

/* The Gateway API as Istio converts it: an HTTPRoute's matches become routes in the Gateway
 * API's precedence (Exact before a PathPrefix written earlier), PathPrefix a path-segment
 * prefix; a Gateway of another class is not served. */
static void test_gateway_api(void)
{
	static const char *cfg =
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
	    "metadata: {name: edge, namespace: t}\nspec:\n  gatewayClassName: istio\n"
	    "  listeners: [{name: http, port: 8090, protocol: HTTP}]\n"
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
	    "metadata: {name: theirs, namespace: t}\nspec:\n  gatewayClassName: other\n"
	    "  listeners: [{name: http, port: 8091, protocol: HTTP}]\n"
	    "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
	    "metadata: {name: r, namespace: t}\nspec:\n  parentRefs: [{name: edge}]\n"
	    "  hostnames: [shop.test]\n  rules:\n"
	    "  - matches: [{path: {type: PathPrefix, value: /v2/}}]\n"
	    "    backendRefs: [{name: web, port: 80}]\n"
	    "  - matches: [{path: {type: Exact, value: /v2/x}}, {headers: [{name: X-A, value: "
	    "b}]}]\n"
	    "    backendRefs: [{name: web, port: 80, weight: 3}, {name: web, port: 80, weight: "
	    "1}]\n";
	struct kv lv[] = {{"istio", "ingressgateway"}};
	const struct kvlist labels = {lv, 1};
	struct l7_hdrs h = {};
	struct fixture f;
	const struct l7_gwport *g;
	const struct l7_vhost *vh;
	static const struct {
		const char *path, *hdr;
		int ndests; /* of the route taken: 1 (rule 0), 2 (rule 1), 0: none */
	} cases[] = {
	    {"/v2", NULL, 1},  {"/v2/", NULL, 1}, {"/v2/y", NULL, 1}, {"/v2/x", NULL, 2},
	    {"/v2x", NULL, 0}, {"/", "b", 2},	  {"/v2/y", "b", 1}}; /* (a PathPrefix outranks a
									 header-only match) */

	CHECK(setup_ingress(&f, cfg, &labels), "setup");
	CHECK(f.lt && f.lt->ngwports == 1 && (g = l7_table_gwport(f.lt, 8090)),
	      "the istio-class Gateway on its listener's port; the other class's not served");
	vh = g ? l7_table_vhost(g, "shop.test", NULL) : NULL;
	CHECK(vh && vh->s.nroutes == 4, "one route per match, PathPrefix in two (exact, /prefix/)");
	for (size_t i = 0; vh && i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct l7_hdrs hh = {};
		struct l7_req_view v = {.method = "GET",
					.path = cases[i].path,
					.authority = "shop.test",
					.scheme = "http",
					.h = &hh,
					.port = 8090};
		int r;

		if (cases[i].hdr)
			l7h_add(&hh, "x-a", cases[i].hdr);
		r = l7_route_find(&vh->s, &v);
		CHECK(cases[i].ndests ? r >= 0 && vh->s.routes[r].ndests == cases[i].ndests : r < 0,
		      cases[i].path);
		if (r >= 0 && cases[i].ndests == 2)
			CHECK(vh->s.routes[r].dests[0].weight == 75 &&
				  vh->s.routes[r].dests[1].weight == 25,
			      "weights 3:1 as Istio's percentages");
		l7h_free(&hh);
	}
	l7h_free(&h);
	teardown(&f);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	RUN(test_which_ports_take_the_http_path);
	RUN(test_waypoint_label_and_policy);
	RUN(test_match_fields);
	RUN(test_weights_per_request);
	RUN(test_delegate);
	RUN(test_rewrite_and_redirect);
	RUN(test_header_operations);
	RUN(test_retry_policy);
	RUN(test_faults);
	RUN(test_consistent_hash);
	RUN(test_cookie_hash);
	RUN(test_tls_sni);
	RUN(test_normalize_path);
	RUN(test_gateway_vhosts);
	RUN(test_gateway_api);
	{
		char path[128];

		snprintf(path, sizeof(path), "%s/c.yaml", dir);
		unlink(path);
		rmdir(dir);
	}
	return CHECK_DONE("l7");
}
