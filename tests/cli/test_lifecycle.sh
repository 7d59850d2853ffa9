#!/usr/bin/env bash
# lifecycle: create_before_destroy orders a replacement (new created before
# old destroyed), prevent_destroy makes a plan that would destroy fail,
# ignore_changes is honoured, triggers force replacement.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir out
write_cfg() { # $1 = generation, $2 = create_before_destroy (true/false)
    cat >main.lua <<EOF
variable "gen" { default = "$1" }
resource "local.exec" "svc" {
  create  = "echo create-$1 >> $T/cfg/out/order.log",
  destroy = "echo destroy-$1 >> $T/cfg/out/order.log",
  triggers = { gen = var.gen },
  lifecycle = { create_before_destroy = $2 },
}
EOF
}

step "create_before_destroy: new created before old destroyed"
write_cfg 1 true
run apply -auto-approve
expect_rc 0
write_cfg 2 true
run plan
expect_match out '\+/-|-/\+'
expect_contains out 'Plan: 1 to add, 0 to change, 1 to destroy.'
run apply -auto-approve
expect_rc 0
expect_eq "order" "create-1
create-2
destroy-1" "$(cat out/order.log)"
run plan -detailed-exitcode
expect_rc 0

step "without create_before_destroy: old destroyed first"
: >out/order.log
write_cfg 3 false
run apply -auto-approve
expect_rc 0
expect_eq "order" "destroy-2
create-3" "$(cat out/order.log)"

step "create_before_destroy on a dependency: dependents see the new one before the old goes"
newcfg cbd2
mkdir out
write_cfg2() {
    cat >main.lua <<EOF
local a = resource "local.exec" "a" {
  create  = "echo create-a-$1 >> $T/cbd2/out/log",
  destroy = "echo destroy-a-$1 >> $T/cbd2/out/log",
  triggers = { gen = "$1" },
  lifecycle = { create_before_destroy = true },
}
resource "local.exec" "b" {
  create  = "echo create-b-$1 >> $T/cbd2/out/log",
  destroy = "echo destroy-b-$1 >> $T/cbd2/out/log",
  triggers = { a = a.stdout, gen = "$1" },
  depends_on = { a },
  lifecycle = { create_before_destroy = true },
}
EOF
}
write_cfg2 1
run apply -auto-approve
expect_rc 0
write_cfg2 2
run apply -auto-approve
expect_rc 0
log=$(cat out/log)
pos() { printf '%s\n' "$log" | grep -nx "$1" | cut -d: -f1; }
if [ -n "$(pos create-a-2)" ] && [ -n "$(pos destroy-a-1)" ] && [ -n "$(pos create-b-2)" ] &&
   [ "$(pos create-a-2)" -lt "$(pos create-b-2)" ] && [ "$(pos create-b-2)" -lt "$(pos destroy-b-1)" ] &&
   [ "$(pos destroy-b-1)" -lt "$(pos destroy-a-1)" ]; then
    pass
else
    fail "expected create-a-2 < create-b-2 < destroy-b-1 < destroy-a-1, log: $(echo $log)"
fi

step "create_before_destroy on a local.file replaced at the same path keeps the file"
newcfg cbdfile
cat >main.lua <<EOF
variable "g" { default = "1" }
resource "local.file" "x" {
  path = "$T/cbdfile/x", content = "hello",
  triggers = { g = var.g },
  lifecycle = { create_before_destroy = true },
}
EOF
run apply -auto-approve
expect_rc 0
run apply -auto-approve -replace local.file.x
expect_rc 0
expect_file_content x hello
run plan -detailed-exitcode
expect_rc 0
run apply -auto-approve -var g=2
expect_rc 0
expect_file_content x hello
run plan -detailed-exitcode -var g=2
expect_rc 0

