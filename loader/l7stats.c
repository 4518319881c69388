// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7stats.c: Istio's HTTP metrics for the HTTP path: istio_requests_total and the
 * istio_request_duration_milliseconds, istio_request_bytes and istio_response_bytes
 * histograms (Envoy's default buckets, which Istio uses for all three), with Istio's labels
 * (metrics.h's, as the TCP series carry them, plus request_protocol, response_code,
 * grpc_response_status, response_flags, connection_security_policy). Each worker records
 * into its own table under its own mutex (taken only by the scraper); the scrape sums equal
 * label sets over workers. A series is keyed by its whole label text; the part that depends
 * on who talks to whom is built once per (snapshot, reporter, source, destination, service)
 * and cached.
 */
#include <stdlib.h>
#include <string.h>
#include "l7int.h"
#include "metrics.h"

static const double buckets[] = {0.5,	1,	5,	10,	 25,	 50,	100,
				 250,	500,	1000,	2500,	 5000,	 10000, 30000,
				 60000, 300000, 600000, 1800000, 3600000};
#define NB (sizeof(buckets) / sizeof(buckets[0]))

struct hist {
	uint64_t b[NB]; /* per bucket (not cumulative) */
	uint64_t count;
	double sum;
};

struct l7_series {
	char *labels;
	uint64_t requests;
	struct hist dur, req, resp;
};

void l7_stats_init(struct l7_stats *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
}

static void free_prefixes(struct l7_stats *s)
{
	for (int i = 0; i < s->nprefixes; i++)
		free(s->prefixes[i]);
	free(s->prefixes);
	s->prefixes = NULL;
	s->nprefixes = s->capprefixes = 0;
	h_free(&s->prefix_idx);
	memset(&s->prefix_idx, 0, sizeof(s->prefix_idx));
}

void l7_stats_free(struct l7_stats *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->v[i].labels);
	free(s->v);
	h_free(&s->idx);
	free_prefixes(s);
	pthread_mutex_destroy(&s->mu);
}

static void observe(struct hist *h, double v)
{
	size_t i = 0;

	while (i < NB && v > buckets[i])
		i++;
	if (i < NB)
		h->b[i]++;
	h->count++;
	h->sum += v;
}

/* The labels that say who talks to whom, for this record (cached per snapshot). */
static const char *prefix_of(struct l7_stats *s, const struct l7_record *r)
{
	uint8_t k[HKEY];
	char key[96];
	int *i;
	char *txt = NULL;
	size_t len = 0;
	FILE *f;

	if (r->snap && s->prefix_gen != r->snap->gen) {
		free_prefixes(s); /* labels come from the config in force */
		s->prefix_gen = r->snap->gen;
	}
	snprintf(key, sizeof(key), "%d|%p|%p|%d", r->destination, (const void *)r->src,
		 (const void *)r->dst, r->mtls);
	h_strkey(k, key, r->svc_ns, r->svc_name);
	i = h_get(&s->prefix_idx, k);
	if (i)
		return s->prefixes[*i];
	f = open_memstream(&txt, &len);
	if (!f)
		abort();
	metrics_source_labels(f, r->destination ? "destination" : "source", r->src, r->td);
	metrics_dest_labels(f, r->svc_ns, r->svc_name, r->dst, r->td);
	fclose(f);
	if (s->nprefixes == s->capprefixes) {
		int cap = s->capprefixes ? 2 * s->capprefixes : 64;
		char **v = realloc(s->prefixes, cap * sizeof(*v));

		if (!v)
			abort();
		s->prefixes = v;
		s->capprefixes = cap;
	}
	s->prefixes[s->nprefixes] = txt;
	h_put(&s->prefix_idx, k, s->nprefixes);
	return s->prefixes[s->nprefixes++];
}

