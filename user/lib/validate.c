// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * validate.c: whether one object is valid, by the rules Istio and Kubernetes apply, so that
 * `bpfmesh validate` rejects what `kubectl apply` / istiod would reject and accepts what they
 * accept. config.c calls validate_object() for every object it reads (see validate.h).
 *
 * Each object is checked in two passes: the schema pass (vcore.c over the tables of
 * vschemas.c) checks types, ranges, enum values and unknown fields the way the API server's
 * CRD schemas do; only when that is clean does the rules pass of its kind (vrules_*.c) apply
 * Istio's own validation, so the rules can trust the types. Then the notices: what bpfmesh
 * accepts but does not act on is said, never ignored silently.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "telemetry.h"
#include "resolve.h"
#include "vcore.h"

/* ---------------- fields accepted but not acted on yet ---------------- */

static void note_unenforced(struct vctx *v, const struct ynode *map, const char *path,
			    const char *const *fields)
{
	char p[PATHMAX];

	for (; *fields; fields++)
		if (has(map, *fields))
			vctx_warn(v, g(map, *fields), pjoin(p, path, *fields), "not yet enforced");
}

/*
 * tcp routes are decided by the kernel when a connection is made, first match wins
 * (resolve.c, kroutes_of): `port`, `destinationSubnets`, `sourceLabels` and `sourceNamespace`
 * are enforced. What a tcp match can say beyond them is not: `sourceSubnet` (a pod chooses its
 * own address, so bpfmesh never routes by it) and a match's own `gateways` (not read: the match
 * is evaluated for mesh traffic even when its gateways leave mesh out, where Istio would skip
 * it). (http routes: per request on the agent's HTTP path, or their port/source matches in the
 * kernel; where a port stays in the kernel, resolve.c says so per port: rs_path_notes.)
 */
static void note_tcp_matches(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *routes = g(spec, "tcp");
	char p[PATHMAX], path[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(routes); i++) {
		const struct ynode *ms = g(routes->items[i], "match");

		for (int k = 0; k < count(ms); k++) {
			const struct ynode *m = ms->items[k], *gws = g(m, "gateways");
			bool mesh = !count(gws);

			pidx(p, pjoin(q, pidx(path, "spec.tcp", i), "match"), k);
			if (has(m, "sourceSubnet"))
				vctx_warn(
				    v, g(m, "sourceSubnet"), pjoin(q, p, "sourceSubnet"),
				    "not enforced: a pod can choose its source address, so "
				    "bpfmesh routes by the client's workload only (sourceLabels, "
				    "sourceNamespace); this match holds whatever the source "
				    "address");
			for (int n = 0; n < count(gws); n++)
				mesh |= gws->items[n]->str && !strcmp(gws->items[n]->str, "mesh");
			if (!mesh)
				vctx_warn(
				    v, gws, pjoin(q, p, "gateways"),
				    "not enforced: the kernel evaluates this match for mesh "
				    "traffic too (Istio applies it only on the gateways named)");
		}
	}
}

/* A tls route match's own `gateways` is not read: the route holds on a PASSTHROUGH gateway and
 * for mesh traffic wherever its VirtualService applies. */
static void note_tls_matches(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *routes = g(spec, "tls");
	char p[PATHMAX], path[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(routes); i++) {
		const struct ynode *ms = g(routes->items[i], "match");

		for (int k = 0; k < count(ms); k++)
			if (count(g(ms->items[k], "gateways"))) {
				pidx(p, pjoin(q, pidx(path, "spec.tls", i), "match"), k);
				vctx_warn(v, g(ms->items[k], "gateways"), pjoin(q, p, "gateways"),
					  "not enforced: this match holds wherever the "
					  "VirtualService applies (its spec.gateways: mesh and the "
					  "Gateways named there)");
			}
	}
}

