# helpers.bash: shared by the integration suites. Each suite runs one lab named $LAB and tears
# it down in teardown_file, even when tests fail; leftovers (netns, cgroups, pins, processes)
# are checked by the suite's last test.
BM="${BPFMESH_BIN:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/build/bpfmesh}" # BPFMESH_BIN: test another build
export FIX="$BATS_TEST_DIRNAME/fixtures" # the suites' YAML

bm() { "$BM" "$@"; }
lab() { local sub=$1; shift; "$BM" lab "$sub" --name "$LAB" "$@"; }

# Each lab pins in a bpffs of its own (the agents mount it), so that no suite sees another's
# pins or leaves any in /sys/fs/bpf: suite_bpffs LAB prints where, pins LAB NODE a node's pins.
suite_bpffs() { echo "/run/bpfmesh-test/bpffs-$1"; }
pins() { echo "$(suite_bpffs "$1")/bpfmesh/$1-$2"; }
# lab_up LAB ARGS...: bring lab LAB up on its own bpffs
lab_up() {
	local l=$1
	shift
	mkdir -p "$(suite_bpffs "$l")"
	# BPFMESH_TEST_KUBE_API=1: the suite's lab serves its objects through the test API
	# server and the agents watch it (tests/run-all.sh runs some suites both ways)
	if [ "${BPFMESH_TEST_KUBE_API:-}" = 1 ]; then set -- --kube-api "$@"; fi
	"$BM" lab up --name "$l" --bpffs "$(suite_bpffs "$l")" "$@"
}
# lab_logs_if_failed: from a suite's teardown, when the test failed, the end of every log of
# lab $LAB (agents, supervisor, test API server, CA) and the agents' status: a failure in CI
# then shows what the agents did, not only which assertion failed
lab_logs_if_failed() {
	[ -n "${BATS_TEST_COMPLETED:-}" ] && return 0
	local f
	for f in /run/bpfmesh/lab/"$LAB"/*.log; do
		[ -f "$f" ] || continue
		echo "--- the end of $f"
		tail -n 25 "$f"
	done
	"$BM" lab status --name "$LAB" 2>&1 | head -n 20
}
# lab_teardown LAB: down (if up), and its bpffs unmounted and removed
lab_teardown() {
	"$BM" lab down --name "$1" >/dev/null 2>&1 || true
	if mountpoint -q "$(suite_bpffs "$1")"; then umount "$(suite_bpffs "$1")" || true; fi
	rmdir "$(suite_bpffs "$1")" /run/bpfmesh-test 2>/dev/null || true
}
cg2() { awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts; }

# series_sum NODE METRIC LABEL=VALUE...: the sum of METRIC over node NODE's series that carry
# every label given (name="value" as the text format writes it)
series_sum() {
	local node=$1 m=$2
	shift 2
	lab_metrics "$node" | /usr/bin/python3 -c '
import sys
m, want = sys.argv[1], sys.argv[2:]
s = 0
for line in sys.stdin:
    if line.startswith(m + "{") and all(w in line for w in want):
        s += float(line.rsplit(" ", 1)[1])
print(int(s))' "$m" "$@"
}

# status_until NODE GLOB: `bpfmesh status` of node NODE of lab $LAB, asked again every 0.2 s
# until its output matches GLOB (10 s at most); the last output in $output, as `run` leaves it
status_until() {
	local _
	for _ in $(seq 50); do
		output=$("$BM" status --node "$LAB-$1" 2>&1)
		# shellcheck disable=SC2053 # GLOB is a pattern
		[[ "$output" == $2 ]] && return 0
		sleep 0.2
	done
	return 0 # the caller's assertions say what is missing
}

# the /metrics page of node NODE's agent in lab $LAB
lab_metrics() {
	local port
	port=$(lab status | sed -n "s|^node $1 .*metrics http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p")
	curl -s --max-time 5 "http://127.0.0.1:$port/metrics"
}

# curl from a pod: lab_curl POD [-n NS] URL [curl args...]
pod_curl() {
	local pod=$1 ns=$2
	shift 2
	lab exec -n "$ns" "$pod" -- curl -s --max-time 5 "$@"
}

# N new connections (Connection: close) to URL from POD; prints "V1 V2 FAILED" (counts)
split_count() {
	local pod=$1 ns=$2 url=$3 n=$4 out
	# shellcheck disable=SC2086 # CURL_EXTRA is a list of curl options
	out=$(lab exec -n "$ns" "$pod" -- curl ${CURL_EXTRA:-} -s --max-time 60 -H "Connection: close" \
		"$url?[1-$n]" -w '\n' 2>/dev/null) || true # refused connects are counted, not fatal
	local v1 v2
	v1=$(grep -c '"VERSION": "v1"' <<<"$out" || true) # grep -c exits 1 on a count of 0
	v2=$(grep -c '"VERSION": "v2"' <<<"$out" || true)
	echo "$v1 $v2 $((n - v1 - v2))"
}

# is k within 5 sigma of n*p? (p as a fraction "a/b")
within_5sigma() {
	local k=$1 n=$2 num=$3 den=$4
	awk -v k="$k" -v n="$n" -v a="$num" -v b="$den" 'BEGIN {
		p = a / b; m = n * p; sd = sqrt(n * p * (1 - p));
		d = k - m; if (d < 0) d = -d;
		ok = d <= 5 * sd; printf "k=%d expected %.1f +- %.1f\n", k, m, 5 * sd; exit ok ? 0 : 1 }'
}

# lab_down_clean LAB: the suite's last test: lab down succeeds and leaves nothing behind
# shellcheck disable=SC2154 # status and output are set by bats' run
lab_down_clean() {
	run "$BM" lab down --name "$1"
	echo "$output"
	[ "$status" -eq 0 ] || return 1
	run leftovers "$1"
	echo "$output"
	[ -z "$output" ]
}

leftovers() { # prints anything of lab $1 still around
	local l=$1 root
	root=$(cg2)
	ip netns list 2>/dev/null | grep -E "^bm-$l-" || true
	[ -d "$root/bpfmesh-$l" ] && echo "cgroup $root/bpfmesh-$l"
	ls -d /sys/fs/bpf/bpfmesh/"$l"-* "$(suite_bpffs "$l")"/bpfmesh/"$l"-* 2>/dev/null || true
	ls -d /etc/netns/bm-"$l"-* 2>/dev/null || true
	[ -d /run/bpfmesh/lab/"$l" ] && echo "state /run/bpfmesh/lab/$l"
	ls -d /run/bpfmesh/"$l"-* 2>/dev/null || true # agents' run dirs (certs/ included)
	pgrep -af "bpfmesh agent .*--node $l-" || true
	pgrep -af "bpfmesh lab supervise --name $l( |\$)" || true
	pgrep -af "bpfmesh ca serve --dir /run/bpfmesh/lab/$l/" || true
	pgrep -af "fake-apiserver.py --dir /run/bpfmesh/lab/$l/" || true
	pgrep -af "bpfmesh lab port-forward --name $l " || true
}
