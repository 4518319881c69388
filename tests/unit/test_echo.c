// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_echo.c: tests for the lab's echo server (user/lab/echo.c) over real loopback sockets. One
 * forked child runs echo_run() on two free high ports for the whole suite; the last test stops
 * it with SIGTERM and expects exit status 0, which under ASan also means LeakSanitizer found
 * nothing in the child. main() kills and reaps the child whatever happened before.
 * HTTP/2 and gRPC (echo_h2.c) are driven by a small nghttp2 client session (h2c_* below).
 */
#include "echo.h"
#include "echo_h2.h"
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POD	 "orders-service-v1-0"
#define NS	 "microservices"
#define IDENTITY "bpfmesh echo: pod " POD ", namespace " NS ", node node-a, version v1"

static pid_t child = -1;
static int ports[2];

static struct kv labels[] = {
    {"app", "orders-service"},
    {"version", "v1"},
    {"quote", "say \"hi\"\\\t\x01"},
};
static struct kv env[] = {{"VERSION", "v1"}};

static struct echo_conf conf = {
    .pod = POD,
    .ns = NS,
    .node = "node-a",
    .ip = "10.244.1.5",
    .labels = {labels, 3},
    .env = {env, 1},
    .ports = ports,
    .nports = 2,
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void msleep(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* A port free for both TCP and UDP on [::] right now (the child binds it a moment later). */
static int free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6};
		socklen_t sl = sizeof(a);
		int t = socket(AF_INET6, SOCK_STREAM, 0), u = socket(AF_INET6, SOCK_DGRAM, 0);
		int zero = 0, port = -1;

		setsockopt(t, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		setsockopt(u, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(t, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		    getsockname(t, (struct sockaddr *)&a, &sl) == 0 &&
		    bind(u, (struct sockaddr *)&a, sizeof(a)) == 0)
			port = ntohs(a.sin6_port);
		close(t);
		close(u);
		if (port > 0 && port != ports[0])
			return port;
	}
	return -1;
}

/* Connected TCP socket with a 5 s receive timeout so no test can hang; -1 on failure. */
static int tcp_connect(int family, int port)
{
	struct sockaddr_storage ss = {0};
	struct timeval tv = {5, 0};
	socklen_t sl;
	int one = 1, fd = socket(family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool send_str(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w <= 0)
			return false;
		s += w;
		n -= (size_t)w;
	}
	return true;
}

/* A client connection that keeps bytes past one response for the next (pipelining). */
struct client {
	int fd;
	char buf[65536];
	size_t len;
};

struct resp {
	int code;
	char head[8192]; /* status line and headers, NUL-terminated */
	char *body;	 /* NUL-terminated, heap */
	size_t blen;
};

static const char *hdr_get(const struct resp *r, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name);

	for (const char *l = strstr(r->head, "\r\n"); l; l = strstr(l, "\r\n")) {
		l += 2;
		if (!strncasecmp(l, name, nl) && l[nl] == ':') {
			const char *v = l + nl + 1, *e = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			snprintf(out, n, "%.*s", (int)(e - v), v);
			return out;
		}
	}
	return NULL;
}

/* Read one response (skipping 1xx interim ones). 0, or -1 on EOF, timeout or garbage. */
static int read_resp(struct client *c, struct resp *r)
{
	memset(r, 0, sizeof(*r));
	for (;;) {
		char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);

		if (e) {
			size_t hl = (size_t)(e + 4 - c->buf), cl = 0;
			char v[64];

			if (hl >= sizeof(r->head))
				return -1;
			memcpy(r->head, c->buf, hl);
			r->head[hl] = 0;
			if (sscanf(r->head, "HTTP/1.%*d %d", &r->code) != 1)
				return -1;
			if (r->code >= 100 && r->code < 200) {
				memmove(c->buf, c->buf + hl, c->len - hl);
				c->len -= hl;
				continue;
			}
			if (hdr_get(r, "Content-Length", v, sizeof(v)))
				cl = strtoul(v, NULL, 10);
			if (c->len >= hl + cl) {
				r->body = malloc(cl + 1);
				memcpy(r->body, c->buf + hl, cl);
				r->body[cl] = 0;
				r->blen = cl;
				memmove(c->buf, c->buf + hl + cl, c->len - hl - cl);
				c->len -= hl + cl;
				return 0;
			}
		}
		if (c->len == sizeof(c->buf))
			return -1;
		ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
}

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* One request on a fresh connection. */
static int http_once(int family, int port, const char *req, struct resp *r)
{
	struct client c = {.fd = tcp_connect(family, port)};
	int rc = -1;

	if (c.fd >= 0 && send_str(c.fd, req))
		rc = read_resp(&c, r);
	client_close(&c);
	return rc;
}

/* Does the peer close the connection (EOF within the receive timeout)? */
static bool peer_closes(int fd)
{
	char b[256];
	ssize_t n;

	while ((n = recv(fd, b, sizeof(b), 0)) > 0)
		;
	return n == 0;
}

