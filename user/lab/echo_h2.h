/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * echo_h2.h: HTTP/2 for the lab's echo server. echo.c hands a connection to this module when
 * it opens with the client preface (prior knowledge) or asks for "Upgrade: h2c"; from then on
 * one nghttp2 server session turns the bytes read into complete requests, and answers into
 * frames. What a request is answered with (routes, JSON, gRPC) stays in echo.c: this module
 * only knows streams, limits and timers. Called by echo.c only; tested by tests/unit/test_echo.c.
 */
#ifndef BM_ECHO_H2_H
#define BM_ECHO_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "echo.h"

/* Limits; each overridable at build time. Every stream also has echo.h's per-request ones. */
#ifndef ECHO_H2_MAX_STREAMS
#define ECHO_H2_MAX_STREAMS 100 /* SETTINGS_MAX_CONCURRENT_STREAMS we announce */
#endif
#ifndef ECHO_H2_MAX_BUFFERED
#define ECHO_H2_MAX_BUFFERED                                                                       \
	(4 * ECHO_MAX_BODY) /* bodies held per connection; beyond: no window                       \
			     */
#endif

#ifndef ECHO_H2_MAX_ANSWERS
#define ECHO_H2_MAX_ANSWERS (4 * ECHO_MAX_BODY) /* answers not yet sent; beyond: requests wait */
#endif

/* What a client sends first on a prior-knowledge connection (RFC 9113 3.4). */
#define ECHO_H2_PREFACE	    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define ECHO_H2_PREFACE_LEN (sizeof(ECHO_H2_PREFACE) - 1)

struct h2;

struct h2_str {
	const char *p;
	size_t n;
};

struct h2_field {
	struct h2_str name, value;
};

/* A request, handed over once it is complete (END_STREAM) or refused. Valid during the call. */
struct h2_request {
	int32_t stream;
	int status; /* 0, or the HTTP status this module refuses it with: 413, 431 */
	struct h2_str method, path, authority, scheme; /* pseudo-header fields; n = 0 if absent */
	const struct h2_field *fields;		       /* the others in arrival order */
	int nfields;
	const char *body;
	size_t blen;
};

/*
 * Called for every request: answer it with h2_respond() and return 0, or return a deadline
 * (milliseconds on the caller's clock, > 0) at which h2_timer() calls again with late set, so
 * that /delay/N holds its own stream and not the connection.
 */
typedef int64_t (*h2_request_fn)(void *ctx, struct h2 *h, const struct h2_request *rq, bool late);

/*
 * An answer: fields[0] must be :status; at most 16 fields and 8 trailers. Everything is copied.
 * With no body (NULL, 0) and no trailers, HEADERS ends the stream: HEAD, 204, a gRPC failure
 * (trailers-only). Trailers follow the body: a gRPC status.
 */
struct h2_answer {
	const struct h2_field *fields;
	int nfields;
	const void *body;
	size_t blen;
	const struct h2_field *trailers;
	int ntrailers;
};

/* A server session that has sent nothing yet. NULL when out of memory. */
struct h2 *h2_new(h2_request_fn fn, void *ctx);
void h2_free(struct h2 *h);

/*
 * RFC 7540 3.2: after an HTTP/1.1 request with "Upgrade: h2c", settings is its HTTP2-Settings
 * value (base64url). rq becomes stream 1 and is answered like any other (fn is called before
 * this returns). -1: not a valid upgrade (the caller answers in HTTP/1.1), nothing changed.
 */
int h2_upgrade(struct h2 *h, const char *settings, size_t n, const struct h2_request *rq);

/* Bytes read from the client. -1: the connection is beyond saving (close it now). */
int h2_recv(struct h2 *h, const void *p, size_t n);

/* The next bytes to send (valid until the next call): > 0 bytes, 0 nothing now, -1 fatal. */
ssize_t h2_send(struct h2 *h, const uint8_t **p);

/* Answer a stream (once). -1: out of memory. A stream the client has reset is ignored. */
int h2_respond(struct h2 *h, int32_t stream, const struct h2_answer *a);

/* The earliest deadline of a held answer, 0 if none; h2_timer() asks fn again for those due. */
int64_t h2_due(const struct h2 *h);
void h2_timer(struct h2 *h, int64_t now);

/* Something left to send, or an answer held back. */
bool h2_busy(const struct h2 *h);
/* Both sides are done (GOAWAY, or a connection error) and everything is sent: close. */
bool h2_done(const struct h2 *h);

#endif /* BM_ECHO_H2_H */
