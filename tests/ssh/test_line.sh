#!/bin/bash
# ssh.line (Ansible's lineinfile): a line is appended, or replaces the
# first line matching `regexp` where it stands; the rest of the file, its
# mode and owner are kept; a line removed behind iac's back is drift; a
# changed line is replaced in place; destroy removes only that line.
. "$(dirname "$0")/lib.sh"
bed_up 1

on_host 1 'mkdir -p /srv/l && printf "# sshd\nPort 22\nPermitRootLogin yes\nUsePAM yes\n" > /srv/l/sshd.conf && chmod 0600 /srv/l/sshd.conf'
write() {
	cat >"$WORK/main.lua" <<EOF
$(provider_block)
host "h1" { address = "$(addr 1)" }
resource "ssh.line" "root" { host = "h1", path = "/srv/l/sshd.conf", line = "$1", regexp = "^#?PermitRootLogin " }
resource "ssh.line" "banner" { host = "h1", path = "/srv/l/sshd.conf", line = "Banner /etc/issue.net" }
resource "ssh.line" "new" { host = "h1", path = "/srv/l/new/file", line = "a \\\\\\\\ backslash and 'quotes'", create = true }
EOF
}
write "PermitRootLogin no"
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply failed"; }
want=$(printf '# sshd\nPort 22\nPermitRootLogin no\nUsePAM yes\nBanner /etc/issue.net')
[ "$(on_host 1 cat /srv/l/sshd.conf)" = "$want" ] || { on_host 1 cat /srv/l/sshd.conf; fail "lines not in place"; }
[ "$(on_host 1 stat -c %a /srv/l/sshd.conf)" = 600 ] || fail "mode not kept"
[ "$(on_host 1 cat /srv/l/new/file)" = 'a \\ backslash and '"'"'quotes'"'" ] || { on_host 1 cat /srv/l/new/file; fail "created file wrong"; }
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1 || { cat "$WORK/p1.out"; fail "plan after apply is not clean"; }

# removed behind iac's back: drift, put back
on_host 1 "sed -i '/^Banner/d' /srv/l/sshd.conf"
iac plan -detailed-exitcode >"$WORK/p2.out" 2>&1
[ $? = 2 ] || { cat "$WORK/p2.out"; fail "plan did not notice the missing line"; }
expect_in "$WORK/p2.out" "line missing from the file"
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply 2 failed"; }

# a changed line replaces the old one where it stands
write "PermitRootLogin prohibit-password"
iac apply -auto-approve >"$WORK/a3.out" 2>&1 || { cat "$WORK/a3.out"; fail "apply 3 failed"; }
want=$(printf '# sshd\nPort 22\nPermitRootLogin prohibit-password\nUsePAM yes\nBanner /etc/issue.net')
[ "$(on_host 1 cat /srv/l/sshd.conf)" = "$want" ] || { on_host 1 cat /srv/l/sshd.conf; fail "line not changed in place"; }

# destroy removes the managed lines only
iac destroy -auto-approve >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy failed"; }
want=$(printf '# sshd\nPort 22\nUsePAM yes')
[ "$(on_host 1 cat /srv/l/sshd.conf)" = "$want" ] || { on_host 1 cat /srv/l/sshd.conf; fail "destroy removed too much or too little"; }

# a missing file is an error unless create = true
sed -i 's|path = "/srv/l/sshd.conf", line = "Banner|path = "/srv/l/nope.conf", line = "Banner|' "$WORK/main.lua"
iac apply -auto-approve >"$WORK/a4.out" 2>&1 && fail "a line in a missing file was accepted"
expect_in "$WORK/a4.out" "/srv/l/nope.conf does not exist (set create = true to make it)"
echo "ok: ssh.line"
