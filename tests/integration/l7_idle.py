#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# l7_idle.py: a client that asks once and then holds its connection idle, to see what a server
# does with it meanwhile (an upgrade's drain).
#   l7_idle.py h1|h2 HOST PORT SECS
# h1: one keep-alive HTTP/1.1 GET; h2: one GET over HTTP/2 with prior knowledge (python3-h2).
# Prints "answered STATUS" once the answer is complete, then within SECS one of
# "closed after T s" (the server closed the connection), "goaway after T s last_stream N"
# (HTTP/2: the server sent GOAWAY; then "closed after T s" when it closes), or "open".
import socket
import sys
import time


def h1(host, port, secs):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(("GET /get HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            print("closed before the answer", flush=True)
            return
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    status = head.split(b" ")[1].decode()
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        d = s.recv(4096)
        if not d:
            break
        body += d
    print("answered", status, flush=True)
    t0 = time.monotonic()
    s.settimeout(0.2)
    while time.monotonic() - t0 < secs:
        try:
            d = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            d = b""
        if not d:
            print("closed after %.1f s" % (time.monotonic() - t0), flush=True)
            return
    print("open", flush=True)


def h2c(host, port, secs):
    import h2.config
    import h2.connection
    import h2.events

    s = socket.create_connection((host, port), timeout=5)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                         (":authority", "%s:%d" % (host, port)), (":path", "/get")],
                   end_stream=True)
    s.sendall(c.data_to_send())
    status, t0, answered = None, None, False
    s.settimeout(0.2)
    deadline = time.monotonic() + 10
    while True:
        now = time.monotonic()
        if (t0 is None and now > deadline) or (t0 is not None and now - t0 > secs):
            print("open" if answered else "no answer", flush=True)
            return
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            d = b""
        if not d:
            print("closed after %.1f s" % ((time.monotonic() - t0) if t0 else -1), flush=True)
            return
        for ev in c.receive_data(d):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers).get(b":status", b"?").decode()
            elif isinstance(ev, h2.events.DataReceived):
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and not answered:
                answered = True
                t0 = time.monotonic()
                print("answered", status, flush=True)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                print("goaway after %.1f s last_stream %d" %
                      ((time.monotonic() - t0) if t0 else -1, ev.last_stream_id), flush=True)
        out = c.data_to_send()
        if out:
            s.sendall(out)


if __name__ == "__main__":
    mode, host, port, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    (h1 if mode == "h1" else h2c)(host, port, secs)
