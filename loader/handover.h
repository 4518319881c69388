/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * handover.h: agent upgrades that drop nothing. An agent started while another of the same
 * --node runs asks it, over the unix socket /run/bpfmesh/<node>/handover.sock, for its
 * listening sockets (file descriptors passed with SCM_RIGHTS): the tunnel's 15001 and 15008,
 * the HTTP path's 15006 (one per worker), metrics and health. They are the same kernel
 * sockets, so a connection waiting in a backlog is accepted by one agent or the other and
 * none is refused; once the new agent serves, the old one stops accepting and relays what it
 * holds until it closes or --drain-timeout passes (agent.c). The kernel path never waits on
 * either. Called by agent.c (both sides); dial.c and httpd.c claim the received listeners
 * (handover_claim) when they would otherwise make one, so the table here is process-wide.
 *
 * Protocol (SOCK_SEQPACKET, root only): the new agent sends "TAKE <pid>"; the old one answers
 * "FDS <n>" messages carrying n descriptors each, stops applying config (the maps are the new
 * agent's from here), lets the node's lock go and says "LOCK", and goes on accepting. The new
 * agent takes the lock, applies the config, gets its workload certificates, starts accepting
 * and says "READY"; only then does the old one stop accepting and drain. If the new agent goes
 * away before READY, the old one takes its lock back, serves on, and starts a fresh agent of
 * its own binary to take over (the one that went away may have written maps).
 * Listeners are matched by the address they are bound to (getsockname), not by a name, so an
 * agent of another version that listens on the same ports takes them too.
 */
#ifndef BM_HANDOVER_H
#define BM_HANDOVER_H

#include <stdbool.h>
#include <sys/socket.h>

#define HANDOVER_SOCK	 "handover.sock"
#define HANDOVER_MAX_FDS 256

/* New side. Ask the agent holding run_dir's lock for its listeners; returns once it has let
 * the lock go. 1: taken over (the listeners are kept for handover_claim; *conn is the link to
 * the old agent, for handover_ready), 0: no agent answers there (none runs, or one of a
 * version without hand-over), -1: it answered but the hand-over failed (err says why). */
int handover_request(const char *run_dir, int *conn, char *err, size_t errlen);
/* This agent serves (config in force, certificates held, accepting): the old one drains. */
void handover_ready(int conn);

/* A listener the old agent handed over, bound to sa (TCP, listening), or -1. The caller owns
 * it from here on. Thread-safe. */
int handover_claim(const struct sockaddr *sa, socklen_t sl);

/* Close the listeners nobody claimed (a port this version no longer serves): logged. */
void handover_release_unclaimed(void);

/* Old side. The unix listener new agents connect to (non-blocking), or -1. */
int handover_listen(const char *run_dir);
/* The request on conn: the pid of the agent asking, or -1 (not a hand-over request). */
int handover_read_request(int conn);
/* Send fds (n of them) on conn. 0 or -1. */
int handover_send(int conn, const int *fds, int n);
/* Tell the new agent the lock is free. 0 or -1. */
int handover_unlocked(int conn);
/* conn is readable: true when the new agent said READY (false: it went away). */
bool handover_read_ready(int conn);

#endif /* BM_HANDOVER_H */
