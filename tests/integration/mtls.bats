#!/usr/bin/env bats
# Zero trust between nodes: the agents' mTLS tunnel (SPIFFE identities from the lab's mesh CA),
# PeerAuthentication STRICT/PERMISSIVE enforced in the kernel on the destination node,
# AuthorizationPolicy by identity (agent) and by address (kernel), identity failures, the
# agent ports, certificate rotation (a 10 s TTL for the whole suite) and agent restarts.
# Servers on node2, clients on node1 (tests/integration/fixtures/mtls.yaml).
load helpers

LAB=imtls
CFG=/run/bpfmesh/lab/$LAB/config
LOG2=/run/bpfmesh/lab/$LAB/agent-node2.log
LOG1=/run/bpfmesh/lab/$LAB/agent-node1.log
TMPD=/tmp/bpfmesh-$LAB-test

setup_file() {
	export LAB
	lab_teardown "$LAB"
	rm -rf "$TMPD"
	mkdir -p "$TMPD"
	lab_up "$LAB" --cert-ttl 10s -f "$FIX/mtls.yaml" >&3 2>&3
}

teardown() {
	lab_logs_if_failed
}

teardown_file() {
	pkill -f "openssl s_server -accept 10.244.255.2:15008" 2>/dev/null || true
	pkill -f "accel_peer.py server 9100" 2>/dev/null || true
	pkill -f "ztunnel_peer.py --listen 10.244.255.2:15008" 2>/dev/null || true
	rm -rf "/etc/netns/bm-$LAB-node1"
	if [ -f "$TMPD/scrape.pids" ]; then xargs kill <"$TMPD/scrape.pids" 2>/dev/null || true; fi
	pkill -f "tcpdump -i fab0 --immediate-mode -Z root -U -w $TMPD" 2>/dev/null || true
	lab_teardown "$LAB"
	rm -rf "$TMPD"
}

pod_ip() { # NS POD -> IPv4
	lab status | awk -v p="pod $1/$2 " 'index($0, p) == 1 { print $6 }'
}
pod_ip6() { # NS POD -> IPv6
	lab status | awk -v p="pod $1/$2 " 'index($0, p) == 1 { print $8 }'
}

get() { # NS POD URL: prints the body, fails when curl fails
	lab exec -n "$1" "$2" -- curl -s --max-time 4 -H 'Connection: close' "$3"
}

set_policy() { # replace every AuthorizationPolicy of the lab with FILE (or none)
	rm -f "$CFG"/AuthorizationPolicy.*
	if [ -n "${1:-}" ]; then lab apply -f "$1" >/dev/null; fi
	sleep 0.5 # the agents' inotify debounce and sync
}

stat_of() { # NODE COUNTER: a datapath counter from `bpfmesh status`
	local phrase
	case $2 in
	tunnelled) phrase="sent through the mTLS tunnel" ;;
	strict_drop) phrase="dropped: plaintext to STRICT" ;;
	authz_deny) phrase="dropped: AuthorizationPolicy" ;;
	agent_port) phrase="refused: agent port" ;;
	esac
	bm status --node "$LAB-$1" | grep -F "$phrase" | awk '{ print $NF }'
}

@test "both agents run the tunnel with certificates from the lab's CA" {
	run lab status
	echo "$output"
	[[ "$output" == *"node node1 agent $LAB-node1"*"ready"* ]]
	[[ "$output" == *"node node2 agent $LAB-node2"*"ready"* ]]
	grep -q "tunnel: outbound on 10.244.255.1:15001 and \[fd00:244:ff::1\]:15001, mTLS (HBONE) on 10.244.255.1:15008" "$LOG1"
	grep -q "tunnel: outbound on 10.244.255.2:15001" "$LOG2"
	[ "$(stat -c %a "/run/bpfmesh/lab/$LAB/ca/ca.key")" = 600 ]
}

@test "STRICT: a mesh pod on node1 reaches a STRICT pod on node2; the link carries only TLS" {
	marker="bpfmesh-plaintext-marker-$RANDOM$RANDOM"
	ip netns exec "bm-$LAB-node1" tcpdump -i fab0 --immediate-mode -Z root -U -w "$TMPD/link.pcap" tcp >/dev/null 2>&1 &
	dump=$!
	sleep 1
	run get zt sleep-0 "http://httpbin.zt:8000/anything?m=$marker"
	kill "$dump"
	wait "$dump" || true
	echo "$output" | head -5
	[[ "$output" == *'"pod": "httpbin-0"'* ]]
	[[ "$output" == *"$marker"* ]] # the pod got the request, marker included
	# the capture: TLS application data records to/from 15008, never the marker
	/usr/bin/python3 "$BATS_TEST_DIRNAME/pcap_tls.py" "$TMPD/link.pcap" "$marker"
	[ "$(stat_of node1 tunnelled)" -ge 1 ]
}

@test "STRICT: a pod outside the mesh gets nothing through, by service or by pod address" {
	before=$(stat_of node2 strict_drop)
	run get legacy sleep-0 http://httpbin.zt:8000/get
	[ "$status" -ne 0 ]
	ip=$(pod_ip zt httpbin-0)
	run lab exec -n legacy sleep-0 -- curl -s --max-time 3 "http://$ip:8080/get"
	[ "$status" -ne 0 ]
	[ "$(stat_of node2 strict_drop)" -gt "$before" ]
	# the flow log names the source, the pod, the port and why
	run bm observe --node "$LAB-node2" --verdict deny
	echo "$output" | tail -3
	[[ "$output" == *"deny   $(pod_ip legacy sleep-0) -> zt/httpbin-0:8080 by PeerAuthentication STRICT (plaintext)"* ]]
}

@test "PERMISSIVE accepts both plaintext and mTLS" {
	run get legacy sleep-0 http://httpbin-p.zt:8000/get
	[[ "$output" == *'"pod": "httpbin-p-0"'* ]]
	run get zt sleep-0 http://httpbin-p.zt:8000/get
	[[ "$output" == *'"pod": "httpbin-p-0"'* ]]
}

@test "a mesh pod dialing the STRICT pod's address directly is tunnelled too" {
	ip=$(pod_ip zt httpbin-0)
	run get zt sleep-0 "http://$ip:8080/get"
	[[ "$output" == *'"pod": "httpbin-0"'* ]]
}

