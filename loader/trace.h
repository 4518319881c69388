/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * trace.h: distributed tracing for the agent's HTTP path: the trace context a request carries
 * in and out (W3C traceparent/tracestate, B3 multi and single header), spans as Envoy makes
 * them for Istio, and exporters that send them to a collector in batches from a thread of
 * their own (Zipkin v2 JSON at /api/v2/spans, OTLP/HTTP protobuf or JSON at /v1/traces) with a
 * bounded queue: a slow or dead collector never slows a request, it only loses spans
 * (counted). l7trace.c makes the spans of requests; user/lib/telemetry.h says where they go.
 */
#ifndef BM_TRACE_H
#define BM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "telemetry.h"

struct l7_hdrs;

/* What a request carried in. */
struct tr_ctx {
	uint8_t trace[16];
	uint8_t span[8]; /* the caller's span: ours is its child */
	bool has_trace, has_span;
	int sampled; /* -1: no decision, 0, 1 */
	bool w3c, b3; /* how it came: what goes out again */
	char tracestate[512];
};

/* traceparent first, then the b3 single header, then x-b3-*; nothing valid: has_trace false.
 * get(arg, lower-case name) reads a request header. */
void tr_extract(const char *(*get)(void *arg, const char *name), void *arg, struct tr_ctx *c);
/* The context for the next hop: w3c: traceparent (and tracestate when set); b3: x-b3-traceid,
 * x-b3-spanid, x-b3-parentspanid (parent non-NULL), x-b3-sampled, and a b3 single header
 * replaced by the same in its form. */
void tr_inject(struct l7_hdrs *h, const uint8_t trace[16], const uint8_t span[8],
	       const uint8_t *parent, bool sampled, const char *tracestate, bool w3c, bool b3);
/* 32 / 16 lower-case hex digits of an id (out: 2 * n + 1 bytes). */
void tr_hex(const uint8_t *id, size_t n, char *out);

#define TR_MAX_TAGS  48
#define TR_TAG_BYTES 2048 /* a span's tags, keys and values, at most (then they are cut) */

/* One finished span, one allocation, owned by whoever holds it (tr_span_free). */
struct tr_span {
	uint8_t trace[16], id[8], parent[8];
	bool has_parent;
	bool remote_parent; /* the parent came in with the request (another proxy's span) */
	bool server;	    /* kind SERVER, else CLIENT */
	bool error;
	bool sampled;
	uint64_t start_us, dur_us; /* CLOCK_REALTIME */
	char name[256];
	char service[128]; /* Istio's service cluster: app.namespace */
	char ipv4[16];
	char tracestate[512];
	struct {
		uint16_t k, v; /* offsets into tagbuf */
	} tags[TR_MAX_TAGS];
	int ntags;
	uint16_t taglen;
	char tagbuf[TR_TAG_BYTES];
};
void tr_tag(struct tr_span *s, const char *k, const char *v, int max_len); /* copies */
static inline const char *tr_tag_k(const struct tr_span *s, int i)
{
	return s->tagbuf + s->tags[i].k;
}
static inline const char *tr_tag_v(const struct tr_span *s, int i)
{
	return s->tagbuf + s->tags[i].v;
}
void tr_span_free(struct tr_span *s);

/* The encodings, into a heap buffer (*len its size); NULL when out of memory. */
char *tr_zipkin_json(struct tr_span *const *v, int n, size_t *len);
uint8_t *tr_otlp_pb(struct tr_span *const *v, int n, size_t *len);
char *tr_otlp_json(struct tr_span *const *v, int n, size_t *len);

/* An exporter: a thread that sends its queue to url (http://host:port/path) with proto. */
#define TR_QUEUE_MAX 1024 /* spans waiting (about 3 KB each); more are dropped (counted) */
#define TR_BATCH     128  /* spans per request to the collector */
#define TR_FLUSH_MS  1000 /* a batch waits at most this long */
struct tr_exp;
/* netns >= 0: its connections are made in that network namespace (the agent's own, in the
 * lab), else in the caller's. NULL on failure (logged). */
struct tr_exp *tr_exp_new(const char *url, enum tel_proto proto, int netns);
void tr_exp_stop(struct tr_exp *e); /* tell its thread to end (a transfer is cut short) */
void tr_exp_free(struct tr_exp *e); /* stops the thread; spans not sent are lost */
const char *tr_exp_url(const struct tr_exp *e);
enum tel_proto tr_exp_proto(const struct tr_exp *e);
/* Queue s (taken: freed by the exporter, or now if the queue is full: dropped). */
void tr_exp_submit(struct tr_exp *e, struct tr_span *s);
/* The same for n spans at once (one lock for all of them). */
void tr_exp_submitv(struct tr_exp *e, struct tr_span **v, int n);
struct tr_stats {
	uint64_t exported, dropped, failed; /* spans */
};
void tr_exp_stats(const struct tr_exp *e, struct tr_stats *st);
/* Wait until everything queued so far was sent or failed (tests, shutdown), at most ms. */
bool tr_exp_flush(struct tr_exp *e, int ms);

#endif /* BM_TRACE_H */
