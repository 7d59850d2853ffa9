#!/usr/bin/env bash
# Prometheus gate against a real Prometheus (Debian package, standalone):
# verdicts for max/min limits over one and several series, a scalar, no data
# (Inconclusive, as Argo Rollouts has it), a bad query and an unreachable
# server (Error), and a query that needs URL encoding.
. "$(dirname "$0")/lib.sh"

if ! command -v prometheus > /dev/null; then
    echo "error: prometheus is not installed (apt-get install prometheus)" >&2
    exit 1
fi
PROM_PORT=$(free_port); DEAD=$(free_port)
cat > "$W/prom.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ['127.0.0.1:$PROM_PORT']
  - job_name: dead
    static_configs:
      - targets: ['127.0.0.1:$DEAD']
YML
prometheus --config.file="$W/prom.yml" --storage.tsdb.path="$W/prom-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" > "$W/prom.log" 2>&1 &
PIDS+=($!)
URL=http://127.0.0.1:$PROM_PORT
wait_http "$URL/-/ready" 60 || { cat "$W/prom.log" >&2; exit 1; }
# both targets scraped at least once
for i in $(seq 1 120); do
    if "$TOOL" prom "$URL" 'count(up)' -min 2 > /dev/null 2>&1; then break; fi
    sleep 0.25
done

prom() {   # WANT_VERDICT WHAT QUERY FLAGS...
    local want=$1 what=$2 q=$3 out=$W/p.json rc
    shift 3
    "$TOOL" prom "$URL" "$q" "$@" > "$out" 2> "$out.err"
    rc=$?
    local got value
    got=$(tool_json "$out" verdict)
    value=$(tool_json "$out" value)
    if [ "$got" != "$want" ]; then
        check_fail "$what: query '$q' $*: verdict '$got', expected '$want' ($(cat "$out.err"))"
    elif { [ "$want" = passed ] && [ $rc -ne 0 ]; } || { [ "$want" != passed ] && [ $rc -eq 0 ]; }; then
        check_fail "$what: exit status $rc does not match verdict $got"
    else
        ok "$what: $got (value $value) $(cat "$out.err")"
    fi
}

prom failed  "up above max"        'up{job="self"}' -max 0.5
prom passed  "up within max"       'up{job="self"}' -max 2
prom passed  "up at min"           'up{job="self"}' -min 1
prom failed  "several series, the smallest decides" 'up' -min 1
prom passed  "scalar"              'scalar(up{job="self"})' -max 1
prom passed  "query needing URL encoding" 'sum(up{job=~"se.*"}) / count(up{job=~"se.*"}) == 1' -min 1 -max 1
prom inconclusive "no data"        'iac_metric_that_does_not_exist' -max 1
prom error   "bad query"           'up{' -max 1
grep -q "bad_data" "$W/p.json.err" || check_fail "the bad query message does not carry Prometheus' error type"
URL=http://127.0.0.1:$DEAD
prom error   "unreachable server"  'up' -max 1
finish
