#!/bin/bash
# cache.ring published to an etcd key (publish = { etcd = { endpoints, key } }
# in cache_cluster) against a real etcd 3.4: the document lands in the key,
# a no-op plan is empty, a value changed behind iac's back shows as drift and
# is written again, a node added shows the movement in the plan, destroy
# deletes the key; a ring with both a path and a key is refused.
. "$(dirname "$0")/lib.sh"
t_need etcd etcdctl jq
TMP=$W
. "$(dirname "$0")/../lib/etcd.sh"
trap 'etcd_stop_all; _cache_cleanup' EXIT
etcd_single
get() { ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" get /cache/sessions/ring --print-value-only; }
run() { (cd "$W" && "$IAC" -no-color "$@"); }

write_config() {   # NODES...
	local n nodes=""
	for n in "$@"; do nodes="$nodes{ name = \"s$n\", address = \"10.0.0.$n\", port = 6379 }, "; done
	cat >"$W/main.lua" <<EOF
resource "cache.ring" "sessions" {
  endpoints = "$ETCD_URL", key = "/cache/sessions/ring", cluster = "sessions", engine = "redis",
  nodes = { $nodes }, classes = { session = { ttl = "30m" } },
}
EOF
}
write_config 1 2 3
run apply -auto-approve >"$W/a1.out" 2>&1 || { cat "$W/a1.out"; check_fail "apply"; }
[ "$(get | jq -r .format)" = iac-cache-ring/1 ] && [ "$(get | jq '.continuum | length')" = 480 ] &&
	ok "the ring document is in etcd (480 points)" || check_fail "ring not in etcd: $(get | head -c 200)"
run plan -detailed-exitcode >"$W/p0.out" 2>&1 && ok "no-op plan" || { cat "$W/p0.out"; check_fail "no-op plan not empty"; }

ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" put /cache/sessions/ring '{"edited": true}' >/dev/null
run plan -detailed-exitcode >"$W/p1.out" 2>&1
rc=$?
[ $rc = 2 ] && grep -qF "(changed outside iac)" "$W/p1.out" && ok "a value edited in etcd shows as drift" ||
	{ cat "$W/p1.out"; check_fail "drift in etcd not planned (exit $rc)"; }
run apply -auto-approve >"$W/a2.out" 2>&1 || check_fail "apply after drift"
[ "$(get | jq -r .format)" = iac-cache-ring/1 ] && ok "the ring is written again" || check_fail "ring not restored"

write_config 1 2 3 4
run plan >"$W/p2.out" 2>&1 || check_fail "plan (grow)"
grep -F "cache 'sessions': 3 -> 4 nodes moves" "$W/p2.out" && grep -qF "taken by s4" "$W/p2.out" &&
	ok "adding a node shows the share of keys that moves" || { cat "$W/p2.out"; check_fail "no movement note"; }

run destroy -auto-approve >"$W/d.out" 2>&1 || check_fail "destroy"
[ -z "$(get)" ] && ok "destroy deleted the key" || check_fail "key left after destroy"

cat >"$W/main.lua" <<EOF
resource "cache.ring" "bad" { path = "/tmp/x.json", endpoints = "$ETCD_URL", key = "/k", cluster = "c", engine = "redis",
  nodes = { { name = "a", address = "10.0.0.1", port = 6379 } } }
EOF
run plan >"$W/p3.out" 2>&1 && check_fail "a ring with a path and a key was accepted"
grep -qF "needs either 'path' (a file) or 'endpoints' and 'key' (etcd)" "$W/p3.out" && ok "path and key together refused" ||
	{ cat "$W/p3.out"; check_fail "wrong message"; }
finish
