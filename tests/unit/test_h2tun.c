// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_h2tun.c: HBONE's HTTP/2 layer (loader/h2tun.c) with a client and a server session
 * wired to each other in memory: CONNECT heads and answers, data both ways with half-close,
 * flow control that holds a slow reader's stream back (and only that one), the stream limit,
 * resets both ways, and bytes that stay readable after the stream closed.
 */
#include <stdlib.h>
#include <string.h>
#include <nghttp2/nghttp2.h>
#include "check.h"
#include "h2tun.h"
#include "hbone.h"

#define MAXS 256

/* One side's view: what its callbacks saw. */
struct side {
	struct h2t *h;
	struct h2t_req req[MAXS];
	struct h2t_stream *st[MAXS];
	int nreq;
	int status[MAXS];
	int nresp;
	int closed, readable, writable;
	uint32_t last_err;
	int answer;	 /* server: the status the request callback answers (0: none yet) */
	bool read_all;	 /* take every byte at once */
	size_t got;	 /* bytes taken */
	bool release_on_close;
};

static void on_request(void *arg, struct h2t_stream *s, const struct h2t_req *r)
{
	struct side *sd = arg;

	if (sd->nreq < MAXS) {
		sd->req[sd->nreq] = *r;
		sd->st[sd->nreq] = s;
	}
	sd->nreq++;
	if (sd->answer)
		h2t_respond(s, sd->answer);
}

static void on_response(void *arg, struct h2t_stream *s, int status)
{
	struct side *sd = arg;

	(void)s;
	if (sd->nresp < MAXS)
		sd->status[sd->nresp] = status;
	sd->nresp++;
}

static void on_readable(void *arg, struct h2t_stream *s)
{
	struct side *sd = arg;
	const uint8_t *p;
	size_t n;

	sd->readable++;
	if (sd->read_all && (n = h2t_peek(s, &p))) {
		sd->got += n;
		h2t_consumed(s, n);
	}
}

static void on_writable(void *arg, struct h2t_stream *s)
{
	(void)s;
	((struct side *)arg)->writable++;
}

static void on_closed(void *arg, struct h2t_stream *s, uint32_t err)
{
	struct side *sd = arg;

	sd->closed++;
	sd->last_err = err;
	if (sd->release_on_close)
		h2t_release(s);
}

static const struct h2t_cb cbs = {on_request, on_response, on_readable, on_writable, on_closed};

/* Move bytes both ways until neither side has anything to say. */
static void pump(struct side *c, struct side *s)
{
	for (int round = 0; round < 10000; round++) {
		const uint8_t *p;
		size_t n1 = h2t_out(c->h, &p);

		if (n1) {
			h2t_recv(s->h, p, n1);
			h2t_sent(c->h, n1);
		}
		size_t n2 = h2t_out(s->h, &p);

		if (n2) {
			h2t_recv(c->h, p, n2);
			h2t_sent(s->h, n2);
		}
		if (!n1 && !n2)
			return;
	}
}

static void pair(struct side *c, struct side *s)
{
	memset(c, 0, sizeof(*c));
	memset(s, 0, sizeof(*s));
	c->h = h2t_new(false, &cbs, c);
	s->h = h2t_new(true, &cbs, s);
	pump(c, s);
}

static void unpair(struct side *c, struct side *s)
{
	h2t_free(c->h);
	h2t_free(s->h);
}

static void test_connect_head(void)
{
	struct side c, s;
	const char *hdrs[] = {"forwarded",	  "for=10.244.1.4",
			      "baggage",	  "k8s.namespace.name=zt",
			      "traceparent",	  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			      "bpfmesh-protocol", "http/1.1"};
	struct h2t_stream *cs;

	pair(&c, &s);
	s.answer = 200;
	cs = h2t_connect(c.h, "10.244.2.3:8080", hdrs, 4, &c);
	if (!CHECK(cs != NULL, "a stream opens"))
		return;
	pump(&c, &s);
	CHECK_EQ(s.nreq, 1, "the server saw one request");
	CHECK_STR(s.req[0].method, "CONNECT", ":method");
	CHECK_STR(s.req[0].authority, "10.244.2.3:8080", ":authority");
	CHECK_STR(s.req[0].forwarded, "for=10.244.1.4", "forwarded");
	CHECK_STR(s.req[0].baggage, "k8s.namespace.name=zt", "baggage");
	CHECK_STR(s.req[0].traceparent, hdrs[5], "traceparent");
	CHECK_STR(s.req[0].protocol, "http/1.1", "bpfmesh-protocol (our HTTP path's streams)");
	CHECK_EQ(c.nresp, 1, "the client saw the answer");
	CHECK_EQ(c.status[0], 200, "200");
	CHECK(h2t_user(cs) == &c, "the user pointer stays");
	CHECK_EQ(h2t_streams(c.h), 1, "one open stream on the client");
	CHECK_EQ(h2t_streams(s.h), 1, "... and on the server");
	unpair(&c, &s);
}

