#!/bin/bash
# replicas = 1 on test-bed hosts: 3 Redis primaries, a replica of each on the
# next host, 3 Sentinels, twemproxy and the ring on the app host. The ring's
# points hash node names (twemproxy servers carry them), so keys set through
# the proxy sit where `iac cache locate` puts them by name. Sentinel's own
# rewrites are not drift. A primary killed with -9: Sentinel promotes its
# replica; the next plan says the ring and the proxy config must follow
# ("failover: NODE now at ADDR:PORT"); the apply rewrites both (the proxy
# restarts), every key is still read through the proxy, the old primary comes
# back as a replica. Prints how long the promotion and the follow-up took.
. "$(dirname "$0")/../ssh/lib.sh"
t_need redis-server redis-cli nutcracker jq
. "$(dirname "$0")/sentinel_lib.sh"
sentinel_setup

ring=$(on_host 4 cat /etc/app/cache-ring.json)
[ "$(jq -r '.nodes[0].point_name' <<<"$ring")" = sessions-c1-1 ] || fail "ring points do not hash names"
on_host 4 "grep -q '$(addr 1):6379:1 sessions-c1-1' /etc/iac-cache/sessions-twemproxy.yml" || fail "proxy servers unnamed"
proxy_set_keys
for n in 1 2 3; do rcli $n 6379 --scan | sed "s/^/sessions-c$n-1\t/"; done | sort >"$WORK/held"
seq 0 2999 | sed 's/^/k:/' | "$IAC" cache locate -node sessions-c1-1=sessions-c1-1 -node sessions-c2-1=sessions-c2-1 \
	-node sessions-c3-1=sessions-c3-1 | sort >"$WORK/want"
[ "$(comm -12 "$WORK/held" "$WORK/want" | wc -l)" = 3000 ] || fail "named ring and proxy disagree"
echo "ok: the ring hashes node names; 3000 of 3000 keys where the proxy put them"
sleep 1
iac plan -detailed-exitcode >"$WORK/p0.out" 2>&1 || { cat "$WORK/p0.out"; fail "no-op plan not empty (sentinel rewrites read as drift?)"; }

# failover
t0=$(date +%s%N)
on_host 1 'kill -9 $(cat /run/iac-cache-sessions-c1-1.pid)'
promoted() { [ "$(rcli 2 26379 sentinel get-master-addr-by-name sessions-c1-1 | head -1)" = "$(addr 2)" ]; }
wait_for 60 promoted || {
	for n in 1 2 3; do echo "--- sentinel on c$n:"; rcli $n 26379 sentinel master sessions-c1-1 2>&1 | paste -sd' ' | cut -c1-600; done
	fail "sentinel did not promote the replica within 60 s"; }
t1=$(date +%s%N)
iac plan >"$WORK/p1.out" 2>&1 || { cat "$WORK/p1.out"; fail "plan after failover"; }
expect_in "$WORK/p1.out" "failover: sessions-c1-1 now at $(addr 2):7379"
expect_in "$WORK/p1.out" "cache.ring.sessions_ring_a1 will be updated"
expect_in "$WORK/p1.out" "cache.proxy.sessions_proxy_a1_conf will be updated"
t2=$(date +%s%N)
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply after failover"; }
t3=$(date +%s%N)
[ "$(on_host 4 "jq -r '.nodes[0].address, .nodes[0].port' /etc/app/cache-ring.json" | tr '\n' ' ')" = "$(addr 2) 7379 " ] ||
	fail "ring still names the old primary"
on_host 4 "grep -q '$(addr 2):7379:1 sessions-c1-1' /etc/iac-cache/sessions-twemproxy.yml" || fail "proxy config did not follow"
got=$(proxy_read_keys)
[ "$got" = 3000 ] || fail "after the failover $got of 3000 keys read through the proxy"
demoted() { rcli 1 6379 info replication | tr -d '\r' | grep -q '^role:slave'; }
wait_for 20 demoted || fail "the old primary did not come back as a replica"
iac plan -detailed-exitcode >"$WORK/p2.out" 2>&1 || { cat "$WORK/p2.out"; fail "plan after the follow-up not empty"; }
echo "ok: failover followed: 3000 of 3000 keys read through the proxy, old primary now a replica"
printf 'kill -9 -> promoted by Sentinel: %d ms; plan + apply to follow: %d ms (apply alone %d ms)\n' \
	$(( (t1 - t0) / 1000000 )) $(( (t3 - t1) / 1000000 )) $(( (t3 - t2) / 1000000 ))
iac destroy -auto-approve >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy"; }
echo ok
