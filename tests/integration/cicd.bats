#!/usr/bin/env bats
# The guide's CI/CD stages, end to end: `bpfmesh canary run` against a real Prometheus (the
# lab's, lab up --prometheus) on a two-node lab with traffic flowing, promoting a good v2 and
# rolling back a v2 that fails 10% of requests or answers 300 ms late, with the weights read
# back from both nodes' maps after each outcome; Prometheus down mid-run and Ctrl-C leave the
# last safe step; JUnit files read by junitparser and xmllint. `bpfmesh verify` passes on a
# correct mesh and fails, naming the pair, when a policy is removed.
load helpers

LAB=icd
CD="$FIX/cicd"
EXD="$BATS_TEST_DIRNAME/../../deploy/examples"

setup_file() {
	export LAB WORK
	lab_teardown "$LAB"
	lab_up "$LAB" --prometheus -f "$CD/mesh.yaml" -f "$CD/v2-good.yaml" >&3 2>&3
	WORK=$(mktemp -d /tmp/bpfmesh-cicd.XXXXXX)
}

teardown_file() {
	traffic_stop
	[ -f "$WORK/prom.pid" ] && kill "$(cat "$WORK/prom.pid")" 2>/dev/null
	lab_teardown "$LAB"
	rm -rf "$WORK"
}

# Requests from the frontend while a canary runs: bounded in count (600 x 20) and time (90 s).
traffic_start() {
	# shellcheck disable=SC2016 # the loop runs in the pod's shell
	timeout 90 "$BM" lab exec --name "$LAB" -n microservices deploy/frontend -- bash -c \
		'for i in $(seq 600); do curl -s -o /dev/null --max-time 5 "http://orders:8080/get?[1-20]"; sleep 0.05; done' \
		>/dev/null 2>&1 3>&- &
	echo $! > "$WORK/traffic.pid"
}
traffic_stop() {
	[ -f "$WORK/traffic.pid" ] || return 0
	kill "$(cat "$WORK/traffic.pid")" 2>/dev/null || true
	pkill -f "bpfmesh lab exec --name $LAB -n microservices deploy/frontend" 2>/dev/null || true
	rm -f "$WORK/traffic.pid"
}

# The share of v2 in the orders routes of every node's maps: "node1 N node2 N"
weights() {
	for n in node1 node2; do
		bm services --node "$LAB-$n" -o json | /usr/bin/python3 -c '
import json, sys
pct = set()
for s in json.load(sys.stdin):
    if s.get("service") != "microservices/orders":
        continue
    for r in (s.get("routes") or [s.get("route")]):
        if r:
            pct.add(sum(d["percent"] for d in r["destinations"] if d.get("subset") == "v2"))
print(sys.argv[1], " ".join("%g" % p for p in sorted(pct)) or "none", end=" ")' "$n"
	done
	echo
}

# start every canary from 100% v1, with the v2 release given
reset_v2() {
	lab apply -f "$CD/mesh.yaml" -f "$CD/$1" >/dev/null
	[ "$(weights)" = "node1 0 node2 0 " ]
}

junit_check() { # FILE TESTS FAILURES
	xmllint --noout --schema "$CD/junit.xsd" "$1"
	/usr/bin/python3 - "$@" <<'PY'
import sys
from junitparser import JUnitXml
x = JUnitXml.fromfile(sys.argv[1])
tests = sum(s.tests for s in x)
failures = sum(s.failures for s in x)
cases = [c for s in x for c in s]
print("junit:", tests, "tests", failures, "failures;", [c.name for c in cases if not c.is_passed])
assert tests == len(cases) and tests >= int(sys.argv[2]), tests
assert (failures > 0) == (sys.argv[3] != "0"), failures
assert all(c.classname for c in cases)
PY
}

