// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * config.c: reads Kubernetes and Istio YAML/JSON into the model of model.h. Called by
 * `bpfmesh validate` / `analyze` (cmd_validate.c), the agent (loader/) and the lab (lab.c).
 *
 * Every object is first checked by validate_object() (validate.c); only a valid object is
 * copied into the model, so the copying code below reads fields without re-checking types.
 * Objects are keyed like the API server keys them (kind, namespace, name): a later document
 * (of the same file or a later one) replaces an earlier one as `kubectl apply -f` would, with
 * a warning. An invalid object is listed in mesh_config.rejected and left out; the rest load
 * (the API server judges objects one at a time). config_retain() gives the agent the last
 * good version of a rejected object.
 */
#include <ctype.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "extract.h"
#include "gwapi.h"
#include "htab.h"
#include "ratelimit.h"
#include "telemetry.h"
#include "validate.h"

/* ---------------- small helpers ---------------- */

/* How a file was read (mesh_config.loads, by file index). */
struct file_load {
	bool stamped; /* read from the directory, with st below */
	bool clean;   /* every document was one object, valid and kept: reusable */
	int nobjs;    /* objects it gave */
	long long size, mtime_s, mtime_ns, ctime_s, ctime_ns;
	unsigned long long ino;
};

/* The index of an interned file name, or -1 (a hash: the API server's objects are a "file"
 * each, 10,000s of them). */
static int file_index(const struct mesh_config *c, const char *path)
{
	uint8_t k[HKEY];
	int *i;

	if (!c->file_ids)
		return -1;
	h_strkey(k, path, NULL, NULL);
	i = h_get(c->file_ids, k);
	return i && *i < c->nfiles && !strcmp(c->files[*i], path) ? *i : -1;
}

static const char *intern_file(struct mesh_config *c, const char *path)
{
	int at = file_index(c, path);
	uint8_t k[HKEY];
	char **v;

	if (at >= 0)
		return c->files[at];
	if (!c->file_ids && !(c->file_ids = calloc(1, sizeof(*c->file_ids))))
		return NULL;
	struct file_load *fl;

	v = realloc(c->files, (c->nfiles + 1) * sizeof(*v));
	if (!v)
		return NULL;
	c->files = v;
	fl = realloc(c->loads, (c->nfiles + 1) * sizeof(*fl));
	if (!fl)
		return NULL;
	c->loads = fl;
	memset(&c->loads[c->nfiles], 0, sizeof(*fl));
	c->files[c->nfiles] = strdup(path);
	if (!c->files[c->nfiles])
		return NULL;
	h_strkey(k, path, NULL, NULL);
	h_put(c->file_ids, k, c->nfiles);
	return c->files[c->nfiles++];
}

/* The load record of a file name, or NULL. */
static struct file_load *file_load_of(const struct mesh_config *c, const char *file)
{
	int i = file_index(c, file);

	return i >= 0 ? &c->loads[i] : NULL;
}

/* The capacity an array grown only by grow() has while it holds n (n > 0) elements. */
static size_t grow_cap(int n)
{
	size_t cap = 4;

	while (cap < (size_t)n)
		cap <<= 1;
	return cap;
}

/* Grow an array of structs by one zeroed slot; returns the slot or NULL. Capacity doubles
 * (these arrays reach 100,000s of objects: one realloc per object copied them over and over);
 * every array passed here must only ever grow here. */
static void *grow(void **arr, int *n, size_t size)
{
	char *p = *arr;

	if (!p || (size_t)*n + 1 > grow_cap(*n)) {
		p = realloc(*arr, grow_cap(*n + 1) * size);
		if (!p)
			return NULL;
	}
	*arr = p;
	memset(p + *n * size, 0, size);
	return p + (*n)++ * size;
}

/* ---------------- freeing ---------------- */

static void ns_free(struct ns_obj *o)
{
	free(o->name);
	kvlist_free(&o->labels);
}

static void svc_free(struct svc_obj *o)
{
	free(o->name);
	free(o->ns);
	kvlist_free(&o->labels);
	kvlist_free(&o->selector);
	for (int i = 0; i < 2; i++)
		free(o->cluster_ips[i]);
	free(o->type);
	for (int i = 0; i < o->nports; i++) {
		free(o->ports[i].name);
		free(o->ports[i].target_port_name);
		free(o->ports[i].protocol);
		free(o->ports[i].app_protocol);
	}
	free(o->ports);
}

static void wl_free(struct workload_obj *o)
{
	free(o->name);
	free(o->ns);
	kvlist_free(&o->meta_labels);
	kvlist_free(&o->labels);
	kvlist_free(&o->annotations);
	for (int i = 0; i < o->nports; i++) {
		free(o->ports[i].name);
		free(o->ports[i].protocol);
	}
	free(o->ports);
	kvlist_free(&o->env);
	free(o->node_name);
	free(o->host_ip);
	free(o->host_ip6);
	free(o->uid);
	free(o->owner_kind);
	free(o->owner_name);
	for (int i = 0; i < 2; i++)
		free(o->addresses[i]);
	free(o->service_account);
	free(o->network);
}

static void vs_free(struct vs_obj *o)
{
	free(o->name);
	free(o->ns);
	strv_free(o->hosts, o->nhosts);
	strv_free(o->gateways, o->ngateways);
	strv_free(o->export_to, o->nexport_to);
	for (int i = 0; i < o->nroutes; i++) {
		struct vs_route *r = &o->routes[i];

		free(r->name);
		for (int k = 0; k < r->ndests; k++) {
			free(r->dests[k].host);
			free(r->dests[k].subset);
			header_ops_free(&r->dests[k].req_headers);
			header_ops_free(&r->dests[k].resp_headers);
		}
		free(r->dests);
		http_route_free(r);
	}
	free(o->routes);
}

static void policy_free(struct traffic_policy *p)
{
	free(p->hash_header);
	free(p->hash_cookie);
	free(p->hash_cookie_path);
	free(p->hash_query);
}

static void dr_free(struct dr_obj *o)
{
	free(o->name);
	free(o->ns);
	free(o->host);
	policy_free(&o->policy);
	for (int i = 0; i < o->nsubsets; i++) {
		free(o->subsets[i].name);
		kvlist_free(&o->subsets[i].labels);
		policy_free(&o->subsets[i].policy);
	}
	free(o->subsets);
	strv_free(o->export_to, o->nexport_to);
}

static void ap_values_free(struct ap_values *l)
{
	strv_free(l->v, l->n);
	free(l->cidr);
	free(l->port);
	memset(l, 0, sizeof(*l));
}

static void secret_free(struct secret_obj *o)
{
	free(o->name);
	free(o->ns);
	free(o->type);
	for (int i = 0; i < o->data.n; i++) /* key material: not left in freed memory */
		OPENSSL_cleanse(o->data.v[i].val, strlen(o->data.v[i].val));
	kvlist_free(&o->data);
}

static void gw_free(struct gw_obj *o)
{
	free(o->name);
	free(o->ns);
	kvlist_free(&o->selector);
	for (int i = 0; i < o->nservers; i++) {
		struct gw_server *sv = &o->servers[i];

		free(sv->port_name);
		free(sv->protocol);
		free(sv->bind);
		free(sv->name);
		strv_free(sv->hosts, sv->nhosts);
		free(sv->tls_mode);
		free(sv->credential_name);
		free(sv->credential_ns);
		free(sv->min_tls);
		free(sv->max_tls);
		strv_free(sv->cipher_suites, sv->ncipher_suites);
	}
	free(o->servers);
}

static void pa_free(struct pa_obj *o)
{
	free(o->name);
	free(o->ns);
	free(o->creation_ts);
	kvlist_free(&o->selector);
	free(o->ports);
}

static void ap_rule_free(struct ap_rule *r)
{
	for (int i = 0; i < r->nfrom; i++) {
		struct ap_source *s = &r->from[i];
		struct ap_values *all[] = {&s->principals,	   &s->not_principals,
					   &s->request_principals, &s->not_request_principals,
					   &s->namespaces,	   &s->not_namespaces,
					   &s->service_accounts,   &s->not_service_accounts,
					   &s->ip_blocks,	   &s->not_ip_blocks,
					   &s->remote_ip_blocks,   &s->not_remote_ip_blocks};

		for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++)
			ap_values_free(all[k]);
	}
	for (int i = 0; i < r->nto; i++) {
		struct ap_operation *o = &r->to[i];
		struct ap_values *all[] = {&o->hosts,	&o->not_hosts,	 &o->ports, &o->not_ports,
					   &o->methods, &o->not_methods, &o->paths, &o->not_paths};

		for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++)
			ap_values_free(all[k]);
	}
	for (int i = 0; i < r->nwhen; i++) {
		free(r->when[i].key);
		ap_values_free(&r->when[i].values);
		ap_values_free(&r->when[i].not_values);
	}
	free(r->from);
	free(r->to);
	free(r->when);
}

static void ap_free(struct ap_obj *o)
{
	free(o->name);
	free(o->ns);
	free(o->creation_ts);
	kvlist_free(&o->selector);
	free(o->provider);
	for (int i = 0; i < o->nrules; i++)
		ap_rule_free(&o->rules[i]);
	free(o->rules);
}

static void other_free(struct other_obj *o)
{
	free(o->api_version);
	free(o->kind);
	free(o->name);
	free(o->ns);
	strv_free(o->hosts, o->nhosts);
	free(o->slice_service);
	for (int i = 0; i < o->nslice_eps; i++)
		free(o->slice_eps[i].addr);
	free(o->slice_eps);
	for (int i = 0; i < o->nslice_ports; i++) {
		free(o->slice_ports[i].name);
		free(o->slice_ports[i].protocol);
	}
	free(o->slice_ports);
}

/* What config_retain() needs of a valid object: its identity and its tree. */
struct obj_source {
	char *key;
	const char *file; /* interned */
	struct ynode *root;
	int *refs;     /* configs sharing root (config_load_dir_from), atomic */
	bool retained; /* put back by config_retain: not what its file gives now */
	uint64_t hash; /* ynode_hash(root): config_changes() compares them */
};

