// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7h2.c: HTTP/2 cleartext on both sides of the HTTP path, with nghttp2 (libnghttp2).
 *
 * Downstream, a client that opens with the HTTP/2 preface (prior knowledge; l7.c sniffs it,
 * and l7h1.c hands over an `Upgrade: h2c` request as stream 1) gets a server session: every
 * stream is one request of the engine (l7req.c), its response framed as DATA with trailers
 * when the upstream sent some (gRPC). Upstream, ports Istio reads as http2 or grpc (and
 * h2UpgradePolicy UPGRADE) get client sessions, shared by the requests of one pool key.
 *
 * Re-entrancy: nghttp2 calls us from inside nghttp2_session_mem_recv/mem_send; what the
 * engine does from there may call back into this file (a response for a stream that goes out
 * at once). Those calls only queue (submit, resume) and mark the session for a flush, which
 * runs once the outer call returned. Streams are freed after the event batch (l7_dead).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <nghttp2/nghttp2.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include "l7int.h"
#include "log.h"

#define H2_MAX_STREAMS 1024 /* SETTINGS_MAX_CONCURRENT_STREAMS we announce */
#define H2_UP_STREAMS  100  /* streams we open on one upstream connection */

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

bool l7h2_preface(const char *p, size_t n)
{
	return n <= sizeof(preface) - 1 && !memcmp(p, preface, n);
}

/* Headers HTTP/2 forbids (RFC 9113 8.2.2), dropped when a message changes protocol. */
static bool conn_specific(const char *n, const char *v)
{
	if (!strcmp(n, "te"))
		return strcasecmp(v, "trailers") != 0;
	return !strcmp(n, "connection") || !strcmp(n, "keep-alive") ||
	       !strcmp(n, "proxy-connection") || !strcmp(n, "transfer-encoding") ||
	       !strcmp(n, "upgrade") || !strcmp(n, "host") || !strcmp(n, "http2-settings");
}

static nghttp2_nv nv(const char *n, const char *v)
{
	return (nghttp2_nv){.name = (uint8_t *)n,
			    .value = (uint8_t *)v,
			    .namelen = strlen(n),
			    .valuelen = strlen(v),
			    .flags = NGHTTP2_NV_FLAG_NONE};
}

/* nva for h's regular headers after the pseudo ones already in v[0..*n) */
static nghttp2_nv *nva_of(const struct l7_hdrs *h, nghttp2_nv *pre, int npre, int *n)
{
	nghttp2_nv *v = calloc(h->n + npre + 1, sizeof(*v));

	*n = 0;
	if (!v)
		return NULL;
	for (int i = 0; i < npre; i++)
		v[(*n)++] = pre[i];
	for (int i = 0; i < h->n; i++) {
		const char *name = h->v[i].name;

		if (name[0] == ':' || conn_specific(name, h->v[i].value))
			continue;
		v[(*n)++] = nv(name, h->v[i].value);
	}
	return v;
}

/* ======================= downstream: the server session ======================= */

struct h2d;

struct h2s {
	struct l7_dead dead;
	struct l7_req r;
	struct h2d *d;
	int32_t id;
	struct l7_buf out; /* response body not yet framed */
	struct l7_hdrs trailers;
	bool has_trailers;
	bool head_sent, out_end, engine_done, closed, started, freed, drain;
	size_t hbytes; /* request header bytes as HPACK counts them (name + value + 32) */
	struct h2s *next;
};

struct h2d {
	struct l7_dead dead;
	struct l7_dconn dc;
	nghttp2_session *s;
	struct l7_buf out;
	struct l7_timer idle;
	struct h2s *streams;
	int nstreams;
	int refs; /* the connection and each stream not yet freed: d outlives its requests */
	int busy; /* inside nghttp2: flush later */
	bool closed, want_flush;
};

static void d_unref(struct h2d *d);

static void d_flush(struct h2d *d);
static void d_close(struct h2d *d);

static struct h2d *d_of(nghttp2_session *s, void *ud)
{
	(void)s;
	return ud;
}

static void s_free_mem(struct l7_dead *dd)
{
	struct h2s *q = (struct h2s *)((char *)dd - offsetof(struct h2s, dead));
	struct h2d *d = q->d;

	l7_req_free(&q->r);
	lb_free(&q->out);
	l7h_free(&q->trailers);
	free(q);
	d_unref(d);
}

