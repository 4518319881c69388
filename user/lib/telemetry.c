// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * telemetry.c: the Telemetry kind's tracing and MeshConfig's tracing providers, read into the
 * model and resolved per proxy (telemetry.h), as istiod's pilot/pkg/model/telemetry.go does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "extract.h"
#include "telemetry.h"

#define ROOT_NS_DEFAULT "istio-system"

static char *sdup(const char *s, bool *oom)
{
	char *r = s ? strdup(s) : NULL;

	if (s && !r)
		*oom = true;
	return r;
}

static double num_of(const struct ynode *n, double def)
{
	double v;

	return n && ynode_num(n, &v) == 0 ? v : def;
}

static void tags_of(const struct ynode *m, struct tel_tracing *t, bool *oom)
{
	if (!ynode_is_map(m))
		return;
	t->has_tags = true;
	t->tags = calloc((size_t)(m->n ? m->n : 1), sizeof(*t->tags));
	if (!t->tags) {
		*oom = true;
		return;
	}
	for (int i = 0; i < m->n; i++) {
		const struct ynode *v = m->pairs[i].val, *x;
		struct tel_tag *g = &t->tags[t->ntags];

		if ((x = ymap_get(v, "literal"))) {
			g->kind = TAG_LITERAL;
			g->value = sdup(ymap_str(x, "value"), oom);
		} else if ((x = ymap_get(v, "environment"))) {
			g->kind = TAG_ENV;
			g->value = sdup(ymap_str(x, "name"), oom);
			g->dflt = sdup(ymap_str(x, "defaultValue"), oom);
		} else if ((x = ymap_get(v, "header"))) {
			g->kind = TAG_HEADER;
			g->value = sdup(ymap_str(x, "name"), oom);
			g->dflt = sdup(ymap_str(x, "defaultValue"), oom);
			for (char *p = g->value; p && *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
		} else {
			continue; /* formatter: reported by validation */
		}
		g->name = sdup(m->pairs[i].key, oom);
		t->ntags++;
	}
}

bool tel_extract(struct tel_obj *o, const struct ynode *root, const char *name, const char *ns,
		 struct srcpos pos)
{
	const struct ynode *spec = ymap_get(root, "spec"), *sel = ymap_get(spec, "selector"),
			   *ml = ymap_get(sel, "matchLabels"), *tr = ymap_get(spec, "tracing");
	struct xctx x = {0};
	bool oom = false;

	memset(o, 0, sizeof(*o));
	o->name = sdup(name, &oom);
	o->ns = sdup(ns, &oom);
	o->pos = pos;
	o->has_selector = ymap_get(spec, "selector") != NULL;
	/* targetRefs (gateways, waypoints) is not read (validation says so): such a Telemetry
	 * applies nowhere rather than to its whole namespace */
	o->target_refs = ymap_get(spec, "targetRefs") != NULL && !o->has_selector;
	kv_from_map(&x, &o->selector, ml);
	oom |= x.oom;
	if (ynode_is_seq(tr) && tr->n) {
		o->tr = calloc((size_t)tr->n, sizeof(*o->tr));
		for (int i = 0; o->tr && i < tr->n; i++) {
			const struct ynode *t = tr->items[i], *pv = ymap_get(t, "providers"),
					   *mode = ymap_get(ymap_get(t, "match"), "mode");
			struct tel_tracing *x = &o->tr[o->ntr++];
			const char *m = ynode_text(mode);

			x->mode = m && !strcmp(m, "CLIENT")   ? TEL_CLIENT
				  : m && !strcmp(m, "SERVER") ? TEL_SERVER
							      : TEL_CLIENT_AND_SERVER;
			if (ynode_is_seq(pv) && pv->n) { /* [] is unset in proto3: inherited */
				x->has_provider = true;
				x->provider = sdup(ymap_str(pv->items[0], "name"), &oom);
			}
			if (ymap_get(t, "randomSamplingPercentage")) {
				x->has_sampling = true;
				x->sampling = num_of(ymap_get(t, "randomSamplingPercentage"), 0);
			}
			if (ymap_get(t, "disableSpanReporting")) {
				x->has_disable = true;
				x->disable = ymap_bool(t, "disableSpanReporting", false);
			}
			tags_of(ymap_get(t, "customTags"), x, &oom);
		}
		if (!o->tr)
			oom = true;
	}
	return !oom;
}

static void tags_free(struct tel_tag *v, int n)
{
	for (int i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
		free(v[i].dflt);
	}
	free(v);
}

void tel_free(struct tel_obj *o)
{
	for (int i = 0; i < o->ntr; i++) {
		free(o->tr[i].provider);
		tags_free(o->tr[i].tags, o->tr[i].ntags);
	}
	free(o->tr);
	kvlist_free(&o->selector);
	free(o->name);
	free(o->ns);
	memset(o, 0, sizeof(*o));
}

int mesh_parse(struct mesh_obj *o, const char *text, char *err, size_t errlen)
{
	struct yfile f = {0};
	struct yerror ye = {0};
	const struct ynode *root, *eps, *dp, *tr;
	bool oom = false;

	o->enable_tracing = true;
	o->sampling = -1;
	if (yfile_load_mem(text, strlen(text), &f, &ye)) {
		snprintf(err, errlen, "line %d: %s", ye.line, ye.msg);
		return -1;
	}
	root = f.ndocs ? f.docs[0].root : NULL;
	if (root && !ynode_is_map(root)) {
		snprintf(err, errlen, "not a map");
		yfile_free(&f);
		return -1;
	}
	o->enable_tracing = ymap_bool(root, "enableTracing", true);
	tr = ymap_get(ymap_get(ymap_get(root, "defaultConfig"), "tracing"), "sampling");
	if (tr)
		o->sampling = num_of(tr, -1);
	dp = ymap_get(ymap_get(root, "defaultProviders"), "tracing");
	if (ynode_is_seq(dp) && dp->n)
		o->default_provider = sdup(ynode_text(dp->items[0]), &oom);
	eps = ymap_get(root, "extensionProviders");
	if (ynode_is_seq(eps) && eps->n) {
		o->provs = calloc((size_t)eps->n, sizeof(*o->provs));
		for (int i = 0; o->provs && i < eps->n; i++) {
			const struct ynode *e = eps->items[i], *z = ymap_get(e, "zipkin"),
					   *ot = ymap_get(e, "opentelemetry"), *b = z ? z : ot;
			struct tel_provider *p;

			if (!b || (ot && !ymap_get(ot, "http")))
				continue; /* not a tracer, or OTLP over gRPC: reported */
			p = &o->provs[o->nprovs++];
			p->name = sdup(ymap_str(e, "name"), &oom);
			p->proto = z ? TP_ZIPKIN : TP_OTLP_HTTP;
			p->service = sdup(ymap_str(b, "service"), &oom);
			p->port = (int)ymap_int(b, "port", z ? 9411 : 4318);
			p->max_tag_length = (int)ymap_int(b, "maxTagLength", 256);
			p->path =
			    sdup(z ? (ymap_str(z, "path") ? ymap_str(z, "path") : "/api/v2/spans")
				   : ymap_str(ymap_get(ot, "http"), "path"),
				 &oom);
		}
		if (!o->provs)
			oom = true;
	}
	yfile_free(&f);
	if (oom) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void mesh_free(struct mesh_obj *o)
{
	for (int i = 0; i < o->nprovs; i++) {
		free(o->provs[i].name);
		free(o->provs[i].service);
		free(o->provs[i].path);
	}
	free(o->provs);
	free(o->default_provider);
	free(o->name);
	free(o->ns);
	memset(o, 0, sizeof(*o));
}

void tel_notices(const struct ynode *spec,
		 void (*warn)(void *arg, const struct ynode *at, const char *field,
			      const char *msg),
		 void *arg)
{
	static const char *const other[] = {"metrics", "accessLogging", "targetRefs"};
	const struct ynode *tr = ymap_get(spec, "tracing");
	char field[96];

	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		if (ymap_get(spec, other[i])) {
			snprintf(field, sizeof(field), "spec.%s", other[i]);
			warn(arg, ymap_get(spec, other[i]), field,
			     "not enforced by bpfmesh (ignored): it reads Telemetry's tracing");
		}
	for (int i = 0; ynode_is_seq(tr) && i < tr->n; i++) {
		const struct ynode *t = tr->items[i], *ct = ymap_get(t, "customTags");
		const struct ynode *pv = ymap_get(t, "providers");
		static const char *const unread[] = {
		    "useRequestIdForTraceSampling", "enableIstioTags", "disableContextPropagation"};

		for (size_t k = 0; k < sizeof(unread) / sizeof(unread[0]); k++)
			if (ymap_get(t, unread[k])) {
				snprintf(field, sizeof(field), "spec.tracing[%d].%s", i, unread[k]);
				warn(arg, ymap_get(t, unread[k]), field,
				     "not enforced by bpfmesh (ignored)");
			}
		if (ynode_is_seq(pv) && pv->n > 1) {
			snprintf(field, sizeof(field), "spec.tracing[%d].providers", i);
			warn(arg, pv, field,
			     "only the first provider is used (as Istio uses only the first)");
		}
		for (int k = 0; ynode_is_map(ct) && k < ct->n; k++)
			if (ymap_get(ct->pairs[k].val, "formatter")) {
				snprintf(field, sizeof(field), "spec.tracing[%d].customTags.%.40s",
					 i, ct->pairs[k].key);
				warn(arg, ct->pairs[k].val, field,
				     "formatter: not supported by bpfmesh (ignored)");
			}
	}
}

/* ---------------- resolution ---------------- */

static bool selects(const struct tel_obj *t, const struct workload_obj *w)
{
	for (int i = 0; i < t->selector.n; i++) {
		const char *v = kv_get(&w->labels, t->selector.v[i].key);

		if (!v || strcmp(v, t->selector.v[i].val))
			return false;
	}
	return true;
}

static const struct mesh_obj *mesh_of(const struct mesh_config *c, const char *root)
{
	for (int i = 0; i < c->nmeshes; i++)
		if (!strcmp(c->meshes[i].ns, root))
			return &c->meshes[i];
	return NULL;
}

static const struct tel_provider *provider_named(const struct mesh_obj *m, const char *name)
{
	for (int i = 0; m && name && i < m->nprovs; i++)
		if (m->provs[i].name && !strcmp(m->provs[i].name, name))
			return &m->provs[i];
	return NULL;
}

/* Apply t's entries for mode over the result so far. */
static void apply(const struct tel_obj *t, enum tel_mode mode, const char **prov,
		  struct tel_result *out)
{
	for (int i = 0; i < t->ntr; i++) {
		const struct tel_tracing *x = &t->tr[i];

		if (x->mode != TEL_CLIENT_AND_SERVER && x->mode != mode)
			continue;
		if (x->has_provider)
			*prov = x->provider;
		if (x->has_sampling)
			out->sampling = x->sampling;
		if (x->has_disable)
			out->disabled = x->disable;
		if (x->has_tags) {
			out->tags = x->tags;
			out->ntags = x->ntags;
		}
		out->by = t;
	}
}

void tel_tracing_for(const struct mesh_config *c, const char *root_ns, const struct workload_obj *w,
		     enum tel_mode mode, struct tel_result *out)
{
	const char *root = root_ns && *root_ns ? root_ns : ROOT_NS_DEFAULT, *prov;
	const struct mesh_obj *m = mesh_of(c, root);

	memset(out, 0, sizeof(*out));
	out->sampling = m ? m->sampling : -1;
	prov = m ? m->default_provider : NULL;
	/* three passes, least specific first: later ones override */
	for (int pass = 0; pass < 3; pass++)
		for (int i = 0; i < c->ntels; i++) {
			const struct tel_obj *t = &c->tels[i];
			bool want;

			if (t->target_refs)
				continue;
			if (pass == 0)
				want = !strcmp(t->ns, root) && !t->has_selector;
			else if (pass == 1)
				want = w && strcmp(t->ns, root) && !strcmp(t->ns, w->ns) &&
				       !t->has_selector;
			else
				want =
				    w && !strcmp(t->ns, w->ns) && t->has_selector && selects(t, w);
			if (want)
				apply(t, mode, &prov, out);
		}
	out->provider = provider_named(m, prov);
	out->provider_name = prov;
	if (m && !m->enable_tracing && !out->by)
		out->disabled = true; /* the legacy switch: only where no Telemetry says more */
}

bool tel_traced(const struct mesh_config *c, const char *root_ns, const struct workload_obj *w,
		char *why, size_t whylen)
{
	struct tel_result r;

	if (!c->ntels && !c->nmeshes)
		return false;
	tel_tracing_for(c, root_ns, w, TEL_SERVER, &r);
	if (!r.provider || r.disabled)
		return false;
	if (r.by)
		snprintf(why, whylen, "tracing of Telemetry %s/%s", r.by->ns, r.by->name);
	else
		snprintf(why, whylen, "tracing (MeshConfig defaultProviders %s)",
			 r.provider->name ? r.provider->name : "");
	return true;
}
