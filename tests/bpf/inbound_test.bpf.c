// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * inbound_test.bpf.c: a tc program that runs the inbound judge (bpf/inbound.h) and the egress
 * guard's source check and agent port guard (bpf/guard.h) on the packet it is given, because cgroup_skb and
 * sk_lookup programs are driven here through bpf_prog_test_run_opts. Driven by
 * tests/bpf/test_inbound.c (table-driven packet fixtures) and tests/fuzz/fuzz_inbound.c
 * (random packets). The test fills this object's own (unpinned) maps and reads .bss.
 */
#define BM_PIN LIBBPF_PIN_NONE
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "guard.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u32 test_pod = 0;		/* the receiving pod */
__u32 test_on_lo = 0;		/* arrived on its loopback */
struct bm_pod test_sender = {}; /* for the source check */

struct bm_sock test_rec = {};	/* the sending socket's record, for the agent port guard */
__u32 test_has_rec = 0;		/* 0: the socket has none */

int parse_res = 0;
__u32 judged = 0, verdict = 0, src_ok = 0, port_ok = 0;
/* bm_parse_direct on the same packet (the frame's network header at ETH_HLEN): its result,
 * and whether it read what bm_parse read (1 also when it left the packet to bm_parse) */
int direct_res = 0;
__u32 direct_same = 0;

SEC("tc")
int inbound_judge_pkt(struct __sk_buff *skb)
{
	struct bm_pkt p;

	parse_res = bm_parse(skb, &p);
	{
		struct bm_pkt q;

		direct_res = bm_parse_direct(skb, 14, &q);
		direct_same = direct_res == BM_PKT_SLOW ||
			      (direct_res == parse_res && bm_same_addr16(p.src, q.src) &&
			       bm_same_addr16(p.dst, q.dst) && p.sport == q.sport &&
			       p.dport == q.dport && p.family == q.family && p.proto == q.proto &&
			       p.tcp_flags == q.tcp_flags && p.l4 == q.l4 && p.l4off == q.l4off);
	}
	judged = 0;
	verdict = 1;
	src_ok = parse_res == BM_PKT_OTHER ? 1 : bm_src_ok(&test_sender, &p);
	port_ok = parse_res == BM_PKT_OK ? bm_agent_port_ok(&p, test_has_rec ? &test_rec : 0) : 1;
	if (parse_res == BM_PKT_OPAQUE) {
		judged = 1;
		verdict = bm_inbound_opaque(&p, test_pod);
	} else if (parse_res == BM_PKT_OK &&
		   (bm_pkt_is_syn(&p) || (p.l4 && p.proto == BM_PROTO_UDP))) {
		judged = 1;
		verdict = bm_inbound_judge(&p, test_pod, test_on_lo);
	}
	return 0;
}
