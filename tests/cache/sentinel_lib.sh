# tests/cache/sentinel_lib.sh: the replicas = 1 setup shared by
# test_sentinel.sh and test_follow.sh (sourced after ../ssh/lib.sh, not run):
# 4 test-bed hosts, c1-c3 cache (3 primaries, a replica of each on the next
# host at port 7379, 3 Sentinels), a1 app (twemproxy on 22121, the ring in
# /etc/app/cache-ring.json).
#
#   sentinel_setup        write main.lua, apply, wait for linked replicas and
#                         sentinels that know each other
#   rcli N PORT ARGS...   redis-cli against host hN
#   wait_for SECONDS CMD  until CMD succeeds
#   proxy_set_keys        SET k:0 .. k:2999 through the proxy
#   proxy_read_keys       how many of k:0 .. k:2999 the proxy reads back

rcli() { on_host "$1" redis-cli -h "$(addr "$1")" -p "$2" "${@:3}"; }
wait_for() {   # SECONDS CMD...: until CMD succeeds
	local i
	for i in $(seq 1 $(($1 * 10))); do "${@:2}" && return 0; sleep 0.1; done
	return 1
}

sentinel_setup() {
	bed_up 4
	cat >"$WORK/main.lua" <<EOF
$(provider_block)
host "c1" { address = "$(addr 1)", labels = { role = "cache" } }
host "c2" { address = "$(addr 2)", labels = { role = "cache" } }
host "c3" { address = "$(addr 3)", labels = { role = "cache" } }
host "a1" { address = "$(addr 4)", labels = { role = "app" } }
cache_cluster "sessions" {
  engine = "redis", hosts = hosts { role = "cache" }, per_host = 1, memory = "64mb", replicas = 1,
  sentinel = { down_after_ms = 1000 },
  proxy = { hosts = hosts { role = "app" }, port = 22121 },
  publish = { file = { hosts = hosts { role = "app" }, path = "/etc/app/cache-ring.json" } },
}
EOF
	iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply"; }
	# every Sentinel knows every replica from its first second (iac writes
	# them as known replicas), not only after it next asks the primary
	local n m
	for n in 1 2 3; do
		for m in 1 2 3; do
			rcli $n 26379 sentinel replicas sessions-c$m-1 | tr -d '\r' | grep -qx "$(addr $((m % 3 + 1))):7379" ||
				fail "sentinel on h$n does not know the replica of sessions-c$m-1 right after the apply"
		done
	done
	linked() { rcli "$1" 7379 info replication | tr -d '\r' | grep -q '^master_link_status:up'; }
	for n in 1 2 3; do wait_for 15 linked $n || fail "replica on h$n not linked to its primary"; done
	known() { [ "$(rcli 1 26379 sentinel master sessions-c1-1 | tr -d '\r' | grep -A1 '^num-other-sentinels$' | tail -1)" = 2 ]; }
	wait_for 20 known || fail "the sentinels did not find each other"
	echo "ok: 3 primaries, 3 linked replicas (next host, port 7379), 3 sentinels"
}

proxy_set_keys() {
	on_host 4 "$T_PY" - "$(addr 4)" <<'PY' || fail "SET through twemproxy"
import socket, sys
s = socket.create_connection((sys.argv[1], 22121)); f = s.makefile("rb")
for b in range(0, 3000, 250):
    s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\nk:%d\r\n$1\r\n1\r\n" % (len(b"k:%d" % i), i) for i in range(b, b + 250)))
    for _ in range(250):
        if f.readline() != b"+OK\r\n": sys.exit("bad reply")
PY
}

proxy_read_keys() {
	on_host 4 "$T_PY" - "$(addr 4)" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], 22121)); f = s.makefile("rb")
n = 0
for i in range(3000):
    k = b"k:%d" % i
    s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
    if f.readline() == b"$1\r\n":
        f.readline(); n += 1
print(n)
PY
}
