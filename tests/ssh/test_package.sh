#!/bin/bash
# ssh.package: .deb packages the test builds on the controller (hosts have
# no route out) are installed on a test-bed host through apt, several in
# one apt run, pinned versions upgraded, a package removed behind iac's
# back is drift, destroy removes them. Payloads live under /usr/local,
# which each test-bed host has as its own copy-on-write layer, so an
# install stays on that host.
. "$(dirname "$0")/lib.sh"
t_need dpkg-deb
bed_up 2

mkdeb() {   # NAME VERSION
	local d="$WORK/pkg-$1-$2"
	mkdir -p "$d/DEBIAN" "$d/usr/local/share/iac-test"
	printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: iac tests <t@example.invalid>\nDescription: iac test package\n' \
		"$1" "$2" >"$d/DEBIAN/control"
	echo "$1 $2" >"$d/usr/local/share/iac-test/$1"
	dpkg-deb --build --root-owner-group "$d" "$WORK/$1_$2.deb" >/dev/null || fail "cannot build $1 $2"
}
mkdeb iac-test-a 1.0
mkdeb iac-test-b 1.0
mkdeb iac-test-c 1.0
mkdeb iac-test-a 2.0

write() {   # A_VERSION
	cat >"$WORK/main.lua" <<EOF
$(provider_block)
host "h1" { address = "$(addr 1)" }
for _, p in ipairs { "b", "c" } do
  resource "ssh.package" ("p" .. p) { host = "h1", name = "iac-test-" .. p, deb = "iac-test-" .. p .. "_1.0.deb" }
end
resource "ssh.package" "pa" { host = "h1", name = "iac-test-a", version = "$1", deb = "iac-test-a_$1.deb" }
EOF
}
write 1.0
runs0=$(on_host 1 'grep -c "^Start-Date" /var/log/apt/history.log 2>/dev/null || echo 0')
iac apply -auto-approve -parallelism 8 >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "apply failed"; }
for p in a b c; do
	[ "$(on_host 1 "cat /usr/local/share/iac-test/iac-test-$p")" = "iac-test-$p 1.0" ] || fail "iac-test-$p not installed"
done
on_host 2 'test ! -e /usr/local/share/iac-test/iac-test-a' || fail "the install leaked to h2"
runs=$(( $(on_host 1 'grep -c "^Start-Date" /var/log/apt/history.log') - runs0 ))
echo "apt runs for 3 packages: $runs"
[ "$runs" -le 2 ] || fail "$runs apt runs for 3 packages (batching)"
iac plan -detailed-exitcode >"$WORK/p1.out" 2>&1 || { cat "$WORK/p1.out"; fail "plan after apply is not clean"; }

# pinned version: a new pin upgrades
write 2.0
iac apply -auto-approve >"$WORK/a2.out" 2>&1 || { cat "$WORK/a2.out"; fail "upgrade failed"; }
[ "$(on_host 1 'dpkg-query -W -f="\${Version}" iac-test-a')" = 2.0 ] || fail "not upgraded"

# removed behind iac's back: drift, installed again
on_host 1 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q iac-test-b >/dev/null 2>&1'
iac plan -detailed-exitcode >"$WORK/p2.out" 2>&1
[ $? = 2 ] || { cat "$WORK/p2.out"; fail "plan did not notice the removed package"; }
expect_in "$WORK/p2.out" "not installed"
iac apply -auto-approve >"$WORK/a3.out" 2>&1 || { cat "$WORK/a3.out"; fail "reinstall failed"; }

iac destroy -auto-approve >"$WORK/d.out" 2>&1 || { cat "$WORK/d.out"; fail "destroy failed"; }
for p in a b c; do
	on_host 1 "dpkg-query -W -f='\${db:Status-Status}' iac-test-$p 2>/dev/null | grep -q '^installed'" && fail "iac-test-$p left installed"
done
echo "ok: ssh.package"
