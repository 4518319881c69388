#!/usr/bin/env bats
# deploy/, checked without a cluster: the Kubernetes and Prometheus YAML parse (PyYAML, Debian's
# python3-yaml) and say what the agent needs (host network, privileges, the bpffs, cgroup, run
# and config mounts, flags the agent really has, Istio's ports and probes); the systemd unit and
# the Containerfile run `bpfmesh agent` and never uninstall on stop; every bpfmesh command in
# deploy/vm.md exists with the options it is given. Nothing is started, nothing left behind.
load helpers

ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
DS="$ROOT/deploy/kubernetes/daemonset.yaml"
PY=/usr/bin/python3

setup_file() {
	export WORK
	WORK=$(mktemp -d /tmp/bpfmesh-ideploy.XXXXXX)
}

teardown_file() {
	rm -rf "$WORK"
}

needs_yaml() {
	"$PY" -c 'import yaml' 2>/dev/null || {
		echo "python3-yaml (PyYAML) is missing: scripts/deps.sh installs it"
		return 1
	}
}

# py SCRIPT-ON-STDIN ARGS...: a Python check; it prints what is wrong and exits 1.
py() { "$PY" - "$@"; }

@test "every YAML file under deploy/kubernetes and deploy/prometheus parses" {
	needs_yaml
	local n=0 f
	while IFS= read -r f; do
		run py "$f" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]
assert docs, "no document"
print(len(docs), "documents")
EOF
		echo "$f: $output"
		[ "$status" -eq 0 ]
		n=$((n + 1))
	done < <(find "$ROOT/deploy/kubernetes" "$ROOT/deploy/prometheus" -name '*.yaml' -o \
		-name '*.yml')
	[ "$n" -ge 2 ]
}

