/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * net.h: the network constants and tiny address tests every program needs, defined once
 * (vmlinux.h carries no #defines, and libc headers do not mix with it). Included through
 * maps.h by every BPF object.
 */
#ifndef BM_NET_H
#define BM_NET_H

#include <bpf/bpf_endian.h>
#include "bpfmesh.h"

#define BM_ETH_P_IP	    0x0800
#define BM_ETH_P_ARP	    0x0806
#define BM_ETH_P_IPV6	    0x86DD
#define BM_PROTO_TCP	    6
#define BM_PROTO_UDP	    17
#define BM_PROTO_ICMP6	    58
#define BM_AF_INET	    2
#define BM_AF_INET6	    10
#define BM_TCP_SYN	    0x02
#define BM_TCP_ACK	    0x10
#define BM_LOOPBACK_IFINDEX 1 /* lo is ifindex 1 in every network namespace */

/* errno values the socket hooks hand back with bpf_set_retval() */
#define BM_EPERM	1
#define BM_EBUSY	16
#define BM_ECONNREFUSED 111

static __always_inline int bm_is_v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

static __always_inline int bm_same_addr16(const __u8 *a, const __u8 *b)
{
	__u32 x[4], y[4];

	__builtin_memcpy(x, a, 16);
	__builtin_memcpy(y, b, 16);
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/*
 * A client socket's local address as the agent sees it on accept (bm_orig's key): fam the
 * socket's (AF_INET 2, AF_INET6 10), a4/a6 its local address, port in host order. A
 * v4-mapped IPv6 socket's is IPv4 (it connected to the agent's IPv4 listener).
 */
static __always_inline void bm_orig_key_of(__u32 fam, __u32 a4, const __u32 a6[4], __u32 port,
					   struct bm_orig_key *k)
{
	k->port = bpf_htons((__u16)port);
	if (fam == 10 && !bm_is_v4mapped(a6)) {
		__builtin_memcpy(k->addr, a6, 16);
		k->family = BM_FAM_V6;
		return;
	}
	if (fam == 10)
		a4 = a6[3];
	__builtin_memcpy(k->addr, &a4, 4);
	k->family = BM_FAM_V4;
}

/* fe80::/10, and :: (the unspecified address duplicate address detection sends from) */
static __always_inline int bm_v6_link_local_or_any(const __u8 *a)
{
	__u32 x[4];

	__builtin_memcpy(x, a, 16);
	if ((a[0] == 0xfe && (a[1] & 0xc0) == 0x80))
		return 1;
	return x[0] == 0 && x[1] == 0 && x[2] == 0 && x[3] == 0;
}

/* Istio ambient's agent ports (bpfmesh.h BM_PORT_*), network order. */
static __always_inline int bm_agent_port(__be16 port)
{
	__u16 p = bpf_ntohs(port);

	return p == BM_PORT_OUTBOUND || p == BM_PORT_INBOUND || p == BM_PORT_HBONE ||
	       p == BM_PORT_METRICS || p == BM_PORT_HEALTH;
}

/* The agent's traffic listeners (outbound capture, inbound/HTTP path, mTLS): what nothing but
 * the kernel's own redirects may dial on this node's address. Metrics and health (15020,
 * 15021) are not: an in-cluster Prometheus scrapes them. */
static __always_inline int bm_agent_listener_port(__be16 port)
{
	__u16 p = bpf_ntohs(port);

	return p == BM_PORT_OUTBOUND || p == BM_PORT_INBOUND || p == BM_PORT_HBONE;
}

#endif /* BM_NET_H */