static void vs_notices(struct vctx *v, const struct ynode *spec)
{
	/* http routes are enforced per request on the HTTP path (resolve.c says per port
	 * where one stays in the kernel) */
	note_tcp_matches(v, spec);
	note_tls_matches(v, spec);
	/* bound to Gateways: their http routes, tls routes (PASSTHROUGH servers) and tcp routes
	 * (TCP servers) are served by the agents that serve the Gateway (--ingress) */
	note_unenforced(v, spec, "spec", (const char *const[]){"exportTo", NULL});
}

static bool is_service_ref(const struct ynode *ref)
{
	const char *k = ynode_str(g(ref, "kind"));

	return k && !strcmp(k, "Service"); /* GAMMA */
}

/* The Gateway API: what the conversion (gwapi.c) does not carry over yet. */
static void gwapi_notices(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *ls = g(spec, "listeners"), *ps = g(spec, "parentRefs"),
			   *rules = g(spec, "rules");
	char p[PATHMAX], q[PATHMAX];

	if (ynode_str(g(spec, "gatewayClassName")) &&
	    strcmp(ynode_str(g(spec, "gatewayClassName")), "istio"))
		vctx_warn(v, g(spec, "gatewayClassName"), "spec.gatewayClassName",
			  "not served: bpfmesh serves the Gateways of class istio");
	for (int i = 0; i < count(ls); i++) {
		const struct ynode *l = ls->items[i], *tls = g(l, "tls");
		const char *from = ynode_str(g(g(g(l, "allowedRoutes"), "namespaces"), "from"));
		const char *proto = ynode_str(g(l, "protocol")), *mode = ynode_str(g(tls, "mode"));

		pidx(p, "spec.listeners", i);
		if (from && !strcmp(from, "Selector"))
			vctx_warn(v, g(l, "allowedRoutes"), pjoin(q, p, "allowedRoutes"),
				  "not yet enforced: a namespace selector is read as Same (routes "
				  "of the Gateway's namespace only)");
		if (proto && strcmp(proto, "HTTP") && strcmp(proto, "TCP") &&
		    !(!strcmp(proto, "HTTPS") && (!mode || !strcmp(mode, "Terminate"))) &&
		    !(!strcmp(proto, "TLS") && mode && !strcmp(mode, "Passthrough")))
			vctx_warn(
			    v, g(l, "protocol"), pjoin(q, p, "protocol"),
			    "not yet served: bpfmesh serves HTTP and TCP listeners, HTTPS ones "
			    "that terminate TLS and TLS ones with mode Passthrough");
	}
	for (int i = 0; i < count(ps); i++) {
		static const char *const unread[] = {"sectionName", "port"};

		for (int k = 0; k < 2; k++)
			if (has(ps->items[i], unread[k]))
				vctx_warn(v, g(ps->items[i], unread[k]),
					  pjoin(q, pidx(p, "spec.parentRefs", i), unread[k]),
					  is_service_ref(ps->items[i])
					      ? "not yet enforced: the route applies to every port "
						"of the Service"
					      : "not yet enforced: the route attaches to every "
						"listener of the Gateway");
	}
	for (int i = 0; i < count(rules); i++) {
		const struct ynode *refs = g(rules->items[i], "backendRefs");

		for (int k = 0; k < count(refs); k++)
			if (has(refs->items[k], "namespace"))
				vctx_warn(
				    v, g(refs->items[k], "namespace"),
				    pjoin(q, pidx(p, "spec.rules", i), "backendRefs"),
				    "another namespace's Service needs a ReferenceGrant, which "
				    "bpfmesh does not read yet: such a rule answers 500");
	}
}

/* Gateway: served by agents started with --ingress whose labels its selector holds for, on
 * the node's address, for its HTTP, HTTP2 and GRPC servers; what else a server says is not. */
