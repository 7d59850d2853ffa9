# shard_lib.sh: two single-member postgres_clusters for the shard_map test
# and bench (sourced after tests/db/lib.sh, not run).
#
#   shard_up         db_up's bed and etcd; cluster a on h1, b on h2, their
#                    HAProxies on h3 (a: rw 5432, b: rw 5442), applied; the
#                    table orders (id, customer_id, note) on both; $A and
#                    $B are "ADDR PORT" of each rw port, $MAP where the map
#                    published on h3 is seen from the controller
#   shard_map_lua SETTINGS   appends shard_map "orders" { SETTINGS, published on h3 }
#   shard_writer FIRST_ID    starts tests/db/shard_writer.py (the docs' client
#                    recipe) in the background: $WPID; stop with shard_writer_stop
shard_up() {
	db_up
	H3=$(addr 3)
	cat >"$WORK/main.lua" <<LUA
$(provider_block)
variable "pg_superuser" { sensitive = true }
variable "pg_replication" { sensitive = true }
local h1 = host "h1" { address = "$(addr 1)" }
local h2 = host "h2" { address = "$(addr 2)" }
local h3 = host "h3" { address = "$H3" }
local function cluster(name, h, rw)
  return postgres_cluster(name) {
    hosts = { h }, version = 15, ha = "patroni", dcs = { "http://$ETCD_ADDR" },
    settings = { max_connections = 50, shared_buffers = "32MB" },
    endpoints = { rw = rw, ro = rw + 1 }, proxy = h3, ttl = 6, loop_wait = 1,
    superuser_password = var.pg_superuser, replication_password = var.pg_replication,
  }
end
local db_a = cluster("a", h1, 5432)
local db_b = cluster("b", h2, 5442)
LUA
	iac apply -auto-approve >"$WORK/a0.out" 2>&1 || { cat "$WORK/a0.out"; fail "apply of the clusters"; }
	A="$H3 5432"
	B="$H3 5442"
	MAP="$BED/hosts/h3/upper/etc/app/shards/orders.json"
	local c i
	for c in "$A" "$B"; do
		for i in $(seq 60); do psql_at $c "select 1" >/dev/null 2>&1 && break; sleep 0.5; done
		psql_at $c "create table orders (id bigint primary key, customer_id bigint not null, note text)" || fail "create table"
	done
}

shard_map_lua() {
	cat >>"$WORK/main.lua" <<LUA
local shards = shard_map "orders" {
  $1,
  publish = { file = "/etc/app/shards/orders.json", hosts = { h3 } },
}
LUA
}

shard_writer() {
	rm -f "$WORK/stop"
	PGPASSWORD=$IAC_VAR_pg_superuser ctl "$T_PY" "$IAC_SOURCE_DIR/tests/db/shard_writer.py" "$MAP" "$1" "$WORK/stop" \
		"$WORK/w.json" 2>"$WORK/w.err" &
	WPID=$!
}
shard_writer_stop() {
	touch "$WORK/stop"
	wait "$WPID" || { cat "$WORK/w.err"; fail "writer"; }
}
