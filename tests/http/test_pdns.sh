#!/usr/bin/env bash
# pdns.zone, pdns.record and http.object against a real PowerDNS
# Authoritative server: create, resolve with dig, update, drift made behind
# iac's back through the API and with pdnsutil, import, destroy; the API key never printed
# nor stored.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

pdns_start
W=$TMP/w
mkdir -p "$W"
export IAC_VAR_pdns_key=$PDNS_KEY
iac() { "$IAC" -chdir="$W" "$@"; }

# main.lua: a zone through pdns.zone, records through pdns.record, a second
# zone through the generic http.object, on named provider instances.
write_main() {   # $1 = address of www, $2 = ttl, $3 = extra Lua
	cat >"$W/main.lua" <<LUA
variable "pdns_key" { sensitive = true }
provider "pdns" "main" { base_url = "$PDNS_API", api_key = var.pdns_key, timeout = "5s", retries = 2 }
provider "http" "pdns" { base_url = "$PDNS_API", headers = { ["X-API-Key"] = var.pdns_key },
                         timeout = "5s", retries = 2, breaker = { failures = 5, cooldown = "30s" } }
local shop = resource "pdns.zone" "shop" { provider = "main", name = "shop.test." }
resource "pdns.record" "www" { provider = "main", zone = shop.name, name = "www", type = "A",
                               ttl = $2, records = { "$1" } }
resource "pdns.record" "api" { provider = "main", zone = shop.name, name = "api.shop.test.", type = "A",
                               records = { "10.0.0.21", "10.0.0.22" } }
resource "http.object" "zone" {
  provider = "pdns", path = "/servers/localhost/zones", id_path = "id",
  body = { name = "blog.test.", kind = "Native", nameservers = {} },
  read_path = "/servers/localhost/zones/{id}", delete_path = "/servers/localhost/zones/{id}",
  update_method = "PUT", force_new = { "name" },
}
$3
LUA
}

write_main 10.0.0.1 300 ""
iac apply -auto-approve >"$TMP/apply1.out" 2>&1 || { cat "$TMP/apply1.out"; check_fail "first apply failed"; finish; }
ok "first apply: $(grep -c . "$TMP/apply1.out") lines"
[ "$(dig_short www.shop.test. A)" = 10.0.0.1 ] && ok "dig sees www.shop.test. A 10.0.0.1" ||
	check_fail "dig www.shop.test.: '$(dig_short www.shop.test. A)'"
[ "$(dig_short api.shop.test. A | paste -sd,)" = 10.0.0.21,10.0.0.22 ] && ok "dig sees both api records" ||
	check_fail "dig api.shop.test.: '$(dig_short api.shop.test. A)'"
pdns_api GET /servers/localhost/zones/blog.test. | grep -q '"kind": "Native"' && ok "http.object made zone blog.test." ||
	check_fail "blog.test. not made by http.object"
grep -rq "$PDNS_KEY" "$W/.iac" "$TMP"/apply1.out && check_fail "the API key is in state or output" || ok "API key not in state or output"

iac plan -detailed-exitcode >"$TMP/plan0.out" 2>&1
rc=$?
[ $rc = 0 ] && ok "no-op plan after apply (the API's own fields are not compared)" ||
	{ cat "$TMP/plan0.out"; check_fail "plan after apply: exit $rc, want 0"; }

# update in place: new address and ttl
write_main 10.0.0.2 120 ""
iac plan -no-color >"$TMP/plan1.out" 2>&1
grep -q '# pdns.record.www will be updated in place' "$TMP/plan1.out" && ok "address change planned as an update" ||
	{ cat "$TMP/plan1.out"; check_fail "no update planned for www"; }
iac apply -auto-approve >"$TMP/apply2.out" 2>&1 || { cat "$TMP/apply2.out"; check_fail "update apply failed"; }
[ "$(dig_short www.shop.test. A)" = 10.0.0.2 ] && ok "dig sees the update" ||
	check_fail "after update dig says '$(dig_short www.shop.test. A)'"
pdns_api GET '/servers/localhost/zones/shop.test.?rrset_name=www.shop.test.&rrset_type=A' | grep -q '"ttl": 120' &&
	ok "ttl 120 on the server" || check_fail "ttl not updated"

# drift: change a record and a zone behind iac's back
pdns_api PATCH /servers/localhost/zones/shop.test. \
	'{"rrsets":[{"name":"api.shop.test.","type":"A","ttl":300,"changetype":"REPLACE","records":[{"content":"10.9.9.9","disabled":false}]}]}' >/dev/null
pdns_api PUT /servers/localhost/zones/blog.test. '{"kind":"Master"}' >/dev/null
iac plan -no-color -detailed-exitcode >"$TMP/plan2.out" 2>&1
rc=$?
[ $rc = 2 ] || check_fail "plan after drift: exit $rc, want 2"
grep -q '# pdns.record.api will be updated in place' "$TMP/plan2.out" && grep -q '10.9.9.9' "$TMP/plan2.out" && grep -q 'changed outside iac' "$TMP/plan2.out" &&
	ok "record changed through the API shows as drift" || { cat "$TMP/plan2.out"; check_fail "record drift not shown"; }
