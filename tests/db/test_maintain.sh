#!/bin/bash
# maintenance: a materialized view refreshed CONCURRENTLY when the resource
# is applied and when `after` changes; `iac db maintain` runs what is due
# (REINDEX TABLE CONCURRENTLY rebuilds the index files; a readers' query is
# never blocked by the refresh), says when the rest is due, -force runs all;
# a view without the unique index CONCURRENTLY needs fails with what to do;
# bad settings are refused at the user's line. One Patroni member on etcd.
. "$(dirname "$0")/lib.sh"
db_up
sed -i 's/for i = 1, 3 do host/for i = 1, 1 do host/' "$WORK/main.lua"
iac apply -auto-approve >"$WORK/a0.out" 2>&1 || { cat "$WORK/a0.out"; fail "apply of the cluster"; }
for i in $(seq 100); do psql_at "$LB" 5432 "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
sql() { psql_at "$LB" 5432 "$1"; }
sql "create table orders (id int primary key, amount int);
insert into orders select g, g % 7 from generate_series(1, 1000) g;
create materialized view order_sum as select 1 as k, count(*) as n, sum(amount) as total from orders with no data;
create unique index on order_sum (k);
create materialized view order_plain as select count(*) as n from orders;" || fail "schema"

cat >>"$WORK/main.lua" <<'LUA'
local v1 = resource "local.file" ("schema_version") { path = "version.txt", content = "1" }
maintenance "nightly" { db = db, refresh = { "order_sum" }, reindex = { "orders" }, every = "1h", after = { v1 } }
LUA
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply"; }
[ "$(sql "select n from order_sum")" = 1000 ] || fail "the view was not refreshed at apply (never populated before)"
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1 || { cat "$WORK/p1.out"; fail "plan after apply not quiet"; }
ok "view refreshed when the maintenance is applied; plan quiet"

# a change in `after` (a new migration, here a file standing in for one) refreshes
sql "insert into orders select g, 1 from generate_series(1001, 1500) g" || fail "insert"
sed -i 's/content = "1"/content = "2"/' "$WORK/main.lua"
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply 2"; }
[ "$(sql "select n from order_sum")" = 1500 ] || fail "view not refreshed after 'after' changed: $(sql "select n from order_sum")"
ok "a change of 'after' refreshes the view"

# iac db maintain: the refresh ran at apply (not due); the reindex never ran (due)
before=$(sql "select pg_relation_filenode('orders_pkey')")
iac db maintain >"$WORK/m1.out" 2>&1 || { cat "$WORK/m1.out"; fail "maintain"; }
expect_in "$WORK/m1.out" "nightly: refresh order_sum: not due (next in"
expect_in "$WORK/m1.out" "nightly: reindex orders: done ("
after=$(sql "select pg_relation_filenode('orders_pkey')")
[ "$before" != "$after" ] || fail "REINDEX did not rebuild orders_pkey ($before)"
[ "$(sql "select count(*) from pg_index where not indisvalid")" = 0 ] || fail "invalid index left"
iac db maintain -json >"$WORK/m2.json" 2>&1 || { cat "$WORK/m2.json"; fail "maintain -json"; }
"$T_PY" - "$WORK/m2.json" <<'PY' || fail "maintain -json: $(cat "$WORK/m2.json")"
import json, sys
t = json.load(open(sys.argv[1]))["tasks"]
assert [x["result"] for x in t] == ["not due", "not due"], t
assert all(0 < x["next_in_seconds"] <= 3600 for x in t), t
PY
ok "iac db maintain runs what is due (reindex rebuilt the index), reports the rest with the time left"

# -force: the refresh runs CONCURRENTLY, so a reader holding the view open
# for 6 s does not hold it up (a plain REFRESH would wait for the reader)
sql "insert into orders select g, 1 from generate_series(1501, 1600) g" || fail "insert 2"
PGPASSWORD=$IAC_VAR_pg_superuser ctl psql -X -q -h "$LB" -p 5432 -U postgres -d postgres \
	-c "begin; select * from order_sum; select pg_sleep(6); commit;" >/dev/null 2>&1 &
reader=$!
sleep 1
iac db maintain -force -json >"$WORK/m3.json" 2>&1 || { cat "$WORK/m3.json"; fail "maintain -force"; }
wait $reader
"$T_PY" - "$WORK/m3.json" <<'PY' || fail "maintain -force: $(cat "$WORK/m3.json")"
import json, sys
t = {x["kind"]: x for x in json.load(open(sys.argv[1]))["tasks"]}
assert t["refresh"]["result"] == "done" and t["reindex"]["result"] == "done", t
print("refresh with a reader holding the view: %.3f s on the server" % t["refresh"]["seconds"])
assert t["refresh"]["seconds"] < 3, "the refresh waited for the reader"
PY
[ "$(sql "select n from order_sum")" = 1600 ] || fail "forced refresh did not run"
ok "-force runs every task; the refresh does not wait for readers (CONCURRENTLY)"

# a view without a unique index: CONCURRENTLY is impossible, say what to do
sed -i 's/refresh = { "order_sum" }/refresh = { "order_sum", "order_plain" }/' "$WORK/main.lua"
if iac apply -auto-approve >"$WORK/a3.out" 2>&1; then cat "$WORK/a3.out"; fail "refresh of order_plain accepted"; fi
expect_in "$WORK/a3.out" "refresh 'order_plain' failed on"
expect_in "$WORK/a3.out" "CONCURRENTLY needs a unique index on the view that covers every row: add one in a migration"
ok "a view without a unique index is refused with what to do"
sed -i 's/refresh = { "order_sum", "order_plain" }/refresh = { "order_sum" }/' "$WORK/main.lua"

n=$(($(wc -l <"$WORK/main.lua") + 1))
bad() {
	echo "$1" >>"$WORK/main.lua"
	if iac validate >"$WORK/v.out" 2>&1; then cat "$WORK/v.out"; fail "accepted: $1"; fi
	expect_in "$WORK/v.out" "main.lua:$n: maintenance 'x': $2"
	sed -i '$d' "$WORK/main.lua"
}
bad 'maintenance "x" { db = db, refresh = { "a; drop table orders" } }' "refresh: 'a; drop table orders' is not a name"
bad 'maintenance "x" { db = db }' "nothing to do: give 'refresh' (views) and/or 'reindex' (tables)"
bad 'maintenance "x" { db = db, reindex = { "t" }, every = "daily" }' "every 'daily' is not a duration"
bad 'maintenance "x" { db = db, reindx = { "t" } }' "unknown setting 'reindx'; did you mean 'reindex'?"
if iac db maintian >"$WORK/u.out" 2>&1; then fail "iac db maintian accepted"; fi
expect_in "$WORK/u.out" "did you mean 'maintain'?"
ok "bad settings refused at the user's line; a misspelt subcommand named"
