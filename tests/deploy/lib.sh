# tests/deploy/lib.sh: end-to-end blue/green tests on the test bed
# (sourced by tests/deploy/test_*.sh and bench/cutover-e2e, not run).
#
# The test bed (tests/testbed/testbed.sh): h1 runs HAProxy (module haproxy),
# h2..h5 run the app pool (module app_pool, colours = "ports": one nginx per
# colour per host, blue on :8001, green on :8101). Each nginx answers
#   /        "VERSION COLOUR NAME"   (200)
#   /health  "ok"                    (200)
# and its version string decides how it misbehaves:
#   *sick*   /health answers 500 (fails the health gate)
#   *err5*   5 % of / answer 500, chosen by request id (fails the analysis)
# iac runs in the controller namespace (testbed.sh exec), with the config in
# $WORK/main.lua written by write_main. wrk loads HAProxy from there too.
#
#   bed_up                       the 5 hosts, torn down at exit
#   iac ARGS...                  iac in the controller namespace, cwd $WORK
#   iac_bg OUT ARGS...           the same in the background; sets BG_PID
#   ctl CMD...                   any command in the controller namespace
#   on_host N CMD                a shell command on host hN, behind iac's back
#   answers N                    N requests through HAProxy, one body a line
#   expect_version V N WHAT      N answers, all from version V
#   load_start / load_stop / load_expect_clean WHAT    wrk -c50 through HAProxy
#                                (tests/lib/load.sh), with count.lua
#   dep_attr KEY                 a deploy.blue_green.web attribute from state
#   fail / fail_timing / ok / finish
#
# Skips (exit 77, "skipped: ...": ctest shows it as Not Run) only without root or network namespaces.
# Everything started is stopped by PID at exit (trap); IAC_KEEP_WORK=1 keeps
# $WORK (the bed is still torn down).
set -u
LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$LIB_DIR/../lib/testbed.sh"
. "$LIB_DIR/../lib/load.sh"
: "${IAC:?IAC must point to the iac binary}"
t_need haproxy nginx wrk curl

WORK=$(mktemp -d /tmp/iac-deploy-e2e.XXXXXX)
BED="$WORK/bed"
FAILS=0
BG_PIDS=()      # processes this script started in the background (wrk, iac)

