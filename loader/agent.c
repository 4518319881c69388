// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * agent.c: `bpfmesh agent`, the node agent. Loads and attaches the datapath to one cgroup,
 * watches the config directory with inotify and puts every valid change in force; a bad
 * config is reported and the one in force stays.
 *
 * Threads. This file is the control thread: one poll loop over named slots (enum slot) and
 * a 100 ms timer (enum tick periods), which applies configs, rescans pods, keeps certificates
 * (certs.h) and serves /metrics and /healthz/ready (httpd.h, non-blocking with deadlines).
 * Config files are read, validated and resolved on a worker thread that hands back a finished
 * result, so a pathological file never stalls the loop. Traffic never waits for any of it:
 * the mTLS tunnel runs on its own data thread (tunnel.h) and gets the config and identities
 * in force as published snapshots. Local workloads are found as child cgroups
 * named <namespace>_<pod> under the node cgroup and matched with Pod objects of the config.
 * SIGTERM/SIGINT stop the agent and leave the pins, so the kernel path keeps working until
 * the next agent takes over; `bpfmesh uninstall` is what removes them.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <poll.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "agent.h"
#include "args.h"
#include "certs.h"
#include "cfgref.h"
#include "httpd.h"
#include "kube.h"
#include "l7.h"
#include "l7table.h"
#include "log.h"
#include "metrics.h"
#include "podnet.h"
#include "secsync.h"
#include "sync.h"
#include "tunnel.h"
#include "duration.h"
#include "gateway.h"
#include "telemetry.h"
#include "gwtls.h"
#include "xdpgw.h"
#include "handover.h"
#include "pins.h"

#define RELOAD_DEBOUNCE_MS 30

struct agent {
	const char *config_dir, *cgroup, *node, *bpffs;
	char node_ip4[INET_ADDRSTRLEN], node_ip6[INET6_ADDRSTRLEN]; /* --node-ip's, split */
	int config_wd; /* the config directory's inotify watch */
	/* the API server (--kube, --kubeconfig): its objects, then the files of config_dir */
	const char *kubeconfig;
	bool kube_incluster;
	struct kube *kube;
	int kube_fd; /* eventfd: the watch holds something new */
	uint64_t kube_gen; /* the watch's change counter of the config in force */
	char api_state[300];
	char pin_dir[512];
	char run_dir[512];
	struct dp *dp;
	struct bm_mapfds fds;
	struct sync *sync;
	int loaded;
	uint64_t applied_gen;
	struct cfgref *current; /* the config in force, for pod rescans and /metrics */
	bool unmatched_mesh;	/* cgroups that are no known pod: in the mesh (default) or not */
	bool accel;		/* same-node acceleration (--accel on|off, default on) */
	const char *metrics_addr, *health_addr;
	struct httpd *httpd;
	uint64_t ticks;
	/* the config worker: one load at a time; a change during it loads again after */
	pthread_t loader;
	bool loading, reload_again;
	int loaded_fd; /* eventfd: the worker is done */
	struct load_job *job;
	/* zero trust */
	struct tunnel_opts topts;
	struct certs_opts copts;
	struct certs *certs;
	const char *netns; /* network namespace of the node address (lab); NULL: our own */
	struct secsync *sec;
	struct tunnel *tun;
	struct l7 *l7;	 /* the HTTP path (l7.h), NULL without --node-ip */
	int workers;	 /* --workers: its event loops */
	struct podnet *pn;
	bool strict_udp;	/* --strict-udp drop */
	/* --ingress: serves the Gateways its labels select (gateway.h); gw.name NULL: none */
	bool ingress;
	struct kvlist ingress_labels;
	struct workload_obj gw;
	unsigned ingress_syn_rate; /* --ingress-syn-rate: SYNs per second per source, 0: none */
	struct xdpgw *xdp;	   /* the gateway's XDP early drop, NULL: none */
	const char *rl_redis;	   /* --ratelimit-redis host:port */
	int home_ns;		   /* with --netns: the namespace the agent started in, else -1 */
	const char *tr_endpoint;   /* --tracing-endpoint */
	int tr_proto;		   /* --tracing-protocol (enum tel_proto) */
	double tr_sampling;	   /* --tracing-sampling, -1: unset */
	char *rl_files[16];	   /* --ratelimit-config (repeatable) */
	int nrl_files;
	uint64_t retry_apply_ms; /* security state not fully written: apply again at this time */
	/* upgrades (handover.h) */
	int lock;		 /* the node's lock file, held while this agent serves */
	int ho_fd;		 /* the unix listener the next agent asks at, -1: none */
	int ho_conn;		 /* a next agent's link: asked, or given (waiting for READY) */
	int ho_pid;		 /* its pid */
	bool ho_given;		 /* it has our listeners and the lock; we still accept */
	bool draining;		 /* the next agent serves; this one relays what it holds */
	int ho_new;		 /* we are the next agent: the link to the earlier one, -1: none */
	uint64_t ho_ready_by;	 /* ms: READY then even if not everything is in place */
	bool ids_ready;		 /* every local mesh pod's certificate is held */
	bool serving_written;	 /* run_dir/serving says this agent's pid */
	bool term_after;	 /* SIGTERM while given: drain even if the next agent goes away */
	uint64_t drain_until;	 /* ms: then what is still open is closed */
	uint64_t drain_log;	 /* ms: when the count was last logged */
	int64_t drain_timeout_ns; /* --drain-timeout */
};

/* The control loop's poll slots, by name; httpd's fds follow SLOT_HTTP. */
enum slot {
	SLOT_INOTIFY,
	SLOT_SIGNAL,
	SLOT_TIMER,
	SLOT_LOADED,
	SLOT_KUBE,
	SLOT_HANDOVER, /* may be -1 (poll skips it) */
	SLOT_HOCONN,   /* the next agent's link while it gets ready; may be -1 */
	SLOT_HTTP,
	SLOT_MAX
};

