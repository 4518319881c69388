#!/usr/bin/env bats
# The agent on the Kubernetes API (issue 13): `lab up --kube-api` serves the lab's objects
# through tests/kubeapi/fake-apiserver.py (a protocol-faithful stand-in for kube-apiserver)
# and every agent lists and watches it with --kubeconfig. Changes are in force within 1 s of
# the API server holding them; readiness and EndpointSlices decide the endpoints; a 410 Gone
# lists again without a gap; the API server down for 30 s fails no connection; a CRD that goes
# away and comes back; token rotation; in-cluster `--kube` and client certificates over TLS.
load helpers

LAB=ikube
CFG=/run/bpfmesh/lab/$LAB/config
API_PY="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/tests/kubeapi/fake-apiserver.py"

setup_file() {
	export LAB WORK API
	lab_teardown "$LAB"
	WORK=$(mktemp -d /tmp/bpfmesh-kube.XXXXXX)
	BPFMESH_KUBE_ABSENT_RETRY_MS=1000 lab_up "$LAB" --kube-api -f "$FIX/mesh.yaml" >&3 2>&3
	API=$(lab status -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["kubeApi"])')
}

teardown_file() {
	for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	[ -n "${WORK:-}" ] && rm -rf "$WORK"
	lab_teardown "$LAB"
}

# POST a control operation to the lab's API server: its JSON answer
ctl() { curl -s --max-time 10 -X POST "$API/_test/$1"; }

# the endpoints of ADDR PORT in node1's maps, sorted, space-separated
eps() {
	bm services --node "$LAB-node1" -o json | /usr/bin/python3 -c '
import json, sys
a = set()
for s in json.load(sys.stdin):
    if s["address"] == sys.argv[1] and s["port"] == int(sys.argv[2]):
        for sub in s["subsets"]:
            if sub.get("role") == "all":
                a.update(e["address"] for e in sub.get("endpoints", []))
print("\n".join(a))' "$1" "$2" | sort | xargs
}

# a list of endpoints in eps' order
sorted() { tr ' ' '\n' <<<"$1" | sort | xargs; }

now_ms() { date +%s%3N; }

# wait_eps WANT: until web's endpoints are WANT (at most 5 s); prints the ms it took from
# the moment the API server held the change (the rescan it answers)
wait_eps() {
	local t0 got want
	want=$(sorted "$1")
	ctl rescan >/dev/null
	t0=$(now_ms)
	for _ in $(seq 250); do
		got=$(eps 10.96.10.10 8080)
		if [ "$got" = "$want" ]; then
			echo $(($(now_ms) - t0))
			return 0
		fi
		sleep 0.02
	done
	echo "endpoints: $got, want $want" >&2
	return 1
}

# pod_file NAME IP READY [EXTRA-METADATA]: a web v1 Pod of namespace t, as the API holds it
pod_file() {
	local extra=${4:-"annotations: {}"}
	cat >"$CFG/.tmp-$1" <<Y
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: t
  labels: {app: web, version: v1}
  $extra
spec:
  nodeName: elsewhere
  containers: [{name: app, ports: [{containerPort: 8080}]}]
status:
  podIP: $2
  conditions: [{type: Ready, status: "$3"}]
Y
	mv "$CFG/.tmp-$1" "$CFG/Pod.t.$1.yaml"
}

BASE="10.244.1.4:8080 10.244.1.5:8080 10.244.1.6:8080"

@test "the agents watch the API server: status says connected, the lab's services are in force" {
	run bm status --node "$LAB-node1"
	echo "$output"
	[[ "$output" == *"api: connected"* ]]
	[[ "$output" == *"config:   loaded"* ]]
	grep -q "kube: watching 22 kinds at kubeconfig /run/bpfmesh/lab/$LAB/kubeconfig" \
		"/run/bpfmesh/lab/$LAB/agent-node1.log"
	[ "$(eps 10.96.10.10 8080)" = "$BASE" ]
	# every kind listed in chunks and watched with bookmarks from the list's resourceVersion
	run curl -s "$API/_test/requests"
	/usr/bin/python3 -c '
import json, sys
reqs = json.loads(sys.argv[1])
lists = [r["path"] for r in reqs if "watch=1" not in r["path"] and "limit=500" in r["path"]]
watches = [r["path"] for r in reqs if "watch=1" in r["path"]]
assert any(p.startswith("/api/v1/pods?") for p in lists), lists
assert all("allowWatchBookmarks=true" in p and "resourceVersion=" in p for p in watches), watches
assert all(r["auth"] for r in reqs), "a request without the token"
assert not [r for r in reqs if r["method"] != "GET"], "the agent only reads"' "$output"
	# an app reaches web through the kernel's translation
	run lab exec -n t client-0 -- curl -s --max-time 3 http://web:8080/
	[[ "$output" == *"bpfmesh echo: pod web-v"* ]]
}

