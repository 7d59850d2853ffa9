#!/bin/bash
# State on one real etcd member: state and journal live in etcd (nothing in
# .iac/ but the remembered backend), secrets stay out of etcd and output,
# auth credentials from -backend-config are never printed or remembered,
# a writer that lost a race is refused with who won, a kill -9 on "runner A"
# is recovered by "runner B" (another directory, the same backend), state
# push/pull with lineage and serial checks, and migration local -> etcd ->
# local with equal checksums.
. "$(dirname "$0")/lib.sh"
etcd_single
E=$ETCD_URL

# --- basics, and secrets --------------------------------------------------
A=$TMP/a
config "$A" "$E" iac/t1 5s '
variable "token" { sensitive = true }
resource "local.file" "conf" { path = "out/app.conf", content = "token=" .. var.token }
for i = 1, 3 do resource "local.file" ("f" .. i) { path = "out/f" .. i, content = "x" .. i } end'
(cd "$A" && "$IAC" apply -auto-approve -var token=Sup3rSecretTok >"$TMP/a1.out" 2>&1) || { cat "$TMP/a1.out"; fail "first apply"; }
[ -f "$A/.iac/state.json" ] && fail "state.json written locally with an etcd backend"
etcd_keys "$E" iac/t1/state/ | grep -q manifest || fail "no manifest in etcd"
[ "$(cd "$A" && "$IAC" state list | wc -l)" = 4 ] || fail "state list does not show 4 resources"
ok "apply wrote state to etcd ($(etcd_keys "$E" iac/t1/ | wc -l) keys), not to .iac/"
etcd_values "$E" iac/ | grep -q Sup3rSecretTok && fail "the secret is in etcd"
grep -rq Sup3rSecretTok "$TMP/a1.out" "$A/.iac" && fail "the secret is in output or .iac/"
ok "the sensitive value is not in etcd, output or .iac/"
(cd "$A" && "$IAC" plan -detailed-exitcode -var token=Sup3rSecretTok >"$TMP/a2.out" 2>&1); rc=$?
[ "$rc" = 0 ] || { cat "$TMP/a2.out"; fail "plan after apply is not empty (exit $rc)"; }
ok "plan against etcd state: no changes"

# --- a bad setting is a config error with a line -------------------------
B=$TMP/bad
mkdir -p "$B"
printf 'backend "etcd" { endpoints = { "%s" }, prefx = "x" }\n' "$E" >"$B/main.lua"
(cd "$B" && "$IAC" validate >"$TMP/bad.out" 2>&1) && fail "validate accepted 'prefx'"
grep -q "main.lua:1: .*'prefx'.*did you mean 'prefix'" "$TMP/bad.out" || { cat "$TMP/bad.out"; fail "bad key message"; }
ok "unknown backend setting: $(head -1 "$TMP/bad.out" | cut -c1-110)"

# --- state in .iac/ and a backend block: refused, then migrated ------------
L=$TMP/l
mkdir -p "$L"
echo 'for i = 1, 20 do resource "local.file" ("m" .. i) { path = "out/m" .. i, content = "m" .. i } end' >"$L/main.lua"
(cd "$L" && "$IAC" apply -auto-approve >/dev/null 2>&1) || fail "local apply"
sed -i "1i backend \"etcd\" { endpoints = { \"$E\" }, prefix = \"iac/mig\" }" "$L/main.lua"
(cd "$L" && "$IAC" plan >"$TMP/l1.out" 2>&1) && fail "plan ran with state in .iac/ and an etcd block"
grep -q "iac init -migrate-state" "$TMP/l1.out" || { cat "$TMP/l1.out"; fail "no migrate advice"; }
(cd "$L" && "$IAC" init -migrate-state >"$TMP/l2.out" 2>&1) || { cat "$TMP/l2.out"; fail "migrate to etcd"; }
sum1=$(grep -o 'sha256:[0-9a-f]*' "$TMP/l2.out")
[ -f "$L/.iac/state.json" ] && fail "local state.json still in place after migration"
(cd "$L" && "$IAC" plan -detailed-exitcode >/dev/null 2>&1) || fail "plan after migration to etcd is not empty"
sed -i '1d' "$L/main.lua"
(cd "$L" && "$IAC" plan >"$TMP/l3.out" 2>&1) && fail "plan ran with state in etcd and no backend block"
grep -q "migrate-state -backend=local" "$TMP/l3.out" || { cat "$TMP/l3.out"; fail "no way back advised"; }
(cd "$L" && "$IAC" init -migrate-state -backend=local >"$TMP/l4.out" 2>&1) || { cat "$TMP/l4.out"; fail "migrate back"; }
sum2=$(grep -o 'sha256:[0-9a-f]*' "$TMP/l4.out")
[ -n "$sum1" ] && [ "$sum1" = "$sum2" ] || fail "checksums differ: $sum1 vs $sum2"
(cd "$L" && "$IAC" plan -detailed-exitcode >/dev/null 2>&1) || fail "plan after migration back is not empty"
ok "migration local -> etcd -> local, checksum $sum1 both ways, plans empty"

