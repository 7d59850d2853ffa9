#!/usr/bin/env bash
# lxd.instance against a real LXD: two containers from the test's own
# base image get addresses; a second plan is a no-op; one stopped with
# `lxc stop` shows in the plan and apply starts it; one deleted behind iac's
# back is planned for re-creation; a new image replaces; destroy removes
# everything. The client key is never printed nor stored.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

two() {   # $1 = image of iact-b, $2 = memory limit
	lxd_main "
local inst = {}
for _, n in ipairs({ 'a', 'b' }) do
  inst[n] = resource 'lxd.instance' ('iact-' .. n) { image = (n == 'b') and '$1' or 'iact-base', profiles = { 'default' },
                                           limits = { cpu = 1, memory = '${2:-256MB}' } }
end
output 'a_address' { value = inst.a.address }"
}
two iact-base
t0=$(date +%s.%N)
iac apply -auto-approve >"$TMP/apply1.out" 2>&1 || { cat "$TMP/apply1.out"; check_fail "first apply failed"; finish; }
t1=$(date +%s.%N)
ok "apply of 2 instances: $(echo "$t1 - $t0" | bc) s"
for n in iact-a iact-b; do
	[ "$(inst_status $n)" = Running ] && ok "$n is running" || check_fail "$n: status '$(inst_status $n)'"
done
addr=$(lxc list iact-a --format csv -c 4 | cut -d' ' -f1)
grep -q "$addr" "$W/.iac/state.json" 2>/dev/null || iac state show lxd.instance.iact-a 2>/dev/null | grep -q "$addr" ||
	grep -rq "$addr" "$W/.iac" && ok "iact-a's address $addr is in state" || check_fail "address '$addr' not in state"
lxc config get iact-a limits.memory | grep -qx 256MB && ok "limits.memory set" || check_fail "limits.memory: $(lxc config get iact-a limits.memory)"
keyline=$(sed -n 2p "$LXD_CLIENT_KEY")
grep -rqF "$keyline" "$W/.iac" "$TMP"/apply1.out && { grep -rlF "$keyline" "$W/.iac" "$TMP"/apply1.out; check_fail "the client key is in state or output"; } ||
	ok "client key not in state or output"

iac plan -detailed-exitcode >"$TMP/plan0.out" 2>&1
rc=$?
[ $rc = 0 ] && ok "no-op plan after apply" || { cat "$TMP/plan0.out"; check_fail "plan after apply: exit $rc, want 0"; }

# stopped behind iac's back
lxc stop --force iact-a
iac plan -no-color -detailed-exitcode >"$TMP/plan1.out" 2>&1
rc=$?
[ $rc = 2 ] && grep -q 'Stopped' "$TMP/plan1.out" && grep -q 'lxd.instance.iact-a' "$TMP/plan1.out" &&
	ok "a stopped instance shows in the plan" || { cat "$TMP/plan1.out"; check_fail "stop not planned (exit $rc)"; }
iac apply -auto-approve >"$TMP/apply2.out" 2>&1 || { cat "$TMP/apply2.out"; check_fail "apply after stop failed"; }
[ "$(inst_status iact-a)" = Running ] && ok "apply started iact-a again" || check_fail "iact-a: '$(inst_status iact-a)'"

# deleted behind iac's back
lxc delete --force iact-b
iac plan -no-color >"$TMP/plan2.out" 2>&1
grep -q 'lxd.instance.iact-b will be created' "$TMP/plan2.out" && grep -q 'deleted outside iac' "$TMP/plan2.out" &&
	ok "a deleted instance is planned for re-creation" || { cat "$TMP/plan2.out"; check_fail "re-create not planned"; }
iac apply -auto-approve >"$TMP/apply3.out" 2>&1 || { cat "$TMP/apply3.out"; check_fail "re-create apply failed"; }
[ "$(inst_status iact-b)" = Running ] && ok "iact-b made again" || check_fail "iact-b: '$(inst_status iact-b)'"

# limits changed in place (PUT of the instance as read, with its ETag), no restart
uuid=$(lxc config get iact-a volatile.uuid)
two iact-base 384MB
iac plan -no-color >"$TMP/plan25.out" 2>&1
grep -q 'lxd.instance.iact-a will be updated in place' "$TMP/plan25.out" && ok "a limit change is an update in place" ||
	{ cat "$TMP/plan25.out"; check_fail "no update planned"; }
iac apply -auto-approve >"$TMP/apply25.out" 2>&1 || { cat "$TMP/apply25.out"; check_fail "limits apply failed"; }
[ "$(lxc config get iact-a limits.memory)" = 384MB ] && [ "$(lxc config get iact-a volatile.uuid)" = "$uuid" ] &&
	[ "$(inst_status iact-a)" = Running ] && ok "limits.memory now 384MB on the same running instance" ||
	check_fail "limits.memory '$(lxc config get iact-a limits.memory)', uuid $uuid -> $(lxc config get iact-a volatile.uuid)"
lxc config set iact-a limits.memory 1GB
iac plan -no-color -detailed-exitcode >"$TMP/plan26.out" 2>&1
[ $? = 2 ] && grep -q '1GB' "$TMP/plan26.out" && ok "a limit changed with lxc shows in the plan" ||
	{ cat "$TMP/plan26.out"; check_fail "limit drift not shown"; }
iac apply -auto-approve >/dev/null 2>&1
[ "$(lxc config get iact-a limits.memory)" = 384MB ] && ok "apply put it back" || check_fail "limit drift not undone"

# a new image replaces
lxc image alias create iact-base2 "$LXD_IMAGE_FP" >/dev/null 2>&1
two iact-base2 384MB
iac plan -no-color >"$TMP/plan3.out" 2>&1
grep -q 'lxd.instance.iact-b must be replaced' "$TMP/plan3.out" && ok "image change planned as a replacement" ||
	{ cat "$TMP/plan3.out"; check_fail "no replacement planned"; }
grep -q 'lxd.instance.iact-a' "$TMP/plan3.out" && check_fail "iact-a is in the plan" || true
old=$(lxc config get iact-b volatile.uuid)
iac apply -auto-approve >"$TMP/apply4.out" 2>&1 || { cat "$TMP/apply4.out"; check_fail "replace apply failed"; }
new=$(lxc config get iact-b volatile.uuid)
[ -n "$new" ] && [ "$old" != "$new" ] && [ "$(inst_status iact-b)" = Running ] && ok "iact-b replaced" ||
	check_fail "iact-b not replaced ($old -> $new)"

iac destroy -auto-approve >"$TMP/destroy.out" 2>&1 || { cat "$TMP/destroy.out"; check_fail "destroy failed"; }
[ -z "$(lxc list --format csv -c n | grep '^iact-')" ] && ok "destroy removed every instance" ||
	check_fail "left: $(lxc list --format csv -c n)"
lxc image alias delete iact-base2 >/dev/null 2>&1
finish
