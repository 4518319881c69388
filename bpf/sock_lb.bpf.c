// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sock_lb.bpf.c: the socket-layer service translation, attached by the agent to a node's
 * cgroup. connect4/6 (TCP, connected UDP) and sendmsg4/6 (unconnected UDP) turn a service
 * address into a backend chosen by lb.h; getpeername4/6 and recvmsg4/6 hand the application
 * back the address it dialed, so it never sees the rewrite. Each SEC() is a thin wrapper.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lb.h"

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

/*
 * Should this mesh connect go through the local agent's mTLS tunnel? The service path knows
 * from the backend's flag; a connect to a bare address (no service) looks the address up.
 * On yes, dst becomes the agent's outbound listener. IPv4 only: the tunnel carries IPv4.
 */
static __always_inline int bm_tunnel(const struct bm_svc_key *key, struct bm_pick *pick, int res,
				     struct bm_backend *dst)
{
	struct bm_wl_key wk = {};
	struct bm_node *node;
	struct bm_wl *wl;
	__u32 zero = 0;

	if (key->proto != BM_PROTO_TCP || key->family != BM_FAM_V4)
		return 0;
	if (res == BM_X_OK) {
		if (!(pick->be.flags & BM_BE_F_TUNNEL) || pick->be.family != BM_FAM_V4)
			return 0;
	} else {
		__builtin_memcpy(wk.addr, key->addr, 4);
		wk.family = BM_FAM_V4;
		wk.port = key->port;
		wl = bpf_map_lookup_elem(&bm_wl, &wk);
		if (!wl) {
			wk.port = 0;
			wl = bpf_map_lookup_elem(&bm_wl, &wk);
		}
		if (!wl || !(wl->flags & BM_WL_F_TUNNEL))
			return 0;
		__builtin_memcpy(pick->be.addr, key->addr, 16);
		pick->be.port = key->port;
		pick->be.family = BM_FAM_V4;
	}
	node = bpf_map_lookup_elem(&bm_node, &zero);
	if (!node || !(node->flags & BM_NODE_F_TUNNEL))
		return 0; /* no agent tunnel: plaintext, which a STRICT peer refuses */
	__builtin_memset(dst, 0, sizeof(*dst));
	__builtin_memcpy(dst->addr, node->addr4, 4);
	dst->port = node->outbound_port;
	dst->family = BM_FAM_V4;
	/* The agent accepts every connect: its outcome says nothing of the backend. */
	pick->sub_flags = (pick->sub_flags & ~BM_SUB_F_OUTLIER) | BM_CONN_F_TUNNEL;
	return 1;
}

/*
 * A mesh client's IPv6 connect to a STRICT mesh workload on another node: the tunnel carries
 * IPv4 only, and the far node would drop the plaintext SYN, so refuse it here, at once.
 */
static __always_inline int bm_v6_refused(const struct bm_svc_key *key, const struct bm_pick *pick,
					 int res)
{
	struct bm_wl_key wk = {};
	struct bm_wl *wl;

	if (key->proto != BM_PROTO_TCP || key->family != BM_FAM_V6)
		return 0;
	if (res == BM_X_OK)
		return !!(pick->be.flags & BM_BE_F_NOV6);
	__builtin_memcpy(wk.addr, key->addr, 16);
	wk.family = BM_FAM_V6;
	wk.port = key->port;
	wl = bpf_map_lookup_elem(&bm_wl, &wk);
	if (!wl) {
		wk.port = 0;
		wl = bpf_map_lookup_elem(&bm_wl, &wk);
	}
	return wl && (wl->flags & BM_WL_F_NOV6);
}

