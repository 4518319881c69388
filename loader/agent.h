/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * agent.h: the node agent's entry point (cmd/main.c dispatches `bpfmesh agent` here). What
 * the CLI needs to know of a running agent is in user/lib/pins.h.
 */
#ifndef BM_AGENT_H
#define BM_AGENT_H

#include <stddef.h>
#include <sys/types.h>
#include "datapath.h"
#include "model.h"
#include "resolve.h"

int cmd_agent(int argc, char **argv);

#endif /* BM_AGENT_H */
