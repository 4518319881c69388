// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * h2tun.c: see h2tun.h. Called by the tunnel (tunnel.c) and the unit tests.
 *
 * Flow control is manual (NGHTTP2_OPT_NO_AUTO_WINDOW_UPDATE): bytes from the peer wait in the
 * stream's in buffer until the plaintext side took them (h2t_consumed), and only then does
 * their window go back, for the stream and for the connection. So a slow pod holds back its
 * own stream and never the others, and what a peer can make us buffer is bounded by the
 * windows we announce.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <nghttp2/nghttp2.h>
#include "h2tun.h"

enum {
	PEND_REQ = 1,
	PEND_RESP = 2,
	PEND_READ = 4,
	PEND_WRITE = 8,
	PEND_CLOSED = 16,
};

struct bytes {
	uint8_t *p;
	size_t off, len, cap; /* the bytes are p[off .. off+len) */
};

struct h2t_stream {
	struct h2t *h;
	int32_t id;
	void *user;
	struct h2t_req *req; /* server: the request head being read (freed once delivered) */
	int status;	     /* client: the response's :status */
	struct bytes in, out;
	bool peer_end;	  /* END_STREAM received */
	bool local_end;	  /* h2t_end: END_STREAM once out is empty */
	bool end_sent;	  /* ... and it went */
	bool has_data;	  /* a data source is attached (client: always; server: after 200) */
	bool deferred;	  /* the data source said DEFERRED: resume on new bytes */
	bool refused;	  /* answered with an error: incoming DATA is dropped */
	bool rst_after;	  /* released while its refusal is queued: RST_STREAM once it went */
	bool nh_closed;	  /* nghttp2 is done with it */
	bool released;	  /* the user is done with it */
	bool queued;
	bool delivering;
	uint32_t err;
	unsigned pending;
	struct h2t_stream *qnext;
	struct h2t_stream *prev, *next; /* every stream of the connection */
};

struct h2t {
	nghttp2_session *s;
	bool server;
	struct h2t_cb cb;
	void *arg;
	struct bytes out;
	struct h2t_stream *all;
	struct h2t_stream *qhead, *qtail;
	int open;
	bool goaway;	/* sent or received: no new streams */
	bool ping_out, ping_acked;
};

/* ---------- byte buffers ---------- */

static bool bytes_put(struct bytes *b, const void *p, size_t n)
{
	if (b->off && b->off + b->len + n > b->cap) { /* move what is left to the front */
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *q;

		while (cap < b->len + n)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q)
			return false;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->off + b->len, p, n);
	b->len += n;
	return true;
}

static void bytes_take(struct bytes *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (!b->len) {
		b->off = 0;
		if (b->cap > 65536) { /* a burst is over: its memory goes back */
			free(b->p);
			b->p = NULL;
			b->cap = 0;
		}
	}
}

/* A stream's buffer: nothing kept once it is empty, so an idle stream (a held keep-alive
 * connection) costs no buffer; a busy one takes one from malloc's free lists again. */
