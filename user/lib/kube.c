// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kube.c: list and watch of the API server (see kube.h), following the API conventions of
 * https://kubernetes.io/docs/reference/using-api/api-concepts/: a list in chunks (`limit`,
 * `continue`; an expired continue token lists again from the start), then a watch from the
 * list's resourceVersion with `allowWatchBookmarks`, ended by the server after
 * `timeoutSeconds` and started again from the last resourceVersion seen; a `410 Gone` (as an
 * HTTP status or an ERROR event) lists again. Errors back off exponentially with jitter.
 *
 * Each kind has its own thread and libcurl handle: a blocking handle per long-lived watch is
 * the simplest correct shape, and the kinds are a fixed short list. The store is guarded by
 * one mutex that the agent takes only to copy references (kube_snapshot). A kind whose group
 * is not served (a CRD not installed) is skipped with one log line and asked for again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "model.h"
#include <json-c/json.h>
#include "httpbody.h"
#include "htab.h"
#include "kube.h"
#include "log.h"

#define KUBE_LIST_LIMIT	    500	      /* items per list chunk */
#define KUBE_MAX_BODY	    (256 << 20) /* one list chunk or watch event, at most */
#define KUBE_WATCH_S	    300	      /* the watch's timeoutSeconds (plus jitter) */
#define KUBE_BACKOFF_MIN_MS 200
#define KUBE_BACKOFF_MAX_MS 5000 /* an outage is caught up on at most this long after */
#define KUBE_CONNECT_S	    5

struct kube_kind {
	const char *group; /* "" for the core group */
	const char *const *versions; /* the first one served is used */
	const char *resource;
	const char *kind;
	bool trim_pod;
	const char *ns; /* watched in this namespace only (NULL: the whole cluster) */
	const char *fields; /* a fieldSelector (URL-escaped), NULL: every object */
};

static const char *const ver_core[] = {"v1", NULL};
static const char *const ver_net[] = {"v1", "v1beta1", "v1alpha3", NULL};
static const char *const ver_sec[] = {"v1", "v1beta1", NULL};
static const char *const ver_tel[] = {"v1", "v1alpha1", NULL};
static const char *const ver_gwapi[] = {"v1", "v1beta1", NULL};
static const char *const ver_gwapi_alpha[] = {"v1alpha2", "v1alpha3", NULL};

/* What the mesh reads; Deployments are not: a cluster's pods are its truth. */
static const struct kube_kind kinds[] = {
    {"", ver_core, "namespaces", "Namespace", false, NULL, NULL},
    {"", ver_core, "pods", "Pod", true, NULL, NULL},
    {"", ver_core, "services", "Service", false, NULL, NULL},
    {"discovery.k8s.io", ver_core, "endpointslices", "EndpointSlice", false, NULL, NULL},
    {"networking.istio.io", ver_net, "virtualservices", "VirtualService", false, NULL, NULL},
    {"networking.istio.io", ver_net, "destinationrules", "DestinationRule", false, NULL, NULL},
    {"networking.istio.io", ver_net, "gateways", "Gateway", false, NULL, NULL},
    {"networking.istio.io", ver_net, "serviceentries", "ServiceEntry", false, NULL, NULL},
    {"networking.istio.io", ver_net, "workloadentries", "WorkloadEntry", false, NULL, NULL},
    {"networking.istio.io", ver_net, "sidecars", "Sidecar", false, NULL, NULL},
    {"networking.istio.io", ver_net, "envoyfilters", "EnvoyFilter", false, NULL, NULL},
    {"security.istio.io", ver_sec, "peerauthentications", "PeerAuthentication", false, NULL, NULL},
    {"security.istio.io", ver_sec, "authorizationpolicies", "AuthorizationPolicy", false, NULL,
     NULL},
    {"security.istio.io", ver_sec, "requestauthentications", "RequestAuthentication", false, NULL,
     NULL},
    {"telemetry.istio.io", ver_tel, "telemetries", "Telemetry", false, NULL, NULL},
    {"gateway.networking.k8s.io", ver_gwapi, "gateways", "Gateway", false, NULL, NULL},
    {"gateway.networking.k8s.io", ver_gwapi, "httproutes", "HTTPRoute", false, NULL, NULL},
    {"gateway.networking.k8s.io", ver_gwapi_alpha, "tcproutes", "TCPRoute", false, NULL, NULL},
    {"gateway.networking.k8s.io", ver_gwapi_alpha, "tlsroutes", "TLSRoute", false, NULL, NULL},
    /* the ingress gateway's certificates (credentialName): its own namespace only, as
     * Istio's gateway reads them */
    {"", ver_core, "secrets", "Secret", false, GW_NS, NULL},
    /* envoyproxy/ratelimit's config, as Istio's rate-limit task names it (any namespace) */
    {"", ver_core, "configmaps", "ConfigMap", false, NULL, "metadata.name%3Dratelimit-config"},
    /* MeshConfig (its tracing providers): the ConfigMap istio of the root namespace */
    {"", ver_core, "configmaps", "ConfigMap", false, GW_NS, "metadata.name%3Distio"},
};

