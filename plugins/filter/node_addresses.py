# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: node_addresses
short_description: IPv4 addresses of each node, by interface, from facts and inventory
version_added: 0.1.0
description:
  - Merges what each host's facts report (primary and secondary IPv4 addresses) with the addresses
    its C(network_interfaces) variable will configure, keyed by the host's C(uname -n). Alias
    interfaces (C(eth0:0)) count for their base device.
  - Secondary addresses in the facts that are one of O(service_addresses) are left out, because the node
    holding the cluster's resources carries the service address there (IPaddr2 adds it), and it
    is not the node's own.
  - Feeds P(hakit.cluster.heartbeat_vip_problems#filter).
options:
  _input:
    description: One dict per host with C(facts) (its ansible_facts) and C(interfaces) (its network_interfaces).
    type: list
    elements: dict
    required: true
  service_addresses:
    description: The cluster's service addresses (VIPs), ignored among the facts' secondary addresses.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Addresses of the play's hosts
  ansible.builtin.debug:
    msg: "{{ [{'facts': ansible_facts, 'interfaces': network_interfaces | default([])}] | hakit.cluster.node_addresses }}"
"""

RETURN = r"""
_value:
  description: Node name to a dict of interface name to a list of C(address/prefix).
  type: dict
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._heartbeat import (
    node_addresses as _node_addresses,
)


def node_addresses(hosts, service_addresses=None):
    return _node_addresses(hosts, service_addresses)


class FilterModule:
    def filters(self):
        return {"node_addresses": node_addresses}
