#!/usr/bin/env bats
# docs/bpftool.md, checked: the bpftool commands it shows work on a running lab's pins, and
# every map shows its BTF field names (the struct layouts of headers/bpfmesh.h), every link its
# attach type. Maps that stay empty in this lab are checked by type and BTF instead.
load helpers

LAB=ibt

setup_file() {
	export LAB P CG WORK
	P=$(pins "$LAB" node1)
	WORK=$(mktemp -d /tmp/bpfmesh-$LAB.XXXXXX)
	lab_teardown "$LAB"
	lab_up "$LAB" -f "$FIX/mesh.yaml" -f "$FIX/vs-90-10.yaml" >&3 2>&3
	CG=$("$BM" lab status --name "$LAB" | awk '$1 == "node" && $2 == "node1" {
		for (i = 3; i < NF; i++) if ($i == "cgroup") print $(i + 1) }')
	# traffic, so that the counters and live-state maps have entries
	"$BM" lab exec --name "$LAB" -n t client-0 -- curl -s -o /dev/null -H "Connection: close" \
		"http://web:8080/get?[1-5]" >/dev/null 2>&1 || true
}

teardown_file() {
	lab_teardown "$LAB"
	[ -f "$WORK/pids" ] && xargs kill < "$WORK/pids" 2>/dev/null
	rm -rf "$WORK"
}

# has_fields TEXT NAME...: every NAME appears in TEXT as a JSON key ("NAME") or a BTF member
# ('NAME'); prints the missing ones.
has_fields() {
	local text=$1 f miss=""
	shift
	for f in "$@"; do
		[[ "$text" == *"\"$f\""* || "$text" == *"'$f'"* ]] || miss="$miss $f"
	done
	[ -z "$miss" ] || { echo "missing fields:$miss"; return 1; }
}

# u32 KEY as the 4 little-endian bytes bpftool takes
# the four bytes of a little-endian u32 key, as bpftool takes them: lookup MAP $(le32 N)
le32() { printf '%d %d %d %d' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $(($1 >> 24)); }
# lookup_le32 MAP N: bpftool map lookup of key N (the bytes must be separate words)
lookup_le32() {
	local -a k
	read -ra k <<<"$(le32 "$2")"
	bpftool map lookup pinned "$1" key "${k[@]}"
}

# pyget EXPR: EXPR over d, the JSON on stdin (bpftool prints BTF-formatted maps as JSON)
pyget() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

