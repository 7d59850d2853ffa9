#!/bin/bash
# Modules from git over SSH from a test-bed host (a network namespace with its
# own sshd; needs root): the host key must be in known_hosts (unknown and
# changed keys refuse the fetch, the same rules as the ssh provider and the
# history push), the client logs in with a key; after init a plan works with
# the host down.
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/lib.sh"
t_need ssh-keygen

BED="$WORK/bed"
# Under -DIAC_SANITIZE=ON: libgit2 1.5.1 (Debian 12) keeps the known_hosts list
# libssh2 loads for every successful ssh connection (_git_ssh_setup_conn frees
# it only on failure), plus two small buffers of that setup. Not iac's; the
# same fetch code runs over file:// and git:// in the other tests of this
# directory with no suppression at all.
printf 'leak:libssh2_knownhost_init\nleak:libgit2.so.1.5\n' >"$WORK/lsan.supp"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$WORK/lsan.supp"
CLEANUP_EXTRA='t_bed_down "$BED"'
t_bed_up "$BED" 1 "gm$$"
H=$(addr 1)

# the repository, built here, cloned bare into the host's /srv/git
mkrepo "$WORK/src"
mkdir -p "$WORK/src/haproxy"
echo 'resource "local.file" "h" { path = "haproxy.txt", content = "haproxy v1" }' >"$WORK/src/haproxy/main.lua"
commit "$WORK/src" "one"
C1=$(g -C "$WORK/src" rev-parse HEAD)
g -C "$WORK/src" bundle create "$WORK/m.bundle" main 2>/dev/null
on_host 1 "mkdir -p /srv/git && cat >/srv/git/m.bundle && git clone -q --bare /srv/git/m.bundle /srv/git/modules.git && \
	git --git-dir=/srv/git/modules.git symbolic-ref HEAD refs/heads/main" <"$WORK/m.bundle" ||
	{ echo "FAIL: cannot put the repository on the test-bed host" >&2; exit 1; }

SRC="git+ssh://root@$H/srv/git/modules.git//haproxy?ref=main"
echo "local lb = module \"lb\" { source = \"$SRC\" }" >"$WORK/cfg/main.lua"
: >"$WORK/empty_known_hosts"

biac() {   # iac in the test bed's controller namespace, with the given known_hosts
	local kh=$1
	shift
	rc=0
	(cd "$WORK/cfg" && bash "$TESTBED" exec "$BED" env IAC_MODULES_SSH_KEY="$BED/id_ed25519" \
		IAC_MODULES_KNOWN_HOSTS="$kh" "$IAC" -no-color "$@") >"$OUT" 2>&1 || rc=$?
}

# a host key not in known_hosts: refused
biac "$WORK/empty_known_hosts" init
[ "$rc" = 1 ] || check_fail "init with the host key unknown exited $rc"
check_in "$OUT" "module 'module.lb': cannot fetch '$SRC' from 'ssh://root@$H/srv/git/modules.git': the host key of '$H' is unknown"
[ ! -e "$WORK/cfg/iac.lock" ] || check_fail "iac.lock written although the fetch was refused"

# a key the server does not accept
ssh-keygen -q -t ed25519 -N '' -f "$WORK/other_key"
rc=0
(cd "$WORK/cfg" && bash "$TESTBED" exec "$BED" env IAC_MODULES_SSH_KEY="$WORK/other_key" SSH_AUTH_SOCK= \
	IAC_MODULES_KNOWN_HOSTS="$BED/known_hosts" "$IAC" -no-color init) >"$OUT" 2>&1 || rc=$?
[ "$rc" = 1 ] || check_fail "init with a key the host refuses exited $rc"
check_in "$OUT" "no key was accepted for user 'root'"

# known host, right key: fetched and locked
biac "$BED/known_hosts" init
[ "$rc" = 0 ] || { cat "$OUT" >&2; check_fail "init over ssh exited $rc"; }
grep -qF "\"commit\": \"$C1\"" "$WORK/cfg/iac.lock" && ok "ssh source locked at $C1" ||
	check_fail "iac.lock lacks $C1: $(cat "$WORK/cfg/iac.lock" 2>/dev/null)"
biac "$BED/known_hosts" plan
check_in "$OUT" '"haproxy v1"'

# the branch moves on the host; the host then goes down: plan still works
on_host 1 "cd /tmp && git clone -q -b main /srv/git/modules.git w && cd w && sed -i 's/haproxy v1/haproxy v2/' haproxy/main.lua && \
	git -c user.name=t -c user.email=t@x commit -qam two && git push -q origin main && git rev-parse HEAD" >"$WORK/c2" ||
	check_fail "cannot move main on the host"
C2=$(tail -1 "$WORK/c2")
bash "$TESTBED" kill "$BED" h1
biac "$BED/known_hosts" plan
[ "$rc" = 0 ] && ok "plan with the git host down uses the locked cache" || { cat "$OUT" >&2; check_fail "plan needed the git host"; }
check_in "$OUT" '"haproxy v1"'

# the host comes back with a new host key: -upgrade refuses to fetch
bash "$TESTBED" rekey "$BED" h1
biac "$BED/known_hosts" init -upgrade
[ "$rc" = 1 ] || check_fail "init -upgrade against a changed host key exited $rc"
check_in "$OUT" "the host key of '$H' has CHANGED"
grep -qF "\"commit\": \"$C1\"" "$WORK/cfg/iac.lock" || check_fail "a refused -upgrade changed iac.lock"

# trust the new key: -upgrade moves main
ssh-keygen -R "$H" -f "$BED/known_hosts" >/dev/null 2>&1
on_host 1 "cat /etc/ssh/ssh_host_ed25519_key.pub" | awk -v h="$H" '{ print h, $1, $2 }' >>"$BED/known_hosts"
biac "$BED/known_hosts" init -upgrade
[ "$rc" = 0 ] || { cat "$OUT" >&2; check_fail "init -upgrade over ssh exited $rc"; }
check_in "$OUT" "module 'module.lb': ${C1:0:7} -> ${C2:0:7}"
biac "$BED/known_hosts" plan
check_in "$OUT" '"haproxy v2"'

finish
