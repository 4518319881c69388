/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * outlier.h: Envoy's outlier detection (consecutive-error ejection) as pure inline functions
 * over two plain structs, so the BPF programs, the node agent and the C unit tests
 * (tests/unit/test_outlier.c) run the very same state machine. Nothing here reads a clock or a
 * map: the caller passes `now_ns` (CLOCK_MONOTONIC, i.e. bpf_ktime_get_ns()) and the cluster's
 * host counts, and stores the structs wherever it likes. The functions are not atomic; the
 * caller serialises updates of one bm_hoststate (one writer, or a lock around the call).
 *
 * Istio's DestinationRule trafficPolicy.outlierDetection on a subset configures one Envoy
 * cluster: one struct bm_outlier per cluster, one struct bm_hoststate per host in it.
 *
 * The rules, from Envoy's source/common/upstream/outlier_detection_impl.cc:
 *  - Counting (DetectorHostMonitorImpl::putHttpResponseCode). A 5xx (500-599) increments
 *    consec_5xx; a gateway error (502, 503, 504: Http::CodeUtility::isGatewayError) also
 *    increments consec_gw, and any other 5xx resets consec_gw. Anything that is not a 5xx
 *    (2xx, 3xx, 4xx...) resets both. Plain TCP, without split_external_local_origin_errors
 *    (Istio's default), goes through resultToHttpCode: connect failed -> 503, connect timeout
 *    -> 504, connected -> 200. The gateway counter is checked before the 5xx one.
 *  - Trigger. A detector fires when its counter, just incremented, EQUALS its threshold (`==`,
 *    not `>=`). Counters keep counting while the host is ejected; that is why they are reset on
 *    un-ejection. Threshold 0 disables the detector (Istio: consecutive5xxErrors: 0 turns
 *    5xx ejection off; with consecutiveGatewayErrors unset, Envoy's gateway detector runs
 *    with enforcing_consecutive_gateway_failure at its default 0). An unenforced Envoy
 *    detector still bumps "detected" stats and resets its counter; it never changes which
 *    hosts serve, so here it is simply off.
 *  - Ejection (DetectorImpl::onConsecutiveErrorWorker, ejectHost). An already ejected host is
 *    left alone and its counter is NOT reset. Otherwise the host is ejected only if
 *    100 * (ejected + 1) / hosts <= min(max_ejection_pct, 100), where ejected counts the
 *    cluster's hosts ejected now and hosts all of its hosts; refused, Envoy counts
 *    ejections_overflow. Either way the counter that fired is reset. Compared here as
 *    100 * (ejected + 1) <= pct * hosts, which is exactly Envoy's floating-point test
 *    (integer division would wrongly allow e.g. 1 of 11 hosts at 9%).
 *    Consequence with the default 10%: a cluster of fewer than 10 hosts ejects nothing
 *    (SEMANTICS.md; `analyze` says so). Where current Envoy differs: since 1.31 it has
 *    always_eject_one_host (default off, and Istio has no field for it) which allows the first
 *    ejection whatever the percentage; and older Envoy releases tested 100 * ejected / hosts
 *    < pct, the share ejected BEFORE this ejection, which let one host out of any cluster.
 *    We follow SEMANTICS.md, which is what current Envoy does under Istio.
 *  - Duration. On ejection the multiplier (Envoy's eject_time_backoff_, our num_ejections) is
 *    incremented only while num_ejections * base < max + base; the host stays out for
 *    min(base * num_ejections, max) (+ jitter: Envoy's max_ejection_time_jitter is 0 by
 *    default and Istio does not set it). max is max_ejection_time, which Istio leaves unset:
 *    Envoy then uses max(300s, base) (DetectorConfig), and refuses max < base outright.
 *  - Interval tick (DetectorImpl::onIntervalTimer). First checkHostForUneject: an ejected host
 *    whose min(base * num_ejections, max) <= now - ejected_at is un-ejected (unejectHost),
 *    which resets both counters and records the un-ejection time. Then, for every host not
 *    ejected: if it has been un-ejected at least once and now - last un-ejection >= interval,
 *    num_ejections decreases by one (not below 0). So a host un-ejected at this tick does not
 *    decay at this tick, and decays once per tick afterwards while it stays in.
 *  - Panic (LoadBalancerBase::isHostSetInPanic). If healthy% < min(panic threshold, 100) the
 *    load balancer uses every host, ejected or not; with no hosts at all, healthy% is 0.
 *    Istio maps outlierDetection.minHealthPercent to healthy_panic_threshold and passes 0
 *    when unset, so panic mode is off unless the user sets it.
 *
 * Not here: success-rate and failure-percentage detectors, enforcing_* other than 0/100,
 * jitter, un-ejection by active health checks (Istio exposes none of them); Istio's
 * splitExternalLocalOriginErrors / consecutiveLocalOriginFailures (a separate local-origin
 * counter), which the agent must reject or warn about rather than silently ignore.
 */
#ifndef BPFMESH_OUTLIER_H
#define BPFMESH_OUTLIER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Not __always_inline: glibc's sys/cdefs.h defines that name unconditionally, and this header
 * is also compiled in userspace before or after libc headers. */
#define BM_OD_INLINE static inline __attribute__((always_inline))

/* Istio's defaults (networking/v1alpha3/destination_rule.proto, OutlierDetection). */
#define BM_OD_DEF_CONSEC_5XX	5
#define BM_OD_DEF_INTERVAL_NS	(10ULL * 1000000000ULL)
#define BM_OD_DEF_BASE_NS	(30ULL * 1000000000ULL)
#define BM_OD_DEF_MAX_NS	(300ULL * 1000000000ULL) /* Envoy's max_ejection_time default */
#define BM_OD_DEF_MAX_EJECT_PCT 10

/* What a call did; the caller turns these into Envoy-named counters. */
enum bm_od_res {
	BM_OD_NONE = 0,
	BM_OD_EJECTED = 1,   /* the host left rotation: the caller's ejected count goes up */
	BM_OD_OVERFLOW = 2,  /* a detector fired, max_ejection_pct refused (ejections_overflow) */
	BM_OD_UNEJECTED = 3, /* the host is back: the caller's ejected count goes down */
};

/* One cluster's policy (Istio: a DestinationRule subset = an Envoy cluster). */
struct bm_outlier {
	__u32 consec_5xx;	/* threshold; 0 = this detector disabled. Istio default 5 */
	__u32 consec_gw;	/* threshold; 0 = disabled (Istio: off unless set) */
	__u64 interval_ns;	/* tick period; also the decay condition. Default 10s */
	__u64 base_ejection_ns; /* default 30s */
	__u64 max_ejection_ns;	/* cap; if below base, base is used (Envoy rejects that config) */
	__u32 max_ejection_pct; /* default 10; above 100 means 100 */
	__u32 min_health_pct;	/* panic threshold; 0 = never panic (Istio's default) */
};

#define BM_OD_F_UNEJECTED 1 /* unejected_at_ns is valid (Envoy: lastUnejectionTime set) */
#define BM_OD_F_BY_GW	  2 /* the last ejection was by the gateway detector, else by 5xx */

/* One host in one cluster. All zero = never seen, healthy. */
struct bm_hoststate {
	__u32 consec_5xx;      /* consecutive 5xx results */
	__u32 consec_gw;       /* consecutive 502/503/504 results */
	__u32 num_ejections;   /* Envoy's eject_time_backoff_: the duration multiplier, decays */
	__u32 ejected;	       /* 1 while out of rotation */
	__u64 ejected_at_ns;   /* time of the last ejection */
	__u64 unejected_at_ns; /* time of the last un-ejection, if flags has BM_OD_F_UNEJECTED */
	__u32 ejections_total; /* Envoy's numEjections(): every ejection ever, never decays */
	__u32 flags;	       /* BM_OD_F_* */
};

/* Istio's defaults for a DestinationRule that has an outlierDetection block. */
BM_OD_INLINE void bm_od_defaults(struct bm_outlier *p)
{
	p->consec_5xx = BM_OD_DEF_CONSEC_5XX;
	p->consec_gw = 0;
	p->interval_ns = BM_OD_DEF_INTERVAL_NS;
	p->base_ejection_ns = BM_OD_DEF_BASE_NS;
	p->max_ejection_ns = BM_OD_DEF_MAX_NS;
	p->max_ejection_pct = BM_OD_DEF_MAX_EJECT_PCT;
	p->min_health_pct = 0;
}

/* The cap actually applied: Envoy never runs with max < base (unset max becomes
 * max(300s, base); a smaller explicit max is refused), so treat such a policy as max = base. */
BM_OD_INLINE __u64 bm_od_max_ns(const struct bm_outlier *p)
{
	return p->max_ejection_ns < p->base_ejection_ns ? p->base_ejection_ns : p->max_ejection_ns;
}

/* How long the host's current (or next checked) ejection lasts: min(base * multiplier, max). */
BM_OD_INLINE __u64 bm_od_ejection_ns(const struct bm_hoststate *h, const struct bm_outlier *p)
{
	__u64 max = bm_od_max_ns(p);
	__u64 d = p->base_ejection_ns * h->num_ejections;

	/* The multiplier is bounded by max / base + 1, so d cannot wrap for sane inputs. */
	return d < max ? d : max;
}

/* Counters saturate instead of wrapping back to a value that could equal a threshold. */
BM_OD_INLINE void bm_od_inc(__u32 *c)
{
	if (*c != (__u32)-1)
		(*c)++;
}

/* Envoy's ejectHost for a host that is not ejected. Returns EJECTED or OVERFLOW. */
BM_OD_INLINE int bm_od_eject(struct bm_hoststate *h, const struct bm_outlier *p, __u64 now_ns,
			     __u32 ejected_hosts, __u32 total_hosts, __u32 by_gw)
{
	__u64 pct = p->max_ejection_pct < 100 ? p->max_ejection_pct : 100;

	/* Envoy: 100.0 * (ejected + 1) / hosts <= pct, without the division. */
	if (100 * ((__u64)ejected_hosts + 1) > pct * total_hosts)
		return BM_OD_OVERFLOW;
	h->ejected = 1;
	h->ejected_at_ns = now_ns;
	bm_od_inc(&h->ejections_total);
	h->flags = (h->flags & ~(__u32)BM_OD_F_BY_GW) | (by_gw ? BM_OD_F_BY_GW : 0);
	/* The "+ base" lets the multiplier sit one step above the cap, so a host that keeps
	 * failing stays at max for one extra decay step. */
	if ((__u64)h->num_ejections * p->base_ejection_ns < bm_od_max_ns(p) + p->base_ejection_ns &&
	    h->num_ejections != (__u32)-1)
		h->num_ejections++;
	return BM_OD_EJECTED;
}

/* A detector fired (onConsecutiveErrorWorker): leave an ejected host alone, counter and all;
 * otherwise try to eject and reset the counter whatever the outcome. */
BM_OD_INLINE int bm_od_fire(struct bm_hoststate *h, const struct bm_outlier *p, __u64 now_ns,
			    __u32 ejected_hosts, __u32 total_hosts, __u32 *counter, __u32 by_gw)
{
	int r;

	if (h->ejected)
		return BM_OD_NONE;
	r = bm_od_eject(h, p, now_ns, ejected_hosts, total_hosts, by_gw);
	*counter = 0;
	return r;
}

/*
 * Record one result for host h: an HTTP status code, or for TCP 503 (connect refused), 504
 * (connect timeout), 200 (connected). ejected_hosts and total_hosts describe the host's
 * cluster right now. Returns BM_OD_EJECTED (the caller counts one more ejected host),
 * BM_OD_OVERFLOW (a threshold was reached but max_ejection_pct refused; the counter was reset
 * all the same) or BM_OD_NONE.
 *
 * When both detectors fire on the same result, the gateway one goes first (Envoy's order); if
 * it ejects, the 5xx one then finds the host ejected and does nothing. If both are refused,
 * Envoy's ejections_overflow goes up twice; this returns BM_OD_OVERFLOW once.
 */
BM_OD_INLINE int bm_od_result(struct bm_hoststate *h, const struct bm_outlier *p, __u32 code,
			      __u64 now_ns, __u32 ejected_hosts, __u32 total_hosts)
{
	int r = BM_OD_NONE, r2;

	if (code < 500 || code > 599) {
		h->consec_5xx = 0;
		h->consec_gw = 0;
		return BM_OD_NONE;
	}
	if (code >= 502 && code <= 504) {
		bm_od_inc(&h->consec_gw);
		if (p->consec_gw && h->consec_gw == p->consec_gw)
			r = bm_od_fire(h, p, now_ns, ejected_hosts, total_hosts, &h->consec_gw, 1);
	} else {
		h->consec_gw = 0;
	}
	bm_od_inc(&h->consec_5xx);
	if (p->consec_5xx && h->consec_5xx == p->consec_5xx) {
		r2 = bm_od_fire(h, p, now_ns, ejected_hosts, total_hosts, &h->consec_5xx, 0);
		if (r2 != BM_OD_NONE)
			r = r2;
	}
	return r;
}

/*
 * What Envoy's interval timer does to one host; call it for every host of the cluster every
 * interval_ns. An ejected host whose time is up is un-ejected with both counters reset
 * (returns BM_OD_UNEJECTED: the caller counts one less ejected host). A host that is in
 * rotation and was un-ejected at least interval_ns ago loses one step of multiplier.
 */
BM_OD_INLINE int bm_od_tick(struct bm_hoststate *h, const struct bm_outlier *p, __u64 now_ns)
{
	int r = BM_OD_NONE;

	if (h->ejected) {
		__u64 out = now_ns > h->ejected_at_ns ? now_ns - h->ejected_at_ns : 0;

		if (bm_od_ejection_ns(h, p) > out)
			return BM_OD_NONE;
		h->ejected = 0;
		h->consec_5xx = 0;
		h->consec_gw = 0;
		h->unejected_at_ns = now_ns;
		h->flags |= BM_OD_F_UNEJECTED;
		r = BM_OD_UNEJECTED;
		/* Fall through like Envoy's second loop: with interval > 0 no decay this tick. */
	}
	if ((h->flags & BM_OD_F_UNEJECTED) && now_ns >= h->unejected_at_ns &&
	    now_ns - h->unejected_at_ns >= p->interval_ns && h->num_ejections)
		h->num_ejections--;
	return r;
}

/*
 * Whether the cluster is in panic: fewer than min_health_pct percent of its hosts healthy, in
 * which case the load balancer spreads over all hosts, ejected ones included. healthy is the
 * number of hosts not ejected, total all hosts. Returns 1 in panic, else 0.
 */
BM_OD_INLINE int bm_od_panic(__u32 healthy, __u32 total, const struct bm_outlier *p)
{
	__u64 thr = p->min_health_pct < 100 ? p->min_health_pct : 100;

	if (!thr)
		return 0;
	if (!total)
		return 1; /* Envoy: no hosts = 0% healthy */
	/* Envoy: 100.0 * healthy / total < thr, without the division. */
	return 100 * (__u64)healthy < thr * total;
}

#endif /* BPFMESH_OUTLIER_H */
