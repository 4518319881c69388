// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_resolve.c: unit tests of user/lib/resolve.c, config -> service table: endpoints by selector,
 * named target ports, subsets by labels, weights (0 dropped, single destination), per-port
 * route choice, DestinationRule/subset load-balancer precedence, VIP allocation, errors; the
 * kernel's route lists (first match wins by port, destinationSubnets, sourceLabels,
 * sourceNamespace) and the per-pod bits they are decided by.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "check.h"
#include "model.h"
#include "resolve.h"

static char dir[] = "/tmp/bpfmesh-test-resolve-XXXXXX";

static const char *base =
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns, labels: {istio-injection: enabled}}\n"
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: ns}\n"
    "spec:\n  clusterIP: 10.96.1.1\n  selector: {app: api}\n  ports:\n"
    "  - {name: http, port: 80, targetPort: web}\n  - {name: tcp-db, port: 5432}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a1, namespace: ns, labels: {app: api, "
    "version: v1}}\nspec:\n  containers: [{name: c, ports: [{name: web, containerPort: 8081}]}]\n"
    "status: {podIP: 10.244.0.2}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a2, namespace: ns, labels: {app: api, "
    "version: v2}}\nspec:\n  containers: [{name: c, ports: [{name: web, containerPort: 8082}]}]\n"
    "status: {podIPs: [{ip: 10.244.0.3}, {ip: 'fd00::3'}]}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: other, namespace: ns2, labels: {app: api}}\n"
    "spec:\n  containers: [{name: c}]\nstatus: {podIP: 10.244.0.9}\n";

static int load(const char *extra, struct mesh_config **c, struct rs_table *t, struct diags *d)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/c.yaml", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "%s%s", base, extra);
	fclose(f);
	memset(d, 0, sizeof(*d));
	*c = config_new();
	config_load_file(*c, path, d);
	config_index(*c); /* pod ids, as config_load_dir gives them */
	return resolve(*c, t, d);
}

/* Findings without an analyzer code: resolve's own, not the per-port notes (rs_path_notes). */
static int uncoded(const struct diags *d, const char *code, int *coded)
{
	int n = 0;

	*coded = 0;
	for (int i = 0; i < d->n; i++) {
		if (!d->v[i].code)
			n++;
		else if (!strcmp(d->v[i].code, code))
			(*coded)++;
	}
	return n;
}

static const struct rs_service *svc(const struct rs_table *t, const char *ip, int port)
{
	uint8_t a[16], fam;

	rs_parse_addr(ip, a, &fam);
	for (int i = 0; i < t->nservices; i++)
		if (t->services[i].family == fam && !memcmp(t->services[i].addr, a, 16) &&
		    t->services[i].port == port)
			return &t->services[i];
	return NULL;
}

/* The one route every mesh client of s takes, or NULL when s has none or a list. */
static const struct rs_kroute *one_route(const struct rs_service *s)
{
	return s && s->nkroutes == 1 && s->kroutes[0].any_src ? &s->kroutes[0] : NULL;
}

static void done(struct mesh_config *c, struct rs_table *t, struct diags *d)
{
	rs_free(t);
	diags_free(d);
	config_free(c);
}

static void test_endpoints_and_named_target_port(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	const struct rs_service *s;
	const struct rs_subset *all;

	CHECK_EQ(load("", &c, &t, &d), 0, "no errors");
	s = svc(&t, "10.96.1.1", 80);
	if (!CHECK(s, "service port 80"))
		goto out;
	all = &t.subsets[s->all_subset];
	CHECK_EQ(all->n, 2, "two endpoints (other namespace excluded)");
	CHECK_EQ(t.backends[all->backends[0]].port, 8081, "named targetPort on a1");
	CHECK_EQ(t.backends[all->backends[1]].port, 8082, "named targetPort on a2");
	CHECK(!s->nkroutes, "no VirtualService: no route");
	CHECK_EQ(all->lb, BM_LB_LEAST_REQUEST, "Istio default LB");
	s = svc(&t, "10.96.1.1", 5432);
	CHECK(s && t.subsets[s->all_subset].n == 2, "second port");
	CHECK(s && t.backends[t.subsets[s->all_subset].backends[0]].port == 5432,
	      "targetPort defaults to port");
out:
	done(c, &t, &d);
}

