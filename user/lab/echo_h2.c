// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * echo_h2.c: HTTP/2 streams for the lab's echo server (see echo_h2.h), on nghttp2's server
 * session in memory mode: echo.c reads and writes the socket, this file only sees bytes.
 *
 * Each stream collects its request (fields and body, within echo.h's limits) and is handed to
 * echo.c when the client ends it, or earlier when it breaks a limit, so a 2 MiB upload is
 * answered 413 at its first byte too many, as on HTTP/1.1. An answer is copied into its stream
 * and sent as flow control allows; the stream is freed when nghttp2 closes it.
 *
 * Memory: window updates are ours to send (no automatic ones). The connection window is given
 * back at once, so one stream never stalls the others; a stream's own window only while the
 * bodies held stay under ECHO_H2_MAX_BUFFERED, except for the oldest unfinished stream, which
 * always gets it: that one can finish, be answered and free its share, so nothing deadlocks.
 */
#include "echo_h2.h"

#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* base64url of SETTINGS: 6 bytes per setting, and a client sends a handful */
#define H2_SETTINGS_MAX 256
/* fields kept per stream: pseudo-header ones (4 at most in a request) and ECHO_MAX_HEADERS */
#define H2_FIELDS_MAX (ECHO_MAX_HEADERS + 4)

struct h2_loc {
	uint32_t off, len; /* in the stream's hbuf */
};

struct h2_stream {
	struct h2_stream *next, *prev; /* every stream of the session, for h2_free and timers */
	struct h2 *h;
	int32_t id;
	int status;	 /* refused with this HTTP status */
	bool answered;	 /* h2_respond() was called */
	bool held;	 /* fn asked to be called again at due */
	bool complete;	 /* the request is all here (or refused): nothing more is collected */
	bool dispatched; /* handed to fn at least once; complete but not dispatched: queued */
	int64_t due;
	/* the request: fields as name/value locations in hbuf, NUL after each */
	char *hbuf;
	size_t hlen, hcap, hsize; /* hsize: as counted against ECHO_MAX_HEADER */
	struct h2_loc f[H2_FIELDS_MAX][2];
	int nf, nregular;
	char *body;
	size_t blen, bcap;
	size_t owed; /* body bytes received whose stream window is not given back yet */
	/* the answer */
	char *out;
	size_t olen, ooff;
	char *tbuf; /* trailers as "name\0value\0" pairs */
	size_t tlen, tcap;
	int ntrailers;
};

struct h2 {
	nghttp2_session *ng;
	h2_request_fn fn;
	void *ctx;
	struct h2_stream *streams;
	size_t buffered; /* request body bytes held by all streams */
	size_t answers;	 /* answer body bytes copied and not yet sent, of all streams */
};

static bool grow(char **p, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 256;
	char *n;

	if (need <= *cap)
		return true;
	while (c < need)
		c *= 2;
	n = realloc(*p, c);
	if (!n)
		return false;
	*p = n;
	*cap = c;
	return true;
}

static struct h2_stream *stream_new(struct h2 *h, int32_t id)
{
	struct h2_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->h = h;
	s->id = id;
	s->next = h->streams;
	if (h->streams)
		h->streams->prev = s;
	h->streams = s;
	return s;
}

/* Give streams back the window they are owed, as far as ECHO_H2_MAX_BUFFERED allows (see the
 * top of the file). */
static void settle(struct h2 *h)
{
	struct h2_stream *oldest = NULL;

	if (!h->ng)
		return; /* h2_free: the session is gone */
	for (struct h2_stream *s = h->streams; s; s = s->next)
		if (!s->complete && (!oldest || s->id < oldest->id))
			oldest = s;
	for (struct h2_stream *s = h->streams; s; s = s->next) {
		if (!s->owed || (s != oldest && h->buffered > ECHO_H2_MAX_BUFFERED))
			continue;
		/* fails only for a stream nghttp2 has closed, which needs no window */
		nghttp2_session_consume_stream(h->ng, s->id, s->owed);
		s->owed = 0;
	}
}

static void stream_drop_request(struct h2_stream *s)
{
	s->h->buffered -= s->blen;
	free(s->body);
	free(s->hbuf);
	s->body = s->hbuf = NULL;
	s->blen = s->bcap = s->hlen = s->hcap = 0;
	s->nf = s->nregular = 0;
	/* a stream done collecting gets its window back (the rest of a refused body is dropped),
	 * and what it held may unblock others */
	if (s->owed && s->h->ng)
		nghttp2_session_consume_stream(s->h->ng, s->id, s->owed);
	s->owed = 0;
	settle(s->h);
}

static void stream_free(struct h2_stream *s)
{
	struct h2 *h = s->h;

	if (s->prev)
		s->prev->next = s->next;
	else
		h->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	stream_drop_request(s);
	h->answers -= s->olen - s->ooff;
	free(s->out);
	free(s->tbuf);
	free(s);
}

/* Keep one field; false when out of memory. Past a limit the stream is refused with 431. */
static bool stream_field(struct h2_stream *s, const char *n, size_t nl, const char *v, size_t vl)
{
	bool pseudo = nl && n[0] == ':';

	/* the same count as an HTTP/1.1 header section: "name: value\r\n" */
	s->hsize += nl + vl + 4;
	if (s->hsize > ECHO_MAX_HEADER || s->nf == H2_FIELDS_MAX ||
	    (!pseudo && s->nregular == ECHO_MAX_HEADERS)) {
		s->status = 431;
		return true;
	}
	if (!grow(&s->hbuf, &s->hcap, s->hlen + nl + vl + 2))
		return false;
	s->f[s->nf][0] = (struct h2_loc){(uint32_t)s->hlen, (uint32_t)nl};
	memcpy(s->hbuf + s->hlen, n, nl);
	s->hbuf[s->hlen + nl] = 0;
	s->hlen += nl + 1;
	s->f[s->nf][1] = (struct h2_loc){(uint32_t)s->hlen, (uint32_t)vl};
	memcpy(s->hbuf + s->hlen, v, vl);
	s->hbuf[s->hlen + vl] = 0;
	s->hlen += vl + 1;
	s->nf++;
	s->nregular += !pseudo;
	return true;
}

/* Body bytes; past ECHO_MAX_BODY the stream is refused with 413. */
static bool stream_data(struct h2_stream *s, const uint8_t *p, size_t n)
{
	if (!n)
		return true;
	if (s->blen + n > ECHO_MAX_BODY) {
		s->status = 413;
		return true;
	}
	if (!grow(&s->body, &s->bcap, s->blen + n))
		return false;
	memcpy(s->body + s->blen, p, n);
	s->blen += n;
	s->h->buffered += n;
	return true;
}

static struct h2_str loc_str(const struct h2_stream *s, struct h2_loc l)
{
	return (struct h2_str){s->hbuf + l.off, l.len};
}

/* Hand the request to fn (again, when late). */
static void stream_dispatch(struct h2_stream *s, bool late)
{
	struct h2_field fields[H2_FIELDS_MAX];
	struct h2_request rq = {.stream = s->id, .status = s->status};
	int64_t due;

	s->dispatched = true;
	if (!s->status) {
		for (int i = 0; i < s->nf; i++) {
			struct h2_str n = loc_str(s, s->f[i][0]), v = loc_str(s, s->f[i][1]);

			if (!n.n || n.p[0] != ':')
				fields[rq.nfields++] = (struct h2_field){n, v};
			else if (!strcmp(n.p, ":method"))
				rq.method = v;
			else if (!strcmp(n.p, ":path"))
				rq.path = v;
			else if (!strcmp(n.p, ":authority"))
				rq.authority = v;
			else if (!strcmp(n.p, ":scheme"))
				rq.scheme = v;
		}
		rq.fields = fields;
		rq.body = s->body;
		rq.blen = s->blen;
	}
	due = s->h->fn(s->h->ctx, s->h, &rq, late);
	s->held = due > 0 && !s->answered;
	s->due = s->held ? due : 0;
	if (!s->held)
		stream_drop_request(s);
}

/* A request is complete: answered now, or queued while the answers not yet sent would take
 * more than ECHO_H2_MAX_ANSWERS (a client that sends and does not read). */
static void stream_ready(struct h2_stream *s)
{
	s->complete = true;
	if (s->h->answers < ECHO_H2_MAX_ANSWERS)
		stream_dispatch(s, false);
}

/* Answer queued requests, oldest first, while there is room. */
static void dispatch_queued(struct h2 *h)
{
	while (h->answers < ECHO_H2_MAX_ANSWERS) {
		struct h2_stream *next = NULL;

		for (struct h2_stream *s = h->streams; s; s = s->next)
			if (s->complete && !s->dispatched && (!next || s->id < next->id))
				next = s;
		if (!next)
			return;
		stream_dispatch(next, false);
	}
}

/* ---------------- nghttp2 callbacks ---------------- */

static struct h2_stream *stream_of(struct h2 *h, int32_t id)
{
	return nghttp2_session_get_stream_user_data(h->ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *fr, void *ud)
{
	struct h2 *h = ud;
	struct h2_stream *s;

	if (fr->hd.type != NGHTTP2_HEADERS || fr->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = stream_new(h, fr->hd.stream_id);
	if (!s)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	nghttp2_session_set_stream_user_data(ng, fr->hd.stream_id, s);
	return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *fr, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2_stream *s = stream_of(ud, fr->hd.stream_id);

	(void)ng;
	(void)flags;
	/* request trailers (cat HEADERS) carry nothing we echo */
	if (!s || s->status || s->complete || fr->hd.type != NGHTTP2_HEADERS ||
	    fr->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (!stream_field(s, (const char *)name, namelen, (const char *)value, valuelen))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *ud)
{
	struct h2_stream *s = stream_of(ud, id);

	(void)flags;
	if (nghttp2_session_consume_connection(ng, len))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	/*
	 * Refused or answered already: the rest of the body is read and dropped. RFC 9113 8.1
	 * would allow a RST_STREAM NO_ERROR after the answer instead, but curl 7.88 (Debian 12)
	 * then fails the transfer (exit 92) and never shows the 413.
	 */
	if (!s || s->status || s->complete)
		return nghttp2_session_consume_stream(ng, id, len) == NGHTTP2_ERR_NOMEM
			   ? NGHTTP2_ERR_CALLBACK_FAILURE
			   : 0;
	if (!stream_data(s, data, len))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	s->owed += len;
	if (s->status)
		stream_ready(s);
	else
		settle(s->h);
	return 0;
}

/* "content-length" of the request, or -1 */
static long long stream_content_length(const struct h2_stream *s)
{
	for (int i = 0; i < s->nf; i++) {
		struct h2_str n = loc_str(s, s->f[i][0]);

		if (n.n == 14 && !memcmp(n.p, "content-length", 14))
			return strtoll(s->hbuf + s->f[i][1].off, NULL, 10);
	}
	return -1;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *fr, void *ud)
{
	struct h2_stream *s;

	(void)ng;
	if (fr->hd.type != NGHTTP2_HEADERS && fr->hd.type != NGHTTP2_DATA)
		return 0;
	s = stream_of(ud, fr->hd.stream_id);
	if (!s || s->complete)
		return 0;
	/* like HTTP/1.1: a declared body over the limit is refused before it is sent */
	if (fr->hd.type == NGHTTP2_HEADERS && fr->headers.cat == NGHTTP2_HCAT_REQUEST &&
	    !s->status && stream_content_length(s) > ECHO_MAX_BODY)
		s->status = 413;
	if (s->status || (fr->hd.flags & NGHTTP2_FLAG_END_STREAM))
		stream_ready(s);
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct h2_stream *s = stream_of(ud, id);

	(void)code;
	if (s) {
		nghttp2_session_set_stream_user_data(ng, id, NULL);
		stream_free(s);
	}
	return 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct h2_stream *s = src->ptr;
	size_t n = s->olen - s->ooff;

	(void)ud;
	if (n > len)
		n = len;
	if (n)
		memcpy(buf, s->out + s->ooff, n);
	s->ooff += n;
	s->h->answers -= n;
	if (s->ooff < s->olen)
		return (ssize_t)n;
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	if (s->ntrailers) {
		nghttp2_nv nv[8];
		const char *t = s->tbuf;
		int k = 0;

		for (; k < s->ntrailers && k < 8; k++) {
			size_t nl = strlen(t), vl = strlen(t + nl + 1);

			nv[k] = (nghttp2_nv){(uint8_t *)t, (uint8_t *)t + nl + 1, nl, vl,
					     NGHTTP2_NV_FLAG_NONE};
			t += nl + vl + 2;
		}
		*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(ng, id, nv, (size_t)k))
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
	}
	return (ssize_t)n;
}

/* ---------------- the interface ---------------- */

struct h2 *h2_new(h2_request_fn fn, void *ctx)
{
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, ECHO_H2_MAX_STREAMS},
	};
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	struct h2 *h = calloc(1, sizeof(*h));
	int rc;

	if (!h || nghttp2_session_callbacks_new(&cb))
		goto fail;
	if (nghttp2_option_new(&opt)) {
		nghttp2_session_callbacks_del(cb);
		goto fail;
	}
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	h->fn = fn;
	h->ctx = ctx;
	rc = nghttp2_session_server_new2(&h->ng, cb, h, opt);
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (rc || nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])))
		goto fail;
	return h;
