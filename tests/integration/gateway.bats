#!/usr/bin/env bats
# The ingress gateway (Istio's Gateway kind, served by every lab agent with --ingress): the
# guide's section 4 verbatim (Gateway + VirtualService, `lab port-forward
# svc/istio-ingressgateway`, curl from the host), host matching and route order as Envoy's
# virtual hosts do it, httpsRedirect, traffic into the mesh as the gateway's own identity
# (STRICT pods accept it, AuthorizationPolicy can name it), metrics, and port-forward to pods.
load helpers

LAB=igw
GWF="$FIX/gateway"
EX="$BATS_TEST_DIRNAME/../../deploy/examples"
P80=18080  # host ports the suite's port-forwards listen on
P81=18081
P443=18443
P90=18090
P8443=18444
P8444=18445

setup_file() {
	export LAB WORK
	lab_teardown "$LAB"
	WORK=$(mktemp -d /tmp/bpfmesh-gw.XXXXXX)
	"$BATS_TEST_DIRNAME/gw_certs.sh" "$WORK" a.example.com b.example.com
	lab_up "$LAB" -f "$GWF/base.yaml" -f "$GWF/routes.yaml" -f "$GWF/edge.yaml" \
		-f "$WORK/secrets.yaml" -f "$GWF/tls.yaml" -f "$GWF/gwapi.yaml" \
		-f "$GWF/passthrough.yaml" -f "$GWF/tcp.yaml" >&3 2>&3
	lab port-forward -n istio-system svc/istio-ingressgateway "$P80:80" --background >&3
	lab port-forward -n istio-system svc/istio-ingressgateway "127.0.0.1:$P81:8081" \
		--background >&3
	lab port-forward -n istio-system svc/istio-ingressgateway "$P443:443" --background >&3
	lab port-forward -n gw svc/edge-istio "$P90:8090" --background >&3
	lab port-forward -n istio-system svc/istio-ingressgateway "$P8443:8443" --background >&3
	lab port-forward -n istio-system svc/istio-ingressgateway "$P8444:8444" --background >&3
}

teardown() { lab_logs_if_failed; }

teardown_file() {
	pkill -f "openssl s_server -accept 9443 -www -quiet -cert $WORK" || true
	lab_teardown "$LAB"
	lab_teardown iguide
	rm -rf "$WORK"
}

# curl to the HTTPS port as HOST (SNI and Host), trusting the suite's CA: tcurl HOST PATH [args]
tcurl() {
	local host=$1 path=$2
	shift 2
	curl -s --max-time 10 --cacert "$WORK/ca.crt" --resolve "$host:$P443:127.0.0.1" \
		-w ' %{http_code}' "$@" "https://$host:$P443$path"
}

# the SHA-256 fingerprint of the certificate the HTTPS port presents for SNI $1 (hex, no colons)
served_cert() {
	openssl s_client -connect "127.0.0.1:$P443" -servername "$1" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 | sed 's/.*=//; s/://g'
}
file_cert() { openssl x509 -noout -fingerprint -sha256 -in "$1" | sed 's/.*=//; s/://g'; }

# curl through the gateway: gcurl HOST PATH [curl args...] (body, then " CODE")
gcurl() {
	local host=$1 path=$2
	shift 2
	curl -s --max-time 10 -H "Host: $host" -w ' %{http_code}' "$@" "http://127.0.0.1:$P80$path"
}

