# churn.py: the churn run of `make bench` (tests/bench/churn.sh drives it).
#   churn.py write CFGDIR N RATE OUT    rewrite the churn VirtualService N times at RATE per
#                                       second (version k routes every connection to subset
#                                       v((k % 4) + 1)); OUT gets "k wall_time" per write
#   churn.py check WRITES CONNS LOG LOG0   judge every connection against the configs in
#                                       force (from the agent log, bytes after LOG0) around
#                                       its connect; prints one line of key=value results
import os
import re
import sys
import time
from datetime import datetime, timedelta, timezone

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: churn, namespace: bench}
spec:
  hosts: [churn]
  tcp:
  - route: [{destination: {host: churn, subset: %s}, weight: 100}]
"""
EPS = 0.005  # the agent log: times and durations in whole ms, and the write time is taken after
# the rename returns (the agent may see it a little before): a 5 ms tolerance


NSUB = 4  # subsets v1..v4 (tests/bench/churn.yaml)


def subset(k):
    return "v%d" % (k % NSUB + 1)


def write(cfg, n, rate, out):
    path = os.path.join(cfg, "VirtualService.bench.churn.yaml")
    tmp = os.path.join(cfg, ".churn.tmp")
    start = time.time()
    with open(out, "w") as f:
        for k in range(1, n + 1):
            delay = start + (k - 1) / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            with open(tmp, "w") as t:
                t.write(VS % subset(k))
            os.rename(tmp, path)
            f.write("%d %.6f\n" % (k, time.time()))


def applies(log, off, day):
    """(t0, r, a) of each apply in the log after off, wall seconds: change seen, files read,
    in force (the agent logs UTC times)."""
    pat = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) .*applied config: .*; read (\d+) ms"
                     r".* in (\d+) ms$")
    res = []
    with open(log, "rb") as f:
        f.seek(off)
        for line in f.read().decode(errors="replace").splitlines():
            m = pat.match(line)
            if not m:
                continue
            h, mi, s, ms, rd, dur = (int(x) for x in m.groups())
            a = day + timedelta(hours=h, minutes=mi, seconds=s, milliseconds=ms)
            a = a.timestamp()
            t0 = a - dur / 1000.0
            res.append((t0, t0 + rd / 1000.0, a))
    return res


def check(writes_f, conns_f, log, off):
    writes = [tuple(float(x) for x in l.split()) for l in open(writes_f) if l.strip()]
    w = {int(k): t for k, t in writes}
    first = writes[0][1]
    d = datetime.fromtimestamp(first, tz=timezone.utc)
    day = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
    aps = applies(log, off, day)
    if aps and aps[0][2] < first - 43200:
        aps = [(t + 86400, r + 86400, a + 86400) for t, r, a in aps]  # crossed midnight

    def version_at(t):  # the last version written before t
        v = 0
        for k, tw in writes:
            if tw <= t:
                v = int(k)
        return v

    # each apply: (change seen, in force, the versions it may have read: any written from
    # just before it saw the change until its files were read)
    states = [(t0, a, set(range(version_at(t0 - EPS), version_at(r + EPS) + 1)))
              for t0, r, a in aps]

    def allowed(c0, c1):
        cur = {0}
        for t0, a, vs in states:  # in force before the connect started
            if a + EPS < c0:
                cur = vs
        for t0, a, vs in states:  # put in force while it ran
            if t0 - EPS <= c1 and a + EPS >= c0:
                cur = cur | vs
        return {subset(v) for v in cur}

    n = fail = bad = unjudged = 0
    for line in open(conns_f):
        p = line.split()
        if len(p) != 3:
            continue
        c0, c1, ver = float(p[0]), float(p[1]), p[2]
        if c0 < first - 1:
            continue
        n += 1
        ok = allowed(c0, c1)
        if ver == "FAIL":
            fail += 1
        elif len(ok) == NSUB:
            unjudged += 1  # every subset allowed around it: says nothing
        elif ver not in ok:
            bad += 1
    # write -> in force: the first apply that read the files after the write
    lat = []
    for k, tw in writes:
        for t0, r, a in aps:
            if t0 + EPS >= tw:
                lat.append((a - tw) * 1000)
                break
    lat.sort()

    def pct(p):
        return "%.1f" % lat[min(len(lat) - 1, int(len(lat) * p))] if lat else "n/a"

    print("connections=%d failed=%d wrong_backend=%d unjudged=%d writes=%d applies=%d "
          "in_force=%d p50_ms=%s p99_ms=%s max_ms=%s" % (n, fail, bad, unjudged, len(writes),
                                                        len(aps), len(lat), pct(0.5),
                                                        pct(0.99), pct(1.0)))


if sys.argv[1] == "write":
    write(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
else:
    check(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
