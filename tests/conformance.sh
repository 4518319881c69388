#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# conformance.sh: runs `bpfmesh validate` over Istio's own examples (shared/conformance/istio,
# see its README.md). Called by tests/run-all.sh and by hand: tests/conformance.sh [BPFMESH].
#
#   accept/**  every file must validate with exit 0 (warnings are fine);
#   reject/**  every document, on its own and without its top-level `_err` key (Istio's
#              expected message, which would otherwise be rejected as an unknown field), must
#              fail with exit 1.
#
# Pass/fail is the exit status only. Where Istio's `_err` names a field path (spec.x.y) and
# ours differs, a "note:" line says so, to keep the two close without failing on wording.
# Prints one line per failure and ends with "conformance: N passed, N failed, N skipped".
# Without the corpus (a clone with no ../shared beside it; CONFORMANCE_DIR overrides where it
# is looked for) the suite is one skipped test, and a failure when CI=true.
set -u

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-build/bpfmesh}
case $bin in /*) ;; *) bin=$repo/$bin ;; esac
corpus=$(cd "${CONFORMANCE_DIR:-$repo/../shared/conformance/istio}" 2>/dev/null && pwd) || {
	# A user's clone has no ../shared beside it: nothing to run, and that is no failure;
	# on CI the corpus must be there.
	echo "conformance: corpus not found at ${CONFORMANCE_DIR:-$repo/../shared/conformance/istio}" >&2
	if [ "${CI:-}" = true ]; then
		echo "conformance: 0 passed, 1 failed, 0 skipped"
		exit 1
	fi
	echo "ok - conformance # SKIP corpus not found"
	echo "conformance: 0 passed, 0 failed, 1 skipped"
	exit 0
}
if [ ! -x "$bin" ]; then
	echo "conformance: $bin is not an executable" >&2
	echo "conformance: 0 passed, 1 failed, 0 skipped"
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

pass() { passed=$((passed + 1)); }
fail() {
	failed=$((failed + 1))
	echo "FAIL: $*"
}

# accept: whole files.
while IFS= read -r f; do
	if "$bin" validate "$f" >"$tmp/out" 2>&1; then
		pass
	else
		fail "accept ${f#"$corpus"/} (exit $?):"
		sed 's/^/    /' "$tmp/out"
	fi
done < <(find "$corpus/accept" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)

# Split a file on `---` lines into $tmp/doc.N.yaml; documents holding only comments and
# blank lines (commented-out cases in Istio's files) are not documents and are skipped.
split_docs() {
	rm -f "$tmp"/doc.*.yaml
	awk -v dir="$tmp" '
		function flush() {
			if (content) {
				n++
				printf "%s", buf > (dir "/doc." n ".yaml")
				close(dir "/doc." n ".yaml")
			}
			buf = ""; content = 0
		}
		/^---[ \t]*$/ { flush(); next }
		{ buf = buf $0 "\n"; if ($0 !~ /^[ \t]*(#.*)?$/) content = 1 }
		END { flush() }
	' "$1"
}

# reject: every document on its own, `_err` removed.
while IFS= read -r f; do
	split_docs "$f"
	n=0
	while [ -f "$tmp/doc.$((n + 1)).yaml" ]; do
		n=$((n + 1))
		doc=$tmp/doc.$n.yaml
		want=$(sed -n 's/^_err:[ \t]*//p' "$doc" | sed "s/^['\"]//; s/['\"]\$//")
		grep -v '^_err:' "$doc" >"$tmp/case.yaml"
		"$bin" validate "$tmp/case.yaml" >"$tmp/out" 2>&1
		rc=$?
		name=$(sed -n 's/^  name:[ \t]*//p' "$tmp/case.yaml" | head -1)
		where="reject ${f#"$corpus"/} document $n ($name)"
		if [ "$rc" -ne 1 ]; then
			fail "$where: exit $rc, want 1 (Istio: $want)"
			sed 's/^/    /' "$tmp/out"
			continue
		fi
		pass
		field=$(printf '%s\n' "$want" | grep -o '^spec[][A-Za-z0-9_.]*' || true)
		if [ -n "$field" ] && ! grep -qF ": $field" "$tmp/out"; then
			echo "note: $where: Istio reports $field, we report:"
			grep -v 'warning:' "$tmp/out" | sed 's/^/    /'
		fi
	done
done < <(find "$corpus/reject" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)

echo "conformance: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
