"""Shared test setup: the lab package, the tools and this collection (as ansible_collections.hakit.cluster) on sys.path."""

import os
import sys
from pathlib import Path

import figures
import pytest

# Under `pytest -n N` every worker runs its own lab, side by side: its own HAKIT_LAB_PREFIX (set
# before anything imports hakit_lab, and inherited by molecule and the hakit-lab CLI). The
# inventories keep the labs apart with a management subnet each.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
if _WORKER.startswith("gw") and "HAKIT_LAB_PREFIX" not in os.environ:
    os.environ["HAKIT_LAB_PREFIX"] = "hw" + "0123456789abcdefghijklmnopqrstuvwxyz"[int(_WORKER[2:]) % 36]

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab"))
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
# .collections/ansible_collections/hakit/cluster links to the repository root.
sys.path.insert(0, str(ROOT / ".collections"))


# Modules that bring up the same lab (the same management subnet): one worker runs them all.
SHARED_LABS = {
    "tests/lab/test_lifecycle.py": "tests/lab/inventory",
    "tests/lab/test_ns_hosts.py": "tests/lab/inventory",
    "tests/lab/test_vm_hosts.py": "tests/lab/inventory",
}
# Modules whose every test brings up and takes down a lab of its own: their tests go to any worker.
LAB_PER_TEST = {"tests/integration/test_molecule.py"}


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with SHARED_LABS and LAB_PER_TEST: each worker takes whole modules (lab
    fixtures are module-scoped), the modules of one lab together, and each molecule scenario on its
    own. (pytest 9.2 ignores the node ids that xdist 3.8's `--dist loadgroup` rewrites, so
    xdist_group marks cannot do this.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LabScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return nodeid if module in LAB_PER_TEST else SHARED_LABS.get(module, module)

    return LabScheduling(config, log)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    figures.attach((yield).get_result())


def pytest_runtest_logreport(report):
    figures.collect(report)


def pytest_terminal_summary(terminalreporter):
    if figures.FIGURES:
        terminalreporter.section("lab figures")
        for line in figures.FIGURES:
            terminalreporter.write_line(line)