static void test_data_both_ways_half_close(void)
{
	struct side c, s;
	struct h2t_stream *cs, *ss;
	const uint8_t *p;
	size_t n;

	pair(&c, &s);
	s.answer = 200;
	cs = h2t_connect(c.h, "10.244.2.3:8080", NULL, 0, NULL);
	pump(&c, &s);
	ss = s.st[0];
	h2t_write(cs, "hello ", 6);
	h2t_write(cs, "server", 6);
	h2t_end(cs); /* the client's half-close */
	pump(&c, &s);
	n = h2t_peek(ss, &p);
	CHECK_EQ(n, 12, "the server has 12 bytes");
	CHECK(n == 12 && !memcmp(p, "hello server", 12), "in order");
	CHECK(!h2t_peer_ended(ss), "ended only once the bytes are taken");
	h2t_consumed(ss, n);
	CHECK(h2t_peer_ended(ss), "the client's END_STREAM");
	CHECK_EQ(s.closed, 0, "the stream stays open the other way");
	h2t_write(ss, "reply", 5);
	pump(&c, &s);
	n = h2t_peek(cs, &p);
	CHECK(n == 5 && !memcmp(p, "reply", 5), "the answer after the half-close");
	h2t_consumed(cs, n);
	h2t_end(ss);
	pump(&c, &s);
	CHECK(h2t_peer_ended(cs), "the server's END_STREAM");
	CHECK_EQ(c.closed, 1, "closed on the client, both sides ended");
	CHECK_EQ(s.closed, 1, "... and on the server");
	CHECK_EQ(c.last_err, 0, "no error");
	CHECK(h2t_flushed(cs) && h2t_flushed(ss), "both flushed");
	CHECK_EQ(h2t_streams(c.h), 0, "no stream open");
	h2t_release(cs);
	h2t_release(ss);
	unpair(&c, &s);
}

/* A reader that takes nothing holds its own stream at the window (4 MiB), not the others. */
static void test_flow_control(void)
{
	struct side c, s;
	struct h2t_stream *slow, *fast, *ss_slow = NULL, *ss_fast = NULL;
	static uint8_t chunk[16384];
	size_t sent_slow = 0, sent_fast = 0, total = 6 << 20;
	const uint8_t *p;

	pair(&c, &s);
	s.answer = 200;
	slow = h2t_connect(c.h, "10.244.2.3:1", NULL, 0, NULL);
	fast = h2t_connect(c.h, "10.244.2.3:2", NULL, 0, NULL);
	pump(&c, &s);
	for (int i = 0; i < s.nreq && i < 2; i++) {
		if (!strcmp(s.req[i].authority, "10.244.2.3:1"))
			ss_slow = s.st[i];
		else
			ss_fast = s.st[i];
	}
	if (!CHECK(ss_slow && ss_fast, "both streams reached the server"))
		return;
	memset(chunk, 'x', sizeof(chunk));
	for (int round = 0; round < 2000 && (sent_slow < total || sent_fast < total); round++) {
		size_t r;

		while (sent_slow < total && (r = h2t_room(slow)) > 0) {
			r = r < sizeof(chunk) ? r : sizeof(chunk);
			h2t_write(slow, chunk, r);
			sent_slow += r;
		}
		while (sent_fast < total && (r = h2t_room(fast)) > 0) {
			r = r < sizeof(chunk) ? r : sizeof(chunk);
			h2t_write(fast, chunk, r);
			sent_fast += r;
		}
		pump(&c, &s);
		size_t n = h2t_peek(ss_fast, &p);

		h2t_consumed(ss_fast, n); /* the fast reader takes everything */
		if (h2t_room(slow) == 0 && sent_fast >= total)
			break;
	}
	pump(&c, &s);
	CHECK_EQ(sent_fast, total, "the fast stream sent its 6 MiB");
	CHECK_EQ(h2t_peek(ss_fast, &p), 0, "... and the server took them all");
	CHECK_EQ(h2t_peek(ss_slow, &p), H2T_STREAM_WINDOW, "the slow stream stopped at its window");
	CHECK_EQ(h2t_room(slow), 0, "its writer sees no room");
	/* the slow reader takes it now: the rest comes */
	for (int round = 0; round < 2000 && sent_slow < total; round++) {
		size_t n = h2t_peek(ss_slow, &p), r;

		h2t_consumed(ss_slow, n);
		while (sent_slow < total && (r = h2t_room(slow)) > 0) {
			r = r < sizeof(chunk) ? r : sizeof(chunk);
			h2t_write(slow, chunk, r);
			sent_slow += r;
		}
		pump(&c, &s);
	}
	h2t_consumed(ss_slow, h2t_peek(ss_slow, &p));
	CHECK_EQ(sent_slow, total, "the slow stream sent its 6 MiB once read");
	CHECK(c.writable > 0, "the writer was told of room again");
	unpair(&c, &s);
}

