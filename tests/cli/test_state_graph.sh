#!/usr/bin/env bash
# iac state list / show / rm, iac show, iac graph (DOT), iac validate, the
# state file format basics (mode 0600, lineage/serial grow, valid JSON).
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir -p out modules/m
cat >modules/m/main.lua <<EOF
variable "dir" { }
resource "local.file" "inner" { path = var.dir .. "/inner", content = "i" }
EOF
cat >main.lua <<EOF
local a = resource "local.file" "a" { path = "$T/cfg/out/a", content = "a" }
local b = resource "local.file" "b" { path = "$T/cfg/out/b", content = a.sha256 }
resource "local.exec" "c" { create = "echo hi-from-c", depends_on = { b } }
local m = module "m" { source = "./modules/m", dir = "$T/cfg/out" }
resource "local.file" "after_m" { path = "$T/cfg/out/after_m", content = "x", depends_on = { m } }
EOF

step "graph before apply: DOT with every resource and edges dependent -> dependency"
run graph
expect_rc 0
expect_match out '^digraph'
expect_match out '\}[[:space:]]*$'
for r in local.file.a local.file.b local.exec.c module.m.local.file.inner local.file.after_m; do
    expect_contains out "\"$r\""
done
expect_match out '"local\.file\.b" -> "local\.file\.a"'
expect_match out '"local\.exec\.c" -> "local\.file\.b"'
expect_match out '"local\.file\.after_m" -> "module\.m\.local\.file\.inner"'
expect_not_match out '"local\.file\.a" -> '
if command -v dot >/dev/null; then
    printf '%s\n' "$OUT" | dot -Tsvg >/dev/null 2>&1 && pass || fail "graph output is not valid DOT"
fi
expect_no_file .iac/state.json

step "state list before apply is empty"
run state list
expect_rc 0
expect_eq "state list" "" "$OUT"

step "apply; state file"
run apply -auto-approve
expect_rc 0
expect_eq "state mode" 600 "$(file_mode .iac/state.json)"
OUT=$(cat .iac/state.json)
expect_json 'd["serial"] > 0' true
expect_json 'isinstance(d["lineage"], str) and len(d["lineage"]) > 8' true
lineage=$(json_get 'd["lineage"]')
serial=$(json_get 'd["serial"]')

step "state list"
run state list
expect_rc 0
expect_eq "state list" "local.exec.c
local.file.a
local.file.after_m
local.file.b
module.m.local.file.inner" "$(printf '%s\n' "$OUT" | sort)"

step "state show"
run state show local.file.b
expect_rc 0
expect_contains out "$T/cfg/out/b"
expect_contains out "$(sha256sum out/a | cut -d' ' -f1)"
run state show local.exec.c
expect_rc 0
expect_contains out 'hi-from-c'
run state show module.m.local.file.inner
expect_rc 0
expect_contains out "$T/cfg/out/inner"
run state show local.file.nosuch
expect_rc 1
expect_contains err 'local.file.nosuch'
run state show
expect_rc 1

step "show (state)"
run show
expect_rc 0
expect_contains out 'local.file.a'
expect_contains out "$T/cfg/out/b"
run show -json
expect_rc 0
expect_json 'd is not None' true

step "state rm forgets without touching the object"
run state rm local.file.a
expect_rc 0
expect_file out/a
run state list
expect_not_match out '^local\.file\.a$'
expect_contains out 'local.file.b'
OUT=$(cat .iac/state.json)
expect_json 'd["lineage"]' "$lineage"
expect_json "d['serial'] > $serial" true
expect_eq "state mode after rm" 600 "$(file_mode .iac/state.json)"
expect_no_file .iac/lock
run state rm local.file.a
expect_rc 1
expect_contains err 'local.file.a'

step "after state rm, plan wants to create it again (and overwrite the file)"
run plan -detailed-exitcode
expect_rc 2
expect_contains out '+ resource "local.file" "a"'
expect_contains out 'Plan: 1 to add, 0 to change, 0 to destroy.'

step "state rm of several addresses and of a module resource"
run state rm local.exec.c module.m.local.file.inner
expect_rc 0
run state list
expect_not_contains out 'local.exec.c'
expect_not_contains out 'module.m.local.file.inner'
expect_file out/inner

step "apply again converges"
run apply -auto-approve
expect_rc 0
run plan -detailed-exitcode
expect_rc 0

step "graph of a -destroy plan is not required; graph on a broken config fails"
echo 'resource "local.file" "a" { path = "x", content = "dup" }' >>main.lua
run graph
expect_rc 1
expect_match err '^error: main\.lua:[0-9]+: .*declared twice'

step "validate does not need or touch state, and does not run commands"
newcfg v
cat >main.lua <<EOF
resource "local.exec" "e" { create = "touch $T/v/ran", check = "touch $T/v/checked" }
EOF
run validate
expect_rc 0
expect_contains out 'valid'
expect_no_file ran
expect_no_file checked
expect_no_file .iac

step "plan does not run create commands nor create state"
run plan
expect_rc 0
expect_no_file ran
expect_no_file .iac/state.json

step "graph and state list with -chdir"
cd "$T"
run -chdir=cfg state list
expect_rc 0
expect_contains out 'local.file.b'
run -chdir=cfg graph
expect_rc 1

finish
