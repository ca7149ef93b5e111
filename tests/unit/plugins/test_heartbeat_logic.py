"""Heartbeat rules: durations as heartbeat parses them, timings, haresources lines and checks."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.hakit.cluster.plugins.filter import (
    heartbeat_duration,
    heartbeat_haresources,
    heartbeat_timing,
)
from ansible_collections.hakit.cluster.plugins.plugin_utils import _heartbeat as hb


# The examples of clplumbing's cl_get_msec (cluster-glue lib/clplumbing/cl_misc.c).
@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1", 1000),
        ("1000ms", 1000),
        ("1000000us", 1000),
        ("0.1", 100),
        ("100ms", 100),
        ("0.001", 1),
        ("1ms", 1),
        ("1000us", 1),
        ("499us", 0),
        ("501us", 1),
        (2, 2000),
        (0.5, 500),
        ("1.5", 1500),
    ],
)
def test_durations_are_read_like_heartbeat(text, ms):
    assert hb.parse_msec(text) == ms


@pytest.mark.parametrize("text", ["1s", "2 sec", "", "fast", None, True, -1, "ms"])
def test_invalid_durations(text):
    assert hb.parse_msec(text) is None


@pytest.mark.parametrize(
    ("value", "token"), [(2, "2"), ("2", "2"), (10, "10"), ("0.2", "200ms"), ("1500ms", "1500ms")]
)
def test_durations_are_written_in_ha_cf_form(value, token):
    assert heartbeat_duration.heartbeat_duration(value) == token


def test_seed_timings_pass_and_take_about_thirty_seconds():
    result = hb.check_timings(2, 30, 10, 120)
    assert result["errors"] == [] and result["warnings"] == []
    assert (result["takeover_min_ms"], result["takeover_max_ms"]) == (28400, 31200)


def test_default_timings_pass_and_estimate_the_lab_measurement():
    result = heartbeat_timing.heartbeat_timing(
        {"keepalive": "100ms", "deadtime": "500ms", "warntime": "300ms", "initdead": 10}
    )
    assert result["errors"] == []
    # The lab measured 1.31 s with these timings (research/ns-lab/REPORT.md section 3).
    assert result["takeover_min_ms"] <= 1310 <= result["takeover_max_ms"]


@pytest.mark.parametrize(
    ("timings", "variable"),
    [
        ((1, 2, 1.5, 10), "heartbeat_deadtime"),
        ((1, 5, 6, 20), "heartbeat_warntime"),
        ((1, 5, 0.5, 20), "heartbeat_warntime"),
        ((1, 5, 3, 9), "heartbeat_initdead"),
        (("1s", 5, 3, 20), "heartbeat_keepalive"),
    ],
)
def test_bad_timings_name_the_variable(timings, variable):
    errors = hb.check_timings(*timings)["errors"]
    assert len(errors) == 1 and errors[0].startswith(variable)


def test_short_initdead_warns_and_deadping_is_checked():
    result = hb.check_timings("100ms", "500ms", "300ms", 2, deadping="150ms")
    assert result["warnings"] and "under 10 s" in result["warnings"][0]
    assert result["errors"][0].startswith("heartbeat_deadping")


SEED_LINES = [
    # seed 001 (S2)
    (
        {
            "node": "nodo1",
            "resources": [
                {"type": "IPaddr2", "address": "192.168.0.29", "cidr": 24, "nic": "eth0"},
                {"type": "drbddisk", "resource": "r0"},
                {
                    "type": "Filesystem",
                    "device": "/dev/drbd0",
                    "directory": "/home/jorge/datos",
                    "fstype": "ext4",
                },
                {"type": "service", "name": "apache2"},
            ],
        },
        "nodo1 IPaddr2::192.168.0.29/24/eth0 drbddisk::r0 Filesystem::/dev/drbd0::/home/jorge/datos::ext4 apache2",
    ),
    # seed 000 (S3)
    (
        {
            "node": "corman",
            "resources": [
                {"type": "IPaddr2", "address": "192.168.2.10", "cidr": 24, "nic": "eth0:0"},
                {"type": "service", "name": "apache2"},
                {"type": "script", "name": "pingcheck"},
                {"type": "drbddisk", "resource": "data"},
                {"type": "Filesystem", "device": "/dev/drbd0", "directory": "/data", "fstype": "ext3"},
            ],
        },
        "corman IPaddr2::192.168.2.10/24/eth0:0 apache2 pingcheck drbddisk::data Filesystem::/dev/drbd0::/data::ext3",
    ),
    # seed 003 (S5)
    (
        {
            "node": "loadb1",
            "resources": [
                {"type": "agent", "name": "ldirectord", "args": ["ldirectord.cf"]},
                {"type": "agent", "name": "LVSSyncDaemonSwap", "args": ["master"]},
                {
                    "type": "IPaddr2",
                    "address": "192.168.1.105",
                    "cidr": 24,
                    "nic": "eth0",
                    "broadcast": "192.168.1.255",
                },
            ],
        },
        "loadb1 ldirectord::ldirectord.cf LVSSyncDaemonSwap::master IPaddr2::192.168.1.105/24/eth0/192.168.1.255",
    ),
    # seed 002 (S4): address/27/broadcast style with IPaddr and a service argument
    (
        {
            "node": "linuxha1",
            "resources": [
                {
                    "type": "IPaddr",
                    "address": "192.168.85.3",
                    "cidr": 27,
                    "nic": "eth0",
                    "broadcast": "192.168.85.31",
                },
                {"type": "service", "name": "httpd", "args": ["parametro"]},
            ],
        },
        "linuxha1 IPaddr::192.168.85.3/27/eth0/192.168.85.31 httpd::parametro",
    ),
]


@pytest.mark.parametrize(("group", "line"), SEED_LINES, ids=["S2", "S3", "S5", "S4"])
def test_seed_haresources_lines(group, line):
    assert heartbeat_haresources.heartbeat_haresources(group) == line
    nodes = [group["node"], "other"]
    assert hb.resource_problems([group], nodes, scripts=["pingcheck"]) == []


def test_ipaddr2_agent_names_the_script_of_ipaddr2_resources_only():
    group = SEED_LINES[2][0]
    line = heartbeat_haresources.heartbeat_haresources(group, "hakit")
    assert line == SEED_LINES[2][1].replace(" IPaddr2::", " hakit-IPaddr2::")
    ipaddr = SEED_LINES[3]
    assert heartbeat_haresources.heartbeat_haresources(ipaddr[0], "hakit") == ipaddr[1]
    with pytest.raises(AnsibleFilterError, match="ipaddr2_agent is 'lean'; known: hakit, ocf"):
        heartbeat_haresources.heartbeat_haresources(group, "lean")


def test_resource_problems_name_the_item():
    groups = [
        {
            "node": "n1",
            "resources": [
                {"type": "IPaddr2", "address": "10.0.0.300"},
                {"type": "IPaddr2", "address": "10.0.0.5", "nic": "eth0"},
                {"type": "Filesystem", "device": "sda1", "directory": "data", "fstype": "ext4"},
                {"type": "service", "name": "apache2", "args": ["a::b"]},
            ],
        },
        {"node": "n9", "resources": []},
    ]
    problems = hb.resource_problems(groups, ["n1", "n2"])
    expected = [
        "heartbeat_resource_groups[0].resources[0].address",
        "heartbeat_resource_groups[0].resources[1].nic needs",
        "heartbeat_resource_groups[0].resources[2].device",
        "heartbeat_resource_groups[0].resources[2].directory",
        "heartbeat_resource_groups[0].resources[3].args[0]",
        "heartbeat_resource_groups[1].node",
        "heartbeat_resource_groups[1].resources is empty",
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)


def test_the_same_mount_point_twice_is_a_duplicate():
    fs = {"type": "Filesystem", "device": "/dev/drbd0", "directory": "/data", "fstype": "ext4"}
    problems = hb.resource_problems(
        [{"node": "a", "resources": [fs]}, {"node": "b", "resources": [dict(fs, device="/dev/drbd1")]}],
        ["a", "b"],
    )
    assert len(problems) == 1 and "duplicates" in problems[0]


def test_vip_checks_use_the_base_device_of_an_alias():
    groups = [
        {
            "node": "a",
            "resources": [{"type": "IPaddr2", "address": "192.168.2.10", "cidr": 24, "nic": "eth0:0"}],
        }
    ]
    assert (
        hb.vip_problems(groups, {"a": {"eth0": ["192.168.2.5/24"]}, "b": {"eth0": ["192.168.2.20/24"]}}) == []
    )
    wrong = hb.vip_problems(groups, {"a": {"eth0": ["192.168.3.5/24"], "eth1": ["192.168.2.5/24"]}})
    assert wrong and "not inside eth0's subnets on node a" in wrong[0]
    assert hb.vip_problems(groups, {"a": {}}) == []


def test_node_addresses_merge_facts_and_inventory():
    hosts = [
        {
            "facts": {
                "nodename": "n1",
                "interfaces": ["eth0", "eth0.100"],
                "eth0": {
                    "ipv4": {"address": "10.0.0.1", "prefix": "24"},
                    "ipv4_secondaries": [{"address": "10.0.0.100", "prefix": "24"}],
                },
                "eth0_100": {"ipv4": {"address": "10.1.0.1", "prefix": "24"}},
            },
            "interfaces": [
                {"name": "eth1", "address": "10.2.0.1/30"},
                {"name": "lo:0", "address": "10.3.0.1/32"},
            ],
        },
        {"facts": {}, "interfaces": []},
    ]
    assert hb.node_addresses(hosts) == {
        "n1": {
            "eth1": ["10.2.0.1/30"],
            "lo": ["10.3.0.1/32"],
            "eth0": ["10.0.0.1/24", "10.0.0.100/24"],
            "eth0.100": ["10.1.0.1/24"],
        }
    }


def test_the_vip_a_node_holds_is_not_its_own_address():
    """The node holding the resources carries the VIP as a secondary: a second run must pass."""
    holder = {
        "facts": {
            "nodename": "a",
            "interfaces": ["eth0"],
            "eth0": {
                "ipv4": {"address": "192.168.2.5", "prefix": "24"},
                "ipv4_secondaries": [{"address": "192.168.2.10", "prefix": "24"}],
            },
        },
        "interfaces": [],
    }
    groups = [
        {
            "node": "a",
            "resources": [{"type": "IPaddr2", "address": "192.168.2.10", "cidr": 24, "nic": "eth0"}],
        }
    ]
    assert hb.node_addresses([holder], ["192.168.2.10"]) == {"a": {"eth0": ["192.168.2.5/24"]}}
    assert hb.vip_problems(groups, hb.node_addresses([holder], ["192.168.2.10"])) == []
    # A node's primary address or an inventory address is still its own.
    clash = dict(holder, interfaces=[{"name": "eth0:0", "address": "192.168.2.10/24"}])
    assert "own address" in hb.vip_problems(groups, hb.node_addresses([clash], ["192.168.2.10"]))[0]


def test_config_problems_for_auth_and_logging():
    base = {
        "nodes": ["a", "b"],
        "nodename": "a",
        "media": [{"type": "bcast", "interface": "eth1"}],
        "interfaces": ["eth1"],
        "auth_method": "sha1",
        "auth_key": "k",
        "auth_index": 1,
        "logfile": "/var/log/ha-log",
    }
    assert hb.config_problems(base) == []
    assert hb.config_problems(dict(base, auth_index=16))[0].startswith("heartbeat_auth_index")
    extra = dict(base, auth_extra_keys=[{"index": 1, "method": "md5", "key": "x"}])
    assert "already used" in hb.config_problems(extra)[0]
    assert "nowhere to log" in hb.config_problems(dict(base, logfile=""))[0]
    crc = hb.config_problems(dict(base, auth_method="crc", auth_key="", allow_crc=True))
    assert crc == []


# -- switchover ------------------------------------------------------------------------------------

NODES = ["node1", "node2"]
VIP, WEB = "hakit-IPaddr2::10.77.1.100/24/eth0", "apache2"


def reported(running=True, resources="all", peer="active", held=(VIP, WEB), free=()):
    """What one node's probe in tasks/switchover.yml prints, as the filter gets it."""
    return {
        "running": running,
        "resources": resources,
        "peer": peer,
        "held": " ".join(held),
        "free": " ".join(free),
    }


