// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tunnel.c: see tunnel.h. HBONE over HTTP/2 (ALPN h2, h2tun.h): a TLS connection (struct
 * tconn) carries CONNECT streams (struct hstream), each with its plaintext socket (the local
 * client, outbound; the local pod, inbound); outbound connections are pooled per (client
 * identity, server identity, peer node). HTTP/1.1 CONNECT (hbone.h) for peers without h2: one
 * tconn per tunnelled connection, a plaintext side and a TLS side, pump() moving what it can
 * both ways. Every socket is non-blocking in one epoll set. TLS 1.3 session tickets are cached
 * per (client identity, destination workload, peer node), so a new TLS connection resumes
 * instead of paying a full handshake with certificate verification.
 *
 * Threads: everything here runs on the tunnel's own data thread (tunnel_start), which owns
 * every socket and TLS object. The agent's control thread hands it, through tunnel_publish(),
 * immutable snapshots of the config in force and of the identities (certs.h); the thread
 * takes the newest between two batches of events, so a connection never sees a config change
 * in the middle of an event. Nothing on this thread blocks: no file, no CA, no config.
 *
 * What an unauthenticated peer can cost: a connection that has sent nothing holds a small
 * struct and a socket, no TLS state (that is made when its first bytes come), no relay
 * buffers (made once it is set up); handshakes pending per source address and in all are
 * capped; every connection not set up in SETUP_SECS goes; rejections are logged at most
 * LOG_BURST a second; and memory freed after a burst goes back to the system (malloc_trim).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <bpf/bpf.h>
#include "datapath.h"
#include "dial.h"
#include "bpfmesh.h"
#include "ca.h"
#include "certs.h"
#include "h2tun.h"
#include "hbone.h"
#include "cfgref.h"
#include "log.h"
#include "metrics.h"
#include "security.h"
#include "tunnel.h"

#define BUFSZ		   16384
#define HDRMAX		   2048
#define MAX_SESSIONS	   256
#define SETUP_SECS	   10	/* connect + handshake + CONNECT, or the connection is closed */
#define PENDING_PER_SOURCE 64	/* inbound connections not set up yet, per peer address */
#define PENDING_MAX	   1024 /* ... and in all */
#define PENDING_SLOTS	   2048 /* table of per-source counts (open addressing) */
#define LOG_BURST	   10	/* rejection lines a second; the rest are counted */
#define H2_PING_SECS	   10	/* HTTP/2: a PING after this long unheard; no ACK this long: gone */
#define POOL_IDLE_SECS	   300	/* a pooled connection without streams this long goes (ztunnel's) */
#define RESTART_TRIES	   3	/* a stream refused unprocessed starts again this often */
#define H1_MEMO		   64	/* peers that would not speak h2 (agents before it), remembered */
#define H1_MEMO_SECS	   60	/* ... for this long: their connections use HTTP/1.1 CONNECT */

enum ev_kind { EV_LISTEN_OUT, EV_LISTEN_IN, EV_LISTEN_POD, EV_PLAIN, EV_TLS, EV_WAKE, EV_H2S };

struct tconn;
struct hstream;
struct tev {
	enum ev_kind kind;
	struct tconn *c;
	struct hstream *hs;	/* EV_H2S: the stream whose pod socket this is */
	struct plisten *pl;	/* EV_LISTEN_POD: the pod's listener */
};

/* An HBONE listener in a local pod's network namespace (podnet.h): what it accepts is for
 * that pod only, with that pod's certificate whatever the client's SNI. */
struct plisten {
	struct tev ev;
	uint32_t pod_id;
	int fd;
	bool watched;
	struct plisten *next;
};

enum tstate {
	T_IN_WAIT,	 /* accepted, nothing heard yet: no TLS state */
	T_OUT_CONNECT,	 /* TCP to the peer agent in progress */
	T_OUT_HANDSHAKE, /* TLS client handshake */
	T_OUT_RESPONSE,	 /* CONNECT sent, reading the status line */
	T_IN_HANDSHAKE,	 /* TLS server handshake */
	T_IN_REQUEST,	 /* reading the CONNECT request */
	T_IN_CONNECT,	 /* TCP to the local pod in progress */
	T_RELAY,
	T_H2, /* inbound, ALPN h2: an HTTP/2 session of CONNECT streams (struct hstream) */
	T_DEAD,
};

struct buf {
	char d[BUFSZ];
	size_t len, off;
};

struct session {
	char key[512];
	SSL_SESSION *s;
	unsigned long used;
};

struct tconn {
	struct tunnel *t;
	enum tstate st;
	bool outbound;
	bool http; /* outbound: the HTTP path's requests (Bpfmesh-Protocol: http/1.1) */
	int pfd, sfd; /* plaintext side, TLS side */
	SSL *ssl;
	struct tev pev, sev;
	uint32_t pmask, smask; /* epoll interest registered */
	struct buf *p2s, *s2p; /* plaintext -> TLS, TLS -> plaintext (made at setup) */
	char hdr[HDRMAX];
	size_t hdr_len;
	bool p_eof, s_eof, p_shut, s_shut;
	struct dial_pass pass; /* inbound: the pass registered for the local pod (dial.h) */
	uint32_t src_pod;  /* outbound: the client pod as the kernel attested it (bm_orig) */
	uint8_t peer_src[16]; /* inbound: the source the pending counts are kept by (pend_src) */
	uint32_t listen_pod; /* inbound: accepted in this pod's namespace (0: the node's 15008) */
	bool pending;	   /* inbound: counted in the pending handshakes */
	char want_id[320]; /* outbound: the SPIFFE ID the server must present */
	char sess_key[512];
	char dst[64];	 /* "ip:port" of the destination workload */
	char src_ip[64]; /* the original client address */
	char peer[64];	 /* the other agent, "ip:port" */
	struct tdest *dest;	   /* inbound TCP relay: its destination-side series */
	struct tconn *next_dead;
	struct tconn *prev, *next; /* every connection not yet freed (setup deadlines) */
	time_t deadline;	   /* setup (connect, handshake, CONNECT) must be done by then */
	struct h2t *h2;		   /* T_H2: the HTTP/2 session (h2tun.h) */
	struct hstream *streams;   /* T_H2: its streams that have a pod side */
	time_t h2_heard;	   /* T_H2: the peer's last bytes */
	time_t h2_ping_at;	   /* T_H2: a PING is out since then (0: none) */
	bool pool;	   /* outbound HTTP/2: a pooled connection carrying CONNECT streams */
	bool pod_addr;	   /* outbound: dialed the destination pod's own address (in-pod) */
	char node_peer[64]; /* outbound: the destination's node agent, ip:15008 */
	char pool_key[512]; /* pool: client identity#generation|server identity|peer node */
	struct tconn *pprev, *pnext; /* pool: the tunnel's pooled connections */
	int nwait;		     /* pool: streams waiting for it to be set up */
	char src_ns[64], src_sa[256]; /* pool: the client identity its key names */
	time_t idle_since;	     /* pool: without streams since then */
};

/* One CONNECT stream of an HTTP/2 connection and its plaintext socket: inbound, the
 * connection to the local pod; outbound (out), the local client's connection. */
struct hstream {
	struct tconn *hc;	/* the connection it rides on */
	struct h2t_stream *hs;	/* NULL once released (outbound: until its connection is set up) */
	int pfd;		/* to the local pod, or from the local client */
	struct tev pev;
	uint32_t pmask;
	bool connecting, relaying, p_eof, p_shut, dead;
	struct dial_pass pass;
	struct tdest *dest;
	char src_ip[64], dst[64];
	bool out;	  /* outbound: ours, to the peer */
	bool waiting;	  /* outbound: its connection is still being set up */
	bool http;	  /* outbound: the HTTP path's requests (bpfmesh-protocol: http/1.1) */
	int tries;	  /* outbound: starts again after a refusal (at most RESTART_TRIES) */
	struct bm_orig o; /* outbound: the captured destination (to start again elsewhere) */
	time_t deadline;  /* outbound: the peer's answer must come by then */
	struct hstream *prev, *next; /* the connection's streams */
	struct hstream *next_dead;
};

/* One destination-side series (reporter="destination") of inbound TCP relays: written by the
 * data thread with atomics, the table grown only under dmu; read by /metrics. */
#define MAX_TDEST TUNNEL_MAX_DEST
struct tdest {
	uint8_t src[16], dst[16]; /* network order, IPv4 in the first 4 bytes */
	uint8_t family;		  /* BM_FAM_* */
	uint16_t port;
	uint64_t opened, closed, sent, received;
};

/* Counters, written by the data thread and read by the control thread's /metrics. */
struct tcounters {
	unsigned long out_accepted, out_rejected, out_failed, in_accepted, in_rejected, in_denied,
	    in_overload, in_http, full_handshakes, resumed, active, logs_suppressed, h2_conns,
	    h2_streams, h2_refused, h2_denied, h2_failed, out_h2_conns, out_h2_streams, h2_active;
};
#define CNT_ADD(t, f, v) __atomic_add_fetch(&(t)->n.f, (v), __ATOMIC_RELAXED)
#define CNT(t, f)	 CNT_ADD(t, f, 1)
#define CNT_GET(t, f)	 __atomic_load_n(&(t)->n.f, __ATOMIC_RELAXED)

struct tunnel {
	struct tunnel_opts o;
	SSL_CTX *cctx, *sctx;
	int ep, lout, lout6, lin, wake; /* lout6: 15001 on the node's IPv6 address, or -1 */
	struct tev ev_out, ev_out6, ev_in, ev_wake;
	/* what the control thread published (under mu), and the data thread's copies */
	pthread_mutex_t mu;
	struct cfgref *pub_cfg;
	struct idset *pub_ids;
	unsigned pub_gen, cur_gen;
	struct cfgref *cfg;
	const struct mesh_config *c;
	struct idset *ids;
	struct session sess[MAX_SESSIONS];
	unsigned long sess_clock;
	struct tconn *dead;
	struct tconn *live;
	struct tconn *pool; /* outbound HTTP/2 connections, new streams go on them */
	struct {
		char peer[64];
		time_t until;
	} h1[H1_MEMO]; /* peers that answered without h2 */
	struct hstream *hdead; /* streams closed in this batch of events */
	bool paused; /* listeners out of epoll: no fds left (EMFILE) */
	int drain;	     /* atomic: the control thread asked (tunnel_drain) */
	int release;	     /* atomic: tunnel_release was called */
	bool held;	     /* listeners not watched yet (tunnel_opts.hold) */
	time_t drained_at;   /* the data thread stopped accepting then (0: not draining) */
	bool goaway_sent;    /* the final GOAWAY to inbound HTTP/2 peers */
	unsigned long busy;  /* atomic: application connections relayed (tunnel_busy) */
	int busy_fresh;	     /* atomic: busy was counted after drain_begin */
	int next_tries;	     /* the tries of the stream os_restart is starting again */
	struct plisten *pl, *pl_dead; /* pods' listeners (data thread); closed in this batch */
	struct plisten_op {
		uint32_t pod_id;
		int fd; /* -1: close the pod's */
	} *plops;	     /* from podnet (control thread), under mu */
	int nplops, capplops;
	int ex_idx;
	pthread_t th;
	bool started;
	int stop; /* atomic */
	struct tcounters n;
	/* inbound connections not set up yet, per source (pend_src) */
	struct {
		uint8_t src[16];
		int count;
	} pend[PENDING_SLOTS];
	uint32_t pend_seed; /* random: no peer can choose addresses that share a slot */
	int npending;
	time_t log_sec;
	int log_n;
	unsigned long peak_active;
	pthread_mutex_t dmu;
	struct tdest *dest; /* MAX_TDEST slots */
	int ndest;
	bool dest_full_logged;
	/* connections handed over by the HTTP path (tunnel_adopt), under mu */
	struct adopted {
		int fd;
		struct bm_orig o;
		char src_ip[INET_ADDRSTRLEN];
		bool http;
	} *adopt;
	int nadopt, capadopt;
	/* the HTTP path's streams from peers go here (set before the data thread starts) */
	tunnel_http_fn http_in;
	void *http_arg;
};

static void free_dead(struct tunnel *t);
static void conn_close(struct tconn *c);
static void h2_teardown(struct tconn *c);
static void h2_flush(struct tconn *c);
static void out_start(struct tunnel *t, int fd, const char *src_ip, const struct bm_orig *o,
		      bool http);
static void pool_tick(struct tunnel *t, time_t now);
static void hs_close(struct hstream *s, bool reset);
static void hs_pump(struct hstream *s);
static void take_snapshot(struct tunnel *t);
static void listeners_watch(struct tunnel *t, bool on);
static void node_only_remember(struct tunnel *t, const char *node_peer, bool v6);
static void node_only_forget(struct tunnel *t, const char *node_peer, bool v6);
static void out_restart_all(struct tconn *c);
static bool node_only(struct tunnel *t, const char *node_peer, bool v6, time_t now);
static void os_restart(struct hstream *s);
static void drain_tick(struct tunnel *t, time_t now);

/* ---------- small helpers ---------- */

static void ssl_errs(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (!e)
		snprintf(buf, len, "connection closed");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

/* The address part of "ip:port" / "[ip]:port" (as tconn.dst and .peer hold them). */
static void host_of(const char *hostport, char *ip, size_t len)
{
	int port;

	if (hbone_parse_target(hostport, strlen(hostport), ip, len, &port))
		snprintf(ip, len, "?");
}

static int port_of(const char *hostport)
{
	char ip[64];
	int port = 0;

	return hbone_parse_target(hostport, strlen(hostport), ip, sizeof(ip), &port) ? 0 : port;
}

/* An address as 16 bytes (IPv4 in the first 4) and its family; false if it is none. */
static bool addr_bytes(const char *ip, uint8_t out[16], uint8_t *fam)
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, ip, out) == 1) {
		*fam = BM_FAM_V4;
		return true;
	}
	*fam = BM_FAM_V6;
	return inet_pton(AF_INET6, ip, out) == 1;
}

