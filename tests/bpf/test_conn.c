// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_conn.c: a connection's life after the connect-time decision (bpf/conn.h) tested in the
 * kernel: slots taken at the SYN and returned at TCP_CLOSE, payload bytes from the socket's
 * sequence counts by the state it closed from, connect failures scored 503 or (near the
 * connect timeout) 504 for outlier detection until the backend is ejected, and the flow log's
 * open, close, fail and eject events; and the same-node acceleration decisions (bpf/accel.h):
 * which connections, and each direction decided once at its first write. conn_test.bpf.c
 * runs each step; needs root (BPF).
 */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "check.h"
#include "bpfmesh.h"
#include "conn_test.skel.h"

enum { STEP_CONNECT = 1, STEP_ESTABLISHED, STEP_CLOSED };

#define BID  7	/* the backend */
#define SID  3	/* its subset */
#define POOL 99 /* its connection pool key */
#define CG   4242

static struct conn_test_bpf *skel;

/* Flow log events read back, oldest first. */
static struct bm_event evs[32];
static int nev;

static int on_ev(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len >= sizeof(struct bm_event) && nev < 32)
		memcpy(&evs[nev++], data, sizeof(struct bm_event));
	return 0;
}

static int drain(void)
{
	struct ring_buffer *rb =
	    ring_buffer__new(bpf_map__fd(skel->maps.bm_events), on_ev, NULL, NULL);

	nev = 0;
	if (!rb)
		return -1;
	ring_buffer__consume(rb);
	ring_buffer__free(rb);
	return nev;
}

static int run(int step)
{
	char pkt[64] = {0};
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = 1);

	skel->bss->step = step;
	skel->bss->ret = -1;
	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.conn_step), &o))
		return -errno;
	return skel->bss->ret;
}

static void fresh_sock(__u32 sub_flags, __u32 timeout_ms)
{
	memset(&skel->bss->test_sock, 0, sizeof(skel->bss->test_sock));
	skel->bss->test_sock.backend_id = BID;
	skel->bss->test_sock.subset_id = SID;
	skel->bss->test_sock.svc_id = 5;
	skel->bss->test_sock.src_pod = 11;
	skel->bss->test_sock.cgroup_id = CG;
	skel->bss->test_sock.pool_key = POOL;
	skel->bss->test_sock.sub_flags = sub_flags;
	skel->bss->test_sock.timeout_ms = timeout_ms;
}

static __s32 active(void)
{
	struct bm_bstate bs = {};
	__u32 id = BID;

	bpf_map_lookup_elem(bpf_map__fd(skel->maps.bm_bstate), &id, &bs);
	return bs.active;
}

static __s32 pool(void)
{
	struct bm_cpool_key k = {.cgroup_id = CG, .pool_key = POOL};
	__s32 n = 0;

	bpf_map_lookup_elem(bpf_map__fd(skel->maps.bm_cpool), &k, &n);
	return n;
}

/* bm_traffic of (pod 11, service 5, backend 7), summed over CPUs. */
static struct bm_traffic traffic(void)
{
	struct bm_traffic_key k = {.src_pod = 11, .svc_id = 5, .backend_id = BID};
	int ncpu = libbpf_num_possible_cpus();
	struct bm_traffic v[ncpu > 0 ? ncpu : 1], sum = {};

	if (ncpu > 0 && bpf_map_lookup_elem(bpf_map__fd(skel->maps.bm_traffic), &k, v) == 0)
		for (int i = 0; i < ncpu; i++) {
			sum.opened += v[i].opened;
			sum.closed += v[i].closed;
			sum.connect_failed += v[i].connect_failed;
			sum.bytes_sent += v[i].bytes_sent;
			sum.bytes_received += v[i].bytes_received;
		}
	return sum;
}

static void reset_maps(void)
{
	struct bm_traffic_key tk = {.src_pod = 11, .svc_id = 5, .backend_id = BID};
	struct bm_cpool_key ck = {.cgroup_id = CG, .pool_key = POOL};
	struct bm_bstate zero = {};
	__u32 id = BID;

	bpf_map_delete_elem(bpf_map__fd(skel->maps.bm_traffic), &tk);
	bpf_map_delete_elem(bpf_map__fd(skel->maps.bm_cpool), &ck);
	bpf_map_delete_elem(bpf_map__fd(skel->maps.bm_health), &id);
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_bstate), &id, &zero, BPF_ANY);
	drain();
}

/* Subset SID holds backends 7 and 8 .. 7 + n - 1, with outlier detection: 2 consecutive 5xx
 * (or gateway errors) eject, up to 100% of hosts. */