/* q leaves its connection once the engine and the stream are both done with it */
static void s_maybe_free(struct h2s *q)
{
	struct h2d *d = q->d;

	if (q->freed || !q->engine_done || !q->closed)
		return;
	q->freed = true;
	for (struct h2s **pp = &d->streams; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	d->nstreams--;
	if (!d->nstreams && !d->closed)
		l7_timer_set(d->dc.w, &d->idle, d->dc.w->now + L7_IDLE_MS);
	l7_defer_free(d->dc.w, &q->dead);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2d *d = d_of(s, ud);
	struct h2s *q;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	q->d = d;
	d->refs++;
	q->id = f->hd.stream_id;
	q->dead.free = s_free_mem;
	l7_req_init(&q->r, &d->dc, q);
	q->r.content_length = -1;
	q->next = d->streams;
	d->streams = q;
	d->nstreams++;
	l7_timer_stop(d->dc.w, &d->idle);
	nghttp2_session_set_stream_user_data(s, q->id, q);
	return 0;
}

static char *dupn(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2s *q = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	struct l7_req *r;

	(void)flags;
	(void)ud;
	if (!q || q->started || f->hd.type != NGHTTP2_HEADERS)
		return 0; /* request trailers: not passed on */
	r = &q->r;
	if (q->hbytes + namelen + valuelen + 32 > L7_MAX_HEADER_BYTES)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* HPACK references add up: bounded */
	if (namelen && name[0] == ':') {
		char **slot = NULL;

		if (namelen == 7 && !memcmp(name, ":method", 7))
			slot = &r->method;
		else if (namelen == 5 && !memcmp(name, ":path", 5))
			slot = &r->path;
		else if (namelen == 10 && !memcmp(name, ":authority", 10))
			slot = &r->authority;
		else if (namelen == 7 && !memcmp(name, ":scheme", 7))
			slot = &r->scheme;
		if (slot && !*slot)
			*slot = dupn(value, valuelen);
		return 0;
	}
	q->hbytes += namelen + valuelen + 32;
	if (r->h.n >= L7_MAX_HEADERS || q->hbytes > L7_MAX_HEADER_BYTES)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
	l7h_addn(&r->h, (const char *)name, namelen, (const char *)value, valuelen);
	return 0;
}

static void s_start(struct h2d *d, struct h2s *q, bool end)
{
	struct l7_req *r = &q->r;
	const char *cl, *host;

	q->started = true;
	if (!r->method || !r->path || !strcmp(r->method, "CONNECT")) {
		nghttp2_submit_rst_stream(d->s, NGHTTP2_FLAG_NONE, q->id, NGHTTP2_PROTOCOL_ERROR);
		q->engine_done = true;
		return;
	}
	host = l7h_get(&r->h, "host");
	if (!r->authority)
		r->authority = strdup(host ? host : "");
	l7h_del(&r->h, "host");
	if (!r->scheme)
		r->scheme = strdup("http");
	cl = l7h_get(&r->h, "content-length");
	if (cl)
		r->content_length = strtoll(cl, NULL, 10);
	r->has_body = !end;
	if (end)
		r->body_done = true;
	l7_req_start(r);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2d *d = d_of(s, ud);
	struct h2s *q = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;

	if (!q)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && !q->started) {
		s_start(d, q, end);
		return 0;
	}
	if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end && q->started &&
	    !q->r.body_done && !q->engine_done)
		l7_req_body(&q->r, NULL, 0, true);
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *ud)
{
	struct h2s *q = nghttp2_session_get_stream_user_data(s, id);

	(void)flags;
	(void)ud;
	if (q && q->started && !q->engine_done)
		l7_req_body(&q->r, (const char *)data, len, false);
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
	struct h2s *q = nghttp2_session_get_stream_user_data(s, id);

	(void)err;
	(void)ud;
	if (!q)
		return 0;
	nghttp2_session_set_stream_user_data(s, id, NULL);
	q->closed = true;
	if (!q->engine_done) {
		if (q->started)
			l7_req_abort(&q->r); /* the client reset it: DC */
		q->engine_done = true;
	}
	s_maybe_free(q);
	return 0;
}

static ssize_t s_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		      nghttp2_data_source *src, void *ud)
{
	struct h2s *q = src->ptr;
	size_t n = lb_pending(&q->out);

	(void)ud;
	if (n > len)
		n = len;
	if (n) {
		memcpy(buf, q->out.p + q->out.off, n);
		lb_consume(&q->out, n);
	}
	if (!lb_pending(&q->out) && q->out_end) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (q->has_trailers) {
			int nt;
			nghttp2_nv *t = nva_of(&q->trailers, NULL, 0, &nt);

			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			nghttp2_submit_trailer(s, id, t, nt);
			free(t);
		}
	} else if (!n) {
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n && q->r.st == RQ_RESPONDING && lb_pending(&q->out) < L7_BUF_HIGH)
		q->drain = true; /* l7_req_drained after the send loop */
	return (ssize_t)n;
}

