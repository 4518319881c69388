// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdpgw.c: see xdpgw.h.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "l7table.h"
#include "log.h"
#include "security.h"
#include "xdpgw.h"

struct xdpgw {
	struct dp_xdp_fds fds;
	int ifindex;
	char ifname[IF_NAMESIZE];
	__u32 mode; /* XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE */
	struct bm_xconf conf;
	int ndeny, nallow, nports;
};

static int iface_of(const char *ip, char *name)
{
	struct ifaddrs *ifa, *i;
	struct in_addr want;
	int idx = 0;

	if (inet_pton(AF_INET, ip, &want) != 1 || getifaddrs(&ifa))
		return 0;
	for (i = ifa; i && !idx; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == want.s_addr) {
			snprintf(name, IF_NAMESIZE, "%s", i->ifa_name);
			idx = (int)if_nametoindex(i->ifa_name);
		}
	freeifaddrs(ifa);
	return idx;
}

struct xdpgw *xdpgw_new(const struct dp_xdp_fds *fds, const char *node_ip, unsigned syn_rate)
{
	struct xdpgw *x = calloc(1, sizeof(*x));
	__u32 zero = 0;

	if (!x)
		return NULL;
	x->fds = *fds;
	x->ifindex = iface_of(node_ip, x->ifname);
	if (!x->ifindex) {
		pr_warn("xdp: no interface holds %s: no early drop at the gateway", node_ip);
		free(x);
		return NULL;
	}
	inet_pton(AF_INET, node_ip, x->conf.node_ip4);
	x->conf.syn_rate = x->conf.syn_burst = syn_rate;
	if (bpf_map_update_elem(fds->conf, &zero, &x->conf, BPF_ANY)) {
		pr_warn("xdp: write bm_xconf: %s", strerror(errno));
		free(x);
		return NULL;
	}
	/* native first (veth has it), generic where the driver has none; an earlier agent's
	 * program is replaced in one step */
	x->mode = XDP_FLAGS_DRV_MODE;
	if (bpf_xdp_attach(x->ifindex, fds->prog, x->mode, NULL)) {
		x->mode = XDP_FLAGS_SKB_MODE;
		if (bpf_xdp_attach(x->ifindex, fds->prog, x->mode, NULL)) {
			pr_warn("xdp: attach to %s: %s: no early drop at the gateway", x->ifname,
				strerror(errno));
			free(x);
			return NULL;
		}
	}
	pr_info("xdp: gateway early drop on %s (%s mode)%s", x->ifname,
		x->mode == XDP_FLAGS_DRV_MODE ? "native" : "generic",
		syn_rate ? ", SYN rate limited per source" : "");
	return x;
}

/* The rule judges the source's address only: from entries of ipBlocks/remoteIpBlocks, no
 * other field anywhere in the rule. */
static bool source_only(const struct ap_rule *r)
{
	if (!r->nfrom || r->nto || r->nwhen)
		return false;
	for (int i = 0; i < r->nfrom; i++) {
		const struct ap_source *s = &r->from[i];

		if (s->principals.n || s->not_principals.n || s->request_principals.n ||
		    s->not_request_principals.n || s->namespaces.n || s->not_namespaces.n ||
		    s->service_accounts.n || s->not_service_accounts.n || s->not_ip_blocks.n ||
		    s->not_remote_ip_blocks.n || (!s->ip_blocks.n && !s->remote_ip_blocks.n))
			return false;
	}
	return true;
}

/* Empty an LPM trie (keys walked, then deleted). */
static void clear(int fd)
{
	struct bm_xprefix k, next;
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		bpf_map_delete_elem(fd, &k);
		prev = NULL; /* (restart: the trie's order changed) */
	}
}

static int add_blocks(int fd, const struct ap_values *v)
{
	__u8 one = 1;
	int n = 0;

	for (int i = 0; v->cidr && i < v->n; i++) {
		const struct ip_prefix *p = &v->cidr[i];
		struct bm_xprefix k = {0};

		if (!p->v4 || p->len < 96)
			continue; /* (IPv4 only) */
		k.len = (__u32)(p->len - 96);
		memcpy(k.addr, p->ip + 12, 4);
		if (!bpf_map_update_elem(fd, &k, &one, BPF_ANY))
			n++;
	}
	return n;
}

