// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_ca.c: unit tests of the mesh CA (user/lib/ca.c): CA creation and loading, workload
 * certificates verified against the root with OpenSSL's own chain verification (including
 * expiry and a foreign CA), SPIFFE ID extraction and parsing, serials as `openssl x509` prints
 * them, and the bring-your-own-CA layouts of cert-manager's csi-driver and spiffe-helper. Run by
 * `make test` under ASan+UBSan; every test works in a private mkdtemp directory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "check.h"
#include "cli.h"

/* the injected clock: a day from now, so inside the root's validity but not the real time */
static time_t T0;
#define WEB "spiffe://cluster.local/ns/default/sa/web"

static char tmpdir[64];
static char err[512];

static const char *path(const char *name)
{
	static char paths[8][256];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, 256, "%s/%s", tmpdir, name);
	return p;
}

/* Verify leaf against root at time t; returns the X509_V_ERR code (X509_V_OK on success). */
static int verify_at(X509 *root, X509 *leaf, time_t t)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc = -1;

	if (store && ctx && X509_STORE_add_cert(store, root) &&
	    X509_STORE_CTX_init(ctx, store, leaf, NULL)) {
		X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), t);
		rc = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

/* A self-signed certificate with the given subjectAltName (OpenSSL config syntax), or none. */
static X509 *cert_with_san(const char *san)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX ctx;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "O", MBSTRING_ASC,
				   (const unsigned char *)"test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	if (san) {
		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);

		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	X509_sign(x, k, EVP_sha256());
	EVP_PKEY_free(k);
	return x;
}

static void test_init(void)
{
	struct stat st;
	char buf[64] = "";
	FILE *f;

	if (!CHECK_OK(ca_init(path("ca"), "cluster.local", err, sizeof(err)), err))
		return;
	CHECK_OK(stat(path("ca"), &st), "dir exists");
	CHECK_EQ(st.st_mode & 0777, 0700, "dir mode 0700");
	CHECK_OK(stat(path("ca/ca.crt"), &st), "ca.crt exists");
	if (CHECK_OK(stat(path("ca/ca.key"), &st), "ca.key exists"))
		CHECK_EQ(st.st_mode & 0777, 0600, "ca.key mode 0600");
	f = fopen(path("ca/trust-domain"), "r");
	if (CHECK(f, "trust-domain file")) {
		CHECK(fgets(buf, sizeof(buf), f), "trust-domain read");
		fclose(f);
	}
	CHECK_STR(buf, "cluster.local\n", "trust-domain content");
	f = fopen(path("ca/ca.key"), "r");
	if (CHECK(f, "ca.key readable")) {
		CHECK(fgets(buf, sizeof(buf), f), "ca.key read");
		fclose(f);
	}
	CHECK_STR(buf, "-----BEGIN PRIVATE KEY-----\n", "ca.key is PKCS#8 PEM");

	err[0] = 0;
	CHECK_EQ(ca_init(path("ca"), "cluster.local", err, sizeof(err)), -EEXIST,
		 "refuses to overwrite");
	CHECK_CONTAINS(err, "ca/ca.key", "error names the key");
	CHECK_EQ(ca_init(path("bad"), "Bad Domain", err, sizeof(err)), -EINVAL, "bad trust domain");
}

static void test_root(void)
{
	struct ca *ca = ca_load(path("ca"), err, sizeof(err));
	X509 *root;
	char buf[256];
	int crit;

	if (!CHECK(ca, err))
		return;
	root = ca_cert(ca);
	CHECK_EQ(X509_check_ca(root), 1, "root is a CA");
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(root, NID_basic_constraints, &crit, NULL);
	CHECK(bc && bc->ca && crit == 1, "CA:TRUE critical");
	BASIC_CONSTRAINTS_free(bc);
	CHECK_EQ(X509_get_key_usage(root), KU_KEY_CERT_SIGN | KU_CRL_SIGN, "root key usage");
	CHECK(X509_get0_subject_key_id(root), "root SKI");
	X509_NAME_oneline(X509_get_subject_name(root), buf, sizeof(buf));
	CHECK_STR(buf, "/O=bpfmesh/CN=bpfmesh root CA cluster.local", "root subject");
	ca_serial_hex(root, buf, sizeof(buf));
	CHECK_EQ(strlen(buf), 32, "128-bit serial");
	CHECK(buf[0] >= '4' && buf[0] <= '7', "serial positive, no leading zero byte");
	CHECK(ASN1_TIME_cmp_time_t(X509_get0_notAfter(root), time(NULL) + 3650L * 86400) >= 0,
	      "root valid 10 years");
	CHECK(ASN1_TIME_cmp_time_t(X509_get0_notBefore(root), time(NULL) - 1800) < 0,
	      "root backdated for clock skew");
	ca_free(ca);
}

