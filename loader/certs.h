/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * certs.h: the workload identities this node's agent holds, on the agent's control thread
 * (never on the data path): which (namespace, service account) pairs its local mesh pods need,
 * their certificates, renewal at half life, and immutable snapshots the tunnel's data thread
 * reads (struct idset, reference counted). Certificates come from one of:
 *  - the CA service (`bpfmesh ca serve`, --ca-addr): the agent sends a CSR per identity over
 *    mutual TLS with its node certificate (--node-cert DIR: node.crt, node.key, ca.crt), and
 *    the CA signs only identities of pods scheduled on that node;
 *  - a CA directory (--ca-dir): the agent signs itself; one machine only, since any agent
 *    holding the CA key can mint any identity (the agent warns);
 *  - files another CA wrote (--certs-dir DIR/<ns>/<sa>/, cert-manager or SPIRE layout),
 *    reloaded when they change.
 * The public certificates in force are written to <run dir>/certs/<ns>_<sa>.pem.
 */
#ifndef BM_CERTS_H
#define BM_CERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

struct certs_opts {
	const char *ca_dir;	   /* sign locally */
	const char *certs_dir;	   /* bring your own */
	const char *ca_addr;	   /* CA service, "IP:PORT" */
	const char *node_cert_dir; /* this node's identity for the CA service */
	const char *trust_domain;
	const char *run_dir;
	long cert_ttl_s;
};

/* One workload identity, immutable once in a set. */
struct ident {
	char ns[64], sa[128], spiffe[320];
	EVP_PKEY *key;
	X509 *cert;
	STACK_OF(X509) * chain; /* intermediates (bring your own), or NULL */
	time_t not_before, not_after, files_mtime;
	unsigned gen; /* bumps on renewal: TLS sessions of older ones are not resumed */
};

struct idset {
	int refs; /* atomic */
	int n;
	struct ident *v; /* own references to every key and certificate */
};

/* An identity the node needs: a local mesh pod's (ns, sa), and the pod (for the CA service,
 * which checks that pod is scheduled on this node with that service account). */
struct certs_want {
	const char *ns, *sa, *pod;
};

struct certs;

struct certs *certs_new(const struct certs_opts *o, char *err, size_t errlen);
void certs_free(struct certs *cs);

/* The trust anchors (a new reference, for an SSL_CTX). */
X509_STORE *certs_trust(struct certs *cs);

/* Hold exactly the identities of want (issue the missing ones, renew the ones at half life or
 * whose files changed, drop the unwanted). true when the set in force changed. */
bool certs_sync(struct certs *cs, const struct certs_want *want, int n, time_t now);

/* The set in force (a new reference; idset_put when done). */
struct idset *certs_idset(struct certs *cs);
struct idset *idset_get(struct idset *s);
void idset_put(struct idset *s);
const struct ident *idset_find(const struct idset *s, const char *ns, const char *sa);

unsigned long certs_issued(const struct certs *cs);

#endif /* BM_CERTS_H */
