// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * hbone.c: see hbone.h. Called by the tunnel (tunnel.c) and the fuzz targets.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "hbone.h"

/* The end of the head (after CRLFCRLF), or NULL. */
static const char *head_end(const char *buf, size_t len)
{
	const char *e = memmem(buf, len, "\r\n\r\n", 4);

	return e ? e + 4 : NULL;
}

/* A token of visible ASCII of at most cap-1 bytes at p (up to a space or the line's end). */
static size_t token(const char *p, const char *end, char *out, size_t cap)
{
	size_t n = 0;

	while (p + n < end && p[n] > ' ' && p[n] < 0x7f)
		n++;
	if (!n || n >= cap)
		return 0;
	memcpy(out, p, n);
	out[n] = 0;
	return n;
}

/* "for=" of a Forwarded value (RFC 7239): unquoted, brackets and a port taken off. */
static void forwarded_for(const char *v, const char *end, char *out, size_t cap)
{
	char tmp[80];
	size_t n = 0;
	const char *p;

	out[0] = 0;
	for (p = v; p + 4 <= end; p++)
		if (!strncasecmp(p, "for=", 4) &&
		    (p == v || p[-1] == ' ' || p[-1] == ';' || p[-1] == ','))
			break;
	if (p + 4 > end)
		return;
	p += 4;
	if (p < end && *p == '"')
		p++;
	while (p + n < end && n < sizeof(tmp) - 1 && p[n] != '"' && p[n] != ';' && p[n] != ',' &&
	       p[n] != '\r' && p[n] != ' ')
		tmp[n] = p[n], n++;
	tmp[n] = 0;
	if (tmp[0] == '[') { /* [v6]:port */
		char *rb = strchr(tmp, ']');

		if (!rb)
			return;
		*rb = 0;
		memmove(tmp, tmp + 1, strlen(tmp + 1) + 1);
	} else if (strchr(tmp, ':') == strrchr(tmp, ':') && strchr(tmp, ':')) {
		*strchr(tmp, ':') = 0; /* v4:port */
	}
	{
		unsigned char a[16];

		if (inet_pton(AF_INET, tmp, a) == 1 || inet_pton(AF_INET6, tmp, a) == 1)
			snprintf(out, cap, "%s", tmp);
	}
}

int hbone_parse_target(const char *a, size_t len, char *host, size_t hlen, int *port)
{
	char target[96], *colon, *stop;
	unsigned char addr[16];
	long p;

	host[0] = 0;
	*port = 0;
	if (!len || len >= sizeof(target) || memchr(a, 0, len))
		return -1;
	memcpy(target, a, len);
	target[len] = 0;
	colon = strrchr(target, ':');
	if (!colon || colon == target || !colon[1])
		return -1;
	p = strtol(colon + 1, &stop, 10);
	if (*stop || colon[1] == '+' || colon[1] == '-' || p <= 0 || p > 65535)
		return -1;
	if (target[0] == '[') {
		if (colon[-1] != ']' || colon - target - 2 <= 0 ||
		    (size_t)(colon - target - 2) >= hlen)
			return -1;
		memcpy(host, target + 1, colon - target - 2);
		host[colon - target - 2] = 0;
		if (inet_pton(AF_INET6, host, addr) != 1)
			return -1;
	} else {
		if ((size_t)(colon - target) >= hlen)
			return -1;
		memcpy(host, target, colon - target);
		host[colon - target] = 0;
		if (inet_pton(AF_INET, host, addr) != 1)
			return -1; /* the tunnel connects to pods: addresses only */
	}
	*port = (int)p;
	return 0;
}

void hbone_forwarded_for(const char *v, size_t len, char *out, size_t cap)
{
	forwarded_for(v, v + len, out, cap);
}

void hbone_forwarded_value(const char *ip, char *out, size_t cap)
{
	if (strchr(ip, ':'))
		snprintf(out, cap, "for=\"[%s]\"", ip);
	else
		snprintf(out, cap, "for=%s", ip);
}

void hbone_baggage(const char *cluster, const char *ns, const char *wl_type, const char *wl,
		   const char *svc, const char *rev, char *out, size_t cap)
{
	snprintf(out, cap,
		 "k8s.cluster.name=%s,k8s.namespace.name=%s,k8s.%s.name=%s,service.name=%s,"
		 "service.version=%s",
		 cluster, ns, wl_type, wl, svc, rev);
}

void hbone_traceparent(const unsigned char rnd[24], char *out, size_t cap)
{
	size_t k;

	/* version 00, a 16-byte trace id and an 8-byte span id (never all zero), flags 00 */
	k = (size_t)snprintf(out, cap, "00-");
	for (int i = 0; i < 24 && k + 3 < cap; i++) {
		unsigned char b = rnd[i];

		if ((i == 15 || i == 23) && !b)
			b = 1;
		k += (size_t)snprintf(out + k, cap - k, "%02x%s", b, i == 15 ? "-" : "");
	}
	if (k + 3 < cap)
		snprintf(out + k, cap - k, "-00");
}

int hbone_parse_connect(const char *buf, size_t len, size_t max, struct hbone_connect *out)
{
	const char *end = head_end(buf, len > max ? max : len), *p, *eol;
	char target[96];
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!end)
		return len >= max ? -1 : 0;
	out->head_len = end - buf;
	if (out->head_len < 9 || memcmp(buf, "CONNECT ", 8))
		return -1;
	eol = memmem(buf, out->head_len, "\r\n", 2);
	n = token(buf + 8, eol, target, sizeof(target));
	if (!n || eol - (buf + 8 + n) != 9 || memcmp(buf + 8 + n, " HTTP/1.1", 9))
		return -1;
	if (hbone_parse_target(target, strlen(target), out->host, sizeof(out->host), &out->port))
		return -1;
	/* header lines: the first Forwarded one counts */
	for (p = eol + 2; p < end - 2; p = eol + 2) {
		eol = memmem(p, end - p, "\r\n", 2);
		if (!eol)
			break;
		if (eol - p > 10 && !strncasecmp(p, "forwarded:", 10) && !out->forwarded[0])
			forwarded_for(p + 10, eol, out->forwarded, sizeof(out->forwarded));
		if (eol - p > 17 && !strncasecmp(p, "bpfmesh-protocol:", 17)) {
			const char *v = p + 17, *ve = eol;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			out->http = ve - v == 8 && !strncasecmp(v, "http/1.1", 8);
		}
	}
	return 1;
}

int hbone_parse_response(const char *buf, size_t len, size_t max, int *status, size_t *head_len)
{
	const char *end = head_end(buf, len > max ? max : len);

	*status = 0;
	*head_len = 0;
	if (!end)
		return len >= max ? -1 : 0;
	if (end - buf < 12 || memcmp(buf, "HTTP/1.1 ", 9) || buf[9] < '1' || buf[9] > '5' ||
	    buf[10] < '0' || buf[10] > '9' || buf[11] < '0' || buf[11] > '9')
		return -1;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	*head_len = end - buf;
	return 1;
}