@test "IPv6: a mesh pod on node1 reaches the STRICT pod on node2 at its IPv6 address through the tunnel; the link carries only TLS" {
	ip6=$(pod_ip6 zt httpbin-0)
	[ -n "$ip6" ]
	marker="bpfmesh-plaintext-marker-$RANDOM$RANDOM"
	tunnelled=$(stat_of node1 tunnelled)
	ip netns exec "bm-$LAB-node1" tcpdump -i fab0 --immediate-mode -Z root -U -w "$TMPD/link6.pcap" ip6 and tcp >/dev/null 2>&1 &
	dump=$!
	sleep 1
	run get zt sleep-0 "http://[$ip6]:8080/anything?m=$marker"
	kill "$dump"
	wait "$dump" || true
	echo "$output" | head -12
	[[ "$output" == *'"pod": "httpbin-0"'* ]]
	[[ "$output" == *"$marker"* ]]
	# delivered by node2's agent from node2's IPv6 address (--node-ip's second address)
	[[ "$output" == *'"origin": "fd00:244:ff::2"'* ]]
	[ "$(stat_of node1 tunnelled)" -gt "$tunnelled" ]
	# the capture: IPv6 TLS records to/from the pod's own 15008, never the marker
	/usr/bin/python3 "$BATS_TEST_DIRNAME/pcap_tls.py" "$TMPD/link6.pcap" "$marker" "$ip6"
	# the destination side counts it as mutual TLS from zt/sleep
	run lab_metrics node2
	grep 'istio_tcp_connections_opened_total{reporter="destination",source_workload="sleep",source_workload_namespace="zt"' <<<"$output" | grep -q 'destination_workload="httpbin".*connection_security_policy="mutual_tls"'
	# once: the kernel does not count the agent's delivery again as plaintext (the STRICT pod
	# takes none, so a "none" series for it could only be that)
	# shellcheck disable=SC2143 # `! grep` would never fail a bats test
	[ -z "$(grep 'istio_tcp_connections_opened_total{reporter="destination"' <<<"$output" | grep 'destination_workload="httpbin",' | grep 'connection_security_policy="none"')" ]
	# and a pod outside the mesh gets nothing through at that address
	run lab exec -n legacy sleep-0 -- curl -s --max-time 3 "http://[$ip6]:8080/get"
	[ "$status" -ne 0 ]
}

@test "IPv6: AuthorizationPolicy judges a tunnelled client by its IPv6 address (ipBlocks), as the peer agent's Forwarded says from its node's address" {
	ip6=$(pod_ip6 zt httpbin-0)
	cat >"$TMPD/deny6.yaml" <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-sleep-v6, namespace: zt}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
    - from: [{source: {ipBlocks: ["$(pod_ip6 zt sleep-0)/128"]}}]
EOF
	set_policy "$TMPD/deny6.yaml"
	run get zt sleep-0 "http://[$ip6]:8080/get"
	deny6=$output
	run get zt sleep-0 "http://$(pod_ip zt httpbin-0):8080/get"
	allow4=$output
	run get ext sleep-0 "http://[$ip6]:8080/get"
	other6=$output
	set_policy
	echo "IPv6 from zt/sleep: $deny6"
	[[ "$deny6" != *'"pod": "httpbin-0"'* ]]
	grep -q "tunnel: .*denied spiffe://cluster.local/ns/zt/sa/sleep ($(pod_ip6 zt sleep-0)) -> zt/httpbin-0:8080" "$LOG2"
	[[ "$allow4" == *'"pod": "httpbin-0"'* ]]  # an IPv6 block never matches IPv4
	[[ "$other6" == *'"pod": "httpbin-0"'* ]]  # another pod's IPv6 address: allowed
}

# h2c ARGS...: the python3-h2 HBONE client (an independent HTTP/2 implementation, as a
# ztunnel on node1 would connect) to node2's 15008, as zt/sleep, for the STRICT pod httpbin-0
h2c() {
	local ca=/run/bpfmesh/lab/$LAB/ca
	if [ ! -f "$TMPD/h2.crt" ]; then
		bm ca issue --dir "$ca" --id spiffe://cluster.local/ns/zt/sa/sleep \
			--cert "$TMPD/h2.crt" --key "$TMPD/h2.key" >/dev/null
	fi
	ip netns exec "bm-$LAB-node1" timeout 60 /usr/bin/python3 "$BATS_TEST_DIRNAME/hbone_h2.py" \
		--connect 10.244.255.2:15008 --sni "$(pod_ip zt httpbin-0).pod.bpfmesh" \
		--cert "$TMPD/h2.crt" --key "$TMPD/h2.key" --ca "$ca/ca.crt" "$@"
}

h2_metric() { # OUTCOME: node2's bpfmesh_tunnel_h2_streams_total{outcome=OUTCOME}
	lab_metrics node2 | awk -v o="bpfmesh_tunnel_h2_streams_total{outcome=\"$1\"}" '$1 == o { print $2 }'
}

@test "HBONE over HTTP/2 (python3-h2 as the client): 10 CONNECT streams on one TLS connection reach the STRICT pod" {
	ip=$(pod_ip zt httpbin-0)
	before=$(h2_metric received)
	conns=$(lab_metrics node2 | awk '$1 == "bpfmesh_tunnel_connections_total{direction=\"inbound\",outcome=\"h2\"}" { print $2 }')
	run h2c --authority "$ip:8080" --streams 10 --forwarded "for=$(pod_ip zt sleep-0)"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"alpn h2"* ]]
	[[ "$output" == *"server spiffe://cluster.local/ns/zt/sa/httpbin"* ]]
	[ "$(grep -c "status 200 pod httpbin-0" <<<"$output")" -eq 10 ]
	[ "$(h2_metric received)" -eq $((before + 10)) ]
	after=$(lab_metrics node2 | awk '$1 == "bpfmesh_tunnel_connections_total{direction=\"inbound\",outcome=\"h2\"}" { print $2 }')
	[ "$after" -eq $((conns + 1)) ] # one TLS connection for the ten
}

