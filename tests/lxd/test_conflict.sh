#!/usr/bin/env bash
# Two paths of the lxd provider that need LXD to misbehave on cue, against
# a real LXD:
#  - a concurrent change: between iac's GET of a profile (or instance) and
#    its PUT with If-Match, someone else changes the object (a TLS proxy in
#    front of LXD, tests/lxd/conflict_proxy.py, runs `lxc profile set ...`
#    at that moment). LXD answers 412; iac says the object was changed by
#    someone else, quotes LXD, writes nothing and keeps its state; the
#    other writer's change is kept; the next plan and apply converge;
#  - an operation that outlives operation_timeout: an instance whose start
#    runs a 12 s pre-start hook, with operation_timeout = "3s". The apply
#    fails within seconds saying which operation was still running and that
#    operation_timeout ran out, the instance it had made is not in state;
#    the next apply (hook gone) deletes the leftover, which carries this
#    resource's mark, and creates it again; an instance of that name made
#    by hand (no mark) is refused with an import hint, never deleted.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

PROXY_PID=
trap '[ -n "$PROXY_PID" ] && t_stop_pid "$PROXY_PID"; cleanup' EXIT

# ---- If-Match: a change between iac's read and its write ---------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-keyout "$TMP/proxy.key" -out "$TMP/proxy.crt" -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 2>/dev/null || fail "openssl: proxy certificate"
PPORT=$(lxd_free_port)
ARM=$TMP/arm
"$T_PY" "$here/conflict_proxy.py" "$PPORT" "$TMP/proxy.crt" "$TMP/proxy.key" "$LXD_URL" \
	"$LXD_CLIENT_CERT" "$LXD_CLIENT_KEY" "$ARM" >"$TMP/proxy.out" 2>"$TMP/proxy.err" &
PROXY_PID=$!
t_wait_port "$PPORT" || fail "the proxy did not start: $(cat "$TMP/proxy.err")"

conf() {   # MEMORY: a profile and an instance on it, through the proxy
	cat >"$W/main.lua" <<LUA
variable "lxd_key" { sensitive = true }
provider "lxd" { endpoint = "https://127.0.0.1:$PPORT", client_cert = "$LXD_CLIENT_CERT", client_key = var.lxd_key,
                 server_cert = "$TMP/proxy.crt" }
local prof = resource "lxd.profile" "iact-c1" { description = "conflict test", config = { ["limits.memory"] = "$1" } }
resource "lxd.instance" "iact-c1" { image = "iact-base", profiles = { "default", prof.name }, limits = { memory = "$1" } }
LUA
}
conf 128MB
iac apply -auto-approve -no-color >"$TMP/apply1.out" 2>&1 || { cat "$TMP/apply1.out" "$TMP/proxy.err"; fail "first apply"; }
ok "profile and instance made through the proxy"

conf 192MB
echo "lxc profile set iact-c1 user.other-writer yes" >"$ARM"
cp "$W/.iac/state.json" "$TMP/state.before" 2>/dev/null
iac apply -auto-approve -no-color >"$TMP/conflict.out" 2>&1 && check_fail "apply succeeded over a concurrent change"
cat "$TMP/conflict.out"
[ ! -e "$ARM" ] || check_fail "the proxy never made its change (no PUT with If-Match?)"
grep -q "profile 'iact-c1'.*was changed by someone else while iac updated it" "$TMP/conflict.out" &&
	grep -q "run plan again" "$TMP/conflict.out" &&
	ok "LXD's 412 is reported: the profile was changed by someone else; run plan again" ||
	check_fail "no clear error for the concurrent change"
grep -qi "etag" "$TMP/conflict.out" && ok "LXD's own words are quoted: $(grep -oi '[^(]*etag[^)]*' "$TMP/conflict.out" | head -1)" ||
	check_fail "LXD's answer is not quoted"
[ "$(lxc profile get iact-c1 limits.memory)" = 128MB ] && ok "the profile was not written (still 128MB)" ||
	check_fail "profile limits.memory is $(lxc profile get iact-c1 limits.memory)"
[ "$(lxc profile get iact-c1 user.other-writer)" = yes ] && ok "the other writer's change is kept" ||
	check_fail "the other writer's change was lost"
python3 - "$W/.iac/state.json" <<'PY' && ok "state still records 128MB for the profile" || check_fail "state changed by a refused write"
import json, sys
s = json.load(open(sys.argv[1]))
r = [r for r in s["resources"] if r["address"] == "lxd.profile.iact-c1"][0]
assert r["attributes"]["config"]["limits.memory"] == "128MB", r
PY
iac plan -no-color -detailed-exitcode >"$TMP/plan2.out" 2>&1
rc=$?
[ $rc = 2 ] && grep -q "lxd.profile.iact-c1 will be updated in place" "$TMP/plan2.out" &&
	ok "plan again: the profile update is still planned" || { cat "$TMP/plan2.out"; check_fail "plan after the conflict (exit $rc)"; }
iac apply -auto-approve -no-color >"$TMP/apply3.out" 2>&1 || { cat "$TMP/apply3.out"; check_fail "apply after the conflict"; }
[ "$(lxc profile get iact-c1 limits.memory)" = 192MB ] && [ "$(lxc config get iact-c1 limits.memory)" = 192MB ] &&
	ok "the next apply converges (profile and instance at 192MB)" || check_fail "not converged after the conflict"

