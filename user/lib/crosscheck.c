// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * crosscheck.c: config_validate(), the checks across the objects of a config (model.h): the
 * same object defined twice, references between objects (a route's subset and host), two
 * VirtualServices for one host, DestinationRules that Istio merges. Called by `bpfmesh
 * validate`, the agent and the lab after every object was loaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "model.h"
#include "vcore.h"

/* ---------------- across objects: config_validate() ---------------- */

/* One object's identity, for finding the same object defined in two files. */
struct ident {
	char *key;    /* group/kind, namespace, name joined by NUL-free separators */
	char *object; /* "Kind/ns/name" as diagnostics print it */
	struct srcpos pos;
	int order;
};

static int add_ident(struct ident **v, int *n, const char *group, const char *kind, const char *ns,
		     const char *name, const struct srcpos *pos)
{
	struct ident *nv = realloc(*v, (*n + 1) * sizeof(**v)), *id;

	if (!nv)
		return -1;
	*v = nv;
	id = &nv[*n];
	id->pos = *pos;
	id->order = *n;
	if (asprintf(&id->key, "%s\x1f%s\x1f%s\x1f%s", group, kind, ns ? ns : "", name) < 0)
		return -1;
	if ((ns ? asprintf(&id->object, "%s/%s/%s", kind, ns, name)
		: asprintf(&id->object, "%s/%s", kind, name)) < 0) {
		free(id->key);
		return -1;
	}
	(*n)++;
	return 0;
}

static int cmp_ident(const void *a, const void *b)
{
	const struct ident *x = a, *y = b;
	int r = strcmp(x->key, y->key);

	return r ? r : x->order - y->order;
}

static const char *wl_kind_name(enum workload_kind k)
{
	return k == WL_DEPLOYMENT ? "Deployment" : k == WL_POD ? "Pod" : "WorkloadEntry";
}

static int collect_idents(const struct mesh_config *c, struct ident **v, int *n)
{
	int rc = 0;

	for (int i = 0; i < c->nnamespaces; i++)
		rc |= add_ident(v, n, "", "Namespace", NULL, c->namespaces[i].name,
				&c->namespaces[i].pos);
	for (int i = 0; i < c->nservices; i++)
		rc |= add_ident(v, n, "", "Service", c->services[i].ns, c->services[i].name,
				&c->services[i].pos);
	for (int i = 0; i < c->nworkloads; i++)
		rc |= add_ident(v, n, "", wl_kind_name(c->workloads[i].kind), c->workloads[i].ns,
				c->workloads[i].name, &c->workloads[i].pos);
	for (int i = 0; i < c->nvses; i++)
		rc |= add_ident(v, n, "networking.istio.io", "VirtualService", c->vses[i].ns,
				c->vses[i].name, &c->vses[i].pos);
	for (int i = 0; i < c->ndrs; i++)
		rc |= add_ident(v, n, "networking.istio.io", "DestinationRule", c->drs[i].ns,
				c->drs[i].name, &c->drs[i].pos);
	for (int i = 0; i < c->nothers; i++) {
		const struct other_obj *o = &c->others[i];
		const char *slash = strrchr(o->api_version, '/');
		char group[256];

		pathf(group, sizeof(group), "%.*s", slash ? (int)(slash - o->api_version) : 0,
		      o->api_version);
		rc |= add_ident(v, n, group, o->kind, o->ns, o->name, &o->pos);
	}
	return rc;
}

static int check_duplicates(const struct mesh_config *c, struct diags *d)
{
	struct ident *v = NULL;
	int n = 0, nerr = 0;

	if (collect_idents(c, &v, &n) < 0)
		diags_add(d, DIAG_ERROR, NULL, NULL, NULL, "out of memory");
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_ident);
	for (int i = 1; i < n; i++) {
		int first = i - 1;

		while (first > 0 && strcmp(v[first - 1].key, v[i].key) == 0)
			first--;
		if (strcmp(v[first].key, v[i].key) != 0)
			continue;
		diags_add(d, DIAG_ERROR, &v[i].pos, v[i].object, NULL,
			  "duplicate object: also defined at %s:%d", v[first].pos.file,
			  v[first].pos.line);
		nerr++;
	}
	for (int i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].object);
	}
	free(v);
	return nerr;
}

