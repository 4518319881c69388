// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * vrules_sec.c: Istio's validation of PeerAuthentication and AuthorizationPolicy, on objects
 * the schema pass found well typed. Called by validate.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security.h"
#include "vcore.h"

/* ---------------- rules: PeerAuthentication, AuthorizationPolicy ---------------- */

void pa_rules(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *sel = g(spec, "selector"), *plm = g(spec, "portLevelMtls");
	bool no_selector = count(g(sel, "matchLabels")) == 0;
	char p[PATHMAX];

	if (sel)
		check_selector_labels(v, sel, "matchLabels", "spec.selector");
	if (plm && plm->n == 0)
		vctx_err(v, plm, "spec.portLevelMtls", "must have at least one entry when set");
	else if (plm && no_selector)
		vctx_err(v, plm, "spec.portLevelMtls",
			 "portLevelMtls requires a selector with labels "
			 "(mesh/namespace peer authentication cannot "
			 "have port level mTLS)");
	for (int i = 0; i < count(plm); i++) {
		const char *k = plm->pairs[i].key;
		char *end;
		long port = strtol(k, &end, 10);

		pkey(p, "spec.portLevelMtls", k);
		if (!*k || *end || !all_digits(k, strlen(k)))
			vctx_err(v, plm->pairs[i].val, p, "port \"%s\" is not a number", k);
		else if (port < 1 || port > 65535)
			vctx_err(v, plm->pairs[i].val, p,
				 "port must be between 1 and 65535, got %s", k);
	}
}

static void check_values(struct vctx *v, const struct ynode *owner, const char *key,
			 const char *path, bool ips, bool ports)
{
	const struct ynode *l = g(owner, key);
	char p[PATHMAX], q[PATHMAX];

	for (int i = 0; i < count(l); i++) {
		const char *s = l->items[i]->str;

		pidx(p, pjoin(q, path, key), i);
		if (!*s)
			vctx_err(v, l->items[i], p, "empty value is not allowed");
		else if (ips && !valid_ip_or_cidr(s))
			vctx_err(v, l->items[i], p, "invalid IP address or CIDR range: %s", s);
		else if (ports && (!all_digits(s, strlen(s)) || atol(s) < 1 || atol(s) > 65535))
			vctx_err(v, l->items[i], p, "invalid port: %s", s);
	}
}

static void check_source(struct vctx *v, const struct ynode *src, const char *path)
{
	static const char *const ipf[] = {"ipBlocks", "notIpBlocks", "remoteIpBlocks",
					  "notRemoteIpBlocks", NULL};
	static const char *const strf[] = {
	    "principals",	    "notPrincipals",	  "requestPrincipals",
	    "notRequestPrincipals", "namespaces",	  "notNamespaces",
	    "serviceAccounts",	    "notServiceAccounts", NULL};
	bool sa = has(src, "serviceAccounts") || has(src, "notServiceAccounts");

	if (count(src) == 0)
		vctx_err(v, src, path, "`from.source` must not be empty");
	for (int i = 0; ipf[i]; i++)
		check_values(v, src, ipf[i], path, true, false);
	for (int i = 0; strf[i]; i++)
		check_values(v, src, strf[i], path, false, false);
	if (sa && (has(src, "namespaces") || has(src, "notNamespaces") || has(src, "principals") ||
		   has(src, "notPrincipals")))
		vctx_err(v, src, path, "cannot set serviceAccounts with namespaces or principals");
}

static void check_operation(struct vctx *v, const struct ynode *op, const char *path)
{
	static const char *const strf[] = {"hosts", "notHosts", "methods", "notMethods",
					   "paths", "notPaths", NULL};

	if (count(op) == 0)
		vctx_err(v, op, path, "`to.operation` must not be empty");
	check_values(v, op, "ports", path, false, true);
	check_values(v, op, "notPorts", path, false, true);
	for (int i = 0; strf[i]; i++)
		check_values(v, op, strf[i], path, false, false);
}

static void check_condition(struct vctx *v, const struct ynode *c, const char *path)
{
	static const char *const ip_keys[] = {"source.ip", "remote.ip", "destination.ip", NULL};
	const char *key = ymap_str(c, "key");
	bool ips = in_strs(key, ip_keys), port = key && !strcmp(key, "destination.port");
	char p[PATHMAX];

	if (!key || !*key)
		vctx_err(v, c, pjoin(p, path, "key"), "required");
	else if (!count(g(c, "values")) && !count(g(c, "notValues")))
		vctx_err(v, c, path,
			 "at least one of `values` or `notValues` must be set for key %s", key);
	check_values(v, c, "values", path, ips, port);
	check_values(v, c, "notValues", path, ips, port);
}

