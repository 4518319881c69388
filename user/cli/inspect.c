// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * inspect.c: the CLI commands that read a node's pinned state: `status` (is the agent
 * attached with its config loaded), `services` (each service address with routes, subsets,
 * weights and backends as the kernel holds them), `endpoints` (each backend's health) and
 * `uninstall` (remove every trace). They read the pins, never the YAML, so they tell the truth
 * even while the agent is down. Each answer is collected once as a json-c tree, then printed
 * as text (the default), wide text, JSON or YAML (-o).
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "args.h"
#include "cli.h"
#include "emit.h"
#include "pins.h"
#include "resolve.h"

struct node_args {
	const char *node;
	const char *bpffs;
	enum out_fmt out;
	char pin_dir[512];
	char bpffs_buf[256];
};

/* --node NAME [--bpffs DIR] [-o json|yaml|wide]; 0, 1 after printing the usage for -h, or -1
 * after printing it for a usage error. */
static int parse_node_args(int argc, char **argv, struct node_args *na, const char *usage,
			   bool with_output)
{
	static const struct option opts[] = {{"node", required_argument, 0, 'n'},
					     {"bpffs", required_argument, 0, 'b'},
					     {"output", required_argument, 0, 'o'},
					     {0, 0, 0, 0}};
	int o;

	if (args_help(argc, argv)) {
		printf("usage: %s\n", usage);
		return 1;
	}
	na->node = NULL;
	na->bpffs = NULL;
	na->out = OUT_TEXT;
	optind = 1;
	while ((o = getopt_long(argc, argv, with_output ? "o:" : "", opts, NULL)) != -1) {
		if (o == 'n')
			na->node = optarg;
		else if (o == 'b')
			na->bpffs = optarg;
		else if (o == 'o' && with_output && (int)(na->out = out_fmt_parse(optarg)) >= 0)
			continue;
		else
			goto bad;
	}
	if (!na->node || strchr(na->node, '/'))
		goto bad;
	/* default: where that node's agent pinned (remembered in its run dir), else the usual */
	if (!na->bpffs)
		na->bpffs = agent_bpffs(na->node, na->bpffs_buf, sizeof(na->bpffs_buf));
	if (!na->bpffs)
		na->bpffs = "/sys/fs/bpf";
	if (dp_pin_dir(na->pin_dir, sizeof(na->pin_dir), na->bpffs, na->node))
		goto bad;
	return 0;
bad:
	fprintf(stderr, "usage: %s\n", usage);
	return -1;
}

/* parse the arguments and open that node's pinned maps; 0, or -1 with *rc the exit code */
static int open_node(int argc, char **argv, const char *cmd, struct node_args *na,
		     struct bm_mapfds *f, int *rc)
{
	char usage[160];
	int r;

	snprintf(usage, sizeof(usage), "bpfmesh %s --node NAME [--bpffs DIR] [-o json|yaml|wide]",
		 cmd);
	r = parse_node_args(argc, argv, na, usage, true);
	if (r) {
		*rc = r > 0 ? 0 : 2;
		return -1;
	}
	if (dp_open_pinned(na->pin_dir, f)) {
		fprintf(stderr, "bpfmesh %s: no pinned maps for node %s in %s\n", cmd, na->node,
			na->pin_dir);
		*rc = 1;
		return -1;
	}
	return 0;
}

static const char *const stat_phrase[BM_ST_MAX] = {
#define STAT_PHRASE(id, phrase, metric) [BM_ST_##id] = phrase,
    BM_STATS(STAT_PHRASE)
#undef STAT_PHRASE
};
static const char *const stat_metric[BM_ST_MAX] = {
#define STAT_METRIC(id, phrase, metric) [BM_ST_##id] = metric,
    BM_STATS(STAT_METRIC)
#undef STAT_METRIC
};

/* The per-CPU datapath counters (bm_stats), summed: {metric label: count}, in enum order. */
static struct json_object *collect_stats(const char *pin_dir)
{
	int ncpu = libbpf_num_possible_cpus();
	struct json_object *o = json_object_new_object();
	struct bm_mapfds f;
	__u64 *v;

	if (ncpu <= 0 || dp_open_pinned(pin_dir, &f))
		return o;
	v = calloc(ncpu, sizeof(*v));
	for (__u32 k = 0; v && k < BM_ST_MAX; k++) {
		__u64 sum = 0;

		if (bpf_map_lookup_elem(f.stats, &k, v))
			continue;
		for (int c = 0; c < ncpu; c++)
			sum += v[c];
		jset_int(o, stat_metric[k], (long long)sum);
	}
	free(v);
	dp_close_fds(&f);
	return o;
}

/* The objects the agent rejected at its last apply (<run dir>/rejected, one per line); NULL
 * when the agent wrote no such file. */
static struct json_object *collect_rejected(const char *node)
{
	char path[600], line[4096];
	struct json_object *list;
	FILE *f;

	if (agent_run_dir(path, sizeof(path) - 16, node))
		return NULL;
	strcat(path, "/rejected");
	f = fopen(path, "r");
	if (!f)
		return NULL;
	list = json_object_new_array();
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		json_object_array_add(list, json_object_new_string(line));
	}
	fclose(f);
	return list;
}

