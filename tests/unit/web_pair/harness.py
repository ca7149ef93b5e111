"""Run the web pair playbooks against fake hosts: connection=local, facts from a table.

Each host gets an interpreter wrapper that names it to the facts module, so a run on this machine
sees node1 and node2 as the lab builds them, and changes nothing (validation is read-only, the
render playbook writes only below a temporary directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
PLAYBOOK = ROOT / "playbooks" / "web_pair.yml"
LAB_INVENTORY = ROOT / "inventory" / "lab" / "web_pair" / "hosts.yml"
EXAMPLE_INVENTORY = ROOT / "inventory" / "examples" / "web_pair"
TEST_KEY = "0123456789abcdef-test-only"


def host_facts(name: str, interfaces: dict[str, str]) -> dict:
    """Facts as setup reports them for a Debian bookworm host without systemd."""
    facts = {
        "nodename": name,
        "hostname": name,
        "fqdn": name,
        "os_family": "Debian",
        "distribution": "Debian",
        "distribution_major_version": "12",
        "distribution_release": "bookworm",
        "service_mgr": "tini",
        "interfaces": ["lo", *interfaces],
        "lo": {"device": "lo", "ipv4": {"address": "127.0.0.1", "prefix": "8", "netmask": "255.0.0.0"}},
    }
    for iface, cidr in interfaces.items():
        address, prefix = cidr.split("/")
        facts[iface.replace(".", "_").replace("-", "_")] = {
            "device": iface,
            "active": True,
            "ipv4": {"address": address, "prefix": prefix},
        }
    return facts


LAB_FACTS = {
    "node1": host_facts(
        "node1", {"eth0": "10.77.1.11/24", "eth1": "10.77.2.11/24", "mgmt0": "10.82.0.11/24"}
    ),
    "node2": host_facts(
        "node2", {"eth0": "10.77.1.12/24", "eth1": "10.77.2.12/24", "mgmt0": "10.82.0.12/24"}
    ),
}
EXAMPLE_FACTS = {
    "node1": host_facts("node1", {"eth0": "192.168.0.27/24", "eth1": "10.255.0.1/30"}),
    "node2": host_facts("node2", {"eth0": "192.168.0.28/24", "eth1": "10.255.0.2/30"}),
}


def fake_hosts(tmp: Path, facts: dict[str, dict]) -> Path:
    """Write the facts table, one interpreter wrapper per host and an inventory overlay; return it."""
    tmp.mkdir(parents=True, exist_ok=True)
    table = tmp / "facts.json"
    table.write_text(json.dumps(facts))
    hosts = {}
    for name in facts:
        wrapper = tmp / f"python-{name}"
        wrapper.write_text(f'#!/bin/sh\nHAKIT_TEST_HOST={name} exec {sys.executable} "$@"\n')
        wrapper.chmod(0o755)
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": str(wrapper)}
    overlay = tmp / "fake-hosts.yml"
    overlay.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return overlay


def run_playbook(
    tmp: Path,
    inventories: list[Path],
    facts: dict[str, dict],
    playbook: Path = PLAYBOOK,
    args: tuple[str, ...] = ("--tags", "validate", "--check"),
    extra_vars: dict | None = None,
) -> subprocess.CompletedProcess:
    overlay = fake_hosts(tmp, facts)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LIBRARY=str(HERE / "library"),
        ANSIBLE_FACTS_MODULES="hakit_test_facts",
        HAKIT_TEST_FACTS=str(tmp / "facts.json"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
    )
    command = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)]
    for inventory in [*inventories, overlay]:
        command += ["-i", str(inventory)]
    command += ["-e", json.dumps({"heartbeat_auth_key": TEST_KEY, **(extra_vars or {})}), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def assert_stopped_in_validation(
    name: str,
    result: subprocess.CompletedProcess,
    expect: list[str],
    converge_plays: tuple[str, ...],
    validate_play: str | None = None,
) -> str:
    """A bad inventory `name` failed before any converge play ran (after `validate_play`, if given),
    and the output says every text of `expect` (whitespace aside); returns the output."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{name} passed validation:\n{output}"
    if validate_play is not None:
        assert validate_play in output
    for play in converge_plays:
        assert play not in output, f"{name} reached {play}"
    flat = " ".join(output.split())
    for text in expect:
        assert " ".join(text.split()) in flat, f"{name}: {text!r} not in output:\n{output[-4000:]}"
    return output
