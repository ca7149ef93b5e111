"""ldirectord.cf rendering, director and real-server validation (seeds 002 and 003)."""

from __future__ import annotations

import pytest
from ansible_collections.hakit.cluster.plugins.filter.lvs_director import lvs_director
from ansible_collections.hakit.cluster.plugins.filter.lvs_realserver import lvs_realserver
from ansible_collections.hakit.cluster.plugins.plugin_utils import _lvs as lvs

# Seed 003's ldirectord.cf, as the how-to lists it (one directive a line, tab-indented block).
SEED_003_CF = """checktimeout=10
checkinterval=2
autoreload=no
logfile="local0"
quiescent=yes

virtual=192.168.1.105:80
\treal=192.168.1.101:80 gate 1
\treal=192.168.1.102:80 gate 1
\tfallback=127.0.0.1:80 gate
\tservice=http
\trequest="ldirector.html"
\treceive="Test Page"
\tscheduler=rr
\tprotocol=tcp
\tchecktype=negotiate
"""


def seed_003():
    return {
        "config_file": "/etc/ha.d/ldirectord.cf",
        "checktimeout": 10,
        "checkinterval": 2,
        "autoreload": False,
        "logfile": "local0",
        "quiescent": True,
        "sync_daemon": True,
        "virtual_services": [
            {
                "address": "192.168.1.105",
                "port": 80,
                "real_servers": [
                    {"address": "192.168.1.101", "port": 80, "method": "gate"},
                    {"address": "192.168.1.102", "port": 80, "method": "gate"},
                ],
                "fallback": {"address": "127.0.0.1", "port": 80, "method": "gate"},
                "service": "http",
                "request": "ldirector.html",
                "receive": "Test Page",
                "scheduler": "rr",
                "protocol": "tcp",
                "checktype": "negotiate",
            }
        ],
    }


SEED_003_GROUPS = [
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
    }
]


def test_seed_003_renders_as_the_how_to_writes_it():
    result = lvs_director(seed_003(), SEED_003_GROUPS, ["loadb1", "loadb2"])
    assert result["problems"] == []
    assert result["config"] == SEED_003_CF
    assert result["masq"] is False
    # quiescent=yes comes with the two sysctls that make weight 0 drop connections and templates.
    assert result["sysctls"] == {
        "net.ipv4.ip_forward": 1,
        "net.ipv4.vs.expire_nodest_conn": 1,
        "net.ipv4.vs.expire_quiescent_template": 1,
    }


def test_seed_002_nat_weights_and_masq():
    settings = seed_003()
    settings["quiescent"] = False
    settings["virtual_services"] = [
        {
            "address": "193.144.50.252",
            "port": 80,
            "scheduler": "wrr",
            "checktype": "connect",
            "real_servers": [
                {"address": "10.255.255.250", "port": 80, "method": "masq", "weight": 3},
                {"address": "10.255.255.253", "port": 8080, "method": "masq", "weight": 3},
                {"address": "10.255.255.254", "port": 80, "method": "masq", "weight": 1},
            ],
        }
    ]
    result = lvs_director(settings)
    assert result["problems"] == []
    assert "\treal=10.255.255.253:8080 masq 3\n" in result["config"]
    assert "\treal=10.255.255.254:80 masq 1\n" in result["config"]
    assert "\tchecktype=connect\n\tscheduler" not in result["config"]
    assert result["masq"] is True
    assert result["sysctls"]["net.ipv4.vs.expire_nodest_conn"] == 0


def test_ping_check_and_fwmark_with_persistence():
    settings = seed_003()
    settings["virtual_services"] = [
        {
            "protocol": "fwm",
            "fwmark": 7,
            "scheduler": "sh",
            "checktype": "ping",
            "persistent": 600,
            "netmask": "255.255.255.0",
            "real_servers": [{"address": "10.0.0.5", "method": "ipip", "weight": 2}],
        }
    ]
    result = lvs_director(settings)
    assert result["problems"] == []
    assert "virtual=7\n\treal=10.0.0.5 ipip 2\n" in result["config"]
    assert "\tpersistent=600\n\tnetmask=255.255.255.0\n" in result["config"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s["virtual_services"][0].update(address="192.168.1"), "virtual_services[0].address"),
        (lambda s: s["virtual_services"][0].update(scheduler="random"), "virtual_services[0].scheduler"),
        (lambda s: s["virtual_services"][0].update(checktype="http"), "virtual_services[0].checktype"),
        (lambda s: s["virtual_services"][0].update(receive='Test "Page"'), "virtual_services[0].receive"),
        (lambda s: s["virtual_services"][0].pop("request"), "virtual_services[0].request"),
        (lambda s: s["virtual_services"][0].update(real_servers=[]), "virtual_services[0].real_servers"),
        (lambda s: s["virtual_services"][0]["real_servers"][0].update(port=8080), "can only"),
        (
            lambda s: s["virtual_services"][0]["real_servers"][0].update(method="route"),
            "real_servers[0].method",
        ),
        (
            lambda s: s["virtual_services"][0]["real_servers"][1].update(address="192.168.1.101"),
            "listed twice",
        ),
        (lambda s: s["virtual_services"][0]["real_servers"][0].update(weight=-1), "real_servers[0].weight"),
        (lambda s: s["virtual_services"].append(dict(s["virtual_services"][0])), "defined twice"),
        (lambda s: s.update(checkinterval=0), "lvs_director_checkinterval"),
        (lambda s: s.update(logfile="ldirectord.log"), "lvs_director_logfile"),
        (lambda s: s.update(config_file="/etc/ldirectord.cf"), "lvs_director_config_file"),
        (
            lambda s: s["virtual_services"][0].update(netmask="255.255.255.0"),
            "only meaningful with persistent",
        ),
    ],
)
def test_bad_director_settings_are_named(change, expected):
    settings = seed_003()
    change(settings)
    result = lvs_director(settings)
    assert result["config"] == ""
    assert any(
        expected.replace("can only", "only masq can") in p or expected in p for p in result["problems"]
    ), result["problems"]