/* What runs at which multiple of the 100 ms timer. */
enum tick_period {
	TICK_MS = 100,	  /* outlier un-ejection and id quarantine: every tick */
	TICK_PODS = 10,	  /* pod rescan, certificates: once a second */
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/* One agent per node name: a POSIX record lock that `status` can query without taking,
 * waited for up to wait_ms (an agent handing over lets it go). */
static int take_lock(struct agent *a, int wait_ms, bool quiet)
{
	char path[600], pid[32];
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd, rc;

	snprintf(path, sizeof(path), "/run/bpfmesh");
	mkdir(path, 0755);
	if (mkdir(a->run_dir, 0755) && errno != EEXIST) {
		pr_warn("%s: %s", a->run_dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/agent.lock", a->run_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	while (fd >= 0 && (rc = fcntl(fd, F_SETLK, &fl)) && wait_ms > 0) {
		usleep(20 * 1000);
		wait_ms -= 20;
	}
	if (fd < 0 || rc) {
		if (!quiet)
			pr_warn("another agent for node %s is running (%s)", a->node, path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (ftruncate(fd, 0) || write(fd, pid, strlen(pid)) < 0)
		pr_warn("write %s: %s", path, strerror(errno));
	/* where the pins are, so the CLI finds them without --bpffs */
	snprintf(path, sizeof(path), "%s/bpffs", a->run_dir);
	FILE *f = fopen(path, "w");

	if (f) {
		fprintf(f, "%s\n", a->bpffs);
		fclose(f);
	}
	return fd; /* kept open for the agent's life: the lock goes with the process */
}

/* The node's lock; when another agent holds it, its listeners first (an upgrade). */
static int take_over(struct agent *a)
{
	char err[700];
	int got;

	a->lock = take_lock(a, 0, true);
	if (a->lock >= 0)
		goto listen;
	got = handover_request(a->run_dir, &a->ho_new, err, sizeof(err));
	if (got < 0)
		pr_warn("handover: %s", err);
	if (got <= 0) { /* one of a version without hand-over, or it failed: it serves on */
		a->lock = take_lock(a, 0, false);
		if (a->lock < 0)
			return -1;
		goto listen;
	}
	a->lock = take_lock(a, 15000, false);
	if (a->lock < 0) {
		handover_release_unclaimed();
		if (a->ho_new >= 0)
			close(a->ho_new); /* it takes its lock back */
		a->ho_new = -1;
		return -1;
	}
	/* accept once ready (handover_maybe_ready); the earlier agent accepts until then (if
	 * it went away before LOCK, there is nobody to wait for) */
	a->topts.hold = a->ho_new >= 0;
	a->ho_ready_by = now_ms() + 30000;
	pr_info("handover: took the listeners and the lock of the agent that ran before");
listen:
	a->ho_fd = handover_listen(a->run_dir);
	return 0;
}

/* ---------- local workloads ---------- */

static const struct workload_obj *find_pod(const struct mesh_config *c, const char *ns,
					   const char *name)
{
	for (int i = 0; i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];

		if (w->kind == WL_POD && strcmp(w->ns, ns) == 0 && strcmp(w->name, name) == 0)
			return w;
	}
	return NULL;
}

static void fill_pod(struct bm_pod *p, const struct mesh_config *c, const struct workload_obj *w)
{
	memset(p, 0, sizeof(*p));
	p->pod_id = config_pod_id(w); /* stable: counters survive restarts */
	if (config_in_mesh(c, w))
		p->flags |= BM_POD_F_IN_MESH;
	for (int i = 0; i < w->naddresses; i++) {
		uint8_t addr[16], fam;

		if (rs_parse_addr(w->addresses[i], addr, &fam))
			continue;
		if (fam == BM_FAM_V4)
			memcpy(p->addr4, addr, 4);
		else
			memcpy(p->addr6, addr, 16);
	}
}

static const struct workload_obj *find_pod_uid(const struct mesh_config *c, const char *uid)
{
	for (int i = 0; uid[0] && i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];

		if (w->kind == WL_POD && w->uid && strcmp(w->uid, uid) == 0)
			return w;
	}
	return NULL;
}

/*
 * Which pod a cgroup directory is, by its name:
 *  - <namespace>_<pod>, directly under --cgroup (the lab, a VM set up by hand);
 *  - the kubelet's: kubepods[-<qos>]-pod<uid>.slice (systemd driver, '-' in the uid written
 *    as '_') or pod<uid> (cgroupfs driver), matched with Pod metadata.uid.
 */
static const struct workload_obj *pod_of_dir(const struct mesh_config *c, const char *name,
					     int depth)
{
	const char *us = strchr(name, '_'), *p;
	char buf[256];
	size_t n;

	if (depth == 0 && us && !strstr(name, ".slice") && (size_t)(us - name) < sizeof(buf)) {
		memcpy(buf, name, us - name);
		buf[us - name] = 0;
		return find_pod(c, buf, us + 1);
	}
	/* "pod<uid>" (cgroupfs) or "...-pod<uid>.slice" (systemd), not the "pods" of kubepods */
	p = strncmp(name, "pod", 3) == 0 ? name : strstr(name, "-pod");
	if (!p)
		return NULL;
	p += *p == '-' ? 4 : 3;
	n = strcspn(p, ".");
	if (!n || n >= sizeof(buf))
		return NULL;
	memcpy(buf, p, n);
	buf[n] = 0;
	for (char *q = buf; *q; q++)
		if (*q == '_')
			*q = '-';
	return find_pod_uid(c, buf);
}

struct pod_scan {
	struct agent *a;
	const struct mesh_config *c;
	struct sync_pod *pods;
	int n, cap;
	const struct workload_obj **local; /* distinct pods found (their own cgroups) */
	char **local_cg;		   /* ... and those cgroups' paths */
	int nlocal, caplocal;
};

static void scan_add(struct pod_scan *ps, __u64 cgroup_id, const struct workload_obj *w)
{
	if (ps->n == ps->cap) {
		ps->cap *= 2;
		ps->pods = realloc(ps->pods, ps->cap * sizeof(*ps->pods));
		if (!ps->pods)
			abort();
	}
	ps->pods[ps->n].cgroup_id = cgroup_id;
	fill_pod(&ps->pods[ps->n].pod, ps->c, w);
	ps->n++;
}

/* Walk the cgroup tree; every cgroup at or below a pod's is that pod's (a container's task
 * runs in its own scope below the pod cgroup, and that is the id the kernel reports). */
static void scan_dir(struct pod_scan *ps, const char *dir, int depth,
		     const struct workload_obj *pod)
{
	struct dirent *de;
	DIR *d;

	if (depth > 5 || !(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		const struct workload_obj *w = pod;
		char path[1024];
		struct stat st;

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (!w)
			w = pod_of_dir(ps->c, de->d_name, depth);
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path) ||
		    stat(path, &st))
			continue;
		if (w)
			scan_add(ps, st.st_ino, w); /* cgroup v2: the id is the inode number */
		if (w && !pod) { /* the pod's own cgroup: name the pod for the CLI, once */
			char wl[256];

			if (ps->nlocal == ps->caplocal) {
				ps->caplocal = ps->caplocal ? 2 * ps->caplocal : 16;
				ps->local = realloc(ps->local, ps->caplocal * sizeof(*ps->local));
				ps->local_cg =
				    realloc(ps->local_cg, ps->caplocal * sizeof(*ps->local_cg));
				if (!ps->local || !ps->local_cg)
					abort();
			}
			ps->local_cg[ps->nlocal] = strdup(path);
			ps->local[ps->nlocal++] = w;

			config_workload_name(w, wl, sizeof(wl));
			put_name4(ps->a->sync, BM_NAME_POD, config_pod_id(w), w->ns, wl, w->name,
				  kv_get(&w->labels, "version"));
		}
		scan_dir(ps, path, depth + 1, w);
	}
	closedir(d);
}

/* Map the cgroup ids of local pods to the pods of the config (bm_pod), and name them.
 * Returns 0, or -1 when the zero-trust state (STRICT and policy tables) is not as wanted. */
static int sync_pods(struct agent *a, const struct mesh_config *c)
{
	int rc = 0;

	struct pod_scan ps = {.a = a, .c = c, .n = 1, .cap = 64};

	ps.pods = calloc(ps.cap, sizeof(*ps.pods));
	if (!ps.pods)
		abort();
	/* entry 0: processes in cgroups that are no known pod */
	ps.pods[0].pod.flags = a->unmatched_mesh ? BM_POD_F_IN_MESH : 0;
	scan_dir(&ps, a->cgroup, 0, NULL);
	if (ps.n > BM_MAX_PODS)
		pr_warn("bm_pod full: %d local pod cgroups, capacity %d; the rest are unmatched",
			ps.n, BM_MAX_PODS);
	/* policy before membership: a new pod's STRICT entries are in before its cgroup is */
	if (secsync_workloads(a->sec, c, a->applied_gen, ps.local, ps.nlocal)) {
		pr_err("zero-trust state (STRICT and policy tables) not fully written; retrying at "
		       "the next rescan");
		rc = -1;
	}
	if (a->pn) {
		struct podnet_pod *pp = calloc(ps.nlocal + 1, sizeof(*pp));
		int covered;

		if (!pp)
			abort();
		for (int i = 0; i < ps.nlocal; i++) {
			pp[i].pod_id = config_pod_id(ps.local[i]);
			pp[i].cgroup = ps.local_cg[i];
			pp[i].hbone = a->tun && config_in_mesh(c, ps.local[i]);
			fill_pod(&pp[i].pod, c, ps.local[i]);
		}
		covered = podnet_sync(a->pn, pp, ps.nlocal);
		if (covered < ps.nlocal)
			pr_debug("podnet: %d of %d local pods covered", covered, ps.nlocal);
		/* pods verified at their veth need no second address check in the cgroup hook */
		for (int i = 0; i < ps.nlocal; i++)
			for (int j = 1; pp[i].sav && j < ps.n; j++)
				if (ps.pods[j].pod.pod_id == pp[i].pod_id)
					ps.pods[j].pod.flags |= BM_POD_F_SAV_TC;
		free(pp);
	}
	if (sync_set_pods(a->sync, ps.pods, ps.n > BM_MAX_PODS ? BM_MAX_PODS : ps.n)) {
		pr_err("local pods (bm_pod, bm_podaddr) not fully written; retrying at the next "
		       "rescan");
		rc = -1; /* a pod not marked in the mesh is treated as outside it */
	}
	if (a->certs) {
		struct certs_want *cw = calloc(ps.nlocal + 2, sizeof(*cw));
		char(*pods)[256] = calloc(ps.nlocal + 2, sizeof(*pods));
		int n = 0;

		if (!cw || !pods)
			abort();
		if (a->ingress) { /* the gateway's own identity (the CA grants it to
				     --ingress-nodes) */
			snprintf(pods[n], sizeof(pods[n]), "%s/%s", GW_NS, GW_NAME);
			cw[n] = (struct certs_want){.ns = GW_NS, .sa = GW_SA, .pod = pods[n]};
			n++;
		}
		for (int i = 0; i < ps.nlocal; i++) {
			const struct workload_obj *w = ps.local[i];

			if (!config_in_mesh(c, w))
				continue;
			snprintf(pods[n], sizeof(pods[n]), "%s/%s", w->ns, w->name);
			cw[n] = (struct certs_want){.ns = w->ns,
						    .sa = w->service_account ? w->service_account
									     : "default",
						    .pod = pods[n]};
			n++;
		}
		if (certs_sync(a->certs, cw, n, time(NULL)) && a->tun) {
			struct idset *ids = certs_idset(a->certs);

			tunnel_publish(a->tun, a->current, ids);
			idset_put(ids);
		}
		{
			struct idset *ids = certs_idset(a->certs);

			a->ids_ready = true;
			for (int i = 0; i < n && a->ids_ready; i++)
				a->ids_ready = ids && idset_find(ids, cw[i].ns, cw[i].sa);
			idset_put(ids);
		}
		free(cw);
		free(pods);
	}
	for (int i = 0; i < ps.nlocal; i++)
		free(ps.local_cg[i]);
	free(ps.local_cg);
	free(ps.pods);
	free(ps.local);
	return rc;
}

/* ---------- applying config ---------- */

/*
 * One load of the config directory, done on the worker thread: parse and validate each
 * object, put back the last good version of each rejected one (from the config in force,
 * which the job holds a reference to), resolve. Objects are judged one at a time, as the API
 * server does: only a directory that cannot be read at all keeps the old config whole.
 */
struct load_job {
	const char *dir;      /* or NULL */
	struct kube_snap snap; /* the API server's objects (--kube), read before the files */
	uint64_t snap_gen;
	int done_fd;
	uint64_t t0, stamp;   /* t0: when the change was seen (now_us) */
	uint64_t t_read, t_resolved; /* read and validated; resolved (now_us) */
	int changed;	      /* objects changed since prev (config_changes) */
	struct cfgref *prev; /* the config in force when the load started, or NULL */
	bool unreadable;     /* the directory itself */
	struct mesh_config *c;
	struct rs_table t;
	struct diags d;
};

static void *load_worker(void *arg)
{
	struct load_job *j = arg;
	uint64_t one = 1;

	j->c = config_new();
	j->c->keep_sources = true;
	for (int i = 0; i < j->snap.n; i++) {
		size_t len;
		const char *json = kube_obj_json(j->snap.v[i], &len);

		config_load_mem(j->c, kube_obj_name(j->snap.v[i]), json, len, &j->d);
	}
	/* before reading: a later change reloads again. With the API server, the oldest
	 * resourceVersion every kind has seen (what `lab apply` waits for) */
	j->stamp = j->snap.rv_min;
	/* files unchanged since the config in force are not parsed again */
	j->unreadable =
	    j->dir && config_load_dir_from(j->c, j->dir, j->prev ? j->prev->c : NULL, &j->d) < 0;
	if (j->dir) /* what it listed, before reading: a later change loads again */
		j->stamp = j->c->dir_stamp ? j->c->dir_stamp : config_dir_stamp(j->dir);
	if (!j->dir)
		config_index(j->c); /* pod ids, as config_load_dir gives them */
	if (!j->unreadable) {
		config_retain(j->c, j->prev ? j->prev->c : NULL);
		j->t_read = now_us();
		resolve(j->c, &j->t, &j->d);
		j->changed = config_changes(j->c, j->prev ? j->prev->c : NULL);
	}
	j->t_resolved = now_us();
	if (write(j->done_fd, &one, sizeof(one)) < 0)
		abort(); /* an eventfd write cannot fail short of a bug */
	return NULL;
}

static void reload_start(struct agent *a)
{
	struct load_job *j;

	if (a->loading) {
		a->reload_again = true; /* files changed while it read them: again, after */
		return;
	}
	/* nothing from the API server until every kind is listed: a half-listed cluster
	 * (services without their pods) would take backends away; the pinned state serves */
	if (a->kube && !kube_synced(a->kube))
		return;
	j = calloc(1, sizeof(*j));
	if (!j)
		abort();
	j->dir = a->config_dir;
	j->done_fd = a->loaded_fd;
	if (a->kube && kube_snapshot(a->kube, &j->snap)) {
		/* an empty snapshot would take every service away: keep what is in force */
		pr_warn("config: no memory for the API server's objects; trying again in 1 s");
		free(j);
		a->retry_apply_ms = now_ms() + 1000;
		return;
	}
	j->prev = a->current ? cfgref_get(a->current) : NULL;
	j->t0 = now_us();
	a->job = j;
	a->loading = true;
	a->reload_again = false;
	if (pthread_create(&a->loader, NULL, load_worker, j)) {
		pr_warn("config: cannot start the loader thread: %s", strerror(errno));
		load_worker(j); /* then here, once */
	}
}

/*
 * Each rejected object, in the log and in <run dir>/rejected (read by `bpfmesh status`): one
 * line per object in the diagnostics' format, saying what stays in force instead.
 */
static void report_rejected(struct agent *a, const struct mesh_config *c)
{
	char path[600], tmp[640];
	FILE *f;

	snprintf(path, sizeof(path), "%s/rejected", a->run_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	for (int i = 0; i < c->nrejected; i++) {
		const struct rejected_obj *r = &c->rejected[i];
		char line[2400], kept[700];

		if (r->kept && r->object)
			snprintf(kept, sizeof(kept), "its last good version (%s:%d) stays in force",
				 r->kept_from.file, r->kept_from.line);
		else if (r->kept)
			snprintf(kept, sizeof(kept), "the objects it had stay in force");
		else
			snprintf(kept, sizeof(kept), "not applied (no earlier version)");
		snprintf(line, sizeof(line), "%s:%d: %s%s%s%s%s; %s", r->pos.file, r->err_line,
			 r->object ? r->object : "", r->object ? ": " : "",
			 r->field ? r->field : "", r->field ? ": " : "", r->msg, kept);
		pr_warn("config: rejected %s", line);
		if (f)
			fprintf(f, "%s\n", line);
	}
	if (!f || fclose(f) || rename(tmp, path)) {
		pr_warn("%s: %s", path, strerror(errno));
		unlink(tmp);
	}
}

/* ---------- the HTTP path's table ---------- */

static bool env_local(void *arg, const struct workload_obj *w)
{
	return !secsync_remote(((struct agent *)arg)->sec, w);
}

static bool env_tunnel(void *arg, const struct workload_obj *w, int port)
{
	struct agent *a = arg;

	return a->tun && secsync_tunnelled(a->sec, a->current->c, w, port);
}

static uint32_t env_backend(void *arg, const struct rs_backend *b)
{
	return sync_backend_lookup(((struct agent *)arg)->sync, b);
}

/* What the HTTP path routes by, from the config just put in force. */
static void publish_l7(struct agent *a, const struct rs_table *t)
{
	struct l7_env env = {.local = env_local,
			     .tunnel = env_tunnel,
			     .backend_id = env_backend,
			     .arg = a,
			     .ingress = a->ingress ? &a->ingress_labels : NULL};
	struct l7_table *lt;

	if (!a->l7)
		return;
	lt = l7_table_build(a->current, t, &env);
	for (int i = 0; lt && i < lt->ngwports; i++) /* HTTPS servers that cannot be served */
		for (int k = 0; k < lt->gwports[i].ntls; k++)
			if (!lt->gwports[i].tlsv[k].ctx)
				pr_warn("gateway %s/%s port %u: %s: its hosts get no TLS handshake",
					lt->gwports[i].tlsv[k].gw->ns,
					lt->gwports[i].tlsv[k].gw->name, lt->gwports[i].port,
					lt->gwports[i].tlsv[k].err);
	l7_publish(a->l7, a->current, lt);
	l7_table_put(lt);
	if (a->xdp) { /* the ports the gateway listens on now (l7_publish bound them) */
		uint16_t ports[BM_XDP_MAX_PORTS];
		int n = l7_gw_ports(a->l7, ports, BM_XDP_MAX_PORTS);

		xdpgw_sync(a->xdp, a->current ? a->current->c : NULL, ports, n, &a->gw,
			   a->topts.root_ns);
	}
}

/* The worker is done: put its result in force (map writes stay on this thread). */
static void reload_finish(struct agent *a)
{
	struct load_job *j = a->job;
	struct sync_result res;
	uint64_t v;
	int err;

	if (read(a->loaded_fd, &v, sizeof(v)) < 0 || !j)
		return;
	pthread_join(a->loader, NULL);
	a->job = NULL;
	a->loading = false;
	if (j->prev)
		cfgref_put(j->prev);
	j->snap_gen = j->snap.gen;
	kube_snap_free(&j->snap);
	unsigned long long writes0 = dp_writes;

	err = j->unreadable ? -EIO : sync_apply(a->sync, &j->t, &j->d, &res);
	log_diags(&j->d);
	if (err) {
		sync_set_meta(a->sync, 0, a->loaded, j->stamp);
		pr_warn("config in %s not applied (%s); generation %llu stays in force",
			a->config_dir ? a->config_dir : "the API server",
			j->unreadable ? "cannot read the directory" : "map writes failed",
			(unsigned long long)a->applied_gen);
		config_free(j->c);
	} else {
		struct mesh_config *c = j->c;

		cfgref_put(a->current);
		a->current = cfgref_new(c);
		a->applied_gen++;
		bool sec_ok = secsync_backends(a->sec, a->sync, c, &j->t) == 0;

		if (!sec_ok)
			pr_err("mTLS backend flags not fully written: connects to some remote "
			       "workloads are not tunnelled (a STRICT peer refuses them); applying "
			       "again in 1 s");
		if (a->tun) {
			struct idset *ids = a->certs ? certs_idset(a->certs) : NULL;

			tunnel_publish(a->tun, a->current, ids);
			idset_put(ids);
		}
		publish_l7(a, &j->t);
		a->kube_gen = j->snap_gen;
		sec_ok = sync_pods(a, c) == 0 && sec_ok;
		a->loaded = 1;
		/* services are in force either way; the apply reads as failed until the security
		 * state is too (bpfmesh status: "last apply: REJECTED") */
		struct sync_apply_stats as = {
		    .objects = c->nsources,
		    .changed = j->changed,
		    .writes = (uint32_t)(dp_writes - writes0),
		    .us = (uint32_t)(now_us() - j->t0),
		};

		sync_set_meta(a->sync, sec_ok, 1, j->stamp);
		sync_set_apply_stats(a->sync, &as);
		a->retry_apply_ms = sec_ok ? 0 : now_ms() + 1000;
		report_rejected(a, c);
		/* the time last: "in N ms" ends the line (make bench reads it) */
		pr_info("applied config: %d service ports (%d written, %d unchanged, %d removed), "
			"%d backends; %u of %u objects changed, %u map entries written; read %llu "
			"ms (%d of %d files parsed), resolve %llu ms, write %llu ms, in %llu ms",
			j->t.nservices, res.services_written, res.services_unchanged,
			res.services_deleted, res.backends, as.changed, as.objects, as.writes,
			(unsigned long long)(j->t_read - j->t0) / 1000, c->files_parsed,
			c->files_parsed + c->files_reused,
			(unsigned long long)(j->t_resolved - j->t_read) / 1000,
			(unsigned long long)(now_us() - j->t_resolved) / 1000,
			(unsigned long long)as.us / 1000);
	}
	rs_free(&j->t);
	diags_free(&j->d);
	free(j);
	if (a->reload_again && a->ho_conn < 0)
		reload_start(a);
}

static bool agent_is_ready(struct agent *a)
{
	return a->loaded && dp_links_attached(a->pin_dir);
}

/* GET /metrics and /healthz/ready (httpd.h calls this on the control thread). */
static const char *http_answer(void *arg, const char *path, FILE *m, const char **ctype)
{
	struct agent *a = arg;

	if (!strcmp(path, "/metrics") || !strncmp(path, "/metrics?", 9)) {
		*ctype = "text/plain; version=0.0.4; charset=utf-8";
		if (a->current) {
			/* the tunnel's deliveries to local pods: their destination side */
			struct metrics_dest_tcp *dest =
			    a->tun ? calloc(TUNNEL_MAX_DEST, sizeof(*dest)) : NULL;
			int nd = dest ? tunnel_dest_counts(a->tun, dest, TUNNEL_MAX_DEST) : 0;

			metrics_render(&a->fds, a->current->c, a->pin_dir,
				       a->tun ? a->topts.trust_domain : NULL, dest, nd, m);
			free(dest);
		}
		if (a->tun)
			tunnel_metrics(a->tun, m);
		if (a->l7)
			l7_metrics(a->l7, m);
		xdpgw_metrics(a->xdp, m);
		fprintf(m,
			"# HELP bpfmesh_config_rejected_objects Objects of the config directory "
			"rejected as invalid (the last good version of each, if any, stays in "
			"force).\n# TYPE bpfmesh_config_rejected_objects gauge\n"
			"bpfmesh_config_rejected_objects %d\n",
			a->current ? a->current->c->nrejected : 0);
		if (a->certs)
			fprintf(m,
				"# HELP bpfmesh_certificates_issued_total Workload certificates "
				"issued or loaded.\n# TYPE bpfmesh_certificates_issued_total "
				"counter\nbpfmesh_certificates_issued_total %lu\n",
				certs_issued(a->certs));
		return "200 OK";
	}
	if (!strcmp(path, "/healthz/ready")) {
		/* an upgrade's new agent is ready once it accepts (READY), not before: the
		 * orchestrator must not stop the old one earlier */
		bool ok = agent_is_ready(a) && a->ho_new < 0 && !a->ho_given && !a->draining;

		fputs(ok ? "ready\n" : "not ready\n", m);
		return ok ? "200 OK" : "503 Service Unavailable";
	}
	fputs("not found\n", m);
	return "404 Not Found";
}

static sigset_t block_signals(void)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	return mask;
}

static int setup_fds(struct agent *a, struct pollfd *p)
{
	/* 100 ms: outlier ticks run at each host's own interval, checked this often */
	struct itimerspec its = {.it_interval = {0, TICK_MS * 1000000},
				 .it_value = {0, TICK_MS * 1000000}};
	sigset_t mask = block_signals();

	p[SLOT_SIGNAL] = (struct pollfd){signalfd(-1, &mask, SFD_CLOEXEC), POLLIN, 0};
	p[SLOT_INOTIFY] = (struct pollfd){inotify_init1(IN_NONBLOCK | IN_CLOEXEC), POLLIN, 0};
	p[SLOT_TIMER] =
	    (struct pollfd){timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), POLLIN, 0};
	p[SLOT_LOADED] = (struct pollfd){a->loaded_fd, POLLIN, 0};
	p[SLOT_KUBE] = (struct pollfd){a->kube_fd, POLLIN, 0};
	p[SLOT_HANDOVER] = (struct pollfd){a->ho_fd, POLLIN, 0};
	p[SLOT_HOCONN] = (struct pollfd){-1, POLLIN, 0};
	for (int i = 0; i < SLOT_HANDOVER; i++)
		if (p[i].fd < 0)
			return -1;
	if (a->config_dir &&
	    (a->config_wd = inotify_add_watch(p[SLOT_INOTIFY].fd, a->config_dir,
					      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
						  IN_DELETE | IN_CREATE | IN_ATTRIB)) < 0) {
		pr_warn("watch %s: %s", a->config_dir, strerror(errno));
		return -1;
	}
	/* New pod cgroups show up here; a missed event is caught by the 1 s rescan anyway. */
	inotify_add_watch(p[SLOT_INOTIFY].fd, a->cgroup, IN_CREATE | IN_DELETE);
	return timerfd_settime(p[SLOT_TIMER].fd, 0, &its, NULL);
}

