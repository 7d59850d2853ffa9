#!/bin/bash
# iac status cache and iac cache invalidate against real servers on test-bed
# hosts: the figures iac prints per node (hits, misses, evictions, keys,
# clients, memory) are the ones Redis INFO and Memcached stats report;
# invalidation by pattern and by class removes exactly the matching keys on
# every Redis node and reports the counts; the prometheus-redis-exporter
# beside each node serves the same hit and miss counters; a Memcached class is invalidated by
# bumping its namespace key on the node the ring gives it; a pattern on
# Memcached is refused.
. "$(dirname "$0")/../ssh/lib.sh"
t_need redis-server redis-cli memcached jq curl prometheus-redis-exporter
bed_up 2

cat >"$WORK/main.lua" <<EOF
$(provider_block)
host "c1" { address = "$(addr 1)", labels = { role = "cache" } }
host "c2" { address = "$(addr 2)", labels = { role = "cache" } }
cache_cluster "sessions" {
  engine = "redis", hosts = hosts { role = "cache" }, per_host = 1, memory = "64mb", policy = "allkeys-lfu",
  classes = { session = { ttl = "30m", jitter = 0.1 }, catalog = { ttl = "6h", jitter = 0.2 } },
  exporter = { port = 9121 },
}
cache_cluster "pages" {
  engine = "memcached", hosts = hosts { role = "cache" }, per_host = 1, memory = "32mb", base_port = 11311,
  classes = { page = { ttl = "5m" } },
}
EOF
iac apply -auto-approve >"$WORK/a.out" 2>&1 || { cat "$WORK/a.out"; fail "apply"; }

rc() { on_host "$1" redis-cli -h "$(addr "$1")" -p 6379 "${@:2}"; }
mc() {   # N "COMMANDS": send memcached text commands to hN, print the replies
	on_host "$1" "exec 3<>/dev/tcp/$(addr "$1")/11311; printf '$2' >&3; timeout 1 cat <&3" || true
}
# node 1: 50 session, 30 catalog, 20 other keys; node 2: 7 session, 3 other
for i in $(seq 1 50); do echo "SET session:$i x"; done | rc 1 >/dev/null
for i in $(seq 1 30); do echo "SET catalog:$i x"; done | rc 1 >/dev/null
for i in $(seq 1 20); do echo "SET other:$i x"; done | rc 1 >/dev/null
for i in $(seq 1 7); do echo "SET session:$i x"; done | rc 2 >/dev/null
for i in $(seq 1 3); do echo "SET other:$i x"; done | rc 2 >/dev/null
# hits and misses: node 1 12 hits / 5 misses, node 2 4 / 9
for i in $(seq 1 12); do echo "GET session:$i"; done | rc 1 >/dev/null
for i in $(seq 1 5); do echo "GET nope:$i"; done | rc 1 >/dev/null
for i in $(seq 1 4); do echo "GET other:1"; done | rc 2 >/dev/null
for i in $(seq 1 9); do echo "GET nope:$i"; done | rc 2 >/dev/null
mc 1 'set a 0 0 1\r\nx\r\nset b 0 0 1\r\nx\r\nget a\r\nget a\r\nget zz\r\n' >/dev/null

