// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * metrics.c: the agent's Prometheus text, from the pinned maps and the config in force.
 * Istio's TCP metrics (istio_tcp_*) with Istio's labels, so Kiali and the Istio Grafana
 * dashboards work unchanged, and bpfmesh_* operational metrics. Called by the agent's
 * /metrics handler (loader/agent.c). The kernel counts by ids (bm_traffic); the labels come
 * from the config here: pod ids are hashes of namespace/name, backends are matched to pods
 * by address.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "htab.h"
#include "metrics.h"

uint32_t metrics_pod_id(const char *ns, const char *name)
{
	char key[512];

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	return rs_hash32(key) | 1; /* never 0: 0 means "not a known pod" */
}

/* One scrape: the config and its workloads by address (built once: a scrape names every
 * series' pods, and a node's config can hold 10,000s of them). */
struct render {
	const struct mesh_config *c;
	struct htab by_addr; /* (address, family) -> workload index, the first in config order */
};

static void addr_key(uint8_t k[HKEY], const uint8_t *addr, uint8_t family)
{
	memset(k, 0, HKEY);
	memcpy(k, addr, 16);
	k[16] = family;
}

static void render_init(struct render *r, const struct mesh_config *c)
{
	memset(r, 0, sizeof(*r));
	r->c = c;
	for (int i = 0; i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];

		for (int a = 0; w->kind != WL_DEPLOYMENT && a < w->naddresses; a++) {
			uint8_t x[16], f, k[HKEY];

			if (rs_parse_addr(w->addresses[a], x, &f))
				continue;
			addr_key(k, x, f);
			if (!h_get(&r->by_addr, k))
				h_put(&r->by_addr, k, i);
		}
	}
}

static const struct workload_obj *pod_by_addr(const struct render *r, const uint8_t *addr,
					      uint8_t family)
{
	uint8_t k[HKEY];
	int *i;

	addr_key(k, addr, family);
	i = h_get((struct htab *)&r->by_addr, k);
	return i ? &r->c->workloads[*i] : NULL;
}

/* The cluster the workloads of this config are in (`agent --cluster-id`); Istio's default. */
static char cluster_id[128] = "Kubernetes";
static char build_tag[64] = "unknown"; /* istio_build's tag: our version (cmd/main.c) */

void metrics_set_cluster_id(const char *id)
{
	snprintf(cluster_id, sizeof(cluster_id), "%s", id && *id ? id : "Kubernetes");
}

void metrics_set_build_tag(const char *tag)
{
	snprintf(build_tag, sizeof(build_tag), "%s", tag && *tag ? tag : "unknown");
}

const char *metrics_cluster_id(void)
{
	return cluster_id;
}

/* Istio's canonical service of a workload (what Kiali groups by): the canonical-name label,
 * else app.kubernetes.io/name, else app, else the workload's name; its revision likewise from
 * canonical-revision, app.kubernetes.io/version, version, else "latest". */
void metrics_canonical(const struct workload_obj *w, const char *wl, const char **name,
		       const char **rev)
{
	static const char *const names[] = {"service.istio.io/canonical-name",
					    "app.kubernetes.io/name", "app"};
	static const char *const revs[] = {"service.istio.io/canonical-revision",
					   "app.kubernetes.io/version", "version"};

	*name = *rev = NULL;
	for (int i = 0; w && i < 3; i++) {
		if (!*name)
			*name = kv_get(&w->labels, names[i]);
		if (!*rev)
			*rev = kv_get(&w->labels, revs[i]);
	}
	if (w && !*name)
		*name = wl;
	if (w && !*rev)
		*rev = "latest";
}

static void canonical_labels(FILE *out, const char *side, const struct workload_obj *w,
			     const char *wl)
{
	const char *name, *rev;
	char label[64];

	metrics_canonical(w, wl, &name, &rev);
	snprintf(label, sizeof(label), "%s_canonical_service", side);
	metrics_put_label(out, label, name, false);
	snprintf(label, sizeof(label), "%s_canonical_revision", side);
	metrics_put_label(out, label, rev, false);
	snprintf(label, sizeof(label), "%s_cluster", side);
	metrics_put_label(out, label, w ? cluster_id : NULL, false);
}

