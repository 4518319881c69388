// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* l7h2.c: HTTP/2 on both sides of the HTTP path (nghttp2). */
#include <string.h>
#include <unistd.h>
#include "l7int.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

bool l7h2_preface(const char *p, size_t n)
{
	return n <= sizeof(preface) - 1 && !memcmp(p, preface, n);
}

void l7h2_server(struct l7_dconn *dc, const char *pre, size_t n, bool upgraded,
		 struct l7_req *upgrade_req)
{
	(void)pre;
	(void)n;
	(void)upgraded;
	(void)upgrade_req;
	close(dc->io.fd);
	__atomic_sub_fetch(&dc->w->c_active, 1, __ATOMIC_RELAXED);
}

int l7h2_start(struct l7_req *r, struct l7_uconn *u)
{
	(void)r;
	(void)u;
	return -1;
}

void l7h2_body(struct l7_req *r)
{
	(void)r;
}

void l7h2_abandon(struct l7_req *r, struct l7_uconn *u)
{
	(void)r;
	l7_uconn_close(u);
}

void l7h2_resume(struct l7_req *r)
{
	(void)r;
}

void l7h2_uconn_ready(struct l7_uconn *u)
{
	(void)u;
}

void l7h2_uconn_free(struct l7_uconn *u)
{
	(void)u;
}

void l7h2_uconn_failed(struct l7_uconn *u)
{
	l7_uconn_close(u);
}

bool l7h2_uconn_can_take(struct l7_uconn *u)
{
	(void)u;
	return false;
}
