#!/usr/bin/python3
"""gw_tls_resume.py ADDR PORT FROM_SNI TO_SNI CAFILE: the attack on a gateway port with a SIMPLE
and a MUTUAL server (gateway.bats): a TLS session of FROM_SNI's server, offered for resumption
to TO_SNI's, must not let a client in without a certificate. Prints "resumed yes|no" and
"code N" (0: no HTTP answer)."""
import socket
import ssl
import sys

addr, port, a, b, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
ctx.maximum_version = ssl.TLSVersion.TLSv1_3


def get(sni, session=None):
    s = ctx.wrap_socket(socket.create_connection((addr, port), timeout=10),
                        server_hostname=sni, session=session)
    s.sendall(b'GET /get HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' % sni.encode())
    data = b''
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except (ssl.SSLError, OSError):
        pass
    return s, data


s, data = get(a)
sess = s.session  # (TLS 1.3: the ticket came with the response)
s.close()
try:
    s2, data = get(b, sess)
    print('resumed %s' % ('yes' if s2.session_reused else 'no'))
    print('code %s' % (data.split()[1].decode() if data.startswith(b'HTTP/') else '0'))
except (ssl.SSLError, OSError) as e:
    print('resumed no')
    print('code 0 (%s)' % e.__class__.__name__)
