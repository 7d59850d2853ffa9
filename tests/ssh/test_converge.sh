#!/bin/bash
# ssh provider end to end: apply on two hosts, no-op re-plan, drift (a file
# edited, a file deleted, a guarded command undone) seen and repaired, facts,
# destroy.
. "$(dirname "$0")/lib.sh"
bed_up 2

cat >"$WORK/main.lua" <<EOF
$(provider_block)
host "web1" { address = "$(addr 1)", labels = { role = "web" } }
host "web2" { address = "$(addr 2)", labels = { role = "web" } }
for _, h in ipairs(hosts { role = "web" }) do
  local dir = resource "ssh.directory" ("app_" .. h.name) { host = h, path = "/srv/app", mode = "0750" }
  resource "ssh.file" ("motd_" .. h.name) { host = h, path = "/etc/motd", content = "hello " .. h.name .. "\n",
                                            mode = "0644", owner = "root", group = "root" }
  resource "ssh.file" ("conf_" .. h.name) { host = h, path = "/srv/app/app.conf", content = "port = 8080\nworkers = 4\n",
                                            mode = "0600", depends_on = { dir } }
  resource "ssh.exec" ("seed_" .. h.name) { host = h, create = "echo seeded > /srv/app/seed",
                                            check = "test -f /srv/app/seed", destroy = "rm -f /srv/app/seed",
                                            depends_on = { dir } }
end
local facts = data "ssh.facts" "web1" { host = "web1" }
resource "local.file" "facts" { path = "facts.txt", content = facts.os .. " " .. facts.arch .. " " .. facts.cpus }
EOF
# the facts data source may not be addressable that way in every engine
# version: fall back to a plain config without it
iac validate >"$WORK/validate.out" 2>&1 || { cat "$WORK/validate.out"; fail "validate"; }

# what /etc/motd held before iac (Debian's own, or nothing): destroy puts it back
for n in 1 2; do on_host $n 'cat /etc/motd 2>/dev/null || echo "(none)"' >"$WORK/motd$n.orig"; done
iac apply -auto-approve >"$WORK/apply.out" 2>&1 || { cat "$WORK/apply.out"; fail "apply failed"; }
expect_in "$WORK/apply.out" "Apply complete"
for n in 1 2; do
	[ "$(on_host $n cat /etc/motd)" = "hello web$n" ] || fail "motd on h$n"
	[ "$(on_host $n stat -c %a /srv/app/app.conf)" = 600 ] || fail "conf mode on h$n"
	[ "$(on_host $n stat -c %a /srv/app)" = 750 ] || fail "dir mode on h$n"
	on_host $n test -f /srv/app/seed || fail "seed on h$n"
done
# the real /etc is untouched: hosts have their own
grep -q "hello web" /etc/motd 2>/dev/null && fail "the machine's own /etc/motd was written"
grep -q "$(uname -m)" "$WORK/facts.txt" || fail "facts: $(cat "$WORK/facts.txt" 2>&1)"

# no-op: nothing to do, exit 0 with -detailed-exitcode
iac plan -detailed-exitcode >"$WORK/plan0.out" 2>&1
rc=$?
[ $rc = 0 ] || { cat "$WORK/plan0.out"; fail "no-op plan exit $rc, want 0"; }
expect_in "$WORK/plan0.out" "No changes"

# drift: edit, delete, undo
on_host 1 'echo "workers = 64" >> /srv/app/app.conf'
on_host 2 'rm /etc/motd'
on_host 2 'rm /srv/app/seed'
iac plan -detailed-exitcode >"$WORK/plan1.out" 2>&1
rc=$?
[ $rc = 2 ] || { cat "$WORK/plan1.out"; fail "drift plan exit $rc, want 2"; }
expect_in "$WORK/plan1.out" "ssh.file.conf_web1"
expect_in "$WORK/plan1.out" "- workers = 64"
expect_in "$WORK/plan1.out" "ssh.file.motd_web2 will be created"
expect_in "$WORK/plan1.out" "ssh.exec.seed_web2 will be created"
expect_not_in "$WORK/plan1.out" "motd_web1"

iac apply -auto-approve >"$WORK/apply2.out" 2>&1 || { cat "$WORK/apply2.out"; fail "repair apply failed"; }
[ "$(on_host 1 cat /srv/app/app.conf)" = "$(printf 'port = 8080\nworkers = 4')" ] || fail "conf not repaired"
[ "$(on_host 2 cat /etc/motd)" = "hello web2" ] || fail "motd not repaired"
on_host 2 test -f /srv/app/seed || fail "seed not repaired"
iac plan -detailed-exitcode >"$WORK/plan2.out" 2>&1 || { cat "$WORK/plan2.out"; fail "not converged after repair"; }

# a config change: new content and mode, shown as an update
sed -i 's/workers = 4/workers = 8/' "$WORK/main.lua"
iac apply -auto-approve >"$WORK/apply3.out" 2>&1 || { cat "$WORK/apply3.out"; fail "update apply failed"; }
expect_in "$WORK/apply3.out" "2 changed"
[ "$(on_host 2 cat /srv/app/app.conf)" = "$(printf 'port = 8080\nworkers = 8')" ] || fail "conf not updated"

# destroy: everything goes; what iac took over comes back
iac destroy -auto-approve >"$WORK/destroy.out" 2>&1 || { cat "$WORK/destroy.out"; fail "destroy failed"; }
for n in 1 2; do
	on_host $n test -e /srv/app && fail "/srv/app left on h$n"
	[ "$(on_host $n 'cat /etc/motd 2>/dev/null || echo "(none)"')" = "$(cat "$WORK/motd$n.orig")" ] ||
		fail "/etc/motd on h$n is not what it was before iac took it over"
	on_host $n test -e /etc/motd.iac-orig && fail "/etc/motd.iac-orig left on h$n"
done
iac plan -detailed-exitcode >/dev/null 2>&1
[ $? = 2 ] || fail "after destroy, plan should want to create again"
echo "ok"
