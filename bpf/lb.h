/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb.h: the load-balancing decision, as inline functions over plain structs and the maps in
 * maps.h: the client's route (first match wins, bm_route_first), a weighted subset, a backend.
 * The socket hooks (sock_lb.bpf.c) are thin wrappers over bm_xlate(); the test program
 * (tests/bpf/lb_test.bpf.c) drives the same functions with bpf_prog_test_run_opts, because
 * cgroup sock_addr programs cannot be test-run.
 */
#ifndef BM_LB_H
#define BM_LB_H

#include "maps.h"

/* Uniform integer in [0, n), exactly: reject the top 2^32 mod n values so every residue is
 * equally likely. A retry happens with probability < n / 2^32; four are plenty. */
static __always_inline __u32 bm_uniform(__u32 n)
{
	__u32 threshold, r = 0;
	int i;

	if (n <= 1)
		return 0;
	threshold = (0U - n) % n;
	for (i = 0; i < 4; i++) {
		r = bpf_get_prandom_u32();
		if (r >= threshold)
			break;
	}
	return r % n;
}

/*
 * Index of the destination that owns point x of [0, total): the first i with x < cum[i].
 * Istio's share is weight / sum(weights); each destination owns `weight` consecutive points.
 * Returns -1 if x is outside the route (can't happen for a well-formed route).
 */
static __always_inline int bm_route_index(const struct bm_route *r, __u32 x)
{
	int i;

	for (i = 0; i < BM_MAX_ROUTE_DESTS; i++) {
		if ((__u32)i >= r->n)
			break;
		if (x < r->cum[i])
			return i;
	}
	return -1;
}

/* Envoy's LEAST_REQUEST with the default choice_count 2: two random picks, fewer active
 * connections wins, ties go to the first. */
static __always_inline __u32 bm_pick_least(__u32 first, __u32 n)
{
	__u32 a = first + bm_uniform(n), b = first + bm_uniform(n);
	__u32 *ida = bpf_map_lookup_elem(&bm_slot, &a);
	__u32 *idb = bpf_map_lookup_elem(&bm_slot, &b);
	struct bm_bstate *sa, *sb;

	if (!ida || !idb)
		return a;
	sa = bpf_map_lookup_elem(&bm_bstate, ida);
	sb = bpf_map_lookup_elem(&bm_bstate, idb);
	if (sa && sb && sb->active < sa->active)
		return b;
	return a;
}

/* Pick a slot of subset s (id sid) with policy lb; hash is the client's source hash. */
static __always_inline int bm_subset_slot(const struct bm_subset *s, __u32 sid, __u32 lb,
					  __u64 hash, __u32 *slot)
{
	__u32 *cursor;

	if (s->n == 0)
		return -1;
	switch (lb) {
	case BM_LB_ROUND_ROBIN:
		cursor = bpf_map_lookup_elem(&bm_rr, &sid);
		*slot = s->first_slot + (cursor ? __sync_fetch_and_add(cursor, 1) % s->n : 0);
		break;
	case BM_LB_RANDOM:
		*slot = s->first_slot + bm_uniform(s->n);
		break;
	case BM_LB_HASH_SRC_IP:
		*slot = s->first_slot + (__u32)(hash % s->n);
		break;
	default:
		*slot = bm_pick_least(s->first_slot, s->n);
		break;
	}
	return 0;
}

/* The client, as the kernel attributes it: its cgroup decides mesh membership. */
struct bm_client {
	__u64 cgroup_id;
	__u32 pod_id; /* 0 = not a known pod */
	int in_mesh;
	__u64 hash; /* of its pod address, for consistentHash.useSourceIp */
};

static __always_inline __u64 bm_mix64(__u64 x)
{
	/* splitmix64 finalizer: cheap, and spreads adjacent pod addresses apart. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static __always_inline void bm_client_load(struct bm_client *c, __u64 cgroup_id)
{
	struct bm_pod *p = bpf_map_lookup_elem(&bm_pod, &cgroup_id);
	__u64 none = 0;

	c->cgroup_id = cgroup_id;
	if (!p) {
		/* not a pod cgroup the agent knows: entry 0 says whether such processes (a plain
		 * VM's services, or processes in the node cgroup itself) are in the mesh */
		p = bpf_map_lookup_elem(&bm_pod, &none);
		c->in_mesh = p && (p->flags & BM_POD_F_IN_MESH);
		c->hash = bm_mix64(cgroup_id);
		return;
	}
	c->in_mesh = p->flags & BM_POD_F_IN_MESH;
	c->pod_id = p->pod_id;
	c->hash = bm_mix64(((__u64)p->addr4[0] << 24 | (__u64)p->addr4[1] << 16 |
			    (__u64)p->addr4[2] << 8 | p->addr4[3]) ^
			   ((__u64)p->addr6[12] << 56 | (__u64)p->addr6[13] << 48 |
			    (__u64)p->addr6[14] << 40 | (__u64)p->addr6[15] << 32));
}

