// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_lb.c: the connect-time decision tested in the kernel. Each case writes real YAML, runs
 * it through the agent's config loader, resolver and map sync into lb_test.bpf.c's maps, then
 * has the kernel draw many picks with bpf_prog_test_run_opts. Distributions are checked
 * against a 5-sigma binomial bound; the weight-to-subset mapping is also checked exactly in
 * deterministic mode (every point of [0, total) once). The route choice (first match wins by
 * port and by the client pod's labels and namespace) is tested both ways too: bm_route_first
 * over a table, and whole connects from two client pods the test enrolls. Needs root (BPF).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "check.h"
#include "model.h"
#include "resolve.h"
#include "sync.h"
#include "lb_test.skel.h"

#define CLIENT_CG  4242 /* a cgroup id we enroll as a mesh pod: t/client */
#define OTHER_CG   4343 /* a cgroup id nobody enrolled: outside the mesh */
#define CLIENTB_CG 4444 /* t/client-b, labels version: b (enrolled by the route tests) */

static struct lb_test_bpf *skel;
static struct sync *sync_;
static struct bm_mapfds fds;
static uint64_t fake_now;
static char tmpdir[] = "/tmp/bpfmesh-test-lb-XXXXXX";

static uint64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

static const char *base_yaml =
    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: t\n  labels:\n"
    "    istio-injection: enabled\n"
    "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: t\n"
    "spec:\n  clusterIP: 10.96.0.10\n  selector:\n    app: web\n  ports:\n"
    "  - name: http\n    port: 80\n    targetPort: 8080\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-a\n  namespace: t\n"
    "  labels: {app: web, version: v1}\nspec:\n  containers: [{name: c}]\n"
    "status:\n  podIP: 10.244.1.2\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-b\n  namespace: t\n"
    "  labels: {app: web, version: v2}\nspec:\n  containers: [{name: c}]\n"
    "status:\n  podIP: 10.244.1.3\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-c\n  namespace: t\n"
    "  labels: {app: web, version: v3}\nspec:\n  containers: [{name: c}]\n"
    "status:\n  podIP: 10.244.1.4\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: client\n  namespace: t\n"
    "  labels: {app: client}\nspec:\n  containers: [{name: c}]\n"
    "status:\n  podIP: 10.244.1.9\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: client-b\n  namespace: t\n"
    "  labels: {app: client, version: b}\nspec:\n  containers: [{name: c}]\n"
    "status:\n  podIP: 10.244.1.10\n";

static uint32_t client_pod, clientb_pod; /* their pod ids (config_index) */

static const char *dr_fmt =
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n"
    "  name: web\n  namespace: t\nspec:\n  host: web\n  trafficPolicy:\n"
    "    loadBalancer:\n%s  subsets:\n"
    "  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n"
    "  - {name: v3, labels: {version: v3}}\n";

/* Apply base + DR(lb) + a VirtualService with the given spec after its hosts (may be ""). */
static int apply_spec(const char *lb, const char *spec, struct sync_result *res)
{
	char path[256], dr[1024], lbl[128];
	struct mesh_config *c = config_new();
	struct diags d = {0};
	struct rs_table t;
	struct sync_result r;
	FILE *f;
	int err;

	snprintf(path, sizeof(path), "%s/cfg.yaml", tmpdir);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	snprintf(lbl, sizeof(lbl), "      %s\n", lb);
	snprintf(dr, sizeof(dr), dr_fmt, lbl);
	fprintf(f, "%s%s", base_yaml, dr);
	if (spec[0])
		fprintf(f,
			"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
			"metadata:\n  name: web\n  namespace: t\nspec:\n  hosts: [web]\n%s",
			spec);
	fclose(f);
	config_load_file(c, path, &d);
	config_index(c);
	resolve(c, &t, &d);
	diags_print(&d, stderr);
	err = d.nerrors ? -EINVAL : sync_apply(sync_, &t, &d, res ? res : &r);
	rs_free(&t);
	diags_free(&d);
	config_free(c);
	return err;
}

/* Apply base + DR(lb) + a VirtualService with one http route of the given route lines. */
static int apply(const char *lb, const char *routes, struct sync_result *res)
{
	char spec[2048] = "";

	if (routes[0])
		snprintf(spec, sizeof(spec), "  http:\n  - route:\n%s", routes);
	return apply_spec(lb, spec, res);
}

/* Backend id of a pod address on port 8080. */
static uint32_t id_of(const char *ip)
{
	for (uint32_t id = 1; id < 64; id++) {
		struct bm_backend be;
		struct in_addr a;

		inet_pton(AF_INET, ip, &a);
		if (bpf_map_lookup_elem(fds.backend, &id, &be) == 0 && (be.flags & BM_BE_F_USED) &&
		    !memcmp(be.addr, &a, 4) && be.port == htons(8080))
			return id;
	}
	return 0;
}

static int run_prog(struct bpf_program *prog)
{
	char pkt[64] = {0};
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = 1);

	return bpf_prog_test_run_opts(bpf_program__fd(prog), &o);
}

static int draw(uint64_t cgroup, uint32_t n)
{
	struct in_addr a;

	memset(skel->bss->hits, 0, sizeof(skel->bss->hits));
	memset(skel->bss->res_count, 0, sizeof(skel->bss->res_count));
	memset(&skel->bss->test_key, 0, sizeof(skel->bss->test_key));
	inet_pton(AF_INET, "10.96.0.10", &a);
	memcpy(skel->bss->test_key.addr, &a, 4);
	skel->bss->test_key.port = htons(80);
	skel->bss->test_key.proto = IPPROTO_TCP;
	skel->bss->test_key.family = BM_FAM_V4;
	skel->bss->test_cgroup = cgroup;
	skel->bss->draws = n;
	return run_prog(skel->progs.lb_draws);
}

/* |k - np| <= 5 sigma; p == 0 must give exactly 0, p == 1 exactly n. */
static bool within(uint64_t k, uint64_t n, double p, const char *what)
{
	double mean = n * p, sd = sqrt(n * p * (1 - p));
	char d[160];

	snprintf(d, sizeof(d), "%llu of %llu, expected %.1f +- %.1f (5 sigma)",
		 (unsigned long long)k, (unsigned long long)n, mean, 5 * sd);
	return check_report(fabs(k - mean) <= 5 * sd, __FILE__, __LINE__, what, d);
}

#define N 60000

static void split3(const char *routes, double pa, double pb, double pc, const char *lb)
{
	uint32_t a, b, c;

	if (!CHECK_OK(apply(lb, routes, NULL), "apply"))
		return;
	a = id_of("10.244.1.2");
	b = id_of("10.244.1.3");
	c = id_of("10.244.1.4");
	if (!CHECK(a && b && c, "backend ids") || !CHECK_OK(draw(CLIENT_CG, N), "test_run"))
		return;
	CHECK_EQ(skel->bss->res_count[BM_X_OK], N, "every draw translated");
	within(skel->bss->hits[a], N, pa, "v1 share");
	within(skel->bss->hits[b], N, pb, "v2 share");
	within(skel->bss->hits[c], N, pc, "v3 share");
}

