#!/bin/bash
# Modules from git over https: a real smart-HTTP server (git http-backend
# behind TLS on 127.0.0.1, tests/modules/git_https_server.py) with a
# certificate from a CA the test makes. With the CA given (GIT_SSL_CAINFO,
# as for git itself) init fetches and locks; without it the certificate is
# refused; a server asking for a password gets the one in the URL, which
# never shows in output, iac.lock or .iac/.
. "$(dirname "$0")/lib.sh"
t_need openssl
t_need python3

# a CA and a server certificate for 127.0.0.1
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days 1 -subj /CN=test-ca \
	>/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -keyout "$WORK/srv.key" -out "$WORK/srv.csr" -subj /CN=127.0.0.1 >/dev/null 2>&1
# DNS:127.0.0.1 too: Debian's libgit2 verifies with mbedTLS, which matches names, not IP SANs
printf 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1\n' >"$WORK/ext"
openssl x509 -req -in "$WORK/srv.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 1 \
	-extfile "$WORK/ext" -out "$WORK/srv.pem" >/dev/null 2>&1 || check_fail "cannot make the server certificate"

R="$WORK/srv"
mkdir -p "$R"
mkrepo "$WORK/src"
mkdir -p "$WORK/src/web"
echo 'resource "local.file" "w" { path = "web.txt", content = "web over https" }' >"$WORK/src/web/main.lua"
commit "$WORK/src" one
g -C "$WORK/src" tag v1
T1=$(g -C "$WORK/src" rev-parse HEAD)
g clone -q --bare "$WORK/src" "$R/modules.git"

port() { "$T_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=
serve() {   # PORT [USER:PASSWORD]
	python3 "$(dirname "$0")/git_https_server.py" "$R" "$1" "$WORK/srv.pem" "$WORK/srv.key" ${2:+"$2"} \
		>>"$WORK/srv.log" 2>&1 &
	PIDS="$PIDS $!"
	t_wait_port "$1"
}
CLEANUP_EXTRA='for p in $PIDS; do t_stop_pid "$p"; done'
P1=$(port)
serve "$P1"
URL="https://127.0.0.1:$P1/modules.git"
cat >"$WORK/cfg/main.lua" <<LUA
local web = module "web" { source = "git+$URL//web?ref=v1" }
LUA

# no CA given: the certificate is refused, nothing is locked
iac init
[ "$rc" = 1 ] || { cat "$OUT" >&2; check_fail "init against an unknown CA exited $rc"; }
check_in "$OUT" "module 'module.web': cannot fetch 'git+$URL//web?ref=v1' from '$URL': the certificate of '127.0.0.1' is not valid"
[ ! -e "$WORK/cfg/iac.lock" ] || check_fail "a refused fetch wrote iac.lock"
ok "an https server whose certificate does not verify is refused"

# the CA given as git users give it: init fetches and locks
export GIT_SSL_CAINFO="$WORK/ca.pem"
iac init
[ "$rc" = 0 ] || { cat "$OUT" >&2; check_fail "init over https exited $rc"; }
check_in "$OUT" "Modules: 1 git source(s) locked in iac.lock (1 repository fetched)."
grep -qF "\"commit\": \"$T1\"" "$WORK/cfg/iac.lock" || check_fail "iac.lock lacks $T1"
iac plan
[ "$rc" = 0 ] || { cat "$OUT" >&2; check_fail "plan after an https init exited $rc"; }
check_in "$OUT" '"web over https"'
ok "init over https with GIT_SSL_CAINFO fetched and locked $T1"

# a server that wants a login: the user from the URL, the password (a
# token) from IAC_GIT_PASSWORD; it never shows in output, iac.lock or .iac/
P2=$(port)
serve "$P2" "ci:s3cr3t-pw"
mkdir -p "$WORK/auth"
cd "$WORK/auth"
SRC="git+https://ci@127.0.0.1:$P2/modules.git//web?ref=v1"
echo "local web = module \"web\" { source = \"$SRC\" }" >main.lua
rc=0
"$IAC" -no-color init >"$OUT" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$OUT" >&2; check_fail "init without IAC_GIT_PASSWORD exited $rc"; }
check_in "$OUT" "the server asks for a login: set IAC_GIT_PASSWORD"
rc=0
IAC_GIT_PASSWORD=wrong "$IAC" -no-color init >"$OUT" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$OUT" >&2; check_fail "init with a wrong password exited $rc"; }
check_in "$OUT" "the server refused the login of user 'ci' with IAC_GIT_PASSWORD"
check_not_in "$OUT" "wrong"
rc=0
IAC_GIT_PASSWORD=s3cr3t-pw "$IAC" -no-color init >"$OUT" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$OUT" >&2; check_fail "init with IAC_GIT_PASSWORD exited $rc"; }
grep -q '"commit"' iac.lock || check_fail "no iac.lock after a login"
! grep -rqF "s3cr3t-pw" "$OUT" iac.lock .iac 2>/dev/null || check_fail "the password shows in the output, iac.lock or .iac/"
ok "https login: user from the URL, password from IAC_GIT_PASSWORD, kept out of output, iac.lock and .iac/"

# a password written into the source is refused without repeating it
echo "local web = module \"web\" { source = \"git+https://ci:s3cr3t-pw@127.0.0.1:$P2/modules.git//web?ref=v1\" }" >main.lua
rc=0
"$IAC" -no-color init >"$OUT" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$OUT" >&2; check_fail "a password in the source was accepted ($rc)"; }
check_in "$OUT" "a password in the source would be written to iac.lock"
check_not_in "$OUT" "s3cr3t-pw"
ok "a password in a source URL is refused, and the message does not repeat it"
finish
