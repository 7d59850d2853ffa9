#!/usr/bin/env bash
# The state lock: a second concurrent apply fails naming the holder (pid,
# host, command); -lock-timeout waits; a lock left by a killed process is
# taken over with a notice; no lock file after any exit; force-unlock.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir out
cat >main.lua <<EOF
variable "d" { default = "1.5" }
resource "local.exec" "slow" {
  create = "echo begin >> $T/cfg/out/log; sleep " .. var.d .. "; echo end >> $T/cfg/out/log",
  destroy = "true",
  check = "grep -q end $T/cfg/out/log",
}
resource "local.file" "f" { path = "$T/cfg/out/f", content = var.d }
EOF

lock_exists() { [ -e .iac/lock ]; }

step "no lock file after plan, apply, a failed run"
run plan
expect_no_file .iac/lock
run plan -var nosuch=1
expect_rc 1
expect_no_file .iac/lock

step "second apply while one runs: fails naming the holder"
bg_iac "$T/bg1.log" apply -auto-approve -var d=1.5
holder=$BG_PID
wait_for 5 lock_exists || fail "no .iac/lock while apply runs"
expect_contains file:.iac/lock "$holder"
t0=$SECONDS
run apply -auto-approve -var d=1.5
expect_rc 1
expect_match err 'lock'
expect_contains err "$holder"
expect_contains err 'apply'
expect_contains err "$(hostname)"
expect_contains err '-lock-timeout'
if [ $((SECONDS - t0)) -le 1 ]; then pass; else fail "without -lock-timeout the second apply must fail at once"; fi

step "plan, destroy and state rm also respect the lock"
run plan
expect_rc 1
expect_contains err "$holder"
run destroy -auto-approve
expect_rc 1
run state rm local.file.f
expect_rc 1

step "-lock-timeout=5s waits for the holder and then runs"
t0=$(date +%s%N)
run apply -auto-approve -lock-timeout=5s -var d=0.1
t1=$(date +%s%N)
expect_rc 0
bg_wait "$holder"
expect_eq "first apply exit" 0 "$BG_RC"
waited=$(( (t1 - t0) / 1000000 ))
if [ "$waited" -ge 300 ]; then pass; else fail "apply with -lock-timeout returned after ${waited} ms: did it wait?"; fi
expect_file_content out/f 0.1
expect_no_file .iac/lock

step "-lock-timeout shorter than the holder: fails after waiting"
bg_iac "$T/bg2.log" apply -auto-approve -var d=2
holder=$BG_PID
wait_for 5 lock_exists || fail "no .iac/lock while apply runs"
t0=$(date +%s%N)
run apply -auto-approve -lock-timeout=500ms -var d=2
t1=$(date +%s%N)
expect_rc 1
expect_contains err "$holder"
waited=$(( (t1 - t0) / 1000000 ))
if [ "$waited" -ge 400 ] && [ "$waited" -lt 1900 ]; then pass; else fail "-lock-timeout=500ms gave up after ${waited} ms"; fi
run plan -lock-timeout=banana
expect_rc 1
expect_contains err 'banana'
bg_wait "$holder"

step "-lock=false does not take the lock and does not break the running apply"
bg_iac "$T/bg3.log" apply -auto-approve -var d=1
holder=$BG_PID
wait_for 5 lock_exists || fail "no .iac/lock while apply runs"
cp .iac/lock "$T/lock.copy"
run plan -lock=false -var d=1
expect_rc 0
expect_file .iac/lock
cmp -s .iac/lock "$T/lock.copy" && pass || fail "plan -lock=false changed the lock file"
bg_wait "$holder"
expect_eq "apply exit after a concurrent plan -lock=false" 0 "$BG_RC"
run plan -detailed-exitcode -var d=1
expect_rc 0

step "a lock left by a killed process is taken over with a notice"
: >out/log
bg_iac "$T/bg4.log" apply -auto-approve -var d=3
holder=$BG_PID
wait_for 5 lock_exists || fail "no .iac/lock while apply runs"
wait_for 5 grep -q begin out/log
kill -9 "$holder"
bg_wait "$holder"
expect_file .iac/lock
run apply -auto-approve -var d=0.2
expect_rc 0
expect_match err '(stale|dead|no longer running|not running)'
expect_contains err "$holder"
expect_no_file .iac/lock
run plan -detailed-exitcode -var d=0.2
expect_rc 0

step "a lock held (flock) by a process of another host is respected and named"
cat >.iac/lock <<EOF
{"id":"abc-1","pid":1,"host":"some-other-host","command":"apply","started":"2020-01-01T00:00:00Z"}
EOF
bg_start flock -x .iac/lock sleep 30
flocker=$BG_PID
wait_for 5 grep -q "$(stat -c %i .iac/lock)" /proc/locks || fail "flock did not take the lock"
run plan
expect_rc 1
expect_contains err 'some-other-host'
step "force-unlock with the wrong id fails, with the right id removes the lock"
run force-unlock wrong-id
expect_rc 1
expect_file .iac/lock
run force-unlock abc-1
expect_rc 0
expect_no_file .iac/lock
run plan
expect_rc 0
kill "$flocker"
bg_wait "$flocker"

step "a lock file nobody holds (garbage content) is not a crash"
echo 'not json' >.iac/lock
run plan
expect_rc 0
expect_no_file .iac/lock
expect_not_match err '(Segmentation|Aborted|AddressSanitizer)'
rm -f .iac/lock

finish
