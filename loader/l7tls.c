// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7tls.c: VirtualService `tls` routes on ports Istio reads as tls or https. The client's TLS
 * stays end to end (the agent neither terminates nor originates it): the agent reads the
 * ClientHello the kernel-captured connection starts with, takes the SNI from its server_name
 * extension, picks the first tls route whose match holds (sniHosts, port, sourceLabels,
 * sourceNamespace: l7route.c), a destination by weight and an endpoint by the subset's load
 * balancing, dials it (a pod of this node with its attest pass, another node's through the
 * mTLS tunnel as the client pod, or directly) and relays raw bytes both ways, the ClientHello
 * first. No route for the name: the connection is closed (Envoy's BlackHoleCluster for a
 * mesh service).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include "cfgref.h"
#include "l7int.h"
#include "log.h"
#include "pins.h"
#include "security.h"

#define TLS_HELLO_MAX (16384 + 5) /* one TLS record: what the ClientHello must fit in */

struct tlsc {
	struct l7_dead dead;
	struct l7_dconn dc;
	struct l7_buf in;
	struct l7_timer t;
	bool done;
};

static void tlsc_free(struct l7_dead *d)
{
	struct tlsc *c = (struct tlsc *)d;

	lb_free(&c->in);
	free(c);
}

static void tlsc_end(struct tlsc *c, bool close_fd)
{
	struct l7w *w = c->dc.w;

	if (c->done)
		return;
	c->done = true;
	l7_timer_stop(w, &c->t);
	l7_io_want(w, &c->dc.io, 0);
	if (close_fd && c->dc.io.fd >= 0)
		close(c->dc.io.fd);
	c->dc.io.fd = -1;
	__atomic_sub_fetch(&w->c_active, 1, __ATOMIC_RELAXED);
	l7_defer_free(w, &c->dead);
}

/* The agent's pass for a dial to a pod of this node is spent once the SYN is through: dropped
 * a second later (the relay owns the socket by then). */
struct passdrop {
	struct l7_dead dead;
	struct l7_timer t;
	struct dial_pass pass;
	struct l7w *w;
};

static void passdrop_free(struct l7_dead *d)
{
	free((struct passdrop *)d);
}

static void passdrop_fire(struct l7_timer *t)
{
	struct passdrop *p = (struct passdrop *)((char *)t - offsetof(struct passdrop, t));
	const struct l7_opts *o = l7_opts_of(p->w);

	dial_pass_drop(o->fds ? o->fds->attest : -1, &p->pass);
	l7_defer_free(p->w, &p->dead);
}

static void pass_drop_later(struct l7w *w, const struct dial_pass *pass)
{
	struct passdrop *p;

	if (!pass->have || !(p = calloc(1, sizeof(*p))))
		return;
	p->dead.free = passdrop_free;
	p->t = (struct l7_timer){.idx = -1, .fire = passdrop_fire};
	p->pass = *pass;
	p->w = w;
	l7_timer_set(w, &p->t, w->now + 1000);
}

/* The AuthorizationPolicy of a pod of this node, for the client the kernel attested (as a
 * connection's, L4: tls routes see no requests); the destination node judges remote pods. */
static bool tls_authorized(struct l7w *w, const struct l7_snap *snap,
			   const struct workload_obj *src, const struct l7_dconn *dc,
			   const struct l7_ep *e)
{
	const struct l7_opts *o = l7_opts_of(w);
	const struct mesh_config *c = snap->cfg ? snap->cfg->c : NULL;
	const char *td = o->trust_domain ? o->trust_domain : "cluster.local";
	struct sec_peer peer = {.ip_len = 128};
	struct sec_decision d;
	char principal[400];

	if (!c || !e->local || !e->wl)
		return true;
	peer.ip[10] = peer.ip[11] = 0xff;
	memcpy(peer.ip + 12, dc->src_ip, 4);
	if (dc->gw_port) /* the gateway's own address, as the pod sees Istio's gateway pod */
		inet_pton(AF_INET, o->node_ip, peer.ip + 12);
	if (src && (dc->gw_port || config_in_mesh(c, src))) { /* (or the gateway's identity) */
		snprintf(principal, sizeof(principal), "%s/ns/%s/sa/%s", td, src->ns,
			 src->service_account ? src->service_account : "default");
		peer.principal = principal;
		peer.ns = src->ns;
	}
	sec_authorize(c, o->root_ns, e->wl, e->port, &peer, &d);
	return d.verdict != SEC_DENY;
}

/* Route, dial, relay: the ClientHello is in c->in (sni NULL: a Gateway's TCP server, by its
 * tcp routes; nothing read yet, a server-first protocol works). */