/* ---- the codec the engine sees ---- */

static struct h2s *q_of(struct l7_req *r)
{
	return r->cs;
}

static void c_head(struct l7_req *r, int status, const struct l7_hdrs *h, bool end)
{
	struct h2s *q = q_of(r);
	struct h2d *d = q->d;
	char st[8];
	nghttp2_nv pre[1];
	nghttp2_nv *v;
	int n;
	nghttp2_data_provider prd = {.source.ptr = q, .read_callback = s_read};

	if (d->closed || q->closed)
		return;
	snprintf(st, sizeof(st), "%d", status);
	pre[0] = nv(":status", st);
	v = nva_of(h, pre, 1, &n);
	if (!v)
		return;
	q->head_sent = true;
	if (end || r->head)
		q->out_end = true;
	nghttp2_submit_response(d->s, q->id, v, n, end ? NULL : &prd);
	free(v);
	d_flush(d);
}

static void c_data(struct l7_req *r, const char *p, size_t n, bool end)
{
	struct h2s *q = q_of(r);
	struct h2d *d = q->d;

	if (d->closed || q->closed)
		return;
	if (n && !r->head)
		lb_put(&q->out, p, n);
	if (end)
		q->out_end = true;
	nghttp2_session_resume_data(d->s, q->id);
	d_flush(d);
}

static void c_trailers(struct l7_req *r, const struct l7_hdrs *h)
{
	struct h2s *q = q_of(r);
	struct h2d *d = q->d;

	if (d->closed || q->closed)
		return;
	for (int i = 0; i < h->n; i++)
		l7h_add(&q->trailers, h->v[i].name, h->v[i].value);
	q->has_trailers = true;
	q->out_end = true;
	nghttp2_session_resume_data(d->s, q->id);
	d_flush(d);
}

static void c_reset(struct l7_req *r)
{
	struct h2s *q = q_of(r);
	struct h2d *d = q->d;

	if (d->closed || q->closed)
		return;
	nghttp2_submit_rst_stream(d->s, NGHTTP2_FLAG_NONE, q->id, NGHTTP2_INTERNAL_ERROR);
	d_flush(d);
}

static void c_done(struct l7_req *r)
{
	struct h2s *q = q_of(r);
	struct h2d *d = q->d;

	q->engine_done = true;
	if (!d->closed && !q->closed && !q->out_end) {
		/* ended without a complete response: a reset, never a truncated success */
		nghttp2_submit_rst_stream(d->s, NGHTTP2_FLAG_NONE, q->id, NGHTTP2_INTERNAL_ERROR);
		d_flush(d);
	}
	/* answered before the request was all in: the rest is read and dropped (a reset, even
	 * NO_ERROR, makes gRPC clients fail the call they were answered) */
	s_maybe_free(q);
}

static size_t c_queued(struct l7_req *r)
{
	return lb_pending(&q_of(r)->out);
}

static void c_nop(struct l7_req *r)
{
	(void)r;
}

static const struct l7_dcodec h2_dcodec = {
    .head = c_head,
    .data = c_data,
    .trailers = c_trailers,
    .reset = c_reset,
    .done = c_done,
    .queued = c_queued,
    .more_body = c_nop, /* request bodies: nghttp2's flow control windows */
    .continue100 = c_nop,
};

/* ---- the connection ---- */

static void d_want(struct h2d *d)
{
	uint32_t m = EPOLLRDHUP;

	if (d->closed)
		return;
	if (nghttp2_session_want_read(d->s))
		m |= EPOLLIN;
	if (lb_pending(&d->out))
		m |= EPOLLOUT;
	l7_io_want(d->dc.w, &d->dc.io, m);
}

