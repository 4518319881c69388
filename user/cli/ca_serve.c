// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ca_serve.c: `bpfmesh ca serve`, the mesh CA as a service of its own, so the CA key lives on
 * one machine instead of every node; and `bpfmesh ca node`, which issues a node its identity.
 *
 * Node agents ask for their pods' workload certificates over mutual TLS 1.3, presenting their
 * node certificate (spiffe://TD/bpfmesh/node/NAME); the service presents spiffe://TD/bpfmesh/ca.
 * A request names a pod and carries a CSR:
 *     POST /v1/certificate HTTP/1.1
 *     X-Bpfmesh-Pod: NAMESPACE/POD
 *     X-Bpfmesh-Ttl: SECONDS            (optional; capped by --max-ttl)
 *     Content-Length: N
 *     <PEM certificate request>
 * The CA signs the CSR's key as spiffe://TD/ns/NS/sa/SA only when that pod exists in its
 * config (--config-dir: the Pod objects, as an API server would list them), is scheduled on
 * the requesting node (spec.nodeName == NAME) and runs as SA: node binding, as Istio's CA does
 * for ztunnel. So a compromised node can mint identities of its own pods only. Answers: 200
 * with the PEM certificate, 400 malformed, 403 refused (with the reason), 500.
 * One thread per connection (at most MAX_CONNS), socket timeouts on every read and write.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include "ca.h"
#include "cli.h"
#include "log.h"
#include "model.h"
#include "names.h"
#include "duration.h"
#include "kube.h"
#include "kubeconf.h"
#include <sys/eventfd.h>

#define MAX_CONNS      64
#define IO_TIMEOUT_S   5
#define REQ_MAX	       (32 * 1024)
#define SERVER_TTL     (30 * 86400L)
#define DEFAULT_MAXTTL (24 * 3600L)
#define NODE_TTL       (365 * 86400L)

struct casrv {
	struct ca *ca;
	char td[256];
	const char *config_dir; /* or the API server's pods: */
	struct kube *kube;
	uint64_t kube_gen;
	long max_ttl;
	const char *ingress_nodes; /* --ingress-nodes: "*", or names joined by ',' (NULL: none) */
	SSL_CTX *ctx;
	pthread_mutex_t mu; /* the config below */
	struct mesh_config *cfg;
	time_t cfg_at;
	int conns; /* atomic */
};

struct job {
	struct casrv *s;
	int fd;
	char peer[64];
};

/* The pods as the config says now (reread at most once a second). */
static bool find_pod(struct casrv *s, const char *ns, const char *name, char *node, char *sa,
		     size_t len)
{
	bool found = false;
	time_t now = time(NULL);

	pthread_mutex_lock(&s->mu);
	if (s->kube) { /* what the watch holds, read again when it changed */
		uint64_t rv, gen = kube_gen(s->kube, &rv);
		struct kube_snap snap;

		if ((!s->cfg || gen != s->kube_gen) && kube_synced(s->kube) &&
		    !kube_snapshot(s->kube, &snap)) {
			struct mesh_config *c = config_new();
			struct diags d = {0};

			for (int i = 0; i < snap.n; i++) {
				size_t len;
				const char *json = kube_obj_json(snap.v[i], &len);

				config_load_mem(c, kube_obj_name(snap.v[i]), json, len, &d);
			}
			diags_free(&d);
			config_free(s->cfg);
			s->cfg = c;
			s->kube_gen = snap.gen;
			kube_snap_free(&snap);
		}
	} else if (!s->cfg || now != s->cfg_at) {
		struct mesh_config *c = config_new();
		struct diags d = {0};

		config_load_dir(c, s->config_dir, &d); /* objects with errors are left out */
		diags_free(&d);
		config_free(s->cfg);
		s->cfg = c;
		s->cfg_at = now;
	}
	for (int i = 0; s->cfg && i < s->cfg->nworkloads && !found; i++) {
		const struct workload_obj *w = &s->cfg->workloads[i];

		if (w->kind == WL_POD && !strcmp(w->ns, ns) && !strcmp(w->name, name)) {
			found = true;
			snprintf(node, len, "%s", w->node_name ? w->node_name : "");
			snprintf(sa, len, "%s",
				 w->service_account ? w->service_account : "default");
		}
	}
	pthread_mutex_unlock(&s->mu);
	return found;
}

static void reply(SSL *ssl, int code, const char *reason, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
			 reason, strlen(body));

	SSL_write(ssl, head, n);
	if (*body)
		SSL_write(ssl, body, (int)strlen(body));
}