static void stream_take(struct bytes *b, size_t n)
{
	bytes_take(b, n);
	if (!b->len && b->p) {
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
}

void h2t_end(struct h2t_stream *st);

/* ---------- the queue of callbacks to deliver ---------- */

static void queue(struct h2t_stream *st, unsigned what)
{
	struct h2t *h = st->h;

	if (st->released)
		return;
	st->pending |= what;
	if (st->queued || st->delivering)
		return;
	st->queued = true;
	st->qnext = NULL;
	if (h->qtail)
		h->qtail->qnext = st;
	else
		h->qhead = st;
	h->qtail = st;
}

static void stream_free(struct h2t_stream *st)
{
	struct h2t *h = st->h;

	if (st->prev)
		st->prev->next = st->next;
	else
		h->all = st->next;
	if (st->next)
		st->next->prev = st->prev;
	free(st->in.p);
	free(st->out.p);
	free(st->req);
	free(st);
}

/* Free once nobody holds it: nghttp2 closed it, the user released it, no callback pending. */
static void maybe_free(struct h2t_stream *st)
{
	if (st->nh_closed && st->released && !st->queued && !st->delivering)
		stream_free(st);
}

static void deliver(struct h2t *h)
{
	while (h->qhead) {
		struct h2t_stream *st = h->qhead;
		unsigned f;

		h->qhead = st->qnext;
		if (!h->qhead)
			h->qtail = NULL;
		st->queued = false;
		st->delivering = true;
		while ((f = st->pending) && !st->released) {
			st->pending = 0;
			if ((f & PEND_REQ) && h->cb.request) {
				h->cb.request(h->arg, st, st->req);
				free(st->req);
				st->req = NULL;
			}
			if ((f & PEND_RESP) && !st->released && h->cb.response)
				h->cb.response(h->arg, st, st->status);
			if ((f & PEND_RESP) && !st->released && st->status != 200) {
				st->refused = true; /* refused: our side ends too, cleanly */
				h2t_end(st);
			}
			if ((f & PEND_READ) && !st->released && h->cb.readable)
				h->cb.readable(h->arg, st);
			if ((f & PEND_WRITE) && !st->released && h->cb.writable)
				h->cb.writable(h->arg, st);
			if ((f & PEND_CLOSED) && !st->released && h->cb.closed)
				h->cb.closed(h->arg, st, st->err);
		}
		st->pending = 0;
		st->delivering = false;
		maybe_free(st);
	}
}

/* ---------- nghttp2 callbacks ---------- */

static struct h2t_stream *stream_new(struct h2t *h)
{
	struct h2t_stream *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->h = h;
	st->next = h->all;
	if (h->all)
		h->all->prev = st;
	h->all = st;
	return st;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
	struct h2t *h = arg;
	struct h2t_stream *st;

	if (!h->server || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = stream_new(h);
	if (!st || !(st->req = calloc(1, sizeof(*st->req)))) {
		if (st) {
			st->nh_closed = st->released = true;
			maybe_free(st);
		}
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM for this one */
	}
	st->id = f->hd.stream_id;
	h->open++;
	nghttp2_session_set_stream_user_data(s, st->id, st);
	return 0;
}

static void keep(char *dst, const uint8_t *v, size_t n, bool *too_long)
{
	if (dst[0])
		return; /* the first of repeated headers */
	if (n >= H2T_HEADER_MAX) {
		*too_long = true;
		return;
	}
	memcpy(dst, v, n);
	dst[n] = 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
	struct h2t_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	struct h2t *h = arg;

	(void)flags;
	if (!st || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (!h->server) {
		if (nlen == 7 && !memcmp(name, ":status", 7) && vlen == 3)
			st->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
		return 0;
	}
	if (!st->req)
		return 0; /* trailers */
#define IS(lit) (nlen == sizeof(lit) - 1 && !memcmp(name, lit, nlen))
	if (IS(":method")) {
		if (vlen < sizeof(st->req->method))
			keep(st->req->method, value, vlen, &st->req->too_long);
		else
			st->req->too_long = true;
	}
	else if (IS(":authority"))
		keep(st->req->authority, value, vlen, &st->req->too_long);
	else if (IS("forwarded"))
		keep(st->req->forwarded, value, vlen, &st->req->too_long);
	else if (IS("baggage"))
		keep(st->req->baggage, value, vlen, &st->req->too_long);
	else if (IS("traceparent"))
		keep(st->req->traceparent, value, vlen, &st->req->too_long);
	else if (IS("bpfmesh-protocol") && vlen < sizeof(st->req->protocol) &&
		 !st->req->protocol[0]) {
		memcpy(st->req->protocol, value, vlen);
		st->req->protocol[vlen] = 0;
	}
#undef IS
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
	struct h2t *h = arg;
	struct h2t_stream *st =
	    f->hd.stream_id ? nghttp2_session_get_stream_user_data(s, f->hd.stream_id) : NULL;

	switch (f->hd.type) {
	case NGHTTP2_PING:
		if (f->hd.flags & NGHTTP2_FLAG_ACK)
			h->ping_acked = true;
		return 0;
	case NGHTTP2_GOAWAY:
		h->goaway = true;
		return 0;
	case NGHTTP2_HEADERS:
		if (!st)
			return 0;
		if (h->server && f->headers.cat == NGHTTP2_HCAT_REQUEST)
			queue(st, PEND_REQ);
		else if (!h->server && f->headers.cat == NGHTTP2_HCAT_RESPONSE)
			queue(st, PEND_RESP);
		break;
	case NGHTTP2_DATA:
		if (!st)
			return 0;
		break;
	default:
		return 0;
	}
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
		st->peer_end = true;
		queue(st, PEND_READ);
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *arg)
{
	struct h2t_stream *st = nghttp2_session_get_stream_user_data(s, id);

	(void)flags;
	(void)arg;
	if (!st || st->released || st->refused || !bytes_put(&st->in, data, len)) {
		/* nobody will read it: its window goes back at once */
		nghttp2_session_consume_connection(s, len);
		nghttp2_session_consume_stream(s, id, len);
		if (st && !st->released && !st->refused) /* out of memory */
			nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id,
						  NGHTTP2_INTERNAL_ERROR);
		return 0;
	}
	queue(st, PEND_READ);
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t err, void *arg)
{
	struct h2t_stream *st = nghttp2_session_get_stream_user_data(s, id);
	struct h2t *h = arg;

	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(s, id, NULL);
	h->open--;
	st->nh_closed = true;
	st->err = err;
	queue(st, PEND_CLOSED);
	maybe_free(st);
	return 0;
}

/* A refusal went out: now ask the client to stop sending (RST_STREAM NO_ERROR). */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
	struct h2t_stream *st;

	(void)arg;
	if (f->hd.type != NGHTTP2_HEADERS || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (st && st->rst_after) {
		st->rst_after = false;
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
	}
	return 0;
}

static ssize_t data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
			 uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct h2t_stream *st = src->ptr;
	bool was_full = st->out.len >= H2T_OUT_MAX;
	size_t n = st->out.len < len ? st->out.len : len;

	(void)s;
	(void)id;
	(void)arg;
	if (n) {
		memcpy(buf, st->out.p + st->out.off, n);
		stream_take(&st->out, n);
		if (was_full && st->out.len < H2T_OUT_MAX)
			queue(st, PEND_WRITE);
	}
	if (!st->out.len && st->local_end) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		st->end_sent = true;
		return (ssize_t)n;
	}
	if (!n) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

/* ---------- the connection ---------- */

struct h2t *h2t_new(bool server, const struct h2t_cb *cb, void *arg)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	struct h2t *h = calloc(1, sizeof(*h));
	nghttp2_settings_entry set[3] = {
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2T_STREAM_WINDOW},
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
	     server ? H2T_SERVER_STREAMS : H2T_CLIENT_STREAMS},
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	};
	int rc;

	if (!h)
		return NULL;
	h->server = server;
	h->cb = *cb;
	h->arg = arg;
	if (nghttp2_session_callbacks_new(&cbs)) {
		free(h);
		return NULL;
	}
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	if (nghttp2_option_new(&opt)) {
		nghttp2_session_callbacks_del(cbs);
		free(h);
		return NULL;
	}
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
	rc = server ? nghttp2_session_server_new2(&h->s, cbs, h, opt)
		    : nghttp2_session_client_new2(&h->s, cbs, h, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rc || nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, set, 3) ||
	    nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0, H2T_CONN_WINDOW)) {
		if (!rc)
			nghttp2_session_del(h->s);
		free(h);
		return NULL;
	}
	return h;
}