static void d_flush(struct h2d *d)
{
	if (d->closed)
		return;
	if (d->busy) {
		d->want_flush = true;
		return;
	}
	do {
		d->want_flush = false;
		d->busy++;
		while (lb_pending(&d->out) < 4 * L7_BUF_HIGH) {
			const uint8_t *p;
			ssize_t n = nghttp2_session_mem_send(d->s, &p);

			if (n < 0) {
				d->busy--;
				d_close(d);
				return;
			}
			if (!n)
				break;
			lb_put(&d->out, p, n);
		}
		d->busy--;
		if (lb_flush(&d->out, d->dc.io.fd)) {
			d_close(d);
			return;
		}
		/* streams whose response buffer drained: their upstreams may go on */
		for (struct h2s *q = d->streams; q; q = q->next)
			if (q->drain && !q->engine_done) {
				q->drain = false;
				l7_req_drained(&q->r);
			}
	} while (d->want_flush && !d->closed);
	if (d->closed)
		return;
	if (!nghttp2_session_want_read(d->s) && !nghttp2_session_want_write(d->s) &&
	    !lb_pending(&d->out)) {
		d_close(d);
		return;
	}
	d_want(d);
}

static void d_unref(struct h2d *d)
{
	if (--d->refs)
		return;
	nghttp2_session_del(d->s);
	lb_free(&d->out);
	free(d);
}

static void d_free_mem(struct l7_dead *dd)
{
	d_unref((struct h2d *)((char *)dd - offsetof(struct h2d, dead)));
}

static void d_close(struct h2d *d)
{
	struct l7w *w = d->dc.w;

	if (d->closed)
		return;
	d->closed = true;
	l7_dconn_unlink(&d->dc);
	for (struct h2s *q = d->streams, *next; q; q = next) {
		next = q->next;
		q->closed = true;
		if (!q->engine_done && q->started)
			l7_req_abort(&q->r); /* its c_done may free it (s_maybe_free) */
		q->engine_done = true;
		if (!q->freed) {
			q->freed = true;
			d->nstreams--;
			l7_defer_free(w, &q->dead);
		}
	}
	d->streams = NULL;
	l7_timer_stop(w, &d->idle);
	l7_io_close(w, &d->dc.io);
	__atomic_sub_fetch(&w->c_active, 1, __ATOMIC_RELAXED);
	l7_defer_free(w, &d->dead);
}

static void d_feed(struct h2d *d, const uint8_t *p, size_t n)
{
	ssize_t rc;

	d->busy++;
	rc = nghttp2_session_mem_recv(d->s, p, n);
	d->busy--;
	if (rc < 0) {
		pr_debug("l7: h2: %s", nghttp2_strerror((int)rc));
		d_flush(d); /* the GOAWAY nghttp2 queued */
		d_close(d);
	}
}

static void d_io(struct l7_io *io, uint32_t ev)
{
	struct h2d *d = (struct h2d *)((char *)io - offsetof(struct h2d, dc.io));
	uint8_t b[L7_READ_CHUNK];

	if (ev & EPOLLERR) {
		d_close(d);
		return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
		for (int i = 0; i < 16 && !d->closed; i++) {
			ssize_t n = recv(io->fd, b, sizeof(b), MSG_DONTWAIT);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0) {
				d_close(d);
				return;
			}
			d_feed(d, b, (size_t)n);
		}
	}
	if (!d->closed)
		d_flush(d);
}

/* An upgrade: GOAWAY (no error, the last stream it has seen), so the client opens its next
 * streams on a new connection (the next agent's); the connection closes once the streams it
 * has are done (nghttp2 then wants neither read nor write). */
static void d_drain(struct l7_dconn *dc)
{
	struct h2d *d = (struct h2d *)((char *)dc - offsetof(struct h2d, dc));

	if (d->closed)
		return;
	nghttp2_submit_goaway(d->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(d->s),
			      NGHTTP2_NO_ERROR, NULL, 0);
	d_flush(d);
}

/* A connection that became HTTP/2 after the worker started draining (it was still being
 * sniffed, or an h2c upgrade): told at once, as the others were. */
static void d_drain_late(struct h2d *d)
{
	if (!d->closed && d->dc.w->draining && d->dc.role == L7_SOURCE)
		d_drain(&d->dc);
}

static void d_idle_fire(struct l7_timer *t)
{
	struct h2d *d = (struct h2d *)((char *)t - offsetof(struct h2d, idle));

	if (d->nstreams)
		return;
	nghttp2_session_terminate_session(d->s, NGHTTP2_NO_ERROR);
	d_flush(d);
	d_close(d);
}

static nghttp2_session_callbacks *server_callbacks(void)
{
	static __thread nghttp2_session_callbacks *cb;

	if (!cb && !nghttp2_session_callbacks_new(&cb)) {
		nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
		nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	}
	return cb;
}

