#!/bin/bash
# The etcd client (iac/etcd/etcd.c) against a real etcd (Debian etcd-server,
# 3.4), started here on free loopback ports with a temporary data dir and
# stopped by PID: put/get/range/delete, compare-and-swap success and failure,
# lease grant + keep-alive + expiry, locks (held by one, refused or waiting
# for another, released by unlock or lease expiry, interoperating with
# `etcdctl lock`), watch, and endpoint fail-over.
set -euo pipefail

: "${IAC_BUILD_DIR:?}"
T="$IAC_BUILD_DIR/iac/flags/iac-etcd"
fail() { echo "FAIL: $*" >&2; [ -f "${TMP:-/nonexistent}/etcd.log" ] && tail -5 "$TMP/etcd.log" >&2; exit 1; }
[ -x "$T" ] || fail "$T not built"
ETCD=$(command -v etcd || true)
[ -n "$ETCD" ] || fail "etcd is not installed (apt-get install etcd-server)"

TMP=$(mktemp -d /tmp/iac-etcd-test.XXXXXX)
PIDS=()      # helpers (etcdctl, background writers): stopped before etcd
ETCD_PID=""
cleanup() {
	# Helpers first, while etcd still answers: etcdctl lock releases its lock
	# on SIGTERM and would retry forever against a dead etcd.
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for _ in $(seq 1 20); do
		alive=0
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ "$alive" -eq 0 ] && break
		sleep 0.1
	done
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	if [ -n "$ETCD_PID" ]; then
		kill "$ETCD_PID" 2>/dev/null || true
		wait "$ETCD_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
CPORT=$(free_port)
PPORT=$(free_port)
while [ "$PPORT" = "$CPORT" ]; do PPORT=$(free_port); done
URL="http://127.0.0.1:$CPORT"
# Short heartbeat/election: leader in well under a second, and etcd's
# minimum lease TTL (1.5 election timeouts) drops to 1 s.
"$ETCD" --name iac-test --data-dir "$TMP/data" \
	--listen-client-urls "$URL" --advertise-client-urls "$URL" \
	--listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
	--initial-cluster "iac-test=http://127.0.0.1:$PPORT" \
	--heartbeat-interval 50 --election-timeout 300 > "$TMP/etcd.log" 2>&1 &
ETCD_PID=$!
export ETCD_ENDPOINTS="$URL"

ready=0
for _ in $(seq 1 100); do
	rc=0; "$T" -t 500 get /probe > /dev/null 2>&1 || rc=$?
	if [ "$rc" -eq 3 ]; then ready=1; break; fi
	sleep 0.1
done
[ "$ready" -eq 1 ] || fail "etcd did not come up on $URL"
echo "etcd $("$ETCD" --version | head -1 | awk '{print $3}') on $URL"

