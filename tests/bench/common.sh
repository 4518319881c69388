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
