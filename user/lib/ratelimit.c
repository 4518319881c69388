// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ratelimit.c: rate limits (ratelimit.h): the EnvoyFilter rate-limit shapes and
 * envoyproxy/ratelimit's config read into the model, and their evaluation without I/O.
 * Envoy's proto fields are read in both spellings (max_tokens, maxTokens), as its JSON
 * reader accepts; typed_config as a TypedStruct (udpa/xds: type_url + value) or inline.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "extract.h"
#include "ratelimit.h"
#include "regex.h"
#include "yamltree.h"

#define LOCAL_RL  "envoy.filters.http.local_ratelimit"
#define GLOBAL_RL "envoy.filters.http.ratelimit"

static char *sdup(const char *s, bool *oom)
{
	char *r = s ? strdup(s) : NULL;

	if (s && !r)
		*oom = true;
	return r;
}

/* A field in snake_case or its lowerCamelCase spelling. */
static const struct ynode *fget(const struct ynode *m, const char *snake)
{
	char camel[64];
	size_t k = 0;
	const struct ynode *n = ymap_get(m, snake);

	if (n || !strchr(snake, '_'))
		return n;
	for (const char *p = snake; *p && k + 1 < sizeof(camel); p++) {
		if (*p == '_' && p[1]) {
			camel[k++] = (char)toupper((unsigned char)*++p);
			continue;
		}
		camel[k++] = *p;
	}
	camel[k] = 0;
	return ymap_get(m, camel);
}

static const char *fstr(const struct ynode *m, const char *snake)
{
	return ynode_text(fget(m, snake));
}

static int64_t fint(const struct ynode *m, const char *snake, int64_t def)
{
	int64_t v;
	const struct ynode *n = fget(m, snake);
	const char *t = ynode_text(n);

	if (n && ynode_int(n, &v) == 0)
		return v;
	if (t && *t) { /* proto JSON writes 64-bit integers as strings */
		char *end;
		long long x = strtoll(t, &end, 10);

		if (!*end)
			return x;
	}
	return def;
}

static bool fbool(const struct ynode *m, const char *snake, bool def)
{
	bool v;
	const struct ynode *n = fget(m, snake);

	if (n && ynode_bool(n, &v) == 0)
		return v;
	return def;
}

static int64_t fdur_ms(const struct ynode *m, const char *snake, int64_t def)
{
	const char *t = fstr(m, snake);
	int64_t ns;

	if (!t || parse_duration_ns(t, &ns) < 0)
		return def;
	return ns / 1000000;
}

/* The message inside a typed_config: a TypedStruct's value, or the map itself; *type its
 * type name after the last '/'. */
static const struct ynode *typed_body(const struct ynode *tc, const char **type)
{
	const char *t = ymap_str(tc, "@type");

	*type = "";
	if (!t)
		return tc;
	if (strstr(t, "TypedStruct")) {
		const char *u = fstr(tc, "type_url");

		if (u)
			*type = strrchr(u, '/') ? strrchr(u, '/') + 1 : u;
		return ymap_get(tc, "value");
	}
	*type = strrchr(t, '/') ? strrchr(t, '/') + 1 : t;
	return tc;
}

/* envoy.type.v3.FractionalPercent, via a RuntimeFractionalPercent's default_value; unset: 0 */
static double fraction(const struct ynode *rfp)
{
	const struct ynode *dv = fget(rfp, "default_value");
	const char *den;
	double num, d = 100;

	if (!dv)
		return 0;
	num = (double)fint(dv, "numerator", 0);
	den = fstr(dv, "denominator");
	if (den && !strcmp(den, "TEN_THOUSAND"))
		d = 10000;
	else if (den && !strcmp(den, "MILLION"))
		d = 1000000;
	num /= d;
	return num > 1 ? 1 : num < 0 ? 0 : num;
}

static void bucket_of(const struct ynode *tb, struct rl_bucket *b)
{
	b->max_tokens = (uint32_t)fint(tb, "max_tokens", 0);
	b->tokens_per_fill = (uint32_t)fint(tb, "tokens_per_fill", 1);
	b->fill_ms = fdur_ms(tb, "fill_interval", 0);
}

