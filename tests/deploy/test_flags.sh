#!/bin/bash
# Feature flags on the test bed: flag checkout_v2 is delivered as a flagd
# JSON file to the HAProxy host (host = the haproxy module's result, as in
# docs/flags.md's example) and to the 4 app hosts.
#  - apply writes main.lua's value (on for 10 % by userId) on all 5 hosts;
#  - `iac flag set checkout_v2 on -percent 50` changes every file within
#    seconds (timed), and `iac flag list` shows the live override;
#  - `iac plan` warns that the live value differs from main.lua and plans
#    no change; `iac apply` keeps the live value on the hosts;
#  - `iac rollback` applies flags_on_rollback (checkout_v2 = off) on every
#    host;
#  - `iac flag reset` goes back to main.lua's value; a later edit of the
#    declaration in main.lua wins over a live value (with a warning).
. "$(dirname "$0")/lib.sh"
FLAG_HOSTS="lb app1 app2 app3 app4"
setup

# flag_state N: "defaultVariant fractional" of the file on host hN, e.g.
# "off on:10,off:90" or "off -" (no targeting), "missing" without a file
flag_state() {
	on_host "$1" 'cat /etc/app/flags.json 2>/dev/null' | /usr/bin/python3 -c '
import json, sys
try:
    f = json.load(sys.stdin)["flags"]["checkout_v2"]
except Exception:
    print("missing"); sys.exit()
fr = f.get("targeting", {}).get("fractional")
print(f["defaultVariant"], ",".join("%s:%g" % (b[0], b[1]) for b in fr[1:]) if fr else "-")'
}
expect_flag() {   # STATE WHAT
	local n got bad=""
	for n in 1 2 3 4 5; do
		got=$(flag_state $n)
		[ "$got" = "$1" ] || bad+=" h$n=[$got]"
	done
	[ -z "$bad" ] || { check_fail "$2: want [$1] on every host, got$bad"; return 1; }
	ok "$2: [$1] on all 5 hosts"
}

expect_flag "off on:10,off:90" "after apply"

# ---- iac flag set: live within seconds ----
timed "$WORK/set.out" "$IAC" -no-color flag set checkout_v2 on -percent 50
[ "$TIMED_RC" = 0 ] || { cat "$WORK/set.out" >&2; fail "iac flag set exited $TIMED_RC"; }
cat "$WORK/set.out"
expect_flag "off on:50,off:50" "iac flag set on -percent 50 ($TIMED_MS ms wall)"
[ "$TIMED_MS" -le 5000 ] || fail_timing "iac flag set took $TIMED_MS ms for 5 hosts (target: seconds)"
grep -q '40.0% of users move from off to on' "$WORK/set.out" || check_fail "flag set does not say who moves"
iac flag list >"$WORK/list.out" 2>&1 || { cat "$WORK/list.out" >&2; fail "iac flag list"; }
grep -q 'live override since' "$WORK/list.out" || { cat "$WORK/list.out" >&2; check_fail "flag list does not show the override"; }

# ---- plan warns and does not revert; apply keeps the live value ----
iac plan -detailed-exitcode >"$WORK/plan.out" 2>&1
rc=$?
[ "$rc" = 0 ] || { cat "$WORK/plan.out" >&2; check_fail "plan after flag set exited $rc (want 0: nothing to change)"; }
grep -q "flag 'checkout_v2' was set live to .* main.lua says .*Keeping the live value" "$WORK/plan.out" ||
	{ cat "$WORK/plan.out" >&2; check_fail "plan does not warn that the live value differs from main.lua"; }
ok "plan: $(grep -m1 "was set live" "$WORK/plan.out" | cut -c1-200)..."
iac apply -auto-approve >"$WORK/apply.out" 2>&1 || { cat "$WORK/apply.out" >&2; fail "apply after flag set"; }
expect_flag "off on:50,off:50" "apply after flag set keeps the live value"