/* ---------------- HTTP/2 client ---------------- */

#define H2C_STREAMS 160

struct h2c_resp {
	int32_t id;
	int status; /* :status */
	char ctype[64], grpc_status[8], clen[24];
	bool trailers; /* a second HEADERS (gRPC status after the message) */
	int nheaders;  /* HEADERS frames received */
	char *body;    /* heap, NUL-terminated */
	size_t blen;
	bool closed;
	uint32_t error; /* RST_STREAM code, 0 for a clean close */
	double t_done;
	/* request body */
	const char *up;
	size_t uplen, upoff;
};

struct h2c {
	int fd;
	nghttp2_session *ng;
	struct h2c_resp r[H2C_STREAMS];
	int n;
	bool failed;
};

static struct h2c_resp *h2c_find(struct h2c *c, int32_t id)
{
	for (int i = 0; i < c->n; i++)
		if (c->r[i].id == id)
			return &c->r[i];
	return NULL;
}

static int h2c_on_header(nghttp2_session *ng, const nghttp2_frame *fr, const uint8_t *name,
			 size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	struct h2c_resp *r = h2c_find(ud, fr->hd.stream_id);
	char v[256];

	(void)ng;
	(void)flags;
	if (!r)
		return 0;
	snprintf(v, sizeof(v), "%.*s", (int)vl, (const char *)value);
	if (nl == 7 && !memcmp(name, ":status", 7))
		r->status = atoi(v);
	else if (nl == 12 && !memcmp(name, "content-type", 12))
		snprintf(r->ctype, sizeof(r->ctype), "%s", v);
	else if (nl == 14 && !memcmp(name, "content-length", 14))
		snprintf(r->clen, sizeof(r->clen), "%s", v);
	else if (nl == 11 && !memcmp(name, "grpc-status", 11))
		snprintf(r->grpc_status, sizeof(r->grpc_status), "%s", v);
	return 0;
}

static int h2c_on_frame(nghttp2_session *ng, const nghttp2_frame *fr, void *ud)
{
	struct h2c_resp *r = h2c_find(ud, fr->hd.stream_id);

	(void)ng;
	if (r && fr->hd.type == NGHTTP2_HEADERS) {
		r->trailers |= r->nheaders > 0;
		r->nheaders++;
	}
	return 0;
}

static int h2c_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
		       size_t len, void *ud)
{
	struct h2c_resp *r = h2c_find(ud, id);
	char *b;

	(void)ng;
	(void)flags;
	if (!r)
		return 0;
	b = realloc(r->body, r->blen + len + 1);
	if (!b)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	memcpy(b + r->blen, data, len);
	r->blen += len;
	b[r->blen] = 0;
	r->body = b;
	return 0;
}

static int h2c_on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct h2c_resp *r = h2c_find(ud, id);

	(void)ng;
	if (r) {
		r->closed = true;
		r->error = code;
		r->t_done = now_s();
	}
	return 0;
}

static ssize_t h2c_read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
			     uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct h2c_resp *r = src->ptr;
	size_t n = r->uplen - r->upoff;

	(void)ng;
	(void)id;
	(void)ud;
	if (n > len)
		n = len;
	memcpy(buf, r->up + r->upoff, n);
	r->upoff += n;
	if (r->upoff == r->uplen)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* A client session on fd; upgraded: the server took stream 1 from an HTTP/1.1 request. */
static bool h2c_init(struct h2c *c, int fd, const uint8_t *settings, size_t slen)
{
	nghttp2_session_callbacks *cb;
	bool ok;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	if (fd < 0 || nghttp2_session_callbacks_new(&cb))
		return false;
	nghttp2_session_callbacks_set_on_header_callback(cb, h2c_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2c_on_frame);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2c_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2c_on_close);
	ok = !nghttp2_session_client_new(&c->ng, cb, c);
	nghttp2_session_callbacks_del(cb);
	if (!ok)
		return false;
	if (settings) {
		c->r[c->n++].id = 1;
		return !nghttp2_session_upgrade2(c->ng, settings, slen, 0, NULL);
	}
	return !nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, NULL, 0);
}

static bool h2c_open(struct h2c *c, int port)
{
	return h2c_init(c, tcp_connect(AF_INET, port), NULL, 0);
}

/* A request (extra: "name", "value" pairs, NULL-terminated); its response slot, or NULL. */
static struct h2c_resp *h2c_req(struct h2c *c, const char *method, const char *path,
				const char *const *extra, const char *body, size_t blen)
{
	nghttp2_nv nv[16];
	size_t n = 0;
	struct h2c_resp *r;
	nghttp2_data_provider prd;
	int32_t id;

	if (c->n == H2C_STREAMS)
		return NULL;
#define NV(a, b)                                                                                   \
	(nghttp2_nv){(uint8_t *)(a), (uint8_t *)(b), strlen(a), strlen(b), NGHTTP2_NV_FLAG_NONE}
	nv[n++] = NV(":method", method);
	nv[n++] = NV(":scheme", "http");
	nv[n++] = NV(":authority", "h2host:8080");
	nv[n++] = NV(":path", path);
	for (int i = 0; extra && extra[i] && n < 16; i += 2)
		nv[n++] = NV(extra[i], extra[i + 1]);
#undef NV
	r = &c->r[c->n];
	memset(r, 0, sizeof(*r));
	r->up = body;
	r->uplen = blen;
	prd.source.ptr = r;
	prd.read_callback = h2c_read_body;
	id = nghttp2_submit_request(c->ng, NULL, nv, n, body ? &prd : NULL, NULL);
	if (id < 0)
		return NULL;
	r->id = id;
	c->n++;
	return r;
}

