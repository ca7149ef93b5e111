#!/bin/sh
# The init of an ns host, run by tini (PID 1) with the host's own /bin/sh: a sysvinit-style boot.
#
# Inputs (written by nshost.py, copied to /run/hakit-lab by stage 1):
#   name               the inventory name
#   hosts              /etc/hosts listing the lab's hosts, for the first boot
#   interfaces/<nic>   the installer-style /etc/network/interfaces stanza of each topology NIC
#   sources.path       where the apt source file goes; sources.list its content (the lab proxy)
#   authorized_keys    the lab's SSH public key for root
#
# First boot (the disk has no /var/lib/hakit-lab/installed) does what an installer leaves behind:
# /etc/hostname, /etc/hosts, a stanza per topology NIC that has none. Every boot then: hostname
# from /etc/hostname, resolver 127.0.0.1, the apt source, root's lab key, SSH host keys if none,
# the boot scripts /etc/rcS.d/S* (networking: ifup -a) and /etc/rc2.d/S* (enabled services), sshd
# if still not running, the ready marker, and wait forever.
#
# The network comes up from /etc/network/interfaces as on a real server: the lab configures only
# the management NIC mgmt0, which ifupdown never sees.

B=/run/hakit-lab
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
name=$(cat "$B/name")

say() {
	echo "$(date '+%H:%M:%S.%N' | cut -c1-12) $name init: $*"
}

say "boot"

# -- the base system ------------------------------------------------------------------------
mkdir -p /run/lock /run/sshd /run/network /var/lib/hakit-lab
chmod 1777 /run/lock
chmod 0755 /run/sshd
: >/run/utmp

first_boot=no
if [ ! -e /var/lib/hakit-lab/installed ]; then
	first_boot=yes
	say "first boot: hostname, hosts, network interfaces"
	cp "$B/name" /etc/hostname
	cp "$B/hosts" /etc/hosts
	ifaces=/etc/network/interfaces
	[ -e "$ifaces" ] || printf '# interfaces(5) file used by ifup(8) and ifdown(8)\nsource /etc/network/interfaces.d/*\n' >"$ifaces"
	has_stanza() {
		grep -qsE "^[[:space:]]*iface[[:space:]]+$1([[:space:]]|\$)" "$ifaces" /etc/network/interfaces.d/*
	}
	if ! has_stanza lo; then
		printf '\n# The loopback network interface\nauto lo\niface lo inet loopback\n' >>"$ifaces"
	fi
	for stanza in "$B"/interfaces/*; do
		[ -e "$stanza" ] || continue
		nic=${stanza##*/}
		has_stanza "$nic" || { echo; cat "$stanza"; } >>"$ifaces"
	done
	# invoke-rc.d asks `runlevel` whether a service enabled for the current runlevel may start
	# (apt starts what it installs, as on a real sysvinit system). The base's runlevel is systemd's,
	# which knows no runlevel without systemd: divert it (dpkg keeps it aside on upgrades) for one
	# that reports the runlevel this boot reached.
	if [ -L /sbin/runlevel ] || [ ! -e /sbin/runlevel ]; then
		dpkg-divert --quiet --local --rename --divert /sbin/runlevel.no-sysvinit --add /sbin/runlevel
		cat >/sbin/runlevel <<-'EOF'
			#!/bin/sh
			# hakit-lab: this host's init emulates sysvinit; report the runlevel its boot reached.
			if [ -s /run/hakit-lab/runlevel ]; then echo "N $(cat /run/hakit-lab/runlevel)"; else echo unknown; exit 1; fi
		EOF
		chmod 0755 /sbin/runlevel
	fi
fi

hostname -F /etc/hostname || say "hostname from /etc/hostname failed"

# Never the machine's resolver: lab hosts reach nothing beyond the lab.
rm -f /etc/resolv.conf
echo "nameserver 127.0.0.1" >/etc/resolv.conf

# The only package source: the lab's proxy on the controller.
sources=$(cat "$B/sources.path")
mkdir -p "${sources%/*}"
cp "$B/sources.list" "$sources"

mkdir -p /root/.ssh
chmod 0700 /root/.ssh
touch /root/.ssh/authorized_keys
grep -qsxF -f "$B/authorized_keys" /root/.ssh/authorized_keys || cat "$B/authorized_keys" >>/root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys

if ! ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
	say "generating SSH host keys"
	ssh-keygen -A
fi

[ "$first_boot" = yes ] && date -u '+%Y-%m-%dT%H:%M:%SZ' >/var/lib/hakit-lab/installed

# -- boot scripts, in order, as sysvinit's rc does ------------------------------------------
run_level() {
	level=$1
	echo "$level" >"$B/runlevel"
	RUNLEVEL=$level
	PREVLEVEL=N
	export RUNLEVEL PREVLEVEL
	for script in /etc/rc"$level".d/S*; do
		[ -x "$script" ] || continue
		say "rc$level: $script start"
		"$script" start </dev/null || say "rc$level: $script start failed ($?)"
	done
}
run_level S
run_level 2

# The lab manages the host over SSH: sshd runs even if no boot script started it. (sshd writes
# its pid file once it has detached, a moment after its init script returned.)
sshd_running() {
	[ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null
}
if ls /etc/rc2.d/S*ssh >/dev/null 2>&1; then
	i=0
	while [ $i -lt 50 ] && ! sshd_running; do
		sleep 0.05
		i=$((i + 1))
	done
fi
if ! sshd_running; then
	say "starting sshd"
	/usr/sbin/sshd || say "sshd failed to start ($?)"
fi

say "ready"
echo "$name" >"$B/ready"
exec sleep infinity
