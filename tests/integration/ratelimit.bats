#!/usr/bin/env bats
# Rate limits as Istio users write them (EnvoyFilters of Istio's task "Enabling Rate Limits
# using Envoy", verbatim, and envoyproxy/ratelimit's config as the ConfigMap ratelimit-config):
# local token buckets at a pod's own side, global limits at the ingress gateway counted in the
# lab's real redis-server (one limit across both nodes' gateways), a stalled Redis decided by
# failure_mode_deny within the filter's timeout, the guide's /login per user, and every other
# EnvoyFilter shape reported.
load helpers

LAB=rlim
RF="$FIX/ratelimit"
EX="$BATS_TEST_DIRNAME/../../deploy/examples"

setup_file() {
	export LAB
	lab_teardown "$LAB"
	lab_up "$LAB" -f "$RF/base.yaml" -f "$RF/local.yaml" -f "$RF/local-route.yaml" \
		-f "$RF/global.yaml" >&3 2>&3
}

teardown() { lab_logs_if_failed; }

teardown_file() { lab_teardown "$LAB"; }

fab() { nsenter --net="/run/netns/bm-$LAB-fabric" "$@"; }
# an HTTP request to node N's gateway (10.244.255.N:80) from the fabric: prints the status
gw() { fab curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${@:3}" "http://10.244.255.$1$2"; }
redis_port() { lab status | sed -n 's/^ratelimit redis 127.0.0.1:\([0-9]*\)$/\1/p'; }
# a fixed window of a minute must not end between the requests a test counts: wait for a
# fresh one when less than 20 s of this one are left
fresh_minute() {
	local s
	s=$(date +%-S)
	if [ "$s" -ge 40 ]; then sleep $((61 - s)); fi
}

@test "the lab runs a real redis-server for the global limits and says where" {
	run lab status
	echo "$output"
	[[ "$output" == *"ratelimit redis 127.0.0.1:"* ]]
	run redis-cli -p "$(redis_port)" ping
	[ "$output" = PONG ]
	pgrep -f "redis-server 127.0.0.1:$(redis_port)"
}

@test "local (Istio's task, SIDECAR_INBOUND): productpage's 4 tokens a minute, shared by clients of both nodes, then 429 RL" {
	local codes="" c
	for _ in 1 2 3; do
		c=$(pod_curl sleep-0 rl -o /dev/null -w '%{http_code}' http://productpage:9080/)
		codes="$codes $c"
	done
	c=$(pod_curl sleep2-0 rl -o /dev/null -w '%{http_code}' http://productpage:9080/)
	codes="$codes $c"
	echo "first four:$codes"
	[ "$codes" = " 200 200 200 200" ]
	# the fifth, from either node: the pod's own bucket is empty
	run pod_curl sleep2-0 rl -i http://productpage:9080/
	echo "$output"
	[[ "$output" == "HTTP/1.1 429 Too Many Requests"* ]]
	[[ "$output" == *"x-local-rate-limit: true"* ]]
	[[ "$output" == *"x-envoy-ratelimited: true"* ]]
	[[ "$output" == *"local_rate_limited" ]]
	run pod_curl sleep-0 rl -o /dev/null -w '%{http_code}' http://productpage:9080/
	[ "$output" = 429 ]
	# the destination's agent counts them as Istio's destination sidecar would
	[ "$(series_sum node2 istio_requests_total 'reporter="destination"' \
		'destination_workload="productpage"' 'response_code="429"' 'response_flags="RL"')" -eq 2 ]
	[ "$(series_sum node2 istio_requests_total 'reporter="destination"' \
		'destination_workload="productpage"' 'response_code="200"')" -eq 4 ]
	lab_metrics node2 | grep -qx 'bpfmesh_ratelimit_local_total{result="limited"} 2'
}

@test "local, per route (typed_per_filter_config on inbound|http|8080): ratings' 2 a minute; the filter alone limits nothing" {
	local codes="" c
	for _ in 1 2 3 4; do
		c=$(pod_curl sleep-0 rl -o /dev/null -w '%{http_code}' http://ratings:9080/)
		codes="$codes $c"
	done
	echo "$codes"
	[ "$codes" = " 200 200 429 429" ]
	# web has no limit of its own
	for _ in 1 2 3 4 5 6; do
		c=$(pod_curl sleep-0 rl -o /dev/null -w '%{http_code}' http://web/)
		[ "$c" = 200 ]
	done
}

@test "local, SIDECAR_OUTBOUND: the client's own bucket (sleep2: 1 a minute to web), other clients untouched" {
	run lab apply -f "$RF/outbound.yaml"
	[ "$status" -eq 0 ]
	run pod_curl sleep2-0 rl -o /dev/null -w '%{http_code}' http://web/
	[ "$output" = 200 ]
	run pod_curl sleep2-0 rl -i http://web/
	echo "$output"
	[[ "$output" == "HTTP/1.1 429 Too Many Requests"* ]]
	[[ "$output" == *"local_rate_limited" ]]
	for _ in 1 2 3; do
		[ "$(pod_curl sleep-0 rl -o /dev/null -w '%{http_code}' http://web/)" = 200 ]
	done
	# a source-side refusal: web never saw it
	[ "$(series_sum node2 istio_requests_total 'reporter="source"' 'source_workload="sleep2"' \
		'destination_service_name="web"' 'response_code="429"' 'response_flags="RL"')" -eq 1 ]
}

@test "global (Istio's task at the gateway): /productpage 1 a minute across both nodes' gateways, counted in Redis with envoyproxy/ratelimit's keys" {
	local key
	fresh_minute
	run gw 1 /productpage
	[ "$output" = 404 ] # the limit let it through; web (echo) has no /productpage
	run gw 2 /productpage
	echo "node1's gateway after node2's: $output"
	[ "$output" = 429 ]
	run fab curl -s -i --max-time 10 http://10.244.255.1/productpage
	echo "$output"
	[[ "$output" == "HTTP/1.1 429 Too Many Requests"* ]]
	[[ "$output" == *"x-envoy-ratelimited: true"* ]]
	# domain_KEY_VALUE_WINDOWSTART, counted by INCRBY with the window's EXPIRE
	key=$(redis-cli -p "$(redis_port)" --raw keys 'ratelimit_PATH_/productpage_*')
	echo "key: $key"
	[[ "$key" =~ ^ratelimit_PATH_/productpage_[0-9]+$ ]]
	[ $((${key##*_} % 60)) -eq 0 ]
	[ "$(redis-cli -p "$(redis_port)" --raw get "$key")" -eq 3 ]
	ttl=$(redis-cli -p "$(redis_port)" --raw ttl "$key")
	[ "$ttl" -gt 0 ] && [ "$ttl" -le 60 ]
	# the key-only descriptor: 100 a minute for every other path, each its own counter
	run gw 1 /elsewhere
	[ "$output" = 404 ]
	[ "$(redis-cli -p "$(redis_port)" --raw get "ratelimit_PATH_/elsewhere_${key##*_}")" -eq 1 ]
	[ "$(series_sum node2 istio_requests_total 'reporter="source"' \
		'source_workload="istio-ingressgateway"' 'response_code="429"' 'response_flags="RL"')" -ge 1 ]
}

@test "global, the task's api route: header_value_match on a named route, 2 a minute; the route's rate_limits override the virtual host's" {
	fresh_minute
	[ "$(gw 1 /api/v1/products/1)" = 404 ]
	[ "$(gw 2 /api/v1/products/2)" = 404 ]
	[ "$(gw 1 /api/v1/products/3)" = 429 ]
	# no match of the regex: the route makes no descriptor, and the virtual host's PATH one
	# is not used on a route with rate_limits of its own (Envoy's vh_rate_limits OVERRIDE)
	for _ in 1 2 3; do
		[ "$(gw 1 /api/v1/products/100)" = 404 ]
	done
	[ -z "$(redis-cli -p "$(redis_port)" --raw keys 'ratelimit_PATH_/api/v1/products/100_*')" ]
}

@test "Redis stalled: failure_mode_deny true answers 500 RLSE at the filter's timeout; false lets it through; never a hang" {
	local t0 t1 errs
	run lab apply -f "$RF/global-timeout.yaml"
	[ "$status" -eq 0 ]
	errs=$(lab_metrics node2 | sed -n 's/^bpfmesh_ratelimit_redis_errors_total //p')
	redis-cli -p "$(redis_port)" client pause 3000 all
	t0=$(date +%s%N)
	run fab curl -s -i --max-time 10 http://10.244.255.1/stalled
	t1=$(date +%s%N)
	echo "$output"
	echo "took $(((t1 - t0) / 1000000)) ms"
	[[ "$output" == "HTTP/1.1 500 Internal Server Error"* ]]
	[ $(((t1 - t0) / 1000000)) -ge 180 ]  # it waited for the timeout (0.2 s)...
	[ $(((t1 - t0) / 1000000)) -lt 1500 ] # ...and no longer
	[ "$(series_sum node2 istio_requests_total 'reporter="source"' 'response_code="500"' \
		'response_flags="RLSE"')" -ge 1 ]
	[ "$(lab_metrics node2 | sed -n 's/^bpfmesh_ratelimit_redis_errors_total //p')" -gt "$errs" ]
	run lab apply -f "$RF/global-allow.yaml"
	[ "$status" -eq 0 ]
	t0=$(date +%s%N)
	run gw 1 /stalled-allowed
	t1=$(date +%s%N)
	echo "$output in $(((t1 - t0) / 1000000)) ms"
	[ "$output" = 404 ]
	[ $(((t1 - t0) / 1000000)) -lt 1500 ]
	# Redis back: the late answers to the requests that gave up are dropped, the next
	# ones are counted again
	sleep 3
	[ "$(gw 1 /after-stall)" = 404 ]
	[ "$(redis-cli -p "$(redis_port)" --raw keys 'ratelimit_PATH_/after-stall_*' | wc -l)" -eq 1 ]
	run lab apply -f "$RF/global.yaml"
	[ "$status" -eq 0 ]
}

@test "the guide's case (deploy/examples/login-ratelimit.yaml): /login 5 a minute per user, from the x-user header" {
	run lab apply -f "$EX/login-ratelimit.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"rate_limit_service: not used"* ]]
	fresh_minute
	local codes="" c
	for n in 1 2 1 2 1 2; do
		c=$(gw "$n" /login -H 'x-user: alice')
		codes="$codes $c"
	done
	echo "alice:$codes"
	[ "$codes" = " 404 404 404 404 404 429" ]
	[ "$(gw 1 /login -H 'x-user: bob')" = 404 ]     # another user: a counter of their own
	[ "$(gw 1 /catalog -H 'x-user: alice')" = 404 ] # another path: no limit
	[ "$(gw 2 /login -H 'x-user: alice')" = 429 ]
}

@test "EnvoyFilters of other shapes: validate accepts them, validate / lab apply / the agent log name the patch bpfmesh does not support" {
	cat >"$BATS_TEST_TMPDIR/ef.yaml" <<-'EOF'
	apiVersion: networking.istio.io/v1alpha3
	kind: EnvoyFilter
	metadata: {name: lua, namespace: rl}
	spec:
	  configPatches:
	    - applyTo: HTTP_FILTER
	      match: {context: SIDECAR_INBOUND}
	      patch:
	        operation: INSERT_BEFORE
	        value:
	          name: envoy.filters.http.lua
	          typed_config:
	            "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
	            inlineCode: "function envoy_on_request(h) end"
	EOF
	run "$BM" validate "$BATS_TEST_TMPDIR/ef.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ef.yaml:6: EnvoyFilter/rl/lua: spec.configPatches[0]: warning: patch (applyTo HTTP_FILTER, operation INSERT_BEFORE, context SIDECAR_INBOUND) not supported by bpfmesh (ignored)"* ]]
	run lab apply -f "$BATS_TEST_TMPDIR/ef.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"not supported by bpfmesh (ignored)"* ]]
	for _ in $(seq 50); do
		grep -q "EnvoyFilter/rl/lua: spec.configPatches\[0\]: patch .* not supported by bpfmesh" \
			"/run/bpfmesh/lab/$LAB/agent-node1.log" && break
		sleep 0.2
	done
	grep "EnvoyFilter/rl/lua" "/run/bpfmesh/lab/$LAB/agent-node1.log"
}

@test "lab down stops redis-server and leaves nothing behind" {
	local port
	port=$(redis_port)
	lab_down_clean "$LAB"
	run pgrep -f "redis-server 127.0.0.1:$port"
	[ "$status" -eq 1 ]
}
