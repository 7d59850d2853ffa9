#!/bin/bash
# postgres_cluster on 3 test-bed hosts: Patroni on etcd bootstraps one leader
# and 2 streaming replicas (one slot each), settings applied, HAProxy splits
# reads from writes (a write on the rw port is visible through the ro port,
# the ro port refuses writes), a lagging replica leaves the ro pool and comes
# back; passwords never in output or state; the plan is quiet after apply;
# iac status db shows roles, lag, slots (a stopped replica's flagged
# INACTIVE) and connections; migrations are
# recorded with checksums, fail fast on lock_timeout and succeed on retry,
# and an edited applied one is refused; destroy stops everything.
. "$(dirname "$0")/lib.sh"
db_up

iac validate >"$WORK/v.out" 2>&1 || { cat "$WORK/v.out"; fail "validate"; }
t0=$(date +%s.%N)
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply"; }
echo "cluster up in $(echo "$(date +%s.%N) - $t0" | bc) s"
expect_in "$WORK/a1.out" "db.patroni_node.main_h1"
expect_in "$WORK/a1.out" "db.proxy.main"

# one leader, two replicas, each streaming from a slot
leader=$(leader_name) || fail "no member answers /primary"
n_rep=0
for n in 1 2 3; do
	code=$(ctl curl -s -m 1 -o /dev/null -w '%{http_code}' "http://$(addr $n):8008/replica")
	[ "$code" = 200 ] && n_rep=$((n_rep + 1))
done
[ "$n_rep" = 2 ] || fail "expected 2 replicas, found $n_rep"
for i in $(seq 50); do
	s=$(psql_at "$LB" 5432 "select count(*) from pg_stat_replication where state = 'streaming'")
	[ "$s" = 2 ] && break
	sleep 0.2
done
[ "$s" = 2 ] || fail "expected 2 streaming replicas on the leader, saw '$s'"
slots=$(psql_at "$LB" 5432 "select count(*) from pg_replication_slots where slot_type = 'physical' and active")
[ "$slots" = 2 ] || fail "expected 2 active physical slots, saw '$slots'"
[ "$(psql_at "$LB" 5432 "show max_connections")" = 200 ] || fail "max_connections not applied"
[ "$(psql_at "$LB" 5432 "show shared_buffers")" = 128MB ] || fail "shared_buffers not applied"

# read/write split: rw reaches the leader, ro a replica; writes replicate
[ "$(psql_at "$LB" 5432 "select pg_is_in_recovery()")" = f ] || fail "rw port does not reach the leader"
[ "$(psql_at "$LB" 5433 "select pg_is_in_recovery()")" = t ] || fail "ro port does not reach a replica"
psql_at "$LB" 5432 "create table t (id int primary key, v text); insert into t select g, 'x' from generate_series(1, 100) g" ||
	fail "write through rw"
for i in $(seq 50); do
	c1=$(psql_at "$LB" 5433 "select count(*) from t" 2>/dev/null)
	c2=$(psql_at "$LB" 5433 "select count(*) from t" 2>/dev/null)
	[ "$c1" = 100 ] && [ "$c2" = 100 ] && break
	sleep 0.1
done
[ "$c1" = 100 ] && [ "$c2" = 100 ] || fail "rows written on the leader not visible on the replicas ($c1, $c2)"
# both replicas serve the ro port (round robin)
hosts_seen=$(for i in 1 2 3 4; do psql_at "$LB" 5433 "select inet_server_addr()"; done | sort -u | wc -l)
[ "$hosts_seen" = 2 ] || fail "ro port served by $hosts_seen replica(s), expected 2"
if psql_at "$LB" 5433 "insert into t values (1000, 'ro')" >"$WORK/ro.out" 2>&1; then
	fail "a write through the ro port succeeded"
fi
expect_in "$WORK/ro.out" "read-only transaction"

