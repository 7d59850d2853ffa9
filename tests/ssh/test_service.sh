#!/bin/bash
# ssh.service through the CLI on a host without systemd: started detached
# (survives the channel), reloaded when a reload_on file changes (same pid,
# HUP seen), restarted when a restart_on file changes (new pid), started
# again after being killed behind iac's back, stopped by destroy.
. "$(dirname "$0")/lib.sh"
bed_up 1

write_config() {
	cat >"$WORK/main.lua" <<EOF
$(provider_block)
local h = host "app1" { address = "$(addr 1)" }
local conf = resource "ssh.file" "conf" { host = h, path = "/etc/svc/app.conf", content = "color = $1\n" }
local script = resource "ssh.file" "script" { host = h, path = "/opt/svc/run.sh", mode = "0755", content = [[
trap 'echo reload >> /var/log/svc.events' HUP
echo "start $2" >> /var/log/svc.events
while :; do sleep 0.1; done
]] }
resource "ssh.service" "svc" { host = h, start = "/opt/svc/run.sh", pidfile = "/run/svc.pid",
                               reload_on = { conf }, restart_on = { script } }
EOF
}
pid() { on_host 1 cat /run/svc.pid; }
alive() { on_host 1 'kill -0 $(cat /run/svc.pid)'; }

write_config blue v1
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply"; }
alive || fail "service not running after apply"
p1=$(pid)
sleep 0.3
alive || fail "service died after the channel closed"
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1 || { cat "$WORK/p1.out"; fail "no-op plan after start"; }

# reload_on: a config change reloads, same process
write_config green v1
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply (reload)"; }
expect_in "$WORK/a2.out" "ssh.service.svc"
sleep 0.3
[ "$(pid)" = "$p1" ] || fail "reload changed the pid"
on_host 1 grep -q reload /var/log/svc.events || fail "no HUP seen: $(on_host 1 cat /var/log/svc.events)"

# restart_on: a new script restarts, new process
write_config green v2
iac plan >"$WORK/p3.out" 2>&1
# the plan says what restarts and why, not the digests restart_on holds
expect_in "$WORK/p3.out" "restart_on = restart (ssh.file.script changed)"
expect_not_in "$WORK/p3.out" "sha256:"
iac apply -auto-approve >"$WORK/a3.out" 2>&1 || { cat "$WORK/a3.out"; fail "apply (restart)"; }
alive || fail "not running after restart"
p2=$(pid)
[ "$p2" != "$p1" ] || fail "restart kept the pid"
on_host 1 "kill -0 $p1" 2>/dev/null && fail "old process still alive"
on_host 1 'grep -q "start v2" /var/log/svc.events' || fail "new script not started"

# killed behind iac's back: plan notices, apply starts it again
on_host 1 'kill -9 $(cat /run/svc.pid)'
iac plan -detailed-exitcode >"$WORK/p2.out" 2>&1
[ $? = 2 ] || { cat "$WORK/p2.out"; fail "plan did not notice the dead service"; }
expect_in "$WORK/p2.out" "ssh.service.svc will be created"
expect_in "$WORK/p2.out" "(not running)"
expect_not_in "$WORK/p2.out" "deleted outside iac"
iac apply -auto-approve >"$WORK/a4.out" 2>&1 || { cat "$WORK/a4.out"; fail "apply (restart dead)"; }
alive || fail "not running again"

# destroy stops it
p3=$(pid)
iac destroy -auto-approve >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy"; }
on_host 1 "kill -0 $p3" 2>/dev/null && fail "service still running after destroy"
on_host 1 test -e /run/svc.pid && fail "pidfile left"

# a start that fails, and one whose script is killed on the host (as a
# timeout or a second Ctrl-C kills it), leave no file of theirs there: no
# mktemp name in /tmp; LOG.start (the started shell's pid) goes with the script's trap, or with
# the next start or stop when nothing could run the trap
tmps() { on_host 1 'ls -d /tmp/tmp.* 2>/dev/null | wc -l'; }
t0=$(tmps)
cat >"$WORK/main.lua" <<EOF
$(provider_block)
local h = host "app1" { address = "$(addr 1)" }
resource "ssh.service" "bad" { host = h, start = "exit 1", pidfile = "/run/bad.pid" }
EOF
iac apply -auto-approve >"$WORK/a5.out" 2>&1 && fail "a service that exits at once was reported started"
expect_in "$WORK/a5.out" "did not stay up"
on_host 1 test -e /var/log/iac-bad.log.start && fail "a failed start left /var/log/iac-bad.log.start"
iac apply -auto-approve >"$WORK/a6.out" 2>&1 &
sleep 1
# the start script: the shell sshd started, reading its script on stdin
on_host 1 'for p in $(ps -eo pid=,args= | awk '"'"'$2 ~ /sh$/ && $3 == "-s" { print $1 }'"'"'); do kill -9 $p; done'
wait
iac apply -auto-approve >"$WORK/a7.out" 2>&1 && fail "a service that exits at once was reported started"
on_host 1 test -e /var/log/iac-bad.log.start && fail "the start after a killed one left /var/log/iac-bad.log.start"
[ "$(tmps)" = "$t0" ] || fail "starts left mktemp files in the host's /tmp: $(on_host 1 'ls -d /tmp/tmp.*')"

# the pidfile's directory is made by the start command itself (install -d
# /run/x && daemon -P /run/x/pid, as memcached's and redis' recipes do)
on_host 1 "rm -rf /run/iac-newdir"
cat >"$WORK/main.lua" <<EOF
$(provider_block)
local h = host "app1" { address = "$(addr 1)" }
resource "ssh.service" "newdir" { host = h, start = "mkdir -p /run/iac-newdir && exec sleep 600",
                                  pidfile = "/run/iac-newdir/s.pid" }
EOF
iac apply -auto-approve >"$WORK/a8.out" 2>&1 || { cat "$WORK/a8.out"; fail "a start that makes its pidfile's directory"; }
on_host 1 'kill -0 "$(cat /run/iac-newdir/s.pid)"' || fail "no live pid in /run/iac-newdir/s.pid"
iac destroy -auto-approve >"$WORK/d8.out" 2>&1 || { cat "$WORK/d8.out"; fail "destroy newdir"; }
echo ok
