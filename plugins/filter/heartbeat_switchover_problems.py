# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: heartbeat_switchover_problems
short_description: Check that a pair's resources can be moved to a named node
version_added: 0.1.0
description:
  - The named node must be one of O(nodes), have answered, run heartbeat and have resources in
    haresources; no node may be in the middle of a transition; and unless it already holds every
    resource, it must see its peer as active (hb_takeover asks the peer to hand them over).
options:
  _input:
    description:
      - Per node name (uname -n), what the node reported - C(running) (bool), C(resources)
        (cl_status rscstatus), C(peer) (cl_status nodestatus of the other node), C(held) and
        C(free) (the haresources resources running there and not).
    type: dict
    required: true
  to:
    description: The node the resources should move to (C(heartbeat_switchover_to)).
    type: str
    required: true
  nodes:
    description: The pair's nodes (C(heartbeat_nodes)).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Check the switchover
  ansible.builtin.assert:
    that: problems == []
  vars:
    problems: "{{ states | hakit.cluster.heartbeat_switchover_problems('node2', ['node1', 'node2']) }}"
"""

RETURN = r"""
_value:
  description: Messages naming the variable and the fix; empty when the switchover can run.
  type: list
  elements: str
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._heartbeat import switchover_problems


def heartbeat_switchover_problems(states, to, nodes):
    return switchover_problems(states, to, nodes)


class FilterModule:
    def filters(self):
        return {"heartbeat_switchover_problems": heartbeat_switchover_problems}
