# tests/lib/lxd.sh: a real LXD 5.0 (Debian lxd, lxd-client) for tests,
# started and stopped by PID (sourced, not run). Source tests/lib/common.sh
# first and set TMP.
#
#   lxd_start                 take the machine-wide LXD lock, start lxd, set up
#                             a dir pool, a bridge without NAT and the default
#                             profile, HTTPS on 127.0.0.1:LXD_PORT and a trusted
#                             client certificate; exits 77 when LXD cannot run here
#   lxd_base_image ALIAS      the test base image (static busybox, DHCP on eth0,
#                             dropbear when lxd_base_image_ssh=1) under ALIAS,
#                             built once and cached (LXD_CACHE)
#   lxd_stop                  delete the test's instances, stop lxd (lxd shutdown,
#                             then by PID); call it from the EXIT trap
#
# Sets: LXD_URL (https://127.0.0.1:PORT), LXD_SERVER_CERT (file),
# LXD_CLIENT_CERT / LXD_CLIENT_KEY (files under $TMP), LXD_PID.
# Instances the tests make must be named iact-*: lxd_stop and the next
# lxd_start delete those (a crashed run's leftovers), nothing else.
#
# LXD is machine-global (/var/lib/lxd, one daemon): tests using it hold an
# flock on /run/lock/iac-test-lxd.lock from lxd_start to the end of the test.
: "${TMP:?set TMP before sourcing lxd.sh}"
LXD_CACHE=${LXD_CACHE:-/var/cache/iac-test}
LXD_LOCK=/run/lock/iac-test-lxd.lock
LXD_SUBNET=${LXD_SUBNET:-10.215.0}
LXD_PID=
LXD_STARTED=0

lxd_skip() {
	echo "SKIP: $*" >&2
	exit 77
}

lxd_free_port() {
	"$T_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Delete the instances tests make (iact-*), running or not.
lxd_clean_instances() {
	local n
	for n in $(lxc list --format csv -c n 2>/dev/null | grep '^iact-' || true); do
		lxc delete --force "$n" >/dev/null 2>&1 || true
	done
}

lxd_start() {
	local b
	for b in lxd lxc openssl iptables dnsmasq busybox; do
		PATH=$PATH:/usr/sbin:/sbin command -v "$b" >/dev/null ||
			lxd_skip "'$b' is not installed (.ci/install installs it)"
	done
	[ "$(id -u)" = 0 ] || lxd_skip "LXD needs root"
	# the image's init: a dynamic busybox (package busybox) has no libc in the image
	ldd /bin/busybox >/dev/null 2>&1 && lxd_skip "/bin/busybox is not static (install busybox-static)"
	mkdir -p /run/lock
	exec {LXD_LOCK_FD}>"$LXD_LOCK"
	flock -w 900 "$LXD_LOCK_FD" || { echo "FAIL: another test held $LXD_LOCK for 15 minutes" >&2; exit 1; }
	if lxc query /1.0 >/dev/null 2>&1; then
		lxd_skip "an LXD this test did not start is running (stop it: lxd shutdown)"
	fi
	lxd --group root --logfile "$TMP/lxd.log" >"$TMP/lxd.out" 2>&1 &
	LXD_PID=$!
	LXD_STARTED=1
	if ! lxd waitready --timeout 60 >/dev/null 2>&1 || ! kill -0 "$LXD_PID" 2>/dev/null; then
		tail -5 "$TMP/lxd.log" "$TMP/lxd.out" >&2
		lxd_skip "LXD does not start here"
	fi
	# a machine where this ran before keeps /var/lib/lxd: set up only what is missing
	lxc storage show default >/dev/null 2>&1 || lxc storage create default dir >/dev/null ||
		lxd_skip "cannot create a dir storage pool"
	lxc network show lxdbr0 >/dev/null 2>&1 ||
		lxc network create lxdbr0 ipv4.address="$LXD_SUBNET.1/24" ipv4.nat=false ipv6.address=none >/dev/null ||
		lxd_skip "cannot create the bridge lxdbr0"
	lxc profile device show default 2>/dev/null | grep -q '^root:' ||
		lxc profile device add default root disk path=/ pool=default >/dev/null
	lxc profile device show default 2>/dev/null | grep -q '^eth0:' ||
		lxc profile device add default eth0 nic network=lxdbr0 name=eth0 >/dev/null
	lxd_clean_instances
	LXD_PORT=$(lxd_free_port)
	lxc config set core.https_address "127.0.0.1:$LXD_PORT"
	LXD_URL="https://127.0.0.1:$LXD_PORT"
	LXD_SERVER_CERT=/var/lib/lxd/server.crt
	LXD_CLIENT_CERT=$TMP/lxd-client.crt
	LXD_CLIENT_KEY=$TMP/lxd-client.key
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes -days 2 \
		-keyout "$LXD_CLIENT_KEY" -out "$LXD_CLIENT_CERT" -subj "/CN=iac-test-$$" 2>/dev/null
	lxc config trust add "$LXD_CLIENT_CERT" --name "iac-test-$$" >/dev/null
	t_wait_port "$LXD_PORT"
}

# The rootfs of the base image: static busybox as init; udhcpc keeps eth0's
# address from LXD's dnsmasq; with ssh=1 dropbear (and the libraries it links)
# listens on port 22 for root's authorized_keys.
lxd_make_rootfs() {
	local root=$1 ssh=$2 a lib
	mkdir -p "$root"/{bin,sbin,etc/init.d,proc,sys,dev,run,tmp,root,var/run,usr/share/udhcpc}
	chmod 1777 "$root/tmp"
	chmod 700 "$root/root"
	cp /bin/busybox "$root/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	ln -sf ../bin/busybox "$root/sbin/init"
	cat >"$root/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::respawn:/bin/udhcpc -f -i eth0 -s /usr/share/udhcpc/default.script
::respawn:/etc/init.d/sshd
::restart:/sbin/init
::shutdown:/bin/umount -a -r
EOF
	cat >"$root/etc/init.d/rcS" <<'EOF'
#!/bin/sh
/bin/ip link set lo up
/bin/ip link set eth0 up
/bin/hostname -F /etc/hostname 2>/dev/null
EOF
	cat >"$root/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/sh
case "$1" in
deconfig) /bin/ip -4 addr flush dev "$interface" ;;
bound|renew)
	/bin/ip -4 addr flush dev "$interface"
	/bin/ip addr add "$ip/${mask:-24}" dev "$interface"
	;;
