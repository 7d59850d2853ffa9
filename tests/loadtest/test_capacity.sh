# Capacity search (-find-capacity) against a target whose capacity is known:
# nginx with limit_req at X = 170 req/s and a deep burst queue (requests
# over the rate are delayed, not refused), so above X latency grows by
# (rate - X) / X seconds per second and p99 < 100 ms breaks just above X.
#   - the search finds X within 10 % and says so in its final line and JSON
#   - a manual step test (constant-arrival-rate runs, the same threshold in
#     the scenario) first breaks at a rate within 10 % of the found capacity
#   - a generator capped by -vus 2 against a 100 ms endpoint is named
#     "the load generator itself"
#   - a closed port exits 98 ("the target did not answer"), a condition
#     that fails at the start rate exits 97, both with a clear message
. "$(dirname "$0")/lib.sh"
t_need nginx haproxy

X=170
PORT=$(free_port)
d=$T/nginx
mkdir -p "$d/www/slow" "$d/tmp"
echo ok > "$d/www/index.html"
echo_mod=/usr/lib/nginx/modules/ngx_http_echo_module.so
[ -e "$echo_mod" ] || fail "nginx's echo module is missing (apt-get install nginx-light)"
cat > "$d/nginx.conf" <<EOC
load_module $echo_mod;
worker_processes 1;
master_process off;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 8000; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
  limit_req_zone \$binary_remote_addr zone=cap:1m rate=${X}r/s;
  server {
    listen 127.0.0.1:$PORT;
    root $d/www;
    location / { limit_req zone=cap burst=5000; }
    location /slow/ { echo_sleep 0.1; echo "slow"; }
  }
}
EOC
nginx -c "$d/nginx.conf" -p "$d" &
PIDS+=("$!")
wait_port "$PORT"

cat > "$T/cap.lua" <<EOF
target "http://127.0.0.1:$PORT"
scenario "page" { path = "/" }
EOF

# --- the search --------------------------------------------------------------
t0=$(date +%s.%N)
"$IAC" loadtest "$T/cap.lua" -find-capacity 'p(99)<100ms' -capacity-start 100 -capacity-hold 3s \
	-json "$T/cap.json" > "$T/cap.out" 2> "$T/cap.err" || { cat "$T/cap.out" "$T/cap.err"; fail "search exited $?"; }
t1=$(date +%s.%N)
cat "$T/cap.out"
grep -q '^  step 1  rate     100/s  achieved ' "$T/cap.out" || fail "no progress line per step"
grep -qE '^capacity: [0-9]+ req/s \(p\(99\)<100ms held for 3s\); (knee at [0-9]+ req/s|no knee up to [0-9]+ req/s); first to saturate: ' "$T/cap.out" ||
	fail "no final capacity line"
FOUND=$(json "$T/cap.json" 'd["capacity"]["capacity_rps"]')
STEPS=$(json "$T/cap.json" 'len(d["capacity"]["steps"])')
SEARCH_S=$(json "$T/cap.json" 'round(d["capacity"]["search_duration_s"], 1)')
[ "$(json "$T/cap.json" 'd["exit_code"]')" = 0 ] || fail "JSON exit_code is not 0"
json "$T/cap.json" 'all(set(s) >= {"rate","achieved_rps","p99_ms","pass","failed","dropped_iterations"} for s in d["capacity"]["steps"])' |
	grep -q True || fail "a step lacks figures in the JSON"
json "$T/cap.json" 'any(not s["pass"] and s["p99_ms"] >= 100 for s in d["capacity"]["steps"])' | grep -q True ||
	fail "no failing step with p99 >= 100 ms"
"$PY" -c "import sys; f=float(sys.argv[1]); sys.exit(0 if abs(f - $X) <= 0.1 * $X else 1)" "$FOUND" ||
	fail "found capacity $FOUND req/s is not within 10 % of the known $X req/s"
echo "search: capacity $FOUND req/s (known $X), $STEPS steps, ${SEARCH_S}s of steps, $("$PY" -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$t0" "$t1") s wall"

