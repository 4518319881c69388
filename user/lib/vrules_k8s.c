// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * vrules_k8s.c: the rules the API server applies to the Kubernetes kinds bpfmesh reads
 * (Service, Deployment, Pod, object metadata), on objects the schema pass found well typed.
 * Called by validate.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "vcore.h"

/* ---------------- rules: Kubernetes kinds ---------------- */

void check_meta(struct vctx *v, enum obj_kind kind, const struct ynode *root)
{
	const struct ynode *meta = g(root, "metadata");
	const char *name = ymap_str(meta, "name"), *ns = ymap_str(meta, "namespace");
	bool ok;

	if (!name || !*name) {
		vctx_err(v, meta ? meta : root, "metadata.name", "required");
		return;
	}
	if (kind == OBJ_NAMESPACE)
		ok = dns_label(name, false);
	else if (kind == OBJ_SERVICE)
		ok = dns1035_label(name);
	else
		ok = dns_subdomain(name);
	if (!ok && strlen(name) > (kind == OBJ_NAMESPACE || kind == OBJ_SERVICE ? 63 : 253))
		vctx_err(v, g(meta, "name"), "metadata.name",
			 "invalid name \"%.40s...\": longer than %d characters", name,
			 kind == OBJ_NAMESPACE || kind == OBJ_SERVICE ? 63 : 253);
	else if (!ok)
		vctx_err(v, g(meta, "name"), "metadata.name",
			 "invalid name \"%s\": must be lower case letters, digits and '-'%s%s",
			 name, kind == OBJ_SERVICE ? ", starting with a letter" : "",
			 kind == OBJ_NAMESPACE || kind == OBJ_SERVICE
			     ? ""
			     : " (parts separated by '.')");
	if (ns && obj_is_namespaced(kind) && !dns_label(ns, false))
		vctx_err(v, g(meta, "namespace"), "metadata.namespace", "invalid namespace \"%s\"",
			 ns);
	check_labels(v, g(meta, "labels"), "metadata.labels");
}

static void svc_port_rules(struct vctx *v, const struct ynode *ports, int i, struct htab *seen)
{
	const struct ynode *pt = ports->items[i], *tp = g(pt, "targetPort");
	const char *name = ymap_str(pt, "name");
	const char *proto = ymap_str(pt, "protocol") ? ymap_str(pt, "protocol") : "TCP";
	char p[PATHMAX], q[PATHMAX];

	pidx(p, "spec.ports", i);
	if (!has(pt, "port"))
		vctx_err(v, pt, pjoin(q, p, "port"), "required");
	if (!name && ports->n > 1)
		vctx_err(v, pt, pjoin(q, p, "name"),
			 "required when a Service has more than one port");
	else if (name && !dns_label(name, false))
		vctx_err(v, g(pt, "name"), pjoin(q, p, "name"),
			 "invalid port name \"%s\": must be a lower case RFC 1123 label", name);
	if (ynode_str(tp) && !iana_svc_name(tp->str))
		vctx_err(
		    v, tp, pjoin(q, p, "targetPort"),
		    "invalid port name \"%s\": must be at most 15 lower case letters, digits and "
		    "'-', with a letter",
		    tp->str);
	if (name && seen_at(seen, "name", name, i) >= 0)
		vctx_err(v, g(pt, "name"), pjoin(q, p, "name"), "duplicate port name \"%s\"", name);
	if (has(pt, "port")) {
		char num[32];

		snprintf(num, sizeof(num), "%lld/%s", (long long)ymap_int(pt, "port", 0), proto);
		if (seen_at(seen, "port", num, i) >= 0)
			vctx_err(v, g(pt, "port"), pjoin(q, p, "port"), "duplicate port %lld/%s",
				 (long long)ymap_int(pt, "port", 0), proto);
	}
}

