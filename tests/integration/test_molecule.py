"""Run every molecule scenario against the lab: `molecule test` converges, checks idempotence,
breaks things (side_effect) and verifies. Scenarios whose inventory has a VM host run under `make vm`.
"""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
# Scenarios that passed on the lab but do not fit CI's time: listed with why, not run by `make vm`.
PENDING = {
    "lvs_dr": (
        "issue 6: passes on the lab's VMs (2026-12-01: converge, idempotence 0 changed, verify 13 passed, "
        "21 min 56 s under TCG), which CI's 90 minutes cannot fit beside file_server and the namespace tier"
    ),
    "lvs_nat_tun": (
        "issue 6: passes on the lab's VMs (2026-12-01: 4 passed, 13 min 18 s under TCG), which CI's "
        "90 minutes cannot fit beside file_server and the namespace tier"
    ),
}


def needs_vm(scenario: str) -> bool:
    """Whether the scenario's lab inventory declares a VM host (the lab reads `lab_kind`)."""
    config = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())
    links = config.get("provisioner", {}).get("inventory", {}).get("links", {})
    for link in links.values():
        text = (ROOT / "molecule" / scenario / link).read_text()
        if "lab_kind: vm" in text:
            return True
    return False


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(
            s,
            marks=[
                pytest.mark.molecule,
                pytest.mark.vm if needs_vm(s) else pytest.mark.lab,
                *([pytest.mark.skip(reason=PENDING[s])] if s in PENDING else []),
            ],
        )
        for s in SCENARIOS
    ],
)
def test_scenario(scenario):
    env = dict(os.environ, PY_COLORS="0", ANSIBLE_FORCE_COLOR="0", MOLECULE_NO_LOG="false")
    result = subprocess.run(
        ["molecule", "test", "--scenario-name", scenario],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=3600,
    )
    log = ROOT / ".cache" / "molecule" / f"{scenario}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(result.stdout)
    assert result.returncode == 0, f"molecule test -s {scenario} failed; last lines:\n" + "\n".join(
        result.stdout.splitlines()[-60:]
    )
