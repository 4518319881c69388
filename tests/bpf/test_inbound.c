// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_inbound.c: the inbound judge (bpf/inbound.h), the packet parser (bpf/pkt.h) and the
 * source check (bpf/guard.h) run in the kernel on table-driven packet fixtures: IPv4 and
 * IPv6 SYNs, the other TCP segments, IPv6 extension header chains (walked, and too long),
 * fragments, UDP, loopback, attested sources (a local mesh pod, the agent), portLevelMtls
 * entries, AuthorizationPolicy entries by address and by attested pod. Each case writes the
 * maps of tests/bpf/inbound_test.bpf.c and runs its tc program with bpf_prog_test_run_opts.
 * Needs root (BPF).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "check.h"
#include "bpfmesh.h"
#include "inbound_test.skel.h"

#define STRICT_POD 7  /* STRICT, port 8080 PERMISSIVE */
#define PLAIN_POD  8  /* no inbound policy */
#define MESH_SRC   9  /* a local mesh pod the kernel attests */
#define AUTHZ_POD  10 /* PERMISSIVE, under AuthorizationPolicy */

static struct inbound_test_bpf *skel;

/* ---------- packet fixtures ---------- */

struct pkt {
	uint8_t b[256];
	size_t n;
};

static void put(struct pkt *p, const void *d, size_t n)
{
	memcpy(p->b + p->n, d, n);
	p->n += n;
}

static void eth(struct pkt *p, uint16_t proto)
{
	uint8_t h[14] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};

	h[12] = proto >> 8;
	h[13] = proto & 0xff;
	p->n = 0;
	put(p, h, 14);
}

static void tcp(struct pkt *p, uint16_t sport, uint16_t dport, uint8_t flags)
{
	uint8_t h[20] = {0};

	h[0] = sport >> 8, h[1] = sport & 0xff, h[2] = dport >> 8, h[3] = dport & 0xff;
	h[12] = 5 << 4;
	h[13] = flags;
	put(p, h, 20);
}

static void udp(struct pkt *p, uint16_t sport, uint16_t dport)
{
	uint8_t h[8] = {sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, 0, 8, 0, 0};

	put(p, h, 8);
}

static void ip4(struct pkt *p, const char *src, const char *dst, uint8_t proto, uint16_t frag)
{
	uint8_t h[20] = {0x45, 0, 0, 40, 0, 0, frag >> 8, frag & 0xff, 64, proto};

	inet_pton(AF_INET, src, h + 12);
	inet_pton(AF_INET, dst, h + 16);
	eth(p, 0x0800);
	put(p, h, 20);
}

/* IPv6 with nhdrs extension headers (hop-by-hop then destination options) before proto. */
static void ip6(struct pkt *p, const char *src, const char *dst, uint8_t proto, int nhdrs)
{
	uint8_t h[40] = {0x60, 0, 0, 0, 0, 40, 0, 64};

	h[6] = nhdrs ? 0 : proto;
	inet_pton(AF_INET6, src, h + 8);
	inet_pton(AF_INET6, dst, h + 24);
	eth(p, 0x86DD);
	put(p, h, 40);
	for (int i = 0; i < nhdrs; i++) {
		uint8_t e[8] = {i + 1 < nhdrs ? 60 : proto, 0};

		put(p, e, 8);
	}
}

static void ip6_frag(struct pkt *p, const char *src, const char *dst, uint16_t offset)
{
	uint8_t h[40] = {0x60, 0, 0, 0, 0, 40, 44, 64};
	uint8_t f[8] = {6, 0, (offset << 3) >> 8, (offset << 3) & 0xf8};

	inet_pton(AF_INET6, src, h + 8);
	inet_pton(AF_INET6, dst, h + 24);
	eth(p, 0x86DD);
	put(p, h, 40);
	put(p, f, 8);
}

/* ---------- maps ---------- */

static void inpod(uint32_t pod, uint16_t port, uint32_t flags)
{
	struct bm_inpod_key k = {.pod_id = pod, .port = htons(port)};
	struct bm_inpod v = {.flags = flags};

	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_inpod), &k, &v, BPF_ANY);
}

