# paths.sh: sourced by scripts/bench.sh (part 1). Measures one request/response workload over
# every path from a client pod to the server pod srv-0, alternating paths inside each round
# (round 1: direct kernel accel ..., round 2: the same order ...) so drift shows in every path.
#
# Paths (client -> srv-0; every client runs as a plain process unless it says "mesh"):
#   direct        client-0's netns only, not its cgroup: no bpfmesh program runs for it
#   kernel        client-0 in the mesh (`lab exec`), to the perf/srv Service VIPs
#   accel         same, in a second lab brought up with --accel on (when the agent has it)
#   haproxy       client-0 -> haproxy (client-0 netns) -> haproxy (srv-0 netns) -> 127.0.0.1
#   direct-x      clientx-0 (node2) netns only: the cross-node baseline
#   mtls          clientx-0 in the mesh of a third lab with mTLS (when `bpfmesh ca` exists)
#   haproxy-mtls  clientx-0 -> haproxy -> (TLS 1.3, ECDSA P-256, both sides verified) -> haproxy
# Servers, in srv-0's netns and cgroup (a mesh pod): sockperf (11111), iperf3 (5201), the lab's
# echo HTTP server (8080). Tools: sockperf ping-pong and under-load --mps (TCP, 64-byte
# messages, --full-rtt, every message answered), wrk -t1 -c4 with "Connection: close" (each
# request is connect, one exchange, close), iperf3 single stream.
# Needs from bench.sh: BM LAB work D ROUNDS CG; pids_add; tests/bench/common.sh.
# Writes $work/res: "PATH METRIC VALUE".

PATHS="direct kernel accel haproxy direct-x mtls haproxy-mtls"
declare -A PRE SPH SPP IPH IPP URL COSTPIDS BASE NA
VIP_PERF=10.96.50.20
VIP_SRV=10.96.50.30

podip() { $BM lab status --name "$1" | awk -v p="bench/$2" '$2 == p { print $6 }'; }
agentpids() { lab_agentpids "$1"; }
netns() { echo "bm-$1-bench-$2"; }

# sockperf and iperf3 servers in srv-0 of lab $1 (its netns and cgroup)
servers_up() {
	local l=$1 i=0
	for cmd in "sockperf server --tcp -i 0.0.0.0 -p 11111" "iperf3 -s -p 5201"; do
		i=$((i + 1))
		$BM lab exec --name "$l" -n bench srv-0 -- \
			sh -c "echo \$\$ > $work/srv-$l-$i.pid; exec $cmd" > "$work/srv-$l-$i.log" 2>&1 &
		pids_add $!
	done
	wait_listen "$(netns "$l" srv-0)" 11111
	wait_listen "$(netns "$l" srv-0)" 5201
	pids_add "$(cat "$work/srv-$l-1.pid")" "$(cat "$work/srv-$l-2.pid")"
}

# The WorkloadEntry behind Service perf: srv-0's address (known once the lab is up).
perf_endpoint() {
	cat > "$work/we-$1.yaml" <<Y
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: perf-srv-0, namespace: bench}
spec:
  address: $(podip "$1" srv-0)
  labels: {app: perf}
Y
	$BM lab apply --name "$1" -f "$work/we-$1.yaml" >/dev/null
}

# ECDSA P-256 CA, server and client certificates for the haproxy mTLS pair
make_certs() {
	local d=$work/pki
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj /CN=bench-ca -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
	for n in server client; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$n" \
			-keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null
		openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
			-CAcreateserial -days 1 -out "$d/$n.crt" 2>/dev/null
		cat "$d/$n.crt" "$d/$n.key" > "$d/$n.pem"
	done
}

# haproxy NAME NETNS LISTEN... : one single-threaded haproxy (a sidecar) in a pod's netns, in
# TCP mode; LISTEN is "bind-spec|server-spec" per proxied port.
haproxy_up() {
	local name=$1 ns=$2 cfg=$work/$1.cfg i=0 spec
	shift 2
	printf 'global\n    nbthread 1\n    maxconn 512\n    ssl-server-verify required\n' > "$cfg"
	printf 'defaults\n    mode tcp\n    timeout connect 3s\n    timeout client 60s\n' >> "$cfg"
	printf '    timeout server 60s\n' >> "$cfg"
	for spec in "$@"; do
		i=$((i + 1))
		printf 'listen p%d\n    bind %s\n    server s1 %s\n' "$i" "${spec%%|*}" "${spec#*|}" >> "$cfg"
	done
	ip netns exec "$ns" haproxy -db -q -f "$cfg" > "$work/$name.log" 2>&1 &
	pids_add $!
	COSTPIDS[$name]=$!
}

