/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * accel.h: same-node acceleration, the decisions (Merbridge's idea). Included by sockops.bpf.c,
 * which puts both established sockets of a pod-to-pod connection into bm_sockhash, and by
 * accel.bpf.c, whose sk_msg program then hands each write straight to the peer socket's
 * receive queue instead of the TCP/IP stack.
 *
 * Rules, in one place:
 *  - only when the agent runs with --accel on (bm_conf), and only between two local mesh pods:
 *    both addresses in bm_podaddr (the node's own address, the agent's ports, other nodes'
 *    pods never are), and neither port one of the agent's (15001/15006/15008/15020/15021),
 *    so sockets redirected to a local agent (mTLS tunnel) are never accelerated;
 *  - a socket goes in at its own ESTABLISHED, never earlier, so a connection policy refuses at
 *    connect time is never accelerated; the server's socket only if the client's already is;
 *  - each direction is decided once, at its first write: redirected if the peer is in the map
 *    then, else TCP for good (no reordering between the two receive queues);
 *  - redirected bytes are counted per connection (bm_accel) and added to the TCP counts at
 *    close, so Istio's byte metrics stay exact.
 * The functions take plain structs (struct bm_sockraw) so a test program can drive them.
 */
#ifndef BM_ACCEL_H
#define BM_ACCEL_H

#include <bpf/bpf_endian.h>
#include "maps.h"

/* Field by field: the verifier forbids ctx reads through a computed pointer. Works for both
 * struct bpf_sock_ops and struct sk_msg_md, which name these fields alike. */
#define BM_SOCKRAW_READ(r, ctx)                                                                    \
	do {                                                                                       \
		(r)->family = (ctx)->family;                                                       \
		(r)->lip4 = (ctx)->local_ip4;                                                      \
		(r)->rip4 = (ctx)->remote_ip4;                                                     \
		(r)->lip6[0] = (ctx)->local_ip6[0];                                                \
		(r)->lip6[1] = (ctx)->local_ip6[1];                                                \
		(r)->lip6[2] = (ctx)->local_ip6[2];                                                \
		(r)->lip6[3] = (ctx)->local_ip6[3];                                                \
		(r)->rip6[0] = (ctx)->remote_ip6[0];                                               \
		(r)->rip6[1] = (ctx)->remote_ip6[1];                                               \
		(r)->rip6[2] = (ctx)->remote_ip6[2];                                               \
		(r)->rip6[3] = (ctx)->remote_ip6[3];                                               \
		(r)->lport = (ctx)->local_port;                                                    \
		(r)->rport = (ctx)->remote_port;                                                   \
	} while (0)

/* The socket's key; 0 if it is neither IPv4 nor IPv6. A v4-mapped IPv6 socket is keyed as
 * IPv4, so the two ends of one connection agree on the key whatever sockets they use. */
static __always_inline int bm_sockkey_of(const struct bm_sockraw *r, struct bm_sockkey *k)
{
	__u32 rp = r->rport > 0xffff ? r->rport >> 16 : r->rport;

	__builtin_memset(k, 0, sizeof(*k));
	k->lport = bpf_htons((__u16)r->lport);
	k->rport = (__be16)rp;
	if (r->family == BM_AF_INET) {
		__builtin_memcpy(k->laddr, &r->lip4, 4);
		__builtin_memcpy(k->raddr, &r->rip4, 4);
		k->family = BM_FAM_V4;
		return 1;
	}
	if (r->family != BM_AF_INET6)
		return 0;
	if (bm_is_v4mapped(r->lip6) && bm_is_v4mapped(r->rip6)) {
		__builtin_memcpy(k->laddr, &r->lip6[3], 4);
		__builtin_memcpy(k->raddr, &r->rip6[3], 4);
		k->family = BM_FAM_V4;
		return 1;
	}
	__builtin_memcpy(k->laddr, r->lip6, 16);
	__builtin_memcpy(k->raddr, r->rip6, 16);
	k->family = BM_FAM_V6;
	return 1;
}

/* The same connection as the other end sees it. */
static __always_inline void bm_sockkey_peer(const struct bm_sockkey *k, struct bm_sockkey *p)
{
	__builtin_memset(p, 0, sizeof(*p));
	__builtin_memcpy(p->laddr, k->raddr, 16);
	__builtin_memcpy(p->raddr, k->laddr, 16);
	p->lport = k->rport;
	p->rport = k->lport;
	p->family = k->family;
}

static __always_inline int bm_local_mesh_pod(const __u8 *addr, __u8 family)
{
	struct bm_addr_key k = {};
	struct bm_podaddr *p;

	__builtin_memcpy(k.addr, addr, 16);
	k.family = family;
	p = bpf_map_lookup_elem(&bm_podaddr, &k);
	return p && (p->flags & BM_POD_F_IN_MESH);
}

static __always_inline int bm_accel_enabled(void)
{
	__u32 zero = 0;
	struct bm_conf *c = bpf_map_lookup_elem(&bm_conf, &zero);

	return c && (c->flags & BM_CONF_F_ACCEL);
}

/* May this connection be accelerated at all? */
static __always_inline int bm_accel_eligible(const struct bm_sockkey *k)
{
	return bm_accel_enabled() && !bm_agent_port(k->lport) && !bm_agent_port(k->rport) &&
	       bm_local_mesh_pod(k->laddr, k->family) && bm_local_mesh_pod(k->raddr, k->family);
}

/*
 * What one write does, given the connection's record as the sender sees it. *mode is the
 * sender's direction; redirect() tries the peer and says whether it is there. Returns the
 * bytes to count as redirected (0: the write goes through TCP).
 */
static __always_inline int bm_accel_decide(__u8 *mode, int peer_present)
{
	if (*mode == BM_ACCEL_TCP)
		return 0;
	if (!peer_present) {
		if (*mode == BM_ACCEL_UNDECIDED)
			*mode = BM_ACCEL_TCP;
		return 0; /* decided TCP now, or the peer closed: TCP answers with a reset */
	}
	*mode = BM_ACCEL_REDIRECT;
	return 1;
}

/* sockops, the client's socket at ESTABLISHED: open the connection's record and put the socket
 * in. Returns 1 if it is in (the caller then wants the TCP_CLOSE callback). */
static __always_inline int bm_accel_client(struct bpf_sock_ops *skops, const struct bm_sockkey *k)
{
	struct bm_accel fresh = {};

	if (!bm_accel_eligible(k))
		return 0;
	if (bpf_map_update_elem(&bm_accel, k, &fresh, BPF_ANY)) {
		bm_count(BM_ST_ACCEL_FULL);
		return 0;
	}
	if (bpf_sock_hash_update(skops, &bm_sockhash, (void *)k, BPF_ANY)) {
		bpf_map_delete_elem(&bm_accel, k);
		bm_count(BM_ST_ACCEL_FULL);
		return 0;
	}
	return 1;
}

/* sockops, the server's socket at ESTABLISHED: in only if its client's socket already is (so
 * the client is a local pod under this agent too, and the connection got this far). */
static __always_inline void bm_accel_server(struct bpf_sock_ops *skops, const struct bm_sockkey *k)
{
	struct bm_sockkey peer;

	bm_sockkey_peer(k, &peer);
	if (!bpf_map_lookup_elem(&bm_accel, &peer) || !bm_accel_eligible(k))
		return;
	if (bpf_sock_hash_update(skops, &bm_sockhash, (void *)k, BPF_ANY)) {
		bm_count(BM_ST_ACCEL_FULL);
		return;
	}
	bm_count(BM_ST_ACCEL_CONNS);
}

/* sockops, the client's socket at TCP_CLOSE: the bytes that bypassed TCP, and the record goes.
 * (The kernel takes the socket itself out of bm_sockhash as it closes.) */
static __always_inline void bm_accel_close(const struct bm_sockkey *k, __u64 *sent, __u64 *rcvd)
{
	struct bm_accel *a = bpf_map_lookup_elem(&bm_accel, k);

	*sent = 0;
	*rcvd = 0;
	if (!a)
		return;
	*sent = a->sent;
	*rcvd = a->rcvd;
	bpf_map_delete_elem(&bm_accel, k);
}

#endif /* BM_ACCEL_H */