#define NKINDS ((int)(sizeof(kinds) / sizeof(kinds[0])))

struct kube_obj {
	atomic_int refs;
	char *name; /* "api:Kind/ns/name" */
	size_t len;
	char json[];
};

/* One kind's objects: an index by namespace/name into a dense array. */
struct kstore {
	struct htab idx;
	struct kube_obj **v;
	int n, cap;
};

enum kstate { KS_PENDING, KS_SYNCED, KS_ABSENT };

struct kwatch {
	struct kube *k;
	const struct kube_kind *kind;
	pthread_t th;
	bool started;
	CURL *h;
	const char *version;
	char rv[64];
	uint64_t rvnum; /* rv as a number (guarded by k->mu): resourceVersions are opaque, but
			 * etcd's are counters, and the lab waits on them */
	enum kstate state; /* guarded by k->mu, as st, err and err_since */
	struct kstore st;
	time_t err_since; /* wall clock of the first failure of a run of them, 0 when fine */
	char err[200];
	int backoff_ms;
	bool absent_logged;
	time_t absent_since; /* a kind holding objects first found not served (0: served) */
	/* the watch stream being read */
	char *line;
	size_t nline, capline;
	bool relist, too_big;
};

struct kube {
	struct kube_conn conn;
	int notify_fd, absent_retry_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_bool stop;
	uint64_t gen;
	struct kwatch w[NKINDS];
};

/* ---------- objects and stores ---------- */

static void obj_put(struct kube_obj *o)
{
	if (o && atomic_fetch_sub(&o->refs, 1) == 1) {
		free(o->name);
		free(o);
	}
}

static struct kube_obj *obj_new(const char *kind, const char *ns, const char *name,
				const char *json)
{
	size_t n = strlen(json);
	struct kube_obj *o = malloc(sizeof(*o) + n + 1);

	if (!o)
		return NULL;
	atomic_init(&o->refs, 1);
	o->len = n;
	memcpy(o->json, json, n + 1);
	if (asprintf(&o->name, "api:%s/%s%s%s", kind, ns ? ns : "", ns ? "/" : "", name) < 0) {
		free(o);
		return NULL;
	}
	return o;
}

static void st_key(uint8_t k[HKEY], const struct kube_obj *o)
{
	h_strkey(k, o->name, NULL, NULL);
}

static void st_free(struct kstore *s)
{
	for (int i = 0; i < s->n; i++)
		obj_put(s->v[i]);
	free(s->v);
	h_free(&s->idx);
	memset(s, 0, sizeof(*s));
}

/* Put o (its reference moves in); true when what the store holds changed. */
static bool st_put(struct kstore *s, struct kube_obj *o)
{
	uint8_t key[HKEY];
	int *at;

	st_key(key, o);
	at = h_get(&s->idx, key);
	if (at) {
		struct kube_obj *old = s->v[*at];
		bool same = old->len == o->len && !memcmp(old->json, o->json, o->len);

		if (same) {
			obj_put(o);
			return false;
		}
		s->v[*at] = o;
		obj_put(old);
		return true;
	}
	if (s->n == s->cap) {
		int cap = s->cap ? s->cap * 2 : 64;
		struct kube_obj **v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			obj_put(o);
			return false;
		}
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n] = o;
	h_put(&s->idx, key, s->n++);
	return true;
}

static bool st_del(struct kstore *s, const char *name)
{
	uint8_t key[HKEY];
	int *at, i;

	h_strkey(key, name, NULL, NULL);
	at = h_get(&s->idx, key);
	if (!at)
		return false;
	i = *at;
	h_del(&s->idx, key);
	obj_put(s->v[i]);
	if (i != --s->n) {
		uint8_t lk[HKEY];

		s->v[i] = s->v[s->n];
		st_key(lk, s->v[i]);
		h_put(&s->idx, lk, i);
	}
	return true;
}

/* Two stores hold the same objects. */
static bool st_same(const struct kstore *a, struct kstore *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++) {
		uint8_t key[HKEY];
		int *at;

		st_key(key, a->v[i]);
		at = h_get(&b->idx, key);
		if (!at || b->v[*at]->len != a->v[i]->len ||
		    memcmp(b->v[*at]->json, a->v[i]->json, a->v[i]->len))
			return false;
	}
	return true;
}

