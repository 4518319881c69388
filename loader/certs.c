// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * certs.c: see certs.h. Called by the agent's control thread (loader/agent.c); the tunnel's
 * data thread only reads the sets it publishes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include "ca.h"
#include "certs.h"
#include "log.h"

#define CA_TIMEOUT_MS 3000 /* one request to the CA service, connect to answer */
#define CA_RETRY_SECS 1	   /* after a failure, before asking again for that identity */
#define CA_ANSWER_MAX 65536

struct slot {
	struct ident id;
	bool wanted;
	time_t retry_at; /* not before: the last attempt failed */
	char pod[256];	 /* the pod the CA service is asked on behalf of */
};

struct certs {
	struct certs_opts o;
	struct ca *ca;
	X509_STORE *store;
	SSL_CTX *ca_ctx; /* client of the CA service, with the node certificate */
	struct slot *v;
	int n, cap;
	struct idset *cur;
	unsigned long issued;
};

static time_t asn1_time(const ASN1_TIME *a)
{
	struct tm tm;

	if (!a || !ASN1_TIME_to_tm(a, &tm))
		return 0;
	return timegm(&tm);
}

static void ident_clear(struct ident *id)
{
	EVP_PKEY_free(id->key);
	X509_free(id->cert);
	if (id->chain)
		sk_X509_pop_free(id->chain, X509_free);
	id->key = NULL;
	id->cert = NULL;
	id->chain = NULL;
}

/* ---------- sets ---------- */

struct idset *idset_get(struct idset *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);
	return s;
}

void idset_put(struct idset *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (int i = 0; i < s->n; i++)
		ident_clear(&s->v[i]);
	free(s->v);
	free(s);
}

const struct ident *idset_find(const struct idset *s, const char *ns, const char *sa)
{
	for (int i = 0; s && i < s->n; i++)
		if (!strcmp(s->v[i].ns, ns) && !strcmp(s->v[i].sa, sa))
			return &s->v[i];
	return NULL;
}

/* A set of the identities that have certificates, each with references of its own. */
static struct idset *snapshot(struct certs *cs)
{
	struct idset *s = calloc(1, sizeof(*s));

	if (!s || !(s->v = calloc(cs->n + 1, sizeof(*s->v))))
		abort();
	s->refs = 1;
	for (int i = 0; i < cs->n; i++) {
		const struct ident *id = &cs->v[i].id;
		struct ident *d;

		if (!cs->v[i].wanted || !id->cert)
			continue;
		d = &s->v[s->n++];
		*d = *id;
		EVP_PKEY_up_ref(d->key);
		X509_up_ref(d->cert);
		if (id->chain) {
			d->chain = sk_X509_dup(id->chain);
			for (int k = 0; k < sk_X509_num(d->chain); k++)
				X509_up_ref(sk_X509_value(d->chain, k));
		}
	}
	return s;
}

struct idset *certs_idset(struct certs *cs)
{
	return idset_get(cs->cur);
}

/* ---------- the CA service ---------- */

static int connect_timeout(const char *addr, int ms)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct pollfd p;
	int fd, err = 0;
	socklen_t l = sizeof(err);

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	sa.sin_port = htons(atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS)
		goto fail;
	p = (struct pollfd){fd, POLLOUT, 0};
	if (poll(&p, 1, ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) || err)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* Blocking TLS I/O on a non-blocking socket, within the request's deadline. */
static int ssl_wait(SSL *ssl, int fd, int r, int ms)
{
	int e = SSL_get_error(ssl, r);
	struct pollfd p = {fd, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, 0};

	if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
		return -1;
	return poll(&p, 1, ms) == 1 ? 0 : -1;
}

