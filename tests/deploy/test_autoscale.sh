#!/bin/bash
# The autoscaler on the test bed (h1 HAProxy, h2..h5 app hosts), real
# HAProxy and nginx, load from wrk (a fixed number of keep-alive
# connections: HAProxy's current sessions per server follow it):
#  - app_pool { autoscale = { min = 2, max = 4, target = 10, ... } }: HAProxy's
#    config lists blue1-2/green1-2 only; app3/app4 are standby hosts;
#  - no load: `iac autoscale -once` keeps 2 (min), one line with its inputs;
#  - 80 connections: `iac autoscale` starts blue3 and blue4 at the live
#    version, health-gates them and adds them to HAProxy at runtime (no
#    reload: same worker pid), at most 2 per period; they take traffic;
#    `iac plan` stays quiet; after a HAProxy reload (which drops runtime
#    servers) the next step adds them again;
#  - 30 connections (steady) for 45 s: at most 2 changes, never a
#    scale-up after a scale-down (no flapping); 0 failed requests while a
#    spare drains;
#  - load gone: down to 2 (min), 0 failed requests, blue3 stopped and gone
#    from HAProxy; `iac status autoscale` shows the decisions; the history
#    has the scale events;
#  - a deploy of v2 while spares serve: the next step replaces them by
#    spares at v2 (the live colour's version);
#  - a spare killed behind iac's back (HAProxy sees it DOWN): the next step
#    takes it out and starts a replacement.
. "$(dirname "$0")/lib.sh"

AUTOSCALE='autoscale = { min = 2, max = 4, metric = "haproxy_scur_per_server", target = 10, tolerance = 0.1,
    scale_up = { max_step = 2, period = "3s" }, scale_down = { stabilization = "10s", max_step = 1, period = "3s" } },'
bed_up
write_main
# the shared main.lua, with the pool autoscaled
python3 - "$WORK/main.lua" "$AUTOSCALE" <<'EOF'
import sys
p, extra = sys.argv[1], sys.argv[2]
s = open(p).read()
s = s.replace('local pool = app_pool "web" {\n', 'local pool = app_pool "web" {\n  ' + extra + '\n', 1)
open(p, 'w').write(s)
EOF
grep -q 'autoscale = { min = 2' "$WORK/main.lua" || fail "could not add autoscale to main.lua"
iac apply -auto-approve >"$WORK/apply-v1.out" 2>&1 || { cat "$WORK/apply-v1.out" >&2; fail "first apply (v1)"; }
CFG=/var/lib/iac/haproxy-lb/haproxy.cfg
on_host 1 "cat $CFG" >"$WORK/cfg"
grep -Eq "server blue2 " "$WORK/cfg" && ! grep -Eq "server (blue|green)3 " "$WORK/cfg" &&
	ok "HAProxy's config lists the min instances only (blue1-2, green1-2)" ||
	{ cat "$WORK/cfg" >&2; check_fail "config should list blue1-2/green1-2 only"; }
inst_alive blue3 && check_fail "spare blue3 runs before any scaling"

# a bad autoscale table is refused at validate, with the setting named
sed 's/target = 10,/target = 0,/' "$WORK/main.lua" >"$WORK/bad.lua"
mkdir -p "$WORK/bad" && cp "$WORK/bad.lua" "$WORK/bad/main.lua"
ctl bash -c "cd '$WORK/bad' && '$IAC' -no-color validate" >"$WORK/bad.out" 2>&1 &&
	check_fail "validate accepted autoscale.target = 0"
grep -q "autoscale.target" "$WORK/bad.out" && ok "validate refuses autoscale.target = 0 and names it" ||
	{ cat "$WORK/bad.out" >&2; check_fail "no autoscale.target error"; }

