// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * names.c: see names.h.
 */
#include <string.h>
#include "names.h"

static bool is_alnum(char c, bool upper)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (upper && c >= 'A' && c <= 'Z');
}

bool names_dns_label_n(const char *s, size_t len, bool upper)
{
	if (len == 0 || len > 63 || !is_alnum(s[0], upper) || !is_alnum(s[len - 1], upper))
		return false;
	for (size_t i = 1; i + 1 < len; i++)
		if (!is_alnum(s[i], upper) && s[i] != '-')
			return false;
	return true;
}

bool names_dns_label(const char *s)
{
	return s && names_dns_label_n(s, strlen(s), false);
}

/* Kubernetes' IsDNS1123Subdomain: dot-separated parts of the label pattern, at most 253 in
 * all; unlike a label, a part may be longer than 63 (Pod names often are). */
bool names_dns_subdomain(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > 253)
		return false;
	for (const char *p = s;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (l == 0 || !is_alnum(p[0], false) || !is_alnum(p[l - 1], false))
			return false;
		for (size_t i = 1; i + 1 < l; i++)
			if (!is_alnum(p[i], false) && p[i] != '-')
				return false;
		if (!dot)
			return true;
		p = dot + 1;
	}
}
