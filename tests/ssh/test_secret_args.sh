#!/bin/bash
# A secret never shows in `ps` on a host: values in ssh.exec/ssh.service
# `environment` and a sensitive value put into an ssh.exec command reach the
# remote shell on stdin and through the environment, not on any command
# line. Each command snapshots every process's arguments on the host while
# iac's own wrapper shells are alive, and checks the secret did arrive.
. "$(dirname "$0")/lib.sh"
bed_up 1
S=Zq9SECRETx41
# commands check the secret by its hash (the start command of a service is
# the service's own command line, so the test must not write S into it)
H=$(printf %s "$S" | sha256sum | cut -c1-16)
cat >"$WORK/main.lua" <<EOF
$(provider_block)
variable "pw" { sensitive = true }
host "h1" { address = "$(addr 1)" }
resource "ssh.exec" "env" {
  host = "h1", environment = { PW = var.pw },
  create = "[ \"\$(printf %s \"\$PW\" | sha256sum | cut -c1-16)\" = '$H' ] && ps -eo args > /tmp/ps_env.txt",
}
resource "ssh.exec" "cmd" {
  host = "h1",
  create = "echo " .. var.pw .. " > /tmp/got_cmd.txt; ps -eo args > /tmp/ps_cmd.txt",
}
resource "ssh.service" "svc" {
  host = "h1", environment = { PW = var.pw }, pidfile = "/run/svc.pid",
  start = "[ \"\$(printf %s \"\$PW\" | sha256sum | cut -c1-16)\" = '$H' ] && ps -eo args > /tmp/ps_svc.txt; exec sleep 300",
}
EOF
IAC_VAR_pw=$S iac apply -auto-approve >"$WORK/apply.out" 2>&1 || { cat "$WORK/apply.out"; fail "apply failed"; }
for f in ps_env ps_cmd ps_svc; do
	on_host 1 "cat /tmp/$f.txt" >"$WORK/$f.out" || fail "$f: the command did not run (or did not see the secret)"
	[ -s "$WORK/$f.out" ] || fail "$f: empty"
	# the snapshot holds the wrapper shells (else it proves nothing)
	grep -q 'IAC_COMMAND\|-s$\|sh -c' "$WORK/$f.out" || { cat "$WORK/$f.out"; fail "$f: no wrapper shell in the snapshot"; }
	expect_not_in "$WORK/$f.out" "$S"
done
[ "$(on_host 1 'cat /tmp/got_cmd.txt')" = "$S" ] || fail "the command did not get the secret"
expect_not_in "$WORK/apply.out" "$S"
IAC_VAR_pw=$S iac destroy -auto-approve >"$WORK/destroy.out" 2>&1 || { cat "$WORK/destroy.out"; fail "destroy failed"; }
echo "ok: no secret on any command line on the host"
