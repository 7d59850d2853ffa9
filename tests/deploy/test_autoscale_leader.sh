#!/bin/bash
# The autoscaler is not a single point of failure: two `iac autoscale`
# controllers on one configuration, a lease in a real etcd (tests/lib/etcd.sh)
# deciding which one acts. On this machine (HAProxy and nginx on 127.0.0.1,
# no test bed needed):
#  - exactly one is the leader and makes decisions; the other says it
#    stands by and who holds the lease, and decides nothing;
#  - the leader killed with kill -9: the other takes over within the lease
#    TTL (2 s) plus its one-second retry, and goes on deciding;
#  - a controller stopped with Ctrl-C gives the lease up at once.
set -u
. "$(dirname "$0")/../lib/common.sh"
: "${IAC:?IAC must point to the iac binary}"
t_need haproxy nginx curl etcd
TMP=$(mktemp -d /tmp/iac-autoscale-leader.XXXXXX)
PIDS=()
cleanup() {
	local rc=$? p
	for p in "${PIDS[@]}"; do t_stop_pid "$p" INT; done
	[ -d "$TMP/d" ] && (cd "$TMP/d" && "$IAC" destroy -auto-approve >/dev/null 2>&1)
	etcd_stop_all 2>/dev/null
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. "$(dirname "$0")/../lib/etcd.sh"
etcd_single

LB_PORT=$(etcd_free_port)
BASE=$(etcd_free_port)
D=$TMP/d
mkdir -p "$D"
cat >"$D/main.lua" <<EOF
local pool = app_pool "web" {
  address = "127.0.0.1", base_port = $BASE, green_offset = 10, vars = { root = "$TMP/app" },
  autoscale = { min = 1, max = 3, target = 10, scale_up = { period = "1s" }, scale_down = { stabilization = "5s" } },
  files = {
    ["{root}/{name}/nginx.conf"] = [[
daemon on; worker_processes 1; pid {root}/{name}/nginx.pid; error_log {root}/{name}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path {root}/{name}/tmp; proxy_temp_path {root}/{name}/tmp;
  fastcgi_temp_path {root}/{name}/tmp; uwsgi_temp_path {root}/{name}/tmp; scgi_temp_path {root}/{name}/tmp;
  server { listen {address}:{port}; default_type text/plain;
    location = /health { return 200 "ok\n"; } location / { return 200 "{version} {name}\n"; } }
}
]],
  },
  start = "mkdir -p {root}/{name}/tmp && nginx -p {root}/{name} -c {root}/{name}/nginx.conf -e {root}/{name}/error.log",
  pidfile = "{root}/{name}/nginx.pid",
}
local lb = haproxy "lb" { bind = "127.0.0.1:$LB_PORT", pool = pool, health = { path = "/health", interval = "100ms", rise = 2, fall = 2 } }
deployment "web" { version = "v1", pool = pool, lb = lb,
  health = { path = "/health", expect = 200, interval = "100ms", healthy = 2, timeout = "20s" } }
EOF
(cd "$D" && "$IAC" -no-color apply -auto-approve >"$TMP/apply.out" 2>&1) || { cat "$TMP/apply.out" >&2; fail "apply"; }
curl -sf "http://127.0.0.1:$LB_PORT/" | grep -q "^v1 blue1" || fail "v1 not served through HAProxy"

start_ctl() {   # NAME
	(cd "$D" && exec "$IAC" -no-color autoscale -json -etcd "$ETCD_URL" -lease-ttl 2s -id "$1" >"$TMP/$1.out" 2>&1) &
	PIDS+=($!)
	eval "PID_$1=$!"
}
decisions() { grep -c '"deployment"' "$TMP/$1.out"; }
leads() { grep -c '"leader"' "$TMP/$1.out"; }

start_ctl A
for _ in $(seq 1 50); do [ "$(leads A)" -ge 1 ] && break; sleep 0.1; done
start_ctl B
sleep 5
echo "--- A ---"; cat "$TMP/A.out"; echo "--- B ---"; cat "$TMP/B.out"
[ "$(leads A)" = 1 ] && [ "$(decisions A)" -ge 2 ] && ok "A leads and decides ($(decisions A) decisions in 5 s)" ||
	check_fail "A should lead and decide"
[ "$(leads B)" = 0 ] && [ "$(decisions B)" = 0 ] && grep -q '"skipped":"standing by, another controller leads: .*held by .*iac autoscale A' "$TMP/B.out" &&
	ok "B stands by, names A as the holder, decides nothing" || check_fail "B should stand by"

# ---- the leader dies ------------------------------------------------------------
NB=$(decisions B)
T0=$(date +%s%N)
kill -9 "$PID_A"
wait "$PID_A" 2>/dev/null
TOOK=""
for _ in $(seq 1 100); do
	if [ "$(leads B)" -ge 1 ]; then TOOK=$((($(date +%s%N) - T0) / 1000000)); break; fi
	sleep 0.05
done
[ -n "$TOOK" ] || { cat "$TMP/B.out" >&2; fail "B did not take over within 5 s of A's death"; }
echo "takeover: ${TOOK} ms (lease TTL 2 s)"
[ "$TOOK" -le 4000 ] && ok "A killed (-9): B took over in $TOOK ms (TTL 2 s + 1 s retry)" ||
	fail_timing "B took over in $TOOK ms (> 4 s)"
