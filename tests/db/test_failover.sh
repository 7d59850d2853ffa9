#!/bin/bash
# Failover and switchover: the leader's Patroni and PostgreSQL killed -9 ->
# Patroni promotes a replica, the rw port follows, no committed row is lost;
# the plan then proposes only to start the dead member again (roles are
# observed, never "fixed back"); after apply the old leader rejoins as a
# replica and the plan is quiet. `iac db switchover main` hands the role to
# another member and rw follows; the plan stays quiet. With PgBouncer on
# every member (pooler): HAProxy sends clients to it, status shows pool use.
DB_POOLER=1
. "$(dirname "$0")/lib.sh"
db_up

iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply"; }
old=$(leader_name) || fail "no leader"
# clients reach PostgreSQL through the member's PgBouncer (a local connection)
[ "$(psql_at "$LB" 5432 "select count(*) from pg_stat_activity where pid = pg_backend_pid() and client_addr = '127.0.0.1'")" = 1 ] ||
	fail "rw does not go through PgBouncer"
[ "$(psql_at "$LB" 5433 "select pg_is_in_recovery()")" = t ] || fail "ro through PgBouncer does not reach a replica"
n=${old#h}
psql_at "$LB" 5432 "create table t (id int primary key); insert into t select generate_series(1, 1000)" || fail "write"
# a committed write is on a replica before the leader dies (asynchronous
# replication may lose what was not shipped; these rows were)
for i in $(seq 50); do
	[ "$(psql_at "$LB" 5433 "select count(*) from t" 2>/dev/null)" = 1000 ] && break
	sleep 0.1
done

# kill -9 Patroni and the postmaster on the leader's host
on_host "$n" 'kill -9 $(cat /run/postgresql/patroni-main.pid) $(head -1 /var/lib/postgresql/iac/main/postmaster.pid)'
t0=$(date +%s.%N)
ok=0
for i in $(seq 150); do
	if psql_at "$LB" 5432 "insert into t values (1000 + $i)" >/dev/null 2>&1; then ok=1; break; fi
	sleep 0.2
done
t1=$(date +%s.%N)
[ "$ok" = 1 ] || fail "no write through rw within 30 s of killing the leader"
echo "failover: writes through rw again $(echo "$t1 - $t0" | bc) s after kill -9 of the leader"
new=$(leader_name) || fail "no leader after failover"
[ "$new" != "$old" ] || fail "the killed member still leads"
[ "$(psql_at "$LB" 5432 "select count(*) from t where id <= 1000")" = 1000 ] || fail "committed rows lost in the failover"
[ "$(server_at "$LB" 5432)" = "$(addr ${new#h})" ] || fail "rw does not reach the new leader"

# the plan starts the dead member again, and nothing else: no role is "fixed back"
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1
[ $? = 2 ] || { cat "$WORK/p1.out"; fail "plan did not notice the dead member"; }
expect_in "$WORK/p1.out" "db.patroni_node.main_$old will be created"
expect_in "$WORK/p1.out" "(not running)"
expect_in "$WORK/p1.out" "1 to add, 0 to change, 0 to destroy"
# ... and says who leads now
expect_in "$WORK/p1.out" "member '$new' of cluster 'main' is leader now, was replica"
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply after failover"; }
[ "$(leader_name)" = "$new" ] || fail "the apply moved the leader back"
code=$(ctl curl -s -m 1 -o /dev/null -w '%{http_code}' "http://$(addr $n):8008/replica")
[ "$code" = 200 ] || fail "the old leader did not rejoin as a replica ($code)"
iac plan -detailed-exitcode >"$WORK/p2.out" 2>&1 || { cat "$WORK/p2.out"; fail "plan not quiet after the rejoin"; }
iac status db main >"$WORK/st.out" 2>&1 || { cat "$WORK/st.out"; fail "status"; }
expect_in "$WORK/st.out" "cluster main: leader $new"
cat "$WORK/st.out"
expect_in "$WORK/st.out" "pooler $new: clients"
expect_in "$WORK/st.out" "(pool_size 20, transaction)"
expect_not_in "$WORK/st.out" "pooler $new: clients 1 active"   # the admin console's own pool is not counted
# 30 clients at once on a pool of 20: at most 20 server connections, the rest wait
pids=()
for i in $(seq 30); do
	PGPASSWORD=$IAC_VAR_pg_superuser bash "$TESTBED" exec "$BED" psql -X -q -h "$LB" -p 5432 -U postgres -d postgres \
		-c "select pg_sleep(12)" >/dev/null 2>&1 &
	pids+=($!)
done
waited=0
for try in $(seq 10); do
	sleep 0.5
	iac status db main -json >"$WORK/pool.json" 2>&1 || continue
	"$T_PY" - "$WORK/pool.json" "$new" <<'PY'
import json, sys
p = [x for x in json.load(open(sys.argv[1]))["clusters"][0]["poolers"] if x["member"] == sys.argv[2]][0]
if p["servers_active"] > 20:
    print("more server connections than the pool: %r" % p)
    sys.exit(2)
sys.exit(0 if p["clients_waiting"] > 0 and p["servers_active"] == 20 else 1)
PY
	case $? in
	0) waited=1; break ;;
	2) fail "PgBouncer opened more server connections than pool_size" ;;
	esac
