#!/usr/bin/env bats
# Istio's TCP metrics from the kernel's counters, scraped by a real Prometheus: per-version
# connection counts and bytes must equal exactly what the client did; promtool accepts the
# text; counters never go backwards across a config change or an agent restart.
load helpers

LAB=imt

setup_file() {
	export LAB WORK PROM_PORT MPORT
	lab_teardown "$LAB"
	lab_up "$LAB" -f "$FIX/mesh.yaml" -f "$FIX/vs-90-10.yaml" >&3 2>&3
	WORK=$(mktemp -d /tmp/bpfmesh-metrics.XXXXXX)
	MPORT=$(lab status | sed -n 's|^node node1 .*metrics http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p')
	PROM_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat > "$WORK/prometheus.yml" <<Y
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: bpfmesh
    static_configs: [{targets: ["127.0.0.1:$MPORT"]}]
Y
	prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
		--web.listen-address="127.0.0.1:$PROM_PORT" > "$WORK/prometheus.log" 2>&1 &
	echo $! > "$WORK/prom.pid"
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null && break; sleep 0.1; done
}

teardown_file() {
	[ -f "$WORK/prom.pid" ] && kill "$(cat "$WORK/prom.pid")" 2>/dev/null
	sleep 0.2
	lab_teardown "$LAB"
	rm -rf "$WORK"
}

# PromQL -> "label value" lines
promql() {
	curl -s --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
		/usr/bin/python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    print(" ".join(list(r["metric"].values()) + [r["value"][1]]))'
}

