#!/usr/bin/env bash
# The HTTP layer's error paths, through a fault-injecting proxy in front of
# a real PowerDNS: 500s then success (retried), 429 with Retry-After
# (honoured), a hang (timeout), malformed JSON (clear error, state and
# server unchanged), and the circuit breaker (opens after N failures, fails
# fast with a message, lets requests through again after the cool-down).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

pdns_start
proxy_start "http://127.0.0.1:$PDNS_API_PORT"
W=$TMP/w
mkdir -p "$W"
export IAC_VAR_pdns_key=$PDNS_KEY
iac() { "$IAC" -chdir="$W" "$@"; }
VIA="http://127.0.0.1:$PROXY_PORT/api/v1"

write_main() {   # $1 = www address, $2 = provider settings, $3 = extra Lua
	cat >"$W/main.lua" <<LUA
variable "pdns_key" { sensitive = true }
provider "pdns" { base_url = "$VIA", api_key = var.pdns_key, $2 }
local shop = resource "pdns.zone" "shop" { name = "shop.test." }
resource "pdns.record" "www" { zone = shop.name, name = "www", type = "A", records = { "$1" } }
${3:-}
LUA
}
# proxy_count METHOD STATUS: requests in the proxy's log since the last proxy_fault
proxy_count() {
	proxy_stats | "$T_PY" -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for l in d["log"] if l[1]==sys.argv[1] and (sys.argv[2]=="*" or str(l[3])==sys.argv[2])))' "$1" "$2"
}
state_sum() { iac state show -json pdns.record.www 2>/dev/null | sha256sum | cut -c1-16; }

BASE='timeout = "2s", retries = 4, retry_wait = "100ms"'
write_main 10.0.0.1 "$BASE"
proxy_fault '[]'
iac apply -auto-approve >"$TMP/a0.out" 2>&1 || { cat "$TMP/a0.out"; check_fail "first apply through the proxy"; finish; }
ok "apply through the proxy"

