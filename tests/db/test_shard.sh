#!/bin/bash
# shard_map over two single-member postgres_clusters (h1: cluster a, h2:
# cluster b; their HAProxies on h3, which also receives the published map):
# bad shard_maps refused at the user's line; the map published and quiet
# after apply; adding cluster b shows the slot moves in the plan; the apply
# moves them while an application (shard_writer.py, the docs' client recipe)
# inserts constantly: no row lost or duplicated, every row on the cluster the
# map names, plan quiet afterwards; a move left half done (fenced on the
# source, a partial copy on the target) is rolled back by the next apply.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/shard_lib.sh"

# --- mistakes, before any host: error: main.lua:LINE: ...
V="$WORK/v"
mkdir -p "$V"
bad() {
	cat >"$V/main.lua" <<EOF
variable "pg_superuser"   { sensitive = true }
variable "pg_replication" { sensitive = true }
host "d1" { address = "10.9.0.2", labels = { role = "a" } }
local db_a = postgres_cluster "a" { hosts = hosts { role = "a" }, dcs = "http://10.9.0.1:2379", superuser_password = var.pg_superuser, replication_password = var.pg_replication }
local shards = shard_map "orders" { $2 }
EOF
	(cd "$V" && "$IAC" -no-color validate) >"$V/out" 2>&1 && fail "accepted: $2"
	grep -qF -- "error: main.lua:5: $1" "$V/out" || { cat "$V/out"; fail "for '$2' expected 'error: main.lua:5: $1'"; }
}
bad "shard_map 'orders': slots must be a whole number > 0" 'cluster_set = { db_a }, slots = 0, key = "customer_id"'
bad "shard_map 'orders': slots must be a whole number > 0" 'cluster_set = { db_a }, slots = -4, key = "customer_id"'
bad "shard_map 'orders': unknown cluster 'db_x' in cluster_set" 'cluster_set = { db_a, "db_x" }, key = "customer_id"'
bad "unknown name 'db_x'" 'cluster_set = { db_a, db_x }, key = "customer_id"'
bad "shard_map 'orders': 'key' (the column that places a row" 'cluster_set = { db_a }, slots = 1024'
bad "shard_map 'orders': hash 'crc32' is not supported" 'cluster_set = { db_a }, key = "customer_id", hash = "crc32"'
bad "shard_map 'orders': unknown setting 'slot'; did you mean 'slots'?" 'cluster_set = { db_a }, key = "customer_id", slot = 8'
echo "ok: bad shard_maps refused at their line"

# --- two clusters, the table on each, then the map on a only
shard_up
shard_map_lua 'cluster_set = { db_a }, slots = 1024, key = "customer_id", hash = "ketama", batch = 128'
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply of the map"; }
[ -f "$MAP" ] || fail "the map is not published on h3"
"$T_PY" - "$MAP" <<'PY' || fail "published map v1"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "iac-shard-map/1" and d["version"] == 1 and d["slots"] == 1024, d
assert d["key"] == "customer_id" and d["table"] == "orders" and d["hash"] == "ketama", d
assert set(d["map"]) == {"a"} and len(d["map"]) == 1024 and d["clusters"]["a"]["rw"].endswith(":5432"), d
PY
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1 || { cat "$WORK/p1.out"; fail "plan after apply is not quiet"; }
# 20,000 rows on a
psql_at $A "insert into orders (id, customer_id) select g, g from generate_series(1, 20000) g" || fail "preload"
echo "ok: map v1 published"

# --- add b: the plan names the moves
sed -i 's/cluster_set = { db_a }/cluster_set = { db_a, db_b }/' "$WORK/main.lua"
iac plan >"$WORK/p2.out" 2>&1 || { cat "$WORK/p2.out"; fail "plan with b"; }
cat "$WORK/p2.out" | grep -E "move|Plan:"
expect_in "$WORK/p2.out" "of 1024 slots: a -> b"
moving=$(sed -n 's/.*move \([0-9]*\) of 1024 slots: a -> b \([0-9]*\).*/\1 \2/p' "$WORK/p2.out" | head -1)
set -- $moving
[ "${1:-0}" = "${2:-x}" ] && [ "$1" -gt 300 ] && [ "$1" -lt 724 ] || fail "expected about half of 1024 slots to move a -> b, saw '$moving'"

# --- move under constant writes
shard_writer 100001
sleep 2
t0=$(date +%s.%N)
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { touch "$WORK/stop"; cat "$WORK/a2.out"; fail "apply of the moves"; }
echo "moved $1 slots in $(echo "$(date +%s.%N) - $t0" | bc) s"
sleep 2
shard_writer_stop
grep -E "moved|write pause" "$WORK/a2.out" | tail -2
psql_at $A "copy (select id, customer_id from orders) to stdout" >"$WORK/rows_a" || fail "read a"
psql_at $B "copy (select id, customer_id from orders) to stdout" >"$WORK/rows_b" || fail "read b"
"$T_PY" - "$MAP" "$WORK/w.json" "$WORK/rows_a" "$WORK/rows_b" "$1" <<'PY' || fail "rows after the move"
import hashlib, json, sys
d = json.load(open(sys.argv[1])); w = json.load(open(sys.argv[2])); moving = int(sys.argv[5])
slot = lambda k: (int.from_bytes(hashlib.md5(str(k).encode()).digest()[:4], "big") * d["slots"]) >> 32
rows = {}
for c, f in (("a", sys.argv[3]), ("b", sys.argv[4])):
    for line in open(f):
        i, k = map(int, line.split())
        assert i not in rows, "row %d is on both clusters" % i
        rows[i] = c
        assert d["map"][slot(k)] == c, "row %d (slot %d) is on %s, the map says %s" % (i, slot(k), c, d["map"][slot(k)])
