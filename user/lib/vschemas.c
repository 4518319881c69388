// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * vschemas.c: the schema of every kind bpfmesh checks, as tables (the fields, their types,
 * ranges and enum values, and whether an unknown field is warned about), after the API server's CRD
 * schemas for Istio's kinds and the fields bpfmesh reads of Kubernetes' kinds. The schema pass
 * in vcore.c walks them; validate.c picks the root one per kind (schema_root).
 */
#include <stdint.h>

#include "vcore.h"

/* ---------------- schemas: shared pieces ---------------- */

static const char *const lb_names[] = {"UNSPECIFIED", "LEAST_CONN",    "RANDOM", "PASSTHROUGH",
				       "ROUND_ROBIN", "LEAST_REQUEST", NULL};
static const char *const tls_modes[] = {"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", NULL};
static const char *const h2_policies[] = {"DEFAULT", "DO_NOT_UPGRADE", "UPGRADE", NULL};
static const char *const mtls_modes[] = {"UNSET", "DISABLE", "PERMISSIVE", "STRICT", NULL};
static const char *const authz_actions[] = {"ALLOW", "DENY", "AUDIT", "CUSTOM", NULL};
static const char *const se_locations[] = {"MESH_EXTERNAL", "MESH_INTERNAL", NULL};
static const char *const se_resolutions[] = {"NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", NULL};
static const char *const k8s_protocols[] = {"TCP", "UDP", "SCTP", NULL};
static const char *const svc_types[] = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
					NULL};
static const char *const derive_ports[] = {"FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT", NULL};
static const char *const cors_preflight[] = {"UNSPECIFIED", "FORWARD", "IGNORE", NULL};
static const char *const pp_versions[] = {"V1", "V2", NULL};

SCHEMA(meta_s, U_IGNORE, FS("name"), FS("namespace"), FMS("labels"), FMS("annotations"));
SCHEMA(percent_s, U_WARN, FN("value"));
SCHEMA(port_sel_s, U_WARN, FIR("number", PORT));
SCHEMA(destination_s, U_WARN, FS("host"), FS("subset"), FO("port", port_sel_s));
SCHEMA(wl_selector_s, U_WARN, FMS("matchLabels"));

/* ---------------- schemas: VirtualService ---------------- */

SCHEMA(strmatch_s, U_WARN, FS("exact"), FS("prefix"), FS("regex"));
SCHEMA(http_match_s, U_WARN, FS("name"), FO("uri", strmatch_s), FO("scheme", strmatch_s),
       FO("method", strmatch_s), FO("authority", strmatch_s), FMO("headers", strmatch_s),
       FIR("port", PORT), FMS("sourceLabels"), FLS("gateways"), FMO("queryParams", strmatch_s),
       FB("ignoreUriCase"), FMO("withoutHeaders", strmatch_s), FS("sourceNamespace"),
       FS("statPrefix"));
SCHEMA(header_ops_s, U_WARN, FMS("set"), FMS("add"), FLS("remove"));
SCHEMA(headers_s, U_WARN, FO("request", header_ops_s), FO("response", header_ops_s));
SCHEMA(http_dest_s, U_WARN, FO("destination", destination_s), FIR("weight", I32),
       FO("headers", headers_s));
SCHEMA(route_dest_s, U_WARN, FO("destination", destination_s), FIR("weight", I32));
SCHEMA(retries_s, U_WARN, FIR("attempts", I32), FD("perTryTimeout"), FS("retryOn"),
       FB("retryRemoteLocalities"), FB("retryIgnorePreviousHosts"), FD("backoff"));
SCHEMA(delay_s, U_WARN, FD("fixedDelay"), FD("exponentialDelay"), FO("percentage", percent_s),
       FIR("percent", I32));
SCHEMA(abort_s, U_WARN, FIR("httpStatus", I32), FS("grpcStatus"), FS("http2Error"),
       FO("percentage", percent_s));
SCHEMA(fault_s, U_WARN, FO("delay", delay_s), FO("abort", abort_s));
SCHEMA(redirect_s, U_WARN, FS("uri"), FS("authority"), FIR("port", PORT),
       FE("derivePort", derive_ports), FS("scheme"), FIR("redirectCode", U32));
