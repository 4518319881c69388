#!/usr/bin/env bats
# The gateway's XDP early drop (bpf/xdp_gw.bpf.c): on node1's interface, before any socket,
# packets to the gateway's ports from a source a DENY AuthorizationPolicy on the gateway
# names by ipBlocks are dropped and counted (exactly, and only those), an ALLOW policy of
# source blocks drops everyone else, and SYNs beyond --ingress-syn-rate per source are
# dropped. Clients are pods on node2, so their packets arrive on node1's interface.
load helpers

LAB=ixdp
GWF="$FIX/gateway"
GW=10.244.255.1

setup_file() {
	export LAB
	lab_teardown "$LAB"
	lab_up "$LAB" --ingress-syn-rate 20 -f "$GWF/base.yaml" -f "$GWF/routes.yaml" >&3 2>&3
}

teardown() { lab_logs_if_failed; }

teardown_file() { lab_teardown "$LAB"; }

xdp_count() { # NODE METRIC-LINE-PREFIX: its value on the node's /metrics
	lab_metrics "$1" | awk -v m="$2" 'index($0, m " ") == 1 { print $NF }'
}

pod_ip() { lab status -o json | /usr/bin/python3 -c '
import json, sys
for p in json.load(sys.stdin)["pods"]:
    if p["name"] == sys.argv[1]:
        print(p["ip"])' "$1"; }

# from pod $1 (namespace gw): $2 connects to the gateway's port 80 at once, $3 s to finish
syns() { lab exec -n gw "$1" -- /usr/bin/python3 "$BATS_TEST_DIRNAME/gw_syn.py" "$GW" 80 "$2" "$3"; }

# a request through node1's gateway from pod $1
via_gw() {
	lab exec -n gw "$1" -- curl -s --max-time 5 -o /dev/null -w '%{http_code}' \
		-H 'Host: web.example.com' "http://$GW/get"
}

policy() { # the gateway's DENY (or ALLOW) policy of source blocks: policy ACTION CIDR...
	local action=$1 b
	shift
	{
		printf 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n'
		printf 'metadata: {name: xdp-blocks, namespace: istio-system}\nspec:\n'
		printf '  selector: {matchLabels: {istio: ingressgateway}}\n  action: %s\n' "$action"
		printf '  rules:\n  - from:\n    - source:\n        ipBlocks:\n'
		for b in "$@"; do printf '        - %s\n' "$b"; done
	} >"$BATS_TEST_TMPDIR/policy.yaml"
	lab apply -f "$BATS_TEST_TMPDIR/policy.yaml" >/dev/null
}

@test "the agent attaches the early drop to the interface of the node's address" {
	run grep "xdp: gateway early drop on" "/run/bpfmesh/lab/$LAB/agent-node1.log"
	echo "$output"
	[[ "$output" == *"(native mode), SYN rate limited per source"* ]]
	run via_gw web-v2-0
	[ "$output" = 200 ]
	[ "$(xdp_count node1 bpfmesh_xdp_passed_total)" -gt 0 ]
}

@test "DENY by ipBlocks: exactly the denied source's SYNs are dropped at XDP, none reach the gateway; others pass" {
	local bad good d0 c0 p0
	bad=$(pod_ip web-v1-0)
	good=$(pod_ip web-v2-0)
	policy DENY "$bad/32"
	d0=$(xdp_count node1 'bpfmesh_xdp_dropped_total{reason="policy"}')
	c0=$(xdp_count node1 bpfmesh_http_connections_total)
	run syns web-v1-0 5 0.5
	echo "$output"
	[ "$output" = "established 0" ]
	# five SYNs, five drops: nothing else counted, and the gateway accepted none of them
	[ "$(xdp_count node1 'bpfmesh_xdp_dropped_total{reason="policy"}')" -eq $((d0 + 5)) ]
	[ "$(xdp_count node1 bpfmesh_http_connections_total)" -eq "$c0" ]
	p0=$(xdp_count node1 bpfmesh_xdp_passed_total)
	run via_gw web-v2-0 # $good
	[ "$output" = 200 ]
	[ "$(xdp_count node1 'bpfmesh_xdp_dropped_total{reason="policy"}')" -eq $((d0 + 5)) ]
	[ "$(xdp_count node1 bpfmesh_xdp_passed_total)" -gt "$p0" ]
	echo "good $good"
	lab delete -f "$BATS_TEST_TMPDIR/policy.yaml" >/dev/null
	run via_gw web-v1-0
	[ "$output" = 200 ] # the policy gone, so is the drop
}

@test "ALLOW of source blocks only: everyone else is dropped at XDP" {
	local good d0
	good=$(pod_ip web-v2-0)
	policy ALLOW "$good/32"
	d0=$(xdp_count node1 'bpfmesh_xdp_dropped_total{reason="policy"}')
	run via_gw web-v2-0
	[ "$output" = 200 ]
	run syns web-v1-0 3 0.5
	[ "$output" = "established 0" ]
	[ "$(xdp_count node1 'bpfmesh_xdp_dropped_total{reason="policy"}')" -eq $((d0 + 3)) ]
	lab delete -f "$BATS_TEST_TMPDIR/policy.yaml" >/dev/null
}

@test "--ingress-syn-rate 20: of 60 SYNs at once from one source, about 20 pass; each dropped one is counted" {
	local s0 est
	sleep 1.1 # (a full bucket)
	s0=$(xdp_count node1 'bpfmesh_xdp_dropped_total{reason="syn_rate"}')
	run syns web-v2-0 60 0.6
	echo "$output"
	est=${output#established }
	[ "$est" -ge 20 ] && [ "$est" -le 25 ] # the burst, and what 0.6 s refills at most... of
	# the SYNs sent within it (they leave in a few ms)
	[ "$(xdp_count node1 'bpfmesh_xdp_dropped_total{reason="syn_rate"}')" -eq $((s0 + 60 - est)) ]
}

@test "lab down leaves nothing behind, the XDP program included" {
	lab_down_clean "$LAB"
}
