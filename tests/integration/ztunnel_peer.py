#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# ztunnel_peer.py: an HBONE server written with Debian's python3-h2 (not our code) that plays
# a ztunnel on another node: mutual TLS 1.3 (a client certificate of the CA is required), ALPN
# h2, HTTP/2 CONNECT streams. For each stream it prints what it received and answers --status
# (200 by default); a 200 stream then plays the pod: it reads an HTTP/1.1 request head and
# answers {"pod": "ztunnel-played", "stream": ID, "conn": N}, then ends the stream.
#
#   ztunnel_peer.py --listen IP:PORT --cert C --key K --ca CA [--status 200] [--secs 60]
#       [--no-alpn] [--hold] [--goaway-first]
#
# Lines (flushed at once): "listening", "conn N alpn P client URI-SAN", "conn N stream ID
# method M authority A forwarded F baggage B traceparent T protocol P", "conn N closed
# streams K". --no-alpn: selects no protocol (an agent before HTTP/2; the client must fall
# back to HTTP/1.1 CONNECT, which it then answers: "conn N h1 CONNECT ..."). --hold: 200 streams stay open until the client ends them (no answer is written).
# --goaway-first: the first connection's first CONNECT gets a GOAWAY whose last stream id is
# below it (the stream was not processed, as from an agent that drains), then the close.
import argparse
import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


def say(*a):
    print(*a)
    sys.stdout.flush()


class Conn:
    def __init__(self, n, tls, a):
        self.n, self.tls, self.a = n, tls, a
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding='utf-8', validate_inbound_headers=False))
        self.h2.initiate_connection()
        self.reqs = {}
        self.streams = 0
        self.flush()

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.tls.setblocking(True)
            self.tls.sendall(out)
            self.tls.setblocking(False)

    def on_data(self, data):
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            say('conn', self.n, 'protocol error', e)
            return False
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived) and self.a.goaway_first and self.n == 1:
                # a peer going away (an agent that drains): this stream was not processed
                say('conn', self.n, 'goaway below stream', ev.stream_id)
                self.h2.close_connection(error_code=0, last_stream_id=max(0, ev.stream_id - 2))
                self.flush()
                return False
            if isinstance(ev, h2.events.RequestReceived):
                self.streams += 1
                h = dict(ev.headers)
                say('conn', self.n, 'stream', ev.stream_id, 'method', h.get(':method', '-'),
                    'authority', h.get(':authority', '-'), 'forwarded',
                    h.get('forwarded', '-'), 'baggage', h.get('baggage', '-'), 'traceparent',
                    h.get('traceparent', '-'), 'protocol', h.get('bpfmesh-protocol', '-'),
                    'path', h.get(':path', '-'))
                end = self.a.status != 200
                self.h2.send_headers(ev.stream_id, [(':status', str(self.a.status))],
                                     end_stream=end)
                if not end:
                    self.reqs[ev.stream_id] = b''
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if ev.stream_id not in self.reqs or self.a.hold:
                    continue
                self.reqs[ev.stream_id] += ev.data
                if b'\r\n\r\n' in self.reqs[ev.stream_id]:
                    body = ('{"pod": "ztunnel-played", "stream": %d, "conn": %d}\n' %
                            (ev.stream_id, self.n)).encode()
                    head = ('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                            'Content-Length: %d\r\nConnection: close\r\n\r\n' % len(body))
                    self.h2.send_data(ev.stream_id, head.encode() + body, end_stream=True)
                    del self.reqs[ev.stream_id]
            elif isinstance(ev, h2.events.StreamEnded):
                if self.a.hold and ev.stream_id in self.reqs:
                    self.h2.end_stream(ev.stream_id)
                    del self.reqs[ev.stream_id]
            elif isinstance(ev, h2.events.StreamReset):
                self.reqs.pop(ev.stream_id, None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                return False
        self.flush()
        return True


def h1(n, tls):
    # no h2: an agent's HTTP/1.1 CONNECT (one application connection), or nothing at all
    buf = b''
    try:
        while b'\r\n\r\n' not in buf:
            d = tls.recv(4096)
            if not d:
                break
            buf += d
        if b'\r\n\r\n' in buf:
            head, rest = buf.split(b'\r\n\r\n', 1)
            say('conn', n, 'h1', head.split(b'\r\n')[0].decode(errors='replace'))
            tls.sendall(b'HTTP/1.1 200 OK\r\n\r\n')
            while b'\r\n\r\n' not in rest:
                d = tls.recv(4096)
                if not d:
                    break
                rest += d
            body = b'{"pod": "ztunnel-played", "h1": true}\n'
            tls.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n'
                        % len(body) + body)
    except (OSError, ssl.SSLError):
        pass
    say('conn', n, 'closed streams 0')
    try:
        tls.close()
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--listen', required=True)
    ap.add_argument('--cert', required=True)
    ap.add_argument('--key', required=True)
    ap.add_argument('--ca', required=True)
    ap.add_argument('--status', type=int, default=200)
    ap.add_argument('--secs', type=float, default=60)
    ap.add_argument('--no-alpn', action='store_true')
    ap.add_argument('--hold', action='store_true')
    ap.add_argument('--goaway-first', action='store_true',
                    help='answer the first connection\'s first CONNECT with a GOAWAY below it')
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(a.cert, a.key)
    ctx.load_verify_locations(a.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED  # as ztunnel: a client certificate of the mesh CA
    if not a.no_alpn:
        ctx.set_alpn_protocols(['h2'])
    host, port = a.listen.rsplit(':', 1)
    ls = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host.strip('[]'), int(port)))
    ls.listen(64)
    ls.setblocking(False)
    say('listening')
    conns = {}
    n = 0
    deadline = time.monotonic() + a.secs
    while time.monotonic() < deadline:
        r, _, _ = select.select([ls] + list(conns), [], [], 0.5)
        for s in r:
            if s is ls:
                try:
                    raw, _ = ls.accept()
                    raw.settimeout(5)
                    tls = ctx.wrap_socket(raw, server_side=True)
                except (OSError, ssl.SSLError) as e:
                    say('handshake failed', e)
                    continue
                n += 1
                sans = [v for k, v in tls.getpeercert().get('subjectAltName', ()) if k == 'URI']
                say('conn', n, 'alpn', tls.selected_alpn_protocol(), 'client',
                    sans[0] if sans else '-')
                if tls.selected_alpn_protocol() != 'h2':
                    h1(n, tls)
                    continue
                tls.setblocking(False)
                conns[tls] = Conn(n, tls, a)
                continue
            c = conns[s]
            try:
                data = s.recv(65536)
            except ssl.SSLWantReadError:
                continue
            except OSError:
                data = b''
            if not data or not c.on_data(data):
                say('conn', c.n, 'closed streams', c.streams)
                del conns[s]
                s.close()
    for s, c in conns.items():
        say('conn', c.n, 'closed streams', c.streams)
        s.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
