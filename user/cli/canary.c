// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * canary.c: `bpfmesh canary run -f CANARY.yaml`, the guide's progressive delivery stage as a
 * command a CI job calls. A Canary in Flagger's analysis vocabulary (stepWeights or
 * stepWeight + maxWeight, interval, threshold, metrics with thresholdRange) walks the
 * VirtualService of one host from subset `from` to subset `to`: at each step it writes the
 * weights, waits until every node's maps hold them (bpfmesh services), lets the interval pass,
 * then asks a real Prometheus Istio's queries (Flagger's request-success-rate and
 * request-duration, on istio_requests_total and istio_request_duration_milliseconds_bucket,
 * reporter="destination", the canary subset's workloads) and custom PromQL. As Flagger does, a
 * failed check keeps the weight and checks again after another interval; `threshold` failed
 * checks roll back to 100% on `from`. A step with no request to the canary is a failed check.
 * Prometheus unreachable or Ctrl-C: the weights go back to the last step whose checks passed,
 * never half-written, and it says so.
 *
 * Exit: 0 promoted, 1 rolled back, 2 usage or config error, 3 aborted (Prometheus failed or a
 * weight did not come in force), 130 interrupted.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include "args.h"
#include "cli.h"
#include "duration.h"
#include "emit.h"
#include "model.h"
#include "promq.h"
#include "report.h"
#include "resolve.h"
#include "rollout.h"
#include "yamltree.h"

#define CANARY_MAX_STEPS   100
#define CANARY_MAX_METRICS 16
#define CANARY_FORCE_MS	   30000 /* a weight not in force on every node by then: abort */
#define CANARY_PROM_TRIES  3	 /* a query is asked this many times, 1 s apart, before aborting */

enum { EXIT_PROMOTED = 0, EXIT_ROLLED_BACK = 1, EXIT_USAGE = 2, EXIT_ABORTED = 3 };

static const char canary_usage[] =
    "usage: bpfmesh canary run -f CANARY.yaml (--lab NAME | --config-dir DIR --node NODE...)\n"
    "                          [--prometheus URL] [--json] [--junit FILE]\n"
    "  walks the VirtualService of spec.service from subset spec.from to spec.to by\n"
    "  spec.analysis.stepWeights (or stepWeight + maxWeight), checking the metrics against a\n"
    "  real Prometheus at every step; rolls back after spec.analysis.threshold failed checks.\n"
    "  --lab NAME        the lab's config, nodes and Prometheus (lab up --prometheus)\n"
    "  --config-dir DIR  a node's config directory; --node NODE (repeatable): the agents whose\n"
    "                    maps must hold each weight before its interval starts\n"
    "  exit 0 promoted, 1 rolled back (100% on spec.from), 2 usage or config error,\n"
    "  3 aborted (Prometheus failed; weights left at the last step that passed), 130 Ctrl-C\n";

enum metric_kind { M_SUCCESS, M_DURATION, M_CUSTOM };

struct metric {
	char name[64];
	enum metric_kind kind;
	char *query; /* custom */
	bool has_min, has_max;
	double min, max;
	int64_t interval_ns;
};

struct canary {
	const char *file;
	char *name, *ns, *service, *from, *to;
	int64_t interval_ns;
	int threshold;
	int steps[CANARY_MAX_STEPS];
	int nsteps;
	struct metric m[CANARY_MAX_METRICS];
	int nm;
};

/* What the canary acts on, resolved from the config in force. */
struct plan {
	char fqdn[300];
	char svc_name[128];
	char workloads[1024];	/* regex of the `to` subset's workload names, for the queries */
	char wl_list[1024];	/* the same, for people */
	struct json_object *vs; /* the VirtualService it writes (weights rewritten per step) */
	char file[300];		/* its file in the config directory */
	char vs_name[256];
	bool took_over; /* config-dir: it rewrites the user's file that held the VirtualService */
};

static volatile sig_atomic_t interrupted;

