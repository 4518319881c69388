#!/usr/bin/env bats
# Distributed tracing on the HTTP path: a three-hop chain of echo servers that forward the
# trace headers (ECHO_CALL, as an instrumented app does) gives one trace with the right
# parent/child structure, Envoy's span names and tags, sent to a real HTTP collector (Zipkin
# v2 JSON from the lab's --tracing-endpoint; OTLP/HTTP protobuf from MeshConfig's
# extensionProviders named by a Telemetry, decoded by Google's protobuf runtime); an incoming
# sampling decision is kept, Telemetry's randomSamplingPercentage holds within 5 sigma, custom
# tags come from Telemetry, and a collector that hangs costs requests nothing.
load helpers

LAB=trace
TF="$FIX/tracing"

free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

setup_file() {
	export LAB WORK ZPORT OPORT
	lab_teardown "$LAB"
	WORK=$(mktemp -d /tmp/bpfmesh-trace.XXXXXX)
	mkdir -p "$WORK/z" "$WORK/o"
	ZPORT=$(free_port)
	OPORT=$(free_port)
	/usr/bin/python3 "$BATS_TEST_DIRNAME/trace_collector.py" --port "$ZPORT" --dir "$WORK/z" \
		>"$WORK/z.log" 2>&1 &
	echo $! >"$WORK/z.pid"
	lab_up "$LAB" -f "$TF/chain.yaml" \
		--tracing-endpoint "http://127.0.0.1:$ZPORT/api/v2/spans" >&3 2>&3
}

teardown() { lab_logs_if_failed; }

teardown_file() {
	for p in "$WORK"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
	lab_teardown "$LAB"
	rm -rf "$WORK"
}

# spans DIR: every span the collector got, one JSON line each (trace_check.py)
spans() { /usr/bin/python3 "$BATS_TEST_DIRNAME/trace_check.py" "$1"; }
# wait until DIR holds at least N spans whose x-request-id is RID (exporters flush each 1 s)
wait_spans() {
	local dir=$1 rid=$2 n=$3 _
	for _ in $(seq 60); do
		[ "$(spans "$dir" | grep -c "\"guid:x-request-id\": \"$rid\"")" -ge "$n" ] && return 0
		sleep 0.25
	done
	return 0 # the caller's assertions say what is missing
}