/*
 * A downstream HTTP/2 connection. pre: bytes read already (the preface and what followed).
 * upgraded: an HTTP/1.1 `Upgrade: h2c` whose request (upgrade_req, its headers and complete
 * body) becomes stream 1; settings: the client's HTTP2-Settings (base64url), NULL if none.
 */
static struct h2d *server_new(struct l7_dconn *tmpl)
{
	struct h2d *d = calloc(1, sizeof(*d));
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, L7_MAX_HEADER_BYTES},
	};
	nghttp2_session_callbacks *cb = server_callbacks();

	if (!d || !cb || nghttp2_session_server_new(&d->s, cb, d)) {
		free(d);
		close(tmpl->io.fd);
		__atomic_sub_fetch(&tmpl->w->c_active, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	d->dead.free = d_free_mem;
	d->refs = 1;
	d->dc = *tmpl;
	d->dc.proto = L7_H2;
	d->dc.codec = &h2_dcodec;
	d->dc.io.on = d_io;
	d->dc.io.mask = 0;
	d->dc.linked = false; /* (an h2c upgrade's template is the HTTP/1.1 connection's) */
	d->dc.dprev = d->dc.dnext = NULL;
	d->dc.drain = d_drain;
	l7_dconn_link(&d->dc);
	d->idle = (struct l7_timer){.idx = -1, .fire = d_idle_fire};
	nghttp2_submit_settings(d->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
	l7_timer_set(d->dc.w, &d->idle, d->dc.w->now + L7_IDLE_MS);
	return d;
}

void l7h2_server(struct l7_dconn *tmpl, const char *pre, size_t n, bool upgraded,
		 struct l7_req *upgrade_req)
{
	struct h2d *d = server_new(tmpl);

	(void)upgraded;
	(void)upgrade_req;
	if (!d)
		return;
	d_feed(d, (const uint8_t *)pre, n);
	if (!d->closed)
		d_flush(d);
	d_drain_late(d);
}

/*
 * `Upgrade: h2c` (RFC 7540 3.2): the HTTP/1.1 request r (headers parsed, body complete in
 * r->body) is stream 1, half-closed from the client; the 101 is already in the client's
 * output (to_client). Returns the request as the new session's, or NULL (fd closed).
 */
struct l7_req *l7h2_server_upgrade(struct l7_dconn *tmpl, const char *settings64,
				   struct l7_buf *to_client)
{
	struct h2d *d = server_new(tmpl);
	uint8_t sbin[256];
	size_t sl = 0;
	struct h2s *q;

	if (!d)
		return NULL;
	if (lb_pending(to_client))
		lb_put(&d->out, to_client->p + to_client->off, lb_pending(to_client));
	/* base64url without padding, as HTTP2-Settings carries it */
	for (const char *p = settings64 ? settings64 : ""; *p && sl < sizeof(sbin);) {
		static const char a[] =
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		uint32_t acc = 0;
		int k = 0;

		for (; k < 4 && p[k] && strchr(a, p[k]); k++)
			acc |= (uint32_t)(strchr(a, p[k]) - a) << (18 - 6 * k);
		if (k < 2)
			break;
		sbin[sl++] = acc >> 16;
		if (k > 2 && sl < sizeof(sbin))
			sbin[sl++] = (acc >> 8) & 0xff;
		if (k > 3 && sl < sizeof(sbin))
			sbin[sl++] = acc & 0xff;
		p += k;
		if (k < 4)
			break;
	}
	q = calloc(1, sizeof(*q));
	if (!q || nghttp2_session_upgrade2(d->s, sbin, sl, 0, q)) {
		free(q);
		d_close(d);
		return NULL;
	}
	q->d = d;
	d->refs++;
	q->id = 1;
	q->dead.free = s_free_mem;
	q->started = true;
	q->next = d->streams;
	d->streams = q;
	d->nstreams++;
	l7_timer_stop(d->dc.w, &d->idle);
	l7_req_init(&q->r, &d->dc, q);
	return &q->r;
}

void l7h2_upgrade_go(struct l7_req *r, const char *rest, size_t n)
{
	struct h2s *q = q_of(r);
	struct h2d *d = q->d;

	l7_req_start(r);
	if (!d->closed && n)
		d_feed(d, (const uint8_t *)rest, n);
	if (!d->closed)
		d_flush(d);
	d_drain_late(d);
}

/* ======================= upstream: client sessions ======================= */

struct h2us {
	struct l7_dead dead;
	struct l7_req *r;
	struct l7_uconn *u;
	int32_t id; /* 0 until submitted */
	struct l7_hdrs rh;
	int status;
	bool head_done, more;
	struct h2us *next;
};

struct h2u {
	nghttp2_session *s;
	struct l7_buf out;
	struct h2us *streams; /* submitted or waiting for the connection */
	int nstreams;
	int busy;
	bool want_flush, goaway;
};

static void u_flush(struct l7_uconn *u);
static void u_lost(struct l7_uconn *u);

static struct h2u *hx(struct l7_uconn *u)
{
	return u->cx;
}

static void us_free_mem(struct l7_dead *dd)
{
	struct h2us *us = (struct h2us *)((char *)dd - offsetof(struct h2us, dead));

	l7h_free(&us->rh);
	free(us);
}

/* us lets go of its request (which may start a new try elsewhere) */
static struct l7_req *us_detach(struct h2us *us)
{
	struct l7_req *r = us->r;

	if (r) {
		r->u = NULL;
		r->us = NULL;
	}
	us->r = NULL;
	return r;
}

static void us_drop(struct l7_uconn *u, struct h2us *us)
{
	struct h2u *x = hx(u);

	for (struct h2us **pp = &x->streams; *pp; pp = &(*pp)->next)
		if (*pp == us) {
			*pp = us->next;
			x->nstreams--;
			break;
		}
	if (us->id && x->s)
		nghttp2_session_set_stream_user_data(x->s, us->id, NULL);
	l7_defer_free(u->w, &us->dead);
	if (!x->nstreams && !u->dead_flag && u->connected)
		l7_timer_set(u->w, &u->t, u->w->now + u->idle_ms); /* idleTimeout */
}

static ssize_t us_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
		       nghttp2_data_source *src, void *ud)
{
	struct h2us *us = src->ptr;
	struct l7_req *r = us->r;
	size_t avail, n;

	(void)s, (void)id, (void)ud;
	if (!r) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	avail = lb_pending(&r->body) - r->body_sent;
	n = avail < len ? avail : len;
	if (n)
		memcpy(buf, r->body.p + r->body.off + r->body_sent, n);
	r->body_sent += n;
	if (n == avail && r->body_done)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	else if (!n)
		return NGHTTP2_ERR_DEFERRED;
	/* a body too big to replay: what is sent goes (no retries from here) */
	if (lb_pending(&r->body) > L7_RETRY_BUFFER && r->body_sent) {
		lb_consume(&r->body, r->body_sent);
		r->body_sent = 0;
		r->body_trimmed = true;
	}
	us->more = true; /* more_body after the send loop */
	return (ssize_t)n;
}

static int us_submit(struct l7_uconn *u, struct h2us *us)
{
	struct h2u *x = hx(u);
	struct l7_req *r = us->r;
	nghttp2_nv pre[4];
	nghttp2_nv *v;
	int n;
	char cl[24];
	nghttp2_data_provider prd = {.source.ptr = us, .read_callback = us_read};

	pre[0] = nv(":method", r->method);
	pre[1] = nv(":scheme", "http");
	pre[2] = nv(":authority", r->authority ? r->authority : "");
	pre[3] = nv(":path", r->path);
	v = nva_of(&r->h, pre, 4, &n);
	if (!v)
		return -1;
	if (r->content_length > 0 && !l7h_get(&r->h, "content-length")) {
		nghttp2_nv *v2 = realloc(v, (n + 1) * sizeof(*v));

		if (v2) {
			v = v2;
			snprintf(cl, sizeof(cl), "%lld", (long long)r->content_length);
			v[n++] = nv("content-length", cl);
		}
	}
	us->id = nghttp2_submit_request(x->s, NULL, v, n, r->has_body ? &prd : NULL, us);
	free(v);
	return us->id < 0 ? -1 : 0;
}

static int uc_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
			size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
			void *ud)
{
	struct h2us *us = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	(void)flags, (void)ud;
	if (!us || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (namelen == 7 && !memcmp(name, ":status", 7)) {
		us->status = atoi((const char *)value);
		return 0;
	}
	if (namelen && name[0] == ':')
		return 0;
	l7h_addn(&us->rh, (const char *)name, namelen, (const char *)value, valuelen);
	return 0;
}

static int uc_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct l7_uconn *u = ud;
	struct h2us *us = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
	struct l7_req *r;

	if (f->hd.type == NGHTTP2_GOAWAY) {
		hx(u)->goaway = true;
		return 0;
	}
	if (!us || !us->r)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && !us->head_done) {
		if (us->status >= 100 && us->status < 200) {
			l7h_free(&us->rh); /* 100 Continue: the real head follows */
			us->status = 0;
			return 0;
		}
		us->head_done = true;
		r = us->r;
		if (end)
			us_detach(us);
		if (!l7_req_resp_head(r, us->status, &us->rh, end) && !end) {
			/* a retry or nobody waiting: this stream's answer is not wanted */
			us_detach(us);
			nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, us->id, NGHTTP2_CANCEL);
		}
		l7h_free(&us->rh);
		return 0;
	}
	if (f->hd.type == NGHTTP2_HEADERS) {
		/* trailers */
		r = us_detach(us);
		l7_req_resp_trailers(r, &us->rh);
		l7h_free(&us->rh);
		return 0;
	}
	if (f->hd.type == NGHTTP2_DATA && end) {
		r = us_detach(us);
		l7_req_resp_data(r, NULL, 0, true);
	}
	return 0;
}

