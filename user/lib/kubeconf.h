/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kubeconf.h: where the Kubernetes API server is and how to authenticate to it, as kubectl
 * reads it: in-cluster (`bpfmesh agent --kube`: KUBERNETES_SERVICE_HOST/PORT and the service
 * account's token and CA) or a kubeconfig file (`--kubeconfig FILE`: its current context).
 * Caller: the agent (agent.c), which hands the result to the watcher (kube.h).
 */
#ifndef BM_KUBECONF_H
#define BM_KUBECONF_H

#include <stdbool.h>
#include <stddef.h>

/* The service account's files in a pod (BPFMESH_SERVICEACCOUNT_DIR overrides, for tests). */
#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kube_blob {
	unsigned char *p;
	size_t n;
};

struct kube_conn {
	char *server;	  /* "https://host:port", no trailing slash */
	char *token;	  /* a bearer token given inline, or NULL */
	char *token_file; /* re-read before each request (the kubelet rotates it), or NULL */
	char *ca_file;	  /* PEM file, or NULL */
	struct kube_blob ca;		/* PEM data (certificate-authority-data) */
	char *cert_file, *key_file;	/* client certificate and key files, or NULL */
	struct kube_blob cert, key;	/* their PEM data (client-*-data) */
	bool insecure;			/* insecure-skip-tls-verify: true */
	char *namespace;		/* the context's namespace, or NULL */
	char source[512];		/* "in-cluster" or "kubeconfig FILE context NAME" */
};

/* 0, or -1 with a message naming the file and field in err. */
int kube_conn_incluster(struct kube_conn *k, char *err, size_t errlen);
int kube_conn_kubeconfig(struct kube_conn *k, const char *path, char *err, size_t errlen);
void kube_conn_free(struct kube_conn *k);

/* The bearer token to send now (inline, or read from token_file), or NULL: a heap string. */
char *kube_conn_token(const struct kube_conn *k);

#endif /* BM_KUBECONF_H */
