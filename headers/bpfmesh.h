/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpfmesh.h: every structure and constant shared by the BPF programs (bpf/) and the node agent
 * and CLI (loader/, user/). One definition each: if a layout changes, bump BM_MAP_ABI and the
 * agent refuses to reuse old pins instead of misreading them.
 *
 * Update model (why the maps look like this): a service entry (bm_svc) names a route and
 * subsets by id. The agent never rewrites an id that a service entry points to; it writes a
 * new route/subsets/slots under fresh ids and then replaces the one bm_svc value, which the
 * kernel swaps under RCU. A connect therefore sees the old or the new config of a service,
 * never a mix. Freed ids are reused only after a quarantine (BM_ID_QUARANTINE_MS).
 */
#ifndef BPFMESH_H
#define BPFMESH_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */
#endif
#include "outlier.h"

/* Bump when any struct below changes layout. */
#define BM_MAP_ABI 12

/* Sizes: every one a named constant, overridable at build time. */
#ifndef BM_MAX_SERVICES
#define BM_MAX_SERVICES 65536 /* (VIP, port, proto) entries */
#endif
#ifndef BM_MAX_BACKENDS
#define BM_MAX_BACKENDS 262144 /* distinct (address, port) endpoints */
#endif
#ifndef BM_MAX_ROUTE_DESTS
#define BM_MAX_ROUTE_DESTS 16 /* weighted destinations in one route */
#endif
#ifndef BM_MAX_SVC_ROUTES
#define BM_MAX_SVC_ROUTES 16 /* routes a service port tries in order (bm_rlist); <= 32 */
#endif
/* Routes and subsets are double-buffered during an update: twice the services. */
#define BM_MAX_ROUTES  (2 * BM_MAX_SERVICES)
/* Route lists: only ports whose routes depend on the client have one. */
#define BM_MAX_RLISTS  (2 * BM_MAX_SERVICES)
#define BM_MAX_SUBSETS (8 * BM_MAX_SERVICES)
/* Slots hold subset members; a backend sits in its service's "all" subset and one route
 * subset typically, doubled for updates in flight. */
#define BM_MAX_SLOTS (4 * BM_MAX_BACKENDS)
#ifndef BM_MAX_PODS
#define BM_MAX_PODS 16384 /* local workloads known by cgroup id */
#endif
#define BM_MAX_CONNS	    262144 /* UDP reverse-translation entries (LRU) */
#define BM_MAX_POOLS	    65536  /* (client pod, service subset) connection counts (LRU) */
#define BM_ID_QUARANTINE_MS 200
#ifndef BM_MAX_ACCEL
#define BM_MAX_ACCEL 65536 /* accelerated same-node connections (two sockhash entries each) */
#endif

/* Load-balancing policies (DestinationRule trafficPolicy.loadBalancer). */
enum bm_lb {
	BM_LB_LEAST_REQUEST = 0, /* Istio's default when unset */
	BM_LB_ROUND_ROBIN = 1,
	BM_LB_RANDOM = 2,
	BM_LB_HASH_SRC_IP = 3, /* consistentHash.useSourceIp */
	BM_LB_PASSTHROUGH = 4,
};

/* Address family tags stored in keys (not AF_* so the BPF side needs no libc). */
#define BM_FAM_V4 4
#define BM_FAM_V6 6

/*
 * Service lookup key. addr is the address in network byte order: IPv4 in the first 4 bytes,
 * the rest zero. port is network byte order.
 */
struct bm_svc_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;  /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 family; /* BM_FAM_V4 / BM_FAM_V6 */
};

#define BM_SVC_F_HAS_ROUTE                                                                         \
	1 /* route_id is valid: the one route every mesh client takes (a VirtualService) */
#define BM_SVC_F_L7                                                                                \
	2 /* an HTTP port whose config needs requests (loader/l7*.c): mesh clients' connects go  \
	   * to the local agent's HTTP path, when it listens (BM_NODE_F_L7) */
#define BM_SVC_F_RLIST                                                                             \
	4 /* rlist_id is valid: the route depends on the client (bm_rlist, bm_rpod); never with    \
	   * BM_SVC_F_HAS_ROUTE */

struct bm_svc {
	__u32 svc_id;	  /* stable per service for counters */
	__u32 route_id;	  /* valid if flags & BM_SVC_F_HAS_ROUTE */
	__u32 all_subset; /* every ready endpoint: non-mesh clients, VS-less services, no match */
	__u32 flags;
	__u32 rlist_id; /* valid if flags & BM_SVC_F_RLIST */
	__u32 pad;
};

