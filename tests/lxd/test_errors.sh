#!/usr/bin/env bash
# lxd provider errors: a client certificate LXD does not trust, an endpoint
# nothing answers on, a server certificate that is not the server's, an
# image that does not exist (LXD's own message quoted), bad settings caught
# by validate; nothing is left half made and the key is never printed.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

one='resource "lxd.instance" "iact-e1" { image = "iact-base" }'

# a certificate LXD was never told to trust
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-keyout "$TMP/other.key" -out "$TMP/other.crt" -subj /CN=stranger 2>/dev/null
cat >"$W/main.lua" <<LUA
provider "lxd" { endpoint = "$LXD_URL", client_cert = "$TMP/other.crt", client_key = "$TMP/other.key",
                 server_cert = "$LXD_SERVER_CERT" }
$one
LUA
iac apply -auto-approve -no-color >"$TMP/untrusted.out" 2>&1 && check_fail "apply with an untrusted certificate succeeded"
grep -q "does not trust the client certificate" "$TMP/untrusted.out" && grep -q "lxc config trust add" "$TMP/untrusted.out" &&
	ok "untrusted certificate: $(grep -m1 'trust' "$TMP/untrusted.out" | cut -c1-160)..." ||
	{ cat "$TMP/untrusted.out"; check_fail "no clear error for an untrusted certificate"; }
[ -z "$(lxc list --format csv -c n | grep '^iact-')" ] && ok "nothing made" || check_fail "an instance was made"

# nothing listens there
port=$(lxd_free_port)
lxd_main "$one"
sed -i "s|$LXD_URL|https://127.0.0.1:$port|" "$W/main.lua"
t0=$(date +%s.%N)
iac apply -auto-approve -no-color >"$TMP/unreach.out" 2>&1 && check_fail "apply to a closed port succeeded"
t1=$(date +%s.%N)
grep -q "cannot reach GET 'https://127.0.0.1:$port/1.0'" "$TMP/unreach.out" && grep -q "iact-e1" "$TMP/unreach.out" &&
	ok "unreachable endpoint named, after retries ($(echo "$t1 - $t0" | bc | cut -c1-4) s): $(grep -m1 'cannot reach' "$TMP/unreach.out" | cut -c1-200)" ||
	{ cat "$TMP/unreach.out"; check_fail "no clear error for an unreachable endpoint"; }

# a server certificate that is not the server's: TLS refuses, no request sent
cp "$TMP/other.crt" "$TMP/fake-server.crt"
lxd_main "$one"
sed -i "s|$LXD_SERVER_CERT|$TMP/fake-server.crt|" "$W/main.lua"
iac apply -auto-approve -no-color >"$TMP/fake.out" 2>&1 && check_fail "apply with a wrong server certificate succeeded"
grep -qi "certificate" "$TMP/fake.out" && grep -q "127.0.0.1:$LXD_PORT" "$TMP/fake.out" &&
	ok "wrong server certificate refused: $(grep -m1 -i 'certificate' "$TMP/fake.out" | cut -c1-200)" ||
	{ cat "$TMP/fake.out"; check_fail "no TLS error for a wrong server certificate"; }

# LXD refuses: its message is quoted
lxd_main 'resource "lxd.instance" "iact-e2" { image = "no-such-image" }'
iac apply -auto-approve -no-color >"$TMP/noimage.out" 2>&1 && check_fail "apply with a missing image succeeded"
grep -q "cannot create instance 'iact-e2': lxd says: " "$TMP/noimage.out" &&
	ok "LXD's message quoted: $(grep -m1 'lxd says' "$TMP/noimage.out" | sed 's/.*cannot create/cannot create/' | cut -c1-160)" ||
	{ cat "$TMP/noimage.out"; check_fail "LXD's refusal not quoted"; }

# an image without an sshd, given an ssh_key: the wait for port 22 ends with a
# clear error, and the half-made instance is deleted (a second apply can make it)
ssh-keygen -q -t ed25519 -N '' -f "$TMP/id" -C t
lxd_main "resource 'lxd.instance' 'iact-e4' { image = 'iact-base', ssh_key = '$(cat "$TMP/id.pub")', wait_timeout = '2s' }"
iac apply -auto-approve -no-color >"$TMP/nossh.out" 2>&1 && check_fail "apply without an sshd succeeded"
grep -q "nothing accepts on port 22 2s after it started" "$TMP/nossh.out" && grep -q "deleted again" "$TMP/nossh.out" &&
	ok "no sshd: $(grep -m1 'nothing accepts' "$TMP/nossh.out" | sed 's/.*cannot create/cannot create/' | cut -c1-200)" ||
	{ cat "$TMP/nossh.out"; check_fail "no clear error without an sshd"; }
[ -z "$(lxc list --format csv -c n | grep '^iact-e4')" ] && ok "the half-made instance was deleted" ||
	check_fail "iact-e4 left behind"

# settings checked without touching LXD
lxd_main 'resource "lxd.instance" "iact-e3" { image = "iact-base", status = "Paused", limits = { cpus = 1 } }'
iac validate -no-color >"$TMP/validate.out" 2>&1 && check_fail "validate accepted status Paused"
grep -q "must be \"Running\" or \"Stopped\"" "$TMP/validate.out" && ok "validate: $(grep -m1 'Running' "$TMP/validate.out" | cut -c1-160)" ||
	{ cat "$TMP/validate.out"; check_fail "status not checked"; }
for bad in 'memory = "lots"|memory must be a size such as' 'memory = 256|memory needs a unit' 'cpu = -1|cpu must be a count of at least 1' 'cpu = "many"|cpu must be a count'; do
	lxd_main "resource \"lxd.instance\" \"iact-e3\" { image = \"iact-base\", limits = { ${bad%%|*} } }"
	iac validate -no-color >"$TMP/validate.out" 2>&1 && check_fail "validate accepted limits { ${bad%%|*} }"
	grep -q "${bad#*|}" "$TMP/validate.out" || { cat "$TMP/validate.out"; check_fail "limits { ${bad%%|*} }: no clear error"; }
done
ok "limits checked at validate: $(grep -m1 -o 'limits: .*' "$TMP/validate.out")"
cat >"$W/main.lua" <<LUA
provider "lxd" { endpoint = "$LXD_URL", client_cert = "$LXD_CLIENT_CERT", client_key = "$LXD_CLIENT_KEY", insecure = true }
$one
LUA
iac plan -no-color >"$TMP/insecure.out" 2>&1 && check_fail "insecure = true accepted"
grep -q "TLS verification cannot be turned off" "$TMP/insecure.out" && ok "insecure refused" ||
	{ cat "$TMP/insecure.out"; check_fail "insecure not refused"; }

keyline=$(sed -n 2p "$LXD_CLIENT_KEY")
grep -rqF "$keyline" "$TMP"/*.out "$W/.iac" 2>/dev/null && check_fail "the client key was printed or stored" || ok "key never printed nor stored"
[ -z "$(lxc list --format csv -c n | grep '^iact-')" ] && ok "no instance left" || check_fail "left: $(lxc list --format csv -c n)"
finish
