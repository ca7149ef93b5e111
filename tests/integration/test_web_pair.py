"""The web pair's failure cases on the lab, each its own test: break something, then check from the
client (through the service address) and with heartbeat's own tools on the nodes that the pair did
the right thing.

The module first runs molecule/web_pair (the lab inventory inventory/lab/web_pair converged twice,
the healthy pair verified) and keeps that lab for its cases; every test that breaks
something first restores the healthy pair (node1 active, node2 standby, nothing broken). The lab
and the roles are driven as a user would: hakit-lab for faults, ansible-playbook for the roles,
bench/http_probe.py polling the service address every 100 ms inside the client (bench/webpair.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import outage
import pytest
import webpair
import yaml
from scenario import converged_lab, recap

pytestmark = pytest.mark.lab

BAD_INVENTORIES = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "unit" / "web_pair" / "bad_inventories.yml").read_text()
)
# Takeovers must happen within this; the defaults measure 1-2 s, ipfail about 4 s.
TAKEOVER_BOUND = 20.0
# How long a case that must move nothing keeps watching after its fault took effect. Heartbeat
# would take over one deadtime (0.5 s) after it noticed the fault.
QUIET_WATCH = 3.0
# Longest run of failed requests that is not an outage (see served_only_by).
HICCUP = 1.0


@pytest.fixture(scope="module")
def pair():
    """The lab's web pair, converged and verified by molecule/web_pair; torn down after the module."""
    missing = [tool for tool in ("ip", "nft", "nsenter", "debootstrap", "ssh") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"the lab needs root{' and ' + ', '.join(missing) if missing else ''}")
    with converged_lab("web_pair"):
        yield


@pytest.fixture
def healthy(pair):
    webpair.restore()


def seen_while(action: Callable[[], object]) -> list[dict]:
    """The client's samples of the service address while `action` ran and QUIET_WATCH s after."""
    probe = webpair.Probe(duration=1800)
    try:
        action()
    finally:
        samples = probe.stop()
    return samples + webpair.Probe(duration=QUIET_WATCH).samples()


def served_only_by(node: str, samples: list[dict]) -> str:
    """Why the samples do not show `node` alone serving, without an outage; '' if they do.

    A request may time out (0.3 s) when the machine stalls; that is no failover, so failed runs
    shorter than HICCUP are let pass. A takeover answers from the other node after a longer gap.
    """
    if not samples:
        return "the client got no sample at all"
    counts = webpair.answers(samples)
    longest = outage.measure(samples, samples[0]["t"], node).longest_gap_s
    failed = [f"{s['t'] - samples[0]['t']:.2f} s {s['body']}" for s in samples if not s["ok"]]
    if set(counts) - {node, "failed"} or longest >= HICCUP:
        return f"the client saw {counts}, longest gap {longest} s; failed: {failed}"
    return ""


def hb(node: str, command: str) -> str:
    return webpair.sh(node, f"cl_status {command}").stdout.strip()


def test_node2_serves_when_node1_loses_power(healthy, record_property):
    measured, samples = webpair.power_off_active("node1", bound=TAKEOVER_BOUND)
    assert measured.to_expected_s is not None, f"node2 never answered: {webpair.answers(samples)}"
    record_property(
        "lab figure",
        f"web pair: node2 answered {measured.to_expected_s} s after node1 lost power (gap {measured.longest_gap_s} s)",
    )
    # The client is served as soon as Apache listens; heartbeat finishes its takeover a moment later.
    webpair.wait_for("node2 done taking over", lambda: hb("node2", "rscstatus") == "all", 30)
    assert webpair.holders() == ["node2"]
    assert hb("node2", "nodestatus node1") == "dead"


