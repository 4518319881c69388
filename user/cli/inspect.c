// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * inspect.c: the CLI commands that read a node's pinned state: `status` (is the agent
 * attached with its config loaded), `services` (each service address with routes, subsets,
 * weights and backends as the kernel holds them) and `uninstall` (remove every trace). They
 * read the pins, never the YAML, so they tell the truth even while the agent is down.
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
#include "pins.h"
#include "resolve.h"
#include "cli.h"

struct node_args {
	const char *node;
	const char *bpffs;
	char pin_dir[512];
	char bpffs_buf[256];
};

static int parse_node_args(int argc, char **argv, struct node_args *na, const char *usage)
{
	static const struct option opts[] = {{"node", required_argument, 0, 'n'},
					     {"bpffs", required_argument, 0, 'b'},
					     {0, 0, 0, 0}};
	int o;

	na->node = NULL;
	na->bpffs = NULL;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'n')
			na->node = optarg;
		else if (o == 'b')
			na->bpffs = optarg;
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

/* parse --node/--bpffs and open that node's pinned maps; 0, or the exit code to return */
static int open_node(int argc, char **argv, const char *cmd, struct node_args *na,
		     struct bm_mapfds *f)
{
	char usage[128];

	snprintf(usage, sizeof(usage), "bpfmesh %s --node NAME [--bpffs DIR]", cmd);
	if (parse_node_args(argc, argv, na, usage))
		return 2;
	if (dp_open_pinned(na->pin_dir, f)) {
		fprintf(stderr, "bpfmesh %s: no pinned maps for node %s in %s\n", cmd, na->node,
			na->pin_dir);
		return 1;
	}
	return 0;
}

/* The per-CPU datapath counters (bm_stats), summed. */
static void print_stats(const char *pin_dir)
{
	static const char *const names[BM_ST_MAX] = {
#define STAT_PHRASE(id, phrase, metric) [BM_ST_##id] = phrase,
	    BM_STATS(STAT_PHRASE)
#undef STAT_PHRASE
	};
	int ncpu = libbpf_num_possible_cpus();
	struct bm_mapfds f;
	__u64 *v;

	if (ncpu <= 0 || dp_open_pinned(pin_dir, &f))
		return;
	v = calloc(ncpu, sizeof(*v));
	printf("datapath counters:\n");
	for (__u32 k = 0; v && k < BM_ST_MAX; k++) {
		__u64 sum = 0;

		if (bpf_map_lookup_elem(f.stats, &k, v))
			continue;
		for (int c = 0; c < ncpu; c++)
			sum += v[c];
		printf("  %-46s %llu\n", names[k] ? names[k] : "?", (unsigned long long)sum);
	}
	free(v);
	dp_close_fds(&f);
}

/* The objects the agent rejected at its last apply (<run dir>/rejected, one per line). */
static void print_rejected(const char *node)
{
	char path[600], line[4096];
	int n = 0;
	FILE *f;

	if (agent_run_dir(path, sizeof(path) - 16, node))
		return;
	strcat(path, "/rejected");
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (!n++)
			printf("rejected objects:\n");
		printf("  %s%s", line, strchr(line, '\n') ? "" : "\n");
	}
	if (f)
		fclose(f);
	if (f && !n)
		printf("rejected objects: none\n");
}

