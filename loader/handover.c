// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* handover.c: listening sockets from an agent to the one that replaces it (handover.h). */
#include "handover.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include "log.h"

#define BATCH 200 /* descriptors a message (the kernel's limit is 253) */

static struct {
	int fd;
	struct sockaddr_storage sa;
	socklen_t sl;
} got[HANDOVER_MAX_FDS];
static int ngot;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static int sock_path(const char *run_dir, struct sockaddr_un *un)
{
	*un = (struct sockaddr_un){.sun_family = AF_UNIX};
	if ((size_t)snprintf(un->sun_path, sizeof(un->sun_path), "%s/%s", run_dir, HANDOVER_SOCK) >=
	    sizeof(un->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static void timeouts(int fd, int secs)
{
	struct timeval tv = {.tv_sec = secs};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void fmt_sa(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const void *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(s->sin6_port));
	}
}

/* Keep a received descriptor if it is a listening TCP socket. */
static void keep(int fd)
{
	int on = 0, type = 0;
	socklen_t l = sizeof(on), tl = sizeof(type);

	pthread_mutex_lock(&mu);
	if (ngot < HANDOVER_MAX_FDS && !getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &l) && on &&
	    !getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) && type == SOCK_STREAM) {
		got[ngot].sl = sizeof(got[ngot].sa);
		if (!getsockname(fd, (struct sockaddr *)&got[ngot].sa, &got[ngot].sl)) {
			got[ngot++].fd = fd;
			fd = -1;
		}
	}
	pthread_mutex_unlock(&mu);
	if (fd >= 0)
		close(fd);
}

int handover_request(const char *run_dir, int *conn, char *err, size_t errlen)
{
	struct sockaddr_un un;
	char msg[64];
	int fd, n = 0, nfds = 0;

	*conn = -1;
	if (sock_path(run_dir, &un))
		return 0;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&un, sizeof(un))) {
		close(fd); /* nobody there (ENOENT, ECONNREFUSED): nothing to take over */
		return 0;
	}
	timeouts(fd, 10);
	snprintf(msg, sizeof(msg), "TAKE %d", (int)getpid());
	if (send(fd, msg, strlen(msg), MSG_NOSIGNAL) < 0) {
		snprintf(err, errlen, "send to %s: %s", un.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int) * BATCH)];
		struct iovec iov = {.iov_base = msg, .iov_len = sizeof(msg) - 1};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

		if (r <= 0) {
			snprintf(err, errlen, "%s: %s after %d listeners", un.sun_path,
				 r < 0 ? strerror(errno) : "closed before LOCK", nfds);
			close(fd);
			return nfds ? 1 : -1; /* what came is ours either way */
		}
		msg[r] = 0;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			int fds[BATCH];

			memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)(k < BATCH ? k : BATCH));
			for (int i = 0; i < k && i < BATCH; i++, nfds++)
				keep(fds[i]);
		}
		if (!strcmp(msg, "LOCK"))
			break;
		if (sscanf(msg, "FDS %d", &n) != 1) {
			snprintf(err, errlen, "%s: unexpected answer \"%.20s\"", un.sun_path, msg);
			close(fd);
			return nfds ? 1 : -1;
		}
	}
	*conn = fd;
	return 1;
}

void handover_ready(int conn)
{
	if (send(conn, "READY", 5, MSG_NOSIGNAL) < 0)
		pr_warn("handover: READY to the earlier agent: %s (it stops accepting when it "
			"sees this agent gone)",
			strerror(errno));
	close(conn);
}

static bool same(const struct sockaddr_storage *a, const struct sockaddr *b)
{
	if (a->ss_family != b->sa_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	return false;
}

int handover_claim(const struct sockaddr *sa, socklen_t sl)
{
	int fd = -1;

	(void)sl;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < ngot; i++)
		if (same(&got[i].sa, sa)) {
			fd = got[i].fd;
			got[i] = got[--ngot];
			break;
		}
	pthread_mutex_unlock(&mu);
	return fd;
}

void handover_release_unclaimed(void)
{
	char a[80];

	pthread_mutex_lock(&mu);
	for (int i = 0; i < ngot; i++) {
		fmt_sa(&got[i].sa, a, sizeof(a));
		pr_warn(
		    "handover: the earlier agent's listener on %s is not one this agent serves; "
		    "closed (connections waiting in its backlog are reset)",
		    a);
		close(got[i].fd);
	}
	ngot = 0;
	pthread_mutex_unlock(&mu);
}

int handover_listen(const char *run_dir)
{
	struct sockaddr_un un;
	int fd;

	if (sock_path(run_dir, &un))
		return -1;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(un.sun_path); /* an earlier agent's, gone: we hold the lock */
	if (bind(fd, (struct sockaddr *)&un, sizeof(un)) || chmod(un.sun_path, 0600) ||
	    listen(fd, 4)) {
		pr_warn("handover: %s: %s (upgrades will not take this agent's sockets)",
			un.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int handover_read_request(int conn)
{
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	char msg[64];
	ssize_t r;
	int pid;

	timeouts(conn, 5);
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.uid != 0)
		return -1; /* the directory is root's; be sure */
	r = recv(conn, msg, sizeof(msg) - 1, 0);
	if (r <= 0)
		return -1;
	msg[r] = 0;
	if (sscanf(msg, "TAKE %d", &pid) != 1 || pid <= 0)
		return -1;
	return pid;
}

int handover_send(int conn, const int *fds, int n)
{
	for (int off = 0; off < n || (n == 0 && off == 0); off += BATCH) {
		int k = n - off < BATCH ? n - off : BATCH;
		char msg[32], cbuf[CMSG_SPACE(sizeof(int) * BATCH)];
		struct iovec iov = {.iov_base = msg};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

		iov.iov_len = (size_t)snprintf(msg, sizeof(msg), "FDS %d", k);
		if (k > 0) {
			struct cmsghdr *cm;

			memset(cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)k);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)k);
			memcpy(CMSG_DATA(cm), fds + off, sizeof(int) * (size_t)k);
		}
		if (sendmsg(conn, &mh, MSG_NOSIGNAL) < 0)
			return -1;
		if (n == 0)
			break;
	}
	return 0;
}

int handover_unlocked(int conn)
{
	return send(conn, "LOCK", 4, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

bool handover_read_ready(int conn)
{
	char msg[16];
	ssize_t r = recv(conn, msg, sizeof(msg) - 1, MSG_DONTWAIT);

	if (r <= 0)
		return false;
	msg[r] = 0;
	return !strcmp(msg, "READY");
}
