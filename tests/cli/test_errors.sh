#!/usr/bin/env bash
# Configuration errors name the place (error: FILE:LINE: ...), and the
# sandbox: no os/io/debug/C modules, require only inside the configuration
# directory. Every error is exit 1 with a message, never a crash, never a
# side effect.
. "$(dirname "$0")/lib.sh"
DEMO="$(cd "$(dirname "$0")/../../plans/demo" && pwd)/main.lua"

newcfg cfg
mkdir -p out

# check_err NAME LUA REGEX: validate and plan both fail with exit 1 and a
# message on stderr matching REGEX; no crash (exit >= 128), nothing created
check_err() {
    local name=$1 lua=$2 re=$3 cmd
    printf '%s\n' "$lua" >main.lua
    for cmd in validate plan "apply -auto-approve"; do
        step "$name ($cmd)"
        # shellcheck disable=SC2086
        run $cmd
        expect_rc 1
        expect_match err "$re"
        expect_not_match err '(Segmentation|Aborted|core dumped|AddressSanitizer|panic)'
    done
    expect_no_file .iac/state.json
    expect_no_file "$T/pwned"
}

check_err "duplicate resource" "resource \"local.file\" \"conf\" { path = \"$T/cfg/out/a\", content = \"a\" }
-- a comment line
resource \"local.file\" \"conf\" { path = \"$T/cfg/out/b\", content = \"b\" }" \
    "^error: main\.lua:3: resource 'local\.file\.conf' declared twice \(first at main\.lua:1\)"

check_err "duplicate variable" 'variable "v" { default = 1 }
variable "v" { default = 2 }' \
    "^error: main\.lua:2: .*'v'.*declared twice \(first at main\.lua:1\)"

check_err "duplicate output" 'output "o" { value = 1 }

output "o" { value = 2 }' \
    "^error: main\.lua:3: .*'o'.*declared twice \(first at main\.lua:1\)"

check_err "unknown attribute" "
resource \"local.file\" \"a\" {
  path = \"$T/cfg/out/a\", contnt = \"x\" }" \
    "^error: main\.lua:[23]: .*'contnt'"

check_err "wrong type" "resource \"local.file\" \"a\" { path = 42, content = \"x\" }" \
    "^error: main\.lua:1: .*'path'.*string"

check_err "wrong type (table for string)" "resource \"local.exec\" \"a\" { create = { \"echo\" } }" \
    "^error: main\.lua:1: .*'create'.*string"

check_err "missing required attribute" 'resource "local.file" "a" { content = "x" }' \
    "^error: main\.lua:1: .*'path'"

check_err "unknown resource type" 'local x = 1
resource "local.nosuch" "a" { }' \
    "^error: main\.lua:2: .*'local\.nosuch'"

check_err "reference to an attribute the type does not have" \
    "local a = resource \"local.file\" \"a\" { path = \"$T/cfg/out/a\", content = \"x\" }
resource \"local.file\" \"b\" { path = \"$T/cfg/out/b\", content = a.shaa256 }" \
    "^error: main\.lua:2: .*'shaa256'"

check_err "undefined variable" "resource \"local.file\" \"a\" { path = \"$T/cfg/out/a\", content = var.nosuch }" \
    "^error: main\.lua:1: .*nosuch"

check_err "syntax error" 'resource "local.file" "a" {
  path = "x",
  content = = "y" }' \
    "^error: main\.lua:3:"

check_err "runtime error in topology code" 'local t = nil
local x = t.field' \
    "^error: main\.lua:2:"

check_err "error() in topology code" 'error("custom failure")' \
    "^error: main\.lua:1: custom failure"

