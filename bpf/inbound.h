/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * inbound.h: the destination side of zero trust, as inline functions over plain structs. The
 * judgment is made for the pod a connection is delivered to, whichever address it was sent
 * to (its own, a link-local one, one the pod added), and about a source the kernel can vouch
 * for, never about a source address a sender can choose. Two hooks call it:
 *  - inpod.bpf.c, an sk_lookup program attached to each local pod's network namespace: the
 *    namespace is the pod; a refusal there makes the kernel answer a SYN with a reset (and a
 *    UDP datagram with port unreachable), as Istio refuses at once;
 *  - inbound.bpf.c, cgroup_skb/ingress on the node cgroup: the cgroup of the receiving
 *    socket is the pod; it drops (no reset is possible there), a backstop for a namespace
 *    the agent has not reached yet.
 * Rules, in order, for a TCP SYN (or, with --strict-udp drop, a UDP datagram):
 *  1. no inbound policy for the pod (bm_inpod): deliver;
 *  2. arrived on the pod's loopback: the pod talking to itself, deliver;
 *  3. the 4-tuple is in bm_attest: the local agent (it authorized it with the peer's verified
 *     identity) is delivered; a local mesh pod (its client cgroup named it) is the source;
 *  4. STRICT: anything but an attested mesh source is refused;
 *  5. AuthorizationPolicy: bm_authz by (pod, port, attested source pod or 0, source address).
 * A refusal is counted (bm_stats) and logged (bm_events BM_EV_DENY with the reason).
 */
#ifndef BM_INBOUND_H
#define BM_INBOUND_H

#include "pkt.h"

static __always_inline const struct bm_inpod *bm_inpod_get(__u32 pod_id, __be16 port)
{
	struct bm_inpod_key k = {.pod_id = pod_id, .port = port};
	const struct bm_inpod *v = bpf_map_lookup_elem(&bm_inpod, &k);

	if (v)
		return v;
	k.port = 0;
	return bpf_map_lookup_elem(&bm_inpod, &k);
}

static __always_inline void bm_attest_key_of(const struct bm_pkt *p, struct bm_attest_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->saddr, p->src, 16);
	__builtin_memcpy(k->daddr, p->dst, 16);
	k->sport = p->sport;
	k->dport = p->dport;
	k->family = p->family;
}

