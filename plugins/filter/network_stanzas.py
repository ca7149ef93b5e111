# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: network_stanzas
short_description: Normalize interface variables into ifupdown stanzas
version_added: 0.1.0
description:
  - Turns the network role's C(network_interfaces) list into stanzas with the address split into
    C(address) and C(netmask), extra options sorted and the C(pre-up), C(up), C(down) and
    C(post-down) hooks in order. The interfaces template and P(hakit.cluster.network_changes#filter)
    both use it.
options:
  _input:
    description: The C(network_interfaces) list.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Show the stanzas
  ansible.builtin.debug:
    msg: "{{ [{'name': 'lo:0', 'address': '192.168.1.105/32'}] | hakit.cluster.network_stanzas }}"
"""

RETURN = r"""
_value:
  description: Stanzas with keys C(name), C(auto), C(hotplug), C(family), C(method), C(options) (list of [key, value]), C(cidr) (address/prefix or empty).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.hakit.cluster.plugins.plugin_utils._network import stanzas


def network_stanzas(interfaces):
    try:
        return stanzas(interfaces)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"network_stanzas: {exc} (check network_interfaces)") from exc


class FilterModule:
    def filters(self):
        return {"network_stanzas": network_stanzas}