/* Translate; 1 = let the syscall go on, 0 = fail it with ECONNREFUSED (no backend). */
static __always_inline int bm_sock_xlate(struct bpf_sock_addr *ctx, int v6, int is_sendmsg)
{
	struct bm_svc_key key = {};
	struct bm_client cl = {};
	struct bm_pick pick = {};
	struct bm_sock rec = {};
	struct bm_backend tun;
	int mapped, res, tunnel = 0;

	if (!bm_key_from_ctx(ctx, v6, &key, &mapped))
		return 1;
	if (bm_agent_port(key.port)) {
		bm_count(BM_ST_AGENT_PORT);
		bpf_set_retval(-BM_EPERM);
		return 0;
	}
	bm_client_load(&cl, bpf_get_current_cgroup_id());
	res = bm_xlate(&key, &cl, &pick);
	if ((res == BM_X_OK || res == BM_X_MISS) && cl.in_mesh && !is_sendmsg) {
		if (bm_v6_refused(&key, &pick, res)) {
			bm_count(BM_ST_V6_REFUSED);
			bpf_set_retval(-BM_ECONNREFUSED);
			return 0;
		}
		tunnel = bm_tunnel(&key, &pick, res, &tun);
	}
	if (res == BM_X_MISS) {
		if (!tunnel) {
			bm_count(BM_ST_MISS);
			return 1;
		}
		res = BM_X_OK; /* a bare workload address, tunnelled */
	}
	if (res == BM_X_OVERFLOW) {
		bm_count(BM_ST_POOL_OVERFLOW);
		bpf_set_retval(-BM_EBUSY);
		return 0;
	}
	if (res != BM_X_OK) {
		bm_count(BM_ST_NO_BACKEND);
		bpf_set_retval(-BM_ECONNREFUSED);
		return 0;
	}
	bm_count(tunnel ? BM_ST_TUNNELLED : BM_ST_XLATE);
	if (!cl.in_mesh)
		bm_count(BM_ST_NONMESH);

	if (key.proto != BM_PROTO_TCP) {
		/* UDP: remember how to restore the source of replies (recvmsg). */
		struct bm_udp_key uk = {};
		struct bm_udp_val uv = {};

		uk.cookie = bpf_get_socket_cookie(ctx);
		__builtin_memcpy(uk.addr, pick.be.addr, 16);
		uk.port = pick.be.port;
		uk.family = pick.be.family;
		__builtin_memcpy(uv.addr, key.addr, 16);
		uv.port = key.port;
		bpf_map_update_elem(&bm_udp, &uk, &uv, BPF_ANY);
	}
	if (!is_sendmsg) {
		__u64 cookie = bpf_get_socket_cookie(ctx);

		__builtin_memcpy(rec.orig_addr, key.addr, 16);
		rec.orig_port = key.port;
		rec.family = mapped ? BM_FAM_V6 : key.family;
		rec.backend_id = pick.backend_id;
		rec.svc_id = pick.svc_id;
		rec.subset_id = pick.subset_id;
		rec.sub_flags = pick.sub_flags;
		rec.pool_key = pick.pool_key;
		rec.timeout_ms = pick.timeout_ms;
		rec.cgroup_id = cl.cgroup_id;
		rec.src_pod = cl.pod_id;
		rec.created_ns = bpf_ktime_get_ns();
		if (key.proto != BM_PROTO_TCP) {
			struct bm_sock *u = bpf_sk_storage_get(&bm_sock_udp, ctx->sk, 0,
							       BPF_SK_STORAGE_GET_F_CREATE);

			if (u)
				*u = rec; /* a re-connect replaces it */
		} else if (bpf_map_update_elem(&bm_sock, &cookie, &rec, BPF_ANY)) {
			bm_count(BM_ST_SOCK_FULL);
		}
	}
	bm_write_dest(ctx, v6, mapped, tunnel ? &tun : &pick.be);
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
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct bm_sock *st = bpf_map_lookup_elem(&bm_sock, &cookie);
	__u32 a[4], cur[4];

	if (!st)
		st = bpf_sk_storage_get(&bm_sock_udp, ctx->sk, 0, 0);
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