/* The agent's watch of the API server (<run dir>/api), or NULL when it reads files only. */
static struct json_object *collect_api(const char *node)
{
	char path[600], line[400] = "";
	FILE *f;

	if (agent_run_dir(path, sizeof(path) - 16, node))
		return NULL;
	strcat(path, "/api");
	f = fopen(path, "r");
	if (!f)
		return NULL;
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	line[strcspn(line, "\n")] = 0;
	return line[0] ? json_object_new_string(line) : NULL;
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : NULL;
}

static long long jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static struct json_object *jget(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static void print_status_text(struct json_object *st, const char *pin_dir)
{
	struct json_object *cfg = jget(st, "config"), *rej = jget(st, "rejectedObjects");
	struct json_object *stats = jget(st, "datapath");

	printf("node:     %s\n", jstr(st, "node"));
	printf("agent:    %s", jint(st, "agentPid") ? "running" : "not running");
	if (jint(st, "agentPid"))
		printf(" (pid %lld)", jint(st, "agentPid"));
	printf("\nattached: %s (pins in %s)\n",
	       json_object_get_boolean(jget(st, "attached")) ? "yes" : "no", pin_dir);
	if (jstr(st, "api"))
		printf("api: %s\n", jstr(st, "api"));
	if (cfg) {
		printf("config:   %s, generation %lld, %lld service ports, %lld backends\n",
		       json_object_get_boolean(jget(cfg, "loaded")) ? "loaded" : "not loaded",
		       jint(cfg, "generation"), jint(cfg, "servicePorts"), jint(cfg, "backends"));
		printf("last apply: %s at %s\n",
		       json_object_get_boolean(jget(cfg, "lastApplyOk")) ? "ok" : "REJECTED",
		       jstr(cfg, "lastApply"));
		if (jget(cfg, "lastInForce"))
			printf("last in force: %lld of %lld objects changed, %lld map entries "
			       "written, %.1f ms\n",
			       jint(jget(cfg, "lastInForce"), "objectsChanged"),
			       jint(jget(cfg, "lastInForce"), "objects"),
			       jint(jget(cfg, "lastInForce"), "mapEntriesWritten"),
			       jint(jget(cfg, "lastInForce"), "microseconds") / 1000.0);
		for (size_t i = 0; rej && i < json_object_array_length(rej); i++)
			printf("%s  %s\n", i ? "" : "rejected objects:\n",
			       json_object_get_string(json_object_array_get_idx(rej, i)));
		if (rej && !json_object_array_length(rej))
			printf("rejected objects: none\n");
	} else {
		printf("config:   none\n");
	}
	if (jget(st, "accel"))
		printf("accel:    %s, %lld sockets in bm_sockhash\n",
		       json_object_get_boolean(jget(st, "accel")) ? "on" : "off",
		       jint(st, "acceleratedSockets"));
	if (json_object_object_length(stats))
		printf("datapath counters:\n");
	for (__u32 k = 0; k < BM_ST_MAX; k++)
		if (jget(stats, stat_metric[k]))
			printf("  %-46s %lld\n", stat_phrase[k], jint(stats, stat_metric[k]));
}

int cmd_status(int argc, char **argv)
{
	struct node_args na;
	struct bm_mapfds f;
	struct bm_meta meta = {};
	struct bm_conf conf = {};
	struct json_object *st;
	long nsock = -1;
	__u32 zero = 0;
	pid_t pid;
	bool attached;
	int r = parse_node_args(
	    argc, argv, &na, "bpfmesh status --node NAME [--bpffs DIR] [-o json|yaml|wide]", true);

	if (r)
		return r > 0 ? 0 : 2;
	pid = agent_pid(na.node);
	attached = dp_links_attached(na.pin_dir);
	if (dp_open_pinned(na.pin_dir, &f) == 0) {
		bpf_map_lookup_elem(f.meta, &zero, &meta);
		bpf_map_lookup_elem(f.conf, &zero, &conf);
		nsock = dp_sockhash_count(f.sockhash);
		dp_close_fds(&f);
	}
	st = json_object_new_object();
	jset_str(st, "node", na.node);
	jset_int(st, "agentPid", pid);
	jset_bool(st, "attached", attached);
	jset_str(st, "pins", na.pin_dir);
	if (pid) {
		struct json_object *api = collect_api(na.node);

		if (api)
			json_object_object_add(st, "api", api);
	}
	if (meta.abi) {
		struct json_object *cfg = json_object_new_object(), *rej;
		time_t t = meta.last_apply_ns / 1000000000ULL;
		char when[64];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		jset_bool(cfg, "loaded", meta.loaded);
		jset_int(cfg, "generation", (long long)meta.generation);
		jset_int(cfg, "servicePorts", meta.nservices);
		jset_int(cfg, "backends", meta.nbackends);
		jset_bool(cfg, "lastApplyOk", meta.last_apply_ok);
		jset_str(cfg, "lastApply", when);
		if (meta.loaded) {
			/* the last apply that put a config in force: what it changed and cost */
			struct json_object *lf = json_object_new_object();

			jset_int(lf, "objects", meta.apply_objects);
			jset_int(lf, "objectsChanged", meta.apply_changed);
			jset_int(lf, "mapEntriesWritten", meta.apply_writes);
			jset_int(lf, "microseconds", meta.apply_us);
			json_object_object_add(cfg, "lastInForce", lf);
		}
		json_object_object_add(st, "config", cfg);
		rej = collect_rejected(na.node);
		if (rej)
			json_object_object_add(st, "rejectedObjects", rej);
	}
	if (nsock >= 0) {
		jset_bool(st, "accel", conf.flags & BM_CONF_F_ACCEL);
		jset_bool(st, "strictUdpDrop", conf.flags & BM_CONF_F_STRICT_UDP);
		jset_int(st, "acceleratedSockets", nsock);
	}
	json_object_object_add(st, "datapath", collect_stats(na.pin_dir));
	if (na.out == OUT_JSON || na.out == OUT_YAML)
		out_write(stdout, st, na.out);
	else
		print_status_text(st, na.pin_dir);
	json_object_put(st);
	return pid && attached && meta.loaded ? 0 : 1;
}

static void name_of(const struct bm_mapfds *f, __u32 kind, __u32 id, char *buf, size_t len)
{
	struct bm_name_key k = {.kind = kind, .id = id};
	struct bm_name v;

	if (f->names >= 0 && bpf_map_lookup_elem(f->names, &k, &v) == 0)
		snprintf(buf, len, "%.*s", (int)sizeof(v.name), v.name);
	else
		snprintf(buf, len, "#%u", id);
}

/* A name the agent wrote, or NULL (not "#id") when it wrote none. */
static struct json_object *jname(const struct bm_mapfds *f, __u32 kind, __u32 id)
{
	char name[BM_NAME_LEN + 8];

	name_of(f, kind, id, name, sizeof(name));
	return name[0] == '#' ? NULL : json_object_new_string(name);
}

static void format_ep(const struct bm_backend *be, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	rs_format_addr(be->addr, be->family, a, sizeof(a));
	snprintf(buf, len, be->family == BM_FAM_V6 ? "[%s]:%u" : "%s:%u", a, ntohs(be->port));
}

static struct json_object *collect_subset(const struct bm_mapfds *f, const char *role, __u32 sid)
{
	struct json_object *o = json_object_new_object(), *eps;
	struct bm_subset sub;

	jset_str(o, "role", role);
	json_object_object_add(o, "name", jname(f, BM_NAME_SUBSET, sid));
	jset_int(o, "id", sid);
	if (bpf_map_lookup_elem(f->subset, &sid, &sub)) {
		jset_bool(o, "missing", 1);
		return o;
	}
	jset_str(o, "loadBalancer", rs_lb_name(sub.lb));
	eps = json_object_new_array();
	for (__u32 i = 0; i < sub.n; i++) {
		__u32 slot = sub.first_slot + i, bid;
		struct json_object *e;
		struct bm_backend be;
		struct bm_bstate bs = {};
		char addr[INET6_ADDRSTRLEN + 16];

		if (bpf_map_lookup_elem(f->slot, &slot, &bid) ||
		    bpf_map_lookup_elem(f->backend, &bid, &be))
			continue;
		bpf_map_lookup_elem(f->bstate, &bid, &bs);
		format_ep(&be, addr, sizeof(addr));
		e = json_object_new_object();
		jset_str(e, "address", addr);
		jset_int(e, "backendId", bid);
		json_object_object_add(e, "pod", jname(f, BM_NAME_BACKEND, bid));
		jset_int(e, "active", bs.active);
		json_object_array_add(eps, e);
	}
	json_object_object_add(o, "endpoints", eps);
	return o;
}

static void print_subset_text(struct json_object *sub, bool wide)
{
	struct json_object *eps = jget(sub, "endpoints");
	const char *name = jstr(sub, "name");
	char id[32];

	snprintf(id, sizeof(id), "#%lld", jint(sub, "id"));
	if (jget(sub, "missing")) {
		printf("    %s %s: (missing subset %lld)\n", jstr(sub, "role"), name ? name : id,
		       jint(sub, "id"));
		return;
	}
	printf("    %s %s [id %lld, %s]:", jstr(sub, "role"), name ? name : id, jint(sub, "id"),
	       jstr(sub, "loadBalancer"));
	if (!json_object_array_length(eps))
		printf(" (no endpoints)");
	for (size_t i = 0; i < json_object_array_length(eps); i++) {
		struct json_object *e = json_object_array_get_idx(eps, i);

		printf(" %s", jstr(e, "address"));
		if (wide && jstr(e, "pod"))
			printf("(%s)", jstr(e, "pod"));
		if (jint(e, "active"))
			printf("(active %lld)", jint(e, "active"));
	}
	printf("\n");
}

/* A service entry's routes as the kernel holds them: one for every mesh client
 * (BM_SVC_F_HAS_ROUTE) or a list tried in order (BM_SVC_F_RLIST). */
struct svc_routes {
	int n;
	bool list;
	__u32 any_src; /* list: bit i, route i holds for every mesh client */
	__u32 id[BM_MAX_SVC_ROUTES];
	bool found[BM_MAX_SVC_ROUTES]; /* its bm_route entry was read */
	struct bm_route r[BM_MAX_SVC_ROUTES];
};

/* Call fn for every live service entry with its routes. */
typedef void (*svc_fn)(const struct bm_mapfds *f, const struct bm_svc_key *key,
		       const struct bm_svc *v, const struct svc_routes *rt, void *arg);

static void read_routes(const struct bm_mapfds *f, const struct bm_svc *v, struct svc_routes *rt)
{
	struct bm_rlist rl;

	memset(rt, 0, sizeof(*rt));
	if (v->flags & BM_SVC_F_HAS_ROUTE) {
		rt->n = 1;
		rt->id[0] = v->route_id;
		rt->any_src = 1;
	} else if ((v->flags & BM_SVC_F_RLIST) && f->rlist >= 0 &&
		   bpf_map_lookup_elem(f->rlist, &v->rlist_id, &rl) == 0) {
		rt->list = true;
		rt->n = rl.n < BM_MAX_SVC_ROUTES ? (int)rl.n : BM_MAX_SVC_ROUTES;
		rt->any_src = rl.any_src;
		memcpy(rt->id, rl.route_id, sizeof(rt->id));
	}
	for (int i = 0; i < rt->n; i++)
		rt->found[i] = bpf_map_lookup_elem(f->route, &rt->id[i], &rt->r[i]) == 0;
}

static int for_each_service(const struct bm_mapfds *f, svc_fn fn, void *arg)
{
	struct bm_svc_key key, next, *prev = NULL;
	struct svc_routes rt;
	int n = 0;

	while (bpf_map_get_next_key(f->svc, prev, &next) == 0) {
		struct bm_svc v;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(f->svc, &key, &v))
			continue;
		read_routes(f, &v, &rt);
		fn(f, &key, &v, &rt, arg);
		n++;
	}
	return n;
}