int cmd_status(int argc, char **argv)
{
	struct node_args na;
	struct bm_mapfds f;
	struct bm_meta meta = {};
	struct bm_conf conf = {};
	long nsock = -1;
	__u32 zero = 0;
	pid_t pid;
	bool attached;

	if (parse_node_args(argc, argv, &na, "bpfmesh status --node NAME [--bpffs DIR]"))
		return 2;
	pid = agent_pid(na.node);
	attached = dp_links_attached(na.pin_dir);
	if (dp_open_pinned(na.pin_dir, &f) == 0) {
		bpf_map_lookup_elem(f.meta, &zero, &meta);
		bpf_map_lookup_elem(f.conf, &zero, &conf);
		nsock = dp_sockhash_count(f.sockhash);
		dp_close_fds(&f);
	}
	printf("node:     %s\n", na.node);
	printf("agent:    %s", pid ? "running" : "not running");
	if (pid)
		printf(" (pid %d)", (int)pid);
	printf("\nattached: %s (pins in %s)\n", attached ? "yes" : "no", na.pin_dir);
	if (meta.abi) {
		time_t t = meta.last_apply_ns / 1000000000ULL;
		char when[64];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		printf("config:   %s, generation %llu, %u service ports, %u backends\n",
		       meta.loaded ? "loaded" : "not loaded", (unsigned long long)meta.generation,
		       meta.nservices, meta.nbackends);
		printf("last apply: %s at %s\n", meta.last_apply_ok ? "ok" : "REJECTED", when);
		print_rejected(na.node);
	} else {
		printf("config:   none\n");
	}
	if (nsock >= 0)
		printf("accel:    %s, %ld sockets in bm_sockhash\n",
		       conf.flags & BM_CONF_F_ACCEL ? "on" : "off", nsock);
	print_stats(na.pin_dir);
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

static void print_subset(const struct bm_mapfds *f, const char *label, __u32 sid)
{
	struct bm_subset sub;
	char name[BM_NAME_LEN + 8];

	name_of(f, BM_NAME_SUBSET, sid, name, sizeof(name));
	if (bpf_map_lookup_elem(f->subset, &sid, &sub)) {
		printf("    %s %s: (missing subset %u)\n", label, name, sid);
		return;
	}
	printf("    %s %s [id %u, %s]:", label, name, sid, rs_lb_name(sub.lb));
	if (!sub.n)
		printf(" (no endpoints)");
	for (__u32 i = 0; i < sub.n; i++) {
		__u32 slot = sub.first_slot + i, bid;
		struct bm_backend be;
		struct bm_bstate bs = {};
		char a[INET6_ADDRSTRLEN];

		if (bpf_map_lookup_elem(f->slot, &slot, &bid) ||
		    bpf_map_lookup_elem(f->backend, &bid, &be))
			continue;
		bpf_map_lookup_elem(f->bstate, &bid, &bs);
		rs_format_addr(be.addr, be.family, a, sizeof(a));
		printf(be.family == BM_FAM_V6 ? " [%s]:%u" : " %s:%u", a, ntohs(be.port));
		if (bs.active)
			printf("(active %d)", bs.active);
	}
	printf("\n");
}

/* Call fn for every live service entry with its route (NULL when it has none). */
typedef void (*svc_fn)(const struct bm_mapfds *f, const struct bm_svc_key *key,
		       const struct bm_svc *v, const struct bm_route *r, void *arg);

static int for_each_service(const struct bm_mapfds *f, svc_fn fn, void *arg)
{
	struct bm_svc_key key, next, *prev = NULL;
	int n = 0;

	while (bpf_map_get_next_key(f->svc, prev, &next) == 0) {
		struct bm_svc v;
		struct bm_route r;
		bool routed;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(f->svc, &key, &v))
			continue;
		routed = (v.flags & BM_SVC_F_HAS_ROUTE) &&
			 bpf_map_lookup_elem(f->route, &v.route_id, &r) == 0;
		fn(f, &key, &v, routed ? &r : NULL, arg);
		n++;
	}
	return n;
}

static void print_service(const struct bm_mapfds *f, const struct bm_svc_key *key,
			  const struct bm_svc *v, const struct bm_route *r, void *arg)
{
	char a[INET6_ADDRSTRLEN], name[BM_NAME_LEN + 8];

	(void)arg;
	rs_format_addr(key->addr, key->family, a, sizeof(a));
	name_of(f, BM_NAME_SVC, v->svc_id, name, sizeof(name));
	printf(key->family == BM_FAM_V6 ? "[%s]:%u/%s %s\n" : "%s:%u/%s %s\n", a, ntohs(key->port),
	       key->proto == IPPROTO_UDP ? "UDP" : "TCP", name);
	if (r) {
		name_of(f, BM_NAME_ROUTE, v->route_id, name, sizeof(name));
		if (name[0] != '#')
			printf("  VirtualService %s\n", name);
		printf("  route [id %u] (mesh clients, per connection):", v->route_id);
		for (__u32 i = 0; i < r->n && i < BM_MAX_ROUTE_DESTS; i++) {
			char sn[BM_NAME_LEN + 8];
			__u32 w = r->cum[i] - (i ? r->cum[i - 1] : 0);

			name_of(f, BM_NAME_SUBSET, r->subset[i], sn, sizeof(sn));
			printf(" %s weight %u (%.1f%%)", sn, w, 100.0 * w / r->total);
		}
		printf("\n");
		for (__u32 i = 0; i < r->n && i < BM_MAX_ROUTE_DESTS; i++)
			print_subset(f, "subset", r->subset[i]);
	} else {
		name_of(f, BM_NAME_VS, v->svc_id, name, sizeof(name));
		if (name[0] != '#')
			printf("  VirtualService %s\n", name);
		printf("  no route: every endpoint\n");
	}
	print_subset(f, "all", v->all_subset);
}

