// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_config.c: unit tests of the configuration model (user/lib/config.c, validate.c, diag.c,
 * yamltree.c) and of `bpfmesh validate` / `analyze` (cmd_validate.c). Run by `make test`
 * under ASan+UBSan. Each test writes YAML into a private mkdtemp directory, loads it and
 * checks the model, or the exact diagnostic lines users would see.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "model.h"

static char tmpdir[64];

/* Write name into the test directory; returns the path in a static slot (8 in rotation). */
static const char *put(const char *name, const char *text)
{
	static char paths[8][256];
	static int next;
	char *p = paths[next++ % 8];
	FILE *f;

	snprintf(p, 256, "%s/%s", tmpdir, name);
	f = fopen(p, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	return p;
}

/* Load one YAML text as t.yaml: each object checked on its own, as `validate` does. */
static struct mesh_config *load(const char *yaml, struct diags *d)
{
	struct mesh_config *c = config_new();

	config_load_file(c, put("t.yaml", yaml), d);
	return c;
}

/* The same, then the analysis across objects, as `analyze` does. */
static struct mesh_config *load_analyzed(const char *yaml, struct diags *d)
{
	struct mesh_config *c = load(yaml, d);

	config_analyze(c, d);
	return c;
}

/* Diagnostic i as printed (by validate, or by analyze when analyzer), with the test directory
 * removed from every path. */
static const char *print_of(const struct diags *d, int i, bool analyzer)
{
	static char out[1024];
	char *buf = NULL, *p;
	size_t len = 0, dl = strlen(tmpdir);
	FILE *f = open_memstream(&buf, &len);

	out[0] = 0;
	if (!f || i >= d->n)
		return out;
	if (analyzer)
		diag_print_analyzer(&d->v[i], f);
	else
		diag_print(&d->v[i], f);
	fclose(f);
	for (p = buf; *p && strlen(out) + 1 < sizeof(out);) {
		if (strncmp(p, tmpdir, dl) == 0 && p[dl] == '/') {
			p += dl + 1;
			continue;
		}
		strncat(out, p++, 1);
	}
	free(buf);
	if (*out)
		out[strlen(out) - 1] = 0; /* the newline */
	return out;
}

static bool has_print(const struct diags *d, const char *want, bool analyzer)
{
	for (int i = 0; i < d->n; i++)
		if (strcmp(print_of(d, i, analyzer), want) == 0)
			return true;
	for (int i = 0; i < d->n; i++)
		fprintf(stderr, "    have: %s\n", print_of(d, i, analyzer));
	return false;
}

/* true if one of the diagnostics prints exactly as want (as validate prints it). */
static bool has_line(const struct diags *d, const char *want)
{
	return has_print(d, want, false);
}

/* The same as `analyze` prints it. */
static bool has_finding(const struct diags *d, const char *want)
{
	return has_print(d, want, true);
}

static int count_errors(const struct diags *d)
{
	return d->nerrors;
}

static void done(struct mesh_config *c, struct diags *d)
{
	config_free(c);
	diags_free(d);
}

/* ---------------- Kubernetes kinds ---------------- */

static void test_namespace_and_service(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: v1\n"
				     "kind: Namespace\n"
				     "metadata:\n"
				     "  name: shop\n"
				     "  labels:\n"
				     "    istio-injection: enabled\n"
				     "---\n"
				     "apiVersion: v1\n"
				     "kind: Service\n"
				     "metadata:\n"
				     "  name: orders\n"
				     "  namespace: shop\n"
				     "  labels: {app: orders}\n"
				     "spec:\n"
				     "  selector:\n"
				     "    app: orders\n"
				     "  clusterIP: 10.0.0.10\n"
				     "  clusterIPs: [10.0.0.10, \"fd00::10\"]\n"
				     "  ports:\n"
				     "  - name: http\n"
				     "    port: 80\n"
				     "    targetPort: web\n"
				     "    appProtocol: http\n"
				     "  - name: grpc\n"
				     "    port: 9090\n"
				     "    targetPort: 9091\n"
				     "    protocol: TCP\n"
				     "  - name: dns\n"
				     "    port: 53\n"
				     "    protocol: UDP\n",
				     &d);
	struct svc_obj *s;

	CHECK_EQ(count_errors(&d), 0, "no errors");
	if (!CHECK_EQ(c->nnamespaces, 1, "namespace") || !CHECK_EQ(c->nservices, 1, "service"))
		goto out;
	CHECK_STR(c->namespaces[0].name, "shop", "ns name");
	CHECK_STR(kv_get(&c->namespaces[0].labels, "istio-injection"), "enabled", "ns label");
	s = &c->services[0];
	CHECK_STR(s->name, "orders", "name");
	CHECK_STR(s->ns, "shop", "namespace");
	CHECK_EQ(s->pos.line, 8, "object line");
	CHECK(s->has_selector, "selector");
	CHECK_STR(kv_get(&s->selector, "app"), "orders", "selector app");
	CHECK_STR(kv_get(&s->labels, "app"), "orders", "labels");
	CHECK_EQ(s->ncluster_ips, 2, "dual stack");
	CHECK_STR(s->cluster_ips[1], "fd00::10", "v6 cluster IP");
	CHECK_STR(s->type, "ClusterIP", "default type");
	if (!CHECK_EQ(s->nports, 3, "ports"))
		goto out;
	CHECK_EQ(s->ports[0].port, 80, "port");
	CHECK_EQ(s->ports[0].target_port, 0, "named targetPort has no number");
	CHECK_STR(s->ports[0].target_port_name, "web", "named targetPort");
	CHECK_STR(s->ports[0].app_protocol, "http", "appProtocol");
	CHECK_STR(s->ports[0].protocol, "TCP", "default protocol");
	CHECK_EQ(s->ports[1].target_port, 9091, "numeric targetPort");
	CHECK_EQ(s->ports[2].target_port, 53, "targetPort defaults to port");
	CHECK_STR(s->ports[2].protocol, "UDP", "UDP");
out:
	done(c, &d);
}

static void test_headless_service(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: v1\n"
				     "kind: Service\n"
				     "metadata: {name: db}\n"
				     "spec: {clusterIP: None, selector: {app: db}}\n",
				     &d);

	CHECK_EQ(count_errors(&d), 0, "headless needs no ports");
	if (CHECK_EQ(c->nservices, 1, "loaded"))
		CHECK_STR(c->services[0].cluster_ips[0], "None", "headless");
	CHECK_STR(c->services[0].ns, "default", "default namespace");
	done(c, &d);
}

static void test_deployment_and_pod(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: apps/v1\n"
				     "kind: Deployment\n"
				     "metadata:\n"
				     "  name: orders-v1\n"
				     "  namespace: shop\n"
				     "  labels: {team: a}\n"
				     "spec:\n"
				     "  selector:\n"
				     "    matchLabels: {app: orders}\n"
				     "  template:\n"
				     "    metadata:\n"
				     "      labels: {app: orders, version: v1}\n"
				     "      annotations: {sidecar.istio.io/inject: \"false\"}\n"
				     "    spec:\n"
				     "      nodeName: node-1\n"
				     "      serviceAccountName: orders\n"
				     "      containers:\n"
				     "      - name: app\n"
				     "        ports:\n"
				     "        - {containerPort: 8080, name: web}\n"
				     "        - {containerPort: 9000, protocol: UDP}\n"
				     "        env:\n"
				     "        - {name: MODE, value: fast}\n"
				     "        - name: SECRET\n"
				     "          valueFrom: {secretKeyRef: {name: s, key: k}}\n"
				     "      - name: side\n"
				     "        ports: [{containerPort: 15000}]\n"
				     "---\n"
				     "apiVersion: apps/v1\n"
				     "kind: Deployment\n"
				     "metadata: {name: three}\n"
				     "spec:\n"
				     "  replicas: 3\n"
				     "  selector: {matchLabels: {app: x}}\n"
				     "  template:\n"
				     "    metadata: {labels: {app: x}}\n"
				     "    spec: {containers: [{name: c}]}\n"
				     "---\n"
				     "apiVersion: v1\n"
				     "kind: Pod\n"
				     "metadata:\n"
				     "  name: p1\n"
				     "  labels: {app: orders}\n"
				     "  annotations: {a: b}\n"
				     "spec:\n"
				     "  nodeName: node-2\n"
				     "  containers: [{name: c, ports: [{containerPort: 80}]}]\n"
				     "status:\n"
				     "  hostIP: 10.0.0.2\n"
				     "  hostIPs: [{ip: 10.0.0.2}, {ip: \"fd00:ff::2\"}]\n"
				     "  podIP: 10.1.0.5\n"
				     "  podIPs: [{ip: 10.1.0.5}, {ip: \"fd00::5\"}]\n",
				     &d);
	struct workload_obj *w;

	CHECK_EQ(count_errors(&d), 0, "no errors");
	if (!CHECK_EQ(c->nworkloads, 3, "workloads"))
		goto out;
	w = &c->workloads[0];
	CHECK_EQ(w->kind, WL_DEPLOYMENT, "kind");
	CHECK_EQ(w->replicas, 1, "replicas default 1");
	CHECK_STR(kv_get(&w->meta_labels, "team"), "a", "metadata labels");
	CHECK_STR(kv_get(&w->labels, "version"), "v1", "template labels");
	CHECK_STR(kv_get(&w->annotations, "sidecar.istio.io/inject"), "false", "annotations");
	CHECK_STR(w->node_name, "node-1", "template nodeName");
	CHECK_STR(w->service_account, "orders", "service account");
	if (CHECK_EQ(w->nports, 3, "ports of all containers")) {
		CHECK_STR(w->ports[0].name, "web", "port name");
		CHECK_EQ(w->ports[1].port, 9000, "port");
		CHECK_STR(w->ports[1].protocol, "UDP", "protocol");
		CHECK_STR(w->ports[2].protocol, "TCP", "default protocol");
		CHECK_EQ(w->ports[2].port, 15000, "second container");
	}
	CHECK_EQ(w->env.n, 1, "valueFrom skipped");
	CHECK_STR(kv_get(&w->env, "MODE"), "fast", "env");
	CHECK_EQ(c->workloads[1].replicas, 3, "replicas");
	w = &c->workloads[2];
	CHECK_EQ(w->kind, WL_POD, "pod");
	CHECK_EQ(w->replicas, 1, "pod replicas");
	CHECK_STR(kv_get(&w->labels, "app"), "orders", "pod labels");
	CHECK_STR(kv_get(&w->annotations, "a"), "b", "pod annotations");
	CHECK_STR(w->node_name, "node-2", "nodeName");
	CHECK_EQ(w->naddresses, 2, "podIPs");
	CHECK_STR(w->addresses[1], "fd00::5", "v6 pod IP");
	CHECK_STR(w->host_ip, "10.0.0.2", "hostIP");
	CHECK_STR(w->host_ip6, "fd00:ff::2", "hostIPs: the node's IPv6 address");
	done(c, &d);
	/* an IPv6-primary dual-stack node: hostIP is the IPv6 one */
	memset(&d, 0, sizeof(d));
	c = load("apiVersion: v1\nkind: Pod\nmetadata: {name: p6}\n"
		 "spec: {nodeName: node1, containers: [{name: c}]}\n"
		 "status:\n  hostIP: \"fd00:ff::3\"\n"
		 "  hostIPs: [{ip: \"fd00:ff::3\"}, {ip: 10.0.0.3}]\n  podIP: 10.1.0.6\n",
		 &d);
	if (CHECK_EQ(c->nworkloads, 1, "the pod")) {
		CHECK_STR(c->workloads[0].host_ip, "10.0.0.3", "IPv4 from hostIPs");
		CHECK_STR(c->workloads[0].host_ip6, "fd00:ff::3", "IPv6 from hostIP");
	}
