// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fuzz_hbone.c: libFuzzer target for the tunnel's CONNECT framing (loader/hbone.c), the bytes
 * a peer agent (or anyone who got through TLS) sends first. Checks what the parser promises:
 * a parsed request names a port in range, an address, and a head inside what was given.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hbone.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hbone_connect req;
	unsigned char a[16];
	size_t head;
	int status;

	if (hbone_parse_connect((const char *)data, size, 2047, &req) == 1) {
		if (req.port < 1 || req.port > 65535 || req.head_len > size ||
		    (inet_pton(AF_INET, req.host, a) != 1 && inet_pton(AF_INET6, req.host, a) != 1))
			abort();
		if (req.forwarded[0] && inet_pton(AF_INET, req.forwarded, a) != 1 &&
		    inet_pton(AF_INET6, req.forwarded, a) != 1)
			abort();
	}
	{ /* HTTP/2's :authority and forwarded header values: the same checks */
		char host[64], fwd[64];
		int port;

		if (hbone_parse_target((const char *)data, size, host, sizeof(host), &port) == 0 &&
		    (port < 1 || port > 65535 ||
		     (inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1)))
			abort();
		hbone_forwarded_for((const char *)data, size, fwd, sizeof(fwd));
		if (fwd[0] && inet_pton(AF_INET, fwd, a) != 1 && inet_pton(AF_INET6, fwd, a) != 1)
			abort();
	}
	if (hbone_parse_response((const char *)data, size, 2047, &status, &head) == 1 &&
	    (status < 100 || status > 599 || head > size))
		abort();
	return 0;
}
