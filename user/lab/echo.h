/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * echo.h: the lab's built-in HTTP/UDP echo server. `bpfmesh lab` runs one per pod in place of
 * the pod's container image (like httpbin), so every workload in a lab answers with who it is:
 * pod, namespace, node, labels and env (VERSION=v1 ...). That is what makes traffic splits
 * visible with `curl -s http://svc:8080/get | grep VERSION`. The same port speaks HTTP/2 (h2c)
 * and gRPC (grpc.health.v1.Health/Check, bpfmesh.echo.Echo/Echo; see echo.c), for the mesh's
 * HTTP/2 and gRPC tests. Tested by tests/unit/test_echo.c and tests/integration/echo_h2.bats.
 */
#ifndef BM_ECHO_H
#define BM_ECHO_H

#include "model.h"

/* Limits; each overridable at build time. */
#ifndef ECHO_MAX_HEADER
#define ECHO_MAX_HEADER 16384 /* request line + headers; larger -> 431 and close */
#endif
#ifndef ECHO_MAX_HEADERS
#define ECHO_MAX_HEADERS 128 /* header fields per request; more -> 431 and close */
#endif
#ifndef ECHO_MAX_BODY
#define ECHO_MAX_BODY (1024 * 1024) /* request body; larger -> 413 and close */
#endif
#ifndef ECHO_MAX_CONNS
#define ECHO_MAX_CONNS 1024 /* open TCP connections; beyond it: 503 and close */
#endif
#ifndef ECHO_MAX_DELAY_S
#define ECHO_MAX_DELAY_S 10 /* /delay/N is clamped to this, like httpbin */
#endif
#ifndef ECHO_IDLE_MS
#define ECHO_IDLE_MS 60000 /* a connection with no progress for this long is closed */
#endif

struct echo_conf {
	const char *pod;      /* pod name, e.g. orders-service-v1-0 */
	const char *ns;	      /* namespace */
	const char *node;     /* node name */
	const char *ip;	      /* pod IPv4 (may be NULL) */
	struct kvlist labels; /* pod labels */
	struct kvlist env;    /* container env, e.g. VERSION=v1 */
	const int *ports;     /* TCP and UDP ports to serve (duplicates are served once) */
	int nports;
};

/*
 * Serve HTTP/1.1, HTTP/2 (prior knowledge or Upgrade: h2c) and gRPC on TCP and the one-line
 * identity reply on UDP, on every port, dual-stack ([::] with IPV6_V6ONLY off), until SIGTERM
 * or SIGINT. Blocks those two signals while it runs (they arrive through a signalfd) and
 * ignores SIGPIPE; both are restored on return.
 * Returns 0 on clean stop, -1 (with a message on stderr) on setup failure.
 */
int echo_run(const struct echo_conf *c);

#endif /* BM_ECHO_H */
