/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * regex.h: RE2 regular expressions behind a small C interface (regex.cc): Istio's regex matches
 * are RE2 syntax and whole-string (Envoy's safe_regex), in linear time whatever the input.
 * Used by validation (a regex must compile, as Istio checks) and the agent's HTTP path.
 */
#ifndef BM_REGEX_H
#define BM_REGEX_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bm_regex;

/* Compile; NULL with RE2's message in err when pattern is not RE2 syntax. */
struct bm_regex *bm_regex_new(const char *pattern, bool ignore_case, char *err, size_t errlen);
void bm_regex_free(struct bm_regex *re);
/* Does the whole of s[0..len) match? */
bool bm_regex_full(const struct bm_regex *re, const char *s, size_t len);
/* s with every match replaced by rewrite (\1 .. \9 are groups), as Envoy's regex_rewrite;
 * a heap string, or NULL when out of memory. */
char *bm_regex_replace(const struct bm_regex *re, const char *s, const char *rewrite);

#ifdef __cplusplus
}
#endif

#endif /* BM_REGEX_H */
