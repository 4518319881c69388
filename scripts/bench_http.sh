#!/bin/bash
# bench_http.sh: the HTTP part of `make bench` (scripts/bench.sh runs it after its paths; it also
# runs alone). Keep-alive HTTP/1.1 from client pod hcli-0 (node1) to the lab's echo server
# (tests/bench/http.yaml) over every path, alternating paths inside each round:
#   direct    hsrv-0's pod address, from hcli-0's netns only (no bpfmesh program runs)
#   kernel    Service hkern (no L7 config): connect4 picks the pod, nothing in userspace
#   l7        Service hl7, whose VirtualService sets a response header: the kernel hands the
#             connect to node1's agent (HTTP path, node-ip:15006), which proxies to hsrv-0
#   haproxy   the sidecar pair: hcli-0 -> haproxy (hcli-0 netns) -> haproxy (hsrv-0 netns) ->
#             127.0.0.1:8080; both `mode http`, one thread each, outside the mesh's cgroups
#   direct-x  hsrvx-0 (node2) from hcli-0's netns: the cross-node baseline
#   l7-x      Service hl7x: node1's HTTP path, then the agents' mTLS tunnel to hsrvx-0 (node2)
#   l7-rl     Service hl7rl: the l7 path to hsrvrl-0, whose inbound has a local rate limit
#             (one token bucket taken per request, never empty)
#   l7-tr     the l7 path from client htr-0, traced at 100% (Telemetry), spans to a collector
#             that takes them (tests/integration/trace_collector.py --discard)
#   l7-trdead the same from htd-0, to a collector that accepts and never answers
# Each round runs wrk (tests/bench/wrk_report.lua prints its histogram) with 1 connection
# (latency), 16 connections (load) and 4 with "Connection: close" (connection rate), and counts
# the CPU ticks (/proc/PID/stat utime + stime) of the lab's agents or of the haproxy pair over
# each run. Then the agent's VmRSS with 1,000 idle keep-alive connections (tests/bench/hold.py)
# on the HTTP path, and the haproxy pair's with the same.
# Env: BENCH_QUICK=1 or --quick (1 round of 1 s), BENCH_HTTP_PATHS (a subset of the paths, for
# a look at one change; the targets of the others are then n/a), BENCH_BM (the bpfmesh binary; default
# $BUILD/bpfmesh, BUILD=build), BENCH_HTTP_LAB (lab name), BENCH_HTTP_MD (write the markdown
# section there), BENCH_PATHS_RES (bench.sh's per-round path results, for the kernel-path
# comparison; without it that target is n/a). Every load is bounded (wrk -d, timeout); the
# lab, the haproxies and the clients are torn down on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/bench/common.sh
QUICK=${BENCH_QUICK:-0}
[ "${1:-}" = --quick ] && QUICK=1
BM=${BENCH_BM:-$PWD/${BUILD:-build}/bpfmesh}
LAB=${BENCH_HTTP_LAB:-${BENCH_LAB:-bn}h}
BPFFS=/run/bpfmesh-bench/bpffs-$LAB
LUA=$PWD/tests/bench/wrk_report.lua
PATHS_RES=${BENCH_PATHS_RES:-}
D=$([ "$QUICK" = 1 ] && echo 1 || echo 3)      # seconds per wrk run
ROUNDS=$([ "$QUICK" = 1 ] && echo 1 || echo 5) # rounds over every path
LOADC=16                                       # connections of the load run
NHOLD=1000                                     # idle keep-alive connections for the RSS
RSS_MAX_MB=30
VIP_KERN=10.96.60.10
VIP_L7=10.96.60.20
VIP_L7X=10.96.60.30
VIP_L7RL=10.96.60.40
HP_CLI=18080 # haproxy pair: client side on 127.0.0.1 of hcli-0, server side on hsrv-0
HP_SRV=18081
work=$(mktemp -d /tmp/bpfmesh-bench.http.XXXXXX) # bench.bats looks for leftovers there
HZ=$(getconf CLK_TCK)
started=()
pids_add() { started+=("$@"); }