# a replica whose WAL receiver is frozen (SIGSTOP) falls behind by more than
# max_lag: out of the ro pool (Patroni's /replica?lag= check), back once it
# catches up
lagger=""
for n in 1 2 3; do [ "h$n" != "$leader" ] && { lagger=$n; break; }; done
wr=$(psql_at "$(addr $lagger)" 5432 "select pid from pg_stat_wal_receiver")
[ -n "$wr" ] || fail "no WAL receiver on h$lagger"
on_host "$lagger" "kill -STOP $wr"
psql_at "$LB" 5432 "insert into t select g, repeat('y', 200) from generate_series(101, 20100) g"
out=0
for i in $(seq 60); do
	addrs=$(for j in 1 2 3 4; do psql_at "$LB" 5433 "select host(inet_server_addr())" 2>/dev/null; done | sort -u)
	echo "$addrs" | grep -qx "$(addr $lagger)" || { out=1; break; }
	sleep 0.25
done
[ "$out" = 1 ] || fail "a replica more than 1MB behind stayed in the ro pool"
on_host "$lagger" "kill -CONT $wr"
back=0
for i in $(seq 60); do
	addrs=$(for j in 1 2 3 4; do psql_at "$LB" 5433 "select host(inet_server_addr())" 2>/dev/null; done | sort -u)
	echo "$addrs" | grep -qx "$(addr $lagger)" && { back=1; break; }
	sleep 0.25
done
[ "$back" = 1 ] || fail "the replica did not come back to the ro pool after catching up"

# status: roles, lag per replica, slots, connections
iac status db main >"$WORK/st.out" 2>&1 || { cat "$WORK/st.out"; fail "iac status db"; }
cat "$WORK/st.out"
expect_in "$WORK/st.out" "cluster main: leader $leader"
expect_in "$WORK/st.out" "lag_bytes"
expect_in "$WORK/st.out" "retains"
expect_in "$WORK/st.out" "connections:"
[ "$(grep -c ' replica ' "$WORK/st.out")" = 2 ] || fail "status does not show 2 replicas"
iac db status -json >"$WORK/st.json" 2>&1 || { cat "$WORK/st.json"; fail "iac db status -json"; }
"$T_PY" - "$WORK/st.json" <<'PY' || fail "status JSON"
import json, sys
d = json.load(open(sys.argv[1]))["clusters"][0]
reps = [m for m in d["members"] if m["role"] == "replica"]
assert len(reps) == 2 and all("lag_bytes" in m and "lag_seconds" in m for m in reps), d
assert len(d["slots"]) == 2 and all("retained_bytes" in s for s in d["slots"]), d
assert d["max_connections"] == 200 and d["connections"] >= 0, d
PY