out:
	done(c, &d);
}

static void test_workload_entry(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: networking.istio.io/v1beta1\n"
				     "kind: WorkloadEntry\n"
				     "metadata: {name: vm1, namespace: shop}\n"
				     "spec:\n"
				     "  address: 192.168.1.5\n"
				     "  labels: {app: orders}\n"
				     "  ports: {http: 8080, grpc: 9090}\n"
				     "  serviceAccount: orders-vm\n"
				     "  network: net1\n"
				     "  weight: 3\n",
				     &d);
	struct workload_obj *w;

	CHECK_EQ(count_errors(&d), 0, "no errors");
	if (!CHECK_EQ(c->nworkloads, 1, "loaded"))
		goto out;
	w = &c->workloads[0];
	CHECK_EQ(w->kind, WL_WORKLOADENTRY, "kind");
	CHECK_STR(w->addresses[0], "192.168.1.5", "address");
	CHECK_STR(kv_get(&w->labels, "app"), "orders", "spec labels");
	CHECK_EQ(w->nports, 2, "ports map");
	CHECK_STR(w->ports[1].name, "grpc", "port name");
	CHECK_EQ(w->ports[1].port, 9090, "port");
	CHECK_STR(w->service_account, "orders-vm", "serviceAccount");
	CHECK_STR(w->network, "net1", "network");
	CHECK_EQ(w->weight, 3, "weight");
	CHECK(config_in_mesh(c, w), "a WorkloadEntry has its own proxy");
out:
	done(c, &d);
}

/* ---------------- Istio networking ---------------- */

static const char *vs_yaml = "apiVersion: networking.istio.io/v1\n"
			     "kind: VirtualService\n"
			     "metadata: {name: orders, namespace: shop}\n"
			     "spec:\n"
			     "  hosts: [orders, orders.example.com]\n"
			     "  gateways: [mesh]\n"
			     "  exportTo: [\".\"]\n"
			     "  tcp:\n"
			     "  - route:\n"
			     "    - destination: {host: orders, port: {number: 9000}}\n"
			     "  http:\n"
			     "  - name: canary\n"
			     "    match:\n"
			     "    - headers: {end-user: {exact: jason}}\n"
			     "    retries: {attempts: 3, perTryTimeout: 2s, retryOn: \"5xx,503\"}\n"
			     "    timeout: 10s\n"
			     "    fault: {delay: {fixedDelay: 7s, percentage: {value: 10}}}\n"
			     "    mirror: {host: orders-shadow}\n"
			     "    rewrite: {uri: /v2}\n"
			     "    headers: {request: {set: {x-a: b}}}\n"
			     "    corsPolicy: {allowMethods: [GET]}\n"
			     "    route:\n"
			     "    - destination: {host: orders, subset: v2}\n"
			     "      weight: 25\n"
			     "    - destination: {host: orders, subset: v1, port: {number: 8080}}\n"
			     "      weight: 75\n"
			     "  - route:\n"
			     "    - destination: {host: orders, subset: v1}\n"
			     "  tls:\n"
			     "  - match: [{sniHosts: [orders.example.com]}]\n"
			     "    route: [{destination: {host: orders}}]\n"
			     "---\n"
			     "apiVersion: networking.istio.io/v1alpha3\n"
			     "kind: DestinationRule\n"
			     "metadata: {name: orders, namespace: shop}\n"
			     "spec:\n"
			     "  host: orders.shop.svc.cluster.local\n"
			     "  subsets:\n"
			     "  - {name: v1, labels: {version: v1}}\n"
			     "  - {name: v2, labels: {version: v2}}\n";

static void test_virtual_service(void)
{
	struct diags d = {0};
	struct mesh_config *c = load(vs_yaml, &d);
	struct vs_obj *vs;
	struct vs_route *r;

	CHECK_EQ(count_errors(&d), 0, "no errors");
	if (!CHECK_EQ(c->nvses, 1, "loaded"))
		goto out;
	vs = &c->vses[0];
	CHECK_EQ(vs->nhosts, 2, "hosts");
	CHECK_STR(vs->hosts[1], "orders.example.com", "host");
	CHECK_EQ(vs->ngateways, 1, "gateways");
	CHECK_STR(vs->export_to[0], ".", "exportTo");
	if (!CHECK_EQ(vs->nroutes, 4, "routes"))
		goto out;
	r = &vs->routes[0];
	CHECK_EQ(r->kind, ROUTE_HTTP, "http first");
	CHECK_STR(r->name, "canary", "route name");
	CHECK_EQ(r->pos.line, 12, "route line");
	CHECK(r->has_match, "has match");
	CHECK(r->has_retries && r->has_timeout && r->has_fault && r->has_mirror, "flags 1");
	CHECK(r->has_rewrite && r->has_headers_op && r->has_cors, "flags 2");
	CHECK(!r->has_redirect && !r->has_direct_response && !r->has_delegate, "flags 3");
	if (CHECK_EQ(r->ndests, 2, "dests")) {
		CHECK_STR(r->dests[0].host, "orders", "dest host");
		CHECK_STR(r->dests[0].subset, "v2", "subset");
		CHECK_EQ(r->dests[0].weight, 25, "weight");
		CHECK(r->dests[0].has_weight, "has weight");
		CHECK_EQ(r->dests[1].port, 8080, "port number");
		CHECK_EQ(r->dests[1].pos.line, 25, "dest line");
	}
	CHECK(!vs->routes[1].has_match, "catch-all");
	CHECK(!vs->routes[1].dests[0].has_weight, "no weight");
	CHECK_EQ(vs->routes[2].kind, ROUTE_TLS, "then tls");
	CHECK_EQ(vs->routes[3].kind, ROUTE_TCP, "then tcp");
	CHECK_EQ(vs->routes[3].dests[0].port, 9000, "tcp port");
	CHECK(!has_line(&d, "t.yaml:15: VirtualService/shop/orders: spec.http[0].retries: warning: "
			    "not yet enforced"),
	      "retries are enforced on the HTTP path: no warning");
	CHECK(!has_line(&d, "t.yaml:18: VirtualService/shop/orders: spec.http[0].mirror: warning: "
			    "not yet enforced"),
	      "mirrors too");
out:
	done(c, &d);
}

