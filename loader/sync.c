// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sync.c: see sync.h. The rule that makes updates atomic: ids that a live bm_svc entry names
 * are never rewritten. A changed service gets fresh subset/route ids and slot ranges, written
 * completely, and only then is its bm_svc entry replaced (one map update, RCU-swapped by the
 * kernel). The old ids wait BM_ID_QUARANTINE_MS before reuse, far longer than any program run
 * that could have read them. Backend ids are stable per (address, port) while referenced, so
 * per-backend state (active connections, health) survives config changes.
 *
 * A port whose route depends on the client gets a route list (bm_rlist) under a fresh id and,
 * for each local pod some route holds for by source, its bits in bm_rpod under that id: both
 * written before the flip, released together after the quarantine. The route lists' bits are
 * kept here per service (every mesh pod's), so a pod that becomes local later (sync_set_pods)
 * gets its entries before its cgroup is in bm_pod.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include "datapath.h"
#include "htab.h"
#include "metrics.h"
#include "sync.h"
#include "log.h"

/* ---------- id allocator (bitmap) ---------- */

struct idalloc {
	uint8_t *used; /* one byte per id: simple, and the sizes are at most a few MB */
	uint32_t max, cursor, nused;
};

static void ida_init(struct idalloc *a, uint32_t max)
{
	a->used = calloc(max, 1);
	if (!a->used)
		abort();
	a->used[0] = 1; /* id 0 means "none" everywhere */
	a->max = max;
	a->cursor = 1;
	a->nused = 1;
}

static uint32_t ida_get(struct idalloc *a)
{
	for (uint32_t n = 0; n < a->max; n++) {
		uint32_t id = a->cursor;

		a->cursor = a->cursor + 1 >= a->max ? 1 : a->cursor + 1;
		if (!a->used[id]) {
			a->used[id] = 1;
			a->nused++;
			return id;
		}
	}
	return 0;
}

static void ida_mark(struct idalloc *a, uint32_t id)
{
	if (id && id < a->max && !a->used[id]) {
		a->used[id] = 1;
		a->nused++;
	}
}

static void ida_put(struct idalloc *a, uint32_t id)
{
	if (id && id < a->max && a->used[id]) {
		a->used[id] = 0;
		a->nused--;
	}
}

/* ---------- slot ranges: first fit over a sorted free list ---------- */

struct range {
	uint32_t start, len;
};

struct slots {
	struct range *free;
	int n, cap;
	uint32_t nfree;
};

static void slots_init(struct slots *s, uint32_t total)
{
	s->cap = 64;
	s->free = calloc(s->cap, sizeof(*s->free));
	if (!s->free)
		abort();
	/* slot 0 is never handed out, so a zero first_slot can't alias a real range */
	s->free[0] = (struct range){1, total - 1};
	s->n = 1;
	s->nfree = total - 1;
}

static int slots_get(struct slots *s, uint32_t len, uint32_t *start)
{
	if (len == 0) {
		*start = 0;
		return 0;
	}
	for (int i = 0; i < s->n; i++) {
		if (s->free[i].len < len)
			continue;
		*start = s->free[i].start;
		s->free[i].start += len;
		s->free[i].len -= len;
		s->nfree -= len;
		if (!s->free[i].len) {
			memmove(&s->free[i], &s->free[i + 1], (s->n - i - 1) * sizeof(*s->free));
			s->n--;
		}
		return 0;
	}
	return -ENOSPC;
}

static void slots_insert_at(struct slots *s, int i, struct range r)
{
	if (s->n == s->cap) {
		s->cap *= 2;
		s->free = realloc(s->free, s->cap * sizeof(*s->free));
		if (!s->free)
			abort();
	}
	memmove(&s->free[i + 1], &s->free[i], (s->n - i) * sizeof(*s->free));
	s->free[i] = r;
	s->n++;
}

static void slots_put(struct slots *s, uint32_t start, uint32_t len)
{
	int i = 0;

	if (!len)
		return;
	while (i < s->n && s->free[i].start < start)
		i++;
	s->nfree += len;
	/* merge with the previous and/or next free range */
	if (i > 0 && s->free[i - 1].start + s->free[i - 1].len == start) {
		s->free[i - 1].len += len;
		if (i < s->n && start + len == s->free[i].start) {
			s->free[i - 1].len += s->free[i].len;
			memmove(&s->free[i], &s->free[i + 1], (s->n - i - 1) * sizeof(*s->free));
			s->n--;
		}
		return;
	}
	if (i < s->n && start + len == s->free[i].start) {
		s->free[i].start = start;
		s->free[i].len += len;
		return;
	}
	slots_insert_at(s, i, (struct range){start, len});
}

/* Take [start, start+len) out of the free list (recovering pinned state). */
static void slots_mark(struct slots *s, uint32_t start, uint32_t len)
{
	for (int i = 0; i < s->n && len; i++) {
		struct range r = s->free[i];

		if (start < r.start || start + len > r.start + r.len)
			continue;
		s->nfree -= len;
		memmove(&s->free[i], &s->free[i + 1], (s->n - i - 1) * sizeof(*s->free));
		s->n--;
		if (start > r.start)
			slots_insert_at(s, i++, (struct range){r.start, start - r.start});
		if (start + len < r.start + r.len)
			slots_insert_at(s, i,
					(struct range){start + len, r.start + r.len - start - len});
		return;
	}
}

/* ---------- the sync state ---------- */

struct sub_rec {
	uint32_t id, first, n;
	uint32_t nref; /* slots written so far, each holding a backend reference */
};

/* What a live bm_svc entry owns. */
struct svc_rec {
	struct bm_svc_key key;
	struct bm_svc val;
	uint64_t content;
	struct sub_rec *subs; /* its "all" subset and every route destination's */
	int nsubs, capsubs;
	uint32_t routes[BM_MAX_SVC_ROUTES]; /* bm_route ids */
	int nroutes;
	uint32_t rlist;		    /* bm_rlist id, 0 = none */
	struct rs_podbits *podbits; /* that list's bits of every mesh pod (local ones written) */
	int npodbits;
	bool podbits_unknown; /* recovered from the maps: bm_rpod is scanned on release */
	int seen;
	int live;
};

enum q_kind { Q_SUBSET, Q_ROUTE, Q_SLOTS, Q_BACKEND, Q_RLIST };

struct qent {
	enum q_kind kind;
	uint32_t id, len;
	uint64_t at;
	struct rs_podbits *pb; /* Q_RLIST: whose bm_rpod entries go with it (owned) */
	int npb;
	bool scan; /* Q_RLIST: not known, find them in bm_rpod */
};

struct sync {
	struct bm_mapfds fds;
	struct sync_clock clk;
	struct idalloc subsets, routes, backends, rlists;
	struct slots slots;
	struct htab local; /* pod ids of the local pods (sync_set_pods): whose bm_rpod we write */
	long nrpod;	   /* bm_rpod entries written and not yet deleted */
	int *be_refs;	       /* per backend id: slots referencing it */
	struct htab be_index;  /* (addr, port, family) -> backend id */
	struct htab svc_index; /* bm_svc_key -> index into recs */
	struct svc_rec *recs;
	int nrecs, caprecs;
	struct qent *q;
	int nq, capq;
	uint64_t generation;
	int nservices;
	uint64_t *last_tick; /* per backend id: last outlier interval tick (ns) */
	bool l7;	     /* the agent's HTTP path listens: L7 ports get BM_SVC_F_L7 */
};

void sync_set_l7(struct sync *s, bool on)
{
	s->l7 = on;
}

static uint64_t mono_ms(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

struct sync *sync_new(const struct bm_mapfds *fds, const struct sync_clock *clk)
{
	struct sync *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->fds = *fds;
	s->clk = clk ? *clk : (struct sync_clock){.now_ms = mono_ms};
	ida_init(&s->subsets, BM_MAX_SUBSETS);
	ida_init(&s->routes, BM_MAX_ROUTES);
	ida_init(&s->backends, BM_MAX_BACKENDS);
	ida_init(&s->rlists, BM_MAX_RLISTS);
	slots_init(&s->slots, BM_MAX_SLOTS);
	s->be_refs = calloc(BM_MAX_BACKENDS, sizeof(int));
	s->last_tick = calloc(BM_MAX_BACKENDS, sizeof(uint64_t));
	if (!s->be_refs || !s->last_tick)
		abort();
	return s;
}

void sync_free(struct sync *s)
{
	if (!s)
		return;
	free(s->subsets.used);
	free(s->routes.used);
	free(s->backends.used);
	free(s->rlists.used);
	free(s->slots.free);
	free(s->be_refs);
	free(s->last_tick);
	free(s->be_index.e);
	free(s->svc_index.e);
	h_free(&s->local);
	for (int i = 0; i < s->nrecs; i++) {
		free(s->recs[i].subs);
		free(s->recs[i].podbits);
	}
	for (int i = 0; i < s->nq; i++)
		free(s->q[i].pb);
	free(s->recs);
	free(s->q);
	free(s);
}

static void be_key(uint8_t k[HKEY], const uint8_t addr[16], uint16_t port_be, uint8_t fam)
{
	memset(k, 0, HKEY);
	memcpy(k, addr, 16);
	memcpy(k + 16, &port_be, 2);
	k[18] = fam;
}

static void svc_hkey(uint8_t k[HKEY], const struct bm_svc_key *key)
{
	memset(k, 0, HKEY);
	memcpy(k, key, sizeof(*key));
}

static struct qent *quarantine(struct sync *s, enum q_kind kind, uint32_t id, uint32_t len)
{
	if (s->nq == s->capq) {
		s->capq = s->capq ? 2 * s->capq : 256;
		s->q = realloc(s->q, s->capq * sizeof(*s->q));
		if (!s->q)
			abort();
	}
	s->q[s->nq] =
	    (struct qent){.kind = kind, .id = id, .len = len, .at = s->clk.now_ms(s->clk.arg)};
	return &s->q[s->nq++];
}

static void pod_key(uint8_t k[HKEY], uint32_t pod_id)
{
	memset(k, 0, HKEY);
	memcpy(k, &pod_id, sizeof(pod_id));
}

static bool is_local(struct sync *s, uint32_t pod_id)
{
	uint8_t k[HKEY];

	pod_key(k, pod_id);
	return pod_id && h_get(&s->local, k);
}

/* One bm_rpod entry; counted so capacity can be checked. */
static int rpod_put(struct sync *s, uint32_t rlist, const struct rs_podbits *pb)
{
	struct bm_rpod_key k = {.rlist_id = rlist, .pod_id = pb->pod_id};

	if (dp_put_raw(s->fds.rpod, &k, &pb->bits, BPF_NOEXIST) == 0) {
		s->nrpod++;
		return 0;
	}
	return dp_map_put(s->fds.rpod, &k, &pb->bits, errno == EEXIST ? BPF_EXIST : BPF_NOEXIST,
			  "bm_rpod");
}

static int rpod_del(struct sync *s, const struct bm_rpod_key *k)
{
	if (dp_del_raw(s->fds.rpod, k) == 0) {
		s->nrpod--;
		return 0;
	}
	return errno == ENOENT ? 0 : dp_map_del(s->fds.rpod, k, "bm_rpod");
}

/* A released route list's bm_rpod entries, by its list of pods or by a scan. */
static void rpod_release(struct sync *s, const struct qent *q)
{
	struct bm_rpod_key key, next, *prev = NULL;

	for (int i = 0; i < q->npb; i++)
		rpod_del(s, &(struct bm_rpod_key){.rlist_id = q->id, .pod_id = q->pb[i].pod_id});
	while (q->scan && bpf_map_get_next_key(s->fds.rpod, prev, &next) == 0) {
		key = next;
		if (key.rlist_id == q->id && rpod_del(s, &key) == 0)
			continue; /* prev stays: the next key after it is still right */
		prev = &key;
	}
}

static void del_name(struct sync *s, uint32_t kind, uint32_t id)
{
	struct bm_name_key k = {.kind = kind, .id = id};

	if (s->fds.names >= 0)
		dp_map_del(s->fds.names, &k, "bm_names");
}

static void release(struct sync *s, const struct qent *q)
{
	struct bm_backend zero = {};
	struct bm_bstate zs = {};

	switch (q->kind) {
	case Q_SUBSET:
		if (s->fds.policy >= 0)
			dp_map_del(s->fds.policy, &q->id, "bm_policy");
		ida_put(&s->subsets, q->id);
		break;
	case Q_ROUTE:
		dp_map_del(s->fds.route, &q->id, "bm_route");
		del_name(s, BM_NAME_ROUTE, q->id);
		ida_put(&s->routes, q->id);
		break;
	case Q_RLIST:
		rpod_release(s, q);
		dp_map_del(s->fds.rlist, &q->id, "bm_rlist");
		del_name(s, BM_NAME_RLIST, q->id);
		ida_put(&s->rlists, q->id);
		break;
      case Q_SLOTS:
		slots_put(&s->slots, q->id, q->len);
		break;
	case Q_BACKEND:
		if (s->be_refs[q->id] > 0)
			break; /* referenced again since: keep it */
		/* an id whose entries could not be cleared is not reused */
		if (dp_map_put(s->fds.backend, &q->id, &zero, BPF_ANY, "bm_backend") ||
		    dp_map_put(s->fds.bstate, &q->id, &zs, BPF_ANY, "bm_bstate") ||
		    (s->fds.health >= 0 && dp_map_del(s->fds.health, &q->id, "bm_health")))
			break;
		ida_put(&s->backends, q->id);
		break;
	}
}

void sync_tick(struct sync *s)
{
	uint64_t now = s->clk.now_ms(s->clk.arg);
	int keep = 0;

	for (int i = 0; i < s->nq; i++) {
		if (now - s->q[i].at >= BM_ID_QUARANTINE_MS) {
			release(s, &s->q[i]);
			free(s->q[i].pb);
		} else {
			s->q[keep++] = s->q[i];
		}
	}
	s->nq = keep;
}

/* Drop one slot's reference to a backend; unreferenced ids go to quarantine, not reuse. */
static void be_unref(struct sync *s, uint32_t id)
{
	struct bm_backend be;
	uint8_t k[HKEY];

	if (!id || id >= BM_MAX_BACKENDS || --s->be_refs[id] > 0)
		return;
	if (bpf_map_lookup_elem(s->fds.backend, &id, &be) == 0) {
		be_key(k, be.addr, be.port, be.family);
		h_del(&s->be_index, k);
	}
	quarantine(s, Q_BACKEND, id, 0);
}

/* Everything r owns goes to quarantine (its ids may still be read by a connect in flight). */
static void rec_release(struct sync *s, struct svc_rec *r)
{
	for (int i = 0; i < r->nsubs; i++) {
		uint32_t *ids = calloc(r->subs[i].nref ? r->subs[i].nref : 1, sizeof(uint32_t));

		if (!ids)
			abort();
		for (uint32_t k = 0; k < r->subs[i].nref; k++) {
			uint32_t slot = r->subs[i].first + k;

			if (bpf_map_lookup_elem(s->fds.slot, &slot, &ids[k]))
				ids[k] = 0;
		}
		for (uint32_t k = 0; k < r->subs[i].nref; k++)
			be_unref(s, ids[k]);
		free(ids);
		quarantine(s, Q_SUBSET, r->subs[i].id, 0);
		quarantine(s, Q_SLOTS, r->subs[i].first, r->subs[i].n);
	}
	for (int i = 0; i < r->nroutes; i++)
		quarantine(s, Q_ROUTE, r->routes[i], 0);
	if (r->rlist) {
		struct qent *q = quarantine(s, Q_RLIST, r->rlist, 0);

		q->pb = r->podbits;
		q->npb = r->npodbits;
		q->scan = r->podbits_unknown;
		r->podbits = NULL;
	}
	free(r->subs);
	free(r->podbits);
	r->subs = NULL;
	r->podbits = NULL;
	r->nsubs = r->capsubs = r->nroutes = r->npodbits = 0;
	r->rlist = 0;
	r->podbits_unknown = false;
}

static struct sub_rec *sub_push(struct svc_rec *r)
{
	if (r->nsubs == r->capsubs) {
		r->capsubs = r->capsubs ? 2 * r->capsubs : 4;
		r->subs = realloc(r->subs, r->capsubs * sizeof(*r->subs));
		if (!r->subs)
			abort();
	}
	r->subs[r->nsubs] = (struct sub_rec){0};
	return &r->subs[r->nsubs++];
}

static struct svc_rec *rec_get(struct sync *s, const struct bm_svc_key *key, bool create)
{
	uint8_t k[HKEY];
	int *idx;

	svc_hkey(k, key);
	idx = h_get(&s->svc_index, k);
	if (idx)
		return &s->recs[*idx];
	if (!create)
		return NULL;
	if (s->nrecs == s->caprecs) {
		s->caprecs = s->caprecs ? 2 * s->caprecs : 256;
		s->recs = realloc(s->recs, s->caprecs * sizeof(*s->recs));
		if (!s->recs)
			abort();
	}
	memset(&s->recs[s->nrecs], 0, sizeof(s->recs[0]));
	s->recs[s->nrecs].key = *key;
	h_put(&s->svc_index, k, s->nrecs);
	return &s->recs[s->nrecs++];
}

/* ---------- recovery ---------- */

static void recover_subset(struct sync *s, struct svc_rec *r, uint32_t sid)
{
	struct bm_subset sub;

	if (bpf_map_lookup_elem(s->fds.subset, &sid, &sub))
		return;
	for (int i = 0; i < r->nsubs; i++)
		if (r->subs[i].id == sid)
			return;
	ida_mark(&s->subsets, sid);
	slots_mark(&s->slots, sub.first_slot, sub.n);
	*sub_push(r) = (struct sub_rec){sid, sub.first_slot, sub.n, sub.n};
	for (uint32_t k = 0; k < sub.n; k++) {
		uint32_t slot = sub.first_slot + k, id;
		struct bm_backend be;
		uint8_t hk[HKEY];

		if (bpf_map_lookup_elem(s->fds.slot, &slot, &id) || !id || id >= BM_MAX_BACKENDS)
			continue;
		if (s->be_refs[id]++ == 0 && bpf_map_lookup_elem(s->fds.backend, &id, &be) == 0) {
			ida_mark(&s->backends, id);
			be_key(hk, be.addr, be.port, be.family);
			h_put(&s->be_index, hk, id);
		}
	}
}

static void recover_route(struct sync *s, struct svc_rec *r, uint32_t id)
{
	struct bm_route rt;

	if (r->nroutes >= BM_MAX_SVC_ROUTES || bpf_map_lookup_elem(s->fds.route, &id, &rt))
		return;
	ida_mark(&s->routes, id);
	r->routes[r->nroutes++] = id;
	for (uint32_t i = 0; i < rt.n && i < BM_MAX_ROUTE_DESTS; i++)
		recover_subset(s, r, rt.subset[i]);
}

int sync_recover(struct sync *s)
{
	struct bm_svc_key key, next, *prev = NULL;
	struct bm_rpod_key rk, rnext, *rprev = NULL;
	struct bm_meta meta;
	__u32 zero = 0;
	int n = 0;

	while (bpf_map_get_next_key(s->fds.svc, prev, &next) == 0) {
		struct bm_svc val;
		struct bm_rlist rl;
		struct svc_rec *r;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(s->fds.svc, &key, &val))
			continue;
		r = rec_get(s, &key, true);
		r->val = val;
		r->live = 1;
		r->content = 0; /* unknown: the first apply rewrites it, atomically as always */
		recover_subset(s, r, val.all_subset);
		if (val.flags & BM_SVC_F_HAS_ROUTE)
			recover_route(s, r, val.route_id);
		if ((val.flags & BM_SVC_F_RLIST) &&
		    bpf_map_lookup_elem(s->fds.rlist, &val.rlist_id, &rl) == 0) {
			ida_mark(&s->rlists, val.rlist_id);
			r->rlist = val.rlist_id;
			r->podbits_unknown = true;
			for (uint32_t i = 0; i < rl.n && i < BM_MAX_SVC_ROUTES; i++)
				recover_route(s, r, rl.route_id[i]);
		}
		n++;
	}
	while (bpf_map_get_next_key(s->fds.rpod, rprev, &rnext) == 0) {
		rk = rnext;
		rprev = &rk;
		s->nrpod++;
	}
	/* the local pods are those bm_pod holds until sync_set_pods says otherwise: the first
	 * apply writes their bits along with the lists */
	for (__u64 ck, cn, *cp = NULL; bpf_map_get_next_key(s->fds.pod, cp, &cn) == 0; cp = &ck) {
		struct bm_pod pod;
		uint8_t hk[HKEY];

		ck = cn;
		if (bpf_map_lookup_elem(s->fds.pod, &ck, &pod) || !pod.pod_id)
			continue;
		pod_key(hk, pod.pod_id);
		h_put(&s->local, hk, 1);
	}
	s->nservices = n;
	if (bpf_map_lookup_elem(s->fds.meta, &zero, &meta) == 0)
		s->generation = meta.generation;
	pr_info("recovered %d services, %zu backends from pinned maps", n, s->be_index.n);
	return n;
}

/* ---------- apply ---------- */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h;
}

