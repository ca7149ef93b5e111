"""The lab's network: one switch namespace holding a bridge per network, veths to the hosts.

    root namespace     hkl-ctl (controller, first address of the management subnet) - the only
                       thing the lab puts there
    hkl-sw             hklbr0 (management), hklbr<N> per topology network; switch-side ends of the
                       hosts' NICs (Host.switch_link) and of the controller's veth; nftables bridge
                       tables for the guard and for faults
    hkl-<host>         an ns host's NICs: eth0.. (topology), mgmt0 (management)

The bridges forward at once (no STP, forward delay 0) and flood multicast (no snooping), like a
plain switch. IPv6 is off on every lab link (loopback keeps ::1): the lab speaks IPv4, and IPv6
DAD/router solicitations would only add noise to captures and timings.

An ns host's management NIC is configured here (address, up). Its topology NICs are created
down and without addresses: the host's own boot brings them up from /etc/network/interfaces
(ifupdown), as a real server does.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from . import model
from .sysutil import netns_exists, netns_sysctl, run

SWITCH_NS = model.SWITCH_NS
CONTROLLER_PEER = f"{model.PREFIX}-ctl-sw"  # switch-side end of the controller's veth
GUARD_TABLE = f"{model.PREFIX}_guard"
FAULT_TABLE = f"{model.PREFIX}_faults"
# Links made after this is set get no IPv6; a namespace's own lo keeps ::1, as on any host.
NO_IPV6 = {"net.ipv6.conf.default.disable_ipv6": "1"}


def ip_batch(commands: Iterable[str], netns: str | None = None, force: bool = False) -> None:
    """Run `ip` commands in one process (`ip -batch`), in netns if given."""
    text = "".join(f"{c}\n" for c in commands)
    if not text:
        return
    argv = ["ip"] + (["-n", netns] if netns else []) + (["-force"] if force else []) + ["-batch", "-"]
    run(argv, check=not force, input=text)


def links(netns: str | None = None) -> dict[str, dict]:
    """Links of a namespace by name, as `ip -j link show` reports them."""
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-j", "link", "show"]
    proc = run(argv, check=False)
    if proc.returncode != 0:
        return {}
    return {link["ifname"]: link for link in json.loads(proc.stdout or "[]")}


def _new_netns(name: str) -> None:
    run(["ip", "netns", "add", name])
    netns_sysctl(name, NO_IPV6)


def _port(host: model.Host, nic: int | str) -> str:
    return host.switch_link(nic)


def ports(host: model.Host) -> list[tuple[model.Interface, str]]:
    """(NIC, switch-side port) for every NIC of the host, management last."""
    return [
        (nic, _port(host, i if nic.network != model.MGMT_NETWORK else "m"))
        for i, nic in enumerate(host.all_interfaces)
    ]


def bridge_of(lab: model.Lab, network: str) -> str:
    return lab.mgmt.bridge if network == model.MGMT_NETWORK else lab.networks[network].bridge


# -- the switch and the controller ---------------------------------------------------------------


def refuse_taken_subnet(lab: model.Lab) -> None:
    """Another link (another lab's controller, or a real network) already routes the mgmt subnet."""
    proc = run(["ip", "-j", "-4", "route", "show", "table", "all"], check=False)
    for route in json.loads(proc.stdout or "[]"):
        dst = route.get("dst", "")
        if "/" not in dst and dst != "default":
            dst += "/32"
        if dst == "default" or route.get("dev") == model.CONTROLLER_LINK:
            continue
        try:
            other = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        if route.get("type", "unicast") in ("unicast",) and other.overlaps(lab.mgmt.subnet):
            raise model.LabError(
                f"lab_mgmt_subnet {lab.mgmt.subnet} overlaps {other} on {route.get('dev')} in this machine's "
                "routing table (another lab, or a real network); give the inventory another lab_mgmt_subnet, "
                f"or use that lab's HAKIT_LAB_PREFIX (this lab's is {model.PREFIX!r})"
            )


def ensure_switch(lab: model.Lab) -> None:
    """Switch namespace, bridges, controller link and guard; creates only what is missing."""
    if model.CONTROLLER_LINK not in links():
        refuse_taken_subnet(lab)
    if not netns_exists(SWITCH_NS):
        _new_netns(SWITCH_NS)
    present = links(SWITCH_NS)
    commands = [] if present.get("lo", {}).get("operstate") == "UNKNOWN" else ["link set lo up"]
    for network in [lab.mgmt, *lab.networks.values()]:
        if network.bridge not in present:
            commands += [
                f"link add {network.bridge} type bridge forward_delay 0 stp_state 0 mcast_snooping 0",
                f"link set {network.bridge} up",
            ]
    ip_batch(commands, SWITCH_NS)

    if model.CONTROLLER_LINK not in links():
        if CONTROLLER_PEER in present:  # half of a pair left by a crash
            ip_batch([f"link del {CONTROLLER_PEER}"], SWITCH_NS)
        mac = model.mac_for(str(lab.controller.ip))
        ip_batch(
            [
                f"link add {model.CONTROLLER_LINK} address {mac} type veth peer name {CONTROLLER_PEER} netns {SWITCH_NS}",
            ]
        )
        # IPv6 off on the controller's lab link only; nothing else in the root namespace changes.
        with open(f"/proc/sys/net/ipv6/conf/{model.CONTROLLER_LINK}/disable_ipv6", "w") as f:
            f.write("1\n")
        ip_batch(
            [
                f"addr add {lab.controller} brd + dev {model.CONTROLLER_LINK}",
                f"link set {model.CONTROLLER_LINK} up",
            ]
        )
        ip_batch([f"link set {CONTROLLER_PEER} master {lab.mgmt.bridge} up"], SWITCH_NS)
    _ensure_guard(lab)


def _ensure_guard(lab: model.Lab) -> None:
    """Only frames for the controller's own address reach it from the lab (ARP included).

    The controller never forwards lab traffic anywhere: even a host that routes via the
    controller's address gets nothing out of the machine.
    """
    rules = f"""
table bridge {GUARD_TABLE} {{
  chain forward {{
    type filter hook forward priority 0; policy accept;
    oifname "{CONTROLLER_PEER}" ether type ip ip daddr != {lab.controller.ip} drop
  }}
}}
"""
    run(
        ["ip", "netns", "exec", SWITCH_NS, "nft", "-f", "-"],
        input=f"add table bridge {GUARD_TABLE}\ndelete table bridge {GUARD_TABLE}\n{rules}",
    )


# -- ns hosts ------------------------------------------------------------------------------------


def add_host(lab: model.Lab, host: model.Host, links_down: set[tuple[str, str]] = frozenset()) -> None:
    """The host's netns with its NICs on the switch; management NIC configured, topology NICs down.

    Pitfall: a host's old switch ports must be gone first (see delete_host).
    """
    _new_netns(host.netns)
    switch_side: list[str] = []
    host_side = ["link set lo up"]
    for nic, port in ports(host):
        switch_side.append(
            f"link add {port} type veth peer name {nic.name} netns {host.netns} address {nic.mac}"
        )
        state = "down" if (host.name, nic.name) in links_down else "up"
        switch_side.append(f"link set {port} master {bridge_of(lab, nic.network)} {state}")
    mgmt = host.all_interfaces[-1]
    host_side += [f"addr add {mgmt.address} brd + dev {mgmt.name}", f"link set {mgmt.name} up"]
    ip_batch(switch_side, SWITCH_NS)
    ip_batch(host_side, host.netns)


def delete_host(host: model.Host) -> None:
    """Remove the host's network. Switch ports first: deleting them is synchronous, while a netns
    is torn down asynchronously and would leave its veths (and their names) behind for a while."""
    if netns_exists(SWITCH_NS):
        present = links(SWITCH_NS)
        ip_batch([f"link del {port}" for _, port in ports(host) if port in present], SWITCH_NS, force=True)
    if netns_exists(host.netns):
        run(["ip", "netns", "del", host.netns], check=False)


def host_ports_gone(host: model.Host) -> bool:
    """No port of the host is on the switch with a carrier (its addresses are off the segment)."""
    present = links(SWITCH_NS)
    return all(
        port not in present or "LOWER_UP" not in present[port].get("flags", []) for _, port in ports(host)
    )


# -- links and partitions ------------------------------------------------------------------------


def set_port(host: model.Host, ifname: str, up: bool) -> None:
    """Bring the switch side of a topology NIC up or down: the host sees its carrier come or go."""
    port = _port(host, nic_index(host, ifname))
    ip_batch([f"link set {port} {'up' if up else 'down'}"], SWITCH_NS)


def nic_index(host: model.Host, ifname: str) -> int:
    for i, nic in enumerate(host.interfaces):
        if nic.name == ifname:
            return i
    names = ", ".join(n.name for n in host.interfaces) or "none"
    raise model.LabError(
        f"host {host.name} has no topology NIC {ifname!r} (it has: {names}); the management NIC is never faulted"
    )


def carrier(netns: str, ifname: str) -> bool | None:
    """Whether the NIC inside netns has a carrier; None if it is administratively down."""
    link = links(netns).get(ifname)
    if link is None:
        raise model.LabError(f"no link {ifname} in namespace {netns}")
    flags = link.get("flags", [])
    if "UP" not in flags:
        return None
    return "LOWER_UP" in flags


def partition_rules(lab: model.Lab, a: model.Host, b: model.Host) -> list[str]:
    """nft rules dropping every frame between a's and b's ports on each topology network both join."""
    rules = []
    for i, nic_a in enumerate(a.interfaces):
        for j, nic_b in enumerate(b.interfaces):
            if nic_a.network == nic_b.network:
                pa, pb = _port(a, i), _port(b, j)
                tag = f"partition {a.name} {b.name}"
                rules.append(f'iifname "{pa}" oifname "{pb}" drop comment "{tag}"')
                rules.append(f'iifname "{pb}" oifname "{pa}" drop comment "{tag}"')
    return rules


def partition(lab: model.Lab, a: model.Host, b: model.Host) -> int:
    """Cut a from b on every topology network they share; returns the number of rules in place.

    Bridge-family nftables in the switch namespace: the forward hook sees each frame once per
    output port (flooded ARP and broadcasts included), so a and b stop hearing each other while
    both keep every other neighbour. The management network is never partitioned.
    """
    rules = partition_rules(lab, a, b)
    if not rules:
        raise model.LabError(f"hosts {a.name} and {b.name} share no topology network: nothing to partition")
    existing = partitions()
    if (a.name, b.name) in existing or (b.name, a.name) in existing:
        return len(rules)
    script = f"""
table bridge {FAULT_TABLE} {{
  chain forward {{
    type filter hook forward priority -10; policy accept;
  }}
}}
""" + "".join(f"add rule bridge {FAULT_TABLE} forward {r}\n" for r in rules)
    run(["ip", "netns", "exec", SWITCH_NS, "nft", "-f", "-"], input=script)
    return len(rules)


def partitions() -> set[tuple[str, str]]:
    """Host pairs currently partitioned (read back from the ruleset)."""
    proc = run(
        ["ip", "netns", "exec", SWITCH_NS, "nft", "-j", "list", "table", "bridge", FAULT_TABLE], check=False
    )
    if proc.returncode != 0:
        return set()
    pairs = set()
    for item in json.loads(proc.stdout).get("nftables", []):
        comment = item.get("rule", {}).get("comment", "")
        if comment.startswith("partition "):
            _, a, b = comment.split()
            pairs.add((a, b))
    return pairs


def heal_partitions() -> None:
    if netns_exists(SWITCH_NS):
        run(
            ["ip", "netns", "exec", SWITCH_NS, "nft", "-f", "-"],
            input=f"add table bridge {FAULT_TABLE}\ndelete table bridge {FAULT_TABLE}\n",
        )


# -- teardown ------------------------------------------------------------------------------------


def lab_netns() -> list[str]:
    """Every network namespace named with the lab's prefix."""
    proc = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(f"{model.PREFIX}-")]


def teardown() -> list[str]:
    """Remove every lab namespace and link, recorded or not; returns what was removed.

    Order: the controller's link (root namespace), then every port in the switch (synchronous),
    then host namespaces, then the switch with its bridges.
    """
    removed = []
    root_links = [n for n in links() if n.startswith(f"{model.PREFIX}-")]
    ip_batch([f"link del {n}" for n in root_links], force=True)
    removed += root_links
    if netns_exists(SWITCH_NS):
        doomed = [n for n in links(SWITCH_NS) if n != "lo" and not n.startswith(f"{model.PREFIX}br")]
        ip_batch([f"link del {n}" for n in doomed], SWITCH_NS, force=True)
    for name in sorted(lab_netns(), key=lambda n: n == SWITCH_NS):
        run(["ip", "netns", "del", name], check=False)
        removed.append(f"netns {name}")
    return removed
