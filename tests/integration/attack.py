#!/usr/bin/python3
# attack.py: what an attacker inside a pod does, for tests/integration/security.bats. Debian's
# python3 only (no scapy): packets are built by hand. Every loop is bounded in count and time.
#   rawsyn SRC DST DPORT [COUNT]          TCP SYNs with a forged source, raw IP socket
#   packetsyn IFACE DSTMAC SRC DST DPORT  the same as a whole Ethernet frame (AF_PACKET)
#   probe HOST PORT [SECS]                one connect: prints "refused", "timeout" or "open",
#                                         and how long it took
#   udp HOST PORT [SECS]                  one datagram: "reply", "refused" or "timeout"
#   idle SECS HOST:PORT...                idle connections to each, reconnected when closed
#   flood HOST PORT N SECS                N connections that send nothing; prints how many
#                                         the peer still holds after SECS
import socket
import struct
import sys
import time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn_ip(src, dst, sport, dport):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 12345, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 54321, 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + tcp


def rawsyn(src, dst, dport, count=3):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    sent = 0
    for i in range(int(count)):
        try:
            s.sendto(syn_ip(src, dst, 40000 + i, int(dport)), (dst, 0))
            sent += 1
        except OSError as e:  # the kernel may refuse it already (EPERM from a cgroup hook)
            print("send: %s" % e)
        time.sleep(0.05)
    print("sent %d" % sent)


def packetsyn(iface, dstmac, src, dst, dport, count=3):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    mine = s.getsockname()[4]
    mac = bytes(int(x, 16) for x in dstmac.split(":"))
    for i in range(int(count)):
        s.send(mac + mine + b"\x08\x00" + syn_ip(src, dst, 41000 + i, int(dport)))
        time.sleep(0.05)
    print("sent %d" % int(count))


def probe(host, port, secs=5):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(float(secs))
    t0 = time.monotonic()
    try:
        if "%" in host:
            addr = socket.getaddrinfo(host, int(port), fam, socket.SOCK_STREAM)[0][4]
        else:
            addr = (host, int(port))
        s.connect(addr)
        res = "open"
    except ConnectionRefusedError:
        res = "refused"
    except (socket.timeout, TimeoutError):
        res = "timeout"
    except OSError as e:
        res = "error %s" % e.strerror
    print("%s %.3f" % (res, time.monotonic() - t0))


def udp(host, port, secs=2):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(float(secs))
    s.connect((host, int(port)))  # connected: an ICMP unreachable comes back as an error
    try:
        s.send(b"ping")
        s.recv(65536)
        print("reply")
    except ConnectionRefusedError:
        print("refused")
    except (socket.timeout, TimeoutError):
        print("timeout")


def idle(secs, *targets):
    end = time.monotonic() + float(secs)
    socks = {}
    made = 0
    while time.monotonic() < end:
        for t in targets:
            s = socks.get(t)
            if s is not None:
                try:
                    s.setblocking(False)
                    if s.recv(1) == b"":
                        raise OSError
                    continue
                except BlockingIOError:
                    continue
                except OSError:
                    s.close()
            host, port = t.rsplit(":", 1)
            s = socket.socket()
            s.settimeout(1)
            try:
                s.connect((host, int(port)))  # and then say nothing
                socks[t] = s
                made += 1
            except OSError:
                socks.pop(t, None)
        time.sleep(0.05)
    print("idle connections made %d" % made)


def flood(host, port, n, secs):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((host, int(port)))
            socks.append(s)
        except OSError:
            s.close()
    time.sleep(float(secs))
    held = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) != b"":
                held += 1
        except BlockingIOError:
            held += 1
        except OSError:
            pass
    print("connected %d held %d" % (len(socks), held))
    sys.stdout.flush()
    for s in socks:
        s.close()


if __name__ == "__main__":
    {"rawsyn": rawsyn, "packetsyn": packetsyn, "probe": probe, "udp": udp, "idle": idle,
     "flood": flood}[sys.argv[1]](*sys.argv[2:])
