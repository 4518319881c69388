#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# fake-apiserver.py: a test Kubernetes API server, read-only, that serves the objects found in a
# directory of YAML files the way kube-apiserver v1.30 serves them: discovery, list (chunked with
# limit/continue, label and field selectors), get, and watch (resourceVersion replay, bookmarks,
# timeoutSeconds, 410 Expired after compaction), over HTTP/1.1 or HTTPS, with bearer-token and
# client-certificate authentication. A real kube-apiserver cannot run on the test machines, so
# the bats suites in tests/integration and `bpfmesh lab up --kube-api` run this instead. Debian's
# python3 and python3-yaml only.
#
#   fake-apiserver.py --dir DIR [--listen HOST:PORT] [--port-file FILE] [--log FILE]
#       [--tls-cert FILE [--tls-key FILE]] [--client-ca FILE] [--token TOKEN] [--token-file FILE]
#       [--start-rv N] [--bookmark-interval SECONDS] [--uninstalled GROUP]... [--history N]
#
# Every *.yaml, *.yml, *.json file directly in DIR (not in subdirectories, not named .*) is read,
# each may hold several --- documents and `kind: List`s. DIR is rescanned every 100 ms; a change
# becomes ADDED/MODIFIED/DELETED events under one global resourceVersion counter. A file that
# fails to parse keeps its previous objects. Files may be replaced by rename or written in place
# (a file written less than 50 ms ago is read at the next scan). Writes (POST, PUT, PATCH,
# DELETE) get 405: the mesh only reads. `--listen` defaults to 127.0.0.1:0 (0 = pick a port);
# the server prints `listening on HOST:PORT` and writes PORT to --port-file (atomically).
# With --token, --token-file (re-read on every request, one token a line) or --client-ca, a
# request without a valid token or client certificate (user = its CN) gets 401.
#
# Test-only control API (GET or POST, JSON answers, no authentication, never delayed/recorded):
#   /_test/compact                one write (as kube-apiserver's compactor does), then drop the
#                                 event history: every older RV and continue token gets 410
#   /_test/disconnect             drop every open watch connection mid-stream (TCP RST)
#   /_test/delay?ms=N             delay every later API response N ms before its headers (0 = off)
#   /_test/down?seconds=N         close every connection and the listening socket (clients get
#                                 ECONNREFUSED) for N s, then listen again on the same port;
#                                 without seconds: down until SIGUSR2
#   /_test/uninstall?group=G      serve group G (e.g. networking.istio.io) no more: 404, absent
#   /_test/install?group=G        from discovery, its open watches end; install serves it again
#   /_test/forbid?resource=R      answer 403 Forbidden for R (pods, virtualservices.networking.
#   /_test/allow[?resource=R]     istio.io, ...); allow lifts it (all of them without resource)
#   /_test/requests               the recorded API requests (method, path, auth, cert, user, code)
#   /_test/requests/clear         forget them
#   /_test/watches                open watch streams per resource: {"pods": 2, "virtualservices.
#                                 networking.istio.io": 1}
#   /_test/rescan                 rescan DIR now, answer the resulting resourceVersion
#   /_test/rv                     the current (and the compacted) resourceVersion
# Signals: SIGUSR1 = go down (close the listener and every connection), SIGUSR2 = listen again on
# the same port; SIGTERM/SIGINT = exit within 1 s.
#
# Not faithful: JSON only (no protobuf, YAML or aggregated discovery v2, no gzip); discovery
# advertises verbs get, list, watch only; no subresources, no RBAC (only /_test/forbid); uids are
# uuid5 of group/kind/namespace/name, so a re-created object keeps its uid; list limit is honored
# even with resourceVersion=0; sendInitialEvents is not supported.
import argparse
import base64
import collections
import datetime
import hmac
import json
import os
import random
import re
import select
import signal
import socket
import socketserver
import ssl
import stat
import struct
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

SCAN_INTERVAL = 0.1
SETTLE_NS = 50_000_000          # a file written this recently is read at the next scan
MAX_CONNS = 1024
MAX_WATCH_QUEUE = 10000         # events buffered for a watcher that does not read: then it ends
MAX_BODY = 1 << 20
MAX_RECORDS = 10000
PEER_POLL = 0.25                # how often a waiting watch checks that its client is still there
IDLE_TIMEOUT = 60               # seconds a connection may sit idle, or a write may block
TRUE = ('1', 't', 'true')
VERBS = ['get', 'list', 'watch']
VERSION = {'major': '1', 'minor': '30', 'gitVersion': 'v1.30.0',
           'gitCommit': '7c48c2bd72b9bf5c44d21d7338cc7bea77d0ad2a', 'gitTreeState': 'clean',
           'buildDate': '2024-04-17T17:27:03Z', 'goVersion': 'go1.22.2', 'compiler': 'gc',
           'platform': 'linux/amd64'}

