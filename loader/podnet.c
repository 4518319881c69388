// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * podnet.c: see podnet.h. Called by the agent (loader/agent.c).
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "datapath.h"
#include "log.h"
#include "pins.h"
#include "podnet.h"
#include "inpod.skel.h"

#define PIN_PREFIX "inpod_"
#define MAX_VETHS  8 /* host-side interfaces one pod may have */

struct attached {
	uint32_t pod_id;
	ino_t netns;
	int veths[MAX_VETHS]; /* filtered by this agent */
	int nveths;
	ino_t hbone_ns; /* the namespace its HBONE listener is in (0: none) */
};

struct podnet {
	char pin_dir[512];
	ino_t host_ns, node_ns;
	int sav_prog, ifpod_fd;
	struct attached *v; /* links this agent has put in place or updated */
	int n, cap;
	bool warned_load, warned_tc;
	int hbone_map; /* bm_hbone, -1: no HBONE listeners */
	podnet_listen_fn listen;
	podnet_unlisten_fn unlisten;
	void *arg;
};

struct podnet *podnet_new(const char *pin_dir, ino_t host_netns, ino_t node_netns, int sav_prog,
			  int ifpod_fd)
{
	struct podnet *pn = calloc(1, sizeof(*pn));

	if (!pn)
		return NULL;
	snprintf(pn->pin_dir, sizeof(pn->pin_dir), "%s", pin_dir);
	pn->host_ns = host_netns;
	pn->node_ns = node_netns;
	pn->sav_prog = sav_prog;
	pn->ifpod_fd = ifpod_fd;
	pn->hbone_map = -1;
	return pn;
}

void podnet_set_hbone(struct podnet *pn, int map_fd, podnet_listen_fn listen,
		      podnet_unlisten_fn unlisten, void *arg)
{
	if (!pn)
		return;
	pn->hbone_map = map_fd;
	pn->listen = listen;
	pn->unlisten = unlisten;
	pn->arg = arg;
}

/* ---------- HBONE listeners in pods' namespaces ---------- */

struct mk_listener {
	int nsfd, fd, err;
};

/* A thread of its own enters the namespace: the agent's threads stay where they are. */
static void *mk_listener_in_ns(void *arg)
{
	struct mk_listener *m = arg;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(BM_PORT_HBONE)};
	struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6, .sin6_port = htons(BM_PORT_HBONE)};
	int one = 1, zero = 0, fd;
	bool v6;

	if (setns(m->nsfd, CLONE_NEWNET)) {
		m->err = errno;
		return NULL;
	}
	/* one socket for both families (the sk_lookup program hands it IPv4 SYNs too); IPv4
	 * only where the pod's namespace has no IPv6 */
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	v6 = fd >= 0 && !setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (fd >= 0 && !v6) {
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		m->err = errno;
		return NULL;
	}
	/* the next agent (an upgrade) binds its own next to ours; the sk_lookup program picks
	 * the one in bm_hbone, whatever the pod binds */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if ((v6 ? bind(fd, (struct sockaddr *)&sa6, sizeof(sa6))
		: bind(fd, (struct sockaddr *)&sa, sizeof(sa))) ||
	    listen(fd, 512)) {
		m->err = errno;
		close(fd);
		return NULL;
	}
	m->fd = fd;
	return NULL;
}

static void hbone_drop(struct podnet *pn, struct attached *a)
{
	if (!a->hbone_ns)
		return;
	a->hbone_ns = 0;
	bpf_map_delete_elem(pn->hbone_map, &a->pod_id); /* closing the socket does it too */
	pn->unlisten(pn->arg, a->pod_id);
}

static void hbone_sync(struct podnet *pn, struct attached *a, int nsfd, bool want)
{
	struct mk_listener m = {.nsfd = nsfd, .fd = -1};
	pthread_t th;
	__u64 fd;

	if (pn->hbone_map < 0 || (want && a->hbone_ns == a->netns))
		return;
	hbone_drop(pn, a); /* not wanted any more, or in a namespace the pod left */
	if (!want)
		return;
	if (pthread_create(&th, NULL, mk_listener_in_ns, &m) || pthread_join(th, NULL) ||
	    m.fd < 0) {
		pr_warn("podnet: HBONE listener in pod %u's network namespace: %s", a->pod_id,
			strerror(m.err ? m.err : errno));
		return;
	}
	fd = (__u64)m.fd;
	if (bpf_map_update_elem(pn->hbone_map, &a->pod_id, &fd, BPF_ANY)) {
		pr_warn("podnet: bm_hbone for pod %u: %s", a->pod_id, strerror(errno));
		close(m.fd);
		return;
	}
	if (pn->listen(pn->arg, a->pod_id, m.fd)) {
		bpf_map_delete_elem(pn->hbone_map, &a->pod_id);
		close(m.fd);
		return;
	}
	a->hbone_ns = a->netns;
}

