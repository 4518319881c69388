// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * graph.c: `bpfmesh graph --node NAME|--all --format dot|json|svg [--window SECONDS]`, the
 * service graph, like Kiali's: workloads as nodes, calls as edges (source workload ->
 * destination workload, through a service) with connections, connections per second over the
 * window, error ratio, the destination version, and an mTLS mark. Built from the live kernel
 * counters (bm_traffic) of one node or of every node on this machine, names from bm_names.
 * svg is Graphviz's rendering of the dot output.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "pins.h"
#include "args.h"
#include "cli.h"

struct edge {
	char src[2 * BM_NAME_LEN]; /* namespace/workload */
	char dst[2 * BM_NAME_LEN];
	char svc[BM_NAME_LEN];
	char version[BM_NAME_LEN];
	__u64 opened, failed, opened0; /* opened0: at the start of the window */
	int tunnelled, plain;	       /* series seen through the mTLS tunnel, and not */
};

struct graph {
	struct edge *e;
	int n, cap;
};

static void part(const char *name, int idx, char *out, size_t len)
{
	const char *p = name;

	for (int i = 0; i < idx && p; i++) {
		p = strchr(p, '/');
		if (p)
			p++;
	}
	if (!p || !*p) {
		snprintf(out, len, "unknown");
		return;
	}
	snprintf(out, len, "%.*s", (int)strcspn(p, "/"), p);
}

static void lookup_name(int fd, __u32 kind, __u32 id, char *out, size_t len)
{
	struct bm_name_key k = {.kind = kind, .id = id};
	struct bm_name v = {};

	if (!id || bpf_map_lookup_elem(fd, &k, &v))
		snprintf(out, len, "unknown/unknown/unknown/unknown");
	else
		snprintf(out, len, "%.*s", BM_NAME_LEN, v.name);
}

static struct edge *edge_get(struct graph *g, const char *src, const char *dst, const char *svc,
			     const char *ver)
{
	for (int i = 0; i < g->n; i++)
		if (!strcmp(g->e[i].src, src) && !strcmp(g->e[i].dst, dst) &&
		    !strcmp(g->e[i].svc, svc) && !strcmp(g->e[i].version, ver))
			return &g->e[i];
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 32;
		g->e = realloc(g->e, g->cap * sizeof(*g->e));
		if (!g->e)
			abort();
	}
	memset(&g->e[g->n], 0, sizeof(g->e[0]));
	snprintf(g->e[g->n].src, sizeof(g->e[0].src), "%s", src);
	snprintf(g->e[g->n].dst, sizeof(g->e[0].dst), "%s", dst);
	snprintf(g->e[g->n].svc, sizeof(g->e[0].svc), "%s", svc);
	snprintf(g->e[g->n].version, sizeof(g->e[0].version), "%s", ver);
	return &g->e[g->n++];
}

/* The pod ids of this node's mesh pods (bm_pod): only their connects take the tunnel. */
static int mesh_pods(const char *pin_dir, __u32 **ids)
{
	__u64 key, next, *prev = NULL;
	char path[700];
	int fd, n = 0;

	*ids = NULL;
	snprintf(path, sizeof(path), "%s/bm_pod", pin_dir);
	fd = bpf_obj_get(path);
	while (fd >= 0 && bpf_map_get_next_key(fd, prev, &next) == 0) {
		struct bm_pod p;
		__u32 *nv;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &p) || !(p.flags & BM_POD_F_IN_MESH))
			continue;
		nv = realloc(*ids, (n + 1) * sizeof(**ids));
		if (!nv)
			break;
		*ids = nv;
		(*ids)[n++] = p.pod_id;
	}
	if (fd >= 0)
		close(fd);
	return n;
}

/* Did this series go through the mTLS tunnel? A mesh pod's connect to a backend flagged for
 * it (on another node, mTLS not DISABLE), as connect4 decides. */
static bool series_tunnelled(int bfd, const struct bm_traffic_key *k, const __u32 *mesh, int nmesh)
{
	struct bm_backend be;
	bool in_mesh = false;

	for (int i = 0; i < nmesh && !in_mesh; i++)
		in_mesh = mesh[i] == k->src_pod;
	return in_mesh && bfd >= 0 && bpf_map_lookup_elem(bfd, &k->backend_id, &be) == 0 &&
	       (be.flags & BM_BE_F_TUNNEL);
}

