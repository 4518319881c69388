/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ratelimit.h: rate limits as Istio users write them, which have no Istio kind of their own:
 *  - the EnvoyFilter shapes of Istio's task "Enabling Rate Limits using Envoy": an HTTP_FILTER
 *    patch inserting envoy.filters.http.local_ratelimit (a token bucket per proxy) or
 *    envoy.filters.http.ratelimit (a domain asked of the rate-limit service), HTTP_ROUTE /
 *    VIRTUAL_HOST MERGE patches adding a route's typed_per_filter_config for the local filter
 *    and `rate_limits` actions (what descriptors a request makes);
 *  - envoyproxy/ratelimit's own config (domain, nested descriptors, rate_limit, shadow_mode,
 *    replaces), from a ConfigMap `ratelimit-config` or the agent's --ratelimit-config files.
 * Read here from valid objects into the model (config.c calls ef_extract and rl_domains_parse),
 * and evaluated here without I/O: which patches hold for a proxy, the descriptors of a request,
 * the local token buckets' arithmetic, the limit of a descriptor and its Redis key with
 * envoyproxy/ratelimit's fixed window. The agent's HTTP path (loader/l7rl.c) does the rest.
 */
#ifndef BM_RATELIMIT_H
#define BM_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "model.h"

struct ynode;
struct bm_regex;
struct diags;

/* EnvoyFilter match.context. */
enum ef_ctx { EF_ANY = 0, EF_INBOUND, EF_OUTBOUND, EF_GATEWAY };

/* A token bucket: starts full, tokens_per_fill added every fill_ms, at most max_tokens. */
struct rl_bucket {
	uint32_t max_tokens, tokens_per_fill;
	int64_t fill_ms;
};

/* One entry of a descriptor: key and value (the config's value NULL: any value). */
struct rl_entry {
	char *key, *value;
};

struct rl_local_desc {
	struct rl_entry *e;
	int n;
	struct rl_bucket tb;
};

/* A response header a refusal adds (response_headers_to_add). */
struct rl_hdr {
	char *name, *value;
	bool append;
};

/* envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit */
struct rl_local {
	char *stat_prefix;
	bool has_tb;
	bool bad_fill; /* a fill_interval under 50 ms: Envoy refuses it (has_tb false) */
	struct rl_bucket tb;
	double enabled, enforced; /* filter_enabled / filter_enforced, 0..1 (unset: 0) */
	struct rl_hdr *hdrs;
	int nhdrs;
	struct rl_local_desc *descs;
	int ndescs;
};

/* Envoy's HeaderMatcher (header_value_match). */
struct rl_hmatch {
	char *name;
	enum { RLM_PRESENT, RLM_EXACT, RLM_PREFIX, RLM_SUFFIX, RLM_CONTAINS, RLM_REGEX } kind;
	char *value;
	struct bm_regex *re;
	bool invert;
};

/* One action of a rate_limits entry: one entry of its descriptor. */
struct rl_action {
	enum {
		RLA_REQUEST_HEADERS,
		RLA_REMOTE_ADDRESS,
		RLA_GENERIC_KEY,
		RLA_HEADER_VALUE_MATCH,
		RLA_SOURCE_CLUSTER,
		RLA_DESTINATION_CLUSTER,
	} kind;
	char *header; /* request_headers.header_name (lower case) */
	char *key;    /* descriptor_key (defaults filled in) */
	char *value;  /* generic_key / header_value_match descriptor_value */
	bool skip_if_absent;
	bool expect_match;
	struct rl_hmatch *hm;
	int nhm;
};

/* A rate_limits entry: its actions make one descriptor (all of them, or none). */
struct rl_limit {
	struct rl_action *a;
	int n;
};

enum ef_patch_kind {
	EFP_OTHER = 0, /* a patch bpfmesh does not act on (what says which) */
	EFP_LOCAL,     /* HTTP_FILTER: envoy.filters.http.local_ratelimit */
	EFP_GLOBAL,    /* HTTP_FILTER: envoy.filters.http.ratelimit */
	EFP_ROUTE,     /* HTTP_ROUTE / VIRTUAL_HOST MERGE: per-route config, rate_limits */
};

struct ef_patch {
	enum ef_patch_kind kind;
	enum ef_ctx ctx;
	int index;	  /* spec.configPatches[index] */
	int line;	  /* of the patch */
	int port;	  /* match listener/routeConfiguration portNumber, 0: any */
	char *vhost;	  /* routeConfiguration.vhost.name, NULL: any */
	char *route;	  /* routeConfiguration.vhost.route.name, NULL: any */
	bool vhost_level; /* VIRTUAL_HOST: its rate_limits apply to every route */
	/* EFP_LOCAL, and EFP_ROUTE's typed_per_filter_config (has_local) */
	bool has_local;
	struct rl_local local;
	/* EFP_GLOBAL */
	char *domain;
	bool failure_mode_deny;
	int64_t timeout_ms;
	/* EFP_ROUTE: route.rate_limits (HTTP_ROUTE) or rate_limits (VIRTUAL_HOST) */
	struct rl_limit *limits;
	int nlimits;
	char what[160]; /* EFP_OTHER: "applyTo CLUSTER, context SIDECAR_OUTBOUND" */
};

