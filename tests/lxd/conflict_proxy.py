#!/usr/bin/env python3
"""A TLS proxy in front of a real LXD that makes a concurrent change happen
between a client's GET and its PUT.

    conflict_proxy.py PORT CERT KEY LXD_URL CLIENT_CERT CLIENT_KEY ARM_FILE

Every request is forwarded to LXD as it came (with the proxy's own client
certificate, which LXD trusts). While ARM_FILE exists, the next PUT or PATCH
with an If-Match header is preceded by a change of the same object made
directly on LXD (the command in ARM_FILE, run with sh: `lxc profile set ...`),
so the client's ETag is stale when its request arrives: LXD itself answers
412. ARM_FILE is removed when it has fired. Prints "listening" when ready.
"""
import http.client
import http.server
import os
import ssl
import subprocess
import sys
import urllib.parse

port, cert, key, lxd_url, ccert, ckey, arm = sys.argv[1:8]
up = urllib.parse.urlsplit(lxd_url)
up_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
up_ctx.check_hostname = False
up_ctx.verify_mode = ssl.CERT_NONE   # LXD on 127.0.0.1, started by the test
up_ctx.load_cert_chain(ccert, ckey)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("proxy: " + (fmt % args) + "\n")

    def forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if self.command in ("PUT", "PATCH") and self.headers.get("If-Match") and os.path.exists(arm):
            cmd = open(arm).read()
            os.unlink(arm)
            subprocess.run(["sh", "-c", cmd], check=False)
            sys.stderr.write("proxy: changed behind the client's back before %s %s\n" % (self.command, self.path))
        conn = http.client.HTTPSConnection(up.hostname, up.port, context=up_ctx, timeout=120)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")}
        conn.request(self.command, self.path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = forward


srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("listening", flush=True)
srv.serve_forever()