@test "a pod added, rescheduled and removed is in force within 1 s of the API server holding it" {
	pod_file web-x 10.244.1.50 True
	ms=$(wait_eps "$BASE 10.244.1.50:8080")
	echo "added: $ms ms"
	[ "$ms" -lt 1000 ]
	pod_file web-x 10.244.1.51 True # rescheduled: a new address
	ms=$(wait_eps "$BASE 10.244.1.51:8080")
	echo "rescheduled: $ms ms"
	[ "$ms" -lt 1000 ]
	rm "$CFG/Pod.t.web-x.yaml"
	ms=$(wait_eps "$BASE")
	echo "removed: $ms ms"
	[ "$ms" -lt 1000 ]
}

@test "readiness: a pod not Ready, or terminating, takes no new connections; an EndpointSlice decides for its Service" {
	# every step starts from web-x in the endpoints, so each wait sees the agent act
	pod_file web-x 10.244.1.50 True
	wait_eps "$BASE 10.244.1.50:8080"
	pod_file web-x 10.244.1.50 False
	ms=$(wait_eps "$BASE")
	echo "not ready: $ms ms"
	[ "$ms" -lt 1000 ]
	pod_file web-x 10.244.1.50 True
	ms=$(wait_eps "$BASE 10.244.1.50:8080")
	echo "ready again: $ms ms"
	[ "$ms" -lt 1000 ]
	pod_file web-x 10.244.1.50 True "deletionTimestamp: '2026-12-01T00:00:00Z'"
	ms=$(wait_eps "$BASE")
	echo "terminating: $ms ms"
	[ "$ms" -lt 1000 ]
	pod_file web-x 10.244.1.50 True
	wait_eps "$BASE 10.244.1.50:8080"
	# the Service's EndpointSlice says web-v1-0 is not ready: it leaves; web-x serving and
	# terminating stays out while others serve
	cat >"$CFG/EndpointSlice.t.web-abc.yaml" <<Y
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: t, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- {addresses: [10.244.1.4], conditions: {ready: false, serving: false, terminating: false}}
- {addresses: [10.244.1.50], conditions: {ready: false, serving: true, terminating: true}}
ports: [{name: http, port: 8080, protocol: TCP}]
Y
	ms=$(wait_eps "10.244.1.5:8080 10.244.1.6:8080")
	echo "slice: $ms ms"
	[ "$ms" -lt 1000 ]
	rm "$CFG/EndpointSlice.t.web-abc.yaml" "$CFG/Pod.t.web-x.yaml"
	wait_eps "$BASE"
}

@test "a Service without a selector (as default/kubernetes) takes its endpoints from its EndpointSlice" {
	cat >"$CFG/Service.default.kubernetes.yaml" <<Y
apiVersion: v1
kind: Service
metadata: {name: kubernetes, namespace: default}
spec:
  clusterIP: 10.96.0.1
  ports: [{name: https, port: 443, targetPort: 6443}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: kubernetes, namespace: default, labels: {kubernetes.io/service-name: kubernetes}}
addressType: IPv4
endpoints: [{addresses: [10.244.1.5]}]
ports: [{name: https, port: 8080, protocol: TCP}]
Y
	ctl rescan >/dev/null
	for _ in $(seq 50); do
		[ "$(eps 10.96.0.1 443)" = "10.244.1.5:8080" ] && break
		sleep 0.1
	done
	[ "$(eps 10.96.0.1 443)" = "10.244.1.5:8080" ]
	run lab exec -n t client-0 -- curl -s --max-time 3 http://10.96.0.1:443/
	echo "$output"
	[[ "$output" == *"pod web-v1-1"* ]]
	rm "$CFG/Service.default.kubernetes.yaml"
	ctl rescan >/dev/null
	for _ in $(seq 50); do # gone from the maps before the next test counts applies
		[ -z "$(eps 10.96.0.1 443)" ] && break
		sleep 0.1
	done
	[ -z "$(eps 10.96.0.1 443)" ]
}

