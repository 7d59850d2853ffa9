# Ramping executors reach their targets: ramping-vus goes 0 -> 20 -> 20 -> 0
# VUs and the per-second series shows it; ramping-arrival-rate delivers the
# iterations its stages integrate to.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
start_nginx "$PORT"

cat > "$T/ramp.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "s" { path = "/1k.html", think = "20ms" }
load { executor = "ramping-vus", stages = { { "1s", 20 }, { "1s", 20 }, { "1s", 0 } } }
EOF2
"$IAC" loadtest "$T/ramp.lua" -json "$T/ramp.json" > "$T/ramp.out" || fail "ramping-vus run exited $?"
"$PY" - "$T/ramp.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
vus = [p["vus"] for p in d["timeseries"]]
print("ramping-vus: VUs per second", vus, "max", d["vus_max"])
assert d["vus_max"] == 20, d["vus_max"]
assert vus[0] >= 15 and vus[1] >= 19, vus     # up to 20 by the end of stage 1, held in stage 2 (the most VUs in each second)
# the ramp-down shows in the requests below (its second's peak is still 20)
# with 20 ms think time, rps follows the VU count: the middle second is busiest
rps = [p["requests"] for p in d["timeseries"]]
assert rps[1] > rps[0] and rps[1] > rps[2], rps
EOP
[ $? = 0 ] || fail "ramping-vus did not follow its stages"

cat > "$T/rate.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "s" { path = "/1k.html" }
load { executor = "ramping-arrival-rate", start_rate = 0, max_vus = 50,
       stages = { { "1s", 200 }, { "1s", 200 }, { "1s", 0 } } }
EOF2
"$IAC" loadtest "$T/rate.lua" -json "$T/rate.json" > "$T/rate.out" || fail "ramping-arrival-rate run exited $?"
"$PY" - "$T/rate.json" <<'EOP'
import json, sys
d = json.load(open(sys.argv[1]))
per_sec = [p["requests"] for p in d["timeseries"]]
total = d["iterations"] + d["dropped_iterations"]
print("ramping-arrival-rate: iterations per second", per_sec, "total due", total)
# 0->200 over 1 s (100), 200 for 1 s (200), 200->0 over 1 s (100)
assert abs(total - 400) <= 2, total
assert d["dropped_iterations"] == 0
# counted when they complete, so a busy machine may move a few across a boundary
assert abs(per_sec[0] - 100) <= 20 and abs(per_sec[1] - 200) <= 20 and abs(per_sec[2] - 100) <= 20, per_sec
EOP
[ $? = 0 ] || fail "ramping-arrival-rate did not follow its stages"
echo ok
