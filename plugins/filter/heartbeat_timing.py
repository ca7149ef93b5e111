# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: heartbeat_timing
short_description: Check Heartbeat timings and estimate the takeover time
version_added: 0.1.0
description:
  - Parses C(keepalive), C(deadtime), C(warntime), C(initdead) and optionally C(deadping) the way
    heartbeat 3 reads them (seconds as a number, or a number followed by C(ms) or C(us)).
  - Reports the errors heartbeat itself would refuse to start with (deadtime not above twice
    keepalive, initdead below deadtime), the role's stricter rules (keepalive < warntime < deadtime,
    initdead at least twice deadtime) and warnings (initdead under 10 s).
  - Estimates the client-visible takeover after the active node dies, from C(deadtime - keepalive)
    plus 0.8 s up to C(deadtime) plus 1.2 s (the takeover work measured in the lab).
options:
  _input:
    description: The timings, keys C(keepalive), C(deadtime), C(warntime), C(initdead), C(deadping) (optional).
    type: dict
    required: true
  prefix:
    description: Prefix of the variable names used in the messages.
    type: str
    default: heartbeat_
"""

EXAMPLES = r"""
- name: Fail on timings heartbeat would refuse
  ansible.builtin.assert:
    that: (timings | hakit.cluster.heartbeat_timing).errors == []
  vars:
    timings: {keepalive: 200ms, deadtime: 1, warntime: 500ms, initdead: 10}
"""

RETURN = r"""
_value:
  description: Values in milliseconds, problems and the takeover estimate.
  type: dict
  contains:
    keepalive_ms: {description: keepalive in ms, type: int}
    deadtime_ms: {description: deadtime in ms, type: int}
    warntime_ms: {description: warntime in ms, type: int}
    initdead_ms: {description: initdead in ms, type: int}
    deadping_ms: {description: deadping in ms or null, type: int}
    errors: {description: Messages naming the variable and the fix., type: list, elements: str}
    warnings: {description: Advice that does not stop the play., type: list, elements: str}
    takeover_min_ms: {description: Shortest expected outage in ms., type: int}
    takeover_max_ms: {description: Longest expected outage in ms., type: int}
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.hakit.cluster.plugins.plugin_utils._heartbeat import check_timings


def heartbeat_timing(timings, prefix="heartbeat_"):
    if not isinstance(timings, dict):
        raise AnsibleFilterError(f"heartbeat_timing expects a dict of timings, got {type(timings).__name__}")
    return check_timings(
        timings.get("keepalive"),
        timings.get("deadtime"),
        timings.get("warntime"),
        timings.get("initdead"),
        timings.get("deadping"),
        prefix=prefix,
    )


class FilterModule:
    def filters(self):
        return {"heartbeat_timing": heartbeat_timing}
