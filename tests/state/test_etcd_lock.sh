#!/bin/bash
# The state lock on a real etcd lease: two concurrent applies (one waits,
# then plans on the state the first wrote), three waiters served in the
# order they asked, `iac status` showing holder and queue, a holder killed
# with kill -9 losing the lock within lock_ttl + 1 s, `iac force-unlock`
# for a long-lived lease, a refused command naming holder and lock ID, and
# a 10,000-resource state stored in chunks under one manifest.
. "$(dirname "$0")/lib.sh"
etcd_single
E=$ETCD_URL
D=$TMP/d
# hold.N: runs a command that writes its name to order.log, then sleeps
config "$D" "$E" iac/lock 2s '
variable "who" { default = "x" }
variable "hold" { default = "0" }
resource "local.exec" "step" { create = "echo " .. var.who .. " >> '"$TMP"'/order.log; sleep " .. var.hold .. " # " .. var.who }'

start() {   # start NAME HOLD [FLAGS...]: apply in the background
	local who=$1 hold=$2; shift 2
	(cd "$D" && exec "$IAC" apply -auto-approve -var who="$who" -var hold="$hold" "$@" >"$TMP/$who.out" 2>&1) &
	BG+=($!)
	eval "PID_$who=$!"
}
wait_line() {  # wait until order.log has N lines
	for _ in $(seq 1 200); do [ "$(wc -l 2>/dev/null <"$TMP/order.log" || echo 0)" -ge "$1" ] && return 0; sleep 0.05; done
	fail "order.log never got $1 line(s): $(cat "$TMP/order.log" 2>/dev/null | paste -sd' ')"
}

# --- a second apply is refused at once, naming the holder -----------------
start a 6
wait_line 1
(cd "$D" && "$IAC" plan -var who=b >"$TMP/refused.out" 2>&1) && fail "plan ran while the lock was held"
grep -q "locked by 'iac apply' by .*lock ID [0-9a-f]*" "$TMP/refused.out" || { cat "$TMP/refused.out"; fail "refusal message"; }
grep -q "force-unlock" "$TMP/refused.out" || fail "refusal does not say how to unlock"
ok "refused: $(cut -c1-160 "$TMP/refused.out" | head -1)"

# --- three waiters, served in the order they asked --------------------------
wait_queue() {  # until N commands wait (a busy machine starts them slowly)
	for _ in $(seq 1 100); do
		[ "$(cd "$D" && "$IAC" status -json 2>/dev/null | "$T_PY" -c 'import json,sys; print(len(json.load(sys.stdin).get("queue", [])))' 2>/dev/null)" = "$1" ] && return 0
		sleep 0.1
	done
	fail "the queue never had $1 waiting"
}
start b 0.2 -lock-timeout 60s; wait_queue 1
start c 0.2 -lock-timeout 60s; wait_queue 2
start d 0.2 -lock-timeout 60s; wait_queue 3
(cd "$D" && "$IAC" status >"$TMP/status.out" 2>&1) || fail "iac status"
grep -q "Locked by 'iac apply'" "$TMP/status.out" || { cat "$TMP/status.out"; fail "status shows no holder"; }
[ "$(grep -c 'waiting #' "$TMP/status.out")" = 3 ] || { cat "$TMP/status.out"; fail "status does not show 3 waiting"; }
(cd "$D" && "$IAC" status -json | "$T_PY" -c 'import json,sys; d=json.load(sys.stdin); assert d["holder"]["command"]=="apply" and len(d["queue"])==3') ||
	fail "status -json"
for p in $PID_a $PID_b $PID_c $PID_d; do wait "$p" || fail "an apply failed: $(cat "$TMP"/?.out | grep -i error | head -3)"; done
order=$(paste -sd' ' "$TMP/order.log")
[ "$order" = "a b c d" ] || fail "served out of order: $order"
ok "status showed the holder and 3 waiting; served in order: $order"

# --- a killed holder loses the lock when its lease expires --------------------
start k 30
wait_line 5
sleep 0.3
kill -9 "$PID_k"; wait "$PID_k" 2>/dev/null
t0=$(date +%s%N)
(cd "$D" && "$IAC" apply -auto-approve -var who=after -lock-timeout 30s >"$TMP/after.out" 2>&1) || { cat "$TMP/after.out"; fail "apply after kill -9"; }
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -le 3000 ] || fail "the lock came back after $ms ms (lock_ttl 2s + 1s allowed)"
ok "kill -9 of the holder: next apply got the lock after $ms ms (lock_ttl 2 s)"

# --- force-unlock for a long lease ----------------------------------------------
sed -i 's/lock_ttl = "2s"/lock_ttl = "60s"/' "$D/main.lua"
start f 30
wait_line 7
sleep 0.3
kill -9 "$PID_f"; wait "$PID_f" 2>/dev/null
(cd "$D" && "$IAC" plan >"$TMP/f1.out" 2>&1) && fail "plan ran with a dead holder's 60 s lease"
id=$(cd "$D" && "$IAC" status -json | "$T_PY" -c 'import json,sys; print(json.load(sys.stdin)["holder"]["id"])')
(cd "$D" && "$IAC" force-unlock "$id" >"$TMP/fu.out" 2>&1) || { cat "$TMP/fu.out"; fail "force-unlock $id"; }
(cd "$D" && "$IAC" force-unlock "$id" >"$TMP/fu2.out" 2>&1) && fail "force-unlock of a gone lock succeeded"
t0=$(date +%s%N)
(cd "$D" && "$IAC" plan >"$TMP/f2.out" 2>&1) || { cat "$TMP/f2.out"; fail "plan after force-unlock"; }
ok "force-unlock $id: next command ran in $(( ($(date +%s%N) - t0) / 1000000 )) ms; a second force-unlock says: $(head -1 "$TMP/fu2.out" | cut -c1-80)"