@test "lab up --prometheus: lab status names it and it scrapes every agent of the lab" {
	run lab status
	echo "$output"
	[[ "$output" == *"prometheus http://127.0.0.1:"* ]]
	PROM=$(sed -n 's/^prometheus \(http:.*\)$/\1/p' <<<"$output")
	for _ in $(seq 50); do
		up=$(curl -s --get "$PROM/api/v1/query" --data-urlencode 'query=sum(up{job="bpfmesh-agents"})' |
			/usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
		[ "$up" = 2 ] && break
		sleep 0.2
	done
	[ "$up" = 2 ]
	run lab status -o json
	[[ "$output" == *'"prometheus": "http://127.0.0.1:'* ]]
}

@test "echo server: ECHO_FAIL_PERCENT answers exactly that share with 500, ECHO_DELAY_MS answers late" {
	lab apply -f "$CD/v2-bad.yaml" >/dev/null
	ip=$(lab status | awk '$2 == "microservices/orders-v2-0" { print $6 }')
	run lab exec -n microservices deploy/frontend -- curl -s -o /dev/null -w '%{http_code}\n' \
		"http://$ip:8080/get?[1-200]"
	[ "$(grep -c '^500$' <<<"$output")" -eq 20 ]
	[ "$(grep -c '^200$' <<<"$output")" -eq 180 ]
	lab apply -f "$CD/v2-slow.yaml" >/dev/null
	run lab exec -n microservices deploy/frontend -- curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
		"http://$ip:8080/get"
	echo "$output"
	awk '{ exit !($1 == 200 && $2 >= 0.3) }' <<<"$output"
	lab apply -f "$CD/v2-good.yaml" >/dev/null
}

@test "canary promotes a good release: 10 -> 50 -> 100, in force on both nodes, JUnit valid" {
	reset_v2 v2-good.yaml
	traffic_start
	run bm canary run -f "$CD/canary.yaml" --lab "$LAB" --junit "$WORK/promote.xml"
	traffic_stop
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^step [0-9] weight [0-9]*%: requests [0-9]*, request-success-rate .* ok, request-duration .* ok: pass$' <<<"$output")" -eq 3 ]
	[[ "$output" == *"promoted: orders.microservices.svc.cluster.local 100% v2"* ]]
	[ "$(weights)" = "node1 100 node2 100 " ]
	junit_check "$WORK/promote.xml" 10 0
	run bm services --node "$LAB-node1"
	[[ "$output" == *"path l7 (bpfmesh.io/per-request on VirtualService microservices/orders)"* ]]
}

@test "canary rolls back on error rate: v2 failing 10% of requests is back at 0% on both nodes" {
	reset_v2 v2-bad.yaml
	traffic_start
	run bm canary run -f "$CD/canary.yaml" --lab "$LAB" --junit "$WORK/rollback.xml" --json
	traffic_stop
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"request-success-rate 9"*"(min 99) FAIL"* ]]
	[[ "$output" == *"rolled back: orders.microservices.svc.cluster.local 100% v1 after 2 failed check(s)"* ]]
	[[ "$output" == *'"result": "rolledBack"'* ]]
	[ "$(weights)" = "node1 0 node2 0 " ]
	junit_check "$WORK/rollback.xml" 3 1
}

@test "canary rolls back on p99 latency: v2 answering 300 ms late fails request-duration max 100" {
	reset_v2 v2-slow.yaml
	traffic_start
	run bm canary run -f "$CD/canary.yaml" --lab "$LAB"
	traffic_stop
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"request-duration "*" ms (max 100) FAIL"* ]]
	[[ "$output" == *"rolled back"* ]]
	[ "$(weights)" = "node1 0 node2 0 " ]
	lab apply -f "$CD/v2-good.yaml" >/dev/null
}

@test "canary: a step with no request to the canary is a failed check, not a success" {
	reset_v2 v2-good.yaml
	sed 's/threshold: 2/threshold: 1/' "$CD/canary.yaml" > "$WORK/once.yaml"
	run bm canary run -f "$WORK/once.yaml" --lab "$LAB"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"step 1 weight 10%: requests 0 FAIL (no data)"* ]]
	[ "$(weights)" = "node1 0 node2 0 " ]
}

