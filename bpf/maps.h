/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h: every map of the datapath, defined once and included by each program object
 * (sock_lb.bpf.c, sockops.bpf.c, and the test program tests/bpf/lb_test.bpf.c). The agent pins
 * them by name under <bpffs>/bpfmesh/<node>/, so objects share them and they outlive the agent.
 * Layouts are in headers/bpfmesh.h. A test build sets BM_PIN to LIBBPF_PIN_NONE.
 */
#ifndef BM_MAPS_H
#define BM_MAPS_H

#include "bpfmesh.h"
#include "net.h"

#ifndef BM_PIN
#define BM_PIN LIBBPF_PIN_BY_NAME
#endif

/* Service address -> ids of its current config. Not preallocated: memory follows use, and an
 * update swaps the element under RCU. Full: the agent's apply fails before touching it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_SERVICES);
	__type(key, struct bm_svc_key);
	__type(value, struct bm_svc);
	__uint(pinning, BM_PIN);
} bm_svc SEC(".maps");

/* Route id -> weighted subsets. Hash, not array: few services have routes, and an array of
 * BM_MAX_ROUTES routes would pin 17 MB per node for nothing. Written only under fresh ids. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_ROUTES);
	__type(key, __u32);
	__type(value, struct bm_route);
	__uint(pinning, BM_PIN);
} bm_route SEC(".maps");

/* Route list id -> a service port's routes in order, for ports whose route depends on the
 * client (bpfmesh.h). Hash: most ports have none. Written only under fresh ids, like bm_route;
 * full: the agent's apply fails before touching the service (check_capacity). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_RLISTS);
	__type(key, __u32);
	__type(value, struct bm_rlist);
	__uint(pinning, BM_PIN);
} bm_rlist SEC(".maps");

/* (route list, local pod) -> the routes whose sourceLabels/sourceNamespace hold for that pod
 * (bit i = route i). The agent evaluates those per-pod facts from the config; the kernel only
 * tests the bits of the pod it attributes the connecting cgroup to. Full: the apply fails
 * before the service entry changes (a pod without its entry would take the wrong route). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_RPODS);
	__type(key, struct bm_rpod_key);
	__type(value, __u32);
	__uint(pinning, BM_PIN);
} bm_rpod SEC(".maps");

/* Subset id -> slot range and LB policy. Array: looked up on every connect. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BM_MAX_SUBSETS);
	__type(key, __u32);
	__type(value, struct bm_subset);
	__uint(pinning, BM_PIN);
} bm_subset SEC(".maps");

/* Slot -> backend id. Subsets own contiguous ranges handed out by the agent's allocator. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BM_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, BM_PIN);
} bm_slot SEC(".maps");

/* Backend id -> address. Id 0 is never used, so a zeroed slot can't send traffic anywhere. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct bm_backend);
	__uint(pinning, BM_PIN);
} bm_backend SEC(".maps");

/* Backend id -> live state (active connections, health). Survives config changes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct bm_bstate);
	__uint(pinning, BM_PIN);
} bm_bstate SEC(".maps");

/* Subset id -> round-robin cursor, shared by all CPUs (atomic add). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BM_MAX_SUBSETS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, BM_PIN);
} bm_rr SEC(".maps");

/* Client cgroup id -> local workload: mesh membership and source address for hashing.
 * A cgroup not found here is a client outside the mesh. Full: the agent reports it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_PODS);
	__type(key, __u64);
	__type(value, struct bm_pod);
	__uint(pinning, BM_PIN);
} bm_pod SEC(".maps");

/* Per-connection record (original destination, chosen backend, counts) in the socket's own
 * storage: connect4/6 creates it for a socket it translates, sockops, getpeername and the
 * egress guard read it, and the kernel frees it with the socket, so nothing deletes or sweeps
 * it. No memory for it: the connect goes on without a record (getpeername then shows the
 * backend; counted in bm_stats). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct bm_sock);
	__uint(pinning, BM_PIN);
} bm_sock SEC(".maps");

/* UDP: (socket cookie, backend) -> service address, to restore recvmsg sources. LRU: a full
 * map evicts the coldest flow instead of failing a send. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BM_MAX_CONNS);
	__type(key, struct bm_udp_key);
	__type(value, struct bm_udp_val);
	__uint(pinning, BM_PIN);
} bm_udp SEC(".maps");

/* Agent state for `bpfmesh status` (one entry). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bm_meta);
	__uint(pinning, BM_PIN);
} bm_meta SEC(".maps");

/* Datapath counters, per CPU (enum bm_stat). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BM_ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, BM_PIN);
} bm_stats SEC(".maps");

/* Names for the CLI (see bpfmesh.h); the programs never read it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_SERVICES + BM_MAX_SUBSETS);
	__type(key, struct bm_name_key);
	__type(value, struct bm_name);
	__uint(pinning, BM_PIN);
} bm_names SEC(".maps");

/* Subset id -> DestinationRule policy, for subsets whose flags say they have one. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_SUBSETS);
	__type(key, __u32);
	__type(value, struct bm_policy);
	__uint(pinning, BM_PIN);
} bm_policy SEC(".maps");

/* Backend id -> outlier state. Created on a backend's first result under a policy; a hash so
 * that only backends under outlier detection cost memory. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct bm_health);
	__uint(pinning, BM_PIN);
} bm_health SEC(".maps");

/* (client pod, service subset) -> open connections, for maxConnections. LRU: a full map
 * forgets the coldest pair rather than refusing connects. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BM_MAX_POOLS);
	__type(key, struct bm_cpool_key);
	__type(value, __s32);
	__uint(pinning, BM_PIN);
} bm_cpool SEC(".maps");

/* Traffic counters (headers/bpfmesh.h): per CPU, not preallocated. Full: new (pod, service,
 * backend) triples are not counted (bm_stats says how many). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_TRAFFIC);
	__type(key, struct bm_traffic_key);
	__type(value, struct bm_traffic);
	__uint(pinning, BM_PIN);
} bm_traffic SEC(".maps");

/* Destination-side counters (headers/bpfmesh.h): per CPU. Full: new triples are not counted. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_TRAFFIC);
	__type(key, struct bm_dtraffic_key);
	__type(value, struct bm_traffic);
	__uint(pinning, BM_PIN);
} bm_dtraffic SEC(".maps");

/* An accepted connection counted in bm_dtraffic: its key, in the socket's own storage, freed
 * with the socket (so nothing outlives a connection whose close was missed). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct bm_dtraffic_key);
	__uint(pinning, BM_PIN);
} bm_dsock SEC(".maps");

/* Flow log: connection events for `bpfmesh observe`. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, BM_EVENTS_BYTES);
	__uint(pinning, BM_PIN);
} bm_events SEC(".maps");

/* This node (one entry): where tunnelled connects go. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bm_node);
	__uint(pinning, BM_PIN);
} bm_node SEC(".maps");

/* Address (and port) of a workload on another node -> tunnel flags. Looked up by connect4/6
 * only for mesh connects that are no service. The agent rewrites it by difference on each
 * config change; full: the agent's sync fails and says so. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_WL);
	__type(key, struct bm_wl_key);
	__type(value, struct bm_wl);
	__uint(pinning, BM_PIN);
} bm_wl SEC(".maps");

/* Local pod (and port) -> its inbound policy (STRICT, under AuthorizationPolicy), judged for
 * the pod a packet is delivered to (bpf/inbound.h). Full: the agent's sync fails loudly. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_INPOD);
	__type(key, struct bm_inpod_key);
	__type(value, struct bm_inpod);
	__uint(pinning, BM_PIN);
} bm_inpod SEC(".maps");

/* AuthorizationPolicy verdicts for plaintext connects (bpfmesh.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_AUTHZ);
	__type(key, struct bm_authz_key);
	__type(value, struct bm_authz);
	__uint(pinning, BM_PIN);
} bm_authz SEC(".maps");

/* Connections whose source the kernel vouches for (bpfmesh.h): local mesh pods' connects to
 * local pods (sockops) and the agent's own deliveries. LRU: full, the coldest entry goes
 * (counted when an insert fails); a connection never closed ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BM_MAX_ATTEST);
	__type(key, struct bm_attest_key);
	__type(value, struct bm_attest);
	__uint(pinning, BM_PIN);
} bm_attest SEC(".maps");

/* Addresses of the mesh's nodes (their agents): the only sources the agent's mTLS listener
 * (15008) takes a SYN from (bpf/listen.bpf.c). Written by the agent from the config. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_PODS);
	__type(key, struct bm_addr_key);
	__type(value, __u32);
	__uint(pinning, BM_PIN);
} bm_peer SEC(".maps");

/* Tunnelled connection's client address -> real destination, for the agent's accept. LRU:
 * an entry the agent never took (client gone first) ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BM_MAX_CONNS);
	__type(key, struct bm_orig_key);
	__type(value, struct bm_orig);
	__uint(pinning, BM_PIN);
} bm_orig SEC(".maps");

/* Same-node acceleration (bpf/accel.h). Both established sockets of a pod-to-pod connection on
 * this node, each keyed by its own 4-tuple; the sk_msg program (accel.bpf.c, attached to this
 * map) sends each write straight to the peer's receive queue. The kernel takes a socket out
 * when it closes, however it closes. Full: the socket is not inserted and its connection simply
 * goes through TCP (counted, BM_ST_ACCEL_FULL). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 2 * BM_MAX_ACCEL);
	__type(key, struct bm_sockkey);
	__type(value, __u64);
	__uint(pinning, BM_PIN);
} bm_sockhash SEC(".maps");

/* Local pod -> the agent's HBONE listener in that pod's network namespace (port 15008, as
 * ztunnel's in-pod mode): the pod's sk_lookup program (inpod.bpf.c) hands a SYN to its
 * 15008 to this socket, so a tunnel addressed to the pod's own address reaches the agent and
 * never the pod. The kernel takes a socket out when it closes (the agent exits). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, BM_MAX_PODS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, BM_PIN);
} bm_hbone SEC(".maps");

/* Client 4-tuple -> bytes that bypassed TCP and how each direction carries data. Made at the
 * client's ESTABLISHED, deleted at its TCP_CLOSE (sockops). Full: not accelerated (counted). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_ACCEL);
	__type(key, struct bm_sockkey);
	__type(value, struct bm_accel);
	__uint(pinning, BM_PIN);
} bm_accel SEC(".maps");

/* Local pod address -> pod: only connections with a local pod at both ends are accelerated.
 * Written by the agent with bm_pod, same capacity; full: the rest are not accelerated. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * BM_MAX_PODS);
	__type(key, struct bm_addr_key);
	__type(value, struct bm_podaddr);
	__uint(pinning, BM_PIN);
} bm_podaddr SEC(".maps");

/* Host-side interface of a local pod (ifindex in the node's namespace) -> the pod: what
 * sav.bpf.c verifies its frames against. Written by the agent as it finds pods' veths. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BM_MAX_PODS);
	__type(key, __u32);
	__type(value, struct bm_pod);
	__uint(pinning, BM_PIN);
} bm_ifpod SEC(".maps");

/* Runtime switches (one entry), written by the agent before it attaches. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bm_conf);
	__uint(pinning, BM_PIN);
} bm_conf SEC(".maps");

static __always_inline void bm_count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&bm_stats, &stat);

	if (v)
		*v += 1;
}

static __always_inline void bm_count_add(__u32 stat, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&bm_stats, &stat);

	if (v)
		*v += n;
}

#endif /* BM_MAPS_H */