@test "410 Gone: the agent lists again and swaps the result in whole, with no gap" {
	wait_eps "$BASE" >/dev/null # what is in force is what the API server holds
	sleep 0.5
	gen0=$(bm status --node "$LAB-node1" -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["generation"])')
	ctl requests/clear >/dev/null
	ctl compact >/dev/null
	ctl disconnect >/dev/null
	# the watches come back from their old resourceVersion, get 410 and list again
	for _ in $(seq 100); do
		n=$(curl -s "$API/_test/requests" | /usr/bin/python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin) if r["path"].startswith("/api/v1/pods?limit=")))')
		[ "$n" -ge 1 ] && break
		sleep 0.1
	done
	[ "$n" -ge 1 ]
	sleep 1
	# the same objects: nothing was put in force again, nothing left the maps
	gen1=$(bm status --node "$LAB-node1" -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["generation"])')
	echo "generation $gen0 -> $gen1"
	[ "$gen1" = "$gen0" ]
	[ "$(eps 10.96.10.10 8080)" = "$BASE" ]
	# a change made while every watch is cut and history is gone arrives through the list
	ctl compact >/dev/null
	ctl disconnect >/dev/null
	pod_file web-y 10.244.1.60 True
	ms=$(wait_eps "$BASE 10.244.1.60:8080")
	echo "through the re-list: $ms ms"
	rm "$CFG/Pod.t.web-y.yaml"
	wait_eps "$BASE"
	run bm status --node "$LAB-node1"
	[[ "$output" == *"api: connected"* ]]
}

@test "the API server down for 30 s: zero failed connections, status says so, then it catches up" {
	# 150 connects over the outage, each through the kernel's translation of the service
	# shellcheck disable=SC2016 # the loop's variables are the pod shell's
	lab exec -n t client-0 -- sh -c 'i=0; f=0; while [ $i -lt 150 ]; do
		curl -s --max-time 3 -o /dev/null http://web:8080/ || f=$((f+1)); i=$((i+1)); sleep 0.25; done
		echo "failed $f of $i"' >"$WORK/load.out" 2>&1 &
	load=$!
	ctl "down?seconds=30" >/dev/null
	sleep 8
	run bm status --node "$LAB-node1"
	echo "$output"
	[[ "$output" == *"api: disconnected since "* ]]
	[[ "$output" == *"config:   loaded"* ]]
	[ "$(eps 10.96.10.10 8080)" = "$BASE" ]
	wait "$load"
	cat "$WORK/load.out"
	grep -q "^failed 0 of 150$" "$WORK/load.out"
	# back: a change is in force (the back-off is at most 5 s)
	for _ in $(seq 100); do
		curl -s --max-time 1 "$API/_test/rv" >/dev/null && break
		sleep 0.2
	done
	pod_file web-z 10.244.1.70 True
	ctl rescan >/dev/null
	for _ in $(seq 100); do
		[ "$(eps 10.96.10.10 8080)" = "$(sorted "$BASE 10.244.1.70:8080")" ] && break
		sleep 0.1
	done
	[ "$(eps 10.96.10.10 8080)" = "$(sorted "$BASE 10.244.1.70:8080")" ]
	rm "$CFG/Pod.t.web-z.yaml"
	wait_eps "$BASE"
	for _ in $(seq 30); do
		bm status --node "$LAB-node1" | grep -q "api: connected" && break
		sleep 0.2
	done
	bm status --node "$LAB-node1" | grep -q "api: connected"
}