static const char *header(const char *req, const char *name, char *buf, size_t len)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\r\n%s:", name);
	p = strcasestr(req, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	snprintf(buf, len, "%.*s", (int)strcspn(p, "\r\n"), p);
	return buf;
}

/* The gateway identity (GW_NS/GW_NAME, no pod of the config) is granted to the nodes that
 * --ingress-nodes names: the ones whose agents serve Gateways (--ingress). */
static bool ingress_node(const struct casrv *s, const char *node)
{
	size_t n = strlen(node);

	if (!s->ingress_nodes)
		return false;
	if (!strcmp(s->ingress_nodes, "*"))
		return true;
	for (const char *p = s->ingress_nodes; *p;) {
		size_t l = strcspn(p, ",");

		if (l == n && !strncmp(p, node, n))
			return true;
		p += l + (p[l] == ',');
	}
	return false;
}

/* One request on an accepted, TLS-authenticated connection. */
static void serve(struct casrv *s, SSL *ssl, const char *node)
{
	char *req = malloc(REQ_MAX + 1), pod[300], ns[128], name[200], ttls[32], pnode[256],
	     psa[256], id[400], why[300], serial[80], *body, *end;
	size_t len = 0, clen = 0;
	EVP_PKEY *pub = NULL;
	X509 *cert = NULL;
	long ttl = s->max_ttl;
	int r;

	if (!req)
		return;
	for (;;) {
		r = SSL_read(ssl, req + len, (int)(REQ_MAX - len));
		if (r <= 0)
			goto out;
		len += r;
		req[len] = 0;
		end = strstr(req, "\r\n\r\n");
		if (end) {
			char cl[32];

			clen = header(req, "Content-Length", cl, sizeof(cl)) ? strtoul(cl, NULL, 10)
									     : 0;
			if (clen > REQ_MAX - (size_t)(end + 4 - req)) {
				reply(ssl, 400, "Bad Request", "request too large\n");
				goto out;
			}
			if (len >= (size_t)(end + 4 - req) + clen)
				break;
		}
		if (len == REQ_MAX) {
			reply(ssl, 400, "Bad Request", "request too large\n");
			goto out;
		}
	}
	body = end + 4;
	if (!node) { /* read first, then refuse: a peer still writing would lose the answer */
		reply(ssl, 403, "Forbidden", "not a node of this mesh\n");
		goto out;
	}
	if (strncmp(req, "POST /v1/certificate ", 21) ||
	    !header(req, "X-Bpfmesh-Pod", pod, sizeof(pod)) ||
	    sscanf(pod, "%127[^/]/%199s", ns, name) != 2) {
		reply(ssl, 400, "Bad Request", "want POST /v1/certificate with X-Bpfmesh-Pod\n");
		goto out;
	}
	if (header(req, "X-Bpfmesh-Ttl", ttls, sizeof(ttls)) && atol(ttls) > 0 && atol(ttls) < ttl)
		ttl = atol(ttls);
	if (!strcmp(ns, GW_NS) && !strcmp(name, GW_NAME)) {
		if (!ingress_node(s, node)) {
			snprintf(why, sizeof(why),
				 "node %s is not an ingress node (ca serve --ingress-nodes)", node);
			goto refuse;
		}
		snprintf(pnode, sizeof(pnode), "%s", node);
		snprintf(psa, sizeof(psa), "%s", GW_SA);
	} else if (!find_pod(s, ns, name, pnode, psa, sizeof(pnode))) {
		if (s->kube && !kube_synced(s->kube)) { /* not "no such pod": not known yet */
			pr_info("node %s asked for pod %s/%s before the pods were read from the "
				"API server: 503, to ask again",
				node, ns, name);
			reply(ssl, 503, "Service Unavailable",
			      "the CA has not read the pods from the API server yet\n");
			goto out;
		}
		snprintf(why, sizeof(why), "no pod %s/%s", ns, name);
		goto refuse;
	}
	if (strcmp(pnode, node)) {
		snprintf(why, sizeof(why), "pod %s/%s is scheduled on node %s, not %s", ns, name,
			 pnode[0] ? pnode : "(none)", node);
		goto refuse;
	}
	snprintf(id, sizeof(id), "spiffe://%s/ns/%s/sa/%s", s->td, ns, psa);
	pub = ca_csr_pubkey(body, clen, why, sizeof(why));
	if (!pub) {
		reply(ssl, 400, "Bad Request", "the body is not a certificate request\n");
		goto out;
	}
	if (ca_sign(s->ca, pub, id, ttl, time(NULL), &cert, why, sizeof(why))) {
		reply(ssl, 500, "Internal Server Error", why);
		goto out;
	}
	{
		BIO *b = BIO_new(BIO_s_mem());
		char *pem, *copy = NULL;
		long n;

		if (b && PEM_write_bio_X509(b, cert) && (n = BIO_get_mem_data(b, &pem)) > 0)
			copy = strndup(pem, n); /* the BIO's data is not NUL-terminated */
		BIO_free(b);
		if (!copy) {
			reply(ssl, 500, "Internal Server Error", "cannot encode\n");
			goto out;
		}
		reply(ssl, 200, "OK", copy);
		free(copy);
	}
	ca_serial_hex(cert, serial, sizeof(serial));
	pr_info("issued %s for pod %s/%s to node %s, serial %s, %ld s", id, ns, name, node, serial,
	      ttl);
	goto out;
refuse:
	pr_warn("refused node %s: %s", node, why);
	strncat(why, "\n", sizeof(why) - strlen(why) - 1);
	reply(ssl, 403, "Forbidden", why);
out:
	EVP_PKEY_free(pub);
	X509_free(cert);
	free(req);
}