static void entries_of(const struct ynode *seq, struct rl_entry **out, int *n, bool *oom)
{
	*n = 0;
	*out = NULL;
	if (!ynode_is_seq(seq) || !seq->n)
		return;
	*out = calloc((size_t)seq->n, sizeof(**out));
	if (!*out) {
		*oom = true;
		return;
	}
	for (int i = 0; i < seq->n; i++) {
		(*out)[*n].key = sdup(fstr(seq->items[i], "key"), oom);
		(*out)[*n].value = sdup(fstr(seq->items[i], "value"), oom);
		(*n)++;
	}
}

static void local_of(const struct ynode *v, struct rl_local *l, bool *oom)
{
	const struct ynode *tb = fget(v, "token_bucket"), *hs = fget(v, "response_headers_to_add"),
			   *ds = fget(v, "descriptors");

	l->stat_prefix = sdup(fstr(v, "stat_prefix"), oom);
	l->has_tb = tb != NULL;
	if (tb)
		bucket_of(tb, &l->tb);
	if (l->has_tb && l->tb.fill_ms < 50) {
		l->has_tb = false; /* Envoy refuses it; validation said so */
		l->bad_fill = true;
	}
	l->enabled = fraction(fget(v, "filter_enabled"));
	l->enforced = fraction(fget(v, "filter_enforced"));
	if (ynode_is_seq(hs) && hs->n) {
		l->hdrs = calloc((size_t)hs->n, sizeof(*l->hdrs));
		for (int i = 0; l->hdrs && i < hs->n; i++) {
			const struct ynode *h = fget(hs->items[i], "header");
			const char *act = fstr(hs->items[i], "append_action");
			struct rl_hdr *o = &l->hdrs[l->nhdrs++];

			o->name = sdup(fstr(h, "key"), oom);
			o->value = sdup(fstr(h, "value"), oom);
			/* append (deprecated) defaults to true; append_action to
			 * APPEND_IF_EXISTS_OR_ADD */
			o->append =
			    act ? !strstr(act, "OVERWRITE") : fbool(hs->items[i], "append", true);
			for (char *p = o->name; p && *p; p++)
				*p = (char)tolower((unsigned char)*p);
		}
		if (!l->hdrs)
			*oom = true;
	}
	if (ynode_is_seq(ds) && ds->n) {
		l->descs = calloc((size_t)ds->n, sizeof(*l->descs));
		for (int i = 0; l->descs && i < ds->n; i++) {
			struct rl_local_desc *d = &l->descs[l->ndescs++];

			entries_of(fget(ds->items[i], "entries"), &d->e, &d->n, oom);
			bucket_of(fget(ds->items[i], "token_bucket"), &d->tb);
		}
		if (!l->descs)
			*oom = true;
	}
}

static void hmatch_of(const struct ynode *h, struct rl_hmatch *m, bool *oom)
{
	const struct ynode *sm = fget(h, "string_match");
	static const struct {
		const char *f;
		int kind;
	} legacy[] = {{"exact_match", RLM_EXACT},
		      {"prefix_match", RLM_PREFIX},
		      {"suffix_match", RLM_SUFFIX},
		      {"contains_match", RLM_CONTAINS}};
	const struct ynode *re = NULL;

	m->name = sdup(fstr(h, "name"), oom);
	for (char *p = m->name; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	m->invert = fbool(h, "invert_match", false);
	m->kind = RLM_PRESENT;
	for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++)
		if (fget(h, legacy[i].f)) {
			m->kind = legacy[i].kind;
			m->value = sdup(fstr(h, legacy[i].f), oom);
		}
	if (sm) {
		static const struct {
			const char *f;
			int kind;
		} k[] = {{"exact", RLM_EXACT},
			 {"prefix", RLM_PREFIX},
			 {"suffix", RLM_SUFFIX},
			 {"contains", RLM_CONTAINS}};

		for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
			if (fget(sm, k[i].f)) {
				m->kind = k[i].kind;
				m->value = sdup(fstr(sm, k[i].f), oom);
			}
		re = fget(sm, "safe_regex");
	}
	if (!re)
		re = fget(h, "safe_regex_match");
	if (re && fstr(re, "regex")) {
		char err[128];

		m->kind = RLM_REGEX;
		m->value = sdup(fstr(re, "regex"), oom);
		m->re = bm_regex_new(m->value, false, err, sizeof(err));
	}
}

