"""The lab's topology comes from the inventory through ansible-inventory; mistakes are named with
host, variable and fix before anything is built. No root needed."""

import ipaddress
from pathlib import Path

import pytest
from hakit_lab import inventory, model

HERE = Path(__file__).parent
LAB_INVENTORY = HERE / "inventory" / "hosts.yml"
FIXTURES = HERE / "fixtures" / "inventories"


def test_the_test_lab_inventory_has_8_ns_hosts_and_2_vms():
    lab = inventory.load(LAB_INVENTORY)
    kinds = [h.kind for h in lab.hosts.values()]
    assert kinds.count("ns") == 8 and kinds.count("vm") == 2
    assert lab.controller == ipaddress.IPv4Interface("10.77.0.1/24")
    assert {n: str(net.subnet) for n, net in lab.networks.items()} == {
        "hb": "10.77.2.0/24",
        "lan": "10.77.1.0/24",
    }
    # bridges: management first, then networks by name
    assert [lab.mgmt.bridge, lab.networks["hb"].bridge, lab.networks["lan"].bridge] == [
        f"{model.PREFIX}br0",
        f"{model.PREFIX}br1",
        f"{model.PREFIX}br2",
    ]
    ns1 = lab.host("ns1")
    assert ns1.index == 1 and ns1.mgmt == ipaddress.IPv4Interface("10.77.0.11/24")
    assert [(i.name, i.network, str(i.address)) for i in ns1.interfaces] == [
        ("eth0", "lan", "10.77.1.11/24"),
        ("eth1", "hb", "10.77.2.11/24"),
    ]
    assert lab.host("ns3").interfaces[0].gateway == ipaddress.IPv4Address("10.77.1.254")
    vm1 = lab.host("vm1")
    assert (vm1.memory_mib, vm1.disks_mib) == (384, (64,))


def test_hosts_are_numbered_in_inventory_order():
    lab = inventory.load(LAB_INVENTORY)
    assert [h.name for h in sorted(lab.hosts.values(), key=lambda h: h.index)] == [
        *(f"ns{i}" for i in range(1, 9)),
        "vm1",
        "vm2",
    ]
    assert len({h.switch_link(0) for h in lab.hosts.values()}) == len(lab.hosts)


def test_any_inventory_format_and_hosts_without_lab_kind_are_ignored():
    lab = inventory.load(FIXTURES / "mixed.ini")
    assert sorted(lab.hosts) == ["node1", "node2"]
    # an address without a prefix takes its network's
    assert str(lab.host("node2").interfaces[0].address) == "10.88.1.12/24"
    assert lab.host("node2").disks_mib == (64, 32)


def test_every_mistake_is_reported_at_once_with_host_variable_and_fix():
    with pytest.raises(model.LabError) as caught:
        inventory.load(FIXTURES / "broken.yml")
    message = str(caught.value)
    expected = [
        "host wrongnet: lab_interfaces[0].network 'wan' is not in lab_networks (lan)",
        "host outside: lab_interfaces[0].address 10.77.9.12/24 is outside network lan (10.77.1.0/24)",
        "host dup-b eth0: address 10.77.1.13 is already used by host dup-a eth0",
        "host farmgmt: ansible_host 192.0.2.15 is outside lab_mgmt_subnet 10.77.0.0/24",
        "host badname: lab_interfaces[0].name is 'lan0' but NICs are named by position",
        "host badkind: lab_kind is 'lxc'; set it to 'ns' (namespace host), 'uml' (User-mode Linux kernel) or 'vm' (qemu VM)",
        "host toomany: lab_interfaces has 10 NICs; a lab host has at most 9",
    ]
    for line in expected:
        assert line in message
    assert "not-a-lab-host" not in message
    assert f"({len(expected)} problem(s))" in message


def hostvars(**hosts):
    common = {"lab_mgmt_subnet": "10.77.0.0/24", "lab_networks": {"lan": {"subnet": "10.77.1.0/24"}}}
    return {name: {**common, **v} for name, v in hosts.items()}


def ns(mgmt, *nics, **extra):
    return {"lab_kind": "ns", "ansible_host": mgmt, "lab_interfaces": list(nics), **extra}


def lan(address, name="eth0", **extra):
    return {"name": name, "network": "lan", "address": address, **extra}