/* <run dir>/api, read by `bpfmesh status`: the API server's watch as it is now. */
static void write_api_state(struct agent *a)
{
	char st[300], path[600], tmp[640];
	FILE *f;

	if (!a->kube)
		return;
	kube_status(a->kube, st, sizeof(st));
	if (!strcmp(st, a->api_state))
		return;
	snprintf(a->api_state, sizeof(a->api_state), "%s", st);
	pr_info("api: %s", st);
	snprintf(path, sizeof(path), "%s/api", a->run_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%s\n", st) < 0 || fclose(f) || rename(tmp, path))
		pr_warn("%s: %s", path, strerror(errno));
}

/* Nothing changed since the config in force was read: it is what the API server holds at
 * its newer resourceVersion too (bookmarks move it), which is what `lab apply` waits for. */
static void kube_stamp(struct agent *a)
{
	uint64_t rv;

	if (a->kube && !a->config_dir && a->loaded && !a->loading && !a->retry_apply_ms &&
	    kube_gen(a->kube, &rv) == a->kube_gen && rv)
		sync_set_stamp(a->sync, rv);
}

static void on_tick(struct agent *a, uint64_t ticks)
{
	sync_tick(a->sync);
	sync_health_tick(a->sync, now_ms() * 1000000ULL);
	for (uint64_t i = 0; i < ticks; i++) {
		a->ticks++;
		if (a->current && a->ticks % TICK_PODS == 0)
			sync_pods(a, a->current->c);
		if (a->ticks % TICK_PODS == 0)
			write_api_state(a);
		kube_stamp(a);
		if (a->retry_apply_ms && now_ms() >= a->retry_apply_ms) {
			a->retry_apply_ms = 0;
			reload_start(a);
		}
	}
}

/* An inotify event that says a config file is complete: written and closed, renamed into
 * place or away, deleted (not a hidden file: editors' and tools' temporaries). */
static bool config_file_done(const struct agent *a, const struct inotify_event *ev)
{
	return ev->wd == a->config_wd && ev->len && ev->name[0] != '.' &&
	       (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE));
}

