# The command line: flags override the file, errors exit 1 with
# "error: FILE:LINE: ...", script errors inside a flow are counted and
# reported without stopping the run, help lists the flags.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
start_nginx "$PORT"

expect_error() {   # expect_error WANT ARGS...: exit 1 and WANT on stderr
	local want=$1 rc=0
	shift
	"$IAC" loadtest "$@" > "$T/out" 2> "$T/err" || rc=$?
	[ "$rc" = 1 ] || fail "iac loadtest $*: exit $rc, expected 1"
	grep -qF -- "$want" "$T/err" || fail "iac loadtest $*: expected '$want' on stderr, got: $(cat "$T/err")"
}

expect_error "missing the scenario file"
expect_error "scenario file '$T/none.lua' does not exist" "$T/none.lua"
printf 'target "http://127.0.0.1:%s"\nscenario "a" { path = "/1k.html" }\nload { vus = 1, duration = "0.5s" }\n' "$PORT" > "$T/ok.lua"
expect_error "unknown flag '-vu' for 'iac loadtest'" "$T/ok.lua" -vu 3
expect_error "flag '-duration' of 'iac loadtest'" "$T/ok.lua" -duration=soon
printf 'target "http://127.0.0.1:%s"\nscenario "a" {\n  path = "/", wait = 1 }\n' "$PORT" > "$T/bad.lua"
expect_error "error: $T/bad.lua:2: unknown option 'wait' in scenario 'a'" "$T/bad.lua"
printf 'target "http://127.0.0.1:%s"\nlocal x = \n' "$PORT" > "$T/syntax.lua"
expect_error "error: $T/syntax.lua:3:" "$T/syntax.lua"
printf 'target "http://127.0.0.1:%s"\nload { executor = "ramping-vus", stages = { { "1s", 2 } } }\n' "$PORT" > "$T/ramp.lua"
expect_error "flag '-duration' does not apply to executor 'ramping-vus'" "$T/ramp.lua" -duration 2s

# flags override the file: -vus, -duration, -threads
"$IAC" loadtest "$T/ok.lua" -vus=3 -duration 1s -threads 1 -json "$T/o.json" > /dev/null || fail "override run exited $?"
[ "$(json "$T/o.json" "d['vus_max']")" = 3 ] || fail "-vus did not override"
[ "$(json "$T/o.json" "d['threads']")" = 1 ] || fail "-threads did not override"
dur=$(json "$T/o.json" "d['duration_s']")
"$PY" -c "import sys; sys.exit(0 if 0.9 < $dur < 1.5 else 1)" || fail "-duration did not override ($dur s)"
# -rate turns a closed-model scenario into constant-arrival-rate (like wrk2 -R)
"$IAC" loadtest "$T/ok.lua" -rate 100 -duration 1s -json "$T/r.json" > /dev/null || fail "-rate run exited $?"
[ "$(json "$T/r.json" "d['executor']")" = constant-arrival-rate ] || fail "-rate did not switch executor"
[ "$(json "$T/r.json" "d['iterations']")" = 100 ] || fail "-rate 100 for 1s did not make 100 iterations"

# a runtime error in a flow: counted, reported with its position, run goes on
cat > "$T/oops.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "oops" {
  flow = function(u)
    local r = u:get("/1k.html")
    if u.iteration % 2 == 0 then error("boom " .. r.status) end
    local n = nil
    return n.field
  end,
}
load { vus = 2, duration = "0.5s" }
EOF2
rc=0
"$IAC" loadtest "$T/oops.lua" -json "$T/oops.json" > "$T/oops.out" 2>&1 || rc=$?
cat "$T/oops.out"
[ "$rc" = 0 ] || fail "script errors alone must not fail the run (exit $rc)"
grep -q "script errors" "$T/oops.out" || fail "summary does not show script errors"
grep -q "$T/oops.lua:5: boom 200" "$T/oops.out" || fail "error message lacks FILE:LINE"
grep -q "$T/oops.lua:7: attempt to index a nil value" "$T/oops.out" || fail "runtime error lacks FILE:LINE"
[ "$(json "$T/oops.json" "d['requests'] > 0 and d['script_errors']['total'] == d['requests']")" = True ] ||
	fail "each iteration's error should be counted"

# a target that refuses connections: errors by kind, no crash; the
# failed-requests verdict (98) comes before the failed threshold (99)
DEAD=$(free_port)
printf 'target "http://127.0.0.1:%s/"\nload { vus = 2, duration = "0.5s" }\nthresholds { error_rate = "< 1%%" }\n' "$DEAD" > "$T/dead.lua"
rc=0
"$IAC" loadtest "$T/dead.lua" -json "$T/dead.json" > "$T/dead.out" 2>&1 || rc=$?
[ "$rc" = 98 ] || fail "a dead target must exit 98, got $rc"
[ "$(json "$T/dead.json" "d['errors']['by_kind'].get('connect', 0) > 0")" = True ] || fail "connect errors not counted"
[ "$(json "$T/dead.json" "d['thresholds']['error_rate']['ok']")" = False ] || fail "error_rate should fail too"

# the same from a flow: u:get gets r.error = "connect", the flow goes on
cat > "$T/deadflow.lua" <<EOF2
target "http://127.0.0.1:$DEAD"
scenario "f" {
  flow = function(u)
    local r = u:get("/x")
    u:check(r.status == 0 and r.error == "connect", "refused seen")
  end,
}
load { vus = 2, duration = "0.5s", max_failed = false }
EOF2
"$IAC" loadtest "$T/deadflow.lua" -json "$T/deadflow.json" > "$T/deadflow.out" || fail "dead flow run exited $?"
# connect failures back off (10, 20, 40... ms): a few per VU in 0.5 s
[ "$(json "$T/deadflow.json" "d['checks']['refused seen']['fails'] == 0 and d['checks']['refused seen']['passes'] >= 4")" = True ] ||
	fail "a flow did not see its connect errors: $(cat "$T/deadflow.out")"

# per-request timeout: counted by kind, the VU goes on
cat > "$T/timeout.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "slow" { path = "/slow/t" }
load { vus = 2, duration = "1s", timeout = "100ms", max_failed = false }   -- every request times out
EOF2
"$IAC" loadtest "$T/timeout.lua" -json "$T/timeout.json" > /dev/null || fail "timeout run exited $?"
[ "$(json "$T/timeout.json" "d['errors']['by_kind'].get('timeout', 0) >= 4")" = True ] ||
	fail "timeouts not counted: $(json "$T/timeout.json" "d['errors']")"

# Ctrl-C: stops, still reports, exit 0
printf 'target "http://127.0.0.1:%s/1k.html"\nload { vus = 2, duration = "30s" }\n' "$PORT" > "$T/long.lua"
: > "$T/nginx/access.log"
"$IAC" loadtest "$T/long.lua" -json "$T/int.json" > "$T/int.out" &
LT=$!
wait_logged 10   # the run is under way
sleep 0.5
kill -INT "$LT"
rc=0
wait "$LT" || rc=$?
[ "$rc" = 0 ] || fail "an interrupted run must still exit 0, got $rc"
[ "$(json "$T/int.json" "d['interrupted'] and d['duration_s'] < 10 and d['requests'] > 0")" = True ] ||
	fail "the interrupted run was not reported: $(json "$T/int.json" "(d['interrupted'], d['duration_s'], d['requests'])")"

# help
"$IAC" help loadtest > "$T/help" || fail "help exited $?"
for f in -duration -vus -rate -threads -json -html -quiet "exit codes" 99; do
	grep -q -- "$f" "$T/help" || fail "help does not mention $f"
done
echo ok