static const char *or_unknown(const char *s)
{
	return s && *s ? s : "unknown";
}

/* Label values are config strings: escape what the text format requires. */
void metrics_put_label(FILE *out, const char *name, const char *val, bool first)
{
	fprintf(out, "%s%s=\"", first ? "" : ",", name);
	for (const char *p = or_unknown(val); *p; p++) {
		if (*p == '\\' || *p == '"')
			fputc('\\', out);
		if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

struct series {
	char labels[2048];
	struct bm_traffic v;
};

/* Istio's principal label: the SPIFFE ID of a workload when the connection is mutual TLS
 * (td set), else unknown. */
static void principal_label(FILE *out, const char *name, const struct workload_obj *w,
			    const char *td)
{
	char id[400];

	if (!td || !w) {
		metrics_put_label(out, name, NULL, false);
		return;
	}
	snprintf(id, sizeof(id), "spiffe://%s/ns/%s/sa/%s", td, w->ns,
		 w->service_account ? w->service_account : "default");
	metrics_put_label(out, name, id, false);
}

void metrics_source_labels(FILE *out, const char *reporter, const struct workload_obj *src,
			   const char *td)
{
	char wl[256] = "";

	if (src)
		config_workload_name(src, wl, sizeof(wl));
	metrics_put_label(out, "reporter", reporter, true);
	metrics_put_label(out, "source_workload", wl, false);
	metrics_put_label(out, "source_workload_namespace", src ? src->ns : NULL, false);
	principal_label(out, "source_principal", src, td);
	metrics_put_label(out, "source_app", src ? kv_get(&src->labels, "app") : NULL, false);
	metrics_put_label(out, "source_version", src ? kv_get(&src->labels, "version") : NULL,
			  false);
	canonical_labels(out, "source", src, wl);
}

void metrics_dest_labels(FILE *out, const char *svc_ns, const char *svc_name,
			 const struct workload_obj *dst, const char *td)
{
	char fq[512] = "", wl[256] = "";

	if (svc_name)
		snprintf(fq, sizeof(fq), "%s.%s.svc.cluster.local", svc_name, svc_ns);
	if (dst)
		config_workload_name(dst, wl, sizeof(wl));
	metrics_put_label(out, "destination_service", fq, false);
	metrics_put_label(out, "destination_service_name", svc_name, false);
	metrics_put_label(out, "destination_service_namespace", svc_ns, false);
	metrics_put_label(out, "destination_workload", wl, false);
	metrics_put_label(out, "destination_workload_namespace", dst ? dst->ns : NULL, false);
	principal_label(out, "destination_principal", dst, td);
	metrics_put_label(out, "destination_app", dst ? kv_get(&dst->labels, "app") : NULL, false);
	metrics_put_label(out, "destination_version", dst ? kv_get(&dst->labels, "version") : NULL,
			  false);
	canonical_labels(out, "destination", dst, wl);
}

/* The backend is a mesh pod of this node (bm_podaddr, written with bm_pod). */
static bool local_mesh_pod(const struct bm_mapfds *f, const struct bm_backend *be)
{
	struct bm_addr_key k = {.family = be->family};
	struct bm_podaddr pa;

	memcpy(k.addr, be->addr, 16);
	return f->podaddr >= 0 && bpf_map_lookup_elem(f->podaddr, &k, &pa) == 0 &&
	       (pa.flags & BM_POD_F_IN_MESH);
}

static struct series *series_add(struct series **v, int *n, int *cap)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 64;
		*v = realloc(*v, *cap * sizeof(**v));
		if (!*v)
			abort();
	}
	memset(&(*v)[*n], 0, sizeof((*v)[*n]));
	return &(*v)[(*n)++];
}

