// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * syn_drop.bpf.c: a test fixture, not part of the product. Attached with tc to a lab pod's
 * eth0 ingress, it silently drops TCP SYNs, so connects to that pod time out (what
 * circuit.bats uses to prove ejection through connect timeouts). A BPF program because the
 * test machines may have no tc action modules and no netfilter.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP_    0x0800
#define TC_ACT_OK_   0
#define TC_ACT_SHOT_ 2

SEC("tc")
int syn_drop(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP_) || ip->protocol != 6)
		return TC_ACT_OK_;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end)
		return TC_ACT_OK_;
	return tcp->syn && !tcp->ack ? TC_ACT_SHOT_ : TC_ACT_OK_;
}