/* A DestinationRule applies to a host when its (possibly wildcard) host covers it. */
static bool dr_covers(const struct dr_obj *dr, const char *fqdn)
{
	char *h = config_fqdn(dr->host, dr->ns);
	bool r = h && host_subset_of(fqdn, h);

	free(h);
	return r;
}

static bool dr_has_subset(const struct dr_obj *dr, const char *subset)
{
	for (int i = 0; i < dr->nsubsets; i++)
		if (dr->subsets[i].name && strcmp(dr->subsets[i].name, subset) == 0)
			return true;
	return false;
}

static const char *route_list_name(enum route_kind k)
{
	return k == ROUTE_HTTP ? "http" : k == ROUTE_TLS ? "tls" : "tcp";
}

/* spec.http[2] for the third http route, counting routes of the same kind only. */
void route_path(char *buf, const struct vs_obj *vs, int r)
{
	int idx = 0;

	for (int i = 0; i < r; i++)
		idx += vs->routes[i].kind == vs->routes[r].kind;
	pathf(buf, PATHMAX, "spec.%s[%d]", route_list_name(vs->routes[r].kind), idx);
}

void vs_object(char *buf, size_t len, const char *kind, const char *ns, const char *name)
{
	pathf(buf, len, "%s/%s/%s", kind, ns, name);
}

/*
 * A destination subset must exist in a DestinationRule for that host, or Istio answers 503.
 * When no DestinationRule at all was given (validating a VirtualService file on its own, the
 * rules being in the cluster already) this can only be a warning.
 */
static int check_subset_ref(const struct mesh_config *c, const struct vs_obj *vs, int r, int k,
			    struct diags *d)
{
	const struct route_dest *rd = &vs->routes[r].dests[k];
	char *fqdn = config_fqdn(rd->host, vs->ns);
	char obj[512], path[PATHMAX], field[PATHMAX + 64];
	int covering = 0, nerr = 0;

	for (int i = 0; fqdn && i < c->ndrs; i++) {
		if (!dr_covers(&c->drs[i], fqdn))
			continue;
		covering++;
		if (dr_has_subset(&c->drs[i], rd->subset)) {
			free(fqdn);
			return 0;
		}
	}
	vs_object(obj, sizeof(obj), "VirtualService", vs->ns, vs->name);
	route_path(path, vs, r);
	pathf(field, sizeof(field), "%s.route[%d].destination.subset", path, k);
	if (covering) {
		diags_add(d, DIAG_ERROR, &rd->pos, obj, field,
			  "subset \"%s\" is not defined by any DestinationRule for host %s",
			  rd->subset, fqdn);
		nerr++;
	} else if (c->ndrs == 0) {
		diags_add(d, DIAG_WARN, &rd->pos, obj, field,
			  "subset \"%s\" needs a DestinationRule for host %s; none was given "
			  "(Istio returns 503 until one defines it)",
			  rd->subset, fqdn);
	} else {
		diags_add(d, DIAG_ERROR, &rd->pos, obj, field,
			  "subset \"%s\" is undefined: no DestinationRule for host %s is loaded "
			  "(Istio would return 503)",
			  rd->subset, fqdn);
		nerr++;
	}
	free(fqdn);
	return nerr;
}

static int check_subset_refs(const struct mesh_config *c, struct diags *d)
{
	int nerr = 0;

	for (int i = 0; i < c->nvses; i++)
		for (int r = 0; r < c->vses[i].nroutes; r++)
			for (int k = 0; k < c->vses[i].routes[r].ndests; k++)
				if (c->vses[i].routes[r].dests[k].subset)
					nerr += check_subset_ref(c, &c->vses[i], r, k, d);
	return nerr;
}

static bool vs_to_mesh(const struct vs_obj *vs)
{
	for (int i = 0; i < vs->ngateways; i++)
		if (strcmp(vs->gateways[i], "mesh") == 0)
			return true;
	return vs->ngateways == 0;
}

