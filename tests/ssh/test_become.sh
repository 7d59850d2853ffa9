#!/bin/bash
# become = true: iac logs in as a user that is not root and runs every
# command through sudo, with NOPASSWD or with a password from a sensitive
# variable (given on stdin, never on a command line, never printed). Files,
# directories and services made that way belong to root. A wrong password
# is a clear error; a password for a NOPASSWD rule is refused, never run.
. "$(dirname "$0")/lib.sh"
t_need sudo
bed_up 1

PW='Zq9sudoPW!x'
on_host 1 "useradd -m -s /bin/sh ops && usermod -p '*' ops && useradd -m -s /bin/sh nopw && usermod -p '*' nopw &&
	echo 'ops:$PW' | chpasswd &&
	for u in ops nopw; do install -d -m 0700 -o \$u -g \$u /home/\$u/.ssh &&
	  install -m 0600 -o \$u -g \$u /root/.ssh/authorized_keys /home/\$u/.ssh/authorized_keys; done &&
	mkdir -p /etc/sudoers.d && echo 'ops ALL=(ALL) ALL' > /etc/sudoers.d/ops &&
	echo 'nopw ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/nopw && chmod 0440 /etc/sudoers.d/*"

config() {   # USER BECOME_PASSWORD_EXPR
	cat >"$WORK/main.lua" <<EOF
variable "sudo_pw" { sensitive = true, default = "" }
provider "ssh" { user = "$1", private_key = "bed/id_ed25519", known_hosts = "bed/known_hosts",
                 connect_timeout = "10s", become = true $2 }
host "h1" { address = "$(addr 1)" }
resource "ssh.directory" "d" { host = "h1", path = "/srv/become-$1", mode = "0750", force_destroy = true }
resource "ssh.file" "f" { host = "h1", path = "/srv/become-$1/app.conf", content = "x\n", mode = "0600",
                          depends_on = { resources["ssh.directory.d"] } }
resource "ssh.exec" "who" { host = "h1", create = "id -un > /srv/become-$1/who", depends_on = { resources["ssh.directory.d"] } }
EOF
}

# NOPASSWD
config nopw ""
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "become with NOPASSWD failed"; }
[ "$(on_host 1 'stat -c %U:%a /srv/become-nopw/app.conf')" = "root:600" ] || fail "file not made as root"
[ "$(on_host 1 'cat /srv/become-nopw/who')" = root ] || fail "command did not run as root"
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1 || { cat "$WORK/p1.out"; fail "plan after become apply not clean"; }
iac destroy -auto-approve >"$WORK/d1.out" 2>&1 || { cat "$WORK/d1.out"; fail "destroy with become failed"; }

# a password, from a sensitive variable: never printed, never on a command line
config ops ', become_password = var.sudo_pw'
IAC_VAR_sudo_pw=$PW iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "become with a password failed"; }
[ "$(on_host 1 'cat /srv/become-ops/who')" = root ] || fail "command did not run as root (password)"
expect_not_in "$WORK/a2.out" "$PW"
on_host 1 "grep -rq '$PW' /var/log 2>/dev/null" && fail "the password is in a log on the host"
grep -q "$PW" "$WORK/.iac/state.json" && fail "the password is in state"

# a wrong password: a clear error, nothing done as the wrong user
on_host 1 'rm -rf /srv/become-ops'
IAC_VAR_sudo_pw=wrong iac apply -auto-approve >"$WORK/a3.out" 2>&1 && fail "a wrong sudo password was accepted"
grep -qi "sorry\|incorrect\|password" "$WORK/a3.out" || { cat "$WORK/a3.out"; fail "no word on the wrong password"; }

# a password for a NOPASSWD rule is refused, never run as a command
rm -rf "$WORK/.iac"
config nopw ', become_password = var.sudo_pw'
IAC_VAR_sudo_pw='touch /tmp/PWRAN' iac apply -auto-approve >"$WORK/a4.out" 2>&1 && fail "NOPASSWD with a password should fail"
expect_in "$WORK/a4.out" "sudo did not ask for the password"
on_host 1 'test ! -e /tmp/PWRAN' || fail "the password line ran as a command"
echo "ok: become"
