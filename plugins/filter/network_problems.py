# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: network_problems
short_description: Find mistakes in the network role's variables
version_added: 0.1.0
description:
  - Interface names, methods, CIDR addresses, gateways and broadcasts outside the subnet,
    duplicate interfaces or addresses, and the interface Ansible connects through listed without
    the explicit opt-in; ARP sysctl values outside what the kernel accepts.
options:
  _input:
    description: The C(network_interfaces) list.
    type: list
    elements: dict
    required: true
  protected:
    description: Interfaces the role must not take over (the connection interface and C(network_protected_interfaces)).
    type: list
    elements: str
    default: []
  allow_protected:
    description: The user's explicit opt-in to list a protected interface.
    type: bool
    default: false
  arp_ignore:
    description: C(network_arp_ignore).
    type: dict
    default: {}
  arp_announce:
    description: C(network_arp_announce).
    type: dict
    default: {}
  sysctl:
    description: C(network_sysctl).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Fail on bad network variables
  ansible.builtin.assert:
    that: problems == []
  vars:
    problems: "{{ network_interfaces | hakit.cluster.network_problems(['mgmt0']) }}"
"""

RETURN = r"""
_value:
  description: Messages naming the variable and the fix; empty when all is well.
  type: list
  elements: str
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._network import problems, sysctl_problems


def network_problems(
    interfaces, protected=None, allow_protected=False, arp_ignore=None, arp_announce=None, sysctl=None
):
    return problems(interfaces, protected or [], allow_protected) + sysctl_problems(
        arp_ignore, arp_announce, sysctl
    )


class FilterModule:
    def filters(self):
        return {"network_problems": network_problems}
