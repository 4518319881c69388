/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pkt.h: the one packet parser of the datapath. It reads from the network header with
 * bpf_skb_load_bytes_relative(BPF_HDR_START_NET), which cgroup_skb, tc and socket filter
 * programs all have, so the inbound judge (inbound.h), the egress guard (guard.h), the agent
 * listeners' filters (listen.bpf.c) and the test programs (tests/bpf/) parse alike.
 * IPv6 extension headers are walked so a SYN behind them is seen like any other.
 */
#ifndef BM_PKT_H
#define BM_PKT_H

#include "maps.h"

/* The parts of a packet the datapath judges. Addresses in network order, IPv4 in the first
 * 4 bytes; ports in network order, 0 when the packet carries none (not TCP/UDP, or a
 * fragment after the first). */
struct bm_pkt {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u8 family; /* BM_FAM_V4 / BM_FAM_V6 */
	__u8 proto;  /* IPPROTO_*, after IPv6 extension headers */
	__u8 tcp_flags;
	__u8 l4;     /* 1: sport/dport/tcp_flags were read */
	__u16 l4off; /* transport header offset from the network header (BM_PKT_OK) */
	__u16 pad;
};

#define BM_V6_EXT_MAX 6 /* extension headers walked before giving up */

enum bm_parse_res {
	BM_PKT_OTHER = 0,   /* not IPv4/IPv6 (ARP, ...) or too short */
	BM_PKT_OK = 1,	    /* addresses and protocol read; ports when l4 */
	BM_PKT_OPAQUE = -1, /* IPv6 whose header chain is too long to find its transport in */
};

/* Skip IPv6 extension headers: the transport header's offset and protocol in *nh; 0 for a
 * non-first fragment (no transport header here), -1 when the chain is too long. */
static __always_inline int bm_v6_skip_ext(struct __sk_buff *skb, __u8 *nh, __u32 *off)
{
	int i;

#pragma unroll
	for (i = 0; i < BM_V6_EXT_MAX; i++) {
		__u8 eh[4];

		if (*nh != 0 && *nh != 43 && *nh != 44 && *nh != 51 && *nh != 60)
			return 1; /* a transport (or none): stop */
		if (bpf_skb_load_bytes_relative(skb, *off, eh, sizeof(eh), BPF_HDR_START_NET))
			return 0;
		if (*nh == 44) { /* fragment: only the first one carries the transport header */
			if ((eh[2] << 8 | eh[3]) & 0xfff8)
				return 0;
			*off += 8;
		} else if (*nh == 51) { /* AH: length in 4-octet units, minus 2 */
			*off += (eh[1] + 2) * 4;
		} else {
			*off += (eh[1] + 1) * 8;
		}
		*nh = eh[0];
	}
	return (*nh != 0 && *nh != 43 && *nh != 44 && *nh != 51 && *nh != 60) ? 1 : -1;
}

