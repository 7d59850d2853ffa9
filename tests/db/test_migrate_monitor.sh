#!/bin/bash
# Monitoring of a postgres_cluster: prometheus-postgres-exporter beside the
# member (exporter = true) answers Prometheus' scrape with pg_up 1 and the
# database's figures; pg_stat_statements enabled through settings
# (shared_preload_libraries) and created by a migration gives `iac status
# db` its top queries (before the migration, status says what is missing);
# slots and the WAL they retain are shown; the plan is quiet afterwards.
. "$(dirname "$0")/lib.sh"
command -v prometheus-postgres-exporter >/dev/null ||
	{ echo "skipped: prometheus-postgres-exporter is not installed (.ci/install)"; exit 77; }
DB_MEMBERS=1 DB_EXTRA='exporter = true, settings = { max_connections = 200, shared_buffers = "128MB", shared_preload_libraries = "pg_stat_statements" },' db_up

iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply"; }
expect_in "$WORK/a1.out" "db.exporter.main_h1_exporter"
for i in $(seq 50); do leader_name >/dev/null && break; sleep 0.2; done

# the exporter: Prometheus' scrape of the member's address
H1=$(addr 1)
for i in $(seq 50); do
	ctl curl -s -m 2 "http://$H1:9187/metrics" >"$WORK/metrics.out" 2>/dev/null && grep -q '^pg_up 1' "$WORK/metrics.out" && break
	sleep 0.2
done
grep -q '^pg_up 1' "$WORK/metrics.out" || { tail -20 "$WORK/metrics.out"; fail "the exporter does not report pg_up 1"; }
grep -q '^pg_stat_database_xact_commit{.*datname="postgres"' "$WORK/metrics.out" ||
	fail "the exporter reports no pg_stat_database figures for postgres"
on_host 1 'ps -o user= -p "$(cat /run/postgresql/postgres-exporter-main.pid)"' | grep -qx postgres ||
	fail "the exporter does not run as postgres"
ok "prometheus-postgres-exporter on h1:9187: pg_up 1, $(grep -c '^pg_' "$WORK/metrics.out") pg_ samples"

# loaded by settings, not created yet: status says what to do
[ "$(psql_at "$LB" 5432 "show shared_preload_libraries")" = pg_stat_statements ] ||
	fail "shared_preload_libraries is not pg_stat_statements"
iac status db main >"$WORK/st1.out" 2>&1 || { cat "$WORK/st1.out"; fail "iac status db"; }
expect_in "$WORK/st1.out" "top queries: pg_stat_statements is loaded but not created"

# created by a migration; the top queries show up
mkdir -p "$WORK/sql"
printf 'create extension if not exists pg_stat_statements;\ncreate table items (id int primary key, v text);\n' \
	>"$WORK/sql/0001_pgss.sql"
echo 'migration "0001_pgss" { db = db, expand = "sql/0001_pgss.sql" }' >>"$WORK/main.lua"
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply of the migration"; }
psql_at "$LB" 5432 "insert into items select g, md5(g::text) from generate_series(1, 20000) g" >/dev/null
for i in $(seq 20); do psql_at "$LB" 5432 "select count(*) from items where v like '%ab%'" >/dev/null; done
iac status db main >"$WORK/st2.out" 2>&1 || { cat "$WORK/st2.out"; fail "iac status db with pg_stat_statements"; }
cat "$WORK/st2.out"
expect_in "$WORK/st2.out" "top queries (pg_stat_statements, by total time):"
expect_in "$WORK/st2.out" "from items where v like"
iac status db main -json >"$WORK/st.json" 2>&1 || { cat "$WORK/st.json"; fail "iac status db -json"; }
"$T_PY" - "$WORK/st.json" <<'PY' || fail "status JSON: top_queries"
import json, sys
c = json.load(open(sys.argv[1]))["clusters"][0]
top = c["top_queries"]
assert isinstance(top, list) and 0 < len(top) <= 5, top
assert all({"calls", "total_ms", "mean_ms", "rows", "query"} <= set(q) for q in top), top
assert any("from items where v like" in q["query"] and q["calls"] >= 20 for q in top), top
PY
ok "iac status db shows the top queries from pg_stat_statements"

iac plan -detailed-exitcode >"$WORK/p.out" 2>&1 || { cat "$WORK/p.out"; fail "plan after apply is not quiet"; }

# the exporter is a daemon iac watches: killed, the plan starts it again
on_host 1 'kill "$(cat /run/postgresql/postgres-exporter-main.pid)"'
sleep 0.5
iac plan >"$WORK/p2.out" 2>&1
expect_in "$WORK/p2.out" "db.exporter.main_h1_exporter"
iac apply -auto-approve >"$WORK/a3.out" 2>&1 || { cat "$WORK/a3.out"; fail "apply after the exporter died"; }
for i in $(seq 50); do ctl curl -s -m 2 "http://$H1:9187/metrics" 2>/dev/null | grep -q '^pg_up 1' && break; sleep 0.2; done
ctl curl -s -m 2 "http://$H1:9187/metrics" | grep -q '^pg_up 1' || fail "the exporter did not come back"

iac destroy -auto-approve >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy"; }
on_host 1 'ps -eo comm= | grep -q postgres_export' && fail "the exporter still runs after destroy"
finish
