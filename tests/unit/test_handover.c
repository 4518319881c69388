// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_handover.c: the upgrade hand-over (loader/handover.c) between two ends in one process:
 * an old agent's side in a thread passes listening sockets over the unix socket, the new
 * agent's side claims them by the address they are bound to; what is not a TCP listener is
 * not kept; an unclaimed one is closed; READY reaches the old side; nobody listening is "no
 * agent to take over".
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "check.h"
#include "handover.h"

struct old_side {
	int lfd, fds[4], n, pid;
	bool ready;
};

static int tcp_listener(struct sockaddr_in *sa)
{
	socklen_t l = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	*sa =
	    (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0 || bind(fd, (struct sockaddr *)sa, sizeof(*sa)) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)sa, &l))
		return -1;
	return fd;
}

static void *old_agent(void *arg)
{
	struct old_side *o = arg;
	int conn;

	for (int i = 0; i < 200; i++) { /* the listener is non-blocking */
		conn = accept(o->lfd, NULL, NULL);
		if (conn >= 0)
			break;
		usleep(10000);
	}
	if (conn < 0)
		return NULL;
	o->pid = handover_read_request(conn);
	if (o->pid > 0 && !handover_send(conn, o->fds, o->n) && !handover_unlocked(conn)) {
		struct pollfd p = {conn, POLLIN, 0};

		poll(&p, 1, 5000); /* the agent polls it too, then reads */
		o->ready = handover_read_ready(conn);
	}
	close(conn);
	return NULL;
}

static void test_nobody_there(void)
{
	char dir[] = "/tmp/bm-handover-XXXXXX", err[256] = "";
	int conn = 7;

	CHECK(mkdtemp(dir) != NULL, "a directory");
	CHECK_EQ(handover_request(dir, &conn, err, sizeof(err)), 0, "no agent: nothing to take");
	CHECK_EQ(conn, -1, "no link");
	rmdir(dir);
}

static void test_listeners_by_address(void)
{
	char dir[] = "/tmp/bm-handover-XXXXXX", err[256] = "", path[300];
	struct sockaddr_in a1, a2, other = {.sin_family = AF_INET, .sin_port = htons(1)};
	struct old_side o = {0};
	pthread_t th;
	int conn = -1, got, f1, f2, on = 0, udp;
	socklen_t l = sizeof(on);

	if (geteuid() != 0) {
		SKIP("the hand-over answers root only (SO_PEERCRED): run as root");
		return;
	}
	CHECK(mkdtemp(dir) != NULL, "a directory");
	o.lfd = handover_listen(dir);
	CHECK(o.lfd >= 0, "the old side listens");
	o.fds[0] = tcp_listener(&a1);
	o.fds[1] = tcp_listener(&a2);
	udp = socket(AF_INET, SOCK_DGRAM, 0); /* not a listener: not kept */
	o.fds[2] = udp;
	o.n = 3;
	CHECK(o.fds[0] >= 0 && o.fds[1] >= 0 && udp >= 0, "sockets to hand over");
	pthread_create(&th, NULL, old_agent, &o);
	got = handover_request(dir, &conn, err, sizeof(err));
	CHECK_EQ(got, 1, err);
	CHECK(conn >= 0, "the link to the old side stays open");
	other.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ(handover_claim((struct sockaddr *)&other, sizeof(other)), -1,
		 "an address nobody handed over");
	f2 = handover_claim((struct sockaddr *)&a2, sizeof(a2));
	f1 = handover_claim((struct sockaddr *)&a1, sizeof(a1));
	CHECK(f1 >= 0 && f2 >= 0, "both listeners claimed by their address");
	CHECK(f1 != o.fds[0] && f2 != o.fds[1], "new descriptors of the same sockets");
	CHECK(!getsockopt(f1, SOL_SOCKET, SO_ACCEPTCONN, &on, &l) && on, "still listening");
	CHECK_EQ(handover_claim((struct sockaddr *)&a1, sizeof(a1)), -1, "claimed once only");
	{ /* the very socket: a connect to its address is accepted through the new descriptor */
		int c = socket(AF_INET, SOCK_STREAM, 0), s;

		CHECK(!connect(c, (struct sockaddr *)&a1, sizeof(a1)), "connect");
		s = accept(f1, NULL, NULL);
		CHECK(s >= 0, "accepted on the handed-over descriptor");
		close(s);
		close(c);
	}
	handover_ready(conn);
	pthread_join(th, NULL);
	CHECK_EQ(o.pid, (int)getpid(), "the request named our pid");
	CHECK(o.ready, "the old side read READY");
	handover_release_unclaimed();
	close(f1);
	close(f2);
	for (int i = 0; i < 3; i++)
		close(o.fds[i]);
	close(o.lfd);
	snprintf(path, sizeof(path), "%s/%s", dir, HANDOVER_SOCK);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	RUN(test_nobody_there);
	RUN(test_listeners_by_address);
	return CHECK_DONE("handover");
}