static int uc_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
		      size_t len, void *ud)
{
	struct h2us *us = nghttp2_session_get_stream_user_data(s, id);

	(void)flags, (void)ud;
	if (us && us->r && us->head_done)
		l7_req_resp_data(us->r, (const char *)data, len, false);
	return 0;
}

static int uc_on_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
	struct l7_uconn *u = ud;
	struct h2us *us = nghttp2_session_get_stream_user_data(s, id);
	struct l7_req *r;

	if (!us)
		return 0;
	r = us_detach(us);
	us_drop(u, us);
	if (!r)
		return 0;
	if (!us->head_done)
		l7_req_try_failed(r, err == NGHTTP2_REFUSED_STREAM ? TRY_REFUSED : TRY_RESET);
	else
		l7_req_resp_reset(r);
	return 0;
}

static nghttp2_session_callbacks *client_callbacks(void)
{
	static __thread nghttp2_session_callbacks *cb;

	if (!cb && !nghttp2_session_callbacks_new(&cb)) {
		nghttp2_session_callbacks_set_on_header_callback(cb, uc_on_header);
		nghttp2_session_callbacks_set_on_frame_recv_callback(cb, uc_on_frame_recv);
		nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, uc_on_data);
		nghttp2_session_callbacks_set_on_stream_close_callback(cb, uc_on_close);
	}
	return cb;
}

