/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * cli.h: entry points of the `bpfmesh` CLI's subcommands (user/cli/). Each takes the argv
 * starting at the subcommand name and returns the process exit code. Dispatched by
 * cmd/main.c; they use the library (user/lib) and the pins' read side, never the agent.
 */
#ifndef BM_CLI_H
#define BM_CLI_H

int cmd_validate(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_services(int argc, char **argv);
int cmd_endpoints(int argc, char **argv);
int cmd_observe(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_canary(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_uninstall(int argc, char **argv);
int cmd_ca(int argc, char **argv);
/* `bpfmesh ca serve` / `ca node` (ca_serve.c), dispatched by cmd_ca */
int ca_serve_cmd(int argc, char **argv);
int ca_node_cmd(int argc, char **argv);
extern const char ca_serve_usage[], ca_node_usage[];

#endif /* BM_CLI_H */
