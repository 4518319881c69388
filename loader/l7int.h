/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * l7int.h: the inside of the agent's HTTP path (l7.h), shared by its parts and by nothing
 * else:
 *  - l7.c       workers (one epoll loop each), listeners, timers, snapshots, hand-offs;
 *  - l7req.c    one request from its headers to its last response byte: route, faults,
 *               policy, retries, timeouts, local replies (Envoy's router as Istio sets it up);
 *  - l7h1.c     HTTP/1.1 on both sides (http-parser): downstream server, upstream pool;
 *  - l7h2.c     HTTP/2 on both sides (nghttp2): h2c prior knowledge and Upgrade, gRPC;
 *  - l7stats.c  Istio's HTTP metrics, per worker, summed when scraped; the access log.
 * A worker owns every connection and request it touches; nothing here is shared between
 * workers except the immutable snapshot (struct l7_snap), the endpoints' in-flight counters
 * (atomics) and each worker's metrics (its own mutex, taken by the scraper).
 */
#ifndef BM_L7INT_H
#define BM_L7INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "bpfmesh.h"
#include "dial.h"
#include "htab.h"
#include "l7.h"
#include "l7route.h"
#include "l7table.h"
#include "ratelimit.h"
#include "trace.h"

/* ---- limits (Envoy's defaults where Envoy has one) ---- */
#define L7_MAX_HEADER_BYTES (60 * 1024) /* max_request_headers_kb: 60; over it: 431 */
#define L7_MAX_HEADERS	    100		/* max_headers_count; over it: 431 */
#define L7_BUF_HIGH	    (64 * 1024) /* a sink holding this much stops its source reading */
/* per_connection_buffer_limit_bytes: a request body up to this is kept for retries, mirrors */
#define L7_RETRY_BUFFER	  (1024 * 1024)
#define L7_READ_CHUNK	  (16 * 1024)
#define L7_IDLE_MS	  (3600 * 1000ULL) /* idle_timeout: 1 h, both sides */
#define L7_STREAM_IDLE_MS (300 * 1000ULL)  /* stream_idle_timeout: 5 min (flag SI) */
#define L7_LINGER_MS	  2000	/* after a last response: drain the client before close() */
#define L7_CONNECT_MS	  10000 /* connectTimeout when the DestinationRule sets none */
#define L7_EVENTS	  64
#define L7_LOG_FLUSH_MS	  100 /* access log lines wait at most this long for their write */
#define L7_ACCEPT_BURST	  64
#define L7_MAX_HOST_TRIES 5 /* Istio: host_selection_retry_max_attempts */
#define L7_SPAN_BATCH	  32 /* finished spans a worker keeps before handing them over */

/* ---- response flags (Envoy's names; the metrics label and the access log) ---- */
#define L7_RF(X)                                                                                   \
	X(UH, 0)                                                                                   \
	X(UF, 1)                                                                                   \
	X(UO, 2)                                                                                   \
	X(NR, 3)                                                                                   \
	X(URX, 4)                                                                                  \
	X(DC, 5)                                                                                   \
	X(UT, 6)                                                                                   \
	X(UC, 7)                                                                                   \
	X(DI, 8)                                                                                   \
	X(FI, 9)                                                                                   \
	X(RL, 14)                                                                                  \
	X(RLSE, 15)                                                                                \
	X(SI, 10)                                                                                  \
	X(DPE, 11)                                                                                 \
	X(UPE, 12)                                                                                 \
	X(UR, 13)
enum l7_rflag {
#define X(n, b) RF_##n = 1u << (b),
	L7_RF(X)
#undef X
};
/* "UF,URX" (Envoy's order of the flags), or "-". */
void l7_flags_str(unsigned flags, char *buf, size_t len);

/* ---- plumbing ---- */

struct l7w;

/* Bytes [off, len) of p are pending. */
struct l7_buf {
	char *p;
	size_t off, len, cap;
};
void lb_put(struct l7_buf *b, const void *d, size_t n);
void lb_printf(struct l7_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lb_consume(struct l7_buf *b, size_t n);
void lb_free(struct l7_buf *b);
static inline size_t lb_pending(const struct l7_buf *b)
{
	return b->len - b->off;
}
/* Write what b holds to fd; 0 (all out or would block), -1 (the peer is gone). */
int lb_flush(struct l7_buf *b, int fd);

struct l7_timer {
	uint64_t due; /* ms, CLOCK_MONOTONIC */
	int idx;      /* in the worker's heap, -1 when not armed */
	void (*fire)(struct l7_timer *t);
};
void l7_timer_set(struct l7w *w, struct l7_timer *t, uint64_t due);
void l7_timer_stop(struct l7w *w, struct l7_timer *t);
static inline bool l7_timer_armed(const struct l7_timer *t)
{
	return t->idx >= 0;
}

/* An fd in a worker's epoll set; `on` runs for its events. */
struct l7_io {
	int fd;
	uint32_t mask; /* events registered, 0 = none */
	void (*on)(struct l7_io *io, uint32_t events);
};
void l7_io_want(struct l7w *w, struct l7_io *io, uint32_t mask);
void l7_io_close(struct l7w *w, struct l7_io *io);

/* Freed after the current batch of events (something later in it may still point there). */
struct l7_dead {
	struct l7_dead *next;
	void (*free)(struct l7_dead *d);
};
void l7_defer_free(struct l7w *w, struct l7_dead *d);

/* Work for after the current event (a connection's output, flushed once for all a response's
 * head and body parts that one read produced: one send, not three). */
struct l7_later {
	struct l7_later *next;
	void (*fn)(struct l7_later *l);
	bool queued;
};
void l7_later(struct l7w *w, struct l7_later *l);

/* What one publish hands the workers; immutable, reference-counted. */
struct l7_snap {
	int refs; /* atomic */
	uint64_t gen;
	struct cfgref *cfg;
	const struct mesh_config *c;
	struct l7_table *t; /* NULL: no service port on the HTTP path */
	struct htab pods;   /* pod id -> index into c->workloads */
	struct htab podip;  /* IPv4 address -> index into c->workloads (Pods) */
	struct l7_gwl **gwl; /* the Gateway ports' listeners (references), one per t->gwports */
	int ngwl;
};
struct l7_snap *l7_snap_get(struct l7_snap *s);
void l7_snap_put(struct l7_snap *s);
const struct workload_obj *l7_snap_pod(const struct l7_snap *s, uint32_t pod_id);
const struct workload_obj *l7_snap_pod_ip(const struct l7_snap *s, const uint8_t ip[4]);

/* ---- metrics (l7stats.c) ---- */

struct l7_series;
struct l7_stats {
	pthread_mutex_t mu;
	struct htab idx; /* labels -> index into v */
	struct l7_series *v;
	int n, cap;
	struct htab prefix_idx; /* (gen, reporter, src, dst, service) -> prefix */
	char **prefixes;
	int nprefixes, capprefixes;
	uint64_t prefix_gen;
};

/* One finished request, as metrics and the access log see it. */
struct l7_record {
	bool destination; /* reporter */
	const struct l7_snap *snap;
	const struct workload_obj *src, *dst;
	const char *svc_ns, *svc_name;
	bool mtls;
	const char *td; /* the trust domain of the principals when mtls, else NULL */
	bool grpc;
	int code;	 /* 0: no response (DC, reset) */
	int grpc_status; /* -1: none */
	unsigned flags;
	double ms;
	uint64_t req_bytes, resp_bytes;
	/* access log */
	const char *method, *authority, *path, *upstream;
	const char *details; /* response_code_details, or NULL */
	int attempts;
};
void l7_stats_init(struct l7_stats *s);
void l7_stats_free(struct l7_stats *s);
void l7_stats_record(struct l7_stats *s, const struct l7_record *r);
/* Istio's HTTP series of all workers, summed (the scraper's thread). */
void l7_stats_render(struct l7_stats *const *v, int n, FILE *out);

/* ---- the access log (l7log.c) ---- */

struct l7_log;
struct l7_log *l7_log_open(const char *path); /* NULL path or failure: NULL (no log) */
void l7_log_close(struct l7_log *g);
void l7_log_request(struct l7_buf *b, const struct l7_record *r); /* one JSON line into b */
void l7_log_flush(struct l7_log *g, struct l7_buf *b);		  /* b's lines to the file */
struct l7_log *l7_log_of(const struct l7w *w);

/* ---- circuit breakers ---- */

/* Envoy's circuit breakers of one cluster, for the whole agent (every worker): the
 * DestinationRule's connectionPool limits count against these. They outlive config snapshots
 * (connections and requests do), keyed by service and subset. All atomics. */
struct l7_cb {
	struct l7_cb *next;
	char key[320];
	unsigned conns;	  /* upstream connections (tcp.maxConnections) */
	unsigned pending; /* requests waiting for a connection (http1MaxPendingRequests) */
	unsigned active;  /* requests in flight (http2MaxRequests) */
	unsigned retries; /* retries outstanding (maxRetries) */
};

#define L7_OVERFLOW (-2) /* l7_upstream_start: a circuit breaker is open (UO) */

/* ---- requests ---- */

enum l7_role {
	L7_SOURCE, /* a local client pod's connect, captured by the kernel */
	L7_DEST,   /* a peer agent's request through the tunnel, for a pod of this node */
};

enum l7_proto { L7_H1, L7_H2 };

struct l7_req;
struct l7_dconn;

/* What the request engine needs of the downstream codec. */
struct l7_dcodec {
	/* response head; end: no body follows */
	void (*head)(struct l7_req *r, int status, const struct l7_hdrs *h, bool end);
	void (*data)(struct l7_req *r, const char *p, size_t n, bool end);
	void (*trailers)(struct l7_req *r, const struct l7_hdrs *h); /* ends the response */
	/* abort the response (a reset, never a truncated success) */
	void (*reset)(struct l7_req *r);
	/* the engine is done with r (the codec frees it when it is done too) */
	void (*done)(struct l7_req *r);
	size_t (*queued)(struct l7_req *r);    /* response bytes not yet sent: back-pressure */
	void (*more_body)(struct l7_req *r);   /* the upstream drained: read request body again */
	void (*continue100)(struct l7_req *r); /* Expect: 100-continue: go ahead */
};

/* The downstream connection, codec-neutral part. */
struct l7_dconn {
	struct l7w *w;
	struct l7_io io;
	enum l7_role role;
	enum l7_proto proto;
	const struct l7_dcodec *codec;
	uint8_t src_ip[4];
	uint16_t src_port;
	uint32_t src_pod;    /* the kernel-attested client pod, 0 if none (source role);
			      * BM_POD_ID_GATEWAY on a gateway port */
	uint16_t gw_port;    /* source role: accepted on this Gateway port (0: a capture) */
	bool gw_tls;	     /* the Gateway port is HTTPS: this is the plaintext, sni its name */
	char sni[256];
	uint8_t vip[4];	     /* source role: the service address dialed (bm_orig) */
	uint16_t vport;	     /* host order */
	uint8_t dst_ip[4];   /* destination role: the pod the peer asked for */
	uint16_t dst_port;   /* host order */
	char principal[320]; /* destination role: the peer's verified SPIFFE ID, no scheme */
	char peer_ns[128];
	bool closing;
	/* an upgrade (l7_drain): finish what is open, take no new request, close when idle */
	void (*drain)(struct l7_dconn *dc);
	struct l7_dconn *dprev, *dnext; /* the worker's HTTP connections (l7_dconn_link) */
	bool linked;
};

/* A codec's connection joins (or leaves) its worker's list, which l7_drain goes through. */
void l7_dconn_link(struct l7_dconn *dc);
void l7_dconn_unlink(struct l7_dconn *dc);

struct l7_uconn;

enum l7_rstate {
	RQ_NEW,	       /* headers being read */
	RQ_WAIT,       /* fault delay or retry back-off */
	RQ_UPSTREAM,   /* a try in progress */
	RQ_RESPONDING, /* response head sent downstream */
	RQ_DONE,       /* the engine is done (the codec may still flush) */
};

/* How a try ended, before any response byte went downstream. */
enum l7_tryend {
	TRY_CONNECT_FAIL, /* UF */
	TRY_RESET,	  /* UC: the connection closed or broke before response headers */
	TRY_TIMEOUT,	  /* per-try timeout (UT), a 504 to the retry policy */
	TRY_PROTOCOL,	  /* UPE: the upstream spoke no HTTP we understand */
	TRY_REFUSED,	  /* h2 REFUSED_STREAM */
};

/* What pools upstream connections (l7up.c). */
struct l7_ukey {
	uint8_t addr[4];
	uint16_t port;
	uint8_t tunnel; /* through the mTLS tunnel, as src_pod */
	uint8_t h2;
	uint32_t src_pod;
};

struct l7_req {
	struct l7_dconn *dc;
	void *cs; /* the downstream codec's stream */
	enum l7_rstate st;
	struct l7_snap *snap;
	/* the request as received (after hop-by-hop headers are gone) */
	char *method, *path, *authority, *scheme;
	struct l7_hdrs h;
	bool grpc;		/* content-type application/grpc* */
	bool upgrade;		/* h1 Upgrade (websocket): relay raw after a 101 */
	bool expect100;		/* the client waits for 100 Continue */
	bool head;		/* HEAD: no response body */
	bool has_body;		/* a body follows the headers */
	int64_t content_length; /* -1: unknown (chunked, h2 without content-length) */
	/* the body held: from its start, or (body_trimmed) from where the current try had sent
	 * it when it outgrew L7_RETRY_BUFFER */
	struct l7_buf body;
	size_t body_sent; /* bytes of body the current try has sent */
	uint64_t body_rcvd;
	bool body_done;
	bool body_trimmed; /* bytes were let go: no replay (no more retries or mirrors) */
	/* what routing decided */
	const struct l7_svc *svc;
	const struct l7_vhost *vh; /* a Gateway's virtual host (svc is its routes) */
	const struct l7_route *rt;
	const struct l7_match *matched;
	const struct l7_dest *dest;
	struct l7_cluster *cl;
	const struct workload_obj *src_wl; /* the client (source role), NULL if not a known pod */
	const struct workload_obj *dst_wl; /* the pod the last try went to */
	int ep, prev_ep;		   /* index into cl->eps, -1 */
	bool counted_active;		   /* cl->eps[ep].active counts this request */
	struct l7_retry_policy rp;
	int attempt;	      /* tries so far */
	unsigned tried_flags; /* flags of failed tries (UF, UC, UT...) */
	char *up_path;	      /* path after rewrite, NULL: unchanged */
	char *up_authority;   /* authority after rewrite, NULL: unchanged */
	uint32_t rnd;	      /* per-request random number (weights, hashing) */
	/* timers */
	struct l7_timer t_route; /* the route timeout (UT), from the end of the request */
	struct l7_timer t_try;	 /* per-try timeout, until response headers */
	struct l7_timer t_wait;	 /* fault delay, retry back-off */
	int64_t timeout_ms;	 /* route timeout, 0 none */
	uint64_t t0, t_try0, t_resp;
	uint64_t t0_ns;	     /* CLOCK_MONOTONIC at the start, for the recorded duration */
	char gen_cookie[24]; /* httpCookie with ttl the client did not send: Set-Cookie it */
	/* upstream */
	struct l7_uconn *u;
	void *us;	   /* the upstream codec's stream (HTTP/2), or NULL */
	char upstream[32]; /* "ip:port" of the last try */
	/* Envoy's response_code_details for a refusal the access log must explain (the
	 * AuthorizationPolicy that denied); "" otherwise */
	char details[300];
	/* response */
	int status;
	int grpc_status;
	unsigned flags;
	uint64_t req_bytes, resp_bytes;
	bool local_reply;
	bool reported;
	bool fault_delayed;
	bool cb_active; /* counted in cl->cb->active */
	bool cb_retry;	/* counted in cl->cb->retries */
	bool pending;	/* waiting for a connection (w->pend) */
	struct l7_req *pend_next;
	struct l7_ukey pend_key;
	bool mirror;	     /* a shadow copy (l7req.c, mirrors): its response is dropped */
	bool mirror_pending; /* mirrors go when the body is complete */
	/* rate limits (l7rl.c): the Redis call waited for, its timeout, where to go on */
	void *rl_call;
	struct l7_timer t_rl;
	int rl_stage;
	bool rl_inbound; /* refused by the destination pod's own limit (it reports it) */
	/* tracing (l7trace.c): where its spans go (NULL: not traced), its trace, the ids of its
	 * span, of the gateway's upstream child and of a local pod's server span, the formats
	 * its context goes on in, the proxy's workload and custom tags */
	struct tr_exp *tr;
	bool tr_sampled, tr_has_parent, tr_child_used, tr_local_used, tr_w3c, tr_b3;
	uint8_t tr_trace[16], tr_parent[8], tr_span[8], tr_child[8], tr_local[8];
	uint64_t tr_start_us;
	char tr_state[512];
	char tr_op[256]; /* the destination side: the name the client's agent gave the span */
	const struct tel_tag *tr_tags;
	int tr_ntags;
	int tr_max_tag;
	const struct workload_obj *tr_wl;
};

/* ---- rate limits (l7rl.c) ---- */

enum { L7_RL_PASS, L7_RL_REPLIED, L7_RL_WAIT, L7_RL_OVER, L7_RL_ERROR };
struct l7_rl;  /* the agent's: local buckets, Redis address, --ratelimit-config domains */
struct l7_rlc; /* a worker's Redis connection */
struct l7_rl *l7_rl_new(const char *redis, int netns, char *const *files, int nfiles);
void l7_rl_free(struct l7_rl *rl);
void l7_rl_metrics(const struct l7_rl *rl, FILE *f);
void l7_rlc_free(struct l7w *w, struct l7_rlc *c);
/* The limits of side ctx for r, in the proxy of workload wl on port: L7_RL_PASS (go on),
 * L7_RL_REPLIED (a local limit answered 429), L7_RL_WAIT (Redis asked: l7_req_rl_done
 * follows), L7_RL_ERROR (no Redis and failure_mode_deny: refuse with l7_rl_refuse). */
int l7_ratelimit(struct l7_req *r, enum ef_ctx ctx, const struct workload_obj *wl, int port);
/* 429 (L7_RL_OVER: x-envoy-ratelimited, RL) or 500 (L7_RL_ERROR: RLSE). */
void l7_rl_refuse(struct l7_req *r, int verdict);
void l7_rl_cancel(struct l7_req *r); /* r goes away: its Redis answer is dropped */
/* the engine's, for l7rl.c */
struct l7_rl *l7_rl_of(struct l7w *w);
struct l7_rlc **l7_rlc_slot(struct l7w *w);
struct l7w *l7_req_worker(const struct l7_req *r);
void l7_req_reply(struct l7_req *r, int status, unsigned flags, const char *body,
		  const struct l7_hdrs *extra);
void l7_req_rl_done(struct l7_req *r, int verdict); /* the answer of an L7_RL_WAIT */

/* ---- tracing (l7trace.c) ---- */

/* The request's trace: its context in, the proxy's config (workload wl, server: the
 * destination's side), its span ids; r->tr stays NULL when it is not traced. */
void l7_trace_begin(struct l7_req *r, const struct workload_obj *wl, bool server);
/* Its context for the next hop into r->h, before each try: ep the endpoint (source role), NULL
 * on the destination side (the pod); a pod of this node gets the id of the SERVER span this
 * agent makes for it, another agent the name of the span (x-envoy-decorator-operation). */
void l7_trace_headers(struct l7_req *r, const struct l7_ep *ep);
void l7_trace_end(struct l7_req *r); /* its spans, when sampled, to the exporter */
/* The agent's exporter for url and proto (made on first use, for the agent's life). */
struct tr_exp *l7_tracer(struct l7w *w, const char *url, enum tel_proto proto);
/* A finished span of exporter e, kept by the worker; l7_spans_flush hands them over. */
void l7_span_add(struct l7w *w, struct tr_exp *e, struct tr_span *s);
void l7_spans_flush(struct l7w *w);

/* ---- the engine's calls (l7req.c), for the codecs ---- */

/* A request the codec just allocated (zeroed): its timers unarmed, so that l7_req_free is
 * safe before l7_req_start (a request refused while its head was read). */
void l7_req_init(struct l7_req *r, struct l7_dconn *dc, void *cs);
/* The downstream codec parsed a request's headers (r->method... r->h are set). */
void l7_req_start(struct l7_req *r);
/* Body bytes (already de-framed); end: the request is complete. */
void l7_req_body(struct l7_req *r, const char *p, size_t n, bool end);
/* The client went away or reset the stream (DC). */
void l7_req_abort(struct l7_req *r);
/* The client can take more response bytes. */
void l7_req_drained(struct l7_req *r);
/* Free what the engine holds of r (the codec calls it when it frees r). */
void l7_req_free(struct l7_req *r);

/* ---- for the upstream codecs ---- */
void l7_req_try_failed(struct l7_req *r, enum l7_tryend why);
/* A circuit breaker is open for r's cluster: 503 UO. */
void l7_req_overflow(struct l7_req *r);
/* Response head; returns false when the engine retries instead (the codec then drops this
 * stream and the connection's state for it). */
bool l7_req_resp_head(struct l7_req *r, int status, struct l7_hdrs *h, bool end);
void l7_req_resp_data(struct l7_req *r, const char *p, size_t n, bool end);
void l7_req_resp_trailers(struct l7_req *r, struct l7_hdrs *h);
void l7_req_resp_reset(struct l7_req *r); /* after the head: the upstream broke mid-response */
/* Request body bytes the upstream has not taken yet (the client stops being read above
 * L7_BUF_HIGH). */
size_t l7_req_body_queued(const struct l7_req *r);

/* A 101 came back: the two connections relay raw bytes from now on (h1 only). */
void l7_req_upgraded(struct l7_req *r, struct l7_buf *from_upstream);

/* ---- upstream connections (l7h1.c, l7h2.c) ---- */

struct l7_uconn {
	struct l7_dead dead;
	struct l7w *w;
	struct l7_io io;
	struct l7_ukey key;
	struct dial_pass pass;
	bool connected;
	bool h2;
	int nreq;		    /* requests sent over it */
	int max_req;		    /* maxRequestsPerConnection, 0 unlimited */
	uint64_t idle_ms;	    /* idleTimeout */
	struct l7_timer t;	    /* connect timeout, then idle timeout */
	struct l7_uconn *next_idle; /* in its pool */
	struct l7_cb *cb;	    /* counted in cb->conns */
	void *cx;		    /* codec state */
	struct l7_req *r;	    /* h1: the request it carries */
	bool dead_flag;
};

void l7_uconn_close(struct l7_uconn *u);
void l7_uconn_idle(struct l7_uconn *u); /* back in its pool */
/* dfd and ufd relay raw bytes from now on (an upgraded connection); the buffers are what each
 * side has yet to receive. */
void l7_relay(struct l7w *w, int dfd, struct l7_buf *to_down, int ufd, struct l7_buf *to_up);

/* Send r over an upstream connection to cl->eps[r->ep] (pooled, or new); the codec calls the
 * l7_req_* functions above as things happen. 0, or -1 (nothing started: connect failed at once). */
int l7_upstream_start(struct l7_req *r);
/* r gives up on its try (timeout, retry, client gone): the stream or connection is dropped. */
void l7_upstream_abandon(struct l7_req *r);
/* Requests waiting for a connection slot whose cluster has one now: started (each worker's
 * loop calls it). */
void l7_pending_kick(struct l7w *w);
/* More request body (or its end) is in r->body. */
void l7_upstream_body(struct l7_req *r);
/* The client drained: the upstream may read more. */
void l7_upstream_resume(struct l7_req *r);
/* Pooled connections of a worker: drop the idle ones (shutdown). */
void l7_pool_free(struct l7w *w);
/* A new config: idle connections go (their cluster may have a new pool policy). */
void l7_pool_drain(struct l7w *w);

/* h1 codec entry points (l7h1.c) */
void l7h1_server(struct l7_dconn *dc, const char *pre, size_t n); /* pre: bytes read already */
int l7h1_start(struct l7_req *r, struct l7_uconn *u);
void l7h1_body(struct l7_req *r);
void l7h1_abandon(struct l7_req *r, struct l7_uconn *u);
void l7h1_resume(struct l7_req *r);
void l7h1_uconn_ready(struct l7_uconn *u); /* connected: send */
void l7h1_uconn_free(struct l7_uconn *u);

/* h2 codec entry points (l7h2.c) */
void l7h2_server(struct l7_dconn *dc, const char *pre, size_t n, bool upgraded,
		 struct l7_req *upgrade_req);
bool l7h2_preface(const char *p, size_t n); /* n bytes are (a prefix of) the h2 preface */
/* tls routes (l7tls.c): a connection to a port Istio reads as tls/https; pre: read already */
void l7_tls_server(struct l7_dconn *dc, const char *pre, size_t n);
/* A raw connection to e for dc's client (l7up.c: attested local dial, the tunnel, or
 * direct), connecting or connected; -1 on failure. */
int l7_dial_ep(struct l7w *w, const struct l7_dconn *dc, const struct l7_ep *e,
	       struct dial_pass *pass);
/* HTTP/1.1 `Upgrade: h2c`: the connection (dc, its fd) becomes an HTTP/2 server session whose
 * stream 1 is the returned request; to_client holds the 101 not yet sent. The caller fills the
 * request in (method, path, headers...), then l7h2_upgrade_go with the bytes it read past the
 * request (the client's preface). NULL: the connection is closed. */
struct l7_req *l7h2_server_upgrade(struct l7_dconn *dc, const char *settings64,
				   struct l7_buf *to_client);
void l7h2_upgrade_go(struct l7_req *r, const char *rest, size_t n);
int l7h2_start(struct l7_req *r, struct l7_uconn *u);
void l7h2_body(struct l7_req *r);
void l7h2_abandon(struct l7_req *r, struct l7_uconn *u);
void l7h2_resume(struct l7_req *r);
void l7h2_uconn_ready(struct l7_uconn *u);
void l7h2_uconn_free(struct l7_uconn *u);
void l7h2_uconn_failed(struct l7_uconn *u); /* its connect failed */
bool l7h2_uconn_can_take(struct l7_uconn *u);
bool l7h2_uconn_busy(struct l7_uconn *u); /* streams open on it */

/* ---- the worker ---- */

struct l7_queued {
	int fd;
	struct tunnel_stream in;
};

struct l7_pool {
	struct l7_ukey key;
	struct l7_uconn *idle; /* h1: idle connections; h2: the connections, shared */
	int n;
};

struct l7w {
	struct l7 *l;
	int id;
	pthread_t th;
	int ep, wake, lfd;
	struct l7_io lio, wio;
	struct l7_snap *snap;
	struct l7_timer **heap;
	int nheap, capheap;
	struct l7_dead *dead;
	uint64_t now; /* ms, refreshed per batch of events */
	uint64_t rng;
	struct htab pools;
	struct l7_pool *pv;
	int npv, cappv;
	struct l7_stats stats;
	struct l7_req *pend; /* requests waiting for a connection slot, oldest first */
	struct l7_buf alog;  /* access log lines not yet written (l7log.c) */
	uint64_t alog_at;    /* when they were last written */
	struct l7_later *later, **later_tail; /* l7_later, in order */
	/* hand-offs from other threads, under mu */
	pthread_mutex_t mu;
	struct l7_queued *q;
	int nq, capq;
	bool stop;
	bool draining; /* an upgrade: not accepting, responses say connection: close */
	struct l7_dconn *dconns; /* open HTTP/1 and HTTP/2 connections (l7_dconn_link) */
	bool held;     /* not accepting yet (l7_opts.hold) */
	struct l7_gwio **gio; /* the Gateway listeners in this worker's epoll set */
	int ngio;
	struct l7_rlc *rlc; /* its Redis connection (global rate limits), NULL until needed */
	/* tracing: the last exporter it asked for (l7_tracer, no lock), and its finished spans,
	 * handed to their exporter L7_SPAN_BATCH at a time or every L7_LOG_FLUSH_MS */
	char trc_url[512];
	int trc_proto;
	struct tr_exp *trc_exp;
	struct tr_span *spans[L7_SPAN_BATCH];
	struct tr_exp *span_exp[L7_SPAN_BATCH];
	int nspans;
	uint64_t spans_at;
	/* counters for /metrics (atomics) */
	uint64_t c_conns, c_active, c_reqs, c_rejected, c_tls_failed;
};

/* Gateways: a connection accepted on an HTTPS port, terminated here (l7gwtls.c); and the
 * plaintext of one, which l7gwtls.c hands back as a gateway connection (l7.c). */
void l7_gwtls_accept(struct l7w *w, int fd, const struct l7_dconn *proto,
		     const struct l7_gwport *g);
void l7_gw_begin(struct l7w *w, int fd, const struct l7_dconn *proto);
/* A connection accepted on a Gateway's TCP server (l7tls.c): routed by the tcp routes. */
void l7_tcp_gw_server(struct l7w *w, int fd, const struct l7_dconn *proto);

/* An upgrade gave the maps to the next agent (l7_give_maps): write none. */
bool l7_maps_given(const struct l7w *w);

/* Options of the engine, for the parts. */
const struct l7_opts *l7_opts_of(const struct l7w *w);
/* The gateway workload (l7_opts.gateway), NULL without --ingress. */
const struct workload_obj *l7_gateway_of(const struct l7w *w);
struct tunnel *l7_tunnel_of(const struct l7w *w);
uint32_t l7_rand(struct l7w *w);
uint64_t l7_now(void);

#endif /* BM_L7INT_H */
