#!/bin/bash
# cache_cluster on test-bed hosts: 4 Redis nodes (2 per host) with the
# memory and policy asked for, a twemproxy on the app host (its config
# accepted by nutcracker -t), the ring published there as JSON. 5,000 keys
# SET through the proxy sit where a client reading only the published
# ring (a few lines of Python) says they are. A no-op plan is empty; a
# killed node is planned back; a config edited by hand shows as a diff;
# growing to 6 nodes shows in the plan the share of keys that moves and
# which nodes give it up; a ring file and a proxy config edited by hand are
# planned back; a memcached cluster runs beside it; destroy stops
# everything.
. "$(dirname "$0")/../ssh/lib.sh"
t_need redis-server redis-cli memcached nutcracker jq
bed_up 3

write_config() {   # PER_HOST
	cat >"$WORK/main.lua" <<EOF
$(provider_block)
host "c1" { address = "$(addr 1)", labels = { role = "cache" } }
host "c2" { address = "$(addr 2)", labels = { role = "cache" } }
host "a1" { address = "$(addr 3)", labels = { role = "app" } }
cache_cluster "sessions" {
  engine = "redis", hosts = hosts { role = "cache" }, per_host = $1, memory = "256mb", policy = "allkeys-lfu",
  ring = { hash = "ketama", vnodes = 160 },
  proxy = { hosts = hosts { role = "app" }, port = 22121 },
  publish = { file = { hosts = hosts { role = "app" }, path = "/etc/app/cache-ring.json" } },
  classes = { session = { ttl = "30m", jitter = 0.1 } },
}
cache_cluster "pages" {
  engine = "memcached", hosts = hosts { role = "cache" }, per_host = 1, memory = "32mb", base_port = 11311,
  publish = { file = { hosts = hosts { role = "app" }, path = "/etc/app/pages-ring.json" } },
}
EOF
}

write_config 2
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply"; }
for n in 1 2; do
	for p in 6379 6380; do
		[ "$(on_host $n redis-cli -h "$(addr $n)" -p $p ping)" = PONG ] || fail "no redis on h$n:$p"
	done
	[ "$(on_host $n redis-cli -h "$(addr $n)" -p 6379 config get maxmemory-policy | tail -1)" = allkeys-lfu ] ||
		fail "policy not applied on h$n"
	[ "$(on_host $n redis-cli -h "$(addr $n)" -p 6380 config get maxmemory | tail -1)" = 268435456 ] ||
		fail "memory not applied on h$n"
	on_host $n "exec 3<>/dev/tcp/$(addr $n)/11311; printf 'version\r\n' >&3; head -1 <&3" | grep -q '^VERSION' ||
		fail "no memcached on h$n:11311"
done
echo "ok: 4 redis nodes with 256mb allkeys-lfu, 2 memcached nodes"

ring=$(on_host 3 cat /etc/app/cache-ring.json)
[ "$(jq -r .format <<<"$ring")" = iac-cache-ring/1 ] || fail "ring format: $ring"
[ "$(jq '.nodes | length' <<<"$ring")" = 4 ] || fail "ring nodes"
[ "$(jq '.continuum | length' <<<"$ring")" = 640 ] || fail "continuum size"
[ "$(jq -r '.classes.session.ttl' <<<"$ring")" = 30m ] || fail "classes not published"
[ "$(on_host 3 "jq '.nodes | length' /etc/app/pages-ring.json")" = 2 ] || fail "memcached ring"
on_host 3 nutcracker -t -c /etc/iac-cache/sessions-twemproxy.yml >/dev/null 2>&1 || fail "proxy config refused"
echo "ok: ring published (4 nodes, 640 points, classes), proxy config valid"

# keys through the proxy land where the published ring says
on_host 3 "$T_PY" - "$(addr 3)" <<'PY' || fail "SET through twemproxy"
import socket, sys
s = socket.create_connection((sys.argv[1], 22121)); f = s.makefile("rb")
keys = ["user:%d" % i for i in range(5000)]
for i in range(0, len(keys), 250):
    batch = keys[i:i + 250]
    s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(k), k.encode()) for k in batch))
    for k in batch:
        l = f.readline()
        if l != b"+OK\r\n": sys.exit("bad reply %r" % l)
PY
: >"$WORK/held"
for n in 1 2; do
	for p in 6379 6380; do
		on_host $n redis-cli -h "$(addr $n)" -p $p --scan | sed "s/^/$(addr $n):$p /" >>"$WORK/held"
	done
