# Server-side figures: HAProxy in front of nginx, its `show stat` sampled
# each second over the stats socket (unix and TCP forms) on the client's
# time axis. A backend limited to 2 connections queues when the load rises
# from 2 to 16 VUs at t=2.5 s, and the report says where it saturated.
. "$(dirname "$0")/lib.sh"

command -v haproxy > /dev/null || fail "haproxy is not installed"
NPORT=$(free_port)
start_nginx "$NPORT"
HPORT=$(free_port)
SPORT=$(free_port)
cat > "$T/haproxy.cfg" <<EOF2
global
  stats socket $T/haproxy.sock mode 600 level user
  stats socket ipv4@127.0.0.1:$SPORT level user
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout queue 30s
frontend web
  bind 127.0.0.1:$HPORT
  default_backend app
backend app
  server n1 127.0.0.1:$NPORT maxconn 2
EOF2
haproxy -f "$T/haproxy.cfg" -db > "$T/haproxy.log" 2>&1 &
PIDS+=("$!")
wait_port "$HPORT"
wait_port "$SPORT"

cat > "$T/s.lua" <<EOF2
target "http://127.0.0.1:$HPORT"
scenario "slow" { path = "/slow/a" }
load { executor = "ramping-vus", start_vus = 2,
       stages = { { "2.5s", 2 }, { "0.1s", 16 }, { "2.4s", 16 } } }
observe { haproxy = "$T/haproxy.sock", hosts = { "local" } }
EOF2
"$IAC" loadtest "$T/s.lua" -json "$T/s.json" -html "$T/s.html" > "$T/s.out" 2>&1 || fail "run exited $?"
cat "$T/s.out"
"$PY" - "$T/s.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
ts = d["timeseries"]
q = [p["haproxy"]["queue"] for p in ts]
s = [p["haproxy"]["sessions"] for p in ts]
print("haproxy queue per second", q, "sessions", s)
assert all(x is not None for x in q[:5]), "missing HAProxy samples"
assert max(q[:2]) == 0, q            # 2 VUs fit the backend's 2 connections (sampled by ~2.0 s)
assert max(q[2:5]) >= 8, q           # 16 VUs: 14 wait in HAProxy's queue
assert d["server"]["haproxy"].endswith("haproxy.sock")
sat = d["server"]["saturation"]
print("saturation note:", sat)
assert sat and "HAProxy" in sat and "t=2 s" in sat, sat
cpu = [p["hosts"]["local"]["cpu_pct"] for p in ts]
assert any(c is not None for c in cpu), "host 'local' was not sampled"
EOP
[ $? = 0 ] || fail "HAProxy figures or the saturation note are wrong"
grep -q "where it saturated" "$T/s.out" || fail "the summary has no saturation note"
grep -q "Server side: HAProxy" "$T/s.html" || fail "the HTML report has no HAProxy chart"

# the TCP form of the stats address
cat > "$T/tcp.lua" <<EOF2
target "http://127.0.0.1:$HPORT/1k.html"
load { vus = 2, duration = "1.2s" }
observe { haproxy = "ipv4@127.0.0.1:$SPORT" }
EOF2
"$IAC" loadtest "$T/tcp.lua" -json "$T/tcp.json" > /dev/null || fail "tcp run exited $?"
[ "$(json "$T/tcp.json" "d['timeseries'][0]['haproxy']['sessions'] is not None")" = True ] ||
	fail "no HAProxy sample over TCP"

# an unreachable stats socket is a warning, not a failure
cat > "$T/bad.lua" <<EOF2
target "http://127.0.0.1:$HPORT/1k.html"
load { vus = 1, duration = "0.5s" }
observe { haproxy = "$T/nothing.sock", hosts = { "web-9" } }
EOF2
"$IAC" loadtest "$T/bad.lua" > "$T/bad.out" 2> "$T/bad.err" || fail "a missing stats socket must not fail the run"
grep -q "warning: cannot connect to haproxy stats socket" "$T/bad.err" || fail "no warning for the missing socket: $(cat "$T/bad.err")"
grep -q "warning: cannot observe host 'web-9'" "$T/bad.err" || fail "no warning for the unobservable host"
echo ok
