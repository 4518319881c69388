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
#include "datapath.h"
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
	bool unsure; /* a commit failed: the map may hold other values than these */
};

struct secsync {
	struct bm_mapfds fds;
	struct secsync_opts o;
	uint8_t node_ip[4], node_ip6[16];
	bool have_node_ip, have_node_ip6;
	struct kvset wl, inpod, authz, peer; /* what the maps hold now */
	uint32_t *tunnelled;	 /* backend ids we flagged, to clear them when that changes */
	uint8_t *tunnelled_flag; /* which flag (BM_BE_F_TUNNEL / BM_BE_F_NOV6) */
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

/* cur's entries as key||value records sorted by key (kcmp compares the key at their start),
 * for looking up what an entry holds now. */
static uint8_t *kv_sorted(const struct kvset *cur)
{
	size_t rsz = cur->ksz + cur->vsz;
	uint8_t *r = malloc(cur->n * rsz + 1);

	if (!r)
		abort();
	for (size_t i = 0; i < cur->n; i++) {
		memcpy(r + i * rsz, cur->k + i * cur->ksz, cur->ksz);
		memcpy(r + i * rsz + cur->ksz, cur->v + i * cur->vsz, cur->vsz);
	}
	g_ksz = cur->ksz;
	qsort(r, cur->n, rsz, kcmp);
	return r;
}

/* Write next over what fd holds (cur), delete what only cur has, then next becomes cur. An
 * entry that holds next's value already is not written again: a change to one workload writes
 * its entries only. */
static const uint8_t *g_next_k; /* kv_last's comparator: next's keys */

static int kcmp_pos(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int r = memcmp(g_next_k + x * g_ksz, g_next_k + y * g_ksz, g_ksz);

	return r ? r : (x > y) - (x < y);
}

/* last[i]: entry i of next is the last one of its key (a later one would overwrite it). */
static bool *kv_last(const struct kvset *next)
{
	size_t *pos = malloc(next->n * sizeof(*pos) + 1);
	bool *last = calloc(next->n + 1, sizeof(*last));

	if (!pos || !last)
		abort();
	for (size_t i = 0; i < next->n; i++)
		pos[i] = i;
	g_ksz = next->ksz;
	g_next_k = next->k;
	qsort(pos, next->n, sizeof(*pos), kcmp_pos);
	for (size_t i = 0; i < next->n; i++)
		last[pos[i]] = i + 1 == next->n || memcmp(next->k + pos[i] * next->ksz,
							   next->k + pos[i + 1] * next->ksz,
							   next->ksz);
	free(pos);
	return last;
}

static int kv_commit(int fd, struct kvset *cur, struct kvset *next, const char *map)
{
	size_t rsz = cur->ksz + cur->vsz;
	uint8_t *keys, *now = kv_sorted(cur);
	bool *last = kv_last(next);
	size_t written;
	int err = 0;

	for (written = 0; written < next->n; written++) {
		const uint8_t *k = next->k + written * next->ksz, *v = next->v + written * next->vsz;
		const uint8_t *held;

		if (!last[written])
			continue; /* a later entry of this key is what goes in */
		g_ksz = cur->ksz;
		held = cur->unsure ? NULL : bsearch(k, now, cur->n, rsz, kcmp);
		if (held && !memcmp(held + cur->ksz, v, cur->vsz))
			continue;
		if (dp_put_raw(fd, k, v, BPF_ANY)) {
			err = -errno;
			pr_warn("%s: %s (%zu entries wanted); the rest of it stays as it was", map,
				strerror(errno), next->n);
			break;
		}
	}
	free(now);
	free(last);
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
	if (next->n)
		memcpy(keys, next->k, next->n * next->ksz);
	g_ksz = next->ksz;
	qsort(keys, next->n, next->ksz, kcmp);
	for (size_t i = 0, wrote_all = !err; wrote_all && i < cur->n; i++) {
		const uint8_t *k = cur->k + i * cur->ksz;

		if (bsearch(k, keys, next->n, next->ksz, kcmp))
			continue;
		/* an entry that could not go is still in force: keep it, to delete it next time,
		 * and say the map is not as wanted */
		if (dp_map_del(fd, k, map)) {
			kv_add(next, k, cur->v + i * cur->vsz);
			err = -EIO;
		}
	}
	free(keys);
	free(cur->k);
	free(cur->v);
	*cur = *next;
	cur->unsure = err != 0; /* write everything next time */
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
	ss->have_node_ip6 =
	    ss->have_node_ip && o->node_ip6 && inet_pton(AF_INET6, o->node_ip6, ss->node_ip6) == 1;
	ss->wl.ksz = sizeof(struct bm_wl_key);
	ss->wl.vsz = sizeof(struct bm_wl);
	ss->authz.ksz = sizeof(struct bm_authz_key);
	ss->authz.vsz = sizeof(struct bm_authz);
	ss->inpod.ksz = sizeof(struct bm_inpod_key);
	ss->inpod.vsz = sizeof(struct bm_inpod);
	ss->peer.ksz = sizeof(struct bm_addr_key);
	ss->peer.vsz = sizeof(__u32);
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
	free(ss->inpod.k);
	free(ss->inpod.v);
	free(ss->peer.k);
	free(ss->peer.v);
	free(ss->tunnelled);
	free(ss->tunnelled_flag);
	free(ss);
}

bool secsync_remote(const struct secsync *ss, const struct workload_obj *w)
{
	uint8_t a[4];

	return ss->have_node_ip && w->host_ip && inet_pton(AF_INET, w->host_ip, a) == 1 &&
	       memcmp(a, ss->node_ip, 4) != 0;
}

/* IPv6 is tunnelled too: the agent's outbound listener has an IPv6 address. */
static bool tunnel_v6(const struct secsync *ss)
{
	return ss->o.tunnel && ss->have_node_ip6;
}

bool secsync_tunnelled(const struct secsync *ss, const struct mesh_config *c,
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

/* A mesh client's IPv6 connect to w:port would reach a STRICT pod on another node as
 * plaintext (this node's agent has no IPv6 address to tunnel it from): refused at connect
 * (BM_BE_F_NOV6). */
static bool refuse_v6(const struct secsync *ss, const struct mesh_config *c,
		      const struct workload_obj *w, int port)
{
	return !tunnel_v6(ss) && w && w->kind == WL_POD && config_in_mesh(c, w) &&
	       secsync_remote(ss, w) && sec_mtls_mode(c, ss->o.root_ns, w, port) == MTLS_STRICT;
}

/* Set or clear flag on backend id; -errno when the write failed. */
static int backend_flag(const struct secsync *ss, uint32_t id, uint8_t flag, bool on)
{
	struct bm_backend be;

	if (bpf_map_lookup_elem(ss->fds.backend, &id, &be))
		return 0; /* gone with its config */
	if (!!(be.flags & flag) == on)
		return 0;
	be.flags = on ? be.flags | flag : be.flags & ~flag;
	return dp_put_raw(ss->fds.backend, &id, &be, BPF_ANY) ? -errno : 0;
}

int secsync_backends(struct secsync *ss, struct sync *s, const struct mesh_config *c,
		     const struct rs_table *t)
{
	uint32_t *now = calloc(2 * (t->nbackends + 1), sizeof(*now));
	uint8_t *nowflag = calloc(2 * (t->nbackends + 1), 1);
	struct htab pods = {0};
	size_t nnow = 0;
	int err = 0;

	if (!now || !nowflag)
		abort();
	for (int i = 0; i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];

		for (int a = 0; w->kind == WL_POD && a < w->naddresses; a++) {
			uint8_t k[HKEY] = {}, fam;

			if (!rs_parse_addr(w->addresses[a], k, &fam))
				h_put(&pods, k, i);
		}
	}
	for (int i = 0; i < t->nbackends; i++) {
		const struct rs_backend *b = &t->backends[i];
		const struct workload_obj *w = backend_pod(&pods, c, b);
		uint8_t flag = 0;
		uint32_t id;

		if ((b->family == BM_FAM_V4 || tunnel_v6(ss)) &&
		    secsync_tunnelled(ss, c, w, b->port))
			flag = BM_BE_F_TUNNEL;
		else if (b->family == BM_FAM_V6 && refuse_v6(ss, c, w, b->port))
			flag = BM_BE_F_NOV6;
		if (!flag || !(id = sync_backend_lookup(s, b)))
			continue;
		now[nnow] = id;
		nowflag[nnow++] = flag;
		if (backend_flag(ss, id, flag, true) && !err) {
			err = -errno;
			pr_warn("bm_backend: cannot mark backend %u for mTLS: %s", id,
				strerror(errno));
		}
	}
	/* clear the flags where they are no longer wanted */
	for (size_t i = 0; i < ss->ntunnelled; i++) {
		uint32_t id = ss->tunnelled[i];
		uint8_t flag = ss->tunnelled_flag[i];
		bool still = false;

		for (size_t j = 0; j < nnow && !still; j++)
			still = now[j] == id && nowflag[j] == flag;
		if (!still)
			backend_flag(ss, id, flag, false);
	}
	h_free(&pods);
	free(ss->tunnelled);
	free(ss->tunnelled_flag);
	ss->tunnelled = now;
	ss->tunnelled_flag = nowflag;
	ss->ntunnelled = nnow;
	return err;
}

/* bm_wl entries for every address of remote mesh workload w: port 0 with base flags, and a
 * port entry for each port whose mode differs (portLevelMtls). */
static void wl_entries(struct secsync *ss, struct kvset *out, const struct mesh_config *c,
		       const struct workload_obj *w)
{
	enum mtls_mode base = sec_mtls_mode(c, ss->o.root_ns, w, 0);
	uint32_t pod_id = config_pod_id(w);

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
			v.flags = 0;
			if (ss->o.tunnel && m != MTLS_DISABLE &&
			    (fam == BM_FAM_V4 || tunnel_v6(ss)))
				v.flags |= BM_WL_F_TUNNEL;
			if (m == MTLS_STRICT && fam == BM_FAM_V6 && !tunnel_v6(ss))
				v.flags |= BM_WL_F_NOV6;
			if (!v.flags && p < 0)
				continue; /* a port entry is kept: it overrides port 0's flags */
			k.port = htons(port);
			kv_add(out, &k, &v);
		}
	}
}