# The haproxy pairs: plaintext client-0 -> srv-0, mTLS clientx-0 -> srv-0.
sidecars_up() {
	local srv pki=$work/pki s c
	srv=$(podip "$LAB" srv-0)
	make_certs
	s="ssl crt $pki/server.pem ca-file $pki/ca.crt verify required"
	c="ssl crt $pki/client.pem ca-file $pki/ca.crt verify required"
	haproxy_up hp-srv "$(netns "$LAB" srv-0)" ":15111|127.0.0.1:11111" \
		":15201|127.0.0.1:5201" ":15080|127.0.0.1:8080"
	haproxy_up hp-cli "$(netns "$LAB" client-0)" "127.0.0.1:16111|$srv:15111" \
		"127.0.0.1:16201|$srv:15201" "127.0.0.1:16080|$srv:15080"
	haproxy_up hpt-srv "$(netns "$LAB" srv-0)" ":15311 $s|127.0.0.1:11111" \
		":15401 $s|127.0.0.1:5201" ":15280 $s|127.0.0.1:8080"
	haproxy_up hpt-cli "$(netns "$LAB" clientx-0)" "127.0.0.1:17111|$srv:15311 $c" \
		"127.0.0.1:17201|$srv:15401 $c" "127.0.0.1:17080|$srv:15280 $c"
	for p in 15111 15201 15080 15311 15401 15280; do wait_listen "$(netns "$LAB" srv-0)" $p; done
	for p in 16111 16201 16080; do wait_listen "$(netns "$LAB" client-0)" $p; done
	for p in 17111 17201 17080; do wait_listen "$(netns "$LAB" clientx-0)" $p; done
}

# path NAME PREFIX SOCKPERF_HOST SOCKPERF_PORT IPERF_HOST IPERF_PORT URL BASELINE COSTPIDS
path() {
	PRE[$1]=$2 SPH[$1]=$3 SPP[$1]=$4 IPH[$1]=$5 IPP[$1]=$6 URL[$1]=$7 BASE[$1]=$8
	COSTPIDS[$1]=$9
}

paths_setup() {
	local srv
	srv=$(podip "$LAB" srv-0)
	path direct "ip netns exec $(netns "$LAB" client-0)" "$srv" 11111 "$srv" 5201 \
		"http://$srv:8080/" direct ""
	path kernel "$BM lab exec --name $LAB -n bench client-0 --" $VIP_PERF 11111 $VIP_PERF 5201 \
		"http://$VIP_SRV/" direct "$(agentpids "$LAB")"
	path haproxy "ip netns exec $(netns "$LAB" client-0)" 127.0.0.1 16111 127.0.0.1 16201 \
		"http://127.0.0.1:16080/" direct "${COSTPIDS[hp-cli]} ${COSTPIDS[hp-srv]}"
	path direct-x "ip netns exec $(netns "$LAB" clientx-0)" "$srv" 11111 "$srv" 5201 \
		"http://$srv:8080/" direct-x ""
	path haproxy-mtls "ip netns exec $(netns "$LAB" clientx-0)" 127.0.0.1 17111 127.0.0.1 \
		17201 "http://127.0.0.1:17080/" direct-x "${COSTPIDS[hpt-cli]} ${COSTPIDS[hpt-srv]}"
	if [ -n "$LAB_ACCEL" ]; then
		path accel "$BM lab exec --name $LAB_ACCEL -n bench client-0 --" $VIP_PERF 11111 \
			$VIP_PERF 5201 "http://$VIP_SRV/" direct "$(agentpids "$LAB_ACCEL")"
	else
		NA[accel]="n/a (not built)"
	fi
	if [ -n "$LAB_MTLS" ]; then
		path mtls "$BM lab exec --name $LAB_MTLS -n bench clientx-0 --" $VIP_PERF 11111 \
			$VIP_PERF 5201 "http://$VIP_SRV/" direct-x "$(agentpids "$LAB_MTLS")"
	else
		NA[mtls]="n/a (not built)"
	fi
}

