#!/usr/bin/env bats
# The HTTP path of the node agent, end to end: real pods, agents, curl, the mTLS tunnel across
# nodes and a real Prometheus. Per request: header and uri matches, weights on one keep-alive
# connection, rewrite, redirect, direct responses, retries that hide a stopped replica,
# timeouts, faults, AuthorizationPolicy with HTTP fields, Istio's HTTP metrics counted
# exactly; malformed input refused as Envoy refuses it.
load helpers

LAB=il7
L7="$FIX/l7"

setup_file() {
	export LAB WORK
	lab_teardown "$LAB"
	lab_up "$LAB" -f "$L7/base.yaml" -f "$L7/routes.yaml" >&3 2>&3
	WORK=$(mktemp -d /tmp/bpfmesh-l7.XXXXXX)
	head -c 900000 /dev/urandom > "$WORK/big.bin"
}

teardown_file() {
	pkill -f "$BATS_TEST_DIRNAME/l7_raw.py" || true
	pkill -f "openssl s_server -accept 9443" || true
	[ -f "$WORK/prom.pid" ] && kill "$(cat "$WORK/prom.pid")" 2>/dev/null
	lab_teardown "$LAB"
	rm -rf "$WORK"
}

# curl from the node1 client, many URLs on one connection: curl -s ... "$@"
ccurl() { lab exec -n l7 client-0 -- curl -s --max-time 60 "$@"; }

# how many lines of stdin contain $1
count() { grep -c -- "$1" || true; }

@test "services shows the HTTP path and why; analyze says the split is per request" {
	run bm services --node "$LAB-node1"
	echo "$output"
	[[ "$output" == *"10.96.70.10:8080/TCP l7/web"*"path l7 (match in spec.http[0])"* ]]
	[[ "$output" == *"VirtualService l7/web: per request, first match of spec.http[0..8]"* ]]
	[[ "$output" == *"10.96.70.20:8080/TCP l7/shadow"*"path kernel"* ]]
	run bm analyze -f "$L7/base.yaml" -f "$L7/split.yaml"
	echo "$output"
	[[ "$output" == *"Info [BM0001]"*"weighted split per request on 10.96.70.10 port 8080 (the HTTP path, for retries in spec.http[0])"* ]]
}

@test "A/B by header on ONE keep-alive connection: region india to v2, everyone else to v1" {
	run ccurl -w 'CONNECTS %{num_connects}\n' -H 'region: india' "http://web:8080/get?[1-20]" \
		--next -s -w 'CONNECTS %{num_connects}\n' "http://web:8080/get?[1-20]"
	[ "$(count '"VERSION": "v2"' <<<"$output")" -eq 20 ]
	[ "$(count '"VERSION": "v1"' <<<"$output")" -eq 20 ]
	# one connection for all 40 requests
	[ "$(awk '/^CONNECTS/ { s += $2 } END { print s }' <<<"$output")" -eq 1 ]
}

@test "uri exact, prefix and regex; rewrite; redirect; direct response; header operations" {
	run ccurl http://web:8080/exact
	[[ "$output" == *'"VERSION": "v2"'* ]]
	[[ "$output" == *'"url": "http://web:8080/get"'* ]]
	[[ "$output" == *'"x-envoy-original-path": "/exact"'* ]]
	# not exact, not the regex: the catch-all route (its response header says so)
	run ccurl -D - -o /dev/null http://web:8080/exact/no
	[[ "$output" == *"x-mesh-resp: done"* ]]
	run ccurl http://web:8080/re/123
	[[ "$output" == *'"VERSION": "v3"'* ]]
	run ccurl -D - -o /dev/null http://web:8080/re/12a
	[[ "$output" == *"x-mesh-resp: done"* ]]
	run ccurl http://web:8080/v2/
	[[ "$output" == *"version v2"* ]]
	run ccurl -D - -o /dev/null http://web:8080/old
	echo "$output"
	[[ "$output" == *"HTTP/1.1 301"* ]]
	[[ "$output" == *"location: http://web:8080/new"* ]]
	run ccurl -w ' %{http_code}' http://web:8080/direct
	[ "$output" = "direct from the mesh 200" ]
	run ccurl -D - http://web:8080/headers
	echo "$output"
	[[ "$output" == *"x-mesh-resp: done"* ]]
	[[ "${output,,}" == *'"x-mesh-added": "yes"'* ]]
	[[ "$output" != *"x-envoy-original-path"* ]] # no rewrite on that route
}

