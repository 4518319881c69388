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

enum diag_sev { DIAG_ERROR = 0, DIAG_WARN = 1 };

/* Printed as `file:line: kind/namespace/name: field: message` (severity "warning: " prefix
 * before the message for warnings). */
struct diag {
	enum diag_sev sev;
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
void diags_print(const struct diags *d, FILE *f);
/* One diagnostic in the format above (lets callers filter, e.g. `validate -q`). */
void diag_print(const struct diag *g, FILE *f);
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
	char *network;	   /* WorkloadEntry network, may be NULL */
	int weight;	   /* WorkloadEntry weight, 0 if unset */
	bool host_network; /* Pod/Deployment template spec.hostNetwork: true */
	uint32_t pod_id;   /* see config_pod_id(); 0 until config_index() */
};

/* ---------------- Istio networking ---------------- */

struct route_dest {
	char *host;
	char *subset; /* may be NULL */
	int port;     /* destination.port.number, 0 if unset */
	int weight;   /* 0 if unset (see has_weight) */
	bool has_weight;
	struct srcpos pos;
};

enum route_kind { ROUTE_HTTP = 0, ROUTE_TCP = 1, ROUTE_TLS = 2 };

struct vs_route {
	enum route_kind kind;
	char *name; /* http[].name, may be NULL */
	struct srcpos pos;
	bool has_match; /* any match condition present (first-match semantics) */
	/* Fields parsed and kept but not yet enforced by the kernel path; each set flag makes
	 * validate/analyze print a "not yet enforced" warning. */
	bool has_retries, has_timeout, has_fault, has_mirror, has_rewrite, has_redirect,
	    has_headers_op, has_cors, has_direct_response, has_delegate;
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
struct other_obj {
	char *api_version;
	char *kind;
	char *name;
	char *ns;
	struct srcpos pos;
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
	struct other_obj *others;
	int nothers;
	char **files; /* interned file names that srcpos.file points into */
	int nfiles;
	struct htab *ids;     /* private to config.c: (kind, namespace, name) -> array index */
	struct htab *pod_ids; /* private to config.c: pod id -> workload index (config_index) */
};

struct mesh_config *config_new(void);
void config_free(struct mesh_config *c);

/*
 * Parse one YAML file (many documents, `kind: List` wrappers) and append its objects to c.
 * Problems go to d with file:line positions. Per-object problems (bad field types, unknown
 * enum values, missing required fields, Istio's single-object validation rules) are reported
 * here; the object is not added when it has errors. Returns 0, or -1 if the file could not be
 * read or is not YAML (also reported in d).
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

/* Every *.yaml, *.yml and *.json regular file directly in dir, in name order. */
int config_load_dir(struct mesh_config *c, const char *dir, struct diags *d);

/*
 * Cross-object checks over everything loaded: duplicate objects (same kind/ns/name), a VS
 * destination subset that no DestinationRule for that host defines, duplicate subset names,
 * two DestinationRules for one host in one namespace, ... Returns the number of errors added.
 */
int config_validate(const struct mesh_config *c, struct diags *d);

/*
 * Notes for `bpfmesh analyze`, added to d as warnings: where bpfmesh behaves differently from
 * Istio (weighted http splits decided per connection) and settings that cannot act (an
 * outlierDetection maxEjectionPercent too small for the number of hosts), AuthorizationPolicy
 * rules whose HTTP-only fields act differently per TCP connection, CUSTOM actions (denied: no
 * provider) and targetRef policies (no effect). Returns the number of notes added.
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
const struct workload_obj *config_pod_by_id(const struct mesh_config *c, uint32_t id);

/* Labels helpers. */
const char *kv_get(const struct kvlist *l, const char *key);
/* true if every selector entry equals the label value (empty selector matches everything) */
bool kv_match(const struct kvlist *selector, const struct kvlist *labels);

/* Istio mesh enrollment for a workload in namespace ns (see SEMANTICS.md / issue text). */
bool config_in_mesh(const struct mesh_config *c, const struct workload_obj *w);

/*
 * Split a YAML file into one document per object (unwrapping `kind: List`), for `lab apply`,
 * which stores objects one per file like an API server does. cb gets kind, namespace ("default"
 * when absent), name and the object re-emitted as a standalone YAML document. Returns 0, or -1
 * with the problem in d.
 */
typedef int (*config_object_cb)(void *arg, const char *kind, const char *ns, const char *name,
				const char *yaml, size_t len);
int config_split_file(const char *path, config_object_cb cb, void *arg, struct diags *d);

#endif /* BM_MODEL_H */