def test_node1_returns_as_standby_with_auto_failback_off(healthy):
    measured, _ = webpair.power_off_active("node1", bound=TAKEOVER_BOUND)
    assert measured.to_expected_s is not None
    # Heartbeat starts at boot; node1 rejoins and leaves the resources where they are.
    problem = served_only_by("node2", seen_while(lambda: webpair.boot("node1")))
    assert not problem, f"while node1 rejoined {problem}"
    state = webpair.pair_state()
    assert webpair.settled("node2", state), webpair.describe(state)


def test_ipfail_moves_the_resources_when_node1_loses_its_ping_node(healthy):
    # node1 and the gateway stop hearing each other, while node1 keeps both heartbeat links to
    # node2 and the client still reaches node1: only ipfail can move the resources.
    measured, samples = webpair.fault_under_probe(
        ("partition", "node1", webpair.GATEWAY), expect="node2", bound=TAKEOVER_BOUND
    )
    assert measured.to_expected_s is not None, f"node2 never answered: {webpair.answers(samples)}"
    print(f"node2 answered {measured.to_expected_s} s after node1 lost its ping node")
    webpair.wait_for("node2 active, node1 standby", lambda: webpair.settled("node2"), 30)
    assert hb("node1", f"nodestatus {webpair.PING_NODE}") == "dead"
    assert hb("node2", f"nodestatus {webpair.PING_NODE}") == "ping"
    assert [hb("node2", f"hblinkstatus node1 {link}") for link in ("eth0", "eth1")] == ["up", "up"]


def test_losing_one_of_two_heartbeat_media_moves_nothing(healthy):
    def cut_eth1():
        webpair.lab("fault", "link-down", "node1", "eth1")
        webpair.wait_for(
            "node2 declaring node1's eth1 link dead",
            lambda: hb("node2", "hblinkstatus node1 eth1") == "dead",
            10,
        )

    problem = served_only_by("node1", seen_while(cut_eth1))
    assert not problem, f"with node1's eth1 cut {problem}"
    state = webpair.pair_state()
    assert webpair.settled("node1", state), webpair.describe(state)
    assert hb("node2", "hblinkstatus node1 eth0") == "up"


def test_the_survivor_converges_while_its_peer_is_powered_off(healthy):
    # The state after a failure, when admins run the playbook: one node down. The first run is
    # limited to the survivor; it changes a timing, which heartbeat takes by reload, and the
    # survivor serves throughout. Before, the role's first probe failed on "dead" from cl_status
    # (invalid JSON) and the survivor could not be changed.
    webpair.lab("fault", "poweroff", "node2")
    results = []
    problem = served_only_by(
        "node1",
        seen_while(lambda: results.append(webpair.converge({"heartbeat_warntime": "250ms"}, limit="node1"))),
    )
    assert results[0].returncode == 0, results[0].stdout[-3000:]
    assert not problem, f"while node1 converged alone {problem}"
    assert webpair.sh("node1", "grep -x 'warntime 250ms' /etc/ha.d/ha.cf").returncode == 0
    # Without --limit, as an admin would first try: the survivor converges, the dead node is named
    # unreachable and the run says it failed (exit 4), and nothing moved on the survivor.
    problem = served_only_by(
        "node1",
        seen_while(lambda: results.append(webpair.converge({"heartbeat_warntime": "350ms"}))),
    )
    output = results[1].stdout
    assert results[1].returncode == 4, output[-3000:]
    assert re.search(r"^fatal: \[node2\]: UNREACHABLE!", output, re.M), output[-3000:]
    node1 = recap(output)["node1"]
    assert node1["unreachable"] == 0 and node1["failed"] == 0, node1
    assert not problem, f"while the playbook ran with node2 down {problem}"
    assert webpair.sh("node1", "grep -x 'warntime 350ms' /etc/ha.d/ha.cf").returncode == 0
    # The peer back, the next full run converges both nodes to the inventory again.
    webpair.boot("node2")
    webpair.converged()
    for node in webpair.NODES:
        assert webpair.sh(node, "grep -E -x 'warntime (250|350)ms' /etc/ha.d/ha.cf").returncode != 0, node
    assert webpair.settled("node1"), webpair.describe()