static void test_weights_subsets_and_lb(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	const struct rs_service *s;
	const struct rs_kroute *k;
	const char *extra =
	    "---\napiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\n"
	    "metadata: {name: api, namespace: ns}\nspec:\n  host: api.ns.svc.cluster.local\n"
	    "  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n  subsets:\n"
	    "  - {name: v1, labels: {version: v1}}\n"
	    "  - name: v2\n    labels: {version: v2}\n"
	    "    trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
	    "---\napiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\n"
	    "metadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  http:\n"
	    "  - match: [{headers: {x-canary: {exact: 'yes'}}}]\n"
	    "    route: [{destination: {host: api, subset: v2}}]\n"
	    "  - route:\n    - {destination: {host: api, subset: v1}, weight: 30}\n"
	    "    - {destination: {host: api, subset: v2}, weight: 0}\n"
	    "    - {destination: {host: api}, weight: 70}\n";

	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	s = svc(&t, "10.96.1.1", 80);
	if (!CHECK(k = one_route(s), "route in force"))
		goto out;
	CHECK_EQ(k->ndests, 2, "weight 0 dropped; the header match route skipped");
	CHECK_EQ(k->route, 1, "spec.http[1]");
	CHECK_EQ(k->dests[0].weight, 30, "v1 weight");
	CHECK_EQ(t.subsets[k->dests[0].subset].n, 1, "v1 has one pod");
	CHECK_EQ(t.subsets[k->dests[0].subset].lb, BM_LB_ROUND_ROBIN, "rule-level LB");
	CHECK_EQ(k->dests[1].weight, 70, "no-subset destination weight");
	CHECK_EQ(t.subsets[k->dests[1].subset].n, 2, "no subset: all endpoints");
out:
	done(c, &t, &d);
}

static void test_single_destination_any_weight(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	const struct rs_service *s;
	const struct rs_kroute *k;
	const char *extra =
	    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
	    "metadata: {name: api, namespace: ns}\nspec:\n  host: api\n  subsets:\n"
	    "  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: "
	    "RANDOM}}}\n"
	    "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
	    "metadata: {name: api, namespace: ns}\nspec:\n  hosts: [api.ns]\n  tcp:\n"
	    "  - route: [{destination: {host: api, subset: v2}}]\n";

	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	s = svc(&t, "10.96.1.1", 5432);
	if (!CHECK(k = one_route(s), "tcp route on a tcp port"))
		goto out;
	CHECK_EQ(k->ndests, 1, "one destination");
	CHECK(k->dests[0].weight > 0, "gets everything");
	CHECK_EQ(t.subsets[k->dests[0].subset].lb, BM_LB_RANDOM, "subset LB overrides");
out:
	done(c, &t, &d);
}

static void test_dual_stack_and_vip_allocation(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	char a[64], b[64];
	const char *extra =
	    "---\napiVersion: v1\nkind: Service\nmetadata: {name: ds, namespace: ns}\n"
	    "spec:\n  clusterIPs: [10.96.2.2, 'fd00:96::2']\n  selector: {app: api}\n"
	    "  ports: [{port: 81, targetPort: 81}]\n"
	    "---\napiVersion: v1\nkind: Service\nmetadata: {name: novip, namespace: ns}\n"
	    "spec:\n  selector: {app: api}\n  ports: [{port: 82}]\n";

	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	CHECK(svc(&t, "10.96.2.2", 81), "v4 address");
	const struct rs_service *s6 = svc(&t, "fd00:96::2", 81);
	CHECK(s6, "v6 address");
	CHECK(s6 && t.subsets[s6->all_subset].n == 1, "only the pod with an IPv6 address");
	for (int i = 0; i < c->nservices; i++) {
		if (strcmp(c->services[i].name, "novip"))
			continue;
		CHECK_OK(resolve_service_vip(c, &c->services[i], BM_FAM_V4, a, sizeof(a)), "vip");
		CHECK_OK(resolve_service_vip(c, &c->services[i], BM_FAM_V4, b, sizeof(b)), "vip2");
		CHECK_STR(a, b, "allocation is stable");
		struct in_addr ia;

		inet_pton(AF_INET, a, &ia);
		CHECK((ntohl(ia.s_addr) & 0xfff00000u) == 0x0a600000u, "inside 10.96.0.0/12");
		CHECK(svc(&t, a, 82), "allocated address is a service");
	}
	done(c, &t, &d);
}

/* A destination naming what does not exist keeps its share with no backends (those connects
 * are refused, as Istio answers 503), and the rest of the route works: one bad reference does
 * not take the service down. */
