#!/bin/bash
# host-init: PID 1 of one simulated host (see testbed.sh). Runs inside
# `ip netns exec NS unshare --mount --uts --ipc --pid --fork`, so the mounts
# below are private to this host and vanish with it.
#   host-init.sh HOSTDIR NAME
set -eu
H=$1
NAME=$2

mount --make-rprivate /
for d in etc var srv opt root home usr/local; do
	k=${d//\//_}
	mkdir -p "$H/upper/$k" "$H/work/$k"
	mount -t overlay "iac-tb-$k" -o "lowerdir=/$d,upperdir=$H/upper/$k,workdir=$H/work/$k" "/$d"
done
mount -t proc proc /proc
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /run/sshd /run/lock
hostname "$NAME"
cd /
exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