/* Add one node's counters to g; `first` marks the start-of-window sample. */
static int add_node(struct graph *g, const char *pin_dir, bool first)
{
	struct bm_traffic_key key, next, *prev = NULL;
	int ncpu = libbpf_num_possible_cpus(), tfd, nfd, bfd, nmesh;
	char path[700];
	struct bm_traffic *vals;
	__u32 *mesh;

	snprintf(path, sizeof(path), "%s/bm_traffic", pin_dir);
	tfd = bpf_obj_get(path);
	snprintf(path, sizeof(path), "%s/bm_names", pin_dir);
	nfd = bpf_obj_get(path);
	snprintf(path, sizeof(path), "%s/bm_backend", pin_dir);
	bfd = bpf_obj_get(path);
	vals = ncpu > 0 ? calloc(ncpu, sizeof(*vals)) : NULL;
	if (tfd < 0 || nfd < 0 || !vals) {
		free(vals);
		if (tfd >= 0)
			close(tfd);
		if (nfd >= 0)
			close(nfd);
		if (bfd >= 0)
			close(bfd);
		return -1;
	}
	nmesh = mesh_pods(pin_dir, &mesh);
	while (bpf_map_get_next_key(tfd, prev, &next) == 0) {
		char sn[BM_NAME_LEN + 8], dn[BM_NAME_LEN + 8], vn[BM_NAME_LEN + 8];
		char src[2 * BM_NAME_LEN], dst[2 * BM_NAME_LEN], a[BM_NAME_LEN], b[BM_NAME_LEN],
		    ver[BM_NAME_LEN];
		__u64 opened = 0, failed = 0;
		struct edge *e;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(tfd, &key, vals))
			continue;
		for (int i = 0; i < ncpu; i++) {
			opened += vals[i].opened;
			failed += vals[i].connect_failed;
		}
		lookup_name(nfd, BM_NAME_POD, key.src_pod, sn, sizeof(sn));
		lookup_name(nfd, BM_NAME_BACKEND, key.backend_id, dn, sizeof(dn));
		lookup_name(nfd, BM_NAME_SVC, key.svc_id, vn, sizeof(vn));
		part(sn, 0, a, sizeof(a));
		part(sn, 1, b, sizeof(b));
		snprintf(src, sizeof(src), "%s/%s", a, b);
		part(dn, 0, a, sizeof(a));
		part(dn, 1, b, sizeof(b));
		snprintf(dst, sizeof(dst), "%s/%s", a, b);
		part(dn, 3, ver, sizeof(ver));
		e = edge_get(g, src, dst, vn[0] ? vn : "unknown", ver);
		if (!first && series_tunnelled(bfd, &key, mesh, nmesh))
			e->tunnelled++;
		else if (!first)
			e->plain++;
		if (first)
			e->opened0 += opened;
		else {
			e->opened += opened;
			e->failed += failed;
		}
	}
	free(vals);
	free(mesh);
	close(tfd);
	close(nfd);
	if (bfd >= 0)
		close(bfd);
	return 0;
}

/* An edge is mTLS when every connection on it took the tunnel. */
static bool edge_mtls(const struct edge *e)
{
	return e->tunnelled > 0 && e->plain == 0;
}

