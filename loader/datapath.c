// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * datapath.c: see datapath.h. Called by the agent (load/attach), and by the CLI (status,
 * services, uninstall), which only ever opens pins.
 */
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpfmesh.h"
#include "datapath.h"
#include "log.h"
#include "sock_lb.skel.h"
#include "sockops.skel.h"
#include "inbound.skel.h"
#include "accel.skel.h"
#include "listen.skel.h"
#include "sav.skel.h"
#include "xdp_gw.skel.h"
#include "podnet.h"

#define STR_(x) #x
#define STR(x)	STR_(x)

struct dp {
	struct sock_lb_bpf *lb;
	struct sockops_bpf *ops;
	struct inbound_bpf *in;
	struct accel_bpf *accel;
	struct listen_bpf *listen;
	struct sav_bpf *sav;
	struct xdp_gw_bpf *xdp;
};

int dp_ensure_bpffs(const char *dir)
{
	struct statfs sf;

	if (statfs(dir, &sf) == 0 && sf.f_type == BPF_FS_MAGIC)
		return 0;
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	if (mount("bpf", dir, "bpf", 0, "mode=0700")) {
		pr_warn("mount bpffs at %s: %s", dir, strerror(errno));
		return -errno;
	}
	pr_info("mounted bpffs at %s", dir);
	return 0;
}

static int mkdir_p(const char *path)
{
	char tmp[512];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Refuse pins made by an agent with another map layout rather than misread them. */
static int check_abi(const char *pin_dir)
{
	char path[512];
	struct bm_meta meta;
	__u32 zero = 0;
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, STR(BM_MAP_META));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0; /* fresh install */
	if (bpf_map_lookup_elem(fd, &zero, &meta) == 0 && meta.abi && meta.abi != BM_MAP_ABI) {
		pr_warn(
		    "%s: pinned maps have layout %u, this agent uses %u; run `bpfmesh uninstall` "
		    "first",
		    pin_dir, meta.abi, BM_MAP_ABI);
		err = -EINVAL;
	}
	close(fd);
	return err;
}

static int attach_one(struct bpf_program *prog, int cg_fd, __u64 cg_id, const char *pin_dir)
{
	enum bpf_attach_type type = bpf_program__expected_attach_type(prog);
	int prog_fd = bpf_program__fd(prog), link_fd, err;
	struct bpf_link_info info;
	__u32 ilen = sizeof(info);
	char path[512];

	snprintf(path, sizeof(path), "%s/link_%s", pin_dir, bpf_program__name(prog));
	link_fd = bpf_obj_get(path);
	if (link_fd >= 0) {
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(link_fd, &info, &ilen) == 0 &&
		    info.cgroup.cgroup_id == cg_id) {
			/* Upgrade in place: the hook never goes empty. */
			err = bpf_link_update(link_fd, prog_fd, NULL);
			close(link_fd);
			if (err)
				pr_warn("update link %s: %s", path, strerror(-err));
			return err;
		}
		close(link_fd);
		unlink(path); /* attached elsewhere, or its cgroup is gone */
	}
	link_fd = bpf_link_create(prog_fd, cg_fd, type, NULL);
	if (link_fd < 0) {
		pr_warn("attach %s: %s", bpf_program__name(prog), strerror(errno));
		return -errno;
	}
	err = bpf_obj_pin(link_fd, path);
	if (err)
		pr_warn("pin %s: %s", path, strerror(errno));
	close(link_fd);
	return err ? -errno : 0;
}

