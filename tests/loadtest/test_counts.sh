# Request counts equal what nginx logged, for a plain scenario and a flow
# with several endpoints; the JSON report has its documented shape.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
start_nginx "$PORT" '
    location /ka3/ { keepalive_requests 3; alias '"$T"'/nginx/www/; }
    location /idle/ { keepalive_timeout 100ms; alias '"$T"'/nginx/www/; }'

cat > "$T/plain.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "plain" { path = "/1k.html" }
load { executor = "constant-vus", vus = 8, duration = "1.5s" }
EOF2
"$IAC" loadtest "$T/plain.lua" -json "$T/plain.json" -threads 2 > "$T/plain.out" || fail "plain run exited $?"
logged=$(nginx_requests)
got=$(json "$T/plain.json" "d['requests']")
echo "plain: iac counted $got, nginx logged $logged"
[ "$got" -gt 1000 ] || fail "too few requests: $got"
[ "$got" = "$logged" ] || fail "iac counted $got requests, nginx logged $logged"
[ "$(json "$T/plain.json" "d['errors']['total']")" = 0 ] || fail "errors in a plain run"
grep -q "requests" "$T/plain.out" || fail "no summary on stdout"

: > "$T/nginx/access.log"
cat > "$T/flow.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "shopper" {
  weight = 3, think = between("5ms", "20ms"),
  flow = function(u)
    local home = u:get("/")
    u:check(home.status == 200, "home ok")
    local r = u:get("/product/" .. u:random(1, 20), { name = "product" })
    u:check(r.status == 200 and r.body:find("product") ~= nil, "product ok")
    u:check(r.headers["content-type"] == "text/plain" or r.headers["content-type"] ~= nil, "has content type")
    local p = u:post("/post", { json = { id = 42 }, name = "cart" })
    u:check(p.body:find('"id":42', 1, true) ~= nil, "json body echoed")
    u:get("/missing", { name = "missing" })
  end,
}
scenario "browser" { weight = 1, flow = function(u) u:get("/1k.html?q=" .. u:pick({ "a", "b" })) end }
load { executor = "constant-vus", vus = 12, duration = "1.5s" }
thresholds { checks = "> 99%", ["product:p(99)"] = "< 1s" }
EOF2
rc=0
"$IAC" loadtest "$T/flow.lua" -json "$T/flow.json" -threads 2 > "$T/flow.out" || rc=$?
cat "$T/flow.out"
[ "$rc" = 0 ] || fail "flow run exited $rc"
logged=$(nginx_requests)
got=$(json "$T/flow.json" "d['requests']")
echo "flow: iac counted $got, nginx logged $logged"
[ "$got" = "$logged" ] || fail "iac counted $got requests, nginx logged $logged"
# per endpoint counts add up, and the names group URLs
"$PY" - "$T/flow.json" "$T/nginx/access.log" <<'EOP'
import json, sys, re
d = json.load(open(sys.argv[1]))
log = open(sys.argv[2]).read().splitlines()
eps = d["endpoints"]
assert set(eps) == {"GET /", "product", "cart", "missing", "GET /1k.html"}, eps.keys()
assert sum(e["requests"] for e in eps.values()) == d["requests"]
n_product = sum(1 for l in log if '"GET /product/' in l)
assert eps["product"]["requests"] == n_product, (eps["product"], n_product)
n_missing = sum(1 for l in log if '"GET /missing' in l)
assert eps["missing"]["errors"] == n_missing == eps["missing"]["requests"]
assert d["errors"]["by_kind"].get("http 404") == n_missing, d["errors"]
for name in ("home ok", "product ok", "json body echoed"):
    c = d["checks"][name]
    assert c["fails"] == 0 and c["passes"] > 0, (name, c)
print("endpoints and checks agree with the nginx log")
EOP

# the server closing connections: after every 3rd response (Connection:
# close) and while a VU thinks (idle keep-alive timeout); no errors, counts
# still exact
: > "$T/nginx/access.log"
cat > "$T/close.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "every3" { path = "/ka3/1k.html" }
scenario "idle" { think = "250ms", flow = function(u) local r = u:get("/idle/1k.html"); u:check(r.status == 200, "idle ok") end }
load { executor = "constant-vus", vus = 6, duration = "1.5s" }
EOF2
"$IAC" loadtest "$T/close.lua" -json "$T/close.json" > "$T/close.out" || fail "close run exited $?"
logged=$(nginx_requests)
got=$(json "$T/close.json" "d['requests']")
echo "closing server: iac counted $got, nginx logged $logged"
[ "$got" = "$logged" ] || fail "iac counted $got requests, nginx logged $logged"
[ "$(json "$T/close.json" "d['errors']['total']")" = 0 ] || fail "connection closes caused errors: $(cat "$T/close.out")"
[ "$(json "$T/close.json" "d['checks']['idle ok']['passes'] >= 12")" = True ] || fail "idle VUs did not come back after the server closed their connections"

# User-Agent: iac-loadtest/VERSION by default, the user_agent option's value,
# none with user_agent = "" (the bytes wrk sends), a request's own header wins
: > "$T/nginx/access.log"
cat > "$T/ua.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "a" { path = "/1k.html?ua=default" }
load { executor = "constant-vus", vus = 1, duration = "0.3s" }
EOF2
"$IAC" loadtest "$T/ua.lua" -quiet > /dev/null || fail "ua run exited $?"
sed '/^load/ s/ }$/, user_agent = "" }/' "$T/ua.lua" | sed 's/ua=default/ua=none/' > "$T/ua-none.lua"
"$IAC" loadtest "$T/ua-none.lua" -quiet > /dev/null || fail "ua-none run exited $?"
cat > "$T/ua-set.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "a" { flow = function(u) u:get("/1k.html?ua=set"); u:get("/1k.html?ua=own", { headers = { ["User-Agent"] = "own/2" } }) end }
load { executor = "constant-vus", vus = 1, duration = "0.3s", user_agent = "shop-bot/1" }
EOF2
"$IAC" loadtest "$T/ua-set.lua" -quiet > /dev/null || fail "ua-set run exited $?"
ua_check() {   # QUERY REGEX: every logged line of that query ends with the UA REGEX
	local n bad
	n=$(grep -c "ua=$1 " "$T/nginx/access.log")
	bad=$(grep "ua=$1 " "$T/nginx/access.log" | grep -vc "$2\$" || true)
	[ "$n" -gt 0 ] && [ "$bad" = 0 ] || fail "user agent for ua=$1: $bad of $n lines do not end with $2: $(grep -m1 "ua=$1 " "$T/nginx/access.log")"
}
ua_check default '"iac-loadtest/[0-9][^"]*"'
ua_check none '"-"'
ua_check set '"shop-bot/1"'
ua_check own '"own/2"'
echo "user agent: default, set, none and per request as logged by nginx"

# the JSON shape documented in docs/loadtest.md
"$PY" "$(dirname "$0")/check_json_shape.py" "$T/plain.json" "$T/flow.json" || fail "JSON report does not match the documented shape"
echo "ok"
