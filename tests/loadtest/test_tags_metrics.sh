# k6's tags, custom metrics and groups: requests tagged in a flow (and by
# the defaults name/method/status/group) are selected by thresholds as k6
# writes them (http_req_duration{endpoint:checkout}); counter, gauge, rate
# and trend made in Lua are kept across threads and judged; group() keeps
# group_duration and tags the requests inside. Summary and JSON show them.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
start_nginx "$PORT"

cat > "$T/k6.lua" <<EOF2
target "http://127.0.0.1:$PORT"
local orders = counter("orders")
local depth = gauge("depth")
local good = rate("good")
local wait = trend("wait", true)
local sizes = trend("sizes")
scenario "shop" { flow = function(u)
  group("checkout", function()
    local r = u:get("/slow/x", { tags = { endpoint = "checkout" } })
    good:add(r.status == 200)
    orders:add(2, { kind = "book" })
  end)
  local r = u:get("/1k.html", { tags = { endpoint = "home" } })
  depth:add(7)
  wait:add(r.time_ms)
  sizes:add(#r.body)
  u:get("/missing", { name = "gone" })
end }
load { vus = 3, duration = "1.5s", max_failed = false }
thresholds {
  ["http_req_duration{endpoint:checkout}"] = { "p(95) >= 250ms", "count > 0" },
  ["http_req_duration{endpoint:home}"] = "p(95) < 250ms",
  ["http_req_duration{endpoint:home,group:::checkout}"] = "count == 0",
  ["http_req_duration{group:::checkout}"] = "min >= 250ms",
  ["http_req_failed{name:gone}"] = "rate == 1",
  ["http_reqs{status:404}"] = "count > 0",
  ["http_reqs{method:GET,expected_response:true}"] = "count > 0",
  ["group_duration{group:::checkout}"] = "avg >= 250ms",
  orders = "count >= 2",
  ["orders{kind:book}"] = "rate > 0",
  ["orders{kind:dvd}"] = "count == 0",
  depth = { "value == 7", "max == 7" },
  good = "rate > 99%",
  wait = "p(99) < 250ms",
  sizes = "min == 1024",
}
EOF2
rc=0
"$IAC" loadtest "$T/k6.lua" -json "$T/k6.json" -html "$T/k6.html" > "$T/k6.out" 2>&1 || rc=$?
cat "$T/k6.out"
[ "$rc" = 0 ] || fail "every threshold should pass, exit $rc"
for k in 'http_req_duration{endpoint:checkout}' 'http_req_duration{endpoint:home}' 'http_req_failed{name:gone}' \
	 'http_reqs{status:404}' 'group_duration{group:::checkout}' 'orders{kind:book}' depth good wait sizes; do
	[ "$(json "$T/k6.json" "d['thresholds']['$k']['ok']")" = True ] || fail "threshold $k should pass"
done
# the sub-metrics, custom metrics and group in the JSON, with k6's aggregates
[ "$(json "$T/k6.json" "d['metrics']['orders']['type']")" = counter ] || fail "orders is a counter"
[ "$(json "$T/k6.json" "d['metrics']['orders']['count'] == 2 * d['metrics']['good']['passes']")" = True ] ||
	fail "orders must count 2 per checkout, across threads"
[ "$(json "$T/k6.json" "d['metrics']['depth']['value']")" = 7.0 ] || fail "the gauge's last value"
[ "$(json "$T/k6.json" "d['metrics']['wait']['time']")" = True ] || fail "wait is a time trend"
[ "$(json "$T/k6.json" "d['metrics']['sizes']['time']")" = False ] || fail "sizes is a plain trend"
n_checkout=$(json "$T/k6.json" "d['metrics']['http_req_duration{endpoint:checkout}']['count']")
n_group=$(json "$T/k6.json" "d['metrics']['group_duration{group:::checkout}']['count']")
n_ep=$(json "$T/k6.json" "d['endpoints']['GET /slow/x']['requests']")
[ "$n_checkout" = "$n_ep" ] || fail "the tagged sub-metric counts $n_checkout requests, the endpoint $n_ep"
[ "$n_group" -ge 1 ] || fail "no group_duration sample"
grep -q '^  metrics' "$T/k6.out" || fail "the summary has no metrics section"
grep -q 'orders{kind:book} *count=' "$T/k6.out" || fail "the summary does not show orders{kind:book}"
grep -q 'ok   http_req_duration{endpoint:checkout}' "$T/k6.out" || fail "the summary does not show the tagged threshold"
# the HTML report has them too: a row per metric, with the JSON's figures
"$T_PY" - "$T/k6.html" "$T/k6.json" <<'PY' || fail "the HTML report's metrics table"
import html, json, re, sys
page = open(sys.argv[1]).read(); d = json.load(open(sys.argv[2]))
m = re.search(r'<table id="metrics">(.*?)</table>', page, re.S)
assert m, "no metrics table"
rows = {}
for tr in re.findall(r'<tr>(.*?)</tr>', m.group(1), re.S)[1:]:
    cells = [html.unescape(re.sub(r'<[^>]+>', '', c)) for c in re.findall(r'<td[^>]*>(.*?)</td>', tr, re.S)]
    rows[cells[0]] = cells
want = d['metrics']
assert set(rows) == set(want), (sorted(rows), sorted(want))
ck = rows['http_req_duration{endpoint:checkout}']
assert ck[1] == 'trend' and int(ck[-1]) == want['http_req_duration{endpoint:checkout}']['count'], ck
assert abs(float(ck[6].split()[0]) - want['http_req_duration{endpoint:checkout}']['p(95)']) < 0.01 * want['http_req_duration{endpoint:checkout}']['p(95)'] + 0.01, ck
assert rows['orders{kind:book}'][2].startswith('%g' % want['orders{kind:book}']['count']), rows['orders{kind:book}']
assert rows['good'][2].startswith('100.00%'), rows['good']
assert rows['depth'][2] == '7', rows['depth']
print("ok: HTML metrics table: %d rows, checkout p95 %s" % (len(rows), ck[6]))
PY

# tags select: the same limit on the slow endpoint fails, and only there
sed -e 's/\["http_req_duration{endpoint:home}"\] = "p(95) < 250ms"/["http_req_duration{endpoint:checkout}"] = "p(95) < 250ms"/' \
	-e '/"p(95) >= 250ms"/d' "$T/k6.lua" > "$T/fail.lua"
rc=0
"$IAC" loadtest "$T/fail.lua" -json "$T/fail.json" > "$T/fail.out" 2>&1 || rc=$?
[ "$rc" = 99 ] || { cat "$T/fail.out"; fail "p(95) < 250ms on the slow endpoint must fail (exit 99), got $rc"; }
grep -q 'FAIL http_req_duration{endpoint:checkout}' "$T/fail.out" || fail "the summary does not name the failed tagged threshold"

# a scenario's own tags (k6's scenario tags), also on a flow-less scenario
cat > "$T/stags.lua" <<EOF2
target "http://127.0.0.1:$PORT"
scenario "plain" { path = "/1k.html", tags = { tier = "static" } }
scenario "api" { flow = function(u) u:get("/cart", { tags = { tier = "override" } }) end, tags = { tier = "api", team = "x" } }
load { vus = 4, duration = "1s" }   -- each thread gives its VUs to the scenarios by weight: both run
thresholds {
  ["http_reqs{tier:static}"] = "count > 0",
  ["http_reqs{tier:override,team:x}"] = "count > 0",
  ["http_reqs{tier:api}"] = "count == 0",
}
EOF2
rc=0
"$IAC" loadtest "$T/stags.lua" -json "$T/stags.json" > "$T/stags.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$T/stags.out"; fail "scenario tags: exit $rc"; }
[ "$(json "$T/stags.json" "d['metrics']['http_reqs{tier:static}']['count'] == d['endpoints']['GET /1k.html']['requests']")" = True ] ||
	fail "every request of the plain scenario carries its tag"

