"""The lab model: names that fit the kernel's limits and MACs that survive a host's re-creation."""

import ipaddress

from hakit_lab import model


def test_mac_is_locally_administered_and_derived_from_the_address():
    assert model.mac_for("10.77.1.11/24") == "02:00:0a:4d:01:0b"
    assert model.mac_for("10.77.1.11") == model.mac_for("10.77.1.11/24")
    assert int(model.mac_for("192.0.2.1").split(":")[0], 16) & 0b10


def test_link_names_fit_ifnamsiz():
    host = model.Host("a-rather-long-host-name", "ns", 99, ipaddress.IPv4Interface("10.77.0.99/24"))
    net = model.Network("heartbeat-link", ipaddress.IPv4Network("10.77.2.0/24"), 9)
    for name in (host.switch_link(8), host.switch_link("m"), net.bridge, model.CONTROLLER_LINK):
        assert len(name) <= 15 and name.startswith(model.PREFIX)


def test_controller_takes_the_first_address_of_the_management_subnet():
    mgmt = model.Network("mgmt", ipaddress.IPv4Network("10.77.0.0/24"), 0)
    lab = model.Lab(networks={}, hosts={}, mgmt=mgmt)
    assert lab.controller == ipaddress.IPv4Interface("10.77.0.1/24")


def test_management_nic_comes_last():
    host = model.Host(
        "node1",
        "ns",
        1,
        ipaddress.IPv4Interface("10.77.0.11/24"),
        (model.Interface("eth0", "lan", ipaddress.IPv4Interface("10.77.1.11/24")),),
    )
    assert [i.name for i in host.all_interfaces] == ["eth0", "mgmt0"]
