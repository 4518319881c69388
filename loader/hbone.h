/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * hbone.h: the tunnel's CONNECT framing (HTTP/1.1 CONNECT ip:port, Forwarded: for=..., then
 * Bpfmesh-Protocol: http/1.1 when the stream carries the HTTP path's requests, then the raw
 * stream), as pure functions over bytes that touch no socket, so the tunnel (tunnel.c)
 * and the fuzz targets (tests/fuzz/) run the same code. Input is whatever a peer sent: any
 * bytes, NULs included, never assumed terminated.
 */
#ifndef BM_HBONE_H
#define BM_HBONE_H

#include <stddef.h>

struct hbone_connect {
	char host[64];	    /* the target address, without brackets */
	int port;	    /* 1..65535 */
	char forwarded[64]; /* the first Forwarded header's for= address ("" if none) */
	int http;	    /* Bpfmesh-Protocol: http/1.1 (requests the sender's HTTP path
			       routed: the receiver's HTTP path judges and counts them) */
	size_t head_len;    /* bytes of the request head, CRLFCRLF included */
};

/* A CONNECT request at the start of buf[0..len): 1 parsed (*out filled), 0 incomplete (and
 * len < max), -1 malformed or longer than max bytes. */
int hbone_parse_connect(const char *buf, size_t len, size_t max, struct hbone_connect *out);

/* A CONNECT target ("10.0.0.1:80", "[fd00::1]:80": an address, never a name), as the
 * request line or HTTP/2's :authority carries it, len bytes at a: 0 with host and port, or -1. */
int hbone_parse_target(const char *a, size_t len, char *host, size_t hlen, int *port);
/* The for= address of a Forwarded header value (len bytes), "" when it has none. */
void hbone_forwarded_for(const char *v, size_t len, char *out, size_t cap);

/* What ztunnel sends with each HTTP/2 CONNECT: Forwarded's value for the client address
 * ("for=10.0.0.1", "for=\"[fd00::1]\""), W3C baggage naming the source workload, and a
 * traceparent that starts a trace from 24 random bytes. */
void hbone_forwarded_value(const char *ip, char *out, size_t cap);
void hbone_baggage(const char *cluster, const char *ns, const char *wl_type, const char *wl,
		   const char *svc, const char *rev, char *out, size_t cap);
void hbone_traceparent(const unsigned char rnd[24], char *out, size_t cap);

/* The answer to a CONNECT: 1 with the status code and head length, 0 incomplete, -1
 * malformed or longer than max. */
int hbone_parse_response(const char *buf, size_t len, size_t max, int *status, size_t *head_len);

#endif /* BM_HBONE_H */