/* Ask the CA service to sign csr for pod (ns/name); the answer's body (PEM) in *out. */
static int ca_request(struct certs *cs, const char *pod, const char *csr, char **out, char *why,
		      size_t wlen)
{
	char head[512], peer_id[320] = "", want[320];
	char *ans = malloc(CA_ANSWER_MAX + 1);
	size_t alen = 0, off = 0, hlen;
	SSL *ssl = NULL;
	int fd, r, rc = -1, status = 0;

	*out = NULL;
	if (!ans)
		abort();
	fd = connect_timeout(cs->o.ca_addr, CA_TIMEOUT_MS);
	if (fd < 0) {
		snprintf(why, wlen, "CA service %s unreachable", cs->o.ca_addr);
		goto out;
	}
	ssl = SSL_new(cs->ca_ctx);
	if (!ssl || !SSL_set_fd(ssl, fd))
		goto tlsfail;
	while ((r = SSL_connect(ssl)) != 1)
		if (ssl_wait(ssl, fd, r, CA_TIMEOUT_MS))
			goto tlsfail;
	/* the CA service proves it is the mesh's CA service, not any workload of the mesh */
	snprintf(want, sizeof(want), "spiffe://%s/bpfmesh/ca", cs->o.trust_domain);
	if (ca_spiffe_id(SSL_get0_peer_certificate(ssl), peer_id, sizeof(peer_id)) ||
	    strcmp(peer_id, want)) {
		snprintf(why, wlen, "CA service %s presented %s, want %s", cs->o.ca_addr,
			 peer_id[0] ? peer_id : "no SPIFFE ID", want);
		goto out;
	}
	hlen = snprintf(head, sizeof(head),
			"POST /v1/certificate HTTP/1.1\r\nHost: bpfmesh-ca\r\n"
			"X-Bpfmesh-Pod: %s\r\nX-Bpfmesh-Ttl: %ld\r\n"
			"Content-Type: application/x-pem-file\r\nContent-Length: %zu\r\n"
			"Connection: close\r\n\r\n",
			pod, cs->o.cert_ttl_s, strlen(csr));
	for (int part = 0; part < 2; part++) {
		const char *d = part ? csr : head;
		size_t len = part ? strlen(csr) : hlen;

		for (off = 0; off < len;) {
			r = SSL_write(ssl, d + off, (int)(len - off));
			if (r > 0)
				off += r;
			else if (ssl_wait(ssl, fd, r, CA_TIMEOUT_MS))
				goto tlsfail;
		}
	}
	for (;;) {
		r = SSL_read(ssl, ans + alen, (int)(CA_ANSWER_MAX - alen));
		if (r > 0) {
			alen += r;
			if (alen == CA_ANSWER_MAX)
				break;
			continue;
		}
		if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN ||
		    SSL_get_error(ssl, r) == SSL_ERROR_SYSCALL ||
		    ssl_wait(ssl, fd, r, CA_TIMEOUT_MS))
			break;
	}
	ans[alen] = 0;
	if (sscanf(ans, "HTTP/1.1 %d", &status) != 1) {
		snprintf(why, wlen, "CA service %s: no answer", cs->o.ca_addr);
		goto out;
	}
	{
		char *body = strstr(ans, "\r\n\r\n");

		body = body ? body + 4 : ans + alen;
		if (status != 200) {
			snprintf(why, wlen, "CA service refused: %d %.*s", status,
				 (int)strcspn(body, "\r\n"), body);
			goto out;
		}
		*out = strdup(body);
	}
	rc = 0;
	goto out;
tlsfail : {
	unsigned long e = ERR_get_error();
	char es[256] = "connection closed";

	if (e)
		ERR_error_string_n(e, es, sizeof(es));
	snprintf(why, wlen, "CA service %s: TLS: %s", cs->o.ca_addr, es);
}
out:
	ERR_clear_error();
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	if (fd >= 0)
		close(fd);
	free(ans);
	return rc;
}

/* ---------- issuing ---------- */

/* The published file of an identity no local pod needs any more goes with it. */
static void unpublish(const struct certs *cs, const struct ident *id)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/certs/%s_%s.pem", cs->o.run_dir, id->ns, id->sa);
	unlink(path);
}

/* At start: files an earlier agent published are not what this one holds (a reader, such as
 * `lab up` waiting for every mesh pod's certificate, would take them for it). */
static void unpublish_all(const struct certs *cs)
{
	char path[700];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/certs", cs->o.run_dir);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && strlen(e->d_name) > 4 &&
		    !strcmp(e->d_name + strlen(e->d_name) - 4, ".pem"))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