@test "three hops (sleep -> a -> b -> c, each app forwarding the headers): one trace, six spans, parent and child as Istio's sidecars make them" {
	run pod_curl sleep-0 tr -H 'x-request-id: chain-1' http://a/get
	echo "$output" | head -n 5
	[ "$status" -eq 0 ]
	# the apps saw one trace: each got the context of the span before it (B3: the Zipkin
	# provider's propagation, as no context came in)
	[ "$(grep -o '"x-b3-traceid": "[0-9a-f]*' <<<"$output" | sort -u | wc -l)" -eq 1 ]
	[ "$(grep -o '"x-b3-spanid": "[0-9a-f]*' <<<"$output" | sort -u | wc -l)" -eq 3 ]
	[[ "$output" != *'"traceparent"'* ]]
	[[ "$output" != *'"x-envoy-decorator-operation"'* ]] # the agents' own, never the apps'
	[[ "$output" == *'"pod": "c-0"'* ]]
	wait_spans "$WORK/z" chain-1 6
	spans "$WORK/z" | grep '"guid:x-request-id": "chain-1"' >"$BATS_TEST_TMPDIR/chain"
	cat "$BATS_TEST_TMPDIR/chain"
	/usr/bin/python3 - "$BATS_TEST_TMPDIR/chain" <<-'EOF'
	import json, sys
	sp = [json.loads(l) for l in open(sys.argv[1])]
	assert len(sp) == 6, len(sp)
	assert len({s["traceId"] for s in sp}) == 1, "one trace"
	byid = {s["id"]: s for s in sp}
	roots = [s for s in sp if not s["parentId"]]
	assert len(roots) == 1, roots
	chain, s = [], roots[0]
	while s:
	    chain.append(s)
	    kids = [k for k in sp if k["parentId"] == s["id"]]
	    assert len(kids) <= 1, kids
	    s = kids[0] if kids else None
	got = [(s["kind"], s["service"], s["name"]) for s in chain]
	want = [("CLIENT", "sleep.tr", "a.tr.svc.cluster.local:80/*"),
	        ("SERVER", "a.tr", "a.tr.svc.cluster.local:80/*"),
	        ("CLIENT", "a.tr", "b.tr.svc.cluster.local:80/*"),
	        ("SERVER", "b.tr", "b.tr.svc.cluster.local:80/*"),
	        ("CLIENT", "b.tr", "c.tr.svc.cluster.local:80/*"),
	        ("SERVER", "c.tr", "c.tr.svc.cluster.local:80/*")]
	assert got == want, got
	for s in sp:
	    t = s["tags"]
	    assert t["http.method"] == "GET" and t["http.status_code"] == "200", t
	    assert t["component"] == "proxy" and t["response_flags"] == "-", t
	    assert t["node_id"].startswith("sidecar~10.244.") and t["node_id"].endswith(".tr~tr.svc.cluster.local"), t
	    assert t["istio.namespace"] == "tr" and t["istio.mesh_id"] == "cluster.local", t
	c = chain
	assert c[0]["tags"]["upstream_cluster"] == "outbound|80||a.tr.svc.cluster.local", c[0]["tags"]
	assert c[1]["tags"]["upstream_cluster"] == "inbound|8080||", c[1]["tags"]
	assert c[2]["tags"]["http.url"] == "http://b.tr/get", c[2]["tags"]
	assert c[3]["tags"]["istio.canonical_service"] == "b" and c[3]["tags"]["istio.canonical_revision"] == "v2", c[3]["tags"]
	EOF
	[ "$(series_sum node1 istio_requests_total 'reporter="destination"' 'destination_workload="c"' 'response_code="200"')" -ge 1 ]
	lab_metrics node2 | grep -E '^bpfmesh_tracing_spans_total [1-9]'
}

@test "the ingress gateway: its SERVER span, a CLIENT child for the upstream, the pod's SERVER span under it (the pod on the gateway's node, and on another)" {
	local addr n=0
	while read -r addr; do
		n=$((n + 1))
		run nsenter --net="/run/netns/bm-$LAB-fabric" curl -s --max-time 10 \
			-H "x-request-id: gw-$n" "$addr/edge"
		[ "$status" -eq 0 ]
		[[ "$output" == *'"pod": "c-0"'* ]]
		wait_spans "$WORK/z" "gw-$n" 3
		spans "$WORK/z" | grep "\"guid:x-request-id\": \"gw-$n\"" >"$BATS_TEST_TMPDIR/gw"
		cat "$BATS_TEST_TMPDIR/gw"
		/usr/bin/python3 - "$BATS_TEST_TMPDIR/gw" <<-'EOF2'
		import json, sys
		sp = [json.loads(l) for l in open(sys.argv[1])]
		assert len(sp) == 3, len(sp)
		root = [s for s in sp if not s["parentId"]]
		assert len(root) == 1 and root[0]["kind"] == "SERVER", root
		assert root[0]["service"] == "istio-ingressgateway.istio-system", root
		assert root[0]["tags"]["node_id"].startswith("router~"), root[0]["tags"]
		kid = [s for s in sp if s["parentId"] == root[0]["id"]]
		assert len(kid) == 1 and kid[0]["kind"] == "CLIENT", kid
		pod = [s for s in sp if s["parentId"] == kid[0]["id"]]
		assert len(pod) == 1 and pod[0]["kind"] == "SERVER" and pod[0]["service"] == "c.tr", pod
		for s in sp:
		    assert s["name"] == "c.tr.svc.cluster.local:80/edge*", s["name"]
		EOF2
	done < <(lab status | sed -n 's|^ingress \(http://[0-9.]*:80\) gateway tr/tr-gw .*|\1|p')
	[ "$n" -eq 2 ]
}

@test "an incoming trace context is continued in its own format and its sampling decision kept (traceparent, B3)" {
	run pod_curl sleep-0 tr -H 'x-request-id: ctx-1' -H 'tracestate: congo=t61rcWkgMzE' \
		-H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' http://c/get
	[ "$status" -eq 0 ]
	echo "$output"
	[[ "$output" == *'"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-'* ]]
	[[ "$output" != *'"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"'* ]]
	[[ "$output" == *'"tracestate": "congo=t61rcWkgMzE"'* ]]
	[[ "$output" != *'"x-b3-traceid"'* ]]
	# a client that says which operation it is does not name the server's span
	run pod_curl sleep-0 tr -H 'x-request-id: ctx-3' -H 'x-envoy-decorator-operation: forged' \
		-H 'traceparent: 00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' http://a/get
	[ "$status" -eq 0 ]
	run pod_curl sleep-0 tr -H 'x-request-id: ctx-2' -H 'x-b3-traceid: 463ac35c9f6413ad' \
		-H 'x-b3-spanid: a2fb4a1d1a96d312' -H 'x-b3-sampled: 0' http://c/get
	[ "$status" -eq 0 ]
	[[ "$output" == *'"x-b3-sampled": "0"'* ]] # the decision goes on
	wait_spans "$WORK/z" ctx-1 2
	spans "$WORK/z" | grep '"guid:x-request-id": "ctx-1"' >"$BATS_TEST_TMPDIR/ctx"
	cat "$BATS_TEST_TMPDIR/ctx"
	[ "$(grep -c '"traceId": "4bf92f3577b34da6a3ce929d0e0e4736"' "$BATS_TEST_TMPDIR/ctx")" -eq 2 ]
	grep '"kind": "CLIENT"' "$BATS_TEST_TMPDIR/ctx" | grep -q '"parentId": "00f067aa0ba902b7"'
	sleep 2.5 # two flushes: nothing of ctx-2 comes
	[ "$(spans "$WORK/z" | grep -c '"guid:x-request-id": "ctx-2"')" -eq 0 ]
	wait_spans "$WORK/z" ctx-3 6
	[ "$(spans "$WORK/z" | grep '"guid:x-request-id": "ctx-3"' | grep -c forged)" -eq 0 ]
}

@test "Telemetry: randomSamplingPercentage 50 within 5 sigma (400 requests), the decision followed downstream; custom tags" {
	local n=400 client server
	run lab apply -f "$TF/telemetry.yaml"
	[ "$status" -eq 0 ]
	run lab exec -n tr sleep-0 -- curl -s --max-time 120 -o /dev/null -w '%{http_code}\n' \
		-H 'x-request-id: samp-1' "http://c/get?[1-$n]"
	[ "$(grep -c '^200$' <<<"$output")" -eq "$n" ]
	sleep 2.5
	client=$(spans "$WORK/z" | grep '"guid:x-request-id": "samp-1"' | grep -c '"kind": "CLIENT"')
	server=$(spans "$WORK/z" | grep '"guid:x-request-id": "samp-1"' | grep -c '"kind": "SERVER"')
	echo "sampled $client of $n (server spans $server)"
	within_5sigma "$client" "$n" 1 2
	[ "$server" -eq "$client" ] # c's node follows the client's decision, both ways
	# forced by the caller (flags 01), then tagged as Telemetry says
	run pod_curl sleep-0 tr -H 'x-request-id: tags-1' -H 'x-tenant: acme' \
		-H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' http://a/get
	wait_spans "$WORK/z" tags-1 6
	spans "$WORK/z" | grep '"guid:x-request-id": "tags-1"' | grep '"service": "a.tr"' |
		grep '"kind": "SERVER"' >"$BATS_TEST_TMPDIR/a"
	cat "$BATS_TEST_TMPDIR/a"
	grep -q '"cost-center": "cc-42"' "$BATS_TEST_TMPDIR/a"
	grep -q '"team": "checkout"' "$BATS_TEST_TMPDIR/a" # a's env TEAM
	grep -q '"tenant": "acme"' "$BATS_TEST_TMPDIR/a"
	spans "$WORK/z" | grep '"guid:x-request-id": "tags-1"' | grep '"service": "c.tr"' |
		grep -q '"team": "nobody"' # c has no TEAM: the default
}

@test "MeshConfig extensionProviders opentelemetry (http) named by a Telemetry: OTLP/HTTP protobuf, read by Google's protobuf runtime" {
	/usr/bin/python3 "$BATS_TEST_DIRNAME/trace_collector.py" --port "$OPORT" --dir "$WORK/o" \
		>"$WORK/o.log" 2>&1 &
	echo $! >"$WORK/o.pid"
	sed "s/@PORT@/$OPORT/" "$TF/mesh-otel.yaml.in" >"$BATS_TEST_TMPDIR/mesh-otel.yaml"
	run lab apply -f "$BATS_TEST_TMPDIR/mesh-otel.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	run pod_curl sleep-0 tr -H 'x-request-id: otlp-1' http://a/get
	[ "$status" -eq 0 ]
	wait_spans "$WORK/o" otlp-1 6
	ls "$WORK/o"
	compgen -G "$WORK/o/*.otlp-pb" >/dev/null
	spans "$WORK/o" | grep '"guid:x-request-id": "otlp-1"' >"$BATS_TEST_TMPDIR/otlp"
	cat "$BATS_TEST_TMPDIR/otlp"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/otlp")" -eq 6 ]
	[ "$(/usr/bin/python3 -c 'import json,sys; print(len({json.loads(l)["traceId"] for l in open(sys.argv[1])}))' "$BATS_TEST_TMPDIR/otlp")" -eq 1 ]
	grep '"service": "b.tr"' "$BATS_TEST_TMPDIR/otlp" | grep '"kind": "SERVER"' |
		grep -q '"name": "b.tr.svc.cluster.local:80/\*"'
	# nothing of it went to the lab's Zipkin endpoint: the Telemetry's provider wins
	[ "$(spans "$WORK/z" | grep -c '"guid:x-request-id": "otlp-1"')" -eq 0 ]
}

@test "a collector that hangs: requests take no longer, the spans it does not take are counted as dropped" {
	local max before
	kill "$(cat "$WORK/o.pid")"
	sleep 0.5
	/usr/bin/python3 "$BATS_TEST_DIRNAME/trace_collector.py" --port "$OPORT" --dir "$WORK/o" \
		--hold >"$WORK/h.log" 2>&1 &
	echo $! >"$WORK/o.pid"
	before=$(lab_metrics node1 | sed -n 's/^bpfmesh_tracing_dropped_spans_total //p')
	run lab exec -n tr sleep-0 -- curl -s --max-time 60 -o /dev/null -w '%{time_total}\n' \
		-H 'x-request-id: hang-1' "http://a/get?[1-50]"
	max=$(sort -g <<<"$output" | tail -n 1)
	echo "slowest of 50: ${max}s"
	[ "$(wc -l <<<"$output")" -eq 50 ]
	awk -v m="$max" 'BEGIN { exit m < 0.5 ? 0 : 1 }'
	for _ in $(seq 60); do
		[ "$(lab_metrics node1 | sed -n 's/^bpfmesh_tracing_dropped_spans_total //p')" -gt "$before" ] && break
		sleep 0.25
	done
	[ "$(lab_metrics node1 | sed -n 's/^bpfmesh_tracing_dropped_spans_total //p')" -gt "$before" ]
}

@test "what tracing bpfmesh does not act on is said: Telemetry accessLogging, formatter tags, an OTLP provider over gRPC" {
	cat >"$BATS_TEST_TMPDIR/t.yaml" <<-'EOF'
	apiVersion: telemetry.istio.io/v1
	kind: Telemetry
	metadata: {name: logs, namespace: tr}
	spec:
	  accessLogging: [{providers: [{name: envoy}]}]
	  tracing:
	    - customTags: {f: {formatter: {value: "%REQ(X)%"}}}
	---
	apiVersion: v1
	kind: ConfigMap
	metadata: {name: istio, namespace: istio-system}
	data:
	  mesh: |-
	    extensionProviders:
	      - name: grpc-otel
	        opentelemetry: {service: otel.obs, port: 4317}
	EOF
	run "$BM" validate "$BATS_TEST_TMPDIR/t.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Telemetry/tr/logs: spec.accessLogging: warning: not enforced by bpfmesh (ignored)"* ]]
	[[ "$output" == *"spec.tracing[0].customTags.f: warning: formatter: not supported by bpfmesh (ignored)"* ]]
	[[ "$output" == *"extensionProviders grpc-otel: opentelemetry over gRPC: not supported by bpfmesh"* ]]
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
