/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * yamltree.h: a YAML file as small trees of maps, lists and scalars with 1-based line numbers,
 * built straight from libyaml's parser events (yfile_load*; aliases are expanded, a later
 * anchor of a name replaces an earlier one, as go-yaml reads them). config.c and validate.c
 * read objects through the typed accessors here rather than walking libyaml nodes; config.c
 * also uses the libyaml helpers at the bottom to split files for `lab apply`.
 *
 * Scalars are typed the way kubectl reads YAML (YAML 1.1, go-yaml v2): a plain `80` is an
 * integer, a plain `yes` or `false` a boolean, `~` null, while any quoted scalar is a string.
 * That is why `labels: {version: 1}` is a type error here as it is for the API server.
 */
#ifndef BM_YAMLTREE_H
#define BM_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

enum ynode_type { YN_NULL = 0, YN_SCALAR, YN_SEQ, YN_MAP };

/* What a scalar resolves to. */
enum yscalar { YS_STR = 0, YS_INT, YS_FLOAT, YS_BOOL, YS_NULL };

struct ynode;

struct ypair {
	char *key;
	struct ynode *val;
};

struct ynode {
	enum ynode_type type;
	int line;	    /* of the key for a map value (where errors point), else of the node */
	char *str;	    /* YN_SCALAR text */
	enum yscalar skind; /* YN_SCALAR only */
	int n;		    /* items or pairs */
	struct ynode **items; /* YN_SEQ */
	struct ypair *pairs;  /* YN_MAP, in document order */
};

/* One document; root is NULL when the document is empty or null. */
struct ydoc {
	struct ynode *root;
	int line;
};

struct yfile {
	struct ydoc *docs;
	int ndocs;
};

struct yerror {
	int line; /* 1-based, 0 if unknown */
	bool io;  /* the file could not be read (as opposed to not being YAML) */
	char msg[256];
};

/* Parse every document of a file. On failure returns -1 with err filled, and out empty. */
int yfile_load(const char *path, struct yfile *out, struct yerror *err);
/* Same from memory (tests, and files already read). */
int yfile_load_mem(const char *buf, size_t len, struct yfile *out, struct yerror *err);
void yfile_free(struct yfile *f);

/* Build a tree from one libyaml document node (config.c's split for `lab apply`, which
 * loads documents with yaml_parser_load to emit them again). */
struct ynode *ytree_build(yaml_document_t *doc, yaml_node_t *node, struct yerror *err);
void ynode_free(struct ynode *n);
/* A deep copy (the agent keeps the last good version of each object); NULL when out of
 * memory. */
struct ynode *ynode_clone(const struct ynode *n);
/* A hash of the content (types, keys, scalars; not line numbers): equal trees hash alike, so
 * the agent can tell which objects an apply changed. */
uint64_t ynode_hash(const struct ynode *n);

/* ---- accessors; all take NULL and return "absent" for it ---- */

/* Value under key, or NULL when map is not a map, the key is absent, or its value is null. */
const struct ynode *ymap_get(const struct ynode *map, const char *key);
/* Like ymap_get but also returns explicit nulls (to tell `x:` from no x at all). */
const struct ynode *ymap_find(const struct ynode *map, const char *key);

bool ynode_is_map(const struct ynode *n);
bool ynode_is_seq(const struct ynode *n);
bool ynode_is_null(const struct ynode *n); /* NULL or YN_NULL or a null scalar */

/* Text of a string scalar, else NULL (an integer or boolean is not a string). */
const char *ynode_str(const struct ynode *n);
/* Text of any non-null scalar, else NULL. */
const char *ynode_text(const struct ynode *n);
/* 0 and *out set if n is an integer scalar, else -1. */
int ynode_int(const struct ynode *n, int64_t *out);
/* 0 and *out set if n is a number (integer or float), else -1. */
int ynode_num(const struct ynode *n, double *out);
/* 0 and *out set if n is a boolean scalar, else -1. */
int ynode_bool(const struct ynode *n, bool *out);

const char *ymap_str(const struct ynode *map, const char *key);
int64_t ymap_int(const struct ynode *map, const char *key, int64_t def);
bool ymap_bool(const struct ynode *map, const char *key, bool def);
/* Number of items of a list value (0 when absent or not a list). */
int ymap_len(const struct ynode *map, const char *key);

/* ---- libyaml helpers for re-emitting objects ---- */

/* Node under key in a libyaml mapping node, or NULL. */
yaml_node_t *ydoc_map_get(yaml_document_t *doc, yaml_node_t *map, const char *key);
/* Copy the subtree at node into a fresh document and emit it as standalone YAML (heap). */
int ydoc_emit_subtree(yaml_document_t *doc, yaml_node_t *node, char **out, size_t *len);

#endif /* BM_YAMLTREE_H */
