#!/bin/bash
# `make bench`: a benchmark suite, bpfmesh against no mesh and against a pair of haproxy
# "sidecars" (the stand-in for Envoy), every number next to a baseline from the same run.
#   0. paths (tests/bench/paths.sh): latency (ping-pong; 1,000 and 10,000 msg/s open loop),
#      connection rate, throughput, CPU per request and peak RSS over direct / kernel / accel /
#      haproxy / direct-x / mtls / haproxy-mtls, alternating paths in every round
#   1. outlier ejection: time from a failing connect to the backend being out of rotation
#   2. per-call run time (kernel.bpf_stats_enabled) of the programs every connection runs:
#      connect4, sockops, the inbound check (cgroup_skb ingress) and the egress guard, with 10
#      and with 10,000 services; and each program's size (xlated/jited, verifier-processed)
#   3. apply time: 10,000 services with 100,000 endpoints; then one weight change
#   4. the API watch at scale (tests/bench/kube_scale.sh): 5,000 Services and 10,000 Pods from
#      the test API server, time to the first config in force and peak RSS, against the same
#      objects read from files in the same run
#   5. churn (tests/bench/churn.sh): in the lab holding the 10,000 filler services, 100 weight
#      changes at 10 per second written into its config directory while client-0 connects
#      continuously: failed connections, connections on a backend no config in force allowed,
#      and the time from file write to in force (p50/p99)
#   HTTP (scripts/bench_http.sh, run after the paths, in a lab of its own): keep-alive HTTP/1.1
#      with wrk over direct / kernel / the agent's HTTP path (same node, and cross-node through
#      the mTLS tunnel) / a haproxy `mode http` pair; CPU per request, RSS at 1,000 connections
# Prints the tables and writes docs/benchmarks.md (BENCH_OUT overrides). BENCH_QUICK=1 or
# --quick: a smoke run of about a minute, 1 round of 1 s per measurement, written to a temp file
# (or BENCH_OUT), never to docs/. Every load is bounded (timeout); the labs, servers and
# haproxies are torn down on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${BENCH_QUICK:-0}
[ "${1:-}" = --quick ] && QUICK=1
BM=${BENCH_BM:-$PWD/${BUILD:-build}/bpfmesh} # `make BUILD=DIR bench` runs DIR/bpfmesh
LAB=${BENCH_LAB:-bn}
LAB_ACCEL=""
LAB_MTLS=""
LAB_HTTP=${LAB}h
PY=/usr/bin/python3
PROBE=$PWD/tests/bench/probe.py
TRIALS=$([ "$QUICK" = 1 ] && echo 3 || echo 15)
CONNS=$([ "$QUICK" = 1 ] && echo 200 || echo 2000)
NSVC=$([ "$QUICK" = 1 ] && echo 200 || echo 10000)
NEP=$((NSVC * 10))
D=$([ "$QUICK" = 1 ] && echo 1 || echo 3)      # seconds per path measurement
ROUNDS=$([ "$QUICK" = 1 ] && echo 1 || echo 3) # rounds over every path
work=$(mktemp -d /tmp/bpfmesh-bench.XXXXXX)
if [ "$QUICK" = 1 ]; then OUT=${BENCH_OUT:-$work/benchmarks.md}; else OUT=${BENCH_OUT:-docs/benchmarks.md}; fi
stats_was=$(cat /proc/sys/kernel/bpf_stats_enabled)
CG=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
started=()
pids_add() { started+=("$@"); }

