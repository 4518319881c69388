#!/usr/bin/env bats
# The agent on its own, as on a plain Linux VM: no lab. A bpffs directory the agent has to
# mount itself, a config directory written by hand, backends that are plain python HTTP
# servers in a network namespace, and a client process placed directly in the agent's cgroup
# (no pod cgroup: such processes are mesh clients by default).
load helpers

NODE=itest-agent
NS=bmt-agent
PY=/usr/bin/python3

setup_file() {
	export CGDIR BPFFS CFG WORK MPORT KSCOPE
	CGDIR="$(cg2)/bpfmesh-itest"
	WORK=$(mktemp -d /tmp/bpfmesh-itest.XXXXXX)
	BPFFS="$WORK/bpffs"
	CFG="$WORK/config"
	mkdir -p "$CGDIR" "$BPFFS" "$CFG" "$WORK/a" "$WORK/b"
	# a pod as the kubelet (systemd driver) lays it out, with a container scope below it
	KSCOPE="$CGDIR/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_abcd_5678.slice/cri-containerd-c0ffee.scope"
	mkdir -p "$KSCOPE"
	MPORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	echo backend-a > "$WORK/a/who"
	echo backend-b > "$WORK/b/who"
	ip netns add $NS
	ip -n $NS link set lo up
	ip -n $NS addr add 10.244.200.2/32 dev lo
	ip -n $NS addr add 10.244.200.3/32 dev lo
	for x in a:2 b:3; do
		nsenter --net=/run/netns/$NS $PY -m http.server --bind 10.244.200.${x#*:} \
			--directory "$WORK/${x%:*}" 8080 >/dev/null 2>&1 &
		echo $! >> "$WORK/pids"
	done
	cat > "$CFG/mesh.yaml" <<Y
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: vm}
spec:
  clusterIP: 10.96.99.1
  selector: {app: svc}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: vm, labels: {app: svc, version: v1}}
spec: {containers: [{name: c}]}
status: {podIP: 10.244.200.2}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: vm, labels: {app: svc, version: v2}}
spec: {containers: [{name: c}]}
status: {podIP: 10.244.200.3}
---
apiVersion: v1
kind: Pod
metadata: {name: kpod-7d9f-x2x4q, namespace: vm, uid: 1234-abcd-5678, labels: {app: kclient}}
spec: {containers: [{name: c}]}
status: {podIP: 10.244.200.9}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: vm}
spec:
  host: svc.vm.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
Y
	vs 100 0 > "$CFG/vs.yaml"
	"$BM" agent --config-dir "$CFG" --cgroup "$CGDIR" --node $NODE --bpffs "$BPFFS" \
		--metrics-addr "127.0.0.1:$MPORT" --health-addr 127.0.0.1:0 > "$WORK/agent.log" 2>&1 &
	echo $! >> "$WORK/pids"
	for _ in $(seq 100); do "$BM" status --node $NODE >/dev/null 2>&1 && break; sleep 0.1; done
}

teardown_file() {
	"$BM" uninstall --node $NODE >/dev/null 2>&1 || true
	[ -f "$WORK/pids" ] && xargs kill < "$WORK/pids" 2>/dev/null
	sleep 0.2
	ip netns del $NS 2>/dev/null || true
	umount "$BPFFS" 2>/dev/null || true
	# cgroups deepest first
	find "$CGDIR" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	rm -rf "$WORK"
}

vs() {
	cat <<Y
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc, namespace: vm}
spec:
  hosts: [svc.vm.svc.cluster.local]
  http:
  - route:
    - {destination: {host: svc.vm.svc.cluster.local, subset: v1}, weight: $1}
    - {destination: {host: svc.vm.svc.cluster.local, subset: v2}, weight: $2}
Y
}

# N fetches from a process in the agent's cgroup itself, inside the backends' netns
fetch() {
	bash -c "echo \$\$ > '$CGDIR/cgroup.procs'; exec nsenter --net=/run/netns/$NS \
		curl -s --max-time 5 'http://10.96.99.1/who?[1-$1]'"
}

@test "the agent mounts its bpffs, pins there, and status finds it without --bpffs" {
	cat "$WORK/agent.log"
	mountpoint -q "$BPFFS"
	[ -e "$BPFFS/bpfmesh/$NODE/bm_svc" ]
	[ -e "$BPFFS/bpfmesh/$NODE/link_bm_connect4" ]
	run "$BM" status --node $NODE
	echo "$output"
	[ "$status" -eq 0 ]
	run "$BM" services --node $NODE
	[[ "$output" == *"10.96.99.1:80/TCP vm/svc"* ]]
}

@test "a process directly in the agent's cgroup is a mesh client: the route applies" {
	run fetch 40
	echo "$output" | sort | uniq -c
	[ "$(grep -c backend-a <<<"$output")" -eq 40 ]
}

@test "a config file written by hand is in force within a second" {
	vs 0 100 > "$CFG/vs.yaml.tmp" && mv "$CFG/vs.yaml.tmp" "$CFG/vs.yaml"
	sleep 1
	run fetch 40
	[ "$(grep -c backend-b <<<"$output")" -eq 40 ]
}

@test "a client in a kubelet pod cgroup (container scope) is attributed to its Pod by uid" {
	bash -c "echo \$\$ > '$KSCOPE/cgroup.procs'; exec nsenter --net=/run/netns/$NS \
		curl -s -o /dev/null --max-time 5 'http://10.96.99.1/who?[1-7]'"
	sleep 0.2
	run curl -s "http://127.0.0.1:$MPORT/metrics"
	series=$(grep '^istio_tcp_connections_opened_total{' <<<"$output" |
		grep 'source_workload="kpod-7d9f-x2x4q"' || true)
	echo "$series"
	# not in a mesh namespace: spread over both backends, 7 connections in all
	[ "$(awk '{ s += $NF } END { print s + 0 }' <<<"$series")" -eq 7 ]
	[[ "$series" == *'source_app="kclient"'* ]]
	[[ "$series" == *'source_workload_namespace="vm"'* ]]
}

@test "uninstall removes the pins, stops the agent, and status then fails" {
	run "$BM" uninstall --node $NODE
	[ "$status" -eq 0 ]
	[ ! -e "$BPFFS/bpfmesh" ]
	[ ! -e /run/bpfmesh/$NODE ]
	run "$BM" status --node $NODE
	[ "$status" -ne 0 ]
	run pgrep -f "agent .*--node $NODE"
	[ "$status" -ne 0 ]
}
