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
 *  - Same-node acceleration (accel.h): established pod-to-pod sockets go into bm_sockhash;
 *    bytes that bypassed TCP are added to the connection's counts at close.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lb.h"
#include "accel.h"
#include "inbound.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TCP_ESTABLISHED_  1
#define TCP_SYN_SENT_	  2
#define TCP_CLOSE_	  7
#define SOL_TCP_	  6
#define TCP_USER_TIMEOUT_ 18

/* A local pod's connect about to send its SYN: vouch for it if it goes to a local pod. */
static __always_inline int bm_attest_put(struct bpf_sock_ops *skops)
{
	__u64 cg = bpf_get_current_cgroup_id(); /* the connecting process: connect() context */
	struct bm_sockraw raw = {};
	struct bm_sockkey key;
	struct bm_pod *pod = bpf_map_lookup_elem(&bm_pod, &cg);

	if (!pod)
		return 0;
	BM_SOCKRAW_READ(&raw, skops);
	if (!bm_sockkey_of(&raw, &key))
		return 0;
	return bm_attest_connect(key.laddr, key.raddr, key.lport, key.rport, key.family, pod);
}

static __always_inline void bm_attest_del(const struct bm_sockkey *key)
{
	struct bm_attest_key k = {};

	__builtin_memcpy(k.saddr, key->laddr, 16);
	__builtin_memcpy(k.daddr, key->raddr, 16);
	k.sport = key->lport;
	k.dport = key->rport;
	k.family = key->family;
	bpf_map_delete_elem(&bm_attest, &k);
}

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
		/* bytes_acked/bytes_received count sequence space: the SYN's and the FINs' 1s
		 * too. Take them out by the state the socket closed from, so these are payload
		 * bytes, what the application wrote and read. */
		int our_fin_acked = from == TCP_FIN_WAIT2 || from == TCP_CLOSING ||
				    from == TCP_LAST_ACK || from == TCP_TIME_WAIT;
		int peer_fin = from == TCP_CLOSE_WAIT || from == TCP_LAST_ACK ||
			       from == TCP_CLOSING || from == TCP_FIN_WAIT2 ||
			       from == TCP_TIME_WAIT;

		d.closed = 1;
		d.bytes_sent =
		    acked - (acked >= (__u64)(1 + our_fin_acked) ? 1 + our_fin_acked : acked);
		d.bytes_received = rcvd - (rcvd >= (__u64)peer_fin ? peer_fin : rcvd);
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

/* The client's address as the agent will see it on accept: a v4-mapped IPv6 socket's too. */
static __always_inline void bm_orig_key(struct bpf_sock_ops *skops, struct bm_orig_key *k)
{
	/* both read unconditionally: a conditional read becomes ctx pointer arithmetic */
	__u32 a4 = skops->local_ip4, a6 = skops->local_ip6[3], fam = skops->family;
	__u32 port = skops->local_port; /* host order in sock_ops */
	__u32 a;

	asm volatile("" : "+r"(a4), "+r"(a6)); /* keep both loads as loads */
	a = fam == 10 /* AF_INET6 */ ? a6 : a4;

	__builtin_memcpy(k->addr, &a, 4);
	k->port = bpf_htons((__u16)port);
}

/* A tunnelled connect: tell the agent where it was really going (bm_orig). */
static __always_inline void bm_orig_put(struct bpf_sock_ops *skops, const struct bm_sock *st)
{
	struct bm_orig_key k = {};
	struct bm_orig o = {};
	struct bm_backend *be = 0;
	__u32 bid = st->backend_id;

	bm_orig_key(skops, &k);
	if (bid)
		be = bpf_map_lookup_elem(&bm_backend, &bid);
	if (be) {
		__builtin_memcpy(o.addr, be->addr, 4);
		o.port = be->port;
	} else {
		__builtin_memcpy(o.addr, st->orig_addr, 4);
		o.port = st->orig_port;
	}
	o.backend_id = bid;
	o.svc_id = st->svc_id;
	o.src_pod = st->src_pod;
	bpf_map_update_elem(&bm_orig, &k, &o, BPF_ANY);
}