static void test_missing_destinations(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	int coded;
	const struct rs_service *s;
	const struct rs_kroute *k;
	const char *extra = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
			    "metadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  http:\n"
			    "  - route:\n"
			    "    - {destination: {host: nowhere}, weight: 10}\n"
			    "    - {destination: {host: api, subset: v9}, weight: 20}\n"
			    "    - {destination: {host: api, port: {number: 99}}, weight: 30}\n"
			    "    - {destination: {host: api}, weight: 40}\n";

	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors: the config applies");
	CHECK_EQ(d.nerrors, 0, "none reported as errors");
	CHECK_EQ(uncoded(&d, "BM0001", &coded), 3, "three warnings");
	CHECK(coded >= 1, "and the weighted route split per connection, noted per port");
	s = svc(&t, "10.96.1.1", 80);
	if (!CHECK(k = one_route(s), "route in force"))
		goto out;
	if (!CHECK_EQ(k->ndests, 4, "every destination keeps its weight"))
		goto out;
	for (int i = 0; i < 3; i++)
		CHECK_EQ(t.subsets[k->dests[i].subset].n, 0, "missing: no backends");
	CHECK_EQ(k->dests[3].weight, 40, "the valid one");
	CHECK_EQ(t.subsets[k->dests[3].subset].n, 2, "with its endpoints");
out:
	done(c, &t, &d);
}

/* Two DestinationRules for one host in one namespace are merged as Istio merges them: the
 * second one's subsets are found, the first one's policy applies. */
static void test_merged_destination_rules(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	int coded;
	const struct rs_service *s;
	const struct rs_kroute *k;
	const char *extra =
	    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
	    "metadata: {name: a, namespace: ns}\nspec:\n  host: api\n"
	    "  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n"
	    "  subsets: [{name: v1, labels: {version: v1}}]\n"
	    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
	    "metadata: {name: b, namespace: ns}\nspec:\n  host: api\n"
	    "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
	    "  subsets: [{name: v2, labels: {version: v2}}, {name: v1, labels: {version: v2}}]\n"
	    "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
	    "metadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  http:\n"
	    "  - route:\n    - {destination: {host: api, subset: v1}, weight: 50}\n"
	    "    - {destination: {host: api, subset: v2}, weight: 50}\n";

	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	CHECK_EQ(uncoded(&d, "BM0001", &coded), 0, "no warnings: both subsets exist");
	s = svc(&t, "10.96.1.1", 80);
	if (!CHECK((k = one_route(s)) && k->ndests == 2, "two destinations"))
		goto out;
	CHECK_EQ(t.subsets[k->dests[0].subset].n, 1, "v1 from the first rule (first wins)");
	CHECK_EQ(t.subsets[k->dests[1].subset].n, 1, "v2 from the second rule");
	CHECK_EQ(t.subsets[k->dests[1].subset].lb, BM_LB_ROUND_ROBIN, "the first rule's policy");
out:
	done(c, &t, &d);
}

/* ---------- the kernel's route lists: what is known at connect() ---------- */

static const char *dr_api =
    "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
    "metadata: {name: api, namespace: ns}\nspec:\n  host: api\n  subsets:\n"
    "  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";

/* Two mesh client pods with different labels, one in another mesh namespace, one outside. */
static const char *clients =
    "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ns3, labels: {istio-injection: "
    "enabled}}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: ca, namespace: ns, labels: {app: client, "
    "version: a}}\nspec:\n  containers: [{name: c}]\nstatus: {podIP: 10.244.0.20}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: cb, namespace: ns, labels: {app: client, "
    "version: b}}\nspec:\n  containers: [{name: c}]\nstatus: {podIP: 10.244.0.21}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: c3, namespace: ns3, labels: {app: client, "
    "version: a}}\nspec:\n  containers: [{name: c}]\nstatus: {podIP: 10.244.0.22}\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: out, namespace: ns2, labels: {app: client, "
    "version: a}}\nspec:\n  containers: [{name: c}]\nstatus: {podIP: 10.244.0.23}\n";

static int nwarn(const struct diags *d)
{
	int n = 0;

	for (int i = 0; i < d->n; i++)
		n += d->v[i].sev == DIAG_WARN;
	return n;
}

static uint32_t pod_id_of(const struct mesh_config *c, const char *ns, const char *name)
{
	for (int i = 0; i < c->nworkloads; i++)
		if (!strcmp(c->workloads[i].ns, ns) && !strcmp(c->workloads[i].name, name))
			return c->workloads[i].pod_id;
	return 0;
}

/* The subset name of kernel route k's destination i. */
static const char *dest_name(const struct rs_table *t, const struct rs_service *s, int k, int i)
{
	return k < s->nkroutes && i < s->kroutes[k].ndests
		   ? t->subsets[s->kroutes[k].dests[i].subset].name
		   : "(none)";
}

/* The index of the kernel route a pod takes, as bpf/lb.h bm_route_first decides it, or -1. */
static int first_route(const struct rs_service *s, uint32_t pod_id)
{
	uint32_t bits = rs_pod_bits(s, pod_id);

	for (int k = 0; k < s->nkroutes; k++)
		if (s->kroutes[k].any_src || (bits >> k & 1))
			return k;
	return -1;
}

/* Istio's TCP traffic shifting with match: port: one VirtualService, each service port its
 * own route, decided per port (no list: every client of a port takes the same route). */
