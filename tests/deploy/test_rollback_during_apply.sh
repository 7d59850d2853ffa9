#!/bin/bash
# iac rollback -force while an apply is deploying a new version of the same
# deployment, under wrk -c50 load. v1 (blue) -> v2 (green) is live with
# blue as the standby at v1; then an apply of v3 restarts blue at v3 and
# sits in a 60 s analysis when the operator runs `iac rollback -force`.
# Blue no longer runs v1, so there is nothing good to roll back to. What
# must hold whatever the rollback does:
#  - traffic never goes to v3, which no gate passed;
#  - what the rollback reports is what answers (no "-> blue (v1)" while
#    v3 answers);
#  - the preempted apply stops without switching, and without stopping a
#    colour that takes traffic;
#  - no request fails;
#  - afterwards state says what really serves.
. "$(dirname "$0")/lib.sh"
setup
iac apply -auto-approve -var version=v2 >"$WORK/v2.out" 2>&1 || { cat "$WORK/v2.out" >&2; fail "apply v2"; }
expect_version v2 8 "v2 live"

load_start 300
iac_bg "$WORK/long.out" apply -auto-approve -var version=v3 -var analysis_duration=60s
long_pid=$BG_PID
for i in $(seq 1 600); do grep -q '^deploy.blue_green.web: analysis on blue' "$WORK/long.out" && break; sleep 0.1; done
grep -q '^deploy.blue_green.web: analysis on blue' "$WORK/long.out" ||
	{ cat "$WORK/long.out" >&2; fail "the apply of v3 did not reach its analysis"; }
ok "apply of v3 is in its analysis (blue restarted at v3)"

timed "$WORK/rb.out" "$IAC" -no-color rollback web -force
cat "$WORK/rb.out"
got=$(answers 8)
echo "answers after rollback -force (exit $TIMED_RC, $TIMED_MS ms): $(echo "$got" | awk '{print $1}' | sort | uniq -c | paste -sd' ')"
echo "$got" | grep -q '^v3 ' && check_fail "rollback -force sent traffic to v3, which passed no gate"
if grep -q 'rolled back .* -> blue (v1)' "$WORK/rb.out"; then
	echo "$got" | awk '$1 != "v1"' | grep -q . && check_fail "rollback says '-> blue (v1)' but v1 does not answer"
fi

wait_gone "$long_pid" 15 || check_fail "the preempted apply still runs 15 s after rollback -force"
wait "$long_pid"
echo "preempted apply exited $? ${WAITED}s after the rollback: $(grep -v '^ *[-+~#] \|^$' "$WORK/long.out" | grep -i "error\\|stopping\\|switching\\|cancelled:" | cut -c1-200 | paste -sd' ')"
grep -q '^deploy.blue_green.web: switching traffic' "$WORK/long.out" && check_fail "the preempted apply switched traffic"

final=$(answers 8)
serving=$(echo "$final" | awk '{print $1}' | sort -u | paste -sd,)
echo "serving at the end: $serving"
echo "$final" | grep -q '^ERR' && check_fail "requests fail at the end: $(echo "$final" | paste -sd'|')"
[ "$(dep_attr live_version)" = "$serving" ] ||
	check_fail "state says $(dep_attr live) at $(dep_attr live_version) is live, but $serving answers"

load_stop
load_expect_clean "rollback -force during an apply of the same deployment"
finish
