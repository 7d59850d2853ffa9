#!/usr/bin/env bash
# Variables: default, IAC_VAR_name, -var-file (Lua and .json), -var, and their
# precedence; a missing required variable; -target (the target and what it
# depends on, repeatable); -replace.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir out
cat >main.lua <<EOF
variable "a" { default = "a-default" }
variable "b" { default = "b-default" }
variable "c" { default = "c-default" }
variable "n" { default = 1 }
resource "local.file" "v" {
  path = "$T/cfg/out/v",
  content = var.a .. "|" .. var.b .. "|" .. var.c .. "|" .. tostring(var.n),
}
EOF
content() {
    run plan -json "$@"
    json_get '[c["after"]["content"] for c in d["resource_changes"] if c["address"]=="local.file.v"][0]'
}

step "defaults"
expect_eq "defaults" "a-default|b-default|c-default|1" "$(content)"

step "-var (repeatable)"
expect_eq "-var" "A|b-default|C|1" "$(content -var a=A -var c=C)"
expect_eq "-var=NAME=VALUE form" "A|b-default|c-default|1" "$(content -var=a=A)"
expect_eq "-var value containing =" "x=y|b-default|c-default|1" "$(content -var 'a=x=y')"

step "IAC_VAR_name"
export IAC_VAR_a=env-a
expect_eq "IAC_VAR_a" "env-a|b-default|c-default|1" "$(content)"

step "-var-file (Lua)"
cat >vals.lua <<'EOF'
b = "lua-b"
n = 5
EOF
expect_eq "-var-file lua" "env-a|lua-b|c-default|5" "$(content -var-file vals.lua)"

step "-var-file (.json)"
cat >vals.json <<'EOF'
{ "b": "json-b", "c": "json-c" }
EOF
expect_eq "-var-file json" "env-a|json-b|json-c|1" "$(content -var-file=vals.json)"

step "precedence: default < IAC_VAR < -var-file < -var"
cat >all.json <<'EOF'
{ "a": "file-a", "b": "file-b" }
EOF
expect_eq "-var-file beats IAC_VAR" "file-a|file-b|c-default|1" "$(content -var-file all.json)"
expect_eq "-var beats -var-file and IAC_VAR" "cli-a|file-b|c-default|1" \
    "$(content -var-file all.json -var a=cli-a)"
unset IAC_VAR_a

step "unknown variable given on the command line is an error"
run plan -var nosuch=1
expect_rc 1
expect_contains err 'nosuch'

step "malformed -var and missing var file"
run plan -var novalue
expect_rc 1
expect_contains err 'novalue'
run plan -var-file nosuch.json
expect_rc 1
expect_contains err 'nosuch.json'
echo '{ broken' >broken.json
run plan -var-file broken.json
expect_rc 1
expect_contains err 'broken.json'

step "missing required variable"
newcfg req
cat >main.lua <<EOF
variable "x" { description = "no default" }
resource "local.file" "f" { path = "$T/req/out", content = var.x }
EOF
run plan
expect_rc 1
expect_match err "^error: main\.lua:1: .*'x'|^error: main\.lua:1: .*\"x\"|^error: main\.lua:1: .* x "
expect_match err 'IAC_VAR_x|-var'
run validate
expect_rc 0
run_env "IAC_VAR_x=given" plan -detailed-exitcode
expect_rc 2
run plan -detailed-exitcode -var x=given
expect_rc 2

step "-target: only the target and what it depends on"
newcfg tgt
mkdir out
cat >main.lua <<EOF
local base = resource "local.file" "base" { path = "$T/tgt/out/base", content = "base" }
local mid  = resource "local.file" "mid"  { path = "$T/tgt/out/mid",  content = base.sha256 }
resource "local.file" "top" { path = "$T/tgt/out/top", content = "top", depends_on = { mid } }
resource "local.file" "other" { path = "$T/tgt/out/other", content = "other" }
resource "local.file" "other2" { path = "$T/tgt/out/other2", content = "other2" }
EOF
run plan -target local.file.mid -json
expect_rc 0
expect_json 'sorted(c["address"] for c in d["resource_changes"] if c["action"] != "no-op")' \
    '["local.file.base", "local.file.mid"]'
run plan -target=local.file.mid
expect_contains out 'Plan: 2 to add, 0 to change, 0 to destroy.'
run apply -auto-approve -target local.file.mid
expect_rc 0
expect_file out/base
expect_file out/mid
expect_no_file out/top
expect_no_file out/other

step "-target repeatable"
run apply -auto-approve -target local.file.top -target=local.file.other
expect_rc 0
expect_file out/top
expect_file out/other
expect_no_file out/other2

step "-target of an unknown address is reported (a typo must not look like 'No changes')"
run plan -target local.file.nosuch
expect_contains err 'local.file.nosuch'

step "full apply creates the rest"
run apply -auto-approve
expect_rc 0
expect_contains out '1 added'
expect_file out/other2

step "-target with -destroy destroys the target and what depends on it, never its dependencies"
run plan -destroy -target local.file.mid -json
expect_rc 0
expect_json 'sorted(c["address"] for c in d["resource_changes"] if c["action"] == "delete")' \
    '["local.file.mid", "local.file.top"]'

step "-replace forces replacement"
echo "marker" >"$T/tgt/out/other.inode"
ino_before=$(stat -c %i out/other)
run plan -replace local.file.other -json
expect_rc 0
expect_json '[c["action"] for c in d["resource_changes"] if c["address"]=="local.file.other"][0]' replace
expect_json 'sorted(c["address"] for c in d["resource_changes"] if c["action"] != "no-op")' '["local.file.other"]'
run apply -auto-approve -replace=local.file.other
expect_rc 0
expect_contains out '1 added, 0 changed, 1 destroyed'
expect_file_content out/other other
run plan -detailed-exitcode
expect_rc 0
: "$ino_before"

finish