/* Exchange frames until every stream is closed (or one, when until is set); false on error. */
static bool h2c_run(struct h2c *c, const struct h2c_resp *until)
{
	for (;;) {
		const uint8_t *p;
		ssize_t n;
		bool open = false;
		char buf[65536];

		while ((n = nghttp2_session_mem_send(c->ng, &p)) > 0)
			for (ssize_t off = 0; off < n;) {
				ssize_t w = send(c->fd, p + off, (size_t)(n - off), MSG_NOSIGNAL);

				if (w <= 0)
					return false;
				off += w;
			}
		if (n < 0)
			return false;
		for (int i = 0; i < c->n; i++)
			open |= !c->r[i].closed;
		if (until ? until->closed : !open)
			return true;
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n <= 0 || nghttp2_session_mem_recv(c->ng, (uint8_t *)buf, (size_t)n) < 0)
			return false;
	}
}

static void h2c_close(struct h2c *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->r[i].body);
	nghttp2_session_del(c->ng);
	if (c->fd >= 0)
		close(c->fd);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* A gRPC message: the 5-byte prefix, then the bytes. */
static size_t grpc_frame(char *out, const char *msg, size_t n)
{
	out[0] = 0;
	out[1] = (char)(n >> 24);
	out[2] = (char)(n >> 16);
	out[3] = (char)(n >> 8);
	out[4] = (char)n;
	memcpy(out + 5, msg, n);
	return n + 5;
}

static void test_start(void)
{
	int status;

	ports[0] = free_port();
	ports[1] = free_port();
	if (!CHECK(ports[0] > 0 && ports[1] > 0, "free ports"))
		return;
	fflush(NULL); /* the child exits through exit(): don't print our buffers twice */
	child = fork();
	if (!CHECK(child >= 0, "fork"))
		return;
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
		if (getppid() == 1)
			_exit(1);
		exit(echo_run(&conf) == 0 ? 0 : 1);
	}
	for (int i = 0; i < 500; i++) {
		int fd = tcp_connect(AF_INET, ports[1]);

		if (fd >= 0) {
			close(fd);
			return;
		}
		if (waitpid(child, &status, WNOHANG) == child) {
			child = -1;
			CHECK(0, "echo_run exited during startup");
			return;
		}
		msleep(10);
	}
	CHECK(0, "echo server accepts within 5 s");
}

static void test_get_json(void)
{
	struct resp r;
	char v[256], want[64];
	int nver = 0;

	if (!CHECK_OK(http_once(AF_INET, ports[0],
				"GET /get?x=1&y=a%20b&x=2 HTTP/1.1\r\nHost: orders-service:8080\r\n"
				"X-Custom-Header: Hello \"q\"\r\n\r\n",
				&r),
		      "request"))
		return;
	CHECK_EQ(r.code, 200, "status");
	CHECK_STR(hdr_get(&r, "X-Bpfmesh-Pod", v, sizeof(v)), POD, "pod header");
	CHECK_STR(hdr_get(&r, "Content-Type", v, sizeof(v)), "application/json", "type");
	CHECK_EQ(r.blen, strlen(r.body), "no NUL in body");
	CHECK_CONTAINS(r.body, "\n  \"pod\": \"" POD "\",\n", "pod");
	CHECK_CONTAINS(r.body, "\n  \"namespace\": \"" NS "\",\n", "namespace");
	CHECK_CONTAINS(r.body, "\n  \"node\": \"node-a\",\n", "node");
	CHECK_CONTAINS(r.body, "\n  \"ip\": \"10.244.1.5\",\n", "ip");
	CHECK_CONTAINS(r.body, "\n  \"labels\": {\n    \"app\": \"orders-service\",\n", "labels");
	CHECK_CONTAINS(r.body, "\n    \"version\": \"v1\",\n", "version label");
	CHECK_CONTAINS(r.body, "\"quote\": \"say \\\"hi\\\"\\\\\\t\\u0001\"", "escaping");
	CHECK_CONTAINS(r.body, "\n    \"X-Custom-Header\": \"Hello \\\"q\\\"\"", "header case");
	CHECK_CONTAINS(r.body, "\n    \"x\": [\n      \"1\",\n      \"2\"\n    ],\n", "args x");
	CHECK_CONTAINS(r.body, "\n    \"y\": \"a b\"\n", "args y");
	CHECK_CONTAINS(r.body, "\n  \"origin\": \"127.0.0.1\",\n", "origin");
	CHECK_CONTAINS(r.body, "\n  \"protocol\": \"HTTP/1.1\",\n", "protocol");
	CHECK_CONTAINS(r.body, "\"url\": \"http://orders-service:8080/get?x=1&y=a%20b&x=2\"",
		       "url");
	CHECK(r.body[0] == '{' && !strcmp(r.body + r.blen - 2, "}\n"), "one JSON object");

	/* what `curl -s .../get | grep VERSION` prints: exactly one line, exactly this */
	snprintf(want, sizeof(want), "    \"VERSION\": \"v1\"");
	for (char *l = r.body, *e; l && *l; l = e ? e + 1 : NULL) {
		e = strchr(l, '\n');
		if (e)
			*e = 0;
		if (strstr(l, "VERSION")) {
			nver++;
			CHECK_STR(l, want, "grep VERSION line");
		}
	}
	CHECK_EQ(nver, 1, "one VERSION line");
	free(r.body);
}