@test "every map is pinned, with BTF, as the type maps.h gives it (bpftool map show)" {
	local m t
	for m in bm_svc:hash bm_route:hash bm_subset:array bm_slot:array bm_backend:array \
		bm_bstate:array bm_rr:array bm_pod:hash bm_sock:sk_storage \
		bm_udp:lru_hash bm_meta:array bm_stats:percpu_array bm_names:hash bm_policy:hash \
		bm_health:hash bm_cpool:lru_hash bm_traffic:percpu_hash bm_accel:hash bm_podaddr:hash \
		bm_conf:array; do
		t=${m#*:}
		m=${m%:*}
		run bpftool map show pinned "$P/$m"
		[ "$status" -eq 0 ] || { echo "$m: $output"; return 1; }
		[[ "$output" == *": $t  name $m  "* ]] || { echo "$m: want $t: $output"; return 1; }
		[[ "$output" == *"btf_id "[0-9]* ]] || { echo "$m: no BTF: $output"; return 1; }
	done
	# the flow log: a ring buffer has no key or value type, so no BTF
	run bpftool map show pinned "$P/bm_events"
	[ "$status" -eq 0 ]
	[[ "$output" == *": ringbuf  name bm_events  "* ]]
	# same-node acceleration: the kernel keeps no BTF for a sockhash (keys print as hex)
	run bpftool map show pinned "$P/bm_sockhash"
	[ "$status" -eq 0 ]
	[[ "$output" == *": sockhash  name bm_sockhash  "* ]]
	# the agent's HBONE listeners in pods' namespaces (a sockhash: no BTF either)
	run bpftool map show pinned "$P/bm_hbone"
	[ "$status" -eq 0 ]
	[[ "$output" == *": sockhash  name bm_hbone  "* ]]
}

@test "bm_svc: dump shows the service key and its ids" {
	run bpftool map dump pinned "$P/bm_svc"
	[ "$status" -eq 0 ]
	has_fields "$output" addr port proto family svc_id route_id all_subset flags
	[[ "$output" == *'"addr": [10,96,10,10,0,'* ]]
	[[ "$output" == *'"port": 36895,'* ]] # 8080 in network order, read as a host number
}

@test "bm_route: dump shows the cumulative weights of the 90/10 route" {
	run bpftool map dump pinned "$P/bm_route"
	[ "$status" -eq 0 ]
	has_fields "$output" n total cum subset
	[[ "$output" == *'"total": 100,'* ]]
	[[ "$output" == *'"cum": [90,100,0'* ]]
}

@test "bm_subset, bm_slot, bm_backend, bm_bstate, bm_rr: lookups by id show field names" {
	local sub slot be
	sub=$(bpftool map dump pinned "$P/bm_route" | pyget 'd[0]["value"]["subset"][0]')
	[ -n "$sub" ] && [ "$sub" -gt 0 ]
	run lookup_le32 "$P/bm_subset" "$sub"
	echo "$output"
	[ "$status" -eq 0 ]
	has_fields "$output" first_slot n lb flags
	slot=$(pyget 'd["value"]["first_slot"]' <<<"$output")
	run lookup_le32 "$P/bm_slot" "$slot"
	[ "$status" -eq 0 ]
	has_fields "$output" key value
	be=$(pyget 'd["value"]' <<<"$output")
	[ "$be" -gt 0 ]
	run lookup_le32 "$P/bm_backend" "$be"
	echo "$output"
	[ "$status" -eq 0 ]
	has_fields "$output" addr port family flags pod_id
	[[ "$output" == *'"addr": [10,244,'* ]]
	run lookup_le32 "$P/bm_bstate" "$be"
	[ "$status" -eq 0 ]
	has_fields "$output" active
	run lookup_le32 "$P/bm_rr" "$sub"
	[ "$status" -eq 0 ]
	has_fields "$output" key value
}

@test "bm_pod: the lab's pods by cgroup id, in and outside the mesh" {
	run bpftool map dump pinned "$P/bm_pod"
	[ "$status" -eq 0 ]
	has_fields "$output" flags pod_id addr4 addr6 pad
	local id
	# flags: 1 = in the mesh, 2 = its veth is verified at tc (source address verification)
	id=$(stat -c %i "$CG/t_client-0")
	[ "$(pyget "[e['value']['flags'] for e in d if e['key'] == $id]" <<<"$output")" = "[3]" ]
	id=$(stat -c %i "$CG/plain_outsider-0")
	[ "$(pyget "[e['value']['flags'] for e in d if e['key'] == $id]" <<<"$output")" = "[2]" ]
}

@test "bm_policy, bm_names, bm_meta: dumps show field names" {
	run bpftool map dump pinned "$P/bm_policy"
	[ "$status" -eq 0 ]
	has_fields "$output" od consec_5xx consec_gw interval_ns base_ejection_ns max_ejection_ns \
		max_ejection_pct min_health_pct max_conns connect_timeout_ms pool_key
	run bpftool map dump pinned "$P/bm_names"
	[ "$status" -eq 0 ]
	has_fields "$output" kind id name
	[[ "$output" == *'"name": "t/web"'* ]]
	run bpftool map dump pinned "$P/bm_meta"
	[ "$status" -eq 0 ]
	has_fields "$output" abi loaded generation last_apply_ns last_apply_ok nservices nbackends
	[[ "$output" == *'"loaded": 1,'* ]]
}

@test "bm_stats: per-CPU counters by index" {
	run bpftool map lookup pinned "$P/bm_stats" key 0 0 0 0
	[ "$status" -eq 0 ]
	has_fields "$output" key values cpu value
}

@test "maps that may be empty here show their layout through BTF (bm_cpool bm_health bm_udp bm_sock)" {
	run bpftool btf dump map pinned "$P/bm_cpool"
	[ "$status" -eq 0 ]
	has_fields "$output" bm_cpool_key cgroup_id pool_key
	run bpftool btf dump map pinned "$P/bm_health"
	[ "$status" -eq 0 ]
	has_fields "$output" bm_health lock subset_id od pol
	run bpftool btf dump map pinned "$P/bm_udp"
	[ "$status" -eq 0 ]
	has_fields "$output" bm_udp_key bm_udp_val cookie addr port family
	# socket storage: the records live in the sockets, with no keys to dump
	run bpftool btf dump map pinned "$P/bm_sock" value
	[ "$status" -eq 0 ]
	has_fields "$output" bm_sock orig_addr orig_port family counted backend_id svc_id \
		subset_id sub_flags pool_key timeout_ms src_pod cgroup_id connect_ns established_ns
	[[ "$output" != *created_ns* ]]
	run bpftool btf dump map pinned "$P/bm_udp" kv format c
	[[ "$output" == *"struct bm_udp_key {"* ]]
}

@test "bm_traffic: per-CPU counters per (client pod, service, backend) after traffic" {
	run bpftool map dump pinned "$P/bm_traffic"
	[ "$status" -eq 0 ]
	has_fields "$output" src_pod svc_id backend_id pad values cpu opened closed bytes_sent \
		bytes_received connect_failed
}

@test "every pinned link shows its program's attach type on the node's cgroup" {
	local l t cgid
	cgid=$(stat -c %i "$CG")
	for l in connect4:inet4_connect connect6:inet6_connect sendmsg4:udp4_sendmsg \
		sendmsg6:udp6_sendmsg getpeername4:inet4_getpeername \
		getpeername6:inet6_getpeername recvmsg4:udp4_recvmsg recvmsg6:udp6_recvmsg \
		sockops:sock_ops ingress:inet_ingress egress:inet_egress; do
		t=${l#*:}
		l=${l%:*}
		run bpftool link show pinned "$P/link_bm_$l"
		[ "$status" -eq 0 ] || { echo "$l: $output"; return 1; }
		[[ "$output" == *"attach_type cgroup_$t"* ]] || { echo "$l: $output"; return 1; }
		[[ "$output" == *"cgroup_id $cgid "* ]] || { echo "$l: not on $CG: $output"; return 1; }
	done
}

@test "prog show by the link's program id and by name" {
	local id
	id=$(bpftool -j link show pinned "$P/link_bm_connect4" | pyget 'd["prog_id"]')
	run bpftool prog show id "$id"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "$id: cgroup_sock_addr  name bm_connect4 "* ]]
	[[ "$output" == *"btf_id "* ]]
	run bpftool prog show name bm_connect4
	[ "$status" -eq 0 ]
	[[ "$output" == *"$id: cgroup_sock_addr  name bm_connect4 "* ]]
}