cleanup() {
	local p
	for p in "${started[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.2
	for p in "${started[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	# hold.py clients, started from a subshell (hold runs in $(...)): their pids are in files
	for p in "$work"/hold.*.pid; do
		if [ -s "$p" ]; then kill "$(cat "$p")" 2>/dev/null || true; fi
	done
	$BM lab down --name "$LAB" >/dev/null 2>&1 || true
	if mountpoint -q "$BPFFS"; then umount "$BPFFS" || true; fi
	rmdir "$BPFFS" /run/bpfmesh-bench 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

netns() { echo "bm-$LAB-hb-$1"; }
podip() { $BM lab status --name "$LAB" | awk -v p="hb/$1" '$2 == p { print $6 }'; }
vmkb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
res() { echo "$1 $2 $3" >> "$work/res"; }
# median over rounds of PATH METRIC, or "-"
med() {
	awk -v p="$1" -v m="$2" '$1 == p && $2 == m && $3 != "-" { print $3 }' "$work/res" | sort -g |
		awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'
}

# ---- trace collectors (a live one and a hung one) and the MeshConfig naming them ----
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TR_LIVE=$(free_port)
TR_DEAD=$(free_port)
mkdir -p "$work/spans"
/usr/bin/python3 tests/integration/trace_collector.py --port "$TR_LIVE" --dir "$work/spans" \
	--discard > "$work/collector.log" 2>&1 &
pids_add $!
/usr/bin/python3 tests/integration/trace_collector.py --port "$TR_DEAD" --dir "$work/spans" \
	--hold > "$work/collector-dead.log" 2>&1 &
pids_add $!
cat > "$work/mesh.yaml" <<Y
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
      - {name: bench-live, zipkin: {service: 127.0.0.1, port: $TR_LIVE}}
      - {name: bench-dead, zipkin: {service: 127.0.0.1, port: $TR_DEAD}}
Y

# ---- the lab ----
$BM lab down --name "$LAB" >/dev/null 2>&1 || true
mkdir -p "$BPFFS"
# --accel off: the kernel path is the one bench.sh's paths measure; mTLS on (the default) for
# the tunnel of l7-x
if ! $BM lab up --name "$LAB" --bpffs "$BPFFS" --accel off -f tests/bench/http.yaml -f "$work/mesh.yaml" \
	> "$work/up.log" 2>&1; then
	cat "$work/up.log" >&2
	exit 1
fi
SRV=$(podip hsrv-0)
SRVX=$(podip hsrvx-0)
AGENTS=$(lab_agentpids "$LAB")
AGENT1=$($BM lab status --name "$LAB" | awk '$1 == "node" && $2 == "node1" { print $6 }')
LOG1=/run/bpfmesh/lab/$LAB/agent-node1.log
LOG2=/run/bpfmesh/lab/$LAB/agent-node2.log
log1_at=$(wc -l < "$LOG1")
log2_at=$(wc -l < "$LOG2")
# which path the kernel gives each service port: "l7" when this build has the HTTP path
svcpath() {
	$BM services --node "$LAB-node1" | awk -v v="$1:80/TCP" '
		$1 == v { on = 1; next } on && $1 == "path" { print $2; exit } /^[0-9]/ { on = 0 }'
}
declare -A PRE URL BASE COST NA
PATHS=${BENCH_HTTP_PATHS:-direct kernel l7 haproxy direct-x l7-x l7-rl l7-tr l7-trdead}
[ "$(svcpath $VIP_KERN)" = kernel ] || NA[kernel]="n/a (hkern not on the kernel path)"
for v in "l7 $VIP_L7" "l7-x $VIP_L7X" "l7-rl $VIP_L7RL"; do
	[ "$(svcpath "${v#* }")" = l7 ] || NA[${v% *}]="n/a (no HTTP path in this build)"
done

# ---- the haproxy pair (mode http) ----
haproxy_up() { # NAME NETNS BIND SERVER
	local cfg=$work/$1.cfg
	cat > "$cfg" <<C
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 3s
    timeout client 60s
    timeout server 60s
listen p
    bind $3
    server s1 $4
C
	ip netns exec "$2" haproxy -db -q -f "$cfg" > "$work/$1.log" 2>&1 &
	pids_add $!
	HP_PIDS="${HP_PIDS:-} $!"
}
haproxy_up hph-srv "$(netns hsrv-0)" ":$HP_SRV" "127.0.0.1:8080"
haproxy_up hph-cli "$(netns hcli-0)" "127.0.0.1:$HP_CLI" "$SRV:$HP_SRV"
wait_listen "$(netns hsrv-0)" $HP_SRV
wait_listen "$(netns hcli-0)" $HP_CLI

inpod="$BM lab exec --name $LAB -n hb hcli-0 --"
plain="ip netns exec $(netns hcli-0)"
path() { PRE[$1]=$2 URL[$1]=$3 BASE[$1]=$4 COST[$1]=$5; } # NAME PREFIX URL BASELINE COSTPIDS
path direct "$plain" "http://$SRV:8080/" direct ""
path kernel "$inpod" "http://$VIP_KERN/" direct "$AGENTS"
path l7 "$inpod" "http://$VIP_L7/" direct "$AGENTS"
path haproxy "$plain" "http://127.0.0.1:$HP_CLI/" direct "$HP_PIDS"
path direct-x "$plain" "http://$SRVX:8080/" direct-x ""
path l7-x "$inpod" "http://$VIP_L7X/" direct-x "$AGENTS"
path l7-rl "$inpod" "http://$VIP_L7RL/" l7 "$AGENTS"
path l7-tr "$BM lab exec --name $LAB -n hb htr-0 --" "http://$VIP_L7/" l7 "$AGENTS"
path l7-trdead "$BM lab exec --name $LAB -n hb htd-0 --" "http://$VIP_L7/" l7 "$AGENTS"

# one wrk run; $1 path, $2 test: c1 (1 connection), load ($LOADC), conn (4, Connection: close)
measure() {
	local p=$1 t=$2 out c0 c1 args m
	local requests duration_us errors non2xx p50 p90 p99 p999
	case $t in
	c1) args=(-c1) ;;
	load) args=(-c"$LOADC") ;;
	conn) args=(-c4 -H "Connection: close") ;;
	esac
	c0=$(ticks "${COST[$p]}")
	# shellcheck disable=SC2086 # PRE is a command prefix
	out=$(timeout $((D + 20)) ${PRE[$p]} wrk -t1 "${args[@]}" -d"${D}s" --timeout 5s -s "$LUA" \
		"${URL[$p]}" 2>&1 | sed -n 's/^BENCH //p') || true
	c1=$(ticks "${COST[$p]}")
	if [ -z "$out" ]; then # a "-" in every row of this run, so rounds stay aligned
		for m in rps p50 p90 p99 p999; do res "$p" "${t}_$m" -; done
		return 0
	fi
	# wrk_report.lua's fields, in its order
	read -r requests duration_us errors non2xx p50 p90 p99 p999 _ \
		< <(sed -E 's/[a-z0-9_]+=//g' <<<"$out")
	res "$p" "${t}_rps" "$(awk -v n="$requests" -v d="$duration_us" \
		'BEGIN { printf "%d", n * 1e6 / d }')"
	res "$p" err "$((errors + non2xx))"
	if [ "$t" != conn ]; then
		res "$p" "${t}_p50" "$p50"; res "$p" "${t}_p90" "$p90"; res "$p" "${t}_p99" "$p99"
		res "$p" "${t}_p999" "$p999"
	fi
	[ -n "${COST[$p]}" ] || return 0
	res "$p" "${t}_cores" "$(awk -v c=$((c1 - c0)) -v hz="$HZ" -v d="$duration_us" \
		'BEGIN { printf "%.2f", c / hz / (d / 1e6) }')"
	if [ $((c1 - c0)) -gt 0 ]; then
		res "$p" "${t}_rpcpu" "$(awk -v n="$requests" -v c=$((c1 - c0)) -v hz="$HZ" \
			'BEGIN { printf "%d", n / (c / hz) }')"
	fi
}