static void test_load_errors(void)
{
	struct ca *ca;

	CHECK(!ca_load(path("nope"), err, sizeof(err)), "missing dir");
	CHECK_CONTAINS(err, "nope/ca.crt", "error names ca.crt");

	chmod(path("ca/ca.key"), 0640);
	ca = ca_load(path("ca"), err, sizeof(err));
	CHECK(!ca, "group-readable key refused");
	CHECK_CONTAINS(err, "readable by group/others", "says why");
	ca_free(ca);
	chmod(path("ca/ca.key"), 0600);

	/* a second CA's key next to the first CA's cert */
	if (!CHECK_OK(ca_init(path("other"), "other.org", err, sizeof(err)), err))
		return;
	CHECK_OK(mkdir(path("mixed"), 0700), "mkdir");
	CHECK_OK(link(path("ca/ca.crt"), path("mixed/ca.crt")), "link crt");
	CHECK_OK(link(path("other/ca.key"), path("mixed/ca.key")), "link key");
	ca = ca_load(path("mixed"), err, sizeof(err));
	CHECK(!ca, "mismatched key refused");
	CHECK_CONTAINS(err, "does not match", "says mismatch");
	ca_free(ca);
}

/* The CA and one workload certificate, issued at T0 for 24h, shared by the tests below. */
static struct ca *ca;
static EVP_PKEY *leaf_key;
static X509 *leaf;

static void test_issue(void)
{
	ca = ca_load(path("ca"), err, sizeof(err));
	if (!CHECK(ca, err))
		return;
	if (!CHECK_OK(ca_issue(ca, WEB, 24 * 3600, T0, &leaf_key, &leaf, err, sizeof(err)), err))
		return;
	CHECK_EQ(ASN1_TIME_cmp_time_t(X509_get0_notBefore(leaf), T0), 0, "notBefore = now");
	CHECK_EQ(ASN1_TIME_cmp_time_t(X509_get0_notAfter(leaf), T0 + 24 * 3600), 0,
		 "notAfter = now + ttl");
	CHECK_EQ(X509_check_private_key(leaf, leaf_key), 1, "key matches");
}

static void test_verify_ok(void)
{
	if (CHECK(leaf, "leaf"))
		CHECK_EQ(verify_at(ca_cert(ca), leaf, T0 + 60), X509_V_OK, "verifies against root");
}

static void test_verify_expired(void)
{
	if (!CHECK(leaf, "leaf"))
		return;
	CHECK_EQ(verify_at(ca_cert(ca), leaf, T0 + 24 * 3600 + 1), X509_V_ERR_CERT_HAS_EXPIRED,
		 "expired after ttl");
	CHECK_EQ(verify_at(ca_cert(ca), leaf, T0 - 1), X509_V_ERR_CERT_NOT_YET_VALID,
		 "not valid before now");
}

static void test_verify_other_ca(void)
{
	struct ca *other = ca_load(path("other"), err, sizeof(err));

	if (CHECK(other, err) && CHECK(leaf, "leaf"))
		CHECK_EQ(verify_at(ca_cert(other), leaf, T0 + 60),
			 X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "other CA rejects it");
	ca_free(other);
}

static void test_leaf_spiffe_id(void)
{
	char id[256];

	if (!CHECK(leaf, "leaf"))
		return;
	CHECK_OK(ca_spiffe_id(leaf, id, sizeof(id)), "spiffe id");
	CHECK_STR(id, WEB, "spiffe id value");
	CHECK_EQ(ca_spiffe_id(leaf, id, 8), -ENOSPC, "small buffer");
}