/* The SNI naming a pod's address: "10.0.0.1.pod.bpfmesh", an IPv6 address as its 32 hex
 * digits ("fd000244000200000000000000000003.pod.bpfmesh": a name has no ':'). */
static void sni_of(const char *ip, char *out, size_t len)
{
	uint8_t a[16];
	char hex[33];

	if (inet_pton(AF_INET6, ip, a) != 1) {
		snprintf(out, len, "%s.pod.bpfmesh", ip);
		return;
	}
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", a[i]);
	snprintf(out, len, "%s.pod.bpfmesh", hex);
}

/* The address part of such an SNI, in place: 32 hex digits become the IPv6 address. */
static void sni_ip6(char *ip, size_t len)
{
	uint8_t a[16];

	if (strlen(ip) != 32 || strspn(ip, "0123456789abcdefABCDEF") != 32)
		return;
	for (int i = 0; i < 16; i++) {
		unsigned v;

		if (sscanf(ip + 2 * i, "%2x", &v) != 1)
			return;
		a[i] = (uint8_t)v;
	}
	inet_ntop(AF_INET6, a, ip, len);
}

/* Two IPv6 addresses written differently (fd00::1, fd00:0::1) are one. */
static bool same_ip6(const char *a, const char *b)
{
	uint8_t x[16], y[16];

	return inet_pton(AF_INET6, a, x) == 1 && inet_pton(AF_INET6, b, y) == 1 &&
	       !memcmp(x, y, 16);
}

/* The source a peer's pending handshakes are counted as: its IPv4 address (v4-mapped, as a
 * dual-stack listener sees it), or its IPv6 /64 (one host picks any address of its /64). */
static void pend_src(const union dial_addr *a, uint8_t out[16])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(out, 0, 16);
	if (a->sa.sa_family == AF_INET) {
		memcpy(out, mapped, 12);
		memcpy(out + 12, &a->in4.sin_addr, 4);
	} else if (IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr)) {
		memcpy(out, a->in6.sin6_addr.s6_addr, 16);
	} else {
		memcpy(out, a->in6.sin6_addr.s6_addr, 8);
	}
}

static const struct workload_obj *pod_by_ip(const struct mesh_config *c, const char *ip)
{
	for (int i = 0; c && i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];

		if (w->kind != WL_POD)
			continue;
		for (int a = 0; a < w->naddresses; a++)
			if (!strcmp(w->addresses[a], ip))
				return w;
	}
	return NULL;
}

static const char *sa_of(const struct workload_obj *w)
{
	return w->service_account ? w->service_account : "default";
}

/* ---------- what unauthenticated peers may cost ---------- */

/* A rejection line, at most LOG_BURST a second (the rest counted, and said once). */
static bool log_ok(struct tunnel *t)
{
	time_t now = time(NULL);

	if (now != t->log_sec) {
		if (t->log_n > LOG_BURST)
			pr_info("tunnel: %d similar lines suppressed in the last second",
				t->log_n - LOG_BURST);
		t->log_sec = now;
		t->log_n = 0;
	}
	if (++t->log_n <= LOG_BURST)
		return true;
	CNT(t, logs_suppressed);
	return false;
}

static int *pend_slot(struct tunnel *t, const uint8_t src[16], bool add)
{
	uint32_t h = t->pend_seed;

	for (int i = 0; i < 16; i++)
		h = (h ^ src[i]) * 16777619u;
	h %= PENDING_SLOTS;
	for (int i = 0; i < PENDING_SLOTS; i++, h = (h + 1) % PENDING_SLOTS) {
		if (t->pend[h].count && !memcmp(t->pend[h].src, src, 16))
			return &t->pend[h].count;
		if (!t->pend[h].count) {
			if (!add)
				continue; /* a freed slot: the address may sit further on */
			memcpy(t->pend[h].src, src, 16);
			return &t->pend[h].count;
		}
	}
	return NULL;
}

/* Count an inbound connection as pending; false (and nothing counted) over a cap. */
static bool pend_take(struct tconn *c)
{
	struct tunnel *t = c->t;
	int *n = pend_slot(t, c->peer_src, false);

	if (!n)
		n = pend_slot(t, c->peer_src, true);
	if (!n || *n >= PENDING_PER_SOURCE || t->npending >= PENDING_MAX)
		return false;
	(*n)++;
	t->npending++;
	c->pending = true;
	return true;
}

static void pend_drop(struct tconn *c)
{
	int *n;

	if (!c->pending)
		return;
	c->pending = false;
	c->t->npending--;
	n = pend_slot(c->t, c->peer_src, false);
	if (n && *n > 0)
		--*n;
}

/* ---------- HBONE listeners in pods' namespaces ---------- */

static void pl_watch(struct tunnel *t, struct plisten *pl, bool on)
{
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = &pl->ev};

	if (pl->watched == on || pl->fd < 0)
		return;
	epoll_ctl(t->ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, pl->fd, &e);
	pl->watched = on;
}

static void pl_close(struct tunnel *t, struct plisten **pp)
{
	struct plisten *pl = *pp;

	pl_watch(t, pl, false);
	close(pl->fd);
	pl->fd = -1;
	*pp = pl->next;
	pl->next = t->pl_dead; /* events of this batch may still name it */
	t->pl_dead = pl;
}

/* What podnet handed over or took back since the last wake. */
static void take_pod_listeners(struct tunnel *t)
{
	struct plisten_op *ops;
	int n;

	pthread_mutex_lock(&t->mu);
	ops = t->plops;
	n = t->nplops;
	t->plops = NULL;
	t->nplops = t->capplops = 0;
	pthread_mutex_unlock(&t->mu);
	for (int i = 0; i < n; i++) {
		for (struct plisten **pp = &t->pl; *pp; pp = &(*pp)->next)
			if ((*pp)->pod_id == ops[i].pod_id) {
				pl_close(t, pp);
				break;
			}
		if (ops[i].fd < 0)
			continue;
		struct plisten *pl = calloc(1, sizeof(*pl));

		if (!pl || t->drained_at) {
			free(pl);
			close(ops[i].fd);
			continue;
		}
		pl->pod_id = ops[i].pod_id;
		pl->fd = ops[i].fd;
		pl->ev = (struct tev){.kind = EV_LISTEN_POD, .pl = pl};
		pl->next = t->pl;
		t->pl = pl;
		if (!t->held && !t->paused)
			pl_watch(t, pl, true);
	}
	free(ops);
}

static int pl_op(struct tunnel *t, uint32_t pod_id, int fd)
{
	uint64_t one = 1;
	int rc = 0;

	pthread_mutex_lock(&t->mu);
	if (t->nplops == t->capplops) {
		int cap = t->capplops ? 2 * t->capplops : 16;
		struct plisten_op *v = realloc(t->plops, (size_t)cap * sizeof(*v));

		if (v) {
			t->plops = v;
			t->capplops = cap;
		}
	}
	if (t->nplops < t->capplops)
		t->plops[t->nplops++] = (struct plisten_op){.pod_id = pod_id, .fd = fd};
	else
		rc = -1;
	pthread_mutex_unlock(&t->mu);
	if (!rc && write(t->wake, &one, sizeof(one)) < 0)
		pr_debug("tunnel: wake: %s", strerror(errno));
	return rc;
}

int tunnel_pod_listen(void *arg, uint32_t pod_id, int fd)
{
	return pl_op(arg, pod_id, fd);
}

void tunnel_pod_unlisten(void *arg, uint32_t pod_id)
{
	while (pl_op(arg, pod_id, -1))
		usleep(1000); /* out of memory for the queue: the listener must not stay */
}

/* ---------- draining (an upgrade: the next agent has the listeners) ---------- */

static void drain_begin(struct tunnel *t)
{
	if (!t->paused && !t->held)
		listeners_watch(t, false);
	close(t->lout);
	if (t->lout6 >= 0)
		close(t->lout6);
	close(t->lin);
	t->lout = t->lout6 = t->lin = -1;
	while (t->pl) /* the next agent has its own in bm_hbone */
		pl_close(t, &t->pl);
	t->drained_at = time(NULL);
	/* peers stop opening streams here at once; the final GOAWAY follows a second later, so
	 * a stream already on its way is still served (RFC 9113 section 6.8) */
	for (struct tconn *c = t->live; c; c = c->next)
		if (c->st == T_H2 && !c->outbound) {
			h2t_shutdown_notice(c->h2);
			h2_flush(c);
		}
	drain_tick(t, t->drained_at); /* counted at once, for tunnel_busy */
	pr_info("tunnel: draining: the next agent accepts; relaying what is open");
}

static void drain_tick(struct tunnel *t, time_t now)
{
	unsigned long busy = 0;

	if (t->drained_at && !t->goaway_sent && now - t->drained_at >= 1) {
		t->goaway_sent = true;
		for (struct tconn *c = t->live; c; c = c->next)
			if (c->st == T_H2 && !c->outbound) {
				h2t_goaway(c->h2);
				h2_flush(c); /* closes it when no stream is open */
			}
	}
	for (struct tconn *c = t->live; c; c = c->next) {
		if (c->st == T_DEAD)
			continue;
		if (c->h2 || c->pool)
			for (struct hstream *s = c->streams; s; s = s->next)
				busy += !s->dead;
		else
			busy++;
	}
	__atomic_store_n(&t->busy, busy, __ATOMIC_RELAXED);
	if (t->drained_at) /* nothing new is accepted: the count only goes down from here */
		__atomic_store_n(&t->busy_fresh, 1, __ATOMIC_RELEASE);
}

static void tick(struct tunnel *t, time_t now)
{
	unsigned long active = CNT_GET(t, active);

	/* a connection still setting up after SETUP_SECS (a peer that says nothing) goes */
	for (struct tconn *c = t->live; c; c = c->next) {
		if (c->st == T_RELAY || c->st == T_H2 || c->st == T_DEAD || now < c->deadline)
			continue;
		if (log_ok(t))
			pr_info("tunnel: %s %s: not set up after %d s; closed",
				c->outbound ? c->src_ip : c->peer, c->dst, SETUP_SECS);
		if (c->outbound)
			CNT_ADD(t, out_failed, c->pool ? (unsigned long)c->nwait : 1UL);
		else
			CNT(t, in_rejected);
		conn_close(c);
	}
	/* HTTP/2 keepalive: a peer that went away without a word (its node lost power) takes its
	 * streams and their pod connections with it after 2 x H2_PING_SECS */
	for (struct tconn *c = t->live; c; c = c->next) {
		if (c->st != T_H2)
			continue;
		if (c->h2_ping_at && h2t_ping_acked(c->h2)) {
			c->h2_ping_at = 0;
		} else if (c->h2_ping_at && now - c->h2_ping_at >= H2_PING_SECS) {
			if (log_ok(t))
				pr_info("tunnel: h2 %s (%s): no answer to PING in %d s; closed",
					c->peer, c->want_id, H2_PING_SECS);
			conn_close(c);
		} else if (!c->h2_ping_at && now - c->h2_heard >= H2_PING_SECS) {
			h2t_ping(c->h2);
			c->h2_ping_at = now;
			h2_flush(c);
		}
	}
	pool_tick(t, now);
	drain_tick(t, now);
	free_dead(t);
	if (t->paused && !t->drained_at && !t->held)
		listeners_watch(t, true);
	/* after a burst, give the memory back: glibc keeps freed heap for reuse otherwise */
	if (active > t->peak_active)
		t->peak_active = active;
	if (t->peak_active >= 64 && active < t->peak_active / 4) {
		malloc_trim(0);
		t->peak_active = active;
	}
}

static int use_ident(SSL *ssl, const struct ident *id)
{
	return SSL_use_cert_and_key(ssl, id->cert, id->key, id->chain, 1) == 1 ? 0 : -1;
}

/* ---------- session cache (client side) ---------- */

static struct session *sess_find(struct tunnel *t, const char *key)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (t->sess[i].s && !strcmp(t->sess[i].key, key))
			return &t->sess[i];
	return NULL;
}

static int on_new_session(SSL *ssl, SSL_SESSION *s)
{
	struct tconn *c = SSL_get_ex_data(
	    ssl, ((struct tunnel *)SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)))->ex_idx);
	struct session *slot;
	struct tunnel *t;

	if (!c || !c->sess_key[0])
		return 0;
	t = c->t;
	slot = sess_find(t, c->sess_key);
	if (!slot) {
		slot = &t->sess[0];
		for (int i = 0; i < MAX_SESSIONS; i++) {
			if (!t->sess[i].s) {
				slot = &t->sess[i];
				break;
			}
			if (t->sess[i].used < slot->used)
				slot = &t->sess[i];
		}
	}
	if (slot->s)
		SSL_SESSION_free(slot->s);
	snprintf(slot->key, sizeof(slot->key), "%s", c->sess_key);
	slot->s = s;
	slot->used = ++t->sess_clock;
	return 1; /* we keep the reference */
}

/* ---------- connection lifecycle ---------- */

static void listeners_watch(struct tunnel *t, bool on)
{
	struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = &t->ev_out};
	struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = &t->ev_in};
	int op = on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL;

	struct epoll_event e3 = {.events = EPOLLIN, .data.ptr = &t->ev_out6};

	epoll_ctl(t->ep, op, t->lout, &e1);
	if (t->lout6 >= 0)
		epoll_ctl(t->ep, op, t->lout6, &e3);
	epoll_ctl(t->ep, op, t->lin, &e2);
	for (struct plisten *pl = t->pl; pl; pl = pl->next)
		pl_watch(t, pl, on);
	t->paused = !on;
}

