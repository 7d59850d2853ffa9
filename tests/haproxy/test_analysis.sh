#!/usr/bin/env bash
# Analysis gate against real nginx instances: the idle colour answering 500
# on 5 % of requests fails a 1 % error budget with figures close to 5 %; a
# clean colour passes; an impossible p99 limit fails on latency.
. "$(dirname "$0")/lib.sh"

B1=$(free_port); G1=$(free_port)
apps_start "$B1 blue ok" "$G1 green err5" || exit 1

if "$TOOL" analysis "http://127.0.0.1:$G1/" -duration 3s -concurrency 4 -max-error-rate 0.01 -max-p99 300ms \
        > "$W/a1.json" 2> "$W/a1.err"; then
    check_fail "analysis passed on a colour with 5 % errors"
else
    rate=$(tool_json "$W/a1.json" error_rate)
    reqs=$(tool_json "$W/a1.json" requests)
    echo "green: $(cat "$W/a1.err")"
    [ "$(tool_json "$W/a1.json" verdict)" = failed ] || check_fail "verdict is not 'failed'"
    grep -q "analysis failed: error rate" "$W/a1.err" || check_fail "message does not name the error rate"
    awk -v r="$rate" -v n="$reqs" 'BEGIN { exit !(n >= 500 && r > 0.03 && r < 0.07) }' &&
        ok "green: error rate $rate over $reqs requests (5 % expected)" ||
        check_fail "green: error rate $rate over $reqs requests is not about 5 %"
fi

if "$TOOL" analysis "http://127.0.0.1:$B1/" -duration 2s -concurrency 4 -max-error-rate 0.01 -max-p99 300ms \
        > "$W/a2.json" 2> "$W/a2.err"; then
    ok "blue passed: $(tool_json "$W/a2.json" requests) requests, p50 $(tool_json "$W/a2.json" p50_ms) ms, p99 $(tool_json "$W/a2.json" p99_ms) ms"
    [ "$(tool_json "$W/a2.json" errors)" = 0 ] || check_fail "blue had errors"
else
    check_fail "analysis failed on blue: $(cat "$W/a2.err")"
fi

if "$TOOL" analysis "http://127.0.0.1:$B1/" -duration 500ms -max-p99 1us > /dev/null 2> "$W/a3.err"; then
    check_fail "analysis passed with a 1 us p99 limit"
else
    grep -q "p99" "$W/a3.err" && ok "latency limit: $(cat "$W/a3.err")" || check_fail "unexpected: $(cat "$W/a3.err")"
fi
finish