static struct h2u *ensure(struct l7_uconn *u)
{
	struct h2u *x = u->cx;

	if (!x) {
		x = calloc(1, sizeof(*x));
		if (!x)
			abort();
		u->cx = x;
	}
	return x;
}

static void u_want(struct l7_uconn *u)
{
	struct h2u *x = hx(u);
	uint32_t m = EPOLLRDHUP | EPOLLIN;

	if (u->dead_flag || !u->connected)
		return;
	if (lb_pending(&x->out))
		m |= EPOLLOUT;
	l7_io_want(u->w, &u->io, m);
}

static void u_flush(struct l7_uconn *u)
{
	struct h2u *x = hx(u);

	if (u->dead_flag || !x->s || !u->connected)
		return;
	if (x->busy) {
		x->want_flush = true;
		return;
	}
	do {
		x->want_flush = false;
		x->busy++;
		while (lb_pending(&x->out) < 4 * L7_BUF_HIGH) {
			const uint8_t *p;
			ssize_t n = nghttp2_session_mem_send(x->s, &p);

			if (n < 0) {
				x->busy--;
				u_lost(u);
				return;
			}
			if (!n)
				break;
			lb_put(&x->out, p, n);
		}
		x->busy--;
		if (lb_flush(&x->out, u->io.fd)) {
			u_lost(u);
			return;
		}
		for (struct h2us *us = x->streams; us; us = us->next)
			if (us->more && us->r) {
				us->more = false;
				if (!us->r->body_done && l7_req_body_queued(us->r) < L7_BUF_HIGH)
					us->r->dc->codec->more_body(us->r);
			}
	} while (x->want_flush && !u->dead_flag);
	if (!u->dead_flag)
		u_want(u);
}

/* The connection broke: every stream on it fails (before its head: to the retry policy). */
static void u_lost(struct l7_uconn *u)
{
	struct h2u *x = hx(u);

	if (u->dead_flag)
		return;
	l7_uconn_close(u);
	while (x->streams) {
		struct h2us *us = x->streams;
		bool head = us->head_done, sent = us->id > 0;
		struct l7_req *r = us_detach(us);

		us_drop(u, us);
		if (!r)
			continue;
		if (head)
			l7_req_resp_reset(r);
		else
			l7_req_try_failed(r, sent ? TRY_RESET : TRY_CONNECT_FAIL);
	}
}

