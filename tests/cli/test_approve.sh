#!/usr/bin/env bash
# apply/destroy without -auto-approve: no terminal → refuse, mentioning
# -auto-approve; on a terminal → show the plan and ask; only "yes" proceeds.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir out
cat >main.lua <<EOF
resource "local.file" "a" { path = "$T/cfg/out/a", content = "a" }
EOF

step "no terminal: apply refuses and says to pass -auto-approve or a plan file"
run apply
expect_rc 1
expect_contains err '-auto-approve'
expect_match err 'plan'
expect_no_file out/a
expect_no_file .iac/lock

step "no terminal, stdin says yes: still refuses (stdin is not a terminal)"
LAST_CMD="echo yes | iac apply"
echo yes | "$IAC" apply >"$T/.out" 2>"$T/.err"
RC=$?; OUT=$(cat "$T/.out"); ERR=$(cat "$T/.err")
expect_rc 1
expect_contains err '-auto-approve'
expect_no_file out/a

step "terminal, answer no: nothing happens"
run_tty "no" apply
expect_rc 1
expect_contains out '1 to add, 0 to change'
expect_contains out 'yes'
expect_no_file out/a

step "terminal, answer y (not yes): nothing happens"
run_tty "y" apply
expect_rc 1
expect_no_file out/a

step "terminal, answer yes: applies"
run_tty "yes" apply
expect_rc 0
expect_contains out '1 to add, 0 to change'
expect_contains out 'Apply complete!'
expect_file_content out/a a
expect_no_file .iac/lock

step "terminal, no changes: no question"
run_tty "" apply
expect_rc 0
expect_contains out 'No changes'

step "-input=false on a terminal refuses like no terminal"
echo 'resource "local.file" "b" { path = "'"$T"'/cfg/out/b", content = "b" }' >>main.lua
run_tty "yes" apply -input=false
expect_rc 1
expect_contains out '-auto-approve'
expect_no_file out/b

step "destroy on a terminal: no keeps everything, yes destroys"
run_tty "no" destroy
expect_rc 1
expect_file out/a
run_tty "yes" destroy
expect_rc 0
expect_no_file out/a

step "destroy with no terminal refuses"
run apply -auto-approve
run destroy
expect_rc 1
expect_contains err '-auto-approve'
expect_file out/a

finish