static void source_unref(struct obj_source *s)
{
	if (s->refs && __atomic_sub_fetch(s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	ynode_free(s->root);
	free(s->refs);
}

static void rejected_free(struct rejected_obj *r)
{
	free(r->object);
	free(r->key);
	free(r->field);
	free(r->msg);
}

static uint32_t fnv1a32(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

static uint8_t *id_key(uint8_t k[HKEY], uint32_t id)
{
	memset(k, 0, HKEY);
	memcpy(k, &id, sizeof(id));
	return k;
}

static int cmp_pod_name(const void *a, const void *b)
{
	const struct workload_obj *x = *(const struct workload_obj *const *)a,
				  *y = *(const struct workload_obj *const *)b;
	int r = strcmp(x->ns, y->ns);

	return r ? r : strcmp(x->name, y->name);
}

void config_index(struct mesh_config *c)
{
	const struct workload_obj **v = calloc(c->nworkloads + 1, sizeof(*v));
	int n = 0;

	if (!v)
		abort();
	if (c->pod_ids)
		h_free(c->pod_ids);
	else if (!(c->pod_ids = calloc(1, sizeof(*c->pod_ids))))
		abort();
	for (int i = 0; i < c->nworkloads; i++)
		if (c->workloads[i].kind != WL_DEPLOYMENT)
			v[n++] = &c->workloads[i];
	qsort(v, n, sizeof(*v), cmp_pod_name);
	for (int i = 0; i < n; i++) {
		struct workload_obj *w = (struct workload_obj *)v[i];
		char key[512];
		uint8_t k[HKEY];
		uint32_t id;

		snprintf(key, sizeof(key), "%s/%s", w->ns, w->name);
		id = fnv1a32(key) | 1; /* never 0: 0 means "not a known pod" */
		for (int salt = 1; h_get(c->pod_ids, id_key(k, id)); salt++) {
			snprintf(key, sizeof(key), "%s/%s#%d", w->ns, w->name, salt);
			id = fnv1a32(key) | 1;
		}
		w->pod_id = id;
		h_put(c->pod_ids, id_key(k, id), (int)(w - c->workloads));
	}
	free(v);
}

/* name ends in "-" and 8 to 10 digits (a CronJob's Job, named after its schedule time) */
static size_t cronjob_prefix(const char *name)
{
	const char *dash = strrchr(name, '-');
	size_t digits = dash ? strspn(dash + 1, "0123456789") : 0;

	return dash && dash > name && digits >= 8 && digits <= 10 && !dash[1 + digits]
		   ? (size_t)(dash - name)
		   : 0;
}

/*
 * Istio's workload name of a pod (GetDeployMetaFromPod in pkg/kube/controllers): its
 * controller's name, with a ReplicaSet's "-<pod-template-hash>" taken off (the Deployment),
 * and a Job named "<cronjob>-<8+ digits>" read as that CronJob; a pod without a controller is
 * its own workload; the label service.istio.io/workload-name overrides all of it. Lab pods
 * carry no ownerReferences: bpfmesh.io/owner says Deployment.
 */
void config_workload_name(const struct workload_obj *w, char *buf, size_t len)
{
	const char *owner = kv_get(&w->annotations, "bpfmesh.io/owner");
	const char *hash = kv_get(&w->labels, "pod-template-hash");
	const char *dash = strrchr(w->name, '-');
	const char *named = kv_get(&w->labels, "service.istio.io/workload-name");

	if (named && *named) {
		snprintf(buf, len, "%s", named);
	} else if (w->kind == WL_POD && w->owner_kind && w->owner_name) {
		const char *on = w->owner_name;
		size_t n = strlen(on), hn = hash ? strlen(hash) : 0, cj;

		if (!strcmp(w->owner_kind, "ReplicaSet") && hn && n > hn + 1 &&
		    !strcmp(on + n - hn, hash) && on[n - hn - 1] == '-')
			snprintf(buf, len, "%.*s", (int)(n - hn - 1), on);
		else if (!strcmp(w->owner_kind, "Job") && (cj = cronjob_prefix(on)))
			snprintf(buf, len, "%.*s", (int)cj, on);
		else
			snprintf(buf, len, "%s", on);
	} else if (owner && !strcmp(owner, "Deployment") && dash && dash[1] &&
		   strspn(dash + 1, "0123456789") == strlen(dash + 1)) {
		snprintf(buf, len, "%.*s", (int)(dash - w->name), w->name);
	} else {
		snprintf(buf, len, "%s", w->name);
	}
}

uint32_t config_pod_id(const struct workload_obj *w)
{
	return w->pod_id;
}

const struct workload_obj *config_pod_by_id(const struct mesh_config *c, uint32_t id)
{
	uint8_t k[HKEY];
	int *i;

	if (!id || !c->pod_ids)
		return NULL;
	i = h_get(c->pod_ids, id_key(k, id));
	return i ? &c->workloads[*i] : NULL;
}

struct mesh_config *config_new(void)
{
	return calloc(1, sizeof(struct mesh_config));
}

void config_free(struct mesh_config *c)
{
	if (!c)
		return;
	if (c->ids) {
		h_free(c->ids);
		free(c->ids);
	}
	if (c->pod_ids) {
		h_free(c->pod_ids);
		free(c->pod_ids);
	}
	for (int i = 0; i < c->nnamespaces; i++)
		ns_free(&c->namespaces[i]);
	for (int i = 0; i < c->nservices; i++)
		svc_free(&c->services[i]);
	for (int i = 0; i < c->nworkloads; i++)
		wl_free(&c->workloads[i]);
	for (int i = 0; i < c->nvses; i++)
		vs_free(&c->vses[i]);
	for (int i = 0; i < c->ndrs; i++)
		dr_free(&c->drs[i]);
	for (int i = 0; i < c->npas; i++)
		pa_free(&c->pas[i]);
	for (int i = 0; i < c->naps; i++)
		ap_free(&c->aps[i]);
	for (int i = 0; i < c->ngws; i++)
		gw_free(&c->gws[i]);
	for (int i = 0; i < c->nsecrets; i++)
		secret_free(&c->secrets[i]);
	for (int i = 0; i < c->nefs; i++)
		ef_free(&c->efs[i]);
	for (int i = 0; i < c->nrlcms; i++)
		rlcm_free(&c->rlcms[i]);
	for (int i = 0; i < c->ntels; i++)
		tel_free(&c->tels[i]);
	for (int i = 0; i < c->nmeshes; i++)
		mesh_free(&c->meshes[i]);
	for (int i = 0; i < c->nothers; i++)
		other_free(&c->others[i]);
	for (int i = 0; i < c->nrejected; i++)
		rejected_free(&c->rejected[i]);
	for (int i = 0; i < c->nsources; i++) {
		free(c->sources[i].key);
		source_unref(&c->sources[i]);
	}
	free(c->loads);
	if (c->file_ids) {
		h_free(c->file_ids);
		free(c->file_ids);
	}
	if (c->src_ids) {
		h_free(c->src_ids);
		free(c->src_ids);
	}
	free(c->rejected);
	free(c->sources);
	free(c->namespaces);
	free(c->services);
	free(c->workloads);
	free(c->vses);
	free(c->drs);
	free(c->pas);
	free(c->aps);
	free(c->gws);
	free(c->secrets);
	free(c->efs);
	free(c->rlcms);
	free(c->tels);
	free(c->meshes);
	free(c->others);
	strv_free(c->files, c->nfiles);
	free(c);
}

/* ---------------- copying valid objects into the model ---------------- */

/* What every object has: identity and where it starts. */
struct objhead {
	const struct ynode *root, *meta, *spec;
	enum obj_kind kind;
	const char *api_version, *kind_name, *name, *ns;
	struct srcpos pos;
};

static void svc_ports_extract(struct xctx *x, struct svc_obj *o, const struct ynode *ports)
{
	o->ports = xcalloc(x, ports ? ports->n : 0, sizeof(*o->ports));
	for (int i = 0; o->ports && ynode_is_seq(ports) && i < ports->n; i++) {
		const struct ynode *p = ports->items[i], *tp = ymap_get(p, "targetPort");
		struct svc_port *sp = &o->ports[o->nports++];
		const char *proto = ymap_str(p, "protocol");

		sp->name = xdup(x, ymap_str(p, "name"));
		sp->port = (int)ymap_int(p, "port", 0);
		if (ynode_str(tp))
			sp->target_port_name = xdup(x, tp->str);
		else
			sp->target_port = (int)ymap_int(p, "targetPort", sp->port);
		sp->protocol = xdup(x, proto ? proto : "TCP");
		sp->app_protocol = xdup(x, ymap_str(p, "appProtocol"));
	}
}

static void svc_extract(struct xctx *x, struct svc_obj *o, const struct objhead *h)
{
	const struct ynode *cips = ymap_get(h->spec, "clusterIPs");
	const char *cip = ymap_str(h->spec, "clusterIP"), *type = ymap_str(h->spec, "type");

	o->name = xdup(x, h->name);
	o->ns = xdup(x, h->ns);
	o->pos = h->pos;
	kv_from_map(x, &o->labels, ymap_get(h->meta, "labels"));
	o->has_selector = ymap_get(h->spec, "selector") != NULL;
	kv_from_map(x, &o->selector, ymap_get(h->spec, "selector"));
	for (int i = 0; ynode_is_seq(cips) && i < cips->n && i < 2; i++)
		o->cluster_ips[o->ncluster_ips++] = xdup(x, cips->items[i]->str);
	if (!o->ncluster_ips && cip && *cip)
		o->cluster_ips[o->ncluster_ips++] = xdup(x, cip);
	o->type = xdup(x, type ? type : "ClusterIP");
	svc_ports_extract(x, o, ymap_get(h->spec, "ports"));
}

static void containers_extract(struct xctx *x, struct workload_obj *w, const struct ynode *ps)
{
	const struct ynode *cs = ymap_get(ps, "containers");
	int nports = 0, nenv = 0;

	for (int i = 0; ynode_is_seq(cs) && i < cs->n; i++) {
		nports += ymap_len(cs->items[i], "ports");
		nenv += ymap_len(cs->items[i], "env");
	}
	w->ports = xcalloc(x, nports, sizeof(*w->ports));
	w->env.v = xcalloc(x, nenv, sizeof(*w->env.v));
	for (int i = 0; w->ports && w->env.v && ynode_is_seq(cs) && i < cs->n; i++) {
		const struct ynode *ports = ymap_get(cs->items[i], "ports");
		const struct ynode *env = ymap_get(cs->items[i], "env");

		for (int k = 0; ynode_is_seq(ports) && k < ports->n; k++) {
			const char *proto = ymap_str(ports->items[k], "protocol");
			struct container_port *cp = &w->ports[w->nports++];

			cp->name = xdup(x, ymap_str(ports->items[k], "name"));
			cp->port = (int)ymap_int(ports->items[k], "containerPort", 0);
			cp->protocol = xdup(x, proto ? proto : "TCP");
		}
		for (int k = 0; ynode_is_seq(env) && k < env->n; k++) {
			const char *val = ymap_str(env->items[k], "value");

			if (!val)
				continue; /* valueFrom: resolved by the kubelet, not known here */
			w->env.v[w->env.n].key = xdup(x, ymap_str(env->items[k], "name"));
			w->env.v[w->env.n++].val = xdup(x, val);
		}
	}
	w->node_name = xdup(x, ymap_str(ps, "nodeName"));
	w->host_network = ymap_bool(ps, "hostNetwork", false);
	w->service_account =
	    xdup(x, ymap_str(ps, "serviceAccountName") ? ymap_str(ps, "serviceAccountName")
						       : ymap_str(ps, "serviceAccount"));
}

static void wl_head(struct xctx *x, struct workload_obj *w, const struct objhead *h,
		    enum workload_kind kind)
{
	w->kind = kind;
	w->name = xdup(x, h->name);
	w->ns = xdup(x, h->ns);
	w->pos = h->pos;
	w->replicas = 1;
	kv_from_map(x, &w->meta_labels, ymap_get(h->meta, "labels"));
}

static void deploy_extract(struct xctx *x, struct workload_obj *w, const struct objhead *h)
{
	const struct ynode *tmpl = ymap_get(h->spec, "template");
	const struct ynode *tmeta = ymap_get(tmpl, "metadata");

	wl_head(x, w, h, WL_DEPLOYMENT);
	w->replicas = (int)ymap_int(h->spec, "replicas", 1);
	kv_from_map(x, &w->labels, ymap_get(tmeta, "labels"));
	kv_from_map(x, &w->annotations, ymap_get(tmeta, "annotations"));
	containers_extract(x, w, ymap_get(tmpl, "spec"));
}

/* Readiness and the controller owner (what Istio names the workload after). */
static void pod_state_extract(struct xctx *x, struct workload_obj *w, const struct objhead *h,
			      const struct ynode *st)
{
	const struct ynode *conds = ymap_get(st, "conditions"), *owners;
	const char *phase = ymap_str(st, "phase");

	for (int i = 0; ynode_is_seq(conds) && i < conds->n; i++) {
		const char *t = ymap_str(conds->items[i], "type"),
			   *s = ymap_str(conds->items[i], "status");

		if (t && !strcmp(t, "Ready"))
			w->not_ready = !s || strcmp(s, "True");
	}
	if (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")))
		w->not_ready = true;
	w->terminating = !ynode_is_null(ymap_get(h->meta, "deletionTimestamp"));
	owners = ymap_get(h->meta, "ownerReferences");
	for (int i = 0; ynode_is_seq(owners) && i < owners->n; i++)
		if (ymap_bool(owners->items[i], "controller", false)) {
			w->owner_kind = xdup(x, ymap_str(owners->items[i], "kind"));
			w->owner_name = xdup(x, ymap_str(owners->items[i], "name"));
			break;
		}
}

/* The node's addresses, by family: status.hostIP and status.hostIPs (dual-stack nodes; the
 * first is hostIP, of either family). host_ip is the IPv4 one (where the node's agent
 * listens), host_ip6 the IPv6 one. */
static void host_ips_extract(struct xctx *x, struct workload_obj *w, const struct ynode *st)
{
	const struct ynode *ips = ymap_get(st, "hostIPs");
	const char *first = ymap_str(st, "hostIP");

	for (int i = -1; i < (ynode_is_seq(ips) ? ips->n : 0); i++) {
		const char *ip = i < 0 ? first : ymap_str(ips->items[i], "ip");
		char **to;

		if (!ip || !*ip)
			continue;
		to = strchr(ip, ':') ? &w->host_ip6 : &w->host_ip;
		if (!*to)
			*to = xdup(x, ip);
	}
}

static void pod_extract(struct xctx *x, struct workload_obj *w, const struct objhead *h)
{
	const struct ynode *st = ymap_get(h->root, "status"), *ips = ymap_get(st, "podIPs");
	const char *phase = ymap_str(st, "phase");

	/* a pod that has run to completion keeps its podIP in the API, but the node gives the
	 * address to the next pod: it is no one's address any more */
	if (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")))
		ips = st = NULL;
	wl_head(x, w, h, WL_POD);
	w->uid = xdup(x, ymap_str(h->meta, "uid"));
	kv_from_map(x, &w->labels, ymap_get(h->meta, "labels"));
	kv_from_map(x, &w->annotations, ymap_get(h->meta, "annotations"));
	containers_extract(x, w, h->spec);
	for (int i = 0; ynode_is_seq(ips) && i < ips->n && w->naddresses < 2; i++)
		if (ymap_str(ips->items[i], "ip"))
			w->addresses[w->naddresses++] = xdup(x, ymap_str(ips->items[i], "ip"));
	if (!w->naddresses && ymap_str(st, "podIP"))
		w->addresses[w->naddresses++] = xdup(x, ymap_str(st, "podIP"));
	host_ips_extract(x, w, st);
	pod_state_extract(x, w, h, st);
}

static void we_extract(struct xctx *x, struct workload_obj *w, const struct objhead *h)
{
	const struct ynode *ports = ymap_get(h->spec, "ports");
	const char *addr = ymap_str(h->spec, "address");

	wl_head(x, w, h, WL_WORKLOADENTRY);
	kv_from_map(x, &w->labels, ymap_get(h->spec, "labels"));
	kv_from_map(x, &w->annotations, ymap_get(h->meta, "annotations"));
	if (addr && *addr)
		w->addresses[w->naddresses++] = xdup(x, addr);
	w->ports = xcalloc(x, ynode_is_map(ports) ? ports->n : 0, sizeof(*w->ports));
	for (int i = 0; w->ports && ynode_is_map(ports) && i < ports->n; i++) {
		int64_t port = 0;

		ynode_int(ports->pairs[i].val, &port);
		w->ports[w->nports].name = xdup(x, ports->pairs[i].key);
		w->ports[w->nports].port = (int)port;
		w->ports[w->nports++].protocol = xdup(x, "TCP");
	}
	w->service_account = xdup(x, ymap_str(h->spec, "serviceAccount"));
	w->network = xdup(x, ymap_str(h->spec, "network"));
	w->weight = (int)ymap_int(h->spec, "weight", 0);
}

static void route_dests_extract(struct xctx *x, struct vs_route *r, const struct ynode *l,
				const char *file)
{
	r->dests = xcalloc(x, ynode_is_seq(l) ? l->n : 0, sizeof(*r->dests));
	for (int i = 0; r->dests && ynode_is_seq(l) && i < l->n; i++) {
		const struct ynode *d = ymap_get(l->items[i], "destination");
		struct route_dest *rd = &r->dests[r->ndests++];

		rd->host = xdup(x, ymap_str(d, "host"));
		rd->subset = xdup(x, ymap_str(d, "subset"));
		rd->port = (int)ymap_int(ymap_get(d, "port"), "number", 0);
		rd->has_weight = ymap_get(l->items[i], "weight") != NULL;
		rd->weight = (int)ymap_int(l->items[i], "weight", 0);
		header_ops_extract(x, &rd->req_headers,
				   ymap_get(ymap_get(l->items[i], "headers"), "request"));
		header_ops_extract(x, &rd->resp_headers,
				   ymap_get(ymap_get(l->items[i], "headers"), "response"));
		rd->pos.file = file;
		rd->pos.line = l->items[i]->line;
	}
}

static void http_flags(struct vs_route *r, const struct ynode *n)
{
	const struct ynode *dests = ymap_get(n, "route");

	r->has_retries = ymap_get(n, "retries");
	r->has_timeout = ymap_get(n, "timeout");
	r->has_fault = ymap_get(n, "fault");
	r->has_mirror = ymap_get(n, "mirror") || ymap_get(n, "mirrors");
	r->has_rewrite = ymap_get(n, "rewrite");
	r->has_redirect = ymap_get(n, "redirect");
	r->has_headers_op = ymap_get(n, "headers");
	for (int i = 0; ynode_is_seq(dests) && i < dests->n; i++)
		r->has_headers_op |= ymap_get(dests->items[i], "headers") != NULL;
	r->has_cors = ymap_get(n, "corsPolicy");
	r->has_direct_response = ymap_get(n, "directResponse");
	r->has_delegate = ymap_get(n, "delegate");
}

static void vs_routes_extract(struct xctx *x, struct vs_obj *o, const struct objhead *h)
{
	static const struct {
		const char *key;
		enum route_kind kind;
	} lists[] = {{"http", ROUTE_HTTP}, {"tls", ROUTE_TLS}, {"tcp", ROUTE_TCP}};
	int total = 0;

	for (int k = 0; k < 3; k++)
		total += ymap_len(h->spec, lists[k].key);
	o->routes = xcalloc(x, total, sizeof(*o->routes));
	for (int k = 0; o->routes && k < 3; k++) {
		const struct ynode *l = ymap_get(h->spec, lists[k].key);

		for (int i = 0; ynode_is_seq(l) && i < l->n; i++) {
			struct vs_route *r = &o->routes[o->nroutes++];

			r->kind = lists[k].kind;
			r->name = xdup(x, ymap_str(l->items[i], "name"));
			r->pos.file = h->pos.file;
			r->pos.line = l->items[i]->line;
			r->has_match = ymap_len(l->items[i], "match") > 0;
			if (r->kind == ROUTE_HTTP) {
				http_flags(r, l->items[i]);
				http_route_extract(x, r, l->items[i], h->pos.file);
			} else {
				l4_matches_extract(x, r, l->items[i]);
			}
			route_dests_extract(x, r, ymap_get(l->items[i], "route"), h->pos.file);
		}
	}
}

static void vs_extract(struct xctx *x, struct vs_obj *o, const struct objhead *h)
{
	o->name = xdup(x, h->name);
	o->ns = xdup(x, h->ns);
	o->pos = h->pos;
	o->hosts = strv_from_seq(x, ymap_get(h->spec, "hosts"), &o->nhosts);
	o->gateways = strv_from_seq(x, ymap_get(h->spec, "gateways"), &o->ngateways);
	o->export_to = strv_from_seq(x, ymap_get(h->spec, "exportTo"), &o->nexport_to);
	{
		struct kvlist ann = {0};

		kv_from_map(x, &ann, ymap_get(h->meta, "annotations"));
		o->per_request = kv_get(&ann, "bpfmesh.io/per-request") &&
				 !strcmp(kv_get(&ann, "bpfmesh.io/per-request"), "true");
		kvlist_free(&ann);
	}
	vs_routes_extract(x, o, h);
}

static enum lb_simple lb_from_name(const char *s)
{
	static const struct {
		const char *name;
		enum lb_simple lb;
	} t[] = {{"LEAST_REQUEST", LB_LEAST_REQUEST},
		 {"ROUND_ROBIN", LB_ROUND_ROBIN},
		 {"RANDOM", LB_RANDOM},
		 {"PASSTHROUGH", LB_PASSTHROUGH},
		 {"LEAST_CONN", LB_LEAST_CONN}};

	for (size_t i = 0; s && i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(s, t[i].name) == 0)
			return t[i].lb;
	return LB_UNSET; /* absent or UNSPECIFIED */
}

static void policy_extract(struct xctx *x, struct traffic_policy *p, const struct ynode *tp)
{
	const struct ynode *lb = ymap_get(tp, "loadBalancer"), *ch = ymap_get(lb, "consistentHash");
	const struct ynode *cp = ymap_get(tp, "connectionPool"), *tcp = ymap_get(cp, "tcp");
	const struct ynode *http = ymap_get(cp, "http"), *cookie = ymap_get(ch, "httpCookie");
	const char *up = ymap_str(http, "h2UpgradePolicy");
	const struct ynode *od = ymap_get(tp, "outlierDetection");
	int64_t legacy = ymap_int(od, "consecutiveErrors", 0);

	p->has_lb = lb != NULL;
	p->lb_simple = lb_from_name(ymap_str(lb, "simple"));
	p->lb_hash = ch != NULL;
	p->lb_hash_source_ip = ymap_bool(ch, "useSourceIp", false);
	p->lb_hash_other = ymap_get(ch, "httpHeaderName") || ymap_get(ch, "httpCookie") ||
			   ymap_get(ch, "httpQueryParameterName");
	p->has_connection_pool = cp != NULL;
	p->has_outlier = od != NULL;
	p->has_tls = ymap_get(tp, "tls") != NULL;
	p->has_port_level = ymap_get(tp, "portLevelSettings") != NULL;
	p->max_connections = ymap_int(tcp, "maxConnections", -1);
	p->connect_timeout_ms = duration_ms(ymap_get(tcp, "connectTimeout"));
	/* consecutiveErrors is the deprecated spelling of consecutive5xxErrors; the new field
	 * wins when both are set, as in Istio. */
	p->consecutive_5xx = (int)ymap_int(od, "consecutive5xxErrors", legacy > 0 ? legacy : -1);
	p->consecutive_gateway = (int)ymap_int(od, "consecutiveGatewayErrors", -1);
	p->interval_ms = duration_ms(ymap_get(od, "interval"));
	p->base_ejection_ms = duration_ms(ymap_get(od, "baseEjectionTime"));
	p->max_ejection_percent = (int)ymap_int(od, "maxEjectionPercent", -1);
	p->min_health_percent = (int)ymap_int(od, "minHealthPercent", -1);
	p->hash_header = xdup(x, ymap_str(ch, "httpHeaderName"));
	p->hash_cookie = xdup(x, ymap_str(cookie, "name"));
	p->hash_cookie_path = xdup(x, ymap_str(cookie, "path"));
	p->hash_cookie_ttl_ms = duration_ms(ymap_get(cookie, "ttl"));
	p->hash_query = xdup(x, ymap_str(ch, "httpQueryParameterName"));
	p->ring_size = ymap_int(
	    ymap_get(ch, "ringHash"), "minimumRingSize",
	    ymap_int(ch, "minimumRingSize", ymap_int(ymap_get(ch, "maglev"), "tableSize", -1)));
	p->has_http_pool = http != NULL;
	p->http1_max_pending = ymap_int(http, "http1MaxPendingRequests", -1);
	p->http2_max_requests = ymap_int(http, "http2MaxRequests", -1);
	p->max_requests_per_conn = ymap_int(http, "maxRequestsPerConnection", -1);
	p->max_retries = ymap_int(http, "maxRetries", -1);
	p->idle_timeout_ms = duration_ms(ymap_get(http, "idleTimeout"));
	p->h2_upgrade = up && !strcmp(up, "UPGRADE");
}

static void dr_extract(struct xctx *x, struct dr_obj *o, const struct objhead *h)
{
	const struct ynode *tp = ymap_get(h->spec, "trafficPolicy");
	const struct ynode *subsets = ymap_get(h->spec, "subsets");

	o->name = xdup(x, h->name);
	o->ns = xdup(x, h->ns);
	o->pos = h->pos;
	o->host = xdup(x, ymap_str(h->spec, "host"));
	o->has_policy = tp != NULL;
	policy_extract(x, &o->policy, tp);
	o->export_to = strv_from_seq(x, ymap_get(h->spec, "exportTo"), &o->nexport_to);
	o->subsets = xcalloc(x, ynode_is_seq(subsets) ? subsets->n : 0, sizeof(*o->subsets));
	for (int i = 0; o->subsets && ynode_is_seq(subsets) && i < subsets->n; i++) {
		const struct ynode *s = subsets->items[i];
		struct dr_subset *ds = &o->subsets[o->nsubsets++];

		ds->name = xdup(x, ymap_str(s, "name"));
		ds->pos.file = h->pos.file;
		ds->pos.line = s->line;
		kv_from_map(x, &ds->labels, ymap_get(s, "labels"));
		ds->has_policy = ymap_get(s, "trafficPolicy") != NULL;
		policy_extract(x, &ds->policy, ymap_get(s, "trafficPolicy"));
	}
}

/* ---------------- security kinds ---------------- */

static enum mtls_mode mtls_from_name(const char *s)
{
	static const char *const names[] = {"UNSET", "DISABLE", "PERMISSIVE", "STRICT"};

	for (int i = 0; s && i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return (enum mtls_mode)i;
	return MTLS_UNSET;
}

int config_parse_prefix(const char *s, struct ip_prefix *out)
{
	char addr[64];
	const char *slash = s ? strchr(s, '/') : NULL;
	size_t alen = slash ? (size_t)(slash - s) : (s ? strlen(s) : 0);
	uint8_t v4[4];
	long bits;
	char *end;

	memset(out, 0, sizeof(*out));
	if (!s || alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, s, alen);
	addr[alen] = 0;
	if (inet_pton(AF_INET, addr, v4) == 1) {
		out->v4 = true;
		out->ip[10] = out->ip[11] = 0xff;
		memcpy(out->ip + 12, v4, 4);
		bits = 32;
	} else if (inet_pton(AF_INET6, addr, out->ip) == 1) {
		bits = 128;
	} else {
		return -1;
	}
	if (slash) {
		long max = bits;

		bits = strtol(slash + 1, &end, 10);
		if (*end || !slash[1] || bits < 0 || bits > max)
			return -1;
	}
	out->len = (int)bits + (out->v4 ? 96 : 0);
	/* A block written with host bits set (10.1.2.3/8) means its network, as in Envoy. */
	for (int i = 0; i < 16; i++) {
		int keep = out->len - 8 * i;

		if (keep <= 0)
			out->ip[i] = 0;
		else if (keep < 8)
			out->ip[i] &= (uint8_t)(0xff << (8 - keep));
	}
	return 0;
}

enum vkind { V_STR = 0, V_IP, V_PORT };

static void values_extract(struct xctx *x, struct ap_values *l, const struct ynode *seq,
			   enum vkind kind)
{
	l->v = strv_from_seq(x, seq, &l->n);
	if (!l->n || kind == V_STR)
		return;
	if (kind == V_IP)
		l->cidr = xcalloc(x, l->n, sizeof(*l->cidr));
	else
		l->port = xcalloc(x, l->n, sizeof(*l->port));
	for (int i = 0; i < l->n && (l->cidr || l->port); i++) {
		if (l->cidr && l->v[i])
			config_parse_prefix(l->v[i], &l->cidr[i]); /* validated: cannot fail */
		else if (l->port && l->v[i])
			l->port[i] = atoi(l->v[i]);
	}
}

static void source_extract(struct xctx *x, struct ap_source *s, const struct ynode *n)
{
	static const struct {
		const char *key;
		size_t off;
		enum vkind kind;
	} f[] = {
#define F(k, m, t) {k, offsetof(struct ap_source, m), t}
	    F("principals", principals, V_STR),
	    F("notPrincipals", not_principals, V_STR),
	    F("requestPrincipals", request_principals, V_STR),
	    F("notRequestPrincipals", not_request_principals, V_STR),
	    F("namespaces", namespaces, V_STR),
	    F("notNamespaces", not_namespaces, V_STR),
	    F("serviceAccounts", service_accounts, V_STR),
	    F("notServiceAccounts", not_service_accounts, V_STR),
	    F("ipBlocks", ip_blocks, V_IP),
	    F("notIpBlocks", not_ip_blocks, V_IP),
	    F("remoteIpBlocks", remote_ip_blocks, V_IP),
	    F("notRemoteIpBlocks", not_remote_ip_blocks, V_IP),
#undef F
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		values_extract(x, (struct ap_values *)((char *)s + f[i].off), ymap_get(n, f[i].key),
			       f[i].kind);
}

static void operation_extract(struct xctx *x, struct ap_operation *o, const struct ynode *n)
{
	values_extract(x, &o->hosts, ymap_get(n, "hosts"), V_STR);
	values_extract(x, &o->not_hosts, ymap_get(n, "notHosts"), V_STR);
	values_extract(x, &o->ports, ymap_get(n, "ports"), V_PORT);
	values_extract(x, &o->not_ports, ymap_get(n, "notPorts"), V_PORT);
	values_extract(x, &o->methods, ymap_get(n, "methods"), V_STR);
	values_extract(x, &o->not_methods, ymap_get(n, "notMethods"), V_STR);
	values_extract(x, &o->paths, ymap_get(n, "paths"), V_STR);
	values_extract(x, &o->not_paths, ymap_get(n, "notPaths"), V_STR);
}

static void condition_extract(struct xctx *x, struct ap_condition *c, const struct ynode *n)
{
	const char *key = ymap_str(n, "key");
	enum vkind kind = V_STR;

	if (key && (!strcmp(key, "source.ip") || !strcmp(key, "remote.ip") ||
		    !strcmp(key, "destination.ip")))
		kind = V_IP;
	else if (key && !strcmp(key, "destination.port"))
		kind = V_PORT;
	c->key = xdup(x, key);
	values_extract(x, &c->values, ymap_get(n, "values"), kind);
	values_extract(x, &c->not_values, ymap_get(n, "notValues"), kind);
}

static void rule_extract(struct xctx *x, struct ap_rule *r, const struct ynode *n)
{
	const struct ynode *from = ymap_get(n, "from"), *to = ymap_get(n, "to");
	const struct ynode *when = ymap_get(n, "when");

	r->from = xcalloc(x, ynode_is_seq(from) ? from->n : 0, sizeof(*r->from));
	r->to = xcalloc(x, ynode_is_seq(to) ? to->n : 0, sizeof(*r->to));
	r->when = xcalloc(x, ynode_is_seq(when) ? when->n : 0, sizeof(*r->when));
	if (!r->from || !r->to || !r->when)
		return;
	for (int i = 0; ynode_is_seq(from) && i < from->n; i++)
		source_extract(x, &r->from[r->nfrom++], ymap_get(from->items[i], "source"));
	for (int i = 0; ynode_is_seq(to) && i < to->n; i++)
		operation_extract(x, &r->to[r->nto++], ymap_get(to->items[i], "operation"));
	for (int i = 0; ynode_is_seq(when) && i < when->n; i++)
		condition_extract(x, &r->when[r->nwhen++], when->items[i]);
}

static void pa_extract(struct xctx *x, struct pa_obj *o, const struct objhead *h)
{
	const struct ynode *plm = ymap_get(h->spec, "portLevelMtls");

	o->name = xdup(x, h->name);
	o->ns = xdup(x, h->ns);
	o->pos = h->pos;
	o->creation_ts = xdup(x, ynode_text(ymap_get(h->meta, "creationTimestamp")));
	kv_from_map(x, &o->selector, ymap_get(ymap_get(h->spec, "selector"), "matchLabels"));
	o->mode = mtls_from_name(ymap_str(ymap_get(h->spec, "mtls"), "mode"));
	o->ports = xcalloc(x, ynode_is_map(plm) ? plm->n : 0, sizeof(*o->ports));
	for (int i = 0; o->ports && ynode_is_map(plm) && i < plm->n; i++) {
		o->ports[o->nports].port = atoi(plm->pairs[i].key);
		o->ports[o->nports++].mode = mtls_from_name(ymap_str(plm->pairs[i].val, "mode"));
	}
}

/* base64 as the API writes Secret data (whitespace ignored); NULL when it is not. */
static char *b64_text(const char *s)
{
	size_t n = 0, len = strlen(s);
	char *clean = malloc(len + 1);
	unsigned char *out;
	int m, pad = 0;

	if (!clean)
		return NULL;
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)s[i]))
			clean[n++] = s[i];
	clean[n] = 0;
	if (n % 4) {
		free(clean);
		return NULL;
	}
	out = malloc(n / 4 * 3 + 1);
	m = out ? EVP_DecodeBlock(out, (const unsigned char *)clean, (int)n) : -1;
	pad = (n && clean[n - 1] == '=') + (n > 1 && clean[n - 2] == '=');
	free(clean);
	if (m < 0) {
		free(out);
		return NULL;
	}
	out[m - pad] = 0;
	return (char *)out;
}

static void secret_extract(struct xctx *x, struct secret_obj *o, const struct objhead *h)
{
	const struct ynode *data = ymap_get(h->root, "data"), *sd = ymap_get(h->root, "stringData");
	int n = (ynode_is_map(data) ? data->n : 0) + (ynode_is_map(sd) ? sd->n : 0);

	o->name = xdup(x, h->name);
	o->ns = xdup(x, h->ns);
	o->pos = h->pos;
	o->type = xdup(x, ymap_str(h->root, "type"));
	o->data.v = xcalloc(x, n, sizeof(*o->data.v));
	for (int pass = 0; o->data.v && pass < 2; pass++) {
		const struct ynode *m = pass ? sd : data;

		for (int i = 0; ynode_is_map(m) && i < m->n; i++) {
			const char *v = ynode_text(m->pairs[i].val);
			char *val = pass ? xdup(x, v ? v : "") : b64_text(v ? v : "");
			int k;

			if (!val) /* (validation refused what is not base64) */
				continue;
			for (k = 0; k < o->data.n && strcmp(o->data.v[k].key, m->pairs[i].key); k++)
				;
			if (k < o->data.n) { /* stringData wins, as the API server merges it */
				OPENSSL_cleanse(o->data.v[k].val, strlen(o->data.v[k].val));
				free(o->data.v[k].val);
			} else {
				o->data.v[k].key = xdup(x, m->pairs[i].key);
				o->data.n++;
			}
			o->data.v[k].val = val;
		}
	}
}

/* A ConfigMap ratelimit-config: every data key ending in .yaml that is a valid
 * envoyproxy/ratelimit config (validation reported the others). */
static void rlcm_extract(struct xctx *x, struct rlcm_obj *o, const struct objhead *h)
{
	const struct ynode *data = ymap_get(h->root, "data");

	o->name = xdup(x, h->name);
	o->ns = xdup(x, h->ns);
	o->pos = h->pos;
	o->doms = xcalloc(x, ynode_is_map(data) ? data->n : 0, sizeof(*o->doms));
	for (int i = 0; o->doms && ynode_is_map(data) && i < data->n; i++) {
		const char *k = data->pairs[i].key, *t = ynode_text(data->pairs[i].val);
		size_t kl = strlen(k);
		char src[400], err[256];

		if (kl < 5 || strcmp(k + kl - 5, ".yaml") || !t)
			continue;
		snprintf(src, sizeof(src), "ConfigMap %s/%s %s", h->ns, h->name, k);
		if (rl_domain_parse(t, strlen(t), src, &o->doms[o->ndoms], err, sizeof(err)) == 0)
			o->ndoms++;
	}
}

static void gw_extract(struct xctx *x, struct gw_obj *o, const struct objhead *h)
{
	const struct ynode *servers = ymap_get(h->spec, "servers");
	const char *cns =
	    ymap_str(ymap_get(h->meta, "annotations"), "bpfmesh.io/credential-namespace");

	o->name = xdup(x, h->name);
	o->ns = xdup(x, h->ns);
	o->pos = h->pos;
	kv_from_map(x, &o->selector, ymap_get(h->spec, "selector"));
	o->servers = xcalloc(x, ynode_is_seq(servers) ? servers->n : 0, sizeof(*o->servers));
	for (int i = 0; o->servers && ynode_is_seq(servers) && i < servers->n; i++) {
		const struct ynode *n = servers->items[i], *port = ymap_get(n, "port"),
				   *tls = ymap_get(n, "tls");
		struct gw_server *sv = &o->servers[o->nservers++];

		sv->pos.file = h->pos.file;
		sv->pos.line = n->line;
		sv->port = (uint32_t)ymap_int(port, "number", 0);
		sv->port_name = xdup(x, ymap_str(port, "name"));
		sv->protocol = xdup(x, ymap_str(port, "protocol"));
		sv->bind = xdup(x, ymap_str(n, "bind"));
		sv->name = xdup(x, ymap_str(n, "name"));
		sv->hosts = strv_from_seq(x, ymap_get(n, "hosts"), &sv->nhosts);
		sv->has_tls = tls != NULL;
		sv->tls_mode = xdup(x, ymap_str(tls, "mode"));
		sv->credential_name = xdup(x, ymap_str(tls, "credentialName"));
		/* (a Gateway API Gateway's certificates are in its own namespace) */
		sv->credential_ns = xdup(x, gwapi_derived(h->name) ? cns : NULL);
		sv->https_redirect = ymap_bool(tls, "httpsRedirect", false);
		sv->min_tls = xdup(x, ymap_str(tls, "minProtocolVersion"));
		sv->max_tls = xdup(x, ymap_str(tls, "maxProtocolVersion"));
		sv->cipher_suites =
		    strv_from_seq(x, ymap_get(tls, "cipherSuites"), &sv->ncipher_suites);
		sv->has_files = ymap_get(tls, "serverCertificate") || ymap_get(tls, "privateKey");
	}
}

static void ap_extract(struct xctx *x, struct ap_obj *o, const struct objhead *h)
{
	static const char *const actions[] = {"ALLOW", "DENY", "AUDIT", "CUSTOM"};
	const struct ynode *sel = ymap_get(h->spec, "selector"),
			   *rules = ymap_get(h->spec, "rules");
	const char *action = ymap_str(h->spec, "action");

	o->name = xdup(x, h->name);
	o->ns = xdup(x, h->ns);
	o->pos = h->pos;
	o->creation_ts = xdup(x, ynode_text(ymap_get(h->meta, "creationTimestamp")));
	o->has_selector = sel != NULL;
	kv_from_map(x, &o->selector, ymap_get(sel, "matchLabels"));
	o->has_target_ref = ymap_get(h->spec, "targetRef") || ymap_len(h->spec, "targetRefs") > 0;
	for (int i = 0; action && i < 4; i++)
		if (strcmp(action, actions[i]) == 0)
			o->action = (enum ap_action)i;
	o->provider = xdup(x, ymap_str(ymap_get(h->spec, "provider"), "name"));
	o->has_rules = rules != NULL;
	o->rules = xcalloc(x, ynode_is_seq(rules) ? rules->n : 0, sizeof(*o->rules));
	for (int i = 0; o->rules && ynode_is_seq(rules) && i < rules->n; i++) {
		struct ap_rule *r = &o->rules[o->nrules++];

		r->pos.file = h->pos.file;
		r->pos.line = rules->items[i]->line;
		rule_extract(x, r, rules->items[i]);
	}
}

/* An EndpointSlice's conditions, one entry per address (its endpoints are top level). */
static void slice_extract(struct xctx *x, struct other_obj *o, const struct objhead *h)
{
	const struct ynode *eps = ymap_get(h->root, "endpoints"), *ports = ymap_get(h->root, "ports");
	int n = 0;

	o->slice_ports = xcalloc(x, ynode_is_seq(ports) ? ports->n : 0, sizeof(*o->slice_ports));
	for (int i = 0; o->slice_ports && ynode_is_seq(ports) && i < ports->n; i++) {
		const char *proto = ymap_str(ports->items[i], "protocol");
		struct container_port *sp = &o->slice_ports[o->nslice_ports++];

		sp->name = xdup(x, ymap_str(ports->items[i], "name"));
		sp->port = (int)ymap_int(ports->items[i], "port", 0);
		sp->protocol = xdup(x, proto ? proto : "TCP");
	}

	o->slice_service = xdup(x, ymap_str(ymap_get(h->meta, "labels"),
						 "kubernetes.io/service-name"));
	for (int i = 0; ynode_is_seq(eps) && i < eps->n; i++)
		n += ymap_len(eps->items[i], "addresses");
	o->slice_eps = xcalloc(x, n, sizeof(*o->slice_eps));
	for (int i = 0; o->slice_eps && ynode_is_seq(eps) && i < eps->n; i++) {
		const struct ynode *c = ymap_get(eps->items[i], "conditions"),
				   *as = ymap_get(eps->items[i], "addresses");
		bool ready = ymap_bool(c, "ready", true);

		for (int k = 0; ynode_is_seq(as) && k < as->n; k++) {
			struct slice_ep *e = &o->slice_eps[o->nslice_eps];

			if (!ynode_str(as->items[k]))
				continue;
			e->addr = xdup(x, ynode_str(as->items[k]));
			e->ready = ready;
			e->serving = ymap_bool(c, "serving", ready);
			e->terminating = ymap_bool(c, "terminating", false);
			o->nslice_eps++;
		}
	}
}

static void other_extract(struct xctx *x, struct other_obj *o, const struct objhead *h)
{
	o->api_version = xdup(x, h->api_version);
	o->kind = xdup(x, h->kind_name);
	o->name = xdup(x, h->name);
	o->ns = xdup(x, h->ns);
	o->pos = h->pos;
	if (h->kind == OBJ_SERVICEENTRY)
		o->hosts = strv_from_seq(x, ymap_get(h->spec, "hosts"), &o->nhosts);
	if (h->kind == OBJ_ENDPOINTSLICE)
		slice_extract(x, o, h);
}

/* ---------------- adding objects, duplicates ---------------- */

/*
 * The same object again, later in the same file or in a later file, is what `kubectl apply -f`
 * turns into "created" then "configured": the later document replaces the earlier one in
 * place (keeping its position, which matters where the oldest object wins), with a warning.
 */
static void report_replace(struct vctx *v, const struct srcpos *old)
{
	vctx_warn(v, NULL, NULL,
		  "duplicate object: replaces the one at %s:%d (kubectl apply keeps the last)",
		  old->file, old->line);
}

static size_t group_len(const char *api_version)
{
	const char *slash = strrchr(api_version, '/');

	return slash ? (size_t)(slash - api_version) : 0;
}

/* The index of the object with this identity in its array, or NULL; tag tells arrays apart. */
static int *id_get(struct mesh_config *c, const char *tag, const char *ns, const char *name,
		   bool create)
{
	uint8_t k[HKEY];
	char t[300];
	int *i;

	if (!c->ids) {
		c->ids = calloc(1, sizeof(*c->ids));
		if (!c->ids)
			abort();
	}
	snprintf(t, sizeof(t), "%s", tag);
	h_strkey(k, t, ns ? ns : "", name);
	i = h_get(c->ids, k);
	if (!i && create) {
		h_put(c->ids, k, -1);
		i = h_get(c->ids, k);
	}
	return i;
}

/* Add obj to arr, or replace the object of the same identity (kubectl apply keeps the last),
 * reporting it to v when v is not NULL; identities are looked up in c->ids, not by scanning. */
#define ADD_SLOT(arr, n, obj, freefn, v, tag, ns_, name_)                                          \
	do {                                                                                       \
		int _i = *id_get(c, (tag), (ns_), (name_), true);                                  \
		if (_i >= 0 && _i < (n)) {                                                         \
			if (v)                                                                     \
				report_replace((v), &(arr)[_i].pos);                               \
			freefn(&(arr)[_i]);                                                        \
			(arr)[_i] = *(obj);                                                        \
			return 0;                                                                  \
		}                                                                                  \
		void *_slot = grow((void **)&(arr), &(n), sizeof(*(obj)));                         \
		if (!_slot)                                                                        \
			return -1;                                                                 \
		memcpy(_slot, (obj), sizeof(*(obj)));                                              \
		*id_get(c, (tag), (ns_), (name_), true) = (n)-1;                                   \
		return 0;                                                                          \
	} while (0)

static int add_ns(struct mesh_config *c, struct vctx *v, struct ns_obj *o)
{
	ADD_SLOT(c->namespaces, c->nnamespaces, o, ns_free, v, "Namespace", "", o->name);
}

static int add_svc(struct mesh_config *c, struct vctx *v, struct svc_obj *o)
{
	ADD_SLOT(c->services, c->nservices, o, svc_free, v, "Service", o->ns, o->name);
}

static int add_wl(struct mesh_config *c, struct vctx *v, struct workload_obj *o)
{
	static const char *const tags[] = {"Deployment", "Pod", "WorkloadEntry"};

	ADD_SLOT(c->workloads, c->nworkloads, o, wl_free, v, tags[o->kind], o->ns, o->name);
}

static int add_vs(struct mesh_config *c, struct vctx *v, struct vs_obj *o)
{
	ADD_SLOT(c->vses, c->nvses, o, vs_free, v, "VirtualService", o->ns, o->name);
}

static int add_dr(struct mesh_config *c, struct vctx *v, struct dr_obj *o)
{
	ADD_SLOT(c->drs, c->ndrs, o, dr_free, v, "DestinationRule", o->ns, o->name);
}

static int add_other(struct mesh_config *c, struct vctx *v, struct other_obj *o)
{
	char tag[300];

	snprintf(tag, sizeof(tag), "%.*s/%s", (int)group_len(o->api_version), o->api_version,
		 o->kind);
	ADD_SLOT(c->others, c->nothers, o, other_free, v, tag, o->ns, o->name);
}

/*
 * The typed copies of the security kinds, added next to their other_obj identity copy, which
 * is the one that reports a replacement; these follow it silently. `order` is the slot's
 * index (a replacement keeps its slot, as kubectl keeps the object's age).
 */
static int add_pa(struct mesh_config *c, struct pa_obj *o)
{
	ADD_SLOT(c->pas, c->npas, o, pa_free, NULL, "PeerAuthentication", o->ns, o->name);
}

static int add_ap(struct mesh_config *c, struct ap_obj *o)
{
	ADD_SLOT(c->aps, c->naps, o, ap_free, NULL, "AuthorizationPolicy", o->ns, o->name);
}

static int add_secret(struct mesh_config *c, struct secret_obj *o)
{
	ADD_SLOT(c->secrets, c->nsecrets, o, secret_free, NULL, "Secret", o->ns, o->name);
}

static int add_ef(struct mesh_config *c, struct ef_obj *o)
{
	ADD_SLOT(c->efs, c->nefs, o, ef_free, NULL, "EnvoyFilter", o->ns, o->name);
}

static int add_rlcm(struct mesh_config *c, struct rlcm_obj *o)
{
	ADD_SLOT(c->rlcms, c->nrlcms, o, rlcm_free, NULL, "ConfigMap", o->ns, o->name);
}

static int add_tel(struct mesh_config *c, struct tel_obj *o)
{
	ADD_SLOT(c->tels, c->ntels, o, tel_free, NULL, "Telemetry", o->ns, o->name);
}

static int add_mesh(struct mesh_config *c, struct mesh_obj *o)
{
	ADD_SLOT(c->meshes, c->nmeshes, o, mesh_free, NULL, "ConfigMap-mesh", o->ns, o->name);
}

static int add_gw(struct mesh_config *c, struct gw_obj *o)
{
	ADD_SLOT(c->gws, c->ngws, o, gw_free, NULL, "Gateway", o->ns, o->name);
}

static void renumber_security(struct mesh_config *c)
{
	for (int i = 0; i < c->npas; i++)
		c->pas[i].order = i;
	for (int i = 0; i < c->naps; i++)
		c->aps[i].order = i;
}

/* Copy a valid object into c; -1 when memory ran out (nothing added then). */
static int add_object(struct mesh_config *c, struct vctx *v, const struct objhead *h)
{
	struct xctx x = {0};
	union {
		struct ns_obj ns;
		struct svc_obj svc;
		struct workload_obj wl;
		struct vs_obj vs;
		struct dr_obj dr;
		struct other_obj other;
	} o;
	struct pa_obj pa = {0};
	struct ap_obj ap = {0};
	struct gw_obj gw = {0};
	struct secret_obj sec = {0};
	struct ef_obj ef = {0};
	struct rlcm_obj cm = {0};
	struct tel_obj tel = {0};
	struct mesh_obj mesh = {0};
	int rc;

	memset(&o, 0, sizeof(o));
	switch (h->kind) {
	case OBJ_NAMESPACE:
		o.ns.name = xdup(&x, h->name);
		o.ns.pos = h->pos;
		kv_from_map(&x, &o.ns.labels, ymap_get(h->meta, "labels"));
		rc = x.oom ? -1 : add_ns(c, v, &o.ns);
		if (rc < 0)
			ns_free(&o.ns);
		return rc;
	case OBJ_SERVICE:
		svc_extract(&x, &o.svc, h);
		rc = x.oom ? -1 : add_svc(c, v, &o.svc);
		if (rc < 0)
			svc_free(&o.svc);
		return rc;
	case OBJ_DEPLOYMENT:
	case OBJ_POD:
	case OBJ_WORKLOADENTRY:
		if (h->kind == OBJ_DEPLOYMENT)
			deploy_extract(&x, &o.wl, h);
		else if (h->kind == OBJ_POD)
			pod_extract(&x, &o.wl, h);
		else
			we_extract(&x, &o.wl, h);
		rc = x.oom ? -1 : add_wl(c, v, &o.wl);
		if (rc < 0)
			wl_free(&o.wl);
		return rc;
	case OBJ_VIRTUALSERVICE:
		vs_extract(&x, &o.vs, h);
		rc = x.oom ? -1 : add_vs(c, v, &o.vs);
		if (rc < 0)
			vs_free(&o.vs);
		return rc;
	case OBJ_DESTINATIONRULE:
		dr_extract(&x, &o.dr, h);
		rc = x.oom ? -1 : add_dr(c, v, &o.dr);
		if (rc < 0)
			dr_free(&o.dr);
		return rc;
	case OBJ_PEERAUTHENTICATION:
	case OBJ_AUTHORIZATIONPOLICY:
		if (h->kind == OBJ_PEERAUTHENTICATION)
			pa_extract(&x, &pa, h);
		else
			ap_extract(&x, &ap, h);
		other_extract(&x, &o.other, h);
		rc = x.oom ? -1 : 0;
		if (rc == 0 && h->kind == OBJ_PEERAUTHENTICATION)
			rc = add_pa(c, &pa);
		else if (rc == 0)
			rc = add_ap(c, &ap);
		if (rc < 0) {
			pa_free(&pa);
			ap_free(&ap);
			other_free(&o.other);
			return rc;
		}
		renumber_security(c);
		goto identity;
	case OBJ_GATEWAY:
		gw_extract(&x, &gw, h);
		other_extract(&x, &o.other, h);
		rc = x.oom ? -1 : add_gw(c, &gw);
		if (rc < 0) {
			gw_free(&gw);
			other_free(&o.other);
			return rc;
		}
		goto identity;
	case OBJ_ENVOYFILTER:
		x.oom = !ef_extract(&ef, h->root, h->name, h->ns, h->pos);
		other_extract(&x, &o.other, h);
		rc = x.oom ? -1 : add_ef(c, &ef);
		if (rc < 0) {
			ef_free(&ef);
			other_free(&o.other);
			return rc;
		}
		goto identity;
	case OBJ_TELEMETRY:
		x.oom = !tel_extract(&tel, h->root, h->name, h->ns, h->pos);
		other_extract(&x, &o.other, h);
		rc = x.oom ? -1 : add_tel(c, &tel);
		if (rc < 0) {
			tel_free(&tel);
			other_free(&o.other);
			return rc;
		}
		goto identity;
	case OBJ_CONFIGMAP:
		if (!strcmp(h->name, MESH_CONFIGMAP)) {
			const char *text = ymap_str(ymap_get(h->root, "data"), "mesh");
			char err[256];

			mesh.name = xdup(&x, h->name);
			mesh.ns = xdup(&x, h->ns);
			mesh.pos = h->pos;
			if (text && mesh_parse(&mesh, text, err, sizeof(err)))
				mesh.enable_tracing = true; /* not YAML: reported, nothing read */
			other_extract(&x, &o.other, h);
			rc = x.oom ? -1 : add_mesh(c, &mesh);
			if (rc < 0) {
				mesh_free(&mesh);
				other_free(&o.other);
				return rc;
			}
			goto identity;
		}
		if (strcmp(h->name, RL_CONFIGMAP))
			goto other;
		rlcm_extract(&x, &cm, h);
		other_extract(&x, &o.other, h);
		rc = x.oom ? -1 : add_rlcm(c, &cm);
		if (rc < 0) {
			rlcm_free(&cm);
			other_free(&o.other);
			return rc;
		}
		goto identity;
	case OBJ_SECRET:
		secret_extract(&x, &sec, h);
		other_extract(&x, &o.other, h);
		rc = x.oom ? -1 : add_secret(c, &sec);
		if (rc < 0) {
			secret_free(&sec);
			other_free(&o.other);
			return rc;
		}
	identity:
		/* The identity copy: its id entry has a different tag, so the two arrays replace
		 * (or append) in step; a failure here leaves an extra typed object, reported as
		 * out of memory. */
		rc = add_other(c, v, &o.other);
		if (rc < 0)
			other_free(&o.other);
		return rc;
	default:
	other:
		other_extract(&x, &o.other, h);
		rc = x.oom ? -1 : add_other(c, v, &o.other);
		if (rc < 0)
			other_free(&o.other);
		return rc;
	}
}

/* ---------------- loading ---------------- */

/* The identity an object is kept and rejected by: group/kind (the typed kinds by kind alone,
 * as c->ids tags them), namespace ("" for cluster-scoped kinds) and name. */
static char *obj_key(const struct objhead *h)
{
	char *k;

	if (!h->name)
		return strdup("");
	if (asprintf(&k, "%.*s/%s\x1f%s\x1f%s", (int)group_len(h->api_version), h->api_version,
		     h->kind_name, obj_is_namespaced(h->kind) ? h->ns : "", h->name) < 0)
		return NULL;
	return k;
}

static struct obj_source *source_find(const struct mesh_config *c, const char *key)
{
	uint8_t k[HKEY];
	int *i;

	if (!c->src_ids || !key[0])
		return NULL;
	h_strkey(k, key, NULL, NULL);
	i = h_get(c->src_ids, k);
	return i && !strcmp(c->sources[*i].key, key) ? &c->sources[*i] : NULL;
}

/* Keep the tree of a valid object (the last one of an identity wins); best effort: without
 * memory the object simply has no last good version to fall back on. */
static void source_keep(struct mesh_config *c, const char *file, const struct ynode *root,
			struct ynode **own, const struct obj_source *share, char *key)
{
	struct obj_source *s, fresh = {0};
	uint8_t k[HKEY];

	if (!key)
		return;
	if (share) { /* another config's tree: shared, not copied */
		fresh.root = share->root;
		fresh.refs = share->refs;
		fresh.hash = share->hash;
		__atomic_add_fetch(fresh.refs, 1, __ATOMIC_ACQ_REL);
	} else { /* the parsed file's own tree when the caller gives it up, else a copy */
		fresh.refs = malloc(sizeof(*fresh.refs));
		fresh.root = own ? *own : ynode_clone(root);
		if (!fresh.refs || !fresh.root) {
			free(fresh.refs);
			if (!own)
				ynode_free(fresh.root);
			free(key);
			return;
		}
		if (own)
			*own = NULL;
		*fresh.refs = 1;
		fresh.hash = ynode_hash(fresh.root);
	}
	s = source_find(c, key);
	if (!s && !c->src_ids && !(c->src_ids = calloc(1, sizeof(*c->src_ids))))
		goto fail;
	if (s) {
		source_unref(s);
		free(key);
	} else if ((s = grow((void **)&c->sources, &c->nsources, sizeof(*s)))) {
		s->key = key;
		h_strkey(k, key, NULL, NULL);
		h_put(c->src_ids, k, c->nsources - 1);
	} else {
		goto fail;
	}
	s->file = file;
	s->root = fresh.root;
	s->refs = fresh.refs;
	s->hash = fresh.hash;
	s->retained = false;
	c->nkept++;
	return;
fail:
	source_unref(&fresh);
	free(key);
}

/* Record a rejected object with the first error reported for it (diagnostics from index
 * first on); key is taken over. */
static void reject(struct mesh_config *c, const char *object, char *key, const struct srcpos *pos,
		   const struct diags *d, int first)
{
	struct rejected_obj *r = grow((void **)&c->rejected, &c->nrejected, sizeof(*r));
	const struct diag *why = NULL;

	for (int i = first; !why && i < d->n; i++)
		if (d->v[i].sev == DIAG_ERROR)
			why = &d->v[i];
	if (!r) {
		free(key);
		return;
	}
	r->object = object ? strdup(object) : NULL;
	r->key = key ? key : strdup("");
	r->pos = *pos;
	r->err_line = why && why->line > 0 ? why->line : pos->line;
	if (why)
		r->field = why->field ? strdup(why->field) : NULL;
	r->msg = strdup(why ? why->msg : "rejected");
}

static void load_object(struct mesh_config *c, const char *file, const struct ynode *root,
			struct ynode **own, const struct obj_source *share, struct diags *d);

/* A Gateway API object's Istio object (gwapi.h), loaded right after it with its lines; not
 * kept as a source of its own (its source is, and derives it again when reused). */
static void load_derived(struct mesh_config *c, const char *file, const struct ynode *root,
			 const char *ns, struct diags *d)
{
	struct ynode *x = gwapi_derive(root, ns);
	bool keep = c->keep_sources;

	if (!x)
		return;
	c->keep_sources = false;
	load_object(c, file, x, NULL, NULL, d);
	c->keep_sources = keep;
	c->nloaded--; /* (one object of the user's) */
	ynode_free(x);
}

/* own: where root is held, when the caller lets the config keep it (NULL: copied if kept);
 * share: prev's source root is from, when reused (the tree is shared, not copied) */
static void load_object(struct mesh_config *c, const char *file, const struct ynode *root,
			struct ynode **own, const struct obj_source *share, struct diags *d)
{
	struct srcpos pos = {.file = file, .line = root->line};
	struct objhead h = {.root = root, .pos = pos};
	char object[512];
	struct vctx v = {.d = d, .file = file, .object = object, .line = root->line};
	int first = d->n;

	c->nloaded++;
	h.meta = ymap_get(root, "metadata");
	h.spec = ymap_get(root, "spec");
	h.api_version = ymap_str(root, "apiVersion");
	h.kind_name = ymap_str(root, "kind");
	h.name = ymap_str(h.meta, "name");
	h.ns = ymap_str(h.meta, "namespace") ? ymap_str(h.meta, "namespace") : "default";
	if (!h.api_version || !h.kind_name) {
		diags_add(d, DIAG_ERROR, &pos, NULL, h.api_version ? "kind" : "apiVersion",
			  "required (every object needs apiVersion and kind)");
		reject(c, NULL, NULL, &pos, d, first);
		return;
	}
	h.kind = obj_kind_of(h.api_version, h.kind_name);
	v.ns = h.ns;
	if (h.kind == OBJ_NAMESPACE)
		snprintf(object, sizeof(object), "%s/%s", h.kind_name,
			 h.name ? h.name : "<unnamed>");
	else
		snprintf(object, sizeof(object), "%s/%s/%s", h.kind_name, h.ns,
			 h.name ? h.name : "<unnamed>");
	if (h.kind == OBJ_UNKNOWN) {
		vctx_warn(&v, NULL, NULL, "unknown kind %s in %s: ignored", h.kind_name,
			  h.api_version);
		if (!h.name)
			return;
	} else if (validate_object(&v, h.kind, root) > 0) {
		reject(c, object, obj_key(&h), &pos, d, first);
		return;
	}
	if (add_object(c, &v, &h) < 0) {
		vctx_err(&v, NULL, NULL, "out of memory");
		return;
	}
	if (c->keep_sources && h.name)
		source_keep(c, file, root, own, share, obj_key(&h));
	load_derived(c, file, root, h.ns, d);
}

static bool is_list(const struct ynode *root)
{
	const char *kind = ymap_str(root, "kind");
	size_t len = kind ? strlen(kind) : 0;

	/* `kubectl get -o yaml` wraps objects in `kind: List` (or FooList) with items. */
	return len >= 4 && strcmp(kind + len - 4, "List") == 0 &&
	       (strcmp(kind, "List") == 0 || ymap_find(root, "items"));
}

static void load_doc(struct mesh_config *c, const char *file, struct ynode **slot,
		     struct diags *d)
{
	const struct ynode *root = *slot;
	struct srcpos pos = {.file = file, .line = root->line};
	struct ynode *items; /* in the tree the caller gave up: its items may be taken */

	if (!ynode_is_map(root)) {
		diags_add(d, DIAG_ERROR, &pos, NULL, NULL,
			  "expected a Kubernetes object (a map with apiVersion and kind)");
		reject(c, NULL, NULL, &pos, d, d->n - 1);
		return;
	}
	if (!is_list(root)) {
		load_object(c, file, root, slot, NULL, d);
		return;
	}
	items = (struct ynode *)ymap_get(root, "items");
	if (items && !ynode_is_seq(items)) {
		diags_add(d, DIAG_ERROR, &pos, NULL, "items", "must be a list");
		reject(c, NULL, NULL, &pos, d, d->n - 1);
		return;
	}
	for (int i = 0; items && i < items->n; i++) {
		pos.line = items->items[i]->line;
		if (ynode_is_map(items->items[i]))
			load_object(c, file, items->items[i], &items->items[i], NULL, d);
		else {
			diags_add(d, DIAG_ERROR, &pos, NULL, "items",
				  "expected a Kubernetes object (a map with apiVersion and kind)");
			reject(c, NULL, NULL, &pos, d, d->n - 1);
		}
	}
}

static int load_yfile(struct mesh_config *c, const char *name, const char *buf, size_t len,
		      struct diags *d)
{
	const char *file = intern_file(c, name);
	struct srcpos pos = {.file = file ? file : name};
	struct yfile yf;
	struct yerror ye;

	if (!file) {
		diags_add(d, DIAG_ERROR, &pos, NULL, NULL, "out of memory");
		return -1;
	}
	if ((buf ? yfile_load_mem(buf, len, &yf, &ye) : yfile_load(name, &yf, &ye)) < 0) {
		pos.line = ye.line;
		diags_add(d, DIAG_ERROR, &pos, NULL, ye.io ? NULL : "yaml", "%s", ye.msg);
		reject(c, NULL, NULL, &pos, d, d->n - 1);
		if (c->nrejected)
			c->rejected[c->nrejected - 1].unreadable = true;
		return -1;
	}
	for (int i = 0; i < yf.ndocs; i++)
		if (yf.docs[i].root)
			load_doc(c, file, &yf.docs[i].root, d);
	yfile_free(&yf);
	return 0;
}

int config_load_file(struct mesh_config *c, const char *path, struct diags *d)
{
	return load_yfile(c, path, NULL, 0, d);
}

int config_load_mem(struct mesh_config *c, const char *name, const char *buf, size_t len,
		    struct diags *d)
{
	return load_yfile(c, name, buf ? buf : "", buf ? len : 0, d);
}

static bool config_ext(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml") || !strcmp(dot, ".json"));
}

/* A config file of a directory as listed: its path and what stat said then. */
struct dir_ent {
	char *path;
	struct stat st;
};

static int cmp_dir_ent(const void *a, const void *b)
{
	return strcmp(((const struct dir_ent *)a)->path, ((const struct dir_ent *)b)->path);
}

static void dir_ents_free(struct dir_ent *v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

/* Regular config files directly in dir, sorted, as "dir/name" with their stat (one fstatat
 * each, relative to the directory). */
static struct dir_ent *list_dir(const char *dir, int *n)
{
	DIR *dh = opendir(dir);
	struct dir_ent *v = NULL;
	struct dirent *e;
	int cap = 0;

	*n = 0;
	if (!dh)
		return NULL;
	while ((e = readdir(dh))) {
		struct stat st;
		char *path;

		if (e->d_name[0] == '.' || !config_ext(e->d_name))
			continue;
		if (fstatat(dirfd(dh), e->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (asprintf(&path, "%s/%s", dir, e->d_name) < 0)
			continue;
		if (*n == cap) {
			struct dir_ent *nv = realloc(v, (cap ? 2 * cap : 16) * sizeof(*v));

			if (!nv) {
				free(path);
				continue;
			}
			v = nv;
			cap = cap ? 2 * cap : 16;
		}
		v[*n].path = path;
		v[(*n)++].st = st;
	}
	closedir(dh);
	if (v)
		qsort(v, *n, sizeof(*v), cmp_dir_ent);
	return v;
}

/* config_dir_stamp's fingerprint of a listing */
static uint64_t dir_stamp_of(const struct dir_ent *v, int n)
{
	uint64_t h = 1469598103934665603ULL;

	for (int i = 0; i < n; i++) {
		const struct stat *st = &v[i].st;
		char line[1200];

		snprintf(line, sizeof(line), "%s|%lld|%lld.%09ld|%lld.%09ld|%llu", v[i].path,
			 (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
			 (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec,
			 (unsigned long long)st->st_ino);
		for (const char *p = line; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	return h | 1; /* 0 means "none read yet" */
}

uint64_t config_dir_stamp(const char *dir)
{
	int n;
	struct dir_ent *v = list_dir(dir, &n);
	uint64_t h = dir_stamp_of(v, n);

	dir_ents_free(v, n);
	return h;
}

static void stamp_set(struct file_load *fl, const struct stat *st)
{
	fl->stamped = true;
	fl->size = st->st_size;
	fl->mtime_s = st->st_mtim.tv_sec;
	fl->mtime_ns = st->st_mtim.tv_nsec;
	fl->ctime_s = st->st_ctim.tv_sec;
	fl->ctime_ns = st->st_ctim.tv_nsec;
	fl->ino = st->st_ino;
}

static bool stamp_same(const struct file_load *fl, const struct stat *st)
{
	return fl->stamped && fl->size == st->st_size && fl->mtime_s == st->st_mtim.tv_sec &&
	       fl->mtime_ns == st->st_mtim.tv_nsec && fl->ctime_s == st->st_ctim.tv_sec &&
	       fl->ctime_ns == st->st_ctim.tv_nsec && fl->ino == st->st_ino;
}

#define RACY_NS 50000000LL /* 50 ms: well over the kernel's coarse file timestamp tick */

/* After a file's objects were loaded (counts before: objects given, kept, rejected): how
 * many it gave, and whether each was valid and kept (reusable while prev still holds them
 * all under this file: reuse_file checks). */
static void file_done(struct mesh_config *c, const char *file, const struct stat *st,
		      const struct timespec *listed, int loaded0, int kept0, int rejected0)
{
	struct file_load *fl = file_load_of(c, file);
	int nobjs = c->nloaded - loaded0;
	/* Changed within a timestamp tick of when it was listed: a rewrite of the same size in
	 * that tick would leave the stamp as it is (git's "racily clean"), so it is read again
	 * next time rather than trusted. */
	long long at = (long long)listed->tv_sec * 1000000000LL + listed->tv_nsec;
	bool racy = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec >=
			at - RACY_NS ||
		    (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec >=
			at - RACY_NS;

	if (!fl)
		return;
	fl->nobjs = nobjs;
	fl->clean = c->nrejected == rejected0 && c->nkept - kept0 == nobjs && !racy;
	if (st)
		stamp_set(fl, st);
}

/* prev's sources by file, in document order within each file (by line: a source's index is
 * where its identity was first loaded, which may be another file's place). */
struct src_by_file {
	const char *file;
	int line, idx;
};

static int cmp_src_by_file(const void *a, const void *b)
{
	const struct src_by_file *x = a, *y = b;
	int r = strcmp(x->file, y->file);

	if (r)
		return r;
	if (x->line != y->line)
		return (x->line > y->line) - (x->line < y->line);
	return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Load path's objects from prev's trees (v: prev's sources sorted by file); false, having
 * loaded nothing, when prev does not hold exactly the objects it gave. */
static bool reuse_file(struct mesh_config *c, const struct mesh_config *prev,
		       const struct src_by_file *v, int nv, const char *path,
		       const struct file_load *was, const struct stat *st,
		       const struct timespec *listed, struct diags *d)
{
	struct src_by_file want = {.file = path, .line = -1, .idx = -1};
	int lo = 0, hi = nv, first, n = 0;
	int loaded0 = c->nloaded, kept0 = c->nkept, rejected0 = c->nrejected;
	const char *file;

	while (lo < hi) { /* the first entry of path */
		int mid = (lo + hi) / 2;

		if (cmp_src_by_file(&v[mid], &want) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	first = lo;
	while (first + n < nv && !strcmp(v[first + n].file, path))
		n++;
	if (n != was->nobjs || !(file = intern_file(c, path)))
		return false;
	for (int i = first; i < first + n; i++) {
		const struct obj_source *s = &prev->sources[v[i].idx];

		load_object(c, file, s->root, NULL, s, d);
	}
	file_done(c, file, st, listed, loaded0, kept0, rejected0);
	return true;
}

int config_load_dir_from(struct mesh_config *c, const char *dir, const struct mesh_config *prev,
			 struct diags *d)
{
	struct srcpos pos = {.file = dir};
	struct src_by_file *v = NULL;
	DIR *probe = opendir(dir);
	struct dir_ent *files;
	struct timespec listed;
	int n, nv = 0;

	if (!probe) {
		diags_add(d, DIAG_ERROR, &pos, NULL, NULL, "cannot read directory");
		return -1;
	}
	closedir(probe);
	if (prev && prev->nsources && c->keep_sources &&
	    (v = malloc(prev->nsources * sizeof(*v)))) {
		for (int i = 0; i < prev->nsources; i++)
			if (!prev->sources[i].retained) /* retained: its file is not clean anyway */
				v[nv++] = (struct src_by_file){.file = prev->sources[i].file,
							       .line = prev->sources[i].root->line,
							       .idx = i};
		qsort(v, nv, sizeof(*v), cmp_src_by_file);
	}
	/* listed (and stat'ed) before anything is read: a change while it is read shows as a new
	 * stamp next time */
	clock_gettime(CLOCK_REALTIME, &listed);
	files = list_dir(dir, &n);
	c->dir_stamp = dir_stamp_of(files, n);
	for (int i = 0; i < n; i++) {
		int loaded0 = c->nloaded, kept0 = c->nkept, rejected0 = c->nrejected;
		const struct stat *st = &files[i].st;
		const struct file_load *was = v ? file_load_of(prev, files[i].path) : NULL;

		if (was && was->clean && stamp_same(was, st) &&
		    reuse_file(c, prev, v, nv, files[i].path, was, st, &listed, d)) {
			c->files_reused++;
			continue;
		}
		c->files_parsed++;
		config_load_file(c, files[i].path, d); /* a bad file is reported and rejected */
		file_done(c, intern_file(c, files[i].path), st, &listed, loaded0, kept0,
			  rejected0);
	}
	free(v);
	dir_ents_free(files, n);
	config_index(c);
	return 0;
}

int config_load_dir(struct mesh_config *c, const char *dir, struct diags *d)
{
	return config_load_dir_from(c, dir, NULL, d);
}

/* Whether next holds a valid object of this identity (loaded or retained). */
static bool has_source(const struct mesh_config *next, const char *key)
{
	return source_find(next, key) != NULL;
}

/* Load prev's version of an object into next (validated again, quietly: it passed before). */
static bool retain_one(struct mesh_config *next, const struct obj_source *s)
{
	const char *file = intern_file(next, s->file);
	struct diags quiet = {0};
	int before = next->nsources;

	if (file)
		load_object(next, file, s->root, NULL, NULL, &quiet);
	diags_free(&quiet);
	if (!file || next->nsources <= before)
		return false;
	next->sources[next->nsources - 1].retained = true; /* its file does not give it now */
	return true;
}

int config_changes(const struct mesh_config *next, const struct mesh_config *prev)
{
	int changed = 0, common = 0;

	for (int i = 0; i < next->nsources; i++) {
		const struct obj_source *was = prev ? source_find(prev, next->sources[i].key) : NULL;

		if (!was || was->hash != next->sources[i].hash)
			changed++;
		common += was != NULL;
	}
	return changed + (prev ? prev->nsources - common : 0);
}

int config_retain(struct mesh_config *next, const struct mesh_config *prev)
{
	int kept = 0, nrej = next->nrejected;

	if (!prev)
		return 0;
	for (int i = 0; i < nrej; i++) {
		struct rejected_obj *r = &next->rejected[i];
		const struct obj_source *s = r->object ? source_find(prev, r->key) : NULL;

		if (!s || has_source(next, r->key) || !retain_one(next, s))
			continue;
		r = &next->rejected[i]; /* load_object may have grown the array */
		r->kept = true;
		r->kept_from =
		    (struct srcpos){.file = intern_file(next, s->file), .line = s->root->line};
		kept++;
	}
	/* A file that could not be read keeps every object it had. */
	for (int i = 0; i < nrej; i++) {
		const char *bad = next->rejected[i].unreadable ? next->rejected[i].pos.file : NULL;

		for (int k = 0; bad && k < prev->nsources; k++) {
			const struct obj_source *s = &prev->sources[k];

			if (strcmp(s->file, bad) || has_source(next, s->key) ||
			    !retain_one(next, s))
				continue;
			next->rejected[i].kept = true;
			next->rejected[i].kept_from =
			    (struct srcpos){.file = next->rejected[i].pos.file};
			kept++;
		}
	}
	if (kept)
		config_index(next);
	return kept;
}

/* ---------------- hosts, labels, enrollment ---------------- */

const char *config_route_path(char *buf, size_t len, const struct vs_obj *vs, int r)
{
	static const char *const lists[] = {
	    [ROUTE_HTTP] = "http", [ROUTE_TCP] = "tcp", [ROUTE_TLS] = "tls"};
	int idx = 0;

	for (int i = 0; i < r; i++)
		idx += vs->routes[i].kind == vs->routes[r].kind;
	snprintf(buf, len, "spec.%s[%d]", lists[vs->routes[r].kind], idx);
	return buf;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

char *config_fqdn(const char *host, const char *ns)
{
	char *h, *out = NULL;
	size_t len;
	int dots = 0;

	if (!host)
		return strdup("");
	h = strdup(host);
	if (!h)
		return NULL;
	len = strlen(h);
	if (len > 1 && h[len - 1] == '.')
		h[--len] = 0;
	for (char *p = h; *p; p++) {
		*p = (char)tolower((unsigned char)*p);
		dots += *p == '.';
	}
	/* Wildcards, addresses and names that are already qualified stay as they are. */
	if (h[0] == '*' || strchr(h, ':') || (dots == 3 && strspn(h, "0123456789.") == len))
		return h;
	if (dots > 1 && !ends_with(h, ".svc"))
		return h;
	/* one asprintf, whichever form ("a", "a.svc", "a.b", "a.b.svc") this is */
	if (asprintf(&out,
		     dots == 0		    ? "%s.%s.svc.cluster.local"
		     : ends_with(h, ".svc") ? "%s.cluster.local%.0s"
					    : "%s.svc.cluster.local%.0s",
		     h, ns ? ns : "default") < 0)
		out = NULL;
	free(h);
	return out;
}

const char *kv_get(const struct kvlist *l, const char *key)
{
	for (int i = 0; l && i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			return l->v[i].val;
	return NULL;
}

bool kv_match(const struct kvlist *selector, const struct kvlist *labels)
{
	for (int i = 0; selector && i < selector->n; i++) {
		const char *v = kv_get(labels, selector->v[i].key);

		if (!v || strcmp(v, selector->v[i].val) != 0)
			return false;
	}
	return true;
}

static bool is(const char *s, const char *want)
{
	return s && strcmp(s, want) == 0;
}

const struct kvlist *config_ns_labels(const struct mesh_config *c, const char *ns)
{
	for (int i = 0; i < c->nnamespaces; i++)
		if (strcmp(c->namespaces[i].name, ns ? ns : "default") == 0)
			return &c->namespaces[i].labels;
	return NULL;
}

/*
 * Enrollment as Istio decides it: a namespace opts in with istio-injection=enabled (or an
 * istio.io/rev revision label) or istio.io/dataplane-mode=ambient; a pod opts out with
 * sidecar.istio.io/inject="false" (label or annotation) or istio.io/dataplane-mode=none, and
 * opts in on its own with sidecar.istio.io/inject="true" (unless its namespace says
 * istio-injection=disabled, which Istio's webhook honours) or istio.io/dataplane-mode=ambient.
 * A WorkloadEntry stands for a workload with its own proxy: in the mesh unless labelled
 * security.istio.io/tlsMode=disabled.
 */
bool config_in_mesh(const struct mesh_config *c, const struct workload_obj *w)
{
	const struct kvlist *nl = config_ns_labels(c, w->ns);
	const char *inj = kv_get(nl, "istio-injection"), *rev = kv_get(nl, "istio.io/rev");
	const char *pod_inject = kv_get(&w->labels, "sidecar.istio.io/inject");
	const char *pod_mode = kv_get(&w->labels, "istio.io/dataplane-mode");

	if (w->kind == WL_WORKLOADENTRY)
		return !is(kv_get(&w->labels, "security.istio.io/tlsMode"), "disabled");
	if (is(pod_inject, "false") ||
	    is(kv_get(&w->annotations, "sidecar.istio.io/inject"), "false") || is(pod_mode, "none"))
		return false;
	if (is(inj, "enabled") || (!inj && rev && *rev) || is(pod_mode, "ambient") ||
	    is(kv_get(nl, "istio.io/dataplane-mode"), "ambient"))
		return true;
	return is(pod_inject, "true") && !inj;
}

/* ---------------- splitting files for `lab apply` ---------------- */

struct split_doc {
	yaml_document_t doc;
	bool loaded;
};

static int split_emit(yaml_document_t *doc, yaml_node_t *node, const char *file,
		      config_object_cb cb, void *arg, struct diags *d)
{
	struct yerror ye;
	struct ynode *t = ytree_build(doc, node, &ye);
	struct srcpos pos = {.file = file, .line = (int)node->start_mark.line + 1};
	const char *kind = ymap_str(t, "kind"), *name = ymap_str(ymap_get(t, "metadata"), "name");
	const char *ns = ymap_str(ymap_get(t, "metadata"), "namespace");
	char *yaml = NULL;
	size_t len = 0;
	int rc = -1;

	if (!t)
		diags_add(d, DIAG_ERROR, &pos, NULL, "yaml", "%s", ye.msg);
	else if (!kind || !name)
		diags_add(d, DIAG_ERROR, &pos, NULL, kind ? "metadata.name" : "kind", "required");
	else if (ydoc_emit_subtree(doc, node, &yaml, &len) < 0)
		diags_add(d, DIAG_ERROR, &pos, NULL, NULL, "cannot re-emit the object as YAML");
	else
		rc = cb(arg, kind, ns ? ns : "default", name, pos.line, yaml, len) ? -1 : 0;
	free(yaml);
	ynode_free(t);
	return rc;
}

static int split_doc_objects(yaml_document_t *doc, const char *file, config_object_cb cb, void *arg,
			     struct diags *d)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);
	yaml_node_t *kind = ydoc_map_get(doc, root, "kind");
	yaml_node_t *items = ydoc_map_get(doc, root, "items");
	const char *k =
	    kind && kind->type == YAML_SCALAR_NODE ? (char *)kind->data.scalar.value : NULL;
	int bad = 0;

	if (!root || root->type == YAML_SCALAR_NODE)
		return 0; /* an empty document */
	if (!(k && ends_with(k, "List") && items && items->type == YAML_SEQUENCE_NODE))
		return split_emit(doc, root, file, cb, arg, d) < 0;
	for (yaml_node_item_t *it = items->data.sequence.items.start;
	     it < items->data.sequence.items.top; it++)
		bad += split_emit(doc, yaml_document_get_node(doc, *it), file, cb, arg, d) < 0;
	return bad;
}

/* All documents are parsed before the first callback, so a syntax error late in a file does
 * not leave half of it applied. */
static int split_parse(const char *path, struct split_doc **docs, int *n, struct diags *d)
{
	struct srcpos pos = {.file = path};
	FILE *f = fopen(path, "rb");
	yaml_parser_t parser;
	int rc = 0;

	*docs = NULL;
	*n = 0;
	if (!f || !yaml_parser_initialize(&parser)) {
		diags_add(d, DIAG_ERROR, &pos, NULL, NULL, "cannot read");
		if (f)
			fclose(f);
		return -1;
	}
	yaml_parser_set_input_file(&parser, f);
	for (;;) {
		struct split_doc *sd = grow((void **)docs, n, sizeof(**docs));

		if (!sd || !yaml_parser_load(&parser, &sd->doc)) {
			pos.line = (int)parser.problem_mark.line + 1;
			diags_add(d, DIAG_ERROR, &pos, NULL, "yaml", "%s",
				  parser.problem ? parser.problem : "out of memory");
			if (sd)
				(*n)--;
			rc = -1;
			break;
		}
		sd->loaded = true;
		if (!yaml_document_get_root_node(&sd->doc))
			break;
	}
	yaml_parser_delete(&parser);
	fclose(f);
	return rc;
}

int config_split_file(const char *path, config_object_cb cb, void *arg, struct diags *d)
{
	struct split_doc *docs;
	int n, rc = split_parse(path, &docs, &n, d);

	for (int i = 0; rc >= 0 && i < n; i++)
		if (yaml_document_get_root_node(&docs[i].doc))
			rc += split_doc_objects(&docs[i].doc, path, cb, arg, d);
	for (int i = 0; i < n; i++)
		if (docs[i].loaded)
			yaml_document_delete(&docs[i].doc);
	free(docs);
	return rc;
}