def holding(node: str) -> dict:
    """Both nodes up, `node` holding everything (auto_failback off)."""
    return {
        n: reported() if n == node else reported(resources="none", held=(), free=(VIP, WEB)) for n in NODES
    }


def test_switchover_to_the_standby_of_a_healthy_pair_is_allowed():
    assert hb.switchover_problems(holding("node1"), "node2", NODES) == []


def test_switchover_to_the_node_that_holds_everything_needs_nothing_even_with_its_peer_down():
    states = {"node1": reported(peer="dead")}
    assert hb.switchover_problems(states, "node1", NODES) == []


@pytest.mark.parametrize(
    ("states", "to", "expect"),
    [
        (
            holding("node1"),
            "node3",
            "heartbeat_switchover_to='node3' is not a node of this pair: name one of heartbeat_nodes (node1, node2)",
        ),
        (
            {"node1": reported(peer="dead")},
            "node2",
            "heartbeat_switchover_to=node2: node2 did not answer in this play",
        ),
        (
            {
                "node1": reported(peer="dead"),
                "node2": reported(running=False, resources="", peer="", held=(), free=(VIP, WEB)),
            },
            "node2",
            "heartbeat does not run on node2; start it (service heartbeat start) first",
        ),
        (
            {"node1": reported(held=(), free=()), "node2": reported(resources="none", held=(), free=())},
            "node2",
            "haresources on node2 lists no resource",
        ),
        (
            {**holding("node1"), "node1": reported(resources="transition", held=(VIP,), free=(WEB,))},
            "node2",
            "the resources are moving on node1 (cl_status rscstatus: transition); run again once they settle",
        ),
        (
            {**holding("node1"), "node2": reported(resources="none", peer="up", held=(), free=(VIP, WEB))},
            "node2",
            "node2 does not hold hakit-IPaddr2::10.77.1.100/24/eth0 apache2 and sees its peer as up; hb_takeover needs an active peer",
        ),
    ],
    ids=[
        "not-a-node",
        "target-unreachable",
        "target-not-running",
        "no-resources",
        "transition",
        "peer-not-active",
    ],
)
def test_switchover_problems_name_the_variable_and_the_fix(states, to, expect):
    problems = hb.switchover_problems(states, to, NODES)
    assert len(problems) == 1 and expect in problems[0], problems
