#!/usr/bin/env bash
# TLS is always verified: an HTTPS API with a self-signed certificate is
# refused until ca_file names it; a certificate for another name is refused
# even then; there is no setting that turns verification off.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
command -v openssl >/dev/null || { echo "SKIP: openssl is not installed" >&2; exit 77; }

pdns_start
C=$TMP/certs
mkdir -p "$C"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$C/ok.key" -out "$C/ok.crt" 2>/dev/null || { check_fail "openssl"; finish; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=elsewhere.test \
	-addext subjectAltName=DNS:elsewhere.test -keyout "$C/other.key" -out "$C/other.crt" 2>/dev/null
proxy_start "http://127.0.0.1:$PDNS_API_PORT" "$C/ok.crt" "$C/ok.key"
OK_PORT=$PROXY_PORT
proxy_start "http://127.0.0.1:$PDNS_API_PORT" "$C/other.crt" "$C/other.key"
OTHER_PORT=$PROXY_PORT
W=$TMP/w
mkdir -p "$W"
export IAC_VAR_pdns_key=$PDNS_KEY
iac() { "$IAC" -chdir="$W" "$@"; }
write_main() {   # $1 = port, $2 = extra provider settings
	cat >"$W/main.lua" <<LUA
variable "pdns_key" { sensitive = true }
provider "pdns" { base_url = "https://127.0.0.1:$1/api/v1", api_key = var.pdns_key, retries = 3, retry_wait = "50ms" $2 }
resource "pdns.zone" "tls" { name = "tls.test." }
LUA
}

write_main "$OK_PORT" ""
iac apply -auto-approve -no-color >"$TMP/a1.out" 2>&1 && check_fail "a self-signed certificate was accepted without ca_file"
grep -q "cannot create 'pdns.zone.tls': cannot reach POST 'https://127.0.0.1:$OK_PORT/api/v1/servers/localhost/zones': SSL certificate problem: self.signed certificate" "$TMP/a1.out" &&
	ok "refused: $(grep -o "cannot create 'pdns.zone.tls'.*" "$TMP/a1.out" | head -1)" || { cat "$TMP/a1.out"; check_fail "no certificate error"; }
grep -q "attempts" "$TMP/a1.out" && check_fail "a certificate error was retried" || ok "not retried"

write_main "$OK_PORT" ', ca_file = "../certs/ok.crt"'
iac apply -auto-approve >"$TMP/a2.out" 2>&1 && ok "with ca_file: the zone is created over HTTPS" ||
	{ cat "$TMP/a2.out"; check_fail "apply with ca_file failed"; }
pdns_api GET /servers/localhost/zones/tls.test. | grep -q '"id"' && ok "the zone exists" || check_fail "zone not made"
iac plan -detailed-exitcode >/dev/null 2>&1 && ok "no-op plan over HTTPS" || check_fail "plan over HTTPS"

write_main "$OTHER_PORT" ', ca_file = "../certs/other.crt"'
iac plan -no-color >"$TMP/p3.out" 2>&1 && check_fail "a certificate for another name was accepted"
grep -qi "cannot read 'pdns.zone.tls': cannot reach GET 'https://127.0.0.1:$OTHER_PORT/.*'.*\(certificate\|does not match\)" "$TMP/p3.out" &&
	ok "wrong name refused: $(grep -o "cannot read 'pdns.zone.tls'.*" "$TMP/p3.out" | head -1)" || { cat "$TMP/p3.out"; check_fail "wrong name not refused"; }

write_main "$OK_PORT" ', insecure = true'
iac plan -no-color >"$TMP/p4.out" 2>&1 && check_fail "insecure = true was accepted"
grep -q "provider 'pdns': 'insecure': TLS verification cannot be turned off; give the CA that signed the server's certificate with ca_file" "$TMP/p4.out" &&
	ok "insecure refused: $(grep -o "provider 'pdns'.*" "$TMP/p4.out" | head -1)" || { cat "$TMP/p4.out"; check_fail "insecure not refused"; }

write_main "$OK_PORT" ', ca_file = "../certs/nope.crt"'
iac plan -no-color >"$TMP/p5.out" 2>&1 && check_fail "a missing ca_file was accepted"
grep -q "cannot read ca_file '.*certs/nope.crt': No such file" "$TMP/p5.out" && ok "missing ca_file named" ||
	{ cat "$TMP/p5.out"; check_fail "missing ca_file message"; }
finish
