#!/bin/bash
# testbed: simulated Linux hosts for iac's SSH tests and benchmarks.
#
# Each host is a network namespace with its own address, its own sshd, its
# own PID namespace and a private copy-on-write view of /etc /var /srv /opt
# /root /home /usr/local (overlays whose upper layers live in DIR) plus
# private tmpfs /run /tmp /dev/shm. All hosts hang off a bridge inside a
# controller namespace with no default route: anything that talks to the
# hosts (iac, ssh, ansible) runs in there via `testbed.sh exec DIR ...`.
#
#   testbed.sh up DIR [-n N] [-p PREFIX] [-s A.B.C]   start N hosts h1..hN
#   testbed.sh down DIR                                stop everything, by PID
#   testbed.sh exec DIR CMD ARGS...                    run in the controller
#   testbed.sh kill DIR HOST                           kill a host (all its processes)
#   testbed.sh start DIR HOST                          (re)boot a host, files kept
#   testbed.sh rekey DIR HOST                          new host key, then reboot
#   testbed.sh check                                   exit 0 when this machine can run it
#
# DIR receives: env (TB_PREFIX, TB_CTL, TB_SUBNET, TB_N, TB_KEY, TB_KNOWN_HOSTS),
# inventory ("name address" lines), id_ed25519(.pub) (a throwaway client key),
# known_hosts, and hosts/NAME/ (overlay layers, sshd.log, launcher.pid).
# Nothing outside DIR is written except the namespaces, which `down` removes.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "testbed: $*" >&2; exit 1; }

check_caps() {
	[ "$(id -u)" = 0 ] || { echo "not root"; return 1; }
	command -v ip >/dev/null || { echo "no ip (iproute2)"; return 1; }
	[ -x /usr/sbin/sshd ] || { echo "no /usr/sbin/sshd (openssh-server)"; return 1; }
	command -v unshare >/dev/null || { echo "no unshare"; return 1; }
	local probe="iac-probe-$$"
	if ! ip netns add "$probe" 2>/dev/null; then echo "cannot create network namespaces"; return 1; fi
	ip netns del "$probe"
	return 0
}

load_env() {
	[ -f "$1/env" ] || die "'$1' holds no test bed (no env file)"
	# shellcheck disable=SC1091
	. "$1/env"
}

# The PID 1 of a host, from its launcher (unshare --fork) pid; empty if gone.
# The launcher is checked to still be ours (cmdline mentions DIR) so a
# recycled PID is never signalled.
host_init_pid() {
	local dir=$1 name=$2 lp
	lp=$(cat "$dir/hosts/$name/launcher.pid" 2>/dev/null) || return 0
	[ -n "$lp" ] && [ -r "/proc/$lp/cmdline" ] || return 0
	tr '\0' ' ' <"/proc/$lp/cmdline" | grep -qF "$dir/hosts/$name" || return 0
	cat "/proc/$lp/task/$lp/children" 2>/dev/null | awk '{print $1}'
}

host_addr() { awk -v n="$2" '$1 == n { print $2 }' "$1/inventory"; }
host_index() { echo "${2#h}"; }

# Stop one host: SIGKILL its PID 1 (the kernel then kills every process of
# its PID namespace), then wait for the launcher to go.
stop_host() {
	local dir=$1 name=$2 ip lp i
	ip=$(host_init_pid "$dir" "$name")
	lp=$(cat "$dir/hosts/$name/launcher.pid" 2>/dev/null || true)
	[ -n "$ip" ] && kill -KILL "$ip" 2>/dev/null
	if [ -n "$lp" ]; then
		for i in $(seq 1 200); do
			[ -d "/proc/$lp" ] || break
			# a zombie launcher of ours: reap is up to its parent; stop waiting
			[ "$(awk '{print $3}' "/proc/$lp/stat" 2>/dev/null)" = Z ] && break
			sleep 0.02
		done
	fi
	rm -f "$dir/hosts/$name/launcher.pid"
}

launch_host() {
	local dir=$1 name=$2 h="$1/hosts/$2"
	: >"$h/sshd.log"
	setsid ip netns exec "$TB_PREFIX-$name" unshare --mount --uts --ipc --pid --fork --kill-child \
		bash "$HERE/host-init.sh" "$h" "$name" </dev/null >>"$h/sshd.log" 2>&1 &
	echo $! >"$h/launcher.pid"
}

