#!/bin/bash
# Every change leaves a git revision written through libgit2: applies,
# destroy, state rm, state push, force-unlock. `iac state history` lists
# them newest first with counts, `state show -rev` and `state diff` read
# them back, plain `git` reads the repository (log, fsck), secrets are in no
# revision, and `history = { remote = ... }` pushes to a bare repository (a
# failing push warns and does not fail the apply; the next one catches up).
# Then the etcd backend: two runners (two directories) record into one
# history kept in etcd, and each one's mirror shows both.
. "$(dirname "$0")/lib.sh"
t_need git
D=$TMP/d
mkdir -p "$D"
cat >"$D/main.lua" <<'LUA'
backend "local" { history = { remote = "file://REMOTE" } }
variable "token" { sensitive = true }
variable "v" { default = "1" }
resource "local.file" "a" { path = "out/a", content = "a" .. var.v }
resource "local.file" "b" { path = "out/b", content = "b" }
resource "local.file" "secret" { path = "out/s", content = var.token }
LUA
sed -i "s|REMOTE|$TMP/remote.git|" "$D/main.lua"
git init -q --bare "$TMP/remote.git"
run() { (cd "$D" && "$IAC" "$@" -var token=Hist0rySecret) ; }

run apply -auto-approve >"$TMP/1.out" 2>&1 || { cat "$TMP/1.out"; fail "apply 1"; }
sleep 1.1   # a second later: an unchanged resource must not be rewritten (updated_at)
run apply -auto-approve -var v=2 >"$TMP/2.out" 2>&1 || { cat "$TMP/2.out"; fail "apply 2"; }
(cd "$D" && "$IAC" state rm local.file.b >/dev/null) || fail "state rm"
(cd "$D" && "$IAC" state history >"$TMP/h.out") || fail "state history"
cat "$TMP/h.out"
[ "$(wc -l <"$TMP/h.out")" = 3 ] || fail "3 revisions expected"
head -1 "$TMP/h.out" | grep -q "state rm" || fail "newest first: state rm on top"
sed -n 2p "$TMP/h.out" | grep -q "apply .*+0 ~1 -0" || fail "second apply counts"
sed -n 3p "$TMP/h.out" | grep -q "apply .*+3 ~0 -0" || fail "first apply counts"
(cd "$D" && "$IAC" show -json) | "$T_PY" -c 'import json,sys; d=json.load(sys.stdin); h=d["extra"].get("history",[]); assert len(h)==3, h' ||
	fail "the events in state (extra.history, read by iac rollback) were lost to the git record"
ok "state history: 3 revisions newest first with counts; the 3 events also in state"

(cd "$D" && "$IAC" state history local.file.a | wc -l | grep -qx 2) || fail "history of one address"
(cd "$D" && "$IAC" state show -rev 1 local.file.a) | grep -q '"a1"' || fail "show -rev 1 shows the old content"
(cd "$D" && "$IAC" state diff 1 2) >"$TMP/diff.out" || fail "state diff"
grep -q '^~ local.file.a' "$TMP/diff.out" && grep -q 'content: "a1" -> "a2"' "$TMP/diff.out" || { cat "$TMP/diff.out"; fail "diff 1 2"; }
(cd "$D" && "$IAC" state diff HEAD~1) | grep -q '^- local.file.b' || fail "diff HEAD~1 shows the removal"
ok "show -rev and diff: $(grep content "$TMP/diff.out" | head -1 | sed 's/^ *//')"

G="git --git-dir=$D/.iac/history.git"
[ "$($G log --oneline | wc -l)" = 3 ] || fail "git log does not show 3 commits"
$G fsck --strict >/dev/null 2>&1 || fail "git fsck"
$G log -p >"$TMP/logp"
grep -q Hist0rySecret "$TMP/logp" && fail "the secret is in the git history"
grep -rq Hist0rySecret "$D/.iac" && fail "the secret is in .iac/"
ok "plain git reads it ($($G log -1 --format=%s)), fsck clean, no secret in any revision"

