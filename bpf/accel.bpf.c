// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * accel.bpf.c: the sk_msg half of same-node acceleration (rules in accel.h). The agent attaches
 * it to bm_sockhash (BPF_SK_MSG_VERDICT), so it runs on every write of a socket sockops put
 * there: the write goes straight into the peer socket's receive queue (BPF_F_INGRESS), and its
 * size is counted for the connection, since TCP's byte counters never see it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "accel.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int bm_accel_send(struct sk_msg_md *msg)
{
	struct bm_sockraw raw = {};
	struct bm_sockkey k, peer;
	struct bm_accel *a;
	__u8 *mode;
	__u64 *ctr;
	__u32 size = msg->size;
	int present;

	BM_SOCKRAW_READ(&raw, msg);
	if (!bm_sockkey_of(&raw, &k))
		return SK_PASS;
	bm_sockkey_peer(&k, &peer);
	a = bpf_map_lookup_elem(&bm_accel, &k); /* the client writing */
	if (a) {
		mode = &a->fwd_mode;
		ctr = &a->sent;
	} else {
		a = bpf_map_lookup_elem(&bm_accel, &peer); /* the server writing */
		if (!a)
			return SK_PASS; /* the client closed: nothing left to redirect to */
		mode = &a->rev_mode;
		ctr = &a->rcvd;
	}
	if (*mode == BM_ACCEL_TCP)
		return SK_PASS;
	present = bpf_msg_redirect_hash(msg, &bm_sockhash, &peer, BPF_F_INGRESS) == SK_PASS;
	if (bm_accel_decide(mode, present)) {
		__sync_fetch_and_add(ctr, size);
		bm_count_add(BM_ST_ACCEL_BYTES, size);
	}
	return SK_PASS;
}

SEC("sk_msg")
int bm_accel_msg(struct sk_msg_md *msg)
{
	return bm_accel_send(msg);
}