@test "the guide's canary: 90/10 per request over 2000 requests on ONE connection, 5 sigma" {
	run lab apply -f "$L7/split.yaml"
	[ "$status" -eq 0 ]
	ccurl -w 'CONNECTS %{num_connects}\n' "http://web:8080/get?[1-2000]" > "$WORK/split.out"
	v1=$(count '"VERSION": "v1"' < "$WORK/split.out")
	v2=$(count '"VERSION": "v2"' < "$WORK/split.out")
	echo "v1=$v1 v2=$v2"
	[ $((v1 + v2)) -eq 2000 ]
	[ "$(awk '/^CONNECTS/ { s += $2 } END { print s }' "$WORK/split.out")" -eq 1 ]
	within_5sigma "$v2" 2000 1 10
	[ "$v2" -gt 0 ]
}

@test "HTTP/2 (prior knowledge): 90/10 per request over 2000 streams on ONE connection, 5 sigma" {
	run lab apply -f "$L7/split.yaml"
	[ "$status" -eq 0 ]
	# nghttp: an independent HTTP/2 client that multiplexes every URL of one authority as a
	# stream of one connection; it prints DATA as it comes, so its windows (-w/-W: 2^24) are
	# large enough that no flow-control stop splits a body across another stream's
	# shellcheck disable=SC2016 # expanded by the pod's shell
	lab exec -n l7 client-0 -- bash -c \
		'nghttp -w 24 -W 24 -t 60 $(for i in $(seq 2000); do echo "http://web:8080/get?$i"; done)' > "$WORK/h2split.out"
	v1=$(count '"VERSION": "v1"' < "$WORK/h2split.out")
	v2=$(count '"VERSION": "v2"' < "$WORK/h2split.out")
	echo "v1=$v1 v2=$v2"
	[ $((v1 + v2)) -eq 2000 ]
	within_5sigma "$v2" 2000 1 10
	[ "$v2" -gt 0 ]
}

@test "HTTP/2: Upgrade h2c from HTTP/1.1 and prior knowledge both route by header" {
	run lab apply -f "$L7/routes.yaml"
	run ccurl --http2 -w '%{http_version}\n' -H 'region: india' http://web:8080/get
	echo "$output"
	[[ "$output" == *'"VERSION": "v2"'* ]]
	[[ "$output" == *$'\n2' ]]
	run ccurl --http2-prior-knowledge -w '%{http_version}\n' http://web:8080/get
	[[ "$output" == *'"VERSION": "v1"'* ]]
	[[ "$output" == *$'\n2' ]]
	run lab exec -n l7 client-0 -- curl -s --max-time 20 --http2-prior-knowledge -o /dev/null \
		-w '%{http_code}' --data-binary @"$WORK/big.bin" http://web:8080/anything
	[ "$output" = 200 ]
}

# grpc METHOD HEX_REQUEST [KEY=VALUE metadata...]: one unary call from the client pod to the
# grpc service through the mesh (grpcio, no generated code); "code=NAME reply=HEX|details=..."
grpc_call() {
	lab exec -n l7 client-0 -- /usr/bin/python3 -c '
import sys, grpc
method, req = sys.argv[1], bytes.fromhex(sys.argv[2])
md = [tuple(a.split("=", 1)) for a in sys.argv[3:]]
ch = grpc.insecure_channel("10.96.70.40:7070", options=[("grpc.enable_http_proxy", 0)])
call = ch.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
try:
    reply, c = call.with_call(req, metadata=md, timeout=10)
    print("code=%s reply=%s" % (c.code().name, reply.hex()))
except grpc.RpcError as e:
    print("code=%s details=%s" % (e.code().name, e.details()))
' "$@"
}
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