#define R(s, w) "    - destination: {host: web, subset: " s "}\n      weight: " #w "\n"

static void test_weights_1_3(void)
{
	split3(R("v1", 1) R("v2", 3), 0.25, 0.75, 0, "simple: RANDOM");
}

static void test_weights_90_10(void)
{
	split3(R("v1", 90) R("v2", 10), 0.9, 0.1, 0, "simple: RANDOM");
}

static void test_weights_1_1_1(void)
{
	split3(R("v1", 1) R("v2", 1) R("v3", 1), 1.0 / 3, 1.0 / 3, 1.0 / 3, "simple: RANDOM");
}

static void test_weight_zero_never_picked(void)
{
	split3(R("v1", 100) R("v2", 0), 1, 0, 0, "simple: RANDOM");
	CHECK_EQ(skel->bss->hits[id_of("10.244.1.3")], 0, "weight 0 gets exactly nothing");
}

static void test_weights_not_100(void)
{
	/* Istio's share is weight/sum: 7:13:30 of 50 */
	split3(R("v1", 7) R("v2", 13) R("v3", 30), 0.14, 0.26, 0.6, "simple: RANDOM");
}

static void test_single_destination_gets_all(void)
{
	split3("    - destination: {host: web, subset: v2}\n", 0, 1, 0, "simple: RANDOM");
	CHECK_EQ(skel->bss->hits[id_of("10.244.1.3")], N, "single destination: every draw");
}

static void test_no_virtualservice_spreads(void)
{
	split3("", 1.0 / 3, 1.0 / 3, 1.0 / 3, "simple: RANDOM");
}

static void test_outside_mesh_even_spread(void)
{
	/* a VS that sends everything to v1 does not apply to a client outside the mesh */
	if (!CHECK_OK(apply("simple: ROUND_ROBIN", R("v1", 100) R("v2", 0), NULL), "apply") ||
	    !CHECK_OK(draw(OTHER_CG, N), "test_run"))
		return;
	within(skel->bss->hits[id_of("10.244.1.2")], N, 1.0 / 3, "v1 share");
	within(skel->bss->hits[id_of("10.244.1.3")], N, 1.0 / 3, "v2 share");
	within(skel->bss->hits[id_of("10.244.1.4")], N, 1.0 / 3, "v3 share");
}

static void test_round_robin_exact(void)
{
	if (!CHECK_OK(apply("simple: ROUND_ROBIN", "", NULL), "apply") ||
	    !CHECK_OK(draw(CLIENT_CG, 3000), "test_run"))
		return;
	CHECK_EQ(skel->bss->hits[id_of("10.244.1.2")], 1000, "rr v1");
	CHECK_EQ(skel->bss->hits[id_of("10.244.1.3")], 1000, "rr v2");
	CHECK_EQ(skel->bss->hits[id_of("10.244.1.4")], 1000, "rr v3");
}

static void test_least_request_prefers_idle(void)
{
	/* Three backends, one with 100 active connections. Envoy's P2C makes two uniform
	 * choices and keeps the less busy one, so the busy backend wins only when both choices
	 * are it: probability 1/9. */
	uint32_t busy;
	struct bm_bstate bs = {.active = 100};

	if (!CHECK_OK(apply("simple: LEAST_REQUEST", "    - destination: {host: web}\n", NULL),
		      "apply"))
		return;
	busy = id_of("10.244.1.2");
	bpf_map_update_elem(fds.bstate, &busy, &bs, BPF_ANY);
	if (!CHECK_OK(draw(CLIENT_CG, N), "test_run"))
		return;
	within(skel->bss->hits[busy], N, 1.0 / 9, "busy backend share");
	bs.active = 0;
	bpf_map_update_elem(fds.bstate, &busy, &bs, BPF_ANY);
}

static void test_source_ip_hash_sticks(void)
{
	uint64_t max = 0;

	if (!CHECK_OK(apply("consistentHash: {useSourceIp: true}", "", NULL), "apply") ||
	    !CHECK_OK(draw(CLIENT_CG, 1000), "test_run"))
		return;
	for (int i = 0; i < 64; i++)
		max = skel->bss->hits[i] > max ? skel->bss->hits[i] : max;
	CHECK_EQ(max, 1000, "one client, one backend");
}

static void test_deterministic_mapping(void)
{
	static const uint32_t w[][4] = {{1, 3}, {90, 10}, {1, 1, 1}, {7, 13, 30}, {5}};
	static const int nw[] = {2, 2, 3, 3, 1};

	for (size_t c = 0; c < sizeof(nw) / sizeof(nw[0]); c++) {
		struct bm_route *r = &skel->bss->det_route;

		memset(r, 0, sizeof(*r));
		memset(skel->bss->det_hits, 0, sizeof(skel->bss->det_hits));
		skel->bss->det_bad = 0;
		for (int i = 0; i < nw[c]; i++) {
			r->total += w[c][i];
			r->cum[i] = r->total;
			r->subset[i] = i + 1;
		}
		r->n = nw[c];
		if (!CHECK_OK(run_prog(skel->progs.lb_points), "test_run"))
			return;
		for (int i = 0; i < nw[c]; i++)
			CHECK_EQ(skel->bss->det_hits[i], w[c][i], "points owned = weight");
		CHECK_EQ(skel->bss->det_bad, 0, "no point outside the route");
	}
}

static void test_unknown_service_and_empty_subset(void)
{
	struct in_addr a;

	if (!CHECK_OK(apply("simple: RANDOM", "", NULL), "apply") ||
	    !CHECK_OK(draw(CLIENT_CG, 10), "test_run"))
		return;
	inet_pton(AF_INET, "10.96.0.99", &a);
	memcpy(skel->bss->test_key.addr, &a, 4);
	skel->bss->res_count[0] = 0;
	if (!CHECK_OK(run_prog(skel->progs.lb_draws), "test_run"))
		return;
	CHECK_EQ(skel->bss->res_count[BM_X_MISS], 10, "not a service: left alone");
	/* half the weight to a subset no DestinationRule defines: that share has no endpoints */
	if (!CHECK_OK(apply("simple: RANDOM", R("v1", 50) R("v9", 50), NULL), "apply") ||
	    !CHECK_OK(draw(CLIENT_CG, N), "test_run"))
		return;
	within(skel->bss->res_count[BM_X_NOBACKEND], N, 0.5, "the empty subset's share: refused");
	within(skel->bss->res_count[BM_X_OK], N, 0.5, "the rest: translated");
	CHECK_EQ(skel->bss->hits[id_of("10.244.1.3")] + skel->bss->hits[id_of("10.244.1.4")], 0,
		 "and only to v1");
}

