// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * vrules_istio.c: Istio's validation of WorkloadEntry, ServiceEntry and Gateway, on objects
 * the schema pass found well typed. Called by validate.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "vcore.h"

/* ---------------- rules: WorkloadEntry, ServiceEntry ---------------- */

static bool str_in_list_field(const struct ynode *l, const char *field, const char *s)
{
	for (int i = 0; i < count(l); i++)
		if (ymap_str(l->items[i], field) && strcmp(ymap_str(l->items[i], field), s) == 0)
			return true;
	return false;
}

static void check_uds(struct vctx *v, const struct ynode *we, const char *addr, const char *path)
{
	const char *p = addr + strlen("unix://");
	char q[PATHMAX];

	pjoin(q, path, "address");
	if (!*p)
		vctx_err(v, g(we, "address"), q, "unix address must not be empty");
	else if (*p != '@' && (*p != '/' || p[strlen(p) - 1] == '/'))
		vctx_err(v, g(we, "address"), q, "%s is not an absolute path to a file", p);
	if (count(g(we, "ports")))
		vctx_err(v, g(we, "ports"), pjoin(q, path, "ports"),
			 "unix endpoint %s must not include ports", addr);
}

/* Istio's validateWorkloadEntry; se_ports is the ServiceEntry's port list for endpoints. */
static void we_check(struct vctx *v, const struct ynode *we, const char *path, bool allow_fqdn,
		     const struct ynode *se_ports)
{
	const char *addr = ymap_str(we, "address");
	const struct ynode *ports = g(we, "ports");
	char p[PATHMAX], q[PATHMAX], why[320];

	pjoin(q, path, "address");
	if (!addr || !*addr) {
		if (!ymap_str(we, "network") || !*ymap_str(we, "network"))
			vctx_err(v, we, q, "required");
		else
			vctx_warn(v, we, q, "address is unset with network \"%s\"",
				  ymap_str(we, "network"));
	} else if (strncmp(addr, "unix://", 7) == 0) {
		check_uds(v, we, addr, path);
	} else if (!valid_ip(addr) && !allow_fqdn) {
		vctx_err(v, g(we, "address"), q,
			 "endpoint address \"%s\" is not a valid IP address", addr);
	} else if (!valid_ip(addr) && !valid_fqdn(addr, why, sizeof(why))) {
		vctx_err(v, g(we, "address"), q,
			 "endpoint address \"%s\" is not a valid FQDN or an IP address", addr);
	}
	for (int i = 0; i < count(ports); i++) {
		const char *name = ports->pairs[i].key;

		pkey(p, pjoin(q, path, "ports"), name);
		if (!dns_label(name, true))
			vctx_err(v, ports->pairs[i].val, p, "invalid port name: %s", name);
		else if (se_ports && !str_in_list_field(se_ports, "name", name))
			vctx_err(v, ports->pairs[i].val, p,
				 "endpoint port %s is not defined by the "
				 "service entry",
				 name);
	}
	check_labels(v, g(we, "labels"), pjoin(p, path, "labels"));
}

void we_rules(struct vctx *v, const struct ynode *spec)
{
	we_check(v, spec, "spec", true, NULL);
}

enum proto { P_UNSUPPORTED, P_TCP, P_UDP, P_HTTP, P_HTTP2, P_GRPC, P_HTTPS, P_TLS, P_OTHER_TCP };

/* Istio's protocol.Parse (case-insensitive). */
static enum proto parse_proto(const char *s)
{
	static const struct {
		const char *name;
		enum proto p;
	} t[] = {{"tcp", P_TCP},	 {"udp", P_UDP},	 {"http", P_HTTP},
		 {"http2", P_HTTP2},	 {"grpc", P_GRPC},	 {"grpc-web", P_GRPC},
		 {"http_proxy", P_HTTP}, {"https", P_HTTPS},	 {"tls", P_TLS},
		 {"mongo", P_OTHER_TCP}, {"redis", P_OTHER_TCP}, {"mysql", P_OTHER_TCP}};

	for (size_t i = 0; s && i < sizeof(t) / sizeof(t[0]); i++)
		if (strcasecmp(s, t[i].name) == 0)
			return t[i].p;
	return P_UNSUPPORTED;
}

static bool proto_http(enum proto p)
{
	return p == P_HTTP || p == P_HTTP2 || p == P_GRPC;
}

static bool proto_tls(enum proto p)
{
	return p == P_HTTPS || p == P_TLS;
}

