/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * telemetry.h: tracing as Istio configures it: the Telemetry kind's `tracing` (providers,
 * randomSamplingPercentage, disableSpanReporting, customTags, match.mode) at mesh (root
 * namespace), namespace and workload scope, and MeshConfig (the ConfigMap `istio` in
 * istio-system, data key `mesh`): extensionProviders zipkin / opentelemetry (http),
 * defaultProviders.tracing, enableTracing, defaultConfig.tracing.sampling. Read here from valid
 * objects (config.c calls tel_extract and mesh_extract); tel_tracing_for resolves what one
 * proxy does with Istio's precedence. The agent's HTTP path (loader/trace.c) makes the spans.
 */
#ifndef BM_TELEMETRY_H
#define BM_TELEMETRY_H

#include <stdbool.h>
#include <stdint.h>
#include "model.h"

struct ynode;

#define MESH_CONFIGMAP "istio" /* in the root namespace, data key "mesh" */

enum tel_mode { TEL_CLIENT_AND_SERVER = 0, TEL_CLIENT = 1, TEL_SERVER = 2 };

struct tel_tag {
	char *name;
	enum { TAG_LITERAL, TAG_ENV, TAG_HEADER } kind;
	char *value; /* literal value, env or header name */
	char *dflt;  /* environment / header defaultValue */
};

/* One spec.tracing[] entry: unset fields are inherited from the scope above. */
struct tel_tracing {
	enum tel_mode mode;
	bool has_provider;
	char *provider; /* providers[0].name */
	bool has_sampling;
	double sampling; /* randomSamplingPercentage */
	bool has_disable;
	bool disable; /* disableSpanReporting */
	bool has_tags;
	struct tel_tag *tags;
	int ntags;
};

struct tel_obj {
	char *name;
	char *ns;
	struct srcpos pos;
	bool has_selector;
	bool target_refs;	/* targetRefs without a selector: not read, applies nowhere */
	struct kvlist selector; /* selector.matchLabels */
	struct tel_tracing *tr;
	int ntr;
};

enum tel_proto { TP_ZIPKIN = 0, TP_OTLP_HTTP, TP_OTLP_HTTP_JSON };

struct tel_provider {
	char *name;
	enum tel_proto proto;
	char *service; /* host: a Service's name, an address */
	int port;
	char *path; /* zipkin: /api/v2/spans; opentelemetry http.path (required by Istio) */
	int max_tag_length;
};

/* What the ConfigMap `istio` (MeshConfig) says about tracing. */
struct mesh_obj {
	char *name;
	char *ns;
	struct srcpos pos;
	bool enable_tracing;	    /* default true; false: off where no Telemetry applies */
	double sampling;	    /* defaultConfig.tracing.sampling, -1: unset */
	char *default_provider;	    /* defaultProviders.tracing[0] */
	struct tel_provider *provs; /* extensionProviders with zipkin or opentelemetry */
	int nprovs;
};

bool tel_extract(struct tel_obj *o, const struct ynode *root, const char *name, const char *ns,
		 struct srcpos pos);
void tel_free(struct tel_obj *o);
/* The `mesh` text of ConfigMap istio into o; -1 with err when it is not YAML. */
int mesh_parse(struct mesh_obj *o, const char *text, char *err, size_t errlen);
void mesh_free(struct mesh_obj *o);
/* Validation notices: what of a Telemetry / MeshConfig bpfmesh does not act on. */
void tel_notices(const struct ynode *spec,
		 void (*warn)(void *arg, const struct ynode *at, const char *field,
			      const char *msg),
		 void *arg);

/* What one proxy does (tel_tracing_for). provider NULL: no provider named in the config (the
 * agent's --tracing-endpoint may still apply); sampling -1: unset (the agent's default). */
struct tel_result {
	const struct tel_provider *provider;
	const char *provider_name; /* named but not among extensionProviders: reported */
	double sampling;
	bool disabled; /* disableSpanReporting, or enableTracing false */
	const struct tel_tag *tags;
	int ntags;
	const struct tel_obj *by; /* the most specific Telemetry that applied, NULL: none */
};

/* Istio's precedence for workload w as a CLIENT or SERVER (mode): MeshConfig's defaults, then
 * the root namespace's Telemetry without a selector, then w's namespace's without one, then
 * those whose selector matches w; each level's set fields replace the ones above. */
void tel_tracing_for(const struct mesh_config *c, const char *root_ns, const struct workload_obj *w,
		     enum tel_mode mode, struct tel_result *out);
/* Is tracing configured for w at all (a provider from Telemetry or MeshConfig, not
 * disabled)? What moves its HTTP ports to the HTTP path; why into why. */
bool tel_traced(const struct mesh_config *c, const char *root_ns, const struct workload_obj *w,
		char *why, size_t whylen);

#endif /* BM_TELEMETRY_H */
