# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The variables the collection's roles declare, read from their argument specs, and the check
that catches a misspelled one (which Ansible would silently ignore)."""

from __future__ import annotations

import difflib
import re
from functools import cache
from pathlib import Path

import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
# Variables a user of these roles may set all start with one of these.
PREFIXES = ("common_", "network_", "heartbeat_", "apache_", "drbd_", "lvs_", "uplink_")
PREFIX_RULE = re.compile("^(" + "|".join(PREFIXES) + ")")
# Facts the roles set and document as their output (not options).
SET_BY_ROLES = frozenset({"common_nodename"})


@cache
def declared(roles_dir: Path = ROLES_DIR) -> frozenset[str]:
    """Every option of every entry point of every role."""
    names = set()
    for spec_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        specs = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs", {})
        for entry in specs.values():
            names.update((entry or {}).get("options", {}))
    return frozenset(names)


def undeclared_problems(names, roles_dir: Path = ROLES_DIR) -> list[str]:
    """A message for each name with a role's prefix that no role declares, with the closest
    declared names."""
    known = declared(roles_dir) | SET_BY_ROLES
    problems = []
    for name in sorted(set(names)):
        if not PREFIX_RULE.match(name) or name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "no role variable is close to it;"
        problems.append(
            f"{name} is not a variable of any hakit.cluster role, so it would be ignored: {hint} "
            f"(a variable of your own must not start with {', '.join(p for p in PREFIXES)})"
        )
    return problems