/* The local pods a route list's source conditions hold for (bm_rpod), by route: pods[i] gets
 * the names of those with bit i. */
static void collect_route_pods(const struct bm_mapfds *f, __u32 rlist, int n,
			       struct json_object **pods)
{
	struct bm_rpod_key key, next, *prev = NULL;

	while (f->rpod >= 0 && bpf_map_get_next_key(f->rpod, prev, &next) == 0) {
		__u32 bits;
		char name[BM_NAME_LEN + 8];

		key = next;
		prev = &key;
		if (key.rlist_id != rlist || bpf_map_lookup_elem(f->rpod, &key, &bits))
			continue;
		name_of(f, BM_NAME_POD, key.pod_id, name, sizeof(name));
		{ /* "namespace/workload/pod/version" -> "namespace/pod" */
			char *a = strchr(name, '/'), *b = a ? strchr(a + 1, '/') : NULL;
			char *c = b ? strchr(b + 1, '/') : NULL;

			if (c) {
				*c = 0;
				memmove(a + 1, b + 1, strlen(b + 1) + 1);
			}
		}
		for (int i = 0; i < n; i++)
			if (bits >> i & 1)
				json_object_array_add(pods[i], json_object_new_string(name));
	}
}

/* One route's weighted destinations (JSON), adding each subset to subs. */
static struct json_object *collect_route(const struct bm_mapfds *f, __u32 id,
					 const struct bm_route *r, struct json_object *subs)
{
	struct json_object *route = json_object_new_object(), *d = json_object_new_array();

	jset_int(route, "id", id);
	for (__u32 i = 0; r && i < r->n && i < BM_MAX_ROUTE_DESTS; i++) {
		struct json_object *e = json_object_new_object();
		__u32 w = r->cum[i] - (i ? r->cum[i - 1] : 0);

		json_object_object_add(e, "subset", jname(f, BM_NAME_SUBSET, r->subset[i]));
		jset_int(e, "subsetId", r->subset[i]);
		jset_int(e, "weight", w);
		jset_double(e, "percent", 100.0 * w / r->total);
		json_object_array_add(d, e);
		json_object_array_add(subs, collect_subset(f, "subset", r->subset[i]));
	}
	if (!r)
		jset_bool(route, "missing", 1);
	json_object_object_add(route, "destinations", d);
	return route;
}

