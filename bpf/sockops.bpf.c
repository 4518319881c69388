// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops.bpf.c: per-connection bookkeeping for sockets that sock_lb.bpf.c translated. The
 * active-connection count of each backend feeds LEAST_REQUEST. The count is taken when the SYN
 * is about to leave (TCP_CONNECT_CB), not in connect4, because a connect can still fail between
 * the two and nothing would give the count back; it is returned when the socket reaches
 * TCP_CLOSE, whichever way it gets there (FIN, RST, refused, killed process).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TCP_CLOSE_ 7

static __always_inline void bm_active_add(__u32 backend_id, int delta)
{
	struct bm_bstate *bs = bpf_map_lookup_elem(&bm_bstate, &backend_id);

	if (bs)
		__sync_fetch_and_add(&bs->active, delta);
}

SEC("sockops")
int bm_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct bm_sock *st;

	if (!sk)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		st = bpf_sk_storage_get(&bm_sock, sk, 0, 0);
		if (!st || st->counted)
			break;
		st->counted = 1;
		bm_active_add(st->backend_id, 1);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						     BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != TCP_CLOSE_)
			break;
		st = bpf_sk_storage_get(&bm_sock, sk, 0, 0);
		if (!st || !st->counted)
			break;
		st->counted = 2; /* released: never counted again */
		bm_active_add(st->backend_id, -1);
		break;
	}
	return 1;
}
