/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * datapath.h: loading, attaching and pinning the BPF programs of one agent instance (the
 * agent only). Reading what is pinned is user/lib/pins.h, for every module.
 */
#ifndef BM_DATAPATH_H
#define BM_DATAPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <bpf/bpf.h>
#include "bpfmesh.h"
#include "pins.h"

/* Socket filters for the agent's own listeners (bpf/listen.bpf.c). */
enum dp_listener { DP_LISTEN_OUTBOUND = 0, DP_LISTEN_HBONE = 1 };

struct dp;

/* Mount bpffs at dir if it is not one already (the agent does this; nodes rarely have it). */
int dp_ensure_bpffs(const char *dir);

/*
 * Load programs, reusing pinned maps when present (so state survives restarts and upgrades),
 * and attach them to cgroup_dir through pinned links. A link already pinned is updated in place
 * to the new program, so there is no moment without a program attached. conf (bm_conf) is
 * written before anything is attached, so the programs never run with a stale switch. The
 * sk_msg program is attached to bm_sockhash (no link: the map holds it).
 */
struct dp *dp_load_attach(const char *pin_dir, const char *cgroup_dir, const struct bm_conf *conf);
void dp_mapfds(const struct dp *dp, struct bm_mapfds *fds);
/* The gateway's XDP early drop (bpf/xdp_gw.bpf.c): its program and maps; -1 if not loaded. */
struct dp_xdp_fds {
	int prog, conf, port, deny, allow, stats;
};
int dp_xdp(const struct dp *dp, struct dp_xdp_fds *out);
/* The source address verification program for pods' veths (bpf/sav.bpf.c), or -1. */
int dp_sav_prog(const struct dp *dp);
/* The socket filter program for one of the agent's listeners (SO_ATTACH_BPF), or -1. */
int dp_listener_prog(const struct dp *dp, enum dp_listener which);
/* Closes fds; pins stay (the kernel path keeps working without the agent). */
void dp_close(struct dp *dp);

/*
 * Every map write of the agent goes through these: 0, or -errno after a WARN line naming the
 * map (what) and the error. A delete of an absent key is no failure. Callers decide what a
 * failure means; security state and service entries fail the apply (sync.c, secsync.c).
 */
/* Map entries this thread wrote or deleted through the functions here: the agent's apply
 * reports how many it took (`bpfmesh status`). */
extern _Thread_local unsigned long long dp_writes;

/* bpf_map_update_elem / bpf_map_delete_elem, counted in dp_writes; errors as theirs. */
static inline int dp_put_raw(int fd, const void *key, const void *val, unsigned long long flags)
{
	dp_writes++;
	return bpf_map_update_elem(fd, key, val, flags);
}

static inline int dp_del_raw(int fd, const void *key)
{
	dp_writes++;
	return bpf_map_delete_elem(fd, key);
}

/* dp_map_put unless the entry holds val already (vsz bytes, at most 256): what the agent
 * rewrites on every apply and rescan (pods, their addresses) costs no write when unchanged. */
int dp_map_put_changed(int fd, const void *key, const void *val, size_t vsz, const char *what);

int dp_map_put(int fd, const void *key, const void *val, unsigned long long flags,
	       const char *what);
int dp_map_del(int fd, const void *key, const char *what);

#endif /* BM_DATAPATH_H */