static void gw_notices(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *servers = g(spec, "servers");
	char p[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(servers); i++) {
		const struct ynode *sv = servers->items[i], *port = g(sv, "port"),
				   *tls = g(sv, "tls");
		const char *proto = ynode_str(g(port, "protocol"));
		const char *mode = tls ? ynode_str(g(tls, "mode")) : NULL;
		bool served, term;
		enum rs_proto rp =
		    rs_gw_proto(proto, mode, has(tls, "credentialName"), &served, &term);
		bool http = served && !term && rp != RS_TLS && rp != RS_TCP;
		bool https = proto && !strcasecmp(proto, "HTTPS") && tls &&
			     (!mode || !strcmp(mode, "SIMPLE") || !strcmp(mode, "MUTUAL"));

		pidx(p, "spec.servers", i);
		if ((served || https) && rs_port_reserved((unsigned)ymap_int(port, "number", 0)))
			vctx_warn(v, g(port, "number"), pjoin(q, p, "port.number"),
				  "not served: the mesh keeps this port for itself (Istio's "
				  "15000-15090)");
		if (!served && !https)
			vctx_warn(
			    v, g(port, "protocol"), pjoin(q, p, "port.protocol"),
			    "not yet served: bpfmesh's gateway serves HTTP, HTTP2 and GRPC "
			    "servers, HTTPS with tls.mode SIMPLE or MUTUAL, TLS or HTTPS with "
			    "PASSTHROUGH, and TCP (no listener is opened for %s%s%s)",
			    proto ? proto : "this protocol", mode ? " " : "", mode ? mode : "");
		if (https && !has(tls, "credentialName"))
			vctx_warn(v, tls, pjoin(q, p, "tls"),
				  "not yet served: bpfmesh reads the certificate from the Secret "
				  "credentialName names (serverCertificate files are not read)");
		if (https)
			for (int k = 0; k < tls->n; k++) {
				static const char *const used[] = {"mode",
								   "credentialName",
								   "minProtocolVersion",
								   "maxProtocolVersion",
								   "cipherSuites",
								   "httpsRedirect",
								   NULL};
				bool known = false;

				for (int u = 0; used[u] && !known; u++)
					known = !strcmp(tls->pairs[k].key, used[u]);
				if (!known)
					vctx_warn(v, tls->pairs[k].val, pjoin(q, p, "tls"),
						  "%s: not yet enforced", tls->pairs[k].key);
			}
		if (has(sv, "bind"))
			vctx_warn(v, g(sv, "bind"), pjoin(q, p, "bind"),
				  "not enforced: the gateway listens on its node's address");
		if (http && tls) {
			for (int k = 0; k < tls->n; k++)
				if (strcmp(tls->pairs[k].key, "httpsRedirect"))
					vctx_warn(v, tls->pairs[k].val, pjoin(q, p, "tls"),
						  "%s: not used on a plaintext %s server (only "
						  "httpsRedirect is)",
						  tls->pairs[k].key, proto);
		}
	}
}

/* DestinationRule tls: the mesh's own mTLS does not depend on it (docs/mtls.md); say what the
 * mode given means here. */
static void note_tls(struct vctx *v, const struct ynode *tls, const char *path)
{
	const char *mode = ynode_str(g(tls, "mode"));

	if (!tls)
		return;
	if (!mode || !strcmp(mode, "ISTIO_MUTUAL"))
		vctx_warn(v, tls, path,
			  "no effect needed: connections to mesh workloads whose "
			  "PeerAuthentication is not DISABLE use the mesh's mutual TLS anyway (as "
			  "Istio's automatic mTLS does)");
	else if (!strcmp(mode, "DISABLE"))
		vctx_warn(v, tls, path,
			  "not enforced: connections to mesh workloads whose PeerAuthentication is "
			  "not DISABLE still use the mesh's mutual TLS (Istio would send "
			  "plaintext, which STRICT refuses)");
	else
		vctx_warn(v, tls, path,
			  "not enforced: bpfmesh originates no %s TLS; connections leave as the "
			  "application sent them (mesh workloads still get the mesh's mutual TLS)",
			  mode);
}

