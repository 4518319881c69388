# churn_client.py HOST PORT SECONDS: run inside a lab pod by tests/bench/churn.sh. New
# connections one after another for SECONDS, each an HTTP/1.0 GET / to the echo server; one line
# per connection: "T0 T1 VERSION" (CLOCK_REALTIME seconds around connect(), and the version the
# answering pod reports, or FAIL). Bounded: at most 100,000 connections.
import re
import socket
import sys
import time

host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + secs
pat = re.compile(rb", version ([^\s,]+)")  # the echo server's text answer
out = []
for _ in range(100000):
    if time.time() >= end:
        break
    s = socket.socket()
    s.settimeout(2)
    t0 = time.time()
    try:
        s.connect((host, port))
        t1 = time.time()
        s.sendall(b"GET / HTTP/1.0\r\nHost: churn\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        m = pat.search(data)
        v = m.group(1).decode() if m else "FAIL"
    except OSError:
        t1, v = time.time(), "FAIL"
    s.close()
    out.append("%.6f %.6f %s" % (t0, t1, v))
print("\n".join(out))
