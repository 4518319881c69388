#!/usr/bin/python3
"""A deliberately bad HTTP/1.1 server for l7.bats, on 0.0.0.0:9090, one thread per connection:
/cut answers a content-length of 1000 and sends 100 bytes before it closes; /cutchunked sends one
chunk and closes without the last one; /ws upgrades to a websocket-like raw echo (101, then
every byte back); anything else 200 "raw ok". Ends by itself after 300 s (bounded)."""
import socket
import threading
import time


def serve(c):
    c.settimeout(30)
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            b = c.recv(4096)
            if not b:
                return
            data += b
        line = data.split(b"\r\n", 1)[0].decode()
        path = line.split(" ")[1] if " " in line else "/"
        if path.startswith("/cutchunked"):
            c.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.2)
        elif path.startswith("/cut"):
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 100)
            time.sleep(0.2)
        elif path.startswith("/ws"):
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                      b"connection: Upgrade\r\n\r\n")
            rest = data.split(b"\r\n\r\n", 1)[1]
            if rest:
                c.sendall(rest)
            while True:
                b = c.recv(4096)
                if not b:
                    break
                c.sendall(b)
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nraw ok")
    except OSError:
        pass
    finally:
        c.close()


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 9090))
    s.listen(64)
    s.settimeout(1)
    end = time.time() + 300
    while time.time() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()


main()
