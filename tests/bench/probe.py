# probe.py: run inside a lab pod by scripts/bench.sh. Modes:
#   connects HOST PORT N   -> mean/p50 connect()+close time in ns over N new connections
#   fail HOST PORT         -> "t0 t1 ok" (CLOCK_MONOTONIC ns) around one connect, then whether
#                             the very next connect succeeded
import socket
import sys
import time


def one(host, port, timeout=3.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    t0 = time.monotonic_ns()
    try:
        s.connect((host, port))
        ok = 1
    except OSError:
        ok = 0
    t1 = time.monotonic_ns()
    s.close()
    return t0, t1, ok


mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "connects":
    n = int(sys.argv[4])
    d = sorted(t1 - t0 for t0, t1, _ in (one(host, port) for _ in range(n)))
    print(sum(d) // n, d[n // 2], d[n * 99 // 100])
else:
    for _ in range(4):  # round robin: the stopped pod's turn comes within two tries
        t0, t1, ok = one(host, port)
        if not ok:
            break
    _, _, next_ok = one(host, port)
    print(t0, t1, ok, next_ok)
