/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * agent.h: the node agent's entry point and the facts about a running agent that the CLI
 * (status, uninstall, lab) needs: where its run directory is and which process holds it.
 */
#ifndef BM_AGENT_H
#define BM_AGENT_H

#include <stddef.h>
#include <sys/types.h>
#include "datapath.h"
#include "model.h"
#include "resolve.h"

int cmd_agent(int argc, char **argv);

/* /run/bpfmesh/<node>: lock file and logs of one agent. */
int agent_run_dir(char *buf, size_t len, const char *node);

/* The bpffs an agent for node last ran with (NULL if unknown): the CLI's default --bpffs. */
const char *agent_bpffs(const char *node, char *buf, size_t len);

/* pid of the running agent for node, or 0 if none holds its lock. */
pid_t agent_pid(const char *node);

#endif /* BM_AGENT_H */