struct dp *dp_load_attach(const char *pin_dir, const char *cgroup_dir, const struct bm_conf *conf)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
	struct bpf_program *prog;
	struct dp *dp = calloc(1, sizeof(*dp));
	struct stat st;
	int cg_fd = -1, err;
	__u32 zero = 0;

	if (!dp)
		return NULL;
	if (mkdir_p(pin_dir) || check_abi(pin_dir))
		goto fail;
	cg_fd = open(cgroup_dir, O_RDONLY | O_DIRECTORY);
	if (cg_fd < 0 || fstat(cg_fd, &st)) {
		pr_warn("cgroup %s: %s", cgroup_dir, strerror(errno));
		goto fail;
	}
	dp->lb = sock_lb_bpf__open_opts(&opts);
	if (!dp->lb || (err = sock_lb_bpf__load(dp->lb))) {
		pr_warn("load sock_lb programs failed (see libbpf output above)");
		goto fail;
	}
	dp->ops = sockops_bpf__open_opts(&opts);
	if (!dp->ops || (err = sockops_bpf__load(dp->ops))) {
		pr_warn("load sockops program failed (see libbpf output above)");
		goto fail;
	}
	dp->in = inbound_bpf__open_opts(&opts);
	if (!dp->in || (err = inbound_bpf__load(dp->in))) {
		pr_warn("load inbound program failed (see libbpf output above)");
		goto fail;
	}
	dp->accel = accel_bpf__open_opts(&opts);
	if (!dp->accel || (err = accel_bpf__load(dp->accel))) {
		pr_warn("load accel program failed (see libbpf output above)");
		goto fail;
	}
	dp->listen = listen_bpf__open_opts(&opts);
	if (!dp->listen || (err = listen_bpf__load(dp->listen))) {
		pr_warn("load listener filters failed (see libbpf output above)");
		goto fail;
	}
	dp->sav = sav_bpf__open_opts(&opts);
	if (!dp->sav || (err = sav_bpf__load(dp->sav))) {
		pr_warn("load source address verification failed (see libbpf output above)");
		goto fail;
	}
	dp->xdp = xdp_gw_bpf__open(); /* its maps are its own: not pinned */
	if (!dp->xdp || (err = xdp_gw_bpf__load(dp->xdp))) {
		pr_warn("load the gateway's XDP program failed (see libbpf output above)");
		goto fail;
	}
	/* every map BM_MAPS names is one the programs declare (maps.h): lists cannot drift */
	for (size_t i = 0; i < pins_nmaps(); i++)
		if (!bpf_object__find_map_by_name(dp->lb->obj, pins_map_name(i))) {
			pr_warn("map %s (BM_MAPS) is in no program object", pins_map_name(i));
			goto fail;
		}
	if (bpf_map_update_elem(bpf_map__fd(dp->ops->maps.bm_conf), &zero, conf, BPF_ANY)) {
		pr_warn("write bm_conf: %s", strerror(errno));
		goto fail;
	}
	/* The map holds the program: attaching again replaces it (restarts, upgrades); sockets
	 * already in the map keep the program they went in with until they close. */
	if (bpf_prog_attach(bpf_program__fd(dp->accel->progs.bm_accel_msg),
			    bpf_map__fd(dp->ops->maps.bm_sockhash), BPF_SK_MSG_VERDICT, 0)) {
		pr_warn("attach bm_accel_msg to bm_sockhash: %s", strerror(errno));
		goto fail;
	}
	/* On cgroup v2 the cgroup id is the directory's inode number. */
	bpf_object__for_each_program(
	    prog, dp->lb->obj) if (attach_one(prog, cg_fd, st.st_ino, pin_dir)) goto fail;
	bpf_object__for_each_program(
	    prog, dp->ops->obj) if (attach_one(prog, cg_fd, st.st_ino, pin_dir)) goto fail;
	bpf_object__for_each_program(
	    prog, dp->in->obj) if (attach_one(prog, cg_fd, st.st_ino, pin_dir)) goto fail;
	close(cg_fd);
	return dp;
fail:
	if (cg_fd >= 0)
		close(cg_fd);
	dp_close(dp);
	return NULL;
}

int dp_xdp(const struct dp *dp, struct dp_xdp_fds *out)
{
	if (!dp || !dp->xdp)
		return -1;
	*out = (struct dp_xdp_fds){.prog = bpf_program__fd(dp->xdp->progs.bm_xdp_gw),
				   .conf = bpf_map__fd(dp->xdp->maps.bm_xconf),
				   .port = bpf_map__fd(dp->xdp->maps.bm_xport),
				   .deny = bpf_map__fd(dp->xdp->maps.bm_xdeny),
				   .allow = bpf_map__fd(dp->xdp->maps.bm_xallow),
				   .stats = bpf_map__fd(dp->xdp->maps.bm_xstats)};
	return 0;
}

int dp_sav_prog(const struct dp *dp)
{
	return dp && dp->sav ? bpf_program__fd(dp->sav->progs.bm_pod_out) : -1;
}

int dp_listener_prog(const struct dp *dp, enum dp_listener which)
{
	if (!dp || !dp->listen)
		return -1;
	return bpf_program__fd(which == DP_LISTEN_OUTBOUND ? dp->listen->progs.bm_listen_out
							   : dp->listen->progs.bm_listen_hbone);
}

void dp_mapfds(const struct dp *dp, struct bm_mapfds *f)
{
	for (size_t i = 0; i < pins_nmaps(); i++) {
		int *slot = pins_map_fd(f, i);
		struct bpf_map *m = bpf_object__find_map_by_name(dp->lb->obj, pins_map_name(i));

		if (slot)
			*slot = m ? bpf_map__fd(m) : -1;
	}
}

void dp_close(struct dp *dp)
{
	if (!dp)
		return;
	sav_bpf__destroy(dp->sav);
	xdp_gw_bpf__destroy(dp->xdp);
	listen_bpf__destroy(dp->listen);
	inbound_bpf__destroy(dp->in);
	accel_bpf__destroy(dp->accel);
	sockops_bpf__destroy(dp->ops);
	sock_lb_bpf__destroy(dp->lb);
	free(dp);
}

_Thread_local unsigned long long dp_writes;

int dp_map_put(int fd, const void *key, const void *val, unsigned long long flags, const char *what)
{
	int e;

	if (dp_put_raw(fd, key, val, flags) == 0)
		return 0;
	e = errno;
	pr_warn("map %s: update failed: %s", what, strerror(e));
	return -e;
}

int dp_map_put_changed(int fd, const void *key, const void *val, size_t vsz, const char *what)
{
	unsigned char held[256];

	if (vsz <= sizeof(held) && bpf_map_lookup_elem(fd, key, held) == 0 &&
	    !memcmp(held, val, vsz))
		return 0;
	return dp_map_put(fd, key, val, BPF_ANY, what);
}

int dp_map_del(int fd, const void *key, const char *what)
{
	int e;

	if (dp_del_raw(fd, key) == 0 || errno == ENOENT)
		return 0;
	e = errno;
	pr_warn("map %s: delete failed: %s", what, strerror(e));
	return -e;
}
