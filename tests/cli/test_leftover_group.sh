#!/usr/bin/env bash
# A command group that outlived iac and its guard (kill -9 of both at once)
# is recorded with the pending marker; the next apply kills it before the
# create is checked or run again: its side effect happens exactly once, and
# the next apply says which resource's commands it stopped.
. "$(dirname "$0")/lib.sh"

newcfg grp
cat >main.lua <<EOF
resource "local.exec" "slow" {
  create = "sleep 2; echo late >> $T/grp/log",
  check = "grep -qx late $T/grp/log",
}
EOF

# the command's guard: iac's child that leads a group with a sleep in it
guard_of() {
	local p
	for p in $(pgrep -P "$1"); do
		if pgrep -g "$p" -x sleep >/dev/null; then echo "$p"; return 0; fi
	done
	return 1
}
has_guard() { guard_of "$1" >/dev/null; }

step "kill -9 of iac and the command's guard together, then apply at once"
bg_iac "$T/first.out" apply -auto-approve
iacpid=$BG_PID
if ! wait_for 10 has_guard "$iacpid"; then
	fail "the create's command never started: $(cat "$T/first.out")"
fi
guard=$(guard_of "$iacpid")
# one kill(1), the guard first: killed second, it would get iac's death
# signal first and take its group down itself
kill -9 "$guard" "$iacpid"
wait "$iacpid" 2>/dev/null
# the command's sleep goes on under init now
expect_eq "the command outlived iac and its guard" "1" \
	"$(pgrep -g "$guard" -r R,S,D -x sleep | wc -l | tr -d ' ')"
run apply -auto-approve
expect_rc 0
expect_contains err "killed the commands of 'local.exec.slow'"
expect_contains err "process group $guard"
# the first command would have written by now
sleep 2.5
expect_eq "side effects in the log" "late" "$(tr '\n' ' ' <log 2>/dev/null | sed 's/ $//')"
expect_eq "processes left in the test directory" "" "$(pgrep -f "$T" | tr '\n' ' ')"

step "the group is forgotten once it is gone; the next run says nothing of it"
expect_not_contains file:.iac/state.json '"groups"'
run plan -detailed-exitcode
expect_rc 0
expect_not_contains err "killed"

finish
