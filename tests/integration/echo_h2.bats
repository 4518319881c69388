#!/usr/bin/env bats
# The lab's echo server on HTTP/2 and gRPC (user/lab/echo.c, echo_h2.c), beside HTTP/1.1 on
# the same port 8080, checked with independent clients from a lab pod: curl, nghttp, h2load
# (nghttp2-client) and Python's grpcio (python3-grpcio) with no generated code. Requests go to
# pod IPs, so that nothing here depends on the node agent's HTTP path.
load helpers

LAB=ech

# the IPv4 address of pod NS/NAME
pod_ip() { lab status | awk -v p="$1" '$1 == "pod" && $2 == p { print $6 }'; }
# a command in the client pod
in_client() { lab exec -n t client-0 -- "$@"; }

# grpc METHOD HEX_REQUEST [KEY=VALUE metadata...]: one unary call to web-v1-0:8080, bytes in and
# bytes out; prints "code=NAME reply=HEX" or "code=NAME details=TEXT"
grpc_call() {
	in_client /usr/bin/python3 -c "$(grpc_py)" "$WEB:8080" "$@"
}
grpc_py() {
	cat <<'EOF'
import sys, grpc
addr, method, req = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
md = [tuple(a.split("=", 1)) for a in sys.argv[4:]]
ch = grpc.insecure_channel(addr, options=[("grpc.enable_http_proxy", 0)])
call = ch.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
try:
    reply, c = call.with_call(req, metadata=md, timeout=10)
    print("code=%s reply=%s" % (c.code().name, reply.hex()))
except grpc.RpcError as e:
    print("code=%s details=%s" % (e.code().name, e.details()))
EOF
}
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

setup_file() {
	export LAB
	lab_teardown "$LAB"
	lab_up "$LAB" -f "$FIX/mesh.yaml" >&3 2>&3
	WEB=$(pod_ip t/web-v1-0)
	export WEB
	# the line GET / answers, and gRPC Echo's identity field
	export IDENTITY="bpfmesh echo: pod web-v1-0, namespace t, node node1, version v1"
}

teardown_file() {
	lab_teardown "$LAB"
}

@test "the client pod reaches web-v1-0 by its pod IP" {
	echo "web-v1-0: $WEB"
	[[ "$WEB" == 10.244.* ]]
	run in_client curl -s --max-time 5 "http://$WEB:8080/"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$IDENTITY" ]
}

@test "HTTP/1.1 is unchanged: identity, JSON with protocol HTTP/1.1, /status/N, 413" {
	run in_client curl -s --http1.1 --max-time 5 -o /dev/null -w '%{http_version} %{http_code}' \
		"http://$WEB:8080/"
	[ "$output" = "1.1 200" ]
	run in_client curl -s --http1.1 --max-time 5 -H 'X-Trace: abc' "http://$WEB:8080/get?a=1"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"protocol": "HTTP/1.1"'* ]]
	[[ "$output" == *'"X-Trace": "abc"'* ]]
	[[ "$output" == *'"VERSION": "v1"'* ]]
	run in_client curl -s --http1.1 --max-time 5 -o /dev/null -w '%{http_code}' \
		"http://$WEB:8080/status/418"
	[ "$output" = "418" ]
	run in_client sh -c "head -c 1048577 /dev/zero | curl -s --http1.1 --max-time 10 \
		--data-binary @- -o /dev/null -w '%{http_code}' http://$WEB:8080/post"
	echo "$output"
	[ "$output" = "413" ]
}

@test "h2c with prior knowledge: GET / answers the identity over HTTP/2 (curl and nghttp)" {
	run in_client curl -s --http2-prior-knowledge --max-time 5 -w '%{http_version}' \
		"http://$WEB:8080/"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$IDENTITY"$'\n'"2" ]
	run in_client nghttp -v "http://$WEB:8080/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"recv SETTINGS frame"* ]]
	[[ "$output" == *":status: 200"* ]]
	[[ "$output" == *"x-bpfmesh-pod: web-v1-0"* ]]
	[[ "$output" == *"$IDENTITY"* ]]
}

@test "HTTP/2 JSON: headers with :authority as Host, protocol HTTP/2.0, body, url" {
	run in_client curl -s --http2-prior-knowledge --max-time 5 -H 'X-Trace: abc' \
		-d 'hello' -H 'Content-Type: text/plain' "http://$WEB:8080/anything/x?a=1"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"protocol": "HTTP/2.0"'* ]]
	[[ "$output" == *"\"Host\": \"$WEB:8080\""* ]]
	[[ "$output" == *'"X-Trace": "abc"'* ]]
	[[ "$output" == *'"data": "hello"'* ]]
	[[ "$output" == *'"method": "POST"'* ]]
	[[ "$output" == *"\"url\": \"http://$WEB:8080/anything/x?a=1\""* ]]
	[[ "$output" == *'"VERSION": "v1"'* ]]
}

