// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * main.c: the `bpfmesh` binary: one CLI for the node agent (loader/), config validation and
 * inspection (user/cli/) and the local lab (user/lab/). Only dispatch lives here: the one file
 * that sees all three; none of them sees another.
 */
#include <stdio.h>
#include <string.h>
#include "agent.h"
#include "cli.h"
#include "lab.h"
#include "metrics.h"
#include "version.h"

struct subcmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct subcmd cmds[] = {
    {"agent", cmd_agent, "run the node agent (--config-dir DIR --cgroup DIR --node NAME)"},
    {"validate", cmd_validate, "check Kubernetes/Istio YAML files as Istio would"},
    {"analyze", cmd_analyze, "validate, and say where bpfmesh differs from Istio (-f FILE)"},
    {"status", cmd_status, "is the node's agent attached with its config (--node NAME)"},
    {"services", cmd_services, "service addresses, routes and backends in the kernel"},
    {"endpoints", cmd_endpoints, "each backend: healthy or ejected, counters, connections"},
    {"observe", cmd_observe, "the flow log: connection events (--node NAME [--follow] [--json])"},
    {"graph", cmd_graph,
     "service graph from live counters (--node NAME|--all --format dot|json|svg)"},
    {"canary", cmd_canary,
     "progressive canary with metric checks and rollback (run -f CANARY.yaml --lab NAME)"},
    {"verify", cmd_verify, "check mTLS and authorization against expectations (-f EXPECT.yaml)"},
    {"uninstall", cmd_uninstall, "stop the node's agent and remove every pin (--node NAME)"},
    {"lab", cmd_lab, "pods on this machine: up, apply, delete, exec, stop, start, status, down"},
    {"ca", cmd_ca, "mesh CA and workload certificates: init, issue, show, node, serve"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: bpfmesh COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "  %-10s %s\n  %-10s %s\n\n", "version", "the version of this binary", "help",
		"help [COMMAND [SUBCOMMAND]]: a command's usage");
	fprintf(f, "Every command and subcommand takes -h/--help.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("bpfmesh %s (map ABI %d)\n", BM_VERSION, BM_MAP_ABI);
		return 0;
	}
	metrics_set_build_tag(BM_VERSION); /* the agent's istio_build */
	/* `bpfmesh help [COMMAND [SUB]]`: that command's --help */
	if (!strcmp(argv[1], "help")) {
		char help[] = "--help", *av[4] = {NULL, NULL, NULL, NULL};

		if (argc < 3) {
			usage(stdout);
			return 0;
		}
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
			if (strcmp(argv[2], cmds[i].name))
				continue;
			av[0] = argv[2];
			av[1] = argc > 3 ? argv[3] : help;
			av[2] = argc > 3 ? help : NULL;
			return cmds[i].fn(argc > 3 ? 3 : 2, av);
		}
		fprintf(stderr, "bpfmesh help: unknown command '%s'\n", argv[2]);
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "bpfmesh: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
