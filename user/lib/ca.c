// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ca.c: the mesh CA and workload certificates (see ca.h). Called by the agent's tunnel
 * (loader/tunnel.c) and the `bpfmesh ca` CLI (cmd_ca.c).
 *
 * Everything goes through the OpenSSL 3 C API, never the openssl binary. Key files are created
 * 0600 with O_EXCL (directly for ca.key, so an existing CA is never replaced; via a temp file +
 * rename for workload keys, which rotate), so a private key is never readable by others, not
 * even between open() and chmod(). Extensions are built from values, not from config strings,
 * so a SPIFFE ID can never be parsed as more than one SAN.
 */
#include "ca.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define CA_ROOT_DAYS	(10 * 365 + 2) /* ten years, leap days included */
#define CA_SERIAL_BYTES 16	       /* 128 bits, as CA/B and SPIFFE recommend (>= 64) */
#define CA_SPIFFE_MAX	2048	       /* SPIFFE's limit on a SPIFFE ID */
#define CA_TD_MAX	255	       /* a DNS name */
/* The root's notBefore is this far in the past: a node whose clock is behind the one that ran
 * `ca init` must still accept it. Workload certs start exactly at the `now` the issuer passes. */
#define CA_ROOT_BACKDATE 3600

struct ca {
	X509 *cert;
	EVP_PKEY *key;
};

/* ---------------- errors ---------------- */

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Like errf, with OpenSSL's most recent reason appended; empties OpenSSL's error queue so a
 * later failure doesn't report this one. */
static void sslerrf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sslerrf(char *err, size_t errlen, const char *fmt, ...)
{
	unsigned long e = ERR_peek_last_error();
	char why[256] = "";
	va_list ap;
	size_t n;

	if (e) {
		why[0] = ':';
		why[1] = ' ';
		ERR_error_string_n(e, why + 2, sizeof(why) - 2);
	}
	ERR_clear_error();
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	n = strlen(err);
	snprintf(err + n, errlen - n, "%s", why);
}

static int path_join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---------------- SPIFFE IDs ---------------- */

static bool td_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool path_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

static bool td_valid(const char *td, size_t len)
{
	if (!len || len > CA_TD_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!td_char(td[i]))
			return false;
	return true;
}

bool ca_spiffe_valid(const char *id)
{
	const char *td, *p, *seg;
	size_t len;

	if (!id || strncmp(id, "spiffe://", 9) != 0)
		return false;
	len = strlen(id);
	if (len > CA_SPIFFE_MAX)
		return false;
	td = id + 9;
	p = strchr(td, '/');
	if (!p || !td_valid(td, (size_t)(p - td)))
		return false;
	/* path: one or more "/segment", no empty, "." or ".." segment, no trailing slash */
	while (*p == '/') {
		seg = ++p;
		while (*p && *p != '/') {
			if (!path_char(*p))
				return false;
			p++;
		}
		if (p == seg || (p - seg == 1 && seg[0] == '.') ||
		    (p - seg == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
	}
	return *p == 0;
}

static int copy_part(char *dst, size_t dstlen, const char *src, size_t n)
{
	if (!dst)
		return 0;
	if (n >= dstlen)
		return -ENOSPC;
	memcpy(dst, src, n);
	dst[n] = 0;
	return 0;
}

int ca_spiffe_parse(const char *id, char *td, size_t tdlen, char *ns, size_t nslen, char *sa,
		    size_t salen)
{
	const char *seg[5], *t;
	size_t seglen[5];
	int n = 0, rc;

	if (!ca_spiffe_valid(id))
		return -EINVAL;
	t = id + 9;
	/* trust domain, then exactly "ns", NS, "sa", SA */
	while (t && n < 5) {
		const char *e = strchr(t, '/');

		seg[n] = t;
		seglen[n] = e ? (size_t)(e - t) : strlen(t);
		n++;
		t = e ? e + 1 : NULL;
	}
	if (n != 5 || t || seglen[1] != 2 || strncmp(seg[1], "ns", 2) != 0 || seglen[3] != 2 ||
	    strncmp(seg[3], "sa", 2) != 0)
		return -EINVAL;
	if ((rc = copy_part(td, tdlen, seg[0], seglen[0])) ||
	    (rc = copy_part(ns, nslen, seg[2], seglen[2])) ||
	    (rc = copy_part(sa, salen, seg[4], seglen[4])))
		return rc;
	return 0;
}

int ca_spiffe_id(X509 *cert, char *buf, size_t len)
{
	GENERAL_NAMES *gens;
	const ASN1_IA5STRING *uri = NULL;
	int crit = -1, nuri = 0, rc;
	char id[CA_SPIFFE_MAX + 1];

	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (!gens) {
		ERR_clear_error();
		/* crit -2: more than one SAN extension, which X.509 forbids */
		return crit == -2 ? -EINVAL : -ENOENT;
	}
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_URI) {
			uri = g->d.uniformResourceIdentifier;
			nuri++;
		}
	}
	if (nuri == 0) {
		rc = -ENOENT;
	} else if (nuri > 1 || uri->length <= 0 || uri->length > CA_SPIFFE_MAX ||
		   memchr(uri->data, 0, (size_t)uri->length)) {
		rc = -EINVAL;
	} else {
		memcpy(id, uri->data, (size_t)uri->length);
		id[uri->length] = 0;
		if (!ca_spiffe_valid(id))
			rc = -EINVAL;
		else if ((size_t)uri->length >= len)
			rc = -ENOSPC;
		else
			rc = 0, memcpy(buf, id, (size_t)uri->length + 1);
	}
	GENERAL_NAMES_free(gens);
	return rc;
}

