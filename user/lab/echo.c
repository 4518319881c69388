// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * echo.c: the lab's built-in echo server (see echo.h). `bpfmesh lab` runs echo_run() in each
 * pod's network namespace instead of the pod's image, so this replaces httpbin, http-echo and
 * nginx alike: it answers httpbin's common endpoints plus the pod's identity, and a one-line
 * identity reply on UDP. The same endpoints answer on HTTP/2 (prior knowledge, or Upgrade: h2c
 * on HTTP/1.1), whose streams echo_h2.c keeps, and two gRPC methods over it (see "gRPC").
 *
 * One thread, one epoll loop: a lab runs many pods on one machine, and /delay/N must not hold
 * up anything else, so every connection is a small state machine and timers are deadlines the
 * loop sleeps towards. Every buffer has a hard limit (echo.h) so a misbehaving client in a test
 * cannot make the lab run out of memory.
 */
#include "echo.h"
#include "echo_h2.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <curl/curl.h>

/* Stop parsing pipelined requests while this much output is unsent: the client must read. */
#define ECHO_OUT_HIGH (1024 * 1024)
/* Input kept per connection: a full request, with room for chunked framing overhead. */
#define ECHO_IN_CAP (ECHO_MAX_HEADER + 2 * ECHO_MAX_BODY + 4096)
/* After "Connection: close" we half-close and drain for this long before close(), so unread
 * request bytes don't make the kernel send an RST that destroys the response in flight. */
#define ECHO_LINGER_MS	    2000
#define ECHO_READ_CHUNK	    16384
#define ECHO_EVENTS	    64
#define ECHO_ACCEPT_BURST   64 /* per wakeup, so one busy listener can't starve the others */
#define ECHO_UDP_BURST	    64
#define ECHO_UDP_MAX	    65536
#define ECHO_JSON_DEPTH	    8
#define ECHO_CHUNK_LINE_MAX 1024

/* ---------------- growable byte buffer ---------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom; /* an append failed; the content is incomplete */
};