static uint64_t subset_content(const struct rs_table *t, int si, uint64_t h)
{
	const struct rs_subset *sub = &t->subsets[si];

	h = mix(h, sub->lb);
	h = mix(h, sub->n);
	h = mix(h, sub->policy.outlier);
	h = mix(h, sub->policy.consec_5xx);
	h = mix(h, sub->policy.consec_gw);
	h = mix(h, sub->policy.interval_ms);
	h = mix(h, sub->policy.base_ejection_ms);
	h = mix(h, sub->policy.max_ejection_pct);
	h = mix(h, sub->policy.min_health_pct);
	h = mix(h, sub->policy.max_conns);
	h = mix(h, sub->policy.connect_timeout_ms);
	for (int i = 0; i < sub->n; i++) {
		const struct rs_backend *b = &t->backends[sub->backends[i]];
		uint64_t a = 0, c = 0;

		memcpy(&a, b->addr, 8);
		memcpy(&c, b->addr + 8, 8);
		h = mix(mix(mix(h, a), c), (uint64_t)b->port << 8 | b->family);
	}
	return h;
}

static uint64_t svc_content(const struct rs_table *t, const struct rs_service *rs, bool s_l7_flag)
{
	uint64_t h = mix(1, rs->svc_id);

	h = subset_content(t, rs->all_subset, h);
	h = mix(h, rs_hash32(rs->l7_reason) + (s_l7_flag ? 1 : 0));
	for (int k = 0; k < rs->nkroutes; k++) {
		const struct rs_kroute *kr = &rs->kroutes[k];

		h = mix(mix(mix(h, 0x7007), kr->route), kr->any_src);
		for (int i = 0; i < kr->ndests; i++)
			h = subset_content(t, kr->dests[i].subset, mix(h, kr->dests[i].weight));
	}
	for (int i = 0; i < rs->npodbits; i++)
		h = mix(h, (uint64_t)rs->podbits[i].pod_id << 32 | rs->podbits[i].bits);
	return mix(h, 0xfeed);
}

