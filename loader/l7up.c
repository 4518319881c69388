// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7up.c: upstream connections of the HTTP path, whatever their codec: which connection a try
 * takes (a pooled idle one of the same key, or a new one), how it is dialed (a pod of this
 * node with a bm_attest pass, a remote pod directly, or a socketpair the mTLS tunnel carries
 * as the client pod), connect and idle timeouts, and the raw relay an upgraded (websocket)
 * connection becomes. Pools are per worker, keyed by (address, port, tunnel, client pod,
 * HTTP/2): tunnelled connections carry one client's identity, so they are never shared.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include "l7int.h"
#include "log.h"
#include "tunnel.h"

static void ukey_hkey(uint8_t k[HKEY], const struct l7_ukey *u)
{
	memset(k, 0, HKEY);
	memcpy(k, u->addr, 4);
	memcpy(k + 4, &u->port, 2);
	k[6] = u->tunnel;
	k[7] = u->h2;
	memcpy(k + 8, &u->src_pod, 4);
	k[12] = 0x77;
}

static struct l7_pool *pool_of(struct l7w *w, const struct l7_ukey *key, bool add)
{
	uint8_t k[HKEY];
	int *i;

	ukey_hkey(k, key);
	i = h_get(&w->pools, k);
	if (i)
		return &w->pv[*i];
	if (!add)
		return NULL;
	if (w->npv == w->cappv) {
		int cap = w->cappv ? 2 * w->cappv : 16;
		struct l7_pool *v = realloc(w->pv, cap * sizeof(*v));

		if (!v)
			abort();
		w->pv = v;
		w->cappv = cap;
	}
	memset(&w->pv[w->npv], 0, sizeof(w->pv[w->npv]));
	w->pv[w->npv].key = *key;
	h_put(&w->pools, k, w->npv);
	return &w->pv[w->npv++];
}

static void pool_unlink(struct l7_uconn *u)
{
	struct l7_pool *p = pool_of(u->w, &u->key, false);

	for (struct l7_uconn **pp = p ? &p->idle : NULL; pp && *pp; pp = &(*pp)->next_idle)
		if (*pp == u) {
			*pp = u->next_idle;
			u->next_idle = NULL;
			p->n--;
			return;
		}
}

static void uconn_free_mem(struct l7_dead *d)
{
	struct l7_uconn *u = (struct l7_uconn *)d;

	if (u->h2)
		l7h2_uconn_free(u);
	else
		l7h1_uconn_free(u);
	free(u);
}

/* Close u (its fd, its pass, its pool slot); freed after this batch of events. */
void l7_uconn_close(struct l7_uconn *u)
{
	if (u->dead_flag)
		return;
	u->dead_flag = true;
	pool_unlink(u);
	if (u->cb) {
		__atomic_sub_fetch(&u->cb->conns, 1, __ATOMIC_RELAXED);
		u->cb = NULL; /* a slot for a pending request: l7_pending_kick */
	}
	l7_timer_stop(u->w, &u->t);
	dial_pass_drop(l7_opts_of(u->w)->fds ? l7_opts_of(u->w)->fds->attest : -1, &u->pass);
	l7_io_close(u->w, &u->io);
	l7_defer_free(u->w, &u->dead);
}

/* An idle connection back in its pool, watched for the server closing it. */
void l7_uconn_idle(struct l7_uconn *u)
{
	struct l7_pool *p = pool_of(u->w, &u->key, true);

	u->r = NULL;
	if (u->max_req && u->nreq >= u->max_req) {
		l7_uconn_close(u); /* maxRequestsPerConnection */
		return;
	}
	if (u->w->draining && !u->h2) {
		l7_uconn_close(u); /* an upgrade: kept for no one (the next agent has its own) */
		return;
	}
	if (!u->h2) {
		u->next_idle = p->idle;
		p->idle = u;
		p->n++;
	}
	l7_io_want(u->w, &u->io, EPOLLIN | EPOLLRDHUP);
	l7_timer_set(u->w, &u->t, u->w->now + u->idle_ms);
}