static void test_keepalive(void)
{
	struct client c = {.fd = tcp_connect(AF_INET, ports[0])};
	struct resp r;
	char v[64];

	if (!CHECK(c.fd >= 0, "connect"))
		return;
	for (int i = 0; i < 2; i++) {
		if (!CHECK(send_str(c.fd, "GET /headers HTTP/1.1\r\nHost: a\r\n\r\n"), "send") ||
		    !CHECK_OK(read_resp(&c, &r), "response on the same connection"))
			break;
		CHECK_EQ(r.code, 200, "status");
		CHECK_STR(hdr_get(&r, "Connection", v, sizeof(v)), "keep-alive", "keep-alive");
		CHECK_CONTAINS(r.body, "\"Host\": \"a\"", "headers");
		free(r.body);
	}
	client_close(&c);
}

static void test_pipelined(void)
{
	struct client c = {.fd = tcp_connect(AF_INET, ports[0])};
	static const int want[] = {201, 200, 202, 404};
	struct resp r;

	if (!CHECK(c.fd >= 0, "connect"))
		return;
	CHECK(send_str(c.fd, "GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n"
			     "POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
			     "GET /status/202 HTTP/1.1\r\nHost: a\r\n\r\n"
			     "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"),
	      "send");
	for (int i = 0; i < 4; i++) {
		if (!CHECK_OK(read_resp(&c, &r), "response"))
			break;
		CHECK_EQ(r.code, want[i], "in order");
		if (i == 1)
			CHECK_CONTAINS(r.body, "\"data\": \"hello\"", "body echoed");
		free(r.body);
	}
	client_close(&c);
}

static void test_split_writes(void)
{
	static const char *const parts[] = {
	    "PO",
	    "ST /anything/x?a=1 HT",
	    "TP/1.1\r\nHo",
	    "st: split\r",
	    "\nContent-Len",
	    "gth: 11\r\n\r",
	    "\n{\"k\": \"v\"",
	    "}\n",
	};
	struct client c = {.fd = tcp_connect(AF_INET, ports[0])};
	struct resp r;

	if (!CHECK(c.fd >= 0, "connect"))
		return;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		CHECK(send_str(c.fd, parts[i]), "send part");
		msleep(20);
	}
	if (CHECK_OK(read_resp(&c, &r), "response")) {
		CHECK_EQ(r.code, 200, "status");
		CHECK_CONTAINS(r.body, "\"method\": \"POST\"", "method");
		CHECK_CONTAINS(r.body, "\"data\": \"{\\\"k\\\": \\\"v\\\"}\\n\"", "body");
		CHECK_CONTAINS(r.body, "\"url\": \"http://split/anything/x?a=1\"", "url");
		free(r.body);
	}
	client_close(&c);
}

static void test_chunked_and_form(void)
{
	struct resp r;

	if (CHECK_OK(http_once(AF_INET, ports[0],
			       "POST /post HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
			       "Expect: 100-continue\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n"
			       "0\r\nX-Trailer: 1\r\n\r\n",
			       &r),
		     "chunked")) {
		CHECK_EQ(r.code, 200, "status");
		CHECK_CONTAINS(r.body, "\"data\": \"hello world\"", "decoded");
		free(r.body);
	}
	if (CHECK_OK(http_once(AF_INET, ports[0],
			       "POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n"
			       "Content-Type: application/x-www-form-urlencoded\r\n\r\na=1&b=x+%7E",
			       &r),
		     "form")) {
		CHECK_CONTAINS(r.body, "\"data\": \"\"", "no data");
		CHECK_CONTAINS(r.body, "\"form\": {\n    \"a\": \"1\",\n    \"b\": \"x ~\"\n  }",
			       "form");
		free(r.body);
	}
	if (CHECK_OK(http_once(AF_INET, ports[0], "GET /post HTTP/1.1\r\nHost: a\r\n\r\n", &r),
		     "GET /post")) {
		CHECK_EQ(r.code, 405, "method not allowed");
		free(r.body);
	}
}

