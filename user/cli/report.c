// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * report.c: checks of a pipeline stage and their JUnit XML / JSON forms (see report.h). Used
 * by canary.c and verify.c. The XML follows the JUnit schema CI servers read: one <testsuite>
 * with tests/failures/errors/skipped/time/timestamp, one <testcase> per check with
 * classname/name/time, a <failure message> for a failed one; every attribute and text escaped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "report.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void report_init(struct report *r, const char *suite)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->suite, sizeof(r->suite), "%s", suite);
	r->t0 = now_s();
}

void report_free(struct report *r)
{
	for (int i = 0; i < r->n; i++) {
		free(r->v[i].classname);
		free(r->v[i].name);
		free(r->v[i].message);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

bool report_add(struct report *r, const char *classname, const char *name, bool ok, double secs,
		const char *fmt, ...)
{
	struct report_case *c;
	va_list ap;
	char *msg = NULL;

	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 16;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
		if (!r->v)
			abort();
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	c = &r->v[r->n++];
	c->classname = strdup(classname);
	c->name = strdup(name);
	c->message = msg ? msg : strdup("");
	c->ok = ok;
	c->secs = secs;
	if (!c->classname || !c->name || !c->message)
		abort();
	if (!ok)
		r->failures++;
	return ok;
}

/* XML 1.0 text or attribute value: markup escaped, control characters (not allowed in XML
 * 1.0 at all) as '?' */
static void xml_esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '<')
			fputs("&lt;", f);
		else if (c == '>')
			fputs("&gt;", f);
		else if (c == '&')
			fputs("&amp;", f);
		else if (c == '"')
			fputs("&quot;", f);
		else if (c == '\'')
			fputs("&apos;", f);
		else if (c < 0x20 && c != '\t' && c != '\n')
			fputc('?', f);
		else
			fputc(c, f);
	}
}

int report_junit(const struct report *r, const char *path)
{
	char tmp[4200], when[32];
	time_t t0 = (time_t)r->t0;
	double total = now_s() - r->t0;
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", gmtime(&t0));
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"");
	xml_esc(f, r->suite);
	fprintf(f, "\" tests=\"%d\" failures=\"%d\" errors=\"0\" time=\"%.3f\">\n", r->n,
		r->failures, total);
	fprintf(f, "  <testsuite name=\"");
	xml_esc(f, r->suite);
	fprintf(f,
		"\" tests=\"%d\" failures=\"%d\" errors=\"0\" skipped=\"0\" time=\"%.3f\" "
		"timestamp=\"%s\" hostname=\"localhost\">\n",
		r->n, r->failures, total, when);
	for (int i = 0; i < r->n; i++) {
		const struct report_case *c = &r->v[i];

		fprintf(f, "    <testcase classname=\"");
		xml_esc(f, c->classname);
		fprintf(f, "\" name=\"");
		xml_esc(f, c->name);
		fprintf(f, "\" time=\"%.3f\"", c->secs);
		if (c->ok) {
			fprintf(f, ">\n      <system-out>");
			xml_esc(f, c->message);
			fprintf(f, "</system-out>\n    </testcase>\n");
			continue;
		}
		fprintf(f, ">\n      <failure message=\"");
		xml_esc(f, c->message);
		fprintf(f, "\" type=\"check\">");
		xml_esc(f, c->message);
		fprintf(f, "</failure>\n    </testcase>\n");
	}
	fprintf(f, "  </testsuite>\n</testsuites>\n");
	if (fclose(f)) {
		unlink(tmp);
		return -1;
	}
	return rename(tmp, path);
}

struct json_object *report_json(const struct report *r)
{
	struct json_object *a = json_object_new_array();

	for (int i = 0; i < r->n; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "check", json_object_new_string(r->v[i].name));
		json_object_object_add(o, "ok", json_object_new_boolean(r->v[i].ok));
		json_object_object_add(o, "message", json_object_new_string(r->v[i].message));
		json_object_array_add(a, o);
	}
	return a;
}