/* ---------- netlink: which of our interfaces are a pod's veths ---------- */

static int nl_send(int nl, struct nlmsghdr *h)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};

	return sendto(nl, h, h->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -1 : 0;
}

static struct rtattr *nl_attr(struct nlmsghdr *h, int type, const void *data, int len)
{
	struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));

	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

/* The id our namespace knows namespace nsfd by (-1: none assigned yet). */
static int nl_nsid(int nl, int nsfd)
{
	struct {
		struct nlmsghdr h;
		struct rtgenmsg g;
		char attrs[64];
	} req = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtgenmsg)),
		       .nlmsg_type = RTM_GETNSID,
		       .nlmsg_flags = NLM_F_REQUEST,
		       .nlmsg_seq = 1},
		 .g = {.rtgen_family = AF_UNSPEC}};
	char buf[4096] __attribute__((aligned(4)));
	__u32 fd = nsfd;
	ssize_t n;

	nl_attr(&req.h, NETNSA_FD, &fd, sizeof(fd));
	if (nl_send(nl, &req.h) || (n = recv(nl, buf, sizeof(buf), 0)) <= 0)
		return -1;
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
		struct rtattr *a =
		    (struct rtattr *)((char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct rtgenmsg)));
		int len = h->nlmsg_len - NLMSG_LENGTH(sizeof(struct rtgenmsg));

		if (h->nlmsg_type != RTM_NEWNSID)
			continue;
		for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
			if (a->rta_type == NETNSA_NSID)
				return *(__s32 *)RTA_DATA(a);
	}
	return -1;
}

/* Our veths whose peer is in namespace nsid (ifindexes into out, at most max). */
static int nl_veths(int nl, int nsid, int *out, int max)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)),
		       .nlmsg_type = RTM_GETLINK,
		       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		       .nlmsg_seq = 2},
		 .i = {.ifi_family = AF_UNSPEC}};
	char buf[32768] __attribute__((aligned(4)));
	int found = 0;

	if (nl_send(nl, &req.h))
		return 0;
	for (;;) {
		ssize_t n = recv(nl, buf, sizeof(buf), 0);

		if (n <= 0)
			return found;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n);
		     h = NLMSG_NEXT(h, n)) {
			struct ifinfomsg *ifi = NLMSG_DATA(h);
			struct rtattr *a = IFLA_RTA(ifi);
			int len = IFLA_PAYLOAD(h), peer_ns = -2;
			bool veth = false;

			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
				return found;
			if (h->nlmsg_type != RTM_NEWLINK)
				continue;
			for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
				if (a->rta_type == IFLA_LINK_NETNSID) {
					peer_ns = *(__s32 *)RTA_DATA(a);
				} else if (a->rta_type == IFLA_LINKINFO) {
					struct rtattr *b = RTA_DATA(a);
					int bl = RTA_PAYLOAD(a);

					for (; RTA_OK(b, bl); b = RTA_NEXT(b, bl))
						if (b->rta_type == IFLA_INFO_KIND &&
						    !strncmp(RTA_DATA(b), "veth", RTA_PAYLOAD(b)))
							veth = true;
				}
			}
			if (veth && peer_ns == nsid && found < max)
				out[found++] = ifi->ifi_index;
		}
	}
}

/* Host-side veths of the pod in namespace nsfd. */
static int pod_veths(int nsfd, int *out, int max)
{
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), nsid, n = 0;
	struct timeval tv = {.tv_sec = 1};

	if (nl < 0)
		return 0;
	setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	nsid = nl_nsid(nl, nsfd);
	if (nsid < 0) {
		nl_veths(nl, -3, out, 0); /* a dump assigns ids to peers' namespaces */
		nsid = nl_nsid(nl, nsfd);
	}
	if (nsid >= 0)
		n = nl_veths(nl, nsid, out, max);
	close(nl);
	return n;
}

