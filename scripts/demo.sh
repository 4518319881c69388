#!/bin/bash
# `make demo`: the Istio DevOps guide's canary and blue/green on bpfmesh, on this machine.
# Brings up the guide's topology (namespace microservices: frontend -> api-gateway ->
# orders-service v1 x2 / v2 x1) in a lab, reaches frontend from the host through the ingress
# gateway (section 4, `lab port-forward`; then through a Gateway API HTTPRoute), walks the canary weights 100/0 -> 90/10 -> 50/50 ->
# 0/100 with the guide's curl loop from deploy/frontend, prints observed vs configured split,
# then times a blue/green switch and a rollback; then HTTP in the node agent: the guide's A/B
# test by header and a per-request 90/10 on one keep-alive connection, a retry hiding a stopped
# replica, a timeout and an injected fault, and istio_requests_total by response_code; then the
# guide's CI/CD stages: a canary of v2 promoted by `bpfmesh canary run` against the lab's
# Prometheus, one whose v2 fails 5% of requests rolled back, and `bpfmesh verify` of mTLS and
# policy. Always tears the lab down.
set -euo pipefail
cd "$(dirname "$0")/.."
BM=build/bpfmesh
EX=deploy/examples
LAB=demo
CALLS=${CALLS:-1000}

cleanup() { $BM lab down --name $LAB >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "lab up: the guide's YAML, unchanged apart from the port fix (see deploy/examples/README.md)"
$BM lab up --name $LAB --prometheus -f $EX/00-namespace.yaml -f $EX/orders-service.yaml \
	-f $EX/api-gateway.yaml -f $EX/frontend.yaml -f $EX/frontend-gateway.yaml \
	-f $EX/orders-destrule.yaml -f $EX/orders-vs-100-0.yaml
$BM lab status --name $LAB

say "the guide's section 4: the ingress gateway (frontend-gateway.yaml) from the host"
echo "kubectl port-forward -n istio-system svc/istio-ingressgateway 8080:80, as bpfmesh lab:"
if $BM lab port-forward --name $LAB -n istio-system svc/istio-ingressgateway 8080:80 --background; then
	curl -s --max-time 10 http://127.0.0.1:8080/ | head -n 3
else
	echo "(port 8080 of this host is taken: skipped)"
fi
echo "the same through the Kubernetes Gateway API (deploy/examples/frontend-httproute.yaml):"
$BM lab apply --name $LAB -f $EX/frontend-httproute.yaml | tail -n 1
if $BM lab port-forward --name $LAB -n microservices svc/frontend-gateway-istio 8081:80 --background; then
	curl -s --max-time 10 http://127.0.0.1:8081/ | head -n 3
else
	echo "(port 8081 of this host is taken: skipped)"
fi

say "the guide's loop, from deploy/frontend: curl -s http://orders-service:8080/get | grep VERSION"
# shellcheck disable=SC2016 # the loop runs in the pod's shell
$BM lab exec --name $LAB -n microservices deploy/frontend -- bash -c \
	'for i in $(seq 5); do curl -s http://orders-service:8080/get | grep VERSION || echo call; done'

# $CALLS new connections from the frontend; prints "v1 v2"
count() {
	$BM lab exec --name $LAB -n microservices deploy/frontend -- \
		curl -s --max-time 120 -H 'Connection: close' \
		"http://orders-service:8080/get?[1-$CALLS]" -w '\n' |
		awk '/"VERSION": "v1"/ { a++ } /"VERSION": "v2"/ { b++ } END { print a + 0, b + 0 }'
}

say "canary: $CALLS calls per phase (each call a new connection, split per connection)"
printf '%-10s %-22s %-30s\n' phase configured observed
for phase in 100-0 90-10 50-50 0-100; do
	$BM lab apply --name $LAB -f $EX/orders-vs-$phase.yaml >/dev/null
	sleep 1.1 # in force within 1 s
	read -r v1 v2 < <(count)
	w1=${phase%-*}
	w2=${phase#*-}
	printf '%-10s v1 %3s%%  v2 %3s%%      v1 %5.1f%%  v2 %5.1f%%  (%d / %d)\n' "$phase" "$w1" "$w2" \
		"$(echo "100*$v1/$CALLS" | bc -l)" "$(echo "100*$v2/$CALLS" | bc -l)" "$v1" "$v2"
done

# time from `lab apply` returning to the first new connection that sees the new version
switch_to() { # file version
	local file=$1 want=$2 t0 t1
	t0=$(date +%s%N)
	$BM lab apply --name $LAB -f "$file" >/dev/null
	t1=$(date +%s%N)
	for _ in $(seq 200); do
		if $BM lab exec --name $LAB -n microservices deploy/frontend -- \
			curl -s -H 'Connection: close' http://orders-service:8080/get |
			grep -q "\"VERSION\": \"$want\""; then
			break
		fi
	done
	local t2
	t2=$(date +%s%N)
	printf '  %-28s apply %4d ms, first %s connection %4d ms after the apply returned\n' \
		"$(basename "$file")" $(((t1 - t0) / 1000000)) "$want" $(((t2 - t1) / 1000000))
}

say "blue/green: blue (v1) -> green (v2) -> rollback to blue"
$BM lab apply --name $LAB -f $EX/orders-vs-blue.yaml >/dev/null
sleep 1.1
switch_to $EX/orders-vs-green.yaml v2
read -r v1 v2 < <(CALLS=200 count)
echo "  after switch: v1 $v1, v2 $v2 of 200"
switch_to $EX/orders-vs-blue.yaml v1
read -r v1 v2 < <(CALLS=200 count)
echo "  after rollback: v1 $v1, v2 $v2 of 200"

# N requests on ONE keep-alive connection from the frontend: curl ARGS...; prints
# "v1 v2 connects"
one_conn() {
	$BM lab exec --name $LAB -n microservices deploy/frontend -- \
		curl -s --max-time 120 -w 'CONNECTS %{num_connects}\n' "$@" |
		awk '/"VERSION": "v1"/ { a++ } /"VERSION": "v2"/ { b++ } /^CONNECTS/ { c += $2 }
			END { print a + 0, b + 0, c + 0 }'
}
url=http://orders-service:8080

say "HTTP in the node agent: the guide's A/B test, header region: india to v2 (one connection)"
$BM lab apply --name $LAB -f $EX/orders-vs-ab-india.yaml >/dev/null
$BM services --node $LAB-node1 | grep -A1 '/TCP microservices/orders-service'
read -r v1 v2 c < <(one_conn -H 'region: india' "$url/get?[1-20]" --next -s "$url/get?[1-20]")
echo "  20 with region: india, 20 without, $c connection(s): v2 $v2, v1 $v1"

say "canary 90/10 per request: 1000 requests on ONE keep-alive connection"
$BM lab apply --name $LAB -f $EX/orders-vs-90-10-per-request.yaml >/dev/null
read -r v1 v2 c < <(one_conn "$url/get?[1-1000]")
printf '  configured v1 90%%  v2 10%%   observed v1 %5.1f%%  v2 %5.1f%%  (%d / %d, %d connection)\n' \
	"$(echo "100*$v1/1000" | bc -l)" "$(echo "100*$v2/1000" | bc -l)" "$v1" "$v2" "$c"

say "a retry hides a stopped replica: orders-service-v1-1 stopped, 200 requests"
$BM lab stop --name $LAB -n microservices orders-service-v1-1
codes=$($BM lab exec --name $LAB -n microservices deploy/frontend -- \
	curl -s --max-time 60 -o /dev/null -w '%{http_code}\n' "$url/get?[1-200]" | sort | uniq -c)
$BM lab start --name $LAB -n microservices orders-service-v1-1
echo "  response codes the client saw (code: count): $(awk '{ printf "%s: %s  ", $2, $1 }' <<<"$codes")"

say "a timeout (500 ms on /delay) and an injected fault (503 for 50% of /status/200)"
$BM lab apply --name $LAB -f $EX/orders-vs-timeout-fault.yaml >/dev/null
$BM lab exec --name $LAB -n microservices deploy/frontend -- \
	curl -s -o /dev/null -w '  GET /delay/3: %{http_code} after %{time_total} s\n' "$url/delay/3"
codes=$($BM lab exec --name $LAB -n microservices deploy/frontend -- \
	curl -s --max-time 60 -o /dev/null -w '%{http_code}\n' "$url/status/200?[1-200]" | sort | uniq -c)
echo "  200 calls to /status/200 (code: count): $(awk '{ printf "%s: %s  ", $2, $1 }' <<<"$codes")"

say "istio_requests_total by response_code: the series a rollback reads (frontend -> orders)"
mport=$($BM lab status --name $LAB | sed -n 's|^node node1 .*metrics http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p')
curl -s "http://127.0.0.1:$mport/metrics" |
	awk '/^istio_requests_total\{/ && /reporter="source"/ && /source_workload="frontend"/ {
		match($0, /response_code="[^"]*"/); c = substr($0, RSTART + 15, RLENGTH - 16)
		match($0, /response_flags="[^"]*"/); f = substr($0, RSTART + 16, RLENGTH - 17)
		t[c " " f] += $NF } END { for (k in t) printf "  response_code %-12s %d\n", k, t[k] }' |
	sort
echo "  error rate: $(curl -s "http://127.0.0.1:$mport/metrics" | awk '/^istio_requests_total\{/ &&
	/reporter="source"/ && /source_workload="frontend"/ { n += $NF; if ($0 ~ /response_code="5/) e += $NF }
	END { printf "%.1f%% of %d requests", n ? 100 * e / n : 0, n }')"

say "request events (bpfmesh observe --node $LAB-node1 --http), last few"
$BM observe --node $LAB-node1 --http | tail -n 3

say "what the kernel holds (bpfmesh services --node $LAB-node1)"
$BM services --node $LAB-node1 | grep -A4 'orders-service'

say "Istio metrics, as Prometheus scrapes them (the agent's /metrics)"
mport=$($BM lab status --name $LAB | sed -n 's|^node node1 .*metrics http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p')
curl -s "http://127.0.0.1:$mport/metrics" |
	awk '/^istio_tcp_connections_opened_total\{/ && /reporter="source"/ {
		match($0, /destination_workload="[^"]*"/); w = substr($0, RSTART + 22, RLENGTH - 23)
		match($0, /destination_version="[^"]*"/); v = substr($0, RSTART + 21, RLENGTH - 22)
		t[w " " v] += $NF } END { for (k in t) printf "  istio_tcp_connections_opened_total %-28s %d\n", k, t[k] }' | sort

say "service graph (bpfmesh graph --node $LAB-node1 --format dot; svg with --format svg)"
$BM graph --node $LAB-node1 --format dot --window 0

say "flow log, last few closed connections (bpfmesh observe --node $LAB-node1 --verdict close)"
$BM observe --node $LAB-node1 --verdict close | tail -n 4

say "CI/CD (guide section 8): bpfmesh canary run -f $EX/orders-canary.yaml, v2 promoted"
# traffic while the canary runs, from the frontend: bounded in count and time
traffic() {
	# shellcheck disable=SC2016 # the loop runs in the pod's shell
	timeout 120 $BM lab exec --name $LAB -n microservices deploy/frontend -- bash -c \
		'for i in $(seq 1000); do curl -s -o /dev/null --max-time 5 "http://orders-service:8080/get?[1-20]"; sleep 0.05; done' \
		>/dev/null 2>&1 &
	TRAFFIC=$!
}
traffic_stop() { kill "$TRAFFIC" 2>/dev/null || true; wait "$TRAFFIC" 2>/dev/null || true; }
$BM lab apply --name $LAB -f $EX/orders-vs-100-0.yaml >/dev/null
traffic
rc=0
$BM canary run -f $EX/orders-canary.yaml --lab $LAB --junit /tmp/bpfmesh-demo-canary.xml || rc=$?
traffic_stop
echo "  exit $rc (0: promoted); JUnit report /tmp/bpfmesh-demo-canary.xml"
$BM services --node $LAB-node1 | grep -A3 '/TCP microservices/orders-service' | grep route

say "CI/CD: a bad v2 (5% of requests answered 500, $EX/orders-v2-bad.yaml) is rolled back"
$BM lab apply --name $LAB -f $EX/orders-v2-bad.yaml -f $EX/orders-vs-100-0.yaml >/dev/null
traffic
rc=0
$BM canary run -f $EX/orders-canary.yaml --lab $LAB || rc=$?
traffic_stop
echo "  exit $rc (1: rolled back)"
$BM services --node $LAB-node1 | grep -A3 '/TCP microservices/orders-service' | grep route
$BM lab apply --name $LAB -f $EX/orders-service.yaml >/dev/null

say "CI/CD: bpfmesh verify -f $EX/verify-microservices.yaml (STRICT, policy, who talks to whom)"
$BM lab apply --name $LAB -f $EX/peerauth-strict.yaml -f $EX/authz-from-microservices.yaml \
	-f $EX/clients-outside.yaml >/dev/null
rc=0
$BM verify -f $EX/verify-microservices.yaml --lab $LAB --window 10m || rc=$?
echo "  exit $rc (0: every check passed)"

say "tearing down"
cleanup
trap - EXIT
echo "demo done"
