/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * vcore.h: internal to the validation files of the library (vcore.c, vschemas.c, vrules_*.c,
 * validate.c, crosscheck.c, analyze.c): the schema types and table macros, and what one file
 * of them offers the others. Everyone else uses validate.h (config.c) or model.h.
 */
#ifndef BM_VCORE_H
#define BM_VCORE_H

#include <stdbool.h>
#include <stdint.h>
#include "model.h"
#include "validate.h"
#include "yamltree.h"

#define PATHMAX 256

enum ftype {
	F_STR,
	F_INT, /* with a range when min < max */
	F_NUM,
	F_BOOL,
	F_DUR,	  /* a duration Istio validates: at least 1ms, whole milliseconds */
	F_DURANY, /* a duration Istio only parses */
	F_ENUM,
	F_OBJ,
	F_LIST_OBJ,
	F_LIST_STR,
	F_MAP_STR,
	F_MAP_OBJ,
	F_MAP_INT,
	F_INT_OR_STR,
	F_ANY,
	F_ANY_MAP,
};

struct schema;

struct field {
	const char *name;
	enum ftype type;
	const void *sub; /* struct schema (F_OBJ, F_LIST_OBJ, F_MAP_OBJ) or enum names */
	int64_t min, max;
};

/* What an unknown field is: a warning "unknown field (ignored)", as the API server drops the
 * fields a CRD or built-in schema does not know (and warns), or nothing at all where a map
 * holds free-form keys (metadata we do not read). */
enum unknown_mode { U_WARN, U_IGNORE };

struct schema {
	enum unknown_mode unknown;
	const struct field *fields;
};

#define I32  INT32_MIN, INT32_MAX
#define U32  0, UINT32_MAX
#define PORT 1, 65535
#define FS(n)                                                                                      \
	{                                                                                          \
		.name = n, .type = F_STR                                                           \
	}
#define RANGE(lo, hi) .min = lo, .max = hi
#define FIR(n, ...)                                                                                \
	{                                                                                          \
		.name = n, .type = F_INT, RANGE(__VA_ARGS__)                                       \
	}
#define FN(n)                                                                                      \
	{                                                                                          \
		.name = n, .type = F_NUM                                                           \
	}
#define FB(n)                                                                                      \
	{                                                                                          \
		.name = n, .type = F_BOOL                                                          \
	}
#define FD(n)                                                                                      \
	{                                                                                          \
		.name = n, .type = F_DUR                                                           \
	}
#define FDA(n)                                                                                     \
	{                                                                                          \
		.name = n, .type = F_DURANY                                                        \
	}
#define FE(n, e)                                                                                   \
	{                                                                                          \
		.name = n, .type = F_ENUM, .sub = e                                                \
	}
#define FO(n, s)                                                                                   \
	{                                                                                          \
		.name = n, .type = F_OBJ, .sub = &s                                                \
	}
#define FLO(n, s)                                                                                  \
	{                                                                                          \
		.name = n, .type = F_LIST_OBJ, .sub = &s                                           \
	}
#define FLS(n)                                                                                     \
	{                                                                                          \
		.name = n, .type = F_LIST_STR                                                      \
	}
#define FMS(n)                                                                                     \
	{                                                                                          \
		.name = n, .type = F_MAP_STR                                                       \
	}
#define FMO(n, s)                                                                                  \
	{                                                                                          \
		.name = n, .type = F_MAP_OBJ, .sub = &s                                            \
	}
#define FMI(n, ...)                                                                                \
	{                                                                                          \
		.name = n, .type = F_MAP_INT, RANGE(__VA_ARGS__)                                   \
	}
#define FIS(n, ...)                                                                                \
	{                                                                                          \
		.name = n, .type = F_INT_OR_STR, RANGE(__VA_ARGS__)                                \
	}
#define FANY(n)                                                                                    \
	{                                                                                          \
		.name = n, .type = F_ANY                                                           \
	}
#define FAM(n)                                                                                     \
	{                                                                                          \
		.name = n, .type = F_ANY_MAP                                                       \
	}