# ---- rollback applies flags_on_rollback ----
iac apply -auto-approve -var version=v2 >"$WORK/v2.out" 2>&1 || { cat "$WORK/v2.out" >&2; fail "apply v2"; }
expect_version v2 4 "v2 live"
timed "$WORK/rb.out" "$IAC" -no-color rollback web
[ "$TIMED_RC" = 0 ] || { cat "$WORK/rb.out" >&2; fail "rollback exited $TIMED_RC"; }
cat "$WORK/rb.out"
grep -q 'flag checkout_v2 -> off' "$WORK/rb.out" || check_fail "rollback does not report the flag"
expect_flag "off -" "iac rollback set flags_on_rollback ($TIMED_MS ms wall with 5 flag files)"
expect_version v1 4 "after the rollback"

# ---- reset, then main.lua wins after an edit ----
iac flag reset checkout_v2 >"$WORK/reset.out" 2>&1 || { cat "$WORK/reset.out" >&2; fail "flag reset"; }
expect_flag "off on:10,off:90" "iac flag reset"
iac flag set checkout_v2 on -percent 50 >"$WORK/set2.out" 2>&1 || { cat "$WORK/set2.out" >&2; fail "flag set (2)"; }
iac plan -var flag_on_percent=30 >"$WORK/plan2.out" 2>&1 || { cat "$WORK/plan2.out" >&2; fail "plan with an edited flag"; }
grep -q "main.lua changed since 'iac flag set' changed it live" "$WORK/plan2.out" ||
	{ cat "$WORK/plan2.out" >&2; check_fail "plan does not say main.lua's edit wins over the live value"; }
iac apply -auto-approve -var flag_on_percent=30 >"$WORK/apply2.out" 2>&1 || { cat "$WORK/apply2.out" >&2; fail "apply with an edited flag"; }
expect_flag "off on:30,off:70" "an edit of the declaration in main.lua wins"

# ---- a file changed by hand is drift: plan rewrites it ----
on_host 3 'echo "{}" > /etc/app/flags.json'
iac plan -detailed-exitcode -var flag_on_percent=30 >"$WORK/plan3.out" 2>&1
[ $? = 2 ] || { cat "$WORK/plan3.out" >&2; check_fail "plan does not notice a flag file changed by hand"; }
iac apply -auto-approve -var flag_on_percent=30 >"$WORK/apply3.out" 2>&1 || { cat "$WORK/apply3.out" >&2; fail "apply (drift)"; }
expect_flag "off on:30,off:70" "a file changed by hand is rewritten"
# ---- one target cannot take the change: the others do, and say so ----
on_host 4 'mv /etc/app /etc/app.saved && touch /etc/app'
iac flag set checkout_v2 on -percent 40 >"$WORK/set3.out" 2>&1
rc=$?
[ "$rc" = 1 ] || { cat "$WORK/set3.out" >&2; check_fail "flag set with one broken target exited $rc (want 1)"; }
grep -q "reached 4 of 5 targets" "$WORK/set3.out" && grep -q "NOT delivered to .*h4\|NOT delivered to .*app3" "$WORK/set3.out" ||
	{ cat "$WORK/set3.out" >&2; check_fail "flag set does not name the target it missed"; }
got=""; for n in 1 2 3 5; do got+="$(flag_state $n)|"; done
[ "$got" = "off on:40,off:60|off on:40,off:60|off on:40,off:60|off on:40,off:60|" ] &&
	ok "flag set with one broken target: the 4 others changed, exit 1 names the missed one" ||
	check_fail "the reachable targets did not take the change: $got"
on_host 4 'rm -f /etc/app && mv /etc/app.saved /etc/app'
iac flag set checkout_v2 on -percent 40 >"$WORK/set4.out" 2>&1 || { cat "$WORK/set4.out" >&2; check_fail "flag set again"; }
expect_flag "off on:40,off:60" "the same command again finishes the job"
finish
