# Bottleneck findings on deliberately built bottlenecks: real HAProxy in
# front of two backends (tests/loadtest/bottleneck_app.py), observed each
# second; the report's first finding must name the cause:
#   one slow server        -> server 'app/s2'
#   a queue at HAProxy     -> queue (both servers at maxconn)
#   one CPU-starved server -> server 'app/s2' (its process in a CPU cgroup at
#                             3 % of a core: a container at its limit)
#   the load generator     -> client (Lua burning CPU in every iteration)
# Loopback only; the backends and HAProxy are stopped by PID. Hosts' CPU is
# not observed here: the loopback "hosts" are this machine, busy with other
# work; the CPU rules are covered by tests/unit/test_loadtest_findings.c.
. "$(dirname "$0")/lib.sh"
command -v haproxy >/dev/null || fail "haproxy is not installed"
APP=$(dirname "$0")/bottleneck_app.py

# The starved-server case needs a CPU cgroup of its own (v1 cpu controller or
# v2 cpu.max). Without one that case cannot run: the whole test is skipped
# rather than passing without it.
CG=
if [ -w /sys/fs/cgroup/cpu ] && mkdir "/sys/fs/cgroup/cpu/iac-lt-$$" 2>/dev/null; then
	CG=/sys/fs/cgroup/cpu/iac-lt-$$
	echo 100000 >"$CG/cpu.cfs_period_us" && echo 3000 >"$CG/cpu.cfs_quota_us" || { rmdir "$CG"; CG=; }
elif [ -w /sys/fs/cgroup/cgroup.subtree_control ] && mkdir "/sys/fs/cgroup/iac-lt-$$" 2>/dev/null; then
	CG=/sys/fs/cgroup/iac-lt-$$
	echo "3000 100000" >"$CG/cpu.max" || { rmdir "$CG"; CG=; }
fi
[ -n "$CG" ] || { echo "SKIP: no writable CPU cgroup here: the starved-server case cannot run" >&2; exit 77; }
trap 'cleanup; rmdir "$CG" 2>/dev/null' EXIT

start_app() {   # start_app PORT DELAY_MS BURN_MS: pid in APP_PID
	"$PY" "$APP" "$1" "$2" "$3" 2>>"$T/app.log" &
	APP_PID=$!
	PIDS+=("$APP_PID")
	wait_port "$1"
}

start_haproxy() {   # start_haproxy MAXCONN PORT1 PORT2
	HPORT=$(free_port)
	cat >"$T/haproxy.cfg" <<EOF2
global
  stats socket $T/haproxy.sock mode 600 level admin
  maxconn 4000
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
  balance roundrobin
  server s1 127.0.0.1:$2 maxconn $1
  server s2 127.0.0.1:$3 maxconn $1
EOF2
	haproxy -f "$T/haproxy.cfg" -db >"$T/haproxy.log" 2>&1 &
	HAP_PID=$!
	PIDS+=("$HAP_PID")
	wait_port "$HPORT"
}

stop() { local p; for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

# run NAME LOAD [FLOW] [FLAGS]: the scenario against HAProxy, JSON in $T/NAME.json
run() {
	local flow=${3:-}
	[ -n "$flow" ] || flow='path = "/"'
	cat >"$T/$1.lua" <<EOF2
target "http://127.0.0.1:$HPORT"
scenario "s" { $flow }
load { $2 }
observe { haproxy = "$T/haproxy.sock" }
EOF2
	"$IAC" loadtest "$T/$1.lua" -json "$T/$1.json" ${4:-} >"$T/$1.out" 2>&1 || true
	grep -A6 "^findings" "$T/$1.out" || true
}

# first KIND [TEXT]: the first finding is of KIND and says TEXT
first() {
	"$PY" - "$T/$CASE.json" "$1" "${2:-}" <<'EOP' || { cat "$T/$CASE.out"; fail "$CASE: expected a first finding '$1' ${2:-}"; }
import json, sys
d = json.load(open(sys.argv[1]))
f = d["findings"]
assert f, "no findings"
assert f[0]["kind"] == sys.argv[2], f
assert sys.argv[3] in f[0]["text"], f
EOP
	ok "$CASE: $(sed -n 's/.*"text": "\(.*\)".*/\1/p' "$T/$CASE.json" | head -1)"
}

P1=$(free_port) P2=$(free_port)
CASE=slow-server
start_app "$P1" 0 0; A1=$APP_PID
start_app "$P2" 150 0; A2=$APP_PID
start_haproxy 100 "$P1" "$P2"
run "$CASE" 'executor = "constant-arrival-rate", rate = 40, duration = "6s", max_vus = 100'
first server "server 'app/s2' answered slowly"
stop "$HAP_PID" "$A1" "$A2"

CASE=lb-queue
start_app "$P1" 200 0; A1=$APP_PID
start_app "$P2" 200 0; A2=$APP_PID
start_haproxy 2 "$P1" "$P2"
run "$CASE" 'executor = "constant-arrival-rate", rate = 40, duration = "6s", max_vus = 300'
first queue "requests queued in HAProxy"
stop "$HAP_PID" "$A1" "$A2"

CASE=starved-server
start_app "$P1" 0 10; A1=$APP_PID
start_app "$P2" 0 10; A2=$APP_PID
echo "$A2" >"$CG/cgroup.procs" || fail "cannot move the server into $CG"
start_haproxy 100 "$P1" "$P2"
run "$CASE" 'executor = "constant-arrival-rate", rate = 10, duration = "6s", max_vus = 100'
first server "server 'app/s2' answered slowly"
stop "$HAP_PID" "$A1" "$A2"

CASE=client
start_app "$P1" 0 0; A1=$APP_PID
start_app "$P2" 0 0; A2=$APP_PID
start_haproxy 100 "$P1" "$P2"
cat >"$T/client.flow" <<'EOF2'
flow = function(u) local x = 0 for i = 1, 3000000 do x = x + i end u:get("/") end
EOF2
# one worker thread with 8 VUs that burn CPU: that thread is always busy
run "$CASE" 'vus = 8, duration = "5s"' "$(cat "$T/client.flow")" "-threads 1"
first client "bottleneck: the load generator"
stop "$HAP_PID" "$A1" "$A2"
echo ok
