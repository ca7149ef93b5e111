# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: heartbeat_haresources
short_description: Render one haresources line from a structured resource group
version_added: 0.1.0
description:
  - Writes the preferred node followed by the group's resources in start order, for example
    C(node1 IPaddr2::10.0.0.10/24/eth0 drbddisk::r0 Filesystem::/dev/drbd0::/data::ext4 apache2).
  - Resource types are C(IPaddr2) and C(IPaddr) (C(address), C(cidr), C(nic), C(broadcast)),
    C(drbddisk) (C(resource)), C(Filesystem) (C(device), C(directory), C(fstype), C(options)), and
    C(service), C(script), C(agent) (C(name) and C(args), joined with C(::)).
  - C(IPaddr2) resources are written for the script that O(ipaddr2_agent) names.
  - Check the groups with P(hakit.cluster.heartbeat_resource_problems#filter) first.
options:
  _input:
    description: A group, keys C(node) and C(resources).
    type: dict
    required: true
  ipaddr2_agent:
    description:
      - C(ocf) writes C(IPaddr2::...), Debian's wrapper around the OCF IPaddr2 agent.
      - C(hakit) writes C(hakit-IPaddr2::...), the heartbeat role's lean agent with the same argument.
    type: str
    choices: [ocf, hakit]
    default: ocf
"""

EXAMPLES = r"""
- name: Show the line of the first group
  ansible.builtin.debug:
    msg: "{{ heartbeat_resource_groups[0] | hakit.cluster.heartbeat_haresources }}"
"""

RETURN = r"""
_value:
  description: The haresources line, without a newline.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.hakit.cluster.plugins.plugin_utils._heartbeat import render_group


def heartbeat_haresources(group, ipaddr2_agent="ocf"):
    try:
        return render_group(group, ipaddr2_agent)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"cannot render haresources group {group!r}: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"heartbeat_haresources": heartbeat_haresources}
