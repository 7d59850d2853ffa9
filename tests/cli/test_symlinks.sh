#!/usr/bin/env bash
# No file is clobbered through a symbolic link: temp files beside a target
# (planted links named like them are never followed), a link at a
# local.file's path (refused unless follow_symlinks = true, and never read
# into state), `plan -out` onto a device or a link, and links inside .iac/
# (lock, journal, state, .iac itself). A .iac readable by others is
# tightened to 0700, saying so.
. "$(dirname "$0")/lib.sh"

newcfg cfg
mkdir -p shared
echo "precious" >victim
chmod 600 victim

# --- planted temp-file links: the old name pattern PATH.tmp.PID.N -----------------
# plant links for the next thousand PIDs and sequence numbers, as an attacker
# who can write in the target's directory would
pid_now=$(sh -c 'echo $$')
for p in $(seq "$pid_now" $((pid_now + 300))); do
	for n in 0 1 2; do ln -s "$T/cfg/victim" "shared/app.conf.tmp.$p.$n"; done
done
cat >main.lua <<'EOF'
resource "local.file" "app" { path = "shared/app.conf", content = "app config", mode = "0666" }
EOF
step "apply beside planted links"
run apply -auto-approve
expect_rc 0
expect_file_content shared/app.conf "app config"
expect_eq "the victim's content" "precious" "$(cat victim)"
expect_eq "the victim's mode" "600" "$(stat -c %a victim)"
expect_eq "the file's mode" "666" "$(stat -c %a shared/app.conf)"
expect_eq "leftover temp files" "0" "$(find shared -name 'app.conf.tmp.*' -type f | wc -l)"

# --- a link at the path itself ------------------------------------------------------
rm -f shared/app.conf
ln -s "$T/cfg/victim" shared/app.conf
step "plan with a link where the file should be"
run plan
expect_rc_not 0
expect_contains err "is a symbolic link"
expect_not_contains out "precious"
step "apply refuses to write through it"
run apply -auto-approve
expect_rc_not 0
expect_contains err "symbolic link"
expect_eq "the victim after apply" "precious" "$(cat victim)"
expect_not_contains file:.iac/state.json "precious"
step "follow_symlinks = true writes the target, as asked"
cat >main.lua <<'EOF'
resource "local.file" "app" { path = "shared/app.conf", content = "app config", follow_symlinks = true }
EOF
run apply -auto-approve
expect_rc 0
expect_eq "the link's target" "app config" "$(cat victim)"
test -L shared/app.conf && pass || fail "the link itself was replaced"

# --- plan -out onto something that is not a regular file ----------------------------
newcfg out
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "a.txt", content = "a" }
EOF
step "plan -out=/dev/null is refused"
if [ "$(id -u)" = 0 ]; then
	mknod "$T/out/fakedev" c 1 3   # a copy of /dev/null's device node
	run plan -out="$T/out/fakedev"
	expect_rc_not 0
	expect_contains err "is a device"
	test -c "$T/out/fakedev" && pass || fail "the device node was replaced"
fi
ln -s "$T/cfg/victim" planlink
step "plan -out onto a link is refused"
run plan -out=planlink
expect_rc_not 0
expect_contains err "is a symbolic link"
expect_eq "the link's target after plan -out" "app config" "$(cat "$T/cfg/victim")"

# --- links inside .iac/ ------------------------------------------------------------------
newcfg dotiac
echo "precious" >victim
cat >main.lua <<'EOF'
resource "local.file" "a" { path = "a.txt", content = "a" }
EOF
mkdir -m 0700 .iac
ln -s "$T/dotiac/victim" .iac/lock
step ".iac/lock is a link"
run apply -auto-approve
expect_rc_not 0
expect_contains err "lock file"
expect_contains err "symbolic link"
expect_eq "victim after a lock link" "precious" "$(cat victim)"
rm .iac/lock
ln -s "$T/dotiac/victim" .iac/state.journal
step ".iac/state.journal is a link"
run apply -auto-approve
expect_rc_not 0
expect_contains err "symbolic link"
expect_eq "victim after a journal link" "precious" "$(cat victim)"
rm .iac/state.journal
ln -s "$T/dotiac/victim" .iac/state.json
step ".iac/state.json is a link"
run plan
expect_rc_not 0
expect_contains err "symbolic link"
expect_eq "victim after a state link" "precious" "$(cat victim)"
rm -rf .iac
mkdir elsewhere
ln -s "$T/dotiac/elsewhere" .iac
step ".iac itself is a link"
run apply -auto-approve
expect_rc_not 0
expect_contains err "is a symbolic link"
expect_eq "files written through the .iac link" "0" "$(ls elsewhere | wc -l)"
rm .iac
mkdir -m 0755 .iac
step "a .iac readable by others is tightened, saying so"
run apply -auto-approve
expect_rc 0
expect_contains err "its mode is now 0700"
expect_eq ".iac mode" "700" "$(stat -c %a .iac)"

finish
