# Honest verdicts. A closed port is not throughput: connect failures back
# off per VU (so 2 VUs make a few dozen attempts in 2 s, not ~160,000),
# are not latency samples, and a run where at least max_failed (50 %) of
# the requests failed exits 98 with "the target did not answer". k6's
# http_req_failed rate works in thresholds against real 404s. The HTML
# report's banner is the run's verdict; the VU chart shows a short run's
# VU; every endpoint gets a latency chart.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
start_nginx "$PORT"
DEAD=$(free_port)

# ---- a closed port ----------------------------------------------------
cat > "$T/dead.lua" <<EOF2
target "http://127.0.0.1:$DEAD/"
load { vus = 2, duration = "2s" }
EOF2
rc=0
"$IAC" loadtest "$T/dead.lua" -json "$T/dead.json" -html "$T/dead.html" > "$T/dead.out" 2> "$T/dead.err" || rc=$?
cat "$T/dead.out" "$T/dead.err"
[ "$rc" = 98 ] || fail "a closed port must exit 98, got $rc"
grep -q "^error: the target did not answer: [0-9,]* of [0-9,]* requests failed (connect: [0-9,]*)$" "$T/dead.err" ||
	fail "no 'the target did not answer' message on stderr"
grep -q "verdict: FAILED: the target did not answer" "$T/dead.out" || fail "the summary does not give the verdict"
grep -q "latency       no responses" "$T/dead.out" || fail "the summary shows latencies without a response"
"$PY" - "$T/dead.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
n, el = d["requests"], d["duration_s"]
rate = n / el
print(f"closed port, 2 VUs: {n} attempts in {el:.2f} s = {rate:.1f}/s")
assert d["errors"]["total"] == n and d["errors"]["by_kind"]["connect"] == n, d["errors"]
# backing off 10 ms doubling to 1 s: about 9 attempts per VU in 2 s; without
# the back-off this machine made ~83,000 a second
assert 4 <= n and rate < 100, rate
assert all(v is None for v in d["latency_ms"].values()), d["latency_ms"]
assert all(p["p99_ms"] is None for p in d["timeseries"]), d["timeseries"]
assert d["exit_code"] == 98 and d["verdict"]["result"] == "failed"
assert d["verdict"]["http_req_failed"] == 1.0
assert "the target did not answer" in d["verdict"]["reasons"][0]
EOP
[ $? = 0 ] || fail "closed port figures"
grep -q '<b>Failed: the target did not answer.</b> (exit code 98)' "$T/dead.html" || fail "HTML verdict for a dead target"
grep -q 'banner valid' "$T/dead.html" && fail "a green banner on a failed run"
"$PY" "$(dirname "$0")/check_json_shape.py" "$T/dead.json" || fail "JSON shape"

# max_failed = false: the same run is judged by its thresholds alone
sed -e 's/duration = "2s"/duration = "0.5s", max_failed = false/' "$T/dead.lua" > "$T/dead-off.lua"
rc=0
"$IAC" loadtest "$T/dead-off.lua" -quiet 2> "$T/dead-off.err" || rc=$?
[ "$rc" = 0 ] || fail "max_failed = false must not fail the run, got $rc"
[ -s "$T/dead-off.err" ] && fail "max_failed = false still printed: $(cat "$T/dead-off.err")"

# ---- http_req_failed against real 404s ------------------------------
# 1 VU of 4 asks for a missing page: a quarter of the requests fail
cat > "$T/some404.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "ok" { weight = 3, path = "/1k.html", name = "ok", think = "5ms" }
scenario "missing" { weight = 1, path = "/nope", name = "missing", think = "5ms" }
load { vus = 4, duration = "1s" }
thresholds { http_req_failed = "rate<0.5", ["missing:http_req_failed"] = "rate>0.99",
             ["ok:http_req_failed"] = "< 1%" }
