"""Seed 002 on the lab: requests through the NAT VIP reach both real servers behind the director
(by weight 3:1), requests through the TUN VIP reach the tunnelled real server, which answers the
client directly from the VIP on tunl0."""

import collections
import json
import os

import testinfra

INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
NAT_VIP, TUN_VIP = "10.79.3.100", "10.79.3.101"
SCRIPT = """
import collections, json, sys, urllib.request
c = collections.Counter()
for _ in range(int(sys.argv[2])):
    try:
        body = urllib.request.urlopen("http://%s/hostname.html" % sys.argv[1], timeout=3).read().decode()
        c[body.split("served-by", 1)[1].split("<")[0].strip()] += 1
    except OSError as exc:
        c[type(exc).__name__] += 1
print(json.dumps(dict(c)))
"""


def lab_host(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)


def requests(vip, count):
    out = lab_host("client").check_output(f"python3 - {vip} {count} <<'EOF'\n{SCRIPT}EOF")
    return collections.Counter(json.loads(out))


def test_nat_requests_reach_both_real_servers_by_weight():
    seen = requests(NAT_VIP, 100)
    print(f"100 requests through the NAT VIP {NAT_VIP}: {dict(seen)}")
    assert set(seen) == {"nat1", "nat2"}, seen
    assert abs(seen["nat1"] - 75) <= 10, seen


def test_tun_requests_reach_the_tunnelled_real_server():
    seen = requests(TUN_VIP, 20)
    assert seen == {"tun1": 20}, seen


def test_the_director_forwards_by_masq_and_ipip_and_masquerades():
    director = lab_host("director")
    rules = director.check_output("ipvsadm -Sn")
    assert "-r 10.79.4.21:80 -m -w 3" in rules and "-r 10.79.4.22:80 -m -w 1" in rules, rules
    assert "-r 10.79.3.31:80 -i -w 1" in rules, rules
    # The lab's uml director masquerades with iptables-legacy (its kernel has no nftables ip family).
    chain = director.check_output("iptables-legacy -w -t nat -S HAKIT-LVS-MASQ")
    assert "-s 10.79.4.21/32 -o eth0 -j MASQUERADE" in chain and "-s 10.79.4.22/32" in chain, chain
    assert "-j HAKIT-LVS-MASQ" in director.check_output("iptables-legacy -w -t nat -S POSTROUTING")
    # The init script serves sysvinit (the uml director) and systemd (through its unit) alike.
    assert director.run("service hakit-lvs-masquerade status").rc == 0
    for service in ("hakit-lvs-masquerade", "ldirectord"):
        assert enabled_at_boot(director, service), service


def enabled_at_boot(host, service):
    if host.file("/run/systemd/system").is_directory:
        return host.run(f"systemctl is-enabled {service}").stdout.strip() == "enabled"
    return host.run(f"ls /etc/rc2.d/S*{service}").rc == 0


def test_a_nat_real_servers_own_connection_leaves_as_the_director():
    """nat1 connects to the client, which has no route to 10.79.4.0/24: the connection works only
    masqueraded, and the client sees the director's LAN address."""
    client = lab_host("client")
    client.check_output(
        "rm -f /tmp/hakit-peer; nohup timeout 30 python3 -c \"import socket; s = socket.create_server(('', 9777)); "
        "c, a = s.accept(); open('/tmp/hakit-peer', 'w').write(a[0])\" >/dev/null 2>&1 &"
    )
    lab_host("nat1").check_output(
        'python3 -c "import socket, time\n'
        "for _ in range(50):\n"
        "    try:\n"
        "        socket.create_connection(('10.79.3.50', 9777), timeout=3).close(); break\n"
        "    except OSError: time.sleep(0.2)\n"
        "else: raise SystemExit('no connection to the client')\""
    )
    peer = client.check_output(
        "for i in $(seq 50); do [ -s /tmp/hakit-peer ] && break; sleep 0.2; done; cat /tmp/hakit-peer"
    )
    assert peer == "10.79.3.11", peer


def test_the_real_servers_routes_and_tunnel():
    for name in ("nat1", "nat2"):
        assert "default via 10.79.4.1" in lab_host(name).check_output("ip route show default")
    tun1 = lab_host("tun1")
    assert f"{TUN_VIP}/32" in tun1.check_output("ip -o -4 addr show dev tunl0")
    assert tun1.check_output("sysctl -n net.ipv4.conf.tunl0.rp_filter") in ("0", "2")