acked = set(w["acked"])
assert len(acked) > 100, "the writer wrote only %d rows" % len(acked)
lost = [i for i in list(range(1, 20001)) + sorted(acked) if i not in rows]
assert not lost, "%d acknowledged rows lost, e.g. %s" % (len(lost), lost[:5])
extra = [i for i in rows if i > 20000 and i not in acked]
assert not extra, "rows nobody acknowledged: %s" % extra[:5]
assert d["map"].count("b") == moving and d["version"] > 1, (d["map"].count("b"), d["version"])
on_b = sum(1 for c in rows.values() if c == "b")
print("ok: %d rows (%d written during the move, %d refused tries, longest wait %s ms), %d on b, 0 lost, 0 duplicated, map v%d"
      % (len(rows), len(acked), w["refused"], w["longest_wait_ms"], on_b, d["version"]))
assert 0.3 < on_b / len(rows) < 0.7, on_b
PY
[ "$(psql_at $A "select count(*) from iac_shard_state where map = 'orders' and state <> 'moved'")" = 0 ] || fail "slots left in transit on a"
iac plan -detailed-exitcode >"$WORK/p3.out" 2>&1 || { cat "$WORK/p3.out"; fail "plan after the moves is not quiet"; }
# each cluster refuses the other's slots (a stale client is told to read the map again)
ka=$(grep -m1 "	" "$WORK/rows_a" | cut -f2)
kb=$(grep -m1 "	" "$WORK/rows_b" | cut -f2)
psql_at $B "insert into orders (id, customer_id) values (-1, $ka)" >"$WORK/g.out" 2>&1 && fail "b accepted a slot of a"
expect_in "$WORK/g.out" "is not on this cluster (moved): read the map again"
psql_at $A "insert into orders (id, customer_id) values (-1, $kb)" >"$WORK/g.out" 2>&1 && fail "a accepted a slot of b"
expect_in "$WORK/g.out" "is not on this cluster (moved): read the map again"
echo "ok: plan quiet after the moves; each cluster refuses the other's slots"

# --- a move stopped before its flip: slot S of a fenced, a partial copy
# on b; the plan says so, the apply rolls it back (a accepts S again, b's
# copy gone, no row lost)
S=$("$T_PY" -c "import json,sys; m=json.load(open(sys.argv[1]))['map']; print(m.index('a'))" "$MAP")
psql_at $A "insert into iac_shard_state values ('orders', $S, 'fenced', 'b') on conflict (map, slot) do update set state = 'fenced'" || fail "fence"
n_s=$(psql_at $A "select count(*) from orders where iac_shard_slot(customer_id::text, 1024) = $S")
psql_at $B "update iac_shard_state set state = 'incoming', peer = 'a' where map = 'orders' and slot = $S" || fail "incoming"
# a partial copy: the slot's rows as b would have received them
psql_at $A "copy (select * from orders where iac_shard_slot(customer_id::text, 1024) = $S) to stdout" >"$WORK/slot_rows"
PGPASSWORD=$IAC_VAR_pg_superuser ctl psql -X -q -h $H3 -p 5442 -U postgres -d postgres -v ON_ERROR_STOP=1 \
	-c "set session_replication_role = replica" -c "copy orders from stdin" <"$WORK/slot_rows" || fail "partial copy"
