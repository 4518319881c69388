// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_outlier.c: unit tests of headers/outlier.h, Envoy's consecutive-error ejection. The cases
 * mirror Envoy's test/common/upstream/outlier_detection_impl_test.cc (BasicFlow5xxViaHttpCodes,
 * EjectTimeBackoff, max_ejection_percent, gateway vs 5xx counting) plus the edges of our
 * integer arithmetic. All time is the injected now_ns.
 */
#include "check.h"
#include "outlier.h"

#define MS(x) ((__u64)(x)*1000000ULL)
#define S(x)  ((__u64)(x)*1000000000ULL)

/* Envoy's tests set max_ejection_percent to 100 so one host can be ejected. */
static struct bm_outlier policy(__u64 base, __u32 pct)
{
	struct bm_outlier p;

	bm_od_defaults(&p);
	p.base_ejection_ns = base;
	p.max_ejection_pct = pct;
	return p;
}

/* n results of one code for a lone host; returns the last result. */
static int load(struct bm_hoststate *h, const struct bm_outlier *p, int n, __u32 code, __u64 now)
{
	int r = BM_OD_NONE;

	while (n-- > 0)
		r = bm_od_result(h, p, code, now, 0, 1);
	return r;
}

static void test_defaults(void)
{
	struct bm_outlier p;

	bm_od_defaults(&p);
	CHECK_EQ(p.consec_5xx, 5, "consecutive5xxErrors");
	CHECK_EQ(p.consec_gw, 0, "consecutiveGatewayErrors off");
	CHECK_EQ(p.interval_ns, S(10), "interval");
	CHECK_EQ(p.base_ejection_ns, S(30), "baseEjectionTime");
	CHECK_EQ(p.max_ejection_ns, S(300), "max_ejection_time");
	CHECK_EQ(p.max_ejection_pct, 10, "maxEjectionPercent");
	CHECK_EQ(p.min_health_pct, 0, "minHealthPercent: no panic");
	CHECK_EQ(sizeof(struct bm_outlier) % 8, 0, "policy size 8-aligned");
	CHECK_EQ(sizeof(struct bm_hoststate) % 8, 0, "host state size 8-aligned");
}

/* Exactly at the threshold, not before; a success in between starts the count again. */
static void test_eject_at_threshold(void)
{
	struct bm_outlier p = policy(S(30), 100);
	struct bm_hoststate h = {0};

	CHECK_EQ(load(&h, &p, 1, 500, 0), BM_OD_NONE, "one 500");
	CHECK_EQ(load(&h, &p, 1, 200, 0), BM_OD_NONE, "200");
	CHECK_EQ(h.consec_5xx, 0, "200 resets 5xx");
	CHECK_EQ(load(&h, &p, 4, 500, 0), BM_OD_NONE, "four 500s");
	CHECK_EQ(h.ejected, 0, "not ejected before the threshold");
	CHECK_EQ(h.consec_5xx, 4, "counted");
	CHECK_EQ(load(&h, &p, 1, 500, MS(1234)), BM_OD_EJECTED, "fifth 500 ejects");
	CHECK_EQ(h.ejected, 1, "ejected");
	CHECK_EQ(h.ejected_at_ns, MS(1234), "ejection time");
	CHECK_EQ(h.consec_5xx, 0, "ejecting resets the counter that fired");
	CHECK_EQ(h.num_ejections, 1, "multiplier");
	CHECK_EQ(h.ejections_total, 1, "total");
	CHECK_EQ(h.flags & BM_OD_F_BY_GW, 0, "ejected by the 5xx detector");
}