struct ef_obj {
	char *name;
	char *ns;
	struct srcpos pos;
	bool has_selector; /* workloadSelector (else every workload of its namespace, or of the
			    * mesh in the root namespace) */
	struct kvlist selector;
	int priority;
	struct ef_patch *p;
	int np;
};

/* envoyproxy/ratelimit config: one descriptor level. */
struct rl_cdesc {
	char *key, *value; /* value NULL: any value (each its own counter) */
	bool has_limit, unlimited, shadow;
	uint32_t rpu;	 /* requests_per_unit */
	uint32_t unit_s; /* second 1, minute 60, hour 3600, day 86400 */
	char *name;	 /* rate_limit.name (what `replaces` names) */
	char **replaces;
	int nreplaces;
	struct rl_cdesc *kids;
	int nkids;
};

struct rl_domain {
	char *domain;
	char *source; /* "ConfigMap ns/name config.yaml" or the file */
	struct rl_cdesc *d;
	int n;
};

#define RL_CONFIGMAP "ratelimit-config"

/* A ConfigMap named ratelimit-config: every data key ending in .yaml is one domain's config. */
struct rlcm_obj {
	char *name;
	char *ns;
	struct srcpos pos;
	struct rl_domain *doms;
	int ndoms;
};

/* Read a valid EnvoyFilter (root: its document) into o; false when memory ran out. */
bool ef_extract(struct ef_obj *o, const struct ynode *root, const char *name, const char *ns,
		struct srcpos pos);
void ef_free(struct ef_obj *o);
/* Validation notices of an EnvoyFilter: which patches bpfmesh enforces (none: every patch is
 * reported, naming it), via warn(arg, patch_line, field, message). */
void ef_notices(const struct ynode *spec,
		void (*warn)(void *arg, const struct ynode *at, const char *field, const char *msg),
		void *arg);

/*
 * One envoyproxy/ratelimit config document (YAML text) into *out; source names it in
 * messages. Returns 0, or -1 with err set ("line N: descriptors[0].rate_limit.unit: ...").
 */
int rl_domain_parse(const char *text, size_t len, const char *source, struct rl_domain *out,
		    char *err, size_t errlen);
void rl_domain_free(struct rl_domain *d);
void rlcm_free(struct rlcm_obj *o);

/* ---- evaluation ---- */

/* Does EnvoyFilter f apply to workload w (its namespace and labels), Istio's rule: a filter
 * in the root namespace applies to every namespace, elsewhere to its own; workloadSelector
 * labels a subset of w's. */
bool ef_selects(const struct ef_obj *f, const char *root_ns, const struct workload_obj *w);
/* The first EnvoyFilter of c with a rate-limit filter (local or global) on side ctx that
 * selects w (w NULL: any workload), NULL: none. What puts a port on the HTTP path. */
const struct ef_obj *rl_filter_for(const struct mesh_config *c, const char *root_ns,
				   const struct workload_obj *w, enum ef_ctx ctx);
/* Has c a global rate limit (an envoy.filters.http.ratelimit patch)? The lab's Redis. */
bool rl_has_global(const struct mesh_config *c);
/* Does patch p apply on side ctx to a request on port (the proxy's listener port: the
 * workload's for inbound, the service's for outbound, the gateway server's), to route
 * route_name (NULL: unnamed) of virtual host vhost_host ("*" or a host)? */
bool ef_patch_holds(const struct ef_patch *p, enum ef_ctx ctx, int port, const char *vhost_host,
		    const char *route_name);

/* What the actions read of a request. */
struct rl_req {
	const char *(*header)(void *arg, const char *name); /* lower-case name; NULL absent */
	void *arg;
	const char *remote; /* the trusted downstream address */
	const char *source_cluster, *dest_cluster;
};

/* A request's descriptor (what one rate_limits entry made). */
#define RL_MAX_ENTRIES 8
struct rl_desc {
	struct rl_entry e[RL_MAX_ENTRIES]; /* values point into the request or the config */
	int n;
};

/* The descriptor of entry l for request q; false when it makes none (an absent header
 * without skip_if_absent, a header_value_match that fails). */
bool rl_descriptor(const struct rl_limit *l, const struct rl_req *q, struct rl_desc *out);

/* The local filter's descriptor buckets that descriptors ds match verbatim (indexes into
 * lc->descs, at most max, in config order); Envoy consumes each of them and the default
 * bucket (lc->tb, always_consume_default_token_bucket). */
int rl_local_match(const struct rl_local *lc, const struct rl_desc *ds, int nds, int *idx, int max);

/* A token bucket's state; rl_take refills to now_ms (first use: full) and takes one. */
struct rl_tb_state {
	double tokens;
	int64_t last_ms; /* 0: never used */
};
bool rl_take(struct rl_tb_state *s, const struct rl_bucket *b, int64_t now_ms);

/* envoyproxy/ratelimit's lookup: the config level that the descriptor's last entry reaches
 * (each entry: key and value, else key alone), if it has a rate_limit; NULL: no limit. */
const struct rl_cdesc *rl_domain_limit(const struct rl_domain *d, const struct rl_desc *q);
/* Its Redis key for the window holding now_s: "domain_k1_v1_k2_v2_WINDOWSTART". */
int rl_cache_key(char *buf, size_t len, const char *domain, const struct rl_desc *q,
		 const struct rl_cdesc *lim, int64_t now_s);

#endif /* BM_RATELIMIT_H */