static struct bm_attest_key attest_key(const char *src, const char *dst, uint16_t sport,
				       uint16_t dport)
{
	struct bm_attest_key k = {.sport = htons(sport), .dport = htons(dport)};

	if (inet_pton(AF_INET, src, k.saddr) == 1) {
		inet_pton(AF_INET, dst, k.daddr);
		k.family = BM_FAM_V4;
	} else {
		inet_pton(AF_INET6, src, k.saddr);
		inet_pton(AF_INET6, dst, k.daddr);
		k.family = BM_FAM_V6;
	}
	return k;
}

static void attest(const char *src, const char *dst, uint16_t sport, uint16_t dport,
		   uint32_t src_pod, uint32_t flags)
{
	struct bm_attest_key k = attest_key(src, dst, sport, dport);
	struct bm_attest v = {.src_pod = src_pod, .flags = flags};

	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_attest), &k, &v, BPF_ANY);
}

static void authz(uint32_t pod, uint32_t src_pod, const char *v4, int bits, uint32_t verdict)
{
	struct bm_authz_key k = {
	    .prefixlen = BM_AUTHZ_FIXED_BITS + 96 + bits, .pod_id = pod, .src_pod = src_pod};
	struct bm_authz v = {.verdict = verdict, .policy_id = 42};

	k.addr[10] = k.addr[11] = 0xff;
	inet_pton(AF_INET, v4, k.addr + 12);
	if (!bits)
		k.prefixlen = BM_AUTHZ_FIXED_BITS;
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_authz), &k, &v, BPF_ANY);
}

static void strict_udp(bool on)
{
	struct bm_conf c = {.flags = on ? BM_CONF_F_STRICT_UDP : 0};
	__u32 zero = 0;

	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_conf), &zero, &c, BPF_ANY);
}

/* Run the judge for pod on p; 1 = judged, and *verdict (1 deliver, 0 drop). */
static int judge(const struct pkt *p, uint32_t pod, int on_lo, uint32_t *v)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b, .data_size_in = p->n, .repeat = 1);

	skel->bss->test_pod = pod;
	skel->bss->test_on_lo = on_lo;
	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.inbound_judge_pkt), &o))
		return -errno;
	*v = skel->bss->verdict;
	/* every packet: the hooks' direct parse reads what the full parser reads */
	if (!skel->bss->direct_same)
		CHECK(0, "bm_parse_direct disagrees with bm_parse");
	return skel->bss->judged;
}

/* The direct parse takes the common packets (and only those) off the full parser. */
static void test_direct_parse(void)
{
	struct pkt p;
	uint32_t v;

	ip4(&p, "10.244.2.9", "10.244.1.2", 6, 0);
	tcp(&p, 40000, 9090, 0x10);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->direct_res, 1, "IPv4 TCP: read directly");
	ip4(&p, "10.244.2.9", "10.244.1.2", 17, 0);
	udp(&p, 40000, 53);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->direct_res, 1, "IPv4 UDP: read directly");
	ip6(&p, "fd00:10:244:2::9", "fd00:10:244:1::2", 6, 0);
	tcp(&p, 40000, 9090, 0x02);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->direct_res, 1, "IPv6 TCP: read directly");
	ip6(&p, "fd00:10:244:2::9", "fd00:10:244:1::2", 6, 1);
	tcp(&p, 40000, 9090, 0x02);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->direct_res, -2, "IPv6 behind an extension header: left to bm_parse");
	ip4(&p, "10.244.2.9", "10.244.1.2", 1, 0);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->direct_res, -2, "ICMP: left to bm_parse");
	ip4(&p, "10.244.2.9", "10.244.1.2", 6, 0x2000 | 8);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->direct_res, -2, "a later fragment: left to bm_parse");
	ip4(&p, "10.244.2.9", "10.244.1.2", 6, 0);
	tcp(&p, 40000, 9090, 0x02);
	p.n = 14 + 20 + 10; /* a TCP header cut short */
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->direct_res, -2, "a truncated TCP header: left to bm_parse");
}

#define EXPECT(p, pod, lo, want_judged, want_verdict, what)                                        \
	do {                                                                                       \
		uint32_t _v = 9;                                                                   \
		int _j = judge(p, pod, lo, &_v);                                                   \
		CHECK_EQ(_j, want_judged, what ": judged");                                        \
		if (want_judged == 1)                                                              \
			CHECK_EQ(_v, want_verdict, what ": verdict");                              \
	} while (0)