/* BasicFlow5xxViaHttpCodes: out until base time, back at the first tick after it. */
static void test_uneject_after_base(void)
{
	struct bm_outlier p = policy(S(30), 100);
	struct bm_hoststate h = {0};

	load(&h, &p, 5, 500, 0);
	CHECK_EQ(h.ejected, 1, "ejected at 0");
	CHECK_EQ(bm_od_ejection_ns(&h, &p), S(30), "first ejection lasts base");
	CHECK_EQ(bm_od_tick(&h, &p, MS(9999)), BM_OD_NONE, "tick at 9.999s");
	CHECK_EQ(bm_od_tick(&h, &p, MS(29999)), BM_OD_NONE, "tick just before base");
	CHECK_EQ(h.ejected, 1, "still ejected just before base");
	CHECK_EQ(h.flags & BM_OD_F_UNEJECTED, 0, "no un-ejection yet");
	CHECK_EQ(bm_od_tick(&h, &p, MS(30001)), BM_OD_UNEJECTED, "tick just after base");
	CHECK_EQ(h.ejected, 0, "back in rotation");
	CHECK_EQ(h.unejected_at_ns, MS(30001), "un-ejection time");
	CHECK(h.flags & BM_OD_F_UNEJECTED, "un-ejection recorded");

	/* Envoy compares with <=: exactly at base is back. */
	struct bm_hoststate g = {0};
	load(&g, &p, 5, 500, S(5));
	CHECK_EQ(bm_od_tick(&g, &p, S(35)), BM_OD_UNEJECTED, "back exactly at base");
}

/* Errors while ejected keep counting; un-ejection resets both counters so the host is not
 * re-ejected on a few new errors. */
static void test_counters_reset_on_uneject(void)
{
	struct bm_outlier p = policy(S(30), 100);
	struct bm_hoststate h = {0};

	p.consec_gw = 10;
	load(&h, &p, 5, 500, 0);
	CHECK_EQ(load(&h, &p, 4, 500, S(1)), BM_OD_NONE, "500s while ejected");
	CHECK_EQ(load(&h, &p, 3, 503, S(1)), BM_OD_NONE, "503s while ejected");
	CHECK_EQ(h.consec_5xx, 7, "5xx counted while ejected");
	CHECK_EQ(h.consec_gw, 3, "gateway counted while ejected");
	CHECK_EQ(bm_od_tick(&h, &p, S(30)), BM_OD_UNEJECTED, "un-ejected");
	CHECK_EQ(h.consec_5xx, 0, "5xx reset");
	CHECK_EQ(h.consec_gw, 0, "gateway reset");
	CHECK_EQ(load(&h, &p, 4, 500, S(31)), BM_OD_NONE, "four new 500s do not eject");
	CHECK_EQ(load(&h, &p, 1, 500, S(31)), BM_OD_EJECTED, "the fifth does");
}

/* Reaching the threshold again while ejected does nothing, and (Envoy) does not reset the
 * counter: it runs on past the threshold. */
static void test_already_ejected(void)
{
	struct bm_outlier p = policy(S(30), 100);
	struct bm_hoststate h = {0};

	load(&h, &p, 5, 500, 0);
	CHECK_EQ(load(&h, &p, 5, 500, S(1)), BM_OD_NONE, "no second ejection");
	CHECK_EQ(h.consec_5xx, 5, "counter not reset");
	CHECK_EQ(h.ejected_at_ns, 0, "ejection time unchanged");
	CHECK_EQ(h.num_ejections, 1, "multiplier unchanged");
	CHECK_EQ(load(&h, &p, 1, 500, S(1)), BM_OD_NONE, "past the threshold");
	CHECK_EQ(h.consec_5xx, 6, "counts on");
}

