# shellcheck shell=bash
# common.sh: helpers shared by scripts/bench.sh (and its tests/bench/paths.sh) and
# scripts/bench_http.sh. Sourced; defines functions only.

# wait until something listens on TCP port $2 in netns $1 (5 s at most)
wait_listen() {
	for _ in $(seq 50); do
		ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
		sleep 0.1
	done
	echo "bench: nothing listens on port $2 in $1" >&2
	return 1
}

# CPU ticks (user + system, fields 14 and 15 of /proc/PID/stat) of a set of processes
ticks() {
	local t=0 p
	for p in $1; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
	done
	echo $t
}

# the pids of a lab's agents (every node), from `lab status`
lab_agentpids() { $BM lab status --name "$1" | awk '$1 == "node" { printf "%s ", $6 }'; }

# hold_start OUT PREFIX HOST PORT N: tests/bench/hold.py run under PREFIX (a `lab exec ... --`
# or `ip netns exec NS` command) keeps N idle keep-alive connections to HOST:PORT; returns once
# it says it holds them (its opening phase is 60 s at most), its output in OUT, its pid in
# HOLD_PID. hold_stop OUT ends it.
hold_start() {
	local out=$1 pre=$2 host=$3 port=$4 n=$5
	# shellcheck disable=SC2086,SC2016 # pre is a command prefix; $$ and $@ are the inner sh's
	$pre sh -c 'echo $$ > "$1"; shift; exec "$@"' sh "$out.pid" /usr/bin/python3 \
		"$PWD/tests/bench/hold.py" "$host" "$port" "$n" 90 > "$out" 2>&1 &
	HOLD_PID=$!
	for _ in $(seq 750); do
		grep -q '^holding' "$out" 2>/dev/null && break
		kill -0 "$HOLD_PID" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1 # let the last answers settle
}

hold_stop() {
	if [ -s "$1.pid" ]; then kill "$(cat "$1.pid")" 2>/dev/null || true; fi
	rm -f "$1.pid"
	wait "$HOLD_PID" 2>/dev/null || true
}
