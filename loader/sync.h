/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sync.h: puts a resolved service table (user/lib/resolve.h) into the kernel maps, atomically per
 * service, and keeps the id and slot allocators that make that possible. Called by the agent
 * on every config change; also by the BPF program tests, which drive it against the test
 * object's own (unpinned) maps.
 */
#ifndef BM_SYNC_H
#define BM_SYNC_H

#include <stdint.h>
#include "datapath.h"
#include "resolve.h"

/* Injectable clock (milliseconds, monotonic) so quarantine timing is testable. */
struct sync_clock {
	uint64_t (*now_ms)(void *arg);
	void *arg;
};

struct sync_result {
	int services_written; /* services whose entry was replaced or added */
	int services_deleted;
	int services_unchanged;
	int backends; /* distinct backends in force */
};

/* A local workload for bm_pod. */
struct sync_pod {
	uint64_t cgroup_id;
	struct bm_pod pod;
};

struct sync;

/* fds are borrowed (caller keeps them open). clk may be NULL for CLOCK_MONOTONIC. */
struct sync *sync_new(const struct bm_mapfds *fds, const struct sync_clock *clk);
void sync_free(struct sync *s);

/* Read back what the maps hold (restarted agent): ids, slots, backends in use. */
int sync_recover(struct sync *s);

/*
 * Make the maps hold t. Checks capacity first: if anything would not fit, returns -ENOSPC with
 * an error naming the map in d and changes nothing. Services whose content did not change are
 * not touched. Returns 0 or -errno.
 */
int sync_apply(struct sync *s, const struct rs_table *t, struct diags *d, struct sync_result *res);

/* The id of a backend in force, 0 if it has none. */
uint32_t sync_backend_lookup(struct sync *s, const struct rs_backend *b);

/* Replace the contents of bm_pod with pods (n entries). */
int sync_set_pods(struct sync *s, const struct sync_pod *pods, int n);

/* What the last apply that put a config in force did (bm_meta, `bpfmesh status`). */
struct sync_apply_stats {
	uint32_t objects; /* in the config */
	uint32_t changed; /* added, changed or removed since the one before */
	uint32_t writes;  /* map entries written or deleted */
	uint32_t us;	  /* from the change seen to in force */
};
void sync_set_apply_stats(struct sync *s, const struct sync_apply_stats *st);

/* Release quarantined ids older than BM_ID_QUARANTINE_MS; cheap, call from a timer. */
void sync_tick(struct sync *s);

/* Outlier detection's interval work (Envoy's interval timer): un-eject hosts whose ejection
 * time is up and decay multipliers, each host once per its interval. now_ns is
 * CLOCK_MONOTONIC, the kernel's bpf_ktime_get_ns. Returns the number of hosts un-ejected. */
int sync_health_tick(struct sync *s, uint64_t now_ns);

/* Write a display name "a/b/c/d" (bm_names) for the CLI, e.g. a pod's
 * namespace/workload/pod/version. */
void put_name4(struct sync *s, uint32_t kind, uint32_t id, const char *a, const char *b,
	       const char *c, const char *d);

/* The agent's HTTP path is listening (or not): ports that need it get BM_SVC_F_L7 at the
 * next apply. */
void sync_set_l7(struct sync *s, bool on);

/* At start: keep bm_meta as an earlier agent left it (its config is still in force), or
 * start it empty for new maps. */
void sync_init_meta(struct sync *s);

/* Record an apply attempt in bm_meta (generation, ok, counts, and the config_dir_stamp() of
 * what it read, when not 0). */
void sync_set_meta(struct sync *s, int ok, int loaded, uint64_t stamp);
/* Only the stamp: what is in force is what was read at this later stamp too. */
void sync_set_stamp(struct sync *s, uint64_t stamp);

#endif /* BM_SYNC_H */
