"""The heartbeat role's lean address agent (roles/heartbeat/files/hakit-IPaddr2) in a throwaway netns.

It must do what Debian's resource.d/IPaddr2 wrapper does in heartbeat's v1 mode: add the address
with its prefix, broadcast and label; answer status in words heartbeat's ResourceManager reads
("OK" held, anything without "running" not held, exit 3); take the address off lo while it holds
it and put it back, label included, on stop; and be idempotent both ways.
"""

import os
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

AGENT = Path(__file__).resolve().parents[2] / "roles" / "heartbeat" / "files" / "hakit-IPaddr2"
PREFIX = os.environ.get("HAKIT_LAB_PREFIX", "hkl")


@pytest.fixture
def netns(tmp_path):
    name = f"{PREFIX}-agent-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    # `ip netns exec` keeps the host's filesystem: the agent's state goes to the test's directory.
    env = dict(os.environ, HAKIT_IPADDR2_STATE=str(tmp_path / "state"))
    try:
        run = lambda *argv: subprocess.run(  # noqa: E731
            ["ip", "netns", "exec", name, *argv], text=True, capture_output=True, env=env
        )
        assert run("ip", "link", "set", "lo", "up").returncode == 0
        # No dummy driver on these machines: a veth pair with both ends in the namespace.
        assert run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0").returncode == 0
        assert run("ip", "link", "set", "peer0", "up").returncode == 0
        assert run("ip", "addr", "add", "192.0.2.11/24", "dev", "eth0").returncode == 0
        yield run
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def addresses(run, dev: str) -> list[str]:
    out = run("ip", "-4", "-o", "addr", "show", "dev", dev).stdout
    return [" ".join(line.split("\\")[0].split()[2:]) for line in out.splitlines()]


def agent(run, spec: str, action: str):
    return run("sh", str(AGENT), spec, action)


def test_start_status_stop(netns):
    spec = "192.0.2.100/24/eth0:0/192.0.2.255"
    down = agent(netns, spec, "status")
    assert down.returncode == 3 and "running" not in down.stdout.lower()

    assert agent(netns, spec, "start").returncode == 0
    assert "inet 192.0.2.100/24 brd 192.0.2.255 scope global secondary eth0:0" in addresses(netns, "eth0")
    up = agent(netns, spec, "status")
    assert up.returncode == 0 and up.stdout.strip() == "OK"

    again = agent(netns, spec, "start")
    assert again.returncode == 0 and "already" in again.stdout
    assert sum("192.0.2.100" in a for a in addresses(netns, "eth0")) == 1

    assert agent(netns, spec, "stop").returncode == 0
    assert not any("192.0.2.100" in a for a in addresses(netns, "eth0"))
    assert agent(netns, spec, "stop").returncode == 0, "stop of a stopped address must succeed"
    assert agent(netns, spec, "monitor").returncode == 3


def test_broadcast_defaults_to_the_subnets(netns):
    assert agent(netns, "192.0.2.100/24/eth0", "start").returncode == 0
    assert "inet 192.0.2.100/24 brd 192.0.2.255 scope global secondary eth0" in addresses(netns, "eth0")


def test_takes_the_address_off_lo_and_puts_it_back(netns):
    """A director that is also a real server keeps the VIP on lo:0 while it does not hold it."""
    assert netns("ip", "addr", "add", "192.0.2.100/32", "dev", "lo", "label", "lo:0").returncode == 0
    spec = "192.0.2.100/24/eth0/192.0.2.255"
    assert agent(netns, spec, "start").returncode == 0
    assert not any("192.0.2.100" in a for a in addresses(netns, "lo"))
    assert any(a.startswith("inet 192.0.2.100/24") for a in addresses(netns, "eth0"))

    assert agent(netns, spec, "stop").returncode == 0
    assert "inet 192.0.2.100/32 scope global lo:0" in addresses(netns, "lo")
    assert not any("192.0.2.100" in a for a in addresses(netns, "eth0"))


def test_bad_usage_is_an_error(netns):
    assert agent(netns, "192.0.2.100/24/eth0", "restart").returncode == 1
    assert netns("sh", str(AGENT), "192.0.2.100/24/eth0").returncode == 1
