#!/usr/bin/python3
"""cpd.py - a control plane for the tests (DESIGN §3), real HTTP on 127.0.0.1.

    cpd.py serve --root DIR --port-file FILE --log FILE [--token-file FILE]
                 [--prefix /api] [--no-validators]
    cpd.py gen --project P --count N [--name-prefix m] [--uri-base URL]
               [--size N] [--seed S] [--lifecycle active] > listing.json
    cpd.py publish --from REGDIR [--policy FILE] --root DIR

publish turns a registry folder of the file layout (every *.json below
REGDIR: one registration or an array) into DIR/projects/P/blobs.json, one
listing per project (records grouped by their "project" field, in file
order), and copies the policy to DIR/policy.json; files are replaced by
rename, and only when their bytes change (so their ETag stays).

serve answers from DIR, read at every request (so a test changes the
control plane by writing files):

    GET {prefix}/v1/policy                       DIR/policy.json
    GET {prefix}/v1/projects                     DIR/projects.json, else the
                                                 folders of DIR/projects/
    GET {prefix}/v1/projects/P/blobs             DIR/projects/P/blobs.json
    GET {prefix}/v1/projects/P/blobs/NAME@DIGEST the record of that listing
                                                 (404 when none)

with a strong ETag (sha256 of the bytes) and Last-Modified (the file's
mtime), 304 for If-None-Match / If-Modified-Since, a bearer token check
(401) when --token-file is given (the file is read at every request), and
faults from DIR/faults (read at every request), one per line:

    REGEX MODE [ARG]   for request paths matching REGEX (re.search):
      500              answer 500
      reset            close the connection without an answer
      truncate         promise the whole body, send half, close
      badjson          answer 200 with a body that is not JSON
      object           answer 200 with {} instead of the document
      redirect URL     answer 302 to URL + the request path
      delay SECONDS    wait, then answer normally
      status CODE      answer CODE with an empty body

Every request is logged to --log as one line:
    METHOD PATH STATUS auth=yes|no inm=yes|no ims=yes|no t=EPOCH
(the token itself is never logged). Stop it by PID (SIGTERM).
"""
import argparse
import email.utils
import hashlib
import http.server
import json
import os
import random
import re
import socket
import sys
import threading
import time
import urllib.parse


def read(path):
    try:
        with open(path, 'rb') as f:
            return f.read(), os.stat(path).st_mtime
    except OSError:
        return None, 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def note(self, status):
        cfg = self.server.cfg
        line = '%s %s %d auth=%s inm=%s ims=%s t=%.3f\n' % (
            self.command, self.path, status,
            'yes' if self.headers.get('Authorization') else 'no',
            'yes' if self.headers.get('If-None-Match') else 'no',
            'yes' if self.headers.get('If-Modified-Since') else 'no',
            time.time())
        with cfg.lock:
            with open(cfg.log, 'a') as f:
                f.write(line)

    def send(self, status, body=b'', headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if status != 304:
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if status != 304 and self.command != 'HEAD':
            self.wfile.write(body)
        self.note(status)

    def fault(self, path):
        cfg = self.server.cfg
        text, _ = read(os.path.join(cfg.root, 'faults'))
        if not text:
            return None
        for line in text.decode().splitlines():
            parts = line.split()
            if len(parts) >= 2 and re.search(parts[0], path):
                return parts[1:]
        return None

    def document(self, path):
        """The bytes and mtime for path, or (None, 0)."""
        root = self.server.cfg.root
        if path == 'v1/policy':
            return read(os.path.join(root, 'policy.json'))
        if path == 'v1/projects':
            body, mtime = read(os.path.join(root, 'projects.json'))
            if body is not None:
                return body, mtime
            d = os.path.join(root, 'projects')
            try:
                names = sorted(n for n in os.listdir(d)
                               if os.path.isdir(os.path.join(d, n)))
            except OSError:
                names = []
            return json.dumps(names).encode(), os.stat(d).st_mtime if os.path.isdir(d) else 0
        m = re.fullmatch(r'v1/projects/([^/]+)/blobs', path)
        if m:
            return read(os.path.join(root, 'projects', m.group(1), 'blobs.json'))
        m = re.fullmatch(r'v1/projects/([^/]+)/blobs/([^/]+)', path)
        if m:
            body, mtime = read(os.path.join(root, 'projects', m.group(1), 'blobs.json'))
            if body is None:
                return None, 0
            ref = m.group(2)
            try:
                recs = json.loads(body)
            except ValueError:
                return None, 0
            for r in recs if isinstance(recs, list) else []:
                if isinstance(r, dict) and '%s@%s' % (r.get('name'), r.get('digest')) == ref:
                    return json.dumps(r).encode(), mtime
            return None, 0
        return None, 0

    def do_GET(self):
        cfg = self.server.cfg
        raw = urllib.parse.urlsplit(self.path).path
        path = urllib.parse.unquote(raw)
        if not path.startswith(cfg.prefix + '/'):
            return self.send(404)
        path = path[len(cfg.prefix) + 1:]
        if cfg.token_file:
            tok, _ = read(cfg.token_file)
            want = 'Bearer ' + (tok or b'').decode().strip()
            if self.headers.get('Authorization') != want:
                return self.send(401, b'{"error":"unauthorized"}')
        f = self.fault(path)
        if f:
            mode = f[0]
            if mode == '500':
                return self.send(500, b'{"error":"internal"}')
            if mode == 'status':
                return self.send(int(f[1]))
            if mode == 'reset':
                self.note(0)
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b'\x01\x00\x00\x00\x00\x00\x00\x00')
                self.connection.close()
                return None
            if mode == 'redirect':
                return self.send(302, b'', {'Location': f[1] + self.path})
            if mode == 'badjson':
                return self.send(200, b'this is not json {')
            if mode == 'object':
                return self.send(200, b'{}')
            if mode == 'delay':
                time.sleep(float(f[1]))
        body, mtime = self.document(path)
        if body is None:
            return self.send(404, b'{"error":"not found"}')
        if f and f[0] == 'truncate':
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.note(200)
            self.close_connection = True
            return None
        headers = {}
        if not cfg.no_validators:
            etag = '"%s"' % hashlib.sha256(body).hexdigest()[:32]
            lm = email.utils.formatdate(int(mtime), usegmt=True)
            headers = {'ETag': etag, 'Last-Modified': lm}
            inm = self.headers.get('If-None-Match')
            ims = self.headers.get('If-Modified-Since')
            if inm is not None:
                if inm == etag:
                    return self.send(304, b'', headers)
            elif ims is not None:
                try:
                    since = email.utils.parsedate_to_datetime(ims).timestamp()
                    if int(mtime) <= since:
                        return self.send(304, b'', headers)
                except (TypeError, ValueError):
                    pass
        return self.send(200, body, headers)

    do_HEAD = do_GET


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(a):
    class Cfg:
        pass
    cfg = Cfg()
    cfg.root = a.root
    cfg.log = a.log
    cfg.token_file = a.token_file
    cfg.prefix = a.prefix.rstrip('/')
    cfg.no_validators = a.no_validators
    cfg.lock = threading.Lock()
    srv = Server(('127.0.0.1', a.port), Handler)
    srv.cfg = cfg
    tmp = a.port_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write('%d\n' % srv.server_address[1])
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


