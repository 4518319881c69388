/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * report.h: the results of a pipeline stage (`bpfmesh canary`, `bpfmesh verify`) as CI reads
 * them: each check passed or failed with a message, kept in order, then written as JUnit XML
 * (the schema Jenkins, GitLab and GitHub Actions display: testsuites > testsuite > testcase,
 * failure) and as JSON for `--json`.
 */
#ifndef BM_REPORT_H
#define BM_REPORT_H

#include <stdbool.h>
#include <json-c/json.h>

struct report_case {
	char *classname; /* e.g. "canary.microservices.orders" */
	char *name;	 /* e.g. "step 1 weight 5: request-success-rate" */
	char *message;	 /* why it failed, or what was measured */
	bool ok;
	double secs;
};

struct report {
	char suite[128];
	double t0; /* CLOCK_REALTIME seconds at report_init */
	struct report_case *v;
	int n, cap, failures;
};

void report_init(struct report *r, const char *suite);
void report_free(struct report *r);
/* Record one check (message printf-style); returns ok. */
bool report_add(struct report *r, const char *classname, const char *name, bool ok, double secs,
		const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* JUnit XML into path (written whole, then renamed into place); 0, or -1 with errno. */
int report_junit(const struct report *r, const char *path);
/* The checks as a JSON array (the caller owns it). */
struct json_object *report_json(const struct report *r);

#endif /* BM_REPORT_H */