EOF2
rc=0
"$IAC" loadtest "$T/some404.lua" -threads 1 -json "$T/p.json" -html "$T/p.html" > "$T/p.out" || rc=$?
cat "$T/p.out"
[ "$rc" = 0 ] || fail "http_req_failed thresholds that hold must exit 0, got $rc"
"$PY" - "$T/p.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
v = d["thresholds"]["http_req_failed"]["value"]
print("http_req_failed", v)
assert 0.1 < v < 0.45, v
assert d["thresholds"]["missing:http_req_failed"]["value"] == 1.0
assert d["thresholds"]["ok:http_req_failed"]["value"] == 0.0
assert d["verdict"]["http_req_failed"] == v
EOP
[ $? = 0 ] || fail "http_req_failed values"
grep -q '<b>Passed.</b> (exit code 0)' "$T/p.html" || fail "HTML verdict for a passing run"
grep -q 'aria-label="Latency of ok"' "$T/p.html" || fail "no latency chart for endpoint ok"
grep -q 'aria-label="Latency of missing"' "$T/p.html" || fail "no latency chart for endpoint missing"

sed -e 's/http_req_failed = "rate<0.5"/http_req_failed = "rate<0.1"/' "$T/some404.lua" > "$T/strict.lua"
rc=0
"$IAC" loadtest "$T/strict.lua" -threads 1 -json "$T/s.json" -html "$T/s.html" > "$T/s.out" || rc=$?
[ "$rc" = 99 ] || fail "a failed http_req_failed threshold must exit 99, got $rc"
grep -q "FAIL.*http_req_failed" "$T/s.out" || fail "the summary does not show http_req_failed failing"
grep -q '<b>Failed: thresholds failed.</b> (exit code 99)' "$T/s.html" || fail "HTML verdict for a failed threshold"
grep -q "<b>Threshold:</b> threshold 'http_req_failed' failed: " "$T/s.html" || fail "HTML verdict does not name the threshold"
grep -q 'banner valid' "$T/s.html" && fail "a green banner on a run that exited 99"

# most requests 404: the target answered, with errors; still a failed run
sed -e 's/"ok" { weight = 3/"ok" { weight = 1/; s/"missing" { weight = 1/"missing" { weight = 3/' "$T/some404.lua" > "$T/most404.lua"
rc=0
"$IAC" loadtest "$T/most404.lua" -threads 1 -quiet 2> "$T/m.err" || rc=$?
[ "$rc" = 98 ] || fail "a run with 75% failed requests must exit 98, got $rc"
grep -q "error: too many requests failed: .* (http 404: " "$T/m.err" || fail "message for HTTP failures: $(cat "$T/m.err")"

# unless the scenario expects them (k6's http.expectedStatuses)
sed -e 's/load { vus = 4, duration = "1s" }/load { vus = 4, duration = "1s", expected_statuses = { { 200, 399 }, 404 } }/' \
	-e 's/\["missing:http_req_failed"\] = "rate>0.99"/["missing:http_req_failed"] = "== 0"/' "$T/most404.lua" > "$T/expect404.lua"
rc=0
"$IAC" loadtest "$T/expect404.lua" -threads 1 -json "$T/e.json" > "$T/e.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "expected 404s must not fail the run, got $rc: $(cat "$T/e.out")"
[ "$(json "$T/e.json" "d['errors']['total'] == 0 and d['status']['404'] > 0 and d['verdict']['http_req_failed'] == 0")" = True ] ||
	fail "expected 404s still counted as failures: $(json "$T/e.json" "d['errors']")"

# ---- the VU chart of a short run ------------------------------------
cat > "$T/one.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "s" { path = "/1k.html", think = "300ms" }
load { vus = 1, duration = "0.5s" }
EOF2
"$IAC" loadtest "$T/one.lua" -json "$T/one.json" -quiet || fail "one-VU run exited $?"
[ "$(json "$T/one.json" "[p['vus'] for p in d['timeseries']]")" = "[1]" ] ||
	fail "1 VU ran but the VU series says $(json "$T/one.json" "[p['vus'] for p in d['timeseries']]")"
echo ok
