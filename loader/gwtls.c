// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * gwtls.c: see gwtls.h.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "gwtls.h"
#include "resolve.h"

static int client_hello(SSL *ssl, int *alert, void *unused);

static const struct secret_obj *secret(const struct mesh_config *c, const char *ns,
				       const char *name)
{
	for (int i = 0; i < c->nsecrets; i++)
		if (!strcmp(c->secrets[i].ns, ns) && !strcmp(c->secrets[i].name, name))
			return &c->secrets[i];
	return NULL;
}

static const char *data_of(const struct secret_obj *s, const char *a, const char *b)
{
	const char *v = s ? kv_get(&s->data, a) : NULL;

	return v ? v : s ? kv_get(&s->data, b) : NULL;
}

static int version_of(const char *v, int def)
{
	static const struct {
		const char *name;
		int v;
	} t[] = {{"TLSV1_0", TLS1_VERSION},
		 {"TLSV1_1", TLS1_1_VERSION},
		 {"TLSV1_2", TLS1_2_VERSION},
		 {"TLSV1_3", TLS1_3_VERSION}};

	for (size_t i = 0; v && i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(v, t[i].name))
			return t[i].v;
	return def; /* TLS_AUTO or absent */
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char ours[] = "\x02h2\x08http/1.1";

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen, ours, sizeof(ours) - 1, in,
				  inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK; /* no ALPN in common: HTTP/1.1, as Envoy */
	return SSL_TLSEXT_ERR_OK;
}

/* Certificate chain and key from PEM text. */
static int load_pair(SSL_CTX *ctx, const char *crt, const char *key, char *err, size_t len)
{
	BIO *b = BIO_new_mem_buf(crt, -1);
	X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
	EVP_PKEY *k = NULL;
	int rc = -1;

	if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
		snprintf(err, len, "the certificate is not PEM");
		goto out;
	}
	for (X509 *ca; (ca = PEM_read_bio_X509(b, NULL, NULL, NULL));)
		if (SSL_CTX_add0_chain_cert(ctx, ca) != 1)
			X509_free(ca);
	ERR_clear_error(); /* (the end of the PEM) */
	BIO_free(b);
	b = BIO_new_mem_buf(key, -1);
	k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	if (!k || SSL_CTX_use_PrivateKey(ctx, k) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, len, "the private key is not PEM or not the certificate's");
		goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(k);
	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return rc;
}

static int load_ca(SSL_CTX *ctx, const char *pem, char *err, size_t len)
{
	X509_STORE *st = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
	BIO *b = BIO_new_mem_buf(pem, -1);
	int n = 0;

	for (X509 *x; b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)); X509_free(x)) {
		X509_STORE_add_cert(st, x);
		if (names)
			sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(x)));
		n++;
	}
	BIO_free(b);
	ERR_clear_error();
	if (!n) {
		sk_X509_NAME_pop_free(names, X509_NAME_free);
		snprintf(err, len, "the CA certificate is not PEM");
		return -1;
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return 0;
}

void gwtls_init(struct gwtls *t, const struct mesh_config *c, const struct gw_obj *gw,
		const struct gw_server *sv)
{
	const char *name = sv->credential_name,
		   *sns = sv->credential_ns ? sv->credential_ns : GW_NS;
	const struct secret_obj *s = name ? secret(c, sns, name) : NULL, *cas = s;
	const char *crt = data_of(s, "tls.crt", "cert"), *key = data_of(s, "tls.key", "key");
	const char *ca = data_of(s, "ca.crt", "cacert");
	bool mutual = sv->tls_mode && !strcmp(sv->tls_mode, "MUTUAL");
	unsigned char sid[32];
	unsigned int sidlen = sizeof(sid);
	char who[1200];
	SSL_CTX *ctx;

	memset(t, 0, sizeof(*t));
	t->sv = sv;
	t->gw = gw;
	if (!s) {
		snprintf(t->err, sizeof(t->err), "no Secret %s/%s (credentialName)", sns,
			 name ? name : "");
		return;
	}
	if (!crt || !key) {
		snprintf(t->err, sizeof(t->err),
			 "Secret %s/%s has no tls.crt and tls.key (or cert and key)", sns, name);
		return;
	}
	if (mutual && !ca) { /* Istio: the CA may be in <name>-cacert */
		char cn[300];

		snprintf(cn, sizeof(cn), "%s-cacert", name);
		cas = secret(c, sns, cn);
		ca = data_of(cas, "ca.crt", "cacert");
		if (!ca) {
			snprintf(t->err, sizeof(t->err),
				 "MUTUAL: no ca.crt (or cacert) in Secret %s/%s or %s/%s", sns,
				 name, sns, cn);
			return;
		}
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		snprintf(t->err, sizeof(t->err), "out of memory");
		return;
	}
	SSL_CTX_set_min_proto_version(ctx, version_of(sv->min_tls, TLS1_2_VERSION));
	SSL_CTX_set_max_proto_version(ctx, version_of(sv->max_tls, 0));
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	SSL_CTX_set_client_hello_cb(ctx, client_hello, NULL); /* (the first server's is asked) */
	/* a session context of the server's own: a session or ticket of one server (SIMPLE,
	 * say) never resumes on another (MUTUAL, or another CA) of the same port */
	snprintf(who, sizeof(who), "%s/%s|%d|%u|%s|%s|%s|%s", gw->ns, gw->name,
		 (int)(sv - gw->servers), sv->port, sv->name ? sv->name : "",
		 sv->nhosts ? sv->hosts[0] : "", name ? name : "", mutual ? "MUTUAL" : "SIMPLE");
	if (!EVP_Digest(who, strlen(who), sid, &sidlen, EVP_sha256(), NULL) ||
	    SSL_CTX_set_session_id_context(ctx, sid, sidlen) != 1) {
		snprintf(t->err, sizeof(t->err), "cannot set a session context");
		SSL_CTX_free(ctx);
		return;
	}
	/* no renegotiation (the ClientHello callback's view of the servers is the handshake's
	 * only); a client's EOF without close_notify is an end, not an error (a half-close) */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (sv->ncipher_suites) {
		char list[2048] = "";
		size_t o = 0;

		for (int i = 0; i < sv->ncipher_suites && o < sizeof(list); i++)
			o += snprintf(list + o, sizeof(list) - o, "%s%s", i ? ":" : "",
				      sv->cipher_suites[i]);
		if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
			snprintf(t->err, sizeof(t->err), "cipherSuites: none of %s is known", list);
			SSL_CTX_free(ctx);
			ERR_clear_error();
			return;
		}
	}
	if (load_pair(ctx, crt, key, t->err, sizeof(t->err)) ||
	    (mutual && load_ca(ctx, ca, t->err, sizeof(t->err)))) {
		char why[200];

		snprintf(why, sizeof(why), "%s", t->err);
		snprintf(t->err, sizeof(t->err), "Secret %s/%s: %s", sns,
			 mutual && cas != s ? cas->name : name, why);
		SSL_CTX_free(ctx);
		return;
	}
	t->ctx = ctx;
}