@test "HBONE to the pod's own address, port 15008 (ztunnel's in-pod addressing): no SNI, the pod's certificate, that pod only" {
	ip=$(pod_ip zt httpbin-0)
	other=$(pod_ip zt httpbin-p-0) # the same service account, another pod
	h2c --authority "$ip:8080" >/dev/null # (issues the client certificate)
	pod_h2c() { # ADDRESS ARGS...: as a ztunnel in in-pod mode dials, without SNI
		local to=$1
		shift
		ip netns exec "bm-$LAB-node1" timeout 30 /usr/bin/python3 "$BATS_TEST_DIRNAME/hbone_h2.py" \
			--connect "$to:15008" --cert "$TMPD/h2.crt" --key "$TMPD/h2.key" \
			--ca "/run/bpfmesh/lab/$LAB/ca/ca.crt" "$@"
	}
	run pod_h2c "$ip" --authority "$ip:8080" --streams 2
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"alpn h2"* ]]
	[[ "$output" == *"server spiffe://cluster.local/ns/zt/sa/httpbin"* ]]
	[ "$(grep -c "status 200 pod httpbin-0" <<<"$output")" -eq 2 ]
	# its IPv6 address too (the same listener: one socket for both families)
	ip6=$(pod_ip6 zt httpbin-0)
	run pod_h2c "[$ip6]" --authority "[$ip6]:8080" --streams 2
	echo "$output"
	[[ "$output" == *"server spiffe://cluster.local/ns/zt/sa/httpbin"* ]]
	[ "$(grep -c "status 200 pod httpbin-0" <<<"$output")" -eq 2 ]
	run pod_h2c "[$(pod_ip6 zt httpbin-p-0)]" --authority "[$ip6]:8080"
	[[ "$output" == *"stream 1 status 400"* ]]
	# the node's 15008 names an IPv6 pod by SNI as its 32 hex digits (a name has no ':')
	hex=$(/usr/bin/python3 -c 'import ipaddress, sys; print(ipaddress.ip_address(sys.argv[1]).packed.hex())' "$ip6")
	run pod_h2c 10.244.255.2 --sni "$hex.pod.bpfmesh" --authority "[$ip6]:8080"
	echo "$output"
	[[ "$output" == *"server spiffe://cluster.local/ns/zt/sa/httpbin"* ]]
	[[ "$output" == *"status 200 pod httpbin-0"* ]]
	# a tunnel to httpbin-p-0's address carries nothing to httpbin-0, identity or not
	run pod_h2c "$other" --authority "$ip:8080"
	echo "$output"
	[[ "$output" == *"stream 1 status 400"* ]]
	grep -q "not the pod whose address the tunnel went to" "$LOG2"
	# the STRICT pod's own 15008 is the agent's: plaintext there gets no answer from anyone
	run lab exec -n zt sleep-0 -- curl -s --max-time 3 "http://$ip:15008/get"
	echo "$output"
	[[ "$output" != *'"pod"'* ]]
}

@test "HBONE over HTTP/2: 3 streams of 16 MiB each way at once, half-closed, intact" {
	ip=$(pod_ip zt httpbin-0)
	peer=$BATS_TEST_DIRNAME/accel_peer.py
	setsid "$BM" lab exec --name "$LAB" -n zt httpbin-0 -- /usr/bin/python3 "$peer" server 9100 \
		>"$TMPD/h2peer.log" 2>&1 </dev/null &
	for _ in $(seq 50); do
		lab exec -n zt httpbin-0 -- ss -ltn 2>/dev/null | grep -q ':9100 ' && break
		sleep 0.1
	done
	run h2c --authority "$ip:9100" --streams 3 --sink 16777216 16777216 --timeout 40
	pkill -f "accel_peer.py server 9100" || true
	echo "$output"
	[ "$(grep -c '^sink ' <<<"$output")" -eq 3 ]
	# the pod counted and hashed what the client sent; the client got all the pod sent
	while read -r _ id _ size sha _ n psha _ got; do
		echo "stream $id: sent $size $sha, the pod read $n $psha, got back $got"
		[ "$n" -eq "$size" ]
		[ "$psha" = "$sha" ]
		[ "$got" -eq 16777216 ]
	done < <(grep '^sink ' <<<"$output")
}

@test "HBONE over HTTP/2: refusals carry ztunnel's status codes (400, 401, 503); no client certificate, no stream" {
	ip=$(pod_ip zt httpbin-0)
	refused=$(h2_metric refused)
	run h2c --authority "$ip:8080" --method GET
	echo "$output"
	[[ "$output" == *"stream 1 status 400"* ]] # not CONNECT
	run h2c --authority "$(pod_ip zt sleep-0):8080"
	[[ "$output" == *"stream 1 status 400"* ]] # not a pod of this node
	run h2c --authority "not-an-address:80"
	[[ "$output" == *"stream 1 status 400"* ]]
	[ "$(h2_metric refused)" -eq $((refused + 3)) ]
	run h2c --authority "$ip:9" # nothing listens there
	[[ "$output" == *"stream 1 status 503"* ]]
	set_policy "$FIX/mtls/allow-nothing.yaml"
	run h2c --authority "$ip:8080"
	set_policy
	echo "$output"
	[[ "$output" == *"stream 1 status 401"* ]]
	grep -q "tunnel: denied spiffe://cluster.local/ns/zt/sa/sleep .* -> zt/httpbin-0:8080" "$LOG2"
	# a client without a certificate never gets as far as a stream
	run ip netns exec "bm-$LAB-node1" timeout 20 /usr/bin/python3 "$BATS_TEST_DIRNAME/hbone_h2.py" \
		--connect 10.244.255.2:15008 --sni "$ip.pod.bpfmesh" \
		--ca "/run/bpfmesh/lab/$LAB/ca/ca.crt" --authority "$ip:8080"
	echo "$output"
	[[ "$output" != *"status 200"* ]]
	[ "$status" -ne 0 ] || [[ "$output" != *"stream 1 status"*[0-9]* ]]
}

@test "HBONE over HTTP/2: nghttp (nghttp2-client) reads node2's frames as valid HTTP/2" {
	ip=$(pod_ip zt httpbin-0)
	h2c --authority "$ip:8080" >/dev/null # (issues the client certificate)
	# nghttp takes its SNI from the URL: the name resolves to node2 inside node1's netns only
	mkdir -p "/etc/netns/bm-$LAB-node1"
	echo "10.244.255.2 $ip.pod.bpfmesh" >"/etc/netns/bm-$LAB-node1/hosts"
	run ip netns exec "bm-$LAB-node1" timeout 20 nghttp -v -y --cert "$TMPD/h2.crt" \
		--key "$TMPD/h2.key" "https://$ip.pod.bpfmesh:15008/"
	rm -rf "/etc/netns/bm-$LAB-node1"
	echo "$output"
	[[ "$output" == *"recv SETTINGS frame"* ]]
	[[ "$output" == *"(niv=3)"* ]]
	[[ "$output" == *"[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):200]"* ]]
	[[ "$output" == *"[SETTINGS_INITIAL_WINDOW_SIZE(0x04):4194304]"* ]]
	[[ "$output" =~ recv\ \(stream_id=[0-9]+\)\ :status:\ 400 ]] # GET is not CONNECT
	[[ "$output" == *"recv WINDOW_UPDATE frame"*"(window_size_increment=16711681)"* ]] # 16 MiB
	[[ "$output" != *"PROTOCOL_ERROR"* ]]
	[[ "$output" != *"[ERROR]"* ]]
}