fail:
	h2_free(h);
	return NULL;
}

void h2_free(struct h2 *h)
{
	if (!h)
		return;
	nghttp2_session_del(h->ng); /* calls no stream-close callbacks */
	h->ng = NULL;
	while (h->streams)
		stream_free(h->streams);
	free(h);
}

static int b64url_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

/* base64url without padding (RFC 7540 3.2.1); padding and the plain alphabet are accepted. */
static int b64url_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0;

	while (n && s[n - 1] == '=')
		n--;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_val(s[i]);

		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (bits >= 6) /* one lone character: not a length base64 produces */
		return -1;
	*outlen = o;
	return 0;
}

static bool stream_copy_request(struct h2_stream *s, const struct h2_request *rq)
{
	static const char *const pseudo[] = {":method", ":scheme", ":authority", ":path"};
	const struct h2_str pv[] = {rq->method, rq->scheme, rq->authority, rq->path};

	for (int i = 0; i < 4; i++)
		if (pv[i].n && !stream_field(s, pseudo[i], strlen(pseudo[i]), pv[i].p, pv[i].n))
			return false;
	for (int i = 0; i < rq->nfields; i++)
		if (!stream_field(s, rq->fields[i].name.p, rq->fields[i].name.n,
				  rq->fields[i].value.p, rq->fields[i].value.n))
			return false;
	return stream_data(s, (const uint8_t *)rq->body, rq->blen);
}