static void rs_key(const struct rs_service *rs, struct bm_svc_key *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->addr, rs->addr, 16);
	k->port = htons(rs->port);
	k->proto = rs->proto;
	k->family = rs->family;
}

/* "a/b/c/d" names for the CLI (bm_names); NULL parts print as "unknown". */
void put_name4(struct sync *s, uint32_t kind, uint32_t id, const char *a, const char *b,
	       const char *c, const char *d)
{
	struct bm_name_key k = {.kind = kind, .id = id};
	struct bm_name v = {};

	if (s->fds.names < 0)
		return;
	snprintf(v.name, sizeof(v.name), "%s/%s/%s/%s", a ? a : "unknown", b ? b : "unknown",
		 c ? c : "unknown", d ? d : "unknown");
	dp_map_put_changed(s->fds.names, &k, &v, sizeof(v), "bm_names");
}

uint32_t sync_backend_lookup(struct sync *s, const struct rs_backend *b)
{
	uint8_t k[HKEY];
	int *idx;

	be_key(k, b->addr, htons(b->port), b->family);
	idx = h_get(&s->be_index, k);
	return idx ? (uint32_t)*idx : 0;
}

static uint32_t backend_id(struct sync *s, const struct rs_backend *b)
{
	uint16_t port = htons(b->port);
	struct bm_backend be = {};
	struct bm_bstate bs = {};
	uint8_t k[HKEY];
	int *idx;
	uint32_t id;

	be_key(k, b->addr, port, b->family);
	idx = h_get(&s->be_index, k);
	if (idx)
		return *idx;
	id = ida_get(&s->backends);
	if (!id)
		return 0;
	memcpy(be.addr, b->addr, 16);
	be.port = port;
	be.family = b->family;
	be.flags = BM_BE_F_USED;
	if (dp_put_raw(s->fds.bstate, &id, &bs, BPF_ANY) ||
	    dp_put_raw(s->fds.backend, &id, &be, BPF_ANY)) {
		ida_put(&s->backends, id);
		return 0;
	}
	h_put(&s->be_index, k, id);
	if (b->wl) {
		char wl[256];

		config_workload_name(b->wl, wl, sizeof(wl));
		put_name4(s, BM_NAME_BACKEND, id, b->wl->ns, wl, b->wl->name,
			  kv_get(&b->wl->labels, "version"));
	}
	return id;
}

