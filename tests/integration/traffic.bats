#!/usr/bin/env bats
# Kernel traffic shifting end to end: a lab with real netns pods, cgroups and agents; real
# curl connections through the cgroup hooks; config changes through `bpfmesh lab apply`.
load helpers

LAB=itr

setup_file() {
	export LAB
	lab_teardown "$LAB"
	lab_up "$LAB" -f "$FIX/mesh.yaml" -f "$FIX/vs-90-10.yaml" >&3 2>&3
}

teardown() {
	lab_logs_if_failed
	rm -f "/run/bpfmesh/lab/$LAB/config/zz-bad.yaml" /tmp/bpfmesh-$LAB-*
}

teardown_file() {
	lab_teardown "$LAB"
}

@test "lab status lists the node, its ready agent and every pod" {
	run lab status
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"node node1 agent $LAB-node1"*"ready"* ]]
	for p in t/web-v1-0 t/web-v1-1 t/web-v2-0 t/client-0 plain/outsider-0; do
		[[ "$output" == *"pod $p node node1 ip 10.244."* ]]
	done
}

@test "bpfmesh status exits 0 for a running agent and 1 for an unknown node" {
	run bm status --node "$LAB-node1"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"config:   loaded"* ]]
	run bm status --node "$LAB-nosuchnode"
	[ "$status" -eq 1 ]
}

@test "service names resolve in pods and getpeername shows the service address" {
	run pod_curl client-0 t -o /dev/null -w '%{remote_ip}:%{remote_port}' http://web:8080/get
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "10.96.10.10:8080" ]
	run pod_curl client-0 t http://web.t.svc.cluster.local:8080/get
	[[ "$output" == *'"namespace": "t"'* ]]
}

@test "90/10 split over 2000 connections is within a 5-sigma binomial bound" {
	read -r v1 v2 fail < <(split_count client-0 t http://web:8080/get 2000)
	echo "v1=$v1 v2=$v2 fail=$fail"
	[ "$fail" -eq 0 ]
	within_5sigma "$v2" 2000 10 100
}

@test "services shows the weights and backends the kernel holds" {
	run bm services --node "$LAB-node1"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"10.96.10.10:8080/TCP t/web"* ]]
	[[ "$output" == *"v1 weight 90"*"v2 weight 10"* ]]
}

@test "bpftool dumps pinned maps with field names (BTF)" {
	run bpftool map dump pinned "$(pins "$LAB" node1)/bm_svc"
	echo "$output" | head -30
	[ "$status" -eq 0 ]
	[[ "$output" == *'"route_id"'* ]]
	[[ "$output" == *'"all_subset"'* ]]
}