static void action_of(const struct ynode *a, struct rl_action *o, bool *oom, bool *known)
{
	const struct ynode *n;

	*known = true;
	o->expect_match = true;
	if ((n = fget(a, "request_headers"))) {
		o->kind = RLA_REQUEST_HEADERS;
		o->header = sdup(fstr(n, "header_name"), oom);
		for (char *p = o->header; p && *p; p++)
			*p = (char)tolower((unsigned char)*p);
		o->key = sdup(fstr(n, "descriptor_key"), oom);
		o->skip_if_absent = fbool(n, "skip_if_absent", false);
	} else if (fget(a, "remote_address")) {
		o->kind = RLA_REMOTE_ADDRESS;
		o->key = sdup("remote_address", oom);
	} else if ((n = fget(a, "generic_key"))) {
		o->kind = RLA_GENERIC_KEY;
		o->key = sdup(fstr(n, "descriptor_key") ? fstr(n, "descriptor_key") : "generic_key",
			      oom);
		o->value = sdup(fstr(n, "descriptor_value"), oom);
	} else if ((n = fget(a, "header_value_match"))) {
		const struct ynode *hs = fget(n, "headers");

		o->kind = RLA_HEADER_VALUE_MATCH;
		o->key = sdup(
		    fstr(n, "descriptor_key") ? fstr(n, "descriptor_key") : "header_match", oom);
		o->value = sdup(fstr(n, "descriptor_value"), oom);
		o->expect_match = fbool(n, "expect_match", true);
		if (ynode_is_seq(hs) && hs->n) {
			o->hm = calloc((size_t)hs->n, sizeof(*o->hm));
			for (int i = 0; o->hm && i < hs->n; i++)
				hmatch_of(hs->items[i], &o->hm[o->nhm++], oom);
			if (!o->hm)
				*oom = true;
		}
	} else if (fget(a, "source_cluster")) {
		o->kind = RLA_SOURCE_CLUSTER;
		o->key = sdup("source_cluster", oom);
	} else if (fget(a, "destination_cluster")) {
		o->kind = RLA_DESTINATION_CLUSTER;
		o->key = sdup("destination_cluster", oom);
	} else {
		*known = false;
	}
}

static void limits_of(const struct ynode *seq, struct ef_patch *p, bool *oom)
{
	if (!ynode_is_seq(seq) || !seq->n)
		return;
	p->limits = calloc((size_t)seq->n, sizeof(*p->limits));
	if (!p->limits) {
		*oom = true;
		return;
	}
	for (int i = 0; i < seq->n; i++) {
		const struct ynode *as = fget(seq->items[i], "actions");
		struct rl_limit *l = &p->limits[p->nlimits++];

		if (!ynode_is_seq(as) || !as->n)
			continue;
		l->a = calloc((size_t)as->n, sizeof(*l->a));
		if (!l->a) {
			*oom = true;
			return;
		}
		for (int k = 0; k < as->n; k++) {
			bool known;

			action_of(as->items[k], &l->a[l->n], oom, &known);
			if (known)
				l->n++;
			else /* Envoy: an action it cannot make a value for makes no descriptor */
				l->n = 0, k = as->n;
		}
	}
}

static enum ef_ctx ctx_of(const char *s)
{
	if (!s)
		return EF_ANY;
	if (!strcmp(s, "SIDECAR_INBOUND"))
		return EF_INBOUND;
	if (!strcmp(s, "SIDECAR_OUTBOUND"))
		return EF_OUTBOUND;
	if (!strcmp(s, "GATEWAY"))
		return EF_GATEWAY;
	return EF_ANY;
}

