#!/bin/bash
# Hit/miss in `iac loadtest`'s observe report: a small app answers each
# request with one GET on a real Redis (/r/KEY) or a real memcached (/m/KEY);
# half the keys exist. The scenario names the two nodes in
# observe { cache = { ... } }; the hits, misses and evictions the report
# gives for the test window must be exactly what the servers' own counters
# (INFO stats, stats) grew by, and hits + misses exactly the requests made.
. "$(dirname "$0")/lib.sh"
t_need redis-server redis-cli memcached

RP=$(free_port); redis_start "$RP"
MP=$(free_port); memcached_start 127.0.0.1 "$MP"
seq 1 100 | sed 's/^/k/' > "$W/keys"
resp_set_keys "$RP" "$W/keys" || fail "seeding redis"
mc_set_keys 127.0.0.1 "$MP" "$W/keys" || fail "seeding memcached"

AP=$(free_port)
"$T_PY" - "$AP" "$RP" "$MP" > "$W/app.log" 2>&1 <<'PY' &
import socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
ap, rp, mp = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
local = threading.local()
def conn(port):
    c = getattr(local, "c%d" % port, None)
    if c is None:
        s = socket.create_connection(("127.0.0.1", port))
        c = (s, s.makefile("rb"))
        setattr(local, "c%d" % port, c)
    return c
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        kind, key = self.path.split("/")[1:3]
        if kind == "r":
            s, f = conn(rp)
            s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key.encode()))
            line = f.readline()
            if line.startswith(b"$") and line != b"$-1\r\n":
                f.read(int(line[1:]) + 2)
                hit = True
            else:
                hit = False
        else:
            s, f = conn(mp)
            s.sendall(b"get %s\r\n" % key.encode())
            hit = False
            while True:
                line = f.readline()
                if line == b"END\r\n":
                    break
                if line.startswith(b"VALUE"):
                    f.read(int(line.split()[3]) + 2)
                    hit = True
        body = b"hit" if hit else b"miss"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer(("127.0.0.1", ap), H).serve_forever()
PY
PIDS+=($!)
t_wait_port "$AP" || fail "the app did not start"

counters() {   # the servers' own counters: redis hits misses evictions, memcached the same
    redis-cli -p "$RP" info stats | tr -d '\r' |
        awk -F: '/^keyspace_hits:/{h=$2} /^keyspace_misses:/{m=$2} /^evicted_keys:/{e=$2} END{printf "%s %s %s ", h, m, e}'
    exec 3<>/dev/tcp/127.0.0.1/"$MP"
    printf 'stats\r\nquit\r\n' >&3
    tr -d '\r' <&3 | awk '/^STAT get_hits /{h=$3} /^STAT get_misses /{m=$3} /^STAT evictions /{e=$3} END{print h, m, e}'
    exec 3<&-
}
# some traffic before the run: the report counts only the run's window
redis-cli -p "$RP" get k1 >/dev/null; redis-cli -p "$RP" get nope >/dev/null
read -r rh0 rm0 re0 mh0 mm0 me0 <<<"$(counters)"

cat > "$W/s.lua" <<EOF
target "http://127.0.0.1:$AP"
scenario "redis" { flow = function(u) u:get("/r/k" .. u:random(1, 200), { name = "redis" }) end }
scenario "memcached" { flow = function(u) u:get("/m/k" .. u:random(1, 200), { name = "memcached" }) end }
load { vus = 4, duration = "3s" }
observe { cache = { "127.0.0.1:$RP", "127.0.0.1:$MP" } }
EOF
"$IAC" loadtest "$W/s.lua" -json "$W/s.json" > "$W/s.out" 2>&1 || { cat "$W/s.out"; fail "loadtest exited $?"; }
read -r rh1 rm1 re1 mh1 mm1 me1 <<<"$(counters)"
cat "$W/s.out"
echo "servers grew by: redis hits $((rh1 - rh0)) misses $((rm1 - rm0)); memcached hits $((mh1 - mh0)) misses $((mm1 - mm0))"

