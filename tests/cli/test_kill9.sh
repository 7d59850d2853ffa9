#!/usr/bin/env bash
# kill -9 at several moments of an apply (and a destroy) of slow local.exec
# resources that each append a line to a log and have a check: afterwards the
# state file is valid JSON, the next plan works, no command keeps running
# behind iac's back, and the next apply converges with every line exactly once.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir out
# r1..r4 a chain, r5..r8 independent, f1..f20 files (many state writes).
# A check says whether the thing exists: made and not destroyed. A destroy
# whose command ran just before the kill, but was not recorded, is then
# found gone by the next run instead of being run twice.
cat >main.lua <<EOF
local prev = nil
for i = 1, 4 do
  prev = resource "local.exec" ("r" .. i) {
    create  = "sleep 0.25; echo r" .. i .. " >> $T/cfg/out/log",
    check   = "grep -qx r" .. i .. " $T/cfg/out/log && ! grep -qx gone-r" .. i .. " $T/cfg/out/log",
    destroy = "sleep 0.1; echo gone-r" .. i .. " >> $T/cfg/out/log",
    depends_on = prev and { prev } or nil,
  }
end
for i = 5, 8 do
  resource "local.exec" ("r" .. i) {
    create  = "sleep 0.3; echo r" .. i .. " >> $T/cfg/out/log",
    check   = "grep -qx r" .. i .. " $T/cfg/out/log && ! grep -qx gone-r" .. i .. " $T/cfg/out/log",
    destroy = "sleep 0.1; echo gone-r" .. i .. " >> $T/cfg/out/log",
  }
end
for i = 1, 20 do
  resource "local.file" ("f" .. i) { path = "$T/cfg/out/f" .. i, content = "file " .. i }
end
EOF

state_is_json() {
    [ ! -e .iac/state.json ] || "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' .iac/state.json 2>/dev/null
}
no_dup_lines() { [ -z "$(grep -v '^gone-' out/log 2>/dev/null | sort | uniq -d)" ]; }

# kill_at SECONDS ARGS...: start iac ARGS, kill -9 it after SECONDS, then check
kill_at() {
    local delay=$1
    shift
    bg_iac "$T/k.log" "$@"
    local pid=$BG_PID
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    bg_wait "$pid"
    local snap
    snap=$(cat out/log 2>/dev/null)
    state_is_json && pass || fail "after kill -9 at ${delay}s: .iac/state.json is not valid JSON"
    # commands must die with iac: nothing more is appended after the kill
    sleep 0.6
    if [ "$snap" = "$(cat out/log 2>/dev/null)" ]; then pass; else
        fail "after kill -9 at ${delay}s: a command kept running and wrote to the log"
    fi
    run plan
    expect_rc 0
    no_dup_lines && pass || fail "after kill -9 at ${delay}s: duplicate lines: $(sort out/log | uniq -d | tr '\n' ' ')"
}

for delay in 0.05 0.3 0.5 0.8; do
    step "kill -9 during apply at ${delay}s"
    kill_at "$delay" apply -auto-approve
done

step "apply after the kills converges: every line exactly once"
run apply -auto-approve
expect_rc 0
for i in 1 2 3 4 5 6 7 8; do
    expect_eq "r$i in the log" 1 "$(grep -cx "r$i" out/log)"
done
for i in $(seq 1 20); do
    [ "$(cat "out/f$i" 2>/dev/null)" = "file $i" ] || fail "out/f$i missing or wrong"
done
run plan -detailed-exitcode
expect_rc 0
run state list
expect_eq "resources in state" 28 "$(printf '%s\n' "$OUT" | grep -c .)"
expect_no_file .iac/lock

step "kill -9 during destroy, then destroy converges"
for delay in 0.1 0.3; do
    kill_at "$delay" destroy -auto-approve
done
run destroy -auto-approve
expect_rc 0
for i in 1 2 3 4 5 6 7 8; do
    expect_eq "gone-r$i in the log" 1 "$(grep -cx "gone-r$i" out/log)"
done
run state list
expect_eq "state after destroy" "" "$OUT"
expect_no_file out/f1

step "kill -9 of the whole process group (as a crashed terminal would) during apply"
: >out/log
bg_iac "$T/k2.log" apply -auto-approve
pid=$BG_PID
sleep 0.4
kill -9 -- "-$pid"
bg_wait "$pid"
state_is_json && pass || fail "state not valid JSON after group kill"
run plan
expect_rc 0
run apply -auto-approve
expect_rc 0
no_dup_lines && pass || fail "duplicates after group kill"
for i in 1 2 3 4 5 6 7 8; do
    expect_eq "r$i once after group kill" 1 "$(grep -cx "r$i" out/log)"
done

step "many quick kills while writing state for many files"
newcfg many
mkdir out
cat >main.lua <<EOF
for i = 1, 300 do
  resource "local.file" ("f" .. i) { path = "$T/many/out/f" .. i, content = "v" .. i }
end
EOF
for delay in 0.02 0.05 0.08 0.1 0.15 0.2; do
    bg_iac "$T/k3.log" apply -auto-approve
    pid=$BG_PID
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    bg_wait "$pid"
    state_is_json && pass || fail "state not valid JSON after kill at $delay"
    [ -e .iac/state.json ] && { [ "$(file_mode .iac/state.json)" = 600 ] && pass || fail "state mode not 600"; }
    ls .iac/ >>"$T/iacdir.log"
done
run plan
expect_rc 0
run apply -auto-approve
expect_rc 0
run plan -detailed-exitcode
expect_rc 0
run state list
expect_eq "300 in state" 300 "$(printf '%s\n' "$OUT" | grep -c .)"
# no temp files left behind
# (history.git is there once an apply recorded a change; a no-op apply records none)
expect_eq "files in .iac after a clean apply" "state.json state.json.backup" "$(ls .iac | grep -v '^state\.journal$\|^history\.git$' | tr '\n' ' ' | sed 's/ $//')"

step "temp files of a killed run are removed when its stale lock is taken over"
newcfg temps
cat >main.lua <<'EOF'
resource "local.exec" "slow" { create = "sleep 5" }
EOF
bg_iac "$T/k4.log" apply -auto-approve
pid=$BG_PID
sleep 0.5
kill -9 "$pid" 2>/dev/null
bg_wait "$pid"
echo '{"half' >.iac/state.json.tmp.Ab12Cd
run plan
expect_rc 0
expect_contains err "took over a stale lock"
expect_no_file .iac/state.json.tmp.Ab12Cd

finish