static void u_io(struct l7_io *io, uint32_t ev)
{
	struct l7_uconn *u = (struct l7_uconn *)((char *)io - offsetof(struct l7_uconn, io));
	struct h2u *x = hx(u);
	uint8_t b[L7_READ_CHUNK];

	if (ev & EPOLLERR) {
		u_lost(u);
		return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
		for (int i = 0; i < 16 && !u->dead_flag; i++) {
			ssize_t n = recv(io->fd, b, sizeof(b), MSG_DONTWAIT), rc;

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0) {
				u_lost(u);
				return;
			}
			x->busy++;
			rc = nghttp2_session_mem_recv(x->s, b, (size_t)n);
			x->busy--;
			if (rc < 0) {
				u_lost(u);
				return;
			}
		}
	}
	if (!u->dead_flag)
		u_flush(u);
	if (!u->dead_flag && !nghttp2_session_want_read(x->s) && !nghttp2_session_want_write(x->s))
		u_lost(u);
}

/* The socket is connected: the session, then every request that waited for it. */
static void u_go(struct l7_uconn *u)
{
	struct h2u *x = ensure(u);
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};

	if (!x->s) {
		if (nghttp2_session_client_new(&x->s, client_callbacks(), u)) {
			u_lost(u);
			return;
		}
		nghttp2_submit_settings(x->s, NGHTTP2_FLAG_NONE, iv, 1);
	}
	u->io.on = u_io;
	for (struct h2us *us = x->streams; us; us = us->next)
		if (!us->id && us->r && us_submit(u, us)) {
			struct l7_req *r = us_detach(us);

			us_drop(u, us);
			l7_req_try_failed(r, TRY_REFUSED);
			break; /* the list changed */
		}
	u_flush(u);
}

int l7h2_start(struct l7_req *r, struct l7_uconn *u)
{
	struct h2u *x = ensure(u);
	struct h2us *us = calloc(1, sizeof(*us));

	if (!us)
		return -1;
	us->dead.free = us_free_mem;
	us->r = r;
	us->u = u;
	r->us = us;
	r->u = u;
	us->next = x->streams;
	x->streams = us;
	x->nstreams++;
	l7_timer_stop(u->w, &u->t);
	if (!u->connected)
		return 0; /* l7h2_uconn_ready submits it */
	if (!x->s) {
		u_go(u);
		return 0;
	}
	if (us_submit(u, us)) {
		us_detach(us);
		us_drop(u, us);
		return -1;
	}
	u_flush(u);
	return 0;
}

void l7h2_body(struct l7_req *r)
{
	struct h2us *us = r->us;
	struct l7_uconn *u = r->u;

	if (!us || !u || !us->id || !hx(u)->s)
		return;
	nghttp2_session_resume_data(hx(u)->s, us->id);
	u_flush(u);
}

void l7h2_abandon(struct l7_req *r, struct l7_uconn *u)
{
	struct h2us *us = r->us;
	struct h2u *x = hx(u);

	r->us = NULL;
	if (!us)
		return;
	us->r = NULL;
	if (us->id > 0 && x->s && !u->dead_flag) {
		nghttp2_submit_rst_stream(x->s, NGHTTP2_FLAG_NONE, us->id, NGHTTP2_CANCEL);
		u_flush(u);
	} else {
		us_drop(u, us);
	}
}

void l7h2_resume(struct l7_req *r)
{
	(void)r; /* response bodies: nghttp2's flow control windows */
}

void l7h2_uconn_ready(struct l7_uconn *u)
{
	u_go(u);
}

void l7h2_uconn_free(struct l7_uconn *u)
{
	struct h2u *x = u->cx;

	if (!x)
		return;
	while (x->streams) {
		struct h2us *us = x->streams;

		x->streams = us->next;
		us_detach(us);
		l7h_free(&us->rh);
		free(us);
	}
	nghttp2_session_del(x->s);
	lb_free(&x->out);
	free(x);
	u->cx = NULL;
}

void l7h2_uconn_failed(struct l7_uconn *u)
{
	ensure(u);
	u_lost(u);
}

bool l7h2_uconn_busy(struct l7_uconn *u)
{
	struct h2u *x = u->cx;

	return x && x->nstreams > 0;
}

bool l7h2_uconn_can_take(struct l7_uconn *u)
{
	struct h2u *x = u->cx;

	return !u->dead_flag && (!x || (!x->goaway && x->nstreams < H2_UP_STREAMS));
}
