#!/bin/bash
# plans/shop on the test bed (h1 HAProxy, h2-h3 app hosts with twemproxy,
# h4-h5 Redis), applied as shipped: catalog pages go through both cache
# levels. Level 1 (HAProxy's cache) serves repeated pages; a URI it has not
# seen reaches the app, whose read-through level 2 (Redis via twemproxy)
# hits. `iac status cache catalog` reports both levels together, and its
# figures are what HAProxy (show stat cache_lookups / cache_hits) and the
# Redis nodes (INFO keyspace_hits / keyspace_misses) say. A release (v2)
# serves v2 pages at once: level 1 is keyed by colour and emptied by the
# release, level 2 is namespaced by release.
. "$(dirname "$0")/../ssh/lib.sh"
t_need haproxy redis-server redis-cli nutcracker curl python3
bed_up 5
cp "$(dirname "$0")/../../plans/shop/main.lua" "$(dirname "$0")/../../plans/shop/app.py" "$WORK/"
VARS=(-var lb="$(addr 1)" -var apps="$(addr 2),$(addr 3)" -var caches="$(addr 4),$(addr 5)"
	-var ssh_key=bed/id_ed25519 -var known_hosts=bed/known_hosts -var python=/usr/bin/python3)
iac apply -auto-approve "${VARS[@]}" >"$WORK/a1.out" 2>&1 || { tail -40 "$WORK/a1.out"; fail "apply of plans/shop (v1)"; }
ok "plans/shop applied on 5 hosts"
LB=$(addr 1)
ctl() { bash "$TESTBED" exec "$BED" "$@"; }
get() {   # PATH -> "BODY|X-L2|AGE"
	ctl curl -s -m 3 -D "$WORK/h" -o "$WORK/b" "http://$LB$1" >/dev/null
	printf '%s|%s|%s\n' "$(tr -d '\n' <"$WORK/b")" "$(awk -F': ' 'tolower($1) == "x-l2" { print $2 }' "$WORK/h" | tr -d '\r')" \
		"$(awk -F': ' 'tolower($1) == "age" { print $2 }' "$WORK/h" | tr -d '\r')"
}
l1() { ctl bash -c "exec 3<>/dev/tcp/$LB/9999 && echo 'show stat' >&3 && cat <&3" |
	awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i } $1 == "app" && $2 == "BACKEND" { print $c["cache_lookups"], $c["cache_hits"] }'; }
l2() { local h m H=0 M=0 n
	for n in 4 5; do
		read -r h m <<<"$(on_host "$n" "redis-cli -h $(addr "$n") -p 6379 info stats" | tr -d '\r' |
			awk -F: '/^keyspace_hits:/ { h = $2 } /^keyspace_misses:/ { m = $2 } END { print h, m }')"
		H=$((H + h)); M=$((M + m))
	done
	echo "$H $M"; }

for i in $(seq 1 10); do get "/catalog/$i"; done >"$WORK/pass1"
for i in $(seq 1 10); do get "/catalog/$i"; done >"$WORK/pass2"
for i in $(seq 1 10); do get "/catalog/$i?utm=x"; done >"$WORK/pass3"
[ "$(grep -c '^v1 catalog [0-9]*|miss|$' "$WORK/pass1")" = 10 ] || { cat "$WORK/pass1"; fail "first pass: expected 10 level-2 misses from v1"; }
[ "$(grep -c '^v1 catalog [0-9]*|miss|[0-9]' "$WORK/pass2")" = 10 ] || { cat "$WORK/pass2"; fail "second pass: expected 10 level-1 hits (an Age header)"; }
[ "$(grep -c '^v1 catalog [0-9]*|hit|$' "$WORK/pass3")" = 10 ] || { cat "$WORK/pass3"; fail "third pass (new URIs): expected 10 level-2 hits"; }
ok "level 1 served repeated pages, level 2 the pages level 1 had not seen"

