# lib.sh: a Patroni cluster on the test bed for the db tests (sourced, not run).
#
#   db_up            4 hosts: h1..h3 database (PostgreSQL 15 + Patroni),
#                    h4 HAProxy (rw 5432, ro 5433); etcd 3.4 in the
#                    controller namespace on the bridge address; main.lua
#                    written, nothing applied
#   psql_at HOST PORT SQL      psql as postgres through HOST:PORT (from the controller)
#   leader_name                which member Patroni says leads (h1..h3)
#   member_pid N               Patroni's pid on hN
#   server_at HOST PORT        the address of the member that answers there
#                              (through PgBouncer too, where inet_server_addr is local)
# DB_POOLER=1 before db_up: PgBouncer on every member (pooler = {...}).
# DB_EXTRA: more postgres_cluster settings (Lua, ending in a comma).
# DB_MEMBERS=N (default 3): only h1..hN are database members; DB_BED_HOSTS=N
# (default 4) hosts in the bed (h4 stays HAProxy's).
# Everything started here dies with the bed (each host's PID 1 is killed, and
# with it Patroni and PostgreSQL) or is stopped by PID (etcd) on exit, also
# when a check fails.
. "$(dirname "${BASH_SOURCE[0]}")/../ssh/lib.sh"

for c in patroni etcd haproxy psql /usr/lib/postgresql/15/bin/postgres; do
	command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] || { echo "skipped: '$c' is not installed (.ci/install)"; exit 77; }
done
"$T_PY" -c 'import etcd, psycopg2' 2>/dev/null || { echo "skipped: python3-etcd / python3-psycopg2 missing"; exit 77; }

export IAC_VAR_pg_superuser="su-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export IAC_VAR_pg_replication="rep-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ETCD_PID=

db_cleanup() {
	local rc=$?
	if [ "$rc" != 0 ] && [ -d "$BED/hosts" ]; then
		for n in 1 2 3; do
			echo "--- h$n patroni log (tail)" >&2
			tail -n 8 "$BED/hosts/h$n/upper/var/log/patroni/main.log" 2>/dev/null >&2
		done
	fi
	t_bed_down "$BED"
	[ -n "$ETCD_PID" ] && { t_stop_pid "$ETCD_PID"; wait "$ETCD_PID" 2>/dev/null; }
	rm -rf "$WORK"
	exit $rc
}
trap db_cleanup EXIT

ctl() { bash "$TESTBED" exec "$BED" "$@"; }

db_up() {
	bed_up "${DB_BED_HOSTS:-4}"
	. "$BED/env"
	ETCD_ADDR="$TB_SUBNET.1:2379"
	# exec all the way down: $! is etcd itself
	bash "$TESTBED" exec "$BED" etcd --name e1 --data-dir "$WORK/etcd" --listen-client-urls "http://$ETCD_ADDR" \
		--advertise-client-urls "http://$ETCD_ADDR" --listen-peer-urls http://127.0.0.1:2380 \
		--initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster e1=http://127.0.0.1:2380 \
		--heartbeat-interval 50 --election-timeout 300 >"$WORK/etcd.log" 2>&1 &
	ETCD_PID=$!
	local i
	for i in $(seq 100); do
		ctl curl -s -m 1 -X POST -d '{"key":"cHJvYmU="}' "http://$ETCD_ADDR/v3/kv/range" 2>/dev/null | grep -q header && break
		sleep 0.1
	done
	LB=$(addr 4)
	local pooler=""
	[ -n "${DB_POOLER:-}" ] && pooler='pooler = { engine = "pgbouncer", mode = "transaction", pool_size = 20 },'
	cat >"$WORK/main.lua" <<LUA
$(provider_block)
variable "pg_superuser" { sensitive = true }
variable "pg_replication" { sensitive = true }
for i = 1, ${DB_MEMBERS:-3} do host("h" .. i) { address = "$TB_SUBNET." .. (i + 1), labels = { role = "db" } } end
local lb1 = host "h4" { address = "$LB" }
local db = postgres_cluster "main" {
  hosts = hosts { role = "db" },
  version = 15, ha = "patroni", dcs = { "http://$ETCD_ADDR" },
  settings = { max_connections = 200, shared_buffers = "128MB" },
  endpoints = { rw = 5432, ro = 5433 }, proxy = lb1,
  max_lag = "1MB", ttl = ${DB_TTL:-6}, loop_wait = 1,
  $pooler
  ${DB_EXTRA:-}
  superuser_password = var.pg_superuser, replication_password = var.pg_replication,
}
output "rw" { value = db.rw }
LUA
}

psql_at() {
	PGPASSWORD=$IAC_VAR_pg_superuser PGCONNECT_TIMEOUT=3 ctl psql -X -q -A -t -v ON_ERROR_STOP=1 \
		-h "$1" -p "$2" -U postgres -d postgres -c "$3"
}

leader_name() {
	local n
	for n in 1 2 3; do
		ctl curl -s -m 1 -o /dev/null -w '%{http_code}' "http://$(addr $n):8008/primary" 2>/dev/null | grep -q 200 &&
			{ echo "h$n"; return 0; }
	done
	return 1
}

server_at() { psql_at "$1" "$2" "select split_part(current_setting('listen_addresses'), ',', 1)"; }

member_pid() { on_host "$1" 'cat /run/postgresql/patroni-main.pid'; }