@test "HBONE over HTTP/2: a client that stops answering PINGs is closed after 2 x 10 s" {
	ip=$(pod_ip zt httpbin-0)
	run h2c --authority "$ip:8080" --stall 24 --timeout 30
	echo "$output"
	[[ "$output" == *"stream 1 status 200"* ]]
	[[ "$output" == *"after stall: closed"* ]]
	grep -q "tunnel: h2 10.244.255.1:[0-9]* (spiffe://cluster.local/ns/zt/sa/sleep): no answer to PING in 10 s; closed" "$LOG2"
}

@test "the tunnel carries 32 MiB with half-close both ways, and a server reset" {
	peer=$BATS_TEST_DIRNAME/accel_peer.py
	ip=$(pod_ip zt httpbin-0)
	setsid "$BM" lab exec --name "$LAB" -n zt httpbin-0 -- /usr/bin/python3 "$peer" server 9100 \
		>"$TMPD/peer.log" 2>&1 </dev/null &
	for i in $(seq 50); do
		lab exec -n zt sleep-0 -- /usr/bin/python3 "$peer" echo "$ip" 9100 1 >/dev/null 2>&1 && break
		sleep 0.1
	done
	# 32 MiB up, shutdown(SHUT_WR), then the server's sha256 line and 1 MiB back after EOF
	run lab exec -n zt sleep-0 -- /usr/bin/python3 "$peer" sink "$ip" 9100 33554432 1048576
	echo "$output"
	[[ "$output" == *"sha256 ok"* ]]
	run lab exec -n zt sleep-0 -- /usr/bin/python3 "$peer" rst "$ip" 9100
	echo "$output"
	[ "$status" -eq 0 ]
	pkill -f "accel_peer.py server 9100" || true
}

# dsum METRIC: node2's METRIC, reporter destination, zt/sleep -> zt/httpbin over mTLS: the sum
dsum() {
	series_sum node2 "$1" 'reporter="destination"' 'source_workload="sleep"' \
		'destination_workload="httpbin"' 'connection_security_policy="mutual_tls"' \
		'source_principal="spiffe://cluster.local/ns/zt/sa/sleep"' \
		'destination_service="httpbin.zt.svc.cluster.local"'
}

@test "node2 reports the tunnelled connections as their destination: counts and bytes exact, bytes while open" {
	o0=$(dsum istio_tcp_connections_opened_total)
	c0=$(dsum istio_tcp_connections_closed_total)
	r0=$(dsum istio_tcp_received_bytes_total)
	s0=$(dsum istio_tcp_sent_bytes_total)
	lab exec -n zt sleep-0 -- curl -s --max-time 30 -H 'Connection: close' -o /dev/null \
		-w 'SIZES %{size_request} %{size_header} %{size_download}\n' \
		"http://httpbin.zt:8000/get?[1-20]" >"$TMPD/dest.out"
	sent=$(awk '/^SIZES/ { s += $2 } END { print s }' "$TMPD/dest.out")
	recv=$(awk '/^SIZES/ { r += $3 + $4 } END { print r }' "$TMPD/dest.out")
	for _ in $(seq 20); do
		[ "$(($(dsum istio_tcp_connections_closed_total) - c0))" -eq 20 ] && break
		sleep 0.1
	done
	do=$(($(dsum istio_tcp_connections_opened_total) - o0))
	dc=$(($(dsum istio_tcp_connections_closed_total) - c0))
	dr=$(($(dsum istio_tcp_received_bytes_total) - r0))
	ds=$(($(dsum istio_tcp_sent_bytes_total) - s0))
	echo "client sent $sent received $recv; destination: opened $do closed $dc received $dr sent $ds"
	[ "$do" -eq 20 ]
	[ "$dc" -eq 20 ]
	[ "$dr" -eq "$sent" ]
	[ "$ds" -eq "$recv" ]
	# a connection that stays open: its bytes are there before it closes
	r0=$(dsum istio_tcp_received_bytes_total)
	c0=$(dsum istio_tcp_connections_closed_total)
	lab exec -n zt sleep-0 -- /usr/bin/python3 -c '
import socket, sys, time
s = socket.create_connection(("10.96.30.10", 8000), timeout=5)
req = b"GET /get HTTP/1.1\r\nHost: httpbin\r\nX-Pad: " + b"x" * 50000 + b"\r\n\r\n"
s.sendall(req)
s.recv(65536)
print("open", len(req), flush=True)
time.sleep(6)' >"$TMPD/open.out" 2>&1 &
	pid=$!
	for _ in $(seq 50); do grep -q "^open" "$TMPD/open.out" && break; sleep 0.1; done
	sleep 0.3
	dr=$(($(dsum istio_tcp_received_bytes_total) - r0))
	dc=$(($(dsum istio_tcp_connections_closed_total) - c0))
	want=$(awk '/^open/ { print $2 }' "$TMPD/open.out")
	echo "while open: received $dr of $want, closed $dc"
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	[ "$dc" -eq 0 ]
	[ "$dr" -eq "$want" ]
}

@test "agent ports: a mesh workload's connect to its node's 15001/15006/15008 is refused; nothing else is" {
	a0=$(stat_of node1 agent_port)
	for port in 15001 15006 15008; do
		run lab exec -n zt sleep-0 -- curl -s --max-time 2 "http://10.244.255.1:$port/"
		echo "zt -> node1:$port: $status"
		[ "$status" -eq 7 ] # refused at connect (EPERM), not a timeout
	done
	[ "$(($(stat_of node1 agent_port) - a0))" -eq 3 ]
	# another node's listeners: no captured origin, no agent identity: nothing answers
	for port in 15001 15006 15008; do
		run lab exec -n legacy sleep-0 -- curl -s --max-time 2 "http://10.244.255.2:$port/"
		[ "$status" -ne 0 ]
	done
	# plaintext to 15008 from outside any pod (the node itself) fails the TLS handshake
	run ip netns exec "bm-$LAB-node1" curl -s --max-time 3 http://10.244.255.2:15008/
	[ "$status" -ne 0 ]
	grep -q "tunnel: rejected 10.244.255.1:[0-9]*: TLS handshake failed" "$LOG2"
}