# the same on an instance's config: changed by hand between read and write
conf 256MB
echo "lxc config set iact-c1 user.other-writer yes" >"$ARM"
sed -i 's/"lxd.profile" "iact-c1" { description = "conflict test", config = { \["limits.memory"\] = "256MB" } }/"lxd.profile" "iact-c1" { description = "conflict test", config = { ["limits.memory"] = "192MB" } }/' "$W/main.lua"
iac apply -auto-approve -no-color >"$TMP/conflict2.out" 2>&1 && check_fail "instance update succeeded over a concurrent change"
grep -q "instance 'iact-c1' was changed by someone else while iac updated it" "$TMP/conflict2.out" &&
	[ "$(lxc config get iact-c1 limits.memory)" = 192MB ] && [ "$(lxc config get iact-c1 user.other-writer)" = yes ] &&
	ok "instance: the concurrent change is reported, iac's write refused, the other change kept" ||
	{ cat "$TMP/conflict2.out"; check_fail "instance conflict"; }
iac apply -auto-approve -no-color >"$TMP/apply4.out" 2>&1 && [ "$(lxc config get iact-c1 limits.memory)" = 256MB ] &&
	ok "the next apply converges (instance at 256MB)" || { cat "$TMP/apply4.out"; check_fail "instance not converged"; }
iac destroy -auto-approve -no-color >"$TMP/destroy1.out" 2>&1 || { cat "$TMP/destroy1.out"; check_fail "destroy"; }
t_stop_pid "$PROXY_PID"
PROXY_PID=

# ---- an operation longer than operation_timeout ------------------------------
slow() {   # HOOK (Lua string, "" for none)
	cat >"$W/main.lua" <<LUA
variable "lxd_key" { sensitive = true }
provider "lxd" { endpoint = "$LXD_URL", client_cert = "$LXD_CLIENT_CERT", client_key = var.lxd_key,
                 server_cert = "$LXD_SERVER_CERT", operation_timeout = "3s" }
resource "lxd.instance" "iact-slow" { image = "iact-base", config = { $1 } }
LUA
}
slow '["raw.lxc"] = "lxc.hook.pre-start = /bin/sleep 12"'
t0=$SECONDS
iac apply -auto-approve -no-color >"$TMP/slow.out" 2>&1 && check_fail "apply succeeded although the start outlived operation_timeout"
took=$((SECONDS - t0))
cat "$TMP/slow.out"
grep -q "cannot create instance 'iact-slow'" "$TMP/slow.out" && grep -qi "still running after 3s (operation_timeout)" "$TMP/slow.out" &&
	ok "the start that outlived operation_timeout is reported as such, after $took s" ||
	check_fail "no operation_timeout error"
[ "$took" -lt 30 ] || check_fail "the apply took $took s with operation_timeout = 3s"
python3 - "$W/.iac/state.json" <<'PY' && ok "the instance is not in state" || check_fail "a failed create is in state"
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except FileNotFoundError:
    sys.exit(0)
assert not [r for r in s.get("resources", []) if r["address"] == "lxd.instance.iact-slow"], s["resources"]
PY
# LXD may still hold what the create made (its start goes on after iac
# stopped waiting): the next apply, without the hook, deletes that leftover
# (it carries this resource's mark) and makes the instance again. While
# LXD is still busy with it, an apply says so; once the hook is over (12 s)
# one must succeed.
slow ''
n=0
for _ in $(seq 1 25); do
	n=$((n + 1))
	iac apply -auto-approve -no-color >"$TMP/slow2.out" 2>&1 && break
	grep -q "leftover of an earlier create that failed is in the way" "$TMP/slow2.out" ||
		{ cat "$TMP/slow2.out"; check_fail "apply $n after the timeout failed without saying why"; break; }
	sleep 1
done
cat "$TMP/slow2.out"
[ "$(inst_status iact-slow)" = Running ] && grep -q "lxd.instance.iact-slow: created" "$TMP/slow2.out" &&
	ok "apply $n after the timeout creates iact-slow" ||
	check_fail "iact-slow not created after the timeout: '$(inst_status iact-slow)'"
if grep -q "the instance it had made could not be deleted yet" "$TMP/slow.out"; then
	grep -q "deleted the instance 'iact-slow' an earlier create had left" "$TMP/slow2.out" &&
		ok "the leftover of the timed-out create was deleted and the instance made again" ||
		check_fail "no word of the leftover"
fi
[ -z "$(lxc config get iact-slow raw.lxc)" ] && ok "the instance is the new one (no hook)" || check_fail "the old instance was kept"
iac plan -detailed-exitcode -no-color >"$TMP/slow-plan.out" 2>&1 && ok "plan quiet afterwards" ||
	{ cat "$TMP/slow-plan.out"; check_fail "plan not quiet after the recovery"; }

# an instance of that name that iac did not make is never taken over
iac destroy -auto-approve -no-color >/dev/null 2>&1 || check_fail "destroy"
lxc launch iact-base iact-slow >/dev/null 2>&1 || check_fail "lxc launch iact-slow"
iac apply -auto-approve -no-color >"$TMP/hand.out" 2>&1 && check_fail "apply took over an instance made by hand"
grep -q "an instance named 'iact-slow' exists that this resource did not make: import it (iac import lxd.instance.iact-slow iact-slow)" "$TMP/hand.out" &&
	[ "$(inst_status iact-slow)" = Running ] && ok "an instance made by hand with that name: refused, import suggested, left running" ||
	{ cat "$TMP/hand.out"; check_fail "the hand-made instance"; }
lxc delete --force iact-slow >/dev/null 2>&1
iac destroy -auto-approve -no-color >/dev/null 2>&1 || check_fail "destroy"
finish