@test "canary: Prometheus down mid-run leaves the weights at the last step that passed (exit 3)" {
	reset_v2 v2-good.yaml
	PROM_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	targets=$(lab status | sed -n 's|^node .* metrics http://\(127.0.0.1:[0-9]*\)/metrics.*|"\1"|p' | paste -sd,)
	cat > "$WORK/prometheus.yml" <<Y
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: bpfmesh
    static_configs: [{targets: [$targets]}]
Y
	prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
		--web.listen-address="127.0.0.1:$PROM_PORT" > "$WORK/prometheus.log" 2>&1 3>&- &
	echo $! > "$WORK/prom.pid"
	# ready, and scraping both agents (Prometheus's discovery waits up to 5 s)
	for _ in $(seq 150); do
		curl -s --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=count(up == 1)' |
			grep -q '"2"\]' && break
		sleep 0.1
	done
	traffic_start
	bm canary run -f "$CD/canary.yaml" --lab "$LAB" --prometheus "http://127.0.0.1:$PROM_PORT" \
		> "$WORK/canary.out" 2>&1 3>&- &
	cpid=$!
	# once step 1 (10%) passed: Prometheus goes away while step 2 (50%) runs
	for _ in $(seq 200); do grep -q '^step 1 .*: pass$' "$WORK/canary.out" && break; sleep 0.1; done
	kill "$(cat "$WORK/prom.pid")"
	rc=0
	wait "$cpid" || rc=$?
	traffic_stop
	cat "$WORK/canary.out"
	[ "$rc" -eq 3 ]
	grep -q '^step 1 .*: pass$' "$WORK/canary.out"
	grep -q "aborted (prometheus http://127.0.0.1:$PROM_PORT: .*): weights left at the last step that passed: 10% v2, 90% v1" "$WORK/canary.out"
	[ "$(weights)" = "node1 10 node2 10 " ]
}

@test "canary: Ctrl-C leaves the weights at the last step that passed (exit 130)" {
	reset_v2 v2-good.yaml
	traffic_start
	# the binary itself in the background (a shell function's subshell would get the signal)
	"$BM" canary run -f "$CD/canary.yaml" --lab "$LAB" > "$WORK/int.out" 2>&1 3>&- &
	cpid=$!
	for _ in $(seq 200); do grep -q '^step 1 .*: pass$' "$WORK/int.out" && break; sleep 0.1; done
	sleep 1 # step 2 (50%) is in force and waiting for its interval
	kill -INT "$cpid"
	rc=0
	wait "$cpid" || rc=$?
	traffic_stop
	cat "$WORK/int.out"
	[ "$rc" -eq 130 ]
	grep -q 'aborted (interrupted): weights left at the last step that passed: 10% v2, 90% v1' "$WORK/int.out"
	[ "$(weights)" = "node1 10 node2 10 " ]
}

@test "canary --config-dir: writes the VirtualService's own file and waits for --node maps" {
	reset_v2 v2-good.yaml
	cfg=$(lab status -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["config"])')
	sed 's/stepWeights: \[10, 50, 100\]/stepWeights: [100]/' "$CD/canary.yaml" > "$WORK/one.yaml"
	traffic_start
	run bm canary run -f "$WORK/one.yaml" --config-dir "$cfg" --node "$LAB-node1" --node "$LAB-node2" \
		--prometheus "$(lab status | sed -n 's/^prometheus //p')"
	traffic_stop
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"writes VirtualService microservices/orders in $cfg/VirtualService.microservices.orders.yaml"* ]]
	[ "$(weights)" = "node1 100 node2 100 " ]
	grep -q 'bpfmesh.io/per-request' "$cfg/VirtualService.microservices.orders.yaml"
}