static void test_tcp_match_port(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	const struct rs_service *s;
	const struct rs_kroute *k;
	char buf[256];
	char extra[2048];

	snprintf(extra, sizeof(extra),
		 "%s---\napiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: ns}\n"
		 "spec:\n  clusterIP: 10.96.1.5\n  selector: {app: api}\n  ports:\n"
		 "  - {name: tcp, port: 9000}\n  - {name: tcp-other, port: 9001}\n"
		 "  - {name: tcp-third, port: 9002}\n"
		 "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
		 "metadata: {name: echo, namespace: ns}\nspec:\n  host: echo\n  subsets:\n"
		 "  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n"
		 "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		 "metadata: {name: echo, namespace: ns}\nspec:\n  hosts: [echo]\n  tcp:\n"
		 "  - match: [{port: 9000}]\n    route: [{destination: {host: echo, subset: v1}}]\n"
		 "  - match: [{port: 9001}]\n    route:\n"
		 "    - {destination: {host: echo, subset: v1}, weight: 20}\n"
		 "    - {destination: {host: echo, subset: v2}, weight: 80}\n",
		 "");
	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	CHECK_EQ(nwarn(&d), 0, "no warnings: every tcp match is enforced");
	diags_print(&d, stderr);
	s = svc(&t, "10.96.1.5", 9000);
	if (CHECK(k = one_route(s), "port 9000: one route for every client")) {
		CHECK_EQ(k->route, 0, "spec.tcp[0]");
		CHECK_STR(dest_name(&t, s, 0, 0), "v1", "to v1");
		rs_route_text(s, buf, sizeof(buf));
		CHECK_STR(buf, "ns/echo spec.tcp[0]; not in force: spec.tcp[1]", "services text");
	}
	s = svc(&t, "10.96.1.5", 9001);
	if (CHECK(k = one_route(s), "port 9001: one route for every client")) {
		CHECK_EQ(k->route, 1, "spec.tcp[1]");
		CHECK_EQ(k->ndests, 2, "its 20/80 split");
		CHECK_STR(dest_name(&t, s, 0, 1), "v2", "v2 second");
		CHECK_EQ(k->dests[1].weight, 80, "weight 80");
	}
	s = svc(&t, "10.96.1.5", 9002);
	if (CHECK(s, "port 9002")) {
		CHECK_EQ(s->nkroutes, 0, "no route matches port 9002: every endpoint");
		rs_route_text(s, buf, sizeof(buf));
		CHECK_STR(buf, "ns/echo: no route; not in force: spec.tcp[0],spec.tcp[1]",
			  "services text");
	}
	done(c, &t, &d);
}

/* sourceLabels and sourceNamespace: a list of routes, first match wins, decided per pod. */
static void test_source_matches_first_wins(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	const struct rs_service *s;
	char extra[4096], buf[256];
	uint32_t ca, cb, c3, out, a1;

	snprintf(extra, sizeof(extra),
		 "%s%s---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		 "metadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  tcp:\n"
		 /* 0: version b clients of this namespace to v2 */
		 "  - match: [{sourceLabels: {app: client, version: b}, sourceNamespace: ns}]\n"
		 "    route: [{destination: {host: api, subset: v2}}]\n"
		 /* 1: namespace ns3, or version a: v1 (ORed matches) */
		 "  - match: [{sourceNamespace: ns3}, {sourceLabels: {version: a}}]\n"
		 "    route: [{destination: {host: api, subset: v1}}]\n"
		 /* 2: also every version b client, but 0 comes first for those in ns */
		 "  - match: [{sourceLabels: {version: b}}]\n"
		 "    route: [{destination: {host: api, subset: v1}}]\n"
		 /* 3: another port only: not on 5432 */
		 "  - match: [{port: 1234}]\n"
		 "    route: [{destination: {host: api, subset: v1}}]\n",
		 dr_api, clients);
	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	diags_print(&d, stderr);
	ca = pod_id_of(c, "ns", "ca");
	cb = pod_id_of(c, "ns", "cb");
	c3 = pod_id_of(c, "ns3", "c3");
	out = pod_id_of(c, "ns2", "out");
	a1 = pod_id_of(c, "ns", "a1");
	CHECK(ca && cb && c3 && out && a1, "pod ids");
	s = svc(&t, "10.96.1.1", 5432);
	if (!CHECK(s && s->nkroutes == 3, "three routes can hold on 5432 (not the port 1234 one)"))
		goto out;
	for (int k = 0; k < 3; k++)
		CHECK(!s->kroutes[k].any_src, "each depends on the client");
	CHECK_EQ(s->kroutes[2].route, 2, "in order");
	CHECK_EQ(rs_pod_bits(s, cb), 0x5, "cb: routes 0 and 2 hold");
	CHECK_EQ(first_route(s, cb), 0, "cb: the first wins: v2");
	CHECK_STR(dest_name(&t, s, 0, 0), "v2", "route 0 is v2");
	CHECK_EQ(rs_pod_bits(s, ca), 0x2, "ca: route 1 (sourceLabels version a)");
	CHECK_EQ(rs_pod_bits(s, c3), 0x2, "c3: route 1 (sourceNamespace ns3, and version a)");
	CHECK_EQ(rs_pod_bits(s, a1), 0, "a1 (version v1, ns): none holds");
	CHECK_EQ(first_route(s, a1), -1, "a1: every endpoint");
	CHECK_EQ(rs_pod_bits(s, out), 0, "a pod outside the mesh gets no bits (no routes at all)");
	CHECK_EQ(rs_pod_bits(s, 0), 0, "an unknown client: none");
	rs_route_text(s, buf, sizeof(buf));
	CHECK_STR(buf,
		  "ns/api: first match of spec.tcp[0],spec.tcp[1],spec.tcp[2]; not in force: "
		  "spec.tcp[3]",
		  "services text");
	rs_kroute_text(s, 0, buf, sizeof(buf));
	CHECK_STR(buf,
		  "spec.tcp[0] (sourceLabels {app: client, version: b} and sourceNamespace ns)",
		  "route 0 text");
	rs_kroute_text(s, 1, buf, sizeof(buf));
	CHECK_STR(buf, "spec.tcp[1] (sourceNamespace ns3 or sourceLabels {version: a})",
		  "route 1 text: the matches ORed");
	/* the HTTP port of the same Service takes http routes: none, so the tcp ones apply? no:
	 * port 80 is http, and a VS with only tcp routes gives it the tcp routes (fallback) */
	s = svc(&t, "10.96.1.1", 80);
	CHECK(s && s->nkroutes == 3, "port 80 falls back to the tcp routes (no http route)");
out:
	done(c, &t, &d);
}

