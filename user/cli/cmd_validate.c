// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cmd_validate.c: `bpfmesh validate` and `bpfmesh analyze`, called from main.c.
 *
 *   validate [-q] [-f FILE|DIR|-]... [FILE|DIR|-]...
 *     Each object on its own, as the API server and Istio's validating webhook judge it:
 *     diagnostics on stderr (file:line: Kind/ns/name: field: message); exit 0 when no object
 *     is invalid (warnings are fine), 1 when one is, 2 on a usage error.
 *   analyze [-f FILE|DIR|-]... [FILE|DIR|-]... [-o json|yaml] [--failure-threshold LEVEL]
 *           [--output-threshold LEVEL]
 *     Everything given as one config, as istioctl analyze does: the validation findings
 *     (IST0106, IST0133) and the analysis across objects (config_analyze: IST and BM codes),
 *     on stdout as istioctl prints them: `Error [IST0101] (VirtualService ns/name file:line)
 *     message`. Exit 1 when a finding is at or above --failure-threshold (default Error).
 *
 * `-` reads standard input. Arguments are parsed by hand rather than with getopt, whose
 * global state (optind) would have to be reset between calls from tests.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "emit.h"
#include "model.h"

static int usage(const char *cmd, FILE *f, int rc)
{
	if (strcmp(cmd, "analyze") == 0)
		fprintf(
		    f, "usage: bpfmesh analyze [-f FILE|DIR|-]... [FILE|DIR|-]... [-o json|yaml]\n"
		       "                       [--failure-threshold Info|Warning|Error]\n"
		       "                       [--output-threshold Info|Warning|Error]\n"
		       "  Analyzes the objects given as one configuration, like istioctl analyze:\n"
		       "  references across objects (IST0101, IST0109, ...), validation findings\n"
		       "  (IST0106, IST0133) and where bpfmesh acts differently (BM codes, see\n"
		       "  docs/analyze.md). `-` reads standard input.\n"
		       "  -o, --output FORMAT       json or yaml instead of one line per finding\n"
		       "  --failure-threshold LEVEL exit 1 when a finding is at least LEVEL "
		       "(Error)\n"
		       "  --output-threshold LEVEL  print findings of at least LEVEL (Info)\n");
	else
		fprintf(f,
			"usage: bpfmesh validate [-q] [-f FILE|DIR|-]... [FILE|DIR|-]...\n"
			"  Checks each object on its own, as the API server and Istio's webhook\n"
			"  do; exit 1 when one is invalid. `-` reads standard input.\n"
			"  -q  print errors only, not warnings\n");
	return rc;
}