static void notify(struct kube *k)
{
	uint64_t one = 1;

	k->gen++;
	if (write(k->notify_fd, &one, sizeof(one)) < 0)
		pr_warn("kube: notify: %s", strerror(errno));
}

/* ---------- what is kept of an object ---------- */

static void copy_key(struct json_object *dst, struct json_object *src, const char *key)
{
	struct json_object *v;

	if (json_object_object_get_ex(src, key, &v))
		json_object_object_add(dst, key, json_object_get(v));
}

/* The pod's metadata, spec and status reduced to what config.c reads. */
static struct json_object *trim_pod(struct json_object *pod)
{
	struct json_object *out = json_object_new_object(), *m = json_object_new_object(),
			   *sp = json_object_new_object(), *st = json_object_new_object(), *in, *v;
	static const char *const mkeys[] = {"name", "namespace", "uid", "labels", "ownerReferences",
					    "deletionTimestamp"};
	static const char *const skeys[] = {"phase", "podIP", "podIPs", "hostIP", "hostIPs"};

	copy_key(out, pod, "apiVersion");
	copy_key(out, pod, "kind");
	if (json_object_object_get_ex(pod, "metadata", &in)) {
		for (size_t i = 0; i < sizeof(mkeys) / sizeof(mkeys[0]); i++)
			copy_key(m, in, mkeys[i]);
		if (json_object_object_get_ex(in, "annotations", &v) &&
		    json_object_is_type(v, json_type_object)) {
			struct json_object *a = json_object_new_object();

			json_object_object_foreach(v, key, val)
			{
				if (strcmp(key, "kubectl.kubernetes.io/last-applied-configuration"))
					json_object_object_add(a, key, json_object_get(val));
			}
			json_object_object_add(m, "annotations", a);
		}
	}
	if (json_object_object_get_ex(pod, "spec", &in)) {
		struct json_object *cs, *outc = json_object_new_array();

		copy_key(sp, in, "nodeName");
		copy_key(sp, in, "serviceAccountName");
		copy_key(sp, in, "serviceAccount");
		copy_key(sp, in, "hostNetwork");
		if (json_object_object_get_ex(in, "containers", &cs) &&
		    json_object_is_type(cs, json_type_array))
			for (size_t i = 0; i < json_object_array_length(cs); i++) {
				struct json_object *c = json_object_array_get_idx(cs, i),
						   *oc = json_object_new_object();

				struct json_object *env, *oenv;

				copy_key(oc, c, "name");
				copy_key(oc, c, "ports");
				/* env with plain values (a Telemetry's environment custom tags), at
				 * most 64 of 256 bytes each: a pod's secrets arrive by valueFrom */
				if (json_object_object_get_ex(c, "env", &env) &&
				    json_object_is_type(env, json_type_array)) {
					oenv = json_object_new_array();
					for (size_t k = 0; k < json_object_array_length(env) &&
							   json_object_array_length(oenv) < 64;
					     k++) {
						struct json_object *e = json_object_array_get_idx(
								       env, k),
								   *val;

						if (json_object_object_get_ex(e, "value", &val) &&
						    json_object_is_type(val, json_type_string) &&
						    json_object_get_string_len(val) <= 256)
							json_object_array_add(oenv,
									      json_object_get(e));
					}
					json_object_object_add(oc, "env", oenv);
				}
				json_object_array_add(outc, oc);
			}
		json_object_object_add(sp, "containers", outc);
	}
	if (json_object_object_get_ex(pod, "status", &in)) {
		struct json_object *conds, *ready = json_object_new_array();

		for (size_t i = 0; i < sizeof(skeys) / sizeof(skeys[0]); i++)
			copy_key(st, in, skeys[i]);
		if (json_object_object_get_ex(in, "conditions", &conds) &&
		    json_object_is_type(conds, json_type_array))
			for (size_t i = 0; i < json_object_array_length(conds); i++) {
				struct json_object *c = json_object_array_get_idx(conds, i), *t;

				if (json_object_object_get_ex(c, "type", &t) &&
				    !strcmp(json_object_get_string(t), "Ready"))
					json_object_array_add(ready, json_object_get(c));
			}
		json_object_object_add(st, "conditions", ready);
	}
	json_object_object_add(out, "metadata", m);
	json_object_object_add(out, "spec", sp);
	json_object_object_add(out, "status", st);
	return out;
}

