/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ca.h: the mesh CA and workload certificates (SPIFFE X.509-SVIDs), on the OpenSSL 3 C API.
 *
 * Callers: the agent's mTLS tunnel (loader/tunnel.c) loads the CA and issues a short-lived
 * certificate per workload identity, or loads certificates another CA already wrote (cert-manager
 * csi-driver, SPIRE spiffe-helper: "bring your own CA"), and reads the peer's SPIFFE ID; the
 * `bpfmesh ca` CLI (cmd_ca.c) creates the CA and issues/inspects certificates by hand.
 *
 * Every function that can fail returns 0 or a negative errno and, when it takes `err`, writes a
 * one-line message naming the file or the input at fault. Nothing here keeps global state;
 * issuance takes the clock as an argument so tests can mint certificates at any time.
 */
#ifndef BM_CA_H
#define BM_CA_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct ca; /* a loaded signing CA: cert + private key */

/* Create DIR (0700 if missing) with ca.crt (self-signed root, ECDSA P-256, CA:TRUE critical,
 * keyCertSign|cRLSign, subject O=bpfmesh,CN=bpfmesh root CA <trust domain>, 10 years, random
 * 128-bit positive serial, SKI), ca.key (PEM PKCS#8, mode 0600, created with O_EXCL so it is
 * never readable by others, even briefly) and trust-domain (the trust domain, one line, for the
 * agent). Refuses to overwrite an existing ca.key (-EEXIST); -EINVAL for a trust domain SPIFFE
 * does not allow. err gets a one-line message naming the file on failure. */
int ca_init(const char *dir, const char *trust_domain, char *err, size_t errlen);

/* Load DIR/ca.crt + DIR/ca.key; refuses a key that doesn't match the certificate, a certificate
 * that is not a CA, and a key file group or others can read. NULL + err on failure. */
struct ca *ca_load(const char *dir, char *err, size_t errlen);
void ca_free(struct ca *ca);
X509 *ca_cert(const struct ca *ca); /* borrowed */

/* Issue a workload certificate: fresh P-256 key; subject O=bpfmesh; exactly one URI SAN =
 * spiffe_id (must be spiffe://TD/PATH, -EINVAL otherwise); basicConstraints CA:FALSE critical;
 * keyUsage digitalSignature, keyEncipherment critical; extendedKeyUsage serverAuth+clientAuth;
 * AKI/SKI; random 128-bit positive serial; notBefore = now, notAfter = now + ttl_secs (ttl_secs
 * > 0). `now` is the caller's clock: pass time(NULL), or an offset one to backdate. Caller owns
 * *key and *cert (EVP_PKEY_free / X509_free). */
int ca_issue(const struct ca *ca, const char *spiffe_id, long ttl_secs, time_t now, EVP_PKEY **key,
	     X509 **cert, char *err, size_t errlen);

/* The same certificate for a key someone else holds (the CA service signs a CSR's key). */
int ca_sign(const struct ca *ca, EVP_PKEY *pub, const char *spiffe_id, long ttl_secs, time_t now,
	    X509 **cert, char *err, size_t errlen);

/* A fresh P-256 key and a PEM certificate request for it (subject O=bpfmesh, no names: the CA
 * decides the identity). Caller frees *key and *pem. */
int ca_csr_new(EVP_PKEY **key, char **pem, char *err, size_t errlen);
/* The public key of a PEM certificate request, verified against the request's own signature;
 * NULL + err when it is not one. */
EVP_PKEY *ca_csr_pubkey(const char *pem, size_t len, char *err, size_t errlen);
/* Every certificate of a PEM buffer; -EINVAL when it holds none. */
int ca_pem_certs(const char *pem, size_t len, STACK_OF(X509) * *out, char *err, size_t errlen);
EVP_PKEY *ca_key(const struct ca *ca); /* borrowed */

/* SPIFFE ID of a node of the mesh (its agent asks the CA service for its pods' certificates
 * with it): spiffe://TD/bpfmesh/node/NAME, NAME as the pods' spec.nodeName says. */
#define CA_NODE_PATH "/bpfmesh/node/"

/* The certificate's SPIFFE ID: its single URI SAN, which must be spiffe://TD/PATH. -ENOENT when
 * the certificate has no URI SAN, -EINVAL when it has more than one or the one doesn't parse as
 * spiffe://TD/PATH (including any other URI scheme), -ENOSPC when buf is too small. */
int ca_spiffe_id(X509 *cert, char *buf, size_t len);
/* Split "spiffe://td/ns/NS/sa/SA" into parts (each buffer may be NULL). -EINVAL if not that
 * shape, -ENOSPC if a part doesn't fit its buffer. */
int ca_spiffe_parse(const char *id, char *td, size_t tdlen, char *ns, size_t nslen, char *sa,
		    size_t salen);
/* Is id a well-formed SPIFFE ID, spiffe://TD/PATH (lowercase trust domain, non-empty path of
 * non-empty segments other than "." and "..", SPIFFE's character set)? */
bool ca_spiffe_valid(const char *id);
/* Serial as uppercase hex without separators (what `openssl x509 -serial` prints after
 * "serial="), for logs and tests. */
void ca_serial_hex(X509 *cert, char *buf, size_t len);

/* Bring your own CA: load a workload identity from files in the layout cert-manager's csi
 * driver (DIR/tls.crt, DIR/tls.key, DIR/ca.crt) or SPIRE's spiffe-helper (DIR/svid.pem,
 * DIR/svid_key.pem, DIR/svid_bundle.pem) writes; the first layout wins when tls.crt or tls.key
 * exists. *chain = leaf first then intermediates found in the cert file; *bundle = the trust
 * anchors (all certs in ca.crt / svid_bundle.pem). The key must match the leaf. err names the
 * missing/bad file. Caller frees with sk_X509_pop_free(x, X509_free). */
int ca_load_workload_dir(const char *dir, EVP_PKEY **key, STACK_OF(X509) * *chain,
			 STACK_OF(X509) * *bundle, char *err, size_t errlen);
/* Load every certificate of a PEM file (trust bundle); -EINVAL when it holds none. */
int ca_load_pem_certs(const char *path, STACK_OF(X509) * *out, char *err, size_t errlen);

/* Write a certificate (mode 0644) / key (PEM PKCS#8, mode 0600) via an O_EXCL temp file in the
 * same directory + rename, so readers never see a partial file and the key is never readable by
 * others. Replaces an existing file: this is how the agent rotates. */
int ca_write_cert(const char *path, X509 *cert, char *err, size_t errlen);
int ca_write_key(const char *path, EVP_PKEY *key, char *err, size_t errlen);

#endif /* BM_CA_H */