static void test_status(void)
{
	struct resp r;
	char v[64];

	if (CHECK_OK(
		http_once(AF_INET, ports[0], "GET /status/503 HTTP/1.1\r\nHost: a\r\n\r\n", &r),
		"503")) {
		CHECK_EQ(r.code, 503, "status");
		CHECK(hdr_get(&r, "Content-Length", v, sizeof(v)), "has Content-Length");
		CHECK(hdr_get(&r, "Content-Type", v, sizeof(v)), "has Content-Type");
		CHECK_STR(hdr_get(&r, "X-Bpfmesh-Pod", v, sizeof(v)), POD, "pod header");
		free(r.body);
	}
	if (CHECK_OK(
		http_once(AF_INET, ports[0], "GET /status/abc HTTP/1.1\r\nHost: a\r\n\r\n", &r),
		"bad code")) {
		CHECK_EQ(r.code, 400, "status");
		free(r.body);
	}
}

static void test_delay_does_not_block(void)
{
	struct client a = {.fd = tcp_connect(AF_INET, ports[0])};
	struct resp r;
	double t0, t1;

	if (!CHECK(a.fd >= 0, "connect"))
		return;
	t0 = now_s();
	/* a request pipelined behind the delay waits for it: answers stay in order */
	CHECK(send_str(a.fd, "GET /delay/1 HTTP/1.1\r\nHost: a\r\n\r\n"
			     "GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n"),
	      "send delay");
	msleep(50);
	if (CHECK_OK(http_once(AF_INET, ports[0], "GET /get HTTP/1.1\r\nHost: b\r\n\r\n", &r),
		     "get")) {
		t1 = now_s() - t0;
		CHECK_EQ(r.code, 200, "status");
		CHECK(t1 < 0.5, "/get answered while /delay/1 waits");
		free(r.body);
	}
	if (CHECK_OK(read_resp(&a, &r), "delay response")) {
		t1 = now_s() - t0;
		CHECK_EQ(r.code, 200, "status");
		CHECK(t1 >= 0.95 && t1 < 3, "delayed about 1 s");
		CHECK_CONTAINS(r.body, "\"pod\": \"" POD "\"", "json");
		free(r.body);
	}
	if (CHECK_OK(read_resp(&a, &r), "pipelined after delay")) {
		CHECK_EQ(r.code, 201, "status");
		free(r.body);
	}
	client_close(&a);
}

static void test_connection_close(void)
{
	static const char *const reqs[] = {
	    "GET /get HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	    "GET /get HTTP/1.0\r\n\r\n",
	};

	for (int i = 0; i < 2; i++) {
		struct client c = {.fd = tcp_connect(AF_INET, ports[0])};
		struct resp r;
		char v[64];

		if (!CHECK(c.fd >= 0, "connect"))
			return;
		CHECK(send_str(c.fd, reqs[i]), "send");
		if (CHECK_OK(read_resp(&c, &r), "response")) {
			CHECK_EQ(r.code, 200, "status");
			CHECK_STR(hdr_get(&r, "Connection", v, sizeof(v)), "close", "header");
			free(r.body);
		}
		CHECK(c.len == 0 && peer_closes(c.fd), "server closes");
		client_close(&c);
	}
}

static void test_not_found_and_root(void)
{
	struct resp r;

	if (CHECK_OK(http_once(AF_INET, ports[0], "GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n", &r),
		     "404")) {
		CHECK_EQ(r.code, 404, "status");
		free(r.body);
	}
	/* the second port serves too */
	if (CHECK_OK(http_once(AF_INET, ports[1], "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &r),
		     "root")) {
		CHECK_EQ(r.code, 200, "status");
		CHECK_CONTAINS(r.body, POD, "names the pod");
		free(r.body);
	}
}

static void test_header_limit(void)
{
	struct client c = {.fd = tcp_connect(AF_INET, ports[0])};
	char *big = malloc(20000);
	struct resp r;

	if (!CHECK(c.fd >= 0 && big, "setup"))
		goto out;
	memset(big, 'a', 19999);
	big[19999] = 0;
	memcpy(big, "GET /get HTTP/1.1\r\nX-Big: ", 26);
	send_str(c.fd, big); /* may fail once the server has answered and closed */
	if (CHECK_OK(read_resp(&c, &r), "response")) {
		CHECK_EQ(r.code, 431, "status");
		free(r.body);
	}
out:
	free(big);
	client_close(&c);
}

static void test_ipv6(void)
{
	struct resp r;

	if (!CHECK_OK(http_once(AF_INET6, ports[0], "GET /get HTTP/1.1\r\nHost: [::1]\r\n\r\n", &r),
		      "request over [::1]"))
		return;
	CHECK_EQ(r.code, 200, "status");
	CHECK_CONTAINS(r.body, "\"origin\": \"::1\"", "origin");
	free(r.body);
}

static void test_udp(void)
{
	static const int fams[] = {AF_INET, AF_INET6};

	for (int i = 0; i < 2; i++) {
		struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(ports[1])};
		struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(ports[1])};
		struct timeval tv = {3, 0};
		int fd = socket(fams[i], SOCK_DGRAM, 0), rc;
		char buf[256];
		ssize_t n;

		a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a6.sin6_addr = in6addr_loopback;
		if (!CHECK(fd >= 0, "socket"))
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		/* connected: a reply from any other source address would be dropped */
		rc = fams[i] == AF_INET ? connect(fd, (struct sockaddr *)&a4, sizeof(a4))
					: connect(fd, (struct sockaddr *)&a6, sizeof(a6));
		CHECK_OK(rc, "connect");
		CHECK_EQ(send(fd, "ping", 4, 0), 4, "send");
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (CHECK(n > 0, "reply")) {
			buf[n] = 0;
			CHECK_STR(buf, "pod=" POD " namespace=" NS " version=v1\n", "reply text");
		}
		close(fd);
	}
}

