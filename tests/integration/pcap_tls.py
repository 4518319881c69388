#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# pcap_tls.py: what a capture of the link between two nodes carried (mtls.bats).
#   pcap_tls.py PCAP MARKER [POD_IP]
# Fails when MARKER (plaintext the test sent) is anywhere in the capture, when there are fewer
# than 4 TLS records on port 15008, or when any other TCP flow carried payload (15012, the
# lab's CA, is mutual TLS too and allowed). With POD_IP (IPv4 or IPv6), only records to or
# from POD_IP:15008 count as the tunnel's (in-pod addressing). Reads both IP versions.
import ipaddress
import struct
import sys

data = open(sys.argv[1], 'rb').read()
marker = sys.argv[2].encode()
pod = ipaddress.ip_address(sys.argv[3]).packed if len(sys.argv) > 3 else None
assert marker not in data, "plaintext marker seen on the link"
off, tls, plain_ports = 24, 0, set()
linktype = struct.unpack('<I', data[20:24])[0]
while off + 16 <= len(data):
    incl = struct.unpack('<I', data[off + 8:off + 12])[0]
    pkt = data[off + 16:off + 16 + incl]
    off += 16 + incl
    ip = pkt[14 if linktype == 1 else 16:]
    if len(ip) >= 20 and ip[0] >> 4 == 4 and ip[9] == 6:
        src, dst, tcp = ip[12:16], ip[16:20], ip[(ip[0] & 15) * 4:]
    elif len(ip) >= 40 and ip[0] >> 4 == 6 and ip[6] == 6:
        src, dst, tcp = ip[8:24], ip[24:40], ip[40:]
    else:
        continue
    sport, dport = struct.unpack('>HH', tcp[:4])
    payload = tcp[(tcp[12] >> 4) * 4:]
    if not payload:
        continue
    if 15008 in (sport, dport) and (pod is None or (dport == 15008 and dst == pod) or
                                    (sport == 15008 and src == pod)):
        tls += payload[:3] in (b'\x17\x03\x03', b'\x16\x03\x01', b'\x16\x03\x03', b'\x14\x03\x03')
    elif 15012 in (sport, dport):
        pass  # a certificate renewal with the lab's CA (mutual TLS too; 10 s TTL: every 5 s)
    else:
        plain_ports.add((sport, dport))
print("TLS records on 15008:", tls, "other payload flows:", plain_ports)
assert tls >= 4, "no TLS records on port 15008"
assert not plain_ports, "payload outside the tunnel"
