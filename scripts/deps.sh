#!/bin/sh
# Installs the Debian packages bpfmesh builds, tests and demos with, if any is missing.
# Called by `make deps` (and so by make test / demo / bench). Idempotent; quiet when all is there.
set -e
PKGS="clang llvm libbpf-dev libelf-dev zlib1g-dev libyaml-dev libssl-dev bpftool bats
iproute2 curl make gcc g++ pkg-config bc socat python3 python3-yaml prometheus graphviz libjson-c-dev
libnghttp2-dev libhttp-parser-dev libre2-dev python3-h2 nghttp2-client python3-grpcio
sockperf iperf3 wrk haproxy openssl tcpdump libclang-rt-14-dev shellcheck clang-format
libcurl4-openssl-dev python3-junitparser libxml2-utils libhiredis-dev redis-server
libprotobuf-c-dev protobuf-c-compiler python3-protobuf"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: need root to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps prometheus from pulling a web UI stack we do not use.
# shellcheck disable=SC2086 # $missing is a list of package names
apt-get install -y -qq --no-install-recommends $missing >/dev/null
