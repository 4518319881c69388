// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rollout.c: the mesh a pipeline stage acts on (see rollout.h). A lab is driven through the
 * lab's own commands (selfrun), so the stages never link the lab and see what a user sees.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "rollout.h"
#include "selfrun.h"

struct json_object *rj_get(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

const char *rj_str(struct json_object *o, const char *key)
{
	struct json_object *v = rj_get(o, key);

	return v ? json_object_get_string(v) : NULL;
}

const struct svc_obj *target_service(const struct mesh_config *c, const char *host,
				     const char *ns)
{
	char *f = config_fqdn(host, ns);

	for (int i = 0; f && i < c->nservices; i++) {
		char fq[400];

		snprintf(fq, sizeof(fq), "%s.%s.svc.cluster.local", c->services[i].name,
			 c->services[i].ns);
		if (!strcmp(fq, f)) {
			free(f);
			return &c->services[i];
		}
	}
	free(f);
	return NULL;
}

int stage_option(struct stage_args *s, int o, const char *arg)
{
	switch (o) {
	case 'f':
		s->file = arg;
		return 1;
	case 'l':
		s->t.lab = arg;
		return 1;
	case 'd':
		s->t.config_dir = arg;
		return 1;
	case 'n':
		if (s->t.nnodes == ROLLOUT_MAX_NODES)
			return -1;
		s->t.nodes[s->t.nnodes++] = (char *)arg;
		return 1;
	case 'p':
		s->prometheus = arg;
		return 1;
	case 'j':
		s->junit = arg;
		return 1;
	case 'J':
		s->json = true;
		return 1;
	}
	return 0;
}

int stage_check(const struct stage_args *s)
{
	return s->file && !s->t.lab != !s->t.config_dir ? 0 : -1;
}

int target_open(struct mesh_target *t, char *err, size_t errlen)
{
	struct json_object *st, *nodes;
	char *out = NULL, *msg = NULL;
	int rc;

	if (!t->lab) {
		struct stat sb;

		if (!t->config_dir || stat(t->config_dir, &sb) || !S_ISDIR(sb.st_mode)) {
			snprintf(err, errlen, "--config-dir %s: not a directory",
				 t->config_dir ? t->config_dir : "(none)");
			return -1;
		}
		return 0;
	}
	rc = selfrun((char *[]){"lab", "status", "--name", (char *)t->lab, "-o", "json", NULL},
		     30000, &out, &msg);
	st = rc == 0 ? json_tokener_parse(out) : NULL;
	if (!st) {
		const char *first = msg ? strtok(msg, "\n") : NULL;

		snprintf(err, errlen, "lab %s: %s", t->lab,
			 first ? first : "lab status gave no answer");
		free(out);
		free(msg);
		return -1;
	}
	free(out);
	free(msg);
	snprintf(t->lab_config, sizeof(t->lab_config), "%s", rj_str(st, "config") ?: "");
	t->config_dir = t->lab_config;
	if (rj_str(st, "prometheus"))
		snprintf(t->prometheus, sizeof(t->prometheus), "%s", rj_str(st, "prometheus"));
	if (json_object_object_get_ex(st, "nodes", &nodes))
		for (size_t i = 0; i < json_object_array_length(nodes); i++) {
			const char *a = rj_str(json_object_array_get_idx(nodes, i), "agent");

			if (a && t->nnodes < ROLLOUT_MAX_NODES)
				t->nodes[t->nnodes++] = strdup(a);
		}
	json_object_put(st);
	return 0;
}

void target_close(struct mesh_target *t)
{
	if (t->lab)
		for (int i = 0; i < t->nnodes; i++)
			free(t->nodes[i]);
	t->nnodes = 0;
}

struct mesh_config *target_config(const struct mesh_target *t, char *err, size_t errlen)
{
	struct mesh_config *c = config_new();
	struct diags d = {0};

	if (config_load_dir(c, t->config_dir, &d) < 0) {
		snprintf(err, errlen, "%s: cannot read the config directory", t->config_dir);
		config_free(c);
		c = NULL;
	}
	diags_free(&d);
	if (c)
		config_index(c);
	return c;
}

static int write_atomic(const char *path, const char *data, char *err, size_t errlen)
{
	char tmp[1200];
	size_t len = strlen(data);
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) || close(fd) ||
	    rename(tmp, path)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return -1;
	}
	return 0;
}

int target_apply(const struct mesh_target *t, const char *file, const char *yaml, char *err,
		 size_t errlen)
{
	char path[1100], *out = NULL, *msg = NULL;
	int rc;

	if (!t->lab) {
		snprintf(path, sizeof(path), "%s/%s", t->config_dir, file);
		return write_atomic(path, yaml, err, errlen);
	}
	/* the lab keeps its own copy of each object: the file only carries it there */
	snprintf(path, sizeof(path), "/run/bpfmesh/rollout-%d-%s", (int)getpid(), file);
	if (write_atomic(path, yaml, err, errlen))
		return -1;
	rc = selfrun((char *[]){"lab", "apply", "--name", (char *)t->lab, "-f", path, NULL}, 60000,
		     &out, &msg);
	unlink(path);
	if (rc) {
		snprintf(err, errlen, "lab apply (exit %d): %s", rc,
			 msg && *msg ? msg
			 : out	     ? out
				     : "");
		/* one line is enough in a progress line */
		for (char *p = err; *p; p++)
			if (*p == '\n')
				*p = ' ';
	}
	free(out);
	free(msg);
	return rc ? -1 : 0;
}

struct json_object *target_services(const struct mesh_target *t, int i)
{
	char *out = NULL;
	struct json_object *o;
	int rc = selfrun((char *[]){"services", "--node", t->nodes[i], "-o", "json", NULL}, 30000,
			 &out, NULL);

	o = rc == 0 ? json_tokener_parse(out) : NULL;
	free(out);
	return o;
}

struct json_object *ynode_to_json(const struct ynode *n)
{
	struct json_object *o;
	int64_t iv;
	double dv;
	bool bv;

	if (!n || n->type == YN_NULL)
		return NULL;
	if (n->type == YN_MAP) {
		o = json_object_new_object();
		for (int i = 0; i < n->n; i++)
			json_object_object_add(o, n->pairs[i].key, ynode_to_json(n->pairs[i].val));
		return o;
	}
	if (n->type == YN_SEQ) {
		o = json_object_new_array();
		for (int i = 0; i < n->n; i++)
			json_object_array_add(o, ynode_to_json(n->items[i]));
		return o;
	}
	switch (n->skind) {
	case YS_INT:
		if (!ynode_int(n, &iv))
			return json_object_new_int64(iv);
		break;
	case YS_FLOAT:
		if (!ynode_num(n, &dv))
			return json_object_new_double(dv);
		break;
	case YS_BOOL:
		if (!ynode_bool(n, &bv))
			return json_object_new_boolean(bv);
		break;
	case YS_NULL:
		return NULL;
	default:
		break;
	}
	return json_object_new_string(n->str ? n->str : "");
}