/* The whole decision of xlate.h once, for key (host order port), from cgroup cg. */
static struct bm_decision *decide(const char *addr, int port, int proto, uint64_t cg,
				  uint64_t cookie)
{
	struct in6_addr a6;
	struct in_addr a;

	memset(&skel->bss->test_key, 0, sizeof(skel->bss->test_key));
	memset(&skel->bss->decision, 0xa5, sizeof(skel->bss->decision));
	if (inet_pton(AF_INET, addr, &a) == 1) {
		memcpy(skel->bss->test_key.addr, &a, 4);
		skel->bss->test_key.family = BM_FAM_V4;
	} else {
		inet_pton(AF_INET6, addr, &a6);
		memcpy(skel->bss->test_key.addr, &a6, 16);
		skel->bss->test_key.family = BM_FAM_V6;
	}
	skel->bss->test_key.port = htons(port);
	skel->bss->test_key.proto = proto;
	skel->bss->test_cgroup = cg;
	skel->bss->x_cookie = cookie;
	skel->bss->x_mapped = 0;
	skel->bss->x_sendmsg = 0;
	return run_prog(skel->progs.xlate_once) ? NULL : &skel->bss->decision;
}

static uint64_t stat_of(enum bm_stat st)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t v[ncpu > 0 ? ncpu : 1], sum = 0;
	uint32_t k = st;

	if (ncpu > 0 && bpf_map_lookup_elem(fds.stats, &k, v) == 0)
		for (int i = 0; i < ncpu; i++)
			sum += v[i];
	return sum;
}

static void test_decision_translate_and_record(void)
{
	uint64_t xl = stat_of(BM_ST_XLATE);
	struct bm_decision *d;
	uint64_t cookie = 4711;
	uint32_t a = id_of("10.244.1.2");

	if (!CHECK_OK(apply("simple: RANDOM", R("v1", 100), NULL), "apply"))
		return;
	d = decide("10.96.0.10", 80, IPPROTO_TCP, CLIENT_CG, cookie);
	if (!CHECK(d, "test_run"))
		return;
	CHECK_EQ(d->allow, 1, "goes on");
	CHECK_EQ(d->rewrite, 1, "to the backend");
	CHECK(!memcmp(d->dst.addr, "\x0a\xf4\x01\x02", 4), "v1's pod 10.244.1.2");
	CHECK_EQ(ntohs(d->dst.port), 8080, "its target port");
	CHECK_EQ(d->record, 1, "recorded");
	CHECK_EQ(d->rec.backend_id, a, "the backend id");
	CHECK_EQ(d->rec.cgroup_id, CLIENT_CG, "the client");
	CHECK_EQ(ntohs(d->rec.orig_port), 80, "what was dialed");
	CHECK_EQ(stat_of(BM_ST_XLATE) - xl, 1, "counted as translated");
}

static void test_decision_refusals(void)
{
	uint64_t ap = stat_of(BM_ST_AGENT_PORT), nb = stat_of(BM_ST_NO_BACKEND),
		 miss = stat_of(BM_ST_MISS), v6 = stat_of(BM_ST_V6_REFUSED);
	struct bm_wl_key wk = {.family = BM_FAM_V6};
	struct bm_wl wl = {.flags = BM_WL_F_NOV6};
	struct bm_decision *d;
	struct bm_node node = {.addr4 = {10, 244, 255, 1}};
	__u32 zero = 0;
	struct in6_addr a6;

	if (!CHECK_OK(apply("simple: RANDOM", R("v9", 100), NULL), "apply"))
		return;
	/* this node's agent listeners, dialed directly by a mesh client: EPERM; the same
	 * port numbers elsewhere, and the metrics/health ports anywhere, are ordinary ports */
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_node), &zero, &node, BPF_ANY);
	for (int i = 0; i < 3; i++) {
		static const int ports[] = {15001, 15006, 15008};

		d = decide("10.244.255.1", ports[i], IPPROTO_TCP, CLIENT_CG, 1);
		if (CHECK(d, "test_run"))
			CHECK(!d->allow && d->err == 1, "the node's agent listener: EPERM");
	}
	CHECK_EQ(stat_of(BM_ST_AGENT_PORT) - ap, 3, "counted");
	d = decide("10.244.255.1", 15020, IPPROTO_TCP, CLIENT_CG, 1);
	CHECK(d && d->allow, "the node's metrics port: a scrape goes through");
	d = decide("10.244.255.1", 15008, IPPROTO_TCP, 9999, 1);
	CHECK(d && d->allow, "not a mesh client: the listener's own filter judges it");
	d = decide("10.244.2.7", 15008, IPPROTO_TCP, CLIENT_CG, 1);
	CHECK(d && d->allow, "another address's 15008 (another node, a pod): an ordinary port");
	CHECK_EQ(stat_of(BM_ST_AGENT_PORT) - ap, 3, "none of those counted as refused");
	bpf_map_delete_elem(bpf_map__fd(skel->maps.bm_node), &zero);
	miss = stat_of(BM_ST_MISS); /* the three that went through were no service */
	d = decide("10.96.0.10", 80, IPPROTO_TCP, CLIENT_CG, 2);
	if (CHECK(d, "test_run")) {
		CHECK(!d->allow && d->err == 111, "a route with no endpoints: ECONNREFUSED");
		CHECK_EQ(stat_of(BM_ST_NO_BACKEND) - nb, 1, "counted as no backend");
	}
	d = decide("10.96.0.99", 80, IPPROTO_TCP, CLIENT_CG, 3);
	if (CHECK(d, "test_run")) {
		CHECK(d->allow && !d->rewrite && !d->record, "not a service: left alone");
		CHECK_EQ(stat_of(BM_ST_MISS) - miss, 1, "counted as not a service");
	}
	inet_pton(AF_INET6, "fd00:244:2::5", &a6);
	memcpy(wk.addr, &a6, 16);
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_wl), &wk, &wl, BPF_ANY);
	d = decide("fd00:244:2::5", 8080, IPPROTO_TCP, CLIENT_CG, 4);
	if (CHECK(d, "test_run")) {
		CHECK(!d->allow && d->err == 111, "IPv6 to a remote STRICT workload: refused");
		CHECK_EQ(stat_of(BM_ST_V6_REFUSED) - v6, 1, "counted");
	}
	d = decide("fd00:244:2::5", 8080, IPPROTO_TCP, OTHER_CG, 5);
	CHECK(d && d->allow, "a client outside the mesh is not refused (it is not tunnelled)");
	bpf_map_delete_elem(bpf_map__fd(skel->maps.bm_wl), &wk);
}