@test "agent ports: 15020/15021 on the nodes are open to pods (an in-cluster Prometheus scrapes them)" {
	a0=$(stat_of node1 agent_port)
	# the lab's agents serve metrics on loopback: stand-ins on the nodes' addresses
	for n in 1 2; do
		for port in 15020 15021; do
			mkdir -p "$TMPD/www$n$port" && echo "node$n:$port" >"$TMPD/www$n$port/metrics"
			setsid ip netns exec "bm-$LAB-node$n" /usr/bin/python3 -m http.server -b "10.244.255.$n" \
				-d "$TMPD/www$n$port" "$port" >/dev/null 2>&1 </dev/null &
			echo $! >>"$TMPD/scrape.pids"
		done
	done
	for n in 1 2; do
		for port in 15020 15021; do
			for ns in zt legacy; do
				out=""
				for _ in $(seq 30); do
					out=$(lab exec -n "$ns" sleep-0 -- curl -s --max-time 2 "http://10.244.255.$n:$port/metrics") && break
					sleep 0.1
				done
				echo "$ns -> node$n:$port: $out"
				[ "$out" = "node$n:$port" ]
			done
		done
	done
	xargs kill <"$TMPD/scrape.pids" 2>/dev/null || true
	[ "$(stat_of node1 agent_port)" -eq "$a0" ]
}

# openssl s_client from node1 (not a pod) to node2's tunnel with a given client cert.
s_client() { # CERT KEY
	local ip
	ip=$(pod_ip zt httpbin-0)
	echo | ip netns exec "bm-$LAB-node1" timeout 5 openssl s_client -connect 10.244.255.2:15008 \
		-servername "$ip.pod.bpfmesh" -cert "$1" -key "$2" \
		-CAfile "/run/bpfmesh/lab/$LAB/ca/ca.crt" >"$TMPD/s_client.out" 2>&1 || true
}

@test "identity: a client certificate from another CA is rejected" {
	bm ca init --dir "$TMPD/otherca" >/dev/null
	bm ca issue --dir "$TMPD/otherca" --id spiffe://cluster.local/ns/zt/sa/sleep \
		--cert "$TMPD/o.crt" --key "$TMPD/o.key" >/dev/null
	s_client "$TMPD/o.crt" "$TMPD/o.key"
	sleep 0.3
	grep "tunnel: rejected" "$LOG2" | tail -3
	grep -q "tunnel: rejected .*: TLS handshake failed: unable to get local issuer certificate" "$LOG2"
}

@test "identity: an expired client certificate is rejected" {
	bm ca issue --dir "/run/bpfmesh/lab/$LAB/ca" --id spiffe://cluster.local/ns/zt/sa/sleep \
		--ttl 3600 --not-before-offset -7200 --cert "$TMPD/e.crt" --key "$TMPD/e.key" >/dev/null
	s_client "$TMPD/e.crt" "$TMPD/e.key"
	sleep 0.3
	grep -q "tunnel: rejected .*: TLS handshake failed: certificate has expired" "$LOG2"
}

@test "identity: a certificate of another trust domain is rejected" {
	bm ca issue --dir "/run/bpfmesh/lab/$LAB/ca" --id spiffe://evil.example/ns/zt/sa/sleep \
		--cert "$TMPD/t.crt" --key "$TMPD/t.key" >/dev/null
	s_client "$TMPD/t.crt" "$TMPD/t.key"
	sleep 0.3
	grep -q "tunnel: rejected .*: client spiffe://evil.example/ns/zt/sa/sleep: trust domain evil.example is not cluster.local" "$LOG2"
}

@test "AuthorizationPolicy: allow by principal" {
	set_policy "$FIX/mtls/allow-principal.yaml"
	run get zt sleep-0 http://httpbin.zt:8000/get
	[[ "$output" == *'"pod": "httpbin-0"'* ]]
	run get ext sleep-0 http://httpbin.zt:8000/get
	[ "$status" -ne 0 ]
	grep -q "tunnel: denied spiffe://cluster.local/ns/ext/sa/sleep .* -> zt/httpbin-0:8080: no ALLOW policy matched" "$LOG2"
}

@test "AuthorizationPolicy: deny by namespace, with the policy's name in the log" {
	set_policy "$FIX/mtls/deny-ns.yaml"
	run get ext sleep-0 http://httpbin.zt:8000/get
	[ "$status" -ne 0 ]
	grep -q "tunnel: denied spiffe://cluster.local/ns/ext/sa/sleep .*denied by policy zt/httpbin-deny-ext" "$LOG2"
	run get zt sleep-0 http://httpbin.zt:8000/get
	[[ "$output" == *'"pod": "httpbin-0"'* ]]
}

@test "AuthorizationPolicy: deny by ipBlock (tunnel and kernel paths)" {
	ip=$(pod_ip zt sleep-0)
	lip=$(pod_ip legacy sleep-0)
	cat >"$TMPD/deny-ip.yaml" <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-ip, namespace: zt}
spec:
  action: DENY
  rules:
    - from: [{source: {ipBlocks: ["$ip/32", "$lip"]}}]
EOF
	set_policy "$TMPD/deny-ip.yaml"
	run get zt sleep-0 http://httpbin.zt:8000/get
	[ "$status" -ne 0 ]
	run get ext sleep-0 http://httpbin.zt:8000/get
	[[ "$output" == *'"pod": "httpbin-0"'* ]]
	# plaintext to the PERMISSIVE pod: the kernel on node2 drops the SYN
	before=$(stat_of node2 authz_deny)
	run get legacy sleep-0 http://httpbin-p.zt:8000/get
	[ "$status" -ne 0 ]
	[ "$(stat_of node2 authz_deny)" -gt "$before" ]
	run bm observe --node "$LAB-node2" --verdict deny
	[[ "$output" == *"deny   $lip -> zt/httpbin-p-0:8080 by AuthorizationPolicy zt/deny-ip"* ]]
}

