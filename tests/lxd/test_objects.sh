#!/usr/bin/env bash
# lxd.image (uploaded from a tarball), lxd.profile and lxd.network against a
# real LXD, an instance on them; drift made with lxc shows and is undone
# (updates are PUT with If-Match); `iac import` adopts an instance made by
# hand; destroy removes everything iac made.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

# a variant of the base image (one more file), so the upload is real
v=$TMP/variant
mkdir -p "$v" && tar -C "$v" -xzf "$LXD_IMAGE_FILE"
echo "variant $$" >"$v/rootfs/etc/iac-variant"
tar -C "$v" --numeric-owner -czf "$W/app.tar.gz" metadata.yaml templates rootfs
fp=$(sha256sum "$W/app.tar.gz" | cut -d' ' -f1)

objs() {   # $1 = profile memory, $2 = extra Lua
	lxd_main "
local img = resource 'lxd.image' 'app' { file = 'app.tar.gz', alias = 'iact-app' }
local net = resource 'lxd.network' 'iact-net0' { config = { ['ipv4.address'] = '10.216.0.1/24', ['ipv4.nat'] = false,
                                                           ['ipv6.address'] = 'none' } }
local prof = resource 'lxd.profile' 'iact-app' { description = 'app containers',
  config = { ['limits.memory'] = '$1' },
  devices = { root = { type = 'disk', path = '/', pool = 'default' },
              eth0 = { type = 'nic', network = net.name, name = 'eth0' } } }
resource 'lxd.instance' 'iact-o1' { image = img.alias, profiles = { prof.name } }
$2"
}
objs 128MB ""
iac apply -auto-approve -no-color >"$TMP/apply1.out" 2>&1 || { cat "$TMP/apply1.out"; check_fail "first apply failed"; finish; }
lxc image info iact-app 2>/dev/null | grep -q "Fingerprint: $fp" &&
	ok "image uploaded from the tarball, alias iact-app -> ${fp:0:12}" || check_fail "image $fp / alias iact-app missing"
lxc network get iact-net0 ipv4.address | grep -qx 10.216.0.1/24 && ok "network iact-net0 made" || check_fail "network iact-net0"
lxc profile get iact-app limits.memory | grep -qx 128MB && ok "profile iact-app made" || check_fail "profile iact-app"
addr=$(lxc list iact-o1 --format csv -c 4 | cut -d' ' -f1)
case "$addr" in 10.216.0.*) ok "iact-o1 runs on iact-net0 at $addr";; *) check_fail "iact-o1 address '$addr'";; esac
lxc exec iact-o1 -- cat /etc/iac-variant | grep -q "variant $$" && ok "iact-o1 runs the uploaded image" || check_fail "not the variant image"
iac plan -detailed-exitcode -no-color >"$TMP/plan0.out" 2>&1
rc=$?
[ $rc = 0 ] && ok "no-op plan after apply (keys LXD adds are not drift)" || { cat "$TMP/plan0.out"; check_fail "plan: exit $rc"; }

# drift made with lxc
lxc profile set iact-app limits.memory 512MB
lxc network set iact-net0 ipv4.dhcp.expiry 2h   # a key nobody declared: not drift
iac plan -no-color -detailed-exitcode >"$TMP/plan1.out" 2>&1
rc=$?
[ $rc = 2 ] && grep -q 'lxd.profile.iact-app will be updated in place' "$TMP/plan1.out" && grep -q 512MB "$TMP/plan1.out" &&
	! grep -q 'lxd.network' "$TMP/plan1.out" && ok "profile drift shows, undeclared network key does not" ||
	{ cat "$TMP/plan1.out"; check_fail "drift plan (exit $rc)"; }
iac apply -auto-approve >"$TMP/apply2.out" 2>&1 || { cat "$TMP/apply2.out"; check_fail "apply after drift failed"; }
lxc profile get iact-app limits.memory | grep -qx 128MB && ok "apply put limits.memory back" || check_fail "limits.memory: $(lxc profile get iact-app limits.memory)"
lxc network get iact-net0 ipv4.dhcp.expiry | grep -qx 2h && ok "the undeclared key was kept" || check_fail "ipv4.dhcp.expiry lost"

# update in place
objs 192MB ""
iac apply -auto-approve >"$TMP/apply3.out" 2>&1 || { cat "$TMP/apply3.out"; check_fail "update apply failed"; }
lxc profile get iact-app limits.memory | grep -qx 192MB && ok "profile updated in place" || check_fail "profile not updated"

# import an instance made by hand
lxc launch iact-base iact-hand >/dev/null 2>&1
objs 192MB "resource 'lxd.instance' 'iact-hand' { image = 'iact-base' }"
iac import lxd.instance.iact-hand iact-hand >"$TMP/import.out" 2>&1 && ok "import of iact-hand" ||
	{ cat "$TMP/import.out"; check_fail "import failed"; }
iac plan -detailed-exitcode -no-color >"$TMP/plan2.out" 2>&1
rc=$?
[ $rc = 0 ] && ok "no-op plan after import" || { cat "$TMP/plan2.out"; check_fail "plan after import: exit $rc"; }

# forgotten and adopted again by name (profile, network) and alias (image)
iac state rm lxd.profile.iact-app lxd.network.iact-net0 lxd.image.app >"$TMP/rm.out" 2>&1 || { cat "$TMP/rm.out"; check_fail "state rm failed"; }
iac import lxd.profile.iact-app iact-app >"$TMP/imp2.out" 2>&1 && iac import lxd.network.iact-net0 iact-net0 >>"$TMP/imp2.out" 2>&1 &&
	iac import lxd.image.app iact-app >>"$TMP/imp2.out" 2>&1 && ok "profile, network and image imported" ||
	{ cat "$TMP/imp2.out"; check_fail "import of profile/network/image failed"; }
iac plan -detailed-exitcode -no-color >"$TMP/plan3.out" 2>&1
rc=$?
[ $rc = 0 ] && ok "no-op plan after those imports" || { cat "$TMP/plan3.out"; check_fail "plan after imports: exit $rc"; }

iac destroy -auto-approve >"$TMP/destroy.out" 2>&1 || { cat "$TMP/destroy.out"; check_fail "destroy failed"; }
[ -z "$(lxc list --format csv -c n | grep '^iact-')" ] && ok "instances removed" || check_fail "left: $(lxc list --format csv -c n)"
lxc profile show iact-app >/dev/null 2>&1 && check_fail "profile left" || ok "profile removed"
lxc network show iact-net0 >/dev/null 2>&1 && check_fail "network left" || ok "network removed"
lxc image list --format csv -c f | grep -q "^${fp:0:12}" && check_fail "image left" || ok "image removed"
finish
