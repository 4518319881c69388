// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * secsync.c: see secsync.h. Called by the agent (loader/agent.c). Maps are rewritten by
 * difference: new entries are written over the old, then entries no longer wanted deleted,
 * so a connect during an update sees the old or the new verdict for each key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include "bpfmesh.h"
#include "htab.h"
#include "log.h"
#include "metrics.h"
#include "secsync.h"
#include "security.h"

/* A growable array of fixed-size map keys and values, kept sorted for the delete pass. */
struct kvset {
	size_t ksz, vsz, n, cap;
	uint8_t *k, *v;
};

struct secsync {
	struct bm_mapfds fds;
	struct secsync_opts o;
	uint8_t node_ip[4];
	bool have_node_ip;
	struct kvset wl, authz; /* what the maps hold now */
	uint32_t *tunnelled;	/* backend ids we flagged, to clear them when that changes */
	size_t ntunnelled;
	uint64_t last_gen, last_local;
	bool done_once;
};

static void kv_add(struct kvset *s, const void *k, const void *v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->k = realloc(s->k, s->cap * s->ksz);
		s->v = realloc(s->v, s->cap * s->vsz);
		if (!s->k || !s->v)
			abort();
	}
	memcpy(s->k + s->n * s->ksz, k, s->ksz);
	memcpy(s->v + s->n * s->vsz, v, s->vsz);
	s->n++;
}

static size_t g_ksz; /* qsort/bsearch comparator's key size (single-threaded agent) */
static int kcmp(const void *a, const void *b)
{
	return memcmp(a, b, g_ksz);
}

/* Write next over what fd holds (cur), delete what only cur has, then next becomes cur. */
static int kv_commit(int fd, struct kvset *cur, struct kvset *next, const char *map)
{
	uint8_t *keys;
	size_t written;
	int err = 0;

	for (written = 0; written < next->n; written++)
		if (bpf_map_update_elem(fd, next->k + written * next->ksz,
					next->v + written * next->vsz, BPF_ANY)) {
			err = -errno;
			pr_warn("%s: %s (%zu entries wanted); the rest of it stays as it was", map,
				strerror(errno), next->n);
			break;
		}
	if (err) {
		/* the map holds the old entries and what was written: remember all of them, so
		 * a later commit deletes what is no longer wanted */
		next->n = written;
		for (size_t i = 0; i < cur->n; i++)
			kv_add(next, cur->k + i * cur->ksz, cur->v + i * cur->vsz);
	}
	/* sorted copy of next's keys for the membership test */
	keys = malloc(next->n * next->ksz + 1);
	if (!keys)
		abort();
	memcpy(keys, next->k, next->n * next->ksz);
	g_ksz = next->ksz;
	qsort(keys, next->n, next->ksz, kcmp);
	for (size_t i = 0; !err && i < cur->n; i++) {
		const uint8_t *k = cur->k + i * cur->ksz;

		if (!bsearch(k, keys, next->n, next->ksz, kcmp))
			bpf_map_delete_elem(fd, k);
	}
	free(keys);
	free(cur->k);
	free(cur->v);
	*cur = *next;
	memset(next, 0, sizeof(*next));
	next->ksz = cur->ksz;
	next->vsz = cur->vsz;
	return err;
}

struct secsync *secsync_new(const struct bm_mapfds *fds, const struct secsync_opts *o)
{
	struct secsync *ss = calloc(1, sizeof(*ss));

	if (!ss)
		return NULL;
	ss->fds = *fds;
	ss->o = *o;
	ss->have_node_ip = o->node_ip && inet_pton(AF_INET, o->node_ip, ss->node_ip) == 1;
	ss->wl.ksz = sizeof(struct bm_wl_key);
	ss->wl.vsz = sizeof(struct bm_wl);
	ss->authz.ksz = sizeof(struct bm_authz_key);
	ss->authz.vsz = sizeof(struct bm_authz);
	return ss;
}

void secsync_free(struct secsync *ss)
{
	if (!ss)
		return;
	free(ss->wl.k);
	free(ss->wl.v);
	free(ss->authz.k);
	free(ss->authz.v);
	free(ss->tunnelled);
	free(ss);
}

bool secsync_remote(const struct secsync *ss, const struct workload_obj *w)
{
	uint8_t a[4];

	return ss->have_node_ip && w->host_ip && inet_pton(AF_INET, w->host_ip, a) == 1 &&
	       memcmp(a, ss->node_ip, 4) != 0;
}

/* Does a mesh client reach w:port through the tunnel? */
static bool wants_tunnel(const struct secsync *ss, const struct mesh_config *c,
			 const struct workload_obj *w, int port)
{
	return ss->o.tunnel && w && w->kind == WL_POD && config_in_mesh(c, w) &&
	       secsync_remote(ss, w) && sec_mtls_mode(c, ss->o.root_ns, w, port) != MTLS_DISABLE;
}

/* The Pod behind a backend: its own workload, or for a WorkloadEntry that names a pod's
 * address, that pod (the pod's PeerAuthentication and node decide). */