static void policy_notices(struct vctx *v, const struct ynode *tp, const char *path)
{
	static const char *const tp_f[] = {"portLevelSettings", "tunnel", "proxyProtocol",
					   "retryBudget", NULL};
	static const char *const lb_f[] = {"localityLbSetting", "warmupDurationSecs", "warmup",
					   NULL};
	/* consistentHash by header, cookie, query parameter and source IP is enforced (the
	 * header, cookie and query forms per request on the HTTP path) */
	static const char *const ch_f[] = {"ringHash", "maglev", "minimumRingSize", NULL};
	/* connectionPool.http: maxRequestsPerConnection, idleTimeout, http1MaxPendingRequests,
	 * http2MaxRequests, maxRetries and h2UpgradePolicy are enforced on the HTTP path */
	static const char *const http_f[] = {"useClientProtocol", "maxConcurrentStreams", NULL};
	static const char *const tcp_f[] = {"tcpKeepalive", "maxConnectionDuration", "idleTimeout",
					    NULL};
	static const char *const od_f[] = {"splitExternalLocalOriginErrors",
					   "consecutiveLocalOriginFailures", NULL};
	const struct ynode *lb = g(tp, "loadBalancer"), *cp = g(tp, "connectionPool");
	char p[PATHMAX], q[PATHMAX];

	note_unenforced(v, tp, path, tp_f);
	note_tls(v, g(tp, "tls"), pjoin(p, path, "tls"));
	note_unenforced(v, lb, pjoin(p, path, "loadBalancer"), lb_f);
	note_unenforced(v, g(lb, "consistentHash"), pjoin(q, p, "consistentHash"), ch_f);
	note_unenforced(v, g(cp, "http"), pjoin(q, pjoin(p, path, "connectionPool"), "http"),
			http_f);
	note_unenforced(v, g(cp, "tcp"), pjoin(q, p, "tcp"), tcp_f);
	note_unenforced(v, g(tp, "outlierDetection"), pjoin(p, path, "outlierDetection"), od_f);
}

static void dr_notices(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *subsets = g(spec, "subsets");
	char p[PATHMAX], q[PATHMAX];

	policy_notices(v, g(spec, "trafficPolicy"), "spec.trafficPolicy");
	for (int i = 0; i < count(subsets); i++)
		policy_notices(v, g(subsets->items[i], "trafficPolicy"),
			       pjoin(q, pidx(p, "spec.subsets", i), "trafficPolicy"));
	note_unenforced(v, spec, "spec",
			(const char *const[]){"exportTo", "workloadSelector", NULL});
}

/* Secret: data values are base64 (the API server refuses what is not), stringData strings. */
static void secret_rules(struct vctx *v, const struct ynode *root)
{
	const struct ynode *data = g(root, "data");
	char p[PATHMAX];

	if (data && !ynode_is_map(data)) {
		vctx_err(v, data, "data", "want a map of base64 strings");
		return;
	}
	for (int i = 0; data && i < data->n; i++) {
		const char *s = ynode_str(data->pairs[i].val);
		size_t n = 0, bad = 0;

		for (const char *c = s; c && *c; c++) {
			if (isspace((unsigned char)*c))
				continue;
			bad += !(isalnum((unsigned char)*c) || *c == '+' || *c == '/' || *c == '=');
			n++;
		}
		snprintf(p, sizeof(p), "data.%s", data->pairs[i].key);
		if (!s || bad || n % 4)
			vctx_err(v, data->pairs[i].val, p, "illegal base64 data");
	}
}

/* ---------------- one object ---------------- */

static bool spec_required(enum obj_kind kind)
{
	switch (kind) {
	case OBJ_SERVICE:
	case OBJ_DEPLOYMENT:
	case OBJ_POD:
	case OBJ_WORKLOADENTRY:
	case OBJ_VIRTUALSERVICE:
	case OBJ_DESTINATIONRULE:
	case OBJ_GATEWAY:
	case OBJ_SERVICEENTRY:
		return true;
	default:
		return false;
	}
}