/* ---------- upgrades: hand the listeners to the next agent, then drain ---------- */

/* systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram to
 * $NOTIFY_SOCKET (a path, or @ for the abstract namespace). Nothing when it is not set. */
static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	socklen_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(un.sun_path))
		return;
	memcpy(un.sun_path, path, strlen(path));
	if (path[0] == '@')
		un.sun_path[0] = 0;
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&un, len) < 0)
		pr_warn("NOTIFY_SOCKET %s: %s", path, strerror(errno));
	close(fd);
}

/* SIGUSR2 (the systemd unit's ExecReload): start the binary installed now with our
 * arguments; it takes over from us (handover.h) and tells systemd it is the main process. */
static void reexec(struct agent *a)
{
	char exe[PATH_MAX], buf[8192], *av[256];
	static const char gone[] = " (deleted)";
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1), len;
	int fd, k = 0;
	sigset_t none;
	pid_t pid;

	if (n <= 0) {
		pr_warn("SIGUSR2: /proc/self/exe: %s; not upgrading", strerror(errno));
		return;
	}
	if (a->draining || a->ho_given || a->ho_conn >= 0 || a->ho_new >= 0) {
		pr_warn("SIGUSR2: an upgrade is under way already; ignored");
		return;
	}
	exe[n] = 0;
	if ((size_t)n > strlen(gone) && !strcmp(exe + n - strlen(gone), gone))
		exe[n - strlen(gone)] = 0; /* replaced on disk: the new file is the upgrade */
	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (len <= 0 || len >= (ssize_t)sizeof(buf) - 1) {
		pr_warn("SIGUSR2: cannot read all of /proc/self/cmdline; not upgrading");
		return;
	}
	buf[len] = 0;
	for (char *q = buf; q < buf + len; q += strlen(q) + 1) {
		if (k == 255) {
			pr_warn("SIGUSR2: more than 254 arguments; not upgrading");
			return;
		}
		av[k++] = q;
	}
	av[k] = NULL;
	pr_info("SIGUSR2: starting %s to take over from this agent", exe);
	pid = fork();
	if (pid == 0) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(exe, av);
		_exit(127);
	}
	if (pid < 0)
		pr_warn("SIGUSR2: fork: %s", strerror(errno));
}

