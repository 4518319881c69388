/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * conn.h: what happens to a connection after sock_lb.bpf.c chose its backend, as inline
 * functions over struct bm_sock and the maps, so that a test program can drive them
 * (tests/bpf/conn_test.bpf.c: sockops programs cannot be test-run). sockops.bpf.c reads the
 * socket and calls these at the three moments of a connection:
 *  - bm_conn_connect(): the SYN leaves. Active connections per backend (LEAST_REQUEST) and per
 *    (client pod, subset) (connectionPool.tcp.maxConnections) are taken here, not in connect4,
 *    because a connect can still fail between the two;
 *  - bm_conn_established(): counted as a success (200) for outlier detection, opened in the
 *    traffic counters, an `open` flow event;
 * A connection to the agent's HTTP path (BM_CONN_F_L7) has no backend yet: the agent counts
 * and logs its requests, so it is in neither the traffic counters nor the flow log here.
 *  - bm_conn_closed(): TCP_CLOSE, whichever way it got there (FIN, RST, refused, killed). From
 *    SYN_SENT the connect failed: refused is 503, timed out (connectTimeout, enforced with
 *    TCP_USER_TIMEOUT while in SYN_SENT) 504, exactly as Envoy counts TCP upstream failures,
 *    and a `fail` event; else the payload bytes and a `close` event. A reset before any reply
 *    is counted (bm_stats) but not scored, for the same reason. An ejection it causes is an
 *    `eject` event.
 */
#ifndef BM_CONN_H
#define BM_CONN_H

#include "lb.h"

/* TCP states (include/net/tcp_states.h), as sockops' state callback reports them */
#define BM_TCP_ESTABLISHED 1
#define BM_TCP_SYN_SENT	   2
#define BM_TCP_FIN_WAIT1   4
#define BM_TCP_FIN_WAIT2   5
#define BM_TCP_TIME_WAIT   6
#define BM_TCP_CLOSE	   7
#define BM_TCP_CLOSE_WAIT  8
#define BM_TCP_LAST_ACK	   9
#define BM_TCP_CLOSING	   11

