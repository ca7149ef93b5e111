"""The VM runtime: command lines (unit), then two real TCG VMs on one segment (marked `vm`).

The `vm` tests bring up a switch namespace of their own (hkl-vt, not the lab's hkl-sw, so a lab
that is up is left alone) with a management and a topology bridge, a controller veth in the root
namespace and the apt proxy on it, and remove all of it afterwards.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hakit_lab import aptproxy, image, model, paths, vm
from hakit_lab.model import LabError

TEST_NS = "hkl-vt"
CTL_LINK = "hkl-vtc"
MGMT_NET = ipaddress.IPv4Network("10.77.200.0/24")
LAN_NET = ipaddress.IPv4Network("10.77.201.0/24")


def make_lab(disks=(64,), nics=1) -> model.Lab:
    mgmt = model.Network("mgmt", MGMT_NET, 0)
    nets = {
        "lan": model.Network("lan", LAN_NET, 1),
        "hb": model.Network("hb", ipaddress.IPv4Network("10.77.202.0/24"), 2),
    }

    def host(name: str, i: int) -> model.Host:
        ifaces = [
            model.Interface(
                "eth0",
                "lan",
                ipaddress.IPv4Interface(f"10.77.201.{10 + i}/24"),
                ipaddress.IPv4Address("10.77.201.1"),
            )
        ]
        if nics > 1:
            ifaces.append(model.Interface("eth1", "hb", ipaddress.IPv4Interface(f"10.77.202.{10 + i}/24")))
        return model.Host(
            name, "vm", i, ipaddress.IPv4Interface(f"10.77.200.{10 + i}/24"), tuple(ifaces), disks, 512
        )

    return model.Lab(nets, {h.name: h for h in (host("vm1", 1), host("vm2", 2))}, mgmt)


FAKE_IMAGE = image.VmImage(
    Path("/img/vmlinuz"), Path("/img/initrd.img"), Path("/img/base.qcow2"), "6.1.0-56-amd64"
)


# -- command lines -----------------------------------------------------------------------------


def test_kernel_cmdline_carries_the_identity():
    lab = make_lab(nics=2)
    h = lab.hosts["vm2"]
    args = vm.kernel_cmdline(lab, h).split()
    assert "root=/dev/vda" in args and "console=ttyS0" in args
    assert "hkl.hostname=vm2" in args and "systemd.hostname=vm2" in args
    assert "hkl.nic=eth0,02:00:0a:4d:c9:0c,10.77.201.12/24,10.77.201.1" in args
    assert "hkl.nic=eth1,02:00:0a:4d:ca:0c,10.77.202.12/24" in args
    assert "hkl.mgmt=02:00:0a:4d:c8:0c,10.77.200.12/24" in args
    apt = next(a for a in args if a.startswith("hkl.apt="))
    assert apt == "hkl.apt=" + image.encode_apt_sources(aptproxy.sources_list("10.77.200.1"))
    ids = {a for a in args if a.startswith("systemd.machine_id=")}
    assert ids != {
        a for a in vm.kernel_cmdline(lab, lab.hosts["vm1"]).split() if a.startswith("systemd.machine_id=")
    }


def test_kernel_cmdline_refuses_bad_names_and_overlong_lines():
    lab = make_lab()
    h = lab.hosts["vm1"]
    bad = model.Host("under_score", "vm", 3, h.mgmt, h.interfaces)
    with pytest.raises(LabError, match="hostname"):
        vm.kernel_cmdline(lab, bad)
    many = tuple(
        model.Interface(
            f"eth{i}",
            "lan",
            ipaddress.IPv4Interface(f"10.77.201.{100 + i}/24"),
            ipaddress.IPv4Address("10.77.201.1"),
        )
        for i in range(40)
    )
    with pytest.raises(LabError, match="too long"):
        vm.kernel_cmdline(lab, model.Host("big", "vm", 4, h.mgmt, many))


def test_qemu_argv_wires_taps_macs_disks_and_pins_pci_order(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "VMS", tmp_path)
    lab = make_lab(disks=(64, 32), nics=2)
    h = lab.hosts["vm1"]
    argv = vm.qemu_argv(lab, h, FAKE_IMAGE, "tcg")
    joined = " ".join(argv)
    assert argv[0] == vm.QEMU and "-daemonize" in argv
    assert argv[argv.index("-pidfile") + 1] == str(tmp_path / "vm1" / "qemu.pid")
    assert argv[argv.index("-m") + 1] == "512" and argv[argv.index("-smp") + 1] == "1"
    assert "tcg,thread=multi" in argv[argv.index("-accel") + 1]
    assert "-no-reboot" not in argv  # a guest reboot reboots
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    assert netdevs == [
        "tap,id=net-eth0,ifname=hkl1n0,script=no,downscript=no",
        "tap,id=net-eth1,ifname=hkl1n1,script=no,downscript=no",
        "tap,id=net-mgmt0,ifname=hkl1nm,script=no,downscript=no",
    ]
    nics = [
        argv[i + 1] for i, a in enumerate(argv) if a == "-device" and argv[i + 1].startswith("virtio-net")
    ]
    assert [n.split("mac=")[1].split(",")[0] for n in nics] == [i.mac for i in h.all_interfaces]
    slots = [int(n.split("addr=")[1], 16) for n in nics]
    assert slots == sorted(slots)  # probe order = inventory order, management last
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert [d.split(",")[0] for d in drives] == [
        f"file={tmp_path}/vm1/root.qcow2",
        f"file={tmp_path}/vm1/vdb.qcow2",
        f"file={tmp_path}/vm1/vdc.qcow2",
    ]
    assert f"path={tmp_path}/vm1/serial.sock" in joined and f"logfile={tmp_path}/vm1/console.log" in joined
    assert f"unix:{tmp_path}/vm1/qmp.sock" in joined
    assert [(t, b) for _i, t, b in vm.nic_links(lab, h)] == [
        ("hkl1n0", "hklbr1"),
        ("hkl1n1", "hklbr2"),
        ("hkl1nm", "hklbr0"),
    ]


def test_start_refuses_ns_hosts_and_a_missing_switch(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "VMS", tmp_path)
    monkeypatch.setattr(vm, "SWITCH_NS", "hkl-nonexistent")
    lab = make_lab()
    h = lab.hosts["vm1"]
    with pytest.raises(LabError, match="not a VM"):
        vm.start(lab, model.Host("n", "ns", 5, h.mgmt), FAKE_IMAGE)
    assert vm.running_pid(h) is None
    (tmp_path / "vm1").mkdir()
    (tmp_path / "vm1" / "qemu.pid").write_text(f"{os.getpid()}\n")  # a live pid that is not this VM's qemu
    assert vm.running_pid(h) is None


# -- real VMs ----------------------------------------------------------------------------------


def sh(cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, shell=True, check=check, capture_output=True, text=True)


def remove_test_network() -> None:
    sh(f"ip link del {CTL_LINK}", check=False)
    sh(f"ip netns del {TEST_NS}", check=False)


def report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n[vm figure] {text}")


class Guests:
    def __init__(self, lab: model.Lab, img: image.VmImage) -> None:
        self.lab, self.img = lab, img

    def ssh(self, name: str, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            vm.ssh_argv(self.lab.hosts[name], command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def out(self, name: str, command: str, timeout: float = 300) -> str:
        r = self.ssh(name, command, timeout)
        assert r.returncode == 0, f"{name}: {command}: {r.stdout}{r.stderr}"
        return r.stdout.strip()

    def pings(self, src: str, address: str, tries: int = 5) -> bool:
        return any(self.ssh(src, f"ping -n -q -c1 -W2 {address}", 30).returncode == 0 for _ in range(tries))


@pytest.fixture(scope="module")
def guests(tmp_path_factory):
    if os.geteuid() != 0 or shutil.which(vm.QEMU) is None:
        pytest.skip("needs root and qemu")
    routes = sh("ip -4 route show", check=False).stdout
    if any(str(net.network_address) in routes for net in (MGMT_NET, LAN_NET)) and CTL_LINK not in routes:
        pytest.skip(f"{MGMT_NET} or {LAN_NET} is routed on this machine already")
    mp = pytest.MonkeyPatch()
    state = tmp_path_factory.mktemp("vmstate")
    mp.setattr(paths, "STATE", state)
    mp.setattr(paths, "VMS", state / "vms")
    mp.setattr(vm, "SWITCH_NS", TEST_NS)
    lab = make_lab()
    remove_test_network()
    try:
        sh(f"ip netns add {TEST_NS} && ip -n {TEST_NS} link set lo up")
        for net in (lab.mgmt, lab.networks["lan"]):
            sh(
                f"ip -n {TEST_NS} link add {net.bridge} type bridge && ip -n {TEST_NS} link set {net.bridge} up"
            )
        sh(
            f"ip link add {CTL_LINK} type veth peer name ctl netns {TEST_NS}"
            f" && ip -n {TEST_NS} link set ctl master {lab.mgmt.bridge} up"
            f" && ip addr add {lab.controller} dev {CTL_LINK} && ip link set {CTL_LINK} up"
        )
        aptproxy.start(str(lab.controller.ip))
        yield Guests(lab, image.ensure_vm_image())
    finally:
        for h in lab.hosts.values():
            vm.destroy(h)
        aptproxy.stop()
        remove_test_network()
        mp.undo()


@pytest.mark.vm
def test_two_vms_boot_to_ssh(guests, capsys):
    t0 = time.monotonic()
    pids = {n: vm.start(guests.lab, h, guests.img) for n, h in guests.lab.hosts.items()}
    for h in guests.lab.hosts.values():
        vm.wait_ssh(h, 300)
    seconds = time.monotonic() - t0
    report(capsys, f"2 VMs from start to ssh: {seconds:.1f} s")
    assert seconds < 240
    for n, h in guests.lab.hosts.items():
        assert vm.start(guests.lab, h, guests.img) == pids[n]  # already running: same qemu
        assert vm.running_pid(h) == pids[n]


@pytest.mark.vm
def test_guest_identity_names_and_addresses(guests):
    for n, h in guests.lab.hosts.items():
        assert guests.out(n, "hostname") == n
        addrs = guests.out(n, "ip -4 -br addr show | awk '{print $1, $3}'").splitlines()
        assert f"eth0 {h.interfaces[0].address.with_prefixlen}" in addrs
        assert f"mgmt0 {h.mgmt.with_prefixlen}" in addrs
        assert guests.out(n, "cat /sys/class/net/eth0/address") == h.interfaces[0].mac
        assert guests.out(n, "cat /sys/class/net/mgmt0/address") == h.all_interfaces[-1].mac
        assert "default via 10.77.201.1 dev eth0" in guests.out(n, "ip -4 route show default")
        interfaces = guests.out(n, "cat /etc/network/interfaces")
        assert "iface eth0 inet static" in interfaces and "mgmt0" not in interfaces
        assert (
            guests.out(n, "cat /etc/apt/sources.list") == aptproxy.sources_list(guests.lab.controller).strip()
        )


@pytest.mark.vm
def test_stock_kernel_modules_load(guests):
    assert (
        guests.ssh(
            "vm1", "modprobe drbd && modprobe ip_vs && grep -E '^(drbd|ip_vs) ' /proc/modules"
        ).returncode
        == 0
    )


@pytest.mark.vm
def test_vm_to_vm_on_the_topology_network(guests):
    assert guests.pings("vm1", "10.77.201.12")


@pytest.mark.vm
def test_set_link_is_a_carrier_change_in_the_guest(guests):
    h = guests.lab.hosts["vm2"]
    vm.set_link(h, "eth0", False)
    try:
        assert guests.out("vm2", "cat /sys/class/net/eth0/carrier") == "0"
        assert not guests.pings("vm1", "10.77.201.12", tries=1)
    finally:
        vm.set_link(h, "eth0", True)
    assert guests.out("vm2", "cat /sys/class/net/eth0/carrier") == "1"
    assert guests.pings("vm1", "10.77.201.12")
    with pytest.raises(LabError, match="no interface"):
        vm.set_link(h, "eth9", False)


@pytest.mark.vm
def test_apt_installs_through_the_proxy(guests, capsys):
    assert guests.ssh("vm1", "command -v hello").returncode != 0
    t0 = time.monotonic()
    up = guests.ssh("vm1", "apt-get update -q", 600)
    t1 = time.monotonic()
    inst = guests.ssh("vm1", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q hello", 600)
    t2 = time.monotonic()
    assert up.returncode == 0 and "Err:" not in up.stdout, up.stdout + up.stderr
    assert inst.returncode == 0, inst.stdout + inst.stderr
    assert guests.out("vm1", "hello") == "Hello, world!"
    report(
        capsys, f"apt-get update {t1 - t0:.1f} s, apt-get install hello {t2 - t1:.1f} s (through the proxy)"
    )


@pytest.mark.vm
def test_poweroff_and_start_keep_the_disks(guests, capsys):
    h = guests.lab.hosts["vm2"]
    guests.out(
        "vm2",
        "echo kept > /root/marker && mkfs.ext4 -q /dev/vdb && mkdir -p /data && mount /dev/vdb /data"
        " && echo on-data > /data/marker && sync",
    )
    pid = vm.running_pid(h)
    vm.poweroff(h)
    assert vm.running_pid(h) is None
    assert not vm._alive(pid)
    assert subprocess.run(vm.ssh_argv(h, "true"), capture_output=True, timeout=30).returncode != 0
    taps = sh(f"ip -n {TEST_NS} -o link show", check=False).stdout
    assert "hkl2n" not in taps
    vm.start(guests.lab, h, guests.img)
    seconds = vm.wait_ssh(h, 300)
    report(capsys, f"1 VM from start to ssh (another VM idle): {seconds:.1f} s")
    assert guests.out("vm2", "cat /root/marker") == "kept"
    assert guests.out("vm2", "mount /dev/vdb /data && cat /data/marker") == "on-data"


@pytest.mark.vm
def test_a_guest_reboot_reboots(guests):
    h = guests.lab.hosts["vm2"]
    pid = vm.running_pid(h)
    boot_id = guests.out("vm2", "cat /proc/sys/kernel/random/boot_id")
    guests.ssh("vm2", "systemctl reboot", 30)
    deadline = time.monotonic() + 300
    while True:
        time.sleep(3)
        vm.wait_ssh(h, 300)
        r = guests.ssh("vm2", "cat /proc/sys/kernel/random/boot_id", 30)
        if r.returncode == 0 and r.stdout.strip() != boot_id:
            break
        assert time.monotonic() < deadline, "vm2 did not reboot"
    assert vm.running_pid(h) == pid  # the same qemu: no -no-reboot surprise


@pytest.mark.vm
def test_destroy_leaves_nothing(guests):
    pids = [vm.running_pid(h) for h in guests.lab.hosts.values()]
    for h in guests.lab.hosts.values():
        vm.destroy(h)
        assert not vm.vm_dir(h).exists()
        assert vm.running_pid(h) is None
    for pid in pids:
        assert pid is not None and not vm._alive(pid)
    assert not [
        ln for ln in sh(f"ip -n {TEST_NS} -o link show").stdout.splitlines() if "hkl1n" in ln or "hkl2n" in ln
    ]
    qemus = sh("ps -eo args", check=False).stdout
    assert str(paths.VMS) not in qemus
