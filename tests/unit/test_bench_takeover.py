"""The takeover breakdown, on a survivor's log as heartbeat 3.0.6 writes it, stamped by the watcher."""

import outage
import takeover

FAULT = 1000.0
LOG = [
    (999.2, "Dec 06 03:20:01 node2 heartbeat: [812]: info: Status update for node node1: status active"),
    (1003.1, "Dec 06 03:20:05 node2 heartbeat: [812]: WARN: node node1: is dead"),
    (1003.1, "Dec 06 03:20:05 node2 heartbeat: [812]: info: Resources being acquired from node1."),
    (1003.4, "harc(default)[2101]:\t2026/12/06_03:20:05 info: Running /etc/ha.d//rc.d/status status"),
    (1003.6, "mach_down(default)[2130]:\t2026/12/06_03:20:05 info: Taking over resource group drbddisk::r0"),
    (
        1003.9,
        "ResourceManager(default)[2150]:\t2026/12/06_03:20:05 info: Acquiring resource group: node1 drbddisk::r0",
    ),
    (
        1004.0,
        "ResourceManager(default)[2150]:\t2026/12/06_03:20:06 info: Running /etc/ha.d/resource.d/drbddisk r0 start",
    ),
    (
        1005.2,
        "ResourceManager(default)[2150]:\t2026/12/06_03:20:07 info: Running /etc/ha.d/resource.d/Filesystem /dev/drbd0 /srv ext4 start",
    ),
    (
        1008.7,
        "ResourceManager(default)[2150]:\t2026/12/06_03:20:10 info: Running /etc/ha.d/resource.d/hakit-IPaddr2 10.78.1.100/24/eth0 start",
    ),
    (1009.3, "ResourceManager(default)[2150]:\t2026/12/06_03:20:11 info: Running /etc/init.d/apache2  start"),
    (
        1011.0,
        "mach_down(default)[2130]:\t2026/12/06_03:20:13 info: mach_down takeover complete for node node1.",
    ),
    (1011.1, "Dec 06 03:20:13 node2 heartbeat: [812]: info: mach_down takeover complete."),
]


def test_each_agent_gets_the_time_until_the_next_one_starts():
    measured = outage.measure(
        [{"t": 1011.4, "ok": True, "body": "served-by node2"}], fault_at=FAULT, expect="node2"
    )
    steps = takeover.breakdown(LOG, measured)
    assert [(s.what, s.seconds) for s in steps] == [
        ("detection", 3.1),
        ("heartbeat", 0.9),
        ("drbddisk r0", 1.2),
        ("Filesystem /dev/drbd0", 3.5),
        ("hakit-IPaddr2 10.78.1.100/24/eth0", 0.6),
        ("apache2", 1.7),
        ("client", 0.4),
    ]
    text = takeover.describe(steps)
    assert text.startswith("detection 3.10 s + heartbeat 0.90 s + drbddisk r0 1.20 s")
    assert text.endswith("= 11.40 s")  # the client's first answer from node2, 11.4 s after the fault


def test_a_client_answered_before_heartbeat_finished_ends_the_steps_there():
    # apache2 answered 1.0 s after it started; heartbeat logged the end 0.7 s later.
    measured = outage.measure(
        [{"t": 1010.3, "ok": True, "body": "served-by node2"}], fault_at=FAULT, expect="node2"
    )
    steps = takeover.breakdown(LOG, measured)
    assert steps[-1] == takeover.Step("apache2", 1.0)
    assert round(sum(s.seconds for s in steps), 2) == measured.to_expected_s == 10.3


def test_an_unfinished_takeover_keeps_what_it_saw():
    measured = outage.measure([{"t": 1020.0, "ok": False, "body": ""}], fault_at=FAULT, expect="node2")
    steps = takeover.breakdown(LOG[:8], measured)
    assert [s.what for s in steps] == ["detection", "heartbeat", "drbddisk r0"]


def test_no_peer_declared_dead_is_no_breakdown():
    measured = outage.measure([], fault_at=FAULT, expect="node2")
    assert takeover.breakdown(LOG[:1], measured) == []
    assert takeover.describe([]) == "no takeover in the survivor's log"


def test_an_answer_before_the_fault_took_effect_does_not_end_the_steps():
    # A director's power-off: the real servers answer both directors, so a request that went out
    # just before the kill landed is an "expected" answer 0.01 s after the fault. The outage is
    # the gap that follows it, and the steps run to the answer that ended that gap.
    samples = [
        {"t": 1000.01, "ok": True, "body": "served-by web1"},
        {"t": 1001.0, "ok": False, "body": ""},
        {"t": 1009.0, "ok": False, "body": ""},
        {"t": 1011.4, "ok": True, "body": "served-by web2"},
    ]
    measured = outage.measure(samples, fault_at=FAULT, expect="served-by web")
    assert measured.to_expected_s == 0.01
    assert measured.back_s == 11.4
    steps = takeover.breakdown(LOG, measured)
    assert [s.what for s in steps][:3] == ["detection", "heartbeat", "drbddisk r0"]
    assert takeover.describe(steps).endswith("= 11.40 s")