static void check_custom_rule(struct vctx *v, const struct ynode *rule, const char *path)
{
	static const char *const nf[] = {
	    "namespaces",	 "notNamespaces",	 "principals", "notPrincipals",
	    "requestPrincipals", "notRequestPrincipals", NULL};
	const struct ynode *from = g(rule, "from"), *when = g(rule, "when");

	for (int i = 0; i < count(from); i++)
		for (int k = 0; nf[k]; k++)
			if (has(g(from->items[i], "source"), nf[k]))
				vctx_err(v, from->items[i], path,
					 "From.%s is currently not supported with CUSTOM action",
					 nf[k]);
	for (int i = 0; i < count(when); i++) {
		const char *key = ymap_str(when->items[i], "key");

		if (key && (!strcmp(key, "source.namespace") || !strcmp(key, "source.principal") ||
			    !strncmp(key, "request.auth.", 13)))
			vctx_err(v, when->items[i], path,
				 "%s is currently not supported with CUSTOM action", key);
	}
}

static void check_rule(struct vctx *v, const struct ynode *rule, const char *path, bool custom)
{
	static const struct {
		const char *list, *item;
	} parts[] = {{"from", "source"}, {"to", "operation"}};
	char p[PATHMAX], q[PATHMAX], s[PATHMAX];

	for (int k = 0; k < 2; k++) {
		const struct ynode *l = ymap_find(rule, parts[k].list);

		pjoin(q, path, parts[k].list);
		if (ynode_is_seq(l) && l->n == 0)
			vctx_err(v, l, q, "`%s` must not be empty", parts[k].list);
		for (int i = 0; i < count(l); i++) {
			const struct ynode *it = g(l->items[i], parts[k].item);

			pjoin(s, pidx(p, q, i), parts[k].item);
			if (!it)
				vctx_err(v, l->items[i], s, "required");
			else if (k == 0)
				check_source(v, it, s);
			else
				check_operation(v, it, s);
		}
	}
	for (int i = 0; i < count(g(rule, "when")); i++)
		check_condition(v, g(rule, "when")->items[i], pidx(p, pjoin(q, path, "when"), i));
	if (custom)
		check_custom_rule(v, rule, path);
}

void ap_rules(struct vctx *v, const struct ynode *spec)
{
	const char *action = ymap_str(spec, "action") ? ymap_str(spec, "action") : "ALLOW";
	const struct ynode *rules = ymap_find(spec, "rules");
	bool custom = !strcmp(action, "CUSTOM");
	char p[PATHMAX];

	if (has(spec, "selector") + has(spec, "targetRef") + (count(g(spec, "targetRefs")) > 0) > 1)
		vctx_err(v, spec, "spec", "only one of targetRefs or workloadSelector can be set");
	if (has(spec, "selector"))
		check_selector_labels(v, g(spec, "selector"), "matchLabels", "spec.selector");
	if (custom && !rules)
		vctx_err(v, spec, "spec.rules",
			 "CUSTOM action without `rules` is meaningless as it "
			 "will never be triggered, add an empty rule `{}` if "
			 "you want it be triggered for every request");
	else if (custom && !ymap_str(g(spec, "provider"), "name"))
		vctx_err(v, spec, "spec.provider.name", "`provider.name` must not be empty");
	if (has(spec, "provider") && !custom)
		vctx_err(v, g(spec, "provider"), "spec.provider",
			 "`provider` must not be with non CUSTOM action, found %s", action);
	if (!strcmp(action, "DENY") && !rules)
		vctx_err(v, spec, "spec.rules",
			 "DENY action without `rules` is meaningless as it "
			 "will never be triggered, add an empty rule `{}` if "
			 "you want it be triggered for every request");
	for (int i = 0; i < count(rules); i++) {
		pidx(p, "spec.rules", i);
		if (ynode_is_null(rules->items[i]))
			vctx_err(v, rules->items[i], p, "`rule` must not be nil");
		else
			check_rule(v, rules->items[i], p, custom);
	}
}