/* ---------- cases ---------- */

static void test_v4_syn_to_strict_dropped(void)
{
	struct pkt p;

	ip4(&p, "10.244.2.9", "10.244.1.2", 6, 0);
	tcp(&p, 40000, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "plaintext SYN to STRICT");
	EXPECT(&p, PLAIN_POD, 0, 1, 1, "plaintext SYN to a pod without policy");
}

static void test_only_syns_are_judged(void)
{
	static const uint8_t flags[] = {0x12, 0x10, 0x18, 0x11, 0x04};
	struct pkt p;

	for (size_t i = 0; i < sizeof(flags); i++) {
		ip4(&p, "10.244.2.9", "10.244.1.2", 6, 0);
		tcp(&p, 40000, 9090, flags[i]);
		EXPECT(&p, STRICT_POD, 0, 0, 1, "non-SYN segment");
	}
}

/* The receiving pod decides, whatever address the SYN was sent to: a link-local one, one the
 * pod added, or the pod's own as source (a spoof: src == dst off loopback). */
static void test_any_destination_address_is_judged(void)
{
	struct pkt p;

	ip6(&p, "fe80::1", "fe80::2", 6, 0);
	tcp(&p, 40000, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "SYN to a link-local address");
	ip4(&p, "10.244.2.9", "10.244.1.250", 6, 0);
	tcp(&p, 40000, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "SYN to an address the pod added");
	ip4(&p, "10.244.1.2", "10.244.1.2", 6, 0);
	tcp(&p, 40000, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "SYN claiming the pod's own address, not on lo");
	EXPECT(&p, STRICT_POD, 1, 1, 1, "the pod to itself on lo");
}

static void test_attested_sources(void)
{
	struct pkt p;

	attest("10.244.1.3", "10.244.1.2", 41000, 9090, MESH_SRC, BM_AT_F_MESH);
	attest("10.244.255.1", "10.244.1.2", 41001, 9090, 0, BM_AT_F_AGENT);
	attest("10.244.1.4", "10.244.1.2", 41002, 9090, 11, 0); /* attested, not in the mesh */
	ip4(&p, "10.244.1.3", "10.244.1.2", 6, 0);
	tcp(&p, 41000, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 1, "a local mesh pod, attested");
	ip4(&p, "10.244.1.3", "10.244.1.2", 6, 0);
	tcp(&p, 41009, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "same address, another port: not attested");
	ip4(&p, "10.244.255.1", "10.244.1.2", 6, 0);
	tcp(&p, 41001, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 1, "the agent's delivery");
	ip4(&p, "10.244.1.4", "10.244.1.2", 6, 0);
	tcp(&p, 41002, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "attested but outside the mesh");
}

static void test_port_level_mtls(void)
{
	struct pkt p;

	ip4(&p, "10.244.2.9", "10.244.1.2", 6, 0);
	tcp(&p, 40000, 8080, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 1, "portLevelMtls PERMISSIVE port");
	ip4(&p, "10.244.2.9", "10.244.1.2", 6, 0);
	tcp(&p, 40000, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "other port stays STRICT");
}

static void test_ipv6_extension_headers(void)
{
	struct pkt p;

	ip6(&p, "fd00:244:2::9", "fd00:244:1::2", 6, 2);
	tcp(&p, 40000, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "SYN behind two extension headers");
	CHECK_EQ(skel->bss->parse_res, 1, "the chain is walked");
	ip6(&p, "fd00:244:2::9", "fd00:244:1::2", 6, 7);
	tcp(&p, 40000, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "a chain too long to walk is refused");
	CHECK_EQ(skel->bss->parse_res, -1, "opaque");
	EXPECT(&p, PLAIN_POD, 0, 1, 1, "... only where plaintext is judged");
}

static void test_fragments(void)
{
	struct pkt p;

	ip4(&p, "10.244.2.9", "10.244.1.2", 6, 100);
	tcp(&p, 40000, 9090, 0x02); /* bytes of a later fragment that look like a SYN */
	EXPECT(&p, STRICT_POD, 0, 0, 1, "a later IPv4 fragment carries no header");
	ip6_frag(&p, "fd00:244:2::9", "fd00:244:1::2", 100);
	tcp(&p, 40000, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 0, 1, "a later IPv6 fragment carries no header");
	ip6_frag(&p, "fd00:244:2::9", "fd00:244:1::2", 0);
	tcp(&p, 40000, 9090, 0x02);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "the first IPv6 fragment's SYN is judged");
}