@test "a CRD group that goes away takes its objects with it, with one log line; it is picked up when it comes back" {
	lab apply -f "$FIX/vs-0-100.yaml" >/dev/null
	run lab exec -n t client-0 -- curl -s --max-time 3 http://web:8080/
	[[ "$output" == *"version v2"* ]]
	ctl "uninstall?group=networking.istio.io" >/dev/null
	for _ in $(seq 50); do
		bm services --node "$LAB-node1" | grep -q "v2 weight 100" || break
		sleep 0.1
	done
	run bm services --node "$LAB-node1"
	[[ "$output" != *"v2 weight 100"* ]]
	grep -q "kube: virtualservices (networking.istio.io) is not served: skipped" \
		"/run/bpfmesh/lab/$LAB/agent-node1.log"
	[ "$(grep -c "kube: virtualservices (networking.istio.io) is not served" \
		"/run/bpfmesh/lab/$LAB/agent-node1.log")" -eq 1 ]
	ctl "install?group=networking.istio.io" >/dev/null
	for _ in $(seq 100); do
		bm services --node "$LAB-node1" | grep -q "v2 weight 100" && break
		sleep 0.1
	done
	bm services --node "$LAB-node1" | grep -q "v2 weight 100"
	grep -q "kube: virtualservices is served now" "/run/bpfmesh/lab/$LAB/agent-node1.log"
	lab apply -f "$FIX/vs-90-10.yaml" >/dev/null
}

@test "the token is read again for each request: a rotated token keeps the watch" {
	new=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf '%s\n' "$new" >"/run/bpfmesh/lab/$LAB/kube-token.tmp"
	mv "/run/bpfmesh/lab/$LAB/kube-token.tmp" "/run/bpfmesh/lab/$LAB/kube-token"
	ctl requests/clear >/dev/null
	ctl disconnect >/dev/null
	sleep 1.5
	run curl -s "$API/_test/requests"
	/usr/bin/python3 -c '
import json, sys
reqs = json.loads(sys.argv[1])
assert reqs, "no request after the disconnect"
bad = [r for r in reqs if r["code"] == 401]
assert not bad, bad' "$output"
	run bm status --node "$LAB-node1"
	[[ "$output" == *"api: connected"* ]]
}