static void test_destination_rule(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: networking.istio.io/v1beta1\n"
				     "kind: DestinationRule\n"
				     "metadata: {name: orders}\n"
				     "spec:\n"
				     "  host: orders\n"
				     "  exportTo: ['*']\n"
				     "  trafficPolicy:\n"
				     "    loadBalancer: {simple: ROUND_ROBIN}\n"
				     "    connectionPool:\n"
				     "      tcp: {maxConnections: 100, connectTimeout: 1.5s}\n"
				     "    outlierDetection:\n"
				     "      consecutiveErrors: 7\n"
				     "      consecutiveGatewayErrors: 2\n"
				     "      interval: 100ms\n"
				     "      baseEjectionTime: 1h\n"
				     "      maxEjectionPercent: 50\n"
				     "      minHealthPercent: 20\n"
				     "    tls: {mode: ISTIO_MUTUAL}\n"
				     "    portLevelSettings:\n"
				     "    - port: {number: 80}\n"
				     "      loadBalancer: {simple: RANDOM}\n"
				     "  subsets:\n"
				     "  - name: v1\n"
				     "    labels: {version: v1}\n"
				     "    trafficPolicy:\n"
				     "      loadBalancer:\n"
				     "        consistentHash: {useSourceIp: true}\n"
				     "      outlierDetection: {consecutive5xxErrors: 0}\n"
				     "  - name: v2\n"
				     "    labels: {version: v2}\n",
				     &d);
	struct dr_obj *dr;
	struct traffic_policy *p;

	CHECK_EQ(count_errors(&d), 0, "no errors");
	if (!CHECK_EQ(c->ndrs, 1, "loaded"))
		goto out;
	dr = &c->drs[0];
	CHECK_STR(dr->host, "orders", "host");
	CHECK_STR(dr->export_to[0], "*", "exportTo");
	CHECK(dr->has_policy, "policy");
	p = &dr->policy;
	CHECK(p->has_lb && p->lb_simple == LB_ROUND_ROBIN, "simple lb");
	CHECK_EQ(p->max_connections, 100, "maxConnections");
	CHECK_EQ(p->connect_timeout_ms, 1500, "1.5s");
	CHECK_EQ(p->consecutive_5xx, 7, "consecutiveErrors is the deprecated alias");
	CHECK_EQ(p->consecutive_gateway, 2, "gateway errors");
	CHECK_EQ(p->interval_ms, 100, "100ms");
	CHECK_EQ(p->base_ejection_ms, 3600000, "1h");
	CHECK_EQ(p->max_ejection_percent, 50, "maxEjectionPercent");
	CHECK_EQ(p->min_health_percent, 20, "minHealthPercent");
	CHECK(p->has_tls && p->has_port_level && p->has_connection_pool, "kept for later");
	if (!CHECK_EQ(dr->nsubsets, 2, "subsets"))
		goto out;
	CHECK_STR(dr->subsets[0].name, "v1", "subset name");
	CHECK_STR(kv_get(&dr->subsets[0].labels, "version"), "v1", "subset labels");
	CHECK_EQ(dr->subsets[0].pos.line, 23, "subset line");
	p = &dr->subsets[0].policy;
	CHECK(dr->subsets[0].has_policy && p->lb_hash && p->lb_hash_source_ip, "source ip hash");
	CHECK(!p->lb_hash_other, "no other hash");
	CHECK_EQ(p->consecutive_5xx, 0, "0 disables");
	CHECK_EQ(p->max_connections, -1, "unset is -1");
	CHECK_EQ(p->interval_ms, -1, "unset interval");
	CHECK(!dr->subsets[1].has_policy, "no own policy");
	CHECK(has_line(&d,
		       "t.yaml:12: DestinationRule/default/orders: "
		       "spec.trafficPolicy.outlierDetection.consecutiveErrors: warning: outlier "
		       "detection consecutive errors is deprecated, use consecutiveGatewayErrors "
		       "or consecutive5xxErrors instead"),
	      "deprecation warning");
out:
	done(c, &d);
}

static void test_other_kinds(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: networking.istio.io/v1\n"
				     "kind: Gateway\n"
				     "metadata: {name: gw, namespace: istio-system}\n"
				     "spec:\n"
				     "  selector: {istio: ingressgateway}\n"
				     "  servers:\n"
				     "  - port: {number: 80, name: http, protocol: HTTP}\n"
				     "    hosts: ['*']\n"
				     "---\n"
				     "apiVersion: example.com/v1\n"
				     "kind: Widget\n"
				     "metadata: {name: w}\n"
				     "---\n"
				     "apiVersion: security.istio.io/v1\n"
				     "kind: PeerAuthentication\n"
				     "metadata: {name: default, namespace: istio-system}\n"
				     "spec: {mtls: {mode: STRICT}}\n",
				     &d);

	CHECK_EQ(count_errors(&d), 0, "no errors");
	if (!CHECK_EQ(c->nothers, 3, "kept as others"))
		goto out;
	CHECK_STR(c->others[0].kind, "Gateway", "kind");
	CHECK_STR(c->others[0].ns, "istio-system", "ns");
	CHECK_STR(c->others[1].api_version, "example.com/v1", "apiVersion");
	CHECK(has_line(&d, "t.yaml:10: Widget/default/w: warning: unknown kind Widget in "
			   "example.com/v1: ignored"),
	      "unknown kind warns");
	CHECK(!has_line(&d, "t.yaml:14: PeerAuthentication/istio-system/default: warning: not "
			    "yet enforced (checked by Istio's rules, then ignored)"),
	      "PeerAuthentication is enforced: no such warning");
out:
	done(c, &d);
}

/* ---------------- file shapes ---------------- */

/* Anchors and aliases as kubectl's YAML reads them: an alias is a copy of its anchor (a map,
 * a scalar, also an anchored map key), a later anchor of a name wins, an alias bomb is refused
 * at its node bound. */
static void test_anchors(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: v1\nkind: Namespace\n"
				     "metadata:\n  name: a\n"
				     "  labels: {&k team: &v blue, owner: *k, color: *v}\n"
				     "---\n"
				     "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n"
				     "  labels: &l {x: one}\n"
				     "  annotations: *l\n",
				     &d);

	if (CHECK_EQ(c->nnamespaces, 2, "both loaded") && CHECK_EQ(d.nerrors, 0, "no error")) {
		CHECK_STR(kv_get(&c->namespaces[0].labels, "owner"), "team", "alias of a key");
		CHECK_STR(kv_get(&c->namespaces[0].labels, "color"), "blue", "alias of a value");
		CHECK_STR(kv_get(&c->namespaces[1].labels, "x"), "one", "anchored map");
	}
	done(c, &d);
	{
		struct diags db = {0};
		char bomb[1024];
		int n = snprintf(bomb, sizeof(bomb), "a: &a [x, x, x, x, x, x, x, x, x, x]\n");

		for (int i = 1; i < 12; i++)
			n += snprintf(bomb + n, sizeof(bomb) - n, "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, "
				      "*%c, *%c, *%c, *%c]\n", 'a' + i, 'a' + i, 'a' + i - 1,
				      'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1,
				      'a' + i - 1, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1);
		c = load(bomb, &db);
		CHECK(db.nerrors >= 1 && strstr(db.v[0].msg, "too many nodes"), "alias bomb refused");
		done(c, &db);
	}
}

static void test_list_and_multidoc(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("---\n"
				     "# nothing here\n"
				     "---\n"
				     "apiVersion: v1\n"
				     "kind: List\n"
				     "items:\n"
				     "- apiVersion: v1\n"
				     "  kind: Namespace\n"
				     "  metadata: {name: a}\n"
				     "- apiVersion: v1\n"
				     "  kind: Namespace\n"
				     "  metadata: {name: b}\n"
				     "---\n"
				     "~\n"
				     "---\n"
				     "apiVersion: v1\n"
				     "kind: Namespace\n"
				     "metadata: {name: c}\n"
				     "...\n",
				     &d);

	CHECK_EQ(d.n, 0, "no diagnostics");
	if (CHECK_EQ(c->nnamespaces, 3, "List items and documents")) {
		CHECK_STR(c->namespaces[1].name, "b", "second item");
		CHECK_EQ(c->namespaces[1].pos.line, 10, "item line");
		CHECK_STR(c->namespaces[2].name, "c", "last document");
	}
	done(c, &d);
}

static void test_json(void)
{
	struct diags d = {0};
	struct mesh_config *c = config_new();

	config_load_file(c,
			 put("v.json",
			     "{\"apiVersion\": \"networking.istio.io/v1\",\n"
			     " \"kind\": \"VirtualService\",\n"
			     " \"metadata\": {\"name\": \"r\"},\n"
			     " \"spec\": {\"hosts\": [\"r\"], \"http\": [{\"route\": [\n"
			     "   {\"destination\": {\"host\": \"r\"}, \"weight\": 100}]}]}}\n"),
			 &d);
	CHECK_EQ(count_errors(&d), 0, "no errors");
	if (CHECK_EQ(c->nvses, 1, "JSON loads"))
		CHECK_EQ(c->vses[0].routes[0].dests[0].weight, 100, "weight");
	done(c, &d);
}