/* The labels of one series of a connection counted at its source. */
static int series_labels(char *buf, size_t len, const char *reporter,
			 const struct workload_obj *src, const char *svc_ns, const char *svc_name,
			 const struct workload_obj *dst, const char *mtd, const char *flags)
{
	FILE *lf = fmemopen(buf, len - 1, "w");

	if (!lf)
		return -1;
	metrics_source_labels(lf, reporter, src, mtd);
	metrics_dest_labels(lf, svc_ns, svc_name, dst, mtd);
	metrics_put_label(lf, "request_protocol", "tcp", false);
	metrics_put_label(lf, "response_flags", flags, false);
	metrics_put_label(lf, "connection_security_policy", mtd ? "mutual_tls" : "none", false);
	fclose(lf);
	/* labels that did not fit would end the line mid-value and spoil the whole scrape:
	 * the series is left out instead (names that long are not Kubernetes names) */
	return strlen(buf) >= len - 2 ? -1 : 0;
}

/*
 * One series per (source pod, service, backend), with its per-CPU values summed. A backend that
 * is a mesh pod of this node is the destination side too: the same connection, seen where it
 * was accepted, is its reporter="destination" series (Istio's destination proxy reports it).
 */
static int collect(const struct bm_mapfds *f, const struct render *r, const char *td,
		   struct series **out, int *capp)
{
	const struct mesh_config *c = r->c;
	int ncpu = libbpf_num_possible_cpus(), n = 0, cap = 0;
	struct bm_traffic_key key, next, *prev = NULL;
	struct bm_traffic *vals;
	struct series *v = NULL;

	if (ncpu <= 0 || f->traffic < 0)
		return 0;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return 0;
	while (bpf_map_get_next_key(f->traffic, prev, &next) == 0) {
		struct bm_name_key nk = {.kind = BM_NAME_SVC};
		struct bm_name nm = {};
		struct bm_backend be;
		const struct workload_obj *src, *dst;
		const char *mtd;
		struct series *s;
		int si;
		bool have_be;
		char svc_ns[128] = "", *svc_name = NULL;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(f->traffic, &key, vals))
			continue;
		s = series_add(&v, &n, &cap);
		si = n - 1; /* v moves as it grows: the source series by index */
		for (int i = 0; i < ncpu; i++) {
			s->v.opened += vals[i].opened;
			s->v.closed += vals[i].closed;
			s->v.bytes_sent += vals[i].bytes_sent;
			s->v.bytes_received += vals[i].bytes_received;
			s->v.connect_failed += vals[i].connect_failed;
		}
		nk.id = key.svc_id;
		if (f->names >= 0 && bpf_map_lookup_elem(f->names, &nk, &nm) == 0) {
			char *slash = strchr(nm.name, '/');

			if (slash) {
				snprintf(svc_ns, sizeof(svc_ns), "%.*s", (int)(slash - nm.name),
					 nm.name);
				svc_name = slash + 1;
			}
		}
		have_be = bpf_map_lookup_elem(f->backend, &key.backend_id, &be) == 0;
		src = config_pod_by_id(c, key.src_pod);
		/* a mesh pod to a tunnelled backend (another node, mTLS not DISABLE): the agents'
		 * mutual TLS; clients outside the mesh never take the tunnel */
		mtd = have_be && (be.flags & BM_BE_F_TUNNEL) && src && config_in_mesh(c, src)
			  ? td
			  : NULL;
		dst = have_be ? pod_by_addr(r, be.addr, be.family) : NULL;
		if (series_labels(s->labels, sizeof(s->labels), "source", src, svc_ns, svc_name, dst,
				  mtd, "-")) {
			n--;
			continue;
		}
		if (s->v.connect_failed) {
			/* as Envoy reports an upstream connect failure: a connection opened and
			 * closed with response flag UF (the client's connect failed) */
			struct series *u = series_add(&v, &n, &cap);

			u->v.opened = u->v.closed = v[si].v.connect_failed;
			if (series_labels(u->labels, sizeof(u->labels), "source", src, svc_ns,
					  svc_name, dst, mtd, "UF"))
				n--;
		}
		if (have_be && dst && local_mesh_pod(f, &be)) {
			struct series *d = series_add(&v, &n, &cap);

			d->v = v[si].v;
			d->v.connect_failed = 0;
			if (series_labels(d->labels, sizeof(d->labels), "destination", src, svc_ns,
					  svc_name, dst, mtd, "-"))
				n--;
		}
	}
	free(vals);
	*out = v;
	*capp = cap;
	return n;
}

