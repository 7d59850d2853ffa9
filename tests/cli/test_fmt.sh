#!/usr/bin/env bash
# iac fmt: StyLua (npm @johnnymorganz/stylua-bin, installed by .ci/install)
# rewrites topology files in the canonical layout; -check changes nothing
# and exits 3; -diff shows the change; a syntax error is FILE:LINE and the
# file stays as it was; symbolic links are never followed; stylua.toml is
# honoured; without StyLua the error says what to install.
. "$(dirname "$0")/lib.sh"

if ! command -v stylua >/dev/null || ! stylua --version >/dev/null 2>&1; then
	echo "SKIP: StyLua is not installed (npm install -g @johnnymorganz/stylua-bin)"
	T_FINISHED=1
	exit 77
fi

ugly='variable "port"    { default = 8080 }
resource "local.file" "a" {   path = "a.txt",
content = "port " .. var.port,mode="0644" }
local t = {a=1,b=2}
if t.a then
return
end
'
pretty='variable "port" { default = 8080 }
resource "local.file" "a" { path = "a.txt", content = "port " .. var.port, mode = "0644" }
local t = { a = 1, b = 2 }
if t.a then return end
'

newcfg cfg
printf '%s' "$ugly" >main.lua
printf '%s' "$pretty" >other.lua
chmod 640 main.lua
echo "not lua ( {" >notes.txt

step "-check on an unformatted file: exit 3, its name, nothing changed"
run fmt -check
expect_rc 3
expect_eq "files listed" "main.lua" "$OUT"
expect_file_content main.lua "$ugly"

step "-check -diff shows the change with the file's name"
run fmt -check -diff
expect_rc 3
expect_contains out "--- old/main.lua"
expect_contains out "+++ new/main.lua"
expect_contains out '-variable "port"    { default = 8080 }'
expect_contains out '+variable "port" { default = 8080 }'
expect_file_content main.lua "$ugly"

step "fmt rewrites it (DSL calls keep their shape, mode kept) and names it"
run fmt
expect_rc 0
expect_eq "files changed" "main.lua" "$OUT"
expect_file_content main.lua "$pretty"
expect_file_content other.lua "$pretty"
expect_eq "mode kept" "640" "$(file_mode main.lua)"
expect_eq "temp files left" "" "$(ls -a | grep '\.tmp\.' || true)"
run validate
expect_rc 0

step "already formatted: exit 0, no output, even with -check"
run fmt
expect_rc 0
expect_eq "output" "" "$OUT$ERR"
run fmt -check
expect_rc 0
expect_eq "output" "" "$OUT$ERR"

step "a syntax error: FILE:LINE from Lua, the file untouched"
bad='local a = 1
local b = = 2
resource "local.file"   "b" { path = "b" }
'
printf '%s' "$bad" >broken.lua
run fmt
expect_rc 1
expect_contains err "error: broken.lua:2: "
expect_file_content broken.lua "$bad"
run fmt -check
expect_rc 1
expect_file_content broken.lua "$bad"
rm broken.lua

step "a symbolic link to a .lua file is skipped, its target untouched"
printf '%s' "$ugly" >"$T/outside.lua"
ln -s "$T/outside.lua" linked.lua
run fmt
expect_rc 0
expect_contains err "skipping 'linked.lua': a symbolic link"
expect_file_content "$T/outside.lua" "$ugly"
expect_eq "still a link" "link" "$(stat -c %F linked.lua | sed 's/symbolic //')"
run fmt linked.lua
expect_rc 1
expect_contains err "'linked.lua' is a symbolic link"
expect_file_content "$T/outside.lua" "$ugly"
rm linked.lua

step "a symbolic link to a directory is skipped with a warning by -recursive"
mkdir -p "$T/elsewhere"
printf '%s' "$ugly" >"$T/elsewhere/x.lua"
ln -s "$T/elsewhere" linkdir
run fmt -recursive
expect_contains err "skipping 'linkdir': a symbolic link to a directory (never followed)"
expect_file_content "$T/elsewhere/x.lua" "$ugly"
rm linkdir

step "-recursive formats modules/ too; without it they are left alone"
mkdir -p modules/web
printf 'local M={}\nreturn M\n' >modules/web/main.lua
run fmt -check
expect_rc 0
run fmt -recursive -check
expect_rc 3
expect_eq "files listed" "modules/web/main.lua" "$OUT"
run fmt -recursive
expect_rc 0
expect_file_content modules/web/main.lua 'local M = {}
return M
'

step "a PATH argument: a directory or a file"
newcfg other
printf 'local  x=1\n' >a.lua
printf 'local  y=2\n' >b.lua
cd "$T"
run fmt other/a.lua
expect_rc 0
expect_eq "files changed" "other/a.lua" "$OUT"
expect_file_content other/b.lua 'local  y=2
'
run fmt other/
expect_eq "files changed" "other/b.lua" "$OUT"
expect_file_content other/b.lua 'local y = 2
'

step "'-' formats stdin to stdout (editors)"
expect_eq "stdout" "local x = 1" "$(printf 'local  x=1\n' | "$IAC" fmt -)"
printf 'local  x=1\n' | "$IAC" fmt -check - >"$T/.out"
expect_eq "-check - exit" "3" "$?"
expect_eq "-check - output" "" "$(cat "$T/.out")"

step "a stylua.toml in the directory wins over iac's settings"
newcfg tabs
printf 'indent_type = "Tabs"\ncall_parentheses = "Input"\n' >stylua.toml
printf 'if x then\n  y()\n  z()\nend\n' >main.lua
run fmt
expect_rc 0
expect_file_content main.lua "$(printf 'if x then\n\ty()\n\tz()\nend\n')
"

step "an unknown flag gets a suggestion; help works"
run fmt -chek
expect_rc 1
expect_contains err "did you mean '-check'"
run help fmt
expect_rc 0
expect_contains out "usage: iac fmt [-check] [-diff] [-recursive] [PATH...]"

step "without StyLua: a clear error saying what to install, nothing changed"
newcfg nostylua
printf '%s' "$ugly" >main.lua
mkdir -p "$T/bin"
ln -s "$(command -v timeout)" "$T/bin/timeout" # what run_env itself needs
run_env "PATH=$T/bin" fmt
expect_rc 1
expect_contains err "StyLua ('stylua') is not installed"
expect_contains err "npm install -g @johnnymorganz/stylua-bin"
expect_file_content main.lua "$ugly"

finish
