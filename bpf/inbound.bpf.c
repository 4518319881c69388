// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * inbound.bpf.c: the node cgroup's packet hooks, attached by the agent as cgroup_skb programs,
 * so they see every packet a local pod's socket receives or sends:
 *  - ingress: the inbound judge (inbound.h) for the pod whose socket takes the packet (its
 *    cgroup), a backstop to inpod.bpf.c that drops where that one resets;
 *  - egress: the pod's own sending rules (guard.h): source address verification and the agent
 *    listeners.
 * Each SEC() is a thin wrapper; tests/bpf/ drives the same inline functions.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "guard.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define BM_TCP_ESTABLISHED 1

/* A UDP datagram to a connected socket answers something the pod sent (a DNS reply): the
 * pod chose that peer, nothing to judge. (The sk_lookup hook never sees these.) */
static __always_inline int bm_udp_connected(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return 0;
	sk = bpf_sk_fullsock(sk);
	return sk && sk->state == BM_TCP_ESTABLISHED;
}

SEC("cgroup_skb/ingress")
int bm_ingress(struct __sk_buff *skb)
{
	struct bm_pkt p;
	struct bm_pod *pod;
	__u64 cg;
	int r = bm_parse_fast(skb, 0, &p);

	if (r == BM_PKT_OTHER)
		return 1;
	if (r == BM_PKT_OK && !bm_pkt_is_syn(&p) &&
	    !(p.l4 && p.proto == BM_PROTO_UDP && !bm_udp_connected(skb)))
		return 1;
	cg = bpf_skb_cgroup_id(skb);
	pod = bpf_map_lookup_elem(&bm_pod, &cg);
	if (!pod)
		return 1;
	if (r == BM_PKT_OPAQUE)
		return bm_inbound_opaque(&p, pod->pod_id);
	return bm_inbound_judge(&p, pod->pod_id, skb->ifindex == BM_LOOPBACK_IFINDEX);
}

SEC("cgroup_skb/egress")
int bm_egress(struct __sk_buff *skb)
{
	return bm_egress_guard(skb, bpf_skb_cgroup_id(skb), skb->ifindex == BM_LOOPBACK_IFINDEX);
}