static void collect_service(const struct bm_mapfds *f, const struct bm_svc_key *key,
			    const struct bm_svc *v, const struct svc_routes *rt, void *arg)
{
	struct json_object *o = json_object_new_object(), *subs = json_object_new_array();
	char a[INET6_ADDRSTRLEN];

	rs_format_addr(key->addr, key->family, a, sizeof(a));
	jset_str(o, "address", a);
	jset_int(o, "port", ntohs(key->port));
	jset_str(o, "protocol", key->proto == IPPROTO_UDP ? "UDP" : "TCP");
	jset_str(o, "family", key->family == BM_FAM_V6 ? "IPv6" : "IPv4");
	json_object_object_add(o, "service", jname(f, BM_NAME_SVC, v->svc_id));
	jset_str(o, "path", v->flags & BM_SVC_F_L7 ? "l7" : "kernel");
	json_object_object_add(o, "l7Reason", jname(f, BM_NAME_L7, v->all_subset));
	if (rt->list) {
		/* routes tried in order, first match wins; none: every endpoint */
		struct json_object *list = json_object_new_array();

		json_object_object_add(o, "virtualService", jname(f, BM_NAME_RLIST, v->rlist_id));
		jset_int(o, "routeListId", v->rlist_id);
		struct json_object *pods[BM_MAX_SVC_ROUTES];

		for (int i = 0; i < rt->n; i++) {
			struct json_object *route =
			    collect_route(f, rt->id[i], rt->found[i] ? &rt->r[i] : NULL, subs);

			json_object_object_add(route, "match", jname(f, BM_NAME_ROUTE, rt->id[i]));
			jset_bool(route, "everyMeshClient", (rt->any_src >> i) & 1);
			pods[i] = json_object_new_array();
			json_object_object_add(route, "localPods", pods[i]);
			json_object_array_add(list, route);
		}
		collect_route_pods(f, v->rlist_id, rt->n, pods);
		json_object_object_add(o, "route", NULL);
		json_object_object_add(o, "routes", list);
	} else if (rt->n && rt->found[0]) {
		json_object_object_add(o, "virtualService", jname(f, BM_NAME_ROUTE, v->route_id));
		json_object_object_add(o, "route", collect_route(f, rt->id[0], &rt->r[0], subs));
	} else {
		json_object_object_add(o, "virtualService", jname(f, BM_NAME_VS, v->svc_id));
		json_object_object_add(o, "route", NULL);
	}
	json_object_array_add(subs, collect_subset(f, "all", v->all_subset));
	json_object_object_add(o, "subsets", subs);
	json_object_array_add(arg, o);
}