static void test_h2_prior_knowledge(void)
{
	static const char *const hdrs[] = {"x-custom-header", "Hello", "content-type", "text/plain",
					   NULL};
	struct h2c c;
	struct h2c_resp *root, *get, *post, *head, *st, *nf;

	if (!CHECK(h2c_open(&c, ports[0]), "connect"))
		goto out;
	root = h2c_req(&c, "GET", "/", NULL, NULL, 0);
	get = h2c_req(&c, "GET", "/get?x=1", hdrs, NULL, 0);
	post = h2c_req(&c, "POST", "/post", hdrs, "hello h2", 8);
	head = h2c_req(&c, "HEAD", "/get", NULL, NULL, 0);
	st = h2c_req(&c, "GET", "/status/503", NULL, NULL, 0);
	nf = h2c_req(&c, "GET", "/nope", NULL, NULL, 0);
	if (!CHECK(root && get && post && head && st && nf, "submit") ||
	    !CHECK(h2c_run(&c, NULL), "exchange"))
		goto out;
	CHECK_EQ(root->status, 200, "/ status");
	CHECK_STR(root->body, IDENTITY "\n", "/ identity");
	CHECK_EQ(get->status, 200, "/get status");
	CHECK_STR(get->ctype, "application/json", "/get type");
	CHECK_CONTAINS(get->body, "\n  \"protocol\": \"HTTP/2.0\",\n", "protocol");
	CHECK_CONTAINS(get->body, "\n    \"Host\": \"h2host:8080\"", ":authority as Host");
	CHECK_CONTAINS(get->body, "\n    \"X-Custom-Header\": \"Hello\"", "header, as HTTP/1.1");
	CHECK_CONTAINS(get->body, "\"url\": \"http://h2host:8080/get?x=1\"", "url");
	CHECK_CONTAINS(get->body, "\"x\": \"1\"", "args");
	CHECK_CONTAINS(get->body, "\"pod\": \"" POD "\"", "pod");
	CHECK_EQ(post->status, 200, "/post status");
	CHECK_CONTAINS(post->body, "\"data\": \"hello h2\"", "body echoed");
	CHECK_EQ(head->status, 200, "HEAD status");
	CHECK_EQ(head->blen, 0, "HEAD has no body");
	CHECK(atoi(head->clen) > 100, "HEAD has the length of GET's body");
	CHECK_EQ(st->status, 503, "/status/503");
	CHECK_EQ(nf->status, 404, "not found");
out:
	h2c_close(&c);
}

static void test_h2_many_streams(void)
{
	struct h2c c;
	struct h2c_resp *r[150];
	int ok = 0;

	if (!CHECK(h2c_open(&c, ports[0]), "connect"))
		goto out;
	/* more than ECHO_H2_MAX_STREAMS at once: the client queues the rest */
	for (int i = 0; i < 150; i++)
		r[i] = h2c_req(&c, "GET", i % 2 ? "/get" : "/", NULL, NULL, 0);
	if (!CHECK(r[149], "submit") || !CHECK(h2c_run(&c, NULL), "exchange"))
		goto out;
	for (int i = 0; i < 150; i++)
		ok += r[i]->status == 200 && r[i]->body && strstr(r[i]->body, POD);
	CHECK_EQ(ok, 150, "150 answers on one connection");
out:
	h2c_close(&c);
}

static void test_h2_delay_holds_one_stream(void)
{
	struct h2c c;
	struct h2c_resp *d, *g;
	double t0 = now_s();

	if (!CHECK(h2c_open(&c, ports[0]), "connect"))
		goto out;
	d = h2c_req(&c, "GET", "/delay/1", NULL, NULL, 0);
	g = h2c_req(&c, "GET", "/get", NULL, NULL, 0);
	if (!CHECK(d && g, "submit") || !CHECK(h2c_run(&c, NULL), "exchange"))
		goto out;
	CHECK_EQ(g->status, 200, "/get");
	CHECK(g->t_done - t0 < 0.5, "/get answered while /delay/1 waits");
	CHECK_EQ(d->status, 200, "/delay/1");
	CHECK(d->t_done - t0 >= 0.95 && d->t_done - t0 < 3, "delayed about 1 s");
out:
	h2c_close(&c);
}

