// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * agent.c: `bpfmesh agent`, the node agent. Loads and attaches the datapath to one cgroup,
 * watches the config directory with inotify and puts every valid change in force; a bad
 * config is reported and the one in force stays. Local workloads are found as child cgroups
 * named <namespace>_<pod> under the node cgroup and matched with Pod objects of the config.
 * SIGTERM/SIGINT stop the agent and leave the pins, so the kernel path keeps working until
 * the next agent takes over; `bpfmesh uninstall` is what removes them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include "agent.h"
#include "log.h"
#include "metrics.h"
#include "podnet.h"
#include "secsync.h"
#include "sync.h"
#include "tunnel.h"
#include "validate.h"

#define RELOAD_DEBOUNCE_MS 30

struct agent {
	const char *config_dir, *cgroup, *node, *bpffs;
	char pin_dir[512];
	char run_dir[512];
	struct dp *dp;
	struct bm_mapfds fds;
	struct sync *sync;
	int loaded;
	uint64_t applied_gen;
	struct mesh_config *current; /* the config in force, for pod rescans */
	bool unmatched_mesh; /* cgroups that are no known pod: in the mesh (default) or not */
	bool accel;	     /* same-node acceleration (--accel on|off, default on) */
	const char *metrics_addr, *health_addr;
	int lfd[2]; /* listening sockets: metrics, health (-1 if not bound) */
	uint64_t ticks;
	/* zero trust */
	struct tunnel_opts topts;
	const char *netns; /* network namespace of the node address (lab); NULL: our own */
	struct secsync *sec;
	struct tunnel *tun;
	struct podnet *pn;
	bool strict_udp; /* --strict-udp drop */
};

