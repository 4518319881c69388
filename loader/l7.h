/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * l7.h: the agent's HTTP path (Istio ambient's waypoint, in the node agent). The kernel sends
 * a mesh client's connect to a service port whose config needs requests (BM_SVC_F_L7) to
 * node_ip:15006; here every request is routed by the VirtualService's http routes (matches,
 * weights per request, rewrite, redirect, direct response, header operations, mirrors,
 * faults, retries, timeouts), load balanced per request by the DestinationRule, judged by
 * AuthorizationPolicy's HTTP fields when its destination pod is on this node, counted in
 * Istio's HTTP metrics, and sent to the pod directly (this node, or another without mTLS) or
 * through the mTLS tunnel (tunnel.h) to the destination node's agent, whose HTTP path then
 * judges and counts it as the destination (l7_inbound).
 *
 * Threads: `workers` event loops (default 2, as ztunnel), each with its own listener
 * (SO_REUSEPORT, with the kernel-capture socket filter), connections, upstream pools, timers
 * and counters. The agent's control thread publishes the config in force (l7_publish) and
 * renders metrics (l7_metrics); neither runs on a worker's loop.
 */
#ifndef BM_L7_H
#define BM_L7_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "datapath.h"
#include "tunnel.h"

struct cfgref;
struct l7_table;
struct tunnel;

struct l7_opts {
	const char *node;    /* agent name, for logs */
	const char *node_ip; /* IPv4 the listeners bind to */
	int port;	     /* BM_PORT_HTTP unless set */
	int workers;	     /* event-loop threads, default 2 */
	const struct bm_mapfds *fds;
	int filter_prog;	  /* listener socket filter (bm_listen_out), -1 for none */
	const char *trust_domain; /* mTLS principals; NULL when the agent runs no tunnel */
	const char *root_ns;	  /* Istio root namespace, for AuthorizationPolicy */
	struct tunnel *tun;	  /* NULL: remote endpoints are dialed directly */
	const char *access_log;	  /* file of request events (observe --http), NULL: none */
	bool hold;		  /* accept nothing until l7_release (an upgrade) */
	/* --ingress: the gateway workload (gateway.h) this agent sends Gateway traffic as;
	 * NULL: it serves no Gateway. The caller's, kept for the engine's life. */
	const struct workload_obj *gateway;
	/* global rate limits: Redis "host:port" (NULL: none, every check fails and
	 * failure_mode_deny decides) and envoyproxy/ratelimit config files */
	const char *ratelimit_redis;
	/* Redis and trace collectors are reached from this network namespace (fd; the lab's
	 * host), -1: the workers' */
	int home_netns;
	/* --tracing-endpoint URL (NULL: only what Telemetry/MeshConfig name), its protocol
	 * (enum tel_proto), --tracing-sampling percent (-1: Istio's default, 1%) */
	const char *tracing_endpoint;
	int tracing_proto;
	double tracing_sampling;
	char *const *ratelimit_files;
	int nratelimit_files;
};

struct l7;

/* Listeners in the calling thread's network namespace; NULL on failure (logged). */
struct l7 *l7_new(const struct l7_opts *o);
/* Start the workers (they inherit the caller's network namespace). */
int l7_start(struct l7 *l);
/* Stop the workers (connections stay until l7_free); the tunnel may still hand streams over,
 * which l7_free closes. Stop the engine, then the tunnel, then free the engine. */
void l7_stop(struct l7 *l);
void l7_free(struct l7 *l);

/* From the control thread: the config in force and its HTTP table (either may be NULL). The
 * engine takes references; each worker switches between two batches of events, and requests
 * already routed finish with what they were routed by. */
void l7_publish(struct l7 *l, struct cfgref *cfg, struct l7_table *t);

/* A plaintext stream the peer agent's HTTP path sent through the tunnel for a pod of this
 * node (tunnel_set_http's callback: arg is the struct l7). The engine owns fd when it returns 0. */
int l7_inbound(void *arg, int fd, const struct tunnel_stream *s);

/* Upgrades (handover.h): its listening sockets (one per worker), how many, at most max; stop
 * accepting (the next agent has them) and answer with `connection: close` from here on;
 * the client connections open (any thread). */
int l7_listeners(const struct l7 *l, int *fds, int max);
void l7_drain(struct l7 *l);
void l7_release(struct l7 *l); /* start accepting after l7_opts.hold */
/* The next agent owns the maps: no more outlier writes (bm_health) from here. */
void l7_give_maps(struct l7 *l);
unsigned long l7_busy(const struct l7 *l);

/* The Gateway ports the engine listens on now (at most max). */
int l7_gw_ports(struct l7 *l, uint16_t *ports, int max);

/* Prometheus lines: Istio's HTTP series and the engine's own counters (any thread). */
void l7_metrics(struct l7 *l, FILE *f);

#endif /* BM_L7_H */
