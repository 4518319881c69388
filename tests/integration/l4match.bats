#!/usr/bin/env bats
# Route matches the kernel decides at connect(), end to end on two nodes: Istio's TCP traffic
# shifting task with match: port (two service ports of tcp-echo to different subsets, then the
# task's 80/20 shift), sourceLabels (clients that differ only by their labels go to different
# subsets, on either node: each node's kernel knows its own pods by their cgroups),
# sourceNamespace and destinationSubnets, first match wins, an http route matched by
# sourceLabels that needs no HTTP path, and what `services` shows of it.
load helpers

LAB=il4
M="$FIX/l4match"

setup_file() {
	export LAB
	lab_teardown "$LAB"
	lab_up "$LAB" --mtls off -f "$M/base.yaml" -f "$M/port.yaml" -f "$M/http.yaml" >&3 2>&3
}

teardown() {
	lab_logs_if_failed
}

teardown_file() {
	lab_teardown "$LAB"
	rm -f /tmp/bpfmesh-$LAB-*.yaml
}

# svc_block NODE ADDR:PORT: that service port's lines of `bpfmesh services` on NODE
svc_block() {
	bm services --node "$LAB-$1" | awk -v v="$2/TCP" '
		$1 == v { on = 1; print; next } /^[0-9[]/ { on = 0 } on'
}

# conns POD NS URL N: "V1 V2 FAILED" over N connections of their own (helpers: split_count)
conns() { split_count "$2" "$1" "$3" "$4"; }

# stat PHRASE: a datapath counter of node1 (bpfmesh status), 0 when not shown
stat() {
	bm status --node "$LAB-node1" | awk -v p="$1" 'index($0, p) { n = $NF } END { print n + 0 }'
}

@test "validate: tcp route matches are enforced (no notice); sourceSubnet and gateways are said" {
	local f
	for f in port port-shift source first http; do
		run bm validate "$M/$f.yaml"
		echo "$f: $output"
		[ "$status" -eq 0 ]
		[ -z "$output" ]
	done
	cat > "/tmp/bpfmesh-$LAB-subnet.yaml" <<-'Y'
	apiVersion: networking.istio.io/v1
	kind: VirtualService
	metadata: {name: x, namespace: l4}
	spec:
	  hosts: [tcp-echo]
	  tcp:
	  - match: [{sourceSubnet: 10.244.0.0/16, gateways: [my-gateway]}]
	    route: [{destination: {host: tcp-echo}}]
	Y
	run bm validate "/tmp/bpfmesh-$LAB-subnet.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"spec.tcp[0].match[0].sourceSubnet: warning: not enforced: a pod can choose its source address"* ]]
	[[ "$output" == *"spec.tcp[0].match[0].gateways: warning: not enforced"* ]]
}

@test "services: match: port gives each port of tcp-echo one route for every client" {
	run svc_block node1 10.96.40.10:9000
	echo "$output"
	[[ "$output" == *"path kernel"* ]]
	[[ "$output" == *"VirtualService l4/tcp-echo spec.tcp[0]; not in force: spec.tcp[1]"* ]]
	[[ "$output" == *"route [id "*"] (mesh clients, per connection): v1 weight 1 (100.0%)"* ]]
	run svc_block node1 10.96.40.10:9001
	echo "$output"
	[[ "$output" == *"VirtualService l4/tcp-echo spec.tcp[1]; not in force: spec.tcp[0]"* ]]
	[[ "$output" == *"v2 weight 1 (100.0%)"* ]]
}

@test "match: port: port 9000 to v1 and port 9001 to v2, from clients on both nodes" {
	local p v1 v2 fail
	for p in sleep-a-0 sleep-b-0 sleep-b-far-0; do
		read -r v1 v2 fail < <(conns l4 "$p" http://tcp-echo:9000/get 40)
		echo "$p 9000: v1=$v1 v2=$v2 fail=$fail"
		[ "$v1" -eq 40 ]
		read -r v1 v2 fail < <(conns l4 "$p" http://tcp-echo:9001/get 40)
		echo "$p 9001: v1=$v1 v2=$v2 fail=$fail"
		[ "$v2" -eq 40 ]
	done
}

@test "the task's shift: 20% of port 9000 to v2 over 1000 connections (5 sigma); 9001 stays" {
	local v1 v2 fail
	run lab apply -f "$M/port-shift.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" != *"not enforced"* ]]
	read -r v1 v2 fail < <(conns l4 sleep-a-0 http://tcp-echo:9000/get 1000)
	echo "9000: v1=$v1 v2=$v2 fail=$fail"
	[ "$fail" -eq 0 ]
	within_5sigma "$v2" 1000 20 100
	read -r v1 v2 fail < <(conns l4 sleep-a-0 http://tcp-echo:9001/get 40)
	[ "$v2" -eq 40 ]
}

@test "sourceLabels: version b to v2 on either node, everyone else v1, outside the mesh every endpoint" {
	local v1 v2 fail
	run lab apply -f "$M/source.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	read -r v1 v2 fail < <(conns l4 sleep-b-0 http://tcp-echo:9000/get 100)
	echo "sleep-b: v1=$v1 v2=$v2 fail=$fail"
	[ "$v2" -eq 100 ]
	read -r v1 v2 fail < <(conns l4 sleep-b-far-0 http://tcp-echo:9000/get 100)
	echo "sleep-b-far (node2): v1=$v1 v2=$v2 fail=$fail"
	[ "$v2" -eq 100 ]
	read -r v1 v2 fail < <(conns l4 sleep-a-0 http://tcp-echo:9000/get 100)
	echo "sleep-a: v1=$v1 v2=$v2 fail=$fail"
	[ "$v1" -eq 100 ]
	read -r v1 v2 fail < <(conns other sleep-0 http://tcp-echo.l4:9000/get 100)
	echo "other/sleep (version a): v1=$v1 v2=$v2 fail=$fail"
	[ "$v1" -eq 100 ]
	# a client outside the mesh gets no VirtualService: an even spread over the endpoints
	read -r v1 v2 fail < <(conns plain outsider-0 http://tcp-echo.l4:9000/get 400)
	echo "outsider: v1=$v1 v2=$v2 fail=$fail"
	[ "$fail" -eq 0 ]
	within_5sigma "$v2" 400 1 2
}

@test "services shows the route list in order, and on each node the local pods it holds for" {
	run svc_block node1 10.96.40.10:9000
	echo "$output"
	[[ "$output" == *"VirtualService l4/tcp-echo: first match of spec.tcp[0],spec.tcp[1]"* ]]
	[[ "$output" == *"routes (mesh clients, per connection; first match wins):"* ]]
	[[ "$output" == *"1. route [id "*"] spec.tcp[0] (sourceLabels {app: sleep, version: b}): v2 weight 1 (100.0%)"* ]]
	[[ "$output" == *"local pods it holds for: l4/sleep-b-0"$'\n'* ]]
	[[ "$output" == *"2. route [id "*"] spec.tcp[1] (every mesh client): v1 weight 1 (100.0%)"* ]]
	[[ "$output" != *"no route holds"* ]]
	run svc_block node2 10.96.40.10:9000
	echo "$output"
	[[ "$output" == *"local pods it holds for: l4/sleep-b-far-0"$'\n'* ]]
	run bm services --node "$LAB-node1" -o json
	[ "$status" -eq 0 ]
	run python3 -c 'import json, sys
for s in json.load(sys.stdin):
    if s["address"] == "10.96.40.10" and s["port"] == 9000:
        r = s["routes"]
        print(len(r), r[0]["localPods"], r[0]["everyMeshClient"], r[1]["everyMeshClient"])' \
		<<<"$output"
	echo "$output"
	[ "$output" = "2 ['l4/sleep-b-0'] False True" ]
}

@test "first match wins by port, destinationSubnets, sourceLabels and sourceNamespace together" {
	local p v1 v2 fail before
	run lab apply -f "$M/first.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	# port 9000: spec.tcp[0] holds for every sleep client
	for p in "l4 sleep-a-0" "l4 sleep-b-0" "other sleep-0"; do
		# shellcheck disable=SC2086 # "namespace pod"
		read -r v1 v2 fail < <(conns $p http://tcp-echo.l4:9000/get 40)
		echo "$p 9000: v1=$v1 v2=$v2 fail=$fail"
		[ "$v2" -eq 40 ]
	done
	# port 9001: spec.tcp[1] before spec.tcp[2]
	read -r v1 v2 fail < <(conns l4 sleep-a-0 http://tcp-echo:9001/get 40)
	echo "sleep-a 9001: v1=$v1 v2=$v2 fail=$fail"
	[ "$v1" -eq 40 ]
	read -r v1 v2 fail < <(conns other sleep-0 http://tcp-echo.l4:9001/get 40)
	echo "other/sleep 9001: v1=$v1 v2=$v2 fail=$fail"
	[ "$v1" -eq 40 ]
	# sleep-b on 9001: nothing holds (not 192.168.0.0/16 either): every endpoint, counted
	before=$(stat "no route matched")
	read -r v1 v2 fail < <(conns l4 sleep-b-0 http://tcp-echo:9001/get 200)
	echo "sleep-b 9001: v1=$v1 v2=$v2 fail=$fail"
	[ "$fail" -eq 0 ]
	within_5sigma "$v2" 200 1 2
	[ "$(stat "no route matched")" -ge $((before + 200)) ]
	run svc_block node1 10.96.40.10:9001
	echo "$output"
	[[ "$output" == *"spec.tcp[1] (sourceLabels {version: a} and sourceNamespace l4 or sourceNamespace other)"* ]]
	[[ "$output" == *"3. no route holds: every endpoint"* ]]
}

@test "an http route matched by sourceLabels only needs no HTTP path: the kernel decides it" {
	local v1 v2 fail
	run svc_block node1 10.96.40.20:8080
	echo "$output"
	[[ "$output" == *"path kernel"$'\n'* ]]
	[[ "$output" == *"spec.http[0] (sourceLabels {version: b}): v2 weight 1"* ]]
	read -r v1 v2 fail < <(conns l4 sleep-b-0 http://web:8080/get 40)
	[ "$v2" -eq 40 ]
	read -r v1 v2 fail < <(conns l4 sleep-a-0 http://web:8080/get 40)
	[ "$v1" -eq 40 ]
	run bm analyze -f "$M/base.yaml" -f "$M/http.yaml"
	echo "$output"
	[[ "$output" != *"BM0011"* ]]
}

@test "after changes only the lists in force are left in the kernel (quarantine over)" {
	run lab apply -f "$M/source.yaml"
	[ "$status" -eq 0 ]
	sleep 1
	# tcp-echo:9000 and web:8080 have a list; tcp-echo:9001 has none (no route holds there)
	run bpftool map dump pinned "$(pins "$LAB" node1)/bm_rlist"
	echo "$output"
	[ "$(grep -c '"key":' <<<"$output")" -eq 2 ]
	run bpftool map dump pinned "$(pins "$LAB" node1)/bm_rpod"
	echo "$output"
	[ "$(grep -c '"key":' <<<"$output")" -eq 2 ] # sleep-b-0 for each list
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
