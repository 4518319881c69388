// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7rl.c: rate limits on the HTTP path (l7int.h), as Envoy's two filters do them where Istio's
 * EnvoyFilters insert them (user/lib/ratelimit.h reads and evaluates the config):
 *  - local_ratelimit: token buckets of this agent (one per proxy the filter is in: pod and
 *    port, and per route when the route carries its own config), shared by the workers;
 *  - ratelimit: descriptors counted in Redis with envoyproxy/ratelimit's keys and fixed window
 *    (INCRBY + EXPIRE, over when the count passes requests_per_unit), so every node shares
 *    the limit. One connection per worker on its own loop (hiredis's reply reader, our
 *    sockets), pipelined; a request waits at most the filter's timeout, then
 *    failure_mode_deny decides (500 RLSE) or it goes on. Redis down: at once the same.
 * Called by l7req.c at three places: a gateway's and a client's request once routed (GATEWAY,
 * SIDECAR_OUTBOUND) and a pod's before it gets one (SIDECAR_INBOUND).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include "l7int.h"
#include "log.h"
#include "ratelimit.h"

#define RL_MAX_DESCS   8    /* descriptors one request makes, per filter */
#define RL_MAX_KEYS    16   /* Redis counters one request touches */
#define RL_RETRY_MS    1000 /* after a failed connect: fail at once for this long */
#define RL_MAX_PENDING 4096 /* requests in flight on one worker's connection */
/* local buckets are kept for the agent's life (a worker may hold one): at most this many */
#define RL_MAX_BUCKETS 65536

/* One local bucket, for the agent's life (config changes with other parameters make others). */
struct rl_lb {
	char *key;
	pthread_mutex_t mu;
	struct rl_tb_state st;
};

struct l7_rl {
	pthread_mutex_t mu;
	struct htab idx; /* key -> index into v */
	bool full_said;
	struct rl_lb **v;
	int n, cap;
	char *redis_host;
	int redis_port;
	struct sockaddr_in redis_sa; /* resolved once, at the start (never on a worker's loop) */
	bool redis_ok;
	int netns; /* the Redis socket is made in this namespace (fd, the caller's), -1: ours */
	struct rl_domain *files; /* --ratelimit-config */
	int nfiles;
	/* counters (atomics) */
	uint64_t c_local_limited, c_local_passed, c_global_over, c_global_ok, c_errors, c_shadow;
};

/* A request's call, in its worker's connection's queue (FIFO, as Redis answers). */
struct rl_call {
	struct rl_call *next;
	struct l7_req *r; /* NULL: the request gave up (timeout, gone): the answer is dropped */
	int nkeys, got;
	uint32_t rpu[RL_MAX_KEYS];
	bool shadow[RL_MAX_KEYS];
	bool over, failed;
	bool deny_on_error;
};

struct l7_rlc {
	struct l7_io io; /* first: the callback's io is the connection */
	struct l7w *w;
	enum { RC_DOWN, RC_CONNECTING, RC_UP } st;
	uint64_t retry_at;
	redisReader *rd;
	struct l7_buf out;
	struct rl_call *head, *tail;
	int npending;
};

/* ---------------- the agent's part ---------------- */

struct l7_rl *l7_rl_new(const char *redis, int netns, char *const *files, int nfiles)
{
	struct l7_rl *rl = calloc(1, sizeof(*rl));

