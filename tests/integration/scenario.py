"""Running a molecule scenario against the lab, for test_molecule.py and the failure-case modules.

A scenario with a failure-case module (tests/integration/test_<scenario>.py) is not run on its own:
that module runs the scenario's whole sequence once, keeps the converged and verified lab up for its
cases, then takes it down. So each scenario's lab is built and converged once per `make test`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".cache" / "molecule"


def has_failure_cases(scenario: str) -> bool:
    """Whether the scenario's failure-case module runs it (and then breaks its lab)."""
    return Path(__file__).with_name(f"test_{scenario}.py").is_file()


def molecule(scenario: str, command: str, *args: str) -> subprocess.CompletedProcess:
    """`molecule COMMAND --scenario-name SCENARIO ARGS`, its output kept in .cache/molecule/."""
    env = dict(os.environ, PY_COLORS="0", ANSIBLE_FORCE_COLOR="0", MOLECULE_NO_LOG="false")
    result = subprocess.run(
        ["molecule", command, "--scenario-name", scenario, *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=3600,
    )
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"{scenario}-{command}.log").write_text(result.stdout)
    return result


def action_outputs(scenario: str, output: str, action: str) -> list[str]:
    """What each run of one molecule action printed, in order (an action may run twice)."""
    pattern = (
        rf"\[{re.escape(scenario)} > {action}\] Executing\n(.*?)\[{re.escape(scenario)} > {action}\] Executed"
    )
    return re.findall(pattern, output, re.DOTALL)


def recap(output: str) -> dict[str, dict[str, int]]:
    """The counts per host (ok, changed, unreachable, failed, ...) of the last PLAY RECAP in an
    ansible-playbook output."""
    text = output.rsplit("PLAY RECAP", 1)[-1]
    return {
        host: {key: int(n) for key, n in re.findall(r"(\w+)=(\d+)", counts)}
        for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", text, re.M)
    }


def passed(scenario: str, result: subprocess.CompletedProcess) -> None:
    """Fail with the tail of molecule's output unless it exited 0, and unless a check-mode run after
    the converge (the scenario's second `check`) would change nothing."""
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-60:])
        pytest.fail(f"molecule test -s {scenario} failed (log: {LOGS}); last lines:\n{tail}", pytrace=False)
    checks = action_outputs(scenario, result.stdout, "check")
    if len(checks) >= 2:
        counts = recap(checks[-1])
        assert counts, f"molecule {scenario}: no PLAY RECAP in the check after the converge"
        would_change = {host: c["changed"] for host, c in counts.items() if c["changed"]}
        assert not would_change, (
            f"molecule {scenario}: --check after the converge would change {would_change}:\n"
            + "\n".join(line for line in checks[-1].splitlines() if line.startswith("changed:"))
        )


@contextmanager
def converged_lab(scenario: str) -> Iterator[None]:
    """The scenario's whole `molecule test` (create, converge, idempotence, verify) with its lab
    left up for the caller, then destroyed."""
    molecule(scenario, "destroy")
    try:
        passed(scenario, molecule(scenario, "test", "--destroy", "never"))
        yield
    finally:
        molecule(scenario, "destroy")