static bool sb_reserve(struct sbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->len + more <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void sb_add(struct sbuf *b, const void *s, size_t n)
{
	if (!n || !sb_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !sb_reserve(b, (size_t)n + 1))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void sb_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---------------- pretty JSON writer ---------------- */

/*
 * Output looks like Python's json.dumps(indent=2): one member per line, two spaces per level,
 * so a nested string lands on a line of its own and `grep VERSION` prints just that line.
 */
struct jw {
	struct sbuf *b;
	int depth;
	bool first[ECHO_JSON_DEPTH + 1];
};

static void jw_newline(struct jw *w)
{
	sb_add(w->b, "\n", 1);
	for (int i = 0; i < w->depth; i++)
		sb_add(w->b, "  ", 2);
}

static void jw_item(struct jw *w)
{
	if (!w->first[w->depth])
		sb_add(w->b, ",", 1);
	w->first[w->depth] = false;
	jw_newline(w);
}

static void jw_open(struct jw *w, char c)
{
	sb_add(w->b, &c, 1);
	if (w->depth < ECHO_JSON_DEPTH)
		w->depth++;
	w->first[w->depth] = true;
}

static void jw_close(struct jw *w, char c)
{
	bool empty = w->first[w->depth];

	if (w->depth > 0)
		w->depth--;
	if (!empty)
		jw_newline(w);
	sb_add(w->b, &c, 1);
}

/* Length of the valid UTF-8 sequence at p, or 0 (overlong, surrogate, > U+10FFFF, cut). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned int c = p[0], cp, min;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string. Request bytes are arbitrary, and JSON must be UTF-8: invalid bytes become
 * U+FFFD rather than producing a document clients can't parse. */
static void jw_str(struct jw *w, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	sb_add(w->b, "\"", 1);
	while (i < n) {
		unsigned char ch = u[i];
		size_t l;

		switch (ch) {
		case '"':
			sb_add(w->b, "\\\"", 2);
			break;
		case '\\':
			sb_add(w->b, "\\\\", 2);
			break;
		case '\n':
			sb_add(w->b, "\\n", 2);
			break;
		case '\r':
			sb_add(w->b, "\\r", 2);
			break;
		case '\t':
			sb_add(w->b, "\\t", 2);
			break;
		case '\b':
			sb_add(w->b, "\\b", 2);
			break;
		case '\f':
			sb_add(w->b, "\\f", 2);
			break;
		default:
			if (ch < 0x20 || ch == 0x7f) {
				sb_printf(w->b, "\\u%04x", ch);
				break;
			}
			l = utf8_len(u + i, n - i);
			if (!l) {
				sb_add(w->b, "\\ufffd", 6);
				break;
			}
			sb_add(w->b, u + i, l);
			i += l;
			continue;
		}
		i++;
	}
	sb_add(w->b, "\"", 1);
}

static void jw_key(struct jw *w, const char *k)
{
	jw_item(w);
	jw_str(w, k, strlen(k));
	sb_add(w->b, ": ", 2);
}

/* "key": "value", or null when the value is absent. */
static void jw_kstr(struct jw *w, const char *k, const char *v)
{
	jw_key(w, k);
	if (v)
		jw_str(w, v, strlen(v));
	else
		sb_puts(w->b, "null");
}

/* A string map in the order given (labels and env are maps already). */
static void jw_kvlist(struct jw *w, const char *k, const struct kvlist *l)
{
	jw_key(w, k);
	jw_open(w, '{');
	for (int i = 0; i < l->n; i++) {
		const char *key = l->v[i].key ? l->v[i].key : "";

		jw_item(w);
		jw_str(w, key, strlen(key));
		sb_add(w->b, ": ", 2);
		if (l->v[i].val)
			jw_str(w, l->v[i].val, strlen(l->v[i].val));
		else
			sb_puts(w->b, "null");
	}
	jw_close(w, '}');
}

/* ---------------- multimaps: query args, form fields, headers ---------------- */

struct span {
	const char *p;
	size_t n;
};

struct field {
	struct span k, v;
	int idx; /* arrival order, so sorting is stable */
};

static bool span_eq(struct span a, const char *s)
{
	size_t n = strlen(s);

	return a.n == n && memcmp(a.p, s, n) == 0;
}

static bool span_ieq(struct span a, const char *s)
{
	size_t n = strlen(s);

	return a.n == n && strncasecmp(a.p, s, n) == 0;
}

static int span_cmp(struct span a, struct span b, bool ci)
{
	size_t n = a.n < b.n ? a.n : b.n;
	int r = ci ? strncasecmp(a.p, b.p, n) : memcmp(a.p, b.p, n);

	if (r)
		return r;
	return a.n < b.n ? -1 : a.n > b.n;
}

static int field_cmp_cs(const void *x, const void *y)
{
	const struct field *a = x, *b = y;
	int r = span_cmp(a->k, b->k, false);

	return r ? r : a->idx - b->idx;
}

static int field_cmp_ci(const void *x, const void *y)
{
	const struct field *a = x, *b = y;
	int r = span_cmp(a->k, b->k, true);

	return r ? r : a->idx - b->idx;
}

/*
 * Keys sorted like httpbin (Flask sorts keys). A repeated query/form key becomes an array, as
 * httpbin does; repeated headers (names compared without case) are joined with "," the way
 * HTTP allows a list-valued field to be folded. Sorts f in place.
 */
static void jw_fields(struct jw *w, const char *k, struct field *f, int n, bool headers)
{
	jw_key(w, k);
	jw_open(w, '{');
	if (n > 1)
		qsort(f, (size_t)n, sizeof(*f), headers ? field_cmp_ci : field_cmp_cs);
	for (int i = 0; i < n;) {
		int j = i + 1;

		while (j < n && span_cmp(f[i].k, f[j].k, headers) == 0)
			j++;
		jw_item(w);
		jw_str(w, f[i].k.p, f[i].k.n);
		sb_add(w->b, ": ", 2);
		if (j - i == 1) {
			jw_str(w, f[i].v.p, f[i].v.n);
		} else if (headers) {
			struct sbuf joined = {0};

			for (int m = i; m < j; m++) {
				if (m > i)
					sb_add(&joined, ",", 1);
				sb_add(&joined, f[m].v.p, f[m].v.n);
			}
			jw_str(w, joined.p ? joined.p : "", joined.len);
			w->b->oom |= joined.oom;
			sb_free(&joined);
		} else {
			jw_open(w, '[');
			for (int m = i; m < j; m++) {
				jw_item(w);
				jw_str(w, f[m].v.p, f[m].v.n);
			}
			jw_close(w, ']');
		}
		i = j;
	}
	jw_close(w, '}');
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode in place ("+" is a space in query strings and forms); returns the new length.
 * A malformed escape is kept literally, as browsers and httpbin do. */
static size_t pct_decode(char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			s[o++] = ' ';
		} else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
			   hexval(s[i + 2]) >= 0) {
			s[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else {
			s[o++] = s[i];
		}
	}
	return o;
}

/*
 * Split "a=1&b=x%20y" into fields decoded in *copy (a heap copy the caller frees), since
 * decoding only ever shrinks a string and so can be done in place. Returns the field count,
 * or -1 on allocation failure.
 */
static int form_parse(const char *s, size_t n, char **copy, struct field **out)
{
	struct field *f;
	size_t cnt = 1;
	char *c;
	int nf = 0;

	*copy = NULL;
	*out = NULL;
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		cnt += s[i] == '&';
	c = malloc(n);
	f = calloc(cnt, sizeof(*f));
	if (!c || !f) {
		free(c);
		free(f);
		return -1;
	}
	memcpy(c, s, n);
	for (size_t i = 0; i < n;) {
		char *seg = c + i, *amp = memchr(seg, '&', n - i), *eq;
		size_t sl = amp ? (size_t)(amp - seg) : n - i;

		i += sl + 1;
		if (!sl)
			continue;
		eq = memchr(seg, '=', sl);
		f[nf].k.p = seg;
		f[nf].k.n = pct_decode(seg, eq ? (size_t)(eq - seg) : sl);
		if (eq) {
			f[nf].v.p = eq + 1;
			f[nf].v.n = pct_decode(eq + 1, sl - (size_t)(eq + 1 - seg));
		} else {
			f[nf].v.p = seg + sl;
			f[nf].v.n = 0;
		}
		f[nf].idx = nf;
		nf++;
	}
	*copy = c;
	*out = f;
	return nf;
}

/* ---------------- HTTP request parsing ---------------- */

struct req {
	struct span method, target, path, query;
	int minor; /* HTTP/1.<minor> */
	int nhdrs;
	struct span host, ctype;
	const char *body;
	size_t blen;
	char *body_owned;  /* decoded chunked body; caller frees */
	size_t total;	   /* bytes of the buffer this request occupies */
	bool headers_done; /* set even when the body is still incomplete */
	bool expect_continue;
	bool keep_alive;
	bool h2;			     /* came over HTTP/2 (echo_h2.c) */
	struct field hdrs[ECHO_MAX_HEADERS]; /* last: parse_request zeroes everything before it */
};

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool span_is_token(struct span s)
{
	if (!s.n)
		return false;
	for (size_t i = 0; i < s.n; i++)
		if (!is_tchar((unsigned char)s.p[i]))
			return false;
	return true;
}

/* Is the comma-separated list value v carrying token tok (case-insensitive)? */
static bool list_has(struct span v, const char *tok)
{
	size_t i = 0;

	while (i < v.n) {
		size_t s, e;

		while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
			i++;
		s = i;
		while (i < v.n && v.p[i] != ',')
			i++;
		e = i;
		while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t'))
			e--;
		if (e > s && span_ieq((struct span){v.p + s, e - s}, tok))
			return true;
	}
	return false;
}

/*
 * Chunked body at p[0..n): 1 complete (*used bytes, *blen decoded, copied to out if non-NULL),
 * 0 incomplete, -1 invalid (*status set). Trailer fields are skipped.
 */
static int chunked_scan(const char *p, size_t n, size_t *used, size_t *blen, char *out, int *status)
{
	size_t off = 0, total = 0;
	const char *nl;

	for (;;) {
		size_t ll, sz = 0, i = 0;

		nl = memchr(p + off, '\n', n - off);
		if (!nl) {
			*status = 400;
			return n - off > ECHO_CHUNK_LINE_MAX ? -1 : 0;
		}
		ll = (size_t)(nl - (p + off));
		for (; i < ll && hexval(p[off + i]) >= 0; i++) {
			sz = sz * 16 + (size_t)hexval(p[off + i]);
			if (sz > ECHO_MAX_BODY) {
				*status = 413;
				return -1;
			}
		}
		if (!i || (i < ll && p[off + i] != ';' && !(p[off + i] == '\r' && i + 1 == ll))) {
			*status = 400;
			return -1;
		}
		off += ll + 1;
		if (!sz)
			break;
		if (total + sz > ECHO_MAX_BODY) {
			*status = 413;
			return -1;
		}
		if (n - off < sz + 1)
			return 0;
		if (out)
			memcpy(out + total, p + off, sz);
		total += sz;
		off += sz;
		if (p[off] == '\r') {
			if (n - off < 2)
				return 0;
			if (p[off + 1] != '\n') {
				*status = 400;
				return -1;
			}
			off += 2;
		} else if (p[off] == '\n') {
			off++;
		} else {
			*status = 400;
			return -1;
		}
	}
	for (;;) {
		size_t ll;

		nl = memchr(p + off, '\n', n - off);
		if (!nl) {
			*status = 431;
			return n - off > ECHO_MAX_HEADER ? -1 : 0;
		}
		ll = (size_t)(nl - (p + off));
		if (ll && p[off + ll - 1] == '\r')
			ll--;
		off = (size_t)(nl - p) + 1;
		if (!ll)
			break;
	}
	*used = off;
	*blen = total;
	return 1;
}

/* r->target into r->path and r->query: origin-form "/p?q", absolute-form "http://h/p?q"
 * (proxies), or "*". -1 for anything else. */
static int split_target(struct req *r)
{
	const char *t = r->target.p, *te = t + r->target.n, *q;

	if (!r->target.n)
		return -1;
	if (*t != '/') {
		const char *s = NULL;

		if (r->target.n > 7 && !strncasecmp(t, "http://", 7))
			s = t + 7;
		else if (r->target.n > 8 && !strncasecmp(t, "https://", 8))
			s = t + 8;
		if (s) {
			t = memchr(s, '/', (size_t)(te - s));
			if (!t)
				t = te;
		} else if (!span_eq(r->target, "*")) {
			return -1;
		}
	}
	q = t;
	while (q < te && *q != '?' && *q != '#')
		q++;
	r->path = (struct span){t, (size_t)(q - t)};
	if (q < te && *q == '?') {
		const char *h = memchr(q, '#', (size_t)(te - q));

		r->query = (struct span){q + 1, (size_t)((h ? h : te) - q - 1)};
	}
	return 0;
}

static int parse_request_line(struct req *r, const char *l, size_t ll, int *status)
{
	const char *sp1 = memchr(l, ' ', ll), *sp2, *v;
	size_t vl;

	*status = 400;
	if (!sp1)
		return -1;
	sp2 = memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - l));
	if (!sp2)
		return -1;
	r->method = (struct span){l, (size_t)(sp1 - l)};
	r->target = (struct span){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
	v = sp2 + 1;
	vl = ll - (size_t)(v - l);
	if (!span_is_token(r->method) || !r->target.n)
		return -1;
	for (size_t i = 0; i < r->target.n; i++)
		if ((unsigned char)r->target.p[i] <= ' ' || r->target.p[i] == 0x7f)
			return -1;
	if (vl != 8 || memcmp(v, "HTTP/", 5) || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
	    v[7] < '0' || v[7] > '9')
		return -1;
	if (v[5] != '1') {
		*status = 505;
		return -1;
	}
	r->minor = v[7] - '0';
	return split_target(r);
}

/*
 * One request at the start of buf: 1 complete (r->total bytes), 0 need more bytes, -1 invalid
 * (*status is the code to answer before closing). Header spans point into buf.
 */
static int parse_request(const char *buf, size_t len, struct req *r, int *status)
{
	const char *end = buf + len, *l = buf, *nl;
	bool conn_close = false, conn_ka = false, chunked = false, has_cl = false;
	unsigned long long cl = 0;
	size_t hlen;
	int line = 0;

	memset(r, 0, offsetof(struct req, hdrs));
	if (!len)
		return 0; /* buf may be NULL: the buffer is dropped between requests */

	for (;; line++) {
		size_t ll;

		nl = memchr(l, '\n', (size_t)(end - l));
		if (!nl || (size_t)(nl + 1 - buf) > ECHO_MAX_HEADER) {
			*status = 431;
			return len > ECHO_MAX_HEADER ? -1 : 0;
		}
		ll = (size_t)(nl - l);
		if (ll && l[ll - 1] == '\r')
			ll--;
		if (!line) {
			if (parse_request_line(r, l, ll, status))
				return -1;
		} else if (!ll) {
			l = nl + 1;
			break;
		} else {
			const char *colon = memchr(l, ':', ll), *v, *ve;
			struct field *h;

			*status = 400;
			if (!colon)
				return -1;
			if (r->nhdrs == ECHO_MAX_HEADERS) {
				*status = 431;
				return -1;
			}
			h = &r->hdrs[r->nhdrs];
			h->k = (struct span){l, (size_t)(colon - l)};
			/* obs-fold and whitespace before the colon are smuggling vectors: refuse */
			if (!span_is_token(h->k))
				return -1;
			v = colon + 1;
			ve = l + ll;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			h->v = (struct span){v, (size_t)(ve - v)};
			h->idx = r->nhdrs++;
		}
		l = nl + 1;
	}
	hlen = (size_t)(l - buf);

	for (int i = 0; i < r->nhdrs; i++) {
		struct span k = r->hdrs[i].k, v = r->hdrs[i].v;

		if (span_ieq(k, "content-length")) {
			unsigned long long x = 0;

			if (!v.n || v.n > 18)
				goto bad;
			for (size_t j = 0; j < v.n; j++) {
				if (v.p[j] < '0' || v.p[j] > '9')
					goto bad;
				x = x * 10 + (unsigned)(v.p[j] - '0');
			}
			if (has_cl && x != cl)
				goto bad;
			has_cl = true;
			cl = x;
		} else if (span_ieq(k, "transfer-encoding")) {
			if (!span_ieq(v, "chunked")) {
				*status = 501; /* no other coding is implemented */
				return -1;
			}
			chunked = true;
		} else if (span_ieq(k, "connection")) {
			conn_close |= list_has(v, "close");
			conn_ka |= list_has(v, "keep-alive");
		} else if (span_ieq(k, "expect")) {
			r->expect_continue = span_ieq(v, "100-continue");
		} else if (span_ieq(k, "host")) {
			r->host = v;
		} else if (span_ieq(k, "content-type")) {
			r->ctype = v;
		}
	}
	if (chunked && has_cl)
		goto bad; /* RFC 9112 6.1: a request smuggling signal */
	r->keep_alive = r->minor >= 1 ? !conn_close : conn_ka && !conn_close;
	r->headers_done = true;

	if (chunked) {
		size_t used = 0, blen = 0;
		int rc = chunked_scan(l, (size_t)(end - l), &used, &blen, NULL, status);

		if (rc <= 0)
			return rc;
		r->body_owned = malloc(blen + 1);
		if (!r->body_owned) {
			*status = 500;
			return -1;
		}
		chunked_scan(l, (size_t)(end - l), &used, &blen, r->body_owned, status);
		r->body = r->body_owned;
		r->blen = blen;
		r->total = hlen + used;
		return 1;
	}
	if (cl > ECHO_MAX_BODY) {
		*status = 413;
		return -1;
	}
	if ((size_t)(end - l) < cl)
		return 0;
	r->body = l;
	r->blen = (size_t)cl;
	r->total = hlen + (size_t)cl;
	return 1;
bad:
	*status = 400;
	return -1;
}

/* ---------------- server state ---------------- */

/* An ECHO_CALL upstream GET, made on a thread of its own (see ECHO_CALL below). */
struct echo_call {
	uint64_t conn_id;
	int wfd;
	char *url;
	struct curl_slist *hdrs;
	struct sbuf body;
	long status; /* 0: no answer */
	char err[CURL_ERROR_SIZE];
};

enum ev_kind { EV_TCP, EV_UDP, EV_SIG, EV_CONN, EV_CALL };

struct lsock {
	enum ev_kind kind; /* first member: epoll data points at it */
	int fd;
	int port;
};

struct conn {
	enum ev_kind kind;
	int fd;
	int idx; /* position in srv.conns */
	struct srv *srv;
	char peer[INET6_ADDRSTRLEN];
	char local[INET6_ADDRSTRLEN + 8]; /* host:port, for "url" when Host is absent */
	char *in;
	size_t in_len, in_cap;
	struct sbuf out;
	size_t out_off;
	uint32_t events;   /* epoll mask now registered */
	int64_t active_ms; /* last progress, for the idle timeout */
	int64_t delay_due, linger_due;
	bool delay_armed;   /* a /delay request heads the buffer; answer at delay_due */
	bool delay_fired;   /* its delay is over: answer it now */
	bool continue_sent; /* "100 Continue" already sent for the request being received */
	bool close_after;   /* no more requests: close once the output is sent */
	bool backlogged;    /* parsing stopped at ECHO_OUT_HIGH */
	bool peer_eof;
	bool lingering;
	bool dead;	   /* beyond saving (an HTTP/2 connection error): close now */
	unsigned int nreq; /* HTTP/1.1 requests answered; the HTTP/2 preface only comes first */
	struct h2 *h2;	   /* the HTTP/2 session, once the connection speaks it (echo_h2.c) */
	int32_t stream;	   /* the HTTP/2 stream being answered now; 0 while on HTTP/1.1 */
	uint64_t id;	   /* unique in the server: a finished ECHO_CALL finds its connection */
	/* ECHO_CALL: the request heading the buffer waits for its upstream GET (call_pending),
	 * then is parsed again and answered with it (call_done) */
	bool call_pending, call_done;
	struct echo_call *call;
};

struct srv {
	const struct echo_conf *conf;
	const char *version;  /* env VERSION or "unknown" */
	int fail_pct;	      /* env ECHO_FAIL_PERCENT: that share of requests is answered 500 */
	int64_t delay_ms;     /* env ECHO_DELAY_MS: added before every answer */
	const char *call_url; /* env ECHO_CALL: GET first, forwarding the trace headers */
	char *banner;	      /* env ECHO_BANNER, with CRLF: sent on every accepted connection */
	int call_pipe[2];     /* finished calls (struct echo_call *) from their threads */
	enum ev_kind call_kind;
	uint64_t next_id;
	uint64_t nrouted;     /* requests answered, for the failure share */
	char *pod_hdr;	      /* pod name safe to put in a header */
	struct sbuf identity; /* what GET / answers, without the newline (gRPC Echo says it too) */
	struct sbuf udp_reply, busy;
	int ep, sfd, spare_fd;
	enum ev_kind sig_kind; /* epoll data for the signalfd */
	struct lsock *ls;
	int nls;
	struct conn *conns[ECHO_MAX_CONNS];
	int nconns;
	bool stop;
	unsigned char udp_buf[ECHO_UDP_MAX];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *kv_find(const struct kvlist *l, const char *key)
{
	for (int i = 0; i < l->n; i++)
		if (l->v[i].key && !strcmp(l->v[i].key, key))
			return l->v[i].val;
	return NULL;
}

/* A whole-number env value in [0, max] (for pipelines rehearsing a bad release); anything else
 * is 0 with a line on stderr, which the lab keeps in the pod's log. */
static int64_t env_int(const struct echo_conf *cf, const char *key, int64_t max)
{
	const char *v = kv_find(&cf->env, key);
	char *end;
	long long n;

	if (!v || !*v)
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *end || n < 0 || n > max) {
		fprintf(stderr, "echo: %s=%s: want a whole number from 0 to %lld; ignored\n", key,
			v, (long long)max);
		return 0;
	}
	return n;
}

static const char *reason(int code)
{
	static const struct {
		int code;
		const char *text;
	} t[] = {
	    {100, "Continue"},
	    {200, "OK"},
	    {201, "Created"},
	    {202, "Accepted"},
	    {203, "Non-Authoritative Information"},
	    {204, "No Content"},
	    {205, "Reset Content"},
	    {206, "Partial Content"},
	    {300, "Multiple Choices"},
	    {301, "Moved Permanently"},
	    {302, "Found"},
	    {303, "See Other"},
	    {304, "Not Modified"},
	    {307, "Temporary Redirect"},
	    {308, "Permanent Redirect"},
	    {400, "Bad Request"},
	    {401, "Unauthorized"},
	    {402, "Payment Required"},
	    {403, "Forbidden"},
	    {404, "Not Found"},
	    {405, "Method Not Allowed"},
	    {406, "Not Acceptable"},
	    {408, "Request Timeout"},
	    {409, "Conflict"},
	    {410, "Gone"},
	    {411, "Length Required"},
	    {412, "Precondition Failed"},
	    {413, "Content Too Large"},
	    {414, "URI Too Long"},
	    {415, "Unsupported Media Type"},
	    {416, "Range Not Satisfiable"},
	    {417, "Expectation Failed"},
	    {418, "I'm a teapot"},
	    {421, "Misdirected Request"},
	    {422, "Unprocessable Content"},
	    {425, "Too Early"},
	    {426, "Upgrade Required"},
	    {428, "Precondition Required"},
	    {429, "Too Many Requests"},
	    {431, "Request Header Fields Too Large"},
	    {451, "Unavailable For Legal Reasons"},
	    {500, "Internal Server Error"},
	    {501, "Not Implemented"},
	    {502, "Bad Gateway"},
	    {503, "Service Unavailable"},
	    {504, "Gateway Timeout"},
	    {505, "HTTP Version Not Supported"},
	    {507, "Insufficient Storage"},
	    {511, "Network Authentication Required"},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].code == code)
			return t[i].text;
	return "Unknown";
}

