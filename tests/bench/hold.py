# hold.py: run inside a lab pod (or a pod's netns) by scripts/bench_http.sh to measure what a
# proxy's memory is with many idle keep-alive client connections.
#   hold.py HOST PORT N HOLD_S
# Opens N TCP connections to HOST:PORT, sends one keep-alive HTTP/1.1 GET on each and reads its
# whole answer, then prints "holding OPEN ANSWERED" and keeps every connection open, idle, for
# HOLD_S seconds at most (or until it is killed), then closes them and prints "closed".
# Bounded: 3 s per connect and per answer, 60 s for the whole opening phase; the soft
# RLIMIT_NOFILE is raised to what N needs (never above the hard limit).
import resource
import socket
import sys
import time

host, port, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = n + 64
if soft != resource.RLIM_INFINITY and soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
req = ("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode()
deadline = time.monotonic() + 60


def answer(s):
    """Read one HTTP/1.1 answer (headers, then Content-Length bytes); True when complete."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            return False
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        d = s.recv(4096)
        if not d:
            return False
        body += d
    return True


socks, answered = [], 0
for _ in range(n):
    if time.monotonic() > deadline:
        break
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3.0)
    try:
        s.connect((host, port))
        s.sendall(req)
        answered += answer(s)
    except OSError:
        s.close()
        continue
    socks.append(s)
print("holding", len(socks), answered, flush=True)
end = time.monotonic() + hold
while time.monotonic() < end:
    time.sleep(0.2)
for s in socks:
    s.close()
print("closed", flush=True)
