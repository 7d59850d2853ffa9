#!/usr/bin/env bash
# What a new user trips over first: validate checks what plan checks (value
# formats, without touching hosts), unknown settings and names get "did you
# mean", a header without a body is an error, declaration order does not
# matter (resources["TYPE.NAME"]), a missing module argument is reported
# where the module is called, commands and flags get suggestions and -h,
# skipped operations are named, -target warns, show FILE shows the plan.
. "$(dirname "$0")/lib.sh"

newcfg first
step "validate checks value formats like plan, touching no host"
cat >main.lua <<'EOF'
host "h1" { address = "10.255.255.1" }
resource "local.file" "a" { path = "x", mode = "rwx" }
resource "ssh.exec" "e" { host = "h1", create = "true", timeout = "5 minutes" }
resource "ssh.file" "f" { host = "h1", path = "relative/path", content = "x" }
EOF
run validate
expect_rc 1
expect_contains err "main.lua:2: resource 'local.file.a': attribute 'mode': 'rwx' is not an octal mode"
expect_contains err "main.lua:3: resource 'ssh.exec.e': attribute 'timeout': invalid duration '5 minutes'"
expect_contains err "main.lua:4: resource 'ssh.file.f': attribute 'path': 'relative/path' must be absolute"
[ ! -e .iac ] || fail "validate made .iac/"

step "unknown settings of variable and output are errors with a suggestion"
echo 'variable "x" { defualt = 1 }' >main.lua
run validate
expect_rc 1
expect_contains err "main.lua:1: variable 'x': unknown setting 'defualt'; did you mean 'default'?"
echo 'output "x" { vaule = 1 }' >main.lua
run validate
expect_rc 1
expect_contains err "main.lua:1: output 'x': unknown setting 'vaule'; did you mean 'value'?"

step "a resource without a body is an error, not 0 resources"
echo 'resource "local.file" "a"' >main.lua
run validate
expect_rc 1
expect_contains err "main.lua:1: resource 'local.file.a' has no body, so it declares nothing"

step "a mistyped keyword gets a suggestion, not a Lua error"
echo 'resorce "local.file" "a" { path = "x" }' >main.lua
run validate
expect_rc 1
expect_contains err "main.lua:1: unknown name 'resorce'; did you mean 'resource'?"
expect_not_contains err "attempt to call a nil value"

step "declaration order does not matter with resources[...]"
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "a.txt", content = resources["local.file.b"].path }
resource "local.file" "b" { path = "b.txt", content = "B" }
EOF
run apply -auto-approve
expect_rc 0
expect_eq "a.txt" "b.txt" "$(cat a.txt)"
step "a reference to an undeclared resource says what is declared"
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "a.txt", content = resources["local.file.bb"].path }
resource "local.file" "b" { path = "b.txt", content = "B" }
EOF
run validate
expect_rc 1
expect_contains err "main.lua:1: resource 'local.file.a' refers to unknown resource 'local.file.bb'; did you mean 'local.file.b'?"
step "a name used before its line says how to reach it"
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "a.txt", content = later.path }
local later = resource "local.file" "b" { path = "b.txt", content = "B" }
EOF
run validate
expect_rc 1
expect_contains err "main.lua:1: unknown name 'later'"
expect_contains err 'resources["TYPE.NAME"]'

step "a missing module argument is reported where the module is called"
mkdir -p m
echo 'variable "port" { type = "number", description = "where it listens" }' >m/main.lua
printf '\n\nlocal x = module "m" { source = "./m" }\n' >main.lua
run validate
expect_rc 1
expect_contains err "main.lua:3: module 'module.m' needs argument 'port': where it listens"
rm -rf m

step "commands and flags get suggestions; -h is help; -chdir goes first"
echo 'resource "local.file" "a" { path = "x", content = "1" }' >main.lua
run pln
expect_rc 1
expect_contains err "unknown command 'pln' (did you mean 'plan'?)"
run apply -auto-aprove
expect_rc 1
expect_contains err "unknown flag '-auto-aprove' for 'iac apply' (did you mean '-auto-approve'?)"
run status pol
expect_rc 1
expect_contains err "unknown status topic 'pol' (did you mean 'pool'?)"
# a topic is never another command: `iac status rollback` rolls nothing back
run status rollback
expect_rc 1
expect_contains err "unknown status topic 'rollback'; 'iac status' alone shows the state lock, and the topics are: "
for h in -h -help --help; do
	run plan "$h"
	expect_rc 0
	expect_contains out "iac plan: show what apply would change"
	expect_contains out "-var NAME=VALUE"
