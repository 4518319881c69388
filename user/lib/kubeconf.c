// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kubeconf.c: the API server's address and credentials (see kubeconf.h). A kubeconfig is
 * read as kubectl reads it: current-context names a context, which names a cluster (server,
 * certificate-authority[-data], insecure-skip-tls-verify) and a user (token, tokenFile,
 * client-certificate[-data], client-key[-data]); relative file names are relative to the
 * kubeconfig's own directory. Exec and auth-provider plugins are refused with a message:
 * a node agent runs with a service account, not a person's login.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "kubeconf.h"
#include "yamltree.h"

static char *dupn(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* base64 (RFC 4648, as Kubernetes writes *-data fields) into b; -1 when it is not base64. */
static int b64_decode(const char *s, struct kube_blob *b)
{
	size_t n = strlen(s), pad = 0;
	unsigned char *p;
	int m;

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	if (n % 4)
		return -1;
	p = malloc(n / 4 * 3 + 1);
	if (!p)
		return -1;
	m = EVP_DecodeBlock(p, (const unsigned char *)s, (int)n);
	if (m < 0) {
		free(p);
		return -1;
	}
	if (n && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	b->p = p;
	b->n = (size_t)m - pad;
	return 0;
}

/* A file named in the kubeconfig, resolved against its directory. */
static char *rel_path(const char *kubeconfig, const char *name)
{
	const char *slash = strrchr(kubeconfig, '/');
	char *out;

	if (!name)
		return NULL;
	if (name[0] == '/' || !slash)
		return strdup(name);
	if (asprintf(&out, "%.*s/%s", (int)(slash - kubeconfig), kubeconfig, name) < 0)
		return NULL;
	return out;
}

static char *read_small(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = malloc(65537);
	n = buf ? fread(buf, 1, 65536, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return buf;
}

char *kube_conn_token(const struct kube_conn *k)
{
	if (k->token_file)
		return read_small(k->token_file);
	return dupn(k->token);
}

void kube_conn_free(struct kube_conn *k)
{
	free(k->server);
	free(k->token);
	free(k->token_file);
	free(k->ca_file);
	free(k->ca.p);
	free(k->cert_file);
	free(k->key_file);
	free(k->cert.p);
	free(k->key.p);
	free(k->namespace);
	memset(k, 0, sizeof(*k));
}

int kube_conn_incluster(struct kube_conn *k, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST"),
		   *port = getenv("KUBERNETES_SERVICE_PORT"),
		   *dir = getenv("BPFMESH_SERVICEACCOUNT_DIR");
	char path[600];

	memset(k, 0, sizeof(*k));
	if (!host || !*host || !port || !*port) {
		snprintf(err, errlen,
			 "--kube: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set "
			 "(not in a pod? use --kubeconfig FILE)");
		return -1;
	}
	if (!dir || !*dir)
		dir = KUBE_SA_DIR;
	if (asprintf(&k->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		     port) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/token", dir);
	k->token_file = strdup(path);
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	k->ca_file = strdup(path);
	snprintf(path, sizeof(path), "%s/namespace", dir);
	k->namespace = read_small(path);
	snprintf(k->source, sizeof(k->source), "in-cluster (%s, service account in %s)",
		 k->server, dir);
	{
		char *t = kube_conn_token(k);

		if (!t) {
			snprintf(err, errlen, "--kube: %s/token: %s", dir, strerror(errno));
			kube_conn_free(k);
			return -1;
		}
		free(t);
	}
	return 0;
}

/* The entry of a kubeconfig list (clusters, users, contexts) with this name: its inner map. */
static const struct ynode *named(const struct ynode *root, const char *list, const char *inner,
				 const char *name)
{
	const struct ynode *l = ymap_get(root, list);

	for (int i = 0; name && ynode_is_seq(l) && i < l->n; i++) {
		const char *n = ymap_str(l->items[i], "name");

		if (n && !strcmp(n, name))
			return ymap_get(l->items[i], inner);
	}
	return NULL;
}

/* A PEM given as a file or as base64 data: into *file or *blob; -1 when the data is bad. */
static int pem_field(const char *path, const struct ynode *m, const char *fkey, const char *dkey,
		     char **file, struct kube_blob *blob)
{
	const char *d = ymap_str(m, dkey);

	if (d)
		return b64_decode(d, blob);
	*file = rel_path(path, ymap_str(m, fkey));
	return 0;
}

int kube_conn_kubeconfig(struct kube_conn *k, const char *path, char *err, size_t errlen)
{
	struct yfile yf = {0};
	struct yerror ye = {0};
	const struct ynode *root, *ctx, *cl, *us;
	const char *cur, *server, *what = NULL;
	int rc = -1;

	memset(k, 0, sizeof(*k));
	if (yfile_load(path, &yf, &ye)) {
		snprintf(err, errlen, "%s:%d: %s", path, ye.line, ye.msg);
		return -1;
	}
	root = yf.ndocs ? yf.docs[0].root : NULL;
	cur = ymap_str(root, "current-context");
	ctx = named(root, "contexts", "context", cur);
	if (!cur || !ctx) {
		snprintf(err, errlen, "%s: current-context: %s", path,
			 cur ? "names no context in contexts" : "not set");
		goto out;
	}
	cl = named(root, "clusters", "cluster", ymap_str(ctx, "cluster"));
	us = named(root, "users", "user", ymap_str(ctx, "user"));
	server = ymap_str(cl, "server");
	if (!cl || !server || !*server) {
		snprintf(err, errlen, "%s: context %s: cluster %s: %s", path, cur,
			 ymap_str(ctx, "cluster") ? ymap_str(ctx, "cluster") : "(none)",
			 cl ? "server: not set" : "not in clusters");
		goto out;
	}
	if (ymap_get(us, "exec") || ymap_get(us, "auth-provider")) {
		snprintf(err, errlen,
			 "%s: user %s: %s: credential plugins are not supported (give the agent a "
			 "service account token or a client certificate)",
			 path, ymap_str(ctx, "user"), ymap_get(us, "exec") ? "exec" : "auth-provider");
		goto out;
	}
	k->server = strdup(server);
	while (k->server[0] && k->server[strlen(k->server) - 1] == '/')
		k->server[strlen(k->server) - 1] = 0;
	k->insecure = ymap_bool(cl, "insecure-skip-tls-verify", false);
	k->token = dupn(ymap_str(us, "token"));
	if (!k->token)
		k->token_file = rel_path(path, ymap_str(us, "tokenFile"));
	if (pem_field(path, cl, "certificate-authority", "certificate-authority-data",
		      &k->ca_file, &k->ca))
		what = "certificate-authority-data";
	else if (pem_field(path, us, "client-certificate", "client-certificate-data",
			   &k->cert_file, &k->cert))
		what = "client-certificate-data";
	else if (pem_field(path, us, "client-key", "client-key-data", &k->key_file, &k->key))
		what = "client-key-data";
	if (what) {
		snprintf(err, errlen, "%s: %s: not base64", path, what);
		goto out;
	}
	if ((k->cert_file || k->cert.p) != (k->key_file || k->key.p)) {
		snprintf(err, errlen, "%s: user %s: a client certificate needs its key (and the "
			 "key its certificate)", path, ymap_str(ctx, "user"));
		goto out;
	}
	k->namespace = dupn(ymap_str(ctx, "namespace"));
	snprintf(k->source, sizeof(k->source), "kubeconfig %s, context %s (%s)", path, cur,
		 k->server);
	rc = 0;
out:
	if (rc)
		kube_conn_free(k);
	yfile_free(&yf);
	return rc;
}