static void tlsc_route(struct tlsc *c, const char *sni)
{
	struct l7w *w = c->dc.w;
	struct l7_snap *snap = w->snap;
	const struct l7_gwport *gp =
	    snap && snap->t && c->dc.gw_port ? l7_table_gwport(snap->t, c->dc.gw_port) : NULL;
	const struct l7_vhost *vh =
	    gp && sni ? l7_table_vhost(gp, sni, NULL)
		      : NULL; /* a Gateway's PASSTHROUGH server: the virtual host of the SNI */
	const struct l7_svc *svc = c->dc.gw_port ? (vh ? &vh->s : NULL)
				   : snap && snap->t
				       ? l7_table_find(snap->t, c->dc.vip, c->dc.vport)
				       : NULL;
	const struct workload_obj *src = c->dc.gw_port ? l7_gateway_of(w)
					 : snap	       ? l7_snap_pod(snap, c->dc.src_pod)
						       : NULL;
	const struct l7_dest *dest;
	struct l7_req_view v = {.src = src, .src_ip = c->dc.src_ip, .port = c->dc.vport};
	struct l7_buf none = {0};
	struct dial_pass pass = {0};
	int i, ep, fd, dfd = c->dc.io.fd;

	if (c->dc.gw_port && snap && snap->cfg) {
		/* the gateway's own AuthorizationPolicy first, for its client (a plaintext peer at
		 * its address: L4, the request is encrypted end to end) */
		const struct l7_opts *o = l7_opts_of(w);
		struct sec_peer peer = {.ip_len = 128};
		struct sec_decision d;

		peer.ip[10] = peer.ip[11] = 0xff;
		memcpy(peer.ip + 12, c->dc.src_ip, 4);
		sec_authorize(snap->cfg->c, o->root_ns, src, c->dc.gw_port, &peer, &d);
		if (d.verdict == SEC_DENY) {
			pr_debug("l7: tls: gateway port %u: \"%s\" denied by AuthorizationPolicy",
				 c->dc.gw_port, sni ? sni : "(tcp)");
			tlsc_end(c, true);
			return;
		}
	}
	if (!sni) {
		/* TCP: the first tcp route that holds in config order (VirtualServices, then their
		 * routes: the model's arrays, so their addresses), over the port's virtual hosts */
		svc = NULL;
		i = -1;
		for (int k = 0; gp && k < gp->nvh; k++) {
			int j = l7_tcp_route_find(&gp->vh[k].s, c->dc.gw_port, NULL);
			const struct l7_route *a = j >= 0 ? &gp->vh[k].s.routes[j] : NULL,
					      *b = i >= 0 ? &svc->routes[i] : NULL;

			if (a && (!b || a->vs < b->vs || (a->vs == b->vs && a->r < b->r))) {
				svc = &gp->vh[k].s;
				i = j;
			}
		}
		sni = "";
	} else {
		i = svc ? l7_tls_route_find(svc, sni, c->dc.vport, src) : -1;
	}
	dest = i >= 0 ? l7_pick_dest(&svc->routes[i], l7_rand(w)) : NULL;
	ep = dest && dest->cl ? l7_pick_ep(dest->cl, &v, l7_rand(w), -1, NULL, NULL) : -1;
	if (ep < 0) {
		pr_debug("l7: tls: %s: no tls route or endpoint for \"%s\": closed",
			 svc && svc->fqdn ? svc->fqdn : "?", sni);
		tlsc_end(c, true);
		return;
	}
	if (!tls_authorized(w, snap, src, &c->dc, &dest->cl->eps[ep])) {
		pr_debug("l7: tls: \"%s\" to %s: denied by AuthorizationPolicy", sni,
			 svc->fqdn ? svc->fqdn : "?");
		tlsc_end(c, true);
		return;
	}
	fd = l7_dial_ep(w, &c->dc, &dest->cl->eps[ep], &pass);
	if (fd < 0) {
		tlsc_end(c, true);
		return;
	}
	pass_drop_later(w, &pass);
	tlsc_end(c, false);
	l7_relay(w, dfd, &none, fd, &c->in);
}

static void tlsc_try(struct tlsc *c)
{
	char sni[256];
	int r =
	    l7_tls_sni((const uint8_t *)c->in.p + c->in.off, lb_pending(&c->in), sni, sizeof(sni));

	if (r < 0) {
		tlsc_end(c, true); /* a tls route needs a ClientHello */
		return;
	}
	if (r > 0)
		tlsc_route(c, sni);
}

static void tlsc_io(struct l7_io *io, uint32_t ev)
{
	struct tlsc *c = (struct tlsc *)((char *)io - offsetof(struct tlsc, dc.io));
	char b[L7_READ_CHUNK];

	(void)ev;
	for (;;) {
		ssize_t n = recv(io->fd, b, sizeof(b), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			tlsc_end(c, true);
			return;
		}
		lb_put(&c->in, b, n);
		if (lb_pending(&c->in) >= TLS_HELLO_MAX)
			break;
	}
	tlsc_try(c);
}

static void tlsc_timeout(struct l7_timer *t)
{
	tlsc_end((struct tlsc *)((char *)t - offsetof(struct tlsc, t)), true);
}

/* A Gateway's TCP server: routed at once (by port and source), then relayed. */
void l7_tcp_gw_server(struct l7w *w, int fd, const struct l7_dconn *tmpl)
{
	struct tlsc *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return;
	}
	__atomic_add_fetch(&w->c_conns, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&w->c_active, 1, __ATOMIC_RELAXED);
	c->dead.free = tlsc_free;
	c->dc = *tmpl;
	c->dc.w = w;
	c->dc.io.fd = fd;
	c->dc.io.on = tlsc_io;
	c->dc.io.mask = 0;
	c->t = (struct l7_timer){.idx = -1, .fire = tlsc_timeout};
	tlsc_route(c, NULL);
}

void l7_tls_server(struct l7_dconn *tmpl, const char *pre, size_t n)
{
	struct tlsc *c = calloc(1, sizeof(*c));

	if (!c) {
		close(tmpl->io.fd);
		__atomic_sub_fetch(&tmpl->w->c_active, 1, __ATOMIC_RELAXED);
		return;
	}
	c->dead.free = tlsc_free;
	c->dc = *tmpl;
	c->dc.io.on = tlsc_io;
	c->dc.io.mask = 0;
	c->t = (struct l7_timer){.idx = -1, .fire = tlsc_timeout};
	lb_put(&c->in, pre, n);
	l7_timer_set(c->dc.w, &c->t, c->dc.w->now + L7_STREAM_IDLE_MS);
	tlsc_try(c);
	if (!c->done)
		l7_io_want(c->dc.w, &c->dc.io, EPOLLIN | EPOLLRDHUP);
}