static void test_load_dir(void)
{
	struct diags d = {0};
	struct mesh_config *c = config_new();
	char sub[128];

	snprintf(sub, sizeof(sub), "%s/dir", tmpdir);
	mkdir(sub, 0700);
	put("dir/b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n");
	put("dir/a.yml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
	put("dir/c.txt", "not: loaded\n");
	put("dir/d.json", "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", "
			  "\"metadata\": {\"name\": \"d\"}}\n");
	CHECK_OK(config_load_dir(c, sub, &d), "load dir");
	if (CHECK_EQ(c->nnamespaces, 3, "yaml, yml and json only")) {
		CHECK_STR(c->namespaces[0].name, "a", "name order");
		CHECK_STR(c->namespaces[2].name, "d", "name order");
	}
	CHECK_EQ(c->nfiles, 3, "files interned");
	done(c, &d);
	unlink(put("dir/a.yml", ""));
	unlink(put("dir/b.yaml", ""));
	unlink(put("dir/c.txt", ""));
	unlink(put("dir/d.json", ""));
	rmdir(sub);
}

/* A directory loaded again with the config it gave last time: only changed files are parsed;
 * the result (objects, warnings, rejections, which duplicate wins) is the same as a fresh load. */
static void test_load_dir_from(void)
{
	struct diags d0 = {0}, d1 = {0}, d2 = {0}, d3 = {0}, dr = {0};
	struct mesh_config *c0 = config_new(), *c1 = config_new(), *c2 = config_new();
	struct mesh_config *c3 = config_new(), *fresh = config_new();
	char sub[128], path[200];

	c0->keep_sources = c1->keep_sources = c2->keep_sources = c3->keep_sources = true;
	fresh->keep_sources = true;
	snprintf(sub, sizeof(sub), "%s/rdir", tmpdir);
	mkdir(sub, 0700);
	put("rdir/a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: sx, namespace: ns1}\n"
			   "spec: {ports: [{port: 80}], websocketUpgrade: true}\n---\n"
			   "apiVersion: v1\nkind: Service\nmetadata: {name: sy, namespace: ns1}\n"
			   "spec: {ports: [{port: 81}]}\n");
	put("rdir/b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: sy, namespace: ns1}\n"
			   "spec: {ports: [{port: 82}]}\n");
	put("rdir/c.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: sz, namespace: ns1}\n"
			   "spec: {ports: [{port: 0}]}\n");
	usleep(60000); /* past the racy window (files changed just before they were listed) */
	CHECK_OK(config_load_dir_from(c0, sub, NULL, &d0), "first load");
	CHECK_EQ(c0->files_parsed, 3, "first: all parsed");
	CHECK_OK(config_load_dir_from(c1, sub, c0, &d1), "again, nothing changed");
	/* a.yaml's y is replaced by b.yaml's (not all of a.yaml is in c0), c.yaml has a rejected
	 * object: both parsed again; b.yaml is taken from c0 */
	CHECK_EQ(c1->files_reused, 1, "only the file all of whose objects stood is reused");
	CHECK_EQ(c1->nservices, 2, "x and y (z rejected)");
	CHECK_EQ(c1->nrejected, 1, "z still rejected");
	CHECK_EQ(d1.n, d0.n, "the same diagnostics");
	for (int i = 0; i < d0.n && i < d1.n; i++)
		CHECK_STR(print_of(&d1, i, false), print_of(&d0, i, false), "same diagnostic");
	for (int i = 0; i < c1->nservices; i++)
		if (!strcmp(c1->services[i].name, "sy"))
			CHECK_EQ(c1->services[i].ports[0].port, 82, "the later file's y wins");
	CHECK_EQ(config_changes(c1, c0), 0, "no object changed");
	/* b.yaml rewritten: parsed again, its new content in force; the others as before */
	usleep(10000);
	put("rdir/b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: sy, namespace: ns1}\n"
			   "spec: {ports: [{port: 83}]}\n");
	CHECK_OK(config_load_dir_from(c2, sub, c1, &d2), "after a change");
	for (int i = 0; i < c2->nservices; i++)
		if (!strcmp(c2->services[i].name, "sy"))
			CHECK_EQ(c2->services[i].ports[0].port, 83, "the change is read");
	CHECK_EQ(config_changes(c2, c1), 1, "one object changed");
	{
		/* b.yaml changed just before c2 listed it: not trusted as unchanged next time (a
		 * same-size rewrite in the same timestamp tick would keep its stamp) */
		struct diags dq = {0};
		struct mesh_config *cq = config_new();

		cq->keep_sources = true;
		CHECK_OK(config_load_dir_from(cq, sub, c2, &dq), "right after");
		CHECK_EQ(cq->files_reused, 0, "a file changed in the racy window is read again");
		done(cq, &dq);
	}
	/* the same bytes under a new inode (an editor's rename) are read again */
	snprintf(path, sizeof(path), "%s/rdir/b.yaml", tmpdir);
	put("rdir/b.new", "apiVersion: v1\nkind: Service\nmetadata: {name: sy, namespace: ns1}\n"
			  "spec: {ports: [{port: 83}]}\n");
	{
		char from[200];

		snprintf(from, sizeof(from), "%s/rdir/b.new", tmpdir);
		rename(from, path);
	}
	CHECK_OK(config_load_dir_from(c3, sub, c2, &d3), "after a rename");
	CHECK_EQ(c3->files_reused, 0, "nothing reused: b.yaml is a new file");
	CHECK_OK(config_load_dir(fresh, sub, &dr), "fresh");
	CHECK_EQ(c3->nservices, fresh->nservices, "as a fresh load");
	{
		/* objects come back in their file's order, not where an identity was first loaded
		 * (0a.yaml's sx came first; without 0a.yaml a fresh load has sy, then sx) */
		struct diags da = {0}, db = {0}, dc = {0};
		struct mesh_config *ca = config_new(), *cb = config_new(), *cf = config_new();

		ca->keep_sources = cb->keep_sources = cf->keep_sources = true;
		unlink(put("rdir/a.yaml", ""));
		unlink(put("rdir/b.yaml", ""));
		unlink(put("rdir/c.yaml", ""));
		put("rdir/0a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: sx, namespace: "
				    "ns1}\nspec: {ports: [{port: 80}]}\n");
		put("rdir/a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: sy, namespace: "
				   "ns1}\nspec: {ports: [{port: 81}]}\n---\napiVersion: v1\nkind: "
				   "Service\nmetadata: {name: sx, namespace: ns1}\nspec: {ports: "
				   "[{port: 82}]}\n");
		usleep(60000);
		CHECK_OK(config_load_dir_from(ca, sub, NULL, &da), "with 0a.yaml");
		unlink(put("rdir/0a.yaml", ""));
		CHECK_OK(config_load_dir_from(cb, sub, ca, &db), "without it");
		CHECK_EQ(cb->files_reused, 1, "a.yaml reused");
		CHECK_EQ(cb->nservices, 2, "sy and sx");
		CHECK_OK(config_load_dir(cf, sub, &dc), "fresh");
		for (int i = 0; i < cb->nservices && i < cf->nservices; i++)
			CHECK_STR(cb->services[i].name, cf->services[i].name, "the fresh order");
		done(ca, &da);
		done(cb, &db);
		done(cf, &dc);
	}
	config_free(c0); /* c1 shares its trees: they stay while c1 holds them */
	CHECK_EQ(config_changes(c2, c1), 1, "c1's trees outlive c0");
	done(c1, &d1);
	done(c2, &d2);
	done(c3, &d3);
	done(fresh, &dr);
	diags_free(&d0);
	unlink(put("rdir/a.yaml", ""));
	unlink(put("rdir/b.yaml", ""));
	unlink(put("rdir/c.yaml", ""));
	rmdir(sub);
}

/* ---------------- hosts and enrollment ---------------- */

static void check_fqdn(const char *host, const char *ns, const char *want)
{
	char *got = config_fqdn(host, ns);

	CHECK_STR(got, want, host);
	free(got);
}

static void test_fqdn(void)
{
	check_fqdn("orders", "shop", "orders.shop.svc.cluster.local");
	check_fqdn("orders.shop", "other", "orders.shop.svc.cluster.local");
	check_fqdn("orders.shop.svc", "other", "orders.shop.svc.cluster.local");
	check_fqdn("orders.shop.svc.cluster.local", "x", "orders.shop.svc.cluster.local");
	check_fqdn("Orders.Shop.svc.cluster.local.", "x", "orders.shop.svc.cluster.local");
	check_fqdn("www.googleapis.com", "x", "www.googleapis.com");
	check_fqdn("*.example.com", "x", "*.example.com");
	check_fqdn("10.0.0.1", "x", "10.0.0.1");
	check_fqdn("orders", NULL, "orders.default.svc.cluster.local");
}

static void test_kv(void)
{
	struct kv a[] = {{"app", "orders"}, {"version", "v1"}};
	struct kv s[] = {{"app", "orders"}};
	struct kv bad[] = {{"app", "cart"}};
	struct kvlist labels = {a, 2}, sel = {s, 1}, other = {bad, 1}, empty = {0};

	CHECK_STR(kv_get(&labels, "version"), "v1", "get");
	CHECK(!kv_get(&labels, "nope"), "absent");
	CHECK(kv_match(&sel, &labels), "subset matches");
	CHECK(!kv_match(&other, &labels), "value differs");
	CHECK(kv_match(&empty, &labels), "empty selector matches all");
	CHECK(!kv_match(&labels, &sel), "missing key");
}

static void test_in_mesh(void)
{
	static const char *pod =
	    "---\n"
	    "apiVersion: v1\n"
	    "kind: Pod\n"
	    "metadata: {name: %s, namespace: %s, labels: {%s}, annotations: {%s}}\n"
	    "spec: {containers: [{name: c}]}\n";
	static const struct {
		const char *name, *ns, *labels, *annotations;
		bool in;
	} cases[] = {
	    {"p1", "inj", "", "", true},
	    {"p2", "inj", "sidecar.istio.io/inject: \"false\"", "", false},
	    {"p3", "inj", "", "sidecar.istio.io/inject: \"false\"", false},
	    {"p4", "amb", "", "", true},
	    {"p5", "amb", "istio.io/dataplane-mode: none", "", false},
	    {"p6", "plain", "", "", false},
	    {"p7", "plain", "sidecar.istio.io/inject: \"true\"", "", true},
	    {"p8", "optout", "sidecar.istio.io/inject: \"true\"", "", false},
	    {"p9", "unknown", "", "", false},
	    {"p10", "plain", "istio.io/dataplane-mode: ambient", "", true},
	    {"p11", "rev", "", "", true},
	};
	struct diags d = {0};
	struct mesh_config *c;
	char *yaml = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&yaml, &len);

	if (!f)
		return;
	fputs("apiVersion: v1\nkind: List\nitems:\n"
	      "- {apiVersion: v1, kind: Namespace, metadata: {name: inj, labels: "
	      "{istio-injection: enabled}}}\n"
	      "- {apiVersion: v1, kind: Namespace, metadata: {name: amb, labels: "
	      "{istio.io/dataplane-mode: ambient}}}\n"
	      "- {apiVersion: v1, kind: Namespace, metadata: {name: plain}}\n"
	      "- {apiVersion: v1, kind: Namespace, metadata: {name: optout, labels: "
	      "{istio-injection: disabled}}}\n"
	      "- {apiVersion: v1, kind: Namespace, metadata: {name: rev, labels: "
	      "{istio.io/rev: canary}}}\n",
	      f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		fprintf(f, pod, cases[i].name, cases[i].ns, cases[i].labels, cases[i].annotations);
	fclose(f);
	c = load(yaml, &d);
	free(yaml);
	CHECK_EQ(count_errors(&d), 0, "no errors");
	if (!CHECK_EQ(c->nworkloads, (int)(sizeof(cases) / sizeof(cases[0])), "pods"))
		goto out;
	for (int i = 0; i < c->nworkloads; i++)
		CHECK_EQ(config_in_mesh(c, &c->workloads[i]), cases[i].in, cases[i].name);
out:
	done(c, &d);
}

/* ---------------- split_file ---------------- */

struct split_seen {
	int n;
	char kind[4][32], ns[4][32], name[4][32];
	int line[4];
	char *yaml[4];
};

static int split_cb(void *arg, const char *kind, const char *ns, const char *name, int line,
		    const char *yaml, size_t len)
{
	struct split_seen *s = arg;

	if (s->n >= 4)
		return -1;
	snprintf(s->kind[s->n], 32, "%s", kind);
	snprintf(s->ns[s->n], 32, "%s", ns);
	snprintf(s->name[s->n], 32, "%s", name);
	s->line[s->n] = line;
	s->yaml[s->n] = strndup(yaml, len);
	s->n++;
	return 0;
}

static void test_split_file(void)
{
	const char *path =
	    put("s.yaml", "apiVersion: v1\n"
			  "kind: List\n"
			  "items:\n"
			  "- apiVersion: v1\n"
			  "  kind: Namespace\n"
			  "  metadata: {name: shop}\n"
			  "- apiVersion: v1\n"
			  "  kind: Pod\n"
			  "  metadata:\n"
			  "    name: p\n"
			  "    namespace: shop\n"
			  "    annotations: {sidecar.istio.io/inject: \"false\"}\n"
			  "---\n"
			  "---\n"
			  "apiVersion: networking.istio.io/v1\n"
			  "kind: VirtualService\n"
			  "metadata: {name: r}\n"
			  "spec: {hosts: [r], http: [{route: [{destination: {host: r}}]}]}\n");
	struct split_seen s = {0};
	struct diags d = {0};
	struct mesh_config *c;

	CHECK_OK(config_split_file(path, split_cb, &s, &d), "split");
	if (!CHECK_EQ(s.n, 3, "three objects"))
		goto out;
	CHECK_STR(s.kind[0], "Namespace", "kind");
	CHECK_STR(s.ns[0], "default", "absent namespace");
	CHECK_STR(s.name[1], "p", "name");
	CHECK_STR(s.ns[1], "shop", "namespace");
	CHECK_STR(s.kind[2], "VirtualService", "from the second document");
	CHECK_EQ(s.line[0], 4, "first item's line");
	CHECK_EQ(s.line[2], 15, "third object's line");
	CHECK(!strstr(s.yaml[1], "List") && !strstr(s.yaml[1], "items"), "unwrapped");
	CHECK_CONTAINS(s.yaml[1], "\"false\"", "quoted scalar stays a string");
	/* Each piece is a standalone document that loads on its own. */
	c = config_new();
	config_load_file(c, put("piece.yaml", s.yaml[2]), &d);
	CHECK_EQ(c->nvses, 1, "re-emitted YAML loads");
	CHECK_EQ(count_errors(&d), 0, "and is valid");
	config_free(c);
out:
	for (int i = 0; i < s.n; i++)
		free(s.yaml[i]);
	diags_free(&d);
}

static void test_split_file_syntax_error(void)
{
	struct split_seen s = {0};
	struct diags d = {0};
	const char *path = put("bad.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
					   "---\nkind: [unclosed\n");

	CHECK_EQ(config_split_file(path, split_cb, &s, &d), -1, "fails");
	CHECK_EQ(s.n, 0, "nothing applied before the error");
	CHECK_EQ(d.nerrors, 1, "reported");
	diags_free(&d);
}

/* ---------------- bad input: exact messages ---------------- */

static const char *vs_head = "apiVersion: networking.istio.io/v1\n"
			     "kind: VirtualService\n"
			     "metadata: {name: orders, namespace: shop}\n"
			     "spec:\n";

/* Load vs_head + body and require exactly one error printing as want. */
static void expect_vs_error(const char *body, const char *want)
{
	char *yaml = NULL;
	struct diags d = {0};
	struct mesh_config *c;

	if (asprintf(&yaml, "%s%s", vs_head, body) < 0)
		return;
	c = load(yaml, &d);
	CHECK_EQ(count_errors(&d), 1, want);
	CHECK(has_line(&d, want), want);
	CHECK_EQ(c->nvses, 0, "an object with errors is not added");
	free(yaml);
	done(c, &d);
}

static void test_wrong_types(void)
{
	expect_vs_error(
	    "  hosts: [orders]\n"
	    "  http:\n"
	    "  - route:\n"
	    "    - destination: {host: orders}\n"
	    "      weight: \"abc\"\n",
	    "t.yaml:9: VirtualService/shop/orders: spec.http[0].route[0].weight: must be "
	    "an integer");
	expect_vs_error("  hosts: orders\n"
			"  http: [{route: [{destination: {host: orders}}]}]\n",
			"t.yaml:5: VirtualService/shop/orders: spec.hosts: must be a list");
	expect_vs_error(
	    "  hosts: [orders]\n"
	    "  http: [{route: [{destination: {host: orders}, weight: 1.5}]}]\n",
	    "t.yaml:6: VirtualService/shop/orders: spec.http[0].route[0].weight: must be "
	    "an integer");
	/* YAML 1.1, as kubectl reads it: a plain yes/no/on/off is a boolean, not a string. */
	expect_vs_error("  hosts: [orders]\n"
			"  http:\n"
			"  - match: [{sourceLabels: {canary: yes}}]\n"
			"    route: [{destination: {host: orders}}]\n",
			"t.yaml:7: VirtualService/shop/orders: "
			"spec.http[0].match[0].sourceLabels[canary]: must be a string");
}

/* The API server drops a field its schema does not know, and warns: so do we. */
static void test_unknown_field(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: networking.istio.io/v1\n"
				     "kind: VirtualService\n"
				     "metadata: {name: orders, namespace: shop}\n"
				     "spec:\n"
				     "  hosts: [orders]\n"
				     "  http:\n"
				     "  - route: [{destination: {host: orders}}]\n"
				     "    websocketUpgrade: true\n"
				     "  retrys: {attempts: 3}\n",
				     &d);

	CHECK_EQ(count_errors(&d), 0, "accepted");
	CHECK_EQ(c->nvses, 1, "loaded");
	CHECK(has_line(&d, "t.yaml:8: VirtualService/shop/orders: spec.http[0].websocketUpgrade: "
			   "warning: unknown field (ignored)"),
	      "nested: warned");
	CHECK(has_line(&d, "t.yaml:9: VirtualService/shop/orders: spec.retrys: warning: unknown "
			   "field (ignored)"),
	      "top of spec: warned");
	done(c, &d);
}