# mistakes are named before any load: an unknown metric, a condition
# without k6's aggregate, a built-in that is not kept by tag, add() at load
check_err() {   # check_err NAME LUA_LINES MESSAGE
	printf 'target "http://127.0.0.1:%s"\n%s\n' "$PORT" "$2" > "$T/$1.lua"
	rc=0
	"$IAC" loadtest "$T/$1.lua" 2> "$T/$1.err" > /dev/null || rc=$?
	[ "$rc" = 1 ] || fail "$1: expected exit 1, got $rc"
	grep -qF "$3" "$T/$1.err" || { cat "$T/$1.err"; fail "$1: message should say: $3"; }
}
: > "$T/nginx/access.log"
check_err unknown 'thresholds { ["nope{a:b}"] = "count > 1" }' "unknown metric 'nope' in threshold 'nope{a:b}'"
check_err noagg 'thresholds { ["http_req_duration{endpoint:x}"] = "< 1s" }' "needs one of the trend's aggregates (p(N), avg, min, med, max, count)"
check_err iters 'thresholds { ["iterations{a:b}"] = "count > 1" }' "'iterations' is not kept by tag"
check_err addload 'local c = counter("c")
c:add(1)' "add() runs inside a flow"
check_err builtin 'local c = counter("http_reqs")' "metric 'http_reqs' is one of the built-in metrics"
check_err twice 'counter("x")
gauge("x")' "metric 'x' is already a counter"
[ "$(nginx_requests)" = 0 ] || fail "no request may be sent when the scenario is wrong"
echo "ok: tags, custom metrics and groups"