static void uconn_timer(struct l7_timer *t)
{
	struct l7_uconn *u = (struct l7_uconn *)((char *)t - offsetof(struct l7_uconn, t));
	struct l7_req *r = u->r;

	if (!u->connected && u->h2) {
		l7h2_uconn_failed(u); /* connectTimeout: every request that waited */
		return;
	}
	if (!u->connected && r) {
		/* connectTimeout: a connect failure to the retry policy */
		u->r = NULL;
		r->u = NULL;
		l7_uconn_close(u);
		l7_req_try_failed(r, TRY_CONNECT_FAIL);
		return;
	}
	if (!u->r)
		l7_uconn_close(u); /* idle timeout */
}

static void uconn_connecting(struct l7_io *io, uint32_t ev);

static struct l7_uconn *uconn_new(struct l7w *w, const struct l7_ukey *key)
{
	struct l7_uconn *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	u->w = w;
	u->key = *key;
	u->h2 = key->h2;
	u->io.fd = -1;
	u->t = (struct l7_timer){.idx = -1, .fire = uconn_timer};
	u->dead.free = uconn_free_mem;
	u->idle_ms = L7_IDLE_MS;
	return u;
}

/* Dial e for r: the socket, connected or connecting. */
static int uconn_dial(struct l7_uconn *u, struct l7_req *r, const uint8_t addr[4], uint16_t port,
		      bool local, bool tunnel, uint32_t backend_id)
{
	const struct l7_opts *o = l7_opts_of(u->w);
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(port)};

	memcpy(&dst.sin_addr, addr, 4);
	if (tunnel) {
		char ip[INET_ADDRSTRLEN];
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
			return -1;
		inet_ntop(AF_INET, r->dc->src_ip, ip, sizeof(ip));
		if (tunnel_adopt(l7_tunnel_of(u->w), sv[1], r->dc->src_pod, ip, addr, port,
				 backend_id, true)) {
			close(sv[0]);
			close(sv[1]);
			return -1;
		}
		u->connected = true;
		return sv[0];
	}
	if (local)
		return dial_attested(o->fds ? o->fds->attest : -1, (struct sockaddr *)&dst,
				     o->node_ip, &u->pass);
	return dial_tcp((struct sockaddr *)&dst);
}

/* ---------------- circuit breakers: connections and pending requests ---------------- */

static uint32_t lim(int64_t v)
{
	return v > 0 ? (v > UINT32_MAX ? UINT32_MAX : (uint32_t)v) : 0; /* 0: Istio's default */
}

static void pend_add(struct l7w *w, struct l7_req *r)
{
	struct l7_req **pp = &w->pend;

	while (*pp)
		pp = &(*pp)->pend_next;
	*pp = r;
	r->pend_next = NULL;
	r->pending = true;
	__atomic_add_fetch(&r->cl->cb->pending, 1, __ATOMIC_RELAXED);
}

static void pend_del(struct l7w *w, struct l7_req *r)
{
	for (struct l7_req **pp = &w->pend; *pp; pp = &(*pp)->pend_next)
		if (*pp == r) {
			*pp = r->pend_next;
			break;
		}
	r->pending = false;
	r->pend_next = NULL;
	__atomic_sub_fetch(&r->cl->cb->pending, 1, __ATOMIC_RELAXED);
}

void l7_pending_kick(struct l7w *w)
{
	/* oldest first; a start may fail and reply, which never re-enters this list */
	for (struct l7_req *r = w->pend, *next; r; r = next) {
		const struct l7_cb *cb = r->cl->cb;
		uint32_t max = r->cl->pol.max_conns;
		int rc;

		next = r->pend_next;
		if (max && __atomic_load_n(&cb->conns, __ATOMIC_RELAXED) >= max) {
			struct l7_pool *p = pool_of(w, &r->pend_key, false);

			if (!p || !p->idle)
				continue;
		}
		pend_del(w, r);
		rc = l7_upstream_start(r);
		if (rc == L7_OVERFLOW)
			l7_req_overflow(r);
		else if (rc)
			l7_req_try_failed(r, TRY_CONNECT_FAIL);
		return; /* the list may have changed: the next batch goes on */
	}
}

