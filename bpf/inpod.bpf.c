// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * inpod.bpf.c: the inbound judge (inbound.h) at the socket lookup of one local pod's network
 * namespace. The agent loads one instance per pod with bm_self_pod set (an sk_lookup program
 * cannot ask which namespace it runs in) and attaches it to that pod's namespace with a
 * pinned link. A refused lookup makes the kernel answer at once: a reset for a SYN, port
 * unreachable for a UDP datagram. Sockets the lookup finds first (established TCP, connected
 * UDP) never come here. A SYN to the pod's port 15008 goes to the agent's HBONE listener in
 * the namespace (bm_hbone), when there is one, before any judgment.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "inbound.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 bm_self_pod = 0;

/* Every address field read once, unconditionally and as its own load: a read under a branch
 * becomes pointer arithmetic on ctx, which the verifier refuses. */
#define BM_CTX_LOAD(dst, field)                                                                    \
	do {                                                                                       \
		dst = ctx->field;                                                                  \
		asm volatile("" : "+r"(dst));                                                      \
	} while (0)

/* The lookup as a parsed packet. */
static __always_inline int bm_lookup_pkt(struct bpf_sk_lookup *ctx, struct bm_pkt *p)
{
	__u32 s6[4], d6[4], s4, d4, fam, proto, lport;

	BM_CTX_LOAD(fam, family);
	BM_CTX_LOAD(proto, protocol);
	BM_CTX_LOAD(lport, local_port);
	BM_CTX_LOAD(s4, remote_ip4);
	BM_CTX_LOAD(d4, local_ip4);
	BM_CTX_LOAD(s6[0], remote_ip6[0]);
	BM_CTX_LOAD(s6[1], remote_ip6[1]);
	BM_CTX_LOAD(s6[2], remote_ip6[2]);
	BM_CTX_LOAD(s6[3], remote_ip6[3]);
	BM_CTX_LOAD(d6[0], local_ip6[0]);
	BM_CTX_LOAD(d6[1], local_ip6[1]);
	BM_CTX_LOAD(d6[2], local_ip6[2]);
	BM_CTX_LOAD(d6[3], local_ip6[3]);
	__builtin_memset(p, 0, sizeof(*p));
	p->proto = proto;
	if (proto != BM_PROTO_TCP && proto != BM_PROTO_UDP)
		return 0;
	if (fam == BM_AF_INET) {
		__builtin_memcpy(p->src, &s4, 4);
		__builtin_memcpy(p->dst, &d4, 4);
		p->family = BM_FAM_V4;
	} else if (fam == BM_AF_INET6) {
		__builtin_memcpy(p->src, s6, 16);
		__builtin_memcpy(p->dst, d6, 16);
		p->family = BM_FAM_V6;
	} else {
		return 0;
	}
	p->sport = ctx->remote_port;
	p->dport = bpf_htons((__u16)lport);
	p->tcp_flags = BM_TCP_SYN;
	p->l4 = 1;
	return 1;
}

SEC("sk_lookup")
int bm_pod_lookup(struct bpf_sk_lookup *ctx)
{
	struct bm_pkt p;
	int self;

	if (!bm_self_pod || !bm_lookup_pkt(ctx, &p))
		return SK_PASS;
	/* The pod talking to itself. Its own address is no proof here (the lookup reports the
	 * interface that address is on, not lo): such a lookup is passed on to the cgroup hook,
	 * which sees the loopback device and judges it for real. */
	/* HBONE to the pod's own address (ztunnel's in-pod addressing): the agent's listener in
	 * this namespace takes it, never the pod; it authenticates and judges each stream */
	if (p.proto == BM_PROTO_TCP && p.dport == bpf_htons(BM_PORT_HBONE)) {
		__u32 k = bm_self_pod;
		struct bpf_sock *sk = bpf_map_lookup_elem(&bm_hbone, &k);

		if (sk) {
			/* that socket, never one the pod bound to 15008 with SO_REUSEPORT */
			long err = bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_NO_REUSEPORT);

			bpf_sk_release(sk);
			if (!err)
				return SK_PASS;
		}
	}
	self = ctx->ingress_ifindex == BM_LOOPBACK_IFINDEX || bm_same_addr16(p.src, p.dst);
	return bm_inbound_judge(&p, bm_self_pod, self) ? SK_PASS : SK_DROP;
}