void ca_serial_hex(X509 *cert, char *buf, size_t len)
{
	const ASN1_INTEGER *s = X509_get0_serialNumber(cert);
	const unsigned char *d = ASN1_STRING_get0_data(s);
	int n = ASN1_STRING_length(s);
	size_t o = 0;

	if (!len)
		return;
	buf[0] = 0;
	/* i2a_ASN1_INTEGER, as `openssl x509 -serial` uses: "-" if negative, two digits a byte,
	 * "00" for zero */
	if (ASN1_STRING_type(s) == V_ASN1_NEG_INTEGER && o + 1 < len)
		buf[o++] = '-', buf[o] = 0;
	if (n == 0 && len > 2)
		snprintf(buf + o, len - o, "00");
	for (int i = 0; i < n && o + 2 < len; i++, o += 2)
		snprintf(buf + o, len - o, "%02X", d[i]);
}

/* ---------------- building certificates ---------------- */

static EVP_PKEY *new_key(void)
{
	return EVP_EC_gen("P-256");
}

/* A random positive serial of exactly CA_SERIAL_BYTES: top bit clear (positive), next bit set
 * (no leading zero byte, so every serial prints as 32 hex digits). */
static bool set_serial(X509 *x)
{
	unsigned char b[CA_SERIAL_BYTES];
	BIGNUM *bn;
	bool ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return false;
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	return ok;
}

static bool add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	bool ok = ext && X509_add_ext(x, ext, -1);

	X509_EXTENSION_free(ext);
	return ok;
}

static bool add_uri_san(X509 *x, const char *uri)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	bool ok = false;

	if (!gens || !g || !s || !ASN1_STRING_set(s, uri, (int)strlen(uri)))
		goto out;
	GENERAL_NAME_set0_value(g, GEN_URI, s);
	s = NULL;
	if (!sk_GENERAL_NAME_push(gens, g))
		goto out;
	g = NULL;
	/* not critical: the subject (O=bpfmesh) is not empty */
	ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
out:
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(g);
	GENERAL_NAMES_free(gens);
	return ok;
}

