// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7h1.c: HTTP/1.1 on both sides of the HTTP path, with Debian's http-parser (Node's parser):
 *  - downstream: keep-alive and pipelining (one request at a time; the next waits in the
 *    input, unparsed, until this one's response is out), chunked and fixed bodies streamed,
 *    `Expect: 100-continue` answered here (Envoy's default), `Upgrade: websocket` relayed
 *    raw after the upstream's 101, 400 and a closed connection for malformed requests, 431
 *    for headers over L7_MAX_HEADER_BYTES or L7_MAX_HEADERS;
 *  - upstream: one request per connection at a time, re-framed (content-length kept,
 *    chunked otherwise), the response streamed back and re-framed for the client
 *    (chunked to HTTP/1.1 clients when the upstream's length is unknown, close-delimited to
 *    HTTP/1.0 ones). A response cut short resets the client (never a truncated success).
 * Hop-by-hop headers (Connection and what it names, Keep-Alive, Proxy-Connection, TE,
 * Transfer-Encoding, Upgrade) never cross.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <http_parser.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include "l7int.h"
#include "log.h"

/* ---------------- shared: header collection ---------------- */

struct hcollect {
	struct l7_hdrs *h;
	struct l7_buf f, v;
	bool in_value;
	size_t bytes;
	int n;
	bool over; /* a limit was passed */
};

static void hc_reset(struct hcollect *c, struct l7_hdrs *h)
{
	c->h = h;
	c->f.off = c->f.len = 0;
	c->v.off = c->v.len = 0;
	c->in_value = false;
	c->bytes = 0;
	c->n = 0;
	c->over = false;
}

static void hc_commit(struct hcollect *c)
{
	if (!c->in_value)
		return;
	if (c->n >= L7_MAX_HEADERS)
		c->over = true;
	else if (!c->over)
		l7h_addn(c->h, c->f.p + c->f.off, lb_pending(&c->f),
			 c->v.p ? c->v.p + c->v.off : "", lb_pending(&c->v));
	c->n++;
	c->f.off = c->f.len = 0;
	c->v.off = c->v.len = 0;
	c->in_value = false;
}

static int hc_field(struct hcollect *c, const char *at, size_t n)
{
	hc_commit(c);
	c->bytes += n;
	if (c->bytes > L7_MAX_HEADER_BYTES)
		c->over = true;
	if (!c->over)
		lb_put(&c->f, at, n);
	return 0;
}

static int hc_value(struct hcollect *c, const char *at, size_t n)
{
	c->in_value = true;
	c->bytes += n;
	if (c->bytes > L7_MAX_HEADER_BYTES)
		c->over = true;
	if (!c->over)
		lb_put(&c->v, at, n);
	return 0;
}

static void hc_free(struct hcollect *c)
{
	lb_free(&c->f);
	lb_free(&c->v);
}

/* Does the comma-separated header value v name token t (case-insensitive)? */
static bool has_token(const char *v, const char *t)
{
	size_t tl = strlen(t);

	while (v && *v) {
		size_t l;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		l = strcspn(v, ",");
		while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
			l--;
		if (l == tl && !strncasecmp(v, t, tl))
			return true;
		v += strcspn(v, ",");
	}
	return false;
}

/* Remove hop-by-hop headers, and the ones Connection names. */
static void strip_hop(struct l7_hdrs *h, bool keep_upgrade)
{
	static const char *const hop[] = {"keep-alive", "proxy-connection", "te",
					  "transfer-encoding", "content-length"};
	const char *conn = l7h_get(h, "connection");

	if (conn) {
		char *copy = strdup(conn), *save = NULL;

		for (char *t = copy ? strtok_r(copy, ", \t", &save) : NULL; t;
		     t = strtok_r(NULL, ", \t", &save)) {
			for (char *p = t; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			if (strcmp(t, "upgrade") || !keep_upgrade)
				l7h_del(h, t);
		}
		free(copy);
		l7h_del(h, "connection");
	}
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		l7h_del(h, hop[i]);
	if (!keep_upgrade)
		l7h_del(h, "upgrade");
}

static const char *reason(int s)
{
	switch (s) {
#define XX(num, name, string)                                                                      \
	case num:                                                                                  \
		return #string;
		HTTP_STATUS_MAP(XX)
#undef XX
	default:
		return "Unknown";
	}
}

/* ================= downstream: the server side ================= */

struct h1req {
	struct l7_req r;
	struct h1d *d;
	bool engine_done, parsed; /* the engine is done with it; the parser is past its end */
	bool orphan;		  /* its connection reset under it (c_reset): c_done frees it */
	bool chunked_out;	  /* the response is chunk-encoded */
	bool head_out, end_out;	  /* response head / end queued */
};

enum dstate {
	D_OPEN,
	D_CLOSING, /* flushing the last response, then FIN */
	D_DRAIN,   /* FIN sent: reading what the client still sends, so close() is no RST */
	D_CLOSED,
};

struct h1d {
	struct l7_dead dead;
	struct l7_dconn dc;
	http_parser p;
	struct l7_buf in, out;
	struct h1req *cur; /* the request being parsed or answered */
	struct hcollect hc;
	struct l7_buf url;
	int err_status; /* decided in a callback: 431 */
	bool msg_paused, body_paused;
	bool close_after; /* after the current response */
	bool read_eof;
	bool upgrading;	    /* a websocket Upgrade request: no more parsing */
	bool h2c;	    /* an `Upgrade: h2c` request without a body: HTTP/2 from here */
	char *h2c_settings; /* its HTTP2-Settings */
	struct l7_later flush_later; /* d_flush after this event (codec output) */
	enum dstate st;
	bool busy; /* inside http_parser_execute: what resumes it only clears the pause */
	int minor; /* the request's HTTP/1.x */
	struct l7_timer idle;
};

static void d_close(struct h1d *d, bool reset);
static void d_process(struct h1d *d);
static void d_want(struct h1d *d);

static struct h1d *d_of_parser(http_parser *p)
{
	return p->data;
}

static int on_begin(http_parser *p)
{
	struct h1d *d = d_of_parser(p);
	struct h1req *q = calloc(1, sizeof(*q));

	if (!q)
		return -1;
	q->d = d;
	l7_req_init(&q->r, &d->dc, q);
	d->cur = q;
	d->url.off = d->url.len = 0;
	hc_reset(&d->hc, &q->r.h);
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	struct h1d *d = d_of_parser(p);

	d->hc.bytes += n;
	if (d->hc.bytes > L7_MAX_HEADER_BYTES) {
		d->err_status = 431;
		return -1;
	}
	lb_put(&d->url, at, n);
	return 0;
}

static int on_hfield(http_parser *p, const char *at, size_t n)
{
	struct h1d *d = d_of_parser(p);

	if (d->cur && d->cur->r.method)
		return 0; /* request trailers: not headers, not passed on */
	hc_field(&d->hc, at, n);
	if (d->hc.over) {
		d->err_status = 431;
		return -1;
	}
	return 0;
}

static int on_hvalue(http_parser *p, const char *at, size_t n)
{
	struct h1d *d = d_of_parser(p);

	if (d->cur && d->cur->r.method)
		return 0; /* request trailers */
	hc_value(&d->hc, at, n);
	if (d->hc.over) {
		d->err_status = 431;
		return -1;
	}
	return 0;
}

static char *dupn(const char *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

static int on_headers_done(http_parser *p)
{
	struct h1d *d = d_of_parser(p);
	struct l7_req *r = &d->cur->r;
	const char *host, *up, *expect;
	const char *url = d->url.p ? d->url.p + d->url.off : "";
	size_t ul = lb_pending(&d->url);

	hc_commit(&d->hc);
	if (d->hc.over) {
		d->err_status = 431;
		return -1;
	}
	d->minor = p->http_minor;
	if (p->method == HTTP_CONNECT) {
		d->err_status = 405; /* no CONNECT through a service port */
		return -1;
	}
	if (p->uses_transfer_encoding && !(p->flags & F_CHUNKED)) {
		d->err_status = 400; /* RFC 9112 6.3: a request body whose length cannot be known */
		return -1;
	}
	r->method = strdup(http_method_str(p->method));
	/* absolute-form (a client that thinks we are a proxy), whatever its scheme: its
	 * authority and path (policy judges the path, not the form) */
	if (ul && url[0] != '/' && url[0] != '*') {
		const char *sep = ul > 3 ? memmem(url, ul, "://", 3) : NULL;
		const char *a = sep ? sep + 3 : NULL;
		const char *slash = a ? memchr(a, '/', ul - (a - url)) : NULL;

		if (!a) {
			d->err_status = 400; /* neither origin-form nor absolute-form */
			return -1;
		}
		r->authority = dupn(a, slash ? (size_t)(slash - a) : ul - (a - url));
		r->path = slash ? dupn(slash, ul - (slash - url)) : strdup("/");
	} else {
		r->path = ul ? dupn(url, ul) : strdup("/");
	}
	host = l7h_get(&r->h, "host");
	if (!r->authority && host)
		r->authority = strdup(host);
	l7h_del(&r->h, "host");
	if (!r->authority) {
		if (p->http_minor >= 1) {
			d->err_status = 400; /* HTTP/1.1 without Host */
			return -1;
		}
		r->authority = strdup("");
	}
	r->scheme = strdup("http");
	expect = l7h_get(&r->h, "expect");
	if (expect && !strcasecmp(expect, "100-continue") && p->http_minor >= 1)
		r->expect100 = true;
	l7h_del(&r->h, "expect");
	up = l7h_get(&r->h, "upgrade");
	r->upgrade = p->upgrade && up && has_token(up, "websocket");
	d->close_after = !http_should_keep_alive(p);
	r->has_body =
	    (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX);
	if (p->flags & F_CHUNKED)
		r->content_length = -1;
	else
		r->content_length =
		    p->content_length == ULLONG_MAX ? 0 : (int64_t)p->content_length;
	if (p->upgrade && up && has_token(up, "h2c") && !r->upgrade &&
	    l7h_get(&r->h, "http2-settings")) {
		free(d->h2c_settings);
		d->h2c_settings = strdup(l7h_get(&r->h, "http2-settings"));
	}
	strip_hop(&r->h, r->upgrade);
	if (r->upgrade) {
		l7h_set(&r->h, "connection", "upgrade");
		d->upgrading = true;
	}
	if (!r->has_body)
		r->body_done = true;
	if (d->h2c_settings && !r->has_body) {
		d->h2c = true; /* d_h2c takes it once the parser stops */
		http_parser_pause(p, 1);
		return 0;
	}
	l7_req_start(r);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	struct h1d *d = d_of_parser(p);
	struct h1req *q = d->cur;
	struct l7_req *r = &q->r;

	l7_req_body(r, at, n, false);
	if (d->st != D_OPEN || d->cur != q) {
		http_parser_pause(p, 1); /* the engine closed the connection under us */
		return 0;
	}
	if (!q->engine_done && r->st != RQ_DONE && l7_req_body_queued(r) > L7_BUF_HIGH) {
		d->body_paused = true; /* until the upstream takes it (more_body) */
		http_parser_pause(p, 1);
	}
	return 0;
}

static void q_free(struct h1req *q)
{
	l7_req_free(&q->r);
	free(q);
}

static int on_msg_done(http_parser *p)
{
	struct h1d *d = d_of_parser(p);
	struct h1req *q = d->cur;

	if (!q)
		return 0;
	q->parsed = true;
	if (q->r.has_body)
		l7_req_body(&q->r, NULL, 0, true);
	if (d->st != D_OPEN || d->cur != q) {
		http_parser_pause(p, 1); /* the engine closed the connection under us */
		return 0;
	}
	if (d->upgrading)
		return 0;
	if (q->engine_done && q->end_out) {
		/* answered before it was all in (a local reply): on to the next one */
		d->cur = NULL;
		q_free(q);
		if (!d->close_after)
			return 0;
	}
	d->msg_paused = true; /* pipelined requests wait for this response */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings req_settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_hfield,
    .on_header_value = on_hvalue,
    .on_headers_complete = on_headers_done,
    .on_body = on_body,
    .on_message_complete = on_msg_done,
};

/* The parser refused the input: a 400 (431) and close, or a reset when a response to that
 * request has begun or the engine already has it (Envoy: DPE). */
static void d_error(struct h1d *d, int status)
{
	struct h1req *q = d->cur;

	if (q && q->r.st != RQ_NEW) {
		q->r.flags |= RF_DPE;
		d_close(d, true);
		return;
	}
	if (q) {
		d->cur = NULL;
		q_free(q);
	}
	lb_printf(
	    &d->out,
	    "HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\nserver: envoy\r\n\r\n",
	    status, reason(status));
	d->read_eof = true;
	d_close(d, false);
}

static void d_free(struct l7_dead *dd)
{
	struct h1d *d = (struct h1d *)dd;

	lb_free(&d->in);
	lb_free(&d->out);
	lb_free(&d->url);
	hc_free(&d->hc);
	free(d->h2c_settings);
	free(d);
}

/* The connection is done here (closed, or its fd handed to HTTP/2 or a raw relay): out of
 * the worker's list before its memory goes. */
static void d_set_closed(struct h1d *d)
{
	d->st = D_CLOSED;
	l7_dconn_unlink(&d->dc);
}

static void d_hard_close(struct h1d *d, bool reset)
{
	struct l7w *w = d->dc.w;

	if (d->st == D_CLOSED)
		return;
	d_set_closed(d);
	if (d->cur) {
		struct h1req *q = d->cur;

		d->cur = NULL;
		if (!q->engine_done)
			l7_req_abort(&q->r);
		q_free(q);
	}
	l7_timer_stop(w, &d->idle);
	if (reset && d->dc.io.fd >= 0) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		setsockopt(d->dc.io.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	l7_io_close(w, &d->dc.io);
	__atomic_sub_fetch(&w->c_active, 1, __ATOMIC_RELAXED);
	l7_defer_free(w, &d->dead);
}

/* reset: RST now (a response cut short, a client that reset); else the FIN after what is
 * queued, and a short drain so unread request bytes do not turn the close into an RST that
 * destroys the response in flight. */
static void d_close(struct h1d *d, bool reset)
{
	if (d->st == D_CLOSED)
		return;
	if (reset || d->st == D_DRAIN) {
		d_hard_close(d, reset);
		return;
	}
	if (d->cur && !d->cur->engine_done) {
		struct h1req *q = d->cur;

		d->cur = NULL;
		l7_req_abort(&q->r);
		q_free(q);
	}
	if (d->st == D_OPEN) {
		d->st = D_CLOSING;
		l7_timer_set(d->dc.w, &d->idle, d->dc.w->now + L7_IDLE_MS);
	}
	if (lb_pending(&d->out)) {
		d_want(d);
		return;
	}
	shutdown(d->dc.io.fd, SHUT_WR);
	d->st = D_DRAIN;
	l7_timer_set(d->dc.w, &d->idle, d->dc.w->now + L7_LINGER_MS);
	d_want(d);
}

static void d_want(struct h1d *d)
{
	uint32_t m = 0; /* a reset (EPOLLERR/HUP) is noticed whatever we wait for */

	if (d->st == D_CLOSED)
		return;
	if (lb_pending(&d->out))
		m |= EPOLLOUT;
	/* reading goes on while a request is in flight (no epoll_ctl per request): what comes
	 * waits in the input buffer, bounded by L7_BUF_HIGH, and is parsed once it may be */
	if (d->st == D_DRAIN ||
	    (d->st == D_OPEN && !d->read_eof && !d->upgrading && lb_pending(&d->in) < L7_BUF_HIGH &&
	     lb_pending(&d->out) <= L7_BUF_HIGH))
		m |= EPOLLIN | EPOLLRDHUP; /* a half-close only while reading (no spin) */
	l7_io_want(d->dc.w, &d->dc.io, m);
}

/*
 * `Upgrade: h2c` (RFC 7540 3.2), a request without a body: 101, then the connection is an
 * HTTP/2 session whose stream 1 carries this request; what the client sent after it (its
 * preface) goes to that session. This connection's state goes, its fd stays open.
 */
static void d_h2c(struct h1d *d)
{
	struct l7w *w = d->dc.w;
	struct h1req *q = d->cur;
	struct l7_dconn dc = d->dc;
	struct l7_req *r2, *r = &q->r;

	lb_printf(&d->out, "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\n"
			   "upgrade: h2c\r\n\r\n");
	l7_io_want(w, &d->dc.io, 0);
	d->dc.io.fd = -1; /* the HTTP/2 session owns it now */
	d_set_closed(d);
	d->cur = NULL;
	l7_timer_stop(w, &d->idle);
	l7_defer_free(w, &d->dead);
	dc.io.mask = 0;
	r2 = l7h2_server_upgrade(&dc, d->h2c_settings, &d->out);
	if (!r2) {
		q_free(q);
		return;
	}
	/* the request moves over, as parsed */
	r2->method = r->method, r->method = NULL;
	r2->path = r->path, r->path = NULL;
	r2->authority = r->authority, r->authority = NULL;
	r2->scheme = r->scheme, r->scheme = NULL;
	r2->h = r->h, r->h = (struct l7_hdrs){0};
	r2->content_length = 0;
	r2->has_body = false;
	r2->body_done = true;
	q_free(q);
	/* the parser stops inside on_headers_complete, before the head's last LF */
	while (lb_pending(&d->in) && (d->in.p[d->in.off] == '\n' || d->in.p[d->in.off] == '\r'))
		lb_consume(&d->in, 1);
	l7h2_upgrade_go(r2, d->in.p ? d->in.p + d->in.off : NULL, lb_pending(&d->in));
}

/* Run the parser over what is buffered. */
static void d_process(struct h1d *d)
{
	if (d->busy)
		return; /* called back from inside the parser: the loop below goes on */
	/* a client whose answers it does not read gets no more parsed (pipelining) */
	while (d->st == D_OPEN && !d->msg_paused && !d->body_paused && !d->upgrading &&
	       lb_pending(&d->in) && lb_pending(&d->out) <= L7_BUF_HIGH) {
		size_t n;
		enum http_errno e;

		d->busy = true;
		n = http_parser_execute(&d->p, &req_settings, d->in.p + d->in.off,
					lb_pending(&d->in));
		d->busy = false;
		e = HTTP_PARSER_ERRNO(&d->p);
		lb_consume(&d->in, n);
		if (d->st != D_OPEN)
			return;
		if (d->p.upgrade && !d->upgrading) {
			/* Upgrade to something we do not relay (h2c is read at connect): the
			 * next bytes are a new HTTP/1 request */
			bool paused = e == HPE_PAUSED;

			http_parser_init(&d->p, HTTP_REQUEST);
			d->p.data = d;
			if (paused)
				http_parser_pause(&d->p, 1);
			continue;
		}
		if (d->h2c) {
			d_h2c(d);
			return;
		}
		if (e == HPE_PAUSED && !d->msg_paused && !d->body_paused) {
			http_parser_pause(&d->p, 0); /* resumed from inside the parser */
			continue;
		}
		if (e == HPE_PAUSED || d->upgrading)
			break;
		if (e != HPE_OK) {
			d_error(d, d->err_status ? d->err_status : 400);
			return;
		}
	}
	if (d->st != D_OPEN)
		return;
	if (!d->cur && d->close_after) {
		d_close(d, false);
		return;
	}
	if (d->read_eof && !lb_pending(&d->in) && !d->upgrading) {
		/* the client is done sending */
		if (!d->cur) {
			d_close(d, false);
			return;
		}
		if (!d->cur->parsed) {
			d_close(d, d->cur->head_out); /* cut short: nobody will answer it */
			return;
		}
		d->close_after = true; /* answer it, then close */
	}
	d_want(d);
}

static void d_flush(struct h1d *d)
{
	if (d->st == D_CLOSED)
		return;
	if (lb_flush(&d->out, d->dc.io.fd)) {
		d_hard_close(d, true);
		return;
	}
	if (d->cur && d->cur->r.st == RQ_RESPONDING && lb_pending(&d->out) < L7_BUF_HIGH)
		l7_req_drained(&d->cur->r);
	if (d->st == D_CLOSING && !lb_pending(&d->out))
		d_close(d, false);
	else if (d->st == D_OPEN && !d->busy && !d->cur && lb_pending(&d->in) &&
		 lb_pending(&d->out) <= L7_BUF_HIGH)
		d_process(d); /* pipelined requests waited for the output to drain */
}

static void d_flush_later(struct l7_later *l)
{
	struct h1d *d = (struct h1d *)((char *)l - offsetof(struct h1d, flush_later));

	if (d->st == D_CLOSED)
		return;
	d_flush(d);
	if (d->st == D_CLOSED)
		return;
	if (!d->cur && !lb_pending(&d->out))
		lb_free(&d->out); /* an idle connection keeps no buffers */
	if (d->st != D_CLOSED)
		d_want(d);
}

/* The codec's output goes out once this event is handled: a head and the body parts one
 * upstream read produced leave in one send. */
static void d_flush_soon(struct h1d *d)
{
	l7_later(d->dc.w, &d->flush_later);
}

static void d_idle_fire(struct l7_timer *t)
{
	struct h1d *d = (struct h1d *)((char *)t - offsetof(struct h1d, idle));

	if (d->st != D_OPEN) {
		d_hard_close(d, false);
		return;
	}
	if (!d->cur || d->cur->r.st == RQ_NEW)
		d_close(d, false); /* idle, or a request that never finished its headers */
	else
		l7_timer_set(d->dc.w, &d->idle, d->dc.w->now + L7_IDLE_MS);
}

static void d_io(struct l7_io *io, uint32_t ev)
{
	struct h1d *d = (struct h1d *)((char *)io - offsetof(struct h1d, dc.io));
	char b[L7_READ_CHUNK];

	if (ev & EPOLLOUT) {
		d_flush(d);
		if (d->st == D_CLOSED)
			return;
	}
	if (ev & EPOLLERR) {
		d_hard_close(d, true); /* reset by the client */
		return;
	}
	if (d->st == D_DRAIN) {
		for (;;) {
			ssize_t n = recv(io->fd, b, sizeof(b), MSG_DONTWAIT);

			if (n > 0)
				continue;
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				d_hard_close(d, false);
			return;
		}
	}
	if (d->st != D_OPEN) {
		d_want(d);
		return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
		while (!d->read_eof && lb_pending(&d->in) < L7_BUF_HIGH) {
			ssize_t n = recv(io->fd, b, sizeof(b), MSG_DONTWAIT);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n < 0) {
				d_hard_close(d, true);
				return;
			}
			if (n == 0) {
				d->read_eof = true;
				break;
			}
			lb_put(&d->in, b, n);
			if ((size_t)n < sizeof(b))
				break; /* drained: level-triggered epoll says if more comes */
		}
		if (d->read_eof && d->cur && d->cur->head_out && !d->cur->end_out &&
		    lb_pending(&d->in) == 0 && d->cur->parsed) {
			/* a half-close while the answer streams: keep sending it */
		}
		if (!d->cur)
			l7_timer_set(d->dc.w, &d->idle, d->dc.w->now + L7_STREAM_IDLE_MS);
		d_process(d);
	}
}

/* ---- the codec the engine sees ---- */

static struct h1req *q_of(struct l7_req *r)
{
	return r->cs;
}

static bool status_has_body(int s)
{
	return !(s < 200 || s == 204 || s == 304);
}

static void c_head(struct l7_req *r, int status, const struct l7_hdrs *h, bool end)
{
	struct h1req *q = q_of(r);
	struct h1d *d = q->d;
	const char *cl = l7h_get(h, "content-length");
	bool body = status_has_body(status) && !r->head;

	if (d->st == D_CLOSED)
		return;
	q->head_out = true;
	lb_printf(&d->out, "HTTP/1.%d %d %s\r\n", d->minor ? 1 : 0, status, reason(status));
	for (int i = 0; i < h->n; i++) {
		const char *n = h->v[i].name;

		if (!strcmp(n, "transfer-encoding") || !strcmp(n, "connection") ||
		    !strcmp(n, "keep-alive") || (!strcmp(n, "upgrade") && status != 101) ||
		    n[0] == ':')
			continue;
		lb_put(&d->out, n, strlen(n));
		lb_put(&d->out, ": ", 2);
		lb_put(&d->out, h->v[i].value, strlen(h->v[i].value));
		lb_put(&d->out, "\r\n", 2);
	}
	if (status == 101) {
		lb_printf(&d->out, "connection: upgrade\r\n\r\n");
		d_flush(d);
		return;
	}
	if (body && !cl) {
		if (end) {
			lb_printf(&d->out, "content-length: 0\r\n");
		} else if (d->minor >= 1) {
			q->chunked_out = true;
			lb_printf(&d->out, "transfer-encoding: chunked\r\n");
		} else {
			d->close_after = true; /* HTTP/1.0: the end is the close */
		}
	}
	if (d->dc.w->draining)
		d->close_after = true; /* an upgrade: the client's next request goes to the next agent */
	if (d->close_after)
		lb_printf(&d->out, "connection: close\r\n");
	else if (!d->minor)
		lb_printf(&d->out, "connection: keep-alive\r\n");
	lb_put(&d->out, "\r\n", 2);
	if (end)
		q->end_out = true;
	d_flush_soon(d);
}

static void c_data(struct l7_req *r, const char *p, size_t n, bool end)
{
	struct h1req *q = q_of(r);
	struct h1d *d = q->d;

	if (d->st == D_CLOSED || q->end_out)
		return;
	if (q->chunked_out) {
		if (n) {
			lb_printf(&d->out, "%zx\r\n", n);
			lb_put(&d->out, p, n);
			lb_put(&d->out, "\r\n", 2);
		}
		if (end)
			lb_put(&d->out, "0\r\n\r\n", 5);
	} else if (!r->head) {
		lb_put(&d->out, p, n);
	}
	if (end)
		q->end_out = true;
	d_flush_soon(d);
}

static void c_trailers(struct l7_req *r, const struct l7_hdrs *h)
{
	struct h1req *q = q_of(r);
	struct h1d *d = q->d;

	if (d->st == D_CLOSED || q->end_out)
		return;
	if (q->chunked_out) {
		lb_put(&d->out, "0\r\n", 3);
		for (int i = 0; i < h->n; i++)
			lb_printf(&d->out, "%s: %s\r\n", h->v[i].name, h->v[i].value);
		lb_put(&d->out, "\r\n", 2);
	}
	q->end_out = true;
	d_flush_soon(d);
}

/* The response broke: the connection resets; the request stays until the engine's done */
static void c_reset(struct l7_req *r)
{
	struct h1req *q = q_of(r);
	struct h1d *d = q->d;

	if (d->cur == q) {
		d->cur = NULL;
		q->orphan = true; /* c_done frees it */
	}
	d_hard_close(d, true);
}

static void c_done(struct l7_req *r)
{
	struct h1req *q = q_of(r);
	struct h1d *d = q->d;

	q->engine_done = true;
	if (q->orphan) {
		q_free(q);
		return;
	}
	if (d->st == D_CLOSED || d->cur != q)
		return; /* d_hard_close frees it */
	if (d->upgrading) {
		int status = r->status; /* r is q's */

		d->cur = NULL;
		q_free(q);
		if (status != 101)
			d_close(d, false); /* not upgraded: what follows is not HTTP/1 */
		return;
	}
	if (!q->end_out) {
		d_close(d, true); /* ended without a complete response */
		return;
	}
	if (!q->parsed)
		return; /* the rest of the request is read (and dropped) first: on_msg_done */
	d->cur = NULL;
	q_free(q);
	/* between requests a connection keeps no buffers (1,000 idle clients: no 20 MB) */
	if (!lb_pending(&d->in))
		lb_free(&d->in);
	lb_free(&d->url);
	hc_free(&d->hc);
	if (d->close_after) {
		d_close(d, false);
		return;
	}
	if (d->msg_paused) {
		d->msg_paused = false;
		if (!d->busy)
			http_parser_pause(&d->p, 0);
	}
	l7_timer_set(d->dc.w, &d->idle, d->dc.w->now + L7_IDLE_MS);
	d_process(d);
}

static size_t c_queued(struct l7_req *r)
{
	return lb_pending(&q_of(r)->d->out);
}

static void c_more_body(struct l7_req *r)
{
	struct h1d *d = q_of(r)->d;

	if (!d->body_paused || d->st != D_OPEN)
		return;
	d->body_paused = false;
	if (d->busy)
		return; /* d_process sees it */
	http_parser_pause(&d->p, 0);
	d_process(d);
}

static void c_continue(struct l7_req *r)
{
	struct h1d *d = q_of(r)->d;

	if (!r->expect100 || d->st != D_OPEN)
		return;
	r->expect100 = false;
	lb_printf(&d->out, "HTTP/1.1 100 Continue\r\n\r\n");
	d_flush_soon(d);
}

static const struct l7_dcodec h1_dcodec = {
    .head = c_head,
    .data = c_data,
    .trailers = c_trailers,
    .reset = c_reset,
    .done = c_done,
    .queued = c_queued,
    .more_body = c_more_body,
    .continue100 = c_continue,
};

/* An upgrade: an idle keep-alive connection closes now, a busy one after its response
 * (websockets relay on until they close). */
static void d_drain(struct l7_dconn *dc)
{
	struct h1d *d = (struct h1d *)((char *)dc - offsetof(struct h1d, dc));

	if (d->st != D_OPEN || d->upgrading)
		return;
	if (!d->cur && !lb_pending(&d->in))
		d_close(d, false);
	else
		d->close_after = true;
}

void l7h1_server(struct l7_dconn *tmpl, const char *pre, size_t n)
{
	struct h1d *d = calloc(1, sizeof(*d));

	if (!d) {
		close(tmpl->io.fd);
		__atomic_sub_fetch(&tmpl->w->c_active, 1, __ATOMIC_RELAXED);
		return;
	}
	d->dead.free = d_free;
	d->dc = *tmpl;
	d->dc.linked = false;
	d->dc.dprev = d->dc.dnext = NULL;
	d->dc.proto = L7_H1;
	d->dc.codec = &h1_dcodec;
	d->dc.io.on = d_io;
	d->dc.io.mask = 0;
	d->dc.drain = d_drain;
	l7_dconn_link(&d->dc);
	d->idle = (struct l7_timer){.idx = -1, .fire = d_idle_fire};
	d->flush_later.fn = d_flush_later;
	http_parser_init(&d->p, HTTP_REQUEST);
	d->p.data = d;
	lb_put(&d->in, pre, n);
	l7_timer_set(d->dc.w, &d->idle, d->dc.w->now + L7_STREAM_IDLE_MS);
	d_process(d);
	if (d->st != D_CLOSED)
		d_want(d);
}

/* An upgraded (101) request: both sides become a raw relay; the 101 itself may still be in
 * the client's output. */
static void d_upgraded(struct h1d *d, struct l7_uconn *u, struct l7_buf *from_up)
{
	struct l7w *w = d->dc.w;
	int dfd = d->dc.io.fd, ufd = u->io.fd;

	l7_io_want(w, &d->dc.io, 0);
	l7_io_want(w, &u->io, 0);
	d->dc.io.fd = -1;
	u->io.fd = -1;
	if (lb_pending(from_up))
		lb_put(&d->out, from_up->p + from_up->off, lb_pending(from_up));
	l7_relay(w, dfd, &d->out, ufd, &d->in);
	d_set_closed(d);
	l7_timer_stop(w, &d->idle);
	__atomic_sub_fetch(&w->c_active, 1, __ATOMIC_RELAXED);
	l7_defer_free(w, &d->dead);
	l7_uconn_close(u);
}

/* ================= upstream: the client side ================= */

struct h1u {
	http_parser p;
	struct l7_buf in, out;
	struct l7_hdrs rh;
	struct hcollect hc;
	bool chunked_req; /* the request body goes chunk-encoded */
	bool req_end_sent;
	bool got_any;	/* a byte of response came back on this connection */
	bool head_done; /* the response head was handed to the engine */
	bool skip;	/* a 1xx interim response: dropped */
	bool paused;	/* the client's side is full: stop reading */
	bool keepalive;
	bool msg_done;
	bool upgraded;
	bool busy; /* inside http_parser_execute */
	int status;
};

static struct h1u *hu(struct l7_uconn *u)
{
	return u->cx;
}

static void u_want(struct l7_uconn *u);
static void u_pump(struct l7_uconn *u);
static void u_read(struct l7_uconn *u);

static struct l7_uconn *u_of_parser(http_parser *p)
{
	return p->data;
}

static int u_begin(http_parser *p)
{
	struct l7_uconn *u = u_of_parser(p);
	struct h1u *x = hu(u);

	l7h_free(&x->rh);
	hc_reset(&x->hc, &x->rh);
	x->skip = false;
	return 0;
}

static int u_hfield(http_parser *p, const char *at, size_t n)
{
	struct h1u *x = hu(u_of_parser(p));

	if (x->head_done)
		return 0; /* trailers of a chunked response: not passed on over HTTP/1 */
	hc_field(&x->hc, at, n);
	return x->hc.over ? -1 : 0;
}

static int u_hvalue(http_parser *p, const char *at, size_t n)
{
	struct h1u *x = hu(u_of_parser(p));

	if (x->head_done)
		return 0;
	hc_value(&x->hc, at, n);
	return x->hc.over ? -1 : 0;
}

static int u_headers(http_parser *p)
{
	struct l7_uconn *u = u_of_parser(p);
	struct h1u *x = hu(u);
	struct l7_req *r = u->r;
	bool nobody, upgrade;

	hc_commit(&x->hc);
	if (x->hc.over)
		return -1;
	x->status = p->status_code;
	if (x->status >= 100 && x->status < 200 && x->status != 101) {
		x->skip = true; /* 100 Continue and friends: we answered the client ourselves */
		return 0;
	}
	if (!r)
		return 1;
	upgrade = x->status == 101 && r->upgrade;
	x->keepalive = http_should_keep_alive(p) && !upgrade;
	nobody = r->head || x->status == 204 || x->status == 304 || upgrade ||
		 (!(p->flags & F_CHUNKED) && p->content_length == 0);
	if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX && !r->head) {
		char cl[24];

		snprintf(cl, sizeof(cl), "%llu", (unsigned long long)p->content_length);
		strip_hop(&x->rh, upgrade);
		l7h_set(&x->rh, "content-length", cl);
	} else if (r->head && l7h_get(&x->rh, "content-length")) {
		char *cl = strdup(l7h_get(&x->rh, "content-length"));

		strip_hop(&x->rh, upgrade);
		if (cl)
			l7h_set(&x->rh, "content-length", cl);
		free(cl);
	} else {
		strip_hop(&x->rh, upgrade);
	}
	x->head_done = true;
	if (!l7_req_resp_head(r, x->status, &x->rh, nobody && !upgrade)) {
		/* the engine retries: this connection's stream is dropped with it */
		u->r = NULL;
		x->keepalive = false;
		return -1;
	}
	if (upgrade) {
		x->upgraded = true;
		return 2; /* no body, no more responses: raw from here */
	}
	if (nobody) {
		u->r = NULL; /* the engine has finished it */
		return 1;
	}
	return 0;
}

static int u_body(http_parser *p, const char *at, size_t n)
{
	struct l7_uconn *u = u_of_parser(p);
	struct h1u *x = hu(u);
	struct l7_req *r = u->r;

	if (!r || x->skip)
		return 0;
	l7_req_resp_data(r, at, n, false);
	if (u->r && r->dc->codec->queued(r) > L7_BUF_HIGH) {
		x->paused = true;
		http_parser_pause(p, 1);
	}
	return 0;
}

static int u_done(http_parser *p)
{
	struct l7_uconn *u = u_of_parser(p);
	struct h1u *x = hu(u);
	struct l7_req *r = u->r;

	if (x->skip) {
		x->skip = false;
		return 0;
	}
	if (x->upgraded)
		return 0; /* the 101 is all there is: the relay takes over */
	x->msg_done = true;
	if (r) {
		u->r = NULL;
		r->u = NULL;
		l7_req_resp_data(r, NULL, 0, true);
	}
	http_parser_pause(p, 1); /* one response per request */
	return 0;
}

static const http_parser_settings resp_settings = {
    .on_message_begin = u_begin,
    .on_header_field = u_hfield,
    .on_header_value = u_hvalue,
    .on_headers_complete = u_headers,
    .on_body = u_body,
    .on_message_complete = u_done,
};

/* After a response: the connection goes back to its pool, or away. */
static void u_settle(struct l7_uconn *u)
{
	struct h1u *x = hu(u);

	if (x->keepalive && x->req_end_sent && !lb_pending(&x->in) && !lb_pending(&x->out)) {
		l7h_free(&x->rh);
		lb_free(&x->in); /* idle in the pool: no buffers */
		lb_free(&x->out);
		hc_free(&x->hc);
		x->msg_done = x->head_done = x->got_any = x->paused = false;
		x->req_end_sent = x->chunked_req = false;
		http_parser_init(&x->p, HTTP_RESPONSE);
		x->p.data = u;
		l7_uconn_idle(u);
		x->got_any = true; /* a reused connection that closes on us is a reset, not UF */
		return;
	}
	l7_uconn_close(u);
}

static void u_parse(struct l7_uconn *u, bool eof)
{
	struct h1u *x = hu(u);

	if (x->busy)
		return; /* called back from inside the parser: its loop goes on */
	while (!u->dead_flag && !x->paused && !x->msg_done && !x->upgraded && lb_pending(&x->in)) {
		size_t n;
		enum http_errno e;

		x->busy = true;
		n = http_parser_execute(&x->p, &resp_settings, x->in.p + x->in.off,
					lb_pending(&x->in));
		x->busy = false;
		e = HTTP_PARSER_ERRNO(&x->p);
		lb_consume(&x->in, n);
		if (u->dead_flag)
			return;
		if (x->upgraded)
			break;
		if (e == HPE_PAUSED && !x->paused && !x->msg_done) {
			http_parser_pause(&x->p, 0); /* resumed from inside the parser */
			continue;
		}
		if (e == HPE_PAUSED)
			break;
		if (e != HPE_OK) {
			struct l7_req *r = u->r;

			u->r = NULL;
			if (r) {
				r->u = NULL;
				if (x->head_done)
					l7_req_resp_reset(r);
				else
					l7_req_try_failed(r, TRY_PROTOCOL);
			}
			l7_uconn_close(u);
			return;
		}
	}
	if (u->dead_flag)
		return;
	if (x->upgraded) {
		struct l7_req *r = u->r;

		u->r = NULL;
		if (r) {
			struct h1d *d = q_of(r)->d;

			r->u = NULL;
			q_of(r)->end_out =
			    true; /* the 101 is the whole answer, as the engine sees it */
			l7_req_upgraded(r, &x->in);
			if (d->st == D_OPEN)
				d_upgraded(d, u, &x->in);
			else
				l7_uconn_close(u);
		}
		return;
	}
	if (eof && !x->msg_done) {
		struct l7_req *r = u->r;

		if (x->head_done && r) {
			/* close-delimited: the end of the body is the close */
			http_parser_execute(&x->p, &resp_settings, NULL, 0);
			if (x->msg_done) {
				l7_uconn_close(u);
				return;
			}
		}
		u->r = NULL;
		if (r) {
			r->u = NULL;
			if (x->head_done)
				l7_req_resp_reset(r);
			else
				l7_req_try_failed(r, !x->got_any && u->key.tunnel ? TRY_CONNECT_FAIL
										  : TRY_RESET);
		}
		l7_uconn_close(u);
		return;
	}
	if (x->msg_done) {
		u_settle(u);
		return;
	}
	u_want(u);
}

static void u_want(struct l7_uconn *u)
{
	struct h1u *x = hu(u);
	uint32_t m = 0;

	if (u->dead_flag || !u->connected)
		return;
	if (lb_pending(&x->out))
		m |= EPOLLOUT;
	if (!x->paused)
		m |= EPOLLIN | EPOLLRDHUP; /* a half-close only while reading (no spin) */
	l7_io_want(u->w, &u->io, m);
}

/* Encode what the request has that is not out yet. */
static void u_pump(struct l7_uconn *u)
{
	struct h1u *x = hu(u);
	struct l7_req *r = u->r;

again:
	if (r && !x->req_end_sent) {
		size_t avail = lb_pending(&r->body) - r->body_sent;

		while (avail && lb_pending(&x->out) < L7_BUF_HIGH) {
			size_t n = avail < L7_BUF_HIGH ? avail : L7_BUF_HIGH;
			const char *p = r->body.p + r->body.off + r->body_sent;

			if (x->chunked_req) {
				lb_printf(&x->out, "%zx\r\n", n);
				lb_put(&x->out, p, n);
				lb_put(&x->out, "\r\n", 2);
			} else {
				lb_put(&x->out, p, n);
			}
			r->body_sent += n;
			avail -= n;
		}
		if (!avail && r->body_done) {
			if (x->chunked_req)
				lb_put(&x->out, "0\r\n\r\n", 5);
			x->req_end_sent = true;
		}
		/* a body too big to replay: what is sent goes (no retries from here) */
		if (lb_pending(&r->body) > L7_RETRY_BUFFER && r->body_sent) {
			lb_consume(&r->body, r->body_sent);
			r->body_sent = 0;
			r->body_trimmed = true;
		}
	}
	if (lb_flush(&x->out, u->io.fd)) {
		/* the server stopped reading: it may have answered early (a 413 before the whole
		 * body), which is the answer then; only without one is this a reset */
		lb_consume(&x->out, lb_pending(&x->out));
		x->req_end_sent = true;
		x->keepalive = false;
		u_read(u);
		return;
	}
	/* the socket took it all: encode what the last round left behind */
	if (r && !x->req_end_sent && !lb_pending(&x->out) && l7_req_body_queued(r))
		goto again;
	if (r && lb_pending(&x->out) < L7_BUF_HIGH && l7_req_body_queued(r) < L7_BUF_HIGH &&
	    !r->body_done)
		r->dc->codec->more_body(r);
	if (!u->dead_flag)
		u_want(u);
}

/* Read what the server sent, and parse it. */
static void u_read(struct l7_uconn *u)
{
	struct h1u *x = hu(u);
	char b[L7_READ_CHUNK];
	bool eof = false;

	while (!x->paused && lb_pending(&x->in) < L7_BUF_HIGH) {
		ssize_t n = recv(u->io.fd, b, sizeof(b), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			eof = true;
			break;
		}
		x->got_any = true;
		lb_put(&x->in, b, n);
		if ((size_t)n < sizeof(b))
			break; /* drained: level-triggered epoll says if more comes */
	}
	u_parse(u, eof);
}

static void u_io(struct l7_io *io, uint32_t ev)
{
	struct l7_uconn *u = (struct l7_uconn *)((char *)io - offsetof(struct l7_uconn, io));

	if (!u->r) {
		/* idle in the pool: anything from the server now is its close */
		l7_uconn_close(u);
		return;
	}
	if (ev & EPOLLOUT) {
		u_pump(u);
		if (u->dead_flag)
			return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		u_read(u);
}

static void u_init(struct l7_uconn *u)
{
	struct h1u *x = calloc(1, sizeof(*x));

	if (!x)
		abort();
	u->cx = x;
	http_parser_init(&x->p, HTTP_RESPONSE);
	x->p.data = u;
}

void l7h1_uconn_free(struct l7_uconn *u)
{
	struct h1u *x = hu(u);

	if (!x)
		return;
	lb_free(&x->in);
	lb_free(&x->out);
	l7h_free(&x->rh);
	hc_free(&x->hc);
	free(x);
	u->cx = NULL;
}

/* The request head, encoded for the upstream. */
static void u_head(struct l7_uconn *u, struct l7_req *r)
{
	struct h1u *x = hu(u);

	lb_printf(&x->out, "%s %s HTTP/1.1\r\nhost: %s\r\n", r->method, r->path,
		  r->authority ? r->authority : "");
	for (int i = 0; i < r->h.n; i++) {
		const char *n = r->h.v[i].name;

		if (n[0] == ':' || !strcmp(n, "host") || !strcmp(n, "content-length") ||
		    !strcmp(n, "transfer-encoding") || (!strcmp(n, "connection") && !r->upgrade))
			continue;
		lb_put(&x->out, n, strlen(n));
		lb_put(&x->out, ": ", 2);
		lb_put(&x->out, r->h.v[i].value, strlen(r->h.v[i].value));
		lb_put(&x->out, "\r\n", 2);
	}
	x->chunked_req = false;
	if (r->content_length > 0)
		lb_printf(&x->out, "content-length: %lld\r\n", (long long)r->content_length);
	else if (r->has_body) {
		lb_printf(&x->out, "transfer-encoding: chunked\r\n");
		x->chunked_req = true;
	} else if (!strcmp(r->method, "POST") || !strcmp(r->method, "PUT") ||
		   !strcmp(r->method, "PATCH")) {
		lb_printf(&x->out, "content-length: 0\r\n");
	}
	lb_put(&x->out, "\r\n", 2);
	x->req_end_sent = !r->has_body;
}

int l7h1_start(struct l7_req *r, struct l7_uconn *u)
{
	struct h1u *x;

	if (!u->cx)
		u_init(u);
	x = hu(u);
	u->r = r;
	x->head_done = x->msg_done = x->paused = false;
	u_head(u, r);
	if (u->connected) {
		u->io.on = u_io;
		u_pump(u);
	}
	return 0;
}

void l7h1_uconn_ready(struct l7_uconn *u)
{
	if (!u->cx)
		u_init(u);
	u->io.on = u_io;
	u_pump(u);
}

void l7h1_body(struct l7_req *r)
{
	if (r->u && r->u->connected)
		u_pump(r->u);
}

void l7h1_abandon(struct l7_req *r, struct l7_uconn *u)
{
	(void)r;
	u->r = NULL;
	l7_uconn_close(u); /* HTTP/1 has no stream to reset: the connection goes */
}

void l7h1_resume(struct l7_req *r)
{
	struct l7_uconn *u = r->u;
	struct h1u *x;

	if (!u || u->dead_flag || !u->cx)
		return;
	x = hu(u);
	if (!x->paused)
		return;
	x->paused = false;
	if (x->busy)
		return; /* u_parse sees it */
	http_parser_pause(&x->p, 0);
	u_parse(u, false);
	if (!u->dead_flag)
		u_want(u);
}
