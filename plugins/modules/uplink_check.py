#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hakit.cluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: uplink_check
short_description: Probe targets through one given uplink (interface and gateway) with ICMP echo
version_added: 0.1.0
description:
  - Sends ICMP echo requests to each target through the uplink named by O(interface) and
    O(gateway), and reports reachability, loss and round-trip times per target and overall.
  - The probe is pinned to the uplink at layer 2. The module asks for the gateway's MAC address
    with an ARP request on O(interface), then writes each echo request as an Ethernet frame
    addressed to that MAC on a packet socket bound to O(interface). The routing tables are never
    consulted, so the probe leaves through that uplink whatever the main table, policy rules or a
    failover did to the routes. Replies come back to the interface's own address, where the same
    socket reads them.
  - Nothing on the host changes (no route, rule or address is added), so the module always
    reports C(changed=false) and runs the same in check mode.
  - The failover daemon of the P(hakit.cluster.uplink_failover#role) role probes the same way.
author:
  - hakit.cluster developers (@hakit)
attributes:
  check_mode:
    description: Probing changes nothing; the module probes in check mode too.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  platform:
    description: Target operating systems.
    support: full
    platforms: posix
requirements:
  - Linux and root (packet sockets need C(CAP_NET_RAW)).
  - The gateway masquerades (or routes back) the probes, so replies return to O(interface).
options:
  interface:
    description:
      - The interface the uplink's gateway is on, for example C(eth0). Its primary IPv4 address
        is the probes' source unless O(source) is given.
    type: str
    required: true
  gateway:
    description:
      - The uplink's router, on O(interface)'s subnet. Probes are addressed to its MAC address.
    type: str
    required: true
  targets:
    description:
      - IPv4 addresses beyond the gateway to probe. Do not list the gateway itself, which answers
        while its own uplink is dead.
    type: list
    elements: str
    required: true
  min_targets:
    description:
      - How many targets must answer for the uplink to count as reachable (k of n), so one dead
        target is not a dead uplink.
    type: int
    default: 1
  count:
    description: Echo requests sent to each target.
    type: int
    default: 3
  interval:
    description: Seconds between two requests to the same target.
    type: float
    default: 0.2
  timeout:
    description: Seconds to wait for each reply (also for the gateway's ARP reply).
    type: float
    default: 1.0
  source:
    description: Source address of the probes; the interface's primary IPv4 address by default.
    type: str
  fail_unreachable:
    description: Fail the task when the uplink is not reachable (fewer than O(min_targets) answer).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Probe the Internet through router 1, whatever the default route is now
  hakit.cluster.uplink_check:
    interface: eth0
    gateway: 192.168.2.1
    targets: [9.9.9.9, 1.1.1.1]
    min_targets: 1
  register: uplink1

- name: Fail unless router 2's uplink works before moving traffic to it
  hakit.cluster.uplink_check:
    interface: eth1
    gateway: 192.168.2.2
    targets: [9.9.9.9, 1.1.1.1]
    count: 5
    fail_unreachable: true
"""

RETURN = r"""
reachable:
  description: Whether at least O(min_targets) targets answered.
  returned: always
  type: bool
reachable_targets:
  description: How many targets answered at least once.
  returned: always
  type: int
loss_percent:
  description: Share of all echo requests that got no reply.
  returned: always
  type: float
rtt_avg_ms:
  description: Mean round-trip time over all replies, in milliseconds; null without replies.
  returned: always
  type: float
gateway_mac:
  description: The gateway's MAC address the probes were sent to.
  returned: when the gateway answered ARP
  type: str
error:
  description: Why no probe could be sent (interface without address, gateway not answering ARP).
  returned: when no probe was sent
  type: str
targets:
  description: One entry per target.
  returned: always
  type: list
  elements: dict
  contains:
    address: {description: The target., type: str, returned: always}
    sent: {description: Requests sent., type: int, returned: always}
    received: {description: Replies received., type: int, returned: always}
    loss_percent: {description: Share of requests without reply., type: float, returned: always}
    reachable: {description: At least one reply came back., type: bool, returned: always}
    rtt_min_ms:
      description: Smallest round trip in milliseconds; null without replies.
      type: float
      returned: always
    rtt_avg_ms:
      description: Mean round trip in milliseconds; null without replies.
      type: float
      returned: always
    rtt_max_ms:
      description: Largest round trip in milliseconds; null without replies.
      type: float
      returned: always
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hakit.cluster.plugins.module_utils._uplink import UplinkProber


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interface=dict(type="str", required=True),
            gateway=dict(type="str", required=True),
            targets=dict(type="list", elements="str", required=True),
            min_targets=dict(type="int", default=1),
            count=dict(type="int", default=3),
            interval=dict(type="float", default=0.2),
            timeout=dict(type="float", default=1.0),
            source=dict(type="str"),
            fail_unreachable=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for key in ("gateway", "source"):
        if p[key] is not None:
            try:
                ipaddress.IPv4Address(p[key])
            except ValueError:
                module.fail_json(msg="%s %r is not an IPv4 address" % (key, p[key]))
    bad = [t for t in p["targets"] if not _is_ipv4(t)]
    if not p["targets"] or bad:
        module.fail_json(msg="targets must be a non-empty list of IPv4 addresses; not addresses: %s" % bad)
    if not 1 <= p["min_targets"] <= len(p["targets"]):
        module.fail_json(
            msg="min_targets must be between 1 and the number of targets (%d)" % len(p["targets"])
        )
    if p["count"] < 1 or p["timeout"] <= 0 or p["interval"] < 0:
        module.fail_json(msg="count must be at least 1, timeout above 0 and interval not negative")
    prober = UplinkProber(p["interface"], p["gateway"], source=p["source"])
    try:
        result = prober.probe(
            p["targets"],
            count=p["count"],
            timeout=p["timeout"],
            interval=p["interval"],
            min_targets=p["min_targets"],
        )
    except OSError as e:
        module.fail_json(msg="cannot probe through %s via %s: %s" % (p["interface"], p["gateway"], e))
    result.pop("min_targets")
    if p["fail_unreachable"] and not result["reachable"]:
        module.fail_json(
            msg="uplink via %s on %s unreachable: %d of %d targets answered (%s needed)%s"
            % (
                p["gateway"],
                p["interface"],
                result["reachable_targets"],
                len(p["targets"]),
                p["min_targets"],
                ": " + result["error"] if result.get("error") else "",
            ),
            changed=False,
            **result,
        )
    module.exit_json(changed=False, **result)


def _is_ipv4(value):
    try:
        ipaddress.IPv4Address(value)
        return True
    except ValueError:
        return False


if __name__ == "__main__":
    main()
