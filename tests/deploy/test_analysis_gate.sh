#!/bin/bash
# A green colour that passes its health gate but fails the analysis (its
# nginx answers 500 to about 5 % of requests, chosen by request id): under
# wrk -c50 load, apply exits non-zero naming the analysis and its error
# rate, no request through HAProxy fails, traffic stays on blue (v1), green
# is stopped, state still says v1 on blue.
. "$(dirname "$0")/lib.sh"
setup

load_start 300
iac apply -auto-approve -var version=v2-err5 >"$WORK/err5.out" 2>&1
rc=$?
[ "$rc" != 0 ] || { cat "$WORK/err5.out" >&2; fail "apply of a version failing its analysis exited 0"; }
grep -q 'analysis failed for v2-err5 on green' "$WORK/err5.out" ||
	{ cat "$WORK/err5.out" >&2; fail "the error does not name the analysis"; }
grep -q '"health":{"verdict":"passed"' "$WORK/err5.out" ||
	{ cat "$WORK/err5.out" >&2; fail "the health gate should have passed"; }
rate=$(sed -n 's/.*"analysis":{[^}]*"error_rate":\([0-9.e-]*\).*/\1/p' "$WORK/err5.out" | head -1)
[ -n "$rate" ] || { cat "$WORK/err5.out" >&2; fail "the figures do not give the analysis error rate"; }
awk -v r="$rate" 'BEGIN { exit !(r > 0.02 && r < 0.09) }' ||
	check_fail "analysis error rate $rate, expected about 0.05"
ok "apply exited $rc: analysis failed, error rate $rate (max 0.01): $(grep -o '"reason":"[^"]*"' "$WORK/err5.out" | tail -1)"

expect_version v1 8 "after the failed analysis"
for i in 1 2 3 4; do
	inst_alive "green$i" && check_fail "green$i still runs after the failed analysis"
done
[ "$(dep_attr live)" = blue ] && [ "$(dep_attr live_version)" = v1 ] ||
	check_fail "state after the failed analysis: live $(dep_attr live) at $(dep_attr live_version), want blue at v1"

load_stop
load_expect_clean "a failed analysis"

# After a failed deploy that keeps the failed colour for inspection
# (on_failure = "keep"), that colour no longer runs the standby version:
# v2 live on green, blue standby at v1, then v3-err5 fails its analysis on
# blue and stays there. `iac rollback` must not put v3-err5 live.
iac apply -auto-approve -var version=v2 >"$WORK/v2.out" 2>&1 || { cat "$WORK/v2.out" >&2; fail "apply v2"; }
expect_version v2 4 "v2 live on green, blue standby at v1"
iac apply -auto-approve -var version=v3-err5 -var on_failure=keep >"$WORK/keep.out" 2>&1 &&
	{ cat "$WORK/keep.out" >&2; fail "apply v3-err5 (on_failure = keep) exited 0"; }
grep -q 'analysis failed for v3-err5 on blue' "$WORK/keep.out" || { cat "$WORK/keep.out" >&2; fail "keep: error"; }
echo "state after the kept failure: standby $(dep_attr standby) at $(dep_attr standby_version); blue1 answers: $(ctl curl -s -m 3 "http://$(addr 2):8001/health" >/dev/null; ctl curl -s -m 3 "http://$(addr 2):8001/" | head -1)"
iac rollback web >"$WORK/rb.out" 2>&1
rc=$?
cat "$WORK/rb.out"
got=$(answers 40)
echo "answers after that rollback (exit $rc): $(echo "$got" | awk '{print $1}' | sort | uniq -c | paste -sd' ')"
echo "$got" | grep -q '^v3-err5 \|^ERR' && check_fail "iac rollback put v3-err5 live (the failed version kept for inspection), reporting: $(head -1 "$WORK/rb.out")"
serving=$(echo "$got" | awk '$1 != "ERR" {print $1}' | sort -u | paste -sd,)
[ "$(dep_attr live_version)" = "$serving" ] ||
	check_fail "state says $(dep_attr live) at $(dep_attr live_version) is live, but $serving answers"
finish