# --- a manual step test with the same threshold -------------------------------
cat > "$T/step.lua" <<EOF
target "http://127.0.0.1:$PORT"
scenario "page" { path = "/" }
load { executor = "constant-arrival-rate", rate = 10, duration = "3s", max_vus = 100 }
thresholds { ["p(99)"] = "< 100ms", http_req_failed = "rate<0.01" }
EOF
BREAK=
for r in 155 165 175 185 195; do
	rc=0
	"$IAC" loadtest "$T/step.lua" -rate "$r" -quiet -json "$T/step-$r.json" || rc=$?
	p99=$(json "$T/step-$r.json" 'd["latency_ms"]["p99"]')
	echo "manual step: $r req/s, p99 $p99 ms, exit $rc"
	if [ "$rc" = 99 ]; then BREAK=$r; break; fi
	[ "$rc" = 0 ] || fail "manual step at $r req/s exited $rc"
	sleep 1   # the limiter's queue drains
done
[ -n "$BREAK" ] || fail "the manual step test never broke p(99)<100ms up to 195 req/s"
"$PY" -c "import sys; f, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(f - b) <= 0.1 * b else 1)" "$FOUND" "$BREAK" ||
	fail "found capacity $FOUND req/s is not within 10 % of the manual step test's first break at $BREAK req/s"
echo "capacity figure: found $FOUND req/s vs manual first break $BREAK req/s (known $X), search ${SEARCH_S}s"

# --- a generator that cannot keep the rate ------------------------------------
cat > "$T/slow.lua" <<EOF
target "http://127.0.0.1:$PORT"
scenario "slow" { path = "/slow/" }
EOF
"$IAC" loadtest "$T/slow.lua" -find-capacity 'p(99)<500ms' -vus 2 -capacity-start 12 -capacity-hold 2s \
	-capacity-precision 10 -json "$T/gen.json" > "$T/gen.out" 2> "$T/gen.err" ||
	{ cat "$T/gen.out" "$T/gen.err"; fail "capped search exited $?"; }
cat "$T/gen.out" "$T/gen.err"
grep -q 'first to saturate: the load generator itself (at .* dropped iterations with max_vus 2' "$T/gen.out" ||
	fail "a generator capped at 2 VUs is not named as what saturated first"
grep -q "the capacity above is iac's, not the target's" "$T/gen.err" || fail "no warning that the capacity is the generator's"
[ "$(json "$T/gen.json" 'd["capacity"]["load_generator_saturated"]')" = True ] || fail "JSON: load_generator_saturated is not true"
GEN=$(json "$T/gen.json" 'd["capacity"]["capacity_rps"]')
"$PY" -c "import sys; sys.exit(0 if 14 <= float(sys.argv[1]) <= 21 else 1)" "$GEN" ||
	fail "2 VUs x 100 ms allow ~20 req/s; the search found $GEN"

# --- observed: HAProxy in front, 2 connections to the 100 ms endpoint -------
# (20 req/s); the queue at the LB is what saturates, and is named
HPORT=$(free_port)
cat > "$T/haproxy.cfg" <<EOH
global
  stats socket $T/haproxy.sock mode 600 level user
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
  server n1 127.0.0.1:$PORT maxconn 2
EOH
haproxy -f "$T/haproxy.cfg" -db > "$T/haproxy.log" 2>&1 &
PIDS+=("$!")
wait_port "$HPORT"
cat > "$T/lb.lua" <<EOH
target "http://127.0.0.1:$HPORT"
scenario "slow" { path = "/slow/" }
observe { haproxy = "$T/haproxy.sock" }
EOH
"$IAC" loadtest "$T/lb.lua" -find-capacity 'p(99)<400ms' -capacity-start 15 -capacity-hold 2s \
	-capacity-precision 10 -json "$T/lb.json" > "$T/lb.out" 2> "$T/lb.err" ||
	{ cat "$T/lb.out" "$T/lb.err"; fail "search behind HAProxy exited $?"; }
