"""Variables with a role's prefix that no role declares: Ansible would ignore them silently."""

from __future__ import annotations

from ansible_collections.hakit.cluster.plugins.filter.undeclared_variables import undeclared_variables
from ansible_collections.hakit.cluster.plugins.plugin_utils import _specs


def test_every_role_option_is_declared_including_other_entry_points():
    names = _specs.declared()
    assert {"heartbeat_resource_groups", "common_hostname", "uplink_failover_uplinks"} <= names
    assert "heartbeat_switchover_to" in names  # the switchover entry point's


def test_a_misspelled_variable_names_the_closest_declared_ones():
    problems = undeclared_variables(["heartbeat_resource_group", "heartbeat_nodes", "lvs_director_quiescent"])
    assert problems == [
        "heartbeat_resource_group is not a variable of any hakit.cluster role, so it would be ignored: "
        "did you mean heartbeat_resource_groups? (a variable of your own must not start with common_, "
        "network_, heartbeat_, apache_, drbd_, lvs_, uplink_)"
    ]


def test_names_without_a_role_prefix_and_documented_facts_pass():
    assert (
        undeclared_variables(["dr_vip", "internet_zone", "common_nodename", "__heartbeat_was", "lab_kind"])
        == []
    )


def test_a_name_far_from_any_option_says_so():
    (problem,) = undeclared_variables(["drbd_zzz"])
    assert "drbd_zzz is not a variable of any hakit.cluster role" in problem
    assert "no role variable is close to it" in problem