@test "the guide's section 4: frontend-gateway.yaml, port-forward svc/istio-ingressgateway 8080:80, curl" {
	local pf port
	lab_teardown iguide
	LAB=iguide lab_up iguide -f "$EX/00-namespace.yaml" -f "$EX/frontend.yaml" >&3 2>&3
	run env LAB=iguide "$BM" lab apply --name iguide -f "$EX/frontend-gateway.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	run "$BM" lab status --name iguide
	echo "$output"
	[[ "$output" == *"ingress http://10.244.255.1:80 gateway microservices/frontend-gateway node node1"* ]]
	# as kubectl does: a free port, foreground, Ctrl-C (SIGINT) ends it
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$BM" lab port-forward --name iguide -n istio-system svc/istio-ingressgateway "$port:80" \
		>"$BATS_TEST_TMPDIR/pf.out" 2>&1 &
	pf=$!
	for _ in $(seq 50); do grep -q Forwarding "$BATS_TEST_TMPDIR/pf.out" && break; sleep 0.1; done
	cat "$BATS_TEST_TMPDIR/pf.out"
	grep -q "Forwarding from 127.0.0.1:$port -> 80" "$BATS_TEST_TMPDIR/pf.out"
	run curl -s --max-time 10 "http://127.0.0.1:$port/"
	echo "$output"
	[[ "$output" == *"bpfmesh echo: pod frontend-0, namespace microservices"* ]]
	kill -INT "$pf"
	wait "$pf" || true
	run curl -s --max-time 5 "http://127.0.0.1:$port/"
	[ "$status" -eq 7 ] # refused: the forward is gone
	# counted as Istio counts a gateway's requests: source istio-ingressgateway
	# then the same through the Gateway API (deploy/examples/frontend-httproute.yaml)
	run "$BM" lab apply --name iguide -f "$EX/frontend-httproute.yaml"
	[ "$status" -eq 0 ]
	"$BM" lab port-forward --name iguide -n microservices svc/frontend-gateway-istio "$port:80" \
		--background
	run curl -s --max-time 10 "http://127.0.0.1:$port/"
	echo "$output"
	[[ "$output" == *"bpfmesh echo: pod frontend-0, namespace microservices"* ]]
	[ "$(LAB=iguide series_sum node1 istio_requests_total 'reporter="source"' \
		'source_workload="istio-ingressgateway"' 'source_workload_namespace="istio-system"' \
		'destination_service="frontend.microservices.svc.cluster.local"' 'response_code="200"')" -eq 2 ]
	lab_teardown iguide
}

@test "virtual hosts: exact beats the wildcard, any case, any :port; an unknown host is 404 NR" {
	run gcurl web.example.com /get
	echo "$output"
	[[ "$output" == *'"pod": "web-v1-0"'*' 200' ]]
	run gcurl WEB.Example.COM:80 /get
	[[ "$output" == *'"pod": "web-v1-0"'*' 200' ]]
	run gcurl foo.example.com /get
	echo "$output"
	[[ "$output" == *'"pod": "api-0"'*' 200' ]]
	run gcurl a.b.example.com /get
	[[ "$output" == *'"pod": "api-0"'*' 200' ]]
	# example.com itself is not under *.example.com; other.test is on no server
	run gcurl example.com /get
	[[ "$output" == *' 404' ]]
	run gcurl other.test /get
	[[ "$output" == *' 404' ]]
	[ "$(series_sum node1 istio_requests_total 'reporter="source"' 'response_code="404"' \
		'response_flags="NR"')" -ge 2 ]
}

@test "routes in order on the gateway: uri and query match, header match, a match for mesh only never holds" {
	run gcurl web.example.com '/get?v=2'
	[[ "$output" == *'"pod": "web-v2-0"'*' 200' ]]
	run gcurl web.example.com /get
	echo "$output"
	[[ "$output" == *'"pod": "web-v1-0"'*' 200' ]] # fell through to the default route
	run gcurl exact.test /get -H 'x-ab: b'
	[[ "$output" == *'"pod": "web-v2-0"'*' 200' ]]
	run gcurl exact.test /get
	[[ "$output" == *'"pod": "api-0"'*' 200' ]]
}

@test "the gateway's own AuthorizationPolicy: DENY by path and by the client's address, 403 before routing" {
	run gcurl web.example.com /admin/users
	echo "$output"
	[[ "$output" == "RBAC: access denied 403" ]]
	run gcurl nowhere.test /admin/users # (denied before the virtual host is looked up)
	[[ "$output" == *" 403" ]]
	run gcurl web.example.com /private
	[[ "$output" == *" 403" ]]
	run gcurl web.example.com /get
	[[ "$output" == *'"pod": "web-v1-0"'*' 200' ]]
}

@test "the edge: X-Forwarded-For gets the client's address; httpsRedirect answers 301" {
	run gcurl foo.example.com /get -H 'X-Forwarded-For: 192.0.2.7'
	echo "$output"
	[[ "${output,,}" == *'"x-forwarded-for": "192.0.2.7,'* ]]
	run curl -s --max-time 10 -D - -o /dev/null -H 'Host: shop.test' "http://127.0.0.1:$P81/cart?x=1"
	echo "$output"
	[[ "$output" == *"HTTP/1.1 301"* ]]
	[[ "$output" == *"location: https://shop.test/cart?x=1"* ]]
}