static void print_dests_text(struct json_object *route)
{
	struct json_object *d = jget(route, "destinations");

	if (jget(route, "missing"))
		printf(" (missing route %lld)", jint(route, "id"));
	for (size_t i = 0; i < json_object_array_length(d); i++) {
		struct json_object *e = json_object_array_get_idx(d, i);
		const char *sn = jstr(e, "subset");

		if (sn)
			printf(" %s", sn);
		else
			printf(" #%lld", jint(e, "subsetId"));
		printf(" weight %lld (%.1f%%)", jint(e, "weight"),
		       json_object_get_double(jget(e, "percent")));
	}
	printf("\n");
}

static void print_service_text(struct json_object *o, bool wide)
{
	struct json_object *route = jget(o, "route"), *subs = jget(o, "subsets");
	struct json_object *list = jget(o, "routes");
	const char *vs = jstr(o, "virtualService"), *svc = jstr(o, "service");
	bool l7 = !strcmp(jstr(o, "path"), "l7");

	printf(!strcmp(jstr(o, "family"), "IPv6") ? "[%s]:%lld/%s %s\n" : "%s:%lld/%s %s\n",
	       jstr(o, "address"), jint(o, "port"), jstr(o, "protocol"), svc ? svc : "?");
	if (!strcmp(jstr(o, "path"), "l7"))
		printf("  path l7 (%s)\n", jstr(o, "l7Reason") ? jstr(o, "l7Reason") : "?");
	else if (jstr(o, "l7Reason"))
		printf("  path kernel (%s needs the HTTP path, and the agent's is not listening)\n",
		       jstr(o, "l7Reason"));
	else
		printf("  path kernel\n");
	if (vs)
		printf("  VirtualService %s\n", vs);
	if (list) {
		bool all = false;

		printf("  routes (%s; first match wins):\n",
		       l7 ? "kernel fallback while the HTTP path is down"
			  : "mesh clients, per connection");
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *r = json_object_array_get_idx(list, i);
			const char *m = jstr(r, "match");

			struct json_object *pods = jget(r, "localPods");

			printf("  %zu. route [id %lld] %s:", i + 1, jint(r, "id"), m ? m : "?");
			print_dests_text(r);
			all |= json_object_get_boolean(jget(r, "everyMeshClient"));
			if (all)
				continue;
			printf("     local pods it holds for:");
			for (size_t k = 0; k < json_object_array_length(pods); k++)
				printf(" %s",
				       json_object_get_string(json_object_array_get_idx(pods, k)));
			printf("%s\n", json_object_array_length(pods) ? "" : " none");
		}
		if (!all)
			printf("  %zu. no route holds: every endpoint\n",
			       json_object_array_length(list) + 1);
	} else if (route) {
		printf("  route [id %lld] (%s):", jint(route, "id"),
		       l7 ? "kernel fallback while the HTTP path is down"
			  : "mesh clients, per connection");
		print_dests_text(route);
	} else {
		printf("  no route: every endpoint\n");
	}
	for (size_t i = 0; i < json_object_array_length(subs); i++)
		print_subset_text(json_object_array_get_idx(subs, i), wide);
}

