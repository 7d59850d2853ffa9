#!/usr/bin/env bash
# Three lxd.instances become SSH hosts in the same apply: its address is
# known only once it runs, and ssh resources on it wait for it. The
# base image carries dropbear (Debian's dropbear-bin and the libraries it
# links), root's authorized_keys comes from ssh_key.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lxd_base_image_ssh=1
. "$here/lib.sh"

ssh-keygen -q -t ed25519 -N '' -f "$W/id_ed25519" -C iac-test
: >"$W/known_hosts"
lxd_main "
provider 'ssh' { user = 'root', private_key = 'id_ed25519', known_hosts = 'known_hosts', connect_timeout = '10s' }
local pool = {}
for i = 1, 3 do   -- three instances; LXD names iact-* so the test bed cleans up after a crash
  local inst = resource 'lxd.instance' ('app' .. i) { name = 'iact-app' .. i, image = 'iact-base', profiles = { 'default' },
                                                     limits = { cpu = 1, memory = '256MB' }, ssh_key = file('id_ed25519.pub') }
  local h = host ('app' .. i) { address = inst.address }
  -- busybox has no install(1), which ssh.file uses: a guarded command instead
  resource 'ssh.exec' ('motd' .. i) { host = h, create = 'echo app ' .. i .. ' made by iac >/etc/motd',
                                      check = 'test -s /etc/motd' }
  pool[i] = h
end
output 'addresses' { value = { pool[1].address, pool[2].address, pool[3].address } }"

iac plan -no-color >"$TMP/plan.out" 2>&1 || { cat "$TMP/plan.out"; check_fail "plan failed"; finish; }
grep -q 'ssh.exec.motd1 will be created' "$TMP/plan.out" && ok "plan: commands on hosts that do not exist yet" ||
	{ cat "$TMP/plan.out"; check_fail "no file planned"; }
t0=$(date +%s.%N)
iac apply -auto-approve -ssh-accept-new -no-color >"$TMP/apply.out" 2>&1 || { cat "$TMP/apply.out"; check_fail "apply failed"; finish; }
t1=$(date +%s.%N)
ok "3 instances + a command over SSH on each in one apply: $(echo "$t1 - $t0" | bc | cut -c1-5) s"
for i in 1 2 3; do
	got=$(lxc exec "iact-app$i" -- cat /etc/motd 2>/dev/null)
	[ "$got" = "app $i made by iac" ] && ok "iact-app$i: /etc/motd written over SSH" || check_fail "iact-app$i motd: '$got'"
done
[ "$(grep -c ssh-ed25519 "$W/known_hosts")" = 3 ] && ok "the 3 host keys recorded in known_hosts" ||
	check_fail "known_hosts: $(cat "$W/known_hosts")"
iac plan -detailed-exitcode -no-color >"$TMP/plan2.out" 2>&1
rc=$?
[ $rc = 0 ] && ok "no-op plan afterwards (checks run over SSH)" || { cat "$TMP/plan2.out"; check_fail "plan: exit $rc"; }
iac destroy -auto-approve >"$TMP/destroy.out" 2>&1 || { cat "$TMP/destroy.out"; check_fail "destroy failed"; }
[ -z "$(lxc list --format csv -c n | grep '^iact-')" ] && ok "destroy removed the instances" || check_fail "left: $(lxc list --format csv -c n)"
finish