# api_tls NAME [ARGS...]: a second test API server over TLS for the standalone agents below,
# serving $WORK/objs; its port in $WORK/NAME.port
api_tls() {
	local name=$1
	shift
	mkdir -p "$WORK/objs"
	cp "$FIX/mesh.yaml" "$WORK/objs/"
	# a cluster's pods are what the API holds (Deployments are not read): one of web
	cat >"$WORK/objs/pod.yaml" <<Y
apiVersion: v1
kind: Pod
metadata: {name: web-v1-abc12, namespace: t, labels: {app: web, version: v1}}
spec: {nodeName: n1, containers: [{name: app, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.244.1.99, conditions: [{type: Ready, status: "True"}]}
Y
	setsid /usr/bin/python3 "$API_PY" --dir "$WORK/objs" --listen 127.0.0.1:0 \
		--port-file "$WORK/$name.port" --tls-cert "$WORK/srv.crt" --tls-key "$WORK/srv.key" \
		"$@" >"$WORK/$name.log" 2>&1 </dev/null &
	echo $! >"$WORK/$name.pid"
	for _ in $(seq 50); do [ -s "$WORK/$name.port" ] && break; sleep 0.1; done
	[ -s "$WORK/$name.port" ]
}

certs() {
	[ -f "$WORK/srv.crt" ] && return 0
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kube-apiserver \
		-addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/srv.key" -out "$WORK/srv.crt" 2>/dev/null
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=client-ca \
		-keyout "$WORK/cca.key" -out "$WORK/cca.crt" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=system:node:bpfmesh" \
		-keyout "$WORK/cl.key" -out "$WORK/cl.csr" 2>/dev/null
	openssl x509 -req -in "$WORK/cl.csr" -CA "$WORK/cca.crt" -CAkey "$WORK/cca.key" \
		-CAcreateserial -days 1 -out "$WORK/cl.crt" 2>/dev/null
}

# standalone NODE ARGS...: an agent outside the lab on its own cgroup; waits for its config
standalone() {
	local node=$1 cg
	shift
	cg="$(cg2)/bpfmesh-kube-test-$node"
	mkdir -p "$cg" "$(suite_bpffs "$LAB")"
	setsid "$BM" agent --cgroup "$cg" --node "$node" --bpffs "$(suite_bpffs "$LAB")" \
		--metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 "$@" \
		>"$WORK/$node.log" 2>&1 </dev/null &
	echo $! >"$WORK/$node.pid"
	for _ in $(seq 100); do
		bm status --node "$node" 2>/dev/null | grep -q "config:   loaded" && return 0
		sleep 0.1
	done
	cat "$WORK/$node.log"
	return 1
}

standalone_stop() {
	kill "$(cat "$WORK/$1.pid")" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$(cat "$WORK/$1.pid")" 2>/dev/null || break; sleep 0.1; done
	rm -f "$WORK/$1.pid"
	bm uninstall --node "$1" >/dev/null
	rmdir "$(cg2)/bpfmesh-kube-test-$1"
	rm -rf "/run/bpfmesh/$1"
}

@test "--kube in a pod: KUBERNETES_SERVICE_HOST/PORT, the service account's token and CA, over TLS" {
	certs
	printf 'sa-token-1\n' >"$WORK/sa-token"
	api_tls ic --token-file "$WORK/sa-token"
	mkdir -p "$WORK/sa"
	cp "$WORK/srv.crt" "$WORK/sa/ca.crt"
	cp "$WORK/sa-token" "$WORK/sa/token"
	echo bpfmesh-system >"$WORK/sa/namespace"
	KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$(cat "$WORK/ic.port") \
		BPFMESH_SERVICEACCOUNT_DIR="$WORK/sa" standalone kube-ic --kube
	run bm status --node kube-ic
	echo "$output"
	[[ "$output" == *"api: connected"* ]]
	[[ "$output" == *"3 service ports, "* ]]
	run bm services --node kube-ic
	[[ "$output" == *"10.244.1.99:8080"* ]]
	grep -q "kube: watching 22 kinds at in-cluster (https://127.0.0.1:" "$WORK/kube-ic.log"
	standalone_stop kube-ic
	# a wrong CA: the watch never connects, and says so
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=other -keyout "$WORK/o.key" \
		-out "$WORK/sa/ca.crt" 2>/dev/null
	KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$(cat "$WORK/ic.port") \
		BPFMESH_SERVICEACCOUNT_DIR="$WORK/sa" run standalone kube-ic --kube
	[ "$status" -ne 0 ]
	grep -q "disconnected since .*SSL" "/run/bpfmesh/kube-ic/api"
	standalone_stop kube-ic
	kill "$(cat "$WORK/ic.pid")"
	rm -f "$WORK/ic.pid"
}

@test "--kubeconfig with certificate-authority-data and a client certificate (client-*-data)" {
	certs
	api_tls cc --client-ca "$WORK/cca.crt"
	b64() { base64 -w0 "$1"; }
	cat >"$WORK/kubeconfig" <<Y
apiVersion: v1
kind: Config
current-context: ctx
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:$(cat "$WORK/cc.port")", certificate-authority-data: $(b64 "$WORK/srv.crt")}
users:
- name: u
  user: {client-certificate-data: $(b64 "$WORK/cl.crt"), client-key-data: $(b64 "$WORK/cl.key")}
contexts:
- name: other
  context: {cluster: nowhere, user: u}
- name: ctx
  context: {cluster: c, user: u}
Y
	standalone kube-cc --kubeconfig "$WORK/kubeconfig"
	run bm status --node kube-cc
	echo "$output"
	[[ "$output" == *"api: connected"* ]]
	grep -q "user=system:node:bpfmesh" "$WORK/cc.log" ||
		curl -sk "https://127.0.0.1:$(cat "$WORK/cc.port")/_test/requests" | grep -q '"user": *"system:node:bpfmesh"'
	standalone_stop kube-cc
	kill "$(cat "$WORK/cc.pid")"
	rm -f "$WORK/cc.pid"
	# a kubeconfig that names no usable context: a clear error, exit 2
	sed -i 's/current-context: ctx/current-context: missing/' "$WORK/kubeconfig"
	run bm agent --kubeconfig "$WORK/kubeconfig" --cgroup /nonexistent --node x
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *"$WORK/kubeconfig: current-context: names no context in contexts"* ]]
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