@test "HTTP/2 /status/N, /delay/N per stream, and the 1 MiB body limit (413)" {
	run in_client curl -s --http2-prior-knowledge --max-time 5 -o /dev/null -w '%{http_code}' \
		"http://$WEB:8080/status/503"
	[ "$output" = "503" ]
	# one connection: /get is answered while /delay/1 still waits
	run in_client nghttp -s "http://$WEB:8080/delay/1" "http://$WEB:8080/get"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(awk '$NF == "/get" { print $5 }' <<<"$output")" = 200 ]
	[ "$(awk '$NF == "/delay/1" { print $5 }' <<<"$output")" = 200 ]
	# responseEnd: "+414us" or "+2.1ms" for /get, "+1.00s" for /delay/1
	get_end=$(awk '$NF == "/get" { print $2 }' <<<"$output")
	delay_end=$(awk '$NF == "/delay/1" { print $2 }' <<<"$output")
	[[ "$get_end" == *us || "$get_end" == +[0-9].*ms || "$get_end" == +[0-9]ms ]]
	[[ "$delay_end" == +1.*s && "$delay_end" != *ms && "$delay_end" != *us ]]
	run in_client sh -c "head -c 1048577 /dev/zero | curl -s --http2-prior-knowledge \
		--max-time 10 --data-binary @- -w ' %{http_code}' http://$WEB:8080/post"
	echo "$output"
	[ "$output" = $'413 Content Too Large\n 413' ]
	run in_client sh -c "head -c 1048576 /dev/zero | curl -s --http2-prior-knowledge \
		--max-time 10 --data-binary @- -o /dev/null -w '%{http_code}' http://$WEB:8080/post"
	[ "$output" = "200" ]
}

@test "Upgrade: h2c from HTTP/1.1: 101, the request answered on stream 1 over HTTP/2" {
	run in_client curl -sv --http2 --max-time 5 "http://$WEB:8080/get"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"< Upgrade: h2c"* ]]
	[[ "$output" == *"< HTTP/1.1 101 Switching Protocols"* ]]
	[[ "$output" == *"< HTTP/2 200"* ]]
	[[ "$output" == *'"protocol": "HTTP/2.0"'* ]]
	[[ "$output" != *'"Http2-Settings"'* ]]
	run in_client nghttp -u -v "http://$WEB:8080/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"HTTP Upgrade response"* ]]
	[[ "$output" == *"$IDENTITY"* ]]
}

@test "100 requests on one HTTP/2 connection" {
	run in_client h2load -n 100 -c 1 -m 10 "http://$WEB:8080/get"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed"* ]]
	[[ "$output" == *"status codes: 100 2xx, 0 3xx, 0 4xx, 0 5xx"* ]]
	# curl after an Upgrade: h2c: one connect, 100 answers
	run in_client curl -s --http2 --max-time 30 -o /dev/null -w '%{http_code} %{num_connects}\n' \
		"http://$WEB:8080/get?i=[1-100]"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^200 ' <<<"$output")" -eq 100 ]
	[ "$(awk '{ n += $2 } END { print n }' <<<"$output")" -eq 1 ]
}

@test "gRPC grpc.health.v1.Health/Check answers SERVING (08 01)" {
	run grpc_call /grpc.health.v1.Health/Check ""
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "code=OK reply=0801" ]
}

@test "gRPC bpfmesh.echo.Echo/Echo answers the identity and echoes the message" {
	# EchoRequest{message: "hello grpc"}
	run grpc_call /bpfmesh.echo.Echo/Echo "0a0a$(hex 'hello grpc')"
	echo "$output"
	[ "$status" -eq 0 ]
	# EchoResponse{identity: 63 bytes, message: 10 bytes}
	[ "$output" = "code=OK reply=0a3f$(hex "$IDENTITY")120a$(hex 'hello grpc')" ]
	run grpc_call /bpfmesh.echo.Echo/Echo ""
	echo "$output"
	[ "$output" = "code=OK reply=0a3f$(hex "$IDENTITY")" ]
}

@test "gRPC x-grpc-status: N makes Echo fail with status N" {
	run grpc_call /bpfmesh.echo.Echo/Echo "0a026869" x-grpc-status=14
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "code=UNAVAILABLE "* ]]
	run grpc_call /bpfmesh.echo.Echo/Echo "0a026869" x-grpc-status=4
	[[ "$output" == "code=DEADLINE_EXCEEDED "* ]]
	run grpc_call /bpfmesh.echo.Echo/Echo "0a026869" x-grpc-status=0
	[[ "$output" == "code=OK reply=0a3f"* ]]
	run grpc_call /bpfmesh.echo.Echo/Echo "0a026869" x-grpc-status=99
	[[ "$output" == "code=INVALID_ARGUMENT "* ]]
}

@test "gRPC unknown method: UNIMPLEMENTED, trailers-only" {
	run grpc_call /bpfmesh.echo.Echo/Nope "0a026869"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "code=UNIMPLEMENTED details=unknown method /bpfmesh.echo.Echo/Nope" ]
	# one HEADERS frame that ends the stream, grpc-status 12 in it, no DATA
	run in_client nghttp -v -H 'content-type: application/grpc' -H 'te: trailers' \
		-d /dev/null "http://$WEB:8080/no.Such/Method"
	echo "$output"
	[[ "$output" == *"grpc-status: 12"* ]]
	[[ "$output" == *"recv HEADERS frame <length="*", flags=0x05, stream_id=13>"* ]]
	[[ "$output" != *"recv DATA frame"* ]]
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
