"""uml hosts: Debian's user-mode-linux kernel as lab hosts (tests/lab/inventory_uml: two uml hosts
with a data disk each and an ns host). They have the kernel modules ns hosts lack (DRBD, IPVS,
ipip), reach ns hosts on the same bridges, keep their disk across a power cut, and take the same
faults; `down` leaves no process of theirs behind."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli_env, figure, freeze_stops_the_host, hakit_lab, in_host, load, pings, ssh_answers

pytestmark = pytest.mark.uml

INVENTORY = Path(__file__).parent / "inventory_uml" / "hosts.yml"


@pytest.fixture(scope="module")
def lab(base_image_cached):
    from hakit_lab import image

    image.ensure_uml_image()  # built before anything is timed
    t0 = time.monotonic()
    hakit_lab("up", "-i", str(INVENTORY))
    figure(
        f"up: 2 uml hosts + 1 ns host answering SSH in {time.monotonic() - t0:.1f} s (hakit-lab up -i {INVENTORY})"
    )
    yield load(INVENTORY)
    hakit_lab("down")


def sh(host: str, command: str) -> str:
    result = in_host(host, command)
    assert result.returncode == 0, f"{host}: {command}: {result.stderr}"
    return result.stdout


def test_every_host_answers_ssh(lab):
    table = hakit_lab("status").stdout
    for name, host in lab.hosts.items():
        assert re.search(rf"^{name}\s+{host.kind}\s+on\s+{host.mgmt.ip}\s", table, re.M), table


def test_nics_disks_and_kernel_modules(lab):
    addresses = sh("uml1", "ip -br -4 addr")
    assert re.search(r"^eth0\s.*10\.76\.1\.21/24", addresses, re.M), addresses
    assert re.search(r"^eth1\s.*10\.76\.2\.21/24", addresses, re.M), addresses
    assert re.search(r"^mgmt0\s.*10\.76\.0\.21/24", addresses, re.M), addresses
    # The data disk of lab_disks: 64 MiB.
    assert sh("uml1", "blockdev --getsize64 /dev/ubdb").strip() == str(64 << 20)
    sh("uml1", "modprobe drbd && modprobe ip_vs && modprobe ipip")
    assert sh("uml1", "cat /proc/drbd").startswith("version: 8.4")
    assert "IP Virtual Server" in sh("uml1", "cat /proc/net/ip_vs")
    assert "tunl0" in sh("uml1", "ip -br link")


def test_uml_and_ns_hosts_reach_each_other(lab):
    assert pings("ns1", "10.76.1.21") and pings("uml1", "10.76.1.11")
    assert pings("uml1", "10.76.2.22")
    # TCP both ways through the vector driver (gro=1: without it inbound TCP collapses).
    banner = sh(
        "ns1",
        "python3 -c \"import socket; print(socket.create_connection(('10.76.1.22', 22), 5).recv(7).decode())\"",
    )
    assert banner.strip() == "SSH-2.0"


def test_link_down_and_partition(lab):
    hakit_lab("fault", "link-down", "uml2", "eth0")
    try:
        assert not pings("ns1", "10.76.1.22", tries=1)
        assert pings("uml2", "10.76.2.21")  # its other NIC still works
    finally:
        hakit_lab("fault", "link-up", "uml2", "eth0")
    assert pings("ns1", "10.76.1.22")

    hakit_lab("fault", "partition", "uml1", "uml2")
    try:
        assert not pings("uml1", "10.76.1.22", tries=1) and not pings("uml1", "10.76.2.22", tries=1)
        assert pings("uml1", "10.76.1.11") and pings("uml2", "10.76.1.11")
    finally:
        hakit_lab("fault", "heal")
    assert pings("uml1", "10.76.2.22")


def test_poweroff_kills_the_whole_host_and_boot_keeps_its_disks(lab):
    sh("uml2", "echo before > /root/kept && printf data | dd of=/dev/ubdb conv=fsync status=none && sync")
    hakit_lab("fault", "poweroff", "uml2")
    assert not ssh_answers("10.76.0.22")
    assert re.search(r"^uml2\s+uml\s+off", hakit_lab("status", "--no-ssh").stdout, re.M)
    assert not _processes_of("uml2")
    assert not pings("ns1", "10.76.1.22", tries=1)
    t0 = time.monotonic()
    hakit_lab("fault", "boot", "uml2")
    figure(f"fault boot (uml host, until SSH answers): {time.monotonic() - t0:.1f} s")
    assert sh("uml2", "cat /root/kept").strip() == "before"
    assert sh("uml2", "head -c4 /dev/ubdb") == "data"
    assert pings("ns1", "10.76.1.22")


def test_guest_threads_keep_their_avx512_registers(lab, tmp_path):
    """On an AVX-512 host the kernel runs with the lab's FPU-state wrapper (uml_xstate.c): without
    it, bookworm's uml kernel dies at init; with a wrong one, threads would see each other's
    registers. Four threads on the guest's one CPU, each switched out mid-loop many times."""
    if "avx512f" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this machine's CPU has no AVX-512: the wrapper passes every call through")
    source = Path(__file__).parent / "fixtures" / "avx512_threads.c"
    binary = tmp_path / "avx512_threads"
    subprocess.run(
        ["cc", "-O2", "-mavx512f", "-mavx512dq", "-pthread", "-o", str(binary), str(source)], check=True
    )
    t0 = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hakit_lab",
            "exec",
            "uml1",
            "--",
            "sh",
            "-c",
            "cat > /tmp/t && chmod +x /tmp/t && /tmp/t 4 50",
        ],
        input=binary.read_bytes(),
        env=cli_env(),
        capture_output=True,
        timeout=600,
    )
    out = result.stdout.decode()
    figure(f"avx512 threads in a uml guest: {out.strip()} in {time.monotonic() - t0:.1f} s")
    assert result.returncode == 0 and "corrupted 0" in out, out + result.stderr.decode()


def test_freeze_stops_the_guest_then_resumes_it(lab):
    """The guest kernel's processes stopped: its user processes stand still at their next system
    call; after SIGCONT the kernel and every process go on (none killed, no panic)."""
    frozen, longest = freeze_stops_the_host("uml2")
    figure(f"freeze uml2 3 s: frozen {frozen:.2f} s, a ticker in the guest paused {longest:.2f} s")
    assert "Kernel panic" not in sh("uml2", "dmesg | tail -50")


def test_down_leaves_no_uml_process(lab):
    """Last: takes the lab down itself (the fixture's `down` then finds nothing)."""
    assert _processes_of("uml1")
    hakit_lab("down")
    deadline = time.monotonic() + 10
    while _processes_of("uml1") or _processes_of("uml2"):
        assert time.monotonic() < deadline, "uml kernels survived `hakit-lab down`"
        time.sleep(0.1)


def _processes_of(host: str) -> list[int]:
    """Live host processes of a uml host's kernel (found by its umid on the command line)."""
    from hakit_lab import model
    from hakit_lab.sysutil import alive

    mark = f"umid={model.PREFIX}-{host}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if mark in (proc / "cmdline").read_bytes().split(b"\0") and alive(int(proc.name)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found
