#!/bin/bash
# Warming on join: a 2-node Redis cache_cluster holding 20,000 keys (half
# with a 1 h TTL) grows to 4 nodes with warm = { on_join = true }. During the
# apply, before the ring is published, iac copies exactly the keys whose
# owner changes to their new node (DUMP / RESTORE): the new nodes hold
# exactly the moving keys, each with its value and its remaining TTL, and
# the keys that stay are not copied anywhere. A Memcached cluster grows beside
# it: the new nodes hold exactly its moving keys with value, flags and expiry
# (lru_crawler metadump, get / set). Then a planned removal back to
# 2 nodes: the leaving nodes' keys reach their next owner before they stop.
. "$(dirname "$0")/../ssh/lib.sh"
t_need redis-server redis-cli memcached jq
bed_up 2

write_config() {   # PER_HOST
	cat >"$WORK/main.lua" <<EOF
$(provider_block)
host "c1" { address = "$(addr 1)", labels = { role = "cache" } }
host "c2" { address = "$(addr 2)", labels = { role = "cache" } }
cache_cluster "sessions" {
  engine = "redis", hosts = hosts { role = "cache" }, per_host = $1, memory = "64mb", policy = "allkeys-lfu",
  warm = { on_join = true, max_rate = "200000/s", max_time = "60s" },
  publish = { file = { hosts = hosts { role = "cache" }, path = "/etc/app/cache-ring.json" } },
}
cache_cluster "pages" {
  engine = "memcached", hosts = hosts { role = "cache" }, per_host = $1, memory = "32mb", base_port = 11311,
  warm = { on_join = true },
}
EOF
}
# memcached helper run in the controller namespace (it reaches every host):
#   mc.py set ADDR PORT EXP < keys     flags 42, value "p<key>", absolute expiry EXP
#   mc.py dump ADDR PORT               "key flags exp value" per item
cat >"$WORK/mc.py" <<'PY'
import socket, sys, urllib.parse
op, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.create_connection((addr, port)); f = s.makefile("rb")
if op == "set":
    keys = [l.strip() for l in sys.stdin if l.strip()]
    s.sendall(b"".join(b"set %s 42 %s %d\r\np%s\r\n" % (k.encode(), sys.argv[4].encode(), len(k) + 1, k.encode()) for k in keys))
    for k in keys:
        if f.readline() != b"STORED\r\n": sys.exit("set failed")
else:
    s.sendall(b"lru_crawler metadump all\r\n")
    items = []
    for line in f:
        line = line.decode().strip()
        if line == "END": break
        fields = dict(p.split("=", 1) for p in line.split(" "))
        items.append((urllib.parse.unquote(fields["key"]), fields["exp"]))
    for k, exp in items:
        s.sendall(b"get %s\r\n" % k.encode())
        hdr = f.readline().decode().split()
        if hdr[0] != "VALUE": continue
        val = f.read(int(hdr[3]) + 2)[:-2].decode(); f.readline()
        print(k, hdr[2], exp, val)
PY
mcpy() { bash "$TESTBED" exec "$BED" "$T_PY" "$WORK/mc.py" "$@"; }
write_config 1
iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply"; }

N=20000
seq 0 $((N - 1)) | sed 's/^/k:/' >"$WORK/keys"
# node names for iac cache locate: oN = hN's old node (6379), nN = its new one (6380)
nodes2="-node o1=$(addr 1):6379 -node o2=$(addr 2):6379"
nodes4="$nodes2 -node n1=$(addr 1):6380 -node n2=$(addr 2):6380"
"$IAC" cache locate $nodes2 <"$WORK/keys" >"$WORK/place2"
"$IAC" cache locate $nodes4 <"$WORK/keys" >"$WORK/place4"
# load each key on its node: even keys with EX 3600, odd ones without TTL
for n in 1 2; do
	awk -F'\t' -v a="o$n" '$1 == a { split($2, p, ":"); if (p[2] % 2 == 0) print "SET " $2 " v" p[2] " EX 3600"; else print "SET " $2 " v" p[2] }' \
		"$WORK/place2" | on_host $n redis-cli -h "$(addr $n)" -p 6379 >/dev/null
done
[ $(( $(on_host 1 redis-cli -h "$(addr 1)" dbsize) + $(on_host 2 redis-cli -h "$(addr 2)" dbsize) )) = $N ] ||
	fail "keys not loaded"

# pages (memcached): 5,000 keys where the 2-node ring (ADDR:11311) puts them
EXP=$(( $(date +%s) + 3600 ))
seq 0 4999 | sed 's/^/page:/' >"$WORK/pkeys"
pn2="-node o1=$(addr 1):11311 -node o2=$(addr 2):11311"
pn4="$pn2 -node n1=$(addr 1):11312 -node n2=$(addr 2):11312"
"$IAC" cache locate $pn2 <"$WORK/pkeys" >"$WORK/pplace2"
"$IAC" cache locate $pn4 <"$WORK/pkeys" >"$WORK/pplace4"
for n in 1 2; do
	awk -F'\t' -v a="o$n" '$1 == a { print $2 }' "$WORK/pplace2" | mcpy set "$(addr $n)" 11311 "$EXP" || fail "memcached load"
done

write_config 2
t0=$(date +%s%N)
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply (grow with warming)"; }
t1=$(date +%s%N)
iac state show cache.cluster.sessions >"$WORK/state.out" 2>&1
grep -A8 warmed "$WORK/state.out"