iac plan >"$WORK/p4.out" 2>&1 || { cat "$WORK/p4.out"; fail "plan with a stopped move"; }
expect_in "$WORK/p4.out" "settle 1 slot(s) an apply left in a move"
iac apply -auto-approve >"$WORK/a4.out" 2>&1 || { cat "$WORK/a4.out"; fail "apply settling the stopped move"; }
[ "$(psql_at $B "select count(*) from orders where iac_shard_slot(customer_id::text, 1024) = $S")" = 0 ] || fail "b kept the partial copy"
[ "$(psql_at $A "select count(*) from orders where iac_shard_slot(customer_id::text, 1024) = $S")" = "$n_s" ] || fail "a lost rows of slot $S"
k=$("$T_PY" -c "
import hashlib
for k in range(10**9, 10**9 + 10**6):
    if (int.from_bytes(hashlib.md5(str(k).encode()).digest()[:4], 'big') * 1024) >> 32 == $S: print(k); break")
psql_at $A "insert into orders values ($k, $k)" || fail "a refuses slot $S after the rollback"
iac plan -detailed-exitcode >"$WORK/p5.out" 2>&1 || { cat "$WORK/p5.out"; fail "plan after settling is not quiet"; }
echo "ok: a move stopped before its flip is rolled back by the next apply"

# --- a move stopped after its flip: S copied to b ('verified'), fenced on
# a, the published map already says b. The next apply goes forward (the
# plan reads S as b's), then the ring's own choice, a, moves it back: in the
# end every row of S once, on a
psql_at $A "insert into iac_shard_state values ('orders', $S, 'fenced', 'b') on conflict (map, slot) do update set state = 'fenced'" || fail "fence"
psql_at $A "copy (select * from orders where iac_shard_slot(customer_id::text, 1024) = $S) to stdout" >"$WORK/slot_rows"
n_s=$(wc -l <"$WORK/slot_rows")
PGPASSWORD=$IAC_VAR_pg_superuser ctl psql -X -q -h $H3 -p 5442 -U postgres -d postgres -v ON_ERROR_STOP=1 \
	-c "set session_replication_role = replica" -c "copy orders from stdin" <"$WORK/slot_rows" || fail "copy to b"
psql_at $B "update iac_shard_state set state = 'verified', peer = 'a' where map = 'orders' and slot = $S" || fail "verified"
v0=$("$T_PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['version'])" "$MAP")
on_host 3 "python3 -c \"import json; p = '/etc/app/shards/orders.json'; d = json.load(open(p)); d['map'][$S] = 'b'; d['version'] += 1; json.dump(d, open(p, 'w'))\"" ||
	fail "flip by hand"
iac plan >"$WORK/p6.out" 2>&1 || { cat "$WORK/p6.out"; fail "plan with a flipped move"; }
expect_in "$WORK/p6.out" "settle 1 slot(s) an apply left in a move"
expect_in "$WORK/p6.out" "move 1 of 1024 slots: b -> a 1"
iac apply -auto-approve >"$WORK/a6.out" 2>&1 || { cat "$WORK/a6.out"; fail "apply finishing the flipped move"; }
[ "$(psql_at $B "select count(*) from orders where iac_shard_slot(customer_id::text, 1024) = $S")" = 0 ] || fail "b kept slot $S's rows"
[ "$(psql_at $A "select count(*) from orders where iac_shard_slot(customer_id::text, 1024) = $S")" = "$n_s" ] || fail "rows of slot $S lost"
"$T_PY" -c "import json,sys; d = json.load(open(sys.argv[1])); assert d['map'][$S] == 'a' and d['version'] >= $v0 + 2, d['version']" "$MAP" ||
	fail "the map does not give slot $S back to a in a new version"
psql_at $A "insert into orders values ($((k + 1)), $k)" || fail "a refuses slot $S"
psql_at $B "insert into orders values ($((k + 2)), $k)" >"$WORK/g.out" 2>&1 && fail "b accepts slot $S"
iac plan -detailed-exitcode >"$WORK/p7.out" 2>&1 || { cat "$WORK/p7.out"; fail "plan after finishing is not quiet"; }
echo "ok: a move stopped after its flip is finished by the next apply (then the ring moves the slot back)"

# --- published to an etcd key instead: a new version there
sed -i "s|publish = { file = \"/etc/app/shards/orders.json\", hosts = { h3 } }|publish = { etcd = \"http://$ETCD_ADDR\", key = \"/shards/orders\" }|" "$WORK/main.lua"
iac apply -auto-approve >"$WORK/a8.out" 2>&1 || { cat "$WORK/a8.out"; fail "apply publishing to etcd"; }
ctl curl -s -X POST -d "{\"key\":\"$(printf /shards/orders | base64)\"}" "http://$ETCD_ADDR/v3/kv/range" >"$WORK/etcd.json"
"$T_PY" - "$WORK/etcd.json" "$MAP" <<'PY' || fail "the map in etcd"
import base64, json, sys
kv = json.load(open(sys.argv[1]))["kvs"][0]
d = json.loads(base64.b64decode(kv["value"])); f = json.load(open(sys.argv[2]))
assert d["format"] == "iac-shard-map/1" and d["map"] == f["map"] and d["version"] == f["version"] + 1, (d["version"], f["version"])
PY
iac plan -detailed-exitcode >"$WORK/p8.out" 2>&1 || { cat "$WORK/p8.out"; fail "plan after publishing to etcd is not quiet"; }
echo "ok: the map published to etcd, plan quiet"

# --- destroy: the guards and the published map go, the rows stay
iac destroy -auto-approve -target db.shard_map.orders >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy of the map"; }
for c in "$A" "$B"; do
	[ "$(psql_at $c "select count(*) from pg_trigger where tgname = 'iac_shard_guard_orders'")" = 0 ] || fail "guard left on $c"
done
[ "$(psql_at $A "select count(*) from orders")" -gt 10000 ] || fail "rows gone with the map"
ctl curl -s -X POST -d "{\"key\":\"$(printf /shards/orders | base64)\"}" "http://$ETCD_ADDR/v3/kv/range" | grep -q '"kvs"' &&
	fail "the map is still in etcd after destroy"
echo "ok: destroy drops the guards and the published map, keeps the rows"
echo ok
