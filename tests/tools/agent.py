#!/usr/bin/env python3
"""agent.py - a stand-in for a platform's node agent, for the tests of
tools/credential-helper-example.sh (issue 8 item 5). It answers
POST /v1/credentials with a credential document for the request artifactfs
gave the helper, or null.

    agent.py GRANTS_JSON PORT_FILE LOG_FILE

GRANTS_JSON: [{"source_type": ..., "scope": ..., "bearer_token": ...,
"ttl": seconds}, ...]. The grant whose scope is the longest prefix of the
request's uri (and whose type is the request's) is answered, with
expires_at = now + ttl; no grant: null. A request whose intent is not
"pull" gets 403. Listens on 127.0.0.1 on a free port, written to PORT_FILE.
LOG_FILE gets one line per request: source_type, uri, the scope answered
(never the token).
"""
import datetime
import http.server
import json
import os
import sys


def main():
    grants = json.load(open(sys.argv[1]))
    port_file, log_file = sys.argv[2], sys.argv[3]

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            try:
                req = json.loads(self.rfile.read(n))
            except ValueError:
                self.send_error(400)
                return
            if req.get("intent") != "pull":
                self.send_error(403)
                return
            uri, best = req.get("uri", ""), None
            for g in grants:
                if g["source_type"] == req.get("source_type") and \
                        uri.startswith(g["scope"]) and \
                        (best is None or len(g["scope"]) > len(best["scope"])):
                    best = g
            if best is None:
                body = "null"
            else:
                exp = datetime.datetime.now(datetime.timezone.utc) + \
                    datetime.timedelta(seconds=best.get("ttl", 600))
                body = json.dumps({
                    "source_type": best["source_type"],
                    "scope": best["scope"],
                    "expires_at": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "bearer_token": best["bearer_token"]})
            with open(log_file, "a") as f:
                f.write("%s %s %s\n" % (req.get("source_type"), uri,
                                        best["scope"] if best else "null"))
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