/* A backend on another node with mTLS: a mesh client's connect goes to this node's agent. */
static void test_decision_tunnel(void)
{
	struct bm_node node = {.addr4 = {10, 244, 255, 1},
			       .outbound_port = htons(BM_PORT_OUTBOUND),
			       .flags = BM_NODE_F_TUNNEL};
	uint64_t tun = stat_of(BM_ST_TUNNELLED);
	uint32_t a, zero = 0;
	struct bm_backend be;
	struct bm_decision *d;

	if (!CHECK_OK(apply("simple: RANDOM", R("v1", 100), NULL), "apply"))
		return;
	a = id_of("10.244.1.2");
	if (!CHECK_OK(bpf_map_lookup_elem(fds.backend, &a, &be), "backend"))
		return;
	be.flags |= BM_BE_F_TUNNEL;
	bpf_map_update_elem(fds.backend, &a, &be, BPF_ANY);
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_node), &zero, &node, BPF_ANY);
	d = decide("10.96.0.10", 80, IPPROTO_TCP, CLIENT_CG, 6);
	if (CHECK(d, "test_run")) {
		CHECK(d->allow && d->rewrite, "goes on");
		CHECK(!memcmp(d->dst.addr, node.addr4, 4), "to this node's agent");
		CHECK_EQ(ntohs(d->dst.port), BM_PORT_OUTBOUND, "its outbound port");
		CHECK(d->rec.sub_flags & BM_CONN_F_TUNNEL, "recorded as tunnelled");
		CHECK(!(d->rec.sub_flags & BM_SUB_F_OUTLIER), "not scored (the agent accepts all)");
		CHECK_EQ(d->rec.backend_id, a, "for the real backend");
		CHECK_EQ(stat_of(BM_ST_TUNNELLED) - tun, 1, "counted as tunnelled");
	}
	d = decide("10.96.0.10", 80, IPPROTO_TCP, OTHER_CG, 7);
	CHECK(d && memcmp(d->dst.addr, node.addr4, 4) && ntohs(d->dst.port) == 8080,
	      "outside the mesh: straight to a backend (any: the route is for mesh clients)");
	node.flags = 0;
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_node), &zero, &node, BPF_ANY);
	d = decide("10.96.0.10", 80, IPPROTO_TCP, CLIENT_CG, 8);
	CHECK(d && !memcmp(d->dst.addr, "\x0a\xf4\x01\x02", 4),
	      "no agent tunnel on this node: plaintext to the backend");
}

/* IPv6 to a remote mesh workload: to the agent's IPv6 listener when it has one, refused at
 * connect (STRICT) or left alone when it has not. */
static void test_decision_tunnel_v6(void)
{
	struct bm_node node = {.addr4 = {10, 244, 255, 1},
			       .outbound_port = htons(BM_PORT_OUTBOUND),
			       .flags = BM_NODE_F_TUNNEL | BM_NODE_F_TUNNEL6};
	struct bm_wl_key wk = {.family = BM_FAM_V6};
	struct bm_wl wl = {.flags = BM_WL_F_TUNNEL};
	uint64_t tun = stat_of(BM_ST_TUNNELLED), v6 = stat_of(BM_ST_V6_REFUSED),
		 ap = stat_of(BM_ST_AGENT_PORT);
	struct bm_decision *d;
	struct in6_addr a6;
	__u32 zero = 0;

	inet_pton(AF_INET6, "fd00:244:ff::1", &a6);
	memcpy(node.addr6, &a6, 16);
	inet_pton(AF_INET6, "fd00:244:2::5", &a6);
	memcpy(wk.addr, &a6, 16);
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_node), &zero, &node, BPF_ANY);
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_wl), &wk, &wl, BPF_ANY);
	d = decide("fd00:244:2::5", 8080, IPPROTO_TCP, CLIENT_CG, 9);
	if (CHECK(d, "test_run")) {
		CHECK(d->allow && d->rewrite, "goes on");
		CHECK_EQ(d->dst.family, BM_FAM_V6, "as IPv6");
		CHECK(!memcmp(d->dst.addr, node.addr6, 16), "to this node's agent's IPv6 address");
		CHECK_EQ(ntohs(d->dst.port), BM_PORT_OUTBOUND, "its outbound port");
		CHECK(d->rec.sub_flags & BM_CONN_F_TUNNEL, "recorded as tunnelled");
		CHECK(!memcmp(d->rec.orig_addr, &a6, 16), "with the pod's address");
		CHECK_EQ(d->rec.family, BM_FAM_V6, "an IPv6 one");
		CHECK_EQ(stat_of(BM_ST_TUNNELLED) - tun, 1, "counted as tunnelled");
	}
	d = decide("fd00:244:2::5", 8080, IPPROTO_TCP, OTHER_CG, 10);
	CHECK(d && d->allow && !d->rewrite, "outside the mesh: left alone");
	d = decide("fd00:244:ff::1", BM_PORT_OUTBOUND, IPPROTO_TCP, CLIENT_CG, 11);
	CHECK(d && !d->allow && d->err == 1, "the agent's IPv6 listener dialed directly: EPERM");
	CHECK_EQ(stat_of(BM_ST_AGENT_PORT) - ap, 1, "counted");
	/* an agent without an IPv6 address: a STRICT workload's IPv6 is refused (its flags
	 * say so), and nothing goes to an IPv6 listener that is not there */
	node.flags = BM_NODE_F_TUNNEL;
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_node), &zero, &node, BPF_ANY);
	wl.flags = BM_WL_F_NOV6;
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_wl), &wk, &wl, BPF_ANY);
	d = decide("fd00:244:2::5", 8080, IPPROTO_TCP, CLIENT_CG, 12);
	if (CHECK(d, "test_run")) {
		CHECK(!d->allow && d->err == 111, "no IPv6 tunnel: refused");
		CHECK_EQ(stat_of(BM_ST_V6_REFUSED) - v6, 1, "counted");
	}
	wl.flags = BM_WL_F_TUNNEL;
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_wl), &wk, &wl, BPF_ANY);
	d = decide("fd00:244:2::5", 8080, IPPROTO_TCP, CLIENT_CG, 13);
	CHECK(d && d->allow && !d->rewrite, "no IPv6 tunnel, PERMISSIVE: plaintext");
	d = decide("fd00:244:ff::1", BM_PORT_OUTBOUND, IPPROTO_TCP, CLIENT_CG, 14);
	CHECK(d && d->allow, "no IPv6 listener: that address's 15001 is an ordinary port");
	bpf_map_delete_elem(bpf_map__fd(skel->maps.bm_wl), &wk);
	bpf_map_delete_elem(bpf_map__fd(skel->maps.bm_node), &zero);
}

/* The key sockops writes a tunnelled connect's bm_orig entry by: the client socket's address
 * as the agent's accept sees it, whichever family the socket is. */
static void test_orig_key(void)
{
	struct {
		int fam;
		const char *local;
		uint8_t want_fam;
		const char *want;
	} cases[] = {
	    {2, "10.244.1.4", BM_FAM_V4, "10.244.1.4"},
	    {10, "fd00:244:1::4", BM_FAM_V6, "fd00:244:1::4"},
	    {10, "::ffff:10.244.1.4", BM_FAM_V4, "10.244.1.4"}, /* to the IPv4 listener */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t want[16] = {0};
		struct in6_addr a6 = {0};
		struct in_addr a4 = {0};

		if (cases[i].fam == 2)
			inet_pton(AF_INET, cases[i].local, &a4);
		else
			inet_pton(AF_INET6, cases[i].local, &a6);
		if (cases[i].want_fam == BM_FAM_V4)
			inet_pton(AF_INET, cases[i].want, want);
		else
			inet_pton(AF_INET6, cases[i].want, want);
		skel->bss->ok_fam = cases[i].fam;
		skel->bss->ok_a4 = a4.s_addr;
		memcpy(skel->bss->ok_a6, &a6, 16);
		skel->bss->ok_port = 42332;
		if (!CHECK_OK(run_prog(skel->progs.orig_key), "test_run"))
			return;
		CHECK_EQ(skel->bss->ok_key.family, cases[i].want_fam, cases[i].local);
		CHECK(!memcmp(skel->bss->ok_key.addr, want, 16), "the address, zero-padded");
		CHECK_EQ(ntohs(skel->bss->ok_key.port), 42332, "the port, network order");
	}
}

