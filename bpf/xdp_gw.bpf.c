// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp_gw.bpf.c: the ingress gateway's early drop at XDP on the node's interface (the agent
 * attaches it there with --ingress: native mode, generic where the driver has none), before
 * any socket or sk_buff: IPv4 TCP to the gateway's address and ports, judged by xdpgw.h from
 * the gateway's AuthorizationPolicy source blocks and the per-source SYN rate. Counted per CPU
 * in bm_xstats (bpfmesh_xdp_* metrics). Its maps are the program's own (not pinned): the
 * agent that attaches it writes them from the config in force.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xdpgw.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP_    0x0800
#define IPPROTO_TCP_ 6

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bm_xconf);
} bm_xconf SEC(".maps");

/* the gateway's ports (value unused) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BM_XDP_MAX_PORTS);
	__type(key, __u16); /* network order */
	__type(value, __u8);
} bm_xport SEC(".maps");

/* source blocks of DENY policies on the gateway; of its ALLOW policy (BM_XCONF_F_ALLOW_ONLY) */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_XDP_MAX_PREFIXES);
	__type(key, struct bm_xprefix);
	__type(value, __u8);
} bm_xdeny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_XDP_MAX_PREFIXES);
	__type(key, struct bm_xprefix);
	__type(value, __u8);
} bm_xallow SEC(".maps");

/* per-source SYN buckets; LRU: a full map forgets the oldest (which then starts full) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BM_XDP_MAX_SOURCES);
	__type(key, __u32);
	__type(value, struct bm_xbucket);
} bm_xsyn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BM_XST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} bm_xstats SEC(".maps");

static __always_inline void count(__u32 id)
{
	__u64 *v = bpf_map_lookup_elem(&bm_xstats, &id);

	if (v)
		*v += 1;
}

SEC("xdp")
int bm_xdp_gw(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	struct bm_xconf *cf;
	struct bm_xprefix k = {.len = 32};
	__u32 zero = 0, saddr;
	__u16 dport;
	int deny, allow;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP_))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP_ || ip->ihl < 5)
		return XDP_PASS;
	cf = bpf_map_lookup_elem(&bm_xconf, &zero);
	if (!cf || __builtin_memcmp(&ip->daddr, cf->node_ip4, 4))
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(0x1fff))
		return XDP_PASS; /* a later fragment: nothing reassembles without the first */
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end || bpf_ntohs(ip->tot_len) < ip->ihl * 4 + sizeof(*tcp)) {
		/* a first fragment too short for the TCP header (RFC 1858's tiny fragment, to
		 * hide the port from filters) is dropped; any other short frame passes (the
		 * stack drops it) */
		if (ip->frag_off & bpf_htons(0x2000)) {
			count(BM_XST_POLICY);
			return XDP_DROP;
		}
		return XDP_PASS;
	}
	dport = tcp->dest;
	if (!bpf_map_lookup_elem(&bm_xport, &dport))
		return XDP_PASS; /* not a gateway port */
	saddr = ip->saddr;
	__builtin_memcpy(k.addr, &saddr, 4);
	deny = bpf_map_lookup_elem(&bm_xdeny, &k) != NULL;
	allow =
	    (cf->flags & BM_XCONF_F_ALLOW_ONLY) ? bpf_map_lookup_elem(&bm_xallow, &k) != NULL : 1;
	if (bm_xdp_policy(cf, deny, allow) == BM_XV_POLICY) {
		count(BM_XST_POLICY);
		return XDP_DROP;
	}
	if (cf->syn_rate && tcp->syn && !tcp->ack) {
		struct bm_xbucket fresh = {.tokens = (__u64)cf->syn_burst * 1000000000ULL,
					   .last_ns = bpf_ktime_get_ns()},
				  *b = bpf_map_lookup_elem(&bm_xsyn, &saddr);

		if (!b) {
			bpf_map_update_elem(&bm_xsyn, &saddr, &fresh, BPF_NOEXIST);
			b = bpf_map_lookup_elem(&bm_xsyn, &saddr);
		}
		if (b && !bm_xdp_syn_ok(cf, b, bpf_ktime_get_ns())) {
			count(BM_XST_SYN_RATE);
			return XDP_DROP;
		}
	}
	count(BM_XST_PASS);
	return XDP_PASS;
}
