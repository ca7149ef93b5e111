"""ifupdown stanzas, change detection by meaning, and interface sysctl keys."""

from __future__ import annotations

from ansible_collections.hakit.cluster.plugins.filter import (
    network_changes,
    network_stanzas,
    network_sysctl_settings,
)
from ansible_collections.hakit.cluster.plugins.plugin_utils import _network as net

# seed 001's file for nodo1, as typed there (address + netmask).
SEED_001 = """
# The loopback network interface
auto lo
iface lo inet loopback

#ASIGNAMOS UNA IP AL NOD01
auto eth0
iface eth0 inet static
    address 192.168.0.27
    netmask 255.255.255.0
"""
# seed 003's real-server alias with its pre-up hook.
SEED_003_LO0 = """
auto lo:0
iface lo:0 inet static
  address 192.168.1.105
  netmask 255.255.255.255
  pre-up sysctl -p > /dev/null
"""


def test_a_host_configured_by_hand_the_same_way_is_unchanged():
    wanted = network_stanzas.network_stanzas([{"name": "eth0", "address": "192.168.0.27/24"}])
    assert network_changes.network_changes(SEED_001, wanted) == {"changed": [], "removed": []}


def test_alias_with_hook_round_trips():
    wanted = net.stanzas(
        [{"name": "lo:0", "address": "192.168.1.105/32", "pre_up": ["sysctl -p > /dev/null"]}]
    )
    assert wanted[0]["options"] == [
        ["address", "192.168.1.105"],
        ["netmask", "255.255.255.255"],
        ["pre-up", "sysctl -p > /dev/null"],
    ]
    assert net.changes(SEED_003_LO0, wanted) == {"changed": [], "removed": []}


def test_only_the_changed_interface_is_reported():
    wanted = net.stanzas(
        [{"name": "eth0", "address": "192.168.0.27/24"}, {"name": "eth0:0", "address": "192.168.0.29/24"}]
    )
    assert net.changes(SEED_001, wanted) == {"changed": ["eth0:0"], "removed": []}
    moved = net.stanzas([{"name": "eth0", "address": "192.168.0.30/24"}])
    assert net.changes(SEED_001, moved) == {"changed": ["eth0"], "removed": []}
    assert net.changes(SEED_001, []) == {"changed": [], "removed": ["eth0"]}


def test_hook_aliases_and_auto_count():
    old = "auto eth1\niface eth1 inet manual\n  post-up ip link set eth1 promisc on\n"
    same = net.stanzas([{"name": "eth1", "method": "manual", "up": ["ip link set eth1 promisc on"]}])
    assert net.changes(old, same)["changed"] == []
    assert net.changes(
        old,
        net.stanzas(
            [{"name": "eth1", "method": "manual", "auto": False, "up": ["ip link set eth1 promisc on"]}]
        ),
    )["changed"] == ["eth1"]


def test_interface_names_with_dots_use_the_slash_form():
    settings = network_sysctl_settings.network_sysctl_settings(
        True, {"eth0.100": 1, "all": 1, "eth0": 1}, {"all": 2}
    )
    assert settings == [
        ["net.ipv4.ip_forward", "1"],
        ["net.ipv4.conf.all.arp_ignore", "1"],
        ["net.ipv4.conf.eth0.arp_ignore", "1"],
        ["net/ipv4/conf/eth0.100/arp_ignore", "1"],
        ["net.ipv4.conf.all.arp_announce", "2"],
    ]
    assert net.sysctl_settings(None) == []


def test_user_sysctl_keys_with_a_vlan_interface_are_written_as_sysctl_reads_them():
    # Written as given, net.ipv4.conf.eth0.100.arp_ignore is read by sysctl as interface eth0/100.
    extra = {
        "net.ipv4.conf.eth0.100.arp_ignore": 1,
        "net.ipv6.conf.bond0.20.disable_ipv6": 1,
        "net.ipv4.neigh.eth1.7.gc_stale_time": 30,
        "net.ipv4.conf.eth0.rp_filter": 2,  # no dot in the interface: kept
        "net/ipv4/conf/eth0.200/rp_filter": 0,  # already the slash form: kept
        "net.core.somaxconn": 1024,
    }
    assert dict(net.sysctl_settings(None, extra=extra)) == {
        "net/ipv4/conf/eth0.100/arp_ignore": "1",
        "net/ipv6/conf/bond0.20/disable_ipv6": "1",
        "net/ipv4/neigh/eth1.7/gc_stale_time": "30",
        "net.ipv4.conf.eth0.rp_filter": "2",
        "net/ipv4/conf/eth0.200/rp_filter": "0",
        "net.core.somaxconn": "1024",
    }


def test_network_problems():
    problems = net.problems(
        [
            {"name": "eth0", "address": "10.0.0.1/24", "gateway": "10.0.1.1"},
            {"name": "eth0", "address": "10.0.0.1/24"},
            {"name": "mgmt0", "address": "10.77.0.11/24"},
            {"name": "eth2", "method": "dhcp", "address": "10.9.0.1/24"},
        ],
        protected=["mgmt0"],
    )
    for text in (
        "gateway 10.0.1.1 is outside",
        "already network_interfaces[0]",
        "also network_interfaces[0]",
        "mgmt0 is the interface Ansible connects through",
        "goes with method static",
    ):
        assert any(text in p for p in problems), (text, problems)
    assert (
        net.problems([{"name": "mgmt0", "address": "10.77.0.11/24"}], ["mgmt0"], allow_protected=True) == []
    )
    assert net.sysctl_problems({"all": 9}, {"eth0": 3})[0].startswith("network_arp_ignore.all")
