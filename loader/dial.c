// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* dial.c: see dial.h. */
#include <errno.h>
#include <stdio.h>
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

int dial_addr_set(union dial_addr *a, const char *ip, int port)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, ip, &a->in4.sin_addr) == 1) {
		a->in4.sin_family = AF_INET;
		a->in4.sin_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &a->in6.sin6_addr) == 1) {
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_port = htons(port);
		return 0;
	}
	return -1;
}

socklen_t dial_addr_len(const struct sockaddr *a)
{
	return a->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

void dial_addr_ip(const struct sockaddr *a, char *buf, size_t len)
{
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;

	snprintf(buf, len, "?");
	if (a->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, buf, len);
	else if (a->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
		inet_ntop(AF_INET, a6->sin6_addr.s6_addr + 12, buf, len);
	else if (a->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &a6->sin6_addr, buf, len);
}

uint8_t dial_addr_key(const struct sockaddr *a, uint8_t addr[16], uint16_t *port)
{
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;

	memset(addr, 0, 16);
	if (a->sa_family == AF_INET6) {
		memcpy(addr, &a6->sin6_addr, 16);
		*port = a6->sin6_port;
		return BM_FAM_V6;
	}
	memcpy(addr, &a4->sin_addr, 4);
	*port = a4->sin_port;
	return BM_FAM_V4;
}

void dial_hostport(char *buf, size_t len, const char *ip, int port)
{
	snprintf(buf, len, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
}

void dial_addr_fmt(const struct sockaddr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	dial_addr_ip(a, ip, sizeof(ip));
	dial_hostport(buf, len, ip,
		      ntohs(a->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)a)->sin6_port
						     : ((const struct sockaddr_in *)a)->sin_port));
}

static int stream_socket(int family)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int dial_tcp(const struct sockaddr *dst)
{
	int fd = stream_socket(dst->sa_family);

	if (fd < 0)
		return -1;
	if (connect(fd, dst, dial_addr_len(dst)) && errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int dial_attested(int attest_fd, const struct sockaddr *dst, const char *src_ip,
		  struct dial_pass *pass)
{
	union dial_addr src = {0};
	struct bm_attest v = {.flags = BM_AT_F_AGENT};
	socklen_t sl = sizeof(src), dl = dial_addr_len(dst);
	bool v6 = dst->sa_family == AF_INET6;
	int u, fd, e;

	pass->have = false;
	if (src_ip && dial_addr_set(&src, src_ip, 0) == 0 && src.sa.sa_family == dst->sa_family)
		goto bound;
	/* the source address routing picks, so the 4-tuple is known before the SYN */
	u = socket(dst->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u < 0 || connect(u, dst, dl) || getsockname(u, &src.sa, &sl)) {
		e = errno;
		if (u >= 0)
			close(u);
		errno = e;
		return -1;
	}
	close(u);
	if (v6)
		src.in6.sin6_port = 0;
	else
		src.in4.sin_port = 0;
bound:
	fd = stream_socket(dst->sa_family);
	if (fd < 0)
		return -1;
	sl = sizeof(src);
	if (bind(fd, &src.sa, dl) || getsockname(fd, &src.sa, &sl))
		goto fail;
	memset(&pass->key, 0, sizeof(pass->key));
	dial_addr_key(&src.sa, pass->key.saddr, &pass->key.sport);
	pass->key.family = dial_addr_key(dst, pass->key.daddr, &pass->key.dport);
	if (attest_fd >= 0) {
		pass->have = bpf_map_update_elem(attest_fd, &pass->key, &v, BPF_ANY) == 0;
		if (!pass->have)
			pr_warn("bm_attest: %s: a STRICT pod will refuse this delivery",
				strerror(errno));
	}
	if (connect(fd, dst, dl) && errno != EINPROGRESS) {
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
	union dial_addr sa;
	int fd, one = 1;

	if (dial_addr_set(&sa, ip, port))
		return -1;
	fd = handover_claim(&sa.sa, dial_addr_len(&sa.sa));
	if (fd >= 0) { /* the earlier agent's (an upgrade): this version's filter, same backlog */
		if (filter_prog >= 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &filter_prog, sizeof(filter_prog)))
			pr_warn("filter for listener %s:%d: %s (the earlier agent's stays)", ip,
				port, strerror(errno));
		if (listen(fd, backlog))
			pr_debug("listen %s:%d: %s", ip, port, strerror(errno));
		return fd;
	}
	fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (sa.sa.sa_family == AF_INET6) /* that address only, whatever the sysctl says */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (filter_prog >= 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &filter_prog, sizeof(filter_prog))) {
		pr_warn("filter for listener %s:%d: %s", ip, port, strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, &sa.sa, dial_addr_len(&sa.sa)) || listen(fd, backlog)) {
		pr_warn("listen %s:%d: %s", ip, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
