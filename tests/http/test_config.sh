#!/usr/bin/env bash
# Provider blocks of the http and pdns providers, checked by `iac validate`
# without any server: named instances, unknown settings with a hint,
# durations, an instance a resource names that is not declared, and named
# instances refused for providers whose resources cannot choose one.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
W=$TMP/w
mkdir -p "$W"
expect() {   # MESSAGE LUA: validate must fail with MESSAGE
	printf '%s\n' "$2" >"$W/main.lua"
	if "$IAC" -chdir="$W" validate -no-color >"$TMP/out" 2>&1; then
		check_fail "accepted: $2"
	elif grep -qF "$1" "$TMP/out"; then
		ok "$(cat "$TMP/out")"
	else
		cat "$TMP/out"
		check_fail "want '$1'"
	fi
}
expect "error: main.lua:1: provider 'ssh' has no named instances (its resources cannot choose one); configure it once with provider \"ssh\" { ... }" \
	'provider "ssh" "x" { user = "root" }'
expect "error: main.lua:2: provider 'http' \"a\" configured twice" \
	'provider "http" "a" { base_url = "http://127.0.0.1:1" }
provider "http" "a" { base_url = "http://127.0.0.1:1" }'
expect "instance \"a\": unknown setting 'retrys'; did you mean 'retries'?" \
	'provider "http" "a" { base_url = "http://127.0.0.1:1", retrys = 3 }
resource "http.object" "o" { provider = "a", path = "/x", body = { a = 1 } }'
expect "instance \"a\": timeout must be a duration such as \"10s\" or \"500ms\"" \
	'provider "http" "a" { base_url = "http://127.0.0.1:1", timeout = "soon" }
resource "http.object" "o" { provider = "a", path = "/x", body = { a = 1 } }'
expect "resource 'http.object.o': provider 'http' \"b\" is not declared; did you mean \"a\"?" \
	'provider "http" "a" { base_url = "http://127.0.0.1:1" }
resource "http.object" "o" { provider = "b", path = "/x", body = { a = 1 } }'
expect "resource 'http.object.o': no unnamed provider 'http' block" \
	'provider "http" "a" { base_url = "http://127.0.0.1:1" }
resource "http.object" "o" { path = "/x", body = { a = 1 } }'
expect "base_url 'ftp://x' must start with http:// or https://" \
	'provider "pdns" { base_url = "ftp://x" }
resource "pdns.zone" "z" { name = "z.test." }'
expect "zone name 'z.test' must be fully qualified, ending with a dot (\"z.test.\")" \
	'provider "pdns" { base_url = "http://127.0.0.1:1" }
resource "pdns.zone" "z" { name = "z.test" }'
expect "update_method 'POST' is not one of PUT, PATCH" \
	'provider "http" { base_url = "http://127.0.0.1:1" }
resource "http.object" "o" { path = "/x", body = { a = 1 }, update_method = "POST" }'
expect "provider 'http': its configuration uses a value not known yet: a resource's attribute (not allowed here), or a variable without a value (give it with -var NAME=VALUE or IAC_VAR_NAME)" \
	'variable "url" {}
provider "http" { base_url = var.url }
resource "http.object" "o" { path = "/x", body = { a = 1 } }'
printf '%s\n' 'provider "http" "a" { base_url = "http://127.0.0.1:1" }
provider "http" { base_url = "http://127.0.0.1:2" }
resource "http.object" "o" { provider = "a", path = "/x", body = { a = 1 } }
resource "http.object" "p" { path = "/x", body = { a = 1 } }' >"$W/main.lua"
"$IAC" -chdir="$W" validate >"$TMP/out" 2>&1 && ok "an unnamed and a named instance side by side" ||
	{ cat "$TMP/out"; check_fail "valid configuration refused"; }
finish
