// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * test_telemetry.c: unit tests of user/lib/telemetry.c (Telemetry tracing and MeshConfig read
 * through config.c, Istio's precedence mesh < namespace < workload, match.mode) and of
 * loader/trace.c's context parsing and span encodings (Zipkin v2 and OTLP/JSON read back with
 * json-c, OTLP/protobuf read back with protobuf-c). Run under ASan+UBSan.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "check.h"
#include "gen/otlp.pb-c.h"
#include "l7route.h"
#include "model.h"
#include "telemetry.h"
#include "trace.h"

static char tmpdir[64];
static char path[256];

static struct mesh_config *load(const char *yaml, struct diags *d)
{
	struct mesh_config *c = config_new();
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(yaml, f);
		fclose(f);
	}
	config_load_file(c, path, d);
	return c;
}

static const char *MESH =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
    "data:\n  mesh: |-\n    defaultConfig:\n      tracing: {sampling: 10}\n"
    "    defaultProviders: {tracing: [zipkin]}\n"
    "    extensionProviders:\n"
    "      - name: zipkin\n        zipkin: {service: zipkin.istio-system.svc.cluster.local, "
    "port: 9411}\n"
    "      - name: otel\n        opentelemetry:\n          service: otel.obs\n          port: "
    "4318\n          http: {path: /v1/traces}\n"
    "---\n"
    "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n"
    "metadata: {name: mesh-default, namespace: istio-system}\n"
    "spec:\n  tracing:\n    - randomSamplingPercentage: 50\n"
    "      customTags: {team: {literal: {value: platform}}}\n"
    "---\n"
    "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n"
    "metadata: {name: ns, namespace: shop}\n"
    "spec:\n  tracing:\n    - providers: [{name: otel}]\n"
    "---\n"
    "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n"
    "metadata: {name: cart, namespace: shop}\n"
    "spec:\n  selector: {matchLabels: {app: cart}}\n"
    "  tracing:\n    - match: {mode: SERVER}\n      disableSpanReporting: true\n"
    "    - match: {mode: CLIENT}\n      randomSamplingPercentage: 100\n"
    "      customTags: {env: {environment: {name: TEAM, defaultValue: none}}}\n";

static void test_precedence(void)
{
	struct diags d = {0};
	struct mesh_config *c = load(MESH, &d);
	struct kv l1[1] = {{(char *)"app", (char *)"cart"}},
		  l2[1] = {{(char *)"app", (char *)"web"}};
	struct workload_obj cart = {.name = (char *)"cart",
				    .ns = (char *)"shop",
				    .labels = {l1, 1}},
			    web = {.name = (char *)"web", .ns = (char *)"shop", .labels = {l2, 1}},
			    other = {.name = (char *)"x", .ns = (char *)"other", .labels = {l2, 1}};
	struct tel_result r;
	char why[128];

	CHECK_EQ(d.nerrors, 0, "loads");
	if (!CHECK_EQ(c->ntels, 3, "three Telemetry") || !CHECK_EQ(c->nmeshes, 1, "MeshConfig"))
		goto out;
	tel_tracing_for(c, NULL, &other, TEL_CLIENT, &r);
	CHECK(r.provider && !strcmp(r.provider->name, "zipkin"), "the mesh default provider");
	CHECK(r.provider && r.provider->proto == TP_ZIPKIN && r.provider->port == 9411 &&
		  !strcmp(r.provider->path, "/api/v2/spans"),
	      "zipkin's default path");
	CHECK(r.sampling == 50, "the root Telemetry's sampling beats defaultConfig's");
	CHECK_EQ(r.ntags, 1, "the root's custom tag");
	tel_tracing_for(c, NULL, &web, TEL_SERVER, &r);
	CHECK(r.provider && r.provider->proto == TP_OTLP_HTTP, "the namespace's provider");
	CHECK(r.provider && !strcmp(r.provider->path, "/v1/traces"), "its http.path");
	CHECK(r.sampling == 50, "unset there: inherited");
	CHECK(!r.disabled, "reporting on");
	tel_tracing_for(c, NULL, &cart, TEL_SERVER, &r);
	CHECK(r.disabled, "the workload's SERVER entry disables reporting");
	tel_tracing_for(c, NULL, &cart, TEL_CLIENT, &r);
	CHECK(!r.disabled, "not on its CLIENT side");
	CHECK(r.sampling == 100, "its CLIENT sampling");
	CHECK(r.ntags == 1 && r.tags[0].kind == TAG_ENV && !strcmp(r.tags[0].dflt, "none"),
	      "custom tags replace the ones above");
	CHECK(r.by && !strcmp(r.by->name, "cart"), "the most specific Telemetry");
	CHECK(tel_traced(c, NULL, &web, why, sizeof(why)), "web is traced");
	CHECK_CONTAINS(why, "Telemetry shop/ns", "why");
	CHECK(!tel_traced(c, NULL, &cart, why, sizeof(why)), "cart's server side reports none");
out:
	diags_free(&d);
	config_free(c);
}