static const struct workload_obj *backend_pod(struct htab *pods, const struct mesh_config *c,
					      const struct rs_backend *b)
{
	uint8_t k[HKEY] = {};
	int *i;

	if (!b->wl || b->wl->kind == WL_POD)
		return b->wl;
	memcpy(k, b->addr, 16);
	i = h_get(pods, k);
	return i ? &c->workloads[*i] : b->wl;
}

void secsync_backends(struct secsync *ss, struct sync *s, const struct mesh_config *c,
		      const struct rs_table *t)
{
	uint32_t *now = calloc(t->nbackends + 1, sizeof(*now));
	struct htab pods = {0};
	size_t nnow = 0;

	if (!now)
		abort();
	for (int i = 0; ss->o.tunnel && i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];

		for (int a = 0; w->kind == WL_POD && a < w->naddresses; a++) {
			uint8_t k[HKEY] = {}, fam;

			if (!rs_parse_addr(w->addresses[a], k, &fam))
				h_put(&pods, k, i);
		}
	}
	for (int i = 0; ss->o.tunnel && i < t->nbackends; i++) {
		const struct rs_backend *b = &t->backends[i];
		bool want = b->family == BM_FAM_V4 &&
			    wants_tunnel(ss, c, backend_pod(&pods, c, b), b->port);
		uint32_t id = want ? sync_backend_lookup(s, b) : 0;
		struct bm_backend be;

		if (!id || bpf_map_lookup_elem(ss->fds.backend, &id, &be))
			continue;
		now[nnow++] = id;
		if (!(be.flags & BM_BE_F_TUNNEL)) {
			be.flags |= BM_BE_F_TUNNEL;
			bpf_map_update_elem(ss->fds.backend, &id, &be, BPF_ANY);
		}
	}
	/* clear the flag where it is no longer wanted */
	for (size_t i = 0; i < ss->ntunnelled; i++) {
		uint32_t id = ss->tunnelled[i];
		struct bm_backend be;
		bool still = false;

		for (size_t j = 0; j < nnow && !still; j++)
			still = now[j] == id;
		if (still || bpf_map_lookup_elem(ss->fds.backend, &id, &be) ||
		    !(be.flags & BM_BE_F_TUNNEL))
			continue;
		be.flags &= ~BM_BE_F_TUNNEL;
		bpf_map_update_elem(ss->fds.backend, &id, &be, BPF_ANY);
	}
	h_free(&pods);
	free(ss->tunnelled);
	ss->tunnelled = now;
	ss->ntunnelled = nnow;
}

/* bm_wl entries for every address of w: port 0 with base flags, and a port entry for each
 * port whose mode differs (portLevelMtls). */
static void wl_entries(struct secsync *ss, struct kvset *out, const struct mesh_config *c,
		       const struct workload_obj *w, uint32_t flags, bool local)
{
	enum mtls_mode base = sec_mtls_mode(c, ss->o.root_ns, w, 0);
	uint32_t pod_id = metrics_pod_id(w->ns, w->name);

	for (int a = 0; a < w->naddresses; a++) {
		struct bm_wl_key k = {};
		struct bm_wl v = {.pod_id = pod_id};
		uint8_t fam;

		if (rs_parse_addr(w->addresses[a], k.addr, &fam))
			continue;
		k.family = fam;
		for (int p = -1; p < w->nports; p++) {
			int port = p < 0 ? 0 : w->ports[p].port;
			enum mtls_mode m = p < 0 ? base : sec_mtls_mode(c, ss->o.root_ns, w, port);

			if (p >= 0 && m == base)
				continue;
			v.flags = flags;
			if (local && m == MTLS_STRICT)
				v.flags |= BM_WL_F_STRICT;
			if (!local && m != MTLS_DISABLE && fam == BM_FAM_V4)
				v.flags |= BM_WL_F_TUNNEL;
			if (!v.flags && p < 0)
				continue; /* a port entry is kept: it overrides port 0's flags */
			k.port = htons(port);
			kv_add(out, &k, &v);
		}
	}
}

static uint32_t policy_id(struct secsync *ss, const struct ap_obj *p)
{
	struct bm_name_key nk = {.kind = BM_NAME_POLICY};
	struct bm_name nv = {};
	char buf[BM_NAME_LEN];

	if (!p)
		return 0;
	sec_policy_name(p, buf, sizeof(buf));
	nk.id = metrics_pod_id("authz", buf);
	snprintf(nv.name, sizeof(nv.name), "%s", buf);
	if (ss->fds.names >= 0)
		bpf_map_update_elem(ss->fds.names, &nk, &nv, BPF_ANY);
	return nk.id;
}

static void authz_put(struct secsync *ss, struct kvset *out, uint32_t pod_id, int port,
		      const uint8_t ip[16], int len, const struct sec_decision *d)
{
	struct bm_authz_key k = {.prefixlen = BM_AUTHZ_FIXED_BITS + len, .pod_id = pod_id};
	struct bm_authz v = {.verdict = d->verdict == SEC_DENY ? BM_AUTHZ_DENY : BM_AUTHZ_ALLOW};

	k.port = htons(port);
	memcpy(k.addr, ip, 16);
	v.policy_id = policy_id(ss, d->by);
	kv_add(out, &k, &v);
}

