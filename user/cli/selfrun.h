/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * selfrun.h: run another bpfmesh command (this same binary, /proc/self/exe) from its argv,
 * never through a shell, and collect what it prints. The pipeline stages use it to drive the
 * lab (`lab apply`, `lab exec`, `lab status`) and to read a node's maps as `bpfmesh services`
 * shows them, so they go through the same interfaces a user does and the CLI never links the
 * lab.
 */
#ifndef BM_SELFRUN_H
#define BM_SELFRUN_H

/* Run `bpfmesh ARGV...` (argv[0] is the first argument after the binary; NULL-terminated) for
 * at most timeout_ms. *out / *err (each may be NULL) get what it wrote to stdout / stderr,
 * NUL-terminated, for the caller to free. Returns its exit status, 124 when it ran out of
 * time (killed), or -1 when it could not be started. */
int selfrun(char *const argv[], int timeout_ms, char **out, char **err);

#endif /* BM_SELFRUN_H */