/* Version, serial, validity, subject and public key: what every certificate here shares. */
static bool cert_base(X509 *x, EVP_PKEY *key, time_t not_before, long days, long secs,
		      const char *cn)
{
	X509_NAME *name = X509_get_subject_name(x);

	return X509_set_version(x, X509_VERSION_3) && set_serial(x) &&
	       ASN1_TIME_set(X509_getm_notBefore(x), not_before) &&
	       ASN1_TIME_adj(X509_getm_notAfter(x), not_before, (int)days, secs) &&
	       X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"bpfmesh",
					  -1, -1, 0) &&
	       (!cn || X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
						  (const unsigned char *)cn, -1, -1, 0)) &&
	       X509_set_pubkey(x, key);
}

/* ---------------- files ---------------- */

/* Write with a BIO over an fd we opened (and will close). */
static int write_fd_pem(int fd, X509 *cert, EVP_PKEY *key)
{
	BIO *b = BIO_new_fd(fd, BIO_NOCLOSE);
	int ok;

	if (!b)
		return -ENOMEM;
	ok = cert ? PEM_write_bio_X509(b, cert)
		  : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	ok = ok && BIO_flush(b) == 1;
	BIO_free(b);
	return ok ? 0 : -EIO;
}

/* Temp file in path's directory (mkstemp: O_EXCL, 0600), chmod to mode, write, fsync,
 * rename over path. */