/* What one configPatches entry is, read into p. */
static void patch_of(const struct ynode *cp, struct ef_patch *p, bool *oom)
{
	const char *apply = ymap_str(cp, "applyTo"), *type;
	const struct ynode *match = ymap_get(cp, "match"), *patch = ymap_get(cp, "patch"),
			   *value = ymap_get(patch, "value"),
			   *rc = ymap_get(match, "routeConfiguration"), *vh = ymap_get(rc, "vhost"),
			   *lis = ymap_get(match, "listener");
	const char *op = ymap_str(patch, "operation"), *ctx = ymap_str(match, "context");
	const char *fname = ymap_str(value, "name");

	p->line = cp->line;
	p->ctx = ctx_of(ctx);
	p->port = (int)ymap_int(lis, "portNumber", 0);
	if (!p->port)
		p->port = (int)ymap_int(rc, "portNumber", 0);
	if (ymap_str(vh, "name") && *ymap_str(vh, "name"))
		p->vhost = sdup(ymap_str(vh, "name"), oom);
	if (ymap_str(ymap_get(vh, "route"), "name") && *ymap_str(ymap_get(vh, "route"), "name"))
		p->route = sdup(ymap_str(ymap_get(vh, "route"), "name"), oom);
	snprintf(p->what, sizeof(p->what), "applyTo %s%s%s%s%s", apply ? apply : "?",
		 op ? ", operation " : "", op ? op : "", ctx ? ", context " : "", ctx ? ctx : "");
	if (apply && !strcmp(apply, "HTTP_FILTER") && op &&
	    (!strcmp(op, "INSERT_BEFORE") || !strcmp(op, "INSERT_AFTER") ||
	     !strcmp(op, "INSERT_FIRST") || !strcmp(op, "ADD")) &&
	    fname && (!strcmp(fname, LOCAL_RL) || !strcmp(fname, GLOBAL_RL))) {
		const struct ynode *body = typed_body(fget(value, "typed_config"), &type);

		if (!strcmp(fname, LOCAL_RL)) {
			p->kind = EFP_LOCAL;
			p->has_local = true;
			local_of(body, &p->local, oom);
		} else {
			p->kind = EFP_GLOBAL;
			p->domain = sdup(fstr(body, "domain"), oom);
			p->failure_mode_deny = fbool(body, "failure_mode_deny", false);
			p->timeout_ms = fdur_ms(body, "timeout", 20); /* Envoy's default: 20 ms */
		}
		return;
	}
	if (apply && (!strcmp(apply, "HTTP_ROUTE") || !strcmp(apply, "VIRTUAL_HOST")) && op &&
	    !strcmp(op, "MERGE")) {
		const struct ynode *tpfc = fget(value, "typed_per_filter_config");
		const struct ynode *lr = ymap_get(tpfc, LOCAL_RL);
		const struct ynode *rl = !strcmp(apply, "HTTP_ROUTE")
					     ? fget(fget(value, "route"), "rate_limits")
					     : fget(value, "rate_limits");

		p->vhost_level = !strcmp(apply, "VIRTUAL_HOST");
		if (lr) {
			p->has_local = true;
			local_of(typed_body(lr, &type), &p->local, oom);
		}
		limits_of(rl, p, oom);
		if (lr || p->nlimits)
			p->kind = EFP_ROUTE;
	}
}

bool ef_extract(struct ef_obj *o, const struct ynode *root, const char *name, const char *ns,
		struct srcpos pos)
{
	const struct ynode *spec = ymap_get(root, "spec"), *ws = ymap_get(spec, "workloadSelector"),
			   *cps = ymap_get(spec, "configPatches"), *labels = ymap_get(ws, "labels");
	struct xctx x = {0};
	bool oom = false;

	memset(o, 0, sizeof(*o));
	o->name = sdup(name, &oom);
	o->ns = sdup(ns, &oom);
	o->pos = pos;
	o->priority = (int)ymap_int(spec, "priority", 0);
	o->has_selector = ws != NULL;
	kv_from_map(&x, &o->selector, labels);
	oom |= x.oom;
	if (ynode_is_seq(cps) && cps->n) {
		o->p = calloc((size_t)cps->n, sizeof(*o->p));
		for (int i = 0; o->p && i < cps->n; i++) {
			o->p[i].index = i;
			patch_of(cps->items[i], &o->p[i], &oom);
			o->np++;
		}
		if (!o->p)
			oom = true;
	}
	return !oom;
}

static void local_free(struct rl_local *l)
{
	free(l->stat_prefix);
	for (int i = 0; i < l->nhdrs; i++) {
		free(l->hdrs[i].name);
		free(l->hdrs[i].value);
	}
	free(l->hdrs);
	for (int i = 0; i < l->ndescs; i++) {
		for (int k = 0; k < l->descs[i].n; k++) {
			free(l->descs[i].e[k].key);
			free(l->descs[i].e[k].value);
		}
		free(l->descs[i].e);
	}
	free(l->descs);
}

void ef_free(struct ef_obj *o)
{
	for (int i = 0; i < o->np; i++) {
		struct ef_patch *p = &o->p[i];

		free(p->vhost);
		free(p->route);
		free(p->domain);
		local_free(&p->local);
		for (int k = 0; k < p->nlimits; k++) {
			for (int j = 0; j < p->limits[k].n; j++) {
				struct rl_action *a = &p->limits[k].a[j];

				free(a->header);
				free(a->key);
				free(a->value);
				for (int m = 0; m < a->nhm; m++) {
					free(a->hm[m].name);
					free(a->hm[m].value);
					bm_regex_free(a->hm[m].re);
				}
				free(a->hm);
			}
			free(p->limits[k].a);
		}
		free(p->limits);
	}
	free(o->p);
	kvlist_free(&o->selector);
	free(o->name);
	free(o->ns);
	memset(o, 0, sizeof(*o));
}

