#!/usr/bin/env bash
# Crash consistency: applies of many resources with visible side effects
# (each create appends its name to a log, some through a background child
# of the command, some with triggers) are killed with kill -9 at random
# moments; after each kill the next plan and apply work, and at the end
# every side effect happened exactly once and no command outlived iac.
# ROUNDS (default 20; docs/security.md reports a run with ROUNDS=50 N=200) and N resources.
. "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-20}
N=${N:-120}
newcfg crash
mkdir out
cat >main.lua <<EOF
for i = 1, $N do
  local slow = (i % 10 == 0) and "sleep 0.3; " or ""
  if i % 3 == 0 then
    -- the side effect is made by a child of the command's shell
    resource "local.exec" ("r" .. i) {
      create = slow .. "(sleep 0.2; echo r" .. i .. " >> $T/crash/out/log) ; wait",
      check = "grep -qx r" .. i .. " $T/crash/out/log",
      triggers = { n = tostring(i) },
    }
  else
    resource "local.exec" ("r" .. i) {
      create = slow .. "echo r" .. i .. " >> $T/crash/out/log",
      check = "grep -qx r" .. i .. " $T/crash/out/log",
      triggers = { n = tostring(i) },
    }
  end
end
EOF

step "kill -9 at random moments, $ROUNDS times"
for round in $(seq 1 "$ROUNDS"); do
	"$IAC" apply -auto-approve -parallelism 8 >"$T/a.out" 2>&1 &
	pid=$!
	# somewhere in the first ~1.5 s (the whole apply takes about 2-4 s)
	sleep "0.$(( (RANDOM % 15) + 1 ))"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	# no command of the killed run may go on writing
	sleep 0.5
	before=$(wc -l <out/log 2>/dev/null || echo 0)
	sleep 0.4
	after=$(wc -l <out/log 2>/dev/null || echo 0)
	expect_eq "round $round: the log grew after iac was killed" "$before" "$after"
	run plan
	expect_rc 0
	if [ $((round % 4)) = 0 ]; then
		# now and then let a run finish, then start over from nothing
		run apply -auto-approve
		expect_rc 0
		dups=$(sort out/log | uniq -d | head -3 | tr '\n' ' ')
		expect_eq "round $round: duplicate side effects" "" "$dups"
		run destroy -auto-approve
		expect_rc 0
		rm -f out/log
	fi
done

step "the last apply converges, every side effect once"
run apply -auto-approve
expect_rc 0
dups=$(sort out/log | uniq -d | head -5 | tr '\n' ' ')
expect_eq "duplicate side effects" "" "$dups"
expect_eq "side effects" "$N" "$(sort -u out/log | wc -l)"
run plan -detailed-exitcode
expect_rc 0
expect_eq "leftover temp files" "0" "$(find . -name '*.tmp.*' | wc -l)"

finish