/* EjectTimeBackoff, step by step (base 10s, interval 10s, max 300s). */
static void test_backoff_and_decay(void)
{
	struct bm_outlier p = policy(S(10), 100);
	struct bm_hoststate h = {0};

	CHECK_EQ(load(&h, &p, 5, 500, S(0)), BM_OD_EJECTED, "1st ejection");
	CHECK_EQ(bm_od_tick(&h, &p, S(10)), BM_OD_UNEJECTED, "back after 10s");
	CHECK_EQ(h.num_ejections, 1, "no decay at the un-ejecting tick");

	CHECK_EQ(load(&h, &p, 5, 500, S(10)), BM_OD_EJECTED, "2nd ejection");
	CHECK_EQ(bm_od_ejection_ns(&h, &p), S(20), "second ejection lasts twice as long");
	CHECK_EQ(bm_od_tick(&h, &p, S(20)), BM_OD_NONE, "still out after 10s");
	CHECK_EQ(bm_od_tick(&h, &p, S(30)), BM_OD_UNEJECTED, "back after 20s");

	CHECK_EQ(load(&h, &p, 5, 500, S(30)), BM_OD_EJECTED, "3rd ejection");
	CHECK_EQ(bm_od_tick(&h, &p, S(40)), BM_OD_NONE, "out after 10s");
	CHECK_EQ(bm_od_tick(&h, &p, S(50)), BM_OD_NONE, "out after 20s");
	CHECK_EQ(bm_od_tick(&h, &p, S(60)), BM_OD_UNEJECTED, "back after 30s");
	CHECK_EQ(h.num_ejections, 3, "multiplier 3");

	/* Two healthy intervals: two steps of decay. */
	CHECK_EQ(bm_od_tick(&h, &p, S(70)), BM_OD_NONE, "healthy tick");
	CHECK_EQ(h.num_ejections, 2, "decayed once");
	CHECK_EQ(bm_od_tick(&h, &p, S(80)), BM_OD_NONE, "healthy tick");
	CHECK_EQ(h.num_ejections, 1, "decayed twice");

	CHECK_EQ(load(&h, &p, 5, 500, S(80)), BM_OD_EJECTED, "4th ejection");
	CHECK_EQ(bm_od_ejection_ns(&h, &p), S(20), "20s after the decay");
	CHECK_EQ(bm_od_tick(&h, &p, S(90)), BM_OD_NONE, "out after 10s");
	CHECK_EQ(h.num_ejections, 2, "no decay while ejected");
	CHECK_EQ(bm_od_tick(&h, &p, S(100)), BM_OD_UNEJECTED, "back after 20s");

	/* A long healthy period brings the multiplier to 0, not below. */
	for (int i = 1; i <= 50; i++)
		bm_od_tick(&h, &p, S(100 + i * 10));
	CHECK_EQ(h.num_ejections, 0, "fully decayed");
	CHECK_EQ(load(&h, &p, 5, 500, S(610)), BM_OD_EJECTED, "5th ejection");
	CHECK_EQ(bm_od_ejection_ns(&h, &p), S(10), "back to base");
	CHECK_EQ(bm_od_tick(&h, &p, S(620)), BM_OD_UNEJECTED, "back after 10s");
	CHECK_EQ(h.ejections_total, 5, "every ejection counted");
}

/* The decay condition is "un-ejected at least interval ago", not "a tick passed". */
static void test_decay_condition(void)
{
	struct bm_outlier p = policy(S(10), 100);
	struct bm_hoststate h = {0};

	h.num_ejections = 3; /* never un-ejected: Envoy has no lastUnejectionTime, no decay */
	bm_od_tick(&h, &p, S(100));
	CHECK_EQ(h.num_ejections, 3, "no decay without an un-ejection");

	load(&h, &p, 5, 500, S(100));
	CHECK_EQ(h.num_ejections, 4, "ejected");
	bm_od_tick(&h, &p, S(140));
	CHECK_EQ(h.ejected, 0, "back at 140s");
	bm_od_tick(&h, &p, S(145));
	CHECK_EQ(h.num_ejections, 4, "5s after un-ejection: no decay");
	bm_od_tick(&h, &p, S(150));
	CHECK_EQ(h.num_ejections, 3, "10s after un-ejection: decay");
	bm_od_tick(&h, &p, S(151));
	CHECK_EQ(h.num_ejections, 2, "and at every tick after");
}

