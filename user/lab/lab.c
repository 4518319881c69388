// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * lab.c: `bpfmesh lab`, a mesh of pods on one Linux machine, built from the same YAML a user
 * gives Kubernetes. It plays API server, scheduler, kubelet and CNI:
 *  - nodes: one per distinct spec.nodeName (default node1); each is a network namespace with a
 *    bridge, joined to the others through a fabric namespace, a cgroup, and its own agent;
 *  - pods: one per replica (NAME-0, NAME-1, ...) or Pod object; a netns with a veth to its
 *    node, 10.244.<node>.<k>/24 and fd00:244:<node>::<k>/64, a cgroup under its node's
 *    (<namespace>_<pod>, which is how the agent recognises it), an /etc/hosts that resolves
 *    service names as Kubernetes DNS would, and the built-in echo server (echo.c);
 *  - config: one file per object in the lab's config directory, shared by every agent; the
 *    lab writes the Pod objects with their addresses, like a kubelet reporting status (for
 *    a Pod of the user's files, into that Pod's own file: one object, one file).
 * Every command takes --name LAB; state lives in /run/bpfmesh/lab/<LAB>/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include "args.h"
#include "emit.h"
#include "log.h"
#include "pins.h"
#include "ca.h"
#include "lab.h"
#include "echo.h"
#include "gwapi.h"
#include "portfwd.h"
#include "names.h"
#include "ratelimit.h"
#include "resolve.h"
#include "duration.h"

#define LAB_ROOT       "/run/bpfmesh/lab"
#define LAB_MAX_NODES  200
#define LAB_MAX_PODS   250 /* per node: .2 to .251 of its /24 */
#define LAB_READY_SECS 30

/* ---------- small helpers ---------- */

/*
 * Run a command from its argv, never through a shell: names from YAML or flags are arguments,
 * not code. Quiet: its output goes to stderr only when it fails.
 */
static int runv(char *const argv[])
{
	char out[8192];
	size_t n = 0;
	int pfd[2], status;
	ssize_t r;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) { /* keep what fits, drain the rest: the child never blocks on a full pipe */
		char junk[256];

		r = n < sizeof(out) - 1 ? read(pfd[0], out + n, sizeof(out) - 1 - n)
					: read(pfd[0], junk, sizeof(junk));
		if (r <= 0)
			break;
		if (n < sizeof(out) - 1)
			n += r;
	}
	close(pfd[0]);
	out[n] = 0;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "lab: %s", argv[0]);
		for (int i = 1; argv[i]; i++)
			fprintf(stderr, " %s", argv[i]);
		fprintf(stderr, ": %s%s", out[0] ? out : "failed\n",
			n && out[n - 1] != '\n' ? "\n" : "");
		return -1;
	}
	return 0;
}
#define RUN(...) runv((char *const[]){__VA_ARGS__, NULL})
/* The same, and a failure is expected (cleanup of what may be gone already). */
static void run_quiet(char *const argv[])
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC), saved = dup(2);

	if (fd >= 0 && saved >= 0) {
		dup2(fd, 2);
		runv(argv);
		dup2(saved, 2);
	}
	if (fd >= 0)
		close(fd);
	if (saved >= 0)
		close(saved);
}
#define RUN_QUIET(...) run_quiet((char *const[]){__VA_ARGS__, NULL})

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) && errno != ENOENT ? -1 : 0;
}

