#!/bin/bash
# iac rollback on the test bed, under wrk -c50 load:
#  - takes at most 1 s wall time (measured in the controller namespace,
#    printed; judged unless the machine is overloaded) and traffic moves
#    back to the standby version at once;
#  - state: live/standby swapped, the version rolled back from in
#    bad_versions; plan and apply refuse it without -allow-bad and deploy it
#    (reusing the standby still running it) with -allow-bad;
#  - the rollback is in the change history (iac show -json: extra.history);
#  - without -force it does not wait for an apply holding the lock: it
#    fails at once and says -force; rollback -force preempts the apply,
#    switches, is recorded as forced with the preempted holder, and the
#    stopped apply leaves the rollback's state alone.
# No request fails during any of it.
. "$(dirname "$0")/lib.sh"
setup
iac apply -auto-approve -var version=v2 >"$WORK/v2.out" 2>&1 || { cat "$WORK/v2.out" >&2; fail "apply v2"; }
expect_version v2 8 "v2 live"

load_start 400

# ---- the rollback itself: wall time, traffic, message ----
: >"$WORK/rollback.ms"
timed "$WORK/rb1.out" "$IAC" -no-color rollback web
[ "$TIMED_RC" = 0 ] || { cat "$WORK/rb1.out" >&2; fail "iac rollback exited $TIMED_RC"; }
echo "$TIMED_MS" >>"$WORK/rollback.ms"
cat "$WORK/rb1.out"
grep -q 'rolled back green (v2) -> blue (v1) in [0-9]* ms; v2 is marked bad' "$WORK/rb1.out" ||
	check_fail "rollback message"
expect_version v1 8 "right after iac rollback ($TIMED_MS ms wall)"
[ "$(dep_attr live)/$(dep_attr live_version)/$(dep_attr standby)/$(dep_attr standby_version)" = blue/v1/green/v2 ] ||
	check_fail "state after rollback: $(dep_attr live)/$(dep_attr live_version)/$(dep_attr standby)/$(dep_attr standby_version), want blue/v1/green/v2"
dep_attr bad_versions | grep -q '"version":"v2"' || check_fail "v2 not in bad_versions: $(dep_attr bad_versions)"

# ---- history ----
state_json
python_json "$WORK/state.json" "
h = [e for e in d.get('extra', {}).get('history', []) if e.get('command') == 'rollback']
assert h, 'no rollback in extra.history'
e = h[-1]
assert (e['from_version'], e['to_version'], e['from_colour'], e['to_colour']) == ('v2', 'v1', 'green', 'blue'), e
assert e['forced'] is False, e
print('history:', json.dumps({k: e[k] for k in ('command', 'deployment', 'from_version', 'to_version', 'at')}))
" || check_fail "rollback not recorded in the change history"

# ---- a second rollback in a row would put the bad v2 back: refused ----
iac rollback web >"$WORK/rb-again.out" 2>&1 && { cat "$WORK/rb-again.out" >&2; check_fail "a second rollback (onto bad v2) exited 0"; }
grep -q "runs 'v2', which is marked bad" "$WORK/rb-again.out" || { cat "$WORK/rb-again.out" >&2; check_fail "second rollback: message"; }
ok "second rollback in a row refused: $(cut -c1-150 "$WORK/rb-again.out" | head -1)..."
expect_version v1 4 "after the refused second rollback"

# ---- v2 is bad: refused without -allow-bad ----
iac plan -var version=v2 >"$WORK/plan-bad.out" 2>&1 && { cat "$WORK/plan-bad.out" >&2; check_fail "plan of a bad version exited 0"; }
grep -q "version 'v2' is marked bad" "$WORK/plan-bad.out" && grep -q -- '-allow-bad' "$WORK/plan-bad.out" ||
	{ cat "$WORK/plan-bad.out" >&2; check_fail "plan of a bad version: no 'marked bad ... -allow-bad' message"; }
ok "plan refuses v2: $(grep -m1 'marked bad' "$WORK/plan-bad.out")"
iac apply -auto-approve -var version=v2 >"$WORK/apply-bad.out" 2>&1 && check_fail "apply of a bad version exited 0"
grep -q "version 'v2' is marked bad" "$WORK/apply-bad.out" || { cat "$WORK/apply-bad.out" >&2; check_fail "apply of a bad version: message"; }
expect_version v1 4 "after the refused apply"
iac plan -var version=v2 -allow-bad >"$WORK/plan-allow.out" 2>&1 || { cat "$WORK/plan-allow.out" >&2; fail "plan -allow-bad"; }
grep -q 'green already runs v2 (standby): reuse it' "$WORK/plan-allow.out" ||
	{ cat "$WORK/plan-allow.out" >&2; check_fail "plan -allow-bad does not show the standby reused"; }
