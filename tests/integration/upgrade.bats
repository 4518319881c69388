#!/usr/bin/env bats
# Agent upgrades that drop nothing (docs/upgrades.md): a new agent of the same --node takes the
# running one's listening sockets over /run/bpfmesh/<node>/handover.sock, the old one accepts
# until the new one is ready, then relays what it holds until it closes. Traffic: a STRICT pod
# on node2 (tunnelled, HBONE over HTTP/2) from a mesh pod on node1 (fixtures/mtls.yaml).
load helpers

LAB=iupg
TMPD=/tmp/bpfmesh-$LAB-test
RUN=/run/bpfmesh/lab/$LAB

setup_file() {
	export LAB
	lab_teardown "$LAB"
	rm -rf "$TMPD"
	mkdir -p "$TMPD"
	lab_up "$LAB" -f "$FIX/mtls.yaml" >&3 2>&3
}

teardown() {
	lab_logs_if_failed
}

teardown_file() {
	pkill -f "upgrade_client.py 10.244" 2>/dev/null || true
	lab_teardown "$LAB"
	rm -rf "$TMPD"
}

pod_ip() { # NS POD -> IPv4
	lab status | awk -v p="pod $1/$2 " 'index($0, p) == 1 { print $6 }'
}

agents_of() { # NODE: how many agent processes of the node run (serving and draining)
	pgrep -fc "bpfmesh agent .*--node $LAB-$1( |\$)" || true
}

serving_after() { # NODE PID: the pid that accepts for NODE once it is not PID (10 s at most)
	local now
	for _ in $(seq 100); do
		now=$(cat "/run/bpfmesh/$LAB-$1/serving")
		[ "$now" != "$2" ] && break
		sleep 0.1
	done
	echo "$now"
}

tunnelled() { # NODE: connections the kernel sent through the tunnel
	bm status --node "$LAB-$1" | grep -F "sent through the mTLS tunnel" | awk '{ print $NF }'
}

@test "three upgrades of both agents under traffic: no reset, nothing lost or reordered, no failed connection" {
	ip=$(pod_ip zt httpbin-0)
	before=$(tunnelled node1)
	# 100 messages a second on one connection, 200 new connections a second, for 22 s
	lab exec -n zt sleep-0 -- /usr/bin/python3 "$BATS_TEST_DIRNAME/upgrade_client.py" \
		"$ip" 8080 --secs 22 --rate 200 >"$TMPD/client.json" 2>"$TMPD/client.err" &
	client=$!
	sleep 2
	for round in 1 2 3; do
		for node in node1 node2; do
			run lab agent upgrade "$node"
			echo "round $round: $output"
			[ "$status" -eq 0 ]
			# (the old agent drains what it relays; one that holds nothing at that moment,
			# between two short connections, is gone at once)
			[[ "$output" == "agent of node $node upgraded: pid "*" serving, pid "*" draining" ||
				"$output" == "agent of node $node upgraded: pid "*" serving, pid "*" exited" ]]
		done
		sleep 2
	done
	rc=0
	wait "$client" || rc=$?
	cat "$TMPD/client.json" "$TMPD/client.err"
	[ "$rc" -eq 0 ]
	/usr/bin/python3 - "$TMPD/client.json" <<-'EOF'
		import json, sys
		r = json.load(open(sys.argv[1]))
		assert r["long_errors"] == 0 and r["short_failed"] == 0, r["errors"]
		assert r["long_ok"] == r["long_sent"], r
		# the load was real: most of 100/s on the long connection, 200/s short ones
		assert r["long_ok"] >= 22 * 100 * 0.6, r
		assert r["short_ok"] >= 22 * 200 * 0.6, r
	EOF
	# the traffic went through the tunnel, and each node's agents handed over three times
	[ "$(tunnelled node1)" -gt "$((before + 22 * 200 / 2))" ]
	for node in node1 node2; do
		[ "$(grep -c "handover: agent pid [0-9]* serves; draining" "$RUN/agent-$node.log")" -eq 3 ]
		[ "$(grep -c "handover: config in force, certificates held: accepting" "$RUN/agent-$node.log")" -eq 3 ]
	done
	# the long connection is closed: every draining agent exits, one agent a node is left
	for _ in $(seq 50); do
		[ "$(agents_of node1)" = 1 ] && [ "$(agents_of node2)" = 1 ] && break
		sleep 0.2
	done
	echo "agents: node1 $(agents_of node1), node2 $(agents_of node2)"
	[ "$(agents_of node1)" = 1 ]
	[ "$(agents_of node2)" = 1 ]
	for node in node1 node2; do
		[ "$(grep -c "handover: drained: every connection this agent relayed has closed" "$RUN/agent-$node.log")" -eq 3 ]
	done
}

