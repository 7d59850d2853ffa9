#!/bin/bash
# partitions: a time-partitioned and a key-partitioned table on a real
# PostgreSQL 15 (one Patroni member on etcd). The plan lists the partitions
# for now and `premake` after it, with their bounds; apply creates them; the
# plan is quiet afterwards; rows land; a higher key
# makes the plan create partitions ahead of it and drop those that fell out
# of retention (and only iac's: a hand-made partition stays); detach mode
# keeps the table; a plain table or a missing one gets a message that says
# what to do; bad settings are refused at the user's line.
. "$(dirname "$0")/lib.sh"
db_up
# one member is enough here and saves the 2 cores
sed -i 's/for i = 1, 3 do host/for i = 1, 1 do host/' "$WORK/main.lua"
iac apply -auto-approve >"$WORK/a0.out" 2>&1 || { cat "$WORK/a0.out"; fail "apply of the cluster"; }
# HAProxy's rw port sends to the leader once its check has seen it
for i in $(seq 100); do psql_at "$LB" 5432 "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
psql_at "$LB" 5432 "create table events (id bigint generated always as identity, created_at timestamptz not null, v text)
  partition by range (created_at);
create table orders (customer_id bigint not null, v text) partition by range (customer_id);
create index on orders (customer_id);
create table plain (id int);" || fail "tables"
cat >>"$WORK/main.lua" <<'LUA'
partitions "events" { db = db, table = "events", interval = "1 day", premake = 3, retention = "30 days",
                      retention_mode = "detach" }
partitions "orders" { db = db, table = "public.orders", interval = 100000, premake = 4, retention = 200000 }
LUA
iac plan >"$WORK/p0.out" 2>&1 || { cat "$WORK/p0.out"; fail "plan"; }
expect_in "$WORK/p0.out" "create orders_p400000 [400000, 500000)"
expect_in "$WORK/p0.out" "create events_p$(date -u +%Y%m%d) [$(date -u +%F) 00:00:00, $(date -u -d '+1 day' +%F) 00:00:00)"
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply"; }
expect_in "$WORK/a1.out" "db.partitions.events"
sql() { psql_at "$LB" 5432 "$1"; }
kids() { sql "select string_agg(c.relname, ' ' order by c.relname) from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = '$1'::regclass"; }

want=""
for d in 0 1 2 3; do want="$want events_p$(date -u -d "+$d day" +%Y%m%d)"; done
[ "$(kids events)" = "${want# }" ] || fail "events partitions: '$(kids events)', expected '${want# }'"
[ "$(kids orders)" = "orders_p0 orders_p100000 orders_p200000 orders_p300000 orders_p400000" ] ||
	fail "orders partitions: '$(kids orders)'"
ok "plan lists the partitions for now and premake after it with their bounds; apply creates them"
# the attached partition got the table's index (a partitioned index), rows land
[ "$(sql "select count(*) from pg_indexes where tablename = 'orders_p300000'")" = 1 ] || fail "index not on the partition"
sql "insert into events (created_at, v) values (now(), 'a'), (now() + interval '2 days', 'b')" || fail "insert events"
sql "insert into orders values (1, 'x'), (50000, 'y')" || fail "insert orders"
[ "$(sql "select count(*) from orders_p0")" = 2 ] || fail "rows not in orders_p0"
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1 || { cat "$WORK/p1.out"; fail "plan after apply is not quiet"; }
ok "rows land in their partitions; plan quiet"
sql "delete from orders where customer_id = 50000; insert into orders values (350000, 'z')" || fail "insert 350000"
[ "$(sql "select count(*) from orders_p300000")" = 1 ] || fail "row 350000 not in orders_p300000"

# the highest key is now 350000: partitions up to 700000 wanted, and orders_p0
# ([0, 100000)) is wholly below 350000 - 200000; an old events partition
# (40 days ago) expires; a hand-made old partition is not ours and stays
old=$(date -u -d "-40 day" +%Y%m%d)
sql "create table events_p$old partition of events for values from ('$(date -u -d "-40 day" +%F)') to ('$(date -u -d "-39 day" +%F)')" ||
	fail "old partition"