: > "$work/res"
t_start=$(date +%s)
for r in $(seq "$ROUNDS"); do
	for t in c1 load conn; do
		for p in $PATHS; do
			[ -z "${NA[$p]:-}" ] || continue
			measure "$p" "$t"
		done
	done
	echo "bench_http: round $r of $ROUNDS done" >&2
done

# ---- memory with $NHOLD idle keep-alive connections ----
# hold PIDS NETNS SPORT PREFIX HOST PORT: VmRSS of PIDS (KB, summed) before and while PREFIX
# hold.py keeps $NHOLD connections to HOST:PORT open; prints "before during held established",
# established: the connections ss sees on local port SPORT in NETNS meanwhile
hold() {
	local pids=$1 ns=$2 sport=$3 pre=$4 host=$5 port=$6 out=$work/hold.$3 before=0 during=0 p
	local held est
	for p in $pids; do before=$((before + $(vmkb "$p" VmRSS))); done
	hold_start "$out" "$pre" "$host" "$port" "$NHOLD"
	pids_add "$HOLD_PID"
	for p in $pids; do during=$((during + $(vmkb "$p" VmRSS))); done
	held=$(awk '$1 == "holding" { print $2 }' "$out")
	est=$(ip netns exec "$ns" ss -Htn state established "( sport = :$sport )" | wc -l)
	hold_stop "$out"
	echo "$before $during ${held:-0} $est"
}
rss_l7="- - 0 0"
pod_nofile=$($inpod sh -c 'ulimit -n')
agent_nofile=$(awk '/^Max open files/ { print $4 }' "/proc/$AGENT1/limits")
[ -n "${NA[l7]:-}" ] || rss_l7=$(hold "$AGENT1" "bm-$LAB-node1" 15006 "$inpod" $VIP_L7 80)
rss_hp=$(hold "$HP_PIDS" "$(netns hcli-0)" $HP_CLI "$plain" 127.0.0.1 $HP_CLI)
t_http=$(($(date +%s) - t_start))