int agent_run_dir(char *buf, size_t len, const char *node)
{
	int n = snprintf(buf, len, "/run/bpfmesh/%s", node);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/* One agent per node name: a POSIX record lock that `status` can query without taking. */
static int take_lock(struct agent *a)
{
	char path[600], pid[32];
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd;

	snprintf(path, sizeof(path), "/run/bpfmesh");
	mkdir(path, 0755);
	if (mkdir(a->run_dir, 0755) && errno != EEXIST) {
		pr_warn("%s: %s", a->run_dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/agent.lock", a->run_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || fcntl(fd, F_SETLK, &fl)) {
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

const char *agent_bpffs(const char *node, char *buf, size_t len)
{
	char dir[512], path[600];
	FILE *f;

	if (agent_run_dir(dir, sizeof(dir), node))
		return NULL;
	snprintf(path, sizeof(path), "%s/bpffs", dir);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	if (!fgets(buf, (int)len, f)) {
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return buf[0] ? buf : NULL;
}

pid_t agent_pid(const char *node)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char dir[512], path[600];
	int fd;

	if (agent_run_dir(dir, sizeof(dir), node))
		return 0;
	snprintf(path, sizeof(path), "%s/agent.lock", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fcntl(fd, F_GETLK, &fl) || fl.l_type == F_UNLCK) {
		close(fd);
		return 0;
	}
	close(fd);
	return fl.l_pid;
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

			metrics_workload_name(w, wl, sizeof(wl));
			put_name4(ps->a->sync, BM_NAME_POD, config_pod_id(w), w->ns,
				  wl, w->name, kv_get(&w->labels, "version"));
		}
		scan_dir(ps, path, depth + 1, w);
	}
	closedir(d);
}

/* Map the cgroup ids of local pods to the pods of the config (bm_pod), and name them. */
static void sync_pods(struct agent *a, const struct mesh_config *c)
{
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
	if (secsync_workloads(a->sec, c, a->applied_gen, ps.local, ps.nlocal))
		pr_warn("zero-trust state not fully written; retrying at the next rescan");
	if (a->pn) {
		struct podnet_pod *pp = calloc(ps.nlocal + 1, sizeof(*pp));
		int covered;

		if (!pp)
			abort();
		for (int i = 0; i < ps.nlocal; i++) {
			pp[i].pod_id = config_pod_id(ps.local[i]);
			pp[i].cgroup = ps.local_cg[i];
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
	sync_set_pods(a->sync, ps.pods, ps.n > BM_MAX_PODS ? BM_MAX_PODS : ps.n);
	for (int i = 0; i < ps.nlocal; i++)
		free(ps.local_cg[i]);
	free(ps.local_cg);
	free(ps.pods);
	free(ps.local);
}

/* ---------- applying config ---------- */

static void reload(struct agent *a)
{
	uint64_t t0 = now_ms();
	struct mesh_config *c = config_new();
	struct sync_result res;
	struct diags d = {0};
	struct rs_table t;
	int err;

	config_load_dir(c, a->config_dir, &d);
	if (d.nerrors == 0)
		config_validate(c, &d);
	memset(&t, 0, sizeof(t));
	if (d.nerrors == 0)
		resolve(c, &t, &d);
	err = d.nerrors ? -EINVAL : sync_apply(a->sync, &t, &d, &res);
	diags_print(&d, stderr);
	if (err) {
		sync_set_meta(a->sync, 0, a->loaded);
		pr_warn("config in %s rejected (%d errors); generation %llu stays in force",
			a->config_dir, d.nerrors, (unsigned long long)a->applied_gen);
		config_free(c);
	} else {
		config_free(a->current);
		a->current = c;
		a->applied_gen++;
		if (secsync_backends(a->sec, a->sync, c, &t))
			pr_warn("mTLS backend flags not fully written: some connects may not be "
				"tunnelled until the next apply");
		if (a->tun)
			tunnel_set_config(a->tun, c);
		sync_pods(a, c);
		a->loaded = 1;
		sync_set_meta(a->sync, 1, 1);
		pr_info("applied config: %d service ports (%d written, %d unchanged, %d removed), "
			"%d backends, in %llu ms",
			t.nservices, res.services_written, res.services_unchanged,
			res.services_deleted, res.backends, (unsigned long long)(now_ms() - t0));
	}
	rs_free(&t);
	diags_free(&d);
}

/* Listen on "ADDR:PORT" (IPv4, or [IPv6]:PORT); -1 with a warning when it can't. */
static int listen_on(const char *spec)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_storage ss = {};
	socklen_t sl;
	int fd, one = 1, port;

	if (!colon || (size_t)(colon - spec) >= sizeof(host) || (port = atoi(colon + 1)) <= 0 ||
	    port > 65535)
		goto bad;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	if (host[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		host[strlen(host) - 1] = 0;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			goto bad;
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto bad;
		sl = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 64)) {
		pr_warn("listen %s: %s (metrics/health not served there)", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
bad:
	pr_warn("bad address %s (want ADDR:PORT)", spec);
	return -1;
}

static bool agent_is_ready(struct agent *a)
{
	return a->loaded && dp_links_attached(a->pin_dir);
}

/* One request, answered and closed: scrapes and probes are small and rare. */
static void serve_one(struct agent *a, int lfd)
{
	struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
	char req[2048], path[256] = "", *body = NULL, head[256];
	size_t blen = 0;
	const char *status = "404 Not Found", *ctype = "text/plain";
	FILE *m;
	ssize_t n;
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (c < 0)
		return;
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	n = read(c, req, sizeof(req) - 1);
	if (n <= 0) {
		close(c);
		return;
	}
	req[n] = 0;
	sscanf(req, "GET %255s", path);
	m = open_memstream(&body, &blen);
	if (!m) {
		close(c);
		return;
	}
	if (!strcmp(path, "/metrics") || !strncmp(path, "/metrics?", 9)) {
		status = "200 OK";
		ctype = "text/plain; version=0.0.4; charset=utf-8";
		if (a->current)
			metrics_render(&a->fds, a->current, a->pin_dir,
				       a->tun ? a->topts.trust_domain : NULL, m);
		if (a->tun)
			tunnel_metrics(a->tun, m);
	} else if (!strcmp(path, "/healthz/ready")) {
		bool ok = agent_is_ready(a);

		status = ok ? "200 OK" : "503 Service Unavailable";
		fputs(ok ? "ready\n" : "not ready\n", m);
	} else {
		fputs("not found\n", m);
	}
	fclose(m);
	snprintf(head, sizeof(head),
		 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n",
		 status, ctype, blen);
	if (write(c, head, strlen(head)) < 0 || (blen && write(c, body, blen) < 0))
		pr_debug("metrics: client went away");
	free(body);
	close(c);
}

static int setup_fds(struct agent *a, int *ifd, int *sfd, int *tfd)
{
	/* 100 ms: outlier ticks run at each host's own interval, checked this often */
	struct itimerspec its = {.it_interval = {0, 100000000}, .it_value = {0, 100000000}};
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	*sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	*ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	*tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (*sfd < 0 || *ifd < 0 || *tfd < 0)
		return -1;
	if (inotify_add_watch(*ifd, a->config_dir,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
				  IN_ATTRIB) < 0) {
		pr_warn("watch %s: %s", a->config_dir, strerror(errno));
		return -1;
	}
	/* New pod cgroups show up here; a missed event is caught by the 1 s rescan anyway. */
	inotify_add_watch(*ifd, a->cgroup, IN_CREATE | IN_DELETE);
	return timerfd_settime(*tfd, 0, &its, NULL);
}

static int loop(struct agent *a)
{
	int ifd, sfd, tfd;
	uint64_t reload_at = 0;

	if (setup_fds(a, &ifd, &sfd, &tfd)) {
		pr_warn("agent setup: %s", strerror(errno));
		return 1;
	}
	for (;;) {
		struct pollfd p[6] = {
		    {ifd, POLLIN, 0},	    {sfd, POLLIN, 0},
		    {tfd, POLLIN, 0},	    {a->lfd[0], POLLIN, 0},
		    {a->lfd[1], POLLIN, 0}, {a->tun ? tunnel_fd(a->tun) : -1, POLLIN, 0}};
		int timeout = -1;
		char buf[4096] __attribute__((aligned(8)));

		if (reload_at) {
			uint64_t n = now_ms();

			timeout = reload_at > n ? (int)(reload_at - n) : 0;
		}
		if (poll(p, 6, timeout) < 0 && errno != EINTR)
			return 1;
		if (p[5].fd >= 0 && (p[5].revents & POLLIN))
			tunnel_run(a->tun);
		for (int i = 3; i < 5; i++)
			if (p[i].fd >= 0 && (p[i].revents & POLLIN))
				serve_one(a, p[i].fd);
		if (p[1].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGHUP) {
				pr_info("signal %u: stopping; pinned datapath stays in force",
					si.ssi_signo);
				return 0;
			}
			reload_at = now_ms();
		}
		if (p[0].revents) {
			while (read(ifd, buf, sizeof(buf)) > 0)
				;
			/* Debounce: editors and `kubectl cp` write in several steps. */
			reload_at = now_ms() + RELOAD_DEBOUNCE_MS;
		}
		if (p[2].revents) {
			uint64_t ticks;

			if (read(tfd, &ticks, sizeof(ticks)) < 0)
				ticks = 0;
			sync_tick(a->sync);
			sync_health_tick(a->sync, now_ms() * 1000000ULL);
			if (a->current && ++a->ticks % 10 == 0) /* pods: once a second */
				sync_pods(a, a->current);
			if (a->tun && a->ticks % 10 == 0)
				tunnel_tick(a->tun, time(NULL));
			if (a->ticks % 300 == 0) /* every 30 s: records no sockops will free */
				sync_sweep_socks(a->sync, now_ms() * 1000000ULL, 30000000000ULL);
		}
		if (reload_at && now_ms() >= reload_at) {
			reload_at = 0;
			reload(a);
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
	struct secsync_opts so = {.root_ns = a->topts.root_ns, .node_ip = a->topts.node_ip};
	bool want_tunnel = a->topts.ca_dir || a->topts.certs_dir;

	if (!a->topts.trust_domain) {
		if (a->topts.ca_dir)
			read_trust_domain(a->topts.ca_dir, td, tdlen);
		a->topts.trust_domain = td[0] ? td : "cluster.local";
	}
	if (want_tunnel && !a->topts.node_ip) {
		fprintf(stderr, "bpfmesh agent: --ca-dir/--certs-dir need --node-ip\n");
		return -1;
	}
	if (a->netns) {
		int fd = open(a->netns, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || setns(fd, CLONE_NEWNET)) {
			pr_warn("netns %s: %s", a->netns, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}
	a->topts.node = a->node;
	a->topts.run_dir = a->run_dir;
	a->topts.fds = &a->fds;
	a->topts.filter_out = dp_listener_prog(a->dp, DP_LISTEN_OUTBOUND);
	a->topts.filter_hbone = dp_listener_prog(a->dp, DP_LISTEN_HBONE);
	if (want_tunnel) {
		a->tun = tunnel_new(&a->topts);
		if (!a->tun)
			return -1;
	}
	so.trust_domain = a->topts.trust_domain;
	so.tunnel = a->tun != NULL;
	a->sec = secsync_new(&a->fds, &so);
	return a->sec ? 0 : -1;
}

/* A fatal signal: say so in the log (async-signal-safe: one write), then die of it. */
static void on_fatal(int sig)
{
	char msg[96];
	const char *name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS"
			 : sig == SIGABRT ? "SIGABRT" : sig == SIGFPE ? "SIGFPE"
			 : sig == SIGILL ? "SIGILL" : "fatal signal";
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
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: bpfmesh agent --config-dir DIR --cgroup CGROUP_DIR --node NAME "
	    "[--bpffs DIR] [--unmatched-cgroups mesh|plain] [--accel on|off]\n"
	    "  processes in CGROUP_DIR that are in no <namespace>_<pod> child cgroup of "
	    "a\n  known Pod are mesh clients (default) or plain ones (even spread, no "
	    "policy)\n"
	    "  --accel on: pod-to-pod TCP on this node skips the TCP/IP stack (sockmap)\n"
	    "  [--strict-udp drop|pass]: drop plaintext UDP to STRICT pods (default pass:\n"
	    "  Istio does not capture UDP either)\n"
	    "  [--metrics-addr ADDR:PORT] [--health-addr ADDR:PORT]\n"
	    "mTLS between nodes (needs --node-ip and one of --ca-dir / --certs-dir):\n"
	    "  --node-ip IP          this node's address: the tunnel listens there (15001, 15008)\n"
	    "  --netns PATH          network namespace that holds --node-ip (default: ours)\n"
	    "  --ca-dir DIR          issue workload certificates from this mesh CA "
	    "(bpfmesh ca init)\n"
	    "  --certs-dir DIR       or read them: DIR/<ns>/<sa>/ in cert-manager or SPIRE "
	    "layout,\n                        trust bundle DIR/ca.crt or DIR/bundle.pem\n"
	    "  --trust-domain TD     default: DIR/trust-domain of --ca-dir, else cluster.local\n"
	    "  --cert-ttl DURATION   workload certificate lifetime (default 24h; renewed at half)\n"
	    "  --root-namespace NS   Istio root namespace (default istio-system)\n");
}

int cmd_agent(int argc, char **argv)
{
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
					     {"strict-udp", required_argument, 0, 'U'},
					     {"help", no_argument, 0, 'h'},
					     {0, 0, 0, 0}};
	struct agent a = {.bpffs = "/sys/fs/bpf",
			  .unmatched_mesh = true,
			  .accel = true,
			  .metrics_addr = "0.0.0.0:15020",
			  .health_addr = "0.0.0.0:15021",
			  .lfd = {-1, -1},
			  .topts = {.root_ns = "istio-system", .cert_ttl_s = 24 * 3600}};
	char td[256] = "";
	struct stat nst;
	ino_t host_ns;
	int64_t ns;
	int o, lock, rc;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			a.config_dir = optarg;
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
			a.topts.node_ip = optarg;
			break;
		case 'N':
			a.netns = optarg;
			break;
		case 'C':
			a.topts.ca_dir = optarg;
			break;
		case 'D':
			a.topts.certs_dir = optarg;
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
	if (!a.config_dir || !a.cgroup || !a.node || strchr(a.node, '/')) {
		usage();
		return 2;
	}
	if (agent_run_dir(a.run_dir, sizeof(a.run_dir), a.node) ||
	    dp_pin_dir(a.pin_dir, sizeof(a.pin_dir), a.bpffs, a.node))
		return 2;
	process_signals();
	lock = take_lock(&a);
	if (lock < 0)
		return 1;
	if (dp_ensure_bpffs(a.bpffs))
		return 1;
	struct bm_conf conf = {.flags = (a.accel ? BM_CONF_F_ACCEL : 0) |
					(a.strict_udp ? BM_CONF_F_STRICT_UDP : 0)};

	a.dp = dp_load_attach(a.pin_dir, a.cgroup, &conf);
	if (!a.dp)
		return 1;
	dp_mapfds(a.dp, &a.fds);
	a.sync = sync_new(&a.fds, NULL);
	sync_recover(a.sync);
	sync_set_meta(a.sync, 0, 0);
	pr_info("node %s: attached to %s, pins in %s, acceleration %s, strict UDP %s", a.node,
		a.cgroup, a.pin_dir, a.accel ? "on" : "off", a.strict_udp ? "drop" : "pass");
	a.lfd[0] = listen_on(a.metrics_addr);
	a.lfd[1] = listen_on(a.health_addr);
	host_ns = stat("/proc/self/ns/net", &nst) ? 0 : nst.st_ino;
	if (start_zero_trust(&a, td, sizeof(td)))
		return 1;
	a.pn = podnet_new(a.pin_dir, host_ns, stat("/proc/self/ns/net", &nst) ? 0 : nst.st_ino,
			  dp_sav_prog(a.dp), a.fds.ifpod);
	reload(&a);
	rc = loop(&a);
	podnet_free(a.pn);
	tunnel_free(a.tun);
	secsync_free(a.sec);
	sync_free(a.sync);
	dp_close(a.dp);
	config_free(a.current);
	for (int i = 0; i < 2; i++)
		if (a.lfd[i] >= 0)
			close(a.lfd[i]);
	close(lock);
	return rc;
}
