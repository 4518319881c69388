/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * guard.h: what a local pod may send, judged for the pod that sends it (the cgroup of the
 * sending socket, or the pod behind a host-side veth in sav.bpf.c), as inline functions:
 *  - source address verification, as Cilium does: a pod sends only from its own addresses
 *    (bm_pod addr4/addr6), IPv6 link-local and the unspecified address, or on its loopback.
 *    A pod that added another pod's address to its interface cannot use it, so no address a
 *    pod can pick stands for another pod anywhere in the mesh;
 *  - the agent's listeners on this node (BM_PORT_*) take from pods only the connections the
 *    kernel sent there itself (a tunnelled connect: its socket's bm_sock record says so);
 *    a raw SYN or a UDP datagram to them is dropped.
 * A pod whose addresses the agent does not know yet is not checked (nothing to check by).
 */
#ifndef BM_GUARD_H
#define BM_GUARD_H

#include "inbound.h"

/* Is p's source one pod may use? */
static __always_inline int bm_src_ok(const struct bm_pod *pod, const struct bm_pkt *p)
{
	__u32 a4, z[4];

	__builtin_memcpy(&a4, pod->addr4, 4);
	__builtin_memcpy(z, pod->addr6, 16);
	if (!a4 && !z[0] && !z[1] && !z[2] && !z[3])
		return 1; /* addresses unknown: nothing to verify against */
	if (p->family == BM_FAM_V4)
		return a4 && __builtin_memcmp(p->src, pod->addr4, 4) == 0;
	return bm_v6_link_local_or_any(p->src) || bm_same_addr16(p->src, pod->addr6);
}

/*
 * A pod's packet to this node's agent listeners: 0 = let it go, -1 = drop it, or the flag
 * (BM_CONN_F_TUNNEL / BM_CONN_F_L7) the sending socket's record must carry: a SYN only from a
 * socket the kernel itself sent there (the tunnel's capture, or the HTTP path's).
 */
static __always_inline int bm_agent_port_need(const struct bm_pkt *p)
{
	__u32 zero = 0;
	struct bm_node *node;

	if (!p->l4 || !bm_agent_listener_port(p->dport))
		return 0;
	node = bpf_map_lookup_elem(&bm_node, &zero);
	if (!node)
		return 0;
	if (p->family == BM_FAM_V6
		? !(node->flags & BM_NODE_F_TUNNEL6) || !bm_same_addr16(p->dst, node->addr6)
		: __builtin_memcmp(p->dst, node->addr4, 4))
		return 0; /* another host's port of that number: an ordinary port */
	if (p->proto == BM_PROTO_UDP)
		return -1;
	if (!bm_pkt_is_syn(p))
		return 0; /* a segment of a connection that got in (or a stray: the stack resets it)
			   */
	if (p->dport == node->outbound_port)
		return BM_CONN_F_TUNNEL;
	if (p->dport == node->l7_port && (node->flags & BM_NODE_F_L7))
		return BM_CONN_F_L7;
	return -1;
}

/* The same as a verdict, given the sending socket's record (NULL: none): 1 = let it go. */
static __always_inline int bm_agent_port_ok(const struct bm_pkt *p, const struct bm_sock *st)
{
	int need = bm_agent_port_need(p);

	if (need <= 0)
		return need == 0;
	return st && (st->sub_flags & need);
}

/* The record of the socket a packet comes from (cgroup_skb), if connect4/6 made one. */
static __always_inline const struct bm_sock *bm_skb_rec(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (sk)
		sk = bpf_sk_fullsock(sk);
	return sk ? bpf_sk_storage_get(&bm_sock, sk, 0, 0) : 0;
}

/* Everything a local pod's socket sends (cgroup_skb/egress): 1 = send, 0 = drop. */
static __always_inline int bm_egress_guard(struct __sk_buff *skb, __u64 cgroup_id, int on_lo)
{
	struct bm_pod *pod;
	struct bm_pkt p;
	int need;

	if (on_lo)
		return 1;
	pod = bpf_map_lookup_elem(&bm_pod, &cgroup_id);
	if (!pod || bm_parse_fast(skb, 0, &p) == BM_PKT_OTHER)
		return 1;
	if (!(pod->flags & BM_POD_F_SAV_TC) && !bm_src_ok(pod, &p)) {
		bm_count(BM_ST_SPOOF_DROP);
		bm_deny_event(&p, pod->pod_id, BM_DENY_SPOOF, 0);
		return 0;
	}
	need = bm_agent_port_need(&p);
	if (need < 0 || (need > 0 && !bm_agent_port_ok(&p, bm_skb_rec(skb)))) {
		bm_count(BM_ST_AGENT_PORT_DROP);
		bm_deny_event(&p, pod->pod_id, BM_DENY_AGENT_PORT, 0);
		return 0;
	}
	return 1;
}

#endif /* BM_GUARD_H */
