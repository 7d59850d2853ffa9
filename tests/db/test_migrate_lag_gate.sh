#!/bin/bash
# A deployment gate on replication lag (lag_gate, db.lag_gate): a two-member
# Patroni cluster (h1, h2; HAProxy on h4) and a blue/green deployment on h3
# that depends on the gate. v1 goes out while the replica keeps up; with the
# replica's WAL receiver frozen (SIGSTOP) and 4 MB written, v2 is held: the
# gate fails after its timeout naming the replica and its lag, the
# deployment is skipped and v1 stays live; once the replica catches up, v2
# goes out.
. "$(dirname "$0")/lib.sh"
DB_MEMBERS=2 db_up
H3=$(addr 3)
cat >>"$WORK/main.lua" <<LUA
variable "version" { default = "v1" }
local app = host "h3" { address = "$H3", labels = { role = "app" } }
local pool = app_pool "web" {
  hosts = { app }, colours = "ports", base_port = 8001, green_offset = 100,
  start = "mkdir -p /srv/g/{name} && echo {version} > /srv/g/{name}/health && cd /srv/g/{name} && setsid -f sh -c 'echo \$\$ > /srv/g/{name}.pid; exec python3 -m http.server --bind {address} {port}' </dev/null >/dev/null 2>&1",
  pidfile = "/srv/g/{name}.pid",
}
local lb = haproxy "lb" { host = app, bind = "0.0.0.0:80", pool = pool,
  health = { path = "/health", interval = "100ms", rise = 1, fall = 2 } }
local gate = lag_gate "main" { db = db, version = var.version, max_lag = "1MB", timeout = "4s" }
deployment "web" {
  version = var.version, pool = pool, lb = lb, depends_on = { gate },
  health = { path = "/health", expect = 200, interval = "200ms", healthy = 2, timeout = "20s" },
}
LUA
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply v1"; }
expect_in "$WORK/a1.out" "db.lag_gate.main: replication lag within limits (1 replicas"
expect_in "$WORK/a1.out" "v1 is live"

leader=$(leader_name) || fail "no leader"
rep=1
[ "$leader" = h1 ] && rep=2
for i in $(seq 50); do
	wr=$(psql_at "$(addr $rep)" 5432 "select pid from pg_stat_wal_receiver" 2>/dev/null)
	[ -n "$wr" ] && break
	sleep 0.2
done
[ -n "$wr" ] || fail "no WAL receiver on h$rep"
on_host "$rep" "kill -STOP $wr"
psql_at "$LB" 5432 "create table filler (v text); insert into filler select repeat('x', 400) from generate_series(1, 10000)" >/dev/null
if iac apply -auto-approve -var version=v2 >"$WORK/a2.out" 2>&1; then
	on_host "$rep" "kill -CONT $wr"
	cat "$WORK/a2.out"
	fail "v2 went out with a lagging replica"
fi
on_host "$rep" "kill -CONT $wr"
expect_in "$WORK/a2.out" "replication lag gate of cluster 'main': replica 'h$rep' is"
expect_in "$WORK/a2.out" "deploy.blue_green.web: skipped"
expect_not_in "$WORK/a2.out" "starting green at v2"
ok "v2 held while h$rep lagged: $(grep -o "replica 'h$rep' is [0-9]* bytes" "$WORK/a2.out" | head -1)"

for i in $(seq 50); do
	lag=$(psql_at "$LB" 5432 "select coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint from pg_stat_replication")
	[ "${lag:-9999999}" -lt 1048576 ] && break
	sleep 0.2
done
iac apply -auto-approve -var version=v2 >"$WORK/a3.out" 2>&1 || { cat "$WORK/a3.out"; fail "apply v2 after the replica caught up"; }
expect_in "$WORK/a3.out" "v2 is live"
iac plan -detailed-exitcode -var version=v2 >"$WORK/p.out" 2>&1 || { cat "$WORK/p.out"; fail "plan after v2 is not quiet"; }
finish