void l7_stats_record(struct l7_stats *s, const struct l7_record *r)
{
	char tail[256], flags[64], code[16], gs[16], *labels;
	const char *pre;
	uint8_t k[HKEY];
	struct l7_series *se;
	int *i;

	l7_flags_str(r->flags, flags, sizeof(flags));
	snprintf(code, sizeof(code), "%d", r->code);
	if (r->grpc_status >= 0)
		snprintf(gs, sizeof(gs), "%d", r->grpc_status);
	else
		gs[0] = 0;
	snprintf(tail, sizeof(tail),
		 ",request_protocol=\"%s\",response_code=\"%s\",grpc_response_status=\"%s\","
		 "response_flags=\"%s\",connection_security_policy=\"%s\"",
		 r->grpc ? "grpc" : "http", code, gs, flags, r->mtls ? "mutual_tls" : "none");
	pthread_mutex_lock(&s->mu);
	pre = prefix_of(s, r);
	h_strkey(k, pre, tail, NULL);
	i = h_get(&s->idx, k);
	se = i ? &s->v[*i] : NULL;
	if (se && strncmp(se->labels, pre, strlen(pre)))
		se = NULL; /* a hash collision: astronomically rare; counted apart */
	if (!se) {
		if (asprintf(&labels, "%s%s", pre, tail) < 0)
			abort();
		if (s->n == s->cap) {
			int cap = s->cap ? 2 * s->cap : 64;
			struct l7_series *v = realloc(s->v, cap * sizeof(*v));

			if (!v)
				abort();
			s->v = v;
			s->cap = cap;
		}
		se = &s->v[s->n];
		memset(se, 0, sizeof(*se));
		se->labels = labels;
		h_put(&s->idx, k, s->n++);
	}
	se->requests++;
	observe(&se->dur, r->ms);
	observe(&se->req, (double)r->req_bytes);
	observe(&se->resp, (double)r->resp_bytes);
	pthread_mutex_unlock(&s->mu);
}

/* ---------------- the scrape ---------------- */

static int cmp_series(const void *a, const void *b)
{
	return strcmp(((const struct l7_series *)a)->labels, ((const struct l7_series *)b)->labels);
}

static void add_hist(struct hist *to, const struct hist *h)
{
	for (size_t i = 0; i < NB; i++)
		to->b[i] += h->b[i];
	to->count += h->count;
	to->sum += h->sum;
}

static void print_hist(FILE *out, const char *name, const char *labels, const struct hist *h)
{
	uint64_t cum = 0;

	for (size_t i = 0; i < NB; i++) {
		cum += h->b[i];
		fprintf(out, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, buckets[i],
			(unsigned long long)cum);
	}
	fprintf(out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
		(unsigned long long)h->count);
	fprintf(out, "%s_sum{%s} %.17g\n", name, labels, h->sum);
	fprintf(out, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

void l7_stats_render(struct l7_stats *const *v, int n, FILE *out)
{
	struct l7_series *all = NULL;
	int m = 0, cap = 0, u = 0;

	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&v[i]->mu);
		for (int j = 0; j < v[i]->n; j++) {
			if (m == cap) {
				cap = cap ? 2 * cap : 64;
				all = realloc(all, cap * sizeof(*all));
				if (!all)
					abort();
			}
			all[m] = v[i]->v[j];
			all[m].labels = strdup(v[i]->v[j].labels);
			if (!all[m].labels)
				abort();
			m++;
		}
		pthread_mutex_unlock(&v[i]->mu);
	}
	qsort(all, m, sizeof(*all), cmp_series);
	for (int i = 0; i < m; i++) { /* the same labels on several workers are one series */
		if (u && !strcmp(all[u - 1].labels, all[i].labels)) {
			all[u - 1].requests += all[i].requests;
			add_hist(&all[u - 1].dur, &all[i].dur);
			add_hist(&all[u - 1].req, &all[i].req);
			add_hist(&all[u - 1].resp, &all[i].resp);
			free(all[i].labels);
			continue;
		}
		all[u++] = all[i];
	}
	if (u) {
		fprintf(out,
			"# HELP istio_requests_total Requests, by response code and flags (the "
			"HTTP path).\n# TYPE istio_requests_total counter\n");
		for (int i = 0; i < u; i++)
			fprintf(out, "istio_requests_total{%s} %llu\n", all[i].labels,
				(unsigned long long)all[i].requests);
		fprintf(out, "# HELP istio_request_duration_milliseconds Request duration.\n"
			     "# TYPE istio_request_duration_milliseconds histogram\n");
		for (int i = 0; i < u; i++)
			print_hist(out, "istio_request_duration_milliseconds", all[i].labels,
				   &all[i].dur);
		fprintf(out, "# HELP istio_request_bytes Request body sizes.\n"
			     "# TYPE istio_request_bytes histogram\n");
		for (int i = 0; i < u; i++)
			print_hist(out, "istio_request_bytes", all[i].labels, &all[i].req);
		fprintf(out, "# HELP istio_response_bytes Response body sizes.\n"
			     "# TYPE istio_response_bytes histogram\n");
		for (int i = 0; i < u; i++)
			print_hist(out, "istio_response_bytes", all[i].labels, &all[i].resp);
	}
	for (int i = 0; i < u; i++)
		free(all[i].labels);
	free(all);
}
