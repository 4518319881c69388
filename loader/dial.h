/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * dial.h: how the agent connects to a pod on its own node (the tunnel's inbound side, the HTTP
 * path's upstreams): non-blocking, from the address routing picks, with a pass for the
 * 4-tuple in bm_attest before the SYN leaves, so the pod's inbound judge (bpf/inbound.h) takes
 * the agent's word that it authorized what it delivers. The pass is spent once the connection
 * is up (dial_pass_drop); unspent ones age out of the LRU map.
 */
#ifndef BM_DIAL_H
#define BM_DIAL_H

#include <stdbool.h>
#include <netinet/in.h>
#include "bpfmesh.h"

/* A socket address of either family. */
union dial_addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

/* ip (either family, no brackets) and port (host order) into a: 0, or -1. */
int dial_addr_set(union dial_addr *a, const char *ip, int port);
socklen_t dial_addr_len(const struct sockaddr *a);
/* "10.0.0.1:80" or "[fd00::1]:80" (a v4-mapped IPv6 address as IPv4); ip: the address only. */
void dial_addr_fmt(const struct sockaddr *a, char *buf, size_t len);
void dial_addr_ip(const struct sockaddr *a, char *buf, size_t len);
/* a as the maps key addresses: 16 bytes (IPv4 in the first 4, the rest 0), the port in
 * network order; returns BM_FAM_V4 or BM_FAM_V6. */
uint8_t dial_addr_key(const struct sockaddr *a, uint8_t addr[16], uint16_t *port);
/* "ip:port", bracketed when ip is IPv6. */
void dial_hostport(char *buf, size_t len, const char *ip, int port);

struct dial_pass {
	struct bm_attest_key key;
	bool have; /* the pass is in bm_attest */
};

/* A connecting socket to dst (connect in progress, or done), or -1 with errno set, from
 * src_ip when it is of dst's family (the node's address: the kernel knows the agent's
 * deliveries by it, bpf/dest.h), else from the address routing picks. attest_fd < 0: no pass
 * (a pod that judges nothing). The pass is registered before connect(); when that write fails
 * the connection still goes (a STRICT pod refuses it; logged). */
int dial_attested(int attest_fd, const struct sockaddr *dst, const char *src_ip,
		  struct dial_pass *pass);
void dial_pass_drop(int attest_fd, struct dial_pass *pass);

/* Plain non-blocking connect (a pod on another node, a peer agent), or -1. */
int dial_tcp(const struct sockaddr *dst);

/* A non-blocking listener on ip:port (either family) with its socket filter
 * (bpf/listen.bpf.c; < 0: none)
 * attached before it takes any SYN; reuseport: one per worker. -1 on failure (logged). */
int dial_listen(const char *ip, int port, int filter_prog, bool reuseport, int backlog);

/* The connect of fd finished well (SO_ERROR is 0). */
bool dial_done(int fd);

#endif /* BM_DIAL_H */