void gwtls_free(struct gwtls *t)
{
	SSL_CTX_free(t->ctx);
	t->ctx = NULL;
}

const struct gwtls *gwtls_pick(const struct gwtls *v, int n, const char *sni)
{
	const struct gwtls *best = NULL;
	int best_score = 0;

	for (int i = 0; i < n; i++)
		for (int h = 0; h < v[i].sv->nhosts; h++) {
			const char *host = v[i].sv->hosts[h], *slash = strchr(host, '/');
			int sc;

			host = slash ? slash + 1 : host;
			if (!sni || !*sni) {
				if (!strcmp(host, "*"))
					return &v[i];
				continue;
			}
			sc = rs_domain_score(host, sni);
			if (sc > best_score) { /* (Envoy: the most specific server_names) */
				best_score = sc;
				best = &v[i];
			}
		}
	return best;
}

static int ex_idx = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_init(void)
{
	ex_idx = SSL_get_ex_new_index(0, "bpfmesh gateway", NULL, NULL, NULL);
}

int gwtls_ex(void)
{
	pthread_once(&ex_once, ex_init);
	return ex_idx;
}

/* The SNI of the ClientHello, lower case; "" without one. */
static void hello_sni(SSL *ssl, char *out, size_t len)
{
	const unsigned char *p;
	size_t n, l;

	out[0] = 0;
	/* server_name: list length (2), type (1) host_name, name length (2), name */
	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n) || n < 5 ||
	    p[2] != TLSEXT_NAMETYPE_host_name)
		return;
	l = (size_t)p[3] << 8 | p[4];
	if (l + 5 > n || l >= len)
		return;
	for (size_t i = 0; i < l; i++)
		out[i] = (char)(p[5 + i] >= 'A' && p[5 + i] <= 'Z' ? p[5 + i] + 32 : p[5 + i]);
	out[l] = 0;
}

static int client_hello(SSL *ssl, int *alert, void *unused)
{
	struct gwtls_pick_arg *a = SSL_get_ex_data(ssl, gwtls_ex());
	const struct gwtls *t;

	(void)unused;
	if (!a)
		return SSL_CLIENT_HELLO_ERROR;
	hello_sni(ssl, a->sni, sizeof(a->sni));
	t = gwtls_pick(a->v, a->n, a->sni);
	if (!t || !t->ctx) {
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	a->chosen = t;
	if (SSL_get_SSL_CTX(ssl) != t->ctx)
		SSL_set_SSL_CTX(ssl, t->ctx);
	/* what SSL_set_SSL_CTX does not carry over: versions, ciphers, client verification */
	SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(t->ctx));
	SSL_set_max_proto_version(ssl, SSL_CTX_get_max_proto_version(t->ctx));
	SSL_set_cipher_list(ssl, "DEFAULT");
	if (t->sv->ncipher_suites) {
		STACK_OF(SSL_CIPHER) *cs = SSL_CTX_get_ciphers(t->ctx);
		char list[2048] = "";
		size_t o = 0;

		for (int i = 0; i < sk_SSL_CIPHER_num(cs) && o < sizeof(list); i++)
			o += snprintf(list + o, sizeof(list) - o, "%s%s", i ? ":" : "",
				      SSL_CIPHER_get_name(sk_SSL_CIPHER_value(cs, i)));
		SSL_set_cipher_list(ssl, list);
	}
	SSL_set_verify(ssl, SSL_CTX_get_verify_mode(t->ctx), NULL);
	SSL_set_client_CA_list(ssl, SSL_dup_CA_list(SSL_CTX_get_client_CA_list(t->ctx)));
	return SSL_CLIENT_HELLO_SUCCESS;
}

void gwtls_prepare(SSL *ssl, struct gwtls_pick_arg *arg)
{
	SSL_set_ex_data(ssl, gwtls_ex(), arg);
}