/* Out of fds: a readable listener would wake the loop forever. Stop watching the listeners
 * until the next tick (connections keep waiting in the backlog). */
static void accept_failed(struct tunnel *t)
{
	if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
	    !t->paused) {
		pr_warn("tunnel: accept: %s; not accepting for a second", strerror(errno));
		listeners_watch(t, false);
	}
}

static void ep_set(struct tconn *c, int fd, struct tev *ev, uint32_t *cur, uint32_t want)
{
	struct epoll_event e = {.events = want, .data.ptr = ev};

	if (fd < 0 || *cur == want)
		return;
	if (!*cur)
		epoll_ctl(c->t->ep, EPOLL_CTL_ADD, fd, &e);
	else if (!want)
		epoll_ctl(c->t->ep, EPOLL_CTL_DEL, fd, NULL);
	else
		epoll_ctl(c->t->ep, EPOLL_CTL_MOD, fd, &e);
	*cur = want;
}

static void attest_drop(struct tconn *c)
{
	dial_pass_drop(c->t->o.fds->attest, &c->pass);
}

/* The series of a relay from src to the local pod dst:port (made on first use), or NULL. */
/* The series of a delivery from src_ip to "dst ip:port" (NULL when the table is full). */
static struct tdest *tdest_get(struct tunnel *t, const char *src_ip, const char *dst)
{
	struct tdest *d = NULL, k = {.port = (uint16_t)port_of(dst)};
	uint8_t sfam;
	char ip[64];

	host_of(dst, ip, sizeof(ip));
	if (!addr_bytes(ip, k.dst, &k.family))
		return NULL;
	if (!addr_bytes(src_ip, k.src, &sfam) || sfam != k.family)
		memset(k.src, 0, sizeof(k.src)); /* unknown client */
	pthread_mutex_lock(&t->dmu);
	for (int i = 0; i < t->ndest && !d; i++)
		if (t->dest[i].family == k.family && t->dest[i].port == k.port &&
		    !memcmp(t->dest[i].src, k.src, 16) && !memcmp(t->dest[i].dst, k.dst, 16))
			d = &t->dest[i];
	if (!d && t->dest && t->ndest < MAX_TDEST) {
		d = &t->dest[t->ndest];
		*d = k;
		__atomic_store_n(&t->ndest, t->ndest + 1, __ATOMIC_RELEASE);
	} else if (!d && !t->dest_full_logged) {
		t->dest_full_logged = true;
		pr_warn("tunnel: %d client/pod/port triples counted: new ones are not "
			"(destination-side metrics)", MAX_TDEST);
	}
	pthread_mutex_unlock(&t->dmu);
	return d;
}

int tunnel_dest_counts(struct tunnel *t, struct metrics_dest_tcp *out, int max)
{
	int n;

	pthread_mutex_lock(&t->dmu);
	n = t->ndest < max ? t->ndest : max;
	for (int i = 0; i < n; i++) {
		const struct tdest *d = &t->dest[i];

		memcpy(out[i].src, d->src, 16);
		memcpy(out[i].dst, d->dst, 16);
		out[i].family = d->family;
		out[i].port = d->port;
		out[i].opened = __atomic_load_n(&d->opened, __ATOMIC_RELAXED);
		out[i].closed = __atomic_load_n(&d->closed, __ATOMIC_RELAXED);
		out[i].sent = __atomic_load_n(&d->sent, __ATOMIC_RELAXED);
		out[i].received = __atomic_load_n(&d->received, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&t->dmu);
	return n;
}

#define DEST_ADD(c, f, v)                                                                          \
	do {                                                                                       \
		if ((c)->dest)                                                                     \
			__atomic_add_fetch(&(c)->dest->f, (v), __ATOMIC_RELAXED);                  \
	} while (0)

static void conn_close(struct tconn *c)
{
	if (c->st == T_DEAD)
		return;
	if (c->pool) { /* no new streams on it */
		if (c->pprev)
			c->pprev->pnext = c->pnext;
		else
			c->t->pool = c->pnext;
		if (c->pnext)
			c->pnext->pprev = c->pprev;
		c->pprev = c->pnext = NULL;
	}
	if (c->h2 || c->streams) {
		c->st = T_DEAD; /* h2_flush from a stream's close does nothing now */
		h2_teardown(c);
	}
	DEST_ADD(c, closed, 1);
	c->st = T_DEAD;
	pend_drop(c);
	ep_set(c, c->pfd, &c->pev, &c->pmask, 0);
	ep_set(c, c->sfd, &c->sev, &c->smask, 0);
	attest_drop(c);
	if (c->ssl)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->pfd >= 0)
		close(c->pfd);
	if (c->sfd >= 0)
		close(c->sfd);
	c->pfd = c->sfd = -1;
	CNT_ADD(c->t, active, -1UL);
	ERR_clear_error(); /* what this connection's failure queued must not fail the next one */
	c->next_dead = c->t->dead; /* freed after this batch of events */
	c->t->dead = c;
}

static struct tconn *conn_new(struct tunnel *t, bool outbound)
{
	struct tconn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->t = t;
	c->outbound = outbound;
	c->pfd = c->sfd = -1;
	c->pev = (struct tev){.kind = EV_PLAIN, .c = c};
	c->sev = (struct tev){.kind = EV_TLS, .c = c};
	c->deadline = time(NULL) + SETUP_SECS;
	c->next = t->live;
	if (t->live)
		t->live->prev = c;
	t->live = c;
	CNT(t, active);
	return c;
}

static int tcp_connect(const struct sockaddr *dst, const struct sockaddr *src)
{
	int fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	/* the port is picked at connect, per 4-tuple, as for an unbound socket */
	if (src)
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	if (src && bind(fd, src, dial_addr_len(src))) {
		close(fd);
		return -1;
	}
	if (connect(fd, dst, dial_addr_len(dst)) && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The relay buffers, made when a connection has passed setup far enough to need them. */
static bool conn_bufs(struct tconn *c)
{
	if (!c->p2s)
		c->p2s = calloc(1, sizeof(*c->p2s));
	if (!c->s2p)
		c->s2p = calloc(1, sizeof(*c->s2p));
	return c->p2s && c->s2p;
}

static void buf_put(struct buf *b, const char *d, size_t n)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (n > sizeof(b->d) - b->len)
		n = sizeof(b->d) - b->len;
	memcpy(b->d + b->len, d, n);
	b->len += n;
}

/* ---------- relay ---------- */

/* TLS I/O result: >0 bytes, 0 would block (*want set), -1 closed/failed. */
static int tls_io(struct tconn *c, int r, uint32_t *want)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		*want |= EPOLLIN;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*want |= EPOLLOUT;
		return 0;
	default:
		return -1;
	}
}

/* A handshake step that did not finish: true when it waits for the socket (registered),
 * false when it failed, with the reason (the certificate check's, if that was it) in why. */
static bool handshake_pending(struct tconn *c, int r, char *why, size_t len)
{
	uint32_t want = 0;
	char e[256];
	long v;

	if (tls_io(c, r, &want) == 0) {
		ep_set(c, c->sfd, &c->sev, &c->smask, want);
		return true;
	}
	v = SSL_get_verify_result(c->ssl);
	ssl_errs(e, sizeof(e));
	snprintf(why, len, "TLS handshake failed: %s",
		 v != X509_V_OK ? X509_verify_cert_error_string(v) : e);
	return false;
}

/* Move what can move both ways; then register the readiness still needed. */
static void pump(struct tconn *c)
{
	uint32_t pw = 0, sw = 0;
	bool progress = true;

	while (progress && c->st != T_DEAD) {
		progress = false;
		/* plaintext -> TLS */
		if (c->st == T_RELAY && !c->p_eof && c->p2s->len == c->p2s->off) {
			ssize_t n = read(c->pfd, c->p2s->d, sizeof(c->p2s->d));

			if (n > 0) {
				DEST_ADD(c, sent, (uint64_t)n); /* the pod answers its client */
				c->p2s->len = n;
				c->p2s->off = 0;
				progress = true;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				c->p_eof = true;
				progress = true;
				if (n < 0) { /* reset: pass it on as a close */
					conn_close(c);
					return;
				}
			}
		}
		if (c->p2s->len > c->p2s->off) {
			int r = SSL_write(c->ssl, c->p2s->d + c->p2s->off,
					  (int)(c->p2s->len - c->p2s->off));

			if (r > 0) {
				c->p2s->off += r;
				progress = true;
			} else if (tls_io(c, r, &sw) < 0) {
				conn_close(c);
				return;
			}
		}
		if (c->st == T_RELAY && c->p_eof && c->p2s->off == c->p2s->len && !c->s_shut) {
			/* close_notify: TLS 1.3 half-close; retried until it is out of OpenSSL's
			 * buffer, or the peer never sees the end */
			int r = SSL_shutdown(c->ssl);

			if (r >= 0) {
				c->s_shut = true;
				progress = true;
			} else if (tls_io(c, r, &sw) < 0) {
				conn_close(c);
				return;
			}
		}
		/* TLS -> plaintext */
		if (!c->s_eof && c->s2p->len == c->s2p->off &&
		    (c->st == T_RELAY || c->st == T_IN_CONNECT)) {
			int r;

			if (c->st == T_IN_CONNECT)
				goto out_read; /* keep early bytes until the pod is connected */
			r = SSL_read(c->ssl, c->s2p->d, sizeof(c->s2p->d));
			if (r > 0) {
				c->s2p->len = r;
				c->s2p->off = 0;
				progress = true;
			} else if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN) {
				c->s_eof = true;
				progress = true;
			} else if (tls_io(c, r, &sw) < 0) {
				conn_close(c);
				return;
			}
		}
	out_read:
		if (c->st == T_RELAY && c->s2p->len > c->s2p->off) {
			ssize_t n =
			    write(c->pfd, c->s2p->d + c->s2p->off, c->s2p->len - c->s2p->off);

			if (n > 0) {
				DEST_ADD(c, received, (uint64_t)n);
				c->s2p->off += n;
				progress = true;
			} else if (n < 0 && errno == EAGAIN) {
				pw |= EPOLLOUT;
			} else {
				conn_close(c);
				return;
			}
		}
		if (c->st == T_RELAY && c->s_eof && c->s2p->off == c->s2p->len && !c->p_shut) {
			shutdown(c->pfd, SHUT_WR);
			c->p_shut = true;
			progress = true;
		}
	}
	if (c->st == T_DEAD)
		return;
	if (c->p_eof && c->s_eof && c->p_shut && c->s_shut) {
		conn_close(c);
		return;
	}
	if (c->st == T_RELAY && !c->p_eof && c->p2s->len == c->p2s->off)
		pw |= EPOLLIN;
	if (c->st == T_RELAY && !c->s_eof && c->s2p->len == c->s2p->off)
		sw |= EPOLLIN;
	ep_set(c, c->pfd, &c->pev, &c->pmask, pw);
	ep_set(c, c->sfd, &c->sev, &c->smask, sw); /* nothing wanted: no interest, no spinning */
}

/* ---------- outbound: local client -> peer agent ---------- */

static void out_fail(struct tconn *c, const char *why)
{
	if (c->pool)
		pr_info("tunnel: h2 %s -> %s via %s: %s; %d connection%s closed", c->src_ip, c->dst,
			c->peer, why, c->nwait, c->nwait == 1 ? "" : "s");
	else
		pr_info("tunnel: %s -> %s via %s: %s; connection closed", c->src_ip, c->dst,
			c->peer, why);
	CNT_ADD(c->t, out_failed, c->pool ? (unsigned long)c->nwait : 1UL);
	conn_close(c);
}

static void out_h2_ready(struct tconn *c);

static void out_handshake(struct tconn *c)
{
	char got[320] = "", why[600];
	X509 *peer;
	int r = SSL_connect(c->ssl);

	if (r != 1) {
		if (handshake_pending(c, r, why, sizeof(why)))
			return;
		out_fail(c, why);
		return;
	}
	peer = SSL_get0_peer_certificate(c->ssl);
	if (!peer || ca_spiffe_id(peer, got, sizeof(got)) || strcmp(got, c->want_id)) {
		snprintf(why, sizeof(why), "server presented identity %s, want %s",
			 got[0] ? got : "(none)", c->want_id);
		out_fail(c, why);
		return;
	}
	if (SSL_session_reused(c->ssl))
		CNT(c->t, resumed);
	else
		CNT(c->t, full_handshakes);
	if (c->pool) {
		out_h2_ready(c);
		return;
	}
	if (!conn_bufs(c)) {
		out_fail(c, "out of memory");
		return;
	}
	SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	c->st = T_OUT_RESPONSE;
	{
		char fwd[96];

		hbone_forwarded_value(c->src_ip, fwd, sizeof(fwd)); /* IPv6 quoted, RFC 7239 */
		snprintf(why, sizeof(why),
			 "CONNECT %s HTTP/1.1\r\nHost: %s\r\nForwarded: %s\r\n%s\r\n", c->dst,
			 c->dst, fwd, c->http ? "Bpfmesh-Protocol: http/1.1\r\n" : "");
	}
	buf_put(c->p2s, why, strlen(why));
	pump(c);
	ep_set(c, c->sfd, &c->sev, &c->smask, EPOLLIN | (c->p2s->off < c->p2s->len ? EPOLLOUT : 0));
}