# ---- did the agents stay up and quiet? ----
agents_after=$(lab_agentpids "$LAB")
agent_events=$( (tail -n +$((log1_at + 1)) "$LOG1" | sed 's/^/node1: /'
	tail -n +$((log2_at + 1)) "$LOG2" | sed 's/^/node2: /') | grep -E ' (WARN|ERROR|FATAL) ' || true)
restarted=$([ "$agents_after" = "$AGENTS" ] && echo no || echo "yes ($AGENTS -> $agents_after)")

# ---- report ----
declare -A label=(
	[c1_rps]="requests/s, 1 connection" [c1_p50]="latency p50 (us), 1 connection"
	[c1_p90]="latency p90 (us), 1 connection" [c1_p99]="latency p99 (us), 1 connection"
	[load_rps]="requests/s, $LOADC connections"
	[load_p50]="latency p50 (us), $LOADC connections"
	[load_p90]="latency p90 (us), $LOADC connections"
	[load_p99]="latency p99 (us), $LOADC connections"
	[conn_rps]="connections/s (4, Connection: close)"
	[load_cores]="proxy CPU, cores busy ($LOADC connections)"
	[load_rpcpu]="requests per proxy CPU-second ($LOADC connections)"
	[c1_rpcpu]="requests per proxy CPU-second (1 connection)")
