# Results streamed to Prometheus while the test runs: -metrics-listen serves
# the run's figures at /metrics (text format, checked by promtool), and
# Debian's prometheus, scraping it every second, holds several samples of
# the run, taken while it ran (the counter grew between scrapes), plus the
# custom and tagged metrics with their tags as labels.
. "$(dirname "$0")/lib.sh"
t_need prometheus promtool curl

PORT=$(free_port)
MPORT=$(free_port)
PPORT=$(free_port)
start_nginx "$PORT"

mkdir -p "$T/prom"
cat > "$T/prom/prometheus.yml" <<EOF2
global: { scrape_interval: 1s, scrape_timeout: 900ms }
scrape_configs:
  - job_name: iac-loadtest
    static_configs: [ { targets: [ "127.0.0.1:$MPORT" ] } ]
EOF2
prometheus --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
	--web.listen-address="127.0.0.1:$PPORT" > "$T/prom/log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
	curl -sf "http://127.0.0.1:$PPORT/-/ready" > /dev/null && break
	sleep 0.2
done
curl -sf "http://127.0.0.1:$PPORT/-/ready" > /dev/null || { tail "$T/prom/log"; fail "prometheus did not start"; }
# prometheus applies its targets a few seconds after it starts: wait until
# it scrapes (the target is down until the run listens)
for _ in $(seq 1 100); do
	curl -sf "http://127.0.0.1:$PPORT/api/v1/targets" | grep -q '"lastScrape":"20' && break
	sleep 0.2
done

cat > "$T/s.lua" <<EOF2
target "http://127.0.0.1:$PORT"
local orders = counter("orders")
scenario "shop" { flow = function(u)
  u:get("/1k.html", { tags = { endpoint = "home" } })
  orders:add(1, { kind = "book" })
  u:sleep("20ms")
end }
load { vus = 2, duration = "4s" }
thresholds { ["orders{kind:book}"] = "count > 0" }
EOF2
"$IAC" loadtest "$T/s.lua" -quiet -metrics-listen "127.0.0.1:$MPORT" -metrics-linger 2500ms > "$T/run.out" 2>&1 &
LT=$!
PIDS+=("$LT")
sleep 2
curl -sf "http://127.0.0.1:$MPORT/metrics" > "$T/scrape.txt" || fail "no /metrics while the test runs"
promtool check metrics < "$T/scrape.txt" || fail "promtool does not accept the exposition"
grep -q '^iac_loadtest_http_reqs_total [1-9]' "$T/scrape.txt" || fail "no requests in the scrape"
grep -q '^iac_loadtest_orders_total{kind="book"} [1-9]' "$T/scrape.txt" || fail "the tagged custom counter is missing"
grep -q '^iac_loadtest_vus 2$' "$T/scrape.txt" || fail "2 VUs should be running"
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/other" | grep -q 404 || fail "only /metrics is served"
rc=0
wait "$LT" || rc=$?
[ "$rc" = 0 ] || { cat "$T/run.out"; fail "the run should pass, exit $rc"; }

q() {   # q PROMQL: the first value of an instant query
	"$PY" - "http://127.0.0.1:$PPORT/api/v1/query" "$1" <<'EOP'
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "?" + urllib.parse.urlencode({"query": sys.argv[2]})
r = json.load(urllib.request.urlopen(url))["data"]["result"]
print(r[0]["value"][1] if r else "none")
EOP
}
n=$(q 'count_over_time(iac_loadtest_http_reqs_total[2m])')
lo=$(q 'min_over_time(iac_loadtest_http_reqs_total[2m])')
hi=$(q 'max_over_time(iac_loadtest_http_reqs_total[2m])')
echo "prometheus: $n samples of http_reqs_total, from $lo to $hi"
[ "$n" != none ] && [ "$n" -ge 3 ] || fail "prometheus should hold >= 3 samples of the run, has $n"
"$PY" -c "import sys; sys.exit(0 if float('$lo') < float('$hi') else 1)" || fail "no sample was taken while the run was going ($lo .. $hi)"
[ "$(q 'max_over_time(iac_loadtest_orders_total{kind="book"}[2m]) > 0')" != none ] || fail "the custom metric is not in prometheus"
[ "$(q 'max_over_time(iac_loadtest_endpoint_reqs_total{name="GET /1k.html"}[2m])')" != none ] || fail "the endpoint series is not in prometheus"
echo "ok: figures streamed to prometheus while the test ran"