/* Read the CONNECT response; 200 starts the relay, anything else closes. */
static void out_response(struct tconn *c)
{
	uint32_t want = 0;
	size_t head;
	int r, parsed, status;

	if (c->p2s && c->p2s->len > c->p2s->off)
		pump(c);
	while (c->st == T_OUT_RESPONSE) {
		r = SSL_read(c->ssl, c->hdr + c->hdr_len, sizeof(c->hdr) - 1 - c->hdr_len);
		if (r <= 0) {
			if (tls_io(c, r, &want) == 0) {
				ep_set(c, c->sfd, &c->sev, &c->smask, want | EPOLLIN);
				return;
			}
			out_fail(c, "peer agent closed the tunnel before answering");
			return;
		}
		c->hdr_len += r;
		parsed =
		    hbone_parse_response(c->hdr, c->hdr_len, sizeof(c->hdr) - 1, &status, &head);
		if (parsed == 0)
			continue;
		if (parsed < 0) {
			out_fail(c, "malformed or oversized response from peer agent");
			return;
		}
		if (status != 200) {
			char why[128];

			snprintf(why, sizeof(why), "peer agent answered \"%.*s\"",
				 (int)strcspn(c->hdr, "\r"), c->hdr);
			out_fail(c, why);
			return;
		}
		buf_put(c->s2p, c->hdr + head, c->hdr_len - head);
		c->st = T_RELAY;
		pr_debug("tunnel: %s -> %s via %s open", c->src_ip, c->dst, c->peer);
		pump(c);
	}
}

/* The client a connection is carried for: the pod the kernel attested, or (BM_POD_ID_GATEWAY)
 * this agent's ingress gateway (gateway.h), which is no pod of the config. */
static const struct workload_obj *client_pod(const struct tunnel *t, uint32_t id)
{
	if (id == BM_POD_ID_GATEWAY)
		return t->o.gateway;
	return config_pod_by_id(t->c, id);
}

static void out_connected(struct tconn *c)
{
	const struct ident *id;
	struct session *s;
	const struct workload_obj *src;
	char sni[96], ip[64];
	bool v6 = strchr(c->dst, '[') != NULL;

	if (!dial_done(c->sfd)) {
		if (c->pool && c->pod_addr) {
			/* the pod's own 15008 refused: its node's agent listens only on the node
			 * address (an earlier version); its waiting connections go there */
			pr_info("tunnel: %s refused (no HBONE listener in the pod); %s for %d s",
				c->peer, c->node_peer, H1_MEMO_SECS);
			node_only_remember(c->t, c->node_peer, v6);
			out_restart_all(c);
			return;
		}
		if (c->pool && node_only(c->t, c->node_peer, v6, time(NULL))) {
			/* the node's address does not answer either (that agent is gone): the pod's
			 * own address again, for a ztunnel there or the next agent */
			node_only_forget(c->t, c->node_peer, v6);
			pr_info("tunnel: %s unreachable; the pod's own 15008 again", c->peer);
			out_restart_all(c);
			return;
		}
		out_fail(c, "peer agent unreachable");
		return;
	}
	/* the client is who the kernel says opened the connection (its cgroup, recorded with
	 * the captured destination), never whoever owns its source address in the config */
	src = client_pod(c->t, c->src_pod);
	if (c->pool) /* the identity of its key, whichever of the waiting pods may have gone */
		id = idset_find(c->t->ids, c->src_ns, c->src_sa);
	else
		id = src && src->kind == WL_POD ? idset_find(c->t->ids, src->ns, sa_of(src))
						: NULL;
	if (!id) {
		out_fail(c, "no identity for the client");
		return;
	}
	c->ssl = SSL_new(c->t->cctx);
	if (!c->ssl || use_ident(c->ssl, id)) {
		out_fail(c, "TLS setup failed");
		return;
	}
	SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS); /* until set up */
	SSL_set_ex_data(c->ssl, c->t->ex_idx, c);
	/* SNI names the destination pod: the server presents that workload's certificate */
	host_of(c->dst, ip, sizeof(ip));
	sni_of(ip, sni, sizeof(sni));
	SSL_set_tlsext_host_name(c->ssl, sni);
	if (c->pool) /* HBONE's HTTP/2 (an agent that does not select it gets HTTP/1.1) */
		SSL_set_alpn_protos(c->ssl, (const unsigned char *)"\x02h2", 3);
	snprintf(c->sess_key, sizeof(c->sess_key), "%s#%u|%s|%s|%s", id->spiffe, id->gen,
		 c->want_id, sni, c->peer);
	s = sess_find(c->t, c->sess_key);
	if (s) {
		SSL_set_session(c->ssl, s->s);
		s->used = ++c->t->sess_clock;
	}
	SSL_set_fd(c->ssl, c->sfd);
	c->st = T_OUT_HANDSHAKE;
	out_handshake(c);
}

static void out_accept(struct tunnel *t, int lfd)
{
	for (int i = 0; i < 64; i++) {
		union dial_addr peer;
		socklen_t pl = sizeof(peer);
		struct bm_orig_key k = {};
		struct bm_orig o;
		char ip[INET6_ADDRSTRLEN];
		int fd = accept4(lfd, &peer.sa, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;

		if (fd < 0) {
			accept_failed(t);
			return;
		}
		k.family = dial_addr_key(&peer.sa, k.addr, &k.port);
		if (t->o.fds->orig < 0 || bpf_map_lookup_elem(t->o.fds->orig, &k, &o)) {
			/* not sent here by the kernel: nobody may use this port directly */
			char a[80];

			dial_addr_fmt(&peer.sa, a, sizeof(a));
			pr_info("tunnel: %s connected to the outbound port without a captured "
				"destination; closed",
				a);
			CNT(t, out_rejected);
			close(fd);
			continue;
		}
		dp_map_del(t->o.fds->orig, &k, "bm_orig");
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		CNT(t, out_accepted);
		dial_addr_ip(&peer.sa, ip, sizeof(ip));
		out_start(t, fd, ip, &o, false);
	}
}

/* ---------- outbound HTTP/2: pooled connections, one CONNECT stream each ----------
 *
 * As ztunnel's pool: a connection is keyed by the client's identity (and its certificate's
 * generation: a rotated certificate starts new connections), the identity the server must
 * prove and the peer node; a new application connection rides a live one (no handshake) or
 * waits on one being set up, up to H2T_CLIENT_STREAMS streams, then another is made. One
 * without streams for POOL_IDLE_SECS goes. A peer that does not select h2 (an agent of an
 * earlier version) is remembered for H1_MEMO_SECS and gets HTTP/1.1 CONNECT, one TLS
 * connection per application connection. */

static bool h1_peer(struct tunnel *t, const char *peer, time_t now)
{
	for (int i = 0; i < H1_MEMO; i++)
		if (t->h1[i].until > now && !strcmp(t->h1[i].peer, peer))
			return true;
	return false;
}

static void h1_remember(struct tunnel *t, const char *peer)
{
	time_t now = time(NULL);
	int slot = 0;

	for (int i = 0; i < H1_MEMO; i++) {
		if (!strcmp(t->h1[i].peer, peer) || t->h1[i].until <= now) {
			slot = i;
			break;
		}
		if (t->h1[i].until < t->h1[slot].until)
			slot = i;
	}
	snprintf(t->h1[slot].peer, sizeof(t->h1[slot].peer), "%s", peer);
	t->h1[slot].until = now + H1_MEMO_SECS;
}

/* Nodes whose pods have no HBONE listener of their own for a family (an agent before in-pod
 * addressing; before IPv6, for IPv6): their node's 15008 for H1_MEMO_SECS. Kept in the same
 * table as h1 peers, marked, per family: a pod's IPv6 15008 refusing says nothing of IPv4. */
static void node_only_key(char *k, size_t len, const char *node_peer, bool v6)
{
	snprintf(k, len, "node@%s%s", node_peer, v6 ? "/6" : "");
}

static bool node_only(struct tunnel *t, const char *node_peer, bool v6, time_t now)
{
	char k[72];

	node_only_key(k, sizeof(k), node_peer, v6);
	return h1_peer(t, k, now);
}

static void node_only_remember(struct tunnel *t, const char *node_peer, bool v6)
{
	char k[72];

	node_only_key(k, sizeof(k), node_peer, v6);
	h1_remember(t, k);
}

static void node_only_forget(struct tunnel *t, const char *node_peer, bool v6)
{
	char k[72];

	node_only_key(k, sizeof(k), node_peer, v6);
	for (int i = 0; i < H1_MEMO; i++)
		if (!strcmp(t->h1[i].peer, k))
			t->h1[i].until = 0;
}

/* A pooled connection that could not be made at this address: its waiting streams start
 * again at the other one (at most RESTART_TRIES times each), then it goes. */
static void out_restart_all(struct tconn *c)
{
	while (c->streams) {
		struct hstream *s = c->streams;

		if (s->tries < RESTART_TRIES) {
			os_restart(s);
		} else {
			CNT(c->t, out_failed);
			hs_close(s, true);
		}
	}
	conn_close(c);
}

/* Kubernetes' workload kind as ztunnel's baggage names it (k8s.<kind>.name). */
static const char *workload_kind(const struct workload_obj *w)
{
	const char *owner = kv_get(&w->annotations, "bpfmesh.io/owner");

	if (w->owner_kind && !strcmp(w->owner_kind, "ReplicaSet"))
		return "deployment";
	if (w->owner_kind && (!strcmp(w->owner_kind, "StatefulSet") ||
			      !strcmp(w->owner_kind, "DaemonSet") || !strcmp(w->owner_kind, "Job")))
		return !strcmp(w->owner_kind, "StatefulSet") ? "statefulset"
		       : !strcmp(w->owner_kind, "DaemonSet") ? "daemonset"
							     : "job";
	if (owner && !strcmp(owner, "Deployment"))
		return "deployment";
	return "pod";
}

/* The stream's client connection starts again (another connection, or HTTP/1.1): the
 * stream goes, its socket does not. */
static void os_restart(struct hstream *s)
{
	struct tunnel *t = s->hc->t;
	struct bm_orig o = s->o;
	int fd = s->pfd;
	bool http = s->http;
	char ip[64];

	int tries = s->tries + 1;

	snprintf(ip, sizeof(ip), "%s", s->src_ip);
	s->pfd = -1;
	hs_close(s, false);
	t->next_tries = tries; /* pool_start takes it for the new stream */
	out_start(t, fd, ip, &o, http);
	t->next_tries = 0;
}

/* Open the stream's CONNECT on its (set up) connection, with ztunnel's headers. */
static void os_open(struct hstream *s)
{
	struct tconn *c = s->hc;
	const struct workload_obj *src = client_pod(c->t, s->o.src_pod);
	char fwd[96], bag[H2T_HEADER_MAX], tp[64], wl[256];
	const char *hdrs[8];
	unsigned char rnd[24];
	int n = 0;

	s->waiting = false;
	c->nwait--;
	hbone_forwarded_value(s->src_ip, fwd, sizeof(fwd));
	hdrs[n++] = "forwarded";
	hdrs[n++] = fwd;
	if (src) {
		const char *svc, *rev;

		config_workload_name(src, wl, sizeof(wl));
		metrics_canonical(src, wl, &svc, &rev);
		hbone_baggage(metrics_cluster_id(), src->ns, workload_kind(src), wl, svc, rev, bag,
			      sizeof(bag));
		hdrs[n++] = "baggage";
		hdrs[n++] = bag;
	}
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
		uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)s << 16);

		for (size_t i = 0; i < sizeof(rnd); i++, x = x * 6364136223846793005ULL + 1)
			rnd[i] = (unsigned char)(x >> 56);
	}
	hbone_traceparent(rnd, tp, sizeof(tp));
	hdrs[n++] = "traceparent";
	hdrs[n++] = tp;
	if (s->http) {
		hdrs[n++] = "bpfmesh-protocol";
		hdrs[n++] = "http/1.1";
	}
	s->hs = h2t_connect(c->h2, s->dst, hdrs, n / 2, s);
	if (!s->hs && h2t_can_open(c->h2)) { /* out of memory: no retry on the same one */
		pr_info("tunnel: h2 %s -> %s via %s: cannot open a stream; connection closed",
			s->src_ip, s->dst, c->peer);
		CNT(c->t, out_failed);
		hs_close(s, true);
		return;
	}
	if (!s->hs) { /* the peer allows fewer streams than were waiting: another connection */
		os_restart(s);
		return;
	}
	s->deadline = time(NULL) + SETUP_SECS;
	CNT(c->t, out_h2_streams);
}

/* The peer's answer to a stream's CONNECT: 200 relays, anything else closes. */
static void os_response(void *arg, struct h2t_stream *hs, int status)
{
	struct hstream *s = h2t_user(hs);
	struct tconn *c = arg;

	if (!s)
		return;
	if (status != 200) {
		pr_info("tunnel: h2 %s -> %s via %s: peer agent answered %d; connection closed",
			s->src_ip, s->dst, c->peer, status);
		CNT(c->t, out_failed);
		hs_close(s, true);
		return;
	}
	s->relaying = true;
	pr_debug("tunnel: h2 %s -> %s via %s stream %d open", s->src_ip, s->dst, c->peer,
		 h2t_id(hs));
	hs_pump(s);
}

static void h2_on_readable(void *arg, struct h2t_stream *hs);
static void h2_on_closed(void *arg, struct h2t_stream *hs, uint32_t err);

static const struct h2t_cb h2_client_cb = {
    .response = os_response,
    .readable = h2_on_readable,
    .writable = h2_on_readable,
    .closed = h2_on_closed,
};