/* family: the packet's L3 protocol as skb->protocol gives it (ETH_P_IP / ETH_P_IPV6). */
static __always_inline int bm_parse(struct __sk_buff *skb, struct bm_pkt *p)
{
	__u8 l4[14];
	__u32 off;
	int r;

	__builtin_memset(p, 0, sizeof(*p));
	if (skb->protocol == bpf_htons(BM_ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
			return BM_PKT_OTHER;
		__builtin_memcpy(p->src, &ip.saddr, 4);
		__builtin_memcpy(p->dst, &ip.daddr, 4);
		p->family = BM_FAM_V4;
		p->proto = ip.protocol;
		if (ip.frag_off & bpf_htons(0x1fff))
			return BM_PKT_OK; /* a later fragment: no ports */
		off = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(BM_ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		__u8 nh;

		if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
			return BM_PKT_OTHER;
		__builtin_memcpy(p->src, &ip6.saddr, 16);
		__builtin_memcpy(p->dst, &ip6.daddr, 16);
		p->family = BM_FAM_V6;
		nh = ip6.nexthdr;
		off = sizeof(ip6);
		r = bm_v6_skip_ext(skb, &nh, &off);
		p->proto = nh;
		if (r < 0)
			return BM_PKT_OPAQUE;
		if (r == 0)
			return BM_PKT_OK;
	} else {
		return BM_PKT_OTHER;
	}
	p->l4off = off;
	if (p->proto == BM_PROTO_TCP) {
		if (bpf_skb_load_bytes_relative(skb, off, l4, 14, BPF_HDR_START_NET))
			return BM_PKT_OK;
		p->tcp_flags = l4[13];
	} else if (p->proto == BM_PROTO_UDP) {
		if (bpf_skb_load_bytes_relative(skb, off, l4, 4, BPF_HDR_START_NET))
			return BM_PKT_OK;
	} else {
		return BM_PKT_OK;
	}
	__builtin_memcpy(&p->sport, &l4[0], 2);
	__builtin_memcpy(&p->dport, &l4[2], 2);
	p->l4 = 1;
	return BM_PKT_OK;
}

#define BM_PKT_SLOW (-2) /* bm_parse_direct: this one needs bm_parse */

/*
 * The same parse for the common packet, read straight from its linear data: IPv4 without
 * options or IPv6 without extension headers, TCP or UDP, not a later fragment, headers in the
 * linear part. Anything else returns BM_PKT_SLOW, and bm_parse reads it. l3: the network
 * header's offset from skb->data (0 in cgroup_skb programs, ETH_HLEN in tc). The hooks that
 * run for every packet of every local pod use it: no helper call for the packets that are
 * most of the traffic.
 */
static __always_inline int bm_parse_direct(struct __sk_buff *skb, __u32 l3, struct bm_pkt *p)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u8 *l4;
	__u32 hl;

	if (skb->protocol == bpf_htons(BM_ETH_P_IP)) {
		struct iphdr *ip = data + l3;

		if ((void *)(ip + 1) > end || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x1fff)))
			return BM_PKT_SLOW;
		if (ip->protocol != BM_PROTO_TCP && ip->protocol != BM_PROTO_UDP)
			return BM_PKT_SLOW;
		__builtin_memset(p, 0, sizeof(*p));
		__builtin_memcpy(p->src, &ip->saddr, 4);
		__builtin_memcpy(p->dst, &ip->daddr, 4);
		p->family = BM_FAM_V4;
		p->proto = ip->protocol;
		hl = sizeof(*ip);
	} else if (skb->protocol == bpf_htons(BM_ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > end)
			return BM_PKT_SLOW;
		if (ip6->nexthdr != BM_PROTO_TCP && ip6->nexthdr != BM_PROTO_UDP)
			return BM_PKT_SLOW;
		__builtin_memset(p, 0, sizeof(*p));
		__builtin_memcpy(p->src, &ip6->saddr, 16);
		__builtin_memcpy(p->dst, &ip6->daddr, 16);
		p->family = BM_FAM_V6;
		p->proto = ip6->nexthdr;
		hl = sizeof(*ip6);
	} else {
		return BM_PKT_SLOW;
	}
	l4 = data + l3 + hl;
	if (p->proto == BM_PROTO_TCP) {
		if ((void *)(l4 + 14) > end)
			return BM_PKT_SLOW;
		p->tcp_flags = l4[13];
	} else if ((void *)(l4 + 4) > end) {
		return BM_PKT_SLOW;
	}
	__builtin_memcpy(&p->sport, &l4[0], 2);
	__builtin_memcpy(&p->dport, &l4[2], 2);
	p->l4 = 1;
	p->l4off = hl;
	return BM_PKT_OK;
}

/* Either parse: the direct one when it can, else bm_parse. */
static __always_inline int bm_parse_fast(struct __sk_buff *skb, __u32 l3, struct bm_pkt *p)
{
	int r = bm_parse_direct(skb, l3, p);

	return r == BM_PKT_SLOW ? bm_parse(skb, p) : r;
}

/* A TCP connection opening: SYN without ACK. */
static __always_inline int bm_pkt_is_syn(const struct bm_pkt *p)
{
	return p->l4 && p->proto == BM_PROTO_TCP &&
	       (p->tcp_flags & (BM_TCP_SYN | BM_TCP_ACK)) == BM_TCP_SYN;
}

#endif /* BM_PKT_H */
