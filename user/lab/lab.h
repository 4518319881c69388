/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lab.h: `bpfmesh lab`, the local lab (a tool of the product, not its core: it uses the
 * library and runs the agent as a program, never links into it).
 */
#ifndef BM_LAB_H
#define BM_LAB_H

int cmd_lab(int argc, char **argv);

#endif /* BM_LAB_H */