int l7_dial_ep(struct l7w *w, const struct l7_dconn *dc, const struct l7_ep *e,
	       struct dial_pass *pass)
{
	const struct l7_opts *o = l7_opts_of(w);
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(e->port)};

	memcpy(&dst.sin_addr, e->addr, 4);
	if (e->tunnel && l7_tunnel_of(w)) {
		char ip[INET_ADDRSTRLEN];
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
			return -1;
		inet_ntop(AF_INET, dc->src_ip, ip, sizeof(ip));
		if (tunnel_adopt(l7_tunnel_of(w), sv[1], dc->src_pod, ip, e->addr, e->port,
				 e->backend_id, false)) {
			close(sv[0]);
			close(sv[1]);
			return -1;
		}
		return sv[0];
	}
	if (e->local)
		return dial_attested(o->fds ? o->fds->attest : -1, (struct sockaddr *)&dst,
				     o->node_ip, pass);
	return dial_tcp((struct sockaddr *)&dst);
}

int l7_upstream_start(struct l7_req *r)
{
	struct l7w *w = r->dc->w;
	struct l7_ukey key = {};
	const struct l7_ep *e = NULL;
	struct l7_pool *p;
	struct l7_uconn *u = NULL;
	bool local, tunnel;
	uint32_t bid = 0;
	uint64_t connect_ms = L7_CONNECT_MS;

	if (r->dc->role == L7_SOURCE) {
		e = &r->cl->eps[r->ep];
		memcpy(key.addr, e->addr, 4);
		key.port = e->port;
		local = e->local;
		tunnel = e->tunnel && l7_tunnel_of(w);
		bid = e->backend_id;
		key.h2 = r->cl->proto == RS_GRPC || r->cl->proto == RS_HTTP2 ||
			 (r->cl->tp && r->cl->tp->h2_upgrade);
		if (r->cl->pol.connect_timeout_ms)
			connect_ms = r->cl->pol.connect_timeout_ms;
	} else {
		memcpy(key.addr, r->dc->dst_ip, 4);
		key.port = r->dc->dst_port;
		local = true;
		tunnel = false;
		key.h2 = r->dc->proto == L7_H2 && r->grpc;
	}
	if (tunnel) {
		key.tunnel = 1;
		key.src_pod = r->dc->src_pod;
	}
	p = pool_of(w, &key, false);
	if (p && key.h2) {
		for (u = p->idle; u && !l7h2_uconn_can_take(u); u = u->next_idle)
			;
	} else if (p && p->idle) {
		u = p->idle;
		p->idle = u->next_idle;
		u->next_idle = NULL;
		p->n--;
	}
	if (u) {
		l7_timer_stop(w, &u->t);
		u->r = key.h2 ? NULL : r;
		r->u = u;
		u->nreq++;
		return key.h2 ? l7h2_start(r, u) : l7h1_start(r, u);
	}
	if (!key.h2 && r->cl && r->cl->cb && r->cl->pol.max_conns &&
	    __atomic_load_n(&r->cl->cb->conns, __ATOMIC_RELAXED) >= r->cl->pol.max_conns) {
		/* tcp.maxConnections reached: wait for a connection, up to
		 * http1MaxPendingRequests of them (Istio's default: no limit) */
		uint32_t maxp = r->cl->tp ? lim(r->cl->tp->http1_max_pending) : 0;

		if (maxp && __atomic_load_n(&r->cl->cb->pending, __ATOMIC_RELAXED) >= maxp)
			return L7_OVERFLOW;
		r->pend_key = key;
		pend_add(w, r);
		return 0;
	}
	u = uconn_new(w, &key);
	if (!u)
		return -1;
	if (r->cl && r->cl->cb) {
		u->cb = r->cl->cb;
		__atomic_add_fetch(&u->cb->conns, 1, __ATOMIC_RELAXED);
	}
	if (r->cl && r->cl->tp && r->cl->tp->has_http_pool) {
		const struct traffic_policy *tp = r->cl->tp;

		if (tp->max_requests_per_conn > 0)
			u->max_req = (int)tp->max_requests_per_conn;
		if (tp->idle_timeout_ms > 0)
			u->idle_ms = tp->idle_timeout_ms;
	}
	u->io.fd = uconn_dial(u, r, key.addr, key.port, local, tunnel, bid);
	if (u->io.fd < 0) {
		if (u->cb)
			__atomic_sub_fetch(&u->cb->conns, 1, __ATOMIC_RELAXED);
		free(u);
		return -1;
	}
	u->r = r;
	r->u = u;
	u->nreq = 1;
	if (key.h2) {
		struct l7_pool *np = pool_of(w, &key, true);

		u->next_idle = np->idle; /* h2 connections stay listed: they are shared */
		np->idle = u;
		np->n++;
		u->r = NULL;
	}
	if (u->connected) {
		return key.h2 ? l7h2_start(r, u) : l7h1_start(r, u);
	}
	u->io.on = uconn_connecting;
	l7_io_want(w, &u->io, EPOLLOUT);
	l7_timer_set(w, &u->t, w->now + connect_ms);
	return key.h2 ? l7h2_start(r, u) : l7h1_start(r, u);
}