static void test_update_unchanged_and_quarantine(void)
{
	struct sync_result res;
	struct bm_svc_key key = {.port = htons(80), .proto = IPPROTO_TCP, .family = BM_FAM_V4};
	struct bm_svc v1, v2;
	struct bm_route rt;
	struct in_addr a;

	inet_pton(AF_INET, "10.96.0.10", &a);
	memcpy(key.addr, &a, 4);
	fake_now = 1000;
	if (!CHECK_OK(apply("simple: RANDOM", R("v1", 50) R("v2", 50), &res), "apply"))
		return;
	sync_tick(sync_);
	fake_now += 1000;
	CHECK_OK(apply("simple: RANDOM", R("v1", 50) R("v2", 50), &res), "same again");
	CHECK_EQ(res.services_written, 0, "unchanged config rewrites nothing");
	CHECK_EQ(res.services_unchanged, 1, "counted as unchanged");
	bpf_map_lookup_elem(fds.svc, &key, &v1);
	CHECK_OK(apply("simple: RANDOM", R("v1", 10) R("v2", 90), &res), "weight change");
	CHECK_EQ(res.services_written, 1, "one service rewritten");
	bpf_map_lookup_elem(fds.svc, &key, &v2);
	CHECK(v1.route_id != v2.route_id, "a weight change uses a fresh route id");
	fake_now += BM_ID_QUARANTINE_MS - 1;
	sync_tick(sync_);
	CHECK_OK(bpf_map_lookup_elem(fds.route, &v1.route_id, &rt), "old route kept in quarantine");
	fake_now += 2;
	sync_tick(sync_);
	CHECK(bpf_map_lookup_elem(fds.route, &v1.route_id, &rt) != 0, "old route freed after it");
	CHECK_OK(bpf_map_lookup_elem(fds.route, &v2.route_id, &rt), "new route in force");
	CHECK_EQ(rt.cum[0], 10, "new weights: v1 10");
	CHECK_EQ(rt.cum[1], 100, "new weights: v2 90");
}

static void test_recover_from_maps(void)
{
	struct sync *s2;
	struct sync_result res;

	if (!CHECK_OK(apply("simple: RANDOM", R("v1", 1) R("v2", 3), NULL), "apply"))
		return;
	/* a restarted agent: fresh allocator state read back from the maps */
	s2 = sync_new(&fds, &(struct sync_clock){.now_ms = fake_clock});
	CHECK_EQ(sync_recover(s2), 1, "one service recovered");
	sync_free(sync_);
	sync_ = s2;
	CHECK_OK(apply("simple: RANDOM", R("v1", 1) R("v2", 3), &res), "apply after recover");
	CHECK_EQ(res.backends, 3, "backends deduplicated with recovered ids");
	split3(R("v1", 1) R("v2", 3), 0.25, 0.75, 0, "simple: RANDOM");
}

/* A table of n services with one backend each, built directly (no YAML: the point is size). */
static void synth_table(struct rs_table *t, int n)
{
	static struct svc_obj so = {.name = "synth", .ns = "t"};

	memset(t, 0, sizeof(*t));
	t->services = calloc(n, sizeof(*t->services));
	t->subsets = calloc(n, sizeof(*t->subsets));
	t->backends = calloc(1, sizeof(*t->backends));
	t->nservices = t->nsubsets = n;
	t->nbackends = 1;
	t->backends[0] =
	    (struct rs_backend){.addr = {10, 244, 9, 9}, .family = BM_FAM_V4, .port = 80};
	for (int i = 0; i < n; i++) {
		struct rs_service *rs = &t->services[i];

		t->subsets[i].name = strdup("(all)");
		t->subsets[i].backends = calloc(1, sizeof(int));
		t->subsets[i].n = 1;
		rs->svc = &so;
		rs->fqdn = strdup("synth.t.svc.cluster.local");
		rs->addr[0] = 10;
		rs->addr[1] = 100 + (i >> 16);
		rs->addr[2] = (i >> 8) & 0xff;
		rs->addr[3] = i & 0xff;
		rs->family = BM_FAM_V4;
		rs->port = 80;
		rs->proto = IPPROTO_TCP;
		rs->svc_id = i + 1;
		rs->all_subset = i;
	}
}

static void test_full_map_keeps_old_config(void)
{
	struct diags d = {0};
	struct sync_result res;
	struct rs_table t;
	char buf[4096] = "";
	FILE *f;
	int err;

	if (!CHECK_OK(apply("simple: RANDOM", R("v1", 100) R("v2", 0), NULL), "apply a config"))
		return;
	synth_table(&t, BM_MAX_SERVICES + 1);
	err = sync_apply(sync_, &t, &d, &res);
	CHECK_EQ(err, -ENOSPC, "one service too many is refused");
	CHECK_EQ(res.services_written, 0, "nothing written");
	f = fmemopen(buf, sizeof(buf) - 1, "w");
	diags_print(&d, f);
	fclose(f);
	CHECK_CONTAINS(buf, "bm_svc: map full", "the error names the map");
	CHECK_CONTAINS(buf, "config in force is unchanged", "and says nothing changed");
	diags_free(&d);
	rs_free(&t);
	/* the old config still decides */
	if (CHECK_OK(draw(CLIENT_CG, 1000), "test_run"))
		CHECK_EQ(skel->bss->hits[id_of("10.244.1.2")], 1000, "old route still in force");
}

/* the "all" subset of the web service, as the kernel holds it */
static uint32_t all_subset_id(void)
{
	struct bm_svc_key key = {.port = htons(80), .proto = IPPROTO_TCP, .family = BM_FAM_V4};
	struct bm_svc v = {};
	struct in_addr a;

	inet_pton(AF_INET, "10.96.0.10", &a);
	memcpy(key.addr, &a, 4);
	bpf_map_lookup_elem(fds.svc, &key, &v);
	return v.all_subset;
}

static void set_ejected(const char *ip, int ejected)
{
	struct bm_health h = {.od = {.ejected = ejected}};
	uint32_t id = id_of(ip);

	bpf_map_update_elem(fds.health, &id, &h, BPF_ANY);
}

#define OUTLIER(extra) "simple: RANDOM\n    outlierDetection: {consecutive5xxErrors: 1" extra "}"

static void test_ejected_backend_never_picked(void)
{
	if (!CHECK_OK(apply(OUTLIER(""), "", NULL), "apply"))
		return;
	set_ejected("10.244.1.3", 1);
	if (!CHECK_OK(draw(CLIENT_CG, 3000), "test_run"))
		return;
	CHECK_EQ(skel->bss->hits[id_of("10.244.1.3")], 0, "ejected host: no new connections");
	CHECK_EQ(skel->bss->res_count[BM_X_OK], 3000, "the others take them all");
	/* outside the mesh there is no outlier detection (kube-proxy semantics) */
	if (CHECK_OK(draw(OTHER_CG, 3000), "test_run"))
		within(skel->bss->hits[id_of("10.244.1.3")], 3000, 1.0 / 3,
		       "non-mesh still reaches it");
	set_ejected("10.244.1.3", 0);
}