ROWS="c1_rps c1_p50 c1_p90 c1_p99 load_rps load_p50 load_p90 load_p99 conn_rps"
ROWS="$ROWS load_cores load_rpcpu c1_rpcpu"
# one cell of the table: the median, with its ratio to the path's baseline for rates and latencies
cell() {
	local p=$1 m=$2 v b
	v=$(med "$p" "$m")
	case $m in
	*_cores | *_rpcpu)
		if [ -z "${COST[$p]}" ]; then echo "none"
		elif [ "$p" = kernel ] && [ "$m" != load_cores ]; then echo "none (no proxy)"
		else echo "$v"; fi
		return
		;;
	esac
	b=$(med "${BASE[$p]}" "$m")
	if [ "$v" = - ]; then
		echo failed
	elif [ "$p" = "${BASE[$p]}" ] || [ "$b" = - ]; then
		echo "$v"
	else
		echo "$v ($(awk -v a="$v" -v b="$b" 'BEGIN { printf "%.2fx", b ? a / b : 0 }'))"
	fi
}
# all rounds' values of PATH METRIC, summed or joined with " / "
sum_of() {
	awk -v p="$1" -v m="$2" '$1 == p && $2 == m { s += $3 } END { print s + 0 }' "$work/res"
}
rounds_of() {
	awk -v p="$1" -v m="$2" '$1 == p && $2 == m { printf "%s%s", n++ ? " / " : "", $3 }' "$work/res"
}
table() {
	local head="| metric |" sep="|---|" p m line
	for p in $PATHS; do head="$head $p |"; sep="$sep---|"; done
	echo "$head"
	echo "$sep"
	for m in $ROWS err drift; do
		case $m in
		err) line="| errors (socket errors + non-2xx/3xx answers, all runs) |" ;;
		drift) line="| latency p50 by round (us, 1 connection) |" ;;
		*) line="| ${label[$m]} |" ;;
		esac
		for p in $PATHS; do
			if [ -n "${NA[$p]:-}" ]; then line="$line ${NA[$p]} |"; continue; fi
			case $m in
			err) line="$line $(sum_of "$p" err) |" ;;
			drift) line="$line $(rounds_of "$p" c1_p50) |" ;;
			*) line="$line $(cell "$p" "$m") |" ;;
			esac
		done
		echo "$line"
	done
}

# per-round ratios PATH/BASE of METRIC in a results file: "min max" (or "- -")
ratio_range() {
	awk -v p="$2" -v b="$3" -v m="$4" '
		$2 == m && $1 == p { a[++np] = $3 } $2 == m && $1 == b { c[++nb] = $3 }
		END {
			for (i = 1; i <= np && i <= nb; i++) {
				if (a[i] == "-" || c[i] == "-" || c[i] == 0) continue
				r = a[i] / c[i]; n++
				if (n == 1 || r < lo) lo = r
				if (n == 1 || r > hi) hi = r
			}
			if (n) printf "%.3f %.3f\n", lo, hi; else print "- -"
		}' "$1"
}
verdict() { # AWK-CONDITION VARS...: PASS / **FAIL**, n/a when a value is missing
	local cond=$1 v
	shift
	for v in "$@"; do
		case ${v#*=} in '' | - | n/a* | none*) echo "n/a"; return ;; esac
	done
	local -a vars=()
	for v in "$@"; do vars+=(-v "$v"); done
	awk "${vars[@]}" "BEGIN { print ($cond) ? \"PASS\" : \"**FAIL**\" }"
}
added() { # "+12" us over the baseline (or the value's own n/a text)
	case $1 in
	[0-9]*) awk -v a="$1" -v b="$2" 'BEGIN { printf "%+d", a - b }' ;;
	*) echo "$1" ;;
	esac
}
pv() { if [ -n "${NA[$1]:-}" ]; then echo "${NA[$1]}"; else med "$1" "$2"; fi; }
mb() { # KB -> "12.3" MB
	case $1 in
	[0-9]*) awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' ;;
	*) echo "$1" ;;
	esac
}
per_conn() { # BEFORE_KB DURING_KB N: KB per held connection
	case $1$2 in
	*-*) echo - ;;
	*) awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", n ? (b - a) / n : 0 }' ;;
	esac
}