/* A pooled connection passed its handshake: HTTP/2 if the peer selected it. */
static void out_h2_ready(struct tconn *c)
{
	const unsigned char *alpn = NULL;
	unsigned int alen = 0;

	SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
	if (alen != 2 || memcmp(alpn, "h2", 2)) {
		/* an agent without HTTP/2: each waiting connection goes over HTTP/1.1 CONNECT */
		pr_info("tunnel: %s does not speak HBONE over HTTP/2; HTTP/1.1 CONNECT to it for "
			"%d s",
			c->peer, H1_MEMO_SECS);
		h1_remember(c->t, c->peer);
		while (c->streams)
			os_restart(c->streams);
		conn_close(c);
		return;
	}
	c->h2 = h2t_new(false, &h2_client_cb, c);
	if (!c->h2) {
		out_fail(c, "out of memory");
		return;
	}
	SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	CNT(c->t, out_h2_conns);
	c->st = T_H2;
	c->h2_heard = c->idle_since = time(NULL);
	for (struct hstream *s = c->streams, *nx; s; s = nx) {
		nx = s->next;
		if (s->waiting)
			os_open(s);
	}
	h2_flush(c);
}

/* A live pooled connection for key with room for one more stream, or NULL. */
static struct tconn *pool_find(struct tunnel *t, const char *key)
{
	for (struct tconn *c = t->pool; c; c = c->pnext) {
		if (c->st == T_DEAD || strcmp(c->pool_key, key))
			continue;
		if (c->st == T_H2 ? h2t_can_open(c->h2) : c->nwait < H2T_CLIENT_STREAMS)
			return c;
	}
	return NULL;
}

/* The local client fd to the pod of o over a pooled connection (made if none has room). */
static void pool_start(struct tunnel *t, int fd, const char *src_ip, const struct bm_orig *o,
		       bool http, const char *dst, const char *peer, const char *node_peer,
		       const char *want_id, const struct sockaddr *to, const struct sockaddr *from,
		       const struct ident *id, const struct workload_obj *src)
{
	char key[512];
	struct tconn *c;
	struct hstream *s = calloc(1, sizeof(*s));

	if (!s) {
		CNT(t, out_failed);
		close(fd);
		return;
	}
	s->tries = t->next_tries;
	t->next_tries = 0;
	snprintf(key, sizeof(key), "%s#%u|%s|%s", id->spiffe, id->gen, want_id, peer);
	c = pool_find(t, key);
	if (!c) {
		c = conn_new(t, true);
		if (!c) {
			free(s);
			close(fd);
			return;
		}
		c->pool = true;
		snprintf(c->src_ns, sizeof(c->src_ns), "%s", src->ns);
		snprintf(c->src_sa, sizeof(c->src_sa), "%s", sa_of(src));
		c->src_pod = o->src_pod;
		snprintf(c->pool_key, sizeof(c->pool_key), "%s", key);
		snprintf(c->src_ip, sizeof(c->src_ip), "%s", src_ip);
		snprintf(c->dst, sizeof(c->dst), "%s", dst);
		snprintf(c->peer, sizeof(c->peer), "%s", peer);
		snprintf(c->node_peer, sizeof(c->node_peer), "%s", node_peer);
		c->pod_addr = strcmp(peer, node_peer) != 0;
		snprintf(c->want_id, sizeof(c->want_id), "%s", want_id);
		c->pnext = t->pool;
		if (t->pool)
			t->pool->pprev = c;
		t->pool = c;
		c->sfd = tcp_connect(to, from);
		if (c->sfd < 0) {
			pr_info("tunnel: %s -> %s via %s: %s; connection closed", src_ip, dst, peer,
				strerror(errno));
			CNT(t, out_failed);
			free(s);
			close(fd);
			conn_close(c);
			return;
		}
		c->st = T_OUT_CONNECT;
		ep_set(c, c->sfd, &c->sev, &c->smask, EPOLLOUT);
	}
	CNT(t, h2_active);
	s->hc = c;
	s->out = true;
	s->http = http;
	s->o = *o;
	s->pfd = fd;
	s->pev = (struct tev){.kind = EV_H2S, .c = c, .hs = s};
	snprintf(s->src_ip, sizeof(s->src_ip), "%s", src_ip);
	snprintf(s->dst, sizeof(s->dst), "%s", dst);
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	s->waiting = true;
	c->nwait++;
	if (c->st == T_H2) {
		os_open(s);
		h2_flush(c);
	}
}

/* Pooled connections: the answer each stream waits for, and idle connections. */
static void pool_tick(struct tunnel *t, time_t now)
{
	for (struct tconn *c = t->pool, *cn; c; c = cn) {
		cn = c->pnext;
		if (c->st != T_H2)
			continue;
		for (struct hstream *s = c->streams, *nx; s; s = nx) {
			nx = s->next;
			if (s->out && !s->relaying && !s->waiting && now >= s->deadline) {
				pr_info("tunnel: h2 %s -> %s via %s: no answer in %d s; connection "
					"closed",
					s->src_ip, s->dst, c->peer, SETUP_SECS);
				CNT(t, out_failed);
				hs_close(s, true);
			}
		}
		if (!c->streams && now - c->idle_since >= POOL_IDLE_SECS) {
			pr_debug("tunnel: h2 %s (%s): idle %d s; closed", c->peer, c->want_id,
				 POOL_IDLE_SECS);
			h2t_goaway(c->h2);
			h2_flush(c);
			conn_close(c);
			continue;
		}
		h2_flush(c);
	}
}

/* A connection to carry to o's destination pod, for the client pod o->src_pod at src_ip:
 * to that pod's node, mutual TLS, CONNECT (a stream of a pooled HTTP/2 connection, or
 * HTTP/1.1 to a peer without HTTP/2). */
static void out_start(struct tunnel *t, int fd, const char *src_ip, const struct bm_orig *o,
		      bool http)
{
	union dial_addr to = {0}, from = {0};
	const struct workload_obj *dst, *src;
	const struct ident *id;
	struct tconn *c;
	char ip[INET6_ADDRSTRLEN], dsts[64], peer[64], node_peer[64], want_id[320];
	bool pod_addr = false, have_to = false, v6 = o->family == BM_FAM_V6;

	inet_ntop(v6 ? AF_INET6 : AF_INET, o->addr, ip, sizeof(ip));
	dial_hostport(dsts, sizeof(dsts), ip, ntohs(o->port));
	dst = pod_by_ip(t->c, ip);
	snprintf(node_peer, sizeof(node_peer), "%s:%d", dst && dst->host_ip ? dst->host_ip : "?",
		 BM_PORT_HBONE);
	snprintf(peer, sizeof(peer), "%s", node_peer);
	if (dst)
		snprintf(want_id, sizeof(want_id), "spiffe://%s/ns/%s/sa/%s", t->o.trust_domain,
			 dst->ns, sa_of(dst));
	/* as ztunnel's in-pod mode: to the pod's own address, port 15008 (its node's agent, or
	 * a ztunnel, listens there); to its node's 15008 where that is refused */
	if (dst && dst->host_ip && !node_only(t, node_peer, v6, time(NULL))) {
		dial_hostport(peer, sizeof(peer), ip, BM_PORT_HBONE);
		pod_addr = true;
	}
	if (dst && dst->host_ip)
		have_to = !dial_addr_set(&to, pod_addr ? ip : dst->host_ip, BM_PORT_HBONE);
	/* from the node's own address (status.hostIP/hostIPs): the destination's agent believes
	 * the stream's Forwarded only from the client pod's node, whatever routing would pick
	 * (an overlay's interface address) */
	if (have_to)
		dial_addr_set(&from, to.sa.sa_family == AF_INET6 && t->o.node_ip6 ? t->o.node_ip6
										 : t->o.node_ip, 0);
	if (from.sa.sa_family != to.sa.sa_family)
		memset(&from, 0, sizeof(from));
	if (have_to && !h1_peer(t, peer, time(NULL))) {
		/* the client is who the kernel says opened the connection (its cgroup, recorded
		 * with the captured destination), never whoever owns its source address */
		src = client_pod(t, o->src_pod);
		id = src && src->kind == WL_POD ? idset_find(t->ids, src->ns, sa_of(src)) : NULL;
		if (!id) {
			pr_info("tunnel: %s -> %s via %s: no identity for the client; connection "
				"closed",
				src_ip, dsts, peer);
			CNT(t, out_failed);
			close(fd);
			return;
		}
		pool_start(t, fd, src_ip, o, http, dsts, peer, node_peer, want_id, &to.sa,
			   from.sa.sa_family ? &from.sa : NULL, id, src);
		return;
	}
	c = conn_new(t, true);
	if (!c) {
		close(fd);
		return;
	}
	c->pfd = fd;
	c->http = http;
	c->src_pod = o->src_pod;
	snprintf(c->src_ip, sizeof(c->src_ip), "%s", src_ip);
	snprintf(c->dst, sizeof(c->dst), "%s", dsts);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	if (!dst || !dst->host_ip || !have_to) {
		out_fail(c, "destination is no pod with a known node");
		return;
	}
	snprintf(c->want_id, sizeof(c->want_id), "%s", want_id);
	c->sfd = tcp_connect(&to.sa, from.sa.sa_family ? &from.sa : NULL);
	if (c->sfd < 0) {
		out_fail(c, strerror(errno));
		return;
	}
	c->st = T_OUT_CONNECT;
	ep_set(c, c->sfd, &c->sev, &c->smask, EPOLLOUT);
}

/* What the HTTP path handed over since the last wake. */
static void take_adopted(struct tunnel *t)
{
	struct adopted *v;
	int n;

	pthread_mutex_lock(&t->mu);
	v = t->adopt;
	n = t->nadopt;
	t->adopt = NULL;
	t->nadopt = t->capadopt = 0;
	pthread_mutex_unlock(&t->mu);
	for (int i = 0; i < n; i++) {
		CNT(t, out_accepted);
		out_start(t, v[i].fd, v[i].src_ip, &v[i].o, v[i].http);
	}
	free(v);
}

int tunnel_adopt(struct tunnel *t, int fd, uint32_t src_pod, const char *src_ip,
		 const uint8_t dst[4], uint16_t dst_port, uint32_t backend_id, bool http)
{
	uint64_t one = 1;
	int rc = 0;

	pthread_mutex_lock(&t->mu);
	if (t->nadopt == t->capadopt) {
		int cap = t->capadopt ? 2 * t->capadopt : 16;
		struct adopted *v = realloc(t->adopt, cap * sizeof(*v));

		if (!v) {
			rc = -1;
		} else {
			t->adopt = v;
			t->capadopt = cap;
		}
	}
	if (!rc) {
		struct adopted *a = &t->adopt[t->nadopt++];

		memset(a, 0, sizeof(*a));
		a->fd = fd;
		memcpy(a->o.addr, dst, 4);
		a->o.family = BM_FAM_V4;
		a->o.port = htons(dst_port);
		a->o.src_pod = src_pod;
		a->o.backend_id = backend_id;
		a->http = http;
		snprintf(a->src_ip, sizeof(a->src_ip), "%s", src_ip ? src_ip : "");
	}
	pthread_mutex_unlock(&t->mu);
	if (!rc && write(t->wake, &one, sizeof(one)) < 0)
		pr_debug("tunnel: wake: %s", strerror(errno));
	return rc;
}

/* ---------- inbound: peer agent -> local pod ---------- */

static void in_fail(struct tconn *c, const char *why)
{
	if (log_ok(c->t))
		pr_info("tunnel: rejected %s: %s", c->peer, why);
	CNT(c->t, in_rejected);
	conn_close(c);
}

/* Server side: present the certificate of the workload the client asked for (SNI), or of the
 * pod whose namespace the connection came in (no SNI needed, as ztunnel's clients send none).
 * OpenSSL calls this whether or not the client sent SNI. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tunnel *t = arg;
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct tconn *c = SSL_get_ex_data(ssl, t->ex_idx);
	const struct workload_obj *w;
	const struct ident *id;
	char ip[64];
	size_t n;

	if (c && c->listen_pod) { /* in the pod's namespace: that pod, whatever the SNI */
		w = config_pod_by_id(t->c, c->listen_pod);
		id = w ? idset_find(t->ids, w->ns, sa_of(w)) : NULL;
		if (!id || use_ident(ssl, id))
			goto bad;
		return SSL_TLSEXT_ERR_OK;
	}
	if (!sni || !strstr(sni, ".pod.bpfmesh"))
		goto bad;
	n = strstr(sni, ".pod.bpfmesh") - sni;
	if (n >= sizeof(ip))
		goto bad;
	memcpy(ip, sni, n);
	ip[n] = 0;
	sni_ip6(ip, sizeof(ip));
	w = pod_by_ip(t->c, ip);
	if (!w || !w->host_ip || strcmp(w->host_ip, t->o.node_ip))
		goto bad;
	id = idset_find(t->ids, w->ns, sa_of(w));
	if (!id || use_ident(ssl, id))
		goto bad;
	return SSL_TLSEXT_ERR_OK;
bad:
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void in_connected(struct tconn *c)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\n\r\n";

	attest_drop(c); /* the SYN is through: the pass is spent */
	if (!dial_done(c->pfd)) {
		static const char bad[] = "HTTP/1.1 503 Service Unavailable\r\n\r\n";

		SSL_write(c->ssl, bad, sizeof(bad) - 1);
		pr_info("tunnel: %s -> %s: destination refused the connection", c->src_ip, c->dst);
		conn_close(c);
		return;
	}
	buf_put(c->p2s, ok, sizeof(ok) - 1);
	c->st = T_RELAY;
	c->dest = tdest_get(c->t, c->src_ip, c->dst); /* the destination's from here */
	DEST_ADD(c, opened, 1);
	pump(c);
}

/* Connect to the local pod with a pass in bm_attest: the pod's inbound judge takes the
 * agent's word (it authorized this with the peer's certificate). */
static int in_dial_pass(struct tunnel *t, const char *ip, int port, struct dial_pass *pass)
{
	union dial_addr dst;

	if (dial_addr_set(&dst, ip, port))
		return -1;
	return dial_attested(t->o.fds->attest, &dst.sa,
			     dst.sa.sa_family == AF_INET6 ? t->o.node_ip6 : t->o.node_ip, pass);
}

