# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: uplink_failover_problems
short_description: Find mistakes in the uplink_failover role's settings
version_added: 0.1.0
description:
  - Uplinks (at least two, unique names, interfaces that exist, IPv4 gateways, targets beyond the
    gateway, k of n within range, a service address only on a backup uplink, public addresses
    when DNS is updated), timings (timeout not above the interval, rounds at least 1) and DNS
    updates (URL, names, secrets present, record inside its zone).
  - The failover daemon checks its configuration file with the same rules.
options:
  _input:
    description:
      - The role's variables without the C(uplink_failover_) prefix, plus C(interfaces) (the
        interface names the host has or will have).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Fail on bad settings
  ansible.builtin.assert:
    that: problems == []
  vars:
    problems: "{{ {'uplinks': uplink_failover_uplinks, 'interfaces': ansible_facts['interfaces']} | hakit.cluster.uplink_failover_problems }}"
"""

RETURN = r"""
_value:
  description: Messages naming the variable and the fix; empty when all is well.
  type: list
  elements: str
"""

from ansible_collections.hakit.cluster.plugins.module_utils._uplink import config_problems


def uplink_failover_problems(cfg):
    return config_problems(cfg)


class FilterModule:
    def filters(self):
        return {"uplink_failover_problems": uplink_failover_problems}
