#!/bin/bash
# postgres_cluster and migration mistakes are caught by `iac validate`, before
# any host is touched, at the user's line (main.lua, never iac's module file),
# with a message that names the cluster and the setting. No hosts needed.
set -u
. "$(dirname "$0")/../lib/common.sh"

IAC=${IAC:-$(dirname "$0")/../../build/iac/iac}
W=$(mktemp -d "${TMPDIR:-/tmp}/iac-db-config.XXXXXX")
trap 'rm -rf "$W"' EXIT
export IAC_VAR_pg_superuser=su-secret IAC_VAR_pg_replication=rep-secret

# EXPECTED_MESSAGE CLUSTER_SETTINGS [MORE_LUA]: the cluster is on line 5
check() {
	cat >"$W/main.lua" <<EOF
variable "pg_superuser"   { sensitive = true }
variable "pg_replication" { sensitive = true }
host "d1" { address = "10.9.0.2", labels = { role = "db" } }
local lb1 = host "lb1" { address = "10.9.0.9" }
local db = postgres_cluster "main" { hosts = hosts { role = "db" }, dcs = "http://10.9.0.1:2379", superuser_password = var.pg_superuser, replication_password = var.pg_replication, $2 }
${3:-}
EOF
	if (cd "$W" && "$IAC" -no-color validate) >"$W/out" 2>&1; then
		check_fail "accepted: $2 ${3:-}"
	elif grep -qF -- "$1" "$W/out" && ! grep -qF -- "<iac>" "$W/out"; then
		ok "refused: $2 ${3:-}"
	else
		check_fail "for '$2 ${3:-}' expected '$1', got: $(cat "$W/out")"
	fi
}
P="main.lua:5: postgres_cluster 'main':"
check "$P unknown setting 'hots'; did you mean 'hosts'?" 'hots = 1'
check "$P pooler: unknown setting 'poolsize'; did you mean 'pool_size'?" 'pooler = { poolsize = 20 }'
check "$P endpoints: unknown setting 'r0'; did you mean 'rw'?" 'endpoints = { rw = 5432, r0 = 5433 }'
check "$P endpoints (5432, 5433) clash with PostgreSQL's port 5432" 'endpoints = { rw = 5432, ro = 5433 }'
check "$P ha = \"patroni\" is the only choice" 'ha = "repmgr"'
check "$P pooler = { engine = \"pgbouncer\"" 'pooler = { engine = "pgpool" }'
check "$P 'hosts' (at least one host) is required" 'hosts = {}'
check "$P 'dcs' (etcd endpoints) is required" 'dcs = {}'
check "$P hosts must be hosts (hosts { role = \"db\" }), not 'd1'" 'hosts = { "d1" }'
check "$P port must be a port number (1-65535), not 'x'" 'port = "x"'
check "$P endpoints.ro must be a port number (1-65535), not 'x'" 'proxy = lb1, endpoints = { ro = "x" }'
check "$P pooler.port must be a port number" 'pooler = { port = 0 }'
check "$P proxy must be one host" 'proxy = "lb1"'
check "$P max_lag 'lots' is not a size" 'max_lag = "lots"'
check "$P 'superuser_password' must come from a sensitive variable" 'superuser_password = "literal"'
M="main.lua:6: migration 'm1':"
check "$M unknown setting 'expnad'; did you mean 'expand'?" '' 'migration "m1" { db = db, expnad = "a.sql" }'
check "$M unknown setting 'lock_timout'; did you mean 'lock_timeout'?" '' \
	'migration "m1" { db = db, expand = "a.sql", lock_timout = "2s" }'
check "$M 'db' (from postgres_cluster) is required" '' 'migration "m1" { expand = "a.sql" }'
check "$M 'expand' (a SQL file) is required" '' 'migration "m1" { db = db }'
P6="main.lua:6: partitions 'p':"
check "$P6 depends_on must be a list of resources: depends_on = { m }" '' \
	'local m = migration "m0" { db = db, expand = "a.sql" } partitions "p" { db = db, interval = "1 day", depends_on = m }'
check "$P6 interval inf must be a whole number from 1 to 10^15" '' 'partitions "p" { db = db, interval = math.huge }'
check "$P6 retries must be a whole number from 0 to 100" '' 'partitions "p" { db = db, interval = "1 day", retries = -1 }'
X6="main.lua:6: maintenance 'x':"
check "$X6 after must be a list of resources: after = { m }" '' \
	'local m = migration "m0" { db = db, expand = "a.sql" } maintenance "x" { db = db, refresh = { "v" }, after = m }'
check "$X6 nothing to do: give 'refresh'" '' 'maintenance "x" { db = db, refresh = {} }'
check "$X6 every '1d' is not a duration" '' 'maintenance "x" { db = db, reindex = { "t" }, every = "1d" }'

# settings stay free-form (PostgreSQL's own), and a good one validates
echo 'ALTER TABLE t ADD COLUMN c int;' >"$W/a.sql"
cat >"$W/main.lua" <<'EOF'
variable "pg_superuser"   { sensitive = true }
variable "pg_replication" { sensitive = true }
host "d1" { address = "10.9.0.2", labels = { role = "db" } }
host "d2" { address = "10.9.0.3", labels = { role = "db" } }
local lb1 = host "lb1" { address = "10.9.0.9" }
local db = postgres_cluster "main" {
  hosts = hosts { role = "db" }, version = 15, ha = "patroni", dcs = { "http://10.9.0.1:2379" },
  settings = { max_connections = 200, shared_buffers = "128MB", any_new_guc = "on" },
  endpoints = { rw = 5432, ro = 5433 }, proxy = lb1, max_lag = "1MB",
  pooler = { engine = "pgbouncer", mode = "transaction", pool_size = 20, port = 6432, max_client_conn = 1000 },
  superuser_password = var.pg_superuser, replication_password = var.pg_replication,
}
migration "0007" { db = db, expand = "a.sql", lock_timeout = "2s", retries = 5, database = "postgres" }
EOF
(cd "$W" && "$IAC" -no-color validate) >"$W/out" 2>&1 && grep -qF "valid (" "$W/out" &&
	ok "a full postgres_cluster with a migration validates" || check_fail "good config: $(cat "$W/out")"

# a misspelt subcommand is named, with a suggestion
if "$IAC" -no-color db statsu >"$W/out" 2>&1; then
	check_fail "iac db statsu accepted"
elif grep -qF "unknown subcommand 'db statsu'; did you mean 'status'?" "$W/out"; then
	ok "iac db statsu named"
else
	check_fail "iac db statsu: $(cat "$W/out")"
fi
finish
