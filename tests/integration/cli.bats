#!/usr/bin/env bats
# The CLI's habits, as kubectl, istioctl and hubble users expect them: every command and
# subcommand answers -h/--help with its usage on stdout and exit 0, `version` and `help`
# exist, validate and analyze read files, directories and stdin, analyze speaks istioctl's
# format. No lab, no root needed.
load helpers
bats_require_minimum_version 1.5.0

COMMANDS=(agent validate analyze status services endpoints observe graph uninstall lab "lab up"
	"lab apply" "lab exec" "lab stop" "lab start" "lab status" "lab agent" "lab down" ca
	"ca init" "ca issue" "ca show" "ca node" "ca serve")

@test "every command and subcommand: -h and --help print its usage on stdout, exit 0" {
	for c in "${COMMANDS[@]}"; do
		for h in -h --help; do
			# shellcheck disable=SC2086 # "lab up" is a command and its subcommand
			run --separate-stderr "$BM" $c $h
			[ "$status" -eq 0 ] || { echo "$c $h: exit $status"; false; }
			[[ "$output" == "usage: bpfmesh ${c%% *}"* ]] || { echo "$c $h: $output"; false; }
			[ -z "$stderr" ] || { echo "$c $h wrote to stderr: $stderr"; false; }
		done
	done
}

@test "a subcommand's help is its own: lab up, ca serve, help lab up" {
	run "$BM" lab up --help
	[[ "$output" == "usage: bpfmesh lab up -f FILE..."* ]]
	[[ "$output" != *"lab down"* ]]
	run "$BM" ca serve -h
	[[ "$output" == "usage: bpfmesh ca serve --dir CA_DIR"* ]]
	run "$BM" help lab up
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: bpfmesh lab up -f FILE..."* ]]
	# what follows -- belongs to the command run in a pod, not to us
	run "$BM" lab exec --name nosuchlab -n x pod -- curl --help
	[ "$status" -ne 0 ]
	[[ "$output" != "usage: bpfmesh lab exec"* ]]
}

@test "bpfmesh version and bpfmesh help" {
	run "$BM" version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^bpfmesh\ [^\ ]+\ \(map\ ABI\ [0-9]+\)$ ]]
	run "$BM" help
	[ "$status" -eq 0 ]
	for c in agent validate analyze status services endpoints observe graph uninstall lab ca \
		version help; do
		grep -qE "^  $c " <<<"$output" || { echo "help lacks $c"; false; }
	done
	run "$BM" nosuchcommand
	[ "$status" -eq 2 ]
	run "$BM" help nosuchcommand
	[ "$status" -eq 2 ]
}

@test "validate and analyze take -f FILE, a directory and - (stdin)" {
	d="$BATS_TEST_TMPDIR/cfg"
	mkdir -p "$d"
	cat >"$d/svc.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: t}
spec: {selector: {app: web}, ports: [{port: 80}]}
EOF
	cat >"$d/vs.yaml" <<'EOF'
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: t}
spec:
  hosts: [web]
  http: [{route: [{destination: {host: web, subset: v2}}]}]
EOF
	run "$BM" validate -f "$d/vs.yaml"
	[ "$status" -eq 0 ] # one object on its own is valid: the subset is a cross-object question
	run "$BM" validate - <"$d/vs.yaml"
	[ "$status" -eq 0 ]
	run --separate-stderr "$BM" analyze -f "$d"
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$output" = 'Error [IST0101] (VirtualService t/web '"$d"'/vs.yaml:6) Referenced host+subset in destinationrule not found: "web+v2"' ]
	run --separate-stderr "$BM" analyze -f - <"$d/vs.yaml"
	[ "$status" -eq 1 ]
	[[ "$output" == *'Error [IST0101] (VirtualService t/web -:6) Referenced host not found: "web"'* ]]
	run "$BM" analyze -o json -f "$d"
	echo "$output"
	/usr/bin/python3 -c 'import json, sys
f = json.loads(sys.argv[1])
assert len(f) == 1 and f[0]["code"] == "IST0101" and f[0]["level"] == "Error", f
assert f[0]["origin"] == "VirtualService t/web" and f[0]["line"] == 6, f' "$output"
	run "$BM" analyze -o yaml -f "$d"
	[[ "$output" == *"- code: IST0101"*"level: Error"* ]]
	# a warning alone passes by default, fails at --failure-threshold Warning
	cat >"$d/vs.yaml" <<'EOF'
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: t}
spec:
  hosts: [web]
  http: [{route: [{destination: {host: web}}], websocketUpgrade: true}]
EOF
	run "$BM" analyze "$d"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Warning [IST0133] (VirtualService t/web $d/vs.yaml:6) Schema validation warning: spec.http[0].websocketUpgrade: unknown field (ignored)"* ]]
	run "$BM" analyze --failure-threshold Warning "$d"
	[ "$status" -eq 1 ]
	run "$BM" analyze --output-threshold Error "$d"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "the same object in two files: the later one wins, with a warning, as kubectl apply does" {
	d="$BATS_TEST_TMPDIR/dup"
	mkdir -p "$d"
	for w in 80 20; do
		cat >"$d/vs-$w.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: t}
spec:
  hosts: [web]
  http: [{route: [{destination: {host: web}, weight: 100}]}]
EOF
	done
	run "$BM" validate "$d"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"$d/vs-80.yaml:1: VirtualService/t/web: warning: duplicate object: replaces the one at $d/vs-20.yaml:1 (kubectl apply keeps the last)"* ]]
}
