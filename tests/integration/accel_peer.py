#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# accel_peer.py: both ends of the same-node acceleration tests (accel.bats), run inside lab pods
# with `bpfmesh lab exec`. Each connection starts with one header line naming what to do:
#   ECHO          echo every byte back until EOF (ping-pong latency, holding a connection open)
#   SINK N        read to EOF, reply "<bytes> <sha256>\n" and then N pattern bytes (half-close)
#   RST           reply "bye\n", then close with SO_LINGER 0 (the client must see a reset/EOF)
# Every client prints "sent S recv R" (application bytes, header included) for the metrics test.
#   server PORT...                 serve until killed
#   echo HOST PORT N               N round trips of 64 bytes; prints microseconds per round trip
#   hold HOST PORT SECS            one round trip, hold the connection SECS, one more, close
#   sink HOST PORT SIZE REPLY      send SIZE random bytes, shutdown(SHUT_WR), check the reply
#   rst HOST PORT                  expects "bye\n" then ECONNRESET or EOF
#   clientrst HOST PORT            sends some bytes, then closes with SO_LINGER 0
import hashlib
import os
import socket
import struct
import sys
import threading
import time

CHUNK = 1 << 20


def pattern(n):
    block = bytes(range(256)) * 256
    while n > 0:
        b = block[: min(n, len(block))]
        n -= len(b)
        yield b


def read_line(s, buf=b""):
    while b"\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("EOF before a full line")
        buf += d
    line, _, rest = buf.partition(b"\n")
    return line.decode(), rest


def serve_conn(c):
    try:
        line, rest = read_line(c)
        cmd = line.split()
        if cmd[0] == "ECHO":
            if rest:
                c.sendall(rest)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        elif cmd[0] == "SINK":
            h, n = hashlib.sha256(rest), len(rest)
            while True:
                d = c.recv(CHUNK)
                if not d:
                    break
                h.update(d)
                n += len(d)
            c.sendall(("%d %s\n" % (n, h.hexdigest())).encode())
            for b in pattern(int(cmd[1])):
                c.sendall(b)
        elif cmd[0] == "RST":
            c.sendall(b"bye\n")
            time.sleep(0.2)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif cmd[0] == "HOLD":
            # A blocking reader of an accelerated socket woken by the peer's reset gets one
            # EAGAIN from the kernel's sockmap receive path (tcp_bpf_recvmsg); the next read
            # gives the reset. Reported, so the suite can say so.
            eagain = 0
            while True:
                try:
                    if not c.recv(65536):
                        how = "eof"
                        break
                except BlockingIOError:
                    eagain += 1
                    if eagain > 3:
                        how = "eagain"
                        break
                except ConnectionResetError:
                    how = "reset"
                    break
            print("peer-close %s eagain %d" % (how, eagain), flush=True)
    except Exception as e:  # noqa: BLE001 - a server thread reports and goes on
        print("server error:", e, flush=True)
    finally:
        c.close()


def server(ports):
    socks = []
    for p in ports:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(p)))
        s.listen(128)
        socks.append(s)
    for s in socks[1:]:
        threading.Thread(target=accept_loop, args=(s,), daemon=True).start()
    accept_loop(socks[0])


def accept_loop(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_conn, args=(c,), daemon=True).start()


def connect(host, port):
    s = socket.create_connection((host, int(port)), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += d
    return buf


def echo(host, port, n, hold=0.0):
    s = connect(host, port)
    s.sendall(b"ECHO\n")
    sent, recv, msg = 5, 0, b"x" * 64
    t0 = time.perf_counter()
    for i in range(n):
        s.sendall(msg)
        assert recv_exact(s, len(msg)) == msg
        sent += len(msg)
        recv += len(msg)
        if hold and i == 0:
            print("holding pid %d" % os.getpid(), flush=True)
            time.sleep(hold)
    dt = time.perf_counter() - t0
    s.close()
    print("sent %d recv %d rtt_us %.1f" % (sent, recv, dt / n * 1e6))


def sink(host, port, size, reply):
    s = connect(host, port)
    hdr = ("SINK %d\n" % reply).encode()
    s.sendall(hdr)
    h, left = hashlib.sha256(), size
    while left:
        d = os.urandom(min(left, CHUNK))
        h.update(d)
        s.sendall(d)
        left -= len(d)
    s.shutdown(socket.SHUT_WR)
    line, rest = read_line(s)
    got_n, got_sha = line.split()
    rh, rn = hashlib.sha256(rest), len(rest)
    while True:
        d = s.recv(CHUNK)
        if not d:
            break
        rh.update(d)
        rn += len(d)
    s.close()
    want = hashlib.sha256()
    for b in pattern(reply):
        want.update(b)
    assert int(got_n) == size, "server got %s bytes, sent %d" % (got_n, size)
    assert got_sha == h.hexdigest(), "server sha256 differs"
    assert rn == reply and rh.hexdigest() == want.hexdigest(), "reply differs (%d bytes)" % rn
    print("sent %d recv %d sha256 ok" % (len(hdr) + size, len(line) + 1 + rn))


def rst(host, port):
    s = connect(host, port)
    s.sendall(b"RST\n")
    assert recv_exact(s, 4) == b"bye\n"
    try:
        d = s.recv(100)
        how = "eof" if not d else "data"
    except ConnectionResetError:
        how = "reset"
    s.close()
    assert how in ("eof", "reset"), how
    print("sent 4 recv 4 %s" % how)


def clientrst(host, port):
    s = connect(host, port)
    s.sendall(b"HOLD\n" + b"y" * 1000)
    time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    print("sent 1005 recv 0")


def main(a):
    if a[0] == "server":
        server(a[1:])
    elif a[0] == "echo":
        echo(a[1], a[2], int(a[3]))
    elif a[0] == "hold":
        echo(a[1], a[2], 2, float(a[3]))
    elif a[0] == "sink":
        sink(a[1], a[2], int(a[3]), int(a[4]))
    elif a[0] == "rst":
        rst(a[1], a[2])
    elif a[0] == "clientrst":
        clientrst(a[1], a[2])
    else:
        sys.exit("unknown mode " + a[0])


if __name__ == "__main__":
    main(sys.argv[1:])