RT = collections.namedtuple('RT', 'group versions plural singular kind namespaced short')
ISTIO_NET, ISTIO_SEC, ISTIO_TEL = ('v1', 'v1beta1', 'v1alpha3'), ('v1', 'v1beta1'), ('v1', 'v1alpha1')
RESOURCES = [RT(*r) for r in [
    ('', ('v1',), 'namespaces', 'namespace', 'Namespace', False, ('ns',)),
    ('', ('v1',), 'pods', 'pod', 'Pod', True, ('po',)),
    ('', ('v1',), 'services', 'service', 'Service', True, ('svc',)),
    ('', ('v1',), 'endpoints', 'endpoints', 'Endpoints', True, ('ep',)),
    ('', ('v1',), 'secrets', 'secret', 'Secret', True, ()),
    ('', ('v1',), 'configmaps', 'configmap', 'ConfigMap', True, ('cm',)),
    ('apps', ('v1',), 'deployments', 'deployment', 'Deployment', True, ('deploy',)),
    ('apps', ('v1',), 'replicasets', 'replicaset', 'ReplicaSet', True, ('rs',)),
    ('discovery.k8s.io', ('v1',), 'endpointslices', 'endpointslice', 'EndpointSlice', True, ()),
    ('gateway.networking.k8s.io', ('v1',), 'gateways', 'gateway', 'Gateway', True, ('gtw',)),
    ('gateway.networking.k8s.io', ('v1',), 'httproutes', 'httproute', 'HTTPRoute', True, ()),
    ('gateway.networking.k8s.io', ('v1alpha2',), 'tcproutes', 'tcproute', 'TCPRoute', True, ()),
    ('gateway.networking.k8s.io', ('v1alpha2',), 'tlsroutes', 'tlsroute', 'TLSRoute', True, ()),
    ('networking.istio.io', ISTIO_NET, 'destinationrules', 'destinationrule', 'DestinationRule', True, ('dr',)),
    ('networking.istio.io', ISTIO_NET, 'envoyfilters', 'envoyfilter', 'EnvoyFilter', True, ()),
    ('networking.istio.io', ISTIO_NET, 'gateways', 'gateway', 'Gateway', True, ('gw',)),
    ('networking.istio.io', ISTIO_NET, 'serviceentries', 'serviceentry', 'ServiceEntry', True, ('se',)),
    ('networking.istio.io', ISTIO_NET, 'sidecars', 'sidecar', 'Sidecar', True, ()),
    ('networking.istio.io', ISTIO_NET, 'virtualservices', 'virtualservice', 'VirtualService', True, ('vs',)),
    ('networking.istio.io', ISTIO_NET, 'workloadentries', 'workloadentry', 'WorkloadEntry', True, ('we',)),
    ('networking.istio.io', ISTIO_NET, 'workloadgroups', 'workloadgroup', 'WorkloadGroup', True, ('wg',)),
    ('security.istio.io', ISTIO_SEC, 'authorizationpolicies', 'authorizationpolicy', 'AuthorizationPolicy', True, ('ap',)),
    ('security.istio.io', ISTIO_SEC, 'peerauthentications', 'peerauthentication', 'PeerAuthentication', True, ('pa',)),
    ('security.istio.io', ISTIO_SEC, 'requestauthentications', 'requestauthentication', 'RequestAuthentication', True, ('ra',)),
    ('telemetry.istio.io', ISTIO_TEL, 'telemetries', 'telemetry', 'Telemetry', True, ('telemetry',)),
]]
GROUPS = {}                     # group -> served versions, preferred first
for _rt in RESOURCES:  # every version some resource of the group has (gateway's v1alpha2 routes)
    GROUPS[_rt.group] = GROUPS.get(_rt.group, ()) + tuple(
        v for v in _rt.versions if v not in GROUPS.get(_rt.group, ()))
BY_KIND = {(rt.group, rt.kind): rt for rt in RESOURCES}
BY_PLURAL = {(rt.group, rt.plural): rt for rt in RESOURCES}
BUILTIN = ('', 'apps', 'discovery.k8s.io')     # lists of these omit kind/apiVersion in items
POD_FIELDS = ('spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName',
              'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName')
EXTRA_FIELDS = {('', 'pods'): POD_FIELDS, ('', 'namespaces'): ('status.phase',)}

Key = collections.namedtuple('Key', 'group kind ns name')
Event = collections.namedtuple('Event', 'rv type key obj prev')


def log(msg):
    try:
        print('fake-apiserver: %s' % msg, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def rt_name(rt):
    return rt.plural + ('.' + rt.group if rt.group else '')


def api_version(group, version):
    return group + '/' + version if group else version


def skey(key):
    return key.ns + '/' + key.name if key.ns else key.name


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def dumps(doc):
    return json.dumps(doc, separators=(',', ':'), default=str).encode()


# ---- Status objects and API errors -----------------------------------------------------------
REASONS = {400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound',
           405: 'MethodNotAllowed', 410: 'Expired', 500: 'InternalError', 504: 'Timeout'}


def status(code, message, reason=None, details=None, metadata=None):
    s = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': metadata or {}, 'status': 'Failure',
         'message': message, 'reason': reason or REASONS[code]}
    if details is not None:
        s['details'] = details
    s['code'] = code
    return s


class ApiError(Exception):
    def __init__(self, code, message, reason=None, details=None, metadata=None):
        super().__init__(message)
        self.code, self.body = code, status(code, message, reason, details, metadata)


def not_found():
    return ApiError(404, 'the server could not find the requested resource', details={})


def bad_request(message):
    return ApiError(400, message)


def object_details(rt, name):
    d = {'name': name}
    if rt.group:
        d['group'] = rt.group
    d['kind'] = rt.plural
    return d


# ---- YAML files -> objects -------------------------------------------------------------------
class Loader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):
    """Safe loader that keeps timestamps as strings, as sigs.k8s.io/yaml does."""


Loader.add_constructor('tag:yaml.org,2002:timestamp', lambda loader, node: loader.construct_scalar(node))


def expand(doc):
    if isinstance(doc, dict) and isinstance(doc.get('items'), list) and str(doc.get('kind', '')).endswith('List'):
        for item in doc['items']:
            yield from expand(item)
    elif isinstance(doc, dict):
        yield doc


def normalize(doc, skipped):
    """(Key, raw object) for a document the server serves, else None (noted in skipped)."""
    av, kind, md = doc.get('apiVersion'), doc.get('kind'), doc.get('metadata')
    if not (isinstance(av, str) and isinstance(kind, str) and isinstance(md, dict)
            and isinstance(md.get('name'), str) and md['name']):
        skipped.append('a document without apiVersion/kind/metadata.name')
        return None
    group, _, version = av.rpartition('/')
    rt = BY_KIND.get((group, kind))
    if rt is None or version not in rt.versions:
        skipped.append('%s %s' % (av, kind))
        return None
    if not isinstance(md.get('labels', {}), dict) or not isinstance(md.get('annotations', {}), dict):
        skipped.append('%s %s (labels/annotations not a map)' % (kind, md['name']))
        return None
    md = {k: v for k, v in md.items() if k != 'resourceVersion'}
    ns = str(md.get('namespace') or 'default') if rt.namespaced else ''
    if rt.namespaced:
        md['namespace'] = ns
    else:
        md.pop('namespace', None)
    return Key(group, kind, ns, md['name']), dict(doc, metadata=md)