/* Verify what comes in on ifindex (the pod's frames) with the SAV program. */
static int tc_filter(struct podnet *pn, int ifindex, const struct bm_pod *pod)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = pn->sav_prog, .handle = BM_TC_HANDLE,
			    .priority = BM_TC_PRIO, .flags = BPF_TC_F_REPLACE);
	__u32 key = ifindex;
	int err;

	/* the pod's addresses first: the filter never runs without them */
	if (dp_put_raw(pn->ifpod_fd, &key, pod, BPF_ANY))
		return -errno;
	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST)
		return err;
	return bpf_tc_attach(&hook, &opts);
}

void podnet_free(struct podnet *pn)
{
	if (!pn)
		return;
	free(pn->v);
	free(pn);
}

static struct attached *find(struct podnet *pn, uint32_t pod_id)
{
	for (int i = 0; i < pn->n; i++)
		if (pn->v[i].pod_id == pod_id)
			return &pn->v[i];
	return NULL;
}

/* The network namespace of a process in cgroup dir (or below it) that is not the node's:
 * an open fd on it and its inode, or -1. */
static int pod_netns(const struct podnet *pn, const char *dir, int depth, ino_t *ino)
{
	char path[1100], line[32];
	struct dirent *de;
	struct stat st;
	FILE *f;
	DIR *d;
	int fd = -1;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "r");
	while (f && fd < 0 && fgets(line, sizeof(line), f)) {
		char ns[64];

		snprintf(ns, sizeof(ns), "/proc/%d/ns/net", atoi(line));
		if (stat(ns, &st) || st.st_ino == pn->host_ns || st.st_ino == pn->node_ns)
			continue; /* gone, or not (yet) in a namespace of its own */
		fd = open(ns, O_RDONLY | O_CLOEXEC);
		*ino = st.st_ino;
	}
	if (f)
		fclose(f);
	if (fd >= 0 || depth >= 4 || !(d = opendir(dir)))
		return fd;
	while (fd < 0 && (de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = pod_netns(pn, path, depth + 1, ino);
	}
	closedir(d);
	return fd;
}

/* A fresh instance of the judge for pod_id: its program fd, the skeleton in *skel. */
static int load_instance(struct podnet *pn, uint32_t pod_id, struct inpod_bpf **skel)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pn->pin_dir);
	struct inpod_bpf *s = inpod_bpf__open_opts(&opts);

	if (!s)
		return -1;
	s->rodata->bm_self_pod = pod_id;
	if (inpod_bpf__load(s)) {
		if (!pn->warned_load)
			pr_warn("podnet: load sk_lookup program failed (see libbpf output above)");
		pn->warned_load = true;
		inpod_bpf__destroy(s);
		return -1;
	}
	*skel = s;
	return bpf_program__fd(s->progs.bm_pod_lookup);
}

static bool access_pin(const struct podnet *pn, uint32_t pod_id)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/" PIN_PREFIX "%u", pn->pin_dir, pod_id);
	return access(path, F_OK) == 0;
}

/* The pod's veths verified with its current addresses. true if at least one is. */
static bool sav_sync(struct podnet *pn, struct attached *a, int nsfd, const struct bm_pod *pod)
{
	int ifx[MAX_VETHS], n;

	if (pn->sav_prog < 0 || pn->ifpod_fd < 0)
		return false;
	n = pod_veths(nsfd, ifx, MAX_VETHS);
	for (int i = 0; i < n; i++) {
		struct bm_pod cur;
		__u32 key = ifx[i];
		bool had = false;

		for (int j = 0; j < a->nveths; j++)
			had |= a->veths[j] == ifx[i];
		if (had && bpf_map_lookup_elem(pn->ifpod_fd, &key, &cur) == 0 &&
		    !memcmp(&cur, pod, sizeof(cur)))
			continue;
		if (tc_filter(pn, ifx[i], pod)) {
			if (!pn->warned_tc)
				pr_warn("podnet: source address verification on ifindex %d: %s",
					ifx[i], strerror(errno));
			pn->warned_tc = true;
			n = i;
			break;
		}
	}
	for (int j = 0; j < a->nveths; j++) { /* veths gone: their entries go */
		bool still = false;

		for (int i = 0; i < n; i++)
			still |= a->veths[j] == ifx[i];
		if (!still) {
			__u32 key = a->veths[j];

			dp_map_del(pn->ifpod_fd, &key, "bm_ifpod");
		}
	}
	memcpy(a->veths, ifx, n * sizeof(ifx[0]));
	a->nveths = n;
	return n > 0;
}

