// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_xdpgw.c: the gateway's XDP early drop (bpf/xdp_gw.bpf.c, the shipped program) run in
 * the kernel with bpf_prog_test_run_opts on packet fixtures: what is not ours passes (another
 * address, another port, UDP, IPv6, a truncated header), a DENY prefix drops, allow-only mode
 * drops what is outside the ALLOW prefixes, the SYN bucket passes its burst and drops the
 * rest (ACKs are never limited); each verdict counted in bm_xstats. Needs root (BPF).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include "check.h"
#include "bpfmesh.h"
#include "xdp_gw.skel.h"

#define NODE "10.244.255.1"

static struct xdp_gw_bpf *skel;

struct pkt {
	uint8_t b[128];
	size_t n;
};

/* eth + IPv4 (proto) + 20-byte TCP/UDP header */
static struct pkt packet(const char *src, const char *dst, uint8_t proto, uint16_t dport,
			 uint8_t tcp_flags)
{
	struct pkt p = {.n = 14 + 20 + 20};
	uint8_t *ip = p.b + 14, *l4 = ip + 20;

	p.b[12] = 0x08;
	ip[0] = 0x45, ip[3] = 40, ip[8] = 64, ip[9] = proto;
	inet_pton(AF_INET, src, ip + 12);
	inet_pton(AF_INET, dst, ip + 16);
	l4[0] = 0x9c, l4[1] = 0x40; /* sport 40000 */
	l4[2] = dport >> 8, l4[3] = dport & 0xff;
	l4[12] = 5 << 4;
	l4[13] = tcp_flags;
	return p;
}

static int run(const struct pkt *p)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b, .data_size_in = p->n, .repeat = 1);

	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.bm_xdp_gw), &o))
		return -errno;
	return (int)o.retval;
}

static uint64_t xstat(uint32_t id)
{
	int n = libbpf_num_possible_cpus();
	uint64_t *v = calloc(n, sizeof(*v)), s = 0;

	if (v && !bpf_map_lookup_elem(bpf_map__fd(skel->maps.bm_xstats), &id, v))
		for (int i = 0; i < n; i++)
			s += v[i];
	free(v);
	return s;
}

static void conf(uint32_t flags, uint32_t rate)
{
	struct bm_xconf c = {.flags = flags, .syn_rate = rate, .syn_burst = rate};
	uint32_t zero = 0;

	inet_pton(AF_INET, NODE, c.node_ip4);
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_xconf), &zero, &c, BPF_ANY);
}

static void prefix(int fd, const char *addr, uint32_t len)
{
	struct bm_xprefix k = {.len = len};
	uint8_t one = 1;

	inet_pton(AF_INET, addr, k.addr);
	bpf_map_update_elem(fd, &k, &one, BPF_ANY);
}

static void test_early_drop(void)
{
	uint16_t port = htons(80);
	uint8_t one = 1;
	struct pkt p;
	int drops = 0;

	conf(0, 0);
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_xport), &port, &one, BPF_ANY);
	prefix(bpf_map__fd(skel->maps.bm_xdeny), "192.0.2.0", 24);

	/* not ours: passes, uncounted */
	p = packet("192.0.2.7", "10.244.255.2", 6, 80, 0x02);
	CHECK_EQ(run(&p), XDP_PASS, "another address passes");
	p = packet("192.0.2.7", NODE, 6, 81, 0x02);
	CHECK_EQ(run(&p), XDP_PASS, "another port passes");
	p = packet("192.0.2.7", NODE, 17, 80, 0);
	CHECK_EQ(run(&p), XDP_PASS, "UDP passes");
	p = packet("192.0.2.7", NODE, 6, 80, 0x02);
	p.n = 14 + 20 + 10;
	CHECK_EQ(run(&p), XDP_PASS, "a truncated TCP header passes (the stack drops it)");
	CHECK_EQ(xstat(BM_XST_PASS) + xstat(BM_XST_POLICY), 0, "none of those counted");

	/* DENY prefix */
	p = packet("192.0.2.7", NODE, 6, 80, 0x02);
	CHECK_EQ(run(&p), XDP_DROP, "a SYN from a denied prefix is dropped");
	p = packet("192.0.2.7", NODE, 6, 80, 0x10);
	CHECK_EQ(run(&p), XDP_DROP, "any segment from it is");
	p = packet("198.51.100.1", NODE, 6, 80, 0x02);
	CHECK_EQ(run(&p), XDP_PASS, "another source passes");
	CHECK_EQ(xstat(BM_XST_POLICY), 2, "two policy drops counted");
	CHECK_EQ(xstat(BM_XST_PASS), 1, "one pass counted");

	/* fragments: a later one passes (nothing reassembles without the first); a first one
	 * too short for the TCP header (RFC 1858: the port hidden from filters) is dropped */
	p = packet("192.0.2.7", NODE, 6, 80, 0x02);
	p.b[14 + 6] = 0x00, p.b[14 + 7] = 0x10; /* offset 16 * 8 */
	CHECK_EQ(run(&p), XDP_PASS, "a later fragment passes, whatever its bytes say");
	p = packet("198.51.100.1", NODE, 6, 80, 0x02);
	p.b[14 + 6] = 0x20; /* MF, offset 0 */
	p.n = 14 + 20 + 8;
	p.b[14 + 3] = 28; /* tot_len: 8 bytes of TCP */
	CHECK_EQ(run(&p), XDP_DROP, "a tiny first fragment is dropped, from any source");
	CHECK_EQ(xstat(BM_XST_POLICY), 3, "and counted");

	/* allow-only */
	conf(BM_XCONF_F_ALLOW_ONLY, 0);
	prefix(bpf_map__fd(skel->maps.bm_xallow), "198.51.100.0", 25);
	p = packet("198.51.100.1", NODE, 6, 80, 0x02);
	CHECK_EQ(run(&p), XDP_PASS, "an allowed prefix passes");
	p = packet("198.51.100.200", NODE, 6, 80, 0x02);
	CHECK_EQ(run(&p), XDP_DROP, "outside the ALLOW prefixes: dropped");
	p = packet("192.0.2.7", NODE, 6, 80, 0x02);
	CHECK_EQ(run(&p), XDP_DROP, "DENY still wins");

	/* SYN rate: a burst of 3, then drops; ACKs are not limited */
	conf(0, 3);
	for (int i = 0; i < 10; i++) {
		p = packet("203.0.113.9", NODE, 6, 80, 0x02);
		drops += run(&p) == XDP_DROP;
	}
	CHECK(drops >= 6 && drops <= 7,
	      "10 SYNs at once, a bucket of 3: 7 dropped (6 if one token refilled)");
	CHECK_EQ(xstat(BM_XST_SYN_RATE), (uint64_t)drops, "each SYN drop counted");
	p = packet("203.0.113.9", NODE, 6, 80, 0x10);
	CHECK_EQ(run(&p), XDP_PASS, "an ACK of that source is not limited");
	p = packet("203.0.113.10", NODE, 6, 80, 0x02);
	CHECK_EQ(run(&p), XDP_PASS, "another source has its own bucket");
}

int main(void)
{
	skel = xdp_gw_bpf__open_and_load();
	if (!skel)
		return CHECK_SKIP_ALL("xdpgw",
				      "cannot load bpf/xdp_gw.bpf.c (not root, or no BTF)");
	RUN(test_early_drop);
	xdp_gw_bpf__destroy(skel);
	return CHECK_DONE("xdpgw");
}