static void kind_rules(struct vctx *v, enum obj_kind kind, const struct ynode *root,
		       const struct ynode *spec)
{
	switch (kind) {
	case OBJ_SERVICE:
		svc_rules(v, spec);
		break;
	case OBJ_DEPLOYMENT:
		deploy_rules(v, spec);
		break;
	case OBJ_POD:
		pod_rules(v, root);
		break;
	case OBJ_WORKLOADENTRY:
		we_rules(v, spec);
		break;
	case OBJ_VIRTUALSERVICE:
		vs_rules(v, spec);
		break;
	case OBJ_DESTINATIONRULE:
		dr_rules(v, spec);
		break;
	case OBJ_GATEWAY:
		gw_rules(v, root, spec);
		break;
	case OBJ_SERVICEENTRY:
		se_rules(v, spec);
		break;
	case OBJ_PEERAUTHENTICATION:
		pa_rules(v, spec);
		break;
	case OBJ_AUTHORIZATIONPOLICY:
		ap_rules(v, spec ? spec : root);
		break;
	case OBJ_SECRET:
		secret_rules(v, root);
		break;
	default:
		break;
	}
}

static void ef_warn(void *arg, const struct ynode *at, const char *field, const char *msg)
{
	vctx_warn(arg, at, field, "%s", msg);
}

/* The ConfigMap istio: MeshConfig, whose tracing bpfmesh reads (the rest is reported). */
static void mesh_notices(struct vctx *v, const struct ynode *data)
{
	static const char *const read[] = {"enableTracing", "defaultProviders",
					   "extensionProviders", "defaultConfig"};
	const char *text = ymap_str(data, "mesh");
	const struct ynode *mesh = ymap_get(data, "mesh"), *root, *eps;
	struct yfile f = {0};
	struct yerror ye = {0};

	if (!text) {
		vctx_warn(v, NULL, "data", "no key mesh: nothing read (MeshConfig is data.mesh)");
		return;
	}
	if (yfile_load_mem(text, strlen(text), &f, &ye) ||
	    (f.ndocs && f.docs[0].root && !ynode_is_map(f.docs[0].root))) {
		vctx_warn(v, mesh, "data.mesh", "not MeshConfig YAML (ignored): line %d: %s",
			  ye.line, ye.msg[0] ? ye.msg : "not a map");
		yfile_free(&f);
		return;
	}
	root = f.ndocs ? f.docs[0].root : NULL;
	for (int i = 0; ynode_is_map(root) && i < root->n; i++) {
		bool known = false;

		for (size_t k = 0; k < sizeof(read) / sizeof(read[0]); k++)
			known |= !strcmp(root->pairs[i].key, read[k]);
		if (!known)
			vctx_warn(v, mesh, "data.mesh", "%s: not enforced by bpfmesh (ignored)",
				  root->pairs[i].key);
	}
	eps = ymap_get(root, "extensionProviders");
	for (int i = 0; ynode_is_seq(eps) && i < eps->n; i++) {
		const struct ynode *e = eps->items[i], *ot = ymap_get(e, "opentelemetry");
		const char *n = ymap_str(e, "name");

		if (ot && !ymap_get(ot, "http"))
			vctx_warn(
			    v, mesh, "data.mesh",
			    "extensionProviders %s: opentelemetry over gRPC: not supported by "
			    "bpfmesh (give http: {path: /v1/traces})",
			    n ? n : "?");
		else if (ot && !ymap_str(ymap_get(ot, "http"), "path"))
			vctx_warn(v, mesh, "data.mesh",
				  "extensionProviders %s: opentelemetry http.path is required (as "
				  "Istio requires it): spans go to /",
				  n ? n : "?");
		else if (!ot && !ymap_get(e, "zipkin"))
			for (int k = 0; ynode_is_map(e) && k < e->n; k++)
				if (strcmp(e->pairs[k].key, "name")) {
					vctx_warn(
					    v, mesh, "data.mesh",
					    "extensionProviders %s: %s: not supported by bpfmesh "
					    "(tracing: zipkin and opentelemetry http)",
					    n ? n : "?", e->pairs[k].key);
					break;
				}
	}
	yfile_free(&f);
}