/* The multiplier only grows while multiplier * base < max + base; duration caps at max. */
static void test_max_ejection_time(void)
{
	struct bm_outlier p = policy(S(10), 100);
	struct bm_hoststate h = {0};
	__u64 want[] = {S(10), S(20), S(30), S(30), S(30), S(30)};
	__u64 now = 0;

	p.max_ejection_ns = S(30);
	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		CHECK_EQ(load(&h, &p, 5, 500, now), BM_OD_EJECTED, "ejected");
		CHECK_EQ(bm_od_ejection_ns(&h, &p), want[i], "duration");
		CHECK_EQ(bm_od_tick(&h, &p, now + want[i] - 1), BM_OD_NONE, "out until its time");
		now += want[i];
		CHECK_EQ(bm_od_tick(&h, &p, now), BM_OD_UNEJECTED, "back at its time");
	}
	CHECK_EQ(h.num_ejections, 4, "multiplier stops one above max / base");
	bm_od_tick(&h, &p, now + S(10));
	CHECK_EQ(h.num_ejections, 3, "one decay");
	CHECK_EQ(bm_od_ejection_ns(&h, &p), S(30), "still at the cap after one decay");

	/* Defaults: 30s base, 300s cap, reached at the 10th ejection. */
	struct bm_outlier d;
	struct bm_hoststate g = {0};
	bm_od_defaults(&d);
	d.max_ejection_pct = 100;
	g.num_ejections = 9;
	load(&g, &d, 5, 500, 0);
	CHECK_EQ(bm_od_ejection_ns(&g, &d), S(300), "10th ejection: 300s");
	g.num_ejections = 20;
	CHECK_EQ(bm_od_ejection_ns(&g, &d), S(300), "capped");

	/* max below base: Envoy refuses that config; we behave as max = base. */
	d.base_ejection_ns = S(400);
	d.max_ejection_ns = S(300);
	g.num_ejections = 2;
	CHECK_EQ(bm_od_ejection_ns(&g, &d), S(400), "cap is at least base");
}

/* max_ejection_percent: 100 * (ejected + 1) / hosts <= pct. */
static void test_max_percent_overflow(void)
{
	struct bm_outlier p;
	struct bm_hoststate h = {0};
	int i, r = BM_OD_NONE;

	bm_od_defaults(&p); /* 10% */
	for (i = 0; i < 5; i++)
		r = bm_od_result(&h, &p, 500, S(1), 0, 9);
	CHECK_EQ(r, BM_OD_OVERFLOW, "10% of 9 hosts: nothing can be ejected");
	CHECK_EQ(h.ejected, 0, "not ejected");
	CHECK_EQ(h.consec_5xx, 0, "the counter resets even when refused");
	CHECK_EQ(h.num_ejections, 0, "no multiplier");
	for (i = 0; i < 4; i++)
		CHECK_EQ(bm_od_result(&h, &p, 500, S(1), 0, 9), BM_OD_NONE, "counts again");
	CHECK_EQ(bm_od_result(&h, &p, 500, S(1), 0, 9), BM_OD_OVERFLOW, "refused again at 5");

	for (i = 0; i < 5; i++)
		r = bm_od_result(&h, &p, 500, S(2), 0, 10);
	CHECK_EQ(r, BM_OD_EJECTED, "10 hosts: the first one may go");

	struct bm_hoststate g = {0};
	for (i = 0; i < 5; i++)
		r = bm_od_result(&g, &p, 500, S(2), 1, 10);
	CHECK_EQ(r, BM_OD_OVERFLOW, "10 hosts: not a second one");
	for (i = 0; i < 5; i++)
		r = bm_od_result(&g, &p, 500, S(2), 1, 20);
	CHECK_EQ(r, BM_OD_EJECTED, "20 hosts: 2 of 20 is exactly 10%");

	/* Exact, not floored: 1 of 11 is 9.09%, more than 9%. */
	struct bm_hoststate k = {0};
	p.max_ejection_pct = 9;
	for (i = 0; i < 5; i++)
		r = bm_od_result(&k, &p, 500, S(3), 0, 11);
	CHECK_EQ(r, BM_OD_OVERFLOW, "9% of 11 hosts");

	/* 100% lets the last host go; above 100 is 100. */
	struct bm_hoststate m = {0};
	p.max_ejection_pct = 250;
	for (i = 0; i < 5; i++)
		r = bm_od_result(&m, &p, 500, S(3), 2, 3);
	CHECK_EQ(r, BM_OD_EJECTED, "3 of 3 at 100%");
	struct bm_hoststate z = {0};
	for (i = 0; i < 5; i++)
		r = bm_od_result(&z, &p, 500, S(3), 0, 0);
	CHECK_EQ(r, BM_OD_OVERFLOW, "no hosts: refused, no division by zero");
}