@test "gRPC through the HTTP path: routed by header, Health/Check, fault abort by grpcStatus, retries on unavailable" {
	run grpc_call /grpc.health.v1.Health/Check ""
	echo "$output"
	[ "$output" = "code=OK reply=0801" ]
	run grpc_call /bpfmesh.echo.Echo/Echo "0a026869"
	echo "$output"
	[[ "$output" == "code=OK reply=0a"*"$(hex 'version v1')"* ]]
	run grpc_call /bpfmesh.echo.Echo/Echo "0a026869" x-ver=v2
	[[ "$output" == "code=OK reply=0a"*"$(hex 'version v2')"* ]]
	run grpc_call /bpfmesh.echo.Echo/Echo "0a026869" x-fault=yes
	echo "$output"
	[[ "$output" == "code=UNAVAILABLE details=fault filter abort" ]]
	run grpc_call /bpfmesh.echo.Echo/Echo "0a026869" x-grpc-status=14
	echo "$output"
	[[ "$output" == "code=UNAVAILABLE "* ]]
	# the access log: gRPC, status 14, three attempts (two retries on unavailable)
	sleep 0.5
	run bm observe --node "$LAB-node1" --http --json
	line=$(grep '"path":"/bpfmesh.echo.Echo/Echo"' <<<"$output" | grep '"grpc_status":14' | tail -1)
	echo "$line"
	[[ "$line" == *'"protocol":"grpc"'*'"attempts":3'* ]]
	run lab_metrics node1
	[[ "$output" == *'istio_requests_total{'*'destination_service_name="grpc"'*'request_protocol="grpc",response_code="200",grpc_response_status="14"'* ]]
}

@test "a route timeout answers 504 in time (UT)" {
	run lab apply -f "$L7/routes.yaml"
	start=$(date +%s%N)
	run ccurl -w '%{http_code}' -o "$WORK/slow.body" http://web:8080/slow
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	echo "code $output in $ms ms: $(cat "$WORK/slow.body")"
	[ "$output" = 504 ]
	[ "$ms" -lt 2500 ]
	[ "$(cat "$WORK/slow.body")" = "upstream request timeout" ]
}

@test "faults: abort and delay at 100% always, at 50% within a binomial 5-sigma bound" {
	run lab apply -f "$L7/faults.yaml"
	[ "$status" -eq 0 ]
	run ccurl -w '%{http_code}\n' -o /dev/null "http://web:8080/abort100?[1-50]"
	[ "$(count '^418$' <<<"$output")" -eq 50 ]
	run ccurl -w '%{http_code}\n' -o /dev/null "http://web:8080/abort50?[1-400]"
	n503=$(count '^503$' <<<"$output")
	n200=$(count '^200$' <<<"$output")
	echo "503: $n503, 200: $n200"
	[ $((n503 + n200)) -eq 400 ]
	within_5sigma "$n503" 400 1 2
	run ccurl -w '%{http_code} %{time_total}\n' -o /dev/null "http://web:8080/delay100?[1-5]"
	echo "$output"
	[ "$(awk '$1 == 200 && $2 >= 0.3 { n++ } END { print n + 0 }' <<<"$output")" -eq 5 ]
	run ccurl -w '%{http_code} %{time_total}\n' -o /dev/null "http://web:8080/delay50?[1-100]"
	slow=$(awk '$1 == 200 && $2 >= 0.2 { n++ } END { print n + 0 }' <<<"$output")
	ok=$(count '^200 ' <<<"$output")
	echo "slow $slow of $ok"
	[ "$ok" -eq 100 ]
	within_5sigma "$slow" 100 1 2
}

