#!/usr/bin/env bash
# Human plan output: +, ~, -/+, - markers, the "Plan: ..." line, attribute-level
# before -> after, and colour only on a terminal (off with -no-color, NO_COLOR).
. "$(dirname "$0")/lib.sh"

ESC=$(printf '\033')

newcfg cfg
mkdir out
cat >main.lua <<EOF
variable "gen" { default = "1" }
resource "local.file" "keep"   { path = "$T/cfg/out/keep",   content = "same" }
resource "local.file" "change" { path = "$T/cfg/out/change", content = "old" }
resource "local.file" "move"   { path = "$T/cfg/out/move1",  content = "m" }
resource "local.file" "gone"   { path = "$T/cfg/out/gone",   content = "g" }
resource "local.exec" "trig" {
  create = "echo create >> $T/cfg/out/trig.log", destroy = "echo destroy >> $T/cfg/out/trig.log",
  triggers = { gen = var.gen },
}
EOF

step "initial apply"
run apply -auto-approve
expect_rc 0

cat >main.lua <<EOF
variable "gen" { default = "2" }
resource "local.file" "keep"   { path = "$T/cfg/out/keep",   content = "same" }
resource "local.file" "change" { path = "$T/cfg/out/change", content = "new" }
resource "local.file" "move"   { path = "$T/cfg/out/move2",  content = "m" }
resource "local.file" "add"    { path = "$T/cfg/out/add",    content = "a" }
resource "local.exec" "trig" {
  create = "echo create >> $T/cfg/out/trig.log", destroy = "echo destroy >> $T/cfg/out/trig.log",
  triggers = { gen = var.gen },
}
EOF

step "plan shows every kind of change (no terminal: no colour)"
run plan -detailed-exitcode
expect_rc 2
expect_match out '^  \+ resource "local\.file" "add"'
expect_match out '^  ~ resource "local\.file" "change"'
expect_match out '^-/\+ resource "local\.file" "move"|^  -/\+ resource "local\.file" "move"'
expect_match out '-/\+ resource "local\.exec" "trig"'
expect_match out '^  - resource "local\.file" "gone"'
expect_not_contains out 'resource "local.file" "keep"'
expect_contains out '"old" -> "new"'
expect_contains out 'Plan: 3 to add, 1 to change, 3 to destroy.'
# the attribute that forces replacement is marked
expect_contains out 'forces replacement'
expect_not_contains out "$ESC"
expect_not_contains err "$ESC"

step "-no-color and NO_COLOR"
run -no-color plan
expect_rc 0
expect_not_contains out "$ESC"
run_env "NO_COLOR=1" plan
expect_not_contains out "$ESC"

step "colour on a terminal"
run_tty "" plan
expect_contains out "$ESC["
expect_contains out '3 to add, 1 to change, 3 to destroy.'
run_tty "" -no-color plan
expect_contains out 'Plan: 3 to add'
expect_not_contains out "$ESC["
run_tty "" plan -no-color
expect_not_contains out "$ESC["
TTY_ENV="NO_COLOR=1" run_tty "" plan
expect_contains out 'Plan: 3 to add'
expect_not_contains out "$ESC["

step "apply the changes: the Plan line's numbers match what apply did"
run apply -auto-approve
expect_rc 0
expect_contains out 'Apply complete! Resources: 3 added, 1 changed, 3 destroyed.'
expect_file out/move2
expect_no_file out/move1
expect_no_file out/gone
expect_file_content out/change new
expect_eq "trigger replacement ran destroy then create" "create
destroy
create" "$(cat out/trig.log)"
expect_not_contains err "$ESC"

step "no-op plan"
run plan
expect_rc 0
expect_contains out 'No changes.'

finish
