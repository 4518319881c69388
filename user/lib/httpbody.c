// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* httpbody.c: see httpbody.h. */
#include <stdlib.h>
#include <string.h>
#include "httpbody.h"

size_t http_body_write(char *data, size_t sz, size_t nm, void *arg)
{
	struct http_body *b = arg;
	size_t n = sz * nm;
	char *p;

	if (b->n + n > b->max) {
		b->big = true;
		return 0;
	}
	p = realloc(b->p, b->n + n + 1);
	if (!p)
		return 0;
	memcpy(p + b->n, data, n);
	b->p = p;
	b->n += n;
	p[b->n] = 0;
	return n;
}
