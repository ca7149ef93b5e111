"""The whole test lab: 8 ns hosts and 2 qemu VMs on the same segments. The VMs run Debian's stock
kernel (DRBD, IPVS); ns hosts and VMs reach each other; faults work on VMs too."""

from __future__ import annotations

import re
import time

import pytest
from conftest import LAB_INVENTORY, bring_up, figure, hakit_lab, in_host, load, pings, ssh_answers

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def lab(base_image_cached):
    from hakit_lab import image

    image.ensure_vm_image()  # built before anything is timed
    seconds = bring_up(LAB_INVENTORY)
    figure(f"up: 8 ns hosts + 2 VMs answering SSH in {seconds:.1f} s (hakit-lab up -i {LAB_INVENTORY})")
    yield load(LAB_INVENTORY)
    hakit_lab("down")


def vm_sh(host: str, command: str) -> str:
    result = hakit_lab("exec", host, "--", "sh", "-c", command)
    return result.stdout


def test_every_host_answers_ssh(lab):
    table = hakit_lab("status").stdout
    for name, host in lab.hosts.items():
        assert re.search(rf"^{name}\s+{host.kind}\s+on\s+{host.mgmt.ip}\s+ok\s", table, re.M), table


def test_vm_identity_names_addresses_and_apt_sources(lab):
    from hakit_lab import aptproxy

    for name in ("vm1", "vm2"):
        host = lab.hosts[name]
        assert vm_sh(name, "hostname").strip() == name
        addrs = vm_sh(name, "ip -4 -br addr show | awk '{print $1, $3}'").splitlines()
        assert f"mgmt0 {host.mgmt.with_prefixlen}" in addrs, addrs
        for iface in host.interfaces:
            assert f"{iface.name} {iface.address.with_prefixlen}" in addrs, addrs
            assert vm_sh(name, f"cat /sys/class/net/{iface.name}/address").strip() == iface.mac
        interfaces = vm_sh(name, "cat /etc/network/interfaces")
        assert "iface eth0 inet static" in interfaces and "mgmt0" not in interfaces
        assert (
            vm_sh(name, "cat /etc/apt/sources.list").strip() == aptproxy.sources_list(lab.controller).strip()
        )


def test_ns_host_reaches_vm_by_ping_and_tcp_on_the_lan(lab):
    assert pings("ns1", "10.77.1.21") and pings("ns1", "10.77.2.21")
    banner = in_host(
        "ns1",
        "python3 -c \"import socket; print(socket.create_connection(('10.77.1.21', 22), 5).recv(7).decode())\"",
        check=True,
    )
    assert banner.stdout.strip() == "SSH-2.0"
    assert pings("vm2", "10.77.1.18")


def test_vm_loads_drbd_and_ipvs(lab):
    vm_sh("vm1", "modprobe drbd && modprobe ip_vs")
    modules = vm_sh("vm1", "lsmod")
    assert re.search(r"^drbd\s", modules, re.M) and re.search(r"^ip_vs\s", modules, re.M)
    assert "IP Virtual Server" in vm_sh("vm1", "cat /proc/net/ip_vs")
    assert vm_sh("vm1", "cat /proc/drbd").startswith("version: 8.4")


def test_link_down_and_partition_on_vms(lab):
    hakit_lab("fault", "link-down", "vm1", "eth0")
    assert vm_sh("vm1", "cat /sys/class/net/eth0/carrier").strip() == "0"
    assert not pings("ns1", "10.77.1.21", tries=1)
    hakit_lab("fault", "link-up", "vm1", "eth0")
    assert vm_sh("vm1", "cat /sys/class/net/eth0/carrier").strip() == "1"
    assert pings("ns1", "10.77.1.21")

    hakit_lab("fault", "partition", "vm1", "vm2")
    try:
        assert not pings("vm1", "10.77.1.22", tries=1) and not pings("vm1", "10.77.2.22", tries=1)
        assert pings("vm1", "10.77.1.11") and pings("vm2", "10.77.1.11")
    finally:
        hakit_lab("fault", "heal")
    assert pings("vm1", "10.77.1.22")


def test_vm_poweroff_and_boot_keep_the_disk(lab):
    vm_sh("vm2", "echo before > /root/kept && sync")
    hakit_lab("fault", "poweroff", "vm2")
    assert not ssh_answers("10.77.0.22")
    assert re.search(r"^vm2\s+vm\s+off", hakit_lab("status", "--no-ssh").stdout, re.M)
    assert not pings("ns1", "10.77.1.22", tries=1)
    t0 = time.monotonic()
    hakit_lab("fault", "boot", "vm2")
    figure(f"fault boot (VM, until SSH answers): {time.monotonic() - t0:.1f} s")
    assert vm_sh("vm2", "cat /root/kept").strip() == "before"
    assert pings("ns1", "10.77.1.22")


def test_a_reboot_inside_the_vm_reboots_it_in_the_same_qemu(lab):
    from hakit_lab import vm

    host = lab.hosts["vm2"]
    pid = vm.running_pid(host)
    boot_id = vm_sh("vm2", "cat /proc/sys/kernel/random/boot_id").strip()
    hakit_lab("exec", "vm2", "--", "systemctl", "reboot", check=False, timeout=60)
    deadline = time.monotonic() + 300
    while True:
        time.sleep(3)
        again = in_host("vm2", "cat /proc/sys/kernel/random/boot_id")
        if again.returncode == 0 and again.stdout.strip() not in ("", boot_id):
            break
        assert time.monotonic() < deadline, "vm2 did not come back from its reboot within 300 s"
    assert vm.running_pid(host) == pid  # no -no-reboot surprise: the guest restarted inside its qemu


TEN_TASKS = """
- hosts: vm_hosts
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
    - ansible.builtin.command: uname -n
      changed_when: false
    - ansible.builtin.copy: {dest: /root/t1, content: "one\\n", mode: "0644"}
    - ansible.builtin.lineinfile: {path: /root/t1, line: two}
    - ansible.builtin.file: {path: /root/d, state: directory, mode: "0755"}
    - ansible.builtin.stat: {path: /root/t1}
    - ansible.builtin.replace: {path: /root/t1, regexp: "^two$", replace: "2"}
    - ansible.builtin.shell: cat /root/t1 > /root/t2
      changed_when: false
    - ansible.builtin.slurp: {src: /root/t1}
    - ansible.builtin.file: {path: /root/t2, state: absent}
"""


def test_ansible_per_task_cost_on_vms(lab, ansible_playbook):
    result, seconds = ansible_playbook(LAB_INVENTORY, TEN_TASKS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.count("ok=10") == 2
    figure(f"ansible 10-task play on 2 VMs over SSH: {seconds:.1f} s, {seconds / 10:.1f} s per task")


def test_the_kernel_probe_boots_the_vms_kernel_to_its_panic_under_tcg(base_image_cached):
    """The probe that keeps a KVM which cannot boot a stock kernel out (vm._kernel_problem), on the
    real kernel: under TCG it reaches the root-mount panic that the probe waits for."""
    from hakit_lab import image, vm

    img = image.ensure_vm_image()
    t0 = time.monotonic()
    assert vm._kernel_problem(img.kernel, "tcg") is None
    figure(
        f"kernel probe under TCG: {img.kernel.name} to its root-mount panic in {time.monotonic() - t0:.1f} s"
    )
