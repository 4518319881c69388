/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * resolve.h: mesh config -> the service table the kernel needs (service addresses, weighted
 * subsets, backends). Pure: no maps, no I/O, so it is unit-tested directly. Callers: the
 * agent's map sync (loader/sync.c), the lab (service addresses for /etc/hosts), analyze.
 */
#ifndef BM_RESOLVE_H
#define BM_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>
#include "model.h"
#include "bpfmesh.h"

struct rs_backend {
	uint8_t addr[16];	       /* network order, IPv4 in the first 4 bytes */
	uint8_t family;		       /* BM_FAM_V4 / BM_FAM_V6 */
	uint16_t port;		       /* host order */
	const struct workload_obj *wl; /* the pod or WorkloadEntry behind it */
};

/* The DestinationRule policy in force for a subset (Istio merges per section: a subset's
 * outlierDetection or connectionPool replaces the rule-level one). Defaults are Istio's. */
struct rs_policy {
	bool outlier;		     /* outlierDetection present: without it Istio ejects nothing */
	uint32_t consec_5xx;	     /* 0 = off; default 5 */
	uint32_t consec_gw;	     /* 0 = off (default) */
	uint64_t interval_ms;	     /* default 10s */
	uint64_t base_ejection_ms;   /* default 30s */
	uint32_t max_ejection_pct;   /* default 10 */
	uint32_t min_health_pct;     /* default 0: panic mode off */
	uint32_t max_conns;	     /* connectionPool.tcp.maxConnections; 0 = unlimited */
	uint32_t connect_timeout_ms; /* default 10s */
};

struct rs_subset {
	char *name;  /* subset name, or "(all)" */
	uint32_t lb; /* enum bm_lb */
	struct rs_policy policy;
	/* where the policy comes from (the HTTP path reads the rest of it): NULL when none */
	const struct dr_obj *dr;
	const struct dr_subset *ds;
	const struct svc_obj *svc;   /* the service whose endpoints these are (NULL: none) */
	const struct svc_port *port; /* and its port */
	int *backends;		     /* indexes into rs_table.backends */
	int n;
};

struct rs_dest {
	int subset; /* index into rs_table.subsets */
	uint32_t weight;
};

/*
 * One route the kernel tries for a service port (bm_rlist), in the VirtualService's order:
 * a route some match of which can hold on this port and service address (`port`,
 * `destinationSubnets`; an http match's request fields never hold in the kernel). any_src: it
 * holds for every mesh client (no match, or a match without sourceLabels/sourceNamespace);
 * otherwise it holds for the pods whose bit is set in rs_service.podbits.
 */
struct rs_kroute {
	int route; /* index into vs->routes */
	bool any_src;
	struct rs_dest dests[BM_MAX_ROUTE_DESTS];
	int ndests;
};

/* A mesh pod of the config for which some routes of a port hold by source: bit i = kroutes[i]
 * (sourceLabels and sourceNamespace are facts of the pod, evaluated here once). */
struct rs_podbits {
	uint32_t pod_id; /* config_pod_id(): what bm_pod gives the kernel for its cgroups */
	uint32_t bits;
};

/* A destination of an http route on the HTTP path (resolve_l7): its subset, weight, and the
 * route destination it comes from (its header operations). */
struct rs_l7dest {
	int subset;
	uint32_t weight;
	const struct route_dest *rd;
};

/* One http route as the HTTP path evaluates it, in the VirtualService's order. */
struct rs_l7route {
	const struct vs_obj *vs;       /* where the route is written (a delegate, for delegated) */
	int route;		       /* index into vs->routes */
	const struct vs_route *parent; /* the root route that delegated here, or NULL */
	struct rs_l7dest *dests;
	int ndests;
	int *mirrors; /* subsets, parallel to the route's http->mirrors */
	int nmirrors;
};

/* A service port's protocol, by Istio's rules: its name (`http`, `http-*`, `http2`, `grpc`,
 * ...) or appProtocol. */
enum rs_proto { RS_TCP = 0, RS_HTTP, RS_HTTP2, RS_GRPC, RS_TLS /* tls, https: routed by SNI */ };

struct rs_service {
	const struct svc_obj *svc;
	char *fqdn;
	int port_index; /* into svc->ports */
	uint8_t addr[16];
	uint8_t family;
	uint16_t port;	 /* host order */
	uint8_t proto;	 /* IPPROTO_TCP / IPPROTO_UDP */
	uint32_t svc_id; /* stable: hash of the fqdn */
	int all_subset;	 /* index into rs_table.subsets */
	const struct vs_obj *vs; /* the VirtualService in force, if any */
	/* The kernel's routes for mesh clients, first match wins (none holds: every endpoint).
	 * Ends at the first route that holds for every client: later ones are unreachable. */
	struct rs_kroute *kroutes;
	int nkroutes;
	struct rs_podbits *podbits; /* mesh pods with some bit set, by pod id */
	int npodbits;
	enum rs_proto http; /* the port's protocol as Istio reads its name/appProtocol */
	/* Why this port needs the agent's HTTP path ("" when it does not): only an HTTP port
	 * can; see rs_l7_reason(). */
	char l7_reason[96];
	struct rs_l7route *l7routes; /* IPv4 ports on the HTTP path: every http route */
	int nl7routes;
};

/*
 * Gateways (Istio's Gateway kind). resolve() does not know which node serves which Gateway
 * (that is the agent's --ingress-labels against spec.selector): it resolves every server of
 * every Gateway, and the agent keeps the ones it serves. One rs_gwhost is one of Envoy's
 * virtual hosts on that server: a domain (a host of a VirtualService bound to the Gateway,
 * narrowed by the server's hosts, Istio's pickMatchingGatewayHosts) and the http routes of
 * every VirtualService bound there with that host, in config order (Istio merges them).
 */
