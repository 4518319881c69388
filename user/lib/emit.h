/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * emit.h: `-o json|yaml|wide` for the CLI (analyze, services, endpoints, status, lab status):
 * a command builds its answer once as a json-c tree and out_write() prints it as JSON (json-c's
 * own printer) or YAML (libyaml's emitter), so both outputs always hold the same fields.
 */
#ifndef BM_EMIT_H
#define BM_EMIT_H

#include <stdio.h>
#include <json-c/json.h>

enum out_fmt { OUT_TEXT = 0, OUT_WIDE, OUT_JSON, OUT_YAML };

/* "json", "yaml", "wide" (and "text" or NULL: the default table); -1 for anything else. */
int out_fmt_parse(const char *s);

/* Print o (taken as is, not freed) in fmt (OUT_JSON or OUT_YAML); 0, or -1 on an I/O error. */
int out_write(FILE *f, struct json_object *o, enum out_fmt fmt);

/* Small builders: add key -> value to obj (a NULL string adds null). */
void jset_str(struct json_object *obj, const char *key, const char *val);
void jset_int(struct json_object *obj, const char *key, long long val);
void jset_bool(struct json_object *obj, const char *key, int val);
void jset_double(struct json_object *obj, const char *key, double val);

#endif /* BM_EMIT_H */