void h2t_free(struct h2t *h)
{
	if (!h)
		return;
	nghttp2_session_del(h->s); /* no callbacks from here */
	while (h->all)
		stream_free(h->all);
	free(h->out.p);
	free(h);
}

int h2t_recv(struct h2t *h, const void *p, size_t n)
{
	ssize_t rc = nghttp2_session_mem_recv(h->s, p, n);

	deliver(h);
	return rc < 0 ? -1 : 0;
}

size_t h2t_out(struct h2t *h, const uint8_t **p)
{
	for (;;) {
		while (h->out.len < (256 << 10)) {
			const uint8_t *d;
			ssize_t n = nghttp2_session_mem_send(h->s, &d);

			if (n <= 0)
				break;
			if (!bytes_put(&h->out, d, (size_t)n))
				break;
		}
		if (!h->qhead)
			break;
		deliver(h); /* room in out buffers: the user may write more */
	}
	*p = h->out.p ? h->out.p + h->out.off : NULL;
	return h->out.len;
}

void h2t_sent(struct h2t *h, size_t n)
{
	bytes_take(&h->out, n);
}

bool h2t_done(const struct h2t *h)
{
	return !nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s) &&
	       !h->out.len;
}

int h2t_streams(const struct h2t *h)
{
	return h->open;
}

bool h2t_can_open(const struct h2t *h)
{
	return !h->server && !h->goaway && nghttp2_session_check_request_allowed(h->s) &&
	       h->open < H2T_CLIENT_STREAMS &&
	       (uint32_t)h->open < nghttp2_session_get_remote_settings(
				       h->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

void h2t_goaway(struct h2t *h)
{
	if (h->goaway)
		return;
	h->goaway = true; /* the streams open go on; no new ones */
	nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s),
			      NGHTTP2_NO_ERROR, NULL, 0);
}

void h2t_shutdown_notice(struct h2t *h)
{
	if (h->server && !h->goaway)
		nghttp2_submit_shutdown_notice(h->s);
}

void h2t_ping(struct h2t *h)
{
	h->ping_out = true;
	h->ping_acked = false;
	nghttp2_submit_ping(h->s, NGHTTP2_FLAG_NONE, NULL);
}

bool h2t_ping_acked(const struct h2t *h)
{
	return h->ping_out && h->ping_acked;
}

/* ---------- streams ---------- */

