#!/usr/bin/env bash
# -exclude ADDR (Terraform): the resource and what depends on it are left as
# they are (when destroying: it and what it depends on). -limit HOSTS
# (Ansible's --limit): only resources on those hosts (name, address or
# label=value), with what they depend on; other hosts are not even
# contacted. Both are saved in plan files and warn that the plan is partial.
. "$(dirname "$0")/lib.sh"

newcfg scope
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "a", content = "1" }
resource "local.file" "b" { path = "b", content = resources["local.file.a"].path }
resource "local.file" "c" { path = "c", content = "3" }
EOF
step "-exclude leaves the resource and its dependents out"
run plan -exclude local.file.a
expect_rc 0
expect_contains out "local.file.c will be created"
expect_not_contains out "local.file.a will"
expect_not_contains out "local.file.b will"
expect_contains err "-exclude is in effect"
run apply -auto-approve -exclude local.file.a
expect_rc 0
[ -e c ] && [ ! -e a ] && [ ! -e b ] || fail "apply -exclude touched the wrong files"
run apply -auto-approve
expect_rc 0
step "destroy -exclude keeps what the excluded depends on"
run plan -destroy -exclude local.file.b
expect_rc 0
expect_contains out "Plan: 0 to add, 0 to change, 1 to destroy."
expect_contains out "local.file.c will be destroyed"
step "-exclude of an unknown address is an error"
run plan -exclude local.file.zz
expect_rc 1
expect_contains err "-exclude 'local.file.zz' matches no resource"
step "-exclude is kept in a saved plan"
echo 'resource "local.file" "d" { path = "d", content = "4" }' >>main.lua
echo 'resource "local.file" "e" { path = "e", content = "5" }' >>main.lua
run plan -exclude local.file.d -out=p.plan
expect_rc 0
run apply p.plan
expect_rc 0
[ -e e ] && [ ! -e d ] || fail "the saved plan's -exclude was not applied"

newcfg limit
cat >main.lua <<'EOF'
host "h1" { address = "127.0.0.3", port = 1, labels = { role = "web" } }
host "h2" { address = "127.0.0.4", port = 1, labels = { role = "db" } }
resource "ssh.exec" "w" { host = "h1", create = "true" }
resource "ssh.exec" "d" { host = "h2", create = "true" }
EOF
step "-limit by label contacts only the hosts it names"
run plan -limit role=web
expect_contains err "host 'h1' (127.0.0.3:1) is unreachable"
expect_not_contains err "'h2'"
expect_not_contains out "'h2'"
expect_contains err "-limit is in effect"
step "-limit by name, comma-separated"
run plan -limit h2,nothing
expect_contains err "host 'h2' (127.0.0.4:1) is unreachable"
expect_not_contains err "'h1'"
step "-limit that matches nothing plans nothing and contacts nobody"
run plan -limit role=none
expect_rc 0
expect_contains out "No changes."

finish