/* bm_inpod entries for local workload w: port 0 (its default) and every port whose mode
 * differs; the port 0 entry says whether any port is judged. */
static void inpod_entries(struct secsync *ss, struct kvset *out, const struct mesh_config *c,
			  const struct workload_obj *w)
{
	uint32_t authz = sec_has_policy(c, ss->o.root_ns, w) ? BM_IN_F_AUTHZ : 0;
	enum mtls_mode base = sec_mtls_mode(c, ss->o.root_ns, w, 0);
	struct bm_inpod_key k = {.pod_id = config_pod_id(w)};
	struct bm_inpod v0 = {.flags = authz | (base == MTLS_STRICT ? BM_IN_F_STRICT : 0)};
	size_t first = out->n;
	bool judged = v0.flags != 0;

	for (int p = 0; p < w->nports; p++) {
		int port = w->ports[p].port;
		enum mtls_mode m = sec_mtls_mode(c, ss->o.root_ns, w, port);
		struct bm_inpod v = {.flags = authz | (m == MTLS_STRICT ? BM_IN_F_STRICT : 0)};

		if (m == base)
			continue;
		k.port = htons(port);
		kv_add(out, &k, &v);
		judged |= v.flags != 0;
	}
	if (!judged) {
		out->n = first; /* nothing judged: no entries at all */
		return;
	}
	v0.flags |= BM_IN_F_JUDGED;
	k.port = 0;
	kv_add(out, &k, &v0);
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
		dp_map_put_changed(ss->fds.names, &nk, &nv, sizeof(nv), "bm_names");
	return nk.id;
}

