#!/bin/bash
# gen.sh DIR NAME...: a CA and a server certificate per NAME (its DNS name), a client
# certificate, and Secrets YAML for istio-system (NAME-cred, kubernetes.io/tls with ca.crt)
set -euo pipefail
d=$1
shift
cd "$d"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=edge-ca" 2>/dev/null
for n in "$@" client; do
	openssl req -newkey rsa:2048 -nodes -keyout "$n.key" -out "$n.csr" -subj "/CN=$n" 2>/dev/null
	printf 'subjectAltName=DNS:%s\n' "$n" >"$n.ext"
	openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-extfile "$n.ext" -out "$n.crt" 2>/dev/null
done
for n in "$@"; do
	cat <<Y
---
apiVersion: v1
kind: Secret
metadata: {name: $n-cred, namespace: istio-system}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$n.crt")
  tls.key: $(base64 -w0 "$n.key")
  ca.crt: $(base64 -w0 ca.crt)
Y
done >secrets.yaml
