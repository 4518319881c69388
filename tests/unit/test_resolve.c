// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_resolve.c: unit tests of user/lib/resolve.c, config -> service table: endpoints by selector,
 * named target ports, subsets by labels, weights (0 dropped, single destination), per-port
 * route choice, DestinationRule/subset load-balancer precedence, VIP allocation, errors.
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
	CHECK(!s->has_route, "no VirtualService: no route");
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
	if (!CHECK(s && s->has_route, "route in force"))
		goto out;
	CHECK_EQ(s->ndests, 2, "weight 0 dropped; the match route skipped");
	CHECK_EQ(s->dests[0].weight, 30, "v1 weight");
	CHECK_EQ(t.subsets[s->dests[0].subset].n, 1, "v1 has one pod");
	CHECK_EQ(t.subsets[s->dests[0].subset].lb, BM_LB_ROUND_ROBIN, "rule-level LB");
	CHECK_EQ(s->dests[1].weight, 70, "no-subset destination weight");
	CHECK_EQ(t.subsets[s->dests[1].subset].n, 2, "no subset: all endpoints");
out:
	done(c, &t, &d);
}

static void test_single_destination_any_weight(void)
{
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
	const struct rs_service *s;
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
	if (!CHECK(s && s->has_route, "tcp route on a tcp port"))
		goto out;
	CHECK_EQ(s->ndests, 1, "one destination");
	CHECK(s->dests[0].weight > 0, "gets everything");
	CHECK_EQ(t.subsets[s->dests[0].subset].lb, BM_LB_RANDOM, "subset LB overrides");
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
	if (!CHECK(s && s->has_route, "route in force"))
		goto out;
	if (!CHECK_EQ(s->ndests, 4, "every destination keeps its weight"))
		goto out;
	for (int i = 0; i < 3; i++)
		CHECK_EQ(t.subsets[s->dests[i].subset].n, 0, "missing: no backends");
	CHECK_EQ(s->dests[3].weight, 40, "the valid one");
	CHECK_EQ(t.subsets[s->dests[3].subset].n, 2, "with its endpoints");
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
	if (!CHECK(s && s->ndests == 2, "two destinations"))
		goto out;
	CHECK_EQ(t.subsets[s->dests[0].subset].n, 1, "v1 from the first rule (first wins)");
	CHECK_EQ(t.subsets[s->dests[1].subset].n, 1, "v2 from the second rule");
	CHECK_EQ(t.subsets[s->dests[1].subset].lb, BM_LB_ROUND_ROBIN, "the first rule's policy");
out:
	done(c, &t, &d);
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
	rc = CHECK_DONE("resolve");
	snprintf(path, sizeof(path), "%s/c.yaml", dir);
	unlink(path);
	rmdir(dir);
	return rc;
}
