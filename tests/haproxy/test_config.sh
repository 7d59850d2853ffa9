#!/usr/bin/env bash
# The rendered config against the real HAProxy 2.6: `haproxy -c` accepts it
# (blue or green live), rejects a broken one with HAProxy's own message; the
# runtime API maps HAProxy's answers to clear errors, over the stats socket
# and through the master CLI; a reload with a config HAProxy rejects fails
# and the old worker keeps serving; stop is graceful.
. "$(dirname "$0")/lib.sh"

LB_PORT=$(free_port)
B1=$(free_port); G1=$(free_port)
apps_start "$B1 blue ok" "$G1 green ok" || exit 1

for live in blue green; do
    haproxy_desc $live "blue1 $B1 blue" "green1 $G1 green"
    "$TOOL" render "$W/desc.json" > "$W/$live.cfg" || check_fail "render with $live live"
    "$TOOL" check "$W/$live.cfg" > /dev/null 2> "$W/check.err" && ok "haproxy -c accepts the config with $live live" ||
        check_fail "haproxy -c rejects the rendered config: $(cat "$W/check.err")"
done
grep -q "server green1 127.0.0.1:$G1 disabled" "$W/blue.cfg" || check_fail "standby colour not disabled"
sed 's/balance roundrobin/balance sideways/' "$W/blue.cfg" > "$W/bad.cfg"
if "$TOOL" check "$W/bad.cfg" > /dev/null 2> "$W/bad.err"; then
    check_fail "haproxy -c accepted a broken config"
else
    grep -q "is invalid: parsing \[.*bad.cfg:[0-9]*\] : balance only supports" "$W/bad.err" && ok "broken config: $(cat "$W/bad.err")" ||
        check_fail "unexpected message: $(cat "$W/bad.err")"
fi
echo '{"frontend": {"bind": "127.0.0.1:1"}, "live": "blue", "servers": []}' > "$W/bad.json"
"$TOOL" render "$W/bad.json" > /dev/null 2> "$W/render.err" && check_fail "rendered an empty server list" ||
    ok "render error: $(cat "$W/render.err")"

haproxy_desc blue "blue1 $B1 blue" "green1 $G1 green"
haproxy_start || exit 1
expect_all blue 4 "started"

# error mapping
"$TOOL" state "$API" app ready nope 2> "$W/e1" && check_fail "set state on a missing server succeeded"
grep -qx "error: haproxy at '$API': cannot set 'app/nope' to ready: No such server." "$W/e1" &&
    ok "missing server: $(cat "$W/e1")" || check_fail "unexpected: $(cat "$W/e1")"
"$TOOL" state "$API" nobackend drain blue1 2> "$W/e2" && check_fail "set state on a missing backend succeeded"
grep -q "cannot set 'nobackend/blue1' to drain: No such backend." "$W/e2" && ok "missing backend: $(cat "$W/e2")" ||
    check_fail "unexpected: $(cat "$W/e2")"
"$TOOL" weight "$API" app blue1 50% && ok "set weight 50%" || check_fail "set weight 50%"
"$TOOL" stat "$API" app | grep -A5 '"svname": "blue1"' | grep -q '"weight": 0\|"weight": 1' || true
"$TOOL" weight "$API" app blue1 100% > /dev/null || check_fail "set weight back"
"$TOOL" cmd "$W/nobody.sock" "show info" 2> "$W/e3" && check_fail "a missing socket answered"
grep -q "cannot connect: No such file or directory (is haproxy running" "$W/e3" && ok "missing socket: $(cat "$W/e3")" ||
    check_fail "unexpected: $(cat "$W/e3")"

# the master CLI: commands routed to the worker with a target prefix
IAC_HAPROXY_TARGET=@1 "$TOOL" state "$MASTER" app drain green1 && ok "set state through the master CLI (@1)" ||
    check_fail "set state through the master CLI"
IAC_HAPROXY_TARGET=@1 "$TOOL" cmd "$MASTER" "show servers state app" | grep -q " green1 " &&
    ok "show servers state through the master CLI" || check_fail "show servers state through the master CLI"
"$TOOL" state "$MASTER" app drain green1 2> "$W/e4" && check_fail "a master CLI without target took a worker command"
grep -q "Unknown command" "$W/e4" && ok "master without target: $(cat "$W/e4")" || check_fail "unexpected: $(cat "$W/e4")"
"$TOOL" state "$API" app maint green1 || check_fail "green1 back to maint"

# a reload whose config HAProxy rejects: the old worker keeps serving
old_worker=$("$TOOL" cmd "$API" "show info" | sed -n 's/^Pid: //p')
cp "$W/haproxy.cfg" "$W/good.cfg"
cp "$W/bad.cfg" "$W/haproxy.cfg"
if "$TOOL" reload -api "$API" -master "$MASTER" -state-file "$W/server-state" > /dev/null 2> "$W/e5"; then
    check_fail "reload with a broken config succeeded"
else
    ok "reload with a broken config: $(cat "$W/e5")"
fi
if "$TOOL" reload -api "$API" -master "$MASTER" -check "$W/haproxy.cfg" > /dev/null 2> "$W/e6"; then
    check_fail "reload -check with a broken config succeeded"
else
    grep -q "not reloading haproxy: haproxy config .* is invalid: parsing" "$W/e6" &&
        ok "reload refused before reaching the master: $(cat "$W/e6")" || check_fail "unexpected: $(cat "$W/e6")"
fi
cp "$W/good.cfg" "$W/haproxy.cfg"
expect_all blue 4 "after the rejected reload"
now_worker=$("$TOOL" cmd "$API" "show info" | sed -n 's/^Pid: //p')
[ "$now_worker" = "$old_worker" ] && ok "worker $old_worker still serving" || check_fail "worker changed: $old_worker -> $now_worker"
"$TOOL" reload -api "$API" -master "$MASTER" -state-file "$W/server-state" -check "$W/haproxy.cfg" > "$W/r.json" 2>&1 &&
    ok "the next reload with a good config works: worker $(tool_json "$W/r.json" new_worker)" || check_fail "reload after fix: $(cat "$W/r.json")"
expect_all blue 4 "after the good reload"

"$TOOL" stop "$HAPROXY_PID" && ok "graceful stop" || check_fail "stop"
if kill -0 "$HAPROXY_PID" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$HAPROXY_PID/stat")" != Z ]; then
    check_fail "haproxy master $HAPROXY_PID still running after stop"
fi
curl -s --max-time 1 "http://127.0.0.1:$LB_PORT/" > /dev/null && check_fail "the frontend still answers after stop"
finish