void ef_notices(const struct ynode *spec,
		void (*warn)(void *arg, const struct ynode *at, const char *field, const char *msg),
		void *arg)
{
	const struct ynode *cps = ymap_get(spec, "configPatches");
	char field[64], msg[300];

	if (ymap_get(spec, "targetRefs"))
		warn(arg, ymap_get(spec, "targetRefs"), "spec.targetRefs",
		     "not supported by bpfmesh (ignored): use workloadSelector");
	for (int i = 0; ynode_is_seq(cps) && i < cps->n; i++) {
		struct ef_patch p = {0};
		bool oom = false;

		patch_of(cps->items[i], &p, &oom);
		snprintf(field, sizeof(field), "spec.configPatches[%d]", i);
		if (p.kind == EFP_OTHER) {
			snprintf(msg, sizeof(msg),
				 "patch (%s) not supported by bpfmesh (ignored): bpfmesh acts on "
				 "the rate-limit shapes (" LOCAL_RL ", " GLOBAL_RL
				 ", route rate_limits) only",
				 p.what);
			warn(arg, cps->items[i], field, msg);
		} else if (p.kind == EFP_GLOBAL) {
			const struct ynode *v = ymap_get(ymap_get(cps->items[i], "patch"), "value");
			const char *type;
			const struct ynode *b = typed_body(fget(v, "typed_config"), &type);

			if (fget(b, "rate_limit_service"))
				warn(arg, cps->items[i], field,
				     "rate_limit_service: not used: the node agent evaluates the "
				     "limits itself, its counters in the Redis of "
				     "--ratelimit-redis");
		}
		if (p.has_local && p.kind == EFP_ROUTE && !p.local.has_tb && !p.local.bad_fill)
			warn(arg, cps->items[i], field,
			     "typed_per_filter_config " LOCAL_RL ": token_bucket is required in a "
			     "route's config (Envoy refuses it): ignored");
		if (p.has_local && p.local.has_tb && p.local.enabled <= 0)
			warn(arg, cps->items[i], field,
			     LOCAL_RL ": filter_enabled unset or 0%: the limit never applies "
				      "(Envoy's default)");
		if (p.has_local && p.local.bad_fill)
			warn(arg, cps->items[i], field,
			     LOCAL_RL ": token_bucket.fill_interval under 50ms (Envoy refuses it): "
				      "ignored");
		for (int k = 0; k < p.nlimits; k++)
			if (!p.limits[k].n) {
				snprintf(
				    msg, sizeof(msg),
				    "rate_limits[%d]: no action bpfmesh knows (request_headers, "
				    "remote_address, generic_key, header_value_match, "
				    "source_cluster, destination_cluster): it makes no "
				    "descriptor",
				    k);
				warn(arg, cps->items[i], field, msg);
			}
		{
			struct ef_obj tmp = {.p = &p, .np = 1};

			/* ef_free frees the patch array too: hand it a copy on the heap */
			tmp.p = malloc(sizeof(p));
			if (tmp.p)
				*tmp.p = p;
			else
				tmp.np = 0;
			ef_free(&tmp);
		}
	}
}

/* ---------------- envoyproxy/ratelimit config ---------------- */

static int unit_of(const char *u)
{
	static const struct {
		const char *n;
		int s;
	} k[] = {{"second", 1},	   {"minute", 60},     {"hour", 3600},	  {"day", 86400},
		 {"week", 604800}, {"month", 2592000}, {"year", 31536000}};

	for (size_t i = 0; u && i < sizeof(k) / sizeof(k[0]); i++)
		if (!strcasecmp(u, k[i].n))
			return k[i].s;
	return 0;
}

