#!/usr/bin/env bats
# Circuit breaking end to end: outlier ejection decided in the kernel from real connect
# failures (a stopped pod refuses, a pod that drops SYNs times out), connection pool limits,
# and a fully failing canary subset, all through real pods, sockets and agents.
load helpers

LAB=icb

setup_file() {
	export LAB TC_DIRS_NEW=""
	# tc (loading the SYN-drop fixture) creates iproute2's pin dirs: remove them after if new
	for d in ip tc xdp; do [ -e "/sys/fs/bpf/$d" ] || TC_DIRS_NEW="$TC_DIRS_NEW $d"; done
	lab_teardown "$LAB"
	lab_up "$LAB" -f "$FIX/circuit.yaml" >&3 2>&3
}

teardown_file() {
	lab_teardown "$LAB"
	for d in $TC_DIRS_NEW; do
		find "/sys/fs/bpf/$d" -depth -type d -empty -delete 2>/dev/null || true
	done
}

pod_ip() { lab status | awk -v p="$1" '$2 == p { print $6 }'; }

# N sequential new connections from the client; prints one HTTP code per line (000 = failed)
codes() {
	local url=$1 n=$2
	lab exec -n cb client-0 -- bash -c \
		"for i in \$(seq $n); do curl -s -o /dev/null -w '%{http_code}\n' --max-time 4 \
		-H 'Connection: close' $url; done"
}

endpoint_state() { # IP -> "healthy" or "EJECTED"
	bm endpoints --node "$LAB-node1" | awk -v ip="$1:8080" '$1 == ip { print $2; exit }'
}

wait_healthy() { # IP, up to 10 s
	for _ in $(seq 100); do
		[ "$(endpoint_state "$1")" = healthy ] && return 0
		sleep 0.1
	done
	return 1
}

@test "a stopped pod costs at most consecutiveGatewayErrors failed connects, then none" {
	ip=$(pod_ip cb/web-2)
	lab stop -n cb web-2
	run codes http://web/get 30
	echo "$output" | tr '\n' ' '
	failed=$(grep -c '^000$' <<<"$output" || true)
	echo "failed: $failed"
	[ "$failed" -ge 1 ]
	[ "$failed" -le 2 ]
	# the failures are the first ones: once ejected, none
	if tail -n 20 <<<"$output" | grep '^000$'; then false; fi
	bm endpoints --node "$LAB-node1"
	[ "$(endpoint_state "$ip")" = EJECTED ]
}

@test "after lab start and the ejection time, the pod gets traffic again" {
	ip=$(pod_ip cb/web-2)
	lab start -n cb web-2
	wait_healthy "$ip"
	# shellcheck disable=SC2016 # expanded by the pod's shell
	run lab exec -n cb client-0 -- bash -c \
		'for i in $(seq 9); do curl -s --max-time 4 -H "Connection: close" http://web/get; done'
	n=$(grep -c '"pod": "web-2"' <<<"$output" || true)
	echo "web-2 answered $n of 9"
	[ "$n" -ge 1 ]
}

@test "a pod that drops SYNs is ejected through connect timeouts (connectTimeout 1s)" {
	ip=$(pod_ip cb/web-1)
	wait_healthy "$(pod_ip cb/web-2)"
	# tests/bpf/syn_drop.bpf.c: drop every incoming SYN, silently
	lab exec -n cb web-1 -- tc qdisc add dev eth0 clsact
	lab exec -n cb web-1 -- tc filter add dev eth0 ingress bpf direct-action \
		obj "$(dirname "$BM")/syn_drop.bpf.o" sec tc
	start=$(date +%s%N)
	run codes http://web/get 15
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	lab exec -n cb web-1 -- tc qdisc del dev eth0 clsact
	echo "$output" | tr '\n' ' '
	failed=$(grep -c '^000$' <<<"$output" || true)
	echo "failed: $failed in ${ms} ms"
	[ "$failed" -ge 1 ]
	[ "$failed" -le 2 ]
	# each timeout is the 1 s connectTimeout, not curl's 4 s nor the kernel's two minutes
	[ "$ms" -lt 6000 ]
	bm endpoints --node "$LAB-node1"
	[ "$(endpoint_state "$ip")" = EJECTED ]
	wait_healthy "$ip"
}

@test "maxConnections: N long connections succeed, N+1 fails fast, closing one frees a slot" {
	run lab exec -n cb client-0 -- bash -c '
		exec 3<>/dev/tcp/10.96.30.20/80 || exit 11
		exec 4<>/dev/tcp/10.96.30.20/80 || exit 12
		if (exec 5<>/dev/tcp/10.96.30.20/80) 2>/tmp/bm-third.err; then exit 13; fi
		cat /tmp/bm-third.err; rm -f /tmp/bm-third.err
		exec 3>&-
		sleep 0.3
		exec 6<>/dev/tcp/10.96.30.20/80 || exit 14
		echo after-close-ok'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Device or resource busy"* ]] # EBUSY, documented
	[[ "$output" == *"after-close-ok"* ]]
}

@test "maxConnections: a killed client releases its connections" {
	lab exec -n cb client-0 -- bash -c '
		exec 3<>/dev/tcp/10.96.30.20/80; exec 4<>/dev/tcp/10.96.30.20/80
		echo $$ > /tmp/bm-holder.pid; sleep 30' &
	for _ in $(seq 50); do [ -s /tmp/bm-holder.pid ] && break; sleep 0.1; done
	run lab exec -n cb client-0 -- bash -c '(exec 5<>/dev/tcp/10.96.30.20/80)'
	[ "$status" -ne 0 ] # the holder has both slots
	kill -9 "$(cat /tmp/bm-holder.pid)"
	rm -f /tmp/bm-holder.pid
	wait || true
	sleep 0.3
	run lab exec -n cb client-0 -- bash -c \
		'exec 3<>/dev/tcp/10.96.30.20/80 && exec 4<>/dev/tcp/10.96.30.20/80 && echo both-ok'
	echo "$output"
	[[ "$output" == *both-ok* ]]
}

@test "canary v2 fully failing while v1 is healthy: as Istio, v2's share keeps failing" {
	# one host per subset and maxEjectionPercent 10 (the default): nothing may be ejected,
	# so the connections the weights send to v2 fail, and v1's all succeed
	bm analyze -f "$FIX/circuit.yaml" 2>&1 | grep -q "can never eject"
	lab stop -n cb canary-v2-0
	run codes http://canary/get 200
	failed=$(grep -c '^000$' <<<"$output" || true)
	ok=$(grep -c '^200$' <<<"$output" || true)
	echo "failed $failed ok $ok"
	[ $((failed + ok)) -eq 200 ]
	within_5sigma "$failed" 200 1 2
	[ "$(endpoint_state "$(pod_ip cb/canary-v2-0)")" = healthy ]
	lab start -n cb canary-v2-0
}

@test "bpfmesh status shows the datapath counters the suite made move" {
	run bm status --node "$LAB-node1"
	echo "$output"
	count() { awk -v k="$1" 'index($0, k) { print $NF }' <<<"$output"; }
	[ "$(count "ejections  ")" -ge 2 ]            # web-2 (refused), web-1 (timed out)
	[ "$(count "connects failed")" -ge 3 ]
	[ "$(count "refused: maxConnections")" -ge 2 ] # the N+1 connects
	[ "$(count "picks that skipped")" -ge 1 ]
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