grep -q '# http.object.zone will be updated in place' "$TMP/plan2.out" && grep -q 'Master' "$TMP/plan2.out" &&
	ok "http.object: a declared field changed remotely shows as drift" || { cat "$TMP/plan2.out"; check_fail "http.object drift not shown"; }
iac apply -auto-approve >"$TMP/apply3.out" 2>&1 || { cat "$TMP/apply3.out"; check_fail "repair apply failed"; }
[ "$(dig_short api.shop.test. A | paste -sd,)" = 10.0.0.21,10.0.0.22 ] && ok "apply put the records back" ||
	check_fail "after repair: '$(dig_short api.shop.test. A)'"
pdns_api GET /servers/localhost/zones/blog.test. | grep -q '"kind": "Native"' && ok "apply put kind back (PUT)" ||
	check_fail "blog.test. kind not repaired"

# drift made with pdnsutil on the database (not through the API)
pdnsutil_ replace-rrset shop.test. www A 120 10.7.7.7 >/dev/null 2>&1 || check_fail "pdnsutil replace-rrset"
iac plan -no-color -detailed-exitcode >"$TMP/plan2b.out" 2>&1
rc=$?
[ $rc = 2 ] && grep -q '# pdns.record.www will be updated in place' "$TMP/plan2b.out" && grep -q '"10.7.7.7"' "$TMP/plan2b.out" &&
	ok "a record changed with pdnsutil shows as drift" || { cat "$TMP/plan2b.out"; check_fail "pdnsutil drift not shown (exit $rc)"; }
iac apply -auto-approve >/dev/null 2>&1
[ "$(dig_short www.shop.test. A)" = 10.0.0.2 ] && ok "apply undid the pdnsutil change" || check_fail "pdnsutil change not undone"

# vanished: delete the rrset behind iac's back -> plan re-creates it
pdns_api PATCH /servers/localhost/zones/shop.test. \
	'{"rrsets":[{"name":"www.shop.test.","type":"A","changetype":"DELETE"}]}' >/dev/null
iac plan -no-color >"$TMP/plan3.out" 2>&1
grep -q '# pdns.record.www will be created' "$TMP/plan3.out" && grep -q 'deleted outside iac' "$TMP/plan3.out" &&
	ok "a record deleted behind iac's back is re-created" || { cat "$TMP/plan3.out"; check_fail "vanished record not planned"; }
pdns_api DELETE /servers/localhost/zones/blog.test. >/dev/null
iac plan -no-color >"$TMP/plan3b.out" 2>&1
grep -q '# http.object.zone will be created' "$TMP/plan3b.out" && ok "http.object: 404 on read means gone, re-created" ||
	{ cat "$TMP/plan3b.out"; check_fail "vanished http.object not planned"; }
iac apply -auto-approve >"$TMP/apply4.out" 2>&1 || { cat "$TMP/apply4.out"; check_fail "re-create apply failed"; }

# force_new: a change of body.name replaces the http.object
sed -i 's/blog.test./news.test./' "$W/main.lua"
iac plan -no-color >"$TMP/plan4.out" 2>&1
grep -q '# http.object.zone must be replaced' "$TMP/plan4.out" && grep -q 'forces replacement' "$TMP/plan4.out" && ok "force_new field change plans a replacement" ||
	{ cat "$TMP/plan4.out"; check_fail "no replacement for force_new change"; }
iac apply -auto-approve >"$TMP/apply5.out" 2>&1 || { cat "$TMP/apply5.out"; check_fail "replace apply failed"; }
pdns_api GET /servers/localhost/zones/news.test. | grep -q '"id"' && ! pdns_api GET /servers/localhost/zones/blog.test. | grep -q '"id"' &&
	ok "replaced: news.test. exists, blog.test. is gone" || check_fail "replacement did not happen"

# import: objects made outside iac
pdns_api POST /servers/localhost/zones '{"name":"legacy.test.","kind":"Native","nameservers":[]}' >/dev/null
pdns_api PATCH /servers/localhost/zones/shop.test. \
	'{"rrsets":[{"name":"mail.shop.test.","type":"MX","ttl":600,"changetype":"REPLACE","records":[{"content":"10 mx.shop.test.","disabled":false}]}]}' >/dev/null
write_main 10.0.0.2 120 '
resource "http.object" "legacy" { provider = "pdns", path = "/servers/localhost/zones",
  body = { name = "legacy.test.", kind = "Master" }, update_method = "PUT" }
resource "pdns.record" "mx" { provider = "main", zone = "shop.test.", name = "mail", type = "MX", ttl = 600,
                              records = { "10 mx.shop.test." } }'
sed -i 's/blog.test./news.test./' "$W/main.lua"
iac import http.object.legacy legacy.test. >"$TMP/imp1.out" 2>&1 && ok "import http.object by id" ||
	{ cat "$TMP/imp1.out"; check_fail "import of http.object failed"; }
iac import pdns.record.mx >"$TMP/imp2.out" 2>&1 && ok "import pdns.record" ||
	{ cat "$TMP/imp2.out"; check_fail "import of pdns.record failed"; }
