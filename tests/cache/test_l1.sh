#!/bin/bash
# The multi-level cache's level 1: HAProxy's cache in front of the app pool
# (haproxy { cache = { ... } }), keyed by the live colour, on the test bed
# with real HAProxy and nginx (tests/deploy/lib.sh: h1 HAProxy, h2..h5 the
# pool, "VERSION COLOUR NAME" answers). Cached answers are served (HAProxy's
# cache_hits grow, every answer is the same cached body); a cutover never
# serves the old colour's pages; a cutover back to a colour that served an
# older release (still within max_age) serves the new release, because the
# release purges level 1 (the reload of the changed config empties it).
. "$(dirname "$0")/../deploy/lib.sh"
LB_EXTRA='cache = { size_mb = 16, max_age = "600s", assume_fresh = true, release = var.version },'
setup

l1_stats() {   # lookups hits of the backend's cache
	lb_cmd "show stat" | awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i }
		$1 == "app" && $2 == "BACKEND" { print $c["cache_lookups"], $c["cache_hits"] }'
}
on_host 1 "grep -q 'cache-use iac_l1' /var/lib/iac/haproxy-lb/haproxy.cfg" || fail "no cache rules in the config"
read -r l0 h0 <<<"$(l1_stats)"
got=$(answers 20)
read -r l1 h1 <<<"$(l1_stats)"
echo "level 1 after 20 GETs: lookups $((l1 - l0)), hits $((h1 - h0)); answers: $(echo "$got" | sort | uniq -c | tr '\n' '|')"
[ "$((h1 - h0))" -ge 18 ] || fail "level 1 served $((h1 - h0)) of 20 GETs from its cache"
[ "$(echo "$got" | sort -u | wc -l)" = 1 ] || fail "cached answers differ: $got"
ok "level 1 serves cached pages ($((h1 - h0)) hits of $((l1 - l0)) lookups)"

apply_v() {
	iac apply -auto-approve -var version="$1" >"$WORK/apply-$1.out" 2>&1 ||
		{ cat "$WORK/apply-$1.out" >&2; fail "apply -var version=$1"; }
	grep -q "cache-use iac_l1" <(on_host 1 "cat /var/lib/iac/haproxy-lb/haproxy.cfg") || fail "rules lost"
	on_host 1 "grep -q 'release $1' /var/lib/iac/haproxy-lb/haproxy.cfg" || fail "the config does not name release $1"
}
apply_v v2   # blue v1 -> green v2
expect_version v2 8 "cutover to green v2: no blue page from level 1" || fail "old pages after the cutover"
read -r l2 h2 <<<"$(l1_stats)"
answers 5 > /dev/null
read -r l3 h3 <<<"$(l1_stats)"
[ "$((h3 - h2))" -ge 4 ] || fail "green's pages are not cached ($((h3 - h2)) hits of 5)"
apply_v v3   # green v2 -> blue v3
expect_version v3 8 "cutover to blue v3" || fail "old pages after the second cutover"
apply_v v4   # blue v3 -> green v4: green's v2 pages are younger than max_age
expect_version v4 8 "cutover to green v4: green's v2 pages were purged by the release" ||
	fail "level 1 served green's previous release"
ok "each release and cutover served only the live release's pages"
finish