/* An address as the 16-byte v4-mapped form security.h evaluates. */
static bool peer_ip(const char *s, uint8_t out[16])
{
	uint8_t a[16], fam;

	if (rs_parse_addr(s, a, &fam))
		return false;
	memset(out, 0, 16);
	if (fam == BM_FAM_V4) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, a, 4);
	} else {
		memcpy(out, a, 16);
	}
	return true;
}

/* bm_authz for local workload w: every (port, prefix) the policies name, evaluated for a
 * plaintext peer; then each local mesh pod's own addresses with its identity, which the
 * kernel attests for same-node connects. */
static void authz_entries(struct secsync *ss, struct kvset *out, const struct mesh_config *c,
			  const struct workload_obj *w, const struct workload_obj *const *local,
			  int nlocal)
{
	uint32_t pod_id = metrics_pod_id(w->ns, w->name);
	struct sec_prefix *pre = NULL;
	int *ports = NULL, nports, npre;

	nports = sec_policy_ports(c, ss->o.root_ns, w, &ports);
	npre = sec_policy_prefixes(c, ss->o.root_ns, w, &pre);
	for (int pi = -1; pi < nports; pi++) {
		int port = pi < 0 ? 0 : ports[pi];
		struct sec_decision d;

		for (int i = 0; i < npre; i++) {
			struct sec_peer peer = {.ip_len = pre[i].len};

			memcpy(peer.ip, pre[i].ip, 16);
			sec_authorize(c, ss->o.root_ns, w, port, &peer, &d);
			authz_put(ss, out, pod_id, port, pre[i].ip, pre[i].len, &d);
		}
		for (int l = 0; l < nlocal; l++) {
			const struct workload_obj *src = local[l];
			char principal[320];
			struct sec_peer peer = {
			    .principal = principal, .ns = src->ns, .ip_len = 128};

			if (!config_in_mesh(c, src))
				continue;
			snprintf(principal, sizeof(principal), "%s/ns/%s/sa/%s", ss->o.trust_domain,
				 src->ns, src->service_account ? src->service_account : "default");
			for (int a = 0; a < src->naddresses; a++) {
				if (!peer_ip(src->addresses[a], peer.ip))
					continue;
				sec_authorize(c, ss->o.root_ns, w, port, &peer, &d);
				authz_put(ss, out, pod_id, port, peer.ip, 128, &d);
			}
		}
	}
	free(ports);
	free(pre);
}

static uint64_t local_hash(const struct workload_obj *const *local, int n)
{
	uint64_t h = 1469598103934665603ULL;

	for (int i = 0; i < n; i++)
		h = (h ^ (uintptr_t)local[i]) * 1099511628211ULL;
	return h ^ (uint64_t)n;
}

int secsync_workloads(struct secsync *ss, const struct mesh_config *c, uint64_t config_gen,
		      const struct workload_obj *const *local, int nlocal)
{
	struct kvset wl = {.ksz = ss->wl.ksz, .vsz = ss->wl.vsz};
	struct kvset az = {.ksz = ss->authz.ksz, .vsz = ss->authz.vsz};
	struct bm_node node = {.outbound_port = htons(BM_PORT_OUTBOUND)};
	uint64_t lh = local_hash(local, nlocal);
	__u32 zero = 0;
	int err;

	if (ss->done_once && config_gen == ss->last_gen && lh == ss->last_local)
		return 0;
	if (ss->have_node_ip)
		memcpy(node.addr4, ss->node_ip, 4);
	if (ss->o.tunnel && ss->have_node_ip)
		node.flags |= BM_NODE_F_TUNNEL;
	if (ss->fds.node >= 0)
		bpf_map_update_elem(ss->fds.node, &zero, &node, BPF_ANY);
	for (int i = 0; i < nlocal; i++) {
		const struct workload_obj *w = local[i];
		uint32_t flags = config_in_mesh(c, w) ? BM_WL_F_MESH : 0;

		if (sec_has_policy(c, ss->o.root_ns, w)) {
			flags |= BM_WL_F_AUTHZ;
			authz_entries(ss, &az, c, w, local, nlocal);
		}
		wl_entries(ss, &wl, c, w, flags, true);
	}
	for (int i = 0; ss->o.tunnel && i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];

		if (w->kind == WL_POD && config_in_mesh(c, w) && secsync_remote(ss, w))
			wl_entries(ss, &wl, c, w, 0, false);
	}
	err = kv_commit(ss->fds.wl, &ss->wl, &wl, "bm_wl");
	if (!err)
		err = kv_commit(ss->fds.authz, &ss->authz, &az, "bm_authz");
	free(wl.k);
	free(wl.v);
	free(az.k);
	free(az.v);
	if (!err) {
		ss->done_once = true;
		ss->last_gen = config_gen;
		ss->last_local = lh;
	}
	return err;
}