static void uconn_connecting(struct l7_io *io, uint32_t ev)
{
	struct l7_uconn *u = (struct l7_uconn *)((char *)io - offsetof(struct l7_uconn, io));
	const struct l7_opts *o = l7_opts_of(u->w);

	(void)ev;
	l7_timer_stop(u->w, &u->t);
	dial_pass_drop(o->fds ? o->fds->attest : -1, &u->pass); /* the SYN is through */
	if (!dial_done(io->fd)) {
		if (u->h2) {
			l7h2_uconn_failed(u);
		} else {
			struct l7_req *r = u->r;

			u->r = NULL;
			if (r)
				r->u = NULL;
			l7_uconn_close(u);
			if (r)
				l7_req_try_failed(r, TRY_CONNECT_FAIL);
		}
		return;
	}
	u->connected = true;
	if (u->h2)
		l7h2_uconn_ready(u);
	else
		l7h1_uconn_ready(u);
}

void l7_upstream_abandon(struct l7_req *r)
{
	struct l7_uconn *u = r->u;

	if (r->pending)
		pend_del(r->dc->w, r);
	if (!u)
		return;
	r->u = NULL;
	if (u->h2)
		l7h2_abandon(r, u);
	else
		l7h1_abandon(r, u);
}

void l7_upstream_body(struct l7_req *r)
{
	if (!r->u)
		return;
	if (r->u->h2)
		l7h2_body(r);
	else
		l7h1_body(r);
}

void l7_upstream_resume(struct l7_req *r)
{
	if (!r->u)
		return;
	if (r->u->h2)
		l7h2_resume(r);
	else
		l7h1_resume(r);
}

void l7_pool_drain(struct l7w *w)
{
	for (int i = 0; i < w->npv; i++) {
		struct l7_uconn *u = w->pv[i].idle, *next;

		for (; u; u = next) {
			next = u->next_idle;
			if (!u->r && (!u->h2 || !l7h2_uconn_busy(u)))
				l7_uconn_close(u);
		}
	}
}

void l7_pool_free(struct l7w *w)
{
	for (int i = 0; i < w->npv; i++)
		while (w->pv[i].idle)
			l7_uconn_close(w->pv[i].idle);
}