d50=$(pv direct c1_p50) l50=$(pv l7 c1_p50) h50=$(pv haproxy c1_p50)
lcpu=$(pv l7 load_rpcpu) hcpu=$(pv haproxy load_rpcpu)
read -r l7_before l7_during l7_held l7_est <<<"$rss_l7"
read -r hp_before hp_during hp_held hp_est <<<"$rss_hp"
l7_mb=$(mb "$l7_during")
pc_lo=n/a pc_hi=n/a pp_lo=n/a pp_hi=n/a
if [ -n "$PATHS_RES" ] && [ -s "$PATHS_RES" ]; then
	read -r pc_lo pc_hi < <(ratio_range "$PATHS_RES" kernel direct conn)
	read -r pp_lo pp_hi < <(ratio_range "$PATHS_RES" kernel direct pp_p50)
fi
rl_rps=$(pv l7-rl load_rps) tr_rps=$(pv l7-tr load_rps) l7_rps=$(pv l7 load_rps)
td50=$(pv l7-trdead c1_p50) tl50=$(pv l7-tr c1_p50) td90=$(pv l7-trdead c1_p90) tl90=$(pv l7-tr c1_p90)
read -r hc_lo hc_hi < <(ratio_range "$work/res" kernel direct conn_rps)
read -r h1_lo h1_hi < <(ratio_range "$work/res" kernel direct c1_p50)
overlap="a_lo <= b_hi && b_lo <= a_hi"
targets=$(
	echo "| target | measured | verdict |"
	echo "|---|---|---|"
	echo "| L7 added p50 <= 0.5x the haproxy pair's (1 connection, over direct)" \
		"| l7 $(added "$l50" "$d50") us vs haproxy pair $(added "$h50" "$d50") us" \
		"| $(verdict "l - d <= 0.5 * (h - d)" l="$l50" h="$h50" d="$d50") |"
	echo "| requests per agent CPU-second >= 2x the pair's per haproxy CPU-second" \
		"($LOADC connections) | $lcpu vs $hcpu | $(verdict "l >= 2 * h" l="$lcpu" h="$hcpu") |"
	echo "| agent RSS <= $RSS_MAX_MB MB with $NHOLD open idle keep-alive client connections (l7)" \
		"| $l7_mb MB ($l7_est established on :15006; $(mb "$l7_before") MB before)" \
		"| $(verdict "r <= $RSS_MAX_MB && e >= $NHOLD" r="$l7_mb" e="$l7_est") |"
	echo "| rate limiting (one local limit per request) costs <= 5% of the L7 path's requests/s" \
		"($LOADC connections) | l7-rl $rl_rps vs l7 $l7_rps" \
		"| $(verdict "r >= 0.95 * l" r="$rl_rps" l="$l7_rps") |"
	echo "| tracing at 100% sampling (2 spans per request, to a live collector) costs <= 5% of" \
		"the L7 path's requests/s ($LOADC connections) | l7-tr $tr_rps vs l7 $l7_rps" \
		"| $(verdict "t >= 0.95 * l" t="$tr_rps" l="$l7_rps") |"
	echo "| a collector that hangs costs requests nothing: p50 and p90 (1 connection) within" \
		"10% (+20 us) of a live collector's (p99 of a 3 s run is noise: l7-rl's is" \
		"$(cell l7-rl c1_p99) of l7's) | l7-trdead $td50 / $td90 us vs l7-tr $tl50 / $tl90 us" \
		"| $(verdict "d5 <= 1.1 * l5 + 20 && d9 <= 1.1 * l9 + 20" d5="$td50" l5="$tl50" \
			d9="$td90" l9="$tl90") |"
	echo "| kernel path within noise of bench.sh's paths: connections/s ratio to direct," \
		"range over rounds | $hc_lo-$hc_hi here vs $pc_lo-$pc_hi in the paths" \
		"| $(verdict "$overlap" a_lo="$hc_lo" a_hi="$hc_hi" b_lo="$pc_lo" b_hi="$pc_hi") |"
	echo "| kernel path within noise of bench.sh's paths: p50 ratio to direct, range over" \
		"rounds | $h1_lo-$h1_hi here (wrk, 1 connection) vs $pp_lo-$pp_hi in the paths" \
		"(sockperf ping-pong) | $(verdict "$overlap" a_lo="$h1_lo" a_hi="$h1_hi" \
			b_lo="$pp_lo" b_hi="$pp_hi") |"
)
memory=$(
	echo "| process | VmRSS before | with $NHOLD connections held | per connection | connections |"
	echo "|---|---|---|---|---|"
	echo "| agent of node1 (l7: hcli-0 -> $VIP_L7:80) | $(mb "$l7_before") MB | $l7_mb MB" \
		"| $(per_conn "$l7_before" "$l7_during" "$l7_held") KB | $l7_held answered and held," \
		"$l7_est established on :15006 |"
	echo "| haproxy pair (sum; hcli-0 -> 127.0.0.1:$HP_CLI) | $(mb "$hp_before") MB" \
		"| $(mb "$hp_during") MB | $(per_conn "$hp_before" "$hp_during" "$hp_held") KB" \
		"| $hp_held answered and held, $hp_est established on :$HP_CLI |"
)
nevents=$(grep -c . <<<"$agent_events" || true)
health="agents restarted during the HTTP runs: $restarted; WARN/ERROR lines in their logs: $nevents"
tbl=$(table)
cat <<R
### HTTP paths (median of $ROUNDS round(s) of ${D} s per run; ratio to direct, to direct-x for l7-x, to l7 for l7-rl/l7-tr/l7-trdead)
$tbl

