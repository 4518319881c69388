// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7.c: the HTTP path's workers (see l7.h, l7int.h): each one an epoll loop with its own
 * listener (SO_REUSEPORT spreads accepted connections over them), a timer heap, its
 * connections and pools. A connection's first bytes say which codec takes it: the HTTP/2
 * preface (h2c with prior knowledge, gRPC) or HTTP/1. Snapshots and streams from the tunnel
 * are handed over under the worker's mutex and an eventfd wake-up; everything else a worker
 * does is lock-free and on its own thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include "cfgref.h"
#include "datapath.h"
#include "l7int.h"
#include "log.h"

#define L7_MAX_WORKERS 64
#define SNIFF_BYTES    24 /* the HTTP/2 connection preface */

/* A Gateway port's listening socket, shared by the workers (EPOLLEXCLUSIVE) and held by each
 * snapshot that serves the port and each worker that has it in its epoll set: closed when
 * the last of them lets go. */
struct l7_gwl {
	int refs; /* atomic */
	int fd;
	uint16_t port;
};

struct l7_gwio {
	struct l7_dead dead;
	struct l7_io io;
	struct l7w *w;
	struct l7_gwl *g;
};

struct l7 {
	struct l7_opts o;
	char node_ip[64], td[256], root_ns[128], node[256];
	struct l7w *w;
	int nw;
	unsigned next_w; /* round robin for hand-offs (atomic) */
	pthread_mutex_t mu;
	struct l7_snap *snap; /* the latest publish */
	uint64_t gen;
	bool started;
	int drain;   /* atomic: l7_drain was called */
	int release; /* atomic: l7_release was called */
	int given;   /* atomic: l7_give_maps was called */
	struct l7_cb *cbs;  /* circuit breakers by cluster, kept until l7_free (under mu) */
	struct l7_log *log; /* the access log, NULL: none */
	struct l7_rl *rl;   /* rate limits (l7rl.c) */
	/* trace exporters by collector (l7_tracer), kept for the engine's life (under trmu) */
	pthread_mutex_t trmu;
	struct tr_exp *trs[16];
	int ntrs;
	char tr_endpoint[512];
};

/* ---------------- small things ---------------- */

uint64_t l7_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

uint32_t l7_rand(struct l7w *w)
{
	/* xorshift64*: per worker, seeded from getrandom; not for secrets */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (uint32_t)((w->rng * 2685821657736338717ULL) >> 32);
}

void l7_span_add(struct l7w *w, struct tr_exp *e, struct tr_span *s)
{
	if (w->nspans == L7_SPAN_BATCH)
		l7_spans_flush(w);
	if (!w->nspans)
		w->spans_at = w->now;
	w->spans[w->nspans] = s;
	w->span_exp[w->nspans++] = e;
}

void l7_spans_flush(struct l7w *w)
{
	int i = 0;

	while (i < w->nspans) { /* runs of one exporter's spans, one lock each */
		int j = i;

		while (j < w->nspans && w->span_exp[j] == w->span_exp[i])
			j++;
		tr_exp_submitv(w->span_exp[i], &w->spans[i], j - i);
		i = j;
	}
	w->nspans = 0;
}

struct tr_exp *l7_tracer(struct l7w *w, const char *url, enum tel_proto proto)
{
	struct l7 *l = w->l;
	struct tr_exp *e = NULL;

	if (w->trc_exp && w->trc_proto == (int)proto && !strcmp(w->trc_url, url))
		return w->trc_exp; /* the worker's last: no lock */
	pthread_mutex_lock(&l->trmu);
	for (int i = 0; i < l->ntrs && !e; i++)
		if (!strcmp(tr_exp_url(l->trs[i]), url) && tr_exp_proto(l->trs[i]) == proto)
			e = l->trs[i];
	if (!e && l->ntrs < (int)(sizeof(l->trs) / sizeof(l->trs[0]))) {
		e = tr_exp_new(url, proto, l->o.home_netns);
		if (e)
			l->trs[l->ntrs++] = e;
	}
	pthread_mutex_unlock(&l->trmu);
	if (e && strlen(url) < sizeof(w->trc_url)) {
		snprintf(w->trc_url, sizeof(w->trc_url), "%s", url);
		w->trc_proto = (int)proto;
		w->trc_exp = e;
	}
	return e;
}

struct l7_rl *l7_rl_of(struct l7w *w)
{
	return w->l->rl;
}

struct l7_rlc **l7_rlc_slot(struct l7w *w)
{
	return &w->rlc;
}

const struct l7_opts *l7_opts_of(const struct l7w *w)
{
	return &w->l->o;
}

const struct workload_obj *l7_gateway_of(const struct l7w *w)
{
	return w->l->o.gateway;
}

struct l7_log *l7_log_of(const struct l7w *w)
{
	return w->l->log;
}

struct tunnel *l7_tunnel_of(const struct l7w *w)
{
	return w->l->o.tun;
}

