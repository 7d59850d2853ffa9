#!/usr/bin/env bash
# Odd command-line and file input gets a clear error, never a wrong
# number, a hang, a silently ignored flag or a stray .iac/ directory.
. "$(dirname "$0")/lib.sh"

newcfg odd
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "x", content = "1" }
EOF
for n in 2147483648 4294967297 -9999999999999999999; do
	step "-parallelism $n is too large, not wrapped"
	run plan -parallelism "$n"
	expect_rc 1
	expect_contains err "flag '-parallelism' of 'iac plan': '$n' is too large"
done
for d in nan inf -1s 1e400; do
	step "-lock-timeout $d is an error, not a wait forever"
	run plan -lock-timeout "$d"
	expect_rc 1
	expect_contains err "flag '-lock-timeout' of 'iac plan': invalid duration '$d'"
done
step "-replace of an unknown address is an error"
run plan -replace local.file.nope
expect_rc 1
expect_contains err "-replace 'local.file.nope' matches no resource"
run plan -replace local.file.a
expect_rc 0

step "plan in a directory without main.lua makes no .iac/"
mkdir empty
cd empty
run plan
expect_rc 1
expect_contains err "no main.lua in"
[ ! -e .iac ] || fail ".iac/ was created in a directory that is not a configuration"
cd ..

step "a serial at the end of its range is an error, not a wrap"
run apply -auto-approve
expect_rc 0
python3 - <<'EOF'
import json
p = ".iac/state.json"
d = json.load(open(p))
d["serial"] = 2**63 - 1
json.dump(d, open(p, "w"))
EOF
run plan
expect_rc 1
expect_contains err "'serial' is too large"

finish
