/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * metrics.h: Prometheus text for one node (Istio's TCP metrics and bpfmesh_* ones), rendered
 * from its pinned maps and the config in force. Used by the agent's /metrics endpoint.
 */
#ifndef BM_METRICS_H
#define BM_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "datapath.h"
#include "model.h"
#include "resolve.h"

/* The stable id of a pod in bm_pod and bm_traffic: a hash of namespace/name, never 0. */
uint32_t metrics_pod_id(const char *ns, const char *name);

/* Istio's standard labels as the TCP series carry them, for the HTTP path's series (l7.c):
 * one label (escaped), the source's (reporter first), the destination's. td: the trust domain
 * when the traffic is mutual TLS (principals are SPIFFE IDs), else NULL. */
void metrics_put_label(FILE *out, const char *name, const char *val, bool first);
void metrics_source_labels(FILE *out, const char *reporter, const struct workload_obj *src,
			   const char *td);
void metrics_dest_labels(FILE *out, const char *svc_ns, const char *svc_name,
			 const struct workload_obj *dst, const char *td);

/* source_cluster/destination_cluster of every series (default "Kubernetes", as Istio). */
void metrics_set_cluster_id(const char *id);
/* That cluster id ("Kubernetes" unless set), and Istio's canonical service name and revision
 * of w, whose workload name is wl (what Kiali groups by; HBONE's baggage carries them). */
const char *metrics_cluster_id(void);
void metrics_canonical(const struct workload_obj *w, const char *wl, const char **name,
		       const char **rev);
/* istio_build{component="proxy",tag=...}: the version the binary was built as. */
void metrics_set_build_tag(const char *tag);

/*
 * A destination-side TCP series the agent counts itself (reporter="destination"): tunnelled
 * connections it delivered to a local pod (tunnel.c), by client address, pod address and port.
 * Bytes as Istio means them: sent = to the client (the response), received = from it.
 */
struct metrics_dest_tcp {
	uint8_t src[16], dst[16]; /* IPv4 in the first 4 bytes; src all 0: unknown */
	uint8_t family;		  /* BM_FAM_* */
	uint16_t port;		  /* host order */
	uint64_t opened, closed, sent, received;
};

/* The /metrics page. trust_domain: the mesh's when the agent runs the mTLS tunnel (tunnelled
 * series get principals and connection_security_policy="mutual_tls"), else NULL. */
int metrics_render(const struct bm_mapfds *f, const struct mesh_config *c, const char *pin_dir,
		   const char *trust_domain, const struct metrics_dest_tcp *dest, int ndest,
		   FILE *out);

#endif /* BM_METRICS_H */