# --- pull / push -------------------------------------------------------------
(cd "$A" && "$IAC" state pull >"$TMP/pulled.json") || fail "state pull"
serial=$("$T_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["serial"])' "$TMP/pulled.json")
(cd "$A" && "$IAC" apply -auto-approve -var token=Sup3rSecretTok -replace local.file.f1 >/dev/null 2>&1) || fail "apply -replace"
(cd "$A" && "$IAC" state push "$TMP/pulled.json" >"$TMP/push1.out" 2>&1) && fail "an older state was pushed"
grep -q "older than" "$TMP/push1.out" || { cat "$TMP/push1.out"; fail "push refusal message"; }
"$T_PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["lineage"]="00000000-0000-4000-8000-000000000000"; d["serial"]=999; json.dump(d,open(sys.argv[1],"w"))' "$TMP/pulled.json"
(cd "$A" && "$IAC" state push "$TMP/pulled.json" >"$TMP/push2.out" 2>&1) && fail "a state of another lineage was pushed"
grep -q "another configuration" "$TMP/push2.out" || { cat "$TMP/push2.out"; fail "lineage refusal message"; }
(cd "$A" && "$IAC" state push -force "$TMP/pulled.json" >"$TMP/push3.out" 2>&1) || { cat "$TMP/push3.out"; fail "push -force"; }
ok "state pull (serial $serial); push refuses an older serial and another lineage; -force pushes"

# --- a second writer without the lock loses, and is told who won --------
C1=$TMP/c1; C2=$TMP/c2
config "$C1" "$E" iac/race 5s 'variable "v" { default = "1" }
resource "local.exec" "slow" { create = "sleep 2 # " .. var.v }'
config "$C2" "$E" iac/race 5s 'variable "v" { default = "1" }
resource "local.file" "x" { path = "out/x", content = var.v }'
(cd "$C1" && "$IAC" apply -auto-approve >/dev/null 2>&1) || fail "race setup"
(cd "$C1" && exec "$IAC" apply -auto-approve -lock=false -var v=2 >"$TMP/r1.out" 2>&1) &
p1=$!; BG+=("$p1")
sleep 0.7
(cd "$C2" && "$IAC" apply -auto-approve -lock=false >"$TMP/r2.out" 2>&1) || { cat "$TMP/r2.out"; fail "second writer"; }
wait "$p1"; rc1=$?
[ "$rc1" != 0 ] || { cat "$TMP/r1.out"; fail "the slower unlocked writer overwrote the state written meanwhile"; }
grep -q "changed by someone else.*written by 'iac apply'" "$TMP/r1.out" || { cat "$TMP/r1.out"; fail "conflict message"; }
(cd "$C2" && "$IAC" state list | grep -q local.file.x) || fail "the winner's resource is not in state"
ok "compare-and-swap: the slower of two unlocked writers is refused: $(grep -o 'state in etcd.*serial [0-9]* written by [^)]*)' "$TMP/r1.out" | head -1 | cut -c1-150)"

# --- kill -9 on runner A, recovery on runner B -----------------------------
RA=$TMP/ra; RB=$TMP/rb
body='for i = 1, 12 do
  resource "local.exec" ("r" .. i) { create = "echo r" .. i .. " >> '$TMP'/made.log; sleep 0.4",
                                     check = "grep -qx r" .. i .. " '$TMP'/made.log" }
end'
config "$RA" "$E" iac/runner 3s "$body"
config "$RB" "$E" iac/runner 3s "$body"
(cd "$RA" && exec "$IAC" apply -auto-approve -parallelism 2 >"$TMP/ra.out" 2>&1) &
pa=$!; BG+=("$pa")
for _ in $(seq 1 100); do [ "$(wc -l 2>/dev/null <"$TMP/made.log" || echo 0)" -ge 5 ] && break; sleep 0.1; done
kill -9 "$pa"; wait "$pa" 2>/dev/null
made_a=$(wc -l <"$TMP/made.log")
t0=$(date +%s%N)
(cd "$RB" && "$IAC" apply -auto-approve -lock-timeout 20s >"$TMP/rb.out" 2>&1) || { cat "$TMP/rb.out"; fail "runner B apply"; }
t1=$(date +%s%N)
grep -q "recovered" "$TMP/rb.out" || { cat "$TMP/rb.out"; fail "runner B did not recover runner A's journal"; }
dups=$(sort "$TMP/made.log" | uniq -d | wc -l)
[ "$dups" = 0 ] || fail "$dups thing(s) made twice: $(sort "$TMP/made.log" | uniq -d | paste -sd' ')"
[ "$(sort -u "$TMP/made.log" | wc -l)" = 12 ] || fail "not all 12 made"
(cd "$RB" && "$IAC" plan -detailed-exitcode >/dev/null 2>&1) || fail "plan on runner B not empty"
ok "runner A killed after $made_a of 12; runner B waited $(( (t1 - t0) / 1000000 )) ms for the lease, recovered its journal, made the rest, no duplicates"

# --- auth: credentials from -backend-config never printed or remembered ---
ETCDCTL_API=3 etcdctl --endpoints "$E" user add root:Pa55wordEtcd >/dev/null 2>&1 &&
	ETCDCTL_API=3 etcdctl --endpoints "$E" auth enable >/dev/null 2>&1 || fail "cannot enable etcd auth"
(cd "$A" && "$IAC" plan -var token=Sup3rSecretTok >"$TMP/au1.out" 2>&1) && fail "plan worked without credentials"
(cd "$A" && "$IAC" plan -var token=Sup3rSecretTok -backend-config username=root -backend-config password=Pa55wordEtcd \
	>"$TMP/au2.out" 2>&1) || { cat "$TMP/au2.out"; fail "plan with credentials"; }
grep -rq Pa55wordEtcd "$TMP"/au*.out "$A/.iac" && fail "the etcd password is in output or .iac/"
ETCDCTL_API=3 etcdctl --endpoints "$E" --user root:Pa55wordEtcd auth disable >/dev/null 2>&1
ok "etcd auth: refused without, works with -backend-config username/password; password in no output or file"
echo "PASS"