static __always_inline void bm_set_user_timeout(struct bpf_sock_ops *skops, int ms)
{
	bpf_setsockopt(skops, SOL_TCP_, TCP_USER_TIMEOUT_, &ms, sizeof(ms));
}

SEC("sockops")
int bm_sockops(struct bpf_sock_ops *skops)
{
	struct bm_sockraw raw = {};
	__u64 cookie, elapsed_ms;
	struct bm_sockkey key;
	struct bm_sock *st;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (bm_attest_put(skops)) /* its entry goes at TCP_CLOSE */
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							     BPF_SOCK_OPS_STATE_CB_FLAG);
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
		if (st->sub_flags & BM_CONN_F_TUNNEL)
			bm_orig_put(skops, st);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						     BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		BM_SOCKRAW_READ(&raw, skops);
		if (bm_sockkey_of(&raw, &key))
			bm_accel_server(skops, &key);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		BM_SOCKRAW_READ(&raw, skops);
		if (bm_sockkey_of(&raw, &key) && bm_accel_client(skops, &key))
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							     BPF_SOCK_OPS_STATE_CB_FLAG);
		cookie = bpf_get_socket_cookie(skops);
		st = bpf_map_lookup_elem(&bm_sock, &cookie);
		if (!st || st->counted != 1)
			break;
		if (st->timeout_ms)
			bm_set_user_timeout(skops, 0); /* the connect timeout ends here */
		bm_traffic_add(st, BM_TR_OPEN, 0, 0, 0, 0, 0);
		st->established_ns = bpf_ktime_get_ns();
		bm_event(st, BM_EV_OPEN, bpf_get_socket_cookie(skops), 0, 0, 0);
		bm_record(st, 200);
		break;
	case BPF_SOCK_OPS_STATE_CB: {
		__u32 from = skops->args[0], to = skops->args[1];
		__u64 acked = skops->bytes_acked, rcvd = skops->bytes_received, xsent, xrcvd;

		if (to != TCP_CLOSE_)
			break;
		BM_SOCKRAW_READ(&raw, skops);
		if (bm_sockkey_of(&raw, &key)) {
			bm_accel_close(&key, &xsent, &xrcvd);
			bm_attest_del(&key);
		} else {
			xsent = xrcvd = 0;
		}
		cookie = bpf_get_socket_cookie(skops);
		st = bpf_map_lookup_elem(&bm_sock, &cookie);
		if (!st || st->counted != 1)
			break;
		st->counted = 2; /* released: never counted again */
		bm_active_add(st->backend_id, -1);
		bm_pool_add(st, -1);
		if (from == TCP_SYN_SENT_) {
			/* The connect failed: timed out if it lasted (nearly) the connect timeout
			 */
			bm_count(BM_ST_CONNECT_FAIL);
			bm_traffic_add(st, BM_TR_FAIL, from, 0, 0, 0, 0);
			elapsed_ms = (bpf_ktime_get_ns() - st->connect_ns) / 1000000;
			bm_record(st, st->timeout_ms && elapsed_ms * 10 >= (__u64)st->timeout_ms * 9
					  ? 504
					  : 503);
		} else {
			struct bm_traffic d =
			    bm_traffic_add(st, BM_TR_CLOSE, from, acked, rcvd, xsent, xrcvd);

			bm_event(st, BM_EV_CLOSE, cookie, d.bytes_sent, d.bytes_received,
				 bpf_ktime_get_ns() - st->established_ns);
			/* Straight from ESTABLISHED to CLOSE, skipping the FIN states, is a reset;
			 * before any byte came back it is counted, not scored: Envoy's TCP mapping
			 * (SEMANTICS.md) already scored the connection a success when established.
			 */
			if (from == TCP_ESTABLISHED_ && rcvd == 0 && xrcvd == 0)
				bm_count(BM_ST_RESET_NO_REPLY);
		}
		if (st->sub_flags & BM_CONN_F_TUNNEL) {
			struct bm_orig_key ok = {};

			bm_orig_key(skops, &ok);
			bpf_map_delete_elem(&bm_orig, &ok); /* if the agent has not taken it */
		}
		bpf_map_delete_elem(&bm_sock, &cookie); /* the connection is over */
		break;
	}
	}
	return 1;
}