static int load_stdin(struct mesh_config *c, struct diags *d)
{
	size_t cap = 65536, len = 0, n;
	char *buf = malloc(cap);
	int rc;

	while (buf && (n = fread(buf + len, 1, cap - len, stdin)) > 0) {
		len += n;
		if (len == cap) {
			char *nb = realloc(buf, cap *= 2);

			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	if (!buf) {
		struct srcpos pos = {.file = "-"};

		diags_add(d, DIAG_ERROR, &pos, NULL, NULL, "out of memory reading standard input");
		return -1;
	}
	rc = config_load_mem(c, "-", buf, len, d);
	free(buf);
	return rc;
}

static int load_path(struct mesh_config *c, const char *path, struct diags *d)
{
	struct stat st;

	if (!strcmp(path, "-"))
		return load_stdin(c, d);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return config_load_dir(c, path, d);
	return config_load_file(c, path, d);
}

struct opts {
	const char **paths;
	int n;
	bool quiet;
	enum out_fmt out;
	int fail_at, print_at; /* enum diag_sev: findings at this level or more severe */
};

static void print_text(const struct diags *d, const struct opts *o, bool analyzer)
{
	for (int i = 0; i < d->n; i++) {
		if ((int)d->v[i].sev > o->print_at)
			continue;
		if (analyzer)
			diag_print_analyzer(&d->v[i], stdout);
		else
			diag_print(&d->v[i], stderr);
	}
}

/* Each finding as istioctl analyze -o json writes it (code, level, message, origin), with the
 * file, line and field it points at. */
static void print_structured(const struct diags *d, const struct opts *o)
{
	struct json_object *list = json_object_new_array();

	for (int i = 0; i < d->n; i++) {
		const struct diag *g = &d->v[i];
		struct json_object *m;
		const char *slash = g->object ? strchr(g->object, '/') : NULL;
		char origin[600] = "", msg[4096];

		if ((int)g->sev > o->print_at)
			continue;
		if (slash)
			snprintf(origin, sizeof(origin), "%.*s %s", (int)(slash - g->object),
				 g->object, slash + 1);
		m = json_object_new_object();
		jset_str(m, "code", diag_code(g));
		jset_str(m, "level", diag_level_name(g->sev));
		jset_str(m, "message", diag_message(g, msg, sizeof(msg)));
		jset_str(m, "origin", slash ? origin : g->object);
		jset_str(m, "file", g->file);
		if (g->line > 0)
			jset_int(m, "line", g->line);
		jset_str(m, "field", g->field);
		json_object_array_add(list, m);
	}
	out_write(stdout, list, o->out);
	json_object_put(list);
}

/* Load the paths, check, optionally analyze, print; returns the exit status. */
static int run(const struct opts *o, bool analyze)
{
	struct mesh_config *c = config_new();
	struct diags d = {0};
	int rc = 0;

	if (!c) {
		fprintf(stderr, "bpfmesh: out of memory\n");
		return 1;
	}
	for (int i = 0; i < o->n; i++)
		load_path(c, o->paths[i], &d);
	if (analyze)
		config_analyze(c, &d);
	if (analyze && o->out != OUT_TEXT)
		print_structured(&d, o);
	else
		print_text(&d, o, analyze);
	for (int i = 0; i < d.n; i++)
		if ((int)d.v[i].sev <= o->fail_at)
			rc = 1;
	if (analyze && o->out == OUT_TEXT && d.n == 0)
		fprintf(stderr, "No validation issues found.\n");
	diags_free(&d);
	config_free(c);
	return rc;
}

/* Option with a value, as "-f X", "--flag X" or "--flag=X"; NULL when argv[*i] is not it. */
static const char *opt_value(int argc, char **argv, int *i, const char *s, const char *l,
			     bool *missing)
{
	size_t ll = strlen(l);

	if ((s && !strcmp(argv[*i], s)) || !strcmp(argv[*i], l)) {
		if (*i + 1 >= argc) {
			*missing = true;
			return NULL;
		}
		return argv[++*i];
	}
	if (!strncmp(argv[*i], l, ll) && argv[*i][ll] == '=')
		return argv[*i] + ll + 1;
	return NULL;
}

static int level(const char *v)
{
	int lvl = diag_level_parse(v);

	if (lvl < 0)
		fprintf(stderr, "bpfmesh analyze: %s: want Info, Warning or Error\n", v);
	return lvl;
}

static int parse(int argc, char **argv, struct opts *o, bool analyze)
{
	const char *cmd = analyze ? "analyze" : "validate";
	bool opts = true;

	*o = (struct opts){.fail_at = DIAG_ERROR, .print_at = DIAG_INFO};
	o->paths = calloc(argc > 0 ? argc : 1, sizeof(*o->paths));
	if (!o->paths)
		return 1;
	for (int i = 1; i < argc; i++) {
		bool missing = false;
		const char *v;

		if (!opts || (argv[i][0] != '-' || !argv[i][1])) {
			o->paths[o->n++] = argv[i];
		} else if (!strcmp(argv[i], "--")) {
			opts = false;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			return usage(cmd, stdout, 0) - 1; /* -1: stop, exit 0 */
		} else if (!analyze && !strcmp(argv[i], "-q")) {
			o->quiet = true;
			o->print_at = DIAG_ERROR;
		} else if ((v = opt_value(argc, argv, &i, "-f", "--filename", &missing))) {
			o->paths[o->n++] = v;
		} else if (analyze && (v = opt_value(argc, argv, &i, "-o", "--output", &missing))) {
			o->out = out_fmt_parse(v);
			if (o->out != OUT_JSON && o->out != OUT_YAML) {
				fprintf(stderr, "bpfmesh analyze: -o %s: want json or yaml\n", v);
				return 2;
			}
		} else if (analyze &&
			   (v = opt_value(argc, argv, &i, NULL, "--failure-threshold", &missing))) {
			if ((o->fail_at = level(v)) < 0)
				return 2;
		} else if (analyze &&
			   (v = opt_value(argc, argv, &i, NULL, "--output-threshold", &missing))) {
			if ((o->print_at = level(v)) < 0)
				return 2;
		} else {
			if (missing)
				fprintf(stderr, "bpfmesh %s: %s needs a value\n", cmd, argv[i]);
			else
				fprintf(stderr, "bpfmesh %s: unknown option %s\n", cmd, argv[i]);
			return 2;
		}
		if (missing) {
			fprintf(stderr, "bpfmesh %s: %s needs a value\n", cmd, argv[i]);
			return 2;
		}
	}
	if (o->n == 0) {
		fprintf(stderr, "bpfmesh %s: no files given\n", cmd);
		return 2;
	}
	return 0;
}

static int cmd(int argc, char **argv, bool analyze)
{
	struct opts o;
	int rc = parse(argc, argv, &o, analyze);

	if (rc == 2)
		usage(analyze ? "analyze" : "validate", stderr, 2);
	if (rc == 0)
		rc = run(&o, analyze);
	else if (rc < 0)
		rc = 0; /* --help */
	free(o.paths);
	return rc;
}

int cmd_validate(int argc, char **argv)
{
	return cmd(argc, argv, false);
}

int cmd_analyze(int argc, char **argv)
{
	return cmd(argc, argv, true);
}