def parse_file(path):
    with open(path, 'rb') as f:
        text = f.read().decode('utf-8')
    docs = [json.loads(text)] if path.endswith('.json') and text.strip() else yaml.load_all(text, Loader=Loader)
    items, skipped = [], []
    for doc in docs:
        for obj in expand(doc):
            item = normalize(obj, skipped)
            if item:
                items.append(item)
    if skipped:
        log('%s: ignoring %d object(s) not served: %s' % (os.path.basename(path), len(skipped),
                                                         ', '.join(sorted(set(skipped)))))
    return items


def same(a, b):
    """Equal content, ignoring the version in apiVersion (the group is part of the key)."""
    return dict(a, apiVersion=None) == dict(b, apiVersion=None)


def with_rv(obj, rv):
    return dict(obj, metadata=dict(obj['metadata'], resourceVersion=str(rv)))


def enrich(key, raw, prev, prev_raw, rv):
    """The stored object: raw plus the metadata the API server sets."""
    md, pmd = dict(raw['metadata']), (prev['metadata'] if prev else {})
    out = {'name': md.pop('name')}
    if key.ns:
        out['namespace'] = md.pop('namespace')
    uid_src = '%s/%s/%s/%s' % key
    out['uid'] = md.pop('uid', None) or str(uuid.uuid5(uuid.NAMESPACE_URL, uid_src))
    out['resourceVersion'] = str(rv)
    if key.group and 'generation' not in md:    # built-in core kinds carry no generation
        gen = 1 if not prev else pmd.get('generation', 1) + (raw.get('spec') != prev_raw.get('spec'))
        out['generation'] = gen
    out['creationTimestamp'] = md.pop('creationTimestamp', None) or pmd.get('creationTimestamp') or now_iso()
    out.update(md)
    obj = dict(raw, metadata=out)
    if key.group == '' and key.kind == 'Namespace':
        out['labels'] = dict(out.get('labels') or {}, **{'kubernetes.io/metadata.name': key.name})
        obj.setdefault('spec', {'finalizers': ['kubernetes']})
        obj.setdefault('status', {'phase': 'Active'})
    return obj


# ---- the object store, its history and its watchers ------------------------------------------
class Store:
    def __init__(self, start_rv, max_history):
        self.cond = threading.Condition()
        self.rv = self.compacted = start_rv   # events after `compacted` are all in history
        self.objects, self.raws = {}, {}
        self.history, self.max_history = [], max_history
        self.watchers = set()

    def apply(self, desired):
        """Make the store hold exactly `desired` (Key -> raw object); publish the changes."""
        with self.cond:
            events = []
            for key in sorted(self.raws.keys() | desired.keys()):
                old, new = self.raws.get(key), desired.get(key)
                if new is None:
                    events.append(self._delete(key))
                elif old is None or not same(old, new):
                    events.append(self._put(key, new))
            if events:
                self._publish(events)
            return len(events)

    def _put(self, key, raw):
        self.rv += 1
        prev = self.objects.get(key)
        obj = enrich(key, raw, prev, self.raws.get(key), self.rv)
        self.objects[key], self.raws[key] = obj, raw
        return Event(self.rv, 'MODIFIED' if prev else 'ADDED', key, obj, prev)

    def _delete(self, key):
        self.rv += 1
        prev = self.objects.pop(key)
        del self.raws[key]
        return Event(self.rv, 'DELETED', key, with_rv(prev, self.rv), prev)

    def _publish(self, events):
        self.history.extend(events)
        excess = len(self.history) - self.max_history
        if excess > 0:
            self.compacted = self.history[excess - 1].rv
            del self.history[:excess]
        for w in self.watchers:
            w.push(events)
        self.cond.notify_all()

    def compact(self):
        """As kube-apiserver's compactor: a write (the compact key), then etcd compaction."""
        with self.cond:
            self.rv += 1
            self.compacted = self.rv
            self.history.clear()
            return self.rv

    def since(self, rv):
        """Events after rv (caller holds cond, rv >= compacted)."""
        i = len(self.history)
        while i > 0 and self.history[i - 1].rv > rv:
            i -= 1
        return self.history[i:]

    def state_at(self, rv):
        """Key -> object as it was at rv (caller holds cond, rv >= compacted)."""
        state = dict(self.objects)
        for ev in reversed(self.history):
            if ev.rv <= rv:
                break
            if ev.type == 'ADDED':
                state.pop(ev.key, None)
            else:
                state[ev.key] = ev.prev
        return state


# ---- selectors -------------------------------------------------------------------------------
LABEL_KEY = r'[A-Za-z0-9][-\w./]*'
LABEL_VAL = r'[-\w.]*'


def parse_labels(s):
    reqs = []
    for term in re.findall(r'(?:[^,(]|\([^)]*\))+', s):
        t = term.strip()
        if not t:
            continue
        m = re.fullmatch(r'(%s)\s+(in|notin)\s*\(([^)]*)\)' % LABEL_KEY, t)
        if m:
            reqs.append((m[1], m[2], {v.strip() for v in m[3].split(',')}))
            continue
        m = re.fullmatch(r'(%s)\s*(==|=|!=)\s*(%s)' % (LABEL_KEY, LABEL_VAL), t)
        if m:
            reqs.append((m[1], 'notin' if m[2] == '!=' else 'in', {m[3]}))
        elif re.fullmatch(r'!\s*%s' % LABEL_KEY, t):
            reqs.append((t[1:].strip(), '!', None))
        elif re.fullmatch(LABEL_KEY, t):
            reqs.append((t, 'exists', None))
        else:
            raise bad_request('unable to parse requirement: %r' % t)
    return reqs


def parse_fields(s, rt):
    allowed = ('metadata.name', 'metadata.namespace') + EXTRA_FIELDS.get((rt.group, rt.plural), ())
    reqs = []
    for t in filter(None, (t.strip() for t in s.split(','))):
        m = re.fullmatch(r'([\w.]+)\s*(==|=|!=)\s*(.*)', t)
        if not m:
            raise bad_request("invalid selector: '%s'; can't understand '%s'" % (s, t))
        if m[1] not in allowed:
            raise bad_request('field label not supported: %s' % m[1])
        reqs.append((m[1], m[2] == '!=', m[3]))
    return reqs


