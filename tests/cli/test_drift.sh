#!/usr/bin/env bash
# Refresh: changes made by hand show as drift ("changed outside iac"), apply
# repairs them; -refresh=false does not read resources back.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir out
cat >main.lua <<EOF
resource "local.file" "a" { path = "$T/cfg/out/a", content = "hello" }
resource "local.file" "b" { path = "$T/cfg/out/b", content = "bee" }
resource "local.exec" "e" {
  create  = "touch $T/cfg/out/e",
  destroy = "rm -f $T/cfg/out/e",
  check   = "test -f $T/cfg/out/e",
}
EOF

step "apply"
run apply -auto-approve
expect_rc 0
expect_file_content out/a hello

step "file edited by hand shows as update, changed outside iac"
echo "tampered" >out/a
run plan -detailed-exitcode
expect_rc 2
expect_contains out 'changed outside iac'
expect_contains out '~ resource "local.file" "a"'
expect_contains out 'Plan: 0 to add, 1 to change, 0 to destroy.'
expect_not_contains out 'local.file.b will'
run plan -json
expect_json '[c["action"] for c in d["resource_changes"] if c["address"]=="local.file.a"][0]' update
expect_json '[c["action"] for c in d["resource_changes"] if c["address"]=="local.file.b"][0]' no-op

step "apply repairs the edited file"
run apply -auto-approve
expect_rc 0
expect_file_content out/a hello
run plan -detailed-exitcode
expect_rc 0

step "file deleted by hand shows as create, changed outside iac"
rm out/b
run plan -detailed-exitcode
expect_rc 2
expect_match out '(changed|deleted) outside (of )?iac'
expect_contains out '+ resource "local.file" "b"'
expect_contains out 'Plan: 1 to add, 0 to change, 0 to destroy.'
run plan -json
expect_json '[c["action"] for c in d["resource_changes"] if c["address"]=="local.file.b"][0]' create

step "-refresh=false does not see the deletion"
run plan -refresh=false -detailed-exitcode
expect_rc 0

step "apply recreates the deleted file"
run apply -auto-approve
expect_rc 0
expect_file_content out/b bee

step "mode changed by hand shows as drift"
chmod 0600 out/a
run plan -detailed-exitcode
expect_rc 2
expect_match out '(changed|deleted) outside (of )?iac'
expect_contains out '~ resource "local.file" "a"'
run apply -auto-approve
expect_eq "mode repaired" 644 "$(file_mode out/a)"

step "local.exec whose check fails is recreated"
rm out/e
run plan -detailed-exitcode
expect_rc 2
expect_contains out '+ resource "local.exec" "e"'
expect_match out '(changed|deleted) outside (of )?iac'
run apply -auto-approve
expect_rc 0
expect_file out/e
run plan -detailed-exitcode
expect_rc 0

finish
