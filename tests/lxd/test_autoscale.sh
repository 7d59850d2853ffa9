#!/usr/bin/env bash
# The autoscaler makes capacity on LXD: app_pool { instances = lxd_instances
# {...} } behind a local HAProxy. The pool's first instance is an
# lxd.instance of the configuration; the spare does not exist until
# `iac autoscale` needs it:
#  - apply: iact-web-1 created, blue1 (busybox httpd) started on it over
#    SSH, HAProxy routes to it; no container for the spare;
#  - 20 connections to a CGI that answers in 0.5 s (HAProxy's sessions per
#    server: ~20, target 5): one step creates iact-web-blue2, starts blue2
#    on it at the live version, health-gates it and adds it to HAProxy at
#    runtime; answers come from both; `iac plan` stays quiet; its container
#    deleted behind iac's back is replaced by the next step;
#  - 2 connections: the spare is drained (0 failed requests) and its
#    container deleted;
#  - known_hosts holds a wrong key for every address of LXD's network (a
#    container that had the address before): the next spare container is
#    still reached (iac created it: its old keys are dropped, its new key
#    recorded), and the wrong lines for other addresses stay;
#  - a ramp from `iac loadtest` (ramping-arrival-rate up to 40/s, then 2/s)
#    with the `iac autoscale` controller running: up 1 -> 2 onto a new
#    container, down after the stabilization window, nothing else, and not
#    one failed request;
#  - destroy deletes the spare's container too.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lxd_base_image_ssh=1
. "$here/lib.sh"
t_need wrk
t_need haproxy

# the local HAProxy iac starts: destroy stops it; if the test stops early,
# its EXIT trap does (by the pid in its pidfile)
hap_stop() { local p; p=$(cat "$W/haproxy/haproxy.pid" 2>/dev/null) && [ -n "$p" ] && t_stop_pid "$p"; }
trap 'hap_stop; cleanup' EXIT
ssh-keygen -q -t ed25519 -N '' -f "$W/id_ed25519" -C iac-test
: >"$W/known_hosts"
PORT=$(free_port)
cat >"$W/main.lua" <<LUA
variable "version" { default = "v1" }
provider "lxd" { endpoint = "$LXD_URL", client_cert = "$LXD_CLIENT_CERT", client_key = "$LXD_CLIENT_KEY",
                 server_cert = "$LXD_SERVER_CERT" }
provider "ssh" { user = "root", private_key = "id_ed25519", known_hosts = "known_hosts", connect_timeout = "10s" }
local pool = app_pool "web" {
  instances = lxd_instances { image = "iact-base", prefix = "iact-web-", ssh_key = file("id_ed25519.pub"),
                              limits = { cpu = 1, memory = "128MB" } },
  autoscale = { min = 1, max = 2, metric = "haproxy_scur_per_server", target = 5, tolerance = 0.1,
                scale_up = { max_step = 1, period = "1s" }, scale_down = { stabilization = "3s", max_step = 1, period = "1s" } },
  base_port = 8001, green_offset = 100,
  files = {
    ["/srv/{name}/index.html"] = "{version} {name}\n",
    -- a body with its length: wrk counts a close-delimited one as a read error
    ["/srv/{name}/cgi-bin/slow"] = "#!/bin/sh\nsleep 0.5\nb='{version} {name}'\n"
      .. "printf 'Content-Type: text/plain\\\\r\\\\nContent-Length: %d\\\\r\\\\n\\\\r\\\\n%s\\\\n' \$((\${#b} + 1)) \"\$b\"\n",
  },
  start = "chmod 755 /srv/{name}/cgi-bin/slow && (busybox httpd -f -p {port} -h /srv/{name} </dev/null >/dev/null 2>&1 & echo \$! > /run/app-{name}.pid)",
  pidfile = "/run/app-{name}.pid",
}
local lb = haproxy "lb" { bind = "127.0.0.1:$PORT", pool = pool, dir = "haproxy",
                          health = { path = "/index.html", interval = "200ms", rise = 2, fall = 2 } }
deployment "web" {
  strategy = "blue_green", version = var.version, pool = pool, lb = lb,
  health = { path = "/index.html", expect = 200, interval = "200ms", healthy = 2, timeout = "20s" },
  drain_timeout = "10s",
}
LUA

iac apply -auto-approve -ssh-accept-new -no-color >"$TMP/apply.out" 2>&1 ||
	{ cat "$TMP/apply.out"; check_fail "first apply"; finish; }