static int in_dial(struct tconn *c, const char *ip, int port)
{
	return in_dial_pass(c->t, ip, port, &c->pass);
}

/*
 * The client address policy judges (ipBlocks): what the peer agent says in Forwarded only if
 * the TCP peer is a node of the mesh, the address is a pod on that node, and that pod's
 * identity is the one the stream's certificate proved. Anything else (a workload with a
 * stolen certificate, a peer that lies or says nothing) is judged by its real address.
 */
static void source_address_into(struct tconn *c, const char *fwd, char *out, size_t len)
{
	const struct workload_obj *w = fwd[0] ? pod_by_ip(c->t->c, fwd) : NULL;
	char peer_ip[64], want[320];

	host_of(c->peer, peer_ip, sizeof(peer_ip));
	if (w && ((w->host_ip && !strcmp(w->host_ip, peer_ip)) ||
		  (w->host_ip6 && same_ip6(w->host_ip6, peer_ip)))) {
		snprintf(want, sizeof(want), "spiffe://%s/ns/%s/sa/%s", c->t->o.trust_domain, w->ns,
			 sa_of(w));
		if (!strcmp(want, c->want_id)) {
			snprintf(out, len, "%s", fwd);
			return;
		}
	}
	if (fwd[0])
		pr_debug("tunnel: %s (%s) says Forwarded: for=%s; not its own pod: judged as %s",
			 c->peer, c->want_id, fwd, peer_ip);
	snprintf(out, len, "%s", peer_ip);
}

static void source_address(struct tconn *c, const char *fwd)
{
	source_address_into(c, fwd, c->src_ip, sizeof(c->src_ip));
}

/* The policy's view of a client address (v4-mapped for IPv4; unknown: matches only ::/0). */
static void sec_peer_ip(struct sec_peer *peer, const char *ip)
{
	struct in_addr a4;
	struct in6_addr a6;

	peer->ip_len = 128;
	memset(peer->ip, 0, sizeof(peer->ip));
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		peer->ip[10] = peer->ip[11] = 0xff;
		memcpy(peer->ip + 12, &a4, 4);
	} else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		memcpy(peer->ip, &a6, 16);
	} else {
		peer->ip_len = 0;
	}
}

/* An authenticated stream of the peer's HTTP path: a socketpair to our HTTP path, which
 * applies AuthorizationPolicy per request with the verified identity and counts each as the
 * destination. */
static int in_http(struct tconn *c, const struct hbone_connect *req, const struct workload_obj *w,
		   const char *principal, const char *ns)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\n\r\n";
	struct tunnel_stream ts = {.dst_port = (uint16_t)req->port};
	int sv[2];

	(void)w;
	if (inet_pton(AF_INET, req->host, ts.dst_ip) != 1)
		return -1; /* the HTTP path serves IPv4 pods' addresses */
	if (inet_pton(AF_INET, c->src_ip, ts.src_ip) != 1)
		return -1; /* a client the HTTP path cannot name: never judged as no one */
	snprintf(ts.principal, sizeof(ts.principal), "%s", principal);
	snprintf(ts.ns, sizeof(ts.ns), "%s", ns);
	if (!conn_bufs(c) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return -1;
	if (c->t->http_in(c->t->http_arg, sv[1], &ts)) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	pend_drop(c);
	buf_put(c->s2p, c->hdr + req->head_len, c->hdr_len - req->head_len);
	c->pfd = sv[0];
	buf_put(c->p2s, ok, sizeof(ok) - 1);
	c->st = T_RELAY;
	CNT(c->t, in_http);
	pump(c);
	return 0;
}