@test "retries hide a stopped replica (zero errors over 200 requests); attempts: 0 does not" {
	run lab apply -f "$L7/retries.yaml"
	[ "$status" -eq 0 ]
	lab stop -n l7 web-v1-1
	run ccurl -w '%{http_code}\n' -o /dev/null "http://web:8080/get?[1-200]"
	ok=$(count '^200$' <<<"$output")
	echo "with retries: $ok of 200"
	run ccurl -w '%{http_code}\n' -o /dev/null "http://web:8080/none?[1-200]"
	bad=$(count '^503$' <<<"$output")
	echo "attempts 0: $bad of 200 failed"
	lab start -n l7 web-v1-1
	[ "$ok" -eq 200 ]
	[ "$bad" -gt 0 ]
}

@test "mirror: every request also reaches the shadow service; the client sees the primary" {
	run lab apply -f "$L7/mirror.yaml"
	[ "$status" -eq 0 ]
	run ccurl -w '%{http_code}\n' -o /dev/null "http://web:8080/get?[1-20]"
	[ "$(count '^200$' <<<"$output")" -eq 20 ]
	for _ in $(seq 40); do
		got=$(lab_metrics node1 | awk '/^istio_requests_total\{/ && /reporter="destination"/ && /destination_workload="shadow"/ { s += $NF } END { print s + 0 }')
		[ "$got" -ge 20 ] && break
		sleep 0.1
	done
	echo "shadow requests: $got"
	[ "$got" -eq 20 ]
	# the client made 20 requests, not 40
	run lab_metrics node1
	src=$(awk '/^istio_requests_total\{/ && /reporter="source"/ && /source_workload="client"/ && /destination_workload="shadow"/ { s += $NF } END { print s + 0 }' <<<"$output")
	[ "$src" -eq 0 ]
}

@test "AuthorizationPolicy per request: GET /get allowed, POST denied 403, also across nodes" {
	run lab apply -f "$L7/authz.yaml" -f "$L7/routes.yaml"
	[ "$status" -eq 0 ]
	run ccurl -w ' %{http_code}' -o /dev/null http://web:8080/get
	[ "$output" = " 200" ]
	run ccurl -w ' %{http_code}' -d x http://web:8080/post
	echo "$output"
	[ "$output" = "RBAC: access denied 403" ]
	# node2's client, to v1 on node1: the destination node decides, with the tunnel's identity
	run lab exec -n l7 client2-0 -- curl -s --max-time 10 -w ' %{http_code}' -d x http://web:8080/post
	echo "$output"
	[ "$output" = "RBAC: access denied 403" ]
	run lab exec -n l7 client2-0 -- curl -s --max-time 10 http://web:8080/get
	[[ "$output" == *'"VERSION": "v1"'* ]]
	rm -f "/run/bpfmesh/lab/$LAB/config/AuthorizationPolicy.l7.web-get-only.yaml"
	sleep 1.5
	run ccurl -w ' %{http_code}' -o /dev/null -d x http://web:8080/post
	[ "$output" = " 200" ]
}

@test "attack: paths written around a DENY policy (dot segments, escapes, absolute-form, length) are denied" {
	run lab apply -f "$L7/deny-admin.yaml" -f "$L7/routes.yaml"
	[ "$status" -eq 0 ]
	long="/anything/$(head -c 2100 /dev/zero | tr '\0' a)/secret"
	for path in /anything/admin /anything/x/../admin /anything/./admin /anything/%61dmin \
		/anything/get/secret "$long"; do
		run ccurl --path-as-is -o /dev/null -w '%{http_code}' "http://web:8080$path"
		echo "${path:0:40}: $output"
		[ "$output" = 403 ]
	done
	run lab exec -n l7 client-0 -- bash -c \
		'exec 3<>/dev/tcp/10.96.70.10/8080; printf "GET https://web/anything/admin HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n" >&3; timeout 5 head -1 <&3'
	echo "absolute-form: $output"
	[[ "$output" == "HTTP/1.1 403"* ]]
	run ccurl -o /dev/null -w '%{http_code}' http://web:8080/anything/public
	[ "$output" = 200 ]
	# identities a client claims in headers do not reach the workload
	run ccurl -H 'x-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/l7/sa/admin' \
		-H 'x-forwarded-proto: https' http://web:8080/headers
	echo "$output"
	[[ "${output,,}" != *"x-forwarded-client-cert"* ]]
	[[ "$output" == *'"x-forwarded-proto": "http"'* ]]
	rm -f "/run/bpfmesh/lab/$LAB/config/AuthorizationPolicy.l7.web-no-admin.yaml"
	sleep 1.5
}

