# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: heartbeat_vip_problems
short_description: Check service addresses against the nodes' interfaces
version_added: 0.1.0
description:
  - Each C(IPaddr2)/C(IPaddr) address must lie inside a subnet of its C(nic) (the base device of
    an alias such as C(eth0:0)) on every node, with that subnet's prefix as C(cidr), and must not
    be a node's own address. Nodes without address information are skipped.
options:
  _input:
    description: The resource groups.
    type: list
    elements: dict
    required: true
  node_addresses:
    description: Per node name, a dict of interface name to a list of C(address/prefix) strings.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Check the VIPs
  ansible.builtin.assert:
    that: problems == []
  vars:
    problems: "{{ heartbeat_resource_groups | hakit.cluster.heartbeat_vip_problems({'node1': {'eth0': ['10.0.0.11/24']}}) }}"
"""

RETURN = r"""
_value:
  description: Messages naming the variable and the fix; empty when all is well.
  type: list
  elements: str
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._heartbeat import vip_problems


def heartbeat_vip_problems(groups, node_addresses):
    return vip_problems(groups, node_addresses)


class FilterModule:
    def filters(self):
        return {"heartbeat_vip_problems": heartbeat_vip_problems}