/* A route that holds for every client ends the list: what follows is never reached. */
static void test_list_ends_at_catch_all(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	const struct rs_service *s;
	char extra[4096], buf[256];

	snprintf(extra, sizeof(extra),
		 "%s%s---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		 "metadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  tcp:\n"
		 "  - match: [{sourceLabels: {version: b}}]\n"
		 "    route: [{destination: {host: api, subset: v2}}]\n"
		 "  - match: [{port: 5432}, {sourceLabels: {version: a}}]\n"
		 "    route: [{destination: {host: api, subset: v1}}]\n"
		 "  - route: [{destination: {host: api}}]\n",
		 dr_api, clients);
	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	s = svc(&t, "10.96.1.1", 5432);
	if (!CHECK(s && s->nkroutes == 2, "two routes: the second holds for everyone on 5432"))
		goto out;
	CHECK(!s->kroutes[0].any_src && s->kroutes[1].any_src, "route 1 is the catch-all");
	CHECK_EQ(first_route(s, pod_id_of(c, "ns", "cb")), 0, "cb: v2");
	CHECK_EQ(first_route(s, pod_id_of(c, "ns", "ca")), 1, "ca: v1");
	CHECK_EQ(first_route(s, 0), 1, "an unknown client: the catch-all");
	rs_route_text(s, buf, sizeof(buf));
	CHECK_STR(buf, "ns/api: first match of spec.tcp[0],spec.tcp[1]", "spec.tcp[2] unreachable");
	rs_kroute_text(s, 1, buf, sizeof(buf));
	CHECK_STR(buf, "spec.tcp[1] (every mesh client)", "route 1 text");
out:
	done(c, &t, &d);
}

/* destinationSubnets: the service address the client dialed must be in one of them. */
static void test_destination_subnets(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	const struct rs_service *s;
	const struct rs_kroute *k;
	char extra[4096];

	snprintf(extra, sizeof(extra),
		 "%s---\napiVersion: v1\nkind: Service\nmetadata: {name: ds, namespace: ns}\n"
		 "spec:\n  clusterIPs: [10.96.2.2, 'fd00:96::2']\n  selector: {app: api}\n"
		 "  ports: [{name: tcp, port: 81}]\n"
		 "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		 "metadata: {name: ds, namespace: ns}\nspec:\n  hosts: [ds]\n  tcp:\n"
		 "  - match: [{destinationSubnets: [192.168.0.0/16, 10.96.3.0/24]}]\n"
		 "    route: [{destination: {host: api, subset: v2}}]\n"
		 "  - match: [{destinationSubnets: ['fd00:96::/64']}]\n"
		 "    route: [{destination: {host: api, subset: v2}}]\n"
		 "  - match: [{destinationSubnets: [10.96.2.0/23], port: 81}]\n"
		 "    route: [{destination: {host: api, subset: v1}}]\n"
		 "  - match: [{destinationSubnets: [10.96.2.2]}]\n"
		 "    route: [{destination: {host: api}}]\n",
		 dr_api);
	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	s = svc(&t, "10.96.2.2", 81);
	if (CHECK(k = one_route(s), "IPv4: one route holds"))
		CHECK_EQ(k->route, 2, "10.96.2.0/23 holds 10.96.2.2; the first two do not");
	s = svc(&t, "fd00:96::2", 81);
	if (CHECK(k = one_route(s), "IPv6: one route holds"))
		CHECK_EQ(k->route, 1, "fd00:96::/64");
	done(c, &t, &d);
}

