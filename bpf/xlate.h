/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlate.h: what a connect (or an unconnected UDP send) to an address becomes, decided without
 * the socket: bm_sock_decide() takes the address asked for and the caller's cgroup, and says
 * whether the syscall goes on, to which address, with which connection record. The cgroup
 * hooks (sock_lb.bpf.c) read and write the socket address around it; the test program
 * (tests/bpf/lb_test.bpf.c) calls it directly, since cgroup programs cannot be test-run.
 */
#ifndef BM_XLATE_H
#define BM_XLATE_H

#include "lb.h"

/*
 * Should this mesh connect go through the local agent's mTLS tunnel? The service path knows
 * from the backend's flag; a connect to a bare address (no service) looks the address up.
 * On yes, dst becomes the agent's outbound listener, of the same family: IPv6 only when the
 * agent listens on an IPv6 address of the node too (BM_NODE_F_TUNNEL6).
 */
static __always_inline int bm_tunnel(const struct bm_svc_key *key, const struct bm_node *node,
				     struct bm_pick *pick, int res, struct bm_backend *dst)
{
	struct bm_wl_key wk = {};
	struct bm_wl *wl;

	if (key->proto != BM_PROTO_TCP)
		return 0;
	if (!node || !(node->flags & BM_NODE_F_TUNNEL))
		return 0; /* no agent tunnel: plaintext, which a STRICT peer refuses */
	if (key->family == BM_FAM_V6 && !(node->flags & BM_NODE_F_TUNNEL6))
		return 0;
	if (res == BM_X_OK) {
		if (!(pick->be.flags & BM_BE_F_TUNNEL) || pick->be.family != key->family)
			return 0;
	} else {
		__builtin_memcpy(wk.addr, key->addr, 16);
		wk.family = key->family;
		wk.port = key->port;
		wl = bpf_map_lookup_elem(&bm_wl, &wk);
		if (!wl) {
			wk.port = 0;
			wl = bpf_map_lookup_elem(&bm_wl, &wk);
		}
		if (!wl || !(wl->flags & BM_WL_F_TUNNEL))
			return 0;
		__builtin_memcpy(pick->be.addr, key->addr, 16);
		pick->be.port = key->port;
		pick->be.family = key->family;
	}
	__builtin_memset(dst, 0, sizeof(*dst));
	if (key->family == BM_FAM_V6)
		__builtin_memcpy(dst->addr, node->addr6, 16);
	else
		__builtin_memcpy(dst->addr, node->addr4, 4);
	dst->port = node->outbound_port;
	dst->family = key->family;
	/* The agent accepts every connect: its outcome says nothing of the backend. */
	pick->sub_flags = (pick->sub_flags & ~BM_SUB_F_OUTLIER) | BM_CONN_F_TUNNEL;
	return 1;
}

/*
 * A mesh client's IPv6 connect to a STRICT mesh workload on another node while this node's
 * agent has no IPv6 address to tunnel it from: the far node would drop the plaintext SYN, so
 * refuse it here, at once.
 */
static __always_inline int bm_v6_refused(const struct bm_svc_key *key, const struct bm_pick *pick,
					 int res)
{
	struct bm_wl_key wk = {};
	struct bm_wl *wl;

	if (key->proto != BM_PROTO_TCP || key->family != BM_FAM_V6)
		return 0;
	if (res == BM_X_OK)
		return !!(pick->be.flags & BM_BE_F_NOV6);
	__builtin_memcpy(wk.addr, key->addr, 16);
	wk.family = BM_FAM_V6;
	wk.port = key->port;
	wl = bpf_map_lookup_elem(&bm_wl, &wk);
	if (!wl) {
		wk.port = 0;
		wl = bpf_map_lookup_elem(&bm_wl, &wk);
	}
	return wl && (wl->flags & BM_WL_F_NOV6);
}

/*
 * An HTTP port whose config needs requests (BM_SVC_F_L7): a mesh client's TCP connect goes to
 * this node's agent, which routes each request (loader/l7*.c); the record keeps the service
 * address, which the agent reads back from bm_orig. While the agent's HTTP path is not
 * listening the kernel path serves the port as before (first route without match).
 */
static __always_inline int bm_l7(const struct bm_svc_key *key, const struct bm_svc *svc,
				 const struct bm_node *node, const struct bm_client *cl,
				 int is_sendmsg, struct bm_decision *d)
{
	if (!cl->in_mesh || is_sendmsg || key->proto != BM_PROTO_TCP || key->family != BM_FAM_V4)
		return 0;
	if (!svc || !(svc->flags & BM_SVC_F_L7))
		return 0;
	if (!node || !(node->flags & BM_NODE_F_L7))
		return 0;
	__builtin_memset(&d->dst, 0, sizeof(d->dst));
	__builtin_memcpy(d->dst.addr, node->addr4, 4);
	d->dst.port = node->l7_port;
	d->dst.family = BM_FAM_V4;
	d->rec.svc_id = svc->svc_id;
	d->rec.sub_flags = BM_CONN_F_L7;
	return 1;
}

