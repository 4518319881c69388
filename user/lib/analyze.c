// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * analyze.c: config_analyze(), what `bpfmesh analyze` finds across objects: Istio's analyzers
 * (crosscheck.c, IST codes), then bpfmesh's own notes (BM codes, listed in docs/analyze.md):
 * where bpfmesh behaves differently from Istio for a config (weighted splits per connection,
 * mTLS on one node, UDP), settings that cannot act (an outlierDetection that can never eject),
 * and policy fields that act differently per TCP connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "resolve.h"
#include "security.h"
#include "vcore.h"

/* ---------------- notes for `bpfmesh analyze` ---------------- */

/* Per service port (resolve.c, rs_path_notes): weighted http splits per connection or per
 * request, and route fields a port in the kernel cannot enforce. */
static int note_paths(const struct mesh_config *c, struct diags *d)
{
	struct diags scratch = {0}; /* resolve's own findings: crosscheck reports them */
	struct rs_table t;
	int n;

	resolve(c, &t, &scratch);
	diags_free(&scratch);
	n = rs_path_notes(&t, d);
	rs_free(&t);
	return n;
}

/* Hosts behind a DestinationRule host (optionally only a subset's), from the Services and
 * workloads loaded; 0 when the Service is not known. */
static int count_hosts(const struct mesh_config *c, const struct dr_obj *dr,
		       const struct kvlist *subset)
{
	char *fqdn = config_fqdn(dr->host, dr->ns);
	int hosts = 0;

	for (int i = 0; fqdn && i < c->nservices; i++) {
		const struct svc_obj *s = &c->services[i];
		char *sf = config_fqdn(s->name, s->ns);
		bool match = sf && !strcmp(sf, fqdn);

		free(sf);
		for (int k = 0; match && s->has_selector && k < c->nworkloads; k++) {
			const struct workload_obj *w = &c->workloads[k];

			if (!strcmp(w->ns, s->ns) && kv_match(&s->selector, &w->labels) &&
			    kv_match(subset, &w->labels))
				hosts += w->replicas;
		}
	}
	free(fqdn);
	return hosts;
}

/* Envoy ejects only while 100 * (ejected + 1) / hosts <= maxEjectionPercent: with too few
 * hosts not even the first ejection is allowed (the default 10% needs at least 10 hosts).
 * base is where that outlierDetection is written; subset names the subset it acts for when
 * the subset inherits it from the rule. */
static int note_ejection(const struct traffic_policy *p, int hosts, const struct srcpos *pos,
			 const char *obj, const char *base, const char *subset, struct diags *d)
{
	int max = p->max_ejection_percent >= 0 ? p->max_ejection_percent : 10;
	char field[PATHMAX], who[300] = "";

	if (!p->has_outlier || hosts <= 0 ||
	    (p->consecutive_5xx == 0 && p->consecutive_gateway <= 0))
		return 0;
	if (100 <= max * hosts)
		return 0;
	pathf(field, sizeof(field), "%s.outlierDetection%s", base,
	      p->max_ejection_percent >= 0 ? ".maxEjectionPercent" : "");
	if (subset)
		pathf(who, sizeof(who), " of subset %s", subset);
	diags_addc(d, DIAG_WARN, "BM0002", pos, obj, field,
		   "outlier detection can never eject a host%s: ejecting 1 of %d hosts is %d%%, "
		   "above maxEjectionPercent %d%%%s",
		   who, hosts, 100 / hosts, max,
		   p->max_ejection_percent < 0 ? " (the default)" : "");
	return 1;
}

static int note_ejections(const struct mesh_config *c, struct diags *d)
{
	char obj[512], base[PATHMAX];
	int n = 0;

	for (int i = 0; i < c->ndrs; i++) {
		const struct dr_obj *dr = &c->drs[i];

		vs_object(obj, sizeof(obj), "DestinationRule", dr->ns, dr->name);
		if (dr->has_policy)
			n += note_ejection(&dr->policy, count_hosts(c, dr, NULL), &dr->pos, obj,
					   "spec.trafficPolicy", NULL, d);
		for (int k = 0; k < dr->nsubsets; k++) {
			const struct dr_subset *s = &dr->subsets[k];
			bool own = s->has_policy && s->policy.has_outlier;

			if (!own && !dr->has_policy)
				continue;
			pathf(base, sizeof(base), "spec.subsets[%d].trafficPolicy", k);
			n += note_ejection(own ? &s->policy : &dr->policy,
					   count_hosts(c, dr, &s->labels), own ? &s->pos : &dr->pos,
					   obj, own ? base : "spec.trafficPolicy",
					   own ? NULL : s->name, d);
		}
	}
	return n;
}

/* Append name to a ", "-separated list once. */
static void list_add(char *buf, size_t len, const char *name)
{
	size_t used = strlen(buf), nl = strlen(name);
	const char *p = buf;

	while ((p = strstr(p, name))) {
		if ((p == buf || p[-1] == ' ') && (p[nl] == 0 || p[nl] == ','))
			return;
		p += nl;
	}
	pathf(buf + used, len - used, "%s%s", used ? ", " : "", name);
}

