// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * diag.c: the list of validation problems (struct diags, see model.h). Filled by config.c and
 * validate.c, printed by `bpfmesh validate` / `analyze` (cmd_validate.c) and by anything else
 * that loads configuration. One line per problem:
 *   file:line: Kind/namespace/name: field: message
 *   file:line: Kind/namespace/name: field: warning: message
 * Parts that are unknown (no object, no field, no line) are left out rather than printed empty.
 * `analyze` prints the same list the way istioctl analyze does (diag_print_analyzer).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model.h"

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Capacity is implied by n: grow to the next power of two when n reaches one. */
static int diags_reserve(struct diags *d)
{
	struct diag *v;
	int cap;

	if (d->n >= 8 && (d->n & (d->n - 1)) != 0)
		return 0;
	if (d->n > 0 && d->n < 8)
		return 0;
	cap = d->n < 8 ? 8 : 2 * d->n;
	v = realloc(d->v, cap * sizeof(*v));
	if (!v)
		return -1;
	d->v = v;
	return 0;
}

static void diags_vadd(struct diags *d, enum diag_sev sev, const char *code,
		       const struct srcpos *pos, const char *object, const char *field,
		       const char *fmt, va_list ap)
{
	struct diag g = {.sev = sev, .code = code};

	if (vasprintf(&g.msg, fmt, ap) < 0)
		g.msg = NULL;
	if (pos) {
		g.file = dup_or_null(pos->file);
		g.line = pos->line;
	}
	g.object = dup_or_null(object);
	g.field = dup_or_null(field);
	if (!g.msg || diags_reserve(d) < 0) {
		/* Out of memory: losing a message is better than crashing the validator, but an
		 * error must still count so that the command fails. */
		free(g.msg);
		free(g.file);
		free(g.object);
		free(g.field);
		if (sev == DIAG_ERROR)
			d->nerrors++;
		return;
	}
	d->v[d->n++] = g;
	if (sev == DIAG_ERROR)
		d->nerrors++;
}

void diags_add(struct diags *d, enum diag_sev sev, const struct srcpos *pos, const char *object,
	       const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diags_vadd(d, sev, NULL, pos, object, field, fmt, ap);
	va_end(ap);
}

void diags_addc(struct diags *d, enum diag_sev sev, const char *code, const struct srcpos *pos,
		const char *object, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diags_vadd(d, sev, code, pos, object, field, fmt, ap);
	va_end(ap);
}

const char *diag_level_name(enum diag_sev sev)
{
	return sev == DIAG_ERROR ? "Error" : sev == DIAG_WARN ? "Warning" : "Info";
}

int diag_level_parse(const char *s)
{
	for (int l = DIAG_ERROR; l <= DIAG_INFO; l++)
		if (!strcasecmp(s, diag_level_name(l)))
			return l;
	return -1;
}

void diag_print(const struct diag *g, FILE *f)
{
	if (g->file && g->line > 0)
		fprintf(f, "%s:%d: ", g->file, g->line);
	else if (g->file)
		fprintf(f, "%s: ", g->file);
	if (g->object)
		fprintf(f, "%s: ", g->object);
	if (g->field)
		fprintf(f, "%s: ", g->field);
	fprintf(f, "%s%s\n",
		g->sev == DIAG_WARN   ? "warning: "
		: g->sev == DIAG_INFO ? "info: "
				      : "",
		g->msg);
}

/*
 * As istioctl analyze prints a message: level, code, the resource (kind, then namespace/name)
 * with where it was read, and the message. Findings of the per-object validation carry no
 * code of their own: they are Istio's SchemaValidationError (IST0106) and SchemaWarning
 * (IST0133), with the field in front of the message as Istio's validation errors have it.
 */
void diag_print_analyzer(const struct diag *g, FILE *f)
{
	const char *slash = g->object ? strchr(g->object, '/') : NULL;
	bool origin = g->object || g->file;
	char msg[4096];

	fprintf(f, "%s [%s] %s", diag_level_name(g->sev), diag_code(g), origin ? "(" : "");
	if (g->object && slash)
		fprintf(f, "%.*s %s", (int)(slash - g->object), g->object, slash + 1);
	else if (g->object)
		fprintf(f, "%s", g->object);
	if (g->file)
		fprintf(f, "%s%s", g->object ? " " : "", g->file);
	if (g->file && g->line > 0)
		fprintf(f, ":%d", g->line);
	fprintf(f, "%s%s\n", origin ? ") " : "", diag_message(g, msg, sizeof(msg)));
}

const char *diag_code(const struct diag *g)
{
	return g->code ? g->code : g->sev == DIAG_ERROR ? "IST0106" : "IST0133";
}

const char *diag_message(const struct diag *g, char *buf, size_t len)
{
	if (g->code)
		snprintf(buf, len, "%s", g->msg);
	else
		snprintf(buf, len, "Schema validation %s: %s%s%s",
			 g->sev == DIAG_ERROR ? "error" : "warning", g->field ? g->field : "",
			 g->field ? ": " : "", g->msg);
	return buf;
}

void diags_print(const struct diags *d, FILE *f)
{
	for (int i = 0; i < d->n; i++)
		diag_print(&d->v[i], f);
}

void diags_free(struct diags *d)
{
	for (int i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].object);
		free(d->v[i].field);
		free(d->v[i].msg);
	}
	free(d->v);
	d->v = NULL;
	d->n = 0;
	d->nerrors = 0;
}