static void outlier_subset(__u32 n)
{
	struct bm_subset sub = {.first_slot = 10, .n = n, .flags = BM_SUB_F_OUTLIER};
	struct bm_policy pol = {.od = {.consec_5xx = 2,
				       .consec_gw = 2,
				       .interval_ns = 10000000000ULL,
				       .base_ejection_ns = 30000000000ULL,
				       .max_ejection_ns = 300000000000ULL,
				       .max_ejection_pct = 100}};
	__u32 sid = SID;

	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_subset), &sid, &sub, BPF_ANY);
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_policy), &sid, &pol, BPF_ANY);
	for (__u32 i = 0; i < n; i++) {
		__u32 slot = 10 + i, bid = BID + i;

		bpf_map_update_elem(bpf_map__fd(skel->maps.bm_slot), &slot, &bid, BPF_ANY);
	}
}

static struct bm_health health(void)
{
	struct bm_health h = {};
	__u32 id = BID;

	bpf_map_lookup_elem_flags(bpf_map__fd(skel->maps.bm_health), &id, &h, BPF_F_LOCK);
	return h;
}

static void test_slots_and_bytes(void)
{
	struct bm_traffic t;

	reset_maps();
	fresh_sock(0, 0);
	skel->bss->now = 1000;
	CHECK_EQ(run(STEP_CONNECT), 1, "the SYN: watched");
	CHECK_EQ(active(), 1, "active connection taken");
	CHECK_EQ(pool(), 1, "pool slot taken");
	CHECK_EQ(run(STEP_CONNECT), 0, "a second CONNECT_CB (SYN retry) takes nothing");
	CHECK_EQ(active(), 1, "still one");
	skel->bss->now = 5000;
	skel->bss->cookie = 77;
	run(STEP_ESTABLISHED);
	/* closed from TIME_WAIT: our FIN acked (1 of acked) and the peer's FIN (1 of rcvd), plus
	 * the SYN's 1 in acked */
	skel->bss->from = 6; /* TCP_TIME_WAIT */
	skel->bss->acked = 1 + 100 + 1;
	skel->bss->rcvd = 250 + 1;
	skel->bss->xsent = 10;
	skel->bss->xrcvd = 20;
	skel->bss->now = 9000;
	CHECK_EQ(run(STEP_CLOSED), 1, "closed: ours");
	CHECK_EQ(active(), 0, "active returned");
	CHECK_EQ(pool(), 0, "pool slot returned");
	CHECK_EQ(run(STEP_CLOSED), 0, "closing again releases nothing");
	CHECK_EQ(active(), 0, "never below zero");
	t = traffic();
	CHECK_EQ(t.opened, 1, "opened");
	CHECK_EQ(t.closed, 1, "closed");
	CHECK_EQ(t.bytes_sent, 100 + 10, "payload sent, plus what acceleration carried");
	CHECK_EQ(t.bytes_received, 250 + 20, "payload received, plus what acceleration carried");
	if (CHECK_EQ(drain(), 2, "two events")) {
		CHECK_EQ(evs[0].type, BM_EV_OPEN, "open first");
		CHECK_EQ(evs[0].cookie, 77, "with the socket's cookie");
		CHECK_EQ(evs[1].type, BM_EV_CLOSE, "then close");
		CHECK_EQ(evs[1].bytes_sent, 110, "close: bytes sent");
		CHECK_EQ(evs[1].bytes_received, 270, "close: bytes received");
		CHECK_EQ(evs[1].duration_ns, 4000, "close: established to close");
		CHECK_EQ(evs[1].backend_id, BID, "close: the backend");
	}
}

/* bytes_acked/bytes_received count sequence space: what the FINs and the SYN take out depends
 * on the state the socket closed from. */
static void test_bytes_by_close_state(void)
{
	static const struct {
		__u32 from;
		__u64 acked, rcvd, sent, received;
		const char *what;
	} cases[] = {
	    {1, 1 + 40, 30, 40, 30, "ESTABLISHED (reset): no FIN either way"},
	    {5, 1 + 40 + 1, 30 + 1, 40, 30, "FIN_WAIT2: our FIN acked, the peer's came"},
	    {8, 1 + 40, 30 + 1, 40, 30, "CLOSE_WAIT: the peer's FIN came, ours not sent"},
	    {9, 1 + 40 + 1, 30 + 1, 40, 30, "LAST_ACK: both FINs"},
	    {11, 1 + 40 + 1, 30 + 1, 40, 30, "CLOSING: both FINs"},
	    {1, 0, 0, 0, 0, "nothing at all: never below zero"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bm_traffic t;

		reset_maps();
		fresh_sock(0, 0);
		run(STEP_CONNECT);
		run(STEP_ESTABLISHED);
		skel->bss->from = cases[i].from;
		skel->bss->acked = cases[i].acked;
		skel->bss->rcvd = cases[i].rcvd;
		skel->bss->xsent = skel->bss->xrcvd = 0;
		run(STEP_CLOSED);
		t = traffic();
		CHECK_EQ(t.bytes_sent, cases[i].sent, cases[i].what);
		CHECK_EQ(t.bytes_received, cases[i].received, cases[i].what);
	}
}

static __u64 stat_of(enum bm_stat st)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 v[ncpu > 0 ? ncpu : 1], sum = 0;
	__u32 k = st;

	if (ncpu > 0 && bpf_map_lookup_elem(bpf_map__fd(skel->maps.bm_stats), &k, v) == 0)
		for (int i = 0; i < ncpu; i++)
			sum += v[i];
	return sum;
}

