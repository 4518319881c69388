// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * crosscheck.c: Istio's analyzers across objects, as `istioctl analyze` runs them on files:
 * what a VirtualService names and nothing defines (IST0101: a destination host, host:port or
 * host+subset), a destination that must name a port (IST0112), two mesh VirtualServices for
 * one host (IST0109), and DestinationRules that Istio merges (BM0008). None of these makes an
 * object invalid (the API server and Istio's webhook accept each object on its own); at run
 * time such a route fails (refused at connect, counted as no_backend) while the rest applies.
 * Called by config_analyze() (analyze.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gwapi.h"
#include "htab.h"
#include "model.h"
#include "ratelimit.h"
#include "telemetry.h"
#include "resolve.h"
#include "vcore.h"

void vs_object(char *buf, size_t len, const char *kind, const char *ns, const char *name)
{
	pathf(buf, len, "%s/%s/%s", kind, ns, name);
}

/* A ServiceEntry host (as written, made an FQDN in its namespace) covering fqdn. */
static bool se_covers(const struct mesh_config *c, const char *fqdn)
{
	for (int i = 0; i < c->nothers; i++) {
		const struct other_obj *o = &c->others[i];

		for (int k = 0; k < o->nhosts; k++) {
			char *h = config_fqdn(o->hosts[k], o->ns);
			bool m = h && host_subset_of(fqdn, h);

			free(h);
			if (m)
				return true;
		}
	}
	return false;
}

static const struct svc_obj *find_service(const struct mesh_config *c, const char *fqdn)
{
	for (int i = 0; i < c->nservices; i++) {
		char *f = config_fqdn(c->services[i].name, c->services[i].ns);
		bool m = f && !strcmp(f, fqdn);

		free(f);
		if (m)
			return &c->services[i];
	}
	return NULL;
}

/* The ports of s as Go prints a []int: "[80 8080]". */
static void port_list(const struct svc_obj *s, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = 0;
	for (int i = 0; i < s->nports && used < len; i++)
		used += snprintf(buf + used, len - used, "%s%d", i ? " " : "[", s->ports[i].port);
	if (used < len)
		snprintf(buf + used, len - used, "]");
}

/* One destination of route r of vs: host, port and subset must exist (Istio's
 * DestinationHostAnalyzer and DestinationRuleAnalyzer). */
static int check_dest(const struct mesh_config *c, const struct vs_obj *vs, int r, int k,
		      struct diags *d)
{
	const struct route_dest *rd = &vs->routes[r].dests[k];
	char obj[512], path[PATHMAX], field[PATHMAX + 64], ports[256];
	char *fqdn = config_fqdn(rd->host, vs->ns);
	const struct svc_obj *s = fqdn ? find_service(c, fqdn) : NULL;
	const struct dr_obj *dr;
	int n = 0;

	if (!fqdn)
		return 0;
	vs_object(obj, sizeof(obj), "VirtualService", vs->ns, vs->name);
	config_route_path(path, sizeof(path), vs, r);
	if (!s && !se_covers(c, fqdn)) {
		pathf(field, sizeof(field), "%s.route[%d].destination.host", path, k);
		diags_addc(d, DIAG_ERROR, "IST0101", &rd->pos, obj, field,
			   "Referenced host not found: \"%s\"", rd->host);
		free(fqdn);
		return 1; /* Istio checks nothing else of a destination it cannot find */
	}
	if (s && rd->port) {
		bool found = false;

		for (int i = 0; i < s->nports; i++)
			found |= s->ports[i].port == rd->port;
		if (!found) {
			pathf(field, sizeof(field), "%s.route[%d].destination.port", path, k);
			diags_addc(d, DIAG_ERROR, "IST0101", &rd->pos, obj, field,
				   "Referenced host:port not found: \"%s:%d\"", rd->host, rd->port);
			n++;
		}
	} else if (s && s->nports > 1) {
		port_list(s, ports, sizeof(ports));
		pathf(field, sizeof(field), "%s.route[%d].destination", path, k);
		diags_addc(d, DIAG_ERROR, "IST0112", &rd->pos, obj, field,
			   "This VirtualService routes to a service \"%s\" that exposes multiple "
			   "ports %s. Specifying a port in the destination is required to "
			   "disambiguate.",
			   rd->host, ports);
		n++;
	}
	dr = rd->subset ? rs_find_dr(c, fqdn, s ? s->ns : vs->ns) : NULL;
	if (rd->subset && !(dr && rs_find_subset(c, dr, rd->subset))) {
		pathf(field, sizeof(field), "%s.route[%d].destination.subset", path, k);
		diags_addc(d, DIAG_ERROR, "IST0101", &rd->pos, obj, field,
			   "Referenced host+subset in destinationrule not found: \"%s+%s\"",
			   rd->host, rd->subset);
		n++;
	}
	free(fqdn);
	return n;
}

static int check_dests(const struct mesh_config *c, struct diags *d)
{
	int n = 0;

	for (int i = 0; i < c->nvses; i++)
		for (int r = 0; r < c->vses[i].nroutes; r++)
			for (int k = 0; k < c->vses[i].routes[r].ndests; k++)
				n += check_dest(c, &c->vses[i], r, k, d);
	return n;
}

/* IST0101 for a `gateways` entry that names no Gateway (Istio's VirtualService analyzer:
 * "Referenced gateway not found"). */
static int check_gateway_refs(const struct mesh_config *c, struct diags *d)
{
	char obj[512], field[64];
	int n = 0;

	for (int i = 0; i < c->nvses; i++) {
		const struct vs_obj *vs = &c->vses[i];

		for (int k = 0; k < vs->ngateways && !gwapi_derived(vs->name); k++) {
			bool found = !strcmp(vs->gateways[k], "mesh");

			for (int g = 0; g < c->ngws && !found; g++)
				found = rs_gw_ref(vs->gateways[k], vs->ns, c->gws[g].ns,
						  c->gws[g].name);
			if (found)
				continue;
			vs_object(obj, sizeof(obj), "VirtualService", vs->ns, vs->name);
			snprintf(field, sizeof(field), "spec.gateways[%d]", k);
			diags_addc(d, DIAG_ERROR, "IST0101", &vs->pos, obj, field,
				   "Referenced gateway not found: \"%s\"", vs->gateways[k]);
			n++;
		}
	}
	return n;
}

static bool vs_to_mesh(const struct vs_obj *vs)
{
	for (int i = 0; i < vs->ngateways; i++)
		if (strcmp(vs->gateways[i], "mesh") == 0)
			return true;
	return vs->ngateways == 0;
}

/* The namespaces a VirtualService is visible in, as Istio's analyzer scopes hosts: "*" when
 * exported to all (the default), else each exportTo entry ("." being its own namespace). */
static int vs_scopes(const struct vs_obj *vs, const char **out, int max)
{
	bool all = vs->nexport_to == 0;
	int n = 0;

	for (int i = 0; i < vs->nexport_to; i++)
		all |= !strcmp(vs->export_to[i], "*");
	if (all) {
		out[0] = "*";
		return 1;
	}
	for (int i = 0; i < vs->nexport_to && n < max; i++) {
		const char *s = strcmp(vs->export_to[i], ".") ? vs->export_to[i] : vs->ns;
		bool dup = false;

		for (int k = 0; k < n; k++)
			dup |= !strcmp(out[k], s);
		if (!dup)
			out[n++] = s;
	}
	return n;
}

struct scoped_host {
	char *key; /* scope "/" fqdn, as Istio prints it */
	int *vs;   /* indexes into c->vses */
	int n;
};

/* Two mesh VirtualServices for one host in one scope: Istio's sidecars use only one of them
 * (ConflictingMeshGatewayHostsAnalyzer), reported on each of them. */
static int check_vs_conflicts(const struct mesh_config *c, struct diags *d)
{
	struct htab index = {0};
	struct scoped_host *v = NULL;
	int nv = 0, nfound = 0;

	for (int j = 0; j < c->nvses; j++) {
		const struct vs_obj *vs = &c->vses[j];
		const char *scopes[16];
		int ns = vs_to_mesh(vs) ? vs_scopes(vs, scopes, 16) : 0;

		for (int s = 0; s < ns; s++) {
			for (int h = 0; h < vs->nhosts; h++) {
				char *fq = config_fqdn(vs->hosts[h], vs->ns), *key = NULL;
				uint8_t k[HKEY];
				int *at, *nvs;

				if (!fq || asprintf(&key, "%s/%s", scopes[s], fq) < 0)
					key = NULL;
				free(fq);
				if (!key)
					continue;
				h_strkey(k, key, NULL, NULL);
				at = h_get(&index, k);
				if (!at) {
					struct scoped_host *nvv = realloc(v, (nv + 1) * sizeof(*v));

					if (!nvv) {
						free(key);
						continue;
					}
					v = nvv;
					v[nv] = (struct scoped_host){.key = key};
					h_put(&index, k, nv++);
					at = h_get(&index, k);
				} else {
					free(key);
				}
				if (v[*at].n && v[*at].vs[v[*at].n - 1] == j)
					continue; /* two hosts of one VirtualService */
				nvs = realloc(v[*at].vs, (v[*at].n + 1) * sizeof(int));
				if (!nvs)
					continue;
				v[*at].vs = nvs;
				v[*at].vs[v[*at].n++] = j;
			}
		}
	}
	for (int i = 0; i < nv; i++) {
		char names[2048] = "";
		size_t used = 0;

		for (int k = 0; v[i].n > 1 && k < v[i].n && used < sizeof(names); k++)
			used +=
			    snprintf(names + used, sizeof(names) - used, "%s%s/%s", k ? "," : "",
				     c->vses[v[i].vs[k]].ns, c->vses[v[i].vs[k]].name);
		for (int k = 0; v[i].n > 1 && k < v[i].n; k++) {
			const struct vs_obj *vs = &c->vses[v[i].vs[k]];
			char obj[512];

			vs_object(obj, sizeof(obj), "VirtualService", vs->ns, vs->name);
			diags_addc(d, DIAG_ERROR, "IST0109", &vs->pos, obj, "spec.hosts",
				   "The VirtualServices %s associated with mesh gateway define the "
				   "same host %s which can lead to undefined behavior. This can be "
				   "fixed by merging the conflicting VirtualServices into a single "
				   "resource.",
				   names, v[i].key);
			nfound++;
		}
		free(v[i].key);
		free(v[i].vs);
	}
	free(v);
	h_free(&index);
	return nfound;
}

static bool dr_has_subset(const struct dr_obj *dr, const char *subset)
{
	for (int i = 0; i < dr->nsubsets; i++)
		if (dr->subsets[i].name && strcmp(dr->subsets[i].name, subset) == 0)
			return true;
	return false;
}

/* Istio merges DestinationRules for one host in one namespace: subsets add up (the first
 * definition of a name wins) and only the first rule's trafficPolicy counts. */
static int check_dr_merge(const struct dr_obj *a, const struct dr_obj *b, struct diags *d)
{
	char obj[512], field[64];
	int n = 1;

	vs_object(obj, sizeof(obj), "DestinationRule", b->ns, b->name);
	diags_addc(d, DIAG_WARN, "BM0008", &b->pos, obj, "spec.host",
		   "DestinationRule %s/%s (%s:%d) is for the same host; they are merged as Istio "
		   "merges them: subsets are added and only the first trafficPolicy applies",
		   a->ns, a->name, a->pos.file, a->pos.line);
	for (int i = 0; i < b->nsubsets; i++) {
		if (!b->subsets[i].name || !dr_has_subset(a, b->subsets[i].name))
			continue;
		pathf(field, sizeof(field), "spec.subsets[%d].name", i);
		diags_addc(d, DIAG_WARN, "BM0008", &b->subsets[i].pos, obj, field,
			   "subset \"%s\" is also defined by DestinationRule %s/%s, whose "
			   "definition is the one used (the first wins)",
			   b->subsets[i].name, a->ns, a->name);
		n++;
	}
	return n;
}

static int check_dr_merges(const struct mesh_config *c, struct diags *d)
{
	int n = 0;

	for (int j = 0; j < c->ndrs; j++) {
		char *hj = config_fqdn(c->drs[j].host, c->drs[j].ns);

		for (int i = 0; hj && i < j; i++) {
			char *hi = config_fqdn(c->drs[i].host, c->drs[i].ns);
			bool same = hi && !strcmp(hi, hj) && !strcmp(c->drs[i].ns, c->drs[j].ns);

			free(hi);
			if (same) {
				n += check_dr_merge(&c->drs[i], &c->drs[j], d);
				break;
			}
		}
		free(hj);
	}
	return n;
}

/*
 * A Gateway API route's status, as Istio writes it on the HTTPRoute (BM0020, Info; False is a
 * Warning): Accepted (every parent Gateway exists and is of class istio: its derived Istio
 * Gateway is there) and ResolvedRefs (every backendRef is a Service), with the reason.
 */
static int check_gwapi_routes(const struct mesh_config *c, struct diags *d)
{
	char obj[512], why[600];
	int n = 0;

	for (int i = 0; i < c->nvses; i++) {
		const struct vs_obj *vs = &c->vses[i];
		const char *missing_gw = NULL, *missing_be = NULL;
		size_t bl = strlen(vs->name) - strlen(GWAPI_SUFFIX);

		if (!gwapi_derived(vs->name))
			continue;
		for (int k = 0; k < vs->ngateways && !missing_gw; k++) {
			bool found = false;

			for (int g = 0; g < c->ngws && !found; g++)
				found = rs_gw_ref(vs->gateways[k], vs->ns, c->gws[g].ns,
						  c->gws[g].name);
			if (!found)
				missing_gw = vs->gateways[k];
		}
		for (int r = 0; r < vs->nroutes && !missing_be; r++)
			for (int k = 0; k < vs->routes[r].ndests && !missing_be; k++) {
				char *f = config_fqdn(vs->routes[r].dests[k].host, vs->ns);

				if (f && !find_service(c, f))
					missing_be = vs->routes[r].dests[k].host;
				free(f);
			}
		{
			const char *kind = "HTTPRoute";

			/* derive_l4route's names: NAME-tcproute, NAME-tlsroute */
			if (bl > 9 && !strncmp(vs->name + bl - 9, "-tcproute", 9))
				kind = "TCPRoute", bl -= 9;
			else if (bl > 9 && !strncmp(vs->name + bl - 9, "-tlsroute", 9))
				kind = "TLSRoute", bl -= 9;
			snprintf(obj, sizeof(obj), "%s/%s/%.*s", kind, vs->ns, (int)bl, vs->name);
		}
		if (missing_gw) {
			size_t gl = strlen(missing_gw);

			snprintf(
			    why, sizeof(why),
			    "Accepted=False (NoMatchingParent: no Gateway %.*s of class istio)",
			    gl > strlen(GWAPI_SUFFIX) ? (int)(gl - strlen(GWAPI_SUFFIX)) : (int)gl,
			    missing_gw);
		} else {
			snprintf(why, sizeof(why), "Accepted=True");
		}
		snprintf(why + strlen(why), sizeof(why) - strlen(why), ", ResolvedRefs=%s%s%s%s",
			 missing_be ? "False (BackendNotFound: no Service " : "True",
			 missing_be ? missing_be : "", missing_be ? ")" : "", "");
		diags_addc(d, missing_gw || missing_be ? DIAG_WARN : DIAG_INFO, "BM0020", &vs->pos,
			   obj, "status", "%s", why);
		n += missing_gw || missing_be;
	}
	return n;
}

/* The default ingress gateway's labels (GW_LABELS): what a GATEWAY filter selects. */
static bool selects_gateway(const struct ef_obj *f)
{
	for (int i = 0; i < f->selector.n; i++) {
		char kv[300];

		snprintf(kv, sizeof(kv), "%s=%s", f->selector.v[i].key, f->selector.v[i].val);
		if (!strstr("," GW_LABELS ",", kv))
			return false;
	}
	return true;
}

/*
 * Rate limits that cannot act (BM0021, Warning): an EnvoyFilter whose rate-limit patches
 * select no workload (nor the ingress gateway), a global filter whose domain no
 * ratelimit-config ConfigMap holds (unless the agents have it in --ratelimit-config, no
 * request is limited), or one with no route rate_limits beside it (no request makes a
 * descriptor, so none is counted).
 */
static int check_ratelimits(const struct mesh_config *c, struct diags *d)
{
	char obj[300];
	int n = 0;

	for (int i = 0; i < c->nefs; i++) {
		const struct ef_obj *f = &c->efs[i];
		bool selected = selects_gateway(f), limits = false;

		for (int w = 0; w < c->nworkloads && !selected; w++)
			selected = ef_selects(f, NULL, &c->workloads[w]);
		for (int j = 0; j < c->nefs; j++)
			for (int k = 0; k < c->efs[j].np; k++)
				limits |=
				    c->efs[j].p[k].kind == EFP_ROUTE && c->efs[j].p[k].nlimits;
		snprintf(obj, sizeof(obj), "EnvoyFilter/%s/%s", f->ns, f->name);
		for (int k = 0; k < f->np; k++) {
			const struct ef_patch *p = &f->p[k];
			char field[48];
			bool known = false;

			if (p->kind == EFP_OTHER)
				continue;
			snprintf(field, sizeof(field), "spec.configPatches[%d]", p->index);
			if (!selected) {
				diags_addc(
				    d, DIAG_WARN, "BM0021", &f->pos, obj, field,
				    "rate limit: the workloadSelector selects no workload (and "
				    "not the ingress gateway): it limits nothing");
				n++;
				break;
			}
			if (p->kind != EFP_GLOBAL)
				continue;
			for (int m = 0; m < c->nrlcms && !known; m++)
				for (int q = 0; q < c->rlcms[m].ndoms && !known; q++)
					known = p->domain &&
						!strcmp(c->rlcms[m].doms[q].domain, p->domain);
			if (!known) {
				diags_addc(
				    d, DIAG_WARN, "BM0021", &f->pos, obj, field,
				    "rate limit domain \"%s\": no ConfigMap " RL_CONFIGMAP
				    " holds it: no request is limited unless the agents have it "
				    "(--ratelimit-config)",
				    p->domain ? p->domain : "");
				n++;
			}
			if (!limits) {
				diags_addc(
				    d, DIAG_WARN, "BM0021", &f->pos, obj, field,
				    "rate limit domain \"%s\": no route or virtual host has "
				    "rate_limits actions (an HTTP_ROUTE or VIRTUAL_HOST patch): no "
				    "request makes a descriptor, none is counted",
				    p->domain ? p->domain : "");
				n++;
			}
		}
	}
	return n;
}

/* Tracing that names a provider MeshConfig does not define (BM0022, Warning): no spans go
 * anywhere for the proxies it selects (Istio: the same, the provider is not found). */
static int check_tracing(const struct mesh_config *c, struct diags *d)
{
	const struct mesh_obj *m = NULL;
	char obj[300], field[64];
	int n = 0;

	for (int i = 0; i < c->nmeshes; i++)
		if (!strcmp(c->meshes[i].ns, "istio-system"))
			m = &c->meshes[i];
	for (int i = 0; i < c->ntels; i++)
		for (int k = 0; k < c->tels[i].ntr; k++) {
			const char *p = c->tels[i].tr[k].provider;
			bool found = false;

			for (int j = 0; p && m && j < m->nprovs && !found; j++)
				found = m->provs[j].name && !strcmp(m->provs[j].name, p);
			if (!p || found)
				continue;
			snprintf(obj, sizeof(obj), "Telemetry/%s/%s", c->tels[i].ns,
				 c->tels[i].name);
			snprintf(field, sizeof(field), "spec.tracing[%d].providers", k);
			diags_addc(
			    d, DIAG_WARN, "BM0022", &c->tels[i].pos, obj, field,
			    "tracing provider \"%s\": MeshConfig (ConfigMap istio in "
			    "istio-system) has no such zipkin or opentelemetry (http) "
			    "extensionProvider: no spans are sent for the proxies it selects",
			    p);
			n++;
		}
	return n;
}

int analyze_istio(const struct mesh_config *c, struct diags *d)
{
	return check_dests(c, d) + check_gateway_refs(c, d) + check_vs_conflicts(c, d) +
	       check_dr_merges(c, d) + check_gwapi_routes(c, d) + check_ratelimits(c, d) +
	       check_tracing(c, d);
}
