/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * htab.h: a small open-addressing hash table from fixed 24-byte keys to an int, for the
 * agent's indexes (backends by address, services by key in loader/sync.c; endpoints and names
 * in user/resolve.c). Keys are compared as bytes: zero the unused tail.
 */
#ifndef BM_HTAB_H
#define BM_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HKEY 24

struct hent {
	uint8_t state; /* 0 empty, 1 used, 2 deleted */
	uint8_t key[HKEY];
	int val;
};

struct htab {
	struct hent *e;
	size_t cap, n, dead;
};

void h_put(struct htab *h, const uint8_t *k, int val);
int *h_get(struct htab *h, const uint8_t *k);
void h_del(struct htab *h, const uint8_t *k);
void h_free(struct htab *h);

/* A key for up to three strings (NULL = absent): two 64-bit hashes and the total length.
 * Distinct strings colliding is astronomically unlikely; callers that must be exact compare
 * the real strings of what they find. */
void h_strkey(uint8_t k[HKEY], const char *a, const char *b, const char *c);

#endif /* BM_HTAB_H */
