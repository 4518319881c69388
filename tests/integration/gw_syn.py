#!/usr/bin/python3
"""gw_syn.py ADDR PORT N WAIT: N connects to ADDR:PORT at once (one SYN each: the first
retransmit is a second away), then WAIT seconds; prints "established E" (xdp.bats)."""
import select
import socket
import sys
import time

addr, port, n, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex((addr, port))
    socks.append(s)
done, deadline = set(), time.time() + wait
while time.time() < deadline and len(done) < n:
    _, w, _ = select.select([], [s for s in socks if s not in done], [], 0.05)
    for s in w:
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            done.add(s)
        else:
            done.add(s)  # refused: no SYN-ACK either way, but it answered
            s.connected_badly = True
ok = sum(1 for s in done if not getattr(s, 'connected_badly', False))
print('established %d' % ok, flush=True)
