// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sock_lb.bpf.c: the socket-layer service translation, attached by the agent to a node's
 * cgroup. connect4/6 (TCP, connected UDP) and sendmsg4/6 (unconnected UDP) turn a service
 * address into a backend chosen by lb.h; getpeername4/6 and recvmsg4/6 hand the application
 * back the address it dialed, so it never sees the rewrite. Each SEC() is a thin wrapper: the
 * decision is xlate.h's, this file reads and writes the socket address around it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xlate.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Key for the address the application asked for; returns 0 if it can't be a service. */
static __always_inline int bm_key_from_ctx(struct bpf_sock_addr *ctx, int v6, struct bm_svc_key *k,
					   int *mapped)
{
	__u32 a[4];

	k->proto = ctx->protocol;
	k->port = (__be16)ctx->user_port;
	*mapped = 0;
	if (!v6) {
		a[0] = ctx->user_ip4;
		__builtin_memcpy(k->addr, a, 4);
		k->family = BM_FAM_V4;
		return 1;
	}
	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	if (bm_is_v4mapped(a)) {
		*mapped = 1;
		__builtin_memcpy(k->addr, &a[3], 4);
		k->family = BM_FAM_V4;
		return 1;
	}
	__builtin_memcpy(k->addr, a, 16);
	k->family = BM_FAM_V6;
	return 1;
}

/* The address writes below repeat on purpose: shared as one helper, clang computes
 * &ctx->user_ip6 once into a register and the verifier rejects stores through a modified ctx
 * pointer ("dereference of modified ctx ptr"). */
static __always_inline void bm_write_dest(struct bpf_sock_addr *ctx, int v6, int mapped,
					  const struct bm_backend *be)
{
	__u32 a[4];

	__builtin_memcpy(a, be->addr, 16);
	if (!v6) {
		ctx->user_ip4 = a[0];
	} else if (mapped) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = a[0];
	} else {
		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
	}
	ctx->user_port = (__u32)be->port;
}

/* Translate; 1 = let the syscall go on, 0 = fail it (bpf_set_retval says with what). */
static __always_inline int bm_sock_xlate(struct bpf_sock_addr *ctx, int v6, int is_sendmsg)
{
	struct bm_svc_key key = {};
	struct bm_decision d;
	int mapped;

	if (!bm_key_from_ctx(ctx, v6, &key, &mapped))
		return 1;
	/* the cookie only for UDP (bm_udp's key): a TCP connect needs none */
	bm_sock_decide(&key, mapped, bpf_get_current_cgroup_id(), is_sendmsg,
		       key.proto == BM_PROTO_TCP ? 0 : bpf_get_socket_cookie(ctx), &d);
	if (!d.allow) {
		bpf_set_retval(-d.err);
		return 0;
	}
	if (d.record) {
		struct bm_sock *st =
		    bpf_sk_storage_get(&bm_sock, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

		if (st)
			*st = d.rec; /* a re-connect replaces it */
		else
			bm_count(BM_ST_SOCK_FULL);
	} else if (!is_sendmsg && bpf_sk_storage_get(&bm_sock, ctx->sk, 0, 0)) {
		/* a socket connected again (after a failed connect, or UDP) to what needs no
		 * record: the last one's would restore a wrong getpeername */
		bpf_sk_storage_delete(&bm_sock, ctx->sk);
	}
	if (d.rewrite)
		bm_write_dest(ctx, v6, mapped, &d.dst);
	return 1;
}

SEC("cgroup/connect4")
int bm_connect4(struct bpf_sock_addr *ctx)
{
	return bm_sock_xlate(ctx, 0, 0);
}

SEC("cgroup/connect6")
int bm_connect6(struct bpf_sock_addr *ctx)
{
	return bm_sock_xlate(ctx, 1, 0);
}

SEC("cgroup/sendmsg4")
int bm_sendmsg4(struct bpf_sock_addr *ctx)
{
	return bm_sock_xlate(ctx, 0, 1);
}

SEC("cgroup/sendmsg6")
int bm_sendmsg6(struct bpf_sock_addr *ctx)
{
	return bm_sock_xlate(ctx, 1, 1);
}

/* getpeername: the service address the socket was connected to, if we translated it. */
static __always_inline int bm_restore_peer(struct bpf_sock_addr *ctx, int v6)
{
	struct bm_sock *st = bpf_sk_storage_get(&bm_sock, ctx->sk, 0, 0);
	__u32 a[4], cur[4];

	if (!st)
		return 1;
	__builtin_memcpy(a, st->orig_addr, 16);
	if (v6) {
		/* ctx fields one by one: the verifier forbids pointer arithmetic on ctx */
		cur[0] = ctx->user_ip6[0];
		cur[1] = ctx->user_ip6[1];
		cur[2] = ctx->user_ip6[2];
		cur[3] = ctx->user_ip6[3];
	}
	if (!v6) {
		ctx->user_ip4 = a[0];
	} else if (st->family == BM_FAM_V6 && bm_is_v4mapped(cur)) {
		ctx->user_ip6[3] = a[0];
	} else {
		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
	}
	ctx->user_port = (__u32)st->orig_port;
	bm_count(BM_ST_RESTORED);
	return 1;
}

SEC("cgroup/getpeername4")
int bm_getpeername4(struct bpf_sock_addr *ctx)
{
	return bm_restore_peer(ctx, 0);
}

SEC("cgroup/getpeername6")
int bm_getpeername6(struct bpf_sock_addr *ctx)
{
	return bm_restore_peer(ctx, 1);
}

/* recvmsg (UDP): a datagram from a backend appears to come from the service address. */
static __always_inline int bm_restore_udp(struct bpf_sock_addr *ctx, int v6)
{
	struct bm_udp_key uk = {};
	struct bm_udp_val *uv;
	__u32 a[4];
	int mapped = 0;

	uk.cookie = bpf_get_socket_cookie(ctx);
	uk.port = (__be16)ctx->user_port;
	if (!v6) {
		a[0] = ctx->user_ip4;
		__builtin_memcpy(uk.addr, a, 4);
		uk.family = BM_FAM_V4;
	} else {
		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
		if (bm_is_v4mapped(a)) {
			mapped = 1;
			__builtin_memcpy(uk.addr, &a[3], 4);
			uk.family = BM_FAM_V4;
		} else {
			__builtin_memcpy(uk.addr, a, 16);
			uk.family = BM_FAM_V6;
		}
	}
	uv = bpf_map_lookup_elem(&bm_udp, &uk);
	if (!uv)
		return 1;
	__builtin_memcpy(a, uv->addr, 16);
	if (!v6) {
		ctx->user_ip4 = a[0];
	} else if (mapped) {
		ctx->user_ip6[3] = a[0];
	} else {
		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
	}
	ctx->user_port = (__u32)uv->port;
	bm_count(BM_ST_RESTORED);
	return 1;
}

SEC("cgroup/recvmsg4")
int bm_recvmsg4(struct bpf_sock_addr *ctx)
{
	return bm_restore_udp(ctx, 0);
}

SEC("cgroup/recvmsg6")
int bm_recvmsg6(struct bpf_sock_addr *ctx)
{
	return bm_restore_udp(ctx, 1);
}