step "prevent_destroy: a plan that would destroy the resource fails"
newcfg pd
mkdir out
cat >main.lua <<EOF
variable "p" { default = "$T/pd/out/keep" }
resource "local.file" "keep" {
  path = var.p, content = "precious",
  lifecycle = { prevent_destroy = true },
}
resource "local.file" "other" { path = "$T/pd/out/other", content = "o" }
EOF
run apply -auto-approve
expect_rc 0
expect_file out/keep
step "prevent_destroy: in-place update is allowed"
sed -i 's/"precious"/"precious2"/' main.lua
run apply -auto-approve
expect_rc 0
expect_file_content out/keep precious2
step "prevent_destroy: replacement refused"
run plan -var p="$T/pd/out/keep2"
expect_rc 1
expect_contains err 'local.file.keep'
expect_match err 'prevent_destroy'
run apply -auto-approve -var p="$T/pd/out/keep2"
expect_rc 1
expect_file out/keep
expect_no_file out/keep2
step "prevent_destroy: destroy refused"
run plan -destroy
expect_rc 1
expect_match err 'prevent_destroy'
run destroy -auto-approve
expect_rc 1
expect_file out/keep
expect_file out/other
step "prevent_destroy: -target elsewhere is fine"
run destroy -auto-approve -target local.file.other
expect_rc 0
expect_no_file out/other
expect_file out/keep

step "ignore_changes: listed attribute changes are ignored"
newcfg ig
mkdir out
cat >main.lua <<EOF
variable "c" { default = "one" }
resource "local.file" "f" {
  path = "$T/ig/out/f", content = var.c, mode = "0644",
  lifecycle = { ignore_changes = { "content" } },
}
EOF
run apply -auto-approve
expect_rc 0
expect_file_content out/f one
run plan -detailed-exitcode -var c=two
expect_rc 0
run apply -auto-approve -var c=two
expect_rc 0
expect_file_content out/f one
step "ignore_changes: drift of an ignored attribute is ignored too"
echo "edited" >out/f
run plan -detailed-exitcode
expect_rc 0
step "ignore_changes: other attributes still update"
sed -i 's/"0644"/"0600"/' main.lua
run plan -detailed-exitcode
expect_rc 2
expect_contains out 'Plan: 0 to add, 1 to change, 0 to destroy.'
run apply -auto-approve
expect_eq "mode updated" 600 "$(file_mode out/f)"
step "ignore_changes of an unknown attribute is an error"
sed -i 's/{ "content" }/{ "contnt" }/' main.lua
run validate
expect_rc 1
expect_contains err 'contnt'

step "triggers: a change forces replacement, same triggers do not"
newcfg tr
mkdir out
cat >main.lua <<EOF
variable "v" { default = "1" }
variable "unrelated" { default = "x" }
local conf = resource "local.file" "conf" { path = "$T/tr/out/conf", content = "v" .. var.v }
resource "local.exec" "reload" {
  create  = "echo reload >> $T/tr/out/reload.log",
  destroy = "echo unload >> $T/tr/out/reload.log",
  triggers = { conf = conf.sha256 },
}
resource "local.file" "u" { path = "$T/tr/out/u", content = var.unrelated }
EOF
run apply -auto-approve
expect_rc 0
expect_eq "reload ran once" "reload" "$(cat out/reload.log)"
run apply -auto-approve -var unrelated=y
expect_rc 0
expect_eq "unrelated change: no reload" "reload" "$(cat out/reload.log)"
run plan -var v=2 -var unrelated=y -json
expect_json '[c["action"] for c in d["resource_changes"] if c["address"]=="local.exec.reload"][0]' replace
expect_json '[c["action"] for c in d["resource_changes"] if c["address"]=="local.file.conf"][0]' update
run apply -auto-approve -var v=2 -var unrelated=y
expect_rc 0
expect_eq "conf change: reload replaced" "reload
unload
reload" "$(cat out/reload.log)"
run plan -detailed-exitcode -var v=2 -var unrelated=y
expect_rc 0

finish