def field_value(obj, path):
    v = obj
    for part in path.split('.'):
        v = v.get(part) if isinstance(v, dict) else None
    if isinstance(v, bool):
        return 'true' if v else 'false'
    return '' if v is None else str(v)


class Selector:
    def __init__(self, rt, q, name=None):
        self.labels = parse_labels(q.get('labelSelector', ''))
        self.fields = parse_fields(q.get('fieldSelector', ''), rt)
        if name is not None:
            self.fields.append(('metadata.name', False, name))
        self.empty = not self.labels and not self.fields

    def __call__(self, obj):
        labels = obj['metadata'].get('labels') or {}
        for key, op, vals in self.labels:
            has = key in labels
            if op in ('exists', '!'):
                ok = has == (op == 'exists')
            else:
                ok = (has and str(labels[key]) in vals) == (op == 'in')
            if not ok:
                return False
        return all((field_value(obj, path) == val) != neg for path, neg, val in self.fields)


class Watcher:
    def __init__(self, rt, version, ns, sel, after):
        self.rt, self.version, self.ns, self.sel, self.after = rt, version, ns, sel, after
        self.queue = collections.deque()
        self.kill = None            # None, 'end' (clean end of stream) or 'abort' (TCP RST)

    def push(self, events):         # store.cond held
        if self.kill:
            return
        if len(self.queue) + len(events) > MAX_WATCH_QUEUE:
            self.kill = 'end'       # as the real cacher does with a watcher that cannot keep up
            self.queue.clear()
        else:
            self.queue.extend(events)

    def convert(self, ev):
        """(type, object) this watcher sends for ev, or None: the cacher's rules for selectors."""
        k = ev.key
        if ev.rv <= self.after or (k.group, k.kind) != (self.rt.group, self.rt.kind):
            return None
        if self.ns is not None and k.ns != self.ns:
            return None
        cur = ev.type != 'DELETED' and self.sel(ev.obj)
        old = ev.prev is not None and self.sel(ev.prev)
        if cur:
            return ('MODIFIED' if old else 'ADDED'), ev.obj
        if old:
            return 'DELETED', with_rv(ev.prev, ev.rv)
        return None


# ---- the directory scanner -------------------------------------------------------------------
class Scanner:
    def __init__(self, directory, store):
        self.dir, self.store = directory, store
        self.files = {}             # name -> (signature, [(Key, raw)])
        self.lock = threading.Lock()
        self.dir_error = None

    def scan(self, force=False):
        with self.lock:
            names = self._list()
            if names is None:
                return
            changed = False
            for name in names:
                changed |= self._check(name, force)
            for name in set(self.files) - set(names):
                del self.files[name]
                changed = True
            if changed:
                self.store.apply(self._desired())

    def _list(self):
        try:
            entries = os.listdir(self.dir)
        except OSError as e:
            if str(e) != self.dir_error:
                log('cannot list %s: %s; keeping the objects' % (self.dir, e))
            self.dir_error = str(e)
            return None
        self.dir_error = None
        return sorted(n for n in entries if not n.startswith('.') and n.endswith(('.yaml', '.yml', '.json')))

    def _check(self, name, force):
        path = os.path.join(self.dir, name)
        try:
            st = os.stat(path)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        sig = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        old = self.files.get(name)
        if old and old[0] == sig:
            return False
        if not force and time.time_ns() - st.st_mtime_ns < SETTLE_NS:
            return False            # maybe still being written
        try:
            items = parse_file(path)
        except Exception as e:      # noqa: BLE001 - any parse failure keeps the old objects
            log('%s: %s; keeping its previous objects' % (name, str(e).replace('\n', ' ')))
            self.files[name] = (sig, old[1] if old else [])
            return False
        self.files[name] = (sig, items)
        return True

    def _desired(self):
        desired, origin = {}, {}
        for name in sorted(self.files):
            for key, raw in self.files[name][1]:
                if key in origin and origin[key] != name:
                    log('%s %s/%s is in %s and %s; %s wins' % (key.kind, key.ns, key.name, origin[key], name, name))
                desired[key], origin[key] = raw, name
        return desired


# ---- server state shared by every connection -------------------------------------------------
class App:
    def __init__(self, args):
        self.args = args
        self.store = Store(args.start_rv, args.history)
        self.scanner = Scanner(args.dir, self.store)
        self.front = None
        self.lock = threading.Lock()
        self.conns = set()
        self.delay_ms = 0
        self.uninstalled = set(args.uninstalled)
        self.forbidden = set()
        self.records = collections.deque(maxlen=MAX_RECORDS)
        self.logf = open(args.log, 'a', buffering=1) if args.log else None
        self.ssl_ctx = make_ssl_ctx(args)
        self.auth_required = bool(args.token or args.token_file or args.client_ca)

    def tokens(self):
        toks = [self.args.token] if self.args.token else []
        if self.args.token_file:
            try:
                with open(self.args.token_file) as f:
                    toks += [line.strip() for line in f if line.strip()]
            except OSError as e:
                log('token file: %s' % e)
        return toks

    def record(self, rec):
        with self.lock:
            self.records.append(rec)
            if self.logf:
                t = datetime.datetime.fromtimestamp(rec['time'], datetime.timezone.utc)
                line = '%s %s %s auth=%s cert=%s user=%s code=%d\n' % (
                    t.strftime('%Y-%m-%dT%H:%M:%S.%fZ'), rec['method'], rec['path'],
                    'yes' if rec['auth'] else 'no', rec['cert'] or '-', rec['user'] or '-', rec['code'])
                try:
                    self.logf.write(line)
                except (OSError, ValueError) as e:
                    log('request log: %s' % e)

    def add_conn(self, c):
        with self.lock:
            self.conns.add(c)

    def discard_conn(self, c):
        with self.lock:
            self.conns.discard(c)

    def kill_watches(self, how, group=None):
        with self.store.cond:
            hit = [w for w in self.store.watchers if not w.kill and (group is None or w.rt.group == group)]
            for w in hit:
                w.kill = how
            self.store.cond.notify_all()
        return len(hit)

    def drop_connections(self):
        self.kill_watches('abort')
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                socket.socket.shutdown(c, socket.SHUT_RDWR)
            except OSError:
                pass

    def set_installed(self, group, on):
        group = '' if group == 'core' else group
        if group not in GROUPS:
            raise bad_request('unknown group %r' % group)
        if on:
            self.uninstalled.discard(group)
        else:
            self.uninstalled.add(group)
            self.kill_watches('end', group)
        return {'group': group, 'installed': on}


