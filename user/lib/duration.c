// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * duration.c: see duration.h.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "duration.h"

/*
 * Go's time.ParseDuration, which is what Istio's CRDs accept: "10s", "1.5s", "100ms", "1h30m",
 * "0". Returns 0 with nanoseconds, -1 when malformed or out of range.
 */
int parse_duration_ns(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = {{"ns", 1},	  {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
		     {"ms", 1e6}, {"s", 1e9},  {"m", 60e9},	   {"h", 3600e9}};
	double total = 0;
	bool neg = false;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (!*s)
		return -1;
	while (*s) {
		char *end;
		double val;
		size_t best = 0, bi = 0;

		if (!((*s >= '0' && *s <= '9') || *s == '.'))
			return -1;
		val = strtod(s, &end);
		if (end == s || (end[-1] == '.' && end - s == 1))
			return -1;
		s = end;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].unit);

			if (strncmp(s, units[i].unit, l) == 0 && l > best)
				best = l, bi = i;
		}
		if (!best)
			return -1;
		total += val * units[bi].ns;
		s += best;
	}
	if (total > 9.2e18)
		return -1;
	*out = (int64_t)(total + 0.5) * (neg ? -1 : 1);
	return 0;
}