static void *conn_thread(void *arg)
{
	struct job *j = arg;
	struct casrv *s = j->s;
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	char id[400] = "", td[256] = "", node[256] = "";
	SSL *ssl = SSL_new(s->ctx);
	const char *p;

	setsockopt(j->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(j->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!ssl || !SSL_set_fd(ssl, j->fd) || SSL_accept(ssl) != 1) {
		unsigned long e = ERR_get_error();
		char es[256] = "connection closed";

		if (e)
			ERR_error_string_n(e, es, sizeof(es));
		pr_warn("refused %s: TLS handshake failed: %s", j->peer, es);
		goto out;
	}
	/* a node of this trust domain, by its certificate */
	if (ca_spiffe_id(SSL_get0_peer_certificate(ssl), id, sizeof(id)) ||
	    sscanf(id, "spiffe://%255[^/]", td) != 1 || strcmp(td, s->td) ||
	    !(p = strstr(id, CA_NODE_PATH)) || p != id + 9 + strlen(td) ||
	    strlen(p + strlen(CA_NODE_PATH)) >= sizeof(node) ||
	    strchr(p + strlen(CA_NODE_PATH), '/')) {
		pr_warn("refused %s: %s is no node identity of %s", j->peer,
		      id[0] ? id : "no SPIFFE ID", s->td);
		serve(s, ssl, NULL);
		goto out;
	}
	snprintf(node, sizeof(node), "%s", p + strlen(CA_NODE_PATH));
	serve(s, ssl, node);
out:
	ERR_clear_error();
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	close(j->fd);
	__atomic_sub_fetch(&s->conns, 1, __ATOMIC_ACQ_REL);
	free(j);
	return NULL;
}

static int listen_addr(const char *spec)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd, one = 1;

	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	sa.sin_port = htons(atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || !sa.sin_port)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 128)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void read_td(const char *dir, char *td, size_t len)
{
	char path[600];
	FILE *f;

	snprintf(td, len, "cluster.local");
	snprintf(path, sizeof(path), "%s/trust-domain", dir);
	f = fopen(path, "r");
	if (f && fgets(td, (int)len, f))
		td[strcspn(td, "\r\n")] = 0;
	if (f)
		fclose(f);
}

