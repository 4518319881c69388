#!/usr/bin/python3
"""gw_tls_hold.py ADDR PORT SNI CAFILE GOFILE: one TLS connection to a gateway's HTTPS port
that outlives a certificate rotation (gateway.bats): a request on it, the SHA-256 fingerprint
of the certificate it got ("cert HEX code N"), then, once GOFILE exists (30 s at most), a second
request on the same connection ("again code N"). HTTP/1.1 keep-alive."""
import hashlib
import os
import socket
import ssl
import sys
import time

addr, port, sni, cafile, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
s = ctx.wrap_socket(socket.create_connection((addr, port), timeout=10), server_hostname=sni)


def request():
    s.sendall(b'GET /get HTTP/1.1\r\nHost: %s\r\n\r\n' % sni.encode())
    buf = b''
    while b'\r\n\r\n' not in buf:
        buf += s.recv(65536)
    head, body = buf.split(b'\r\n\r\n', 1)
    n = 0
    for line in head.split(b'\r\n')[1:]:
        k, _, v = line.partition(b':')
        if k.strip().lower() == b'content-length':
            n = int(v)
    while len(body) < n:
        body += s.recv(65536)
    return int(head.split()[1])


fp = hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest().upper()
code = request()
print('cert %s code %d' % (fp, code), flush=True)
deadline = time.time() + 30
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.05)
print('again code %d' % request(), flush=True)
