/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * model.h: the mesh configuration as read from Kubernetes and Istio YAML (config.c) and
 * checked (validate.c). Callers: `bpfmesh validate`, the agent (loader/), the lab (user/lab.c).
 * Everything here is plain data owned by struct mesh_config; config_free() releases it all.
 * Strings are heap copies; absent optional strings are NULL.
 */
#ifndef BM_MODEL_H
#define BM_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct htab;
struct ef_obj;
struct rlcm_obj;
struct tel_obj;
struct mesh_obj;

/* Where an object or field came from, for error messages: file:line. */
struct srcpos {
	const char *file; /* interned in mesh_config; not freed separately */
	int line;	  /* 1-based */
};

struct kv {
	char *key;
	char *val;
};

struct kvlist {
	struct kv *v;
	int n;
};

/* ---------------- diagnostics ---------------- */

/* Istio's analyzer levels; validation uses errors and warnings only. */
enum diag_sev { DIAG_ERROR = 0, DIAG_WARN = 1, DIAG_INFO = 2 };

/* Printed as `file:line: kind/namespace/name: field: message` (severity "warning: " prefix
 * before the message for warnings), or by `analyze` as Istio's analyzer prints it:
 * `Error [IST0101] (VirtualService ns/name file:line) message`. */
struct diag {
	enum diag_sev sev;
	const char *code; /* analyzer code ("IST0101", "BM0001", see docs/analyze.md), or NULL */
	char *file;
	int line;
	char *object; /* "VirtualService/microservices/orders-service", or NULL */
	char *field;  /* "spec.http[0].route[1].weight", or NULL */
	char *msg;
};

struct diags {
	struct diag *v;
	int n;
	int nerrors;
};