/*
 * A service port's routes in the VirtualService's order, for ports where the route depends on
 * who connects (Istio's first match wins). The agent keeps only routes a match of which can
 * hold on this port and service address (`port`, `destinationSubnets` are facts of the bm_svc
 * key), up to and including the first that holds for every mesh client; what is left to decide
 * at connect() is the client: bit i of any_src says route i holds for every mesh client, and
 * bm_rpod says per pod which routes its sourceLabels/sourceNamespace conditions hold for. The
 * first route whose bit is set in either wins; none: every endpoint (all_subset), as Istio
 * falls back to the service's default route. Immutable under its id, like bm_route.
 */
struct bm_rlist {
	__u32 n;			   /* routes, <= BM_MAX_SVC_ROUTES */
	__u32 any_src;			   /* bit i: route i holds for every mesh client */
	__u32 route_id[BM_MAX_SVC_ROUTES]; /* bm_route ids, in order */
};

/* bm_rpod: (route list, client pod) -> bit i set when route i's source conditions hold for
 * the pod, whose id the kernel has from the connecting cgroup (bm_pod), never from an address.
 * Written for local pods only, before the bm_svc entry naming the list (or, for a pod that
 * becomes local later, before its cgroup enters bm_pod). A missing entry is 0: only the
 * any_src routes hold. */
struct bm_rpod_key {
	__u32 rlist_id;
	__u32 pod_id; /* bm_pod.pod_id */
};
#define BM_MAX_RPODS (4 * BM_MAX_PODS)

/*
 * A route: weighted destinations, each a subset. cum[i] is the running sum of weights up to
 * and including destination i; total = cum[n-1]. Weight-0 destinations are not stored, so they
 * can never be picked.
 */
struct bm_route {
	__u32 n;
	__u32 total;
	__u32 cum[BM_MAX_ROUTE_DESTS];
	__u32 subset[BM_MAX_ROUTE_DESTS];
};

#define BM_SUB_F_OUTLIER 1 /* outlier detection on: skip ejected hosts, record results */
#define BM_SUB_F_POOL	 2 /* connectionPool.tcp.maxConnections set */
#define BM_SUB_F_TIMEOUT 4 /* a connectTimeout to enforce */
/* Not a subset flag: set in bm_sock.sub_flags of a connection sent through the local agent's
 * mTLS tunnel (its SYN went to the agent, so its outcome says nothing about the backend). */
#define BM_CONN_F_TUNNEL 8
/* ... and of one sent to the local agent's HTTP path (it routes and scores each request). */
#define BM_CONN_F_L7 16

/* A subset: n backends at slots [first_slot, first_slot + n) of bm_slot. The flags say which
 * policy lookups a connect needs, so a subset without policy costs nothing extra. */
struct bm_subset {
	__u32 first_slot;
	__u32 n;
	__u32 lb;    /* enum bm_lb */
	__u32 flags; /* BM_SUB_F_* */
};

/* A subset's DestinationRule policy (bm_policy, keyed by subset id, immutable like it). */
struct bm_policy {
	struct bm_outlier od; /* outlierDetection (Envoy's semantics: headers/outlier.h) */
	__u32 max_conns;      /* connectionPool.tcp.maxConnections, per client pod; 0 = unlimited */
	__u32 connect_timeout_ms; /* connectionPool.tcp.connectTimeout, default 10 s */
	__u32 pool_key; /* stable id of (service, subset): what connection counts are kept by */
	__u32 pad;
};

/*
 * Outlier state of one backend (bm_health, keyed by backend id). The kernel records results
 * (sockops) and the agent un-ejects at interval ticks; both under the lock. Envoy keeps this
 * per (cluster, host); bpfmesh per host, with the cluster (subset) of the last result.
 */
struct bm_health {
	struct bpf_spin_lock lock;
	__u32 subset_id; /* cluster of the last result */
	struct bm_hoststate od;
	struct bm_outlier pol; /* that cluster's policy, for the agent's ticks */
};

/* Connections a client pod holds to one (service, subset): connectionPool.tcp.maxConnections. */
struct bm_cpool_key {
	__u64 cgroup_id;
	__u32 pool_key;
	__u32 pad;
};

#define BM_BE_F_USED 1
#define BM_BE_F_TUNNEL                                                                             \
	2 /* a mesh workload on another node, mTLS not DISABLE: mesh clients reach                 \
	   * it through the local agent's tunnel */
#define BM_BE_F_NOV6                                                                               \
	4 /* an IPv6 address of a STRICT mesh workload on another node while this node's agent     \
	   * has no IPv6 address: mesh clients are refused at connect instead of dropped there */

