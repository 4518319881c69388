// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * conn_test.bpf.c: tc programs for what sockops and sk_msg programs do, because those cannot
 * be test-run: conn_step runs one step of a connection's life (bpf/conn.h) on the record in
 * .bss; accel_check runs the same-node acceleration decisions (bpf/accel.h) on a socket's
 * addresses in .bss. Driven by tests/bpf/test_conn.c, which sets the inputs and reads this
 * object's own (unpinned) maps and flow log.
 */
#define BM_PIN LIBBPF_PIN_NONE
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conn.h"
#include "accel.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum { STEP_CONNECT = 1, STEP_ESTABLISHED, STEP_CLOSED };

struct bm_sock test_sock = {};
__u32 step = 0, from = 0;
__u64 now = 0, cookie = 0, acked = 0, rcvd = 0, xsent = 0, xrcvd = 0;
int ret = 0;

SEC("tc")
int conn_step(struct __sk_buff *skb)
{
	switch (step) {
	case STEP_CONNECT:
		ret = bm_conn_connect(&test_sock, now);
		break;
	case STEP_ESTABLISHED:
		bm_conn_established(&test_sock, cookie, now);
		ret = 0;
		break;
	case STEP_CLOSED:
		ret = bm_conn_closed(&test_sock, cookie, from, acked, rcvd, xsent, xrcvd, now);
		break;
	}
	return 0;
}

/* accel_check: the key of raw, whether it may be accelerated, and what a write in direction
 * mode does with the peer there or not */
struct bm_sockraw raw = {};
struct bm_sockkey key = {};
__u8 mode = 0;
__u32 peer_present = 0;
int keyed = 0, eligible = 0, redirected = 0;

SEC("tc")
int accel_check(struct __sk_buff *skb)
{
	keyed = bm_sockkey_of(&raw, &key);
	eligible = keyed && bm_accel_eligible(&key);
	redirected = bm_accel_decide(&mode, peer_present);
	return 0;
}