void l7_flags_str(unsigned flags, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = 0;
#define X(n, b)                                                                                    \
	if ((flags & RF_##n) && o + sizeof(#n) + 1 < len)                                          \
		o += snprintf(buf + o, len - o, "%s%s", o ? "," : "", #n);
	L7_RF(X)
#undef X
	if (!o)
		snprintf(buf, len, "-");
}

void lb_put(struct l7_buf *b, const void *d, size_t n)
{
	if (!n)
		return;
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		if (b->off) { /* slide down before growing */
			memmove(b->p, b->p + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		if (b->len + n > b->cap) {
			size_t cap = b->cap ? b->cap : 4096;
			char *p;

			while (cap < b->len + n)
				cap *= 2;
			p = realloc(b->p, cap);
			if (!p)
				abort();
			b->p = p;
			b->cap = cap;
		}
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

void lb_printf(struct l7_buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		lb_put(b, tmp, n);
		return;
	}
	char *big = malloc(n + 1);

	if (!big)
		abort();
	va_start(ap, fmt);
	vsnprintf(big, n + 1, fmt, ap);
	va_end(ap);
	lb_put(b, big, n);
	free(big);
}

void lb_consume(struct l7_buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void lb_free(struct l7_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int lb_flush(struct l7_buf *b, int fd)
{
	while (lb_pending(b)) {
		ssize_t n = send(fd, b->p + b->off, lb_pending(b), MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		lb_consume(b, n);
	}
	/* a buffer that once held a large body does not keep it */
	if (b->cap > 4 * L7_BUF_HIGH) {
		free(b->p);
		b->p = NULL;
		b->cap = b->off = b->len = 0;
	}
	return 0;
}

/* ---------------- timers: a binary min-heap per worker ---------------- */

static void heap_swap(struct l7w *w, int a, int b)
{
	struct l7_timer *t = w->heap[a];

	w->heap[a] = w->heap[b];
	w->heap[b] = t;
	w->heap[a]->idx = a;
	w->heap[b]->idx = b;
}

static void heap_up(struct l7w *w, int i)
{
	while (i > 0 && w->heap[(i - 1) / 2]->due > w->heap[i]->due) {
		heap_swap(w, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct l7w *w, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;

		if (l < w->nheap && w->heap[l]->due < w->heap[m]->due)
			m = l;
		if (r < w->nheap && w->heap[r]->due < w->heap[m]->due)
			m = r;
		if (m == i)
			return;
		heap_swap(w, i, m);
		i = m;
	}
}

void l7_timer_stop(struct l7w *w, struct l7_timer *t)
{
	int i = t->idx;

	if (i < 0)
		return;
	t->idx = -1;
	w->nheap--;
	if (i == w->nheap)
		return;
	w->heap[i] = w->heap[w->nheap];
	w->heap[i]->idx = i;
	heap_down(w, i);
	heap_up(w, i);
}

void l7_timer_set(struct l7w *w, struct l7_timer *t, uint64_t due)
{
	l7_timer_stop(w, t);
	if (w->nheap == w->capheap) {
		int cap = w->capheap ? 2 * w->capheap : 256;
		struct l7_timer **h = realloc(w->heap, cap * sizeof(*h));

		if (!h)
			abort();
		w->heap = h;
		w->capheap = cap;
	}
	t->due = due;
	t->idx = w->nheap;
	w->heap[w->nheap++] = t;
	heap_up(w, t->idx);
}

static int timers_wait_ms(struct l7w *w)
{
	uint64_t now = l7_now();

	if (w->pend)
		return 10; /* a connection slot may free up on another worker */
	if (lb_pending(&w->alog) || w->nspans)
		return L7_LOG_FLUSH_MS; /* the access log's lines, the spans of the last requests */
	if (!w->nheap)
		return 1000;
	if (w->heap[0]->due <= now)
		return 0;
	return w->heap[0]->due - now > 1000 ? 1000 : (int)(w->heap[0]->due - now);
}

static void timers_run(struct l7w *w)
{
	uint64_t now = l7_now();

	w->now = now;
	while (w->nheap && w->heap[0]->due <= now) {
		struct l7_timer *t = w->heap[0];

		l7_timer_stop(w, t);
		t->fire(t);
	}
}

/* ---------------- epoll ---------------- */

void l7_io_want(struct l7w *w, struct l7_io *io, uint32_t mask)
{
	struct epoll_event e = {.events = mask, .data.ptr = io};

	if (io->fd < 0 || io->mask == mask)
		return;
	if (!io->mask)
		epoll_ctl(w->ep, EPOLL_CTL_ADD, io->fd, &e);
	else if (!mask)
		epoll_ctl(w->ep, EPOLL_CTL_DEL, io->fd, NULL);
	else
		epoll_ctl(w->ep, EPOLL_CTL_MOD, io->fd, &e);
	io->mask = mask;
}

void l7_io_close(struct l7w *w, struct l7_io *io)
{
	if (io->fd < 0)
		return;
	l7_io_want(w, io, 0);
	close(io->fd);
	io->fd = -1;
}

void l7_defer_free(struct l7w *w, struct l7_dead *d)
{
	d->next = w->dead;
	w->dead = d;
}

void l7_later(struct l7w *w, struct l7_later *l)
{
	if (l->queued)
		return;
	l->queued = true;
	l->next = NULL;
	if (!w->later)
		w->later_tail = &w->later;
	*w->later_tail = l;
	w->later_tail = &l->next;
}

static void run_later(struct l7w *w)
{
	while (w->later) {
		struct l7_later *l = w->later;

		w->later = l->next;
		l->queued = false;
		l->fn(l);
	}
}

static void free_dead(struct l7w *w)
{
	while (w->dead) {
		struct l7_dead *d = w->dead;

		w->dead = d->next;
		d->free(d);
	}
}

/* ---------------- snapshots ---------------- */

static void ip_key(uint8_t k[HKEY], const uint8_t ip[4])
{
	memset(k, 0, HKEY);
	memcpy(k, ip, 4);
	k[4] = 0x5e; /* never the zero key */
}

static void id_key(uint8_t k[HKEY], uint32_t id)
{
	memset(k, 0, HKEY);
	memcpy(k, &id, 4);
	k[5] = 0x1d;
}

static struct l7_gwl *gwl_get(struct l7_gwl *g)
{
	__atomic_add_fetch(&g->refs, 1, __ATOMIC_ACQ_REL);
	return g;
}

static void gwl_put(struct l7_gwl *g)
{
	if (!g || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL))
		return;
	close(g->fd);
	free(g);
}

static struct l7_snap *snap_new(struct cfgref *cfg, struct l7_table *t, uint64_t gen)
{
	struct l7_snap *s = calloc(1, sizeof(*s));
	const struct mesh_config *c = cfg ? cfg->c : NULL;

	if (!s)
		abort();
	s->refs = 1;
	s->gen = gen;
	s->cfg = cfgref_get(cfg);
	s->c = c;
	s->t = l7_table_get(t);
	for (int i = 0; c && i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];
		uint8_t k[HKEY], a[4];

		if (w->kind != WL_POD)
			continue;
		id_key(k, config_pod_id(w));
		h_put(&s->pods, k, i);
		for (int j = 0; j < w->naddresses; j++)
			if (inet_pton(AF_INET, w->addresses[j], a) == 1) {
				ip_key(k, a);
				h_put(&s->podip, k, i);
			}
	}
	return s;
}

struct l7_snap *l7_snap_get(struct l7_snap *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);
	return s;
}

void l7_snap_put(struct l7_snap *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	h_free(&s->pods);
	h_free(&s->podip);
	for (int i = 0; i < s->ngwl; i++)
		gwl_put(s->gwl[i]);
	free(s->gwl);
	l7_table_put(s->t);
	cfgref_put(s->cfg);
	free(s);
}

const struct workload_obj *l7_snap_pod(const struct l7_snap *s, uint32_t pod_id)
{
	uint8_t k[HKEY];
	int *i;

	if (!s || !s->c || !pod_id)
		return NULL;
	id_key(k, pod_id);
	i = h_get((struct htab *)&s->pods, k);
	return i ? &s->c->workloads[*i] : NULL;
}

const struct workload_obj *l7_snap_pod_ip(const struct l7_snap *s, const uint8_t ip[4])
{
	uint8_t k[HKEY];
	int *i;

	if (!s || !s->c)
		return NULL;
	ip_key(k, ip);
	i = h_get((struct htab *)&s->podip, k);
	return i ? &s->c->workloads[*i] : NULL;
}

/* ---------------- downstream connections ---------------- */

/* A connection whose first bytes are not in yet: they say HTTP/1 or HTTP/2. */
struct sniff {
	struct l7_dead dead;
	struct l7_dconn dc;
	char b[SNIFF_BYTES];
	size_t n;
	struct l7_timer t;
};

static void sniff_free(struct l7_dead *d)
{
	free((struct sniff *)d);
}

static void sniff_drop(struct sniff *s)
{
	l7_timer_stop(s->dc.w, &s->t);
	l7_io_close(s->dc.w, &s->dc.io);
	__atomic_sub_fetch(&s->dc.w->c_active, 1, __ATOMIC_RELAXED);
	l7_defer_free(s->dc.w, &s->dead);
}

static void sniff_timeout(struct l7_timer *t)
{
	struct sniff *s = (struct sniff *)((char *)t - offsetof(struct sniff, t));

	sniff_drop(s); /* said nothing for the stream idle timeout */
}

/* Hand the connection to its codec; the sniffer goes. */
static void sniff_done(struct sniff *s)
{
	struct l7_dconn dc = s->dc;
	bool h2 = s->n >= SNIFF_BYTES && l7h2_preface(s->b, s->n);

	l7_timer_stop(dc.w, &s->t);
	l7_io_want(dc.w, &s->dc.io, 0);
	s->dc.io.fd = -1; /* the codec owns the fd now */
	l7_defer_free(dc.w, &s->dead);
	if (dc.role == L7_SOURCE && dc.w->snap && dc.w->snap->t) {
		const struct l7_gwport *gp =
		    dc.gw_port ? l7_table_gwport(dc.w->snap->t, dc.gw_port) : NULL;
		const struct l7_svc *svc =
		    dc.gw_port ? NULL : l7_table_find(dc.w->snap->t, dc.vip, dc.vport);

		if ((svc && svc->proto == RS_TLS) || (gp && gp->proto == RS_TLS && !gp->tls)) {
			l7_tls_server(&dc, s->b, s->n); /* tls routes: by the ClientHello's SNI */
			return;
		}
	}
	if (h2)
		l7h2_server(&dc, s->b, s->n, false, NULL);
	else
		l7h1_server(&dc, s->b, s->n);
}

static void sniff_io(struct l7_io *io, uint32_t ev)
{
	struct sniff *s = (struct sniff *)((char *)io - offsetof(struct sniff, dc.io));

	(void)ev;
	for (;;) {
		ssize_t n = recv(io->fd, s->b + s->n, sizeof(s->b) - s->n, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			if (s->n)
				sniff_done(s); /* let the codec answer what it got */
			else
				sniff_drop(s);
			return;
		}
		s->n += n;
		if (s->n == sizeof(s->b) || !l7h2_preface(s->b, s->n)) {
			sniff_done(s);
			return;
		}
	}
}

static void dconn_begin(struct l7w *w, int fd, const struct l7_dconn *proto)
{
	struct sniff *s = calloc(1, sizeof(*s));
	int one = 1;

	if (!s) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->dead.free = sniff_free;
	s->dc = *proto;
	s->dc.w = w;
	s->dc.io.fd = fd;
	s->dc.io.mask = 0;
	s->dc.io.on = sniff_io;
	s->t.idx = -1;
	s->t.fire = sniff_timeout;
	__atomic_add_fetch(&w->c_conns, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&w->c_active, 1, __ATOMIC_RELAXED);
	l7_timer_set(w, &s->t, l7_now() + L7_STREAM_IDLE_MS);
	l7_io_want(w, &s->dc.io, EPOLLIN | EPOLLRDHUP);
}

static void on_accept(struct l7_io *io, uint32_t ev)
{
	struct l7w *w = (struct l7w *)((char *)io - offsetof(struct l7w, lio));
	const struct bm_mapfds *fds = w->l->o.fds;

	(void)ev;
	for (int i = 0; i < L7_ACCEPT_BURST; i++) {
		struct sockaddr_in peer;
		socklen_t pl = sizeof(peer);
		struct bm_orig_key k = {};
		struct bm_orig o;
		struct l7_dconn dc = {.role = L7_SOURCE};
		int fd =
		    accept4(w->lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				pr_warn("l7: accept: %s", strerror(errno));
			return;
		}
		memcpy(k.addr, &peer.sin_addr, 4);
		k.port = peer.sin_port;
		k.family = BM_FAM_V4;
		if (!fds || fds->orig < 0 || bpf_map_lookup_elem(fds->orig, &k, &o) ||
		    !(o.flags & BM_ORIG_F_L7)) {
			/* not sent here by the kernel: nobody may use this port directly */
			__atomic_add_fetch(&w->c_rejected, 1, __ATOMIC_RELAXED);
			close(fd);
			continue;
		}
		dp_map_del(fds->orig, &k, "bm_orig");
		memcpy(dc.src_ip, &peer.sin_addr, 4);
		dc.src_port = ntohs(peer.sin_port);
		dc.src_pod = o.src_pod;
		memcpy(dc.vip, o.addr, 4);
		dc.vport = ntohs(o.port);
		dconn_begin(w, fd, &dc);
	}
}

/* A client of a Gateway port: anyone who can reach the node's address (the Gateway's own
 * AuthorizationPolicy judges it), sent into the mesh as the gateway workload. */
static void on_gw_accept(struct l7_io *io, uint32_t ev)
{
	struct l7_gwio *g = (struct l7_gwio *)((char *)io - offsetof(struct l7_gwio, io));
	struct l7w *w = g->w;

	(void)ev;
	for (int i = 0; i < L7_ACCEPT_BURST; i++) {
		struct sockaddr_in peer, me;
		socklen_t pl = sizeof(peer), ml = sizeof(me);
		struct l7_dconn dc = {
		    .role = L7_SOURCE, .gw_port = g->g->port, .src_pod = BM_POD_ID_GATEWAY};
		int fd =
		    accept4(io->fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		const struct l7_gwport *gp;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				pr_warn("l7: gateway accept: %s", strerror(errno));
			return;
		}
		if (peer.sin_family != AF_INET || getsockname(fd, (struct sockaddr *)&me, &ml) ||
		    me.sin_family != AF_INET) {
			close(fd);
			continue;
		}
		memcpy(dc.src_ip, &peer.sin_addr, 4);
		dc.src_port = ntohs(peer.sin_port);
		memcpy(dc.vip, &me.sin_addr, 4);
		dc.vport = g->g->port;
		gp = w->snap ? l7_table_gwport(w->snap->t, g->g->port) : NULL;
		if (gp && gp->proto == RS_TCP) { /* no sniffing: a server may speak first */
			int one = 1;

			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			l7_tcp_gw_server(w, fd, &dc);
			continue;
		}
		if (gp && gp->tls) {
			int one = 1;

			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			__atomic_add_fetch(&w->c_conns, 1, __ATOMIC_RELAXED);
			l7_gwtls_accept(w, fd, &dc, gp); /* TLS first, then this as plaintext */
			continue;
		}
		dconn_begin(w, fd, &dc);
	}
}

void l7_gw_begin(struct l7w *w, int fd, const struct l7_dconn *proto)
{
	dconn_begin(w, fd, proto);
}

static void gwio_free(struct l7_dead *d)
{
	free((struct l7_gwio *)d);
}

/* The worker's epoll set holds exactly its snapshot's Gateway listeners (none while held or
 * draining). */
static void gw_sync(struct l7w *w)
{
	const struct l7_snap *s = w->snap;
	bool on = s && !w->held && !w->draining;

	for (int i = 0; i < w->ngio;) {
		struct l7_gwio *g = w->gio[i];
		bool keep = false;

		for (int k = 0; on && k < s->ngwl && !keep; k++)
			keep = s->gwl[k] == g->g;
		if (keep) {
			i++;
			continue;
		}
		l7_io_want(w, &g->io, 0);
		gwl_put(g->g);
		g->io.fd = -1; /* an event of this batch may still name it */
		l7_defer_free(w, &g->dead);
		w->gio[i] = w->gio[--w->ngio];
	}
	for (int k = 0; on && k < s->ngwl; k++) {
		struct l7_gwio *g, **v;
		bool have = false;

		for (int i = 0; i < w->ngio && !have; i++)
			have = w->gio[i]->g == s->gwl[k];
		if (have)
			continue;
		g = calloc(1, sizeof(*g));
		v = realloc(w->gio, (w->ngio + 1) * sizeof(*v));
		if (!g || !v) {
			free(g);
			if (v)
				w->gio = v;
			continue;
		}
		w->gio = v;
		g->dead.free = gwio_free;
		g->w = w;
		g->g = gwl_get(s->gwl[k]);
		g->io = (struct l7_io){.fd = g->g->fd, .on = on_gw_accept};
		l7_io_want(w, &g->io, EPOLLIN | EPOLLEXCLUSIVE);
		w->gio[w->ngio++] = g;
	}
}

/* ---------------- hand-offs and the loop ---------------- */

static void take_queue(struct l7w *w)
{
	struct l7_queued *q;
	struct l7_snap *snap;
	int n;

	pthread_mutex_lock(&w->mu);
	q = w->q;
	n = w->nq;
	w->q = NULL;
	w->nq = w->capq = 0;
	pthread_mutex_unlock(&w->mu);
	pthread_mutex_lock(&w->l->mu);
	snap = l7_snap_get(w->l->snap);
	pthread_mutex_unlock(&w->l->mu);
	if (snap != w->snap) {
		struct l7_snap *old = w->snap;

		w->snap = snap;
		gw_sync(w); /* (the old snapshot's listeners stay open until this is done) */
		l7_snap_put(old);
		l7_pool_drain(w); /* connections made under the old config's policy */
	} else {
		l7_snap_put(snap);
	}
	for (int i = 0; i < n; i++) {
		struct l7_dconn dc = {.role = L7_DEST};

		memcpy(dc.src_ip, q[i].in.src_ip, 4);
		memcpy(dc.dst_ip, q[i].in.dst_ip, 4);
		dc.dst_port = q[i].in.dst_port;
		snprintf(dc.principal, sizeof(dc.principal), "%s", q[i].in.principal);
		snprintf(dc.peer_ns, sizeof(dc.peer_ns), "%s", q[i].in.ns);
		dconn_begin(w, q[i].fd, &dc);
	}
	free(q);
}

static void drain_conns(struct l7w *w);

static void on_wake(struct l7_io *io, uint32_t ev)
{
	struct l7w *w = (struct l7w *)((char *)io - offsetof(struct l7w, wio));
	uint64_t v;

	(void)ev;
	if (read(w->wake, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_debug("l7: wake: %s", strerror(errno));
	take_queue(w);
	if (w->held && __atomic_load_n(&w->l->release, __ATOMIC_ACQUIRE) && !w->draining) {
		w->held = false;
		l7_io_want(w, &w->lio, EPOLLIN);
		gw_sync(w);
	}
	if (__atomic_load_n(&w->l->drain, __ATOMIC_ACQUIRE) && !w->draining) {
		w->draining = true; /* the listener is the next agent's */
		l7_io_close(w, &w->lio);
		w->lfd = -1;
		gw_sync(w); /* (the next agent accepts on the Gateway ports' sockets) */
		drain_conns(w);
	}
}

void l7_dconn_link(struct l7_dconn *dc)
{
	struct l7w *w = dc->w;

	if (dc->linked)
		return;
	dc->linked = true;
	dc->dprev = NULL;
	dc->dnext = w->dconns;
	if (w->dconns)
		w->dconns->dprev = dc;
	w->dconns = dc;
}

void l7_dconn_unlink(struct l7_dconn *dc)
{
	if (!dc->linked)
		return;
	dc->linked = false;
	if (dc->dprev)
		dc->dprev->dnext = dc->dnext;
	else
		dc->w->dconns = dc->dnext;
	if (dc->dnext)
		dc->dnext->dprev = dc->dprev;
	dc->dprev = dc->dnext = NULL;
}

/* An upgrade: every open connection is told (HTTP/2: GOAWAY; HTTP/1.1: an idle keep-alive
 * closes now, a busy one after its response), so the old agent's clients move to the next
 * agent as soon as what they have open is done, not at --drain-timeout. */
static void drain_conns(struct l7w *w)
{
	int n = 0;

	for (struct l7_dconn *dc = w->dconns, *next; dc; dc = next) {
		next = dc->dnext; /* drain may close dc (and unlink it) */
		/* (a peer agent's stream through the tunnel: the tunnel's own GOAWAY moves it) */
		if (dc->drain && dc->role == L7_SOURCE) {
			dc->drain(dc);
			n++;
		}
	}
	l7_pool_drain(w); /* idle upstream connections (busy ones close when they are done) */
	if (n)
		pr_info("l7: worker %d: draining %d HTTP connection(s)", w->id, n);
}

static void wake(struct l7w *w)
{
	uint64_t one = 1;

	if (write(w->wake, &one, sizeof(one)) < 0)
		pr_debug("l7: wake: %s", strerror(errno));
}

static void *worker_main(void *arg)
{
	struct l7w *w = arg;
	struct epoll_event ev[L7_EVENTS];
	char name[16];

	snprintf(name, sizeof(name), "bm-http-%d", w->id);
	pthread_setname_np(pthread_self(), name);
	take_queue(w);
	while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
		int n = epoll_wait(w->ep, ev, L7_EVENTS, timers_wait_ms(w));

		w->now = l7_now();
		for (int i = 0; i < n; i++) {
			struct l7_io *io = ev[i].data.ptr;

			if (io->fd >= 0 && io->mask)
				io->on(io, ev[i].events);
			run_later(w);
		}
		timers_run(w);
		if (w->pend)
			l7_pending_kick(w);
		run_later(w);
		free_dead(w);
		if (w->nspans && w->now - w->spans_at >= L7_LOG_FLUSH_MS)
			l7_spans_flush(w);
		/* access log lines go out every L7_LOG_FLUSH_MS or 16 KiB: not a write per request */
		if (lb_pending(&w->alog) &&
		    (lb_pending(&w->alog) >= 16 * 1024 || w->now - w->alog_at >= L7_LOG_FLUSH_MS)) {
			l7_log_flush(w->l->log, &w->alog);
			w->alog_at = w->now;
		}
	}
	return NULL;
}

/* ---------------- the API ---------------- */

struct l7 *l7_new(const struct l7_opts *o)
{
	struct l7 *l = calloc(1, sizeof(*l));
	int nw = o->workers > 0 ? o->workers : 2;

	if (!l)
		return NULL;
	if (nw > L7_MAX_WORKERS)
		nw = L7_MAX_WORKERS;
	l->o = *o;
	snprintf(l->node_ip, sizeof(l->node_ip), "%s", o->node_ip ? o->node_ip : "");
	snprintf(l->root_ns, sizeof(l->root_ns), "%s", o->root_ns ? o->root_ns : "istio-system");
	snprintf(l->node, sizeof(l->node), "%s", o->node ? o->node : "");
	if (o->trust_domain)
		snprintf(l->td, sizeof(l->td), "%s", o->trust_domain);
	l->o.node_ip = l->node_ip;
	l->o.root_ns = l->root_ns;
	l->o.node = l->node;
	l->o.trust_domain = o->trust_domain ? l->td : NULL;
	l->o.port = o->port ? o->port : BM_PORT_HTTP;
	l->o.workers = nw;
	pthread_mutex_init(&l->mu, NULL);
	l->o.access_log = NULL; /* the caller's string: not kept */
	l->log = l7_log_open(o->access_log);
	pthread_mutex_init(&l->trmu, NULL);
	if (o->tracing_endpoint) { /* the caller's string: kept here */
		snprintf(l->tr_endpoint, sizeof(l->tr_endpoint), "%s", o->tracing_endpoint);
		l->o.tracing_endpoint = l->tr_endpoint;
	}
	l->rl =
	    l7_rl_new(o->ratelimit_redis, o->home_netns, o->ratelimit_files, o->nratelimit_files);
	l->o.ratelimit_redis = NULL; /* (kept by l->rl) */
	l->o.ratelimit_files = NULL;
	l->w = calloc(nw, sizeof(*l->w));
	if (!l->w)
		goto fail;
	l->nw = nw;
	for (int i = 0; i < nw; i++) {
		struct l7w *w = &l->w[i];

		w->l = l;
		w->id = i;
		w->ep = w->wake = w->lfd = -1;
		pthread_mutex_init(&w->mu, NULL);
		l7_stats_init(&w->stats);
		if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || !w->rng)
			w->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)w;
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		w->lfd = dial_listen(l->node_ip, l->o.port, o->filter_prog, true, 1024);
		if (w->ep < 0 || w->wake < 0 || w->lfd < 0)
			goto fail;
		w->lio = (struct l7_io){.fd = w->lfd, .on = on_accept};
		w->wio = (struct l7_io){.fd = w->wake, .on = on_wake};
		if (o->hold)
			w->held = true; /* until l7_release */
		else
			l7_io_want(w, &w->lio, EPOLLIN);
		l7_io_want(w, &w->wio, EPOLLIN);
	}
	return l;
fail:
	l7_free(l);
	return NULL;
}

int l7_listeners(const struct l7 *l, int *fds, int max)
{
	int n = 0;

	for (int i = 0; i < l->nw && n < max; i++)
		if (l->w[i].lfd >= 0)
			fds[n++] = l->w[i].lfd;
	/* the Gateway ports' too: the next agent accepts on the same sockets (nothing waiting
	 * in their queues is lost) */
	pthread_mutex_lock((pthread_mutex_t *)&l->mu);
	for (int i = 0; l->snap && i < l->snap->ngwl && n < max; i++)
		fds[n++] = l->snap->gwl[i]->fd;
	pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
	return n;
}

void l7_drain(struct l7 *l)
{
	__atomic_store_n(&l->drain, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < l->nw; i++)
		wake(&l->w[i]);
}

void l7_give_maps(struct l7 *l)
{
	__atomic_store_n(&l->given, 1, __ATOMIC_RELEASE);
}

bool l7_maps_given(const struct l7w *w)
{
	return __atomic_load_n(&w->l->given, __ATOMIC_ACQUIRE);
}

void l7_release(struct l7 *l)
{
	__atomic_store_n(&l->release, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < l->nw; i++)
		wake(&l->w[i]);
}

unsigned long l7_busy(const struct l7 *l)
{
	unsigned long n = 0;

	for (int i = 0; i < l->nw; i++)
		n += __atomic_load_n(&l->w[i].c_active, __ATOMIC_RELAXED);
	return n;
}

int l7_start(struct l7 *l)
{
	for (int i = 0; i < l->nw; i++)
		if (pthread_create(&l->w[i].th, NULL, worker_main, &l->w[i])) {
			pr_warn("l7: worker thread: %s", strerror(errno));
			for (int j = 0; j < i; j++) {
				__atomic_store_n(&l->w[j].stop, true, __ATOMIC_RELEASE);
				wake(&l->w[j]);
				pthread_join(l->w[j].th, NULL);
			}
			return -1;
		}
	l->started = true;
	pr_info("l7: HTTP path on %s:%d, %d workers", l->node_ip, l->o.port, l->nw);
	return 0;
}

void l7_stop(struct l7 *l)
{
	for (int i = 0; l && l->started && i < l->nw; i++) {
		__atomic_store_n(&l->w[i].stop, true, __ATOMIC_RELEASE);
		wake(&l->w[i]);
		pthread_join(l->w[i].th, NULL);
	}
	if (l)
		l->started = false;
}

void l7_free(struct l7 *l)
{
	if (!l)
		return;
	l7_stop(l);
	for (int i = 0; l->w && i < l->nw; i++) {
		struct l7w *w = &l->w[i];

		/* open connections die with the process: the kernel resets them */
		l7_pool_free(w);
		for (int j = 0; j < w->ngio; j++) {
			gwl_put(w->gio[j]->g);
			free(w->gio[j]);
		}
		free(w->gio);
		free_dead(w);
		for (int j = 0; j < w->nq; j++)
			close(w->q[j].fd);
		free(w->q);
		free(w->heap);
		h_free(&w->pools);
		free(w->pv);
		l7_snap_put(w->snap);
		l7_stats_free(&w->stats);
		l7_log_flush(l->log, &w->alog); /* the last lines */
		lb_free(&w->alog);
		l7_rlc_free(w, w->rlc);
		for (int j = 0; j < w->nspans; j++)
			tr_span_free(w->spans[j]);
		w->nspans = 0;
		if (w->ep >= 0)
			close(w->ep);
		if (w->wake >= 0)
			close(w->wake);
		if (w->lfd >= 0)
			close(w->lfd);
		pthread_mutex_destroy(&w->mu);
	}
	free(l->w);
	l7_snap_put(l->snap);
	l7_log_close(l->log);
	l7_rl_free(l->rl);
	for (int i = 0; i < l->ntrs; i++) /* all of them told first: none waits for another */
		tr_exp_stop(l->trs[i]);
	for (int i = 0; i < l->ntrs; i++)
		tr_exp_free(l->trs[i]);
	pthread_mutex_destroy(&l->trmu);
	while (l->cbs) {
		struct l7_cb *cb = l->cbs;

		l->cbs = cb->next;
		free(cb);
	}
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* The circuit breakers of a cluster: the same ones across config changes. Under l->mu. */
static struct l7_cb *cb_for(struct l7 *l, const struct l7_cluster *cl)
{
	const struct traffic_policy *tp = cl->tp;
	char key[320];
	struct l7_cb *cb;

	/* a changed connectionPool is a new cluster, as Envoy rebuilds it: fresh counts */
	snprintf(key, sizeof(key), "%s/%s|%s|%u|%lld|%lld|%lld", cl->svc ? cl->svc->ns : "",
		 cl->svc ? cl->svc->name : (cl->fqdn ? cl->fqdn : ""), cl->name ? cl->name : "",
		 cl->pol.max_conns, tp ? (long long)tp->http1_max_pending : -1LL,
		 tp ? (long long)tp->http2_max_requests : -1LL,
		 tp ? (long long)tp->max_retries : -1LL);
	for (cb = l->cbs; cb; cb = cb->next)
		if (!strcmp(cb->key, key))
			return cb;
	cb = calloc(1, sizeof(*cb));
	if (!cb)
		return NULL;
	snprintf(cb->key, sizeof(cb->key), "%s", key);
	cb->next = l->cbs;
	l->cbs = cb;
	return cb;
}

/* The snapshot's Gateway listeners: the previous snapshot's for ports it had, new ones for
 * the rest, on the node's address (an upgrade's earlier agent hands its sockets over:
 * dial_listen claims them). Under l->mu, on the control thread. */
static void gw_listen(struct l7 *l, struct l7_snap *s, const struct l7_table *t)
{
	s->gwl = t->ngwports ? calloc(t->ngwports, sizeof(*s->gwl)) : NULL;
	for (int i = 0; s->gwl && i < t->ngwports; i++) {
		uint16_t port = t->gwports[i].port;
		struct l7_gwl *g = NULL;

		for (int k = 0; l->snap && k < l->snap->ngwl && !g; k++)
			if (l->snap->gwl[k]->port == port)
				g = gwl_get(l->snap->gwl[k]);
		if (!g) {
			/* no SO_REUSEPORT: nothing may join another listener's group (the HTTP
			 * path's own on 15006 is one; resolve.c refuses the mesh's ports) */
			int fd = dial_listen(l->node_ip, port, -1, false, 1024);

			if (fd < 0) {
				pr_warn("l7: gateway: cannot listen on %s:%u: %s (its servers are "
					"not served)",
					l->node_ip, port, strerror(errno));
				continue;
			}
			g = calloc(1, sizeof(*g));
			if (!g) {
				close(fd);
				continue;
			}
			g->refs = 1;
			g->fd = fd;
			g->port = port;
			pr_info("l7: gateway: listening on %s:%u", l->node_ip, port);
		}
		s->gwl[s->ngwl++] = g;
	}
}

void l7_publish(struct l7 *l, struct cfgref *cfg, struct l7_table *t)
{
	struct l7_snap *s, *old;

	pthread_mutex_lock(&l->mu);
	for (int i = 0; t && i < t->nclusters; i++)
		t->clusters[i].cb = cb_for(l, &t->clusters[i]);
	s = snap_new(cfg, t, ++l->gen);
	if (l->o.gateway && t && !__atomic_load_n(&l->drain, __ATOMIC_ACQUIRE))
		gw_listen(l, s, t);
	old = l->snap;
	l->snap = s;
	pthread_mutex_unlock(&l->mu);
	l7_snap_put(old);
	for (int i = 0; i < l->nw; i++)
		wake(&l->w[i]);
}

int l7_gw_ports(struct l7 *l, uint16_t *ports, int max)
{
	int n = 0;

	pthread_mutex_lock(&l->mu);
	for (int i = 0; l->snap && i < l->snap->ngwl && n < max; i++)
		ports[n++] = l->snap->gwl[i]->port;
	pthread_mutex_unlock(&l->mu);
	return n;
}

int l7_inbound(void *arg, int fd, const struct tunnel_stream *in)
{
	struct l7 *l = arg;
	unsigned i = __atomic_fetch_add(&l->next_w, 1, __ATOMIC_RELAXED) % l->nw;
	struct l7w *w = &l->w[i];
	int rc = 0;

	pthread_mutex_lock(&w->mu);
	if (w->nq == w->capq) {
		int cap = w->capq ? 2 * w->capq : 16;
		struct l7_queued *q = realloc(w->q, cap * sizeof(*q));

		if (q) {
			w->q = q;
			w->capq = cap;
		} else {
			rc = -1;
		}
	}
	if (!rc) {
		w->q[w->nq].fd = fd;
		w->q[w->nq].in = *in;
		w->nq++;
	}
	pthread_mutex_unlock(&w->mu);
	if (!rc)
		wake(w);
	return rc;
}

void l7_metrics(struct l7 *l, FILE *f)
{
	struct l7_stats *v[L7_MAX_WORKERS];
	uint64_t conns = 0, active = 0, reqs = 0, rej = 0, tlsf = 0;

	for (int i = 0; i < l->nw; i++) {
		v[i] = &l->w[i].stats;
		conns += __atomic_load_n(&l->w[i].c_conns, __ATOMIC_RELAXED);
		active += __atomic_load_n(&l->w[i].c_active, __ATOMIC_RELAXED);
		reqs += __atomic_load_n(&l->w[i].c_reqs, __ATOMIC_RELAXED);
		rej += __atomic_load_n(&l->w[i].c_rejected, __ATOMIC_RELAXED);
		tlsf += __atomic_load_n(&l->w[i].c_tls_failed, __ATOMIC_RELAXED);
	}
	l7_stats_render(v, l->nw, f);
	l7_rl_metrics(l->rl, f);
	{
		struct tr_stats t = {0}, one;

		pthread_mutex_lock(&l->trmu);
		for (int i = 0; i < l->ntrs; i++) {
			tr_exp_stats(l->trs[i], &one);
			t.exported += one.exported;
			t.dropped += one.dropped;
			t.failed += one.failed;
		}
		pthread_mutex_unlock(&l->trmu);
		fprintf(
		    f,
		    "# HELP bpfmesh_tracing_spans_total Spans the agent sent to its trace "
		    "collectors (Telemetry, MeshConfig, --tracing-endpoint).\n"
		    "# TYPE bpfmesh_tracing_spans_total counter\n"
		    "bpfmesh_tracing_spans_total %llu\n"
		    "# HELP bpfmesh_tracing_dropped_spans_total Spans lost: the exporter's queue "
		    "was full, or the collector did not take them (unreachable, not 2xx).\n"
		    "# TYPE bpfmesh_tracing_dropped_spans_total counter\n"
		    "bpfmesh_tracing_dropped_spans_total %llu\n",
		    (unsigned long long)t.exported, (unsigned long long)(t.dropped + t.failed));
	}
	fprintf(f,
		"# HELP bpfmesh_http_connections_total Downstream connections the HTTP path "
		"accepted.\n# TYPE bpfmesh_http_connections_total counter\n"
		"bpfmesh_http_connections_total %llu\n"
		"# HELP bpfmesh_http_connections_active Downstream connections open on the HTTP "
		"path.\n# TYPE bpfmesh_http_connections_active gauge\n"
		"bpfmesh_http_connections_active %llu\n"
		"# HELP bpfmesh_http_requests_total Requests the HTTP path handled (both "
		"roles).\n# TYPE bpfmesh_http_requests_total counter\n"
		"bpfmesh_http_requests_total %llu\n"
		"# HELP bpfmesh_http_rejected_total Connections to the HTTP port the kernel did "
		"not send there (closed at once).\n# TYPE bpfmesh_http_rejected_total counter\n"
		"bpfmesh_http_rejected_total %llu\n",
		(unsigned long long)conns, (unsigned long long)active, (unsigned long long)reqs,
		(unsigned long long)rej);
	fprintf(f,
		"# HELP bpfmesh_gateway_tls_handshake_failures_total TLS handshakes a Gateway's "
		"HTTPS port refused or lost (no certificate for the name, a client certificate "
		"MUTUAL does not accept, a protocol or cipher not allowed).\n"
		"# TYPE bpfmesh_gateway_tls_handshake_failures_total counter\n"
		"bpfmesh_gateway_tls_handshake_failures_total %llu\n",
		(unsigned long long)tlsf);
}