static void test_all_ejected_no_panic_then_panic(void)
{
	if (!CHECK_OK(apply(OUTLIER(""), "", NULL), "apply"))
		return;
	set_ejected("10.244.1.2", 1);
	set_ejected("10.244.1.3", 1);
	set_ejected("10.244.1.4", 1);
	if (CHECK_OK(draw(CLIENT_CG, 100), "test_run"))
		CHECK_EQ(skel->bss->res_count[BM_X_NOBACKEND], 100, "no healthy upstream");
	/* minHealthPercent 50: below it Envoy balances over all hosts anyway (panic) */
	if (!CHECK_OK(apply(OUTLIER(", minHealthPercent: 50"), "", NULL), "apply panic"))
		return;
	set_ejected("10.244.1.2", 1);
	set_ejected("10.244.1.3", 1);
	set_ejected("10.244.1.4", 1);
	if (CHECK_OK(draw(CLIENT_CG, 100), "test_run"))
		CHECK_EQ(skel->bss->res_count[BM_X_OK], 100, "panic: traffic flows");
	set_ejected("10.244.1.2", 0);
	set_ejected("10.244.1.3", 0);
	set_ejected("10.244.1.4", 0);
}

static void test_connection_pool_limit(void)
{
	struct bm_cpool_key k = {.cgroup_id = CLIENT_CG};
	struct bm_policy pol;
	uint32_t sid;
	__s32 n;

	if (!CHECK_OK(
		apply("simple: RANDOM\n    connectionPool: {tcp: {maxConnections: 2}}", "", NULL),
		"apply"))
		return;
	sid = all_subset_id();
	if (!CHECK_OK(bpf_map_lookup_elem(fds.policy, &sid, &pol), "policy written"))
		return;
	CHECK_EQ(pol.max_conns, 2, "maxConnections");
	k.pool_key = pol.pool_key;
	n = 1;
	bpf_map_update_elem(fds.cpool, &k, &n, BPF_ANY);
	if (CHECK_OK(draw(CLIENT_CG, 10), "test_run"))
		CHECK_EQ(skel->bss->res_count[BM_X_OK], 10, "below the limit: allowed");
	n = 2;
	bpf_map_update_elem(fds.cpool, &k, &n, BPF_ANY);
	if (CHECK_OK(draw(CLIENT_CG, 10), "test_run"))
		CHECK_EQ(skel->bss->res_count[BM_X_OVERFLOW], 10, "at the limit: refused");
	if (CHECK_OK(draw(OTHER_CG, 10), "test_run"))
		CHECK_EQ(skel->bss->res_count[BM_X_OK], 10, "another client has its own count");
	bpf_map_delete_elem(fds.cpool, &k);
}

static void test_capacity_65536_services(void)
{
	struct diags d = {0};
	struct sync_result res;
	struct rs_table t;

	synth_table(&t, BM_MAX_SERVICES);
	CHECK_EQ(BM_MAX_SERVICES >= 65536, 1, "at least 65,536 services");
	CHECK_OK(sync_apply(sync_, &t, &d, &res), "a full service map applies");
	CHECK_EQ(res.services_written, BM_MAX_SERVICES, "every service written");
	diags_print(&d, stderr);
	diags_free(&d);
	rs_free(&t);
	fake_now += 10 * BM_ID_QUARANTINE_MS;
	CHECK_OK(apply("simple: RANDOM", "", NULL), "back to a small config");
	fake_now += 10 * BM_ID_QUARANTINE_MS;
	sync_tick(sync_);
}

/* ---------- the route a client takes: first match wins ---------- */

/* bm_route_first over a table: the lowest route whose bit is set in any_src or the pod's. */
static void test_route_first_table(void)
{
	static const struct {
		__u32 n, any, pod;
		int want;
		const char *what;
	} c[] = {
	    {1, 0x1, 0x0, 0, "one route for everyone"},
	    {3, 0x4, 0x0, 2, "no source match: the catch-all at the end"},
	    {3, 0x4, 0x2, 1, "the pod's route comes before the catch-all"},
	    {3, 0x4, 0x3, 0, "two hold: the first wins"},
	    {2, 0x0, 0x0, -1, "none holds: -1 (every endpoint)"},
	    {2, 0x0, 0x4, -1, "a bit past n is no route"},
	    {3, 0x0, 0x6, 1, "first of the pod's"},
	    {BM_MAX_SVC_ROUTES, 0, 1U << (BM_MAX_SVC_ROUTES - 1), BM_MAX_SVC_ROUTES - 1,
	     "the last route a list holds"},
	    {0, 0x1, 0x1, -1, "an empty list"},
	};
	int n = sizeof(c) / sizeof(c[0]);

	memset(skel->bss->rc_list, 0, sizeof(skel->bss->rc_list));
	for (int i = 0; i < n; i++) {
		skel->bss->rc_list[i].n = c[i].n;
		skel->bss->rc_list[i].any_src = c[i].any;
		skel->bss->rc_bits[i] = c[i].pod;
		skel->bss->rc_got[i] = -7;
	}
	skel->bss->rc_n = n;
	if (!CHECK_OK(run_prog(skel->progs.route_cases), "test_run"))
		return;
	for (int i = 0; i < n; i++)
		CHECK_EQ(skel->bss->rc_got[i], c[i].want, c[i].what);
}

/* The kernel's view of the web service entry. */
static struct bm_svc svc_entry(void)
{
	struct bm_svc_key key = {.port = htons(80), .proto = IPPROTO_TCP, .family = BM_FAM_V4};
	struct bm_svc v = {};
	struct in_addr a;

	inet_pton(AF_INET, "10.96.0.10", &a);
	memcpy(key.addr, &a, 4);
	bpf_map_lookup_elem(fds.svc, &key, &v);
	return v;
}

static uint32_t rpod_of(uint32_t rlist, uint32_t pod)
{
	struct bm_rpod_key k = {.rlist_id = rlist, .pod_id = pod};
	uint32_t bits = 0;

	return bpf_map_lookup_elem(fds.rpod, &k, &bits) ? 0xdead : bits;
}

static int count_rpod(uint32_t rlist)
{
	struct bm_rpod_key k, next, *prev = NULL;
	int n = 0;

	while (bpf_map_get_next_key(fds.rpod, prev, &next) == 0) {
		k = next;
		prev = &k;
		n += k.rlist_id == rlist;
	}
	return n;
}

#define SRC_ROUTES                                                                                 \
	"  http:\n"                                                                                \
	"  - match: [{sourceLabels: {version: b}}]\n"                                              \
	"    route: [{destination: {host: web, subset: v2}}]\n"                                    \
	"  - route: [{destination: {host: web, subset: v1}}]\n"