iac apply -auto-approve -allow-bad -var version=v2 >"$WORK/apply-allow.out" 2>&1 ||
	{ cat "$WORK/apply-allow.out" >&2; fail "apply -allow-bad v2"; }
grep -q 'green already runs v2 (standby), reusing it' "$WORK/apply-allow.out" || check_fail "apply -allow-bad did not reuse the standby"
expect_version v2 8 "apply -allow-bad v2"

# a second measured rollback (v2 -> v1 again), then v2 back with -allow-bad
timed "$WORK/rb2.out" "$IAC" -no-color rollback web
[ "$TIMED_RC" = 0 ] || { cat "$WORK/rb2.out" >&2; fail "second rollback exited $TIMED_RC"; }
echo "$TIMED_MS" >>"$WORK/rollback.ms"
expect_version v1 8 "second rollback ($TIMED_MS ms wall)"
[ "$(dep_attr bad_versions | grep -o '"version":"v2"' | wc -l)" = 1 ] ||
	check_fail "v2 listed more than once in bad_versions: $(dep_attr bad_versions)"
iac apply -auto-approve -allow-bad -var version=v2 >"$WORK/apply-allow2.out" 2>&1 ||
	{ cat "$WORK/apply-allow2.out" >&2; fail "apply -allow-bad v2 (2)"; }

# ---- an apply holds the lock ----
# an apply that takes 60 s in an unrelated resource (the deployment's
# standby is left alone)
iac_bg "$WORK/long.out" apply -auto-approve -allow-bad -var version=v2 -var slow=60
long_pid=$BG_PID
for i in $(seq 1 300); do grep -q 'local.exec.slow: creating' "$WORK/long.out" && break; sleep 0.1; done
grep -q 'local.exec.slow: creating' "$WORK/long.out" || { cat "$WORK/long.out" >&2; fail "the long apply did not start"; }

timed "$WORK/rb-locked.out" "$IAC" -no-color rollback web
[ "$TIMED_RC" != 0 ] || { cat "$WORK/rb-locked.out" >&2; fail "rollback without -force succeeded while an apply holds the lock"; }
grep -q -- 'rollback -force' "$WORK/rb-locked.out" || { cat "$WORK/rb-locked.out" >&2; check_fail "the lock error does not mention -force"; }
ok "without -force: refused in $TIMED_MS ms: $(head -1 "$WORK/rb-locked.out")"
expect_version v2 4 "after the refused rollback"

timed "$WORK/rb-force.out" "$IAC" -no-color rollback web -force
[ "$TIMED_RC" = 0 ] || { cat "$WORK/rb-force.out" >&2; fail "rollback -force exited $TIMED_RC"; }
echo "$TIMED_MS" >>"$WORK/rollback.ms"
cat "$WORK/rb-force.out"
grep -q 'preempted the lock held by .iac apply' "$WORK/rb-force.out" || check_fail "rollback -force does not say it preempted the apply"
expect_version v1 8 "rollback -force ($TIMED_MS ms wall)"

# the preempted apply stops soon, and does not undo the rollback
wait_gone "$long_pid" 15 || check_fail "the preempted apply still runs 15 s after rollback -force"
wait "$long_pid"
echo "preempted apply exited $? ${WAITED}s after the rollback: $(grep -i 'interrupt\|cancel' "$WORK/long.out" | head -2 | tr '\n' ' ')"
expect_version v1 8 "after the preempted apply ended"
[ "$(dep_attr live)/$(dep_attr live_version)" = blue/v1 ] ||
	check_fail "state after the preempted apply ended: live $(dep_attr live)/$(dep_attr live_version), want blue/v1 (the apply overwrote the rollback?)"
state_json
python_json "$WORK/state.json" "
h = [e for e in d.get('extra', {}).get('history', []) if e.get('command') == 'rollback']
assert h and h[-1].get('forced') is True, 'no forced rollback in extra.history: %s' % h[-1:]
assert h[-1].get('preempted', {}).get('command') == 'apply', 'the preempted apply is not recorded: %s' % h[-1]
print('history:', json.dumps({k: h[-1][k] for k in ('command', 'forced', 'preempted', 'at')}))
" || check_fail "rollback -force not recorded in the change history"
iac plan -detailed-exitcode -var version=v1 >"$WORK/plan-after.out" 2>&1
[ $? != 1 ] || { cat "$WORK/plan-after.out" >&2; check_fail "plan after the forced rollback failed"; }

load_stop
load_expect_clean "3 rollbacks (one forced), 2 reuses of a standby, refused applies"

med=$(sort -n "$WORK/rollback.ms" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
echo "iac rollback wall time (ms): $(sort -n "$WORK/rollback.ms" | paste -sd' ') - median $med"
[ "$med" -le 1000 ] || fail_timing "iac rollback median $med ms (target <= 1000 ms)"
finish