# the moving keys: owner under 4 nodes differs from the owner under 2
paste "$WORK/place2" "$WORK/place4" | awk -F'\t' '$1 != $3 { print $3 "\t" $2 }' >"$WORK/moving"
moving=$(wc -l <"$WORK/moving")
copied=0
for n in 1 2; do
	a="n$n"
	got=$(on_host $n redis-cli -h "$(addr $n)" -p 6380 dbsize)
	want=$(awk -F'\t' -v a="$a" '$1 == a' "$WORK/moving" | wc -l)
	echo "new node $(addr $n):6380 holds $got keys; $want keys move to it"
	[ "$got" = "$want" ] || fail "new node $(addr $n):6380 holds $got keys, $want move to it"
	copied=$((copied + got))
	# each moving key is there with its value and TTL
	awk -F'\t' -v a="$a" '$1 == a { print "GET " $2; print "TTL " $2 }' "$WORK/moving" |
		on_host $n redis-cli -h "$(addr $n)" -p 6380 >"$WORK/check$n"
	awk -F'\t' -v a="$a" '$1 == a { print $2 }' "$WORK/moving" >"$WORK/mk$n"
	paste - - <"$WORK/check$n" | paste "$WORK/mk$n" - | awk -F'\t' '
		{ split($1, p, ":"); v = "v" p[2]
		  if ($2 != v) { bad++; if (bad < 4) print "value of " $1 ": " $2 > "/dev/stderr" }
		  if (p[2] % 2 == 0 && ($3 < 3500 || $3 > 3600)) { bad++; if (bad < 4) print "ttl of " $1 ": " $3 > "/dev/stderr" }
		  if (p[2] % 2 == 1 && $3 != -1) { bad++; if (bad < 4) print "ttl of " $1 ": " $3 > "/dev/stderr" } }
		END { exit bad > 0 }' || fail "moved keys on $a lack their value or TTL"
done
pct=$(awk -v m="$moving" -v n="$N" 'BEGIN { printf "%.1f", 100 * m / n }')
echo "moving keys: $moving of $N ($pct %); copied: $copied; apply with warming took $(( (t1 - t0) / 1000000 )) ms"
[ "$copied" = "$moving" ] || fail "copied $copied keys, $moving move"
grep -q '"copied": *'"$moving" "$WORK/state.out" || grep -q "copied *= *$moving" "$WORK/state.out" ||
	{ cat "$WORK/state.out"; fail "the warming report in state does not say $moving copied"; }
[ "$(on_host 1 "jq '.nodes | length' /etc/app/cache-ring.json")" = 4 ] || fail "ring not published after warming"
# memcached: the new nodes hold exactly the moving keys, same value, flags, expiry
paste "$WORK/pplace2" "$WORK/pplace4" | awk -F'\t' '$1 != $3 { print $3 " " $2 " 42 '"$EXP"' p" $2 }' | sort >"$WORK/pwant"
for n in 1 2; do mcpy dump "$(addr $n)" 11312 | sed "s/^/n$n /"; done | sort >"$WORK/pgot"
pm=$(wc -l <"$WORK/pwant")
cmp -s "$WORK/pwant" "$WORK/pgot" || { diff "$WORK/pwant" "$WORK/pgot" | head -5; fail "memcached: the new nodes do not hold exactly the $pm moving keys with flags and expiry"; }
echo "ok: memcached warming copied exactly the $pm moving keys of 5000 (value, flags 42, expiry)"
echo "ok: warming copied exactly the $moving moving keys with their values and TTLs before the ring changed"

# A planned removal: back to 2 nodes. 5,000 new keys written where the
# 4-node ring puts them (30 min TTL); those on the leaving nodes must be on
# their next owner, with value and TTL, before the leaving nodes stop.
seq 0 4999 | sed 's/^/new:/' >"$WORK/nkeys"
"$IAC" cache locate $nodes4 <"$WORK/nkeys" >"$WORK/nplace4"
"$IAC" cache locate $nodes2 <"$WORK/nkeys" >"$WORK/nplace2"
for n in 1 2; do
	for o in o n; do
		port=6379; [ $o = n ] && port=6380
		awk -F'\t' -v a="$o$n" '$1 == a { split($2, p, ":"); print "SET " $2 " w" p[2] " EX 1800" }' "$WORK/nplace4" |
			on_host $n redis-cli -h "$(addr $n)" -p $port >/dev/null
	done
done
write_config 1
iac apply -auto-approve >"$WORK/a3.out" 2>&1 || { cat "$WORK/a3.out"; fail "apply (shrink with warming)"; }
iac state show cache.cluster.sessions >"$WORK/state2.out" 2>&1
grep warmed "$WORK/state2.out"
on_host 1 redis-cli -h "$(addr 1)" -p 6380 ping >/dev/null 2>&1 && fail "a leaving node still runs"
# the keys that left: on their 2-node owner now
paste "$WORK/nplace4" "$WORK/nplace2" | awk -F'\t' '$1 ~ /^n/ { print $3 "\t" $2 }' >"$WORK/left"
left=$(wc -l <"$WORK/left")
for n in 1 2; do
	awk -F'\t' -v a="o$n" '$1 == a { print "GET " $2; print "TTL " $2 }' "$WORK/left" |
		on_host $n redis-cli -h "$(addr $n)" -p 6379 >"$WORK/lcheck$n"
	awk -F'\t' -v a="o$n" '$1 == a { print $2 }' "$WORK/left" >"$WORK/lk$n"
	paste - - <"$WORK/lcheck$n" | paste "$WORK/lk$n" - | awk -F'\t' '
		{ split($1, p, ":"); if ($2 != "w" p[2] || $3 < 1700 || $3 > 1800) { bad++; if (bad < 4) print $1 ": " $2 " ttl " $3 > "/dev/stderr" } }
		END { exit bad > 0 }' || fail "keys of the leaving nodes missing on h$n's remaining node"
done
echo "ok: a planned removal copied the $left keys of the leaving nodes to their next owner before they stopped"
iac destroy -auto-approve >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy"; }
echo ok