void svc_rules(struct vctx *v, const struct ynode *spec)
{
	const char *type = ymap_str(spec, "type") ? ymap_str(spec, "type") : "ClusterIP";
	const char *cip = ymap_str(spec, "clusterIP");
	const struct ynode *ports = g(spec, "ports"), *cips = g(spec, "clusterIPs");
	bool headless = cip && strcmp(cip, "None") == 0;
	bool external = strcmp(type, "ExternalName") == 0;
	char p[PATHMAX];

	if (external && !ymap_str(spec, "externalName"))
		vctx_err(v, spec, "spec.externalName", "required for type ExternalName");
	if (count(ports) == 0 && !headless && !external)
		vctx_err(v, spec, "spec.ports",
			 "required (only a headless Service, clusterIP: None, "
			 "may have no ports)");
	struct htab seen = {0};

	for (int i = 0; i < count(ports); i++)
		svc_port_rules(v, ports, i, &seen);
	h_free(&seen);
	if (cip && *cip && !headless && !valid_ip(cip))
		vctx_err(v, g(spec, "clusterIP"), "spec.clusterIP",
			 "must be a valid IP address or None, got \"%s\"", cip);
	if (count(cips) > 2)
		vctx_err(v, cips, "spec.clusterIPs", "at most two entries (one per IP family)");
	for (int i = 0; i < count(cips); i++)
		if (strcmp(cips->items[i]->str, "None") && !valid_ip(cips->items[i]->str))
			vctx_err(v, cips->items[i], pidx(p, "spec.clusterIPs", i),
				 "must be a valid IP address or None, got \"%s\"",
				 cips->items[i]->str);
	if (cip && *cip && count(cips) && strcmp(cip, cips->items[0]->str))
		vctx_err(v, cips, "spec.clusterIPs", "first entry must match spec.clusterIP");
	check_labels(v, g(spec, "selector"), "spec.selector");
}

static void pod_spec_rules(struct vctx *v, const struct ynode *ps, const char *path)
{
	const struct ynode *cs = g(ps, "containers");
	const char *node = ymap_str(ps, "nodeName");
	char p[PATHMAX], q[PATHMAX], r[PATHMAX];

	/* the API server's ValidateNodeName: a DNS-1123 subdomain */
	if (node && !dns_subdomain(node))
		vctx_err(v, g(ps, "nodeName"), pjoin(p, path, "nodeName"),
			 "invalid node name \"%s\": must be lower case letters, digits, '-' and "
			 "'.' (a DNS-1123 subdomain)",
			 node);

	if (count(cs) == 0)
		vctx_err(v, ps ? ps : NULL, pjoin(p, path, "containers"), "required");
	for (int i = 0; i < count(cs); i++) {
		const struct ynode *ports = g(cs->items[i], "ports");

		pidx(p, pjoin(q, path, "containers"), i);
		if (!ymap_str(cs->items[i], "name"))
			vctx_err(v, cs->items[i], pjoin(q, p, "name"), "required");
		for (int k = 0; k < count(ports); k++) {
			const char *n = ymap_str(ports->items[k], "name");

			pidx(r, pjoin(q, p, "ports"), k);
			if (!has(ports->items[k], "containerPort"))
				vctx_err(v, ports->items[k], pjoin(q, r, "containerPort"),
					 "required");
			if (n && !iana_svc_name(n))
				vctx_err(v, g(ports->items[k], "name"), pjoin(q, r, "name"),
					 "invalid port name \"%s\": must be at most 15 lower case "
					 "letters, digits and '-', with a letter",
					 n);
		}
	}
}

void deploy_rules(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *tmpl = g(spec, "template"), *sel = g(spec, "selector");
	const struct ynode *labels = g(g(tmpl, "metadata"), "labels"), *ml = g(sel, "matchLabels");

	if (!sel || (count(ml) == 0 && !has(sel, "matchExpressions")))
		vctx_err(v, sel ? sel : spec, "spec.selector", "required");
	for (int i = 0; i < count(ml); i++) {
		const char *want = ynode_text(ml->pairs[i].val);
		const char *got = ymap_str(labels, ml->pairs[i].key);

		if (!got || strcmp(got, want ? want : "")) {
			vctx_err(
			    v, sel, "spec.selector",
			    "does not match the template labels (spec.template.metadata.labels)");
			break;
		}
	}
	check_labels(v, ml, "spec.selector.matchLabels");
	check_labels(v, labels, "spec.template.metadata.labels");
	if (!tmpl)
		vctx_err(v, spec, "spec.template", "required");
	else
		pod_spec_rules(v, g(tmpl, "spec"), "spec.template.spec");
}

void pod_rules(struct vctx *v, const struct ynode *root)
{
	const struct ynode *st = g(root, "status"), *ips = g(st, "podIPs");
	const char *ip = ymap_str(st, "podIP");
	char p[PATHMAX];

	pod_spec_rules(v, g(root, "spec"), "spec");
	if (ip && !valid_ip(ip))
		vctx_err(v, g(st, "podIP"), "status.podIP", "invalid IP address \"%s\"", ip);
	for (int i = 0; i < count(ips); i++) {
		const char *s = ymap_str(ips->items[i], "ip");

		if (s && !valid_ip(s))
			vctx_err(v, ips->items[i], pidx(p, "status.podIPs", i),
				 "invalid IP address "
				 "\"%s\"",
				 s);
	}
}