static void test_leaf_extensions(void)
{
	BASIC_CONSTRAINTS *bc;
	ASN1_BIT_STRING *ku;
	char buf[128];
	int crit;

	if (!CHECK(leaf, "leaf"))
		return;
	bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit, NULL);
	CHECK(bc && !bc->ca && crit == 1, "CA:FALSE critical");
	BASIC_CONSTRAINTS_free(bc);
	CHECK_EQ(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT, "key usage");
	ku = X509_get_ext_d2i(leaf, NID_key_usage, &crit, NULL);
	CHECK_EQ(crit, 1, "key usage critical");
	ASN1_BIT_STRING_free(ku);
	CHECK_EQ(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT,
		 "ext key usage");
	CHECK(X509_get0_subject_key_id(leaf), "leaf SKI");
	CHECK(X509_get0_authority_key_id(leaf) &&
		  !ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
					 X509_get0_subject_key_id(ca_cert(ca))),
	      "AKI = root SKI");
	CHECK_EQ(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1, "server purpose");
	CHECK_EQ(X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0), 1, "client purpose");
	X509_NAME_oneline(X509_get_subject_name(leaf), buf, sizeof(buf));
	CHECK_STR(buf, "/O=bpfmesh", "leaf subject");
	EVP_PKEY *pub = X509_get0_pubkey(leaf);
	CHECK(pub && EVP_PKEY_is_a(pub, "EC") && EVP_PKEY_get_bits(pub) == 256, "P-256 key");
}

static void test_issue_rejects(void)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;

	if (!CHECK(ca, "ca"))
		return;
	CHECK_EQ(ca_issue(ca, "spiffe://cluster.local", 60, T0, &key, &x, err, sizeof(err)),
		 -EINVAL, "no path refused");
	CHECK_CONTAINS(err, "invalid SPIFFE ID", "says why");
	CHECK_EQ(ca_issue(ca, "spiffe://a/b,URI:spiffe://c/d", 60, T0, &key, &x, err, sizeof(err)),
		 -EINVAL, "comma refused");
	CHECK_EQ(ca_issue(ca, WEB, 0, T0, &key, &x, err, sizeof(err)), -EINVAL, "ttl 0 refused");
	CHECK(!key && !x, "nothing returned on failure");
}

static void test_spiffe_id(void)
{
	static const struct {
		const char *san;
		int rc;
	} cases[] = {
	    {NULL, -ENOENT},
	    {"DNS:web.default.svc", -ENOENT},
	    {"URI:spiffe://td/ns/a/sa/b,URI:spiffe://td/ns/c/sa/d", -EINVAL},
	    {"URI:https://example.com/x", -EINVAL},
	    {"URI:spiffe://td", -EINVAL},
	    {"URI:spiffe://TD/x", -EINVAL},
	    {"URI:spiffe://td/a//b", -EINVAL},
	    {"DNS:x.y,URI:spiffe://td/anything/here", 0},
	};
	char id[256], what[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		X509 *x = cert_with_san(cases[i].san);

		snprintf(what, sizeof(what), "SAN %s", cases[i].san ? cases[i].san : "(none)");
		CHECK_EQ(ca_spiffe_id(x, id, sizeof(id)), cases[i].rc, what);
		X509_free(x);
	}
}

static void test_spiffe_parse(void)
{
	char td[64], ns[64], sa[64], small[4];

	CHECK_OK(ca_spiffe_parse(WEB, td, sizeof(td), ns, sizeof(ns), sa, sizeof(sa)), "parse");
	CHECK_STR(td, "cluster.local", "td");
	CHECK_STR(ns, "default", "ns");
	CHECK_STR(sa, "web", "sa");
	CHECK_OK(ca_spiffe_parse(WEB, NULL, 0, ns, sizeof(ns), NULL, 0), "NULL buffers");
	CHECK_EQ(ca_spiffe_parse(WEB, small, sizeof(small), NULL, 0, NULL, 0), -ENOSPC,
		 "small buffer");
	CHECK_EQ(ca_spiffe_parse("spiffe://td/ns/a/sa", NULL, 0, NULL, 0, NULL, 0), -EINVAL,
		 "missing sa");
	CHECK_EQ(ca_spiffe_parse("spiffe://td/ns/a/sa/b/c", NULL, 0, NULL, 0, NULL, 0), -EINVAL,
		 "extra segment");
	CHECK_EQ(ca_spiffe_parse("spiffe://td/namespace/a/sa/b", NULL, 0, NULL, 0, NULL, 0),
		 -EINVAL, "wrong keyword");
	CHECK_EQ(ca_spiffe_parse("spiffe://td/ns//sa/b", NULL, 0, NULL, 0, NULL, 0), -EINVAL,
		 "empty ns");
	CHECK_EQ(ca_spiffe_parse("https://td/ns/a/sa/b", NULL, 0, NULL, 0, NULL, 0), -EINVAL,
		 "scheme");
	CHECK_EQ(ca_spiffe_parse("spiffe://td/ns/a/sa/b/", NULL, 0, NULL, 0, NULL, 0), -EINVAL,
		 "trailing slash");
	CHECK(ca_spiffe_valid("spiffe://example.org/x/y_z-1.2"), "valid generic id");
	CHECK(!ca_spiffe_valid("spiffe://example.org/x/../y"), "dot-dot refused");
	CHECK(!ca_spiffe_valid("spiffe://ex ample.org/x"), "space refused");
}