static void test_h2_body_limit(void)
{
	static const char *const too_long[] = {"content-length", "2000000", NULL};
	size_t big = ECHO_MAX_BODY + 1;
	char *body = calloc(1, big);
	struct h2c c;
	struct h2c_resp *declared, *streamed, *after;

	if (!CHECK(body && h2c_open(&c, ports[0]), "setup"))
		goto out;
	/* refused by its content-length, before the body is read */
	declared = h2c_req(&c, "POST", "/post", too_long, body, 2000000 > big ? big : 2000000);
	if (!CHECK(declared && h2c_run(&c, declared), "declared"))
		goto out;
	CHECK_EQ(declared->status, 413, "content-length over the limit");
	/* refused at the first byte too many */
	streamed = h2c_req(&c, "POST", "/post", NULL, body, big);
	if (!CHECK(streamed && h2c_run(&c, streamed), "streamed"))
		goto out;
	CHECK_EQ(streamed->status, 413, "body over the limit");
	CHECK_CONTAINS(streamed->body, "413 Content Too Large", "same text as HTTP/1.1");
	/* the connection goes on */
	after = h2c_req(&c, "POST", "/post", NULL, body, ECHO_MAX_BODY);
	if (CHECK(after && h2c_run(&c, after), "after"))
		CHECK_EQ(after->status, 200, "a body at the limit");
out:
	h2c_close(&c);
	free(body);
}

static void test_h2c_upgrade(void)
{
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t set[64];
	char enc[128], req[512], head[1024];
	ssize_t sl = nghttp2_pack_settings_payload(set, sizeof(set), iv, 1);
	size_t e = 0, hl = 0;
	struct h2c c = {.fd = -1};
	struct h2c_resp *second;
	int fd;

	if (!CHECK(sl > 0, "settings"))
		return;
	for (ssize_t i = 0; i < sl; i += 3) {
		uint32_t v = (uint32_t)set[i] << 16 | (i + 1 < sl ? set[i + 1] << 8 : 0) |
			     (i + 2 < sl ? set[i + 2] : 0);

		for (int k = 0; k < 4 && (size_t)k <= (size_t)(sl - i) * 4 / 3; k++)
			enc[e++] = b64[(v >> (18 - 6 * k)) & 63];
	}
	enc[e] = 0;
	snprintf(
	    req, sizeof(req),
	    "GET /anything/up?a=1 HTTP/1.1\r\nHost: up:8080\r\nX-Before: 1\r\n"
	    "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: %s\r\n\r\n",
	    enc);
	fd = tcp_connect(AF_INET, ports[0]);
	if (!CHECK(fd >= 0 && send_str(fd, req), "send upgrade request")) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* read exactly the 101's head: what follows is HTTP/2 */
	while (hl < sizeof(head) - 1 && !(hl >= 4 && !memcmp(head + hl - 4, "\r\n\r\n", 4)))
		if (recv(fd, head + hl, 1, 0) == 1)
			hl++;
		else
			break;
	head[hl] = 0;
	CHECK(!strncmp(head, "HTTP/1.1 101 ", 13), "101 Switching Protocols");
	CHECK(strcasestr(head, "\r\nUpgrade: h2c\r\n"), "Upgrade: h2c");
	if (!CHECK(h2c_init(&c, fd, set, (size_t)sl), "client session"))
		goto out;
	second = h2c_req(&c, "GET", "/", NULL, NULL, 0);
	if (!CHECK(second && h2c_run(&c, NULL), "exchange"))
		goto out;
	CHECK_EQ(c.r[0].status, 200, "the upgraded request is answered on stream 1");
	CHECK_CONTAINS(c.r[0].body, "\"protocol\": \"HTTP/2.0\"", "over HTTP/2");
	CHECK_CONTAINS(c.r[0].body, "\"Host\": \"up:8080\"", "Host");
	CHECK_CONTAINS(c.r[0].body, "\"X-Before\": \"1\"", "its headers");
	CHECK(!strstr(c.r[0].body, "Http2-Settings") && !strstr(c.r[0].body, "HTTP2-Settings"),
	      "hop-by-hop fields dropped");
	CHECK_CONTAINS(c.r[0].body, "\"url\": \"http://up:8080/anything/up?a=1\"", "url");
	CHECK_STR(second->body, IDENTITY "\n", "a second request on the connection");
out:
	if (c.ng)
		h2c_close(&c);
	else
		close(fd);
}