done
for p in "${pids[@]}"; do wait "$p"; done
[ "$waited" = 1 ] || { cat "$WORK/pool.json"; fail "30 clients on a pool of 20: no client waited, or not 20 server connections"; }

# planned switchover to a named member; rw follows
target=""
for m in h1 h2 h3; do [ "$m" != "$new" ] && { target=$m; break; }; done
iac db switchover main -to "$target" >"$WORK/sw.out" 2>&1 || { cat "$WORK/sw.out"; fail "switchover"; }
cat "$WORK/sw.out"
expect_in "$WORK/sw.out" "switched over from $new to $target"
[ "$(leader_name)" = "$target" ] || fail "Patroni says $(leader_name) leads, not $target"
for i in $(seq 30); do
	[ "$(server_at "$LB" 5432 2>/dev/null)" = "$(addr ${target#h})" ] && break
	sleep 0.2
done
[ "$(server_at "$LB" 5432)" = "$(addr ${target#h})" ] || fail "rw did not follow the switchover"
psql_at "$LB" 5432 "insert into t values (5000)" || fail "write after switchover"
# the old leader is "demoted" for a moment, then a running replica: wait for
# Patroni to settle before asking iac what it sees (/replica answers 200 then)
for i in $(seq 100); do
	ctl curl -s -m 1 -o /dev/null -w '%{http_code}' "http://$(addr ${new#h}):8008/replica" 2>/dev/null | grep -q 200 && break
	sleep 0.2
done
iac plan -detailed-exitcode >"$WORK/p3.out" 2>&1 || { cat "$WORK/p3.out"; fail "plan not quiet after the switchover"; }
expect_in "$WORK/p3.out" "member '$target' of cluster 'main' is leader now, was replica"
expect_in "$WORK/p3.out" "member '$new' of cluster 'main' is replica now, was leader"
# the pooler's auth_file and the status that reads PgBouncer leak no password
for f in "$WORK"/*.out "$WORK"/pool.json; do
	grep -qF -e "$IAC_VAR_pg_superuser" -e "$IAC_VAR_pg_replication" "$f" && fail "a password is in $(basename "$f")"
done
grep -rqF -e "$IAC_VAR_pg_superuser" -e "$IAC_VAR_pg_replication" "$WORK/.iac" && fail "a password is in .iac (state)"
on_host 1 'stat -c "%a %U" /etc/patroni/main.pgbouncer.users' | grep -qx "600 postgres" || fail "pgbouncer auth_file not 0600 postgres"
iac db switchover main -to nosuch >"$WORK/sw2.out" 2>&1 && fail "switchover to an unknown member succeeded"
iac db switchover nosuch >"$WORK/sw3.out" 2>&1 && fail "switchover of an unknown cluster succeeded"
expect_in "$WORK/sw3.out" "no cluster named 'nosuch'"
echo ok
