// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * trace.c: trace context, span encodings and exporters (trace.h). The encoders are json-c for
 * Zipkin v2 and OTLP/JSON, protobuf-c (loader/otlp.proto, OTLP's field numbers) for
 * OTLP/protobuf; an exporter is one thread with a bounded queue, posting with libcurl.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include "gen/otlp.pb-c.h"
#include "l7route.h"
#include "log.h"
#include "trace.h"

/* ---------------- context ---------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* W3C: lower-case hex only */
static bool lowhex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* n hex digits (even) into out, right-aligned in olen bytes; false if not hex or all zero */
static bool unhex(const char *s, size_t n, uint8_t *out, size_t olen)
{
	bool nz = false;

	if (n % 2 || n / 2 > olen)
		return false;
	memset(out, 0, olen);
	for (size_t i = 0; i < n / 2; i++) {
		int a = hexval(s[2 * i]), b = hexval(s[2 * i + 1]);

		if (a < 0 || b < 0)
			return false;
		out[olen - n / 2 + i] = (uint8_t)(a << 4 | b);
		nz |= out[olen - n / 2 + i] != 0;
	}
	return nz;
}

void tr_hex(const uint8_t *id, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[id[i] >> 4];
		out[2 * i + 1] = hx[id[i] & 15];
	}
	out[2 * n] = 0;
}