int cmd_services(int argc, char **argv)
{
	struct node_args na;
	struct bm_mapfds f;
	struct json_object *list;
	int rc = 0;

	if (open_node(argc, argv, "services", &na, &f, &rc))
		return rc;
	list = json_object_new_array();
	for_each_service(&f, collect_service, list);
	if (na.out == OUT_JSON || na.out == OUT_YAML)
		out_write(stdout, list, na.out);
	else if (!json_object_array_length(list))
		printf("no services\n");
	for (size_t i = 0; na.out <= OUT_WIDE && i < json_object_array_length(list); i++)
		print_service_text(json_object_array_get_idx(list, i), na.out == OUT_WIDE);
	json_object_put(list);
	dp_close_fds(&f);
	return 0;
}

/* Every backend id the live services reference, once, with the name of a subset holding it. */
struct ep_list {
	__u32 *ids;
	__u32 *subset;
	int n;
};

static void ep_add(struct ep_list *l, __u32 id, __u32 sid)
{
	for (int i = 0; i < l->n; i++)
		if (l->ids[i] == id) {
			return;
		}
	if ((l->n & (l->n - 1)) == 0) {
		l->ids = realloc(l->ids, (l->n ? 2 * l->n : 1) * sizeof(__u32));
		l->subset = realloc(l->subset, (l->n ? 2 * l->n : 1) * sizeof(__u32));
		if (!l->ids || !l->subset)
			abort();
	}
	l->ids[l->n] = id;
	l->subset[l->n++] = sid;
}