/* One flow log event; dropped (and counted) when nobody reads and the buffer is full. */
static __always_inline void bm_event(const struct bm_sock *st, __u32 type, __u64 cookie, __u64 sent,
				     __u64 recv, __u64 duration_ns)
{
	struct bm_event *e = bpf_ringbuf_reserve(&bm_events, sizeof(*e), 0);

	if (!e) {
		bm_count(BM_ST_EVENTS_LOST);
		return;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->type = type;
	e->src_pod = st->src_pod;
	e->svc_id = st->svc_id;
	e->backend_id = st->backend_id;
	e->bytes_sent = sent;
	e->bytes_received = recv;
	e->duration_ns = duration_ns;
	e->cookie = cookie;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void bm_active_add(__u32 backend_id, int delta)
{
	struct bm_bstate *bs = backend_id ? bpf_map_lookup_elem(&bm_bstate, &backend_id) : 0;

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
static __always_inline int bm_record(const struct bm_sock *st, __u32 code)
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
		return 0;
	pol = bpf_map_lookup_elem(&bm_policy, &sid);
	sub = bpf_map_lookup_elem(&bm_subset, &sid);
	if (!pol || !sub)
		return 0;
	od = pol->od;
	n = sub->n;
	h = bpf_map_lookup_elem(&bm_health, &bid);
	if (!h) {
		if (code < 500)
			return 0; /* a success on a fresh host changes nothing */
		bpf_map_update_elem(&bm_health, &bid, &fresh, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&bm_health, &bid);
		if (!h)
			return 0;
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
	return r;
}

enum bm_tr_event { BM_TR_OPEN, BM_TR_CLOSE, BM_TR_FAIL };

/* bytes_acked/bytes_received count sequence space: the FINs' 1s too, and an active socket's
 * SYN (a passive one's SYN-ACK is acked before bytes_acked counts). Take them out by the state
 * the socket closed from, so these are payload bytes, what the application wrote (sent) and
 * read (got). syn: 1 for the connecting side, 0 for the accepting side. */
static __always_inline void bm_payload(__u32 from, __u64 acked, __u64 rcvd, int syn,
				       __u64 *sent, __u64 *got)
{
	int our_fin_acked = from == BM_TCP_FIN_WAIT2 || from == BM_TCP_CLOSING ||
			    from == BM_TCP_LAST_ACK || from == BM_TCP_TIME_WAIT;
	int peer_fin = from == BM_TCP_CLOSE_WAIT || from == BM_TCP_LAST_ACK ||
		       from == BM_TCP_CLOSING || from == BM_TCP_FIN_WAIT2 || from == BM_TCP_TIME_WAIT;

	*sent = acked - (acked >= (__u64)(syn + our_fin_acked) ? syn + our_fin_acked : acked);
	*got = rcvd - (rcvd >= (__u64)peer_fin ? peer_fin : rcvd);
}

/* Count one connection event (and at close its bytes) for (client pod, service, backend). */
/* from/acked/rcvd: skops->args[0], bytes_acked, bytes_received, read once by the caller (the
 * verifier rejects ctx reads through a pointer the compiler computed for several of them). */
/* xsent/xrcvd: payload that bypassed TCP (same-node acceleration), which acked/rcvd miss. */
static __always_inline struct bm_traffic bm_traffic_add(const struct bm_sock *st, int ev,
							__u32 from, __u64 acked, __u64 rcvd,
							__u64 xsent, __u64 xrcvd)
{
	struct bm_traffic_key k = {
	    .src_pod = st->src_pod, .svc_id = st->svc_id, .backend_id = st->backend_id};
	struct bm_traffic d = {}, zero = {}, *t;

	if (ev == BM_TR_OPEN) {
		d.opened = 1;
	} else if (ev == BM_TR_FAIL) {
		d.connect_failed = 1;
	} else {
		d.closed = 1;
		bm_payload(from, acked, rcvd, 1, &d.bytes_sent, &d.bytes_received);
		d.bytes_sent += xsent;
		d.bytes_received += xrcvd;
	}
	t = bpf_map_lookup_elem(&bm_traffic, &k);
	if (!t) {
		bpf_map_update_elem(&bm_traffic, &k, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&bm_traffic, &k);
	}
	if (t) { /* per-CPU value: plain adds are safe */
		t->opened += d.opened;
		t->closed += d.closed;
		t->connect_failed += d.connect_failed;
		t->bytes_sent += d.bytes_sent;
		t->bytes_received += d.bytes_received;
	}
	return d;
}



/* The SYN leaves: take the connection's slots. 1 when it is to be watched (state callback). */
static __always_inline int bm_conn_connect(struct bm_sock *st, __u64 now)
{
	if (st->counted)
		return 0;
	st->counted = 1;
	st->connect_ns = now;
	bm_active_add(st->backend_id, 1);
	bm_pool_add(st, 1);
	return 1;
}

static __always_inline void bm_conn_established(struct bm_sock *st, __u64 cookie, __u64 now)
{
	if (st->counted != 1 || (st->sub_flags & BM_CONN_F_L7))
		return;
	bm_traffic_add(st, BM_TR_OPEN, 0, 0, 0, 0, 0);
	st->established_ns = now;
	bm_event(st, BM_EV_OPEN, cookie, 0, 0, 0);
	bm_record(st, 200); /* a success never ejects */
}

/*
 * TCP_CLOSE from state `from`: release the slots, count, score, log. acked/rcvd are the
 * socket's bytes_acked/bytes_received, xsent/xrcvd what same-node acceleration carried.
 * Returns 1 when the connection was one of ours (its bm_sock record may go).
 */
static __always_inline int bm_conn_closed(struct bm_sock *st, __u64 cookie, __u32 from,
					  __u64 acked, __u64 rcvd, __u64 xsent, __u64 xrcvd,
					  __u64 now)
{
	__u64 elapsed_ms;
	int r;

	if (st->counted != 1)
		return 0;
	st->counted = 2; /* released: never counted again */
	bm_active_add(st->backend_id, -1);
	bm_pool_add(st, -1);
	if (st->sub_flags & BM_CONN_F_L7)
		return 1;
	if (from == BM_TCP_SYN_SENT) {
		/* The connect failed: timed out if it lasted (nearly) the connect timeout */
		bm_count(BM_ST_CONNECT_FAIL);
		bm_traffic_add(st, BM_TR_FAIL, from, 0, 0, 0, 0);
		bm_event(st, BM_EV_FAIL, cookie, 0, 0, now - st->connect_ns);
		elapsed_ms = (now - st->connect_ns) / 1000000;
		r = bm_record(st, st->timeout_ms && elapsed_ms * 10 >= (__u64)st->timeout_ms * 9
				      ? 504
				      : 503);
		if (r == BM_OD_EJECTED)
			bm_event(st, BM_EV_EJECT, cookie, 0, 0, 0);
		return 1;
	}
	struct bm_traffic d = bm_traffic_add(st, BM_TR_CLOSE, from, acked, rcvd, xsent, xrcvd);

	bm_event(st, BM_EV_CLOSE, cookie, d.bytes_sent, d.bytes_received,
		 now - st->established_ns);
	/* Straight from ESTABLISHED to CLOSE, skipping the FIN states, is a reset; before any
	 * byte came back it is counted, not scored: Envoy's TCP mapping (SEMANTICS.md) already
	 * scored the connection a success when established. */
	if (from == BM_TCP_ESTABLISHED && rcvd == 0 && xrcvd == 0)
		bm_count(BM_ST_RESET_NO_REPLY);
	return 1;
}

#endif /* BM_CONN_H */