# sockperf output -> "p50 p90 p99 p99.9 received" (usec, round trip)
sp_parse() {
	awk '/percentile 50.000/ { a = $NF } /percentile 90.000/ { b = $NF }
		/percentile 99.000/ { c = $NF } /percentile 99.900/ { d = $NF }
		/\[Total Run\]/ { for (i = 1; i <= NF; i++) if ($i ~ /^ReceivedMessages=/) { split($i, x, "="); r = x[2] } }
		END { if (a != "") print a, b, c, d, r + 0 }'
}

res() { echo "$1 $2 $3" >> "$work/res"; }

# one measurement of one path; $1 path, $2 test
measure() {
	local p=$1 t=$2 pre=${PRE[$1]} out v t0 t1
	case $t in
	pp)
		out=$(timeout $((D + 20)) $pre sockperf ping-pong --tcp -i "${SPH[$p]}" \
			-p "${SPP[$p]}" -t "$D" -m 64 --full-rtt 2>&1 | sp_parse) || true
		read -r a b c d _ <<<"${out:-- - - - -}"
		res "$p" pp_p50 "$a"; res "$p" pp_p90 "$b"; res "$p" pp_p99 "$c"; res "$p" pp_p999 "$d"
		;;
	l1k | l10k)
		local mps=$([ "$t" = l1k ] && echo 1000 || echo 10000)
		t0=$(ticks "${COSTPIDS[$p]}")
		out=$(timeout $((D + 20)) $pre sockperf under-load --tcp -i "${SPH[$p]}" \
			-p "${SPP[$p]}" -t "$D" -m 64 --full-rtt --mps "$mps" --reply-every 1 2>&1 |
			sp_parse) || true
		t1=$(ticks "${COSTPIDS[$p]}")
		read -r a b c d r <<<"${out:-- - - - 0}"
		res "$p" "${t}_p50" "$a"; res "$p" "${t}_p99" "$c"; res "$p" "${t}_p999" "$d"
		if [ "$t" = l10k ] && [ -n "${COSTPIDS[$p]}" ] && [ "${r:-0}" -gt 0 ]; then
			# ms of CPU per 1,000 requests
			res "$p" cpu "$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v r="$r" \
				'BEGIN { printf "%.3f", t / hz * 1000 / (r / 1000) }')"
		fi
		;;
	conn)
		v=$(timeout $((D + 20)) $pre wrk -t1 -c4 -d"${D}s" -H "Connection: close" "${URL[$p]}" \
			2>&1 | awk '/^Requests\/sec:/ { print int($2) }') || true
		res "$p" conn "${v:--}"
		;;
	tput)
		v=$(timeout $((D + 20)) $pre iperf3 -c "${IPH[$p]}" -p "${IPP[$p]}" -t "$D" -J 2>/dev/null |
			$PY -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))' \
			2>/dev/null) || true
		res "$p" tput "${v:--}"
		;;
	esac
}

# peak RSS (VmHWM): the largest agent of a lab / the sum of a haproxy pair, in MB
rss() {
	local how=$1 p
	shift
	for p in "$@"; do awk '/^VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null; done |
		awk -v how="$how" '{ s += $1; if ($1 > m) m = $1 } END { printf "%.1f", (how == "max" ? m : s) / 1024 }'
}

paths_run() {
	: > "$work/res"
	: > "$work/rounds"
	HZ=$(getconf CLK_TCK)
	for r in $(seq "$ROUNDS"); do
		for t in pp l1k l10k conn tput; do
			for p in $PATHS; do
				[ -z "${NA[$p]:-}" ] || continue
				measure "$p" "$t"
				[ "$t" != pp ] || echo "$p pp_round $r $(awk -v p="$p" \
					'$1 == p && $2 == "pp_p50" { v = $3 } END { print v }' "$work/res")" >> "$work/rounds"
			done
		done
	done
	for p in kernel accel mtls; do
		[ -z "${NA[$p]:-}" ] && [ -n "${COSTPIDS[$p]:-}" ] && res "$p" rss "$(rss max ${COSTPIDS[$p]})"
	done
	for p in haproxy haproxy-mtls; do res "$p" rss "$(rss sum ${COSTPIDS[$p]})"; done
	return 0
}

