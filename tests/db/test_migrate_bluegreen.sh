#!/bin/bash
# An expand/contract migration during a blue/green deploy under load.
#
# A one-member Patroni cluster (h1, HAProxy on h4), an app pool on h3 behind
# HAProxy on h2: a small Python app whose every request (/health too) reads
# orders through the database's rw port; v1 reads column note, v2 and v3
# read status. wrk loads the app through HAProxy the whole time.
#  - iac db migrate -dry-run prints the statements, their locks and
#    transactions, and runs nothing (schema_migrations and the table as they
#    were);
#  - apply with v2: the expand (add status, backfill, CREATE INDEX
#    CONCURRENTLY outside a transaction, a NOT VALID check then VALIDATE in
#    its own transaction) runs before the idle colour starts; the contract
#    (drop note) does not run: plan and apply say it waits;
#  - iac rollback to v1 within the window works on the expanded schema, and
#    the contract waits for a deploy after the expand to be live again;
#  - v3 deployed: the contract waits for its rollback window (time left
#    shown), then runs once it has passed;
#  - 0 failed requests for the whole run;
#  - a unique CREATE INDEX CONCURRENTLY that fails (duplicates) leaves an
#    INVALID index; the next apply drops it and builds it again.
. "$(dirname "$0")/lib.sh"
t_need wrk
DB_MEMBERS=1 DB_BED_HOSTS=4 DB_TTL=10 db_up
WINDOW=${MIGRATE_WINDOW:-25}

iac apply -auto-approve >"$WORK/a0.out" 2>&1 || { cat "$WORK/a0.out"; fail "apply of the cluster"; }
for i in $(seq 50); do leader_name >/dev/null && break; sleep 0.2; done
psql_at "$LB" 5432 "create table orders (id int primary key, note text, dup int);
insert into orders select g, 'n' || g, g % 10 from generate_series(1, 1000) g;
create role app login password 'app-test-only'; grant select on orders to app" >/dev/null || fail "seed the orders table"

WEB=$(addr 2)
mkdir -p "$WORK/sql"
cat >"$WORK/app.py" <<'PY'
# a web app reading orders: v1 the column note, later versions status
import http.server, os, sys, threading
import psycopg2
addr, port, version, pidfile, dsn = sys.argv[1:6]
col = "note" if version == "v1" else "status"
local = threading.local()

def query():
    c = getattr(local, "c", None)
    if c is None:
        c = psycopg2.connect(dsn, connect_timeout=3)
        c.autocommit = True
        local.c = c
    try:
        cur = c.cursor()
        cur.execute("select %s from orders where id = 1" % col)
        return cur.fetchone()[0]
    except Exception:
        local.c = None
        c.close()
        raise

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        try:
            code, body = 200, ("%s %s\n" % (version, query())).encode()
        except Exception as e:
            code, body = 500, ("error: %s\n" % e).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

class S(http.server.ThreadingHTTPServer):
    daemon_threads = True