def test_heartbeat_must_start_ldirectord_sync_and_hold_the_vip():
    problems = lvs.heartbeat_problems(seed_003(), [{"node": "loadb1", "resources": []}], ["loadb1", "loadb2"])
    assert len(problems) == 3
    assert "ldirectord, args: [ldirectord.cf]" in problems[0]
    assert "LVSSyncDaemonSwap" in problems[1]
    assert "192.168.1.105 is not an IPaddr2 resource" in problems[2]
    groups = [dict(SEED_003_GROUPS[0], resources=SEED_003_GROUPS[0]["resources"][1:])]
    settings = seed_003()
    settings["config_file"] = "/etc/ha.d/other.cf"
    problems = lvs.heartbeat_problems(settings, SEED_003_GROUPS + groups, ["loadb1", "loadb2"])
    assert problems and "other.cf" in problems[0]


def test_ldirectord_as_a_service_reads_only_debians_default_file():
    settings = seed_003()
    assert lvs.service_problems(settings) == []
    settings["config_file"] = "/etc/ha.d/other.cf"
    (problem,) = lvs.service_problems(settings)
    assert problem.startswith("lvs_director_config_file: '/etc/ha.d/other.cf' is not read by")
    assert "ldirectord::other.cf" in problem
    # Through the filter: without heartbeat groups the service rule applies, with them it does not.
    assert lvs_director(settings)["problems"] == [problem]
    assert problem not in lvs_director(settings, SEED_003_GROUPS, ["loadb1", "loadb2"])["problems"]


def test_dr_real_server_gets_lo0_and_arp_settings():
    result = lvs_realserver(
        {
            "mode": "dr",
            "vips": ["192.168.1.105"],
            "arp_interfaces": ["eth0"],
            "interfaces": [{"name": "eth0", "address": "192.168.1.101/24"}],
        }
    )
    assert result["problems"] == []
    assert result["interfaces"] == [
        {"name": "eth0", "address": "192.168.1.101/24"},
        {"name": "lo:0", "address": "192.168.1.105/32", "pre_up": ["sysctl -p > /dev/null"]},
    ]
    assert result["arp_ignore"] == {"all": 1, "eth0": 1}
    assert result["arp_announce"] == {"all": 2, "eth0": 2}
    assert result["sysctl"] == {}


def test_tun_real_server_gets_tunl0_and_relaxed_rp_filter():
    result = lvs_realserver(
        {"mode": "tun", "vips": ["10.79.1.100", "10.79.1.101"], "arp_interfaces": ["eth0"], "interfaces": []}
    )
    assert result["interfaces"][0]["name"] == "tunl0"
    assert result["interfaces"][0]["address"] == "10.79.1.100/32"
    assert result["interfaces"][0]["up"] == ["ip addr add 10.79.1.101/32 dev tunl0"]
    assert result["sysctl"]["net.ipv4.conf.tunl0.rp_filter"] == 0


def test_nat_real_server_routes_through_the_director():
    settings = {
        "mode": "nat",
        "interface": "eth0",
        "director_address": "10.255.255.1",
        "interfaces": [{"name": "eth0", "address": "10.255.255.250/24", "gateway": "10.255.255.254"}],
    }
    result = lvs_realserver(settings)
    assert result["problems"] == []
    assert result["interfaces"] == [
        {"name": "eth0", "address": "10.255.255.250/24", "gateway": "10.255.255.1"}
    ]
    assert result["arp_ignore"] == {}
    settings["director_address"] = "10.0.0.1"
    assert "outside 10.255.255.0/24" in lvs_realserver(settings)["problems"][0]
    settings["interface"] = "eth1"
    assert "lvs_realserver_interface" in lvs_realserver(settings)["problems"][0]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"mode": "route"}, "lvs_realserver_mode"),
        ({"mode": "dr", "vips": [], "arp_interfaces": ["eth0"]}, "lvs_realserver_vips"),
        ({"mode": "dr", "vips": ["1.2.3"], "arp_interfaces": ["eth0"]}, "lvs_realserver_vips[0]"),
        ({"mode": "tun", "vips": ["1.2.3.4"], "arp_interfaces": []}, "lvs_realserver_arp_interfaces"),
    ],
)
def test_bad_real_server_settings_are_named(settings, expected):
    assert any(p.startswith(expected) for p in lvs_realserver(settings)["problems"])