@test "into the mesh as the gateway's identity: STRICT web on node2 admits it; a mesh pod the policy does not name is refused" {
	run gcurl web.example.com /get
	[[ "$output" == *'"pod": "web-v1-0"'*' 200' ]]
	# the destination's agent saw the gateway's certificate
	[ "$(series_sum node2 istio_requests_total 'reporter="destination"' \
		'source_principal="spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"' \
		'destination_workload="web-v1"' 'connection_security_policy="mutual_tls"' \
		'response_code="200"')" -ge 1 ]
	# (an L4 policy, as ztunnel enforces it: the connection is refused, no HTTP answer)
	run pod_curl sleep-0 gw -w ' %{http_code}' http://web/get
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$output" = " 000" ]
}

@test "port-forward to a pod, a deployment and a Service's targetPort; bad specs are refused" {
	local port
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	lab port-forward -n gw svc/api "$port:80" --background
	run curl -s --max-time 10 "http://127.0.0.1:$port/get"
	[[ "$output" == *'"pod": "api-0"'* ]]
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	lab port-forward -n gw deploy/web-v2 "$port:8080" --background
	run curl -s --max-time 10 "http://127.0.0.1:$port/get"
	[[ "$output" == *'"pod": "web-v2-0"'* ]]
	run lab port-forward -n gw svc/api 1:2:3:4
	[ "$status" -eq 2 ]
	run lab port-forward -n gw svc/api 9999:81
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"Service gw/api has no port 81"* ]]
	run lab port-forward -n gw nosuchpod 9999:80
	[ "$status" -eq 1 ]
}

@test "HTTPS: a certificate per host chosen by SNI; HTTP/2 (ALPN) and HTTP/1.1; an unknown name gets no handshake" {
	run served_cert a.example.com
	[ -n "$output" ]
	[ "$output" = "$(file_cert "$WORK/a.example.com.crt")" ]
	run served_cert b.example.com
	[ "$output" = "$(file_cert "$WORK/b.example.com.crt")" ]
	run tcurl a.example.com /get -v
	echo "$output"
	[[ "$output" == *"ALPN: server accepted h2"* ]]
	[[ "$output" == *'"x-forwarded-proto": "https"'* ]]
	[[ "$output" == *'"pod": "api-0"'*' 200' ]]
	run tcurl a.example.com /get --http1.1
	[[ "$output" == *'"protocol": "HTTP/1.1"'*'"pod": "api-0"'*' 200' ]]
	local before
	before=$(lab_metrics node1 | awk '/^bpfmesh_gateway_tls_handshake_failures_total/ { print $2 }')
	run curl -s --max-time 10 -k --resolve "c.example.com:$P443:127.0.0.1" "https://c.example.com:$P443/"
	[ "$status" -eq 35 ] # a TLS alert: no server of the port is c.example.com
	[ "$(lab_metrics node1 | awk '/^bpfmesh_gateway_tls_handshake_failures_total/ { print $2 }')" -eq $((before + 1)) ]
	run lab status
	[[ "$output" == *"ingress https://10.244.255.1:443 gateway gw/tls-gw node node1"* ]]
}

@test "MUTUAL: no client certificate, no request; with one of the Secret's CA, served; minProtocolVersion holds" {
	run tcurl b.example.com /get
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" != *"pod"* ]]
	run tcurl b.example.com /get --cert "$WORK/client.crt" --key "$WORK/client.key"
	echo "$output"
	[[ "$output" == *'"pod": "web-v2-0"'*' 200' ]] # the authority match of tls-hosts
	run tcurl b.example.com /get --cert "$WORK/client.crt" --key "$WORK/client.key" --tls-max 1.2
	[ "$status" -eq 35 ] # TLSV1_3 at least
	# a certificate of another CA is refused too
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$BATS_TEST_TMPDIR/o.key" \
		-out "$BATS_TEST_TMPDIR/o.crt" -days 1 -subj /CN=other 2>/dev/null
	run tcurl b.example.com /get --cert "$BATS_TEST_TMPDIR/o.crt" --key "$BATS_TEST_TMPDIR/o.key"
	[ "$status" -ne 0 ]
	[[ "$output" != *"pod"* ]]
}