/*
 * A mesh workload dialing this node's agent listeners directly (not through the kernel's
 * capture): refused at once. Any other address with those port numbers is an ordinary port
 * (another node's 15008, a pod's own 15001, an Istio proxy's), and 15020/15021 anywhere are
 * open to scrapes; the listeners themselves reject what has no captured origin.
 */
static __always_inline int bm_local_listener(const struct bm_svc_key *key,
					     const struct bm_node *node)
{
	if (!bm_agent_listener_port(key->port) || !node)
		return 0;
	if (key->family == BM_FAM_V6)
		return (node->flags & BM_NODE_F_TUNNEL6) && bm_same_addr16(key->addr, node->addr6);
	return key->family == BM_FAM_V4 && !__builtin_memcmp(key->addr, node->addr4, 4);
}

/*
 * key: the address asked for (a v4-mapped IPv6 one as IPv4, mapped set); cgroup_id: the
 * caller's; cookie: the socket's (bm_udp is keyed by it). Counts every outcome (bm_stats) and
 * records UDP reply sources in bm_udp; the connection record is d->rec, which the hook keeps
 * in the socket's storage (bm_sock) when d->record says so. A connect that is not translated
 * touches no map but bm_pod, bm_svc and its counter.
 */
static __always_inline void bm_sock_decide(const struct bm_svc_key *key, int mapped,
					   __u64 cgroup_id, int is_sendmsg, __u64 cookie,
					   struct bm_decision *d)
{
	struct bm_client cl = {};
	struct bm_pick pick = {};
	struct bm_backend tun;
	struct bm_node *node;
	struct bm_svc *svc;
	__u32 zero = 0;
	int res, tunnel = 0;

	__builtin_memset(d, 0, sizeof(*d));
	d->allow = 1;
	bm_client_load(&cl, cgroup_id);
	/* each looked up once: this runs for every connect of the node */
	node = bpf_map_lookup_elem(&bm_node, &zero);
	svc = bpf_map_lookup_elem(&bm_svc, key);
	if (cl.in_mesh && bm_local_listener(key, node)) {
		bm_count(BM_ST_AGENT_PORT);
		d->allow = 0;
		d->err = BM_EPERM;
		return;
	}
	if (bm_l7(key, svc, node, &cl, is_sendmsg, d)) {
		struct bm_sock *rec = &d->rec;

		bm_count(BM_ST_L7);
		__builtin_memcpy(rec->orig_addr, key->addr, 16);
		rec->orig_port = key->port;
		rec->family = mapped ? BM_FAM_V6 : key->family;
		rec->cgroup_id = cl.cgroup_id;
		rec->src_pod = cl.pod_id;
		d->record = 1;
		d->rewrite = 1;
		return;
	}
	res = bm_xlate_svc(svc, &cl, &pick);
	if ((res == BM_X_OK || res == BM_X_MISS) && cl.in_mesh && !is_sendmsg) {
		if (bm_v6_refused(key, &pick, res)) {
			bm_count(BM_ST_V6_REFUSED);
			d->allow = 0;
			d->err = BM_ECONNREFUSED;
			return;
		}
		tunnel = bm_tunnel(key, node, &pick, res, &tun);
	}
	if (res == BM_X_MISS) {
		if (!tunnel) {
			bm_count(BM_ST_MISS);
			return;
		}
		res = BM_X_OK; /* a bare workload address, tunnelled */
	}
	if (res == BM_X_OVERFLOW) {
		bm_count(BM_ST_POOL_OVERFLOW);
		d->allow = 0;
		d->err = BM_EBUSY;
		return;
	}
	if (res != BM_X_OK) {
		bm_count(BM_ST_NO_BACKEND);
		d->allow = 0;
		d->err = BM_ECONNREFUSED;
		return;
	}
	bm_count(tunnel ? BM_ST_TUNNELLED : BM_ST_XLATE);
	if (!cl.in_mesh)
		bm_count(BM_ST_NONMESH);
	if (key->proto != BM_PROTO_TCP) {
		/* UDP: remember how to restore the source of replies (recvmsg). */
		struct bm_udp_key uk = {};
		struct bm_udp_val uv = {};

		uk.cookie = cookie;
		__builtin_memcpy(uk.addr, pick.be.addr, 16);
		uk.port = pick.be.port;
		uk.family = pick.be.family;
		__builtin_memcpy(uv.addr, key->addr, 16);
		uv.port = key->port;
		bpf_map_update_elem(&bm_udp, &uk, &uv, BPF_ANY);
	}
	if (!is_sendmsg) {
		struct bm_sock *rec = &d->rec;

		__builtin_memcpy(rec->orig_addr, key->addr, 16);
		rec->orig_port = key->port;
		rec->family = mapped ? BM_FAM_V6 : key->family;
		rec->backend_id = pick.backend_id;
		rec->svc_id = pick.svc_id;
		rec->subset_id = pick.subset_id;
		rec->sub_flags = pick.sub_flags;
		rec->pool_key = pick.pool_key;
		rec->timeout_ms = pick.timeout_ms;
		rec->cgroup_id = cl.cgroup_id;
		rec->src_pod = cl.pod_id;
		d->record = 1;
	}
	d->rewrite = 1;
	d->dst = tunnel ? tun : pick.be;
}

#endif /* BM_XLATE_H */
