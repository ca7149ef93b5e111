# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: heartbeat_duration
short_description: Write a duration the way ha.cf spells it
version_added: 0.1.0
description:
  - Whole seconds are written bare (C(2)), anything else in milliseconds (C(200ms)), so the
    rendered ha.cf is the same whatever spelling the inventory used.
options:
  _input:
    description: Seconds (number), or a string like C(1.5), C(500ms) or C(200000us).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Show a duration in ha.cf form
  ansible.builtin.debug:
    msg: "keepalive {{ '0.2' | hakit.cluster.heartbeat_duration }}"  # keepalive 200ms
"""

RETURN = r"""
_value:
  description: The ha.cf token.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.hakit.cluster.plugins.plugin_utils._heartbeat import format_duration


def heartbeat_duration(value):
    try:
        return format_duration(value)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"heartbeat_duration": heartbeat_duration}