iac status cache -json >"$WORK/st.json" 2>"$WORK/st.err" || { cat "$WORK/st.err"; fail "iac status cache"; }
info() { rc "$1" info all | tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'; }
for n in 1 2; do
	node=$(jq -c --arg a "$(addr $n)" '.clusters[] | select(.cluster == "sessions") | .nodes[] | select(.address == $a)' "$WORK/st.json")
	for f in hits:keyspace_hits misses:keyspace_misses evictions:evicted_keys; do
		got=$(jq ".${f%%:*}" <<<"$node")
		want=$(info $n "${f#*:}")
		[ "$got" = "$want" ] || fail "node $n ${f%%:*}: iac says $got, INFO says $want"
	done
	[ "$(jq .keys <<<"$node")" = "$(rc $n dbsize)" ] || fail "node $n keys: $(jq .keys <<<"$node") vs DBSIZE $(rc $n dbsize)"
	[ "$(jq '.memory > 100000 and .clients >= 1' <<<"$node")" = true ] || fail "node $n memory/clients: $node"
done
node=$(jq -c --arg a "$(addr 1)" '.clusters[] | select(.cluster == "sessions") | .nodes[] | select(.address == $a)' "$WORK/st.json")
[ "$(jq -c '[.hits, .misses, .hit_rate, .keys]' <<<"$node")" = "[12,5,0.7058823529411765,100]" ] ||
	fail "node 1 figures: $node"
stats=$(mc 1 'stats\r\n' | tr -d '\r')
mnode=$(jq -c --arg a "$(addr 1)" '.clusters[] | select(.cluster == "pages") | .nodes[] | select(.address == $a)' "$WORK/st.json")
for f in hits:get_hits misses:get_misses evictions:evictions keys:curr_items; do
	want=$(awk -v k="${f#*:}" '$2 == k { print $3 }' <<<"$stats")
	[ "$(jq ".${f%%:*}" <<<"$mnode")" = "$want" ] || fail "memcached ${f%%:*}: iac $(jq ".${f%%:*}" <<<"$mnode"), stats $want"
done
[ "$(jq -c '[.hits, .misses, .keys]' <<<"$mnode")" = "[2,1,2]" ] || fail "memcached figures: $mnode"
# prometheus-redis-exporter beside each node reports the same figures
for n in 1 2; do
	m=$(on_host $n curl -s "http://$(addr $n):9121/metrics")
	for f in keyspace_hits keyspace_misses; do
		got=$(awk -v k="redis_${f}_total" '$1 == k { print $2 }' <<<"$m")
		[ "$got" = "$(info $n $f)" ] || fail "exporter on h$n: redis_${f}_total $got, INFO $(info $n $f)"
	done
done
echo "ok: prometheus-redis-exporter per node serves redis_keyspace_hits_total / misses equal to INFO"
echo "ok: status figures equal INFO / stats (redis node 1: 12 hits, 5 misses, 70.6 %, 100 keys; memcached: 2/1, 2 items)"

# the human table, through the engine's `iac status PROVIDER`
iac status cache sessions >"$WORK/st.out" 2>&1 || { cat "$WORK/st.out"; fail "iac status cache sessions"; }
expect_in "$WORK/st.out" "cache 'sessions' (redis, 2 nodes)"
expect_in "$WORK/st.out" "HIT RATE"
expect_in "$WORK/st.out" "70.6%"
expect_not_in "$WORK/st.out" "pages"
cat "$WORK/st.out"

# invalidation by pattern and by class
iac cache invalidate sessions 'session:*' -json >"$WORK/inv1.json" 2>&1 || { cat "$WORK/inv1.json"; fail "invalidate pattern"; }
[ "$(jq -c '[.nodes[] | .removed] | sort' "$WORK/inv1.json")" = "[7,50]" ] || fail "pattern counts: $(cat "$WORK/inv1.json")"
[ "$(rc 1 dbsize)" = 50 ] && [ "$(rc 2 dbsize)" = 3 ] || fail "after pattern: $(rc 1 dbsize) / $(rc 2 dbsize) keys"
iac cache invalidate sessions -class catalog >"$WORK/inv2.out" 2>&1 || { cat "$WORK/inv2.out"; fail "invalidate class"; }
expect_in "$WORK/inv2.out" "30 keys matching 'catalog:*' removed on 2 nodes"
[ "$(rc 1 dbsize)" = 20 ] && [ -z "$(rc 1 --scan --pattern 'catalog:*')" ] || fail "catalog keys left"
[ "$(rc 1 get other:5)" = x ] || fail "an unrelated key was removed"
cat "$WORK/inv2.out"
iac cache invalidate sessions -class nope >"$WORK/inv3.out" 2>&1 && fail "unknown class accepted"
expect_in "$WORK/inv3.out" "has no class 'nope'"
echo "ok: invalidation by pattern (50 + 7) and class (30), counts per node"

# memcached: a class by namespace bump; a pattern refused
iac cache invalidate pages -class page -json >"$WORK/m1.json" 2>&1 || { cat "$WORK/m1.json"; fail "memcached class"; }
v1=$(jq '.nodes[0].namespace.value' "$WORK/m1.json")
owner=$(jq -r '.nodes[0].address' "$WORK/m1.json")
iac cache invalidate pages -class page -json >"$WORK/m2.json" 2>&1 || fail "memcached class again"
v2=$(jq '.nodes[0].namespace.value' "$WORK/m2.json")
[ "$v2" = $((v1 + 1)) ] || fail "namespace $v1 -> $v2"
n=1; [ "$owner" = "$(addr 2)" ] && n=2
mc $n 'get iac:ns:page\r\n' | tr -d '\r' | grep -qx "$v2" || fail "namespace key not on the ring's node $owner"
iac cache invalidate pages 'page:*' >"$WORK/m3.out" 2>&1 && fail "memcached pattern accepted"
expect_in "$WORK/m3.out" "memcached cannot remove keys by pattern"
echo "ok: memcached namespace $v1 -> $v2 on $owner; pattern refused"

iac destroy -auto-approve >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy"; }
echo ok
