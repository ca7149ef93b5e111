# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: undeclared_variables
short_description: Find variables with a role's prefix that no role of the collection declares
version_added: 0.1.0
description:
  - A misspelled variable (C(heartbeat_resource_group) for C(heartbeat_resource_groups)) is silently
    ignored by Ansible. Every name that starts with a prefix of the collection's roles (C(common_),
    C(network_), C(heartbeat_), C(apache_), C(drbd_), C(lvs_), C(uplink_)) must be an option of some
    entry point of some role (their meta/argument_specs.yml), or a fact a role documents as its output.
options:
  _input:
    description: Variable names, e.g. from C(lookup('ansible.builtin.varnames', '.*')).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Fail on variables no role knows
  ansible.builtin.assert:
    that: problems == []
    fail_msg: "{{ problems }}"
  vars:
    problems: "{{ lookup('ansible.builtin.varnames', '^(common|heartbeat)_', wantlist=True) | hakit.cluster.undeclared_variables }}"
"""

RETURN = r"""
_value:
  description: One message per unknown name, with the closest declared names; empty when all are known.
  type: list
  elements: str
"""

from ansible_collections.hakit.cluster.plugins.plugin_utils._specs import undeclared_problems


def undeclared_variables(names):
    return undeclared_problems(names)


class FilterModule:
    def filters(self):
        return {"undeclared_variables": undeclared_variables}