static int write_atomic(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key, char *err,
			size_t errlen)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
		errf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		errf(err, errlen, "%s: cannot create temporary file: %s", path, strerror(errno));
		return rc;
	}
	if (fchmod(fd, mode) < 0) {
		rc = -errno;
		errf(err, errlen, "%s: chmod: %s", tmp, strerror(errno));
		goto fail;
	}
	if ((rc = write_fd_pem(fd, cert, key))) {
		sslerrf(err, errlen, "%s: cannot write PEM", path);
		goto fail;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		rc = -errno;
		errf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		errf(err, errlen, "%s: rename: %s", path, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int ca_write_cert(const char *path, X509 *cert, char *err, size_t errlen)
{
	return write_atomic(path, 0644, cert, NULL, err, errlen);
}

int ca_write_key(const char *path, EVP_PKEY *key, char *err, size_t errlen)
{
	return write_atomic(path, 0600, NULL, key, err, errlen);
}

/* Open a file for reading as a BIO, with an errno-style message naming it. */
static BIO *open_read(const char *path, struct stat *st, int *rc, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	BIO *b;

	if (fd < 0) {
		*rc = -errno;
		errf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (st && fstat(fd, st) < 0) {
		*rc = -errno;
		errf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	b = BIO_new_fd(fd, BIO_CLOSE);
	if (!b) {
		*rc = -ENOMEM;
		errf(err, errlen, "%s: out of memory", path);
		close(fd);
	}
	return b;
}

int ca_load_pem_certs(const char *path, STACK_OF(X509) * *out, char *err, size_t errlen)
{
	STACK_OF(X509) * sk;
	X509 *x;
	BIO *b;
	unsigned long e;
	int rc = 0;

	*out = NULL;
	ERR_clear_error();
	if (!(b = open_read(path, NULL, &rc, err, errlen)))
		return rc;
	sk = sk_X509_new_null();
	while (sk && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			break;
		}
	BIO_free(b);
	/* the loop ends at EOF with "no start line"; anything else is a broken certificate */
	e = ERR_peek_last_error();
	if (!sk ||
	    (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))) {
		sslerrf(err, errlen, "%s: bad PEM certificate", path);
		rc = -EINVAL;
	} else if (sk_X509_num(sk) == 0) {
		errf(err, errlen, "%s: no PEM certificate in file", path);
		rc = -EINVAL;
	}
	ERR_clear_error();
	if (rc) {
		sk_X509_pop_free(sk, X509_free);
		return rc;
	}
	*out = sk;
	return 0;
}

/* Load a PEM private key; when private_only, refuse a file group/other can read. */
static EVP_PKEY *load_key(const char *path, bool private_only, int *rc, char *err, size_t errlen)
{
	struct stat st;
	EVP_PKEY *key;
	BIO *b;

	if (!(b = open_read(path, &st, rc, err, errlen)))
		return NULL;
	if (private_only && (st.st_mode & 077)) {
		errf(err, errlen,
		     "%s: private key is readable by group/others (mode %04o); refusing to use it "
		     "(chmod 600 %s)",
		     path, (unsigned)(st.st_mode & 07777), path);
		BIO_free(b);
		*rc = -EPERM;
		return NULL;
	}
	key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!key) {
		sslerrf(err, errlen, "%s: bad PEM private key", path);
		*rc = -EINVAL;
	}
	return key;
}

/* ---------------- the CA ---------------- */

/* `mkdir -p` of everything above dir (mode 0755 less umask, as mkdir -p); dir itself is made
 * 0700 by the caller. */
static int mkdir_parents(const char *dir)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return 0;
}

int ca_init(const char *dir, const char *trust_domain, char *err, size_t errlen)
{
	char crt_path[PATH_MAX], key_path[PATH_MAX], td_path[PATH_MAX], cn[300];
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509V3_CTX ctx;
	struct stat st;
	int fd = -1, rc;
	FILE *f;

	if (!trust_domain || !td_valid(trust_domain, strlen(trust_domain))) {
		errf(err, errlen,
		     "invalid trust domain \"%s\": use lowercase letters, digits, '.', '-', '_'",
		     trust_domain ? trust_domain : "");
		return -EINVAL;
	}
	if (path_join(crt_path, sizeof(crt_path), dir, "ca.crt") ||
	    path_join(key_path, sizeof(key_path), dir, "ca.key") ||
	    path_join(td_path, sizeof(td_path), dir, "trust-domain")) {
		errf(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	if (mkdir_parents(dir) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
		rc = -errno;
		errf(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
		return rc;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		errf(err, errlen, "%s: not a directory", dir);
		return -ENOTDIR;
	}
	/* fail before generating anything when a CA is already there */
	if (access(key_path, F_OK) == 0) {
		errf(err, errlen, "%s: already exists; refusing to overwrite a CA key", key_path);
		return -EEXIST;
	}

	snprintf(cn, sizeof(cn), "bpfmesh root CA %s", trust_domain);
	rc = -EIO;
	if (!(key = new_key()) || !(x = X509_new()) ||
	    !cert_base(x, key, time(NULL) - CA_ROOT_BACKDATE, CA_ROOT_DAYS, 0, cn) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(x))) {
		sslerrf(err, errlen, "%s: cannot build the CA certificate", crt_path);
		goto out;
	}
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") ||
	    !add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    !X509_sign(x, key, EVP_sha256())) {
		sslerrf(err, errlen, "%s: cannot sign the CA certificate", crt_path);
		goto out;
	}

	/* O_EXCL on the final name: exactly one `ca init` can win, and the key is 0600 from the
	 * first byte (umask can only narrow it) */
	fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		if (errno == EEXIST)
			errf(err, errlen, "%s: already exists; refusing to overwrite a CA key",
			     key_path);
		else
			errf(err, errlen, "%s: %s", key_path, strerror(errno));
		goto out;
	}
	if (write_fd_pem(fd, NULL, key) || fsync(fd) < 0) {
		sslerrf(err, errlen, "%s: cannot write the CA key", key_path);
		rc = -EIO;
		goto out_unlink;
	}
	close(fd);
	fd = -1;
	if ((rc = ca_write_cert(crt_path, x, err, errlen)))
		goto out_unlink;
	f = fopen(td_path, "we");
	if (!f || fprintf(f, "%s\n", trust_domain) < 0 || fclose(f) != 0) {
		rc = -EIO;
		errf(err, errlen, "%s: cannot write: %s", td_path, strerror(errno));
		goto out_unlink;
	}
	rc = 0;
	goto out;
out_unlink:
	/* a half-made CA would block the next `ca init`: remove only what we created */
	unlink(key_path);
out:
	if (fd >= 0)
		close(fd);
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

struct ca *ca_load(const char *dir, char *err, size_t errlen)
{
	char crt_path[PATH_MAX], key_path[PATH_MAX];
	STACK_OF(X509) *certs = NULL;
	struct ca *ca;
	int rc = 0;

	if (path_join(crt_path, sizeof(crt_path), dir, "ca.crt") ||
	    path_join(key_path, sizeof(key_path), dir, "ca.key")) {
		errf(err, errlen, "%s: path too long", dir);
		return NULL;
	}
	ca = calloc(1, sizeof(*ca));
	if (!ca) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	if (ca_load_pem_certs(crt_path, &certs, err, errlen))
		goto fail;
	ca->cert = sk_X509_shift(certs);
	sk_X509_pop_free(certs, X509_free);
	if (X509_check_ca(ca->cert) != 1) {
		errf(err, errlen, "%s: not a CA certificate (basicConstraints CA:TRUE missing)",
		     crt_path);
		goto fail;
	}
	if (!(ca->key = load_key(key_path, true, &rc, err, errlen)))
		goto fail;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		errf(err, errlen, "%s: key does not match %s", key_path, crt_path);
		goto fail;
	}
	return ca;
fail:
	ca_free(ca);
	return NULL;
}

void ca_free(struct ca *ca)
{
	if (!ca)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca);
}