/* http routes whose matches are only port/sourceLabels/sourceNamespace stay in the kernel;
 * a request field takes the port to the HTTP path. On a port that stays in the kernel, a
 * match with a request field never holds there, and the others of the route still do. */
static void test_http_source_matches_in_kernel(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	const struct rs_service *s;
	char extra[4096];
	int coded;

	snprintf(extra, sizeof(extra),
		 "%s%s---\napiVersion: v1\nkind: Service\nmetadata: {name: un, namespace: ns}\n"
		 "spec:\n  clusterIP: 10.96.1.7\n  selector: {app: api}\n  ports: [{port: 7}]\n"
		 "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		 "metadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  http:\n"
		 "  - match: [{sourceLabels: {version: b}, port: 80}]\n"
		 "    route: [{destination: {host: api, subset: v2}}]\n"
		 "  - match: [{sourceLabels: {version: a}, gateways: [mesh]}, "
		 "{sourceNamespace: ns3, gateways: [ingress]}]\n"
		 "    route: [{destination: {host: api, subset: v1}}]\n"
		 "  - route: [{destination: {host: api}}]\n"
		 "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		 "metadata: {name: un, namespace: ns}\nspec:\n  hosts: [un]\n  http:\n"
		 "  - match: [{uri: {prefix: /x}}, {sourceLabels: {version: a}}]\n"
		 "    route: [{destination: {host: api, subset: v1}}]\n"
		 "  - match: [{headers: {a: {exact: b}}}]\n"
		 "    route: [{destination: {host: api, subset: v2}}]\n",
		 dr_api, clients);
	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	s = svc(&t, "10.96.1.1", 80);
	if (CHECK(s, "port 80")) {
		CHECK_STR(s->l7_reason, "", "sourceLabels/port matches need no HTTP path");
		CHECK_EQ(s->nkroutes, 3, "the kernel decides them, in order");
		CHECK_EQ(first_route(s, pod_id_of(c, "ns", "cb")), 0, "cb: v2");
		CHECK_EQ(first_route(s, pod_id_of(c, "ns", "ca")), 1, "ca: v1");
		CHECK_EQ(first_route(s, pod_id_of(c, "ns3", "c3")), 1,
			 "c3: version a (the ns3 match names another gateway: never in the mesh)");
		CHECK(s->kroutes[2].any_src, "then every client");
	}
	uncoded(&d, "BM0011", &coded);
	s = svc(&t, "10.96.1.7", 7);
	if (CHECK(s, "unnamed port 7")) {
		CHECK(s->l7_reason[0] == 0, "an unnamed port stays in the kernel");
		CHECK_EQ(s->nkroutes, 1, "the uri match never holds there; sourceLabels does");
		CHECK(!s->kroutes[0].any_src, "only for version a");
		CHECK_EQ(first_route(s, pod_id_of(c, "ns", "ca")), 0, "ca: v1");
		CHECK_EQ(first_route(s, pod_id_of(c, "ns", "cb")), -1, "cb: every endpoint");
	}
	CHECK_EQ(coded, 2, "BM0011 for both routes of the unnamed port");
	done(c, &t, &d);
	snprintf(extra, sizeof(extra),
		 "%s---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		 "metadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  http:\n"
		 "  - match: [{sourceLabels: {version: b}}, {uri: {prefix: /x}}]\n"
		 "    route: [{destination: {host: api, subset: v2}}]\n",
		 dr_api);
	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	s = svc(&t, "10.96.1.1", 80);
	CHECK(s && !strcmp(s->l7_reason, "match in spec.http[0]"),
	      "a uri match takes the http port to the HTTP path");
	done(c, &t, &d);
}