@test "a TLS session of the SIMPLE server does not resume on the MUTUAL one (no certificate, no request)" {
	run /usr/bin/python3 "$BATS_TEST_DIRNAME/gw_tls_resume.py" 127.0.0.1 "$P443" a.example.com \
		b.example.com "$WORK/ca.crt"
	echo "$output"
	[[ "$output" == *"resumed no"* ]]
	[[ "$output" != *"code 200"* ]]
}

@test "PASSTHROUGH: TLS by SNI to a pod on another node that terminates it itself; another name is closed; a TLSRoute the same" {
	local pt=$WORK/pass addr
	mkdir -p "$pt"
	"$BATS_TEST_DIRNAME/gw_certs.sh" "$pt" secure.example.com
	lab stop -n gw tlsapp-0 # its echo server makes way for a TLS one
	lab exec -n gw tlsapp-0 -- timeout 120 openssl s_server -accept 9443 -www -quiet \
		-cert "$pt/secure.example.com.crt" -key "$pt/secure.example.com.key" >/dev/null 2>&1 3>&- &
	for _ in $(seq 50); do
		run curl -s --max-time 5 --cacert "$pt/ca.crt" \
			--resolve "secure.example.com:$P8443:127.0.0.1" "https://secure.example.com:$P8443/"
		[[ "$output" == *"s_server"* ]] && break
		sleep 0.2
	done
	[[ "$output" == *"s_server"* ]] # the pod's own TLS, end to end (its CA, its page)
	run openssl s_client -connect "127.0.0.1:$P8443" -servername secure.example.com </dev/null
	[[ "$output" == *"CN = secure.example.com"* ]]
	run curl -s --max-time 5 -k --resolve "other.example.com:$P8443:127.0.0.1" \
		"https://other.example.com:$P8443/"
	[ "$status" -ne 0 ]
	run lab status
	[[ "$output" == *"ingress tls://10.244.255.1:8443 gateway gw/pass-gw node node1"* ]]
	# the gateway's own AuthorizationPolicy holds on a PASSTHROUGH port too (L4): 8444, the
	# same server on another port, is denied by passthrough.yaml's policy
	run curl -s --max-time 5 --cacert "$pt/ca.crt" \
		--resolve "secure.example.com:$P8444:127.0.0.1" "https://secure.example.com:$P8444/"
	[ "$status" -ne 0 ]
	[[ "$output" != *"s_server"* ]]
	# the same through the Gateway API: edge's TLS listener (Passthrough) and a TLSRoute
	addr=$(lab status | sed -n 's|^ingress tls://\([0-9.]*\):9445 gateway gw/edge .*|\1|p' | head -n 1)
	echo "edge's tls listener: $addr"
	run nsenter --net="/run/netns/bm-$LAB-fabric" curl -s --max-time 5 --cacert "$pt/ca.crt" \
		--resolve "secure.example.com:9445:$addr" "https://secure.example.com:9445/"
	[[ "$output" == *"s_server"* ]]
	pkill -f "openssl s_server -accept 9443 -www -quiet -cert $pt" || true
	lab start -n gw tlsapp-0
}

@test "Secret rotation: new connections get the new certificate, an open connection goes on" {
	local new=$BATS_TEST_TMPDIR/new go=$BATS_TEST_TMPDIR/go hold
	mkdir -p "$new"
	"$BATS_TEST_DIRNAME/gw_certs.sh" "$new" a.example.com
	/usr/bin/python3 "$BATS_TEST_DIRNAME/gw_tls_hold.py" 127.0.0.1 "$P443" a.example.com \
		"$WORK/ca.crt" "$go" >"$BATS_TEST_TMPDIR/hold" 2>&1 &
	hold=$!
	for _ in $(seq 50); do grep -q code "$BATS_TEST_TMPDIR/hold" && break; sleep 0.1; done
	cat "$BATS_TEST_TMPDIR/hold"
	grep -q "cert $(file_cert "$WORK/a.example.com.crt") code 200" "$BATS_TEST_TMPDIR/hold"
	run lab apply -f "$new/secrets.yaml"
	[ "$status" -eq 0 ]
	run served_cert a.example.com
	[ "$output" = "$(file_cert "$new/a.example.com.crt")" ]
	touch "$go"
	wait "$hold"
	cat "$BATS_TEST_TMPDIR/hold"
	grep -q "again code 200" "$BATS_TEST_TMPDIR/hold"
	# (the new Secret has its own CA: clients of the old one now fail, as they would with Istio)
	run curl -s --max-time 10 --cacert "$new/ca.crt" --resolve "a.example.com:$P443:127.0.0.1" \
		"https://a.example.com:$P443/get"
	[[ "$output" == *'"pod": "api-0"'* ]]
}

