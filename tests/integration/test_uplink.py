"""The dual-uplink pair's failure cases on the lab (seed system S3), each its own test: cut router1's
uplink with `hakit-lab fault`, then check from the active node's traffic (which public address the
internet host sees), from BIND and the dyndns2 endpoint, and from the daemon's own log and state.

The module first runs molecule/uplink (the lab inventory inventory/lab/uplink with the scenario's
prepare.yml, playbooks/uplink.yml converged twice, the healthy pair verified) and keeps that lab for
its cases; every test starts from traffic on router1.
"""

from __future__ import annotations

import os
import shutil

import pytest
import uplink
from scenario import converged_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab():
    missing = [tool for tool in ("ip", "nft", "nsenter", "debootstrap", "ssh") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"the lab needs root{' and ' + ', '.join(missing) if missing else ''}")
    with converged_lab("uplink"):
        yield


@pytest.fixture
def active(lab):
    """The node running the daemon, once its traffic and the DNS record are on router1."""
    node = uplink.wait_for("the daemon running on exactly one node", uplink.holder, 60)
    uplink.wait_for("traffic on router1", lambda: uplink.settled_on_router1(node), 30)
    uplink.wait_for("the record on uplink 1", lambda: uplink.record() == uplink.PUBLIC["router1"], 10)
    return node


def log_of(node: str) -> str:
    return uplink.sh(node, "cat /var/log/hakit-uplink.log").stdout


def test_traffic_and_dns_follow_router1s_uplink_out_and_back(active):
    c = uplink.cycle(active)
    print(f"switch {c.switch_s} s, DNS moved {c.dns_s} s, back {c.back_s} s; {c.reasons}")
    assert c.switch_s is not None and c.switch_s <= uplink.SWITCH_TARGET, c
    assert c.dns_s is not None and c.dns_s <= uplink.DNS_TARGET, c
    assert c.dyndns2 == uplink.PUBLIC["router2"], "the dyndns2 endpoint did not get uplink 2's address"
    # Back only after the hysteresis: 10 good rounds of 0.2 s and 4 s on router2.
    assert c.back_s is not None and c.back_s >= 2.0, c
    assert c.switches == 2, c
    assert c.reasons[0] == "router1 failed 3 consecutive rounds (0/2 targets answered); router2 answers"
    assert c.reasons[1].startswith("router1 answered ")
    uplink.wait_for("the record back on uplink 1", lambda: uplink.record() == uplink.PUBLIC["router1"], 10)
    assert uplink.get(uplink.INTERNET, uplink.DYNDNS2_RECORD) == uplink.PUBLIC["router1"]
    # failcase/backnormal: the backup service address was on eth1 while router2 was active only.
    log = log_of(active)
    assert "switch router1 -> router2" in log and "switch router2 -> router1" in log
    assert " 10.80.2.100/24 " not in uplink.sh(active, "ip -4 -o addr show dev eth1").stdout


def test_a_link_flapping_every_second_for_20_s_switches_at_most_twice(active):
    before = uplink.daemon_state(active)["switches"]
    toggles = uplink.flap(seconds=20, period=1.0)
    uplink.wait_for("traffic back on router1", lambda: uplink.settled_on_router1(active), 30)
    switches = uplink.daemon_state(active)["switches"] - before
    print(f"{toggles} toggles in 20 s -> {switches} switches")
    assert toggles >= 16, "the fault commands were too slow to flap every second"
    assert switches <= 2


def test_the_daemon_moves_with_the_resources_and_keeps_working(active):
    other = uplink.NODES[1] if active == uplink.NODES[0] else uplink.NODES[0]
    uplink.lab("fault", "poweroff", active)
    try:
        # Heartbeat on the other node takes the resources, the daemon with them.
        uplink.wait_for(f"the daemon running on {other}", lambda: uplink.holder() == other, 60)
        uplink.wait_for(f"{other}'s traffic on router1", lambda: uplink.settled_on_router1(other), 30)
        assert "start: router1 active (preferred)" in log_of(other)
        c = uplink.cycle(other)
        print(f"on {other}: switch {c.switch_s} s, DNS moved {c.dns_s} s, back {c.back_s} s")
        assert c.switch_s is not None and c.switch_s <= uplink.SWITCH_TARGET, c
        assert c.dns_s is not None and c.dns_s <= uplink.DNS_TARGET, c
        assert c.back_s is not None and c.switches == 2, c
    finally:
        uplink.lab("fault", "boot", active)
    # auto_failback is off: the returning node stands by and starts no daemon of its own.
    uplink.wait_for(
        f"{active} back in the cluster",
        lambda: uplink.sh(active, "cl_status nodestatus " + other).stdout.strip() == "active",
        60,
    )
    assert uplink.holder() == other