/* Names as the API server checks them: most kinds take a DNS-1123 subdomain (253 characters,
 * parts of any length), Services and Namespaces a 63-character label. */
static void test_name_lengths(void)
{
	char long65[66], yaml[1024];
	struct diags d = {0};
	struct mesh_config *c;

	memset(long65, 'a', 65);
	long65[65] = 0;
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec: {containers: [{name: "
		 "c}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec: "
		 "{ports: [{port: 80}]}\n",
		 long65, long65);
	c = load(yaml, &d);
	CHECK_EQ(c->nworkloads, 1, "a Pod name of 65 characters is valid");
	CHECK_EQ(c->nservices, 0, "a Service name of 65 is not");
	CHECK(has_line(
		  &d, "t.yaml:8: Service/default/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		      "aaaaaaaaaaaaaaaaaaa: metadata.name: invalid name "
		      "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": longer than 63 characters"),
	      "and says why");
	done(c, &d);
	c = load("apiVersion: v1\nkind: Pod\nmetadata: {name: Web}\nspec: {containers: [{name: "
		 "c}]}\n",
		 &d);
	CHECK(has_line(&d,
		       "t.yaml:3: Pod/default/Web: metadata.name: invalid name \"Web\": must be "
		       "lower case letters, digits and '-' (parts separated by '.')"),
	      "upper case: the pattern");
	done(c, &d);
}

static void test_negative_and_zero_weights(void)
{
	expect_vs_error("  hosts: [orders]\n"
			"  http:\n"
			"  - route:\n"
			"    - destination: {host: orders}\n"
			"      weight: 100\n"
			"    - destination: {host: orders}\n"
			"      weight: -5\n",
			"t.yaml:11: VirtualService/shop/orders: spec.http[0].route[1].weight: must "
			"not be negative");
	expect_vs_error(
	    "  hosts: [orders]\n"
	    "  http:\n"
	    "  - route:\n"
	    "    - destination: {host: orders}\n"
	    "      weight: 0\n"
	    "    - destination: {host: orders}\n",
	    "t.yaml:7: VirtualService/shop/orders: spec.http[0].route: all weights are 0 "
	    "(an unset weight counts as 0): at least one of several destinations needs a "
	    "weight above 0");
	expect_vs_error(
	    "  hosts: [orders]\n"
	    "  tcp: [{route: [{destination: {host: orders}, weight: 2147483648}]}]\n",
	    "t.yaml:6: VirtualService/shop/orders: spec.tcp[0].route[0].weight: must be "
	    "between -2147483648 and 2147483647, got 2147483648");
}

static void test_weights_accepted(void)
{
	struct diags d = {0};
	char *yaml = NULL;
	struct mesh_config *c;

	/* A single destination takes everything whatever its weight; a missing weight next to
	 * set ones is 0 (valid, but worth a warning). */
	if (asprintf(&yaml, "%s%s", vs_head,
		     "  hosts: [orders]\n"
		     "  http:\n"
		     "  - route: [{destination: {host: orders}, weight: 0}]\n"
		     "  - route:\n"
		     "    - {destination: {host: orders}, weight: 3}\n"
		     "    - {destination: {host: orders}}\n") < 0)
		return;
	c = load(yaml, &d);
	CHECK_EQ(count_errors(&d), 0, "valid");
	CHECK(has_line(&d, "t.yaml:8: VirtualService/shop/orders: spec.http[1].route: warning: 1 "
			   "destination(s) without a weight get no traffic (an unset weight counts "
			   "as 0)"),
	      "missing weight warns");
	free(yaml);
	done(c, &d);
}

static void test_duplicate_hosts(void)
{
	expect_vs_error("  hosts: [orders, cart, orders]\n"
			"  http: [{route: [{destination: {host: orders}}]}]\n",
			"t.yaml:5: VirtualService/shop/orders: spec.hosts[2]: duplicate host "
			"\"orders\" (matches spec.hosts[0] \"orders\")");
	expect_vs_error("  hosts: [\"*.example.com\", a.example.com]\n"
			"  gateways: [shop/gw]\n"
			"  http: [{route: [{destination: {host: orders}}]}]\n",
			"t.yaml:5: VirtualService/shop/orders: spec.hosts[1]: duplicate host "
			"\"a.example.com\" (matches spec.hosts[0] \"*.example.com\")");
}

static void test_missing_required(void)
{
	struct diags d = {0};
	struct mesh_config *c;

	expect_vs_error(
	    "  hosts: [orders]\n"
	    "  http: [{route: [{destination: {subset: v1}}]}]\n",
	    "t.yaml:6: VirtualService/shop/orders: spec.http[0].route[0].destination.host: "
	    "required");
	expect_vs_error(
	    "  hosts: [orders]\n",
	    "t.yaml:4: VirtualService/shop/orders: spec: http, tcp or tls must be provided "
	    "in virtual service");
	expect_vs_error(
	    "  tcp: [{route: [{destination: {host: orders}}]}]\n",
	    "t.yaml:4: VirtualService/shop/orders: spec.hosts: required (a VirtualService "
	    "without hosts is a delegate and may only have http routes)");
	c = load("apiVersion: networking.istio.io/v1\n"
		 "kind: DestinationRule\n"
		 "metadata: {name: d}\n"
		 "spec:\n"
		 "  subsets: [{name: v1}]\n"
		 "---\n"
		 "apiVersion: v1\n"
		 "kind: Service\n"
		 "metadata: {name: s}\n"
		 "spec: {selector: {app: s}}\n",
		 &d);
	CHECK(has_line(&d, "t.yaml:4: DestinationRule/default/d: spec.host: required"), "DR host");
	CHECK(has_line(&d, "t.yaml:10: Service/default/s: spec.ports: required (only a headless "
			   "Service, clusterIP: None, may have no ports)"),
	      "Service ports");
	CHECK_EQ(c->ndrs + c->nservices, 0, "neither added");
	done(c, &d);
}

static void test_bad_ports(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: v1\n"
				     "kind: Service\n"
				     "metadata: {name: s}\n"
				     "spec:\n"
				     "  ports:\n"
				     "  - {name: a, port: 0}\n"
				     "  - {name: b, port: 70000}\n"
				     "  - {name: c, port: http}\n"
				     "  - {name: d, port: 80, targetPort: 0}\n",
				     &d);

	CHECK(has_line(&d, "t.yaml:6: Service/default/s: spec.ports[0].port: must be between 1 "
			   "and 65535, got 0"),
	      "port 0");
	CHECK(has_line(&d, "t.yaml:7: Service/default/s: spec.ports[1].port: must be between 1 "
			   "and 65535, got 70000"),
	      "port > 65535");
	CHECK(has_line(&d, "t.yaml:8: Service/default/s: spec.ports[2].port: must be an integer"),
	      "non-numeric port");
	CHECK(has_line(&d, "t.yaml:9: Service/default/s: spec.ports[3].targetPort: must be "
			   "between 1 and 65535, got 0"),
	      "targetPort 0");
	CHECK_EQ(c->nservices, 0, "not added");
	done(c, &d);
	expect_vs_error(
	    "  hosts: [orders]\n"
	    "  http: [{route: [{destination: {host: orders, port: {number: 65536}}}]}]\n",
	    "t.yaml:6: VirtualService/shop/orders: "
	    "spec.http[0].route[0].destination.port.number: must be between 1 and 65535, "
	    "got 65536");
}

static void test_bad_load_balancer(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: networking.istio.io/v1\n"
				     "kind: DestinationRule\n"
				     "metadata: {name: d}\n"
				     "spec:\n"
				     "  host: d\n"
				     "  trafficPolicy:\n"
				     "    loadBalancer: {simple: FASTEST}\n",
				     &d);

	CHECK(has_line(&d, "t.yaml:7: DestinationRule/default/d: "
			   "spec.trafficPolicy.loadBalancer.simple: unsupported value \"FASTEST\" "
			   "(must be one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, "
			   "ROUND_ROBIN, LEAST_REQUEST)"),
	      "enum");
	done(c, &d);
}

static void test_duplicate_subsets(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: networking.istio.io/v1\n"
				     "kind: DestinationRule\n"
				     "metadata: {name: d}\n"
				     "spec:\n"
				     "  host: d\n"
				     "  subsets:\n"
				     "  - name: v1\n"
				     "  - name: v1\n",
				     &d);

	CHECK(has_line(&d, "t.yaml:8: DestinationRule/default/d: spec.subsets[1].name: duplicate "
			   "subset name \"v1\" (also spec.subsets[0])"),
	      "duplicate subset");
	CHECK_EQ(c->ndrs, 0, "not added");
	done(c, &d);
}