static void authz_put(struct secsync *ss, struct kvset *out, uint32_t pod_id, int port,
		      uint32_t src_pod, const uint8_t ip[16], int len, const struct sec_decision *d)
{
	struct bm_authz_key k = {
	    .prefixlen = BM_AUTHZ_FIXED_BITS + len, .pod_id = pod_id, .src_pod = src_pod};
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
 * plaintext peer the kernel does not vouch for (src_pod 0); then, for each local mesh pod the
 * kernel attests by its cgroup (bm_attest), entries of its own pod id: its addresses with its
 * identity, and any other address it may use (link-local) with its identity and no known
 * address, as Istio judges a peer whose address matches no ipBlock. */
static void authz_entries(struct secsync *ss, struct kvset *out, const struct mesh_config *c,
			  const struct workload_obj *w, const struct workload_obj *const *local,
			  int nlocal)
{
	static const uint8_t any[16];
	uint32_t pod_id = config_pod_id(w);
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
			authz_put(ss, out, pod_id, port, 0, pre[i].ip, pre[i].len, &d);
		}
		for (int l = 0; l < nlocal; l++) {
			const struct workload_obj *src = local[l];
			uint32_t src_id = config_pod_id(src);
			char principal[320];
			struct sec_peer peer = {.principal = principal, .ns = src->ns};

			if (!config_in_mesh(c, src))
				continue;
			snprintf(principal, sizeof(principal), "%s/ns/%s/sa/%s", ss->o.trust_domain,
				 src->ns, src->service_account ? src->service_account : "default");
			sec_authorize(c, ss->o.root_ns, w, port, &peer, &d); /* ip_len 0 */
			authz_put(ss, out, pod_id, port, src_id, any, 0, &d);
			peer.ip_len = 128;
			for (int a = 0; a < src->naddresses; a++) {
				if (!peer_ip(src->addresses[a], peer.ip))
					continue;
				sec_authorize(c, ss->o.root_ns, w, port, &peer, &d);
				authz_put(ss, out, pod_id, port, src_id, peer.ip, 128, &d);
			}
		}
	}
	free(ports);
	free(pre);
}