def make_ssl_ctx(args):
    if not args.tls_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    ctx.set_alpn_protocols(['http/1.1'])
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL     # Go's VerifyClientCertIfGiven, as kube-apiserver
    return ctx


SUBJECT_SHORT = {'commonName': 'CN', 'organizationName': 'O', 'organizationalUnitName': 'OU',
                 'countryName': 'C', 'localityName': 'L', 'stateOrProvinceName': 'ST'}


def peer_subject(sock):
    cert = sock.getpeercert()
    if not cert:
        return None, None
    parts = [(SUBJECT_SHORT.get(k, k), v) for rdn in cert.get('subject', ()) for k, v in rdn]
    cn = next((v for k, v in parts if k == 'CN'), None)
    return ','.join('%s=%s' % kv for kv in parts), cn


def encode_continue(rv, start):
    doc = {'v': 'meta.k8s.io/v1', 'rv': rv, 'start': start + '\x00'}
    return base64.urlsafe_b64encode(dumps(doc)).decode().rstrip('=')


def decode_continue(token):
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + '=' * (-len(token) % 4)))
        if doc.get('v') != 'meta.k8s.io/v1':
            raise ValueError('unknown version %r' % doc.get('v'))
        return int(doc['rv']), str(doc['start'])
    except Exception as e:      # noqa: BLE001
        raise bad_request('continue key is not valid: %s' % e) from None


def parse_rv(s):
    try:
        n = int(s)
        if n < 0:
            raise ValueError
        return n
    except ValueError:
        raise bad_request('invalid resource version: %r' % s) from None


def render(obj, rt, version, typed=True):
    body = {k: v for k, v in obj.items() if k not in ('kind', 'apiVersion')}
    return {'kind': rt.kind, 'apiVersion': api_version(rt.group, version), **body} if typed else body


def group_doc(group):
    vs = [{'groupVersion': '%s/%s' % (group, v), 'version': v} for v in GROUPS[group]]
    return {'name': group, 'versions': vs, 'preferredVersion': vs[0]}


def resource_list(group, version):
    res = []
    for rt in sorted((rt for rt in RESOURCES if rt.group == group), key=lambda rt: rt.plural):
        r = {'name': rt.plural, 'singularName': rt.singular, 'namespaced': rt.namespaced,
             'kind': rt.kind, 'verbs': VERBS}
        if rt.short:
            r['shortNames'] = list(rt.short)
        res.append(r)
    doc = {'kind': 'APIResourceList', 'groupVersion': api_version(group, version), 'resources': res}
    return {'kind': 'APIResourceList', 'apiVersion': 'v1', **doc} if group else doc