@test "cross-node per request through the mTLS tunnel: node1's client to v3, node2's to v2" {
	run ccurl -H 'region: mars' "http://web:8080/get?[1-10]"
	[ "$(count '"VERSION": "v3"' <<<"$output")" -eq 10 ]
	run lab exec -n l7 client2-0 -- curl -s --max-time 10 -H 'region: india' "http://web:8080/get?[1-10]"
	[ "$(count '"VERSION": "v2"' <<<"$output")" -eq 10 ]
	# the tunnel carried them: node2's agent counted HTTP streams in
	run lab_metrics node2
	[[ "$output" == *'reporter="destination"'*'destination_version="v3"'* ]]
}

@test "istio_requests_total by response_code equals what the client got, in Prometheus" {
	MPORT=$(lab status | sed -n 's|^node node1 .*metrics http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p')
	PROM_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat > "$WORK/prometheus.yml" <<Y
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: bpfmesh
    static_configs: [{targets: ["127.0.0.1:$MPORT"]}]
Y
	prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
		--web.listen-address="127.0.0.1:$PROM_PORT" > "$WORK/prometheus.log" 2>&1 &
	echo $! > "$WORK/prom.pid"
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null && break; sleep 0.1; done
	run lab apply -f "$L7/faults.yaml"
	q='sum by (response_code, response_flags) (istio_requests_total{reporter="source",source_workload="client",destination_service_name="web"})'
	promq() {
		curl -s --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
			/usr/bin/python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    m = r["metric"]; print(m.get("response_code"), m.get("response_flags"), r["value"][1])'
	}
	# the counts so far, once Prometheus has them (they are what /metrics says now)
	for _ in $(seq 80); do
		before=$(promq "$q" | sort)
		now=$(lab_metrics node1 | awk '/^istio_requests_total\{/ && /reporter="source"/ && /source_workload="client"/ && /destination_service_name="web"/ {
			c = $0; sub(/.*response_code="/, "", c); sub(/".*/, "", c)
			f = $0; sub(/.*response_flags="/, "", f); sub(/".*/, "", f)
			n[c " " f] += $NF } END { for (k in n) print k, n[k] }' | sort)
		[ -n "$before" ] && [ "$before" = "$now" ] && break
		sleep 0.25
	done
	[ "$before" = "$now" ]
	ccurl -w '%{http_code}\n' -o /dev/null "http://web:8080/abort50?[1-300]" > "$WORK/codes"
	c200=$(count '^200$' < "$WORK/codes")
	c503=$(count '^503$' < "$WORK/codes")
	echo "client: 200=$c200 503=$c503; before: $before"
	[ $((c200 + c503)) -eq 300 ]
	want200=$(( $(awk '$1 == 200 && $2 == "-" { print $3 }' <<<"$before") + c200 ))
	want503=$(( $(awk '$1 == 503 && $2 == "FI" { print $3 }' <<<"$before") + c503 ))
	for _ in $(seq 60); do
		got=$(promq "$q" | sort)
		g200=$(awk '$1 == 200 && $2 == "-" { print $3 }' <<<"$got")
		g503=$(awk '$1 == 503 && $2 == "FI" { print $3 }' <<<"$got")
		[ "${g200:-0}" = "$want200" ] && [ "${g503:-0}" = "$want503" ] && break
		sleep 0.25
	done
	echo "prometheus: $got"
	[ "$g200" = "$want200" ]
	[ "$g503" = "$want503" ]
}

