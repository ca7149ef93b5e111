# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: lvs_director
short_description: ldirectord.cf, sysctls and mistakes of an LVS director's settings
version_added: 0.1.0
description:
  - Takes the lvs_director role's settings (its variables without the C(lvs_director_) prefix) and
    returns the rendered ldirectord.cf, the sysctls the director needs (ip_forward, and the
    expire_nodest_conn/expire_quiescent_template pair when servers are quiescent), whether a service
    uses NAT (masq), and the list of mistakes, each naming the variable and the fix.
  - With O(heartbeat_groups) the heartbeat resource groups are checked to start ldirectord with
    this configuration, the sync daemon's master role and to hold every VIP. Without, ldirectord runs
    as Debian's ldirectord.service, which reads only /etc/ha.d/ldirectord.cf.
options:
  _input:
    description: The settings, keys as the role's variables without prefix.
    type: dict
    required: true
  heartbeat_groups:
    description: C(heartbeat_resource_groups), or null when heartbeat does not manage ldirectord.
    type: list
    elements: dict
  heartbeat_nodes:
    description: C(heartbeat_nodes).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Render ldirectord.cf
  ansible.builtin.copy:
    content: "{{ settings | hakit.cluster.lvs_director | community.general.json_query('config') }}"
    dest: /etc/ha.d/ldirectord.cf
    mode: "0644"
"""

RETURN = r"""
_value:
  description: Keys C(config) (text, empty when there are problems), C(sysctls) (dict), C(masq) (bool), C(problems) (list).
  type: dict
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._lvs import (
    director_problems,
    director_sysctls,
    heartbeat_problems,
    ldirectord_cf,
    service_problems,
    uses_masq,
)


def lvs_director(settings, heartbeat_groups=None, heartbeat_nodes=None):
    problems = director_problems(settings)
    if heartbeat_groups is not None:
        problems += heartbeat_problems(settings, heartbeat_groups, heartbeat_nodes or [])
    else:
        problems += service_problems(settings)
    return {
        "problems": problems,
        "config": "" if problems else ldirectord_cf(settings),
        "sysctls": director_sysctls(settings),
        "masq": uses_masq(settings.get("virtual_services")),
    }


class FilterModule:
    def filters(self):
        return {"lvs_director": lvs_director}
