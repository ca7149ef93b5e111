"""Running a molecule scenario against the lab, for test_molecule.py and the failure-case modules.

A scenario with a failure-case module (tests/integration/test_<scenario>.py) is not run on its own:
that module runs the scenario's whole sequence once, keeps the converged and verified lab up for its
cases, then takes it down. So each scenario's lab is built and converged once per `make test`.
"""

from __future__ import annotations

import os
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


def passed(scenario: str, result: subprocess.CompletedProcess) -> None:
    """Fail with the tail of molecule's output unless it exited 0."""
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-60:])
        pytest.fail(f"molecule test -s {scenario} failed (log: {LOGS}); last lines:\n{tail}", pytrace=False)


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