/* Istio accepts a VirtualService naming a subset nothing defines (the route answers 503):
 * validate accepts it, analyze reports IST0101 as istioctl analyze does. */
static void test_unknown_subset(void)
{
	static const char *yaml = "apiVersion: networking.istio.io/v1\n"
				  "kind: VirtualService\n"
				  "metadata: {name: reviews}\n"
				  "spec:\n"
				  "  hosts: [reviews]\n"
				  "  http:\n"
				  "  - route:\n"
				  "    - {destination: {host: reviews, subset: v3}, weight: 1}\n"
				  "    - {destination: {host: ratings, subset: v1}, weight: 1}\n"
				  "---\n"
				  "apiVersion: networking.istio.io/v1\n"
				  "kind: DestinationRule\n"
				  "metadata: {name: reviews}\n"
				  "spec:\n"
				  "  host: reviews.default.svc.cluster.local\n"
				  "  subsets: [{name: v1, labels: {version: v1}}]\n"
				  "---\n"
				  "apiVersion: v1\n"
				  "kind: Service\n"
				  "metadata: {name: reviews}\n"
				  "spec: {selector: {app: reviews}, ports: [{port: 9080}]}\n"
				  "---\n"
				  "apiVersion: v1\n"
				  "kind: Service\n"
				  "metadata: {name: ratings}\n"
				  "spec: {selector: {app: ratings}, ports: [{port: 9080}]}\n";
	struct diags d = {0};
	struct mesh_config *c = load(yaml, &d);

	CHECK_EQ(count_errors(&d), 0, "validate: every object is valid");
	CHECK_EQ(c->nvses, 1, "and loaded");
	config_analyze(c, &d);
	CHECK_EQ(count_errors(&d), 2, "analyze: two errors");
	CHECK(has_finding(&d, "Error [IST0101] (VirtualService default/reviews t.yaml:8) "
			      "Referenced host+subset in destinationrule not found: "
			      "\"reviews+v3\""),
	      "subset missing from the DestinationRule");
	CHECK(has_finding(&d, "Error [IST0101] (VirtualService default/reviews t.yaml:9) "
			      "Referenced host+subset in destinationrule not found: "
			      "\"ratings+v1\""),
	      "no DestinationRule for the host");
	done(c, &d);
	/* The same whether or not any DestinationRule is loaded (no "maybe it is in the
	 * cluster" warning one way and an error the other). */
	c = load_analyzed("apiVersion: networking.istio.io/v1\n"
			  "kind: VirtualService\n"
			  "metadata: {name: reviews}\n"
			  "spec:\n"
			  "  hosts: [reviews]\n"
			  "  http: [{route: [{destination: {host: reviews, subset: v3}}]}]\n",
			  &d);
	CHECK(has_finding(&d, "Error [IST0101] (VirtualService default/reviews t.yaml:6) "
			      "Referenced host not found: \"reviews\""),
	      "no Service: the host is the first thing missing");
	done(c, &d);
}