/* The HTTP-only fields a rule uses, as a list for a message ("" when none). */
static void rule_http_fields(const struct ap_rule *r, char *buf, size_t len)
{
	buf[0] = 0;
	for (int i = 0; i < r->nfrom; i++) {
		if (r->from[i].request_principals.n)
			list_add(buf, len, "requestPrincipals");
		if (r->from[i].not_request_principals.n)
			list_add(buf, len, "notRequestPrincipals");
	}
	for (int i = 0; i < r->nto; i++) {
		const struct ap_operation *o = &r->to[i];
		const struct {
			const struct ap_values *l;
			const char *name;
		} f[] = {{&o->hosts, "hosts"},	   {&o->not_hosts, "notHosts"},
			 {&o->methods, "methods"}, {&o->not_methods, "notMethods"},
			 {&o->paths, "paths"},	   {&o->not_paths, "notPaths"}};

		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
			if (f[k].l->n)
				list_add(buf, len, f[k].name);
	}
	for (int i = 0; i < r->nwhen; i++)
		if (!sec_l4_condition_key(r->when[i].key))
			list_add(buf, len, r->when[i].key);
}

/*
 * bpfmesh decides AuthorizationPolicy per connection (security.c), as Istio does for TCP
 * traffic: HTTP-only fields drop an ALLOW rule and are ignored in DENY/AUDIT rules. Istio
 * applies them to HTTP traffic, so a user reading the policy as HTTP rules needs to know.
 */
static int note_authz(const struct mesh_config *c, struct diags *d)
{
	static const char *const actions[] = {"ALLOW", "DENY", "AUDIT", "CUSTOM"};
	char obj[512], field[PATHMAX], fields[1024];
	int n = 0;

	for (int i = 0; i < c->naps; i++) {
		const struct ap_obj *a = &c->aps[i];

		vs_object(obj, sizeof(obj), "AuthorizationPolicy", a->ns, a->name);
		if (a->has_target_ref) {
			diags_addc(
			    d, DIAG_WARN, "BM0004", &a->pos, obj, "spec.targetRef",
			    "applies to gateways and waypoints, which bpfmesh does not have: "
			    "the policy has no effect");
			n++;
			continue;
		}
		if (a->action == AP_CUSTOM) {
			diags_addc(d, DIAG_WARN, "BM0005", &a->pos, obj, "spec.action",
				   "CUSTOM: bpfmesh cannot call the external authorizer \"%s\": "
				   "connections matching the rules are denied",
				   a->provider ? a->provider : "");
			n++;
		}
		for (int r = 0; r < a->nrules; r++) {
			rule_http_fields(&a->rules[r], fields, sizeof(fields));
			if (!fields[0])
				continue;
			pathf(field, sizeof(field), "spec.rules[%d]", r);
			if (a->action == AP_ALLOW)
				diags_addc(
				    d, DIAG_WARN, "BM0003", &a->rules[r].pos, obj, field,
				    "uses HTTP-only fields (%s): decided per request on the "
				    "HTTP path (HTTP ports of the selected workloads, mesh "
				    "clients); connections that do not take it (TCP ports, "
				    "clients outside the mesh) are judged per connection, where "
				    "this rule never matches (as Istio drops such rules from "
				    "ALLOW policies on TCP traffic)",
				    fields);
			else
				diags_addc(
				    d, DIAG_WARN, "BM0003", &a->rules[r].pos, obj, field,
				    "uses HTTP-only fields (%s): decided per request on the "
				    "HTTP path (HTTP ports of the selected workloads, mesh "
				    "clients); connections that do not take it (TCP ports, "
				    "clients outside the mesh) are judged per connection, where "
				    "they are ignored and this %s rule matches on its other "
				    "fields alone (as Istio does on TCP traffic)",
				    fields, actions[a->action]);
			n++;
		}
	}
	return n;
}

/* Where mTLS differs from Istio on purpose (docs/mtls.md), said once per PeerAuthentication
 * that asks for mTLS. */
static int note_mtls(const struct mesh_config *c, struct diags *d)
{
	char obj[512];
	int n = 0;

	for (int i = 0; i < c->npas; i++) {
		const struct pa_obj *p = &c->pas[i];
		bool strict = p->mode == MTLS_STRICT;

		for (int k = 0; k < p->nports; k++)
			strict |= p->ports[k].mode == MTLS_STRICT;
		if (!strict)
			continue;
		vs_object(obj, sizeof(obj), "PeerAuthentication", p->ns, p->name);
		diags_addc(
		    d, DIAG_INFO, "BM0006", &p->pos, obj, "spec.mtls.mode",
		    "STRICT is enforced in the destination node's kernel; bpfmesh differs "
		    "from Istio: mesh pods on the same node talk in plaintext (the kernel "
		    "attests their identity, nothing crosses a wire), and IPv6 from mesh pods "
		    "on other nodes is tunnelled only where the agents have their node's IPv6 "
		    "address (--node-ip IPV4,IPV6), else refused at connect (docs/mtls.md)");
		diags_addc(
		    d, DIAG_INFO, "BM0010", &p->pos, obj, "spec.mtls.mode",
		    "STRICT covers TCP: plaintext UDP still reaches the workloads it selects, "
		    "as in Istio (which captures no UDP either); run the agents with "
		    "--strict-udp drop to refuse it (docs/security-policy.md)");
		n += 2;
	}
	return n;
}

int config_analyze(const struct mesh_config *c, struct diags *d)
{
	return analyze_istio(c, d) + note_paths(c, d) + note_ejections(c, d) + note_authz(c, d) +
	       note_mtls(c, d);
}