static void put_name(struct sync *s, uint32_t kind, uint32_t id, const char *fmt, const char *a,
		     const char *b)
{
	struct bm_name_key k = {.kind = kind, .id = id};
	struct bm_name v = {};

	if (s->fds.names < 0)
		return;
	snprintf(v.name, sizeof(v.name), fmt, a, b);
	dp_map_put_changed(s->fds.names, &k, &v, sizeof(v), "bm_names");
}

/* The kernel form of a subset's DestinationRule policy; returns the BM_SUB_F_* flags. */
static uint32_t policy_of(const struct rs_subset *sub, uint32_t pool_key, struct bm_policy *p)
{
	const struct rs_policy *rp = &sub->policy;
	uint32_t flags = BM_SUB_F_TIMEOUT; /* Istio's connectTimeout applies always (10 s) */

	memset(p, 0, sizeof(*p));
	bm_od_defaults(&p->od);
	p->od.consec_5xx = rp->consec_5xx;
	p->od.consec_gw = rp->consec_gw;
	p->od.interval_ns = rp->interval_ms * 1000000ULL;
	p->od.base_ejection_ns = rp->base_ejection_ms * 1000000ULL;
	p->od.max_ejection_pct = rp->max_ejection_pct;
	p->od.min_health_pct = rp->min_health_pct;
	p->max_conns = rp->max_conns;
	p->connect_timeout_ms = rp->connect_timeout_ms;
	p->pool_key = pool_key ? pool_key : 1;
	if (rp->outlier && (rp->consec_5xx || rp->consec_gw))
		flags |= BM_SUB_F_OUTLIER;
	if (rp->max_conns)
		flags |= BM_SUB_F_POOL;
	return flags;
}

