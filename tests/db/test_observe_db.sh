#!/bin/bash
# iac loadtest's observe.db: a Patroni cluster (2 members on etcd) watched
# through Patroni's REST API each second while a load test runs. The
# replica's WAL receiver is stopped (SIGSTOP) while the leader takes a few
# MB of writes: the report shows the lag per second and its peak with the
# replica's name, and the findings name the lagging replica. A wrong address
# is a warning, not a failure.
. "$(dirname "$0")/lib.sh"
db_up
sed -i 's/for i = 1, 3 do host/for i = 1, 2 do host/' "$WORK/main.lua"
iac apply -auto-approve >"$WORK/a0.out" 2>&1 || { cat "$WORK/a0.out"; fail "apply of the cluster"; }
for i in $(seq 150); do
	n=0
	for h in 1 2; do
		[ "$(ctl curl -s -m 1 -o /dev/null -w '%{http_code}' "http://$(addr $h):8008/replica")" = 200 ] && n=$((n + 1))
	done
	[ "$n" = 1 ] && leader=$(leader_name) && break
	sleep 0.2
done
[ -n "${leader:-}" ] && [ "$n" = 1 ] || fail "no leader with a streaming replica"
rep=2; [ "$leader" = h2 ] && rep=1
psql_at "$LB" 5432 "create table t (id int, v text)" || fail "table"

cat >"$WORK/lag.lua" <<LUA
target "http://$(addr ${leader#h}):8008"
scenario "health" { path = "/liveness" }
load { executor = "constant-arrival-rate", rate = 20, duration = "12s", max_vus = 20 }
observe { db = { "$(addr 1):8008", "$(addr 2):8008" } }
LUA
(
	sleep 2
	wr=$(psql_at "$(addr $rep)" 5432 "select pid from pg_stat_wal_receiver")
	on_host "$rep" "kill -STOP $wr"
	psql_at "$LB" 5432 "insert into t select g, repeat('y', 300) from generate_series(1, 30000) g" >/dev/null
	sleep 7
	on_host "$rep" "kill -CONT $wr"
) &
writer=$!
iac loadtest lag.lua -json lag.json >"$WORK/lag.out" 2>&1 || { cat "$WORK/lag.out"; fail "loadtest"; }
wait $writer
cat "$WORK/lag.out" | sed -n '/server side/,/load generator CPU/p'
"$T_PY" - "$WORK/lag.json" "h$rep" <<'PY' || { cat "$WORK/lag.out"; fail "observe.db figures or finding"; }
import json, sys
d = json.load(open(sys.argv[1]))
rep = sys.argv[2]
db = d["server"]["db"]
assert db["max_lag_bytes"] and db["max_lag_bytes"] > 1048576, db
assert db["lagging"] == rep, db
assert db["leader_changes"] == 0, db
lags = [p["db"]["lag_bytes"] for p in d["timeseries"] if "db" in p]
assert len(lags) >= 8, lags
assert lags[0] is not None and lags[0] < 1048576, lags      # before the stop
f = [x for x in d["findings"] if x["kind"] == "db"]
assert f and ("database replica '%s'" % rep) in f[0]["text"], d["findings"]
print("lag per second:", lags)
print("finding:", f[0]["text"])
PY
ok "observe.db: replica lag per second, its peak and the lagging replica, named in the findings"

cat >"$WORK/bad.lua" <<LUA
target "http://$(addr ${leader#h}):8008"
scenario "health" { path = "/liveness" }
load { vus = 1, duration = "1s" }
observe { db = { "127.0.0.1:1" } }
LUA
iac loadtest bad.lua >"$WORK/bad.out" 2>&1 || { cat "$WORK/bad.out"; fail "an unreachable Patroni must not fail the run"; }
expect_in "$WORK/bad.out" "warning: cannot observe the database through Patroni"
expect_in "$WORK/bad.out" "database (Patroni): not sampled"
ok "an unreachable Patroni is a warning; the run goes on"