static void se_ports_rules(struct vctx *v, const struct ynode *spec, const char *res)
{
	const struct ynode *ports = g(spec, "ports");
	char p[PATHMAX], q[PATHMAX];
	struct htab seen = {0};

	for (int i = 0; i < count(ports); i++) {
		const struct ynode *pt = ports->items[i];
		const char *name = ymap_str(pt, "name") ? ymap_str(pt, "name") : "";
		const char *proto = ymap_str(pt, "protocol");
		int64_t num = ymap_int(pt, "number", 0);

		pidx(p, "spec.ports", i);
		{
			char nums[32];

			snprintf(nums, sizeof(nums), "%lld", (long long)num);
			if (seen_at(&seen, "name", name, i) >= 0)
				vctx_err(v, pt, pjoin(q, p, "name"),
					 "service entry port name \"%s\" already defined", name);
			if (seen_at(&seen, "number", nums, i) >= 0)
				vctx_err(v, pt, pjoin(q, p, "number"),
					 "service entry port %lld already defined", (long long)num);
		}
		if (!has(pt, "number"))
			vctx_err(v, pt, pjoin(q, p, "number"), "required");
		if (!dns_label(name, true))
			vctx_err(v, pt, pjoin(q, p, "name"), "invalid port name: %s", name);
		if (proto && *proto && parse_proto(proto) == P_UNSUPPORTED)
			vctx_err(v, g(pt, "protocol"), pjoin(q, p, "protocol"),
				 "unsupported protocol: %s", proto);
		if (has(pt, "targetPort") && strcmp(res, "NONE") == 0)
			vctx_warn(v, g(pt, "targetPort"), pjoin(q, p, "targetPort"),
				  "targetPort has no effect when resolution mode is NONE");
	}
	h_free(&seen);
}

static void se_endpoint_rules(struct vctx *v, const struct ynode *spec, const char *res)
{
	const struct ynode *eps = g(spec, "endpoints"), *hosts = g(spec, "hosts");
	bool dns = !strcmp(res, "DNS") || !strcmp(res, "DNS_ROUND_ROBIN");
	char p[PATHMAX], why[320];

	if (!strcmp(res, "NONE") && count(eps))
		vctx_err(v, eps, "spec.endpoints",
			 "no endpoints should be provided for resolution "
			 "type none");
	if (!strcmp(res, "DNS_ROUND_ROBIN") && count(eps) > 1)
		vctx_err(v, eps, "spec.endpoints",
			 "there must only be 0 or 1 endpoint for resolution "
			 "mode DNS_ROUND_ROBIN");
	if (has(spec, "workloadSelector") && (dns || !strcmp(res, "NONE")))
		vctx_warn(v, g(spec, "workloadSelector"), "spec.workloadSelector",
			  "workloadSelector should not be set when resolution mode is %s", res);
	for (int i = 0; dns && !count(eps) && i < count(hosts); i++)
		if (!valid_fqdn(hosts->items[i]->str, why, sizeof(why)))
			vctx_err(
			    v, hosts->items[i], pidx(p, "spec.hosts", i),
			    "hosts must be FQDN if no endpoints are provided for resolution mode "
			    "%s",
			    res);
	for (int i = 0; strcmp(res, "NONE") && i < count(eps); i++)
		we_check(v, eps->items[i], pidx(p, "spec.endpoints", i), dns, g(spec, "ports"));
}

void se_rules(struct vctx *v, const struct ynode *spec)
{
	const struct ynode *hosts = g(spec, "hosts"), *addrs = g(spec, "addresses");
	const struct ynode *sel = g(spec, "workloadSelector"), *ports = g(spec, "ports");
	const char *res = ymap_str(spec, "resolution") ? ymap_str(spec, "resolution") : "NONE";
	bool cidr = false;
	char p[PATHMAX], why[320];

	if (sel)
		check_selector_labels(v, sel, "labels", "spec.workloadSelector");
	if (sel && ymap_find(spec, "endpoints"))
		vctx_err(v, sel, "spec.workloadSelector",
			 "only one of WorkloadSelector or Endpoints is allowed in Service Entry");
	if (count(hosts) == 0)
		vctx_err(v, spec, "spec.hosts", "required");
	for (int i = 0; i < count(hosts); i++) {
		const char *h = hosts->items[i]->str;

		pidx(p, "spec.hosts", i);
		if (strcmp(h, "*") == 0)
			vctx_err(v, hosts->items[i], p,
				 "invalid host *: hostname cannot be wildcard");
		else if (!valid_wildcard_domain(h, why, sizeof(why)))
			vctx_err(v, hosts->items[i], p, "%s", why);
		else if (strchr(h, '*') && strncmp(h, "*.", 2))
			vctx_warn(v, hosts->items[i], p, "partial wildcard \"%s\" not allowed", h);
	}
	for (int i = 0; i < count(addrs); i++) {
		cidr |= strchr(addrs->items[i]->str, '/') != NULL;
		if (!valid_ip_or_cidr(addrs->items[i]->str))
			vctx_err(v, addrs->items[i], pidx(p, "spec.addresses", i),
				 "%s is not a valid IP address or CIDR block",
				 addrs->items[i]->str);
	}
	if (cidr && strcmp(res, "NONE") && strcmp(res, "STATIC"))
		vctx_err(v, addrs, "spec.addresses",
			 "CIDR addresses are allowed only for NONE/STATIC resolution types");
	se_ports_rules(v, spec, res);
	se_endpoint_rules(v, spec, res);
	for (int i = 0; strcmp(res, "NONE") && count(hosts) > 1 && i < count(ports); i++) {
		enum proto pr = parse_proto(ymap_str(ports->items[i], "protocol"));

		if (!proto_http(pr) && !proto_tls(pr)) {
			vctx_err(v, ports, "spec.ports",
				 "multiple hosts provided with non-HTTP, non-TLS ports");
			break;
		}
	}
	check_export_to(v, spec, "spec.exportTo", true);
}