@pytest.mark.parametrize(
    "case", ["deadtime_not_above_twice_keepalive", "vip_outside_interface_subnet", "secret_missing"]
)
def test_a_bad_inventory_changes_nothing_on_the_lab_hosts(healthy, case, tmp_path):
    bad = BAD_INVENTORIES[case]
    overlay = tmp_path / "bad.yml"
    overlay.write_text(yaml.safe_dump({"all": {"children": {"web_pair": {"vars": bad.get("vars", {})}}}}))
    before = {node: webpair.snapshot(node) for node in webpair.NODES}
    result = webpair.converge(bad.get("extra_vars"), inventories=(overlay,))
    after = {node: webpair.snapshot(node) for node in webpair.NODES}
    output = " ".join(result.stdout.split())
    assert result.returncode != 0, result.stdout[-3000:]
    assert "PLAY [Validate the web pair on every node before anything changes]" in output
    assert "PLAY [Converge the web pair, one node at a time once it serves]" not in output
    assert not re.search(r"^changed: \[", result.stdout, re.MULTILINE)
    for text in bad["expect"]:
        assert " ".join(text.split()) in output, result.stdout[-3000:]
    assert after == before


def handed_over(first: str, then: str, samples: list[dict]) -> str:
    """Why the samples do not show one handover from `first` to `then`; '' if they do.

    Every answer from `first` must come before every answer from `then` (no flapping), `then` must
    answer in the end, and no third server may answer.
    """
    counts = webpair.answers(samples)
    order = [n for n in map(webpair.answered_by, samples) if n != "failed"]
    if set(counts) - {first, then, "failed"} or then not in counts:
        return f"the client saw {counts}"
    if first in order[order.index(then) :]:
        return f"{first} answered again after {then} had taken over: {counts}"
    return ""


def test_turning_auto_failback_on_hands_the_resources_home(healthy):
    measured, _ = webpair.power_off_active("node1", bound=TAKEOVER_BOUND)
    assert measured.to_expected_s is not None
    webpair.boot("node1")
    assert webpair.settled("node2"), webpair.describe()
    # The converge reloads heartbeat on each node in turn. Once both run with auto_failback on,
    # ipfail on node2 gives node1's resources back ("Giving up foreign resources (auto_failback)"
    # in ha-log): the preferred node serves whenever it is up, which is what the setting means.
    results = []

    def turn_on():
        results.append(webpair.converge({"heartbeat_auto_failback": True}))
        if results[0].returncode == 0:
            webpair.wait_for("node1 active, node2 standby", lambda: webpair.settled("node1"), TAKEOVER_BOUND)

    samples = seen_while(turn_on)
    result = results[0]
    assert result.returncode == 0, result.stdout[-3000:]
    reloads = re.findall(
        r"RUNNING HANDLER \[hakit\.cluster\.heartbeat : Reload heartbeat\] \**\nchanged: \[(\w+)\]",
        result.stdout,
    )
    assert reloads == ["node1", "node2"], "heartbeat was not reloaded on each node in turn"
    problem = handed_over("node2", "node1", samples)
    assert not problem, f"while auto_failback was turned on {problem}"
    failback = outage.measure(samples, samples[0]["t"], "node1")
    print(
        f"failback when auto_failback was turned on: longest gap {failback.longest_gap_s} s, "
        f"{failback.failed_requests} failed requests; the client saw {webpair.answers(samples)}"
    )
    assert failback.longest_gap_s < TAKEOVER_BOUND
    for node in webpair.NODES:
        assert webpair.sh(node, "grep -x 'auto_failback on' /etc/ha.d/ha.cf").returncode == 0
    # node2 takes over from a power cut; node1 powered on again takes its resources back.
    measured, _ = webpair.power_off_active("node1", bound=TAKEOVER_BOUND)
    assert measured.to_expected_s is not None, "node2 did not take over"
    measured, samples = webpair.fault_under_probe(("boot", "node1"), expect="node1", bound=60)
    assert measured.to_expected_s is not None, f"node1 never took over: {webpair.answers(samples)}"
    print(f"node1 served again {measured.to_expected_s} s after it was powered on")
    webpair.wait_for("node1 active, node2 standby", lambda: webpair.settled("node1"), 30)


