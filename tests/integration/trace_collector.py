#!/usr/bin/python3
"""A trace collector for tests/integration/tracing.bats: takes Zipkin v2 (POST /api/v2/spans)
and OTLP/HTTP (POST /v1/traces, protobuf or JSON) on 127.0.0.1:PORT and writes each body it
receives to DIR/NNNNN.<zipkin|otlp-pb|otlp-json>, answering 202 / 200 as Zipkin and OTLP
collectors do. --hold: accept connections and never answer (a collector that hangs);
--discard: answer and keep nothing (make bench).
Runs until killed."""
import argparse
import http.server
import itertools
import os
import socket
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--dir", required=True)
ap.add_argument("--hold", action="store_true")
ap.add_argument("--discard", action="store_true", help="answer, keep nothing (benchmarks)")
a = ap.parse_args()
seq = itertools.count()
lock = threading.Lock()

if a.hold:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", a.port))
    s.listen(64)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)  # never read, never answered

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n)
        ct = self.headers.get("content-type", "")
        if self.path.startswith("/api/v2/spans"):
            ext, code = "zipkin", 202
        elif self.path.startswith("/v1/traces"):
            ext, code = ("otlp-pb" if "protobuf" in ct else "otlp-json"), 200
        else:
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if a.discard:
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        with lock:
            name = os.path.join(a.dir, "%05d.%s" % (next(seq), ext))
        with open(name + ".tmp", "wb") as f:
            f.write(body)
        os.rename(name + ".tmp", name)
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()

http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H).serve_forever()
