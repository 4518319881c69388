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

/* What the maps hold now (the agent's copy), so that a new config changes only what differs:
 * new entries go in before stale ones go out, and no packet sees a half-written filter. */
struct pset {
	struct bm_xprefix v[BM_XDP_MAX_PREFIXES];
	int n;
};

struct xdpgw {
	struct dp_xdp_fds fds;
	int ifindex;
	char ifname[IF_NAMESIZE];
	__u32 mode; /* XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE, once attached */
	bool attached, refused;
	struct bm_xconf conf;
	struct pset deny, allow;
	struct pset want_deny, want_allow; /* (xdpgw_sync's, kept off the stack) */
	__u16 ports[BM_XDP_MAX_PORTS];	   /* network order */
	int nports;
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
	return x; /* attached at the first sync, its maps written: never an empty filter */
}

/* Attach, unless another program than ours (an earlier agent's) is on the interface: that
 * one is someone else's (Cilium's, a DDoS filter) and stays. */
static void attach(struct xdpgw *x)
{
	__u32 id = 0;

	if (x->attached || x->refused)
		return;
	if (!bpf_xdp_query_id(x->ifindex, 0, &id) && id) {
		struct bpf_prog_info info = {0};
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(id);
		bool ours = fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len) &&
			    !strcmp(info.name, "bm_xdp_gw");

		if (fd >= 0)
			close(fd);
		if (!ours) {
			pr_warn(
			    "xdp: %s has another XDP program (%s): left in place, no early drop "
			    "at the gateway",
			    x->ifname, info.name[0] ? info.name : "unknown");
			x->refused = true;
			return;
		}
	}
	/* native first (veth has it), generic where the driver has none; an earlier agent's
	 * program is replaced in one step */
	x->mode = XDP_FLAGS_DRV_MODE;
	if (bpf_xdp_attach(x->ifindex, x->fds.prog, x->mode, NULL)) {
		x->mode = XDP_FLAGS_SKB_MODE;
		if (bpf_xdp_attach(x->ifindex, x->fds.prog, x->mode, NULL)) {
			pr_warn("xdp: attach to %s: %s: no early drop at the gateway", x->ifname,
				strerror(errno));
			x->refused = true;
			return;
		}
	}
	x->attached = true;
	pr_info("xdp: gateway early drop on %s (%s mode)%s", x->ifname,
		x->mode == XDP_FLAGS_DRV_MODE ? "native" : "generic",
		x->conf.syn_rate ? ", SYN rate limited per source" : "");
}

/* The rule judges the source's address only: from entries of ipBlocks or remoteIpBlocks
 * (one of the two: both in one source must both hold, which one prefix set cannot say), no
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
		    s->not_remote_ip_blocks.n || !s->ip_blocks.n == !s->remote_ip_blocks.n)
			return false;
	}
	return true;
}

static bool pset_has(const struct pset *s, const struct bm_xprefix *k)
{
	for (int i = 0; i < s->n; i++)
		if (!memcmp(&s->v[i], k, sizeof(*k)))
			return true;
	return false;
}

static void pset_add(struct pset *s, const struct ap_values *v)
{
	for (int i = 0; v->cidr && i < v->n && s->n < BM_XDP_MAX_PREFIXES; i++) {
		const struct ip_prefix *p = &v->cidr[i];
		struct bm_xprefix k = {0};

		if (!p->v4 || p->len < 96)
			continue; /* (IPv4 only) */
		k.len = (__u32)(p->len - 96);
		memcpy(k.addr, p->ip + 12, 4);
		if (!pset_has(s, &k))
			s->v[s->n++] = k;
	}
}

static void add_rule(struct pset *s, const struct ap_rule *r)
{
	for (int f = 0; f < r->nfrom; f++) {
		pset_add(s, &r->from[f].ip_blocks);
		pset_add(s, &r->from[f].remote_ip_blocks);
	}
}