# a replica that stops streaming leaves its slot on the leader INACTIVE (it
# keeps WAL: it fills disks): Patroni on the replica paused (SIGSTOP, so it
# neither restarts PostgreSQL nor lets its member key go before the 10 s
# TTL), its postmaster killed
r=$(for m in h1 h2 h3; do [ "$m" != "$leader" ] && echo "$m"; done | head -1)
rn=${r#h}
tk=$(date +%s%N)
on_host "$rn" 'kill -STOP $(cat /run/postgresql/patroni-main.pid); kill -9 $(head -1 /var/lib/postgresql/iac/main/postmaster.pid)'
# writes meanwhile: the inactive slot holds their WAL (all within the TTL,
# after which Patroni drops the slot of a member that is gone)
psql_at "$LB" 5432 "create table slotfill as select g, repeat('x', 100) as pad from generate_series(1, 20000) g" >/dev/null ||
	fail "write while a replica is stopped"
inactive=""
for i in $(seq 30); do
	iac db status -json >"$WORK/si.json" 2>/dev/null
	inactive=$("$T_PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))["clusters"][0]; print(" ".join(s["name"] for s in d["slots"] if s["inactive"]))' "$WORK/si.json" 2>/dev/null)
	[ -n "$inactive" ] && break
	sleep 0.2
done
iac status db main >"$WORK/si.out" 2>&1
on_host "$rn" 'kill -CONT $(cat /run/postgresql/patroni-main.pid)'
[ "$inactive" = "$r" ] || { cat "$WORK/si.json"; fail "the slot of stopped replica '$r' is not flagged inactive (inactive: '$inactive')"; }
grep -q "^    $r  *INACTIVE .*it fills disks" "$WORK/si.out" || { cat "$WORK/si.out"; fail "status text does not flag the inactive slot"; }
kept=$("$T_PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))["clusters"][0]; print([s["retained_bytes"] for s in d["slots"] if s["name"] == sys.argv[2]][0])' "$WORK/si.json" "$r")
[ "${kept%.*}" -gt 1000000 ] || { cat "$WORK/si.json"; fail "the inactive slot retains only $kept bytes after 20,000 rows were written"; }
echo "ok: replica $r stopped -> its slot flagged $(( ($(date +%s%N) - tk) / 1000000 )) ms after the kill: $(grep INACTIVE "$WORK/si.out" | tr -s ' ')"
back() { [ "$("$T_PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))["clusters"][0]; print(sum(1 for s in d["slots"] if not s["inactive"]))' "$WORK/sb.json" 2>/dev/null)" = 2 ]; }
for i in $(seq 60); do iac db status -json >"$WORK/sb.json" 2>/dev/null; back && break; sleep 0.5; done
back || { cat "$WORK/sb.json"; fail "replica $r did not stream again after Patroni resumed"; }

# quiet plan; passwords nowhere in output or state
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1 || { cat "$WORK/p1.out"; fail "plan after apply is not quiet"; }
for f in "$WORK"/*.out "$WORK"/st.json; do
	grep -qF "$IAC_VAR_pg_superuser" "$f" && fail "superuser password in $(basename "$f")"
	grep -qF "$IAC_VAR_pg_replication" "$f" && fail "replication password in $(basename "$f")"
done
if grep -rqF -e "$IAC_VAR_pg_superuser" -e "$IAC_VAR_pg_replication" "$WORK/.iac"; then
	fail "a password is in .iac (state)"
fi
# ... but on the hosts, in a file only postgres may read
on_host 1 'stat -c "%a %U" /etc/patroni/main.yml' | grep -qx "600 postgres" || fail "patroni config not 0600 postgres"
on_host 1 'ps -o user= -p $(head -1 /var/lib/postgresql/iac/main/postmaster.pid)' | grep -qx postgres ||
	fail "postmaster does not run as postgres"

# a new setting reaches every member (config rewritten, Patroni reloaded,
# the cluster-wide parameters PATCHed to Patroni's /config)
sed -i 's/shared_buffers = "128MB" }/shared_buffers = "128MB", work_mem = "12MB" }/' "$WORK/main.lua"
iac plan >"$WORK/s1.out" 2>&1
expect_in "$WORK/s1.out" "0 to add, 3 to change, 0 to destroy"
iac apply -auto-approve >"$WORK/s2.out" 2>&1 || { cat "$WORK/s2.out"; fail "apply of a setting"; }
for i in $(seq 40); do
	w=$(for n in 1 2 3; do psql_at "$(addr $n)" 5432 "show work_mem"; done | sort -u)
	[ "$w" = 12MB ] && break
	sleep 0.25
done
[ "$w" = 12MB ] || fail "work_mem not 12MB on every member: $w"
iac plan -detailed-exitcode >"$WORK/s3.out" 2>&1 || { cat "$WORK/s3.out"; fail "plan after a setting change is not quiet"; }

# migrations: applied once on the leader with a checksum in schema_migrations
mkdir -p "$WORK/sql"
printf 'create table orders (id int primary key, customer_id int);\nalter table orders add column status text;\n' \
	>"$WORK/sql/0001_orders.sql"
printf 'alter table t add column note text;\n' >"$WORK/sql/0002_note.sql"
cp "$WORK/main.lua" "$WORK/main.lua.base"
echo 'migration "0001_orders" { db = db, expand = "sql/0001_orders.sql" }' >>"$WORK/main.lua"
iac apply -auto-approve >"$WORK/m1.out" 2>&1 || { cat "$WORK/m1.out"; fail "apply of a migration"; }
[ "$(psql_at "$LB" 5432 "select phase || ' ' || checksum from schema_migrations where name = '0001_orders'")" = \
	"expand $(sha256sum "$WORK/sql/0001_orders.sql" | cut -d' ' -f1)" ] || fail "no schema_migrations row with the file's checksum"
psql_at "$LB" 5432 "insert into orders values (1, 7, 'new')" || fail "the migrated table is not usable"
iac plan -detailed-exitcode >"$WORK/m2.out" 2>&1 || { cat "$WORK/m2.out"; fail "plan after a migration is not quiet"; }

# blocked by a long transaction: fails fast on lock_timeout without retries ...
echo 'migration "0002_note" { db = db, expand = "sql/0002_note.sql", lock_timeout = "300ms", retries = 0 }' >>"$WORK/main.lua"
long_tx() {
	PGPASSWORD=$IAC_VAR_pg_superuser bash "$TESTBED" exec "$BED" psql -X -q -h "$LB" -p 5432 -U postgres -d postgres \
		-c "begin; lock table t in access share mode; select pg_sleep($1); commit;" >/dev/null 2>&1 &
	sleep 0.5
}
long_tx 30
ltx=$!
iac apply -auto-approve >"$WORK/m3.out" 2>&1 && { cat "$WORK/m3.out"; fail "a migration blocked by a long transaction succeeded"; }
expect_in "$WORK/m3.out" "lock timeout"
# fast: it gave up while the blocker still held its lock (30 s)
kill -0 "$ltx" 2>/dev/null || fail "the blocked migration waited for the long transaction to end"
psql_at "$LB" 5432 "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(30)%' and pid <> pg_backend_pid()" >/dev/null
wait "$ltx" 2>/dev/null
[ -z "$(psql_at "$LB" 5432 "select name from schema_migrations where name = '0002_note'")" ] || fail "a failed migration was recorded"
# ... and succeeds when retried with backoff once the transaction ends
sed -i 's/retries = 0/retries = 6/' "$WORK/main.lua"
long_tx 2
ltx=$!
iac apply -auto-approve >"$WORK/m4.out" 2>&1 || { cat "$WORK/m4.out"; fail "a migration retried after lock timeouts failed"; }
wait "$ltx"
psql_at "$LB" 5432 "select note from t limit 1" >/dev/null || fail "migration 0002 not applied"
# an applied migration that was edited is refused
echo 'alter table orders add column extra int;' >>"$WORK/sql/0001_orders.sql"
iac plan >"$WORK/m5.out" 2>&1 && { cat "$WORK/m5.out"; fail "an edited applied migration was accepted"; }
expect_in "$WORK/m5.out" "an applied migration is never edited"
cp "$WORK/main.lua.base" "$WORK/main.lua"

# destroy stops Patroni, PostgreSQL and HAProxy, and removes the passwords
iac destroy -auto-approve >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy"; }
for n in 1 2 3; do
	on_host "$n" 'ps -eo comm= | grep -qE "^(patroni|postgres)$"' && fail "patroni or postgres still running on h$n after destroy"
	on_host "$n" 'test -e /etc/patroni/main.env' && fail "passwords left on h$n after destroy"
done
on_host 4 'ps -eo comm= | grep -qx haproxy' && fail "haproxy still running after destroy"

# a literal password is refused
sed -i 's/superuser_password = var.pg_superuser/superuser_password = "plain"/' "$WORK/main.lua"
iac validate >"$WORK/v2.out" 2>&1 && fail "a literal password was accepted"
expect_in "$WORK/v2.out" "must come from a sensitive variable"
echo ok