/* ---------------- responses ---------------- */

static void http_date(char *out, size_t n)
{
	struct tm tm;
	time_t t = time(NULL);

	gmtime_r(&t, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static struct h2_field h2f(const char *name, const char *value)
{
	return (struct h2_field){{name, strlen(name)}, {value, strlen(value)}};
}

/* The answer respond() writes, as HTTP/2 fields and data on the stream c->stream. */
static void respond_h2(struct srv *s, struct conn *c, int code, const char *ctype, const char *body,
		       size_t blen, bool head, const char *allow)
{
	bool bodyless = code == 204 || code == 304;
	char st[16], len[24], date[64];
	struct h2_field f[8];
	struct h2_answer a = {.fields = f};

	snprintf(st, sizeof(st), "%d", code);
	snprintf(len, sizeof(len), "%zu", blen);
	http_date(date, sizeof(date));
	f[a.nfields++] = h2f(":status", st);
	if (!bodyless) {
		f[a.nfields++] = h2f("content-type", ctype);
		f[a.nfields++] = h2f("content-length", len);
	}
	f[a.nfields++] = h2f("x-bpfmesh-pod", s->pod_hdr);
	f[a.nfields++] = h2f("date", date);
	f[a.nfields++] = h2f("server", "bpfmesh-echo");
	if (allow)
		f[a.nfields++] = h2f("allow", allow);
	if (!head && !bodyless) {
		a.body = body;
		a.blen = blen;
	}
	if (h2_respond(c->h2, c->stream, &a) < 0)
		c->out.oom = true;
}

/* allow: the Allow field of a 405, or NULL */
static void respond(struct srv *s, struct conn *c, int code, const char *ctype, const char *body,
		    size_t blen, bool head, const char *allow)
{
	/* 204 and 304 never carry a body, and RFC 9110 forbids Content-Length on 204 (on 304 it
	 * would describe some other representation), so those two go without it. */
	bool bodyless = code == 204 || code == 304;
	struct sbuf *o = &c->out;
	char date[64];

	if (c->stream) {
		respond_h2(s, c, code, ctype, body, blen, head, allow);
		return;
	}
	http_date(date, sizeof(date));
	sb_printf(o, "HTTP/1.1 %d %s\r\n", code, reason(code));
	if (!bodyless)
		sb_printf(o, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, blen);
	sb_printf(o, "X-Bpfmesh-Pod: %s\r\nDate: %s\r\nServer: bpfmesh-echo\r\nConnection: %s\r\n",
		  s->pod_hdr, date, c->close_after ? "close" : "keep-alive");
	if (allow)
		sb_printf(o, "Allow: %s\r\n", allow);
	sb_add(o, "\r\n", 2);
	if (!head && !bodyless)
		sb_add(o, body, blen);
}

static void respond_text(struct srv *s, struct conn *c, int code, bool head, const char *allow,
			 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void respond_text(struct srv *s, struct conn *c, int code, bool head, const char *allow,
			 const char *fmt, ...)
{
	struct sbuf b = {0};
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n >= 0 && sb_reserve(&b, (size_t)n + 1)) {
		va_start(ap, fmt);
		vsnprintf(b.p, (size_t)n + 1, fmt, ap);
		va_end(ap);
		b.len = (size_t)n;
	}
	if (b.oom)
		c->out.oom = true;
	else
		respond(s, c, code, "text/plain; charset=utf-8", b.p ? b.p : "", b.len, head,
			allow);
	sb_free(&b);
}

/* Which members a JSON answer carries, in httpbin's (alphabetical) order, then ours. */
enum {
	J_ARGS = 1 << 0,
	J_DATA = 1 << 1, /* "data" and "form" */
	J_HEADERS = 1 << 2,
	J_METHOD = 1 << 3,
	J_ORIGIN = 1 << 4,
	J_PROTO = 1 << 5, /* "protocol": HTTP/1.0, HTTP/1.1 or HTTP/2.0 */
	J_URL = 1 << 6,
	J_POD = 1 << 7, /* pod, namespace, node, ip, labels, env */
};

static bool ctype_is_form(struct span ct)
{
	const char *f = "application/x-www-form-urlencoded";
	size_t n = strlen(f);

	return ct.n >= n && !strncasecmp(ct.p, f, n) &&
	       (ct.n == n || ct.p[n] == ';' || ct.p[n] == ' ');
}

static void json_answer(struct srv *s, struct conn *c, const struct req *rq, unsigned int what,
			bool head)
{
	const struct echo_conf *cf = s->conf;
	struct field hdrs[ECHO_MAX_HEADERS], *args = NULL, *form = NULL;
	char *args_copy = NULL, *form_copy = NULL;
	int nargs = 0, nform = 0;
	struct sbuf b = {0};
	struct jw w = {.b = &b};

	if (what & J_ARGS)
		nargs = form_parse(rq->query.p, rq->query.n, &args_copy, &args);
	if ((what & J_DATA) && ctype_is_form(rq->ctype))
		nform = form_parse(rq->body, rq->blen, &form_copy, &form);
	if (nargs < 0 || nform < 0) {
		b.oom = true;
		goto out;
	}

	jw_open(&w, '{');
	if (what & J_ARGS)
		jw_fields(&w, "args", args, nargs, false);
	if (what & J_DATA) {
		/* like httpbin: a urlencoded body shows up parsed in "form", not in "data" */
		jw_key(&w, "data");
		if (form_copy || ctype_is_form(rq->ctype))
			jw_str(&w, "", 0);
		else
			jw_str(&w, rq->body ? rq->body : "", rq->blen);
		jw_fields(&w, "form", form, nform, false);
	}
	if (what & J_HEADERS) {
		memcpy(hdrs, rq->hdrs, sizeof(hdrs[0]) * (size_t)rq->nhdrs);
		jw_fields(&w, "headers", hdrs, rq->nhdrs, true);
	}
	if (what & J_METHOD) {
		jw_key(&w, "method");
		jw_str(&w, rq->method.p, rq->method.n);
	}
	if (what & J_ORIGIN)
		jw_kstr(&w, "origin", c->peer);
	if (what & J_PROTO)
		jw_kstr(&w, "protocol", rq->h2 ? "HTTP/2.0" : rq->minor ? "HTTP/1.1" : "HTTP/1.0");
	if (what & J_URL) {
		struct sbuf u = {0};

		if (rq->target.p[0] == '/') {
			sb_puts(&u, "http://");
			if (rq->host.n)
				sb_add(&u, rq->host.p, rq->host.n);
			else
				sb_puts(&u, c->local);
		}
		sb_add(&u, rq->target.p, rq->target.n);
		jw_key(&w, "url");
		jw_str(&w, u.p ? u.p : "", u.len);
		b.oom |= u.oom;
		sb_free(&u);
	}
	if (what & J_POD) {
		jw_kstr(&w, "pod", cf->pod);
		jw_kstr(&w, "namespace", cf->ns);
		jw_kstr(&w, "node", cf->node);
		if (cf->ip)
			jw_kstr(&w, "ip", cf->ip);
		jw_kvlist(&w, "labels", &cf->labels);
		jw_kvlist(&w, "env", &cf->env);
	}
	if (c->call) { /* ECHO_CALL's answer: its JSON as it is, or its text */
		const struct echo_call *k = c->call;
		size_t i = 0;

		while (i < k->body.len && (k->body.p[i] == ' ' || k->body.p[i] == '\n'))
			i++;
		jw_key(&w, "upstream_status");
		sb_printf(w.b, "%ld", k->status);
		jw_key(&w, "upstream");
		if (k->status && i < k->body.len && k->body.p[i] == '{') {
			size_t n = k->body.len;

			while (n > i && (k->body.p[n - 1] == '\n' || k->body.p[n - 1] == ' '))
				n--;
			sb_add(w.b, k->body.p + i, n - i);
		} else if (k->status) {
			jw_str(&w, k->body.p ? k->body.p : "", k->body.len);
		} else {
			jw_str(&w, k->err, strlen(k->err));
		}
	}
	jw_close(&w, '}');
	sb_add(&b, "\n", 1);
out:
	if (b.oom)
		respond_text(s, c, 500, head, NULL, "out of memory\n");
	else
		respond(s, c, 200, "application/json", b.p, b.len, head, NULL);
	sb_free(&b);
	free(args_copy);
	free(args);
	free(form_copy);
	free(form);
}

/* "/delay/N": N seconds (fractions allowed, as httpbin), clamped to ECHO_MAX_DELAY_S.
 * Returns milliseconds, -1 if the path is not /delay/..., -2 if N is not a number. */
static int64_t delay_of(const struct req *r)
{
	const char *p;
	size_t n, i = 0;
	int64_t ms = 0, scale = 100;

	if (r->path.n < 7 || memcmp(r->path.p, "/delay/", 7))
		return -1;
	p = r->path.p + 7;
	n = r->path.n - 7;
	if (!n)
		return -2;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
		if (ms < (int64_t)ECHO_MAX_DELAY_S * 1000)
			ms = ms * 10 + (p[i] - '0') * 1000;
	if (!i && (n < 2 || p[0] != '.'))
		return -2;
	if (i < n && p[i] == '.') {
		for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++, scale /= 10)
			ms += (p[i] - '0') * scale;
	}
	if (i != n)
		return -2;
	return ms > (int64_t)ECHO_MAX_DELAY_S * 1000 ? (int64_t)ECHO_MAX_DELAY_S * 1000 : ms;
}

/* The time to wait before answering r: its /delay/N and ECHO_DELAY_MS. */
static int64_t wait_of(const struct srv *s, const struct req *r)
{
	int64_t ms = delay_of(r);

	return (ms > 0 ? ms : 0) + s->delay_ms;
}

static void route(struct srv *s, struct conn *c, const struct req *r)
{
	bool head = span_eq(r->method, "HEAD");
	bool get = head || span_eq(r->method, "GET");
	struct span p = r->path;
	const char *allow = NULL;

	if (!r->h2)
		c->close_after = !r->keep_alive;
	/* ECHO_FAIL_PERCENT: exactly that share of every 100 requests, spread evenly */
	s->nrouted++;
	if (s->fail_pct && s->nrouted * s->fail_pct / 100 != (s->nrouted - 1) * s->fail_pct / 100) {
		respond_text(s, c, 500, head, NULL, "injected failure (ECHO_FAIL_PERCENT=%d)\n",
			     s->fail_pct);
		return;
	}
	if (span_eq(p, "/")) {
		if (!get) {
			allow = "GET, HEAD";
			goto not_allowed;
		}
		respond_text(s, c, 200, head, NULL, "%s\n", s->identity.p);
	} else if (span_eq(p, "/get")) {
		if (!get) {
			allow = "GET, HEAD";
			goto not_allowed;
		}
		json_answer(s, c, r, J_ARGS | J_HEADERS | J_ORIGIN | J_PROTO | J_URL | J_POD, head);
	} else if (span_eq(p, "/headers") || span_eq(p, "/ip")) {
		if (!get) {
			allow = "GET, HEAD";
			goto not_allowed;
		}
		json_answer(s, c, r, p.n == 3 ? J_ORIGIN : J_HEADERS, head);
	} else if (span_eq(p, "/post")) {
		if (!span_eq(r->method, "POST")) {
			allow = "POST";
			goto not_allowed;
		}
		json_answer(s, c, r,
			    J_ARGS | J_DATA | J_HEADERS | J_ORIGIN | J_PROTO | J_URL | J_POD,
			    false);
	} else if (span_eq(p, "/anything") || (p.n > 10 && !memcmp(p.p, "/anything/", 10))) {
		json_answer(s, c, r,
			    J_ARGS | J_DATA | J_HEADERS | J_METHOD | J_ORIGIN | J_PROTO | J_URL |
				J_POD,
			    head);
	} else if (p.n > 8 && !memcmp(p.p, "/status/", 8)) {
		int code = 0;
		size_t i = 8;

		for (; i < p.n && i < 11 && p.p[i] >= '0' && p.p[i] <= '9'; i++)
			code = code * 10 + (p.p[i] - '0');
		/* 1xx is not a final answer: a client would wait for another status line */
		if (i != p.n || code < 200 || code > 599)
			respond_text(s, c, 400, head, NULL, "invalid status code\n");
		else
			respond_text(s, c, code, head, NULL, "%d %s\n", code, reason(code));
	} else if (delay_of(r) != -1) {
		if (delay_of(r) < 0)
			respond_text(s, c, 400, head, NULL, "invalid delay\n");
		else
			json_answer(
			    s, c, r,
			    J_ARGS | J_DATA | J_HEADERS | J_ORIGIN | J_PROTO | J_URL | J_POD, head);
	} else {
		respond_text(s, c, 404, head, NULL, "404 page not found\n");
	}
	return;
not_allowed:
	respond_text(s, c, 405, head, allow, "method not allowed\n");
}

/* ---------------- gRPC (over HTTP/2 only: it needs trailers) ---------------- */

/*
 * Two methods, their protobuf encoded by hand (it is two strings):
 *
 * /grpc.health.v1.Health/Check answers HealthCheckResponse{status: SERVING} (bytes 08 01),
 * whatever service the request names.
 *
 * /bpfmesh.echo.Echo/Echo is the method of this proto:
 *
 *     syntax = "proto3";
 *     package bpfmesh.echo;
 *     message EchoRequest { string message = 1; }
 *     message EchoResponse { string identity = 1; string message = 2; }
 *     service Echo { rpc Echo(EchoRequest) returns (EchoResponse); }
 *
 * identity is the line GET / answers (without its newline); message is the request's, when it
 * has one. A request header "x-grpc-status: N" (0-16) makes it fail with status N instead, so
 * that retry and abort tests have a gRPC /status/N.
 *
 * Any other method is UNIMPLEMENTED. Failures are trailers-only, as gRPC servers send them:
 * one HEADERS frame with :status 200 and grpc-status. Messages are 5-byte prefixed (a
 * compressed flag, a big-endian length); compression is not supported.
 */
enum {
	GRPC_OK = 0,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_MAX_CODE = 16, /* UNAUTHENTICATED, the last code there is */
};

#define GRPC_HEALTH "/grpc.health.v1.Health/Check"
#define GRPC_ECHO   "/bpfmesh.echo.Echo/Echo"

/* application/grpc, application/grpc+proto, application/grpc;... */
static bool is_grpc(struct span ct)
{
	const char *g = "application/grpc";
	size_t n = strlen(g);

	return ct.n >= n && !strncasecmp(ct.p, g, n) &&
	       (ct.n == n || ct.p[n] == '+' || ct.p[n] == ';');
}

/* A varint at p[*off..n); false when it is cut or longer than 10 bytes. */
static bool pb_varint(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift <= 63 && *off < n; shift += 7) {
		uint8_t b = p[(*off)++];

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/*
 * Field 1 of a message when it is length-delimited (the last one wins, as for any proto3
 * scalar), every other field skipped: 1 found, 0 absent, -1 not a protobuf message.
 */
static int pb_field1(const uint8_t *p, size_t n, struct span *out)
{
	size_t off = 0;
	int found = 0;

	while (off < n) {
		uint64_t key, v;

		if (!pb_varint(p, n, &off, &key) || key >> 3 == 0)
			return -1;
		switch (key & 7) {
		case 0: /* varint */
			if (!pb_varint(p, n, &off, &v))
				return -1;
			continue;
		case 1: /* fixed64 */
			v = 8;
			break;
		case 5: /* fixed32 */
			v = 4;
			break;
		case 2: /* length-delimited */
			if (!pb_varint(p, n, &off, &v))
				return -1;
			if (key >> 3 == 1 && v <= n - off) {
				*out = (struct span){(const char *)p + off, (size_t)v};
				found = 1;
			}
			break;
		default: /* groups (3, 4) are long gone; 6 and 7 do not exist */
			return -1;
		}
		if (v > n - off)
			return -1;
		off += (size_t)v;
	}
	return found;
}

/* Field number f, wire type 2 (string, bytes, message). */
static void pb_bytes(struct sbuf *b, unsigned int f, const char *p, size_t n)
{
	uint8_t v[11];
	size_t k = 0;
	uint64_t x = n;

	v[k++] = (uint8_t)(f << 3 | 2);
	do {
		v[k++] = (uint8_t)((x & 0x7f) | (x > 0x7f ? 0x80 : 0));
		x >>= 7;
	} while (x);
	sb_add(b, v, k);
	sb_add(b, p, n);
}

/* A trailers-only answer: the call ends with code (and msg, percent-encoded as gRPC wants). */
static void grpc_fail(struct srv *s, struct conn *c, int code, const char *msg, struct span arg)
{
	struct sbuf m = {0};
	struct h2_field f[5];
	struct h2_answer a = {.fields = f};
	char st[16];

	sb_puts(&m, msg);
	for (size_t i = 0; i < arg.n; i++) {
		unsigned char ch = (unsigned char)arg.p[i];

		if (ch < 0x20 || ch > 0x7e || ch == '%')
			sb_printf(&m, "%%%02X", ch);
		else
			sb_add(&m, &arg.p[i], 1);
	}
	snprintf(st, sizeof(st), "%d", code);
	f[a.nfields++] = h2f(":status", "200");
	f[a.nfields++] = h2f("content-type", "application/grpc");
	f[a.nfields++] = h2f("x-bpfmesh-pod", s->pod_hdr);
	f[a.nfields++] = h2f("grpc-status", st);
	if (!m.oom)
		f[a.nfields++] = (struct h2_field){{"grpc-message", 12}, {m.p, m.len}};
	if (h2_respond(c->h2, c->stream, &a) < 0)
		c->out.oom = true;
	sb_free(&m);
}

/* One response message, then the trailer grpc-status: 0. */
static void grpc_reply(struct srv *s, struct conn *c, const char *msg, size_t n)
{
	struct h2_field f[3], t[1];
	struct sbuf b = {0};
	uint8_t pre[5] = {0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
	struct h2_answer a = {.fields = f, .trailers = t, .ntrailers = 1};

	sb_add(&b, pre, sizeof(pre));
	sb_add(&b, msg, n);
	f[a.nfields++] = h2f(":status", "200");
	f[a.nfields++] = h2f("content-type", "application/grpc");
	f[a.nfields++] = h2f("x-bpfmesh-pod", s->pod_hdr);
	t[0] = h2f("grpc-status", "0");
	a.body = b.p;
	a.blen = b.len;
	if (b.oom || h2_respond(c->h2, c->stream, &a) < 0)
		c->out.oom = true;
	sb_free(&b);
}

/* x-grpc-status of the request: GRPC_OK when absent, -1 when not a code. */
static int grpc_asked_status(const struct req *r)
{
	for (int i = 0; i < r->nhdrs; i++) {
		struct span v = r->hdrs[i].v;
		int code = 0;

		if (!span_ieq(r->hdrs[i].k, "x-grpc-status"))
			continue;
		if (!v.n || v.n > 2)
			return -1;
		for (size_t j = 0; j < v.n; j++) {
			if (v.p[j] < '0' || v.p[j] > '9')
				return -1;
			code = code * 10 + (v.p[j] - '0');
		}
		return code <= GRPC_MAX_CODE ? code : -1;
	}
	return GRPC_OK;
}

static void grpc_answer(struct srv *s, struct conn *c, const struct req *r)
{
	const uint8_t *b = (const uint8_t *)r->body;
	struct span msg = {0}, none = {0};
	struct sbuf out = {0};
	size_t len;
	int has, code;

	if (span_eq(r->path, GRPC_HEALTH)) {
		grpc_reply(s, c, "\x08\x01", 2);
		return;
	}
	if (!span_eq(r->path, GRPC_ECHO)) {
		grpc_fail(s, c, GRPC_UNIMPLEMENTED, "unknown method ", r->path);
		return;
	}
	code = grpc_asked_status(r);
	if (code < 0) {
		grpc_fail(s, c, GRPC_INVALID_ARGUMENT, "x-grpc-status: want 0-16", none);
		return;
	}
	if (code != GRPC_OK) {
		grpc_fail(s, c, code, "x-grpc-status asked for it", none);
		return;
	}
	/* a unary call: exactly one message */
	len = r->blen >= 5 ? (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4] : 0;
	if (r->blen < 5 || r->blen - 5 != len) {
		grpc_fail(s, c, GRPC_INTERNAL, "want one request message", none);
		return;
	}
	if (b[0]) {
		grpc_fail(s, c, GRPC_UNIMPLEMENTED, "compressed messages are not supported", none);
		return;
	}
	has = pb_field1(b + 5, len, &msg);
	if (has < 0) {
		grpc_fail(s, c, GRPC_INTERNAL, "not an EchoRequest", none);
		return;
	}
	pb_bytes(&out, 1, s->identity.p, s->identity.len);
	if (has)
		pb_bytes(&out, 2, msg.p, msg.n);
	if (out.oom)
		c->out.oom = true;
	else
		grpc_reply(s, c, out.p, out.len);
	sb_free(&out);
}

/* ---------------- ECHO_CALL: an instrumented app's upstream call ---------------- */

/*
 * With env ECHO_CALL=URL every HTTP/1.1 request first GETs URL, as an app instrumented for
 * tracing does: the request's trace context and x-request-id go along (Istio's list of headers
 * to propagate), and the answer is put under "upstream" in the JSON reply. The GET runs on a
 * thread of its own (libcurl, 5 s at most) so the loop never waits; its end comes back through
 * a pipe as the call itself, and the request, left in the buffer as a delayed one is, is
 * parsed again and answered.
 */
#define ECHO_CALL_MAX (256 * 1024)

static const char *const trace_hdrs[] = {"x-request-id",
					 "traceparent",
					 "tracestate",
					 "x-b3-traceid",
					 "x-b3-spanid",
					 "x-b3-parentspanid",
					 "x-b3-sampled",
					 "x-b3-flags",
					 "b3",
					 "x-ot-span-context",
					 "x-cloud-trace-context",
					 NULL};

static int calls_out; /* calls whose thread has not written its end yet (atomic) */

static size_t call_write(char *p, size_t sz, size_t n, void *arg)
{
	struct echo_call *k = arg;

	if (k->body.len + sz * n > ECHO_CALL_MAX)
		return 0;
	sb_add(&k->body, p, sz * n);
	return sz * n;
}

static void *call_thread(void *arg)
{
	struct echo_call *k = arg;
	CURL *h = curl_easy_init();

	if (h) {
		curl_easy_setopt(h, CURLOPT_URL, k->url);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, k->hdrs);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, call_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, k);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, k->err);
		if (curl_easy_perform(h) == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &k->status);
		curl_easy_cleanup(h);
	}
	if (write(k->wfd, &k, sizeof(k)) != sizeof(k)) { /* the pipe is full: give up */
		curl_slist_free_all(k->hdrs);
		sb_free(&k->body);
		free(k->url);
		free(k);
	}
	__atomic_sub_fetch(&calls_out, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void call_free(struct echo_call *k)
{
	if (!k)
		return;
	curl_slist_free_all(k->hdrs);
	sb_free(&k->body);
	free(k->url);
	free(k);
}

/* Start r's upstream GET; false when it cannot (the request is answered without one). */
static bool call_start(struct srv *s, struct conn *c, const struct req *r)
{
	struct echo_call *k = calloc(1, sizeof(*k));
	pthread_attr_t at;
	pthread_t th;
	bool ok = false;

	if (!k || !(k->url = strdup(s->call_url)))
		goto out;
	k->conn_id = c->id;
	k->wfd = s->call_pipe[1];
	for (int i = 0; i < r->nhdrs; i++)
		for (int j = 0; trace_hdrs[j]; j++) {
			char line[1024];

			if (strlen(trace_hdrs[j]) != r->hdrs[i].k.n ||
			    strncasecmp(r->hdrs[i].k.p, trace_hdrs[j], r->hdrs[i].k.n) ||
			    r->hdrs[i].v.n > 900)
				continue;
			snprintf(line, sizeof(line), "%s: %.*s", trace_hdrs[j], (int)r->hdrs[i].v.n,
				 r->hdrs[i].v.p);
			k->hdrs = curl_slist_append(k->hdrs, line);
		}
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	__atomic_add_fetch(&calls_out, 1, __ATOMIC_ACQUIRE);
	ok = pthread_create(&th, &at, call_thread, k) == 0;
	if (!ok)
		__atomic_sub_fetch(&calls_out, 1, __ATOMIC_RELEASE);
	pthread_attr_destroy(&at);
out:
	if (!ok)
		call_free(k);
	return ok;
}

static void conn_step(struct srv *s, struct conn *c);

/* Calls that finished: their requests are answered now. */
static void on_call(struct srv *s)
{
	struct echo_call *k;

	while (read(s->call_pipe[0], &k, sizeof(k)) == sizeof(k)) {
		struct conn *c = NULL;

		for (int i = 0; i < s->nconns && !c; i++)
			if (s->conns[i]->id == k->conn_id)
				c = s->conns[i];
		if (!c || !c->call_pending) {
			call_free(k); /* the client went away meanwhile */
			continue;
		}
		c->call_pending = false;
		c->call_done = true;
		c->call = k;
		conn_step(s, c); /* parse it again, answer, flush (may free c) */
	}
}

/* ---------------- connections ---------------- */

static void conn_close(struct srv *s, struct conn *c)
{
	int last = --s->nconns;

	s->conns[c->idx] = s->conns[last];
	s->conns[c->idx]->idx = c->idx;
	s->conns[last] = NULL;
	close(c->fd); /* also removes it from the epoll set */
	h2_free(c->h2);
	call_free(c->call);
	free(c->in);
	sb_free(&c->out);
	free(c);
}

static void conn_consume(struct conn *c, size_t n)
{
	if (n >= c->in_len) {
		c->in_len = 0;
		/* an idle keep-alive connection shouldn't pin a large request's buffer */
		if (c->in_cap > 4 * ECHO_READ_CHUNK) {
			free(c->in);
			c->in = NULL;
			c->in_cap = 0;
		}
		return;
	}
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}

/* ---------------- HTTP/2 on a connection (streams in echo_h2.c) ---------------- */

/* "content-type" -> "Content-Type": HTTP/2 sends names in lower case; the JSON answers show
 * them as HTTP/1.1 clients spell them, as httpbin does for both. */
static void canon_name(char *d, const char *p, size_t n)
{
	bool up = true;

	for (size_t i = 0; i < n; i++) {
		d[i] = up && p[i] >= 'a' && p[i] <= 'z' ? (char)(p[i] - 'a' + 'A') : p[i];
		up = p[i] == '-';
	}
}

static struct span sp(struct h2_str v)
{
	return (struct span){v.p, v.n};
}

/* echo_h2.c's request callback: a stream's request as a struct req, answered as on HTTP/1.1,
 * or as gRPC when it says so. */
static int64_t h2_on_request(void *ctx, struct h2 *h, const struct h2_request *hr, bool late)
{
	struct conn *c = ctx;
	struct srv *s = c->srv;
	struct req r;
	char *names = NULL;
	size_t nlen = 0, off = 0;
	int64_t ms, due = 0;
	int status = hr->status;

	(void)h;
	memset(&r, 0, offsetof(struct req, hdrs));
	c->stream = hr->stream;
	if (status)
		goto refuse;
	for (int i = 0; i < hr->nfields; i++)
		nlen += hr->fields[i].name.n;
	names = malloc(nlen + 1);
	if (!names) {
		c->out.oom = true;
		goto out;
	}
	r.h2 = true;
	r.keep_alive = true;
	r.method = sp(hr->method);
	r.target = sp(hr->path);
	r.host = sp(hr->authority);
	if (r.host.n)
		r.hdrs[r.nhdrs++] = (struct field){{"Host", 4}, r.host, 0};
	for (int i = 0; i < hr->nfields; i++) {
		struct span k = sp(hr->fields[i].name), v = sp(hr->fields[i].value);

		if (span_ieq(k, "host") && hr->authority.n)
			continue; /* :authority wins, and is shown as Host already */
		if (r.nhdrs == ECHO_MAX_HEADERS) {
			status = 431;
			goto refuse;
		}
		canon_name(names + off, k.p, k.n);
		k.p = names + off;
		off += k.n;
		r.hdrs[r.nhdrs] = (struct field){k, v, r.nhdrs};
		r.nhdrs++;
		if (span_ieq(k, "host"))
			r.host = v;
		else if (span_ieq(k, "content-type"))
			r.ctype = v;
	}
	r.body = hr->body;
	r.blen = hr->blen;
	if (split_target(&r) < 0) {
		status = 400;
		goto refuse;
	}
	if (is_grpc(r.ctype))
		grpc_answer(s, c, &r);
	else if ((ms = wait_of(s, &r)) > 0 && !late)
		due = now_ms() + ms; /* the stream waits, the connection does not */
	else
		route(s, c, &r);
	goto out;
refuse:
	respond_text(s, c, status, false, NULL, "%d %s\n", status, reason(status));
out:
	c->stream = 0;
	free(names);
	return due;
}

/* A connection that opens with the HTTP/2 preface speaks HTTP/2 from its first byte (prior
 * knowledge). false: too few bytes yet to tell. */
static bool conn_sniff(struct conn *c)
{
	size_t n = c->in_len < ECHO_H2_PREFACE_LEN ? c->in_len : ECHO_H2_PREFACE_LEN;

	if (c->h2 || c->nreq || !c->in_len || memcmp(c->in, ECHO_H2_PREFACE, n))
		return true;
	if (n < ECHO_H2_PREFACE_LEN) {
		if (c->peer_eof)
			c->close_after = true;
		return false;
	}
	c->h2 = h2_new(h2_on_request, c);
	if (!c->h2)
		c->dead = true;
	return true;
}

/* RFC 7540 3.2: an HTTP/1.1 request asking for h2c; *settings is its HTTP2-Settings value. */
static bool wants_h2c(const struct req *r, struct span *settings)
{
	bool up = false, conn = false;
	int n = 0;

	if (r->minor != 1)
		return false;
	for (int i = 0; i < r->nhdrs; i++) {
		struct span k = r->hdrs[i].k, v = r->hdrs[i].v;

		if (span_ieq(k, "upgrade")) {
			up |= list_has(v, "h2c");
		} else if (span_ieq(k, "connection")) {
			conn |= list_has(v, "upgrade");
		} else if (span_ieq(k, "http2-settings")) {
			*settings = v;
			n++;
		}
	}
	return up && conn && n == 1;
}

/* Switch c to HTTP/2 with r as stream 1 (answered there): 0, or -1 to answer r on HTTP/1.1. */
static int conn_upgrade(struct conn *c, const struct req *r, struct span settings)
{
	/* hop-by-hop fields (RFC 9110 7.6.1) end with the HTTP/1.1 hop; Host is :authority */
	static const char *const hop[] = {"connection",
					  "upgrade",
					  "http2-settings",
					  "keep-alive",
					  "proxy-connection",
					  "transfer-encoding",
					  "te",
					  "host"};
	const char *end = r->target.p + r->target.n;
	struct h2_field f[ECHO_MAX_HEADERS];
	struct h2_request hr = {
	    .stream = 1,
	    .method = {r->method.p, r->method.n},
	    .path = {r->path.p, (size_t)(end - r->path.p)},
	    .authority = {r->host.p, r->host.n},
	    .scheme = {"http", 4},
	    .fields = f,
	    .body = r->body,
	    .blen = r->blen,
	};
	size_t mark = c->out.len;

	if (!hr.path.n)
		hr.path = (struct h2_str){"/", 1}; /* "http://host" */
	for (int i = 0; i < r->nhdrs; i++) {
		bool skip = false;

		for (size_t j = 0; j < sizeof(hop) / sizeof(hop[0]); j++)
			skip |= span_ieq(r->hdrs[i].k, hop[j]);
		if (!skip)
			f[hr.nfields++] = (struct h2_field){{r->hdrs[i].k.p, r->hdrs[i].k.n},
							    {r->hdrs[i].v.p, r->hdrs[i].v.n}};
	}
	c->h2 = h2_new(h2_on_request, c);
	if (!c->h2)
		return -1;
	/* the 101 goes out before anything the session sends; h2_upgrade only queues frames */
	sb_puts(&c->out, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
			 "Upgrade: h2c\r\n\r\n");
	if (h2_upgrade(c->h2, settings.p, settings.n, &hr) < 0) {
		c->out.len = mark;
		h2_free(c->h2);
		c->h2 = NULL;
		return -1;
	}
	return 0;
}

/* Feed the session what was read and take what it has to send, up to ECHO_OUT_HIGH: a client
 * that does not read stops being read (TCP pushes back). */
static void conn_process_h2(struct conn *c)
{
	if (c->in_len && c->out.len - c->out_off < ECHO_OUT_HIGH) {
		if (h2_recv(c->h2, c->in, c->in_len) < 0) {
			c->dead = true;
			return;
		}
		conn_consume(c, c->in_len);
	}
	while (c->out.len - c->out_off < ECHO_OUT_HIGH && !c->out.oom) {
		const uint8_t *p;
		ssize_t n = h2_send(c->h2, &p);

		if (n < 0) {
			c->dead = true;
			return;
		}
		if (!n)
			break;
		sb_add(&c->out, p, (size_t)n);
	}
	c->backlogged = c->in_len || c->out.len - c->out_off >= ECHO_OUT_HIGH;
	if (h2_done(c->h2) || (c->peer_eof && !h2_busy(c->h2)))
		c->close_after = true;
}

/* ---------------- HTTP/1.1 on a connection ---------------- */

/* Answer every complete request in the input, in order, until one must wait. */
static void conn_process_h1(struct srv *s, struct conn *c)
{
	while (!c->close_after && !c->delay_armed && !c->h2) {
		struct span settings = {0};
		struct req r;
		int status = 0, rc;
		size_t skip = 0;
		int64_t ms;

		if (c->out.len - c->out_off >= ECHO_OUT_HIGH) {
			c->backlogged = true;
			break;
		}
		/* RFC 9112 2.2: ignore empty lines before a request line */
		while (skip < c->in_len && (c->in[skip] == '\r' || c->in[skip] == '\n'))
			skip++;
		conn_consume(c, skip);

		rc = parse_request(c->in, c->in_len, &r, &status);
		if (rc == 0 && c->in_len >= ECHO_IN_CAP) {
			rc = -1;
			status = 413;
		}
		if (rc == 0) {
			/* curl waits up to a second for this before sending a large body */
			if (r.headers_done && r.expect_continue && !c->continue_sent) {
				sb_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
				c->continue_sent = true;
			}
			if (c->peer_eof)
				c->close_after = true;
			break;
		}
		if (rc < 0) {
			c->close_after = true;
			respond_text(s, c, status, false, NULL, "%d %s\n", status, reason(status));
			c->in_len = 0;
			break;
		}
		c->nreq++;
		if (wants_h2c(&r, &settings) && conn_upgrade(c, &r, settings) == 0) {
			/* what follows in the input is the client's HTTP/2 preface */
			free(r.body_owned);
			conn_consume(c, r.total);
			c->continue_sent = false;
			break;
		}
		if (s->call_url && !c->call_done) {
			if (c->call_pending || call_start(s, c, &r)) {
				/* left in the buffer: parsed again when the call is back */
				c->call_pending = true;
				free(r.body_owned);
				break;
			}
		}
		ms = wait_of(s, &r);
		if (ms > 0 && !c->delay_fired) {
			/* left in the buffer: parsed again when the delay is over */
			free(r.body_owned);
			c->delay_armed = true;
			c->delay_due = now_ms() + ms;
			break;
		}
		c->delay_fired = false;
		c->continue_sent = false;
		route(s, c, &r);
		c->call_done = false;
		call_free(c->call);
		c->call = NULL;
		free(r.body_owned);
		conn_consume(c, r.total);
	}
}

static void conn_process(struct srv *s, struct conn *c)
{
	c->backlogged = false;
	if (!conn_sniff(c) || c->dead)
		return;
	if (!c->h2)
		conn_process_h1(s, c);
	if (c->h2 && !c->dead)
		conn_process_h2(c);
}

/* Send what the socket takes. -1: the connection is dead. */
static int conn_flush(struct conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			c->out_off += (size_t)n;
			c->active_ms = now_ms();
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
			c->out.len -= c->out_off;
			c->out_off = 0;
			return 0;
		} else {
			return -1;
		}
	}
	c->out.len = c->out_off = 0;
	if (c->out.cap > 65536)
		sb_free(&c->out);
	return 0;
}

