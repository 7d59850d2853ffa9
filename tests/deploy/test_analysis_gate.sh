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
finish
