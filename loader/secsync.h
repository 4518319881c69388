/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * secsync.h: the zero-trust part of the kernel's state, derived from the config in force by
 * the agent after every apply and pod rescan:
 *  - bm_node: this node's address and whether the agent's mTLS tunnel and HTTP path are up;
 *  - bm_backend flags: which backends mesh clients reach through the tunnel (a mesh workload
 *    on another node whose PeerAuthentication for that port is not DISABLE), and which
 *    IPv6 ones they are refused (STRICT on another node while the agent has no IPv6
 *    address to tunnel IPv6 from);
 *  - bm_wl: per remote workload address and port, the same two flags for direct connects;
 *  - bm_inpod: per local pod (and port), STRICT / under-policy flags, judged for the pod a
 *    packet is delivered to (bpf/inbound.h);
 *  - bm_authz: AuthorizationPolicy verdicts for plaintext connects to local workloads, one
 *    entry per (workload, port, attested source pod or none, source prefix), evaluated with
 *    user/lib/security.h;
 *  - bm_peer: the mesh's node addresses, the only sources the mTLS listener takes SYNs from.
 * Every map write is checked: a failed write of this state fails the call loudly.
 */
#ifndef BM_SECSYNC_H
#define BM_SECSYNC_H

#include <stdbool.h>
#include "datapath.h"
#include "model.h"
#include "resolve.h"
#include "sync.h"

struct secsync_opts {
	const char *root_ns;	  /* Istio root namespace (mesh-wide policies) */
	const char *trust_domain; /* for local mesh pods' principals */
	const char *node_ip;	  /* this node's address, NULL if unknown */
	const char *node_ip6;	  /* its IPv6 address the tunnel listens on too, or NULL */
	bool tunnel;		  /* the agent's tunnel is up: tunnel remote mesh traffic */
	bool l7;		  /* the agent's HTTP path listens on node_ip:BM_PORT_HTTP */
};

struct secsync;

struct secsync *secsync_new(const struct bm_mapfds *fds, const struct secsync_opts *o);
void secsync_free(struct secsync *ss);

/* Backend tunnel / IPv6-refusal flags for the backends of t (after sync_apply put t in
 * force). 0, or -errno when a write failed (logged). */
int secsync_backends(struct secsync *ss, struct sync *s, const struct mesh_config *c,
		     const struct rs_table *t);

/* bm_node, bm_wl, bm_inpod, bm_authz and bm_peer for config c and the local workloads
 * (distinct pods found in the node's cgroups). Skips the work when neither changed since the
 * last call. 0, or -errno when a map could not be written (logged; retried next call). */
int secsync_workloads(struct secsync *ss, const struct mesh_config *c, uint64_t config_gen,
		      const struct workload_obj *const *local, int nlocal);

/* Is w a workload on another node (its status.hostIP is not ours)? */
bool secsync_remote(const struct secsync *ss, const struct workload_obj *w);
/* Does a mesh client reach w:port through the tunnel (a remote mesh pod, mTLS not DISABLE)? */
bool secsync_tunnelled(const struct secsync *ss, const struct mesh_config *c,
		       const struct workload_obj *w, int port);
/* The HTTP path stops (agent shutdown): bm_node says so at once, so the kernel path serves
 * its ports until the next agent listens. 0 or -errno. */
int secsync_stop_l7(struct secsync *ss);

#endif /* BM_SECSYNC_H */
