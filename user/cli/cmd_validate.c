// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cmd_validate.c: `bpfmesh validate [-q] FILE|DIR...` and `bpfmesh analyze -f FILE...`, called
 * from main.c. Both load everything given into one model (config.c), run the checks across
 * objects (config_validate) and print every diagnostic to stderr; analyze also prints notes on
 * where bpfmesh behaves differently from Istio (config_analyze). Exit status: 0 when there is
 * no error (warnings are fine), 1 when there is one, 2 on a usage error.
 *
 * Arguments are parsed by hand rather than with getopt, whose global state (optind) would
 * have to be reset between calls from tests.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "model.h"

static int usage(const char *cmd)
{
	if (strcmp(cmd, "analyze") == 0)
		fprintf(stderr, "usage: bpfmesh analyze -f FILE|DIR [-f FILE|DIR]...\n");
	else
		fprintf(stderr, "usage: bpfmesh validate [-q] FILE|DIR...\n"
				"  -q  print errors only, not warnings\n");
	return 2;
}

static int load_path(struct mesh_config *c, const char *path, struct diags *d)
{
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return config_load_dir(c, path, d);
	return config_load_file(c, path, d);
}

static void print_diags(const struct diags *d, bool quiet)
{
	for (int i = 0; i < d->n; i++)
		if (!(quiet && d->v[i].sev == DIAG_WARN))
			diag_print(&d->v[i], stderr);
}

/* Load paths[0..n), check, optionally analyze, print; returns the exit status. */
static int run(char **paths, int n, bool quiet, bool analyze)
{
	struct mesh_config *c;
	struct diags d = {0};
	int rc;

	if (n == 0) {
		free(paths);
		return usage(analyze ? "analyze" : "validate");
	}
	c = config_new();
	if (!c) {
		free(paths);
		fprintf(stderr, "bpfmesh: out of memory\n");
		return 1;
	}
	for (int i = 0; i < n; i++)
		load_path(c, paths[i], &d);
	config_validate(c, &d);
	if (analyze)
		config_analyze(c, &d);
	print_diags(&d, quiet);
	rc = d.nerrors ? 1 : 0;
	diags_free(&d);
	config_free(c);
	free(paths);
	return rc;
}

/* Ends an argument parse early: frees the paths collected so far. */
static int stop(char **paths, int rc, const char *cmd)
{
	free(paths);
	return rc == 2 ? usage(cmd) : rc;
}

int cmd_validate(int argc, char **argv)
{
	char **paths = calloc(argc > 0 ? argc : 1, sizeof(*paths));
	bool quiet = false, opts = true;
	int n = 0;

	if (!paths)
		return 1;
	for (int i = 1; i < argc; i++) {
		if (opts && strcmp(argv[i], "--") == 0)
			opts = false;
		else if (opts && strcmp(argv[i], "-q") == 0)
			quiet = true;
		else if (opts && (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")))
			return usage("validate"), stop(paths, 0, "validate");
		else if (opts && argv[i][0] == '-' && argv[i][1])
			return stop(paths, 2, "validate");
		else
			paths[n++] = argv[i];
	}
	return run(paths, n, quiet, false);
}

int cmd_analyze(int argc, char **argv)
{
	char **paths = calloc(argc > 0 ? argc : 1, sizeof(*paths));
	int n = 0;

	if (!paths)
		return 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--filename")) {
			if (i + 1 >= argc)
				return stop(paths, 2, "analyze");
			paths[n++] = argv[++i];
		} else if (!strncmp(argv[i], "--filename=", 11)) {
			paths[n++] = argv[i] + 11;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			return usage("analyze"), stop(paths, 0, "analyze");
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return stop(paths, 2, "analyze");
		} else {
			paths[n++] = argv[i];
		}
	}
	return run(paths, n, false, true);
}
