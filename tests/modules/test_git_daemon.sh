#!/bin/bash
# Modules from git over git:// (git daemon on 127.0.0.1, started and stopped
# by PID): init fetches, later commands work with the daemon stopped, a tag
# moved upstream changes nothing until init -upgrade, an unknown ref and an
# unreachable server are clear errors. Figures: init time for N modules
# (fetch + checkout), and the cost of locked git modules in a plan against
# the same modules as local directories.
. "$(dirname "$0")/lib.sh"

DAEMON=$(git --exec-path)/git-daemon
[ -x "$DAEMON" ] || { echo "FAIL: no git-daemon in $(git --exec-path) (Debian's git package has it)" >&2; exit 1; }
N=${IAC_MODULES_N:-50}

R="$WORK/srv"
mkdir -p "$R"
PORT=$("$T_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DPID=
start_daemon() {
	"$DAEMON" --reuseaddr --listen=127.0.0.1 --port="$PORT" --base-path="$R" --export-all "$R" \
		>"$WORK/daemon.log" 2>&1 &
	DPID=$!
	t_wait_port "$PORT"
}
stop_daemon() { [ -n "$DPID" ] && t_stop_pid "$DPID"; DPID=; }
CLEANUP_EXTRA='stop_daemon'

# modules.git: m1..mN, each a module with one resource; plus web/
mkrepo "$WORK/src"
for i in $(seq 1 "$N"); do
	mkdir -p "$WORK/src/m$i"
	printf 'variable "i" { default = 0 }\nresource "local.file" "f" { path = "m%s.txt", content = "module %s v1" }\n' "$i" "$i" \
		>"$WORK/src/m$i/main.lua"
done
mkdir -p "$WORK/src/web"
echo 'resource "local.file" "w" { path = "web.txt", content = "web v1" }' >"$WORK/src/web/main.lua"
commit "$WORK/src" "one"
g -C "$WORK/src" tag v1
T1=$(g -C "$WORK/src" rev-parse HEAD)
g clone -q --bare "$WORK/src" "$R/modules.git"
start_daemon
URL="git://127.0.0.1:$PORT/modules.git"

cat >"$WORK/cfg/main.lua" <<EOF
local web = module "web" { source = "git+$URL//web?ref=v1" }
local dflt = module "dflt" { source = "git+$URL//web" }
EOF
iac plan
[ "$rc" = 1 ] || check_fail "plan before init exited $rc"
check_in "$OUT" "is not in iac.lock"
iac init
[ "$rc" = 0 ] || { cat "$OUT" >&2; check_fail "init over git:// exited $rc"; }
check_in "$OUT" "Modules: 2 git source(s) locked in iac.lock (1 repository fetched)."
grep -qF "\"commit\": \"$T1\"" "$WORK/cfg/iac.lock" && ok "git:// source locked at $T1 (tag and default branch)" ||
	check_fail "iac.lock lacks $T1: $(cat "$WORK/cfg/iac.lock")"

# an unknown ref
echo "local x = module \"x\" { source = \"git+$URL//web?ref=nope\" }" >>"$WORK/cfg/main.lua"
iac init
[ "$rc" = 1 ] || check_fail "init with an unknown ref exited $rc"
check_in "$OUT" "main.lua:3: module 'module.x': ref 'nope' of source 'git+$URL//web?ref=nope' is not a tag, branch or commit of '$URL'"
sed -i '$d' "$WORK/cfg/main.lua"

# the server goes away: everything locked still works
stop_daemon
iac plan
[ "$rc" = 0 ] && ok "plan with the git daemon stopped" || { cat "$OUT" >&2; check_fail "plan needed the git daemon"; }
check_in "$OUT" '"web v1"'
iac init -upgrade
[ "$rc" = 1 ] || check_fail "init -upgrade with the daemon stopped exited $rc"
check_in "$OUT" "module 'module.web': cannot fetch 'git+$URL//web?ref=v1' from '$URL'"

# the tag moves upstream: nothing changes until -upgrade
sed -i 's/web v1/web v2/' "$WORK/src/web/main.lua"
commit "$WORK/src" "two"
g -C "$WORK/src" tag -f v1 >/dev/null
T2=$(g -C "$WORK/src" rev-parse HEAD)
g -C "$WORK/src" push -q -f "$R/modules.git" main refs/tags/v1
start_daemon
iac init
iac plan
check_in "$OUT" '"web v1"' "a tag moved upstream changed the plan without init -upgrade"
iac init -upgrade
[ "$rc" = 0 ] || { cat "$OUT" >&2; check_fail "init -upgrade exited $rc"; }
check_in "$OUT" "module 'module.web': ${T1:0:7} -> ${T2:0:7}"
check_in "$OUT" "module 'module.dflt': ${T1:0:7} -> ${T2:0:7}"
iac plan
check_in "$OUT" '"web v2"'

# https: the server's certificate is verified (a self-signed one is refused)
if command -v openssl >/dev/null; then
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/k.pem" -out "$WORK/c.pem" -days 1 -subj /CN=127.0.0.1 \
		>/dev/null 2>&1
	TPORT=$("$T_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	openssl s_server -accept "127.0.0.1:$TPORT" -cert "$WORK/c.pem" -key "$WORK/k.pem" -www -quiet >/dev/null 2>&1 &
	SPID=$!
	t_wait_port "$TPORT"
	mkdir -p "$WORK/tls"
	echo "local m = module \"m\" { source = \"git+https://127.0.0.1:$TPORT/r.git//x?ref=v1\" }" >"$WORK/tls/main.lua"
	rc=0
	(cd "$WORK/tls" && "$IAC" -no-color init) >"$OUT" 2>&1 || rc=$?
	t_stop_pid "$SPID"
	[ "$rc" = 1 ] || check_fail "init against a self-signed https server exited $rc"
	check_in "$OUT" "module 'module.m': cannot fetch 'git+https://127.0.0.1:$TPORT/r.git//x?ref=v1' from 'https://127.0.0.1:$TPORT/r.git': the certificate of '127.0.0.1' is not valid"
fi

# --- figures: N modules from git vs the same N as local directories -------------------
mkdir -p "$WORK/local" "$WORK/git"
for i in $(seq 1 "$N"); do
	echo "local m$i = module \"m$i\" { source = \"git+$URL//m$i?ref=v1\", i = $i }"
done >"$WORK/git/main.lua"
cp -r "$WORK/src"/m* "$WORK/local/"
for i in $(seq 1 "$N"); do
	echo "local m$i = module \"m$i\" { source = \"./m$i\", i = $i }"
done >"$WORK/local/main.lua"
ms() { "$T_PY" -c 'import time; print(int(time.time()*1000))'; }
t0=$(ms)
(cd "$WORK/git" && "$IAC" init >"$OUT" 2>&1) || { cat "$OUT" >&2; check_fail "init of $N git modules failed"; }
t1=$(ms)
INIT_MS=$((t1 - t0))
grep -qF "Modules: $N git source(s) locked" "$OUT" || check_fail "init did not lock $N sources"
best() {   # best of 3 plan runs in $1, in ms
	local b=999999 t s e
	for t in 1 2 3; do
		s=$(ms)
		(cd "$1" && "$IAC" plan >"$OUT" 2>&1) || { cat "$OUT" >&2; check_fail "plan in $1 failed"; }
		e=$(ms)
		[ $((e - s)) -lt "$b" ] && b=$((e - s))
	done
	echo "$b"
}
PLAN_GIT=$(best "$WORK/git")
grep -qF "Plan: $N to add" "$OUT" || { cat "$OUT" >&2; check_fail "plan of $N git modules"; }
PLAN_LOCAL=$(best "$WORK/local")
echo "figures: iac init of $N git modules (one repository over git://, fetch + $N checkouts): ${INIT_MS} ms"
echo "figures: plan with $N locked git modules ${PLAN_GIT} ms, the same $N as local modules ${PLAN_LOCAL} ms (best of 3)"
[ "$INIT_MS" -lt 30000 ] || fail_timing "init of $N git modules took ${INIT_MS} ms"
[ $((PLAN_GIT - PLAN_LOCAL)) -lt 2000 ] || fail_timing "locked git modules add $((PLAN_GIT - PLAN_LOCAL)) ms to a plan"

stop_daemon
finish