cat "$T/lb.out"
grep -q 'first to saturate: HAProxy queue (peak [0-9]* at ' "$T/lb.out" || fail "the HAProxy queue is not named"
LB=$(json "$T/lb.json" 'd["capacity"]["capacity_rps"]')
"$PY" -c "import sys; sys.exit(0 if 16 <= float(sys.argv[1]) <= 24 else 1)" "$LB" ||
	fail "2 connections x 100 ms behind HAProxy allow ~20 req/s; the search found $LB"

# --- no capacity: an unreachable target, a condition failing at the start -----
CLOSED=$(free_port)
cat > "$T/closed.lua" <<EOF
target "http://127.0.0.1:$CLOSED"
EOF
rc=0
"$IAC" loadtest "$T/closed.lua" -find-capacity 'p(99)<100ms' -capacity-hold 2s > "$T/closed.out" 2> "$T/closed.err" || rc=$?
cat "$T/closed.out" "$T/closed.err"
[ "$rc" = 98 ] || fail "an unreachable target exited $rc, not 98"
grep -q 'error: no capacity found: even the start rate 10 req/s fails: the target did not answer' "$T/closed.err" ||
	fail "no clear message for an unreachable target"

rc=0
"$IAC" loadtest "$T/slow.lua" -find-capacity 'p(99)<50ms' -capacity-hold 2s > "$T/low.out" 2> "$T/low.err" || rc=$?
cat "$T/low.out" "$T/low.err"
[ "$rc" = 97 ] || fail "a condition failing at the start rate exited $rc, not 97"
grep -q "error: no capacity found: even the start rate 10 req/s fails: p(99) 1[0-9][0-9].[0-9]*ms (<50ms); lower -capacity-start" "$T/low.err" ||
	fail "no clear message for a condition failing at the start rate"

# --- -max-rate: nothing failed up to it ---------------------------------------
"$IAC" loadtest "$T/cap.lua" -find-capacity 'p(99)<100ms' -capacity-start 50 -max-rate 60 -capacity-hold 1s \
	-json "$T/max.json" > "$T/max.out" || fail "a search capped by -max-rate exited $?"
cat "$T/max.out"
grep -q '^capacity: >= 60 req/s (p(99)<100ms held for 1s), the highest rate tried; ' "$T/max.out" || fail "-max-rate not reported"
[ "$(json "$T/max.json" '[s["rate"] for s in d["capacity"]["steps"]]')" = "[50.0, 60.0]" ] || fail "-max-rate: wrong steps"

# --- flags that do not fit ----------------------------------------------------
rc=0
"$IAC" loadtest "$T/cap.lua" -find-capacity 'p(99)<100ms' -rate 100 2> "$T/bad.err" || rc=$?
[ "$rc" = 1 ] && grep -q "flag '-rate' does not apply with '-find-capacity'" "$T/bad.err" || fail "-rate with -find-capacity accepted"
rc=0
"$IAC" loadtest "$T/cap.lua" -find-capacity 'p99<100ms' 2> "$T/bad.err" || rc=$?
[ "$rc" = 1 ] && grep -q "unknown metric 'p99'" "$T/bad.err" || fail "a bad condition accepted"
rc=0
"$IAC" loadtest "$T/cap.lua" -max-rate 50 -duration 1s 2> "$T/bad.err" || rc=$?
[ "$rc" = 1 ] && grep -q "only apply with '-find-capacity COND'" "$T/bad.err" || fail "-max-rate without -find-capacity accepted"
rc=0
"$IAC" loadtest "$T/cap.lua" -find-capacity 'p(99)<100ms' -capacity-step -5 2> "$T/bad.err" || rc=$?
[ "$rc" = 1 ] && grep -q "flag '-capacity-step' must be above 0" "$T/bad.err" || fail "a negative -capacity-step accepted"
rc=0
"$IAC" loadtest "$T/cap.lua" -duration 1s -target https://127.0.0.1:1 -ca-file "$T/nope.pem" -quiet 2> "$T/bad.err" || rc=$?
[ "$rc" != 0 ] && grep -q "cannot read the CA file '$T/nope.pem': No such file or directory" "$T/bad.err" ||
	{ cat "$T/bad.err"; fail "a missing -ca-file is not named with its reason"; }
echo "PASS"