struct rs_gwhost {
	char *domain;		   /* lower case: "a.example.com", "*.example.com" or "*" */
	const struct vs_obj *vs;   /* the first VirtualService of the domain */
	const struct vs_obj *last; /* the last one whose routes were added */
	struct rs_l7route *routes;
	int nroutes;
};

struct rs_gwserver {
	const struct gw_obj *gw;
	int server;	     /* index into gw->servers */
	enum rs_proto proto; /* the server's protocol (HTTP, HTTP2, GRPC: routed per request) */
	bool served;	     /* a protocol and TLS mode bpfmesh serves (rs_gw_proto) */
	bool tls;	     /* HTTPS terminated here (credentialName) */
	struct rs_gwhost *hosts;
	int nhosts;
};

/* A port the mesh keeps for itself (Istio's 15000-15090 set: the agent's listeners, its
 * metrics and health ports...): no Gateway server is served on it. */
bool rs_port_reserved(unsigned port);
/* How the gateway serves a server of this protocol and tls.mode (credential: it names a
 * credentialName): the protocol it routes by, whether it serves it at all (HTTP, HTTP2,
 * GRPC; HTTPS SIMPLE/MUTUAL with a credential, terminated: tls; TLS/HTTPS PASSTHROUGH by SNI;
 * opaque TCP, MONGO, MYSQL, REDIS by the tcp routes), one rule for resolve, validate and the
 * lab. */
enum rs_proto rs_gw_proto(const char *protocol, const char *tls_mode, bool credential, bool *served,
			  bool *tls);

/* A VirtualService's `gateways` entry ref (as written in namespace vs_ns) names Gateway
 * gw_ns/gw_name: "name" (the VirtualService's namespace), "ns/name", or the legacy
 * "name.ns.svc.cluster.local". "mesh" names none. */
bool rs_gw_ref(const char *ref, const char *vs_ns, const char *gw_ns, const char *gw_name);
/* The domain two host patterns share (Istio's host.Name matching both ways: the more
 * specific of the two), heap; NULL when they do not intersect. */
char *rs_host_intersect(const char *a, const char *b);
/* Envoy's virtual host domain match for a request's host (port stripped, lower case): 0 no
 * match, else a score (exact beats the longest suffix wildcard beats "*"). */
int rs_domain_score(const char *domain, const char *host);

struct rs_index; /* private to resolve.c: lookups built once per resolve() */

struct rs_table {
	struct rs_index *ix;
	struct rs_service *services;
	int nservices;
	struct rs_subset *subsets;
	int nsubsets;
	struct rs_backend *backends;
	int nbackends;
	struct rs_gwserver *gwservers; /* every server of every Gateway, in config order */
	int ngwservers;
};

/*
 * Build the table. Services without a clusterIP get a stable address from 10.96.0.0/12 (hash
 * of namespace/name, probing in name order), so every agent and the lab agree without an API
 * server. A route destination that names a missing host, port or subset keeps its weight with
 * no backends (refused at connect, as Istio answers 503); that and destinations beyond
 * BM_MAX_ROUTE_DESTS go to d as warnings. Returns the number of errors added (none today);
 * t is filled either way and must be freed.
 */
int resolve(const struct mesh_config *c, struct rs_table *t, struct diags *d);
void rs_free(struct rs_table *t);

/* Per service port, what its http routes do there, into d (resolve() adds them; analyze
 * calls it on its own table): BM0011, a route's L7 field not enforced because the port stays
 * in the kernel (and why); BM0001, a weighted http route split per connection (kernel,
 * Warning) or per request (the HTTP path, Info). Returns how many. */
int rs_path_notes(const struct rs_table *t, struct diags *d);

/* The DestinationRule in force for a host (exact beats wildcard, the service's namespace
 * first, then load order), and a subset of it merged as Istio merges the rules of one host in
 * one namespace (the first definition of a name wins); NULL when there is none. */
const struct dr_obj *rs_find_dr(const struct mesh_config *c, const char *fqdn, const char *svc_ns);
const struct dr_subset *rs_find_subset(const struct mesh_config *c, const struct dr_obj *dr,
				       const char *name);

/* Effective policy of subset `sub` (may be NULL) of DestinationRule `dr` (may be NULL). */
void rs_policy_of(const struct dr_obj *dr, const struct dr_subset *sub, struct rs_policy *out);

/* The address a Service gets (first cluster IP, or the allocated one), as text. */
int resolve_service_vip(const struct mesh_config *c, const struct svc_obj *s, int family, char *buf,
			size_t len);

enum rs_proto rs_port_proto(const struct svc_port *p);

/* For `bpfmesh services`: which routes of the VirtualService are in force and which are not,
 * "shop/reviews spec.http[1]; not in force: spec.http[0]", "shop/db: first match of
 * spec.tcp[0],spec.tcp[2]; not in force: spec.tcp[1]" ("" without a VirtualService). */
void rs_route_text(const struct rs_service *rs, char *buf, size_t len);

/* One kernel route of rs: its path and whom it holds for, "spec.tcp[0] (sourceLabels
 * {app: a} or sourceNamespace b)" / "spec.tcp[1] (every mesh client)". */
void rs_kroute_text(const struct rs_service *rs, int k, char *buf, size_t len);

/* The bits of kroutes that hold for pod pod_id by source (0 for a pod without any). */
uint32_t rs_pod_bits(const struct rs_service *rs, uint32_t pod_id);

uint32_t rs_hash32(const char *s);
const char *rs_lb_name(uint32_t lb);
int rs_parse_addr(const char *s, uint8_t addr[16], uint8_t *family);
void rs_format_addr(const uint8_t addr[16], uint8_t family, char *buf, size_t len);

#endif /* BM_RESOLVE_H */