wrk_start() {   # CONNECTIONS SECONDS OUT
	bash "$TESTBED" exec "$BED" wrk -t2 -c"$1" -d"$2"s -s "$WORK/count.lua" "http://$LB/" >"$3" 2>&1 &
	WRK_PID=$!
	BG_PIDS+=("$WRK_PID")
	sleep 0.5
}
wrk_stop() {   # OUT WHAT: stop, then 0 socket errors and every answer a 200
	kill -INT "$WRK_PID" 2>/dev/null
	wait "$WRK_PID" 2>/dev/null
	WRK_OUT=$1 load_expect_clean "$2"
}
serving() { server_states | awk '$2 ~ /^UP/ && $1 ~ /^blue/' | wc -l; }
wait_serving() {   # N SECONDS
	local t0=$SECONDS
	while [ "$(serving)" != "$1" ]; do
		[ $((SECONDS - t0)) -ge "$2" ] && return 1
		sleep 0.2
	done
	WAITED=$((SECONDS - t0))
}

# ---- one step, no load -------------------------------------------------------
iac autoscale -once >"$WORK/once.out" 2>&1 || { cat "$WORK/once.out" >&2; check_fail "iac autoscale -once"; }
cat "$WORK/once.out"
grep -Eq "deploy.blue_green.web: haproxy_scur_per_server [0-9.]+ \(target 10\), current 2, desired 2: .*raised to min 2" \
	"$WORK/once.out" && ok "no load: one step keeps min 2, inputs on one line" || check_fail "unexpected -once line"
iac autoscale -once -json >"$WORK/once.json" 2>&1 || check_fail "iac autoscale -once -json"
python_json "$WORK/once.json" "assert d['current'] == 2 and d['desired'] == 2 and d['target'] == 10 and 'reason' in d, d" &&
	ok "-json: the decision as one JSON object" || { cat "$WORK/once.json" >&2; check_fail "-json decision"; }
PID0=$(lb_cmd "show info" | awk -F': ' '$1 == "Pid" {print $2}')

# ---- scale-up under load --------------------------------------------------------
iac_bg "$WORK/ctl.out" autoscale
CTL_PID=$BG_PID
wrk_start 80 300 "$WORK/wrk-up.out"
T_LOAD=$SECONDS
if wait_serving 4 60; then
	ok "80 connections: 4 blue servers serving $((SECONDS - T_LOAD)) s after the load started"
else
	cat "$WORK/ctl.out" >&2
	server_states >&2
	check_fail "the pool did not grow to 4 within 60 s"
fi
server_states
on_host 4 "kill -0 \$(cat /srv/web/blue3/nginx.pid)" &&
	ok "blue3 runs on app3 (a standby host)" || check_fail "blue3 does not run on app3"
sleep 2
STOT=$(lb_cmd "show stat" | awk -F, '$1 == "app" && ($2 == "blue3" || $2 == "blue4") { n += $8 } END { print n + 0 }')
[ "$STOT" -gt 0 ] && ok "blue3/blue4 took $STOT sessions" || check_fail "blue3/blue4 took no traffic"
PID1=$(lb_cmd "show info" | awk -F': ' '$1 == "Pid" {print $2}')
[ -n "$PID0" ] && [ "$PID0" = "$PID1" ] && ok "added at runtime: HAProxy's worker is still pid $PID1 (no reload)" ||
	check_fail "HAProxy's worker changed ($PID0 -> $PID1): reloaded?"
STEPS=$(grep -o 'scaled up [0-9]* -> [0-9]*' "$WORK/ctl.out" | awk '{ print $3 "->" $5; if ($5 - $3 > 2) bad = 1 } END { exit bad }' | paste -sd' ')
[ $? = 0 ] && [ -n "$STEPS" ] && ok "scale-up steps $STEPS (at most +2 per period)" ||
	{ cat "$WORK/ctl.out" >&2; check_fail "scale-up steps: '$STEPS'"; }
iac plan -detailed-exitcode -lock-timeout=20s >"$WORK/plan.out" 2>&1
rc=$?
[ $rc = 0 ] && ok "iac plan after the scale-up: no changes" || { cat "$WORK/plan.out" >&2; check_fail "plan exit $rc after scaling"; }
wrk_stop "$WORK/wrk-up.out" "scale-up"

