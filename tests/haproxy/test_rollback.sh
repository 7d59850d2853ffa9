#!/usr/bin/env bash
# Rollback under the conditions that make it hard, against a real HAProxy:
# - a long request still running on the colour rolled back from: the
#   rollback finishes within 1 s anyway, leaves that server in drain (no new
#   requests, the slow one completes), and `finish` puts it in maint later;
# - a rollback preempting a cutover that is still waiting for its drain: the
#   rollback wins, the cutover notices and stops with a conflict (exit 3)
#   instead of putting the now-live colour in maint;
# - a rollback to a standby that died: refused in well under 1 s, traffic
#   stays where it is.
. "$(dirname "$0")/lib.sh"

LB_PORT=$(free_port)
B1=$(free_port); G1=$(free_port)
apps_start "$B1 blue ok" "$G1 green ok" || exit 1
haproxy_desc blue "blue1 $B1 blue" "green1 $G1 green"
haproxy_start || exit 1
load_start 120

# 1. a slow request on green when rolling back to blue
"$TOOL" switch "$API" app -to green1 -from blue1 > /dev/null || check_fail "cutover to green"
curl -s -o "$W/slow.out" --max-time 30 "http://127.0.0.1:$LB_PORT/slow" &
SLOW=$!; PIDS+=($SLOW)
sleep 0.5
"$TOOL" switch "$API" app -rollback -to blue1 -from green1 -verify "http://127.0.0.1:$B1/health" \
    -state-file "$W/server-state" > "$W/rb.json" 2> "$W/rb.err" || check_fail "rollback: $(cat "$W/rb.err")"
total=$(tool_json "$W/rb.json" total_ms)
state=$(tool_json "$W/rb.json" from_state)
left=$(tool_json "$W/rb.json" sessions_left)
awk -v t="$total" 'BEGIN { exit !(t <= 1000) }' && ok "rollback with a slow request on green: $total ms" ||
    fail_timing "rollback took $total ms"
[ "$state" = drain ] && [ "$left" -ge 1 ] && ok "green left in drain with $left session(s) still running" ||
    check_fail "green should stay in drain with its slow session: state $state, sessions $left"
expect_all blue 6 "after the rollback"
"$TOOL" finish "$API" app green1 -timeout 30s && ok "finish: green1 in maint once its session ended" ||
    check_fail "finish green1"
wait "$SLOW"; rc=$?
size=$(stat -c %s "$W/slow.out" 2>/dev/null || echo 0)
[ $rc = 0 ] && [ "$size" = 409600 ] && ok "the slow request on the drained colour completed ($size bytes)" ||
    check_fail "the slow request was cut: curl rc $rc, $size bytes"
"$TOOL" stat "$API" app | grep -A2 '"svname": "green1"' | grep -q '"status": "MAINT"' || check_fail "green1 not in maint after finish"

# 2. a rollback preempting a cutover that waits for its drain
curl -s -o /dev/null --max-time 30 "http://127.0.0.1:$LB_PORT/slow" &
SLOW=$!; PIDS+=($SLOW)
sleep 0.3
"$TOOL" switch "$API" app -to green1 -from blue1 -drain-timeout 20s > "$W/cut.json" 2> "$W/cut.err" &
CUT=$!; PIDS+=($CUT)
sleep 1
"$TOOL" switch "$API" app -rollback -to blue1 -from green1 > "$W/rb2.json" 2> "$W/rb2.err" ||
    check_fail "preempting rollback: $(cat "$W/rb2.err")"
wait "$CUT"; rc=$?
[ $rc = 3 ] && grep -q "changed during the switch" "$W/cut.err" && ok "the preempted cutover stopped: $(cat "$W/cut.err")" ||
    check_fail "preempted cutover: exit $rc, $(cat "$W/cut.err")"
expect_all blue 6 "after the preempting rollback"
"$TOOL" stat "$API" app | grep -A2 '"svname": "blue1"' | grep -q '"status": "UP"' && ok "blue1 is UP (not put in maint)" ||
    check_fail "blue1 is not UP"
kill "$SLOW" 2>/dev/null; wait "$SLOW" 2>/dev/null

# 3. a rollback to a standby that died
"$TOOL" switch "$API" app -to green1 -from blue1 > /dev/null || check_fail "cutover to green"
DEAD=$(free_port)
"$TOOL" cmd "$API" "set server app/blue1 addr 127.0.0.1 port $DEAD" > /dev/null  # blue1 now points nowhere
# (the call's own time: on a loaded machine starting the tool process alone
# can take longer than the call)
"$TOOL" switch "$API" app -rollback -to blue1 -from green1 -verify "http://127.0.0.1:$DEAD/health" \
    > "$W/rb3.json" 2> "$W/rb3.err" && check_fail "rollback to a dead standby succeeded"
ms=$(tool_json "$W/rb3.json" total_ms)
awk -v t="$ms" 'BEGIN { exit !(t < 1000) }' && ok "rollback to a dead standby refused in $ms ms: $(cat "$W/rb3.err")" ||
    fail_timing "refusal took $ms ms"
expect_all green 6 "traffic stays on green"

load_stop
load_expect_clean "rollbacks with slow requests, preemption and a dead standby"
finish