"$T_PY" - "$W/s.json" "$RP" "$MP" $((rh1 - rh0)) $((rm1 - rm0)) $((re1 - re0)) $((mh1 - mh0)) $((mm1 - mm0)) $((me1 - me0)) <<'PY' || fail "the report's cache figures differ from the servers'"
import json, sys
d = json.load(open(sys.argv[1]))
rp, mp = sys.argv[2], sys.argv[3]
rh, rm, re_, mh, mm, me = map(int, sys.argv[4:])
c = d["server"]["cache"]
assert c, "no server.cache in the report"
n = {x["address"]: x for x in c["nodes"]}
r, m = n["127.0.0.1:" + rp], n["127.0.0.1:" + mp]
assert r["engine"] == "redis" and m["engine"] == "memcached", (r, m)
assert (r["hits"], r["misses"], r["evictions"]) == (rh, rm, re_), (r, rh, rm, re_)
assert (m["hits"], m["misses"], m["evictions"]) == (mh, mm, me), (m, mh, mm, me)
assert rh > 50 and rm > 50 and mh > 50 and mm > 50, "too little traffic to judge"
# one GET per request: hits + misses are the requests of each scenario
eps = {e["name"]: e for e in d["endpoints"]} if isinstance(d.get("endpoints"), list) else d.get("endpoints", {})
def count(name):
    e = eps[name]
    return e.get("requests", e.get("count"))
assert rh + rm == count("redis"), (rh + rm, eps["redis"])
assert mh + mm == count("memcached"), (mh + mm, eps["memcached"])
assert abs(c["hit_rate"] - (rh + mh) / (rh + rm + mh + mm)) < 1e-9, c
assert c["hits"] == rh + mh and c["misses"] == rm + mm, c
# the time series: per-second figures add up to the window
ts = [p["cache"] for p in d["timeseries"] if "cache" in p]
assert ts, "no per-second cache figures"
assert sum(p["hits"] for p in ts) <= rh + mh and sum(p["misses"] for p in ts) <= rm + mm
print("report == servers: redis %d/%d, memcached %d/%d, hit rate %.3f" % (rh, rm, mh, mm, c["hit_rate"]))
PY
grep -q "cache 127.0.0.1:$RP (redis): $((rh1 - rh0)) hits, $((rm1 - rm0)) misses" "$W/s.out" ||
	fail "the summary has no redis line with the servers' figures"
grep -q "cache 127.0.0.1:$MP (memcached): $((mh1 - mh0)) hits" "$W/s.out" ||
	fail "the summary has no memcached line"
ok "hit/miss figures in the report equal the servers' counters"

# a node that does not answer: a warning, the run goes on
cat > "$W/bad.lua" <<EOF
target "http://127.0.0.1:$AP/r/k1"
load { vus = 1, duration = "0.5s" }
observe { cache = { "127.0.0.1:1" } }
EOF
"$IAC" loadtest "$W/bad.lua" -json "$W/bad.json" > "$W/bad.out" 2>&1 || { cat "$W/bad.out"; fail "an unreachable cache node must not fail the run"; }
grep -q "cannot connect to cache node '127.0.0.1:1'.*the run continues without it" "$W/bad.out" || { cat "$W/bad.out"; fail "no warning for the unreachable node"; }
grep -q "cache 127.0.0.1:1: not sampled" "$W/bad.out" || fail "the summary does not say the node was not sampled"
# a malformed list is a scenario error at its line
printf 'target "http://127.0.0.1:%s"\nobserve { cache = { 6379 } }\n' "$AP" > "$W/err.lua"
if "$IAC" loadtest "$W/err.lua" > "$W/err.out" 2>&1; then fail "observe.cache = { 6379 } accepted"; fi
grep -q "err.lua:2: option 'cache' in observe must be a list" "$W/err.out" || { cat "$W/err.out"; fail "wrong error"; }
ok "unreachable node warned, bad list refused"
finish
