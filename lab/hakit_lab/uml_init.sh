#!/bin/sh
# PID 1 of a uml host (init= on the kernel command line), installed in the uml base image.
#
# What a boot loader and an initramfs would leave: kernel file systems mounted, / writable, the
# NICs named as the inventory says (the vector driver calls them vec0, vec1, ...), the management
# NIC mgmt0 up with its address. Then the same sysvinit-style boot as an ns host (ns_init.sh under
# tini, which reaps orphans as PID 1 must), with the same inputs: uml.py writes them to a host
# directory that the kernel's hostfs= option makes the only host path a guest can mount.
#
# Debian's own rcS (mountkernfs, checkroot, mountall: ~25 s of forks under UML) is not used.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
B=/run/hakit-lab

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sys /sys
mount -o remount,rw /
mountpoint -q /dev || mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
mount -t tmpfs -o nosuid,nodev tmpfs /tmp
mkdir -p "$B" /mnt/hakit-lab-boot

# The boot inputs: the whole of hostfs= (uml.py points it at this host's boot directory).
if mount -t hostfs -o ro none /mnt/hakit-lab-boot; then
	cp -R /mnt/hakit-lab-boot/. "$B"/
	umount /mnt/hakit-lab-boot
else
	echo "hakit-lab uml init: cannot mount the boot inputs (hostfs)"
fi
rmdir /mnt/hakit-lab-boot 2>/dev/null

ip link set lo up
# nics: "<kernel name> <inventory name>" per line, mgmt0 last.
while read -r kname name; do
	[ -n "$name" ] && ip link set "$kname" name "$name"
done <"$B/nics"
ip addr add "$(cat "$B/mgmt-address")" brd + dev mgmt0
ip link set mgmt0 up

exec /usr/bin/tini -- /bin/sh "$B/init"
