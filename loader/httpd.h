/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * httpd.h: the agent's small HTTP server for /metrics and /healthz/ready, on its control
 * thread's poll loop. Every socket is non-blocking and every connection has a deadline
 * (HTTPD_DEADLINE_MS from accept to the last byte out), so a client that connects and says
 * nothing, or reads slowly, costs a slot until its deadline and stalls nobody; past
 * HTTPD_MAX_CONNS open connections, new ones are closed at once. One request per connection
 * (Connection: close), GET only, what Prometheus and probes do.
 */
#ifndef BM_HTTPD_H
#define BM_HTTPD_H

#include <poll.h>
#include <stdint.h>
#include <stdio.h>

#define HTTPD_DEADLINE_MS 2000
#define HTTPD_MAX_CONNS	  32
#define HTTPD_MAX_LISTEN  4
#define HTTPD_MAX_FDS	  (HTTPD_MAX_LISTEN + HTTPD_MAX_CONNS)

/* Render the answer to GET path into body; return the status line ("200 OK") and set the
 * content type. */
typedef const char *(*httpd_handler)(void *arg, const char *path, FILE *body,
				     const char **content_type);

struct httpd;

struct httpd *httpd_new(httpd_handler h, void *arg);
void httpd_free(struct httpd *d);
/* Listen on "ADDR:PORT" (IPv4, or [IPv6]:PORT); -1 with a warning when it can't. */
int httpd_listen(struct httpd *d, const char *spec);
/* Its listening sockets (for an upgrade, handover.h): how many, at most max. */
int httpd_listeners(const struct httpd *d, int *fds, int max);
/* Close them (the next agent has them); connections open go on to their deadline. Between
 * two httpd_fds()/httpd_run() pairs only. */
void httpd_stop_listening(struct httpd *d);
/* The fds to poll, into p (at most HTTPD_MAX_FDS); returns how many. */
int httpd_fds(struct httpd *d, struct pollfd *p);
/* Milliseconds until the next deadline (-1: none). */
int httpd_timeout(const struct httpd *d, uint64_t now_ms);
/* Handle what poll() said about the fds httpd_fds() gave (same order), and deadlines. */
void httpd_run(struct httpd *d, const struct pollfd *p, int n, uint64_t now_ms);

#endif /* BM_HTTPD_H */