[ "$(git --git-dir="$TMP/remote.git" log --oneline main | wc -l)" = 3 ] || fail "remote does not have 3 revisions"
mv "$TMP/remote.git" "$TMP/remote.away"
run apply -auto-approve -var v=3 >"$TMP/3.out" 2>&1 || { cat "$TMP/3.out"; fail "an apply failed because the history push failed"; }
grep -q "not pushed" "$TMP/3.out" || { cat "$TMP/3.out"; fail "no warning about the failed push"; }
mv "$TMP/remote.away" "$TMP/remote.git"
run apply -auto-approve -var v=4 >"$TMP/4.out" 2>&1 || fail "apply 4"
[ "$(git --git-dir="$TMP/remote.git" log --oneline main | wc -l)" = 5 ] || fail "the next push did not catch up"
ok "pushed to a bare repository; a failed push warned, the next one caught up (5 revisions there)"

# --- etcd: two runners, one history ----------------------------------------------
etcd_single
for r in ra rb; do
	config "$TMP/$r" "$ETCD_URL" iac/hist 5s "variable \"token\" { sensitive = true }
resource \"local.file\" \"$r\" { path = \"out/$r\", content = \"$r\" }
resource \"local.file\" \"shared\" { path = \"out/shared\", content = \"shared\" }
resource \"local.file\" \"s$r\" { path = \"out/s$r\", content = var.token }"
done
git init -q --bare "$TMP/etcd-remote.git"
erun() {   # a runner, with the history remote given as CI would (-backend-config)
	local r=$1
	shift
	(cd "$TMP/$r" && "$IAC" "$@" -var token=Etcd0HistSecret -backend-config "history_remote=file://$TMP/etcd-remote.git")
}
erun ra apply -auto-approve >"$TMP/ra.out" 2>&1 || { cat "$TMP/ra.out"; fail "runner A"; }
erun rb apply -auto-approve >"$TMP/rb.out" 2>&1 || { cat "$TMP/rb.out"; fail "runner B"; }
(cd "$TMP/ra" && "$IAC" state history) >"$TMP/ha.out" || fail "history on A"
[ "$(wc -l <"$TMP/ha.out")" = 2 ] || { cat "$TMP/ha.out"; fail "runner A does not see B's revision"; }
etcd_keys "$ETCD_URL" iac/hist/history/ | grep -q head || fail "no history head in etcd"
# (through a file: with pipefail, `git log | grep -q` fails when grep quits
# before git has written its last line)
git --git-dir="$TMP/ra/.iac/history.git" log --oneline >"$TMP/ra.log"
grep -q "rev 2" "$TMP/ra.log" || { cat "$TMP/ra.log"; fail "A's mirror lacks rev 2"; }
ok "etcd: runner B's revision is in A's history and mirror ($(etcd_keys "$ETCD_URL" iac/hist/history/ | wc -l) keys)"
[ "$(git --git-dir="$TMP/etcd-remote.git" log --oneline main | wc -l)" = 2 ] ||
	fail "the etcd backend's history remote does not have both runners' revisions"
# etcd keeps the revisions as compressed packs: grep what they unpack to
git --git-dir="$TMP/ra/.iac/history.git" log -p >"$TMP/ra.logp"
git --git-dir="$TMP/etcd-remote.git" log -p main >>"$TMP/ra.logp"
grep -q sra "$TMP/ra.logp" || fail "the revisions lack the resources (the secret check would prove nothing)"
grep -q Etcd0HistSecret "$TMP/ra.logp" && fail "the secret is in the history kept in etcd"
etcd_values "$ETCD_URL" iac/hist/ | grep -aq Etcd0HistSecret && fail "the secret is in etcd"
ok "etcd: both revisions pushed to the history remote (file://); no secret in etcd, its history or the remote"
echo PASS
