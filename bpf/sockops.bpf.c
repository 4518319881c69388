// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops.bpf.c: what happens to a connection after sock_lb.bpf.c chose its backend.
 *  - Active connections per backend (LEAST_REQUEST) and per (client pod, subset)
 *    (connectionPool.tcp.maxConnections): taken when the SYN leaves (TCP_CONNECT_CB), not in
 *    connect4, because a connect can still fail between the two; returned when the socket
 *    reaches TCP_CLOSE, whichever way it gets there (FIN, RST, refused, killed process).
 *  - The connect's outcome feeds outlier detection right here, so a failing backend leaves
 *    rotation before connect() even returns to the application: established counts as 200,
 *    refused as 503, timed out (connectTimeout, enforced with TCP_USER_TIMEOUT while in
 *    SYN_SENT) as 504, exactly as Envoy counts TCP upstream failures. A reset before any
 *    reply is counted (bm_stats) but not scored, for the same reason.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TCP_ESTABLISHED_  1
#define TCP_SYN_SENT_	  2
#define TCP_CLOSE_	  7
#define SOL_TCP_	  6
#define TCP_USER_TIMEOUT_ 18

static __always_inline void bm_active_add(__u32 backend_id, int delta)
{
	struct bm_bstate *bs = bpf_map_lookup_elem(&bm_bstate, &backend_id);

	if (bs)
		__sync_fetch_and_add(&bs->active, delta);
}

static __always_inline void bm_pool_add(const struct bm_sock *st, int delta)
{
	struct bm_cpool_key k = {.cgroup_id = st->cgroup_id, .pool_key = st->pool_key};
	__s32 one = 1, *cnt;

	if (!st->pool_key)
		return;
	cnt = bpf_map_lookup_elem(&bm_cpool, &k);
	if (cnt) {
		__sync_fetch_and_add(cnt, delta);
		return;
	}
	if (delta > 0 && bpf_map_update_elem(&bm_cpool, &k, &one, BPF_NOEXIST)) {
		cnt = bpf_map_lookup_elem(&bm_cpool, &k); /* lost a race: add to the winner's */
		if (cnt)
			__sync_fetch_and_add(cnt, delta);
	}
}

struct bm_ejcount {
	__u32 first;
	__u32 ejected;
};

static long bm_ejcount_step(__u32 i, void *arg)
{
	struct bm_ejcount *c = arg;
	__u32 slot = c->first + i, *bid = bpf_map_lookup_elem(&bm_slot, &slot);

	if (bid && *bid && bm_ejected(*bid))
		c->ejected++;
	return 0;
}

/* Feed one result (200/503/504) of a connection to its backend's outlier state. */
static __always_inline void bm_record(const struct bm_sock *st, __u32 code)
{
	struct bm_health fresh = {}, *h;
	struct bm_ejcount ec = {};
	struct bm_policy *pol;
	struct bm_subset *sub;
	struct bm_outlier od;
	__u32 bid = st->backend_id, sid = st->subset_id, n;
	__u64 now = bpf_ktime_get_ns();
	int r;

	if (!(st->sub_flags & BM_SUB_F_OUTLIER))
		return;
	pol = bpf_map_lookup_elem(&bm_policy, &sid);
	sub = bpf_map_lookup_elem(&bm_subset, &sid);
	if (!pol || !sub)
		return;
	od = pol->od;
	n = sub->n;
	h = bpf_map_lookup_elem(&bm_health, &bid);
	if (!h) {
		if (code < 500)
			return; /* a success on a fresh host changes nothing */
		bpf_map_update_elem(&bm_health, &bid, &fresh, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&bm_health, &bid);
		if (!h)
			return;
	}
	if (code >= 500) {
		/* maxEjectionPercent needs the cluster's ejected count: walk it (failures only) */
		ec.first = sub->first_slot;
		bpf_loop(n, bm_ejcount_step, &ec, 0);
	}
	bpf_spin_lock(&h->lock);
	h->subset_id = sid;
	h->pol = od;
	r = bm_od_result(&h->od, &od, code, now, ec.ejected, n);
	bpf_spin_unlock(&h->lock);
	if (r == BM_OD_EJECTED)
		bm_count(BM_ST_EJECTED);
	else if (r == BM_OD_OVERFLOW)
		bm_count(BM_ST_EJECT_OVERFLOW);
}

static __always_inline void bm_set_user_timeout(struct bpf_sock_ops *skops, int ms)
{
	bpf_setsockopt(skops, SOL_TCP_, TCP_USER_TIMEOUT_, &ms, sizeof(ms));
}

SEC("sockops")
int bm_sockops(struct bpf_sock_ops *skops)
{
	__u64 cookie, elapsed_ms;
	struct bm_sock *st;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		cookie = bpf_get_socket_cookie(skops);
		st = bpf_map_lookup_elem(&bm_sock, &cookie);
		if (!st || st->counted)
			break;
		st->counted = 1;
		st->connect_ns = bpf_ktime_get_ns();
		bm_active_add(st->backend_id, 1);
		bm_pool_add(st, 1);
		if (st->timeout_ms)
			bm_set_user_timeout(skops, st->timeout_ms);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						     BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		cookie = bpf_get_socket_cookie(skops);
		st = bpf_map_lookup_elem(&bm_sock, &cookie);
		if (!st || st->counted != 1)
			break;
		if (st->timeout_ms)
			bm_set_user_timeout(skops, 0); /* the connect timeout ends here */
		bm_record(st, 200);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != TCP_CLOSE_)
			break;
		cookie = bpf_get_socket_cookie(skops);
		st = bpf_map_lookup_elem(&bm_sock, &cookie);
		if (!st || st->counted != 1)
			break;
		st->counted = 2; /* released: never counted again */
		bm_active_add(st->backend_id, -1);
		bm_pool_add(st, -1);
		if (skops->args[0] == TCP_SYN_SENT_) {
			/* The connect failed. Timed out if it lasted (nearly) the connect timeout.
			 */
			bm_count(BM_ST_CONNECT_FAIL);
			elapsed_ms = (bpf_ktime_get_ns() - st->connect_ns) / 1000000;
			bm_record(st, st->timeout_ms && elapsed_ms * 10 >= (__u64)st->timeout_ms * 9
					  ? 504
					  : 503);
		}
		bpf_map_delete_elem(&bm_sock, &cookie); /* the connection is over */
		break;
	}
	return 1;
}