@test "canary: usage and config errors exit 2 and name the file, line and field" {
	before=$(weights)
	run bm canary run -f "$CD/canary.yaml"
	[ "$status" -eq 2 ]
	sed 's/to: v2/to: v3/' "$CD/canary.yaml" > "$WORK/bad.yaml"
	run bm canary run -f "$WORK/bad.yaml" --lab "$LAB"
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *"spec.to: no subset v3 in a DestinationRule for orders.microservices.svc.cluster.local"* ]]
	sed 's/stepWeights: \[10, 50, 100\]/stepWeights: [50, 10]/' "$CD/canary.yaml" > "$WORK/bad.yaml"
	run bm canary run -f "$WORK/bad.yaml" --lab "$LAB"
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *"bad.yaml:15: spec.analysis.stepWeights: want rising whole numbers from 1 to 100"* ]]
	# a custom query Prometheus refuses, and one that is not one number: config errors, asked
	# before anything is written
	cp "$CD/canary.yaml" "$WORK/bad.yaml"
	printf '      - {name: broken, query: "sum(rate((", thresholdRange: {max: 1}}\n' >> "$WORK/bad.yaml"
	run bm canary run -f "$WORK/bad.yaml" --lab "$LAB"
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *"spec.analysis.metrics[2] (broken): prometheus refused the query (HTTP 400)"* ]]
	cp "$CD/canary.yaml" "$WORK/bad.yaml"
	printf '      - {name: every-target, query: "up", thresholdRange: {min: 1}}\n' >> "$WORK/bad.yaml"
	run bm canary run -f "$WORK/bad.yaml" --lab "$LAB"
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *"spec.analysis.metrics[2] (every-target): the query yields 2 series, not one number"* ]]
	# nothing was written
	[ "$(weights)" = "$before" ]
}

@test "verify: passes on the correct mesh (STRICT, policy, mTLS), JUnit valid" {
	lab apply -f "$EXD/peerauth-strict.yaml" -f "$EXD/authz-from-microservices.yaml" \
		-f "$EXD/clients-outside.yaml" >/dev/null
	cat > "$WORK/expect.yaml" <<Y
apiVersion: bpfmesh.io/v1alpha1
kind: Verify
metadata: {name: cicd}
spec:
  strict: [microservices]
  pairs:
    - {from: microservices/frontend, to: "orders.microservices:8080", expect: allow, mtls: required,
       principal: spiffe://cluster.local/ns/microservices/sa/default}
    - {from: outside/sleep, to: "orders.microservices:8080", expect: deny}
    - {from: legacy/curl, to: "orders.microservices:8080", expect: deny}
Y
	run bm verify -f "$WORK/expect.yaml" --lab "$LAB" --window 5m --junit "$WORK/verify.xml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"PASS namespace microservices is STRICT"* ]]
	[[ "$output" == *"PASS microservices/frontend -> orders.microservices:8080 allowed: allowed 200 as cluster.local/ns/microservices/sa/default: to other nodes mutual TLS"* ]]
	# the policy's reason as the node recorded it: on the HTTP path (the canaries left the port
	# there) Envoy's RBAC detail, on the kernel path the kernel's counter
	grep -E '^PASS outside/sleep -> orders.microservices:8080 denied: (denied 403: HTTP 403 from the destination.s agent: rbac_access_denied_matched_policy\[none\]|denied connect: .*AuthorizationPolicy: dropped by the destination.s kernel)' <<<"$output"
	[[ "$output" == *"PASS legacy/curl -> orders.microservices:8080 denied: denied connect: "*"STRICT: plaintext dropped by the destination's kernel"* ]]
	[[ "$output" == *"PASS traffic in Prometheus"* ]]
	junit_check "$WORK/verify.xml" 5 0
}

@test "verify: fails naming the pair when the policy is removed, and when a namespace is not STRICT" {
	lab delete -f "$EXD/authz-from-microservices.yaml" >/dev/null
	run bm verify -f "$WORK/expect.yaml" --lab "$LAB" --window 5m --junit "$WORK/verify2.xml"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"FAIL outside/sleep -> orders.microservices:8080 denied: expected deny, got allowed 200"* ]]
	[[ "$output" == *"FAIL traffic outside/sleep -> microservices/orders: traffic over the last 300s, but the expectations deny this pair"* ]]
	junit_check "$WORK/verify2.xml" 5 1
	lab apply -f "$EXD/authz-from-microservices.yaml" >/dev/null
	lab delete -f "$EXD/peerauth-strict.yaml" >/dev/null
	run bm verify -f "$WORK/expect.yaml" --lab "$LAB" --window 5m
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"FAIL namespace microservices is STRICT: "*" not STRICT: microservices/"*" is PERMISSIVE"* ]]
}

@test "lab down leaves nothing behind (Prometheus included)" {
	lab_down_clean "$LAB"
	run pgrep -af "prometheus --config.file=/run/bpfmesh/lab/$LAB/"
	[ -z "$output" ]
}