int h2_upgrade(struct h2 *h, const char *settings, size_t n, const struct h2_request *rq)
{
	uint8_t payload[H2_SETTINGS_MAX];
	size_t plen = 0;
	struct h2_stream *s;
	bool head = rq->method.n == 4 && !memcmp(rq->method.p, "HEAD", 4);

	if (b64url_decode(settings, n, payload, sizeof(payload), &plen) || plen % 6)
		return -1;
	s = stream_new(h, 1);
	if (!s)
		return -1;
	/* nothing is queued to send before this succeeds: after a failure the caller frees the
	 * session and answers on HTTP/1.1 */
	if (!stream_copy_request(s, rq) ||
	    nghttp2_session_upgrade2(h->ng, payload, plen, head, NULL)) {
		stream_free(s);
		return -1;
	}
	nghttp2_session_set_stream_user_data(h->ng, 1, s);
	stream_ready(s);
	return 0;
}

int h2_recv(struct h2 *h, const void *p, size_t n)
{
	ssize_t rc = nghttp2_session_mem_recv(h->ng, p, n);

	return rc < 0 ? -1 : 0;
}

ssize_t h2_send(struct h2 *h, const uint8_t **p)
{
	ssize_t n;

	dispatch_queued(h); /* sending made room */
	n = nghttp2_session_mem_send(h->ng, p);
	return n < 0 ? -1 : n;
}