check_err "os.execute is an error, not a crash" "local x = 1
os.execute(\"touch $T/pwned\")" \
    "^error: main\.lua:2: .*os\.execute"

check_err "io.open" "io.open(\"$T/pwned\", \"w\")" "^error: main\.lua:1: .*io"

check_err "io.popen" "io.popen(\"touch $T/pwned\")" "^error: main\.lua:1: .*io"

check_err "os.remove" "os.remove(\"$T/cfg/main.lua\")" "^error: main\.lua:1: .*os"

check_err "debug library" 'debug.sethook(function() end, "l")' "^error: main\.lua:1: .*debug"

check_err "package.loadlib (C modules)" 'package.loadlib("/lib/x86_64-linux-gnu/libc.so.6", "system")' \
    "^error: main\.lua:1: "

check_err "require of a C module" 'require("lpeg")' "^error: main\.lua:1: .*lpeg"

check_err "require of a standard module" 'local o = require("os"); o.execute("touch '"$T"'/pwned")' \
    "^error: main\.lua:1: "

check_err "loadfile/dofile" "dofile(\"$T/evil.lua\")" "^error: main\.lua:1: "

check_err "binary chunks" 'load("\27Lua garbage")()' "^error: main\.lua:1: "

step "require outside the configuration directory"
echo "io.open(\"$T/pwned\", \"w\"):write(\"x\")" >"$T/evil.lua"
echo 'return { y = "outside" }' >"$T/outside.lua"
check_err "require ../outside" 'local m = require("../outside")' "^error: main\.lua:1: .*outside"
check_err "require ..outside" 'local m = require("..outside")' "^error: main\.lua:1: .*outside"
check_err "require absolute" "local m = require(\"$T/outside\")" "^error: main\.lua:1: .*outside"
mkdir -p "$T/shared"
echo 'return { y = "outside" }' >"$T/shared/m.lua"
ln -s "$T/shared" lib
check_err "require through a symlink pointing outside" 'local m = require("lib.m")' \
    "^error: main\.lua:1: .*lib\.m"
rm lib

step "require inside the configuration directory works; errors there name that file"
mkdir -p lib
cat >lib/util.lua <<'EOF'
local M = {}
function M.greet(n) return "hello " .. n end
function M.bad()
  os.execute("true")
end
return M
EOF
cat >main.lua <<EOF
local u = require("lib.util")
resource "local.file" "a" { path = "$T/cfg/out/a", content = u.greet("x") }
EOF
run validate
expect_rc 0
run apply -auto-approve
expect_rc 0
expect_file_content out/a "hello x"
cat >main.lua <<EOF
local u = require("lib.util")
u.bad()
EOF
run plan
expect_rc 1
expect_match err '^error: lib/util\.lua:4: .*os\.execute'

step "errors in another .lua file beside main.lua name that file"
cat >extra.lua <<'EOF'
local x = 1
resource "local.nope" "z" { }
EOF
cat >main.lua <<'EOF'
require("extra")
EOF
run validate
expect_rc 1
expect_match err "^error: extra\.lua:2: .*'local\.nope'"

step "no main.lua"
newcfg empty
run plan
expect_rc 1
expect_contains err 'main.lua'
run -chdir="$T/nosuchdir" plan
expect_rc 1
expect_contains err 'nosuchdir'

# flags_on_rollback is read in an emergency: a typo must show at validate time
check_err "flags_on_rollback names an undeclared flag" \
    "$(sed 's/flags_on_rollback = { checkout_v2 = "off" }/flags_on_rollback = { checkout_v3 = "off" }/' "$DEMO")" \
    "^error: main\.lua:[0-9]+: 'deploy\.blue_green\.web': flags_on_rollback names flag 'checkout_v3', which is not declared \(declared flags: checkout_v2\)"
check_err "flags_on_rollback names an unknown variant" \
    "$(sed 's/flags_on_rollback = { checkout_v2 = "off" }/flags_on_rollback = { checkout_v2 = "of" }/' "$DEMO")" \
    "^error: main\.lua:[0-9]+: .*flags_on_rollback\.checkout_v2 = \"of\" is not a variant of flag 'checkout_v2' \(variants: (on, off|off, on)\)"

step "validate on a good configuration"
newcfg good
cat >main.lua <<EOF
variable "v" { default = "x" }
local a = resource "local.file" "a" { path = "$T/good/a", content = var.v }
resource "local.exec" "e" { create = "true", depends_on = { a } }
output "o" { value = a.path }
EOF
run validate
expect_rc 0
expect_no_file a
expect_no_file .iac/state.json

finish