/* Run the connection's state machine after any event; may free c. */
static void conn_step(struct srv *s, struct conn *c)
{
	bool want_in;
	uint32_t ev;

	for (;;) {
		if (!c->lingering)
			conn_process(s, c);
		if (c->out.oom || c->dead || conn_flush(c) < 0) {
			conn_close(s, c);
			return;
		}
		if (!c->backlogged || c->out.len >= ECHO_OUT_HIGH)
			break;
	}
	if (!c->out.len && c->close_after && !c->lingering) {
		if (c->peer_eof || shutdown(c->fd, SHUT_WR) < 0) {
			conn_close(s, c);
			return;
		}
		c->lingering = true;
		c->linger_due = now_ms() + ECHO_LINGER_MS;
		c->in_len = 0;
	}
	/* HTTP/2 input waits in the kernel while the session has more to send than fits */
	want_in = !c->peer_eof && (c->lingering || (!c->close_after && c->in_len < ECHO_IN_CAP &&
						    !(c->h2 && c->backlogged)));
	ev = (want_in ? EPOLLIN : 0) | (c->out.len ? EPOLLOUT : 0);
	if (ev != c->events) {
		struct epoll_event e = {.events = ev, .data.ptr = c};

		if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &e) < 0) {
			conn_close(s, c);
			return;
		}
		c->events = ev;
	}
}

