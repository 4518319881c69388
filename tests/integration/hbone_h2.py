#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# hbone_h2.py: an HBONE client written with Debian's python3-h2 (not our code), as a ztunnel
# would open one: mutual TLS 1.3 with a workload certificate, ALPN h2, then one HTTP/2 CONNECT
# stream per application connection on the same TLS connection, :authority = the destination
# pod's ip:port, with forwarded, baggage and traceparent headers. Each stream that gets 200
# carries one HTTP/1.1 request to the pod; the answer's "pod" field is printed.
#
#   hbone_h2.py --connect IP:15008|[IPV6]:15008 --sni NAME --cert C --key K --ca CA --authority IP:PORT
#       [--streams N] [--method CONNECT] [--path /get] [--forwarded for=IP] [--no-alpn]
#       [--sink SIZE REPLY] [--stall SECS]
#
# Prints "alpn h2", "server <URI SAN>", then per stream "stream ID status S pod P" (P is "-"
# when no body came), and "connections 1". Exit 0 when the TLS connection worked, whatever the
# streams got (the test reads the lines). --sink: instead of a request, each stream talks to
# accel_peer.py's SINK (SIZE random bytes, half-close, REPLY bytes back) and prints
# "sink ID sent SIZE SHA256 reply LINE got N" (LINE: the peer's count and digest).
# --stall: once every stream has its answer, read nothing for SECS (a peer that went away
# without a word: PINGs go unanswered), then print "after stall: closed" or "... open".
import argparse
import re
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--connect', required=True)
    ap.add_argument('--sni')
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--ca', required=True)
    ap.add_argument('--authority', required=True)
    ap.add_argument('--streams', type=int, default=1)
    ap.add_argument('--method', default='CONNECT')
    ap.add_argument('--path', default='/get')
    ap.add_argument('--forwarded')
    ap.add_argument('--no-alpn', action='store_true')
    ap.add_argument('--timeout', type=float, default=10)
    ap.add_argument('--sink', nargs=2, type=int, metavar=('SIZE', 'REPLY'))
    ap.add_argument('--stall', type=float)
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(a.ca)
    ctx.check_hostname = False  # SPIFFE: the URI SAN is checked below, as ztunnel does
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    if not a.no_alpn:
        ctx.set_alpn_protocols(['h2'])
    host, port = a.connect.rsplit(':', 1)
    host = host.strip('[]')  # [fd00::1]:15008
    raw = socket.create_connection((host, int(port)), timeout=a.timeout)
    tls = ctx.wrap_socket(raw, server_hostname=a.sni)
    print('alpn', tls.selected_alpn_protocol())
    cert = tls.getpeercert()
    for kind, value in cert.get('subjectAltName', ()):
        if kind == 'URI':
            print('server', value)
    sys.stdout.flush()

    # python3-h2 4.1 wants :path on every request, CONNECT too (RFC 9113 8.5 says no :path):
    # its outbound header check is off, nghttp2 on the other end checks the frames
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding='utf-8', validate_outbound_headers=False))
    conn.initiate_connection()
    streams = {}
    for _ in range(a.streams):
        sid = conn.get_next_available_stream_id()
        hdrs = [(':method', a.method), (':authority', a.authority)]
        if a.method != 'CONNECT':
            hdrs += [(':scheme', 'https'), (':path', '/')]
        if a.forwarded:
            hdrs.append(('forwarded', a.forwarded))
        hdrs += [('baggage', 'k8s.namespace.name=test'),
                 ('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')]
        conn.send_headers(sid, hdrs, end_stream=a.method != 'CONNECT')
        streams[sid] = {'status': None, 'body': b'', 'ended': False, 'out': None, 'off': 0}
    tls.sendall(conn.data_to_send())
    import hashlib
    import os

    def pump_sends():  # as much of each stream's upload as the windows allow
        for sid, s in streams.items():
            while s['out'] is not None and s['off'] < len(s['out']):
                n = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size,
                        len(s['out']) - s['off'])
                if n <= 0:
                    break
                conn.send_data(sid, s['out'][s['off']:s['off'] + n])
                s['off'] += n
            if s['out'] is not None and s['off'] == len(s['out']) and not s.get('half'):
                s['half'] = True
                conn.end_stream(sid)

    deadline = time.monotonic() + a.timeout
    def settled():
        if a.stall:
            return all(s['status'] is not None for s in streams.values())
        return all(s['ended'] for s in streams.values())

    while time.monotonic() < deadline and not settled():
        try:
            data = tls.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                s = streams[ev.stream_id]
                s['status'] = int(dict(ev.headers)[':status'])
                if s['status'] == 200 and a.sink:
                    data = os.urandom(a.sink[0])
                    s['sha'] = hashlib.sha256(data).hexdigest()
                    s['out'] = memoryview(('SINK %d\n' % a.sink[1]).encode() + data)
                elif s['status'] == 200:  # the tunnel is up: one request through it
                    req = ('GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' %
                           (a.path, a.authority)).encode()
                    conn.send_data(ev.stream_id, req, end_stream=False)
            elif isinstance(ev, h2.events.DataReceived):
                streams[ev.stream_id]['body'] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                s = streams[ev.stream_id]
                s['ended'] = True
                if s['status'] == 200 and not a.sink:
                    try:
                        conn.end_stream(ev.stream_id)
                    except Exception:
                        pass
            elif isinstance(ev, h2.events.StreamReset):
                s = streams[ev.stream_id]
                s['ended'] = True
                s['reset'] = ev.error_code
        pump_sends()
        out = conn.data_to_send()
        if out:
            tls.sendall(out)
    for sid in sorted(streams):
        s = streams[sid]
        if a.sink and s['out'] is not None:
            line = s['body'].split(b'\n', 1)[0].decode(errors='replace')
            print('sink', sid, 'sent', a.sink[0], s['sha'], 'reply', line, 'got',
                  len(s['body']) - len(line) - 1)
        m = re.search(rb'"pod":\s*"([^"]+)"', s['body'])
        print('stream', sid, 'status', s['status'], 'pod', m.group(1).decode() if m else '-')
    print('connections 1')
    if a.stall:
        time.sleep(a.stall)
        try:
            tls.settimeout(2)
            closed = True
            while True:
                data = tls.recv(65536)
                if not data:
                    break
                if not any(isinstance(ev, h2.events.ConnectionTerminated)
                           for ev in conn.receive_data(data)):
                    continue
                break
        except socket.timeout:
            closed = False
        except (OSError, h2.exceptions.ProtocolError):
            pass
        print('after stall:', 'closed' if closed else 'open')
        sys.stdout.flush()
        return 0
    conn.close_connection()
    try:
        tls.sendall(conn.data_to_send())
        tls.close()
    except OSError:
        pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