static void test_udp(void)
{
	struct pkt p;

	ip4(&p, "10.244.2.9", "10.244.1.2", 17, 0);
	udp(&p, 5353, 9090);
	strict_udp(false);
	EXPECT(&p, STRICT_POD, 0, 1, 1, "plaintext UDP passes (as Istio)");
	strict_udp(true);
	EXPECT(&p, STRICT_POD, 0, 1, 0, "--strict-udp drop");
	EXPECT(&p, PLAIN_POD, 0, 1, 1, "... only into STRICT pods");
	strict_udp(false);
}

static void test_authz_by_address_and_by_attested_pod(void)
{
	struct pkt p;

	authz(AUTHZ_POD, 0, "0.0.0.0", 0, BM_AUTHZ_ALLOW);
	authz(AUTHZ_POD, 0, "10.0.0.5", 32, BM_AUTHZ_DENY);
	authz(AUTHZ_POD, MESH_SRC, "0.0.0.0", 0, BM_AUTHZ_ALLOW);
	ip4(&p, "10.0.0.5", "10.244.1.7", 6, 0);
	tcp(&p, 42000, 80, 0x02);
	EXPECT(&p, AUTHZ_POD, 0, 1, 0, "ipBlock DENY on the source address");
	ip4(&p, "10.0.0.6", "10.244.1.7", 6, 0);
	tcp(&p, 42000, 80, 0x02);
	EXPECT(&p, AUTHZ_POD, 0, 1, 1, "another address");
	/* the attested pod is judged by its own entries, not by the address it sent from */
	attest("10.0.0.5", "10.244.1.7", 42001, 80, MESH_SRC, BM_AT_F_MESH);
	ip4(&p, "10.0.0.5", "10.244.1.7", 6, 0);
	tcp(&p, 42001, 80, 0x02);
	EXPECT(&p, AUTHZ_POD, 0, 1, 1, "attested pod: its identity's verdict");
	authz(AUTHZ_POD, MESH_SRC, "0.0.0.0", 0, BM_AUTHZ_DENY);
	EXPECT(&p, AUTHZ_POD, 0, 1, 0, "attested pod denied by identity");
}

static void test_source_check(void)
{
	struct bm_pod pod = {.pod_id = MESH_SRC};
	struct pkt p;
	uint32_t v;

	inet_pton(AF_INET, "10.244.1.3", pod.addr4);
	inet_pton(AF_INET6, "fd00:244:1::3", pod.addr6);
	skel->bss->test_sender = pod;
	ip4(&p, "10.244.1.3", "10.244.2.2", 6, 0);
	tcp(&p, 40000, 80, 0x02);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->src_ok, 1, "its own IPv4");
	ip4(&p, "10.244.1.4", "10.244.2.2", 6, 0);
	tcp(&p, 40000, 80, 0x02);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->src_ok, 0, "another pod's IPv4");
	ip6(&p, "fe80::1234", "fe80::1", 58, 0);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->src_ok, 1, "link-local");
	ip6(&p, "fd00:244:1::4", "fd00:244:2::2", 6, 0);
	tcp(&p, 40000, 80, 0x02);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->src_ok, 0, "another pod's IPv6");
	memset(&pod, 0, sizeof(pod));
	skel->bss->test_sender = pod;
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->src_ok, 1, "addresses not known yet: not checked");
}

/* The egress guard for the agent's ports on a pod's own node: a SYN to the outbound capture
 * port or the HTTP path's port only from a socket the kernel sent there itself (its bm_sock
 * record says so); any other port of that number, and segments after the SYN, pass. */
