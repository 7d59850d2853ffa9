#!/bin/bash
# Load balancing options and `iac status pool` on the test bed:
#  - balance, slowstart and per-host weights reach HAProxy's config;
#  - weights = "cpus" weighs each server by its host's CPU count (ssh.facts);
#  - `iac status pool web` (and `iac pool status web -json`) under wrk load:
#    every server with its host, state, weight, sessions, req/s and
#    response time, each app host's CPU, and the verdict "even";
#  - the same pool with balance = "first" (everything to the first server):
#    the verdict is "uneven" and names the idle servers.
. "$(dirname "$0")/lib.sh"
LB_EXTRA='balance = "leastconn", slowstart = "5s", weights = { app1 = 2 },'
setup
CFG=/var/lib/iac/haproxy-lb/haproxy.cfg
on_host 1 "cat $CFG" >"$WORK/cfg"
grep -q "balance leastconn" "$WORK/cfg" && grep -q "slowstart 5000ms" "$WORK/cfg" &&
	grep -Eq "server blue1 [0-9.]+:8001 weight 2" "$WORK/cfg" && grep -Eq "server blue2 [0-9.]+:8001  #" "$WORK/cfg" &&
	ok "balance leastconn, slowstart 5s and app1's weight 2 in HAProxy's config" ||
	{ cat "$WORK/cfg" >&2; check_fail "balance/slowstart/weights not in the config"; }

load_start 60
iac status pool web >"$WORK/st.out" 2>&1 || { cat "$WORK/st.out" >&2; fail "iac status pool web"; }
cat "$WORK/st.out"
for s in blue1 blue2 blue3 blue4 green1; do
	grep -Eq "^ +$s +app[1-4] " "$WORK/st.out" || check_fail "status lacks server $s with its host"
done
grep -q "^    even: live servers within" "$WORK/st.out" && ok "an evenly balanced pool is called even" ||
	check_fail "expected the verdict 'even' under leastconn with weights"
grep -Eq "cpu: app1 [0-9]+% app2 [0-9]+%" "$WORK/st.out" || check_fail "no CPU per app host"
iac pool status web -json >"$WORK/st.json" 2>"$WORK/st.err" || { cat "$WORK/st.err" >&2; fail "iac pool status -json"; }
python_json "$WORK/st.json" "
d0 = d['deployments'][0]
s = {x['server']: x for x in d0['lbs'][0]['servers']}
assert d0['deployment'] == 'web' and d0['live'] == 'blue', d0
assert s['blue1']['weight'] == 2 and s['blue2']['weight'] == 1, s
live = [s[n]['rate'] for n in ('blue1', 'blue2', 'blue3', 'blue4')]
assert min(live) > 5, live
# leastconn with weight 2: blue1 takes about twice the requests of the others
r = s['blue1']['rate'] / (sum(live[1:]) / 3)
assert 1.3 < r < 3.0, r
assert d0['lbs'][0]['finding']['verdict'] == 'even', d0['lbs'][0]['finding']
print('json: req/s', [round(x) for x in live], 'blue1/others %.2f' % r, 'cpu', d0['cpu'])
" && ok "JSON: rates follow the weights (app1 weighs 2)" || check_fail "pool status JSON"
load_stop

# everything to the first server: uneven
LB_EXTRA='balance = "first",'
write_main
iac apply -auto-approve >"$WORK/first.out" 2>&1 || { cat "$WORK/first.out" >&2; fail "apply with balance first"; }
load_start 30
iac status pool >"$WORK/st2.out" 2>&1 || { cat "$WORK/st2.out" >&2; fail "iac status pool (balance first)"; }
cat "$WORK/st2.out"
grep -Eq "^    uneven: blue[2-4] takes no requests while blue1 takes" "$WORK/st2.out" &&
	ok "balance first: uneven, the idle servers named" || check_fail "expected 'uneven' with balance first"
load_stop
# weights = "cpus": each server weighs its host's CPU count
LB_EXTRA='weights = "cpus",'
write_main
iac apply -auto-approve >"$WORK/cpus.out" 2>&1 || { cat "$WORK/cpus.out" >&2; fail "apply with weights = cpus"; }
NCPU=$(on_host 3 nproc)
on_host 1 "cat $CFG" >"$WORK/cfg3"
[ "$(grep -Ec "server (blue|green)[1-4] [0-9.:]+ weight $NCPU( |$)" "$WORK/cfg3")" = 8 ] &&
	ok "weights = \"cpus\": every server weighs $NCPU (its host's CPUs, from ssh.facts)" ||
	{ cat "$WORK/cfg3" >&2; check_fail "weights = cpus did not give weight $NCPU"; }
iac status pool nope >"$WORK/st3.out" 2>&1 && check_fail "status of an unknown pool exited 0"
grep -q "no deployment or pool named 'nope' in the state" "$WORK/st3.out" || { cat "$WORK/st3.out" >&2; check_fail "unknown pool message"; }
finish