/* What a translation decided. */
struct bm_pick {
	__u32 svc_id;
	__u32 subset_id;
	__u32 backend_id;
	__u32 sub_flags;  /* BM_SUB_F_* that apply to this connection (mesh clients only) */
	__u32 pool_key;	  /* connection pool to count it in, 0 = none */
	__u32 timeout_ms; /* connect timeout to enforce, 0 = none */
	struct bm_backend be;
};

static __always_inline int bm_ejected(__u32 backend_id)
{
	struct bm_health *h = bpf_map_lookup_elem(&bm_health, &backend_id);

	return h && h->od.ejected;
}

struct bm_probe {
	__u32 first, n, start;
	__u32 slot, backend_id;
	int found;
};

/* One step of the walk over a subset for a host that is not ejected. */
static long bm_probe_step(__u32 i, void *arg)
{
	struct bm_probe *p = arg;
	__u32 slot = p->first + (p->start + i) % p->n;
	__u32 *bid = bpf_map_lookup_elem(&bm_slot, &slot);

	if (!bid || !*bid || bm_ejected(*bid))
		return 0;
	p->slot = slot;
	p->backend_id = *bid;
	p->found = 1;
	return 1;
}

/*
 * The picked host is ejected: take the next one in the subset that is not. If every host is
 * ejected, Envoy's panic mode decides: below minHealthPercent (0 = never, Istio's default) it
 * balances over all hosts anyway, else there is no healthy upstream.
 * Returns 0 with the slot and backend id updated, or -1.
 */
static __always_inline int bm_skip_ejected(const struct bm_subset *s, __u32 sid, __u32 *slot,
					   __u32 *bid)
{
	struct bm_probe p = {.first = s->first_slot, .n = s->n};
	struct bm_policy *pol;

	p.start = *slot - s->first_slot + 1;
	bm_count(BM_ST_SKIPPED_EJECTED);
	if (s->n > 1)
		bpf_loop(s->n - 1, bm_probe_step, &p, 0);
	if (p.found) {
		*slot = p.slot;
		*bid = p.backend_id;
		return 0;
	}
	pol = bpf_map_lookup_elem(&bm_policy, &sid);
	return pol && bm_od_panic(0, s->n, &pol->od) ? 0 : -1;
}

/* connectionPool: the client's open connections to this subset, against the limit. */
static __always_inline int bm_pool_check(const struct bm_client *c, __u32 sid,
					 const struct bm_subset *s, struct bm_pick *out)
{
	struct bm_policy *pol = bpf_map_lookup_elem(&bm_policy, &sid);
	struct bm_cpool_key k = {.cgroup_id = c->cgroup_id};
	__s32 *cnt;

	if (!pol)
		return 0;
	out->timeout_ms = (s->flags & BM_SUB_F_TIMEOUT) ? pol->connect_timeout_ms : 0;
	if (!(s->flags & BM_SUB_F_POOL) || !pol->max_conns)
		return 0;
	k.pool_key = pol->pool_key;
	out->pool_key = pol->pool_key;
	cnt = bpf_map_lookup_elem(&bm_cpool, &k);
	return cnt && *cnt >= (__s32)pol->max_conns ? -1 : 0;
}

/*
 * Which of a port's routes a client takes (Istio: the first whose match holds). The agent
 * left in rl only routes whose `port` and `destinationSubnets` hold for this service entry, so
 * what is decided here is the client: route i holds when bit i of rl->any_src (every mesh
 * client) or of pod_bits (the client pod's sourceLabels/sourceNamespace, bm_rpod) is set.
 * Returns the index of the first route that holds, or -1 when none does.
 */
static __always_inline int bm_route_first(const struct bm_rlist *rl, __u32 pod_bits)
{
	__u32 bits = rl->any_src | pod_bits;
	int i;

	for (i = 0; i < BM_MAX_SVC_ROUTES; i++) {
		if ((__u32)i >= rl->n)
			break;
		if (bits & (1U << i))
			return i;
	}
	return -1;
}

/* The routes of list rlist_id whose source conditions hold for pod pod_id (0: not a known
 * pod, so none do). */