/* One connect that fails after ms milliseconds. */
static void failed_connect(__u64 ms, __u32 timeout_ms)
{
	fresh_sock(BM_SUB_F_OUTLIER, timeout_ms);
	skel->bss->now = 1000000000ULL;
	run(STEP_CONNECT);
	skel->bss->from = 2; /* TCP_SYN_SENT */
	skel->bss->now += ms * 1000000ULL;
	skel->bss->cookie = 500 + ms;
	run(STEP_CLOSED);
}

static void test_failures_eject(void)
{
	__u64 fails = stat_of(BM_ST_CONNECT_FAIL), ejected = stat_of(BM_ST_EJECTED);
	struct bm_health h;

	reset_maps();
	outlier_subset(2);
	failed_connect(3, 1000); /* refused at once: 503 */
	h = health();
	CHECK_EQ(h.od.consec_5xx, 1, "a refused connect is a 5xx");
	CHECK_EQ(h.od.consec_gw, 1, "and a gateway error (503)");
	CHECK_EQ(h.od.ejected, 0, "one is not enough");
	CHECK_EQ(traffic().connect_failed, 1, "counted as a failed connect");
	CHECK_EQ(active(), 0, "a failed connect returns its slot");
	if (CHECK_EQ(drain(), 1, "a fail event")) {
		CHECK_EQ(evs[0].type, BM_EV_FAIL, "fail");
		CHECK_EQ(evs[0].duration_ns, 3000000, "after 3 ms");
	}
	failed_connect(950, 1000); /* 95% of the connect timeout: timed out, 504 */
	h = health();
	CHECK_EQ(h.od.ejected, 1, "the second consecutive failure ejects");
	CHECK_EQ(stat_of(BM_ST_CONNECT_FAIL) - fails, 2, "two failed connects counted");
	CHECK_EQ(stat_of(BM_ST_EJECTED) - ejected, 1, "one ejection counted");
	if (CHECK_EQ(drain(), 2, "fail, then eject")) {
		CHECK_EQ(evs[0].type, BM_EV_FAIL, "fail");
		CHECK_EQ(evs[1].type, BM_EV_EJECT, "eject");
		CHECK_EQ(evs[1].backend_id, BID, "of that backend");
		CHECK_EQ(evs[1].cookie, 500 + 950, "by that connection");
	}
	/* without outlier detection on the subset nothing is scored */
	reset_maps();
	fresh_sock(0, 0);
	run(STEP_CONNECT);
	skel->bss->from = 2;
	run(STEP_CLOSED);
	CHECK_EQ(health().od.consec_5xx, 0, "no outlierDetection: not scored");
}

/* A timed-out connect (504) is a gateway error for consecutiveGatewayErrors like 503; a
 * success in between resets both counts. */
static void test_success_resets(void)
{
	reset_maps();
	outlier_subset(2);
	failed_connect(3, 1000);
	fresh_sock(BM_SUB_F_OUTLIER, 1000);
	run(STEP_CONNECT);
	run(STEP_ESTABLISHED);
	CHECK_EQ(health().od.consec_5xx, 0, "a success resets the 5xx count");
	CHECK_EQ(health().od.consec_gw, 0, "and the gateway count");
	failed_connect(3, 1000);
	CHECK_EQ(health().od.ejected, 0, "so one more failure does not eject");
}

static int accel_run(void)
{
	char pkt[64] = {0};
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = 1);

	return bpf_prog_test_run_opts(bpf_program__fd(skel->progs.accel_check), &o);
}

static void podaddr(const char *ip4, int in_mesh)
{
	struct bm_addr_key k = {.family = BM_FAM_V4};
	struct bm_podaddr v = {.pod_id = 1, .flags = in_mesh ? BM_POD_F_IN_MESH : 0};

	inet_pton(AF_INET, ip4, k.addr);
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_podaddr), &k, &v, BPF_ANY);
}

/* sockops gives IPv4 addresses in network order, the local port in host order and the remote
 * one in network order (in the upper half, as some kernels do). */