# 0. connection reuse: 40 records refreshed with -parallelism 4 over at most
# 4 keep-alive connections (the proxy keeps them alive; PowerDNS does not)
EXTRA=$(for i in $(seq 1 40); do echo "resource \"pdns.record\" \"p$i\" { zone = shop.name, name = \"p$i\", type = \"A\", records = { \"10.3.0.$i\" } }"; done)
write_main 10.0.0.1 "$BASE" "$EXTRA"
iac apply -auto-approve -parallelism 4 >"$TMP/a0b.out" 2>&1 || { cat "$TMP/a0b.out"; check_fail "apply of 40 records"; }
proxy_fault '[]'
IAC_HTTP_STATS=$TMP/stats iac plan -detailed-exitcode -parallelism 4 >"$TMP/p0.out" 2>&1 || { cat "$TMP/p0.out"; check_fail "no-op plan of 40 records"; }
read -r preq pconn < <(proxy_stats | "$T_PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["requests"], d["connections"])')
cconn=$("$T_PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["connections"])' "$TMP/stats")
[ "$preq" = 42 ] && [ "$pconn" -ge 1 ] && [ "$pconn" -le 4 ] && [ "$cconn" = "$pconn" ] &&
	ok "no-op plan: $preq requests over $pconn connections (-parallelism 4; libcurl counted $cconn)" ||
	check_fail "no-op plan: $preq requests over $pconn connections, libcurl says $cconn (want 42 over <= 4)"
write_main 10.0.0.1 "$BASE"
iac apply -auto-approve >"$TMP/a0c.out" 2>&1 || { cat "$TMP/a0c.out"; check_fail "removing 40 records"; }

# 1. 500s then success: retried with backoff, the apply succeeds
proxy_fault '[{"match":"PATCH","times":2,"status":500,"body":"{\"error\":\"database is busy\"}"}]'
write_main 10.0.0.2 "$BASE"
t0=$(date +%s.%N)
iac apply -auto-approve >"$TMP/a1.out" 2>&1 && ok "apply succeeded after two 500s" ||
	{ cat "$TMP/a1.out"; check_fail "apply with 500s then success failed"; }
t1=$(date +%s.%N)
n500=$(proxy_count PATCH 500) n204=$(proxy_count PATCH 204)
[ "$n500" = 2 ] && [ "$n204" = 1 ] && ok "the PATCH was sent 3 times: 2 answered 500, 1 succeeded" ||
	check_fail "PATCH attempts: $n500 x 500, $n204 x 204 (want 2 and 1)"
[ "$(dig_short www.shop.test. A)" = 10.0.0.2 ] && ok "dig sees the change" || check_fail "dig after retried apply"
echo "   (apply with two retries took $(echo "$t1 - $t0" | bc) s)"

# 2. 429 with Retry-After: 2 -> the next attempt waits 2 s, not the 100 ms backoff
proxy_fault '[{"match":"GET","path":"rrset_name","times":1,"status":429,"headers":{"Retry-After":"2"},"body":"{\"error\":\"slow down\"}"}]'
iac plan -detailed-exitcode >"$TMP/p2.out" 2>&1
rc=$?
[ $rc = 0 ] && ok "plan succeeded after a 429" || { cat "$TMP/p2.out"; check_fail "plan after 429: exit $rc"; }
gap=$(proxy_stats | "$T_PY" -c '
import json,sys
log=[l for l in json.load(sys.stdin)["log"] if "rrset_name" in l[2]]
t429=[l[0] for l in log if l[3]==429][0]
after=[l[0] for l in log if l[3]==200 and l[0]>=t429][0]
print("%.2f" % (after-t429))')
awk -v g="$gap" 'BEGIN { exit !(g >= 1.9) }' && ok "Retry-After honoured: the retry came ${gap}s after the 429" ||
	check_fail "the retry came ${gap}s after the 429 (Retry-After: 2)"
awk -v g="$gap" 'BEGIN { exit !(g <= 4) }' || fail_timing "the retry after a 429 took ${gap}s (want about 2)"

# 3. a hang: the request times out (not retried: it may have reached the server)
write_main 10.0.0.2 'timeout = "1s", retries = 4, retry_wait = "100ms"'
proxy_fault '[{"match":"GET","times":5,"hang":8}]'
t0=$(date +%s.%N)
iac plan -no-color >"$TMP/p3.out" 2>&1 && check_fail "plan against a hanging API succeeded"
t1=$(date +%s.%N)
took=$(echo "$t1 - $t0" | bc)
grep -q "cannot read 'pdns.zone.shop': GET 'http://127.0.0.1:$PROXY_PORT/api/v1/servers/localhost/zones/shop.test.?rrsets=false' timed out: no answer within the timeout of 1s" "$TMP/p3.out" &&
	ok "hang: $(grep -o "cannot read 'pdns.zone.shop'.*" "$TMP/p3.out" | head -1)" || { cat "$TMP/p3.out"; check_fail "hang: no timeout message"; }
awk -v t="$took" 'BEGIN { exit !(t < 6) }' && ok "plan failed after ${took}s (timeout 1s)" || fail_timing "plan against a hang took ${took}s"

# 4. malformed JSON: a clear error, state and server unchanged
write_main 10.0.0.3 "$BASE"
before=$(state_sum)
proxy_fault '[{"match":"GET","path":"rrset_name","times":10,"raw":"{\"rrsets\": [ {\"name\": "}]'
iac apply -auto-approve -no-color >"$TMP/a4.out" 2>&1 && check_fail "apply with malformed JSON succeeded"
grep -q "cannot read 'pdns.record.www': GET 'http://127.0.0.1:$PROXY_PORT/api/v1/servers/localhost/zones/shop.test.?rrset_name=www.shop.test.&rrset_type=A' answered 200 with malformed JSON" "$TMP/a4.out" &&
	ok "malformed JSON: $(grep -o "cannot read 'pdns.record.www'.*" "$TMP/a4.out" | head -1)" ||
	{ cat "$TMP/a4.out"; check_fail "malformed JSON: no clear message"; }
[ "$(state_sum)" = "$before" ] && ok "state unchanged" || check_fail "state changed after malformed JSON"
[ "$(dig_short www.shop.test. A)" = 10.0.0.2 ] && ok "server unchanged (no PATCH sent)" || check_fail "server changed"
[ "$(proxy_count PATCH '*')" = 0 ] || check_fail "a PATCH was sent despite the failed read"

# 5. the circuit breaker: 3 failures open it for 3 s. r1 uses them up; r2
# (after a 1 s local.exec) fails fast without a request; r3 (after 1 + 4 s) goes
# through once the cool-down is over.
proxy_fault '[]'
write_main 10.0.0.2 "$BASE"
iac apply -auto-approve >/dev/null 2>&1
EXTRA='
resource "pdns.record" "r1" { zone = "shop.test.", name = "r1", type = "A", records = { "10.1.0.1" } }
local w1 = resource "local.exec" "w1" { create = "sleep 1" }
resource "pdns.record" "r2" { zone = "shop.test.", name = "r2", type = "A", records = { "10.1.0.2" }, depends_on = { w1 } }
local w5 = resource "local.exec" "w5" { create = "sleep 4", depends_on = { w1 } }
resource "pdns.record" "r3" { zone = "shop.test.", name = "r3", type = "A", records = { "10.1.0.3" }, depends_on = { w5 } }'
write_main 10.0.0.2 "$BASE, breaker = { failures = 3, cooldown = \"3s\" }" "$EXTRA"
proxy_fault '[{"match":"PATCH","times":3,"status":503,"body":"{\"error\":\"backend down\"}"}]'
iac apply -auto-approve -no-color -parallelism 4 >"$TMP/a5.out" 2>&1 && check_fail "apply with a dead API succeeded"
grep -q "cannot create 'pdns.record.r1': PATCH 'http://127.0.0.1:$PROXY_PORT/api/v1/servers/localhost/zones/shop.test.' answered 503: backend down (after 3 attempts; the circuit breaker of provider 'pdns' opened)" "$TMP/a5.out" &&
	ok "breaker opens: $(grep -o "cannot create 'pdns.record.r1'.*" "$TMP/a5.out" | head -1)" ||
	{ cat "$TMP/a5.out"; check_fail "r1: no breaker message"; }
grep -o "cannot create 'pdns.record.r2'.*" "$TMP/a5.out" | head -1 >"$TMP/r2.msg"
grep -q "not calling PATCH .* the circuit breaker of provider 'pdns' is open after 3 consecutive failures (last: PATCH .* answered 503: backend down); it lets requests through again in" "$TMP/r2.msg" &&
	ok "fail fast: $(cat "$TMP/r2.msg")" || { cat "$TMP/a5.out"; check_fail "r2 did not fail fast with the breaker's message"; }
[ "$(proxy_count PATCH 503)" = 3 ] && [ "$(proxy_count PATCH 204)" = 1 ] &&
	ok "3 PATCHes failed, r2 sent none, r3 one after the cool-down" ||
	check_fail "PATCHes: $(proxy_count PATCH 503) x 503, $(proxy_count PATCH 204) x 204 (want 3 and 1)"
grep -q "pdns.record.r3: created" "$TMP/a5.out" && [ "$(dig_short r3.shop.test. A)" = 10.1.0.3 ] &&
	ok "breaker closed after the cool-down: r3 created" || { cat "$TMP/a5.out"; check_fail "r3 not created after the cool-down"; }
iac apply -auto-approve >"$TMP/a6.out" 2>&1 && ok "the next apply finishes r1 and r2" || { cat "$TMP/a6.out"; check_fail "re-apply"; }
grep -rq "$PDNS_KEY" "$W/.iac" "$TMP"/*.out && check_fail "the API key leaked" || ok "API key in no output or state file"
finish
