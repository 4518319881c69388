#!/usr/bin/env bats
# A smoke run of `make bench` (scripts/bench.sh --quick, about a minute): proves the whole suite
# runs end to end on this machine (lab, servers, haproxy pairs, every path and measurement, the
# targets, the markdown), with every number sane. The full run writes docs/benchmarks.md.
load helpers

# labs bn, bna, bnm are made by scripts/bench.sh

@test "make bench smoke run: every row, every path, targets, markdown" {
	out_md="$BATS_TEST_TMPDIR/benchmarks.md"
	run env BENCH_OUT="$out_md" timeout 240 "$BATS_TEST_DIRNAME/../../scripts/bench.sh" --quick
	echo "$output"
	[ "$status" -eq 0 ]
	# the paths table: every metric row, a number for every built path, n/a for the others
	for row in "ping-pong RTT p50" "ping-pong RTT p90" "ping-pong RTT p99 " "ping-pong RTT p99.9" \
		"1,000 msg/s RTT p50" "1,000 msg/s RTT p99 " "1,000 msg/s RTT p99.9" \
		"10,000 msg/s RTT p50" "10,000 msg/s RTT p99 " "10,000 msg/s RTT p99.9" \
		"connections/s" "throughput" "CPU ms per 1,000 requests" "peak RSS MB" \
		"ping-pong p50 by round"; do
		grep -qF "| $row" <<<"$output" || { echo "missing row: $row"; false; }
	done
	[[ "$output" == *"| metric | direct | kernel | accel | haproxy | direct-x | mtls | haproxy-mtls |"* ]]
	# no step failed (the churn rows count failed connections: 0 is checked below)
	if grep "failed" <<<"$output" | grep -v '^| churn'; then false; fi
	# ping-pong p50: a number of microseconds for direct, kernel, haproxy, direct-x, haproxy-mtls
	p50=$(grep '^| ping-pong RTT p50' <<<"$output")
	for col in 3 4 6 7 9; do
		v=$(awk -F'|' -v c="$col" '{ print $c }' <<<"$p50")
		[[ "$v" =~ ^\ [0-9]+\.[0-9]+ ]] || { echo "column $col: $v"; false; }
	done
	# accel and mtls: measured when built, said so when not
	for col in 5 8; do
		v=$(awk -F'|' -v c="$col" '{ print $c }' <<<"$p50")
		[[ "$v" =~ ^\ [0-9]+\.[0-9]+ || "$v" == " n/a (not built) " ]]
	done
	# the haproxy pair costs CPU and memory; the agent's RSS is measured
	[[ "$(grep '^| peak RSS MB' <<<"$output" | awk -F'|' '{ print $6 }')" =~ [0-9]+\.[0-9] ]]
	[[ "$(grep '^| peak RSS MB' <<<"$output" | awk -F'|' '{ print $4 }')" =~ [0-9]+\.[0-9] ]]
	# every target has a verdict
	for t in "kernel path p50 within 3%" "connection rate >= 95%" "accel p50 <= 0.8x" \
		"connect4 <= 300 ns" "services applied < 1 s" "weight change in force < 5 ms" \
		"mtls added p50" "mtls added p99" "mtls throughput" "agent RSS <= 20 MB with" \
		"agent memory at" "churn: 20 weight changes" "churn: p99 file write"; do
		grep -F "$t" <<<"$output" | grep -qE '\| (met|\*\*missed\*\*|n/a) \|$' ||
			{ echo "no verdict: $t"; false; }
	done
	# ejection still inside the failing connect; connect4 and apply measured
	[[ "$output" == *"| next connect after the failure lands on a healthy backend | 3/3 |"* ]]
	ratio=$(grep 'failing connect -> backend ejected' <<<"$output" | awk -F'|' '{ print $5 }')
	awk -v r="$ratio" 'BEGIN { exit !(r > 0 && r < 1) }'
	[[ "$output" =~ connect4\ run\ time,\ 10\ services\ \|\ [0-9]+\ ns/call ]]
	[[ "$output" =~ apply\ 200\ services,\ 2000\ endpoints.*\|\ [0-9]+\ ms ]]
	# every program a connection runs: its time per call; and each one's size
	for p in sockops "inbound check" "egress guard"; do
		[[ "$output" =~ ${p}[^|]*run\ time[^|]*\|\ [0-9]+\ /\ [0-9]+\ ns/call ]] ||
			{ echo "no per-call row: $p"; false; }
	done
	for p in connect4 sockops ingress egress; do
		[[ "$output" =~ \|\ $p\ \|\ [0-9]+\ \|\ [0-9]+\ \|\ [0-9]+\ \| ]] || { echo "no size: $p"; false; }
	done
	# churn: connections made, none failed or misrouted
	[[ "$output" =~ churn:\ 20\ weight\ changes.*\|\ ([0-9]+)\ connections,\ 0\ failed,\ 0\ on\ a\ backend ]]
	[ "${BASH_REMATCH[1]}" -gt 100 ]
	# the markdown went to the temp path, never to docs/, with the machine and the tables
	[[ "$output" == *"wrote $out_md"* ]]
	grep -q '^\*\*Machine\*\*: .*cores' "$out_md"
	grep -q 'Debian [0-9]' "$out_md"
	grep -qF '| ping-pong RTT p50 (us) |' "$out_md"
	grep -qF '## Targets' "$out_md"
	grep -qF 'sockperf ping-pong --tcp' "$out_md"
}

@test "bench leaves nothing behind" {
	for l in bn bna bnm; do
		run leftovers $l
		[ -z "$output" ]
	done
	[ ! -e /sys/fs/bpf/bpfmesh/bn-scale ]
	[ ! -d "$(cg2)/bpfmesh-bn-scale" ]
	for p in "haproxy -db -q -f /tmp/bpfmesh-bench\." "sockperf server --tcp -i 0.0.0.0 -p 11111" \
		"iperf3 -s -p 5201"; do
		run pgrep -af "$p"
		echo "$output"
		[ "$status" -ne 0 ]
	done
}
