/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * dest.h: the destination side of Istio's TCP metrics (reporter "destination"), for the
 * connections only this node's kernel sees whole: plaintext ones a mesh pod of this node
 * accepted from another node. sockops calls bm_dest_open at the accept (passive established)
 * and bm_dest_close at TCP_CLOSE; the key lives in the socket's storage (bm_dsock), the counts
 * in bm_dtraffic. A connection from a pod of this node is left out (the source side counts it
 * and the agent shows it for both sides), and so is one from this node's agent (a tunnel
 * delivery, which the agent counts as it relays).
 */
#ifndef BM_DEST_H
#define BM_DEST_H

#include "accel.h"
#include "conn.h"

/* The series of an accepted connection k (local address: the pod): 1 when it is one. */
static __always_inline int bm_dest_key(const struct bm_sockkey *k, struct bm_dtraffic_key *dk)
{
	struct bm_addr_key a = {};
	struct bm_podaddr *p;
	struct bm_node *node;
	__u32 zero = 0;

	a.family = k->family;
	__builtin_memcpy(a.addr, k->raddr, 16);
	if (bpf_map_lookup_elem(&bm_podaddr, &a))
		return 0; /* a pod of this node: the source side's series */
	node = bpf_map_lookup_elem(&bm_node, &zero);
	if (node && (k->family == BM_FAM_V4 ? !__builtin_memcmp(k->raddr, node->addr4, 4)
					    : (node->flags & BM_NODE_F_TUNNEL6) &&
						  bm_same_addr16(k->raddr, node->addr6)))
		return 0; /* the agent's delivery (a tunnelled connection, the HTTP path's) */
	__builtin_memcpy(a.addr, k->laddr, 16);
	p = bpf_map_lookup_elem(&bm_podaddr, &a);
	if (!p || !(p->flags & BM_POD_F_IN_MESH))
		return 0;
	__builtin_memset(dk, 0, sizeof(*dk));
	__builtin_memcpy(dk->src_addr, k->raddr, 16);
	dk->dst_pod = p->pod_id;
	dk->port = k->lport;
	dk->family = k->family;
	return 1;
}

static __always_inline void bm_dtraffic_add(const struct bm_dtraffic_key *k,
					    const struct bm_traffic *d)
{
	struct bm_traffic zero = {}, *t = bpf_map_lookup_elem(&bm_dtraffic, k);

	if (!t) {
		bpf_map_update_elem(&bm_dtraffic, k, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&bm_dtraffic, k);
	}
	if (t) { /* per-CPU value: plain adds are safe */
		t->opened += d->opened;
		t->closed += d->closed;
		t->bytes_sent += d->bytes_sent;
		t->bytes_received += d->bytes_received;
	}
}

/* Passive established: 1 when the connection is counted (its close is to be watched). */
static __always_inline int bm_dest_open(struct bpf_sock_ops *skops, const struct bm_sockkey *k)
{
	struct bm_traffic d = {.opened = 1};
	struct bm_dtraffic_key dk, *st;
	struct bpf_sock *sk = skops->sk;

	if (!sk || !bm_dest_key(k, &dk))
		return 0;
	st = bpf_sk_storage_get(&bm_dsock, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return 0;
	*st = dk;
	bm_dtraffic_add(&dk, &d);
	return 1;
}

/* TCP_CLOSE of a counted connection: closed, and its payload both ways (the server's acked
 * bytes are the response, what it received the request). */
static __always_inline void bm_dest_close(struct bpf_sock_ops *skops, __u32 from, __u64 acked,
					  __u64 rcvd)
{
	struct bm_traffic d = {.closed = 1};
	struct bm_dtraffic_key *st;
	struct bpf_sock *sk = skops->sk;

	if (!sk)
		return;
	st = bpf_sk_storage_get(&bm_dsock, sk, 0, 0);
	if (!st || !st->dst_pod)
		return;
	bm_payload(from, acked, rcvd, 0, &d.bytes_received, &d.bytes_sent);
	bm_dtraffic_add(st, &d);
	st->dst_pod = 0; /* counted: a second close callback adds nothing */
}

#endif /* BM_DEST_H */
