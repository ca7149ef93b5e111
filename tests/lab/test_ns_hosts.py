"""The test lab's 8 ns hosts: up fast, isolated from the machine, managed over SSH by Ansible through
the lab's package proxy, and broken on request (power, links, partitions, services, CPU)."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from conftest import (
    bring_up,
    figure,
    freeze_stops_the_host,
    hakit_lab,
    in_host,
    load,
    pings,
    ssh_answers,
)
from hakit_lab import model

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(ns_inventory, base_image_cached):
    seconds = bring_up(ns_inventory)
    figure(f"up: 8 ns hosts built and answering SSH in {seconds:.2f} s (hakit-lab up -i {ns_inventory})")
    yield load(ns_inventory)
    hakit_lab("down")


def test_up_again_finds_the_running_lab_and_every_host_answers_ssh(lab, ns_inventory):
    seconds = bring_up(ns_inventory)
    figure(f"up again on the running lab: {seconds:.2f} s")
    table = hakit_lab("status").stdout
    for name, host in lab.hosts.items():
        assert re.search(rf"^{name}\s+ns\s+on\s+{host.mgmt.ip}\s+ok\s", table, re.M), table
    for host in lab.hosts.values():
        assert hakit_lab("ssh", host.name, "hostname").stdout.strip() == host.name


def test_second_up_is_a_no_op(lab, ns_inventory):
    before = {n: in_host(n, "cat /proc/1/stat | cut -d' ' -f22").stdout for n in lab.hosts}
    t0 = time.monotonic()
    out = hakit_lab("up", "-i", str(ns_inventory)).stdout
    assert "0 started" in out
    figure(f"up on a running lab (no-op): {time.monotonic() - t0:.2f} s")
    assert {n: in_host(n, "cat /proc/1/stat | cut -d' ' -f22").stdout for n in lab.hosts} == before


def test_host_sees_its_own_system_not_the_machines(lab):
    result = in_host("ns8", "hostname; cat /etc/hostname; ps -e -o comm= | sort -u | tr '\\n' ' '")
    hostname, etc_hostname, processes = result.stdout.splitlines()
    assert hostname == etc_hostname == "ns8"
    assert "pytest" not in processes and "python" not in processes.split()
    # python3-venv is installed on the controller, not in the lab's base root
    assert in_host("ns8", "dpkg -s python3-venv").returncode != 0
    assert in_host("ns8", "test -e /work || test -e /tmp/probe-venv").returncode != 0
    assert in_host("ns8", "cat /etc/resolv.conf").stdout.strip() == "nameserver 127.0.0.1"
    hosts = in_host("ns8", "cat /etc/hosts").stdout
    assert re.search(r"^10\.77\.1\.11\s+ns1$", hosts, re.M) and "10.77.0.1\t" not in hosts
    # the kernel's global settings are out of reach; the host's own network settings are not
    assert in_host("ns8", "echo 1 > /proc/sys/kernel/panic").returncode != 0
    assert in_host("ns8", "echo 1 > /proc/sys/net/ipv4/ip_forward").returncode == 0


def test_network_comes_from_etc_network_interfaces(lab):
    interfaces = in_host("ns1", "cat /etc/network/interfaces").stdout
    assert "iface eth0 inet static\n    address 10.77.1.11/24" in interfaces
    assert "iface eth1 inet static\n    address 10.77.2.11/24" in interfaces
    assert "mgmt0" not in interfaces
    assert "default via 10.77.1.254 dev eth0" in in_host("ns3", "ip route").stdout
    # broadcast address set (heartbeat's bcast needs it)
    assert "brd 10.77.1.255" in in_host("ns1", "ip -4 addr show eth0").stdout
    assert pings("ns1", "10.77.2.12") and pings("ns8", "10.77.1.11")


def test_poweroff_loses_runtime_state_and_boot_keeps_the_disk(lab):
    host = lab.host("ns6")
    # a file, a service enabled at boot, an extra address in the interfaces file, and a VIP added at runtime
    in_host(
        "ns6",
        "echo before > /root/kept; "
        "printf '#!/bin/sh\\n### BEGIN INIT INFO\\n# Provides: probe\\n# Required-Start:\\n# Required-Stop:\\n"
        "# Default-Start: 2 3 4 5\\n# Default-Stop:\\n### END INIT INFO\\n"
        '[ "$1" = start ] && date > /run/probe.started\\nexit 0\\n\' > /etc/init.d/probe; '
        "chmod 755 /etc/init.d/probe && update-rc.d probe defaults; "
        "printf '\\niface eth0 inet static\\n    address 10.77.1.66/24\\n' >> /etc/network/interfaces; "
        "ip addr add 10.77.1.100/24 dev eth0",
        check=True,
    )
    assert pings("ns7", "10.77.1.100")

    t0 = time.monotonic()
    hakit_lab("fault", "poweroff", "ns6")
    figure(f"fault poweroff (ns host): {time.monotonic() - t0:.2f} s")
    assert not ssh_answers(str(host.mgmt.ip))
    assert (
        f"{model.PREFIX}-ns6"
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
    assert re.search(r"^ns6\s+ns\s+off", hakit_lab("status").stdout, re.M)
    assert not pings("ns7", "10.77.1.16", tries=1) and not pings("ns7", "10.77.1.100", tries=1)
    assert hakit_lab("exec", "ns6", "--", "true", check=False).returncode == 1

    t0 = time.monotonic()
    hakit_lab("fault", "boot", "ns6")
    figure(f"fault boot (ns host, until SSH answers): {time.monotonic() - t0:.2f} s")
    assert ssh_answers(str(host.mgmt.ip))
    assert hakit_lab("ssh", "ns6", "cat", "/root/kept").stdout.strip() == "before"
    assert in_host("ns6", "test -s /run/probe.started").returncode == 0, (
        "an rc2.d service did not start at boot"
    )
    addresses = in_host("ns6", "ip -4 -o addr show eth0").stdout
    assert "10.77.1.16/24" in addresses and "10.77.1.66/24" in addresses
    assert "10.77.1.100" not in addresses


def test_link_down_cuts_the_carrier_and_link_up_restores_it(lab):
    assert pings("ns4", "10.77.1.15")
    hakit_lab("fault", "link-down", "ns4", "eth0")
    assert in_host("ns4", "cat /sys/class/net/eth0/carrier").stdout.strip() == "0"
    assert not pings("ns4", "10.77.1.15", tries=1)
    assert ssh_answers("10.77.0.14"), "the management NIC must stay up"
    hakit_lab("fault", "link-up", "ns4", "eth0")
    assert in_host("ns4", "cat /sys/class/net/eth0/carrier").stdout.strip() == "1"
    assert pings("ns4", "10.77.1.15")
    refused = hakit_lab("fault", "link-down", "ns4", "mgmt0", check=False)
    assert refused.returncode == 1 and "never faulted" in refused.stderr


def test_partition_blocks_exactly_a_and_b(lab):
    a, b, c = "ns1", "ns2", "ns3"
    assert pings(a, "10.77.1.12") and pings(a, "10.77.2.12")
    hakit_lab("fault", "partition", a, b)
    try:
        for net in ("1", "2"):  # lan and hb
            assert not pings(a, f"10.77.{net}.12", tries=1)
            assert not pings(b, f"10.77.{net}.11", tries=1)
        assert pings(a, "10.77.1.13") and pings(b, "10.77.1.13") and pings(c, "10.77.1.11")
        assert pings(a, "10.77.0.12"), "the management network is never partitioned"
    finally:
        assert "partition ns1 ns2" in hakit_lab("fault", "heal").stdout
    assert pings(a, "10.77.1.12") and pings(a, "10.77.2.12") and pings(b, "10.77.1.11")


def test_stop_service(lab):
    assert in_host("ns5", "service dbus status").returncode == 0
    hakit_lab("fault", "stop-service", "ns5", "dbus")
    assert in_host("ns5", "service dbus status").returncode != 0
    in_host("ns5", "service dbus start", check=True)


def test_stress_runs_busy_loops_that_end_by_themselves(lab):
    hakit_lab("fault", "stress", "ns4", "2", "--workers", "2")
    assert in_host("ns4", "ps -e -o comm= | grep -c '^timeout$'").stdout.strip() == "2"
    time.sleep(0.5)
    loops = in_host("ns4", "ps -C sh -o pcpu=,args= | grep 'while [:]'").stdout.splitlines()
    assert len(loops) == 2 and all(float(line.split()[0]) > 20 for line in loops), loops
    time.sleep(2.0)
    assert in_host("ns4", "ps -e -o comm= | grep -c '^timeout$'").stdout.strip() == "0"


def test_freeze_stops_every_process_of_the_host_then_resumes_it(lab):
    frozen, longest = freeze_stops_the_host("ns6")
    figure(f"freeze ns6 3 s: frozen {frozen:.2f} s, a ticker in the host paused {longest:.2f} s")


def test_apt_installs_a_package_the_base_lacks_through_the_proxy(lab, ns_inventory, ansible_playbook):
    assert in_host("ns7", "command -v hello").returncode != 0
    play = """