static void ep_collect_subset(const struct bm_mapfds *f, struct ep_list *l, __u32 sid)
{
	struct bm_subset sub;

	if (bpf_map_lookup_elem(f->subset, &sid, &sub))
		return;
	for (__u32 i = 0; i < sub.n; i++) {
		__u32 slot = sub.first_slot + i, bid;

		if (bpf_map_lookup_elem(f->slot, &slot, &bid) == 0 && bid)
			ep_add(l, bid, sid);
	}
}

/* route subsets first, so a backend is shown under its named subset */
static void ep_collect_service(const struct bm_mapfds *f, const struct bm_svc_key *key,
			       const struct bm_svc *v, const struct svc_routes *rt, void *arg)
{
	(void)key;
	for (int k = 0; k < rt->n; k++)
		for (__u32 i = 0; rt->found[k] && i < rt->r[k].n && i < BM_MAX_ROUTE_DESTS; i++)
			ep_collect_subset(f, arg, rt->r[k].subset[i]);
	ep_collect_subset(f, arg, v->all_subset);
}

static struct json_object *collect_endpoint(const struct bm_mapfds *f, __u32 id, __u32 sid,
					    __u64 now)
{
	struct json_object *o;
	struct bm_backend be;
	struct bm_bstate bs = {};
	struct bm_health h = {};
	char addr[INET6_ADDRSTRLEN + 16];

	if (bpf_map_lookup_elem(f->backend, &id, &be))
		return NULL;
	bpf_map_lookup_elem(f->bstate, &id, &bs);
	bpf_map_lookup_elem_flags(f->health, &id, &h, BPF_F_LOCK);
	format_ep(&be, addr, sizeof(addr));
	o = json_object_new_object();
	jset_str(o, "address", addr);
	jset_int(o, "backendId", id);
	json_object_object_add(o, "pod", jname(f, BM_NAME_BACKEND, id));
	jset_str(o, "state", h.od.ejected ? "ejected" : "healthy");
	if (h.od.ejected) {
		__u64 until = h.od.ejected_at_ns + bm_od_ejection_ns(&h.od, &h.pol);

		jset_double(o, "ejectedForSeconds", until > now ? (until - now) / 1e9 : 0.0);
	}
	jset_int(o, "consecutive5xx", h.od.consec_5xx);
	jset_int(o, "consecutiveGatewayErrors", h.od.consec_gw);
	jset_int(o, "ejections", h.od.ejections_total);
	jset_int(o, "active", bs.active);
	json_object_object_add(o, "subset", jname(f, BM_NAME_SUBSET, sid));
	jset_int(o, "subsetId", sid);
	return o;
}

