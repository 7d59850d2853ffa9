# plans/shop: the example app. One instance per colour and port (app_pool):
#   /health          ok
#   /                VERSION COLOUR NAME
#   /catalog/ID      a catalog page: read-through level 2 (Redis through the
#                    twemproxy on this host; key catalog:VERSION:ID, the class
#                    "catalog" namespaced by release, TTL 10 min +-10 %),
#                    served with Cache-Control: max-age=30 so HAProxy's level 1
#                    may keep it; header X-L2: hit or miss
# app_pool fills in placeholders in braces, so this file has none (no dict
# literals or f-strings).
import os, random, socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
HOST, PORT = args["--listen"].rsplit(":", 1)
VERSION, COLOUR, NAME = args["--version"], args["--colour"], args["--name"]
CACHE = args["--cache"].rsplit(":", 1)
TTL = 600
local = threading.local()


def cache_conn():
    c = getattr(local, "c", None)
    if c is None:
        s = socket.create_connection((CACHE[0], int(CACHE[1])), timeout=2)
        c = local.c = (s, s.makefile("rb"))
    return c


def resp(*words):
    out = b"*%d\r\n" % len(words)
    for w in words:
        w = w if isinstance(w, bytes) else str(w).encode()
        out += b"$%d\r\n%s\r\n" % (len(w), w)
    return out


def cache_get(key):
    s, f = cache_conn()
    s.sendall(resp("GET", key))
    line = f.readline()
    if line.startswith(b"$-1") or not line.startswith(b"$"):
        return None
    data = f.read(int(line[1:]) + 2)
    return data[:-2]


def cache_set(key, value):
    s, f = cache_conn()
    ttl = int(TTL * random.uniform(0.9, 1.1))   # jitter: keys set together expire apart
    s.sendall(resp("SET", key, value, "EX", ttl))
    f.readline()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536   # one write per response (no Nagle / delayed-ACK stall)

    def log_message(self, *a):
        pass

    def answer(self, code, body, headers=()):
        body = body if isinstance(body, bytes) else body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/health":
            return self.answer(200, "ok\n")
        if path.startswith("/catalog/"):
            item = path[len("/catalog/"):]
            key = "catalog:%s:%s" % (VERSION, item)
            try:
                page = cache_get(key)
                state = "hit"
                if page is None:
                    state = "miss"
                    page = ("%s catalog %s\n" % (VERSION, item)).encode()
                    cache_set(key, page)
            except OSError as e:
                local.c = None
                return self.answer(503, "cache: %s\n" % e)
            return self.answer(200, page, (("Cache-Control", "max-age=30"), ("X-L2", state)))
        return self.answer(200, "%s %s %s\n" % (VERSION, COLOUR, NAME))


srv = ThreadingHTTPServer((HOST, int(PORT)), Handler)
srv.daemon_threads = True
if os.fork():
    os._exit(0)
os.setsid()
with open(args["--pidfile"], "w") as p:
    p.write("%d\n" % os.getpid())
srv.serve_forever()
