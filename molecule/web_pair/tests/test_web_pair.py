"""The converged web pair: node1 serves the service address, node2 stands by, seen from the client
and from heartbeat's own tools on each node."""

import os

import pytest
import testinfra

# Molecule's inventory directory holds its own file and the link to the lab's web pair inventory.
INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
VIP = "10.77.1.100"
GATEWAY = "10.77.1.1"
NODES = {"node1": "node2", "node2": "node1"}
GET = "python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' %s"


def lab_host(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)


@pytest.fixture(scope="module")
def client():
    return lab_host("client")


@pytest.fixture(scope="module", params=sorted(NODES))
def node(request):
    return request.param, lab_host(request.param)


@pytest.mark.parametrize("page", ["index.html", "hostname.html"])
def test_the_client_gets_node1s_pages_through_the_service_address(client, page):
    body = client.check_output(GET, f"http://{VIP}/{page}")
    assert "served-by node1" in body


def test_each_node_serves_its_own_name_only_where_apache_runs(client):
    # Heartbeat starts Apache on the active node only; the standby refuses connections.
    assert "served-by node1" in client.check_output(GET, "http://10.77.1.11/hostname.html")
    assert client.run(GET, "http://10.77.1.12/hostname.html").rc != 0


def test_the_active_node_holds_the_address_and_apache(node):
    name, host = node
    eth0 = host.check_output("ip -o -4 addr show dev eth0")
    active = name == "node1"
    assert (f" {VIP}/24 " in eth0) is active
    assert host.process.filter(comm="apache2") if active else not host.process.filter(comm="apache2")
    # Both nodes of a new pair start together and report 'local' (their own share; the standby's
    # is empty); a node that started alone took the absent peer's share too ('all') and its peer
    # then holds 'none'. Who holds the group is what the address and service checks above show.
    assert host.check_output("cl_status rscstatus") in (("all", "local") if active else ("none", "local"))


def test_heartbeat_sees_the_peer_on_both_links(node):
    name, host = node
    peer = NODES[name]
    assert host.check_output("cl_status hbstatus").startswith("Heartbeat is running")
    assert host.check_output(f"cl_status nodestatus {peer}") == "active"
    for link in ("eth0", "eth1"):
        assert host.check_output(f"cl_status hblinkstatus {peer} {link}") == "up"


def test_ipfail_runs_and_the_ping_node_answers(node):
    _, host = node
    assert host.process.filter(comm="ipfail")
    assert host.check_output(f"cl_status nodestatus {GATEWAY}") == "ping"
    assert host.run(f"ping -n -q -c1 -W1 {GATEWAY}").rc == 0


def test_the_configuration_files(node):
    name, host = node
    authkeys = host.file("/etc/ha.d/authkeys")
    assert (authkeys.user, authkeys.group, authkeys.mode) == ("root", "root", 0o600)
    assert authkeys.contains("^1 sha1 ")
    hacf = host.file("/etc/ha.d/ha.cf").content_string
    for line in ("keepalive 100ms", "deadtime 500ms", "auto_failback off", "crm off", f"ping {GATEWAY}"):
        assert f"\n{line}\n" in hacf
    haresources = [
        x for x in host.file("/etc/ha.d/haresources").content_string.splitlines() if x[:1] not in "#"
    ]
    assert haresources == [f"node1 hakit-IPaddr2::{VIP}/24/eth0 apache2"]
    assert host.file("/etc/hostname").content_string.strip() == name
