// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * inbound.bpf.c: the destination side of zero trust, attached by the agent to a node's cgroup
 * as cgroup_skb/ingress, so it sees every packet delivered to a local workload's socket. Only
 * connection openings (a SYN without ACK) are judged; everything after rides on the decision.
 *  - STRICT (PeerAuthentication): plaintext is dropped unless it comes from the local agent
 *    (a tunnel delivering after mTLS; the agent registers its 4-tuple in bm_agentc before its
 *    SYN leaves) or from a local mesh pod, whose identity the kernel itself attests.
 *  - AuthorizationPolicy: plaintext connections are judged by bm_authz, the agent's
 *    compilation of the policies per source prefix. The agent's own deliveries were judged by
 *    the agent with the peer's verified identity, so they skip it.
 * A drop is counted (bm_stats) and logged (bm_events, BM_EV_DENY with the policy id).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP_   0x0800
#define ETH_P_IPV6_ 0x86DD
#define PROTO_TCP_  6
#define TCP_SYN_    0x02
#define TCP_ACK_    0x10

/* A connection opening as the inbound hook sees it. */
struct bm_syn {
	struct bm_wl_key src; /* port = source port */
	struct bm_wl_key dst; /* port = destination port */
};

static __always_inline const struct bm_wl *bm_wl_get(const struct bm_wl_key *k)
{
	struct bm_wl_key any = *k;
	const struct bm_wl *wl = bpf_map_lookup_elem(&bm_wl, k);

	if (wl)
		return wl;
	any.port = 0;
	return bpf_map_lookup_elem(&bm_wl, &any);
}

