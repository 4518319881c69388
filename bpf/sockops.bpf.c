// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops.bpf.c: the sockops hook of a node's cgroup: it reads the socket and hands the
 * connection's life to conn.h (slots, outlier scoring, traffic counters, flow events), vouches
 * for local pods' connects (inbound.h, bm_attest), tells the agent where tunnelled connects
 * were going (bm_orig), enforces the connect timeout (TCP_USER_TIMEOUT while in SYN_SENT), and
 * puts established pod-to-pod sockets into bm_sockhash (accel.h), and counts the connections
 * local mesh pods accept from other nodes as their destination (dest.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "conn.h"
#include "accel.h"
#include "inbound.h"
#include "dest.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SOL_TCP_	  6
#define TCP_USER_TIMEOUT_ 18

/* A local pod's connect about to send its SYN: vouch for it if it goes to a local pod. */
static __always_inline int bm_attest_put(struct bpf_sock_ops *skops)
{
	__u64 cg = bpf_get_current_cgroup_id(); /* the connecting process: connect() context */
	struct bm_sockraw raw = {};
	struct bm_sockkey key;
	struct bm_pod *pod = bpf_map_lookup_elem(&bm_pod, &cg);

	if (!pod)
		return 0;
	BM_SOCKRAW_READ(&raw, skops);
	if (!bm_sockkey_of(&raw, &key))
		return 0;
	return bm_attest_connect(key.laddr, key.raddr, key.lport, key.rport, key.family, pod);
}

static __always_inline void bm_attest_del(const struct bm_sockkey *key)
{
	struct bm_attest_key k = {};

	__builtin_memcpy(k.saddr, key->laddr, 16);
	__builtin_memcpy(k.daddr, key->raddr, 16);
	k.sport = key->lport;
	k.dport = key->rport;
	k.family = key->family;
	bpf_map_delete_elem(&bm_attest, &k);
}

/* The client's address as the agent will see it on accept (net.h bm_orig_key_of). */
static __always_inline void bm_orig_key(struct bpf_sock_ops *skops, struct bm_orig_key *k)
{
	/* all read unconditionally: a conditional read becomes ctx pointer arithmetic */
	__u32 a4 = skops->local_ip4, fam = skops->family;
	__u32 a6[4] = {skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
		       skops->local_ip6[3]};
	__u32 port = skops->local_port; /* host order in sock_ops */

	asm volatile("" : "+r"(a4), "+r"(a6[0]), "+r"(a6[1]), "+r"(a6[2]), "+r"(a6[3]));
	bm_orig_key_of(fam, a4, a6, port, k);
}

/* A tunnelled connect: tell the agent where it was really going (bm_orig). */
static __always_inline void bm_orig_put(struct bpf_sock_ops *skops, const struct bm_sock *st)
{
	struct bm_orig_key k = {};
	struct bm_orig o = {};
	struct bm_backend *be = 0;
	__u32 bid = st->backend_id;

	bm_orig_key(skops, &k);
	if (bid)
		be = bpf_map_lookup_elem(&bm_backend, &bid);
	if (st->sub_flags & BM_CONN_F_L7) {
		__builtin_memcpy(o.addr, st->orig_addr, 16); /* the service: the agent routes */
		o.port = st->orig_port;
		o.family = BM_FAM_V4;
		o.flags = BM_ORIG_F_L7;
	} else if (be) {
		__builtin_memcpy(o.addr, be->addr, 16);
		o.port = be->port;
		o.family = be->family;
	} else {
		__builtin_memcpy(o.addr, st->orig_addr, 16);
		o.port = st->orig_port;
		o.family =
		    st->family == BM_FAM_V6 && k.family == BM_FAM_V4 ? BM_FAM_V4 : st->family;
	}
	o.backend_id = bid;
	o.svc_id = st->svc_id;
	o.src_pod = st->src_pod;
	bpf_map_update_elem(&bm_orig, &k, &o, BPF_ANY);
}

/* The socket's connection record, if connect4/6 made one. */
static __always_inline struct bm_sock *bm_rec(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;

	return sk ? bpf_sk_storage_get(&bm_sock, sk, 0, 0) : 0;
}

static __always_inline void bm_set_user_timeout(struct bpf_sock_ops *skops, int ms)
{
	bpf_setsockopt(skops, SOL_TCP_, TCP_USER_TIMEOUT_, &ms, sizeof(ms));
}

SEC("sockops")
int bm_sockops(struct bpf_sock_ops *skops)
{
	struct bm_sockraw raw = {};
	struct bm_sockkey key;
	struct bm_sock *st;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (bm_attest_put(skops)) /* its entry goes at TCP_CLOSE */
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							     BPF_SOCK_OPS_STATE_CB_FLAG);
		st = bm_rec(skops);
		if (!st || !bm_conn_connect(st, bpf_ktime_get_ns()))
			break;
		if (st->timeout_ms)
			bm_set_user_timeout(skops, st->timeout_ms);
		if (st->sub_flags & (BM_CONN_F_TUNNEL | BM_CONN_F_L7))
			bm_orig_put(skops, st);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						     BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		BM_SOCKRAW_READ(&raw, skops);
		if (!bm_sockkey_of(&raw, &key))
			break;
		bm_accel_server(skops, &key);
		if (bm_dest_open(skops, &key))
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							     BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		BM_SOCKRAW_READ(&raw, skops);
		if (bm_sockkey_of(&raw, &key) && bm_accel_client(skops, &key))
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							     BPF_SOCK_OPS_STATE_CB_FLAG);
		st = bm_rec(skops);
		if (!st || st->counted != 1)
			break;
		if (st->timeout_ms)
			bm_set_user_timeout(skops, 0); /* the connect timeout ends here */
		bm_conn_established(st, bpf_get_socket_cookie(skops), bpf_ktime_get_ns());
		break;
	case BPF_SOCK_OPS_STATE_CB: {
		__u32 from = skops->args[0], to = skops->args[1];
		__u64 acked = skops->bytes_acked, rcvd = skops->bytes_received, xsent, xrcvd;

		if (to != BM_TCP_CLOSE)
			break;
		bm_dest_close(skops, from, acked, rcvd);
		BM_SOCKRAW_READ(&raw, skops);
		if (bm_sockkey_of(&raw, &key)) {
			bm_accel_close(&key, &xsent, &xrcvd);
			bm_attest_del(&key);
		} else {
			xsent = xrcvd = 0;
		}
		st = bm_rec(skops);
		if (!st || !bm_conn_closed(st, bpf_get_socket_cookie(skops), from, acked, rcvd,
					   xsent, xrcvd, bpf_ktime_get_ns()))
			break;
		if (st->sub_flags & (BM_CONN_F_TUNNEL | BM_CONN_F_L7)) {
			struct bm_orig_key ok = {};

			bm_orig_key(skops, &ok);
			bpf_map_delete_elem(&bm_orig, &ok); /* if the agent has not taken it */
		}
		break; /* the record goes with the socket */
	}
	}
	return 1;
}
