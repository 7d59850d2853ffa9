# Thresholds pass and fail as they should: an endpoint nginx slows down by
# 300 ms fails p(99) while a fast one passes; the exit code is 99 on
# failure, 0 on success, 1 on an unknown metric (named, with the valid ones
# listed); abort_on_fail stops the run early.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
start_nginx "$PORT"

cat > "$T/mixed.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "fast" { weight = 1, path = "/1k.html", name = "fast" }
scenario "slow" { weight = 1, path = "/slow/x", name = "slow" }
load { executor = "constant-vus", vus = 4, duration = "1.5s" }
thresholds {
  ["fast:p(99)"] = "< 250ms",
  ["slow:p(99)"] = "< 250ms",
  ["slow:p(50)"] = ">= 300ms",
  error_rate = "< 1%",
}
EOF2
rc=0
"$IAC" loadtest "$T/mixed.lua" -json "$T/mixed.json" > "$T/mixed.out" || rc=$?
cat "$T/mixed.out"
[ "$rc" = 99 ] || fail "a failed threshold must exit 99, got $rc"
[ "$(json "$T/mixed.json" "d['thresholds']['fast:p(99)']['ok']")" = True ] || fail "fast:p(99) should pass"
[ "$(json "$T/mixed.json" "d['thresholds']['slow:p(99)']['ok']")" = False ] || fail "slow:p(99) should fail"
[ "$(json "$T/mixed.json" "d['thresholds']['slow:p(50)']['ok']")" = True ] || fail "slow:p(50) should be >= 300ms"
[ "$(json "$T/mixed.json" "d['thresholds']['error_rate']['ok']")" = True ] || fail "error_rate should pass"
[ "$(json "$T/mixed.json" "d['exit_code']")" = 99 ] || fail "exit_code in JSON"
grep -q "FAIL.*slow:p(99)" "$T/mixed.out" || fail "the summary does not show slow:p(99) failing"

# all passing: exit 0
sed -e '/slow:p(99)/d' "$T/mixed.lua" > "$T/pass.lua"
rc=0
"$IAC" loadtest "$T/pass.lua" -quiet -duration 1s || rc=$?
[ "$rc" = 0 ] || fail "passing thresholds must exit 0, got $rc"

# a threshold on an endpoint that never got a request fails (no silent pass)
cat > "$T/ghost.lua" <<EOF2
target "http://127.0.0.1:$PORT/1k.html"
load { vus = 2, duration = "0.5s" }
thresholds { ["ghost:p(95)"] = "< 1s" }
EOF2
rc=0
"$IAC" loadtest "$T/ghost.lua" > "$T/ghost.out" || rc=$?
[ "$rc" = 99 ] || fail "a threshold without data must fail, got $rc"
grep -q "no request named 'ghost'" "$T/ghost.out" || fail "the summary does not say why ghost failed"

# unknown metric: an error before any load, exit 1
cat > "$T/typo.lua" <<EOF2
target "http://127.0.0.1:$PORT"
thresholds {
  ["p(99)"] = "< 250ms",
  http_req_time = "< 1s",
}
EOF2
: > "$T/nginx/access.log"
rc=0
"$IAC" loadtest "$T/typo.lua" 2> "$T/typo.err" || rc=$?
cat "$T/typo.err"
[ "$rc" = 1 ] || fail "an unknown metric must exit 1, got $rc"
grep -q "error: $T/typo.lua:2: unknown metric 'http_req_time'" "$T/typo.err" || fail "message must name the file, line and metric"
grep -q "valid metrics: p(N), avg" "$T/typo.err" || fail "message must list the valid metrics"
[ "$(nginx_requests)" = 0 ] || fail "no request may be sent when the scenario is wrong"

# abort_on_fail: a failing p(99) stops a 20 s run within a few seconds
cat > "$T/abort.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "slow" { path = "/slow/y" }
load { executor = "constant-vus", vus = 2, duration = "20s" }
thresholds { ["p(99)"] = { "< 100ms", abort_on_fail = true } }
EOF2
start=$(date +%s)
rc=0
"$IAC" loadtest "$T/abort.lua" -json "$T/abort.json" > "$T/abort.out" 2>&1 || rc=$?
took=$(( $(date +%s) - start ))
cat "$T/abort.out"
[ "$rc" = 99 ] || fail "abort_on_fail must exit 99, got $rc"
[ "$took" -lt 8 ] || fail "abort_on_fail did not stop the run early (took ${took}s)"
[ "$(json "$T/abort.json" "d['aborted']")" = True ] || fail "JSON must say aborted"
echo ok