done
sort -o "$WORK/held" "$WORK/held"
# a client that knows only the published document: md5 of the key, first
# point >= it, wrapping
jq -c . <<<"$ring" >"$WORK/ring.json"
"$T_PY" - "$WORK/ring.json" <<'PY' | sort >"$WORK/want"
import bisect, hashlib, json, struct, sys
doc = json.load(open(sys.argv[1]))
vals = [p[0] for p in doc["continuum"]]
for i in range(5000):
    k = "user:%d" % i
    h = struct.unpack("<I", hashlib.md5(k.encode()).digest()[:4])[0]
    j = bisect.bisect_left(vals, h)
    n = doc["nodes"][doc["continuum"][j if j < len(vals) else 0][1]]
    print("%s:%d %s" % (n["address"], n["port"], k))
PY
agree=$(comm -12 "$WORK/held" "$WORK/want" | wc -l)
echo "published ring vs twemproxy: $agree of 5000 keys agree"
[ "$agree" = 5000 ] || fail "the published ring and the proxy disagree on $((5000 - agree)) keys"

iac plan -detailed-exitcode >"$WORK/p0.out" 2>&1 || { cat "$WORK/p0.out"; fail "no-op plan not empty"; }
echo "ok: no-op plan"

# a killed node is planned back; a hand edit shows as a diff
on_host 1 'kill -9 $(cat /run/iac-cache-sessions-c1-2.pid)'
on_host 2 "sed -i 's/^maxmemory 256mb/maxmemory 1mb/' /etc/iac-cache/sessions-c2-1.conf"
on_host 3 "echo '{}' > /etc/app/cache-ring.json; sed -i 's/timeout: 1000/timeout: 5/' /etc/iac-cache/sessions-twemproxy.yml"
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1
[ $? = 2 ] || { cat "$WORK/p1.out"; fail "plan missed the drift"; }
expect_in "$WORK/p1.out" "ssh.service.sessions_c1_2 will be created"
expect_in "$WORK/p1.out" "(not running)"
expect_in "$WORK/p1.out" "maxmemory 1mb"
expect_in "$WORK/p1.out" "ssh.file.sessions_c2_1_conf"
expect_in "$WORK/p1.out" "cache.ring.sessions_ring_a1 will be updated"
expect_in "$WORK/p1.out" "cache.proxy.sessions_proxy_a1_conf will be updated"
expect_in "$WORK/p1.out" "(changed outside iac)"
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply after drift"; }
[ "$(on_host 1 redis-cli -h "$(addr 1)" -p 6380 ping)" = PONG ] || fail "killed node not back"
[ "$(on_host 2 redis-cli -h "$(addr 2)" -p 6379 config get maxmemory | tail -1)" = 268435456 ] ||
	fail "hand-edited node not restored"
[ "$(on_host 3 "jq '.nodes | length' /etc/app/cache-ring.json")" = 4 ] || fail "ring file not restored"
on_host 3 grep -q "timeout: 1000" /etc/iac-cache/sessions-twemproxy.yml || fail "proxy config not restored"
echo "ok: killed node planned back, hand edits (node config, ring file, proxy config) shown and undone"

# growing: the plan says what share of the keys moves and from whom
want=$("$IAC" cache ring $(for n in 1 2; do for p in 6379 6380; do echo "-node x$n$p=$(addr $n):$p"; done; done) \
	-node "n5=$(addr 1):6381" -node "n6=$(addr 2):6381" | jq '.nodes[4].share + .nodes[5].share')
write_config 3
iac plan >"$WORK/p2.out" 2>&1 || { cat "$WORK/p2.out"; fail "plan (grow)"; }
expect_in "$WORK/p2.out" "cache 'sessions': 4 -> 6 nodes moves"
expect_in "$WORK/p2.out" "given up by sessions-c1-1"
expect_in "$WORK/p2.out" "taken by sessions-c1-3"
pct=$(awk -v s="$want" 'BEGIN { printf "%.1f", s * 100 }')
expect_in "$WORK/p2.out" "moves $pct% of the keys"
grep -F "cache 'sessions'" "$WORK/p2.out"
iac apply -auto-approve >"$WORK/a3.out" 2>&1 || { cat "$WORK/a3.out"; fail "apply (grow)"; }
[ "$(on_host 3 "jq '.nodes | length' /etc/app/cache-ring.json")" = 6 ] || fail "ring not grown"
echo "ok: growing to 6 nodes planned with its movement ($pct %) and applied"

iac destroy -auto-approve >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy"; }
on_host 1 redis-cli -h "$(addr 1)" -p 6379 ping >/dev/null 2>&1 && fail "redis still running after destroy"
on_host 3 test -e /etc/app/cache-ring.json && fail "ring file left"
echo ok