static bool vs_public(const struct vs_obj *vs)
{
	return vs->nexport_to == 0 || (vs->nexport_to == 1 && !strcmp(vs->export_to[0], "*"));
}

/* Two mesh VirtualServices for one host: Istio uses only one (analyzer IST0109). The same
 * object defined twice is left to check_duplicates(). */
static int check_vs_conflicts(const struct mesh_config *c, struct diags *d)
{
	struct htab first = {0}; /* fqdn -> the first mesh VirtualService routing it */
	int nerr = 0;

	for (int j = 0; j < c->nvses; j++) {
		const struct vs_obj *b = &c->vses[j];

		if (!vs_to_mesh(b) || !vs_public(b))
			continue;
		for (int i = 0; i < b->nhosts; i++) {
			char *hb = config_fqdn(b->hosts[i], b->ns), obj[512], field[64];
			uint8_t k[HKEY];
			const struct vs_obj *a;
			int *prev;

			if (!hb || hb[0] == '*') {
				free(hb);
				continue;
			}
			h_strkey(k, hb, NULL, NULL);
			prev = h_get(&first, k);
			a = prev ? &c->vses[*prev] : NULL;
			if (!a) {
				h_put(&first, k, j);
			} else if (strcmp(a->ns, b->ns) || strcmp(a->name, b->name)) {
				vs_object(obj, sizeof(obj), "VirtualService", b->ns, b->name);
				pathf(field, sizeof(field), "spec.hosts[%d]", i);
				diags_add(
				    d, DIAG_ERROR, &b->pos, obj, field,
				    "host %s is also routed by VirtualService/%s/%s at %s:%d; "
				    "Istio would use only one of them",
				    hb, a->ns, a->name, a->pos.file, a->pos.line);
				nerr++;
			}
			free(hb);
		}
	}
	h_free(&first);
	return nerr;
}

/* Istio merges DestinationRules for one host in one namespace: subsets add up (the first
 * definition of a name wins) and only the first rule's trafficPolicy counts. */
static void check_dr_merge(const struct dr_obj *a, const struct dr_obj *b, struct diags *d)
{
	char obj[512], field[64];

	vs_object(obj, sizeof(obj), "DestinationRule", b->ns, b->name);
	diags_add(d, DIAG_WARN, &b->pos, obj, "spec.host",
		  "DestinationRule/%s/%s (%s:%d) is for the same host; Istio merges them: subsets "
		  "are added and only the first trafficPolicy applies",
		  a->ns, a->name, a->pos.file, a->pos.line);
	for (int i = 0; i < b->nsubsets; i++) {
		if (!b->subsets[i].name || !dr_has_subset(a, b->subsets[i].name))
			continue;
		pathf(field, sizeof(field), "spec.subsets[%d].name", i);
		diags_add(d, DIAG_WARN, &b->subsets[i].pos, obj, field,
			  "subset \"%s\" is also defined by DestinationRule/%s/%s; Istio keeps "
			  "the first one",
			  b->subsets[i].name, a->ns, a->name);
	}
}

static void check_dr_merges(const struct mesh_config *c, struct diags *d)
{
	for (int j = 0; j < c->ndrs; j++) {
		char *hj = config_fqdn(c->drs[j].host, c->drs[j].ns);

		for (int i = 0; hj && i < j; i++) {
			char *hi = config_fqdn(c->drs[i].host, c->drs[i].ns);

			/* The same rule in two files is a duplicate, reported already. */
			if (hi && !strcmp(hi, hj) && !strcmp(c->drs[i].ns, c->drs[j].ns) &&
			    strcmp(c->drs[i].name, c->drs[j].name)) {
				check_dr_merge(&c->drs[i], &c->drs[j], d);
				free(hi);
				break;
			}
			free(hi);
		}
		free(hj);
	}
}

int config_validate(const struct mesh_config *c, struct diags *d)
{
	int nerr = 0;

	nerr += check_duplicates(c, d);
	nerr += check_subset_refs(c, d);
	nerr += check_vs_conflicts(c, d);
	check_dr_merges(c, d);
	return nerr;
}
