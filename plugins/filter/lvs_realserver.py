# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: lvs_realserver
short_description: Interfaces, sysctls and mistakes of an LVS real server's settings
version_added: 0.1.0
description:
  - Takes the lvs_realserver role's settings (its variables without the C(lvs_realserver_) prefix,
    plus C(interfaces), the host's C(network_interfaces)) and returns what the network role writes
    for the forwarding mode. DR, the VIP /32 on C(lo:0) with C(pre-up sysctl -p) and
    arp_ignore=1/arp_announce=2 on C(all) and each ARPing NIC. TUN, the VIP on C(tunl0) with the same
    ARP settings and rp_filter relaxed. NAT, the LAN stanza's gateway set to the director.
options:
  _input:
    description: The settings.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Show the interfaces a DR real server gets
  ansible.builtin.debug:
    msg: "{{ {'mode': 'dr', 'vips': ['192.168.1.105'], 'arp_interfaces': ['eth0']} | hakit.cluster.lvs_realserver }}"
"""

RETURN = r"""
_value:
  description: Keys C(problems) (list), C(interfaces) (network_interfaces to write), C(arp_ignore), C(arp_announce), C(sysctl) (dicts).
  type: dict
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._lvs import (
    realserver_network,
    realserver_problems,
    realserver_sysctls,
)


def lvs_realserver(settings):
    problems = realserver_problems(settings)
    result = {"problems": problems, "interfaces": [], "arp_ignore": {}, "arp_announce": {}, "sysctl": {}}
    if not problems:
        result["interfaces"] = realserver_network(settings)
        result.update(realserver_sysctls(settings, settings.get("arp_interfaces") or []))
    return result


class FilterModule:
    def filters(self):
        return {"lvs_realserver": lvs_realserver}