@test "a draining agent relays its open connection while the new one serves new ones" {
	ip=$(pod_ip zt httpbin-0)
	lab exec -n zt sleep-0 -- /usr/bin/python3 "$BATS_TEST_DIRNAME/upgrade_client.py" \
		"$ip" 8080 --secs 6 --rate 20 >"$TMPD/c2.json" 2>&1 &
	client=$!
	sleep 1
	old=$(cat "/run/bpfmesh/$LAB-node1/serving")
	run lab agent upgrade node1
	echo "$output"
	[ "$status" -eq 0 ]
	new=$(cat "/run/bpfmesh/$LAB-node1/serving")
	[ "$new" != "$old" ]
	# both run: the old one for the long connection it holds
	kill -0 "$old"
	[ "$(agents_of node1)" = 2 ]
	wait "$client"
	cat "$TMPD/c2.json"
	grep -q '"long_errors": 0, "short_ok": [1-9][0-9]*, "short_failed": 0' "$TMPD/c2.json"
	for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
	run kill -0 "$old"
	[ "$status" -ne 0 ]
}

@test "an upgrade moves the HTTP path's clients on: an idle keep-alive connection is closed, an HTTP/2 one gets GOAWAY, and the old agent is gone in seconds" {
	# httpbin-p by the HTTP path (a VirtualService with a match: node1's agent routes each
	# request, 15006), to a pod on node2 through the tunnel
	cat >"$TMPD/l7.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin-p-l7, namespace: zt}
spec:
  hosts: [httpbin-p.zt.svc.cluster.local]
  http:
    - match: [{headers: {x-canary: {exact: "1"}}}]
      route: [{destination: {host: httpbin-p.zt.svc.cluster.local}}]
    - route: [{destination: {host: httpbin-p.zt.svc.cluster.local}}]
EOF
	lab apply -f "$TMPD/l7.yaml" >/dev/null
	idle=()
	for mode in h1 h2; do
		lab exec -n zt sleep-0 -- /usr/bin/python3 "$BATS_TEST_DIRNAME/l7_idle.py" "$mode" \
			httpbin-p.zt 8000 20 >"$TMPD/idle-$mode.out" 2>&1 &
		idle+=($!)
	done
	for _ in $(seq 100); do
		grep -q answered "$TMPD/idle-h1.out" && grep -q answered "$TMPD/idle-h2.out" && break
		sleep 0.1
	done
	old=$(cat "/run/bpfmesh/$LAB-node1/serving")
	run lab agent upgrade node1
	[ "$status" -eq 0 ]
	wait "${idle[@]}" || true
	rm -f "$RUN/config/VirtualService.zt.httpbin-p-l7.yaml"
	echo "h1: $(cat "$TMPD/idle-h1.out")"
	echo "h2: $(cat "$TMPD/idle-h2.out")"
	grep -q "^answered 200" "$TMPD/idle-h1.out"
	grep -q "^answered 200" "$TMPD/idle-h2.out"
	# closed (HTTP/1.1) and told to go (HTTP/2) at the drain's start, not after 20 s
	awk '/^closed after/ { exit !($3 < 5) } END { if (!NR) exit 1 }' "$TMPD/idle-h1.out"
	grep -q "^goaway after [0-4]\.[0-9] s last_stream 1$" "$TMPD/idle-h2.out"
	grep -q "l7: worker [0-9]*: draining [0-9]* HTTP connection(s)" "$RUN/agent-node1.log"
	for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
	run kill -0 "$old"
	[ "$status" -ne 0 ] # nothing held it: gone well before --drain-timeout
}

@test "the hand-over socket is root's: another user cannot ask for the listeners" {
	sock=/run/bpfmesh/$LAB-node1/handover.sock
	[ -S "$sock" ]
	[ "$(stat -c %a "$sock")" = 600 ]
	run setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(b"TAKE 1")
print("answered", s.recv(64))' "$sock"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *PermissionError* ]]
	# the agent serves on
	[ "$(agents_of node1)" = 1 ]
	run lab exec -n zt sleep-0 -- curl -s --max-time 4 "http://$(pod_ip zt httpbin-0):8080/get"
	[[ "$output" == *'"pod": "httpbin-0"'* ]]
}

