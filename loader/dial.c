// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* dial.c: see dial.h. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include "datapath.h"
#include "dial.h"
#include "handover.h"
#include "log.h"

static int stream_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int dial_tcp(const struct sockaddr_in *dst)
{
	int fd = stream_socket();

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) && errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int dial_attested(int attest_fd, const struct sockaddr_in *dst, struct dial_pass *pass)
{
	struct sockaddr_in src = {.sin_family = AF_INET};
	struct bm_attest v = {.flags = BM_AT_F_AGENT};
	socklen_t sl = sizeof(src);
	int u, fd, e;

	pass->have = false;
	/* the source address routing picks, so the 4-tuple is known before the SYN */
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u < 0 || connect(u, (const struct sockaddr *)dst, sizeof(*dst)) ||
	    getsockname(u, (struct sockaddr *)&src, &sl)) {
		e = errno;
		if (u >= 0)
			close(u);
		errno = e;
		return -1;
	}
	close(u);
	src.sin_port = 0;
	fd = stream_socket();
	if (fd < 0)
		return -1;
	sl = sizeof(src);
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) ||
	    getsockname(fd, (struct sockaddr *)&src, &sl))
		goto fail;
	memset(&pass->key, 0, sizeof(pass->key));
	memcpy(pass->key.saddr, &src.sin_addr, 4);
	memcpy(pass->key.daddr, &dst->sin_addr, 4);
	pass->key.sport = src.sin_port;
	pass->key.dport = dst->sin_port;
	pass->key.family = BM_FAM_V4;
	if (attest_fd >= 0) {
		pass->have = bpf_map_update_elem(attest_fd, &pass->key, &v, BPF_ANY) == 0;
		if (!pass->have)
			pr_warn("bm_attest: %s: a STRICT pod will refuse this delivery",
				strerror(errno));
	}
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) && errno != EINPROGRESS) {
		dial_pass_drop(attest_fd, pass);
		goto fail;
	}
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

void dial_pass_drop(int attest_fd, struct dial_pass *pass)
{
	if (pass->have && attest_fd >= 0)
		dp_map_del(attest_fd, &pass->key, "bm_attest");
	pass->have = false;
}

bool dial_done(int fd)
{
	int err = 0;
	socklen_t l = sizeof(err);

	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0 && err == 0;
}

int dial_listen(const char *ip, int port, int filter_prog, bool reuseport, int backlog)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd, one = 1;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return -1;
	fd = handover_claim((struct sockaddr *)&sa, sizeof(sa));
	if (fd >= 0) { /* the earlier agent's (an upgrade): this version's filter, same backlog */
		if (filter_prog >= 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &filter_prog, sizeof(filter_prog)))
			pr_warn("filter for listener %s:%d: %s (the earlier agent's stays)", ip,
				port, strerror(errno));
		if (listen(fd, backlog))
			pr_debug("listen %s:%d: %s", ip, port, strerror(errno));
		return fd;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (filter_prog >= 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &filter_prog, sizeof(filter_prog))) {
		pr_warn("filter for listener %s:%d: %s", ip, port, strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, backlog)) {
		pr_warn("listen %s:%d: %s", ip, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