/* A destination port the Service does not have, and a multi-port Service without one. */
static void test_destination_ports(void)
{
	struct diags d = {0};
	struct mesh_config *c =
	    load_analyzed("apiVersion: v1\n"
			  "kind: Service\n"
			  "metadata: {name: orders}\n"
			  "spec: {selector: {app: orders}, ports: [{name: http, port: 80}, "
			  "{name: grpc, port: 9000}]}\n"
			  "---\n"
			  "apiVersion: networking.istio.io/v1\n"
			  "kind: VirtualService\n"
			  "metadata: {name: orders}\n"
			  "spec:\n"
			  "  hosts: [orders]\n"
			  "  http:\n"
			  "  - route:\n"
			  "    - {destination: {host: orders, port: {number: 81}}, weight: 50}\n"
			  "    - {destination: {host: orders}, weight: 50}\n",
			  &d);

	CHECK(has_finding(&d, "Error [IST0101] (VirtualService default/orders t.yaml:13) "
			      "Referenced host:port not found: \"orders:81\""),
	      "unknown port");
	CHECK(has_finding(&d, "Error [IST0112] (VirtualService default/orders t.yaml:14) This "
			      "VirtualService routes to a service \"orders\" that exposes multiple "
			      "ports [80 9000]. Specifying a port in the destination is required "
			      "to disambiguate."),
	      "port required");
	done(c, &d);
}

static void test_yaml_syntax_error(void)
{
	struct diags d = {0};
	struct mesh_config *c = config_new();
	const char *path = put("t.yaml", "apiVersion: v1\n"
					 "kind: Namespace\n"
					 "metadata:\n"
					 "  name: a\n"
					 " labels: {}\n");

	CHECK_EQ(config_load_file(c, path, &d), -1, "fails");
	CHECK(has_line(&d, "t.yaml:5: yaml: did not find expected key (while parsing a block "
			   "mapping at line 1)"),
	      "syntax error with line");
	CHECK_EQ(c->nnamespaces, 0, "nothing loaded");
	done(c, &d);
	c = config_new();
	config_load_file(c, put("t.yaml", "a: 1\na: 2\n"), &d);
	CHECK(has_line(&d, "t.yaml:2: yaml: duplicate key \"a\""), "duplicate key");
	done(c, &d);
	c = config_new();
	CHECK_EQ(config_load_file(c, put("t.yaml", "- just\n- a list\n"), &d), 0, "YAML is fine");
	CHECK(has_line(&d, "t.yaml:1: expected a Kubernetes object (a map with apiVersion and "
			   "kind)"),
	      "not an object");
	done(c, &d);
	c = config_new();
	CHECK_EQ(config_load_file(c, "/nonexistent/x.yaml", &d), -1, "missing file");
	CHECK(has_line(&d, "/nonexistent/x.yaml: cannot read: No such file or directory"),
	      "io error");
	done(c, &d);
}

static void test_flow_colon(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: v1\n"
				     "kind: Service\n"
				     "metadata: {name: s}\n"
				     "spec: {clusterIPs: [10.0.0.1, fd00::1], clusterIP: 10.0.0.1, "
				     "ports: [{port: 80}]}\n",
				     &d);

	/* go-yaml (kubectl) reads "fd00::1" as one string even before ']'; libyaml alone
	 * would not. */
	CHECK_EQ(count_errors(&d), 0, "loads as kubectl would");
	if (CHECK_EQ(c->nservices, 1, "loaded"))
		CHECK_STR(c->services[0].cluster_ips[1], "fd00::1", "v6 address");
	done(c, &d);
}

/* One invalid object is rejected alone, and listed with its first error. */
static void test_rejected_objects(void)
{
	struct diags d = {0};
	struct mesh_config *c = load("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
				     "spec: {selector: {app: s}, ports: [{port: 80}]}\n---\n"
				     "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
				     "metadata: {name: bad, namespace: shop}\nspec:\n"
				     "  hosts: [s]\n"
				     "  http: [{route: [{destination: {host: s}, weight: abc}]}]\n"
				     "---\n- not an object\n",
				     &d);

	CHECK_EQ(c->nservices, 1, "the valid object is loaded");
	CHECK_EQ(c->nvses, 0, "the invalid one is not");
	if (CHECK_EQ(c->nrejected, 2, "two rejected: an object and a document")) {
		const struct rejected_obj *r = &c->rejected[0];

		CHECK_STR(r->object, "VirtualService/shop/bad", "named");
		CHECK_EQ(r->pos.line, 6, "where it starts");
		CHECK_EQ(r->err_line, 11, "where its first error is");
		CHECK_STR(r->field, "spec.http[0].route[0].weight", "the field");
		CHECK_STR(r->msg, "must be an integer", "the message");
		CHECK(!r->kept, "nothing kept without an earlier version");
		CHECK(c->rejected[1].object == NULL, "a document that is no object has no name");
		CHECK(!c->rejected[1].unreadable, "but the file was read");
	}
	done(c, &d);
}

/* The agent keeps the last good version of an object that turns invalid, and every object
 * of a file that stops being YAML; an object removed from a valid file goes. */
static void test_retain_last_good(void)
{
	struct diags d = {0};
	struct mesh_config *prev = config_new(), *next = config_new();
	char a[256], b[256];

	prev->keep_sources = next->keep_sources = true;
	snprintf(a, sizeof(a), "%s",
		 put("ra.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
				"metadata: {name: vs}\nspec: {hosts: [s], http: [{route: "
				"[{destination: {host: s}, weight: 1}]}]}\n---\n"
				"apiVersion: v1\nkind: Namespace\nmetadata: {name: gone}\n"));
	snprintf(b, sizeof(b), "%s",
		 put("rb.yaml", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
				"metadata: {name: dr}\nspec: {host: s}\n"));
	config_load_file(prev, a, &d);
	config_load_file(prev, b, &d);
	CHECK_EQ(prev->nsources, 3, "three valid objects kept as sources");
	put("ra.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
		       "metadata: {name: vs}\nspec: {hosts: [s], http: [{route: "
		       "[{destination: {host: s}, weight: -1}]}]}\n");
	put("rb.yaml", "apiVersion: [unclosed\n");
	config_load_file(next, a, &d);
	config_load_file(next, b, &d);
	CHECK_EQ(next->nvses + next->ndrs + next->nnamespaces, 0, "nothing valid in the new files");
	CHECK_EQ(config_retain(next, prev), 2, "two objects put back");
	CHECK_EQ(next->nvses, 1, "the VirtualService's last good version");
	if (next->nvses)
		CHECK_EQ(next->vses[0].routes[0].dests[0].weight, 1, "the old weight");
	CHECK_EQ(next->ndrs, 1, "the unreadable file's DestinationRule");
	CHECK_EQ(next->nnamespaces, 0, "an object removed from a valid file stays removed");
	if (CHECK_EQ(next->nrejected, 2, "both reported")) {
		CHECK(next->rejected[0].kept, "the object: kept");
		CHECK_EQ(next->rejected[0].kept_from.line, 1, "from where it was");
		CHECK(next->rejected[1].kept && next->rejected[1].unreadable, "the file: kept");
	}
	config_free(prev);
	config_free(next);
	diags_free(&d);
}

static void test_duplicate_objects(void)
{
	struct diags d = {0};
	struct mesh_config *c = config_new();
	const char *ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n";

	config_load_file(c, put("a.yaml", ns), &d);
	config_load_file(c,
			 put("b.yaml", "apiVersion: v1\nkind: Namespace\n"
				       "metadata: {name: a, labels: {from: b}}\n"),
			 &d);
	CHECK_EQ(count_errors(&d), 0, "across files: no error (kubectl apply keeps the last)");
	CHECK(has_line(&d, "b.yaml:1: Namespace/a: warning: duplicate object: replaces the one at "
			   "a.yaml:1 (kubectl apply keeps the last)"),
	      "across files: a warning");
	if (CHECK_EQ(c->nnamespaces, 1, "one object"))
		CHECK_STR(kv_get(&c->namespaces[0].labels, "from"), "b", "the last one");
	done(c, &d);
	/* Within one file the later document replaces the earlier, as kubectl apply does. */
	c = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
		 "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {x: z}}\n",
		 &d);
	CHECK_EQ(count_errors(&d), 0, "no error");
	CHECK(has_line(&d, "t.yaml:5: Namespace/a: warning: duplicate object: replaces the one at "
			   "t.yaml:1 (kubectl apply keeps the last)"),
	      "replaced");
	if (CHECK_EQ(c->nnamespaces, 1, "one object"))
		CHECK_STR(kv_get(&c->namespaces[0].labels, "x"), "z", "the later one");
	done(c, &d);
}