static void test_agent_port_guard(void)
{
	struct bm_node node = {.outbound_port = htons(BM_PORT_OUTBOUND),
			       .flags = BM_NODE_F_L7,
			       .l7_port = htons(BM_PORT_HTTP)};
	const struct bm_sock l7 = {.sub_flags = BM_CONN_F_L7}, tun = {.sub_flags = BM_CONN_F_TUNNEL},
			     plain = {};
	int nfd = bpf_map__fd(skel->maps.bm_node);
	__u32 zero = 0, v;
	struct pkt p;
	const struct {
		const char *dst;
		uint16_t port;
		uint8_t flags;
		const struct bm_sock *rec; /* NULL: the socket has none */
		uint32_t want;
		const char *what;
	} cases[] = {
	    {"10.244.255.1", BM_PORT_HTTP, 0x02, &l7, 1, "SYN to 15006 the kernel sent"},
	    {"10.244.255.1", BM_PORT_HTTP, 0x02, &plain, 0, "SYN to 15006 dialed by the pod"},
	    {"10.244.255.1", BM_PORT_HTTP, 0x02, NULL, 0, "SYN to 15006, no record"},
	    {"10.244.255.1", BM_PORT_HTTP, 0x02, &tun, 0, "a tunnel capture is not the HTTP path's"},
	    {"10.244.255.1", BM_PORT_OUTBOUND, 0x02, &tun, 1, "SYN to 15001 the kernel sent"},
	    {"10.244.255.1", BM_PORT_OUTBOUND, 0x02, &l7, 0, "an HTTP capture is not the tunnel's"},
	    {"10.244.255.1", BM_PORT_OUTBOUND, 0x02, NULL, 0, "SYN to 15001, no record"},
	    {"10.244.255.1", BM_PORT_HTTP, 0x10, &plain, 1, "not a SYN: the stack answers it"},
	    {"10.244.1.9", BM_PORT_HTTP, 0x02, &plain, 1, "another host's port 15006"},
	};

	inet_pton(AF_INET, "10.244.255.1", node.addr4);
	bpf_map_update_elem(nfd, &zero, &node, BPF_ANY);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ip4(&p, "10.244.1.3", cases[i].dst, 6, 0);
		tcp(&p, 40000, cases[i].port, cases[i].flags);
		skel->bss->test_has_rec = cases[i].rec != NULL;
		skel->bss->test_rec = cases[i].rec ? *cases[i].rec : plain;
		judge(&p, PLAIN_POD, 0, &v);
		CHECK_EQ(skel->bss->port_ok, cases[i].want, cases[i].what);
	}
	/* the HTTP path not listening (BM_NODE_F_L7 off): nothing gets to 15006 */
	node.flags = 0;
	bpf_map_update_elem(nfd, &zero, &node, BPF_ANY);
	ip4(&p, "10.244.1.3", "10.244.255.1", 6, 0);
	tcp(&p, 40000, BM_PORT_HTTP, 0x02);
	skel->bss->test_has_rec = 1;
	skel->bss->test_rec = l7;
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->port_ok, 0, "15006 while the HTTP path is off");
	ip4(&p, "10.244.1.3", "10.244.255.1", 17, 0);
	udp(&p, 40000, BM_PORT_HTTP);
	judge(&p, PLAIN_POD, 0, &v);
	CHECK_EQ(skel->bss->port_ok, 0, "UDP to an agent port");
	memset(&node, 0, sizeof(node));
	bpf_map_update_elem(nfd, &zero, &node, BPF_ANY);
	skel->bss->test_has_rec = 0;
}

int main(void)
{
	if (geteuid() != 0)
		return CHECK_SKIP_ALL("inbound", "needs root for BPF");
	skel = inbound_test_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "inbound_test.bpf.o: load failed\n");
		printf("inbound: 0 passed, 1 failed\n");
		return 1;
	}
	inpod(STRICT_POD, 0, BM_IN_F_STRICT | BM_IN_F_JUDGED);
	inpod(STRICT_POD, 8080, 0);
	inpod(AUTHZ_POD, 0, BM_IN_F_AUTHZ | BM_IN_F_JUDGED);
	RUN(test_v4_syn_to_strict_dropped);
	RUN(test_only_syns_are_judged);
	RUN(test_any_destination_address_is_judged);
	RUN(test_attested_sources);
	RUN(test_port_level_mtls);
	RUN(test_ipv6_extension_headers);
	RUN(test_fragments);
	RUN(test_udp);
	RUN(test_authz_by_address_and_by_attested_pod);
	RUN(test_source_check);
	RUN(test_agent_port_guard);
	RUN(test_direct_parse);
	inbound_test_bpf__destroy(skel);
	return CHECK_DONE("inbound");
}
