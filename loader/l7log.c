// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7log.c: the HTTP path's access log, what `bpfmesh observe` shows as request events (and
 * only those with --http): one JSON line per request and reporter (the agent of the client's
 * node as "source", the destination's as "destination"), with Envoy's fields: method,
 * authority, path, response code and flags, duration, upstream host, attempts. Each worker
 * buffers its lines and writes them every L7_LOG_FLUSH_MS or 16 KiB (one write(2), O_APPEND,
 * so the workers' lines never interleave); the file is <run dir>/access.log, rotated to
 * access.log.1 at L7_LOG_MAX bytes so it never grows without bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "l7int.h"
#include "log.h"

#define L7_LOG_MAX (8 * 1024 * 1024)

struct l7_log {
	pthread_mutex_t mu;
	char path[600];
	int fd;
	size_t since_check; /* bytes written since the size was last looked at */
};

struct l7_log *l7_log_open(const char *path)
{
	struct l7_log *g;

	if (!path)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	snprintf(g->path, sizeof(g->path), "%s", path);
	g->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (g->fd < 0) {
		pr_warn("l7: access log %s: %s", path, strerror(errno));
		free(g);
		return NULL;
	}
	pthread_mutex_init(&g->mu, NULL);
	return g;
}

void l7_log_close(struct l7_log *g)
{
	if (!g)
		return;
	close(g->fd);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* JSON string contents of s (no quotes) */
static void jesc(struct l7_buf *b, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			lb_printf(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f) /* bytes, not characters: valid JSON, ASCII */
			lb_printf(b, "\\u%04x", c);
		else
			lb_put(b, s, 1);
	}
}

static void wl_name(struct l7_buf *b, const char *key, const struct workload_obj *w)
{
	lb_printf(b, ",\"%s\":\"", key);
	if (w) {
		jesc(b, w->ns);
		lb_put(b, "/", 1);
		jesc(b, w->name);
	}
	lb_put(b, "\"", 1);
}

void l7_log_request(struct l7_buf *b, const struct l7_record *r)
{
	struct timespec ts;
	char flags[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	l7_flags_str(r->flags, flags, sizeof(flags));
	lb_printf(b, "{\"type\":\"http\",\"time_ns\":%lld,\"reporter\":\"%s\"",
		  (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
		  r->destination ? "destination" : "source");
	wl_name(b, "source", r->src);
	wl_name(b, "destination", r->dst);
	lb_printf(b, ",\"service\":\"");
	if (r->svc_name) {
		jesc(b, r->svc_ns);
		lb_put(b, "/", 1);
		jesc(b, r->svc_name);
	}
	lb_printf(b, "\",\"protocol\":\"%s\",\"method\":\"", r->grpc ? "grpc" : "http");
	jesc(b, r->method);
	lb_printf(b, "\",\"authority\":\"");
	jesc(b, r->authority);
	lb_printf(b, "\",\"path\":\"");
	jesc(b, r->path);
	lb_printf(b, "\",\"response_code\":%d", r->code);
	if (r->grpc_status >= 0)
		lb_printf(b, ",\"grpc_status\":%d", r->grpc_status);
	if (r->details) {
		lb_printf(b, ",\"response_code_details\":\"");
		jesc(b, r->details);
		lb_put(b, "\"", 1);
	}
	lb_printf(b,
		  ",\"response_flags\":\"%s\",\"duration_ms\":%.3f,\"bytes_received\":%llu,"
		  "\"bytes_sent\":%llu,\"upstream_host\":\"%s\",\"attempts\":%d,"
		  "\"mtls\":%s}\n",
		  flags, r->ms, (unsigned long long)r->req_bytes, (unsigned long long)r->resp_bytes,
		  r->upstream ? r->upstream : "", r->attempts, r->mtls ? "true" : "false");
}

void l7_log_flush(struct l7_log *g, struct l7_buf *b)
{
	size_t n = lb_pending(b);
	struct stat st;

	if (!g || !n)
		return;
	/* one write: O_APPEND keeps each worker's batch whole */
	if (write(g->fd, b->p + b->off, n) < 0 && errno != EINTR)
		pr_debug("l7: access log: %s", strerror(errno));
	lb_consume(b, n);
	if (__atomic_add_fetch(&g->since_check, n, __ATOMIC_RELAXED) < 256 * 1024)
		return;
	pthread_mutex_lock(&g->mu);
	g->since_check = 0;
	if (!fstat(g->fd, &st) && st.st_size > L7_LOG_MAX) {
		char old[620];
		int fd;

		snprintf(old, sizeof(old), "%s.1", g->path);
		if (!rename(g->path, old)) {
			fd = open(g->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (fd >= 0) {
				dup2(fd, g->fd); /* the other workers write to the new file now */
				close(fd);
			}
		}
	}
	pthread_mutex_unlock(&g->mu);
}
