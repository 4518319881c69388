// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * portfwd.c: see portfwd.h. One thread per forwarded connection (a lab tool: a few
 * connections at a time, at most PF_MAX_CONNS), each a poll loop over its two sockets. The
 * socket to the target is made inside the target's network namespace (setns on the accepting
 * thread, and back), so it needs no route from the host into the lab.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include "portfwd.h"

#define PF_MAX_CONNS  256
#define PF_CONNECT_MS 5000
#define PF_BUF	      (64 * 1024)

static int active; /* atomic: relays running */

struct pair {
	int a, b; /* the client's, the target's */
};

/* One direction: what came from `from` goes to `to`; false when `from` is done. */
static bool pump(int from, int to, char *buf)
{
	ssize_t n = recv(from, buf, PF_BUF, 0);

	if (n <= 0) {
		shutdown(to, SHUT_WR); /* pass the end on; the other direction goes on */
		return false;
	}
	for (ssize_t off = 0; off < n;) {
		ssize_t w = send(to, buf + off, n - off, MSG_NOSIGNAL);

		if (w <= 0)
			return false;
		off += w;
	}
	return true;
}

static void *relay(void *arg)
{
	struct pair p = *(struct pair *)arg;
	char *buf = malloc(PF_BUF);
	bool up = true, down = true;

	free(arg);
	while (buf && (up || down)) {
		struct pollfd fds[2] = {{.fd = up ? p.a : -1, .events = POLLIN},
					{.fd = down ? p.b : -1, .events = POLLIN}};

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		if (up && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
			up = pump(p.a, p.b, buf);
		if (down && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
			down = pump(p.b, p.a, buf);
	}
	free(buf);
	close(p.a);
	close(p.b);
	__atomic_sub_fetch(&active, 1, __ATOMIC_RELAXED);
	return NULL;
}

/* A socket connected to the target, made in its namespace; -1 when it does not answer. */
static int dial(const struct portfwd *p, int host_ns, int target_ns)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(p->dst_port)};
	struct pollfd pf;
	int fd, err = 0, fl;
	socklen_t el = sizeof(err);

	inet_pton(AF_INET, p->dst_ip, &sa.sin_addr);
	if (setns(target_ns, CLONE_NEWNET))
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (setns(host_ns, CLONE_NEWNET)) {
		fprintf(stderr, "port-forward: cannot return to the host's namespace: %s\n",
			strerror(errno));
		exit(1); /* never listen or dial from the wrong namespace */
	}
	if (fd < 0)
		return -1;
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	pf = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pf, 1, PF_CONNECT_MS) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) ||
	    err) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fl);
	return fd;
}

static void serve(const struct portfwd *p, int lfd, int host_ns, int target_ns)
{
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), t, one = 1;
		struct pair *pp;
		pthread_t th;

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			return;
		}
		if (__atomic_load_n(&active, __ATOMIC_RELAXED) >= PF_MAX_CONNS ||
		    (t = dial(p, host_ns, target_ns)) < 0) {
			fprintf(stderr, "port-forward: %s:%d: %s\n", p->dst_ip, p->dst_port,
				"cannot connect to the target");
			close(c);
			continue;
		}
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pp = malloc(sizeof(*pp));
		if (!pp) {
			close(c);
			close(t);
			continue;
		}
		*pp = (struct pair){c, t};
		__atomic_add_fetch(&active, 1, __ATOMIC_RELAXED);
		if (pthread_create(&th, NULL, relay, pp)) {
			__atomic_sub_fetch(&active, 1, __ATOMIC_RELAXED);
			free(pp);
			close(c);
			close(t);
			continue;
		}
		pthread_detach(th);
	}
}

int portfwd_run(const struct portfwd *p)
{
	const char *addr = p->listen_addr ? p->listen_addr : "127.0.0.1";
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(p->local_port)};
	int lfd, host_ns, target_ns, one = 1;
	pid_t pid;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "port-forward: %s: not an IPv4 address\n", addr);
		return -1;
	}
	host_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	target_ns = open(p->netns, O_RDONLY | O_CLOEXEC);
	if (host_ns < 0 || target_ns < 0) {
		fprintf(stderr, "port-forward: %s: %s\n", p->netns, strerror(errno));
		return -1;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 128)) {
		fprintf(stderr, "port-forward: listen %s:%d: %s\n", addr, p->local_port,
			strerror(errno));
		return -1;
	}
	printf("Forwarding from %s:%d -> %d\n", addr, p->local_port, p->remote_port);
	fflush(stdout);
	signal(SIGPIPE, SIG_IGN);
	if (!p->pidfile) {
		/* Ctrl-C ends it, even started in the background of a script (which ignores
		 * SIGINT for its asynchronous commands) */
		signal(SIGINT, SIG_DFL);
		serve(p, lfd, host_ns, target_ns);
		return -1;
	}
	unlink(p->pidfile); /* the child's own, not an earlier relay's, says it is up */
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		FILE *f;

		setsid();
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
		}
		f = fopen(p->pidfile, "w");
		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		}
		serve(p, lfd, host_ns, target_ns);
		_exit(1);
	}
	/* the child listens already (the socket is its): the pid file, then return */
	for (int i = 0; i < 200 && access(p->pidfile, R_OK); i++)
		usleep(10000);
	close(lfd);
	return 0;
}
