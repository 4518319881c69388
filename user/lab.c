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
 *    lab adds the Pod objects with their addresses, like a kubelet reporting status.
 * Every command takes --name LAB; state lives in /run/bpfmesh/lab/<LAB>/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include "agent.h"
#include "ca.h"
#include "cli.h"
#include "echo.h"
#include "resolve.h"
#include "validate.h"

#define LAB_ROOT       "/run/bpfmesh/lab"
#define LAB_MAX_NODES  200
#define LAB_MAX_PODS   250 /* per node: .2 to .251 of its /24 */
#define LAB_READY_SECS 30

/* ---------- small helpers ---------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run a shell command quietly; its output goes to stderr only when it fails. */
static int sh(const char *fmt, ...)
{
	char cmd[4096], full[4200];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "out=$( { %s ; } 2>&1 ) || { echo \"$out\" >&2; exit 1; }",
		 cmd);
	rc = system(full);
	if (rc != 0 && getenv("BPFMESH_DEBUG"))
		fprintf(stderr, "lab: command failed: %s\n", cmd);
	return rc == 0 ? 0 : -1;
}

static int write_file(const char *path, const char *data, size_t len)
{
	char tmp[1100];
	int fd;

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

struct lab_pod {
	char ns[64];
	char name[128];
	char node[64];
	int k; /* host part: 10.244.<node>.<k> */
	int pid;
	int alive; /* still desired (reconcile) */
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

static int state_save(const struct lab *l)
{
	struct buf b = {0};
	char path[700];
	int rc;

	bprintf(&b, "lab %s %s %ld %d\n", l->name, l->bpffs, l->cert_ttl_s, l->mtls);
	bprintf(&b, "lab %s %s\n", l->name, l->bpffs);
	bprintf(&b, "accel %s\n", l->accel_off ? "off" : "on");
	for (int i = 0; i < l->nnodes; i++)
		bprintf(&b, "node %s %d %d %d %d\n", l->nodes[i].name, l->nodes[i].index,
			l->nodes[i].agent_pid, l->nodes[i].metrics_port, l->nodes[i].health_port);
	for (int i = 0; i < l->npods; i++)
		bprintf(&b, "pod %s %s %s %d %d\n", l->pods[i].ns, l->pods[i].name, l->pods[i].node,
			l->pods[i].k, l->pods[i].pid);
	snprintf(path, sizeof(path), "%s/lab.state", l->dir);
	rc = write_file(path, b.p, b.n);
	free(b.p);
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
		} else if (l->nnodes < LAB_MAX_NODES &&
			   sscanf(line, "node %63s %d %d %d %d", n->name, &n->index, &n->agent_pid,
				  &n->metrics_port, &n->health_port) == 5) {
			l->nnodes++;
		} else if (sscanf(line, "pod %63s %127s %63s %d %d", p.ns, p.name, p.node, &p.k,
				  &p.pid) == 5) {
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

static int fabric_up(struct lab *l)
{
	char fab[256];

	snprintf(fab, sizeof(fab), "bm-%s-fabric", l->name);
	if (access("/run/netns", F_OK) == 0) {
		char p[300];

		snprintf(p, sizeof(p), "/run/netns/%s", fab);
		if (access(p, F_OK) == 0)
			return 0;
	}
	return sh("ip netns add %s && ip -n %s link set lo up && "
		  "ip -n %s link add br0 type bridge && ip -n %s link set br0 up",
		  fab, fab, fab, fab);
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
	if (sh("ip netns add %s && ip -n %s link set lo up && "
	       "ip netns exec %s sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
	       "net.ipv6.conf.default.accept_dad=0 && "
	       "ip -n %s link add br0 type bridge && ip -n %s link set br0 up && "
	       "ip -n %s addr add 10.244.%d.1/24 dev br0 && "
	       "ip -n %s addr add fd00:244:%x::1/64 dev br0 nodad && "
	       "ip link add n%d netns %s type veth peer name fab0 netns %s && "
	       "ip -n %s link set n%d master br0 up && ip -n %s link set fab0 up && "
	       "ip -n %s addr add 10.244.255.%d/24 dev fab0 && "
	       "ip -n %s addr add fd00:244:ff::%x/64 dev fab0 nodad",
	       ns, ns, ns, ns, ns, ns, n->index, ns, n->index, n->index, fab, ns, fab, n->index, ns,
	       ns, n->index, ns, n->index))
		return -1;
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
			sh("ip -n %s route replace 10.244.%d.0/24 via 10.244.255.%d && "
			   "ip -n %s -6 route replace fd00:244:%x::/64 via fd00:244:ff::%x",
			   ns, l->nodes[j].index, l->nodes[j].index, ns, l->nodes[j].index,
			   l->nodes[j].index);
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

static int agent_start(struct lab *l, struct lab_node *n)
{
	char an[256], cg[400], log[700], self[600], maddr[64], haddr[64], nip[32], ns[300],
	    nsp[320], ca[700], ttl[32];
	pid_t pid;
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (len < 0)
		return -1;
	self[len] = 0;
	agent_name(l, n->name, an, sizeof(an));
	snprintf(cg, sizeof(cg), "%s/%s", l->cg_root, n->name);
	snprintf(log, sizeof(log), "%s/agent-%s.log", l->dir, n->name);
	if (!n->metrics_port)
		n->metrics_port = free_port();
	if (!n->health_port)
		n->health_port = free_port();
	snprintf(maddr, sizeof(maddr), "127.0.0.1:%d", n->metrics_port);
	snprintf(haddr, sizeof(haddr), "127.0.0.1:%d", n->health_port);
	snprintf(nip, sizeof(nip), "10.244.255.%d", n->index);
	netns_node(l, n->name, ns, sizeof(ns));
	snprintf(nsp, sizeof(nsp), "/run/netns/%s", ns);
	snprintf(ca, sizeof(ca), "%s/ca", l->dir);
	snprintf(ttl, sizeof(ttl), "%lds", l->cert_ttl_s > 0 ? l->cert_ttl_s : 86400);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		daemon_stdio(log);
		if (l->mtls)
			execl(self, self, "agent", "--config-dir", l->config, "--cgroup", cg,
			      "--node", an, "--bpffs", l->bpffs, "--metrics-addr", maddr,
			      "--health-addr", haddr, "--node-ip", nip, "--netns", nsp, "--ca-dir",
			      ca, "--cert-ttl", ttl, "--accel", l->accel_off ? "off" : "on",
			      (char *)NULL);
		else
			execl(self, self, "agent", "--config-dir", l->config, "--cgroup", cg,
			      "--node", an, "--bpffs", l->bpffs, "--metrics-addr", maddr,
			      "--health-addr", haddr, "--node-ip", nip, "--netns", nsp, "--accel",
			      l->accel_off ? "off" : "on", (char *)NULL);
		_exit(127);
	}
	n->agent_pid = pid;
	return 0;
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

static int pod_server_start(struct lab *l, struct lab_pod *p, const struct mesh_config *c)
{
	const struct workload_obj *w = pod_object(c, p->ns, p->name);
	char log[800], v4[64], v6[64];
	int ports[64], nports;
	pid_t pid;

	if (!w)
		return -1;
	nports = pod_ports(c, w, ports, 64);
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
		char req[] = "GET / HTTP/1.0\r\n\r\n", resp[64] = "";
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
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
		    write(fd, req, strlen(req)) < 0 || read(fd, resp, sizeof(resp) - 1) <= 0)
			_exit(1);
		_exit(strncmp(resp, "HTTP/1.", 7) == 0 ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int pod_net_up(struct lab *l, struct lab_pod *p)
{
	char ns[400], node_ns[256], cg[800], v4[64], v6[64], hostdir[600];
	const struct lab_node *n = node_find(l, p->node);

	netns_pod(l, p, ns, sizeof(ns));
	netns_node(l, p->node, node_ns, sizeof(node_ns));
	pod_addrs(l, p, v4, v6);
	snprintf(cg, sizeof(cg), "%s/%s/%s_%s", l->cg_root, p->node, p->ns, p->name);
	if (mkdir(cg, 0755) && errno != EEXIST)
		return -1;
	snprintf(hostdir, sizeof(hostdir), "/etc/netns/%s", ns);
	sh("mkdir -p %s && echo 'nameserver 127.0.0.1' > %s/resolv.conf", hostdir, hostdir);
	/* the node-side veth name must fit IFNAMSIZ: derive it from the node and slot */
	return sh("ip netns add %s && ip -n %s link set lo up && "
		  "ip netns exec %s sysctl -qw net.ipv6.conf.all.accept_dad=0 "
		  "net.ipv6.conf.default.accept_dad=0 && "
		  "ip link add p%d netns %s type veth peer name eth0 netns %s && "
		  "ip -n %s link set p%d master br0 up && ip -n %s link set eth0 up && "
		  "ip -n %s addr add %s/24 dev eth0 && ip -n %s addr add %s/64 dev eth0 nodad && "
		  "ip -n %s route add default via 10.244.%d.1 && "
		  "ip -n %s -6 route add default via fd00:244:%x::1",
		  ns, ns, ns, p->k, node_ns, ns, node_ns, p->k, ns, ns, v4, ns, v6, ns, n->index,
		  ns, n->index)
		   ? -1
		   : 0;
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
		waitpid(p->pid, NULL, WNOHANG);
	}
	p->pid = 0;
}

static void pod_destroy(struct lab *l, struct lab_pod *p)
{
	char ns[400], cg[800], path[900];

	pod_kill(p);
	netns_pod(l, p, ns, sizeof(ns));
	sh("ip netns del %s 2>/dev/null; rm -rf /etc/netns/%s; true", ns, ns);
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
	snprintf(path, sizeof(path), "%s/Pod.%s.%s.json", l->config, p->ns, p->name);
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

		if (w->kind == WL_WORKLOADENTRY || (w->kind == WL_POD && owner))
			continue; /* lab-made Pod objects mirror Deployments */
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
	int rc;

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
		"]}]},\n \"status\": {\"hostIP\": \"10.244.255.%d\", \"podIP\": \"%s\", "
		"\"podIPs\": [{\"ip\": \"%s\"}, {\"ip\": \"%s\"}]}}\n",
		node_find(l, p->node) ? node_find(l, p->node)->index : 0, v4, v4, v6);
	snprintf(path, sizeof(path), "%s/Pod.%s.%s.json", l->config, p->ns, p->name);
	rc = write_file(path, b.p, b.n);
	free(b.p);
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
		write_file(path, b.p, b.n);
		free(b.p);
	}
}

static int load_config(const struct lab *l, struct mesh_config **out, bool quiet)
{
	struct mesh_config *c = config_new();
	struct diags d = {0};

	config_load_dir(c, l->config, &d);
	if (!d.nerrors)
		config_validate(c, &d);
	if (d.nerrors || !quiet)
		diags_print(&d, stderr);
	if (d.nerrors) {
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
static int reconcile(struct lab *l)
{
	struct mesh_config *c;
	struct want_pod *want;
	const char *first;
	int nwant, err = 0;

	if (load_config(l, &c, true))
		return -1;
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
		if (node_up(l, n)) {
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
	free(want);
	config_free(c);
	if (err)
		return state_save(l), -1;
	/* reload with the Pod objects, then start servers and agents */
	if (load_config(l, &c, true))
		return -1;
	write_hosts(l, c);
	for (int i = 0; i < l->npods; i++)
		if (!pid_alive(l->pods[i].pid))
			pod_server_start(l, &l->pods[i], c);
	for (int i = 0; i < l->nnodes; i++)
		if (!pid_alive(l->nodes[i].agent_pid))
			agent_start(l, &l->nodes[i]);
	state_save(l);
	/* ready: every agent attached with the config, every pod enrolled and answering */
	uint64_t deadline = mono_ms() + LAB_READY_SECS * 1000;
	bool ready = false;

	while (!ready && mono_ms() < deadline) {
		ready = true;
		for (int i = 0; i < l->nnodes; i++) {
			int pid = l->nodes[i].agent_pid;

			/* reap it if it is our child (lab up); otherwise just probe it */
			if (waitpid(pid, NULL, WNOHANG) != pid && pid_alive(pid))
				continue;
			fprintf(stderr, "lab %s: the agent of node %s exited; its log:\n", l->name,
				l->nodes[i].name);
			sh("tail -n 20 '%s/agent-%s.log' >&2", l->dir, l->nodes[i].name);
			deadline = 0;
		}
		for (int i = 0; i < l->nnodes && ready; i++)
			ready = agent_ready(l, &l->nodes[i]);
		for (int i = 0; i < l->npods && ready; i++)
			ready = pod_answers(l, &l->pods[i], c);
		if (!ready)
			usleep(50 * 1000);
	}
	config_free(c);
	if (!ready) {
		fprintf(stderr, "lab %s: not ready after %d s; see logs in %s\n", l->name,
			LAB_READY_SECS, l->dir);
		return -1;
	}
	return 0;
}

/* ---------- storing objects (like an API server) ---------- */

struct store_ctx {
	const char *dir;
	int n;
};

static int store_object(void *arg, const char *kind, const char *ns, const char *name,
			const char *yaml, size_t len)
{
	struct store_ctx *sc = arg;
	char path[1200];

	snprintf(path, sizeof(path), "%s/%s.%s.%s.yaml", sc->dir, kind, ns, name);
	sc->n++;
	return write_file(path, yaml, len);
}

static int copy_dir(const char *from, const char *to)
{
	return sh("mkdir -p '%s' && cp -a '%s'/. '%s'/ 2>/dev/null; true", to, from, to);
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

/*
 * Apply files: each is checked on its own first (errors name the user's file and line), then
 * stored in a scratch copy of the config and the whole is validated as the cluster would hold
 * it. Only then do the new objects move into the live config. A bad file changes nothing.
 */
static int apply_files(struct lab *l, char **files, int nfiles)
{
	char scratch[700];
	struct diags d = {0};
	struct store_ctx sc;
	struct mesh_config *c, *user = config_new();
	int rc = -1;

	for (int i = 0; i < nfiles; i++)
		config_load_file(user, files[i], &d);
	if (d.nerrors) {
		diags_print(&d, stderr);
		fprintf(stderr, "lab apply: rejected, nothing changed\n");
		diags_free(&d);
		config_free(user);
		return -1;
	}
	diags_free(&d);
	memset(&d, 0, sizeof(d));
	snprintf(scratch, sizeof(scratch), "%s/.apply.%d", l->dir, getpid());
	sh("rm -rf '%s'", scratch);
	if (copy_dir(l->config, scratch)) {
		config_free(user);
		return -1;
	}
	sc.dir = scratch;
	sc.n = 0;
	for (int i = 0; i < nfiles; i++) {
		if (config_split_file(files[i], store_object, &sc, &d)) {
			diags_print(&d, stderr);
			goto out;
		}
	}
	/* validate what the cluster would hold after the apply */
	c = config_new();
	config_load_dir(c, scratch, &d);
	if (!d.nerrors)
		config_validate(c, &d);
	config_free(c);
	rename_scratch(&d, scratch, user, l->config);
	if (d.nerrors) {
		diags_print(&d, stderr);
		fprintf(stderr, "lab apply: rejected, nothing changed\n");
		goto out;
	}
	/* move objects in one by one (each rename is atomic; the agent debounces) */
	rc = sh("cd '%s' && for f in *; do [ -f \"$f\" ] && { cmp -s \"$f\" '%s'/\"$f\" || "
		"mv -f \"$f\" '%s'/\"$f\"; }; done; true",
		scratch, l->config, l->config);
	if (!rc)
		printf("%d object(s) applied\n", sc.n);
out:
	sh("rm -rf '%s'", scratch);
	diags_free(&d);
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
};

static int parse_args(int argc, char **argv, struct lab_args *a)
{
	static const struct option opts[] = {
	    {"name", required_argument, 0, 'N'},      {"bpffs", required_argument, 0, 'b'},
	    {"namespace", required_argument, 0, 'n'}, {"file", required_argument, 0, 'f'},
	    {"mtls", required_argument, 0, 'M'},      {"cert-ttl", required_argument, 0, 'T'},
	    {"accel", required_argument, 0, 'a'},     {0, 0, 0, 0}};
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
	while ((o = getopt_long(argc, argv, "n:f:", opts, NULL)) != -1) {
		switch (o) {
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
		default:
			return -1;
		}
	}
	a->argi = optind;
	if (strchr(a->name, '/') || strlen(a->name) > 12) {
		fprintf(stderr, "lab: --name must be a short name (at most 12 characters)\n");
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

	for (int i = 0; i < l->npods; i++)
		pod_destroy(l, &l->pods[i]);
	for (int i = 0; i < l->nnodes; i++) {
		char *argv[] = {"uninstall", "--node", an, "--bpffs", (char *)l->bpffs, NULL};
		char ns[256], cg[400];

		agent_name(l, l->nodes[i].name, an, sizeof(an));
		if (cmd_uninstall(5, argv))
			rc = -1;
		netns_node(l, l->nodes[i].name, ns, sizeof(ns));
		sh("ip netns del %s 2>/dev/null; true", ns);
		snprintf(cg, sizeof(cg), "%s/%s", l->cg_root, l->nodes[i].name);
		rmdir(cg);
	}
	snprintf(fab, sizeof(fab), "bm-%s-fabric", l->name);
	sh("ip netns del %s 2>/dev/null; true", fab);
	rmdir(l->cg_root);
	sh("rm -rf '%s'", l->dir);
	rmdir(LAB_ROOT);
	rmdir("/run/bpfmesh");
	return rc;
}

static int lab_up(struct lab_args *a)
{
	struct lab l;
	char path[700];

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
				"[--cert-ttl DURATION] [--accel on|off]\n");
		return 2;
	}
	l.mtls = a->mtls;
	l.cert_ttl_s = a->cert_ttl_s;
	if (sh("mkdir -p '%s'", l.config) || fabric_up(&l) || state_save(&l))
		goto fail;
	if (l.mtls) { /* the lab's own mesh CA, like istiod's */
		char err[300];

		snprintf(path, sizeof(path), "%s/ca", l.dir);
		if (ca_init(path, "cluster.local", err, sizeof(err))) {
			fprintf(stderr, "lab: %s\n", err);
			goto fail;
		}
	}
	if (apply_files(&l, a->files, a->nfiles))
		goto fail;
	if (reconcile(&l))
		goto fail;
	printf("lab %s is up: %d node(s), %d pod(s)\n", l.name, l.nnodes, l.npods);
	free(l.pods);
	return 0;
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

static int lab_status(struct lab *l)
{
	char an[256], v4[64], v6[64];

	printf("lab %s (config %s) accel %s\n", l->name, l->config, l->accel_off ? "off" : "on");
	for (int i = 0; i < l->nnodes; i++) {
		struct lab_node *n = &l->nodes[i];

		agent_name(l, n->name, an, sizeof(an));
		printf("node %s agent %s pid %d %s cgroup %s/%s metrics "
		       "http://127.0.0.1:%d/metrics health http://127.0.0.1:%d/healthz/ready\n",
		       n->name, an, agent_pid(an), agent_ready(l, n) ? "ready" : "NOT-READY",
		       l->cg_root, n->name, n->metrics_port, n->health_port);
	}
	for (int i = 0; i < l->npods; i++) {
		struct lab_pod *p = &l->pods[i];

		pod_addrs(l, p, v4, v6);
		printf("pod %s/%s node %s ip %s ip6 %s %s\n", p->ns, p->name, p->node, v4, v6,
		       pid_alive(p->pid) ? "running" : "stopped");
	}
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

static void lab_usage(void)
{
	fprintf(stderr, "usage: bpfmesh lab up -f FILE... [--name LAB] [--mtls on|off] "
			"[--cert-ttl DURATION] [--accel on|off]\n"
			"       bpfmesh lab apply -f FILE... [--name LAB]\n"
			"       bpfmesh lab exec [-n NS] POD|deploy/NAME -- CMD...\n"
			"       bpfmesh lab stop|start [-n NS] POD|deploy/NAME\n"
			"       bpfmesh lab status [--name LAB]\n"
			"       bpfmesh lab down [--name LAB]\n");
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
	if (lab_open(&l, &a)) {
		free(a.files);
		return 1;
	}
	if (!strcmp(sub, "down")) {
		rc = lab_down(&l) ? 1 : 0;
		if (!rc)
			printf("lab %s is down\n", l.name);
	} else if (!strcmp(sub, "status")) {
		rc = lab_status(&l);
	} else if (!strcmp(sub, "apply")) {
		rc = a.nfiles && !apply_files(&l, a.files, a.nfiles) && !reconcile(&l) ? 0 : 1;
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