/* More routes depending on the client than a list holds: the first BM_MAX_SVC_ROUTES, said. */
static void test_list_cut_warned(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	const struct rs_service *s;
	char extra[8192];
	size_t n;
	bool said = false;

	n = snprintf(extra, sizeof(extra),
		     "%s---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		     "metadata: {name: api, namespace: ns}\nspec:\n  hosts: [api]\n  tcp:\n",
		     dr_api);
	for (int i = 0; i < BM_MAX_SVC_ROUTES + 2; i++)
		n += snprintf(extra + n, sizeof(extra) - n,
			      "  - match: [{sourceLabels: {n: '%d'}}]\n"
			      "    route: [{destination: {host: api, subset: v1}}]\n",
			      i);
	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	s = svc(&t, "10.96.1.1", 5432);
	CHECK(s && s->nkroutes == BM_MAX_SVC_ROUTES, "the first BM_MAX_SVC_ROUTES");
	for (int i = 0; i < d.n; i++)
		said |= strstr(d.v[i].msg, "more than 16 routes") != NULL;
	CHECK(said, "and a warning says the rest are not tried");
	done(c, &t, &d);
}

/* The ports-80 endpoints' addresses of api, as one string ("10.244.0.2 10.244.0.3"). */
static void endpoints_of(const struct rs_table *t, char *buf, size_t len)
{
	const struct rs_service *s = svc(t, "10.96.1.1", 80);

	buf[0] = 0;
	for (int i = 0; s && i < t->subsets[s->all_subset].n; i++) {
		const struct rs_backend *b = &t->backends[t->subsets[s->all_subset].backends[i]];
		char a[64];

		rs_format_addr(b->addr, b->family, a, sizeof(a));
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? " " : "", a);
	}
}

static const char *pod3 =
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a3, namespace: ns, labels: {app: api}%s}\n"
    "spec:\n  containers: [{name: c, ports: [{name: web, containerPort: 8083}]}]\n"
    "status: {podIP: 10.244.0.4, conditions: [{type: Ready, status: '%s'}]}\n";

/* api's EndpointSlice: a1 not ready, a2 terminating but serving (a3 not listed) */
static const char *slice =
    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: api-x1, namespace: ns, labels: {kubernetes.io/service-name: api}}\n"
    "addressType: IPv4\nendpoints:\n"
    "- {addresses: [10.244.0.2], conditions: {ready: false}}\n"
    "- {addresses: [10.244.0.3], conditions: {ready: false, serving: true, terminating: true}}\n";

static void test_readiness_as_kube_proxy(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	char extra[1024], got[256];

	snprintf(extra, sizeof(extra), pod3, "", "False");
	CHECK_EQ(load(extra, &c, &t, &d), 0, "no errors");
	endpoints_of(&t, got, sizeof(got));
	CHECK_STR(got, "10.244.0.2 10.244.0.3", "a not-Ready pod takes no new connections");
	done(c, &t, &d);
	snprintf(extra, sizeof(extra), pod3, "", "True");
	load(extra, &c, &t, &d);
	endpoints_of(&t, got, sizeof(got));
	CHECK_STR(got, "10.244.0.2 10.244.0.3 10.244.0.4", "a Ready one does");
	done(c, &t, &d);
	snprintf(extra, sizeof(extra), pod3, ", deletionTimestamp: '2026-12-01T00:00:00Z'",
		 "True");
	load(extra, &c, &t, &d);
	endpoints_of(&t, got, sizeof(got));
	CHECK_STR(got, "10.244.0.2 10.244.0.3", "a terminating one none while others serve");
	done(c, &t, &d);
	/* the EndpointSlice says: a1 not ready, a2 terminating but serving, a3 (not listed:
	 * its own Ready condition) ready */
	snprintf(extra, sizeof(extra), pod3, "", "True");
	strcat(extra, slice);
	load(extra, &c, &t, &d);
	endpoints_of(&t, got, sizeof(got));
	CHECK_STR(got, "10.244.0.4", "slice conditions: only the ready one");
	done(c, &t, &d);
	/* nothing ready: the serving terminating endpoint takes connections (kube-proxy) */
	snprintf(extra, sizeof(extra), pod3, "", "False");
	strcat(extra, slice);
	CHECK_EQ(load(extra, &c, &t, &d), 0, "an EndpointSlice is accepted");
	endpoints_of(&t, got, sizeof(got));
	CHECK_STR(got, "10.244.0.3", "nothing ready: the terminating one that serves");
	done(c, &t, &d);
}