/* An endpoint. Its id is stable for as long as the (addr, port) exists in config. */
struct bm_backend {
	__u8 addr[16];
	__be16 port;
	__u8 family;
	__u8 flags;
	__u32 pod_id; /* index into the agent's pod table, 0 = unknown */
};

/*
 * Per-backend live state, written by the kernel (sockops). Kept apart from bm_backend so config
 * updates never clobber it. Outlier detection's state is bm_health's (struct bm_health).
 */
struct bm_bstate {
	__s32 active; /* open connections balanced to this backend (LEAST_REQUEST) */
};

#define BM_POD_F_IN_MESH 1
/* ---------------- the gateway's XDP early drop (bpf/xdp_gw.bpf.c) ---------------- */

/* Sizes: source prefixes of the gateway's policies, its ports, sources SYN-limited at once
 * (an LRU: the oldest source forgets its bucket, which only ever lets it through). */
#define BM_XDP_MAX_PREFIXES 4096
#define BM_XDP_MAX_PORTS    64
#define BM_XDP_MAX_SOURCES  65536

#define BM_XCONF_F_ALLOW_ONLY 1 /* only sources in bm_xallow (an ALLOW policy of source blocks) */

/* bm_xconf[0]: what the agent tells the program (key 0 of an array). */
struct bm_xconf {
	__u8 node_ip4[4]; /* the gateway's address: only packets to it are judged */
	__u32 flags;	  /* BM_XCONF_F_* */
	__u32 syn_rate;	  /* SYNs per second per source (--ingress-syn-rate), 0: no limit */
	__u32 syn_burst;  /* bucket size (= syn_rate) */
};

/* An IPv4 source prefix (LPM trie key: prefix length first, address in network order). */
struct bm_xprefix {
	__u32 len;
	__u8 addr[4];
};

/* One source's SYN token bucket (tokens scaled by 1e9: exact refill per nanosecond). */
struct bm_xbucket {
	__u64 tokens;
	__u64 last_ns;
};

/* bm_xstats (per CPU): what the program did. X(id, metric reason). */
#define BM_XDP_STATS(X)                                                                            \
	X(PASS, "passed")                                                                          \
	X(POLICY, "policy")                                                                        \
	X(SYN_RATE, "syn_rate")
enum bm_xstat {
#define X(id, name) BM_XST_##id,
	BM_XDP_STATS(X)
#undef X
	    BM_XST_MAX
};

/* Pod ids (config_pod_id) are odd; this even one is the agent's own ingress gateway as a
 * client (loader/gateway.h), which the kernel never sees. */
#define BM_POD_ID_GATEWAY 2

/* A local workload, keyed by its cgroup id (the kernel's attribution of a client); pod_id is
 * a stable hash of namespace/name, so counters keyed by it survive restarts. Key 0 is
 * the default for cgroups that are not a known pod (agent option --unmatched-cgroups). */
struct bm_pod {
	__u32 flags;
	__u32 pod_id;
	__u8 addr4[4];
	__u8 addr6[16];
	__u32 pad;
};

/* What connect4/6 remembers about a socket it translated: bm_sock, the socket's own storage
 * (freed with the socket). */
struct bm_sock {
	__u8 orig_addr[16]; /* the service address the application dialed */
	__be16 orig_port;
	__u8 family;
	__u8 counted; /* 1 while bm_bstate.active (and bm_cpool) hold a reference */
	__u32 backend_id;
	__u32 svc_id;
	__u32 subset_id;
	__u32 sub_flags;      /* BM_SUB_F_* of the subset it was picked from */
	__u32 pool_key;	      /* 0 = no connection pool limit */
	__u32 timeout_ms;     /* connect timeout to enforce, 0 = kernel default */
	__u32 src_pod;	      /* bm_pod.pod_id of the client, 0 = not a known pod */
	__u64 cgroup_id;      /* the client pod */
	__u64 connect_ns;     /* when the SYN left (bpf_ktime_get_ns) */
	__u64 established_ns; /* when it was established (flow log durations) */
};

/* What the connect-time decision says (bpf/xlate.h bm_sock_decide; read by its program test). */
struct bm_decision {
	__s32 allow;	       /* 1: the syscall goes on; 0: it fails with -err */
	__s32 err;	       /* BM_EPERM, BM_EBUSY or BM_ECONNREFUSED (bpf/net.h) when !allow */
	__s32 rewrite;	       /* 1: the destination becomes dst */
	__s32 record;	       /* 1: rec describes the connection: the hook stores it in bm_sock */
	struct bm_backend dst; /* the backend, or this node's agent for a tunnelled connect */
	struct bm_sock rec;
};