static const char *jstr(struct json_object *o, const char *a, const char *b)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, a, &v))
		return NULL;
	if (b && !json_object_object_get_ex(v, b, &v))
		return NULL;
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* An item of a list or the object of an event, as stored: NULL when it has no name. */
static struct kube_obj *keep(struct kwatch *w, struct json_object *item)
{
	const char *name = jstr(item, "metadata", "name"), *ns = jstr(item, "metadata", "namespace");
	struct json_object *m, *o;
	struct kube_obj *ko;
	char av[128];

	if (!name)
		return NULL;
	/* list items of built-in kinds carry no apiVersion and kind */
	if (w->kind->group[0])
		snprintf(av, sizeof(av), "%s/%s", w->kind->group, w->version);
	else
		snprintf(av, sizeof(av), "%s", w->version);
	json_object_object_add(item, "apiVersion", json_object_new_string(av));
	json_object_object_add(item, "kind", json_object_new_string(w->kind->kind));
	if (json_object_object_get_ex(item, "metadata", &m)) {
		/* what changes on every write without changing what the mesh reads: a status
		 * update would otherwise put the whole config through a load again */
		json_object_object_del(m, "managedFields");
		json_object_object_del(m, "resourceVersion");
		if (json_object_object_get_ex(m, "annotations", &o))
			json_object_object_del(o,
					       "kubectl.kubernetes.io/last-applied-configuration");
	}
	o = w->kind->trim_pod ? trim_pod(item) : json_object_get(item);
	ko = obj_new(w->kind->kind, ns, name,
		     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return ko;
}

/* ---------- HTTP ---------- */

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	return atomic_load(&((struct kwatch *)arg)->k->stop) ? 1 : 0;
}

/* The handle set up for one GET of url; the token is read again for each request. */
static struct curl_slist *req_setup(struct kwatch *w, const char *url, bool stream)
{
	const struct kube_conn *c = &w->k->conn;
	struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
	char *tok = kube_conn_token(c);
	CURL *h = w->h;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)KUBE_CONNECT_S);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 15L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "bpfmesh-agent");
	/* a watch lives for minutes; a list or a stalled stream does not */
	curl_easy_setopt(h, CURLOPT_TIMEOUT, stream ? (long)(KUBE_WATCH_S + 120) : 120L);
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (c->ca.p) {
		struct curl_blob b = {c->ca.p, c->ca.n, CURL_BLOB_COPY};

		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
	}
	if (c->cert_file)
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
	if (c->cert.p) {
		struct curl_blob b = {c->cert.p, c->cert.n, CURL_BLOB_COPY};

		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
	}
	if (c->key_file)
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
	if (c->key.p) {
		struct curl_blob b = {c->key.p, c->key.n, CURL_BLOB_COPY};

		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
	}
	if (c->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (tok && *tok) {
		char *a = NULL;

		if (asprintf(&a, "Authorization: Bearer %s", tok) >= 0)
			hdr = curl_slist_append(hdr, a);
		free(a);
	}
	free(tok);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	return hdr;
}

static void set_err(struct kwatch *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(struct kwatch *w, const char *fmt, ...)
{
	va_list ap;
	char msg[200];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&w->k->mu);
	if (!w->err_since) {
		w->err_since = time(NULL);
		pr_warn("kube: %s: %s (the objects held stay in force)", w->kind->resource, msg);
	}
	snprintf(w->err, sizeof(w->err), "%s", msg);
	pthread_mutex_unlock(&w->k->mu);
}

static void set_ok(struct kwatch *w)
{
	pthread_mutex_lock(&w->k->mu);
	if (w->err_since)
		pr_info("kube: %s: reconnected", w->kind->resource);
	w->err_since = 0;
	w->err[0] = 0;
	pthread_mutex_unlock(&w->k->mu);
	w->backoff_ms = 0;
}

/* Sleep ms unless stopping; false when stopping. */
static bool nap(struct kube *k, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&k->mu);
	while (!atomic_load(&k->stop) &&
	       pthread_cond_timedwait(&k->cv, &k->mu, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&k->mu);
	return !atomic_load(&k->stop);
}

/* After an error: wait the next step of an exponential back-off, with +-25% jitter. */
static bool back_off(struct kwatch *w)
{
	int b = w->backoff_ms ? w->backoff_ms * 2 : KUBE_BACKOFF_MIN_MS;

	w->backoff_ms = b > KUBE_BACKOFF_MAX_MS ? KUBE_BACKOFF_MAX_MS : b;
	return nap(w->k, w->backoff_ms * 3 / 4 + (int)(random() % (w->backoff_ms / 2 + 1)));
}

/* "&fieldSelector=..." of the kind, or "". */
static const char *sel_of(const struct kwatch *w, char *buf, size_t len)
{
	if (!w->kind->fields)
		return "";
	snprintf(buf, len, "&fieldSelector=%s", w->kind->fields);
	return buf;
}

