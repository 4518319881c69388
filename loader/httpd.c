// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * httpd.c: see httpd.h. Called by the agent's control loop (loader/agent.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "handover.h"
#include "httpd.h"
#include "log.h"

#define REQ_MAX 4096

struct hconn {
	int fd;
	uint64_t deadline;
	char req[REQ_MAX];
	size_t rlen;
	char *out;
	size_t olen, ooff;
};

struct httpd {
	httpd_handler h;
	void *arg;
	int lfd[HTTPD_MAX_LISTEN];
	int nl;
	struct hconn c[HTTPD_MAX_CONNS];
};

struct httpd *httpd_new(httpd_handler h, void *arg)
{
	struct httpd *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->h = h;
	d->arg = arg;
	for (int i = 0; i < HTTPD_MAX_CONNS; i++)
		d->c[i].fd = -1;
	return d;
}

static void conn_end(struct hconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	c->fd = -1;
	c->out = NULL;
	c->rlen = c->olen = c->ooff = 0;
}

void httpd_free(struct httpd *d)
{
	if (!d)
		return;
	for (int i = 0; i < d->nl; i++)
		close(d->lfd[i]);
	for (int i = 0; i < HTTPD_MAX_CONNS; i++)
		conn_end(&d->c[i]);
	free(d);
}

int httpd_listen(struct httpd *d, const char *spec)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_storage ss = {};
	socklen_t sl;
	int fd, one = 1, port;

	if (d->nl == HTTPD_MAX_LISTEN || !colon || (size_t)(colon - spec) >= sizeof(host) ||
	    (port = atoi(colon + 1)) <= 0 || port > 65535)
		goto bad;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	if (host[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		host[strlen(host) - 1] = 0;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			goto bad;
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto bad;
		sl = sizeof(*s4);
	}
	fd = handover_claim((struct sockaddr *)&ss, sl); /* the earlier agent's (an upgrade) */
	if (fd >= 0) {
		d->lfd[d->nl++] = fd;
		return fd;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 64)) {
		pr_warn("listen %s: %s (metrics/health not served there)", spec, strerror(errno));
		close(fd);
		return -1;
	}
	d->lfd[d->nl++] = fd;
	return fd;
bad:
	pr_warn("bad address %s (want ADDR:PORT)", spec);
	return -1;
}

int httpd_listeners(const struct httpd *d, int *fds, int max)
{
	int n = 0;

	for (int i = 0; i < d->nl && n < max; i++)
		fds[n++] = d->lfd[i];
	return n;
}

void httpd_stop_listening(struct httpd *d)
{
	for (int i = 0; i < d->nl; i++)
		close(d->lfd[i]);
	d->nl = 0;
}

int httpd_fds(struct httpd *d, struct pollfd *p)
{
	int n = 0;

	for (int i = 0; i < d->nl; i++)
		p[n++] = (struct pollfd){d->lfd[i], POLLIN, 0};
	for (int i = 0; i < HTTPD_MAX_CONNS; i++)
		p[n++] = (struct pollfd){d->c[i].fd, d->c[i].out ? POLLOUT : POLLIN, 0};
	return n;
}

int httpd_timeout(const struct httpd *d, uint64_t now)
{
	int t = -1;

	for (int i = 0; i < HTTPD_MAX_CONNS; i++) {
		int left;

		if (d->c[i].fd < 0)
			continue;
		left = d->c[i].deadline > now ? (int)(d->c[i].deadline - now) : 0;
		if (t < 0 || left < t)
			t = left;
	}
	return t;
}

static void on_accept(struct httpd *d, int lfd, uint64_t now)
{
	for (int k = 0; k < 16; k++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), i;

		if (fd < 0)
			return;
		for (i = 0; i < HTTPD_MAX_CONNS && d->c[i].fd >= 0; i++)
			;
		if (i == HTTPD_MAX_CONNS) {
			close(fd); /* full: whoever holds the slots waits for their deadline */
			continue;
		}
		d->c[i].fd = fd;
		d->c[i].deadline = now + HTTPD_DEADLINE_MS;
	}
}

/* A whole request is in: render the answer. */
static void answer(struct httpd *d, struct hconn *c)
{
	char path[256] = "", head[256], *body = NULL;
	const char *status = "405 Method Not Allowed", *ctype = "text/plain";
	size_t blen = 0;
	FILE *m = open_memstream(&body, &blen);

	if (!m) {
		conn_end(c);
		return;
	}
	c->req[c->rlen] = 0;
	if (sscanf(c->req, "GET %255s", path) == 1)
		status = d->h(d->arg, path, m, &ctype);
	else
		fputs("only GET\n", m);
	fclose(m);
	snprintf(head, sizeof(head),
		 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n",
		 status, ctype, blen);
	c->olen = strlen(head) + blen;
	c->out = malloc(c->olen);
	if (!c->out) {
		free(body);
		conn_end(c);
		return;
	}
	memcpy(c->out, head, strlen(head));
	memcpy(c->out + strlen(head), body, blen);
	free(body);
	c->ooff = 0;
}

static void on_conn(struct httpd *d, struct hconn *c, short revents)
{
	ssize_t n;

	if (revents & (POLLERR | POLLHUP | POLLNVAL) && !(revents & POLLIN)) {
		conn_end(c);
		return;
	}
	if (!c->out) {
		n = read(c->fd, c->req + c->rlen, REQ_MAX - 1 - c->rlen);
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EINTR))
				conn_end(c);
			return;
		}
		c->rlen += n;
		c->req[c->rlen] = 0;
		if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n") || c->rlen == REQ_MAX - 1)
			answer(d, c);
		return;
	}
	n = send(c->fd, c->out + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);
	if (n > 0)
		c->ooff += n;
	if ((n < 0 && errno != EAGAIN && errno != EINTR) || c->ooff == c->olen)
		conn_end(c);
}

void httpd_run(struct httpd *d, const struct pollfd *p, int n, uint64_t now)
{
	int i = 0;

	for (; i < d->nl && i < n; i++)
		if (p[i].revents & POLLIN)
			on_accept(d, p[i].fd, now);
	for (int k = 0; k < HTTPD_MAX_CONNS && i < n; k++, i++) {
		struct hconn *c = &d->c[k];

		if (c->fd < 0 || p[i].fd != c->fd)
			continue;
		if (p[i].revents)
			on_conn(d, c, p[i].revents);
		if (c->fd >= 0 && now >= c->deadline)
			conn_end(c); /* said nothing, or read nothing, in time */
	}
}
