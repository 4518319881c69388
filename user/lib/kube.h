/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kube.h: a watch of the Kubernetes API server, for the agent (`bpfmesh agent --kube` or
 * `--kubeconfig`, loader/agent.c) and the CA service (`bpfmesh ca serve --kube`, pods only,
 * user/cli/ca_serve.c). One thread per kind lists (in chunks) and then watches from the list's
 * resourceVersion, with bookmarks; a 410 Gone lists again and swaps the result in whole, so
 * what the agent holds never has a gap and is never emptied by an outage: while the server is
 * unreachable the last good objects stay, and the kernel keeps routing on them.
 *
 * The agent (agent.c) is told of every change through an eventfd and then takes a snapshot:
 * every object as JSON text (JSON is YAML: the config loader reads it as any file), named
 * "api:Kind/namespace/name". Pods are kept trimmed to what the mesh reads (addresses, labels,
 * readiness, owner, service account, container ports), so 10,000 of them stay small.
 */
#ifndef BM_KUBE_H
#define BM_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kubeconf.h"

struct kube;

struct kube_opts {
	const struct kube_conn *conn; /* copied */
	int notify_fd;		      /* an eventfd, written after each change */
	int absent_retry_ms;	      /* a kind not installed is asked for again this often */
	const char *const *only;      /* NULL: every kind; else these resources ("pods", ...) */
};

/* Starts the watch threads; NULL on failure (errno). */
struct kube *kube_start(const struct kube_opts *o);
void kube_stop(struct kube *k);

struct kube_obj;

struct kube_snap {
	struct kube_obj **v;
	int n;
	uint64_t gen;	 /* changes when any object changes */
	uint64_t rv_min; /* the oldest resourceVersion (as a number) any watched kind has seen */
};

/* Every object held now (references: kube_snap_free releases them). -1 on no memory. */
int kube_snapshot(struct kube *k, struct kube_snap *s);
void kube_snap_free(struct kube_snap *s);
const char *kube_obj_name(const struct kube_obj *o); /* "api:Pod/ns/name" */
const char *kube_obj_json(const struct kube_obj *o, size_t *len);

/* Every kind listed at least once (or found not installed): a config can be applied. */
bool kube_synced(struct kube *k);
/* The change counter (kube_snap.gen of a snapshot taken now), and kube_snap.rv_min with it. */
uint64_t kube_gen(struct kube *k, uint64_t *rv_min);
/* "connected", "syncing", or "disconnected since 2026-12-02T10:00:00Z: why" into buf. */
void kube_status(struct kube *k, char *buf, size_t len);

#endif /* BM_KUBE_H */