/* A 10-host cluster with the defaults: the agent keeps the ejected count from the results. */
static void test_cluster_flow(void)
{
	struct bm_outlier p;
	struct bm_hoststate hs[10] = {0};
	__u32 ejected = 0, total = 10;
	int i, r;

	bm_od_defaults(&p);
	for (i = 0; i < 5; i++) {
		r = bm_od_result(&hs[0], &p, 503, S(1), ejected, total);
		ejected += r == BM_OD_EJECTED;
	}
	CHECK_EQ(ejected, 1, "host 0 ejected");
	CHECK_EQ(bm_od_panic(total - ejected, total, &p), 0, "no panic with minHealthPercent 0");
	for (i = 0; i < 5; i++)
		r = bm_od_result(&hs[1], &p, 503, S(2), ejected, total);
	CHECK_EQ(r, BM_OD_OVERFLOW, "host 1 refused while host 0 is out");

	for (i = 0; i < 10; i++) {
		r = bm_od_tick(&hs[i], &p, S(31));
		ejected -= r == BM_OD_UNEJECTED;
	}
	CHECK_EQ(ejected, 0, "host 0 back at the tick after 30s");
	for (i = 0; i < 5; i++) {
		r = bm_od_result(&hs[1], &p, 503, S(32), ejected, total);
		ejected += r == BM_OD_EJECTED;
	}
	CHECK_EQ(hs[1].ejected, 1, "now host 1 may go");
	CHECK_EQ(ejected, 1, "one out");
}

/* 502/503/504 count both; another 5xx counts 5xx and resets the gateway counter; a non-5xx
 * resets both. */
static void test_gateway_vs_5xx(void)
{
	struct bm_outlier p = policy(S(30), 100);
	struct bm_hoststate h = {0};

	p.consec_gw = 3;
	p.consec_5xx = 10;
	load(&h, &p, 1, 502, 0);
	load(&h, &p, 1, 504, 0);
	CHECK_EQ(h.consec_gw, 2, "502, 504: gateway 2");
	CHECK_EQ(h.consec_5xx, 2, "502, 504: 5xx 2");
	load(&h, &p, 1, 500, 0);
	CHECK_EQ(h.consec_gw, 0, "500 resets gateway");
	CHECK_EQ(h.consec_5xx, 3, "500 counts as 5xx");
	load(&h, &p, 1, 505, 0);
	load(&h, &p, 1, 501, 0);
	load(&h, &p, 1, 599, 0);
	CHECK_EQ(h.consec_gw, 0, "505, 501, 599 are not gateway errors");
	CHECK_EQ(h.consec_5xx, 6, "but are 5xx");
	load(&h, &p, 1, 200, 0);
	CHECK_EQ(h.consec_5xx + h.consec_gw, 0, "200 resets both");
	load(&h, &p, 2, 503, 0);
	load(&h, &p, 1, 404, 0);
	CHECK_EQ(h.consec_5xx + h.consec_gw, 0, "404 resets both");
	load(&h, &p, 2, 503, 0);
	load(&h, &p, 1, 600, 0);
	CHECK_EQ(h.consec_5xx + h.consec_gw, 0, "600 is not a 5xx");

	CHECK_EQ(load(&h, &p, 1, 503, S(1)), BM_OD_NONE, "connect refused (503)");
	CHECK_EQ(load(&h, &p, 1, 504, S(1)), BM_OD_NONE, "connect timeout (504)");
	CHECK_EQ(load(&h, &p, 1, 502, S(1)), BM_OD_EJECTED, "third gateway error ejects");
	CHECK(h.flags & BM_OD_F_BY_GW, "ejected by the gateway detector");
	CHECK_EQ(h.consec_gw, 0, "gateway counter reset");
	CHECK_EQ(h.consec_5xx, 3, "5xx counter untouched");
}