/* run_dir/serving: the pid of the agent that accepts (lab agent upgrade waits for it). */
static void write_serving(struct agent *a)
{
	char path[600], tmp[620];
	FILE *f;

	snprintf(path, sizeof(path), "%s/serving", a->run_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%d\n", (int)getpid());
	if (fclose(f) || rename(tmp, path))
		unlink(tmp);
	a->serving_written = true;
	snprintf(tmp, sizeof(tmp), "MAINPID=%d\nREADY=1", (int)getpid());
	sd_notify_msg(tmp); /* systemd (Type=notify): this is the service's process now */
}

/* The next agent asked: our listeners and the lock to it; we accept until it is ready. */
static void handover_give(struct agent *a, struct pollfd *p)
{
	int fds[HANDOVER_MAX_FDS], n = 0;

	n += httpd_listeners(a->httpd, fds + n, HANDOVER_MAX_FDS - n);
	if (a->tun)
		n += tunnel_listeners(a->tun, fds + n, HANDOVER_MAX_FDS - n);
	if (a->l7)
		n += l7_listeners(a->l7, fds + n, HANDOVER_MAX_FDS - n);
	if (handover_send(a->ho_conn, fds, n)) {
		pr_warn("handover: to agent pid %d: %s; this agent goes on serving", a->ho_pid,
			strerror(errno));
		close(a->ho_conn);
		a->ho_conn = -1;
		return;
	}
	/* the maps are the next agent's from here: no config, no pod rescans, no outlier
	 * writes */
	if (a->l7)
		l7_give_maps(a->l7);
	close(a->ho_fd);
	a->ho_fd = p[SLOT_HANDOVER].fd = -1;
	close(a->lock);
	a->lock = -1;
	if (handover_unlocked(a->ho_conn))
		pr_warn("handover: LOCK to agent pid %d: %s", a->ho_pid, strerror(errno));
	a->ho_given = true;
	p[SLOT_HOCONN].fd = a->ho_conn;
	pr_info("handover: agent pid %d has the %d listeners and the lock; accepting until it "
		"is ready",
		a->ho_pid, n);
}

/* The next agent is ready (READY) or went away: drain, or serve on. */
static void handover_answer(struct agent *a, struct pollfd *p)
{
	bool ready = handover_read_ready(a->ho_conn);
	unsigned long busy;

	close(a->ho_conn);
	a->ho_conn = p[SLOT_HOCONN].fd = -1;
	a->ho_given = false;
	if (!ready && !a->term_after) {
		a->lock = take_lock(a, 5000, true);
		if (a->lock >= 0) {
			/* it may have written maps and attached its programs: our picture of the
			 * maps is stale, so a fresh agent (this binary) reads them back and takes
			 * over from us; until it is ready we accept, as before */
			pr_warn("handover: agent pid %d went away before it was ready; serving on "
				"until a fresh agent takes over",
				a->ho_pid);
			a->ho_fd = p[SLOT_HANDOVER].fd = handover_listen(a->run_dir);
			write_serving(a);
			reexec(a);
			return;
		}
		pr_warn("handover: agent pid %d went away and another holds the lock; draining",
			a->ho_pid);
	}
	httpd_stop_listening(a->httpd);
	if (a->tun)
		tunnel_drain(a->tun);
	if (a->l7)
		l7_drain(a->l7);
	kube_stop(a->kube);
	a->kube = NULL;
	p[SLOT_KUBE].fd = -1;
	p[SLOT_INOTIFY].fd = -1;
	a->draining = true;
	a->drain_until = now_ms() + (uint64_t)(a->drain_timeout_ns / 1000000);
	a->drain_log = now_ms();
	busy = (a->tun ? tunnel_busy(a->tun) : 0) + (a->l7 ? l7_busy(a->l7) : 0);
	pr_info("handover: agent pid %d serves; draining: relaying %lu connections until they "
		"close (at most %lld s)",
		a->ho_pid, busy, (long long)(a->drain_timeout_ns / 1000000000LL));
}

/* A next agent asks: answered now, or when the config load under way has finished (so
 * this agent writes no map once the next one runs). */
static void handover_accept(struct agent *a, struct pollfd *p)
{
	int conn = accept4(a->ho_fd, NULL, NULL, SOCK_CLOEXEC), pid;

	if (conn < 0)
		return;
	if (a->ho_conn >= 0 || (pid = handover_read_request(conn)) < 0) {
		close(conn);
		return;
	}
	pr_info("handover: agent pid %d asks for the listeners", pid);
	a->ho_conn = conn;
	a->ho_pid = pid;
	if (!a->loading)
		handover_give(a, p);
}

/* We are the next agent: accept once the config is in force and every local mesh pod has
 * its certificate (or after 30 s in any case), and tell the earlier agent. */
static void handover_maybe_ready(struct agent *a)
{
	bool ready = agent_is_ready(a) && (!a->certs || a->ids_ready);

	if (a->ho_new < 0) {
		/* the config in force: its Gateway ports claimed theirs (l7.c); the rest go */
		if (agent_is_ready(a))
			handover_release_unclaimed();
		return;
	}
	if (!ready && now_ms() < a->ho_ready_by)
		return;
	handover_release_unclaimed();
	if (a->tun)
		tunnel_release(a->tun);
	if (a->l7)
		l7_release(a->l7);
	handover_ready(a->ho_new);
	a->ho_new = -1;
	write_serving(a);
	if (ready)
		pr_info("handover: config in force, certificates held: accepting; the earlier "
			"agent drains");
	else
		pr_warn("handover: not ready after 30 s (config %s, certificates %s): accepting "
			"anyway; the earlier agent drains",
			agent_is_ready(a) ? "in force" : "not in force",
			a->ids_ready ? "held" : "missing");
}

/* Draining: done when nothing is relayed any more, or at --drain-timeout. */
static bool drained(struct agent *a)
{
	unsigned long busy = (a->tun ? tunnel_busy(a->tun) : 0) + (a->l7 ? l7_busy(a->l7) : 0);
	uint64_t n = now_ms();

	if (!busy) {
		pr_info("handover: drained: every connection this agent relayed has closed; "
			"exiting");
		return true;
	}
	if (n >= a->drain_until) {
		pr_warn("handover: --drain-timeout passed: closing the %lu connections still "
			"relayed; exiting",
			busy);
		return true;
	}
	if (n - a->drain_log >= 60000) {
		a->drain_log = n;
		pr_info("handover: draining: %lu connections still relayed", busy);
	}
	return false;
}

static int loop(struct agent *a)
{
	struct pollfd p[SLOT_MAX + HTTPD_MAX_FDS];
	uint64_t reload_at = 0;
	char buf[4096] __attribute__((aligned(8)));

	if (setup_fds(a, p)) {
		pr_warn("agent setup: %s", strerror(errno));
		return 1;
	}
	reload_start(a);
	for (;;) {
		int nh = httpd_fds(a->httpd, p + SLOT_HTTP),
		    timeout = httpd_timeout(a->httpd, now_ms());
		uint64_t n = now_ms();

		if (reload_at) {
			int left = reload_at > n ? (int)(reload_at - n) : 0;

			timeout = timeout < 0 || left < timeout ? left : timeout;
		}
		if (poll(p, SLOT_HTTP + nh, timeout) < 0 && errno != EINTR)
			return 1;
		httpd_run(a->httpd, p + SLOT_HTTP, nh, now_ms());
		if (p[SLOT_SIGNAL].revents) {
			struct signalfd_siginfo si;

			if (read(p[SLOT_SIGNAL].fd, &si, sizeof(si)) != sizeof(si))
				si.ssi_signo = 0;
			if (si.ssi_signo == SIGTERM && a->ho_given) {
				/* the next agent is not ready yet: drain once it is, then exit */
				a->term_after = true;
				pr_info("signal %u: draining once the next agent is ready",
					si.ssi_signo);
			} else if (si.ssi_signo == SIGTERM && a->draining) {
				/* the orchestrator stops the pod it replaced: the drain goes on to
				 * its end (or SIGINT, SIGKILL, --drain-timeout) */
				pr_info("signal %u: draining goes on (SIGINT ends it now)",
					si.ssi_signo);
			} else if (si.ssi_signo == SIGUSR2) {
				reexec(a);
			} else if (si.ssi_signo && si.ssi_signo != SIGHUP) {
				pr_info("signal %u: stopping; pinned datapath stays in force",
					si.ssi_signo);
				return 0;
			} else if (!a->draining) {
				reload_at = now_ms();
			}
		}
		if (p[SLOT_HANDOVER].fd >= 0 && p[SLOT_HANDOVER].revents)
			handover_accept(a, p);
		if (p[SLOT_HOCONN].fd >= 0 && p[SLOT_HOCONN].revents)
			handover_answer(a, p);
		if (p[SLOT_INOTIFY].revents) {
			bool done = false;
			ssize_t len;

			while ((len = read(p[SLOT_INOTIFY].fd, buf, sizeof(buf))) > 0)
				for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= len;) {
					const struct inotify_event *ev = (const void *)(buf + off);

					done |= config_file_done(a, ev);
					off += sizeof(*ev) + ev->len;
				}
			/* A config file closed after writing, renamed into place or removed is read
			 * at once; anything else (a file just created, a pod cgroup) after a
			 * debounce: editors and `kubectl cp` write in several steps. */
			reload_at = now_ms() + (done ? 0 : RELOAD_DEBOUNCE_MS);
		}
		if (p[SLOT_KUBE].revents) {
			uint64_t v;

			if (read(a->kube_fd, &v, sizeof(v)) > 0 && !reload_at)
				reload_at = now_ms() + RELOAD_DEBOUNCE_MS;
			write_api_state(a);
		}
		if (p[SLOT_LOADED].revents) {
			reload_finish(a);
			write_api_state(a);
			if (a->ho_conn >= 0 && !a->ho_given && !a->loading)
				handover_give(a, p); /* asked during the load */
			handover_maybe_ready(a);
			if (!a->serving_written && a->ho_new < 0 && agent_is_ready(a))
				write_serving(a);
		}
		if (p[SLOT_TIMER].revents) {
			uint64_t ticks;

			if (read(p[SLOT_TIMER].fd, &ticks, sizeof(ticks)) < 0)
				ticks = 0;
			while (waitpid(-1, NULL, WNOHANG) > 0)
				; /* a successor (SIGUSR2) that failed to start */
			if (a->draining) {
				if (drained(a))
					return 0;
				continue;
			}
			if (!a->ho_given) /* given: the maps are the next agent's */
				on_tick(a, ticks);
			handover_maybe_ready(a);
		}
		if (a->draining || a->ho_conn >= 0)
			reload_at = 0; /* config is (about to be) the next agent's */
		if (reload_at && now_ms() >= reload_at) {
			reload_at = 0;
			reload_start(a);
		}
	}
}

