"""What the lab writes and records, without building anything: a host's first-boot files, the
partition rules, the recorded topology. No root needed."""

from pathlib import Path

from hakit_lab import inventory, model, net, nshost, state

LAB = inventory.load(Path(__file__).parent / "inventory" / "hosts.yml")


def test_first_boot_hosts_file_lists_the_lab_hosts_only():
    text = nshost.hosts_file(LAB, LAB.host("ns1"))
    lines = [line.split() for line in text.splitlines() if line and not line.startswith(("#", "::", "ff02"))]
    assert lines[0] == ["127.0.0.1", "localhost"]
    assert ["10.77.1.11", "ns1"] in lines and ["10.77.1.22", "vm2"] in lines
    assert len(lines) == 1 + len(LAB.hosts)


def test_interface_stanza_is_what_the_installer_writes():
    eth0 = LAB.host("ns3").interfaces[0]
    assert nshost.interface_stanza(eth0).splitlines()[1:] == [
        "auto eth0",
        "iface eth0 inet static",
        "    address 10.77.1.13/24",
        "    gateway 10.77.1.254",
    ]


def test_apt_source_goes_where_apt_reads_its_format():
    assert nshost.sources_path("deb http://10.77.0.1:3142/debian bookworm main\n") == "/etc/apt/sources.list"
    assert nshost.sources_path("Types: deb\nURIs: http://x/debian\n").endswith(".sources")


P = model.PREFIX  # link names carry the lab's prefix


def test_partition_drops_both_directions_on_every_shared_network_only():
    rules = net.partition_rules(LAB, LAB.host("ns1"), LAB.host("ns2"))
    assert rules == [
        f'iifname "{P}1n0" oifname "{P}2n0" drop comment "partition ns1 ns2"',
        f'iifname "{P}2n0" oifname "{P}1n0" drop comment "partition ns1 ns2"',
        f'iifname "{P}1n1" oifname "{P}2n1" drop comment "partition ns1 ns2"',
        f'iifname "{P}2n1" oifname "{P}1n1" drop comment "partition ns1 ns2"',
    ]
    # ns3 is on lan only: one network shared with ns1
    assert len(net.partition_rules(LAB, LAB.host("ns1"), LAB.host("ns3"))) == 2
    assert all("nm" not in r for r in rules), "the management network is never partitioned"


def test_switch_ports_are_named_by_host_index_and_nic():
    assert [port for _, port in net.ports(LAB.host("vm1"))] == [f"{P}9n0", f"{P}9n1", f"{P}9nm"]


def test_recorded_lab_reads_back_equal():
    assert state.lab_from_dict(state.lab_to_dict(LAB)) == LAB