static int cdescs_of(const struct ynode *seq, struct rl_cdesc **out, int *n, const char *path,
		     char *err, size_t errlen, int depth)
{
	*out = NULL;
	*n = 0;
	if (!seq)
		return 0;
	if (!ynode_is_seq(seq)) {
		snprintf(err, errlen, "line %d: %s: must be a list", seq->line, path);
		return -1;
	}
	if (depth > 16) {
		snprintf(err, errlen, "line %d: %s: nested too deep", seq->line, path);
		return -1;
	}
	*out = calloc((size_t)(seq->n ? seq->n : 1), sizeof(**out));
	if (!*out) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < seq->n; i++) {
		const struct ynode *d = seq->items[i], *rl = ymap_get(d, "rate_limit"),
				   *rep = ymap_get(rl, "replaces");
		struct rl_cdesc *c = &(*out)[(*n)++];
		char sub[200];
		bool oom = false;

		snprintf(sub, sizeof(sub), "%s[%d]", path, i);
		if (!ynode_is_map(d) || !ymap_str(d, "key") || !*ymap_str(d, "key")) {
			snprintf(err, errlen, "line %d: %s.key: required", d ? d->line : 0, sub);
			return -1;
		}
		c->key = sdup(ymap_str(d, "key"), &oom);
		c->value = sdup(ymap_str(d, "value"), &oom);
		c->shadow = ymap_bool(d, "shadow_mode", false);
		if (rl) {
			c->has_limit = true;
			c->unlimited = ymap_bool(rl, "unlimited", false);
			c->name = sdup(ymap_str(rl, "name"), &oom);
			if (!c->unlimited) {
				int64_t rpu = ymap_int(rl, "requests_per_unit", -1);

				c->unit_s = (uint32_t)unit_of(ymap_str(rl, "unit"));
				if (!c->unit_s) {
					snprintf(err, errlen,
						 "line %d: %s.rate_limit.unit: \"%s\": not one of "
						 "second, minute, hour, day, week, month, year",
						 rl->line, sub,
						 ymap_str(rl, "unit") ? ymap_str(rl, "unit") : "");
					return -1;
				}
				if (rpu < 0 || rpu > UINT32_MAX) {
					snprintf(
					    err, errlen,
					    "line %d: %s.rate_limit.requests_per_unit: required, "
					    "a non-negative integer",
					    rl->line, sub);
					return -1;
				}
				c->rpu = (uint32_t)rpu;
			}
			if (ynode_is_seq(rep) && rep->n) {
				c->replaces = calloc((size_t)rep->n, sizeof(char *));
				for (int k = 0; c->replaces && k < rep->n; k++)
					c->replaces[c->nreplaces++] =
					    sdup(ymap_str(rep->items[k], "name"), &oom);
			}
		}
		if (oom) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		snprintf(sub + strlen(sub), sizeof(sub) - strlen(sub), ".descriptors");
		if (cdescs_of(ymap_get(d, "descriptors"), &c->kids, &c->nkids, sub, err, errlen,
			      depth + 1))
			return -1;
	}
	return 0;
}

static void cdescs_free(struct rl_cdesc *v, int n)
{
	for (int i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].value);
		free(v[i].name);
		for (int k = 0; k < v[i].nreplaces; k++)
			free(v[i].replaces[k]);
		free(v[i].replaces);
		cdescs_free(v[i].kids, v[i].nkids);
	}
	free(v);
}

int rl_domain_parse(const char *text, size_t len, const char *source, struct rl_domain *out,
		    char *err, size_t errlen)
{
	struct yfile f = {0};
	struct yerror ye = {0};
	const struct ynode *root;

	memset(out, 0, sizeof(*out));
	if (yfile_load_mem(text, len, &f, &ye)) {
		snprintf(err, errlen, "line %d: %s", ye.line, ye.msg);
		return -1;
	}
	root = f.ndocs ? f.docs[0].root : NULL;
	if (!ynode_is_map(root) || !ymap_str(root, "domain") || !*ymap_str(root, "domain")) {
		snprintf(err, errlen, "line %d: domain: required", root ? root->line : 1);
		yfile_free(&f);
		return -1;
	}
	out->domain = strdup(ymap_str(root, "domain"));
	out->source = strdup(source ? source : "");
	if (!out->domain || !out->source ||
	    cdescs_of(ymap_get(root, "descriptors"), &out->d, &out->n, "descriptors", err, errlen,
		      0)) {
		if (!out->domain || !out->source)
			snprintf(err, errlen, "out of memory");
		rl_domain_free(out);
		yfile_free(&f);
		return -1;
	}
	yfile_free(&f);
	return 0;
}

void rl_domain_free(struct rl_domain *d)
{
	free(d->domain);
	free(d->source);
	cdescs_free(d->d, d->n);
	memset(d, 0, sizeof(*d));
}

