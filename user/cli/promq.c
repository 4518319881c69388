// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * promq.c: Prometheus instant queries (see promq.h). One libcurl easy handle per query: the
 * stages ask a few queries per interval, and a fresh handle never carries a half-read answer
 * of a query that timed out into the next.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "httpbody.h"
#include "promq.h"

#define PROM_MAX_BODY (16 << 20) /* an answer larger than this is refused, not buffered */

/* data of a successful answer (a reference into *root), or NULL with p->err */
static struct json_object *query(struct prom *p, const char *promql, struct json_object **root)
{
	struct json_object *st, *data = NULL, *e;
	struct http_body b = {.max = PROM_MAX_BODY};
	CURL *c = curl_easy_init();
	char *q, *url;
	long code = 0;
	CURLcode rc;

	*root = NULL;
	p->bad_query = false;
	if (!c) {
		snprintf(p->err, sizeof(p->err), "curl_easy_init failed");
		return NULL;
	}
	q = curl_easy_escape(c, promql, 0);
	if (!q || asprintf(&url, "%s/api/v1/query?query=%s", p->url, q) < 0) {
		curl_free(q);
		curl_easy_cleanup(c);
		snprintf(p->err, sizeof(p->err), "out of memory");
		return NULL;
	}
	curl_free(q);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, p->timeout_ms > 0 ? p->timeout_ms : 5000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	free(url);
	if (rc != CURLE_OK) {
		snprintf(p->err, sizeof(p->err), "prometheus %s: %s", p->url,
			 b.big ? "answer too large" : curl_easy_strerror(rc));
		free(b.p);
		return NULL;
	}
	*root = b.p ? json_tokener_parse(b.p) : NULL;
	if (!*root || !json_object_object_get_ex(*root, "status", &st)) {
		snprintf(p->err, sizeof(p->err), "prometheus %s: HTTP %ld, not an API answer",
			 p->url, code);
	} else if (strcmp(json_object_get_string(st), "success")) {
		p->bad_query = code == 400 || code == 422;
		snprintf(p->err, sizeof(p->err), "prometheus refused the query (HTTP %ld): %s",
			 code,
			 json_object_object_get_ex(*root, "error", &e) ? json_object_get_string(e)
								       : "no reason given");
	} else if (!json_object_object_get_ex(*root, "data", &data)) {
		snprintf(p->err, sizeof(p->err), "prometheus %s: answer without data", p->url);
	}
	free(b.p);
	if (!data) {
		json_object_put(*root);
		*root = NULL;
	}
	return data;
}

int prom_value(struct prom *p, const char *promql, double *val)
{
	struct json_object *root, *data = query(p, promql, &root), *type, *res, *v = NULL;
	const char *t;
	int rc = 0;

	if (!data)
		return -1;
	if (!json_object_object_get_ex(data, "resultType", &type) ||
	    !json_object_object_get_ex(data, "result", &res)) {
		snprintf(p->err, sizeof(p->err), "prometheus: answer without a result");
		json_object_put(root);
		return -1;
	}
	t = json_object_get_string(type);
	if (!strcmp(t, "scalar")) {
		v = res; /* [time, "value"] */
	} else if (!strcmp(t, "vector")) {
		if (json_object_array_length(res) > 1) {
			snprintf(p->err, sizeof(p->err),
				 "the query yields %zu series, not one number: aggregate it (sum, "
				 "max...)",
				 json_object_array_length(res));
			p->bad_query = true;
			json_object_put(root);
			return -1;
		}
		if (json_object_array_length(res) > 0)
			json_object_object_get_ex(json_object_array_get_idx(res, 0), "value", &v);
	} else {
		snprintf(p->err, sizeof(p->err),
			 "the query yields a %s, not one number: aggregate it (sum, max...)", t);
		p->bad_query = true;
		json_object_put(root);
		return -1;
	}
	if (v && json_object_is_type(v, json_type_array) && json_object_array_length(v) == 2) {
		char *end;
		const char *s = json_object_get_string(json_object_array_get_idx(v, 1));
		double d = strtod(s, &end);

		if (*s && !*end && !isnan(d)) {
			*val = d;
			rc = 1;
		}
	}
	json_object_put(root);
	return rc;
}

struct json_object *prom_vector(struct prom *p, const char *promql)
{
	struct json_object *root, *data = query(p, promql, &root), *res, *out = NULL;

	if (!data)
		return NULL;
	if (json_object_object_get_ex(data, "result", &res) &&
	    json_object_is_type(res, json_type_array))
		out = json_object_get(res);
	else
		snprintf(p->err, sizeof(p->err), "prometheus: answer without a vector result");
	json_object_put(root);
	return out;
}