static const char *hdr(void *arg, const char *name)
{
	const char *const *kv = arg;

	for (int i = 0; kv[i]; i += 2)
		if (!strcmp(kv[i], name))
			return kv[i + 1];
	return NULL;
}

static void test_context(void)
{
	const char *w3c[] = {"traceparent",
			     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			     "tracestate", "congo=t61rcWkgMzE", NULL};
	const char *b3m[] = {"x-b3-traceid",
			     "463ac35c9f6413ad",
			     "x-b3-spanid",
			     "a2fb4a1d1a96d312",
			     "x-b3-sampled",
			     "0",
			     NULL};
	const char *b3s[] = {"b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d", NULL};
	const char *bad[] = {"traceparent",
			     "00-00000000000000000000000000000000-00f067aa0ba902b7-01", NULL};
	const char *upper[] = {"traceparent",
			       "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", NULL};
	const char *v99[] = {"traceparent",
			     "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes",
			     NULL};
	struct tr_ctx c;
	char hx[33];
	struct l7_hdrs h = {0};
	uint8_t t[16] = {1, 2, 3}, s[8] = {9}, p[8] = {7};

	tr_extract(hdr, (void *)w3c, &c);
	tr_hex(c.trace, 16, hx);
	CHECK(c.has_trace && !strcmp(hx, "4bf92f3577b34da6a3ce929d0e0e4736"), "traceparent");
	tr_hex(c.span, 8, hx);
	CHECK(!strcmp(hx, "00f067aa0ba902b7") && c.sampled == 1, "its parent and flags");
	CHECK_STR(c.tracestate, "congo=t61rcWkgMzE", "tracestate kept");
	tr_extract(hdr, (void *)b3m, &c);
	tr_hex(c.trace, 16, hx);
	CHECK(c.has_trace && !strcmp(hx, "0000000000000000463ac35c9f6413ad"), "64-bit B3 id");
	CHECK_EQ(c.sampled, 0, "x-b3-sampled: 0");
	tr_extract(hdr, (void *)b3s, &c);
	CHECK(c.has_trace && c.has_span && c.sampled == 1, "b3 single header, debug");
	tr_extract(hdr, (void *)bad, &c);
	CHECK(!c.has_trace, "an all-zero trace id is invalid");
	tr_extract(hdr, (void *)upper, &c);
	CHECK(!c.has_trace, "upper-case hex is not W3C");
	tr_extract(hdr, (void *)v99, &c);
	CHECK(c.has_trace && c.w3c, "a later version: its first fields are read");
	tr_inject(&h, t, s, p, true, NULL, true, true);
	CHECK_STR(l7h_get(&h, "traceparent"),
		  "00-01020300000000000000000000000000-0900000000000000-01", "traceparent out");
	CHECK_STR(l7h_get(&h, "x-b3-parentspanid"), "0700000000000000", "B3 parent");
	CHECK_STR(l7h_get(&h, "x-b3-sampled"), "1", "B3 sampled");
	l7h_free(&h);
	memset(&h, 0, sizeof(h));
	l7h_set(&h, "b3", "x");
	tr_inject(&h, t, s, p, false, NULL, false, true);
	CHECK_STR(l7h_get(&h, "b3"),
		  "01020300000000000000000000000000-0900000000000000-0-0700000000000000",
		  "a b3 header is rewritten in its own form");
	CHECK(!l7h_get(&h, "x-b3-traceid") && !l7h_get(&h, "traceparent"),
	      "and alone: what came in goes out");
	l7h_free(&h);
}

static struct tr_span *span(bool server, const char *svc)
{
	struct tr_span *s = calloc(1, sizeof(*s));

