# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: heartbeat_resource_problems
short_description: Find mistakes in structured haresources groups
version_added: 0.1.0
description:
  - Preferred nodes that are not cluster nodes, empty groups, unknown resource types and agents,
    scripts that are not defined, arguments heartbeat would split apart, malformed addresses,
    and resources managed twice (same address, DRBD resource, mount point, device or service).
options:
  _input:
    description: The resource groups.
    type: list
    elements: dict
    required: true
  nodes:
    description: The cluster's node names.
    type: list
    elements: str
    required: true
  scripts:
    description: Names of the custom resource.d scripts the role installs.
    type: list
    elements: str
    default: []
  extra_agents:
    description: Resource agents in /etc/ha.d/resource.d known besides the packaged ones.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Fail on bad resource groups
  ansible.builtin.assert:
    that: problems == []
    fail_msg: "{{ problems }}"
  vars:
    problems: "{{ heartbeat_resource_groups | hakit.cluster.heartbeat_resource_problems(heartbeat_nodes) }}"
"""

RETURN = r"""
_value:
  description: Messages naming the variable and the fix; empty when all is well.
  type: list
  elements: str
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._heartbeat import KNOWN_AGENTS, resource_problems


def heartbeat_resource_problems(groups, nodes, scripts=None, extra_agents=None):
    return resource_problems(groups, nodes, scripts or [], tuple(KNOWN_AGENTS) + tuple(extra_agents or []))


class FilterModule:
    def filters(self):
        return {"heartbeat_resource_problems": heartbeat_resource_problems}