/* rm -rf, without a shell and without following symlinks out of the tree. */
static int rm_tree(const char *path)
{
	if (access(path, F_OK))
		return 0;
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The last n lines of a file, to stderr (a crashed agent's log). */
static void print_tail(const char *path, int n)
{
	char *lines[64] = {0}, buf[1024];
	FILE *f = fopen(path, "r");
	int k = 0;

	if (!f)
		return;
	if (n > 64)
		n = 64;
	while (fgets(buf, sizeof(buf), f)) {
		free(lines[k % n]);
		lines[k++ % n] = strdup(buf);
	}
	fclose(f);
	for (int i = k > n ? k - n : 0; i < k; i++)
		fputs(lines[i % n] ? lines[i % n] : "", stderr);
	for (int i = 0; i < n; i++)
		free(lines[i]);
}

static int write_file(const char *path, const char *data, size_t len)
{
	char tmp[1100], *cur;
	struct stat st;
	int fd;

	/* the same bytes again: leave the file (and its watchers) alone */
	if (stat(path, &st) == 0 && (size_t)st.st_size == len && (fd = open(path, O_RDONLY)) >= 0) {
		cur = malloc(len + 1);
		if (cur && read(fd, cur, len) == (ssize_t)len && !memcmp(cur, data, len)) {
			free(cur);
			close(fd);
			return 0;
		}
		free(cur);
		close(fd);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write(fd, data, len) != (ssize_t)len) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	return rename(tmp, path); /* atomic: the agent never reads half a file */
}

/* The same for a file bind-mounted into running pods (their /etc/hosts, pod_etc): rewritten
 * in place, as the mount holds its inode (a reader may see it half written, once). */
static int write_in_place(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	bool ok;

	if (fd < 0)
		return -1;
	ok = write(fd, data, len) == (ssize_t)len && ftruncate(fd, (off_t)len) == 0;
	close(fd);
	return ok ? 0 : -1;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/* A growable string for building JSON and hosts files. */
struct buf {
	char *p;
	size_t n, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int need;

	for (;;) {
		va_start(ap, fmt);
		need = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
		va_end(ap);
		if (b->p && (size_t)need < b->cap - b->n) {
			b->n += need;
			return;
		}
		b->cap = (b->cap + need + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
}

static void bjson_str(struct buf *b, const char *s)
{
	bprintf(b, "\"");
	for (; s && *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			bprintf(b, "\\%c", c);
		else if (c < 0x20)
			bprintf(b, "\\u%04x", c);
		else
			bprintf(b, "%c", c);
	}
	bprintf(b, "\"");
}

static void bjson_kv(struct buf *b, const struct kvlist *l)
{
	bprintf(b, "{");
	for (int i = 0; i < l->n; i++) {
		bprintf(b, i ? ", " : "");
		bjson_str(b, l->v[i].key);
		bprintf(b, ": ");
		bjson_str(b, l->v[i].val);
	}
	bprintf(b, "}");
}

/* ---------- lab state ---------- */

struct lab_node {
	char name[64];
	int index; /* 1-based: 10.244.<index>.0/24 */
	int agent_pid;
	int metrics_port; /* the agent's /metrics on 127.0.0.1 */
	int health_port;  /* its /healthz/ready on 127.0.0.1 */
};

#define LAB_MAX_POD_NAME 128 /* with room for a replica's "-<n>" */

struct lab_pod {
	char ns[64];
	char name[LAB_MAX_POD_NAME];
	char node[64];
	int k; /* host part: 10.244.<node>.<k> */
	int pid;
	int alive;     /* still desired (reconcile) */
	uint32_t spec; /* what its server was started with (server_spec): a change restarts it */
};

struct lab {
	char name[64];
	char dir[512];
	char config[600];
	char cg_root[256]; /* <cgroup2>/bpfmesh-<lab> */
	const char *bpffs;
	long cert_ttl_s; /* workload certificate lifetime the agents use */
	int mtls;	 /* 1: agents run the mTLS tunnel (the lab's CA in <dir>/ca) */
	bool accel_off;	 /* lab up --accel off: every agent runs with --accel off */
	struct lab_node nodes[LAB_MAX_NODES];
	int nnodes;
	struct lab_pod *pods;
	int npods, cappods;
	int supervisor_pid;  /* the process that runs and restarts agents and the CA */
	int changed;	     /* config files this command changed (lab apply waits for them) */
	uint64_t written_ns; /* CLOCK_REALTIME after the last such change */
	bool strict_udp;     /* lab up --strict-udp drop */
	int syn_rate;	     /* lab up --ingress-syn-rate N: the agents' */
	int prom_port;	     /* lab up --prometheus: Debian's Prometheus on 127.0.0.1:prom_port */
	int kube_port;	     /* lab up --kube-api: the test API server on 127.0.0.1:kube_port */
	/* global rate limits: every agent is given the lab's Redis port (on loopback);
	 * redis-server runs once the config has a global limit */
	int redis_port;
	bool redis_on;
	/* lab up --tracing-*: every agent's (sampling 100% unless given) */
	char tr_endpoint[512], tr_proto[32], tr_sampling[32];
};

static void lab_paths(struct lab *l, const char *name)
{
	char cg2[200] = "";

	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->dir, sizeof(l->dir), "%s/%s", LAB_ROOT, name);
	snprintf(l->config, sizeof(l->config), "%s/config", l->dir);
	dp_cgroup2_root(cg2, sizeof(cg2));
	snprintf(l->cg_root, sizeof(l->cg_root), "%s/bpfmesh-%s", cg2, name);
	if (!l->bpffs)
		l->bpffs = "/sys/fs/bpf";
}

static void agent_name(const struct lab *l, const char *node, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%s", l->name, node);
}

static void netns_node(const struct lab *l, const char *node, char *buf, size_t len)
{
	snprintf(buf, len, "bm-%s-%s", l->name, node);
}

static void netns_pod(const struct lab *l, const struct lab_pod *p, char *buf, size_t len)
{
	snprintf(buf, len, "bm-%s-%s-%s", l->name, p->ns, p->name);
}

/*
 * lab up --prometheus: Debian's Prometheus scrapes every agent of the lab, each target
 * labelled with its node. The targets are a file_sd file rewritten with the lab's state, so a
 * node that `lab apply` adds is scraped without a restart. Scraped every second: pipelines
 * rehearsed in a lab use intervals of seconds, not minutes.
 */
static int prom_targets(const struct lab *l)
{
	struct buf b = {0};
	char path[700];
	int rc;

	bprintf(&b, "[");
	for (int i = 0; i < l->nnodes; i++)
		bprintf(&b, "%s{\"targets\": [\"127.0.0.1:%d\"], \"labels\": {\"node\": \"%s\"}}",
			i ? ", " : "", l->nodes[i].metrics_port, l->nodes[i].name);
	bprintf(&b, "]\n");
	snprintf(path, sizeof(path), "%s/prometheus/targets.json", l->dir);
	rc = write_file(path, b.p, b.n);
	free(b.p);
	return rc;
}

static int prom_config(const struct lab *l)
{
	struct buf b = {0};
	char path[700];
	int rc;

	snprintf(path, sizeof(path), "%s/prometheus", l->dir);
	if (mkdir(path, 0755) && errno != EEXIST)
		return -1;
	bprintf(&b,
		"# written by bpfmesh lab up --prometheus (lab %s)\n"
		"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
		"scrape_configs:\n"
		"  - job_name: bpfmesh-agents\n"
		"    file_sd_configs:\n"
		"      - files: [\"%s/targets.json\"]\n"
		"        refresh_interval: 1s\n",
		l->name, path);
	snprintf(path, sizeof(path), "%s/prometheus/prometheus.yml", l->dir);
	rc = write_file(path, b.p, b.n);
	free(b.p);
	return rc;
}

static int state_save(const struct lab *l)
{
	struct buf b = {0};
	char path[700];
	int rc;

	bprintf(&b, "lab %s %s %ld %d\n", l->name, l->bpffs, l->cert_ttl_s, l->mtls);
	bprintf(&b, "lab %s %s\n", l->name, l->bpffs);
	bprintf(&b, "accel %s\n", l->accel_off ? "off" : "on");
	bprintf(&b, "strict-udp %s\n", l->strict_udp ? "drop" : "pass");
	bprintf(&b, "ingress-syn-rate %d\n", l->syn_rate);
	bprintf(&b, "supervisor %d\n", l->supervisor_pid);
	if (l->prom_port)
		bprintf(&b, "prometheus %d\n", l->prom_port);
	if (l->kube_port)
		bprintf(&b, "kube-api %d\n", l->kube_port);
	if (l->redis_port)
		bprintf(&b, "redis %d %d\n", l->redis_port, l->redis_on);
	if (l->tr_endpoint[0])
		bprintf(&b, "tracing %s %s %s\n", l->tr_endpoint, l->tr_proto, l->tr_sampling);
	for (int i = 0; i < l->nnodes; i++)
		bprintf(&b, "node %s %d %d %d %d\n", l->nodes[i].name, l->nodes[i].index,
			l->nodes[i].agent_pid, l->nodes[i].metrics_port, l->nodes[i].health_port);
	for (int i = 0; i < l->npods; i++)
		bprintf(&b, "pod %s %s %s %d %d %x\n", l->pods[i].ns, l->pods[i].name,
			l->pods[i].node, l->pods[i].k, l->pods[i].pid, l->pods[i].spec);
	snprintf(path, sizeof(path), "%s/lab.state", l->dir);
	rc = write_file(path, b.p, b.n);
	free(b.p);
	if (!rc && l->prom_port)
		rc = prom_targets(l);
	return rc;
}

static struct lab_pod *pod_add(struct lab *l)
{
	if (l->npods == l->cappods) {
		l->cappods = l->cappods ? 2 * l->cappods : 32;
		l->pods = realloc(l->pods, l->cappods * sizeof(*l->pods));
		if (!l->pods)
			abort();
	}
	memset(&l->pods[l->npods], 0, sizeof(l->pods[0]));
	return &l->pods[l->npods++];
}

static int state_load(struct lab *l)
{
	char path[700], line[512], bpffs[256];
	FILE *f;
	int on;

	snprintf(path, sizeof(path), "%s/lab.state", l->dir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		struct lab_node *n = &l->nodes[l->nnodes];
		struct lab_pod p = {0};

		if (sscanf(line, "lab %*s %255s %ld %d", bpffs, &l->cert_ttl_s, &l->mtls) >= 1) {
			l->bpffs = strdup(bpffs);
		} else if (!strcmp(line, "accel off\n")) {
			l->accel_off = true;
		} else if (!strcmp(line, "strict-udp drop\n")) {
			l->strict_udp = true;
		} else if (sscanf(line, "ingress-syn-rate %d", &l->syn_rate) == 1) {
		} else if (sscanf(line, "supervisor %d", &l->supervisor_pid) == 1) {
		} else if (sscanf(line, "prometheus %d", &l->prom_port) == 1) {
		} else if (sscanf(line, "kube-api %d", &l->kube_port) == 1) {
		} else if (sscanf(line, "redis %d %d", &l->redis_port, &on) == 2) {
			l->redis_on = on;
		} else if (sscanf(line, "tracing %511s %31s %31s", l->tr_endpoint, l->tr_proto,
				  l->tr_sampling) == 3) {
		} else if (l->nnodes < LAB_MAX_NODES &&
			   sscanf(line, "node %63s %d %d %d %d", n->name, &n->index, &n->agent_pid,
				  &n->metrics_port, &n->health_port) == 5) {
			l->nnodes++;
		} else if (sscanf(line, "pod %63s %127s %63s %d %d %x", p.ns, p.name, p.node, &p.k,
				  &p.pid, &p.spec) >= 5) {
			*pod_add(l) = p;
		}
	}
	fclose(f);
	return 0;
}

static struct lab_node *node_find(struct lab *l, const char *name)
{
	for (int i = 0; i < l->nnodes; i++)
		if (strcmp(l->nodes[i].name, name) == 0)
			return &l->nodes[i];
	return NULL;
}

static struct lab_pod *pod_find(struct lab *l, const char *ns, const char *name)
{
	for (int i = 0; i < l->npods; i++)
		if (strcmp(l->pods[i].ns, ns) == 0 && strcmp(l->pods[i].name, name) == 0)
			return &l->pods[i];
	return NULL;
}

static void pod_addrs(const struct lab *l, const struct lab_pod *p, char *v4, char *v6)
{
	const struct lab_node *n = NULL;

	for (int i = 0; i < l->nnodes; i++)
		if (strcmp(l->nodes[i].name, p->node) == 0)
			n = &l->nodes[i];
	sprintf(v4, "10.244.%d.%d", n ? n->index : 0, p->k);
	sprintf(v6, "fd00:244:%x::%x", n ? n->index : 0, p->k);
}

/* Alive and not a zombie: an orphan's zombie can linger until init gets round to reaping it. */
/* In a forked child: own session, stdout/stderr appended to log, stdin from /dev/null. */
static void daemon_stdio(const char *log)
{
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

	setsid();
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0) {
		dup2(fd, 0);
		close(fd);
	}
}

static bool pid_alive(int pid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	if (pid <= 0 || kill(pid, 0))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* "pid (comm) S ..." */
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* ---------- nodes ---------- */

#define LAB_CA_ADDR "10.244.255.254" /* the lab's CA service, on the fabric's bridge */
#define LAB_CA_PORT "15012"	     /* Istio's CA port */

static int fabric_up(struct lab *l)
{
	char fab[256], p[300];

	snprintf(fab, sizeof(fab), "bm-%s-fabric", l->name);
	snprintf(p, sizeof(p), "/run/netns/%s", fab);
	if (access(p, F_OK) == 0)
		return 0;
	if (RUN("ip", "netns", "add", fab) || RUN("ip", "-n", fab, "link", "set", "lo", "up") ||
	    RUN("ip", "-n", fab, "link", "add", "br0", "type", "bridge") ||
	    RUN("ip", "-n", fab, "link", "set", "br0", "address", "02:62:6d:ff:00:01") ||
	    RUN("ip", "-n", fab, "link", "set", "br0", "up") ||
	    RUN("ip", "-n", fab, "addr", "add", LAB_CA_ADDR "/24", "dev", "br0"))
		return -1;
	return 0;
}

static int node_up(struct lab *l, struct lab_node *n)
{
	char ns[256], fab[256], cg[400];

	netns_node(l, n->name, ns, sizeof(ns));
	snprintf(fab, sizeof(fab), "bm-%s-fabric", l->name);
	snprintf(cg, sizeof(cg), "%s/%s", l->cg_root, n->name);
	if (mkdir(l->cg_root, 0755) && errno != EEXIST)
		return -1;
	if (mkdir(cg, 0755) && errno != EEXIST)
		return -1;
	/* node netns: a bridge for its pods, a leg into the fabric, routes to other nodes */
	{
		char br4[32], br6[48], leg[16], fab4[32], fab6[48], brmac[24];

		snprintf(br4, sizeof(br4), "10.244.%d.1/24", n->index);
		snprintf(br6, sizeof(br6), "fd00:244:%x::1/64", n->index);
		snprintf(leg, sizeof(leg), "n%d", n->index);
		snprintf(brmac, sizeof(brmac), "02:62:6d:00:%02x:%02x", (n->index >> 8) & 0xff,
			 n->index & 0xff);
		snprintf(fab4, sizeof(fab4), "10.244.255.%d/24", n->index);
		snprintf(fab6, sizeof(fab6), "fd00:244:ff::%x/64", n->index);
		if (RUN("ip", "netns", "add", ns) ||
		    RUN("ip", "-n", ns, "link", "set", "lo", "up") ||
		    RUN("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1",
			"net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.accept_dad=0") ||
		    RUN("ip", "-n", ns, "link", "add", "br0", "type", "bridge") ||
		    /* a bridge without an address of its own takes its lowest port's, and
		     * changes it as pods come and go: its pods' neighbour entries for the
		     * node (where the agent listens) would go stale for seconds */
		    RUN("ip", "-n", ns, "link", "set", "br0", "address", brmac) ||
		    RUN("ip", "-n", ns, "link", "set", "br0", "up") ||
		    RUN("ip", "-n", ns, "addr", "add", br4, "dev", "br0") ||
		    RUN("ip", "-n", ns, "addr", "add", br6, "dev", "br0", "nodad") ||
		    RUN("ip", "link", "add", leg, "netns", fab, "type", "veth", "peer", "name",
			"fab0", "netns", ns) ||
		    RUN("ip", "-n", fab, "link", "set", leg, "master", "br0", "up") ||
		    RUN("ip", "-n", ns, "link", "set", "fab0", "up") ||
		    RUN("ip", "-n", ns, "addr", "add", fab4, "dev", "fab0") ||
		    RUN("ip", "-n", ns, "addr", "add", fab6, "dev", "fab0", "nodad"))
			return -1;
	}
	return 0;
}

/* Routes between every pair of nodes (re-run when a node joins). */
static void node_routes(struct lab *l)
{
	for (int i = 0; i < l->nnodes; i++) {
		char ns[256];

		netns_node(l, l->nodes[i].name, ns, sizeof(ns));
		for (int j = 0; j < l->nnodes; j++) {
			if (i == j)
				continue;
			char d4[32], v4[32], d6[48], v6[48];
			int x = l->nodes[j].index;

			snprintf(d4, sizeof(d4), "10.244.%d.0/24", x);
			snprintf(v4, sizeof(v4), "10.244.255.%d", x);
			snprintf(d6, sizeof(d6), "fd00:244:%x::/64", x);
			snprintf(v6, sizeof(v6), "fd00:244:ff::%x", x);
			RUN("ip", "-n", ns, "route", "replace", d4, "via", v4);
			RUN("ip", "-n", ns, "-6", "route", "replace", d6, "via", v6);
		}
	}
}

/* A free TCP port on loopback (the kernel's pick), for an agent's listeners. */
static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int self_exe(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	static const char gone[] = " (deleted)";

	if (n < 0)
		return -1;
	buf[n] = 0;
	/* rebuilt or reinstalled since this process started: the file there now (an upgrade) */
	if ((size_t)n > strlen(gone) && !strcmp(buf + n - strlen(gone), gone) &&
	    (buf[n - strlen(gone)] = 0, access(buf, X_OK)))
		buf[n - strlen(gone)] = ' ';
	return 0;
}

/* Start node n's agent (the supervisor's child); its pid, or -1. */
static pid_t spawn_agent(struct lab *l, struct lab_node *n)
{
	char an[256], cg[400], log[700], self[600], maddr[64], haddr[64], nip[80], ns[300],
	    nsp[320], cadir[700], ttl[32], kcfg[700], synr[16], redis[64];
	char *av[64];
	int k = 0;
	pid_t pid;

	if (self_exe(self, sizeof(self)))
		return -1;
	agent_name(l, n->name, an, sizeof(an));
	snprintf(cg, sizeof(cg), "%s/%s", l->cg_root, n->name);
	snprintf(log, sizeof(log), "%s/agent-%s.log", l->dir, n->name);
	snprintf(maddr, sizeof(maddr), "127.0.0.1:%d", n->metrics_port);
	snprintf(haddr, sizeof(haddr), "127.0.0.1:%d", n->health_port);
	snprintf(nip, sizeof(nip), "10.244.255.%d,fd00:244:ff::%x", n->index, n->index);
	netns_node(l, n->name, ns, sizeof(ns));
	snprintf(nsp, sizeof(nsp), "/run/netns/%s", ns);
	snprintf(cadir, sizeof(cadir), "%s/nodes/%s", l->dir, n->name);
	snprintf(ttl, sizeof(ttl), "%lds", l->cert_ttl_s > 0 ? l->cert_ttl_s : 86400);
	av[k++] = self;
	av[k++] = "agent";
	if (l->kube_port) { /* the lab's objects as a cluster serves them */
		snprintf(kcfg, sizeof(kcfg), "%s/kubeconfig", l->dir);
		av[k++] = "--kubeconfig";
		av[k++] = kcfg;
	} else {
		av[k++] = "--config-dir";
		av[k++] = l->config;
	}
	av[k++] = "--cgroup";
	av[k++] = cg;
	av[k++] = "--node";
	av[k++] = an;
	av[k++] = "--bpffs";
	av[k++] = (char *)l->bpffs;
	av[k++] = "--metrics-addr";
	av[k++] = maddr;
	av[k++] = "--health-addr";
	av[k++] = haddr;
	av[k++] = "--node-ip";
	av[k++] = nip;
	av[k++] = "--netns";
	av[k++] = nsp;
	if (l->mtls) { /* certificates from the lab's CA service, as this node */
		av[k++] = "--ca-addr";
		av[k++] = LAB_CA_ADDR ":" LAB_CA_PORT;
		av[k++] = "--node-cert";
		av[k++] = cadir;
		av[k++] = "--cert-ttl";
		av[k++] = ttl;
	}
	av[k++] = "--accel";
	av[k++] = l->accel_off ? "off" : "on";
	av[k++] = "--strict-udp";
	av[k++] = l->strict_udp ? "drop" : "pass";
	av[k++] = "--ingress"; /* every node serves the Gateways (default ingress labels) */
	if (l->syn_rate > 0) {
		snprintf(synr, sizeof(synr), "%d", l->syn_rate);
		av[k++] = "--ingress-syn-rate";
		av[k++] = synr;
	}
	if (l->tr_endpoint[0]) { /* reached from the agent's own namespace (this one) */
		av[k++] = "--tracing-endpoint";
		av[k++] = l->tr_endpoint;
		av[k++] = "--tracing-protocol";
		av[k++] = l->tr_proto;
	}
	av[k++] = "--tracing-sampling"; /* the lab's default: every request (Istio's: 1%) */
	av[k++] = l->tr_sampling[0] ? l->tr_sampling : "100";
	if (l->redis_port) { /* reached from the agent's own namespace (this one) */
		snprintf(redis, sizeof(redis), "127.0.0.1:%d", l->redis_port);
		av[k++] = "--ratelimit-redis";
		av[k++] = redis;
	}
	av[k] = NULL;
	pid = fork();
	if (pid == 0) {
		daemon_stdio(log);
		execv(self, av);
		_exit(127);
	}
	return pid;
}

/* Start the lab's CA service (the supervisor's child). */
static pid_t spawn_ca(struct lab *l)
{
	char self[600], cadir[700], log[700], fab[300];
	pid_t pid;

	if (self_exe(self, sizeof(self)))
		return -1;
	snprintf(cadir, sizeof(cadir), "%s/ca", l->dir);
	snprintf(log, sizeof(log), "%s/ca.log", l->dir);
	snprintf(fab, sizeof(fab), "/run/netns/bm-%s-fabric", l->name);
	pid = fork();
	if (pid == 0) {
		daemon_stdio(log);
		char kcfg[700];

		/* --kube-api: the CA reads pods from the API server too, as in a cluster */
		snprintf(kcfg, sizeof(kcfg), "%s/kubeconfig", l->dir);
		execl(self, self, "ca", "serve", "--dir", cadir,
		      l->kube_port ? "--kubeconfig" : "--config-dir",
		      l->kube_port ? kcfg : l->config, "--listen", LAB_CA_ADDR ":" LAB_CA_PORT,
		      "--netns", fab, "--ingress-nodes", "*",
		      (char *)NULL); /* every node's agent is an ingress gateway */
		_exit(127);
	}
	return pid;
}

/* Start the lab's Redis (the supervisor's child), from Debian's package: in memory only, on
 * loopback (the agents make their Redis sockets in the namespace they started in). */
static pid_t spawn_redis(struct lab *l)
{
	char port[16], log[700];
	pid_t pid;

	snprintf(port, sizeof(port), "%d", l->redis_port);
	snprintf(log, sizeof(log), "%s/redis.log", l->dir);
	pid = fork();
	if (pid == 0) {
		daemon_stdio(log);
		if (chdir(l->dir))
			_exit(127);
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize",
		       "no", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Start the lab's Prometheus (the supervisor's child), from Debian's package. */
static pid_t spawn_prometheus(struct lab *l)
{
	char cfg[700], tsdb[700], listen[64], log[700];
	pid_t pid;

	snprintf(cfg, sizeof(cfg), "--config.file=%s/prometheus/prometheus.yml", l->dir);
	snprintf(tsdb, sizeof(tsdb), "--storage.tsdb.path=%s/prometheus/data", l->dir);
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", l->prom_port);
	snprintf(log, sizeof(log), "%s/prometheus.log", l->dir);
	pid = fork();
	if (pid == 0) {
		daemon_stdio(log);
		execlp("prometheus", "prometheus", cfg, tsdb, listen,
		       "--storage.tsdb.retention.time=1d", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/*
 * lab up --kube-api: the test API server of tests/kubeapi (a protocol-faithful stand-in for
 * kube-apiserver, which cannot be installed here) serves the lab's config directory, and every
 * agent watches it through <dir>/kubeconfig, with a bearer token as a service account has.
 */
static int kube_script(char *buf, size_t len)
{
	const char *env = getenv("BPFMESH_KUBE_APISERVER");
	char self[600], *slash;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return access(buf, R_OK);
	}
	if (self_exe(self, sizeof(self)))
		return -1;
	/* build/bpfmesh -> tests/kubeapi/ of the same tree */
	for (int i = 0; i < 2 && (slash = strrchr(self, '/')); i++)
		*slash = 0;
	snprintf(buf, len, "%s/tests/kubeapi/fake-apiserver.py", self);
	return access(buf, R_OK);
}

static int kube_config(struct lab *l)
{
	struct buf b = {0};
	char path[700], tok[64];
	uint8_t r[16];
	int rc;

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		return -1;
	for (int i = 0; i < 16; i++)
		snprintf(tok + 2 * i, 3, "%02x", r[i]);
	snprintf(path, sizeof(path), "%s/kube-token", l->dir);
	if (write_file(path, tok, strlen(tok)))
		return -1;
	bprintf(&b,
		"# written by bpfmesh lab up --kube-api (lab %s)\n"
		"apiVersion: v1\nkind: Config\ncurrent-context: lab\n"
		"clusters:\n- name: lab\n  cluster:\n    server: http://127.0.0.1:%d\n"
		"users:\n- name: bpfmesh-agent\n  user:\n    tokenFile: kube-token\n"
		"contexts:\n- name: lab\n  context:\n    cluster: lab\n    user: bpfmesh-agent\n",
		l->name, l->kube_port);
	snprintf(path, sizeof(path), "%s/kubeconfig", l->dir);
	rc = write_file(path, b.p, b.n);
	free(b.p);
	return rc;
}

static pid_t spawn_kube_api(struct lab *l)
{
	char script[700], listen[64], dir[700], tok[700], log[700];
	pid_t pid;

	if (kube_script(script, sizeof(script)))
		return -1;
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", l->kube_port);
	snprintf(tok, sizeof(tok), "%s/kube-token", l->dir);
	snprintf(log, sizeof(log), "%s/kube-api.log", l->dir);
	snprintf(dir, sizeof(dir), "%s", l->config);
	pid = fork();
	if (pid == 0) {
		daemon_stdio(log);
		execl("/usr/bin/python3", "python3", script, "--dir", dir, "--listen", listen,
		      "--token-file", tok, "--bookmark-interval", "0.2", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* ---------- the supervisor: agents and the CA are restarted when they exit ---------- */

#define SUP_RESTART_MS 100  /* as systemd's RestartSec */
#define SUP_BACKOFF_MS 5000 /* the most, for one that keeps dying at once */
#define SUP_STABLE_MS  5000 /* up this long: the next exit restarts it at once again */

struct child {
	pid_t pid;
	uint64_t started, restart_at;
	int backoff;
	char log[700];
};

/* A line in the log of the child it is about (the supervisor's own log is its stderr). */
static void __attribute__((format(printf, 2, 3))) sup_log(const char *path, const char *fmt, ...)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	va_list ap;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	bm_vlog_fd(fd, BM_LOG_INFO, fmt, ap);
	va_end(ap);
	close(fd);
}

static bool held(const struct lab *l, const char *node)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/hold-%s", l->dir, node);
	return access(path, F_OK) == 0;
}

static void sup_exited(struct child *ch, const char *what, int status, uint64_t now)
{
	char how[96];

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	ch->backoff = now - ch->started < SUP_STABLE_MS
			  ? (ch->backoff ? ch->backoff * 2 : SUP_RESTART_MS)
			  : SUP_RESTART_MS;
	if (ch->backoff > SUP_BACKOFF_MS)
		ch->backoff = SUP_BACKOFF_MS;
	ch->restart_at = now + ch->backoff;
	ch->pid = 0;
	sup_log(ch->log, "%s %s; restarting in %d ms", what, how, ch->backoff);
}

static volatile sig_atomic_t sup_stop;

/* Agents that handed their listeners to a new one (`lab agent upgrade`) and drain. */
#define SUP_DRAINING 32
static struct {
	pid_t pid;
	char log[700];
} draining[SUP_DRAINING];

static bool sup_drained(pid_t pid, int status)
{
	for (int i = 0; i < SUP_DRAINING; i++)
		if (draining[i].pid == pid) {
			sup_log(draining[i].log, "draining agent pid %d %s %d", (int)pid,
				WIFSIGNALED(status) ? "killed by signal" : "exited with status",
				WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			draining[i].pid = 0;
			return true;
		}
	return false;
}

/* `lab agent upgrade NODE` asked: a new agent; the one running hands over and drains. */
static bool sup_upgrade(const struct lab *l, const char *node, struct child *ch)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/upgrade-%s", l->dir, node);
	if (unlink(path))
		return false;
	if (ch->pid > 0) {
		for (int i = 0; i < SUP_DRAINING; i++)
			if (!draining[i].pid) {
				draining[i].pid = ch->pid;
				snprintf(draining[i].log, sizeof(draining[i].log), "%s", ch->log);
				break;
			}
	}
	ch->pid = 0;
	ch->restart_at = 0;
	return true;
}

static void sup_on_term(int sig)
{
	(void)sig;
	sup_stop = 1;
}

static int lab_supervise(const char *name, const char *bpffs)
{
	struct child agents[LAB_MAX_NODES] = {0}, ca = {0}, prom = {0}, kapi = {0}, redis = {0};
	struct lab *l = calloc(1, sizeof(*l));
	struct timespec mt = {0};
	char path[700];

	if (!l)
		return 1;
	log_init("lab");
	signal(SIGTERM, sup_on_term);
	signal(SIGINT, sup_on_term);
	signal(SIGHUP, SIG_IGN);
	l->bpffs = bpffs;
	lab_paths(l, name);
	snprintf(ca.log, sizeof(ca.log), "%s/ca.log", l->dir);
	snprintf(prom.log, sizeof(prom.log), "%s/prometheus.log", l->dir);
	snprintf(kapi.log, sizeof(kapi.log), "%s/kube-api.log", l->dir);
	snprintf(path, sizeof(path), "%s/lab.state", l->dir);
	while (!sup_stop) {
		uint64_t now = mono_ms();
		struct stat st;
		int status;
		pid_t pid;

		/* the lab's nodes, as the lab commands last wrote them */
		if (stat(path, &st)) {
			break; /* the lab is gone */
		} else if (st.st_mtim.tv_sec != mt.tv_sec || st.st_mtim.tv_nsec != mt.tv_nsec) {
			struct lab fresh = {.bpffs = bpffs};

			lab_paths(&fresh, name);
			if (state_load(&fresh) == 0) {
				free(l->pods);
				*l = fresh;
				mt = st.st_mtim;
			}
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid == ca.pid)
				sup_exited(&ca, "the CA service", status, now);
			if (pid == prom.pid)
				sup_exited(&prom, "prometheus", status, now);
			if (pid == kapi.pid)
				sup_exited(&kapi, "the API server", status, now);
			if (pid == redis.pid)
				sup_exited(&redis, "redis-server", status, now);
			for (int i = 0; i < l->nnodes; i++)
				if (pid == agents[i].pid)
					sup_exited(&agents[i], "agent", status, now);
			sup_drained(pid, status);
		}
		if (l->mtls && !ca.pid && now >= ca.restart_at) {
			ca.pid = spawn_ca(l);
			ca.started = now;
		}
		if (l->prom_port && !prom.pid && now >= prom.restart_at) {
			prom.pid = spawn_prometheus(l);
			prom.started = now;
		}
		if (l->kube_port && !kapi.pid && now >= kapi.restart_at) {
			kapi.pid = spawn_kube_api(l);
			kapi.started = now;
		}
		if (l->redis_on && !redis.pid && now >= redis.restart_at) {
			redis.pid = spawn_redis(l);
			redis.started = now;
		}
		for (int i = 0; i < l->nnodes; i++) {
			struct child *ch = &agents[i];
			char an[256];

			snprintf(ch->log, sizeof(ch->log), "%s/agent-%s.log", l->dir,
				 l->nodes[i].name);
			agent_name(l, l->nodes[i].name, an, sizeof(an));
			if (held(l, l->nodes[i].name)) {
				if (ch->pid > 0)
					kill(ch->pid, SIGTERM); /* `lab agent stop`: reaped above */
				continue;
			}
			if (sup_upgrade(l, l->nodes[i].name, ch)) {
				ch->pid = spawn_agent(l, &l->nodes[i]);
				ch->started = now;
				continue;
			}
			/* one started by an earlier supervisor, or by hand: let it run */
			if (ch->pid > 0 || agent_pid(an) || now < ch->restart_at)
				continue;
			ch->pid = spawn_agent(l, &l->nodes[i]);
			ch->started = now;
		}
		usleep(50 * 1000);
	}
	/* stop everything this supervisor runs */
	if (ca.pid > 0)
		kill(ca.pid, SIGTERM);
	if (prom.pid > 0)
		kill(prom.pid, SIGTERM);
	if (kapi.pid > 0)
		kill(kapi.pid, SIGTERM);
	if (redis.pid > 0)
		kill(redis.pid, SIGTERM);
	/* SIGINT: a draining agent takes SIGTERM as "the pod it replaced is stopped" */
	for (int i = 0; i < LAB_MAX_NODES; i++)
		if (agents[i].pid > 0)
			kill(agents[i].pid, SIGINT);
	for (int i = 0; i < SUP_DRAINING; i++)
		if (draining[i].pid > 0)
			kill(draining[i].pid, SIGINT);
	for (int t = 0; t < 60 && waitpid(-1, NULL, WNOHANG) >= 0; t++)
		usleep(50 * 1000);
	if (ca.pid > 0)
		kill(ca.pid, SIGKILL);
	if (prom.pid > 0)
		kill(prom.pid, SIGKILL);
	if (kapi.pid > 0)
		kill(kapi.pid, SIGKILL);
	if (redis.pid > 0)
		kill(redis.pid, SIGKILL);
	for (int i = 0; i < LAB_MAX_NODES; i++)
		if (agents[i].pid > 0)
			kill(agents[i].pid, SIGKILL);
	for (int i = 0; i < SUP_DRAINING; i++)
		if (draining[i].pid > 0)
			kill(draining[i].pid, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0)
		;
	free(l->pods);
	free(l);
	return 0;
}

/* The supervisor of lab l, started if it does not run. */
static int supervisor_ensure(struct lab *l)
{
	char self[600], log[700];
	pid_t pid;

	if (pid_alive(l->supervisor_pid))
		return 0;
	if (self_exe(self, sizeof(self)))
		return -1;
	snprintf(log, sizeof(log), "%s/supervisor.log", l->dir);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		daemon_stdio(log);
		execl(self, self, "lab", "supervise", "--name", l->name, "--bpffs", l->bpffs,
		      (char *)NULL);
		_exit(127);
	}
	l->supervisor_pid = pid;
	return state_save(l);
}

static void supervisor_stop(struct lab *l)
{
	int pid = l->supervisor_pid;

	if (!pid_alive(pid))
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 100 && pid_alive(pid); i++) {
		waitpid(pid, NULL, WNOHANG);
		usleep(50 * 1000);
	}
	if (pid_alive(pid))
		kill(pid, SIGKILL);
	waitpid(pid, NULL, WNOHANG);
}

/* The node's identity for the CA service (its agent's --node-cert). */
static int node_cert(struct lab *l, const struct lab_node *n)
{
	char cadir[700], out[700], crt[800];

	snprintf(cadir, sizeof(cadir), "%s/ca", l->dir);
	snprintf(out, sizeof(out), "%s/nodes", l->dir);
	mkdir(out, 0700);
	snprintf(out, sizeof(out), "%s/nodes/%s", l->dir, n->name);
	snprintf(crt, sizeof(crt), "%s/node.crt", out);
	if (access(crt, F_OK) == 0)
		return 0;
	{
		char self[600];

		if (self_exe(self, sizeof(self)))
			return -1;
		return RUN(self, "ca", "node", "--dir", cadir, "--node", (char *)n->name, "--out",
			   out);
	}
}

/* Ready = `bpfmesh status` would say so, and every local pod is in its bm_pod map. */
static bool agent_ready(struct lab *l, struct lab_node *n)
{
	char an[256], pin[600], cg[800];
	struct bm_mapfds f;
	struct bm_meta meta = {};
	__u32 zero = 0;
	bool ok;

	agent_name(l, n->name, an, sizeof(an));
	dp_pin_dir(pin, sizeof(pin), l->bpffs, an);
	if (!agent_pid(an) || !dp_links_attached(pin) || dp_open_pinned(pin, &f))
		return false;
	ok = bpf_map_lookup_elem(f.meta, &zero, &meta) == 0 && meta.loaded;
	for (int i = 0; ok && i < l->npods; i++) {
		struct lab_pod *p = &l->pods[i];
		struct bm_pod bp;
		struct stat st;
		__u64 id;

		if (strcmp(p->node, n->name))
			continue;
		snprintf(cg, sizeof(cg), "%s/%s/%s_%s", l->cg_root, p->node, p->ns, p->name);
		if (stat(cg, &st)) {
			ok = false;
			break;
		}
		id = st.st_ino;
		ok = bpf_map_lookup_elem(f.pod, &id, &bp) == 0;
	}
	dp_close_fds(&f);
	return ok;
}

/* ---------- pods ---------- */

static int enter_pod(const struct lab *l, const struct lab_pod *p)
{
	char ns[400], path[600], cg[800], pid[32];
	int fd;

	snprintf(cg, sizeof(cg), "%s/%s/%s_%s/cgroup.procs", l->cg_root, p->node, p->ns, p->name);
	fd = open(cg, O_WRONLY);
	snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (fd < 0 || write(fd, pid, strlen(pid)) < 0) {
		fprintf(stderr, "lab: join cgroup %s: %s\n", cg, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	netns_pod(l, p, ns, sizeof(ns));
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET)) {
		fprintf(stderr, "lab: enter netns %s: %s\n", ns, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/* The pod's /etc/hosts and resolv.conf (lab_dns writes them in /etc/netns/NS) in a mount
 * namespace of this process, as `ip netns exec` binds them (without its /sys remount): the
 * pod's own programs (an echo's ECHO_CALL) resolve service names as in a cluster. */
static void pod_etc(const struct lab *l, const struct lab_pod *p)
{
	static const char *const files[] = {"hosts", "resolv.conf"};
	char ns[400], src[700], dst[64];

	netns_pod(l, p, ns, sizeof(ns));
	if (unshare(CLONE_NEWNS) || mount("", "/", NULL, MS_SLAVE | MS_REC, NULL)) {
		fprintf(stderr, "lab: pod %s/%s: own mount namespace: %s (names of the host)\n",
			p->ns, p->name, strerror(errno));
		return;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(src, sizeof(src), "/etc/netns/%s/%s", ns, files[i]);
		snprintf(dst, sizeof(dst), "/etc/%s", files[i]);
		if (access(src, R_OK) == 0 && mount(src, dst, NULL, MS_BIND, NULL))
			fprintf(stderr, "lab: pod %s/%s: bind %s: %s\n", p->ns, p->name, src,
				strerror(errno));
	}
}

static const struct workload_obj *pod_object(const struct mesh_config *c, const char *ns,
					     const char *name)
{
	for (int i = 0; i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];

		if (w->kind == WL_POD && !strcmp(w->ns, ns) && !strcmp(w->name, name))
			return w;
	}
	return NULL;
}

/* Ports a pod serves: its containerPorts, and the targetPorts of Services selecting it. */
static int pod_ports(const struct mesh_config *c, const struct workload_obj *w, int *ports, int max)
{
	int n = 0;

	for (int i = 0; i < w->nports && n < max; i++)
		ports[n++] = w->ports[i].port;
	for (int i = 0; i < c->nservices; i++) {
		const struct svc_obj *s = &c->services[i];

		if (!s->has_selector || strcmp(s->ns, w->ns) || !kv_match(&s->selector, &w->labels))
			continue;
		for (int k = 0; k < s->nports && n < max; k++)
			if (!s->ports[k].target_port_name)
				ports[n++] = s->ports[k].target_port ? s->ports[k].target_port
								     : s->ports[k].port;
	}
	return n;
}

/* What a pod's server is started with (labels, env, ports), as a hash: when a Deployment's
 * template changes, its pods are replaced, as a rollout would (ECHO_FAIL_PERCENT...). */
static uint32_t server_spec(const struct mesh_config *c, const struct workload_obj *w)
{
	struct buf b = {0};
	int ports[64], n = pod_ports(c, w, ports, 64);
	uint32_t h;

	for (int i = 0; i < w->labels.n; i++)
		bprintf(&b, "l %s=%s\n", w->labels.v[i].key, w->labels.v[i].val);
	for (int i = 0; i < w->env.n; i++)
		bprintf(&b, "e %s=%s\n", w->env.v[i].key, w->env.v[i].val ? w->env.v[i].val : "");
	for (int i = 0; i < n; i++)
		bprintf(&b, "p %d\n", ports[i]);
	h = rs_hash32(b.p ? b.p : "") | 1;
	free(b.p);
	return h;
}

static int pod_server_start(struct lab *l, struct lab_pod *p, const struct mesh_config *c)
{
	const struct workload_obj *w = pod_object(c, p->ns, p->name);
	char log[800], v4[64], v6[64];
	int ports[64], nports;
	pid_t pid;

	if (!w)
		return -1;
	nports = pod_ports(c, w, ports, 64);
	p->spec = server_spec(c, w);
	pod_addrs(l, p, v4, v6);
	snprintf(log, sizeof(log), "%s/pod-%s_%s.log", l->dir, p->ns, p->name);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct echo_conf ec = {.pod = p->name,
				       .ns = p->ns,
				       .node = p->node,
				       .ip = v4,
				       .labels = w->labels,
				       .env = w->env,
				       .ports = ports,
				       .nports = nports};
		daemon_stdio(log);
		if (enter_pod(l, p))
			_exit(1);
		pod_etc(l, p);
		if (nports == 0) { /* a client: nothing to serve, it lives until stopped */
			fprintf(stderr, "echo: no ports to serve; waiting\n");
			for (;;)
				pause();
		}
		_exit(echo_run(&ec) ? 1 : 0);
	}
	p->pid = pid;
	return 0;
}

/* Does the pod answer HTTP on its first port, from inside its own netns? */
static bool pod_answers(struct lab *l, struct lab_pod *p, const struct mesh_config *c)
{
	const struct workload_obj *w = pod_object(c, p->ns, p->name);
	int ports[64], n, status;
	pid_t pid;

	if (!w || !pid_alive(p->pid))
		return false;
	n = pod_ports(c, w, ports, 64);
	if (n == 0)
		return true; /* nothing to serve */
	pid = fork();
	if (pid == 0) {
		char v4[64], v6[64];
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(ports[0])};
		char req[] = "GET / HTTP/1.0\r\n\r\n", resp[256] = "";
		struct timeval tv = {.tv_sec = 1};
		int fd;

		pod_addrs(l, p, v4, v6);
		inet_pton(AF_INET, v4, &sa.sin_addr);
		/* enter the netns only (not the cgroup): a probe is not pod traffic */
		char ns[400], path[600];

		netns_pod(l, p, ns, sizeof(ns));
		snprintf(path, sizeof(path), "/run/netns/%s", ns);
		fd = open(path, O_RDONLY);
		if (fd < 0 || setns(fd, CLONE_NEWNET))
			_exit(1);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
		    write(fd, req, strlen(req)) < 0)
			_exit(1);
		/* the status line, first or right after a banner line (a pod that speaks first,
		 * ECHO_BANNER); a second at most for each read */
		for (size_t got = 0, k = 0; k < 4 && got < sizeof(resp) - 1; k++) {
			ssize_t n = read(fd, resp + got, sizeof(resp) - 1 - got);

			if (n <= 0)
				break;
			got += (size_t)n;
			if ((got >= 7 && !memcmp(resp, "HTTP/1.", 7)) ||
			    memmem(resp, got, "\nHTTP/1.", 8))
				_exit(0);
		}
		_exit(1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* mTLS on: the agent of the pod's node holds a certificate for the pod (it publishes each one
 * as <run dir>/certs/NS_SA.pem), so tunnelled connections to and from it work from the start.
 * A pod outside the mesh needs none. */
static bool pod_has_cert(const struct lab *l, const struct lab_pod *p, const struct mesh_config *c)
{
	const struct workload_obj *w = pod_object(c, p->ns, p->name);
	char an[256], dir[512], path[1100];
	struct stat st;

	if (!l->mtls || !w || !config_in_mesh(c, w))
		return true;
	agent_name(l, p->node, an, sizeof(an));
	if (agent_run_dir(dir, sizeof(dir), an))
		return false;
	snprintf(path, sizeof(path), "%s/certs/%s_%s.pem", dir, w->ns,
		 w->service_account ? w->service_account : "default");
	return stat(path, &st) == 0;
}

static int pod_net_up(struct lab *l, struct lab_pod *p)
{
	char ns[400], node_ns[256], cg[800], v4[64], v6[64], hostdir[600], path[700], veth[16],
	    a4[80], a6[80], gw4[32], gw6[48], mac[24];
	const struct lab_node *n = node_find(l, p->node);

	netns_pod(l, p, ns, sizeof(ns));
	netns_node(l, p->node, node_ns, sizeof(node_ns));
	pod_addrs(l, p, v4, v6);
	snprintf(cg, sizeof(cg), "%s/%s/%s_%s", l->cg_root, p->node, p->ns, p->name);
	if (mkdir(cg, 0755) && errno != EEXIST)
		return -1;
	snprintf(hostdir, sizeof(hostdir), "/etc/netns/%s", ns);
	mkdir("/etc/netns", 0755);
	if (mkdir(hostdir, 0755) && errno != EEXIST)
		return -1;
	snprintf(path, sizeof(path), "%s/resolv.conf", hostdir);
	if (write_file(path, "nameserver 127.0.0.1\n", 21))
		return -1;
	/* the node-side veth name must fit IFNAMSIZ: derive it from the node and slot */
	snprintf(veth, sizeof(veth), "p%d", p->k);
	snprintf(a4, sizeof(a4), "%s/24", v4);
	snprintf(a6, sizeof(a6), "%s/64", v6);
	snprintf(gw4, sizeof(gw4), "10.244.%d.1", n->index);
	snprintf(gw6, sizeof(gw6), "fd00:244:%x::1", n->index);
	/* the MAC follows the address (02:42 and the IPv4 bytes, as Docker's bridge does): a pod
	 * made again with the same address answers under the MAC its peers have cached, so no
	 * stale neighbour entry sends them to a MAC that is gone */
	{
		unsigned int o[4] = {0};

		sscanf(v4, "%u.%u.%u.%u", &o[0], &o[1], &o[2], &o[3]);
		snprintf(mac, sizeof(mac), "02:42:%02x:%02x:%02x:%02x", o[0] & 255, o[1] & 255,
			 o[2] & 255, o[3] & 255);
	}
	if (RUN("ip", "netns", "add", ns) || RUN("ip", "-n", ns, "link", "set", "lo", "up") ||
	    RUN("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0") ||
	    RUN("ip", "link", "add", veth, "netns", node_ns, "type", "veth", "peer", "name", "eth0",
		"netns", ns) ||
	    RUN("ip", "-n", ns, "link", "set", "eth0", "address", mac) ||
	    RUN("ip", "-n", node_ns, "link", "set", veth, "master", "br0", "up") ||
	    RUN("ip", "-n", ns, "link", "set", "eth0", "up") ||
	    RUN("ip", "-n", ns, "addr", "add", a4, "dev", "eth0") ||
	    RUN("ip", "-n", ns, "addr", "add", a6, "dev", "eth0", "nodad") ||
	    RUN("ip", "-n", ns, "route", "add", "default", "via", gw4) ||
	    RUN("ip", "-n", ns, "-6", "route", "add", "default", "via", gw6))
		return -1;
	return 0;
}

static void pod_kill(struct lab_pod *p)
{
	if (p->pid > 0 && pid_alive(p->pid)) {
		kill(p->pid, SIGTERM);
		for (int i = 0; i < 50 && pid_alive(p->pid); i++) {
			waitpid(p->pid, NULL, WNOHANG);
			usleep(20000);
		}
		if (pid_alive(p->pid))
			kill(p->pid, SIGKILL);
		/* gone before this returns: its ports are free for what the caller starts next */
		for (int i = 0; i < 100 && pid_alive(p->pid); i++) {
			waitpid(p->pid, NULL, WNOHANG);
			usleep(20000);
		}
		waitpid(p->pid, NULL, WNOHANG);
	}
	p->pid = 0;
}

static void pod_destroy(struct lab *l, struct lab_pod *p)
{
	char ns[400], cg[800], path[900];

	pod_kill(p);
	netns_pod(l, p, ns, sizeof(ns));
	RUN_QUIET("ip", "netns", "del", ns);
	snprintf(path, sizeof(path), "/etc/netns/%s", ns);
	rm_tree(path);
	snprintf(cg, sizeof(cg), "%s/%s/%s_%s", l->cg_root, p->node, p->ns, p->name);
	/* processes a `lab exec` left in the cgroup must go before it can be removed */
	for (int i = 0; i < 50 && rmdir(cg) && errno == EBUSY; i++) {
		snprintf(path, sizeof(path), "%s/cgroup.kill", cg);
		int fd = open(path, O_WRONLY);

		if (fd >= 0) {
			if (write(fd, "1", 1) < 0)
				break;
			close(fd);
		}
		usleep(20000);
	}
	snprintf(path, sizeof(path), "%s/Pod.%s.%s.yaml", l->config, p->ns, p->name);
	unlink(path);
}

/* ---------- config: desired pods, Pod objects, /etc/hosts ---------- */

struct want_pod {
	const struct workload_obj *w; /* Deployment or Pod */
	char name[128];
	const char *node;
};

static const char *wl_node(const struct workload_obj *w, const char *first)
{
	return w->node_name ? w->node_name : first;
}

static int desired_pods(const struct mesh_config *c, struct want_pod **out, const char **first)
{
	struct want_pod *v = NULL;
	int n = 0, cap = 0;

	*first = NULL;
	for (int i = 0; i < c->nworkloads; i++) {
		const char *nn = c->workloads[i].node_name;

		if (c->workloads[i].kind != WL_WORKLOADENTRY && nn &&
		    (!*first || strcmp(nn, *first) < 0))
			*first = nn;
	}
	if (!*first)
		*first = "node1";
	for (int i = 0; i < c->nworkloads; i++) {
		const struct workload_obj *w = &c->workloads[i];
		const char *owner = kv_get(&w->annotations, "bpfmesh.io/owner");
		int reps = w->kind == WL_DEPLOYMENT ? w->replicas : 1;

		/* lab-made Pod objects mirror Deployments' replicas; a Pod of the user's files
		 * (owner absent, or "Pod" once the lab wrote its status) is a pod itself */
		if (w->kind == WL_WORKLOADENTRY ||
		    (w->kind == WL_POD && owner && strcmp(owner, "Pod")))
			continue;
		if (strlen(w->name) > LAB_MAX_POD_NAME - 8 || strlen(wl_node(w, *first)) > 63) {
			fprintf(
			    stderr,
			    "lab: %s/%s/%s: a name longer than %d characters, or a nodeName longer "
			    "than 63, is more than the lab can make (a cluster can); no pod made\n",
			    w->kind == WL_DEPLOYMENT ? "Deployment" : "Pod", w->ns, w->name,
			    LAB_MAX_POD_NAME - 8);
			continue;
		}
		for (int r = 0; r < reps; r++) {
			if (n == cap) {
				cap = cap ? 2 * cap : 32;
				v = realloc(v, cap * sizeof(*v));
				if (!v)
					abort();
			}
			v[n].w = w;
			v[n].node = wl_node(w, *first);
			if (w->kind == WL_DEPLOYMENT)
				snprintf(v[n].name, sizeof(v[n].name), "%s-%d", w->name, r);
			else
				snprintf(v[n].name, sizeof(v[n].name), "%s", w->name);
			n++;
		}
	}
	*out = v;
	return n;
}

/* The Pod object a kubelet would report: labels, env, ports, node and addresses. */
static int write_pod_object(struct lab *l, const struct lab_pod *p, const struct workload_obj *w)
{
	struct buf b = {0};
	char path[1024], v4[64], v6[64];
	int rc, ni = node_find(l, p->node) ? node_find(l, p->node)->index : 0;

	pod_addrs(l, p, v4, v6);
	bprintf(&b, "{\"apiVersion\": \"v1\", \"kind\": \"Pod\",\n \"metadata\": {\"name\": ");
	bjson_str(&b, p->name);
	bprintf(&b, ", \"namespace\": ");
	bjson_str(&b, p->ns);
	bprintf(&b, ",\n  \"labels\": ");
	bjson_kv(&b, &w->labels);
	bprintf(&b, ",\n  \"annotations\": {\"bpfmesh.io/owner\": ");
	bjson_str(&b, w->kind == WL_DEPLOYMENT ? "Deployment" : "Pod");
	for (int i = 0; i < w->annotations.n; i++) {
		if (!strcmp(w->annotations.v[i].key, "bpfmesh.io/owner"))
			continue;
		bprintf(&b, ", ");
		bjson_str(&b, w->annotations.v[i].key);
		bprintf(&b, ": ");
		bjson_str(&b, w->annotations.v[i].val);
	}
	bprintf(&b, "}},\n \"spec\": {\"nodeName\": ");
	bjson_str(&b, p->node);
	if (w->service_account) {
		bprintf(&b, ", \"serviceAccountName\": ");
		bjson_str(&b, w->service_account);
	}
	bprintf(&b, ",\n  \"containers\": [{\"name\": \"app\", \"image\": \"bpfmesh-echo\", "
		    "\"ports\": [");
	for (int i = 0; i < w->nports; i++) {
		bprintf(&b, "%s{\"containerPort\": %d", i ? ", " : "", w->ports[i].port);
		if (w->ports[i].name) {
			bprintf(&b, ", \"name\": ");
			bjson_str(&b, w->ports[i].name);
		}
		if (w->ports[i].protocol) {
			bprintf(&b, ", \"protocol\": ");
			bjson_str(&b, w->ports[i].protocol);
		}
		bprintf(&b, "}");
	}
	bprintf(&b, "], \"env\": [");
	for (int i = 0; i < w->env.n; i++) {
		bprintf(&b, "%s{\"name\": ", i ? ", " : "");
		bjson_str(&b, w->env.v[i].key);
		bprintf(&b, ", \"value\": ");
		bjson_str(&b, w->env.v[i].val);
		bprintf(&b, "}");
	}
	bprintf(&b,
		"]}]},\n \"status\": {\"hostIP\": \"10.244.255.%d\", \"hostIPs\": [{\"ip\": "
		"\"10.244.255.%d\"}, {\"ip\": \"fd00:244:ff::%x\"}], \"podIP\": \"%s\", "
		"\"podIPs\": [{\"ip\": \"%s\"}, {\"ip\": \"%s\"}]}}\n",
		ni, ni, ni, v4, v4, v6);
	snprintf(path, sizeof(path), "%s/Pod.%s.%s.yaml", l->config, p->ns, p->name);
	rc = write_file(path, b.p, b.n);
	free(b.p);
	return rc;
}

/* ---------- the ingress gateway ---------- */

/* The Gateway servers the lab's agents serve (selector within the default ingress labels),
 * their ports in config order, each once: how many, at most max. */
static int ingress_ports(const struct mesh_config *c, int *ports, const char **gws, int max)
{
	struct kv lv[] = {{"istio", "ingressgateway"}, {"app", "istio-ingressgateway"}};
	const struct kvlist labels = {lv, 2};
	int n = 0;

	for (int g = 0; c && g < c->ngws; g++) {
		const struct gw_obj *gw = &c->gws[g];

		if (!kv_match(&gw->selector, &labels))
			continue;
		for (int i = 0; i < gw->nservers && n < max; i++) {
			const struct gw_server *sv = &gw->servers[i];
			bool dup = false;

			for (int k = 0; k < n && !dup; k++)
				dup = ports[k] == (int)sv->port;
			if (dup || !sv->port || sv->port > 65535)
				continue;
			gws[n] = gw->name;
			ports[n++] = (int)sv->port;
		}
	}
	return n;
}

/*
 * istio-system/istio-ingressgateway, as Istio installs it, so the guide's `kubectl get svc`
 * and port-forward work: a LoadBalancer Service whose endpoints are the nodes' addresses
 * (every lab agent is a gateway, on its node's address), ports 80 and 443 and every Gateway
 * server port, each to the same port (the agent listens on the server's port itself).
 */
#define LAB_OWNED "\"bpfmesh.io/owner\": \"lab\"}}" /* (how write_gw_service marks its files) */

/* The file at path is absent, or one the lab wrote (never a user's object of that name). */
static bool lab_owned(const char *path)
{
	char head[700] = "";
	FILE *f = fopen(path, "r");
	size_t got;

	if (!f)
		return errno == ENOENT;
	got = fread(head, 1, sizeof(head) - 1, f);
	fclose(f);
	head[got] = 0;
	return strstr(head, LAB_OWNED) != NULL;
}

/* A Service the nodes' gateways answer for, lab-owned: ports each to the same port, its
 * EndpointSlice the nodes' addresses. labels: JSON members for metadata.labels. A user's
 * object of that name is left as it is. */
static int write_gw_service(struct lab *l, const char *ns, const char *name, const int *ports,
			    int n, const char *labels)
{
	struct buf b = {0}, e = {0}, pl = {0};
	char path[1024], spath[1024];
	int rc = 0;

	snprintf(spath, sizeof(spath), "%s/Service.%s.%s.yaml", l->config, ns, name);
	snprintf(path, sizeof(path), "%s/EndpointSlice.%s.%s-lab.yaml", l->config, ns, name);
	if (!lab_owned(spath) || !lab_owned(path)) {
		fprintf(stderr,
			"lab: Service %s/%s is the user's: the lab does not write its own\n", ns,
			name);
		return 0;
	}
	for (int i = 0; i < n; i++) { /* Istio's names for 80 and 443 */
		char pn[32];

		if (ports[i] == 80 || ports[i] == 443)
			snprintf(pn, sizeof(pn), "%s", ports[i] == 80 ? "http2" : "https");
		else
			snprintf(pn, sizeof(pn), "tcp-%d", ports[i]);
		bprintf(&pl, "%s{\"name\": \"%s\", \"port\": %d, \"protocol\": \"TCP\"}",
			i ? ", " : "", pn, ports[i]);
		bprintf(&b,
			"%s{\"name\": \"%s\", \"port\": %d, \"targetPort\": %d, "
			"\"protocol\": \"TCP\"}",
			i ? ", " : "", pn, ports[i], ports[i]);
	}
	bprintf(&e,
		"{\"apiVersion\": \"discovery.k8s.io/v1\", \"kind\": \"EndpointSlice\",\n "
		"\"metadata\": {\"name\": \"%s-lab\", \"namespace\": \"%s\", \"labels\": "
		"{\"kubernetes.io/service-name\": \"%s\"}, \"annotations\": "
		"{\"bpfmesh.io/owner\": \"lab\"}},\n \"addressType\": \"IPv4\", \"ports\": "
		"[%s], \"endpoints\": [",
		name, ns, name, pl.p ? pl.p : "");
	for (int i = 0; i < l->nnodes; i++) {
		bprintf(&e,
			"%s{\"addresses\": [\"10.244.255.%d\"], \"conditions\": {\"ready\": "
			"true}, \"nodeName\": ",
			i ? ", " : "", l->nodes[i].index);
		bjson_str(&e, l->nodes[i].name);
		bprintf(&e, "}");
	}
	bprintf(&e, "]}\n");
	{
		struct buf h = {0};

		bprintf(&h,
			"{\"apiVersion\": \"v1\", \"kind\": \"Service\",\n \"metadata\": "
			"{\"name\": \"%s\", \"namespace\": \"%s\", \"labels\": {%s}, "
			"\"annotations\": {\"bpfmesh.io/owner\": \"lab\"}},\n \"spec\": "
			"{\"type\": \"LoadBalancer\", \"ports\": [%s]}}\n",
			name, ns, labels, b.p ? b.p : "");
		rc = write_file(spath, h.p, h.n);
		free(h.p);
	}
	if (!rc)
		rc = write_file(path, e.p, e.n);
	free(b.p);
	free(e.p);
	free(pl.p);
	return rc;
}

/*
 * The Services of the nodes' gateways, as Istio installs and deploys them:
 * istio-system/istio-ingressgateway (ports 80, 443 and every Gateway server port), and for
 * each Gateway API Gateway NAME, NAME-istio in its namespace (its listeners' ports), as
 * Istio's automated deployment names it; those of Gateways gone are removed.
 */
static int write_ingress(struct lab *l, const struct mesh_config *c)
{
	int ports[64] = {80, 443}, more[62], n = 2, rc;
	const char *gws[62];
	int k = ingress_ports(c, more, gws, 62);
	DIR *d;
	struct dirent *de;

	for (int i = 0; i < k; i++)
		if (more[i] != 80 && more[i] != 443)
			ports[n++] = more[i];
	rc = write_gw_service(l, GW_NS, GW_NAME, ports, n,
			      "\"app\": \"istio-ingressgateway\", \"istio\": \"ingressgateway\"");
	for (int g = 0; !rc && c && g < c->ngws; g++) {
		const struct gw_obj *gw = &c->gws[g];
		char base[300], name[320], lab[400];
		int np = 0, gp[64];

		if (!gwapi_derived(gw->name))
			continue;
		snprintf(base, sizeof(base), "%.*s", (int)(strlen(gw->name) - strlen(GWAPI_SUFFIX)),
			 gw->name);
		snprintf(name, sizeof(name), "%s-istio", base);
		snprintf(lab, sizeof(lab), "\"gateway.networking.k8s.io/gateway-name\": \"%s\"",
			 base);
		for (int i = 0; i < gw->nservers && np < 64; i++)
			gp[np++] = (int)gw->servers[i].port;
		rc = write_gw_service(l, gw->ns, name, gp, np, lab);
	}
	/* NAME-istio of a Gateway API Gateway that is gone */
	d = opendir(l->config);
	while (d && (de = readdir(d))) {
		char ns[128], nm[300], full[320], path[1200];
		bool want = false;
		size_t len;

		if (sscanf(de->d_name, "Service.%127[^.].%299s", ns, nm) != 2)
			continue;
		len = strlen(nm);
		if (len < 5 + 11 || strcmp(nm + len - 5, ".yaml"))
			continue;
		nm[len - 5] = 0;
		len -= 5;
		if (len < 6 || strcmp(nm + len - 6, "-istio"))
			continue;
		snprintf(full, sizeof(full), "%.*s%s", (int)(len - 6), nm, GWAPI_SUFFIX);
		for (int g = 0; c && g < c->ngws && !want; g++)
			want = !strcmp(c->gws[g].ns, ns) && !strcmp(c->gws[g].name, full);
		if (want)
			continue;
		snprintf(path, sizeof(path), "%s/%s", l->config, de->d_name);
		if (access(path, F_OK) || !lab_owned(path))
			continue; /* the lab's own files only, never a user's of that name */
		unlink(path);
		snprintf(path, sizeof(path), "%s/EndpointSlice.%s.%s-lab.yaml", l->config, ns, nm);
		if (!access(path, F_OK) && lab_owned(path))
			unlink(path);
	}
	if (d)
		closedir(d);
	return rc;
}

/* /etc/hosts for every pod: service names as cluster DNS resolves them from its namespace. */
static void write_hosts(struct lab *l, const struct mesh_config *c)
{
	for (int i = 0; i < l->npods; i++) {
		struct lab_pod *p = &l->pods[i];
		struct buf b = {0};
		char ns[400], path[700], v4[64], v6[64];

		pod_addrs(l, p, v4, v6);
		bprintf(&b, "127.0.0.1 localhost\n::1 localhost\n%s %s\n%s %s\n", v4, p->name, v6,
			p->name);
		for (int s = 0; s < c->nservices; s++) {
			const struct svc_obj *sv = &c->services[s];
			char vip[64];

			for (int fam = BM_FAM_V4; fam <= BM_FAM_V6; fam += 2) {
				if (resolve_service_vip(c, sv, fam, vip, sizeof(vip)))
					continue;
				bprintf(&b, "%s %s.%s.svc.cluster.local %s.%s.svc %s.%s", vip,
					sv->name, sv->ns, sv->name, sv->ns, sv->name, sv->ns);
				if (!strcmp(sv->ns, p->ns))
					bprintf(&b, " %s", sv->name);
				bprintf(&b, "\n");
			}
		}
		netns_pod(l, p, ns, sizeof(ns));
		snprintf(path, sizeof(path), "/etc/netns/%s/hosts", ns);
		write_in_place(path, b.p, b.n);
		free(b.p);
	}
}

static int load_config(const struct lab *l, struct mesh_config **out, bool quiet)
{
	struct mesh_config *c = config_new();
	struct diags d = {0};

	/* objects are judged one by one: an invalid one is left out (apply never stores one) */
	int rc = config_load_dir(c, l->config, &d);

	if (rc < 0 || !quiet)
		diags_print(&d, stderr);
	if (rc < 0) {
		diags_free(&d);
		config_free(c);
		return -1;
	}
	diags_free(&d);
	*out = c;
	return 0;
}

static int node_index_free(const struct lab *l)
{
	for (int idx = 1; idx < LAB_MAX_NODES; idx++) {
		bool used = false;

		for (int i = 0; i < l->nnodes; i++)
			used |= l->nodes[i].index == idx;
		if (!used)
			return idx;
	}
	return -1;
}

static int pod_k_free(const struct lab *l, const char *node)
{
	for (int k = 2; k < 2 + LAB_MAX_PODS; k++) {
		bool used = false;

		for (int i = 0; i < l->npods; i++)
			used |= l->pods[i].alive >= 0 && !strcmp(l->pods[i].node, node) &&
				l->pods[i].k == k;
		if (!used)
			return k;
	}
	return -1;
}

/*
 * Make the running lab match the config: nodes and agents for every nodeName, a pod for every
 * replica, nothing for what is gone. Pods whose spec is unchanged keep running.
 */
/* Does the lab's Redis answer PING (a bounded wait: one short connect and read)? */
static bool redis_ping(const struct lab *l)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(l->redis_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = 1};
	char buf[16] = {0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ok = !connect(fd, (struct sockaddr *)&sa, sizeof(sa)) && write(fd, "PING\r\n", 6) == 6 &&
	     read(fd, buf, sizeof(buf) - 1) > 0 && !strncmp(buf, "+PONG", 5);
	close(fd);
	return ok;
}

static int reconcile(struct lab *l)
{
	struct mesh_config *c;
	struct want_pod *want;
	const char *first;
	int nwant, err = 0;
	bool redis_start = false;

	if (load_config(l, &c, true))
		return -1;
	if (l->redis_port && !l->redis_on && rl_has_global(c)) {
		l->redis_on = true; /* the supervisor starts it (state_save below) */
		redis_start = true;
	}
	nwant = desired_pods(c, &want, &first);
	for (int i = 0; i < l->npods; i++)
		l->pods[i].alive = 0;
	/* nodes first */
	for (int i = 0; i < nwant && !err; i++) {
		if (node_find(l, want[i].node))
			continue;
		if (l->nnodes >= LAB_MAX_NODES) {
			fprintf(stderr, "lab: more than %d nodes\n", LAB_MAX_NODES);
			err = -1;
			break;
		}
		struct lab_node *n = &l->nodes[l->nnodes];

		memset(n, 0, sizeof(*n));
		snprintf(n->name, sizeof(n->name), "%s", want[i].node);
		n->index = node_index_free(l);
		l->nnodes++;
		n->metrics_port = free_port();
		n->health_port = free_port();
		if (node_up(l, n) || (l->mtls && node_cert(l, n))) {
			fprintf(stderr, "lab: cannot create node %s\n", n->name);
			err = -1;
		}
		node_routes(l);
	}
	/* pods: create the missing ones, write every Pod object */
	for (int i = 0; i < nwant && !err; i++) {
		struct lab_pod *p = pod_find(l, want[i].w->ns, want[i].name);
		bool fresh = !p;

		if (!p) {
			p = pod_add(l);
			snprintf(p->ns, sizeof(p->ns), "%s", want[i].w->ns);
			snprintf(p->name, sizeof(p->name), "%s", want[i].name);
			snprintf(p->node, sizeof(p->node), "%s", want[i].node);
			p->alive = -1; /* excluded from pod_k_free while choosing */
			p->k = pod_k_free(l, p->node);
			if (p->k < 0 || pod_net_up(l, p)) {
				fprintf(stderr, "lab: cannot create pod %s/%s\n", p->ns, p->name);
				err = -1;
			}
		}
		p->alive = 1;
		if (!err && (write_pod_object(l, p, want[i].w) || (fresh && state_save(l))))
			err = -1;
	}
	/* pods no longer wanted */
	for (int i = 0; i < l->npods && !err; i++) {
		if (l->pods[i].alive)
			continue;
		pod_destroy(l, &l->pods[i]);
		l->pods[i] = l->pods[--l->npods];
		i--;
	}
	if (!err && write_ingress(l, c))
		fprintf(stderr, "lab: cannot write the %s/%s Service\n", GW_NS, GW_NAME);
	free(want);
	config_free(c);
	if (err)
		return state_save(l), -1;
	/* reload with the Pod objects, then start servers and agents */
	if (load_config(l, &c, true))
		return -1;
	write_hosts(l, c);
	for (int i = 0; i < l->npods; i++) {
		struct lab_pod *p = &l->pods[i];
		const struct workload_obj *w = pod_object(c, p->ns, p->name);

		if (w && pid_alive(p->pid) && p->spec && p->spec != server_spec(c, w))
			pod_kill(p); /* its template changed: a new pod, as a rollout makes */
		if (!pid_alive(p->pid))
			pod_server_start(l, p, c);
	}
	state_save(l);
	if (supervisor_ensure(l)) { /* it starts the agents (and the CA) and keeps them up */
		config_free(c);
		return -1;
	}
	/* ready: every agent attached with the config, every pod enrolled and answering */
	uint64_t deadline = mono_ms() + LAB_READY_SECS * 1000;
	bool ready = false;

	while (!ready && mono_ms() < deadline) {
		ready = true;
		if (!pid_alive(l->supervisor_pid)) {
			fprintf(stderr,
				"lab %s: the supervisor exited; its log is %s/supervisor.log\n",
				l->name, l->dir);
			deadline = 0;
		}
		for (int i = 0; i < l->nnodes && ready; i++)
			ready = agent_ready(l, &l->nodes[i]);
		for (int i = 0; i < l->npods && ready; i++)
			ready = pod_answers(l, &l->pods[i], c) && pod_has_cert(l, &l->pods[i], c);
		if (ready && redis_start)
			ready = redis_ping(l);
		if (!ready)
			usleep(50 * 1000);
	}
	config_free(c);
	if (!ready) {
		fprintf(stderr, "lab %s: not ready after %d s; see logs in %s\n", l->name,
			LAB_READY_SECS, l->dir);
		for (int i = 0; i < l->nnodes; i++) {
			char log[800];

			if (agent_ready(l, &l->nodes[i]))
				continue;
			fprintf(stderr, "lab %s: node %s is not ready; the end of its log:\n",
				l->name, l->nodes[i].name);
			snprintf(log, sizeof(log), "%s/agent-%s.log", l->dir, l->nodes[i].name);
			print_tail(log, 20);
		}
		return -1;
	}
	return 0;
}

/* ---------- storing objects (like an API server) ---------- */

struct store_ctx {
	int dirfd; /* files are made relative to it only: never a path outside */
	const char *file;
	const struct mesh_config *user; /* the user's files loaded: which objects are invalid */
	int n, rejected;		/* stored; refused here (beyond user->nrejected) */
};

/* Whether the object starting at file:line was rejected when the user's files were loaded. */
static bool user_rejected(const struct store_ctx *sc, int line)
{
	for (int i = 0; i < sc->user->nrejected; i++) {
		const struct rejected_obj *r = &sc->user->rejected[i];

		if (r->pos.line == line && r->pos.file && !strcmp(r->pos.file, sc->file))
			return true;
	}
	return false;
}

/* A kind as an API server would take it for a file name part: a letter, then letters and
 * digits (no '/', no '.'). */
static bool kind_ok(const char *k)
{
	if (!k || !((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z')) || strlen(k) > 63)
		return false;
	for (; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9')))
			return false;
	return true;
}

/* Write data to name in dirfd, atomically (temp file + rename in the same directory). */
static int write_at(int dirfd, const char *name, const char *data, size_t len)
{
	char tmp[600];
	int fd;

	snprintf(tmp, sizeof(tmp), ".%s.tmp%d", name, getpid());
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write(fd, data, len) != (ssize_t)len) {
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	close(fd);
	return renameat(dirfd, tmp, dirfd, name);
}

/* One object of the user's files, stored as the API server would: one file per object. An
 * invalid one (already reported by the load) is left out, as the API server refuses it. */
static int store_object(void *arg, const char *kind, const char *ns, const char *name, int line,
			const char *yaml, size_t len)
{
	struct store_ctx *sc = arg;
	char file[600];

	if (user_rejected(sc, line))
		return 0; /* counted in user->nrejected */
	/* every part is checked before it becomes part of a file name */
	if (!kind_ok(kind) || !names_dns_label(ns) || !names_dns_subdomain(name)) {
		fprintf(stderr,
			"%s:%d: %s/%s/%s: not a valid kind, namespace (DNS-1123 label) and name "
			"(DNS-1123 subdomain); not stored\n",
			sc->file, line, kind ? kind : "?", ns ? ns : "?", name ? name : "?");
		sc->rejected++;
		return 0;
	}
	snprintf(file, sizeof(file), "%s.%s.%s.yaml", kind, ns, name);
	if (write_at(sc->dirfd, file, yaml, len))
		return -1;
	sc->n++;
	return 0;
}

struct delete_ctx {
	int dirfd;
	const char *file;
	int deleted, missing;
};

/* lab delete: the object's file in the lab's config directory goes (kubectl delete -f). */
static int delete_object(void *arg, const char *kind, const char *ns, const char *name, int line,
			 const char *yaml, size_t len)
{
	struct delete_ctx *dc = arg;
	char file[600];

	(void)yaml;
	(void)len;
	if (!kind_ok(kind) || !names_dns_label(ns) || !names_dns_subdomain(name)) {
		fprintf(stderr, "%s:%d: not a valid kind, namespace and name; nothing deleted\n",
			dc->file, line);
		dc->missing++;
		return 0;
	}
	snprintf(file, sizeof(file), "%s.%s.%s.yaml", kind, ns, name);
	if (unlinkat(dc->dirfd, file, 0) == 0) {
		printf("%s %s/%s deleted\n", kind, ns, name);
		dc->deleted++;
	} else {
		fprintf(stderr, "%s:%d: %s %s/%s: not in the lab\n", dc->file, line, kind, ns,
			name);
		dc->missing++;
	}
	return 0;
}

/* Every object of the files out of the lab; how many were not there, or -1. */
static int delete_files(struct lab *l, char **files, int nfiles)
{
	struct delete_ctx dc = {.dirfd = open(l->config, O_RDONLY | O_DIRECTORY | O_CLOEXEC)};

	if (dc.dirfd < 0)
		return -1;
	for (int i = 0; i < nfiles; i++) {
		struct diags d = {0};

		dc.file = files[i];
		if (config_split_file(files[i], delete_object, &dc, &d) < 0) {
			diags_print(&d, stderr);
			dc.missing++;
		}
		diags_free(&d);
	}
	close(dc.dirfd);
	return dc.missing;
}

static bool plain_entry(int dirfd, const struct dirent *de)
{
	struct stat st;

	return de->d_name[0] != '.' && fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode);
}

static char *read_at(int dirfd, const char *name, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;

	if (fd < 0 || fstat(fd, &st) || !(buf = malloc(st.st_size + 1)) ||
	    read(fd, buf, st.st_size) != st.st_size) {
		free(buf);
		buf = NULL;
	} else {
		*len = st.st_size;
	}
	if (fd >= 0)
		close(fd);
	return buf;
}

/* Copy the regular files of from into to (made if needed). */
static int copy_dir(const char *from, const char *to)
{
	int ffd, tfd, rc = 0;
	struct dirent *de;
	DIR *d;

	if (mkdir(to, 0755) && errno != EEXIST)
		return -1;
	ffd = open(from, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	tfd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = ffd >= 0 ? fdopendir(dup(ffd)) : NULL;
	while (d && tfd >= 0 && (de = readdir(d))) {
		size_t len;
		char *buf;

		if (!plain_entry(ffd, de))
			continue;
		buf = read_at(ffd, de->d_name, &len);
		if (!buf || write_at(tfd, de->d_name, buf, len))
			rc = -1;
		free(buf);
	}
	if (d)
		closedir(d);
	if (ffd >= 0)
		close(ffd);
	if (tfd >= 0)
		close(tfd);
	return d && tfd >= 0 ? rc : -1;
}

/* Move every file of from that differs from its namesake in to (each rename atomic).
 * Returns how many moved, or -1. */
static int move_changed(const char *from, const char *to)
{
	int ffd = open(from, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int tfd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC), moved = 0;
	struct dirent *de;
	DIR *d = ffd >= 0 ? fdopendir(dup(ffd)) : NULL;

	while (d && tfd >= 0 && (de = readdir(d))) {
		size_t la = 0, lb = 0;
		char *a, *b;
		bool same;

		if (!plain_entry(ffd, de))
			continue;
		a = read_at(ffd, de->d_name, &la);
		b = read_at(tfd, de->d_name, &lb);
		same = a && b && la == lb && !memcmp(a, b, la);
		free(a);
		free(b);
		if (same)
			continue;
		if (renameat(ffd, de->d_name, tfd, de->d_name)) {
			moved = -1;
			break;
		}
		moved++;
	}
	if (d)
		closedir(d);
	if (ffd >= 0)
		close(ffd);
	if (tfd >= 0)
		close(tfd);
	return d && tfd >= 0 ? moved : -1;
}

/* Where an object of the user's files is, by "Kind/ns/name" (as diagnostics name it). */
static const struct srcpos *user_pos(const struct mesh_config *c, const char *object)
{
	char kind[64], ns[128], name[256];

	if (!object || sscanf(object, "%63[^/]/%127[^/]/%255s", kind, ns, name) != 3)
		return NULL;
#define FIND(arr, n)                                                                               \
	for (int i = 0; i < c->n; i++)                                                             \
		if (!strcmp(c->arr[i].ns, ns) && !strcmp(c->arr[i].name, name))                    \
			return &c->arr[i].pos;
	if (!strcmp(kind, "Service"))
		FIND(services, nservices)
	if (!strcmp(kind, "VirtualService"))
		FIND(vses, nvses)
	if (!strcmp(kind, "DestinationRule"))
		FIND(drs, ndrs)
	if (!strcmp(kind, "Deployment") || !strcmp(kind, "Pod") || !strcmp(kind, "WorkloadEntry"))
		FIND(workloads, nworkloads)
	FIND(others, nothers)
#undef FIND
	return NULL;
}

/* Errors found on the scratch copy name the user's file (or the live config), not scratch. */
static void rename_scratch(struct diags *d, const char *scratch, const struct mesh_config *user,
			   const char *live)
{
	size_t sl = strlen(scratch);

	for (int i = 0; i < d->n; i++) {
		struct diag *g = &d->v[i];
		const struct srcpos *pos;
		char buf[1200];

		if (!g->file || strncmp(g->file, scratch, sl))
			continue;
		pos = user_pos(user, g->object);
		if (pos) {
			snprintf(buf, sizeof(buf), "%s", pos->file);
			g->line = pos->line;
		} else {
			snprintf(buf, sizeof(buf), "%s%s", live, g->file + sl);
		}
		free(g->file);
		g->file = strdup(buf);
	}
}

/* Analysis across objects of what the lab holds after the apply, for the objects the user
 * applied (so a route naming an unknown subset is said now, not found at run time). */
static void analyze_applied(const char *scratch, const struct mesh_config *user, const char *live)
{
	struct mesh_config *c = config_new();
	struct diags d = {0}, quiet = {0};

	config_load_dir(c, scratch, &quiet);
	config_analyze(c, &d);
	rename_scratch(&d, scratch, user, live);
	for (int i = 0; i < d.n; i++)
		if (d.v[i].sev != DIAG_INFO && user_pos(user, d.v[i].object))
			diag_print_analyzer(&d.v[i], stderr);
	diags_free(&quiet);
	diags_free(&d);
	config_free(c);
}

/*
 * Apply files as `kubectl apply -f` does: every object is judged on its own (errors and
 * warnings name the user's file and line, and are printed whether or not the apply succeeds);
 * the valid ones are stored in a scratch copy of the config, analysed with the rest of what
 * the lab holds, then moved into the live config one by one. Returns 0 when every object was
 * applied, 1 when some were rejected (the others are applied), -1 when nothing could be.
 */
static int apply_files(struct lab *l, char **files, int nfiles)
{
	char scratch[700];
	struct diags d = {0}, again = {0};
	struct store_ctx sc = {.dirfd = -1};
	struct mesh_config *user = config_new();
	int rc = -1, moved;

	for (int i = 0; i < nfiles; i++)
		config_load_file(user, files[i], &d);
	diags_print(&d, stderr);
	snprintf(scratch, sizeof(scratch), "%s/.apply.%d", l->dir, getpid());
	rm_tree(scratch);
	if (copy_dir(l->config, scratch))
		goto out;
	sc.dirfd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sc.user = user;
	for (int i = 0; sc.dirfd >= 0 && i < nfiles; i++) {
		sc.file = files[i];
		/* problems were reported by the load above; the split only finds them again */
		config_split_file(files[i], store_object, &sc, &again);
	}
	if (sc.dirfd < 0)
		goto out;
	if (sc.n)
		analyze_applied(scratch, user, l->config);
	/* move objects in one by one (each rename is atomic; the agent debounces) */
	moved = move_changed(scratch, l->config);
	if (moved < 0)
		goto out;
	l->changed += moved;
	printf("%d object(s) applied\n", sc.n);
	sc.rejected += user->nrejected;
	if (sc.rejected)
		fprintf(stderr,
			"lab apply: %d object(s) rejected (see above); the others are "
			"applied\n",
			sc.rejected);
	rc = sc.rejected ? 1 : 0;
out:
	if (sc.dirfd >= 0)
		close(sc.dirfd);
	rm_tree(scratch);
	diags_free(&d);
	diags_free(&again);
	config_free(user);
	return rc;
}

/* ---------- commands ---------- */

struct lab_args {
	const char *name;
	const char *bpffs;
	const char *ns;
	const char *accel; /* "on" / "off" (lab up) */
	char **files;
	int nfiles;
	int argi; /* first positional argument */
	long cert_ttl_s;
	int mtls;
	bool strict_udp; /* lab up --strict-udp drop */
	int syn_rate;	 /* lab up --ingress-syn-rate N */
	const char *tr_endpoint, *tr_proto, *tr_sampling; /* lab up --tracing-* */
	bool no_wait;	 /* lab apply --no-wait */
	bool prometheus; /* lab up --prometheus */
	bool kube_api;	 /* lab up --kube-api */
	bool background; /* port-forward --background */
	int out;	 /* lab status -o: enum out_fmt */
};

static int parse_args(int argc, char **argv, struct lab_args *a)
{
	static const struct option opts[] = {{"name", required_argument, 0, 'N'},
					     {"bpffs", required_argument, 0, 'b'},
					     {"namespace", required_argument, 0, 'n'},
					     {"file", required_argument, 0, 'f'},
					     {"mtls", required_argument, 0, 'M'},
					     {"cert-ttl", required_argument, 0, 'T'},
					     {"accel", required_argument, 0, 'a'},
					     {"strict-udp", required_argument, 0, 'U'},
					     {"no-wait", no_argument, 0, 'W'},
					     {"prometheus", no_argument, 0, 'P'},
					     {"output", required_argument, 0, 'o'},
					     {"kube-api", no_argument, 0, 'K'},
					     {"background", no_argument, 0, 'B'},
					     {"ingress-syn-rate", required_argument, 0, 'S'},
					     {"tracing-endpoint", required_argument, 0, 0x201},
					     {"tracing-protocol", required_argument, 0, 0x202},
					     {"tracing-sampling", required_argument, 0, 0x203},
					     {0, 0, 0, 0}};
	int64_t ns;
	int o;

	memset(a, 0, sizeof(*a));
	a->name = "lab";
	a->ns = "default";
	a->mtls = 1;
	a->cert_ttl_s = 86400;
	a->files = calloc(argc + 1, sizeof(char *));
	optind = 1;
	/* argv ends before any "--" (the caller cuts it), so options may come anywhere */
	while ((o = getopt_long(argc, argv, "n:f:o:", opts, NULL)) != -1) {
		switch (o) {
		case 'o':
			a->out = out_fmt_parse(optarg);
			if (a->out < 0) {
				fprintf(stderr, "lab: -o %s: want json, yaml or wide\n", optarg);
				return -1;
			}
			break;
		case 'N':
			a->name = optarg;
			break;
		case 'b':
			a->bpffs = optarg;
			break;
		case 'n':
			a->ns = optarg;
			break;
		case 'f':
			a->files[a->nfiles++] = optarg;
			break;
		case 'M':
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr, "lab: --mtls on|off\n");
				return -1;
			}
			a->mtls = !strcmp(optarg, "on");
			break;
		case 'T':
			if (parse_duration_ns(optarg, &ns) || ns < 1000000000LL) {
				fprintf(stderr,
					"lab: --cert-ttl %s: want a duration of at least "
					"1s\n",
					optarg);
				return -1;
			}
			a->cert_ttl_s = ns / 1000000000LL;
			break;
		case 'a':
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr, "lab: --accel on|off\n");
				return -1;
			}
			a->accel = optarg;
			break;
		case 'U':
			if (strcmp(optarg, "drop") && strcmp(optarg, "pass")) {
				fprintf(stderr, "lab: --strict-udp drop|pass\n");
				return -1;
			}
			a->strict_udp = !strcmp(optarg, "drop");
			break;
		case 'W':
			a->no_wait = true;
			break;
		case 0x201:
			if (strncmp(optarg, "http://", 7) || strlen(optarg) > 400 ||
			    strpbrk(optarg, " \t\r\n")) {
				fprintf(stderr,
					"lab: --tracing-endpoint %s: want http://HOST:PORT/PATH\n",
					optarg);
				return -1;
			}
			a->tr_endpoint = optarg;
			break;
		case 0x202:
			if (strcmp(optarg, "zipkin") && strcmp(optarg, "otlp-http") &&
			    strcmp(optarg, "otlp-http-json")) {
				fprintf(stderr,
					"lab: --tracing-protocol %s: want zipkin, otlp-http or "
					"otlp-http-json\n",
					optarg);
				return -1;
			}
			a->tr_proto = optarg;
			break;
		case 0x203: {
			char *end;
			double pct = strtod(optarg, &end);

			if (*end || end == optarg || pct < 0 || pct > 100 || strlen(optarg) > 20) {
				fprintf(stderr,
					"lab: --tracing-sampling %s: want a percentage, 0-100\n",
					optarg);
				return -1;
			}
			a->tr_sampling = optarg;
			break;
		}
		case 'S':
			a->syn_rate = atoi(optarg);
			if (a->syn_rate < 0 || a->syn_rate > 1000000) {
				fprintf(stderr,
					"lab: --ingress-syn-rate N: SYNs per second, 0-1000000\n");
				return -1;
			}
			break;
		case 'P':
			a->prometheus = true;
			break;
		case 'K':
			a->kube_api = true;
			break;
		case 'B':
			a->background = true;
			break;
		default:
			return -1;
		}
	}
	a->argi = optind;
	/* it becomes part of namespace, cgroup and file names: check it before any is made */
	if (!names_dns_label(a->name) || strlen(a->name) > 12) {
		fprintf(
		    stderr,
		    "lab: --name %s: want a DNS-1123 label (lower case letters, digits and '-') "
		    "of at most 12 characters\n",
		    a->name);
		return -1;
	}
	return 0;
}

/* POD, or deploy/NAME (its first running replica). */
static struct lab_pod *pod_arg(struct lab *l, const char *ns, const char *arg)
{
	struct lab_pod *p;

	if (!strncmp(arg, "deploy/", 7) || !strncmp(arg, "deployment/", 11)) {
		const char *d = strchr(arg, '/') + 1;
		char name[200];

		for (int r = 0; r < 1000; r++) {
			snprintf(name, sizeof(name), "%s-%d", d, r);
			p = pod_find(l, ns, name);
			if (p)
				return p;
		}
		return NULL;
	}
	if (!strncmp(arg, "pod/", 4))
		arg += 4;
	return pod_find(l, ns, arg);
}

/* ---------- port-forward ---------- */

/* "[ADDR:]LOCAL:REMOTE" or "PORT" (both sides). */
static int pf_spec(const char *spec, char *addr, size_t alen, int *local, int *remote)
{
	const char *last = strrchr(spec, ':'), *prev = NULL;
	char *end;

	snprintf(addr, alen, "127.0.0.1");
	if (!last) {
		*local = *remote = (int)strtol(spec, &end, 10);
		return *end || *local <= 0 || *local > 65535 ? -1 : 0;
	}
	*remote = (int)strtol(last + 1, &end, 10);
	if (*end || *remote <= 0 || *remote > 65535)
		return -1;
	for (const char *p = spec; p < last; p++)
		if (*p == ':')
			prev = p;
	if (prev) {
		if ((size_t)(prev - spec) >= alen || prev == spec)
			return -1;
		snprintf(addr, alen, "%.*s", (int)(prev - spec), spec);
	}
	*local = (int)strtol(prev ? prev + 1 : spec, &end, 10);
	if (inet_pton(AF_INET, addr, &(struct in_addr){0}) != 1)
		return -1; /* (IPv4 listeners only) */
	return end != last || *local <= 0 || *local > 65535 ? -1 : 0;
}

/* The first running pod of the lab that Service s selects. */
static struct lab_pod *svc_pod(struct lab *l, const struct mesh_config *c, const struct svc_obj *s)
{
	for (int i = 0; s->has_selector && s->selector.n && i < l->npods; i++) {
		struct lab_pod *p = &l->pods[i];
		const struct workload_obj *w = pod_object(c, p->ns, p->name);

		if (w && !strcmp(p->ns, s->ns) && kv_match(&s->selector, &w->labels) &&
		    pid_alive(p->pid))
			return p;
	}
	return NULL;
}

/*
 * `lab port-forward [-n NS] svc/NAME|deploy/NAME|POD [ADDR:]LOCAL:REMOTE`, as kubectl: a pod
 * (deploy/: its first replica; svc/: the first pod it selects, REMOTE being a Service port,
 * forwarded to that port's targetPort) is reached at 127.0.0.1:PORT inside its own network
 * namespace. svc/istio-ingressgateway in istio-system is the nodes' agents: the first node's
 * address there, at the port the Gateway's server listens on.
 */
static int lab_port_forward(struct lab *l, const char *ns, const char *target, const char *spec,
			    bool bg)
{
	char addr[64], nsname[400], nspath[500], ip[32] = "127.0.0.1", pidf[700], what[300];
	struct portfwd pf = {0};
	struct mesh_config *c = NULL;
	struct lab_pod *p = NULL;
	int local, remote, dport;

	if (pf_spec(spec, addr, sizeof(addr), &local, &remote)) {
		fprintf(stderr, "lab port-forward: %s: want [ADDR:]LOCAL:REMOTE\n", spec);
		return 2;
	}
	dport = remote;
	snprintf(what, sizeof(what), "%s", target);
	if (!strncmp(target, "svc/", 4) || !strncmp(target, "service/", 8)) {
		const char *name = strchr(target, '/') + 1;
		const struct svc_obj *s = NULL;
		const struct svc_port *sp = NULL;

		if (load_config(l, &c, true))
			return 1;
		for (int i = 0; i < c->nservices && !s; i++)
			if (!strcmp(c->services[i].ns, ns) && !strcmp(c->services[i].name, name))
				s = &c->services[i];
		for (int i = 0; s && i < s->nports && !sp; i++)
			if (s->ports[i].port == remote)
				sp = &s->ports[i];
		if (!s || !sp) {
			fprintf(stderr,
				s ? "lab port-forward: Service %s/%s has no port %d\n"
				  : "lab port-forward: no Service %s/%s%.0d\n",
				ns, name, s ? remote : 0);
			config_free(c);
			return 1;
		}
		dport = sp->target_port ? sp->target_port : sp->port;
		char derived[320] = "";
		bool gwapi = false;
		size_t nl = strlen(name);

		if (nl > 6 && !strcmp(name + nl - 6, "-istio")) /* a Gateway API Gateway's */
			snprintf(derived, sizeof(derived), "%.*s%s", (int)(nl - 6), name,
				 GWAPI_SUFFIX);
		for (int i = 0; derived[0] && i < c->ngws && !gwapi; i++)
			gwapi = !strcmp(c->gws[i].ns, ns) && !strcmp(c->gws[i].name, derived);
		if ((!strcmp(ns, GW_NS) && !strcmp(name, GW_NAME)) || gwapi) {
			if (!l->nnodes) {
				fprintf(stderr, "lab port-forward: the lab has no node\n");
				config_free(c);
				return 1;
			}
			netns_node(l, l->nodes[0].name, nsname, sizeof(nsname));
			snprintf(ip, sizeof(ip), "10.244.255.%d", l->nodes[0].index);
		} else {
			p = svc_pod(l, c, s);
			if (p && sp->target_port_name) { /* a named targetPort: the pod's port */
				const struct workload_obj *w = pod_object(c, p->ns, p->name);

				dport = 0;
				for (int i = 0; w && i < w->nports && !dport; i++)
					if (w->ports[i].name &&
					    !strcmp(w->ports[i].name, sp->target_port_name))
						dport = w->ports[i].port;
			}
			if (!p || !dport) {
				fprintf(stderr,
					"lab port-forward: no running pod of Service %s/%s%s\n", ns,
					name, p ? " serves its targetPort" : "");
				config_free(c);
				return 1;
			}
		}
		config_free(c);
	} else {
		p = pod_arg(l, ns, target);
		if (!p) {
			fprintf(stderr, "lab port-forward: no pod %s in namespace %s\n", target,
				ns);
			return 1;
		}
	}
	if (p)
		netns_pod(l, p, nsname, sizeof(nsname));
	snprintf(nspath, sizeof(nspath), "/run/netns/%s", nsname);
	pf = (struct portfwd){.listen_addr = addr,
			      .local_port = local,
			      .netns = nspath,
			      .dst_ip = ip,
			      .dst_port = dport,
			      .remote_port = remote};
	if (bg) {
		char dir[600];

		snprintf(dir, sizeof(dir), "%s/portfwd", l->dir);
		mkdir(dir, 0755);
		snprintf(pidf, sizeof(pidf), "%s/%s-%d.pid", dir, addr, local);
		pf.pidfile = pidf;
	}
	return portfwd_run(&pf) ? 1 : 0;
}

/* lab down: the background port-forwards go first. */
static void port_forwards_stop(const struct lab *l)
{
	char dir[600], path[900];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/portfwd", l->dir);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		FILE *f;
		int pid = 0;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "r");
		if (f && fscanf(f, "%d", &pid) == 1 && pid > 1) {
			char cl[300], cmd[4096] = "";
			FILE *c;
			size_t n = 0;

			/* the relay itself, not whatever has its pid now */
			snprintf(cl, sizeof(cl), "/proc/%d/cmdline", pid);
			c = fopen(cl, "r");
			if (c) {
				n = fread(cmd, 1, sizeof(cmd) - 1, c);
				fclose(c);
			}
			for (size_t i = 0; i < n; i++)
				cmd[i] = cmd[i] ? cmd[i] : ' ';
			cmd[n] = 0;
			if (strstr(cmd, " lab port-forward ") && strstr(cmd, l->name)) {
				kill(pid, SIGTERM);
				for (int i = 0; i < 100 && pid_alive(pid); i++)
					usleep(10000);
			}
		}
		if (f)
			fclose(f);
		unlink(path);
	}
	if (d)
		closedir(d);
}

static int lab_open(struct lab *l, const struct lab_args *a)
{
	memset(l, 0, sizeof(*l));
	l->bpffs = a->bpffs;
	lab_paths(l, a->name);
	if (state_load(l)) {
		fprintf(stderr, "lab %s is not up (no %s/lab.state)\n", a->name, l->dir);
		return -1;
	}
	return 0;
}

static int lab_down(struct lab *l)
{
	char an[256], fab[256];
	int rc = 0;

	supervisor_stop(l); /* first: nothing may start an agent again */
	port_forwards_stop(l);
	for (int i = 0; i < l->npods; i++)
		pod_destroy(l, &l->pods[i]);
	for (int i = 0; i < l->nnodes; i++) {
		char ns[256], cg[400], pin[600];

		agent_name(l, l->nodes[i].name, an, sizeof(an));
		dp_pin_dir(pin, sizeof(pin), l->bpffs, an);
		if (pins_uninstall_node(an, pin))
			rc = -1;
		else
			printf("node %s uninstalled\n", an);
		netns_node(l, l->nodes[i].name, ns, sizeof(ns));
		RUN_QUIET("ip", "netns", "del", ns);
		snprintf(cg, sizeof(cg), "%s/%s", l->cg_root, l->nodes[i].name);
		rmdir(cg);
	}
	snprintf(fab, sizeof(fab), "bm-%s-fabric", l->name);
	RUN_QUIET("ip", "netns", "del", fab);
	rmdir(l->cg_root);
	rm_tree(l->dir);
	rmdir(LAB_ROOT);
	rmdir("/run/bpfmesh");
	return rc;
}

static size_t kube_body(char *data, size_t sz, size_t nm, void *arg)
{
	struct buf *b = arg;

	bprintf(b, "%.*s", (int)(sz * nm), data);
	return sz * nm;
}

/* --kube-api: the API server's resourceVersion once it has read the config directory as it is
 * now (it rescans on request), or 0 when it does not answer within 10 s. */
static uint64_t kube_rescan(struct lab *l)
{
	uint64_t deadline = mono_ms() + 10000, rv = 0;
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_test/rescan", l->kube_port);
	while (!rv && mono_ms() < deadline) {
		CURL *h = curl_easy_init();
		struct buf b = {0};
		struct json_object *o, *v;
		long code = 0;

		if (!h)
			return 0;
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, kube_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
		if (curl_easy_perform(h) == CURLE_OK &&
		    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200 &&
		    b.p && (o = json_tokener_parse(b.p))) {
			if (json_object_object_get_ex(o, "resourceVersion", &v))
				rv = strtoull(json_object_get_string(v), NULL, 10);
			json_object_put(o);
		}
		curl_easy_cleanup(h);
		free(b.p);
		if (!rv)
			usleep(100 * 1000); /* starting, or restarted by the supervisor */
	}
	return rv;
}

/* Wait until every agent has read the config directory as it is now (its stamp): the change
 * is then in force on every node. With --kube-api, the stamp is a resourceVersion of the API
 * server that every agent's watch must have reached. */
static int wait_in_force(struct lab *l, uint64_t stamp, uint64_t t0)
{
	if (l->kube_port && !(stamp = kube_rescan(l))) {
		fprintf(stderr, "lab: the API server did not answer; see %s/kube-api.log\n", l->dir);
		return -1;
	}
	uint64_t deadline = mono_ms() + 10000;
	int rejected = 0;

	for (int i = 0; i < l->nnodes; i++) {
		char an[256], pin[600];
		bool done = false;

		agent_name(l, l->nodes[i].name, an, sizeof(an));
		dp_pin_dir(pin, sizeof(pin), l->bpffs, an);
		while (!done && mono_ms() < deadline) {
			struct bm_mapfds f;
			struct bm_meta meta = {};
			__u32 zero = 0;

			if (dp_open_pinned(pin, &f) == 0) {
				bpf_map_lookup_elem(f.meta, &zero, &meta);
				dp_close_fds(&f);
			}
			done = l->kube_port ? meta.config_stamp >= stamp
					    : meta.config_stamp == stamp;
			if (done && !meta.last_apply_ok) {
				fprintf(stderr,
					"lab: node %s rejected the config; see %s/agent-%s.log\n",
					l->nodes[i].name, l->dir, l->nodes[i].name);
				rejected++;
			}
			if (!done)
				usleep(5000);
		}
		if (!done) {
			fprintf(stderr, "lab: node %s did not read the change within 10 s\n",
				l->nodes[i].name);
			return -1;
		}
	}
	printf("in force on %d node(s) in %llu ms\n", l->nnodes,
	       (unsigned long long)(mono_ms() - t0));
	return rejected ? -1 : 0;
}

/* One GET to the lab's Prometheus; its answer (status line, headers, body) in resp. */
static bool prom_get(const struct lab *l, const char *path, char *resp, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(l->prom_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = 1};
	char req[300];
	size_t got = 0;
	ssize_t n = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	resp[0] = 0;
	if (fd < 0)
		return false;
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write(fd, req, strlen(req)) == (ssize_t)strlen(req))
		while (got + 1 < len && (n = read(fd, resp + got, len - 1 - got)) > 0)
			got += n;
	resp[got] = 0;
	close(fd);
	return !strncmp(resp, "HTTP/1.0 200", 12);
}

/* Prometheus ready and holding a sample of every agent (its target discovery waits up to 5 s
 * before the first scrape): a pipeline started right after lab up has data. 30 s at most. */
static int prom_wait_ready(const struct lab *l)
{
	uint64_t deadline = mono_ms() + 30000;
	char resp[4096], want[64];

	/* count(up{job="bpfmesh-agents"} == 1) */
	snprintf(want, sizeof(want), "\"%d\"]", l->nnodes);
	while (mono_ms() < deadline) {
		if (prom_get(l,
			     "/api/v1/query?query=count(up%7Bjob%3D%22bpfmesh-agents%22%7D%3D%3D1)",
			     resp, sizeof(resp)) &&
		    strstr(resp, want))
			return 0;
		usleep(100 * 1000);
	}
	fprintf(
	    stderr,
	    "lab %s: prometheus did not scrape every agent within 30 s; see %s/prometheus.log\n",
	    l->name, l->dir);
	return -1;
}

static int lab_up(struct lab_args *a)
{
	struct lab l;
	char path[700];
	int applied;

	memset(&l, 0, sizeof(l));
	l.bpffs = a->bpffs;
	l.accel_off = a->accel && !strcmp(a->accel, "off");
	lab_paths(&l, a->name);
	snprintf(path, sizeof(path), "%s/lab.state", l.dir);
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "lab %s is already up; use `bpfmesh lab apply` or `lab down`\n",
			a->name);
		return 1;
	}
	if (a->nfiles == 0) {
		fprintf(stderr, "usage: bpfmesh lab up -f FILE... [--name LAB] [--mtls on|off] "
				"[--cert-ttl DURATION] [--accel on|off] [--strict-udp drop|pass] "
				"[--prometheus] [--kube-api]\n");
		return 2;
	}
	l.mtls = a->mtls;
	l.cert_ttl_s = a->cert_ttl_s;
	l.strict_udp = a->strict_udp;
	l.syn_rate = a->syn_rate;
	if (a->tr_endpoint) {
		snprintf(l.tr_endpoint, sizeof(l.tr_endpoint), "%s", a->tr_endpoint);
		snprintf(l.tr_proto, sizeof(l.tr_proto), "%s",
			 a->tr_proto ? a->tr_proto : "zipkin");
	}
	snprintf(l.tr_sampling, sizeof(l.tr_sampling), "%s",
		 a->tr_sampling ? a->tr_sampling : "100");
	mkdir("/run/bpfmesh", 0755);
	mkdir(LAB_ROOT, 0755);
	if ((mkdir(l.dir, 0755) && errno != EEXIST) || (mkdir(l.config, 0755) && errno != EEXIST))
		goto fail;
	if (a->prometheus && ((l.prom_port = free_port()) <= 0 || prom_config(&l))) {
		fprintf(stderr, "lab: cannot set up Prometheus in %s/prometheus\n", l.dir);
		goto fail;
	}
	if (a->kube_api) {
		char script[700];

		if (kube_script(script, sizeof(script))) {
			fprintf(stderr, "lab: --kube-api: %s: %s (set BPFMESH_KUBE_APISERVER)\n",
				script, strerror(errno));
			goto fail;
		}
		if ((l.kube_port = free_port()) <= 0 || kube_config(&l)) {
			fprintf(stderr, "lab: cannot write %s/kubeconfig\n", l.dir);
			goto fail;
		}
	}
	if ((l.redis_port = free_port()) <= 0)
		goto fail;
	if (fabric_up(&l) || state_save(&l))
		goto fail;
	if (l.mtls) { /* the lab's own mesh CA, like istiod's */
		char err[300];

		snprintf(path, sizeof(path), "%s/ca", l.dir);
		if (ca_init(path, "cluster.local", err, sizeof(err))) {
			fprintf(stderr, "lab: %s\n", err);
			goto fail;
		}
	}
	applied = apply_files(&l, a->files, a->nfiles);
	if (applied < 0 || reconcile(&l))
		goto fail;
	if (l.prom_port && prom_wait_ready(&l))
		goto fail;
	printf("lab %s is up: %d node(s), %d pod(s)\n", l.name, l.nnodes, l.npods);
	if (l.redis_on)
		printf("ratelimit redis 127.0.0.1:%d\n", l.redis_port);
	if (l.prom_port)
		printf("prometheus http://127.0.0.1:%d\n", l.prom_port);
	if (applied)
		fprintf(stderr,
			"lab %s: some objects were rejected (above); it runs without them\n",
			l.name);
	free(l.pods);
	return applied ? 1 : 0;
fail:
	if (getenv("BPFMESH_LAB_KEEP")) {
		fprintf(stderr, "lab %s: up failed; kept for debugging (BPFMESH_LAB_KEEP)\n",
			l.name);
	} else {
		fprintf(stderr, "lab %s: up failed; tearing down what was made\n", l.name);
		lab_down(&l);
	}
	free(l.pods);
	return 1;
}

/* lab status: one line per node and per pod; -o json|yaml the same as a tree, -o wide adds
 * each pod's network namespace and server pid. */
static int lab_status(struct lab *l, int out)
{
	struct json_object *st = json_object_new_object(), *nodes = json_object_new_array(),
			   *pods = json_object_new_array();
	char an[256], v4[64], v6[64], url[128], cg[700], ns[400];

	jset_str(st, "name", l->name);
	jset_str(st, "config", l->config);
	jset_bool(st, "accel", !l->accel_off);
	jset_bool(st, "mtls", l->mtls);
	if (out == OUT_TEXT || out == OUT_WIDE)
		printf("lab %s (config %s) accel %s\n", l->name, l->config,
		       l->accel_off ? "off" : "on");
	if (l->prom_port) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", l->prom_port);
		jset_str(st, "prometheus", url);
		if (out == OUT_TEXT || out == OUT_WIDE)
			printf("prometheus %s\n", url);
	}
	if (l->tr_endpoint[0]) {
		jset_str(st, "tracingEndpoint", l->tr_endpoint);
		if (out == OUT_TEXT || out == OUT_WIDE)
			printf("tracing %s %s sampling %s%%\n", l->tr_endpoint, l->tr_proto,
			       l->tr_sampling);
	}
	if (l->redis_on) {
		snprintf(url, sizeof(url), "127.0.0.1:%d", l->redis_port);
		jset_str(st, "ratelimitRedis", url);
		if (out == OUT_TEXT || out == OUT_WIDE)
			printf("ratelimit redis %s\n", url);
	}
	if (l->kube_port) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", l->kube_port);
		jset_str(st, "kubeApi", url);
		snprintf(cg, sizeof(cg), "%s/kubeconfig", l->dir);
		jset_str(st, "kubeconfig", cg);
		if (out == OUT_TEXT || out == OUT_WIDE)
			printf("kube-api %s (kubeconfig %s)\n", url, cg);
	}
	for (int i = 0; i < l->nnodes; i++) {
		struct lab_node *n = &l->nodes[i];
		struct json_object *o = json_object_new_object();
		bool ready = agent_ready(l, n);

		agent_name(l, n->name, an, sizeof(an));
		snprintf(cg, sizeof(cg), "%s/%s", l->cg_root, n->name);
		jset_str(o, "name", n->name);
		jset_str(o, "agent", an);
		jset_int(o, "agentPid", agent_pid(an));
		jset_bool(o, "ready", ready);
		jset_str(o, "cgroup", cg);
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", n->metrics_port);
		jset_str(o, "metrics", url);
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz/ready", n->health_port);
		jset_str(o, "health", url);
		json_object_array_add(nodes, o);
		if (out == OUT_TEXT || out == OUT_WIDE)
			printf("node %s agent %s pid %d %s cgroup %s metrics "
			       "http://127.0.0.1:%d/metrics health "
			       "http://127.0.0.1:%d/healthz/ready\n",
			       n->name, an, agent_pid(an), ready ? "ready" : "NOT-READY", cg,
			       n->metrics_port, n->health_port);
	}
	for (int i = 0; i < l->npods; i++) {
		struct lab_pod *p = &l->pods[i];
		struct json_object *o = json_object_new_object();
		bool running = pid_alive(p->pid);

		pod_addrs(l, p, v4, v6);
		netns_pod(l, p, ns, sizeof(ns));
		jset_str(o, "namespace", p->ns);
		jset_str(o, "name", p->name);
		jset_str(o, "node", p->node);
		jset_str(o, "ip", v4);
		jset_str(o, "ip6", v6);
		jset_bool(o, "running", running);
		jset_str(o, "netns", ns);
		jset_int(o, "pid", running ? p->pid : 0);
		json_object_array_add(pods, o);
		if (out == OUT_TEXT || out == OUT_WIDE)
			printf("pod %s/%s node %s ip %s ip6 %s %s", p->ns, p->name, p->node, v4, v6,
			       running ? "running" : "stopped");
		if (out == OUT_WIDE)
			printf(" netns %s pid %d", ns, running ? p->pid : 0);
		if (out == OUT_TEXT || out == OUT_WIDE)
			printf("\n");
	}
	{ /* each node's agent serves the Gateways on its address (reached with port-forward) */
		struct json_object *ing = json_object_new_array();
		struct mesh_config *c = NULL;

		if (!load_config(l, &c, true)) {
			for (int g = 0; g < c->ngws; g++) {
				struct kv lv[] = {{"istio", "ingressgateway"},
						  {"app", "istio-ingressgateway"}};
				const struct kvlist dl = {lv, 2};
				const struct gw_obj *gw = &c->gws[g];

				if (!kv_match(&gw->selector, &dl))
					continue;
				for (int i = 0; i < gw->nservers; i++) {
					const struct gw_server *sv = &gw->servers[i];
					bool served, tls;
					enum rs_proto rp =
					    rs_gw_proto(sv->protocol, sv->tls_mode,
							sv->credential_name != NULL, &served, &tls);

					if (!served)
						continue;
					for (int k = 0; k < l->nnodes; k++) {
						snprintf(url, sizeof(url), "%s://10.244.255.%d:%u",
							 rp == RS_TLS	? "tls"
							 : rp == RS_TCP ? "tcp"
							 : tls		? "https"
									: "http",
							 l->nodes[k].index, sv->port);
						json_object_array_add(ing,
								      json_object_new_string(url));
						if (out == OUT_TEXT || out == OUT_WIDE)
							printf("ingress %s gateway %s/%.*s%s node "
							       "%s\n",
							       url, gw->ns,
							       (int)(strlen(gw->name) -
								     (gwapi_derived(gw->name)
									  ? strlen(GWAPI_SUFFIX)
									  : 0)),
							       gw->name,
							       gwapi_derived(gw->name)
								   ? " (Gateway API)"
								   : "",
							       l->nodes[k].name);
					}
				}
			}
			config_free(c);
		}
		json_object_object_add(st, "ingress", ing);
	}
	json_object_object_add(st, "nodes", nodes);
	json_object_object_add(st, "pods", pods);
	if (out == OUT_JSON || out == OUT_YAML)
		out_write(stdout, st, out);
	json_object_put(st);
	return 0;
}