/* Write one subset under fresh ids, owned by r from the moment it holds any (so a failure
 * half way releases what was written); *out is its id. pool_key names (service, subset)
 * stably. */
static int write_subset(struct sync *s, const struct rs_table *t, int si, struct svc_rec *r,
			uint32_t pool_key, uint32_t *out)
{
	const struct rs_subset *sub = &t->subsets[si];
	struct bm_subset v = {.n = sub->n, .lb = sub->lb};
	uint32_t sid = ida_get(&s->subsets), zero = 0;
	struct sub_rec *rec;
	struct bm_policy pol;

	if (!sid)
		return -ENOSPC;
	v.flags = policy_of(sub, pool_key, &pol);
	if (s->fds.policy >= 0 && dp_put_raw(s->fds.policy, &sid, &pol, BPF_ANY)) {
		ida_put(&s->subsets, sid);
		return -errno;
	}
	if (slots_get(&s->slots, sub->n, &v.first_slot)) {
		ida_put(&s->subsets, sid);
		return -ENOSPC;
	}
	rec = sub_push(r);
	*rec = (struct sub_rec){sid, v.first_slot, sub->n, 0};
	*out = sid;
	for (int i = 0; i < sub->n; i++) {
		uint32_t slot = v.first_slot + i,
			 id = backend_id(s, &t->backends[sub->backends[i]]);

		if (!id || dp_put_raw(s->fds.slot, &slot, &id, BPF_ANY))
			return -ENOSPC;
		s->be_refs[id]++;
		rec->nref++;
	}
	if (dp_map_put(s->fds.rr, &sid, &zero, BPF_ANY, "bm_rr"))
		return -EIO;
	put_name(s, BM_NAME_SUBSET, sid, "%s%s", sub->name, "");
	return dp_map_put(s->fds.subset, &sid, &v, BPF_ANY, "bm_subset");
}

/* One kernel route of rs: its destinations' subsets, then the weighted route, under fresh
 * ids owned by r; *out is the route id. */
static int write_route(struct sync *s, const struct rs_table *t, const struct rs_service *rs,
		       const struct rs_kroute *kr, struct svc_rec *r, uint32_t *out)
{
	struct bm_route rt = {};
	char key[600];
	uint32_t id;
	int err;

	for (int i = 0; i < kr->ndests; i++) {
		snprintf(key, sizeof(key), "%s:%u/%s", rs->fqdn, rs->port,
			 t->subsets[kr->dests[i].subset].name);
		err = write_subset(s, t, kr->dests[i].subset, r, rs_hash32(key), &rt.subset[rt.n]);
		if (err)
			return err;
		rt.total += kr->dests[i].weight;
		rt.cum[rt.n++] = rt.total;
	}
	id = ida_get(&s->routes);
	if (!id)
		return -ENOSPC;
	if (dp_map_put(s->fds.route, &id, &rt, BPF_ANY, "bm_route")) {
		ida_put(&s->routes, id);
		return -EIO;
	}
	r->routes[r->nroutes++] = id;
	*out = id;
	return 0;
}

/* The route list of a port whose route depends on the client, and the bits of its local pods,
 * under a fresh id owned by r; *out is the list id. */
