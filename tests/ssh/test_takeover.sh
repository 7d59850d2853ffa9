#!/bin/bash
# ssh.file over a file iac did not make: the plan says it takes it over
# (size, kept or not), apply keeps the original as PATH.iac-orig, destroy
# puts it back byte for byte. backup = false replaces without keeping.
# validate (which runs plan-time checks) never contacts the host. An
# ssh.directory's force_destroy set later reaches state without a diff.
. "$(dirname "$0")/lib.sh"
bed_up 1

on_host 1 'mkdir -p /srv/t && printf "the distribution motd\nline 2\n" > /srv/t/motd && chmod 0640 /srv/t/motd &&
	printf "scratch\n" > /srv/t/scratch'
cat >"$WORK/main.lua" <<EOF
$(provider_block)
host "h1" { address = "$(addr 1)" }
resource "ssh.file" "motd" { host = "h1", path = "/srv/t/motd", content = "managed by iac\n" }
resource "ssh.file" "scratch" { host = "h1", path = "/srv/t/scratch", content = "new\n", backup = false }
resource "ssh.file" "fresh" { host = "h1", path = "/srv/t/fresh", content = "fresh\n" }
EOF
iac plan >"$WORK/plan.out" 2>&1 || { cat "$WORK/plan.out"; fail "plan failed"; }
expect_in "$WORK/plan.out" 'takes_over = "replaces an existing file, 29 bytes, not managed by iac; kept as .iac-orig and put back by destroy"'
expect_in "$WORK/plan.out" 'takes_over = "replaces an existing file, 8 bytes, not managed by iac; not kept (backup = false)"'
grep -A8 'ssh.file.fresh will be created' "$WORK/plan.out" | grep -q takes_over && fail "a new file is not a takeover"

iac apply -auto-approve >"$WORK/apply.out" 2>&1 || { cat "$WORK/apply.out"; fail "apply failed"; }
[ "$(on_host 1 'cat /srv/t/motd')" = "managed by iac" ] || fail "motd not written"
[ "$(on_host 1 'cat /srv/t/motd.iac-orig')" = "$(printf 'the distribution motd\nline 2')" ] || fail "original not kept"
on_host 1 'test ! -e /srv/t/scratch.iac-orig' || fail "backup = false kept a copy"
iac show -json >"$WORK/state.out" 2>&1
expect_in "$WORK/state.out" '"original": "/srv/t/motd.iac-orig"'
iac plan -detailed-exitcode >"$WORK/plan2.out" 2>&1 || { cat "$WORK/plan2.out"; fail "second plan is not clean"; }

iac destroy -auto-approve >"$WORK/destroy.out" 2>&1 || { cat "$WORK/destroy.out"; fail "destroy failed"; }
[ "$(on_host 1 'cat /srv/t/motd')" = "$(printf 'the distribution motd\nline 2')" ] || fail "destroy did not put the original back"
[ "$(on_host 1 'stat -c %a /srv/t/motd')" = 640 ] || fail "the original's mode was not kept"
on_host 1 'test ! -e /srv/t/motd.iac-orig && test ! -e /srv/t/scratch && test ! -e /srv/t/fresh' ||
	fail "destroy left files behind"

# force_destroy set after the directory exists: no diff of the directory,
# but destroy must see it (its own error message says to set it)
cat >"$WORK/main.lua" <<EOF
$(provider_block)
host "h1" { address = "$(addr 1)" }
resource "ssh.directory" "d" { host = "h1", path = "/srv/t/data" }
EOF
iac apply -auto-approve >"$WORK/d1.out" 2>&1 || { cat "$WORK/d1.out"; fail "directory apply failed"; }
on_host 1 'echo x > /srv/t/data/left-behind'
iac destroy -auto-approve >"$WORK/d2.out" 2>&1 && fail "destroy of a non-empty directory without force_destroy succeeded"
expect_in "$WORK/d2.out" "force_destroy = true"
sed -i 's|path = "/srv/t/data" }|path = "/srv/t/data", force_destroy = true }|' "$WORK/main.lua"
iac apply -auto-approve >"$WORK/d3.out" 2>&1 || { cat "$WORK/d3.out"; fail "apply of force_destroy failed"; }
iac destroy -auto-approve >"$WORK/d4.out" 2>&1 || { cat "$WORK/d4.out"; fail "destroy with force_destroy failed"; }
on_host 1 'test ! -e /srv/t/data' || fail "the directory is still there"

# validate runs the plan-time checks but never the host: an unreachable
# address must not matter to it
sed -i "s/address = \"$(addr 1)\"/address = \"127.0.0.9\", port = 1/" "$WORK/main.lua"
iac validate >"$WORK/validate.out" 2>&1 || { cat "$WORK/validate.out"; fail "validate contacted the host"; }
echo "ok: takeover kept and restored the original"