SCHEMA(regex_rewrite_s, U_WARN, FS("match"), FS("rewrite"));
SCHEMA(rewrite_s, U_WARN, FS("uri"), FS("authority"), FO("uriRegexRewrite", regex_rewrite_s));
SCHEMA(body_s, U_WARN, FS("string"), FS("bytes"));
SCHEMA(direct_s, U_WARN, FIR("status", U32), FO("body", body_s));
SCHEMA(delegate_s, U_WARN, FS("name"), FS("namespace"));
SCHEMA(mirror_s, U_WARN, FO("destination", destination_s), FO("percentage", percent_s));
SCHEMA(cors_s, U_WARN, FLO("allowOrigins", strmatch_s), FLS("allowOrigin"), FLS("allowMethods"),
       FLS("allowHeaders"), FLS("exposeHeaders"), FD("maxAge"), FB("allowCredentials"),
       FE("unmatchedPreflights", cors_preflight));
SCHEMA(http_route_s, U_WARN, FS("name"), FLO("match", http_match_s), FLO("route", http_dest_s),
       FO("redirect", redirect_s), FO("directResponse", direct_s), FO("delegate", delegate_s),
       FO("rewrite", rewrite_s), FDA("timeout"), FO("retries", retries_s), FO("fault", fault_s),
       FO("mirror", destination_s), FLO("mirrors", mirror_s), FIR("mirrorPercent", U32),
       FIR("mirror_percent", U32), FO("mirrorPercentage", percent_s), FO("corsPolicy", cors_s),
       FO("headers", headers_s));
SCHEMA(tls_match_s, U_WARN, FLS("sniHosts"), FLS("destinationSubnets"), FIR("port", PORT),
       FMS("sourceLabels"), FLS("gateways"), FS("sourceNamespace"));
SCHEMA(l4_match_s, U_WARN, FLS("destinationSubnets"), FIR("port", PORT), FS("sourceSubnet"),
       FMS("sourceLabels"), FLS("gateways"), FS("sourceNamespace"));
SCHEMA(tls_route_s, U_WARN, FLO("match", tls_match_s), FLO("route", route_dest_s));
SCHEMA(tcp_route_s, U_WARN, FLO("match", l4_match_s), FLO("route", route_dest_s));
SCHEMA(vs_spec_s, U_WARN, FLS("hosts"), FLS("gateways"), FLO("http", http_route_s),
       FLO("tls", tls_route_s), FLO("tcp", tcp_route_s), FLS("exportTo"));

/* ---------------- schemas: DestinationRule ---------------- */

SCHEMA(cookie_s, U_WARN, FS("name"), FS("path"), FDA("ttl"), FANY("attributes"));
SCHEMA(ring_hash_s, U_WARN, FIR("minimumRingSize", U32));
SCHEMA(maglev_s, U_WARN, FIR("tableSize", U32));
SCHEMA(chash_s, U_WARN, FS("httpHeaderName"), FO("httpCookie", cookie_s), FB("useSourceIp"),
       FS("httpQueryParameterName"), FO("ringHash", ring_hash_s), FO("maglev", maglev_s),
       FIR("minimumRingSize", U32));
SCHEMA(warmup_s, U_WARN, FD("duration"), FN("minimumPercent"), FN("aggression"));
SCHEMA(lb_s, U_WARN, FE("simple", lb_names), FO("consistentHash", chash_s),
       FAM("localityLbSetting"), FD("warmupDurationSecs"), FO("warmup", warmup_s));
SCHEMA(keepalive_s, U_WARN, FIR("probes", U32), FD("time"), FD("interval"));
SCHEMA(tcp_pool_s, U_WARN, FIR("maxConnections", I32), FD("connectTimeout"),
       FO("tcpKeepalive", keepalive_s), FD("maxConnectionDuration"), FD("idleTimeout"));
SCHEMA(h2_keepalive_s, U_WARN, FD("interval"), FD("timeout"));
SCHEMA(http_pool_s, U_WARN, FIR("http1MaxPendingRequests", I32), FIR("http2MaxRequests", I32),
       FIR("maxRequestsPerConnection", I32), FIR("maxRetries", I32), FD("idleTimeout"),
       FE("h2UpgradePolicy", h2_policies), FB("useClientProtocol"),
       FIR("maxConcurrentStreams", I32), FO("http2KeepAlive", h2_keepalive_s));
SCHEMA(pool_s, U_WARN, FO("tcp", tcp_pool_s), FO("http", http_pool_s));
SCHEMA(outlier_s, U_WARN, FIR("consecutiveErrors", I32), FB("splitExternalLocalOriginErrors"),
       FIR("consecutiveLocalOriginFailures", U32), FIR("consecutiveGatewayErrors", U32),
       FIR("consecutive5xxErrors", U32), FD("interval"), FD("baseEjectionTime"),
       FIR("maxEjectionPercent", I32), FIR("minHealthPercent", I32));