# hold_tunnelled N: the largest mtls-lab agent's VmRSS (KB) before and while clientx-0 (node2)
# holds N idle keep-alive connections (tests/bench/hold.py: one GET answered on each) to srv-0
# (node1) through the tunnel; prints "before during held established" (established: the
# connections srv-0's echo server has on 8080 meanwhile)
hold_tunnelled() {
	local n=$1 out=$work/hold-mtls before during held est pids
	pids=$(agentpids "$LAB_MTLS")
	before=$(vm_max VmRSS $pids)
	hold_start "$out" "$BM lab exec --name $LAB_MTLS -n bench clientx-0 --" "$VIP_SRV" 80 "$n"
	during=$(vm_max VmRSS $pids)
	held=$(awk '$1 == "holding" { print $3 }' "$out")
	est=$(ip netns exec "$(netns "$LAB_MTLS" srv-0)" ss -Htn state established '( sport = :8080 )' | wc -l)
	hold_stop "$out"
	echo "$before $during ${held:-0} $est"
}

# the largest KEY (VmRSS, VmHWM) of PIDS, in KB
vm_max() {
	local k=$1 p
	shift
	for p in "$@"; do awk -v k="$k:" '$1 == k { print $2 }' "/proc/$p/status" 2>/dev/null; done |
		awk '$1 > m { m = $1 } END { print m + 0 }'
}

# median over rounds of PATH METRIC, or "-"
med() {
	awk -v p="$1" -v m="$2" '$1 == p && $2 == m && $3 != "-" { print $3 }' "$work/res" | sort -g |
		awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'
}

# the table: one row per metric, one column per path, "value (ratio to its baseline)"
paths_table() {
	local rows="pp_p50 pp_p90 pp_p99 pp_p999 l1k_p50 l1k_p99 l1k_p999 l10k_p50 l10k_p99 l10k_p999 conn tput cpu rss"
	declare -A label=(
		[pp_p50]="ping-pong RTT p50 (us)" [pp_p90]="ping-pong RTT p90 (us)"
		[pp_p99]="ping-pong RTT p99 (us)" [pp_p999]="ping-pong RTT p99.9 (us)"
		[l1k_p50]="1,000 msg/s RTT p50 (us)" [l1k_p99]="1,000 msg/s RTT p99 (us)"
		[l1k_p999]="1,000 msg/s RTT p99.9 (us)" [l10k_p50]="10,000 msg/s RTT p50 (us)"
		[l10k_p99]="10,000 msg/s RTT p99 (us)" [l10k_p999]="10,000 msg/s RTT p99.9 (us)"
		[conn]="connections/s (wrk, Connection: close)" [tput]="throughput (Gbit/s, iperf3, 1 stream)"
		[cpu]="CPU ms per 1,000 requests (agent / haproxy pair)"
		[rss]="peak RSS MB (largest agent / haproxy pair)")
	local head="| metric |" sep="|---|" p m v b
	for p in $PATHS; do head="$head $p |"; sep="$sep---|"; done
	echo "$head"
	echo "$sep"
	for m in $rows; do
		local line="| ${label[$m]} |"
		for p in $PATHS; do
			if [ -n "${NA[$p]:-}" ]; then
				line="$line ${NA[$p]} |"
				continue
			fi
			v=$(med "$p" "$m")
			b=$(med "${BASE[$p]}" "$m")
			if [ "$v" = - ]; then
				case $m in cpu | rss) [ -z "${COSTPIDS[$p]}" ] && v="none" ;; *) v="failed" ;; esac
				line="$line $v |"
			elif [ "$p" = "${BASE[$p]}" ] || [ "$b" = - ] || [ "$m" = cpu ] || [ "$m" = rss ]; then
				line="$line $v |"
			else
				line="$line $v ($(awk -v a="$v" -v b="$b" 'BEGIN { printf "%.2fx", b ? a / b : 0 }')) |"
			fi
		done
		echo "$line"
	done
	local line="| ping-pong p50 by round (drift) |"
	for p in $PATHS; do
		[ -n "${NA[$p]:-}" ] && { line="$line ${NA[$p]} |"; continue; }
		line="$line $(awk -v p="$p" '$1 == p { printf "%s%s", n++ ? " / " : "", $4 }' "$work/rounds") |"
	done
	echo "$line"
}