/* Issue a 1h certificate now and write it to name.crt / name.key. */
static X509 *issue_to(const char *name, EVP_PKEY **key)
{
	char p[256];
	X509 *x = NULL;

	*key = NULL;
	if (!CHECK_OK(ca_issue(ca, WEB, 3600, time(NULL), key, &x, err, sizeof(err)), err))
		return NULL;
	snprintf(p, sizeof(p), "%s.crt", path(name));
	CHECK_OK(ca_write_cert(p, x, err, sizeof(err)), err);
	snprintf(p, sizeof(p), "%s.key", path(name));
	CHECK_OK(ca_write_key(p, *key, err, sizeof(err)), err);
	return x;
}

/* What a shell command prints first. */
static const char *first_line(const char *cmd)
{
	static char line[512];
	FILE *p = popen(cmd, "r");

	line[0] = 0;
	if (p) {
		if (!fgets(line, sizeof(line), p))
			line[0] = 0;
		pclose(p);
	}
	return line;
}

static void test_write_modes(void)
{
	EVP_PKEY *k;
	X509 *x;
	struct stat st;

	if (!CHECK(ca, "ca") || !(x = issue_to("w", &k)))
		return;
	if (CHECK_OK(stat(path("w.key"), &st), "key written"))
		CHECK_EQ(st.st_mode & 0777, 0600, "key mode 0600");
	if (CHECK_OK(stat(path("w.crt"), &st), "cert written"))
		CHECK_EQ(st.st_mode & 0777, 0644, "cert mode 0644");
	/* rotation: writing again replaces the file, still 0600 */
	CHECK_OK(ca_write_key(path("w.key"), k, err, sizeof(err)), "rewrite key");
	if (CHECK_OK(stat(path("w.key"), &st), "key rewritten"))
		CHECK_EQ(st.st_mode & 0777, 0600, "rewritten key mode 0600");
	X509_free(x);
	EVP_PKEY_free(k);
}

/* The serial we print is what `openssl x509 -serial` prints for the written file, and the
 * openssl binary accepts the chain too. */
static void test_serial_matches_openssl(void)
{
	char hex[80], cmd[512], want[100];
	EVP_PKEY *k;
	X509 *x;

	if (!CHECK(ca, "ca") || !(x = issue_to("s", &k)))
		return;
	ca_serial_hex(x, hex, sizeof(hex));
	snprintf(cmd, sizeof(cmd), "openssl x509 -in %s.crt -noout -serial 2>&1", path("s"));
	snprintf(want, sizeof(want), "serial=%s\n", hex);
	CHECK_STR(first_line(cmd), want, "serial matches openssl");
	snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s %s.crt 2>&1", path("ca/ca.crt"),
		 path("s"));
	CHECK_CONTAINS(first_line(cmd), ": OK", "openssl verify accepts it");
	X509_free(x);
	EVP_PKEY_free(k);
}

/* Write one identity in a BYO layout: leaf (+ the root after it, standing in for an
 * intermediate, when chain is set), key, bundle. */