def error_of(variables):
    with pytest.raises(model.LabError) as caught:
        inventory.build(variables)
    return str(caught.value)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (hostvars(a=ns("10.77.0.1")), "ansible_host 10.77.0.1 is the controller's address"),
        (hostvars(a=ns("10.77.0.255")), "ansible_host 10.77.0.255 is outside lab_mgmt_subnet"),
        (hostvars(a=ns("nonsense")), "ansible_host 'nonsense' is not an IPv4 address"),
        (hostvars(a={"lab_kind": "ns"}), "ansible_host is not set"),
        (
            hostvars(a=ns("10.77.0.11", lan("10.77.1.11/16"))),
            "has prefix /16 but network lan is 10.77.1.0/24",
        ),
        (hostvars(a=ns("10.77.0.11", lan("10.77.1.0/24"))), "or is its network/broadcast address"),
        (
            hostvars(a=ns("10.77.0.11", lan("10.77.1.11/24", gateway="10.77.9.1"))),
            "a gateway must be on the NIC's network",
        ),
        (
            hostvars(a=ns("10.77.0.11", lan("10.77.1.11/24", gateway="10.77.1.11"))),
            "is the NIC's own address",
        ),
        (
            hostvars(
                a=ns(
                    "10.77.0.11",
                    lan("10.77.1.11/24", gateway="10.77.1.1"),
                    lan("10.77.1.12/24", "eth1", gateway="10.77.1.1"),
                )
            ),
            "more than one NIC has a gateway (eth0, eth1)",
        ),
        (hostvars(a=ns("10.77.0.11", {"name": "eth0", "network": "lan"})), "lab_interfaces[0] lacks address"),
        (hostvars(a=ns("10.77.0.11", lan("10.77.1.11/24", mtu=9000))), "unknown key(s) mtu"),
        (hostvars(a=ns("10.77.0.11", lab_memory=256)), "lab_memory applies to uml and vm hosts only"),
        (hostvars(a=ns("10.77.0.11", lab_interface=[])), "unknown lab variable lab_interface"),
        (
            hostvars(a={**ns("10.77.0.11"), "lab_kind": "vm", "lab_memory": 64}),
            "lab_memory must be a number of MiB, at least 128",
        ),
        (
            hostvars(a={**ns("10.77.0.11"), "lab_kind": "vm", "lab_disks": "64"}),
            "lab_disks must be a list of disk sizes in MiB",
        ),
        (hostvars(sw=ns("10.77.0.11")), "the name 'sw' is reserved by the lab"),
        (hostvars(Node_1=ns("10.77.0.11")), "host Node_1: the inventory name is the host's hostname"),
        (
            hostvars(a=ns("10.77.0.11"), b=ns("10.77.0.11")),
            "host b mgmt0: address 10.77.0.11 is already used by host a mgmt0",
        ),
        ({"a": ns("10.77.0.11")}, "lab_mgmt_subnet is not set"),
        (
            {
                "a": {**ns("10.77.0.11"), "lab_mgmt_subnet": "10.77.0.0/24"},
                "b": {**ns("10.77.0.12"), "lab_mgmt_subnet": "10.78.0.0/24"},
            },
            "lab_mgmt_subnet differs between lab hosts",
        ),
        (
            {
                "a": {
                    **ns("10.77.0.11"),
                    "lab_mgmt_subnet": "10.77.0.0/24",
                    "lab_networks": {"lan": {"subnet": "10.77.0.0/25"}},
                }
            },
            "network mgmt (10.77.0.0/24) overlaps network lan (10.77.0.0/25)",
        ),
        (
            {"a": {**ns("10.77.0.11"), "lab_mgmt_subnet": "10.77.0.5/24"}},
            "lab_mgmt_subnet: '10.77.0.5/24' is not an IPv4 network",
        ),
        (
            {
                "a": {
                    **ns("10.77.0.11"),
                    "lab_mgmt_subnet": "10.77.0.0/24",
                    "lab_networks": {"mgmt": {"subnet": "10.77.5.0/24"}},
                }
            },
            "the name 'mgmt' is the management network's",
        ),
        ({"a": {"ansible_host": "10.77.0.11"}}, "defines no lab host"),
    ],
)
def test_invalid_topologies_are_refused_with_the_fix(variables, message):
    assert message in error_of(variables)


def test_missing_ansible_inventory_file_is_named():
    with pytest.raises(model.LabError, match="does not exist"):
        inventory.load(FIXTURES / "nonexistent.yml")
