#!/bin/bash
# Runs every fuzz target (build/fuzz/fuzz_*) for SECONDS each on its corpus
# (tests/fuzz/corpus/<target>/, read-only: new inputs go to a temporary directory) and ends
# with "fuzz: N passed, N failed" (a target passes when it found nothing). `make test` runs it
# for a short budget, `make fuzz` for long. A crash leaves its input in build/fuzz/crashes/.
set -u
cd "$(dirname "$0")/../.." || exit 1
secs=${1:-20}
passed=0
failed=0
work=$(mktemp -d /tmp/bpfmesh-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p build/fuzz/crashes
for bin in build/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	seeds=tests/fuzz/corpus/${name#fuzz_}
	mkdir -p "$work/$name"
	echo "== fuzz: $name for ${secs}s on $seeds"
	if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix=build/fuzz/crashes/"$name"- "$work/$name" "$seeds" \
		>"$work/$name.log" 2>&1; then
		grep -E '^stat::number_of_executed_units' "$work/$name.log" | sed "s/^/  $name /"
		echo "ok - $name"
		passed=$((passed + 1))
	else
		tail -n 30 "$work/$name.log"
		echo "not ok - $name (input saved in build/fuzz/crashes/)"
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
