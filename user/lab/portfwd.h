/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * portfwd.h: the relay of `bpfmesh lab port-forward` (lab.c finds the target): a TCP port on
 * the host, 127.0.0.1 unless given, to an address and port inside a network namespace of the
 * lab (a pod's, or a node's for its ingress gateway), like kubectl port-forward: every
 * connection accepted is one connection to the target, relayed both ways until both sides
 * are done. Foreground until a signal ends it, or in the background (its pid in a file that
 * `lab down` reads).
 */
#ifndef BM_PORTFWD_H
#define BM_PORTFWD_H

struct portfwd {
	const char *listen_addr; /* default 127.0.0.1 */
	int local_port;
	const char *netns; /* path of the target's network namespace */
	const char *dst_ip;
	int dst_port;
	int remote_port;     /* as the user gave it (the messages) */
	const char *pidfile; /* background: the relay's pid goes here; NULL: foreground */
};

/* Listens, then relays (foreground: until a signal; background: returns 0 once the relay
 * listens). -1 with a message when it cannot listen or enter the namespace. */
int portfwd_run(const struct portfwd *p);

#endif /* BM_PORTFWD_H */