/* W3C trace context: 00-<32 hex>-<16 hex>-<2 hex flags> (a later version: the same prefix) */
static bool parse_traceparent(const char *v, struct tr_ctx *c)
{
	int flags;

	if (strlen(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || !strncmp(v, "ff", 2) ||
	    !lowhex(v, 2) || !lowhex(v + 3, 32) || !lowhex(v + 36, 16) || !lowhex(v + 53, 2))
		return false;
	if (!strncmp(v, "00", 2) ? v[55] != 0 : (v[55] && v[55] != '-'))
		return false; /* version 00 is exactly 55; a later one may go on after a '-' */
	if (!unhex(v + 3, 32, c->trace, 16) || !unhex(v + 36, 16, c->span, 8))
		return false;
	flags = hexval(v[53]) << 4 | hexval(v[54]);
	if (hexval(v[53]) < 0 || hexval(v[54]) < 0)
		return false;
	c->has_trace = c->has_span = true;
	c->sampled = flags & 1;
	c->w3c = true;
	return true;
}

/* b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]], or just a sampling state */
static bool parse_b3(const char *v, struct tr_ctx *c)
{
	const char *d1 = strchr(v, '-'), *d2 = d1 ? strchr(d1 + 1, '-') : NULL;

	if (!d1) {
		if (!strcmp(v, "0"))
			c->sampled = 0;
		else if (!strcmp(v, "1") || !strcmp(v, "d"))
			c->sampled = 1;
		return false;
	}
	if (!unhex(v, (size_t)(d1 - v), c->trace, 16) ||
	    !unhex(d1 + 1, d2 ? (size_t)(d2 - d1 - 1) : strlen(d1 + 1), c->span, 8))
		return false;
	c->has_trace = c->has_span = true;
	c->b3 = true;
	if (d2 && (d2[1] == '0'))
		c->sampled = 0;
	else if (d2 && (d2[1] == '1' || d2[1] == 'd'))
		c->sampled = 1;
	return true;
}

void tr_extract(const char *(*get)(void *arg, const char *name), void *arg, struct tr_ctx *c)
{
	const char *tp = get(arg, "traceparent"), *b3 = get(arg, "b3"), *t, *s, *smp;

	memset(c, 0, sizeof(*c));
	c->sampled = -1;
	if (tp && parse_traceparent(tp, c)) {
		const char *ts = get(arg, "tracestate");

		if (ts && strlen(ts) < sizeof(c->tracestate))
			snprintf(c->tracestate, sizeof(c->tracestate), "%s", ts);
		return;
	}
	if (b3 && parse_b3(b3, c))
		return;
	t = get(arg, "x-b3-traceid");
	s = get(arg, "x-b3-spanid");
	smp = get(arg, "x-b3-sampled");
	if (smp)
		c->sampled = !strcmp(smp, "1") || !strcasecmp(smp, "true");
	if (get(arg, "x-b3-flags") && !strcmp(get(arg, "x-b3-flags"), "1"))
		c->sampled = 1; /* debug */
	if (t && unhex(t, strlen(t), c->trace, 16)) {
		c->has_trace = true;
		c->b3 = true;
		c->has_span = s && unhex(s, strlen(s), c->span, 8);
	}
}

void tr_inject(struct l7_hdrs *h, const uint8_t trace[16], const uint8_t span[8],
	       const uint8_t *parent, bool sampled, const char *tracestate, bool w3c, bool b3)
{
	char t[33], sp[17], p[17], v[80];

	tr_hex(trace, 16, t);
	tr_hex(span, 8, sp);
	if (w3c) {
		snprintf(v, sizeof(v), "00-%s-%s-%s", t, sp, sampled ? "01" : "00");
		l7h_set(h, "traceparent", v);
		if (tracestate && *tracestate)
			l7h_set(h, "tracestate", tracestate);
	}
	if (!b3)
		return;
	if (parent)
		tr_hex(parent, 8, p);
	if (l7h_get(h, "b3")) { /* the single header: rewritten in its form, alone */
		if (parent)
			snprintf(v, sizeof(v), "%s-%s-%d-%s", t, sp, sampled, p);
		else
			snprintf(v, sizeof(v), "%s-%s-%d", t, sp, sampled);
		l7h_set(h, "b3", v);
		return;
	}
	l7h_set(h, "x-b3-traceid", t);
	l7h_set(h, "x-b3-spanid", sp);
	if (parent)
		l7h_set(h, "x-b3-parentspanid", p);
	else
		l7h_del(h, "x-b3-parentspanid");
	l7h_set(h, "x-b3-sampled", sampled ? "1" : "0");
	l7h_del(h, "x-b3-flags");
}

/* ---------------- spans ---------------- */

void tr_tag(struct tr_span *s, const char *k, const char *v, int max_len)
{
	size_t kn, vn;

	if (!k || !v || s->ntags >= TR_MAX_TAGS)
		return;
	kn = strlen(k);
	vn = strlen(v);
	if (max_len > 0 && vn > (size_t)max_len)
		vn = (size_t)max_len; /* Envoy's max_tag_length (Istio: 256) */
	if (s->taglen + kn + vn + 2 > sizeof(s->tagbuf))
		return;
	s->tags[s->ntags].k = s->taglen;
	memcpy(s->tagbuf + s->taglen, k, kn + 1);
	s->taglen = (uint16_t)(s->taglen + kn + 1);
	s->tags[s->ntags].v = s->taglen;
	memcpy(s->tagbuf + s->taglen, v, vn);
	s->tagbuf[s->taglen + vn] = 0;
	s->taglen = (uint16_t)(s->taglen + vn + 1);
	s->ntags++;
}

void tr_span_free(struct tr_span *s)
{
	free(s);
}

/* ---------------- encodings ---------------- */

static char *json_out(struct json_object *o, size_t *len)
{
	size_t n;
	const char *t = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
	char *r = t ? malloc(n + 1) : NULL;

	if (r) {
		memcpy(r, t, n + 1);
		*len = n;
	}
	json_object_put(o);
	return r;
}

/* A growable output buffer for the hand-written Zipkin JSON (json-c's object trees cost more
 * than the spans themselves at 100% sampling). */
struct jb {
	char *p;
	size_t n, cap;
	bool oom;
};

static void jb_put(struct jb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		char *p;

		while (cap < b->n + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void jb_s(struct jb *b, const char *s)
{
	jb_put(b, s, strlen(s));
}

/* a JSON string: quotes, the escapes JSON requires, control bytes as \u00XX */
static void jb_str(struct jb *b, const char *s)
{
	const char *run = s;

	jb_put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		jb_put(b, run, (size_t)(s - run));
		if (c == '"' || c == '\\')
			snprintf(esc, sizeof(esc), "\\%c", c);
		else
			snprintf(esc, sizeof(esc), "\\u%04x", c);
		jb_s(b, esc);
		run = s + 1;
	}
	jb_put(b, run, (size_t)(s - run));
	jb_put(b, "\"", 1);
}

char *tr_zipkin_json(struct tr_span *const *v, int n, size_t *len)
{
	struct jb b = {0};
	char num[64], hx[33];

	jb_s(&b, "[");
	for (int i = 0; i < n; i++) {
		const struct tr_span *s = v[i];

		jb_s(&b, i ? ",{\"traceId\":\"" : "{\"traceId\":\"");
		tr_hex(s->trace, 16, hx);
		jb_s(&b, hx);
		jb_s(&b, "\",\"id\":\"");
		tr_hex(s->id, 8, hx);
		jb_s(&b, hx);
		if (s->has_parent) {
			jb_s(&b, "\",\"parentId\":\"");
			tr_hex(s->parent, 8, hx);
			jb_s(&b, hx);
		}
		jb_s(&b, "\",\"name\":");
		jb_str(&b, s->name);
		jb_s(&b, s->server ? ",\"kind\":\"SERVER\"" : ",\"kind\":\"CLIENT\"");
		snprintf(num, sizeof(num), ",\"timestamp\":%llu,\"duration\":%llu",
			 (unsigned long long)s->start_us,
			 (unsigned long long)(s->dur_us ? s->dur_us : 1));
		jb_s(&b, num);
		jb_s(&b, ",\"localEndpoint\":{\"serviceName\":");
		jb_str(&b, s->service);
		if (s->ipv4[0]) {
			jb_s(&b, ",\"ipv4\":");
			jb_str(&b, s->ipv4);
		}
		jb_s(&b, "},\"tags\":{");
		for (int k = 0; k < s->ntags; k++) {
			if (k)
				jb_s(&b, ",");
			jb_str(&b, tr_tag_k(s, k));
			jb_s(&b, ":");
			jb_str(&b, tr_tag_v(s, k));
		}
		jb_s(&b, "}}");
	}
	jb_s(&b, "]");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.n;
	return b.p;
}

/* Spans grouped by their service (one ResourceSpans each, in first-seen order). */
static int groups(struct tr_span *const *v, int n, int *grp)
{
	int ng = 0;

	for (int i = 0; i < n; i++) {
		grp[i] = -1;
		for (int j = 0; j < i && grp[i] < 0; j++)
			if (!strcmp(v[j]->service, v[i]->service))
				grp[i] = grp[j];
		if (grp[i] < 0)
			grp[i] = ng++;
	}
	return ng;
}

char *tr_otlp_json(struct tr_span *const *v, int n, size_t *len)
{
	struct json_object *root = json_object_new_object(), *rss = json_object_new_array();
	int *grp = calloc((size_t)(n ? n : 1), sizeof(*grp)), ng;

	if (!root || !rss || !grp) {
		free(grp);
		json_object_put(root);
		json_object_put(rss);
		return NULL;
	}
	ng = groups(v, n, grp);
	for (int g = 0; g < ng; g++) {
		struct json_object *rs = json_object_new_object(), *res = json_object_new_object(),
				   *attrs = json_object_new_array(), *ss = json_object_new_array(),
				   *sc = json_object_new_object(),
				   *scope = json_object_new_object(),
				   *spans = json_object_new_array();
		const char *svc = NULL;

		for (int i = 0; i < n; i++) {
			const struct tr_span *s = v[i];
			struct json_object *o, *at;
			char hx[33], num[24];

			if (grp[i] != g)
				continue;
			svc = s->service;
			o = json_object_new_object();
			at = json_object_new_array();
			tr_hex(s->trace, 16, hx);
			json_object_object_add(o, "traceId", json_object_new_string(hx));
			tr_hex(s->id, 8, hx);
			json_object_object_add(o, "spanId", json_object_new_string(hx));
			if (s->has_parent) {
				tr_hex(s->parent, 8, hx);
				json_object_object_add(o, "parentSpanId",
						       json_object_new_string(hx));
			}
			if (s->tracestate[0])
				json_object_object_add(o, "traceState",
						       json_object_new_string(s->tracestate));
			json_object_object_add(o, "name", json_object_new_string(s->name));
			json_object_object_add(o, "kind", json_object_new_int(s->server ? 2 : 3));
			snprintf(num, sizeof(num), "%llu", (unsigned long long)s->start_us * 1000);
			json_object_object_add(o, "startTimeUnixNano", json_object_new_string(num));
			snprintf(num, sizeof(num), "%llu",
				 (unsigned long long)(s->start_us + s->dur_us) * 1000);
			json_object_object_add(o, "endTimeUnixNano", json_object_new_string(num));
			for (int k = 0; k < s->ntags; k++) {
				struct json_object *kv = json_object_new_object(),
						   *val = json_object_new_object();

				json_object_object_add(kv, "key",
						       json_object_new_string(tr_tag_k(s, k)));
				json_object_object_add(val, "stringValue",
						       json_object_new_string(tr_tag_v(s, k)));
				json_object_object_add(kv, "value", val);
				json_object_array_add(at, kv);
			}
			json_object_object_add(o, "attributes", at);
			if (s->error) {
				struct json_object *st = json_object_new_object();

				json_object_object_add(st, "code", json_object_new_int(2));
				json_object_object_add(o, "status", st);
			}
			json_object_array_add(spans, o);
		}
		{
			struct json_object *kv = json_object_new_object(),
					   *val = json_object_new_object();

			json_object_object_add(kv, "key", json_object_new_string("service.name"));
			json_object_object_add(val, "stringValue",
					       json_object_new_string(svc ? svc : ""));
			json_object_object_add(kv, "value", val);
			json_object_array_add(attrs, kv);
		}
		json_object_object_add(res, "attributes", attrs);
		json_object_object_add(rs, "resource", res);
		json_object_object_add(scope, "name", json_object_new_string("bpfmesh"));
		json_object_object_add(sc, "scope", scope);
		json_object_object_add(sc, "spans", spans);
		json_object_array_add(ss, sc);
		json_object_object_add(rs, "scopeSpans", ss);
		json_object_array_add(rss, rs);
	}
	free(grp);
	json_object_object_add(root, "resourceSpans", rss);
	return json_out(root, len);
}

uint8_t *tr_otlp_pb(struct tr_span *const *v, int n, size_t *len)
{
	Bpfmesh__Otlp__ExportTraceServiceRequest req =
	    BPFMESH__OTLP__EXPORT_TRACE_SERVICE_REQUEST__INIT;
	int *grp = calloc((size_t)(n ? n : 1), sizeof(*grp)), ng, nkv = 0;
	Bpfmesh__Otlp__ResourceSpans *rs = NULL, **rsp = NULL;
	Bpfmesh__Otlp__Resource *res = NULL;
	Bpfmesh__Otlp__ScopeSpans *ss = NULL, **ssp = NULL;
	Bpfmesh__Otlp__InstrumentationScope scope = BPFMESH__OTLP__INSTRUMENTATION_SCOPE__INIT;
	Bpfmesh__Otlp__Span *sp = NULL, **spp = NULL;
	Bpfmesh__Otlp__Status st = BPFMESH__OTLP__STATUS__INIT;
	Bpfmesh__Otlp__KeyValue *kv = NULL, **kvp = NULL;
	Bpfmesh__Otlp__AnyValue *av = NULL;
	uint8_t *out = NULL;
	int ai = 0, si = 0;

	if (!grp)
		return NULL;
	ng = groups(v, n, grp);
	for (int i = 0; i < n; i++)
		nkv += v[i]->ntags;
	nkv += ng; /* service.name of each resource */
	rs = calloc((size_t)ng + 1, sizeof(*rs));
	rsp = calloc((size_t)ng + 1, sizeof(*rsp));
	res = calloc((size_t)ng + 1, sizeof(*res));
	ss = calloc((size_t)ng + 1, sizeof(*ss));
	ssp = calloc((size_t)ng + 1, sizeof(*ssp));
	sp = calloc((size_t)n + 1, sizeof(*sp));
	spp = calloc((size_t)n + 1, sizeof(*spp));
	kv = calloc((size_t)nkv + 1, sizeof(*kv));
	kvp = calloc((size_t)nkv + 1, sizeof(*kvp));
	av = calloc((size_t)nkv + 1, sizeof(*av));
	if (!rs || !rsp || !res || !ss || !ssp || !sp || !spp || !kv || !kvp || !av)
		goto out;
	scope.name = "bpfmesh";
	st.code = BPFMESH__OTLP__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
	for (int g = 0; g < ng; g++) {
		Bpfmesh__Otlp__ResourceSpans r0 = BPFMESH__OTLP__RESOURCE_SPANS__INIT;
		Bpfmesh__Otlp__Resource re0 = BPFMESH__OTLP__RESOURCE__INIT;
		Bpfmesh__Otlp__ScopeSpans s0 = BPFMESH__OTLP__SCOPE_SPANS__INIT;
		int first = si;

		rs[g] = r0;
		res[g] = re0;
		ss[g] = s0;
		for (int i = 0; i < n; i++) {
			const struct tr_span *s = v[i];
			Bpfmesh__Otlp__Span p0 = BPFMESH__OTLP__SPAN__INIT;
			int firstkv = ai;

			if (grp[i] != g)
				continue;
			if (si == first) { /* the resource: service.name */
				Bpfmesh__Otlp__KeyValue k0 = BPFMESH__OTLP__KEY_VALUE__INIT;
				Bpfmesh__Otlp__AnyValue a0 = BPFMESH__OTLP__ANY_VALUE__INIT;

				kv[ai] = k0;
				av[ai] = a0;
				kv[ai].key = "service.name";
				av[ai].value_case = BPFMESH__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
				av[ai].string_value = (char *)s->service;
				kv[ai].value = &av[ai];
				kvp[ai] = &kv[ai];
				res[g].n_attributes = 1;
				res[g].attributes = &kvp[ai];
				ai++;
				firstkv = ai;
			}
			sp[si] = p0;
			sp[si].trace_id.data = (uint8_t *)s->trace;
			sp[si].trace_id.len = 16;
			sp[si].span_id.data = (uint8_t *)s->id;
			sp[si].span_id.len = 8;
			if (s->has_parent) {
				sp[si].parent_span_id.data = (uint8_t *)s->parent;
				sp[si].parent_span_id.len = 8;
			}
			if (s->tracestate[0])
				sp[si].trace_state = (char *)s->tracestate;
			sp[si].name = (char *)s->name;
			sp[si].kind = s->server ? BPFMESH__OTLP__SPAN__SPAN_KIND__SPAN_KIND_SERVER
						: BPFMESH__OTLP__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
			sp[si].start_time_unix_nano = s->start_us * 1000;
			sp[si].end_time_unix_nano = (s->start_us + s->dur_us) * 1000;
			sp[si].flags =
			    0x100 | (s->sampled ? 1 : 0); /* W3C flags; remote parent known */
			for (int k = 0; k < s->ntags; k++) {
				Bpfmesh__Otlp__KeyValue k0 = BPFMESH__OTLP__KEY_VALUE__INIT;
				Bpfmesh__Otlp__AnyValue a0 = BPFMESH__OTLP__ANY_VALUE__INIT;

				kv[ai] = k0;
				av[ai] = a0;
				kv[ai].key = (char *)tr_tag_k(s, k);
				av[ai].value_case = BPFMESH__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
				av[ai].string_value = (char *)tr_tag_v(s, k);
				kv[ai].value = &av[ai];
				kvp[ai] = &kv[ai];
				ai++;
			}
			sp[si].n_attributes = (size_t)(ai - firstkv);
			sp[si].attributes = &kvp[firstkv];
			if (s->error)
				sp[si].status = &st;
			spp[si] = &sp[si];
			si++;
		}
		ss[g].scope = &scope;
		ss[g].n_spans = (size_t)(si - first);
		ss[g].spans = &spp[first];
		ssp[g] = &ss[g];
		rs[g].resource = &res[g];
		rs[g].n_scope_spans = 1;
		rs[g].scope_spans = &ssp[g];
		rsp[g] = &rs[g];
	}
	req.n_resource_spans = (size_t)ng;
	req.resource_spans = rsp;
	*len = bpfmesh__otlp__export_trace_service_request__get_packed_size(&req);
	out = malloc(*len ? *len : 1);
	if (out)
		bpfmesh__otlp__export_trace_service_request__pack(&req, out);
out:
	free(grp);
	free(rs);
	free(rsp);
	free(res);
	free(ss);
	free(ssp);
	free(sp);
	free(spp);
	free(kv);
	free(kvp);
	free(av);
	return out;
}

/* ---------------- exporters ---------------- */

struct tr_exp {
	char *url;
	enum tel_proto proto;
	int netns;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv, idle;
	struct tr_span **q; /* ring of TR_QUEUE_MAX */
	int head, n;
	bool stop, busy;
	uint64_t exported, dropped, failed; /* under mu */
	bool warned;
};

/* libcurl's progress callback: a transfer ends at once when the exporter is told to stop */
static int xfer_cb(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct tr_exp *e = arg;

	(void)dt, (void)dn, (void)ut, (void)un;
	return __atomic_load_n(&e->stop, __ATOMIC_RELAXED) ? 1 : 0;
}

static bool post(struct tr_exp *e, CURL *h, struct tr_span *const *v, int n)
{
	struct curl_slist *hd = NULL;
	void *body;
	size_t len = 0;
	long code = 0;
	CURLcode rc;

	if (e->proto == TP_ZIPKIN)
		body = tr_zipkin_json(v, n, &len);
	else if (e->proto == TP_OTLP_HTTP)
		body = tr_otlp_pb(v, n, &len);
	else
		body = tr_otlp_json(v, n, &len);
	if (!body)
		return false;
	hd = curl_slist_append(hd, e->proto == TP_OTLP_HTTP ? "Content-Type: application/x-protobuf"
							    : "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, e->url);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xfer_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, e);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hd);
	free(body);
	if ((rc != CURLE_OK || code < 200 || code >= 300) && !e->warned) {
		pr_warn("tracing: %s: %s (spans are dropped while it fails; logged once)", e->url,
			rc != CURLE_OK ? curl_easy_strerror(rc) : "an answer that is not 2xx");
		e->warned = true;
	}
	return rc == CURLE_OK && code >= 200 && code < 300;
}

static void *exp_thread(void *arg)
{
	struct tr_exp *e = arg;
	CURL *h;
	struct tr_span *batch[TR_BATCH];

	if (e->netns >= 0 && setns(e->netns, CLONE_NEWNET))
		pr_warn("tracing: cannot enter the agent's network namespace: %s", strerror(errno));
	h = curl_easy_init();
	pthread_mutex_lock(&e->mu);
	while (!e->stop) {
		int n = 0;
		bool ok;

		if (e->n < TR_BATCH) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)TR_FLUSH_MS * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&e->cv, &e->mu, &ts);
		}
		while (n < TR_BATCH && e->n) {
			batch[n++] = e->q[e->head];
			e->head = (e->head + 1) % TR_QUEUE_MAX;
			e->n--;
		}
		if (!n) {
			pthread_cond_broadcast(&e->idle);
			continue;
		}
		e->busy = true;
		pthread_mutex_unlock(&e->mu);
		ok = h && post(e, h, batch, n);
		for (int i = 0; i < n; i++)
			tr_span_free(batch[i]);
		pthread_mutex_lock(&e->mu);
		e->busy = false;
		if (ok) {
			e->exported += (uint64_t)n;
			e->warned = false;
		} else {
			e->failed += (uint64_t)n;
		}
		if (!e->n)
			pthread_cond_broadcast(&e->idle);
	}
	pthread_mutex_unlock(&e->mu);
	if (h)
		curl_easy_cleanup(h);
	return NULL;
}