# ---- HTTP ------------------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    timeout = IDLE_TIMEOUT

    def setup(self):
        self.app = self.server.app
        self.cert_subject = self.cert_cn = None
        self.broken = False
        ctx = self.app.ssl_ctx
        if ctx:
            try:
                self.request.settimeout(10)
                self.request = ctx.wrap_socket(self.request, server_side=True)
                self.cert_subject, self.cert_cn = peer_subject(self.request)
            except (OSError, ValueError) as e:
                self.broken = True
                log('TLS handshake with %s failed: %s' % (self.client_address[0], e))
                return
        super().setup()
        self.app.add_conn(self.connection)

    def handle(self):
        if self.broken:
            return
        try:
            super().handle()
        except (OSError, ValueError):
            self.close_connection = True    # the client went away, or we dropped it

    def finish(self):
        if self.broken:
            return
        self.app.discard_conn(self.connection)
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def log_request(self, code='-', size='-'):
        pass

    def log_message(self, fmt, *args):
        log('%s: %s' % (self.client_address[0], fmt % args))

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # -- plumbing --
    def dispatch(self):
        self.sent, self.user = False, None
        url = urlsplit(self.path)
        self.q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.control_req = url.path.startswith('/_test/')
        try:
            self.drain_body()
            if self.control_req:
                return self.control(url.path[len('/_test/'):].strip('/'))
            if self.app.delay_ms:
                time.sleep(self.app.delay_ms / 1000)
            self.user = self.authenticate()
            if self.user is None:
                raise ApiError(401, 'Unauthorized')
            if self.command != 'GET':
                raise ApiError(405, 'the server does not allow this method on the requested resource', details={})
            self.route(url.path.rstrip('/') or '/')
        except ApiError as e:
            if not self.sent:
                self.respond(e.code, e.body)
        except OSError:
            raise
        except Exception:           # noqa: BLE001 - a bug must not take the server down
            log('internal error on %s %s:\n%s' % (self.command, self.path, traceback.format_exc()))
            if not self.sent:
                self.respond(500, status(500, 'internal error', details={}))
            self.close_connection = True

    def drain_body(self):
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            self.close_connection = True
            return
        try:
            n = int(self.headers.get('Content-Length') or 0)
        except ValueError:
            n = MAX_BODY + 1
        if n > MAX_BODY:
            self.close_connection = True
        elif n > 0:
            self.rfile.read(n)

    def start(self, code, headers):
        if not self.control_req:
            self.app.record({'time': round(time.time(), 3), 'method': self.command, 'path': self.path,
                             'auth': 'Authorization' in self.headers, 'cert': self.cert_subject,
                             'user': self.user, 'code': code})
        self.sent = True
        self.send_response_only(code)
        self.send_header('Audit-Id', str(uuid.uuid4()))
        self.send_header('Cache-Control', 'no-cache, private')
        self.send_header('Date', self.date_time_string())
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.end_headers()

    def respond(self, code, body, ctype='application/json'):
        data = body if isinstance(body, bytes) else dumps(body)
        self.start(code, {'Content-Type': ctype, 'Content-Length': len(data)})
        self.wfile.write(data)

    def qint(self, name, default):
        v = self.q.get(name, '')
        if v == '':
            return default
        try:
            return int(v)
        except ValueError:
            raise bad_request('invalid %s: %r' % (name, v)) from None

    def authenticate(self):
        if self.cert_cn:
            return self.cert_cn
        if not self.app.auth_required:
            return 'system:anonymous'
        hdr = self.headers.get('Authorization', '')
        if hdr[:7].lower() == 'bearer ':
            tok = hdr[7:].strip().encode()
            if any(hmac.compare_digest(tok, t.encode()) for t in self.app.tokens()):
                return 'system:serviceaccount:default:default'
        return None

    def authorize(self, rt, verb, ns, name):
        if rt_name(rt) not in self.app.forbidden:
            return
        what = rt_name(rt) + (' "%s"' % name if name else '')
        scope = 'in the namespace "%s"' % ns if ns else 'at the cluster scope'
        msg = '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s' % (
            what, self.user, verb, rt.plural, rt.group, scope)
        details = object_details(rt, name) if name else {**({'group': rt.group} if rt.group else {}), 'kind': rt.plural}
        raise ApiError(403, msg, details=details)

    # -- routing --
    def route(self, path):
        app = self.app
        if path in ('/healthz', '/livez', '/readyz'):
            return self.respond(200, b'ok', 'text/plain; charset=utf-8')
        if path == '/version':
            return self.respond(200, VERSION)
        if path == '/api':
            addr = '%s:%d' % (self.server.server_name, self.server.server_port)
            return self.respond(200, {'kind': 'APIVersions', 'versions': ['v1'], 'serverAddressByClientCIDRs':
                                      [{'clientCIDR': '0.0.0.0/0', 'serverAddress': addr}]})
        if path == '/apis':
            groups = [group_doc(g) for g in GROUPS if g and g not in app.uninstalled]
            return self.respond(200, {'kind': 'APIGroupList', 'apiVersion': 'v1', 'groups': groups})
        segs = path.split('/')[1:]
        if segs[0] == 'api' and len(segs) >= 2:
            group, version, rest = '', segs[1], segs[2:]
        elif segs[0] == 'apis' and len(segs) >= 2 and segs[1]:
            group = segs[1]
            if group not in GROUPS or group in app.uninstalled:
                raise not_found()
            if len(segs) == 2:
                return self.respond(200, {'kind': 'APIGroup', 'apiVersion': 'v1', **group_doc(group)})
            version, rest = segs[2], segs[3:]
        else:
            raise not_found()
        if version not in GROUPS.get(group, ()) or group in app.uninstalled:
            raise not_found()
        if not rest:
            return self.respond(200, resource_list(group, version))
        self.resource(group, version, rest)

    def resource(self, group, version, rest):
        watch = rest[0] == 'watch'          # the deprecated /watch/ path prefix
        if watch:
            rest = rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == 'namespaces':
            ns, rest = rest[1], rest[2:]
        rt = BY_PLURAL.get((group, rest[0])) if 1 <= len(rest) <= 2 else None
        if rt is None or (ns is not None and not rt.namespaced):
            raise not_found()
        name = rest[1] if len(rest) == 2 else None
        if name is not None and rt.namespaced and ns is None:
            raise not_found()
        watch = watch or self.q.get('watch', '').lower() in TRUE
        self.authorize(rt, 'watch' if watch else 'get' if name else 'list', ns, None if watch else name)
        if watch:
            return self.serve_watch(rt, version, ns, name)
        if name is not None:
            return self.serve_get(rt, version, ns, name)
        return self.serve_list(rt, version, ns)

    def serve_get(self, rt, version, ns, name):
        store = self.app.store
        with store.cond:
            obj = store.objects.get(Key(rt.group, rt.kind, ns or '', name))
        if obj is None:
            raise ApiError(404, '%s "%s" not found' % (rt_name(rt), name), details=object_details(rt, name))
        self.respond(200, render(obj, rt, version))

    # -- list --
    def list_snapshot(self):
        """(rv, state) for a list without continue; store.cond held."""
        store = self.app.store
        rvs, match = self.q.get('resourceVersion', ''), self.q.get('resourceVersionMatch', '')
        if rvs in ('', '0'):
            return store.rv, store.objects
        n = parse_rv(rvs)
        if not store.cond.wait_for(lambda: store.rv >= n, timeout=3):
            raise ApiError(504, 'Too large resource version: %d, current: %d' % (n, store.rv), details={
                'causes': [{'reason': 'ResourceVersionTooLarge', 'message': 'Too large resource version'}],
                'retryAfterSeconds': 1})
        if match != 'Exact':
            return store.rv, store.objects
        if n < store.compacted:
            raise ApiError(410, 'The resourceVersion for the provided list is too old.')
        return n, store.state_at(n)

    def list_state(self):
        """(rv, state, start key) the list is served from; store.cond held."""
        store, token = self.app.store, self.q.get('continue', '')
        if not token:
            return self.list_snapshot() + ('',)
        rv, start = decode_continue(token)
        if rv == -1:                # the "inconsistent" token handed out with a 410
            return store.rv, store.objects, start
        if rv < store.compacted:
            raise ApiError(410, 'The provided continue parameter is too old to display a consistent list '
                           'result. You can start a new list without the continue parameter, or use the '
                           'continue token in this response to retrieve the remainder of the results. '
                           'Continuing with the provided token results in an inconsistent list - objects '
                           'that were created, modified, or deleted between the time the first chunk was '
                           'returned and now may show up in the list.',
                           metadata={'continue': encode_continue(-1, start.rstrip('\x00'))})
        return rv, store.state_at(rv), start

    def serve_list(self, rt, version, ns):
        sel, limit = Selector(rt, self.q), max(0, self.qint('limit', 0))
        with self.app.store.cond:
            rv, state, start = self.list_state()
            items = sorted((skey(k), o) for k, o in state.items()
                           if k.group == rt.group and k.kind == rt.kind and (ns is None or k.ns == ns)
                           and skey(k) >= start)
        out, last = [], -1
        for i, (sk, obj) in enumerate(items):
            if limit and len(out) >= limit:
                break
            last = i
            if sel(obj):
                out.append(obj)
        meta = {'resourceVersion': str(rv)}
        if limit and len(out) >= limit and last < len(items) - 1:
            meta['continue'] = encode_continue(rv, items[last][0])
            if sel.empty:
                meta['remainingItemCount'] = len(items) - last - 1
        typed = rt.group not in BUILTIN
        self.respond(200, {'kind': rt.kind + 'List', 'apiVersion': api_version(rt.group, version),
                           'metadata': meta, 'items': [render(o, rt, version, typed) for o in out]})

    # -- watch --
    def serve_watch(self, rt, version, ns, name):
        store, args = self.app.store, self.app.args
        sel = Selector(rt, self.q, name)
        timeout = self.qint('timeoutSeconds', 0) or random.uniform(1800, 3600)
        bookmarks = self.q.get('allowWatchBookmarks', '').lower() in TRUE
        rvs = self.q.get('resourceVersion', '')
        n = None if rvs in ('', '0') else parse_rv(rvs)
        w = Watcher(rt, version, ns, sel, -1 if n is None else n)
        expired = None
        with store.cond:
            if n is None:           # synthetic ADDED for the current state, then live
                initial = [Event(0, 'ADDED', k, o, None) for k, o in sorted(store.objects.items(), key=lambda kv: skey(kv[0]))]
            elif n < store.compacted:
                expired = 'too old resource version: %d (%d)' % (n, store.compacted)
            else:
                initial = store.since(n)
            if not expired:
                store.watchers.add(w)
            cur = store.rv
        try:
            self.start_stream()
            if expired:
                self.send_event('ERROR', status(410, expired, 'Expired'))
                return self.end_stream()
            self.stream(w, initial, cur, bookmarks, timeout, args.bookmark_interval)
        finally:
            with store.cond:
                store.watchers.discard(w)

    def stream(self, w, batch, cur, bookmarks, timeout, interval):
        deadline = time.monotonic() + timeout
        next_bm = time.monotonic() + interval
        while True:
            for ev in batch:
                out = w.convert(ev)
                if out:
                    self.send_event(out[0], render(out[1], w.rt, w.version))
            now = time.monotonic()
            if bookmarks and (now >= next_bm or now >= deadline):
                self.send_bookmark(w, max(cur, w.after))
                next_bm = now + interval
            if now >= deadline:
                return self.end_stream()
            batch, kill, cur = self.wait_events(w, min(deadline, next_bm) if bookmarks else deadline)
            if kill == 'abort':
                return self.abort()
            if kill == 'gone':
                self.close_connection = True
                return None
            if kill:
                return self.end_stream()

    def wait_events(self, w, wake):
        """(events, kill, store rv) once there are events, a kill or it is time to wake."""
        store = self.app.store
        while True:
            with store.cond:
                left = wake - time.monotonic()
                if not (w.queue or w.kill) and left > 0:
                    store.cond.wait(min(left, PEER_POLL))
                if w.queue or w.kill or time.monotonic() >= wake:
                    batch, kill, cur = list(w.queue), w.kill, store.rv
                    w.queue.clear()
                    return batch, kill, cur
            if self.peer_gone():            # never under the lock: it is a system call
                return [], 'gone', None

    def start_stream(self):
        self.chunked = self.request_version != 'HTTP/1.0'
        headers = {'Content-Type': 'application/json'}
        if self.chunked:
            headers['Transfer-Encoding'] = 'chunked'
        else:
            headers['Connection'] = 'close'
        self.start(200, headers)

    def send_event(self, type_, obj):
        data = dumps({'type': type_, 'object': obj}) + b'\n'
        self.wfile.write(b'%x\r\n%s\r\n' % (len(data), data) if self.chunked else data)

    def send_bookmark(self, w, rv):
        self.send_event('BOOKMARK', {'kind': w.rt.kind, 'apiVersion': api_version(w.rt.group, w.version),
                                     'metadata': {'resourceVersion': str(rv)}})

    def end_stream(self):
        if self.chunked:
            self.wfile.write(b'0\r\n\r\n')
        else:
            self.close_connection = True

    def peer_gone(self):
        """Has the client closed its end? (Peeks at the raw TCP bytes, so TLS state is kept.)"""
        try:
            poller = select.poll()
            poller.register(self.connection.fileno(), select.POLLIN)
            events = poller.poll(0)
            if not events:
                return False
            if events[0][1] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return True
            return socket.socket.recv(self.connection, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b''
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True

    def abort(self):
        """Drop the connection mid-stream: no final chunk, a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass

    # -- control API --
    def control(self, op):
        app, q = self.app, self.q
        after = None
        if op == 'compact':
            body = {'compactedResourceVersion': str(app.store.compact())}
        elif op == 'disconnect':
            body = {'disconnected': app.kill_watches('abort')}
        elif op == 'delay':
            app.delay_ms = max(0, self.qint('ms', 0))
            body = {'delayMs': app.delay_ms}
        elif op == 'down':
            try:
                seconds = float(q['seconds']) if q.get('seconds') else None
            except ValueError:
                raise bad_request('invalid seconds: %r' % q['seconds']) from None
            body = {'down': True, 'seconds': seconds}
            after = lambda: app.front.down(seconds)     # noqa: E731 - after the answer is sent
        elif op in ('uninstall', 'install'):
            body = app.set_installed(q.get('group', ''), op == 'install')
        elif op in ('forbid', 'allow'):
            res = q.get('resource', '')
            if op == 'forbid' or res:
                if not any(rt_name(rt) == res for rt in RESOURCES):
                    raise bad_request('unknown resource %r (use plural.group)' % res)
            if op == 'forbid':
                app.forbidden.add(res)
            elif res:
                app.forbidden.discard(res)
            else:
                app.forbidden.clear()
            body = {'forbidden': sorted(app.forbidden)}
        elif op == 'requests':
            with app.lock:
                body = list(app.records)
        elif op == 'requests/clear':
            with app.lock:
                body = {'cleared': len(app.records)}
                app.records.clear()
        elif op == 'watches':
            with app.store.cond:
                body = dict(collections.Counter(rt_name(w.rt) for w in app.store.watchers if not w.kill))
        elif op == 'rescan':
            app.scanner.scan(force=True)
            body = {'resourceVersion': str(app.store.rv)}
        elif op == 'rv':
            body = {'resourceVersion': str(app.store.rv), 'compactedResourceVersion': str(app.store.compacted)}
        else:
            raise ApiError(404, 'unknown control operation %r' % op)
        self.respond(200, body)
        if after:
            threading.Thread(target=after, daemon=True).start()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, family, app):
        self.address_family, self.app = family, app
        super().__init__(addr, Handler)

    def server_bind(self):          # no reverse DNS lookup (HTTPServer's getfqdn)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def verify_request(self, request, client_address):
        return len(self.app.conns) < MAX_CONNS

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if not isinstance(exc, (OSError, ValueError)):
            log('error serving %s: %r' % (client_address[0], exc))


class Front:
    """The listening socket, which /_test/down and SIGUSR1/SIGUSR2 close and reopen."""

    def __init__(self, app, host, port):
        self.app, self.host, self.port = app, host, port
        self.family = socket.AF_INET6 if ':' in host else socket.AF_INET
        self.httpd, self.gen = None, 0
        self.lock = threading.Lock()

    def up(self, gen=None):
        with self.lock:
            if gen is not None and gen != self.gen:
                return              # a later down/up superseded this timer
            self.gen += 1
            if self.httpd:
                return
            for attempt in range(50):
                try:
                    srv = Server((self.host, self.port), self.family, self.app)
                    break
                except OSError as e:
                    if self.port == 0 or attempt == 49:
                        raise
                    log('listen on port %d: %s; retrying' % (self.port, e))
                    time.sleep(0.1)
            self.port, self.httpd = srv.server_address[1], srv
            threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        log('up: listening on port %d' % self.port)

    def down(self, seconds=None, final=False):
        with self.lock:
            self.gen += 1
            gen, srv, self.httpd = self.gen, self.httpd, None
            if srv:
                srv.shutdown()
                srv.server_close()
            self.app.drop_connections()
        if not final:
            log('down%s' % (' for %g s' % seconds if seconds else ' until SIGUSR2'))
        if seconds:
            threading.Thread(target=self._later, args=(seconds, gen), daemon=True).start()

    def _later(self, seconds, gen):
        time.sleep(seconds)
        self.safe_up(gen)

    def safe_up(self, gen=None):
        try:
            self.up(gen)
        except OSError as e:
            log('cannot listen again on port %d: %s' % (self.port, e))


def scan_loop(scanner, stop):
    while not stop.wait(SCAN_INTERVAL):
        try:
            scanner.scan()
        except Exception:           # noqa: BLE001
            log('scan failed:\n%s' % traceback.format_exc())


def write_port_file(path, port):
    tmp = '%s.tmp.%d' % (path, os.getpid())
    with open(tmp, 'w') as f:
        f.write('%d\n' % port)
    os.replace(tmp, path)


def parse_args():
    p = argparse.ArgumentParser(description='Read-only test Kubernetes API server over a YAML directory.')
    p.add_argument('--dir', required=True, help='directory of *.yaml/*.yml/*.json objects')
    p.add_argument('--listen', default='127.0.0.1:0', help='HOST:PORT, port 0 = pick (default %(default)s)')
    p.add_argument('--port-file', help='write the chosen port here (atomically)')
    p.add_argument('--log', help='append one line per API request to this file')
    p.add_argument('--tls-cert', help='serve HTTPS with this certificate (PEM)')
    p.add_argument('--tls-key', help='its private key (PEM; default: in --tls-cert)')
    p.add_argument('--client-ca', help='accept client certificates signed by this CA (user = CN)')
    p.add_argument('--token', help='accept this bearer token')
    p.add_argument('--token-file', help='accept the bearer tokens in this file (re-read per request)')
    p.add_argument('--start-rv', type=int, default=1000, help='initial resourceVersion (default %(default)s)')
    p.add_argument('--bookmark-interval', type=float, default=1.0, help='seconds between bookmarks (default 1)')
    p.add_argument('--uninstalled', action='append', default=[], metavar='GROUP', help='start with GROUP not served')
    p.add_argument('--history', type=int, default=100000, help='events kept for watch replay (default %(default)s)')
    args = p.parse_args()
    if not os.path.isdir(args.dir):
        p.error('--dir %s: not a directory' % args.dir)
    if args.client_ca and not args.tls_cert:
        p.error('--client-ca needs --tls-cert')
    args.uninstalled = ['' if g == 'core' else g for g in args.uninstalled]
    for g in args.uninstalled:
        if g not in GROUPS:
            p.error('--uninstalled %s: unknown group' % g)
    host, _, port = args.listen.rpartition(':')
    if not host or not port.isdigit():
        p.error('--listen HOST:PORT')
    args.host, args.port = host.strip('[]'), int(port)
    args.history = max(1, args.history)
    args.bookmark_interval = max(0.01, args.bookmark_interval)
    return args


def main():
    args = parse_args()
    try:
        app = App(args)
    except (OSError, ssl.SSLError) as e:
        sys.exit('fake-apiserver: %s' % e)
    app.scanner.scan(force=True)
    front = app.front = Front(app, args.host, args.port)
    try:
        front.up()
    except OSError as e:
        sys.exit('fake-apiserver: listen on %s: %s' % (args.listen, e))
    shown = '[%s]' % args.host if ':' in args.host else args.host
    print('listening on %s:%d' % (shown, front.port), flush=True)
    if args.port_file:
        write_port_file(args.port_file, front.port)
    stop = threading.Event()
    threading.Thread(target=scan_loop, args=(app.scanner, stop), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=front.down, daemon=True).start())
    signal.signal(signal.SIGUSR2, lambda *_: threading.Thread(target=front.safe_up, daemon=True).start())
    while not stop.wait(0.2):
        pass
    closer = threading.Thread(target=front.down, kwargs={'final': True}, daemon=True)
    closer.start()
    closer.join(0.7)                # never more than 1 s in all
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    os._exit(0)


if __name__ == '__main__':
    main()
