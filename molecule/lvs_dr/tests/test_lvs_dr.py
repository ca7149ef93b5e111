"""The converged LVS-DR pair (seed 003): loadb1 holds the VIP and runs ldirectord and the sync
master, loadb2 stands by with the backup sync daemon, the real servers answer for the VIP on lo:0
without answering ARP for it, and the client's requests through the VIP split by the weights."""

import collections
import json
import os
import re

import pytest
import testinfra

INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
VIP = "10.79.1.100"
REALS = {"web1": ("10.79.1.21", 2), "web2": ("10.79.1.22", 1)}
REQUESTS = 120
GET = "python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' %s"


def lab_host(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)


@pytest.fixture(scope="module", params=["loadb1", "loadb2"])
def director(request):
    return request.param, lab_host(request.param)


@pytest.fixture(scope="module", params=sorted(REALS))
def real(request):
    return request.param, lab_host(request.param)


def test_only_the_active_director_holds_the_vip_and_runs_ldirectord(director):
    name, host = director
    active = name == "loadb1"
    assert (f" {VIP}/24 " in host.check_output("ip -o -4 addr show dev eth0")) is active
    status = host.run("ldirectord ldirectord.cf status")
    assert (status.rc == 0) is active, status.stdout + status.stderr
    # Both nodes of a new pair start together and report 'local' (their own share; the standby's
    # is empty); a node that started alone took the absent peer's share too ('all') and its peer
    # then holds 'none'. Who holds the group is what the address and service checks above show.
    assert host.check_output("cl_status rscstatus") in (("all", "local") if active else ("none", "local"))


def test_ldirectord_is_started_by_heartbeat_not_at_boot(director):
    _, host = director
    assert host.run("systemctl is-enabled ldirectord").stdout.strip() == "disabled"
    assert host.check_output("systemctl is-enabled heartbeat") == "enabled"
    haresources = [
        x for x in host.file("/etc/ha.d/haresources").content_string.splitlines() if x[:1] not in "#"
    ]
    assert haresources == [
        f"loadb1 ldirectord::ldirectord.cf LVSSyncDaemonSwap::master hakit-IPaddr2::{VIP}/24/eth0/10.79.1.255"
    ]


def test_the_sync_daemons(director):
    name, host = director
    daemons = host.check_output("ipvsadm -L --daemon")
    assert "backup sync daemon (mcast=eth1, syncid=0," in daemons
    assert ("master sync daemon" in daemons) is (name == "loadb1")
    expected = "master running" if name == "loadb1" else "master stopped"
    assert host.check_output("/etc/ha.d/resource.d/LVSSyncDaemonSwap master status") == expected


def test_ip_vs_is_loaded_at_boot_with_forwarding_and_quiescent_sysctls(director):
    _, host = director
    assert "ip_vs_wrr" in host.file("/etc/modules-load.d/hakit-lvs.conf").content_string
    assert host.file("/sys/module/ip_vs_wrr").is_directory
    for key in (
        "net.ipv4.ip_forward",
        "net.ipv4.vs.expire_nodest_conn",
        "net.ipv4.vs.expire_quiescent_template",
    ):
        assert host.check_output(f"sysctl -n {key}") == "1", key


def test_the_active_table_lists_both_real_servers_by_weight():
    rules = lab_host("loadb1").check_output("ipvsadm -Sn")
    assert f"-A -t {VIP}:80 -s wrr" in rules
    for address, weight in REALS.values():
        assert re.search(rf"-a -t {VIP}:80 -r {address}:80 -g -w {weight}\b", rules), rules
    assert "127.0.0.1" not in rules  # the fallback only while every real server is down


def test_real_servers_answer_for_the_vip_without_announcing_it(real):
    _, host = real
    assert f"{VIP}/32" in host.check_output("ip -o -4 addr show dev lo")
    for key, value in (
        ("all.arp_ignore", "1"),
        ("eth0.arp_ignore", "1"),
        ("all.arp_announce", "2"),
        ("eth0.arp_announce", "2"),
    ):
        assert host.check_output(f"sysctl -n net.ipv4.conf.{key}") == value, key
    assert "Test Page" in host.check_output(GET, "http://127.0.0.1/ldirector.html")


def test_the_client_reaches_the_director_for_the_vip():
    client = lab_host("client")
    client.run(f"ping -c1 -W1 {VIP}")
    neighbour = client.check_output(f"ip neigh show {VIP}")
    mac = lab_host("loadb1").check_output("cat /sys/class/net/eth0/address")
    assert mac in neighbour, f"the VIP resolves to {neighbour}, not loadb1's {mac}"


def test_requests_through_the_vip_split_by_weight():
    client = lab_host("client")
    script = (
        "import collections, json, urllib.request\n"
        "c = collections.Counter()\n"
        f"for _ in range({REQUESTS}):\n"
        f"    body = urllib.request.urlopen('http://{VIP}/hostname.html', timeout=5).read().decode()\n"
        "    c[body.split('served-by', 1)[1].split('<')[0].strip()] += 1\n"
        "print(json.dumps(dict(c)))\n"
    )
    seen = collections.Counter(json.loads(client.check_output(f"python3 - <<'EOF'\n{script}EOF")))
    total = sum(w for _, w in REALS.values())
    print(f"{REQUESTS} requests through {VIP}: {dict(seen)}")
    assert sum(seen.values()) == REQUESTS and set(seen) == set(REALS), seen
    for name, (_, weight) in REALS.items():
        expected = REQUESTS * weight / total
        assert abs(seen[name] - expected) <= 0.1 * REQUESTS, (
            f"{name}: {seen[name]} of {REQUESTS}, expected about {expected:.0f}"
        )