static __always_inline __u32 bm_pod_bits(__u32 rlist_id, __u32 pod_id)
{
	struct bm_rpod_key k = {.rlist_id = rlist_id, .pod_id = pod_id};
	__u32 *b;

	if (!pod_id)
		return 0;
	b = bpf_map_lookup_elem(&bm_rpod, &k);
	return b ? *b : 0;
}

/*
 * The route in force for mesh client c on service svc: 1 with *route_id set, 0 when no route
 * applies (every endpoint: no VirtualService route, or none of the port's routes holds for
 * this client), -1 when the route list is missing (cannot happen while svc names it).
 */
static __always_inline int bm_svc_route(const struct bm_svc *svc, const struct bm_client *c,
					__u32 *route_id)
{
	struct bm_rlist *rl;
	int idx;

	if (svc->flags & BM_SVC_F_HAS_ROUTE) {
		*route_id = svc->route_id;
		return 1;
	}
	if (!(svc->flags & BM_SVC_F_RLIST))
		return 0;
	rl = bpf_map_lookup_elem(&bm_rlist, &svc->rlist_id);
	if (!rl)
		return -1;
	idx = bm_route_first(rl, bm_pod_bits(svc->rlist_id, c->pod_id));
	if (idx < 0 || idx >= BM_MAX_SVC_ROUTES) {
		bm_count(BM_ST_NO_ROUTE_MATCH);
		return 0;
	}
	*route_id = rl->route_id[idx];
	return 1;
}

/*
 * The whole decision for one connect/sendmsg to service entry svcp (bm_svc's, looked up by
 * the caller; NULL: not a service): the client's route (mesh clients; first match wins),
 * weighted subset, backend by the subset's policy. Clients outside the mesh get kube-proxy's
 * even random spread over all endpoints and no mesh features.
 */
static __always_inline int bm_xlate_svc(const struct bm_svc *svcp, const struct bm_client *c,
					struct bm_pick *out)
{
	struct bm_svc svc;
	struct bm_route *r;
	struct bm_backend *be;
	__u32 sid, lb, slot, *bid, picked, route_id = 0;
	struct bm_subset *s;
	int idx, routed;

	if (!svcp)
		return BM_X_MISS;
	/* One copy: the ids below are immutable while any service entry can name them. */
	svc = *svcp;
	out->svc_id = svc.svc_id;
	sid = svc.all_subset;
	routed = c->in_mesh ? bm_svc_route(&svc, c, &route_id) : 0;
	if (routed < 0)
		return BM_X_NOBACKEND;
	if (routed) {
		r = bpf_map_lookup_elem(&bm_route, &route_id);
		if (!r || r->total == 0)
			return BM_X_NOBACKEND;
		idx = bm_route_index(r, bm_uniform(r->total));
		if (idx < 0 || idx >= BM_MAX_ROUTE_DESTS)
			return BM_X_NOBACKEND;
		sid = r->subset[idx];
	}
	s = bpf_map_lookup_elem(&bm_subset, &sid);
	if (!s)
		return BM_X_NOBACKEND;
	lb = c->in_mesh ? s->lb : BM_LB_RANDOM;
	if (bm_subset_slot(s, sid, lb, c->hash, &slot) < 0)
		return BM_X_NOBACKEND;
	bid = bpf_map_lookup_elem(&bm_slot, &slot);
	if (!bid || *bid == 0)
		return BM_X_NOBACKEND;
	picked = *bid;
	if (c->in_mesh && s->flags) {
		out->sub_flags = s->flags;
		if ((s->flags & BM_SUB_F_OUTLIER) && bm_ejected(picked) &&
		    bm_skip_ejected(s, sid, &slot, &picked))
			return BM_X_NOBACKEND;
		if ((s->flags & (BM_SUB_F_POOL | BM_SUB_F_TIMEOUT)) &&
		    bm_pool_check(c, sid, s, out))
			return BM_X_OVERFLOW;
	}
	be = bpf_map_lookup_elem(&bm_backend, &picked);
	if (!be || !(be->flags & BM_BE_F_USED))
		return BM_X_NOBACKEND;
	out->subset_id = sid;
	out->backend_id = picked;
	out->be = *be;
	return BM_X_OK;
}

/* The same from the address: service lookup first. */
static __always_inline int bm_xlate(const struct bm_svc_key *key, const struct bm_client *c,
				    struct bm_pick *out)
{
	return bm_xlate_svc(bpf_map_lookup_elem(&bm_svc, key), c, out);
}

#endif /* BM_LB_H */
