# 10,000 idle virtual users (each with its own coroutine and keep-alive
# connection, thinking between requests) fit in 100 MiB.
. "$(dirname "$0")/lib.sh"

need=12000   # 10,000 sockets in each process, and some
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
	ulimit -Hn "$need" 2>/dev/null || fail "this test needs 'ulimit -Hn' >= $need (root can raise it)"
fi
ulimit -n "$need"
PORT=$(free_port)
start_nginx "$PORT"

cat > "$T/idle.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "idle" {
  think = "30s",
  flow = function(u)
    local r = u:get("/product/" .. u:random(1, 20), { name = "product" })
    u:check(r.status == 200, "ok")
    u.data.seen = (u.data.seen or 0) + 1
  end,
}
load { executor = "ramping-vus", stages = { { "2s", 10000 }, { "2s", 10000 } } }
EOF2
"$IAC" loadtest "$T/idle.lua" -json "$T/idle.json" > "$T/idle.out" || fail "run exited $?"
cat "$T/idle.out"
"$PY" - "$T/idle.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
rss = d["client"]["max_rss_mib"]
print("10,000 VUs: max RSS %.1f MiB, %d requests, %d errors" % (rss, d["requests"], d["errors"]["total"]))
assert d["vus_max"] == 10000, d["vus_max"]
assert d["requests"] == 10000, d["requests"]   # each VU made its request, then thinks
assert d["errors"]["total"] == 0, d["errors"]
assert d["checks"]["ok"]["passes"] == 10000
assert rss <= 100, f"{rss:.1f} MiB for 10,000 VUs"
EOP
[ $? = 0 ] || fail "10,000 idle VUs do not fit in 100 MiB"
# every VU holds its own connection open while it thinks
conns=$(grep -c ' 200 ' "$T/nginx/access.log")
[ "$conns" = 10000 ] || fail "nginx logged $conns requests, expected 10000"
echo ok
