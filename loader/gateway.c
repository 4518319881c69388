// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * gateway.c: see gateway.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway.h"
#include "bpfmesh.h"

int gw_parse_labels(const char *s, struct kvlist *l, char *err, size_t errlen)
{
	char *copy = strdup(s ? s : ""), *save = NULL;

	memset(l, 0, sizeof(*l));
	if (!copy)
		return -1;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		struct kv *v;

		if (!eq || eq == tok || strcspn(tok, " \t=") != (size_t)(eq - tok) ||
		    strchr(eq + 1, '=')) {
			snprintf(err, errlen, "--ingress-labels: \"%s\" is not KEY=VALUE (a label)",
				 tok);
			free(copy);
			gw_workload_free(&(struct workload_obj){.labels = *l});
			memset(l, 0, sizeof(*l));
			return -1;
		}
		v = realloc(l->v, (l->n + 1) * sizeof(*v));
		if (!v)
			abort();
		l->v = v;
		l->v[l->n].key = strndup(tok, eq - tok);
		l->v[l->n].val = strdup(eq + 1);
		l->n++;
	}
	free(copy);
	return 0;
}

void gw_workload_init(struct workload_obj *w, const struct kvlist *l)
{
	memset(w, 0, sizeof(*w));
	w->kind = WL_POD;
	w->name = strdup(GW_NAME);
	w->ns = strdup(GW_NS);
	w->service_account = strdup(GW_SA);
	w->replicas = 1;
	w->pod_id = BM_POD_ID_GATEWAY;
	w->labels.v = l->n ? calloc(l->n, sizeof(*w->labels.v)) : NULL;
	for (int i = 0; w->labels.v && i < l->n; i++) {
		w->labels.v[i].key = strdup(l->v[i].key);
		w->labels.v[i].val = strdup(l->v[i].val);
		w->labels.n++;
	}
}

void gw_workload_free(struct workload_obj *w)
{
	for (int i = 0; i < w->labels.n; i++) {
		free(w->labels.v[i].key);
		free(w->labels.v[i].val);
	}
	free(w->labels.v);
	free(w->name);
	free(w->ns);
	free(w->service_account);
	memset(w, 0, sizeof(*w));
}

bool gw_principal(const char *principal)
{
	static const char tail[] = "/ns/" GW_NS "/sa/" GW_SA;
	size_t n = principal ? strlen(principal) : 0, t = sizeof(tail) - 1;

	/* "TD" + tail, the trust domain being one name without a '/' */
	return n > t && !strcmp(principal + n - t, tail) &&
	       strchr(principal, '/') == principal + n - t;
}