static void test_selectorless_service_from_its_slices(void)
{
	static const char y[] =
	    "apiVersion: v1\nkind: Service\nmetadata: {name: kubernetes, namespace: default}\n"
	    "spec: {clusterIP: 10.96.0.1, ports: [{name: https, port: 443, targetPort: 6443}]}\n"
	    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
	    "metadata: {name: kubernetes, namespace: default, labels: "
	    "{kubernetes.io/service-name: kubernetes}}\naddressType: IPv4\n"
	    "endpoints: [{addresses: [172.18.0.2]}, {addresses: [172.18.0.3], conditions: "
	    "{ready: false}}]\nports: [{name: https, port: 6443, protocol: TCP}]\n";
	struct mesh_config *c = config_new();
	const struct rs_service *s;
	struct rs_table t;
	struct diags d = {0};

	config_load_mem(c, "api:x", y, strlen(y), &d);
	resolve(c, &t, &d);
	s = svc(&t, "10.96.0.1", 443);
	if (CHECK(s, "the API server's Service is served")) {
		const struct rs_subset *all = &t.subsets[s->all_subset];
		char a[64] = "";

		CHECK_EQ(all->n, 1, "its one ready endpoint, from the slice");
		if (all->n == 1)
			rs_format_addr(t.backends[all->backends[0]].addr,
				       t.backends[all->backends[0]].family, a, sizeof(a));
		CHECK_STR(a, "172.18.0.2", "the slice's address");
		CHECK_EQ(all->n ? t.backends[all->backends[0]].port : 0, 6443, "the slice's port");
	}
	rs_free(&t);
	diags_free(&d);
	config_free(c);
}

static void test_api_service_without_address_gets_none(void)
{
	static const char y[] = "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: ns}\n"
				"spec: {selector: {app: api}, ports: [{port: 80}]}\n";
	struct mesh_config *c = config_new();
	struct rs_table t;
	struct diags d = {0};

	config_load_mem(c, "x.yaml", y, strlen(y), &d);
	resolve(c, &t, &d);
	CHECK_EQ(t.nservices, 1, "from a file: the lab's allocator gives it an address");
	rs_free(&t);
	config_free(c);
	c = config_new();
	config_load_mem(c, "api:Service/ns/x", y, strlen(y), &d);
	resolve(c, &t, &d);
	CHECK_EQ(t.nservices, 0, "from the API server: none invented in the cluster's range");
	rs_free(&t);
	diags_free(&d);
	config_free(c);
}

static void test_workload_names_as_istio(void)
{
	static const struct {
		const char *meta, *want;
	} cases[] = {
	    {"labels: {pod-template-hash: 7d9f8c}, ownerReferences: [{kind: ReplicaSet, name: "
	     "api-v1-7d9f8c, controller: true}]",
	     "api-v1"},
	    {"labels: {pod-template-hash: zzz}, ownerReferences: [{kind: ReplicaSet, name: "
	     "api-v1-7d9f8c, controller: true}]",
	     "api-v1-7d9f8c"},
	    {"ownerReferences: [{kind: StatefulSet, name: db, controller: true}]", "db"},
	    {"ownerReferences: [{kind: DaemonSet, name: agent, controller: true}]", "agent"},
	    {"ownerReferences: [{kind: Job, name: backup-28912345, controller: true}]", "backup"},
	    {"ownerReferences: [{kind: Job, name: backup-1234, controller: true}]", "backup-1234"},
	    {"ownerReferences: [{kind: ReplicaSet, name: x, controller: false}]", "pod-abc"},
	    {"labels: {service.istio.io/workload-name: named}, ownerReferences: [{kind: "
	     "StatefulSet, name: db, controller: true}]",
	     "named"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mesh_config *c = config_new();
		struct diags d = {0};
		char y[1024], wl[128] = "";

		snprintf(y, sizeof(y),
			 "apiVersion: v1\nkind: Pod\nmetadata: {name: pod-abc, namespace: ns, %s}\n"
			 "spec: {containers: [{name: c}]}\nstatus: {podIP: 10.244.0.7}\n",
			 cases[i].meta);
		config_load_mem(c, "w.yaml", y, strlen(y), &d);
		if (CHECK_EQ(c->nworkloads, 1, "loaded"))
			config_workload_name(&c->workloads[0], wl, sizeof(wl));
		CHECK_STR(wl, cases[i].want, cases[i].meta);
		diags_free(&d);
		config_free(c);
	}
}

int main(void)
{
	int rc;
	char path[128];

	if (!mkdtemp(dir))
		return 1;
	RUN(test_endpoints_and_named_target_port);
	RUN(test_weights_subsets_and_lb);
	RUN(test_single_destination_any_weight);
	RUN(test_dual_stack_and_vip_allocation);
	RUN(test_missing_destinations);
	RUN(test_merged_destination_rules);
	RUN(test_tcp_match_port);
	RUN(test_source_matches_first_wins);
	RUN(test_list_ends_at_catch_all);
	RUN(test_destination_subnets);
	RUN(test_http_source_matches_in_kernel);
	RUN(test_list_cut_warned);
	RUN(test_readiness_as_kube_proxy);
	RUN(test_workload_names_as_istio);
	RUN(test_api_service_without_address_gets_none);
	RUN(test_selectorless_service_from_its_slices);
	rc = CHECK_DONE("resolve");
	snprintf(path, sizeof(path), "%s/c.yaml", dir);
	unlink(path);
	rmdir(dir);
	return rc;
}
