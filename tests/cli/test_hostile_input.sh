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

# Binary data: a string that is not UTF-8 made apply segfault (json_dumps
# returned NULL while journaling). Now it is a clear error at load time, and
# binary files work through content_base64 / source with drift by hash.
newcfg bin
printf '\x89PNG\xff\x00ab' >logo.bin
step "a literal that is not UTF-8 is an error naming the attribute"
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "out.txt", content = "a\xffb" }
EOF
run apply -auto-approve
expect_rc 1
expect_contains err "main.lua:1: resource 'local.file.a': attribute content: the text is not UTF-8"
[ ! -e out.txt ] || fail "out.txt was written"
step "file() of a binary file says to use filebase64()"
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "out.bin", content = file("logo.bin") }
EOF
run plan
expect_rc 1
expect_contains err 'file("logo.bin"): the file is not UTF-8 text; for binary data use filebase64("logo.bin")'
step "binary content through content_base64 and source"
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "a.bin", content_base64 = filebase64("logo.bin") }
resource "local.file" "b" { path = "b.bin", source = "logo.bin" }
resource "local.file" "t" { path = "t.txt", content = base64decode(base64encode("hi")) }
EOF
run apply -auto-approve
expect_rc 0
cmp -s logo.bin a.bin || fail "a.bin differs from logo.bin"
cmp -s logo.bin b.bin || fail "b.bin differs from logo.bin"
expect_eq "t.txt" "hi" "$(cat t.txt)"
run plan -detailed-exitcode
expect_rc 0
step "a binary file changed behind iac's back is drift"
printf 'x' >>a.bin
run plan -detailed-exitcode
expect_rc 2
expect_contains out '~ content        = "(binary: 9 bytes, sha256'
run apply -auto-approve
expect_rc 0
cmp -s logo.bin a.bin || fail "a.bin was not restored"
step "base64decode of something that is not base64"
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "x", content = base64decode("ab$c") }
EOF
run validate
expect_rc 1
expect_contains err "main.lua:1: base64decode(): invalid base64"

finish