### HTTP targets
$targets

### HTTP path memory
$memory

$health
R
if [ -n "$agent_events" ]; then
	echo "bench_http: agent log lines during the runs:" >&2
	echo "$agent_events" >&2
fi

[ -n "${BENCH_HTTP_MD:-}" ] || exit 0
alone=""
[ -n "$PATHS_RES" ] || alone=" Run alone, there is nothing to compare with (n/a)."
events_md=""
if [ -n "$agent_events" ]; then
	events_md=$(printf '\n\n%s\n%s\n%s' '```' "$(head -20 <<<"$agent_events")" '```')
fi
cat > "$BENCH_HTTP_MD" <<M
## HTTP paths

\`scripts/bench_http.sh\` (run by \`make bench\` after the paths above; alone:
\`scripts/bench_http.sh [--quick]\`), about $((t_http / 60 + 1)) minute(s): keep-alive HTTP/1.1
GETs of \`/\` (a 68-byte body) from client pod hcli-0 (node1) to the lab's echo server, in a
lab of its own (tests/bench/http.yaml, \`lab up --accel off\`, mTLS on). $ROUNDS round(s); in
each, every run goes over every path in turn before the next run, ${D} s each. Cells are
medians over the rounds, with the ratio to \`direct\` (\`direct-x\` for l7-x, \`l7\` for l7-rl,
l7-tr and l7-trdead) in brackets.

$tbl

- **direct**: wrk in hcli-0's network namespace only (not its cgroup: no bpfmesh program runs
  for it) to hsrv-0's pod address :8080. **direct-x**: the same to hsrvx-0 on node2.
- **kernel**: wrk in the mesh (\`bpfmesh lab exec --name $LAB -n hb hcli-0 -- wrk ...\`) to
  Service hkern ($VIP_KERN:80), which has no VirtualService: connect4 turns it into hsrv-0's
  address and nothing runs in userspace.
- **l7**: the same to Service hl7 ($VIP_L7:80), whose VirtualService route sets a response
  header, so \`bpfmesh services\` says \`path l7 (headers in spec.http[0])\`: the kernel hands
  the connect to node1's agent (HTTP path on node-ip:15006, 2 workers), which parses, routes
  and proxies each request to hsrv-0 over a pooled upstream connection. **l7-x**: Service hl7x
  ($VIP_L7X:80), backend hsrvx-0 on node2: node1's HTTP path, then the mTLS tunnel (HBONE,
  TLS 1.3) to node2's agent, which delivers to the pod.
- **l7-rl**: as l7, to Service hl7rl ($VIP_L7RL:80) whose pod hsrvrl-0 has Istio's local rate
  limit EnvoyFilter at its inbound: every request takes a token from its bucket (one that
  never runs dry), docs/ratelimit.md. **l7-tr**: as l7, from client htr-0, which a Telemetry
  traces at 100%: each request makes a CLIENT and a SERVER span, exported as Zipkin JSON to a
  collector that takes them (tests/integration/trace_collector.py --discard), docs/tracing.md.
  **l7-trdead**: the same from htd-0, whose collector accepts connections and never answers
  (its spans are dropped after the exporter's timeout).
- **haproxy**: the sidecar pair, HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }')
  \`mode http\`, \`nbthread 1\` each, keep-alive on both sides (its defaults), outside the
  mesh's cgroups: wrk in hcli-0's netns -> haproxy in hcli-0's netns (127.0.0.1:$HP_CLI) ->
  haproxy in hsrv-0's netns (:$HP_SRV) -> 127.0.0.1:8080. Plaintext between the two, as the l7
  path is on one node.
- Commands (PREFIX is \`ip netns exec bm-$LAB-hb-hcli-0\` for direct, direct-x and haproxy,
  the \`lab exec\` above for the others): latency \`PREFIX wrk -t1 -c1 -d${D}s --timeout 5s -s
  tests/bench/wrk_report.lua URL\`, load the same with \`-c$LOADC\`, connection rate \`-c4 -H
  "Connection: close"\`. Latencies are wrk's (one request's round trip on its connection);
  requests/s is wrk's requests over its own duration.
- **CPU**: utime + stime from /proc/PID/stat of the lab's agents (both nodes) or of the two
  haproxies, before and after each run; "requests per proxy CPU-second" is the run's requests
  over those seconds. For l7 node2's agent is idle; for l7-x both agents work (node1: the HTTP
  path and the tunnel's client side; node2: the tunnel's server side).
- **Memory**: VmRSS from /proc/PID/status before, and while tests/bench/hold.py holds $NHOLD
  connections (each sent one GET and read its answer, then stays open and idle; \`ulimit -n\`
  in the pod is $pod_nofile, hold.py raises its own soft limit; the agent's is $agent_nofile).
  "established" counts the connections \`ss\` sees on the listener meanwhile.
- The kernel-path targets compare the per-round kernel/direct ratios of this lab with those of
  bench.sh's paths (same run, lab ${BENCH_LAB:-bn}: \`--accel off --mtls off\`): the connection rate is the
  same wrk command in both; the p50 compares this wrk round trip with sockperf's ping-pong.
  Within noise means the two ranges overlap.$alone

### Targets (HTTP)

$targets

### Memory with $NHOLD idle keep-alive connections

$memory

Agents restarted during these runs: $restarted. WARN/ERROR lines in the agents' logs during
them: $nevents.$events_md

Where the HTTP path's costs go, and what was done (by hand with strace and perf; the script does
not re-measure these):

- **Memory** (fixed): a downstream HTTP/1.1 connection's five buffers (input, output, URL,
  header name, header value) kept the 4 KB they grew to for the connection's life, about 20 KB
  per idle connection. They are now freed between requests (and an idle pooled upstream
  connection's too): 0.5 KB per idle connection.
- **System calls** (from 11 per request to about 6): the response's head and body leave in one
  send (a connection's output is flushed once per event, \`l7_later\`), a read stops at a short
  read instead of going on to EAGAIN, the client socket keeps its epoll interest while its
  request is in flight (no \`epoll_ctl\` pair per request), header lines are copied, not
  printf-formatted, access log lines are written every 100 ms.
- **What is left**: perf puts most of the agent's samples in the kernel's wake-ups
  (\`sock_def_readable\`, \`do_epoll_wait\`, \`finish_task_switch\`: about 65%) on a 2-core
  machine, where client, agent workers, server and wrk share two CPUs; \`http_parser_execute\`
  is 1.5%. Closing the remaining gap to the targets would need busy polling or fewer threads
  per hop (one worker per core pinned, \`SO_INCOMING_CPU\`), not yet tried.
M