cleanup() {
	local p
	for p in "${started[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.2
	for p in "${started[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for l in $LAB $LAB_ACCEL $LAB_MTLS $LAB_HTTP; do
		$BM lab down --name "$l" >/dev/null 2>&1 || true
	done
	# the HTTP lab's bpffs (scripts/bench_http.sh removes it itself unless it was killed)
	local hfs=/run/bpfmesh-bench/bpffs-$LAB_HTTP
	if mountpoint -q "$hfs"; then umount "$hfs" || true; fi
	rmdir "$hfs" /run/bpfmesh-bench 2>/dev/null || true
	$BM uninstall --node "$LAB-scale" >/dev/null 2>&1 || true
	rmdir "$CG/bpfmesh-$LAB-scale" 2>/dev/null || true
	echo "$stats_was" > /proc/sys/kernel/bpf_stats_enabled
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
$BM lab down --name "$LAB" >/dev/null 2>&1 || true

inpod() { $BM lab exec --name "$LAB" -n bench client-0 -- "$@"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
source tests/bench/common.sh
source tests/bench/paths.sh

# Optional paths: measured when the agent / CLI has them, "n/a (not built)" otherwise.
# (usage texts exit non-zero: read them whole, not through a pipefail pipeline)
accel_flag=()
agent_help=$($BM agent --help 2>&1 || true)
if [[ $agent_help == *--accel* ]]; then
	accel_flag=(--accel off) # the kernel path is the one without acceleration
	LAB_ACCEL=${LAB}a
fi
lab_help=$($BM lab 2>&1 || true)
# the kernel and accel paths are same-node: no tunnel either way, but keep those labs plain
[[ $lab_help == *--mtls* ]] && accel_flag+=(--mtls off)
$BM ca --help >/dev/null 2>&1 && LAB_MTLS=${LAB}m
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)

# ---- 0. paths ----
$BM lab up --name "$LAB" "${accel_flag[@]}" -f tests/bench/bench.yaml >/dev/null
perf_endpoint "$LAB"
servers_up "$LAB"
if [ -n "$LAB_ACCEL" ]; then
	$BM lab down --name "$LAB_ACCEL" >/dev/null 2>&1 || true
	$BM lab up --name "$LAB_ACCEL" --accel on "${accel_flag[@]:2}" -f tests/bench/bench.yaml \
		>/dev/null
	perf_endpoint "$LAB_ACCEL"
	servers_up "$LAB_ACCEL"
fi
if [ -n "$LAB_MTLS" ]; then
	# mesh mTLS: STRICT PeerAuthentication for the namespace (Istio's way to require it),
	# plus --mtls on when the lab has such a switch
	mtls_flag=()
	[[ $lab_help == *--mtls* ]] && mtls_flag=(--mtls on)
	$BM lab down --name "$LAB_MTLS" >/dev/null 2>&1 || true
	$BM lab up --name "$LAB_MTLS" "${mtls_flag[@]}" -f tests/bench/bench.yaml \
		-f tests/bench/mtls.yaml >/dev/null
	perf_endpoint "$LAB_MTLS"
	servers_up "$LAB_MTLS"
fi
sidecars_up
paths_setup
paths_run
paths_report=$(paths_table)
rss_path=$([ -n "$LAB_MTLS" ] && echo mtls || echo kernel)
agent_rss=$(med "$rss_path" rss)
NHOLD_MTLS=1000
mtls_hold="- - 0 0"
[ -z "${NA[mtls]:-}" ] && mtls_hold=$(hold_tunnelled $NHOLD_MTLS)
read -r mh_before mh_during mh_held mh_est <<<"$mtls_hold"
for l in $LAB_ACCEL $LAB_MTLS; do $BM lab down --name "$l" >/dev/null; done
t_paths=$(($(date +%s) - t_start))

# ---- HTTP paths: a lab of its own, compared with the paths' kernel rows ($work/res) ----
http_report=$(BENCH_BM=$BM BENCH_HTTP_LAB=$LAB_HTTP BENCH_QUICK=$QUICK BENCH_HTTP_MD=$work/http.md \
	BENCH_PATHS_RES=$work/res scripts/bench_http.sh) || {
	http_report="HTTP paths: failed (scripts/bench_http.sh exit $?)"
	printf '## HTTP paths\n\n%s\n' "$http_report" > "$work/http.md"
}

pin=/sys/fs/bpf/bpfmesh/$LAB-node1

# ---- 1. ejection ----
$BM lab stop --name "$LAB" -n bench web-1 >/dev/null
: > "$work/eject"
# each trial starts from fresh hosts: otherwise Envoy's backoff makes every ejection longer
clear_health() {
	bpftool map dump pinned "$pin/bm_health" -j | $PY -c '
import json, sys
for e in json.load(sys.stdin):
    print(" ".join(e["key"]))' | while read -r k; do
		# shellcheck disable=SC2086 # the key's bytes are separate words
		bpftool map delete pinned "$pin/bm_health" key $k
	done
}
for i in $(seq "$TRIALS"); do
	clear_health
	read -r t0 t1 ok next_ok < <(inpod "$PY" "$PROBE" fail 10.96.50.10 80)
	at=$(bpftool map dump pinned "$pin/bm_health" -j | $PY -c '
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
$BM lab start --name "$LAB" -n bench web-1 >/dev/null

# ---- 2. per-call cost of the programs every connection runs ----
echo 1 > /proc/sys/kernel/bpf_stats_enabled
HOT="connect4 sockops ingress egress"
declare -A prog_id
for p in $HOT; do
	prog_id[$p]=$(bpftool link show pinned "$pin/link_bm_$p" -j | $PY -c 'import json,sys; print(json.load(sys.stdin)["prog_id"])')
done
prog_stats() { bpftool prog show id "${prog_id[$1]}" -j | $PY -c 'import json,sys; p=json.load(sys.stdin); print(p.get("run_time_ns",0), p.get("run_cnt",0))'; }
# prog_size P: xlated instructions, jited bytes, verifier-processed instructions
# (the kernel's bpf_prog_info, read by tests/bench/proginfo.py: this bpftool prints no
# verified_insns)
prog_size() { $PY tests/bench/proginfo.py "${prog_id[$1]}" | awk '{ print $1, $2, $3 }'; }
# measure_hot: "APP C4 C4N SO SON IN INN EG EGN": the app's mean connect()+close() in ns over
# $CONNS connects to the web Service, then per program ns per call and calls per connection
measure_hot() {
	local p r c out
	declare -A r0 c0
	for p in $HOT; do read -r "r0[$p]" "c0[$p]" < <(prog_stats "$p"); done
	read -r out _ _ < <(inpod "$PY" "$PROBE" connects 10.96.50.10 80 "$CONNS")
	for p in $HOT; do
		read -r r c < <(prog_stats "$p")
		out+=" $(((r - r0[$p]) / (c - c0[$p] > 0 ? c - c0[$p] : 1)))"
		out+=" $(awk -v n=$((c - c0[$p])) -v k="$CONNS" 'BEGIN { printf "%.1f", n / k }')"
	done
	echo "$out"
}
measure_connect4() { # prints: ns per connect4 call, app-side mean ns, then the other programs
	local app c4 rest
	read -r app c4 _ rest < <(measure_hot)
	echo "$c4 $app $rest"
}
read -r direct_app _ _ < <(inpod "$PY" "$PROBE" connects "$($BM lab status --name "$LAB" | awk '$2 == "bench/web-0" { print $6 }')" 8080 "$CONNS")
read -r c4_small app_small so_small _ in_small _ eg_small _ < <(measure_connect4)
awk -v n="$NSVC" 'BEGIN {
	for (i = 0; i < n; i++)
		printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: filler%d, namespace: bench}\nspec:\n  clusterIP: 10.%d.%d.%d\n  selector: {app: none}\n  ports: [{port: 80}]\n", i, 104 + int(i / 65536), int(i / 256) % 256, i % 256 }' > "$work/filler.yaml"
$BM lab apply --name "$LAB" -f "$work/filler.yaml" >/dev/null
for _ in $(seq 100); do
	[ "$($BM status --node "$LAB-node1" | sed -n 's/.*generation [0-9]*, \([0-9]*\) service ports.*/\1/p')" -gt "$NSVC" ] && break
	sleep 0.2
done
read -r c4_big app_big so_big so_n in_big in_n eg_big eg_n < <(measure_connect4)
sizes=$(for p in $HOT; do read -r x j v < <(prog_size "$p"); echo "| $p | $x | $j | $v |"; done)

# ---- 3. apply at scale ----
mkdir -p "$CG/bpfmesh-$LAB-scale" "$work/cfg"
awk -v n="$NSVC" -v e="$NEP" 'BEGIN {
	print "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: s\n  labels: {istio-injection: enabled}"
	for (i = 0; i < n; i++)
		printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc%d, namespace: s}\nspec:\n  clusterIP: 10.%d.%d.%d\n  selector: {app: a%d}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n", i, 100 + int(i / 65536), int(i / 256) % 256, i % 256, i
	for (i = 0; i < e; i++)
		printf "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: we%d, namespace: s}\nspec:\n  address: 10.%d.%d.%d\n  labels: {app: a%d}\n", i, 200 + int(i / 65536), int(i / 256) % 256, i % 256, int(i * n / e) }' > "$work/cfg/big.yaml"