/* The Service a destination-side connection to pod w's port was for, as far as the pod can
 * tell: the first Service of its namespace that selects it and sends that port to it. */
static const struct svc_obj *service_of(const struct mesh_config *c, const struct workload_obj *w,
					int port)
{
	for (int i = 0; w && i < c->nservices; i++) {
		const struct svc_obj *s = &c->services[i];

		if (!s->has_selector || !s->selector.n || strcmp(s->ns, w->ns) ||
		    !kv_match(&s->selector, &w->labels))
			continue;
		for (int k = 0; k < s->nports; k++) {
			const struct svc_port *p = &s->ports[k];
			int tp = p->target_port ? p->target_port : p->port;

			if (p->target_port_name)
				for (int j = 0; j < w->nports; j++)
					if (w->ports[j].name &&
					    !strcmp(w->ports[j].name, p->target_port_name))
						tp = w->ports[j].port;
			if (tp == port)
				return s;
		}
	}
	return NULL;
}

/* The agent's own destination-side series (tunnelled connections it delivered), added to v. */
static void dest_series(const struct render *r, const char *td,
			const struct metrics_dest_tcp *dest, int ndest, struct series **v, int *n,
			int *cap)
{
	const struct mesh_config *c = r->c;
	for (int i = 0; i < ndest; i++) {
		uint8_t a[16] = {0}, b[16] = {0};
		const struct workload_obj *src, *dst;
		const struct svc_obj *svc;
		struct series *s;

		memcpy(a, dest[i].src, 16);
		memcpy(b, dest[i].dst, 16);
		src = pod_by_addr(r, a, dest[i].family);
		dst = pod_by_addr(r, b, dest[i].family);
		svc = service_of(c, dst, dest[i].port);
		s = series_add(v, n, cap);
		/* in the source's terms, as bm_traffic counts: what it sent is the request */
		s->v.opened = dest[i].opened;
		s->v.closed = dest[i].closed;
		s->v.bytes_sent = dest[i].received;
		s->v.bytes_received = dest[i].sent;
		if (series_labels(s->labels, sizeof(s->labels), "destination", src,
				  svc ? svc->ns : NULL, svc ? svc->name : NULL, dst, td, "-"))
			(*n)--;
	}
}

/* The kernel's destination-side series (bm_dtraffic: plaintext connections from other nodes
 * to this node's mesh pods), per-CPU values summed, added to v. */
static void kernel_dest_series(const struct bm_mapfds *f, const struct render *r,
			       struct series **v, int *n, int *cap)
{
	const struct mesh_config *c = r->c;
	int ncpu = libbpf_num_possible_cpus();
	struct bm_dtraffic_key key, next, *prev = NULL;
	struct bm_traffic *vals;

	if (ncpu <= 0 || f->dtraffic < 0 || !(vals = calloc(ncpu, sizeof(*vals))))
		return;
	while (bpf_map_get_next_key(f->dtraffic, prev, &next) == 0) {
		const struct workload_obj *src, *dst;
		const struct svc_obj *svc;
		struct series *s;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(f->dtraffic, &key, vals))
			continue;
		src = pod_by_addr(r, key.src_addr, key.family);
		dst = config_pod_by_id(c, key.dst_pod);
		svc = service_of(c, dst, ntohs(key.port));
		s = series_add(v, n, cap);
		for (int i = 0; i < ncpu; i++) {
			s->v.opened += vals[i].opened;
			s->v.closed += vals[i].closed;
			s->v.bytes_sent += vals[i].bytes_sent;
			s->v.bytes_received += vals[i].bytes_received;
		}
		if (series_labels(s->labels, sizeof(s->labels), "destination", src,
				  svc ? svc->ns : NULL, svc ? svc->name : NULL, dst, NULL, "-"))
			(*n)--;
	}
	free(vals);
}

