# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: network_changes
short_description: Which interfaces a new interfaces file changes
version_added: 0.1.0
description:
  - Compares the current C(/etc/network/interfaces) text with the wanted stanzas by meaning
    (C(address A/24) equals C(address A) plus C(netmask 255.255.255.0); comments, blank lines
    and stanza order do not count), so that only interfaces whose configuration really changes
    are brought down and up.
options:
  _input:
    description: The current file's text (empty if there is none).
    type: str
    required: true
  wanted:
    description: Stanzas from P(hakit.cluster.network_stanzas#filter).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Interfaces to bounce
  ansible.builtin.debug:
    msg: "{{ (current | b64decode) | hakit.cluster.network_changes(network_interfaces | hakit.cluster.network_stanzas) }}"
  vars:
    current: "{{ slurped.content }}"
"""

RETURN = r"""
_value:
  description: C(changed) (new or modified interfaces) and C(removed) (configured before, not any more).
  type: dict
  contains:
    changed: {description: Interface names, type: list, elements: str}
    removed: {description: Interface names, type: list, elements: str}
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._network import changes


def network_changes(old_text, wanted):
    return changes(old_text, wanted)


class FilterModule:
    def filters(self):
        return {"network_changes": network_changes}
