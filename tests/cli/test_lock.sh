#!/usr/bin/env bash
# The state lock: a second concurrent apply fails naming the holder (pid,
# host, command); -lock-timeout waits; a lock left by a killed process is
# taken over with a notice; no lock file after any exit; force-unlock.
# The holder is an apply whose command waits for a gate file, so the timing
# does not depend on the machine's load.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir out
cat >main.lua <<EOF
variable "tag" { default = "0" }
resource "local.exec" "slow" {
  create = "echo begin-" .. var.tag .. " >> $T/cfg/out/log; while [ ! -e $T/cfg/gate ]; do sleep 0.05; done; echo end-" .. var.tag .. " >> $T/cfg/out/log",
  destroy = "true",
  triggers = { tag = var.tag },
}
resource "local.file" "f" { path = "$T/cfg/out/f", content = var.tag }
EOF

lock_exists() { [ -e .iac/lock ]; }
# hold TAG: start a gated apply; sets holder
hold() {
    rm -f "$T/cfg/gate"
    bg_iac "$T/bg-$1.log" apply -auto-approve -var tag="$1"
    holder=$BG_PID
    wait_for 20 grep -qx "begin-$1" out/log || fail "holder apply (tag $1) never started its command"
    lock_exists || fail "no .iac/lock while apply runs"
}
release() { touch "$T/cfg/gate"; }

step "no lock file after plan, apply, a failed run"
touch gate
run apply -auto-approve
expect_rc 0
expect_no_file .iac/lock
run plan -var nosuch=1
expect_rc 1
expect_no_file .iac/lock

step "second apply while one runs: fails at once naming the holder"
hold 1
expect_contains file:.iac/lock "$holder"
t0=$SECONDS
run apply -auto-approve -var tag=1
expect_rc 1
expect_match err 'lock'
expect_contains err "$holder"
expect_contains err 'apply'
expect_contains err "$(hostname)"
expect_contains err '-lock-timeout'
if [ $((SECONDS - t0)) -le 3 ]; then pass; else fail "without -lock-timeout the second apply must fail at once"; fi

step "plan, destroy and state rm also respect the lock"
run plan -var tag=1
expect_rc 1
expect_contains err "$holder"
run destroy -auto-approve
expect_rc 1
run state rm local.file.f
expect_rc 1

step "-lock-timeout=30s waits for the holder and then runs"
bg_iac "$T/waiter.log" apply -auto-approve -lock-timeout=30s -var tag=1
waiter=$BG_PID
sleep 0.7
if kill -0 "$waiter" 2>/dev/null; then pass; else fail "apply -lock-timeout=30s did not wait: $(cat "$T/waiter.log")"; fi
release
bg_wait "$holder"
expect_eq "holder apply exit" 0 "$BG_RC"
bg_wait "$waiter"
expect_eq "waiting apply exit" 0 "$BG_RC"
expect_file_content out/f 1
expect_no_file .iac/lock

step "-lock-timeout shorter than the holder: fails after waiting"
hold 2
t0=$(date +%s%N)
run apply -auto-approve -lock-timeout=500ms -var tag=2
t1=$(date +%s%N)
expect_rc 1
expect_contains err "$holder"
waited=$(( (t1 - t0) / 1000000 ))
if [ "$waited" -ge 400 ] && [ "$waited" -lt 5000 ]; then pass; else fail "-lock-timeout=500ms gave up after ${waited} ms"; fi
run plan -lock-timeout=banana
expect_rc 1
expect_contains err 'banana'
release
bg_wait "$holder"
expect_eq "holder apply exit" 0 "$BG_RC"

step "-lock=false does not take the lock and does not break the running apply"
hold 3
cp .iac/lock "$T/lock.copy"
run plan -lock=false -var tag=3
expect_rc 0
expect_file .iac/lock
cmp -s .iac/lock "$T/lock.copy" && pass || fail "plan -lock=false changed the lock file"
release
bg_wait "$holder"
expect_eq "apply exit after a concurrent plan -lock=false" 0 "$BG_RC"
run plan -detailed-exitcode -var tag=3
expect_rc 0

step "a lock left by a killed process is taken over with a notice"
hold 4
kill -9 "$holder"
bg_wait "$holder"
expect_file .iac/lock
touch gate
run apply -auto-approve -var tag=5
expect_rc 0
expect_match err '(stale|dead|no longer running|not running)'
expect_contains err "$holder"
expect_no_file .iac/lock
run plan -detailed-exitcode -var tag=5
expect_rc 0

step "a lock held (flock) by a process of another host is respected and named"
cat >.iac/lock <<EOF
{"id":"abc-1","pid":1,"host":"some-other-host","command":"apply","started":"2020-01-01T00:00:00Z"}
EOF
bg_start flock -x .iac/lock sleep 30
flocker=$BG_PID
wait_for 5 grep -q "$(stat -c %i .iac/lock)" /proc/locks || fail "flock did not take the lock"
run plan -var tag=5
expect_rc 1
expect_contains err 'some-other-host'
step "force-unlock with the wrong id fails, with the right id removes the lock"
run force-unlock wrong-id
expect_rc 1
expect_file .iac/lock
run force-unlock abc-1
expect_rc 0
expect_no_file .iac/lock
run plan -var tag=5
expect_rc 0
kill -- -"$flocker"
bg_wait "$flocker"

step "a lock file nobody holds (garbage content) is not a crash"
echo 'not json' >.iac/lock
run plan -var tag=5
expect_rc 0
expect_no_file .iac/lock
expect_not_match err '(Segmentation|Aborted|AddressSanitizer)'
rm -f .iac/lock

finish
