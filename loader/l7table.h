/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * l7table.h: what the agent's HTTP path routes by: for every service port on the HTTP path
 * (resolve.h rs_service.l7_reason), its VirtualService's http routes in order with compiled
 * matches, each destination a cluster (a subset's endpoints with their load balancing, pool
 * and outlier policy), and the service's every-endpoint cluster. Built on the control thread
 * from the config in force and the resolved table (l7_table_build), immutable afterwards, and
 * handed to the HTTP workers (l7.h), which take a reference each; the config it points into is
 * kept alive by it (a cfgref). Per-endpoint counters of requests in flight are the only
 * mutable part (atomics, shared by the workers).
 */
#ifndef BM_L7TABLE_H
#define BM_L7TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include "htab.h"
#include "model.h"
#include "regex.h"
#include "resolve.h"

struct cfgref;
struct l7_cb;

struct l7_ep {
	uint8_t addr[4];
	uint16_t port;	     /* host order */
	uint32_t backend_id; /* the kernel's id (shared outlier state in bm_health), 0 if none */
	const struct workload_obj *wl;
	bool local;  /* a pod of this node */
	bool tunnel; /* a remote mesh workload behind mTLS: through the agent's tunnel */
	int active;  /* requests in flight (atomic): LEAST_REQUEST */
};

struct l7_cluster {
	const char *name; /* the subset's, or "(all)" */
	const struct svc_obj *svc;
	const char *fqdn; /* the service's host, for metrics and logs */
	uint32_t lb;	  /* enum bm_lb */
	struct rs_policy pol;
	const struct traffic_policy
	    *tp; /* the subset's own policy if it has one, else the rule's */
	const struct traffic_policy *rule_tp; /* the DestinationRule's, or NULL */
	enum rs_proto proto;		      /* of the destination port */
	struct l7_ep *eps;
	int n;
	unsigned rr;	  /* round-robin cursor (atomic) */
	struct l7_cb *cb; /* its circuit breakers (the agent's, l7.c); NULL: none */
};

/* One HTTPMatchRequest with its regexes compiled. */
struct l7_match {
	const struct http_match *m;
	const char *vs_ns;	 /* its VirtualService's namespace (the match's gateways) */
	const struct gw_obj *gw; /* the Gateway it is evaluated for, NULL: mesh traffic */
	struct bm_regex *uri, *scheme, *method, *authority;
	struct bm_regex **headers, **without,
	    **query; /* parallel to m's lists, NULL if not regex */
};

struct l7_dest {
	struct l7_cluster *cl;
	uint32_t weight;
	const struct route_dest *rd; /* its header operations */
};

struct l7_route {
	const struct vs_obj *vs; /* where it is written */
	const struct vs_route *r;
	const struct http_route_spec *h;
	const struct http_route_spec *ph; /* the delegating root route's, or NULL */
	char path[64];			  /* "spec.http[2]" (of the delegate for delegated ones) */
	struct l7_match *ms, *pms;	  /* its matches, and the root route's (both must hold) */
	int nms, npms;
	struct l7_dest *dests;
	int ndests;
	uint32_t total; /* sum of weights */
	struct l7_cluster **mirrors;
	int nmirrors;
	struct bm_regex *rewrite_re; /* uriRegexRewrite.match */
};

struct l7_svc {
	uint8_t vip[4];
	uint16_t port; /* host order */
	const struct svc_obj *svc;
	const char *fqdn;
	const struct vs_obj *vs; /* NULL: no VirtualService (every endpoint) */
	enum rs_proto proto;
	struct l7_route *routes;
	int nroutes;
	struct l7_cluster *all;
	char reason[96];
};

/* A virtual host of a gateway port: a request whose host (port stripped) matches domain, best
 * match first (Envoy's order: exact, longest suffix wildcard, "*"), takes its routes. */
struct l7_vhost {
	char *domain;
	const struct gw_obj *gw;    /* the Gateway whose server made it */
	const struct gw_server *sv; /* that server (tls.httpsRedirect) */
	struct l7_svc s;	    /* its routes (s.vs: the first VirtualService) */
};

/* A port this agent serves Gateways on (every server there of every Gateway it serves). */
struct l7_gwport {
	uint16_t port;
	enum rs_proto proto;
	struct l7_vhost *vh;
	int nvh;
	bool tls;	    /* HTTPS, terminated here: its servers' contexts follow */
	struct gwtls *tlsv; /* gwtls.h, one per server, in config order */
	int ntls;
};

struct l7_table {
	int refs; /* atomic */
	struct cfgref *cfg;
	const struct mesh_config *c;
	struct l7_svc *svcs;
	int nsvcs;
	struct l7_cluster *clusters; /* one per subset of the resolved table */
	int nclusters;
	struct htab by_vip; /* (vip, port) -> index into svcs */
	struct l7_gwport *gwports; /* the Gateways this agent serves, by port */
	int ngwports;
};

/* What the table needs to know of the node: which workloads are its own and which are behind
 * the tunnel (loader/secsync.c knows), and the kernel's backend ids. */
struct l7_env {
	bool (*local)(void *arg, const struct workload_obj *w);
	bool (*tunnel)(void *arg, const struct workload_obj *w, int port);
	uint32_t (*backend_id)(void *arg, const struct rs_backend *b);
	void *arg;
	/* the agent's gateway labels (--ingress-labels): it serves every Gateway whose selector
	 * they satisfy; NULL: no Gateway (an agent without --ingress) */
	const struct kvlist *ingress;
};

/* Build from the resolved table t of cfg's config (t only read here). NULL when no port is on
 * the HTTP path, or out of memory. The table holds a reference to cfg. */
struct l7_table *l7_table_build(struct cfgref *cfg, const struct rs_table *t,
				const struct l7_env *env);
struct l7_table *l7_table_get(struct l7_table *t);
void l7_table_put(struct l7_table *t);
const struct l7_svc *l7_table_find(const struct l7_table *t, const uint8_t vip[4], uint16_t port);
/* Gateways: the port's servers (NULL: none there), and the virtual host of a request's host
 * header (authority, any ":port" ignored) on it, NULL: none (404 NR); on an HTTPS port only
 * those of the server the connection's SNI chose (only; NULL: every server's). */
const struct l7_gwport *l7_table_gwport(const struct l7_table *t, uint16_t port);
const struct l7_vhost *l7_table_vhost(const struct l7_gwport *g, const char *authority,
				      const struct gw_server *only);

#endif /* BM_L7TABLE_H */
