"""bench/cache client: a read-through cache client that knows only the ring
iac publishes (docs/cache.md): md5 of the key, first continuum point >= it.

  client.py fill RING K               SET key:0 .. key:K-1 on their owners
  client.py run RING K SECONDS OUT    Zipf(s=1.0) reads over K keys: GET from
                                      the owner, SET on a miss (read-through);
                                      re-reads RING when it changes; writes one
                                      JSON line per 0.5 s to OUT: t, hits,
                                      misses, ring version
"""
import bisect, hashlib, json, os, random, socket, struct, sys, time


class Ring:
    def __init__(self, path):
        self.path = path
        self.mtime = 0
        self.version = 0
        self.conns = {}
        self.load()

    def load(self):
        doc = json.load(open(self.path))
        self.values = [p[0] for p in doc["continuum"]]
        self.owner = [p[1] for p in doc["continuum"]]
        self.nodes = [(n["address"], n["port"]) for n in doc["nodes"]]
        self.mtime = os.stat(self.path).st_mtime_ns
        self.version += 1

    def maybe_reload(self):
        try:
            if os.stat(self.path).st_mtime_ns != self.mtime:
                self.load()
        except (OSError, ValueError):
            pass

    def conn(self, key):
        h = struct.unpack("<I", hashlib.md5(key).digest()[:4])[0]
        i = bisect.bisect_left(self.values, h)
        node = self.nodes[self.owner[i if i < len(self.values) else 0]]
        c = self.conns.get(node)
        if c is None:
            s = socket.create_connection(node)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = (s, s.makefile("rb"))
            self.conns[node] = c
        return c


def cmd(c, *args):
    s, f = c
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    line = f.readline()
    if line[:1] == b"$":
        n = int(line[1:])
        if n < 0:
            return None
        return f.read(n + 2)[:-2]
    return line


def main():
    op, ring = sys.argv[1], Ring(sys.argv[2])
    k = int(sys.argv[3])
    if op == "fill":
        for i in range(k):
            key = b"key:%d" % i
            cmd(ring.conn(key), b"SET", key, b"v" * 64)
        return
    seconds, out = float(sys.argv[4]), open(sys.argv[5], "w")
    cum, total = [], 0.0
    for i in range(1, k + 1):
        total += 1.0 / i
        cum.append(total)
    rnd = random.Random(7)
    hits = misses = 0
    start = last = time.time()
    while True:
        now = time.time()
        if now - last >= 0.5:
            out.write(json.dumps({"t": round(now - start, 2), "hits": hits, "misses": misses,
                                  "ring": ring.version}) + "\n")
            out.flush()
            hits = misses = 0
            last = now
            ring.maybe_reload()
            if now - start >= seconds:
                break
        i = bisect.bisect_left(cum, rnd.random() * total)
        key = b"key:%d" % i
        c = ring.conn(key)
        if cmd(c, b"GET", key) is None:
            misses += 1
            cmd(c, b"SET", key, b"v" * 64)
        else:
            hits += 1


main()