/* Series with the same labels (several backends of one pod, ...) are one in Prometheus. */
static int merge(struct series *v, int n)
{
	struct htab seen = {0};
	int m = 0;

	for (int i = 0; i < n; i++) {
		uint8_t k[HKEY];
		int *at, j;

		h_strkey(k, v[i].labels, NULL, NULL);
		at = h_get(&seen, k);
		if (!at || strcmp(v[*at].labels, v[i].labels)) { /* new (or a hash collision) */
			h_put(&seen, k, m);
			v[m++] = v[i];
			continue;
		}
		j = *at;
		v[j].v.opened += v[i].v.opened;
		v[j].v.closed += v[i].v.closed;
		v[j].v.bytes_sent += v[i].v.bytes_sent;
		v[j].v.bytes_received += v[i].v.bytes_received;
		v[j].v.connect_failed += v[i].v.connect_failed;
	}
	h_free(&seen);
	return m;
}

#define FAMILY(out, name, help) fprintf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)

static void istio_metrics(FILE *out, struct series *v, int n)
{
	FAMILY(out, "istio_tcp_connections_opened_total", "TCP connections opened (Istio).");
	for (int i = 0; i < n; i++)
		fprintf(out, "istio_tcp_connections_opened_total{%s} %llu\n", v[i].labels,
			(unsigned long long)v[i].v.opened);
	FAMILY(out, "istio_tcp_connections_closed_total", "TCP connections closed (Istio).");
	for (int i = 0; i < n; i++)
		fprintf(out, "istio_tcp_connections_closed_total{%s} %llu\n", v[i].labels,
			(unsigned long long)v[i].v.closed);
	/* Istio's meaning: sent is the response (destination to source), received the request;
	 * the kernel counts at the source, so what it received is what the destination sent */
	FAMILY(out, "istio_tcp_sent_bytes_total",
	       "Bytes sent in responses (destination to source) (Istio).");
	for (int i = 0; i < n; i++)
		fprintf(out, "istio_tcp_sent_bytes_total{%s} %llu\n", v[i].labels,
			(unsigned long long)v[i].v.bytes_received);
	FAMILY(out, "istio_tcp_received_bytes_total",
	       "Bytes received in requests (source to destination) (Istio).");
	for (int i = 0; i < n; i++)
		fprintf(out, "istio_tcp_received_bytes_total{%s} %llu\n", v[i].labels,
			(unsigned long long)v[i].v.bytes_sent);
	FAMILY(out, "bpfmesh_tcp_connect_failures_total",
	       "Connects refused or timed out, by source and destination.");
	for (int i = 0; i < n; i++)
		fprintf(out, "bpfmesh_tcp_connect_failures_total{%s} %llu\n", v[i].labels,
			(unsigned long long)v[i].v.connect_failed);
}

/* A hash map's fill: keys walked (bounded by its capacity), over its max_entries. */
static void fill_ratio(FILE *out, const char *name, int fd)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info), n = 0;
	char key[64], next[64];
	void *prev = NULL;

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &ilen) || !info.max_entries ||
	    info.key_size > sizeof(key))
		return;
	while (n < info.max_entries && bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, info.key_size);
		prev = key;
		n++;
	}
	fprintf(out, "bpfmesh_map_fill_ratio{map=\"%s\"} %g\n", name, (double)n / info.max_entries);
}