iac import http.object.legacy nope.test. >"$TMP/imp3.out" 2>&1
iac state rm http.object.legacy >/dev/null 2>&1
iac import http.object.legacy nope.test. >"$TMP/imp3.out" 2>&1 && check_fail "import of a missing id succeeded" ||
	{ grep -q "no object found for 'http.object.legacy' at 'nope.test.'" "$TMP/imp3.out" && ok "import of a missing id: $(cat "$TMP/imp3.out")" ||
		{ cat "$TMP/imp3.out"; check_fail "import of a missing id: wrong message"; }; }
iac import http.object.legacy legacy.test. >/dev/null 2>&1
iac plan -no-color >"$TMP/plan5.out" 2>&1
grep -q '# http.object.legacy will be updated in place' "$TMP/plan5.out" && grep -q 'Master' "$TMP/plan5.out" && ! grep -q 'pdns.record.mx' "$TMP/plan5.out" &&
	ok "after import: the plan shows only what differs (kind), the record matches" ||
	{ cat "$TMP/plan5.out"; check_fail "plan after import"; }

# one bad record among many applied at once: the grouped PATCH is refused,
# each change is sent again alone, and only the bad one fails, with the
# API's message
BATCH=$(for i in $(seq 1 8); do echo "resource \"pdns.record\" \"b$i\" { provider = \"main\", zone = \"shop.test.\", name = \"b$i\", type = \"A\", records = { \"10.4.0.$i\" } }"; done)
write_main 10.0.0.2 120 "$BATCH
resource \"pdns.record\" \"bad\" { provider = \"main\", zone = \"shop.test.\", name = \"bad\", type = \"A\", records = { \"not-an-address\" } }"
sed -i 's/blog.test./news.test./' "$W/main.lua"
iac apply -auto-approve -no-color >"$TMP/apply7.out" 2>&1 && check_fail "a bad record was accepted"
grep -q "cannot create 'pdns.record.bad': PATCH 'http://127.0.0.1:$PDNS_API_PORT/api/v1/servers/localhost/zones/shop.test.' answered 422: .*not-an-address" "$TMP/apply7.out" &&
	ok "bad record: $(grep -o "cannot create 'pdns.record.bad'.*" "$TMP/apply7.out" | head -1)" || { cat "$TMP/apply7.out"; check_fail "bad record message"; }
nb=$(for i in $(seq 1 8); do dig_short "b$i.shop.test." A; done | grep -c '^10\.4\.0\.')
[ "$nb" = 8 ] && ok "the 8 good records of the same apply were created" || { cat "$TMP/apply7.out"; check_fail "$nb of 8 good records created"; }
grep -q "Apply failed: .* succeeded, 1 failed" "$TMP/apply7.out" || check_fail "summary: $(grep 'Apply failed' "$TMP/apply7.out")"

# errors in the project's style
write_main 10.0.0.2 120 '
resource "http.object" "dup" { provider = "pdns", path = "/servers/localhost/zones", body = { name = "shop.test.", kind = "Native", nameservers = {} } }'
sed -i 's/blog.test./news.test./' "$W/main.lua"
iac apply -auto-approve -no-color >"$TMP/apply6.out" 2>&1 && check_fail "creating an existing zone succeeded"
grep -q "cannot create 'http.object.dup': POST 'http://127.0.0.1:$PDNS_API_PORT/api/v1/servers/localhost/zones' answered 409: Conflict" "$TMP/apply6.out" &&
	ok "API error quoted: $(grep -o "cannot create.*" "$TMP/apply6.out" | head -1)" || { cat "$TMP/apply6.out"; check_fail "409 error message"; }
cat >"$W/bad.lua" <<LUA
LUA
write_main 10.0.0.2 120 'resource "pdns.record" "x" { provider = "mian", zone = "shop.test.", name = "x", type = "A", records = { "1.1.1.1" } }'
iac plan -no-color >"$TMP/plan6.out" 2>&1
grep -q "provider 'pdns' \"mian\" is not declared; did you mean \"main\"?" "$TMP/plan6.out" && ok "unknown instance named with a hint" ||
	{ cat "$TMP/plan6.out"; check_fail "unknown instance message"; }
grep -rq "$PDNS_KEY" "$W/.iac" "$TMP"/*.out && check_fail "the API key leaked" || ok "API key in no output or state file"

# destroy
write_main 10.0.0.2 120 ""
sed -i 's/blog.test./news.test./' "$W/main.lua"
iac state rm http.object.legacy pdns.record.mx >/dev/null 2>&1
iac destroy -auto-approve >"$TMP/destroy.out" 2>&1 || { cat "$TMP/destroy.out"; check_fail "destroy failed"; }
[ -z "$(dig_short www.shop.test. A)" ] && ok "destroy: www.shop.test. no longer resolves" || check_fail "www still resolves"
pdns_api GET /servers/localhost/zones/shop.test. | grep -q '"id"' && check_fail "zone shop.test. still there" || ok "destroy: zone gone"
finish