/* Every node's pin directory on this machine: agents' run dirs name their bpffs. */
static int all_pin_dirs(char dirs[][600], int max)
{
	DIR *d = opendir("/run/bpfmesh");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)) && n < max) {
		char buf[256];
		const char *bpffs;

		if (de->d_name[0] == '.' || !strcmp(de->d_name, "lab"))
			continue;
		bpffs = agent_bpffs(de->d_name, buf, sizeof(buf));
		if (dp_pin_dir(dirs[n], 600, bpffs ? bpffs : "/sys/fs/bpf", de->d_name) == 0 &&
		    access(dirs[n], F_OK) == 0)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

static void print_json(const struct graph *g, double window)
{
	printf("{\"nodes\":[");
	for (int i = 0, first = 1; i < g->n; i++) {
		for (int side = 0; side < 2; side++) {
			const char *w = side ? g->e[i].dst : g->e[i].src;
			bool seen = false;

			for (int j = 0; j < i && !seen; j++)
				seen = !strcmp(g->e[j].src, w) || !strcmp(g->e[j].dst, w);
			if (side && !strcmp(g->e[i].src, w))
				seen = true;
			if (seen)
				continue;
			printf("%s{\"id\":\"%s\"}", first ? "" : ",", w);
			first = 0;
		}
	}
	printf("],\"edges\":[");
	for (int i = 0; i < g->n; i++) {
		const struct edge *e = &g->e[i];
		__u64 tries = e->opened + e->failed;

		printf("%s{\"source\":\"%s\",\"destination\":\"%s\",\"service\":\"%s\","
		       "\"version\":\"%s\",\"connections\":%llu,\"connections_per_second\":%.2f,"
		       "\"error_ratio\":%.4f,\"mtls\":%s}",
		       i ? "," : "", e->src, e->dst, e->svc, e->version,
		       (unsigned long long)e->opened,
		       window > 0 ? (e->opened - e->opened0) / window : 0.0,
		       tries ? (double)e->failed / tries : 0.0, edge_mtls(e) ? "true" : "false");
	}
	printf("]}\n");
}

static void print_dot(FILE *out, const struct graph *g, double window)
{
	fprintf(out, "digraph bpfmesh {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
	for (int i = 0; i < g->n; i++) {
		const struct edge *e = &g->e[i];
		__u64 tries = e->opened + e->failed;

		fprintf(out,
			"  \"%s\" -> \"%s\" [label=\"%s %s\\n%llu conn, %.1f/s, %.1f%% err, "
			"%s\"%s%s];\n",
			e->src, e->dst, e->svc, e->version, (unsigned long long)e->opened,
			window > 0 ? (e->opened - e->opened0) / window : 0.0,
			tries ? 100.0 * e->failed / tries : 0.0,
			edge_mtls(e) ? "mTLS" : "plaintext", e->failed ? ", color=red" : "",
			edge_mtls(e) ? ", style=bold" : "");
	}
	fprintf(out, "}\n");
}

static const char graph_usage[] =
    "usage: bpfmesh graph --node NAME|--all [--format dot|json|svg] [--window SECONDS]\n"
    "  the service graph from the live counters, like Kiali's: workloads, calls,\n"
    "  connections per second over the window, error ratio, mTLS\n";

int cmd_graph(int argc, char **argv)
{
	static const struct option opts[] = {{"node", required_argument, 0, 'n'},
					     {"all", no_argument, 0, 'a'},
					     {"format", required_argument, 0, 'f'},
					     {"window", required_argument, 0, 'w'},
					     {0, 0, 0, 0}};
	static char dirs[64][600];
	const char *node = NULL, *format = "json";
	struct graph g = {0};
	double window = 1.0;
	bool all = false;
	int ndirs = 0, o;

	if (args_help(argc, argv)) {
		fputs(graph_usage, stdout);
		return 0;
	}
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'n')
			node = optarg;
		else if (o == 'a')
			all = true;
		else if (o == 'f')
			format = optarg;
		else if (o == 'w')
			window = atof(optarg);
		else
			goto usage;
	}
	if ((!node && !all) ||
	    (strcmp(format, "json") && strcmp(format, "dot") && strcmp(format, "svg")) ||
	    window < 0 || window > 60)
		goto usage;
	if (all) {
		ndirs = all_pin_dirs(dirs, 64);
	} else {
		char buf[256];
		const char *bpffs = agent_bpffs(node, buf, sizeof(buf));

		if (dp_pin_dir(dirs[0], sizeof(dirs[0]), bpffs ? bpffs : "/sys/fs/bpf", node))
			goto usage;
		ndirs = 1;
	}
	/* two samples, `window` seconds apart: the rate is the difference */
	for (int i = 0; i < ndirs; i++)
		if (add_node(&g, dirs[i], true) && !all) {
			fprintf(stderr, "bpfmesh graph: no counters for node %s\n", node);
			return 1;
		}
	if (window > 0)
		usleep((useconds_t)(window * 1e6));
	for (int i = 0; i < ndirs; i++)
		add_node(&g, dirs[i], false);
	if (!strcmp(format, "json")) {
		print_json(&g, window);
	} else if (!strcmp(format, "dot")) {
		print_dot(stdout, &g, window);
	} else {
		FILE *dot = popen("dot -Tsvg", "w");

		if (!dot) {
			fprintf(stderr, "bpfmesh graph: svg needs Graphviz (dot)\n");
			return 1;
		}
		print_dot(dot, &g, window);
		if (pclose(dot)) {
			fprintf(stderr, "bpfmesh graph: dot failed (is graphviz installed?)\n");
			return 1;
		}
	}
	free(g.e);
	return 0;
usage:
	fputs(graph_usage, stderr);
	return 2;
}
