"""The VM runtime's command lines and refusals, without starting qemu. Real VMs are started through
the lab in test_vm_hosts.py (marked `vm`), which also covers identity, faults and reboots."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from hakit_lab import aptproxy, image, model, paths, vm
from hakit_lab.model import LabError

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
        f"tap,id=net-eth0,ifname={model.PREFIX}1n0,script=no,downscript=no",
        f"tap,id=net-eth1,ifname={model.PREFIX}1n1,script=no,downscript=no",
        f"tap,id=net-mgmt0,ifname={model.PREFIX}1nm,script=no,downscript=no",
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
        (f"{model.PREFIX}1n0", f"{model.PREFIX}br1"),
        (f"{model.PREFIX}1n1", f"{model.PREFIX}br2"),
        (f"{model.PREFIX}1nm", f"{model.PREFIX}br0"),
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