static void test_stream_limit_and_refusal(void)
{
	struct side c, s;
	int opened = 0;

	pair(&c, &s);
	s.answer = 401;
	for (int i = 0; i < 150; i++)
		if (h2t_connect(c.h, "10.244.2.9:80", NULL, 0, NULL))
			opened++;
	CHECK_EQ(opened, H2T_CLIENT_STREAMS, "a client opens at most 100 streams on a connection");
	CHECK(!h2t_can_open(c.h), "and says so");
	pump(&c, &s);
	CHECK_EQ(s.nreq, 100, "the server saw them");
	CHECK_EQ(c.nresp, 100, "each answered");
	CHECK_EQ(c.status[0], 401, "401");
	CHECK_EQ(h2t_streams(c.h), 0, "an error answer ends the stream");
	CHECK(h2t_can_open(c.h), "room again");
	unpair(&c, &s);
}

static void test_resets(void)
{
	struct side c, s;
	struct h2t_stream *cs, *ss;

	pair(&c, &s);
	s.answer = 200;
	s.release_on_close = true;
	cs = h2t_connect(c.h, "10.244.2.3:8080", NULL, 0, NULL);
	pump(&c, &s);
	h2t_reset(cs, NGHTTP2_CANCEL); /* the client's plaintext side was reset */
	pump(&c, &s);
	CHECK_EQ(s.closed, 1, "the server's stream closed");
	CHECK_EQ(s.last_err, NGHTTP2_CANCEL, "with CANCEL");
	h2t_release(cs);
	/* the other way: the pod reset its connection */
	cs = h2t_connect(c.h, "10.244.2.3:8080", NULL, 0, NULL);
	pump(&c, &s);
	ss = s.st[1];
	h2t_reset(ss, NGHTTP2_CONNECT_ERROR);
	pump(&c, &s);
	CHECK_EQ(c.closed, 2, "the client's stream closed");
	CHECK_EQ(c.last_err, NGHTTP2_CONNECT_ERROR, "with CONNECT_ERROR");
	h2t_release(cs);
	unpair(&c, &s);
}

/* A stream both sides ended while its bytes wait: they stay readable until released. */
static void test_bytes_after_close(void)
{
	struct side c, s;
	struct h2t_stream *cs, *ss;
	const uint8_t *p;

	pair(&c, &s);
	s.answer = 200;
	cs = h2t_connect(c.h, "10.244.2.3:8080", NULL, 0, NULL);
	pump(&c, &s);
	ss = s.st[0];
	h2t_write(cs, "last words", 10);
	h2t_end(cs);
	h2t_end(ss);
	pump(&c, &s);
	CHECK_EQ(s.closed, 1, "closed by nghttp2");
	CHECK_EQ(h2t_peek(ss, &p), 10, "the bytes are still there");
	CHECK(!memcmp(p, "last words", 10), "intact");
	h2t_consumed(ss, 10);
	CHECK(h2t_peer_ended(ss), "then the end");
	h2t_release(ss);
	h2t_release(cs);
	pump(&c, &s);
	unpair(&c, &s);
}

