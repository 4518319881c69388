/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * gateway.h: the agent as Istio's ingress gateway (--ingress). The agent serves the Gateways
 * whose selector its --ingress-labels satisfy on the node's address (l7.c, l7table.h), and
 * sends what they route into the mesh as the gateway workload: Istio's
 * istio-system/istio-ingressgateway, with the identity
 * spiffe://<trust domain>/ns/istio-system/sa/istio-ingressgateway-service-account, so STRICT
 * pods accept it and AuthorizationPolicy can name it. That workload is not a pod of the
 * config: it has pod id BM_POD_ID_GATEWAY wherever the HTTP path and the tunnel name a client,
 * and the workload object built here (agent.c owns it).
 */
#ifndef BM_GATEWAY_H
#define BM_GATEWAY_H

#include <stdbool.h>
#include "model.h"

/* Parse "k=v,k=v" (--ingress-labels) into l; -1 with err set when malformed. */
int gw_parse_labels(const char *s, struct kvlist *l, char *err, size_t errlen);
/* The gateway workload with labels l (copied); gw_workload_free frees what it holds. */
void gw_workload_init(struct workload_obj *w, const struct kvlist *l);
void gw_workload_free(struct workload_obj *w);
/* A SPIFFE ID without its scheme ("td/ns/NS/sa/SA") is the gateway's. */
bool gw_principal(const char *principal);

#endif /* BM_GATEWAY_H */
