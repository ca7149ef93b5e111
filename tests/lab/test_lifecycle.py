"""`down` removes everything the lab made, also after `up` was killed halfway; `up` repairs a lab."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import bring_up, cli_env, figure, hakit_lab, in_host, kill_process, lab_netns_inodes, leftovers
from hakit_lab import model, paths

pytestmark = pytest.mark.lab


def test_down_leaves_nothing_behind(ns_inventory, base_image_cached):
    bring_up(ns_inventory)
    in_host("ns1", "sleep 600 >/dev/null 2>&1 &")  # a process of the host's own
    inodes = lab_netns_inodes()
    assert len(inodes) == 9  # switch + 8 hosts
    t0 = time.monotonic()
    hakit_lab("down")
    figure(f"down: 8 ns hosts removed in {time.monotonic() - t0:.2f} s")
    assert leftovers(inodes) == []
    assert "nothing was up" in hakit_lab("down").stdout


def test_down_after_up_was_killed_halfway(ns_inventory, base_image_cached):
    hakit_lab("down")
    up = subprocess.Popen(
        [sys.executable, "-m", "hakit_lab", "up", "-i", str(ns_inventory)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    power = paths.STATE / "power"
    deadline = time.monotonic() + 120
    # kill it as soon as some hosts run: the rest of the lab is half made
    while not (power.is_dir() and len(list(power.glob("*.json"))) >= 2):
        assert up.poll() is None, "up ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    kill_process(up)
    inodes = lab_netns_inodes()
    assert inodes, "nothing was made before the kill"
    hakit_lab("down")
    assert leftovers(inodes) == []


def test_down_without_records_sweeps_by_prefix(ns_inventory, base_image_cached):
    bring_up(ns_inventory)
    inodes = lab_netns_inodes()
    (paths.STATE / "lab.json").unlink()
    for record in (paths.STATE / "power").iterdir():
        record.unlink()
    hakit_lab("down")
    assert leftovers(inodes) == []


def test_up_boots_what_is_not_running(ns_inventory, base_image_cached):
    bring_up(ns_inventory)
    # ns2 powered off by a fault, ns3's PID 1 killed behind the lab's back (its network is left over)
    hakit_lab("fault", "poweroff", "ns2")
    record = json.loads((paths.STATE / "power" / "ns3.json").read_text())
    os.kill(record["pid"], signal.SIGKILL)
    out = hakit_lab("up", "-i", str(ns_inventory)).stdout
    assert "2 started" in out, out
    for name in ("ns2", "ns3"):
        assert hakit_lab("ssh", name, "hostname").stdout.strip() == name
    assert in_host("ns3", "ip -4 -o addr show eth0").stdout.count("10.77.1.13/24") == 1
    hakit_lab("down")


def test_a_different_lab_must_be_taken_down_first(ns_inventory, tmp_path, base_image_cached):
    from conftest import write_inventory

    bring_up(ns_inventory)
    other = write_inventory(tmp_path, lambda name, v: name in ("ns1", "ns2"))
    refused = hakit_lab("up", "-i", str(other), check=False)
    assert refused.returncode == 1 and "run `hakit-lab down` first" in refused.stderr
    hakit_lab("down")


def test_two_labs_side_by_side(ns_inventory, base_image_cached, tmp_path):
    """A second prefix with its own management subnet runs beside the default lab; each `down` is its own."""
    bring_up(ns_inventory)
    other = tmp_path / "other.yml"
    other.write_text(
        "all:\n"
        "  vars:\n"
        "    lab_mgmt_subnet: 10.77.250.0/24\n"
        "    lab_networks: {lan: {subnet: 10.77.251.0/24}}\n"
        "  hosts:\n"
        "    ns1:\n"
        "      lab_kind: ns\n"
        "      ansible_host: 10.77.250.11\n"
        "      lab_interfaces: [{name: eth0, network: lan, address: 10.77.251.11/24}]\n"
    )
    env = {**cli_env(), "HAKIT_LAB_PREFIX": "hkq"}

    def other_lab(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "hakit_lab", *args], env=env, capture_output=True, text=True, timeout=300
        )

    try:
        # same management subnet as the running lab: refused, naming the link that has it
        clash = subprocess.run(
            [sys.executable, "-m", "hakit_lab", "up", "-i", str(ns_inventory)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert clash.returncode != 0
        assert "lab_mgmt_subnet 10.77.0.0/24" in clash.stderr and f"{model.PREFIX}-ctl" in clash.stderr
        up = other_lab("up", "-i", str(other))
        assert up.returncode == 0, up.stderr
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "hkq-ns1" in names and f"{model.PREFIX}-ns1" in names
        assert other_lab("exec", "ns1", "--", "hostname").stdout.strip() == "ns1"
        hakit_lab("down")
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "hkq-ns1" in names and f"{model.PREFIX}-ns1" not in names
        assert other_lab("exec", "ns1", "--", "true").returncode == 0
    finally:
        other_lab("down")
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "hkq-" not in names


def test_bad_prefix_is_refused():
    bad = subprocess.run(
        [sys.executable, "-m", "hakit_lab", "status"],
        env={**cli_env(), "HAKIT_LAB_PREFIX": "HK-1"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "HAKIT_LAB_PREFIX='HK-1'" in bad.stderr