esac
EOF
	if [ "$ssh" = 1 ]; then
		cat >"$root/etc/init.d/sshd" <<'EOF'
#!/bin/sh
[ -f /etc/dropbear/dropbear_ed25519_host_key ] || /usr/bin/dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
exec /usr/sbin/dropbear -F -E -s -p 22 -r /etc/dropbear/dropbear_ed25519_host_key
EOF
		mkdir -p "$root/etc/dropbear" "$root/usr/sbin" "$root/usr/bin"
		cp /usr/sbin/dropbear "$root/usr/sbin/"
		cp /usr/bin/dropbearkey "$root/usr/bin/"
		for lib in $(ldd /usr/sbin/dropbear /usr/bin/dropbearkey | grep $'^\t' | grep -o '/[^ ]*' | sort -u); do
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
		echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
		echo 'root:*:1::::::' >"$root/etc/shadow"
		echo '/bin/sh' >"$root/etc/shells"
	else
		printf '#!/bin/sh\nexec sleep 2147483647\n' >"$root/etc/init.d/sshd"
		echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	fi
	echo 'root:x:0:' >"$root/etc/group"
	echo iact >"$root/etc/hostname"
	chmod 755 "$root/etc/init.d/rcS" "$root/etc/init.d/sshd" "$root/usr/share/udhcpc/default.script"
}

# A unified image tarball (metadata.yaml + rootfs/) at $1, cached by what
# goes into it.
lxd_build_image() {
	local out=$1 ssh=${2:-0} d
	d=$(mktemp -d "$TMP/image.XXXX")
	lxd_make_rootfs "$d/rootfs" "$ssh"
	cat >"$d/metadata.yaml" <<EOF
architecture: $(uname -m)
creation_date: 1764633600
properties:
  description: iac test base (busybox$([ "$ssh" = 1 ] && echo ' + dropbear'))
  os: busybox
  release: "1"
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
EOF
	mkdir -p "$d/templates"
	echo '{{ container.name }}' >"$d/templates/hostname.tpl"
	tar -C "$d" --numeric-owner --owner=0 --group=0 --mtime=@1764633600 --sort=name -czf "$out.tmp" \
		metadata.yaml templates rootfs
	mv "$out.tmp" "$out"
	rm -rf "$d"
}

# The path of the cached base image tarball (ssh=1: with dropbear).
lxd_image_file() {
	local ssh=${1:-0} key
	key=$( { cat /bin/busybox; declare -f lxd_make_rootfs lxd_build_image; echo "$ssh";
		[ "$ssh" = 1 ] && cat /usr/sbin/dropbear; } | sha256sum | cut -c1-12)
	mkdir -p "$LXD_CACHE"
	local f="$LXD_CACHE/lxd-base-$key.tar.gz"
	[ -s "$f" ] || lxd_build_image "$f" "$ssh" >&2
	echo "$f"
}

lxd_base_image() {
	local alias=$1 ssh=${lxd_base_image_ssh:-0} f fp
	if [ "$ssh" = 1 ] && ! PATH=$PATH:/usr/sbin command -v dropbear >/dev/null; then
		lxd_skip "'dropbear' is not installed (.ci/install installs dropbear-bin)"
	fi
	f=$(lxd_image_file "$ssh")
	fp=$(sha256sum "$f" | cut -d' ' -f1)
	if lxc image info "$fp" >/dev/null 2>&1; then
		lxc image alias delete "$alias" >/dev/null 2>&1 || true
		lxc image alias create "$alias" "$fp" >/dev/null
	else
		lxc image alias delete "$alias" >/dev/null 2>&1 || true
		lxc image import "$f" --alias "$alias" >/dev/null
	fi
	LXD_IMAGE_FILE=$f
	LXD_IMAGE_FP=$fp
}

lxd_stop() {
	[ "$LXD_STARTED" = 1 ] || return 0
	lxd_clean_instances
	lxc config trust remove "$(openssl x509 -in "$LXD_CLIENT_CERT" -noout -fingerprint -sha256 2>/dev/null |
		cut -d= -f2 | tr -d : | tr A-F a-f | cut -c1-12)" >/dev/null 2>&1 || true
	lxc config unset core.https_address >/dev/null 2>&1 || true
	timeout 60 lxd shutdown >/dev/null 2>&1 || true
	t_stop_pid "$LXD_PID"
	LXD_STARTED=0
}
