/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * promq.h: instant queries against a real Prometheus's HTTP API (GET /api/v1/query), with
 * libcurl and json-c, for the pipeline stages (canary.c, verify.c).
 */
#ifndef BM_PROMQ_H
#define BM_PROMQ_H

#include <stdbool.h>
#include <json-c/json.h>

struct prom {
	char url[512];	 /* http://HOST:PORT, no trailing slash */
	long timeout_ms; /* per query; 0: 5000 */
	char err[512];	 /* why the last query failed */
	bool bad_query;	 /* it failed because of the query (refused, or not one number) */
};

/* The value of an instant query that yields one number (a scalar, or the first sample of a
 * vector): 1 with *val set, 0 when there is no data (an empty vector, or NaN: a ratio over no
 * requests), -1 when Prometheus cannot be asked or refuses the query (p->err says why). */
int prom_value(struct prom *p, const char *promql, double *val);

/* The whole result of an instant vector query (data.result, owned by the caller), or NULL
 * with p->err set. */
struct json_object *prom_vector(struct prom *p, const char *promql);

#endif /* BM_PROMQ_H */
