// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pins.c: see pins.h. The read side of an agent's kernel state, and its removal: every
 * userspace module may call it (the CLI, the lab, the agent itself); it loads no program.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <fcntl.h>
#include <mntent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "log.h"
#include "pins.h"

/* Every program attached to the node cgroup, in the order they are attached. */
static const char *const dp_progs[] = {
#define DP_PROG_NAME(name) #name,
    BM_CGROUP_PROGS(DP_PROG_NAME)
#undef DP_PROG_NAME
};
#define DP_NPROGS (sizeof(dp_progs) / sizeof(dp_progs[0]))

/* Every pinned map: its pin name and where its fd goes in struct bm_mapfds (-1: not kept open).
 * Generated from BM_MAPS (bpfmesh.h), the one list to extend when a map is added. */
static const struct {
	const char *name;
	long off;
} dp_maps[] = {
#define DP_MAP_FD(field, name) {#name, offsetof(struct bm_mapfds, field)},
#define DP_MAP_PIN(name)       {#name, -1},
    BM_MAPS(DP_MAP_FD, DP_MAP_PIN)
#undef DP_MAP_FD
#undef DP_MAP_PIN
};
#define DP_NMAPS (sizeof(dp_maps) / sizeof(dp_maps[0]))

int dp_pin_dir(char *buf, size_t len, const char *bpffs, const char *node)
{
	int n = snprintf(buf, len, "%s/bpfmesh/%s", bpffs, node);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int dp_cgroup2_root(char *buf, size_t len)
{
	FILE *f = setmntent("/proc/mounts", "r");
	struct mntent *m;
	int err = -ENOENT;

	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "cgroup2") == 0) {
			snprintf(buf, len, "%s", m->mnt_dir);
			err = 0;
			break;
		}
	}
	endmntent(f);
	return err;
}

static int *fd_slot(struct bm_mapfds *f, size_t i)
{
	return dp_maps[i].off < 0 ? NULL : (int *)((char *)f + dp_maps[i].off);
}

static int open_pin(const char *pin_dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	return bpf_obj_get(path);
}

int dp_open_pinned(const char *pin_dir, struct bm_mapfds *f)
{
	for (size_t i = 0; i < DP_NMAPS; i++)
		if (fd_slot(f, i))
			*fd_slot(f, i) = -1;
	for (size_t i = 0; i < DP_NMAPS; i++) {
		int *slot = fd_slot(f, i);

		if (!slot)
			continue;
		*slot = open_pin(pin_dir, dp_maps[i].name);
		if (*slot < 0) {
			int err = -errno;

			dp_close_fds(f);
			return err;
		}
	}
	return 0;
}

void dp_close_fds(struct bm_mapfds *f)
{
	for (size_t i = 0; i < DP_NMAPS; i++) {
		int *slot = fd_slot(f, i);

		if (slot && *slot >= 0)
			close(*slot);
		if (slot)
			*slot = -1;
	}
}

bool dp_links_attached(const char *pin_dir)
{
	for (size_t i = 0; i < DP_NPROGS; i++) {
		struct bpf_link_info info;
		__u32 ilen = sizeof(info);
		char name[64];
		int fd;

		snprintf(name, sizeof(name), "link_%s", dp_progs[i]);
		fd = open_pin(pin_dir, name);
		if (fd < 0)
			return false;
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &ilen) || info.cgroup.cgroup_id == 0) {
			close(fd);
			return false;
		}
		close(fd);
	}
	return true;
}

long dp_sockhash_count(int fd)
{
	struct bm_sockkey key, next;
	void *prev = NULL;
	long n = 0;

	if (fd < 0)
		return -EBADF;
	while (n < 2 * BM_MAX_ACCEL && bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		n++;
	}
	return n;
}

static void tc_detach_all(int ifpod_fd)
{
	__u32 key, next, *prev = NULL;

	while (ifpod_fd >= 0 && bpf_map_get_next_key(ifpod_fd, prev, &next) == 0) {
		DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = next,
				    .attach_point = BPF_TC_INGRESS);
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = BM_TC_HANDLE,
				    .priority = BM_TC_PRIO);

		bpf_tc_detach(&hook, &opts); /* gone with its pod already: fine */
		key = next;
		prev = &key;
	}
}

int dp_uninstall(const char *pin_dir)
{
	char path[512];
	struct dirent *de;
	int fd;
	DIR *d;

	/* the pods' veth filters first (they are no pins: tc holds them) */
	fd = open_pin(pin_dir, "bm_ifpod");
	if (fd >= 0) {
		tc_detach_all(fd);
		close(fd);
	}
	for (size_t i = 0; i < DP_NPROGS; i++) {
		snprintf(path, sizeof(path), "%s/link_%s", pin_dir, dp_progs[i]);
		unlink(path);
	}
	for (size_t i = 0; i < DP_NMAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, dp_maps[i].name);
		unlink(path);
	}
	/* Anything else a newer version pinned here goes too. */
	d = opendir(pin_dir);
	if (d) {
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", pin_dir, de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	if (rmdir(pin_dir) && errno != ENOENT)
		return -errno;
	/* The parent <bpffs>/bpfmesh goes when the last node is gone. */
	snprintf(path, sizeof(path), "%s", pin_dir);
	char *slash = strrchr(path, '/');
	if (slash) {
		*slash = 0;
		rmdir(path);
	}
	return 0;
}

int agent_run_dir(char *buf, size_t len, const char *node)
{
	int n = snprintf(buf, len, "/run/bpfmesh/%s", node);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
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

const char *const *pins_cgroup_progs(size_t *n)
{
	*n = DP_NPROGS;
	return dp_progs;
}

size_t pins_nmaps(void)
{
	return DP_NMAPS;
}

const char *pins_map_name(size_t i)
{
	return i < DP_NMAPS ? dp_maps[i].name : NULL;
}

int *pins_map_fd(struct bm_mapfds *f, size_t i)
{
	return i < DP_NMAPS ? fd_slot(f, i) : NULL;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) && errno != ENOENT ? -1 : 0;
}

/* The agent's run directory, whole: lock, bpffs note, the certs/ it published. */
static void rm_rf_run_dir(const char *dir)
{
	if (access(dir, F_OK) == 0)
		nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	rmdir("/run/bpfmesh"); /* only if no other node is left */
}

int pins_uninstall_node(const char *node, const char *pin_dir)
{
	char run_dir[512];
	pid_t pid = agent_pid(node);

	if (pid > 0) {
		kill(pid, SIGTERM);
		for (int i = 0; i < 50 && agent_pid(node); i++)
			usleep(100 * 1000);
		if (agent_pid(node))
			kill(pid, SIGKILL);
		for (int i = 0; i < 50 && agent_pid(node); i++)
			usleep(100 * 1000);
	}
	if (dp_uninstall(pin_dir))
		return -1;
	if (agent_run_dir(run_dir, sizeof(run_dir), node) == 0)
		rm_rf_run_dir(run_dir);
	return 0;
}