/*
 * Zero trust (mTLS tunnel, PeerAuthentication, AuthorizationPolicy). Istio ambient's ports: a
 * workload may not connect to any of them (connect4/6 refuse it).
 */
#define BM_PORT_OUTBOUND 15001 /* the agent's outbound listener: tunnelled connects go here */
#define BM_PORT_INBOUND	 15006
#define BM_PORT_HTTP	 15006 /* the agent's HTTP path: captured connects to L7 service ports */
#define BM_PORT_HBONE	 15008 /* the agent's mTLS listener, for other nodes' agents */
#define BM_PORT_METRICS	 15020
#define BM_PORT_HEALTH	 15021

#define BM_NODE_F_TUNNEL                                                                           \
	1 /* the agent has certificates and listens: tunnel remote mesh traffic                    \
	   */
#define BM_NODE_F_L7 2 /* the agent's HTTP path listens on addr4:l7_port */
#define BM_NODE_F_TUNNEL6                                                                          \
	4 /* with BM_NODE_F_TUNNEL: the outbound listener is on addr6 too, so IPv6 connects to     \
	   * remote mesh workloads are tunnelled as IPv4 ones are */

/* bm_node[0]: this node, as the datapath needs it. */
struct bm_node {
	__u8 addr4[4];	      /* the node address the agent listens on */
	__be16 outbound_port; /* BM_PORT_OUTBOUND, network order */
	__u16 flags;	      /* BM_NODE_F_* */
	__be16 l7_port;	      /* BM_PORT_HTTP, network order */
	__u16 pad;
	__u8 addr6[16]; /* the node's IPv6 address (BM_NODE_F_TUNNEL6) */
};

/* bm_wl: what connect4/6 knows about a workload address on another node, per port; port 0 is
 * every port without an entry of its own (portLevelMtls makes port entries). Local workloads
 * are not judged by address at all: see bm_inpod. */
#define BM_WL_F_TUNNEL                                                                             \
	1 /* remote mesh workload: mesh clients dialing it directly are tunnelled                  \
	   */
#define BM_WL_F_NOV6                                                                               \
	16 /* remote STRICT mesh workload's IPv6 address while this node's agent has no IPv6       \
	    * address: a mesh client's connect is refused at once, not dropped at the far end */

struct bm_wl_key {
	__u8 addr[16]; /* IPv4 in the first 4 bytes, like bm_svc_key */
	__be16 port;   /* 0 = any port */
	__u8 family;
	__u8 pad;
};

struct bm_wl {
	__u32 flags;  /* BM_WL_F_* */
	__u32 pod_id; /* bm_pod.pod_id: the bm_authz tables are keyed by it */
};

/*
 * Inbound policy of a local workload (bm_inpod), keyed by the receiving pod, never by the
 * address a packet was sent to: the kernel knows which pod a packet is delivered to (the
 * network namespace it arrives in, the cgroup of the socket that takes it), whatever address
 * (link-local, one the pod added itself) the sender used. Port 0 holds the pod's default;
 * portLevelMtls adds entries for the ports whose mode differs.
 */
struct bm_inpod_key {
	__u32 pod_id; /* bm_pod.pod_id */
	__be16 port;  /* destination port, 0 = every port without an entry of its own */
	__u16 pad;
};

#define BM_IN_F_STRICT 1 /* PeerAuthentication STRICT: plaintext only from attested sources */
#define BM_IN_F_AUTHZ  2 /* AuthorizationPolicy applies: bm_authz decides plaintext */
#define BM_IN_F_JUDGED 4 /* port 0 only: some port of the pod is judged (set with any flag) */
struct bm_inpod {
	__u32 flags; /* BM_IN_F_* */
	__u32 pad;
};

/*
 * bm_attest: connections whose source the kernel itself vouches for, by 4-tuple as the
 * destination sees it (a connection's source address proves nothing: a pod can add any
 * address to its interface). Written before the SYN leaves by
 *  - sockops, for a local mesh pod's connect to a local pod (the client's cgroup names it);
 *  - the agent, for its own deliveries of tunnelled connections (it authorized them with the
 *    peer's verified certificate).
 * IPv4 in the first 4 bytes of each address; ports in network order.
 */
struct bm_attest_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 family; /* BM_FAM_V4 / BM_FAM_V6 */
	__u8 pad[3];
};

#define BM_AT_F_AGENT 1 /* the local agent, delivering what it authorized */
#define BM_AT_F_MESH  2 /* a local pod in the mesh (src_pod) */
struct bm_attest {
	__u32 src_pod; /* bm_pod.pod_id of the client; 0 for the agent */
	__u32 flags;   /* BM_AT_F_* */
};