struct h2t_stream *h2t_connect(struct h2t *h, const char *authority, const char *const *hdrs,
			       int n, void *user)
{
	nghttp2_nv nva[2 + 8];
	nghttp2_data_provider dp;
	struct h2t_stream *st;
	int k = 0;

	if (!h2t_can_open(h) || n > 8 || !(st = stream_new(h)))
		return NULL;
	nva[k++] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7,
				NGHTTP2_NV_FLAG_NONE};
	nva[k++] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)authority, 10,
				strlen(authority), NGHTTP2_NV_FLAG_NONE};
	for (int i = 0; i < n; i++)
		nva[k++] = (nghttp2_nv){(uint8_t *)hdrs[2 * i], (uint8_t *)hdrs[2 * i + 1],
					strlen(hdrs[2 * i]), strlen(hdrs[2 * i + 1]),
					NGHTTP2_NV_FLAG_NONE};
	dp.source.ptr = st;
	dp.read_callback = data_read;
	st->user = user;
	st->has_data = true;
	st->id = nghttp2_submit_request(h->s, NULL, nva, k, &dp, st);
	if (st->id < 0) {
		st->nh_closed = st->released = true;
		maybe_free(st);
		return NULL;
	}
	h->open++;
	return st;
}

int h2t_respond(struct h2t_stream *st, int status)
{
	char code[8];
	nghttp2_nv nva[1];
	nghttp2_data_provider dp = {.source.ptr = st, .read_callback = data_read};

	if (st->nh_closed)
		return -1;
	snprintf(code, sizeof(code), "%d", status);
	nva[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, strlen(code),
			      NGHTTP2_NV_FLAG_NONE};
	if (status == 200) {
		st->has_data = true;
		return nghttp2_submit_response(st->h->s, st->id, nva, 1, &dp) ? -1 : 0;
	}
	st->refused = true;
	st->local_end = st->end_sent = true;
	if (st->in.len) { /* what came before the answer is not read */
		nghttp2_session_consume_connection(st->h->s, st->in.len);
		stream_take(&st->in, st->in.len);
	}
	return nghttp2_submit_response(st->h->s, st->id, nva, 1, NULL) ? -1 : 0;
}

void h2t_reset(struct h2t_stream *st, uint32_t code)
{
	if (!st->nh_closed)
		nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id, code);
}

void h2t_release(struct h2t_stream *st)
{
	if (st->in.len) { /* never read: the connection's window goes back */
		nghttp2_session_consume_connection(st->h->s, st->in.len);
		stream_take(&st->in, st->in.len);
	}
	if (!st->nh_closed && !(st->end_sent && st->peer_end)) {
		if (st->refused) /* after the answer (a reset now would cancel it), RFC 9113 8.1 */
			st->rst_after = true;
		else
			h2t_reset(st, NGHTTP2_CANCEL);
	}
	st->released = true;
	st->user = NULL;
	maybe_free(st);
}

size_t h2t_peek(struct h2t_stream *st, const uint8_t **p)
{
	*p = st->in.p ? st->in.p + st->in.off : NULL;
	return st->in.len;
}

void h2t_consumed(struct h2t_stream *st, size_t n)
{
	if (n > st->in.len)
		n = st->in.len;
	stream_take(&st->in, n);
	nghttp2_session_consume_connection(st->h->s, n);
	if (!st->nh_closed)
		nghttp2_session_consume_stream(st->h->s, st->id, n);
}

bool h2t_peer_ended(const struct h2t_stream *st)
{
	return st->peer_end && !st->in.len;
}

size_t h2t_room(const struct h2t_stream *st)
{
	return st->out.len >= H2T_OUT_MAX || st->local_end ? 0 : H2T_OUT_MAX - st->out.len;
}

static void resume(struct h2t_stream *st)
{
	if (st->has_data && st->deferred && !st->nh_closed) {
		st->deferred = false;
		nghttp2_session_resume_data(st->h->s, st->id);
	}
}

void h2t_write(struct h2t_stream *st, const void *p, size_t n)
{
	if (st->local_end || st->nh_closed || !n)
		return;
	if (!bytes_put(&st->out, p, n)) {
		h2t_reset(st, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	resume(st);
}

void h2t_end(struct h2t_stream *st)
{
	if (st->local_end)
		return;
	st->local_end = true;
	resume(st);
}

bool h2t_flushed(const struct h2t_stream *st)
{
	return st->end_sent || st->nh_closed;
}

void *h2t_user(const struct h2t_stream *st)
{
	return st->user;
}

void h2t_set_user(struct h2t_stream *st, void *user)
{
	st->user = user;
}

int32_t h2t_id(const struct h2t_stream *st)
{
	return st->id;
}