@test "AuthorizationPolicy: spec {} denies all, rules [{}] allows all" {
	set_policy "$FIX/mtls/allow-nothing.yaml"
	run get zt sleep-0 http://httpbin.zt:8000/get
	[ "$status" -ne 0 ]
	run get legacy sleep-0 http://httpbin-p.zt:8000/get
	[ "$status" -ne 0 ]
	set_policy "$FIX/mtls/allow-all.yaml"
	run get zt sleep-0 http://httpbin.zt:8000/get
	[[ "$output" == *'"pod": "httpbin-0"'* ]]
	run get legacy sleep-0 http://httpbin-p.zt:8000/get
	[[ "$output" == *'"pod": "httpbin-p-0"'* ]]
}

@test "AuthorizationPolicy: DENY beats ALLOW; AUDIT changes nothing" {
	rm -f "$CFG"/AuthorizationPolicy.*
	lab apply -f "$FIX/mtls/allow-all.yaml" -f "$FIX/mtls/deny-zt.yaml" >/dev/null
	sleep 0.5
	run get zt sleep-0 http://httpbin.zt:8000/get
	[ "$status" -ne 0 ]
	set_policy "$FIX/mtls/audit.yaml"
	run get zt sleep-0 http://httpbin.zt:8000/get
	[[ "$output" == *'"pod": "httpbin-0"'* ]]
	grep -q "tunnel: audit: spiffe://cluster.local/ns/zt/sa/sleep .* matched AUDIT policy zt/audit-all" "$LOG2"
	set_policy
}

serial_of() { openssl x509 -noout -serial -in "$1" | cut -d= -f2; }