sleep 3
[ "$(decisions B)" -gt "$NB" ] && ok "B decides now ($(($(decisions B) - NB)) decisions)" || check_fail "B does not decide"
(cd "$D" && "$IAC" -no-color status autoscale) >"$TMP/status.out" 2>&1 || check_fail "status autoscale"
grep -q "deploy.blue_green.web: serving 1, desired 1" "$TMP/status.out" && ok "status after the takeover: $(head -1 "$TMP/status.out")" ||
	{ cat "$TMP/status.out" >&2; check_fail "status"; }

# ---- Ctrl-C gives the lease up at once ------------------------------------------
start_ctl C
sleep 1.5
T0=$(date +%s%N)
t_stop_pid "$PID_B" INT
TOOK=""
for _ in $(seq 1 60); do
	if [ "$(leads C)" -ge 1 ]; then TOOK=$((($(date +%s%N) - T0) / 1000000)); break; fi
	sleep 0.05
done
[ -n "$TOOK" ] && [ "$TOOK" -le 2500 ] && ok "B stopped (Ctrl-C) revokes its lease: C leads after $TOOK ms" ||
	{ cat "$TMP/C.out" >&2; check_fail "C did not take over quickly after B's Ctrl-C (${TOOK:-never})"; }
t_stop_pid "$PID_C" INT

# ---- the other metrics: host CPU, a PromQL expression without its URL, requests/s -------
sed -i 's/target = 10,/target = 10, metric = "cpu",/' "$D/main.lua"
(cd "$D" && "$IAC" -no-color apply -auto-approve >"$TMP/apply-cpu.out" 2>&1) || { cat "$TMP/apply-cpu.out" >&2; fail "apply (cpu)"; }
(cd "$D" && "$IAC" -no-color autoscale -once) >"$TMP/cpu.out" 2>&1
grep -Eq "deploy.blue_green.web: cpu [0-9.]+ \(target 10\), current 1, desired [1-3]" "$TMP/cpu.out" &&
	ok "metric = \"cpu\": $(cut -d' ' -f2-6 "$TMP/cpu.out")" || { cat "$TMP/cpu.out" >&2; check_fail "cpu metric"; }
sed -i 's/metric = "cpu"/metric = "sum(rate(http_requests_total[1m]))"/' "$D/main.lua"
(cd "$D" && "$IAC" -no-color apply -auto-approve >"$TMP/apply-prom.out" 2>&1) || { cat "$TMP/apply-prom.out" >&2; fail "apply (promql)"; }
(cd "$D" && "$IAC" -no-color autoscale -once) >"$TMP/prom.out" 2>&1
grep -Fq "unknown (metric 'sum(rate(http_requests_total[1m]))' is a PromQL expression but autoscale.prometheus (the URL) is not set)" "$TMP/prom.out" && grep -q "metric unavailable: stay at [1-3]$" "$TMP/prom.out" &&
	ok "a PromQL metric without autoscale.prometheus: unknown, no change, and why" || { cat "$TMP/prom.out" >&2; check_fail "promql without url"; }

# requests per second per server: a fixed 60 requests/s from iac loadtest,
# target 10 per server: the metric is the arrival rate over the servers up
# (60 / current, within 30 %), and the pool is asked to grow to max (3)
sed -i 's/metric = "sum(rate(http_requests_total\[1m\]))"/metric = "haproxy_rate_per_server"/' "$D/main.lua"
grep -q 'metric = "haproxy_rate_per_server"' "$D/main.lua" || fail "could not set the rate metric"
(cd "$D" && "$IAC" -no-color apply -auto-approve >"$TMP/apply-rate.out" 2>&1) || { cat "$TMP/apply-rate.out" >&2; fail "apply (rate)"; }
cat >"$TMP/rate.lua" <<LUA
target "http://127.0.0.1:$LB_PORT"
scenario "s" { path = "/" }
load { executor = "constant-arrival-rate", rate = 60, duration = "8s", max_vus = 20 }
LUA
"$IAC" loadtest "$TMP/rate.lua" >"$TMP/rate-load.out" 2>&1 &
LOAD_PID=$!
sleep 3
(cd "$D" && "$IAC" -no-color autoscale -once) >"$TMP/rate.out" 2>&1
wait "$LOAD_PID"
cat "$TMP/rate.out"
read -r V CUR <<<"$(sed -nE 's/.*haproxy_rate_per_server ([0-9.]+) \(target 10\), current ([0-9]+),.*/\1 \2/p' "$TMP/rate.out" | head -1)"
if [ -n "${V:-}" ] && "$T_PY" -c "import sys; v, c = float(sys.argv[1]), int(sys.argv[2]); sys.exit(not 0.7 * 60 <= v * c <= 1.3 * 60)" "$V" "$CUR" &&
	grep -q "desired 3" "$TMP/rate.out"; then
	ok "metric = \"haproxy_rate_per_server\": $V requests/s on each of $CUR server(s) under 60/s; desired 3"
else
	cat "$TMP/rate-load.out" >&2
	check_fail "rate metric: '${V:-?}' per server on ${CUR:-?} under 60 requests/s"
fi
finish
