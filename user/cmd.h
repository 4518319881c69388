/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * cmd.h: the `bpfmesh` subcommands, each `int cmd_x(int argc, char **argv)` with argv[0] the
 * subcommand name; main.c dispatches to them and exits with what they return.
 */
#ifndef BM_CMD_H
#define BM_CMD_H

int cmd_validate(int argc, char **argv);
int cmd_analyze(int argc, char **argv);

#endif /* BM_CMD_H */
