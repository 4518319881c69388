// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * selfrun.c: `bpfmesh ...` as a child process with its output collected (see selfrun.h).
 * Both pipes are read in one poll loop, so a child that fills one never blocks on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include "selfrun.h"

#define SELFRUN_MAX_OUT (64 << 20)

struct cap {
	char *p;
	size_t n;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int drain(int fd, struct cap *c)
{
	char buf[16384];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n <= 0)
		return n < 0 && errno == EINTR ? 1 : 0;
	if (c->n + n <= SELFRUN_MAX_OUT) {
		char *p = realloc(c->p, c->n + n + 1);

		if (!p)
			abort();
		memcpy(p + c->n, buf, n);
		c->p = p;
		c->n += n;
		p[c->n] = 0;
	}
	return 1;
}

int selfrun(char *const argv[], int timeout_ms, char **out, char **err)
{
	struct cap cap[2] = {{0}, {0}};
	int po[2], pe[2], status = 0, nargs = 0;
	long long deadline = mono_ms() + timeout_ms;
	struct pollfd pf[2];
	bool timed_out = false, reaped = false;
	char **av;
	pid_t pid;

	if (out)
		*out = NULL;
	if (err)
		*err = NULL;
	while (argv[nargs])
		nargs++;
	av = calloc(nargs + 2, sizeof(*av));
	if (!av)
		return -1;
	av[0] = "bpfmesh";
	memcpy(av + 1, argv, nargs * sizeof(*av));
	if (pipe2(po, O_CLOEXEC)) {
		free(av);
		return -1;
	}
	if (pipe2(pe, O_CLOEXEC)) {
		close(po[0]), close(po[1]);
		free(av);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		sigset_t none;

		/* its own process group (a terminal's Ctrl-C is ours to handle, and a timeout
		 * stops all it started) and no signal blocked by the caller's write */
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(null, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execv("/proc/self/exe", av);
		_exit(127);
	}
	free(av);
	close(po[1]);
	close(pe[1]);
	if (pid < 0) {
		close(po[0]), close(pe[0]);
		return -1;
	}
	setpgid(pid, pid); /* as the child does: whichever runs first */
	pf[0] = (struct pollfd){.fd = po[0], .events = POLLIN};
	pf[1] = (struct pollfd){.fd = pe[0], .events = POLLIN};
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		long long left = deadline - mono_ms();
		int n;

		if (!reaped && waitpid(pid, &status, WNOHANG) == pid)
			reaped = true;
		if (left <= 0) {
			timed_out = !reaped;
			if (!reaped)
				kill(-pid, SIGKILL);
			break;
		}
		n = poll(pf, 2, left > 100 ? 100 : (int)left);
		if (n < 0 && errno != EINTR)
			break;
		/* it exited, and what it wrote is read: a daemon it started may hold the pipes */
		if (n == 0 && reaped)
			break;
		for (int i = 0; i < 2; i++)
			if (pf[i].fd >= 0 && pf[i].revents && !drain(pf[i].fd, &cap[i])) {
				close(pf[i].fd);
				pf[i].fd = -1;
			}
	}
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	while (!reaped && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	for (int i = 0; i < 2; i++) {
		char **dst = i ? err : out;

		if (!cap[i].p)
			cap[i].p = strdup("");
		if (dst)
			*dst = cap[i].p;
		else
			free(cap[i].p);
	}
	if (timed_out)
		return 124;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
