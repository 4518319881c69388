// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7gwtls.c: TLS termination for a Gateway's HTTPS port, on the HTTP path's worker that
 * accepted the connection (l7.c). The handshake picks the server by SNI (gwtls.h); once it is
 * done, the plaintext goes through a socketpair to an ordinary gateway connection of the same
 * worker (its codec sniffs HTTP/1.1 or HTTP/2 as for any client), and this relay moves bytes
 * between the TLS socket and the pair: every event runs both directions until each would
 * block, and each side stops being read while the other has L7_BUF_HIGH waiting. The relay
 * ends when both directions have ended (close_notify or EOF passed on as a half-close) or
 * either side fails.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "gwtls.h"
#include "l7int.h"
#include "log.h"

#define HANDSHAKE_MS 10000 /* Envoy's transport_socket_connect_timeout at a gateway: 10 s */

struct gwtc {
	struct l7_dead dead;
	struct l7w *w;
	struct l7_io cio; /* the client's TLS socket */
	struct l7_io pio; /* our end of the socketpair, -1 until the handshake is done */
	SSL *ssl;
	struct l7_snap *snap; /* keeps the servers' contexts during the handshake */
	struct gwtls_pick_arg pick;
	struct l7_dconn proto;	  /* the gateway connection the plaintext becomes */
	struct l7_buf to_c, to_p; /* plaintext for the TLS side, for the pair */
	struct l7_timer t;
	bool hs_done, c_eof, p_eof, c_shut, p_shut, want_write, done;
};

static void gwtc_free(struct l7_dead *d)
{
	struct gwtc *c = (struct gwtc *)d;

	lb_free(&c->to_c);
	lb_free(&c->to_p);
	free(c);
}

static void gwtc_end(struct gwtc *c)
{
	struct l7w *w = c->w;

	if (c->done)
		return;
	c->done = true;
	l7_timer_stop(w, &c->t);
	l7_io_close(w, &c->cio);
	l7_io_close(w, &c->pio);
	SSL_free(c->ssl);
	c->ssl = NULL;
	l7_snap_put(c->snap);
	c->snap = NULL;
	__atomic_sub_fetch(&w->c_active, 1, __ATOMIC_RELAXED);
	l7_defer_free(w, &c->dead);
}

static void gwtc_timeout(struct l7_timer *t)
{
	struct gwtc *c = (struct gwtc *)((char *)t - offsetof(struct gwtc, t));

	gwtc_end(c); /* no handshake in time, or no close from the client after ours */
}

/* TLS -> pair; false when the relay must end. */
static bool tls_in(struct gwtc *c)
{
	char buf[L7_READ_CHUNK];

	while (!c->c_eof && lb_pending(&c->to_p) < L7_BUF_HIGH) {
		int n;

		errno = 0;
		n = SSL_read(c->ssl, buf, sizeof(buf));

		if (n > 0) {
			lb_put(&c->to_p, buf, n);
			continue;
		}
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_READ:
			return true;
		case SSL_ERROR_WANT_WRITE:
			c->want_write = true;
			return true;
		case SSL_ERROR_ZERO_RETURN: /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
					     */
			c->c_eof = true;
			return true;
		case SSL_ERROR_SYSCALL:
			if (!ERR_peek_error() && !errno) { /* EOF without close_notify */
				c->c_eof = true;
				return true;
			}
			/* fall through */
		default:
			ERR_clear_error();
			return false;
		}
	}
	return true;
}

