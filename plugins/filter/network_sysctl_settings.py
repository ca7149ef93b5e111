# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: network_sysctl_settings
short_description: The sysctl settings of the network role, with interface names that contain dots
version_added: 0.1.0
description:
  - Builds the ordered key/value list for C(ip_forward), C(arp_ignore) and C(arp_announce) (C(all)
    and C(default) first, then each interface) and any extra keys.
  - Keys of interfaces whose name contains a dot (VLANs such as C(eth0.100)) are written in the
    slash form C(net/ipv4/conf/eth0.100/arp_ignore), which sysctl(8) and sysctl.d(5) read literally;
    so are the extra keys of per-interface trees given in the dotted form (C(net.ipv4.conf.eth0.100.arp_ignore)).
options:
  _input:
    description: C(network_ip_forward) (null leaves it alone).
    type: bool
    required: true
  arp_ignore:
    description: Interface name to C(arp_ignore) value.
    type: dict
    default: {}
  arp_announce:
    description: Interface name to C(arp_announce) value.
    type: dict
    default: {}
  extra:
    description: Further sysctl keys and values.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Show the settings
  ansible.builtin.debug:
    msg: "{{ true | hakit.cluster.network_sysctl_settings({'all': 1, 'eth0.100': 1}, {'all': 2}) }}"
"""

RETURN = r"""
_value:
  description: List of [key, value] pairs.
  type: list
  elements: list
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._network import sysctl_settings


def network_sysctl_settings(ip_forward, arp_ignore=None, arp_announce=None, extra=None):
    return sysctl_settings(ip_forward, arp_ignore, arp_announce, extra)


class FilterModule:
    def filters(self):
        return {"network_sysctl_settings": network_sysctl_settings}
