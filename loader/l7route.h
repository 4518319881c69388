/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * l7route.h: what the HTTP path decides for one request, as pure functions over l7table.h
 * (no sockets, no clock: the caller passes random numbers and times), so each of Istio's and
 * Envoy's rules is a unit test (tests/unit/test_l7.c):
 *  - which http route a request takes: first match wins; a request that matches none gets 404
 *    with response flag NR;
 *  - which destination, by weight, per request; which endpoint, by the subset's load balancer
 *    (LEAST_REQUEST over requests in flight, ROUND_ROBIN, RANDOM, consistentHash on a header,
 *    cookie, query parameter or source address, as a ring);
 *  - rewrite, redirect, header operations, CORS;
 *  - retries: retryOn parsed to conditions, Istio's default policy, Envoy's jittered back-off.
 */
#ifndef BM_L7ROUTE_H
#define BM_L7ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "l7table.h"

/* ---- headers ---- */

struct l7_hdr {
	char *name; /* lower case (HTTP/2's rule; HTTP/1 names compare case-insensitively) */
	char *value;
};

struct l7_hdrs {
	struct l7_hdr *v;
	int n, cap;
};

const char *l7h_get(const struct l7_hdrs *h, const char *name);
int l7h_add(struct l7_hdrs *h, const char *name, const char *value);
int l7h_addn(struct l7_hdrs *h, const char *name, size_t nlen, const char *value, size_t vlen);
int l7h_set(struct l7_hdrs *h, const char *name, const char *value); /* replaces every one */
void l7h_del(struct l7_hdrs *h, const char *name);
void l7h_free(struct l7_hdrs *h);
/* Istio's HeaderOperations: remove, then set (replace), then add (append). */
void l7h_apply(struct l7_hdrs *h, const struct header_ops *ops);

/* ---- one request, as routing sees it ---- */

struct l7_req_view {
	const char *method;
	const char *path; /* with the query string */
	const char *authority;
	const char *scheme; /* "http" */
	const struct l7_hdrs *h;
	int port;			/* the service port dialed */
	const struct workload_obj *src; /* the client, NULL when not a known pod */
	const uint8_t *src_ip;		/* IPv4, for consistentHash useSourceIp */
	const char *gen_cookie;		/* httpCookie with ttl, absent: the value generated */
};

bool l7_match(const struct l7_match *m, const struct l7_req_view *r);
/* The index of the first route of s the request matches, or -1 (404 NR). */
int l7_route_find(const struct l7_svc *s, const struct l7_req_view *r);
/* Istio's default path normalization (BASE, Envoy's normalize_path), in place (never longer):
 * percent-encoded unreserved characters decoded, other escapes upper-cased, dot segments
 * removed (RFC 3986); the query string is kept as it is. Routing and policy see the result. */
void l7_normalize_path(char *path);
/* The SNI of the ClientHello record in p[0..n): 1 (sni "" without server_name), 0 more bytes
 * needed, -1 not a TLS ClientHello. */
int l7_tls_sni(const uint8_t *p, size_t n, char *sni, size_t len);
/* The first tcp route of s whose match holds for a connection to port from src (a route
 * without a match holds for every one; src NULL: the source fields are not read, as on a
 * gateway), -1: none. */
int l7_tcp_route_find(const struct l7_svc *s, int port, const struct workload_obj *src);
/* A tls route of s (a port Istio reads as tls/https) for a ClientHello's SNI: the first whose
 * match has the name in sniHosts and its port, sourceLabels, sourceNamespace hold; -1: none. */
int l7_tls_route_find(const struct l7_svc *s, const char *sni, int port,
		      const struct workload_obj *src);
/* The match of route rt the request matched (its uri prefix matters for rewrite), or NULL. */
const struct l7_match *l7_route_matched(const struct l7_route *rt, const struct l7_req_view *r);

/* The destination of route rt for a random number rnd (weight/sum, exact). */
const struct l7_dest *l7_pick_dest(const struct l7_route *rt, uint32_t rnd);