$BM agent --config-dir "$work/cfg" --cgroup "$CG/bpfmesh-$LAB-scale" --node "$LAB-scale" > "$work/agent.log" 2>&1 &
scale_pid=$!
pids_add $scale_pid
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
# what the agent says each apply did: "N of M objects changed, K map entries written; read A
# ms, resolve B ms, write C ms"
apply_what() { sed -n 's/.*backends; \(.*\), in [0-9]* ms$/\1/p' "$work/agent.log" | sed -n "$1p"; }
what_full=$(apply_what 1) what_weight=$(apply_what 2)
scale_rss=$(awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$scale_pid/status" 2>/dev/null || echo n/a)


# ---- 4. the API watch at scale ----
KSVC=$([ "$QUICK" = 1 ] && echo 100 || echo 5000)
KPOD=$((KSVC * 2))
tests/bench/kube_scale.sh "$BM" "$work/kube" "$CG/bpfmesh-$LAB-kube" "$LAB" "$KSVC" "$KPOD" \
	>"$work/kube.out" 2>"$work/kube.err" || cat "$work/kube.err" >&2
kf() { awk -v k="$1" -v f="$2" '$1 == k { for (i = 2; i < NF; i++) if ($i == f) print $(i + 1) }' "$work/kube.out"; }
kube_ms=$(kf kube first_ms) kube_rss=$(kf kube rss_kb) files_ms=$(kf files first_ms) files_rss=$(kf files rss_kb)

# ---- 5. churn ----
CHURN_N=$([ "$QUICK" = 1 ] && echo 20 || echo 100)
client_node=$($BM lab status --name "$LAB" | awk '$2 == "bench/client-0" { print $4 }')
churn=$(tests/bench/churn.sh "$BM" "$LAB" "$client_node" "$CHURN_N" 10 "$work/churn" 2>"$work/churn.err") ||
	{ cat "$work/churn.err" >&2; churn=""; }
cf() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$churn"; }
churn_conns=$(cf connections) churn_fail=$(cf failed) churn_bad=$(cf wrong_backend) churn_unj=$(cf unjudged)
churn_applies=$(cf applies) churn_p50=$(cf p50_ms) churn_p99=$(cf p99_ms) churn_max=$(cf max_ms)

# ---- report ----
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b ? a / b : 0 }'; }
us() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1000 }'; }
# target NAME VALUE-TEXT AWK-CONDITION [VARS...]: a row "met"/"missed" ("n/a" when a value is
# missing or the path is not built)
target() {
	local name=$1 text=$2 cond=$3 v verdict
	shift 3
	for v in "$@"; do
		case ${v#*=} in '' | - | n/a*) verdict="n/a" ;; esac
	done
	if [ -z "${verdict:-}" ]; then
		local -a vars=()
		for v in "$@"; do vars+=(-v "$v"); done
		verdict=$(awk "${vars[@]}" "BEGIN { print ($cond) ? \"met\" : \"**missed**\" }")
	fi
	echo "| $name | $text | $verdict |"
}
# added latency of a path over its baseline, "+12.3" (or the path's n/a text)
added() {
	case $1 in [0-9]*) awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", a - b }' ;; *) echo "$1" ;; esac
}
pp() { if [ -n "${NA[$1]:-}" ]; then echo "${NA[$1]}"; else med "$1" "$2"; fi; }
d50=$(pp direct pp_p50) k50=$(pp kernel pp_p50) a50=$(pp accel pp_p50)
dconn=$(pp direct conn) kconn=$(pp kernel conn)
x50=$(pp direct-x pp_p50) x99=$(pp direct-x pp_p99) m50=$(pp mtls pp_p50) m99=$(pp mtls pp_p99)
h50=$(pp haproxy-mtls pp_p50) h99=$(pp haproxy-mtls pp_p99)
mt=$(pp mtls tput) ht=$(pp haproxy-mtls tput)
mconn=$(pp mtls conn) hconn=$(pp haproxy-mtls conn) xconn=$(pp direct-x conn)
nsvc_txt=$(printf "%'d" "$NSVC")
targets=$(
	echo "| target | measured | verdict |"
	echo "|---|---|---|"
	target "kernel path p50 within 3% of direct (ping-pong)" "$k50 vs $d50 us" "k <= 1.03 * d" k="$k50" d="$d50"
	target "kernel path connection rate >= 95% of direct" "$kconn vs $dconn /s" "k >= 0.95 * d" k="$kconn" d="$dconn"
	target "accel p50 <= 0.8x direct (ping-pong)" "$a50 vs $d50 us" "a <= 0.8 * d" a="$a50" d="$d50"
	target "connect4 <= 300 ns at $nsvc_txt services" "$c4_big ns/call" "c <= 300" c="$c4_big"
	target "$nsvc_txt services applied < 1 s" "$apply_full ms" "a < 1000" a="$apply_full"
	target "weight change in force < 5 ms" "$apply_weight ms" "a < 5" a="$apply_weight"
	target "agent memory at $nsvc_txt services, $NEP endpoints <= 100 MB" "$scale_rss MB (VmHWM)" "r <= 100" r="$scale_rss"
	target "churn: $CHURN_N weight changes at 10/s, $nsvc_txt services: no failed or misrouted connection" \
		"${churn_fail:-n/a} failed, ${churn_bad:-n/a} on a backend not in force, of ${churn_conns:-n/a}" \
		"f == 0 && b == 0 && n > 0" f="$churn_fail" b="$churn_bad" n="$churn_conns"
	target "churn: p99 file write -> in force < 5 ms" "${churn_p99:-n/a} ms" "p < 5" p="$churn_p99"
	target "mtls added p50 <= half of haproxy-mtls's (over direct-x)" "$(added "$m50" "$x50") vs $(added "$h50" "$x50") us" \
		"m - x <= 0.5 * (h - x)" m="$m50" h="$h50" x="$x50"
	target "mtls added p99 <= half of haproxy-mtls's (over direct-x)" "$(added "$m99" "$x99") vs $(added "$h99" "$x99") us" \
		"m - x <= 0.5 * (h - x)" m="$m99" h="$h99" x="$x99"
	target "mtls connection rate >= 10x haproxy-mtls" "$mconn vs $hconn /s" "m >= 10 * h" m="$mconn" h="$hconn"
	target "mtls connection rate >= 0.8x direct-x" "$mconn vs $xconn /s" "m >= 0.8 * x" m="$mconn" x="$xconn"
	target "mtls throughput >= 1.5x haproxy-mtls" "$mt vs $ht Gbit/s" "m >= 1.5 * h" m="$mt" h="$ht"
	target "agent RSS <= 20 MB with $NHOLD_MTLS tunnelled connections (mtls lab, largest agent)" \
		"$(awk -v k="$mh_during" 'BEGIN { printf "%.1f", k / 1024 }') MB with $mh_held held ($mh_est at srv-0), $(awk -v k="$mh_before" 'BEGIN { printf "%.1f", k / 1024 }') MB before; peak (VmHWM) $agent_rss MB" \
		"r <= 20 * 1024 && h >= n" r="$mh_during" h="$mh_held" n="$NHOLD_MTLS"
	target "API watch: $KPOD pods, $KSVC services in force < 10 s, RSS < 2x files" \
		"$kube_ms ms, $((${kube_rss:-0} / 1024)) MB" "t < 10000 && r < 2 * f" t="$kube_ms" r="$kube_rss" f="$files_rss"
)
report=$(cat <<R
| measurement | value | baseline (same run) | ratio |
|---|---|---|---|
| failing connect -> backend ejected (median of $TRIALS) | $(us "$ej_med") us after connect() started | the failing connect() itself: $(us "$fail_med") us | $(ratio "$ej_med" "$fail_med") |
| worst of $TRIALS | $(us "$ej_max") us | | |
| next connect after the failure lands on a healthy backend | $next_ok_all | | |
| connect4 run time, 10 services | $c4_small ns/call | app connect()+close() via service: $(us "$app_small") us | $(ratio "$c4_small" "$app_small") |
| connect4 run time, $NSVC more services | $c4_big ns/call | same, $(us "$app_big") us | $(ratio "$c4_big" "$app_big") |
| sockops run time, 10 / $NSVC more services | $so_small / $so_big ns/call, $so_n calls per connection (both ends) | | |
| inbound check (cgroup_skb ingress) run time, 10 / $NSVC more services | $in_small / $in_big ns/call, $in_n packets per connection | | |
| egress guard (cgroup_skb egress) run time, 10 / $NSVC more services | $eg_small / $eg_big ns/call, $eg_n packets per connection | | |
| app connect()+close(): service vs pod address | $(us "$app_small") us | direct to the pod: $(us "$direct_app") us | $(ratio "$app_small" "$direct_app") |
| apply $NSVC services, $NEP endpoints (parse+validate+resolve+maps) | $apply_full ms ($what_full) | | |
| then one weight change (the big file unchanged, not parsed again; $written service rewritten) | $apply_weight ms ($what_weight) | full apply | $(ratio "$apply_weight" "$apply_full") |
| agent peak RSS (VmHWM) after both | $scale_rss MB | | |
| churn: $CHURN_N weight changes at 10/s in the lab with $NSVC filler services, client-0 connecting throughout | ${churn_conns:-n/a} connections, ${churn_fail:-n/a} failed, ${churn_bad:-n/a} on a backend no config in force allowed (${churn_unj:-n/a} unjudged: every version possible around them); ${churn_applies:-n/a} applies | | |
| churn: file write -> in force (inotify, read, resolve, maps) | p50 ${churn_p50:-n/a} ms, p99 ${churn_p99:-n/a} ms, max ${churn_max:-n/a} ms | | |
| API watch: agent start to first config in force, $KSVC Services + $KPOD Pods | $kube_ms ms | the same objects from files: $files_ms ms | $(ratio "$kube_ms" "$files_ms") |
| API watch: agent peak RSS then | $((${kube_rss:-0} / 1024)) MB | from files: $((${files_rss:-0} / 1024)) MB | $(ratio "$kube_rss" "$files_rss") |
R
)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
t_total=$(($(date +%s) - t_start))
echo "## Paths (median of $ROUNDS round(s) of ${D} s per measurement; ratio to direct, or to direct-x for cross-node paths)"
echo "$paths_report"
echo
echo "## Targets"
echo "$targets"
echo
echo "$http_report"
echo
echo "## Ejection, connect4, apply"
echo "$report"
echo
echo "## Program sizes"
echo "| program | xlated insns | jited bytes | verifier-processed insns |"
echo "|---|---|---|---|"
echo "$sizes"
echo
echo "load average before/after: $load_before / $load_after; paths ${t_paths} s, total ${t_total} s"