/* One read per wakeup (epoll is level-triggered), so a fast client can't starve the rest.
 * -1: close the connection now. */
static int conn_read(struct conn *c)
{
	ssize_t n;

	if (c->lingering) {
		char junk[4096];

		n = recv(c->fd, junk, sizeof(junk), 0);
		if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
			return 0;
		return -1;
	}
	if (c->in_len >= ECHO_IN_CAP)
		return 0;
	if (c->in_cap - c->in_len < ECHO_READ_CHUNK) {
		size_t cap = c->in_cap ? c->in_cap * 2 : ECHO_READ_CHUNK * 2;
		char *p;

		if (cap > ECHO_IN_CAP)
			cap = ECHO_IN_CAP;
		p = realloc(c->in, cap);
		if (!p)
			return -1;
		c->in = p;
		c->in_cap = cap;
	}
	n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (n > 0) {
		c->in_len += (size_t)n;
		c->active_ms = now_ms();
		return 0;
	}
	if (n == 0) {
		c->peer_eof = true;
		return 0;
	}
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

static void conn_event(struct srv *s, struct conn *c, uint32_t ev)
{
	/* RST, or both directions shut down: nothing more can be said */
	if (ev & (EPOLLERR | EPOLLHUP)) {
		conn_close(s, c);
		return;
	}
	if ((ev & EPOLLIN) && conn_read(c) < 0) {
		conn_close(s, c);
		return;
	}
	conn_step(s, c);
}

static int64_t conn_due(const struct conn *c)
{
	int64_t idle = c->active_ms + ECHO_IDLE_MS, held;

	if (c->delay_armed)
		return c->delay_due;
	if (c->lingering)
		return c->linger_due;
	held = c->h2 ? h2_due(c->h2) : 0;
	return held > 0 && held < idle ? held : idle;
}

static void conn_timer(struct srv *s, struct conn *c, int64_t now)
{
	if (conn_due(c) > now)
		return;
	if (c->delay_armed) {
		c->delay_armed = false;
		c->delay_fired = true;
		conn_step(s, c);
		return;
	}
	if (c->h2 && !c->lingering && h2_due(c->h2) > 0 && h2_due(c->h2) <= now) {
		h2_timer(c->h2, now); /* /delay/N on a stream */
		conn_step(s, c);
		return;
	}
	conn_close(s, c); /* idle, or done lingering */
}

static void addr_str(const struct sockaddr_storage *ss, char *out, size_t n, int *port)
{
	*port = 0;
	snprintf(out, n, "?");
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		*port = ntohs(a->sin6_port);
		/* dual-stack sockets see IPv4 peers as ::ffff:a.b.c.d; show them as IPv4 */
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
			inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], out, (socklen_t)n);
		else
			inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)n);
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		*port = ntohs(a->sin_port);
		inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)n);
	}
}