# a HAProxy reload (an apply that changes its config) drops servers added at
# runtime; the next step puts them back
ctl bash -c 'exec 3<>/dev/tcp/'"$LB"'/9998 && printf "reload\n" >&3 && cat <&3' >"$WORK/reload.out" 2>&1
for _ in $(seq 1 50); do
	PID2=$(lb_cmd "show info" | awk -F': ' '$1 == "Pid" {print $2}')
	[ -n "$PID2" ] && [ "$PID2" != "$PID1" ] && break
	sleep 0.1
done
[ -n "$PID2" ] && [ "$PID2" != "$PID1" ] || check_fail "HAProxy did not reload (worker pid $PID1 -> ${PID2:-?})"
T_RELOAD=$SECONDS
# both spares put back (the load has stopped, so a later step may already
# drain one of them again: what they serve afterwards is not the question)
put_back() { [ "$(grep -o "put blue[34] back in 1 HAProxy (a reload had dropped it)" "$WORK/ctl.out" | sort -u | wc -l)" = 2 ]; }
for _ in $(seq 1 100); do put_back && break; sleep 0.1; done
if put_back; then
	ok "a HAProxy reload (worker $PID1 -> $PID2) dropped the runtime servers; the next step put them back ($((SECONDS - T_RELOAD)) s)"
else
	cat "$WORK/reload.out" >&2
	tail -3 "$WORK/ctl.out" >&2
	server_states >&2
	check_fail "spares not put back in HAProxy 10 s after a reload"
fi

# ---- steady load: the pool converges without flapping, scale-in with no failure --------
# Under a constant load the size may step down towards where the metric
# sits (one step per period, after the window), never back up: a scale-up
# after a scale-down, or more than 2 changes in 45 s, is flapping.
wrk_start 30 300 "$WORK/wrk-steady.out"
sleep 2
L0=$(wc -l <"$WORK/ctl.out")
sleep 45
tail -n +"$((L0 + 1))" "$WORK/ctl.out" | grep -o 'scaled [a-z]* [0-9]* -> [0-9]*' >"$WORK/steady.changes"
DIRS=$(awk '{ print $2 }' "$WORK/steady.changes" | uniq | paste -sd' ')
NCH=$(wc -l <"$WORK/steady.changes")
if [ "$NCH" -le 2 ] && ! grep -q "down.*up\|up.*down" <<<"$DIRS"; then
	ok "45 s of steady load: $NCH change(s) (${DIRS:-none}), no reversal, at $(serving) (no flapping)"
else
	tail -15 "$WORK/ctl.out" >&2
	check_fail "the pool flapped under a steady load: $(paste -sd, "$WORK/steady.changes")"
fi
wrk_stop "$WORK/wrk-steady.out" "steady load, scale-in included"

# ---- load gone: from 4 back to min, no failure while the spares drain ------------
wrk_start 80 300 "$WORK/wrk-up2.out"
wait_serving 4 60 || check_fail "did not grow to 4 again"
wrk_stop "$WORK/wrk-up2.out" "scale-up again"
wrk_start 4 300 "$WORK/wrk-down.out"
if wait_serving 2 60; then
	ok "light load: back to 2 ($WAITED s)"
else
	cat "$WORK/ctl.out" >&2
	check_fail "did not go back to 2 within 60 s"
fi
sleep 1
wrk_stop "$WORK/wrk-down.out" "scale-in 4 -> 2 under light load"
server_states | grep -q "^blue3 " && check_fail "blue3 is still in HAProxy after the scale-in"
inst_alive blue3 && check_fail "blue3 still runs after the scale-in"
t_stop_pid "$CTL_PID" INT
wait "$CTL_PID" 2>/dev/null
echo "--- controller ---"
cat "$WORK/ctl.out"

iac status autoscale >"$WORK/status.out" 2>&1 || check_fail "iac status autoscale"
cat "$WORK/status.out"
grep -Eq "deploy.blue_green.web: serving 2, desired 2; haproxy_scur_per_server [0-9.]+ \(target 10\)" "$WORK/status.out" &&
	grep -q "scaled down 3 -> 2" "$WORK/status.out" && ok "iac status autoscale: count, metric, last decisions" ||
	check_fail "status autoscale"