/* An endpoint of cl for this request, avoiding the one at index `avoid` (-1: none) when
 * another is there (retries: Envoy's previous_hosts); -1 when cl has none. healthy says
 * whether an endpoint may take requests (outlier ejection), NULL: all may. */
int l7_pick_ep(struct l7_cluster *cl, const struct l7_req_view *r, uint32_t rnd, int avoid,
	       bool (*healthy)(void *arg, const struct l7_ep *e), void *arg);
/* The hash consistentHash gives the request (0 when the policy hashes nothing we have). */
uint64_t l7_hash_key(const struct traffic_policy *tp, const struct l7_req_view *r, bool *have_key);

/* ---- what the route does to the request and the answer ---- */

/* The path after rewrite (uri: the matched prefix, else the whole path, keeps the query;
 * uriRegexRewrite), a heap string; NULL when the route rewrites no path. */
char *l7_rewrite_path(const struct l7_route *rt, const struct l7_match *matched, const char *path);
/* The Location of a redirect (heap) and its status. A redirect uri that starts with
 * L7_PREFIX_MARK replaces only the prefix the request matched (Istio's marker for the
 * Gateway API's ReplacePrefixMatch). */
#define L7_PREFIX_MARK "%PREFIX()%"
char *l7_redirect_location(const struct l7_route *rt, const struct l7_req_view *r, int *status);

/* ---- retries ---- */

enum l7_retry_on {
	RO_5XX = 1 << 0,
	RO_GATEWAY = 1 << 1,
	RO_RESET = 1 << 2,
	RO_CONNECT_FAILURE = 1 << 3,
	RO_RETRIABLE_4XX = 1 << 4,
	RO_REFUSED_STREAM = 1 << 5,
	RO_RETRIABLE_CODES = 1 << 6,
	RO_GRPC_CANCELLED = 1 << 7,
	RO_GRPC_DEADLINE = 1 << 8,
	RO_GRPC_INTERNAL = 1 << 9,
	RO_GRPC_RESOURCE = 1 << 10,
	RO_GRPC_UNAVAILABLE = 1 << 11,
	RO_RESET_BEFORE_REQUEST = 1 << 12,
	RO_HTTP3_POST_CONNECT = 1 << 13,
	RO_ENVOY_RATELIMITED = 1 << 14,
};

#define L7_MAX_RETRY_CODES 16

struct l7_retry_policy {
	int attempts;		    /* retries after the first try */
	int64_t per_try_timeout_ms; /* 0: none */
	unsigned on;		    /* enum l7_retry_on */
	int codes[L7_MAX_RETRY_CODES];
	int ncodes;
};

/* The policy of route rt (its retries, or Istio's default: 2 retries on connect-failure,
 * refused-stream, unavailable, cancelled and retriable status code 503). */
void l7_retry_policy(const struct l7_route *rt, struct l7_retry_policy *p);
/* retryOn as Envoy reads it: comma-separated conditions, numbers being retriable codes. */
void l7_retry_on_parse(const char *s, struct l7_retry_policy *p);

/* How a try ended. */
struct l7_try_result {
	int status;	 /* the response status, 0 when there was no response */
	int grpc_status; /* from grpc-status, -1 when absent */
	bool connect_failed, reset, refused_stream;
};

bool l7_should_retry(const struct l7_retry_policy *p, const struct l7_try_result *r);
/* Envoy's fully jittered exponential back-off (25 ms base, 250 ms cap, Istio's values):
 * retry n (1 = the first) waits min(rnd % ((2^n - 1) x 25 ms), 250 ms). */
#define L7_BACKOFF_BASE_MS 25
#define L7_BACKOFF_MAX_MS  250
uint64_t l7_backoff_ms(int n, uint32_t rnd);

/* A fault of route rt hits this request, for random numbers in [0, 1). */
bool l7_fault_delay(const struct l7_route *rt, double rnd, int64_t *ms);
bool l7_fault_abort(const struct l7_route *rt, double rnd, int *status, int *grpc);

/* gRPC status code of a name ("UNAVAILABLE"), -1 if none. */
int l7_grpc_code(const char *name);

#endif /* BM_L7ROUTE_H */