static void in_request(struct tconn *c)
{
	static const char forbidden[] = "HTTP/1.1 403 Forbidden\r\n\r\n";
	static const char badreq[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
	char principal[320], ns[64] = "", pname[200];
	struct hbone_connect req;
	const struct workload_obj *w;
	struct sec_decision d;
	struct sec_peer peer = {.ip_len = 128};
	uint32_t want = 0;
	int r, port, parsed;

	while (c->st == T_IN_REQUEST) {
		r = SSL_read(c->ssl, c->hdr + c->hdr_len, sizeof(c->hdr) - 1 - c->hdr_len);
		if (r <= 0) {
			if (tls_io(c, r, &want) == 0) {
				ep_set(c, c->sfd, &c->sev, &c->smask, want | EPOLLIN);
				return;
			}
			conn_close(c);
			return;
		}
		c->hdr_len += r;
		parsed = hbone_parse_connect(c->hdr, c->hdr_len, sizeof(c->hdr) - 1, &req);
		if (parsed == 0)
			continue;
		if (parsed < 0) {
			SSL_write(c->ssl, badreq, sizeof(badreq) - 1);
			in_fail(c, "malformed CONNECT request");
			return;
		}
		port = req.port;
		dial_hostport(c->dst, sizeof(c->dst), req.host, port);
		source_address(c, req.forwarded);
		w = pod_by_ip(c->t->c, req.host);
		if (!w || !w->host_ip || strcmp(w->host_ip, c->t->o.node_ip) ||
		    (c->listen_pod && w != config_pod_by_id(c->t->c, c->listen_pod))) {
			SSL_write(c->ssl, badreq, sizeof(badreq) - 1);
			in_fail(c, "CONNECT target is not a pod on this node (or not the pod whose "
				   "address the tunnel went to)");
			return;
		}
		/* the principal: the verified SPIFFE ID without its scheme */
		ca_spiffe_id(SSL_get0_peer_certificate(c->ssl), principal, sizeof(principal));
		memmove(principal, principal + 9, strlen(principal + 9) + 1);
		ca_spiffe_parse(c->want_id, NULL, 0, ns, sizeof(ns), NULL, 0);
		peer.principal = principal;
		peer.ns = ns;
		sec_peer_ip(&peer, c->src_ip);
		if (req.http && c->t->http_in) {
			/* the peer's HTTP path routed these requests: ours judges each one */
			if (in_http(c, &req, w, principal, ns) == 0)
				return;
			in_fail(c, "cannot hand the stream to the HTTP path");
			return;
		}
		sec_authorize(c->t->c, c->t->o.root_ns, w, port, &peer, &d);
		if (d.audit)
			pr_info("tunnel: audit: %s (%s) -> %s/%s:%d matched AUDIT policy %s",
				c->want_id, c->src_ip, w->ns, w->name, port,
				sec_policy_name(d.audit, pname, sizeof(pname)));
		if (d.verdict == SEC_DENY) {
			pr_info("tunnel: denied %s (%s) -> %s/%s:%d: %s %s", c->want_id, c->src_ip,
				w->ns, w->name, port, d.reason,
				d.by ? sec_policy_name(d.by, pname, sizeof(pname)) : "");
			SSL_write(c->ssl, forbidden, sizeof(forbidden) - 1);
			CNT(c->t, in_denied);
			conn_close(c);
			return;
		}
		if (!conn_bufs(c)) {
			in_fail(c, "out of memory");
			return;
		}
		SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
		pend_drop(c); /* authenticated and authorized: no longer a pending handshake */
		buf_put(c->s2p, c->hdr + req.head_len, c->hdr_len - req.head_len);
		c->pfd = in_dial(c, req.host, port);
		if (c->pfd < 0) {
			static const char bad[] = "HTTP/1.1 503 Service Unavailable\r\n\r\n";

			SSL_write(c->ssl, bad, sizeof(bad) - 1);
			in_fail(c, "cannot connect to the destination pod");
			return;
		}
		c->st = T_IN_CONNECT;
		ep_set(c, c->pfd, &c->pev, &c->pmask, EPOLLOUT);
		ep_set(c, c->sfd, &c->sev, &c->smask, 0);
	}
}

/* ---------- inbound HTTP/2 (ALPN h2): HBONE as ztunnel speaks it ----------
 *
 * One TLS connection, many CONNECT streams (h2tun.h does the framing and the flow control).
 * Each stream is judged alone, with the connection's verified identity: its :authority must
 * be a pod of this node whose identity is the one the server presented (400 otherwise, as
 * ztunnel's validate_destination), AuthorizationPolicy (401, as ztunnel), then a connect to
 * the pod (503 when it fails) and 200. Events for a stream's pod socket pump that stream and
 * flush the connection; nothing here blocks. */

static void h2_flush(struct tconn *c);

static void hs_close(struct hstream *s, bool reset)
{
	struct tconn *c = s->hc;

	if (s->dead)
		return;
	s->dead = true;
	CNT_ADD(c->t, h2_active, -1UL);
	if (s->waiting)
		c->nwait--;
	s->waiting = false;
	if (s->relaying)
		DEST_ADD(s, closed, 1);
	ep_set(c, s->pfd, &s->pev, &s->pmask, 0);
	dial_pass_drop(c->t->o.fds->attest, &s->pass);
	if (s->pfd >= 0) {
		if (reset) { /* the other side was reset: so is the pod's connection */
			struct linger l = {.l_onoff = 1, .l_linger = 0};

			setsockopt(s->pfd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		}
		close(s->pfd);
		s->pfd = -1;
	}
	if (s->hs) {
		if (reset)
			h2t_reset(s->hs, H2T_CONNECT_ERROR);
		h2t_release(s->hs);
		s->hs = NULL;
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (c->pool && !c->streams)
		c->idle_since = time(NULL);
	s->next_dead = c->t->hdead; /* freed after this batch (queued events may name it) */
	c->t->hdead = s;
}

/* Move what can move between the stream and the pod; then the readiness still needed. */
static void hs_pump(struct hstream *s)
{
	uint32_t want = 0;
	const uint8_t *p;
	size_t n;

	if (s->dead || !s->relaying)
		return;
	/* tunnel -> pod */
	while ((n = h2t_peek(s->hs, &p)) > 0) {
		ssize_t w = write(s->pfd, p, n);

		if (w > 0) {
			DEST_ADD(s, received, (uint64_t)w);
			h2t_consumed(s->hs, (size_t)w);
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			want |= EPOLLOUT;
			break;
		}
		hs_close(s, true);
		return;
	}
	if (!s->p_shut && h2t_peer_ended(s->hs)) {
		shutdown(s->pfd, SHUT_WR); /* the client's half-close */
		s->p_shut = true;
	}
	/* pod -> tunnel */
	while (!s->p_eof && (n = h2t_room(s->hs)) > 0) {
		char buf[BUFSZ];
		ssize_t r = read(s->pfd, buf, n < sizeof(buf) ? n : sizeof(buf));

		if (r > 0) {
			DEST_ADD(s, sent, (uint64_t)r);
			h2t_write(s->hs, buf, (size_t)r);
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			want |= EPOLLIN;
			break;
		}
		if (r < 0) { /* the pod reset it */
			hs_close(s, true);
			return;
		}
		s->p_eof = true;
		h2t_end(s->hs);
	}
	if (s->p_eof && s->p_shut && h2t_flushed(s->hs)) {
		hs_close(s, false);
		return;
	}
	ep_set(s->hc, s->pfd, &s->pev, &s->pmask, want);
}

/* The pod answered the connect (or refused it). */
static void hs_connected(struct hstream *s)
{
	struct tconn *c = s->hc;

	dial_pass_drop(c->t->o.fds->attest, &s->pass); /* the SYN is through: the pass is spent */
	if (!dial_done(s->pfd)) {
		pr_info("tunnel: h2 %s -> %s: destination refused the connection", s->src_ip,
			s->dst);
		CNT(c->t, h2_failed);
		h2t_respond(s->hs, 503);
		hs_close(s, false);
		return;
	}
	s->connecting = false;
	s->relaying = true;
	s->dest = tdest_get(c->t, s->src_ip, s->dst); /* the destination's from here */
	DEST_ADD(s, opened, 1);
	h2t_respond(s->hs, 200);
	hs_pump(s);
}

static void h2_refuse(struct tconn *c, struct h2t_stream *hs, int status, const char *why,
		      const char *authority)
{
	if (log_ok(c->t))
		pr_info("tunnel: h2 %s (%s) CONNECT %s: %d, %s", c->peer, c->want_id,
			authority[0] ? authority : "(no authority)", status, why);
	CNT(c->t, h2_refused);
	h2t_respond(hs, status);
	h2t_release(hs);
}

static void h2_on_request(void *arg, struct h2t_stream *hs, const struct h2t_req *r)
{
	struct tconn *c = arg;
	char host[64], fwd[64], principal[320], ns[64] = "", pname[200], want[320];
	const struct workload_obj *w;
	struct sec_decision d;
	struct sec_peer peer = {0};
	struct hstream *s;
	int port;

	CNT(c->t, h2_streams);
	if (strcmp(r->method, "CONNECT")) {
		h2_refuse(c, hs, 400, "not CONNECT", r->authority);
		return;
	}
	if (r->too_long ||
	    hbone_parse_target(r->authority, strlen(r->authority), host, sizeof(host), &port)) {
		h2_refuse(c, hs, 400, "the authority is not ip:port", r->authority);
		return;
	}
	w = pod_by_ip(c->t->c, host);
	if (!w || !w->host_ip || strcmp(w->host_ip, c->t->o.node_ip)) {
		h2_refuse(c, hs, 400, "not a pod on this node", r->authority);
		return;
	}
	if (c->listen_pod && w != config_pod_by_id(c->t->c, c->listen_pod)) {
		h2_refuse(c, hs, 400, "not the pod whose address the tunnel went to", r->authority);
		return;
	}
	/* the identity we proved in the handshake must be the destination's */
	{
		X509 *mine = SSL_get_certificate(c->ssl);
		char id[320] = "";

		snprintf(want, sizeof(want), "spiffe://%s/ns/%s/sa/%s", c->t->o.trust_domain,
			 w->ns, sa_of(w));
		if (!mine || ca_spiffe_id(mine, id, sizeof(id)) || strcmp(id, want)) {
			h2_refuse(c, hs, 400, "the destination's identity is not the one presented",
				  r->authority);
			return;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		h2_refuse(c, hs, 503, "out of memory", r->authority);
		return;
	}
	CNT(c->t, h2_active);
	s->hc = c;
	s->hs = hs;
	s->pfd = -1;
	s->pev = (struct tev){.kind = EV_H2S, .c = c, .hs = s};
	h2t_set_user(hs, s);
	dial_hostport(s->dst, sizeof(s->dst), host, port);
	hbone_forwarded_for(r->forwarded, strlen(r->forwarded), fwd, sizeof(fwd));
	source_address_into(c, fwd, s->src_ip, sizeof(s->src_ip));
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	/* the principal: the verified SPIFFE ID without its scheme */
	ca_spiffe_id(SSL_get0_peer_certificate(c->ssl), principal, sizeof(principal));
	memmove(principal, principal + 9, strlen(principal + 9) + 1);
	ca_spiffe_parse(c->want_id, NULL, 0, ns, sizeof(ns), NULL, 0);
	peer.principal = principal;
	peer.ns = ns;
	sec_peer_ip(&peer, s->src_ip);
	if (!strcasecmp(r->protocol, "http/1.1") && c->t->http_in) {
		/* the peer's HTTP path routed these requests: ours judges each one */
		struct tunnel_stream ts = {.dst_port = (uint16_t)port};
		int sv[2];

		/* the HTTP path serves IPv4 pods' addresses, and judges the client by its IPv4
		 * address: a stream it cannot name is refused, never judged as no one */
		if (inet_pton(AF_INET, host, ts.dst_ip) != 1 ||
		    inet_pton(AF_INET, s->src_ip, ts.src_ip) != 1) {
			CNT(c->t, h2_failed);
			h2t_respond(hs, 400);
			hs_close(s, false);
			return;
		}
		snprintf(ts.principal, sizeof(ts.principal), "%s", principal);
		snprintf(ts.ns, sizeof(ts.ns), "%s", ns);
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
			h2t_respond(hs, 503);
			hs_close(s, false);
			return;
		}
		if (c->t->http_in(c->t->http_arg, sv[1], &ts)) {
			close(sv[0]);
			close(sv[1]);
			CNT(c->t, h2_failed);
			h2t_respond(hs, 503);
			hs_close(s, false);
			return;
		}
		s->pfd = sv[0];
		s->relaying = true;
		CNT(c->t, in_http);
		h2t_respond(hs, 200);
		hs_pump(s);
		return;
	}
	sec_authorize(c->t->c, c->t->o.root_ns, w, port, &peer, &d);
	if (d.audit)
		pr_info("tunnel: audit: %s (%s) -> %s/%s:%d matched AUDIT policy %s", c->want_id,
			s->src_ip, w->ns, w->name, port,
			sec_policy_name(d.audit, pname, sizeof(pname)));
	if (d.verdict == SEC_DENY) {
		pr_info("tunnel: denied %s (%s) -> %s/%s:%d: %s %s", c->want_id, s->src_ip, w->ns,
			w->name, port, d.reason,
			d.by ? sec_policy_name(d.by, pname, sizeof(pname)) : "");
		CNT(c->t, h2_denied);
		CNT(c->t, in_denied);
		h2t_respond(hs, 401); /* ztunnel's answer to a policy denial */
		hs_close(s, false);
		return;
	}
	s->pfd = in_dial_pass(c->t, host, port, &s->pass);
	if (s->pfd < 0) {
		pr_info("tunnel: h2 %s -> %s: cannot connect to the destination pod", s->src_ip,
			s->dst);
		CNT(c->t, h2_failed);
		h2t_respond(hs, 503);
		hs_close(s, false);
		return;
	}
	s->connecting = true;
	ep_set(c, s->pfd, &s->pev, &s->pmask, EPOLLOUT);
}

static void h2_on_readable(void *arg, struct h2t_stream *hs)
{
	struct hstream *s = h2t_user(hs);

	(void)arg;
	if (s)
		hs_pump(s);
}

static void h2_on_closed(void *arg, struct h2t_stream *hs, uint32_t err)
{
	struct hstream *s = h2t_user(hs);

	(void)arg;
	if (!s) {
		h2t_release(hs);
		return;
	}
	if (s->out && !s->relaying && err == H2T_REFUSED_STREAM && s->tries < RESTART_TRIES) {
		/* refused unprocessed (a GOAWAY below its id, the peer's stream limit): nothing
		 * reached the pod, so it starts again on another connection (RFC 9113 8.7) */
		s->hs = hs;
		os_restart(s);
		return;
	}
	if (err || !s->relaying) { /* reset by the peer (or gone before the pod answered) */
		s->hs = hs;
		hs_close(s, true);
		return;
	}
	hs_pump(s); /* bytes that came before the end still go to the pod */
}

static const struct h2t_cb h2_server_cb = {
    .request = h2_on_request,
    .readable = h2_on_readable,
    .writable = h2_on_readable,
    .closed = h2_on_closed,
};

/* Write what the session has for the peer; then the connection's readiness. */
static void h2_flush(struct tconn *c)
{
	uint32_t want = EPOLLIN;

	if (c->st != T_H2)
		return;
	for (;;) {
		const uint8_t *p;
		size_t n = h2t_out(c->h2, &p);
		int r;

		if (!n)
			break;
		r = SSL_write(c->ssl, p, (int)(n > (1 << 20) ? 1 << 20 : n));
		if (r > 0) {
			h2t_sent(c->h2, (size_t)r);
			continue;
		}
		if (tls_io(c, r, &want) < 0) {
			conn_close(c);
			return;
		}
		break;
	}
	if (h2t_done(c->h2) && !c->streams) {
		conn_close(c);
		return;
	}
	ep_set(c, c->sfd, &c->sev, &c->smask, want);
}

/* The TLS side is readable (or writable again). */
static void h2_io(struct tconn *c)
{
	char buf[BUFSZ];

	for (int i = 0; i < 64 && c->st == T_H2; i++) {
		int r = SSL_read(c->ssl, buf, sizeof(buf));
		uint32_t want = 0;

		if (r > 0) {
			c->h2_heard = time(NULL);
			if (h2t_recv(c->h2, buf, (size_t)r)) {
				if (log_ok(c->t))
					pr_info("tunnel: h2 %s (%s): HTTP/2 protocol error; closed",
						c->peer, c->want_id);
				h2_flush(c); /* the GOAWAY */
				conn_close(c);
				return;
			}
			continue;
		}
		if (tls_io(c, r, &want) < 0) { /* closed or failed: its streams go with it */
			conn_close(c);
			return;
		}
		break;
	}
	h2_flush(c);
}

/* After the handshake, with ALPN h2: the connection serves CONNECT streams from here. */
static void h2_serve(struct tconn *c)
{
	c->h2 = h2t_new(true, &h2_server_cb, c);
	if (!c->h2) {
		in_fail(c, "out of memory");
		return;
	}
	SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	pend_drop(c); /* authenticated: no longer a pending handshake (each stream is judged) */
	CNT(c->t, h2_conns);
	c->st = T_H2;
	c->h2_heard = time(NULL);
	h2_io(c);
}

/* Every stream of a connection that is going: their pods' connections are reset. */
static void h2_teardown(struct tconn *c)
{
	while (c->streams)
		hs_close(c->streams, true);
	h2t_free(c->h2);
	c->h2 = NULL;
}

static void in_handshake(struct tconn *c)
{
	char id[320] = "", td[256] = "", why[600];
	X509 *peer;
	int r = SSL_accept(c->ssl);

	if (r != 1) {
		if (handshake_pending(c, r, why, sizeof(why)))
			return;
		in_fail(c, why);
		return;
	}
	peer = SSL_get0_peer_certificate(c->ssl);
	if (!peer || ca_spiffe_id(peer, id, sizeof(id)) ||
	    ca_spiffe_parse(id, td, sizeof(td), NULL, 0, NULL, 0)) {
		in_fail(c, "client certificate has no SPIFFE ID of the form "
			   "spiffe://TD/ns/NS/sa/SA");
		return;
	}
	if (strcmp(td, c->t->o.trust_domain)) {
		snprintf(why, sizeof(why), "client %s: trust domain %s is not %s", id, td,
			 c->t->o.trust_domain);
		in_fail(c, why);
		return;
	}
	snprintf(c->want_id, sizeof(c->want_id), "%s", id); /* the verified client identity */
	if (SSL_session_reused(c->ssl))
		CNT(c->t, resumed);
	else
		CNT(c->t, full_handshakes);
	{
		const unsigned char *alpn = NULL;
		unsigned int alen = 0;

		SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
		if (alen == 2 && !memcmp(alpn, "h2", 2)) { /* a ztunnel, or any HBONE client */
			h2_serve(c);
			return;
		}
	}
	c->st = T_IN_REQUEST;
	in_request(c);
}

/* Its first bytes came: now it gets TLS state. */
static void in_hello(struct tconn *c)
{
	c->ssl = SSL_new(c->t->sctx);
	if (!c->ssl) {
		in_fail(c, "TLS setup failed");
		return;
	}
	SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS); /* until set up: no idle buffers */
	SSL_set_ex_data(c->ssl, c->t->ex_idx, c); /* on_servername: the pod it came in for */
	SSL_set_fd(c->ssl, c->sfd);
	c->st = T_IN_HANDSHAKE;
	in_handshake(c);
}

static void in_accept(struct tunnel *t, int lfd, uint32_t listen_pod)
{
	for (int i = 0; i < 64; i++) {
		union dial_addr peer;
		socklen_t pl = sizeof(peer);
		int fd = accept4(lfd, &peer.sa, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct tconn *c;

		if (fd < 0) {
			accept_failed(t);
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)); /* dead peers go */
		CNT(t, in_accepted);
		c = conn_new(t, false);
		if (!c) {
			close(fd);
			continue;
		}
		c->sfd = fd;
		c->listen_pod = listen_pod;
		pend_src(&peer, c->peer_src);
		dial_addr_fmt(&peer.sa, c->peer, sizeof(c->peer));
		if (!pend_take(c)) {
			CNT(t, in_overload);
			if (log_ok(t))
				pr_info(
				    "tunnel: rejected %s: too many handshakes pending (%d from it, "
				    "%d in all)",
				    c->peer, *pend_slot(t, c->peer_src, true), t->npending);
			conn_close(c);
			continue;
		}
		c->st = T_IN_WAIT;
		ep_set(c, c->sfd, &c->sev, &c->smask, EPOLLIN);
	}
}

/* ---------- dispatch ---------- */

static void on_event(struct tunnel *t, struct tev *ev, uint32_t events)
{
	struct tconn *c = ev->c;

	ERR_clear_error(); /* SSL_get_error() reads the queue: start each event with it empty */
	if (ev->kind == EV_LISTEN_OUT) {
		out_accept(t, ev == &t->ev_out6 ? t->lout6 : t->lout);
		return;
	}
	if (ev->kind == EV_LISTEN_IN) {
		in_accept(t, t->lin, 0);
		return;
	}
	if (ev->kind == EV_LISTEN_POD) {
		if (ev->pl->fd >= 0)
			in_accept(t, ev->pl->fd, ev->pl->pod_id);
		return;
	}
	if (ev->kind == EV_WAKE) {
		uint64_t v;

		if (read(t->wake, &v, sizeof(v)) < 0)
			v = 0;
		take_snapshot(t);
		take_adopted(t);
		take_pod_listeners(t);
		if (t->held && __atomic_load_n(&t->release, __ATOMIC_ACQUIRE) && !t->drained_at) {
			t->held = false;
			listeners_watch(t, true);
		}
		if (__atomic_load_n(&t->drain, __ATOMIC_ACQUIRE) && !t->drained_at)
			drain_begin(t);
		return;
	}
	if (c->st == T_DEAD)
		return;
	(void)events;
	if (ev->kind == EV_H2S) { /* a stream's pod socket */
		struct hstream *s = ev->hs;

		if (!s->dead) {
			if (s->connecting)
				hs_connected(s);
			else
				hs_pump(s);
		}
		h2_flush(c);
		return;
	}
	switch (c->st) {
	case T_IN_WAIT:
		in_hello(c);
		break;
	case T_OUT_CONNECT:
		out_connected(c);
		break;
	case T_OUT_HANDSHAKE:
		out_handshake(c);
		break;
	case T_OUT_RESPONSE:
		out_response(c);
		break;
	case T_IN_HANDSHAKE:
		in_handshake(c);
		break;
	case T_IN_REQUEST:
		in_request(c);
		break;
	case T_IN_CONNECT:
		if (ev->kind == EV_PLAIN)
			in_connected(c);
		break;
	case T_RELAY:
		pump(c);
		break;
	case T_H2:
		h2_io(c);
		break;
	case T_DEAD:
		break;
	}
}

/* Take what the control thread published last, between two batches of events. */
static void take_snapshot(struct tunnel *t)
{
	struct cfgref *cfg;
	struct idset *ids;

	if (__atomic_load_n(&t->pub_gen, __ATOMIC_ACQUIRE) == t->cur_gen)
		return;
	pthread_mutex_lock(&t->mu);
	cfg = cfgref_get(t->pub_cfg);
	ids = idset_get(t->pub_ids);
	t->cur_gen = t->pub_gen;
	pthread_mutex_unlock(&t->mu);
	cfgref_put(t->cfg);
	idset_put(t->ids);
	t->cfg = cfg;
	t->c = cfg ? cfg->c : NULL;
	t->ids = ids;
}

static void *data_thread(void *arg)
{
	struct tunnel *t = arg;
	struct epoll_event evs[64];
	time_t last = 0;

	while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
		int n = epoll_wait(t->ep, evs, 64, 1000);
		time_t now;

		take_snapshot(t);
		for (int i = 0; i < n; i++)
			on_event(t, evs[i].data.ptr, evs[i].events);
		free_dead(t);
		now = time(NULL);
		if (now != last) {
			tick(t, now);
			last = now;
		}
	}
	return NULL;
}

void tunnel_set_http(struct tunnel *t, tunnel_http_fn fn, void *arg)
{
	t->http_in = fn;
	t->http_arg = arg;
}

int tunnel_start(struct tunnel *t)
{
	if (pthread_create(&t->th, NULL, data_thread, t))
		return -1;
	pthread_setname_np(t->th, "bpfmesh-data");
	t->started = true;
	return 0;
}

bool tunnel_has_ip6(const struct tunnel *t)
{
	return t->o.node_ip6 != NULL;
}

int tunnel_listeners(const struct tunnel *t, int *fds, int max)
{
	int n = 0;

	if (n < max && t->lout >= 0)
		fds[n++] = t->lout;
	if (n < max && t->lout6 >= 0)
		fds[n++] = t->lout6;
	if (n < max && t->lin >= 0)
		fds[n++] = t->lin;
	return n;
}

void tunnel_drain(struct tunnel *t)
{
	uint64_t one = 1;

	__atomic_store_n(&t->drain, 1, __ATOMIC_RELEASE);
	if (write(t->wake, &one, sizeof(one)) < 0)
		pr_debug("tunnel: wake: %s", strerror(errno));
}

void tunnel_release(struct tunnel *t)
{
	uint64_t one = 1;

	__atomic_store_n(&t->release, 1, __ATOMIC_RELEASE);
	if (write(t->wake, &one, sizeof(one)) < 0)
		pr_debug("tunnel: wake: %s", strerror(errno));
}

unsigned long tunnel_busy(const struct tunnel *t)
{
	if (__atomic_load_n(&t->drain, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&t->busy_fresh, __ATOMIC_ACQUIRE))
		return 1; /* asked to drain, not counted since: not done */
	return __atomic_load_n(&t->busy, __ATOMIC_RELAXED);
}

void tunnel_publish(struct tunnel *t, struct cfgref *cfg, struct idset *ids)
{
	uint64_t one = 1;

	pthread_mutex_lock(&t->mu);
	cfgref_put(t->pub_cfg);
	idset_put(t->pub_ids);
	t->pub_cfg = cfgref_get(cfg);
	t->pub_ids = idset_get(ids);
	__atomic_add_fetch(&t->pub_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->mu);
	if (write(t->wake, &one, sizeof(one)) < 0)
		pr_debug("tunnel: wake: %s", strerror(errno));
}

/* Connections closed during a batch of events are freed after it (events still queued may
 * point at them). */
static void free_dead(struct tunnel *t)
{
	while (t->pl_dead) {
		struct plisten *pl = t->pl_dead;

		t->pl_dead = pl->next;
		free(pl);
	}
	while (t->hdead) {
		struct hstream *s = t->hdead;

		t->hdead = s->next_dead;
		free(s);
	}
	while (t->dead) {
		struct tconn *c = t->dead;

		t->dead = c->next_dead;
		if (c->prev)
			c->prev->next = c->next;
		else
			t->live = c->next;
		if (c->next)
			c->next->prev = c->prev;
		free(c->p2s);
		free(c->s2p);
		free(c);
	}
}

void tunnel_metrics(const struct tunnel *t, FILE *f)
{
	static const struct {
		const char *dir, *outcome;
		size_t off;
	} conns[] = {
	    {"outbound", "accepted", offsetof(struct tcounters, out_accepted)},
	    {"outbound", "rejected", offsetof(struct tcounters, out_rejected)},
	    {"outbound", "failed", offsetof(struct tcounters, out_failed)},
	    {"inbound", "accepted", offsetof(struct tcounters, in_accepted)},
	    {"inbound", "rejected", offsetof(struct tcounters, in_rejected)},
	    {"inbound", "denied", offsetof(struct tcounters, in_denied)},
	    {"inbound", "overload", offsetof(struct tcounters, in_overload)},
	    {"inbound", "http", offsetof(struct tcounters, in_http)},
	    {"inbound", "h2", offsetof(struct tcounters, h2_conns)},
	    {"outbound", "h2", offsetof(struct tcounters, out_h2_conns)},
	};
	static const struct {
		const char *outcome;
		size_t off;
	} streams[] = {
	    {"received", offsetof(struct tcounters, h2_streams)},
	    {"refused", offsetof(struct tcounters, h2_refused)},
	    {"denied", offsetof(struct tcounters, h2_denied)},
	    {"failed", offsetof(struct tcounters, h2_failed)},
	    {"opened", offsetof(struct tcounters, out_h2_streams)},
	};

	fprintf(f, "# HELP bpfmesh_tunnel_connections_total Tunnelled connections by direction and "
		   "outcome.\n# TYPE bpfmesh_tunnel_connections_total counter\n");
	for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++)
		fprintf(f,
			"bpfmesh_tunnel_connections_total{direction=\"%s\",outcome=\"%s\"} %lu\n",
			conns[i].dir, conns[i].outcome,
			__atomic_load_n((const unsigned long *)((const char *)&t->n + conns[i].off),
					__ATOMIC_RELAXED));
	fprintf(f, "# HELP bpfmesh_tunnel_h2_streams_total HTTP/2 CONNECT streams (ALPN h2, as "
		   "ztunnel sends them): all received, those refused (400), denied by policy (401) or "
		   "whose pod did not answer (503); and those opened on pooled connections to peers.\n"
		   "# TYPE bpfmesh_tunnel_h2_streams_total counter\n");
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
		fprintf(f, "bpfmesh_tunnel_h2_streams_total{outcome=\"%s\"} %lu\n",
			streams[i].outcome,
			__atomic_load_n((const unsigned long *)((const char *)&t->n + streams[i].off),
					__ATOMIC_RELAXED));
	fprintf(f, "# HELP bpfmesh_tunnel_handshakes_total TLS handshakes, full or resumed.\n"
		   "# TYPE bpfmesh_tunnel_handshakes_total counter\n");
	fprintf(f, "bpfmesh_tunnel_handshakes_total{kind=\"full\"} %lu\n",
		CNT_GET(t, full_handshakes));
	fprintf(f, "bpfmesh_tunnel_handshakes_total{kind=\"resumed\"} %lu\n", CNT_GET(t, resumed));
	fprintf(f,
		"# HELP bpfmesh_tunnel_active Open tunnel connections: TLS connections (each "
		"carrying HTTP/2 streams, or one HTTP/1.1 CONNECT), and accepted ones not yet set up.\n"
		"# TYPE bpfmesh_tunnel_active gauge\nbpfmesh_tunnel_active %lu\n",
		CNT_GET(t, active));
	fprintf(f,
		"# HELP bpfmesh_tunnel_h2_streams_active Open HTTP/2 CONNECT streams (tunnelled "
		"application connections), both directions.\n"
		"# TYPE bpfmesh_tunnel_h2_streams_active gauge\nbpfmesh_tunnel_h2_streams_active %lu\n",
		CNT_GET(t, h2_active));
	fprintf(
	    f,
	    "# HELP bpfmesh_tunnel_log_lines_suppressed_total Rejection log lines over the rate "
	    "limit.\n# TYPE bpfmesh_tunnel_log_lines_suppressed_total counter\n"
	    "bpfmesh_tunnel_log_lines_suppressed_total %lu\n",
	    CNT_GET(t, logs_suppressed));
}