/* Put pod_id's link in place for namespace nsfd (inode ino). */
static int attach(struct podnet *pn, uint32_t pod_id, int nsfd, ino_t ino)
{
	struct bpf_link_info info;
	__u32 ilen = sizeof(info);
	struct inpod_bpf *skel = NULL;
	struct attached *a = find(pn, pod_id);
	char path[600];
	int lfd, prog, err = 0;

	if (a && a->netns == ino && access_pin(pn, pod_id))
		return 0; /* ours, in place: the common case of every rescan */
	snprintf(path, sizeof(path), "%s/" PIN_PREFIX "%u", pn->pin_dir, pod_id);
	lfd = bpf_obj_get(path);
	if (lfd >= 0) {
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(lfd, &info, &ilen) == 0 &&
		    info.type == BPF_LINK_TYPE_NETNS && info.netns.netns_ino == ino) {
			if (a && a->netns == ino) {
				close(lfd);
				return 0; /* ours, in place */
			}
			/* an earlier agent's: take it over with this agent's program */
			prog = load_instance(pn, pod_id, &skel);
			err = prog < 0 ? -1 : bpf_link_update(lfd, prog, NULL);
			close(lfd);
			inpod_bpf__destroy(skel);
			if (err)
				return -1;
			goto record;
		}
		close(lfd);
		unlink(path); /* the pod's namespace changed (restarted pod): detach */
	}
	prog = load_instance(pn, pod_id, &skel);
	if (prog < 0)
		return -1;
	lfd = bpf_link_create(prog, nsfd, BPF_SK_LOOKUP, NULL);
	if (lfd < 0 || bpf_obj_pin(lfd, path)) {
		pr_warn("podnet: attach to pod %u's network namespace: %s", pod_id,
			strerror(errno));
		err = -1;
	}
	if (lfd >= 0)
		close(lfd);
	inpod_bpf__destroy(skel); /* the pinned link holds the program */
	if (err)
		return -1;
record:
	if (!a) {
		if (pn->n == pn->cap) {
			pn->cap = pn->cap ? 2 * pn->cap : 32;
			pn->v = realloc(pn->v, pn->cap * sizeof(*pn->v));
			if (!pn->v)
				abort();
		}
		a = &pn->v[pn->n++];
		memset(a, 0, sizeof(*a));
	}
	a->pod_id = pod_id;
	a->netns = ino;
	return 0;
}

static bool wanted(const struct podnet_pod *pods, int n, uint32_t id)
{
	for (int i = 0; i < n; i++)
		if (pods[i].pod_id == id)
			return true;
	return false;
}

int podnet_sync(struct podnet *pn, struct podnet_pod *pods, int n)
{
	struct dirent *de;
	int covered = 0;
	DIR *d;

	for (int i = 0; i < n; i++) {
		ino_t ino = 0;
		int nsfd = pod_netns(pn, pods[i].cgroup, 0, &ino);
		struct attached *a;

		pods[i].sav = false;
		if (nsfd < 0)
			continue; /* no process in a namespace of its own yet: next rescan */
		if (attach(pn, pods[i].pod_id, nsfd, ino) == 0)
			covered++;
		a = find(pn, pods[i].pod_id);
		if (a)
			pods[i].sav = sav_sync(pn, a, nsfd, &pods[i].pod);
		a = find(pn, pods[i].pod_id);
		if (a)
			hbone_sync(pn, a, nsfd, pods[i].hbone);
		close(nsfd);
	}
	/* links of pods that are gone */
	d = opendir(pn->pin_dir);
	while (d && (de = readdir(d))) {
		char path[800];
		uint32_t id;

		if (strncmp(de->d_name, PIN_PREFIX, strlen(PIN_PREFIX)) ||
		    sscanf(de->d_name + strlen(PIN_PREFIX), "%u", &id) != 1 || wanted(pods, n, id))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pn->pin_dir, de->d_name);
		unlink(path);
		for (int i = 0; i < pn->n; i++) {
			if (pn->v[i].pod_id != id)
				continue;
			if (pn->hbone_map >= 0)
				hbone_drop(pn, &pn->v[i]);
			for (int j = 0; j < pn->v[i].nveths; j++) {
				__u32 key = pn->v[i].veths[j];

				dp_map_del(pn->ifpod_fd, &key, "bm_ifpod");
			}
			pn->v[i] = pn->v[--pn->n];
		}
	}
	if (d)
		closedir(d);
	return covered;
}