SWITCHOVER = webpair.ROOT / "playbooks" / "switchover.yml"


def switch_over(to: str, check: bool = False) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """playbooks/switchover.yml moving the pair to `to`, with the client's samples meanwhile."""
    results = []
    extra = {"switchover_pair": "web_pair", "heartbeat_switchover_to": to}
    samples = seen_while(lambda: results.append(webpair.converge(extra, playbook=SWITCHOVER, check=check)))
    return results[0], samples


def handover_gap(first: str, then: str, samples: list[dict]) -> float:
    """Seconds between the client's last answer from `first` and its first from `then`."""
    times = [(webpair.answered_by(s), s["t"]) for s in samples]
    return round(min(t for n, t in times if n == then) - max(t for n, t in times if n == first), 3)


def test_switchover_moves_the_resources_on_purpose_and_back(healthy, record_property):
    # Check mode first: it says the resources would move, and nothing moves.
    result, samples = switch_over("node2", check=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result.stdout)["node2"]["changed"] == 1, result.stdout[-3000:]
    assert not served_only_by("node1", samples) and webpair.settled("node1"), webpair.describe()
    # Four switchovers, the client polling every 100 ms: each hands over once, without flapping.
    gaps = []
    for first, then in (("node1", "node2"), ("node2", "node1")) * 2:
        result, samples = switch_over(then)
        assert result.returncode == 0, result.stdout[-3000:]
        assert recap(result.stdout)[then]["changed"] == 1, result.stdout[-3000:]
        problem = handed_over(first, then, samples)
        assert not problem, f"switching over to {then}: {problem}"
        assert webpair.settled(then), webpair.describe()
        gaps.append(handover_gap(first, then, samples))
    gaps.sort()
    record_property(
        "lab figure",
        f"switchover.yml on the web pair: client-visible gap {gaps} s, median {(gaps[1] + gaps[2]) / 2:.2f} s "
        "(last answer from one node to the first from the other, polled every 100 ms)",
    )
    # Where the resources already are: nothing moves and nothing changes.
    result, samples = switch_over("node1")
    assert result.returncode == 0, result.stdout[-3000:]
    assert [recap(result.stdout)[node]["changed"] for node in webpair.NODES] == [0, 0]
    assert not served_only_by("node1", samples)


def test_switchover_refuses_bad_input_and_a_dead_target_before_anything_moves(healthy):
    result, _ = switch_over("node3")
    assert result.returncode != 0
    assert "heartbeat_switchover_to='node3' is not a node of this pair" in " ".join(result.stdout.split())
    result = webpair.converge({"heartbeat_switchover_to": "node2"}, playbook=SWITCHOVER)
    assert result.returncode != 0 and "switchover_pair=(not set)" in result.stdout, result.stdout[-3000:]
    assert webpair.settled("node1"), webpair.describe()
    # node2 powered off: moving to node1, which holds everything, works on the survivor (node2 is
    # named unreachable, exit 4); moving to node2 is refused with its name.
    webpair.lab("fault", "poweroff", "node2")
    result, samples = switch_over("node1")
    assert result.returncode == 4, result.stdout[-3000:]
    assert recap(result.stdout)["node1"] == {**recap(result.stdout)["node1"], "changed": 0, "failed": 0}
    assert not served_only_by("node1", samples)
    result, _ = switch_over("node2")
    assert result.returncode != 0 and recap(result.stdout)["node1"]["failed"] == 1, result.stdout[-3000:]
    assert "heartbeat_switchover_to=node2: node2 did not answer in this play" in " ".join(
        result.stdout.split()
    )