/* bm_peer: the address of every node that runs pods of the config, and ours. */
static void peer_entries(struct secsync *ss, struct kvset *out, const struct mesh_config *c)
{
	__u32 one = 1;
	struct htab seen = {0};

	for (int i = -1; i < c->nworkloads; i++) {
		const char *ip = i < 0 ? ss->o.node_ip : c->workloads[i].host_ip;
		uint8_t k[HKEY] = {}, fam;
		struct bm_addr_key ak = {};

		if (!ip || (i >= 0 && c->workloads[i].kind != WL_POD) ||
		    rs_parse_addr(ip, k, &fam) || h_get(&seen, k))
			continue;
		h_put(&seen, k, 1);
		memcpy(ak.addr, k, 16);
		ak.family = fam;
		kv_add(out, &ak, &one);
	}
	h_free(&seen);
}

static uint64_t local_hash(const struct workload_obj *const *local, int n)
{
	uint64_t h = 1469598103934665603ULL;

	for (int i = 0; i < n; i++)
		h = (h ^ (uintptr_t)local[i]) * 1099511628211ULL;
	return h ^ (uint64_t)n;
}

/* bm_node: this node's address, and which of the agent's listeners the kernel may send to. */
static int node_put(struct secsync *ss)
{
	struct bm_node node = {.outbound_port = htons(BM_PORT_OUTBOUND),
			       .l7_port = htons(BM_PORT_HTTP)};
	__u32 zero = 0;

	if (ss->have_node_ip)
		memcpy(node.addr4, ss->node_ip, 4);
	if (ss->o.tunnel && ss->have_node_ip)
		node.flags |= BM_NODE_F_TUNNEL;
	if (tunnel_v6(ss)) {
		memcpy(node.addr6, ss->node_ip6, 16);
		node.flags |= BM_NODE_F_TUNNEL6;
	}
	if (ss->o.l7 && ss->have_node_ip)
		node.flags |= BM_NODE_F_L7;
	if (ss->fds.node >= 0 &&
	    dp_map_put_changed(ss->fds.node, &zero, &node, sizeof(node), "bm_node")) {
		int err = -EIO;

		pr_warn("bm_node: %s: the tunnel and HTTP path flags are not in force",
			strerror(errno));
		return err;
	}
	return 0;
}

int secsync_stop_l7(struct secsync *ss)
{
	if (!ss || !ss->o.l7)
		return 0;
	ss->o.l7 = false;
	return node_put(ss);
}

int secsync_workloads(struct secsync *ss, const struct mesh_config *c, uint64_t config_gen,
		      const struct workload_obj *const *local, int nlocal)
{
	struct kvset wl = {.ksz = ss->wl.ksz, .vsz = ss->wl.vsz};
	struct kvset in = {.ksz = ss->inpod.ksz, .vsz = ss->inpod.vsz};
	struct kvset az = {.ksz = ss->authz.ksz, .vsz = ss->authz.vsz};
	struct kvset pe = {.ksz = ss->peer.ksz, .vsz = ss->peer.vsz};
	uint64_t lh = local_hash(local, nlocal);
	int err = 0;

	if (ss->done_once && config_gen == ss->last_gen && lh == ss->last_local)
		return 0;
	err = node_put(ss);
	for (int i = 0; i < nlocal; i++) {
		const struct workload_obj *w = local[i];

		if (sec_has_policy(c, ss->o.root_ns, w))
			authz_entries(ss, &az, c, w, local, nlocal);
		inpod_entries(ss, &in, c, w);
	}
	for (int i = 0; i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];

		if (w->kind == WL_POD && config_in_mesh(c, w) && secsync_remote(ss, w))
			wl_entries(ss, &wl, c, w);
	}
	peer_entries(ss, &pe, c);
	/* policy first, then the flags that send traffic to it: a pod is never marked STRICT or
	 * under policy before its verdicts are in */
	if (!err)
		err = kv_commit(ss->fds.authz, &ss->authz, &az, "bm_authz");
	if (!err)
		err = kv_commit(ss->fds.inpod, &ss->inpod, &in, "bm_inpod");
	if (!err)
		err = kv_commit(ss->fds.wl, &ss->wl, &wl, "bm_wl");
	if (!err)
		err = kv_commit(ss->fds.peer, &ss->peer, &pe, "bm_peer");
	free(wl.k);
	free(wl.v);
	free(in.k);
	free(in.v);
	free(az.k);
	free(az.v);
	free(pe.k);
	free(pe.v);
	if (!err) {
		ss->done_once = true;
		ss->last_gen = config_gen;
		ss->last_local = lh;
	}
	return err;
}
