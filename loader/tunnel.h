/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tunnel.h: the agent's mTLS tunnel between nodes (HBONE: HTTP/2 CONNECT streams on mutual
 * TLS to port 15008, as ztunnel; HTTP/1.1 CONNECT with peers that do not select h2; see
 * docs/mtls.md). Called by the agent (agent.c):
 *  - outbound (15001 on the node's address, and on its IPv6 one when it has one): the kernel
 *    sends a mesh pod's connect to a remote mesh workload here; the agent finds the real
 *    destination in bm_orig, opens a CONNECT stream on a pooled mutual TLS 1.3 connection to
 *    the destination pod's 15008 (made with the client workload's certificate, the server
 *    proving the destination workload's SPIFFE ID), and relays;
 *  - inbound (15008): verifies the peer's chain and trust domain, applies AuthorizationPolicy
 *    with the peer's identity, connects to the local pod (registering the 4-tuple in
 *    bm_attest so the pod's inbound judge lets it in) and relays plaintext.
 * The client identity is the pod the kernel attested at connect (its cgroup), never the owner
 * of a source address; the listeners carry socket filters (bpf/listen.bpf.c).
 * Workload certificates come from certs.h (the control thread), published to the tunnel with
 * the config in force; open connections keep the certificate they started with.
 * Event-driven: one data thread with one epoll set, non-blocking sockets, no thread per
 * connection; the agent's control thread never touches a tunnel socket.
 */
#ifndef BM_TUNNEL_H
#define BM_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <openssl/x509.h>
#include "datapath.h"
#include "model.h"

struct tunnel_opts {
	const char *node;	  /* agent name, for logs */
	const char *trust_domain; /* cluster.local unless set */
	const char *root_ns;	  /* Istio root namespace, for AuthorizationPolicy */
	const char *node_ip;	  /* IPv4 the listeners bind to */
	const char *node_ip6;	  /* the node's IPv6 address: 15001 there too (NULL: none) */
	const char *cert_source;  /* for the start-up line: where certificates come from */
	long cert_ttl_s;	  /* workload certificate lifetime (bounds session tickets) */
	const struct bm_mapfds *fds;
	int filter_out, filter_hbone; /* listener socket filters (datapath.h), -1 for none */
	bool hold; /* accept nothing until tunnel_release (an upgrade: the earlier agent does) */
	/* --ingress: the gateway workload (gateway.h) the HTTP path's Gateway traffic is carried
	 * as (client pod BM_POD_ID_GATEWAY); NULL: none. The caller's, kept. */
	const struct workload_obj *gateway;
};

struct tunnel;
struct cfgref;
struct idset;

/* Listeners are created in the calling thread's network namespace, with trust (the mesh's
 * anchors, certs_trust()) for both TLS sides. NULL on failure. */
struct tunnel *tunnel_new(const struct tunnel_opts *o, X509_STORE *trust);
/* Start the data thread (it inherits the caller's network namespace). */
int tunnel_start(struct tunnel *t);
/* Stops the data thread, closes every connection. */
void tunnel_free(struct tunnel *t);
/* From the control thread: the config and identities in force (the tunnel takes references;
 * the data thread switches to them between two batches of events). */
void tunnel_publish(struct tunnel *t, struct cfgref *cfg, struct idset *ids);
/*
 * From the HTTP path (l7.c), any thread: carry connection fd (one end of a socketpair) to the
 * pod dst:dst_port on another node, as the client pod src_pod at src_ip, exactly as a captured
 * connect: mutual TLS with that pod's identity, CONNECT. http: the stream is HTTP/1.1 requests
 * the HTTP path already routed (the CONNECT says so, and the destination's agent judges and
 * counts each request, l7_inbound). The tunnel owns fd from here on.
 * 0, or -1 (fd not taken) when out of memory.
 */
int tunnel_adopt(struct tunnel *t, int fd, uint32_t src_pod, const char *src_ip,
		 const uint8_t dst[4], uint16_t dst_port, uint32_t backend_id, bool http);

/*
 * Inbound streams that carry a peer's HTTP path (Bpfmesh-Protocol: http/1.1), for a pod of
 * this node: authenticated here, then handed over as one end of a socketpair (fd) with what
 * the tunnel verified; AuthorizationPolicy is the HTTP path's, per request. fn runs on the
 * tunnel's data thread and owns fd when it returns 0.
 */
struct tunnel_stream {
	uint8_t src_ip[4]; /* the client's address as the tunnel judged it (0 if unknown) */
	uint8_t dst_ip[4];
	uint16_t dst_port;   /* host order */
	char principal[320]; /* the peer certificate's SPIFFE ID without spiffe:// */
	char ns[128];	     /* the peer's namespace */
};
typedef int (*tunnel_http_fn)(void *arg, int fd, const struct tunnel_stream *s);
/* Before tunnel_start. */
void tunnel_set_http(struct tunnel *t, tunnel_http_fn fn, void *arg);

/* Upgrades (handover.h). Its listening sockets (15001, 15008), for the next agent: how many,
 * at most max. Any thread, before tunnel_drain. */
int tunnel_listeners(const struct tunnel *t, int *fds, int max);
/* Stop accepting (the listeners are closed here; the next agent has them), ask HTTP/2 peers
 * for no new streams (GOAWAY, graceful), relay what is open. Any thread. */
void tunnel_drain(struct tunnel *t);
/* Start accepting (after tunnel_opts.hold). Any thread. */
void tunnel_release(struct tunnel *t);
/* Application connections still relayed (both directions; refreshed each second; after
 * tunnel_drain, not 0 before the data thread has counted them with its listeners closed). */
unsigned long tunnel_busy(const struct tunnel *t);

/* A listener in a local pod's network namespace (podnet.h's callbacks; arg is the tunnel):
 * what it accepts is HBONE to that pod only, with that pod's certificate whatever the SNI.
 * The tunnel owns fd once listen returned 0; unlisten closes it. Any thread. */
int tunnel_pod_listen(void *arg, uint32_t pod_id, int fd);
void tunnel_pod_unlisten(void *arg, uint32_t pod_id);

/* Its outbound listener is on the node's IPv6 address too (tunnel_opts.node_ip6). */
bool tunnel_has_ip6(const struct tunnel *t);

/* Prometheus lines for the tunnel's counters (any thread). */
void tunnel_metrics(const struct tunnel *t, FILE *f);

struct metrics_dest_tcp;
#define TUNNEL_MAX_DEST 4096 /* (client, pod, port) triples counted; more are not (logged once) */
/* The TCP connections delivered to local pods, counted as their destination (metrics.h), up
 * to max of them (any thread): how many were written. Bytes are counted as they are relayed,
 * so a long-lived connection's show while it is open. */
int tunnel_dest_counts(struct tunnel *t, struct metrics_dest_tcp *out, int max);

#endif /* BM_TUNNEL_H */
