/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * security.h: Istio's PeerAuthentication and AuthorizationPolicy as they decide L4 traffic to
 * one workload, evaluated over the model of model.h (struct pa_obj / struct ap_obj).
 * Callers: the agent's tunnel (is mTLS required on this port; after the TLS handshake, may
 * this peer identity connect) and the map sync (kernel tables for plaintext traffic: which
 * ports and address prefixes policies name, and the verdict for each). `bpfmesh analyze`
 * warns where L4 evaluation differs from Istio's HTTP-aware one (validate.c).
 *
 * Everything here is a pure function of the loaded configuration; nothing is cached.
 * root_ns is Istio's root namespace (meshConfig.rootNamespace); NULL means "istio-system".
 * enum mtls_mode lives in model.h (the model stores it) and is repeated here for reference:
 *   enum mtls_mode { MTLS_UNSET = 0, MTLS_DISABLE, MTLS_PERMISSIVE, MTLS_STRICT };
 */
#ifndef BM_SECURITY_H
#define BM_SECURITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define SEC_DEFAULT_ROOT_NS "istio-system"

const char *mtls_mode_name(enum mtls_mode m); /* "UNSET","DISABLE","PERMISSIVE","STRICT" */

/*
 * Effective mode of traffic to `port` (the pod's port, i.e. targetPort) of workload w
 * (a Pod/Deployment/WorkloadEntry object: ns + labels). Istio precedence: workload-selector
 * policy in w's namespace > namespace-wide policy (no selector) > mesh-wide (root namespace,
 * no selector) > PERMISSIVE. UNSET inherits from the next wider scope; portLevelMtls (only on
 * selector policies) overrides for that port; several candidates at one scope: oldest wins.
 * A selector policy in the root namespace is ignored, as Istio does. Never returns MTLS_UNSET.
 */
enum mtls_mode sec_mtls_mode(const struct mesh_config *c, const char *root_ns,
			     const struct workload_obj *w, int port);

/* The source of a connection as the L4 path knows it. */
struct sec_peer {
	const char *principal; /* "cluster.local/ns/NS/sa/SA" (SPIFFE ID without spiffe://),
				  NULL when the connection is plaintext */
	const char *ns;	       /* source namespace (from the principal); NULL when plaintext */
	uint8_t ip[16];	       /* source address; IPv4 as v4-mapped ::ffff:a.b.c.d */
	int ip_len;	       /* 128 = one address. Less = evaluate for every address of that
				  prefix at once: an ipBlock matches iff it contains the whole
				  prefix (see sec_policy_prefixes) */
};

enum sec_verdict { SEC_ALLOW = 0, SEC_DENY = 1 };

struct sec_decision {
	enum sec_verdict verdict;
	const struct ap_obj *by;    /* policy that decided: the matching DENY (or CUSTOM) policy,
				       or the matching ALLOW policy; NULL when no policy selects
				       the workload (allow) or when ALLOW policies exist but none
				       matched (deny) */
	const struct ap_obj *audit; /* first AUDIT policy that matched, else NULL */
	const char *reason;	    /* static text for logs: "no policy", "allowed by policy",
				       "denied by policy", "no ALLOW policy matched" */
};

/*
 * Istio's order: CUSTOM -> DENY -> no ALLOW policy selects w: allow -> any ALLOW match:
 * allow -> deny. AUDIT never changes the verdict. Policies apply to w when in the root
 * namespace (mesh-wide; with a selector: matching workloads in all namespaces) or in w's
 * namespace with no selector or a matching one; targetRef policies (gateways, waypoints) never
 * apply to workloads. `spec: {}` (no rules) = ALLOW nothing; `rules: [{}]` = allow all;
 * DENY/AUDIT with no rules match nothing. Inside a rule from/to/when AND, list entries OR,
 * fields AND, values OR; strings exact, prefix `abc*`, suffix `*abc`, `*` (non-empty).
 * principals/namespaces/serviceAccounts need mTLS: they never match a plaintext peer
 * (principal NULL) and their not* forms always match it. serviceAccounts are "ns/sa", or "sa"
 * in the policy's namespace, matched exactly, in any trust domain. HTTP-only fields (hosts,
 * methods, paths, requestPrincipals, and when keys other than source.ip, remote.ip,
 * source.namespace, source.principal, destination.ip, destination.port): in an ALLOW policy
 * the whole rule is dropped, in DENY/AUDIT/CUSTOM only those fields are dropped.
 * remote.ip/remoteIpBlocks = source address at L4. destination.ip matches w's addresses.
 * connection.sni is HTTP-only here. An IPv6 block never matches an IPv4 peer (Envoy compares
 * address families). CUSTOM: we have no ext-authz provider: a CUSTOM policy whose rules match
 * DENIES (fail closed). dport is w's port. Among several matching policies of one action the
 * oldest (creationTimestamp, then namespace/name) is reported.
 */
