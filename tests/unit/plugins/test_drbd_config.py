"""The drbd role's cross-field rules (plugins/plugin_utils/_drbd.py)."""

from pathlib import Path

import pytest
import yaml
from ansible_collections.hakit.cluster.plugins.plugin_utils._drbd import config_problems


def settings(**changes):
    cfg = dict(
        nodes=["nodo1", "nodo2"],
        nodename="nodo1",
        shared_secret="s3cret",
        allow_automatic_discard=False,
        after_sb_0pri="disconnect",
        after_sb_1pri="disconnect",
        after_sb_2pri="disconnect",
        rr_conflict="disconnect",
        resources=[
            dict(
                name="r0",
                device="/dev/drbd0",
                disk="/dev/sda6",
                port=7793,
                primary="nodo1",
                addresses={"nodo1": "192.168.0.27", "nodo2": "192.168.0.28"},
                mount="/home/jorge/datos",
            )
        ],
    )
    cfg.update(changes)
    return cfg


def resource(**changes):
    return [dict(settings()["resources"][0], **changes)]


def test_seed_001_settings_pass():
    assert config_problems(settings()) == []


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(shared_secret=""), "drbd_shared_secret is not set"),
        (dict(shared_secret="has space"), "without spaces"),
        (dict(after_sb_0pri="discard-older-primary"), "drbd_after_sb_0pri is discard-older-primary"),
        (dict(after_sb_1pri="violently-as0p"), "drbd_allow_automatic_discard"),
        (dict(nodename="other"), "uname -n 'other' is not in drbd_nodes"),
        (dict(nodes=["nodo1"]), "drbd_nodes must name the two nodes"),
        (dict(resources=[]), "drbd_resources is empty"),
        (dict(resources=resource(device="/dev/sdb")), "device must be /dev/drbdN"),
        (dict(resources=resource(addresses={"nodo1": "192.168.0.27"})), "addresses must give exactly"),
        (
            dict(resources=resource(addresses={"nodo1": "192.168.0.27", "nodo2": "192.168.0.27"})),
            "same address",
        ),
        (
            dict(resources=resource(addresses={"nodo1": "192.168.0.27", "nodo2": "nodo2"})),
            "not an IPv4 address",
        ),
        (dict(resources=resource(disk=None)), "needs the backing disk of nodo1"),
        (dict(resources=resource(primary="nodo3")), "primary must be one of"),
        (dict(resources=resource(mount="datos")), "mount must be an absolute path"),
        (dict(resources=resource(port=70000)), "port must be a TCP port"),
        (dict(resources=resource() + resource(name="r1")), "device '/dev/drbd0' is used by another resource"),
    ],
)
def test_bad_settings_are_named(changes, words):
    problems = config_problems(settings(**changes))
    assert any(words in problem for problem in problems), problems


def test_seed_001_policies_pass_with_the_opt_in():
    cfg = settings(
        after_sb_0pri="discard-older-primary", after_sb_1pri="violently-as0p", allow_automatic_discard=True
    )
    assert config_problems(cfg) == []


def test_per_node_disks():
    cfg = settings(resources=resource(disk=None, disks={"nodo1": "/dev/sdb", "nodo2": "/dev/vdb"}))
    assert config_problems(cfg) == []


SEED_NET = {"timeout": 60, "connect-int": 12, "ping-int": 12, "ping-timeout": 9}


def test_seed_001_net_options_pass_with_seed_001_heartbeat_timings():
    """Seed 001: ping-int 12 + ping-timeout 0.9 s against deadtime 30, keepalive 2."""
    cfg = settings(net_options=SEED_NET, heartbeat_deadtime=30, heartbeat_keepalive=2)
    assert config_problems(cfg) == []


@pytest.mark.parametrize(
    "deadtime, keepalive",
    [("500ms", "100ms"), (None, None), (8, 1)],
    ids=["role-defaults", "heartbeat-unknown", "deadtime-8"],
)
def test_seed_001_ping_int_is_refused_when_drbddisk_would_give_up_first(deadtime, keepalive):
    """12.9 s to notice the dead Primary, but drbddisk retries only 5 s after the takeover starts."""
    cfg = settings(net_options=SEED_NET, heartbeat_deadtime=deadtime, heartbeat_keepalive=keepalive)
    (problem,) = config_problems(cfg)
    assert problem.startswith("drbd_net_options: DRBD may need ping-int + ping-timeout = 12.9 s")
    assert "lower ping-int to" in problem


def test_the_role_defaults_pass_even_without_heartbeat_timings():
    defaults = yaml.safe_load((Path(__file__).parents[3] / "roles/drbd/defaults/main.yml").read_text())
    for deadtime in (None, "500ms"):
        cfg = settings(net_options=defaults["drbd_net_options"], heartbeat_deadtime=deadtime)
        assert config_problems(cfg) == []


def test_a_resource_net_option_is_checked_merged_over_the_common_ones():
    cfg = settings(
        net_options=dict(SEED_NET, **{"ping-int": 2, "ping-timeout": 5, "timeout": 15}),
        resources=resource(net_options={"ping-int": 9}),
    )
    (problem,) = config_problems(cfg)
    assert problem.startswith("drbd_resources[0].net_options: DRBD may need ping-int + ping-timeout = 9.5 s")


@pytest.mark.parametrize(
    "net, words",
    [
        (
            {"timeout": 30, "ping-int": 3, "ping-timeout": 5, "connect-int": 10},
            "timeout (3 s, written in tenths of a second) must be lower",
        ),
        ({"timeout": 20, "ping-int": 3, "ping-timeout": 5, "connect-int": 2}, "must be lower than ping-int"),
        ({"ping-int": "often"}, "ping-int must be a positive number"),
    ],
)
def test_net_option_rules(net, words):
    problems = config_problems(settings(net_options=net))
    assert any(words in problem for problem in problems), problems
