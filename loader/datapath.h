/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * datapath.h: loading, attaching and pinning the BPF programs of one agent instance, and
 * finding the pinned maps again (CLI commands, restarted agents). Pins live under
 * <bpffs>/bpfmesh/<node>/: maps by their names, links as link_<program>.
 */
#ifndef BM_DATAPATH_H
#define BM_DATAPATH_H

#include <stdbool.h>
#include <stddef.h>
#include "bpfmesh.h"

/* File descriptors of the shared maps (BM_MAPS in bpfmesh.h); -1 when not open. */
struct bm_mapfds {
#define BM_MAPFD_FIELD(field, name) int field;
#define BM_MAPFD_NONE(name)
	BM_MAPS(BM_MAPFD_FIELD, BM_MAPFD_NONE)
#undef BM_MAPFD_FIELD
#undef BM_MAPFD_NONE
};

/* Socket filters for the agent's own listeners (bpf/listen.bpf.c). */
enum dp_listener { DP_LISTEN_OUTBOUND = 0, DP_LISTEN_HBONE = 1 };

struct dp;

/* Directory of an agent's pins: <bpffs>/bpfmesh/<node>. */
int dp_pin_dir(char *buf, size_t len, const char *bpffs, const char *node);

/* Mount bpffs at dir if it is not one already (the agent does this; nodes rarely have it). */
int dp_ensure_bpffs(const char *dir);

/* The cgroup v2 mount point, read from /proc/mounts (never assumed). */
int dp_cgroup2_root(char *buf, size_t len);

/*
 * Load programs, reusing pinned maps when present (so state survives restarts and upgrades),
 * and attach them to cgroup_dir through pinned links. A link already pinned is updated in place
 * to the new program, so there is no moment without a program attached. conf (bm_conf) is
 * written before anything is attached, so the programs never run with a stale switch. The
 * sk_msg program is attached to bm_sockhash (no link: the map holds it).
 */
struct dp *dp_load_attach(const char *pin_dir, const char *cgroup_dir, const struct bm_conf *conf);
void dp_mapfds(const struct dp *dp, struct bm_mapfds *fds);
/* The source address verification program for pods' veths (bpf/sav.bpf.c), or -1. */
int dp_sav_prog(const struct dp *dp);
/* The socket filter program for one of the agent's listeners (SO_ATTACH_BPF), or -1. */
int dp_listener_prog(const struct dp *dp, enum dp_listener which);
/* Closes fds; pins stay (the kernel path keeps working without the agent). */
void dp_close(struct dp *dp);

/* Open the pinned maps of pin_dir (read-write). Returns 0 or -errno. */
int dp_open_pinned(const char *pin_dir, struct bm_mapfds *fds);
void dp_close_fds(struct bm_mapfds *fds);

/* true if every program's link is pinned under pin_dir and still attached. */
bool dp_links_attached(const char *pin_dir);

/* Sockets in bm_sockhash now (same-node acceleration), or -errno. */
long dp_sockhash_count(int sockhash_fd);

/* Remove every pin under pin_dir (links first: that detaches), then the directory. */
int dp_uninstall(const char *pin_dir);

#endif /* BM_DATAPATH_H */
