#!/bin/bash
# A lock holder cut off from etcd (alive, but its packets go nowhere: the TCP
# proxy it talks through is stopped with SIGSTOP) loses the lock when its
# lease expires, with no manual step: another runner, talking to etcd
# directly, waits with -lock-timeout and gets it within lock_ttl + 2 s. The
# cut-off holder starts nothing more (every create begins with a state write
# it cannot make); once the network is back its writes fail on the lock's
# fence, it says it lost the lock and exits non-zero, and the state the other
# runner wrote stays: a plan from either runner is then empty. The create
# the holder had in flight ran, but could not be recorded: the other runner
# finds it "interrupted before it finished" and runs it again (a command iac
# cannot read back runs at least once, never silently zero times).
. "$(dirname "$0")/lib.sh"
etcd_single
E=$ETCD_URL

# a TCP proxy 127.0.0.1:PORT -> etcd; SIGSTOP cuts everything through it
port=$("$T_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$T_PY" - "$port" "${E##*:}" <<'PY' &
import socket, sys, threading
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1]))); ls.listen(64)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
while True:
    c, _ = ls.accept()
    u = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
PY
PROXY=$!; BG+=("$PROXY")
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/version" && break; sleep 0.1; done

res='for i = 1, 6 do
  resource "local.exec" ("s" .. i) { create = "echo $WHO s" .. i .. " >> '"$TMP"'/cut.log; sleep 0.7" }
end'
config "$TMP/h" "http://127.0.0.1:$port" iac/cut 2s "$res"   # the holder, through the proxy
config "$TMP/o" "$E" iac/cut 2s "$res"                        # another runner, direct
(cd "$TMP/h" && WHO=h exec "$IAC" apply -auto-approve -parallelism 1 >"$TMP/h.out" 2>&1) &
ph=$!; BG+=("$ph")
for _ in $(seq 1 100); do [ -s "$TMP/cut.log" ] && break; sleep 0.05; done
[ -s "$TMP/cut.log" ] || { cat "$TMP/h.out"; fail "the holder never started"; }
kill -STOP "$PROXY"
t0=$(date +%s%N)
at_cut=$(grep -c '^h ' "$TMP/cut.log")

(cd "$TMP/o" && WHO=o "$IAC" apply -auto-approve -parallelism 1 -lock-timeout 30s >"$TMP/o.out" 2>&1) ||
	{ cat "$TMP/o.out"; fail "the other runner's apply failed"; }
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# its apply took the lock, then ran up to 6 creates of 0.7 s
grep -q "Apply complete" "$TMP/o.out" || { cat "$TMP/o.out"; fail "the other runner's apply did not complete"; }
took=$(( ms - 700 * $(grep -c '^o ' "$TMP/cut.log") ))
[ "$took" -le 4000 ] || fail "the other runner got the lock ~$took ms after the cut (lock_ttl 2 s + 2 s allowed)"
[ "$(grep -c '^h ' "$TMP/cut.log")" = "$at_cut" ] ||
	fail "the cut-off holder started more work: $(paste -sd' ' "$TMP/cut.log")"

kill -CONT "$PROXY"
t1=$(date +%s%N)
wait "$ph"; rc=$?
back=$(( ($(date +%s%N) - t1) / 1000000 ))
[ "$rc" = 1 ] || { cat "$TMP/h.out"; fail "the cut-off holder exited $rc, not 1"; }
# it stops there: the rest is "not started", not tried one by one
[ "$(grep -c ': creating\.\.\.$' "$TMP/h.out")" = "$at_cut" ] || { cat "$TMP/h.out"; fail "the holder went on trying after it lost the lock"; }
grep -q "$((6 - at_cut)) not started" "$TMP/h.out" || { cat "$TMP/h.out"; fail "the holder's summary does not say what it did not start"; }
grep -q "lost the state lock" "$TMP/h.out" || { cat "$TMP/h.out"; fail "the holder did not say it lost the lock"; }
[ "$(grep -c '^h ' "$TMP/cut.log")" = "$at_cut" ] || fail "the holder started more work once back: $(paste -sd' ' "$TMP/cut.log")"
for d in o h; do
	(cd "$TMP/$d" && "$IAC" plan -detailed-exitcode >"$TMP/p_$d.out" 2>&1) ||
		{ cat "$TMP/p_$d.out"; fail "plan from runner '$d' after the cut not empty: the holder overwrote the other's state?"; }
done
(cd "$TMP/o" && "$IAC" status -json | "$T_PY" -c 'import json,sys; d=json.load(sys.stdin); assert not d.get("holder")') ||
	fail "a lock is left behind"
ok "holder cut off after $at_cut of 6: the other runner had the lock ~$took ms after the cut (lock_ttl 2 s); the holder, back after $back ms, said: $(grep -o 'lost the state lock[^(]*' "$TMP/h.out" | head -1); creates per runner: h $at_cut, o $(grep -c '^o ' "$TMP/cut.log") ($(paste -sd' ' "$TMP/cut.log" | cut -c1-80))"