int cmd_services(int argc, char **argv)
{
	struct node_args na;
	struct bm_mapfds f;
	int rc = open_node(argc, argv, "services", &na, &f);

	if (rc)
		return rc;
	if (!for_each_service(&f, print_service, NULL))
		printf("no services\n");
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
static void collect_service(const struct bm_mapfds *f, const struct bm_svc_key *key,
			    const struct bm_svc *v, const struct bm_route *r, void *arg)
{
	(void)key;
	for (__u32 i = 0; r && i < r->n && i < BM_MAX_ROUTE_DESTS; i++)
		ep_collect_subset(f, arg, r->subset[i]);
	ep_collect_subset(f, arg, v->all_subset);
}

int cmd_endpoints(int argc, char **argv)
{
	struct ep_list l = {0};
	struct node_args na;
	struct bm_mapfds f;
	struct timespec ts;
	__u64 now;

	int rc = open_node(argc, argv, "endpoints", &na, &f);

	if (rc)
		return rc;
	for_each_service(&f, collect_service, &l);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	printf("%-28s %-26s %5s %5s %9s %6s  %s\n", "BACKEND", "STATE", "5XX", "GW", "EJECTIONS",
	       "ACTIVE", "SUBSET");
	for (int i = 0; i < l.n; i++) {
		struct bm_backend be;
		struct bm_bstate bs = {};
		struct bm_health h = {};
		char a[INET6_ADDRSTRLEN + 8], addr[INET6_ADDRSTRLEN + 16], state[64],
		    sn[BM_NAME_LEN + 8];

		if (bpf_map_lookup_elem(f.backend, &l.ids[i], &be))
			continue;
		bpf_map_lookup_elem(f.bstate, &l.ids[i], &bs);
		bpf_map_lookup_elem_flags(f.health, &l.ids[i], &h, BPF_F_LOCK);
		rs_format_addr(be.addr, be.family, a, sizeof(a));
		snprintf(addr, sizeof(addr), be.family == BM_FAM_V6 ? "[%s]:%u" : "%s:%u", a,
			 ntohs(be.port));
		if (h.od.ejected) {
			__u64 until = h.od.ejected_at_ns + bm_od_ejection_ns(&h.od, &h.pol);

			snprintf(state, sizeof(state), "EJECTED %.1fs more",
				 until > now ? (until - now) / 1e9 : 0.0);
		} else {
			snprintf(state, sizeof(state), "healthy");
		}
		name_of(&f, BM_NAME_SUBSET, l.subset[i], sn, sizeof(sn));
		printf("%-28s %-26s %5u %5u %9u %6d  %s\n", addr, state, h.od.consec_5xx,
		       h.od.consec_gw, h.od.ejections_total, bs.active, sn);
	}
	if (!l.n)
		printf("no endpoints\n");
	free(l.ids);
	free(l.subset);
	dp_close_fds(&f);
	return 0;
}

int cmd_uninstall(int argc, char **argv)
{
	struct node_args na;

	if (parse_node_args(argc, argv, &na, "bpfmesh uninstall --node NAME [--bpffs DIR]"))
		return 2;
	if (pins_uninstall_node(na.node, na.pin_dir)) {
		fprintf(stderr, "bpfmesh uninstall: %s: %s\n", na.pin_dir, strerror(errno));
		return 1;
	}
	printf("node %s uninstalled\n", na.node);
	return 0;
}