void rlcm_free(struct rlcm_obj *o)
{
	for (int i = 0; i < o->ndoms; i++)
		rl_domain_free(&o->doms[i]);
	free(o->doms);
	free(o->name);
	free(o->ns);
	memset(o, 0, sizeof(*o));
}

/* ---------------- evaluation ---------------- */

bool ef_selects(const struct ef_obj *f, const char *root_ns, const struct workload_obj *w)
{
	if (!w)
		return false;
	if (!root_ns || !*root_ns)
		root_ns = "istio-system";
	if (strcmp(f->ns, w->ns) && strcmp(f->ns, root_ns))
		return false;
	for (int i = 0; i < f->selector.n; i++) {
		const char *v = kv_get(&w->labels, f->selector.v[i].key);

		if (!v || strcmp(v, f->selector.v[i].val))
			return false;
	}
	return true;
}

const struct ef_obj *rl_filter_for(const struct mesh_config *c, const char *root_ns,
				   const struct workload_obj *w, enum ef_ctx ctx)
{
	for (int i = 0; i < c->nefs; i++) {
		const struct ef_obj *f = &c->efs[i];

		if (w && !ef_selects(f, root_ns, w))
			continue;
		for (int k = 0; k < f->np; k++)
			if ((f->p[k].kind == EFP_LOCAL || f->p[k].kind == EFP_GLOBAL) &&
			    (f->p[k].ctx == EF_ANY || f->p[k].ctx == ctx))
				return f;
	}
	return NULL;
}

bool rl_has_global(const struct mesh_config *c)
{
	for (int i = 0; i < c->nefs; i++)
		for (int k = 0; k < c->efs[i].np; k++)
			if (c->efs[i].p[k].kind == EFP_GLOBAL)
				return true;
	return false;
}

bool ef_patch_holds(const struct ef_patch *p, enum ef_ctx ctx, int port, const char *vhost_host,
		    const char *route_name)
{
	if (p->ctx != EF_ANY && p->ctx != ctx)
		return false;
	if (p->port && p->port != port)
		return false;
	if (p->route && (!route_name || strcmp(p->route, route_name)))
		return false;
	if (p->vhost) {
		/* Istio's virtual host names: "inbound|http|PORT" on the inbound side,
		 * "HOST:PORT" elsewhere (a gateway's "*:80") */
		const char *v = p->vhost, *colon = strrchr(v, ':');

		if (!strncmp(v, "inbound|http|", 13))
			return ctx == EF_INBOUND && atoi(v + 13) == port;
		if (colon && atoi(colon + 1) != port)
			return false;
		if (colon && !(colon - v == 1 && *v == '*') &&
		    !(vhost_host && strlen(vhost_host) == (size_t)(colon - v) &&
		      !strncasecmp(vhost_host, v, (size_t)(colon - v))))
			return false;
	}
	return true;
}

static bool hmatch(const struct rl_hmatch *m, const char *v)
{
	bool ok;
	size_t n, k;

	if (!v)
		return m->invert; /* absent: no match (an inverted matcher holds) */
	n = strlen(v);
	switch (m->kind) {
	case RLM_PRESENT:
		ok = true;
		break;
	case RLM_EXACT:
		ok = m->value && !strcmp(v, m->value);
		break;
	case RLM_PREFIX:
		ok = m->value && !strncmp(v, m->value, strlen(m->value));
		break;
	case RLM_SUFFIX:
		k = m->value ? strlen(m->value) : 0;
		ok = m->value && n >= k && !strcmp(v + n - k, m->value);
		break;
	case RLM_CONTAINS:
		ok = m->value && strstr(v, m->value);
		break;
	default:
		ok = m->re && bm_regex_full(m->re, v, n);
	}
	return ok != m->invert;
}