static void conn_new(struct srv *s, int fd, const struct sockaddr_storage *peer)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ls;
	socklen_t sl = sizeof(ls);
	struct epoll_event e;
	char host[INET6_ADDRSTRLEN];
	int port;

	if (!c) {
		close(fd);
		return;
	}
	c->kind = EV_CONN;
	c->fd = fd;
	c->srv = s;
	addr_str(peer, c->peer, sizeof(c->peer), &port);
	if (getsockname(fd, (struct sockaddr *)&ls, &sl) == 0) {
		addr_str(&ls, host, sizeof(host), &port);
		snprintf(c->local, sizeof(c->local), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
			 port);
	}
	c->active_ms = now_ms();
	c->events = EPOLLIN;
	e = (struct epoll_event){.events = EPOLLIN, .data.ptr = c};
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
		close(fd);
		free(c);
		return;
	}
	c->idx = s->nconns;
	c->id = ++s->next_id;
	s->conns[s->nconns++] = c;
	/* ECHO_BANNER: a line before anything is read, as a server-first protocol (SMTP,
	 * MySQL) speaks; best effort, it fits any socket buffer */
	if (s->banner && send(fd, s->banner, strlen(s->banner), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client learns from the close */
	}
}

static void on_accept(struct srv *s, struct lsock *l)
{
	for (int i = 0; i < ECHO_ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
				/* out of descriptors: free the spare to accept and drop one, else
				 * the level-triggered listener would spin */
				close(s->spare_fd);
				fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					close(fd);
				s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			}
			return;
		}
		if (s->nconns >= ECHO_MAX_CONNS) {
			if (send(fd, s->busy.p, s->busy.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* best effort: the client learns from the close either way */
			}
			close(fd);
			continue;
		}
		conn_new(s, fd, &ss);
	}
}