/*
 * bm_authz: AuthorizationPolicy compiled for plaintext connections to local workloads, as an
 * LPM trie over (pod, port, attested source pod, source address). The agent evaluates Istio's
 * rules once per address prefix the policies name (user/lib/security.h), so the kernel does one
 * longest-prefix lookup per SYN. src_pod 0 holds the verdicts for sources the kernel does not
 * vouch for (judged by address only, as Istio judges plaintext); an attested local mesh pod
 * gets entries of its own, evaluated with its identity. port 0 holds the verdicts for ports
 * no policy names. Addresses are IPv6, IPv4 as v4-mapped.
 */
#define BM_AUTHZ_FIXED_BITS 96 /* pod_id + port + pad + src_pod: always matched whole */
struct bm_authz_key {
	__u32 prefixlen; /* BM_AUTHZ_FIXED_BITS + address bits */
	__u32 pod_id;
	__be16 port;
	__u16 pad;
	__u32 src_pod;
	__u8 addr[16];
};

#define BM_AUTHZ_ALLOW 0
#define BM_AUTHZ_DENY  1
struct bm_authz {
	__u32 verdict;	 /* BM_AUTHZ_* */
	__u32 policy_id; /* what decided (bm_names BM_NAME_POLICY), 0 = no policy matched */
};

/* bm_orig: a tunnelled connection's real destination, keyed by the client's address as the
 * agent sees it on accept (sockops writes it when the SYN leaves): IPv4 (a v4-mapped IPv6
 * socket's too) in the first 4 bytes with BM_FAM_V4. */
struct bm_orig_key {
	__u8 addr[16];
	__be16 port;
	__u8 family;
	__u8 pad;
};

#define BM_ORIG_F_L7 1 /* for the HTTP path: addr/port are the service's, backend_id 0 */
struct bm_orig {
	__u8 addr[16]; /* backend address (network order, IPv4 in the first 4 bytes); the
			* service's with BM_ORIG_F_L7 */
	__be16 port;
	__u8 family; /* BM_FAM_* of addr */
	__u8 pad;
	__u32 backend_id; /* 0 when dialed by address, not through a service */
	__u32 svc_id;
	__u32 src_pod;
	__u32 flags; /* BM_ORIG_F_* */
};

#define BM_MAX_WL     65536
#define BM_MAX_AUTHZ  65536
#define BM_MAX_ATTEST 65536 /* LRU: entries of connections that never closed age out */
#define BM_MAX_INPOD  (4 * BM_MAX_PODS)

/*
 * Same-node acceleration (bpf/accel.h). A socket's 4-tuple as that socket sees it: local
 * address and port first. Addresses in network byte order (IPv4 in the first 4 bytes, an
 * IPv4-mapped IPv6 socket is keyed as IPv4, so both ends of a connection agree); ports in
 * network byte order. Keys bm_sockhash (each end by its own view) and bm_accel (by the client's).
 */
/* A socket's addresses as bpf_sock_ops / sk_msg_md give them (bpf/accel.h turns them into a
 * bm_sockkey; its program test fills one). */
struct bm_sockraw {
	__u32 family; /* AF_INET / AF_INET6 */
	__u32 lip4, rip4;
	__u32 lip6[4], rip6[4];
	__u32 lport; /* host byte order */
	__u32 rport; /* network byte order in the upper 16 bits (sockops, sk_msg) or the lower */
};

struct bm_sockkey {
	__u8 laddr[16];
	__u8 raddr[16];
	__be16 lport;
	__be16 rport;
	__u8 family; /* BM_FAM_V4 / BM_FAM_V6 */
	__u8 pad[3];
};

/* How one direction of an accelerated connection carries its data; decided by the first send
 * and never changed after, so a receiver never has bytes in both its TCP receive queue and its
 * sockmap ingress queue (it would read them out of order). */
enum bm_accel_mode {
	BM_ACCEL_UNDECIDED = 0,
	BM_ACCEL_REDIRECT = 1, /* every send goes straight to the peer's ingress */
	BM_ACCEL_TCP = 2,      /* the peer was not in bm_sockhash at the first send */
};

/* One accelerated connection (bm_accel, keyed by the client socket's bm_sockkey): bytes that
 * bypassed TCP, which bytes_acked/bytes_received never see. Made by the client's sockops at
 * ESTABLISHED, deleted by it at TCP_CLOSE after adding the bytes to bm_traffic. */
struct bm_accel {
	__u64 sent;    /* client -> server, redirected */
	__u64 rcvd;    /* server -> client, redirected */
	__u8 fwd_mode; /* enum bm_accel_mode, client -> server */
	__u8 rev_mode; /* enum bm_accel_mode, server -> client */
	__u8 pad[6];
};

