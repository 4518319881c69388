// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* log.c: see log.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "model.h"

static const char *log_component;
static int log_max = -1; /* the most verbose level shown; -1 until read from the environment */

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

static int max_level(void)
{
	const char *e;

	if (log_max >= 0)
		return log_max;
	log_max = BM_LOG_INFO;
	e = getenv("BPFMESH_LOG_LEVEL");
	for (int l = BM_LOG_ERROR; e && l <= BM_LOG_DEBUG; l++)
		if (!strcasecmp(e, level_names[l]) ||
		    (l == BM_LOG_WARN && !strcasecmp(e, "warning")))
			log_max = l;
	if (getenv("BPFMESH_DEBUG"))
		log_max = BM_LOG_DEBUG;
	return log_max;
}

int log_enabled(enum log_level lvl)
{
	return (int)lvl <= max_level();
}

void bm_vlog(enum log_level lvl, const char *fmt, va_list ap)
{
	bm_vlog_fd(STDERR_FILENO, lvl, fmt, ap);
}

void bm_vlog_fd(int fd, enum log_level lvl, const char *fmt, va_list ap)
{
	struct timespec ts;
	struct tm tm;
	char line[2048];
	int n;

	if (!log_enabled(lvl))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (int)strftime(line, sizeof(line), "%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n, ".%03ld %s %s%s", ts.tv_nsec / 1000000,
		      level_names[lvl], log_component ? log_component : "",
		      log_component ? ": " : "");
	if (n < (int)sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	while (n > 0 && line[n - 1] == '\n') /* libbpf's messages end with one */
		n--;
	line[n++] = '\n';
	/* one write per line: lines of different threads never interleave */
	if (write(fd, line, n) < 0)
		return;
}

void bm_log(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bm_vlog(lvl, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char msg[1536];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	bm_log(level == LIBBPF_WARN   ? BM_LOG_WARN
	       : level == LIBBPF_INFO ? BM_LOG_INFO
				      : BM_LOG_DEBUG,
	       "libbpf: %s", msg);
	return 0;
}

void log_init(const char *component)
{
	log_component = component;
	libbpf_set_print(libbpf_print);
}

void log_diags(const struct diags *d)
{
	for (int i = 0; i < d->n; i++) {
		const struct diag *g = &d->v[i];
		char where[1200] = "";
		size_t n = 0;

		if (g->file && g->line > 0)
			n += snprintf(where + n, sizeof(where) - n, "%s:%d: ", g->file, g->line);
		else if (g->file)
			n += snprintf(where + n, sizeof(where) - n, "%s: ", g->file);
		if (g->object && n < sizeof(where))
			n += snprintf(where + n, sizeof(where) - n, "%s: ", g->object);
		if (g->field && n < sizeof(where))
			snprintf(where + n, sizeof(where) - n, "%s: ", g->field);
		bm_log(g->sev == DIAG_ERROR  ? BM_LOG_ERROR
		       : g->sev == DIAG_WARN ? BM_LOG_WARN
					     : BM_LOG_INFO,
		       "%s%s", where, g->msg);
	}
}
