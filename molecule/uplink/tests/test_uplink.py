"""The converged dual-uplink pair: node1 holds the resources and runs the uplink daemon, its
traffic leaves via router1, and BIND and the dyndns2 endpoint hold uplink 1's public address."""

import json
import os

import pytest
import testinfra

# Molecule's inventory directory holds its own file and the link to the lab's uplink inventory.
INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
ENDPOINT = "http://10.80.100.1:8245"
UPLINK1, UPLINK2 = "10.80.11.2", "10.80.12.2"
GET = "python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())' %s"


def lab_host(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)


@pytest.fixture(scope="module")
def node1():
    return lab_host("node1")


@pytest.fixture(scope="module")
def node2():
    return lab_host("node2")


@pytest.fixture(scope="module")
def internet():
    return lab_host("internet")


def test_the_daemon_runs_only_where_the_resources_are(node1, node2):
    # 'local' when both nodes of a new pair started together, 'all' when node1 started alone and
    # took its absent peer's (empty) share too.
    assert node1.check_output("cl_status rscstatus") in ("all", "local")
    assert node1.check_output("/etc/init.d/hakit-uplink status") == "hakit-uplink is running"
    standby = node2.run("/etc/init.d/hakit-uplink status")
    why = node2.run(
        "cl_status rscstatus; ip -4 -o addr show dev eth0; cat /var/log/hakit-uplink.log; tail -40 /var/log/ha-log"
    )
    assert standby.rc == 3, f"the daemon runs on the standby node2: {why.stdout}"
    state = json.loads(node1.file("/run/hakit-uplink.json").content_string)
    assert (state["active"], state["switches"]) == ("router1", 0)
    assert state["uplinks"]["router1"]["reachable"] and state["uplinks"]["router2"]["reachable"]


@pytest.mark.parametrize("name", ["node1", "node2"])
def test_traffic_leaves_via_router1(name):
    assert lab_host(name).check_output(GET, f"{ENDPOINT}/whoami") == UPLINK1


def test_the_a_record_holds_uplink_1s_address(internet):
    assert internet.check_output("dig +short @10.80.100.1 www.uplink.test A") == UPLINK1
    assert internet.check_output(GET, f"{ENDPOINT}/record/www.uplink.test") == UPLINK1


def test_credentials_stay_in_0600_files_and_out_of_process_arguments(node1):
    for path in ("/etc/hakit-uplink/secrets.json", "/etc/hakit-uplink/rfc2136-0.key"):
        f = node1.file(path)
        assert (f.mode, f.user) == (0o600, "root")
    password = json.loads(node1.file("/etc/hakit-uplink/secrets.json").content_string)["dyndns2"][0]
    tsig = node1.file("/etc/hakit-uplink/rfc2136-0.key").content_string.split('secret "')[1].split('"')[0]
    for secret in (password, tsig):
        assert len(secret) >= 20
        assert secret not in node1.check_output("ps -eo args")
        assert secret not in node1.file("/var/log/hakit-uplink.log").content_string
        assert secret not in node1.file("/etc/hakit-uplink/uplink.json").content_string


def test_uplink_check_probes_router2_although_the_default_route_is_router1(node1):
    assert node1.check_output("ip route show default").startswith("default via 10.80.1.1 dev eth0")
    via2 = node1.ansible(
        "hakit.cluster.uplink_check",
        "interface=eth1 gateway=10.80.2.1 targets=10.80.100.1,10.80.100.2 count=2 timeout=0.5",
        check=True,
    )
    assert via2["reachable"] and via2["reachable_targets"] == 2 and not via2["changed"]
    assert via2["gateway_mac"] == "02:00:0a:50:02:01"
    assert via2["targets"][0]["received"] == 2 and via2["targets"][0]["rtt_avg_ms"] > 0
    # A gateway that is not there: nothing leaves, and the module says why.
    wrong = node1.ansible(
        "hakit.cluster.uplink_check",
        "interface=eth1 gateway=10.80.2.99 targets=10.80.100.1 timeout=0.3",
        check=True,
    )
    assert not wrong["reachable"] and wrong["error"] == "gateway 10.80.2.99 does not answer ARP on eth1"
