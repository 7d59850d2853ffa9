# Coordinated omission: nginx paused for 1 s (SIGSTOP/SIGCONT) during an
# open-model run (constant-arrival-rate) shows up in p99, because latency
# counts from when each request was due. The same pause in a closed-model
# run barely moves p99: its few stalled VUs simply send less. Also: an
# arrival rate the VUs cannot keep up with drops iterations, counted.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
start_nginx "$PORT"

pause_nginx() {   # $1 seconds after the run's first request, stop nginx for exactly 1 s
	: > "$T/nginx/access.log"
	wait_logged 1
	sleep "$1"
	kill -STOP "$NGINX_PID"
	sleep 1
	kill -CONT "$NGINX_PID"
}

cat > "$T/open.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "plain" { path = "/1k.html" }
load { executor = "constant-arrival-rate", rate = 200, duration = "3s", max_vus = 400 }
EOF2
pause_nginx 0.8 &
PAUSER=$!
"$IAC" loadtest "$T/open.lua" -json "$T/open.json" > "$T/open.out" || fail "open run exited $?"
wait "$PAUSER"
cat "$T/open.out"
"$PY" - "$T/open.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
lat = d["latency_ms"]
ts = d["timeseries"]
print("open model: p99 %.0f ms, max %.0f ms, worst second p99 %.0f ms" % (
    lat["p99"], lat["max"], max(p["p99_ms"] or 0 for p in ts)))
# 600 requests were due over 3 s, 200 of them during the pause, each
# waiting from its due time to the resume: latencies spread over 0..1 s.
# The top 1 % of all requests are those due in the pause's first ~30 ms,
# so p99 is 1 s minus about 30 ms; max and the p99 of the second the
# server came back are the full second.
assert d["requests"] == 600, d["requests"]
assert d["dropped_iterations"] == 0
assert lat["max"] >= 1000, lat
assert lat["p99"] >= 900, lat
assert max(p["p99_ms"] or 0 for p in ts) >= 950, ts
assert lat["p90"] >= 500, lat        # a tenth of all requests waited half a second or more
EOP
[ $? = 0 ] || fail "the pause does not show in the open-model percentiles"

cat > "$T/closed.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "plain" { path = "/1k.html" }
load { executor = "constant-vus", vus = 10, duration = "3s" }
EOF2
pause_nginx 0.8 &
PAUSER=$!
"$IAC" loadtest "$T/closed.lua" -json "$T/closed.json" > "$T/closed.out" || fail "closed run exited $?"
wait "$PAUSER"
"$PY" - "$T/closed.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
lat = d["latency_ms"]
print("closed model, same pause: p99 %.1f ms, max %.0f ms" % (lat["p99"], lat["max"]))
assert lat["max"] >= 1000, lat        # the 10 stalled requests
assert lat["p99"] < 500, lat          # ... hidden among thousands of quick ones
EOP
[ $? = 0 ] || fail "closed-model run did not behave as expected"

# more arrivals than VUs can serve: dropped, not silently late
cat > "$T/drop.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "slow" { path = "/slow/z" }
load { executor = "constant-arrival-rate", rate = 50, duration = "1s", pre_allocated_vus = 2, max_vus = 5 }
EOF2
"$IAC" loadtest "$T/drop.lua" -json "$T/drop.json" > "$T/drop.out" || fail "drop run exited $?"
dropped=$(json "$T/drop.json" "d['dropped_iterations']")
done_=$(json "$T/drop.json" "d['iterations']")
echo "drop: $done_ iterations, $dropped dropped"
# 5 VUs x 1 s / 0.3 s per request: about 17 iterations can start, 50 are due
[ "$dropped" -ge 25 ] || fail "expected at least 25 dropped iterations, got $dropped"
[ $((dropped + done_)) = 50 ] || fail "iterations + dropped = $((dropped + done_)), expected 50"
grep -q "dropped" "$T/drop.out" || fail "the summary does not mention dropped iterations"
# plain and flow scenarios mixed in the open model: each iteration picks
# its scenario by weight, on whichever VU is free
cat > "$T/mix.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "plain" { weight = 1, path = "/1k.html", name = "plain" }
scenario "flow" { weight = 3, flow = function(u) local r = u:get("/1k.html", { name = "flow" }); u:check(#r.body == 1024, "body") end }
load { executor = "constant-arrival-rate", rate = 400, duration = "1s", max_vus = 30 }
EOF2
"$IAC" loadtest "$T/mix.lua" -json "$T/mix.json" > /dev/null || fail "mix run exited $?"
[ "$(json "$T/mix.json" "(d['endpoints']['plain']['requests'], d['endpoints']['flow']['requests'], d['checks']['body']['fails'], d['dropped_iterations'])")" = "(100, 300, 0, 0)" ] ||
	fail "mixed scenarios: $(json "$T/mix.json" "(d['endpoints'], d['dropped_iterations'])")"
echo ok
