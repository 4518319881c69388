/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * validate.h: the per-object checks of validate.c as config.c calls them while loading a file.
 * Not for other callers: they use config_load_file() and config_analyze() from model.h.
 *
 * config.c recognises an object's apiVersion/kind, asks validate_object() whether it is valid
 * (types, unknown fields, Istio's and Kubernetes' rules), and only then copies it into the
 * model with the plain accessors of yamltree.h, which can therefore trust the types.
 */
#ifndef BM_VALIDATE_H
#define BM_VALIDATE_H

#include "duration.h"
#include "model.h"
#include "yamltree.h"

enum obj_kind {
	OBJ_UNKNOWN = 0,
	OBJ_NAMESPACE,
	OBJ_SERVICE,
	OBJ_DEPLOYMENT,
	OBJ_POD,
	OBJ_WORKLOADENTRY,
	OBJ_VIRTUALSERVICE,
	OBJ_DESTINATIONRULE,
	OBJ_GATEWAY,
	OBJ_SERVICEENTRY,
	OBJ_PEERAUTHENTICATION,
	OBJ_AUTHORIZATIONPOLICY,
	OBJ_ISTIO_UNCHECKED, /* an Istio kind we know of but neither check nor enforce */
	OBJ_K8S_UNUSED,	     /* a Kubernetes kind bpfmesh has no use for (ConfigMap, ...) */
	OBJ_SERVICEACCOUNT,  /* pods' identities come from serviceAccountName: nothing to read */
	OBJ_ENDPOINTSLICE,   /* discovery.k8s.io/v1: its endpoints' ready/serving/terminating */
	OBJ_SECRET,	     /* v1 Secret: a Gateway's credentialName (its TLS certificate) */
	OBJ_GWAPI, /* gateway.networking.k8s.io served (as the Istio objects it stands for) */
	OBJ_GWAPI_UNSERVED, /* gateway.networking.k8s.io kinds not served yet */
	OBJ_ENVOYFILTER,    /* its rate-limit patches enforced (ratelimit.h), others reported */
	OBJ_CONFIGMAP,	    /* ratelimit-config, istio (MeshConfig): read; others unused */
	OBJ_TELEMETRY,	    /* telemetry.istio.io: its tracing (telemetry.h) */
};

/* Where problems of the object being loaded go. */
struct vctx {
	struct diags *d;
	const char *file;   /* interned in mesh_config */
	const char *object; /* "Kind/namespace/name" */
	const char *ns;	    /* the object's namespace, "default" when absent */
	int line;	    /* the object's first line, for problems without a better place */
	int nerr;	    /* errors reported for this object so far */
};

enum obj_kind obj_kind_of(const char *api_version, const char *kind);
bool obj_is_namespaced(enum obj_kind k);

/* Report at the line of node `at` (the object's line when NULL); field may be NULL. */
void vctx_err(struct vctx *v, const struct ynode *at, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void vctx_warn(struct vctx *v, const struct ynode *at, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Check one object (the document's root map) of a recognised kind. Reports to v and returns
 * the number of errors; warnings (deprecated or not yet enforced fields) do not count.
 */
int validate_object(struct vctx *v, enum obj_kind kind, const struct ynode *root);

#endif /* BM_VALIDATE_H */
