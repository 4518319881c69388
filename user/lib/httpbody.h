/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * httpbody.h: a response body collected by a libcurl write callback, up to a limit (past it the
 * transfer is ended and `big` says why). For the Prometheus queries (user/cli/promq.c) and the
 * Kubernetes API lists (kube.c).
 */
#ifndef BM_HTTPBODY_H
#define BM_HTTPBODY_H

#include <stdbool.h>
#include <stddef.h>

struct http_body {
	char *p; /* NUL-terminated, heap; the caller frees it */
	size_t n;
	size_t max; /* set by the caller: the most it keeps */
	bool big;   /* ended at max */
};

/* CURLOPT_WRITEFUNCTION with CURLOPT_WRITEDATA a struct http_body. */
size_t http_body_write(char *data, size_t sz, size_t nm, void *arg);

#endif /* BM_HTTPBODY_H */