int cmd_endpoints(int argc, char **argv)
{
	struct ep_list l = {0};
	struct node_args na;
	struct bm_mapfds f;
	struct json_object *list;
	struct timespec ts;
	int rc = 0;
	__u64 now;

	if (open_node(argc, argv, "endpoints", &na, &f, &rc))
		return rc;
	for_each_service(&f, ep_collect_service, &l);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	list = json_object_new_array();
	for (int i = 0; i < l.n; i++) {
		struct json_object *e = collect_endpoint(&f, l.ids[i], l.subset[i], now);

		if (e)
			json_object_array_add(list, e);
	}
	if (na.out == OUT_JSON || na.out == OUT_YAML) {
		out_write(stdout, list, na.out);
	} else if (json_object_array_length(list)) {
		printf("%-28s %-26s %5s %5s %9s %6s  %s%s\n", "BACKEND", "STATE", "5XX", "GW",
		       "EJECTIONS", "ACTIVE", "SUBSET", na.out == OUT_WIDE ? "  POD" : "");
	} else {
		printf("no endpoints\n");
	}
	for (size_t i = 0; na.out <= OUT_WIDE && i < json_object_array_length(list); i++) {
		struct json_object *e = json_object_array_get_idx(list, i);
		char state[64], sid[32];
		const char *sn = jstr(e, "subset");

		if (!strcmp(jstr(e, "state"), "ejected"))
			snprintf(state, sizeof(state), "EJECTED %.1fs more",
				 json_object_get_double(jget(e, "ejectedForSeconds")));
		else
			snprintf(state, sizeof(state), "healthy");
		snprintf(sid, sizeof(sid), "#%lld", jint(e, "subsetId"));
		printf("%-28s %-26s %5lld %5lld %9lld %6lld  %s", jstr(e, "address"), state,
		       jint(e, "consecutive5xx"), jint(e, "consecutiveGatewayErrors"),
		       jint(e, "ejections"), jint(e, "active"), sn ? sn : sid);
		if (na.out == OUT_WIDE)
			printf("  %s", jstr(e, "pod") ? jstr(e, "pod") : "-");
		printf("\n");
	}
	json_object_put(list);
	free(l.ids);
	free(l.subset);
	dp_close_fds(&f);
	return 0;
}

int cmd_uninstall(int argc, char **argv)
{
	struct node_args na;
	int r =
	    parse_node_args(argc, argv, &na, "bpfmesh uninstall --node NAME [--bpffs DIR]", false);

	if (r)
		return r > 0 ? 0 : 2;
	if (pins_uninstall_node(na.node, na.pin_dir)) {
		fprintf(stderr, "bpfmesh uninstall: %s: %s\n", na.pin_dir, strerror(errno));
		return 1;
	}
	printf("node %s uninstalled\n", na.node);
	return 0;
}
