#!/bin/sh
# Stage 1 of an ns host's boot (run by nshost.py with the controller's /bin/sh).
#
# This process is PID 1 of the host's new PID, mount, UTS and IPC namespaces and already sits in
# the host's network namespace. It builds the host's root: an overlay whose lower layer is the
# lab's base root filesystem (never the machine's own root) and whose upper layer is the host's
# "disk" (kept across poweroff/boot), with private /proc, /sys, /dev, /dev/shm and /run. Then it
# pivots into that root and hands PID 1 to tini, which runs the host's init (ns_init.sh, copied
# to /run/hakit-lab/init).
#
# usage: ns_stage1.sh NAME HOSTDIR LOWER ROOT_SOURCE
#   HOSTDIR holds upper/ work/ root/ and boot/ (the init and its inputs, written by nshost.py)
#   ROOT_SOURCE names the overlay mount (`down` finds a host's processes by it)
set -eu

name=$1 hostdir=$2 lower=$3 root_source=$4
R=$hostdir/root

fail() {
	echo "hakit-lab stage1 ($name): $*" >&2
	exit 1
}

[ -x "$lower/usr/bin/tini" ] || fail "the base root $lower has no /usr/bin/tini (the image must include tini)"
[ -x "$lower/bin/sh" ] || fail "the base root $lower has no /bin/sh"

# Nothing mounted from here on propagates back to the machine.
mount --make-rprivate /
mkdir -p "$hostdir/upper" "$hostdir/work" "$R"
mount -t overlay "$root_source" -o "lowerdir=$lower,upperdir=$hostdir/upper,workdir=$hostdir/work" "$R"

# /proc of the host's own PID namespace. /proc/sys is read-only except net/, which belongs to the
# host's network namespace: a role's sysctl (ip_forward, arp_ignore) works, nothing reaches the
# machine's kernel.* settings. sysrq-trigger is read-only too.
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,rw "$R/proc/sys/net"
if [ -e "$R/proc/sysrq-trigger" ]; then
	mount --bind "$R/proc/sysrq-trigger" "$R/proc/sysrq-trigger"
	mount -o remount,bind,ro "$R/proc/sysrq-trigger"
fi

# sysfs mounted here shows the host's network namespace (its own /sys/class/net); read-only.
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"

# A private /dev: the usual character devices, a private devpts instance (sshd's ptys), /dev/shm.
mount -t tmpfs -o mode=755,size=1m,nosuid,noexec dev "$R/dev"
for node in null zero full random urandom tty; do
	: >"$R/dev/$node"
	mount --bind "/dev/$node" "$R/dev/$node"
done
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,size=64m,nosuid,nodev shm "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"

# A fresh /run every boot, holding the init and its inputs.
mount -t tmpfs -o mode=755,size=64m,nosuid,nodev run "$R/run"
mkdir -p "$R/run/hakit-lab"
cp -R "$hostdir/boot/." "$R/run/hakit-lab/"

# pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the host's.
cd "$R"
pivot_root . .
umount -l .
cd /
exec /usr/bin/tini -- /bin/sh /run/hakit-lab/init