static void base_url(struct kwatch *w, const char *version, char *buf, size_t len)
{
	char ns[200] = "";

	if (w->kind->ns)
		snprintf(ns, sizeof(ns), "namespaces/%s/", w->kind->ns);
	if (w->kind->group[0])
		snprintf(buf, len, "%s/apis/%s/%s/%s%s", w->k->conn.server, w->kind->group, version,
			 ns, w->kind->resource);
	else
		snprintf(buf, len, "%s/api/%s/%s%s", w->k->conn.server, version, ns,
			 w->kind->resource);
}

enum lres { L_OK, L_ABSENT, L_GONE, L_ERR, L_STOP };

/* One GET of a list chunk: its parsed body, or the outcome. */
static enum lres get_json(struct kwatch *w, const char *url, struct json_object **out)
{
	struct http_body b = {.max = KUBE_MAX_BODY};
	struct curl_slist *hdr = req_setup(w, url, false);
	long code = 0;
	CURLcode rc;

	curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, http_body_write);
	curl_easy_setopt(w->h, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(w->h);
	curl_slist_free_all(hdr);
	curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &code);
	*out = NULL;
	if (atomic_load(&w->k->stop)) {
		free(b.p);
		return L_STOP;
	}
	if (rc != CURLE_OK) {
		set_err(w, "%s", b.big ? "answer too large" : curl_easy_strerror(rc));
		free(b.p);
		return L_ERR;
	}
	if (code == 404) {
		free(b.p);
		return L_ABSENT;
	}
	if (code == 410) {
		free(b.p);
		return L_GONE;
	}
	if (code != 200) {
		struct json_object *st = b.p ? json_tokener_parse(b.p) : NULL;
		const char *msg = st ? jstr(st, "message", NULL) : NULL;

		set_err(w, "HTTP %ld%s%s", code, msg ? ": " : "", msg ? msg : "");
		json_object_put(st);
		free(b.p);
		return L_ERR;
	}
	*out = b.p ? json_tokener_parse(b.p) : NULL;
	free(b.p);
	if (!*out) {
		set_err(w, "list: not JSON");
		return L_ERR;
	}
	return L_OK;
}

/* A whole list, chunk by chunk, into a new store swapped in at the end. */
static enum lres list_all(struct kwatch *w)
{
	struct kstore fresh = {0};
	char base[600], url[4096], cont[2048] = "", sel[200];
	const char *const *vers = w->version ? (const char *const[]){w->version, NULL}
					     : w->kind->versions;
	const char *ver = w->version;

	for (;;) {
		struct json_object *root, *items;
		const char *c, *rv;
		enum lres r;

		if (!ver) { /* find the version served: the first that is not 404 */
			for (int i = 0; vers[i]; i++) {
				base_url(w, vers[i], base, sizeof(base));
				snprintf(url, sizeof(url), "%s?limit=1%s", base,
					 sel_of(w, sel, sizeof(sel)));
				r = get_json(w, url, &root);
				json_object_put(root);
				if (r != L_ABSENT) {
					if (r != L_OK) {
						st_free(&fresh);
						return r;
					}
					ver = vers[i];
					break;
				}
			}
			if (!ver) {
				st_free(&fresh);
				return L_ABSENT;
			}
			w->version = ver;
		}
		base_url(w, ver, base, sizeof(base));
		if (cont[0]) {
			char *esc = curl_easy_escape(w->h, cont, 0);

			snprintf(url, sizeof(url), "%s?limit=%d&continue=%s%s", base,
				 KUBE_LIST_LIMIT, esc ? esc : "", sel_of(w, sel, sizeof(sel)));
			curl_free(esc);
		} else {
			snprintf(url, sizeof(url), "%s?limit=%d%s", base, KUBE_LIST_LIMIT,
				 sel_of(w, sel, sizeof(sel)));
		}
		r = get_json(w, url, &root);
		if (r == L_GONE && cont[0]) { /* the continue token expired: from the start */
			st_free(&fresh);
			cont[0] = 0;
			continue;
		}
		if (r != L_OK) {
			if (r == L_ABSENT) /* the CRD went away between two requests */
				w->version = NULL;
			st_free(&fresh);
			return r;
		}
		if (json_object_object_get_ex(root, "items", &items) &&
		    json_object_is_type(items, json_type_array))
			for (size_t i = 0; i < json_object_array_length(items); i++) {
				struct kube_obj *o = keep(w, json_object_array_get_idx(items, i));

				if (o)
					st_put(&fresh, o);
			}
		c = jstr(root, "metadata", "continue");
		rv = jstr(root, "metadata", "resourceVersion");
		if (rv && !cont[0]) /* every chunk is of the first one's version */
			snprintf(w->rv, sizeof(w->rv), "%s", rv);
		snprintf(cont, sizeof(cont), "%s", c ? c : "");
		json_object_put(root);
		if (!cont[0])
			break;
	}
	pthread_mutex_lock(&w->k->mu);
	bool changed = !st_same(&fresh, &w->st) || w->state != KS_SYNCED;