/* A local pod address (bm_podaddr, written by the agent with bm_pod): both ends of a
 * connection must be one for it to be accelerated. */
struct bm_addr_key {
	__u8 addr[16];
	__u32 family; /* BM_FAM_V4 / BM_FAM_V6 */
};

struct bm_podaddr {
	__u32 pod_id;
	__u32 flags; /* BM_POD_F_* */
};

/* bm_ifpod: a local pod's host-side interface (its veth's peer in the node's namespace, by
 * ifindex there) -> the pod, for source address verification of everything the pod sends,
 * raw frames and ARP included (bpf/sav.bpf.c). */
#define BM_POD_F_SAV_TC                                                                            \
	2 /* bm_pod flag: a veth of this pod is verified at tc (the cgroup hook                    \
	   * need not check addresses again) */

/* bm_conf[0]: runtime switches the agent writes before it attaches the programs. */
#define BM_CONF_F_ACCEL	     1 /* same-node acceleration on (agent --accel on) */
#define BM_CONF_F_STRICT_UDP 2 /* --strict-udp drop: no plaintext UDP into STRICT pods */
struct bm_conf {
	__u32 flags;
	__u32 pad;
};

/* UDP reverse translation for recvmsg: keyed by socket cookie and the backend address. */
struct bm_udp_key {
	__u64 cookie;
	__u8 addr[16];
	__be16 port;
	__u8 family;
	__u8 pad[5];
};

struct bm_udp_val {
	__u8 addr[16];
	__be16 port;
	__u8 pad[6];
};

/*
 * Traffic counters, per (client pod, service, backend): what Istio's TCP metrics are built from
 * (reporter "source"). The agent turns ids into Istio's labels at scrape time: pod ids into
 * workload/app/version, backend ids into the destination pod. Per-CPU: written on every
 * connection open and close.
 */
struct bm_traffic_key {
	__u32 src_pod; /* bm_pod.pod_id, 0 = not a known pod */
	__u32 svc_id;
	__u32 backend_id;
	__u32 pad;
};

struct bm_traffic {
	__u64 opened;	      /* connections established */
	__u64 closed;	      /* established connections closed (any way) */
	__u64 bytes_sent;     /* payload acknowledged by the backend, counted at close */
	__u64 bytes_received; /* payload received from the backend, counted at close */
	__u64 connect_failed; /* connects refused or timed out */
};

#define BM_MAX_TRAFFIC 65536

/*
 * Destination-side traffic counters (reporter "destination"), per (client address, local mesh
 * pod, its port): plaintext connections a mesh pod of this node accepted from another node.
 * (Connections from this node's pods are the source side's series again, and tunnelled ones
 * the agent that delivers them counts: loader/metrics.c.) The value is struct bm_traffic in
 * the client's terms, as bm_traffic: bytes_sent is the request, bytes_received the response.
 */
struct bm_dtraffic_key {
	__u8 src_addr[16]; /* the client, IPv4 in the first 4 bytes */
	__u32 dst_pod;	   /* bm_podaddr.pod_id of the pod that accepted */
	__be16 port;	   /* its port */
	__u8 family;	   /* BM_FAM_V4 / BM_FAM_V6 */
	__u8 pad;
};

/* Flow log (bm_events ring buffer), read by `bpfmesh observe`. */
enum bm_event_type {
	BM_EV_OPEN = 1,	 /* connection established */
	BM_EV_CLOSE = 2, /* established connection closed: bytes and duration */
	BM_EV_FAIL = 3,	 /* connect refused or timed out */
	BM_EV_EJECT = 4, /* the backend was ejected by outlier detection */
	BM_EV_DENY = 5,	 /* a plaintext SYN dropped: STRICT peer or AuthorizationPolicy */
};

struct bm_event {
	__u64 ts_ns; /* bpf_ktime_get_ns */
	__u32 type;  /* enum bm_event_type */
	__u32 src_pod;
	__u32 svc_id;
	__u32 backend_id;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 duration_ns; /* close: since established; fail: since the SYN */
	__u64 cookie;	   /* socket cookie: ties a close to its open */
	/* BM_EV_DENY: the source, the destination pod (backend_id = its pod id) and port, and
	 * the policy that denied (0 = STRICT mTLS, no policy) */
	__u8 peer_addr[16];
	__be16 port;
	__u8 family;
	__u8 reason; /* BM_EV_DENY: enum bm_deny */
	__u32 policy_id;
};