/* sourceLabels: two client pods, two subsets; clients outside the mesh get no route. */
static void test_source_labels_route(void)
{
	uint32_t a, b;
	struct bm_svc v;

	if (!CHECK_OK(apply_spec("simple: RANDOM", SRC_ROUTES, NULL), "apply"))
		return;
	v = svc_entry();
	CHECK(v.flags & BM_SVC_F_RLIST, "the route depends on the client: a route list");
	CHECK(!(v.flags & BM_SVC_F_HAS_ROUTE), "and no single route");
	CHECK_EQ(rpod_of(v.rlist_id, clientb_pod), 0x1, "client-b: route 0 holds");
	CHECK_EQ(rpod_of(v.rlist_id, client_pod), 0xdead, "client: no entry (only the catch-all)");
	CHECK_EQ(count_rpod(v.rlist_id), 1, "one entry: the local pods' only");
	a = id_of("10.244.1.2");
	b = id_of("10.244.1.3");
	if (CHECK_OK(draw(CLIENTB_CG, 3000), "test_run")) {
		CHECK_EQ(skel->bss->res_count[BM_X_OK], 3000, "every draw translated");
		CHECK_EQ(skel->bss->hits[b], 3000, "client-b (version b): all to v2");
	}
	if (CHECK_OK(draw(CLIENT_CG, 3000), "test_run"))
		CHECK_EQ(skel->bss->hits[a], 3000, "client: all to v1 (the catch-all)");
	if (CHECK_OK(draw(OTHER_CG, N), "test_run"))
		within(skel->bss->hits[b], N, 1.0 / 3, "outside the mesh: every endpoint");
}

/* Two routes hold for client-b: the first in the VirtualService wins, as in Istio. */
static void test_first_match_wins(void)
{
	if (!CHECK_OK(apply_spec("simple: RANDOM",
				 "  http:\n"
				 "  - match: [{sourceLabels: {app: client}, port: 80}]\n"
				 "    route: [{destination: {host: web, subset: v3}}]\n"
				 "  - match: [{sourceLabels: {version: b}}]\n"
				 "    route: [{destination: {host: web, subset: v2}}]\n"
				 "  - route: [{destination: {host: web, subset: v1}}]\n",
				 NULL),
		      "apply"))
		return;
	CHECK_EQ(rpod_of(svc_entry().rlist_id, clientb_pod), 0x3, "both routes hold for client-b");
	if (CHECK_OK(draw(CLIENTB_CG, 3000), "test_run"))
		CHECK_EQ(skel->bss->hits[id_of("10.244.1.4")], 3000, "client-b: the first, v3");
	if (CHECK_OK(draw(CLIENT_CG, 3000), "test_run"))
		CHECK_EQ(skel->bss->hits[id_of("10.244.1.4")], 3000, "client too (app: client)");
}

/* match port: decided per service entry, so one route for every client, no list. */
static void test_port_match(void)
{
	struct bm_svc v;

	if (!CHECK_OK(apply_spec("simple: RANDOM",
				 "  http:\n"
				 "  - match: [{port: 81}]\n"
				 "    route: [{destination: {host: web, subset: v2}}]\n"
				 "  - match: [{port: 80}]\n"
				 "    route: [{destination: {host: web, subset: v3}}]\n",
				 NULL),
		      "apply"))
		return;
	v = svc_entry();
	CHECK(v.flags & BM_SVC_F_HAS_ROUTE, "port 80: one route for every client");
	CHECK(!(v.flags & BM_SVC_F_RLIST), "no list");
	if (CHECK_OK(draw(CLIENT_CG, 1000), "test_run"))
		CHECK_EQ(skel->bss->hits[id_of("10.244.1.4")], 1000, "spec.http[1]: v3");
}

/* No route holds for a client: every endpoint (Istio's default route), counted. */
static void test_no_route_matches(void)
{
	uint64_t nr = stat_of(BM_ST_NO_ROUTE_MATCH);

	if (!CHECK_OK(apply_spec("simple: RANDOM",
				 "  tcp:\n"
				 "  - match: [{sourceLabels: {version: b}}]\n"
				 "    route: [{destination: {host: web, subset: v2}}]\n",
				 NULL),
		      "apply"))
		return;
	if (CHECK_OK(draw(CLIENT_CG, N), "test_run")) {
		CHECK_EQ(skel->bss->res_count[BM_X_OK], N, "translated");
		within(skel->bss->hits[id_of("10.244.1.2")], N, 1.0 / 3, "v1 share of all");
		within(skel->bss->hits[id_of("10.244.1.4")], N, 1.0 / 3, "v3 share of all");
		CHECK_EQ(stat_of(BM_ST_NO_ROUTE_MATCH) - nr, N, "counted: no route matched");
	}
	if (CHECK_OK(draw(CLIENTB_CG, 1000), "test_run"))
		CHECK_EQ(skel->bss->hits[id_of("10.244.1.3")], 1000, "client-b: v2");
}

/* A change writes a fresh list and bits; the old ones stay for the quarantine, then go. */
static void test_route_list_update_and_quarantine(void)
{
	struct bm_svc v1, v2;
	struct bm_rlist rl;

	fake_now += 10 * BM_ID_QUARANTINE_MS;
	sync_tick(sync_);
	if (!CHECK_OK(apply_spec("simple: RANDOM", SRC_ROUTES, NULL), "apply"))
		return;
	v1 = svc_entry();
	if (!CHECK_OK(apply_spec("simple: ROUND_ROBIN", SRC_ROUTES, NULL), "apply a change"))
		return;
	v2 = svc_entry();
	CHECK(v2.flags & BM_SVC_F_RLIST, "still a list");
	CHECK(v1.rlist_id != v2.rlist_id, "under a fresh id");
	CHECK_EQ(rpod_of(v2.rlist_id, clientb_pod), 0x1, "its bits written before the flip");
	CHECK_OK(bpf_map_lookup_elem(fds.rlist, &v1.rlist_id, &rl), "the old list in quarantine");
	CHECK_EQ(rpod_of(v1.rlist_id, clientb_pod), 0x1, "and its bits");
	fake_now += BM_ID_QUARANTINE_MS + 1;
	sync_tick(sync_);
	CHECK(bpf_map_lookup_elem(fds.rlist, &v1.rlist_id, &rl) != 0, "old list freed after it");
	CHECK_EQ(count_rpod(v1.rlist_id), 0, "and its bits");
	if (!CHECK_OK(apply("simple: RANDOM", R("v1", 100), NULL), "back to one route"))
		return;
	fake_now += BM_ID_QUARANTINE_MS + 1;
	sync_tick(sync_);
	CHECK(bpf_map_lookup_elem(fds.rlist, &v2.rlist_id, &rl) != 0, "no list left");
	CHECK_EQ(count_rpod(v2.rlist_id), 0, "no bits left");
}

/* A pod that becomes local after the list was written gets its bits then; one that leaves
 * loses them. */