static __always_inline void bm_deny_event(const struct bm_pkt *p, __u32 pod_id, __u8 reason,
					  __u32 policy_id)
{
	struct bm_event *e = bpf_ringbuf_reserve(&bm_events, sizeof(*e), 0);

	if (!e) {
		bm_count(BM_ST_EVENTS_LOST);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->type = BM_EV_DENY;
	e->backend_id = pod_id;
	__builtin_memcpy(e->peer_addr, p->src, 16);
	e->family = p->family;
	e->port = p->dport;
	e->reason = reason;
	e->policy_id = policy_id;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int bm_conf_has(__u32 flag)
{
	__u32 zero = 0;
	struct bm_conf *c = bpf_map_lookup_elem(&bm_conf, &zero);

	return c && (c->flags & flag);
}

/*
 * The client side of attestation (sockops, at a connect's TCP_CONNECT_CB, before the SYN
 * leaves): a local mesh pod's connection to a local pod (by address, or any IPv6 link-local
 * one) is vouched for by 4-tuple, with the client pod read from its cgroup. laddr/raddr are
 * the client socket's own view (bm_sockkey, accel.h's key layout). 1 if it was written.
 */
static __always_inline int bm_attest_connect(const __u8 *laddr, const __u8 *raddr, __be16 lport,
					     __be16 rport, __u8 family, const struct bm_pod *client)
{
	struct bm_attest at = {.src_pod = client->pod_id, .flags = BM_AT_F_MESH};
	struct bm_addr_key dk = {};
	struct bm_attest_key k = {};

	if (!(client->flags & BM_POD_F_IN_MESH))
		return 0;
	__builtin_memcpy(dk.addr, raddr, 16);
	dk.family = family;
	if (!bpf_map_lookup_elem(&bm_podaddr, &dk) &&
	    !(family == BM_FAM_V6 && raddr[0] == 0xfe && (raddr[1] & 0xc0) == 0x80))
		return 0;
	__builtin_memcpy(k.saddr, laddr, 16);
	__builtin_memcpy(k.daddr, raddr, 16);
	k.sport = lport;
	k.dport = rport;
	k.family = family;
	if (bpf_map_update_elem(&bm_attest, &k, &at, BPF_ANY)) {
		bm_count(BM_ST_ATTEST_FULL);
		return 0;
	}
	return 1;
}

/* Outcome of bm_inbound_judge. */
enum bm_verdict { BM_V_DROP = 0, BM_V_DELIVER = 1 };

/* The verdict for a connection opening p delivered to local pod pod_id; on_lo: it arrived on
 * that pod's loopback. p must be a TCP SYN or a UDP datagram with ports (p->l4). */
static __always_inline int bm_inbound_judge(const struct bm_pkt *p, __u32 pod_id, int on_lo)
{
	struct bm_authz_key ak = {};
	struct bm_attest_key tk;
	const struct bm_inpod *in;
	const struct bm_attest *at;
	struct bm_authz *az;
	__u32 flags;

	in = bm_inpod_get(pod_id, p->dport);
	if (!in || !(in->flags & (BM_IN_F_STRICT | BM_IN_F_AUTHZ)) || on_lo)
		return BM_V_DELIVER;
	flags = in->flags;
	if (p->proto == BM_PROTO_UDP) {
		/* Istio captures no UDP either: plaintext UDP is delivered unless asked */
		if (!(flags & BM_IN_F_STRICT) || !bm_conf_has(BM_CONF_F_STRICT_UDP))
			return BM_V_DELIVER;
		bm_count(BM_ST_STRICT_UDP_DROP);
		bm_deny_event(p, pod_id, BM_DENY_STRICT_UDP, 0);
		return BM_V_DROP;
	}
	bm_attest_key_of(p, &tk);
	at = bpf_map_lookup_elem(&bm_attest, &tk);
	if (at && (at->flags & BM_AT_F_AGENT))
		return BM_V_DELIVER; /* the local agent, delivering what it authorized */
	if ((flags & BM_IN_F_STRICT) && !(at && (at->flags & BM_AT_F_MESH))) {
		bm_count(BM_ST_STRICT_DROP);
		bm_deny_event(p, pod_id, BM_DENY_STRICT, 0);
		return BM_V_DROP;
	}
	if (!(flags & BM_IN_F_AUTHZ))
		return BM_V_DELIVER;
	ak.prefixlen = BM_AUTHZ_FIXED_BITS + 128;
	ak.pod_id = pod_id;
	ak.port = p->dport;
	ak.src_pod = at ? at->src_pod : 0;
	if (p->family == BM_FAM_V4) {
		ak.addr[10] = 0xff;
		ak.addr[11] = 0xff;
		__builtin_memcpy(&ak.addr[12], p->src, 4);
	} else {
		__builtin_memcpy(ak.addr, p->src, 16);
	}
	az = bpf_map_lookup_elem(&bm_authz, &ak);
	if (!az) {
		ak.port = 0;
		az = bpf_map_lookup_elem(&bm_authz, &ak);
	}
	if (az && az->verdict == BM_AUTHZ_DENY) {
		bm_count(BM_ST_AUTHZ_DENY);
		bm_deny_event(p, pod_id, BM_DENY_AUTHZ, az->policy_id);
		return BM_V_DROP;
	}
	return BM_V_DELIVER;
}

/* A packet whose transport header could not be found (an IPv6 header chain too long to
 * walk): refused where plaintext is judged at all, since it may hide a SYN. */
static __always_inline int bm_inbound_opaque(const struct bm_pkt *p, __u32 pod_id)
{
	const struct bm_inpod *in = bm_inpod_get(pod_id, 0);

	if (!in || !in->flags)
		return BM_V_DELIVER;
	bm_count(BM_ST_STRICT_DROP);
	bm_deny_event(p, pod_id, BM_DENY_STRICT, 0);
	return BM_V_DROP;
}

#endif /* BM_INBOUND_H */
