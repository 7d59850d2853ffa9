#!/usr/bin/env bash
# plan -json: one JSON document on stdout with format_version,
# resource_changes[] (address, type, name, action, before, after) and
# output_changes; every action kind appears with the right before/after.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir out
cat >main.lua <<EOF
variable "gen" { default = "1" }
resource "local.file" "keep"   { path = "$T/cfg/out/keep",   content = "same" }
resource "local.file" "change" { path = "$T/cfg/out/change", content = "old" }
resource "local.file" "move"   { path = "$T/cfg/out/move1",  content = "m" }
resource "local.file" "gone"   { path = "$T/cfg/out/gone",   content = "g" }
output "o_keep" { value = "k" }
output "o_change" { value = "before" }
output "o_gone" { value = "bye" }
EOF

step "plan -json before anything exists"
run plan -json
expect_rc 0
if printf '%s' "$OUT" | "$PY" -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then
    pass
else
    fail "plan -json stdout is not one JSON document"
fi
expect_json 'd["format_version"] is not None' true
expect_json 'sorted(c["address"] for c in d["resource_changes"])' \
    '["local.file.change", "local.file.gone", "local.file.keep", "local.file.move"]'
expect_json 'sorted(set(c["action"] for c in d["resource_changes"]))' '["create"]'
expect_json '[c["before"] for c in d["resource_changes"]]' '[null, null, null, null]'
expect_json '[c for c in d["resource_changes"] if c["address"]=="local.file.keep"][0]["type"]' local.file
expect_json '[c for c in d["resource_changes"] if c["address"]=="local.file.keep"][0]["name"]' keep
expect_json '[c for c in d["resource_changes"] if c["address"]=="local.file.keep"][0]["after"]["content"]' same
expect_json '[c for c in d["resource_changes"] if c["address"]=="local.file.keep"][0]["after"]["path"]' "$T/cfg/out/keep"
expect_json 'isinstance(d["output_changes"], dict) or isinstance(d["output_changes"], list)' true
expect_not_contains out 'iac will perform'
expect_no_file out/keep

step "-json with -detailed-exitcode"
run plan -json -detailed-exitcode
expect_rc 2

run apply -auto-approve
expect_rc 0

cat >main.lua <<EOF
variable "gen" { default = "1" }
resource "local.file" "keep"   { path = "$T/cfg/out/keep",   content = "same" }
resource "local.file" "change" { path = "$T/cfg/out/change", content = "new" }
resource "local.file" "move"   { path = "$T/cfg/out/move2",  content = "m" }
resource "local.file" "add"    { path = "$T/cfg/out/add",    content = "a" }
output "o_keep" { value = "k" }
output "o_change" { value = "after" }
output "o_add" { value = "hi" }
EOF

step "plan -json with every action"
run plan -json
expect_rc 0
A='{c["address"]: c for c in d["resource_changes"]}'
expect_json "$A[\"local.file.keep\"][\"action\"]" no-op
expect_json "$A[\"local.file.change\"][\"action\"]" update
expect_json "$A[\"local.file.move\"][\"action\"]" replace
expect_json "$A[\"local.file.gone\"][\"action\"]" delete
expect_json "$A[\"local.file.add\"][\"action\"]" create
expect_json "$A[\"local.file.change\"][\"before\"][\"content\"]" old
expect_json "$A[\"local.file.change\"][\"after\"][\"content\"]" new
expect_json "$A[\"local.file.move\"][\"before\"][\"path\"]" "$T/cfg/out/move1"
expect_json "$A[\"local.file.move\"][\"after\"][\"path\"]" "$T/cfg/out/move2"
expect_json "$A[\"local.file.gone\"][\"before\"][\"content\"]" g
expect_json "$A[\"local.file.gone\"][\"after\"]" null
expect_json "$A[\"local.file.add\"][\"before\"]" null
expect_json "$A[\"local.file.keep\"][\"before\"] == $A[\"local.file.keep\"][\"after\"]" true
expect_json "set(c['action'] for c in d['resource_changes']) <= {'create','update','replace','delete','no-op'}" true

step "output_changes"
# accept either {name: {...}} (Terraform's shape) or [{name:..., ...}]
O='(d["output_changes"] if isinstance(d["output_changes"], dict) else {o["name"]: o for o in d["output_changes"]})'
expect_json "sorted($O.keys())" '["o_add", "o_change", "o_gone", "o_keep"]'
expect_json "$O[\"o_change\"][\"before\"]" before
expect_json "$O[\"o_change\"][\"after\"]" after
expect_json "$O[\"o_add\"][\"after\"]" hi
expect_json "$O[\"o_gone\"][\"after\"]" null

step "plan -destroy -json"
run plan -destroy -json
expect_rc 0
expect_json 'sorted(c["address"] for c in d["resource_changes"] if c["action"]=="delete")' \
    '["local.file.change", "local.file.gone", "local.file.keep", "local.file.move"]'
# local.file.add is not in state: a destroy plan has nothing to do with it and
# must not claim it exists unchanged ("no-op" with before = null)
expect_json '[c["address"] for c in d["resource_changes"] if c["action"] != "delete" and c["before"] is None and c["action"] != "create"]' '[]'
expect_json '[c["address"] for c in d["resource_changes"] if c["action"] == "create"]' '[]'

step "show -json PLANFILE is the same document"
run plan -out="$T/p.plan" -json
expect_rc 0
cp "$T/.out" "$T/plan.json"
run show -json "$T/p.plan"
expect_rc 0
expect_json 'sorted((c["address"], c["action"]) for c in d["resource_changes"])' \
    "$(OUT=$(cat "$T/plan.json") json_get 'sorted((c["address"], c["action"]) for c in d["resource_changes"])')"

step "errors with -json still exit 1"
echo 'resource "local.file" "bad" { path = 1 }' >>main.lua
run plan -json
expect_rc 1

finish