static void test_conflicting_virtual_services(void)
{
	struct diags d = {0};
	struct mesh_config *c =
	    load("apiVersion: networking.istio.io/v1\n"
		 "kind: VirtualService\n"
		 "metadata: {name: a}\n"
		 "spec: {hosts: [orders], http: [{route: [{destination: {host: "
		 "orders}}]}]}\n"
		 "---\n"
		 "apiVersion: networking.istio.io/v1\n"
		 "kind: VirtualService\n"
		 "metadata: {name: b}\n"
		 "spec: {hosts: [orders.default.svc.cluster.local], http: [{route: "
		 "[{destination: {host: orders}}]}]}\n",
		 &d);

	CHECK_EQ(count_errors(&d), 0, "both valid (Istio accepts both)");
	CHECK_EQ(c->nvses, 2, "both loaded");
	config_analyze(c, &d);
	CHECK(has_finding(&d, "Error [IST0109] (VirtualService default/b t.yaml:6) The "
			      "VirtualServices default/a,default/b associated with mesh gateway "
			      "define the same host */orders.default.svc.cluster.local which can "
			      "lead to undefined behavior. This can be fixed by merging the "
			      "conflicting VirtualServices into a single resource."),
	      "IST0109 on the second");
	CHECK(has_finding(&d, "Error [IST0109] (VirtualService default/a t.yaml:1) The "
			      "VirtualServices default/a,default/b associated with mesh gateway "
			      "define the same host */orders.default.svc.cluster.local which can "
			      "lead to undefined behavior. This can be fixed by merging the "
			      "conflicting VirtualServices into a single resource."),
	      "and on the first, as Istio reports it");
	done(c, &d);
}

/* ---------------- commands ---------------- */

/* Run a command with stdout and stderr sent to /dev/null (its output is checked through diags
 * above). */
static int quietly(int (*fn)(int, char **), int argc, char **argv)
{
	int out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY), rc;

	fflush(stdout);
	fflush(stderr);
	dup2(null, 1);
	dup2(null, 2);
	rc = fn(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(out, 1);
	dup2(err, 2);
	close(out);
	close(err);
	close(null);
	return rc;
}

static void test_cmd_validate(void)
{
	char good[256], bad[256], *argv[4];

	snprintf(good, sizeof(good), "%s", put("good.yaml", vs_yaml));
	snprintf(bad, sizeof(bad), "%s",
		 put("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {}\n"));
	argv[0] = "validate";
	argv[1] = good;
	CHECK_EQ(quietly(cmd_validate, 2, argv), 0, "valid file: exit 0 despite warnings");
	argv[1] = "-q";
	argv[2] = good;
	argv[3] = bad;
	CHECK_EQ(quietly(cmd_validate, 4, argv), 1, "an error: exit 1");
	argv[1] = tmpdir;
	CHECK_EQ(quietly(cmd_validate, 2, argv), 1, "directories load too");
	CHECK_EQ(quietly(cmd_validate, 1, argv), 2, "usage");
	argv[1] = "-x";
	CHECK_EQ(quietly(cmd_validate, 2, argv), 2, "unknown option");
	argv[1] = "--help";
	CHECK_EQ(quietly(cmd_validate, 2, argv), 0, "validate --help: exit 0");
	argv[0] = "analyze";
	argv[1] = "-f";
	argv[2] =
	    (char *)put("whole.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: orders}\n"
				      "spec: {selector: {app: orders}, ports: [{port: 80}]}\n---\n"
				      "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
				      "metadata: {name: orders}\nspec: {hosts: [orders], http: "
				      "[{route: [{destination: {host: orders}}]}]}\n");
	CHECK_EQ(quietly(cmd_analyze, 3, argv), 0, "analyze: a whole config has no error");
	argv[2] = good;
	CHECK_EQ(quietly(cmd_analyze, 3, argv), 1, "analyze: IST0101 (hosts not loaded) fails");
	argv[1] = "--failure-threshold=Info";
	argv[2] = (char *)put("note.yaml", "apiVersion: security.istio.io/v1\n"
					   "kind: PeerAuthentication\nmetadata: {name: p}\n"
					   "spec: {mtls: {mode: STRICT}}\n");
	CHECK_EQ(quietly(cmd_analyze, 3, argv), 1, "--failure-threshold Info: notes fail");
	argv[1] = "-f";
	CHECK_EQ(quietly(cmd_analyze, 3, argv), 0, "default threshold: notes do not");
	argv[2] = bad;
	CHECK_EQ(quietly(cmd_analyze, 3, argv), 1, "analyze: invalid objects fail");
	CHECK_EQ(quietly(cmd_analyze, 2, argv), 2, "analyze: -f needs a file");
	argv[1] = "-o";
	argv[2] = "xml";
	argv[3] = bad;
	CHECK_EQ(quietly(cmd_analyze, 4, argv), 2, "analyze: -o json|yaml only");
	argv[1] = "-h";
	CHECK_EQ(quietly(cmd_analyze, 2, argv), 0, "analyze -h: exit 0");
	unlink(good);
	unlink(bad);
}

static void test_analyze_notes(void)
{
	struct diags d = {0};
	struct mesh_config *c =
	    load("apiVersion: v1\n"
		 "kind: Service\n"
		 "metadata: {name: orders}\n"
		 "spec: {selector: {app: orders}, ports: [{port: 80}]}\n"
		 "---\n"
		 "apiVersion: apps/v1\n"
		 "kind: Deployment\n"
		 "metadata: {name: orders}\n"
		 "spec:\n"
		 "  replicas: 4\n"
		 "  selector: {matchLabels: {app: orders}}\n"
		 "  template:\n"
		 "    metadata: {labels: {app: orders, version: v1}}\n"
		 "    spec: {containers: [{name: c}]}\n"
		 "---\n"
		 "apiVersion: networking.istio.io/v1\n"
		 "kind: DestinationRule\n"
		 "metadata: {name: orders}\n"
		 "spec:\n"
		 "  host: orders\n"
		 "  trafficPolicy:\n"
		 "    outlierDetection: {consecutive5xxErrors: 3}\n"
		 "  subsets:\n"
		 "  - name: v1\n"
		 "    labels: {version: v1}\n"
		 "    trafficPolicy:\n"
		 "      outlierDetection: {maxEjectionPercent: 25}\n"
		 "---\n"
		 "apiVersion: networking.istio.io/v1\n"
		 "kind: VirtualService\n"
		 "metadata: {name: orders}\n"
		 "spec:\n"
		 "  hosts: [orders]\n"
		 "  http:\n"
		 "  - route:\n"
		 "    - {destination: {host: orders, subset: v1}, weight: 90}\n"
		 "    - {destination: {host: orders, subset: v1}, weight: 10}\n",
		 &d);

	CHECK_EQ(count_errors(&d), 0, "valid");
	CHECK_EQ(config_analyze(c, &d), 2, "two notes");
	CHECK(has_line(&d, "t.yaml:35: VirtualService/default/orders: spec.http[0].route: warning: "
			   "weighted split decided per connection in the kernel for 10.100.138.213 "
			   "port 80: its protocol is not declared (Istio sniffs HTTP there; bpfmesh "
			   "takes the HTTP path only for ports named http, http2, grpc or with that "
			   "appProtocol); Istio splits http routes per request"),
	      "per connection");
	CHECK(has_line(&d, "t.yaml:16: DestinationRule/default/orders: "
			   "spec.trafficPolicy.outlierDetection: warning: outlier "
			   "detection can never eject a host: ejecting 1 of 4 hosts is 25%, above "
			   "maxEjectionPercent 10% (the default)"),
	      "too few hosts for the default 10%");
	done(c, &d);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bpfmesh-config-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_namespace_and_service);
	RUN(test_headless_service);
	RUN(test_deployment_and_pod);
	RUN(test_workload_entry);
	RUN(test_virtual_service);
	RUN(test_destination_rule);
	RUN(test_other_kinds);
	RUN(test_list_and_multidoc);
	RUN(test_json);
	RUN(test_load_dir);
	RUN(test_load_dir_from);
	RUN(test_anchors);
	RUN(test_fqdn);
	RUN(test_kv);
	RUN(test_in_mesh);
	RUN(test_split_file);
	RUN(test_split_file_syntax_error);
	RUN(test_wrong_types);
	RUN(test_negative_and_zero_weights);
	RUN(test_weights_accepted);
	RUN(test_duplicate_hosts);
	RUN(test_missing_required);
	RUN(test_bad_ports);
	RUN(test_bad_load_balancer);
	RUN(test_duplicate_subsets);
	RUN(test_unknown_subset);
	RUN(test_rejected_objects);
	RUN(test_retain_last_good);
	RUN(test_destination_ports);
	RUN(test_unknown_field);
	RUN(test_name_lengths);
	RUN(test_yaml_syntax_error);
	RUN(test_flow_colon);
	RUN(test_duplicate_objects);
	RUN(test_conflicting_virtual_services);
	RUN(test_cmd_validate);
	RUN(test_analyze_notes);
	{
		static const char *const files[] = {"t.yaml",	  "v.json", "s.yaml", "bad.yaml",
						    "piece.yaml", "a.yaml", "b.yaml", NULL};

		for (int i = 0; files[i]; i++)
			unlink(put(files[i], ""));
		rmdir(tmpdir);
	}
	return CHECK_DONE("config");
}
