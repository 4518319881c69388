#!/bin/bash
# Runs every suite after `make all unit bpftest` and ends with one line
# "N passed, N failed, N skipped" over all of them (CI reads only that line). Called by
# `make test`.
#   C unit tests (ASan+UBSan)    build/unit/test_*        last line "<suite>: N passed, N failed,
#                                                         N skipped"
#   BPF program tests             build/bpftest/test_*     same
#   Istio conformance corpus      tests/conformance.sh     same
#   fuzz targets (libFuzzer)      tests/fuzz/run.sh        same, FUZZ_SECS each (default 15)
#   lint (shellcheck)             every bats suite and shell script, one test per file
#   integration (bats, real netns/cgroups/agents)  tests/integration/*.bats  (TAP ok/not ok;
#                                 "ok ... # skip" counts as skipped); then the suites of
#                                 KUBE_SUITES again with BPFMESH_TEST_KUBE_API=1: their labs
#                                 run with --kube-api, the agents on the watch path
# Set SUITES="unit bpf conformance fuzz lint integration" to run a part.
set -u
cd "$(dirname "$0")/.." || exit 1
SUITES=${SUITES:-unit bpf conformance fuzz lint integration}
KUBE_SUITES=${KUBE_SUITES:-traffic mtls l4match gateway ratelimit tracing}
passed=0
failed=0
skipped=0
log=$(mktemp -d /tmp/bpfmesh-tests.XXXXXX)
trap 'rm -rf "$log"' EXIT

# adds "<suite>: N passed, N failed[, N skipped]" from file $1; a missing line is one failure
count_line() {
	local line
	line=$(grep -E '^[a-z0-9-]+: [0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		failed=$((failed + 1))
		echo "  (no result line: counted as one failure)"
		return
	fi
	passed=$((passed + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
	failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
	case $line in
	*skipped*) skipped=$((skipped + $(echo "$line" | sed -E 's/.* ([0-9]+) skipped.*/\1/'))) ;;
	esac
}

run_bin() { # suite binary
	echo "== $1: $2"
	"$2" >"$log/out" 2>&1
	local rc=$?
	grep -E '^(not ok|[a-z0-9-]+: [0-9]+ passed)' "$log/out"
	[ $rc -ne 0 ] && grep -vE '^(ok|not ok) ' "$log/out" | tail -n 40
	count_line "$log/out"
}

for s in $SUITES; do
	case $s in
	unit) for t in build/unit/test_*; do [ -x "$t" ] && run_bin unit "$t"; done ;;
	bpf) for t in build/bpftest/test_*; do [ -x "$t" ] && run_bin bpf "$t"; done ;;
	conformance) run_bin conformance tests/conformance.sh ;;
	fuzz)
		echo "== fuzz: tests/fuzz/run.sh ${FUZZ_SECS:-15}"
		tests/fuzz/run.sh "${FUZZ_SECS:-15}" >"$log/out" 2>&1
		grep -E '^(ok|not ok|fuzz: |  fuzz_)' "$log/out"
		grep -q '^not ok' "$log/out" && tail -n 40 "$log/out"
		count_line "$log/out"
		;;
	lint)
		echo "== lint: shellcheck"
		if ! command -v shellcheck >/dev/null; then
			echo "not ok - shellcheck is not installed (scripts/deps.sh installs it)"
			failed=$((failed + 1))
			continue
		fi
		for f in tests/integration/*.bats tests/integration/helpers.bash scripts/*.sh \
			tests/*.sh tests/fuzz/run.sh; do
			if shellcheck -x "$f" >"$log/out" 2>&1; then
				passed=$((passed + 1))
			else
				echo "not ok - shellcheck $f"
				head -n 40 "$log/out"
				failed=$((failed + 1))
			fi
		done
		;;
	integration)
		# every suite reading files, then the lab suites named in KUBE_SUITES again with
		# the agents watching the test API server (lab up --kube-api)
		for t in tests/integration/*.bats $(for k in $KUBE_SUITES; do echo "kube-api:tests/integration/$k.bats"; done); do
			echo "== integration: $t"
			case $t in
			kube-api:*) BPFMESH_TEST_KUBE_API=1 bats --tap "${t#kube-api:}" >"$log/out" 2>&1 ;;
			*) bats --tap "$t" >"$log/out" 2>&1 ;;
			esac
			grep -E '^(ok|not ok)' "$log/out"
			# each failed test with the lines bats printed for it (its output, the teardown's
			# logs), up to 120 a test
			awk '/^(ok|not ok) /{ f = /^not ok/; n = 0; if (f) print "--- " $0; next } /^1\.\./{ next }
			     f && n++ < 120' "$log/out"
			s=$(grep -ciE '^ok .* # skip' "$log/out")
			p=$(($(grep -cE '^ok ' "$log/out") - s))
			f=$(grep -cE '^not ok ' "$log/out")
			if [ "$p" = 0 ] && [ "$f" = 0 ] && [ "$s" = 0 ]; then
				tail -n 20 "$log/out"
				f=1
			fi
			passed=$((passed + p))
			failed=$((failed + f))
			skipped=$((skipped + s))
		done
		;;
	esac
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