# through the Gateway API's Gateway edge: ccode PATH [curl args]: "CODE POD" (x-bpfmesh-pod)
gapi() {
	local path=$1
	shift
	curl -s --max-time 10 -o /dev/null -D - -H 'Host: shop.example.com' "$@" \
		"http://127.0.0.1:$P90$path" | tr -d '\r' |
		awk '/^HTTP/ { c = $2 } tolower($1) == "x-bpfmesh-pod:" { p = $2 }
		     tolower($1) == "location:" { p = $2 } END { print c, p }'
}

@test "Gateway API: a Gateway of class istio gets NAME-istio; HTTPRoute path-segment prefix, Exact first, headers, filters, redirect, rewrite" {
	run lab status
	[[ "$output" == *"ingress http://10.244.255.1:8090 gateway gw/edge (Gateway API) node node1"* ]]
	[ "$(gapi /v2)" = "404 web-v2-0" ] # (the echo has no /v2: which pod answered is the point)
	[ "$(gapi /v2/get)" = "404 web-v2-0" ]
	[ "$(gapi /v2/exact)" = "404 api-0" ] # Exact beats the earlier rule's PathPrefix
	run gapi /v2x                       # /v2 is no prefix of /v2x: the last rule's split
	[[ "$output" != *web-v2-0* || "$output" == "404 web-v2-0" ]]
	run curl -s --max-time 10 -D - -H 'Host: shop.example.com' -H 'X-Canary: yes' \
		"http://127.0.0.1:$P90/get"
	echo "$output"
	[[ "$output" == *'"pod": "web-v2-0"'* ]]
	[[ "$output" == *'"x-from": "gwapi"'* ]]
	[[ "${output,,}" == *"x-route: canary"* ]]
	[ "$(gapi '/old/x?a=1')" = "301 http://shop.example.com/new/x?a=1" ]
	[ "$(gapi /old)" = "301 http://shop.example.com/new" ]
	run curl -s --max-time 10 -H 'Host: shop.example.com' "http://127.0.0.1:$P90/api/get"
	[[ "$output" == *'"url": "http://shop.example.com/get"'*'"pod": "api-0"'* ]]
	run curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Host: other.test' \
		"http://127.0.0.1:$P90/get"
	[ "$output" = 404 ] # no hostname of the route
	run bm analyze -f "$GWF/base.yaml" -f "$GWF/gwapi.yaml"
	[[ "$output" == *"Info [BM0020] (HTTPRoute gw/shop "*") Accepted=True, ResolvedRefs=True"* ]]
}

@test "Gateway API: backendRefs weights 1:1 per request, within 5 sigma of 200; GAMMA (a Service parent) routes mesh requests" {
	local v1 v2
	run curl -s --max-time 60 -H 'Host: shop.example.com' "http://127.0.0.1:$P90/get?[1-200]"
	v1=$(grep -c '"pod": "web-v1-0"' <<<"$output" || true)
	v2=$(grep -c '"pod": "web-v2-0"' <<<"$output" || true)
	echo "v1 $v1 v2 $v2"
	[ $((v1 + v2)) -eq 200 ]
	within_5sigma "$v1" 200 1 2
	# GAMMA: mesh requests to web-v2 with x-gamma: api go to api
	run pod_curl sleep-0 gw -H 'x-gamma: api' http://web-v2/get
	[[ "$output" == *'"pod": "api-0"'* ]]
	run pod_curl sleep-0 gw -o /dev/null -w '%{http_code}' http://web-v2/get
	[ "$output" = 403 ] # the rest goes to web-v2, whose policy admits the gateway only
}