@test "the client's connections and bytes, as Prometheus sees them, are exactly what it did" {
	lab exec -n t client-0 -- curl -s --max-time 60 -H 'Connection: close' \
		-w 'SIZES %{size_request} %{size_header} %{size_download}\n' \
		"http://web:8080/get?[1-300]" > "$WORK/client.out"
	v1=$(grep -c '"VERSION": "v1"' "$WORK/client.out" || true)
	v2=$(grep -c '"VERSION": "v2"' "$WORK/client.out" || true)
	sent=$(awk '/^SIZES/ { s += $2 } END { print s }' "$WORK/client.out")
	recv=$(awk '/^SIZES/ { r += $3 + $4 } END { print r }' "$WORK/client.out")
	echo "client: v1=$v1 v2=$v2 sent=$sent received=$recv"
	[ $((v1 + v2)) -eq 300 ]
	want="v1 $v1
v2 $v2"
	for _ in $(seq 60); do
		got=$(promql 'sum by (destination_version) (istio_tcp_connections_opened_total{reporter="source",source_workload="client"})' | sort)
		[ "$got" = "$want" ] && break
		sleep 0.25
	done
	echo "prometheus: $got"
	[ "$got" = "$want" ]
	# the client and web are on one node: the destination side reports the same connections
	for rep in source destination; do
		[ "$(promql "sum(istio_tcp_connections_closed_total{reporter=\"$rep\",source_workload=\"client\"})")" = "300" ]
		# Istio's meaning: received_bytes is the request (what the client sent), sent_bytes
		# the response (what it received)
		[ "$(promql "sum(istio_tcp_received_bytes_total{reporter=\"$rep\",source_workload=\"client\"})")" = "$sent" ]
		[ "$(promql "sum(istio_tcp_sent_bytes_total{reporter=\"$rep\",source_workload=\"client\"})")" = "$recv" ]
	done
}

@test "labels name source and destination workloads, namespaces, versions and the service" {
	run curl -s "http://127.0.0.1:$MPORT/metrics"
	line=$(grep '^istio_tcp_connections_opened_total{' <<<"$output" | grep 'destination_version="v2"')
	echo "$line"
	for kv in 'reporter="source"' 'source_workload="client"' 'source_workload_namespace="t"' \
		'source_app="client"' 'destination_service="web.t.svc.cluster.local"' \
		'destination_service_name="web"' 'destination_service_namespace="t"' \
		'destination_workload="web-v2"' 'destination_workload_namespace="t"' \
		'destination_app="web"' 'destination_version="v2"' 'request_protocol="tcp"' \
		'connection_security_policy="none"' 'source_principal="unknown"' \
		'source_canonical_service="client"' 'source_canonical_revision="latest"' \
		'destination_canonical_service="web"' 'destination_canonical_revision="v2"' \
		'source_cluster="Kubernetes"' 'destination_cluster="Kubernetes"'; do
		echo "want $kv"
		[[ "$line" == *"$kv"* ]]
	done
	# Istio's mesh dashboard lists proxies by istio_build
	grep -q '^istio_build{component="proxy",tag="[^"]\+"} 1$' <<<"$output"
}

@test "promtool check metrics accepts a scrape" {
	curl -s "http://127.0.0.1:$MPORT/metrics" > "$WORK/scrape.txt"
	run promtool check metrics < "$WORK/scrape.txt"
	echo "$output"
	[ "$status" -eq 0 ]
	# operational metrics: map fill per map, program stats, config generation
	awk '/^bpfmesh_map_fill_ratio\{map="bm_pod"\}/ { ok = $NF > 0 } END { exit !ok }' "$WORK/scrape.txt"
	grep -q '^bpfmesh_map_fill_ratio{map="bm_traffic"}' "$WORK/scrape.txt"
	grep -q '^bpfmesh_program_runs_total{program="bm_connect4"}' "$WORK/scrape.txt"
	awk '/^bpfmesh_config_generations_total/ { ok = $NF >= 1 } END { exit !ok }' "$WORK/scrape.txt"
}

@test "healthz/ready answers 200 while the agent is ready" {
	hport=$(lab status | sed -n 's|^node node1 .*health http://127.0.0.1:\([0-9]*\)/healthz.*|\1|p')
	run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hport/healthz/ready"
	[ "$output" = 200 ]
}

@test "counters never go backwards across a config change and an agent restart" {
	before=$(promql 'sum(istio_tcp_connections_opened_total)')
	lab apply -f "$FIX/vs-1-3.yaml" >/dev/null
	pid=$(bm status --node "$LAB-node1" | sed -n 's/.*running (pid \([0-9]*\)).*/\1/p')
	kill -9 "$pid"
	sleep 0.3
	lab apply -f "$FIX/vs-1-3.yaml" >/dev/null # the lab restarts the agent
	after=""
	for _ in $(seq 40); do
		after=$(curl -s "http://127.0.0.1:$MPORT/metrics" |
			awk '/^istio_tcp_connections_opened_total\{/ { s += $NF } END { print s + 0 }')
		[ "$after" -ge "$before" ] && break
		sleep 0.25
	done
	echo "before $before after $after"
	[ "$after" -eq "$before" ]
}

@test "observe --json: one open and one close per connection, with the right workloads" {
	bm observe --node "$LAB-node1" > /dev/null # drain what earlier tests left
	lab exec -n t client-0 -- curl -s -o /dev/null -H 'Connection: close' \
		"http://web:8080/get?[1-20]"
	sleep 0.2
	bm observe --node "$LAB-node1" --json --workload client > "$WORK/flows.json"
	/usr/bin/python3 - "$WORK/flows.json" <<'P'
import collections, json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
per = collections.defaultdict(list)
for e in ev:
    assert e["source"]["workload"] == "client" and e["source"]["namespace"] == "t", e
    assert e["destination"]["workload"] in ("web-v1", "web-v2"), e
    assert e["destination"]["service"] == "web", e
    per[e["connection"]].append(e["verdict"])
assert len(per) == 20, len(per)
assert all(sorted(v) == ["close", "open"] for v in per.values()), per
print("20 connections, each one open and one close")
P
}

@test "observe: wall-clock time on every line, RFC 3339 in JSON, --since leaves older events out" {
	bm observe --node "$LAB-node1" > /dev/null # drain
	t0=$(date -u +%s)
	pod_curl client-0 t -o /dev/null -H 'Connection: close' http://web:8080/get
	sleep 0.2
	run bm observe --node "$LAB-node1" --json --since 10s
	echo "$output"
	line=$(grep '"verdict":"open"' <<<"$output" | head -1)
	[[ "$line" =~ \"time\":\"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9})Z\" ]]
	t=$(date -u -d "${BASH_REMATCH[1]}" +%s)
	echo "event at $t, test started at $t0"
	[ "$t" -ge $((t0 - 1)) ] && [ "$t" -le $((t0 + 5)) ]
	# the same events as text: each line starts with the time, as hubble prints it
	pod_curl client-0 t -o /dev/null -H 'Connection: close' http://web:8080/get
	sleep 0.2
	run bm observe --node "$LAB-node1"
	echo "$output"
	[[ "$(head -1 <<<"$output")" =~ ^[A-Z][a-z]{2}\ [\ 0-9][0-9]\ [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}:\ open ]]
	# --since: what is older is left out
	pod_curl client-0 t -o /dev/null -H 'Connection: close' http://web:8080/get
	sleep 2.2
	run bm observe --node "$LAB-node1" --since 1s
	echo "$output"
	[ -z "$output" ]
	run bm observe --node "$LAB-node1" --since 1x
	[ "$status" -eq 2 ]
}

@test "graph --format json has the edges the traffic made and no others; svg renders" {
	run bm graph --node "$LAB-node1" --format json --window 0
	echo "$output"
	edges=$(/usr/bin/python3 -c '
import json, sys
g = json.loads(sys.argv[1])
print(" ".join(sorted("%s>%s" % (e["source"], e["destination"]) for e in g["edges"])))' "$output")
	[ "$edges" = "t/client>t/web-v1 t/client>t/web-v2" ]
	run bm graph --node "$LAB-node1" --format svg --window 0
	[[ "$output" == *"<svg"* ]]
	[[ "$output" == *"t/client"* ]] # (Graphviz writes "-" as &#45;)
}

@test "every metric the Grafana dashboard queries is in a live scrape" {
	curl -s "http://127.0.0.1:$MPORT/metrics" > "$WORK/scrape.txt"
	/usr/bin/python3 - "$BATS_TEST_DIRNAME/../../deploy/grafana/bpfmesh-dashboard.json" \
		"$WORK/scrape.txt" <<'P'
import json, re, sys
dash = json.load(open(sys.argv[1]))
# exported families (a family may have no series yet, e.g. no backend under outlier detection)
have = {l.split()[2] for l in open(sys.argv[2]) if l.startswith("# TYPE ")}
want = set()
for p in dash["panels"]:
    for t in p["targets"]:
        want |= set(re.findall(r"\b((?:istio|bpfmesh)_[a-z_]+)", t["expr"]))
missing = want - have
assert not missing, missing
print(len(want), "metrics used by the dashboard, all exported")
P
}

@test "connect failures are TCP series with response_flags UF, as Envoy reports them" {
	uf() {
		curl -s "http://127.0.0.1:$MPORT/metrics" | awk 'index($0, "istio_tcp_connections_opened_total{") == 1 &&
			/reporter="source"/ && /response_flags="UF"/ && /destination_workload="web-v2"/ { s += $NF } END { print s + 0 }'
	}
	lab apply -f "$FIX/vs-0-100.yaml" >/dev/null
	u0=$(uf)
	lab stop -n t deploy/web-v2 >/dev/null
	fails=0
	for _ in 1 2 3; do
		lab exec -n t client-0 -- curl -s --max-time 3 -o /dev/null http://web:8080/ || fails=$((fails + 1))
	done
	lab start -n t web-v2-0 >/dev/null
	lab apply -f "$FIX/vs-90-10.yaml" >/dev/null
	du=$(($(uf) - u0))
	echo "curl failed $fails times; UF series +$du"
	[ "$fails" -eq 3 ]
	[ "$du" -eq 3 ]
	# and the same numbers closed: nothing of them stays open
	curl -s "http://127.0.0.1:$MPORT/metrics" | grep '^istio_tcp_connections_closed_total{.*response_flags="UF"' | grep -q 'destination_workload="web-v2"'
}

# istio_queries SECTION...: the PromQL blocks of tests/integration/fixtures/istio-queries.md in
# those sections (panel targets at the start of a line, not the indented variable queries),
# one per line, with the substitutions Istio's own dashboard test makes
istio_queries() {
	/usr/bin/python3 - "$FIX/istio-queries.md" "$@" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
want = sys.argv[2:]
sec = None
for part in re.split(r"^(### .*)$", text, flags=re.M):
    m = re.match(r"### (\S+)", part)
    if m:
        sec = m.group(1)
        continue
    if sec not in want:
        continue
    for q in re.findall(r"^```promql\n(.*?)\n```", part, flags=re.M | re.S):
        for a, b in [("$dstns", ".*"), ("$dstwl", ".*"), ("$service", "web.t.svc.cluster.local"),
                     ("$srcns", ".*"), ("$srcwl", ".*"), ("$namespace", ".*"),
                     ("$workload", ".*"), ("$dstsvc", ".*"), ("$qrep", "destination"),
                     ('connection_security_policy="unknown"', 'connection_security_policy=~".*"'),
                     ('connection_security_policy="mutual_tls"', 'connection_security_policy=~".*"'),
                     ('connection_security_policy!="mutual_tls"', 'connection_security_policy=~".*"'),
                     ('destination_workload_namespace!="istio-system"', 'destination_workload_namespace=~".*"'),
                     ('source_workload_namespace!="istio-system"', 'source_workload_namespace=~".*"'),
                     ("$__rate_interval", "1m"), ("microservices", "t")]:
            q = q.replace(a, b)
        print(" ".join(q.split()))
EOF
}

# range QUERY: the series a query_range over the last minute (1 s steps) returns, as JSON
range_query() {
	curl -s --get "http://127.0.0.1:$PROM_PORT/api/v1/query_range" --data-urlencode "query=$1" \
		--data-urlencode "start=$(($(date +%s) - 60))" --data-urlencode "end=$(date +%s)" \
		--data-urlencode "step=1"
}

@test "Istio's dashboards: every TCP panel (mesh, service, workload) and istio_build return data" {
	lab exec -n t client-0 -- curl -s --max-time 30 -o /dev/null "http://web:8080/get?[1-20]"
	sleep 3 # scraped every second
	n=0
	while IFS= read -r q; do
		out=$(range_query "$q")
		k=$(/usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["data"]["result"]) if d.get("status") == "success" else -1)' <<<"$out")
		echo "$k series: $q"
		[ "$k" -gt 0 ]
		n=$((n + 1))
	done < <(istio_queries 1.1 1.2 1.3)
	echo "$n queries"
	[ "$n" -ge 20 ]
}

@test "Kiali's graph: its TCP queries find the edges, every series with the labels Kiali keeps" {
	lab exec -n t client-0 -- curl -s --max-time 30 -o /dev/null "http://web:8080/get?[1-20]"
	sleep 3
	# the Kiali UI's namespace graph for namespace t: per metric, 0) unserviced incoming
	# (none in a healthy lab), 1) incoming by destination telemetry, 2) outgoing by source
	i=0
	while IFS= read -r q; do
		[[ "$q" == *'app!="ztunnel"'* ]] || continue # the UI's queries (the others: the API's)
		out=$(curl -s --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$q")
		run /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["status"] == "success", d
res = d["data"]["result"]
keep = ["source_workload_namespace", "source_workload", "source_canonical_service",
        "source_canonical_revision", "destination_service_namespace", "destination_service",
        "destination_workload_namespace", "destination_workload", "destination_canonical_service",
        "destination_canonical_revision", "source_cluster", "destination_cluster"]
for r in res:
    m = r["metric"]
    bad = [k for k in keep if not m.get(k) or m[k] == "unknown"]
    assert not bad, "a series Kiali drops: %s lacks %s" % (m, bad)
print(len(res))' "$out"
		echo "query $((i % 3)): $output: $q"
		[ "$status" -eq 0 ]
		if [ $((i % 3)) -eq 0 ]; then [ "$output" -eq 0 ]; else [ "$output" -ge 1 ]; fi
		i=$((i + 1))
	done < <(istio_queries 2.2)
	[ "$i" -eq 6 ]
}

@test "lab down leaves nothing behind" {
	lab_down_clean "$LAB"
}