static void raw4(const char *l, int lport, const char *r, int rport)
{
	memset(&skel->bss->raw, 0, sizeof(skel->bss->raw));
	skel->bss->raw.family = AF_INET;
	inet_pton(AF_INET, l, &skel->bss->raw.lip4);
	inet_pton(AF_INET, r, &skel->bss->raw.rip4);
	skel->bss->raw.lport = lport;
	skel->bss->raw.rport = (uint32_t)htons(rport) << 16;
}

static void test_accel_decisions(void)
{
	struct bm_conf conf = {.flags = BM_CONF_F_ACCEL};
	__u32 zero = 0;

	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_conf), &zero, &conf, BPF_ANY);
	podaddr("10.244.1.2", 1);
	podaddr("10.244.1.3", 1);
	podaddr("10.244.1.4", 0);
	raw4("10.244.1.2", 40000, "10.244.1.3", 8080);
	if (!CHECK_OK(accel_run(), "test_run"))
		return;
	CHECK_EQ(skel->bss->keyed, 1, "an IPv4 socket has a key");
	CHECK_EQ(ntohs(skel->bss->key.rport), 8080, "the remote port, from the upper half");
	CHECK_EQ(ntohs(skel->bss->key.lport), 40000, "the local port, made network order");
	CHECK_EQ(skel->bss->eligible, 1, "two local mesh pods: accelerated");
	raw4("10.244.1.2", 40000, "10.244.1.4", 8080);
	accel_run();
	CHECK_EQ(skel->bss->eligible, 0, "a local pod outside the mesh: not");
	raw4("10.244.1.2", 40000, "10.244.9.9", 8080);
	accel_run();
	CHECK_EQ(skel->bss->eligible, 0, "a pod of another node: not");
	raw4("10.244.1.2", 40000, "10.244.1.3", 15008);
	accel_run();
	CHECK_EQ(skel->bss->eligible, 0, "to an agent port: never");
	raw4("10.244.1.2", 15001, "10.244.1.3", 8080);
	accel_run();
	CHECK_EQ(skel->bss->eligible, 0, "from an agent port: never");
	/* v4-mapped IPv6 on both ends: keyed as IPv4, so both ends agree */
	memset(&skel->bss->raw, 0, sizeof(skel->bss->raw));
	skel->bss->raw.family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.244.1.2", skel->bss->raw.lip6);
	inet_pton(AF_INET6, "::ffff:10.244.1.3", skel->bss->raw.rip6);
	skel->bss->raw.lport = 40000;
	skel->bss->raw.rport = htons(8080);
	accel_run();
	CHECK(skel->bss->keyed && skel->bss->key.family == BM_FAM_V4, "v4-mapped: an IPv4 key");
	CHECK_EQ(skel->bss->eligible, 1, "and accelerated like IPv4");
	conf.flags = 0;
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_conf), &zero, &conf, BPF_ANY);
	accel_run();
	CHECK_EQ(skel->bss->eligible, 0, "--accel off: nothing");
	skel->bss->raw.family = 17; /* AF_PACKET */
	accel_run();
	CHECK_EQ(skel->bss->keyed, 0, "neither IPv4 nor IPv6: no key");
}

/* Each direction is decided at its first write and keeps that decision. */
static void test_accel_first_write_decides(void)
{
	skel->bss->mode = BM_ACCEL_UNDECIDED;
	skel->bss->peer_present = 1;
	accel_run();
	CHECK_EQ(skel->bss->redirected, 1, "peer there at the first write: redirected");
	CHECK_EQ(skel->bss->mode, BM_ACCEL_REDIRECT, "for good");
	skel->bss->peer_present = 0;
	accel_run();
	CHECK_EQ(skel->bss->redirected, 0, "the peer gone later: TCP (answers with a reset)");
	CHECK_EQ(skel->bss->mode, BM_ACCEL_REDIRECT, "the decision stays");
	skel->bss->mode = BM_ACCEL_UNDECIDED;
	accel_run();
	CHECK_EQ(skel->bss->mode, BM_ACCEL_TCP, "peer absent at the first write: TCP");
	skel->bss->peer_present = 1;
	accel_run();
	CHECK_EQ(skel->bss->redirected, 0, "and TCP stays TCP (no reordering)");
}

int main(void)
{
	if (geteuid() != 0)
		return CHECK_SKIP_ALL("conn", "needs root for BPF");
	skel = conn_test_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "conn_test.bpf.o: load failed\n");
		printf("conn: 0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	RUN(test_slots_and_bytes);
	RUN(test_bytes_by_close_state);
	RUN(test_failures_eject);
	RUN(test_success_resets);
	RUN(test_accel_decisions);
	RUN(test_accel_first_write_decides);
	conn_test_bpf__destroy(skel);
	return CHECK_DONE("conn");
}