void diags_add(struct diags *d, enum diag_sev sev, const struct srcpos *pos, const char *object,
	       const char *field, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The same with an analyzer code (a static string). */
void diags_addc(struct diags *d, enum diag_sev sev, const char *code, const struct srcpos *pos,
		const char *object, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
void diags_print(const struct diags *d, FILE *f);
/* One diagnostic in the format above (lets callers filter, e.g. `validate -q`). */
void diag_print(const struct diag *g, FILE *f);
/* One diagnostic as an analyzer line (codes: IST0106/IST0133 for validation findings). */
void diag_print_analyzer(const struct diag *g, FILE *f);
/* The analyzer code of a finding (IST0106/IST0133 for validation findings), and its message
 * as the analyzer prints it (buf, returned). */
const char *diag_code(const struct diag *g);
const char *diag_message(const struct diag *g, char *buf, size_t len);
/* "Error", "Warning", "Info"; and back (case-insensitive), -1 when not a level. */
const char *diag_level_name(enum diag_sev sev);
int diag_level_parse(const char *s);
void diags_free(struct diags *d);

/* ---------------- Kubernetes kinds ---------------- */

struct ns_obj {
	char *name;
	struct kvlist labels;
	struct srcpos pos;
};

struct svc_port {
	char *name; /* may be NULL */
	int port;
	int target_port;	/* 0 if target_port_name is set; defaults to port when absent */
	char *target_port_name; /* named targetPort, resolved per pod against containerPort names */
	char *protocol;		/* "TCP" (default), "UDP", "SCTP" */
	char *app_protocol;
};

struct svc_obj {
	char *name;
	char *ns; /* "default" when absent */
	struct srcpos pos;
	struct kvlist labels;
	bool has_selector;
	struct kvlist selector;
	char *cluster_ips[2]; /* from clusterIP / clusterIPs; NULL if unset; "None" = headless */
	int ncluster_ips;
	char *type; /* ClusterIP (default), NodePort, LoadBalancer, ExternalName */
	struct svc_port *ports;
	int nports;
};

struct container_port {
	char *name; /* may be NULL */
	int port;
	char *protocol; /* "TCP" default */
};

enum workload_kind { WL_DEPLOYMENT = 0, WL_POD = 1, WL_WORKLOADENTRY = 2 };

/*
 * Deployment: labels = spec.template.metadata.labels, annotations likewise from the template.
 * Pod: metadata labels/annotations, addresses from status.podIP(s).
 * WorkloadEntry: spec.labels, addresses[0] = spec.address, ports from spec.ports (name->port,
 * stored as container_port entries), service_account = spec.serviceAccount.
 */
struct workload_obj {
	enum workload_kind kind;
	char *name;
	char *ns;
	struct srcpos pos;
	struct kvlist meta_labels; /* metadata.labels of the object itself */
	struct kvlist labels;	   /* the pod labels (see above) */
	struct kvlist annotations; /* pod annotations (template for Deployment) */
	int replicas; /* Deployment spec.replicas (default 1); 1 for Pod/WorkloadEntry */
	struct container_port *ports; /* all containers' ports, in order */
	int nports;
	struct kvlist env; /* env name/value of all containers (value only; valueFrom skipped) */
	char
	    *node_name; /* spec.nodeName (Pod, or Deployment template spec.nodeName); may be NULL */
	char *addresses[2]; /* Pod status.podIPs / podIP, WorkloadEntry address; may be NULL */
	int naddresses;
	char *service_account; /* may be NULL ("default" is implied by callers) */
	char *uid;	   /* Pod metadata.uid (how the kubelet names pod cgroups), may be NULL */
	char *host_ip;	   /* Pod status.hostIP: its node's address (where its agent listens) */
	char *host_ip6;	   /* Pod status.hostIPs: its node's IPv6 address, if the node has one */
	char *network;	   /* WorkloadEntry network, may be NULL */
	int weight;	   /* WorkloadEntry weight, 0 if unset */
	bool host_network; /* Pod/Deployment template spec.hostNetwork: true */
	/* Pod readiness, as kube-proxy reads it: not Ready (a Ready condition that is not
	 * "True", or phase Succeeded/Failed) takes no new connections; terminating (a
	 * deletionTimestamp) only while no other endpoint serves. A Pod without conditions (a
	 * file) is ready. EndpointSlice conditions override both (resolve.c). */
	bool not_ready, terminating;
	char *owner_kind, *owner_name; /* the controller ownerReference, or NULL */
	uint32_t pod_id;   /* see config_pod_id(); 0 until config_index() */
};

/* ---------------- Istio networking ---------------- */

/* Istio's StringMatch: exact, prefix or regex (RE2 syntax, whole-string match). SM_ANY is an
 * empty StringMatch `{}`: for headers and query parameters, "present". */
enum str_match_kind { SM_NONE = 0, SM_EXACT, SM_PREFIX, SM_REGEX, SM_ANY };

struct str_match {
	enum str_match_kind kind;
	char *value;
};

/* A named StringMatch: headers, withoutHeaders, queryParams. */
struct named_match {
	char *name;
	struct str_match m;
};

/* HTTPMatchRequest; every condition present must hold. */
struct http_match {
	struct str_match uri, scheme, method, authority;
	struct named_match *headers, *without_headers, *query_params;
	int nheaders, nwithout_headers, nquery_params;
	int port; /* 0: any */
	struct kvlist source_labels;
	char *source_namespace; /* NULL: any */
	char **gateways;	/* a match's own gateways (empty: the VirtualService's) */
	int ngateways;
	bool ignore_uri_case;
	bool l7;  /* a condition only a request can tell (not port/sourceLabels/sourceNamespace) */
	int line; /* where it is written */
};

/* Headers operations (Istio's Headers.HeaderOperations), for requests or responses. */
struct header_ops {
	struct kvlist set, add;
	char **remove;
	int nremove;
};

struct http_retry {
	int attempts;		    /* Istio: 0 disables retries */
	int64_t per_try_timeout_ms; /* -1: unset (the route timeout bounds each try) */
	char *retry_on;		    /* as written, NULL: Istio's default */
	bool retry_remote_localities;
};

struct http_fault {
	bool delay, abort;
	int64_t delay_ms;
	double delay_pct; /* 0..100; 100 when no percentage is given */
	int abort_status; /* httpStatus, 0 if unset */
	char *abort_grpc; /* grpcStatus ("UNAVAILABLE"), NULL if unset */
	double abort_pct;
};

struct http_redirect {
	char *uri, *authority, *scheme; /* NULL: keep the request's */
	int port;			/* 0: keep (derivePort below) */
	bool derive_port_from_request;	/* derivePort FROM_REQUEST_PORT */
	int code;			/* redirectCode, default 301 */
};

struct http_rewrite {
	char *uri, *authority;		   /* NULL: unset */
	char *regex_match, *regex_rewrite; /* uriRegexRewrite */
};

struct http_mirror {
	char *host, *subset;
	int port;
	double percent; /* 0..100, default 100 */
};

struct cors_policy {
	struct str_match *allow_origins;
	int nallow_origins;
	char *allow_methods, *allow_headers, *expose_headers; /* joined with ", " */
	int64_t max_age_s;				      /* -1: unset */
	int allow_credentials;				      /* -1 unset, 0, 1 */
};

/* The L7 part of an http route (NULL for tcp and tls routes). */
struct http_route_spec {
	struct http_match *matches;
	int nmatches;
	int64_t timeout_ms; /* -1: unset (no route timeout: Istio's default) */
	bool has_retries;
	struct http_retry retries;
	bool has_fault;
	struct http_fault fault;
	bool has_redirect;
	struct http_redirect redirect;
	bool has_rewrite;
	struct http_rewrite rewrite;
	bool has_direct;
	int direct_status;
	char *direct_body; /* NULL: none */
	struct header_ops req_headers, resp_headers;
	struct http_mirror *mirrors;
	int nmirrors;
	bool has_cors;
	struct cors_policy cors;
	char *delegate_name, *delegate_ns; /* delegate: the VirtualService these routes come from */
};

/* An L4 match (tcp and tls routes): facts known at connect. */
struct l4_match {
	int port;
	char **destination_subnets;
	int ndestination_subnets;
	struct kvlist source_labels;
	char *source_namespace;
	char **sni_hosts; /* tls routes */
	int nsni_hosts;
	int line;
};

struct route_dest {
	char *host;
	char *subset; /* may be NULL */
	int port;     /* destination.port.number, 0 if unset */
	int weight;   /* 0 if unset (see has_weight) */
	bool has_weight;
	struct header_ops req_headers, resp_headers; /* HTTPRouteDestination.headers */
	struct srcpos pos;
};

enum route_kind { ROUTE_HTTP = 0, ROUTE_TCP = 1, ROUTE_TLS = 2 };

struct vs_route {
	enum route_kind kind;
	char *name; /* http[].name, may be NULL */
	struct srcpos pos;
	bool has_match; /* any match condition present (first-match semantics) */
	/* What the route asks for beyond choosing a destination (http routes). */
	bool has_retries, has_timeout, has_fault, has_mirror, has_rewrite, has_redirect,
	    has_headers_op, has_cors, has_direct_response, has_delegate;
	struct http_route_spec *http; /* http routes: everything above, typed */
	struct l4_match *l4;	      /* tcp and tls routes: their matches */
	int nl4;
	struct route_dest *dests;
	int ndests;
};

struct vs_obj {
	char *name;
	char *ns;
	struct srcpos pos;
	char **hosts;
	int nhosts;
	char **gateways; /* empty = "mesh" */
	int ngateways;
	char **export_to;
	int nexport_to;
	struct vs_route *routes; /* http, then tls, then tcp, in document order per list */
	int nroutes;
	/* annotation bpfmesh.io/per-request: "true": its HTTP ports take the HTTP path even when
	 * nothing else needs it, so weights split per request and requests are counted (what
	 * bpfmesh canary writes, and what Istio does for every HTTP port) */
	bool per_request;
};

enum lb_simple {
	LB_UNSET = 0,
	LB_LEAST_REQUEST,
	LB_ROUND_ROBIN,
	LB_RANDOM,
	LB_PASSTHROUGH,
	LB_LEAST_CONN, /* deprecated alias of LEAST_REQUEST in Istio */
};

struct traffic_policy {
	bool has_lb;
	enum lb_simple lb_simple;
	bool lb_hash;		/* consistentHash present */
	bool lb_hash_source_ip; /* consistentHash.useSourceIp: true */
	bool lb_hash_other;	/* header/cookie/query hashing: parsed, not enforced */
	/* connectionPool / outlierDetection / tls: parsed and kept for later capabilities. */
	bool has_connection_pool, has_outlier, has_tls, has_port_level;
	int64_t max_connections;    /* -1 when unset */
	int64_t connect_timeout_ms; /* -1 when unset */
	int consecutive_5xx;	    /* -1 when unset */
	int consecutive_gateway;    /* -1 when unset */
	int64_t interval_ms;	    /* -1 when unset */
	int64_t base_ejection_ms;   /* -1 when unset */
	int max_ejection_percent;   /* -1 when unset */
	int min_health_percent;	    /* -1 when unset */
	/* consistentHash on a request's header, cookie or query parameter (the HTTP path) */
	char *hash_header, *hash_cookie, *hash_cookie_path, *hash_query;
	int64_t hash_cookie_ttl_ms; /* -1 unset: a session cookie */
	int64_t ring_size;	    /* ringHash.minimumRingSize / maglev.tableSize, -1 unset */
	/* connectionPool.http (the HTTP path); -1 when unset */
	bool has_http_pool;
	int64_t http1_max_pending, http2_max_requests, max_requests_per_conn, max_retries,
	    idle_timeout_ms;
	bool h2_upgrade; /* h2UpgradePolicy: UPGRADE */
};

struct dr_subset {
	char *name;
	struct srcpos pos;
	struct kvlist labels;
	bool has_policy;
	struct traffic_policy policy;
};

struct dr_obj {
	char *name;
	char *ns;
	struct srcpos pos;
	char *host;
	bool has_policy;
	struct traffic_policy policy;
	struct dr_subset *subsets;
	int nsubsets;
	char **export_to;
	int nexport_to;
};

/* ---------------- Istio security ---------------- */

/*
 * PeerAuthentication and AuthorizationPolicy as security.c evaluates them. Both kinds are also
 * kept as other_obj entries (identity only), which is what duplicate detection and `lab` use.
 * `order` is the load order (index in the array); security.c breaks Istio's "oldest wins" ties
 * with creation_ts (absent = oldest, as Go's zero time), then namespace/name, then order.
 */
enum mtls_mode { MTLS_UNSET = 0, MTLS_DISABLE, MTLS_PERMISSIVE, MTLS_STRICT };

struct pa_port_mtls {
	int port; /* workload (target) port */
	enum mtls_mode mode;
};

struct pa_obj {
	char *name;
	char *ns;
	struct srcpos pos;
	char *creation_ts; /* metadata.creationTimestamp as written (RFC 3339), may be NULL */
	int order;
	struct kvlist selector; /* spec.selector.matchLabels; empty = namespace/mesh-wide */
	enum mtls_mode mode;	/* spec.mtls.mode; UNSET when absent */
	struct pa_port_mtls *ports;
	int nports;
};

/* An address prefix in one 128-bit space: IPv4 as v4-mapped ::ffff:a.b.c.d (len 96..128). */
struct ip_prefix {
	uint8_t ip[16]; /* host bits cleared */
	int len;	/* 0..128 */
	bool v4;	/* written as IPv4 (an IPv6 prefix never matches an IPv4 peer) */
};

/* The values of one match field, as written; cidr/port are parsed once at load for the
 * fields that hold addresses or ports (parallel to v), NULL otherwise. */
struct ap_values {
	char **v;
	int n;
	struct ip_prefix *cidr;
	int *port;
};

struct ap_source {
	struct ap_values principals, not_principals, request_principals, not_request_principals,
	    namespaces, not_namespaces, service_accounts, not_service_accounts, ip_blocks,
	    not_ip_blocks, remote_ip_blocks, not_remote_ip_blocks;
};

struct ap_operation {
	struct ap_values hosts, not_hosts, ports, not_ports, methods, not_methods, paths, not_paths;
};

struct ap_condition {
	char *key;
	struct ap_values values, not_values;
};

struct ap_rule {
	struct srcpos pos;
	struct ap_source *from;
	int nfrom;
	struct ap_operation *to;
	int nto;
	struct ap_condition *when;
	int nwhen;
};

enum ap_action { AP_ALLOW = 0, AP_DENY, AP_AUDIT, AP_CUSTOM };

struct ap_obj {
	char *name;
	char *ns;
	struct srcpos pos;
	char *creation_ts; /* as in pa_obj */
	int order;
	bool has_selector;	/* spec.selector present (matchLabels may still be empty) */
	struct kvlist selector; /* spec.selector.matchLabels */
	bool has_target_ref;	/* targetRef/targetRefs: for gateways/waypoints, not workloads */
	enum ap_action action;
	char *provider; /* CUSTOM provider.name, may be NULL */
	bool has_rules; /* `rules` present at all (absent: ALLOW nothing, DENY nothing) */
	struct ap_rule *rules;
	int nrules;
};

/* Any other kind (Gateway, ServiceEntry, PeerAuthentication, AuthorizationPolicy, ...):
 * validated, then kept by identity only (the two security kinds also have typed copies). */
/* An EndpointSlice endpoint address with its conditions (absent ready/serving: true, as the
 * API says an unknown state is read; absent terminating: false). */
struct slice_ep {
	char *addr;
	bool ready, serving, terminating;
};

struct other_obj {
	char *api_version;
	char *kind;
	char *name;
	char *ns;
	struct srcpos pos;
	char **hosts; /* ServiceEntry spec.hosts (what analyze resolves destinations against) */
	int nhosts;
	/* EndpointSlice: its Service (label kubernetes.io/service-name) and one entry per
	 * endpoint address */
	char *slice_service;
	struct slice_ep *slice_eps;
	int nslice_eps;
	struct container_port *slice_ports; /* its ports: name (may be NULL) and port */
	int nslice_ports;
};

/*
 * An object that was not loaded because it is invalid, and why (its first error), or a file
 * that could not be read at all (object NULL). Kubernetes and Istio reject objects one at a
 * time: the rest of the config applies. config_retain() puts an object's last good version
 * back in force where one is known.
 */
struct rejected_obj {
	char *object;	   /* "Kind/ns/name" as diagnostics print it; NULL for a whole file */
	char *key;	   /* private to config.c: the identity, "" when it has none (no name) */
	struct srcpos pos; /* where the object (or the file) starts */
	int err_line;	   /* of the first error */
	char *field;	   /* of the first error, may be NULL */
	char *msg;
	bool unreadable;	 /* the whole file: not readable, or not YAML */
	bool kept;		 /* its last good version stays in force (config_retain) */
	struct srcpos kept_from; /* where that version was read */
};

struct obj_source; /* private to config.c: an object's tree, kept for config_retain() */

/* ---------------- Istio Gateway ---------------- */

/* One server of a Gateway: what the gateway listens on (port.number on the node's address)
 * and which hosts it serves there. hosts are "[namespace/]dnsName" as written. */
struct gw_server {
	struct srcpos pos;
	uint32_t port;	 /* port.number */
	char *port_name; /* port.name */
	char *protocol;	 /* port.protocol, upper case as Istio requires (HTTP, HTTPS, ...) */
	char *bind;	 /* may be NULL */
	char *name;	 /* the server's own name, may be NULL */
	char **hosts;
	int nhosts;
	bool has_tls;
	char *tls_mode;	       /* tls.mode, NULL: SIMPLE when tls is given */
	char *credential_name; /* tls.credentialName */
	char *credential_ns;   /* its Secret's namespace, NULL: the gateway's (istio-system) */
	bool https_redirect;   /* tls.httpsRedirect */
	char *min_tls, *max_tls; /* tls.minProtocolVersion / maxProtocolVersion (TLSV1_2...) */
	char **cipher_suites;	 /* tls.cipherSuites */
	int ncipher_suites;
	bool has_files; /* tls.serverCertificate / privateKey / caCertificates (files) */
};

/* The ingress gateway bpfmesh's agents are (--ingress): Istio's default one, by name, service
 * account and labels, so Istio's YAML (selector istio: ingressgateway, policies naming its
 * principal) works unchanged. */
#define GW_NS	  "istio-system"
#define GW_NAME	  "istio-ingressgateway"
#define GW_SA	  "istio-ingressgateway-service-account"
#define GW_LABELS "istio=ingressgateway,app=istio-ingressgateway"

/* A Secret, as a Gateway's credentialName reads it: data decoded (the API's base64), with
 * stringData merged over it, as the API server stores them. Values are NUL-terminated. */
struct secret_obj {
	char *name;
	char *ns;
	struct srcpos pos;
	char *type; /* "kubernetes.io/tls", "Opaque", ... */
	struct kvlist data;
};

struct gw_obj {
	char *name;
	char *ns;
	struct srcpos pos;
	struct kvlist selector; /* spec.selector: the gateway workloads' labels (empty: every) */
	struct gw_server *servers;
	int nservers;
};

struct mesh_config {
	struct ns_obj *namespaces;
	int nnamespaces;
	struct svc_obj *services;
	int nservices;
	struct workload_obj *workloads;
	int nworkloads;
	struct vs_obj *vses;
	int nvses;
	struct dr_obj *drs;
	int ndrs;
	struct pa_obj *pas;
	int npas;
	struct ap_obj *aps;
	int naps;
	struct gw_obj *gws; /* Gateway (networking.istio.io): also kept as an other_obj */
	int ngws;
	struct secret_obj *secrets; /* Secrets: also kept as an other_obj */
	int nsecrets;
	struct ef_obj *efs; /* EnvoyFilters (ratelimit.h): also kept as an other_obj */
	int nefs;
	struct rlcm_obj *rlcms; /* ConfigMaps ratelimit-config: also kept as an other_obj */
	int nrlcms;
	struct tel_obj *tels; /* Telemetry (telemetry.h): also kept as an other_obj */
	int ntels;
	struct mesh_obj *meshes; /* ConfigMaps istio (MeshConfig): also kept as an other_obj */
	int nmeshes;
	struct other_obj *others;
	int nothers;
	char **files; /* interned file names that srcpos.file points into */
	int nfiles;
	struct file_load *loads; /* private to config.c: per file (same index), how it was read */
	struct htab *file_ids;	 /* private to config.c: file name -> index into files */
	int nloaded;		 /* private to config.c: objects load_object was given */
	int nkept;		 /* private to config.c: of them kept (source_keep) */
	int files_parsed;	 /* by config_load_dir(_from): files read and parsed */
	int files_reused;	 /* by config_load_dir_from: files taken from prev unparsed */
	uint64_t dir_stamp;	 /* by config_load_dir(_from): config_dir_stamp() of what it listed */
	struct rejected_obj *rejected; /* in load order */
	int nrejected;
	bool keep_sources; /* set before loading: keep each valid object's tree (the agent) */
	struct obj_source *sources;
	int nsources;
	struct htab *src_ids; /* private to config.c: identity -> index into sources */
	struct htab *ids;     /* private to config.c: (kind, namespace, name) -> array index */
	struct htab *pod_ids; /* private to config.c: pod id -> workload index (config_index) */
};

struct mesh_config *config_new(void);
void config_free(struct mesh_config *c);

/*
 * Parse one YAML file (many documents, `kind: List` wrappers) and append its objects to c.
 * Problems go to d with file:line positions. Per-object problems (bad field types, unknown
 * enum values, missing required fields, Istio's single-object validation rules) are reported
 * here; the object is not added when it has errors, and is listed in c->rejected. An object
 * loaded again (same kind, namespace and name, in this file or a later one) replaces the
 * earlier one with a warning, as `kubectl apply -f` keeps the last. Returns 0, or -1 if the
 * file could not be read or is not YAML (also reported in d, and listed in c->rejected).
 */
int config_load_file(struct mesh_config *c, const char *path, struct diags *d);

/* The same for YAML already in memory (stdin, fuzzing); name stands for the file in
 * messages. */
int config_load_mem(struct mesh_config *c, const char *name, const char *buf, size_t len,
		    struct diags *d);

/* A fingerprint of what config_load_dir would read now (names, sizes, times, inodes of
 * those files): the agent records the one it loaded in bm_meta, and `lab apply` waits until
 * every agent's equals the directory's. Never 0. */
uint64_t config_dir_stamp(const char *dir);

/* Every *.yaml, *.yml and *.json regular file directly in dir, in name order. Returns -1
 * only when dir cannot be read; a file that cannot is reported and listed in c->rejected. */
int config_load_dir(struct mesh_config *c, const char *dir, struct diags *d);

/*
 * The same, with prev the config this directory gave last time (loaded with keep_sources, as
 * c must be): a file whose name, size, times and inode are what they were when prev read it,
 * and all of whose objects prev holds, is not read or parsed again: its objects are loaded
 * from prev's trees (validated again, so its warnings are the same), which c then shares.
 * Only the files that changed are parsed. prev NULL: config_load_dir.
 */
int config_load_dir_from(struct mesh_config *c, const char *dir, const struct mesh_config *prev,
			 struct diags *d);

/*
 * Put back in force, for every object rejected in next (and every object of a file of next
 * that could not be read), its last good version from prev, unless next has a valid version
 * of it anyway. prev must have been loaded with keep_sources set (next too, to carry them on).
 * Marks the rejected entries it kept; returns how many objects it put back.
 */
int config_retain(struct mesh_config *next, const struct mesh_config *prev);

/* How many objects differ between two configs loaded with keep_sources: those of next that
 * prev lacks or holds with other content, plus those of prev that next lacks. prev NULL: all
 * of next. */
int config_changes(const struct mesh_config *next, const struct mesh_config *prev);

/*
 * Istio's analysis across objects (analyze.c), added to d with analyzer codes: references to
 * what is not there (IST0101: a destination host, port or subset), two mesh VirtualServices
 * for one host (IST0109), DestinationRules that Istio merges, and the notes on where bpfmesh
 * acts differently from Istio or does not act at all (BM codes, docs/analyze.md): routes the
 * kernel does not enforce, weighted http splits decided per connection, an outlierDetection
 * that can never eject, AuthorizationPolicy fields that act differently per TCP connection,
 * CUSTOM actions and targetRef policies. Returns the number of findings added.
 */
int config_analyze(const struct mesh_config *c, struct diags *d);

/*
 * Host names as Kubernetes resolves them from namespace ns: "a" -> "a.<ns>.svc.cluster.local",
 * "a.b" -> "a.b.svc.cluster.local", "a.b.svc" -> "a.b.svc.cluster.local", an FQDN as is.
 * Returns a heap string.
 */
char *config_fqdn(const char *host, const char *ns);

/* "10.0.0.0/8", "10.1.2.3" (/32), "2001:db8::/32", "::1" (/128) -> p (host bits cleared,
 * IPv4 v4-mapped); 0, or -1 when s is neither an address nor a CIDR block. */
int config_parse_prefix(const char *s, struct ip_prefix *p);

/*
 * Pod ids: what the kernel keys a pod by (bm_pod.pod_id, bm_inpod, bm_authz, bm_attest, the
 * traffic counters) for every Pod and WorkloadEntry. A stable hash of namespace/name, so
 * counters survive agent restarts; but a name is chosen by whoever creates the pod, so two
 * pods are never let share one: on a collision the pod whose namespace/name sorts later is
 * rehashed until its id is free. config_index() assigns them once the config is complete
 * (call it before sharing the config between threads); 0 is never an id.
 */
void config_index(struct mesh_config *c);
uint32_t config_pod_id(const struct workload_obj *w);
/* The workload a pod belongs to as Istio's metrics name it (destination_workload): its
 * Deployment (a lab replica NAME-<k>), else the pod itself; a Deployment object its own name. */
void config_workload_name(const struct workload_obj *w, char *buf, size_t len);
const struct workload_obj *config_pod_by_id(const struct mesh_config *c, uint32_t id);

/* "spec.http[2]" for route r of vs (routes counted within their own list). */
const char *config_route_path(char *buf, size_t len, const struct vs_obj *vs, int r);
/* gRPC status code names by code (0 OK .. 16 UNAUTHENTICATED), NULL-terminated: what Istio
 * accepts in fault.abort.grpcStatus and retryOn, shared by validation and the HTTP path. */
extern const char *const grpc_status_names[];

/* Labels helpers. */
const char *kv_get(const struct kvlist *l, const char *key);
/* true if every selector entry equals the label value (empty selector matches everything) */
bool kv_match(const struct kvlist *selector, const struct kvlist *labels);

/* The labels of Namespace ns when it is in the config, else NULL. */
const struct kvlist *config_ns_labels(const struct mesh_config *c, const char *ns);

/* Istio mesh enrollment for a workload in namespace ns (see SEMANTICS.md / issue text). */
bool config_in_mesh(const struct mesh_config *c, const struct workload_obj *w);

/*
 * Split a YAML file into one document per object (unwrapping `kind: List`), for `lab apply`,
 * which stores objects one per file like an API server does. cb gets kind, namespace ("default"
 * when absent), name, the line the object starts on and the object re-emitted as a standalone
 * YAML document. An object without kind or name, or whose cb fails, is reported in d and the
 * others go on. Returns how many failed, or -1 when the file is not YAML (nothing was given to
 * cb then).
 */
typedef int (*config_object_cb)(void *arg, const char *kind, const char *ns, const char *name,
				int line, const char *yaml, size_t len);
int config_split_file(const char *path, config_object_cb cb, void *arg, struct diags *d);

#endif /* BM_MODEL_H */
