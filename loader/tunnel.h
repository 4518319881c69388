/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tunnel.h: the agent's mTLS tunnel between nodes (Istio's HBONE shape, HTTP CONNECT on port
 * 15008, with HTTP/1.1 framing: see docs/mtls.md for why). Called by the agent (agent.c):
 *  - outbound (15001 on the node address): the kernel sends a mesh pod's connect to a remote
 *    mesh workload here; the agent finds the real destination in bm_orig, opens mutual TLS 1.3
 *    to the destination node's agent with the client workload's certificate, checks that the
 *    server presents the destination workload's SPIFFE ID, asks for the destination with
 *    CONNECT, and relays;
 *  - inbound (15008): verifies the peer's chain and trust domain, applies AuthorizationPolicy
 *    with the peer's identity, connects to the local pod (registering the 4-tuple in
 *    bm_attest so the pod's inbound judge lets it in) and relays plaintext.
 * The client identity is the pod the kernel attested at connect (its cgroup), never the owner
 * of a source address; the listeners carry socket filters (bpf/listen.bpf.c).
 * Workload certificates are issued by the agent from the mesh CA (`bpfmesh ca init`) or read
 * from cert-manager / SPIRE files, and renewed at half life; open connections keep theirs.
 * Event-driven: one epoll set, non-blocking sockets, no thread per connection.
 */
#ifndef BM_TUNNEL_H
#define BM_TUNNEL_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include "datapath.h"
#include "model.h"

struct tunnel_opts {
	const char *node;	  /* agent name, for logs */
	const char *ca_dir;	  /* mesh CA to issue workload certs from, or NULL */
	const char *certs_dir;	  /* bring your own: DIR/<ns>/<sa>/ in cert-manager/SPIRE layout */
	const char *trust_domain; /* cluster.local unless set */
	const char *root_ns;	  /* Istio root namespace, for AuthorizationPolicy */
	const char *node_ip;	  /* IPv4 the listeners bind to */
	const char *run_dir;	  /* certs/ below it gets the public certs in force */
	long cert_ttl_s;	  /* workload certificate lifetime */
	const struct bm_mapfds *fds;
	int filter_out, filter_hbone; /* listener socket filters (datapath.h), -1 for none */
};

struct tunnel;

/* Listeners are created in the calling thread's network namespace. NULL on failure. */
struct tunnel *tunnel_new(const struct tunnel_opts *o);
void tunnel_free(struct tunnel *t);
/* An fd that polls readable when tunnel_run has work. */
int tunnel_fd(const struct tunnel *t);
void tunnel_run(struct tunnel *t);
/* Certificate renewal; call about once a second. now: wall clock. */
void tunnel_tick(struct tunnel *t, time_t now);
/* The config in force (borrowed until the next call). */
void tunnel_set_config(struct tunnel *t, const struct mesh_config *c);
/* Prometheus lines for the tunnel's counters. */
void tunnel_metrics(const struct tunnel *t, FILE *f);

#endif /* BM_TUNNEL_H */
