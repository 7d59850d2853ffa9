#!/bin/bash
# Under constant wrk -c50 keep-alive load through HAProxy on the test bed
# (1 HAProxy host, 4 app hosts, over SSH): 6 cutovers (iac apply with a new
# version, both directions blue->green and green->blue), 5 rollbacks (iac
# rollback) and 3 HAProxy reloads (a timeout change of deploy.haproxy, with
# either colour live) fail no request: wrk reports no socket error and no
# non-2xx answer, and its script counts a 200 for every answer. After each
# step every answer comes from the expected version; the reloads keep the
# runtime switch (the config always names blue).
. "$(dirname "$0")/lib.sh"
setup

load_start 600
: >"$WORK/rollback.ms"
live=v1   # the version that must be answering

cutover() {   # VERSION
	local t0=$SECONDS
	iac apply -auto-approve -var version="$1" >"$WORK/apply-$1.out" 2>&1 ||
		{ cat "$WORK/apply-$1.out" >&2; fail "apply -var version=$1 (cutover)"; }
	grep -q "deploy.blue_green.web: $1 is live on" "$WORK/apply-$1.out" ||
		{ cat "$WORK/apply-$1.out" >&2; fail "apply $1 did not report the new version live"; }
	live=$1
	local took=$((SECONDS - t0)) sw
	state_json
	sw=$(python_json "$WORK/state.json" "
r = [r for r in d['resources'] if r['address'] == 'deploy.blue_green.web'][0]['attributes']
print(round(r['last']['cutover']['switch_ms']))")
	expect_version "$1" 8 "cutover to $1 ($(dep_attr live), apply $took s, switch_ms $sw in state)"
}

rollback() {   # N: back to the standby version
	local to
	to=$(dep_attr standby_version)
	timed "$WORK/rollback-$1.out" "$IAC" -no-color rollback web -json
	[ "$TIMED_RC" = 0 ] || { cat "$WORK/rollback-$1.out" >&2; fail "rollback $1 exited $TIMED_RC"; }
	echo "$TIMED_MS" >>"$WORK/rollback.ms"
	live=$to
	expect_version "$to" 8 "rollback $1 back to $to ($(dep_attr live); iac rollback: $TIMED_MS ms wall, $(
		python_json "$WORK/rollback-$1.out" "r = d['rollbacks'][0]
print('switch %.0f ms, deployment %.0f ms' % (r['switch_ms'], r['total_ms']))"))"
}

reload() {   # N: a deploy.haproxy change (client timeout) reloads HAProxy
	iac apply -auto-approve -var version="$live" -var client_timeout="3$1s" >"$WORK/reload-$1.out" 2>&1 ||
		{ cat "$WORK/reload-$1.out" >&2; fail "apply (reload $1)"; }
	grep -q 'deploy.haproxy.lb: modified' "$WORK/reload-$1.out" ||
		{ cat "$WORK/reload-$1.out" >&2; fail "reload $1: deploy.haproxy.lb was not modified"; }
	grep -q 'deploy.blue_green.web: modif' "$WORK/reload-$1.out" &&
		{ cat "$WORK/reload-$1.out" >&2; fail "reload $1 also redeployed"; }
	on_host 1 "grep -q 'timeout client 3${1}000ms' /var/lib/iac/haproxy-lb/haproxy.cfg" ||
		fail "reload $1: the new timeout is not in the config on the HAProxy host"
	expect_version "$live" 8 "reload $1 with $(dep_attr live) live (the switch survives it)"
}

cutover v2      # blue -> green
rollback 1      # -> blue v1
cutover v3      # blue -> green
reload 1        # green live
cutover v4      # green -> blue
reload 2        # blue live
rollback 2      # -> green v3
cutover v5      # green -> blue
rollback 3      # -> green v3
reload 3        # green live
cutover v6      # green -> blue
rollback 4      # -> green v3
cutover v7      # green -> blue
rollback 5      # -> green v3

load_stop
load_expect_clean "6 cutovers, 5 rollbacks, 3 reloads"

# HAProxy's view at the end: the live colour up, the other in maint, none down
server_states >"$WORK/servers"
want=$(dep_attr live)
awk -v w="$want" '($1 ~ "^" w && $2 != "UP") || ($1 !~ "^" w && $2 != "MAINT") { bad = 1 } END { exit bad }' \
	"$WORK/servers" || { cat "$WORK/servers" >&2; check_fail "server states at the end (live: $want)"; }

med=$(sort -n "$WORK/rollback.ms" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
echo "iac rollback wall time (ms): $(sort -n "$WORK/rollback.ms" | tr '\n' ' ')- median $med"
[ "$med" -le 1000 ] || fail_timing "iac rollback median $med ms (target <= 1000 ms)"
finish