/* Why the kernel refused something (bm_event.reason of BM_EV_DENY). */
enum bm_deny {
	BM_DENY_STRICT = 0,	/* plaintext TCP to a STRICT workload from an unattested source */
	BM_DENY_AUTHZ = 1,	/* AuthorizationPolicy (policy_id names it) */
	BM_DENY_STRICT_UDP = 2, /* plaintext UDP to a STRICT workload, --strict-udp drop */
	BM_DENY_SPOOF = 3,	/* a pod sent from an address that is not its own */
	BM_DENY_AGENT_PORT =
	    4, /* a pod's packet to the agent's listeners the kernel did not send */
};

#define BM_EVENTS_BYTES (1 << 20) /* ring buffer size; full: events dropped (counted) */

/* Outcome of one translation (bpf/lb.h bm_xlate); the test program tallies these. */
enum bm_xlate_res {
	BM_X_MISS = 0,	    /* not a service address: left alone */
	BM_X_OK = 1,	    /* translated */
	BM_X_NOBACKEND = 2, /* a service, but nothing to send to: connect fails (ECONNREFUSED) */
	BM_X_OVERFLOW = 3,  /* connectionPool.tcp.maxConnections reached: connect fails (EBUSY) */
};

/* bm_meta[0]: agent-visible state, read by `bpfmesh status`. */
struct bm_meta {
	__u32 abi;	     /* BM_MAP_ABI of the agent that created the maps */
	__u32 loaded;	     /* 1 once a config has been put in force */
	__u64 generation;    /* increments on every successful apply */
	__u64 last_apply_ns; /* CLOCK_REALTIME of the last apply attempt */
	__u32 last_apply_ok; /* 1 if the last attempt succeeded */
	__u32 nservices;
	__u32 nbackends;
	__u32 pad;
	__u64 config_stamp; /* config_dir_stamp() of the config last read (applied or not):
			     * lab apply waits for every agent's to equal the directory's */
	/* the last apply that put a config in force (`bpfmesh status`): */
	__u32 apply_objects; /* objects in that config */
	__u32 apply_changed; /* of them added or changed, plus those removed, since the one before */
	__u32 apply_writes;  /* map entries it wrote or deleted */
	__u32 apply_us;	     /* from the change seen (inotify, watch event) to in force */
};

/*
 * Per-CPU datapath counters (bm_stats), indexed by enum bm_stat: one list, so `bpfmesh
 * status` (the phrase) and /metrics (the event label of bpfmesh_datapath_events_total) can
 * never miss one. X(id, status phrase, metric label).
 */
#define BM_STATS(X)                                                                                \
	X(XLATE, "translated", "translated")                                                       \
	X(NO_BACKEND, "refused: no backend", "no_backend")                                         \
	X(MISS, "not a service", "not_a_service")                                                  \
	X(NONMESH, "translated for clients outside the mesh", "translated_outside_mesh")           \
	X(RESTORED, "original address restored", "address_restored")                               \
	X(POOL_OVERFLOW, "refused: maxConnections", "pool_overflow")                               \
	X(EJECTED, "ejections", "ejected")                                                         \
	X(EJECT_OVERFLOW, "ejections refused by maxEjectionPercent", "ejection_overflow")          \
	X(CONNECT_FAIL, "connects failed (refused or timed out)", "connect_failed")                \
	X(SKIPPED_EJECTED, "picks that skipped an ejected backend", "skipped_ejected")             \
	X(SOCK_FULL, "connections without a record (no memory for socket storage)",                \
	  "connection_record_full")                                                                \
	X(RESET_NO_REPLY, "connections reset before any reply", "reset_before_reply")              \
	X(EVENTS_LOST, "flow log events lost (ring buffer full)", "flow_log_events_lost")          \
	X(TUNNELLED, "sent through the mTLS tunnel", "tunnelled")                                  \
	X(STRICT_DROP, "dropped: plaintext to STRICT", "strict_plaintext_dropped")                 \
	X(AUTHZ_DENY, "dropped: AuthorizationPolicy", "authorization_denied")                      \
	X(AGENT_PORT, "refused: agent port", "agent_port_refused")                                 \
	X(ACCEL_CONNS, "connections accelerated (same node)", "accelerated_connections")           \
	X(ACCEL_BYTES, "bytes redirected socket to socket", "accelerated_bytes")                   \
	X(ACCEL_FULL, "connections not accelerated: map full", "accel_map_full")                   \
	X(STRICT_UDP_DROP, "dropped: plaintext UDP to STRICT", "strict_udp_dropped")               \
	X(SPOOF_DROP, "dropped: pod sent from an address not its own", "spoofed_source_dropped")   \
	X(AGENT_PORT_DROP, "dropped: packets to agent listeners not captured",                     \
	  "agent_port_dropped")                                                                    \
	X(V6_REFUSED, "refused: IPv6 to a remote STRICT workload", "ipv6_strict_refused")          \
	X(ATTEST_FULL, "connections not attested (bm_attest full)", "attest_map_full")            \
	X(L7, "sent to the agent's HTTP path", "http_path")                                        \
	X(NO_ROUTE_MATCH, "no route matched: every endpoint", "no_route_matched")