bool rl_descriptor(const struct rl_limit *l, const struct rl_req *q, struct rl_desc *out)
{
	out->n = 0;
	if (!l->n)
		return false;
	for (int i = 0; i < l->n; i++) {
		const struct rl_action *a = &l->a[i];
		const char *v = NULL;
		bool all = true;

		switch (a->kind) {
		case RLA_REQUEST_HEADERS:
			v = a->header ? q->header(q->arg, a->header) : NULL;
			if (!v) {
				if (a->skip_if_absent)
					continue;
				return false;
			}
			break;
		case RLA_REMOTE_ADDRESS:
			v = q->remote;
			if (!v)
				return false;
			break;
		case RLA_GENERIC_KEY:
			v = a->value ? a->value : "";
			break;
		case RLA_HEADER_VALUE_MATCH:
			for (int k = 0; k < a->nhm && all; k++)
				all = hmatch(&a->hm[k], q->header(q->arg, a->hm[k].name));
			if (all != a->expect_match)
				return false;
			v = a->value ? a->value : "";
			break;
		case RLA_SOURCE_CLUSTER:
			v = q->source_cluster;
			break;
		case RLA_DESTINATION_CLUSTER:
			v = q->dest_cluster;
			break;
		}
		if (!v || out->n >= RL_MAX_ENTRIES)
			return false;
		out->e[out->n].key = a->key ? a->key : "";
		out->e[out->n].value = (char *)v;
		out->n++;
	}
	return out->n > 0;
}

int rl_local_match(const struct rl_local *lc, const struct rl_desc *ds, int nds, int *idx, int max)
{
	int n = 0;

	for (int i = 0; i < lc->ndescs && n < max; i++) {
		const struct rl_local_desc *d = &lc->descs[i];

		for (int k = 0; k < nds; k++) {
			bool eq = ds[k].n == d->n;

			for (int j = 0; eq && j < d->n; j++)
				eq = d->e[j].key && d->e[j].value &&
				     !strcmp(d->e[j].key, ds[k].e[j].key) &&
				     !strcmp(d->e[j].value, ds[k].e[j].value);
			if (eq) {
				idx[n++] = i;
				break;
			}
		}
	}
	return n;
}

bool rl_take(struct rl_tb_state *s, const struct rl_bucket *b, int64_t now_ms)
{
	if (!s->last_ms) {
		s->tokens = b->max_tokens;
		s->last_ms = now_ms ? now_ms : 1;
	} else if (b->fill_ms > 0 && now_ms > s->last_ms) {
		/* whole fill intervals since the last fill, as Envoy's timer adds them */
		int64_t fills = (now_ms - s->last_ms) / b->fill_ms;

		if (fills > 0) {
			s->tokens += (double)fills * b->tokens_per_fill;
			if (s->tokens > b->max_tokens)
				s->tokens = b->max_tokens;
			s->last_ms += fills * b->fill_ms;
		}
	}
	if (s->tokens >= 1) {
		s->tokens -= 1;
		return true;
	}
	return false;
}

/* envoyproxy/ratelimit's order: key and value, then a value ending in '*' (a prefix), then
 * the key alone */
static const struct rl_cdesc *find_level(const struct rl_cdesc *v, int n, const struct rl_entry *e)
{
	const struct rl_cdesc *any = NULL, *wild = NULL;

	for (int i = 0; i < n; i++) {
		size_t k;

		if (strcmp(v[i].key, e->key))
			continue;
		if (!v[i].value) {
			if (!any)
				any = &v[i];
			continue;
		}
		if (!strcmp(v[i].value, e->value))
			return &v[i];
		k = strlen(v[i].value);
		if (!wild && k && v[i].value[k - 1] == '*' && !strncmp(v[i].value, e->value, k - 1))
			wild = &v[i];
	}
	return wild ? wild : any;
}

const struct rl_cdesc *rl_domain_limit(const struct rl_domain *d, const struct rl_desc *q)
{
	const struct rl_cdesc *lv = d->d, *hit = NULL;
	int n = d->n;

	for (int i = 0; i < q->n; i++) {
		hit = find_level(lv, n, &q->e[i]);
		if (!hit)
			return NULL;
		lv = hit->kids;
		n = hit->nkids;
	}
	return hit && hit->has_limit ? hit : NULL;
}

int rl_cache_key(char *buf, size_t len, const char *domain, const struct rl_desc *q,
		 const struct rl_cdesc *lim, int64_t now_s)
{
	size_t k;
	int r = snprintf(buf, len, "%s_", domain);

	if (r < 0 || (size_t)r >= len)
		return -1;
	k = (size_t)r;
	for (int i = 0; i < q->n; i++) {
		r = snprintf(buf + k, len - k, "%s_%s_", q->e[i].key, q->e[i].value);
		if (r < 0 || (size_t)r >= len - k)
			return -1;
		k += (size_t)r;
	}
	r = snprintf(buf + k, len - k, "%lld", (long long)(now_s / lim->unit_s * lim->unit_s));
	return r < 0 || (size_t)r >= len - k ? -1 : 0;
}