[ "$(inst_status iact-web-1)" = Running ] && ok "apply: the pool's first instance is a container (iact-web-1)" ||
	check_fail "iact-web-1: '$(inst_status iact-web-1)'"
[ -z "$(inst_status iact-web-blue2)" ] && ok "no container for the spare before it is needed" ||
	check_fail "iact-web-blue2 exists before any scaling"
answers() { for _ in $(seq 1 "$1"); do curl -s --max-time 3 "http://127.0.0.1:$PORT/"; done | sort | uniq -c; }
answers 4 | grep -q "v1 blue1" && ok "HAProxy serves v1 from blue1 on iact-web-1" ||
	{ answers 4; check_fail "no answer from blue1"; }

wrk_run() {   # CONNECTIONS SECONDS OUT
	wrk -t1 -c"$1" -d"$2"s --timeout 5s "http://127.0.0.1:$PORT/cgi-bin/slow" >"$3" 2>&1 &
	WRK_PID=$!
	sleep 2
}
wrk_clean() {   # OUT WHAT
	kill -INT "$WRK_PID" 2>/dev/null
	wait "$WRK_PID" 2>/dev/null
	local reqs errs non2xx
	reqs=$(awk '/requests in/ { print $1 }' "$1")
	errs=$(awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$1")
	non2xx=$(awk '/Non-2xx/ { print $NF }' "$1")
	[ "${reqs:-0}" -gt 0 ] && [ "${errs:-0}" = 0 ] && [ -z "$non2xx" ] &&
		ok "$2: $reqs requests, 0 failed" || { cat "$1"; check_fail "$2: requests failed"; }
}

# ---- load: the spare's container is made -----------------------------------
wrk_run 20 120 "$TMP/wrk-up.out"
t0=$(date +%s.%N)
iac autoscale -once -no-color >"$TMP/up.out" 2>&1 || { cat "$TMP/up.out"; check_fail "iac autoscale -once (up)"; }
t1=$(date +%s.%N)
cat "$TMP/up.out"
grep -q "created LXD container iact-web-blue2" "$TMP/up.out" && grep -q "scaled up 1 -> 2" "$TMP/up.out" &&
	ok "under load one step made iact-web-blue2 and scaled up 1 -> 2 in $(echo "$t1 - $t0" | bc | cut -c1-5) s" ||
	check_fail "no scale-up onto a new container"
[ "$(inst_status iact-web-blue2)" = Running ] && ok "the spare's container runs" ||
	check_fail "iact-web-blue2: '$(inst_status iact-web-blue2)'"
answers 12 >"$TMP/answers"
grep -q "v1 blue2" "$TMP/answers" && grep -q "v1 blue1" "$TMP/answers" &&
	ok "answers from blue1 and the new blue2, both at the live version v1" || { cat "$TMP/answers"; check_fail "blue2 not serving"; }
grep -q "server blue2 " "$W/haproxy/haproxy.cfg" 2>/dev/null && check_fail "blue2 written into the config (it was to be added at runtime)"
iac plan -detailed-exitcode -no-color >"$TMP/plan.out" 2>&1
rc=$?
[ $rc = 0 ] && ok "plan stays quiet while a spare serves" || { cat "$TMP/plan.out"; check_fail "plan exit $rc"; }

# the spare's container deleted behind iac's back: HAProxy sees it DOWN, and
# after 5 s the next step takes it out and makes a new one
lxc delete --force iact-web-blue2 >/dev/null 2>&1
sleep 6.5
iac autoscale -once -no-color >"$TMP/dead.out" 2>&1 || { cat "$TMP/dead.out"; check_fail "iac autoscale -once (dead spare)"; }
cat "$TMP/dead.out"
grep -q "blue2 is DOWN in HAProxy" "$TMP/dead.out" && grep -q "replaced 1 dead spare(s) by 1" "$TMP/dead.out" &&
	[ "$(inst_status iact-web-blue2)" = Running ] &&
	ok "a spare's container deleted behind iac's back is replaced by a new one" ||
	check_fail "the deleted container was not replaced"
answers 12 | grep -q "v1 blue2" && ok "the replacement serves" || check_fail "no answer from the replacement blue2"
kill -INT "$WRK_PID" 2>/dev/null
wait "$WRK_PID" 2>/dev/null

# an apply that changes HAProxy's config reloads it: the spare added at
# runtime goes over to the new worker at once (no autoscale step), and the
# load sees no failure
hap() {
	python3 - "$W/haproxy/api.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
print(s.makefile().read(), end="")
PY
}
wpid() { hap "show info" | awk -F': ' '$1 == "Pid" { print $2 }'; }
P0=$(wpid)
wrk_run 20 60 "$TMP/wrk-reload.out"
sed -i 's/interval = "200ms", rise = 2, fall = 2/interval = "250ms", rise = 2, fall = 2/' "$W/main.lua"
iac apply -auto-approve -no-color >"$TMP/apply-reload.out" 2>&1 || { cat "$TMP/apply-reload.out"; check_fail "apply of a HAProxy config change"; }
P1=$(wpid)
ST=$(hap "show stat" | awk -F, '$1 == "app" && $2 == "blue2" { print $18 }')
[ -n "$P1" ] && [ "$P1" != "$P0" ] && [ "${ST%% *}" = UP ] &&
	ok "apply reloaded HAProxy (worker $P0 -> $P1); the runtime spare blue2 is in the new worker, $ST" ||
	{ cat "$TMP/apply-reload.out"; hap "show stat" | cut -d, -f1,2,18; check_fail "after the reload (worker $P0 -> ${P1:-?}) blue2 is '${ST:-gone}'"; }
answers 12 | grep -q "v1 blue2" && ok "blue2 serves after the reload" || check_fail "no answer from blue2 after the reload"
sleep 1
wrk_clean "$TMP/wrk-reload.out" "HAProxy reload with a runtime spare, under load"
iac plan -detailed-exitcode -no-color >"$TMP/plan-reload.out" 2>&1 && ok "plan quiet after the reload" ||
	{ cat "$TMP/plan-reload.out"; check_fail "plan not quiet after the reload"; }

# ---- light load: drained, container deleted --------------------------------
wrk_run 2 60 "$TMP/wrk-down.out"
sleep 3   # past the 3 s stabilization window
iac autoscale -once -no-color >"$TMP/down.out" 2>&1 || { cat "$TMP/down.out"; check_fail "iac autoscale -once (down)"; }
cat "$TMP/down.out"
grep -q "scaled down 2 -> 1" "$TMP/down.out" || {
	sleep 2
	iac autoscale -once -no-color >>"$TMP/down.out" 2>&1
	tail -1 "$TMP/down.out"
}
grep -q "scaled down 2 -> 1" "$TMP/down.out" && ok "light load: scaled down 2 -> 1" || check_fail "no scale-down"
sleep 1
wrk_clean "$TMP/wrk-down.out" "scale-in onto fewer containers under load"
[ -z "$(inst_status iact-web-blue2)" ] && ok "the drained spare's container is deleted" ||
	check_fail "iact-web-blue2 still there: '$(inst_status iact-web-blue2)'"

# ---- a new container at an address a deleted one had -----------------------
ssh-keygen -q -t ed25519 -N '' -f "$TMP/other" -C other
okey=$(cut -d' ' -f1,2 "$TMP/other.pub")
ip1=$(lxc list iact-web-1 --format csv -c 4 | grep -o '^[0-9.]*')
for i in $(seq 2 254); do [ "$LXD_SUBNET.$i" = "$ip1" ] || echo "$LXD_SUBNET.$i $okey"; done >"$W/known_hosts.wrong"
grep -v "^$LXD_SUBNET\." "$W/known_hosts" >>"$W/known_hosts.wrong"
grep "^$ip1 " "$W/known_hosts" >>"$W/known_hosts.wrong"
mv "$W/known_hosts.wrong" "$W/known_hosts"
nwrong=$(grep -c " $okey" "$W/known_hosts")
wrk_run 20 120 "$TMP/wrk-up2.out"
iac autoscale -once -no-color >"$TMP/up2.out" 2>&1 || { cat "$TMP/up2.out"; check_fail "iac autoscale -once (up again)"; }
kill -INT "$WRK_PID" 2>/dev/null
wait "$WRK_PID" 2>/dev/null
cat "$TMP/up2.out"
ip2=$(lxc list iact-web-blue2 --format csv -c 4 | grep -o '^[0-9.]*')
if grep -q "scaled up 1 -> 2" "$TMP/up2.out"; then
	ok "a container whose address had another key in known_hosts is reached ($ip2)"
else
	check_fail "no scale-up with stale keys in known_hosts"
fi
[ "$(grep -c "^$ip2 " "$W/known_hosts")" = 1 ] && ! grep -q "^$ip2 $okey" "$W/known_hosts" &&
	ok "known_hosts: the old key of $ip2 replaced by the new container's" || { grep "^$ip2 " "$W/known_hosts"; check_fail "known_hosts for $ip2"; }
[ "$(grep -c " $okey" "$W/known_hosts")" = $((nwrong - 1)) ] && ok "the other addresses' lines are left as they were" ||
	check_fail "other known_hosts lines changed: $(grep -c " $okey" "$W/known_hosts") of $((nwrong - 1)) left"

# ---- a ramp from iac loadtest drives the controller up and down -------------
# back to 1 first (no load), then `iac autoscale` runs as a controller while a
# ramping-arrival-rate scenario goes 0 -> 40/s (~20 requests in flight on
# the 0.5 s CGI: above the target of 5 per server), holds, then drops to
# 2/s for longer than the 3 s stabilization window
for _ in 1 2 3; do
	sleep 2
	iac autoscale -once -no-color >>"$TMP/settle.out" 2>&1
	[ -z "$(inst_status iact-web-blue2)" ] && break
done
[ -z "$(inst_status iact-web-blue2)" ] || check_fail "could not get back to 1 before the ramp: $(tail -1 "$TMP/settle.out")"
cat >"$TMP/ramp.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "s" { path = "/cgi-bin/slow" }
load { executor = "ramping-arrival-rate", start_rate = 0, max_vus = 60, timeout = "10s",
       stages = { { "4s", 40 }, { "14s", 40 }, { "1s", 2 }, { "14s", 2 } } }
thresholds { http_req_failed = "rate<0.001" }
EOF2
"$IAC" -chdir="$W" autoscale -no-color >"$TMP/ctl.out" 2>&1 &   # $! is iac itself
CTL_PID=$!
trap 'kill -INT "$CTL_PID" 2>/dev/null; hap_stop; cleanup' EXIT   # stop it whatever happens next
"$IAC" loadtest "$TMP/ramp.lua" >"$TMP/ramp.out" 2>&1
lt_rc=$?
kill -INT "$CTL_PID" 2>/dev/null
wait "$CTL_PID" 2>/dev/null
grep -E "scaled|created LXD" "$TMP/ctl.out"
up_at=$(grep -n "scaled up 1 -> 2" "$TMP/ctl.out" | head -1 | cut -d: -f1)
down_at=$(grep -n "scaled down 2 -> 1" "$TMP/ctl.out" | tail -1 | cut -d: -f1)
[ -n "$up_at" ] && [ -n "$down_at" ] && [ "$down_at" -gt "$up_at" ] &&
	ok "the ramp from iac loadtest: the controller scaled up 1 -> 2 on a new container, then down after the window" ||
	{ cat "$TMP/ctl.out"; check_fail "the controller did not follow the ramp up and down"; }
[ "$(grep -c "scaled" "$TMP/ctl.out")" = 2 ] && ok "no flapping: exactly 2 scale events in the ramp" ||
	check_fail "$(grep -c scaled "$TMP/ctl.out") scale events in the ramp (expected 2)"
[ "$lt_rc" = 0 ] && ok "iac loadtest: every request of the ramp answered (http_req_failed < 0.1 %), through the scale-in" ||
	{ tail -30 "$TMP/ramp.out"; check_fail "iac loadtest exited $lt_rc"; }
[ -z "$(inst_status iact-web-blue2)" ] && ok "after the ramp the spare's container is gone again" ||
	check_fail "iact-web-blue2 still there after the ramp"

# ---- destroy takes the spare's container too -------------------------------
hap_pid=$(cat "$W/haproxy/haproxy.pid" 2>/dev/null)
iac destroy -auto-approve -no-color >"$TMP/destroy.out" 2>&1 || { cat "$TMP/destroy.out"; check_fail "destroy"; }
running() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null); [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }   # not a zombie
[ -n "$hap_pid" ] && ! running "$hap_pid" && ok "destroy stopped the local HAProxy" ||
	check_fail "HAProxy (pid '$hap_pid') still runs after destroy"
[ -z "$(lxc list --format csv -c n | grep '^iact-web')" ] && ok "destroy deleted every container of the pool, the spare's too" ||
	check_fail "left: $(lxc list --format csv -c n | grep '^iact-web')"
finish