SCHEMA(client_tls_s, U_WARN, FE("mode", tls_modes), FS("clientCertificate"), FS("privateKey"),
       FS("caCertificates"), FS("credentialName"), FLS("subjectAltNames"), FS("sni"),
       FB("insecureSkipVerify"), FS("caCrl"));
SCHEMA(port_policy_s, U_WARN, FO("port", port_sel_s), FO("loadBalancer", lb_s),
       FO("connectionPool", pool_s), FO("outlierDetection", outlier_s), FO("tls", client_tls_s));
SCHEMA(tunnel_s, U_WARN, FS("protocol"), FS("targetHost"), FIR("targetPort", PORT));
SCHEMA(proxy_proto_s, U_WARN, FE("version", pp_versions));
SCHEMA(policy_s, U_WARN, FO("loadBalancer", lb_s), FO("connectionPool", pool_s),
       FO("outlierDetection", outlier_s), FO("tls", client_tls_s),
       FLO("portLevelSettings", port_policy_s), FO("tunnel", tunnel_s),
       FO("proxyProtocol", proxy_proto_s), FAM("retryBudget"));
SCHEMA(subset_s, U_WARN, FS("name"), FMS("labels"), FO("trafficPolicy", policy_s));
SCHEMA(dr_spec_s, U_WARN, FS("host"), FO("trafficPolicy", policy_s), FLO("subsets", subset_s),
       FLS("exportTo"), FO("workloadSelector", wl_selector_s));

/* ---------------- schemas: other Istio kinds ---------------- */

SCHEMA(we_spec_s, U_WARN, FS("address"), FMI("ports", PORT), FMS("labels"), FS("network"),
       FS("locality"), FIR("weight", U32), FS("serviceAccount"));
SCHEMA(se_port_s, U_WARN, FIR("number", PORT), FS("protocol"), FS("name"), FIR("targetPort", PORT));
SCHEMA(se_selector_s, U_WARN, FMS("labels"));
SCHEMA(se_spec_s, U_WARN, FLS("hosts"), FLS("addresses"), FLO("ports", se_port_s),
       FE("location", se_locations), FE("resolution", se_resolutions), FLO("endpoints", we_spec_s),
       FO("workloadSelector", se_selector_s), FLS("exportTo"), FLS("subjectAltNames"));
SCHEMA(server_tls_s, U_WARN, FB("httpsRedirect"), FS("mode"), FS("serverCertificate"),
       FS("privateKey"), FS("caCertificates"), FS("caCrl"), FS("credentialName"),
       FLS("credentialNames"), FLS("subjectAltNames"), FLS("verifyCertificateSpki"),
       FLS("verifyCertificateHash"), FS("minProtocolVersion"), FS("maxProtocolVersion"),
       FLS("cipherSuites"), FANY("tlsCertificates"));
SCHEMA(server_s, U_WARN, FO("port", se_port_s), FS("bind"), FLS("hosts"), FO("tls", server_tls_s),
       FS("name"), FS("defaultEndpoint"));
SCHEMA(gw_spec_s, U_WARN, FMS("selector"), FLO("servers", server_s));
SCHEMA(mtls_s, U_WARN, FE("mode", mtls_modes));
SCHEMA(pa_spec_s, U_WARN, FO("selector", wl_selector_s), FO("mtls", mtls_s),
       FMO("portLevelMtls", mtls_s));
SCHEMA(source_s, U_WARN, FLS("principals"), FLS("notPrincipals"), FLS("requestPrincipals"),
       FLS("notRequestPrincipals"), FLS("namespaces"), FLS("notNamespaces"), FLS("ipBlocks"),
       FLS("notIpBlocks"), FLS("remoteIpBlocks"), FLS("notRemoteIpBlocks"), FLS("serviceAccounts"),
       FLS("notServiceAccounts"), FLS("trustDomains"), FLS("notTrustDomains"));
SCHEMA(from_s, U_WARN, FO("source", source_s));
SCHEMA(operation_s, U_WARN, FLS("hosts"), FLS("notHosts"), FLS("ports"), FLS("notPorts"),
       FLS("methods"), FLS("notMethods"), FLS("paths"), FLS("notPaths"));