busy=$(awk -v a="${load_before%% *}" -v n="$(nproc)" 'BEGIN { print (a > 0.3 * n) ? 1 : 0 }')
cat > "$OUT" <<D
# Benchmarks

Produced by \`make bench\` (scripts/bench.sh$([ "$QUICK" = 1 ] && echo ", smoke run: BENCH_QUICK=1")) on $(date -u +%Y-%m-%d).
Re-run with \`make bench\` (about $((t_total / 60 + 1)) minutes); every ratio is against a
baseline measured in the same run.

**Machine**: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores,
$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), Debian $(cat /etc/debian_version),
sockperf $(sockperf --version 2>&1 | awk '/version/ { print $NF; exit }' | tr -d '#=' ), $(haproxy -v | awk 'NR == 1 { print "HAProxy " $3 }'),
$(iperf3 --version | awk 'NR == 1 { print $1, $2 }'), $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }').
Load average before / after the run: $load_before / $load_after.
$([ "$busy" = 1 ] && echo "**The machine was not idle**: other developers' builds and tests shared its $(nproc) cores
during this run, so the tails (p99, p99.9) carry their noise; paths alternate inside every round,
so each ratio compares paths that saw the same load." || echo "The machine looked idle (load average below 0.3 per core) when the run started; other
developers share it, so some noise in the tails is theirs.")

## Paths

$ROUNDS round(s); in each, every measurement runs for every path in turn (direct, kernel, accel,
haproxy, direct-x, mtls, haproxy-mtls) before the next measurement, for ${D} s each. Cells are
medians over the rounds, with the ratio to \`direct\` (same node) or to \`direct-x\` (client on
node2) in brackets. The last row shows each round's ping-pong p50, to show drift.

$paths_report

- **direct**: a plain process in client-0's network namespace, not in its cgroup, so no
  bpfmesh program runs for it; it dials srv-0's pod address. **direct-x**: the same from
  clientx-0 on node2 (through the fabric).
- **kernel**: client-0 in the mesh (\`bpfmesh lab exec\`), dialing Service VIPs (10.96.50.20 for
  sockperf and iperf3, 10.96.50.30:80 for HTTP) that connect4 turns into srv-0's address.$([ -n "$LAB_ACCEL" ] && echo "
  Agent run with \`--accel off\`.")
- **accel**: as kernel, in a second lab brought up with \`--accel on\` (same-node acceleration).
  $([ -n "$LAB_ACCEL" ] || echo "Not measured: this build's agent has no \`--accel\`.")
- **mtls**: clientx-0 (node2) in the mesh of a third lab with a STRICT PeerAuthentication
  (tests/bench/mtls.yaml), to the perf VIP on srv-0 (node1). $([ -n "$LAB_MTLS" ] || echo "Not measured: this build has no \`bpfmesh ca\`.")
- **haproxy**: client-0 -> haproxy in client-0's netns (127.0.0.1:16111) -> haproxy in srv-0's
  netns (:15111) -> 127.0.0.1 of srv-0. Both haproxy processes are single-threaded
  (\`nbthread 1\`), TCP mode, outside the mesh's cgroups. **haproxy-mtls**: the same pair from
  clientx-0 (node2), with TLS between the two: client side \`server s1 ADDR ssl crt client.pem
  ca-file ca.crt verify required\`, server side \`bind :PORT ssl crt server.pem ca-file ca.crt
  verify required\`; ECDSA P-256 certificates made with the openssl CLI for the run.
- Servers, all in srv-0 (a mesh pod, its netns and cgroup): \`sockperf server --tcp -i 0.0.0.0 -p
  11111\`, \`iperf3 -s -p 5201\`, and the lab's echo HTTP server on 8080.
- Commands, run by each path's client: \`ip netns exec bm-$LAB-bench-client-0 CMD\` (direct,
  haproxy; clientx-0 for direct-x, haproxy-mtls), \`bpfmesh lab exec --name $LAB -n bench client-0
  -- CMD\` (kernel; accel and mtls in their labs); ADDR/PORT are the path's:
  - ping-pong: \`sockperf ping-pong --tcp -i ADDR -p PORT -t $D -m 64 --full-rtt\`
  - open loop: \`sockperf under-load --tcp -i ADDR -p PORT -t $D -m 64 --full-rtt --mps 1000|10000
    --reply-every 1\` (every message answered; sockperf's 400 ms warm-up is not counted)
  - connection rate: \`wrk -t1 -c4 -d${D}s -H "Connection: close" http://ADDR/\`: every
    request is a new connection (connect, one HTTP exchange, close), 4 at a time; the number
    is wrk's Requests/sec
  - throughput: \`iperf3 -c ADDR -p PORT -t $D -J\`, one stream, received bits/s
- **CPU**: user + system time of the bpfmesh agents of the lab (every node) or of the haproxy
  pair, during the 10,000 msg/s run, per 1,000 answered messages. The agent's share is what
  the control plane costs; the BPF programs run inside the application's own syscalls and are
  in the latency rows (and in section connect4 below). **RSS**: VmHWM at the end of the paths,
  the largest agent of the lab / the sum of the haproxy pair (an agent's peak is its start:
  loading the BPF objects, the kernel's BTF among them). **With $NHOLD_MTLS tunnelled
  connections** (the mtls target): VmRSS of the mtls lab's largest agent while clientx-0 holds
  $NHOLD_MTLS idle keep-alive connections to srv-0's echo server through the tunnel
  (tests/bench/hold.py: each answered one GET), each a CONNECT stream on the pooled TLS
  connection between the two agents.

## Targets

$targets

$(cat "$work/http.md")

## Ejection, connect4, apply

$report

Program sizes (the hot programs, as loaded; \`bpftool prog show\` bytes_xlated / 8, bytes_jited,
verified_insns), so that a change that grows one shows here:

| program | xlated insns | jited bytes | verifier-processed insns |
|---|---|---|---|
$sizes

- **Ejection** (circuit breaking, target under 1 ms). It happens in sockops when the refused
  SYN's RST arrives, before \`connect()\` returns to the application: the delay from the start of
  the failing connect to the ejection is smaller than the failing connect itself (ratio < 1),
  and the very next connect goes to a healthy backend. Each trial starts from a fresh host (the
  bench clears outlier state), since Envoy's backoff lengthens back-to-back ejections.
- **Per-call cost**: each program's own run time from \`kernel.bpf_stats_enabled\`
  (\`bpftool prog show\` run_time_ns / run_cnt of connect4, sockops, the cgroup_skb ingress
  check and the egress guard), over $CONNS connects to the web Service from client-0 (server
  web-0/1 on the same node, so sockops and the packet hooks run for both ends), before and
  after $NSVC filler services are applied. It does not grow with the number of services (hash
  lookups). connect4 keeps its record in the socket's own storage (\`bm_sock\`, freed with the
  socket: no delete at close, no sweep), and creating that storage is most of its time: on
  this VM a connect that is not to a service (no record) measures about 300 ns, one to a
  service without the record about 450 ns, and the record adds 600-1,000 ns, as a preallocated
  hash insert keyed by the socket cookie did (measured side by side with the same probe; the
  map work of one connection is listed in docs/architecture.md). The packet hooks read the headers straight from the packet
  (bm_parse_direct) and leave at once for what is not a connection opening.
- **Apply**: an agent of its own (\`--node $LAB-scale\`) reads $NSVC Services and $NEP
  WorkloadEntries; the time is the agent's own "applied config ... in N ms" (parse, validate,
  resolve, map writes). Then a VirtualService changing one service's weights is added; its time
  is the same log line for the second apply. The big file is not parsed again (its objects
  come from the trees the config in force keeps), but every object is still validated and
  built again and every service resolved again: that is most of the time left. What would
  close it: keep the built objects and the resolved table between applies and redo only the
  services the changed objects touch. The agent's memory is mostly those kept trees and the
  objects (about 4 KB per object all told).
- **Churn**: \`tests/bench/churn.sh\` applies tests/bench/churn.yaml (a Service with four
  one-pod versions) to the lab that holds the $NSVC filler services (one file each in its
  config directory, as \`lab apply\` writes them), then rewrites the churn VirtualService
  $CHURN_N times at 10 per second (atomic renames; version k sends every connection to subset
  v((k mod 4) + 1)) while client-0 opens connection after connection and records when each
  connect ran and which version answered. Each connection is judged against the configs that
  were in force around its connect (from the agent's log: when each apply saw the change and
  when it was in force; a version written before it had read its files may be in it); one
  routed to a version no such config allowed counts as misrouted, one around which every
  version could have been in force as unjudged (said in the table). Writes that come faster than applies are
  coalesced, as the agent does: a write's latency is until the first apply that read it.
- **API watch**: \`tests/bench/kube_scale.sh\` serves $KSVC Services and $KPOD Pods (Ready,
  owned by ReplicaSets, with the fields a kubelet writes) from the test API server
  (tests/kubeapi/fake-apiserver.py, which has read them all before the clock starts) and
  starts an agent with \`--kubeconfig\`: the time from its start to "applied config" (load and
  attach, list every kind in chunks of 500, parse, resolve, map writes) and its peak RSS
  (VmHWM). The baseline is an agent reading the same objects as files, in the same run. Pods
  are kept trimmed to what the mesh reads (no env, no managedFields, only the Ready
  condition).
- **Connection rate, kernel vs direct**: each new connection runs connect4 (the record created
  in the socket's storage), sockops at connect, establish and close at both ends (counters,
  flow-log events) and the packet hooks on every segment (see the per-call rows): a few
  microseconds of kernel work per connection on this VM, 5-10% of the ~90 us a wrk connection
  takes here; runs have landed between 0.89x and 1.09x of direct.
- **mtls vs haproxy-mtls**: both relay every byte through two userspace processes with
  OpenSSL, one thread each. Ours carries each connection as an HTTP/2 CONNECT stream on a
  pooled TLS connection (HBONE, as ztunnel), so a new connection costs no handshake and no
  \`SSL_new\`: a HEADERS frame each way; haproxy pays a resumed TLS 1.3 handshake per
  connection. What bounds each number that misses (perf on both agents, \`perf record -g -p
  AGENT1,AGENT2\`, and \`strace -c\`, in the mtls lab):
  - *where the agent sits*: in the node's network namespace, so both plaintext hops (the pod
    to the agent's 15001, the agent to the pod) cross a veth and the node's bridge (with
    bridge netfilter) each way, where the haproxy pair sits inside the pods' namespaces and
    talks to them over loopback. Under iperf3 the agents' samples are 67% kernel (TCP over
    veth and the bridge, copies, softirq wake-ups), 18% AES-GCM (libcrypto), 9% libc (buffer
    moves of the HTTP/2 framing), 1.5% nghttp2, 1% our code; reads and writes are ~50 KB
    each, so it is not syscall count. This bounds throughput and adds to both latencies.
    ztunnel's in-pod mode keeps its sockets in the pod's namespace for this reason: the
    outbound listener and the delivery socket there (not done yet) is the next step for
    these rows.
  - *connection rate*: the kernel, not TLS: write(2) (23% of the agents' samples under wrk
    \`Connection: close\`: TCP transmit and the receiving side's softirq), connect(2) (13%),
    shutdown(2) (8%); framing and TLS are a few percent. Each application connection is two
    new TCP connections (client to agent, agent to pod; the TLS connection between the agents
    is pooled) where direct-x makes one, each crossing the bridge, so 0.8x direct-x is out of
    reach for a relay in the node's namespace.
  - *per byte*: AES-GCM and two copies through userspace on each side; kTLS with
    \`splice\` would keep the bytes in the kernel, and this VM's kernel has \`CONFIG_TLS\` off.
D
echo "wrote $OUT"