static void on_int(int sig)
{
	interrupted = sig;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---------------- the spec ---------------- */

static int spec_err(const struct canary *k, const struct ynode *at, const char *field,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int spec_err(const struct canary *k, const struct ynode *at, const char *field,
		    const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: %s: ", k->file, at ? at->line : 0, field);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

/* Keys of map that are not in known: said, never silently dropped (Flagger has many more). */
static void warn_unknown(const struct canary *k, const struct ynode *map, const char *where,
			 const char *const *known)
{
	for (int i = 0; map && map->type == YN_MAP && i < map->n; i++) {
		bool ok = false;

		for (int j = 0; known[j]; j++)
			ok |= !strcmp(map->pairs[i].key, known[j]);
		if (!ok)
			fprintf(stderr,
				"%s:%d: warning: %s.%s: not supported by bpfmesh canary "
				"(ignored)\n",
				k->file, map->pairs[i].val ? map->pairs[i].val->line : map->line,
				where, map->pairs[i].key);
	}
}

static int req_str(const struct canary *k, const struct ynode *map, const char *key,
		   const char *field, char **out)
{
	const char *s = ymap_str(map, key);

	if (!s || !*s)
		return spec_err(k, map, field, "required (a string)");
	*out = strdup(s);
	return 0;
}

static int parse_interval(const struct canary *k, const struct ynode *map, const char *key,
			  const char *field, int64_t def, int64_t *out)
{
	const struct ynode *n = ymap_get(map, key);
	const char *s = ynode_text(n);

	*out = def;
	if (!n)
		return 0;
	if (!s || parse_duration_ns(s, out) || *out < 1000000000LL || *out % 1000000000LL)
		return spec_err(k, n, field,
				"want a duration in whole seconds, at least 1s (as 10s, "
				"1m)");
	return 0;
}

static int parse_metric(struct canary *k, const struct ynode *n, int i)
{
	static const char *const known[] = {"name", "thresholdRange", "interval", "query", NULL};
	struct metric *m = &k->m[k->nm];
	const struct ynode *tr = ymap_get(n, "thresholdRange");
	char field[96];
	const char *name = ymap_str(n, "name"), *q = ymap_str(n, "query");

	snprintf(field, sizeof(field), "spec.analysis.metrics[%d]", i);
	if (!ynode_is_map(n))
		return spec_err(k, n, field, "want a map");
	warn_unknown(k, n, field, known);
	if (ymap_get(n, "templateRef"))
		return spec_err(k, ymap_get(n, "templateRef"), field,
				"templateRef: MetricTemplates are not supported; give the PromQL "
				"in query");
	if (!name || !*name)
		return spec_err(k, n, field, "name: required");
	snprintf(m->name, sizeof(m->name), "%s", name);
	if (q && *q) {
		m->kind = M_CUSTOM;
		m->query = strdup(q);
	} else if (!strcmp(name, "request-success-rate")) {
		m->kind = M_SUCCESS;
	} else if (!strcmp(name, "request-duration")) {
		m->kind = M_DURATION;
	} else {
		return spec_err(k, n, field,
				"%s: not a built-in metric (request-success-rate, "
				"request-duration): give its query",
				name);
	}
	if (tr) {
		const struct ynode *mn = ymap_get(tr, "min"), *mx = ymap_get(tr, "max");

		if ((mn && ynode_num(mn, &m->min)) || (mx && ynode_num(mx, &m->max)))
			return spec_err(k, tr, field, "thresholdRange: min and max are numbers");
		m->has_min = mn != NULL;
		m->has_max = mx != NULL;
	}
	/* Flagger's defaults for its two built-ins: at least 99% success, p99 at most 500 ms */
	if (!m->has_min && !m->has_max) {
		if (m->kind == M_CUSTOM)
			return spec_err(k, n, field, "thresholdRange: min or max required");
		m->has_min = m->kind == M_SUCCESS;
		m->min = 99;
		m->has_max = m->kind == M_DURATION;
		m->max = 500;
	}
	if (parse_interval(k, n, "interval", field, 60000000000LL, &m->interval_ns))
		return -1;
	k->nm++;
	return 0;
}

static int parse_spec(struct canary *k, const char *file)
{
	static const char *const top[] = {"apiVersion", "kind", "metadata", "spec", NULL};
	static const char *const sknown[] = {"service", "from", "to", "analysis", NULL};
	static const char *const aknown[] = {"interval",  "threshold", "stepWeights", "stepWeight",
					     "maxWeight", "metrics",   NULL};
	struct yfile yf = {0};
	struct yerror ye = {0};
	const struct ynode *root, *meta, *spec, *an, *sw, *ms;
	int64_t v;
	int rc = -1;

	k->file = file;
	if (yfile_load(file, &yf, &ye)) {
		fprintf(stderr, "%s:%d: %s\n", file, ye.line, ye.msg);
		return -1;
	}
	if (yf.ndocs != 1 || !ynode_is_map(yf.docs[0].root)) {
		fprintf(stderr, "%s: want one Canary document\n", file);
		goto out;
	}
	root = yf.docs[0].root;
	warn_unknown(k, root, "Canary", top);
	if (!ymap_str(root, "apiVersion") ||
	    strcmp(ymap_str(root, "apiVersion"), "bpfmesh.io/v1alpha1")) {
		spec_err(k, root, "apiVersion", "want bpfmesh.io/v1alpha1");
		goto out;
	}
	if (!ymap_str(root, "kind") || strcmp(ymap_str(root, "kind"), "Canary")) {
		spec_err(k, root, "kind", "want Canary");
		goto out;
	}
	meta = ymap_get(root, "metadata");
	spec = ymap_get(root, "spec");
	if (req_str(k, meta, "name", "metadata.name", &k->name))
		goto out;
	k->ns = strdup(ymap_str(meta, "namespace") ? ymap_str(meta, "namespace") : "default");
	if (!ynode_is_map(spec)) {
		spec_err(k, root, "spec", "required (a map)");
		goto out;
	}
	warn_unknown(k, spec, "spec", sknown);
	if (req_str(k, spec, "service", "spec.service", &k->service) ||
	    req_str(k, spec, "from", "spec.from", &k->from) ||
	    req_str(k, spec, "to", "spec.to", &k->to))
		goto out;
	if (!strcmp(k->from, k->to)) {
		spec_err(k, spec, "spec.to", "the same subset as spec.from");
		goto out;
	}
	an = ymap_get(spec, "analysis");
	if (!ynode_is_map(an)) {
		spec_err(k, spec, "spec.analysis", "required (a map)");
		goto out;
	}
	warn_unknown(k, an, "spec.analysis", aknown);
	if (parse_interval(k, an, "interval", "spec.analysis.interval", 60000000000LL,
			   &k->interval_ns))
		goto out;
	k->threshold = 1;
	if (ymap_get(an, "threshold")) {
		if (ynode_int(ymap_get(an, "threshold"), &v) || v < 1 || v > 1000) {
			spec_err(k, ymap_get(an, "threshold"), "spec.analysis.threshold",
				 "want a whole number from 1 to 1000");
			goto out;
		}
		k->threshold = (int)v;
	}
	sw = ymap_get(an, "stepWeights");
	if (sw && ymap_get(an, "stepWeight")) {
		spec_err(k, sw, "spec.analysis.stepWeights",
			 "give stepWeights or stepWeight, not "
			 "both");
		goto out;
	}
	if (sw) {
		if (!ynode_is_seq(sw) || !sw->n || sw->n > CANARY_MAX_STEPS) {
			spec_err(k, sw, "spec.analysis.stepWeights",
				 "want a list of 1 to %d weights", CANARY_MAX_STEPS);
			goto out;
		}
		for (int i = 0; i < sw->n; i++) {
			if (ynode_int(sw->items[i], &v) || v < 1 || v > 100 ||
			    (i && v <= k->steps[i - 1])) {
				spec_err(k, sw->items[i], "spec.analysis.stepWeights",
					 "want rising whole numbers from 1 to 100");
				goto out;
			}
			k->steps[k->nsteps++] = (int)v;
		}
	} else {
		int64_t step = 0, max = 100;

		if (ynode_int(ymap_get(an, "stepWeight"), &step) || step < 1 || step > 100) {
			spec_err(k, an, "spec.analysis.stepWeight",
				 "want stepWeights, or stepWeight from 1 to 100");
			goto out;
		}
		if (ymap_get(an, "maxWeight") &&
		    (ynode_int(ymap_get(an, "maxWeight"), &max) || max < step || max > 100)) {
			spec_err(k, ymap_get(an, "maxWeight"), "spec.analysis.maxWeight",
				 "want a whole number from stepWeight to 100");
			goto out;
		}
		for (int64_t w = step; w <= max && k->nsteps < CANARY_MAX_STEPS; w += step)
			k->steps[k->nsteps++] = (int)w;
	}
	ms = ymap_get(an, "metrics");
	if (ms && (!ynode_is_seq(ms) || ms->n > CANARY_MAX_METRICS)) {
		spec_err(k, ms, "spec.analysis.metrics", "want a list of at most %d metrics",
			 CANARY_MAX_METRICS);
		goto out;
	}
	for (int i = 0; ms && i < ms->n; i++)
		if (parse_metric(k, ms->items[i], i))
			goto out;
	rc = 0;
out:
	yfile_free(&yf);
	return rc;
}

/* ---------------- what it acts on ---------------- */

static bool host_is(const char *host, const char *ns, const char *fqdn)
{
	char *f = config_fqdn(host, ns);
	bool eq = f && !strcmp(f, fqdn);

	free(f);
	return eq;
}

/* The `to` subset's workloads (Istio's destination_workload values). */
static int target_workloads(const struct canary *k, const struct mesh_config *c,
			    const struct svc_obj *svc, const struct dr_subset *to, struct plan *p)
{
	char names[32][256];
	int n = 0;

	for (int i = 0; i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];
		char wl[256];
		bool dup = false;

		if (strcmp(w->ns, svc->ns) || !kv_match(&svc->selector, &w->labels) ||
		    !kv_match(&to->labels, &w->labels))
			continue;
		config_workload_name(w, wl, sizeof(wl));
		for (int j = 0; j < n; j++)
			dup |= !strcmp(names[j], wl);
		if (!dup && n < 32)
			snprintf(names[n++], sizeof(names[0]), "%s", wl);
	}
	if (!n) {
		fprintf(stderr,
			"canary %s/%s: subset %s of %s selects no workload of Service %s/%s\n",
			k->ns, k->name, k->to, p->fqdn, svc->ns, svc->name);
		return -1;
	}
	for (int j = 0; j < n; j++) {
		size_t a = strlen(p->workloads), b = strlen(p->wl_list);

		snprintf(p->wl_list + b, sizeof(p->wl_list) - b, "%s%s", j ? ", " : "", names[j]);
		if (j && a + 1 < sizeof(p->workloads))
			p->workloads[a++] = '|';
		for (const char *s = names[j]; *s && a + 3 < sizeof(p->workloads); s++) {
			if (*s == '.')
				p->workloads[a++] = '\\', p->workloads[a++] = '\\';
			p->workloads[a++] = *s;
		}
		p->workloads[a] = 0;
	}
	return 0;
}

/* The VirtualService's source document as JSON (the canary rewrites its weights). */
static struct json_object *vs_document(const struct vs_obj *vs, int *ndocs)
{
	struct yfile yf = {0};
	struct yerror ye = {0};
	struct json_object *o = NULL;

	*ndocs = 0;
	if (!vs->pos.file || yfile_load(vs->pos.file, &yf, &ye))
		return NULL;
	*ndocs = yf.ndocs;
	for (int i = 0; i < yf.ndocs && !o; i++) {
		const struct ynode *r = yf.docs[i].root, *meta = ymap_get(r, "metadata");
		const char *ns = ymap_str(meta, "namespace");

		if (ymap_str(r, "kind") && !strcmp(ymap_str(r, "kind"), "VirtualService") &&
		    ymap_str(meta, "name") && !strcmp(ymap_str(meta, "name"), vs->name) &&
		    !strcmp(ns ? ns : "default", vs->ns))
			o = ynode_to_json(r);
	}
	yfile_free(&yf);
	return o;
}

static bool is_http_port(const struct svc_port *sp)
{
	const char *n = sp->app_protocol ? sp->app_protocol : sp->name;

	return !n || !strncmp(n, "http", 4) || !strncmp(n, "grpc", 4) ||
	       !strcmp(n, "kubernetes.io/h2c");
}

static struct json_object *dest(const char *host, const char *subset)
{
	struct json_object *d = json_object_new_object(), *in = json_object_new_object();

	jset_str(in, "host", host);
	jset_str(in, "subset", subset);
	json_object_object_add(d, "destination", in);
	return d;
}

/* A new VirtualService for the host: one route, every port of the Service. */
static struct json_object *vs_new(const struct canary *k, const struct svc_obj *svc)
{
	struct json_object *vs = json_object_new_object(), *meta = json_object_new_object();
	struct json_object *spec = json_object_new_object(), *hosts = json_object_new_array();
	struct json_object *routes = json_object_new_array(), *r = json_object_new_object();
	struct json_object *dl = json_object_new_array();
	bool http = false;

	for (int i = 0; i < svc->nports; i++)
		http |= is_http_port(&svc->ports[i]);
	jset_str(vs, "apiVersion", "networking.istio.io/v1beta1");
	jset_str(vs, "kind", "VirtualService");
	jset_str(meta, "name", svc->name);
	jset_str(meta, "namespace", k->ns);
	json_object_object_add(vs, "metadata", meta);
	json_object_array_add(hosts, json_object_new_string(k->service));
	json_object_object_add(spec, "hosts", hosts);
	json_object_array_add(dl, dest(k->service, k->from));
	json_object_array_add(dl, dest(k->service, k->to));
	json_object_object_add(r, "route", dl);
	json_object_array_add(routes, r);
	json_object_object_add(spec, http ? "http" : "tcp", routes);
	json_object_object_add(vs, "spec", spec);
	return vs;
}

/*
 * Set weight w on `to` and 100 - w on `from` in every route of vs that sends to those subsets
 * of the host. Returns how many routes it set, or -1 (err) when a route also sends elsewhere:
 * the canary splits between its two subsets only.
 */
static int set_weights(const struct canary *k, const struct plan *p, struct json_object *vs, int w,
		       char *err, size_t errlen)
{
	static const char *const kinds[] = {"http", "tls", "tcp"};
	struct json_object *spec = rj_get(vs, "spec");
	int set = 0;

	for (int kd = 0; kd < 3; kd++) {
		struct json_object *list = rj_get(spec, kinds[kd]);

		for (size_t i = 0; list && i < json_object_array_length(list); i++) {
			struct json_object *r = json_object_array_get_idx(list, i);
			struct json_object *dl = rj_get(r, "route"), *df = NULL, *dt = NULL, *nl;
			bool ours = false, other = false;

			for (size_t j = 0; dl && j < json_object_array_length(dl); j++) {
				struct json_object *d = json_object_array_get_idx(dl, j);
				struct json_object *in = rj_get(d, "destination");
				const char *h = rj_str(in, "host"), *s = rj_str(in, "subset");
				bool mine = h && host_is(h, k->ns, p->fqdn) && s &&
					    (!strcmp(s, k->from) || !strcmp(s, k->to));

				ours |= mine;
				other |= !mine;
				if (mine && !strcmp(s, k->from) && !df)
					df = d;
				if (mine && !strcmp(s, k->to) && !dt)
					dt = d;
			}
			if (!ours)
				continue;
			if (other) {
				snprintf(err, errlen,
					 "VirtualService %s: spec.%s[%zu] also routes to other "
					 "destinations; the canary splits between %s and %s only",
					 p->vs_name, kinds[kd], i, k->from, k->to);
				return -1;
			}
			/* [from 100-w, to w], each keeping its own fields (port, headers) */
			nl = json_object_new_array();
			{
				struct json_object *a = NULL, *b = NULL;

				json_object_deep_copy(df ? df : dt, &a, NULL);
				json_object_deep_copy(dt ? dt : df, &b, NULL);
				json_object_object_add(rj_get(a, "destination"), "subset",
						       json_object_new_string(k->from));
				json_object_object_add(rj_get(b, "destination"), "subset",
						       json_object_new_string(k->to));
				json_object_object_add(a, "weight", json_object_new_int(100 - w));
				json_object_object_add(b, "weight", json_object_new_int(w));
				json_object_array_add(nl, a);
				json_object_array_add(nl, b);
			}
			json_object_object_add(r, "route", nl);
			set++;
		}
	}
	if (!set)
		snprintf(err, errlen, "VirtualService %s has no route to subsets %s or %s of %s",
			 p->vs_name, k->from, k->to, p->fqdn);
	return set ? set : -1;
}

static int plan_make(const struct canary *k, const struct mesh_target *t, struct plan *p)
{
	char err[600], *f;
	struct mesh_config *c = target_config(t, err, sizeof(err));
	const struct svc_obj *svc = NULL;
	const struct vs_obj *vs = NULL;
	const struct dr_obj *dr = NULL;
	const struct dr_subset *sf, *st;
	int rc = -1, nvs = 0;

	if (!c) {
		fprintf(stderr, "canary: %s\n", err);
		return -1;
	}
	f = config_fqdn(k->service, k->ns);
	snprintf(p->fqdn, sizeof(p->fqdn), "%s", f ? f : "");
	free(f);
	svc = target_service(c, k->service, k->ns);
	if (!svc) {
		fprintf(stderr, "%s: spec.service: no Service %s in the config (%s)\n", k->file,
			p->fqdn, t->config_dir);
		goto out;
	}
	snprintf(p->svc_name, sizeof(p->svc_name), "%s/%s", svc->ns, svc->name);
	dr = rs_find_dr(c, p->fqdn, svc->ns);
	sf = dr ? rs_find_subset(c, dr, k->from) : NULL;
	st = dr ? rs_find_subset(c, dr, k->to) : NULL;
	if (!sf || !st) {
		fprintf(stderr,
			"%s: spec.%s: no subset %s in a DestinationRule for %s (the canary needs "
			"both subsets defined)\n",
			k->file, sf ? "to" : "from", sf ? k->to : k->from, p->fqdn);
		goto out;
	}
	if (target_workloads(k, c, svc, st, p))
		goto out;
	for (int i = 0; i < c->nvses; i++) {
		bool hit = false;

		if (c->vses[i].ngateways)
			continue; /* a gateway's routes are not the mesh's */
		for (int h = 0; h < c->vses[i].nhosts; h++)
			hit |= host_is(c->vses[i].hosts[h], c->vses[i].ns, p->fqdn);
		if (hit && !nvs++)
			vs = &c->vses[i];
	}
	if (nvs > 1) {
		fprintf(
		    stderr,
		    "canary %s/%s: %d VirtualServices route %s; the canary owns one (remove the "
		    "others)\n",
		    k->ns, k->name, nvs, p->fqdn);
		goto out;
	}
	if (vs) {
		int ndocs;

		snprintf(p->vs_name, sizeof(p->vs_name), "%s/%s", vs->ns, vs->name);
		p->vs = vs_document(vs, &ndocs);
		if (!p->vs) {
			fprintf(stderr, "canary: cannot read VirtualService %s from %s\n",
				p->vs_name, vs->pos.file ? vs->pos.file : "?");
			goto out;
		}
		if (!t->lab) {
			const char *base = strrchr(vs->pos.file, '/');

			if (ndocs != 1) {
				fprintf(stderr,
					"canary %s/%s: %s holds VirtualService %s with other "
					"objects; the canary rewrites that VirtualService's file: "
					"give it a file of its own\n",
					k->ns, k->name, vs->pos.file, p->vs_name);
				goto out;
			}
			snprintf(p->file, sizeof(p->file), "%s", base ? base + 1 : vs->pos.file);
			p->took_over = true;
		}
	} else {
		p->vs = vs_new(k, svc);
		snprintf(p->vs_name, sizeof(p->vs_name), "%s/%s", k->ns, svc->name);
	}
	if (!p->file[0])
		snprintf(p->file, sizeof(p->file), "canary-%s-%s.yaml", k->ns, k->name);
	{ /* requests counted and split per request: Istio's view of an HTTP port */
		struct json_object *meta = rj_get(p->vs, "metadata"),
				   *ann = rj_get(meta, "annotations");

		if (!ann) {
			ann = json_object_new_object();
			json_object_object_add(meta, "annotations", ann);
		}
		jset_str(ann, "bpfmesh.io/per-request", "true");
		jset_str(ann, "bpfmesh.io/canary", k->name);
	}
	if (set_weights(k, p, p->vs, 0, err, sizeof(err)) < 0) {
		fprintf(stderr, "canary %s/%s: %s\n", k->ns, k->name, err);
		goto out;
	}
	rc = 0;
out:
	config_free(c);
	return rc;
}

/* ---------------- weights ---------------- */

/* The share (percent) of `to` in every route of the service on node i; -1 when the node holds
 * no route to those subsets, -2 when routes disagree (a change half read: never, by the
 * agent's flip), -3 when the node cannot be read. */
static double node_weight(const struct canary *k, const struct plan *p, const struct mesh_target *t,
			  int i)
{
	struct json_object *svcs = target_services(t, i);
	double got = -1;

	if (!svcs)
		return -3;
	for (size_t s = 0; s < json_object_array_length(svcs); s++) {
		struct json_object *e = json_object_array_get_idx(svcs, s),
				   *list = rj_get(e, "routes");
		size_t nr = list ? json_object_array_length(list) : 1;

		if (!rj_str(e, "service") || strcmp(rj_str(e, "service"), p->svc_name))
			continue;
		for (size_t r = 0; r < nr; r++) {
			struct json_object *route =
			    list ? json_object_array_get_idx(list, r) : rj_get(e, "route");
			struct json_object *d = rj_get(route, "destinations");
			double to = 0;
			bool ours = false;

			for (size_t j = 0; d && j < json_object_array_length(d); j++) {
				struct json_object *x = json_object_array_get_idx(d, j);
				const char *sn = rj_str(x, "subset");

				if (!sn || (strcmp(sn, k->from) && strcmp(sn, k->to)))
					continue;
				ours = true;
				if (!strcmp(sn, k->to))
					to += json_object_get_double(rj_get(x, "percent"));
			}
			if (!ours)
				continue;
			if (got >= 0 && fabs(got - to) > 0.5) {
				json_object_put(svcs);
				return -2;
			}
			got = to;
		}
	}
	json_object_put(svcs);
	return got;
}

/* Write weight w and wait until every node holds it; ms it took, or -1 (err). */
static long put_weight(const struct canary *k, struct plan *p, const struct mesh_target *t,
		       int w, bool interruptible, char *err, size_t errlen)
{
	double t0 = now_s();
	sigset_t block, old;
	int rc;

	if (set_weights(k, p, p->vs, w, err, errlen) < 0)
		return -1;
	{ /* as YAML, like every file a user keeps there */
		char *buf = NULL;
		size_t len = 0;
		FILE *mf = open_memstream(&buf, &len);

		out_write(mf, p->vs, OUT_YAML);
		fclose(mf);
		/* Ctrl-C waits until the write is whole: never half-written */
		sigemptyset(&block);
		sigaddset(&block, SIGINT);
		sigaddset(&block, SIGTERM);
		sigprocmask(SIG_BLOCK, &block, &old);
		rc = buf ? target_apply(t, p->file, buf, err, errlen) : -1;
		if (!buf)
			snprintf(err, errlen, "out of memory");
		sigprocmask(SIG_SETMASK, &old, NULL);
		free(buf);
	}
	if (rc)
		return -1;
	for (int i = 0; i < t->nnodes; i++) {
		double got;

		while ((got = node_weight(k, p, t, i)) < 0 || fabs(got - w) > 0.5) {
			if (interruptible && interrupted) {
				snprintf(err, errlen, "interrupted");
				return -1;
			}
			if (now_s() - t0 > CANARY_FORCE_MS / 1000.0) {
				snprintf(err, errlen,
					 "node %s does not hold %d%% on %s within %d s (it holds "
					 "%s)",
					 t->nodes[i], w, k->to, CANARY_FORCE_MS / 1000,
					 got == -3   ? "no readable maps"
					 : got == -1 ? "no route to these subsets"
						     : "another weight");
				return -1;
			}
			usleep(20000);
		}
	}
	return (long)((now_s() - t0) * 1000);
}

/* ---------------- checks ---------------- */

static void subst(char *out, size_t len, const char *tmpl, const struct canary *k,
		  const struct plan *p, int64_t interval_ns)
{
	size_t o = 0;

	out[0] = 0;
	for (const char *s = tmpl; *s && o + 1 < len;) {
		const char *val = NULL;
		char iv[32];
		size_t skip = 0;

		snprintf(iv, sizeof(iv), "%llds", (long long)(interval_ns / 1000000000LL));
		if (!strncmp(s, "{{ namespace }}", 15))
			val = k->ns, skip = 15;
		else if (!strncmp(s, "{{ target }}", 12))
			val = p->workloads, skip = 12;
		else if (!strncmp(s, "{{ interval }}", 14))
			val = iv, skip = 14;
		else if (!strncmp(s, "{{ service }}", 13))
			val = p->fqdn, skip = 13;
		if (val) {
			o += snprintf(out + o, len - o, "%s", val);
			s += skip;
		} else {
			out[o++] = *s++;
			out[o] = 0;
		}
		if (o >= len)
			o = len - 1;
	}
}

/* Istio's queries, as Flagger asks them (reporter="destination": the canary's own view) */
#define CANARY_SEL                                                                                 \
	"reporter=\"destination\",destination_workload_namespace=\"{{ namespace }}\","             \
	"destination_workload=~\"{{ target }}\""
static const char *const requests_q =
    "sum(increase(istio_requests_total{" CANARY_SEL "}[{{ interval }}]))";
static const char *const success_q =
    "sum(rate(istio_requests_total{" CANARY_SEL ",response_code!~\"5.*\"}[{{ interval }}])) / "
    "sum(rate(istio_requests_total{" CANARY_SEL "}[{{ interval }}])) * 100";
static const char *const duration_q =
    "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{" CANARY_SEL
    "}[{{ interval }}])) by (le))";

static void query_of(char *q, size_t len, const struct metric *m, const struct canary *k,
		     const struct plan *p)
{
	subst(q, len,
	      m->kind == M_SUCCESS    ? success_q
	      : m->kind == M_DURATION ? duration_q
				      : m->query,
	      k, p, m->interval_ns);
}

/* Ask, a few times over a blip; 1 value, 0 no data, -1 Prometheus failed. */
static int ask(struct prom *pr, const char *q, double *v)
{
	int rc = -1;

	for (int i = 0; i < CANARY_PROM_TRIES && !interrupted; i++) {
		rc = prom_value(pr, q, v);
		if (rc >= 0)
			return rc;
		sleep(1);
	}
	return rc;
}

struct step_result {
	bool ok, aborted;
	char line[1500];
	struct json_object *checks;
};

/* One check of every metric at weight w (step s of n). */
static void check_step(const struct canary *k, const struct plan *p, struct prom *pr, int s, int w,
		       double step_secs, struct report *rep, struct step_result *out)
{
	char cls[300], name[200], q[4096], *l = out->line;
	size_t len = sizeof(out->line), o;
	double reqs = 0, t0 = now_s();
	int rc;

	snprintf(cls, sizeof(cls), "canary.%s.%s", k->ns, k->name);
	out->ok = true;
	out->aborted = false;
	out->checks = json_object_new_array();
	o = snprintf(l, len, "step %d weight %d%%:", s, w);
	/* requests to the canary during this step: none is a failure, not a success */
	subst(q, sizeof(q), requests_q, k, p,
	      (int64_t)(step_secs < 1 ? 1 : step_secs + 0.5) * 1000000000LL);
	rc = ask(pr, q, &reqs);
	if (rc < 0) {
		out->ok = false;
		out->aborted = true;
		snprintf(l + o, len - o, " %s", pr->err);
		return;
	}
	if (rc == 0)
		reqs = 0;
	{
		struct json_object *c = json_object_new_object();
		bool ok = reqs >= 0.5;

		jset_str(c, "metric", "requests");
		jset_double(c, "value", reqs);
		jset_bool(c, "ok", ok);
		json_object_array_add(out->checks, c);
		snprintf(name, sizeof(name), "step %d weight %d%%: requests to %s", s, w,
			 p->wl_list);
		report_add(rep, cls, name, ok, now_s() - t0, "%.0f requests to %s in %.0f s%s",
			   reqs, p->wl_list, step_secs,
			   ok ? ""
			      : ": no data is not success (is traffic flowing to the service?)");
		o +=
		    snprintf(l + o, len - o, " requests %.0f%s", reqs, ok ? "" : " FAIL (no data)");
		out->ok &= ok;
	}
	for (int i = 0; i < k->nm; i++) { /* every metric is asked; only the line is clamped */
		const struct metric *m = &k->m[i];
		struct json_object *c = json_object_new_object();
		char want[64] = "", val[64];
		double v = 0;
		bool ok;

		t0 = now_s();
		query_of(q, sizeof(q), m, k, p);
		rc = ask(pr, q, &v);
		if (rc < 0) {
			out->ok = false;
			out->aborted = true;
			snprintf(l + o, len - o, ", %s: %s", m->name, pr->err);
			json_object_put(c);
			return;
		}
		ok = rc == 1 && (!m->has_min || v >= m->min) && (!m->has_max || v <= m->max);
		if (m->has_min && m->has_max)
			snprintf(want, sizeof(want), "%g..%g", m->min, m->max);
		else if (m->has_min)
			snprintf(want, sizeof(want), "min %g", m->min);
		else
			snprintf(want, sizeof(want), "max %g", m->max);
		if (rc == 1)
			snprintf(val, sizeof(val),
				 m->kind == M_SUCCESS	 ? "%.2f%%"
				 : m->kind == M_DURATION ? "%.1f ms"
							 : "%g",
				 v);
		else
			snprintf(val, sizeof(val), "no data");
		o += snprintf(l + o, len - o, ", %s %s (%s) %s", m->name, val, want,
			      ok ? "ok" : "FAIL");
		if (o >= len)
			o = len - 1; /* the line is full: later metrics are asked, not printed */
		jset_str(c, "metric", m->name);
		if (rc == 1)
			jset_double(c, "value", v);
		else
			json_object_object_add(c, "value", NULL);
		if (m->has_min)
			jset_double(c, "min", m->min);
		if (m->has_max)
			jset_double(c, "max", m->max);
		jset_bool(c, "ok", ok);
		json_object_array_add(out->checks, c);
		snprintf(name, sizeof(name), "step %d weight %d%%: %s", s, w, m->name);
		report_add(rep, cls, name, ok, now_s() - t0, "%s = %s, want %s (query: %s)",
			   m->name, val, want, q);
		out->ok &= ok;
	}
	if (o < len)
		snprintf(l + o, len - o, ": %s", out->ok ? "pass" : "FAIL");
}

/* Sleep secs, waking for Ctrl-C; false when interrupted. */
static bool wait_s(double secs)
{
	double end = now_s() + secs;

	while (!interrupted && now_s() < end)
		usleep(50000);
	return !interrupted;
}

/* ---------------- the run ---------------- */

static int parse_run_args(int argc, char **argv, struct stage_args *a)
{
	static const struct option opts[] = {STAGE_OPTIONS, {0, 0, 0, 0}};
	int o;

	memset(a, 0, sizeof(*a));
	optind = 1;
	while ((o = getopt_long(argc, argv, "f:", opts, NULL)) != -1)
		if (stage_option(a, o, optarg) <= 0)
			return -1;
	if (optind != argc || stage_check(a))
		return -1;
	if (a->t.lab && a->t.nnodes) {
		fprintf(stderr,
			"canary: --node goes with --config-dir; a lab's nodes are its own\n");
		return -1;
	}
	if (a->t.config_dir && !a->t.nnodes) {
		fprintf(stderr,
			"canary: --config-dir needs --node NODE (the agents that read it)\n");
		return -1;
	}
	return 0;
}

static void free_canary(struct canary *k)
{
	free(k->name);
	free(k->ns);
	free(k->service);
	free(k->from);
	free(k->to);
	for (int i = 0; i < k->nm; i++)
		free(k->m[i].query);
}

static int canary_run(int argc, char **argv)
{
	struct stage_args a;
	struct canary k = {0};
	struct plan p = {0};
	struct prom pr = {0};
	struct report rep;
	struct json_object *doc = NULL, *steps = NULL;
	struct sigaction sa = {.sa_handler = on_int}, old_int, old_term;
	char err[2048], cls[300];
	int rc = EXIT_USAGE, safe = 0, failed = 0, s = 0, attempt = 0, cur = -1;
	double run_t0 = now_s(), bad_t0 = -1;
	bool appended = false, rollback_failed = false;
	const char *result = "aborted";
	FILE *say;

	if (args_help(argc, argv)) {
		fputs(canary_usage, stdout);
		return 0;
	}
	if (parse_run_args(argc, argv, &a)) {
		fputs(canary_usage, stderr);
		return EXIT_USAGE;
	}
	say = a.json ? stderr : stdout; /* --json: stdout holds the document only */
	if (parse_spec(&k, a.file))
		goto out;
	if (target_open(&a.t, err, sizeof(err))) {
		fprintf(stderr, "canary: %s\n", err);
		goto out;
	}
	if (!a.t.nnodes) {
		fprintf(stderr, "canary: lab %s has no nodes\n", a.t.lab);
		goto out;
	}
	snprintf(pr.url, sizeof(pr.url), "%s", a.prometheus ? a.prometheus : a.t.prometheus);
	if (!pr.url[0]) {
		fprintf(stderr, "canary: no Prometheus: give --prometheus URL%s\n",
			a.t.lab ? " (or start the lab with lab up --prometheus)" : "");
		goto out;
	}
	while (strlen(pr.url) && pr.url[strlen(pr.url) - 1] == '/')
		pr.url[strlen(pr.url) - 1] = 0;
	if (plan_make(&k, &a.t, &p))
		goto out;
	/* every query asked once before anything is written: a query Prometheus refuses is a
	 * config error, an unreachable Prometheus aborts with nothing changed */
	for (int i = 0; i < k.nm; i++) {
		char q[4096];
		double v;

		query_of(q, sizeof(q), &k.m[i], &k, &p);
		if (prom_value(&pr, q, &v) >= 0)
			continue;
		fprintf(stderr, "%s: spec.analysis.metrics[%d] (%s): %s\n", a.file, i, k.m[i].name,
			pr.err);
		rc = pr.bad_query ? EXIT_USAGE : EXIT_ABORTED;
		goto out;
	}
	/* after the last step that passed, the promotion: everything to `to` */
	if (k.steps[k.nsteps - 1] != 100 && k.nsteps < CANARY_MAX_STEPS) {
		k.steps[k.nsteps++] = 100;
		appended = true;
	}
	report_init(&rep, "bpfmesh canary");
	snprintf(cls, sizeof(cls), "canary.%s.%s", k.ns, k.name);
	steps = json_object_new_array();
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	fprintf(say, "canary %s/%s: %s from %s to %s, steps", k.ns, k.name, p.fqdn, k.from, k.to);
	for (int i = 0; i < k.nsteps; i++)
		fprintf(say, " %d", k.steps[i]);
	fprintf(say, ", interval %llds, threshold %d; canary workloads %s; %s%s\n",
		(long long)(k.interval_ns / 1000000000LL), k.threshold, p.wl_list,
		a.t.lab ? "lab " : "", a.t.lab ? a.t.lab : a.t.config_dir);
	if (p.took_over)
		fprintf(say, "canary %s/%s: writes VirtualService %s in %s/%s\n", k.ns, k.name,
			p.vs_name, a.t.config_dir, p.file);
	rc = EXIT_ABORTED;
	while (s < k.nsteps) {
		int w = k.steps[s];
		bool promote_only = appended && s == k.nsteps - 1;
		struct step_result sr = {0};
		struct json_object *sj;
		long ms = 0;
		double st0;

		if (interrupted)
			break;
		if (cur != w) {
			cur = -1; /* written or not: unknown until it is in force */
			ms = put_weight(&k, &p, &a.t, w, true, err, sizeof(err));
			if (ms < 0) {
				fprintf(say, "step %d weight %d%%: %s\n", s + 1, w, err);
				report_add(&rep, cls, "weights in force", false, 0, "%s", err);
				break;
			}
			cur = w;
			attempt = 0;
		}
		if (promote_only) { /* after the last listed step passed: in force is done */
			rc = EXIT_PROMOTED;
			break;
		}
		st0 = now_s();
		attempt++;
		if (!wait_s((double)k.interval_ns / 1e9))
			break;
		check_step(&k, &p, &pr, s + 1, w, now_s() - st0, &rep, &sr);
		fprintf(say, "%s%s\n", sr.line,
			attempt > 1 ? " (again: a failed check keeps the weight)" : "");
		fflush(say);
		sj = json_object_new_object();
		jset_int(sj, "step", s + 1);
		jset_int(sj, "weight", w);
		jset_int(sj, "inForceMs", ms);
		jset_bool(sj, "ok", sr.ok);
		json_object_object_add(sj, "checks", sr.checks);
		json_object_array_add(steps, sj);
		if (sr.aborted && interrupted)
			break;
		if (sr.aborted) {
			snprintf(err, sizeof(err), "%s", pr.err);
			report_add(&rep, cls, "prometheus", false, 0, "%s", pr.err);
			break;
		}
		if (sr.ok) {
			safe = w;
			s++;
			if (w == 100) {
				rc = EXIT_PROMOTED;
				break;
			}
			continue;
		}
		if (bad_t0 < 0)
			bad_t0 = st0;
		if (++failed >= k.threshold) {
			double t1 = now_s();
			long rb = put_weight(&k, &p, &a.t, 0, false, err, sizeof(err));

			if (rb < 0) { /* never back to a weight on the canary that just failed */
				cur = -1;
				safe = 0;
				rollback_failed = true;
				fprintf(say, "rollback: %s\n", err);
				report_add(&rep, cls, "rollback", false, 0, "%s", err);
				break;
			}
			cur = 0;
			rc = EXIT_ROLLED_BACK;
			result = "rolledBack";
			fprintf(say,
				"rolled back: %s 100%% %s after %d failed check(s); rollback in "
				"force %ld ms after the failed check, %.1f s after the first bad "
				"step began\n",
				p.fqdn, k.from, failed, (long)((now_s() - t1) * 1000),
				now_s() - bad_t0);
			report_add(&rep, cls, "promotion", false, now_s() - run_t0,
				   "rolled back to 100%% %s after %d failed check(s)", k.from,
				   failed);
			json_object_object_add(
			    doc = json_object_new_object(), "rollbackMs",
			    json_object_new_int64((int64_t)((now_s() - bad_t0) * 1000)));
			break;
		}
	}
	/* the last step that passed: when the run stops without a verdict */
	if (rc == EXIT_PROMOTED) {
		result = "promoted";
		fprintf(say, "promoted: %s 100%% %s (%d step(s), %.0f s)\n", p.fqdn, k.to, k.nsteps,
			now_s() - run_t0);
		report_add(&rep, cls, "promotion", true, now_s() - run_t0, "promoted to 100%% %s",
			   k.to);
	} else if (rc != EXIT_ROLLED_BACK) {
		char why[2048];
		long back;

		snprintf(why, sizeof(why), "%s",
			 interrupted ? "interrupted" : rollback_failed ? "rollback not confirmed" : err);
		back = cur == safe ? 0 : put_weight(&k, &p, &a.t, safe, false, err, sizeof(err));
		if (back < 0)
			fprintf(say,
				"aborted (%s); the last safe weight (%d%% %s) could not be put "
				"back: %s\n",
				why, safe, k.to, err);
		else
			fprintf(say,
				"aborted (%s): weights left at the last step that passed: %d%% "
				"%s, %d%% %s\n",
				why, safe, k.to, 100 - safe, k.from);
		report_add(&rep, cls, "promotion", false, now_s() - run_t0,
			   "aborted (%s): weights at the last step that passed, %d%% %s", why, safe,
			   k.to);
		if (interrupted)
			rc = 128 + interrupted; /* 130 Ctrl-C, 143 SIGTERM */
		result = interrupted ? "interrupted" : "aborted";
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (a.json) {
		struct json_object *d = doc ? doc : json_object_new_object();

		jset_str(d, "canary", k.name);
		jset_str(d, "namespace", k.ns);
		jset_str(d, "service", p.fqdn);
		jset_str(d, "from", k.from);
		jset_str(d, "to", k.to);
		jset_str(d, "result", result);
		jset_int(d, "weight",
			 rc == EXIT_PROMOTED	  ? 100
			 : rc == EXIT_ROLLED_BACK ? 0
						  : safe);
		jset_int(d, "failedChecks", failed);
		json_object_object_add(d, "steps", steps);
		json_object_object_add(d, "report", report_json(&rep));
		out_write(stdout, d, OUT_JSON);
		json_object_put(d);
		doc = NULL;
	} else {
		json_object_put(steps);
	}
	json_object_put(doc);
	if (a.junit && report_junit(&rep, a.junit)) {
		fprintf(stderr, "canary: --junit %s: %s\n", a.junit, strerror(errno));
		if (rc == EXIT_PROMOTED)
			rc = EXIT_ABORTED;
	}
	report_free(&rep);
out:
	json_object_put(p.vs);
	target_close(&a.t);
	free_canary(&k);
	return rc;
}

int cmd_canary(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(canary_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (!strcmp(argv[1], "run"))
		return canary_run(argc - 1, argv + 1);
	fprintf(stderr, "bpfmesh canary: unknown subcommand '%s'\n", argv[1]);
	fputs(canary_usage, stderr);
	return EXIT_USAGE;
}
