#!/usr/bin/env bash
# apply → no-op plan → update → destroy, -detailed-exitcode, outputs, -chdir,
# state file mode and lock file cleanup.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir out
cat >main.lua <<EOF
variable "version" { default = "v1", description = "app version" }
local conf = resource "local.file" "conf" {
  path = "$T/cfg/out/app.conf", content = "version=" .. var.version, mode = "0640",
}
resource "local.exec" "reload" {
  create  = "echo created >> $T/cfg/out/reload.log; touch $T/cfg/out/reloaded",
  destroy = "rm -f $T/cfg/out/reloaded",
  check   = "test -f $T/cfg/out/reloaded",
  depends_on = { conf },
}
for i = 1, 3 do resource "local.file" ("shard" .. i) { path = "$T/cfg/out/shard" .. i, content = tostring(i) } end
output "conf_path" { value = conf.path }
output "conf_sha" { value = conf.sha256 }
output "n" { value = 3 }
EOF

step "validate"
run validate
expect_rc 0

step "first plan shows 5 creates, -detailed-exitcode 2"
run plan -detailed-exitcode
expect_rc 2
expect_contains out 'Plan: 5 to add, 0 to change, 0 to destroy.'
expect_contains out '+ resource "local.file" "conf"'
expect_no_file .iac/state.json
expect_no_file out/app.conf

step "plan without -detailed-exitcode exits 0 even with changes"
run plan
expect_rc 0

step "apply -auto-approve creates everything"
run apply -auto-approve
expect_rc 0
expect_file_content out/app.conf "version=v1"
expect_file_content out/shard2 "2"
expect_file out/reloaded
expect_eq "file mode of out/app.conf" 640 "$(file_mode out/app.conf 2>/dev/null)"
expect_eq "file mode of out/shard1 (default)" 644 "$(file_mode out/shard1 2>/dev/null)"
expect_contains out 'Apply complete! Resources: 5 added, 0 changed, 0 destroyed.'
expect_contains err 'local.file.conf: creating...'
expect_match err 'local\.file\.conf: created \([0-9]+(\.[0-9]+)?s\)'
expect_match err 'local\.exec\.reload: created \([0-9]+(\.[0-9]+)?s\)'
expect_file .iac/state.json
expect_eq "state file mode" 600 "$(file_mode .iac/state.json 2>/dev/null)"
expect_no_file .iac/lock
expect_eq "create command runs once" 1 "$(grep -c created out/reload.log 2>/dev/null)"

step "re-plan is a no-op: -detailed-exitcode 0"
run plan -detailed-exitcode
expect_rc 0
expect_contains out 'No changes'
expect_not_contains out 'to add'
expect_no_file .iac/lock

step "re-apply changes nothing and does not re-run the create command"
run apply -auto-approve
expect_rc 0
expect_eq "create command ran once" 1 "$(grep -c created out/reload.log 2>/dev/null)"

step "outputs"
run output
expect_rc 0
expect_contains out "conf_path = \"$T/cfg/out/app.conf\""
expect_contains out 'n = 3'
run output conf_path
expect_rc 0
expect_eq "raw output value" "$T/cfg/out/app.conf" "$OUT"
run output conf_sha
expect_eq "output of a computed attribute" "$(sha256sum out/app.conf | cut -d' ' -f1)" "$OUT"
run output -json
expect_rc 0
expect_json 'd["conf_path"]["value"]' "$T/cfg/out/app.conf"
expect_json 'd["n"]["value"]' 3
expect_json 'd["conf_path"]["sensitive"]' false
run output -json conf_path
expect_rc 0
expect_json 'd' "$T/cfg/out/app.conf"
run output nosuch
expect_rc 1
expect_contains err 'nosuch'

step "a variable change is an in-place update"
run plan -detailed-exitcode -var version=v2
expect_rc 2
expect_contains out '~ resource "local.file" "conf"'
expect_contains out 'Plan: 0 to add, 1 to change, 0 to destroy.'
expect_contains out '"version=v1" -> "version=v2"'
run apply -auto-approve -var version=v2
expect_rc 0
expect_contains out '0 added, 1 changed, 0 destroyed'
expect_file_content out/app.conf "version=v2"
expect_match err 'local\.file\.conf: (modifying|updating)\.\.\.'
run plan -detailed-exitcode -var version=v2
expect_rc 0

step "-detailed-exitcode 1 on error"
cp main.lua main.lua.good
echo 'resource "local.file" "broken" { path = 42 }' >>main.lua
run plan -detailed-exitcode -var version=v2
expect_rc 1
cp main.lua.good main.lua
echo 'this is not lua (' >>main.lua
run plan -detailed-exitcode
expect_rc 1
expect_match err 'main\.lua:[0-9]+'
cp main.lua.good main.lua

step "removing a resource from the configuration deletes it"
sed -i 's/for i = 1, 3 do/for i = 1, 2 do/' main.lua
run plan -detailed-exitcode -var version=v2
expect_rc 2
expect_contains out '- resource "local.file" "shard3"'
expect_contains out 'Plan: 0 to add, 0 to change, 1 to destroy.'
run apply -auto-approve -var version=v2
expect_rc 0
expect_no_file out/shard3
expect_file out/shard2
expect_contains out '0 added, 0 changed, 1 destroyed'

step "-chdir runs in another directory"
cd "$T"
run -chdir=cfg plan -detailed-exitcode -var version=v2
expect_rc 0
run -chdir=cfg output conf_path
expect_eq "output with -chdir" "$T/cfg/out/app.conf" "$OUT"
expect_no_file "$T/.iac"
cd "$T/cfg"

step "plan -destroy and destroy"
run plan -destroy -detailed-exitcode -var version=v2
expect_rc 2
expect_contains out 'Plan: 0 to add, 0 to change, 4 to destroy.'
expect_file out/app.conf
run destroy -auto-approve -var version=v2
expect_rc 0
expect_no_file out/app.conf
expect_no_file out/shard1
expect_no_file out/reloaded
expect_contains err 'local.file.conf: destroying...'
expect_match err 'local\.file\.conf: destroyed \([0-9.]+s\)'
expect_no_file .iac/lock

step "after destroy, state is empty and plan wants to create again"
run state list
expect_rc 0
expect_eq "state list after destroy" "" "$OUT"
run output
expect_not_contains out 'conf_path'
run output conf_path
expect_rc_not 0
expect_not_contains out "$T/cfg/out/app.conf"
run plan -detailed-exitcode -var version=v2
expect_rc 2
expect_contains out 'Plan: 4 to add, 0 to change, 0 to destroy.'

step "destroy without -auto-approve and no terminal refuses"
run apply -auto-approve -var version=v2
run destroy -var version=v2
expect_rc 1
expect_contains err '-auto-approve'
expect_file out/app.conf

step "version and help"
run version
expect_rc 0
expect_match out '^iac [0-9]+\.[0-9]+'
run help
expect_rc 0
for c in validate plan apply destroy graph output state version help; do
    expect_contains out "$c"
done
run help plan
expect_rc 0
expect_contains out '-detailed-exitcode'
run nosuchcommand
expect_rc_not 0
expect_contains err 'nosuchcommand'

finish
