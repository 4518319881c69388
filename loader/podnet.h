/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * podnet.h: what the agent attaches to each local pod's own network, as opposed to the node
 * cgroup (datapath.h):
 *  - an instance of the inbound judge at the socket lookup of the pod's network namespace
 *    (bpf/inpod.bpf.c), so a connection the pod's policy refuses is answered with a reset at
 *    once, whatever address it was sent to. Links are pinned (<pin dir>/inpod_<pod id>), so
 *    they outlive the agent; an agent that starts updates them to its own program, and
 *    removes the ones of pods that are gone;
 *  - with the mTLS tunnel, a listener on port 15008 in the pod's namespace (ztunnel's in-pod
 *    addressing: a tunnel to the pod's own address), put in bm_hbone for the pod's sk_lookup
 *    program and handed to the tunnel (podnet_set_hbone), which owns it;
 *  - source address verification (bpf/sav.bpf.c) at tc ingress of the pod's host-side veths
 *    (the veths of the agent's namespace whose peer is in the pod's), with the pod's
 *    addresses in bm_ifpod. The filter goes with the veth when the pod goes.
 * Called by the agent after every pod rescan.
 * A pod is found in its network namespace through a process of its cgroup; pods that share
 * the node's namespace (hostNetwork) get none (the cgroup hooks still judge them).
 */
#ifndef BM_PODNET_H
#define BM_PODNET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bpfmesh.h"

struct podnet_pod {
	uint32_t pod_id;    /* config_pod_id() */
	const char *cgroup; /* the pod's own cgroup directory */
	struct bm_pod pod;  /* what bm_pod says of it (addresses, for bm_ifpod) */
	bool hbone;	    /* in: wants an HBONE listener in its namespace (a mesh pod) */
	bool sav;	    /* out: its veths are verified at tc */
};

/* The tunnel takes a pod's listener (0: it owns fd from here on) and lets it go. */
typedef int (*podnet_listen_fn)(void *arg, uint32_t pod_id, int fd);
typedef void (*podnet_unlisten_fn)(void *arg, uint32_t pod_id);

struct podnet;

/* host_netns/node_netns: inode numbers of namespaces that are never a pod's own (the agent's
 * original one and the one that holds the node address; they may be the same). */
struct podnet *podnet_new(const char *pin_dir, ino_t host_netns, ino_t node_netns, int sav_prog,
			  int ifpod_fd);
void podnet_free(struct podnet *pn);
/* HBONE listeners in pods' namespaces (map_fd: bm_hbone), given to listen; unlisten when the
 * pod goes or its namespace changes. Before the first podnet_sync. */
void podnet_set_hbone(struct podnet *pn, int map_fd, podnet_listen_fn listen,
		      podnet_unlisten_fn unlisten, void *arg);

/* Make the per-pod links and filters match pods. Returns how many of them have their sk_lookup
 * link now; pods[i].sav says which have their veths verified. */
int podnet_sync(struct podnet *pn, struct podnet_pod *pods, int n);

#endif /* BM_PODNET_H */
