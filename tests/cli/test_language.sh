#!/usr/bin/env bash
# The language and the local provider: helpers file(), sha256(), jsonencode();
# local.file source/mode/sha256; local.exec environment, working_dir,
# computed stdout used by another resource (known after apply); several
# .lua files; apply -json output is machine-readable.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir -p out lib wd
printf 'hello file\n' >data.txt
cat >lib/names.lua <<'EOF'
return { prefix = "pre-" }
EOF
cat >main.lua <<EOF
local names = require("lib.names")
local a = resource "local.exec" "a" {
  create = "printf 'from-a:%s:%s' \"\$FOO\" \"\$(basename \$(pwd))\"",
  environment = { FOO = "bar" },
  working_dir = "$T/cfg/wd",
}
resource "local.file" "b" {
  path = "$T/cfg/out/b",
  content = a.stdout .. "|" .. file("data.txt") .. "|" .. sha256("x") .. "|" .. jsonencode({ k = 1 }),
}
local c = resource "local.file" "c" { path = "$T/cfg/out/c", source = "data.txt", mode = "0600" }
resource "local.file" "d" { path = "$T/cfg/out/d", content = names.prefix .. c.sha256 }
output "a_stdout" { value = a.stdout }
output "list" { value = { 1, 2, 3 } }
output "map" { value = { x = "y" } }
EOF

step "plan: values only known after apply"
run plan
expect_rc 0
expect_contains out '(known after apply)'
expect_contains out 'Plan: 4 to add, 0 to change, 0 to destroy.'
run plan -json
expect_json '[c["after_unknown"] for c in d["resource_changes"] if c["address"]=="local.file.b"][0]["content"]' true

step "apply: environment, working_dir, stdout, helpers"
run apply -auto-approve
expect_rc 0
expect_file_content out/b "from-a:bar:wd|hello file
|2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881|{\"k\":1}"
expect_file_content out/c "hello file
"
expect_eq "mode from config" 600 "$(file_mode out/c)"
expect_file_content out/d "pre-$(sha256sum data.txt | cut -d' ' -f1)"
run output a_stdout
expect_eq "stdout output" "from-a:bar:wd" "$OUT"
run output -json list
expect_json 'd' '[1, 2, 3]'
run output -json map
expect_json 'd' '{"x": "y"}'
run plan -detailed-exitcode
expect_rc 0

step "local.file source: the source file changing is a change"
printf 'new data\n' >data.txt
run plan -detailed-exitcode
expect_rc 2
run apply -auto-approve
expect_rc 0
expect_file_content out/c "new data
"
expect_file_content out/d "pre-$(sha256sum data.txt | cut -d' ' -f1)"
run plan -detailed-exitcode
expect_rc 0

step "file() of a missing file and outside the directory are errors with a place"
cp main.lua main.lua.good
echo 'local x = file("nosuch.txt")' >>main.lua
run validate
expect_rc 1
expect_match err '^error: main\.lua:[0-9]+: .*nosuch\.txt'
cp main.lua.good main.lua

step "plan -destroy works when the configuration concatenates a value known only after apply"
run plan -destroy -detailed-exitcode
expect_rc 2
expect_contains out 'Plan: 0 to add, 0 to change, 4 to destroy.'
expect_not_contains err 'concatenate'
[ "$RC" = 1 ] && expect_match err '^error: main\.lua:[0-9]+: '

step "apply -json: stdout is one JSON document (no human text mixed in)"
printf 'newer\n' >data.txt
run apply -auto-approve -json
expect_rc 0
if printf '%s' "$OUT" | "$PY" -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null; then
    pass
elif printf '%s\n' "$OUT" | "$PY" -c '
import json, sys
for l in sys.stdin:
    if l.strip(): json.loads(l)' 2>/dev/null; then
    pass
else
    fail "apply -json stdout is neither a JSON document nor JSON lines"
fi
expect_not_contains out 'Apply complete!'

step "destroy -json likewise"
run destroy -auto-approve -json
expect_rc 0
expect_not_contains out 'Destroy complete!'

step "a long-running local.exec is stopped by its timeout"
newcfg to
cat >main.lua <<EOF
resource "local.exec" "slow" { create = "sleep 5; touch $T/to/done", timeout = "1s" }
EOF
t0=$SECONDS
run apply -auto-approve
expect_rc 1
expect_match err '(timed out|timeout)'
if [ $((SECONDS - t0)) -le 4 ]; then pass; else fail "timeout = 1s did not stop a 5 s command"; fi
sleep 0.2
expect_no_file done
run state list
expect_eq "timed-out resource not in state" "" "$OUT"

finish