	if (!rl)
		return NULL;
	rl->netns = netns;
	pthread_mutex_init(&rl->mu, NULL);
	if (redis && *redis) {
		const char *colon = strrchr(redis, ':');

		rl->redis_host = colon ? strndup(redis, (size_t)(colon - redis)) : strdup(redis);
		rl->redis_port = colon ? atoi(colon + 1) : 6379;
		rl->redis_sa.sin_family = AF_INET;
		rl->redis_sa.sin_port = htons((uint16_t)rl->redis_port);
		if (rl->redis_host &&
		    inet_pton(AF_INET, rl->redis_host, &rl->redis_sa.sin_addr) == 1) {
			rl->redis_ok = true;
		} else if (rl->redis_host) {
			struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM},
					*ai;

			if (!getaddrinfo(rl->redis_host, NULL, &hints, &ai)) {
				rl->redis_sa.sin_addr =
				    ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
				rl->redis_ok = true;
				freeaddrinfo(ai);
			}
		}
		if (!rl->redis_ok)
			pr_warn("ratelimit: --ratelimit-redis %s: not an address that resolves: "
				"every global check fails (failure_mode_deny decides)",
				redis);
	}
	rl->files = calloc((size_t)(nfiles ? nfiles : 1), sizeof(*rl->files));
	for (int i = 0; rl->files && i < nfiles; i++) {
		char err[256], *text = NULL;
		size_t len = 0;
		FILE *f = fopen(files[i], "r");

		if (f) {
			FILE *m = open_memstream(&text, &len);
			char buf[4096];
			size_t n;

			while (m && (n = fread(buf, 1, sizeof(buf), f)) > 0)
				fwrite(buf, 1, n, m);
			if (m)
				fclose(m);
			fclose(f);
		}
		if (!text) {
			pr_warn("ratelimit: %s: %s (not loaded)", files[i], strerror(errno));
			continue;
		}
		if (rl_domain_parse(text, len, files[i], &rl->files[rl->nfiles], err, sizeof(err)))
			pr_warn("ratelimit: %s: %s (not loaded)", files[i], err);
		else
			pr_info("ratelimit: %s: domain %s", files[i],
				rl->files[rl->nfiles++].domain);
		free(text);
	}
	return rl;
}