static __always_inline void bm_deny_event(const struct bm_syn *s, __u32 pod_id, __u32 policy_id)
{
	struct bm_event *e = bpf_ringbuf_reserve(&bm_events, sizeof(*e), 0);

	if (!e) {
		bm_count(BM_ST_EVENTS_LOST);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->type = BM_EV_DENY;
	e->backend_id = pod_id;
	__builtin_memcpy(e->peer_addr, s->src.addr, 16);
	e->family = s->src.family;
	e->port = s->dst.port;
	e->policy_id = policy_id;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int bm_same_addr(const __u8 *a, const __u8 *b)
{
	__u32 x[4], y[4];

	__builtin_memcpy(x, a, 16);
	__builtin_memcpy(y, b, 16);
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* The verdict for one SYN: 1 = deliver, 0 = drop. */
static __always_inline int bm_inbound_verdict(const struct bm_syn *s)
{
	struct bm_authz_key ak = {};
	const struct bm_wl *wl, *src;
	struct bm_authz *az;
	struct bm_conn4 c = {};
	__u32 flags, pod_id;

	wl = bm_wl_get(&s->dst);
	if (!wl || !(wl->flags & (BM_WL_F_STRICT | BM_WL_F_AUTHZ)))
		return 1;
	/* a workload dialing its own address (a probe from inside the pod) never leaves it */
	if (bm_same_addr(s->src.addr, s->dst.addr))
		return 1;
	flags = wl->flags;
	pod_id = wl->pod_id;
	if (s->src.family == BM_FAM_V4) {
		__builtin_memcpy(c.saddr, s->src.addr, 4);
		__builtin_memcpy(c.daddr, s->dst.addr, 4);
		c.sport = s->src.port;
		c.dport = s->dst.port;
		if (bpf_map_lookup_elem(&bm_agentc, &c))
			return 1; /* the local agent, delivering what it authorized */
	}
	if (flags & BM_WL_F_STRICT) {
		src = bm_wl_get(&s->src);
		if (!src || !(src->flags & BM_WL_F_MESH)) {
			bm_count(BM_ST_STRICT_DROP);
			bm_deny_event(s, pod_id, 0);
			return 0;
		}
	}
	if (!(flags & BM_WL_F_AUTHZ))
		return 1;
	ak.prefixlen = BM_AUTHZ_FIXED_BITS + 128;
	ak.pod_id = pod_id;
	ak.port = s->dst.port;
	if (s->src.family == BM_FAM_V4) {
		ak.addr[10] = 0xff;
		ak.addr[11] = 0xff;
		__builtin_memcpy(&ak.addr[12], s->src.addr, 4);
	} else {
		__builtin_memcpy(ak.addr, s->src.addr, 16);
	}
	az = bpf_map_lookup_elem(&bm_authz, &ak);
	if (!az) {
		ak.port = 0;
		az = bpf_map_lookup_elem(&bm_authz, &ak);
	}
	if (az && az->verdict == BM_AUTHZ_DENY) {
		bm_count(BM_ST_AUTHZ_DENY);
		bm_deny_event(s, pod_id, az->policy_id);
		return 0;
	}
	return 1;
}

#define BM_V6_EXT_MAX 6 /* extension headers walked before giving up */

/* Skip IPv6 extension headers to the TCP header: its offset, 0 when the packet is no TCP
 * (or a non-first fragment), -1 when the chain is too long to tell. */
static __always_inline int bm_v6_tcp_off(struct __sk_buff *skb, __u8 nh, __u32 off)
{
	int i;

#pragma unroll
	for (i = 0; i < BM_V6_EXT_MAX; i++) {
		__u8 eh[4];

		if (nh == PROTO_TCP_)
			return off;
		if (nh != 0 && nh != 43 && nh != 44 && nh != 51 && nh != 60)
			return 0; /* UDP, ICMPv6, no next header...: not a SYN */
		if (bpf_skb_load_bytes(skb, off, eh, sizeof(eh)))
			return 0;
		if (nh == 44) { /* fragment: only the first one carries the TCP header */
			if ((eh[2] << 8 | eh[3]) & 0xfff8)
				return 0;
			off += 8;
		} else if (nh == 51) { /* AH: length in 4-octet units, minus 2 */
			off += (eh[1] + 2) * 4;
		} else {
			off += (eh[1] + 1) * 8;
		}
		nh = eh[0];
	}
	return nh == PROTO_TCP_ ? (int)off : -1;
}

/* Parse a SYN (no ACK) to a TCP port: 1, or 0 if this packet is anything else, or -1 for an
 * IPv6 packet whose header chain is too long to find its TCP header in (s->dst.addr set). */
static __always_inline int bm_parse_syn(struct __sk_buff *skb, struct bm_syn *s)
{
	__u8 tcp[14];
	__u32 off;

	if (skb->protocol == bpf_htons(ETH_P_IP_)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.protocol != PROTO_TCP_ ||
		    (ip.frag_off & bpf_htons(0x1fff)))
			return 0;
		off = ip.ihl * 4;
		__builtin_memcpy(s->src.addr, &ip.saddr, 4);
		__builtin_memcpy(s->dst.addr, &ip.daddr, 4);
		s->src.family = s->dst.family = BM_FAM_V4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6_)) {
		struct ipv6hdr ip6;

		int toff;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 0;
		__builtin_memcpy(s->src.addr, &ip6.saddr, 16);
		__builtin_memcpy(s->dst.addr, &ip6.daddr, 16);
		s->src.family = s->dst.family = BM_FAM_V6;
		/* extension headers first: a SYN behind them must not slip past the checks */
		toff = bm_v6_tcp_off(skb, ip6.nexthdr, sizeof(ip6));
		if (toff <= 0)
			return toff;
		off = toff;
	} else {
		return 0;
	}
	if (bpf_skb_load_bytes(skb, off, tcp, sizeof(tcp)))
		return 0;
	if ((tcp[13] & (TCP_SYN_ | TCP_ACK_)) != TCP_SYN_)
		return 0;
	__builtin_memcpy(&s->src.port, &tcp[0], 2);
	__builtin_memcpy(&s->dst.port, &tcp[2], 2);
	return 1;
}

SEC("cgroup_skb/ingress")
int bm_ingress(struct __sk_buff *skb)
{
	struct bm_syn s = {};
	const struct bm_wl *wl;
	int r = bm_parse_syn(skb, &s);

	if (r == 0)
		return 1;
	if (r < 0) {
		/* can't see the ports: refuse it where plaintext is judged at all */
		wl = bm_wl_get(&s.dst);
		if (wl && (wl->flags & (BM_WL_F_STRICT | BM_WL_F_AUTHZ))) {
			bm_count(BM_ST_STRICT_DROP);
			return 0;
		}
		return 1;
	}
	return bm_inbound_verdict(&s);
}
