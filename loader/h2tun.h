/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * h2tun.h: HBONE's HTTP/2 layer, as ztunnel frames it: one struct h2t per mutual-TLS
 * connection between two tunnel ends, one CONNECT stream (struct h2t_stream) per application
 * connection carried on it. nghttp2 in memory mode: the tunnel (tunnel.c) moves bytes between
 * its TLS socket and h2t_recv()/h2t_out(), and between each stream's plaintext socket and the
 * stream's two buffers; this file does the framing, the flow control (windows as ztunnel's:
 * 4 MiB a stream, 16 MiB a connection, given back only as the plaintext side takes the bytes)
 * and the life of each stream. No sockets, no TLS here: the unit tests run a client and a
 * server session against each other in memory.
 *
 * Callbacks (struct h2t_cb) never run inside nghttp2: what a frame asks for is queued and
 * delivered once nghttp2 has returned, so a callback may answer, write, reset or release at
 * once. A stream lives until both nghttp2 is done with it and its user released it
 * (h2t_release): bytes received before the peer's END_STREAM stay readable after the close.
 */
#ifndef BM_H2TUN_H
#define BM_H2TUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define H2T_STREAM_WINDOW   (4 << 20)  /* SETTINGS_INITIAL_WINDOW_SIZE (ztunnel's default) */
#define H2T_CONN_WINDOW	    (16 << 20) /* connection window (ztunnel's default) */
#define H2T_SERVER_STREAMS  200	       /* SETTINGS_MAX_CONCURRENT_STREAMS we announce */
#define H2T_CLIENT_STREAMS  100	       /* streams a client opens on one connection (a pool) */
#define H2T_OUT_MAX	    65536      /* plaintext -> tunnel bytes buffered per stream */
#define H2T_HEADER_MAX	    512	       /* longest header value kept (authority, baggage...) */
#define H2T_CONNECT_ERROR   0xa	       /* RST_STREAM code: the plaintext side was reset */
#define H2T_CANCEL	    0x8	       /* RST_STREAM code: not wanted any more */
#define H2T_REFUSED_STREAM  0x7	       /* closed unprocessed: safe to try again elsewhere */

struct h2t;
struct h2t_stream;

/* A CONNECT request as the server received it; empty strings for absent headers. */
struct h2t_req {
	char method[16];
	char authority[H2T_HEADER_MAX];
	char forwarded[H2T_HEADER_MAX];
	char baggage[H2T_HEADER_MAX];
	char traceparent[H2T_HEADER_MAX];
	char protocol[32]; /* bpfmesh-protocol: what our HTTP path sends ("http/1.1") */
	bool too_long; /* a header of those did not fit: answer 400 */
};

struct h2t_cb {
	/* server: a stream's request head is complete; answer with h2t_respond() (now or later) */
	void (*request)(void *arg, struct h2t_stream *s, const struct h2t_req *r);
	/* client: the response head of a stream opened with h2t_connect() */
	void (*response)(void *arg, struct h2t_stream *s, int status);
	/* bytes from the peer wait in the stream (h2t_peek), or the peer ended its side */
	void (*readable)(void *arg, struct h2t_stream *s);
	/* the stream's out buffer has room again (h2t_room) */
	void (*writable)(void *arg, struct h2t_stream *s);
	/* nghttp2 is done with the stream: error 0 (both sides ended) or an RST_STREAM/GOAWAY
	 * code; the user still holds it until h2t_release() */
	void (*closed)(void *arg, struct h2t_stream *s, uint32_t error);
};

/* server: true for the side that accepted the TLS connection. NULL when out of memory. */
struct h2t *h2t_new(bool server, const struct h2t_cb *cb, void *arg);
/* Frees every stream (closed is not called: the user tears its streams down first). */
void h2t_free(struct h2t *h);
/* Bytes read from the TLS side. -1: a connection error (what to tell the peer, a GOAWAY, is
 * in h2t_out; send it, then close). */
int h2t_recv(struct h2t *h, const void *p, size_t n);
/* What to write to the TLS side now (may be 0 bytes); h2t_sent() once n of them are out. */
size_t h2t_out(struct h2t *h, const uint8_t **p);
void h2t_sent(struct h2t *h, size_t n);
/* Neither side wants anything more (GOAWAY both ways, or nothing open and a GOAWAY sent). */
bool h2t_done(const struct h2t *h);
/* Streams open (not yet closed by nghttp2). */
int h2t_streams(const struct h2t *h);
/* Another stream may be opened on this connection (client: under H2T_CLIENT_STREAMS, the
 * peer's limit, and no GOAWAY either way). */
bool h2t_can_open(const struct h2t *h);
/* No new streams: GOAWAY with NO_ERROR (open streams finish). */
void h2t_goaway(struct h2t *h);
/* Server: a GOAWAY with the largest stream id (RFC 9113 6.8), so the peer opens no new
 * streams; those on their way are still served. h2t_goaway after a round trip ends it. */
void h2t_shutdown_notice(struct h2t *h);
/* Keepalive: a PING, and whether the ACK of the last one came. */
void h2t_ping(struct h2t *h);
bool h2t_ping_acked(const struct h2t *h);

/* client: open a CONNECT stream to authority ("ip:port", "[v6]:port") with extra headers
 * (name/value pairs, n of them). NULL when none can be opened. */
struct h2t_stream *h2t_connect(struct h2t *h, const char *authority, const char *const *hdrs,
			       int n, void *user);
/* server: answer the request. 200: the stream carries data both ways from here; anything else
 * ends it (the response has END_STREAM). */
int h2t_respond(struct h2t_stream *s, int status);
/* RST_STREAM with code (NGHTTP2_CANCEL for a reset of the plaintext side). */
void h2t_reset(struct h2t_stream *s, uint32_t code);
/* The user lets go: after this, s is not used again. A stream still open is reset first. */
void h2t_release(struct h2t_stream *s);

/* Bytes from the peer for the plaintext side, and how many of them went there (their window
 * goes back to the peer). */
size_t h2t_peek(struct h2t_stream *s, const uint8_t **p);
void h2t_consumed(struct h2t_stream *s, size_t n);
/* The peer ended its side (END_STREAM) and every byte before it was taken. */
bool h2t_peer_ended(const struct h2t_stream *s);
/* Room in the out buffer, bytes for the peer, and the plaintext side's end (END_STREAM once
 * the buffer is out). */
size_t h2t_room(const struct h2t_stream *s);
void h2t_write(struct h2t_stream *s, const void *p, size_t n);
void h2t_end(struct h2t_stream *s);
/* Everything written is out, END_STREAM included (the plaintext side may be closed). */
bool h2t_flushed(const struct h2t_stream *s);

void *h2t_user(const struct h2t_stream *s);
void h2t_set_user(struct h2t_stream *s, void *user);
int32_t h2t_id(const struct h2t_stream *s);

#endif