/* A ConfigMap: ratelimit-config is read (its .yaml keys, each one envoyproxy/ratelimit
 * config); a key that is not such a config is reported, as the service would refuse it. */
static void cm_notices(struct vctx *v, const struct ynode *root)
{
	const char *name = ymap_str(ymap_get(root, "metadata"), "name");
	const struct ynode *data = ymap_get(root, "data");
	int used = 0;

	if (name && !strcmp(name, MESH_CONFIGMAP)) {
		mesh_notices(v, data);
		return;
	}
	if (!name || strcmp(name, RL_CONFIGMAP)) {
		vctx_warn(v, NULL, NULL,
			  "ignored (bpfmesh reads the ConfigMaps " RL_CONFIGMAP
			  " and " MESH_CONFIGMAP " only)");
		return;
	}
	for (int i = 0; ynode_is_map(data) && i < data->n; i++) {
		const char *k = data->pairs[i].key, *t = ynode_text(data->pairs[i].val);
		size_t kl = strlen(k);
		struct rl_domain d;
		char err[256], field[300];

		snprintf(field, sizeof(field), "data.%s", k);
		if (kl < 5 || strcmp(k + kl - 5, ".yaml")) {
			vctx_warn(v, data->pairs[i].val, field,
				  "ignored (a rate-limit config is a key ending in .yaml)");
			continue;
		}
		if (!t || rl_domain_parse(t, strlen(t), k, &d, err, sizeof(err))) {
			vctx_warn(v, data->pairs[i].val, field,
				  "not a rate-limit config (ignored): %s",
				  t ? err : "not a string");
			continue;
		}
		rl_domain_free(&d);
		used++;
	}
	if (!used)
		vctx_warn(v, NULL, "data", "no rate-limit config in it (a key ending in .yaml)");
}

/* Warnings about what bpfmesh accepts but does not act on (SEMANTICS.md: say so clearly). */
static void kind_notices(struct vctx *v, enum obj_kind kind, const struct ynode *root,
			 const struct ynode *spec)
{
	switch (kind) {
	case OBJ_VIRTUALSERVICE:
		vs_notices(v, spec);
		break;
	case OBJ_DESTINATIONRULE:
		dr_notices(v, spec);
		break;
	case OBJ_GATEWAY:
		gw_notices(v, spec);
		break;
	case OBJ_SERVICEENTRY:
		vctx_warn(v, NULL, NULL,
			  "not yet enforced (checked by Istio's rules, then ignored)");
		break;
	case OBJ_ISTIO_UNCHECKED:
		vctx_warn(v, NULL, NULL, "neither validated nor enforced by bpfmesh");
		break;
	case OBJ_GWAPI:
		gwapi_notices(v, spec);
		break;
	case OBJ_ENVOYFILTER:
		ef_notices(spec, ef_warn, v);
		break;
	case OBJ_CONFIGMAP:
		cm_notices(v, root);
		break;
	case OBJ_TELEMETRY:
		tel_notices(spec, ef_warn, v);
		break;
	case OBJ_GWAPI_UNSERVED:
		vctx_warn(v, NULL, NULL,
			  "not yet enforced (bpfmesh serves the Gateway API's Gateway, "
			  "HTTPRoute, TCPRoute and TLSRoute)");
		break;
	case OBJ_K8S_UNUSED:
		vctx_warn(v, NULL, NULL, "ignored (bpfmesh does not use this kind)");
		break;
	default:
		break;
	}
}

int validate_object(struct vctx *v, enum obj_kind kind, const struct ynode *root)
{
	int before = v->nerr;
	const struct ynode *spec;

	check_obj(v, root, "", schema_root(kind));
	if (v->nerr > before)
		return v->nerr - before;
	check_meta(v, kind, root);
	spec = g(root, "spec");
	if (!spec && spec_required(kind))
		vctx_err(v, root, "spec", "required");
	else
		kind_rules(v, kind, root, spec);
	if (v->nerr == before)
		kind_notices(v, kind, root, spec);
	return v->nerr - before;
}