@test "validate and lab apply say what the gateway does not serve yet (ISTIO_MUTUAL, the mesh's ports)" {
	run bm validate -f "$FIX/gateway/unserved.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"spec.servers[0].port.protocol: warning: not yet served: bpfmesh's gateway serves HTTP, HTTP2 and GRPC servers, HTTPS with tls.mode SIMPLE or MUTUAL, TLS or HTTPS with PASSTHROUGH, and TCP (no listener is opened for HTTPS ISTIO_MUTUAL)"* ]]
	[[ "$output" == *"spec.servers[1].port.number: warning: not served: the mesh keeps this port for itself"* ]]
	[[ "$output" != *"spec.tcp: warning"* ]] # tcp routes on gateways are served
}

@test "a Gateway TCP server: the tcp route's destination gets the bytes as they are (HTTP through it), a server that speaks first is heard, lab status says tcp://" {
	local addr fab="/run/netns/bm-$LAB-fabric"
	run lab status
	[[ "$output" == *"ingress tcp://10.244.255."*":9000 gateway gw/tcp-gw node "* ]]
	addr=$(sed -n 's|^ingress tcp://\([0-9.]*\):9000 gateway gw/tcp-gw .*|\1|p' <<<"$output" | head -n 1)
	# HTTP as opaque bytes: api answers, whatever Host says (no virtual hosts on TCP)
	run nsenter --net="$fab" curl -s --max-time 10 -H 'Host: nothing.test' "http://$addr:9000/get"
	echo "$output"
	[[ "$output" == *'"pod": "api-0"'* ]]
	# the Gateway API's: edge's TCP listener and a TCPRoute
	run lab status
	addr=$(sed -n 's|^ingress tcp://\([0-9.]*\):9100 gateway gw/edge .*|\1|p' <<<"$output" | head -n 1)
	run nsenter --net="$fab" curl -s --max-time 10 "http://$addr:9100/get"
	[[ "$output" == *'"pod": "api-0"'* ]]
	run bm analyze -f "$GWF/base.yaml" -f "$GWF/gwapi.yaml" -f "$GWF/passthrough.yaml"
	[[ "$output" == *"Info [BM0020] (TCPRoute gw/edge-tcp "*") Accepted=True, ResolvedRefs=True"* ]]
	[[ "$output" == *"Info [BM0020] (TLSRoute gw/edge-tls "*") Accepted=True, ResolvedRefs=True"* ]]
	# a server-first protocol (banner's echo, ECHO_BANNER, on node2): its first line arrives
	# before the client sends a byte
	cat >"$BATS_TEST_TMPDIR/hear.py" <<-'EOF'
	import socket, sys
	s = socket.create_connection((sys.argv[1], 9001), timeout=5)
	print(s.recv(64).decode().strip())
	EOF
	run nsenter --net="$fab" /usr/bin/python3 "$BATS_TEST_TMPDIR/hear.py" "$addr"
	echo "$output"
	[ "$output" = "220 banner first" ]
}

@test "an agent upgrade keeps the gateway's port: 100 requests during it, every one answered" {
	local out=$BATS_TEST_TMPDIR/codes
	for _ in $(seq 100); do
		curl -s --max-time 10 -o /dev/null -w '%{http_code}\n' -H 'Host: web.example.com' \
			"http://127.0.0.1:$P80/get"
	done >"$out" &
	local loop=$!
	sleep 0.3
	run lab agent upgrade node1
	echo "$output"
	[ "$status" -eq 0 ]
	wait "$loop"
	sort "$out" | uniq -c
	[ "$(grep -c '^200$' "$out")" -eq 100 ]
	# the next agent took the listener (no "not one this agent serves")
	run grep -c "listener on 10.244.255.1:80 is not one this agent serves" \
		"/run/bpfmesh/lab/$LAB/agent-node1.log"
	[ "$output" = 0 ]
}

@test "a Gateway deleted closes its port: refused at once, not a hang" {
	run lab delete -f "$GWF/edge.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	run curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P81/"
	echo "status $status $output"
	# the forward connects, the node refuses: curl sees the connection close, not a timeout
	[ "$status" -ne 28 ]
	[ "$status" -ne 0 ] || [ "$output" = "000" ]
}

@test "lab down stops the port-forwards and leaves nothing behind" {
	lab_down_clean "$LAB"
	run curl -s --max-time 5 "http://127.0.0.1:$P80/"
	[ "$status" -eq 7 ]
}
