#!/bin/bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# kube_scale.sh BM WORK CGROUP NODE NSVC NPOD: the agent on a cluster's worth of objects, read
# from the API server (tests/kubeapi/fake-apiserver.py) and, as the baseline of the same run,
# from files: NSVC Services and NPOD Pods (Ready, owned by ReplicaSets, as a cluster lists
# them). Prints "files|kube first_ms N rss_kb N": milliseconds from the agent's start to its
# first config in force ("applied config" in its log) and the agent's peak RSS (VmHWM) then.
# Called by scripts/bench.sh (section 4); cleans up what it starts.
set -u
BM=$1 WORK=$2 CG=$3 NODE=$4 NSVC=$5 NPOD=$6
API_PY="$(cd "$(dirname "$0")/../.." && pwd)/tests/kubeapi/fake-apiserver.py"
mkdir -p "$WORK/objs" "$CG"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.3
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for n in "$NODE-files" "$NODE-kube"; do "$BM" uninstall --node "$n" >/dev/null 2>&1 || true; done
	rmdir "$CG" 2>/dev/null || true
}
trap cleanup EXIT

awk -v n="$NSVC" -v p="$NPOD" 'BEGIN {
	print "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: s\n  labels: {istio-injection: enabled}"
	for (i = 0; i < n; i++)
		printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc%d, namespace: s}\nspec:\n  clusterIP: 10.%d.%d.%d\n  selector: {app: a%d}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n", i, 100 + int(i / 65536), int(i / 256) % 256, i % 256, i
	for (i = 0; i < p; i++)
		printf "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a%d-5d8f7c-p%d\n  namespace: s\n  uid: 00000000-0000-4000-8000-%012d\n  labels: {app: a%d, version: v1, pod-template-hash: 5d8f7c}\n  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: a%d-5d8f7c, uid: x, controller: true}]\nspec:\n  nodeName: n%d\n  serviceAccountName: sa%d\n  containers: [{name: app, image: app:v1, ports: [{containerPort: 8080, name: http}], env: [{name: A, value: b}]}]\nstatus:\n  phase: Running\n  hostIP: 10.250.%d.%d\n  podIP: 10.%d.%d.%d\n  podIPs: [{ip: 10.%d.%d.%d}]\n  conditions: [{type: Initialized, status: \"True\"}, {type: Ready, status: \"True\"}, {type: ContainersReady, status: \"True\"}, {type: PodScheduled, status: \"True\"}]\n", \
			i % n, i, i, i % n, i % n, i % 100, i % n, int(i / 256) % 256, i % 100, \
			200 + int(i / 65536), int(i / 256) % 256, i % 256, 200 + int(i / 65536), int(i / 256) % 256, i % 256 }' >"$WORK/objs/cluster.yaml"

# run_agent NAME ARGS...: "first_ms N rss_kb N" of an agent on the objects
run_agent() {
	local name=$1 log="$WORK/agent-$1.log" t0 pid ms rss
	shift
	t0=$(date +%s%3N)
	"$BM" agent --cgroup "$CG" --node "$NODE-$name" --metrics-addr 127.0.0.1:0 \
		--health-addr 127.0.0.1:0 "$@" >"$log" 2>&1 &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 1200); do grep -q "applied config" "$log" && break; sleep 0.05; done
	ms=$(($(date +%s%3N) - t0))
	grep -q "applied config" "$log" || ms=-1
	rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	"$BM" uninstall --node "$NODE-$name" >/dev/null 2>&1
	echo "first_ms $ms rss_kb ${rss:-0} applied $(sed -n 's/.*applied config: //p' "$log" | head -1)"
}

echo "files $(run_agent files --config-dir "$WORK/objs")"
/usr/bin/python3 "$API_PY" --dir "$WORK/objs" --listen 127.0.0.1:0 --port-file "$WORK/api.port" \
	>"$WORK/api.log" 2>&1 &
pids+=("$!")
for _ in $(seq 600); do [ -s "$WORK/api.port" ] && break; sleep 0.1; done
cat >"$WORK/kubeconfig" <<Y
apiVersion: v1
kind: Config
current-context: c
clusters: [{name: c, cluster: {server: "http://127.0.0.1:$(cat "$WORK/api.port")"}}]
users: [{name: u, user: {}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
Y
# the server has read every object before the clock starts (its own parse is not ours)
curl -s -X POST "http://127.0.0.1:$(cat "$WORK/api.port")/_test/rescan" >/dev/null
echo "kube $(run_agent kube --kubeconfig "$WORK/kubeconfig")"