done
run plan -chdir=x
expect_rc 1
expect_contains err "-chdir goes before the command: iac -chdir=DIR plan"
run validate
expect_contains out "The configuration is valid (1 resource)."

step "skipped operations are named with the failure that skipped them"
cat >main.lua <<'EOF'
resource "local.exec" "a" { create = "exit 3" }
resource "local.exec" "b" { create = "true", depends_on = { resources["local.exec.a"] } }
resource "local.exec" "c" { create = "true", depends_on = { resources["local.exec.b"] } }
EOF
run apply -auto-approve
expect_rc 1
expect_contains err "skipped local.exec.b, local.exec.c: local.exec.a failed"
run apply -auto-approve -json
expect_contains out '"because": "local.exec.a"'

step "-target warns that the plan is partial"
cat >main.lua <<'EOF'
resource "local.file" "d" { path = "d", content = "x" }
resource "local.file" "e" { path = "e", content = "y" }
EOF
run plan -target local.file.d
expect_rc 0
expect_contains err "-target is in effect: this plan covers only the targets"

step "show FILE shows the plan as plan did"
run plan -out=p.plan
expect_rc 0
planned=$OUT
run show p.plan
expect_rc 0
expect_contains out '+ resource "local.file" "e" {'
expect_contains out '+ content = "y"'
expect_contains out "Plan: 2 to add, 0 to change, 0 to destroy."

newcfg refactor
step "state mv renames a resource so the plan does not re-create it"
cat >main.lua <<'EOF'
resource "local.file" "old" { path = "a", content = "1" }
resource "local.file" "user" { path = "b", content = resources["local.file.old"].path }
EOF
run apply -auto-approve
expect_rc 0
sed -i 's/"old"/"new"/; s/local.file.old/local.file.new/' main.lua
run plan
expect_contains out "1 to add, 0 to change, 1 to destroy"
run state mv local.file.old local.file.new
expect_rc 0
expect_contains out "Moved local.file.old to local.file.new"
run plan -detailed-exitcode
expect_rc 0
deps=$($PY -c 'import json; d = json.load(open(".iac/state.json")); print([r.get("dependencies") for r in d["resources"] if r["address"] == "local.file.user"][0])')
expect_eq "local.file.user's dependencies" "['local.file.new']" "$deps"
run state mv local.file.new ssh.file.x
expect_rc 1
expect_contains err "'ssh.file.x' is not an address of type local.file"
run state mv local.file.new local.file.user
expect_rc 1
expect_contains err "'local.file.user' is already in state"

newcfg template
step "templatefile fills \${name} from its variables, references included"
printf 'server {\n  listen ${port};\n  root ${ app.dir };\n  # $${literal}\n  upstream ${up};\n}\n' >nginx.tpl
cat >main.lua <<'EOF'
local up = resource "local.file" "up" { path = "up.txt", content = "u" }
resource "local.file" "conf" { path = "nginx.conf",
  content = templatefile("nginx.tpl", { port = 8080, app = { dir = "/srv" }, up = up.path }) }
EOF
run apply -auto-approve
expect_rc 0
expect_eq "rendered" "$(printf 'server {\n  listen 8080;\n  root /srv;\n  # ${literal}\n  upstream up.txt;\n}')" "$(cat nginx.conf)"
step "template errors name the template's file and line"
printf 'line one\nx ${nope}\n' >bad.tpl
echo 'resource "local.file" "c" { path = "c", content = templatefile("bad.tpl", {}) }' >main.lua
run validate
expect_rc 1
expect_contains err "main.lua:1: templatefile(): bad.tpl:2: 'nope' is not in the variables given to the template"
printf 'a ${x\n' >bad2.tpl
echo 'resource "local.file" "c" { path = "c", content = templatefile("bad2.tpl", { x = 1 }) }' >main.lua
run validate
expect_rc 1
expect_contains err "templatefile(): bad2.tpl:1: '\${' is not closed by '}' on the same line"

