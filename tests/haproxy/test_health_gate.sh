#!/usr/bin/env bash
# Health gate on real nginx instances: a colour whose /health answers 500
# fails the gate (with the status in the message) while a healthy one
# passes; a switch to the sick colour is refused, directly (-verify) or by
# HAProxy's own check (-wait-check), and under wrk load traffic stays on blue
# with zero failed requests.
. "$(dirname "$0")/lib.sh"

LB_PORT=$(free_port)
B1=$(free_port); G1=$(free_port); DEAD=$(free_port)
apps_start "$B1 blue ok" "$G1 green health500" || exit 1
haproxy_desc blue "blue1 $B1 blue" "green1 $G1 green"
HEALTH_INTERVAL=200ms haproxy_start || exit 1
load_start 120

# 1. the gate itself
if "$TOOL" health "http://127.0.0.1:$G1" -interval 100ms -healthy 3 -timeout 1s > "$W/h1.json" 2> "$W/h1.err"; then
    check_fail "health gate passed on a colour whose /health answers 500"
else
    grep -q "answered 500 (expected 200), 0 of 3 consecutive successes" "$W/h1.err" &&
        ok "health gate on the sick colour failed: $(cat "$W/h1.err")" || check_fail "unexpected message: $(cat "$W/h1.err")"
    [ "$(tool_json "$W/h1.json" verdict)" = failed ] || check_fail "verdict is not 'failed'"
    [ "$(tool_json "$W/h1.json" last_status)" = 500 ] || check_fail "last_status is not 500"
fi
if "$TOOL" health "http://127.0.0.1:$B1" -interval 100ms -healthy 3 -timeout 5s > "$W/h2.json" 2> "$W/h2.err"; then
    ok "health gate on blue passed in $(tool_json "$W/h2.json" elapsed_ms) ms"
    awk -v t="$(tool_json "$W/h2.json" elapsed_ms)" 'BEGIN { exit !(t >= 190) }' ||
        check_fail "3 successes 100 ms apart cannot take less than 200 ms"
else
    check_fail "health gate on blue failed: $(cat "$W/h2.err")"
fi
if "$TOOL" health "http://127.0.0.1:$DEAD" -interval 100ms -healthy 1 -timeout 500ms > /dev/null 2> "$W/h3.err"; then
    check_fail "health gate passed on a port nobody listens on"
else
    grep -qi "connect" "$W/h3.err" && ok "dead instance: $(cat "$W/h3.err")" || check_fail "unexpected message: $(cat "$W/h3.err")"
fi

# 2. a switch that verifies the new colour first refuses it
if "$TOOL" switch "$API" app -to green1 -from blue1 -verify "http://127.0.0.1:$G1/health" > /dev/null 2> "$W/s1.err"; then
    check_fail "switch to the sick colour with -verify succeeded"
else
    ok "switch with -verify refused: $(cat "$W/s1.err")"
fi
expect_all blue 6 "after the refused switch"

# 3. without -verify, HAProxy's own check catches it and the switch aborts
if "$TOOL" switch "$API" app -to green1 -from blue1 -wait-check -up-timeout 3s > /dev/null 2> "$W/s2.err"; then
    check_fail "switch to the sick colour with -wait-check succeeded"
else
    grep -q "green1" "$W/s2.err" && grep -q "put back in maint" "$W/s2.err" &&
        ok "switch with -wait-check aborted: $(cat "$W/s2.err")" || check_fail "unexpected message: $(cat "$W/s2.err")"
fi
"$TOOL" stat "$API" app > "$W/stat.json"
grep -A2 '"svname": "green1"' "$W/stat.json" | grep -q '"status": "MAINT"' &&
    ok "green1 is back in maint" || { check_fail "green1 is not in maint"; cat "$W/stat.json" >&2; }
expect_all blue 6 "after the aborted switch"

load_stop
load_expect_clean "health gate aborts"
finish