/* ---------------- raw relay (after a 101) ---------------- */

struct relay_side {
	struct l7_io io;
	struct l7_buf out; /* to this side */
	bool eof, shut;
};

struct relay {
	struct l7_dead dead;
	struct l7w *w;
	struct relay_side s[2];
	struct l7_timer idle;
	bool closed;
};

static void relay_free(struct l7_dead *d)
{
	struct relay *x = (struct relay *)d;

	lb_free(&x->s[0].out);
	lb_free(&x->s[1].out);
	free(x);
}

static void relay_close(struct relay *x)
{
	if (x->closed)
		return;
	x->closed = true;
	l7_timer_stop(x->w, &x->idle);
	l7_io_close(x->w, &x->s[0].io);
	l7_io_close(x->w, &x->s[1].io);
	l7_defer_free(x->w, &x->dead);
}

static void relay_pump(struct relay *x)
{
	for (int i = 0; i < 2 && !x->closed; i++) {
		struct relay_side *me = &x->s[i], *peer = &x->s[!i];
		char b[L7_READ_CHUNK];

		while (!me->eof && lb_pending(&peer->out) < L7_BUF_HIGH) {
			ssize_t n = recv(me->io.fd, b, sizeof(b), MSG_DONTWAIT);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n < 0) {
				relay_close(x);
				return;
			}
			if (n == 0) {
				me->eof = true;
				break;
			}
			lb_put(&peer->out, b, n);
		}
	}
	for (int i = 0; i < 2 && !x->closed; i++) {
		struct relay_side *me = &x->s[i], *peer = &x->s[!i];

		if (lb_flush(&me->out, me->io.fd)) {
			relay_close(x);
			return;
		}
		if (peer->eof && !lb_pending(&me->out) && !me->shut) {
			shutdown(me->io.fd, SHUT_WR);
			me->shut = true;
		}
	}
	if (x->closed)
		return;
	if (x->s[0].shut && x->s[1].shut) {
		relay_close(x);
		return;
	}
	for (int i = 0; i < 2; i++) {
		struct relay_side *me = &x->s[i], *peer = &x->s[!i];
		uint32_t m = 0;

		if (!me->eof && lb_pending(&peer->out) < L7_BUF_HIGH)
			m |= EPOLLIN | EPOLLRDHUP;
		if (lb_pending(&me->out))
			m |= EPOLLOUT;
		l7_io_want(x->w, &me->io, m);
	}
	l7_timer_set(x->w, &x->idle, x->w->now + L7_IDLE_MS);
}

static void relay_io0(struct l7_io *io, uint32_t ev)
{
	(void)ev;
	relay_pump((struct relay *)((char *)io - offsetof(struct relay, s[0].io)));
}

static void relay_io1(struct l7_io *io, uint32_t ev)
{
	(void)ev;
	relay_pump((struct relay *)((char *)io - offsetof(struct relay, s[1].io)));
}

static void relay_idle(struct l7_timer *t)
{
	relay_close((struct relay *)((char *)t - offsetof(struct relay, idle)));
}

void l7_relay(struct l7w *w, int dfd, struct l7_buf *to_down, int ufd, struct l7_buf *to_up)
{
	struct relay *x = calloc(1, sizeof(*x));

	if (!x) {
		close(dfd);
		close(ufd);
		return;
	}
	x->w = w;
	x->dead.free = relay_free;
	x->idle = (struct l7_timer){.idx = -1, .fire = relay_idle};
	x->s[0].io = (struct l7_io){.fd = dfd, .on = relay_io0};
	x->s[1].io = (struct l7_io){.fd = ufd, .on = relay_io1};
	if (to_down && lb_pending(to_down))
		lb_put(&x->s[0].out, to_down->p + to_down->off, lb_pending(to_down));
	if (to_up && lb_pending(to_up))
		lb_put(&x->s[1].out, to_up->p + to_up->off, lb_pending(to_up));
	relay_pump(x);
}