SCHEMA(to_s, U_WARN, FO("operation", operation_s));
SCHEMA(condition_s, U_WARN, FS("key"), FLS("values"), FLS("notValues"));
SCHEMA(rule_s, U_WARN, FLO("from", from_s), FLO("to", to_s), FLO("when", condition_s));
SCHEMA(provider_s, U_WARN, FS("name"));
SCHEMA(ap_spec_s, U_WARN, FO("selector", wl_selector_s), FAM("targetRef"), FANY("targetRefs"),
       FLO("rules", rule_s), FE("action", authz_actions), FO("provider", provider_s));

/* ---------------- schemas: Kubernetes kinds (only the fields bpfmesh reads) ---------------- */

SCHEMA(svc_port_s, U_IGNORE, FS("name"), FIR("port", PORT), FIS("targetPort", PORT),
       FE("protocol", k8s_protocols), FS("appProtocol"), FIR("nodePort", PORT));
SCHEMA(svc_spec_s, U_IGNORE, FMS("selector"), FLO("ports", svc_port_s), FS("clusterIP"),
       FLS("clusterIPs"), FE("type", svc_types), FS("externalName"));
SCHEMA(cport_s, U_IGNORE, FIR("containerPort", PORT), FS("name"), FE("protocol", k8s_protocols));
SCHEMA(env_s, U_IGNORE, FS("name"), FS("value"));
SCHEMA(container_s, U_IGNORE, FS("name"), FLO("ports", cport_s), FLO("env", env_s));
SCHEMA(pod_spec_s, U_IGNORE, FLO("containers", container_s), FLO("initContainers", container_s),
       FS("nodeName"), FS("serviceAccountName"), FS("serviceAccount"), FB("hostNetwork"));
SCHEMA(pod_ip_s, U_IGNORE, FS("ip"));
SCHEMA(pod_status_s, U_IGNORE, FS("podIP"), FLO("podIPs", pod_ip_s));
SCHEMA(template_s, U_IGNORE, FO("metadata", meta_s), FO("spec", pod_spec_s));
SCHEMA(label_selector_s, U_IGNORE, FMS("matchLabels"), FANY("matchExpressions"));
SCHEMA(deploy_spec_s, U_IGNORE, FIR("replicas", 0, INT32_MAX), FO("selector", label_selector_s),
       FO("template", template_s));

/* Top level of each kind: the API server drops unknown top-level fields of any kind. */
#define ROOT(var, spec_field)                                                                      \
	SCHEMA(var, U_WARN, FS("apiVersion"), FS("kind"), FO("metadata", meta_s), spec_field,      \
	       FANY("status"))
ROOT(ns_root_s, FAM("spec"));
ROOT(svc_root_s, FO("spec", svc_spec_s));
ROOT(deploy_root_s, FO("spec", deploy_spec_s));
SCHEMA(pod_root_s, U_WARN, FS("apiVersion"), FS("kind"), FO("metadata", meta_s),
       FO("spec", pod_spec_s), FO("status", pod_status_s));
ROOT(we_root_s, FO("spec", we_spec_s));
ROOT(vs_root_s, FO("spec", vs_spec_s));
ROOT(dr_root_s, FO("spec", dr_spec_s));
ROOT(gw_root_s, FO("spec", gw_spec_s));
ROOT(se_root_s, FO("spec", se_spec_s));
ROOT(pa_root_s, FO("spec", pa_spec_s));
ROOT(ap_root_s, FO("spec", ap_spec_s));
SCHEMA(loose_root_s, U_IGNORE, FS("apiVersion"), FS("kind"), FO("metadata", meta_s));

const struct schema *schema_root(enum obj_kind kind)
{
	switch (kind) {
	case OBJ_NAMESPACE:
		return &ns_root_s;
	case OBJ_SERVICE:
		return &svc_root_s;
	case OBJ_DEPLOYMENT:
		return &deploy_root_s;
	case OBJ_POD:
		return &pod_root_s;
	case OBJ_WORKLOADENTRY:
		return &we_root_s;
	case OBJ_VIRTUALSERVICE:
		return &vs_root_s;
	case OBJ_DESTINATIONRULE:
		return &dr_root_s;
	case OBJ_GATEWAY:
		return &gw_root_s;
	case OBJ_SERVICEENTRY:
		return &se_root_s;
	case OBJ_PEERAUTHENTICATION:
		return &pa_root_s;
	case OBJ_AUTHORIZATIONPOLICY:
		return &ap_root_s;
	default:
		return &loose_root_s;
	}
}