/* ---------- setup ---------- */

/* Server side: h2 when the client offers it (ztunnel's HBONE); no ALPN otherwise (the
 * HTTP/1.1 CONNECT framing of earlier agents). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	for (unsigned int i = 0; i < inlen; i += 1 + in[i])
		if (in[i] == 2 && i + 3 <= inlen && !memcmp(in + i + 1, "h2", 2)) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
	return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *ctx_new(struct tunnel *t, X509_STORE *trust, bool server)
{
	SSL_CTX *x = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!x)
		return NULL;
	SSL_CTX_set_min_proto_version(x, TLS1_3_VERSION);
	SSL_CTX_set_app_data(x, t);
	X509_STORE_up_ref(trust);
	SSL_CTX_set_cert_store(x, trust);
	/* buffers stay with a connection once it relays: releasing them when idle costs a
	 * malloc/free pair per record on a busy relay (each connection sets RELEASE_BUFFERS until
	 * it is set up, so one that never is holds none) */
	SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (server) {
		long life = t->o.cert_ttl_s / 2;

		SSL_CTX_set_verify(x, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		SSL_CTX_set_tlsext_servername_callback(x, on_servername);
		SSL_CTX_set_alpn_select_cb(x, on_alpn, t);
		SSL_CTX_set_tlsext_servername_arg(x, t);
		/* a ticket outlives no certificate: resumed peers were verified within a half life
		 */
		SSL_CTX_set_timeout(x, life < 1 ? 1 : life > 7200 ? 7200 : life);
		SSL_CTX_set_num_tickets(x, 1);
		/* resumption with client certificates needs a context id */
		SSL_CTX_set_session_id_context(x, (const unsigned char *)"bpfmesh-hbone", 13);
	} else {
		SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_CLIENT |
						      SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(x, on_new_session);
	}
	return x;
}

struct tunnel *tunnel_new(const struct tunnel_opts *o, X509_STORE *trust)
{
	struct tunnel *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->o = *o;
	t->ep = t->lout = t->lout6 = t->lin = t->wake = -1;
	if (getrandom(&t->pend_seed, sizeof(t->pend_seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(t->pend_seed))
		t->pend_seed = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	t->pend_seed |= 1;
	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&t->dmu, NULL);
	t->dest = calloc(MAX_TDEST, sizeof(*t->dest)); /* NULL: nothing counted, said once */
	t->ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (!(t->cctx = ctx_new(t, trust, false)) || !(t->sctx = ctx_new(t, trust, true)))
		goto fail;
	t->ep = epoll_create1(EPOLL_CLOEXEC);
	t->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	t->lout = dial_listen(o->node_ip, BM_PORT_OUTBOUND, o->filter_out, false, 512);
	t->lin = dial_listen(o->node_ip, BM_PORT_HBONE, o->filter_hbone, false, 512);
	if (t->ep < 0 || t->wake < 0 || t->lout < 0 || t->lin < 0)
		goto fail;
	if (o->node_ip6) { /* IPv6 connects are captured to the node's IPv6 address */
		t->lout6 = dial_listen(o->node_ip6, BM_PORT_OUTBOUND, o->filter_out, false, 512);
		if (t->lout6 < 0) {
			pr_warn("tunnel: cannot listen on [%s]:%d (is it this node's address?): "
				"IPv6 is not tunnelled (to STRICT workloads on other nodes refused "
				"at connect)",
				o->node_ip6, BM_PORT_OUTBOUND);
			t->o.node_ip6 = NULL;
		}
	}
	t->ev_out = (struct tev){.kind = EV_LISTEN_OUT, .c = NULL};
	t->ev_out6 = (struct tev){.kind = EV_LISTEN_OUT, .c = NULL};
	t->ev_in = (struct tev){.kind = EV_LISTEN_IN, .c = NULL};
	t->ev_wake = (struct tev){.kind = EV_WAKE, .c = NULL};
	{
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = &t->ev_wake};

		epoll_ctl(t->ep, EPOLL_CTL_ADD, t->wake, &e);
	}
	if (o->hold)
		t->held = true; /* until tunnel_release */
	else
		listeners_watch(t, true);
	pr_info("tunnel: outbound on %s:%d%s%s%s, mTLS (HBONE) on %s:%d, trust domain %s, %s",
		o->node_ip, BM_PORT_OUTBOUND, t->lout6 >= 0 ? " and [" : "",
		t->lout6 >= 0 ? o->node_ip6 : "", t->lout6 >= 0 ? "]:15001" : "", o->node_ip,
		BM_PORT_HBONE, o->trust_domain, o->cert_source);
	return t;
fail:
	tunnel_free(t);
	return NULL;
}

void tunnel_free(struct tunnel *t)
{
	if (!t)
		return;
	if (t->started) {
		uint64_t one = 1;

		__atomic_store_n(&t->stop, 1, __ATOMIC_RELEASE);
		if (write(t->wake, &one, sizeof(one)) < 0)
			pr_debug("tunnel: wake: %s", strerror(errno));
		pthread_join(t->th, NULL);
	}
	for (struct tconn *c = t->live; c; c = c->next)
		conn_close(c);
	free_dead(t);
	if (t->lout >= 0)
		close(t->lout);
	if (t->lout6 >= 0)
		close(t->lout6);
	if (t->lin >= 0)
		close(t->lin);
	if (t->ep >= 0)
		close(t->ep);
	if (t->wake >= 0)
		close(t->wake);
	SSL_CTX_free(t->cctx);
	SSL_CTX_free(t->sctx);
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (t->sess[i].s)
			SSL_SESSION_free(t->sess[i].s);
	cfgref_put(t->cfg);
	idset_put(t->ids);
	cfgref_put(t->pub_cfg);
	idset_put(t->pub_ids);
	for (int i = 0; i < t->nadopt; i++)
		close(t->adopt[i].fd);
	free(t->adopt);
	while (t->pl)
		pl_close(t, &t->pl);
	free_dead(t);
	for (int i = 0; i < t->nplops; i++)
		if (t->plops[i].fd >= 0)
			close(t->plops[i].fd);
	free(t->plops);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->dmu);
	free(t->dest);
	free(t);
}