static int write_rlist(struct sync *s, const struct rs_service *rs, struct svc_rec *r,
		       uint32_t *out)
{
	struct bm_rlist rl = {.n = rs->nkroutes};
	uint32_t id = ida_get(&s->rlists);

	if (!id)
		return -ENOSPC;
	for (int k = 0; k < rs->nkroutes; k++) {
		rl.route_id[k] = r->routes[k];
		if (rs->kroutes[k].any_src)
			rl.any_src |= 1U << k;
	}
	if (dp_map_put(s->fds.rlist, &id, &rl, BPF_ANY, "bm_rlist")) {
		ida_put(&s->rlists, id);
		return -EIO;
	}
	r->rlist = id;
	*out = id;
	if (rs->npodbits) {
		r->podbits = malloc(rs->npodbits * sizeof(*r->podbits));
		if (!r->podbits)
			abort();
		memcpy(r->podbits, rs->podbits, rs->npodbits * sizeof(*r->podbits));
		r->npodbits = rs->npodbits;
	}
	for (int i = 0; i < r->npodbits; i++)
		if (is_local(s, r->podbits[i].pod_id) && rpod_put(s, id, &r->podbits[i]))
			return -EIO;
	return 0;
}

/* Names for `bpfmesh services`: the VirtualService text of the route (or list) and, in a list,
 * each route's own path and whom it holds for. */
static void write_route_names(struct sync *s, const struct rs_service *rs, const struct bm_svc *v,
			      const struct svc_rec *r)
{
	char text[512];

	if (!rs->vs)
		return;
	rs_route_text(rs, text, sizeof(text));
	if (strlen(text) >= BM_NAME_LEN)
		memcpy(text + BM_NAME_LEN - 4, "...", 4);
	if (v->flags & BM_SVC_F_HAS_ROUTE)
		put_name(s, BM_NAME_ROUTE, v->route_id, "%s%s", text, "");
	else if (v->flags & BM_SVC_F_RLIST)
		put_name(s, BM_NAME_RLIST, v->rlist_id, "%s%s", text, "");
	else
		put_name(s, BM_NAME_VS, rs->svc_id, "%s%s", text, "");
	for (int k = 0; (v->flags & BM_SVC_F_RLIST) && k < r->nroutes; k++) {
		rs_kroute_text(rs, k, text, sizeof(text));
		if (strlen(text) >= BM_NAME_LEN)
			memcpy(text + BM_NAME_LEN - 4, "...", 4);
		put_name(s, BM_NAME_ROUTE, r->routes[k], "%s%s", text, "");
	}
}

/*
 * Write what rs needs under fresh ids into a record of its own, then flip r's bm_svc entry to
 * it and release what r held. On failure nothing that a live entry names was touched: what was
 * written goes to quarantine and r stays as it was.
 */
static int write_service(struct sync *s, const struct rs_table *t, const struct rs_service *rs,
			 struct svc_rec *r)
{
	struct svc_rec nw = {.key = r->key, .seen = r->seen};
	struct bm_svc val = {.svc_id = rs->svc_id};
	struct svc_rec old;
	char key[600];
	int err;

	snprintf(key, sizeof(key), "%s:%u/(all)", rs->fqdn, rs->port);
	err = write_subset(s, t, rs->all_subset, &nw, rs_hash32(key), &val.all_subset);
	for (int k = 0; !err && k < rs->nkroutes; k++) {
		uint32_t id;

		err = write_route(s, t, rs, &rs->kroutes[k], &nw, &id);
		if (!err && k == 0 && rs->nkroutes == 1 && rs->kroutes[0].any_src) {
			val.route_id = id; /* one route for every client: no list to read */
			val.flags |= BM_SVC_F_HAS_ROUTE;
		}
	}
	if (!err && rs->nkroutes && !(val.flags & BM_SVC_F_HAS_ROUTE)) {
		err = write_rlist(s, rs, &nw, &val.rlist_id);
		val.flags |= BM_SVC_F_RLIST;
	}
	if (err) {
		rec_release(s, &nw);
		return err;
	}
	put_name(s, BM_NAME_SVC, rs->svc_id, "%s/%s", rs->svc->ns, rs->svc->name);
	/* why this port needs the HTTP path (the services command says the path taken) */
	if (rs->l7_reason[0])
		put_name(s, BM_NAME_L7, val.all_subset, "%s%s", rs->l7_reason, "");
	else
		del_name(s, BM_NAME_L7, val.all_subset);
	if (rs->l7_reason[0] && s->l7)
		val.flags |= BM_SVC_F_L7;
	write_route_names(s, rs, &val, &nw);
	if (!rs->vs || rs->nkroutes) /* no stale "no route" note for this service */
		del_name(s, BM_NAME_VS, rs->svc_id);
	/* The flip: from here on new connects see the new config, all of it. */
	if (dp_put_raw(s->fds.svc, &r->key, &val, BPF_ANY)) {
		err = -errno;
		rec_release(s, &nw);
		return err;
	}
	nw.val = val;
	nw.live = 1;
	old = *r;
	*r = nw;
	if (old.live)
		rec_release(s, &old);
	else
		free(old.subs), free(old.podbits);
	return 0;
}

/* Would t fit next to what is live now (old ids stay until the flips are done)? */
static int check_capacity(struct sync *s, const struct rs_table *t, struct diags *d)
{
	uint64_t need_subsets = 0, need_slots = 0, need_routes = 0, need_rlists = 0, need_rpods = 0;
	const char *map = NULL;
	uint64_t cap = 0, want = 0;

	for (int i = 0; i < t->nservices; i++) {
		const struct rs_service *rs = &t->services[i];

		need_subsets += 1;
		need_slots += t->subsets[rs->all_subset].n;
		for (int r = 0; r < rs->nkroutes; r++) {
			need_subsets += rs->kroutes[r].ndests;
			for (int k = 0; k < rs->kroutes[r].ndests; k++)
				need_slots += t->subsets[rs->kroutes[r].dests[k].subset].n;
		}
		need_routes += rs->nkroutes;
		if (rs->nkroutes && !(rs->nkroutes == 1 && rs->kroutes[0].any_src)) {
			need_rlists++;
			for (int k = 0; k < rs->npodbits; k++)
				need_rpods += is_local(s, rs->podbits[k].pod_id);
		}
	}
	if ((uint64_t)t->nservices > BM_MAX_SERVICES)
		map = "bm_svc", want = t->nservices, cap = BM_MAX_SERVICES;
	else if ((uint64_t)t->nbackends > BM_MAX_BACKENDS - 1)
		map = "bm_backend", want = t->nbackends, cap = BM_MAX_BACKENDS - 1;
	else if (need_subsets > s->subsets.max - s->subsets.nused)
		map = "bm_subset", want = need_subsets, cap = s->subsets.max - s->subsets.nused;
	else if (need_routes > s->routes.max - s->routes.nused)
		map = "bm_route", want = need_routes, cap = s->routes.max - s->routes.nused;
	else if (need_slots > s->slots.nfree)
		map = "bm_slot", want = need_slots, cap = s->slots.nfree;
	else if (need_rlists > s->rlists.max - s->rlists.nused)
		map = "bm_rlist", want = need_rlists, cap = s->rlists.max - s->rlists.nused;
	else if (need_rpods > (uint64_t)(BM_MAX_RPODS - s->nrpod))
		map = "bm_rpod", want = need_rpods, cap = BM_MAX_RPODS - s->nrpod;
	if (!map)
		return 0;
	diags_add(d, DIAG_ERROR, NULL, NULL, map,
		  "map full: this config needs %llu entries, %llu are free; the config in force "
		  "is unchanged",
		  (unsigned long long)want, (unsigned long long)cap);
	return -ENOSPC;
}

