#!/usr/bin/env bash
# Topology code is sandboxed per file and bounded: no file can patch
# globals or library functions for the others, an endless loop and a table
# that keeps growing are errors with a place, and file()/filebase64()/
# module sources read only inside the configuration (unless the operator
# opts out with IAC_ALLOW_OUTSIDE_FILES=1).
. "$(dirname "$0")/lib.sh"

newcfg sandbox
mkdir lib
cat >lib/evil.lua <<'EOF'
string.upper = function() return "PWNED" end
_G.resource = function() error("hijacked") end
pcall(function() getmetatable("").__index.upper = function() return "PWNED" end end)
pcall(function() getmetatable(_ENV).__index.resource = nil end)
load("resource = nil; output = nil")()
pcall(function() os.x = 1 end)
return true
EOF
cat >main.lua <<'EOF'
require "lib.evil"
resource "local.file" "a" { path = "x", content = string.upper("ok") .. ("s"):upper() }
output "o" { value = type(os) }
EOF
step "a required file cannot patch globals or libraries for the others"
run plan
expect_rc 0
expect_contains out '+ content = "OKS"'
expect_not_contains err "hijacked"

step "an endless loop is an error at its line"
cat >main.lua <<'EOF'
local x = 0
while true do x = x + 1 end
EOF
run_env "IAC_LUA_MAX_INSTRUCTIONS=5e6" validate
expect_rc 1
expect_contains err "main.lua:2: topology code ran more than 5000000 Lua instructions: an endless loop?"

step "a table that keeps growing is an error, not the OOM killer"
cat >main.lua <<'EOF'
local t, i = {}, 0
while true do i = i + 1; t[i] = string.rep("x", 200) .. i end
EOF
run_env "IAC_LUA_MAX_MEMORY=32" validate
expect_rc 1
expect_contains err "main.lua: topology code needs more than 32 MiB of memory"

step "a limit that is no number, or too large, is an error naming the variable"
for v in 1e30 inf nan abc 0 -5; do
	run_env "IAC_LUA_MAX_MEMORY=$v" validate
	expect_rc 1
	expect_contains err "environment variable IAC_LUA_MAX_MEMORY='$v' is"
	expect_not_contains err "out of memory"
done
run_env "IAC_LUA_MAX_INSTRUCTIONS=1e400" validate
expect_rc 1
expect_contains err "environment variable IAC_LUA_MAX_INSTRUCTIONS='1e400' is not a positive number"

step "file() outside the configuration is refused, also through a link"
echo "root:x:0:0" >"$T/outside.txt"
ln -s "$T/outside.txt" link.txt
for expr in 'file("/etc/passwd")' 'file("../outside.txt")' 'file("link.txt")' 'filebase64("/etc/passwd")'; do
	echo "resource \"local.file\" \"a\" { path = \"x\", content = $expr }" >main.lua
	run validate
	expect_rc 1
	expect_contains err "is outside the configuration directory; topology code reads only files inside it"
done
step "the operator can allow it"
run_env "IAC_ALLOW_OUTSIDE_FILES=1" validate
expect_rc 0

step "a module outside is refused, and allowed by the operator, with its own require"
mkdir -p "$T/ext/m"
echo 'return { hi = "from helper" }' >"$T/ext/m/helper.lua"
printf 'local h = require "helper"\noutput "o" { value = h.hi }\n' >"$T/ext/m/main.lua"
cat >main.lua <<'EOF'
local m = module "m" { source = "../ext/m" }
output "o" { value = m.o }
EOF
run validate
expect_rc 1
expect_contains err "module source '../ext/m': '"
expect_contains err "is outside the configuration directory"
run_env "IAC_ALLOW_OUTSIDE_FILES=1" plan
expect_rc 0
expect_contains out "from helper"

finish