void xdpgw_sync(struct xdpgw *x, const struct mesh_config *c, const struct l7_table *t,
		const struct workload_obj *gw, const char *root_ns)
{
	bool allow_ok = true, any_allow = false;
	__u32 zero = 0;
	__u16 k, next;
	__u8 one = 1;

	if (!x)
		return;
	/* ports: the Gateways served */
	while (!bpf_map_get_next_key(x->fds.port, NULL, &next))
		bpf_map_delete_elem(x->fds.port, &next);
	x->nports = 0;
	for (int i = 0; t && i < t->ngwports; i++) {
		k = htons(t->gwports[i].port);
		if (!bpf_map_update_elem(x->fds.port, &k, &one, BPF_ANY))
			x->nports++;
	}
	clear(x->fds.deny);
	clear(x->fds.allow);
	x->ndeny = x->nallow = 0;
	for (int i = 0; c && gw && i < c->naps; i++) {
		const struct ap_obj *p = &c->aps[i];

		if (!sec_policy_applies(p, root_ns, gw))
			continue;
		if (p->action == AP_ALLOW) {
			any_allow = true;
			for (int r = 0; r < p->nrules; r++)
				allow_ok &= source_only(&p->rules[r]);
		} else if (p->action == AP_DENY) {
			for (int r = 0; r < p->nrules; r++)
				if (source_only(&p->rules[r]))
					for (int f = 0; f < p->rules[r].nfrom; f++) {
						x->ndeny += add_blocks(
						    x->fds.deny, &p->rules[r].from[f].ip_blocks);
						x->ndeny += add_blocks(
						    x->fds.deny,
						    &p->rules[r].from[f].remote_ip_blocks);
					}
		}
	}
	x->conf.flags = 0;
	if (any_allow && allow_ok) { /* every ALLOW policy judges the source only */
		x->conf.flags |= BM_XCONF_F_ALLOW_ONLY;
		for (int i = 0; c && i < c->naps; i++) {
			const struct ap_obj *p = &c->aps[i];

			if (p->action != AP_ALLOW || !sec_policy_applies(p, root_ns, gw))
				continue;
			for (int r = 0; r < p->nrules; r++)
				for (int f = 0; f < p->rules[r].nfrom; f++) {
					x->nallow += add_blocks(x->fds.allow,
								&p->rules[r].from[f].ip_blocks);
					x->nallow += add_blocks(
					    x->fds.allow, &p->rules[r].from[f].remote_ip_blocks);
				}
		}
	}
	if (bpf_map_update_elem(x->fds.conf, &zero, &x->conf, BPF_ANY))
		pr_warn("xdp: write bm_xconf: %s", strerror(errno));
	pr_debug("xdp: %d port(s), %d denied prefix(es), %s", x->nports, x->ndeny,
		 x->conf.flags & BM_XCONF_F_ALLOW_ONLY ? "allow-only" : "no allow list");
}

void xdpgw_metrics(const struct xdpgw *x, FILE *f)
{
	static const char *const names[] = {
#define X(id, name) name,
	    BM_XDP_STATS(X)
#undef X
	};
	int ncpu = libbpf_num_possible_cpus();
	__u64 sum[BM_XST_MAX] = {0}, *v;

	if (!x || ncpu <= 0 || !(v = calloc(ncpu, sizeof(*v))))
		return;
	for (__u32 i = 0; i < BM_XST_MAX; i++)
		if (!bpf_map_lookup_elem(x->fds.stats, &i, v))
			for (int c = 0; c < ncpu; c++)
				sum[i] += v[c];
	free(v);
	fprintf(f,
		"# HELP bpfmesh_xdp_passed_total Packets to the gateway's ports the XDP program "
		"let through.\n# TYPE bpfmesh_xdp_passed_total counter\n"
		"bpfmesh_xdp_passed_total %llu\n"
		"# HELP bpfmesh_xdp_dropped_total Packets to the gateway's ports dropped at XDP: "
		"reason policy (a source block of the gateway's AuthorizationPolicy), syn_rate "
		"(--ingress-syn-rate).\n# TYPE bpfmesh_xdp_dropped_total counter\n",
		(unsigned long long)sum[BM_XST_PASS]);
	for (int i = 1; i < BM_XST_MAX; i++)
		fprintf(f, "bpfmesh_xdp_dropped_total{reason=\"%s\"} %llu\n", names[i],
			(unsigned long long)sum[i]);
}

void xdpgw_free(struct xdpgw *x, bool detach)
{
	if (!x)
		return;
	if (detach) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = x->fds.prog);

		/* ours only: a later agent's program stays */
		if (bpf_xdp_detach(x->ifindex, x->mode | XDP_FLAGS_REPLACE, &o) && errno != EEXIST)
			pr_debug("xdp: detach from %s: %s", x->ifname, strerror(errno));
	}
	free(x);
}