/*
 * Reply from the address the datagram was sent to: on a host or pod with several addresses
 * the kernel would otherwise pick a source by route, and the client (or the mesh's UDP
 * translation on its side) would drop a reply from an address it never sent to.
 */
static void on_udp(struct srv *s, struct lsock *l)
{
	for (int i = 0; i < ECHO_UDP_BURST; i++) {
		union {
			char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
				 CMSG_SPACE(sizeof(struct in_pktinfo))];
			struct cmsghdr align;
		} rx, tx;
		struct sockaddr_storage peer;
		struct iovec iov = {s->udp_buf, sizeof(s->udp_buf)};
		struct msghdr mh = {
		    .msg_name = &peer,
		    .msg_namelen = sizeof(peer),
		    .msg_iov = &iov,
		    .msg_iovlen = 1,
		    .msg_control = rx.buf,
		    .msg_controllen = sizeof(rx.buf),
		};
		size_t txlen = 0;
		struct cmsghdr *cm;

		if (recvmsg(l->fd, &mh, MSG_DONTWAIT) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			continue; /* EINTR, or a queued ICMP error from an earlier reply */
		}
		memset(tx.buf, 0, sizeof(tx.buf));
		for (cm = CMSG_FIRSTHDR(&mh); cm && !txlen; cm = CMSG_NXTHDR(&mh, cm)) {
			struct cmsghdr *o = (struct cmsghdr *)tx.buf;

			if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
				o->cmsg_level = IPPROTO_IPV6;
				o->cmsg_type = IPV6_PKTINFO;
				o->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
				memcpy(CMSG_DATA(o), CMSG_DATA(cm), sizeof(struct in6_pktinfo));
				txlen = CMSG_SPACE(sizeof(struct in6_pktinfo));
			} else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
				struct in_pktinfo pi;

				memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
				pi.ipi_spec_dst = pi.ipi_addr;
				pi.ipi_ifindex = 0;
				o->cmsg_level = IPPROTO_IP;
				o->cmsg_type = IP_PKTINFO;
				o->cmsg_len = CMSG_LEN(sizeof(pi));
				memcpy(CMSG_DATA(o), &pi, sizeof(pi));
				txlen = CMSG_SPACE(sizeof(pi));
			}
		}
		iov = (struct iovec){s->udp_reply.p, s->udp_reply.len};
		mh.msg_flags = 0;
		mh.msg_control = txlen ? tx.buf : NULL;
		mh.msg_controllen = txlen;
		/* a datagram sent to a broadcast or multicast address can't be answered from it:
		 * let the kernel pick the source then */
		if (sendmsg(l->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && txlen) {
			mh.msg_control = NULL;
			mh.msg_controllen = 0;
			if (sendmsg(l->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
				/* UDP is lossy anyway; the client retries */
			}
		}
	}
}