/* The trie from cur to want: new entries first, then the stale ones out. */
static void pset_apply(int fd, struct pset *cur, const struct pset *want)
{
	__u8 one = 1;

	for (int i = 0; i < want->n; i++)
		if (!pset_has(cur, &want->v[i]) &&
		    bpf_map_update_elem(fd, &want->v[i], &one, BPF_ANY))
			pr_warn("xdp: prefix: %s", strerror(errno));
	for (int i = 0; i < cur->n; i++)
		if (!pset_has(want, &cur->v[i]))
			bpf_map_delete_elem(fd, &cur->v[i]);
	memcpy(cur, want, sizeof(*cur));
}

static void write_conf(struct xdpgw *x)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(x->fds.conf, &zero, &x->conf, BPF_ANY))
		pr_warn("xdp: write bm_xconf: %s", strerror(errno));
}

void xdpgw_sync(struct xdpgw *x, const struct mesh_config *c, const uint16_t *ports, int nports,
		const struct workload_obj *gw, const char *root_ns)
{
	struct pset *deny, *allow;
	bool allow_ok = true, any_allow = false, allow_only;
	__u16 want[BM_XDP_MAX_PORTS];
	int nwant = 0;
	__u8 one = 1;

	if (!x)
		return;
	deny = &x->want_deny;
	allow = &x->want_allow;
	deny->n = allow->n = 0;
	for (int i = 0; c && gw && i < c->naps; i++) {
		const struct ap_obj *p = &c->aps[i];

		if (!sec_policy_applies(p, root_ns, gw))
			continue;
		if (p->action == AP_ALLOW) {
			any_allow = true;
			for (int r = 0; r < p->nrules; r++)
				allow_ok &= source_only(&p->rules[r]);
			for (int r = 0; r < p->nrules; r++)
				add_rule(allow, &p->rules[r]);
		} else if (p->action == AP_DENY) {
			for (int r = 0; r < p->nrules; r++)
				if (source_only(&p->rules[r]))
					add_rule(deny, &p->rules[r]);
		}
	}
	allow_only = any_allow && allow_ok; /* every ALLOW rule judges the source only */
	if (!allow_only)
		allow->n = 0;
	for (int i = 0; i < nports && nwant < BM_XDP_MAX_PORTS; i++)
		want[nwant++] = htons(ports[i]);
	/* an allow list that goes: the flag first; one that comes: the entries first */
	if (!allow_only && (x->conf.flags & BM_XCONF_F_ALLOW_ONLY)) {
		x->conf.flags &= ~BM_XCONF_F_ALLOW_ONLY;
		write_conf(x);
	}
	pset_apply(x->fds.deny, &x->deny, deny);
	pset_apply(x->fds.allow, &x->allow, allow);
	for (int i = 0; i < nwant; i++)
		bpf_map_update_elem(x->fds.port, &want[i], &one, BPF_ANY);
	for (int i = 0; i < x->nports; i++) {
		bool keep = false;

		for (int k = 0; k < nwant && !keep; k++)
			keep = want[k] == x->ports[i];
		if (!keep)
			bpf_map_delete_elem(x->fds.port, &x->ports[i]);
	}
	memcpy(x->ports, want, sizeof(want[0]) * nwant);
	x->nports = nwant;
	x->conf.flags = allow_only ? BM_XCONF_F_ALLOW_ONLY : 0;
	write_conf(x);
	attach(x);
	pr_debug("xdp: %d port(s), %d denied prefix(es), %s", x->nports, x->deny.n,
		 allow_only ? "allow-only" : "no allow list");
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
	if (detach && x->attached) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = x->fds.prog);

		/* ours only: a later agent's program stays */
		if (bpf_xdp_detach(x->ifindex, x->mode | XDP_FLAGS_REPLACE, &o) && errno != EEXIST)
			pr_debug("xdp: detach from %s: %s", x->ifname, strerror(errno));
	}
	free(x);
}
