/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xdpgw.h: the agent's side of the gateway's XDP early drop (bpf/xdp_gw.bpf.c), with
 * --ingress: attached to the interface that holds the node's address (native XDP, generic
 * where the driver has none), its maps written from the config in force:
 *  - the gateway's ports (the Gateways this agent serves);
 *  - DENY AuthorizationPolicies on the gateway whose rules are all source blocks only
 *    (from.source ipBlocks / remoteIpBlocks, nothing else): those prefixes are dropped;
 *  - when every ALLOW policy on the gateway is of that kind, only their prefixes pass (an
 *    ALLOW policy with any other rule leaves the judging to the HTTP path);
 *  - --ingress-syn-rate: SYNs per second per source (a token bucket as deep as the rate).
 * IPv4. Policies of other shapes are judged on the HTTP path as before (nothing is lost: XDP
 * only drops what that path would refuse anyway, earlier).
 */
#ifndef BM_XDPGW_H_LOADER
#define BM_XDPGW_H_LOADER

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "datapath.h"
#include "model.h"

struct xdpgw;
struct l7_table;

/* Attach in the calling thread's network namespace; NULL (logged) when it cannot. */
struct xdpgw *xdpgw_new(const struct dp_xdp_fds *fds, const char *node_ip, unsigned syn_rate);
/* From the control thread, with the config c in force and the ports the gateway listens on
 * (only those: a Gateway port it could not bind is another program's, never filtered).
 * Attaches at the first call, its maps written. */
void xdpgw_sync(struct xdpgw *x, const struct mesh_config *c, const uint16_t *ports, int nports,
		const struct workload_obj *gw, const char *root_ns);
/* Prometheus lines (bpfmesh_xdp_*). */
void xdpgw_metrics(const struct xdpgw *x, FILE *f);
/* detach: take the program off the interface (not when an upgrade's next agent has put its
 * own there: only ours is ever removed). */
void xdpgw_free(struct xdpgw *x, bool detach);

#endif