/* ---------------- setup and loop ---------------- */

/* Dual-stack where the kernel has IPv6, plain IPv4 where it doesn't (ipv6.disable=1). */
static int listen_one(struct srv *s, int port, int type)
{
	const char *what = type == SOCK_STREAM ? "tcp" : "udp";
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct lsock *l = &s->ls[s->nls];
	struct epoll_event e;
	int one = 1, zero = 0, fd, rc;
	bool v6 = true;

	fd = socket(AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && errno == EAFNOSUPPORT) {
		v6 = false;
		fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0) {
		fprintf(stderr, "echo: socket %s port %d: %s\n", what, port, strerror(errno));
		return -1;
	}
	if ((v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (type == SOCK_DGRAM && v6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0) ||
	    (type == SOCK_DGRAM && !v6 &&
	     setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0)) {
		fprintf(stderr, "echo: setsockopt %s port %d: %s\n", what, port, strerror(errno));
		close(fd);
		return -1;
	}
	rc = v6 ? bind(fd, (struct sockaddr *)&a6, sizeof(a6))
		: bind(fd, (struct sockaddr *)&a4, sizeof(a4));
	if (rc < 0) {
		fprintf(stderr, "echo: bind %s %s:%d: %s\n", what, v6 ? "[::]" : "0.0.0.0", port,
			strerror(errno));
		close(fd);
		return -1;
	}
	if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0) {
		fprintf(stderr, "echo: listen tcp port %d: %s\n", port, strerror(errno));
		close(fd);
		return -1;
	}
	l->kind = type == SOCK_STREAM ? EV_TCP : EV_UDP;
	l->fd = fd;
	l->port = port;
	e = (struct epoll_event){.events = EPOLLIN, .data.ptr = l};
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
		fprintf(stderr, "echo: epoll_ctl: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	s->nls++;
	return 0;
}

/* Room for ECHO_MAX_CONNS connections: the default soft limit (1024) is too small. */
static void raise_nofile(int nports)
{
	rlim_t need = (rlim_t)ECHO_MAX_CONNS + 2 * (rlim_t)nports + 16;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static void srv_free(struct srv *s)
{
	while (s->nconns)
		conn_close(s, s->conns[s->nconns - 1]);
	free(s->banner);
	for (int i = 0; i < s->nls; i++)
		close(s->ls[i].fd);
	if (s->ep >= 0)
		close(s->ep);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	free(s->ls);
	free(s->pod_hdr);
	sb_free(&s->identity);
	sb_free(&s->udp_reply);
	sb_free(&s->busy);
	free(s);
}

static struct srv *srv_new(const struct echo_conf *cf)
{
	struct srv *s = calloc(1, sizeof(*s));
	const char *pod = cf->pod ? cf->pod : "unknown";

	if (!s)
		return NULL;
	s->conf = cf;
	s->ep = s->sfd = s->spare_fd = -1;
	s->sig_kind = EV_SIG;
	s->version = kv_find(&cf->env, "VERSION");
	if (!s->version)
		s->version = "unknown";
	s->fail_pct = env_int(cf, "ECHO_FAIL_PERCENT", 100);
	s->delay_ms = env_int(cf, "ECHO_DELAY_MS", (int64_t)ECHO_MAX_DELAY_S * 1000);
	s->call_url = kv_find(&cf->env, "ECHO_CALL");
	if (kv_find(&cf->env, "ECHO_BANNER") &&
	    asprintf(&s->banner, "%s\r\n", kv_find(&cf->env, "ECHO_BANNER")) < 0)
		s->banner = NULL;
	s->call_pipe[0] = s->call_pipe[1] = -1;
	s->call_kind = EV_CALL;
	/* the pod name goes into a header: never let it carry CR/LF or other controls */
	s->pod_hdr = strdup(pod);
	s->ls = calloc((size_t)cf->nports * 2, sizeof(*s->ls));
	if (!s->pod_hdr || !s->ls)
		goto fail;
	for (char *p = s->pod_hdr; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '_';
	sb_printf(&s->identity, "bpfmesh echo: pod %s, namespace %s, node %s, version %s", cf->pod,
		  cf->ns, cf->node, s->version);
	sb_printf(&s->udp_reply, "pod=%s namespace=%s version=%s\n", pod,
		  cf->ns ? cf->ns : "unknown", s->version);
	sb_printf(&s->busy,
		  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
		  "Content-Length: 21\r\nX-Bpfmesh-Pod: %s\r\nConnection: close\r\n\r\n"
		  "too many connections\n",
		  s->pod_hdr);
	if (s->identity.oom || s->udp_reply.oom || s->busy.oom)
		goto fail;
	return s;
fail:
	srv_free(s);
	return NULL;
}

int echo_run(const struct echo_conf *cf)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
	sigset_t sigs, old_mask;
	struct epoll_event evs[ECHO_EVENTS], e;
	struct srv *s;
	int ret = -1;

	if (!cf || !cf->ports || cf->nports <= 0) {
		fprintf(stderr, "echo: no ports to serve\n");
		return -1;
	}
	for (int i = 0; i < cf->nports; i++) {
		if (cf->ports[i] < 1 || cf->ports[i] > 65535) {
			fprintf(stderr, "echo: port %d out of range 1-65535\n", cf->ports[i]);
			return -1;
		}
	}
	s = srv_new(cf);
	if (!s) {
		fprintf(stderr, "echo: out of memory\n");
		return -1;
	}
	raise_nofile(cf->nports);

	/* SIGTERM/SIGINT arrive as readable events, so a stop never interrupts a half-done
	 * state change and there is no handler writing to global state */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, &old_mask);
	sigaction(SIGPIPE, &ign, &old_pipe);

	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s->ep < 0 || s->sfd < 0) {
		fprintf(stderr, "echo: epoll/signalfd: %s\n", strerror(errno));
		goto out;
	}
	e = (struct epoll_event){.events = EPOLLIN, .data.ptr = &s->sig_kind};
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->sfd, &e) < 0) {
		fprintf(stderr, "echo: epoll_ctl: %s\n", strerror(errno));
		goto out;
	}
	if (s->call_url) {
		e = (struct epoll_event){.events = EPOLLIN, .data.ptr = &s->call_kind};
		/* the read end non-blocking (the loop); the threads' write end blocks (a pointer
		 * is a few bytes: it waits only while the loop is busy) */
		curl_global_init(CURL_GLOBAL_DEFAULT);
		if (pipe2(s->call_pipe, O_CLOEXEC) || fcntl(s->call_pipe[0], F_SETFL, O_NONBLOCK) ||
		    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->call_pipe[0], &e) < 0) {
			fprintf(stderr, "echo: ECHO_CALL: %s\n", strerror(errno));
			goto out;
		}
	}
	for (int i = 0; i < cf->nports; i++) {
		bool dup = false;

		for (int j = 0; j < i; j++)
			dup |= cf->ports[j] == cf->ports[i];
		if (dup)
			continue;
		if (listen_one(s, cf->ports[i], SOCK_STREAM) ||
		    listen_one(s, cf->ports[i], SOCK_DGRAM))
			goto out;
	}

	while (!s->stop) {
		int64_t now = now_ms(), next = -1;
		int n, timeout;

		for (int i = 0; i < s->nconns; i++) {
			int64_t due = conn_due(s->conns[i]);

			if (next < 0 || due < next)
				next = due;
		}
		timeout = next < 0 ? -1 : next <= now ? 0 : (int)(next - now);
		n = epoll_wait(s->ep, evs, ECHO_EVENTS, timeout);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "echo: epoll_wait: %s\n", strerror(errno));
			goto out;
		}
		for (int i = 0; i < n; i++) {
			enum ev_kind *k = evs[i].data.ptr;

			switch (*k) {
			case EV_TCP:
				on_accept(s, (struct lsock *)k);
				break;
			case EV_UDP:
				on_udp(s, (struct lsock *)k);
				break;
			case EV_CALL:
				on_call(s);
				break;
			case EV_SIG: {
				struct signalfd_siginfo si;

				while (read(s->sfd, &si, sizeof(si)) == sizeof(si))
					s->stop = true;
				break;
			}
			case EV_CONN:
				conn_event(s, (struct conn *)k, evs[i].events);
				break;
			}
		}
		/* backwards: conn_close moves the last connection into the freed slot */
		now = now_ms();
		for (int i = s->nconns - 1; i >= 0; i--)
			conn_timer(s, s->conns[i], now);
	}
	ret = 0;
out:
	if (s->sfd >= 0) {
		struct signalfd_siginfo si;

		/* consume a second SIGTERM too, so unblocking doesn't kill the caller */
		while (read(s->sfd, &si, sizeof(si)) == sizeof(si))
			;
		close(s->sfd);
	}
	/* calls still out write to the pipe: wait for them (each ends within 5 s) */
	for (int t = 0; t < 600 && __atomic_load_n(&calls_out, __ATOMIC_ACQUIRE); t++) {
		struct echo_call *k;

		usleep(10 * 1000);
		while (s->call_pipe[0] >= 0 && read(s->call_pipe[0], &k, sizeof(k)) == sizeof(k))
			call_free(k);
	}
	if (!__atomic_load_n(&calls_out, __ATOMIC_ACQUIRE)) {
		if (s->call_pipe[0] >= 0)
			close(s->call_pipe[0]);
		if (s->call_pipe[1] >= 0)
			close(s->call_pipe[1]);
	}
	srv_free(s);
	sigaction(SIGPIPE, &old_pipe, NULL);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return ret;
}