wait_ready() {
	local dir=$1; shift
	local name i
	for name in "$@"; do
		for i in $(seq 1 500); do
			grep -q "Server listening" "$dir/hosts/$name/sshd.log" 2>/dev/null && break
			[ -n "$(host_init_pid "$dir" "$name")" ] || [ "$i" -lt 50 ] || {
				cat "$dir/hosts/$name/sshd.log" >&2; die "host '$name' did not start"; }
			sleep 0.02
		done
		grep -q "Server listening" "$dir/hosts/$name/sshd.log" || {
			cat "$dir/hosts/$name/sshd.log" >&2; die "host '$name': sshd not listening after 10s"; }
	done
}

new_host_key() {
	local h=$1
	rm -f "$h/upper/etc/ssh/ssh_host_ed25519_key" "$h/upper/etc/ssh/ssh_host_ed25519_key.pub"
	ssh-keygen -q -t ed25519 -N '' -C '' -f "$h/upper/etc/ssh/ssh_host_ed25519_key" >/dev/null
}

cmd_up() {
	local dir=$1; shift
	local n=4 prefix="" subnet="" opt
	OPTIND=1
	while getopts "n:p:s:" opt; do
		case $opt in
		n) n=$OPTARG ;;
		p) prefix=$OPTARG ;;
		s) subnet=$OPTARG ;;
		*) die "usage: testbed.sh up DIR [-n N] [-p PREFIX] [-s A.B.C]" ;;
		esac
	done
	[ "$n" -ge 1 ] && [ "$n" -le 250 ] || die "N must be 1..250"
	[ -z "$prefix" ] && prefix="iac$$"
	[ ${#prefix} -le 10 ] || die "prefix '$prefix' is too long (at most 10 characters)"
	if [ -z "$subnet" ]; then
		# per-run subnet derived from the prefix; the bridge lives in its own
		# namespace anyway, this only keeps addresses distinct in logs
		local h
		h=$(printf '%s' "$prefix" | cksum | awk '{print $1}')
		subnet="10.$((200 + h % 50)).$(((h / 50) % 256))"
	fi
	mkdir -p "$dir/hosts" || die "cannot create '$dir'"
	dir=$(cd "$dir" && pwd)
	[ -f "$dir/env" ] && die "'$dir' already holds a test bed: run down first"
	local ctl="$prefix-ctl"
	cat >"$dir/env" <<EOF
TB_DIR=$dir
TB_PREFIX=$prefix
TB_CTL=$ctl
TB_SUBNET=$subnet
TB_N=$n
TB_KEY=$dir/id_ed25519
TB_KNOWN_HOSTS=$dir/known_hosts
EOF
	TB_PREFIX=$prefix
	: >"$dir/netns"
	: >"$dir/inventory"
	: >"$dir/known_hosts"
	ssh-keygen -q -t ed25519 -N '' -C "iac-testbed-$prefix" -f "$dir/id_ed25519" >/dev/null || die "ssh-keygen failed"

	ip netns add "$ctl" || { cmd_down "$dir"; die "cannot create namespace '$ctl'"; }
	echo "$ctl" >>"$dir/netns"
	ip -n "$ctl" -batch - <<EOF || { cmd_down "$dir"; die "cannot set up the bridge"; }
link set lo up
link add br0 type bridge
addr add $subnet.1/24 dev br0
link set br0 up
EOF
	local i name ns h pub
	pub=$(cat "$dir/id_ed25519.pub")
	local batch=""
	for i in $(seq 1 "$n"); do
		name="h$i"; ns="$prefix-$name"; h="$dir/hosts/$name"
		ip netns add "$ns" || { cmd_down "$dir"; die "cannot create namespace '$ns'"; }
		echo "$ns" >>"$dir/netns"
		batch+="link add vh$i type veth peer name eth0 netns $ns"$'\n'"link set vh$i master br0 up"$'\n'
		mkdir -p "$h/upper/etc/ssh" "$h/upper/root/.ssh" "$h/work"
		chmod 700 "$h/upper/root" "$h/upper/root/.ssh"
		# a fresh server's root: no login scripts from this machine's
		# /root (they may be slow, and would differ from real hosts)
		for f in .bashrc .profile .bash_profile .bash_login; do
			printf '# test-bed host %s\n' "$name" >"$h/upper/root/$f"
		done
		printf '%s\n' "$pub" >"$h/upper/root/.ssh/authorized_keys"
		chmod 600 "$h/upper/root/.ssh/authorized_keys"
		cat >"$h/upper/etc/ssh/sshd_config" <<EOF
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PidFile /run/sshd.pid
MaxStartups 200:30:400
MaxSessions 64
Subsystem sftp internal-sftp
EOF
		new_host_key "$h"
		echo "$name $subnet.$((i + 1))" >>"$dir/inventory"
		echo "$subnet.$((i + 1)) $(cut -d' ' -f1,2 "$h/upper/etc/ssh/ssh_host_ed25519_key.pub")" >>"$dir/known_hosts"
	done
	printf '%s' "$batch" | ip -n "$ctl" -batch - || { cmd_down "$dir"; die "cannot create veths"; }
	for i in $(seq 1 "$n"); do
		printf 'addr add %s/24 dev eth0\nlink set eth0 up\nlink set lo up\n' "$subnet.$((i + 1))" |
			ip -n "$prefix-h$i" -batch - || { cmd_down "$dir"; die "cannot configure host h$i"; }
	done
	local names=()
	for i in $(seq 1 "$n"); do
		launch_host "$dir" "h$i"
		names+=("h$i")
	done
	(wait_ready "$dir" "${names[@]}") || { cmd_down "$dir"; exit 1; }
	cat "$dir/inventory"
}

cmd_down() {
	local dir=$1 name ns
	[ -d "$dir" ] || return 0
	dir=$(cd "$dir" && pwd)
	[ -f "$dir/env" ] && load_env "$dir"
	if [ -d "$dir/hosts" ]; then
		for h in "$dir"/hosts/*/; do
			[ -d "$h" ] || continue
			name=$(basename "$h")
			stop_host "$dir" "$name"
		done
	fi
	# hosts first (their veths go with them), the controller (bridge) last
	if [ -f "$dir/netns" ]; then
		tac "$dir/netns" | while read -r ns; do
			[ -n "$ns" ] && ip netns del "$ns" 2>/dev/null
		done
		rm -f "$dir/netns"
	fi
	rm -f "$dir/env"
	return 0
}

cmd_exec() {
	local dir=$1; shift
	load_env "$dir"
	exec ip netns exec "$TB_CTL" "$@"
}

cmd_kill() {
	local dir=$1 name=$2
	load_env "$dir"
	[ -n "$(host_addr "$dir" "$name")" ] || die "no host '$name'"
	stop_host "$dir" "$name"
}

cmd_start() {
	local dir=$1 name=$2
	load_env "$dir"
	[ -n "$(host_addr "$dir" "$name")" ] || die "no host '$name'"
	stop_host "$dir" "$name"
	launch_host "$dir" "$name"
	wait_ready "$dir" "$name"
}

cmd_rekey() {
	local dir=$1 name=$2
	load_env "$dir"
	[ -n "$(host_addr "$dir" "$name")" ] || die "no host '$name'"
	new_host_key "$dir/hosts/$name"
	cmd_start "$dir" "$name"
}

case "${1:-}" in
up) shift; [ $# -ge 1 ] || die "usage: testbed.sh up DIR [-n N] [-p PREFIX]"; cmd_up "$@" ;;
down) [ $# -ge 2 ] || die "usage: testbed.sh down DIR"; cmd_down "$2" ;;
exec) [ $# -ge 3 ] || die "usage: testbed.sh exec DIR CMD..."; shift; cmd_exec "$@" ;;
kill) [ $# -eq 3 ] || die "usage: testbed.sh kill DIR HOST"; cmd_kill "$2" "$3" ;;
start) [ $# -eq 3 ] || die "usage: testbed.sh start DIR HOST"; cmd_start "$2" "$3" ;;
rekey) [ $# -eq 3 ] || die "usage: testbed.sh rekey DIR HOST"; cmd_rekey "$2" "$3" ;;
check) check_caps ;;
*) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//;/^set -u/d' >&2; exit 2 ;;
esac