static void operational_metrics(FILE *out, const struct bm_mapfds *f)
{
	static const char *const ev[BM_ST_MAX] = {
#define STAT_METRIC(id, phrase, metric) [BM_ST_##id] = metric,
	    BM_STATS(STAT_METRIC)
#undef STAT_METRIC
	};
	int ncpu = libbpf_num_possible_cpus();
	struct bm_meta meta = {};
	__u32 zero = 0, key, next, *prev = NULL, ejected = 0;
	__u64 *vals = ncpu > 0 ? calloc(ncpu, sizeof(__u64)) : NULL;

	bpf_map_lookup_elem(f->meta, &zero, &meta);
	fprintf(out,
		"# HELP bpfmesh_config_generations_total Config generations put in force.\n"
		"# TYPE bpfmesh_config_generations_total counter\n"
		"bpfmesh_config_generations_total %llu\n",
		(unsigned long long)meta.generation);
	fprintf(out,
		"# HELP bpfmesh_config_last_apply_success 1 if the last apply succeeded.\n"
		"# TYPE bpfmesh_config_last_apply_success gauge\n"
		"bpfmesh_config_last_apply_success %u\n",
		meta.last_apply_ok);
	fprintf(out,
		"# HELP bpfmesh_map_fill_ratio Entries in use over capacity.\n"
		"# TYPE bpfmesh_map_fill_ratio gauge\n"
		"bpfmesh_map_fill_ratio{map=\"bm_svc\"} %g\n"
		"bpfmesh_map_fill_ratio{map=\"bm_backend\"} %g\n",
		(double)meta.nservices / BM_MAX_SERVICES, (double)meta.nbackends / BM_MAX_BACKENDS);
	fill_ratio(out, "bm_pod", f->pod);
	fill_ratio(out, "bm_policy", f->policy);
	fill_ratio(out, "bm_health", f->health);
	fill_ratio(out, "bm_traffic", f->traffic);
	fill_ratio(out, "bm_dtraffic", f->dtraffic);
	fill_ratio(out, "bm_cpool", f->cpool);
	fill_ratio(out, "bm_accel", f->accel);
	fill_ratio(out, "bm_podaddr", f->podaddr);
	fprintf(out, "# HELP bpfmesh_datapath_events_total Datapath events, by kind.\n"
		     "# TYPE bpfmesh_datapath_events_total counter\n");
	for (__u32 k = 0; vals && k < BM_ST_MAX; k++) {
		__u64 sum = 0;

		if (bpf_map_lookup_elem(f->stats, &k, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			sum += vals[c];
		fprintf(out, "bpfmesh_datapath_events_total{event=\"%s\"} %llu\n",
			ev[k] ? ev[k] : "other", (unsigned long long)sum);
	}
	free(vals);
	while (f->health >= 0 && bpf_map_get_next_key(f->health, prev, &next) == 0) {
		struct bm_health h;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem_flags(f->health, &key, &h, BPF_F_LOCK) == 0 && h.od.ejected)
			ejected++;
	}
	fprintf(out,
		"# HELP bpfmesh_ejected_backends Backends out of rotation now.\n"
		"# TYPE bpfmesh_ejected_backends gauge\nbpfmesh_ejected_backends %u\n",
		ejected);
}

/* Per backend under outlier detection: ejected now, ejections so far, with Istio's names. */
static void ejection_metrics(FILE *out, const struct bm_mapfds *f, const struct render *r)
{
	__u32 key, next, *prev = NULL;
	char *lines = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&lines, &len);

	if (!m)
		return;
	fprintf(out, "# HELP bpfmesh_outlier_ejections_total Ejections of a backend so far.\n"
		     "# TYPE bpfmesh_outlier_ejections_total counter\n");
	fprintf(m, "# HELP bpfmesh_outlier_ejected 1 while a backend is out of rotation.\n"
		   "# TYPE bpfmesh_outlier_ejected gauge\n");
	while (f->health >= 0 && bpf_map_get_next_key(f->health, prev, &next) == 0) {
		const struct workload_obj *w = NULL;
		struct bm_health h;
		struct bm_backend be;
		char wl[256] = "", addr[64] = "";

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem_flags(f->health, &key, &h, BPF_F_LOCK))
			continue;
		if (bpf_map_lookup_elem(f->backend, &key, &be) == 0) {
			w = pod_by_addr(r, be.addr, be.family);
			rs_format_addr(be.addr, be.family, addr, sizeof(addr));
			snprintf(addr + strlen(addr), sizeof(addr) - strlen(addr), ":%u",
				 ntohs(be.port));
		}
		if (w)
			config_workload_name(w, wl, sizeof(wl));
		for (int i = 0; i < 2; i++) {
			FILE *o = i ? m : out;

			fputs(i ? "bpfmesh_outlier_ejected{" : "bpfmesh_outlier_ejections_total{",
			      o);
			metrics_put_label(o, "destination_workload", wl, true);
			metrics_put_label(o, "destination_workload_namespace", w ? w->ns : NULL,
					  false);
			metrics_put_label(o, "destination_version",
					  w ? kv_get(&w->labels, "version") : NULL, false);
			metrics_put_label(o, "backend", addr, false);
			fprintf(o, "} %u\n", i ? h.od.ejected : h.od.ejections_total);
		}
	}
	fclose(m);
	fputs(lines, out);
	free(lines);
}

