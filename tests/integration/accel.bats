#!/usr/bin/env bats
# Same-node acceleration (bpf/accel.h): pod-to-pod TCP on one node goes socket to socket
# through bm_sockhash. Lab "ac" runs with --accel on (the default), lab "ac2" with --accel off,
# both from fixtures/accel.yaml; tests/integration/accel_peer.py is both the raw TCP server
# (in pod raw-0, its echo server stopped) and the clients. Data must arrive intact both ways,
# the counters must stay exact, and no socket may stay in the map once its connection is gone.
load helpers

LAB=ac
LAB2=ac2
PEER="$BATS_TEST_DIRNAME/accel_peer.py"

# start_server LAB: accel_peer.py serving 9000 and 15008 in pod a/raw-0 instead of its echo
start_server() {
	"$BM" lab stop --name "$1" -n a raw-0 >/dev/null
	setsid "$BM" lab exec --name "$1" -n a raw-0 -- /usr/bin/python3 "$PEER" server 9000 15008 \
		>"$WORK/server-$1.log" 2>&1 </dev/null &
	echo $! >"$WORK/server-$1.pid"
	for _ in $(seq 100); do
		"$BM" lab exec --name "$1" -n a raw-0 -- /usr/bin/python3 -c \
			'import socket; socket.create_connection(("127.0.0.1", 9000), 1)' 2>/dev/null && return 0
		sleep 0.1
	done
	echo "accel_peer.py in $1's a/raw-0 does not answer on 9000:" >&2
	cat "$WORK/server-$1.log" >&2
	"$BM" lab exec --name "$1" -n a raw-0 -- ss -ltnp >&2 || true
	return 1
}

setup_file() {
	export LAB LAB2 WORK
	WORK=$(mktemp -d /tmp/bpfmesh-accel.XXXXXX)
	lab_teardown "$LAB"
	lab_teardown "$LAB2"
	lab_up "$LAB" -f "$FIX/accel.yaml" >&3 2>&3
	lab_up "$LAB2" --accel off -f "$FIX/accel.yaml" >&3 2>&3
	start_server "$LAB"
	start_server "$LAB2"
}

teardown_file() {
	for l in "$LAB" "$LAB2"; do
		[ -f "$WORK/server-$l.pid" ] && kill "$(cat "$WORK/server-$l.pid")" 2>/dev/null
		lab_teardown "$l"
	done
	[ -f "$WORK/nodesrv.pid" ] && kill "$(cat "$WORK/nodesrv.pid")" 2>/dev/null
	rm -rf "$WORK"
}

# peer LAB MODE ARGS...: accel_peer.py client in pod a/client-0
peer() { local l=$1; shift; "$BM" lab exec --name "$l" -n a client-0 -- /usr/bin/python3 "$PEER" "$@"; }
mport() { "$BM" lab status --name "$1" | sed -n 's|^node node1 .*metrics http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p'; }
# metric LAB NAME: sum of NAME over the client's series; event LAB EVENT: a datapath counter
metric() {
	curl -s "http://127.0.0.1:$(mport "$1")/metrics" |
		awk -v n="$2" 'index($0, n "{") == 1 && /reporter="source"/ && /source_workload="client"/ { s += $NF } END { printf "%d\n", s }'
}
event() {
	curl -s "http://127.0.0.1:$(mport "$1")/metrics" |
		awk -v e="bpfmesh_datapath_events_total{event=\"$2\"}" 'index($0, e) == 1 { print $NF }'
}
# socks LAB: sockets in bm_sockhash, as `bpfmesh status` counts them; records: bm_accel entries
socks() { "$BM" status --node "$1-node1" | sed -n 's/^accel: .*, \([0-9]*\) sockets in bm_sockhash/\1/p'; }
records() { bpftool map dump pinned "$(pins "$1" node1)/bm_accel" | grep -c '"key"' || true; }
# sums "sent S recv R" over the client's output lines
sums() { awk '{ for (i = 1; i < NF; i++) { if ($i == "sent") s += $(i+1); if ($i == "recv") r += $(i+1) } } END { print s + 0, r + 0 }'; }

# wait_zero LAB: no socket and no record left (closes finish in softirq, just after the app)
wait_zero() {
	for _ in $(seq 50); do
		[ "$(socks "$1")" = 0 ] && [ "$(records "$1")" = 0 ] && return 0
		sleep 0.1
	done
	echo "left behind: $(socks "$1") sockets, $(records "$1") records"
	return 1
}