@test "cgroup show: the node's cgroup has all eleven programs; a pod's has them effective" {
	local p
	run bpftool cgroup show "$CG"
	echo "$output"
	[ "$status" -eq 0 ]
	for p in bm_sockops bm_connect4 bm_connect6 bm_sendmsg4 bm_sendmsg6 bm_recvmsg4 \
		bm_recvmsg6 bm_getpeername4 bm_getpeername6 bm_ingress bm_egress; do
		[[ "$output" == *" $p"* ]] || { echo "missing $p"; return 1; }
	done
	run bpftool cgroup show "$CG/t_client-0"
	if grep bm_ <<<"$output"; then false; fi
	run bpftool cgroup show "$CG/t_client-0" effective
	[[ "$output" == *"cgroup_inet4_connect bm_connect4"* ]]
	run bpftool cgroup tree "$(dirname "$CG")"
	[[ "$output" == *"$CG"* ]]
	[[ "$output" == *"bm_sockops"* ]]
}

@test "each pod's network namespace has its sk_lookup link; its veth has the SAV filter" {
	local pod ino
	for pod in t_client-0 plain_outsider-0; do
		ino=$(stat -L -c %i "/proc/$(head -1 "$CG/$pod/cgroup.procs")/ns/net")
		run bpftool -j link show
		[ "$status" -eq 0 ]
		pyget "[l for l in d if l.get('type') == 'netns' and l.get('netns_ino') == $ino]" <<<"$output" | grep -q "sk_lookup" || {
			echo "no sk_lookup link in $pod's namespace ($ino): $output"
			return 1
		}
	done
	run nsenter --net="/run/netns/bm-$LAB-node1" bpftool net show
	[[ "$output" == *"bm_pod_out"* ]]
}

@test "lab down leaves no netns, cgroup, pin or process behind" {
	[ -f "$WORK/pids" ] && xargs kill < "$WORK/pids" 2>/dev/null || true
	lab_down_clean "$LAB"
}
