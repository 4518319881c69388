/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * log.h: the agent's and CLI's log lines, on stderr with a level and a wall-clock stamp, with
 * printf format checking, one write per line (any thread). pr_debug prints only when
 * BPFMESH_DEBUG is set in the environment.
 */
#ifndef BM_LOG_H
#define BM_LOG_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline void __attribute__((format(printf, 2, 3)))
bm_log(const char *lvl, const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	char line[1024];
	va_list ap;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (int)strftime(line, sizeof(line), "%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n, ".%03ld %s ", ts.tv_nsec / 1000000, lvl);
	va_start(ap, fmt);
	if (n < (int)sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	line[n] = 0;
	/* one write per line: lines of the control and data threads never interleave */
	fputs(line, stderr);
}

#define pr_warn(...) bm_log("WARN", __VA_ARGS__)
#define pr_info(...) bm_log("INFO", __VA_ARGS__)
#define pr_debug(...)                                                                              \
	do {                                                                                       \
		if (getenv("BPFMESH_DEBUG"))                                                       \
			bm_log("DEBUG", __VA_ARGS__);                                              \
	} while (0)

#endif /* BM_LOG_H */
