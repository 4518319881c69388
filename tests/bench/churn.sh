#!/bin/bash
# churn.sh BM LAB NODE CHANGES RATE WORK: the churn run of `make bench` (section 5), in a lab
# that is up (scripts/bench.sh: its 10,000 filler services applied). Applies
# tests/bench/churn.yaml, then, while client-0 opens connection after connection to the churn
# Service, rewrites its VirtualService CHANGES times at RATE per second in the lab's config
# directory (each write an atomic rename, as an editor or `kubectl cp` would); every
# connection must land on a subset allowed by a config in force around its connect, none may
# fail. Prints one line: connections= failed= wrong_backend= unjudged= writes= applies=
# in_force= p50_ms= p99_ms= max_ms= (write -> in force, from the agent's log, inotify
# included; unjudged: connections around which every subset could have been in force).
set -euo pipefail
cd "$(dirname "$0")/../.."
BM=$1 LAB=$2 NODE=$3 N=$4 RATE=$5 WORK=$6
PY=/usr/bin/python3
dir=/run/bpfmesh/lab/$LAB
log=$dir/agent-$NODE.log
mkdir -p "$WORK"
"$BM" lab apply --name "$LAB" -f tests/bench/churn.yaml >/dev/null
[ -f "$dir/config/VirtualService.bench.churn.yaml" ] || { echo "churn.sh: no churn VirtualService in $dir/config" >&2; exit 1; }
secs=$(awk -v n="$N" -v r="$RATE" 'BEGIN { printf "%.1f", n / r + 3 }')
off=$(stat -c %s "$log")
client=
# shellcheck disable=SC2317 # run by the trap
cleanup() {
	[ -n "$client" ] && kill "$client" 2>/dev/null
	"$BM" lab delete --name "$LAB" -f tests/bench/churn.yaml >/dev/null 2>&1 || true
}
trap cleanup EXIT
timeout $((${secs%.*} + 30)) "$BM" lab exec --name "$LAB" -n bench client-0 -- \
	"$PY" tests/bench/churn_client.py 10.96.50.40 80 "$secs" >"$WORK/conns" &
client=$!
sleep 1
"$PY" tests/bench/churn.py write "$dir/config" "$N" "$RATE" "$WORK/writes"
wait "$client"
client=
"$PY" tests/bench/churn.py check "$WORK/writes" "$WORK/conns" "$log" "$off"
