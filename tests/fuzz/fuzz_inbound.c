// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fuzz_inbound.c: libFuzzer target for the inbound packet path in the kernel: every input is
 * an Ethernet frame run through the packet parser (bpf/pkt.h) and the inbound judge
 * (bpf/inbound.h) by tests/bpf/inbound_test.bpf.c with bpf_prog_test_run_opts. The verifier
 * rules out crashes; what is checked is the promise: with nothing attested and the pod
 * STRICT on every port, no TCP SYN (however its headers are dressed: IPv6 extension chains,
 * fragments, options) and no UDP datagram under --strict-udp is ever delivered. Needs root.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpfmesh.h"
#include "inbound_test.skel.h"

static struct inbound_test_bpf *skel;

static int silent(enum libbpf_print_level l, const char *f, va_list a)
{
	(void)l;
	(void)f;
	(void)a;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct bm_inpod_key k = {.pod_id = 7};
	struct bm_inpod v = {.flags = BM_IN_F_STRICT | BM_IN_F_JUDGED};
	struct bm_conf c = {.flags = BM_CONF_F_STRICT_UDP};
	__u32 zero = 0;

	(void)argc;
	(void)argv;
	libbpf_set_print(silent);
	skel = inbound_test_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "fuzz_inbound: cannot load inbound_test.bpf.o (root, BTF?)\n");
		exit(1);
	}
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_inpod), &k, &v, BPF_ANY);
	bpf_map_update_elem(bpf_map__fd(skel->maps.bm_conf), &zero, &c, BPF_ANY);
	skel->bss->test_pod = 7;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t frame[1600];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .repeat = 1);

	if (size < 14 || size > sizeof(frame))
		return 0;
	memcpy(frame, data, size);
	o.data_size_in = size;
	skel->bss->judged = 0;
	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.inbound_judge_pkt), &o))
		return 0;
	if (!skel->bss->direct_same) {
		fprintf(stderr, "fuzz_inbound: bm_parse_direct read the packet otherwise than "
				"bm_parse\n");
		abort();
	}
	if (skel->bss->judged && skel->bss->verdict) {
		fprintf(stderr, "fuzz_inbound: a connection opening was delivered to a STRICT pod "
				"with nothing attested\n");
		abort();
	}
	return 0;
}
