#!/bin/bash
# A primary that dies right after its replica (re)joined is still failed over.
# Sentinel learns a replica from the primary's INFO, which it asks every 10 s;
# a primary killed in between left it nothing to promote: it aborted with
# "-failover-abort-no-good-slave" every 6 s for ever. iac writes each replica
# into the Sentinels' config (known-replica), so they know it from their first
# second. Here: the Sentinels and c1's replica go down behind iac's back; an
# apply of the Sentinels alone, a second apply brings the replica back; as soon
# as it is linked its primary is killed with -9: Sentinel promotes it.
. "$(dirname "$0")/../ssh/lib.sh"
t_need redis-server redis-cli nutcracker jq
. "$(dirname "$0")/sentinel_lib.sh"
sentinel_setup

on_host 2 'kill -9 $(cat /run/iac-cache-sessions-c1-1-r.pid)'
for n in 1 2 3; do on_host $n "kill -9 \$(cat /run/iac-cache-sessions-sentinel-$n.pid)"; done
iac apply -auto-approve -target ssh.service.sessions_sentinel_1 -target ssh.service.sessions_sentinel_2 \
	-target ssh.service.sessions_sentinel_3 >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "apply of the sentinels"; }
expect_in "$WORK/a2.out" "ssh.service.sessions_sentinel_1"
sees_primary() { rcli 1 26379 sentinel master sessions-c1-1 | tr -d '\r' | grep -A1 '^flags$' | tail -1 | grep -qx master; }
wait_for 10 sees_primary || fail "the restarted sentinel does not see the primary"
sleep 1
iac apply -auto-approve >"$WORK/a3.out" 2>&1 || { cat "$WORK/a3.out"; fail "apply bringing the replica back"; }
expect_in "$WORK/a3.out" "ssh.service.sessions_c1_1_replica"
wait_for 15 linked 2 || fail "the replica did not link again"
on_host 1 'kill -9 $(cat /run/iac-cache-sessions-c1-1.pid)'
t0=$(date +%s%N)
promoted() { [ "$(rcli 2 26379 sentinel get-master-addr-by-name sessions-c1-1 | head -1)" = "$(addr 2)" ]; }
wait_for 40 promoted || {
	for n in 1 2 3; do echo "--- sentinel on h$n"; on_host $n "grep -E 'slave|odown|tilt' /var/log/iac-cache/sessions-sentinel-$n.log | tail -n 8"; done
	fail "no failover within 40 s of killing a primary whose replica had just rejoined"; }
printf 'ok: a primary killed as soon as its replica rejoined: promoted by Sentinel %d ms after kill -9\n' \
	$(( ($(date +%s%N) - t0) / 1000000 ))