cleanup() {
	local rc=$? p
	# INT first: wrk prints its summary, iac stops cleanly
	for p in "${BG_PIDS[@]}"; do t_stop_pid "$p" INT; done
	for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	t_bed_down "$BED"
	if [ "${IAC_KEEP_WORK:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK" || exit 1

bed_up() {
	t_bed_up "$BED" 5 "d$$"
	LB=$(addr 1)
}

ctl() { bash "$TESTBED" exec "$BED" "$@"; }
iac() { bash "$TESTBED" exec "$BED" "$IAC" -no-color "$@"; }
# iac in the background, output to OUT; BG_PID is iac itself (testbed.sh and
# ip netns exec both exec), so signals reach it.
iac_bg() {
	local out=$1
	shift
	bash "$TESTBED" exec "$BED" "$IAC" -no-color "$@" >"$out" 2>&1 &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# wait_gone PID SECONDS: until PID has exited (1 if still there after
# SECONDS); WAITED = whole seconds waited
wait_gone() {
	local t0=$SECONDS
	while kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; do
		[ $((SECONDS - t0)) -ge "$2" ] && { WAITED=$((SECONDS - t0)); return 1; }
		sleep 0.2
	done
	WAITED=$((SECONDS - t0))
}

# nsenter into the host's namespaces: no ssh, so it works whatever iac did

# wall time of a command in the controller namespace, in ms, measured in
# there (the namespace switch is not counted); output to OUT, status kept
timed() {   # OUT CMD... ; sets TIMED_MS and TIMED_RC
	local out=$1
	shift
	ctl bash -c 't0=$(date +%s%N); "$@" > "$0" 2>&1; rc=$?; echo "$(( ($(date +%s%N) - t0) / 1000000 )) $rc" > "$0.t"' \
		"$out" "$@"
	read -r TIMED_MS TIMED_RC <"$out.t"
}

# FLAG_HOSTS: where flag checkout_v2 goes (/etc/app/flags.json): "lb" (the
# default: docs/flags.md's example) or "lb app1 app2 app3 app4".
# API_STACK=1: a second deployment "api" (its own pool on :9001/:9101 of the
# app hosts and HAProxy "lb2" on h1 port 81, API on 9997), with variables
# version2 and analysis2.
write_main() {
	local apps="" i h targets=""
	for h in ${FLAG_HOSTS:-lb}; do
		targets+="{ host = $h, path = \"/etc/app/flags.json\" }, "
	done
	for i in 2 3 4 5; do
		apps+="local app$((i - 1)) = host \"app$((i - 1))\" { address = \"$(addr $i)\", labels = { role = \"app\" } }"$'\n'
	done
	cat >"$WORK/main.lua" <<EOF
provider "ssh" { user = "root", private_key = "bed/id_ed25519", known_hosts = "bed/known_hosts", connect_timeout = "5s" }
variable "version"           { default = "v1" }
variable "client_timeout"    { default = "30s" }
variable "analysis_duration" { default = "2s" }
variable "health_timeout"    { default = "10s" }
variable "on_failure"        { default = "stop" }
variable "flag_on_percent"   { default = 10 }
variable "slow"              { default = "", description = "seconds: an unrelated resource that takes that long (holds the lock)" }
if var.slow ~= "" then resource "local.exec" "slow" { create = "sleep " .. var.slow } end

local lb1 = host "lb1" { address = "$LB" }
$apps
local pool = app_pool "web" {
  hosts = hosts { role = "app" }, colours = "ports", base_port = 8001, green_offset = 100,
  files = {
    ["/srv/web/{name}/nginx.conf"] = [[
daemon on; worker_processes 1; pid /srv/web/{name}/nginx.pid; error_log /srv/web/{name}/error.log;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000;
  client_body_temp_path /srv/web/{name}/tmp; proxy_temp_path /srv/web/{name}/tmp;
  fastcgi_temp_path /srv/web/{name}/tmp; uwsgi_temp_path /srv/web/{name}/tmp; scgi_temp_path /srv/web/{name}/tmp;
  map "{version}" \$sick  { ~sick 1; default 0; }
  map "{version}" \$flaky { ~err5 1; default 0; }
  split_clients "\${request_id}" \$unlucky { 5% 1; * 0; }
  map "\$flaky\$unlucky" \$fail { 11 1; default 0; }
  server {
    listen {address}:{port};
    default_type text/plain;
    location = /health { if (\$sick) { return 500 "sick\n"; } return 200 "ok\n"; }
    location / { if (\$fail) { return 500 "error\n"; } return 200 "{version} {colour} {name}\n"; }
  }
}
]],
  },
  start = "mkdir -p /srv/web/{name}/tmp && nginx -c /srv/web/{name}/nginx.conf -e /srv/web/{name}/error.log",
  pidfile = "/srv/web/{name}/nginx.pid",
}

local lb = haproxy "lb" {
  host = lb1, bind = "0.0.0.0:80", pool = pool,
  health = { path = "/health", interval = "100ms", rise = 2, fall = 2 },
  timeouts = { client = var.client_timeout },
  ${LB_EXTRA:-}
}

deployment "web" {
  strategy = "blue_green", version = var.version, pool = pool, lb = lb,
  health   = { path = "/health", expect = 200, interval = "200ms", healthy = 3, timeout = var.health_timeout },
  analysis = { duration = var.analysis_duration, max_error_rate = 0.01, max_p99 = "500ms", ${ANALYSIS_EXTRA:-} },
  scale_down_delay = "1h", on_failure = var.on_failure, drain_timeout = "20s",
  flags_on_rollback = { checkout_v2 = "off" },
}

flag "checkout_v2" {
  kind = "release", variants = { on = true, off = false }, default = "off",
  rollout = { on = var.flag_on_percent }, targeting_key = "userId",
  deliver = { file = { $targets } },
}
EOF
	[ "${API_STACK:-0}" = 1 ] || return 0
	cat >>"$WORK/main.lua" <<'EOF'

variable "version2"  { default = "v1" }
variable "analysis2" { default = "1s" }
local pool2 = app_pool "api" {
  hosts = hosts { role = "app" }, colours = "ports", base_port = 9001, green_offset = 100,
  files = {
    ["/srv/api/{name}/nginx.conf"] = [[
daemon on; worker_processes 1; pid /srv/api/{name}/nginx.pid; error_log /srv/api/{name}/error.log;
events { }
http {
  access_log off;
  client_body_temp_path /srv/api/{name}/tmp; proxy_temp_path /srv/api/{name}/tmp;
  fastcgi_temp_path /srv/api/{name}/tmp; uwsgi_temp_path /srv/api/{name}/tmp; scgi_temp_path /srv/api/{name}/tmp;
  server {
    listen {address}:{port};
    default_type text/plain;
    location = /health { return 200 "ok\n"; }
    location / { return 200 "{version} {colour} {name}\n"; }
  }
}
]],
  },
  start = "mkdir -p /srv/api/{name}/tmp && nginx -c /srv/api/{name}/nginx.conf -e /srv/api/{name}/error.log",
  pidfile = "/srv/api/{name}/nginx.pid",
}
local lb2 = haproxy "lb2" {
  host = lb1, bind = "0.0.0.0:81", pool = pool2, api_port = 9997,
  health = { path = "/health", interval = "100ms", rise = 2, fall = 2 },
}
deployment "api" {
  strategy = "blue_green", version = var.version2, pool = pool2, lb = lb2,
  health   = { path = "/health", expect = 200, interval = "200ms", healthy = 3, timeout = "10s" },
  analysis = { duration = var.analysis2, max_error_rate = 0.01 },
}
EOF
}

# bed + config + v1 live on blue
setup() {
	bed_up
	write_main
	iac apply -auto-approve >"$WORK/apply-v1.out" 2>&1 || { cat "$WORK/apply-v1.out" >&2; fail "first apply (v1)"; }
	expect_version v1 8 "after the first apply"
}

# N requests through HAProxy from the controller, one answer body a line
# ("ERR CODE" for anything but a 200)
cat >"$WORK/get.sh" <<'EOF'
for i in $(seq "$1"); do
	out=$(curl -s -m 3 -w '\n%{http_code}' "$2")
	code=${out##*$'\n'}
	body=${out%$'\n'*}
	if [ "$code" = 200 ]; then printf '%s\n' "${body%$'\n'}"; else echo "ERR $code"; fi
done
EOF
answers() { ctl bash "$WORK/get.sh" "$1" "http://$LB/"; }

expect_version() {   # V N WHAT
	local got bad
	got=$(answers "$2")
	bad=$(echo "$got" | awk -v v="$1" '$1 != v')
	if [ -n "$bad" ]; then
		check_fail "$3: expected every answer from $1, got: $(echo "$got" | tr '\n' '|')"
		return 1
	fi
	ok "$3: $2 answers from $1 on $(echo "$got" | awk '{print $2}' | sort -u | paste -sd,)"
}

# ---- load: wrk -t2 -c50 (keep-alive) through HAProxy ----------------------
# A wrk script counts every status code (a second count, besides wrk's own
# "Non-2xx or 3xx" line) and the versions answering.
cat >"$WORK/count.lua" <<'EOF'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {}; versions = {} end
function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
  local v = body and body:match("^(%S+)") or "?"
  if status ~= 200 then v = "(" .. status .. ")" end
  versions[v] = (versions[v] or 0) + 1
end
function done(summary, latency, requests)
  local c, v = {}, {}
  for _, t in ipairs(threads) do
    for k, n in pairs(t:get("codes")) do c[k] = (c[k] or 0) + n end
    for k, n in pairs(t:get("versions")) do v[k] = (v[k] or 0) + n end
  end
  for k, n in pairs(c) do io.write(string.format("status %s %d\n", k, n)) end
  for k, n in pairs(v) do io.write(string.format("version %s %d\n", k, n)) end
  io.write(string.format("errors connect=%d read=%d write=%d timeout=%d status=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout, summary.errors.status))
end
EOF

# wrk through HAProxy from the controller namespace (testbed.sh and ip netns
# exec both exec, so $! is wrk), counting answers by status and version
load_url() { echo "http://$LB/"; }
WRK_OUT=$WORK/wrk.out
LOAD_SECONDS=300
LOAD_EXEC=(bash "$TESTBED" exec "$BED")
LOAD_WRK_ARGS=(-s "$WORK/count.lua")
LOAD_PIDS=BG_PIDS

# ---- state ----------------------------------------------------------------
state_json() { iac show -json >"$WORK/state.json" 2>"$WORK/state.err" || { cat "$WORK/state.err" >&2; fail "iac show -json"; }; }
# dep_attr KEY: an attribute of deploy.blue_green.web from `iac show -json`
# (strings as is, anything else as compact JSON; null as "null")
dep_attr() {
	state_json
	python_json "$WORK/state.json" "
r = [r for r in d['resources'] if r['address'] == 'deploy.blue_green.web'][0]['attributes'].get(sys.argv[2])
print(r if isinstance(r, str) else json.dumps(r, separators=(',', ':')))" "$1"
}
# python_json FILE CODE ARGS...: CODE sees the parsed FILE as d
python_json() {
	local f=$1 code=$2
	shift 2
	/usr/bin/python3 -c "import json, sys
d = json.load(open(sys.argv[1]))
$code" "$f" "$@"
}

# HAProxy's runtime API on h1, from the controller (bash's /dev/tcp: no tool
# needed); "show stat" rows of the app backend as "server status"
lb_cmd() {
	ctl bash -c 'exec 3<>/dev/tcp/'"$LB"'/9999 && printf "%s\n" "$0" >&3 && cat <&3' "$1"
}
server_states() { lb_cmd "show stat" | awk -F, '$1 == "app" && $2 != "BACKEND" { print $2, $18 }'; }

# the nginx of instance NAME (blue1..green4) runs on its host
inst_host() {   # NAME -> host number of the test bed
	echo $((${1//[a-z]/} + 1))
}
inst_alive() {   # NAME
	on_host "$(inst_host "$1")" "kill -0 \$(cat /srv/web/$1/nginx.pid 2>/dev/null) 2>/dev/null"
}