@test "circuit breaking: maxConnections 1 + http1MaxPendingRequests 1 overflow as 503 UO" {
	run lab apply -f "$L7/cb.yaml"
	[ "$status" -eq 0 ]
	run bm services --node "$LAB-node1"
	[[ "$output" == *"path l7 (connectionPool.http of DestinationRule)"* ]]
	# 20 requests of 300 ms, 10 at a time, each on its own client connection
	run lab exec -n l7 client-0 -- curl -s --max-time 30 --parallel --parallel-max 10 \
		-w '%{http_code}\n' -o /dev/null "http://web:8080/delay/0.3?[1-20]"
	ok=$(count '^200$' <<<"$output")
	uo=$(count '^503$' <<<"$output")
	echo "200: $ok, 503: $uo"
	[ $((ok + uo)) -eq 20 ]
	[ "$ok" -ge 2 ]
	[ "$uo" -ge 1 ]
	# one slow request takes the one connection, a second the one pending slot, then a third
	# overflows (one after the other: two at once may find the first still connecting, and
	# the second overflows instead of the third)
	run lab exec -n l7 client-0 -- bash -c 'curl -s --max-time 8 -o /dev/null http://web:8080/delay/3 &
		sleep 0.5; curl -s --max-time 8 -o /dev/null http://web:8080/delay/3 & sleep 0.5;
		curl -s --max-time 5 http://web:8080/get; wait'
	echo "$output"
	[[ "$output" == *"reset reason: overflow"* ]]
	run lab_metrics node1
	[[ "$output" == *'response_code="503"'*'response_flags="UO"'* ]]
	# a client that gives up (reset) while its request waits for the connection: the agent
	# lives on (the waiting request leaves the queue)
	pid=$(bm status --node "$LAB-node1" | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')
	run lab exec -n l7 client-0 -- bash -c 'curl -s --max-time 5 -o /dev/null http://web:8080/delay/1 &
		sleep 0.2; timeout 0.3 curl -s -o /dev/null http://web:8080/get; sleep 1.5;
		curl -s --max-time 5 -o /dev/null -w "%{http_code}" http://web:8080/get; wait'
	echo "after the reset: $output"
	[[ "$output" == *200 ]]
	[ "$(bm status --node "$LAB-node1" | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')" = "$pid" ]
	run lab apply -f "$L7/base.yaml"
	[ "$status" -eq 0 ]
}

@test "outlier detection from HTTP results: a stopped replica costs 3 errors, then is ejected" {
	run lab apply -f "$L7/od.yaml"
	[ "$status" -eq 0 ]
	lab stop -n l7 web-v1-1
	run ccurl -w '%{http_code}\n' -o /dev/null "http://web:8080/get?[1-60]"
	lab start -n l7 web-v1-1
	bad=$(count '^503$' <<<"$output")
	last=$(tail -n 30 <<<"$output" | count '^200$')
	echo "503: $bad; the last 30: $last ok"
	[ "$bad" -eq 3 ]
	[ "$last" -eq 30 ]
	# the kernel's state says the same (one state per backend, shared)
	run lab_metrics node1
	[[ "$output" == *"bpfmesh_outlier_ejected{"*"} 1"* ]]
	run lab apply -f "$L7/base.yaml"
}

@test "observe --http: request events with method, path, code, flags, duration, upstream, attempts" {
	run lab apply -f "$L7/routes.yaml"
	run ccurl -o /dev/null http://web:8080/get?observe=1
	run ccurl -o /dev/null http://web:8080/direct?observe=2
	sleep 0.5
	run bm observe --node "$LAB-node1" --http
	echo "$output" | tail -5
	[[ "$output" == *": http   l7/client-0 -> l7/web -> l7/web-v1-"*" GET web:8080/get?observe=1 200 - "*" ms upstream 10.244."*":8080 attempts 1 (source)"* ]]
	[[ "$output" == *"GET web:8080/direct?observe=2 200 - "*" ms upstream - attempts 0 (source)"* ]]
	# only request events with --http; the flows too without it
	[[ "$output" != *": open "* ]]
	run bm observe --node "$LAB-node1" --http --json --workload client
	line=$(grep '"path":"/get?observe=1"' <<<"$output")
	echo "$line"
	[[ "$line" == *'"method":"GET"'*'"response_code":200'*'"response_flags":"-"'*'"attempts":1'* ]]
	[[ "$line" == *'"time":"20'* ]]
	# cross-node: node2's agent logs what it carried to v3 as destination
	run ccurl -o /dev/null -H 'region: mars' http://web:8080/get?observe=3
	sleep 0.5
	run bm observe --node "$LAB-node2" --http
	[[ "$output" == *"GET web:8080/get?observe=3 200 - "*"(destination)"* ]]
}

@test "httpCookie with ttl: a client without the cookie gets one, and it pins one replica" {
	run lab apply -f "$L7/cookie.yaml"
	[ "$status" -eq 0 ]
	run ccurl -D - -o /dev/null http://web:8080/get
	echo "$output"
	cookie=$(sed -n 's/^set-cookie: sess="\([0-9a-f]*\)"; Max-Age=60; Path=\/; HttpOnly.*/\1/p' <<<"$output" | tr -d '\r')
	[ -n "$cookie" ]
	pod=$(sed -n 's/^x-bpfmesh-pod: \(.*\)/\1/p' <<<"$output" | tr -d '\r')
	[ -n "$pod" ]
	# the cookie sent back (quoted, as set) always reaches that pod, and gets no new one
	run ccurl -D - -o /dev/null -H "cookie: sess=\"$cookie\"" "http://web:8080/get?[1-20]"
	[ "$(count "^x-bpfmesh-pod: $pod" <<<"$output")" -eq 20 ]
	[ "$(count '^set-cookie' <<<"$output")" -eq 0 ]
	# over many clients' cookies both replicas serve
	run ccurl -D - -o /dev/null "http://web:8080/get?[1-40]"
	[ "$(count '^set-cookie: sess=' <<<"$output")" -eq 40 ]
	[ "$(grep '^x-bpfmesh-pod:' <<<"$output" | sort -u | wc -l)" -eq 2 ]
	run lab apply -f "$L7/base.yaml"
}

@test "an upstream that dies mid-response: the client sees a reset, never a truncated success" {
	lab stop -n l7 raw-0 # its echo server makes way for the suite's raw one
	lab exec -n l7 raw-0 -- /usr/bin/python3 "$BATS_TEST_DIRNAME/l7_raw.py" >/dev/null 2>&1 3>&- &
	for _ in $(seq 50); do
		run lab exec -n l7 client-0 -- curl -s --max-time 2 http://raw:8080/
		[ "$output" = "raw ok" ] && break
		sleep 0.1
	done
	[ "$output" = "raw ok" ]
	for proto in --http1.1 --http2-prior-knowledge; do
		for path in /cut /cutchunked; do
			run lab exec -n l7 client-0 -- curl -s --max-time 10 "$proto" -o /dev/null \
				-w '%{http_code} %{size_download}' "http://raw:8080$path"
			echo "$proto $path: exit $status, $output"
			[ "$status" -ne 0 ] # curl: 18 partial file, 56 or 92 reset
			[ "$status" -ne 28 ] # not a hang
		done
	done
}

@test "websocket: Upgrade passes through and the connection relays both ways" {
	run lab exec -n l7 client-0 -- /usr/bin/python3 -c '
import socket
s = socket.create_connection(("10.96.70.30", 8080), timeout=5)
s.sendall(b"GET /ws HTTP/1.1\r\nHost: raw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(4096)
print(head.split(b"\r\n", 1)[0].decode())
for msg in (b"ping-1", b"ping-2" * 1000):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        got += s.recv(65536)
    print("echo", len(got), got == msg)
'
	echo "$output"
	[[ "$output" == "HTTP/1.1 101 Switching Protocols"* ]]
	[[ "$output" == *"echo 6 True"*"echo 6000 True"* ]]
	pkill -f "l7_raw.py" || true
	lab start -n l7 raw-0
}

@test "tls routes: the agent reads the ClientHello's SNI and relays the client's TLS to that route" {
	run bm services --node "$LAB-node1"
	[[ "$output" == *"10.96.70.50:443/TCP l7/tlsweb"*"path l7 (tls routes in spec.tls[0])"* ]]
	for p in tls-a tls-b; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
			-subj "/CN=$p" -keyout "$WORK/$p.key" -out "$WORK/$p.crt" 2>/dev/null
		lab stop -n l7 "$p-0" # its echo server makes way for a TLS one
		lab exec -n l7 "$p-0" -- timeout 120 openssl s_server -accept 9443 -www -quiet \
			-cert "$WORK/$p.crt" -key "$WORK/$p.key" >/dev/null 2>&1 3>&- &
	done
	sni() { # NAME: the certificate subject the client got through 10.96.70.50:443
		lab exec -n l7 client-0 -- bash -c "echo | timeout 10 openssl s_client -connect \
			10.96.70.50:443 -servername $1 2>/dev/null | sed -n 's/^subject=//p'"
	}
	for _ in $(seq 50); do
		run sni a.tlsweb.l7.svc.cluster.local
		[[ "$output" == *"CN = tls-a"* ]] && break
		sleep 0.1
	done
	echo "a.tlsweb: $output"
	[[ "$output" == *"CN = tls-a"* ]]
	# b on node2, by the wildcard: node1's agent relays it through the mTLS tunnel
	run sni b.tlsweb.l7.svc.cluster.local
	echo "b.tlsweb: $output"
	[[ "$output" == *"CN = tls-b"* ]]
	# no route for the name: closed, no certificate
	run sni c.example.com
	echo "c.example.com: $output"
	[ -z "$output" ]
	# the TLS is the client's, end to end: an HTTP GET over it reaches s_server's page
	run lab exec -n l7 client-0 -- curl -sk --max-time 10 \
		--resolve a.tlsweb.l7.svc.cluster.local:443:10.96.70.50 https://a.tlsweb.l7.svc.cluster.local/
	[[ "$output" == *"Ciphers supported in s_server binary"* || "$output" == *"s_server"* ]]
	pkill -f "openssl s_server -accept 9443" || true
	lab start -n l7 tls-a-0
	lab start -n l7 tls-b-0
}

@test "malformed requests get 400 and a close, oversized headers 431" {
	run lab exec -n l7 client-0 -- bash -c \
		'exec 3<>/dev/tcp/10.96.70.10/8080; printf "NOT HTTP AT ALL\r\n\r\n" >&3; timeout 5 cat <&3'
	echo "$output"
	[[ "$output" == "HTTP/1.1 400 Bad Request"* ]]
	run lab exec -n l7 client-0 -- curl -s --max-time 10 -o /dev/null -w '%{http_code}' \
		-H "x-big: $(head -c 70000 /dev/zero | tr '\0' a)" http://web:8080/get
	echo "$output"
	[ "$output" = 431 ]
}

@test "request bodies stream both ways: 900 KB uploads, plain and chunked, all 200" {
	for _ in 1 2 3; do
		run lab exec -n l7 client-0 -- curl -s --max-time 20 -o /dev/null -w '%{http_code}' \
			--data-binary @"$WORK/big.bin" http://web:8080/anything
		[ "$output" = 200 ]
		run lab exec -n l7 client-0 -- curl -s --max-time 20 -o /dev/null -w '%{http_code}' \
			-H 'Transfer-Encoding: chunked' --data-binary @"$WORK/big.bin" http://web:8080/anything
		[ "$output" = 200 ]
	done
	run lab exec -n l7 client-0 -- curl -s --max-time 20 -o /dev/null -w '%{http_code}' \
		-H 'Expect: 100-continue' --data-binary @"$WORK/big.bin" http://web:8080/anything
	[ "$output" = 200 ]
}

@test "attack: a pod connecting to the agent's HTTP port directly is refused" {
	# its own node's agent and another node's: only connections the kernel sent there pass
	for target in "client-0 10.244.255.1" "client-0 10.244.255.2" "client2-0 10.244.255.2"; do
		run lab exec -n l7 "${target% *}" -- curl -s --max-time 3 -o /dev/null -w '%{http_code}' \
			-H 'Host: web' "http://${target#* }:15006/get"
		echo "$target: $output"
		[ "$output" = 000 ]
	done
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