	st_free(&w->st);
	w->st = fresh;
	w->state = KS_SYNCED;
	w->rvnum = strtoull(w->rv, NULL, 10);
	if (changed)
		notify(w->k);
	pthread_mutex_unlock(&w->k->mu);
	return L_OK;
}

/* One watch event (a line of the stream). */
static void on_event(struct kwatch *w, const char *line)
{
	struct json_object *ev = json_tokener_parse(line), *obj;
	const char *type = ev ? jstr(ev, "type", NULL) : NULL, *rv;

	if (!type || !json_object_object_get_ex(ev, "object", &obj)) {
		json_object_put(ev);
		return;
	}
	if (!strcmp(type, "ERROR")) {
		struct json_object *code;

		/* 410: the resourceVersion is too old; anything else ends the stream too */
		if (!json_object_object_get_ex(obj, "code", &code) ||
		    json_object_get_int(code) != 410)
			set_err(w, "watch: %s", jstr(obj, "message", NULL) ? jstr(obj, "message", NULL)
									  : "ERROR event");
		w->relist = true;
		json_object_put(ev);
		return;
	}
	rv = jstr(obj, "metadata", "resourceVersion");
	if (strcmp(type, "BOOKMARK")) {
		struct kube_obj *o = keep(w, obj);
		bool changed = false;

		pthread_mutex_lock(&w->k->mu);
		if (o && !strcmp(type, "DELETED")) {
			changed = st_del(&w->st, o->name);
			obj_put(o);
		} else if (o) {
			changed = st_put(&w->st, o);
		}
		if (changed)
			notify(w->k);
		pthread_mutex_unlock(&w->k->mu);
	}
	if (rv) {
		snprintf(w->rv, sizeof(w->rv), "%s", rv);
		pthread_mutex_lock(&w->k->mu);
		w->rvnum = strtoull(rv, NULL, 10);
		pthread_mutex_unlock(&w->k->mu);
	}
	json_object_put(ev);
}

static size_t on_stream(char *data, size_t sz, size_t nm, void *arg)
{
	struct kwatch *w = arg;
	size_t n = sz * nm;

	for (size_t i = 0; i < n; i++) {
		if (data[i] != '\n') {
			if (w->nline + 2 > w->capline) {
				size_t cap = w->capline ? 2 * w->capline : 4096;
				char *p = cap <= KUBE_MAX_BODY ? realloc(w->line, cap) : NULL;

				if (!p) {
					w->too_big = true;
					return 0;
				}
				w->line = p;
				w->capline = cap;
			}
			w->line[w->nline++] = data[i];
			continue;
		}
		if (w->nline) {
			w->line[w->nline] = 0;
			on_event(w, w->line);
			w->nline = 0;
		}
		if (w->relist)
			return 0; /* ends the transfer */
	}
	return n;
}

/* The watch's status line: a 200 means connected again, before any event arrives. */
static size_t on_header(char *data, size_t sz, size_t nm, void *arg)
{
	size_t n = sz * nm;

	if (n > 12 && !strncmp(data, "HTTP/", 5) && strstr(data, " 200"))
		set_ok(arg);
	return n;
}

/* Watch from w->rv until the stream ends: L_OK (ended, watch again), L_GONE, L_ERR. */
static enum lres watch(struct kwatch *w)
{
	char base[600], url[1024], sel[200];
	struct curl_slist *hdr;
	long code = 0;
	CURLcode rc;
	int t = KUBE_WATCH_S + (int)(random() % 60);

	base_url(w, w->version, base, sizeof(base));
	snprintf(url, sizeof(url),
		 "%s?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%d%s", base,
		 w->rv, t, sel_of(w, sel, sizeof(sel)));
	hdr = req_setup(w, url, true);
	w->nline = 0;
	w->relist = w->too_big = false;
	curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(w->h, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(w->h, CURLOPT_HEADERDATA, w);
	rc = curl_easy_perform(w->h);
	curl_slist_free_all(hdr);
	curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &code);
	if (atomic_load(&w->k->stop))
		return L_STOP;
	if (w->too_big) {
		set_err(w, "watch: an event over %d MB or no memory", KUBE_MAX_BODY >> 20);
		return L_ERR;
	}
	if (w->relist || code == 410)
		return L_GONE;
	if (code == 404) {
		w->version = NULL;
		return L_ABSENT;
	}
	if (code && code != 200) {
		set_err(w, "watch: HTTP %ld", code);
		return L_ERR;
	}
	if (rc != CURLE_OK && !code) {
		set_err(w, "watch: %s", curl_easy_strerror(rc));
		return L_ERR;
	}
	/* the server ended the stream (timeoutSeconds, or a cut mid-stream): watch again */
	set_ok(w);
	return L_OK;
}