static void publish(struct certs *cs, const struct ident *id)
{
	char path[700], err[256], serial[80], exp[32];
	struct tm tm;

	snprintf(path, sizeof(path), "%s/certs", cs->o.run_dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/certs/%s_%s.pem", cs->o.run_dir, id->ns, id->sa);
	if (ca_write_cert(path, id->cert, err, sizeof(err)))
		pr_warn("certs: %s", err);
	ca_serial_hex(id->cert, serial, sizeof(serial));
	gmtime_r(&id->not_after, &tm);
	strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	pr_info("certs: %s serial %s valid until %s", id->spiffe, serial, exp);
}

/* Issue (CA service, own CA) or load (bring your own) one identity's certificate. */
static int load(struct certs *cs, struct slot *s, time_t now)
{
	struct ident *id = &s->id;
	char err[512] = "", dir[700];
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *chain = NULL, *bundle = NULL;

	if (cs->o.ca_addr) {
		char *csr = NULL, *pem = NULL;

		if (ca_csr_new(&key, &csr, err, sizeof(err)) ||
		    ca_request(cs, s->pod, csr, &pem, err, sizeof(err)) ||
		    ca_pem_certs(pem, strlen(pem), &chain, err, sizeof(err))) {
			free(csr);
			free(pem);
			EVP_PKEY_free(key);
			goto fail;
		}
		free(csr);
		free(pem);
		cert = sk_X509_shift(chain);
		if (X509_check_private_key(cert, key) != 1 ||
		    ca_spiffe_id(cert, dir, sizeof(dir)) || strcmp(dir, id->spiffe)) {
			snprintf(err, sizeof(err), "the CA service answered a certificate for %s",
				 dir[0] ? dir : "another key");
			ERR_clear_error();
			X509_free(cert);
			sk_X509_pop_free(chain, X509_free);
			EVP_PKEY_free(key);
			goto fail;
		}
		if (sk_X509_num(chain) == 0) {
			sk_X509_free(chain);
			chain = NULL;
		}
	} else if (cs->ca) {
		if (ca_issue(cs->ca, id->spiffe, cs->o.cert_ttl_s, now, &key, &cert, err,
			     sizeof(err)))
			goto fail;
	} else {
		struct stat st;

		snprintf(dir, sizeof(dir), "%s/%s/%s", cs->o.certs_dir, id->ns, id->sa);
		if (ca_load_workload_dir(dir, &key, &chain, &bundle, err, sizeof(err)))
			goto fail;
		cert = sk_X509_shift(chain);
		sk_X509_pop_free(bundle, X509_free);
		id->files_mtime = stat(dir, &st) ? 0 : st.st_mtime;
	}
	ident_clear(id);
	id->key = key;
	id->cert = cert;
	id->chain = chain;
	id->not_before = asn1_time(X509_get0_notBefore(cert));
	id->not_after = asn1_time(X509_get0_notAfter(cert));
	id->gen++;
	cs->issued++;
	s->retry_at = 0;
	publish(cs, id);
	return 0;
fail:
	pr_warn("certs: %s: %s", id->spiffe, err);
	s->retry_at = now + CA_RETRY_SECS;
	return -1;
}

/* Due for a new certificate: none yet, half its life gone, or its files changed. */
static bool due(const struct certs *cs, const struct slot *s, time_t now)
{
	const struct ident *id = &s->id;

	if (s->retry_at && now < s->retry_at)
		return false;
	if (!id->cert)
		return true;
	if (cs->o.certs_dir && !cs->o.ca_addr) {
		char dir[700];
		struct stat st;

		snprintf(dir, sizeof(dir), "%s/%s/%s", cs->o.certs_dir, id->ns, id->sa);
		return !stat(dir, &st) && st.st_mtime != id->files_mtime;
	}
	return now >= id->not_before + (id->not_after - id->not_before) / 2;
}

bool certs_sync(struct certs *cs, const struct certs_want *want, int n, time_t now)
{
	bool changed = false;

	for (int i = 0; i < cs->n; i++)
		cs->v[i].wanted = false;
	for (int i = 0; i < n; i++) {
		struct slot *s = NULL;

		for (int k = 0; k < cs->n && !s; k++)
			if (!strcmp(cs->v[k].id.ns, want[i].ns) &&
			    !strcmp(cs->v[k].id.sa, want[i].sa))
				s = &cs->v[k];
		if (!s) {
			if (cs->n == cs->cap) {
				cs->cap = cs->cap ? 2 * cs->cap : 16;
				cs->v = realloc(cs->v, cs->cap * sizeof(*cs->v));
				if (!cs->v)
					abort();
			}
			s = &cs->v[cs->n++];
			memset(s, 0, sizeof(*s));
			snprintf(s->id.ns, sizeof(s->id.ns), "%s", want[i].ns);
			snprintf(s->id.sa, sizeof(s->id.sa), "%s", want[i].sa);
			snprintf(s->id.spiffe, sizeof(s->id.spiffe), "spiffe://%s/ns/%s/sa/%s",
				 cs->o.trust_domain, want[i].ns, want[i].sa);
			changed = true;
		}
		if (!s->wanted)
			snprintf(s->pod, sizeof(s->pod), "%s", want[i].pod ? want[i].pod : "");
		s->wanted = true;
	}
	for (int i = 0; i < cs->n; i++) {
		if (!cs->v[i].wanted) { /* no local pod needs it any more */
			unpublish(cs, &cs->v[i].id);
			ident_clear(&cs->v[i].id);
			cs->v[i] = cs->v[--cs->n];
			i--;
			changed = true;
			continue;
		}
		if (due(cs, &cs->v[i], now) && load(cs, &cs->v[i], now) == 0)
			changed = true;
	}
	if (changed || !cs->cur) {
		idset_put(cs->cur);
		cs->cur = snapshot(cs);
	}
	return changed;
}

/* ---------- setup ---------- */

static int load_trust(struct certs *cs, char *err, size_t errlen)
{
	char path[600];
	STACK_OF(X509) *b = NULL;

	cs->store = X509_STORE_new();
	if (!cs->store)
		return -1;
	if (cs->ca)
		return X509_STORE_add_cert(cs->store, ca_cert(cs->ca)) == 1 ? 0 : -1;
	if (cs->o.ca_addr)
		snprintf(path, sizeof(path), "%s/ca.crt", cs->o.node_cert_dir);
	else
		snprintf(path, sizeof(path), "%s/ca.crt", cs->o.certs_dir);
	if (!cs->o.ca_addr && access(path, R_OK))
		snprintf(path, sizeof(path), "%s/bundle.pem", cs->o.certs_dir);
	if (ca_load_pem_certs(path, &b, err, errlen))
		return -1;
	for (int i = 0; i < sk_X509_num(b); i++)
		X509_STORE_add_cert(cs->store, sk_X509_value(b, i));
	sk_X509_pop_free(b, X509_free);
	return 0;
}

/* The client context for the CA service: this node's certificate, the mesh's trust. */
static int ca_client(struct certs *cs, char *err, size_t errlen)
{
	char crt[600], key[600], id[320] = "";
	STACK_OF(X509) *chain = NULL;

	if (!cs->o.node_cert_dir) {
		snprintf(err, errlen,
			 "--ca-addr needs --node-cert DIR (node.crt, node.key, ca.crt)");
		return -1;
	}
	snprintf(crt, sizeof(crt), "%s/node.crt", cs->o.node_cert_dir);
	snprintf(key, sizeof(key), "%s/node.key", cs->o.node_cert_dir);
	cs->ca_ctx = SSL_CTX_new(TLS_client_method());
	if (!cs->ca_ctx || ca_load_pem_certs(crt, &chain, err, errlen))
		return -1;
	if (ca_spiffe_id(sk_X509_value(chain, 0), id, sizeof(id)) || !strstr(id, CA_NODE_PATH)) {
		snprintf(err, errlen, "%s: not a node certificate (want a SPIFFE ID .../%s...)",
			 crt, CA_NODE_PATH + 1);
		sk_X509_pop_free(chain, X509_free);
		return -1;
	}
	sk_X509_pop_free(chain, X509_free);
	SSL_CTX_set_min_proto_version(cs->ca_ctx, TLS1_3_VERSION);
	X509_STORE_up_ref(cs->store);
	SSL_CTX_set_cert_store(cs->ca_ctx, cs->store);
	SSL_CTX_set_verify(cs->ca_ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_use_certificate_chain_file(cs->ca_ctx, crt) != 1 ||
	    SSL_CTX_use_PrivateKey_file(cs->ca_ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "%s: node certificate or key unusable", cs->o.node_cert_dir);
		ERR_clear_error();
		return -1;
	}
	pr_info("certs: from the CA service at %s as %s", cs->o.ca_addr, id);
	return 0;
}

struct certs *certs_new(const struct certs_opts *o, char *err, size_t errlen)
{
	struct certs *cs = calloc(1, sizeof(*cs));

	if (!cs) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cs->o = *o;
	if (o->run_dir)
		unpublish_all(cs);
	if (o->ca_dir && !o->ca_addr) {
		cs->ca = ca_load(o->ca_dir, err, errlen);
		if (!cs->ca)
			goto fail;
		pr_warn("certs: signing workload certificates with the CA key in %s: any identity "
			"of the mesh can be minted on this node; for more than one machine run "
			"`bpfmesh ca serve` and give agents --ca-addr",
			o->ca_dir);
	}
	if (load_trust(cs, err, errlen))
		goto fail;
	if (o->ca_addr && ca_client(cs, err, errlen))
		goto fail;
	cs->cur = snapshot(cs);
	return cs;
fail:
	certs_free(cs);
	return NULL;
}

void certs_free(struct certs *cs)
{
	if (!cs)
		return;
	for (int i = 0; i < cs->n; i++)
		ident_clear(&cs->v[i].id);
	free(cs->v);
	idset_put(cs->cur);
	SSL_CTX_free(cs->ca_ctx);
	X509_STORE_free(cs->store);
	ca_free(cs->ca);
	free(cs);
}

X509_STORE *certs_trust(struct certs *cs)
{
	X509_STORE_up_ref(cs->store);
	return cs->store;
}

unsigned long certs_issued(const struct certs *cs)
{
	return cs->issued;
}
