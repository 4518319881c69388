#!/usr/bin/env bats
# Several nodes on one machine: one agent per node (distinct names, pins, cgroups), pods on
# both, traffic across the fabric between them; UDP through connect and sendmsg.
load helpers

LAB=ind

setup_file() {
	export LAB
	lab_teardown "$LAB"
	lab_up "$LAB" --mtls off -f "$FIX/two-nodes.yaml" -f "$FIX/two-nodes-v2.yaml" >&3 2>&3
}

teardown_file() {
	lab_teardown "$LAB"
}

@test "two nodes, two agents, each ready with its own pins" {
	run lab status
	echo "$output"
	[[ "$output" == *"node node1 agent $LAB-node1"*"ready"* ]]
	[[ "$output" == *"node node2 agent $LAB-node2"*"ready"* ]]
	[[ "$output" == *"pod two/web-v1-0 node node1 ip 10.244.1."* ]]
	[[ "$output" == *"pod two/web-v2-0 node node2 ip 10.244.2."* ]]
	bm status --node "$LAB-node1"
	bm status --node "$LAB-node2"
	[ -e "$(pins "$LAB" node1)/bm_svc" ]
	[ -e "$(pins "$LAB" node2)/bm_svc" ]
}

@test "a client on node1 reaches v2 on node2 through its node's kernel path" {
	run pod_curl client1-0 two http://web/get
	echo "$output" | head -5
	[[ "$output" == *'"pod": "web-v2-0"'* ]]
	[[ "$output" == *'"node": "node2"'* ]]
	run pod_curl client2-0 two http://web.two.svc.cluster.local/get
	[[ "$output" == *'"pod": "web-v2-0"'* ]]
}

@test "node2's kernel counts plaintext connections from node1 as their destination, exactly" {
	# dsum2 METRIC: node2's METRIC for reporter destination, client1 (node1) -> web-v2 (node2)
	dsum2() {
		series_sum node2 "$1" 'reporter="destination"' 'source_workload="client1"' \
			'destination_workload="web-v2"' 'destination_service="web.two.svc.cluster.local"' \
			'connection_security_policy="none"'
	}
	o0=$(dsum2 istio_tcp_connections_opened_total)
	c0=$(dsum2 istio_tcp_connections_closed_total)
	r0=$(dsum2 istio_tcp_received_bytes_total)
	s0=$(dsum2 istio_tcp_sent_bytes_total)
	lab exec -n two client1-0 -- curl -s --max-time 30 -H 'Connection: close' -o /dev/null \
		-w 'SIZES %{size_request} %{size_header} %{size_download}\n' \
		"http://web/get?[1-20]" >"$BATS_TEST_TMPDIR/d.out"
	sent=$(awk '/^SIZES/ { s += $2 } END { print s }' "$BATS_TEST_TMPDIR/d.out")
	recv=$(awk '/^SIZES/ { r += $3 + $4 } END { print r }' "$BATS_TEST_TMPDIR/d.out")
	for _ in $(seq 20); do
		[ "$(($(dsum2 istio_tcp_connections_closed_total) - c0))" -ge 20 ] && break
		sleep 0.1
	done
	do=$(($(dsum2 istio_tcp_connections_opened_total) - o0))
	dc=$(($(dsum2 istio_tcp_connections_closed_total) - c0))
	dr=$(($(dsum2 istio_tcp_received_bytes_total) - r0))
	ds=$(($(dsum2 istio_tcp_sent_bytes_total) - s0))
	echo "client sent $sent received $recv; node2 destination: opened $do closed $dc received $dr sent $ds"
	[ "$do" -eq 20 ]
	[ "$dc" -eq 20 ]
	[ "$dr" -eq "$sent" ]
	[ "$ds" -eq "$recv" ]
	# node1 has no destination series of them (its kernel saw only the client's socket)
	run lab_metrics node1
	! grep -q 'reporter="destination".*destination_workload="web-v2"' <<<"$output" || false
}

@test "connected UDP (connect4) reaches the routed backend and replies come back" {
	run lab exec -n two client1-0 -- bash -c \
		'exec 3<>/dev/udp/10.96.20.10/9000; echo hi >&3; timeout 3 dd bs=2048 count=1 <&3 2>/dev/null'
	echo "$output"
	# bash reads a datagram socket a byte at a time, so read it whole with dd
	[[ "$output" == *"pod=web-v2-0"* ]]
}

@test "a UDP socket connected again to a plain address: getpeername shows that address, not the service's" {
	# the connection record lives in the socket; a re-connect that needs none must drop it
	run lab exec -n two client1-0 -- /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.96.20.10", 9000))
print("first", s.getpeername())
s.connect(("10.244.1.250", 9999))
print("again", s.getpeername())'
	echo "$output"
	[[ "$output" == *"first ('10.96.20.10', 9000)"* ]]
	[[ "$output" == *"again ('10.244.1.250', 9999)"* ]]
}

@test "unconnected UDP (sendmsg4/recvmsg4): reply appears to come from the service address" {
	command -v socat
	run lab exec -n two client1-0 -- bash -c \
		'echo hi | socat -d -d -t 2 - UDP-DATAGRAM:10.96.20.10:9000 2>&1'
	echo "$output"
	[[ "$output" == *"pod=web-v2-0"* ]]
	# socat logs the peer of each datagram it receives: the service, not the pod
	[[ "$output" != *"10.244.2."* ]]
}

@test "killing node1's agent leaves node2 untouched and node1's kernel path working" {
	pid=$(bm status --node "$LAB-node1" | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')
	pid2=$(bm status --node "$LAB-node2" | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')
	kill -9 "$pid"
	run pod_curl client1-0 two http://web/get # at once: the pinned kernel path serves it
	[[ "$output" == *'"pod": "web-v2-0"'* ]]
	# the lab's supervisor restarts it, like systemd, and says why it died
	for _ in $(seq 100); do
		new=$(bm status --node "$LAB-node1" 2>/dev/null | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')
		[ -n "$new" ] && [ "$new" != "$pid" ] && bm status --node "$LAB-node1" >/dev/null && break
		sleep 0.1
	done
	[ -n "$new" ] && [ "$new" != "$pid" ]
	grep -q "lab: agent killed by signal 9 (Killed); restarting in" "/run/bpfmesh/lab/$LAB/agent-node1.log"
	[ "$(bm status --node "$LAB-node2" | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')" = "$pid2" ]
	run pod_curl client1-0 two http://web/get
	[[ "$output" == *'"pod": "web-v2-0"'* ]]
}

@test "uninstall of one node removes only its pins and agent" {
	run bm uninstall --node "$LAB-node2"
	[ "$status" -eq 0 ]
	[ ! -e "$(pins "$LAB" node2)" ]
	[ -e "$(pins "$LAB" node1)/bm_svc" ]
	run bm status --node "$LAB-node2"
	[ "$status" -ne 0 ]
	bm status --node "$LAB-node1" || { tail -40 "/run/bpfmesh/lab/$LAB/agent-node1.log"; false; }
	run bm uninstall --node "$LAB-node2"
	[ "$status" -eq 0 ] # idempotent
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
