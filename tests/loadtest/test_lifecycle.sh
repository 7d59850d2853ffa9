# k6's setup()/teardown(data), shared data files, cookies and templates:
# setup() runs once before the VUs (its requests through iac/http) and its
# plain data reaches every VU's flow as flow(u, data); teardown(data) runs
# once after; shared_data() reads a CSV file ONCE (a FIFO here, which
# cannot be read twice) for every thread, and rows:row(u) gives each VU its
# own row; each VU keeps its own cookie jar (Set-Cookie sent back, Max-Age=0
# removes); template():render() builds request bodies.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
start_nginx "$PORT" '
    location = /login { default_type application/json; add_header Set-Cookie "sid=s-$arg_user; Path=/"; return 200 "{\"token\":\"t-42\"}"; }
    location = /whoami { echo "cookie=[$http_cookie]"; }
    location = /logout { add_header Set-Cookie "sid=gone; Max-Age=0"; return 200 "bye"; }'

mkfifo "$T/users.csv"
printf 'name,city\nann,Oslo\n"bob, jr",Rome\ncid,Lima\ndee,Kyiv\n' > "$T/users.csv" &
PIDS+=("$!")

cat > "$T/life.lua" <<EOF2
target "http://127.0.0.1:$PORT"
local users = shared_data("users.csv")
local order = template('{"user":"{{name}}","qty":{{qty}}}')
function setup(s)
  local r = s:get("/login?user=setup")
  return { token = r.json.token, list = { 1, 2, 3 } }
end
scenario "shop" { flow = function(u, data)
  local me = users:row(u)
  u:check(data.token == "t-42" and #data.list == 3, "setup data")
  u:check(#users == 4 and users[2].name == "bob, jr", "csv rows")
  u:get("/login?user=" .. me.city)
  local r = u:get("/whoami?who=" .. me.city)
  u:check(r.body:find("sid=s-" .. me.city, 1, true) ~= nil, "cookie sent back")
  local o = u:post("/post", order:render({ name = me.name, qty = u.iteration }))
  u:check(o.body:find('"user":"' .. me.name .. '"', 1, true) ~= nil, "template body")
  u:get("/logout")
  local r2 = u:get("/whoami?after=1")
  u:check(r2.body:find("cookie=[]", 1, true) ~= nil, "cookie removed")
end }
function teardown(data) print("teardown saw " .. data.token) end
load { vus = 3, duration = "1s" }
thresholds { checks = "== 100%" }
EOF2
rc=0
timeout 30 "$IAC" loadtest "$T/life.lua" -threads 2 -json "$T/life.json" > "$T/life.out" 2>&1 || rc=$?
cat "$T/life.out"
[ "$rc" != 124 ] || fail "the run hung: the data file was read more than once"
[ "$rc" = 0 ] || fail "every check should pass, exit $rc"
for c in "setup data" "csv rows" "cookie sent back" "template body" "cookie removed"; do
	[ "$(json "$T/life.json" "d['checks']['$c']['fails']")" = 0 ] || fail "check '$c' failed"
	[ "$(json "$T/life.json" "d['checks']['$c']['passes'] > 0")" = True ] || fail "check '$c' never ran"
done
[ "$(grep -c 'login?user=setup' "$T/nginx/access.log")" = 1 ] || fail "setup() must run exactly once"
grep -q "teardown saw t-42" "$T/life.out" || fail "teardown(data) did not run with setup()'s data"
[ "$(grep 'teardown saw' "$T/life.out" | wc -l)" = 1 ] || fail "teardown() must run once"
# sharding: 3 VUs took 3 different rows (VU ids 1..3)
cities=$(grep -o 'whoami?who=[A-Za-z]*' "$T/nginx/access.log" | sort -u | wc -l)
[ "$cities" = 3 ] || fail "3 VUs should use 3 rows, saw $cities"

# a setup() that fails stops the run before any load
cat > "$T/bad.lua" <<EOF2
target "http://127.0.0.1:$PORT"
function setup(s) error("no login") end
scenario "x" { flow = function(u) u:get("/1k.html") end }
load { vus = 1, duration = "1s" }
EOF2
: > "$T/nginx/access.log"
rc=0
"$IAC" loadtest "$T/bad.lua" > "$T/bad.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a failing setup() must exit 1, got $rc"
grep -q "setup() failed: .*no login" "$T/bad.out" || fail "the error must name setup()"
[ "$(nginx_requests)" = 0 ] || fail "no load after a failed setup()"
echo "ok: setup/teardown, shared data, cookies, templates"
