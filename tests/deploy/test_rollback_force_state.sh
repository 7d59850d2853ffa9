#!/bin/bash
# iac rollback -force preempting an apply that is busy with something else
# and that ends well after the rollback: two deployments, "web" and "api"
# (each its own pool and HAProxy). web runs v3 with v2 as standby; an apply
# is deploying api v2 with a 40 s analysis when the operator runs
# `iac rollback web -force`. The rollback switches web back to v2 and
# records itself; what the preempted apply does afterwards must not undo
# that: state keeps web on v2 with v3 marked bad, the change history keeps
# the forced rollback, and web keeps answering v2 under wrk load.
. "$(dirname "$0")/lib.sh"
API_STACK=1
setup
for v in v2 v3; do
	iac apply -auto-approve -var version=$v >"$WORK/$v.out" 2>&1 || { cat "$WORK/$v.out" >&2; fail "apply web $v"; }
done
expect_version v3 4 "web v3 live, v2 standby"

load_start 300
iac_bg "$WORK/long.out" apply -auto-approve -var version=v3 -var version2=v2 -var analysis2=40s
long_pid=$BG_PID
for i in $(seq 1 600); do grep -q '^deploy.blue_green.api: analysis on' "$WORK/long.out" && break; sleep 0.1; done
grep -q '^deploy.blue_green.api: analysis on' "$WORK/long.out" || { cat "$WORK/long.out" >&2; fail "the apply of api v2 did not reach its analysis"; }

timed "$WORK/rb.out" "$IAC" -no-color rollback web -force
cat "$WORK/rb.out"
[ "$TIMED_RC" = 0 ] || fail "rollback web -force exited $TIMED_RC"
expect_version v2 8 "rollback -force ($TIMED_MS ms wall)"
echo "state right after the rollback: web $(dep_attr live)/$(dep_attr live_version), bad $(dep_attr bad_versions)"

wait_gone "$long_pid" 60 || check_fail "the preempted apply still runs 60 s after rollback -force"
wait "$long_pid"
echo "preempted apply exited $? ${WAITED}s after the rollback"
grep -q '^deploy.blue_green.api: switching traffic' "$WORK/long.out" && check_fail "the preempted apply switched api"

expect_version v2 8 "after the preempted apply ended"
[ "$(dep_attr live)/$(dep_attr live_version)" = green/v2 ] ||
	check_fail "state after the preempted apply ended: web $(dep_attr live)/$(dep_attr live_version), want green/v2 (the apply wrote its older state over the rollback's)"
dep_attr bad_versions | grep -q '"version":"v3"' || check_fail "v3 no longer in bad_versions: $(dep_attr bad_versions)"
state_json
python_json "$WORK/state.json" "
h = [e for e in d.get('extra', {}).get('history', []) if e.get('command') == 'rollback']
assert h and h[-1].get('forced') is True, 'the forced rollback is gone from extra.history'
print('history keeps:', json.dumps({k: h[-1].get(k) for k in ('command', 'forced', 'from_version', 'to_version', 'at')}))
" || check_fail "the forced rollback is not in the change history any more"

load_stop
load_expect_clean "rollback -force over a busy apply"
finish
