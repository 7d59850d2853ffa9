#!/usr/bin/env bash
# Crash consistency: applies of many resources with visible side effects
# (each command's create appends its name to a log, some through a
# background child of the command, all with triggers; every fourth resource
# is a local.file) are killed with kill -9 at random moments; after each
# kill no process of the run is left (iac, guards, commands: each names the
# test directory on its command line), and the next plan and apply work;
# at the end every side effect happened exactly once, every file is there
# with its content and no temp file is left.
# ROUNDS (default 20) and N resources (default 120) keep ctest's run to a
# few minutes on 2 shared cores; ROUNDS=50 N=200 (about 4 minutes on an
# idle machine, 12 on a busy one) is the long run docs/security.md reports.
. "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-20}
N=${N:-120}
newcfg crash
mkdir out bin
# the commands' sleeps name the test directory, so pgrep -f finds any left
cp "$(command -v sleep)" bin/nap
cat >main.lua <<EOF
for i = 1, $N do
  local slow = (i % 10 == 0) and "$T/crash/bin/nap 0.3; " or ""
  if i % 4 == 0 then
    resource "local.file" ("f" .. i) {
      path = "$T/crash/out/f" .. i .. ".txt",
      content = string.rep("f" .. i .. "\\n", 2000),
    }
  elseif i % 3 == 0 then
    -- the side effect is made by a child of the command's shell
    resource "local.exec" ("r" .. i) {
      create = slow .. "($T/crash/bin/nap 0.2; echo r" .. i .. " >> $T/crash/out/log) ; wait",
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

# processes of this test still running (iac runs with -chdir naming the
# directory, so its guards name it too), but not this shell
left_over() { pgrep -f "$T/crash" | grep -vx "$$" | tr '\n' ' '; }
# the number of commands' side effects and of files
EXECS=$(( N - N / 4 ))
FILES=$(( N / 4 ))
ORPHANS=0

step "kill -9 at random moments, $ROUNDS times"
started=$SECONDS
for round in $(seq 1 "$ROUNDS"); do
	"$IAC" -chdir="$T/crash" apply -auto-approve -parallelism 8 >"$T/a.out" 2>&1 &
	pid=$!
	# somewhere in the first ~1.5 s (the whole apply takes about 2-4 s)
	sleep "0.$(( (RANDOM % 15) + 1 ))"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	# no command of the killed run may go on writing
	sleep 0.5
	before=$(cat out/log 2>/dev/null | wc -l)
	sleep 0.4
	after=$(cat out/log 2>/dev/null | wc -l)
	expect_eq "round $round: the log grew after iac was killed" "$before" "$after"
	left=$(left_over)
	[ -n "$left" ] && ORPHANS=$((ORPHANS + 1)) && ps -o pid,pgid,args -p "${left// /,}" >&2
	expect_eq "round $round: processes left after iac was killed" "" "$left"
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
expect_eq "side effects" "$EXECS" "$(sort -u out/log | wc -l)"
expect_eq "files" "$FILES" "$(find out -name 'f*.txt' -type f | wc -l)"
expect_eq "content of f4.txt" "2000 f4" "$(wc -l <out/f4.txt) $(sort -u out/f4.txt)"
run plan -detailed-exitcode
expect_rc 0
expect_eq "leftover temp files" "0" "$(find . -name '*.tmp.*' | wc -l)"
expect_eq "processes left" "" "$(left_over)"
echo "crash test: $ROUNDS rounds of $N resources ($EXECS commands, $FILES files), $(sort out/log | uniq -d | wc -l) duplicates, $ORPHANS rounds with processes left, $((SECONDS - started)) s"

finish