/* ---------------- rules: Gateway ---------------- */

static void check_gateway_host(struct vctx *v, const struct ynode *n, const char *path)
{
	const char *h = n->str, *slash = strchr(h, '/');
	char why[320];

	if (slash) {
		if (slash == h || !slash[1]) {
			vctx_err(v, n, path,
				 "config namespace and dnsName in host entry cannot be empty");
			return;
		}
		if (!((slash - h == 1 && (h[0] == '*' || h[0] == '.')) ||
		      dns_label_n(h, slash - h, true)))
			vctx_err(v, n, path, "invalid namespace value \"%.*s\" in gateway",
				 (int)(slash - h), h);
		h = slash + 1;
	}
	if (strcmp(h, "*") && !strchr(h, '.'))
		vctx_err(v, n, path, "short names (non FQDN) are not allowed");
	else if (!valid_wildcard_domain(h, why, sizeof(why)) && !valid_ip(h))
		vctx_err(v, n, path, "%s", why);
	else if (strchr(h, '*') && strlen(h) != 1 && strncmp(h, "*.", 2))
		vctx_err(v, n, path, "partial wildcard \"%s\" not allowed", h);
}

static void check_server(struct vctx *v, const struct ynode *s, const char *path)
{
	const struct ynode *hosts = g(s, "hosts"), *port = g(s, "port"), *tls = g(s, "tls");
	enum proto pr = parse_proto(ymap_str(port, "protocol"));
	char p[PATHMAX], q[PATHMAX];

	if (count(hosts) == 0)
		vctx_err(v, s, pjoin(p, path, "hosts"),
			 "server config must contain at least one host");
	for (int i = 0; i < count(hosts); i++)
		check_gateway_host(v, hosts->items[i], pidx(p, pjoin(q, path, "hosts"), i));
	pjoin(p, path, "port");
	if (!port) {
		vctx_err(v, s, p, "required");
		return;
	}
	if (pr == P_UNSUPPORTED || pr == P_UDP)
		vctx_err(v, port, p,
			 "invalid protocol \"%s\", supported protocols are HTTP, HTTP2, "
			 "GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
			 ymap_str(port, "protocol") ? ymap_str(port, "protocol") : "");
	if (!has(port, "number") &&
	    !(ymap_str(s, "bind") && !strncmp(ymap_str(s, "bind"), "unix://", 7)))
		vctx_err(v, port, pjoin(q, p, "number"), "required");
	if (has(port, "targetPort"))
		vctx_err(v, port, pjoin(q, p, "targetPort"),
			 "targetPort has no impact on Gateways");
	if (!ymap_str(port, "name") || !*ymap_str(port, "name"))
		vctx_err(v, port, pjoin(q, p, "name"), "port name must be set");
	if (proto_tls(pr) && !tls)
		vctx_err(v, s, path, "server must have TLS settings for HTTPS/TLS protocols");
	else if (!proto_tls(pr) && tls && !proto_http(pr))
		vctx_err(v, tls, path, "server cannot have TLS settings for non HTTPS/TLS ports");
	else if (!proto_tls(pr) && tls &&
		 (has(tls, "caCertificates") || has(tls, "privateKey") ||
		  has(tls, "serverCertificate") || !ymap_bool(tls, "httpsRedirect", false)))
		vctx_err(v, tls, path, "server cannot have TLS settings for plain text HTTP ports");
}

void gw_rules(struct vctx *v, const struct ynode *root, const struct ynode *spec)
{
	const char *name = ymap_str(g(root, "metadata"), "name");
	const struct ynode *servers = g(spec, "servers");
	struct htab seen = {0};
	char p[PATHMAX];

	if (name && !dns_label(name, true))
		vctx_err(v, g(g(root, "metadata"), "name"), "metadata.name",
			 "invalid gateway name: \"%s\"", name);
	if (count(servers) == 0)
		vctx_err(v, spec, "spec.servers", "gateway must have at least one server");
	for (int i = 0; i < count(servers); i++) {
		const char *pn = ymap_str(g(servers->items[i], "port"), "name");

		check_server(v, servers->items[i], pidx(p, "spec.servers", i));
		if (pn && seen_at(&seen, pn, NULL, i) >= 0)
			vctx_err(v, servers->items[i], p,
				 "port names in servers must be unique: duplicate name %s", pn);
	}
	h_free(&seen);
}
