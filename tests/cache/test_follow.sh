#!/bin/bash
# iac cache follow: the ring and proxies follow a Sentinel failover without
# anyone running apply. replicas = 1 on the test bed (3 primaries, a replica
# of each on the next host, 3 Sentinels, twemproxy + the ring on the app
# host); `iac cache follow sessions -once` runs in the background; a primary
# is killed with -9 while a client on the app host GETs through the proxy.
# Sentinel promotes, the follower hears +switch-master and applies the ring
# and proxy: the ring file names the new primary, the proxy config too, all
# 3,000 keys are read through the proxy afterwards, and the plan is empty.
# Prints kill -> promotion -> followed, and the GETs that failed meanwhile.
. "$(dirname "$0")/../ssh/lib.sh"
t_need redis-server redis-cli nutcracker jq
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
rcli() { on_host "$1" redis-cli -h "$(addr "$1")" -p "$2" "${@:3}"; }
wait_for() {   # SECONDS CMD...: until CMD succeeds
	local i
	for i in $(seq 1 $(($1 * 10))); do "${@:2}" && return 0; sleep 0.1; done
	return 1
}
linked() { rcli "$1" 7379 info replication | tr -d '\r' | grep -q '^master_link_status:up'; }
for n in 1 2 3; do wait_for 15 linked $n || fail "replica on h$n not linked to its primary"; done
known() { [ "$(rcli 1 26379 sentinel master sessions-c1-1 | tr -d '\r' | grep -A1 '^num-other-sentinels$' | tail -1)" = 2 ]; }
wait_for 20 known || fail "the sentinels did not find each other"
on_host 4 "$T_PY" - "$(addr 4)" <<'PY' || fail "SET through twemproxy"
import socket, sys
s = socket.create_connection((sys.argv[1], 22121)); f = s.makefile("rb")
for b in range(0, 3000, 250):
    s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\nk:%d\r\n$1\r\n1\r\n" % (len(b"k:%d" % i), i) for i in range(b, b + 250)))
    for _ in range(250):
        if f.readline() != b"+OK\r\n": sys.exit("bad reply")
PY
echo "ok: 3 primaries, 3 linked replicas, 3 sentinels, 3000 keys set through the proxy"

(cd "$WORK" && exec bash "$TESTBED" exec "$BED" "$IAC" -no-color cache follow sessions -once -timeout 120s) \
	>"$WORK/follow.out" 2>&1 &
FPID=$!
subscribed() { grep -q "subscribed to +switch-master on 3 of 3 sentinels" "$WORK/follow.out"; }
wait_for 20 subscribed || { cat "$WORK/follow.out"; fail "the follower did not subscribe"; }

# a client on the app host: GETs through the proxy for 25 s, reconnecting
# after an error; prints "ok failed"
on_host 4 "$T_PY" - "$(addr 4)" >"$WORK/load.out" 2>&1 <<'PY' &
import socket, sys, time
ok = bad = 0; end = time.time() + 25; s = f = None; i = 0
while time.time() < end:
    try:
        if s is None:
            s = socket.create_connection((sys.argv[1], 22121), timeout=1); f = s.makefile("rb")
        k = b"k:%d" % (i % 3000); i += 1
        s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
        line = f.readline()
        if line == b"$1\r\n":
            f.readline(); ok += 1
        else:
            bad += 1
            if not line: raise OSError("closed")
    except OSError:
        bad += 1; s = None; time.sleep(0.01)
print(ok, bad)
PY
LPID=$!
sleep 2
t0=$(date +%s%N)
on_host 1 'kill -9 $(cat /run/iac-cache-sessions-c1-1.pid)'
wait "$FPID"; frc=$?
t1=$(date +%s%N)
cat "$WORK/follow.out"
[ "$frc" = 0 ] || fail "the follower exited $frc"
grep -q "sessions-c1-1 now at $(addr 2):7379" "$WORK/follow.out" || fail "the follower did not hear the promotion"
[ "$(on_host 4 "jq -r '.nodes[0].address, .nodes[0].port' /etc/app/cache-ring.json" | tr '\n' ' ')" = "$(addr 2) 7379 " ] ||
	fail "ring still names the old primary"
on_host 4 "grep -q '$(addr 2):7379:1 sessions-c1-1' /etc/iac-cache/sessions-twemproxy.yml" || fail "proxy config did not follow"
wait "$LPID"
read -r gets_ok gets_bad <"$WORK/load.out"
got=$(on_host 4 "$T_PY" - "$(addr 4)" <<'PY'
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
)
[ "$got" = 3000 ] || fail "after the failover $got of 3000 keys read through the proxy"
sleep 1
iac plan -detailed-exitcode >"$WORK/p2.out" 2>&1 || { cat "$WORK/p2.out"; fail "plan after the follow not empty"; }
after=$(sed -n 's/.*followed \([0-9]*\) ms after.*/\1/p' "$WORK/follow.out")
printf 'kill -9 -> ring and proxy followed (no apply by hand): %d ms, of which announcement -> followed %s ms; GETs through the proxy meanwhile: %s ok, %s failed\n' \
	$(( (t1 - t0) / 1000000 )) "$after" "$gets_ok" "$gets_bad"
echo "ok: failover followed by iac cache follow; 3000 of 3000 keys read through the proxy; plan empty"