static void test_grpc(void)
{
	static const char *const grpc[] = {"content-type", "application/grpc", "te", "trailers",
					   NULL};
	static const char *const fail[] = {"content-type", "application/grpc", "x-grpc-status",
					   "14", NULL};
	static const char *const bad[] = {"content-type", "application/grpc", "x-grpc-status",
					  "abc", NULL};
	char want[256], hello[64], empty[8];
	size_t wl = 0, hl, el;
	struct h2c c;
	struct h2c_resp *health, *echo, *bare, *st, *inv, *unk, *junk;

	/* EchoResponse{identity = IDENTITY, message = "hi"} in its frame */
	want[wl++] = 0x0a;
	want[wl++] = (char)strlen(IDENTITY);
	memcpy(want + wl, IDENTITY, strlen(IDENTITY));
	wl += strlen(IDENTITY);
	memcpy(want + wl, "\x12\x02hi", 4);
	wl += 4;
	hl = grpc_frame(hello, "\x0a\x02hi\x18\x07", 6); /* + field 3 varint, to be skipped */
	el = grpc_frame(empty, "", 0);
	if (!CHECK(h2c_open(&c, ports[0]), "connect"))
		goto out;
	health = h2c_req(&c, "POST", "/grpc.health.v1.Health/Check", grpc, empty, el);
	echo = h2c_req(&c, "POST", "/bpfmesh.echo.Echo/Echo", grpc, hello, hl);
	bare = h2c_req(&c, "POST", "/bpfmesh.echo.Echo/Echo", grpc, empty, el);
	st = h2c_req(&c, "POST", "/bpfmesh.echo.Echo/Echo", fail, hello, hl);
	inv = h2c_req(&c, "POST", "/bpfmesh.echo.Echo/Echo", bad, hello, hl);
	unk = h2c_req(&c, "POST", "/bpfmesh.echo.Echo/Nope", grpc, hello, hl);
	junk = h2c_req(&c, "POST", "/bpfmesh.echo.Echo/Echo", grpc, "\0\0\0\0\2\x0a\x05", 7);
	if (!CHECK(health && echo && bare && st && inv && unk && junk, "submit") ||
	    !CHECK(h2c_run(&c, NULL), "exchange"))
		goto out;

	CHECK_EQ(health->status, 200, "health :status");
	CHECK_STR(health->ctype, "application/grpc", "health content-type");
	CHECK(health->blen == 7 && !memcmp(health->body, "\0\0\0\0\2\x08\x01", 7),
	      "HealthCheckResponse{SERVING}");
	CHECK(health->trailers, "status in trailers");
	CHECK_STR(health->grpc_status, "0", "health grpc-status");

	CHECK_STR(echo->grpc_status, "0", "echo grpc-status");
	CHECK(echo->blen == wl + 5 && echo->body[0] == 0 && echo->body[4] == (char)wl &&
		  !memcmp(echo->body + 5, want, wl),
	      "EchoResponse{identity, message}");
	CHECK(bare->blen == strlen(IDENTITY) + 7 && !memcmp(bare->body + 5, want, wl - 4),
	      "no message: identity only");

	CHECK_EQ(st->status, 200, "x-grpc-status :status");
	CHECK_STR(st->grpc_status, "14", "x-grpc-status: 14");
	CHECK(st->blen == 0 && !st->trailers, "trailers-only");
	CHECK_STR(inv->grpc_status, "3", "x-grpc-status not a code: INVALID_ARGUMENT");
	CHECK_STR(unk->grpc_status, "12", "unknown method: UNIMPLEMENTED");
	CHECK(unk->blen == 0 && !unk->trailers, "trailers-only");
	CHECK_STR(junk->grpc_status, "13", "not a protobuf message: INTERNAL");
out:
	h2c_close(&c);
}

static void test_sigterm(void)
{
	int fd = tcp_connect(AF_INET, ports[0]), status = 0;
	pid_t w = 0;

	/* an open connection with a half-sent request must not hold up the stop */
	if (fd >= 0)
		send_str(fd, "GET /get HTTP/1.1\r\nHo");
	if (!CHECK(child > 0, "child running"))
		goto out;
	CHECK_OK(kill(child, SIGTERM), "kill");
	for (int i = 0; i < 500 && (w = waitpid(child, &status, WNOHANG)) == 0; i++)
		msleep(10);
	if (CHECK_EQ(w, child, "child exits within 5 s")) {
		child = -1;
		CHECK(WIFEXITED(status), "exited normally");
		CHECK_EQ(WEXITSTATUS(status), 0, "exit status");
	}
out:
	if (fd >= 0)
		close(fd);
}

static void stop_child(void)
{
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
}

int main(void)
{
	RUN(test_start);
	RUN(test_get_json);
	RUN(test_keepalive);
	RUN(test_pipelined);
	RUN(test_split_writes);
	RUN(test_chunked_and_form);
	RUN(test_status);
	RUN(test_delay_does_not_block);
	RUN(test_connection_close);
	RUN(test_not_found_and_root);
	RUN(test_header_limit);
	RUN(test_ipv6);
	RUN(test_udp);
	RUN(test_h2_prior_knowledge);
	RUN(test_h2_many_streams);
	RUN(test_h2_delay_holds_one_stream);
	RUN(test_h2_body_limit);
	RUN(test_h2c_upgrade);
	RUN(test_grpc);
	RUN(test_sigterm);
	stop_child();
	return CHECK_DONE("echo");
}
