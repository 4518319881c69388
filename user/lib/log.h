/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * log.h: the one logging facility of every long-running bpfmesh process (the agent, the CA
 * service, the lab's supervisor) and of library code that reports: lines on stderr with a
 * wall-clock stamp, a level and the component, printf format checking, one write per line
 * (any thread). libbpf's own messages go through it too (log_init routes them).
 *
 *   16:04:53.816 WARN agent: config: rejected cfg/vs.yaml:12: ...
 *
 * The level shown is BPFMESH_LOG_LEVEL (error, warn, info, debug; default info), or debug when
 * BPFMESH_DEBUG is set.
 */
#ifndef BM_LOG_H
#define BM_LOG_H

#include <stdarg.h>

struct diags;

enum log_level { BM_LOG_ERROR = 0, BM_LOG_WARN, BM_LOG_INFO, BM_LOG_DEBUG };

/* Name the component in every line and route libbpf's messages here; call once at start. */
void log_init(const char *component);

void bm_log(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bm_vlog(enum log_level lvl, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* The same line written to fd (a child's log file) instead of stderr. */
void bm_vlog_fd(int fd, enum log_level lvl, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Whether lines of this level are shown (to skip work for debug lines). */
int log_enabled(enum log_level lvl);

/* Every diagnostic of d as a log line: errors as ERROR, warnings as WARN, notes as INFO. */
void log_diags(const struct diags *d);

#define pr_err(...)  bm_log(BM_LOG_ERROR, __VA_ARGS__)
#define pr_warn(...) bm_log(BM_LOG_WARN, __VA_ARGS__)
#define pr_info(...) bm_log(BM_LOG_INFO, __VA_ARGS__)
#define pr_debug(...)                                                                              \
	do {                                                                                       \
		if (log_enabled(BM_LOG_DEBUG))                                                     \
			bm_log(BM_LOG_DEBUG, __VA_ARGS__);                                         \
	} while (0)

#endif /* BM_LOG_H */