struct tr_exp *tr_exp_new(const char *url, enum tel_proto proto, int netns)
{
	struct tr_exp *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->url = strdup(url);
	e->q = calloc(TR_QUEUE_MAX, sizeof(*e->q));
	e->proto = proto;
	e->netns = netns;
	curl_global_init(CURL_GLOBAL_DEFAULT); /* (once is enough; later calls only count) */
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	pthread_cond_init(&e->idle, NULL);
	if (!e->url || !e->q || pthread_create(&e->th, NULL, exp_thread, e)) {
		pr_warn("tracing: %s: cannot start its exporter", url);
		free(e->url);
		free(e->q);
		free(e);
		return NULL;
	}
	pr_info("tracing: spans to %s (%s)", url,
		proto == TP_ZIPKIN	? "zipkin"
		: proto == TP_OTLP_HTTP ? "otlp-http"
					: "otlp-http-json");
	return e;
}

void tr_exp_stop(struct tr_exp *e)
{
	pthread_mutex_lock(&e->mu);
	__atomic_store_n(&e->stop, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

void tr_exp_free(struct tr_exp *e)
{
	if (!e)
		return;
	tr_exp_stop(e);
	pthread_join(e->th, NULL);
	while (e->n) {
		tr_span_free(e->q[e->head]);
		e->head = (e->head + 1) % TR_QUEUE_MAX;
		e->n--;
	}
	pthread_cond_destroy(&e->cv);
	pthread_cond_destroy(&e->idle);
	pthread_mutex_destroy(&e->mu);
	free(e->q);
	free(e->url);
	free(e);
}

const char *tr_exp_url(const struct tr_exp *e)
{
	return e->url;
}

enum tel_proto tr_exp_proto(const struct tr_exp *e)
{
	return e->proto;
}

void tr_exp_submitv(struct tr_exp *e, struct tr_span **v, int n)
{
	int dropped = 0, k;

	pthread_mutex_lock(&e->mu);
	for (k = 0; k < n && e->n < TR_QUEUE_MAX; k++) {
		e->q[(e->head + e->n) % TR_QUEUE_MAX] = v[k];
		e->n++;
	}
	dropped = n - k;
	e->dropped += (uint64_t)dropped;
	if (e->n >= TR_BATCH)
		pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	for (; k < n; k++)
		tr_span_free(v[k]);
}

void tr_exp_submit(struct tr_exp *e, struct tr_span *s)
{
	tr_exp_submitv(e, &s, 1);
}

void tr_exp_stats(const struct tr_exp *e, struct tr_stats *st)
{
	pthread_mutex_lock((pthread_mutex_t *)&e->mu);
	st->exported = e->exported;
	st->dropped = e->dropped;
	st->failed = e->failed;
	pthread_mutex_unlock((pthread_mutex_t *)&e->mu);
}

bool tr_exp_flush(struct tr_exp *e, int ms)
{
	struct timespec ts;
	bool done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&e->mu);
	pthread_cond_signal(&e->cv);
	while ((e->n || e->busy) && pthread_cond_timedwait(&e->idle, &e->mu, &ts) != ETIMEDOUT)
		pthread_cond_signal(&e->cv);
	done = !e->n && !e->busy;
	pthread_mutex_unlock(&e->mu);
	return done;
}