X509 *ca_cert(const struct ca *ca)
{
	return ca->cert;
}

int ca_sign(const struct ca *ca, EVP_PKEY *pub, const char *spiffe_id, long ttl_secs, time_t now,
	    X509 **cert, char *err, size_t errlen)
{
	X509 *x = NULL;
	X509V3_CTX ctx;

	*cert = NULL;
	if (!ca_spiffe_valid(spiffe_id)) {
		errf(err, errlen, "invalid SPIFFE ID \"%s\": want spiffe://TRUST-DOMAIN/PATH",
		     spiffe_id ? spiffe_id : "");
		return -EINVAL;
	}
	if (ttl_secs <= 0) {
		errf(err, errlen, "invalid certificate lifetime %ld s: must be positive", ttl_secs);
		return -EINVAL;
	}
	if (!(x = X509_new()) ||
	    !cert_base(x, pub, now, ttl_secs / 86400, ttl_secs % 86400, NULL) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca->cert)))
		goto fail;
	X509V3_set_ctx(&ctx, ca->cert, x, NULL, NULL, 0);
	if (!add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
	    !add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    !add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") ||
	    !add_uri_san(x, spiffe_id) || !X509_sign(x, ca->key, EVP_sha256()))
		goto fail;
	*cert = x;
	return 0;
fail:
	sslerrf(err, errlen, "cannot issue a certificate for %s", spiffe_id);
	X509_free(x);
	return -EIO;
}

int ca_issue(const struct ca *ca, const char *spiffe_id, long ttl_secs, time_t now, EVP_PKEY **key,
	     X509 **cert, char *err, size_t errlen)
{
	EVP_PKEY *k = new_key();
	int rc;

	*key = NULL;
	*cert = NULL;
	if (!k) {
		sslerrf(err, errlen, "cannot make a key for %s", spiffe_id ? spiffe_id : "");
		return -EIO;
	}
	rc = ca_sign(ca, k, spiffe_id, ttl_secs, now, cert, err, errlen);
	if (rc) {
		EVP_PKEY_free(k);
		return rc;
	}
	*key = k;
	return 0;
}

int ca_csr_new(EVP_PKEY **key, char **pem, char *err, size_t errlen)
{
	X509_REQ *req = X509_REQ_new();
	EVP_PKEY *k = new_key();
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int rc = -EIO;

	*key = NULL;
	*pem = NULL;
	if (!req || !k || !b || !X509_REQ_set_version(req, 0) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "O", MBSTRING_ASC,
					(const unsigned char *)"bpfmesh", -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, k) || !X509_REQ_sign(req, k, EVP_sha256()) ||
	    !PEM_write_bio_X509_REQ(b, req) || (n = BIO_get_mem_data(b, &data)) <= 0 ||
	    !(*pem = strndup(data, n))) {
		sslerrf(err, errlen, "cannot make a certificate request");
		EVP_PKEY_free(k);
		goto out;
	}
	*key = k;
	rc = 0;
out:
	BIO_free(b);
	X509_REQ_free(req);
	return rc;
}