@test "weights that do not add to 100 (1:3) split as weight/sum" {
	run lab apply -f "$FIX/vs-1-3.yaml"
	[ "$status" -eq 0 ]
	sleep 1.2
	read -r v1 v2 fail < <(split_count client-0 t http://web:8080/get 2000)
	echo "v1=$v1 v2=$v2 fail=$fail"
	[ "$fail" -eq 0 ]
	within_5sigma "$v2" 2000 3 4
}

@test "a 0-weight subset gets exactly zero connections" {
	run lab apply -f "$FIX/vs-100-0.yaml"
	[ "$status" -eq 0 ]
	sleep 1.2
	read -r v1 v2 fail < <(split_count client-0 t http://web:8080/get 500)
	echo "v1=$v1 v2=$v2 fail=$fail"
	[ "$v1" -eq 500 ]
	[ "$v2" -eq 0 ]
}

@test "status shows what the last apply changed: one object, a few map entries, its time" {
	lab apply -f "$FIX/vs-1-3.yaml" >/dev/null
	lab apply -f "$FIX/vs-100-0.yaml" >/dev/null
	run bm status --node "$LAB-node1"
	echo "$output"
	[[ "$output" =~ "last in force: 1 of "([0-9]+)" objects changed, "([0-9]+)" map entries written, "([0-9.]+)" ms" ]]
	local objects=${BASH_REMATCH[1]} writes=${BASH_REMATCH[2]}
	[ "$objects" -ge 10 ]
	# the service's new route, subsets and names (and bm_meta), never every map entry again
	[ "$writes" -ge 1 ] && [ "$writes" -lt 40 ]
	run bm status --node "$LAB-node1" -o json
	[ "$(echo "$output" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["lastInForce"]["objectsChanged"])')" = 1 ]
	# the same files read again change nothing (the test API server's objects are no files)
	[ "${BPFMESH_TEST_KUBE_API:-}" = 1 ] && return 0
	touch "/run/bpfmesh/lab/$LAB/config/VirtualService.t.web.yaml"
	for _ in $(seq 30); do
		run bm status --node "$LAB-node1"
		[[ "$output" == *"last in force: 0 of "* ]] && break
		sleep 0.1
	done
	echo "$output"
	[[ "$output" == *"last in force: 0 of "* ]]
}

@test "a client outside the mesh gets an even spread, not the VirtualService" {
	# 100/0 is in force for mesh clients; the outsider reaches all 3 pods evenly
	read -r v1 v2 fail < <(split_count outsider-0 plain http://web.t:8080/get 900)
	echo "v1=$v1 v2=$v2 fail=$fail"
	[ "$fail" -eq 0 ]
	within_5sigma "$v2" 900 1 3
}

@test "an IPv6 service address is translated and its route applies" {
	run lab apply -f "$FIX/vs6-0-100.yaml"
	[ "$status" -eq 0 ]
	sleep 1.2
	run pod_curl client-0 t -g -o /dev/null -w '%{remote_ip}' 'http://[fd00:96::16]:8080/get'
	echo "$output"
	[ "$output" = "fd00:96::16" ]
	read -r v1 v2 fail < <(CURL_EXTRA=-6 split_count client-0 t http://web6:8080/get 200)
	echo "v1=$v1 v2=$v2 fail=$fail"
	[ "$v2" -eq 200 ]
}

@test "blue/green switch is in force within 1 s; an open keep-alive connection stays on blue" {
	lab apply -f "$FIX/vs-100-0.yaml"
	sleep 1.2
	rm -f /tmp/bpfmesh-$LAB-go /tmp/bpfmesh-$LAB-ka
	# a keep-alive connection: request, wait for the switch, request again on the same socket
	# shellcheck disable=SC2016 # the script runs in the pod's shell
	lab exec -n t client-0 -- bash -c '
		exec 3<>/dev/tcp/10.96.10.10/8080
		req() { printf "GET /get HTTP/1.1\r\nHost: web\r\n\r\n" >&3
			local len=0 line
			while IFS= read -r -t 5 line <&3; do
				line=${line%$'"'"'\r'"'"'}
				[[ $line == Content-Length:* ]] && len=${line#*: }
				[ -z "$line" ] && break
			done
			head -c "$len" <&3 | grep -o "\"VERSION\": \"v[0-9]\"\|\"pod\": \"[^\"]*\""; }
		req > /tmp/bpfmesh-'"$LAB"'-ka.1
		for i in $(seq 100); do [ -e /tmp/bpfmesh-'"$LAB"'-go ] && break; sleep 0.1; done
		req > /tmp/bpfmesh-'"$LAB"'-ka.2' &
	kapid=$!
	for _ in $(seq 50); do [ -s "/tmp/bpfmesh-$LAB-ka.1" ] && break; sleep 0.1; done
	start=$(date +%s%N)
	lab apply -f "$FIX/vs-0-100.yaml" >/dev/null
	# first new connection that lands on green
	got=""
	for _ in $(seq 100); do
		v=$(pod_curl client-0 t -H 'Connection: close' http://web:8080/get | grep -o '"VERSION": "v2"')
		[ -n "$v" ] && { got=1; break; }
		sleep 0.02
	done
	end=$(date +%s%N)
	ms=$(( (end - start) / 1000000 ))
	echo "green in force after ${ms} ms (including lab apply and each probe's lab exec)"
	[ -n "$got" ]
	[ "$ms" -lt 1000 ]
	# after the switch every new connection is green
	read -r v1 v2 fail < <(split_count client-0 t http://web:8080/get 200)
	[ "$v2" -eq 200 ]
	touch /tmp/bpfmesh-$LAB-go
	wait $kapid
	cat /tmp/bpfmesh-$LAB-ka.1 /tmp/bpfmesh-$LAB-ka.2
	grep -q '"VERSION": "v1"' /tmp/bpfmesh-$LAB-ka.1
	grep -q '"VERSION": "v1"' /tmp/bpfmesh-$LAB-ka.2
	# same pod on both requests: the established connection was not touched
	[ "$(grep pod /tmp/bpfmesh-$LAB-ka.1)" = "$(grep pod /tmp/bpfmesh-$LAB-ka.2)" ]
	rm -f /tmp/bpfmesh-$LAB-go /tmp/bpfmesh-$LAB-ka.*
}

@test "a bad YAML is rejected with file:line and traffic keeps its split" {
	lab apply -f "$FIX/vs-100-0.yaml" >/dev/null
	sleep 1.2
	run lab apply -f "$FIX/bad-weight.yaml"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"bad-weight.yaml:12: VirtualService/t/web: spec.http[0].route[0].weight:"* ]]
	[[ "$output" == *"0 object(s) applied"* ]]
	[[ "$output" == *"1 object(s) rejected"* ]]
	# the same bad object dropped straight into the agent's config dir: the valid one stays
	cp "$FIX/bad-weight.yaml" "/run/bpfmesh/lab/$LAB/config/zz-bad.yaml"
	# from the API server (--kube-api) the object is named as the API serves it
	where="zz-bad.yaml:12"
	if [ "${BPFMESH_TEST_KUBE_API:-}" = 1 ]; then where="api:VirtualService/t/web:1"; fi
	status_until node1 "*rejected objects:*$where: VirtualService/t/web:*"
	echo "$output"
	[[ "$output" == *"last apply: ok"* ]]
	[[ "$output" == *"rejected objects:"*"$where: VirtualService/t/web: spec.http[0].route[0].weight: "* ]]
	run lab_metrics node1
	[[ "$output" == *"bpfmesh_config_rejected_objects 1"* ]]
	read -r v1 v2 fail < <(split_count client-0 t http://web:8080/get 300)
	echo "v1=$v1 v2=$v2 fail=$fail"
	[ "$v1" -eq 300 ]
	# the live object itself turns invalid: its last good version stays in force
	live="/run/bpfmesh/lab/$LAB/config/VirtualService.t.web.yaml"
	cp "$live" "$BATS_TEST_TMPDIR/good.yaml"
	rm -f "/run/bpfmesh/lab/$LAB/config/zz-bad.yaml"
	cp "$FIX/bad-weight.yaml" "$live"
	if [ "${BPFMESH_TEST_KUBE_API:-}" = 1 ]; then
		status_until node1 "*its last good version*stays in force*"
	else
		status_until node1 "*VirtualService.t.web.yaml:12: VirtualService/t/web:*its last good version*"
	fi
	echo "$output"
	if [ "${BPFMESH_TEST_KUBE_API:-}" = 1 ]; then
		[[ "$output" == *"api:VirtualService/t/web:1: VirtualService/t/web:"*"its last good version (api:VirtualService/t/web:1) stays in force"* ]]
	else
		[[ "$output" == *"VirtualService.t.web.yaml:12: VirtualService/t/web:"*"its last good version (${live}:"*") stays in force"* ]]
	fi
	read -r v1 v2 fail < <(split_count client-0 t http://web:8080/get 300)
	echo "v1=$v1 v2=$v2 fail=$fail"
	[ "$v1" -eq 300 ]
	cp "$BATS_TEST_TMPDIR/good.yaml" "$live"
	status_until node1 "*rejected objects: none*"
	echo "$output"
	[[ "$output" == *"last apply: ok"* ]]
	[[ "$output" == *"rejected objects: none"* ]]
}

@test "agent SIGKILL and restart under continuous traffic: zero failed connections" {
	lab apply -f "$FIX/vs-90-10.yaml" >/dev/null
	sleep 1.2
	pid=$(bm status --node "$LAB-node1" | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')
	[ -n "$pid" ]
	# bounded load: 600 connections, one at a time
	lab exec -n t client-0 -- curl -s --max-time 60 -H 'Connection: close' \
		"http://web:8080/get?[1-600]" -w '\n%{http_code}\n' > /tmp/bpfmesh-$LAB-load 2>&1 &
	load=$!
	sleep 0.5
	kill -9 "$pid" # the kernel path stays pinned; the lab's supervisor restarts the agent
	for _ in $(seq 100); do
		new=$(bm status --node "$LAB-node1" 2>/dev/null | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')
		[ -n "$new" ] && [ "$new" != "$pid" ] && bm status --node "$LAB-node1" >/dev/null && break
		sleep 0.1
	done
	run bm status --node "$LAB-node1"
	[ "$status" -eq 0 ]
	[ "$new" != "$pid" ]
	wait $load
	ok=$(grep -c '^200$' /tmp/bpfmesh-$LAB-load)
	echo "200 answers: $ok of 600"
	rm -f /tmp/bpfmesh-$LAB-load
	[ "$ok" -eq 600 ]
}

@test "lab stop takes a pod's server down, lab start brings it back (deploy/NAME works)" {
	ip=$(lab status | awk '$2 == "t/web-v2-0" { print $6 }')
	[ -n "$ip" ]
	run lab stop -n t deploy/web-v2
	[ "$status" -eq 0 ]
	run lab status
	[[ "$output" == *"pod t/web-v2-0 node node1 ip $ip"*"stopped"* ]]
	run pod_curl client-0 t "http://$ip:8080/get"
	[ "$status" -ne 0 ]
	run lab start -n t web-v2-0
	[ "$status" -eq 0 ]
	run pod_curl client-0 t "http://$ip:8080/get"
	[[ "$output" == *'"pod": "web-v2-0"'* ]]
}

@test "lab down and uninstall leave no netns, cgroup, pin or process behind" {
	lab_down_clean "$LAB"
}
