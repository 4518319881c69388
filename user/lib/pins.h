/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pins.h: where a node agent's kernel state lives and how anyone reads it, without loading a
 * program: its pins under <bpffs>/bpfmesh/<node>/ (maps by name, links as link_<program>, per
 * pod sk_lookup links as inpod_<pod id>), its run directory /run/bpfmesh/<node>/ (lock, the
 * bpffs it used, the certificates in force), and their removal. Used by the CLI (status,
 * services, observe, uninstall), the lab and the agent; the agent's loader (loader/datapath.h)
 * is the only writer of programs.
 */
#ifndef BM_PINS_H
#define BM_PINS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "bpfmesh.h"

/* File descriptors of the shared maps (BM_MAPS in bpfmesh.h); -1 when not open. */
struct bm_mapfds {
#define BM_MAPFD_FIELD(field, name) int field;
#define BM_MAPFD_NONE(name)
	BM_MAPS(BM_MAPFD_FIELD, BM_MAPFD_NONE)
#undef BM_MAPFD_FIELD
#undef BM_MAPFD_NONE
};

/* The source address verification filter on pods' host-side veths (loader/podnet.c puts it
 * there, dp_uninstall takes it off): its handle and priority on clsact ingress. */
#define BM_TC_HANDLE 0xb5ec
#define BM_TC_PRIO   1

/* Directory of an agent's pins: <bpffs>/bpfmesh/<node>. */
int dp_pin_dir(char *buf, size_t len, const char *bpffs, const char *node);

/* The cgroup v2 mount point, read from /proc/mounts (never assumed). */
int dp_cgroup2_root(char *buf, size_t len);

/* Open the pinned maps of pin_dir (read-write). Returns 0 or -errno. */
int dp_open_pinned(const char *pin_dir, struct bm_mapfds *fds);
void dp_close_fds(struct bm_mapfds *fds);

/* true if every node cgroup program's link is pinned under pin_dir and still attached. */
bool dp_links_attached(const char *pin_dir);

/* Sockets in bm_sockhash now (same-node acceleration), or -errno. */
long dp_sockhash_count(int sockhash_fd);

/* Remove every pin under pin_dir (links first: that detaches) and the pods' veth filters,
 * then the directory. */
int dp_uninstall(const char *pin_dir);

/* `bpfmesh uninstall`: stop node's agent (SIGTERM, then SIGKILL after 5 s), remove its pins,
 * filters and run directory. 0, or -1 with errno. */
int pins_uninstall_node(const char *node, const char *pin_dir);

/* BM_CGROUP_PROGS and BM_MAPS as lists (pin names), for the loader and for whoever checks. */
const char *const *pins_cgroup_progs(size_t *n);
size_t pins_nmaps(void);
const char *pins_map_name(size_t i);
int *pins_map_fd(struct bm_mapfds *f, size_t i); /* NULL: a map not kept open */

/* /run/bpfmesh/<node>: lock file, bpffs note, certs/ and rejected (objects the last apply
 * rejected) of one agent. */
int agent_run_dir(char *buf, size_t len, const char *node);

/* The bpffs an agent for node last ran with (NULL if unknown): the CLI's default --bpffs. */
const char *agent_bpffs(const char *node, char *buf, size_t len);

/* pid of the running agent for node, or 0 if none holds its lock. */
pid_t agent_pid(const char *node);

#endif /* BM_PINS_H */