- hosts: ns7
  gather_facts: false
  tasks:
    - ansible.builtin.apt:
        name: hello
        update_cache: true
"""
    result, seconds = ansible_playbook(ns_inventory, play)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    figure(f"ansible.builtin.apt update_cache + install hello on an ns host via the proxy: {seconds:.1f} s")
    assert hakit_lab("ssh", "ns7", "hello").stdout.strip() == "Hello, world!"


TEN_TASKS = """
- hosts: {hosts}
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
    - ansible.builtin.command: uname -n
      changed_when: false
    - ansible.builtin.copy: {{dest: /root/t1, content: "one\\n", mode: "0644"}}
    - ansible.builtin.lineinfile: {{path: /root/t1, line: two}}
    - ansible.builtin.file: {{path: /root/d, state: directory, mode: "0755"}}
    - ansible.builtin.stat: {{path: /root/t1}}
    - ansible.builtin.replace: {{path: /root/t1, regexp: "^two$", replace: "2"}}
    - ansible.builtin.shell: cat /root/t1 > /root/t2
      changed_when: false
    - ansible.builtin.slurp: {{src: /root/t1}}
    - ansible.builtin.file: {{path: /root/t2, state: absent}}
"""


def test_ansible_per_task_cost_on_ns_hosts(lab, ns_inventory, ansible_playbook):
    result, seconds = ansible_playbook(ns_inventory, TEN_TASKS.format(hosts="ns_hosts"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "failed=0" in result.stdout and result.stdout.count("ok=10") == 8
    figure(f"ansible 10-task play on 8 ns hosts over SSH: {seconds:.1f} s, {seconds / 10:.2f} s per task")
    result, seconds = ansible_playbook(ns_inventory, TEN_TASKS.format(hosts="ns1"))
    assert result.returncode == 0, result.stdout[-3000:]
    figure(f"ansible 10-task play on 1 ns host over SSH: {seconds:.1f} s, {seconds / 10:.2f} s per task")