/* Not served (404). A built-in kind is always served: a 404 there is an error (a wrong server
 * path, a proxy in the way), never "no objects". A CRD kind that holds objects keeps them
 * until it has been absent for absent_retry_ms (a restarting API server 404s CRDs for a
 * moment; dropping AuthorizationPolicies then would open what they deny). 1 when it is now
 * absent, 0 when it keeps what it has for now. */
static int mark_absent(struct kwatch *w)
{
	if (!w->kind->group[0] || !strcmp(w->kind->group, "discovery.k8s.io")) {
		set_err(w, "%s not served (404): is the server address the API server's?",
			w->kind->resource);
		return 0;
	}
	pthread_mutex_lock(&w->k->mu);
	if (w->st.n && (!w->absent_since ||
			time(NULL) - w->absent_since < w->k->absent_retry_ms / 1000)) {
		if (!w->absent_since)
			pr_warn("kube: %s: not served now; its %d objects stay until that lasts %d s",
				w->kind->resource, w->st.n, w->k->absent_retry_ms / 1000);
		if (!w->absent_since)
			w->absent_since = time(NULL);
		pthread_mutex_unlock(&w->k->mu);
		return 0;
	}
	w->absent_since = 0;
	if (!w->absent_logged)
		pr_info("kube: %s (%s) is not served: skipped (asked for again every %d s)",
			w->kind->resource, w->kind->group[0] ? w->kind->group : "core",
			w->k->absent_retry_ms / 1000);
	w->absent_logged = true;
	if (w->st.n || w->state != KS_ABSENT) { /* a CRD deleted: its objects go */
		st_free(&w->st);
		w->state = KS_ABSENT;
		notify(w->k);
	}
	w->err_since = 0;
	pthread_mutex_unlock(&w->k->mu);
	return 1;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

static void *kind_thread(void *arg)
{
	struct kwatch *w = arg;
	uint64_t listed_at = 0;

	while (!atomic_load(&w->k->stop)) {
		enum lres r;

		/* a server that answers every watch with 410 gets a list a second, not a loop */
		if (listed_at && mono_ms() - listed_at < 1000 &&
		    !nap(w->k, (int)(1000 - (mono_ms() - listed_at))))
			break;
		r = list_all(w);
		listed_at = mono_ms();
		if (r == L_STOP)
			break;
		if (r == L_ABSENT) {
			int gone = mark_absent(w);

			if (!nap(w->k, gone ? w->k->absent_retry_ms : 1000))
				break;
			continue;
		}
		w->absent_since = 0;
		if (r != L_OK) {
			if (!back_off(w))
				break;
			continue;
		}
		set_ok(w);
		if (w->absent_logged)
			pr_info("kube: %s is served now (%s)", w->kind->resource, w->version);
		w->absent_logged = false;
		for (;;) { /* watch until the list is too old */
			r = watch(w);
			if (r == L_OK)
				continue;
			if (r == L_ERR && back_off(w))
				continue; /* from the same resourceVersion: no gap */
			break;
		}
		if (r == L_STOP || atomic_load(&w->k->stop))
			break;
		if (r == L_ABSENT)
			mark_absent(w);
		/* L_GONE (or the CRD gone): list again and swap the whole kind */
	}
	return NULL;
}

/* ---------- the interface ---------- */

static int conn_copy(struct kube_conn *d, const struct kube_conn *s)
{
	*d = *s;
	d->server = strdup(s->server);
	d->token = s->token ? strdup(s->token) : NULL;
	d->token_file = s->token_file ? strdup(s->token_file) : NULL;
	d->ca_file = s->ca_file ? strdup(s->ca_file) : NULL;
	d->cert_file = s->cert_file ? strdup(s->cert_file) : NULL;
	d->key_file = s->key_file ? strdup(s->key_file) : NULL;
	d->namespace = s->namespace ? strdup(s->namespace) : NULL;
	d->ca.p = d->cert.p = d->key.p = NULL;
	if (s->ca.p && (d->ca.p = malloc(s->ca.n)))
		memcpy(d->ca.p, s->ca.p, s->ca.n);
	if (s->cert.p && (d->cert.p = malloc(s->cert.n)))
		memcpy(d->cert.p, s->cert.p, s->cert.n);
	if (s->key.p && (d->key.p = malloc(s->key.n)))
		memcpy(d->key.p, s->key.p, s->key.n);
	return d->server ? 0 : -1;
}

struct kube *kube_start(const struct kube_opts *o)
{
	struct kube *k = calloc(1, sizeof(*k));

	if (!k || conn_copy(&k->conn, o->conn)) {
		free(k);
		return NULL;
	}
	k->notify_fd = o->notify_fd;
	k->absent_retry_ms = o->absent_retry_ms > 0 ? o->absent_retry_ms : 10000;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int i = 0; i < NKINDS; i++) {
		struct kwatch *w = &k->w[i];
		bool want = !o->only;

		w->k = k;
		w->kind = &kinds[i];
		for (int j = 0; o->only && o->only[j]; j++)
			want = want || !strcmp(o->only[j], kinds[i].resource);
		if (!want) { /* not asked for: never listed, counts as done */
			w->state = KS_ABSENT;
			continue;
		}
		w->h = curl_easy_init();
		if (!w->h || pthread_create(&w->th, NULL, kind_thread, w)) {
			kube_stop(k);
			return NULL;
		}
		w->started = true;
	}
	{
		int n = 0;

		for (int i = 0; i < NKINDS; i++)
			n += k->w[i].started;
		pr_info("kube: watching %d kinds at %s", n, k->conn.source);
	}
	return k;
}