EVP_PKEY *ca_csr_pubkey(const char *pem, size_t len, char *err, size_t errlen)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	EVP_PKEY *k = req ? X509_REQ_get_pubkey(req) : NULL;

	if (!k || X509_REQ_verify(req, k) != 1) {
		sslerrf(err, errlen, "not a certificate request signed by its own key");
		EVP_PKEY_free(k);
		k = NULL;
	}
	X509_REQ_free(req);
	BIO_free(b);
	return k;
}

int ca_pem_certs(const char *pem, size_t len, STACK_OF(X509) * *out, char *err, size_t errlen)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x;

	*out = sk_X509_new_null();
	if (!b || !*out) {
		BIO_free(b);
		sk_X509_free(*out);
		*out = NULL;
		errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		sk_X509_push(*out, x);
	ERR_clear_error();
	BIO_free(b);
	if (sk_X509_num(*out) == 0) {
		sk_X509_free(*out);
		*out = NULL;
		errf(err, errlen, "no PEM certificate in the answer");
		return -EINVAL;
	}
	return 0;
}

EVP_PKEY *ca_key(const struct ca *ca)
{
	return ca->key;
}

/* ---------------- bring your own CA ---------------- */

int ca_load_workload_dir(const char *dir, EVP_PKEY **key, STACK_OF(X509) * *chain,
			 STACK_OF(X509) * *bundle, char *err, size_t errlen)
{
	/* cert-manager csi-driver, then SPIRE spiffe-helper */
	static const char *const layouts[2][3] = {{"tls.crt", "tls.key", "ca.crt"},
						  {"svid.pem", "svid_key.pem", "svid_bundle.pem"}};
	char crt_path[PATH_MAX], key_path[PATH_MAX], bundle_path[PATH_MAX];
	const char *const *l = layouts[0];
	int rc = 0;

	*key = NULL;
	*chain = NULL;
	*bundle = NULL;
	if (access(dir, F_OK) < 0) {
		rc = -errno;
		errf(err, errlen, "%s: %s", dir, strerror(errno));
		return rc;
	}
	for (int i = 0; i < 2; i++) {
		if (path_join(crt_path, sizeof(crt_path), dir, layouts[i][0]) ||
		    path_join(key_path, sizeof(key_path), dir, layouts[i][1])) {
			errf(err, errlen, "%s: path too long", dir);
			return -ENAMETOOLONG;
		}
		if (access(crt_path, F_OK) == 0 || access(key_path, F_OK) == 0) {
			l = layouts[i];
			break;
		}
		if (i == 1) {
			errf(err, errlen,
			     "%s: no workload certificate: expected tls.crt, tls.key, ca.crt "
			     "(cert-manager csi-driver) or svid.pem, svid_key.pem, svid_bundle.pem "
			     "(spiffe-helper)",
			     dir);
			return -ENOENT;
		}
	}
	if (path_join(crt_path, sizeof(crt_path), dir, l[0]) ||
	    path_join(key_path, sizeof(key_path), dir, l[1]) ||
	    path_join(bundle_path, sizeof(bundle_path), dir, l[2])) {
		errf(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	if ((rc = ca_load_pem_certs(crt_path, chain, err, errlen)))
		goto fail;
	/* the key is written by another agent with its own idea of modes: don't insist on 0600 */
	if (!(*key = load_key(key_path, false, &rc, err, errlen)))
		goto fail;
	if (X509_check_private_key(sk_X509_value(*chain, 0), *key) != 1) {
		ERR_clear_error();
		errf(err, errlen, "%s: key does not match the first certificate of %s", key_path,
		     crt_path);
		rc = -EINVAL;
		goto fail;
	}
	if ((rc = ca_load_pem_certs(bundle_path, bundle, err, errlen)))
		goto fail;
	return 0;
fail:
	EVP_PKEY_free(*key);
	sk_X509_pop_free(*chain, X509_free);
	sk_X509_pop_free(*bundle, X509_free);
	*key = NULL;
	*chain = NULL;
	*bundle = NULL;
	return rc;
}