static int lab_exec(struct lab *l, struct lab_pod *p, int argc, char **argv)
{
	char ns[400];
	int status;
	pid_t pid;

	netns_pod(l, p, ns, sizeof(ns));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char **av = calloc(argc + 5, sizeof(char *)); /* + NULL */
		char cg[800], pidbuf[32];
		int fd;

		snprintf(cg, sizeof(cg), "%s/%s/%s_%s/cgroup.procs", l->cg_root, p->node, p->ns,
			 p->name);
		fd = open(cg, O_WRONLY);
		snprintf(pidbuf, sizeof(pidbuf), "%d\n", getpid());
		if (fd < 0 || write(fd, pidbuf, strlen(pidbuf)) < 0) {
			fprintf(stderr, "lab exec: join %s: %s\n", cg, strerror(errno));
			_exit(126);
		}
		close(fd);
		/* `ip netns exec` also bind-mounts the pod's /etc/hosts and resolv.conf */
		av[0] = "ip";
		av[1] = "netns";
		av[2] = "exec";
		av[3] = ns;
		for (int i = 0; i < argc; i++)
			av[4 + i] = argv[i];
		execvp("ip", av);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int lab_start_stop(struct lab *l, struct lab_pod *p, bool start)
{
	struct mesh_config *c;
	int rc = 0;

	if (!start) {
		pod_kill(p);
		state_save(l);
		printf("pod %s/%s stopped\n", p->ns, p->name);
		return 0;
	}
	if (pid_alive(p->pid)) {
		printf("pod %s/%s already running\n", p->ns, p->name);
		return 0;
	}
	if (load_config(l, &c, true))
		return 1;
	rc = pod_server_start(l, p, c);
	for (int i = 0; !rc && i < 100 && !pod_answers(l, p, c); i++)
		usleep(20000);
	config_free(c);
	state_save(l);
	if (!rc)
		printf("pod %s/%s started\n", p->ns, p->name);
	return rc ? 1 : 0;
}

/* The pid of the agent that accepts for node an (run_dir/serving), or 0. */
static pid_t serving_pid(const char *an)
{
	char path[600];
	FILE *f;
	int pid = 0;

	if (agent_run_dir(path, sizeof(path) - 16, an))
		return 0;
	strcat(path, "/serving");
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

/* `lab agent stop|start|restart|upgrade NODE`: what `systemctl` does to a unit, for the lab's
 * agents (stop: the supervisor lets it down until start; upgrade: a new agent takes the running
 * one's listeners, which drains, as the DaemonSet's rolling update does). */
static int lab_agent(struct lab *l, const char *verb, const char *node)
{
	struct lab_node *n = node ? node_find(l, node) : NULL;
	char path[700], an[256];
	int fd;

	if (!n) {
		fprintf(stderr, "lab %s: no node %s\n", l->name, node ? node : "(none)");
		return 1;
	}
	agent_name(l, n->name, an, sizeof(an));
	snprintf(path, sizeof(path), "%s/hold-%s", l->dir, n->name);
	if (!strcmp(verb, "stop") || !strcmp(verb, "restart")) {
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		for (int i = 0; i < 200 && agent_pid(an); i++) {
			if (i == 0 || i == 100) /* not the supervisor's: stop it ourselves */
				kill(agent_pid(an), SIGTERM);
			usleep(25 * 1000);
		}
		if (agent_pid(an)) {
			fprintf(stderr, "lab %s: the agent of node %s does not stop\n", l->name,
				n->name);
			return 1;
		}
		if (!strcmp(verb, "stop")) {
			printf("agent of node %s stopped\n", n->name);
			return 0;
		}
	}
	if (!strcmp(verb, "upgrade")) {
		pid_t was = agent_pid(an), now = 0;

		if (!was) {
			fprintf(stderr, "lab %s: the agent of node %s does not run\n", l->name,
				n->name);
			return 1;
		}
		snprintf(path, sizeof(path), "%s/upgrade-%s", l->dir, n->name);
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 || supervisor_ensure(l)) {
			if (fd >= 0)
				close(fd);
			return 1;
		}
		close(fd);
		/* the new agent holds the lock at once, and accepts once ready (serving) */
		for (int i = 0; i < 1600; i++, usleep(25 * 1000)) {
			now = agent_pid(an);
			if (now && now != was && serving_pid(an) == now && agent_ready(l, n))
				break;
		}
		if (!now || now == was || serving_pid(an) != now || !agent_ready(l, n)) {
			unlink(path);
			fprintf(stderr,
				"lab %s: the new agent of node %s did not take over in 40 s (see "
				"%s/agent-%s.log)\n",
				l->name, n->name, l->dir, n->name);
			return 1;
		}
		printf("agent of node %s upgraded: pid %d serving, pid %d %s\n", n->name, (int)now,
		       (int)was, kill(was, 0) == 0 ? "draining" : "exited");
		return 0;
	}
	if (!strcmp(verb, "start") || !strcmp(verb, "restart")) {
		unlink(path);
		if (supervisor_ensure(l))
			return 1;
		for (int i = 0; i < 400 && !agent_ready(l, n); i++)
			usleep(25 * 1000);
		if (!agent_ready(l, n)) {
			fprintf(stderr, "lab %s: the agent of node %s is not ready after 10 s\n",
				l->name, n->name);
			return 1;
		}
		printf("agent of node %s running\n", n->name);
		return 0;
	}
	fprintf(stderr, "usage: bpfmesh lab agent stop|start|restart|upgrade NODE [--name LAB]\n");
	return 2;
}

static const struct {
	const char *name, *usage;
} lab_subs[] = {
    {"up", "usage: bpfmesh lab up -f FILE... [--name LAB] [--bpffs DIR] [--mtls on|off] "
	   "[--cert-ttl DURATION]\n"
	   "                     [--accel on|off] [--strict-udp drop|pass] [--prometheus]\n"
	   "                     [--kube-api] [--ingress-syn-rate N]\n"
	   "                     [--tracing-endpoint URL [--tracing-protocol zipkin|otlp-http|\n"
	   "                     otlp-http-json] [--tracing-sampling PERCENT (default 100)]]\n"
	   "  nodes, agents and pods on this machine from Kubernetes and Istio YAML: every\n"
	   "  Deployment replica and every Pod becomes a pod (netns + cgroup + echo server);\n"
	   "  --prometheus also runs Prometheus scraping every agent (lab status prints it)\n"
	   "  --kube-api: the lab's objects are served by a test Kubernetes API server\n"
	   "  (tests/kubeapi) and every agent watches it (--kubeconfig) instead of reading\n"
	   "  the config directory\n"},
    {"apply", "usage: bpfmesh lab apply -f FILE... [--name LAB] [--no-wait]\n"
	      "  like kubectl apply -f: valid objects are applied, invalid ones reported (exit "
	      "1);\n  waits until every agent has the change in force\n"},
    {"delete", "usage: bpfmesh lab delete -f FILE... [--name LAB] [--no-wait]\n"
	       "  like kubectl delete -f: the objects of the files leave the lab; waits "
	       "until\n  every agent has the change in force\n"},
    {"exec", "usage: bpfmesh lab exec [--name LAB] [-n NS] POD|deploy/NAME -- CMD...\n"
	     "  runs CMD in the pod (its network namespace and cgroup)\n"},
    {"stop", "usage: bpfmesh lab stop [--name LAB] [-n NS] POD|deploy/NAME\n"},
    {"start", "usage: bpfmesh lab start [--name LAB] [-n NS] POD|deploy/NAME\n"},
    {"status", "usage: bpfmesh lab status [--name LAB] [-o json|yaml|wide]\n"},
    {"port-forward",
     "usage: bpfmesh lab port-forward [--name LAB] [-n NS] svc/NAME|deploy/NAME|POD\n"
     "                     [ADDR:]LOCAL:REMOTE [--background]\n"
     "  like kubectl port-forward: ADDR:LOCAL on this host (127.0.0.1 unless given) to\n"
     "  port REMOTE of the pod (svc/: a pod it selects, REMOTE a Service port; svc/\n"
     "  istio-ingressgateway -n istio-system: the nodes' ingress gateway); until Ctrl-C,\n"
     "  or --background: returns once listening, `lab down` stops it\n"},
    {"agent", "usage: bpfmesh lab agent stop|start|restart|upgrade NODE [--name LAB]\n"},
    {"down", "usage: bpfmesh lab down [--name LAB]\n"
	     "  removes every node, pod, pin, cgroup and process of the lab\n"},
};

static const char *lab_subs_usage(const char *name)
{
	for (size_t i = 0; i < sizeof(lab_subs) / sizeof(lab_subs[0]); i++)
		if (!strcmp(lab_subs[i].name, name))
			return lab_subs[i].usage;
	return "";
}

static void lab_usage_to(FILE *f)
{
	for (size_t i = 0; i < sizeof(lab_subs) / sizeof(lab_subs[0]); i++)
		fprintf(f, "%s", lab_subs[i].usage);
}

static void lab_usage(void)
{
	lab_usage_to(stderr);
}

int cmd_lab(int argc, char **argv)
{
	struct lab_args a;
	struct lab l;
	const char *sub;
	int rc = 1, dd = argc;

	if (argc < 2) {
		lab_usage();
		return 2;
	}
	sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
		lab_usage_to(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(lab_subs) / sizeof(lab_subs[0]); i++)
		if (!strcmp(sub, lab_subs[i].name) && args_help(argc - 1, argv + 1)) {
			fputs(lab_subs[i].usage, stdout);
			return 0;
		}
	/* `exec POD -- CMD...`: what follows "--" is the command, never our options */
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			dd = i;
			break;
		}
	if (parse_args(dd - 1, argv + 1, &a)) {
		lab_usage();
		free(a.files);
		return 2;
	}
	/* positionals (after getopt's permutation) are argv[1 + a.argi .. dd) */
	char **pos = argv + 1 + a.argi;
	int npos = dd - 1 - a.argi;

	if (!strcmp(sub, "up")) {
		rc = lab_up(&a);
		free(a.files);
		return rc;
	}
	if (!strcmp(sub, "supervise")) { /* internal: started by lab up */
		rc = lab_supervise(a.name, a.bpffs ? a.bpffs : "/sys/fs/bpf");
		free(a.files);
		return rc;
	}
	if (lab_open(&l, &a)) {
		free(a.files);
		return 1;
	}
	if (!strcmp(sub, "down")) {
		rc = lab_down(&l) ? 1 : 0;
		if (!rc)
			printf("lab %s is down\n", l.name);
	} else if (!strcmp(sub, "status")) {
		rc = lab_status(&l, a.out);
	} else if (!strcmp(sub, "port-forward")) {
		rc = npos == 2 ? lab_port_forward(&l, a.ns, pos[0], pos[1], a.background) : 2;
		if (rc == 2)
			fputs(lab_subs_usage("port-forward"), stderr);
	} else if (!strcmp(sub, "apply")) {
		uint64_t t0 = mono_ms(), before = config_dir_stamp(l.config), after;

		int applied = a.nfiles ? apply_files(&l, a.files, a.nfiles) : -1;

		rc = applied >= 0 && !reconcile(&l) ? applied : 1;
		/* in force on every node before returning: what the user applied is what the next
		 * connection gets (also when some objects were rejected: the others are applied) */
		after = config_dir_stamp(l.config);
		if (applied >= 0 && !a.no_wait && after != before && wait_in_force(&l, after, t0))
			rc = 1;
	} else if (!strcmp(sub, "delete")) {
		uint64_t t0 = mono_ms(), before = config_dir_stamp(l.config), after;
		int missing = a.nfiles ? delete_files(&l, a.files, a.nfiles) : -1;

		rc = missing >= 0 && !reconcile(&l) ? (missing ? 1 : 0) : 1;
		after = config_dir_stamp(l.config);
		if (missing >= 0 && !a.no_wait && after != before && wait_in_force(&l, after, t0))
			rc = 1;
	} else if (!strcmp(sub, "agent")) {
		rc = npos == 2 ? lab_agent(&l, pos[0], pos[1]) : lab_agent(&l, "", NULL);
	} else if (!strcmp(sub, "exec") || !strcmp(sub, "stop") || !strcmp(sub, "start")) {
		struct lab_pod *p = npos > 0 ? pod_arg(&l, a.ns, pos[0]) : NULL;

		if (!p) {
			fprintf(stderr, "lab %s: no pod %s in namespace %s\n", l.name,
				npos > 0 ? pos[0] : "(none)", a.ns);
		} else if (!strcmp(sub, "exec")) {
			/* the command: after "--", or the positionals after POD */
			if (dd < argc)
				rc = dd + 1 < argc ? lab_exec(&l, p, argc - dd - 1, argv + dd + 1)
						   : 2;
			else
				rc = npos > 1 ? lab_exec(&l, p, npos - 1, pos + 1) : 2;
		} else {
			rc = lab_start_stop(&l, p, !strcmp(sub, "start"));
		}
	} else {
		lab_usage();
		rc = 2;
	}
	free(l.pods);
	free(a.files);
	return rc;
}