/* The trust domain a CA directory was made for (bpfmesh ca init writes it). */
static void read_trust_domain(const char *dir, char *td, size_t len)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/trust-domain", dir);
	f = fopen(path, "r");
	if (f && fgets(td, (int)len, f))
		td[strcspn(td, "\r\n")] = 0;
	if (f)
		fclose(f);
}

/* Kernel state for PeerAuthentication/AuthorizationPolicy, and the mTLS tunnel when certs
 * are configured. The tunnel's sockets live in the node address's netns (the lab's node
 * namespaces; the host's own on a real node), entered after the metrics listeners. */
static int start_zero_trust(struct agent *a, char *td, size_t tdlen)
{
	struct secsync_opts so = {.root_ns = a->topts.root_ns,
				  .node_ip = a->topts.node_ip,
				  .node_ip6 = a->topts.node_ip6};
	bool want_tunnel = a->copts.ca_dir || a->copts.certs_dir || a->copts.ca_addr;
	char err[600];

	if (!a->topts.trust_domain) {
		if (a->copts.ca_dir)
			read_trust_domain(a->copts.ca_dir, td, tdlen);
		else if (a->copts.node_cert_dir)
			read_trust_domain(a->copts.node_cert_dir, td, tdlen);
		a->topts.trust_domain = td[0] ? td : "cluster.local";
	}
	if (want_tunnel && !a->topts.node_ip) {
		fprintf(stderr, "bpfmesh agent: --ca-addr/--ca-dir/--certs-dir need --node-ip\n");
		return -1;
	}
	if (a->netns) {
		int fd = open(a->netns, O_RDONLY | O_CLOEXEC);

		/* where --ratelimit-redis is: the agent's own namespace (the lab's host) */
		a->home_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET)) {
			pr_warn("netns %s: %s", a->netns, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}
	a->topts.node = a->node;
	a->topts.fds = &a->fds;
	a->topts.gateway = a->ingress ? &a->gw : NULL;
	a->topts.filter_out = dp_listener_prog(a->dp, DP_LISTEN_OUTBOUND);
	a->topts.filter_hbone = dp_listener_prog(a->dp, DP_LISTEN_HBONE);
	if (want_tunnel) {
		X509_STORE *trust;

		a->copts.trust_domain = a->topts.trust_domain;
		a->copts.run_dir = a->run_dir;
		a->copts.cert_ttl_s = a->topts.cert_ttl_s;
		a->certs = certs_new(&a->copts, err, sizeof(err));
		if (!a->certs) {
			pr_warn("certs: %s", err);
			return -1;
		}
		a->topts.cert_source = a->copts.ca_addr	 ? "certificates from the CA service"
				       : a->copts.ca_dir ? "certificates from the mesh CA"
							 : "certificates from files";
		trust = certs_trust(a->certs);
		a->tun = tunnel_new(&a->topts, trust);
		X509_STORE_free(trust);
		if (!a->tun)
			return -1;
	}
	if (a->topts.node_ip) {
		char alog[600];
		struct l7_opts lo = {.node = a->node,
				     .node_ip = a->topts.node_ip,
				     .workers = a->workers,
				     .fds = &a->fds,
				     .filter_prog = a->topts.filter_out,
				     .trust_domain = a->tun ? a->topts.trust_domain : NULL,
				     .root_ns = a->topts.root_ns,
				     .tun = a->tun,
				     .hold = a->topts.hold,
				     .access_log = alog,
				     .gateway = a->ingress ? &a->gw : NULL,
				     .ratelimit_redis = a->rl_redis,
				     .home_netns = a->home_ns,
				     .tracing_endpoint = a->tr_endpoint,
				     .tracing_proto = a->tr_proto,
				     .tracing_sampling = a->tr_sampling,
				     .ratelimit_files = a->rl_files,
				     .nratelimit_files = a->nrl_files};

		snprintf(alog, sizeof(alog), "%s/access.log", a->run_dir);
		a->l7 = l7_new(&lo);
		if (!a->l7)
			pr_warn("l7: the HTTP path is not available: ports that need it stay on the "
				"kernel path (per-connection routing)");
		else if (a->tun)
			tunnel_set_http(a->tun, l7_inbound, a->l7);
	}
	if (a->tun && tunnel_start(a->tun))
		return -1;
	if (a->l7 && l7_start(a->l7)) {
		l7_free(a->l7);
		a->l7 = NULL;
	}
	sync_set_l7(a->sync, a->l7 != NULL);
	so.trust_domain = a->topts.trust_domain;
	so.tunnel = a->tun != NULL;
	if (!a->tun || !tunnel_has_ip6(a->tun))
		so.node_ip6 = NULL; /* IPv6 is not tunnelled: refused to STRICT peers, as before */
	so.l7 = a->l7 != NULL;
	a->sec = secsync_new(&a->fds, &so);
	return a->sec ? 0 : -1;
}

/* A fatal signal: say so in the log (async-signal-safe: one write), then die of it. */
static void on_fatal(int sig)
{
	char msg[96];
	const char *name = sig == SIGSEGV   ? "SIGSEGV"
			   : sig == SIGBUS  ? "SIGBUS"
			   : sig == SIGABRT ? "SIGABRT"
			   : sig == SIGFPE  ? "SIGFPE"
			   : sig == SIGILL  ? "SIGILL"
					    : "fatal signal";
	int n = snprintf(msg, sizeof(msg), "FATAL agent killed by %s (signal %d)\n", name, sig);

	if (n > 0 && write(2, msg, n) < 0)
		msg[0] = 0;
	signal(sig, SIG_DFL);
	raise(sig);
}

static void process_signals(void)
{
	static const int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};

	/* a peer that resets while we write must cost that connection, not the agent: the
	 * agent once died silently mid-transfer of SIGPIPE's default action */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		signal(fatal[i], on_fatal);
	/* the control loop reads these from a signalfd (setup_fds): blocked here, before any
	 * thread starts, so that no thread takes one with its default action (which killed the
	 * agent on SIGTERM instead of stopping it, and would on SIGUSR2) */
	block_signals();
}