read -r lk lh <<<"$(l1)"
read -r rh rm <<<"$(l2)"
iac status cache catalog -json >"$WORK/st.json" 2>"$WORK/st.err" || { cat "$WORK/st.err"; fail "iac status cache -json"; }
iac status cache catalog >"$WORK/st.out" 2>&1 || { cat "$WORK/st.out"; fail "iac status cache"; }
cat "$WORK/st.out"
python3 - "$WORK/st.json" "$lk" "$lh" "$rh" "$rm" <<'PY' || fail "status figures differ from HAProxy's and Redis's"
import json, sys
d = json.load(open(sys.argv[1]))
lk, lh, rh, rm = map(int, sys.argv[2:])
c = d["clusters"][0]
l1, l2 = c["level1"], c["level2"]
assert (l1["hits"], l1["hits"] + l1["misses"]) == (lh, lk), (l1, lh, lk)
assert (l2["hits"], l2["misses"]) == (rh, rm), (l2, rh, rm)
assert lh >= 10 and rh >= 10 and rm >= 10, (lh, rh, rm)
assert sum(n["hits"] for n in c["nodes"]) == rh
print("status == servers: level 1 %d hits of %d lookups, level 2 %d hits %d misses" % (lh, lk, rh, rm))
PY
grep -q "level 1: HAProxy cache (ipv4@$LB:9999): $lh hits, $((lk - lh)) misses" "$WORK/st.out" || fail "no level 1 line"
grep -q "level 2: cache nodes (catalog): $rh hits, $rm misses" "$WORK/st.out" || fail "no level 2 line"
ok "iac status cache reports both levels as HAProxy and Redis count them"

# the same two levels in a load test's observe report, over its window
cat >"$WORK/s.lua" <<LUA
target "http://$LB"
scenario "browse" { flow = function(u) u:get("/catalog/" .. u:random(1, 40), { name = "catalog" }) end }
load { vus = 4, duration = "3s" }
observe { haproxy = "ipv4@$LB:9999", cache = { "$(addr 4):6379", "$(addr 5):6379" } }
LUA
read -r lk0 lh0 <<<"$(l1)"; read -r rh0 rm0 <<<"$(l2)"
iac loadtest s.lua -json s.json >"$WORK/s.out" 2>&1 || { cat "$WORK/s.out"; fail "loadtest"; }
read -r lk1 lh1 <<<"$(l1)"; read -r rh1 rm1 <<<"$(l2)"
grep -E "level [12]|cache " "$WORK/s.out"
python3 - "$WORK/s.json" $((lh1 - lh0)) $((lk1 - lk0 - lh1 + lh0)) $((rh1 - rh0)) $((rm1 - rm0)) <<'PY' || fail "observe's figures differ from HAProxy's and Redis's"
import json, sys
d = json.load(open(sys.argv[1]))
l1h, l1m, l2h, l2m = map(int, sys.argv[2:])
c = d["server"]["cache"]
assert (c["level1"]["hits"], c["level1"]["misses"]) == (l1h, l1m), (c["level1"], l1h, l1m)
assert (c["hits"], c["misses"]) == (l2h, l2m), (c, l2h, l2m)
assert l1h > 100 and l1h + l1m == d["requests"], (l1h, l1m, d["requests"])
print("observe == servers: level 1 %d/%d, level 2 %d/%d" % (l1h, l1m, l2h, l2m))
PY
ok "iac loadtest's observe report gives both levels as HAProxy and Redis count them"

iac apply -auto-approve "${VARS[@]}" -var version=v2 >"$WORK/a2.out" 2>&1 || { tail -40 "$WORK/a2.out"; fail "apply v2"; }
for i in $(seq 1 10); do get "/catalog/$i"; done >"$WORK/pass4"
[ "$(grep -c '^v2 catalog [0-9]*|miss|$' "$WORK/pass4")" = 10 ] || { cat "$WORK/pass4"; fail "after the release: expected 10 fresh v2 pages"; }
ok "release v2: no v1 page from either level"
finish