@test "a new agent that dies before it is ready: the old one serves on, then a fresh agent takes over" {
	old=$(cat "/run/bpfmesh/$LAB-node2/serving")
	pid=$(bm status --node "$LAB-node2" | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')
	[ "$pid" = "$old" ]
	mapfile -d '' args <"/proc/$pid/cmdline"
	# the same agent by hand, killed as soon as it holds the lock (before it can be ready)
	setsid "${args[@]}" >>"$RUN/agent-node2.log" 2>&1 </dev/null &
	new=$!
	for _ in $(seq 250); do
		grep -q "handover: agent pid $new has the [0-9]* listeners and the lock" "$RUN/agent-node2.log" && break
		sleep 0.02
	done
	kill -9 "$new"
	for _ in $(seq 100); do
		grep -q "handover: agent pid $new went away before it was ready; serving on" "$RUN/agent-node2.log" && break
		sleep 0.05
	done
	grep -q "handover: agent pid $new went away before it was ready; serving on until a fresh agent takes over" "$RUN/agent-node2.log"
	# the old one started a fresh agent (the state it had may be stale), which serves
	fresh=$(serving_after node2 "$old")
	echo "old $old killed $new fresh $fresh"
	[ "$fresh" != "$old" ]
	[ "$fresh" != "$new" ]
	kill -0 "$fresh"
	run lab exec -n zt sleep-0 -- curl -s --max-time 4 "http://$(pod_ip zt httpbin-0):8080/get"
	[[ "$output" == *'"pod": "httpbin-0"'* ]]
	for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
	run kill -0 "$old"
	[ "$status" -ne 0 ]
	# and the next upgrade still works (the fresh agent is not the supervisor's child)
	run lab agent upgrade node2
	echo "$output"
	[ "$status" -eq 0 ]
	kill -INT "$fresh" 2>/dev/null || true
}

@test "SIGUSR2 (systemctl reload): the installed binary takes over and tells systemd its pid; SIGTERM does not cut the drain" {
	cat >"$TMPD/notify.py" <<-'EOF'
		import socket, sys, time
		s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
		s.bind(sys.argv[1])
		s.settimeout(0.5)
		end = time.time() + 60
		with open(sys.argv[2], "a") as f:
		    while time.time() < end:
		        try:
		            f.write(s.recv(4096).decode().replace("\n", " ") + "\n")
		            f.flush()
		        except socket.timeout:
		            pass
	EOF
	rm -f "$TMPD/notify.sock" "$TMPD/notify.log"
	/usr/bin/python3 "$TMPD/notify.py" "$TMPD/notify.sock" "$TMPD/notify.log" &
	notify=$!
	pid=$(cat "/run/bpfmesh/$LAB-node1/serving")
	mapfile -d '' args <"/proc/$pid/cmdline"
	lab agent stop node1 >/dev/null
	# the lab's agent of node1 as systemd would run it
	NOTIFY_SOCKET=$TMPD/notify.sock setsid "${args[@]}" >>"$RUN/agent-node1.log" 2>&1 </dev/null &
	first=$!
	for _ in $(seq 100); do grep -q "MAINPID=$first READY=1" "$TMPD/notify.log" 2>/dev/null && break; sleep 0.1; done
	grep -q "MAINPID=$first READY=1" "$TMPD/notify.log"
	ip=$(pod_ip zt httpbin-0)
	lab exec -n zt sleep-0 -- /usr/bin/python3 "$BATS_TEST_DIRNAME/upgrade_client.py" \
		"$ip" 8080 --secs 6 --rate 50 >"$TMPD/c3.json" 2>&1 &
	client=$!
	sleep 1
	kill -USR2 "$first"
	second=$(serving_after node1 "$first")
	echo "first $first second $second"
	[ "$second" != "$first" ]
	for _ in $(seq 50); do grep -q "MAINPID=$second READY=1" "$TMPD/notify.log" && break; sleep 0.1; done
	cat "$TMPD/notify.log"
	grep -q "MAINPID=$second READY=1" "$TMPD/notify.log"
	# the orchestrator stops the process it replaced: the drain goes on
	kill -TERM "$first"
	sleep 1
	kill -0 "$first"
	wait "$client"
	cat "$TMPD/c3.json"
	grep -q '"long_errors": 0, "short_ok": [1-9][0-9]*, "short_failed": 0' "$TMPD/c3.json"
	for _ in $(seq 50); do kill -0 "$first" 2>/dev/null || break; sleep 0.2; done
	run kill -0 "$first"
	[ "$status" -ne 0 ]
	grep -q "signal 15: draining goes on" "$RUN/agent-node1.log"
	kill -INT "$second"
	kill "$notify" || true
	for _ in $(seq 50); do kill -0 "$second" 2>/dev/null || break; sleep 0.1; done
	lab agent start node1 >/dev/null # the lab's own agent again
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