void kube_stop(struct kube *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->mu);
	atomic_store(&k->stop, true);
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
	for (int i = 0; i < NKINDS; i++) {
		struct kwatch *w = &k->w[i];

		if (w->started)
			pthread_join(w->th, NULL);
		if (w->h)
			curl_easy_cleanup(w->h);
		st_free(&w->st);
		free(w->line);
	}
	kube_conn_free(&k->conn);
	pthread_cond_destroy(&k->cv);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

static uint64_t gen_locked(struct kube *k, uint64_t *rv_min)
{
	uint64_t rv = 0;

	for (int i = 0; i < NKINDS; i++)
		if (k->w[i].state == KS_SYNCED && (!rv || k->w[i].rvnum < rv))
			rv = k->w[i].rvnum;
	*rv_min = rv;
	return k->gen;
}

int kube_snapshot(struct kube *k, struct kube_snap *s)
{
	int n = 0;

	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&k->mu);
	for (int i = 0; i < NKINDS; i++)
		n += k->w[i].st.n;
	s->v = calloc(n ? n : 1, sizeof(*s->v));
	if (!s->v) {
		pthread_mutex_unlock(&k->mu);
		return -1;
	}
	for (int i = 0; i < NKINDS; i++)
		for (int j = 0; j < k->w[i].st.n; j++) {
			struct kube_obj *o = k->w[i].st.v[j];

			atomic_fetch_add(&o->refs, 1);
			s->v[s->n++] = o;
		}
	s->gen = gen_locked(k, &s->rv_min);
	pthread_mutex_unlock(&k->mu);
	return 0;
}

void kube_snap_free(struct kube_snap *s)
{
	for (int i = 0; i < s->n; i++)
		obj_put(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

const char *kube_obj_name(const struct kube_obj *o)
{
	return o->name;
}

const char *kube_obj_json(const struct kube_obj *o, size_t *len)
{
	*len = o->len;
	return o->json;
}

bool kube_synced(struct kube *k)
{
	bool ok = true;

	pthread_mutex_lock(&k->mu);
	for (int i = 0; i < NKINDS; i++)
		ok = ok && k->w[i].state != KS_PENDING;
	pthread_mutex_unlock(&k->mu);
	return ok;
}

uint64_t kube_gen(struct kube *k, uint64_t *rv_min)
{
	uint64_t g;

	pthread_mutex_lock(&k->mu);
	g = gen_locked(k, rv_min);
	pthread_mutex_unlock(&k->mu);
	return g;
}

void kube_status(struct kube *k, char *buf, size_t len)
{
	time_t since = 0;
	const char *why = "", *what = "";
	bool synced = true;

	pthread_mutex_lock(&k->mu);
	for (int i = 0; i < NKINDS; i++) {
		struct kwatch *w = &k->w[i];

		synced = synced && w->state != KS_PENDING;
		if (w->err_since && (!since || w->err_since < since)) {
			since = w->err_since;
			why = w->err;
			what = w->kind->resource;
		}
	}
	if (since) {
		char when[64];

		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&since));
		snprintf(buf, len, "disconnected since %s: %s: %s", when, what, why);
	} else {
		snprintf(buf, len, "%s", synced ? "connected" : "syncing");
	}
	pthread_mutex_unlock(&k->mu);
}
