#!/usr/bin/env bats
# Configuration as Kubernetes and Istio take it, end to end in a lab: bare Pods are pods, objects
# are applied one at a time (a bad one blocks no one else), a reference to what does not exist
# fails only that route at run time, and nothing that is not enforced goes unsaid.
load helpers

LAB=icfg
CFG="$FIX/config"

setup_file() {
	export LAB
	lab_teardown "$LAB"
	lab_up "$LAB" -f "$CFG/base.yaml" >&3 2>&3
}

teardown_file() {
	lab_teardown "$LAB"
}

# the datapath counter with this phrase on node1, from bpfmesh status
counter() {
	bm status --node "$LAB-node1" | awk -v p="$1" 'index($0, p) { print $NF; exit }'
}

@test "a bare kind: Pod (kubectl run, a ReplicaSet's pod) becomes one pod of the lab" {
	run lab status
	echo "$output"
	[ "$status" -eq 0 ]
	for p in c/web-a c/web-b c/client; do
		[[ "$output" == *"pod $p node node1 ip 10.244."*"running"* ]]
	done
	# one object, one file: the Pod's status is written into its own file, no duplicate
	run ls "/run/bpfmesh/lab/$LAB/config"
	echo "$output"
	[ "$(grep -c '^Pod\.c\.web-a\.' <<<"$output")" -eq 1 ]
	run pod_curl client c http://web:8080/get
	echo "$output"
	[[ "$output" == *'"VERSION": "v'* ]]
}

@test "lab apply -f: the valid object is applied, the invalid one reported, exit 1" {
	run lab apply -f "$CFG/mixed.yaml"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"mixed.yaml:19: VirtualService/c/broken: spec.http[0].route[0].weight: must not be negative"* ]]
	[[ "$output" == *"1 object(s) applied"* ]]
	[[ "$output" == *"1 object(s) rejected"* ]]
	[ -f "/run/bpfmesh/lab/$LAB/config/VirtualService.c.web.yaml" ]
	[ ! -e "/run/bpfmesh/lab/$LAB/config/VirtualService.c.broken.yaml" ]
	# the valid one is in force: every connection to v2
	read -r v1 v2 fail < <(split_count client c http://web:8080/get 50)
	echo "v1=$v1 v2=$v2 fail=$fail"
	[ "$v2" -eq 50 ]
}

@test "a subset no DestinationRule defines: accepted, reported as IST0101, only its share refused and counted" {
	before=$(counter "refused: no backend")
	run lab apply -f "$CFG/unknown-subset.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *'Error [IST0101] (VirtualService c/web '*'unknown-subset.yaml'*') Referenced host+subset in destinationrule not found: "web+v9"'* ]]
	read -r v1 v2 fail < <(split_count client c http://web:8080/get 200)
	echo "v1=$v1 v2=$v2 fail=$fail"
	[ "$v2" -eq 0 ]
	[ "$((v1 + fail))" -eq 200 ]
	within_5sigma "$v1" 200 1 2
	after=$(counter "refused: no backend")
	echo "no_backend $before -> $after"
	[ "$((after - before))" -eq "$fail" ]
	run bm analyze "/run/bpfmesh/lab/$LAB/config"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"[IST0101]"*'"web+v9"'* ]]
}

@test "a route with match is enforced per request; what is not enforced is reported when applied (also on success)" {
	run lab apply -f "$CFG/match.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"VirtualService/c/web: spec.exportTo: warning: not yet enforced"* ]]
	[[ "$output" != *"spec.http[0].match"* ]]
	run bm services --node "$LAB-node1"
	echo "$output"
	[[ "$output" == *"path l7 (match in spec.http[0])"* ]]
	[[ "$output" == *"VirtualService c/web: per request, first match of spec.http[0..1]"* ]]
	# the header picks v2, its absence v1, on each request
	run pod_curl client c -H 'end-user: jason' http://web:8080/get
	[[ "$output" == *'"VERSION": "v2"'* ]]
	run pod_curl client c http://web:8080/get
	[[ "$output" == *'"VERSION": "v1"'* ]]
	grep -q "WARN agent: .*VirtualService/c/web: spec.exportTo: not yet enforced" \
		"/run/bpfmesh/lab/$LAB/agent-node1.log"
	run grep "VirtualService/c/web: spec.http\[0\].match" "/run/bpfmesh/lab/$LAB/agent-node1.log"
	[ "$status" -eq 1 ]
}

@test "an invalid object dropped into the config dir is in the agent's log, status and metrics" {
	cp "$FIX/bad-weight.yaml" "/run/bpfmesh/lab/$LAB/config/zz-bad.yaml"
	sleep 1.2
	run bm status --node "$LAB-node1"
	echo "$output"
	[[ "$output" == *"rejected objects:"*"zz-bad.yaml:12: VirtualService/t/web:"*"not applied (no earlier version)"* ]]
	grep -q "config: rejected .*zz-bad.yaml:12: VirtualService/t/web" "/run/bpfmesh/lab/$LAB/agent-node1.log"
	run lab_metrics node1
	[[ "$output" == *"bpfmesh_config_rejected_objects 1"* ]]
	rm -f "/run/bpfmesh/lab/$LAB/config/zz-bad.yaml"
	sleep 1.2
	run lab_metrics node1
	[[ "$output" == *"bpfmesh_config_rejected_objects 0"* ]]
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