/* The service's own TLS identity, issued at start and kept in memory only. */
static SSL_CTX *server_ctx(struct casrv *s, char *err, size_t errlen)
{
	char id[300];
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	X509_STORE *st = X509_STORE_new();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	snprintf(id, sizeof(id), "spiffe://%s/bpfmesh/ca", s->td);
	if (!ctx || !st || ca_issue(s->ca, id, SERVER_TTL, time(NULL), &key, &cert, err, errlen) ||
	    SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    X509_STORE_add_cert(st, ca_cert(s->ca)) != 1) {
		if (!err[0])
			snprintf(err, errlen, "cannot set up TLS");
		SSL_CTX_free(ctx);
		X509_STORE_free(st);
		ctx = NULL;
		goto out;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_cert_store(ctx, st);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
out:
	EVP_PKEY_free(key);
	X509_free(cert);
	return ctx;
}

const char ca_serve_usage[] =
    "usage: bpfmesh ca serve --dir CA_DIR (--kube | --kubeconfig FILE | --config-dir DIR)\n"
    "    --listen IP:PORT [--netns PATH] [--max-ttl DURATION] [--ingress-nodes NAMES]\n"
    "  the mesh CA as a service: signs workload certificates over mutual TLS, each only\n"
    "  for the node its pod is scheduled on (pods watched on the API server, --kube as a\n"
    "  pod or --kubeconfig FILE, or read from --config-dir)\n"
    "  --ingress-nodes N1,N2 (or '*'): nodes whose agents serve Gateways (agent --ingress)\n"
    "  and may have the gateway's identity, " GW_NS "/" GW_SA "\n";

static int serve_usage(void)
{
	fputs(ca_serve_usage, stderr);
	return 2;
}

int ca_serve_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, 0, 'd'},	    {"config-dir", required_argument, 0, 'c'},
	    {"kube", no_argument, 0, 'k'},	    {"kubeconfig", required_argument, 0, 'K'},
	    {"listen", required_argument, 0, 'l'},  {"netns", required_argument, 0, 'n'},
	    {"max-ttl", required_argument, 0, 't'}, {"ingress-nodes", required_argument, 0, 'i'},
	    {"help", no_argument, 0, 'h'},	    {0, 0, 0, 0}};
	const char *dir = NULL, *listen_spec = NULL, *netns = NULL, *kubeconfig = NULL;
	bool incluster = false;
	struct casrv s = {.max_ttl = DEFAULT_MAXTTL};
	char err[512] = "";
	int64_t ns;
	int o, lfd;

	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			dir = optarg;
			break;
		case 'c':
			s.config_dir = optarg;
			break;
		case 'k':
			incluster = true;
			break;
		case 'K':
			kubeconfig = optarg;
			break;
		case 'l':
			listen_spec = optarg;
			break;
		case 'n':
			netns = optarg;
			break;
		case 't':
			if (parse_duration_ns(optarg, &ns) || ns < 1000000000LL)
				return serve_usage();
			s.max_ttl = ns / 1000000000LL;
			break;
		case 'i':
			s.ingress_nodes = optarg;
			break;
		case 'h':
			serve_usage();
			return 0;
		default:
			return serve_usage();
		}
	}
	if (!dir || !listen_spec || !!s.config_dir + incluster + !!kubeconfig != 1)
		return serve_usage();
	log_init("ca");
	signal(SIGPIPE, SIG_IGN);
	if (incluster || kubeconfig) { /* before --netns: the watch stays where the API is */
		static const char *const pods[] = {"pods", NULL};
		struct kube_conn kc;
		struct kube_opts ko = {.conn = &kc, .only = pods};

		if (incluster ? kube_conn_incluster(&kc, err, sizeof(err))
			      : kube_conn_kubeconfig(&kc, kubeconfig, err, sizeof(err))) {
			fprintf(stderr, "bpfmesh ca serve: %s\n", err);
			return 2;
		}
		ko.notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); /* polled by no one */
		s.kube = ko.notify_fd >= 0 ? kube_start(&ko) : NULL;
		kube_conn_free(&kc);
		if (!s.kube) {
			fprintf(stderr, "bpfmesh ca serve: cannot start the API watch\n");
			return 1;
		}
	}
	if (netns) {
		int fd = open(netns, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || setns(fd, CLONE_NEWNET)) {
			fprintf(stderr, "bpfmesh ca serve: netns %s: %s\n", netns, strerror(errno));
			return 1;
		}
		close(fd);
	}
	s.ca = ca_load(dir, err, sizeof(err));
	if (!s.ca) {
		fprintf(stderr, "bpfmesh ca serve: %s\n", err);
		return 1;
	}
	read_td(dir, s.td, sizeof(s.td));
	pthread_mutex_init(&s.mu, NULL);
	s.ctx = server_ctx(&s, err, sizeof(err));
	lfd = s.ctx ? listen_addr(listen_spec) : -1;
	if (lfd < 0) {
		fprintf(stderr, "bpfmesh ca serve: %s\n",
			s.ctx ? "cannot listen there (want IP:PORT)" : err);
		return 1;
	}
	pr_info("serving workload certificates of trust domain %s on %s (node-bound, up to %ld s)",
	      s.td, listen_spec, s.max_ttl);
	for (;;) {
		struct sockaddr_in peer;
		socklen_t pl = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
		struct job *j;
		pthread_t th;
		char ip[INET_ADDRSTRLEN] = "?";

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			usleep(100000); /* out of fds: wait rather than spin */
			continue;
		}
		inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
		if (__atomic_add_fetch(&s.conns, 1, __ATOMIC_ACQ_REL) > MAX_CONNS) {
			__atomic_sub_fetch(&s.conns, 1, __ATOMIC_ACQ_REL);
			close(fd);
			continue;
		}
		j = calloc(1, sizeof(*j));
		if (!j) {
			close(fd);
			__atomic_sub_fetch(&s.conns, 1, __ATOMIC_ACQ_REL);
			continue;
		}
		j->s = &s;
		j->fd = fd;
		snprintf(j->peer, sizeof(j->peer), "%s:%u", ip, ntohs(peer.sin_port));
		if (pthread_create(&th, NULL, conn_thread, j)) {
			close(fd);
			free(j);
			__atomic_sub_fetch(&s.conns, 1, __ATOMIC_ACQ_REL);
			continue;
		}
		pthread_detach(th);
	}
}

