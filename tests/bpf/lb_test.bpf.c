// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * lb_test.bpf.c: tc programs that run the connect-time decision, because cgroup sock_addr
 * programs cannot be test-run: lb_draws the pick of bpf/lb.h many times per
 * bpf_prog_test_run_opts call, xlate_once the whole decision of bpf/xlate.h (refusals, the
 * tunnel, the connection record) once, route_cases the route choice of bpf/lb.h
 * (bm_route_first: first match wins) over a table of route lists and pod bits, orig_key
 * sockops' bm_orig key of a client socket (IPv4, IPv6, v4-mapped). Driven by
 * tests/bpf/test_lb.c, which fills this object's own (unpinned) maps through the agent's real
 * resolve + sync code and reads the results from .bss.
 */
#define BM_PIN LIBBPF_PIN_NONE
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "xlate.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TEST_MAX_IDS 64

struct bm_svc_key test_key = {};
__u64 test_cgroup = 0;
__u32 draws = 0;
__u64 hits[TEST_MAX_IDS] = {}; /* by backend id */
__u64 res_count[4] = {};       /* by enum bm_xlate_res */

/* Deterministic mode: every point of [0, total) of det_route, once. */
struct bm_route det_route = {};
__u64 det_hits[BM_MAX_ROUTE_DESTS] = {};
__u32 det_bad = 0;

static long one_draw(__u32 i, void *ctx)
{
	struct bm_client c = {};
	struct bm_pick p = {};
	int r;

	bm_client_load(&c, test_cgroup);
	r = bm_xlate(&test_key, &c, &p);
	if (r >= 0 && r < 4)
		res_count[r]++;
	if (r == BM_X_OK && p.backend_id < TEST_MAX_IDS)
		hits[p.backend_id]++;
	return 0;
}

static long one_point(__u32 x, void *ctx)
{
	int idx = bm_route_index(&det_route, x);

	if (idx >= 0 && idx < BM_MAX_ROUTE_DESTS)
		det_hits[idx]++;
	else
		det_bad++;
	return 0;
}

SEC("tc")
int lb_draws(struct __sk_buff *skb)
{
	bpf_loop(draws, one_draw, NULL, 0);
	return 0;
}

/* xlate_once: bm_sock_decide(test_key, ...) into decision */
struct bm_decision decision = {};
__u32 x_mapped = 0, x_sendmsg = 0;
__u64 x_cookie = 0;

SEC("tc")
int xlate_once(struct __sk_buff *skb)
{
	bm_sock_decide(&test_key, x_mapped, test_cgroup, x_sendmsg, x_cookie, &decision);
	return 0;
}

/* orig_key: bm_orig_key_of(ok_fam, ok_a4, ok_a6, ok_port) into ok_key (what sockops keys a
 * tunnelled connect's bm_orig entry by) */
__u32 ok_fam = 0, ok_a4 = 0, ok_a6[4] = {}, ok_port = 0;
struct bm_orig_key ok_key = {};

SEC("tc")
int orig_key(struct __sk_buff *skb)
{
	__builtin_memset(&ok_key, 0, sizeof(ok_key));
	bm_orig_key_of(ok_fam, ok_a4, ok_a6, ok_port, &ok_key);
	return 0;
}

SEC("tc")
int lb_points(struct __sk_buff *skb)
{
	bpf_loop(det_route.total, one_point, NULL, 0);
	return 0;
}

/* route_cases: bm_route_first over rc_n cases of (route list, pod bits) */
#define TEST_ROUTE_CASES 32
struct bm_rlist rc_list[TEST_ROUTE_CASES] = {};
__u32 rc_bits[TEST_ROUTE_CASES] = {};
__s32 rc_got[TEST_ROUTE_CASES] = {};
__u32 rc_n = 0;

static long one_case(__u32 i, void *ctx)
{
	if (i >= TEST_ROUTE_CASES)
		return 1;
	rc_got[i] = bm_route_first(&rc_list[i], rc_bits[i]);
	return 0;
}

SEC("tc")
int route_cases(struct __sk_buff *skb)
{
	bpf_loop(rc_n, one_case, NULL, 0);
	return 0;
}