expect_rc() { # WANT CMD... (stdout to $TMP/out, stderr to $TMP/err)
	local want=$1 rc=0; shift
	"$@" > "$TMP/out" 2> "$TMP/err" || rc=$?
	[ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want: $(cat "$TMP/err")"
}

# --- key-value ---------------------------------------------------------------
expect_rc 0 "$T" put app/flags.json '{"flags": {}} with spaces and ünïcode'
expect_rc 0 "$T" get app/flags.json
[ "$(cat "$TMP/out")" = '{"flags": {}} with spaces and ünïcode' ] || fail "get returned '$(cat "$TMP/out")'"
expect_rc 0 "$T" put app/other x
expect_rc 0 "$T" put apple y
expect_rc 0 "$T" range app/
[ "$(cat "$TMP/out")" = $'app/flags.json={"flags": {}} with spaces and ünïcode\napp/other=x' ] || fail "range: $(cat "$TMP/out")"
expect_rc 3 "$T" get app/missing
grep -q "etcd key 'app/missing' not found" "$TMP/err" || fail "not-found message: $(cat "$TMP/err")"
expect_rc 0 "$T" del app/other
[ "$(cat "$TMP/out")" = 1 ] || fail "del count $(cat "$TMP/out")"
expect_rc 0 "$T" delprefix app/
[ "$(cat "$TMP/out")" = 1 ] || fail "delprefix count $(cat "$TMP/out")"
expect_rc 0 "$T" get apple   # outside the prefix: untouched
echo "ok: put/get/range/delete"

# --- compare-and-swap --------------------------------------------------------
expect_rc 0 "$T" cas state/main 0 v1          # create only if absent
rev1=$(cat "$TMP/out")
expect_rc 5 "$T" cas state/main 0 v1-again    # exists now
grep -q "etcd key 'state/main' already exists (revision $rev1)" "$TMP/err" || fail "cas-create message: $(cat "$TMP/err")"
expect_rc 0 "$T" cas state/main "$rev1" v2    # we saw rev1: write goes through
rev2=$(cat "$TMP/out")
[ "$rev2" -gt "$rev1" ] || fail "cas revision did not advance"
expect_rc 5 "$T" cas state/main "$rev1" v3    # stale writer loses
grep -q "changed underneath us: expected revision $rev1, found $rev2" "$TMP/err" || fail "cas message: $(cat "$TMP/err")"
expect_rc 0 "$T" get state/main
[ "$(cat "$TMP/out")" = v2 ] || fail "stale cas overwrote the value"
expect_rc 5 "$T" casdel state/main "$rev1"
expect_rc 0 "$T" casdel state/main "$rev2"
expect_rc 3 "$T" get state/main
echo "ok: compare-and-swap succeeds on the expected revision and fails on a stale one"

# --- leases ------------------------------------------------------------------
expect_rc 0 "$T" grant 2
lease=$(cat "$TMP/out")
expect_rc 0 "$T" put session/a alive "$lease"
expect_rc 0 "$T" meta session/a
[ "$(awk '{print $4}' "$TMP/out")" = "$lease" ] || fail "key not attached to lease"
expect_rc 0 "$T" keepalive "$lease"
[ "$(cat "$TMP/out")" -ge 1 ] || fail "keepalive ttl $(cat "$TMP/out")"
gone=0
for _ in $(seq 1 100); do
	rc=0; "$T" get session/a > /dev/null 2>&1 || rc=$?
	if [ "$rc" -eq 3 ]; then gone=1; break; fi
	sleep 0.1
done
[ "$gone" -eq 1 ] || fail "key did not expire with its lease"
expect_rc 3 "$T" ttl "$lease"
expect_rc 3 "$T" keepalive "$lease"
grep -q "etcd lease $lease has expired" "$TMP/err" || fail "expired keepalive message: $(cat "$TMP/err")"
expect_rc 3 "$T" revoke "$lease"
expect_rc 0 "$T" grant 60
lease=$(cat "$TMP/out")
expect_rc 0 "$T" put session/b x "$lease"
expect_rc 0 "$T" revoke "$lease"
expect_rc 3 "$T" get session/b
echo "ok: leases: grant, keep-alive, expiry, revoke"

# --- locks -------------------------------------------------------------------
expect_rc 0 "$T" grant 30; LA=$(cat "$TMP/out")
expect_rc 0 "$T" grant 30; LB=$(cat "$TMP/out")
expect_rc 0 "$T" lock iac/lock/prod "$LA" 0 "alice: iac apply"
KA=$(cat "$TMP/out")
case "$KA" in iac/lock/prod/*) ;; *) fail "lock key '$KA'" ;; esac
expect_rc 4 "$T" lock iac/lock/prod "$LB" 0 "bob: iac apply"
grep -q "lock 'iac/lock/prod' is held by '$KA' (alice: iac apply)" "$TMP/err" || fail "locked message: $(cat "$TMP/err")"
start=$(date +%s%N)
expect_rc 4 "$T" lock iac/lock/prod "$LB" 700 "bob: iac apply"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$ms" -ge 650 ] && [ "$ms" -lt 3000 ] || fail "waiting lock gave up after $ms ms, expected ~700"
expect_rc 0 "$T" range iac/lock/prod/
[ "$(wc -l < "$TMP/out")" -eq 1 ] || fail "a refused locker left its waiter key: $(cat "$TMP/out")"

# Bob waits; Alice unlocks after 0.5 s; Bob gets it at once.
( sleep 0.5; "$T" unlock "$KA"; date +%s%N > "$TMP/unlocked" ) &
PIDS+=($!)
expect_rc 0 "$T" lock iac/lock/prod "$LB" 5000 "bob: iac apply"
got=$(date +%s%N)
KB=$(cat "$TMP/out")
# Waiters sleep on a watch of the key ahead (re-checking every 2 s at most),
# so the handover takes a round trip, not a poll period.
ms=$(( (got - $(cat "$TMP/unlocked")) / 1000000 ))
[ "$ms" -lt 1000 ] || fail "lock handed over $ms ms after the unlock (watch not working?)"
echo "ok: lock held by one is refused or waited for by another, handed over ${ms} ms after unlock"

# A holder that dies: its lease expires and the lock goes with it.
expect_rc 0 "$T" unlock "$KB"
expect_rc 0 "$T" grant 2; LC=$(cat "$TMP/out")
expect_rc 0 "$T" lock iac/lock/prod "$LC" 0 "carol: crashed"
start=$(date +%s%N)
expect_rc 0 "$T" lock iac/lock/prod "$LB" 8000 "bob: iac apply"
KB=$(cat "$TMP/out")
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "ok: lock of an expired holder taken over after ${ms} ms"

# Same key layout as etcd's lock service: etcdctl lock waits for our holder,
# and we are refused while etcdctl holds it.
rc=0; timeout 1.5 etcdctl --endpoints="$URL" lock iac/lock/prod echo got > "$TMP/ctl" 2>&1 || rc=$?
[ "$rc" -eq 124 ] || fail "etcdctl lock did not wait for our holder (rc $rc): $(cat "$TMP/ctl")"
expect_rc 0 "$T" unlock "$KB"
etcdctl --endpoints="$URL" lock iac/lock/prod sleep 3 > /dev/null 2>&1 &
PIDS+=($!)
held=0
for _ in $(seq 1 30); do
	rc=0; "$T" lock iac/lock/prod "$LA" 0 > /dev/null 2>&1 || rc=$?
	if [ "$rc" -eq 4 ]; then held=1; break; fi
	[ "$rc" -eq 0 ] && "$T" unlock "iac/lock/prod/$(printf %x "$LA")" > /dev/null
	sleep 0.1
done
[ "$held" -eq 1 ] || fail "our lock did not see etcdctl's holder"
echo "ok: locks interoperate with etcdctl lock (etcd's lock service)"

# A holder that keeps its 1 s lease alive from a background thread keeps the
# lock long past the TTL, and revoking on exit frees it at once.
"$T" hold iac/lock/keep 1 5 "dave: long apply" > "$TMP/hold.out" 2> "$TMP/hold.err" &
HOLD=$!
PIDS+=($HOLD)
for _ in $(seq 1 50); do [ -s "$TMP/hold.out" ] && break; sleep 0.1; done
[ -s "$TMP/hold.out" ] || fail "hold did not take the lock: $(cat "$TMP/hold.err")"
sleep 2
expect_rc 0 "$T" grant 30; LD=$(cat "$TMP/out")
expect_rc 4 "$T" lock iac/lock/keep "$LD" 0
grep -q "(dave: long apply)" "$TMP/err" || fail "kept lock holder: $(cat "$TMP/err")"
wait "$HOLD" || fail "hold failed: $(cat "$TMP/hold.err")"
expect_rc 0 "$T" lock iac/lock/keep "$LD" 0
echo "ok: a background keep-alive holds a 1 s lease for 5 s; revoke frees the lock"

# --- watch -------------------------------------------------------------------
expect_rc 0 "$T" put flags/app v1
r1=$(cat "$TMP/out")
( sleep 0.3; "$T" put flags/app v2 > /dev/null ) &
PIDS+=($!)
expect_rc 0 "$T" wait flags/app "$r1" 3000
[ "$(cat "$TMP/out")" -gt "$r1" ] || fail "wait returned revision $(cat "$TMP/out")"
expect_rc 7 "$T" wait flags/app 0 300
grep -q "no change to etcd key 'flags/app' within 300 ms" "$TMP/err" || fail "wait timeout message: $(cat "$TMP/err")"
expect_rc 0 "$T" waitprefix flags/ "$r1" 1000   # history: the v2 put is after r1
echo "ok: watch sees a change and times out without one"

# --- endpoints ---------------------------------------------------------------
DEAD="http://127.0.0.1:$(free_port)"
expect_rc 0 "$T" -e "$DEAD,$URL" get flags/app
[ "$(cat "$TMP/out")" = v2 ] || fail "fail-over read $(cat "$TMP/out")"
expect_rc 1 "$T" -e "$DEAD" get flags/app
grep -q "cannot reach etcd at '$DEAD': connection refused" "$TMP/err" || fail "unreachable message: $(cat "$TMP/err")"
echo "ok: endpoint fail-over and unreachable message"

# --- authentication (last: it locks everyone else out) ------------------------
CTL="etcdctl --endpoints=$URL"
$CTL user add root:s3cret-pw > /dev/null 2>&1 || fail "etcdctl user add"
$CTL user grant-role root root > /dev/null 2>&1 || fail "etcdctl user grant-role"
$CTL auth enable > /dev/null 2>&1 || fail "etcdctl auth enable"
expect_rc 1 "$T" put secret/k v
grep -q "user name is empty" "$TMP/err" || fail "unauthenticated put: $(cat "$TMP/err")"
expect_rc 1 "$T" -u root:wrong get flags/app
grep -q "cannot log in to etcd as 'root'" "$TMP/err" || fail "bad password message: $(cat "$TMP/err")"
grep -q "s3cret-pw" "$TMP/err" && fail "password leaked into a message"
expect_rc 0 "$T" -u root:s3cret-pw put secret/k v
expect_rc 0 "$T" -u root:s3cret-pw get secret/k
[ "$(cat "$TMP/out")" = v ] || fail "authenticated get $(cat "$TMP/out")"
echo "ok: user/password authentication"
