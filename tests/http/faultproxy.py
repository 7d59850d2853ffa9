#!/usr/bin/env python3
"""A small fault-injecting HTTP/1.1 proxy for the HTTP provider tests.

    faultproxy.py PORT UPSTREAM_BASE [CERT KEY]   (UPSTREAM_BASE: http://127.0.0.1:8081)

With CERT and KEY it serves HTTPS (for the TLS verification tests).

Every request is forwarded to UPSTREAM_BASE unless a fault applies. Faults
are set with POST /__fault and a JSON list of rules, taken in order:
    {"match": "GET",            # method, or "" for any (optional)
     "path": "/zones",          # substring of the path (optional)
     "times": 3,                # how many requests it hits (default 1)
     "status": 500, "body": "...", "headers": {"Retry-After": "2"},
     "hang": 30,                # sleep this long and close without answering
     "raw": "not json"}         # a 200 with this body (malformed JSON)
GET /__fault answers the counters since the last POST: requests
(forwarded + faulted), connections (TCP connections that carried a
request, the control ones left out), faulted, and a log of
[time, method, path, status] per request. Keep-alive is honoured towards
the client; the upstream side opens a connection per request (PowerDNS
closes them anyway).
"""
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
RULES = []
STATS = {"requests": 0, "connections": 0, "faulted": 0, "log": []}
UP = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    counted = False

    def log_message(self, *a):
        pass

    def _reply(self, status, body, headers=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _control(self, body):
        global RULES
        if self.command == "POST":
            with LOCK:
                RULES = json.loads(body or b"[]")
                if isinstance(RULES, dict):
                    RULES = [RULES]
                STATS["log"] = []
                STATS["requests"] = STATS["faulted"] = STATS["connections"] = 0
            self._reply(200, "{}")
        else:
            with LOCK:
                self._reply(200, json.dumps(STATS), {"Content-Type": "application/json"})

    def _rule(self):
        with LOCK:
            for r in RULES:
                if r.get("times", 1) <= 0:
                    continue
                if r.get("match") and r["match"] != self.command:
                    continue
                if r.get("path") and r["path"] not in self.path:
                    continue
                r["times"] = r.get("times", 1) - 1
                return dict(r)
        return None

    def _any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path.startswith("/__fault"):
            return self._control(body)
        if not self.counted:
            self.counted = True
            with LOCK:
                STATS["connections"] += 1
        r = self._rule()
        status = None
        if r:
            with LOCK:
                STATS["faulted"] += 1
            if "hang" in r:
                time.sleep(r["hang"])
                self.close_connection = True
                status = 0
            elif "raw" in r:
                self._reply(200, r["raw"], {"Content-Type": "application/json"})
                status = 200
            else:
                status = r.get("status", 500)
                self._reply(status, r.get("body", json.dumps({"error": "injected %d" % status})),
                            dict({"Content-Type": "application/json"}, **r.get("headers", {})))
        else:
            c = http.client.HTTPConnection(UP.hostname, UP.port, timeout=60)
            hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            c.request(self.command, UP.path + self.path, body=body or None, headers=hdrs)
            resp = c.getresponse()
            data = resp.read()
            status = resp.status
            keep = {k: v for k, v in resp.getheaders()
                    if k.lower() not in ("connection", "content-length", "transfer-encoding", "server")}
            c.close()
            self._reply(status, data, keep)
        with LOCK:
            STATS["requests"] += 1
            STATS["log"].append([round(time.time(), 3), self.command, self.path, status])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any


def main():
    global UP
    port = int(sys.argv[1])
    UP = urllib.parse.urlparse(sys.argv[2])
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    if len(sys.argv) > 4:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