s = S((addr, int(port)), H)
with open(pidfile + ".tmp", "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(pidfile + ".tmp", pidfile)
s.serve_forever()
PY
on_host 3 "mkdir -p /srv/app && cat > /srv/app/app.py" <"$WORK/app.py"
on_host 3 "test -s /srv/app/app.py" || fail "app.py not on h3"

cp "$WORK/main.lua" "$WORK/main.lua.db"
cat >>"$WORK/main.lua" <<EOF
variable "version" { default = "v1" }
local web_lb = host "h2" { address = "$WEB" }
host "h3" { address = "$(addr 3)", labels = { role = "app" } }
local pool = app_pool "web" {
  hosts = hosts { role = "app" }, colours = "ports", base_port = 8001, green_offset = 100,
  start = "cd / && setsid -f python3 /srv/app/app.py {address} {port} {version} /srv/app/{name}.pid 'host=$LB port=5432 user=app password=app-test-only dbname=postgres' </dev/null >/srv/app/{name}.log 2>&1",
  pidfile = "/srv/app/{name}.pid",
}
local lb = haproxy "lb" {
  host = web_lb, bind = "0.0.0.0:80", pool = pool,
  health = { path = "/health", interval = "100ms", rise = 1, fall = 2 },
}
local web = deployment "web" {
  version = var.version, pool = pool, lb = lb,
  health = { path = "/health", expect = 200, interval = "200ms", healthy = 2, timeout = "20s" },
  scale_down_delay = "${WINDOW}s", drain_timeout = "10s",
}
EOF
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply of the app at v1"; }
ctl curl -s -m 3 "http://$WEB/" | grep -q "^v1 n1" || fail "the app at v1 does not answer through HAProxy"

bash "$TESTBED" exec "$BED" wrk -t1 -c4 -d600s "http://$WEB/" >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!
sleep 1
kill -0 "$WRK_PID" 2>/dev/null || { cat "$WORK/wrk.out"; fail "wrk did not start"; }
stop_wrk() { [ -n "${WRK_PID:-}" ] && kill -INT "$WRK_PID" 2>/dev/null; wait "$WRK_PID" 2>/dev/null; WRK_PID=; }
trap 'rc=$?; stop_wrk; (exit $rc); db_cleanup' EXIT

cat >"$WORK/sql/0007_expand.sql" <<'SQL'
-- v2 reads status; v1 still reads note
alter table orders add column status text;
update orders set status = 'new' where status is null;
create index concurrently orders_status_idx on orders (status);
alter table orders add constraint orders_status_set check (status is not null) not valid;
alter table orders validate constraint orders_status_set;
SQL
printf 'alter table orders drop column note;\n' >"$WORK/sql/0007_contract.sql"
cat >>"$WORK/main.lua" <<'EOF'
migration "0007_add_order_status" {
  db = db, expand = "sql/0007_expand.sql", contract = "sql/0007_contract.sql", deployment = web,
}
EOF

# ---- dry run: statements, locks, transactions; nothing executed
iac db migrate -dry-run >"$WORK/dry.out" 2>&1 || { cat "$WORK/dry.out"; fail "iac db migrate -dry-run"; }
cat "$WORK/dry.out"
expect_in "$WORK/dry.out" "migration 0007_add_order_status (expand, cluster main): expand file sql/0007_expand.sql, pending"
expect_in "$WORK/dry.out" "lock: ACCESS EXCLUSIVE on orders; in transaction 1"
expect_in "$WORK/dry.out" "lock: ROW EXCLUSIVE on orders; in transaction 1"
expect_in "$WORK/dry.out" "create index concurrently orders_status_idx on orders (status)"
expect_in "$WORK/dry.out" "lock: SHARE UPDATE EXCLUSIVE on orders; outside a transaction"
expect_in "$WORK/dry.out" "lock: SHARE UPDATE EXCLUSIVE on orders; in its own transaction"
expect_in "$WORK/dry.out" "migration 0007_add_order_status (contract, cluster main)"
expect_in "$WORK/dry.out" "runs only once 'deploy.blue_green.web' has deployed after the expand"
expect_in "$WORK/dry.out" "dry run: nothing was executed"
iac db migrate -dry-run -json >"$WORK/dry.json" 2>&1 || { cat "$WORK/dry.json"; fail "iac db migrate -dry-run -json"; }
"$T_PY" - "$WORK/dry.json" <<'PY' || fail "dry-run JSON"
import json, sys
d = json.load(open(sys.argv[1]))
ex = [m for m in d["migrations"] if m["phase"] == "expand"][0]
assert ex["state"] == "pending", ex
kinds = [(s["lock"], s["transaction"]) for s in ex["statements"]]
assert kinds == [("ACCESS EXCLUSIVE", "group 1"), ("ROW EXCLUSIVE", "group 1"), ("SHARE UPDATE EXCLUSIVE", "none"),
                 ("ACCESS EXCLUSIVE", "group 3"), ("SHARE UPDATE EXCLUSIVE", "own")], kinds
PY
[ "$(psql_at "$LB" 5432 "select to_regclass('schema_migrations') is null")" = t ] ||
	fail "the dry run created or wrote schema_migrations"
[ "$(psql_at "$LB" 5432 "select count(*) from information_schema.columns where table_name = 'orders' and column_name = 'status'")" = 0 ] ||
	fail "the dry run ran the expand"

# ---- v2: expand first, then the idle colour; the contract waits
iac plan -var version=v2 >"$WORK/p2.out" 2>&1 || { cat "$WORK/p2.out"; fail "plan v2"; }
expect_in "$WORK/p2.out" "db.migration.0007_add_order_status"
expect_in "$WORK/p2.out" "contract waiting"
iac apply -auto-approve -var version=v2 >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply v2 with the expand"; }
l_exp=$(grep -n "db.migration.0007_add_order_status: Creation complete\|db.migration.0007_add_order_status: created" "$WORK/a2.out" | head -1 | cut -d: -f1)
l_start=$(grep -n "deploy.blue_green.web: starting .* at v2" "$WORK/a2.out" | head -1 | cut -d: -f1)
if [ -z "$l_exp" ] || [ -z "$l_start" ] || [ "$l_exp" -ge "$l_start" ]; then
	cat "$WORK/a2.out"
	fail "the expand did not finish before the idle colour started (lines '$l_exp' and '$l_start')"
fi
ok "expand finished (line $l_exp) before the idle colour started at v2 (line $l_start)"
expect_in "$WORK/a2.out" "contract not run: waiting for the rollback window of 'deploy.blue_green.web'"
ctl curl -s -m 3 "http://$WEB/" | grep -q "^v2 new" || fail "v2 does not answer with the new column"
[ "$(psql_at "$LB" 5432 "select string_agg(phase, ',' order by phase) from schema_migrations where name = '0007_add_order_status'")" = expand ] ||
	fail "schema_migrations should hold the expand only"
[ "$(psql_at "$LB" 5432 "select indisvalid from pg_index where indexrelid = 'orders_status_idx'::regclass")" = t ] ||
	fail "orders_status_idx is not a valid index"
[ "$(psql_at "$LB" 5432 "select convalidated from pg_constraint where conname = 'orders_status_set'")" = t ] ||
	fail "orders_status_set was not validated"
iac plan -var version=v2 >"$WORK/p3.out" 2>&1 || { cat "$WORK/p3.out"; fail "plan after v2"; }
expect_in "$WORK/p3.out" "waiting for the rollback window of 'deploy.blue_green.web'"
expect_in "$WORK/p3.out" "more"
expect_in "$WORK/p3.out" "No changes"

# ---- rollback within the window: no schema change needed
iac rollback web >"$WORK/rb.out" 2>&1 || { cat "$WORK/rb.out"; fail "iac rollback web"; }
ctl curl -s -m 3 "http://$WEB/" | grep -q "^v1 n1" || fail "v1 does not answer after the rollback (on the expanded schema)"
iac plan -var version=v3 >"$WORK/p4.out" 2>&1 || { cat "$WORK/p4.out"; fail "plan after the rollback"; }
expect_in "$WORK/p4.out" "deploy.blue_green.web"
iac plan -var version=v1 >"$WORK/p5.out" 2>&1 || { cat "$WORK/p5.out"; fail "plan at v1 after the rollback"; }
expect_in "$WORK/p5.out" "was rolled back to v1"

# ---- v3: the contract waits for its window, then runs
iac apply -auto-approve -var version=v3 >"$WORK/a3.out" 2>&1 || { cat "$WORK/a3.out"; fail "apply v3"; }
expect_not_in "$WORK/a3.out" "running the contract"
t_v3=$SECONDS
[ "$(psql_at "$LB" 5432 "select count(*) from information_schema.columns where table_name = 'orders' and column_name = 'note'")" = 1 ] ||
	fail "the contract ran within the rollback window"
iac plan -var version=v3 >"$WORK/p6.out" 2>&1 || { cat "$WORK/p6.out"; fail "plan in the window"; }
expect_in "$WORK/p6.out" "standby blue (v1) kept"
while [ $((SECONDS - t_v3)) -le "$WINDOW" ]; do sleep 1; done
iac plan -var version=v3 >"$WORK/p7.out" 2>&1 || { cat "$WORK/p7.out"; fail "plan after the window"; }
expect_in "$WORK/p7.out" "run the contract"
iac apply -auto-approve -var version=v3 >"$WORK/a4.out" 2>&1 || { cat "$WORK/a4.out"; fail "apply of the contract"; }
expect_in "$WORK/a4.out" "running the contract"
[ "$(psql_at "$LB" 5432 "select count(*) from information_schema.columns where table_name = 'orders' and column_name = 'note'")" = 0 ] ||
	fail "the contract did not drop the column"
[ "$(psql_at "$LB" 5432 "select string_agg(phase, ',' order by phase) from schema_migrations where name = '0007_add_order_status'")" = contract,expand ] ||
	fail "schema_migrations does not hold both phases"
ctl curl -s -m 3 "http://$WEB/" | grep -q "^v3 new" || fail "v3 does not answer after the contract"
iac plan -detailed-exitcode -var version=v3 >"$WORK/p8.out" 2>&1 || { cat "$WORK/p8.out"; fail "plan after the contract is not quiet"; }

sleep 1
stop_wrk
t_wrk_figures "$WORK/wrk.out"
cat "$WORK/wrk.out"
if [ "$WRK_REQUESTS" -lt 200 ]; then
	fail "wrk made only $WRK_REQUESTS requests"
elif [ "$WRK_SOCKET_ERRORS" -ne 0 ] || [ "$WRK_NON2XX" -ne 0 ] || grep -q 'Socket errors\|Non-2xx' "$WORK/wrk.out"; then
	fail "$WRK_SOCKET_ERRORS socket errors, $WRK_NON2XX non-2xx of $WRK_REQUESTS requests during the migration"
fi
ok "$WRK_REQUESTS requests during expand, deploy, rollback, deploy and contract: 0 failed"

# ---- CREATE INDEX CONCURRENTLY that fails leaves an INVALID index: dropped and built again
printf 'create unique index concurrently orders_dup_uq on orders (dup);\n' >"$WORK/sql/0008_dup.sql"
echo 'migration "0008_dup" { db = db, expand = "sql/0008_dup.sql", retries = 0 }' >>"$WORK/main.lua"
iac apply -auto-approve -var version=v3 >"$WORK/c1.out" 2>&1 && { cat "$WORK/c1.out"; fail "a unique index over duplicates was built"; }
expect_in "$WORK/c1.out" "could not create unique index"
[ "$(psql_at "$LB" 5432 "select indisvalid from pg_index where indexrelid = 'orders_dup_uq'::regclass")" = f ] ||
	fail "the failed build left no INVALID index (is it run outside a transaction?)"
psql_at "$LB" 5432 "update orders set dup = id" >/dev/null
iac apply -auto-approve -var version=v3 >"$WORK/c2.out" 2>&1 || { cat "$WORK/c2.out"; fail "apply after removing the duplicates"; }
expect_in "$WORK/c2.out" "dropping the INVALID index 'orders_dup_uq'"
[ "$(psql_at "$LB" 5432 "select indisvalid from pg_index where indexrelid = 'orders_dup_uq'::regclass")" = t ] ||
	fail "orders_dup_uq is not valid after the retry"
ok "an INVALID index from a failed CREATE INDEX CONCURRENTLY was dropped and built again"
finish