int sync_apply(struct sync *s, const struct rs_table *t, struct diags *d, struct sync_result *res)
{
	int err = 0, *idx;

	memset(res, 0, sizeof(*res));
	sync_tick(s);
	if (check_capacity(s, t, d))
		return -ENOSPC;
	for (int i = 0; i < s->nrecs; i++)
		s->recs[i].seen = 0;
	/* 1: which live entries stay (rec_get may grow s->recs: keep indexes, not pointers) */
	idx = calloc(t->nservices + 1, sizeof(int));
	if (!idx)
		return -ENOMEM;
	for (int i = 0; i < t->nservices; i++) {
		struct bm_svc_key key;
		struct svc_rec *r;

		rs_key(&t->services[i], &key);
		r = rec_get(s, &key, true);
		if (r->seen) {
			diags_add(d, DIAG_WARN, &t->services[i].svc->pos, NULL, "spec.clusterIP",
				  "address/port already used by another Service; ignored");
			idx[i] = -1;
			continue;
		}
		r->seen = 1;
		idx[i] = (int)(r - s->recs);
	}
	/* 2: services gone from the config go first, so their entries make room for new ones */
	for (int i = 0; i < s->nrecs; i++) {
		struct svc_rec *r = &s->recs[i];

		if (!r->live || r->seen)
			continue;
		/* a service that stays in the kernel after it left the config misroutes: fail */
		err = dp_map_del(s->fds.svc, &r->key, "bm_svc");
		if (err) {
			diags_add(d, DIAG_ERROR, NULL, NULL, "bm_svc",
				  "removing a service address failed: %s", strerror(-err));
			free(idx);
			return err;
		}
		rec_release(s, r);
		r->live = 0;
		res->services_deleted++;
	}
	/* 3: write what changed, each service flipped on its own */
	for (int i = 0; i < t->nservices; i++) {
		const struct rs_service *rs = &t->services[i];
		struct svc_rec *r;
		uint64_t content;

		if (idx[i] < 0)
			continue;
		r = &s->recs[idx[i]];
		content = svc_content(t, rs, s->l7);
		if (r->live && r->content == content) {
			res->services_unchanged++;
			continue;
		}
		err = write_service(s, t, rs, r);
		if (err) {
			diags_add(d, DIAG_ERROR, &rs->svc->pos, NULL, "bm_svc",
				  "writing service %s failed: %s", rs->fqdn, strerror(-err));
			break;
		}
		r->content = content;
		res->services_written++;
	}
	free(idx);
	/* Compact records that are not live, so the table does not grow forever. */
	{
		int keep = 0;

		free(s->svc_index.e);
		memset(&s->svc_index, 0, sizeof(s->svc_index));
		for (int i = 0; i < s->nrecs; i++) {
			uint8_t k[HKEY];

			if (!s->recs[i].live) {
				free(s->recs[i].subs); /* NULL once released */
				free(s->recs[i].podbits);
				continue;
			}
			s->recs[keep] = s->recs[i];
			svc_hkey(k, &s->recs[keep].key);
			h_put(&s->svc_index, k, keep);
			keep++;
		}
		s->nrecs = keep;
	}
	s->nservices = s->nrecs;
	res->backends = (int)s->be_index.n;
	return err;
}

int sync_health_tick(struct sync *s, uint64_t now_ns)
{
	__u32 key, next, *prev = NULL;
	int changed = 0;

	if (s->fds.health < 0)
		return 0;
	while (bpf_map_get_next_key(s->fds.health, prev, &next) == 0) {
		struct bm_health h;
		struct bm_hoststate before;
		int r;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem_flags(s->fds.health, &key, &h, BPF_F_LOCK))
			continue;
		if (!h.od.ejected && !h.od.num_ejections)
			continue;
		/* Envoy's interval timer: each host is looked at once per interval */
		if (key < BM_MAX_BACKENDS && s->last_tick &&
		    now_ns - s->last_tick[key] < h.pol.interval_ns)
			continue;
		if (key < BM_MAX_BACKENDS && s->last_tick)
			s->last_tick[key] = now_ns;
		before = h.od;
		r = bm_od_tick(&h.od, &h.pol, now_ns);
		if (memcmp(&before, &h.od, sizeof(before)) == 0)
			continue;
		/* written under the lock; a result recorded meanwhile is lost only if it raced
		 * this one update, which Envoy's own timer/worker split allows too */
		if (dp_map_put(s->fds.health, &key, &h, BPF_F_LOCK | BPF_EXIST, "bm_health"))
			continue;
		changed += r == BM_OD_UNEJECTED;
	}
	return changed;
}

/* A pod's addresses as bm_podaddr keys; returns how many (0 to 2). */
static int pod_addr_keys(const struct bm_pod *p, struct bm_addr_key *k)
{
	static const __u8 zero[16];
	int n = 0;

	if (memcmp(p->addr4, zero, 4)) {
		memset(&k[n], 0, sizeof(k[n]));
		memcpy(k[n].addr, p->addr4, 4);
		k[n++].family = BM_FAM_V4;
	}
	if (memcmp(p->addr6, zero, 16)) {
		memset(&k[n], 0, sizeof(k[n]));
		memcpy(k[n].addr, p->addr6, 16);
		k[n++].family = BM_FAM_V6;
	}
	return n;
}