static void usage_to(FILE *f)
{
	fprintf(
	    f,
	    "usage: bpfmesh agent (--kube | --kubeconfig FILE | --config-dir DIR) --cgroup "
	    "CGROUP_DIR\n    --node NAME [--bpffs DIR] [--unmatched-cgroups mesh|plain] "
	    "[--accel on|off]\n"
	    "  --drain-timeout DURATION: an agent started while one of the same --node runs\n"
	    "  takes its listening sockets (an upgrade); the earlier one relays what it holds\n"
	    "  until that closes or this passes (default 1h), then exits\n"
	    "  --cluster-id ID: source_cluster/destination_cluster of the metrics (default\n"
	    "  Kubernetes, as Istio)\n"
	    "  --kube: watch the API server as a pod (KUBERNETES_SERVICE_HOST/PORT, the\n"
	    "  service account token and CA); --kubeconfig FILE: its current context. With\n"
	    "  --config-dir as well, the files add to what the API server holds\n"
	    "  processes in CGROUP_DIR that are in no <namespace>_<pod> child cgroup of "
	    "a\n  known Pod are mesh clients (default) or plain ones (even spread, no "
	    "policy)\n"
	    "  --accel on: pod-to-pod TCP on this node skips the TCP/IP stack (sockmap)\n"
	    "  [--strict-udp drop|pass]: drop plaintext UDP to STRICT pods (default pass:\n"
	    "  Istio does not capture UDP either)\n"
	    "  [--metrics-addr ADDR:PORT] [--health-addr ADDR:PORT]\n"
	    "mTLS between nodes (needs --node-ip and one of --ca-addr / --certs-dir / --ca-dir):\n"
	    "  --node-ip IP[,IPV6]   this node's address: the tunnel (15001, 15008) and the HTTP\n"
	    "                        path (15006) listen there; with an IPv6 address too (as\n"
	    "                        kubelet's dual-stack --node-ip), 15001 listens there as well\n"
	    "                        and IPv6 to remote mesh workloads is tunnelled\n"
	    "  --workers N           event loops of the HTTP path (default 2)\n"

	    "  --netns PATH          network namespace that holds --node-ip (default: ours)\n"
	    "  --ca-addr IP:PORT     ask the CA service (bpfmesh ca serve) for workload "
	    "certificates,\n                        as this node: --node-cert DIR (node.crt, "
	    "node.key, ca.crt)\n"
	    "  --ca-dir DIR          sign workload certificates with this CA key (one machine "
	    "only:\n                        any identity can be minted where the key is)\n"
	    "  --certs-dir DIR       or read them: DIR/<ns>/<sa>/ in cert-manager or SPIRE "
	    "layout,\n                        trust bundle DIR/ca.crt or DIR/bundle.pem\n"
	    "  --trust-domain TD     default: DIR/trust-domain of --ca-dir, else cluster.local\n"
	    "  --cert-ttl DURATION   workload certificate lifetime (default 24h; renewed at half)\n"
	    "  --root-namespace NS   Istio root namespace (default istio-system)\n"
	    "Ingress gateway (the HTTP path on --node-ip):\n"
	    "  --ingress             serve the Gateways (networking.istio.io) whose selector\n"
	    "                        the labels below satisfy, on --node-ip and each server's\n"
	    "                        port, as " GW_NS "/" GW_NAME "\n"
	    "  --ingress-labels K=V[,K=V]  this node's gateway labels (default\n"
	    "                        " GW_LABELS ")\n"
	    "  --ingress-syn-rate N  at XDP, at most N SYNs per second per source to the\n"
	    "                        gateway's ports (default 0: no limit); source blocks of\n"
	    "                        the gateway's AuthorizationPolicies are dropped there too\n"
	    "Rate limits (EnvoyFilters inserting envoy.filters.http.ratelimit):\n"
	    "  --ratelimit-redis HOST:PORT  the Redis that holds the global limits' counters\n"
	    "                        (envoyproxy/ratelimit's keys and fixed windows); without\n"
	    "                        it every global check fails and failure_mode_deny decides\n"
	    "  --ratelimit-config PATH  an envoyproxy/ratelimit config file (domain,\n"
	    "                        descriptors); repeatable; ConfigMaps ratelimit-config too\n"
	    "Tracing (spans of the HTTP path; Telemetry and MeshConfig providers first):\n"
	    "  --tracing-endpoint URL  the collector, e.g. http://HOST:9411/api/v2/spans (Zipkin,\n"
	    "                        Jaeger) or http://HOST:4318/v1/traces (OTLP)\n"
	    "  --tracing-protocol zipkin|otlp-http|otlp-http-json  default zipkin\n"
	    "  --tracing-sampling PERCENT  where Telemetry sets none (default 1, as Istio)\n");
}

static void usage(void)
{
	usage_to(stderr);
}

/* --node-ip IPV4[,IPV6] (either order, as kubelet's): an IPv4 address, and an IPv6 one. */
static int parse_node_ip(struct agent *a, const char *arg)
{
	char buf[160], *save = NULL;
	unsigned char bin[16];

	snprintf(buf, sizeof(buf), "%s", arg);
	a->node_ip4[0] = a->node_ip6[0] = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (inet_pton(AF_INET, t, bin) == 1 && !a->node_ip4[0]) {
			snprintf(a->node_ip4, sizeof(a->node_ip4), "%s", t);
		} else if (inet_pton(AF_INET6, t, bin) == 1 && !a->node_ip6[0]) {
			inet_ntop(AF_INET6, bin, a->node_ip6, sizeof(a->node_ip6)); /* canonical */
		} else {
			fprintf(
			    stderr,
			    "bpfmesh agent: --node-ip %s: %s is not an IPv4 or IPv6 address (or "
			    "the second of its family)\n",
			    arg, t);
			return -1;
		}
	}
	if (!a->node_ip4[0]) {
		fprintf(stderr,
			"bpfmesh agent: --node-ip %s: an IPv4 address is needed (the "
			"tunnel and the HTTP path listen there)\n",
			arg);
		return -1;
	}
	a->topts.node_ip = a->node_ip4;
	a->topts.node_ip6 = a->node_ip6[0] ? a->node_ip6 : NULL;
	return 0;
}

