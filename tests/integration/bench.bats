#!/usr/bin/env bats
# A few seconds of `make bench` (BENCH_QUICK=1): proves the benchmark runs end to end on this
# machine and that its numbers are sane; the full run writes docs/benchmarks.md.
load helpers

@test "make bench smoke run: every row measured, ejection inside the failing connect" {
	run env BENCH_QUICK=1 BENCH_OUT=/dev/null "$BATS_TEST_DIRNAME/../../scripts/bench.sh"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"failing connect -> backend ejected"* ]]
	[[ "$output" == *"| next connect after the failure lands on a healthy backend | 3/3 |"* ]]
	# ejection happened before the failing connect() returned: ratio below 1
	ratio=$(grep 'failing connect -> backend ejected' <<<"$output" | awk -F'|' '{ print $5 }')
	awk -v r="$ratio" 'BEGIN { exit !(r > 0 && r < 1) }'
	[[ "$output" =~ connect4\ run\ time,\ 10\ services\ \|\ [0-9]+\ ns/call ]]
	[[ "$output" =~ apply\ 1000\ services,\ 10000\ endpoints.*\|\ [0-9]+\ ms ]]
}

@test "bench leaves nothing behind" {
	run leftovers bench
	[ -z "$output" ]
	[ ! -e /sys/fs/bpf/bpfmesh/bench-scale ]
}