# data_tests LAB: the same data checks with acceleration on or off; prints "sent recv"
data_tests() {
	local out
	# 64 MiB each way, sha256 compared at both ends; the server replies after the client's
	# shutdown(SHUT_WR) (half-close) and the client reads it all
	out=$(peer "$1" sink raw 9000 67108864 67108864) || { echo "$out"; return 1; }
	[[ "$out" == *"sha256 ok"* ]] || return 1
	echo "$out" >"$WORK/data-$1.out"
	out=$(peer "$1" echo raw 9000 200) || return 1
	echo "$out" >>"$WORK/data-$1.out"
	out=$(peer "$1" rst raw 9000) || { echo "$out"; return 1; }
	[[ "$out" == *" reset" || "$out" == *" eof" ]] || return 1
	echo "$out" >>"$WORK/data-$1.out"
	sums <"$WORK/data-$1.out"
}

@test "status says accel on (lab ac) and off (lab ac2), with the socket count" {
	run bm status --node "$LAB-node1"
	echo "$output"
	[[ "$output" == *"accel:    on, 0 sockets in bm_sockhash"* ]]
	run bm status --node "$LAB2-node1"
	[[ "$output" == *"accel:    off, 0 sockets in bm_sockhash"* ]]
}

@test "accelerated: 64 MiB both ways intact, half-close, server reset; the counter moves by every byte" {
	b0=$(event "$LAB" accelerated_bytes)
	c0=$(event "$LAB" accelerated_connections)
	run data_tests "$LAB"
	echo "$output"
	[ "$status" -eq 0 ]
	read -r sent recv <<<"${lines[-1]}"
	wait_zero "$LAB"
	b1=$(event "$LAB" accelerated_bytes)
	c1=$(event "$LAB" accelerated_connections)
	echo "app bytes $sent + $recv, redirected $((b1 - b0)), connections $((c1 - c0))"
	[ $((c1 - c0)) -eq 3 ]
	[ $((b1 - b0)) -eq $((sent + recv)) ]
}

@test "Istio byte metrics equal the bytes the client sent (received_bytes: the request) and received (sent_bytes: the response), accelerated" {
	s0=$(metric "$LAB" istio_tcp_received_bytes_total)
	r0=$(metric "$LAB" istio_tcp_sent_bytes_total)
	{ peer "$LAB" sink raw 9000 1000000 300000 && peer "$LAB" echo raw 9000 50 &&
		peer "$LAB" rst raw 9000; } >"$WORK/m.out"
	read -r sent recv < <(sums <"$WORK/m.out")
	wait_zero "$LAB"
	for _ in $(seq 20); do
		ds=$(($(metric "$LAB" istio_tcp_received_bytes_total) - s0))
		dr=$(($(metric "$LAB" istio_tcp_sent_bytes_total) - r0))
		[ "$ds" -eq "$sent" ] && [ "$dr" -eq "$recv" ] && break
		sleep 0.1
	done
	echo "client sent $sent received $recv; metrics sent $ds received $dr"
	[ "$ds" -eq "$sent" ]
	[ "$dr" -eq "$recv" ]
}

@test "metrics.bats' check holds accelerated: 300 curl connections, bytes exact" {
	s0=$(metric "$LAB" istio_tcp_received_bytes_total)
	r0=$(metric "$LAB" istio_tcp_sent_bytes_total)
	o0=$(metric "$LAB" istio_tcp_connections_opened_total)
	c0=$(event "$LAB" accelerated_connections)
	"$BM" lab exec --name "$LAB" -n a client-0 -- curl -s --max-time 60 -H 'Connection: close' \
		-w 'SIZES %{size_request} %{size_header} %{size_download}\n' \
		"http://web:8080/get?[1-300]" >"$WORK/curl.out"
	sent=$(awk '/^SIZES/ { s += $2 } END { print s }' "$WORK/curl.out")
	recv=$(awk '/^SIZES/ { r += $3 + $4 } END { print r }' "$WORK/curl.out")
	wait_zero "$LAB"
	ds=$(($(metric "$LAB" istio_tcp_received_bytes_total) - s0))
	dr=$(($(metric "$LAB" istio_tcp_sent_bytes_total) - r0))
	do=$(($(metric "$LAB" istio_tcp_connections_opened_total) - o0))
	dc=$(($(event "$LAB" accelerated_connections) - c0))
	echo "curl sent $sent received $recv; metrics $ds $dr opened $do; accelerated $dc"
	[ "$do" -eq 300 ]
	[ "$dc" -eq 300 ]
	[ "$ds" -eq "$sent" ]
	[ "$dr" -eq "$recv" ]
}

@test "both sockets are in bm_sockhash while the connection is open, none after" {
	peer "$LAB" hold raw 9000 3 >"$WORK/hold.out" &
	pid=$!
	for _ in $(seq 30); do grep -q holding "$WORK/hold.out" && break; sleep 0.1; done
	n=$(socks "$LAB")
	r=$(records "$LAB")
	wait "$pid"
	echo "while open: $n sockets, $r records"
	[ "$n" -eq 2 ]
	[ "$r" -eq 1 ]
	wait_zero "$LAB"
}

