#!/bin/bash
# ssh.user (Ansible's user module): created with uid, shell, supplementary
# groups and authorized keys (a login with that key works); a change of
# groups, shell or keys by hand is drift and is put back; destroy removes
# the user (and the home with remove_home).
. "$(dirname "$0")/lib.sh"
bed_up 1

on_host 1 'groupadd -f deployers && groupadd -f auditors'
ssh-keygen -q -t ed25519 -N '' -C 'deploy@ci' -f "$WORK/deploy_key"
key=$(cat "$WORK/deploy_key.pub")
write() {
	cat >"$WORK/main.lua" <<EOF
$(provider_block)
host "h1" { address = "$(addr 1)" }
resource "ssh.user" "deploy" { host = "h1", name = "deploy", uid = 2345, shell = "/bin/sh",
  groups = { $1 }, authorized_keys = { "$key" }, remove_home = true }
EOF
}
write '"deployers"'
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply failed"; }
[ "$(on_host 1 'getent passwd deploy | cut -d: -f3,7')" = "2345:/bin/sh" ] || fail "uid/shell"
on_host 1 'id -nG deploy' | grep -qw deployers || fail "not in deployers"
[ "$(on_host 1 'stat -c %a:%U /home/deploy/.ssh/authorized_keys')" = "600:deploy" ] || fail "authorized_keys mode/owner"
# the key logs in as deploy
out=$(bash "$TESTBED" exec "$BED" ssh -i "$WORK/deploy_key" -o UserKnownHostsFile="$BED/known_hosts" \
	-o BatchMode=yes -o ConnectTimeout=5 deploy@"$(addr 1)" id -un 2>&1) || fail "ssh as deploy: $out"
[ "$out" = deploy ] || fail "logged in as '$out'"
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1 || { cat "$WORK/p1.out"; fail "plan after apply is not clean"; }

# drift: groups and shell changed by hand, key file emptied
on_host 1 'usermod -G auditors -s /bin/bash deploy && : > /home/deploy/.ssh/authorized_keys'
iac plan -detailed-exitcode >"$WORK/p2.out" 2>&1
[ $? = 2 ] || { cat "$WORK/p2.out"; fail "plan did not notice the changes"; }
expect_in "$WORK/p2.out" "changed outside iac"
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply 2 failed"; }
[ "$(on_host 1 'getent passwd deploy | cut -d: -f7')" = "/bin/sh" ] || fail "shell not put back"
on_host 1 'id -nG deploy' | grep -qw auditors && fail "auditors kept"
on_host 1 'grep -q deploy@ci /home/deploy/.ssh/authorized_keys' || fail "key not put back"

# groups as a set: a new list is applied exactly
write '"auditors", "deployers"'
iac apply -auto-approve >"$WORK/a3.out" 2>&1 || { cat "$WORK/a3.out"; fail "apply 3 failed"; }
[ "$(on_host 1 'id -nG deploy' | tr ' ' '\n' | sort | tr '\n' ' ')" = "auditors deploy deployers " ] ||
	fail "groups: $(on_host 1 'id -nG deploy')"
iac plan -detailed-exitcode >"$WORK/p3.out" 2>&1 || { cat "$WORK/p3.out"; fail "plan after groups change is not clean"; }

iac destroy -auto-approve >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy failed"; }
on_host 1 'getent passwd deploy' && fail "user left"
on_host 1 'test ! -e /home/deploy' || fail "home left (remove_home = true)"
echo "ok: ssh.user"