static void test_goaway(void)
{
	struct side c, s;
	struct h2t_stream *cs;

	pair(&c, &s);
	s.answer = 200;
	s.read_all = true;
	cs = h2t_connect(c.h, "10.244.2.3:8080", NULL, 0, NULL);
	pump(&c, &s);
	h2t_goaway(s.h); /* the server drains */
	pump(&c, &s);
	CHECK(!h2t_can_open(c.h), "no new stream after the peer's GOAWAY");
	h2t_write(cs, "still here", 10);
	pump(&c, &s);
	CHECK_EQ(s.got, 10, "the open stream goes on");
	unpair(&c, &s);
}

/* A draining agent (docs/upgrades.md): the notice stops new streams at once, a stream already
 * on its way is still served, the final GOAWAY ends it. */
static void test_shutdown_notice(void)
{
	struct side c, s;
	struct h2t_stream *a, *b;

	pair(&c, &s);
	s.answer = 200;
	s.read_all = true;
	a = h2t_connect(c.h, "10.244.2.3:8080", NULL, 0, NULL);
	pump(&c, &s);
	CHECK_EQ(c.nresp, 1, "the first stream answered");
	b = h2t_connect(c.h, "10.244.2.3:8080", NULL, 0, NULL); /* crosses the notice */
	h2t_shutdown_notice(s.h);
	pump(&c, &s);
	CHECK(b != NULL, "the second stream was opened");
	CHECK_EQ(s.nreq, 2, "a stream on its way when the notice left is served");
	CHECK_EQ(c.nresp, 2, "... and answered");
	CHECK(!h2t_can_open(c.h), "no new stream after the notice");
	h2t_goaway(s.h);
	pump(&c, &s);
	h2t_write(a, "still here", 10);
	pump(&c, &s);
	CHECK_EQ(s.got, 10, "open streams go on after the final GOAWAY");
	CHECK(!h2t_done(s.h), "not done while streams are open");
	unpair(&c, &s);
}

static void test_ping(void)
{
	struct side c, s;

	pair(&c, &s);
	CHECK(!h2t_ping_acked(s.h), "no PING yet: nothing acked");
	h2t_ping(s.h);
	CHECK(!h2t_ping_acked(s.h), "sent, not answered");
	pump(&c, &s);
	CHECK(h2t_ping_acked(s.h), "the peer's ACK came");
	h2t_ping(s.h);
	CHECK(!h2t_ping_acked(s.h), "a new PING waits for its own ACK");
	unpair(&c, &s);
}

/* The headers our outbound side sends, as ztunnel formats them. */
static void test_ztunnel_headers(void)
{
	unsigned char zero[24] = {0}, rnd[24];
	char out[256];

	hbone_forwarded_value("10.244.1.4", out, sizeof(out));
	CHECK_STR(out, "for=10.244.1.4", "Forwarded for an IPv4 client");
	hbone_forwarded_value("fd00:244:1::4", out, sizeof(out));
	CHECK_STR(out, "for=\"[fd00:244:1::4]\"", "IPv6: quoted, in brackets (RFC 7239)");
	hbone_forwarded_for(out, strlen(out), out + 100, 100);
	CHECK_STR(out + 100, "fd00:244:1::4", "... and our parser reads it back");
	hbone_baggage("Kubernetes", "zt", "deployment", "sleep", "sleep", "latest", out,
		      sizeof(out));
	CHECK_STR(out,
		  "k8s.cluster.name=Kubernetes,k8s.namespace.name=zt,k8s.deployment.name=sleep,"
		  "service.name=sleep,service.version=latest",
		  "baggage");
	for (int i = 0; i < 24; i++)
		rnd[i] = (unsigned char)(0xa0 + i);
	hbone_traceparent(rnd, out, sizeof(out));
	CHECK_STR(out, "00-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-b0b1b2b3b4b5b6b7-00", "traceparent");
	hbone_traceparent(zero, out, sizeof(out));
	CHECK_STR(out, "00-00000000000000000000000000000001-0000000000000001-00",
		  "an all-zero trace or span id is invalid (W3C): never sent");
}

int main(void)
{
	RUN(test_ztunnel_headers);
	RUN(test_connect_head);
	RUN(test_data_both_ways_half_close);
	RUN(test_flow_control);
	RUN(test_stream_limit_and_refusal);
	RUN(test_resets);
	RUN(test_bytes_after_close);
	RUN(test_goaway);
	RUN(test_shutdown_notice);
	RUN(test_ping);
	return CHECK_DONE("h2tun");
}
