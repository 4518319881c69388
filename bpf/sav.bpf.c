// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sav.bpf.c: source address verification of everything a local pod puts on the wire, at tc
 * ingress of its host-side veth (the agent attaches it there, looking the pod up in bm_ifpod
 * by that interface). Unlike the cgroup hook (guard.h), it sees frames no socket of the pod's
 * cgroup sent: AF_PACKET, and the ARP and neighbour discovery the pod's kernel does for an
 * address someone added to its interface. So a pod can neither send from another pod's
 * address nor make the node or its neighbours send that pod's traffic to it:
 *  - IPv4/IPv6: the source must be the pod's (guard.h bm_src_ok);
 *  - ARP: the sender protocol address must be the pod's IPv4 (or 0.0.0.0, a probe);
 *  - ICMPv6: no router advertisements or redirects; a neighbour advertisement only for the
 *    pod's own address or a link-local one.
 * Drops are counted (BM_ST_SPOOF_DROP) and logged (BM_EV_DENY, BM_DENY_SPOOF).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "guard.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TC_ACT_OK_     0
#define TC_ACT_SHOT_   2
#define ICMP6_RA       134
#define ICMP6_NA       136
#define ICMP6_REDIRECT 137

static __always_inline int bm_arp_ok(struct __sk_buff *skb, const struct bm_pod *pod)
{
	__u8 spa[4];
	__u32 s;

	/* ARP over Ethernet/IPv4: the sender protocol address at 14 (ether) + 14 */
	if (bpf_skb_load_bytes(skb, 14 + 14, spa, 4))
		return 1;
	__builtin_memcpy(&s, spa, 4);
	return s == 0 || __builtin_memcmp(spa, pod->addr4, 4) == 0 ||
	       !(pod->addr4[0] | pod->addr4[1] | pod->addr4[2] | pod->addr4[3]);
}

/* ICMPv6 the pod may send: what neighbours believe about addresses and routers. */
static __always_inline int bm_icmp6_ok(struct __sk_buff *skb, const struct bm_pod *pod, __u32 off)
{
	__u8 type, target[16];

	if (bpf_skb_load_bytes_relative(skb, off, &type, 1, BPF_HDR_START_NET))
		return 1;
	if (type == ICMP6_RA || type == ICMP6_REDIRECT)
		return 0;
	if (type != ICMP6_NA)
		return 1;
	if (bpf_skb_load_bytes_relative(skb, off + 8, target, 16, BPF_HDR_START_NET))
		return 0;
	return bm_v6_link_local_or_any(target) || bm_same_addr16(target, pod->addr6);
}

SEC("tc")
int bm_pod_out(struct __sk_buff *skb)
{
	__u32 ifx = skb->ifindex;
	struct bm_pod *pod = bpf_map_lookup_elem(&bm_ifpod, &ifx);
	struct bm_pkt p;
	int ok = 1, r;

	if (!pod)
		return TC_ACT_OK_;
	if (skb->protocol == bpf_htons(BM_ETH_P_ARP)) {
		ok = bm_arp_ok(skb, pod);
		__builtin_memset(&p, 0, sizeof(p));
		p.family = BM_FAM_V4;
		bpf_skb_load_bytes(skb, 14 + 14, p.src, 4);
	} else {
		r = bm_parse(skb, &p);
		if (r == BM_PKT_OTHER)
			return TC_ACT_OK_;
		ok = bm_src_ok(pod, &p);
		if (ok && p.family == BM_FAM_V6 && p.proto == BM_PROTO_ICMP6)
			ok = bm_icmp6_ok(skb, pod, p.l4off);
	}
	if (ok)
		return TC_ACT_OK_;
	bm_count(BM_ST_SPOOF_DROP);
	bm_deny_event(&p, pod->pod_id, BM_DENY_SPOOF, 0);
	return TC_ACT_SHOT_;
}