#define SCHEMA(var, mode, ...)                                                                     \
	static const struct field var##_f[] = {__VA_ARGS__, {.name = NULL}};                       \
	static const struct schema var = {mode, var##_f}

/* vschemas.c: the root schema of a kind */
const struct schema *schema_root(enum obj_kind kind);

/* vcore.c */
const char *pathf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool all_digits(const char *s, size_t len);
void check_duration(struct vctx *v, const struct ynode *n, const char *path, bool istio);
void check_export_to(struct vctx *v, const struct ynode *spec, const char *path,
		     bool service_entry);
void check_gateway_names(struct vctx *v, const struct ynode *l, const char *path);
void check_int(struct vctx *v, const struct ynode *n, const char *path, int64_t lo, int64_t hi);
void check_labels(struct vctx *v, const struct ynode *map, const char *path);
void check_list(struct vctx *v, const struct ynode *n, const char *path, const struct field *f);
void check_map(struct vctx *v, const struct ynode *n, const char *path, const struct field *f);
void check_obj(struct vctx *v, const struct ynode *n, const char *path, const struct schema *s);
void check_percentage(struct vctx *v, const struct ynode *owner, const char *path);
void check_selector_labels(struct vctx *v, const struct ynode *owner, const char *key,
			   const char *path);
void check_value(struct vctx *v, const struct ynode *n, const char *path, const struct field *f);
int count(const struct ynode *n);
bool dns1035_label(const char *s);
bool dns1123_labels(const char *domain, const char *whole, char *why, size_t wlen);
bool dns_label(const char *s, bool upper);
bool dns_label_n(const char *s, size_t len, bool upper);
bool dns_preconditions(const char *s, char *why, size_t wlen);
bool dns_subdomain(const char *s);
void enum_error(struct vctx *v, const struct ynode *n, const char *path, const char *const *names);
const struct field *find_field(const struct schema *s, const char *name);
const struct ynode *g(const struct ynode *n, const char *key);
bool has(const struct ynode *map, const char *key);
bool host_matches(const char *a, const char *b);
bool host_subset_of(const char *a, const char *b);
bool iana_svc_name(const char *s);
bool in_strs(const char *s, const char *const *list);
bool is_alnum(char c, bool upper);
bool label_key_ok(const char *k);
bool label_name(const char *s, size_t len);
bool label_value_ok(const char *v);
const char *pidx(char *buf, const char *base, int i);
const char *pjoin(char *buf, const char *base, const char *key);
const char *pkey(char *buf, const char *base, const char *key);
int seen_at(struct htab *h, const char *a, const char *b, int idx);
bool str_in_seq(const struct ynode *seq, int upto, const char *s);
bool valid_fqdn(const char *s, char *why, size_t wlen);
bool valid_ip(const char *s);
bool valid_ip_or_cidr(const char *s);
bool valid_wildcard_domain(const char *s, char *why, size_t wlen);
void vreport(struct vctx *v, enum diag_sev sev, const struct ynode *at, const char *field,
	     const char *fmt, va_list ap);
bool wildcard_label(const char *s, size_t len);

/* vrules_net.c */
void dr_rules(struct vctx *v, const struct ynode *spec);
void vs_rules(struct vctx *v, const struct ynode *spec);

/* vrules_istio.c */
void gw_rules(struct vctx *v, const struct ynode *root, const struct ynode *spec);
void se_rules(struct vctx *v, const struct ynode *spec);
void we_rules(struct vctx *v, const struct ynode *spec);

/* vrules_sec.c */
void ap_rules(struct vctx *v, const struct ynode *spec);
void pa_rules(struct vctx *v, const struct ynode *spec);

/* vrules_k8s.c */
void check_meta(struct vctx *v, enum obj_kind kind, const struct ynode *root);
void deploy_rules(struct vctx *v, const struct ynode *spec);
void pod_rules(struct vctx *v, const struct ynode *root);
void svc_rules(struct vctx *v, const struct ynode *spec);

/* crosscheck.c */
int analyze_istio(const struct mesh_config *c, struct diags *d);
void vs_object(char *buf, size_t len, const char *kind, const char *ns, const char *name);

#endif /* BM_VCORE_H */
