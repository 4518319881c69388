// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cmd_ca.c: `bpfmesh ca init|issue|show`, the hand-operated side of ca.c: create the mesh CA,
 * mint a workload certificate (tests use --not-before-offset to mint expired ones), print what
 * a certificate says. The agent issues its own certificates through ca.h; nothing here is on
 * its path. Dispatched by main.c. Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca.h"
#include "args.h"
#include "cli.h"
#include "duration.h" /* the same duration syntax as Istio's CRDs */

#define CA_DEFAULT_TD  "cluster.local"
#define CA_DEFAULT_TTL (24 * 3600L)

static const char init_usage[] = "usage: bpfmesh ca init --dir DIR [--trust-domain TD]\n"
				 "  makes the mesh's root CA (ECDSA P-256, keys 0600) in DIR\n";
static const char issue_usage[] =
    "usage: bpfmesh ca issue --dir DIR --id SPIFFE_ID [--ttl DURATION] --cert FILE --key FILE "
    "[--not-before-offset SECONDS]\n"
    "  signs a certificate for one SPIFFE ID with the CA in DIR\n";
static const char show_usage[] = "usage: bpfmesh ca show FILE\n"
				 "  prints a certificate's SPIFFE ID, issuer and validity\n";

static int usage(void)
{
	fprintf(stderr, "%s%s%s%s%s", init_usage, issue_usage, show_usage, ca_node_usage,
		ca_serve_usage);
	return 2;
}

static int ca_init_cmd(int argc, char **argv)
{
	static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
					     {"trust-domain", required_argument, 0, 't'},
					     {0, 0, 0, 0}};
	const char *dir = NULL, *td = CA_DEFAULT_TD;
	char err[512];
	int o;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'd')
			dir = optarg;
		else if (o == 't')
			td = optarg;
		else
			return usage();
	}
	if (!dir || optind != argc)
		return usage();
	if (ca_init(dir, td, err, sizeof(err))) {
		fprintf(stderr, "bpfmesh ca init: %s\n", err);
		return 1;
	}
	printf("created %s/ca.crt and %s/ca.key (trust domain %s)\n", dir, dir, td);
	return 0;
}

static int ca_issue_cmd(int argc, char **argv)
{
	static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
					     {"id", required_argument, 0, 'i'},
					     {"ttl", required_argument, 0, 't'},
					     {"cert", required_argument, 0, 'c'},
					     {"key", required_argument, 0, 'k'},
					     {"not-before-offset", required_argument, 0, 'o'},
					     {0, 0, 0, 0}};
	const char *dir = NULL, *id = NULL, *cert_path = NULL, *key_path = NULL;
	long ttl = CA_DEFAULT_TTL, offset = 0;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	struct ca *ca = NULL;
	char err[512], serial[80], *end;
	int64_t ns;
	int o, rc = 1;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			dir = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		case 'c':
			cert_path = optarg;
			break;
		case 'k':
			key_path = optarg;
			break;
		case 't':
			/* bare seconds ("3600") too: Go durations need a unit */
			errno = 0;
			ns = strtoll(optarg, &end, 10);
			if (!errno && end != optarg && !*end && ns > 0 &&
			    ns < INT64_MAX / 1000000000LL)
				ns *= 1000000000LL;
			else if (parse_duration_ns(optarg, &ns) < 0)
				ns = 0;
			if (ns < 1000000000LL) {
				fprintf(stderr,
					"bpfmesh ca issue: --ttl %s: want a duration of at least "
					"1s, like 24h, 90m, 10s or 3600 (seconds)\n",
					optarg);
				return 2;
			}
			ttl = (long)(ns / 1000000000LL);
			break;
		case 'o':
			errno = 0;
			offset = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end) {
				fprintf(stderr,
					"bpfmesh ca issue: --not-before-offset %s: want whole "
					"seconds, like -7200\n",
					optarg);
				return 2;
			}
			break;
		default:
			return usage();
		}
	}
	if (!dir || !id || !cert_path || !key_path || optind != argc)
		return usage();
	if (!(ca = ca_load(dir, err, sizeof(err))) ||
	    ca_issue(ca, id, ttl, time(NULL) + offset, &key, &cert, err, sizeof(err)) ||
	    ca_write_key(key_path, key, err, sizeof(err)) ||
	    ca_write_cert(cert_path, cert, err, sizeof(err))) {
		fprintf(stderr, "bpfmesh ca issue: %s\n", err);
		goto out;
	}
	ca_serial_hex(cert, serial, sizeof(serial));
	printf("%s\n", serial);
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	ca_free(ca);
	return rc;
}

static void print_time(const char *label, const ASN1_TIME *t)
{
	struct tm tm;
	char buf[64];

	if (ASN1_TIME_to_tm(t, &tm) && strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		printf("%s: %s\n", label, buf);
	else
		printf("%s: invalid\n", label);
}

static int ca_show_cmd(int argc, char **argv)
{
	STACK_OF(X509) *certs = NULL;
	char err[512], buf[2100];
	X509 *x;
	BIO *out;
	int rc;

	if (argc != 2 || argv[1][0] == '-')
		return usage();
	if (ca_load_pem_certs(argv[1], &certs, err, sizeof(err))) {
		fprintf(stderr, "bpfmesh ca show: %s\n", err);
		return 1;
	}
	x = sk_X509_value(certs, 0); /* the leaf, when the file holds a chain */
	rc = ca_spiffe_id(x, buf, sizeof(buf));
	printf("spiffe_id: %s\n", rc == 0 ? buf : rc == -ENOENT ? "none" : "invalid");
	ca_serial_hex(x, buf, sizeof(buf));
	printf("serial: %s\n", buf);
	print_time("not_before", X509_get0_notBefore(x));
	print_time("not_after", X509_get0_notAfter(x));
	printf("issuer: ");
	out = BIO_new_fp(stdout, BIO_NOCLOSE);
	if (out) {
		X509_NAME_print_ex(out, X509_get_issuer_name(x), 0, XN_FLAG_RFC2253);
		BIO_free(out);
	}
	printf("\n");
	sk_X509_pop_free(certs, X509_free);
	return 0;
}

int cmd_ca(int argc, char **argv)
{
	static const struct {
		const char *name;
		const char *usage;
	} subs[] = {{"init", init_usage},
		    {"issue", issue_usage},
		    {"show", show_usage},
		    {"node", ca_node_usage},
		    {"serve", ca_serve_usage}};

	if (argc < 2)
		return usage();
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (!strcmp(argv[1], subs[i].name) && args_help(argc - 1, argv + 1)) {
			fputs(subs[i].usage, stdout);
			return 0;
		}
	if (!strcmp(argv[1], "init"))
		return ca_init_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "issue"))
		return ca_issue_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "show"))
		return ca_show_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "node"))
		return ca_node_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "serve"))
		return ca_serve_cmd(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		printf("%s%s%s%s%s", init_usage, issue_usage, show_usage, ca_node_usage,
		       ca_serve_usage);
		return 0;
	}
	fprintf(stderr, "bpfmesh ca: unknown subcommand '%s'\n", argv[1]);
	return usage();
}