@test "client reset (SO_LINGER 0): the server sees the reset; nothing left" {
	: >"$WORK/server-$LAB.log"
	run peer "$LAB" clientrst raw 9000
	[ "$status" -eq 0 ]
	for _ in $(seq 30); do grep -q peer-close "$WORK/server-$LAB.log" && break; sleep 0.1; done
	cat "$WORK/server-$LAB.log"
	# a blocking reader woken by the reset may first get one EAGAIN (kernel sockmap receive
	# path, docs/architecture.md); the read after it reports the reset
	grep -Eq '^peer-close (reset|eof) eagain [01]$' "$WORK/server-$LAB.log"
	wait_zero "$LAB"
}

@test "a killed client process leaves nothing behind" {
	peer "$LAB" hold raw 9000 30 >"$WORK/kill.out" &
	for _ in $(seq 30); do grep -q holding "$WORK/kill.out" && break; sleep 0.1; done
	[ "$(socks "$LAB")" -eq 2 ]
	kill -9 "$(sed -n 's/^holding pid //p' "$WORK/kill.out")"
	wait 2>/dev/null || true
	wait_zero "$LAB"
}

@test "connections to the node address or to an agent port number are never accelerated" {
	node_ns="bm-$LAB-node1"
	setsid ip netns exec "$node_ns" /usr/bin/python3 "$PEER" server 9100 >"$WORK/nodesrv.log" 2>&1 </dev/null &
	echo $! >"$WORK/nodesrv.pid"
	for _ in $(seq 30); do
		peer "$LAB" echo 10.244.1.1 9100 1 >/dev/null 2>&1 && break
		sleep 0.1
	done
	raw_ip=$("$BM" lab status --name "$LAB" | sed -n 's|^pod a/raw-0 node node1 ip \([0-9.]*\) .*|\1|p')
	c0=$(event "$LAB" accelerated_connections)
	peer "$LAB" hold 10.244.1.1 9100 1 >"$WORK/na.out" &
	pid=$!
	for _ in $(seq 30); do grep -q holding "$WORK/na.out" && break; sleep 0.1; done
	n=$(socks "$LAB")
	wait "$pid"
	echo "node address: $n sockets while open"
	[ "$n" -eq 0 ]
	# a pod's own 15008 (an agent port number, not this node's agent): the connect goes
	# through, and is never accelerated
	peer "$LAB" hold "$raw_ip" 15008 1 >"$WORK/ap.out" &
	pid=$!
	for _ in $(seq 30); do grep -q holding "$WORK/ap.out" && break; sleep 0.1; done
	n=$(socks "$LAB")
	wait "$pid"
	echo "pod port 15008: $n sockets while open; $(cat "$WORK/ap.out")"
	grep -q holding "$WORK/ap.out"
	[ "$n" -eq 0 ]
	kill "$(cat "$WORK/nodesrv.pid")" 2>/dev/null
	[ "$(event "$LAB" accelerated_connections)" -eq "$c0" ]
}

@test "accel off: the same data tests pass, nothing goes in the map, the counter stays" {
	b0=$(event "$LAB2" accelerated_bytes)
	s0=$(metric "$LAB2" istio_tcp_received_bytes_total)
	r0=$(metric "$LAB2" istio_tcp_sent_bytes_total)
	peer "$LAB2" hold raw 9000 1 >"$WORK/off.out" &
	pid=$!
	for _ in $(seq 30); do grep -q holding "$WORK/off.out" && break; sleep 0.1; done
	n=$(socks "$LAB2")
	wait "$pid"
	[ "$n" -eq 0 ]
	run data_tests "$LAB2"
	echo "$output"
	[ "$status" -eq 0 ]
	read -r sent recv <<<"${lines[-1]}"
	read -r hs hr < <(sums <"$WORK/off.out")
	sleep 0.3
	ds=$(($(metric "$LAB2" istio_tcp_received_bytes_total) - s0))
	dr=$(($(metric "$LAB2" istio_tcp_sent_bytes_total) - r0))
	echo "off: app $((sent + hs)) $((recv + hr)); metrics $ds $dr"
	[ "$(event "$LAB2" accelerated_bytes)" -eq "$b0" ]
	[ "$(event "$LAB2" accelerated_connections)" -eq 0 ]
	[ "$ds" -eq $((sent + hs)) ]
	[ "$dr" -eq $((recv + hr)) ]
	[ "$(records "$LAB2")" -eq 0 ]
}

@test "lab down leaves nothing behind (both labs)" {
	for l in "$LAB" "$LAB2"; do
		kill "$(cat "$WORK/server-$l.pid")" 2>/dev/null || true
		run "$BM" lab down --name "$l"
		[ "$status" -eq 0 ]
		run leftovers "$l"
		echo "$output"
		[ -z "$output" ]
	done
}
