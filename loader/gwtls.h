/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * gwtls.h: TLS at the edge (Gateway servers with protocol HTTPS, tls.mode SIMPLE or MUTUAL):
 * one OpenSSL server context per server, from the Kubernetes Secret its credentialName names
 * in the gateway workload's namespace (istio-system), as Istio reads it: tls.crt, tls.key and
 * ca.crt (type kubernetes.io/tls), or cert, key and cacert (generic); for MUTUAL the CA may be
 * in a Secret of its own, <credentialName>-cacert. tls.minProtocolVersion /
 * maxProtocolVersion (Envoy's default at a gateway: TLS 1.2 up) and cipherSuites (TLS 1.2 and
 * below) as given; ALPN h2 and http/1.1. The server is chosen per connection from the
 * ClientHello's SNI, by the server's hosts (gwtls_pick). Built on the control thread with the
 * HTTP table (l7table.c), immutable afterwards: a rotated Secret is a new context for new
 * connections, while open ones keep theirs.
 */
#ifndef BM_GWTLS_H
#define BM_GWTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>
#include "model.h"

struct gwtls {
	const struct gw_server *sv; /* in the config the table holds */
	const struct gw_obj *gw;
	SSL_CTX *ctx; /* NULL: the server has no usable certificate (err says why) */
	char err[256];
};

/* The context of server sv of Gateway gw, from the Secrets of config c; t->ctx NULL (and
 * t->err set) when the Secret is missing or its certificate, key or CA do not load. */
void gwtls_init(struct gwtls *t, const struct mesh_config *c, const struct gw_obj *gw,
		const struct gw_server *sv);
void gwtls_free(struct gwtls *t);

/* The server a ClientHello's SNI selects among v[0..n): the first whose hosts match it
 * (exact, wildcard, "*"); without SNI, the first with host "*". NULL: none (the handshake
 * fails). */
const struct gwtls *gwtls_pick(const struct gwtls *v, int n, const char *sni);

/* On the SSL a Gateway port's connection is accepted with: the ClientHello callback switches
 * it to the server its SNI selects (gwtls_pick over v, n). Sets ex_data slot gwtls_ex(). */
int gwtls_ex(void);
struct gwtls_pick_arg {
	const struct gwtls *v;
	int n;
	const struct gwtls *chosen; /* out */
	char sni[256];		    /* out */
};
void gwtls_prepare(SSL *ssl, struct gwtls_pick_arg *arg);

#endif /* BM_GWTLS_H */
