#!/usr/bin/env bash
# A sensitive variable's value never appears: plan (human and -json), apply
# output, progress, errors, state file, plan file, iac output, state show,
# show. It appears as "(sensitive)". Whatever way the value is given
# (-var, -var-file, IAC_VAR_name).
. "$(dirname "$0")/lib.sh"

SECRET="s3cr3t-Zq9xW7"
SECRET2="hunter2-Kp4vL1"

newcfg cfg
mkdir out
cat >main.lua <<EOF
variable "token" { sensitive = true }
variable "plain" { default = "visible-value" }
resource "local.file" "cred" {
  path = "$T/cfg/out/cred", content = "token=" .. var.token, mode = "0600",
}
resource "local.exec" "use" {
  create  = "echo using " .. var.token .. " > $T/cfg/out/used",
  destroy = "rm -f $T/cfg/out/used",
  check   = "test -f $T/cfg/out/used",
}
resource "local.file" "pub" { path = "$T/cfg/out/pub", content = var.plain }
output "tok" { value = var.token }
output "tok_derived" { value = "Bearer " .. var.token }
output "plain" { value = var.plain }
EOF

# no_secret WHAT: neither secret in stdout/stderr of the last command
no_secret() {
    expect_not_contains both "$SECRET"
    expect_not_contains both "$SECRET2"
}
# no_secret_in_dir: no file under .iac (state, journal, backups) nor plan files
no_secret_in_files() {
    local f
    for f in .iac/* "$@"; do
        [ -f "$f" ] || continue
        if grep -qF -e "$SECRET" -e "$SECRET2" "$f"; then
            fail "secret found in file '$f'"
        else
            pass
        fi
    done
}

step "plan (human) via -var"
run plan -var "token=$SECRET"
expect_rc 0
no_secret
expect_contains out '(sensitive)'
expect_contains out 'visible-value'

step "plan -json"
run plan -json -var "token=$SECRET"
expect_rc 0
no_secret
expect_contains out '"(sensitive)"'
expect_json '[c["after"]["content"] for c in d["resource_changes"] if c["address"]=="local.file.cred"][0]' '(sensitive)'

step "plan -out: plan file"
run plan -var "token=$SECRET" -out="$T/cfg/p.plan"
no_secret
no_secret_in_files p.plan
run show p.plan
no_secret
run show -json p.plan
no_secret

step "apply via IAC_VAR_token"
run_env "IAC_VAR_token=$SECRET" apply -auto-approve
expect_rc 0
no_secret
expect_file_content out/cred "token=$SECRET"
expect_file_content out/used "using $SECRET
"
no_secret_in_files

step "iac output, output NAME, output -json"
run output
no_secret
expect_contains out '(sensitive)'
run output tok
no_secret
run output tok_derived
no_secret
run output -json
no_secret
run output -json tok
no_secret

step "state show, state list, show, show -json, graph"
run state show local.file.cred
expect_rc 0
no_secret
run state show local.exec.use
no_secret
run show
no_secret
run show -json
no_secret
run graph
no_secret

step "no-op plan via -var-file (Lua and JSON)"
echo "token = \"$SECRET\"" >secret.lua
printf '{"token": "%s"}\n' "$SECRET" >secret.json
run plan -detailed-exitcode -var-file secret.lua
expect_rc 0
no_secret
run plan -detailed-exitcode -var-file=secret.json
expect_rc 0
no_secret

step "changing the secret: update shows (sensitive) both sides"
run plan -var "token=$SECRET2"
expect_rc 0
no_secret
expect_contains out '(sensitive)'
run plan -var "token=$SECRET2" -out=p2.plan
expect_rc 0
no_secret
no_secret_in_files p2.plan
step "apply PLANFILE: the secret must be given again, and be the one planned"
run apply p2.plan
expect_rc 1
expect_contains err 'token'
no_secret
expect_file_content out/cred "token=$SECRET"
run_env "IAC_VAR_token=$SECRET" apply p2.plan
expect_rc 1
no_secret
expect_file_content out/cred "token=$SECRET"
# a third value: the plan said content = "token=<SECRET2>"; applying another
# value is not applying "exactly the plan"
run_env "IAC_VAR_token=other-Vb8nM2" apply p2.plan
expect_rc 1
no_secret
expect_file_content out/cred "token=$SECRET"
if [ "$RC" = 0 ]; then
    # it applied the other value: put the planned one back to go on
    run apply -auto-approve -var "token=$SECRET"
    run plan -var "token=$SECRET2" -out=p2.plan
fi
run_env "IAC_VAR_token=$SECRET2" apply p2.plan
expect_rc 0
no_secret
no_secret_in_files
expect_file_content out/cred "token=$SECRET2"

step "drift of a file with a secret"
echo "tampered" >out/cred
run plan -var "token=$SECRET2"
no_secret

step "failing command that prints the secret: error redacted"
cat >>main.lua <<EOF
resource "local.exec" "leaky" {
  create = "echo out:" .. var.token .. "; echo err:" .. var.token .. " >&2; exit 4",
}
EOF
run apply -auto-approve -var "token=$SECRET2"
expect_rc 1
no_secret
expect_contains err 'local.exec.leaky'
expect_contains err '(sensitive)'
no_secret_in_files
run apply -auto-approve -json -var "token=$SECRET2"
expect_rc 1
no_secret

step "config error involving the secret value"
cat >>main.lua <<EOF
resource "local.file" "bad" { path = "$T/cfg/out/bad", content = "x", mode = var.token }
EOF
run plan -var "token=$SECRET2"
expect_rc 1
no_secret
run validate -var "token=$SECRET2"
no_secret
cat >main2.lua <<EOF
variable "token" { sensitive = true }
error("failing with " .. var.token)
EOF
mkdir -p err && mv main2.lua err/main.lua
run -chdir=err plan -var "token=$SECRET2"
expect_rc 1
no_secret

step "destroy: a destroy command that uses the secret is run (and its failure redacted)"
newcfg d
cat >main.lua <<EOF
variable "token" { sensitive = true }
resource "local.exec" "use" {
  create  = "echo create " .. var.token .. " > $T/d/created",
  destroy = "echo destroying " .. var.token .. " > $T/d/destroyed; echo destroy-err " .. var.token .. " >&2; exit 2",
}
resource "local.exec" "clean" {
  create  = "echo " .. var.token .. " > $T/d/clean",
  destroy = "rm $T/d/clean # " .. var.token,
}
EOF
run apply -auto-approve -var "token=$SECRET"
expect_rc 0
expect_file created
expect_file clean
no_secret
no_secret_in_files
run destroy -auto-approve -var "token=$SECRET"
expect_rc 1
expect_file destroyed
expect_no_file clean
expect_contains err 'local.exec.use'
no_secret
no_secret_in_files
run state list
expect_contains out 'local.exec.use'
expect_not_contains out 'local.exec.clean'

finish
