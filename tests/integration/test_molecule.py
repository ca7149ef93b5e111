"""Run every molecule scenario against the lab: `molecule test` converges, checks idempotence,
breaks things (side_effect) and verifies. A scenario runs in the tier of its slowest host kind:
`make vm` if its inventory has a VM host, `make uml` if a uml host, `make integration` otherwise.

Scenarios with failure cases run in their failure-case modules instead (test_<scenario>.py), so
their lab is converged once.
"""

from pathlib import Path

import pytest
import yaml
from scenario import has_failure_cases, molecule, passed

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


def tier(scenario: str):
    """The pytest mark of the scenario's tier, from the host kinds its lab inventory declares."""
    config = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())
    links = config.get("provisioner", {}).get("inventory", {}).get("links", {})
    text = "".join((ROOT / "molecule" / scenario / link).read_text() for link in links.values())
    if "lab_kind: vm" in text:
        return pytest.mark.vm
    if "lab_kind: uml" in text:
        return pytest.mark.uml
    return pytest.mark.lab


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(
            s,
            marks=[pytest.mark.molecule, tier(s)],
        )
        for s in SCENARIOS
        if not has_failure_cases(s)
    ],
)
def test_scenario(scenario):
    passed(scenario, molecule(scenario, "test"))