int h2_respond(struct h2 *h, int32_t id, const struct h2_answer *a)
{
	struct h2_stream *s = stream_of(h, id);
	nghttp2_data_provider prd;
	nghttp2_nv nv[16];
	size_t nnv = 0;

	if (!s || s->answered)
		return 0;
	s->answered = true;
	s->held = false;
	for (int i = 0; i < a->nfields && nnv < 16; i++)
		nv[nnv++] =
		    (nghttp2_nv){(uint8_t *)a->fields[i].name.p, (uint8_t *)a->fields[i].value.p,
				 a->fields[i].name.n, a->fields[i].value.n, NGHTTP2_NV_FLAG_NONE};
	if (a->blen) {
		s->out = malloc(a->blen);
		if (!s->out)
			return -1;
		memcpy(s->out, a->body, a->blen);
		s->olen = a->blen;
		h->answers += a->blen;
	}
	for (int i = 0; i < a->ntrailers && i < 8; i++) {
		const struct h2_field *t = &a->trailers[i];

		if (!grow(&s->tbuf, &s->tcap, s->tlen + t->name.n + t->value.n + 2))
			return -1;
		memcpy(s->tbuf + s->tlen, t->name.p, t->name.n);
		s->tbuf[s->tlen + t->name.n] = 0;
		s->tlen += t->name.n + 1;
		memcpy(s->tbuf + s->tlen, t->value.p, t->value.n);
		s->tbuf[s->tlen + t->value.n] = 0;
		s->tlen += t->value.n + 1;
		s->ntrailers++;
	}
	prd.source.ptr = s;
	prd.read_callback = read_body;
	return nghttp2_submit_response(h->ng, id, nv, nnv, s->olen || s->ntrailers ? &prd : NULL)
		   ? -1
		   : 0;
}

int64_t h2_due(const struct h2 *h)
{
	int64_t due = 0;

	for (const struct h2_stream *s = h->streams; s; s = s->next)
		if (s->held && (!due || s->due < due))
			due = s->due;
	return due;
}

void h2_timer(struct h2 *h, int64_t now)
{
	/* fn only queues answers: no stream is freed while this walks the list */
	for (struct h2_stream *s = h->streams; s; s = s->next)
		if (s->held && s->due <= now)
			stream_dispatch(s, true);
}

bool h2_busy(const struct h2 *h)
{
	for (const struct h2_stream *s = h->streams; s; s = s->next)
		if (s->held || (s->complete && !s->dispatched))
			return true;
	return nghttp2_session_want_write(h->ng);
}

bool h2_done(const struct h2 *h)
{
	return !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng);
}
