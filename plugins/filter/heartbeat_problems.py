# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: heartbeat_problems
short_description: Find mistakes in the heartbeat role's settings besides timings and resources
version_added: 0.1.0
description:
  - Node names (two, different, each host's C(uname -n), all present in the play), media (at least
    one; interfaces that exist; ucast addresses for every node; multicast groups; serial devices),
    authkeys (a key for sha1/md5 and none for crc, crc only with the opt-in, key numbers 0-15 used
    once), logging, watchdog, ping nodes for ipfail, respawn commands, extra ha.cf lines that repeat
    a managed directive, and resource scripts.
options:
  _input:
    description:
      - The role's variables without the C(heartbeat_) prefix, plus C(nodename) (this host's
        C(uname -n)), C(play_nodenames) (every play host's) and C(interfaces) (interface names this
        host has or will have).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Fail on bad settings
  ansible.builtin.assert:
    that: problems == []
  vars:
    problems: "{{ {'nodes': ['node1', 'node2'], 'nodename': 'node1', 'media': []} | hakit.cluster.heartbeat_problems }}"
"""

RETURN = r"""
_value:
  description: Messages naming the variable and the fix; empty when all is well.
  type: list
  elements: str
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._heartbeat import config_problems


def heartbeat_problems(cfg):
    return config_problems(cfg)


class FilterModule:
    def filters(self):
        return {"heartbeat_problems": heartbeat_problems}