static void write_layout(const char *dir, const char *const names[3], bool chain)
{
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	char p[256];
	FILE *f;

	mkdir(path(dir), 0700);
	if (!CHECK_OK(ca_issue(ca, WEB, 3600, time(NULL), &k, &x, err, sizeof(err)), err))
		return;
	snprintf(p, sizeof(p), "%s/%s", path(dir), names[0]);
	CHECK_OK(ca_write_cert(p, x, err, sizeof(err)), err);
	if (chain && (f = fopen(p, "a"))) {
		PEM_write_X509(f, ca_cert(ca));
		fclose(f);
	}
	snprintf(p, sizeof(p), "%s/%s", path(dir), names[1]);
	CHECK_OK(ca_write_key(p, k, err, sizeof(err)), err);
	snprintf(p, sizeof(p), "%s/%s", path(dir), names[2]);
	CHECK_OK(ca_write_cert(p, ca_cert(ca), err, sizeof(err)), err);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void check_byo(const char *dir, int chain_len)
{
	STACK_OF(X509) *chain = NULL, *bundle = NULL;
	EVP_PKEY *k = NULL;
	char id[256];

	if (!CHECK_OK(ca_load_workload_dir(path(dir), &k, &chain, &bundle, err, sizeof(err)), err))
		return;
	CHECK_EQ(sk_X509_num(chain), chain_len, "chain length");
	CHECK_EQ(sk_X509_num(bundle), 1, "bundle length");
	CHECK_EQ(X509_check_private_key(sk_X509_value(chain, 0), k), 1, "key is the leaf's");
	CHECK_OK(ca_spiffe_id(sk_X509_value(chain, 0), id, sizeof(id)), "leaf spiffe id");
	CHECK_STR(id, WEB, "leaf id");
	CHECK_EQ(X509_cmp(sk_X509_value(bundle, 0), ca_cert(ca)), 0, "bundle is the root");
	EVP_PKEY_free(k);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(bundle, X509_free);
}

static const char *const csi[3] = {"tls.crt", "tls.key", "ca.crt"};
static const char *const spire[3] = {"svid.pem", "svid_key.pem", "svid_bundle.pem"};

static void test_byo_cert_manager(void)
{
	if (!CHECK(ca, "ca"))
		return;
	write_layout("csi", csi, false);
	check_byo("csi", 1);
}

static void test_byo_spiffe_helper(void)
{
	if (!CHECK(ca, "ca"))
		return;
	write_layout("spire", spire, true);
	check_byo("spire", 2);
}

static void test_byo_missing_file(void)
{
	STACK_OF(X509) *chain = (STACK_OF(X509) *)1, *bundle = (STACK_OF(X509) *)1;
	EVP_PKEY *k = (EVP_PKEY *)1;

	unlink(path("spire/svid_bundle.pem"));
	CHECK_EQ(ca_load_workload_dir(path("spire"), &k, &chain, &bundle, err, sizeof(err)),
		 -ENOENT, "missing bundle");
	CHECK_CONTAINS(err, "spire/svid_bundle.pem", "error names the bundle");
	CHECK(!k && !chain && !bundle, "nothing returned on failure");
	unlink(path("csi/tls.key"));
	CHECK_EQ(ca_load_workload_dir(path("csi"), &k, &chain, &bundle, err, sizeof(err)), -ENOENT,
		 "missing key");
	CHECK_CONTAINS(err, "csi/tls.key", "error names the key");
	mkdir(path("empty"), 0700);
	CHECK_EQ(ca_load_workload_dir(path("empty"), &k, &chain, &bundle, err, sizeof(err)),
		 -ENOENT, "empty dir");
	CHECK_CONTAINS(err, "svid.pem", "error lists the layouts");
}

static void test_byo_wrong_key(void)
{
	STACK_OF(X509) * chain, *bundle;
	EVP_PKEY *k;
	char p[256];

	if (!CHECK(ca, "ca"))
		return;
	write_layout("wrong", csi, false);
	snprintf(p, sizeof(p), "%s/tls.key", path("wrong"));
	CHECK_OK(ca_write_key(p, leaf_key, err, sizeof(err)), err);
	CHECK_EQ(ca_load_workload_dir(path("wrong"), &k, &chain, &bundle, err, sizeof(err)),
		 -EINVAL, "key of another cert");
	CHECK_CONTAINS(err, "does not match", "says mismatch");
}

static void test_bad_pem(void)
{
	STACK_OF(X509) *certs = NULL;
	FILE *f = fopen(path("garbage.pem"), "w");

	if (f) {
		fputs("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", f);
		fclose(f);
	}
	CHECK_EQ(ca_load_pem_certs(path("garbage.pem"), &certs, err, sizeof(err)), -EINVAL,
		 "garbage PEM");
	CHECK_CONTAINS(err, "garbage.pem", "error names the file");
	f = fopen(path("empty.pem"), "w");
	if (f)
		fclose(f);
	CHECK_EQ(ca_load_pem_certs(path("empty.pem"), &certs, err, sizeof(err)), -EINVAL,
		 "empty file");
	CHECK_CONTAINS(err, "no PEM certificate", "says empty");
	CHECK(!certs, "nothing returned");
}

/* Run `bpfmesh ca ARGS...` in-process with stdout/stderr sent to name.out; its exit code. */
static int run_cli(const char *name, char **argv)
{
	int argc = 0, rc, out = dup(1), errfd = dup(2);
	FILE *f = fopen(path(name), "w");

	while (argv[argc])
		argc++;
	fflush(stdout);
	fflush(stderr);
	dup2(fileno(f), 1);
	dup2(fileno(f), 2);
	rc = cmd_ca(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(out, 1);
	dup2(errfd, 2);
	close(out);
	close(errfd);
	fclose(f);
	return rc;
}

static const char *slurp(const char *name)
{
	static char buf[2048];
	FILE *f = fopen(path(name), "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	buf[n] = 0;
	if (f)
		fclose(f);
	return buf;
}

static void test_cli(void)
{
	char dir[256], crt[256], key[256], want[512];
	STACK_OF(X509) *certs = NULL;

	snprintf(dir, sizeof(dir), "%s", path("cli"));
	snprintf(crt, sizeof(crt), "%s", path("old.crt"));
	snprintf(key, sizeof(key), "%s", path("old.key"));
	CHECK_EQ(
	    run_cli("o", (char *[]){"ca", "init", "--dir", dir, "--trust-domain", "td.test", NULL}),
	    0, "ca init");
	snprintf(want, sizeof(want), "created %s/ca.crt and %s/ca.key (trust domain td.test)\n",
		 dir, dir);
	CHECK_STR(slurp("o"), want, "ca init output");
	CHECK_EQ(run_cli("o", (char *[]){"ca", "init", "--dir", dir, NULL}), 1, "init twice");
	CHECK_CONTAINS(slurp("o"), "already exists", "init twice says why");
	CHECK_EQ(run_cli("o", (char *[]){"ca", "init", NULL}), 2, "usage");
	CHECK_EQ(run_cli("o", (char *[]){"ca", "issue", "--dir", dir, "--id",
					 "spiffe://td.test/ns/a/sa/b", "--ttl", "2x", "--cert", crt,
					 "--key", key, NULL}),
		 2, "bad ttl");
	/* already expired: valid from 2h ago for 1h */
	CHECK_EQ(run_cli("o", (char *[]){"ca", "issue", "--dir", dir, "--id",
					 "spiffe://td.test/ns/a/sa/b", "--ttl", "3600", "--cert",
					 crt, "--key", key, "--not-before-offset", "-7200", NULL}),
		 0, "ca issue");
	CHECK_EQ(strlen(slurp("o")), 33, "prints the serial");
	if (CHECK_OK(ca_load_pem_certs(crt, &certs, err, sizeof(err)), err)) {
		X509 *x = sk_X509_value(certs, 0);
		time_t now = time(NULL);

		CHECK(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), now - 3500) < 0 &&
			  ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), now - 3700) > 0,
		      "notAfter an hour ago");
	}
	sk_X509_pop_free(certs, X509_free);
	CHECK_EQ(run_cli("o", (char *[]){"ca", "show", crt, NULL}), 0, "ca show");
	CHECK_CONTAINS(slurp("o"), "spiffe_id: spiffe://td.test/ns/a/sa/b\nserial: ", "show id");
	CHECK_CONTAINS(slurp("o"), "\nissuer: CN=bpfmesh root CA td.test,O=bpfmesh\n",
		       "show issuer");
	CHECK_CONTAINS(slurp("o"), "\nnot_after: 20", "show not_after");
}

int main(void)
{
	T0 = time(NULL) + 86400;
	strcpy(tmpdir, "/tmp/bpfmesh-ca-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_init);
	RUN(test_root);
	RUN(test_load_errors);
	RUN(test_issue);
	RUN(test_verify_ok);
	RUN(test_verify_expired);
	RUN(test_verify_other_ca);
	RUN(test_leaf_spiffe_id);
	RUN(test_leaf_extensions);
	RUN(test_issue_rejects);
	RUN(test_spiffe_id);
	RUN(test_spiffe_parse);
	RUN(test_write_modes);
	RUN(test_serial_matches_openssl);
	RUN(test_byo_cert_manager);
	RUN(test_byo_spiffe_helper);
	RUN(test_byo_missing_file);
	RUN(test_byo_wrong_key);
	RUN(test_bad_pem);
	RUN(test_cli);
	X509_free(leaf);
	EVP_PKEY_free(leaf_key);
	ca_free(ca);
	snprintf(err, sizeof(err), "rm -rf %s", tmpdir);
	if (system(err) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return CHECK_DONE("ca");
}
