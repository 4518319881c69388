// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * listen.bpf.c: socket filters the agent puts on its own listeners, so a SYN reaches them only
 * from whom the kernel says may send it, whatever a pod forges (raw packets, AF_PACKET):
 *  - the outbound listener (15001) and the HTTP path's (15006) take only connects the kernel
 *    captured itself: sockops wrote the client's (address, port) to bm_orig before its SYN
 *    left;
 *  - the mTLS listener (15008) takes SYNs only from the mesh's nodes (bm_peer): other agents.
 * Anything but a SYN passes (it belongs to a connection that got in, or the stack resets it).
 * A socket filter returns how many bytes to keep: 0 drops.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pkt.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int bm_listener_syn(struct __sk_buff *skb, struct bm_pkt *p)
{
	return bm_parse(skb, p) == BM_PKT_OK && bm_pkt_is_syn(p);
}

SEC("socket")
int bm_listen_out(struct __sk_buff *skb)
{
	struct bm_orig_key k = {};
	struct bm_pkt p;

	if (!bm_listener_syn(skb, &p))
		return skb->len;
	__builtin_memcpy(k.addr, p.src, 16);
	k.port = p.sport;
	k.family = p.family;
	if (bpf_map_lookup_elem(&bm_orig, &k))
		return skb->len;
	bm_count(BM_ST_AGENT_PORT_DROP);
	return 0;
}

SEC("socket")
int bm_listen_hbone(struct __sk_buff *skb)
{
	struct bm_addr_key k = {};
	struct bm_pkt p;

	if (!bm_listener_syn(skb, &p))
		return skb->len;
	__builtin_memcpy(k.addr, p.src, 16);
	k.family = p.family;
	if (bpf_map_lookup_elem(&bm_peer, &k))
		return skb->len;
	bm_count(BM_ST_AGENT_PORT_DROP);
	return 0;
}
