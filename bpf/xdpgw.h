/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xdpgw.h: the ingress gateway's early drop, as a decision over plain values (bpf/xdp_gw.bpf.c
 * calls it per packet; a test program can call it with its own): a TCP packet to the
 * gateway's address and one of its ports is dropped when its source is in a DENY policy's
 * source blocks, or not in the ALLOW policy's when that is all the gateway allows; a SYN
 * beyond the source's token bucket (--ingress-syn-rate) is dropped. Everything else passes.
 */
#ifndef BM_XDPGW_H
#define BM_XDPGW_H

#include "bpfmesh.h"

enum bm_xverdict { BM_XV_NOT_OURS = 0, BM_XV_PASS, BM_XV_POLICY, BM_XV_SYN_RATE };

/* The policy part: in_deny / in_allow are the prefix lookups' results for the source. */
static __always_inline enum bm_xverdict bm_xdp_policy(const struct bm_xconf *cf, int in_deny,
						      int in_allow)
{
	if (in_deny)
		return BM_XV_POLICY;
	if ((cf->flags & BM_XCONF_F_ALLOW_ONLY) && !in_allow)
		return BM_XV_POLICY;
	return BM_XV_PASS;
}

/* The SYN part: b is the source's bucket (updated), now in ns; 1 when the SYN may pass. */
static __always_inline int bm_xdp_syn_ok(const struct bm_xconf *cf, struct bm_xbucket *b, __u64 now)
{
	__u64 cap = (__u64)cf->syn_burst * 1000000000ULL, add;

	if (!cf->syn_rate)
		return 1;
	if (now > b->last_ns) {
		__u64 dt = now - b->last_ns;

		/* enough to fill the bucket, never enough to overflow */
		if (dt > 1000000000ULL * (cf->syn_burst / cf->syn_rate + 1))
			dt = 1000000000ULL * (cf->syn_burst / cf->syn_rate + 1);
		add = dt * cf->syn_rate;
		b->tokens = b->tokens + add > cap ? cap : b->tokens + add;
		b->last_ns = now;
	}
	if (b->tokens < 1000000000ULL)
		return 0;
	b->tokens -= 1000000000ULL;
	return 1;
}

#endif /* BM_XDPGW_H */