/* Both detectors reach their threshold on the same result: gateway first (Envoy's order). */
static void test_both_detectors(void)
{
	struct bm_outlier p = policy(S(30), 100);
	struct bm_hoststate h = {0};

	p.consec_gw = 5;
	CHECK_EQ(load(&h, &p, 5, 503, 0), BM_OD_EJECTED, "five 503s");
	CHECK(h.flags & BM_OD_F_BY_GW, "the gateway detector ejected");
	CHECK_EQ(h.consec_gw, 0, "gateway reset");
	CHECK_EQ(h.consec_5xx, 5, "5xx found the host ejected: not reset");
	CHECK_EQ(h.num_ejections, 1, "one ejection");

	struct bm_hoststate g = {0};
	p.max_ejection_pct = 10;
	int r = BM_OD_NONE;
	for (int i = 0; i < 5; i++)
		r = bm_od_result(&g, &p, 503, 0, 0, 2);
	CHECK_EQ(r, BM_OD_OVERFLOW, "both refused");
	CHECK_EQ(g.consec_gw + g.consec_5xx, 0, "both counters reset");
}

/* Threshold 0 turns a detector off. */
static void test_disabled(void)
{
	struct bm_outlier p = policy(S(30), 100);
	struct bm_hoststate h = {0};

	p.consec_5xx = 0;
	CHECK_EQ(load(&h, &p, 1000, 500, 0), BM_OD_NONE, "consecutive5xxErrors 0: never");
	CHECK_EQ(load(&h, &p, 1000, 503, 0), BM_OD_NONE, "gateway off too: never");
	CHECK_EQ(h.ejected, 0, "not ejected");
	h.consec_5xx = (__u32)-2;
	load(&h, &p, 5, 500, 0);
	CHECK_EQ(h.consec_5xx, (__u32)-1, "counter saturates, never wraps to 0");

	struct bm_hoststate g = {0};
	p.consec_gw = 3;
	CHECK_EQ(load(&g, &p, 3, 503, 0), BM_OD_EJECTED, "gateway alone still works");
}

/* Panic: healthy% < minHealthPercent (Envoy isHostSetInPanic). */
static void test_panic(void)
{
	struct bm_outlier p;

	bm_od_defaults(&p);
	CHECK_EQ(bm_od_panic(0, 10, &p), 0, "threshold 0: never");
	CHECK_EQ(bm_od_panic(0, 0, &p), 0, "threshold 0, no hosts: never");
	p.min_health_pct = 50;
	CHECK_EQ(bm_od_panic(5, 10, &p), 0, "50% healthy is not below 50");
	CHECK_EQ(bm_od_panic(4, 10, &p), 1, "40% healthy: panic");
	CHECK_EQ(bm_od_panic(0, 0, &p), 1, "no hosts: 0% healthy");
	p.min_health_pct = 34;
	CHECK_EQ(bm_od_panic(1, 3, &p), 1, "33.3% < 34%: exact, not floored");
	p.min_health_pct = 33;
	CHECK_EQ(bm_od_panic(1, 3, &p), 0, "33.3% >= 33%");
	p.min_health_pct = 200;
	CHECK_EQ(bm_od_panic(10, 10, &p), 0, "capped at 100: all healthy is fine");
	CHECK_EQ(bm_od_panic(9, 10, &p), 1, "capped at 100: one down is panic");
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_eject_at_threshold);
	RUN(test_uneject_after_base);
	RUN(test_counters_reset_on_uneject);
	RUN(test_already_ejected);
	RUN(test_backoff_and_decay);
	RUN(test_decay_condition);
	RUN(test_max_ejection_time);
	RUN(test_max_percent_overflow);
	RUN(test_cluster_flow);
	RUN(test_gateway_vs_5xx);
	RUN(test_both_detectors);
	RUN(test_disabled);
	RUN(test_panic);
	return CHECK_DONE("outlier");
}
