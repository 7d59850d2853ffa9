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
. "$(dirname "$0")/sentinel_lib.sh"
sentinel_setup
proxy_set_keys
echo "ok: 3000 keys set through the proxy"

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
if [ "$frc" != 0 ]; then   # what the Sentinels saw, to tell why none promoted
	for n in 1 2 3; do echo "--- sentinel on h$n"; on_host $n 'grep -E "slave|sdown|odown|tilt|monitor" /var/log/iac-cache/sessions-sentinel-*.log | head -n 40'; done
	fail "the follower exited $frc"
fi
grep -q "sessions-c1-1 now at $(addr 2):7379" "$WORK/follow.out" || fail "the follower did not hear the promotion"
[ "$(on_host 4 "jq -r '.nodes[0].address, .nodes[0].port' /etc/app/cache-ring.json" | tr '\n' ' ')" = "$(addr 2) 7379 " ] ||
	fail "ring still names the old primary"
on_host 4 "grep -q '$(addr 2):7379:1 sessions-c1-1' /etc/iac-cache/sessions-twemproxy.yml" || fail "proxy config did not follow"
wait "$LPID"
read -r gets_ok gets_bad <"$WORK/load.out"
got=$(proxy_read_keys)
[ "$got" = 3000 ] || fail "after the failover $got of 3000 keys read through the proxy"
sleep 1
iac plan -detailed-exitcode >"$WORK/p2.out" 2>&1 || { cat "$WORK/p2.out"; fail "plan after the follow not empty"; }
after=$(sed -n 's/.*followed \([0-9]*\) ms after.*/\1/p' "$WORK/follow.out")
printf 'kill -9 -> ring and proxy followed (no apply by hand): %d ms, of which announcement -> followed %s ms; GETs through the proxy meanwhile: %s ok, %s failed\n' \
	$(( (t1 - t0) / 1000000 )) "$after" "$gets_ok" "$gets_bad"
echo "ok: failover followed by iac cache follow; 3000 of 3000 keys read through the proxy; plan empty"