newcfg import
step "import adopts an existing file, and the plan shows what differs"
printf 'hello\n' >app.conf
echo 'resource "local.file" "conf" { path = "app.conf", content = "hello\n", mode = "0600" }' >main.lua
chmod 0644 app.conf
run import local.file.conf app.conf
expect_rc 0
expect_contains out "Imported local.file.conf from app.conf"
run plan
expect_rc 0
expect_contains out "local.file.conf will be updated in place"
expect_contains out '~ mode    = "0644" -> "0600"'
expect_not_contains out "will be created"
run import local.file.conf app.conf
expect_rc 1
expect_contains err "'local.file.conf' is already in state"
run import local.file.nope x
expect_rc 1
expect_contains err "'local.file.nope' is not in the configuration"
rm -rf .iac
run import local.file.conf missing.conf
expect_rc 1
expect_contains err "no object found for 'local.file.conf' at 'missing.conf'; nothing imported"

newcfg nodiff
step "an attribute that changes nothing now (no diff) still reaches state"
printf 'same\n' >one.txt
printf 'same\n' >two.txt
echo 'resource "local.file" "f" { path = "out.txt", source = "one.txt" }' >main.lua
run apply -auto-approve
expect_rc 0
echo 'resource "local.file" "f" { path = "out.txt", source = "two.txt" }' >main.lua
run plan -detailed-exitcode
expect_rc 0
run apply -auto-approve
expect_rc 0
run state show local.file.f -json
expect_contains out '"source": "two.txt"'

newcfg inventory
step "hosts_from reads an Ansible INI inventory with group vars and children"
cat >hosts.ini <<'EOF'
# fleet
[web]
web1 ansible_host=127.0.0.11
web2 ansible_host=127.0.0.12 ansible_port=2222 ansible_user=deploy tier=front

[db]
db1 ansible_host=127.0.0.21

[web:vars]
role=web
tier=back

[all:children]
web
db
EOF
cat >main.lua <<'EOF'
local all = hosts_from("hosts.ini")
for _, h in ipairs(hosts { group = "web" }) do
  resource "local.file" ("h_" .. h.name) { path = h.name .. ".txt",
    content = h.address .. ":" .. (h.port or 22) .. " " .. (h.user or "-") .. " " .. h.labels.role .. " " .. h.labels.tier .. " " .. h.labels.groups }
end
output "n" { value = #all }
EOF
run apply -auto-approve
expect_rc 0
expect_contains out "n = 3"
expect_eq "web1" "127.0.0.11:22 - web back web,all" "$(cat web1.txt)"
expect_eq "web2 (own vars win over group vars)" "127.0.0.12:2222 deploy web front web,all" "$(cat web2.txt)"
step "a Lua inventory is plain data"
cat >inv.lua <<'EOF'
return { hosts = { a = { address = "127.0.0.31", labels = { zone = "x" } }, b = { address = "127.0.0.32" } },
         groups = { app = { hosts = { "a", "b" }, vars = { role = "app" } } } }
EOF
echo 'hosts_from("inv.lua"); output "roles" { value = #hosts { role = "app" } .. " " .. hosts { zone = "x" }[1].name }' >main.lua
run plan
expect_rc 0
expect_contains out '+ roles = "2 a"'
step "inventory errors name the file and line"
printf '[web]\nweb1 ansible_host=1.2.3.4\n[web:bogus]\n' >bad.ini
echo 'hosts_from("bad.ini")' >main.lua
run validate
expect_rc 1
expect_contains err "bad.ini:3: bad section [web:bogus]"

newcfg moved
step "a moved block keeps the object: plan shows the move, apply records it"
cat >main.lua <<'EOF'
resource "local.file" "old" { path = "a", content = "1" }
resource "local.file" "user" { path = "b", content = resources["local.file.old"].path }
EOF
run apply -auto-approve
expect_rc 0
cat >main.lua <<'EOF'
resource "local.file" "new" { path = "a", content = "1" }
resource "local.file" "user" { path = "b", content = resources["local.file.new"].path }
moved { from = "local.file.old", to = "local.file.new" }
EOF
run plan -detailed-exitcode
expect_rc 0
expect_contains out "# local.file.old has moved to local.file.new"
run state list
expect_contains out "local.file.old"
run apply -auto-approve
expect_rc 0
run state list
expect_contains out "local.file.new"
expect_not_contains out "local.file.old"
run plan -detailed-exitcode
expect_rc 0
expect_not_contains out "has moved"
step "a moved block to nothing declared is an error"
echo 'moved { from = "local.file.x", to = "local.file.y" }' >>main.lua
run plan
expect_rc 1
expect_contains err "main.lua:4: moved to 'local.file.y', which is not declared"

finish
