#!/usr/bin/env bash
# Local modules: addresses module.NAME.TYPE.NAME, module inputs and outputs,
# depends_on a module (ordering), two instances of one module, nested
# modules, errors inside a module name the module's file.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir -p out modules/web modules/inner
cat >modules/web/main.lua <<'EOF'
variable "replicas" { default = 1 }
variable "dir" { }
variable "log" { }
variable "name" { }
for i = 1, var.replicas do
  resource "local.file" ("r" .. i) { path = var.dir .. "/r" .. i, content = "replica " .. i }
end
local x = resource "local.file" "x" { path = var.dir .. "/x", content = "x of " .. var.dir }
resource "local.exec" "slow" {
  create = "sleep 0.5; echo slow-" .. var.name .. " >> " .. var.log,
  destroy = "echo web-slow-destroyed >> " .. var.log,
}
local inner = module "inner" { source = "../inner", dir = var.dir }
output "x_path" { value = x.path }
output "x_sha" { value = x.sha256 }
output "inner_path" { value = inner.path }
EOF
cat >modules/inner/main.lua <<'EOF'
variable "dir" { }
local f = resource "local.file" "f" { path = var.dir .. "/inner", content = "inner" }
output "path" { value = f.path }
EOF
cat >main.lua <<EOF
local web = module "web" { source = "./modules/web", replicas = 2, name = "web", dir = "$T/cfg/out/web", log = "$T/cfg/out/log" }
local api = module "api" { source = "./modules/web", name = "api", dir = "$T/cfg/out/api", log = "$T/cfg/out/log" }
resource "local.file" "uses_output" { path = "$T/cfg/out/uses", content = web.x_sha }
resource "local.exec" "after_web" {
  create = "echo after-web >> $T/cfg/out/log",
  depends_on = { web },
}
output "web_x" { value = web.x_path }
output "api_inner" { value = api.inner_path }
EOF
mkdir -p out/web out/api

step "plan shows module addresses"
run plan -json
expect_rc 0
expect_json 'sorted(c["address"] for c in d["resource_changes"])' \
    '["local.exec.after_web", "local.file.uses_output", "module.api.local.exec.slow", "module.api.local.file.r1", "module.api.local.file.x", "module.api.module.inner.local.file.f", "module.web.local.exec.slow", "module.web.local.file.r1", "module.web.local.file.r2", "module.web.local.file.x", "module.web.module.inner.local.file.f"]'
run plan
expect_contains out 'module.web.local.file.x'
expect_contains out 'module.web.module.inner.local.file.f'
expect_contains out 'Plan: 11 to add, 0 to change, 0 to destroy.'

step "apply"
run apply -auto-approve
expect_rc 0
expect_file_content out/web/r2 "replica 2"
expect_no_file out/api/r2
expect_file_content out/api/x "x of $T/cfg/out/api"
expect_file_content out/web/inner inner
expect_file_content out/uses "$(sha256sum out/web/x | cut -d' ' -f1)"
expect_match err 'module\.web\.local\.file\.x: created'

step "depends_on a module: after_web runs after everything in module web"
# without the dependency after_web would run at once, long before slow-web
expect_eq "order in log" "slow-web
after-web" "$(grep -E 'slow-web|after-web' out/log 2>/dev/null)"

step "outputs from modules"
run output web_x
expect_eq "web_x" "$T/cfg/out/web/x" "$OUT"
run output api_inner
expect_eq "api_inner (nested module output)" "$T/cfg/out/api/inner" "$OUT"

step "state list has module addresses"
run state list
expect_contains out 'module.web.local.file.r1'
expect_contains out 'module.api.module.inner.local.file.f'
run state show module.web.local.file.x
expect_rc 0
expect_contains out "$T/cfg/out/web/x"

step "no-op re-plan"
run plan -detailed-exitcode
expect_rc 0

step "-target a module"
sed -i 's/replicas = 2/replicas = 3/' main.lua
echo 'resource "local.file" "later" { path = "'"$T"'/cfg/out/later", content = "l" }' >>main.lua
run plan -target module.web -json
expect_rc 0
expect_json 'sorted(c["address"] for c in d["resource_changes"] if c["action"] != "no-op")' \
    '["module.web.local.file.r3"]'
run apply -auto-approve -target=module.web.local.file.r3
expect_rc 0
expect_file out/web/r3
expect_no_file out/later

step "module input change and removal of a module instance"
run apply -auto-approve
expect_rc 0
sed -i '/^local api = /d; /api_inner/d' main.lua
run plan -detailed-exitcode
expect_rc 2
expect_contains out 'Plan: 0 to add, 0 to change, 4 to destroy.'
expect_contains out 'module.api.local.file.x'
run apply -auto-approve
expect_rc 0
expect_no_file out/api/x
expect_no_file out/api/inner
expect_file out/web/x

step "errors inside a module name the module's file"
echo 'resource "local.file" "f" { path = "/tmp/dup", content = "d" }' >>modules/inner/main.lua
run validate
expect_rc 1
expect_match err "^error: modules/inner/main\.lua:4: .*declared twice \(first at modules/inner/main\.lua:2\)"
sed -i '$d' modules/inner/main.lua
run validate
expect_rc 0

step "missing module input, unknown module input, missing source"
newcfg bad
mkdir -p modules/m
cat >modules/m/main.lua <<'EOF'
variable "needed" { }
output "o" { value = var.needed }
EOF
echo 'local m = module "m" { source = "./modules/m" }' >main.lua
run validate
expect_rc 1
expect_match err "needed"
echo 'local m = module "m" { source = "./modules/m", needed = 1, extra = 2 }' >main.lua
run validate
expect_rc 1
expect_match err "^error: main\.lua:1: .*extra"
echo 'local m = module "m" { source = "./modules/nosuch" }' >main.lua
run validate
expect_rc 1
expect_match err "^error: main\.lua:1: .*nosuch"
printf 'local a = module "m" { source = "./modules/m", needed = 1 }\nlocal b = module "m" { source = "./modules/m", needed = 2 }\n' >main.lua
run validate
expect_rc 1
expect_match err "^error: main\.lua:2: .*declared twice \(first at main\.lua:1\)"

finish
