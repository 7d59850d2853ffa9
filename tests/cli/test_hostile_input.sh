#!/usr/bin/env bash
# Hostile or odd input is a clear error, never a crash, and never shows a
# secret: self-referencing and deeply nested Lua tables (in triggers,
# attributes, jsonencode, jsondecode), variables that are not UTF-8 or not
# finite numbers, and a sensitive variable with a bad value.
. "$(dirname "$0")/lib.sh"

newcfg lua
step "a table that contains itself in triggers"
cat >main.lua <<'EOF'
local t = {}
t.x = t
resource "local.exec" "a" { create = "true", triggers = { t = t } }
EOF
run validate
expect_rc 1
expect_contains err "main.lua:3:"
expect_contains err "contains a table that contains itself"

step "a table that contains itself in an attribute"
cat >main.lua <<'EOF'
local t = { a = {} }
t.a.b = t
resource "local.exec" "a" { create = "true", environment = t }
EOF
run validate
expect_rc 1
expect_contains err "contains a table that contains itself"

step "jsonencode of a cycle"
cat >main.lua <<'EOF'
local t = {} t[1] = t
resource "local.file" "a" { path = "a", content = jsonencode(t) }
EOF
run validate
expect_rc 1
expect_contains err "contains a table that contains itself"

step "nesting deeper than the limit"
cat >main.lua <<'EOF'
local t = {} local c = t
for i = 1, 200 do c.x = {} c = c.x end
resource "local.file" "a" { path = "a", content = jsonencode(t) }
EOF
run validate
expect_rc 1
expect_contains err "nested more than 64 levels deep"

step "jsondecode of 200 nested lists"
cat >main.lua <<'EOF'
local v = jsondecode(string.rep("[", 200) .. string.rep("]", 200))
resource "local.file" "a" { path = "a", content = "x" }
EOF
run validate
expect_rc 1
expect_contains err "nested more than 64 levels deep"

step "64 levels are fine"
cat >main.lua <<'EOF'
local t = {} local c = t
for i = 1, 60 do c.x = {} c = c.x end
resource "local.file" "a" { path = "a", content = jsonencode(t) }
EOF
run validate
expect_rc 0

newcfg vars
cat >main.lua <<'EOF'
variable "pin" { sensitive = true, type = "number" }
variable "flag" { sensitive = true, type = "bool", default = false }
variable "s" { default = "x" }
variable "n" { type = "number", default = 1 }
resource "local.file" "a" { path = "a", content = var.s .. var.n .. var.pin .. tostring(var.flag) }
EOF
step "a sensitive number with a bad value is not echoed"
run validate -var pin=Zq9SECRET
expect_rc 1
expect_contains err "variable 'pin' must be a finite number"
expect_not_contains err "Zq9SECRET"
step "the same through the environment"
run_env IAC_VAR_pin=Zq9SECRET validate
expect_rc 1
expect_not_contains err "Zq9SECRET"
step "a sensitive bool"
run validate -var pin=1 -var flag=Zq9SECRET
expect_rc 1
expect_not_contains err "Zq9SECRET"
for bad in inf nan 1e400 -inf; do
	step "-var n=$bad is an error"
	run validate -var pin=1 -var n=$bad
	expect_rc 1
	expect_contains err "variable 'n' must be a finite number, got '$bad'"
done
step "a variable that is not UTF-8 is an error, not the default"
run validate -var pin=1 -var "s=$(printf 'ab\xffcd')"
expect_rc 1
expect_contains err "variable 's': the value is not valid UTF-8"
run_env "IAC_VAR_s=$(printf 'ab\xffcd')" validate -var pin=1
expect_rc 1
expect_contains err "not valid UTF-8"

finish