void sec_authorize(const struct mesh_config *c, const char *root_ns, const struct workload_obj *w,
		   int dport, const struct sec_peer *src, struct sec_decision *d);

/* The first AuthorizationPolicy that applies to w with a rule using HTTP-only fields (it needs
 * the HTTP path to act as written), or NULL. */
const struct ap_obj *sec_http_policy(const struct mesh_config *c, const char *root_ns,
				     const struct workload_obj *w);

/* A request, for the HTTP path's per-request decisions. */
struct sec_http {
	const char *method;
	const char *path; /* without the query string */
	const char *host; /* the authority */
	/* request.headers[name] conditions: the header's value, NULL when absent */
	const char *(*header)(void *arg, const char *name);
	void *arg;
};

/* sec_authorize for one request: every field applies, the HTTP-only ones too (methods, paths,
 * hosts, request.headers[] conditions; requestPrincipals need a JWT, which is not verified
 * here: a positive list never matches). A denied request is answered 403 "RBAC: access
 * denied" by the caller. */
void sec_authorize_http(const struct mesh_config *c, const char *root_ns,
			const struct workload_obj *w, int dport, const struct sec_peer *src,
			const struct sec_http *http, struct sec_decision *d);

/* Does policy p apply to w (its namespace, the root namespace's, its selector)? */
bool sec_policy_applies(const struct ap_obj *p, const char *root_ns, const struct workload_obj *w);

/* Does any AuthorizationPolicy (any action) apply to w? */
bool sec_has_policy(const struct mesh_config *c, const char *root_ns, const struct workload_obj *w);

/*
 * For kernel tables that decide plaintext traffic: the ports named by policies that apply
 * to w (ports, notPorts, destination.port values), deduplicated, sorted; returns count,
 * *out malloc'd (NULL when 0), -1 when out of memory.
 */
int sec_policy_ports(const struct mesh_config *c, const char *root_ns, const struct workload_obj *w,
		     int **out);

struct sec_prefix {
	uint8_t ip[16];
	int len; /* 0..128, v4 in v4-mapped space (96+len) */
};

/*
 * Every address prefix named by policies that apply to w (ipBlocks, notIpBlocks,
 * remoteIpBlocks, notRemoteIpBlocks, source.ip/remote.ip values and notValues), plus ::/0
 * (and ::ffff:0:0/96 when an IPv6 block is named, so that IPv4 peers get their own entry),
 * deduplicated. For any address A, the verdict of sec_authorize with ip=A equals the verdict
 * with the longest prefix in this set that contains A (ip_len = that prefix's len): the
 * caller builds an LPM table from it. Returns count, *out malloc'd; -1 when out of memory.
 */
int sec_policy_prefixes(const struct mesh_config *c, const char *root_ns,
			const struct workload_obj *w, struct sec_prefix **out);

/* "ns/name" of a policy, for logs; returns buf. */
const char *sec_policy_name(const struct ap_obj *p, char *buf, size_t len);

/* Is this `when` key evaluated at L4 (else it is HTTP-only: see sec_authorize)? For analyze. */
bool sec_l4_condition_key(const char *key);

/* Does the rule use any HTTP-only field (requestPrincipals, hosts, methods, paths, their not*
 * forms, HTTP-only when keys)? For analyze. */
bool sec_rule_has_http(const struct ap_rule *r);

#endif /* BM_SECURITY_H */
