# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: drbd_problems
short_description: Find mistakes in the drbd role's settings
version_added: 0.1.0
description:
  - Node names, the shared secret (set, no spaces or quotes), split-brain policies that discard
    data without the opt-in, and per resource the name, device, port, replication addresses of
    both nodes, backing disks, the preferred node and the mount point.
options:
  _input:
    description:
      - The role's variables without the C(drbd_) prefix, plus C(nodename) (this host's C(uname -n)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Fail on bad settings
  ansible.builtin.assert:
    that: problems == []
  vars:
    problems: "{{ {'nodes': ['node1', 'node2'], 'nodename': 'node1', 'resources': []} | hakit.cluster.drbd_problems }}"
"""

RETURN = r"""
_value:
  description: Messages naming the variable and the fix; empty when all is well.
  type: list
  elements: str
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._drbd import config_problems


def drbd_problems(cfg):
    return config_problems(cfg)


class FilterModule:
    def filters(self):
        return {"drbd_problems": drbd_problems}