@test "daemonset.yaml: namespace, service account, RBAC of exactly the kinds the agent watches (get/list/watch)" {
	needs_yaml
	run py "$DS" "$ROOT/user/lib/kube.c" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by = {}
for d in docs:
    by.setdefault(d["kind"], []).append(d)
bad = []
def check(c, m):
    if not c: bad.append(m)
ns = "bpfmesh-system"
check(any(d["metadata"]["name"] == ns for d in by.get("Namespace", [])), "no Namespace " + ns)
sa = by.get("ServiceAccount", [{}])[0].get("metadata", {})
check(sa.get("namespace") == ns, "ServiceAccount not in " + ns)
role = by["ClusterRole"][0]
def grants(group, res):
    return any(group in r.get("apiGroups", []) and res in r.get("resources", [])
               and {"get", "list", "watch"} <= set(r.get("verbs", [])) for r in role["rules"])
# the kinds user/lib/kube.c watches (its kinds[] table), read from the source
import re
src = open(sys.argv[2]).read()
kinds = re.findall(r'\{"([a-z0-9.]*)", ver_\w+, "(\w+)", "\w+", (?:true|false), (NULL|GW_NS),\s*(?:NULL|"[^"]*")\}', src)
watched = {(g, res) for g, res, n in kinds if n == "NULL"}
# kinds watched in the gateway's namespace only: a Role there, bound to the agent
for g, res, n in kinds:
    if n != "GW_NS":
        continue
    rs = [d for d in by.get("Role", []) if d["metadata"].get("namespace") == "istio-system"
          and any(g in r.get("apiGroups", []) and res in r.get("resources", [])
                  and set(r.get("verbs", [])) == {"get", "list", "watch"} for r in d["rules"])]
    check(rs, "no Role in istio-system with get/list/watch on %s %s" % (g or "core", res))
    check(any(b["roleRef"]["name"] == r["metadata"]["name"]
              and b["metadata"].get("namespace") == "istio-system"
              and {"kind": "ServiceAccount", "name": "bpfmesh-agent", "namespace": "bpfmesh-system"}
              in b["subjects"] for r in rs for b in by.get("RoleBinding", [])),
          "the istio-system Role for %s is not bound to the agent" % res)
    # (unless the agent also watches it cluster-wide: ConfigMaps ratelimit-config)
    check((g, res) in watched or
          not any(res in r.get("resources", []) for r in by["ClusterRole"][0]["rules"]),
          "the ClusterRole grants %s cluster-wide" % res)
check(len(watched) >= 10, "could not read the kinds of user/lib/kube.c: %s" % watched)
granted = {(g, res) for r in role["rules"] for g in r.get("apiGroups", [])
           for res in r.get("resources", [])}
for g, res in sorted(watched):
    check(grants(g, res), "ClusterRole: no get/list/watch on %s %s" % (g or "core", res))
check(granted <= watched, "ClusterRole grants what the agent does not read: %s"
      % sorted(granted - watched))
for r in role["rules"]:
    check(set(r["verbs"]) == {"get", "list", "watch"}, "ClusterRole: verbs are not get/list/watch")
b = by["ClusterRoleBinding"][0]
check(b["roleRef"]["name"] == role["metadata"]["name"], "binding names another role")
check({"kind": "ServiceAccount", "name": sa.get("name"), "namespace": ns} in b["subjects"],
      "binding is not to the agent's ServiceAccount")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "daemonset.yaml: host network, agent with capabilities (privileged bpffs init only), host mounts, --kube with the downward API" {
	needs_yaml
	"$BM" agent --help > "$WORK/agent-usage" 2>&1 || true
	run py "$DS" "$WORK/agent-usage" <<'EOF'
import re, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
usage = open(sys.argv[2]).read()
ds = [d for d in docs if d["kind"] == "DaemonSet"][0]
t = ds["spec"]["template"]
spec = t["spec"]
bad = []
def check(c, m):
    if not c: bad.append(m)
check(ds["metadata"]["namespace"] == "bpfmesh-system", "DaemonSet not in bpfmesh-system")
check(ds["spec"]["selector"]["matchLabels"].items() <= t["metadata"]["labels"].items(),
      "selector does not match the template's labels")
check(spec.get("hostNetwork") is True, "hostNetwork is not true")
check(spec.get("hostPID") is False, "hostPID is not false")
check(spec.get("serviceAccountName") == "bpfmesh-agent", "not the agent's ServiceAccount")
check({"operator": "Exists"} in spec.get("tolerations", []), "no toleration for every taint")
us = ds["spec"]["updateStrategy"]
ru = us.get("rollingUpdate", {})
check(us["type"] == "RollingUpdate" and ru.get("maxSurge") == 1 and ru.get("maxUnavailable") == 0,
      "updateStrategy is not RollingUpdate with maxSurge 1, maxUnavailable 0 (hand-over)")
check(spec.get("terminationGracePeriodSeconds", 30) >= 3600,
      "terminationGracePeriodSeconds is shorter than the default --drain-timeout (1h)")
vols = {v["name"]: v for v in spec["volumes"]}
agent = [c for c in spec["containers"] if c["name"] == "agent"][0]
sc = agent["securityContext"]
check(sc.get("privileged") is False, "agent is privileged: capabilities are enough")
caps = set(sc.get("capabilities", {}).get("add", []))
check(caps == {"BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"},
      "agent capabilities: %s" % sorted(caps))
check(sc.get("capabilities", {}).get("drop") == ["ALL"], "agent does not drop ALL first")
def mounts(c):
    return {m["mountPath"]: m for m in c.get("volumeMounts", [])}
am = mounts(agent)
for path in ["/sys/fs/bpf", "/sys/fs/cgroup", "/run/bpfmesh"]:
    m = am.get(path)
    check(m is not None, "agent: no mount at " + path)
    if m:
        hp = vols[m["name"]].get("hostPath", {}).get("path")
        check(hp == path, "%s: not the host's %s (hostPath %s)" % (path, path, hp))
# Bidirectional is for privileged containers only: the init container makes the host mount
for path in ["/sys/fs/bpf", "/sys/fs/cgroup"]:
    check(am.get(path, {}).get("mountPropagation") == "HostToContainer",
          "agent: %s is not HostToContainer" % path)
inits = spec.get("initContainers", [])
check(inits, "no initContainer")
for i in inits:
    check(i["securityContext"].get("privileged") is True, i["name"] + ": not privileged")
    check("mount -t bpf bpf /sys/fs/bpf" in " ".join(i["command"] + i.get("args", [])),
          i["name"] + ": does not mount bpffs")
    check(mounts(i).get("/sys/fs/bpf", {}).get("mountPropagation") == "Bidirectional",
          i["name"] + ": /sys/fs/bpf is not Bidirectional")
argv = agent.get("command", []) + agent.get("args", [])
check(argv[:2] == ["/usr/local/bin/bpfmesh", "agent"], "agent command is not bpfmesh agent: %s" % argv)
opts = {}
for i, a in enumerate(argv):
    if a.startswith("--"):
        opts[a] = argv[i + 1] if i + 1 < len(argv) else None
        check(a in usage, a + ": not an option of `bpfmesh agent`")
for o in ["--kube", "--cgroup", "--node", "--node-ip"]:
    check(o in opts, "agent args lack " + o)
check("--config-dir" not in opts, "the agent reads the API server, not a ConfigMap")
check(opts.get("--cgroup", "").startswith("/sys/fs/cgroup/"), "--cgroup is not under /sys/fs/cgroup")
check(opts.get("--node") == "$(NODE_NAME)", "--node is not $(NODE_NAME)")
check(opts.get("--node-ip") == "$(HOST_IPS)", "--node-ip is not $(HOST_IPS)")
env = {e["name"]: e for e in agent.get("env", [])}
check(env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
      == "spec.nodeName", "NODE_NAME does not come from spec.nodeName")
check(env.get("HOST_IPS", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
      == "status.hostIPs", "HOST_IPS does not come from status.hostIPs")
check("requests" in agent.get("resources", {}) and "limits" in agent["resources"], "no resources")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "daemonset.yaml: no host ports (surge), readiness on /healthz/ready:15021, liveness by bpfmesh status, scrape annotations" {
	needs_yaml
	run py "$DS" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ds = [d for d in docs if d["kind"] == "DaemonSet"][0]
t = ds["spec"]["template"]
agent = [c for c in t["spec"]["containers"] if c["name"] == "agent"][0]
bad = []
def check(c, m):
    if not c: bad.append(m)
# a surge pod (maxSurge) with host ports would never be scheduled next to the old one
check(not agent.get("ports"), "ports declared: host ports keep the surge pod off the node")
rp = agent.get("readinessProbe", {}).get("httpGet", {})
check(rp.get("path") == "/healthz/ready" and rp.get("port") in (15021, "health"),
      "readinessProbe is not GET /healthz/ready on 15021: %s" % rp)
lp = " ".join(agent.get("livenessProbe", {}).get("exec", {}).get("command", []))
check("bpfmesh status --node" in lp and "NODE_NAME" in lp, "livenessProbe is not bpfmesh status")
# exec probes are not $(VAR)-expanded by Kubernetes: the variable must reach a shell
check("$(NODE_NAME)" not in lp, "livenessProbe uses $(NODE_NAME), which exec probes do not expand")
a = t["metadata"].get("annotations", {})
check(a.get("prometheus.io/scrape") == "true", "prometheus.io/scrape is not \"true\"")
check(a.get("prometheus.io/port") == "15020", "prometheus.io/port is not \"15020\"")
check(a.get("prometheus.io/path") == "/metrics", "prometheus.io/path is not /metrics")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "kustomization.yaml: a base of the DaemonSet, its image one value that every container names" {
	needs_yaml
	run py "$ROOT/deploy/kubernetes" <<'EOF'
import os, sys, yaml
d = sys.argv[1]
k = yaml.safe_load(open(os.path.join(d, "kustomization.yaml")))
bad = []
def check(c, m):
    if not c: bad.append(m)
check(k.get("kind") == "Kustomization", "not a Kustomization")
for r in k.get("resources", []):
    check(os.path.exists(os.path.join(d, r)), "resource %s does not exist" % r)
check("daemonset.yaml" in k.get("resources", []), "the DaemonSet is not a resource")
imgs = k.get("images", [])
check(len(imgs) == 1 and imgs[0].get("name") == "bpfmesh", "not one image named bpfmesh: %s" % imgs)
for f in ["daemonset.yaml", "ca.yaml"]:
    for doc in yaml.safe_load_all(open(os.path.join(d, f))):
        spec = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            check(c["image"].split(":")[0] == "bpfmesh", "%s: %s: image %s is not the base's"
                  % (f, c["name"], c["image"]))
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	echo "$output"
	[ "$status" -eq 0 ]
	# the files the README names exist
	grep -q 'kubectl apply -k deploy/kubernetes' "$ROOT/deploy/kubernetes/README.md"
	while IFS= read -r f; do
		echo "names $f"
		[ -e "$ROOT/$f" ]
	done < <(grep -o 'deploy/[a-zA-Z/._-]*' "$ROOT/deploy/kubernetes/README.md" | sed 's|[/.]*$||' | sort -u)
}

@test "systemd unit: ExecStart runs bpfmesh agent, Restart=always, the cgroup it makes is the one it uses, no uninstall" {
	local u="$ROOT/deploy/systemd/bpfmesh-agent.service"
	run py "$u" <<'EOF'
import re, sys
env, keys, bad = {}, {}, []
def check(c, m):
    if not c: bad.append(m)
for line in open(sys.argv[1]):
    line = line.strip()
    if not line or line.startswith(("#", ";", "[")):
        continue
    k, _, v = line.partition("=")
    keys.setdefault(k, []).append(v)
    if k == "Environment":
        n, _, val = v.partition("=")
        env[n] = val
def expand(s):
    return re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), m.group(0)), s)
start = expand(keys.get("ExecStart", [""])[0]).split()
check(start[:2] == ["/usr/local/bin/bpfmesh", "agent"], "ExecStart is not bpfmesh agent: %s" % start)
opts = {a: start[i + 1] for i, a in enumerate(start[:-1]) if a.startswith("--")}
for o in ["--config-dir", "--cgroup", "--node"]:
    check(o in opts, "ExecStart lacks " + o)
check(opts.get("--node") == "%H", "--node is not %H")
pre = " ".join(expand(v) for v in keys.get("ExecStartPre", []))
check("mkdir -p" in pre and opts.get("--cgroup", "?") in pre.split(),
      "ExecStartPre does not mkdir -p the --cgroup directory")
check(keys.get("Restart") == ["always"], "Restart is not always")
for k, vs in keys.items():
    for v in vs:
        check("uninstall" not in v, "%s=%s uninstalls" % (k, v))
caps = set(" ".join(keys.get("CapabilityBoundingSet", [])).split())
want = {"CAP_BPF", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_PERFMON"}
check(caps == want, "CapabilityBoundingSet is %s" % sorted(caps))
check(set(" ".join(keys.get("AmbientCapabilities", [])).split()) == want, "AmbientCapabilities")
check(keys.get("LimitMEMLOCK") == ["infinity"], "LimitMEMLOCK is not infinity")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "systemd unit: systemd-analyze verify finds nothing wrong (with build/bpfmesh as the binary)" {
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
	sed "s|/usr/local/bin/bpfmesh|$BM|" "$ROOT/deploy/systemd/bpfmesh-agent.service" \
		> "$WORK/bpfmesh-agent.service"
	run systemd-analyze verify "$WORK/bpfmesh-agent.service"
	echo "$output"
	[ "$status" -eq 0 ]
	# verify reports unknown keys and bad values as warnings, exit 0: no output is the check
	if grep bpfmesh-agent.service <<<"$output"; then false; fi
}

@test "Containerfile: debian:12 build and runtime stages, copies build/bpfmesh, ENTRYPOINT bpfmesh agent, runtime libraries" {
	local cf="$ROOT/deploy/container/Containerfile" l c r pkg
	run py "$cf" <<'EOF'
import json, re, sys
text = re.sub(r"\\\n", " ", open(sys.argv[1]).read())
lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
bad = []
def check(c, m):
    if not c: bad.append(m)
froms = [l for l in lines if l.startswith("FROM ")]
check(len(froms) >= 2 and all(l.split()[1] == "debian:12" for l in froms),
      "not multi-stage on debian:12: %s" % froms)
build = [l for l in lines if l.startswith("RUN ") and re.search(r"\bmake\b", l)]
check(build and "apt-get install" in " ".join(lines[:lines.index(froms[1])]), "no apt-get + make in the build stage")
for p in "clang llvm libbpf-dev libelf-dev zlib1g-dev libyaml-dev libssl-dev bpftool make gcc".split():
    check(re.search(r"\s%s(\s|$)" % re.escape(p), " ".join(lines[:lines.index(froms[1])])),
          "build stage does not install " + p)
copy = [l for l in lines if l.startswith("COPY --from=")]
check(any(re.search(r"build/bpfmesh\s+/usr/local/bin/bpfmesh$", l) for l in copy),
      "no COPY of build/bpfmesh to /usr/local/bin/bpfmesh")
ep = [l for l in lines if l.startswith("ENTRYPOINT")]
argv = json.loads(ep[-1][len("ENTRYPOINT"):]) if ep else []
check(len(argv) == 2 and argv[0].endswith("bpfmesh") and argv[1] == "agent",
      "ENTRYPOINT is not bpfmesh agent: %s" % argv)
rt = " ".join(lines[lines.index(froms[1]):])
print("RUNTIME " + rt)
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	grep -v '^RUNTIME ' <<<"$output" || true
	[ "$status" -eq 0 ]
	local runtime
	runtime=$(grep '^RUNTIME ' <<<"$output")
	# every shared library build/bpfmesh links comes from a package the runtime stage installs
	for l in $(ldd "$BM" | awk '$3 ~ /^\// { print $3 }'); do
		r=""
		for c in "$l" "$(readlink -f "$l")" "/usr$l" "/usr$(readlink -f "$l")"; do
			r=$(dpkg -S "$c" 2>/dev/null | head -n 1)
			[ -n "$r" ] && break
		done
		pkg=${r%%:*}
		[ -n "$pkg" ] || { echo "${l##*/}: no package found"; return 1; }
		[ "$pkg" = libc6 ] && continue # in the base image
		[[ " $runtime " == *" $pkg "* ]] || { echo "${l##*/} ($pkg) not installed at runtime"; return 1; }
	done
}

@test "prometheus.yml: pod discovery kept by the scrape annotation, a static job for a VM on :15020; promtool accepts it" {
	needs_yaml
	local p="$ROOT/deploy/prometheus/prometheus.yml"
	run py "$p" "$WORK/prom-check.yml" <<'EOF'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
bad = []
def check(c, m):
    if not c: bad.append(m)
jobs = d["scrape_configs"]
k8s = [j for j in jobs if any(s.get("role") == "pod" for s in j.get("kubernetes_sd_configs", []))]
check(k8s, "no kubernetes_sd_configs job with role: pod")
for j in k8s:
    check(any(r.get("action") == "keep" and r.get("source_labels") ==
              ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] for r in j["relabel_configs"]),
          j["job_name"] + ": does not keep pods by prometheus.io/scrape")
    check(any("__meta_kubernetes_pod_annotation_prometheus_io_port" in r.get("source_labels", [])
              and r.get("target_label") == "__address__" for r in j["relabel_configs"]),
          j["job_name"] + ": does not use prometheus.io/port")
    # Debian's promtool has no Kubernetes discovery: check the rest with a static target
    del j["kubernetes_sd_configs"]
    j["static_configs"] = [{"targets": ["127.0.0.1:15020"]}]
static = [t for j in jobs for s in j.get("static_configs", []) for t in s["targets"]
          if j not in k8s]
check(any(t.endswith(":15020") for t in static), "no static target on :15020")
yaml.safe_dump(d, open(sys.argv[2], "w"))
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	echo "$output"
	[ "$status" -eq 0 ]
	command -v promtool >/dev/null || skip "no promtool"
	run promtool check config "$WORK/prom-check.yml"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "deploy/vm.md: every bpfmesh command in it is a real subcommand with real options" {
	local help cmds sub opt usage n=0
	help=$("$BM" --help 2>&1)
	cmds=$(py "$ROOT/deploy/vm.md" <<'EOF'
import re, sys
# commands: every line of ```sh blocks (continuations joined, heredoc bodies and comments
# dropped), and "$ command" lines of output blocks
out, block, heredoc, pending = [], None, None, ""
for raw in open(sys.argv[1]):
    line = raw.rstrip("\n")
    if line.startswith("```"):
        block = None if block is not None else line[3:].strip()
        continue
    if block is None:
        continue
    if heredoc:
        if line.strip() == heredoc:
            heredoc = None
        continue
    if block != "sh":
        if not line.startswith("$ "):
            continue
        line = line[2:]
    m = re.search(r"<<-?'?(\w+)'?", line)
    if m:
        heredoc = m.group(1)
    line = re.sub(r"(^|\s)#.*", "", line)
    if line.endswith("\\"):
        pending += line[:-1] + " "
        continue
    line, pending = pending + line, ""
    for m in re.finditer(r"(?:^|[\s;|&(])bpfmesh((?:\s+[^\s;|&)]+)*)", line):
        words = m.group(1).split()
        if words:
            out.append(" ".join(words))
print("\n".join(out))
EOF
)
	echo "$cmds"
	while read -r sub rest; do
		[ -n "$sub" ] || continue
		n=$((n + 1))
		if [ "$sub" = --help ]; then
			continue
		fi
		grep -qE "^  $sub " <<<"$help" || { echo "not a subcommand: bpfmesh $sub"; return 1; }
		usage=$("$BM" "$sub" --no-such-option 2>&1 || true)
		for opt in $rest; do
			opt=${opt%%=*}
			[[ "$opt" == --* ]] || continue
			[[ "$usage" =~ (^|[^a-z-])$opt([^a-z-]|$) ]] ||
				{ echo "bpfmesh $sub: no option $opt"; return 1; }
		done
	done <<<"$cmds"
	echo "$n commands"
	[ "$n" -ge 10 ]
}

@test "ca.yaml: the CA as a Deployment of its own, key from a Secret, real ca serve flags, a Service on 15012" {
	needs_yaml
	"$BM" ca serve --help >"$WORK/ca-usage" 2>&1 || true
	run py "$BATS_TEST_DIRNAME/../../deploy/kubernetes/ca.yaml" "$WORK/ca-usage" <<'PYEOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
usage = open(sys.argv[2]).read()
bad = []
def check(c, m):
    if not c: bad.append(m)
dep = [d for d in docs if d["kind"] == "Deployment"][0]
svc = [d for d in docs if d["kind"] == "Service"][0]
spec = dep["spec"]["template"]["spec"]
c = spec["containers"][0]
argv = c["command"] + c["args"]
check(argv[:3] == ["/usr/local/bin/bpfmesh", "ca", "serve"], "not bpfmesh ca serve: %s" % argv)
opts = {a: argv[i + 1] for i, a in enumerate(argv) if a.startswith("--")}
for o in opts:
    check(o in usage, o + ": not an option of `bpfmesh ca serve`")
vols = {v["name"]: v for v in spec["volumes"]}
mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
ca = mounts.get(opts.get("--dir"))
check(ca is not None and "secret" in vols[ca["name"]], "--dir is not a mounted Secret")
check(spec.get("hostNetwork") is not True, "the CA must not share a node's network")
check(c["securityContext"].get("privileged") is not True, "the CA must not be privileged")
check("--kube" in opts and "--config-dir" not in opts, "the CA does not watch the API server's pods")
check(spec.get("automountServiceAccountToken") is not False, "--kube needs the service account token")
check(svc["spec"]["ports"][0]["port"] == 15012, "the Service is not on 15012")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
	echo "$output"
	[ "$status" -eq 0 ]
}
