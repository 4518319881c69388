/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * rollout.h: where a pipeline stage finds the mesh it acts on, and how it changes it: a lab
 * (`--lab NAME`: its config directory, nodes and Prometheus, changes through `lab apply`) or a
 * node's config directory (`--config-dir DIR --node NODE...`: files written atomically there).
 * Shared by canary.c and verify.c.
 */
#ifndef BM_ROLLOUT_H
#define BM_ROLLOUT_H

#include <stdbool.h>
#include <json-c/json.h>
#include "model.h"
#include "yamltree.h"

#define ROLLOUT_MAX_NODES 64

struct mesh_target {
	const char *lab;	/* --lab NAME, or NULL */
	const char *config_dir; /* --config-dir DIR, or the lab's */
	char lab_config[600];
	char *nodes[ROLLOUT_MAX_NODES]; /* agent node names (bpfmesh services --node) */
	int nnodes;
	char prometheus[512]; /* the lab's, when it runs one */
};

/* What both pipeline stages take: -f FILE, where the mesh is (--lab NAME | --config-dir DIR
 * --node NODE...), --prometheus URL, --junit FILE, --json. */
struct stage_args {
	const char *file, *prometheus, *junit;
	bool json;
	struct mesh_target t;
};

/* getopt_long entries for those (their short codes: f l d n p j J) */
#define STAGE_OPTIONS                                                                              \
	{"file", required_argument, 0, 'f'}, {"lab", required_argument, 0, 'l'},                   \
	    {"config-dir", required_argument, 0, 'd'}, {"node", required_argument, 0, 'n'},        \
	    {"prometheus", required_argument, 0, 'p'}, {"junit", required_argument, 0, 'j'},       \
	    {"json", no_argument, 0, 'J'}

/* Take option o (its argument arg) into s: 1 taken, 0 not one of them, -1 too many --node. */
int stage_option(struct stage_args *s, int o, const char *arg);
/* After getopt: -f given, exactly one of --lab and --config-dir; 0, or -1. */
int stage_check(const struct stage_args *s);

/* Fill t from its lab (lab status) or check its config directory; 0, or -1 with a message. */
int target_open(struct mesh_target *t, char *err, size_t errlen);
void target_close(struct mesh_target *t);

/* The mesh config as the target holds it now (diagnostics dropped: the agents report them);
 * NULL with err set. */
struct mesh_config *target_config(const struct mesh_target *t, char *err, size_t errlen);

/* Put one object (YAML text) in force: `lab apply` for a lab (which waits until every agent
 * has read it), else an atomic write of file (a name in the config directory). 0, or -1. */
int target_apply(const struct mesh_target *t, const char *file, const char *yaml, char *err,
		 size_t errlen);

/* `bpfmesh services --node N -o json` for node i: the service entries as its maps hold them
 * (owned by the caller), or NULL. */
struct json_object *target_services(const struct mesh_target *t, int i);

/* json-c lookups: the value under key (NULL when absent), its text. */
struct json_object *rj_get(struct json_object *o, const char *key);
const char *rj_str(struct json_object *o, const char *key);

/* The Service a host names (short, ns-qualified or FQDN, read in namespace ns), or NULL. */
const struct svc_obj *target_service(const struct mesh_config *c, const char *host,
				     const char *ns);

/* A YAML tree node as json-c, each scalar of the type YAML gives it (kubectl's reading). */
struct json_object *ynode_to_json(const struct ynode *n);

#endif /* BM_ROLLOUT_H */