sql "create table events_archive partition of events for values from ('2000-01-01') to ('2000-02-01')" || fail "archive"
rc=0
iac plan -detailed-exitcode >"$WORK/p2.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || { cat "$WORK/p2.out"; fail "plan after new keys: exit $rc, expected 2 (changes)"; }
expect_in "$WORK/p2.out" "create orders_p500000 [500000, 600000)"
expect_in "$WORK/p2.out" "create orders_p700000 [700000, 800000)"
expect_in "$WORK/p2.out" "drop orders_p0 (retention 200000)"
expect_in "$WORK/p2.out" "detach events_p$old (retention 30 days)"
expect_not_in "$WORK/p2.out" "events_archive"
expect_not_in "$WORK/p2.out" "orders_p100000 ("
ok "plan lists partitions to create ahead of the keys and those out of retention"
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply 2"; }
[ "$(kids orders)" = "orders_p100000 orders_p200000 orders_p300000 orders_p400000 orders_p500000 orders_p600000 orders_p700000" ] ||
	fail "orders after retention: '$(kids orders)'"
[ "$(sql "select count(*) from pg_class where relname = 'orders_p0'")" = 0 ] || fail "orders_p0 not dropped"
case " $(kids events) " in *" events_p$old "*) fail "events_p$old still attached" ;; esac
case " $(kids events) " in *" events_archive "*) ;; *) fail "the hand-made partition was touched" ;; esac
[ "$(sql "select count(*) from pg_class where relname = 'events_p$old'")" = 1 ] || fail "detach mode dropped the table"
[ "$(sql "select count(*) from orders")" = 1 ] || fail "rows lost: $(sql "select count(*) from orders")"
iac plan -detailed-exitcode >"$WORK/p3.out" 2>&1 || { cat "$WORK/p3.out"; fail "plan after apply 2 is not quiet"; }
ok "created ahead, dropped (orders) / detached (events) by retention, hand-made kept, plan quiet"

# a plain table: the plan says what to do
cat >>"$WORK/main.lua" <<'LUA'
partitions "plain" { db = db, interval = "1 month" }
LUA
if iac plan >"$WORK/p4.out" 2>&1; then cat "$WORK/p4.out"; fail "a plain table was accepted"; fi
expect_in "$WORK/p4.out" "table 'public.plain' is not partitioned by range on one column (a plain table)"
sed -i 's/partitions "plain" { db = db, interval = "1 month" }/partitions "nosuch" { db = db, interval = "1 month" }/' "$WORK/main.lua"
if iac apply -auto-approve >"$WORK/a4.out" 2>&1; then cat "$WORK/a4.out"; fail "a missing table was accepted"; fi
expect_in "$WORK/a4.out" "table 'public.nosuch' does not exist: create it PARTITION BY RANGE (column) in a migration"
ok "plain and missing tables refused with what to do"

# settings checked at the user's line, before anything runs
sed -i '/partitions "nosuch"/d' "$WORK/main.lua"
n=$(($(wc -l <"$WORK/main.lua") + 1))
bad() {
	echo "$1" >>"$WORK/main.lua"
	if iac validate >"$WORK/v.out" 2>&1; then cat "$WORK/v.out"; fail "accepted: $1"; fi
	expect_in "$WORK/v.out" "main.lua:$n: partitions 'x': $2"
	sed -i '$d' "$WORK/main.lua"
}
bad 'partitions "x" { db = db, interval = "1 fortnight" }' "interval '1 fortnight' is not one of"
bad 'partitions "x" { db = db, interval = 1000, retention = "30 days" }' "retention for a key range is a whole number of keys"
bad 'partitions "x" { db = db, table = "bad-name", interval = "1 day" }' "table 'bad-name' is not a table name"
bad 'partitions "x" { db = db, interval = "1 day", retention_mode = "archive" }' 'retention_mode must be "drop" or "detach"'
bad 'partitions "x" { db = db, interval = "1 day", premake = -1 }' "premake must be a whole number from 0 to 1000"
bad 'partitions "x" { db = db, interval = "1 day", retension = "3 days" }' "unknown setting 'retension'; did you mean 'retention'?"
ok "bad settings refused at the user's line"