	s->trace[15] = 1;
	s->id[7] = server ? 2 : 3;
	s->parent[7] = 1;
	s->has_parent = true;
	s->server = server;
	s->start_us = 1700000000000000ULL;
	s->dur_us = 1500;
	snprintf(s->name, sizeof(s->name), "b.tr.svc.cluster.local:80/*");
	snprintf(s->service, sizeof(s->service), "%s", svc);
	s->error = server;
	tr_tag(s, "http.status_code", server ? "503" : "200", 0);
	tr_tag(s, "http.url", "http://b.tr/get-a-long-path", 12);
	tr_tag(s, "quote", "a\"b\\c\n", 0);
	return s;
}

static void test_encodings(void)
{
	struct tr_span *v[3] = {span(true, "b.tr"), span(false, "a.tr"), span(false, "b.tr")};
	size_t n = 0;
	char *z = tr_zipkin_json(v, 3, &n), *oj;
	uint8_t *pb;
	struct json_object *j = z ? json_tokener_parse(z) : NULL, *o, *x;
	Bpfmesh__Otlp__ExportTraceServiceRequest *req;

	if (CHECK(j && json_object_array_length(j) == 3, "Zipkin: an array of 3")) {
		o = json_object_array_get_idx(j, 0);
		CHECK_STR(json_object_get_string(json_object_object_get(o, "traceId")),
			  "00000000000000000000000000000001", "traceId");
		CHECK_STR(json_object_get_string(json_object_object_get(o, "kind")), "SERVER",
			  "kind");
		CHECK_EQ(json_object_get_int64(json_object_object_get(o, "duration")), 1500, "us");
		json_object_object_get_ex(json_object_object_get(o, "tags"), "http.url", &x);
		CHECK_STR(json_object_get_string(x), "http://b.tr/", "max_tag_length cuts a tag");
		json_object_object_get_ex(json_object_object_get(o, "tags"), "quote", &x);
		CHECK_STR(json_object_get_string(x), "a\"b\\c\n", "escapes read back");
	}
	json_object_put(j);
	free(z);
	oj = tr_otlp_json(v, 3, &n);
	j = oj ? json_tokener_parse(oj) : NULL;
	if (CHECK(j, "OTLP/JSON parses")) {
		struct json_object *rs = json_object_object_get(j, "resourceSpans"), *sp;

		CHECK_EQ(json_object_array_length(rs), 2, "one resource per service");
		sp = json_object_array_get_idx(
		    json_object_object_get(
			json_object_array_get_idx(
			    json_object_object_get(json_object_array_get_idx(rs, 0), "scopeSpans"),
			    0),
			"spans"),
		    0);
		CHECK_EQ(json_object_get_int(json_object_object_get(sp, "kind")), 2, "SERVER is 2");
		CHECK_STR(json_object_get_string(json_object_object_get(sp, "startTimeUnixNano")),
			  "1700000000000000000", "64-bit numbers as strings");
		CHECK_STR(json_object_get_string(json_object_object_get(sp, "parentSpanId")),
			  "0000000000000001", "ids in hex");
	}
	json_object_put(j);
	free(oj);
	pb = tr_otlp_pb(v, 3, &n);
	req = pb ? bpfmesh__otlp__export_trace_service_request__unpack(NULL, n, pb) : NULL;
	if (CHECK(req, "OTLP/protobuf unpacks")) {
		CHECK_EQ(req->n_resource_spans, 2, "two resources");
		CHECK_EQ(req->resource_spans[0]->scope_spans[0]->n_spans, 2, "b.tr's two spans");
		CHECK_EQ(req->resource_spans[0]->scope_spans[0]->spans[0]->end_time_unix_nano,
			 1700000000001500000ULL, "end = start + duration");
		CHECK_EQ(req->resource_spans[0]->scope_spans[0]->spans[0]->status->code,
			 BPFMESH__OTLP__STATUS__STATUS_CODE__STATUS_CODE_ERROR, "an error");
		bpfmesh__otlp__export_trace_service_request__free_unpacked(req, NULL);
	}
	free(pb);
	for (int i = 0; i < 3; i++)
		tr_span_free(v[i]);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bpfmesh-tel-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/t.yaml", tmpdir);
	RUN(test_precedence);
	RUN(test_context);
	RUN(test_encodings);
	unlink(path);
	rmdir(tmpdir);
	return CHECK_DONE("telemetry");
}