def gen(a):
    rnd = random.Random(a.seed)
    recs = []
    for i in range(a.count):
        hexd = '%064x' % rnd.getrandbits(256)
        name = '%s%06d.bin' % (a.name_prefix, i)
        recs.append({
            'project': a.project,
            'name': name,
            'artifact_kind': 'blob',
            'digest': 'sha256:' + hexd,
            'source': {'source_type': 'https',
                       'uri': '%s/%s' % (a.uri_base, name),
                       'source_ref': None, 'size_bytes': a.size,
                       'content_encoding': 'identity'},
            'lifecycle_state': a.lifecycle,
            'trust_state': 'verified',
            'channels': [],
            'allowlist_decision': {'decision': 'allow', 'policy': 'default',
                                   'decided_at': '2026-03-09T12:00:00Z'},
            'attestation': None,
            'registered_at': '2026-03-09T12:00:00Z',
        })
    json.dump(recs, sys.stdout, separators=(',', ':'))


def write_if_changed(path, data):
    old, _ = read(path)
    if old == data:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.rename(tmp, path)


def publish(a):
    groups = {}
    for dirpath, dirnames, filenames in sorted(os.walk(a.src)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        for fn in sorted(filenames):
            if not fn.endswith('.json') or fn.startswith('.'):
                continue
            try:
                with open(os.path.join(dirpath, fn), 'rb') as f:
                    doc = json.loads(f.read())
            except (OSError, ValueError):
                continue
            for r in doc if isinstance(doc, list) else [doc]:
                p = r.get('project') if isinstance(r, dict) else None
                if isinstance(p, str) and re.fullmatch(r'[a-z0-9][a-z0-9-]{0,62}', p):
                    groups.setdefault(p, []).append(r)
    pdir = os.path.join(a.root, 'projects')
    os.makedirs(pdir, exist_ok=True)
    for p, recs in groups.items():
        write_if_changed(os.path.join(pdir, p, 'blobs.json'),
                         json.dumps(recs, indent=1).encode())
    for p in os.listdir(pdir):
        if p not in groups:
            try:
                os.unlink(os.path.join(pdir, p, 'blobs.json'))
            except OSError:
                pass
            try:
                os.rmdir(os.path.join(pdir, p))
            except OSError:
                pass
    if a.policy:
        body, _ = read(a.policy)
        if body is not None:
            write_if_changed(os.path.join(a.root, 'policy.json'), body)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('serve')
    s.add_argument('--root', required=True)
    s.add_argument('--port', type=int, default=0)
    s.add_argument('--port-file', required=True)
    s.add_argument('--log', required=True)
    s.add_argument('--token-file')
    s.add_argument('--prefix', default='')
    s.add_argument('--no-validators', action='store_true')
    g = sub.add_parser('gen')
    g.add_argument('--project', required=True)
    g.add_argument('--count', type=int, required=True)
    g.add_argument('--name-prefix', default='m')
    g.add_argument('--uri-base', default='https://models.example.internal')
    g.add_argument('--size', type=int, default=4096)
    g.add_argument('--seed', default='0')
    g.add_argument('--lifecycle', default='active')
    b = sub.add_parser('publish')
    b.add_argument('--from', dest='src', required=True)
    b.add_argument('--policy')
    b.add_argument('--root', required=True)
    a = p.parse_args()
    if a.cmd == 'serve':
        serve(a)
    elif a.cmd == 'publish':
        publish(a)
    else:
        gen(a)


if __name__ == '__main__':
    main()