int cmd_agent(int argc, char **argv)
{
	if (args_help(argc, argv)) {
		usage_to(stdout);
		return 0;
	}
	static const struct option opts[] = {{"config-dir", required_argument, 0, 'c'},
					     {"cgroup", required_argument, 0, 'g'},
					     {"node", required_argument, 0, 'n'},
					     {"bpffs", required_argument, 0, 'b'},
					     {"unmatched-cgroups", required_argument, 0, 'u'},
					     {"metrics-addr", required_argument, 0, 'm'},
					     {"health-addr", required_argument, 0, 'H'},
					     {"node-ip", required_argument, 0, 'I'},
					     {"netns", required_argument, 0, 'N'},
					     {"ca-dir", required_argument, 0, 'C'},
					     {"certs-dir", required_argument, 0, 'D'},
					     {"trust-domain", required_argument, 0, 'T'},
					     {"cert-ttl", required_argument, 0, 'L'},
					     {"root-namespace", required_argument, 0, 'R'},
					     {"accel", required_argument, 0, 'a'},
					     {"ca-addr", required_argument, 0, 'A'},
					     {"node-cert", required_argument, 0, 'K'},
					     {"strict-udp", required_argument, 0, 'U'},
					     {"workers", required_argument, 0, 'W'},
					     {"kube", no_argument, 0, 'k'},
					     {"cluster-id", required_argument, 0, 'Z'},
					     {"kubeconfig", required_argument, 0, 'q'},
					     {"drain-timeout", required_argument, 0, 'd'},
					     {"ingress", no_argument, 0, 'G'},
					     {"ingress-labels", required_argument, 0, 'j'},
					     {"ingress-syn-rate", required_argument, 0, 'J'},
					     {"ratelimit-redis", required_argument, 0, 'r'},
					     {"ratelimit-config", required_argument, 0, 0x101},
					     {"tracing-endpoint", required_argument, 0, 0x102},
					     {"tracing-protocol", required_argument, 0, 0x103},
					     {"tracing-sampling", required_argument, 0, 0x104},
					     {"help", no_argument, 0, 'h'},
					     {0, 0, 0, 0}};
	struct agent a = {.bpffs = "/sys/fs/bpf",
			  .workers = 2,
			  .unmatched_mesh = true,
			  .accel = true,
			  .metrics_addr = "0.0.0.0:15020",
			  .health_addr = "0.0.0.0:15021",
			  .loaded_fd = -1,
			  .kube_fd = -1,
			  .lock = -1,
			  .ho_fd = -1,
			  .ho_conn = -1,
			  .ho_new = -1,
			  .home_ns = -1,
			  .tr_sampling = -1,
			  .drain_timeout_ns = 3600LL * 1000000000LL,
			  .topts = {.root_ns = "istio-system", .cert_ttl_s = 24 * 3600}};
	char td[256] = "";
	const char *ingress_labels = GW_LABELS;
	struct bm_conf conf = {};
	struct stat nst;
	ino_t host_ns;
	int64_t ns;
	int o, rc;

	log_init("agent");
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			a.config_dir = optarg;
			break;
		case 'k':
			a.kube_incluster = true;
			break;
		case 'Z':
			metrics_set_cluster_id(optarg);
			break;
		case 'q':
			a.kubeconfig = optarg;
			break;
		case 'd':
			if (parse_duration_ns(optarg, &ns) || ns < 0) {
				fprintf(stderr,
					"bpfmesh agent: --drain-timeout %s: want a duration, like "
					"1h or 30s\n",
					optarg);
				return 2;
			}
			a.drain_timeout_ns = ns;
			break;
		case 'g':
			a.cgroup = optarg;
			break;
		case 'n':
			a.node = optarg;
			break;
		case 'b':
			a.bpffs = optarg;
			break;
		case 'm':
			a.metrics_addr = optarg;
			break;
		case 'H':
			a.health_addr = optarg;
			break;
		case 'I':
			if (parse_node_ip(&a, optarg))
				return 2;
			break;
		case 'N':
			a.netns = optarg;
			break;
		case 'C':
			a.copts.ca_dir = optarg;
			break;
		case 'D':
			a.copts.certs_dir = optarg;
			break;
		case 'A':
			a.copts.ca_addr = optarg;
			break;
		case 'K':
			a.copts.node_cert_dir = optarg;
			break;
		case 'T':
			a.topts.trust_domain = optarg;
			break;
		case 'R':
			a.topts.root_ns = optarg;
			break;
		case 'L':
			if (parse_duration_ns(optarg, &ns) || ns < 1000000000LL) {
				fprintf(stderr,
					"bpfmesh agent: --cert-ttl %s: want a duration of "
					"at least 1s, like 24h or 10s\n",
					optarg);
				return 2;
			}
			a.topts.cert_ttl_s = ns / 1000000000LL;
			break;
		case 'a':
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				usage();
				return 2;
			}
			a.accel = !strcmp(optarg, "on");
			break;
		case 'W': {
			char *end;
			long n = strtol(optarg, &end, 10);

			if (*end || n < 1 || n > 64) {
				fprintf(stderr, "bpfmesh agent: --workers %s: want 1 to 64\n",
					optarg);
				return 2;
			}
			a.workers = (int)n;
			break;
		}
		case 'G':
			a.ingress = true;
			break;
		case 'j':
			ingress_labels = optarg;
			break;
		case 'r':
			a.rl_redis = optarg;
			break;
		case 0x102:
			a.tr_endpoint = optarg;
			break;
		case 0x103:
			if (!strcmp(optarg, "zipkin"))
				a.tr_proto = TP_ZIPKIN;
			else if (!strcmp(optarg, "otlp-http"))
				a.tr_proto = TP_OTLP_HTTP;
			else if (!strcmp(optarg, "otlp-http-json"))
				a.tr_proto = TP_OTLP_HTTP_JSON;
			else {
				fprintf(stderr,
					"bpfmesh agent: --tracing-protocol %s: want zipkin, "
					"otlp-http or otlp-http-json\n",
					optarg);
				return 2;
			}
			break;
		case 0x104: {
			char *end;
			double pct = strtod(optarg, &end);

			if (*end || end == optarg || pct < 0 || pct > 100) {
				fprintf(stderr,
					"bpfmesh agent: --tracing-sampling %s: want a percentage, "
					"0 to 100\n",
					optarg);
				return 2;
			}
			a.tr_sampling = pct;
			break;
		}
		case 0x101:
			if (a.nrl_files == (int)(sizeof(a.rl_files) / sizeof(a.rl_files[0]))) {
				fprintf(stderr, "bpfmesh agent: --ratelimit-config: at most %d\n",
					a.nrl_files);
				return 2;
			}
			a.rl_files[a.nrl_files++] = optarg;
			break;
		case 'J': {
			char *end;
			long n = strtol(optarg, &end, 10);

			if (*end || n < 0 || n > 1000000) {
				fprintf(
				    stderr,
				    "bpfmesh agent: --ingress-syn-rate %s: want SYNs per second "
				    "per source, 0 to 1000000\n",
				    optarg);
				return 2;
			}
			a.ingress_syn_rate = (unsigned)n;
			break;
		}
		case 'U':
			if (strcmp(optarg, "drop") && strcmp(optarg, "pass")) {
				usage();
				return 2;
			}
			a.strict_udp = !strcmp(optarg, "drop");
			break;
		case 'u':
			if (strcmp(optarg, "mesh") && strcmp(optarg, "plain")) {
				usage();
				return 2;
			}
			a.unmatched_mesh = !strcmp(optarg, "mesh");
			break;
		default:
			usage();
			return 2;
		}
	}
	if ((!a.config_dir && !a.kube_incluster && !a.kubeconfig) || !a.cgroup || !a.node ||
	    strchr(a.node, '/') || (a.kube_incluster && a.kubeconfig)) {
		usage();
		return 2;
	}
	if (a.ingress) {
		char err[300];

		if (gw_parse_labels(ingress_labels, &a.ingress_labels, err, sizeof(err))) {
			fprintf(stderr, "bpfmesh agent: %s\n", err);
			return 2;
		}
		if (!a.topts.node_ip) {
			fprintf(stderr, "bpfmesh agent: --ingress needs --node-ip (the gateway "
					"listens there)\n");
			return 2;
		}
		gw_workload_init(&a.gw, &a.ingress_labels);
	}
	struct kube_conn kc = {0};

	if (a.kube_incluster || a.kubeconfig) {
		char err[700];

		if (a.kube_incluster ? kube_conn_incluster(&kc, err, sizeof(err))
				     : kube_conn_kubeconfig(&kc, a.kubeconfig, err, sizeof(err))) {
			fprintf(stderr, "bpfmesh agent: %s\n", err);
			return 2;
		}
	}
	if (agent_run_dir(a.run_dir, sizeof(a.run_dir), a.node) ||
	    dp_pin_dir(a.pin_dir, sizeof(a.pin_dir), a.bpffs, a.node))
		return 2;
	process_signals();
	{ /* a socket per connection and per local pod's HBONE listener: the hard limit */
		struct rlimit rl;

		if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (take_over(&a))
		return 1;
	rc = 1;
	if (dp_ensure_bpffs(a.bpffs))
		goto cleanup;
	conf.flags = (a.accel ? BM_CONF_F_ACCEL : 0) | (a.strict_udp ? BM_CONF_F_STRICT_UDP : 0);
	a.dp = dp_load_attach(a.pin_dir, a.cgroup, &conf);
	if (!a.dp)
		goto cleanup;
	dp_mapfds(a.dp, &a.fds);
	a.sync = sync_new(&a.fds, NULL);
	sync_recover(a.sync);
	sync_init_meta(a.sync);
	pr_info("node %s: attached to %s, pins in %s, acceleration %s, strict UDP %s", a.node,
		a.cgroup, a.pin_dir, a.accel ? "on" : "off", a.strict_udp ? "drop" : "pass");
	a.httpd = httpd_new(http_answer, &a);
	a.loaded_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	a.kube_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!a.httpd || a.loaded_fd < 0 || a.kube_fd < 0)
		goto cleanup;
	if (kc.server) {
		struct kube_opts ko = {.conn = &kc, .notify_fd = a.kube_fd};
		const char *retry = getenv("BPFMESH_KUBE_ABSENT_RETRY_MS");

		ko.absent_retry_ms = retry ? atoi(retry) : 0;
		a.kube = kube_start(&ko);
		if (!a.kube) {
			pr_err("kube: cannot start the watch: %s", strerror(errno));
			goto cleanup;
		}
		write_api_state(&a);
	} else {
		char api[600];

		snprintf(api, sizeof(api), "%s/api", a.run_dir);
		unlink(api); /* an earlier agent's, which watched the API server */
	}
	httpd_listen(a.httpd, a.metrics_addr);
	httpd_listen(a.httpd, a.health_addr);
	host_ns = stat("/proc/self/ns/net", &nst) ? 0 : nst.st_ino;
	if (start_zero_trust(&a, td, sizeof(td)))
		goto cleanup;
	if (a.ingress) { /* in the node address's namespace now (start_zero_trust) */
		struct dp_xdp_fds xf;

		if (!dp_xdp(a.dp, &xf))
			a.xdp = xdpgw_new(&xf, a.topts.node_ip, a.ingress_syn_rate);
	}
	/* what the earlier agent listened on and this one does not goes once the config is in
	 * force (handover_maybe_ready): a Gateway port is known only then */
	a.pn = podnet_new(a.pin_dir, host_ns, stat("/proc/self/ns/net", &nst) ? 0 : nst.st_ino,
			  dp_sav_prog(a.dp), a.fds.ifpod);
	if (a.tun) /* tunnels to a pod's own address (ztunnel's in-pod addressing) */
		podnet_set_hbone(a.pn, a.fds.hbone, tunnel_pod_listen, tunnel_pod_unlisten, a.tun);
	rc = loop(&a);
cleanup:
	if (a.loading) { /* let the worker finish: it owns its job */
		pthread_join(a.loader, NULL);
		kube_snap_free(&a.job->snap);
		if (a.job->prev)
			cfgref_put(a.job->prev);
		config_free(a.job->c);
		rs_free(&a.job->t);
		diags_free(&a.job->d);
		free(a.job);
	}
	kube_stop(a.kube);
	kube_conn_free(&kc);
	podnet_free(a.pn);
	/* the kernel path serves the HTTP ports until the next agent; not ours to say once
	 * the lock is another agent's (an upgrade) */
	if (a.lock >= 0 && !a.draining)
		secsync_stop_l7(a.sec);
	l7_stop(a.l7);
	tunnel_free(a.tun);
	l7_free(a.l7);
	gw_workload_free(&a.gw); /* (after the engines that point to it) */
	xdpgw_free(a.xdp, true); /* (ours only: an upgrade's next agent has put its own there) */
	for (int i = 0; i < a.ingress_labels.n; i++) {
		free(a.ingress_labels.v[i].key);
		free(a.ingress_labels.v[i].val);
	}
	free(a.ingress_labels.v);
	certs_free(a.certs);
	secsync_free(a.sec);
	sync_free(a.sync);
	dp_close(a.dp);
	cfgref_put(a.current);
	httpd_free(a.httpd);
	if (a.loaded_fd >= 0)
		close(a.loaded_fd);
	if (a.kube_fd >= 0)
		close(a.kube_fd);
	if (a.lock >= 0)
		close(a.lock);
	if (a.ho_fd >= 0)
		close(a.ho_fd);
	if (a.ho_conn >= 0)
		close(a.ho_conn);
	if (a.ho_new >= 0)
		close(a.ho_new);
	return rc;
}
