#!/bin/bash
# History pushed to a test-bed host over SSH: `history = { remote =
# "ssh://root@HOST/srv/hist.git" }` (host key from IAC_HISTORY_KNOWN_HOSTS,
# login with IAC_HISTORY_SSH_KEY) gets every revision; a push that fails
# (the repository moved away) warns and does not fail the apply, and the
# next command (a plan, which records nothing) pushes what was pending.
# No secret reaches the host. Needs root (network namespaces).
. "$(dirname "$0")/../lib/testbed.sh"
set -uo pipefail
t_need git ssh-keygen
FAILS=0
WORK=$(mktemp -d /tmp/iac-hist-ssh.XXXXXX)
BED=$WORK/bed
OUT=$WORK/out
cleanup() { t_bed_down "$BED"; rm -rf "$WORK"; }
trap cleanup EXIT
# libgit2 1.5.1 (Debian 12) keeps the known_hosts list libssh2 loads for every
# ssh connection (see tests/modules/test_git_ssh.sh): not iac's
printf 'leak:libssh2_knownhost_init\nleak:libgit2.so.1.5\n' >"$WORK/lsan.supp"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$WORK/lsan.supp"

t_bed_up "$BED" 1 "hs$$"
H=$(addr 1)
on_host 1 "git init -q --bare /srv/hist.git" || { echo "FAIL: cannot make the repository on the host" >&2; exit 1; }
mkdir -p "$WORK/cfg"
cat >"$WORK/cfg/main.lua" <<LUA
backend "local" { history = { remote = "ssh://root@$H/srv/hist.git" } }
variable "token" { sensitive = true }
variable "v" { default = "1" }
resource "local.file" "a" { path = "out/a", content = "a" .. var.v }
resource "local.file" "s" { path = "out/s", content = var.token }
LUA
biac() {   # iac in the test bed's controller namespace
	rc=0
	(cd "$WORK/cfg" && bash "$TESTBED" exec "$BED" env IAC_HISTORY_SSH_KEY="$BED/id_ed25519" \
		IAC_HISTORY_KNOWN_HOSTS="$BED/known_hosts" "$IAC" -no-color "$@" -var token=Hist0rySshSecret) >"$OUT" 2>&1 || rc=$?
}
host_revs() { on_host 1 "git --git-dir=/srv/hist.git log --oneline main 2>/dev/null | wc -l"; }

biac apply -auto-approve
[ "$rc" = 0 ] || { cat "$OUT"; check_fail "apply 1 exited $rc"; }
biac apply -auto-approve -var v=2
[ "$rc" = 0 ] || { cat "$OUT"; check_fail "apply 2 exited $rc"; }
n=$(host_revs)
[ "$n" = 2 ] && ok "both revisions pushed to $H over ssh" || check_fail "the host has $n revisions, not 2"
on_host 1 "git --git-dir=/srv/hist.git log -p main" >"$WORK/hostlog"
grep -q "Hist0rySshSecret" "$WORK/hostlog" && check_fail "the secret reached the host's history"
grep -q 'a2' "$WORK/hostlog" && ok "the host's history has the new content, and no secret" ||
	check_fail "the host's history lacks the new content"

# the repository goes away: the apply succeeds and warns
on_host 1 "mv /srv/hist.git /srv/hist.away"
biac apply -auto-approve -var v=3
[ "$rc" = 0 ] || { cat "$OUT"; check_fail "an apply failed because the history push failed"; }
grep -q "not pushed to 'ssh://root@$H/srv/hist.git'" "$OUT" && ok "failed push: $(grep -m1 'not pushed' "$OUT")" ||
	{ cat "$OUT"; check_fail "no warning about the failed push"; }
on_host 1 "mv /srv/hist.away /srv/hist.git"

# a plan (records nothing) pushes what is pending
biac plan
[ "$rc" = 0 ] || { cat "$OUT"; check_fail "plan exited $rc"; }
n=$(host_revs)
[ "$n" = 3 ] && grep -q "pushed the revisions an earlier command could not push" "$OUT" &&
	ok "the next command (a plan) pushed the pending revision" ||
	{ cat "$OUT"; check_fail "after the plan the host has $n revisions, not 3"; }
biac plan
grep -q "pushed the revisions" "$OUT" && check_fail "a plan with nothing pending pushed again"
finish