/* bm_podaddr: every local pod's addresses (what same-node acceleration checks both ends by). */
static int sync_pod_addrs(struct sync *s, const struct sync_pod *pods, int n)
{
	struct bm_addr_key key, next, *prev = NULL, k[2];
	int err = 0;

	if (s->fds.podaddr < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		struct bm_podaddr v = {.pod_id = pods[i].pod.pod_id, .flags = pods[i].pod.flags};
		int nk = pod_addr_keys(&pods[i].pod, k);

		for (int j = 0; j < nk; j++)
			if (dp_map_put_changed(s->fds.podaddr, &k[j], &v, sizeof(v), "bm_podaddr"))
				err = -EIO;
	}
	while (bpf_map_get_next_key(s->fds.podaddr, prev, &next) == 0) {
		bool keep = false;

		for (int i = 0; i < n && !keep; i++) {
			int nk = pod_addr_keys(&pods[i].pod, k);

			for (int j = 0; j < nk && !keep; j++)
				keep = !memcmp(&k[j], &next, sizeof(next));
		}
		key = next;
		if (!keep && dp_map_del(s->fds.podaddr, &key, "bm_podaddr") == 0) {
			prev = NULL; /* restart after a delete */
			continue;
		}
		if (!keep)
			err = -EIO; /* a gone pod's address stays: reported, passed over */
		prev = &key;
	}
	return err;
}

/*
 * The bm_rpod entries of live route lists follow the local pods: a pod that became local gets
 * its bits before its cgroup is in bm_pod (before, or add == true), one that left loses them
 * after (add == false). want holds the new local pod ids.
 */
static int rpod_follow(struct sync *s, struct htab *want, bool add)
{
	int err = 0;

	for (int i = 0; i < s->nrecs; i++) {
		struct svc_rec *r = &s->recs[i];

		for (int k = 0; r->live && r->rlist && k < r->npodbits; k++) {
			uint32_t pid = r->podbits[k].pod_id;
			uint8_t hk[HKEY];
			bool now, was = is_local(s, pid);

			pod_key(hk, pid);
			now = h_get(want, hk) != NULL;
			if (add && now && !was && rpod_put(s, r->rlist, &r->podbits[k]))
				err = -EIO;
			if (!add && was && !now &&
			    rpod_del(s, &(struct bm_rpod_key){.rlist_id = r->rlist, .pod_id = pid}))
				err = -EIO;
		}
	}
	return err;
}

int sync_set_pods(struct sync *s, const struct sync_pod *pods, int n)
{
	__u64 key, next, *prev = NULL;
	struct htab want = {0};
	uint8_t hk[HKEY];
	int err = 0;

	for (int i = 0; i < n; i++)
		if (pods[i].pod.pod_id) {
			pod_key(hk, pods[i].pod.pod_id);
			h_put(&want, hk, 1);
		}
	if (rpod_follow(s, &want, true))
		err = -EIO;
	for (int i = 0; i < n; i++)
		if (dp_map_put_changed(s->fds.pod, &pods[i].cgroup_id, &pods[i].pod,
				       sizeof(pods[i].pod), "bm_pod"))
			err = -EIO;
	/* delete entries of cgroups that are gone */
	while (bpf_map_get_next_key(s->fds.pod, prev, &next) == 0) {
		bool keep = false;

		for (int i = 0; i < n && !keep; i++)
			keep = pods[i].cgroup_id == next;
		key = next;
		if (!keep && dp_map_del(s->fds.pod, &key, "bm_pod") == 0)
			continue; /* prev stays: the next key after it is still right */
		if (!keep)
			err = -EIO; /* a gone cgroup's entry stays: reported, passed over */
		prev = &key;
	}
	if (rpod_follow(s, &want, false))
		err = -EIO;
	h_free(&s->local);
	s->local = want;
	return sync_pod_addrs(s, pods, n) ? -EIO : err;
}

void sync_init_meta(struct sync *s)
{
	struct bm_meta meta = {};
	__u32 zero = 0;

	/* what an earlier agent put in force is still in force: keep its record; new maps
	 * start empty ("config: none" until the first apply) */
	if (bpf_map_lookup_elem(s->fds.meta, &zero, &meta) == 0 && meta.abi == BM_MAP_ABI) {
		s->generation = meta.generation;
		return;
	}
	memset(&meta, 0, sizeof(meta));
	meta.abi = BM_MAP_ABI;
	dp_map_put(s->fds.meta, &zero, &meta, BPF_ANY, "bm_meta");
}

void sync_set_stamp(struct sync *s, uint64_t stamp)
{
	struct bm_meta meta = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(s->fds.meta, &zero, &meta) || meta.config_stamp == stamp)
		return;
	meta.config_stamp = stamp;
	dp_map_put(s->fds.meta, &zero, &meta, BPF_ANY, "bm_meta");
}

void sync_set_meta(struct sync *s, int ok, int loaded, uint64_t stamp)
{
	struct bm_meta meta = {};
	struct timespec ts;
	__u32 zero = 0;

	bpf_map_lookup_elem(s->fds.meta, &zero, &meta);
	if (stamp)
		meta.config_stamp = stamp;
	clock_gettime(CLOCK_REALTIME, &ts);
	meta.abi = BM_MAP_ABI;
	if (ok)
		meta.generation = ++s->generation;
	meta.loaded = loaded;
	meta.last_apply_ok = ok;
	meta.last_apply_ns = ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	meta.nservices = s->nservices;
	meta.nbackends = (uint32_t)s->be_index.n;
	dp_map_put(s->fds.meta, &zero, &meta, BPF_ANY, "bm_meta");
}

void sync_set_apply_stats(struct sync *s, const struct sync_apply_stats *st)
{
	struct bm_meta meta = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(s->fds.meta, &zero, &meta))
		return;
	meta.apply_objects = st->objects;
	meta.apply_changed = st->changed;
	meta.apply_writes = st->writes;
	meta.apply_us = st->us;
	dp_map_put(s->fds.meta, &zero, &meta, BPF_ANY, "bm_meta");
}
