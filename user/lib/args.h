/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * args.h: what every bpfmesh command shares in reading its arguments. `-h`/`--help` anywhere
 * before a `--` asks for the command's usage (on stdout, exit 0), as kubectl and istioctl do.
 */
#ifndef BM_ARGS_H
#define BM_ARGS_H

#include <stdbool.h>

/* Whether argv[1..argc) holds -h or --help before any "--". */
bool args_help(int argc, char **argv);

#endif /* BM_ARGS_H */