enum bm_stat {
#define BM_STAT_ENUM(id, phrase, metric) BM_ST_##id,
	BM_STATS(BM_STAT_ENUM)
#undef BM_STAT_ENUM
	    BM_ST_MAX,
};

/* Display names for `bpfmesh services` (not read by the datapath): the agent writes the name
 * of every service id and subset id it puts in force. */
#define BM_NAME_SVC	1
#define BM_NAME_SUBSET	2
#define BM_NAME_POD	3 /* pod id -> "namespace/workload/pod" */
#define BM_NAME_BACKEND 4 /* backend id -> "namespace/workload/pod/version" */
#define BM_NAME_POLICY	5 /* AuthorizationPolicy id -> "namespace/name" */
#define BM_NAME_ROUTE	6 /* route id -> its VirtualService, route in force, routes not */
#define BM_NAME_VS	7 /* service id -> a VirtualService with no route in force */
#define BM_NAME_L7	8 /* a port's all-endpoints subset id -> why it needs the HTTP path */
#define BM_NAME_RLIST	9 /* route list id -> its VirtualService's routes tried, in order */
#define BM_NAME_LEN	96
struct bm_name_key {
	__u32 kind; /* BM_NAME_* */
	__u32 id;
};

struct bm_name {
	char name[BM_NAME_LEN];
};

/*
 * Pin and map names: one place, so pins and code cannot drift. <= 15 chars each. BM_MAPS lists
 * every pinned map: X(field of struct bm_mapfds, name) for the ones the agent and CLI keep
 * open, Y(name) for the ones only the programs use.
 */
#define BM_MAPS(X, Y)                                                                              \
	X(svc, bm_svc)                                                                             \
	X(route, bm_route)                                                                         \
	X(rlist, bm_rlist)                                                                         \
	X(rpod, bm_rpod)                                                                           \
	X(subset, bm_subset)                                                                       \
	X(slot, bm_slot)                                                                           \
	X(backend, bm_backend)                                                                     \
	X(bstate, bm_bstate)                                                                       \
	X(rr, bm_rr)                                                                               \
	X(pod, bm_pod)                                                                             \
	X(meta, bm_meta)                                                                           \
	X(stats, bm_stats)                                                                         \
	X(names, bm_names)                                                                         \
	X(policy, bm_policy)                                                                       \
	X(health, bm_health)                                                                       \
	X(cpool, bm_cpool)                                                                         \
	X(traffic, bm_traffic)                                                                     \
	X(dtraffic, bm_dtraffic)                                                                   \
	X(node, bm_node)                                                                           \
	X(wl, bm_wl)                                                                               \
	X(inpod, bm_inpod)                                                                         \
	X(authz, bm_authz)                                                                         \
	X(attest, bm_attest)                                                                       \
	X(peer, bm_peer)                                                                           \
	X(orig, bm_orig)                                                                           \
	X(sockhash, bm_sockhash)                                                                   \
	X(accel, bm_accel)                                                                         \
	X(podaddr, bm_podaddr)                                                                     \
	X(conf, bm_conf)                                                                           \
	X(ifpod, bm_ifpod)                                                                         \
	X(hbone, bm_hbone)                                                                         \
	Y(bm_events)                                                                               \
	Y(bm_sock)                                                                                 \
	Y(bm_dsock)                                                                                \
	Y(bm_udp)

/* Programs the agent attaches to the node cgroup, each through a pinned link link_<name>, in
 * attach order. (Not here: bm_accel_msg, held by bm_sockhash; bm_pod_lookup, one instance per
 * local pod, linked to that pod's network namespace as inpod/<pod id>; the listener socket
 * filters, held by the agent's sockets.) */
#define BM_CGROUP_PROGS(X)                                                                         \
	X(bm_connect4)                                                                             \
	X(bm_connect6)                                                                             \
	X(bm_sendmsg4)                                                                             \
	X(bm_sendmsg6)                                                                             \
	X(bm_getpeername4)                                                                         \
	X(bm_getpeername6)                                                                         \
	X(bm_recvmsg4)                                                                             \
	X(bm_recvmsg6)                                                                             \
	X(bm_sockops)                                                                              \
	X(bm_ingress)                                                                              \
	X(bm_egress)

#endif /* BPFMESH_H */