iac status autoscale -json >"$WORK/status.json" 2>&1
python_json "$WORK/status.json" "
r = d['autoscale']['deploy.blue_green.web']
assert r['spares'] == [] and len(r['decisions']) >= 3, r
assert any(x.get('action', '').startswith('scaled down') for x in r['decisions']), r['decisions']" &&
	ok "status -json: spares and decisions" || { cat "$WORK/status.json" >&2; check_fail "status -json"; }
iac plan -detailed-exitcode >"$WORK/plan2.out" 2>&1 || { cat "$WORK/plan2.out" >&2; check_fail "plan after the scale-in is not quiet"; }

# ---- a deploy while spares serve: they move to the live colour's version --------
wrk_start 80 300 "$WORK/wrk-dep.out"
iac_bg "$WORK/ctl2.out" autoscale
CTL_PID=$BG_PID
wait_serving 4 60 || check_fail "did not grow to 4 again"
t_stop_pid "$CTL_PID" INT
wait "$CTL_PID" 2>/dev/null
iac apply -auto-approve -var version=v2 >"$WORK/apply-v2.out" 2>&1 || { cat "$WORK/apply-v2.out" >&2; fail "apply v2"; }
iac autoscale -once >"$WORK/once2.out" 2>&1
cat "$WORK/once2.out"
grep -q "replaced 2 spare(s) of the previous release by 2 at v2 (green)" "$WORK/once2.out" &&
	ok "after a deploy, the spares run the live colour's version (green3/green4 at v2)" ||
	check_fail "spares not replaced after the deploy"
server_states | grep -Eq "^green3 UP" && ! server_states | grep -q "^blue3 " || { server_states >&2; check_fail "green3 not up / blue3 still there"; }
wrk_stop "$WORK/wrk-dep.out" "a deploy with spares serving"

# ---- a spare killed behind iac's back: replaced ----------------------------------
# nginx's workers outlive a killed master: the master and its workers go
# (and any other nginx of green3's directory: a pid file a restart is
# still writing must not leave the real one serving), then whatever still
# listens on green3's port (8101): workers whose master died before serve on
on_host "$(inst_host green3)" "for m in \$(cat /srv/web/green3/nginx.pid) \$(pgrep -f '[n]ginx -c /srv/web/green3/'); do
	pkill -9 -P \$m; kill -9 \$m; done 2>/dev/null
	for p in \$(ss -Hltnp 'sport = :8101' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do kill -9 \$p; done; true" ||
	check_fail "cannot kill green3"
inst_alive green3 && check_fail "green3 still runs after kill -9"
for i in $(seq 60); do server_states | grep -Eq "^green3 DOWN" && break; sleep 0.5; done
server_states | grep -Eq "^green3 DOWN" || { server_states >&2; check_fail "HAProxy does not see green3 DOWN"; }
sleep 6   # DOWN for a while: a check that failed once is not a death
iac autoscale -once >"$WORK/once3.out" 2>&1
cat "$WORK/once3.out"
grep -q "green3 is DOWN in HAProxy" "$WORK/once3.out" && grep -q "replaced 1 dead spare(s) by 1" "$WORK/once3.out" &&
	ok "a spare killed behind iac's back is replaced" || check_fail "the dead spare was not replaced"
# no load now: whether the same step also scaled down (4 -> 3) depends on
# whether the last high recommendation has left the 10 s window, so the
# count to expect is what the step says it serves; none DOWN
N_UP=$(sed -nE 's/.*, desired ([0-9]+):.*/\1/p' "$WORK/once3.out" | head -1)
upn() { [ "$(server_states | grep -Ec '^green[0-9]+ UP')" = "${N_UP:-?}" ] && ! server_states | grep -Eq '^green[0-9]+ DOWN'; }
for i in $(seq 40); do upn && break; sleep 0.5; done
upn && ok "after the replacement ${N_UP} green servers are UP, as the step decided, none DOWN" ||
	{ server_states >&2; check_fail "spares not back after the replacement (the step said ${N_UP:-?})"; }
finish