void l7_rl_free(struct l7_rl *rl)
{
	if (!rl)
		return;
	for (int i = 0; i < rl->n; i++) {
		pthread_mutex_destroy(&rl->v[i]->mu);
		free(rl->v[i]->key);
		free(rl->v[i]);
	}
	free(rl->v);
	h_free(&rl->idx);
	for (int i = 0; i < rl->nfiles; i++)
		rl_domain_free(&rl->files[i]);
	free(rl->files);
	free(rl->redis_host);
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

static struct rl_lb *bucket(struct l7_rl *rl, const char *key)
{
	uint8_t k[HKEY];
	int *i;
	struct rl_lb *b = NULL;

	h_strkey(k, key, NULL, NULL);
	pthread_mutex_lock(&rl->mu);
	i = h_get(&rl->idx, k);
	if (i && !strcmp(rl->v[*i]->key, key)) {
		b = rl->v[*i];
	} else if (!i && rl->n >= RL_MAX_BUCKETS) {
		if (!rl->full_said)
			pr_warn("ratelimit: %d local buckets: no more (requests of new proxies, "
				"routes or configs pass unlimited)",
				rl->n);
		rl->full_said = true;
	} else if (!i) {
		if (rl->n == rl->cap) {
			int cap = rl->cap ? rl->cap * 2 : 16;
			struct rl_lb **v = realloc(rl->v, (size_t)cap * sizeof(*v));

			if (!v)
				goto out;
			rl->v = v;
			rl->cap = cap;
		}
		b = calloc(1, sizeof(*b));
		if (!b || !(b->key = strdup(key))) {
			free(b);
			b = NULL;
			goto out;
		}
		pthread_mutex_init(&b->mu, NULL);
		h_put(&rl->idx, k, rl->n);
		rl->v[rl->n++] = b;
	}
out:
	pthread_mutex_unlock(&rl->mu);
	return b; /* NULL (a hash collision, no memory): no bucket, the request passes */
}

void l7_rl_metrics(const struct l7_rl *rl, FILE *f)
{
	if (!rl)
		return;
	fprintf(f,
		"# HELP bpfmesh_ratelimit_local_total Requests a local rate limit "
		"(envoy.filters.http.local_ratelimit) judged.\n"
		"# TYPE bpfmesh_ratelimit_local_total counter\n"
		"bpfmesh_ratelimit_local_total{result=\"ok\"} %llu\n"
		"bpfmesh_ratelimit_local_total{result=\"limited\"} %llu\n"
		"# HELP bpfmesh_ratelimit_global_total Requests a global rate limit "
		"(envoy.filters.http.ratelimit) judged by their counters in Redis.\n"
		"# TYPE bpfmesh_ratelimit_global_total counter\n"
		"bpfmesh_ratelimit_global_total{result=\"ok\"} %llu\n"
		"bpfmesh_ratelimit_global_total{result=\"over_limit\"} %llu\n"
		"bpfmesh_ratelimit_global_total{result=\"shadow_over_limit\"} %llu\n"
		"# HELP bpfmesh_ratelimit_redis_errors_total Global rate-limit checks that got no "
		"answer from Redis (unreachable, an error, the filter's timeout): "
		"failure_mode_deny decided them.\n"
		"# TYPE bpfmesh_ratelimit_redis_errors_total counter\n"
		"bpfmesh_ratelimit_redis_errors_total %llu\n",
		(unsigned long long)__atomic_load_n(&rl->c_local_passed, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&rl->c_local_limited, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&rl->c_global_ok, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&rl->c_global_over, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&rl->c_shadow, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&rl->c_errors, __ATOMIC_RELAXED));
}

static void count(uint64_t *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

/* ---------------- what a request is, to the actions ---------------- */

static const char *req_header(void *arg, const char *name)
{
	struct l7_req *r = arg;

	if (!strcmp(name, ":path"))
		return r->path;
	if (!strcmp(name, ":authority") || !strcmp(name, "host"))
		return r->authority;
	if (!strcmp(name, ":method"))
		return r->method;
	if (!strcmp(name, ":scheme"))
		return r->scheme ? r->scheme : "http";
	return l7h_get(&r->h, name);
}

/* The patches of every EnvoyFilter that selects wl, on side ctx, for this request. */
struct rl_scope {
	const struct mesh_config *c;
	enum ef_ctx ctx;
	const struct workload_obj *wl;
	int port;
	const char *host;  /* the virtual host's ("*" for a gateway's wildcard), NULL inbound */
	const char *route; /* the route's name, NULL */
};

static bool holds(const struct rl_scope *s, const struct ef_obj *f, const struct ef_patch *p,
		  const char *root_ns)
{
	return ef_selects(f, root_ns, s->wl) &&
	       ef_patch_holds(p, s->ctx, s->port, s->host, s->route);
}

/* The descriptors of the request: the route's rate_limits (HTTP_ROUTE) if any applies, else
 * the virtual host's (Envoy's vh_rate_limits OVERRIDE, its default). */
static int descriptors(const struct rl_scope *s, const char *root_ns, const struct rl_req *q,
		       struct rl_desc *ds, int max)
{
	int n = 0;
	bool route_has = false; /* the route has rate_limits: the virtual host's are not used */

	for (int pass = 0; pass < 2 && !route_has; pass++)
		for (int i = 0; i < s->c->nefs; i++) {
			const struct ef_obj *f = &s->c->efs[i];

			for (int k = 0; k < f->np; k++) {
				const struct ef_patch *p = &f->p[k];

				if (p->kind != EFP_ROUTE || !p->nlimits ||
				    p->vhost_level != (pass == 1) || !holds(s, f, p, root_ns))
					continue;
				route_has |= pass == 0;
				for (int j = 0; j < p->nlimits && n < max; j++)
					if (rl_descriptor(&p->limits[j], q, &ds[n]))
						n++;
			}
		}
	return n;
}

/* ---------------- local ---------------- */

/* 429 local_rate_limited, with response_headers_to_add and x-envoy-ratelimited (RL). */
static void local_limited(struct l7_req *r, const struct rl_local *lc)
{
	struct l7_hdrs h = {};

	for (int i = 0; i < lc->nhdrs; i++)
		if (lc->hdrs[i].name && lc->hdrs[i].value)
			l7h_add(&h, lc->hdrs[i].name, lc->hdrs[i].value);
	l7h_set(&h, "x-envoy-ratelimited", "true");
	snprintf(r->details, sizeof(r->details), "local_rate_limited");
	l7_req_reply(r, 429, RF_RL, "local_rate_limited", &h);
	l7h_free(&h);
}

/* Every local filter of the scope; true when one refused r (replied). */
static bool local_check(struct l7_req *r, const struct rl_scope *s, const char *root_ns,
			struct l7_rl *rl, const struct rl_desc *ds, int nds)
{
	struct l7w *w = l7_req_worker(r);

	for (int i = 0; i < s->c->nefs; i++) {
		const struct ef_obj *f = &s->c->efs[i];

		for (int k = 0; k < f->np; k++) {
			const struct ef_patch *p = &f->p[k], *rp = NULL;
			const struct ef_obj *rpf = NULL;
			const struct rl_local *lc;
			int idx[RL_MAX_DESCS], nidx;
			bool ok = true;

			if (p->kind != EFP_LOCAL || !holds(s, f, p, root_ns))
				continue;
			/* the most specific config replaces the filter's: a route's, then a
			 * virtual host's (typed_per_filter_config) */
			for (int pass = 0; pass < 2 && !rp; pass++)
				for (int a = 0; a < s->c->nefs && !rp; a++)
					for (int b = 0; b < s->c->efs[a].np && !rp; b++) {
						const struct ef_patch *q = &s->c->efs[a].p[b];

						if (q->kind == EFP_ROUTE && q->has_local &&
						    q->vhost_level == (pass == 1) &&
						    holds(s, &s->c->efs[a], q, root_ns)) {
							rp = q;
							rpf = &s->c->efs[a];
						}
					}
			lc = rp ? &rp->local : &p->local;
			if (!lc->has_tb || lc->enabled <= 0 ||
			    (lc->enabled < 1 && l7_rand(w) / 4294967296.0 >= lc->enabled))
				continue; /* not enabled for this request: untouched */
			nidx = rl_local_match(lc, ds, nds, idx, RL_MAX_DESCS);
			/* one proxy's buckets: the pod (or the gateway) and the port, per route
			 * when the route has its own config; named by what they are (a publish
			 * of the same config keeps them). The matched descriptors' first, the
			 * default one last, as Envoy takes them: a refusal stops there. */
			for (int j = 0; j <= nidx && ok; j++) {
				const struct rl_bucket *tb =
				    j == nidx ? &lc->tb : &lc->descs[idx[j]].tb;
				struct rl_lb *b;
				char *key = NULL;

				if (asprintf(&key, "%s/%s#%d|%s/%s#%d|%d|%s/%s:%d|%u/%u/%lld",
					     f->ns, f->name, k, rpf ? rpf->ns : "-",
					     rpf ? rpf->name : "-", rp ? rp->index : -1,
					     j == nidx ? -1 : idx[j], s->wl->ns, s->wl->name,
					     s->port, tb->max_tokens, tb->tokens_per_fill,
					     (long long)tb->fill_ms) < 0)
					continue;
				b = bucket(rl, key);
				free(key);
				if (!b)
					continue;
				pthread_mutex_lock(&b->mu);
				ok = rl_take(&b->st, tb, (int64_t)l7_now());
				pthread_mutex_unlock(&b->mu);
			}
			if (ok) {
				count(&rl->c_local_passed);
				continue;
			}
			count(&rl->c_local_limited);
			if (lc->enforced <= 0 ||
			    (lc->enforced < 1 && l7_rand(w) / 4294967296.0 >= lc->enforced))
				continue; /* counted, not enforced */
			local_limited(r, lc);
			return true;
		}
	}
	return false;
}

/* ---------------- Redis ---------------- */

static void rlc_fail_all(struct l7w *w, struct l7_rlc *c);

static void call_done(struct l7w *w, struct rl_call *k)
{
	struct l7_req *r = k->r;
	struct l7_rl *rl = l7_rl_of(w);

	if (!r)
		return;
	r->rl_call = NULL;
	l7_timer_stop(w, &r->t_rl);
	if (k->failed) {
		count(&rl->c_errors);
		l7_req_rl_done(r, k->deny_on_error ? L7_RL_ERROR : L7_RL_PASS);
		return;
	}
	count(k->over ? &rl->c_global_over : &rl->c_global_ok);
	l7_req_rl_done(r, k->over ? L7_RL_OVER : L7_RL_PASS);
}

static void rlc_close(struct l7w *w, struct l7_rlc *c)
{
	if (c->io.fd >= 0)
		l7_io_close(w, &c->io);
	c->io.fd = -1;
	if (c->rd)
		redisReaderFree(c->rd);
	c->rd = NULL;
	lb_free(&c->out);
	c->st = RC_DOWN;
}

static void rlc_fail_all(struct l7w *w, struct l7_rlc *c)
{
	struct rl_call *k = c->head;

	c->head = c->tail = NULL;
	c->npending = 0;
	rlc_close(w, c);
	c->retry_at = w->now + RL_RETRY_MS;
	while (k) {
		struct rl_call *next = k->next;

		k->failed = true;
		call_done(w, k);
		free(k);
		k = next;
	}
}

static void rlc_read(struct l7w *w, struct l7_rlc *c)
{
	char buf[16384];
	ssize_t n;

	for (;;) {
		n = read(c->io.fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			rlc_fail_all(w, c);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (redisReaderFeed(c->rd, buf, (size_t)n) != REDIS_OK) {
			rlc_fail_all(w, c);
			return;
		}
		for (;;) {
			redisReply *rep = NULL;
			struct rl_call *k = c->head;

			if (redisReaderGetReply(c->rd, (void **)&rep) != REDIS_OK) {
				rlc_fail_all(w, c);
				return;
			}
			if (!rep)
				break;
			if (!k) { /* an answer nobody asked for */
				freeReplyObject(rep);
				rlc_fail_all(w, c);
				return;
			}
			/* replies come in pairs: INCRBY's count, EXPIRE's 1 */
			if (k->got % 2 == 0) {
				if (rep->type != REDIS_REPLY_INTEGER)
					k->failed = true;
				else if ((unsigned long long)rep->integer > k->rpu[k->got / 2] &&
					 !k->shadow[k->got / 2])
					k->over = true;
				else if ((unsigned long long)rep->integer > k->rpu[k->got / 2])
					count(&l7_rl_of(w)->c_shadow);
			} else if (rep->type == REDIS_REPLY_ERROR) {
				k->failed = true;
			}
			freeReplyObject(rep);
			if (++k->got == 2 * k->nkeys) {
				c->head = k->next;
				if (!c->head)
					c->tail = NULL;
				c->npending--;
				call_done(w, k);
				free(k);
			}
		}
	}
}

static void rlc_on(struct l7_io *io, uint32_t ev)
{
	struct l7_rlc *c = (struct l7_rlc *)io;
	struct l7w *w = c->w;

	if (c->st == RC_CONNECTING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t el = sizeof(err);

		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
			rlc_fail_all(w, c);
			return;
		}
		c->st = RC_UP;
	}
	if (ev & (EPOLLERR | EPOLLHUP)) {
		rlc_fail_all(w, c);
		return;
	}
	if (ev & EPOLLIN) {
		rlc_read(w, c);
		if (c->st != RC_UP)
			return;
	}
	if (lb_pending(&c->out) && lb_flush(&c->out, io->fd) < 0) {
		rlc_fail_all(w, c);
		return;
	}
	l7_io_want(w, io, EPOLLIN | (lb_pending(&c->out) ? EPOLLOUT : 0));
}

/* A TCP socket in namespace ns (this thread enters it for the socket() call only: a socket
 * stays in the namespace it was made in), or in ours when ns < 0. */
static int rl_socket(int ns)
{
	int fd, self;

	if (ns < 0)
		return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -1;
	if (setns(ns, CLONE_NEWNET)) {
		close(self);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (setns(self, CLONE_NEWNET)) {
		/* cannot happen (we came from there); this thread must not stay outside */
		pr_warn("ratelimit: cannot go back to the workers' network namespace");
		abort();
	}
	close(self);
	return fd;
}

static int rlc_connect(struct l7w *w, struct l7_rlc *c, const struct l7_rl *rl)
{
	int fd, one = 1;

	if (!rl->redis_ok)
		return -1;
	fd = rl_socket(rl->netns);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&rl->redis_sa, sizeof(rl->redis_sa)) &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	c->rd = redisReaderCreate();
	if (!c->rd) {
		close(fd);
		return -1;
	}
	c->io.fd = fd;
	c->io.on = rlc_on;
	c->st = RC_CONNECTING;
	/* no answer within a call's timeout (connecting included) closes it: on_rl_timeout */
	l7_io_want(w, &c->io, EPOLLIN | EPOLLOUT);
	return 0;
}

static struct l7_rlc *rlc_of(struct l7w *w)
{
	struct l7_rlc **pc = l7_rlc_slot(w);

	if (!*pc) {
		*pc = calloc(1, sizeof(**pc));
		if (*pc) {
			(*pc)->io.fd = -1;
			(*pc)->w = w;
		}
	}
	return *pc;
}

void l7_rlc_free(struct l7w *w, struct l7_rlc *c)
{
	if (!c)
		return;
	/* the engine is going away with its requests: no answers */
	while (c->head) {
		struct rl_call *k = c->head;

		c->head = k->next;
		free(k);
	}
	rlc_close(w, c);
	free(c);
}

static void on_rl_timeout(struct l7_timer *t)
{
	struct l7_req *r = (struct l7_req *)((char *)t - offsetof(struct l7_req, t_rl));
	struct rl_call *k = r->rl_call;
	struct l7w *w = l7_req_worker(r);
	struct l7_rlc *c = *l7_rlc_slot(w);
	bool deny;

	if (!k)
		return;
	deny = k->deny_on_error;
	k->r = NULL; /* this one is failed below, not by the connection */
	r->rl_call = NULL;
	/* Redis has not answered (or not even connected) in time: the connection is no good
	 * any more; every other call on it fails too, and the next request connects again */
	if (c) {
		rlc_fail_all(w, c);
		c->retry_at = 0;
	}
	count(&l7_rl_of(w)->c_errors);
	l7_req_rl_done(r, deny ? L7_RL_ERROR : L7_RL_PASS);
}

void l7_rl_cancel(struct l7_req *r)
{
	if (r->rl_call) {
		((struct rl_call *)r->rl_call)->r = NULL;
		r->rl_call = NULL;
	}
	l7_timer_stop(l7_req_worker(r), &r->t_rl);
}

/* The config of domain name: the ConfigMaps' first, then --ratelimit-config's. */
static const struct rl_domain *domain_of(const struct mesh_config *c, const struct l7_rl *rl,
					 const char *name)
{
	for (int i = 0; name && c && i < c->nrlcms; i++)
		for (int j = 0; j < c->rlcms[i].ndoms; j++)
			if (!strcmp(c->rlcms[i].doms[j].domain, name))
				return &c->rlcms[i].doms[j];
	for (int i = 0; name && i < rl->nfiles; i++)
		if (!strcmp(rl->files[i].domain, name))
			return &rl->files[i];
	return NULL;
}

/* What one request asks of Redis: a counter per limited descriptor of each global filter. */
struct rl_ask {
	char keys[RL_MAX_KEYS][512];
	const struct rl_cdesc *lim[RL_MAX_KEYS];
	int n;
	bool deny;	 /* a filter with failure_mode_deny is among them */
	int64_t timeout; /* the shortest of theirs */
};

/* Global filter p's limits for ds (its domain's config, `replaces` applied) into a. */
static void ask_add(struct rl_ask *a, const struct rl_domain *dom, const struct ef_patch *p,
		    const struct rl_desc *ds, int nds, int64_t now_s)
{
	const struct rl_cdesc *lim[RL_MAX_KEYS];
	const struct rl_desc *ld[RL_MAX_KEYS];
	int n = 0, before = a->n;

	for (int i = 0; i < nds && n < RL_MAX_KEYS; i++) {
		const struct rl_cdesc *l = rl_domain_limit(dom, &ds[i]);

		if (l && !l->unlimited) {
			lim[n] = l;
			ld[n++] = &ds[i];
		}
	}
	/* the limits some matched limit replaces are dropped (all of them, whichever replaced
	 * which, as the service does) */
	for (int i = 0; i < n && a->n < RL_MAX_KEYS; i++) {
		bool gone = false;

		for (int j = 0; lim[i]->name && j < n && !gone; j++)
			for (int m = 0; j != i && m < lim[j]->nreplaces && !gone; m++)
				gone = lim[j]->replaces[m] &&
				       !strcmp(lim[j]->replaces[m], lim[i]->name);
		if (!gone && !rl_cache_key(a->keys[a->n], sizeof(a->keys[0]), dom->domain, ld[i],
					   lim[i], now_s))
			a->lim[a->n++] = lim[i];
	}
	if (a->n > before) {
		a->deny |= p->failure_mode_deny;
		if (!a->timeout || p->timeout_ms < a->timeout)
			a->timeout = p->timeout_ms > 0 ? p->timeout_ms : 20;
	}
}

/* Send a's counters (INCRBY, then EXPIRE for the window) on the worker's connection. 1: r
 * waits (the answer calls l7_req_rl_done), -1: an error now (no Redis, none reachable). */
static int ask_send(struct l7_req *r, struct l7_rl *rl, const struct rl_ask *a)
{
	struct l7w *w = l7_req_worker(r);
	struct l7_rlc *rc;
	struct rl_call *k;
	char *cmds[2 * RL_MAX_KEYS] = {0};
	bool bad = false;

	if (!rl->redis_host)
		return -1;
	rc = rlc_of(w);
	if (!rc)
		return -1;
	if (rc->st == RC_DOWN && (w->now < rc->retry_at || rlc_connect(w, rc, rl))) {
		rc->retry_at = w->now + RL_RETRY_MS;
		return -1;
	}
	if (rc->npending >= RL_MAX_PENDING || !(k = calloc(1, sizeof(*k))))
		return -1;
	/* every command formatted first: a failure sends none (replies stay paired) */
	for (int i = 0; i < a->n; i++) {
		char exp[24];

		snprintf(exp, sizeof(exp), "%u", a->lim[i]->unit_s);
		if (redisFormatCommand(&cmds[2 * i], "INCRBY %s 1", a->keys[i]) <= 0 ||
		    redisFormatCommand(&cmds[2 * i + 1], "EXPIRE %s %s", a->keys[i], exp) <= 0)
			bad = true;
		k->rpu[i] = a->lim[i]->rpu;
		k->shadow[i] = a->lim[i]->shadow;
	}
	for (int i = 0; i < 2 * a->n; i++) {
		if (!bad)
			lb_put(&rc->out, cmds[i], strlen(cmds[i]));
		redisFreeCommand(cmds[i]);
	}
	if (bad) {
		free(k);
		return -1;
	}
	k->nkeys = a->n;
	k->r = r;
	k->deny_on_error = a->deny;
	if (rc->tail)
		rc->tail->next = k;
	else
		rc->head = k;
	rc->tail = k;
	rc->npending++;
	r->rl_call = k;
	r->t_rl.fire = on_rl_timeout;
	l7_timer_set(w, &r->t_rl, w->now + (uint64_t)a->timeout);
	if (rc->st == RC_UP)
		l7_io_want(w, &rc->io, EPOLLIN | EPOLLOUT);
	return 1;
}

/* ---------------- the entry ---------------- */

int l7_ratelimit(struct l7_req *r, enum ef_ctx ctx, const struct workload_obj *wl, int port)
{
	struct l7w *w = l7_req_worker(r);
	struct l7_rl *rl = l7_rl_of(w);
	const char *root_ns = l7_opts_of(w)->root_ns;
	struct rl_scope s = {.c = r->snap ? r->snap->c : NULL, .ctx = ctx, .wl = wl, .port = port};
	struct rl_desc ds[RL_MAX_DESCS];
	char remote[INET_ADDRSTRLEN], srcc[300], dstc[400];
	struct rl_req q = {.header = req_header, .arg = r, .remote = remote};
	int nds;

	if (!rl || !s.c || !s.c->nefs || !wl)
		return L7_RL_PASS;
	if (ctx == EF_GATEWAY && r->vh)
		s.host = r->vh->domain;
	else if (ctx == EF_OUTBOUND && r->svc)
		s.host = r->svc->fqdn;
	s.route = r->rt && r->rt->r ? r->rt->r->name : NULL;
	if (ctx == EF_INBOUND)
		s.route = "default"; /* Istio's one inbound route per port */
	inet_ntop(AF_INET, r->dc->src_ip, remote, sizeof(remote));
	/* Envoy's: the proxy's own service cluster (Istio: app.namespace), the routed cluster
	 * (Istio's outbound|PORT|SUBSET|HOST, inbound|PORT||) */
	snprintf(srcc, sizeof(srcc), "%s.%s",
		 kv_get(&wl->labels, "app") ? kv_get(&wl->labels, "app") : wl->name, wl->ns);
	q.source_cluster = srcc;
	if (ctx == EF_INBOUND)
		snprintf(dstc, sizeof(dstc), "inbound|%d||", port);
	else if (r->cl && r->cl->fqdn)
		snprintf(dstc, sizeof(dstc), "outbound|%d|%s|%s",
			 r->dest && r->dest->rd && r->dest->rd->port ? r->dest->rd->port
								     : r->dc->vport,
			 strcmp(r->cl->name, "(all)") ? r->cl->name : "", r->cl->fqdn);
	else
		dstc[0] = 0;
	q.dest_cluster = dstc[0] ? dstc : NULL;
	nds = descriptors(&s, root_ns, &q, ds, RL_MAX_DESCS);
	if (local_check(r, &s, root_ns, rl, ds, nds))
		return L7_RL_REPLIED;
	/* every global filter of the scope (Istio's task inserts one; each would ask the
	 * service in turn): their counters in one pipelined call */
	if (nds) {
		struct rl_ask a = {0};
		bool any = false;
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		for (int i = 0; i < s.c->nefs; i++)
			for (int k = 0; k < s.c->efs[i].np; k++) {
				const struct ef_patch *p = &s.c->efs[i].p[k];
				const struct rl_domain *dom;

				if (p->kind != EFP_GLOBAL || !holds(&s, &s.c->efs[i], p, root_ns))
					continue;
				any = true;
				dom = domain_of(s.c, rl, p->domain);
				if (dom) /* an unknown domain: OK, no limit */
					ask_add(&a, dom, p, ds, nds, now.tv_sec);
			}
		if (any && a.n) {
			if (ask_send(r, rl, &a) > 0)
				return L7_RL_WAIT;
			count(&rl->c_errors);
			if (a.deny)
				return L7_RL_ERROR;
		}
	}
	return L7_RL_PASS;
}

void l7_rl_refuse(struct l7_req *r, int verdict)
{
	struct l7_hdrs h = {};

	if (verdict == L7_RL_OVER) {
		l7h_set(&h, "x-envoy-ratelimited", "true");
		snprintf(r->details, sizeof(r->details), "request_rate_limited");
		l7_req_reply(r, 429, RF_RL, NULL, &h);
	} else {
		snprintf(r->details, sizeof(r->details), "rate_limiter_error");
		l7_req_reply(r, 500, RF_RLSE, NULL, &h);
	}
	l7h_free(&h);
}