# --- a holder whose lock is taken away stops writing, and says so -----------
L=$TMP/lost
config "$L" "$E" iac/lost 60s 'for i = 1, 6 do
  resource "local.exec" ("s" .. i) { create = "echo s" .. i .. " >> '"$TMP"'/lost.log; sleep 0.7" }
end'
(cd "$L" && exec "$IAC" apply -auto-approve -parallelism 1 >"$TMP/lost.out" 2>&1) &
pl=$!; BG+=("$pl")
for _ in $(seq 1 100); do [ -s "$TMP/lost.log" ] && break; sleep 0.05; done
lid=$(cd "$L" && "$IAC" status -json | "$T_PY" -c 'import json,sys; print(json.load(sys.stdin)["holder"]["id"])')
(cd "$L" && "$IAC" force-unlock "$lid" >/dev/null 2>&1) || fail "force-unlock of a running holder"
wait "$pl"; rc=$?
[ "$rc" != 0 ] || { cat "$TMP/lost.out"; fail "the apply went on after its lock was taken"; }
grep -q "lost the state lock" "$TMP/lost.out" || { cat "$TMP/lost.out"; fail "no 'lost the state lock' message"; }
n=$(wc -l <"$TMP/lost.log")
[ "$n" -lt 6 ] || fail "all 6 ran although the lock was gone after the first"
(cd "$L" && "$IAC" state history | grep -q force-unlock) || fail "force-unlock is not in the history"
ok "force-unlock of a running apply: it stopped after $n of 6 ($(grep -o 'lost the state lock[^;]*' "$TMP/lost.out" | head -1)); recorded in history"

# --- rollback -force from another machine preempts a running apply ------------
# (its own UTS namespace gives it another host name, so it cannot just signal
# the holder: the etcd lease is taken from under it)
P=$TMP/pre
config "$P" "$E" iac/pre 60s 'for i = 1, 6 do
  resource "local.exec" ("p" .. i) { create = "echo p" .. i .. " >> '"$TMP"'/pre.log; sleep 0.7" }
end'
(cd "$P" && exec "$IAC" apply -auto-approve -parallelism 1 >"$TMP/pre.out" 2>&1) &
pp=$!; BG+=("$pp")
for _ in $(seq 1 100); do [ -s "$TMP/pre.log" ] && break; sleep 0.05; done
(cd "$P" && unshare -u sh -c 'hostname other-runner && exec "$0" rollback -force' "$IAC" >"$TMP/rbf.out" 2>&1)
grep -q "preempted the lock held by 'iac apply'" "$TMP/rbf.out" || { cat "$TMP/rbf.out"; fail "rollback -force did not preempt"; }
wait "$pp"; rc=$?
[ "$rc" != 0 ] && grep -q "lost the state lock" "$TMP/pre.out" || { cat "$TMP/pre.out"; fail "the preempted apply went on"; }
(cd "$P" && "$IAC" state history) >"$TMP/pre.hist" || fail "state history after the preemption"
grep -q "rollback" "$TMP/pre.hist" && grep -q "other-runner" "$TMP/pre.hist" ||
	{ cat "$TMP/pre.hist"; fail "the forced rollback is not in the history with who ran it"; }
git --git-dir="$P/.iac/history.git" show main:meta.json >"$TMP/pre.msg"
grep -q '"preempted"' "$TMP/pre.msg" && grep -q '"forced": *true' "$TMP/pre.msg" ||
	{ cat "$TMP/pre.msg"; fail "the revision does not record whom it preempted"; }
ok "rollback -force from another host preempted the apply after $(wc -l <"$TMP/pre.log") of 6; recorded: $(grep rollback "$TMP/pre.hist" | head -1 | tr -s ' ')"

# --- 10,000 resources: chunked, one manifest -------------------------------------
Z=$TMP/z
config "$Z" "$E" iac/big 15s 'for i = 1, 10000 do
  resource "local.file" ("f" .. i) { path = "out/" .. (i % 100) .. "/f" .. i, content = "file number " .. i .. " with some text to make the state larger" }
end'
t0=$(date +%s%N)
(cd "$Z" && "$IAC" apply -auto-approve >"$TMP/z1.out" 2>&1) || { tail -5 "$TMP/z1.out"; fail "10,000-resource apply"; }
t1=$(date +%s%N)
chunks=$(etcd_keys "$E" iac/big/state/chunk/ | wc -l)
[ "$chunks" -ge 2 ] || fail "a state of 10,000 resources is in $chunks chunk(s)"
size=$(etcd_values "$E" iac/big/state/manifest | "$T_PY" -c 'import json,sys; print(json.load(sys.stdin)["size"])')
[ "$(cd "$Z" && "$IAC" state list | wc -l)" = 10000 ] || fail "state list does not give 10,000"
t2=$(date +%s%N)
(cd "$Z" && "$IAC" plan -detailed-exitcode >"$TMP/z2.out" 2>&1) || { tail -3 "$TMP/z2.out"; fail "no-op plan of 10,000"; }
t3=$(date +%s%N)
ok "10,000 resources: $size bytes of state in $chunks chunks; apply $(( (t1 - t0) / 1000000 )) ms, no-op plan $(( (t3 - t2) / 1000000 )) ms"
echo PASS
