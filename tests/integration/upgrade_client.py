#!/usr/bin/python3
"""Traffic that must survive agent upgrades (tests/integration/upgrade.bats).

One long-lived connection sends a numbered HTTP/1.1 request every 10 ms and checks that each
answer is the one to its own request (nothing lost, nothing reordered), while two threads make
short connections (Connection: close) at --rate per second between them. Every failure is
counted and the first few are printed; a JSON summary goes to stdout. Bounded: --secs.

usage: upgrade_client.py HOST PORT --secs N [--rate R]
"""
import argparse
import json
import socket
import sys
import threading
import time

lock = threading.Lock()
res = {"long_sent": 0, "long_ok": 0, "long_errors": 0, "short_ok": 0, "short_failed": 0,
       "errors": []}


def fail(kind, msg):
    with lock:
        res[kind] += 1
        if len(res["errors"]) < 10:
            res["errors"].append("%.3f %s: %s" % (time.time(), kind, msg))


def read_response(f):
    """(status, body) of one HTTP/1.1 response with Content-Length, from file f."""
    line = f.readline()
    if not line:
        raise ConnectionError("closed before the status line")
    status = int(line.split()[1])
    length = None
    close = False
    while True:
        h = f.readline()
        if not h:
            raise ConnectionError("closed in the headers")
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
        if k.strip().lower() == "connection" and v.strip().lower() == "close":
            close = True
    body = f.read(length) if length is not None else f.read()
    if length is not None and len(body) != length:
        raise ConnectionError("short body: %d of %d" % (len(body), length))
    return status, body, close


def long_lived(host, port, until):
    try:
        s = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        fail("long_errors", "connect: %s" % e)
        return
    f = s.makefile("rb")
    seq = 0
    next_at = time.monotonic()
    while time.monotonic() < until:
        seq += 1
        marker = "seq-%d-x" % seq
        try:
            s.sendall(("GET /get?m=%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (marker, host)).encode())
            with lock:
                res["long_sent"] += 1
            status, body, close = read_response(f)
        except (OSError, ValueError, IndexError) as e:
            fail("long_errors", "message %d: %s" % (seq, e))
            return  # the connection is gone: that is the failure this test is about
        if status != 200 or marker.encode() not in body:
            fail("long_errors", "message %d: status %d, not its own answer" % (seq, status))
            return
        with lock:
            res["long_ok"] += 1
        if close:
            fail("long_errors", "message %d: the server closed the connection" % seq)
            return
        next_at += 0.010
        time.sleep(max(0.0, next_at - time.monotonic()))
    s.close()


def short(host, port, until, rate):
    gap = 1.0 / rate
    next_at = time.monotonic()
    n = 0
    while time.monotonic() < until:
        n += 1
        try:
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(("GET /get?s=%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                       % (n, host)).encode())
            status, _, _ = read_response(s.makefile("rb"))
            s.close()
            if status != 200:
                raise ConnectionError("status %d" % status)
            with lock:
                res["short_ok"] += 1
        except (OSError, ValueError, IndexError) as e:
            fail("short_failed", "connection %d: %s" % (n, e))
        next_at += gap
        time.sleep(max(0.0, next_at - time.monotonic()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--secs", type=float, required=True)
    ap.add_argument("--rate", type=float, default=200.0)
    a = ap.parse_args()
    until = time.monotonic() + min(a.secs, 300.0)
    th = [threading.Thread(target=long_lived, args=(a.host, a.port, until))]
    th += [threading.Thread(target=short, args=(a.host, a.port, until, a.rate / 2))
           for _ in range(2)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    print(json.dumps(res))
    sys.stdout.flush()
    return 0 if not (res["long_errors"] or res["short_failed"]) else 1


if __name__ == "__main__":
    sys.exit(main())