static void test_pod_becomes_local(void)
{
	struct sync_pod one[] = {
	    {.cgroup_id = CLIENT_CG,
	     .pod = {.flags = BM_POD_F_IN_MESH, .pod_id = 0, .addr4 = {10, 244, 1, 9}}}};
	struct sync_pod both[] = {
	    one[0],
	    {.cgroup_id = CLIENTB_CG,
	     .pod = {.flags = BM_POD_F_IN_MESH, .pod_id = 0, .addr4 = {10, 244, 1, 10}}}};
	uint32_t rid;

	one[0].pod.pod_id = both[0].pod.pod_id = client_pod;
	both[1].pod.pod_id = clientb_pod;
	CHECK_OK(sync_set_pods(sync_, one, 1), "client-b not local");
	if (!CHECK_OK(apply_spec("simple: RANDOM", SRC_ROUTES, NULL), "apply"))
		goto out;
	rid = svc_entry().rlist_id;
	CHECK_EQ(count_rpod(rid), 0, "no local pod with bits");
	CHECK_OK(sync_set_pods(sync_, both, 2), "client-b arrives");
	CHECK_EQ(rpod_of(rid, clientb_pod), 0x1, "its bits, for the list in force");
	if (CHECK_OK(draw(CLIENTB_CG, 1000), "test_run"))
		CHECK_EQ(skel->bss->hits[id_of("10.244.1.3")], 1000, "and its route: v2");
	CHECK_OK(sync_set_pods(sync_, one, 1), "client-b leaves");
	CHECK_EQ(count_rpod(rid), 0, "its bits go");
out:
	sync_set_pods(sync_, both, 2);
}

/* A restarted agent reads the list back and releases it (bits by a scan) when it changes. */
static void test_recover_route_list(void)
{
	struct sync *s2;
	struct sync_result res;
	struct bm_svc v1, v2;
	struct sync_pod both[] = {
	    {.cgroup_id = CLIENT_CG, .pod = {.flags = BM_POD_F_IN_MESH, .addr4 = {10, 244, 1, 9}}},
	    {.cgroup_id = CLIENTB_CG,
	     .pod = {.flags = BM_POD_F_IN_MESH, .addr4 = {10, 244, 1, 10}}}};

	both[0].pod.pod_id = client_pod;
	both[1].pod.pod_id = clientb_pod;
	if (!CHECK_OK(apply_spec("simple: RANDOM", SRC_ROUTES, NULL), "apply"))
		return;
	v1 = svc_entry();
	s2 = sync_new(&fds, &(struct sync_clock){.now_ms = fake_clock});
	CHECK_EQ(sync_recover(s2), 1, "one service recovered");
	sync_free(sync_);
	sync_ = s2;
	sync_set_pods(sync_, both, 2);
	CHECK_OK(apply_spec("simple: RANDOM", SRC_ROUTES, &res), "apply after recover");
	CHECK_EQ(res.services_written, 1, "rewritten once (its content was unknown)");
	v2 = svc_entry();
	CHECK(v2.rlist_id != v1.rlist_id, "a fresh list");
	fake_now += BM_ID_QUARANTINE_MS + 1;
	sync_tick(sync_);
	CHECK_EQ(count_rpod(v1.rlist_id), 0, "the recovered list's bits found and deleted");
	CHECK_EQ(rpod_of(v2.rlist_id, clientb_pod), 0x1, "the new one's in force");
	if (CHECK_OK(draw(CLIENTB_CG, 1000), "test_run"))
		CHECK_EQ(skel->bss->hits[id_of("10.244.1.3")], 1000, "client-b: v2");
}

/* The pod ids config_index gives the two clients (what the agent puts in bm_pod). */
static int client_pod_ids(void)
{
	struct mesh_config *c = config_new();
	struct diags d = {0};
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/base.yaml", tmpdir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(base_yaml, f);
	fclose(f);
	config_load_file(c, path, &d);
	config_index(c);
	for (int i = 0; i < c->nworkloads; i++) {
		if (!strcmp(c->workloads[i].name, "client"))
			client_pod = c->workloads[i].pod_id;
		if (!strcmp(c->workloads[i].name, "client-b"))
			clientb_pod = c->workloads[i].pod_id;
	}
	diags_free(&d);
	config_free(c);
	unlink(path);
	return client_pod && clientb_pod ? 0 : -1;
}

int main(void)
{
	struct sync_pod pods[] = {
	    {.cgroup_id = CLIENT_CG, .pod = {.flags = BM_POD_F_IN_MESH, .addr4 = {10, 244, 1, 9}}},
	    {.cgroup_id = CLIENTB_CG,
	     .pod = {.flags = BM_POD_F_IN_MESH, .addr4 = {10, 244, 1, 10}}}};
	int rc;

	if (geteuid() != 0)
		return CHECK_SKIP_ALL("lb", "needs root for BPF");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	skel = lb_test_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "lb_test: cannot load the test program (root and BPF needed)\n");
		rmdir(tmpdir);
		printf("lb: 0 passed, 1 failed\n");
		return 1;
	}
	/* every map the sync may write, from this object's own (unpinned) copies */
#define MAP_FD(field, name) fds.field = bpf_map__fd(skel->maps.name);
#define NO_FD(name)
	BM_MAPS(MAP_FD, NO_FD)
#undef MAP_FD
#undef NO_FD
	sync_ = sync_new(&fds, &(struct sync_clock){.now_ms = fake_clock});
	if (client_pod_ids()) {
		fprintf(stderr, "lb_test: no pod ids for the clients\n");
		return 1;
	}
	pods[0].pod.pod_id = client_pod;
	pods[1].pod.pod_id = clientb_pod;
	sync_set_pods(sync_, pods, 2);

	RUN(test_deterministic_mapping);
	RUN(test_weights_1_3);
	RUN(test_weights_90_10);
	RUN(test_weights_1_1_1);
	RUN(test_weights_not_100);
	RUN(test_weight_zero_never_picked);
	RUN(test_single_destination_gets_all);
	RUN(test_no_virtualservice_spreads);
	RUN(test_outside_mesh_even_spread);
	RUN(test_round_robin_exact);
	RUN(test_least_request_prefers_idle);
	RUN(test_source_ip_hash_sticks);
	RUN(test_unknown_service_and_empty_subset);
	RUN(test_decision_translate_and_record);
	RUN(test_decision_refusals);
	RUN(test_decision_tunnel);
	RUN(test_decision_tunnel_v6);
	RUN(test_orig_key);
	RUN(test_update_unchanged_and_quarantine);
	RUN(test_recover_from_maps);
	RUN(test_ejected_backend_never_picked);
	RUN(test_all_ejected_no_panic_then_panic);
	RUN(test_connection_pool_limit);
	RUN(test_route_first_table);
	RUN(test_source_labels_route);
	RUN(test_first_match_wins);
	RUN(test_port_match);
	RUN(test_no_route_matches);
	RUN(test_route_list_update_and_quarantine);
	RUN(test_pod_becomes_local);
	RUN(test_recover_route_list);
	RUN(test_full_map_keeps_old_config);
	RUN(test_capacity_65536_services);

	rc = CHECK_DONE("lb");
	sync_free(sync_);
	lb_test_bpf__destroy(skel);
	char path[300];
	snprintf(path, sizeof(path), "%s/cfg.yaml", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return rc;
}
