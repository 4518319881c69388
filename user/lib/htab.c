// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * htab.c: see htab.h. Linear probing with tombstones; grows at 3/4 load.
 */
#include <stdlib.h>
#include <string.h>
#include "htab.h"

static void h_grow(struct htab *h);

static uint64_t hkey_hash(const uint8_t *k)
{
	uint64_t h = 1469598103934665603ULL;

	for (int i = 0; i < HKEY; i++) {
		h ^= k[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static struct hent *h_find(struct htab *h, const uint8_t *k, bool for_insert)
{
	struct hent *tomb = NULL;

	if (!h->cap)
		return NULL;
	for (size_t i = hkey_hash(k) & (h->cap - 1), n = 0; n < h->cap;
	     i = (i + 1) & (h->cap - 1), n++) {
		struct hent *e = &h->e[i];

		if (e->state == 0)
			return for_insert ? (tomb ? tomb : e) : NULL;
		if (e->state == 2) {
			if (!tomb)
				tomb = e;
			continue;
		}
		if (memcmp(e->key, k, HKEY) == 0)
			return e;
	}
	return for_insert ? tomb : NULL;
}

static void h_grow(struct htab *h)
{
	struct hent *old = h->e;
	size_t oc = h->cap;

	h->cap = oc ? oc * 2 : 64;
	h->e = calloc(h->cap, sizeof(*h->e));
	if (!h->e)
		abort();
	h->n = h->dead = 0;
	for (size_t i = 0; i < oc; i++)
		if (old[i].state == 1)
			h_put(h, old[i].key, old[i].val);
	free(old);
}

void h_put(struct htab *h, const uint8_t *k, int val)
{
	struct hent *e;

	if ((h->n + h->dead + 1) * 4 >= h->cap * 3)
		h_grow(h);
	e = h_find(h, k, true);
	if (e->state != 1) {
		if (e->state == 2)
			h->dead--;
		h->n++;
	}
	e->state = 1;
	memcpy(e->key, k, HKEY);
	e->val = val;
}

int *h_get(struct htab *h, const uint8_t *k)
{
	struct hent *e = h_find(h, k, false);

	return e ? &e->val : NULL;
}

void h_del(struct htab *h, const uint8_t *k)
{
	struct hent *e = h_find(h, k, false);

	if (e) {
		e->state = 2;
		h->n--;
		h->dead++;
	}
}

void h_free(struct htab *h)
{
	free(h->e);
	memset(h, 0, sizeof(*h));
}

void h_strkey(uint8_t k[HKEY], const char *a, const char *b, const char *c)
{
	uint64_t h1 = 1469598103934665603ULL, h2 = 0x9e3779b97f4a7c15ULL, n = 0;
	const char *parts[3] = {a, b, c};

	for (int i = 0; i < 3; i++) {
		for (const char *p = parts[i]; p && *p; p++, n++) {
			h1 = (h1 ^ (uint8_t)*p) * 1099511628211ULL;
			h2 = (h2 ^ (uint8_t)*p) * 0xff51afd7ed558ccdULL;
		}
		h1 = (h1 ^ 0xff) * 1099511628211ULL; /* separator */
		h2 = (h2 ^ 0xff) * 0xff51afd7ed558ccdULL;
	}
	memcpy(k, &h1, 8);
	memcpy(k + 8, &h2, 8);
	memcpy(k + 16, &n, 8);
}