const char ca_node_usage[] =
    "usage: bpfmesh ca node --dir CA_DIR --node NAME --out DIR [--ttl DURATION]\n"
    "  writes DIR/node.crt, node.key, ca.crt and trust-domain: the identity the node's\n"
    "  agent shows the CA service (spiffe://TD/bpfmesh/node/NAME)\n";

static int node_usage(void)
{
	fputs(ca_node_usage, stderr);
	return 2;
}

int ca_node_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, 0, 'd'}, {"node", required_argument, 0, 'n'},
	    {"out", required_argument, 0, 'o'}, {"ttl", required_argument, 0, 't'},
	    {"help", no_argument, 0, 'h'},	{0, 0, 0, 0}};
	const char *dir = NULL, *node = NULL, *out = NULL;
	char err[512] = "", td[256], id[600], path[700];
	long ttl = NODE_TTL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	struct ca *ca = NULL;
	int64_t ns;
	int o, rc = 1;
	FILE *f;

	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			node = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 't':
			if (parse_duration_ns(optarg, &ns) || ns < 1000000000LL)
				return node_usage();
			ttl = ns / 1000000000LL;
			break;
		case 'h':
			node_usage();
			return 0;
		default:
			return node_usage();
		}
	}
	if (!dir || !node || !out || !names_dns_subdomain(node))
		return node_usage();
	read_td(dir, td, sizeof(td));
	snprintf(id, sizeof(id), "spiffe://%s%s%s", td, CA_NODE_PATH, node);
	if (mkdir(out, 0700) && errno != EEXIST) {
		fprintf(stderr, "bpfmesh ca node: %s: %s\n", out, strerror(errno));
		return 1;
	}
	if (!(ca = ca_load(dir, err, sizeof(err))) ||
	    ca_issue(ca, id, ttl, time(NULL), &key, &cert, err, sizeof(err)))
		goto fail;
	snprintf(path, sizeof(path), "%s/node.key", out);
	if (ca_write_key(path, key, err, sizeof(err)))
		goto fail;
	snprintf(path, sizeof(path), "%s/node.crt", out);
	if (ca_write_cert(path, cert, err, sizeof(err)))
		goto fail;
	snprintf(path, sizeof(path), "%s/ca.crt", out);
	if (ca_write_cert(path, ca_cert(ca), err, sizeof(err)))
		goto fail;
	snprintf(path, sizeof(path), "%s/trust-domain", out);
	f = fopen(path, "w");
	if (!f || fprintf(f, "%s\n", td) < 0 || fclose(f)) {
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		goto fail;
	}
	printf("%s: %s/node.crt, node.key, ca.crt\n", id, out);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "bpfmesh ca node: %s\n", err);
out:
	EVP_PKEY_free(key);
	X509_free(cert);
	ca_free(ca);
	return rc;
}