/* pair -> TLS; false when the relay must end. */
static bool tls_out(struct gwtc *c)
{
	char buf[L7_READ_CHUNK];

	for (;;) {
		while (lb_pending(&c->to_c)) {
			int n =
			    SSL_write(c->ssl, c->to_c.p + c->to_c.off, (int)lb_pending(&c->to_c));

			if (n > 0) {
				lb_consume(&c->to_c, n);
				continue;
			}
			switch (SSL_get_error(c->ssl, n)) {
			case SSL_ERROR_WANT_WRITE:
				c->want_write = true;
				return true;
			case SSL_ERROR_WANT_READ:
				return true;
			default:
				ERR_clear_error();
				return false;
			}
		}
		if (c->p_eof || c->pio.fd < 0)
			return true;
		ssize_t n = recv(c->pio.fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			lb_put(&c->to_c, buf, n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0 && errno == EINTR)
			continue;
		c->p_eof = true; /* the gateway connection is done writing */
		return true;
	}
}

static void gwtc_pump(struct gwtc *c)
{
	uint32_t cm = 0, pm = 0;

	c->want_write = false;
	if (!tls_in(c) || !tls_out(c) || lb_flush(&c->to_p, c->pio.fd)) {
		gwtc_end(c);
		return;
	}
	if (c->c_eof && !lb_pending(&c->to_p) && !c->p_shut) {
		shutdown(c->pio.fd, SHUT_WR); /* the client is done: the request side ends */
		c->p_shut = true;
	}
	if (c->p_eof && !lb_pending(&c->to_c) && !c->c_shut) {
		int rc = SSL_shutdown(c->ssl); /* close_notify, then the half-close */

		if (rc < 0 && SSL_get_error(c->ssl, rc) == SSL_ERROR_WANT_WRITE) {
			c->want_write = true; /* (again when the socket takes it) */
		} else {
			ERR_clear_error();
			shutdown(c->cio.fd, SHUT_WR);
			c->c_shut = true;
			/* the client has L7_LINGER_MS to close its side, then it is closed */
			l7_timer_set(c->w, &c->t, l7_now() + L7_LINGER_MS);
		}
	}
	if (c->c_shut && c->p_shut) {
		gwtc_end(c);
		return;
	}
	if (!c->c_eof && lb_pending(&c->to_p) < L7_BUF_HIGH)
		cm |= EPOLLIN;
	if (c->want_write || lb_pending(&c->to_c))
		cm |= EPOLLOUT;
	if (!c->p_eof && lb_pending(&c->to_c) < L7_BUF_HIGH)
		pm |= EPOLLIN;
	if (lb_pending(&c->to_p))
		pm |= EPOLLOUT;
	/* (nothing to wait for on a side: out of the epoll set, not a level-triggered
	 * EPOLLRDHUP that would wake the worker forever) */
	l7_io_want(c->w, &c->cio, cm);
	l7_io_want(c->w, &c->pio, pm);
}

/* The handshake is done: the plaintext side becomes a gateway connection of this worker. */
static bool gwtc_plain(struct gwtc *c)
{
	struct l7_dconn dc = c->proto;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return false;
	c->pio = (struct l7_io){.fd = sv[0], .on = c->pio.on};
	snprintf(dc.sni, sizeof(dc.sni), "%s", c->pick.sni);
	dc.gw_tls = true;
	l7_timer_stop(c->w, &c->t);
	SSL_set_ex_data(c->ssl, gwtls_ex(), NULL); /* (no renegotiation: no second hello) */
	l7_snap_put(c->snap); /* (the SSL holds its context now) */
	c->snap = NULL;
	c->hs_done = true;
	l7_gw_begin(c->w, sv[1], &dc);
	return true;
}

static void gwtc_io(struct gwtc *c)
{
	if (!c->hs_done) {
		int rc = SSL_do_handshake(c->ssl);

		if (rc != 1) {
			int e = SSL_get_error(c->ssl, rc);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				l7_io_want(c->w, &c->cio,
					   e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
				return;
			}
			__atomic_add_fetch(&c->w->c_tls_failed, 1, __ATOMIC_RELAXED);
			ERR_clear_error();
			gwtc_end(c); /* no certificate for the name, a bad client certificate... */
			return;
		}
		if (!gwtc_plain(c)) {
			gwtc_end(c);
			return;
		}
	}
	gwtc_pump(c);
}

static void on_cio(struct l7_io *io, uint32_t ev)
{
	(void)ev;
	gwtc_io((struct gwtc *)((char *)io - offsetof(struct gwtc, cio)));
}

static void on_pio(struct l7_io *io, uint32_t ev)
{
	(void)ev;
	gwtc_io((struct gwtc *)((char *)io - offsetof(struct gwtc, pio)));
}

void l7_gwtls_accept(struct l7w *w, int fd, const struct l7_dconn *proto, const struct l7_gwport *g)
{
	struct gwtc *c;
	SSL_CTX *first = NULL;

	for (int i = 0; i < g->ntls && !first; i++)
		first = g->tlsv[i].ctx;
	c = first ? calloc(1, sizeof(*c)) : NULL;
	if (!c || !(c->ssl = SSL_new(first))) {
		free(c);
		close(fd); /* no server of the port has a certificate */
		return;
	}
	c->w = w;
	c->dead.free = gwtc_free;
	c->proto = *proto;
	c->snap = l7_snap_get(w->snap);
	c->pick = (struct gwtls_pick_arg){.v = g->tlsv, .n = g->ntls};
	c->cio = (struct l7_io){.fd = fd, .on = on_cio};
	c->pio = (struct l7_io){.fd = -1, .on = on_pio};
	c->t = (struct l7_timer){.idx = -1, .fire = gwtc_timeout};
	SSL_set_fd(c->ssl, fd);
	SSL_set_accept_state(c->ssl);
	gwtls_prepare(c->ssl, &c->pick);
	__atomic_add_fetch(&w->c_active, 1, __ATOMIC_RELAXED);
	l7_timer_set(w, &c->t, l7_now() + HANDSHAKE_MS);
	l7_io_want(w, &c->cio, EPOLLIN);
}