@test "rotation (10 s TTL): an open connection survives two rotations; new ones get the new cert" {
	pem=/run/bpfmesh/$LAB-node2/certs/zt_httpbin.pem
	first=$(serial_of "$pem")
	# one keep-alive connection, a request every 2 s for 12 s (two renewals at 5 s each)
	run lab exec -n zt sleep-0 -- python3 - <<'EOF'
import socket, time
s = socket.create_connection(("10.96.30.10", 8000), timeout=5)
ok = 0
for i in range(7):
    s.sendall(b"GET /get HTTP/1.1\r\nHost: httpbin\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise SystemExit("closed by the server after %d responses" % ok)
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < n:
        d = s.recv(65536)
        if not d:
            raise SystemExit("closed mid-body after %d responses" % ok)
        body += d
    ok += b'"pod": "httpbin-0"' in body
    time.sleep(2)
print("ok", ok)
EOF
	echo "$output"
	[[ "$output" == *"ok 7"* ]]
	now=$(serial_of "$pem")
	[ "$now" != "$first" ]
	[ "$(grep -c "certs: spiffe://cluster.local/ns/zt/sa/httpbin serial" "$LOG2")" -ge 3 ]
	# a new connection is served with the certificate now in force
	ip=$(pod_ip zt httpbin-0)
	bm ca issue --dir "/run/bpfmesh/lab/$LAB/ca" --id spiffe://cluster.local/ns/zt/sa/sleep \
		--cert "$TMPD/c.crt" --key "$TMPD/c.key" >/dev/null
	echo | ip netns exec "bm-$LAB-node1" timeout 5 openssl s_client -connect 10.244.255.2:15008 \
		-servername "$ip.pod.bpfmesh" -cert "$TMPD/c.crt" -key "$TMPD/c.key" \
		-CAfile "/run/bpfmesh/lab/$LAB/ca/ca.crt" 2>/dev/null | openssl x509 -noout -serial >"$TMPD/served"
	served=$(cut -d= -f2 "$TMPD/served")
	cur=$(serial_of "$pem")
	echo "served $served in force $cur first $first"
	[ "$served" = "$cur" ]
	[ "$served" != "$first" ]
}

@test "a server presenting the wrong SPIFFE ID is refused; STRICT holds while node2's agent is down" {
	lab agent stop node2 # the lab's supervisor leaves it down until `lab agent start`
	# nothing plaintext gets in while the agent is down
	run get legacy sleep-0 http://httpbin.zt:8000/get
	[ "$status" -ne 0 ]
	run get zt sleep-0 http://httpbin.zt:8000/get
	[ "$status" -ne 0 ]
	# an impostor on node2's tunnel port, with a valid mesh certificate of another identity
	bm ca issue --dir "/run/bpfmesh/lab/$LAB/ca" --id spiffe://cluster.local/ns/zt/sa/impostor \
		--cert "$TMPD/i.crt" --key "$TMPD/i.key" >/dev/null
	ip netns exec "bm-$LAB-node2" openssl s_server -accept 10.244.255.2:15008 -cert "$TMPD/i.crt" \
		-key "$TMPD/i.key" -CAfile "/run/bpfmesh/lab/$LAB/ca/ca.crt" -Verify 1 -quiet \
		>/dev/null 2>&1 &
	srv=$!
	sleep 0.5
	run get zt sleep-0 http://httpbin.zt:8000/get
	kill "$srv"
	wait "$srv" || true
	[ "$status" -ne 0 ]
	grep -q "server presented identity spiffe://cluster.local/ns/zt/sa/impostor, want spiffe://cluster.local/ns/zt/sa/httpbin" "$LOG1"
	# the agent comes back: new connections work again
	lab agent start node2 >/dev/null
	for i in $(seq 50); do
		out=$(get zt sleep-0 http://httpbin.zt:8000/get 2>/dev/null) && break
		sleep 0.2
	done
	[[ "$out" == *'"pod": "httpbin-0"'* ]]
	run get legacy sleep-0 http://httpbin.zt:8000/get
	[ "$status" -ne 0 ]
}

node1_metric() { # SERIES: node1's value of that exact series
	lab_metrics node1 | awk -v s="$1" '$1 == s { print $2 }'
}

@test "the tunnel pools: 5 connections ride one HTTP/2 connection, no handshake each" {
	hs() { echo $(($(node1_metric 'bpfmesh_tunnel_handshakes_total{kind="full"}') + $(node1_metric 'bpfmesh_tunnel_handshakes_total{kind="resumed"}'))); }
	get zt sleep-0 http://httpbin.zt:8000/get >/dev/null
	h0=$(hs)
	s0=$(node1_metric 'bpfmesh_tunnel_h2_streams_total{outcome="opened"}')
	for i in 1 2 3 4 5; do get zt sleep-0 http://httpbin.zt:8000/get >/dev/null; done
	h1=$(hs)
	s1=$(node1_metric 'bpfmesh_tunnel_h2_streams_total{outcome="opened"}')
	echo "handshakes $h0 -> $h1, streams $s0 -> $s1"
	[ "$s1" -eq $((s0 + 5)) ]
	# a certificate rotation (10 s TTL here) starts one new pooled connection at most
	[ "$((h1 - h0))" -le 1 ]
}

# node2's agent is stopped and a python3-h2 HBONE server (tests/integration/ztunnel_peer.py)
# takes its 15008 with httpbin's certificate from the lab CA: a ztunnel on another node
zt_peer() { # ARGS...: start it, wait until it listens
	bm ca issue --dir "/run/bpfmesh/lab/$LAB/ca" --id spiffe://cluster.local/ns/zt/sa/httpbin \
		--cert "$TMPD/zt.crt" --key "$TMPD/zt.key" >/dev/null
	lab agent stop node2
	ip netns exec "bm-$LAB-node2" /usr/bin/python3 "$BATS_TEST_DIRNAME/ztunnel_peer.py" \
		--listen 10.244.255.2:15008 --cert "$TMPD/zt.crt" --key "$TMPD/zt.key" \
		--ca "/run/bpfmesh/lab/$LAB/ca/ca.crt" "$@" >"$TMPD/ztpeer.log" 2>&1 &
	echo $! >"$TMPD/ztpeer.pid"
	for _ in $(seq 50); do
		grep -q listening "$TMPD/ztpeer.log" && return 0
		sleep 0.1
	done
	return 1
}

zt_peer_end() { # stop it (if still running), bring node2's agent back
	kill "$(cat "$TMPD/ztpeer.pid")" 2>/dev/null || true
	wait "$(cat "$TMPD/ztpeer.pid")" 2>/dev/null || true
	cat "$TMPD/ztpeer.log"
	lab agent start node2 >/dev/null
	for _ in $(seq 50); do
		get zt sleep-0 http://httpbin.zt:8000/get 2>/dev/null | grep -q '"pod": "httpbin-0"' && return 0
		sleep 0.2
	done
	return 1
}

@test "HBONE to the destination pod's own address: a ztunnel in the pod's namespace (python3-h2, in-pod mode) gets the CONNECT; no fallback to the node's address" {
	bm ca issue --dir "/run/bpfmesh/lab/$LAB/ca" --id spiffe://cluster.local/ns/zt/sa/httpbin \
		--cert "$TMPD/zt.crt" --key "$TMPD/zt.key" >/dev/null
	lab agent stop node2
	# PERMISSIVE httpbin-p-0: with no agent of ours there, its 15008 is whoever listens in it
	# (both families on one socket, as a ztunnel's)
	ip netns exec "bm-$LAB-zt-httpbin-p-0" /usr/bin/python3 "$BATS_TEST_DIRNAME/ztunnel_peer.py" \
		--listen "[::]:15008" --cert "$TMPD/zt.crt" --key "$TMPD/zt.key" \
		--ca "/run/bpfmesh/lab/$LAB/ca/ca.crt" --secs 20 >"$TMPD/zpod.log" 2>&1 &
	zpod=$!
	for _ in $(seq 50); do grep -q listening "$TMPD/zpod.log" && break; sleep 0.1; done
	out=$(get zt sleep-0 http://httpbin-p.zt:8000/get) || true
	out6=$(get zt sleep-0 "http://[$(pod_ip6 zt httpbin-p-0)]:8080/get") || true
	kill "$zpod" 2>/dev/null || true
	wait "$zpod" 2>/dev/null || true
	lab agent start node2 >/dev/null
	echo "$out"
	echo "IPv6: $out6"
	cat "$TMPD/zpod.log"
	[[ "$out" == *'"pod": "ztunnel-played"'* ]]
	grep -q " stream 1 method CONNECT authority $(pod_ip zt httpbin-p-0):8080 " "$TMPD/zpod.log"
	# IPv6: to the pod's IPv6 15008, ztunnel's bracketed authority and quoted Forwarded
	[[ "$out6" == *'"pod": "ztunnel-played"'* ]]
	grep -q " method CONNECT authority \[$(pod_ip6 zt httpbin-p-0)\]:8080 forwarded for=\"\[$(pod_ip6 zt sleep-0)\]\" " "$TMPD/zpod.log"
}
# (before the tests that play an agent of an earlier version on node2's own 15008: after
# them node1 dials node2's address for 60 s)

@test "HBONE over HTTP/2 to a ztunnel (python3-h2 server): ztunnel's authority, forwarded, baggage, traceparent; one TLS connection for 5" {
	zt_peer
	for i in 1 2 3 4 5; do
		out=$(get zt sleep-0 http://httpbin.zt:8000/get) || true
		echo "$out"
		[[ "$out" == *'"pod": "ztunnel-played"'* ]] || { zt_peer_end; false; }
	done
	zt_peer_end
	log=$TMPD/ztpeer.log
	# an agent of an earlier version (no listener in the pod) is reached at its node's 15008
	grep -q "tunnel: $(pod_ip zt httpbin-0):15008 refused (no HBONE listener in the pod); 10.244.255.2:15008 for 60 s" "$LOG1"
	grep -q "^conn 1 alpn h2 client spiffe://cluster.local/ns/zt/sa/sleep$" "$log"
	[ "$(grep -c "^conn [0-9]* alpn h2 " "$log")" -le 2 ] # (a rotation: one more at most)
	[ "$(grep -c " stream [0-9]* method CONNECT " "$log")" -eq 5 ]
	ip=$(pod_ip zt httpbin-0)
	src=$(pod_ip zt sleep-0)
	while read -r line; do
		[[ "$line" == *" authority $ip:8080 forwarded for=$src baggage k8s.cluster.name=Kubernetes,k8s.namespace.name=zt,k8s.deployment.name=sleep,service.name=sleep,service.version=latest traceparent "* ]]
		[[ "$line" =~ traceparent\ 00-[0-9a-f]{32}-[0-9a-f]{16}-00\ protocol\ -\ path\ -$ ]]
	done < <(grep " method CONNECT " "$log")
	# a new trace for every connection
	[ "$(grep -o 'traceparent [^ ]*' "$log" | sort -u | wc -l)" -eq 5 ]
}

@test "HBONE over HTTP/2: 101 connections held at once take two pooled connections (100 streams each at most)" {
	zt_peer --hold --secs 30
	lab exec -n zt sleep-0 -- /usr/bin/python3 -c '
import socket, time
ss = []
for i in range(101):
    s = socket.create_connection(("httpbin.zt", 8000), timeout=5)
    s.sendall(b"x")
    ss.append(s)
time.sleep(6)
for s in ss:
    s.close()
' &
	holder=$!
	for _ in $(seq 50); do
		active=$(node1_metric bpfmesh_tunnel_h2_streams_active)
		[ "${active:-0}" -ge 101 ] && break
		sleep 0.1
	done
	echo "streams active on node1: $active"
	wait "$holder" || { zt_peer_end; false; }
	sleep 1
	zt_peer_end
	[ "$active" -ge 101 ]
	for _ in $(seq 50); do # every stream is gone once its connection is
		active=$(node1_metric bpfmesh_tunnel_h2_streams_active)
		[ "$active" -eq 0 ] && break
		sleep 0.1
	done
	[ "$active" -eq 0 ]
	log=$TMPD/ztpeer.log
	[ "$(grep -c " stream [0-9]* method CONNECT " "$log")" -eq 101 ]
	for n in $(awk '$1 == "conn" && $3 == "stream" { print $2 }' "$log" | sort | uniq -c | awk '{ print $1 }'); do
		[ "$n" -le 100 ]
	done
	[ "$(grep -c "^conn [0-9]* alpn h2 " "$log")" -ge 2 ]
}

@test "HBONE over HTTP/2: a stream the peer refused unprocessed (GOAWAY below it) starts again on a new connection" {
	zt_peer --goaway-first
	out=$(get zt sleep-0 http://httpbin.zt:8000/get) || true
	echo "$out"
	zt_peer_end
	log=$TMPD/ztpeer.log
	grep -q "^conn 1 goaway below stream 1$" "$log"
	# the client saw nothing of it: its connection went on the next TLS connection
	[[ "$out" == *'"pod": "ztunnel-played"'* ]]
	[[ "$out" == *'"conn": 2'* ]]
	[ "$(grep -c " stream [0-9]* method CONNECT " "$log")" -eq 1 ]
}
# (before the HTTP/1.1 fallback test: node1 then speaks HTTP/1.1 to node2's 15008 for 60 s)

@test "HBONE: a peer that does not select h2 (an earlier agent) gets HTTP/1.1 CONNECT" {
	zt_peer --no-alpn
	out=$(get zt sleep-0 http://httpbin.zt:8000/get) || true
	echo "$out"
	zt_peer_end
	[[ "$out" == *'"h1": true'* ]]
	grep -q "^conn [0-9]* h1 CONNECT $(pod_ip zt httpbin-0):8080 HTTP/1.1$" "$TMPD/ztpeer.log"
	grep -q "tunnel: 10.244.255.2:15008 does not speak HBONE over HTTP/2; HTTP/1.1 CONNECT to it for 60 s" "$LOG1"
}

@test "metrics label tunnelled traffic mutual_tls, with SPIFFE principals" {
	get zt sleep-0 http://httpbin.zt:8000/get >/dev/null
	m=$(curl -s "$(lab status | sed -n 's/^node node1 .*metrics \(http[^ ]*\).*/\1/p')")
	echo "$m" | grep 'istio_tcp_connections_opened_total.*destination_workload="httpbin"' | head -2
	echo "$m" | grep 'istio_tcp_connections_opened_total{.*source_principal="spiffe://cluster.local/ns/zt/sa/sleep".*destination_workload="httpbin".*destination_principal="spiffe://cluster.local/ns/zt/sa/httpbin".*connection_security_policy="mutual_tls"'
	# same-node and plaintext series keep "none" and unknown principals
	echo "$m" | grep 'istio_tcp_connections_opened_total{.*source_workload="sleep",source_workload_namespace="legacy".*connection_security_policy="none"'
}

@test "graph marks the tunnelled edge mTLS and a plaintext one plaintext" {
	get zt sleep-0 http://httpbin.zt:8000/get >/dev/null
	run bm graph --node "$LAB-node1" --format json --window 0
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *'{"source":"zt/sleep","destination":"zt/httpbin",'*'"mtls":true}'* ]]
	[[ "$output" == *'{"source":"legacy/sleep",'*'"mtls":false}'* ]]
	run bm graph --node "$LAB-node1" --format dot --window 0
	[[ "$output" == *'"zt/sleep" -> "zt/httpbin"'*'mTLS"'*'style=bold'* ]]
}

@test "bring your own certificates: node2's agent serves cert-manager-layout files" {
	ca=/run/bpfmesh/lab/$LAB/ca # plays the role of cert-manager's issuer
	d=$TMPD/byo
	mkdir -p "$d/zt/httpbin"
	bm ca issue --dir "$ca" --id spiffe://cluster.local/ns/zt/sa/httpbin \
		--cert "$d/zt/httpbin/tls.crt" --key "$d/zt/httpbin/tls.key" >/dev/null
	cp "$ca/ca.crt" "$d/zt/httpbin/ca.crt"
	cp "$ca/ca.crt" "$d/ca.crt"
	pid=$(bm status --node "$LAB-node2" | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')
	mapfile -d '' args <"/proc/$pid/cmdline"
	lab agent stop node2 >/dev/null
	# the same agent, with certificates from files instead of the lab's CA service
	for i in "${!args[@]}"; do
		[ "${args[$i]}" = --ca-addr ] && args[i]=--certs-dir && args[i + 1]=$d
		[ "${args[$i]}" = --node-cert ] && unset "args[$i]" "args[$((i + 1))]"
	done
	setsid "${args[@]}" >>"$LOG2" 2>&1 </dev/null &
	byo=$!
	for i in $(seq 50); do
		out=$(get zt sleep-0 http://httpbin.zt:8000/get 2>/dev/null) && break
		sleep 0.2
	done
	[[ "$out" == *'"pod": "httpbin-0"'* ]]
	ip=$(pod_ip zt httpbin-0)
	echo | ip netns exec "bm-$LAB-node1" timeout 5 openssl s_client -connect 10.244.255.2:15008 \
		-servername "$ip.pod.bpfmesh" -cert "$TMPD/c.crt" -key "$TMPD/c.key" \
		-CAfile "$ca/ca.crt" 2>/dev/null | openssl x509 -noout -serial >"$TMPD/served"
	kill "$byo"
	for i in $(seq 50); do kill -0 "$byo" 2>/dev/null || break; sleep 0.1; done
	echo "served $(cat "$TMPD/served"), file $(serial_of "$d/zt/httpbin/tls.crt")"
	[ "$(cut -d= -f2 "$TMPD/served")" = "$(serial_of "$d/zt/httpbin/tls.crt")" ]
	grep -q "certificates from files" "$LOG2"
	lab agent start node2 >/dev/null # the lab's own agent again
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