/* Run counts and run time of each attached program (kernel.bpf_stats_enabled must be 1 for
 * the kernel to count: the agent does not turn it on, it costs every run). */
static void program_metrics(FILE *out, const char *pin_dir)
{
	static const char *const progs[] = {
#define PROG_NAME(name) #name,
	    BM_CGROUP_PROGS(PROG_NAME)
#undef PROG_NAME
	};
	char *run = NULL, *cnt = NULL;
	size_t rl = 0, cl = 0;
	FILE *r = open_memstream(&run, &rl), *n = open_memstream(&cnt, &cl);

	for (size_t i = 0; r && n && pin_dir && i < sizeof(progs) / sizeof(progs[0]); i++) {
		struct bpf_link_info li = {};
		struct bpf_prog_info pi = {};
		__u32 ll = sizeof(li), pl = sizeof(pi);
		char path[700];
		int lfd, pfd;

		snprintf(path, sizeof(path), "%s/link_%s", pin_dir, progs[i]);
		lfd = bpf_obj_get(path);
		if (lfd < 0)
			continue;
		if (bpf_obj_get_info_by_fd(lfd, &li, &ll) == 0 &&
		    (pfd = bpf_prog_get_fd_by_id(li.prog_id)) >= 0) {
			if (bpf_obj_get_info_by_fd(pfd, &pi, &pl) == 0) {
				fprintf(r,
					"bpfmesh_program_run_seconds_total{program=\"%s\"} %.9f\n",
					progs[i], pi.run_time_ns / 1e9);
				fprintf(n, "bpfmesh_program_runs_total{program=\"%s\"} %llu\n",
					progs[i], (unsigned long long)pi.run_cnt);
			}
			close(pfd);
		}
		close(lfd);
	}
	if (r)
		fclose(r);
	if (n)
		fclose(n);
	fprintf(out,
		"# HELP bpfmesh_program_run_seconds_total Time spent in each program "
		"(counted while kernel.bpf_stats_enabled=1).\n"
		"# TYPE bpfmesh_program_run_seconds_total counter\n%s"
		"# HELP bpfmesh_program_runs_total Runs of each program (counted while "
		"kernel.bpf_stats_enabled=1).\n# TYPE bpfmesh_program_runs_total counter\n%s",
		run ? run : "", cnt ? cnt : "");
	free(run);
	free(cnt);
}

int metrics_render(const struct bm_mapfds *f, const struct mesh_config *c, const char *pin_dir,
		   const char *trust_domain, const struct metrics_dest_tcp *dest, int ndest,
		   FILE *out)
{
	struct series *v = NULL;
	struct render r;
	int cap = 0, n;

	render_init(&r, c);
	n = collect(f, &r, trust_domain, &v, &cap);
	dest_series(&r, trust_domain, dest, ndest, &v, &n, &cap);
	kernel_dest_series(f, &r, &v, &n, &cap);
	n = merge(v, n);
	/* Istio's mesh dashboard lists the proxies by this */
	fprintf(out, "# HELP istio_build Istio component build info.\n# TYPE istio_build gauge\n"
		     "istio_build{component=\"proxy\",tag=\"%s\"} 1\n", build_tag);
	istio_metrics(out, v, n);
	operational_metrics(out, f);
	ejection_metrics(out, f, &r);
	program_metrics(out, pin_dir);
	free(v);
	h_free(&r.by_addr);
	return 0;
}
